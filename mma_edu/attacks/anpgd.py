"""AN-PGD: adaptive-norm PGD, the search for each example's shortest successful perturbation.

§3 of the paper notes. For a batch with remembered radii ε_prev (N,):

1. PGD at the per-example radius ε_prev, step 2.5·ε_prev/steps, maximizing the
   soft logit margin (a random start in the ball);
2. the direction u = (x_adv − x) / ε_prev, so ‖u‖ ≤ 1;
3. bisection of the scale t ∈ [0, max_eps] along x + t·u (clipped to the box),
   starting at t = ε_prev with the loss PGD ended on: a point still correct
   (search loss < 0) raises the lower end, a wrong one lowers the upper end;
   the estimate ε̂ is the last midpoint;
4. the perturbed point x + ε̂·u, clipped to the box.

Besides the paper's ε̂ the result reports the bracket [lower, upper] and
whether any point along u was adversarial (``found``); ``upper`` and
``found`` count only points adversarial beyond rounding (see :func:`bisect`),
so x + upper·u changes the decision in any forward pass of its own.

Batch norm (``bn_mode``): PGD always runs in eval mode. With "eval" (the
default) so does everything else; with "reference" the check at the PGD point
and the bisection forwards run in train mode, as in the authors' MMA training
(§4 of the notes): batch norm then normalizes with this batch's statistics
and updates its running statistics once per forward (1 + search_steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import norms
from ..losses import beyond_rounding, get_loss, targeted_margin
from ..speed import attack_autocast, check_precision
from ._common import (
    Clip,
    as_per_example,
    check_batch,
    check_choice,
    check_count,
    check_labels,
    eval_mode,
    to_box,
    train_mode,
)
from .pgd import STEP_SCALE, perturb

# Where AN-PGD's search forwards run: "eval" (all in eval mode) or "reference"
# (the check at the PGD point and the bisection in train mode, as the authors' training).
BN_MODES = ("eval", "reference")


@dataclass
class ANPGDResult:
    """Output of :func:`anpgd`; every field has one row per example."""

    x_adv: Tensor  # (N, ...) x + eps·u, clipped to the box: the MMA training point
    eps: Tensor  # (N,) the estimate ε̂: the last bisection midpoint (as in the paper)
    found: Tensor  # (N,) bool: a point along u had search loss > the rounding slack
    lower: Tensor  # (N,) largest scale seen with search loss < 0 (0 if none)
    upper: Tensor  # (N,) smallest scale seen with search loss > the rounding slack (max_eps if none)
    direction: Tensor  # (N, ...) u = (x_pgd − x) / eps_init, ‖u‖ ≤ 1


def bisect(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    direction: Tensor,
    t: Tensor,
    value: Tensor,
    max_eps: Tensor,
    *,
    search_steps: int,
    search_fn,
    clip: Clip,
    trace: list | None = None,
    logits: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Bisection on the scale along ``direction``; returns (estimate, found, lower, upper), each (N,).

    t (N,) is the first scale, ``value`` (N,) the search loss there (and
    ``logits`` (N, C) the logits it came from; None: value is trusted as it
    is); each step tightens the bracket with the last value and evaluates its
    midpoint (one forward pass per step). ``trace``, if a list, receives a
    dict per step with the scale tried, its search loss and the bracket after it.

    The bisection itself follows the paper (search loss ≥ 0 lowers the upper
    end, so the estimate — the last midpoint — is the reference's, bit for
    bit). The *reported* bracket is stricter: ``upper`` moves only to scales
    whose search loss exceeds the rounding slack
    (:func:`mma_edu.losses.beyond_rounding`), and ``found`` says one did. A
    scale within rounding of the boundary (loss in [0, slack]) is then in
    neither end: the bracket [lower, upper] stays true in any other forward
    pass of those points.
    """
    lower = torch.zeros_like(t)
    path_upper = max_eps.clone()  # the paper's upper end, which picks the midpoints
    upper = max_eps.clone()  # the shortest scale verified to succeed
    found = torch.zeros_like(t, dtype=torch.bool)

    def tighten(t: Tensor, value: Tensor, logits: Tensor | None) -> None:
        nonlocal lower, upper, path_upper, found
        adversarial = value >= 0
        verified = adversarial if logits is None else beyond_rounding(value, logits)
        found = found | verified
        lower = torch.where(adversarial, lower, torch.maximum(lower, t))
        path_upper = torch.where(adversarial, torch.minimum(path_upper, t), path_upper)
        upper = torch.where(verified, torch.minimum(upper, t), upper)
        if trace is not None:
            trace.append({"t": t.clone(), "value": value.clone(), "lower": lower.clone(), "upper": upper.clone()})

    for _ in range(search_steps):
        tighten(t, value, logits)
        t = (lower + path_upper) / 2
        logits = model(to_box(x + norms.per_example(t, x) * direction, clip))
        value = search_fn(logits, y)
    # The last evaluation narrows the reported bracket; the estimate stays the
    # midpoint the paper uses.
    tighten(t, value, logits)
    return t, found, lower, upper


def anpgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps_init: float | Tensor,
    *,
    norm: str,
    max_eps: float | Tensor,
    steps: int = 40,
    search_steps: int = 10,
    step_scale: float = STEP_SCALE,
    loss: str = "slm",
    clip: Clip = (0.0, 1.0),
    start: Tensor | None = None,
    trace: dict | None = None,
    precision: str = "fp32",
    bn_mode: str = "eval",
    target: Tensor | None = None,
) -> ANPGDResult:
    """AN-PGD (§3 of the paper notes): per-example PGD at ``eps_init``, then bisection to the boundary.

    Args:
        model: module mapping x to logits (N, C); run in eval mode, mode restored after.
        x: inputs (N, ...); y: labels (N,).
        eps_init: ε_prev, the radius PGD runs at: float or (N,), in (0, max_eps].
        norm: "linf" or "l2".
        max_eps: upper end of the bisection (MMA uses 1.05·d_max): float or (N,).
        steps: PGD iterations; search_steps: bisection steps (forward passes).
        step_scale: PGD step size is step_scale·eps_init/steps.
        loss: loss PGD maximizes and the bisection tests (< 0 means still
            correct): "slm" in training, "lm" at test time.
        clip: valid box (low, high) or None.
        start: PGD's starting perturbation (N, ...), projected into the ball;
            default a uniform random point of the ball, as in the paper.
        trace: if a dict, receives "pgd" (the perturbation after each PGD
            step) and "bisect" (scale, loss and bracket after each test) — for
            step-by-step views; costs memory, not passes.
        precision: "fp32", or "bf16" to run the PGD iterations (the direction
            search) under bfloat16 autocast; the bisection stays float32
            (see :mod:`mma_edu.speed`).
        bn_mode: "eval" runs everything in eval mode; "reference" runs the
            check at the PGD point and the bisection forwards in train mode
            (batch norm uses and updates this batch's statistics, as the
            authors' MMA training does); PGD is in eval mode either way. No
            forward builds an autograd graph for the parameters. The model's
            mode is restored afterwards.
        target: None (the paper's AN-PGD), or a class per example (N,)
            long: PGD then maximizes f_target − f_y instead of ``loss`` (a
            targeted direction search), while the bisection still tests
            ``loss`` (any class that wins counts). Used by
            :func:`mma_edu.margins.estimate_margins` (``targets``) to reach
            the class nearest in input space, which the untargeted loss can
            miss.

    Returns:
        :class:`ANPGDResult` with ``x_adv`` (N, ...), ``eps`` (N,), ``found`` (N,), bracket.
    """
    norms.check_norm(norm)
    check_batch(x, y, clip)
    check_count(steps, "steps", 0)
    check_count(search_steps, "search_steps", 0)
    if not step_scale > 0:
        raise ValueError(f"step_scale must be > 0, got {step_scale!r}")
    search_fn = get_loss(loss)
    pgd_fn = search_fn
    if target is not None:
        if not torch.is_tensor(target) or target.shape != y.shape or target.dtype != torch.long:
            raise ValueError(f"target must be a long tensor of shape {tuple(y.shape)} (one class per example)")
        if (target == y).any():
            raise ValueError("target must differ from y for every example")
        pgd_fn = targeted_margin(target)
    check_precision(precision)
    check_choice(bn_mode, "bn_mode", BN_MODES)
    eps0 = as_per_example(eps_init, x, "eps_init", positive=True)
    top = as_per_example(max_eps, x, "max_eps", positive=True)
    if (eps0 > top).any():
        raise ValueError("eps_init must be <= max_eps for every example")
    x = x.detach()
    with torch.no_grad():
        with eval_mode(model):
            if x.shape[0]:
                check_labels(model(x[:1]), y[:1])
            if start is None:
                start = norms.random_in_ball(x, eps0, norm)
            elif start.shape != x.shape:
                raise ValueError(f"start must have the shape of x {tuple(x.shape)}, got {tuple(start.shape)}")
            with attack_autocast(precision, x.device):
                x_pgd = perturb(
                    model, x, y, eps0, norm=norm, steps=steps, step_size=step_scale * eps0 / max(steps, 1),
                    loss_fn=pgd_fn, clip=clip, delta_init=start,
                    trace=trace.setdefault("pgd", []) if trace is not None else None,
                )
        direction = (x_pgd - x) / norms.per_example(eps0, x)
        # The reference runs the search in train mode: batch norm then sees (and
        # records) these perturbed points; no_grad keeps it from building graphs.
        with train_mode(model) if bn_mode == "reference" else eval_mode(model):
            logits = model(x_pgd)
            value = search_fn(logits, y)
            eps, found, lower, upper = bisect(
                model, x, y, direction, eps0, value, top, search_steps=search_steps, search_fn=search_fn, clip=clip,
                trace=trace.setdefault("bisect", []) if trace is not None else None, logits=logits,
            )
        x_adv = to_box(x + norms.per_example(eps, x) * direction, clip)
    return ANPGDResult(x_adv=x_adv, eps=eps, found=found, lower=lower, upper=upper, direction=direction)
