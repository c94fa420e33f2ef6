"""Exercise checks: each ``check_...`` says *what* is wrong with an answer, not only that it is wrong.

The convention of the course (explained in notebook 1):

* an exercise cell holds ``answer = None`` (or a function whose body is
  ``return None``) and then calls its check: ``None`` means "not attempted
  yet", so the check prints a note and Run All goes on;
* a right answer prints ``correct: ...`` and returns True;
* a wrong answer raises :class:`ExerciseError` (an AssertionError) whose
  message names the first wrong value, the value it should be, and — when the
  answer matches a typical mistake — which mistake.

Solutions live in cells tagged ``solution``; they call the same checks, so the
smoke run of every notebook checks the reference solutions too.

The ground truths come from the library (closed forms in :mod:`mma_edu.margins`,
:class:`~mma_edu.train.MMA`'s objective, :func:`~mma_edu.attacks.bisect`,
:class:`~mma_edu.models.PerImageStandardization`, :func:`~mma_edu.bounds.layer_bounds`)
or from a few lines written out here, each tested against the library in
``tests/test_exercises.py``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from .. import norms, paper

__all__ = [
    "ExerciseError",
    # 01
    "check_hand_margins", "check_linear_margins",
    # 02
    "check_losses_by_hand", "check_margin_gradient",
    # 03
    "MMA_BATCH", "mma_objective", "check_mma_loss_by_hand", "check_mma_loss",
    # 04
    "reference_bisection", "check_bisection_by_hand", "check_bisection",
    # 05
    "S_PLUS_LOGITS", "check_s_plus", "check_over_perturbed",
    # 06
    "check_eps_units", "check_standardization",
    # 07
    "PAPER_MNIST_MMA_ROW", "check_avg_accuracies", "check_robust_curve",
    # 08
    "IBP_EXAMPLE", "check_interval_bounds_by_hand", "check_ibp",
]


class ExerciseError(AssertionError):
    """A wrong answer: the message says which value is wrong and, where it can, why."""


def _pending(name: str) -> None:
    print(f"{name}: not attempted yet (the answer is None) — fill it in and rerun this cell.")
    return None


def _correct(message: str) -> bool:
    print(f"correct: {message}")
    return True


def _wrong(message: str) -> None:
    raise ExerciseError(message)


_NAME = {"l1": "ℓ1", "l2": "ℓ2", "linf": "ℓ∞"}


def _close(a: float, b: float, rel: float = 2e-3, abs_: float = 1e-3) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_)


def _number(value: Any, name: str) -> float:
    if torch.is_tensor(value):
        if value.numel() != 1:
            _wrong(f"{name} should be one number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    try:
        out = float(value)
    except (TypeError, ValueError):
        _wrong(f"{name} should be a number, got {type(value).__name__}: {value!r}")
    if not math.isfinite(out):
        _wrong(f"{name} should be a finite number, got {out}")
    return out


def _vector(value: Any, n: int, name: str) -> Tensor:
    try:
        t = torch.as_tensor(value, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        _wrong(f"{name} should be a list or tensor of {n} numbers, got {type(value).__name__}")
    if t.numel() != n:
        _wrong(f"{name} should have {n} values (one per example), got {t.numel()}")
    return t


def _fmt(t: Tensor) -> list[float]:
    return [round(v, 4) for v in t.tolist()]


def _first_mismatch(mine: Tensor, truth: Tensor, rtol: float, atol: float) -> int | None:
    bad = ~torch.isclose(mine, truth, rtol=rtol, atol=atol)
    return int(bad.nonzero()[0]) if bad.any() else None


def _matches(mine: Tensor, variant: Tensor, rtol: float, atol: float) -> bool:
    return mine.shape == variant.shape and bool(torch.isclose(mine, variant, rtol=rtol, atol=atol).all())


# --------------------------------------------------------------------------------------------- 01 margins

# Exercise of notebook 1: W = I (2×2), b = 0, x = (2, 1), label 0.
_HAND_W = torch.eye(2, dtype=torch.float64)
_HAND_B = torch.zeros(2, dtype=torch.float64)
_HAND_X = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
_HAND_Y = torch.tensor([0])


def _linear_variants(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, norm: str) -> tuple[Tensor, dict[str, Tensor]]:
    """The closed-form margins (N,) and the margins typical mistakes give, each (N,), with their hints."""
    from ..margins import linear_margins

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


# ------------------------------------------------------------------------------------- 02 margin gradients

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


def check_margin_gradient(fn: Callable | None, norm: str = "l2") -> bool | None:
    """``fn(model, x_star, y, norm)`` -> ∇_θ d (flattened over ``model.parameters()``) at a boundary point.

    Checked on random linear models, where the margin has a closed form that autograd differentiates.
    """
    from ..margins import linear_margins, linear_shortest_perturbation
    from ..models import Linear

    norms.check_norm(norm)
    if fn is None:
        return _pending("check_margin_gradient")
    gen = torch.Generator().manual_seed(0)
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


# --------------------------------------------------------------------------------------------- 03 MMA loss

# Notebook 3's batch: CE at the training point x + ε̂u and at the clean x, ε̂, S⁺ membership; d_max 0.5, c 1/3.
MMA_BATCH = dict(
    ce_adv=(0.9, 0.3, 1.5, 0.7),
    ce_clean=(0.1, 0.05, 1.5, 0.2),
    eps_hat=(0.2, 0.6, 0.0, 0.4),
    positive=(True, True, False, True),
    d_max=0.5,
    clean_weight=1 / 3,
)


def mma_objective(ce_adv: Tensor, ce_clean: Tensor, eps_hat: Tensor, positive: Tensor, d_max: float,
                  clean_weight: float) -> Tensor:
    """MMA's objective (§4 of the paper notes), as :meth:`mma_edu.train.MMA.batch_loss` computes it.

    L = (1 − c)·(1/n)[Σ_{i∈S⁺, ε̂_i<d_max} CE(x_i + ε̂_i u_i) + Σ_{j∈S⁻} CE(x_j)] + c·mean_k CE(x_k);
    for j ∈ S⁻ the training point is x_j itself, so ``ce_adv[j]`` is its clean CE. All (n,) -> scalar.
    """
    ce_adv, ce_clean, eps_hat = (torch.as_tensor(v, dtype=torch.float64) for v in (ce_adv, ce_clean, eps_hat))
    positive = torch.as_tensor(positive, dtype=torch.bool)
    active = ~positive | (eps_hat < d_max)
    n = ce_adv.numel()
    return (1 - clean_weight) * (ce_adv * active).sum() / n + clean_weight * ce_clean.mean()


def _mma_variants(batch: dict) -> dict[str, float]:
    ce_adv, ce_clean, eps_hat = (torch.as_tensor(batch[k], dtype=torch.float64)
                                 for k in ("ce_adv", "ce_clean", "eps_hat"))
    pos = torch.as_tensor(batch["positive"], dtype=torch.bool)
    d_max, c, n = batch["d_max"], batch["clean_weight"], ce_adv.numel()
    active = ~pos | (eps_hat < d_max)
    mma = (ce_adv * active).sum() / n
    clean = ce_clean.mean()
    return {
        "no hinge: an example in S⁺ with ε̂ ≥ d_max contributes nothing to L_MMA (it is far enough already)":
            ((1 - c) * ce_adv.mean() + c * clean).item(),
        "L_MMA divides by the whole batch size n, hinge-dropped examples included, not by the number of "
        "active examples": ((1 - c) * (ce_adv * active).sum() / active.sum() + c * clean).item(),
        "that is OMMA (no clean loss): MMA mixes in c = 1/3 of the clean cross-entropy": mma.item(),
        "the weights are swapped: L = (1 − c)·L_MMA + c·CE_clean with c = 1/3": (c * mma + (1 - c) * clean).item(),
        "the misclassified examples (S⁻) are trained on their clean loss inside L_MMA, not left out":
            ((1 - c) * (ce_adv * (pos & (eps_hat < d_max))).sum() / n + c * clean).item(),
        "the hinge keeps the examples BELOW d_max (ε̂ < d_max) and drops those above":
            ((1 - c) * (ce_adv * (~pos | (eps_hat >= d_max))).sum() / n + c * clean).item(),
    }


def check_mma_loss_by_hand(value: float | None) -> bool | None:
    """Notebook 3, exercise 1: the MMA objective of the four-example batch :data:`MMA_BATCH`, by hand."""
    if value is None:
        return _pending("check_mma_loss_by_hand")
    value = _number(value, "the loss")
    truth = mma_objective(**MMA_BATCH).item()
    if _close(value, truth, rel=1e-3, abs_=5e-4):
        return _correct(f"L = (2/3)·(0.9 + 1.5 + 0.7)/4 + (1/3)·(0.1 + 0.05 + 1.5 + 0.2)/4 = {truth:.4f}.")
    for hint, v in _mma_variants(MMA_BATCH).items():
        if _close(value, v, rel=1e-3, abs_=5e-4):
            _wrong(f"your loss is {value:.4f}, MMA's objective gives {truth:.4f}: {hint}.")
    _wrong(f"your loss is {value:.4f}, MMA's objective gives {truth:.4f}. Go through the four examples: which are "
           "in S⁺, which of those have ε̂ < d_max, and which CE each contributes.")


def check_mma_loss(fn: Callable | None) -> bool | None:
    """``fn(ce_adv, ce_clean, eps_hat, positive, d_max, clean_weight) -> scalar``: checked on random batches."""
    if fn is None:
        return _pending("check_mma_loss")
    gen = torch.Generator().manual_seed(0)
    for trial in range(5):
        n = 8
        batch = dict(ce_adv=torch.rand(n, generator=gen, dtype=torch.float64) * 2,
                     ce_clean=torch.rand(n, generator=gen, dtype=torch.float64),
                     eps_hat=torch.rand(n, generator=gen, dtype=torch.float64) * 0.6,
                     positive=torch.rand(n, generator=gen) < 0.7, d_max=0.4,
                     clean_weight=(1 / 3, 0.0, 0.5, 1 / 3, 1 / 3)[trial])
        batch["positive"][:2] = torch.tensor([True, False])
        batch["eps_hat"][:2] = torch.tensor([0.55, 0.0], dtype=torch.float64)  # one hinge-dropped, one in S⁻
        batch["eps_hat"][~batch["positive"]] = 0.0
        batch["ce_adv"][~batch["positive"]] = batch["ce_clean"][~batch["positive"]]
        out = fn(*(batch[k].clone() if torch.is_tensor(batch[k]) else batch[k]
                   for k in ("ce_adv", "ce_clean", "eps_hat", "positive", "d_max", "clean_weight")))
        if out is None:
            return _pending("check_mma_loss")
        value = _number(out, "the loss")
        truth = mma_objective(**batch).item()
        if math.isclose(value, truth, rel_tol=1e-6, abs_tol=1e-9):
            continue
        msg = (f"batch {trial} (clean_weight {batch['clean_weight']:.3g}): your loss is {value:.6f}, "
               f"MMA's is {truth:.6f}")
        for hint, v in _mma_variants(batch).items():
            if math.isclose(value, v, rel_tol=1e-6, abs_tol=1e-9):
                _wrong(f"{msg}: {hint}.")
        _wrong(f"{msg}.")
    return _correct("your MMA objective equals MMA.batch_loss's on 5 random batches (hinge, S⁻, clean mix, OMMA).")


# ----------------------------------------------------------------------------------------------- 04 AN-PGD

def reference_bisection(is_adversarial: Callable[[float], bool], t0: float, max_eps: float,
                        search_steps: int) -> tuple[float, float, float]:
    """AN-PGD's bisection on one ray, with a yes/no oracle: (estimate ε̂, lower, upper).

    Start at t0 = ε_prev; a correct point raises ``lower``, a misclassified one lowers ``upper``; the next t
    is the midpoint; ``search_steps`` midpoints are tested and ε̂ is the last of them — as
    :func:`mma_edu.attacks.bisect` does (tested against it). Calls the oracle search_steps + 1 times.
    """
    lower, upper, t = 0.0, float(max_eps), float(t0)
    for step in range(search_steps + 1):
        if is_adversarial(t):
            upper = min(upper, t)
        else:
            lower = max(lower, t)
        if step < search_steps:
            t = (lower + upper) / 2
    return t, lower, upper


# Notebook 4, exercise 1: ε_prev = 0.2, max_eps = 0.5, the ray crosses the boundary at t = 0.33, 4 steps.
BISECTION_EXAMPLE = dict(t0=0.2, max_eps=0.5, boundary=0.33, search_steps=4)


def _bisection_variants(t0: float, max_eps: float, boundary: float, steps: int) -> dict[str, float]:
    oracle = lambda t: t >= boundary  # noqa: E731
    est, lower, upper = reference_bisection(oracle, t0, max_eps, steps)
    return {
        "that is the lower end of the final bracket; ε̂ is the last midpoint tested": lower,
        "that is the upper end of the final bracket; ε̂ is the last midpoint tested": upper,
        "the bisection starts at t = ε_prev (where PGD ended), not at max_eps/2":
            reference_bisection(oracle, max_eps / 2, max_eps, steps)[0],
        "one midpoint too many: the first test is at ε_prev itself, then search_steps midpoints":
            reference_bisection(oracle, t0, max_eps, steps + 1)[0],
        "one midpoint too few: the first test is at ε_prev itself, then search_steps midpoints":
            reference_bisection(oracle, t0, max_eps, steps - 1)[0],
        "that is where the boundary is, not what the bisection reports: it stops after search_steps midpoints":
            boundary,
    }


def check_bisection_by_hand(eps_hat: float | None) -> bool | None:
    """Notebook 4, exercise 1: ε̂ of the bisection of :data:`BISECTION_EXAMPLE`, by hand."""
    if eps_hat is None:
        return _pending("check_bisection_by_hand")
    value = _number(eps_hat, "eps_hat")
    ex = BISECTION_EXAMPLE
    truth, lower, upper = reference_bisection(lambda t: t >= ex["boundary"], ex["t0"], ex["max_eps"],
                                              ex["search_steps"])
    if _close(value, truth, rel=1e-4, abs_=1e-5):
        return _correct(f"tests at 0.2 (correct), 0.35 (wrong), 0.275, 0.3125 (correct), 0.33125 (wrong): "
                        f"ε̂ = {truth:g}, bracket [{lower:g}, {upper:g}].")
    for hint, v in _bisection_variants(ex["t0"], ex["max_eps"], ex["boundary"], ex["search_steps"]).items():
        if _close(value, v, rel=1e-4, abs_=1e-5):
            _wrong(f"eps_hat = {value:g}, AN-PGD reports {truth:g}: {hint}.")
    _wrong(f"eps_hat = {value:g}, AN-PGD reports {truth:g}. Write down the bracket after each test: "
           "start [0, 0.5], test t = 0.2 first.")


def check_bisection(fn: Callable | None) -> bool | None:
    """``fn(is_adversarial, t0, max_eps, search_steps) -> (estimate, lower, upper)``, against AN-PGD's bisection."""
    if fn is None:
        return _pending("check_bisection")
    cases = [(0.2, 0.5, 0.33, 4), (0.4, 0.5, 0.1, 10), (0.05, 0.4725, 1.0, 10), (0.3, 1.0, 0.3, 6),
             (0.1, 0.5, 0.45, 1)]
    for t0, max_eps, boundary, steps in cases:
        calls: list[float] = []

        def oracle(t: float) -> bool:
            calls.append(float(t))
            return float(t) >= boundary

        out = fn(oracle, t0, max_eps, steps)
        if out is None:
            return _pending("check_bisection")
        try:
            est, lower, upper = (float(v) for v in out)
        except (TypeError, ValueError):
            _wrong(f"return (estimate, lower, upper): three numbers, got {out!r}")
        truth = reference_bisection(lambda t: t >= boundary, t0, max_eps, steps)
        case = f"ε_prev {t0}, max_eps {max_eps}, boundary at {boundary}, {steps} steps"
        if not calls or not math.isclose(calls[0], t0):
            _wrong(f"{case}: your first test is at t = {calls[0] if calls else None}; start at t = ε_prev = {t0} "
                   "(the PGD point, whose loss AN-PGD already has).")
        if len(calls) != steps + 1:
            _wrong(f"{case}: you tested {len(calls)} points; AN-PGD tests ε_prev and then {steps} midpoints "
                   f"({steps + 1} in all).")
        if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip((est, lower, upper), truth)):
            for hint, v in _bisection_variants(t0, max_eps, boundary, steps).items():
                if math.isclose(est, v, rel_tol=1e-9, abs_tol=1e-12) and not math.isclose(v, truth[0]):
                    _wrong(f"{case}: your estimate {est:g}, AN-PGD's {truth[0]:g}: {hint}.")
            _wrong(f"{case}: you return ({est:g}, {lower:g}, {upper:g}), AN-PGD ({truth[0]:g}, {truth[1]:g}, "
                   f"{truth[2]:g}). A correct point raises lower to t, a misclassified one lowers upper to t.")
    return _correct("your bisection matches AN-PGD's on 5 rays, an unbroken one (ε̂ ends near max_eps) included.")


