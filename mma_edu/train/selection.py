"""Model selection as the reference does it: the mean margin of a held-out set (§3 of the notes, end).

The authors keep the checkpoint with the highest mean validation margin, not
the best robust accuracy. Their margin estimate is a test-time AN-PGD search:

1. PGD at the fixed test ε of the dataset and norm (:data:`REFERENCE_VALIDATION`:
   ℓ∞ MNIST 0.3 step 0.01, ℓ2 MNIST 2.0 step 0.125, ℓ∞ CIFAR10 8/255 step
   2/255, ℓ2 CIFAR10 1.0 step 0.25), random start, maximizing the *soft*
   logit margin, 40 iterations on MNIST and 10 on CIFAR10;
2. the direction u = (x_pgd − x) / ε, so ‖u‖ ≤ 1;
3. bisection on the scale t ∈ [0, max_eps] along x + t·u (clipped to the
   box) with the logit margin, started at t = max_eps/2, 10 steps; the
   estimate is the last midpoint.

:func:`reference_validation_margin` runs exactly that on every example given
(the reference searches all 5,000 held-out images, misclassified ones too:
their estimate is near 0 rather than exactly 0) and averages.

One detail of the reference that the notes leave out: the first bisection step
uses the loss *at the PGD point* (scale ε) as if it had been measured at
max_eps/2. Where ε ≠ max_eps/2 that first step can put the bracket on the wrong
side of the boundary. ``check_start=True`` measures the loss at max_eps/2
instead (one more forward pass); the default reproduces the reference.

This is a selection criterion, not the course's margin estimator:
:func:`mma_edu.margins.estimate_margins` checks its points and refines them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import norms
from ..attacks import bisect, perturb
from ..attacks._common import (
    Clip,
    as_per_example,
    check_batch,
    check_clip,
    check_count,
    check_labels,
    check_positive,
    eval_mode,
    to_box,
)
from ..data import FAMILIES, ArrayDataset, dataset_family
from ..losses import logit_margin, soft_logit_margin
from ..distributed import Dist, as_dist


@dataclass(frozen=True)
class ReferenceSearch:
    """The PGD part of the reference's validation search for one dataset and norm."""

    eps: float  # PGD radius: the test ε
    step_size: float  # PGD step (fixed, not scaled by ε)
    pgd_steps: int  # PGD iterations


# The reference's test-time settings (§3 of the notes), keyed by (dataset, norm).
REFERENCE_VALIDATION: dict[tuple[str, str], ReferenceSearch] = {
    ("mnist", "linf"): ReferenceSearch(0.3, 0.01, 40),
    ("mnist", "l2"): ReferenceSearch(2.0, 0.125, 40),
    ("cifar10", "linf"): ReferenceSearch(8 / 255, 2 / 255, 10),
    ("cifar10", "l2"): ReferenceSearch(1.0, 0.25, 10),
}
SEARCH_STEPS = 10  # bisection steps, as in training


@dataclass
class ValidationMargin:
    """Result of :func:`reference_validation_margin`."""

    mean: float  # the selection score: mean of ``margins``
    margins: Tensor  # (N,) per-example estimates (the last bisection midpoints), on the CPU
    record: dict  # how the estimate was made, for histories: {"estimator": "reference", "images": N, ...}


def _search_batch(
    model: nn.Module, x: Tensor, y: Tensor, *, norm: str, setting: ReferenceSearch, max_eps: float,
    search_steps: int, clip: Clip, check_start: bool,
) -> Tensor:
    """The reference's search on one batch, model in eval mode: (N, ...), (N,) -> estimates (N,)."""
    eps = as_per_example(setting.eps, x, "eps", positive=True)
    top = as_per_example(max_eps, x, "max_eps", positive=True)
    step = as_per_example(setting.step_size, x, "step_size")
    x_pgd = perturb(
        model, x, y, eps, norm=norm, steps=setting.pgd_steps, step_size=step, loss_fn=soft_logit_margin, clip=clip,
        delta_init=norms.random_in_ball(x, eps, norm),
    )
    direction = (x_pgd - x) / norms.per_example(eps, x)
    t0 = top / 2
    # The reference starts the bracket at max_eps/2 with the loss measured at the PGD point (scale ε).
    probe = to_box(x + norms.per_example(t0, x) * direction, clip) if check_start else x_pgd
    value = logit_margin(model(probe), y)
    estimate, _, _, _ = bisect(
        model, x, y, direction, t0, value, top, search_steps=search_steps, search_fn=logit_margin, clip=clip,
    )
    return estimate


