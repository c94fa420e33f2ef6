"""Notebook 4 (AN-PGD): the bisection on one ray, by hand and as code."""

from __future__ import annotations

import math
import random
from typing import Callable

from ._common import _close, _correct, _number, _pending, _wrong


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
