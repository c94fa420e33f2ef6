"""Honest robustness evaluation (§6 of the paper notes): robust accuracy, AvgAcc, margin distributions.

- :func:`robust_accuracy` — whitebox PGD with restarts (half cross-entropy,
  half CW by default); an example counts as robust at ε only if the clean
  point and every restart are classified correctly. A point broken at a
  smaller ε stays broken at larger ones (the same perturbation lies in the
  larger ball), so the curve never rises with ε.
- :func:`margin_distribution` — per-example margin estimates and a summary.
- :func:`compare` — several models side by side.

PGD numbers are upper bounds of true robust accuracy: stronger attacks
(AutoAttack) find more adversarial points.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor, nn

from . import norms
from .attacks import STEP_SCALE, pgd_with_margin
from .attacks._common import Clip, check_count, check_dataset, check_positive
from .data import FAMILIES, ArrayDataset, dataset_family
from .losses import get_loss, is_correct
from .margins import MarginResult, UnbrokenWarning, estimate_margins
from .presets import eps_label, eval_step_fraction
from .speed import as_layout, channels_last_model, use_channels_last
from .distributed import Dist, as_dist


@dataclass
class RobustAccuracy:
    """Robust accuracy per ε; ``robust`` (N, len(eps)) says which examples survived each ε."""

    norm: str
    eps: list[float]
    clean: float
    accuracy: list[float]
    robust: Tensor = field(repr=False)
    step_fraction: float | None = None  # the PGD step over ε that was used
    protocol: dict | None = None  # what ran: {"steps", "restarts", "losses" (one per restart), "n", "batch_size"}

    @property
    def avg_rob_acc(self) -> float:
        """Mean robust accuracy over the ε list (area under the accuracy–ε curve)."""
        return sum(self.accuracy) / len(self.accuracy)

    @property
    def avg_acc(self) -> float:
        """Mean over the clean accuracy and the ε list."""
        return (self.clean + sum(self.accuracy)) / (len(self.accuracy) + 1)

    def as_dict(self) -> dict:
        return {"norm": self.norm, "eps": self.eps, "clean": self.clean, "accuracy": self.accuracy,
                "avg_rob_acc": self.avg_rob_acc, "avg_acc": self.avg_acc, "step_fraction": self.step_fraction,
                "protocol": self.protocol}

    @property
    def n(self) -> int:
        """How many examples were evaluated."""
        return int(self.robust.shape[0])

    def interval(self, accuracy: float, level: float = 0.95) -> tuple[float, float]:
        """Clopper–Pearson interval of one of these accuracies (clean or per ε) over :attr:`n` examples."""
        return binomial_ci(round(accuracy * self.n), self.n, level)

    def table(self, per255: bool = False, level: float | None = 0.95) -> str:
        """A plain-text table: one row of accuracies (%) per ε, with its ``level`` binomial confidence
        interval (None: no interval), then the averages. ``per255`` writes ε as k/255."""
        def row(label: str, a: float) -> str:
            line = f"{label:>10}  {100 * a:6.2f}"
            if level is not None:
                lo, hi = self.interval(a, level)
                line += f"  [{100 * lo:5.1f}, {100 * hi:5.1f}]"
            return line

        ci = f"  {round(100 * level)}% interval (n={self.n:,})" if level is not None else ""
        lines = [f"{'eps':>10}  accuracy %{ci}", row("clean", self.clean)]
        lines += [row(eps_label(e, per255), a) for e, a in zip(self.eps, self.accuracy)]
        lines += [f"{'AvgRobAcc':>10}  {100 * self.avg_rob_acc:6.2f}", f"{'AvgAcc':>10}  {100 * self.avg_acc:6.2f}"]
        return "\n".join(lines)


def binomial_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) confidence interval of a proportion: ``successes`` of ``n`` trials.

    An accuracy measured on n test examples is such a proportion; on 300 examples a measured 90%
    means anything from about 86% to 93% at level 0.95. Returns (low, high) in [0, 1].
    """
    from scipy.stats import beta

    check_count(n, "n", 1)
    if not isinstance(successes, int) or not 0 <= successes <= n:
        raise ValueError(f"successes must be an integer in [0, n={n}], got {successes!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    alpha = 1 - level
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


def restart_plan(restarts: int, losses: Sequence[str]) -> list[str]:
    """Split restarts evenly over the losses, in blocks: 10, ("ce", "cw") -> 5 × "ce", 5 × "cw"."""
    check_count(restarts, "restarts", 1)
    if not losses:
        raise ValueError("losses must name at least one loss")
    for name in losses:
        get_loss(name, "losses")
    base, extra = divmod(restarts, len(losses))
    plan: list[str] = []
    for i, name in enumerate(losses):
        plan += [name] * (base + (i < extra))
    return plan


def _check_eps_list(eps_list: Sequence[float]) -> list[float]:
    if isinstance(eps_list, (str, bytes)) or not isinstance(eps_list, Sequence) or not all(
            isinstance(e, (int, float)) and not isinstance(e, bool) for e in eps_list):
        raise ValueError(f"eps_list must be a list of numbers such as [0.1, 0.2, 0.3], got {eps_list!r}")
    eps = [float(e) for e in eps_list]
    if not eps or any(not math.isfinite(e) or e < 0 for e in eps):
        raise ValueError(f"eps_list must be a non-empty list of numbers >= 0, got {list(eps_list)!r}")
    if eps != sorted(eps):
        raise ValueError(f"eps_list must be increasing, got {eps}")
    return eps


def default_step_fraction(data: ArrayDataset, norm: str, steps: int, *, dataset: str | None = None) -> float:
    """The evaluation step size over ε when none is given.

    The paper's rule where the dataset is known (``dataset``, else read from
    ``data.name``: names starting "mnist" or "cifar10"): 1/40 for MNIST ℓ∞ and
    1/4 otherwise at 100 steps, scaled by 100/steps
    (:func:`mma_edu.presets.eval_step_fraction`). Elsewhere (toy data) the
    library's PGD default, 2.5/steps: a run travels 2.5·ε in all.
    """
    norms.check_norm(norm)
    check_count(steps, "steps", 1)
    if dataset is not None and dataset not in FAMILIES:
        raise ValueError(f"dataset must be one of {FAMILIES!r} or None, got {dataset!r}")
    family = dataset or dataset_family(getattr(data, "name", None))
    return eval_step_fraction(family, norm, steps) if family is not None else STEP_SCALE / steps


def check_attack_args(data: ArrayDataset, norm: str, eps_list: Sequence[float], restarts: int,
                      losses: Sequence[str], steps: int, batch_size: int, step_fraction: float | None, *,
                      dataset: str | None = None) -> tuple[list[float], list[str], float]:
    """The checks every fixed-ε PGD evaluation makes before any work (whitebox here, transfer in
    :mod:`mma_edu.transfer`): returns (the ε list, the per-restart losses, the step fraction, its default
    filled in), or raises ValueError naming the bad argument."""
    norms.check_norm(norm)
    check_dataset(data)
    eps = _check_eps_list(eps_list)
    plan = restart_plan(restarts, losses)
    check_count(steps, "steps", 1)
    check_count(batch_size, "batch_size", 1)
    if step_fraction is None:
        step_fraction = default_step_fraction(data, norm, steps, dataset=dataset)
    check_positive(step_fraction, "step_fraction")
    return eps, plan, step_fraction


def robust_accuracy(
    model: nn.Module,
    data: ArrayDataset,
    *,
    norm: str,
    eps_list: Sequence[float],
    steps: int = 100,
    restarts: int = 10,
    losses: Sequence[str] = ("ce", "cw"),
    step_fraction: float | None = None,
    dataset: str | None = None,
    batch_size: int = 500,
    clip: Clip = (0.0, 1.0),
    device: str | torch.device = "auto",
    seed: int = 0,
    skip_broken: bool = True,
    progress: bool = True,
    channels_last: bool | None = None,
    dist: Dist | None = None,
) -> RobustAccuracy:
    """Whitebox PGD robust accuracy at each ε of ``eps_list`` (the paper's protocol by default).

    Args:
        model: module mapping inputs to logits.
        data: an :class:`ArrayDataset` (x (N, ...), y (N,)).
        norm: "linf" or "l2"; eps_list: increasing radii.
        steps: PGD iterations per restart; step size = ``step_fraction``·ε.
        step_fraction: None (default) follows the paper by dataset, see
            :func:`default_step_fraction`: 1/40 for MNIST ℓ∞ and 1/4 otherwise
            at 100 steps, scaled by 100/steps; 2.5/steps where the dataset is
            unknown. The value used is in the result's ``step_fraction``.
        dataset: "mnist" or "cifar10" for that rule; None reads ``data.name``.
        restarts, losses: restarts split evenly over the losses (5 CE + 5 CW).
        skip_broken: attack only examples still robust (same result, much less
            work); False runs every restart on every example at every ε.
        seed: fixes the random starts (the caller's RNG stream is left as it was).
        channels_last: attack in channels-last layout (faster convolutions; see
            :mod:`mma_edu.speed`); None (default) turns it on for conv nets.
        dist: several processes (:mod:`mma_edu.distributed`): the batches are dealt round-robin
            to the ranks and the per-example results combined; every rank returns the whole,
            bitwise the single-process result (a rank replays the random draws of the others'
            batches, attacking none of their examples, so each batch sees the single process's
            random stream). None: one process.

    Returns:
        :class:`RobustAccuracy` with per-ε accuracy, AvgRobAcc, AvgAcc and the
        per-example robust matrix (N, len(eps_list)).
    """
    eps, plan, step_fraction = check_attack_args(data, norm, eps_list, restarts, losses, steps, batch_size,
                                                 step_fraction, dataset=dataset)
    dist = as_dist(dist)
    dev = dist.resolve_device(device)
    model.to(dev)
    n = len(data)
    robust = torch.zeros(n, len(eps), dtype=torch.bool)
    clean = torch.zeros(n, dtype=torch.bool)
    bar = None
    if progress and dist.is_main:
        from tqdm.auto import tqdm

        owned = sum(min(batch_size, n - i) for b, i in enumerate(range(0, n, batch_size)) if dist.owns(b))
        bar = tqdm(total=owned * len(eps), desc=f"PGD {norm}", unit="ex·eps")
    was = model.training
    model.eval()
    cl = use_channels_last(model, channels_last, data.x)
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), channels_last_model(model, cl):
            torch.manual_seed(seed)
            for b, i in enumerate(range(0, n, batch_size)):
                x = as_layout(data.x[i : i + batch_size].to(dev), cl)
                y = data.y[i : i + batch_size].to(dev)
                mine = dist.owns(b)
                with torch.no_grad():
                    alive = is_correct(model(x), y) if mine else torch.zeros(len(x), dtype=torch.bool, device=dev)
                clean[i : i + len(x)] = alive.cpu()
                for k, e in enumerate(eps):
                    # Another rank's batch: replay its random draws only (every example skipped).
                    _, _, broken = pgd_with_margin(
                        model, x, y, e, norm=norm, steps=steps, step_size=step_fraction * e, loss=plan,
                        restarts=len(plan), clip=clip, skip_broken=skip_broken,
                        skip=(~alive if skip_broken else None) if mine else torch.ones_like(alive),
                    )
                    # Broken at a smaller ε means broken here too.
                    alive = alive & ~broken
                    robust[i : i + len(x), k] = alive.cpu()
                    if bar is not None and mine:
                        bar.update(len(x))
    finally:
        model.train(was)
        if bar is not None:
            bar.close()
    clean, robust = dist.combine_disjoint(clean), dist.combine_disjoint(robust)
    return RobustAccuracy(norm=norm, eps=eps, clean=clean.float().mean().item(),
                          accuracy=robust.float().mean(0).tolist(), robust=robust, step_fraction=step_fraction,
                          protocol={"steps": steps, "restarts": len(plan), "losses": plan, "n": n,
                                    "batch_size": batch_size})


