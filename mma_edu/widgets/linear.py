"""The linear-margin playground (notebook 1): exact ℓ∞ and ℓ2 margins of sign(⟨w, x⟩ + b) by dual norms."""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from .. import norms, plots
from ..data import toy_2d
from ..margins import linear_shortest_perturbation
from .base import _Explorer


def linear_model_2d(w: tuple[float, float], b: float) -> tuple[Tensor, Tensor]:
    """The binary classifier sign(⟨w, x⟩ + b) as logits z = W x + b' with W (2, 2), b' (2,): z_1 − z_0 = ⟨w, x⟩ + b."""
    weight = torch.tensor([[0.0, 0.0], [float(w[0]), float(w[1])]], dtype=torch.float64)
    bias = torch.tensor([0.0, float(b)], dtype=torch.float64)
    return weight, bias


def linear_margin_summary(w, b: float, x: Tensor, y: Tensor, i: int) -> dict:
    """Point i's exact margins with the numbers of the dual-norm formula d_p = |⟨w, x⟩ + b| / ‖w‖_*.

    Returns dict(score, correct, dual={"linf": ‖w‖₁, "l2": ‖w‖₂}, margin={"linf": d∞, "l2": d₂}),
    margins from :func:`mma_edu.margins.linear_shortest_perturbation` (0 if misclassified).
    """
    weight, bias = linear_model_2d(w, b)
    xi, yi = x[i : i + 1].double(), y[i : i + 1]
    wv = weight[1:2]
    score = float(xi @ wv[0] + bias[1])
    out = {"score": score, "correct": (score > 0) == bool(yi.item()), "dual": {}, "margin": {}, "delta": {}}
    for p in norms.NORMS:
        d, delta = linear_shortest_perturbation(weight, bias, xi, yi, norm=p)
        out["dual"][p] = float(norms.dual_norm_of(wv, p))
        out["margin"][p] = float(d)
        out["delta"][p] = delta[0]
    return out


