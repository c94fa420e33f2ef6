"""Notebook 1 (margins): exact margins of a linear model, by hand and as code."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ... import norms
from ._common import _close, _correct, _first_mismatch, _matches, _NAME, _number, _pending, _vector, _wrong


# Exercise of notebook 1: W = I (2×2), b = 0, x = (2, 1), label 0.
_HAND_W = torch.eye(2, dtype=torch.float64)
_HAND_B = torch.zeros(2, dtype=torch.float64)
_HAND_X = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
_HAND_Y = torch.tensor([0])


def _linear_variants(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, norm: str) -> tuple[Tensor, dict[str, Tensor]]:
    """The closed-form margins (N,) and the margins typical mistakes give, each (N,), with their hints."""
    from ...margins import linear_margins

    weight, bias = weight.double(), bias.double()
    flat = x.reshape(x.shape[0], -1).double()
    truth = linear_margins(weight, bias, flat, y, norm=norm)
    z = flat @ weight.T + bias
    gap = z.gather(1, y[:, None]) - z  # (N, C): z_y − z_j
    own = torch.nn.functional.one_hot(y, weight.shape[0]).bool()
    diff = weight[y][:, None, :] - weight[None, :, :]  # (N, C, D): w_y − w_j
    dual = norms.DUAL[norm]
    variants: dict[str, Tensor] = {}
    for p in ("l1", "l2", "linf"):
        if p == dual:
            continue
        size = norms.lp_norm(diff.reshape(-1, diff.shape[-1]), p).reshape(gap.shape)
        d = (gap / size.masked_fill(own, 1.0)).masked_fill(own, math.inf).amin(1).clamp_min(0)
        variants[f"divided by the {_NAME[p]} norm of w_y − w_j"] = d
    variants["did not divide the logit gap by a norm"] = gap.masked_fill(own, math.inf).amin(1).clamp_min(0)
    runner_up = z.masked_fill(own, -math.inf).argmax(1)
    size = norms.dual_norm_of(diff[torch.arange(len(y)), runner_up], norm)
    variants["took only the runner-up class (largest other logit)"] = (
        gap.gather(1, runner_up[:, None]).squeeze(1) / size).clamp_min(0)
    size = norms.dual_norm_of(weight, norm)[None].expand_as(gap)
    variants["divided by the norm of w_j alone"] = (gap / size).masked_fill(own, math.inf).amin(1).clamp_min(0)
    return truth, variants


def _linear_hint(label: str, norm: str) -> str:
    dual = norms.DUAL[norm]
    if label.startswith("divided by the"):
        return (f"you {label}: for {_NAME[norm]} attacks the margin uses the dual norm, the {_NAME[dual]} norm "
                f"({'the dual of ℓ∞ is ℓ1' if norm == 'linf' else 'ℓ2 is its own dual'}).")
    if label.startswith("did not divide"):
        return ("you used the logit gap z_y − z_j itself: a perturbation of length t changes it by at most "
                f"t·‖w_y − w_j‖_* ({_NAME[dual]} norm), so divide by that.")
    if label.startswith("took only"):
        return ("you took the class with the largest other logit; the nearest boundary can belong to another "
                "class (a smaller gap is not a shorter distance): take the minimum over every j ≠ y.")
    return "the boundary between y and j depends on the difference w_y − w_j, not on w_j alone."


def random_linear_problem(seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A random linear model and points for a hidden test: weight (C, D), bias (C,), x (N, D), y (N,).

    C = 4 classes, D = 5, N = 12; the labels are the model's own predictions for half of the points.
    """
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(4, 5, generator=gen)
    bias = torch.randn(4, generator=gen)
    x = torch.randn(12, 5, generator=gen)
    y = torch.randint(0, 4, (12,), generator=gen)
    y[:6] = (x[:6] @ weight.T + bias).argmax(1)
    return weight, bias, x, y


def check_hand_margins(d_2: float | None, d_inf: float | None) -> bool | None:
    """Notebook 1, exercise 1: d₂ and d∞ of x = (2, 1), label 0, for W = I and b = 0, by hand."""
    if d_2 is None or d_inf is None:
        return _pending("check_hand_margins")
    for value, norm, name in ((d_2, "l2", "d_2"), (d_inf, "linf", "d_inf")):
        value = _number(value, name)
        truth, variants = _linear_variants(_HAND_W, _HAND_B, _HAND_X, _HAND_Y, norm)
        if not _close(value, truth.item()):
            for label, v in variants.items():
                if _close(value, v.item()):
                    _wrong(f"{name} = {value:.4g}, the closed form gives {truth.item():.4g}: "
                           f"{_linear_hint(label, norm)}")
            _wrong(f"{name} = {value:.4g}, the closed form gives {truth.item():.4g}: the gap z_0 − z_1 = 1, "
                   f"w_0 − w_1 = (1, −1); divide the gap by the {_NAME[norms.DUAL[norm]]} norm of w_0 − w_1.")
    return _correct("d_2 = 1/√2 ≈ 0.7071 and d_inf = 1/2 — d_inf ≤ d_2 ≤ √2·d_inf.")


def check_linear_margins(answer: Tensor | Callable | None, weight: Tensor, bias: Tensor, x: Tensor, y: Tensor,
                         norm: str) -> bool | None:
    """Margins (N,) of z = Wx + b — a tensor, or a function ``(weight, bias, x, y, norm) -> (N,)`` to call.

    Compared point by point with :func:`~mma_edu.margins.linear_margins`; the message names the first wrong
    point and the mistake the whole answer matches (wrong norm, no division, runner-up class only, ...).
    """
    norms.check_norm(norm)
    if callable(answer):
        answer = answer(weight, bias, x, y, norm)
    if answer is None:
        return _pending("check_linear_margins")
    mine = _vector(answer.detach() if torch.is_tensor(answer) else answer, len(y), "the margins")
    truth, variants = _linear_variants(weight, bias, x, y, norm)
    i = _first_mismatch(mine, truth, 1e-4, 1e-6)
    if i is None:
        return _correct(f"all {len(y)} {norm} margins equal the closed form (mean {truth.mean():.4f}).")
    msg = f"your margin for point {i} is {mine[i]:.4g}, the closed form gives {truth[i]:.4g}"
    for label, v in variants.items():
        if _matches(mine, v, 1e-4, 1e-6):
            _wrong(f"{msg}: {_linear_hint(label, norm)}")
    _wrong(f"{msg}. Recall d = min over j ≠ y of (z_y − z_j) / ‖w_y − w_j‖_*, the dual norm being the "
           f"{_NAME[norms.DUAL[norm]]} norm for {_NAME[norm]}.")
