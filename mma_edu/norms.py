"""All norm-specific math in one place: ℓ∞ and ℓ2 balls around a batch of inputs.

Every function works per example: a batch ``x`` has shape (N, ...) and a radius
``eps`` is a tensor of shape (N,) (one radius per example, as AN-PGD needs).
Norms are taken over all non-batch dimensions, so an image (N, C, H, W) and a
2-D point (N, 2) are treated alike.

Nothing outside this module branches on the name of a norm.
"""

from __future__ import annotations

import torch
from torch import Tensor

NORMS = ("linf", "l2")

# Dual norms: the margin of a linear model under an ℓ∞ attack is measured with
# the ℓ1 norm of the weight difference, under ℓ2 with the ℓ2 norm.
DUAL = {"linf": "l1", "l2": "l2"}


def check_norm(norm: str, name: str = "norm") -> str:
    """Return ``norm`` if it is a supported attack norm, else raise a clear ValueError."""
    if norm not in NORMS:
        raise ValueError(f"{name} must be one of {NORMS!r}, got {norm!r}")
    return norm


def per_example(eps: Tensor, like: Tensor) -> Tensor:
    """View a (N,) tensor as (N, 1, 1, ...) so that it broadcasts against ``like`` (N, ...)."""
    return eps.reshape((-1,) + (1,) * (like.dim() - 1))


def _flat(v: Tensor) -> Tensor:
    return v.flatten(1) if v.dim() > 1 else v[:, None]


def lp_norm(v: Tensor, p: str) -> Tensor:
    """Per-example norm of ``v`` (N, ...) -> (N,), with p in {"linf", "l2", "l1"}."""
    flat = _flat(v)
    if p == "linf":
        return flat.abs().amax(dim=1) if flat.shape[1] else flat.new_zeros(flat.shape[0])
    if p == "l2":
        return flat.norm(p=2, dim=1)
    if p == "l1":
        return flat.abs().sum(dim=1)
    raise ValueError(f"p must be 'linf', 'l2' or 'l1', got {p!r}")


def norm_of(delta: Tensor, norm: str) -> Tensor:
    """Attack-norm length of each perturbation: (N, ...) -> (N,)."""
    return lp_norm(delta, check_norm(norm))


def dual_norm_of(v: Tensor, norm: str) -> Tensor:
    """Dual norm (ℓ1 for ℓ∞ attacks, ℓ2 for ℓ2 attacks) of each row: (N, ...) -> (N,)."""
    return lp_norm(v, DUAL[check_norm(norm)])


def project(delta: Tensor, eps: Tensor, norm: str) -> Tensor:
    """Project each perturbation onto its ball {‖δ‖ ≤ eps_i}.

    delta: (N, ...); eps: (N,) non-negative. Returns a tensor shaped like delta.
    """
    e = per_example(eps, delta)
    if check_norm(norm) == "linf":
        return torch.maximum(torch.minimum(delta, e), -e)
    length = per_example(norm_of(delta, "l2"), delta)
    # Scale only those outside the ball; the clamp keeps 0/0 from appearing.
    scale = torch.clamp(e / length.clamp_min(torch.finfo(delta.dtype).tiny), max=1.0)
    return delta * scale


def steepest_ascent(grad: Tensor, norm: str) -> Tensor:
    """Unit-norm direction of steepest ascent for a linear function with gradient ``grad``.

    ℓ∞: sign(grad); ℓ2: grad / ‖grad‖₂ (and exactly 0 where the gradient is 0,
    never NaN). Shapes: (N, ...) -> (N, ...).
    """
    if check_norm(norm) == "linf":
        return grad.sign()
    length = per_example(norm_of(grad, "l2"), grad)
    return grad / length.clamp_min(torch.finfo(grad.dtype).tiny)


