"""2-D toys (notebooks 1-3): train a small net, see its margins, and see which ε-balls a fixed ε over-perturbs."""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from .. import norms, plots
from ..data import TOYS, ArrayDataset, toy_2d
from ..margins import MarginResult, estimate_margins
from ..toy import METHODS_2D, method_2d, train_2d  # noqa: F401 (re-exported: the widgets' API)
from .base import _Explorer, _label


def margin_figure_2d(model: nn.Module, data: ArrayDataset, margins: MarginResult, *, norm: str, title: str,
                     ax=None):
    """Decision regions, each point's margin ball and its arrow to δ* (the view of :class:`MarginExplorer2D`);
    a point the search did not break within max_eps gets a × instead of a ball (its margin is only ≥ max_eps)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 5))
    plots.plot_decision_boundary(model, data.x, data.y, ax=ax, margins=margins, norm=norm,
                                 x_adv=margins.x_adv, title=title)
    ax.title.set_fontsize(9)
    return fig


class MarginExplorer2D(_Explorer):
    """Retrain a 2-D classifier with the chosen method and see its margins.

    Controls: dataset, norm, method (standard, PGD-AT at ε, MMA with d_max)
    and the size ε/d_max; "Train" retrains (a few seconds on a CPU).
    """

    def __init__(self, dataset: str = "moons", norm: str = "l2", method: str = "mma", size: float = 0.3,
                 n: int = 120, noise: float = 0.1, epochs: int = 150, seed: int = 0):
        self.dataset = W.Dropdown(options=TOYS, value=dataset, description="data")
        self.norm = W.ToggleButtons(options=norms.NORMS, value=norm, description="norm")
        self.method = W.ToggleButtons(options=METHODS_2D, value=method, description="method")
        self.size = W.FloatSlider(value=size, min=0.02, max=1.0, step=0.02, description="ε / d_max",
                                  continuous_update=False)
        self.button = W.Button(description="Train", button_style="primary", icon="play")
        self.status = W.HTML()
        self.n, self.noise, self.epochs, self.seed = n, noise, epochs, seed
        self.button.on_click(lambda _: self.update())
        for c in (self.dataset, self.norm, self.method, self.size):  # the picture is of the last training
            c.observe(lambda _: self._stale(), names="value")
        controls = W.VBox([self.dataset, self.norm, self.method, W.HBox([self.size, self.button]), self.status])
        self.widget = W.VBox([controls, self._make_image()])
        self.update()

    def _stale(self) -> None:
        if not self.button.disabled:
            self.status.value = ("<b>settings changed: press Train</b> (the picture shows the last training: "
                                 + getattr(self, "title", "none yet") + ")")

    def update(self) -> None:
        """Retrain with the current controls, re-estimate the margins, redraw."""
        self.status.value = "training…"
        self.button.disabled = True
        try:
            self.data = toy_2d(self.dataset.value, self.n, noise=self.noise, seed=self.seed)
            self.model, self.history = train_2d(self.data, self.method.value, self.size.value, self.norm.value,
                                                epochs=self.epochs, seed=self.seed)
            self.margins: MarginResult = estimate_margins(self.model, self.data.x, self.data.y,
                                                          norm=self.norm.value, max_eps=1.5, clip=None, steps=30,
                                                          refine=2)
            acc = float((self.margins.margin > 0).float().mean())
            self.title = (f"{self.method.value} ({self.norm.value}, {self.size.value:g}): train acc {acc:.2f}, "
                          f"median margin {self.margins.margin.median():.3f}")
            self.redraw()
            self.status.value = self.title
        finally:
            self.button.disabled = False

    def figure(self):
        return margin_figure_2d(self.model, self.data, self.margins, norm=self.norm.value, title=self.title)


def over_perturbed(margins: Tensor, eps: float) -> Tensor:
    """(N,) bool: the ε-ball crosses the decision boundary, i.e. the margin is below ε.

    PGD-AT at ε trains these examples at a point that may lie past the boundary (over-perturbation).
    """
    return margins < eps


def over_perturbation_figure(model: nn.Module, x: Tensor, y: Tensor, margins: Tensor, eps: float, *, norm: str,
                             name: str = "", ax=None, marked: int | None = plots.MARKED):
    """Decision regions; every over-perturbed point (margin < ε) ringed in black; the ε-balls of ``marked``
    points spread over the data (None: all), solid black where the ball crosses the boundary, dashed grey where
    it does not. Black, not red: red is a class colour (:data:`~mma_edu.plots.CLASS_COLORS`)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 5))
    x = x.detach().cpu()
    plots.plot_decision_boundary(model, x, y, ax=ax)
    over = over_perturbed(margins.cpu(), eps)
    ax.scatter(x[over, 0], x[over, 1], s=42, facecolor="none", edgecolor="k", linewidth=1.1, zorder=4,
               label=f"over-perturbed: margin < ε ({int(over.sum())} of {len(x)})")
    shown = plots.data.marked_mask(x, marked)
    idx = shown.nonzero().reshape(-1)
    balls = plots.ball_outlines(x[idx], torch.full((len(idx),), float(eps)), norm, n=48)
    for ball, bad in zip(balls, over[idx].tolist()):
        ax.plot(ball[:, 0], ball[:, 1], lw=1.0 if bad else 0.8, color="k" if bad else "0.45",
                ls="-" if bad else "--", alpha=0.9 if bad else 0.7, zorder=3)
    ax.plot([], [], color="k", lw=1.0, label=f"ε-ball crossing the boundary ({len(idx)} balls drawn)")
    ax.plot([], [], color="0.45", lw=0.8, ls="--", label="ε-ball inside its class")
    ax.legend(fontsize=7, loc="upper right", framealpha=0.8)
    frac = float(over.float().mean())
    ax.set_title(f"{name + ': ' if name else ''}ε = {eps:.2f} ({norm}): {frac:.0%} of the points over-perturbed "
                 "(ringed: margin < ε)", fontsize=9)
    return fig