def reference_validation_margin(
    model: nn.Module,
    data: ArrayDataset,
    *,
    norm: str,
    max_eps: float,
    dataset: str | None = None,
    eps: float | None = None,
    step_size: float | None = None,
    pgd_steps: int | None = None,
    search_steps: int = SEARCH_STEPS,
    check_start: bool = False,
    size: int | None = None,
    batch_size: int = 500,
    clip: Clip = (0.0, 1.0),
    device: str | torch.device = "auto",
    seed: int | None = 0,
    dist: Dist | None = None,
) -> ValidationMargin:
    """The reference's model-selection score: the mean test-time AN-PGD margin estimate over ``data``.

    Args:
        model: module mapping inputs to logits; run in eval mode (mode restored).
        data: the held-out examples (the reference holds out 5,000 training images).
        norm: "linf" or "l2".
        max_eps: upper end of the bisection; the reference uses its training
            run's 1.05·d_max (``MMA.max_eps``).
        dataset: "mnist" or "cifar10", choosing ε, step and PGD iterations from
            :data:`REFERENCE_VALIDATION`; None reads it from ``data.name``.
        eps, step_size, pgd_steps: override those settings (all three make
            ``dataset`` unnecessary, e.g. for toy data).
        search_steps: bisection steps (10 in the reference).
        check_start: measure the loss at max_eps/2 before bisecting instead of
            reusing the PGD point's (see the module docstring); False is the reference.
        size: search only the first ``size`` examples (None: all, as the reference).
        batch_size: examples searched at once.
        clip: the valid input box, or None.
        device: "auto", "cpu", "cuda", ...
        seed: fixes the PGD random starts (the caller's RNG stream is left as
            it was); None draws from the caller's stream.
        dist: several processes (:mod:`mma_edu.distributed`): batches dealt round-robin, the
            margins combined; bitwise the single-process result on every rank.

    Returns:
        :class:`ValidationMargin` — ``mean``, ``margins`` (N,) and ``record``
        ``{"estimator": "reference", "images": N, "eps": ..., "pgd_steps": ..., ...}``.
    """
    norms.check_norm(norm)
    check_positive(max_eps, "max_eps")
    check_count(search_steps, "search_steps", 1)
    check_count(batch_size, "batch_size", 1)
    check_clip(clip)
    if not isinstance(check_start, bool):
        raise ValueError(f"check_start must be True or False, got {check_start!r}")
    if not isinstance(data, ArrayDataset):
        raise ValueError("data must be an mma_edu.data.ArrayDataset (see mma_edu.data)")
    if dataset is not None and dataset not in FAMILIES:
        raise ValueError(f"dataset must be one of {FAMILIES!r} or None, got {dataset!r}")
    family = dataset or dataset_family(data.name)
    if family is None and None in (eps, step_size, pgd_steps):
        raise ValueError(
            f"dataset: cannot tell the dataset from data.name={data.name!r}; pass dataset='mnist' or "
            "'cifar10', or all of eps=, step_size= and pgd_steps="
        )
    base = REFERENCE_VALIDATION[(family, norm)] if family is not None else ReferenceSearch(math.nan, math.nan, 0)
    setting = ReferenceSearch(
        eps=check_positive(base.eps if eps is None else eps, "eps"),
        step_size=check_positive(base.step_size if step_size is None else step_size, "step_size"),
        pgd_steps=check_count(base.pgd_steps if pgd_steps is None else pgd_steps, "pgd_steps", 1),
    )
    if size is not None:
        check_count(size, "size", 1)
    n = len(data) if size is None else min(size, len(data))
    dist = as_dist(dist)
    dev = dist.resolve_device(device)
    model.to(dev)
    margins = torch.zeros(n, dtype=data.x.dtype)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else [], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        with eval_mode(model), torch.no_grad():
            for b, i in enumerate(range(0, n, batch_size)):
                x = data.x[i : min(i + batch_size, n)].to(dev)
                y = data.y[i : min(i + batch_size, n)].to(dev)
                check_batch(x, y, clip)
                if not dist.owns(b):  # another rank's batch: only its one random draw, for the stream
                    norms.random_in_ball(x, as_per_example(setting.eps, x, "eps", positive=True), norm)
                    continue
                check_labels(model(x[:1]), y[:1])
                margins[i : i + len(x)] = _search_batch(
                    model, x, y, norm=norm, setting=setting, max_eps=max_eps, search_steps=search_steps, clip=clip,
                    check_start=check_start).cpu()
    margins = dist.combine_disjoint(margins)
    record = {
        "estimator": "reference", "images": n, "dataset": family, "norm": norm, "eps": setting.eps,
        "step_size": setting.step_size, "pgd_steps": setting.pgd_steps, "pgd_loss": "slm", "search_loss": "lm",
        "search_steps": search_steps, "max_eps": float(max_eps),
        "start": "max_eps/2, checked" if check_start else "max_eps/2 with the PGD point's loss (reference)",
        "seed": seed,
    }
    mean = margins.double().mean().item() if n else math.nan
    return ValidationMargin(mean=mean, margins=margins, record=record)
