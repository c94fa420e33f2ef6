"""MNIST digits at their shortest successful perturbation (notebook 5)."""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from .. import plots
from ..data import ArrayDataset
from ..margins import estimate_margins
from .base import _Explorer, _label


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


class MNISTMarginExplorer(_Explorer):
    """Pick a test digit: the image, its shortest successful perturbation, the perturbed image, logits."""

    def __init__(self, model: nn.Module, data: ArrayDataset, *, norm: str, max_eps: float, steps: int = 40,
                 refine: int = 1):
        self.model, self.data, self.norm, self.max_eps = model, data, norm, max_eps
        self.steps, self.refine = steps, refine
        self._cache: dict[int, dict] = {}
        self.index = W.IntSlider(value=0, min=0, max=len(data) - 1, description="digit", continuous_update=False)
        self.label = _label("")
        self.index.observe(lambda change: self._draw(change["new"]), names="value")
        self.widget = W.VBox([self.index, self.label, self._make_image()])
        self._draw(0)

    def compute(self, i: int) -> dict:
        """Margin search for digit i (cached): x, x_adv, logits before/after, margin, found."""
        if i not in self._cache:
            x, y = self.data.x[i : i + 1], self.data.y[i : i + 1]
            dev = next(self.model.parameters()).device
            r = estimate_margins(self.model, x.to(dev), y.to(dev), norm=self.norm, max_eps=self.max_eps,
                                 steps=self.steps, refine=self.refine)
            with torch.no_grad():
                self.model.eval()
                la, lb = self.model(x.to(dev))[0].cpu(), self.model(r.x_adv)[0].cpu()
            self._cache[i] = dict(x=x[0, 0], x_adv=r.x_adv[0, 0].cpu(), y=int(y[0]), logits=la, logits_adv=lb,
                                  margin=float(r.margin[0]), found=bool(r.found[0]))
        return self._cache[i]

    def select(self, i: int) -> dict:
        """Show digit i from code: the slider moves there and the view redraws."""
        i = int(i)
        if not 0 <= i < len(self.data):
            raise ValueError(f"i must be in [0, {len(self.data) - 1}], got {i}")
        if self.index.value != i:
            self.index.value = i  # the observer draws
        return self.compute(i)

    def _draw(self, i: int) -> None:
        c = self.compute(int(i))
        pred = int(c["logits_adv"].argmax())
        self.label.value = (f"label {c['y']}, predicted {int(c['logits'].argmax())}; {self.norm} margin "
                            f"{c['margin']:.4f}" + (f" → classified as {pred}" if c["found"] else " (none found)"))
        self.redraw()

    def figure(self):
        return digit_figure(self.compute(self.index.value), norm=self.norm)
