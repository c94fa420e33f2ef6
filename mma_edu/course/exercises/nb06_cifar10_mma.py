"""Notebook 6 (CIFAR10 MMA): ε in pixel units, and per-image standardization."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ._common import _close, _correct, _number, _pending, _wrong


def check_eps_units(linf: float | None, l2: float | None) -> bool | None:
    """Notebook 6, exercise 1: ε = 8/255 as a pixel change, and the ℓ2 length of changing every value of a
    3×32×32 image by that much."""
    if linf is None or l2 is None:
        return _pending("check_eps_units")
    linf, l2 = _number(linf, "linf"), _number(l2, "l2")
    n = 3 * 32 * 32
    eps = 8 / 255
    if not _close(linf, eps, rel=1e-3, abs_=1e-5):
        hint = ("grey levels run from 0 to 255: 255 steps of 1/255, not 256" if _close(linf, 8 / 256, 1e-3, 1e-5)
                else "8 grey levels of 1/255 each")
        _wrong(f"linf = {linf:.5g}, should be 8/255 = {eps:.5g}: {hint}.")
    if not _close(l2, eps * math.sqrt(n), rel=1e-3, abs_=1e-4):
        if _close(l2, eps * math.sqrt(32 * 32), 1e-3, 1e-4):
            hint = "a CIFAR10 image has three channels: n = 3·32·32 = 3072 values"
        elif _close(l2, eps * n, 1e-3, 1e-4):
            hint = "that is the ℓ1 length; ℓ2 is the square root of the sum of squares, ε·√n"
        elif _close(l2, eps, 1e-3, 1e-5):
            hint = "that is the ℓ∞ length; ℓ2 adds up all n = 3072 squared changes: ε·√n"
        else:
            hint = "‖δ‖₂ = √(n·ε²) = ε·√n with n = 3072"
        _wrong(f"l2 = {l2:.4g}, should be {eps * math.sqrt(n):.4g}: {hint}.")
    return _correct(f"8/255 = {eps:.4f} per value; ℓ2 length ε·√3072 = {eps * math.sqrt(n):.3f}: the corner "
                    "of a small ℓ∞ ball lies far out in ℓ2, so ℓ∞ and ℓ2 radii are not comparable numbers.")


def check_standardization(fn: Callable | None, seed: int = 0) -> bool | None:
    """``fn(x (N, C, H, W)) -> (N, C, H, W)``: per-image standardization as the reference computes it, on
    random images (from ``seed``) and a constant one."""
    if fn is None:
        return _pending("check_standardization")
    from ...models import PerImageStandardization

    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 3, 8, 8, generator=gen, dtype=torch.float64)
    x[2] = 0.5  # a constant image: std 0, the floor 1/√n decides
    out = fn(x.clone())
    if out is None:
        return _pending("check_standardization")
    out = torch.as_tensor(out, dtype=torch.float64)
    truth = PerImageStandardization()(x)
    if out.shape != truth.shape:
        _wrong(f"the output should have the shape of the input {tuple(x.shape)}, got {tuple(out.shape)}")
    if not torch.isfinite(out).all():
        _wrong("your output has nan/inf for the constant image 2: its std is 0; divide by max(std, 1/√n).")
    if torch.allclose(out, truth, rtol=1e-6, atol=1e-9):
        return _correct("your standardization equals PerImageStandardization (unbiased std, floor 1/√n).")
    n = x[0].numel()
    if torch.allclose(out[:2], truth[:2] * math.sqrt(n / (n - 1)), rtol=1e-6, atol=1e-9):
        _wrong("off by the factor √(n/(n−1)): you used the biased standard deviation (dividing by n); the "
               "reference uses the unbiased one (torch's default std, dividing by n − 1).")
    per_channel = (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True).clamp_min(1 / math.sqrt(64))
    if torch.allclose(out[:2], per_channel[:2], rtol=1e-6, atol=1e-9):
        _wrong("you standardized each channel on its own; the mean and std are over the whole image (all "
               "three channels together).")
    if torch.allclose(out[:2], truth[:2], rtol=1e-6, atol=1e-9):
        _wrong("right on ordinary images, wrong on the constant image 2: its std is 0, so divide by the floor "
               f"1/√n = {1 / math.sqrt(n):.4f} (the output is then all zeros).")
    i = int((~torch.isclose(out, truth, rtol=1e-6, atol=1e-9)).flatten(1).any(1).nonzero()[0])
    _wrong(f"image {i} differs (max difference {(out[i] - truth[i]).abs().max():.3g}): (x − mean(x)) / "
           "max(std(x), 1/√n) with mean and std over the image's n values.")
