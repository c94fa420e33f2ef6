"""Input checks and small helpers shared by the attacks."""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from .. import norms
from ..losses import decides_otherwise, logit_margin

Clip = tuple[float, float] | None


def as_per_example(value: float | Tensor, x: Tensor, name: str, *, positive: bool = False) -> Tensor:
    """A float or a (N,) tensor -> a (N,) tensor on x's device and dtype, checked >= 0 (or > 0)."""
    n = x.shape[0]
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(n).clone()
    elif t.shape != (n,):
        raise ValueError(f"{name} must be a float or a tensor of shape ({n},) (one per example), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    if positive and (t <= 0).any():
        raise ValueError(f"{name} must be > 0, got min {t.min().item():g}")
    if (t < 0).any():
        raise ValueError(f"{name} must be >= 0, got min {t.min().item():g}")
    return t


def check_finite(x: Tensor, name: str) -> None:
    """NaN or inf anywhere in ``x`` is a ValueError naming it (a NaN pixel would pass every other check)."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must hold finite numbers, got {bad} NaN or inf value(s) of {x.numel()}")


def check_not_empty(n: int, name: str) -> None:
    if n == 0:
        raise ValueError(f"{name} is empty (0 examples): nothing to compute")


def check_dataset(data, name: str = "data") -> None:
    """An :class:`~mma_edu.data.ArrayDataset` with at least one example and finite inputs."""
    from ..data import ArrayDataset

    if not isinstance(data, ArrayDataset):
        raise ValueError(f"{name} must be an mma_edu.data.ArrayDataset (x (N, ...), y (N,)), got {type(data).__name__}")
    check_not_empty(len(data), name)
    check_finite(data.x, f"{name}.x")


def check_batch(x: Tensor, y: Tensor, clip: Clip) -> None:
    """Check x (N, ...), integer labels y (N,) and the box ``clip`` = (low, high) or None."""
    if not torch.is_tensor(x) or not torch.is_floating_point(x):
        raise ValueError("x must be a floating-point tensor of shape (N, ...)")
    check_finite(x, "x")
    if not torch.is_tensor(y) or y.dim() != 1 or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError("y must be an integer tensor of shape (N,)")
    if x.dim() < 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x (N, ...) and y (N,) must have the same N, got x {tuple(x.shape)} and y {tuple(y.shape)}")
    if (y < 0).any():
        raise ValueError(f"y must hold class indices >= 0, got min {int(y.min())}")
    check_clip(clip)
    if clip is not None:
        if x.numel() and (x.min() < clip[0] - 1e-6 or x.max() > clip[1] + 1e-6):
            raise ValueError(
                f"x must lie in the box clip={clip!r}, got values in [{x.min().item():g}, {x.max().item():g}]; "
                "pass clip=None for unbounded inputs"
            )


def check_labels(logits: Tensor, y: Tensor) -> None:
    """Labels must index the model's classes."""
    if logits.dim() != 2:
        raise ValueError(f"the model must return logits of shape (N, C), got {tuple(logits.shape)}")
    if y.numel() and int(y.max()) >= logits.shape[1]:
        raise ValueError(f"y must be < the number of classes ({logits.shape[1]}), got max {int(y.max())}")


def check_clip(clip: Clip) -> Clip:
    """``clip`` must be None or a pair of numbers (low, high) with low < high (NaN never is)."""
    try:
        ok = clip is None or (len(clip) == 2 and all(map(_is_real, clip)) and clip[0] < clip[1])
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"clip must be (low, high) with low < high, or None, got {clip!r}")
    return clip


