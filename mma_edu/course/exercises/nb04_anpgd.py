"""Notebook 4 (AN-PGD): the bisection on one ray, by hand and as code, and PGD itself written out."""

from __future__ import annotations

import math
import random
from typing import Callable

import torch
from torch import Tensor

from ._common import _NAME, _close, _correct, _number, _pending, _wrong


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
        "that is the lower end of the final bracket; eps_hat is the last midpoint tested": lower,
        "that is the upper end of the final bracket; eps_hat is the last midpoint tested": upper,
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
                        f"eps_hat = {truth:g}, bracket [{lower:g}, {upper:g}].")
    for hint, v in _bisection_variants(ex["t0"], ex["max_eps"], ex["boundary"], ex["search_steps"]).items():
        if _close(value, v, rel=1e-4, abs_=1e-5):
            _wrong(f"eps_hat = {value:g}, AN-PGD reports {truth:g}: {hint}.")
    _wrong(f"eps_hat = {value:g}, AN-PGD reports {truth:g}. Write down the bracket after each test: "
           "start [0, 0.5], test t = 0.2 first.")


def check_bisection(fn: Callable | None, seed: int | None = None) -> bool | None:
    """``fn(is_adversarial, t0, max_eps, search_steps) -> (estimate, lower, upper)``, against AN-PGD's bisection.

    Without ``seed``: five fixed rays, one never broken. With it: five random rays (ε_prev, max_eps, where the
    boundary is — beyond max_eps for one of them — and the number of steps).
    """
    if fn is None:
        return _pending("check_bisection")
    cases = [(0.2, 0.5, 0.33, 4), (0.4, 0.5, 0.1, 10), (0.05, 0.4725, 1.0, 10), (0.3, 1.0, 0.3, 6),
             (0.1, 0.5, 0.45, 1)]
    if seed is not None:
        rng = random.Random(seed)
        cases = []
        for k in range(5):
            max_eps = round(rng.uniform(0.3, 1.5), 4)
            boundary = 2 * max_eps if k == 0 else round(rng.uniform(0.01, 0.99) * max_eps, 4)
            cases.append((round(rng.uniform(0.05, 0.95) * max_eps, 4), max_eps, boundary, rng.randint(1, 12)))
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
    return _correct("your bisection matches AN-PGD's on 5 rays, an unbroken one (eps_hat ends near max_eps) included.")


# ----------------------------------------------------------------------------
# Exercise 3: PGD, the first half of AN-PGD, written out
# ----------------------------------------------------------------------------

def reference_pgd(model: Callable, x: Tensor, y: Tensor, eps: float, step_size: float, steps: int,
                  norm: str) -> Tensor:
    """PGD as notebook 4 asks for it: the adversarial points x + δ, (N, D) like ``x``.

    Start at δ = 0 (no random start, so the answer is deterministic); ``steps`` times: the gradient g of the
    cross-entropy summed over the batch at x + δ, a step of ``step_size`` along the steepest-ascent direction of
    ``norm`` (ℓ∞: sign(g); ℓ2: g / ‖g‖₂ per example), δ projected back onto the ball ‖δ‖ ≤ eps, then x + δ
    clamped into the box [0, 1]. The same arithmetic as :func:`mma_edu.attacks.pgd.perturb` with the CE loss
    and a zero start (tested against it).
    """
    return _pgd_variant(model, x, y, eps, step_size, steps, norm)


def _pgd_variant(model: Callable, x: Tensor, y: Tensor, eps: float, step_size: float, steps: int, norm: str, *,
                 direction: str | None = None, sign: float = 1.0, project: bool = True, box: bool = True,
                 batch_norm: bool = False, frozen_gradient: bool = False) -> Tensor:
    """:func:`reference_pgd` with one typical mistake switched on (what :func:`check_pgd` recognizes)."""
    direction = direction or norm
    delta = torch.zeros_like(x)
    frozen = None
    for _ in range(steps):
        if frozen_gradient and frozen is not None:
            g = frozen
        else:
            d = delta.clone().requires_grad_(True)
            with torch.enable_grad():
                loss = torch.nn.functional.cross_entropy(model(x + d), y, reduction="sum")
                (g,) = torch.autograd.grad(loss, d)
            frozen = g
        if direction == "linf":
            step = g.sign()
        elif direction == "l2":
            length = g.norm() if batch_norm else g.flatten(1).norm(dim=1).view(-1, *[1] * (g.dim() - 1))
            step = g / length.clamp_min(torch.finfo(g.dtype).tiny)
        else:  # the raw gradient
            step = g
        delta = delta + sign * step_size * step
        if project:
            if norm == "linf":
                delta = delta.clamp(-eps, eps)
            else:
                length = delta.flatten(1).norm(dim=1).view(-1, *[1] * (delta.dim() - 1))
                delta = delta * (eps / length.clamp_min(torch.finfo(delta.dtype).tiny)).clamp(max=1.0)
        if box:
            delta = (x + delta).clamp(0.0, 1.0) - x
    return (x + delta).detach()


def pgd_problem(seed: int = 0) -> tuple[torch.nn.Module, Tensor, Tensor]:
    """A small seeded ReLU classifier and a batch to attack: (model, x (N, 12) in [0, 1], y (N,)).

    Some pixels sit at 0 or 1, so the box constraint binds, as it does on real images.
    """
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(12, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.8)
    x = torch.rand(8, 12, generator=gen)
    x[:, :3] = (x[:, :3] > 0.5).float()  # saturated pixels
    with torch.no_grad():
        y = model(x).argmax(1)  # attack the model's own answers: every example starts correct
    return model.eval(), x, y


