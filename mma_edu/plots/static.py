"""Static figures (matplotlib) used by the notebooks and by the widgets' headless views.

Every function draws onto ``ax`` (a new figure when None) and returns the axes
or figure, so notebooks can combine them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection
from torch import Tensor, nn

from .. import norms
from ..presets import eps_label
from .data import CLASS_COLORS, MARKED, ball_outlines, boundary_grid, marked_mask, spread_subset  # noqa: F401 (re-exported)
from .data import margin_parts, unbroken_text
from .data import (EPS_HAT, EPS_HAT_TEX, HISTORY_KEYS, HISTORY_LABELS, accuracy_curves, budget_curves, budget_gaps, history_series,
                   margin_ecdfs, margin_pairs, margin_sandwich, method_color, tradeoff_curves)



def mathtext(label: str) -> str:
    """A plain-text label (:data:`~mma_edu.plots.data.EPS_HAT`, "ε-hat") as matplotlib draws it best: ε with a
    mathtext hat (a combining circumflex U+0302 would land beside the ε)."""
    return label.replace(EPS_HAT, EPS_HAT_TEX)


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    return ax


# The one colour map for perturbations δ* (red: brighter, blue: darker), always drawn with a colour bar.
DELTA_CMAP = "RdBu_r"


def plot_decision_boundary(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    ax=None,
    margins=None,
    norm: str = "l2",
    x_adv: Tensor | None = None,
    title: str | None = None,
    pad: float = 0.5,
    resolution: int = 200,
    marked: int | None = MARKED,
):
    """Decision regions of a 2-D classifier, its points, and optionally some points' margins.

    margins (a :class:`~mma_edu.margins.MarginResult`, or a bare (N,) tensor):
    draws the ball of that radius around a point (circle for ℓ2, square for
    ℓ∞) — it just touches the decision boundary. A point the search did not
    break within max_eps (a MarginResult's unbroken ones) has no known margin,
    only ≥ max_eps: it gets a black × and a legend entry, not a ball of radius
    max_eps (which around a collapsed model's points would be huge and wrong).
    x_adv (N, 2): arrows to the shortest successful perturbation. Balls and
    arrows are drawn for at most ``marked`` points spread evenly over the data
    (ringed in black; None: every point), and a note in the corner says for how many.
    """
    ax = _ax(ax)
    x, y = x.detach().cpu(), y.cpu()
    gx, gy, probs = boundary_grid(model, x, pad=pad, resolution=resolution)
    c = probs.shape[-1]
    pred = probs.argmax(-1)
    ax.contourf(gx, gy, pred, levels=np.arange(c + 1) - 0.5, colors=CLASS_COLORS[:c], alpha=0.18)
    ax.contour(gx, gy, pred, levels=np.arange(c) + 0.5, colors="k", linewidths=1.2)
    for k in range(c):
        m = y == k
        ax.scatter(x[m, 0], x[m, 1], s=14, color=CLASS_COLORS[k], edgecolor="white", linewidth=0.4, zorder=3)
    if margins is not None or x_adv is not None:
        shown = marked_mask(x, marked)
        if shown.sum() < len(x):
            ax.scatter(x[shown, 0], x[shown, 1], s=30, facecolor="none", edgecolor="k", linewidth=0.9, zorder=4)
            what = " and ".join(w for w, v in (("balls", margins), ("δ*", x_adv)) if v is not None)
            ax.text(0.99, 0.01, f"{what} for {int(shown.sum())} of {len(x)} points (ringed)", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=7, bbox=dict(facecolor="white", alpha=0.7, lw=0))
    if margins is not None:
        m, unbroken, max_eps = margin_parts(margins)
        finite = torch.isfinite(m) & (m > 0) & ~unbroken & shown
        outlines = ball_outlines(x[finite], m[finite], norm)
        colors = [CLASS_COLORS[int(k)] for k in y[finite]]
        ax.add_collection(LineCollection(outlines, colors=colors, linewidths=0.9, alpha=0.8, zorder=2))
        if unbroken.any():
            ax.scatter(x[unbroken, 0], x[unbroken, 1], marker="x", s=22, color="k", linewidth=0.9, zorder=5,
                       label=f"{unbroken_text(max_eps)}: {int(unbroken.sum())} of {len(x)}")
            ax.legend(fontsize=7, loc="upper left", framealpha=0.8)
    if x_adv is not None:
        xa = x_adv.detach().cpu()
        moved = ((xa - x).norm(dim=1) > 0) & shown
        ax.quiver(x[moved, 0], x[moved, 1], (xa - x)[moved, 0], (xa - x)[moved, 1], angles="xy",
                  scale_units="xy", scale=1, width=0.005, color="k", alpha=0.8, zorder=4)
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return ax


def plot_decision_boundaries(panels: Mapping[str, tuple], x: Tensor, y: Tensor, *, norm: str = "l2",
                             cols: int = 2, resolution: int = 200, marked: int | None = MARKED):
    """Several 2-D classifiers side by side: ``panels`` maps a panel's title to (model, margins or None; a
    MarginResult marks its unbroken points, see :func:`plot_decision_boundary`);
    one :func:`plot_decision_boundary` each. The interactive twin is
    :func:`mma_edu.plots.interactive.decision_boundary_figure`."""
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.75 * rows), squeeze=False)
    for ax, (title, (model, margins)) in zip(axes.ravel(), panels.items()):
        plot_decision_boundary(model, x, y, ax=ax, margins=margins, norm=norm, title=title, resolution=resolution,
                               marked=marked)
    for ax in axes.ravel()[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_norm_balls(ax=None, radius: float = 1.0):
    """The unit ℓ∞ ball (a square) contains the unit ℓ2 ball (a circle): ‖δ‖∞ ≤ ‖δ‖₂."""
    ax = _ax(ax)
    for norm, color in (("linf", CLASS_COLORS[1]), ("l2", CLASS_COLORS[0])):
        pts = radius * norms.unit_ball_outline(norm, 256).numpy()
        ax.plot(pts[:, 0], pts[:, 1], color=color, label=f"{norm} ball, radius {radius:g}")
    ax.set_aspect("equal")
    ax.set_xlabel("$\\delta_1$")
    ax.set_ylabel("$\\delta_2$")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_robust_accuracy(results: Mapping[str, "object"], ax=None, percent: bool = True, per255: bool = False,
                         level: float | None = 0.95, title: str | None = None):
    """Robust accuracy vs ε for several :class:`~mma_edu.evaluate.RobustAccuracy` results (ε = 0 is clean).

    One line per model in its method's hue (:func:`~mma_edu.plots.data.model_colors`), with its ``level``
    Clopper–Pearson band (None: no band). ``per255``: label ε in units of 1/255 (CIFAR10 ℓ∞), as the paper does.
    The interactive twin is :func:`mma_edu.plots.interactive.robust_accuracy_figure` (same curves).
    """
    ax = _ax(ax)
    scale = 100 if percent else 1
    curves = accuracy_curves(results, percent=percent, level=level or 0.95)
    eps_axis = sorted({e for c in curves for e in c.eps})
    for c in curves:
        ax.plot(c.eps, c.accuracy, marker="o", ms=3, color=c.color, label=f"{c.name} (AvgAcc {c.avg_acc:.1f})")
        if level is not None:
            ax.fill_between(c.eps, c.low, c.high, color=c.color, alpha=0.15, lw=0)
    norm = next(iter(results.values())).norm
    if per255:
        ax.set_xticks(eps_axis, [eps_label(e, True) if e else "0" for e in eps_axis], rotation=45, fontsize=8)
        ax.set_xlabel(f"ε ({norm}, in units of 1/255)")
    else:
        ax.set_xlabel(f"ε ({norm})")
    ax.set_ylabel("robust accuracy" + (" (%)" if percent else ""))
    ax.set_ylim(0, scale * 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_tradeoff(points, ax=None, *, percent: bool = True, title: str | None = None):
    """Clean accuracy (x) against AvgRobAcc (y), one curve per method through its sweep of ε or d_max, each
    point labelled with its size (:func:`~mma_edu.plots.data.tradeoff_curves`). Up and to the right is better:
    a method whose curve lies above another's buys more robustness for the same clean accuracy.
    The interactive twin is :func:`mma_edu.plots.interactive.tradeoff_figure`."""
    ax = _ax(ax)
    unit = " (%)" if percent else ""
    for c in tradeoff_curves(points, percent=percent):
        ax.plot(c.clean, c.avg_rob_acc, marker="o", color=c.color, label=c.label)
        for s, xv, yv in zip(c.sizes, c.clean, c.avg_rob_acc):
            ax.annotate(f"{s:g}", (xv, yv), textcoords="offset points", xytext=(4, 4), fontsize=7, color=c.color)
    ax.set_xlabel("clean accuracy" + unit)
    ax.set_ylabel("AvgRobAcc" + unit)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_margin_histograms(margins: Mapping[str, Tensor], ax=None, bins: int = 30, max_eps: float | None = None,
                           norm: str | None = None, d_max: Mapping[str, float] | None = None):
    """Overlaid histograms of per-example margins, one per model; ``norm`` names the margins' norm on the axis;
    ``d_max`` (model name → its MMA d_max) draws a dotted line at the hinge in the model's colour."""
    ax = _ax(ax)
    top = max_eps or max(float(m.max()) for m in margins.values())
    edges = np.linspace(0, top, bins + 1)
    for i, (name, m) in enumerate(margins.items()):
        # In float64: a float32 margin clamped at max_eps (0.6000000238) would fall past the last edge (0.6).
        m = m.detach().cpu().double().clamp(max=top).numpy()
        ax.hist(m, bins=edges, alpha=0.45, color=method_color(name, i), label=f"{name} (median {np.median(m):.3f})")
        if d_max and name in d_max:
            ax.axvline(d_max[name], color=method_color(name, i), ls=":", lw=1.2, label=f"{name}: d_max {d_max[name]:.3g}")
    unit = f"{norm} " if norm else ""
    ax.set_xlabel(f"{unit}margin (length of the shortest successful perturbation found)")
    ax.set_ylabel("examples")
    ax.legend(fontsize=8)
    return ax


def plot_history(history, keys: Sequence[str] = ("loss", "clean_acc", "margin"), axes=None):
    """Per-epoch curves of a :class:`~mma_edu.train.History` (one panel per key present)."""
    keys = [k for k in keys if any(e.get(k) is not None for e in history.epochs)]
    if axes is None:
        _, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.6 * max(len(keys), 1), 3))
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, keys):
        ax.plot(history.column("epoch"), history.column(key), marker="o", ms=3)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(mathtext(HISTORY_LABELS.get(key, key)))
        ax.grid(alpha=0.3)
    return axes