def random_in_ball(like: Tensor, eps: Tensor, norm: str) -> Tensor:
    """A sample uniform in each example's ball of radius eps_i: (N, ...) like ``like``.

    ℓ∞: independent uniform coordinates in [-eps, eps]. ℓ2: a Gaussian direction
    scaled by eps·U^(1/d), which is uniform in the d-dimensional ball.
    Uses torch's global RNG (seed it with ``torch.manual_seed``).
    """
    e = per_example(eps, like)
    if check_norm(norm) == "linf":
        return (torch.rand_like(like) * 2 - 1) * e
    direction = steepest_ascent(torch.randn_like(like), "l2")
    d = like[0].numel()
    radius = torch.rand(like.shape[0], dtype=like.dtype, device=like.device) ** (1.0 / d)
    return direction * per_example(radius, like) * e


def shortest_step_to_hyperplane(w: Tensor, c: Tensor, low: Tensor | None, high: Tensor | None, norm: str) -> Tensor:
    """The shortest δ with w·δ = c_i and low <= δ <= high, per example (a step onto a linearized boundary).

    w, low, high: (N, ...); c: (N,), of either sign. ``low`` <= 0 <= ``high`` are the box's room around the
    point (lo − x, hi − x), or None for no box. Returns δ (N, ...); where the hyperplane lies beyond the box,
    the box's corner nearest to it (the farthest the box allows along ±w).

    Why exact: for c > 0 the minimizer has the form δ_i(t) = clip(t·v_i, low_i, high_i) with v = w (ℓ2) or
    sign(w) (ℓ∞) (the KKT conditions of min ‖δ‖ under one linear constraint and the box), and w·δ(t) is
    piecewise linear and non-decreasing in t with one kink where each coordinate reaches its bound: sorting
    the kinks gives t in one pass. For c < 0 the same with −w and −c.
    """
    flip = torch.where(c < 0, -1.0, 1.0).to(w.dtype)
    w = w * per_example(flip, w)
    c = c * flip
    n = w.shape[0]
    wf = _flat(w)
    v = wf if check_norm(norm) == "l2" else wf.sign()
    inf = torch.full_like(wf, torch.inf)
    lo = -inf if low is None else _flat(low)
    hi = inf if high is None else _flat(high)
    bound = torch.where(v > 0, hi, torch.where(v < 0, lo, torch.zeros_like(wf)))  # where each δ_i stops
    kink = torch.where(v != 0, bound / torch.where(v != 0, v, 1.0), torch.zeros_like(wf))  # t at which it stops
    rate = v * wf  # d(w·δ)/dt while δ_i moves (>= 0)
    kink, order = torch.sort(kink, dim=1)
    rate, bound_w = rate.gather(1, order), (bound * wf).gather(1, order)
    # Before kink k every coordinate from k on still moves: w·δ(t) = t·(rate after k) + (w·bound before k).
    moving = rate.flip(1).cumsum(1).flip(1)
    stopped = torch.cat([bound_w.new_zeros(n, 1), bound_w.nan_to_num(0.0).cumsum(1)[:, :-1]], dim=1)
    reach = torch.where(torch.isfinite(kink), kink * moving + stopped, torch.inf)  # w·δ at each kink
    cc = c.reshape(n, 1).to(wf.dtype)
    # The first kink at which w·δ reaches c; t lies between the previous kink and it.
    k = (reach < cc).sum(1, keepdim=True).clamp(max=wf.shape[1] - 1)
    t = ((cc - stopped.gather(1, k)) / moving.gather(1, k).clamp_min(torch.finfo(wf.dtype).tiny)).squeeze(1)
    beyond = (reach[:, -1:] < cc).squeeze(1) & torch.isfinite(reach[:, -1])
    t = torch.where(beyond, torch.inf, t).clamp_min(0.0)
    t = torch.where(c.to(wf.dtype) > 0, t, 0.0)  # c = 0: already on it
    step = torch.minimum(torch.maximum(t[:, None] * v, lo), hi)
    step = torch.where(v == 0, 0.0, step)  # 0·inf
    return step.reshape(w.shape)


def unit_ball_outline(norm: str, n: int = 256) -> Tensor:
    """Points on the boundary of the 2-D unit ball, (n, 2): a circle (ℓ2) or a square (ℓ∞).

    Used by plots that draw each point's margin as a ball around it.
    """
    t = torch.linspace(0, 2 * torch.pi, n)
    circle = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    if check_norm(norm) == "l2":
        return circle
    return circle / circle.abs().amax(dim=1, keepdim=True)
