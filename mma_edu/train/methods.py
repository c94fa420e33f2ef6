"""Training methods: each turns a batch into the loss to descend (§4 of the paper notes).

- :class:`Standard` — cross-entropy on clean inputs.
- :class:`PGDAT` — fixed-ε adversarial training (Madry et al.): cross-entropy at a PGD point.
- :class:`MMA` — max-margin adversarial training: AN-PGD per example from its
  remembered margin, cross-entropy at the shortest successful perturbation
  (hinged at d_max), mixed with the clean loss. ``MMA(..., clean_weight=0)``
  is OMMA.

A method's ``batch_loss(model, x, y, index)`` returns the scalar loss (one
backward pass trains the model) and a dict of statistics. Methods with
per-example state (MMA's margin memory) expose ``state_dict`` /
``load_state_dict`` so that it survives checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .. import norms
from ..attacks import BN_MODES, STEP_SCALE, anpgd, perturb
from ..attacks._common import (
    Clip,
    as_per_example,
    check_choice,
    check_clip,
    check_count,
    check_in_range,
    check_positive,
    eval_mode,
)
from ..losses import cross_entropy, get_loss, is_correct, soft_logit_margin
from ..speed import check_precision

if TYPE_CHECKING:
    from ..distributed import Dist


class Method:
    """Base class: a training objective with optional per-example state.

    ``dist`` is set by ``fit`` while it trains on several processes (:mod:`mma_edu.distributed`):
    each rank then sees its shard of the global batch, draws its random starts as the single process
    would (:meth:`~mma_edu.distributed.Dist.random_in_ball`) and shares per-example state.
    """

    name = "method"
    dist: "Dist | None" = None

    def setup(self, num_examples: int, device: torch.device) -> None:
        """Called once by the trainer with the training-set size."""

    def batch_loss(self, model: nn.Module, x: Tensor, y: Tensor, index: Tensor) -> tuple[Tensor, dict]:
        raise NotImplementedError

    def _random_in_ball(self, like: Tensor, eps: Tensor) -> Tensor:
        """Random starts (m, ...): drawn here, or for the whole global batch when training on several processes."""
        if self.dist is not None:
            return self.dist.random_in_ball(like, eps, self.norm)  # type: ignore[attr-defined]
        return norms.random_in_ball(like, eps, self.norm)  # type: ignore[attr-defined]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def config(self) -> dict:
        """The method's settings as plain data (for histories and checkpoints)."""
        cfg = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}  # type: ignore[arg-type]
        return {"method": self.name, **cfg}


@dataclass
class Standard(Method):
    """Cross-entropy on clean inputs."""

    name = "standard"

    def batch_loss(self, model, x, y, index):
        logits = model(x)
        loss = cross_entropy(logits, y).mean()
        return loss, {"loss": loss.item(), "clean_acc": is_correct(logits, y).float().mean().item()}


@dataclass
class PGDAT(Method):
    """PGD adversarial training at a fixed radius ``eps`` (Madry et al.); PGDLS with ``label_smoothing``.

    The PGD point (random start, ``steps`` steps of ``step_size``, default
    2.5·eps/steps, maximizing ``loss``) is found in eval mode; the model then
    trains on cross-entropy there, mixed with ``clean_weight`` of clean loss.

    ``label_smoothing`` = s > 0 is PGDLS, the paper's PGD baseline with label
    smoothing: both cross-entropy terms train on targets 1 − s + s/C on the
    label and s/C elsewhere (torch's convention); the attack still maximizes
    the plain ``loss``.

    Every setting is checked when the method is made (ValueError naming it):
    eps finite > 0, steps an integer >= 1, step_size finite > 0 or None, loss
    a known name, clean_weight in [0, 1], label_smoothing in [0, 1),
    warmup_steps an integer >= 0.

    ``warmup_steps`` > 0 ramps the radius linearly over the first training
    steps: step t (counting from 0) attacks at eps·min(1, (t + 1)/warmup_steps).
    Starting every digit at a small radius avoids the early collapse to a
    constant classifier that a large fixed ε causes on short budgets. The step
    count is the method's state (``state_dict``), so a resumed run continues
    the ramp where it stopped.
    """

    eps: float
    norm: str = "linf"
    steps: int = 40
    step_size: float | None = None
    loss: str = "ce"
    clean_weight: float = 0.0
    clip: Clip = (0.0, 1.0)
    label_smoothing: float = 0.0
    warmup_steps: int = 0
    steps_done: int = field(default=0, init=False, repr=False)
    name = "pgdat"

    def __post_init__(self):
        norms.check_norm(self.norm)
        check_positive(self.eps, "eps")
        check_count(self.steps, "steps", 1)
        if self.step_size is not None:
            check_positive(self.step_size, "step_size")
        get_loss(self.loss)
        check_in_range(self.clean_weight, "clean_weight", 0, 1)
        check_in_range(self.label_smoothing, "label_smoothing", 0, 1, include_high=False)
        check_clip(self.clip)
        check_count(self.warmup_steps, "warmup_steps", 0)

    def current_eps(self) -> float:
        """The radius of the next training step: eps, or its warm-up fraction."""
        if self.warmup_steps == 0:
            return self.eps
        return self.eps * min(1.0, (self.steps_done + 1) / self.warmup_steps)

    def state_dict(self):
        return {"steps_done": self.steps_done} if self.warmup_steps else {}

    def load_state_dict(self, state):
        self.steps_done = int(state.get("steps_done", 0))

    def batch_loss(self, model, x, y, index):
        eps_now = self.current_eps()
        self.steps_done += 1  # every call is one training step
        eps = as_per_example(eps_now, x, "eps")
        step = STEP_SCALE * eps / self.steps if self.step_size is None else as_per_example(
            self.step_size, x, "step_size")
        with eval_mode(model):
            x_adv = perturb(
                model, x, y, eps, norm=self.norm, steps=self.steps, step_size=step, loss_fn=get_loss(self.loss),
                clip=self.clip, delta_init=self._random_in_ball(x, eps),
            )
        logits_adv = model(x_adv)
        loss = cross_entropy(logits_adv, y, self.label_smoothing).mean()
        stats = {"adv_acc": is_correct(logits_adv, y).float().mean().item()}
        if self.clean_weight > 0:
            logits = model(x)
            loss = (1 - self.clean_weight) * loss + self.clean_weight * cross_entropy(
                logits, y, self.label_smoothing).mean()
            stats["clean_acc"] = is_correct(logits, y).float().mean().item()
        else:
            with eval_mode(model), torch.no_grad():
                stats["clean_acc"] = is_correct(model(x), y).float().mean().item()
        stats["loss"] = loss.item()
        if self.warmup_steps:
            stats["eps"] = eps_now
        return loss, stats