# -------------------------------------------------------------------------------------------- 05 MNIST MMA

# Notebook 5, exercise 1: logits of four digits (3 classes shown), all labelled 0.
S_PLUS_LOGITS = ((2.0, 0.0, 0.0), (1.0, 0.8, 0.8), (0.0, 1.0, 0.0), (1.0, 0.5, -2.0))


def check_s_plus(mask: Sequence[bool] | Tensor | None, logits: Sequence | Tensor = S_PLUS_LOGITS,
                 y: Sequence[int] | Tensor | None = None) -> bool | None:
    """Which examples are in S⁺ (p_y > 1/2, i.e. L_SLM < 0)? ``mask``: one bool per row of ``logits``."""
    if mask is None:
        return _pending("check_s_plus")
    from ..losses import soft_logit_margin

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


def check_over_perturbed(fn: Callable | None) -> bool | None:
    """``fn(margins (N,), eps) -> float``: the fraction of examples whose margin is below eps."""
    if fn is None:
        return _pending("check_over_perturbed")
    margins = torch.tensor([0.05, 0.1, 0.1, 0.2, 0.3, 0.45, 0.6, 0.0])
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


# -------------------------------------------------------------------------------------------- 06 CIFAR10

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


def check_standardization(fn: Callable | None) -> bool | None:
    """``fn(x (N, C, H, W)) -> (N, C, H, W)``: per-image standardization as the reference computes it."""
    if fn is None:
        return _pending("check_standardization")
    from ..models import PerImageStandardization

    gen = torch.Generator().manual_seed(0)
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


