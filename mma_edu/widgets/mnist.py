"""MNIST digits at their shortest successful perturbation (notebook 5)."""

from __future__ import annotations

import base64

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .. import plots
from ..data import ArrayDataset
from ..margins import estimate_margins
from ..plots import PLOTLY_MIME, figure_json, interactive
from .base import LIVE_HINT, _label, png_bytes


def digit_figure(c: dict, *, norm: str):
    """x, δ* (red brighter, blue darker), x + δ* with square pixels, and the logits of all ten classes."""
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.9), gridspec_kw=dict(width_ratios=[1, 1, 1, 1.7]))
    delta = (c["x_adv"] - c["x"]).numpy()
    lim = float(np.abs(delta).max()) or 1.0
    axes[0].imshow(c["x"], cmap="gray", vmin=0, vmax=1)
    plots.delta_image(axes[1], delta, lim)  # the course's one δ* colour map, with its colour bar
    axes[2].imshow(c["x_adv"], cmap="gray", vmin=0, vmax=1)
    pred = int(c["logits_adv"].argmax())
    titles = ("x", f"δ* ({norm} {c['margin']:.3f})", f"x + δ* → {pred}" if c["found"] else "x + δ* (none found)")
    for a, t in zip(axes[:3], titles):
        a.set_title(t, fontsize=9)
        a.set_xticks([])
        a.set_yticks([])
        a.set_aspect("equal")
    k = np.arange(len(c["logits"]))
    axes[3].bar(k - 0.2, c["logits"], 0.4, label="x")
    axes[3].bar(k + 0.2, c["logits_adv"], 0.4, label="x + δ*")
    axes[3].set_xticks(k)
    axes[3].set_xlabel("class")
    axes[3].legend(fontsize=8)
    axes[3].set_title(f"logits (label {c['y']})", fontsize=9)
    fig.tight_layout()
    return fig


class MNISTMarginExplorer:
    """Pick a test digit by a control ordered by margin (smallest first): the digit, its shortest successful
    perturbation found by AN-PGD (x + δ*) and δ* side by side, interactive (plotly: hover gives pixel values).

    The margins of all digits are searched once, in one batch, so the control can order them. The picture is a
    plain plotly figure re-rendered into an ``ipywidgets.Output`` at every move (not a FigureWidget): it stays
    small, and after a refresh or a reopen it is output data that JupyterLab and Voilà draw again. Headless
    viewers get the matplotlib twin (:func:`digit_figure`) as ``image/png``.
    """

    def __init__(self, model: nn.Module, data: ArrayDataset, *, norm: str, max_eps: float, steps: int = 40,
                 refine: int = 1):
        self.model, self.data, self.norm, self.max_eps = model, data, norm, max_eps
        dev = next(model.parameters()).device
        r = estimate_margins(model, data.x.to(dev), data.y.to(dev), norm=norm, max_eps=max_eps, steps=steps,
                             refine=refine)
        with torch.no_grad():
            model.eval()
            self._logits, self._logits_adv = model(data.x.to(dev)).cpu(), model(r.x_adv).cpu()
        self.result = r.to("cpu")
        self.margin = self.result.margin.detach().cpu().double()
        # Ordered by margin, smallest first; misclassified digits (margin 0) lead, unbroken ones (max_eps) close.
        self.order = torch.argsort(self.margin, stable=True).tolist()
        self.index = W.SelectionSlider(options=[(f"#{i} ({self.margin[i]:.3f})", i) for i in self.order],
                                       value=self.order[0], description="digit", continuous_update=False,
                                       layout=W.Layout(width="560px"))
        self.label = _label("")
        self.output = W.Output(layout=W.Layout(align_self="flex-start"))
        self.index.observe(lambda change: self._draw(change["new"]), names="value")
        self.widget = W.VBox([W.HTML("<small>digits ordered by margin, smallest first (#index, margin)</small>"),
                              self.index, self.label, self.output, W.HTML(LIVE_HINT)])
        self._draw(self.index.value)

    def compute(self, i: int) -> dict:
        """Digit i: x, x_adv (28, 28), label, logits before/after (10,), margin, found."""
        r = self.result
        return dict(x=self.data.x[i, 0], x_adv=r.x_adv[i, 0].detach().cpu(), y=int(self.data.y[i]),
                    logits=self._logits[i], logits_adv=self._logits_adv[i], margin=float(self.margin[i]),
                    found=bool(r.found[i]))

    def select(self, i: int) -> dict:
        """Show digit i from code: the control moves there and the view redraws."""
        i = int(i)
        if not 0 <= i < len(self.data):
            raise ValueError(f"i must be in [0, {len(self.data) - 1}], got {i}")
        if self.index.value != i:
            self.index.value = i  # the observer draws
        return self.compute(i)

    def figure(self):
        """The current digit as a plotly figure (:func:`mma_edu.plots.interactive.digit_views_figure`)."""
        i = self.index.value
        c = self.compute(i)
        return interactive.digit_views_figure(c["x"], c["x_adv"], label=c["y"], pred_adv=int(c["logits_adv"].argmax()),
                                              margin=c["margin"], norm=self.norm, found=c["found"], index=i)

    def _draw(self, i: int) -> None:
        c = self.compute(int(i))
        pred = int(c["logits_adv"].argmax())
        self.label.value = (f"label {c['y']}, predicted {int(c['logits'].argmax())}; {self.norm} margin "
                            f"{c['margin']:.4f}" + (f" → classified as {pred}" if c["found"] else " (none found)"))
        fig = figure_json(self.figure())
        # Set the Output's outputs directly (no capture context): works from any callback, in Voilà, in tests.
        self.output.outputs = ({"output_type": "display_data", "metadata": {},
                                "data": {PLOTLY_MIME: fig, "text/plain": f"digit #{i}"}},)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(png_bytes(digit_figure(self.compute(self.index.value),
                                                                     norm=self.norm))).decode("ascii")
        bundle["text/plain"] = "<MNISTMarginExplorer: interactive in JupyterLab; static view attached>"
        return bundle
