"""The course's figures, in one place: each figure's data (:mod:`.data`), its matplotlib picture
(:mod:`.static`) and, where interaction teaches, its plotly twin (:mod:`.interactive`).

``from mma_edu import plots`` gives the matplotlib functions as before (``plots.plot_decision_boundary``, ...)
and the notebooks' interactive figures, each an :class:`Interactive` that JupyterLab shows with plotly (hover,
zoom, legend clicks) and every other viewer as the matplotlib twin's PNG:

- :func:`robust_accuracy` — robust accuracy against ε with confidence bands (notebooks 05, 07);
- :func:`margin_ecdf` — per-example margin distributions with hover (05, 07, 08);
- :func:`margin_pairs` — two margin estimates of the same examples, one point per example (07);
- :func:`margin_sandwich` — certified ≤ exact ≤ AN-PGD per digit (08);
- :func:`decision_boundaries` — 2-D toy boundaries with margin balls, zoomable (03);
- :func:`tradeoff` — clean accuracy against AvgRobAcc over a sweep of ε and d_max (03);
- :func:`plot_run` / :func:`training_curves` — loss, clean accuracy, median margin memory of a run (05, CLI);
- :func:`budget_study` — AvgAcc against the training budget and the MMA − PGD-AT gap with its trend (05).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from . import data, interactive, static
from .data import HISTORY_KEYS, HISTORY_LABELS, METHOD_SHADES, method_color, model_colors, read_history
from .show import PLOTLY_MIME, Interactive, figure_json
from .static import (CLASS_COLORS, DELTA_CMAP, MARKED, ball_outlines, boundary_grid, compact_inline, delta_image,
                     digit_gallery, palette_png, pixels_holding, plot_anpgd_trace, plot_budget_study,
                     plot_decision_boundaries, plot_decision_boundary, plot_deltas, plot_history, plot_margin_ecdf,
                     plot_margin_histograms, plot_margin_pairs, plot_margin_sandwich, plot_norm_balls,
                     plot_robust_accuracy, plot_tradeoff, plot_training_curves, spread_subset)


def robust_accuracy(results: Mapping[str, "object"], *, percent: bool = True, per255: bool = False,
                    level: float = 0.95, title: str | None = None) -> Interactive:
    """Robust-accuracy curves with confidence bands, interactive (:func:`.interactive.robust_accuracy_figure`)
    with the picture of :func:`.static.plot_robust_accuracy` as fallback."""
    return Interactive(interactive.robust_accuracy_figure(results, percent=percent, per255=per255, level=level,
                                                          title=title),
                       plot_robust_accuracy(results, percent=percent, per255=per255, level=level, title=title))


def margin_ecdf(margins: Mapping[str, "object"], labels=None, *, max_eps: float | None = None,
                norm: str | None = None, found=None, d_max: Mapping[str, float] | None = None,
                title: str | None = None) -> Interactive:
    """Margin distributions (one point per example, hover: index, label, margin, hit max_eps), interactive
    (:func:`.interactive.margin_ecdf_figure`) with :func:`.static.plot_margin_ecdf` as fallback."""
    kw = dict(max_eps=max_eps, norm=norm, found=found, d_max=d_max, title=title)
    return Interactive(interactive.margin_ecdf_figure(margins, labels, **kw), plot_margin_ecdf(margins, labels, **kw))


def margin_pairs(pairs: Mapping[str, tuple], labels=None, *, norm: str | None = None,
                 estimate_name: str = "AN-PGD alone", reference_name: str = "best of AN-PGD and FMN",
                 title: str | None = None) -> Interactive:
    """Two margin estimates of the same examples (name → (estimate, reference) MarginResults), one panel per
    model, one point per example (hover: index, label, both margins, which search found the reference),
    interactive (:func:`.interactive.margin_pairs_figure`) with :func:`.static.plot_margin_pairs` as fallback."""
    kw = dict(norm=norm, estimate_name=estimate_name, reference_name=reference_name)
    return Interactive(interactive.margin_pairs_figure(pairs, labels, title=title, **kw),
                       plot_margin_pairs(pairs, labels, **kw))


def margin_sandwich(certified, exact, estimates, *, solved, max_eps: float, norm: str = "ℓ∞") -> Interactive:
    """Certified ≤ exact ≤ AN-PGD per example, interactive (:func:`.interactive.margin_sandwich_figure`) with
    :func:`.static.plot_margin_sandwich` as fallback."""
    kw = dict(solved=solved, max_eps=max_eps, norm=norm)
    return Interactive(interactive.margin_sandwich_figure(certified, exact, estimates, **kw),
                       plot_margin_sandwich(certified, exact, estimates, **kw))


def decision_boundaries(panels, x, y, *, norm: str = "l2", cols: int = 2, marked: int | None = MARKED) -> Interactive:
    """2-D decision boundaries with margin balls, zoomable (:func:`.interactive.decision_boundary_figure`), with
    :func:`.static.plot_decision_boundaries` as fallback; ``panels`` maps a title to (model, margins or None)."""
    return Interactive(interactive.decision_boundary_figure(panels, x, y, norm=norm, cols=cols, marked=marked),
                       plot_decision_boundaries(panels, x, y, norm=norm, cols=cols, marked=marked))


def tradeoff(points, *, percent: bool = True, title: str | None = None) -> Interactive:
    """Clean accuracy against AvgRobAcc, one curve per method through its ε or d_max sweep (points: e.g.
    :func:`mma_edu.toy.sweep_2d`'s), interactive (:func:`.interactive.tradeoff_figure`) with
    :func:`.static.plot_tradeoff` as fallback."""
    return Interactive(interactive.tradeoff_figure(points, percent=percent, title=title),
                       plot_tradeoff(points, percent=percent, title=title))


def training_curves(history, keys: Sequence[str] = HISTORY_KEYS, *, title: str | None = None) -> Interactive:
    """A run's loss, clean accuracy and median margin memory against the step (a History or its dict)."""
    return Interactive(interactive.training_curves_figure(history, keys, title=title),
                       plot_training_curves(history, keys, title=title))


def budget_study(results: dict | None = None, *, a: str = "mma-0.45", b: str = "pgd-0.4") -> Interactive:
    """The training-budget study (:mod:`mma_edu.budget_study`; default: its shipped results), interactive
    (:func:`.interactive.budget_study_figure`) with :func:`.static.plot_budget_study` as fallback."""
    if results is None:
        from ..budget_study import load_results

        results = load_results()
    return Interactive(interactive.budget_study_figure(results, a=a, b=b), plot_budget_study(results, a=a, b=b))


def plot_run(folder, keys: Sequence[str] = HISTORY_KEYS) -> Interactive:
    """The training curves of a run folder (its history.json, as ``mma-edu train --out FOLDER`` writes it)."""
    from pathlib import Path

    return training_curves(read_history(folder), keys, title=f"run {Path(folder).name}")


__all__ = [
    "CLASS_COLORS", "DELTA_CMAP", "HISTORY_KEYS", "HISTORY_LABELS", "Interactive", "MARKED", "METHOD_SHADES",
    "PLOTLY_MIME", "ball_outlines", "budget_study", "plot_budget_study", "boundary_grid", "decision_boundaries", "compact_inline", "data", "delta_image", "digit_gallery",
    "figure_json", "interactive", "margin_ecdf", "margin_pairs", "margin_sandwich", "method_color", "model_colors", "palette_png",
    "pixels_holding", "plot_anpgd_trace", "plot_decision_boundaries", "plot_deltas", "plot_decision_boundary", "plot_history", "plot_margin_ecdf", "plot_margin_histograms",
    "plot_margin_pairs", "plot_margin_sandwich", "plot_norm_balls", "plot_robust_accuracy", "plot_run", "plot_tradeoff", "plot_training_curves",
    "read_history", "robust_accuracy", "spread_subset", "static", "tradeoff", "training_curves",
]
