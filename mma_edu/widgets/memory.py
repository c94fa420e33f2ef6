"""MMA's margin memory during training (notebook 3): each example's ε̂ over epochs."""

from __future__ import annotations

import time

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from ..plots.data import EPS_HAT_TEX
from .base import _Explorer


# AN-PGD's search range in MMA: maxeps = 1.05·d_max (the paper, §3; MMA.hinge_factor). An example still unbroken
# at maxeps ends the bisection there, so its remembered ε̂ is maxeps: above d_max, hence dropped by the hinge.
MAXEPS_FACTOR = 1.05


def at_maxeps(memory: Tensor, max_eps: float, rtol: float = 1e-3) -> Tensor:
    """(…) bool: the entries of a margin memory that sit at ``max_eps`` (unbroken at the search's end)."""
    return (memory.double() - max_eps).abs() <= rtol * max_eps


def margin_memory_figure(memory: Tensor, epoch: int, *, d_max: float | None = None, max_eps: float | None = None,
                         shown: int = 24, axes=None):
    """Each example's ε̂ over epochs (left: ``shown`` examples spread over the final ranks, and the median)
    and the distribution at ``epoch`` (right). memory: (epochs, N), row e the memory after epoch e + 1.
    With ``d_max``, lines at d_max and at the search's end ``max_eps`` (default 1.05·d_max), where the examples
    AN-PGD could not break pile up."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw=dict(width_ratios=[1.5, 1]))
    else:
        fig = axes[0].figure
    m = memory.double().cpu()
    epochs = np.arange(1, m.shape[0] + 1)
    order = torch.argsort(m[-1])
    pick = order[torch.linspace(0, m.shape[1] - 1, min(shown, m.shape[1])).round().long()]
    cmap = plt.get_cmap("viridis")
    for r, i in enumerate(pick.tolist()):
        axes[0].plot(epochs, m[:, i].numpy(), lw=0.8, color=cmap(r / max(len(pick) - 1, 1)), alpha=0.8)
    axes[0].plot(epochs, m.median(1).values.numpy(), color="k", lw=2.2, label="median over all examples")
    if d_max is not None:  # AN-PGD searches up to maxeps = 1.05·d_max: an example unbroken there keeps maxeps
        max_eps = MAXEPS_FACTOR * d_max if max_eps is None else max_eps
        axes[0].axhline(d_max, color="k", ls=":", lw=0.8, label="d_max (the hinge)")
        axes[0].axhline(max_eps, color="#7b4fa0", ls="--", lw=0.8, label=f"maxeps = {max_eps / d_max:.3g}·d_max")
    axes[0].axvline(epoch, color="#d62728", lw=0.8)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel(f"{EPS_HAT_TEX} in memory")
    axes[0].legend(fontsize=8, loc="lower right")
    axes[0].set_title(f"{len(pick)} of {m.shape[1]} examples' {EPS_HAT_TEX} over epochs", fontsize=9)
    row = m[min(max(epoch, 1), m.shape[0]) - 1]
    top = float(m.max()) or 1.0
    axes[1].hist(row.numpy(), bins=30, range=(0, top), color="#2a9d5c")
    axes[1].set_xlabel(EPS_HAT_TEX)
    title = f"epoch {epoch}: median {row.median():.3f}, {(row == 0).float().mean():.0%} at 0"
    if d_max is not None:
        axes[1].axvline(d_max, color="k", ls=":", lw=0.8)
        axes[1].axvline(max_eps, color="#7b4fa0", ls="--", lw=0.8)
        title += f", {at_maxeps(row, max_eps).float().mean():.0%} at maxeps"
    axes[1].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


class MarginMemory(_Explorer):
    """MMA's margin memory live during training: ``fit(..., callbacks=[memory.callback])``.

    After every epoch it copies ``method.margins`` (each training example's ε̂; 0 where the example was
    misclassified). The slider picks the epoch whose distribution is drawn.
    """

    def __init__(self, method, *, d_max: float | None = None, min_interval: float = 1.0):
        if not hasattr(method, "margins"):
            raise ValueError(f"method must keep a margin memory (MMA), got {type(method).__name__}")
        self.method, self.d_max, self.min_interval = method, d_max, min_interval
        self.rows: list[Tensor] = []
        self._last = 0.0
        self.epoch = W.IntSlider(value=1, min=1, max=1, description="epoch", continuous_update=False)
        self.epoch.observe(lambda _: self.redraw(), names="value")
        self.widget = W.VBox([self.epoch, self._make_image()])
        self.redraw()

    @property
    def memory(self) -> Tensor:
        """(epochs, N): row e is the memory after epoch e + 1."""
        return torch.stack(self.rows) if self.rows else torch.zeros(0, 0)

    def callback(self, event) -> None:
        if event.kind != "epoch" or self.method.margins is None:
            return
        self.rows.append(self.method.margins.detach().float().cpu().clone())
        last = event.step >= event.history.config.get("steps", float("inf"))
        with self.epoch.hold_trait_notifications():
            self.epoch.max = len(self.rows)
        now = time.monotonic()
        if last or now - self._last >= self.min_interval:
            self._last = now
            if self.epoch.value == len(self.rows):
                self.redraw()
            else:
                self.epoch.value = len(self.rows)  # follows training; the observer draws
        if last:
            self.refresh()

    def figure(self):
        if not self.rows:
            fig, ax = plt.subplots(figsize=(10, 3.6))
            ax.text(0.5, 0.5, "waiting for the first epoch…", ha="center", va="center")
            ax.set_axis_off()
            return fig
        return margin_memory_figure(self.memory, self.epoch.value, d_max=self.d_max,
                                    max_eps=getattr(self.method, "max_eps", None))