# ----------------------------------------------------------------------------------------------- 07 evaluation

PAPER_MNIST_MMA_ROW = paper.MNIST_LINF["mma-0.45"]  # clean, then ε = 0.1, 0.2, 0.3, 0.4 (%, the paper's MMA-0.45)


def check_avg_accuracies(avg_acc: float | None, avg_rob_acc: float | None,
                         row: Sequence[float] = PAPER_MNIST_MMA_ROW) -> bool | None:
    """AvgAcc and AvgRobAcc of a row (clean accuracy first, then one per ε), in the row's units."""
    if avg_acc is None or avg_rob_acc is None:
        return _pending("check_avg_accuracies")
    avg_acc, avg_rob_acc = _number(avg_acc, "avg_acc"), _number(avg_rob_acc, "avg_rob_acc")
    clean, *rob = (float(v) for v in row)
    true_acc, true_rob = (clean + sum(rob)) / (len(rob) + 1), sum(rob) / len(rob)
    ok = lambda a, b: _close(a, b, rel=1e-3, abs_=0.06)  # noqa: E731  (the paper rounds to 0.1)
    if ok(avg_acc, true_acc) and ok(avg_rob_acc, true_rob):
        return _correct(f"AvgAcc {true_acc:.2f}, AvgRobAcc {true_rob:.2f}.")
    if ok(avg_acc, true_rob) and ok(avg_rob_acc, true_acc):
        _wrong("swapped: AvgAcc includes the clean accuracy (K + 1 values), AvgRobAcc only the K robust ones.")
    if not ok(avg_rob_acc, true_rob):
        hint = ("you included the clean accuracy; AvgRobAcc averages only the K robust accuracies"
                if ok(avg_rob_acc, true_acc) else
                f"you divided by {len(rob) + 1}; there are K = {len(rob)} robust accuracies"
                if ok(avg_rob_acc, sum(rob) / (len(rob) + 1)) else f"the mean of {rob}")
        _wrong(f"avg_rob_acc = {avg_rob_acc:.2f}, should be {true_rob:.2f}: {hint}.")
    hint = ("you left out the clean accuracy; AvgAcc averages it with the K robust ones"
            if ok(avg_acc, true_rob) else
            f"you divided by {len(rob)}; there are K + 1 = {len(rob) + 1} values"
            if ok(avg_acc, (clean + sum(rob)) / len(rob)) else f"the mean of {[clean] + rob}")
    _wrong(f"avg_acc = {avg_acc:.2f}, should be {true_acc:.2f}: {hint}.")