def check_pgd(fn: Callable | None, seed: int | None = None) -> bool | None:
    """``fn(model, x, y, eps, step_size, steps, norm) -> x_adv``, against :func:`reference_pgd`, both norms.

    Without ``seed``: the problem :func:`pgd_problem` (0) with fixed settings; with it: a random problem, radii,
    step sizes and numbers of steps (a hidden test: a hard-coded answer fails it).
    """
    if fn is None:
        return _pending("check_pgd")
    rng = random.Random(seed)
    model, x, y = pgd_problem(0 if seed is None else seed)
    settings = {"linf": (0.1, 0.05, 5), "l2": (0.5, 0.25, 5)}
    if seed is not None:
        settings = {n: (round(e * rng.uniform(0.5, 2.0), 4), 0.0, rng.randint(2, 8)) for n, (e, _, _) in settings.items()}
        settings = {n: (e, round(2.5 * e / k, 4), k) for n, (e, _, k) in settings.items()}
    for norm, (eps, alpha, steps) in settings.items():
        case = f"{_NAME[norm]}, eps {eps}, step_size {alpha}, {steps} steps"
        out = fn(model, x.clone(), y.clone(), eps, alpha, steps, norm)
        if out is None:
            return _pending("check_pgd")
        if not torch.is_tensor(out) or out.shape != x.shape:
            _wrong(f"{case}: return the adversarial points x + δ, a tensor of shape {tuple(x.shape)}, got "
                   f"{tuple(out.shape) if torch.is_tensor(out) else type(out).__name__}")
        out = out.detach().to(x.dtype)
        truth = reference_pgd(model, x, y, eps, alpha, steps, norm)
        if torch.allclose(out, truth, rtol=1e-4, atol=1e-5):
            continue
        if out.min() < -1e-6 or out.max() > 1 + 1e-6:
            _wrong(f"{case}: your points leave the image box [0, 1] (values from {out.min():.3f} to "
                   f"{out.max():.3f}): clamp x + δ into [0, 1] after every step.")
        length = (out - x).flatten(1).abs().amax(1) if norm == "linf" else (out - x).flatten(1).norm(dim=1)
        if length.max() > eps * (1 + 1e-4) + 1e-6:
            how = ("clamp every coordinate of δ to [−eps, eps]" if norm == "linf"
                   else "rescale δ to length eps when it is longer")
            _wrong(f"{case}: ‖δ‖ reaches {length.max():.4f} > eps = {eps}: project δ back onto the ball after "
                   f"every step ({how}).")
        other = "l2" if norm == "linf" else "linf"
        variants = {
            "you stepped down the loss: PGD climbs it, δ ← δ + step_size·direction": dict(sign=-1.0),
            "you stepped along the raw gradient: use the steepest-ascent direction of the norm, "
            + ("sign(g) for ℓ∞" if norm == "linf" else "g / ‖g‖₂ for ℓ2"): dict(direction="raw"),
            f"you used the {_NAME[other]} direction ({'sign(g)' if other == 'linf' else 'g / ‖g‖₂'}) for an "
            f"{_NAME[norm]} attack: the step must be the steepest ascent of the attack's own norm":
                dict(direction=other),
            "you normalized the gradient of the whole batch at once: divide each example's gradient by its own "
            "ℓ2 norm (one row per example)": dict(batch_norm=True),
            "you reused the gradient of the first step: recompute it at the current point x + δ every step":
                dict(frozen_gradient=True),
        }
        for hint, kw in variants.items():
            if kw.get("batch_norm") and norm != "l2":
                continue
            if torch.allclose(out, _pgd_variant(model, x, y, eps, alpha, steps, norm, **kw), rtol=1e-4, atol=1e-5):
                _wrong(f"{case}: {hint}.")
        # Sign steps can oscillate with period 2 once δ sits on the cube's faces: k − 1 and k + 1 may agree.
        off = [k for k in (steps - 1, steps + 1)
               if k >= 0 and torch.allclose(out, reference_pgd(model, x, y, eps, alpha, k, norm), rtol=1e-4, atol=1e-5)]
        if off:
            _wrong(f"{case}: your points are PGD's after {' or '.join(map(str, off))} steps, not {steps} (one step "
                   "too many or too few): take exactly `steps` gradient steps, starting from δ = 0.")
        i = int((~torch.isclose(out, truth, rtol=1e-4, atol=1e-5)).any(1).nonzero()[0])
        with torch.no_grad():
            mine = torch.nn.functional.cross_entropy(model(out[i:i + 1]), y[i:i + 1]).item()
            ref = torch.nn.functional.cross_entropy(model(truth[i:i + 1]), y[i:i + 1]).item()
        _wrong(f"{case}: example {i} ends at another point than PGD's (its loss {mine:.4f}, PGD's {ref:.4f}). "
               "Start at δ = 0 (no random start), step, project onto the ball, clamp into [0, 1], repeat.")
    return _correct("your PGD matches the library's step for step, in ℓ∞ and in ℓ2 (sign steps and a clamp to "
                    "the cube; normalized steps and a rescale to the sphere).")
