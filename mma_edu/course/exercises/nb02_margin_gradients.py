"""Notebook 2 (margin gradients): the three losses by hand, and ∇_θ d at a boundary point."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ... import norms
from ._common import _close, _correct, _NAME, _number, _pending, _wrong


S_LOGITS = (3.0, 1.0, 0.0)  # notebook 2, exercise 1: logits f(x), label y = 0


def check_losses_by_hand(l_lm: float | None, l_slm: float | None, ce: float | None) -> bool | None:
    """Notebook 2, exercise 1: L_LM, L_SLM and CE of the logits (3, 1, 0) with label 0, by hand."""
    if l_lm is None or l_slm is None or ce is None:
        return _pending("check_losses_by_hand")
    f = torch.tensor(S_LOGITS, dtype=torch.float64)
    lm_true = (f[1:].max() - f[0]).item()
    slm_true = (torch.logsumexp(f[1:], 0) - f[0]).item()
    ce_true = (torch.logsumexp(f, 0) - f[0]).item()
    l_lm, l_slm, ce = _number(l_lm, "l_lm"), _number(l_slm, "l_slm"), _number(ce, "ce")
    if not _close(l_lm, lm_true):
        hint = ("the sign: L_LM = max_{j≠y} f_j − f_y is negative for a correct example"
                if _close(l_lm, -lm_true) else "L_LM = max_{j≠y} f_j − f_y = 1 − 3")
        _wrong(f"l_lm = {l_lm:.4g}, should be {lm_true:.4g}: {hint}.")
    if not _close(l_slm, slm_true):
        if _close(l_slm, ce_true):
            hint = "that is CE: the log-sum-exp of L_SLM runs over j ≠ y only, the true class left out"
        elif _close(l_slm, -slm_true):
            hint = "the sign: L_SLM = log Σ_{j≠y} e^{f_j} − f_y"
        elif _close(l_slm, math.log10(math.exp(1) + 1) - 3) or _close(l_slm, math.log2(math.exp(1) + 1) - 3):
            hint = "use the natural logarithm"
        else:
            hint = "L_SLM = log(e^1 + e^0) − 3 (a smooth max of the other logits, minus the true one)"
        _wrong(f"l_slm = {l_slm:.4g}, should be {slm_true:.4g}: {hint}.")
    if not _close(ce, ce_true):
        if _close(ce, ce_true / math.log(2)) or _close(ce, ce_true / math.log(10)):
            hint = "use the natural logarithm"
        elif _close(ce, -ce_true):
            hint = "CE = −log p_y is positive"
        else:
            hint = "CE = log(1 + e^{L_SLM}) — plug in your L_SLM"
        _wrong(f"ce = {ce:.4g}, should be {ce_true:.4g}: {hint}.")
    if l_slm < l_lm:
        _wrong("L_SLM must be ≥ L_LM (log-sum-exp ≥ max)")  # cannot happen with the values above; a safeguard
    return _correct(f"L_LM = {lm_true:.4f} ≤ L_SLM = {slm_true:.4f}, CE = log(1 + e^L_SLM) = {ce_true:.4f}.")


def check_margin_gradient(fn: Callable | None, norm: str = "l2", seed: int = 0) -> bool | None:
    """``fn(model, x_star, y, norm)`` -> ∇_θ d (flattened over ``model.parameters()``) at a boundary point.

    Checked on random linear models (from ``seed``), where the margin has a closed form that autograd
    differentiates.
    """
    from ...margins import linear_margins, linear_shortest_perturbation
    from ...models import Linear

    norms.check_norm(norm)
    if fn is None:
        return _pending("check_margin_gradient")
    gen = torch.Generator().manual_seed(seed)
    for trial in range(3):
        model = Linear(6, 4).double()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
        x = torch.randn(1, 6, generator=gen, dtype=torch.float64)
        y = model(x).argmax(1)
        params = list(model.parameters())
        d = linear_margins(model.fc.weight, model.fc.bias, x, y, norm=norm)
        truth = torch.cat([g.flatten() for g in torch.autograd.grad(d.sum(), params)])
        _, delta = linear_shortest_perturbation(model.fc.weight.detach(), model.fc.bias.detach(), x, y, norm=norm)
        mine = fn(model, (x + delta).detach(), y, norm)
        if mine is None:
            return _pending("check_margin_gradient")
        mine = torch.as_tensor(mine, dtype=torch.float64).detach().flatten()
        if mine.numel() != truth.numel():
            _wrong(f"your gradient has {mine.numel()} entries; the model has {truth.numel()} parameters "
                   "(flatten the gradients of all parameters, weight then bias, into one vector)")
        if torch.allclose(mine, truth, rtol=1e-5, atol=1e-8):
            continue
        msg = f"model {trial}: your ∇_θ d differs from the closed form's (relative error " \
              f"{((mine - truth).norm() / truth.norm()).item():.2g})"
        cos = (mine @ truth / (mine.norm() * truth.norm()).clamp_min(1e-30)).item()
        if cos < -0.999:
            _wrong(f"{msg}: it points the opposite way — the margin gradient is MINUS the loss gradient at x + δ*.")
        if cos > 0.999:
            scale = (mine.norm() / truth.norm()).item()
            # What the norm of ∇_x L_LM at δ* is under each p: tells which one the student divided by.
            w = model.fc.weight.detach()
            others = [j for j in range(4) if j != int(y)]
            z = (x + delta) @ w.T + model.fc.bias.detach()
            j = max(others, key=lambda k: float(z[0, k]))
            g_x = (w[j] - w[int(y)])[None]
            for p in ("l1", "l2", "linf"):
                if math.isclose(scale, (norms.dual_norm_of(g_x, norm) / norms.lp_norm(g_x, p)).item(), rel_tol=1e-4) \
                        and p != norms.DUAL[norm]:
                    _wrong(f"{msg}: right direction, wrong length — you divided by the {_NAME[p]} norm of ∇_x L; "
                           f"divide by its dual norm (the {_NAME[norms.DUAL[norm]]} norm for {_NAME[norm]}).")
            if math.isclose(scale, norms.dual_norm_of(g_x, norm).item(), rel_tol=1e-4):
                _wrong(f"{msg}: right direction, wrong length — divide by ‖∇_x L(x + δ*, y)‖_*.")
            _wrong(f"{msg}: right direction, but {scale:.3g} times too long.")
        _wrong(f"{msg}: use −∇_θ L_LM(x + δ*, y) / ‖∇_x L_LM(x + δ*, y)‖_* with L_LM = logit_margin.")
    return _correct(f"your margin gradient equals the derivative of the closed-form {norm} margin on 3 linear models.")
