"""Interactive explorers for the notebooks: ipywidgets controls around one picture.

- :class:`LinearMarginPlayground` — move w and b of a linear classifier; its exact ℓ∞ and ℓ2 margins
  (dual norms) redraw with the formula.
- :class:`MarginExplorer2D` — pick a 2-D dataset, norm, method and ε/d_max; a small net is retrained
  and its decision boundary, margins (balls) and shortest successful perturbations (arrows) are drawn.
- :class:`OverPerturbationView` — slide a PGD-AT ε over trained 2-D nets: which points' ε-balls cross
  the decision boundary (margin < ε, over-perturbed).
- :class:`ANPGDStepThrough` — a slider over the PGD and bisection steps of AN-PGD.
- :class:`MarginMemory` — MMA's margin memory during training: each example's ε̂ over epochs.
- :class:`MNISTMarginExplorer` — pick a test digit by a control ordered by margin: x, δ*, x + δ* side by side
  (plotly, hover), margin and predictions.
- :class:`TrainingDashboard` — loss, accuracy and margin histogram updating during ``fit``.

**Design.** Every view is a *pure figure function* (module level, matplotlib, no widgets: the tests
call it) and a *thin widget*: controls plus an ``ipywidgets.Image`` that holds the view as PNG.
Because the picture is the widget's own synced state, it survives what broke the plotly
FigureWidgets these replaced: a browser-tab refresh (the frontend asks the kernel for every
model's state, picture included), a saved notebook reopened on a fresh kernel (the saved widget
state holds the picture; ``make lab`` turns on JupyterLab's saving of widget state), Voilà, and
headless runs (the output also carries the same PNG as ``image/png``; no JavaScript bundle, so an
executed notebook stays small). The MNIST explorer differs: its picture is a
plain plotly figure (:mod:`mma_edu.plots.interactive`) re-rendered into an ``ipywidgets.Output`` — output data
too, so it survives the same events, and hover over pixels teaches there — never a ``go.FigureWidget`` (5 MB
per widget in a saved notebook, dead after a reopen). Controls are the single source of truth: setting a view from code
(``show_step``, ``select``, ``set``) moves its control, which redraws.
"""

from .anpgd import ANPGDStepThrough, anpgd_step_figure, anpgd_view_halfwidth
from .base import DPI, png_bytes
from .dashboard import TrainingDashboard, dashboard_figure
from .linear import LinearMarginPlayground, linear_margin_figure, linear_margin_summary, linear_model_2d
from .memory import MAXEPS_FACTOR, MarginMemory, at_maxeps, margin_memory_figure
from .mnist import MNISTMarginExplorer, digit_figure
from .toy2d import (METHODS_2D, MarginExplorer2D, OverPerturbationView, margin_figure_2d, method_2d,
                    over_perturbation_figure, over_perturbed, train_2d)

__all__ = [
    "ANPGDStepThrough", "DPI", "LinearMarginPlayground", "METHODS_2D", "MNISTMarginExplorer", "MarginExplorer2D",
    "MarginMemory", "OverPerturbationView", "TrainingDashboard", "anpgd_step_figure", "anpgd_view_halfwidth",
    "dashboard_figure", "digit_figure", "linear_margin_figure", "linear_margin_summary", "linear_model_2d",
    "MAXEPS_FACTOR", "at_maxeps", "margin_figure_2d", "margin_memory_figure", "method_2d", "over_perturbation_figure", "over_perturbed",
    "png_bytes", "train_2d",
]