@dataclass
class MMA(Method):
    """Max-margin adversarial training (MMA); OMMA is ``clean_weight=0``.

    Per batch (§4 of the paper notes):

    1. clean forward (train mode); S⁺ = examples with soft logit margin < 0;
    2. AN-PGD on S⁺ from each example's remembered margin ε_prev (at least
       ``mineps``), bisection up to ``hinge_factor``·d_max, giving ε̂ and the
       point x + ε̂·u; the memory stores ε̂ (0 for S⁻);
    3. one forward of the mixed batch (the AN-PGD point for S⁺, x for S⁻);
    4. L_MMA = (1/n)[Σ_{S⁺, ε̂<d_max} CE(x+ε̂u) + Σ_{S⁻} CE(x)];
       loss = (1 − c)·L_MMA + c·mean CE(x).

    Settings that are ours rather than the paper's:

    - ``mineps`` defaults to d_max/10, our choice; the paper's runs use 0.1
      (MNIST ℓ∞), 0.5 (ℓ2) and 0.005 (CIFAR10 ℓ∞), which the presets carry.
    - ``bn_mode`` — where AN-PGD's forwards run. Its PGD iterations are in
      eval mode either way. "reference": the check at the PGD point and the
      bisection run in train mode on the S⁺ sub-batch, as in the authors'
      code, so batch norm normalizes with that sub-batch and updates its
      running statistics search_steps + 3 times per step (clean, check,
      bisection, mixed: 13 at 10 search steps). "eval": all of AN-PGD in eval
      mode; 2 updates per step (clean, mixed). The default is "eval" because
      (a) an example's ε̂ then does not depend on which other examples share
      its batch (in train mode batch norm mixes them); (b) the running
      statistics come from the clean and training points only, not mostly
      from the search's near-boundary points; (c) attacks then never change
      the model, the rule PGD-AT, validation and evaluation follow too. For
      models without batch norm (LeNet5, SmallCNN, MLPs) the two are
      bitwise identical. The paper presets pass "reference".
    - ``clip_training_point`` — True (default) trains on x + ε̂·u clipped to
      ``clip``: a valid input, and the point whose loss the bisection
      evaluated. The reference trains on the unclipped point (False here
      reproduces it), which leaves the box wherever ε̂ > ε_prev along a
      coordinate where the PGD point sat on the box's edge.

    ``precision="bf16"`` runs AN-PGD's PGD iterations in bfloat16 (faster,
    margins within a few percent; see :mod:`mma_edu.speed`).

    Every setting is checked when the method is made (ValueError naming it):
    d_max, mineps, step_scale finite > 0; steps and search_steps integers
    >= 1; hinge_factor finite >= 1; clean_weight in [0, 1]; bn_mode,
    precision and norm known names.
    """

    d_max: float
    norm: str = "linf"
    clean_weight: float = 1 / 3
    mineps: float | None = None
    steps: int = 40
    search_steps: int = 10
    step_scale: float = STEP_SCALE
    hinge_factor: float = 1.05
    clip: Clip = (0.0, 1.0)
    precision: str = "fp32"
    bn_mode: str = "eval"
    clip_training_point: bool = True
    margins: Tensor | None = field(default=None, repr=False)
    name = "mma"

    def __post_init__(self):
        norms.check_norm(self.norm)
        check_positive(self.d_max, "d_max")
        check_in_range(self.clean_weight, "clean_weight", 0, 1)
        check_count(self.steps, "steps", 1)
        check_count(self.search_steps, "search_steps", 1)
        check_positive(self.step_scale, "step_scale")
        if not (check_positive(self.hinge_factor, "hinge_factor") >= 1):
            raise ValueError(f"hinge_factor must be >= 1, got {self.hinge_factor!r}")
        check_clip(self.clip)
        check_precision(self.precision)
        check_choice(self.bn_mode, "bn_mode", BN_MODES)
        if not isinstance(self.clip_training_point, bool):
            raise ValueError(f"clip_training_point must be True or False, got {self.clip_training_point!r}")
        if self.mineps is None:
            self.mineps = self.d_max / 10
        check_positive(self.mineps, "mineps")
        if self.mineps > self.max_eps:
            raise ValueError(f"mineps ({self.mineps}) must be <= hinge_factor·d_max ({self.max_eps})")

    @property
    def max_eps(self) -> float:
        """Upper end of the bisection: 1.05·d_max, so unbroken examples land past the hinge."""
        return self.hinge_factor * self.d_max

    def setup(self, num_examples, device):
        if self.margins is None or self.margins.shape != (num_examples,):
            # The margin memory: one ε_prev per training example, keyed by dataset index.
            self.margins = torch.full((num_examples,), float(self.mineps))
        self.margins = self.margins.to(device)

    def _join_search(self, model: nn.Module, pos: Tensor) -> bool:
        """Whether a rank with no S⁺ example must still run AN-PGD (on an empty batch): with SyncBatchNorm
        and bn_mode "reference" the search's train-mode forwards synchronize batch norm over the ranks,
        so every rank makes them while any rank has S⁺ examples (SyncBatchNorm takes empty inputs)."""
        from ..distributed import has_sync_batchnorm

        if self.dist is None or self.bn_mode != "reference" or not has_sync_batchnorm(model):
            return False
        return int(self.dist.all_reduce_sum(torch.tensor([pos.numel()], device=pos.device)).item()) > 0

    def state_dict(self):
        return {"margins": self.margins.detach().cpu().clone()} if self.margins is not None else {}

    def load_state_dict(self, state):
        if "margins" in state:
            self.margins = state["margins"].clone()

    def batch_loss(self, model, x, y, index):
        if self.margins is None:
            raise RuntimeError("MMA.setup(num_examples, device) must be called before training")
        n = x.shape[0]
        logits = model(x)
        positive = soft_logit_margin(logits.detach(), y) < 0  # S⁺: p_y > 1/2
        eps_hat = torch.zeros(n, dtype=x.dtype, device=x.device)
        x_mix = x.clone()
        pos = torch.nonzero(positive).squeeze(1)
        eps_prev = self.margins[index[pos]].to(x.dtype).clamp(min=self.mineps, max=self.max_eps)
        # On several processes every rank joins the draw of the global batch's starts, even with no S⁺ of its own.
        start = self._random_in_ball(x[pos], eps_prev) if self.dist is not None else None
        join = self._join_search(model, pos)  # a collective where it applies: every rank asks
        if pos.numel() or join:
            res = anpgd(
                model, x[pos], y[pos], eps_prev, norm=self.norm, max_eps=self.max_eps, steps=self.steps,
                search_steps=self.search_steps, step_scale=self.step_scale, loss="slm", clip=self.clip,
                precision=self.precision, bn_mode=self.bn_mode, start=start,
            )
            # res.x_adv is x + ε̂·u clipped to the box; the reference trains on the unclipped point.
            x_mix[pos] = res.x_adv if self.clip_training_point else (
                x[pos] + norms.per_example(res.eps, x[pos]) * res.direction)
            eps_hat[pos] = res.eps
        # The memory is global: every rank stores every rank's (index, ε̂) of this step.
        all_index = self.dist.all_gather_rows(index) if self.dist is not None else index
        all_eps_hat = self.dist.all_gather_rows(eps_hat) if self.dist is not None else eps_hat
        self.margins[all_index] = all_eps_hat.to(self.margins.dtype)
        ce_mix = cross_entropy(model(x_mix), y)
        active = ~positive | (eps_hat < self.d_max)  # hinge: margins past d_max add nothing
        loss_mma = (ce_mix * active).sum() / n
        loss_clean = cross_entropy(logits, y).mean()
        loss = (1 - self.clean_weight) * loss_mma + self.clean_weight * loss_clean
        stats = {
            "loss": loss.item(),
            "clean_acc": is_correct(logits, y).float().mean().item(),
            "margin": eps_hat.mean().item(),  # average margin over the batch (0 for S⁻)
            "hinge_dropped": (positive & ~active).float().mean().item(),
            "_margins": all_eps_hat.detach(),  # the global batch's
        }
        return loss, stats


def OMMA(d_max: float, norm: str = "linf", **kwargs) -> MMA:
    """MMA without the clean loss (clean_weight = 0)."""
    return MMA(d_max, norm, clean_weight=0.0, **kwargs)