def plot_margin_ecdf(margins: Mapping[str, Tensor], labels=None, *, max_eps: float | None = None,
                     norm: str | None = None, found: Mapping[str, Tensor] | None = None,
                     d_max: Mapping[str, float] | None = None, ax=None, title: str | None = None):
    """Per-example margins of several models as empirical distribution functions (one step curve each).

    A curve at margin r reads "this fraction of examples has a margin ≤ r". Examples that hit ``max_eps``
    unbroken are ringed; ``d_max`` (model name → its MMA d_max) draws a dotted line in the model's colour.
    The interactive twin is :func:`mma_edu.plots.interactive.margin_ecdf_figure` (same points, with hover).
    """
    ax = _ax(ax)
    for c in margin_ecdfs(margins, labels, max_eps=max_eps, found=found):
        ax.step(c.margin, c.fraction, where="post", color=c.color, label=f"{c.name} (median {c.median:.3f})")
        hit = [k for k, h in enumerate(c.hit) if h]
        if hit:
            ax.scatter([c.margin[k] for k in hit], [c.fraction[k] for k in hit], s=14, facecolor="none",
                       edgecolor=c.color, lw=0.8, zorder=3)
        if d_max and c.name in d_max:
            ax.axvline(d_max[c.name], color=c.color, ls=":", lw=1)
    if max_eps is not None:
        ax.axvline(max_eps, color="k", ls=":", lw=0.8)
    unit = f"{norm} " if norm else ""
    ax.set_xlabel(f"{unit}margin (length of the shortest successful perturbation found)")
    ax.set_ylabel("fraction of examples with margin ≤")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_margin_pairs(pairs: Mapping[str, tuple], labels=None, *, norm: str | None = None,
                      estimate_name: str = "AN-PGD alone", reference_name: str = "best of AN-PGD and FMN", axes=None):
    """Two margin estimates of the same examples, one panel per model (name → (estimate, reference), both
    MarginResults): each example a point (x: the reference, y: the estimate), the diagonal where they agree.
    The estimate's unbroken examples (margin only known to be ≥ max_eps) are drawn at max_eps as grey upward
    triangles, not as points: a point below the diagonal would claim the estimate shorter. The interactive twin
    is :func:`mma_edu.plots.interactive.margin_pairs_figure` (same points, :func:`.data.margin_pairs`)."""
    panels = margin_pairs(pairs, labels)
    if axes is None:
        _, axes = plt.subplots(1, len(panels), figsize=(3.7 * len(panels), 3.6), squeeze=False)
    axes = np.atleast_1d(axes).ravel()
    unit = f" ({norm})" if norm else ""
    for ax, p in zip(axes, panels):
        ok = [k for k, c in enumerate(p.capped) if not c]
        cut = [k for k, c in enumerate(p.capped) if c]
        ax.scatter([p.reference[k] for k in ok], [p.estimate[k] for k in ok], s=8, color=p.color)
        if cut:
            ax.scatter([p.reference[k] for k in cut], [p.estimate[k] for k in cut], marker="^", s=18, color="0.4",
                       label=f"{estimate_name} unbroken at {p.max_eps:g} ({len(cut)}): margin ≥ {p.max_eps:g}")
            ax.legend(fontsize=7, loc="lower right")
        ax.plot([0, p.top], [0, p.top], "k--", lw=0.8)
        ax.set_xlabel(reference_name + unit)
        ax.set_ylabel(estimate_name + unit)
        ax.set_title(p.name, fontsize=9)
    axes[0].figure.tight_layout()
    return axes[0].figure