def margin_distribution(
    model: nn.Module,
    data: ArrayDataset,
    *,
    norm: str,
    max_eps: float,
    steps: int = 40,
    search_steps: int = 12,
    restarts: int = 1,
    refine: int = 3,
    batch_size: int = 500,
    clip: Clip = (0.0, 1.0),
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    method: str | None = None,
    fmn_steps: int = 100,
    dist: Dist | None = None,
    targets: int | str = 0,
    fab_steps: int = 100,
) -> MarginResult:
    """Per-example margin estimates (:func:`mma_edu.margins.estimate_margins`) over a dataset.

    ``method`` None (default) is "best" for ℓ2 — the shorter of AN-PGD's and
    FMN's verified perturbations per example, since AN-PGD alone overestimates
    ℓ2 margins of ℓ∞-trained models — and "anpgd" for ℓ∞ (where the two
    agree on the zoo). ``result.found_by_counts()`` says which estimator found
    each margin. ``targets="all"`` adds one targeted AN-PGD search per rival
    class (about 2.5x the time): the setting for margins *measured* against
    a claim on robust models, where the untargeted search's 95th percentile
    is 1.3–1.5x the exact margin (see :func:`~mma_edu.margins.estimate_margins`).
    Examples left unbroken at ``max_eps`` raise an
    :class:`~mma_edu.margins.UnbrokenWarning` and show in the result's repr.

    ``result.summary((0.1, 0.2))`` gives mean, median, quartiles and the
    fraction of examples with margin above each threshold. ``dist``: several
    processes share the batches, as in :func:`robust_accuracy` (bitwise the
    single-process result on every rank).
    """
    norms.check_norm(norm)
    if method is None:
        method = "best" if norm == "l2" else "anpgd"
    check_dataset(data)
    check_count(batch_size, "batch_size", 1)
    dist = as_dist(dist)
    dev = dist.resolve_device(device)
    model.to(dev)
    n = len(data)
    margin = torch.zeros(n, dtype=data.x.dtype)
    found = torch.zeros(n, dtype=torch.bool)
    x_adv = torch.zeros_like(data.x)
    found_by = torch.zeros(n, dtype=torch.int32)  # int8 once combined (all-reduce backends differ on int8)
    bar = None
    if progress and dist.is_main:
        from tqdm.auto import tqdm

        owned = sum(min(batch_size, n - i) for b, i in enumerate(range(0, n, batch_size)) if dist.owns(b))
        bar = tqdm(total=owned, desc=f"margins {norm}", unit="ex")
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            for b, i in enumerate(range(0, n, batch_size)):
                x, y = data.x[i : i + batch_size].to(dev), data.y[i : i + batch_size].to(dev)
                if not dist.owns(b):
                    # Another rank's batch: the same search without PGD or bisection steps draws the
                    # same random starts (their number depends only on which examples are correct).
                    # FMN and FAB draw their restarts' random starts once per restart, whatever their step counts: one step
                    # replays them.
                    estimate_margins(model, x, y, norm=norm, max_eps=max_eps, steps=0, search_steps=0,
                                     restarts=restarts, refine=refine, clip=clip, method=method, fmn_steps=1,
                                     targets=targets, fab_steps=1)
                    continue
                r = estimate_margins(model, x, y, norm=norm, max_eps=max_eps, steps=steps, search_steps=search_steps,
                                     restarts=restarts, refine=refine, clip=clip, method=method, fmn_steps=fmn_steps,
                                     targets=targets, fab_steps=fab_steps)
                margin[i : i + len(x)], found[i : i + len(x)], x_adv[i : i + len(x)] = (
                    r.margin.cpu(), r.found.cpu(), r.x_adv.cpu())
                found_by[i : i + len(x)] = r.found_by.cpu().to(torch.int32)
                if bar is not None:
                    bar.update(len(x))
    finally:
        if bar is not None:
            bar.close()
    result = MarginResult(dist.combine_disjoint(margin), dist.combine_disjoint(found), dist.combine_disjoint(x_adv),
                          found_by=dist.combine_disjoint(found_by).to(torch.int8), max_eps=float(max_eps))
    unbroken = int(result.unbroken.sum())
    if unbroken and dist.is_main:
        warnings.warn(f"{unbroken} of {len(data)} examples were not broken below max_eps={max_eps:g}: their margins "
                      "are reported as max_eps but are unknown; raise max_eps or use "
                      "mma_edu.margins.widen_until_broken", UnbrokenWarning, stacklevel=2)
    return result