def _is_real(value) -> bool:
    # bool is an int subclass, but True as a step count or a radius is a bug, not a number.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_count(value: int, name: str, minimum: int) -> int:
    """An integer >= ``minimum`` (bools and floats such as 2.5 or 3.0 are refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(value: float, name: str) -> float:
    """A finite number > 0 (NaN, inf, bools and strings are refused)."""
    if not (_is_real(value) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number (finite, > 0), got {value!r}")
    return value


def check_in_range(value: float, name: str, low: float, high: float, *, include_high: bool = True) -> float:
    """A finite number in [low, high] (or [low, high) with ``include_high=False``); NaN is refused."""
    inside = _is_real(value) and low <= value and (value <= high if include_high else value < high)
    if not inside:
        interval = f"[{low:g}, {high:g}" + ("]" if include_high else ")")
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return value


def check_choice(value: str, name: str, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)!r}, got {value!r}")
    return value


def to_box(x: Tensor, clip: Clip) -> Tensor:
    """Clamp into the valid input box (no-op for clip=None)."""
    return x if clip is None else x.clamp(clip[0], clip[1])


@contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    was_training = model.training
    model.train(training)
    try:
        yield model
    finally:
        model.train(was_training)


def eval_mode(model: nn.Module):
    """Run attacks in eval mode (fixed batch-norm statistics) and restore the mode afterwards."""
    return _mode(model, False)


def train_mode(model: nn.Module):
    """Run a block in train mode (batch norm uses, and updates its running statistics from, the batch)."""
    return _mode(model, True)


def restart_losses(loss: str | Sequence[str], restarts: int) -> list[str]:
    """One loss name per restart: ``"ce"`` with 3 restarts -> ["ce", "ce", "ce"].

    A sequence of names gives one restart per name (``restarts`` must then be
    1 or its length).
    """
    check_count(restarts, "restarts", 1)
    if isinstance(loss, str):
        return [loss] * restarts
    names = list(loss)
    if not names or restarts not in (1, len(names)):
        raise ValueError(f"loss as a list needs one name per restart, got {len(names)} names and restarts={restarts}")
    return names


def shorten(model: nn.Module, x: Tensor, y: Tensor, delta: Tensor, search_steps: int, clip: Clip) -> Tensor:
    """Bisection of t ∈ [0, 1] on x + t·δ, where x + δ is adversarial: the shortest adversarial point seen (N, ...).

    The box is convex and holds x and x + δ, so every x + t·δ lies in it.
    """
    lo = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    hi = torch.ones_like(lo)
    with torch.no_grad():
        for _ in range(search_steps):
            mid = (lo + hi) / 2
            adv = decides_otherwise(model(to_box(x + norms.per_example(mid, x) * delta, clip)), y)
            hi = torch.where(adv, mid, hi)
            lo = torch.where(adv, lo, mid)
    return to_box(x + norms.per_example(hi, x) * delta, clip)


def past_rounding(model: nn.Module, x: Tensor, y: Tensor, adv: Tensor, clip: Clip) -> tuple[Tensor, Tensor]:
    """Points ``adv`` (N, ...) made to change the decision beyond rounding: (points, verified (N,) bool).

    Attacks that stop a hair past the boundary (FAB, CW) often stop within the rounding slack of
    :func:`mma_edu.losses.decides_otherwise`. Each point that fails it (or leaves the box) is lengthened along
    its own perturbation by 1e-4, 1e-3, then 1e-2 of it (clipped into the box); the first that passes is kept.
    """

    def verified(p: Tensor) -> Tensor:
        with torch.no_grad():
            inside = torch.ones(p.shape[0], dtype=torch.bool, device=p.device) if clip is None else (
                (p.flatten(1).amin(1) >= clip[0]) & (p.flatten(1).amax(1) <= clip[1]))
            return decides_otherwise(model(p), y) & inside

    ok = verified(adv)
    for stretch in (1e-4, 1e-3, 1e-2):
        if ok.all():
            break
        longer = to_box(x + (1 + stretch) * (adv - x), clip)
        now = ~ok & verified(longer)
        adv = torch.where(norms.per_example(now, adv), longer, adv)
        ok = ok | now
    return adv, ok


def minimum_norm_search(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    run: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]],
    start: Callable[[int, Tensor, Tensor], Tensor],
    *,
    norm: str,
    restarts: int,
    search_steps: int,
    clip: Clip,
    seed: int | None,
    lengthen: bool = False,
) -> tuple[Tensor, Tensor]:
    """The frame the minimum-norm attacks (FMN, FAB) share: (shortest verified point (N, ...), its length (N,)).

    In eval mode and, with ``seed``, on a forked RNG: for the correctly classified examples xc (n, ...), each
    restart r runs ``run(xc, yc, start(r, xc, length))`` (``length`` (n,): the shortest found so far, inf where
    none) and keeps per example the shorter candidate; with ``lengthen``, points within rounding of the boundary
    are first lengthened past it (:func:`past_rounding`, or dropped); then ``search_steps`` of bisection along
    x → x_adv, and a last forward pass of its own for every point reported. Length 0 (and x) where x is
    misclassified, inf (and x) where nothing was found.
    """
    x = x.detach()
    devices = [x.device] if x.device.type == "cuda" else []
    with eval_mode(model), torch.random.fork_rng(devices=devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            logits = model(x)
            check_labels(logits, y)
            correct = logit_margin(logits, y) < 0
        best = x.clone()
        length = torch.where(correct, torch.inf, 0.0).to(x.dtype)
        idx = torch.nonzero(correct).squeeze(1)
        if idx.numel():
            xc, yc = x[idx], y[idx]
            for r in range(restarts):
                cand, cand_len = run(xc, yc, start(r, xc, length[idx]))
                better = cand_len < length[idx]
                best[idx[better]] = cand[better]
                length[idx[better]] = cand_len[better]
            found = torch.isfinite(length[idx])
            if found.any() and lengthen:
                sub = torch.nonzero(found).squeeze(1)
                past, ok = past_rounding(model, xc[sub], yc[sub], best[idx[sub]], clip)
                best[idx[sub]] = torch.where(norms.per_example(ok, past), past, xc[sub])
                length[idx[sub]] = torch.where(ok, norms.norm_of(past - xc[sub], norm), torch.inf)
                found = torch.isfinite(length[idx])
            if found.any() and search_steps:
                sub = torch.nonzero(found).squeeze(1)
                short = shorten(model, xc[sub], yc[sub], best[idx[sub]] - xc[sub], search_steps, clip)
                best[idx[sub]] = short
                length[idx[sub]] = norms.norm_of(short - xc[sub], norm)
            # Every point reported is checked once more in a forward pass of its own.
            with torch.no_grad():
                lost = torch.isfinite(length[idx]) & ~decides_otherwise(model(best[idx]), yc)
            best[idx[lost]] = xc[lost]
            length[idx[lost]] = torch.inf
    return best, length