def _robust_curve(clean: Tensor, correct: Tensor) -> list[float]:
    survived = clean.clone()
    out = []
    for k in range(correct.shape[1]):
        survived = survived & correct[:, k].all(0)
        out.append(survived.float().mean().item())
    return out


def check_robust_curve(fn: Callable | None) -> bool | None:
    """``fn(clean (N,) bool, correct (R, K, N) bool) -> K accuracies``: the paper's worst case over restarts.

    ``correct[r, k, n]``: restart r at the k-th (increasing) ε left example n classified correctly. An example
    is robust at ε_k only if it is clean-correct, every restart at ε_k failed, and it was robust at every
    smaller ε.
    """
    if fn is None:
        return _pending("check_robust_curve")
    gen = torch.Generator().manual_seed(0)
    clean = torch.rand(40, generator=gen) < 0.9
    correct = torch.rand(3, 4, 40, generator=gen) < torch.tensor([0.97, 0.9, 0.8, 0.7])[None, :, None]
    correct[:, :, 0] = True  # a clean mistake that no attack needs to break
    clean[0] = False
    correct[:, 1, 1] = False  # broken at ε_1, then (by chance of the restarts) "correct" at ε_2, ε_3
    correct[:, 2:, 1] = True
    clean[1] = True
    out = fn(clean.clone(), correct.clone())
    if out is None:
        return _pending("check_robust_curve")
    mine = [float(v) for v in (out.tolist() if torch.is_tensor(out) else out)]
    truth = _robust_curve(clean, correct)
    if len(mine) != len(truth):
        _wrong(f"return one accuracy per ε: {len(truth)} values, got {len(mine)}")
    if all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(mine, truth)):
        return _correct(f"robust accuracy per ε {[round(v, 3) for v in truth]}: worst case over restarts, "
                        "clean mistakes and smaller-ε breaks carried along.")
    variants = {
        "you averaged over restarts; an example is robust only if EVERY restart fails (take the worst case, "
        "all over r)": [(clean & correct[:, k].float().mean(0).ge(0.5)).float().mean().item()
                        for k in range(correct.shape[1])],
        "an example broken by ANY restart is not robust: use all over restarts, not any":
            [(clean & correct[:, k].any(0)).float().mean().item() for k in range(correct.shape[1])],
        "an example misclassified without attack is not robust at any ε: start from the clean mask":
            _robust_curve(torch.ones_like(clean), correct),
        "an example broken at a smaller ε stays broken (the same perturbation lies in the larger ball): carry "
        "the survivors from one ε to the next": [(clean & correct[:, k].all(0)).float().mean().item()
                                                for k in range(correct.shape[1])],
    }
    for hint, v in variants.items():
        if all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(mine, v)):
            _wrong(f"you give {[round(a, 3) for a in mine]}, the protocol {[round(b, 3) for b in truth]}: {hint}.")
    k = next(i for i, (a, b) in enumerate(zip(mine, truth)) if not math.isclose(a, b, abs_tol=1e-6))
    _wrong(f"at the ε number {k} you give {mine[k]:.3f}, the protocol {truth[k]:.3f}.")