def linear_margin_figure(w, b: float, x: Tensor, y: Tensor, selected: int, *, ax=None):
    """The line ⟨w, x⟩ + b = 0, the points, and the selected point's exact ℓ∞ square and ℓ2 disc."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.2, 4.8))
    x = x.double()
    s = linear_margin_summary(w, b, x, y, selected)
    lo, hi = (x.min(0).values - 1.0).tolist(), (x.max(0).values + 1.0).tolist()
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    f = w[0] * gx + w[1] * gy + b
    ax.contourf(gx, gy, (f > 0).astype(float), levels=[-0.5, 0.5, 1.5], colors=plots.CLASS_COLORS[:2], alpha=0.18)
    if np.ptp(np.sign(f)) > 0:
        ax.contour(gx, gy, f, levels=[0.0], colors="k", linewidths=1.2)
    pred = (x @ torch.tensor([float(w[0]), float(w[1])], dtype=torch.float64) + b > 0).long()
    for k in (0, 1):
        ok, bad = (y == k) & (pred == y), (y == k) & (pred != y)
        ax.scatter(x[ok, 0], x[ok, 1], s=28, color=plots.CLASS_COLORS[k], edgecolor="white", lw=0.5, zorder=3)
        ax.scatter(x[bad, 0], x[bad, 1], s=50, marker="X", color=plots.CLASS_COLORS[k], edgecolor="k", lw=0.6,
                   zorder=3)
    xi = x[selected]
    styles = {"linf": dict(color="#c0392b", label="ℓ∞"), "l2": dict(color="#1f5fa8", label="ℓ2")}
    for p in norms.NORMS:
        d = s["margin"][p]
        if d > 0:
            ball = plots.ball_outlines(xi[None], torch.tensor([d]), p)[0]
            ax.plot(ball[:, 0], ball[:, 1], lw=1.4, color=styles[p]["color"],
                    label=f"{styles[p]['label']} margin {d:.3f}")
            tip = (xi + s["delta"][p]).numpy()
            ax.annotate("", xy=tip, xytext=xi.numpy(), arrowprops=dict(arrowstyle="->", color=styles[p]["color"]))
    ax.scatter([xi[0]], [xi[1]], s=90, facecolor="none", edgecolor="k", lw=1.5, zorder=4)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"w = ({w[0]:.2f}, {w[1]:.2f}), b = {b:.2f}", fontsize=10)
    return fig


class LinearMarginPlayground(_Explorer):
    """Move w and b of the binary classifier sign(⟨w, x⟩ + b); the selected point's exact margins redraw.

    The formula d_p = |⟨w, x⟩ + b| / ‖w‖_* (ℓ1 for ℓ∞, ℓ2 for ℓ2) is shown with its numbers. Points keep
    their labels, so moving the line past a point misclassifies it (margin 0, drawn as ×).
    """

    def __init__(self, x: Tensor | None = None, y: Tensor | None = None, *, w=(1.0, 1.0), b: float = 0.0,
                 selected: int = 0):
        if x is None:
            data = toy_2d("linear", 12, noise=0.15, seed=1)
            x, y = data.x, data.y
        if x.dim() != 2 or x.shape[1] != 2 or y.shape != (x.shape[0],):
            raise ValueError(f"x must be (N, 2) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
        self.x, self.y = x.double(), y
        slider = dict(min=-3.0, max=3.0, step=0.05, continuous_update=False, readout_format=".2f")
        self.w1 = W.FloatSlider(value=w[0], description="w₁", **slider)
        self.w2 = W.FloatSlider(value=w[1], description="w₂", **slider)
        self.b = W.FloatSlider(value=b, description="b", **slider)
        self.point = W.Dropdown(options=list(range(len(x))), value=selected, description="point")
        self.formula = W.HTMLMath()
        for c in (self.w1, self.w2, self.b, self.point):
            c.observe(lambda _: self._changed(), names="value")
        self.widget = W.VBox([W.HBox([W.VBox([self.w1, self.w2, self.b, self.point]), self.formula]),
                              self._make_image()])
        self._changed()

    @property
    def w(self) -> tuple[float, float]:
        return (self.w1.value, self.w2.value)

    def set(self, *, w=None, b: float | None = None, point: int | None = None) -> None:
        """Set w, b or the selected point from code: the controls move and the view redraws once."""
        self._hold = True  # one redraw for all the controls, not one each
        try:
            if w is not None:
                self.w1.value, self.w2.value = float(w[0]), float(w[1])
            if b is not None:
                self.b.value = float(b)
            if point is not None:
                self.point.value = int(point)
        finally:
            self._hold = False
        self._changed()
        self.refresh()  # the output's static copy follows

    def summary(self) -> dict:
        return linear_margin_summary(self.w, self.b.value, self.x, self.y, self.point.value)

    def _changed(self) -> None:
        if getattr(self, "_hold", False):
            return
        s = self.summary()
        f = f"{s['score']:.3f}"
        if not s["correct"]:
            self.formula.value = (f"point {self.point.value} is <b>misclassified</b> "
                                  f"(⟨w, x⟩ + b = {f}): margin 0")
        else:
            self.formula.value = (
                f"⟨w, x⟩ + b = {f}<br>"
                f"$d_\\infty = |\\langle w, x\\rangle + b| / \\|w\\|_1 = {abs(s['score']):.3f} / {s['dual']['linf']:.3f}"
                f" = {s['margin']['linf']:.3f}$<br>"
                f"$d_2 = |\\langle w, x\\rangle + b| / \\|w\\|_2 = {abs(s['score']):.3f} / {s['dual']['l2']:.3f}"
                f" = {s['margin']['l2']:.3f}$")
        self.redraw()

    def figure(self):
        return linear_margin_figure(self.w, self.b.value, self.x, self.y, self.point.value)