SANDWICH_STYLE = {"certified": dict(marker="v", color="#3f83c4"), "exact": dict(marker="o", color="k"),
                  "estimate": dict(marker="^", color="#f08c1e")}


def plot_margin_sandwich(certified: Mapping[str, Tensor], exact: Tensor, estimates: Mapping[str, Tensor], *,
                         solved: Tensor, max_eps: float, norm: str = "ℓ∞", ax=None):
    """Certified ≤ exact ≤ estimate per example, sorted by exact margin (see
    :func:`~mma_edu.plots.data.margin_sandwich`); the interactive twin is
    :func:`mma_edu.plots.interactive.margin_sandwich_figure`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    s = margin_sandwich(certified, exact, estimates, solved=solved, max_eps=max_eps)
    shade = {"certified": 0, "estimate": 0}
    # Each series a little to the side of the example's position (a dodge), so that equal values do not hide
    # each other's markers: certified left, exact in the middle, estimates right.
    k_series = len(s.series)
    for j, (name, values) in enumerate(s.series.items()):
        idx = [i + (j - (k_series - 1) / 2) * min(0.6 / max(k_series - 1, 1), 0.2) for i in range(len(s.order))]
        kind = s.kind[name]
        style = dict(SANDWICH_STYLE[kind])
        if kind == "exact":
            ax.plot(idx, values, ls="none", marker="o", mfc="none", ms=7, color="k", label=name)
            continue
        alpha = 1.0 - 0.45 * shade[kind] / max(1, sum(k == kind for k in s.kind.values()) - 1)
        shade[kind] += 1
        ax.plot(idx, values, ls="none", ms=5, alpha=alpha, label=name, **style)
    ax.axhline(max_eps, ls=":", color="k", lw=0.8)
    ax.set_xlabel("example (sorted by exact margin)")
    ax.set_ylabel(f"{norm} margin")
    ax.legend(fontsize=8)
    ax.set_title("the margin sandwich: certified ≤ exact ≤ AN-PGD")
    return ax


def plot_training_curves(history, keys: Sequence[str] = HISTORY_KEYS, *, title: str | None = None, axes=None):
    """Loss, clean accuracy and the median of MMA's margin memory against the training step, one panel each
    (:func:`~mma_edu.plots.data.history_series`; keys the run lacks are left out). ``history``: a History, its
    dict or a run's history.json; the interactive twin is :func:`mma_edu.plots.interactive.training_curves_figure`.
    """
    series = history_series(history, keys)
    if not series:
        raise ValueError(f"history has none of the keys {list(keys)} in its epochs")
    if axes is None:
        _, axes = plt.subplots(1, len(series), figsize=(3.6 * len(series), 3), squeeze=False)
    axes = np.atleast_1d(axes).ravel()
    for ax, (key, (steps, values)) in zip(axes, series.items()):
        ax.plot(steps, values, marker="o", ms=3, color=method_color("MMA") if key.startswith("margin") else "0.3")
        ax.set_title(mathtext(HISTORY_LABELS.get(key, key)), fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if title:
        axes[0].figure.suptitle(title, fontsize=10)
    axes[0].figure.tight_layout()
    return axes


def plot_budget_study(results: dict, axes=None, *, a: str = "mma-0.45", b: str = "pgd-0.4"):
    """The training-budget study in two panels: each model's AvgAcc against its training steps (log scale) with
    95% bands and its other seeds as open markers, and the paired gap ``a`` − ``b`` per budget (seed 0 with its
    interval over digits, the other seeds shifted right a little, their mean with the interval over seeds) with
    the trend line. The interactive twin is :func:`mma_edu.plots.interactive.budget_study_figure` (same numbers:
    :func:`.data.budget_curves`, :func:`.data.budget_gaps`)."""
    curves, gaps = budget_curves(results), budget_gaps(results, a, b)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4))
    left, right = axes
    for c in curves:
        left.plot(c.steps, c.avg_acc, marker="o", color=c.color, label=c.name)
        left.fill_between(c.steps, c.low, c.high, color=c.color, alpha=0.15, lw=0)
        if c.other_seeds:
            left.scatter([st for st, _, _ in c.other_seeds], [acc for _, _, acc in c.other_seeds], s=40,
                         facecolors="none", edgecolors=c.color, linewidths=1.5, label=f"{c.name}, other seeds")
    left.set_xscale("log", base=2)
    left.set_xlabel("training steps (batch 50)")
    left.set_ylabel("AvgAcc (%): clean and ε 0.1–0.4")
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    left.set_title("AvgAcc against the training budget", fontsize=9)
    if gaps.steps:
        err = [[g - lo for g, lo in zip(gaps.gap, gaps.low)], [hi - g for g, hi in zip(gaps.gap, gaps.high)]]
        right.errorbar(gaps.steps, gaps.gap, yerr=err, fmt="o", color="black", capsize=4,
                       label="seed 0, 95% over digits")
    if gaps.seed_points:
        pts = gaps.seed_points
        right.errorbar([st * (1 + 0.05 * sd) for st, sd, *_ in pts], [g for _, _, g, _, _ in pts],
                       yerr=[[g - lo for _, _, g, lo, _ in pts], [hi - g for _, _, g, _, hi in pts]],
                       fmt="o", mfc="none", color="grey", capsize=3, label="other seeds")
    if gaps.mean_steps:
        right.errorbar([st * 0.95 for st in gaps.mean_steps], gaps.mean_gap, fmt="D", color="#d62728", capsize=5,
                       yerr=[[g - lo for g, lo in zip(gaps.mean_gap, gaps.mean_low)],
                             [hi - g for g, hi in zip(gaps.mean_gap, gaps.mean_high)]],
                       label="mean over seeds, 95% over seeds")
    if gaps.line:
        right.plot(gaps.line_steps, gaps.line, "--", color="grey",
                   label=f"{gaps.trend_label}: {gaps.per_doubling:+.1f} points per doubling")
    right.axhline(0, color="red", lw=1)
    budgets = sorted({st for c in curves for st in c.steps} | set(gaps.steps))
    for ax in (left, right):  # the budgets themselves as ticks, not powers of two
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, labels=[f"{st:,}" for st in budgets])
        ax.minorticks_off()
    right.set_xlabel("training steps (batch 50)")
    right.set_ylabel(f"AvgAcc {a} − {b} (points)")
    right.grid(alpha=0.3)
    right.legend(fontsize=7)
    right.set_title("does the gap close with more training?", fontsize=9)
    return axes


def delta_image(ax, delta: Tensor, vmax: float, *, colorbar: bool = True, label: str = "δ* (change of pixel value)"):
    """Draw one perturbation (H, W) with the course's δ* colour map on the symmetric scale [−vmax, vmax].

    Returns the image; with ``colorbar`` a colour bar labelled ``label`` is attached to ``ax``.
    """
    if not vmax > 0:
        raise ValueError(f"vmax must be > 0, got {vmax!r}")
    im = ax.imshow(np.asarray(delta), cmap=DELTA_CMAP, vmin=-vmax, vmax=vmax)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    return im


def pixels_holding(delta: Tensor, share: float = 0.9) -> int:
    """How many pixels hold ``share`` of a perturbation's squared ℓ2 length (few: concentrated; many: spread)."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    sq = torch.sort(delta.detach().double().flatten() ** 2, descending=True).values
    total = float(sq.sum())
    if total == 0:
        return 0
    return int((torch.cumsum(sq, 0) < share * total).sum()) + 1