class OverPerturbationView(_Explorer):
    """Slide a PGD-AT ε over trained 2-D nets: ringed points have ε-balls that cross the boundary (margin < ε).

    ``models`` maps a name to (model, margins (N,)) on the same points x, y; nothing is retrained, so
    the view follows the slider at once.
    """

    def __init__(self, models: dict[str, tuple[nn.Module, Tensor]], x: Tensor, y: Tensor, *, norm: str,
                 eps: float = 0.3, max_eps: float = 1.0):
        if not models:
            raise ValueError("models must name at least one (model, margins) pair")
        for name, (_, m) in models.items():
            if m.shape != (len(x),):
                raise ValueError(f"margins of {name!r} must have shape ({len(x)},), got {tuple(m.shape)}")
        self.models, self.x, self.y, self.norm = models, x, y, norms.check_norm(norm)
        self.model = W.Dropdown(options=list(models), description="model")
        self.eps = W.FloatSlider(value=eps, min=0.0, max=max_eps, step=0.02, description="ε",
                                 continuous_update=False)
        self.label = _label("")
        for c in (self.model, self.eps):
            c.observe(lambda _: self._changed(), names="value")
        self.widget = W.VBox([W.HBox([self.model, self.eps]), self.label, self._make_image()])
        self._changed()

    def set(self, *, eps: float | None = None, model: str | None = None) -> None:
        """Set ε or the model from code: the controls move and the view redraws."""
        if model is not None:
            self.model.value = model
        if eps is not None:
            self.eps.value = float(eps)
        self.refresh()  # the output's static copy follows

    def fraction(self) -> float:
        return float(over_perturbed(self.models[self.model.value][1], self.eps.value).float().mean())

    def _changed(self) -> None:
        self.label.value = (f"{self.fraction():.0%} of the points have a margin below ε = {self.eps.value:.2f}: "
                            "PGD-AT at this ε over-perturbs them")
        self.redraw()

    def figure(self):
        model, margins = self.models[self.model.value]
        return over_perturbation_figure(model, self.x, self.y, margins, self.eps.value, norm=self.norm,
                                        name=self.model.value)
