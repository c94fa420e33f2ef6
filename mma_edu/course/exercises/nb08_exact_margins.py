"""Notebook 8 (exact margins): interval bounds by hand, and IBP as code."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ._common import _correct, _fmt, _pending, _vector, _wrong


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
    from ...bounds import layer_bounds

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