@dataclass
class Comparison:
    """Robust accuracy of several models on the same data and ε list."""

    results: dict[str, RobustAccuracy]

    def rows(self) -> list[dict]:
        out = []
        for name, r in self.results.items():
            row = {"model": name, "clean": 100 * r.clean}
            row.update({f"{e:.4g}": 100 * a for e, a in zip(r.eps, r.accuracy)})
            row.update({"AvgRobAcc": 100 * r.avg_rob_acc, "AvgAcc": 100 * r.avg_acc})
            out.append(row)
        return out

    def table(self) -> str:
        """A plain-text table in %, one row per model (the layout of the paper's tables)."""
        rows = self.rows()
        keys = list(rows[0])
        width = max(len(str(r["model"])) for r in rows + [{"model": "model"}])
        head = f"{'model':<{width}} " + " ".join(f"{k:>9}" for k in keys[1:])
        body = [f"{r['model']:<{width}} " + " ".join(f"{r[k]:9.2f}" for k in keys[1:]) for r in rows]
        return "\n".join([head] + body)


def compare(models: dict[str, nn.Module], data: ArrayDataset, *, norm: str, eps_list: Sequence[float],
            **kwargs) -> Comparison:
    """:func:`robust_accuracy` for each named model, same seed and settings."""
    if not models:
        raise ValueError("models must map at least one name to a model")
    return Comparison({name: robust_accuracy(m, data, norm=norm, eps_list=eps_list, **kwargs)
                       for name, m in models.items()})