def plot_deltas(x: Tensor, deltas: Mapping[str, Tensor], *, title: str | None = None):
    """One image (C, H, W) and several perturbations δ of it (name → δ, same shape) on one colour scale, each
    titled with its ℓ2 length and how many pixels hold 90% of its squared length (:func:`pixels_holding`): two
    searches can reach the boundary by very different routes. Returns the figure."""
    if not deltas:
        raise ValueError("deltas must name at least one perturbation")
    vmax = max(float(d.abs().max()) for d in deltas.values()) or 1.0
    fig, axes = plt.subplots(1, len(deltas) + 1, figsize=(3.2 * (len(deltas) + 1), 3.2))
    axes[0].imshow(x.detach().cpu()[0], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("the digit", fontsize=9)
    for k, (ax, (name, d)) in enumerate(zip(axes[1:], deltas.items())):
        d = d.detach().cpu()
        delta_image(ax, d[0], vmax, colorbar=k == len(deltas) - 1)
        ax.set_title(f"{name}: ‖δ‖₂ = {float(d.flatten().norm()):.2f},\n90% of it in {pixels_holding(d)} pixels",
                     fontsize=9)
    for ax in axes:
        ax.set_xticks([]); ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def digit_gallery(x: Tensor, x_adv: Tensor, y: Tensor, pred_adv: Tensor, margins: Tensor, *, norm: str, n: int = 8,
                  vmax: float | None = None):
    """Digits (top), their shortest successful perturbations (middle) and x + δ* (bottom).

    Every δ* is drawn on one symmetric colour scale [−vmax, vmax] (default: the largest |δ*| shown), with
    one colour bar, so that panels — and galleries given the same ``vmax`` — compare at a glance.
    """
    n = min(n, x.shape[0])
    fig, axes = plt.subplots(3, n, figsize=(1.25 * n + 1.0, 4.1), squeeze=False)
    deltas = [(x_adv[i] - x[i])[0].detach().cpu() for i in range(n)]
    if vmax is None:
        vmax = max([float(d.abs().max()) for d in deltas] + [0.0]) or 1.0
    im = None
    for i in range(n):
        axes[0, i].imshow(x[i, 0].detach().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(f"label {int(y[i])}", fontsize=8)
        im = delta_image(axes[1, i], deltas[i], vmax, colorbar=False)
        axes[1, i].set_title(f"{norm} {float(margins[i]):.3f}", fontsize=8)
        axes[2, i].imshow(x_adv[i, 0].detach().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[2, i].set_title(f"→ {int(pred_adv[i])}", fontsize=8)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    axes[0, 0].set_ylabel("x", fontsize=8)
    axes[1, 0].set_ylabel("δ*", fontsize=8)
    axes[2, 0].set_ylabel("x + δ*", fontsize=8)
    fig.tight_layout()
    if im is not None:
        fig.colorbar(im, ax=list(axes[1]), fraction=0.02, pad=0.01, label="δ* (pixel change)")
    return fig


def plot_anpgd_trace(model: nn.Module, x: Tensor, y: Tensor, trace: dict, *, norm: str, eps_init: float,
                     upto: int | None = None, ax=None, pad: float = 0.6):
    """One 2-D example's AN-PGD run, up to step ``upto`` (PGD steps first, then bisection steps).

    Draws the decision boundary, the ball at ε_prev, the PGD path, the ray x + t·u and the
    bisection's tested points with the current bracket [lower, upper] highlighted.
    """
    ax = _ax(ax)
    pgd_path = torch.stack([d[0] for d in trace["pgd"]]).cpu()  # (steps + 1, 2)
    bis = trace["bisect"]
    total = len(pgd_path) + len(bis)
    upto = total if upto is None else max(1, min(upto, total))
    x0 = x[0].detach().cpu()
    plot_decision_boundary(model, x.cpu(), y.cpu(), ax=ax, pad=pad, resolution=150)
    ball = ball_outlines(x0[None], torch.tensor([eps_init]), norm)[0]
    ax.plot(ball[:, 0], ball[:, 1], color="0.3", lw=0.8, ls="--", label=f"ball ε_prev = {eps_init:g}")
    path = x0 + pgd_path[: min(upto, len(pgd_path))]
    ax.plot(path[:, 0], path[:, 1], "-o", ms=2.5, color="#e9a03b", lw=1, label="PGD iterates")
    if upto > len(pgd_path):
        u = (pgd_path[-1] / eps_init).numpy()
        k = upto - len(pgd_path)
        step = bis[k - 1]
        lo, hi = float(step["lower"][0]), float(step["upper"][0])
        t_max = float(bis[0]["upper"][0]) if k else hi
        ray = np.stack([x0.numpy(), x0.numpy() + max(t_max, hi) * u])
        ax.plot(ray[:, 0], ray[:, 1], color="0.5", lw=0.8)
        ts = np.array([float(s["t"][0]) for s in bis[:k]])
        ok = np.array([float(s["value"][0]) < 0 for s in bis[:k]])
        pts = x0.numpy()[None] + ts[:, None] * u[None]
        ax.scatter(pts[ok, 0], pts[ok, 1], marker="o", s=22, facecolor="white", edgecolor="k", zorder=5,
                   label="tested: still correct")
        ax.scatter(pts[~ok, 0], pts[~ok, 1], marker="x", s=26, color="k", zorder=5, label="tested: misclassified")
        seg = np.stack([x0.numpy() + lo * u, x0.numpy() + hi * u])
        ax.plot(seg[:, 0], seg[:, 1], color="#2a9d5c", lw=4, alpha=0.7, label=f"bracket [{lo:.3f}, {hi:.3f}]")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"AN-PGD step {upto} of {total}")
    return ax


def palette_png(fig, *, dpi: float = 100) -> bytes:
    """A matplotlib figure as a palette PNG (256 colours; the figure stays open).

    The course's plots use few colours, so this is about 3-4x smaller than full colour with no visible
    change: executed notebooks stay small (issue: ≤ 2 MB), and a widget sends less on every move.
    """
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    buf.seek(0)
    # Median cut keeps white white and the mean error under 0.1 of 255 (fast octree greys the background).
    img = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def compact_inline(dpi: float = 100) -> bool:
    """In a Jupyter kernel, show every inline matplotlib figure as a :func:`palette_png`.

    Returns False (and changes nothing) outside IPython. The inline backend displays each figure at the end
    of its cell through IPython's ``image/png`` formatter; registering ours for ``Figure`` replaces only the
    encoding, not when or what is shown.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the Jupyter stack we depend on
        return False
    shell = get_ipython()
    if shell is None:
        return False
    from matplotlib.figure import Figure

    shell.display_formatter.formatters["image/png"].for_type(Figure, lambda fig: palette_png(fig, dpi=dpi))
    return True