# ---------------------------------------------------------------------------------------- 08 exact margins

# Notebook 8, exercise 1: one layer, two neurons, the ℓ∞ ball of radius 0.1 around x (inside [0, 1]).
IBP_EXAMPLE = dict(weight=((1.0, -2.0), (3.0, 1.0)), bias=(0.5, -1.9), x=(0.5, 0.2), eps=0.1)


def check_interval_bounds_by_hand(lower: Sequence[float] | None, upper: Sequence[float] | None) -> bool | None:
    """Notebook 8, exercise 1: interval bounds of z = Wx' + b over ‖x' − x‖∞ ≤ ε for :data:`IBP_EXAMPLE`."""
    if lower is None or upper is None:
        return _pending("check_interval_bounds_by_hand")
    w = torch.tensor(IBP_EXAMPLE["weight"], dtype=torch.float64)
    b = torch.tensor(IBP_EXAMPLE["bias"], dtype=torch.float64)
    x = torch.tensor(IBP_EXAMPLE["x"], dtype=torch.float64)
    r = torch.full_like(x, IBP_EXAMPLE["eps"])
    lo, hi = _vector(lower, 2, "lower"), _vector(upper, 2, "upper")
    centre = w @ x + b
    t_lo, t_hi = centre - w.abs() @ r, centre + w.abs() @ r
    close = lambda a, c: bool(torch.allclose(a, c, rtol=1e-3, atol=1e-3))  # noqa: E731
    if close(lo, t_lo) and close(hi, t_hi):
        return _correct(f"lower {_fmt(t_lo)}, upper {_fmt(t_hi)}; "
                        "the second ReLU is unstable (its interval contains 0).")
    if close(lo, centre - w @ r) and close(hi, centre + w @ r):
        _wrong(f"lower {_fmt(lo)}, should be {_fmt(t_lo)}: the radius goes through |W| (every weight "
               "pushes the bound its own worst way), not W.")
    if close(lo, t_lo - b) and close(hi, t_hi - b):
        _wrong(f"lower {_fmt(lo)}, should be {_fmt(t_lo)}: add the bias b to the centre.")
    if close(lo, w @ (x - r) + b) and close(hi, w @ (x + r) + b):
        _wrong(f"lower {_fmt(lo)}, should be {_fmt(t_lo)}: W(x − ε) is not a lower bound when W has "
               "negative entries; use the centre W x + b and the radius |W| ε.")
    for name, mine, truth in (("lower", lo, t_lo), ("upper", hi, t_hi)):
        if not close(mine, truth):
            i = int((~torch.isclose(mine, truth, rtol=1e-3, atol=1e-3)).nonzero()[0])
            _wrong(f"{name}[{i}] = {mine[i]:.4g}, should be {truth[i]:.4g}: centre (W x + b)[{i}] = "
                   f"{centre[i]:.4g}, radius (|W| ε)[{i}] = {(w.abs() @ r)[i]:.4g}.")
    return None  # unreachable


