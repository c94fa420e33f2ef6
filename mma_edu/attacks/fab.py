"""FAB: the fast adaptive boundary attack (Croce and Hein, ICML 2020), our own implementation.

A third minimum-norm estimator, for the models where gradient steps from the clean side go astray. Each step
linearizes the model at the current point x_k, for every rival class s the boundary f_s − f_y = 0 as a
hyperplane, takes the nearest of them, and moves toward *its projection*:

1. the shortest step δ_k from x_k onto that hyperplane, inside the box
   (:func:`mma_edu.norms.shortest_step_to_hyperplane`), and the shortest step δ_0 from the clean point x onto
   the same hyperplane;
2. x_{k+1} = (1 − α)(x_k + η δ_k) + α (x + η δ_0), with α = min(‖δ_k‖ / (‖δ_k‖ + ‖δ_0‖), α_max): a bias
   toward the projection of the clean point keeps the path short; η > 1 overshoots a little, so that a
   linear boundary is crossed, not only reached;
3. once x_{k+1} is adversarial its length is a candidate, and the point is pulled back toward x:
   x_{k+1} ← x + β (x_{k+1} − x), so the next steps look for a shorter crossing.

Why it helps on gradient-masked models (issue 24): the step is a *projection* onto a hyperplane, whose
length comes from the logit gap and the whole gradient, not a step along the gradient's direction of a size
set in advance. On a model whose first layer thresholds the pixels, the gradient is nearly flat in most
pixels; PGD and FMN spread their budget over those, while the projection puts the length where the gradient
is, and the pull-back toward x removes what a step wasted.

Every point reported is verified as the other attacks' are: misclassified beyond rounding in a forward pass
of its own (:func:`mma_edu.losses.decides_otherwise`; a point within rounding of the boundary, where FAB's
iterates stop, is first lengthened by 1e-4 to 1e-2 of it), then shortened by bisection along x → x_adv.
Its length is an upper bound of the margin.

Differences from the paper's algorithm, chosen for this package: restarts after the first start at a random
point of the ball of half the shortest length found so far (of ``max_eps`` where none); the final bisection;
the verification. Cost per step: one forward, C − 1 backward passes (the rival classes'
gradients, batched by vmap) and one forward to check the new point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import norms
from ..losses import logit_margin
from ._common import Clip, check_batch, check_count, check_in_range, check_positive, minimum_norm_search, to_box


@dataclass
class FABResult:
    """Output of :func:`fab`; every field has one row per example."""

    x_adv: Tensor  # (N, ...) the shortest adversarial point found (x where none was found or x is misclassified)
    length: Tensor  # (N,) its norm ‖x_adv − x‖: 0 where x is misclassified, inf where nothing was found
    found: Tensor  # (N,) bool: x_adv is misclassified (checked by a forward pass)


def fab(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str,
    steps: int = 100,
    restarts: int = 1,
    alpha_max: float = 0.1,
    eta: float = 1.05,
    beta: float = 0.9,
    search_steps: int = 10,
    max_eps: float | None = None,
    clip: Clip = (0.0, 1.0),
    seed: int | None = None,
) -> FABResult:
    """The shortest adversarial perturbation FAB finds for each example, in ``norm``.

    Args:
        model: module mapping x to logits (N, C); run in eval mode, mode restored after.
        x: inputs (N, ...) in ``clip``; y: labels (N,).
        norm: "linf" or "l2".
        steps: iterations per restart (each: two forwards and C − 1 backward passes).
        restarts: the first restart starts at x; each further one at a random point of the ball of half
            the shortest length found so far (of ``max_eps`` where none; at x without it).
        alpha_max: the largest weight of the clean point's projection, in [0, 1].
        eta: overshoot of each projection step (>= 1).
        beta: the pull-back toward x after an adversarial point, in (0, 1).
        search_steps: bisection steps along x → x_adv at the end (forward passes).
        max_eps: radius of the random starts where nothing was found yet; None: restarts start at x.
        clip: valid box (low, high), or None for unbounded inputs.
        seed: fixes the random starts (the global RNG is left as it was); None draws from the global RNG.

    Returns:
        :class:`FABResult`: x_adv (N, ...), length (N,), found (N,). With ``restarts=1`` it draws no random
        numbers: it is deterministic.
    """
    norms.check_norm(norm)
    check_batch(x, y, clip)
    check_count(steps, "steps", 1)
    check_count(restarts, "restarts", 1)
    check_count(search_steps, "search_steps", 0)
    check_in_range(alpha_max, "alpha_max", 0.0, 1.0)
    if not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta >= 1):
        raise ValueError(f"eta must be a number >= 1, got {eta!r}")
    if check_in_range(beta, "beta", 0.0, 1.0, include_high=False) == 0:
        raise ValueError("beta must be in (0, 1), got 0")
    if max_eps is not None:
        check_positive(max_eps, "max_eps")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")

    def start(r: int, xc: Tensor, known_length: Tensor) -> Tensor:
        if r == 0:
            return xc
        radius = torch.where(torch.isfinite(known_length), known_length / 2, 0.0 if max_eps is None else max_eps / 2)
        return to_box(xc + norms.random_in_ball(xc, radius, norm), clip)

    def run(xc: Tensor, yc: Tensor, x0: Tensor) -> tuple[Tensor, Tensor]:
        return _fab_run(model, xc, yc, x0, norm=norm, steps=steps, alpha_max=alpha_max, eta=eta, beta=beta, clip=clip)

    # FAB stops a hair past the boundary, often within rounding: such a point is lengthened a little (1e-4 to
    # 1e-2 of it) until it changes the decision beyond rounding, or dropped.
    best, length = minimum_norm_search(model, x, y, run, start, norm=norm, restarts=restarts,
                                       search_steps=search_steps, clip=clip, seed=seed, lengthen=True)
    return FABResult(x_adv=best, length=length, found=torch.isfinite(length))


def boundary_gradients(model: nn.Module, x: Tensor, y: Tensor, classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """Every rival class's boundary function g_s = f_s − f_y at x and its gradient.

    x: (N, ...), y: (N,), ``classes``: C. Returns (rivals (N, C−1) the classes s ≠ y, g (N, C−1),
    grad (N, C−1, ...)), from one forward and C − 1 vector-Jacobian products batched by vmap.
    """
    n, k = x.shape[0], classes - 1
    every = torch.arange(classes, device=x.device).expand(n, classes)
    rivals = every[every != y[:, None]].reshape(n, k)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        logits = model(xg)  # one forward; the C − 1 backward passes share it (vmap over the output vectors)
        onehot = torch.nn.functional.one_hot(rivals.T, classes) - torch.nn.functional.one_hot(y, classes)
        try:
            (grad,) = torch.autograd.grad(logits, xg, grad_outputs=onehot.to(logits.dtype), is_grads_batched=True,
                                          retain_graph=True)
        except RuntimeError:  # a layer vmap cannot batch: one backward pass per rival class
            grad = torch.stack([torch.autograd.grad(logits, xg, grad_outputs=v.to(logits.dtype), retain_graph=True)[0]
                                for v in onehot])
        g = logits.detach().gather(1, rivals) - logits.detach().gather(1, y[:, None])
    return rivals, g, grad.transpose(0, 1)


def _fab_run(model: nn.Module, x: Tensor, y: Tensor, start: Tensor, *, norm: str, steps: int, alpha_max: float,
             eta: float, beta: float, clip: Clip) -> tuple[Tensor, Tensor]:
    """One FAB run from ``start`` on correctly classified x (N, ...): (shortest adversarial point, length (N,)).

    The length is inf (and the point x) where no iterate was adversarial.
    """
    n = x.shape[0]
    best = x.clone()
    best_len = torch.full((n,), torch.inf, dtype=x.dtype, device=x.device)
    low, high = (None, None) if clip is None else (clip[0] - x, clip[1] - x)
    xk = start.clone()
    tiny = torch.finfo(x.dtype).tiny
    with torch.no_grad():
        classes = model(x[:1]).shape[1]
    for _ in range(steps):
        _, g, grad = boundary_gradients(model, xk, y, classes)
        dist = g.abs() / norms.dual_norm_of(grad.flatten(0, 1), norm).reshape(g.shape).clamp_min(tiny)
        s = dist.argmin(1)  # the nearest linearized boundary
        w = grad[torch.arange(n, device=x.device), s]  # (N, ...) the nearest boundary's normal
        gs = g.gather(1, s[:, None]).squeeze(1)  # its value at x_k (< 0 on the correct side)
        # the same linearized hyperplane, w·(z − x_k) = −g_s(x_k), seen from x_k and from x
        step_k = norms.shortest_step_to_hyperplane(w, -gs, None if low is None else low - (xk - x),
                                                  None if high is None else high - (xk - x), norm)
        offset = -gs - (w * (x - xk)).flatten(1).sum(1)
        step_0 = norms.shortest_step_to_hyperplane(w, offset, low, high, norm)
        len_k, len_0 = norms.norm_of(step_k, norm), norms.norm_of(step_0, norm)
        alpha = (len_k / (len_k + len_0).clamp_min(tiny)).clamp(max=alpha_max)
        a = norms.per_example(alpha, x)
        xk = to_box((1 - a) * (xk + eta * step_k) + a * (x + eta * step_0), clip)
        with torch.no_grad():
            logits = model(xk)
        # FAB's own test: no longer strictly correct (a tie counts, or an iterate that lands exactly on the
        # boundary has a zero step and stays there); the points it keeps are verified beyond rounding in fab()
        adv = logit_margin(logits, y) >= 0
        length = norms.norm_of(xk - x, norm)
        better = adv & (length < best_len)
        best[better] = xk[better]
        best_len = torch.where(better, length, best_len)
        # pull an adversarial point back toward x: the next steps look for a shorter crossing
        xk = torch.where(norms.per_example(adv, x), x + beta * (xk - x), xk)
    return best, best_len
