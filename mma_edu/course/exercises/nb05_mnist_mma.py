"""Notebook 5 (MNIST MMA): membership of S⁺, and the over-perturbed fraction."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

from ._common import _correct, _number, _pending, _vector, _wrong


# Notebook 5, exercise 1: logits of four digits (3 classes shown), all labelled 0.
S_PLUS_LOGITS = ((2.0, 0.0, 0.0), (1.0, 0.8, 0.8), (0.0, 1.0, 0.0), (1.0, 0.5, -2.0))


def check_s_plus(mask: Sequence[bool] | Tensor | None, logits: Sequence | Tensor = S_PLUS_LOGITS,
                 y: Sequence[int] | Tensor | None = None) -> bool | None:
    """Which examples are in S⁺ (p_y > 1/2, i.e. L_SLM < 0)? ``mask``: one bool per row of ``logits``."""
    if mask is None:
        return _pending("check_s_plus")
    from ...losses import soft_logit_margin

    logits = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.zeros(len(logits), dtype=torch.long) if y is None else torch.as_tensor(y, dtype=torch.long)
    mine = _vector(mask, len(logits), "the mask").bool()
    truth = soft_logit_margin(logits, y) < 0
    p_y = logits.softmax(1).gather(1, y[:, None]).squeeze(1)
    correct = logits.argmax(1) == y
    for i in range(len(logits)):
        if bool(mine[i]) == bool(truth[i]):
            continue
        if mine[i] and correct[i]:
            _wrong(f"example {i} is classified correctly (argmax), but p_y = {p_y[i]:.2f} ≤ 1/2: S⁺ asks for "
                   "p_y > 1/2 (L_SLM < 0), stricter than 'correctly classified'.")
        if mine[i]:
            _wrong(f"example {i} is misclassified (p_y = {p_y[i]:.2f}): it belongs to S⁻.")
        _wrong(f"example {i} has p_y = {p_y[i]:.2f} > 1/2, so L_SLM = {soft_logit_margin(logits, y)[i]:.2f} < 0: "
               "it is in S⁺.")
    return _correct(f"S⁺ = {truth.nonzero().flatten().tolist()} (p_y = {[round(v, 2) for v in p_y.tolist()]}).")


def check_over_perturbed(fn: Callable | None, seed: int | None = None) -> bool | None:
    """``fn(margins (N,), eps) -> float``: the fraction of examples whose margin is below eps.

    Without ``seed``: eight fixed margins; with it, twenty random ones (two of them equal to an eps).
    """
    if fn is None:
        return _pending("check_over_perturbed")
    margins = torch.tensor([0.05, 0.1, 0.1, 0.2, 0.3, 0.45, 0.6, 0.0])
    if seed is not None:
        margins = (torch.rand(20, generator=torch.Generator().manual_seed(seed)) * 0.7).round(decimals=3)
        margins[:2] = torch.tensor([0.1, 0.3])  # a margin equal to eps is not over-perturbed
    for eps in (0.1, 0.3, 0.5):
        out = fn(margins.clone(), eps)
        if out is None:
            return _pending("check_over_perturbed")
        value = _number(out, "the fraction")
        truth = (margins < eps).float().mean().item()
        msg = f"margins {[round(v, 3) for v in margins.tolist()]}, eps {eps}: you say {value:g}, it is {truth:g}"
        if math.isclose(value, truth, abs_tol=1e-6):
            continue
        if math.isclose(value, 1 - truth, abs_tol=1e-6):
            _wrong(f"{msg} — the complement: over-perturbed means the margin is BELOW eps (the ball crosses the "
                   "boundary).")
        if math.isclose(value, truth * len(margins), abs_tol=1e-6):
            _wrong(f"{msg} — a count, not a fraction: divide by the number of examples.")
        if math.isclose(value, (margins <= eps).float().mean().item(), abs_tol=1e-6):
            _wrong(f"{msg} — a margin equal to eps is not over-perturbed: the ball just touches the boundary "
                   "(use <).")
        _wrong(msg + ".")
    return _correct("over_perturbed counts the margins strictly below eps, as a fraction.")