def _ibp_variant(net, x: Tensor, eps: float, clip: tuple[float, float] | None, absolute: bool, relu: bool):
    flat = x.reshape(len(x), -1).double()
    lo, hi = flat - eps, flat + eps
    if clip is not None:
        lo, hi = lo.clamp(min=clip[0]), hi.clamp(max=clip[1])
    out = []
    for w, b in zip(net.weights[:-1], net.biases[:-1]):
        centre, radius = (hi + lo) / 2, (hi - lo) / 2
        spread = radius @ (w.abs() if absolute else w).T
        z_lo, z_hi = centre @ w.T + b - spread, centre @ w.T + b + spread
        out.append((z_lo, z_hi))
        lo, hi = (z_lo.clamp(min=0), z_hi.clamp(min=0)) if relu else (z_lo, z_hi)
    return out


def check_ibp(fn: Callable | None, net, x: Tensor, y: Tensor, eps: float = 0.05) -> bool | None:
    """``fn(net, x, eps) -> [(lower, upper) per hidden layer]`` over the ℓ∞ ball ∩ [0, 1], against
    :func:`~mma_edu.bounds.layer_bounds` (``method="ibp"``)."""
    if fn is None:
        return _pending("check_ibp")
    from ..bounds import layer_bounds

    mine = fn(net, x, eps)
    if mine is None:
        return _pending("check_ibp")
    truth, _ = layer_bounds(net, x, y, torch.full((len(x),), float(eps)), norm="linf", clip=(0.0, 1.0),
                            method="ibp")
    if len(mine) != len(truth):
        _wrong(f"return one (lower, upper) pair per hidden layer: {len(truth)}, got {len(mine)}")

    # Bounds are O(1); an answer in float32, or summing in another order, differs by ~1e-7 (trained weights:
    # more), while every mistake the hints name changes them by 1e-2 or more.
    def same(a, b) -> bool:
        return all(torch.allclose(torch.as_tensor(p, dtype=torch.float64), q, rtol=1e-5, atol=1e-5)
                   for (p1, p2), (q1, q2) in zip(a, b) for p, q in ((p1, q1), (p2, q2)))

    if same(mine, truth):
        return _correct(f"your IBP equals layer_bounds(method='ibp') on {len(truth)} hidden layer(s), "
                        f"{len(x)} examples.")
    variants = {
        "you did not intersect the ball with the pixel box [0, 1]: clamp x − ε at 0 and x + ε at 1 first":
            _ibp_variant(net, x, eps, None, True, True),
        "the radius goes through |W|, not W": _ibp_variant(net, x, eps, (0.0, 1.0), False, True),
        "apply the ReLU to the bounds between layers (clamp both at 0)": _ibp_variant(net, x, eps, (0.0, 1.0),
                                                                                        True, False),
    }
    for hint, v in variants.items():
        if same(mine, v):
            _wrong(f"your bounds differ from layer_bounds': {hint}.")
    for k, ((a, b), (c, d)) in enumerate(zip(mine, truth)):
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        if not (torch.allclose(a, c, rtol=1e-5, atol=1e-5) and torch.allclose(b, d, rtol=1e-5, atol=1e-5)):
            _wrong(f"hidden layer {k + 1} is the first that differs (max difference "
                   f"{max((a - c).abs().max().item(), (b - d).abs().max().item()):.3g}).")
    return None  # unreachable
