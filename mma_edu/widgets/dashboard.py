"""The training dashboard (notebook 5): loss, accuracy, margins live during ``fit``."""

from __future__ import annotations

import time

import numpy as np
import matplotlib.pyplot as plt

from ..plots.data import EPS_HAT_TEX
from .base import _Explorer
from .memory import MAXEPS_FACTOR


def dashboard_figure(steps: list[int], losses: list[float], epochs: list[dict], *, title: str = "",
                     d_max: float | None = None, max_eps: float | None = None):
    """Loss per step; clean accuracy (0–1) and average margin per epoch, each on its own axis; the last epoch's
    margin histogram. With ``d_max`` (MMA), lines at d_max and at the search's end ``max_eps`` (default
    1.05·d_max): the digits AN-PGD could not break pile up there, past the hinge."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    axes[0].plot(steps, losses)
    axes[0].set_xlabel("step")
    axes[0].set_title("loss (per step)", fontsize=9)
    ep = [r["epoch"] for r in epochs]
    axes[1].plot(ep, [r.get("clean_acc") for r in epochs], marker="o", color="#3b6fb6")
    axes[1].set_ylim(0, 1.02)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("clean accuracy")
    axes[1].set_title("clean accuracy (per epoch)", fontsize=9)
    if d_max is not None:
        max_eps = MAXEPS_FACTOR * d_max if max_eps is None else max_eps
    if any(r.get("margin") is not None for r in epochs):
        axes[2].plot(ep, [r.get("margin") for r in epochs], marker="o", color="#2a9d5c")
    if d_max is not None:
        axes[2].axhline(d_max, color="k", ls=":", lw=0.8, label="d_max")
        axes[2].legend(fontsize=8)
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel(f"mean {EPS_HAT_TEX} (0 outside S⁺)")
    axes[2].set_title("average margin in memory (per epoch)", fontsize=9)
    hist = epochs[-1].get("margin_hist") if epochs else None
    if hist:
        e = hist["edges"]
        axes[3].bar(e[:-1], hist["counts"], width=np.diff(e), align="edge", color="#2a9d5c")
    if d_max is not None:
        axes[3].axvline(d_max, color="k", ls=":", lw=0.8, label="d_max (the hinge)")
        axes[3].axvline(max_eps, color="#7b4fa0", ls="--", lw=0.8, label=f"maxeps = {max_eps / d_max:.3g}·d_max: unbroken")
        axes[3].legend(fontsize=7, loc="upper left")
    axes[3].set_xlabel(EPS_HAT_TEX)
    axes[3].set_title("margins this epoch", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.93))  # leave the suptitle its own band above the subplot titles
    else:
        fig.tight_layout()
    return fig


class TrainingDashboard(_Explorer):
    """Live curves during ``fit``: ``dashboard.show()``, then ``fit(..., callbacks=[dashboard.callback])``.

    Loss per step (every ``every`` steps), clean accuracy and average margin per epoch (two axes), and the last
    epoch's margin histogram; ``d_max``/``max_eps`` (MMA) draw the hinge and the search's end. The picture updates in place (at most once per ``min_interval`` seconds,
    and at every epoch end); the displayed output itself is renewed once, after the last epoch, so a
    headless run keeps the final curves.
    """

    def __init__(self, every: int = 5, title: str = "training", min_interval: float = 2.0, *,
                 d_max: float | None = None, max_eps: float | None = None):
        self.every, self.title, self.min_interval = every, title, min_interval
        self.d_max, self.max_eps = d_max, max_eps
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.epochs: list[dict] = []
        self._last = 0.0
        self.widget = self._make_image(hint=False)  # no controls: nothing to make live
        self.redraw()

    def callback(self, event) -> None:
        """Give this to ``fit(..., callbacks=[dashboard.callback])``."""
        now = time.monotonic()
        if event.kind == "step" and event.step % self.every == 0:
            self.steps.append(event.step)
            self.losses.append(event.record["loss"])
            if now - self._last >= self.min_interval:
                self._last = now
                self.redraw()
        elif event.kind == "epoch":
            self.epochs.append(event.record)
            self._last = now
            self.redraw()
            if event.step >= event.history.config.get("steps", float("inf")):
                self.refresh()

    def figure(self):
        return dashboard_figure(self.steps, self.losses, self.epochs, title=self.title, d_max=self.d_max,
                                max_eps=self.max_eps)
