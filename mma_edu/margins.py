"""Input-space margins: estimates by AN-PGD and FMN search, and exact values for ground truth.

- :func:`estimate_margins` — any model: the length of the shortest successful
  perturbation found by AN-PGD, by FMN or FAB (minimum-norm attacks), or the
  shortest of several per example (an upper bound of the true margin, since
  every perturbation is checked to really change the prediction).
- :func:`widen_until_broken` — reruns the search with a larger radius for the
  examples it left unbroken.
- :func:`linear_margins` — exact margins of a multiclass linear model (closed form).
- :func:`grid_margins_2d` — margins of any 2-D classifier by dense search.

A margin is only as good as the attack that measured it. AN-PGD alone
overestimates ℓ2 margins of ℓ∞-adversarially trained digit models (the zoo's
``pgd-0.3``, 200 test digits: median 2.22 by AN-PGD, 2.14 by FMN, 2.02 by the
shorter of the two per example); the reason is in :func:`estimate_margins`.
For ℓ2 use ``method="best"``, and ``method="best+fab"`` on models that may mask
their gradients (ℓ∞-adversarially trained ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import norms
from .attacks._common import (
    Clip, as_per_example, check_batch, check_choice, check_count, check_finite, check_labels, check_not_empty,
    check_positive, eval_mode, to_box,
)
from .attacks.anpgd import anpgd
from .attacks.fab import fab
from .attacks.fmn import fmn
from .losses import decides_otherwise, is_correct, logit_margin, rivals

# Margin estimators of :func:`estimate_margins`, and the searches each runs; the margin is the shortest verified point.
_SEARCHES = {"anpgd": ("anpgd",), "fmn": ("fmn",), "fab": ("fab",), "best": ("anpgd", "fmn"),
             "best+fab": ("anpgd", "fmn", "fab")}
METHODS = tuple(_SEARCHES)
# What found each margin: codes of MarginResult.found_by.
FOUND_BY = ("none", "clean", "anpgd", "fmn", "fab")
_CODE = {name: i for i, name in enumerate(FOUND_BY)}


class UnbrokenWarning(UserWarning):
    """Some correctly classified examples were not broken below the search radius max_eps."""


@dataclass(repr=False)
class MarginResult:
    """Per-example margin estimates; every tensor field has one row per example."""

    margin: Tensor  # (N,) length of the shortest successful perturbation found; 0 if misclassified; max_eps if none found
    found: Tensor  # (N,) bool: a successful perturbation (or the clean point itself) was found
    x_adv: Tensor  # (N, ...) that perturbed point (x where misclassified or nothing was found)
    found_by: Tensor | None = None  # (N,) int8: index into FOUND_BY — "none", "clean", "anpgd" or "fmn"
    max_eps: float | None = None  # the search radius; unbroken examples are reported at it, their margins unknown

    @property
    def unbroken(self) -> Tensor:
        """(N,) bool: correctly classified and not broken by the search (margin unknown; reported as max_eps)."""
        return ~self.found

    def found_by_names(self) -> list[str]:
        """Per example, which estimator found its margin ("clean": misclassified; "none": unbroken)."""
        if self.found_by is None:
            return ["unknown"] * self.margin.numel()
        return [FOUND_BY[int(c)] for c in self.found_by]

    def found_by_counts(self) -> dict[str, int]:
        """How many margins each estimator found, e.g. {"clean": 3, "anpgd": 120, "fmn": 77}."""
        names = self.found_by_names()
        return {k: names.count(k) for k in dict.fromkeys(names)}

    def __repr__(self) -> str:
        n = self.margin.numel()
        text = f"MarginResult(n={n}"
        if n:
            text += f", median={self.margin.double().median().item():.4g}"
        if self.found_by is not None:
            text += f", found_by={self.found_by_counts()}"
        k = int(self.unbroken.sum())
        if k:
            text += (f", UNBROKEN {k} of {n} at max_eps={self.max_eps if self.max_eps is not None else '?'}: "
                     "their margin is reported as max_eps but is unknown; widen_until_broken searches further")
        return text + ")"

    @staticmethod
    def cat(parts: "list[MarginResult]") -> "MarginResult":
        """Concatenate results of consecutive batches."""
        by = None if any(p.found_by is None for p in parts) else torch.cat([p.found_by for p in parts])
        return MarginResult(*(torch.cat([getattr(p, f) for p in parts]) for f in ("margin", "found", "x_adv")),
                            found_by=by, max_eps=parts[0].max_eps if parts else None)

    def to(self, device: str | torch.device) -> "MarginResult":
        """The same result with every tensor on ``device``."""
        return MarginResult(self.margin.to(device), self.found.to(device), self.x_adv.to(device),
                            None if self.found_by is None else self.found_by.to(device), self.max_eps)

    def summary(self, thresholds: tuple[float, ...] = ()) -> dict[str, float]:
        """Mean, median, quartiles, fraction found and fraction with margin above each threshold."""
        check_not_empty(self.margin.numel(), "this MarginResult")
        m = self.margin.double()
        out = {
            "n": float(m.numel()),
            "mean": m.mean().item(),
            "median": m.median().item(),
            "q25": m.quantile(0.25).item(),
            "q75": m.quantile(0.75).item(),
            "found": self.found.double().mean().item(),
        }
        for t in thresholds:
            out[f"frac>{t:g}"] = (m > t).double().mean().item()
        return out


def estimate_margins(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str = "linf",
    max_eps: float,
    steps: int = 40,
    search_steps: int = 12,
    restarts: int = 1,
    refine: int = 3,
    step_scale: float = 2.5,
    clip: Clip = (0.0, 1.0),
    batch_size: int | None = None,
    method: str = "anpgd",
    fmn_steps: int = 100,
    targets: int | str = 0,
    fab_steps: int = 100,
) -> MarginResult:
    """Estimate each example's margin: the shortest successful perturbation found.

    ``method="anpgd"`` (the default): for each correctly classified example,
    AN-PGD (logit-margin loss, as at test time) runs PGD at max_eps/2 and
    bisects along the direction found; each of the ``refine`` further rounds
    reruns it at the best length found so far, where PGD finds a better
    direction for that radius (random starts, the last round from the best
    point so far). ``restarts`` repeats everything. Cost per example:
    restarts·(1 + refine)·(steps forward-backward + search_steps + 2 forward).

    ``targets`` (``targets="all"`` is the setting for *measured* margins): after those rounds,
    one more AN-PGD search per rival class, each PGD maximizing f_t − f_y
    toward one class t (the ``targets`` classes with the largest logits at
    x, or all C − 1), at the best radius so far. Cost: ``targets`` more
    rounds, i.e. (1 + refine + targets)/(1 + refine) of the default — 3.25x
    the rounds at refine=3 on ten classes (2.5–2.8x the time measured,
    ``python -m bench.margin_settings``). Why it is needed (issue 24): on
    small ReLU nets trained with MMA or PGD-AT, AN-PGD's estimate with
    refine=3 was at the 95th percentile 1.27–1.48x the exact margin
    (:func:`mma_edu.exact.exact_margins`), worst 1.53x, though its median
    was 1.0002; 3 restarts or "best" change nothing there. Neither the
    bisection (its bracket is 2^-11·max_eps wide) nor the start radius is
    the cause: on every digit of that tail the point found reaches another
    class than the exact one, and PGD *at the exact margin's radius* (x1.01)
    breaks none of them with the logit-margin loss (40 or 200 steps, 10
    restarts; cross-entropy: half), while PGD targeted at the exact point's
    class breaks all of them. The untargeted loss max_{j≠y} f_j − f_y
    climbs toward the class that leads at x, which on robust nets is often
    not the one nearest in input space: a local optimum of the PGD at the
    remembered ε that refining the radius cannot leave. With
    ``targets="all"`` the tail closes: p95 1.008 (MMA) and 1.018 (PGD-AT),
    worst 1.041 (``tests/test_exact.py``); ``targets=3`` is cheaper (1.5x)
    and nearly as good (p95 1.008 / 1.048). Use it where a margin is
    *measured* against a claim; the default keeps the paper's search.

    ``method="fmn"``: the fast minimum-norm attack (:func:`mma_edu.attacks.fmn`,
    ``restarts`` runs of ``fmn_steps`` steps), which follows the decision
    boundary with a shrinking radius instead of running PGD at a fixed one.
    ``method="best"``: both, keeping per example the shorter verified
    perturbation; ``found_by`` says which estimator found each margin.

    ``method="fab"``: FAB, the fast adaptive boundary attack
    (:func:`mma_edu.attacks.fab`, ``restarts`` runs of ``fab_steps`` steps):
    each step projects onto the nearest *linearized* boundary, so its length
    comes from the logit gap and the whole gradient rather than a step size
    set in advance. ``method="best+fab"``: AN-PGD, FMN and FAB, the shortest
    verified point per example — the setting for ℓ2 margins of models that
    may mask their gradients (ℓ∞-adversarially trained ones). Neither minimum-norm
    attack holds on every masked model: on an ℓ∞-PGD-trained LeNet5 FAB finds
    what FMN misses (see the README's margin section for the numbers), and on
    the decoy-threshold model of ``tests/test_fmn.py`` FAB's linearization is
    fooled (2.3x the exact margin) while FMN finds it. Cost: FAB's step is one
    forward, C − 1 backward passes and one more forward.

    Every candidate is checked with a forward pass of its own (inside the
    box, and misclassified by more than rounding could undo:
    :func:`mma_edu.losses.decides_otherwise`, so a point at L_LM = 0 or
    +2e-7, which another batch size or float64 would call correct, is
    refused), and the margin reported is the norm of that checked
    perturbation: an upper bound of the true margin. A candidate that fails
    shortens nothing: the last verified margin stays.

    Why AN-PGD alone overestimates ℓ2 margins of ℓ∞-trained digit models
    (issue 17; the zoo's pgd-0.3 on 200 test digits, ``python -m
    bench.l2_margins`` for the medians): on the 22 digits where AN-PGD's
    margin is more than 1.1x FMN's, PGD *at a fixed radius* 1.02x FMN's
    length breaks none of them — 40 or 100 steps, 5 restarts, logit-margin
    loss, step 2.5/steps or 0.625/steps alike (cross-entropy: 1 of 22) — and
    needs 1.5x that radius to break 59%. So neither the start radius
    (max_eps/2), nor the step rule, nor the loss is the cause: it is gradient
    masking. These models threshold their inputs in the first layer; at x
    only 55% of the gradient's squared ℓ2 norm falls on the 20 pixels FMN
    ends up moving (94% of its perturbation), against 90% at FMN's point (a
    standard model: 23% and 30%). Climbing the loss from the correctly
    classified side, PGD spreads its budget over pixels that do not matter
    (81% of its perturbation on its top 20 pixels), and bisection along the
    ray, scaling all pixels alike, cannot remove them. FMN overshoots the
    boundary first and then shrinks its radius from the adversarial side,
    where the gradient points at the pixels that matter. The box plays a
    part we have not pinned down: without it (``clip=None``) AN-PGD's
    margins on those digits are within 1.1% of FMN's (median), against 19%
    in the box; dropping the gradient's components that push against the
    box does not help PGD. FMN is not always the shorter: on 25% of those
    200 digits AN-PGD's margin is more than 10% below FMN's, hence "best".

    Args:
        model: module mapping x to logits (N, C).
        x: inputs (N, ...) in ``clip``; y: labels (N,).
        norm: "linf" or "l2"; max_eps: the AN-PGD search's upper end (> 0).
            FMN may find (and report) longer perturbations.
        steps, search_steps: PGD and bisection steps per AN-PGD round.
        restarts: independent searches (>= 1); refine: extra AN-PGD rounds each (>= 0).
        clip: valid box, or None for unbounded inputs (2-D toys).
        batch_size: split x into chunks of this size (None: one batch).
        method: "anpgd", "fmn", "fab", "best" or "best+fab" (see above).
        fmn_steps: FMN steps per restart (methods "fmn", "best", "best+fab").
        fab_steps: FAB steps per restart (methods "fab" and "best+fab").
        targets: 0 (default), an int k, or "all": k targeted AN-PGD searches
            toward the k most likely rival classes (see above; methods
            "anpgd", "best" and "best+fab").

    Returns:
        :class:`MarginResult` — ``margin`` (N,) is an upper bound of the true
        margin wherever ``found``; 0 for misclassified examples; ``max_eps``
        with found=False where no successful point was found (see its
        ``unbroken``, its repr and :func:`widen_until_broken`).
    """
    norms.check_norm(norm)
    check_choice(method, "method", METHODS)
    check_batch(x, y, clip)
    check_count(restarts, "restarts", 1)
    check_count(refine, "refine", 0)
    check_count(fmn_steps, "fmn_steps", 1)
    check_count(fab_steps, "fab_steps", 1)
    if targets != "all":
        check_count(targets, "targets", 0)
    searches = _SEARCHES[method]
    if targets and "anpgd" not in searches:
        raise ValueError(f"targets adds targeted AN-PGD searches: use it with method='anpgd', 'best' or 'best+fab', "
                         f"not {method!r}")
    if not (isinstance(max_eps, (int, float)) and math.isfinite(max_eps) and max_eps > 0):
        raise ValueError(f"max_eps must be a positive number, got {max_eps!r}")
    if batch_size is not None:
        check_count(batch_size, "batch_size", 1)
        if x.shape[0] > batch_size:
            return MarginResult.cat([
                estimate_margins(
                    model, x[i : i + batch_size], y[i : i + batch_size], norm=norm, max_eps=max_eps, steps=steps,
                    search_steps=search_steps, restarts=restarts, refine=refine, step_scale=step_scale, clip=clip,
                    method=method, fmn_steps=fmn_steps, targets=targets, fab_steps=fab_steps,
                )
                for i in range(0, x.shape[0], batch_size)
            ])

    x = x.detach()
    with eval_mode(model), torch.no_grad():
        logits = model(x)
        check_labels(logits, y)
        if targets == "all":
            targets = logits.shape[1] - 1
        elif targets > logits.shape[1] - 1:
            raise ValueError(f"targets must be 'all' or <= the number of classes - 1 ({logits.shape[1] - 1}), "
                             f"got {targets}")
        correct = is_correct(logits, y)
        margin = torch.where(correct, float(max_eps), 0.0).to(x.dtype)
        found = ~correct
        found_by = torch.where(correct, _CODE["none"], _CODE["clean"]).to(torch.int8)
        x_best = x.clone()
        idx = torch.nonzero(correct).squeeze(1)
        result = MarginResult(margin=margin, found=found, x_adv=x_best, found_by=found_by, max_eps=float(max_eps))
        if idx.numel() == 0:  # every example misclassified: all margins are 0, nothing to search
            return result
        xc, yc = x[idx], y[idx]
        if "anpgd" in searches:
            _anpgd_search(model, xc, yc, idx, result, norm=norm, steps=steps, search_steps=search_steps,
                          restarts=restarts, refine=refine, step_scale=step_scale, clip=clip, targets=targets)
    if "fmn" in searches:
        res = fmn(model, xc, yc, norm=norm, steps=fmn_steps, restarts=restarts, max_eps=float(max_eps), clip=clip)
        with eval_mode(model), torch.no_grad():
            _keep_if_shorter(model, xc, yc, idx, result, res.x_adv, res.found, "fmn", norm, clip)
    if "fab" in searches:
        res = fab(model, xc, yc, norm=norm, steps=fab_steps, restarts=restarts, max_eps=float(max_eps), clip=clip)
        with eval_mode(model), torch.no_grad():
            _keep_if_shorter(model, xc, yc, idx, result, res.x_adv, res.found, "fab", norm, clip)
    return result


def _keep_if_shorter(model: nn.Module, xc: Tensor, yc: Tensor, idx: Tensor, result: MarginResult, cand: Tensor,
                     ok: Tensor, name: str, norm: str, clip: Clip) -> None:
    """Check candidates ``cand`` (n, ...) for the examples ``idx`` (n,) and keep the shorter ones in ``result``.

    A candidate counts only if it lies in the box and is misclassified beyond
    rounding (:func:`mma_edu.losses.decides_otherwise`; one forward pass here,
    whatever its attack reported); its margin is the norm of that checked
    perturbation. A candidate that fails leaves the example's last verified
    margin as it was.
    """
    inside = torch.ones_like(ok) if clip is None else ((cand >= clip[0]) & (cand <= clip[1])).flatten(1).all(1)
    ok = ok & inside & decides_otherwise(model(cand), yc)
    length = norms.norm_of(cand - xc, norm)
    # An unbroken example's margin is a placeholder (max_eps): any checked point beats it.
    better = ok & (~result.found[idx] | (length < result.margin[idx]))
    result.margin[idx[better]] = length[better]
    result.found[idx[better]] = True
    result.x_adv[idx[better]] = cand[better]
    result.found_by[idx[better]] = _CODE[name]


def _anpgd_search(model: nn.Module, xc: Tensor, yc: Tensor, idx: Tensor, result: MarginResult, *, norm: str,
                  steps: int, search_steps: int, restarts: int, refine: int, step_scale: float, clip: Clip,
                  targets: int = 0) -> None:
    """AN-PGD rounds of :func:`estimate_margins` on the correctly classified xc (n, ...), updating ``result``."""
    margin, found, x_best = result.margin, result.found, result.x_adv
    top = as_per_example(result.max_eps, xc, "max_eps")

    def keep(res) -> None:
        # The upper end of the bracket is the shortest scale seen to succeed.
        cand = to_box(xc + norms.per_example(res.upper, xc) * res.direction, clip)
        ok = res.found & decides_otherwise(model(cand), yc)
        length = norms.norm_of(cand - xc, norm)
        better = ok & (length < margin[idx])
        margin[idx[better]] = length[better]
        found[idx[better]] = True
        x_best[idx[better]] = cand[better]
        result.found_by[idx[better]] = _CODE["anpgd"]

    def best_radius() -> Tensor:
        return torch.where(found[idx], margin[idx], top).clamp_min(1e-12 * float(result.max_eps))

    for _ in range(restarts):
        eps, start = top / 2, None
        for k in range(1 + refine):
            keep(anpgd(
                model, xc, yc, eps, norm=norm, max_eps=top, steps=steps, search_steps=search_steps,
                step_scale=step_scale, loss="lm", clip=clip, start=start,
            ))
            # The next round searches at the best radius so far. Random starts
            # let PGD reach other classes; the last round starts from the best
            # point (random where none was found) to polish its direction.
            eps = best_radius()
            if k == refine - 1:
                start = torch.where(
                    norms.per_example(found[idx], xc), x_best[idx] - xc, norms.random_in_ball(xc, eps, norm)
                )
    if targets:
        # One targeted search per rival class, the most likely first, each at the best radius so far.
        ranked = rivals(model(xc), yc, targets)
        for r in range(targets):
            keep(anpgd(
                model, xc, yc, best_radius(), norm=norm, max_eps=top, steps=steps, search_steps=search_steps,
                step_scale=step_scale, loss="lm", clip=clip, target=ranked[:, r],
            ))


def widen_until_broken(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    result: MarginResult,
    *,
    factor: float = 2.0,
    rounds: int = 3,
    **kwargs,
) -> MarginResult:
    """Search the examples ``result`` left unbroken again, at max_eps·factor, ·factor², … (``rounds`` times).

    ``result`` must come from :func:`estimate_margins` on the same x (N, ...),
    y (N,); ``kwargs`` are its other arguments (norm, method, steps, …; not
    max_eps). Returns a new result: the old margins where they were found, the
    new ones where the wider search broke the example, and ``max_eps`` the
    last radius searched. Examples still unbroken stay so (see its repr).
    """
    if not isinstance(result, MarginResult) or result.max_eps is None:
        raise ValueError("result must be a MarginResult from estimate_margins (it records max_eps)")
    if result.margin.shape[0] != x.shape[0]:
        raise ValueError(f"result has {result.margin.shape[0]} examples, x has {x.shape[0]}")
    check_positive(factor, "factor")
    if factor <= 1:
        raise ValueError(f"factor must be > 1 (the radius grows), got {factor!r}")
    check_count(rounds, "rounds", 1)
    if "max_eps" in kwargs:
        raise ValueError("pass the radius through result (its max_eps), not max_eps=")
    out = MarginResult(result.margin.clone(), result.found.clone(), result.x_adv.clone(),
                       None if result.found_by is None else result.found_by.clone(), result.max_eps)
    for _ in range(rounds):
        todo = torch.nonzero(out.unbroken).squeeze(1)
        out.max_eps = out.max_eps * factor
        if todo.numel() == 0:
            break
        new = estimate_margins(model, x[todo], y[todo], max_eps=out.max_eps, **kwargs)
        out.margin[todo], out.found[todo], out.x_adv[todo] = new.margin.to(out.margin.dtype), new.found, new.x_adv
        if out.found_by is not None:
            out.found_by[todo] = new.found_by
    return out


def linear_shortest_perturbation(
    weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, *, norm: str
) -> tuple[Tensor, Tensor]:
    """Exact margins and shortest successful perturbations of z = W x + b (no box).

    d = min_{j≠y} (z_y − z_j) / ‖w_y − w_j‖_*, with ‖·‖_* the dual norm of
    ``norm`` (ℓ1 for ℓ∞, ℓ2 for ℓ2); δ* = −d · s, where s is the unit
    steepest-ascent direction of ⟨w_y − w_j*, ·⟩ for the closest class j*, so
    that z_y − z_j* drops by exactly d·‖w_y − w_j*‖_* and x + δ* lies on the
    boundary. Misclassified examples get d = 0 and δ* = 0.

    Shapes: weight (C, D), bias (C,), x (N, ...), y (N,) -> d (N,), δ* shaped like x.
    """
    norms.check_norm(norm)
    if not torch.is_tensor(weight) or not torch.is_tensor(bias) or weight.dim() != 2 or bias.shape != (weight.shape[0],):
        raise ValueError(f"weight must be a (C, D) tensor and bias (C,), got {getattr(weight, 'shape', weight)!r} "
                         f"and {getattr(bias, 'shape', bias)!r}")
    check_batch(x, y, None)  # the same shape and label checks as the attacks
    check_not_empty(x.shape[0], "x")
    check_finite(weight, "weight")
    check_finite(bias, "bias")
    if int(y.max()) >= weight.shape[0]:
        raise ValueError(f"y must be < the number of classes ({weight.shape[0]}), got max {int(y.max())}")
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != weight.shape[1]:
        raise ValueError(f"x has {flat.shape[1]} features per example, weight expects {weight.shape[1]}")
    c = weight.shape[0]
    z = flat @ weight.T + bias  # (N, C)
    # ‖w_c − w_j‖_* for every pair of classes: (C, C)
    pair = norms.dual_norm_of((weight[:, None, :] - weight[None, :, :]).reshape(-1, weight.shape[1]), norm)
    gap = z.gather(1, y[:, None]) - z  # (N, C): z_y − z_j
    own = torch.nn.functional.one_hot(y, c).bool()
    # The true class's own entry is 0/0: divide by 1 there so autograd sees no NaN.
    dist = (gap / pair.reshape(c, c)[y].masked_fill(own, 1.0)).masked_fill(own, float("inf"))
    d, closest = dist.min(dim=1)
    d = d.clamp_min(0)
    direction = norms.steepest_ascent(weight[y] - weight[closest], norm)  # (N, D)
    return d, (-d[:, None] * direction).reshape(x.shape)


def linear_margins(weight: Tensor, bias: Tensor, x: Tensor, y: Tensor, *, norm: str) -> Tensor:
    """Exact margins (N,) of the linear model z = W x + b; see :func:`linear_shortest_perturbation`."""
    return linear_shortest_perturbation(weight, bias, x, y, norm=norm)[0]


@dataclass
class GridMargins:
    """Margins of a 2-D classifier by dense search; fields (N,) except ``tolerance``."""

    margin: Tensor  # (N,) distance to the nearest grid point classified otherwise (inf if none)
    found: Tensor  # (N,) bool: such a grid point exists inside the searched square
    tolerance: float  # the estimate lies in [true margin, true margin + tolerance] for boundaries resolved by the grid


def grid_margins_2d(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str,
    resolution: float = 0.005,
    pad: float = 1.0,
    chunk: int = 65536,
) -> GridMargins:
    """Margins of any classifier of 2-D points by evaluating it on a dense grid.

    The model is evaluated once on a square grid of spacing ``resolution``
    covering the points' bounding box plus ``pad`` on every side. An example's
    margin is its distance (in ``norm``) to the nearest grid point where its
    label loses (L_LM ≥ 0); only grid points on the edge of that region need
    checking. A true boundary point lies within one grid step of such a point,
    so the estimate is at most ``tolerance`` = resolution·√2 (ℓ2) or
    resolution (ℓ∞) above the true margin, and never below it, wherever the
    misclassified region is wider than a grid cell. Margins beyond ``pad`` are
    reported as inf with found=False.

    Shapes: x (N, 2), y (N,) -> GridMargins with (N,) fields.
    """
    norms.check_norm(norm)
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"x must have shape (N, 2), got {tuple(x.shape)}")
    check_batch(x, y, None)
    if not resolution > 0 or not pad > 0:
        raise ValueError(f"resolution and pad must be > 0, got {resolution!r} and {pad!r}")
    lo = x.min(0).values - pad
    hi = x.max(0).values + pad
    nx, ny = (int(math.ceil(v)) + 1 for v in ((hi - lo) / resolution).tolist())
    if nx * ny > 2e7:
        raise ValueError(f"the grid would have {nx * ny:,} points; raise resolution or lower pad")
    gx = lo[0] + resolution * torch.arange(nx, dtype=x.dtype, device=x.device)
    gy = lo[1] + resolution * torch.arange(ny, dtype=x.dtype, device=x.device)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)  # (nx·ny, 2)
    with eval_mode(model), torch.no_grad():
        logits = torch.cat([model(grid[i : i + chunk]) for i in range(0, grid.shape[0], chunk)])
        check_labels(logits, y)
        clean_correct = is_correct(model(x), y)
    margin = torch.full((x.shape[0],), float("inf"), dtype=x.dtype, device=x.device)
    for c in torch.unique(y).tolist():
        labels = torch.full((grid.shape[0],), c, dtype=torch.long, device=x.device)
        lost = (logit_margin(logits, labels) >= 0).reshape(nx, ny)
        # Edge of the region where class c loses: a losing grid point next to a winning one.
        edge = torch.zeros_like(lost)
        edge[1:] |= lost[1:] & ~lost[:-1]
        edge[:-1] |= lost[:-1] & ~lost[1:]
        edge[:, 1:] |= lost[:, 1:] & ~lost[:, :-1]
        edge[:, :-1] |= lost[:, :-1] & ~lost[:, 1:]
        pts = grid[edge.reshape(-1)]
        rows = torch.nonzero(y == c).squeeze(1)
        if pts.numel() == 0 or rows.numel() == 0:
            continue
        p = 2.0 if norm == "l2" else float("inf")
        margin[rows] = torch.cdist(x[rows], pts, p=p).amin(dim=1)
    margin = torch.where(clean_correct, margin, torch.zeros_like(margin))
    # Beyond pad the grid was not searched: a farther point proves nothing.
    found = margin <= pad
    margin = torch.where(found, margin, torch.full_like(margin, float("inf")))
    tol = resolution * (math.sqrt(2.0) if norm == "l2" else 1.0)
    return GridMargins(margin=margin, found=found, tolerance=tol)
