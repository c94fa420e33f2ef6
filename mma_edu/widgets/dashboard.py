"""The training dashboard (notebook 5): loss, accuracy, margins live during ``fit``."""

from __future__ import annotations

import time

import numpy as np
import matplotlib.pyplot as plt

from .base import _Explorer


def dashboard_figure(steps: list[int], losses: list[float], epochs: list[dict], *, title: str = ""):
    """Loss per step, clean accuracy and average margin per epoch, and the last epoch's margin histogram."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(steps, losses)
    axes[0].set_xlabel("step")
    axes[0].set_title("loss (per step)", fontsize=9)
    ep = [r["epoch"] for r in epochs]
    axes[1].plot(ep, [r.get("clean_acc") for r in epochs], marker="o", label="clean acc")
    if any(r.get("margin") is not None for r in epochs):
        axes[1].plot(ep, [r.get("margin") for r in epochs], marker="o", label="avg margin")
    if epochs:
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("epoch")
    axes[1].set_title("accuracy / margin (per epoch)", fontsize=9)
    hist = epochs[-1].get("margin_hist") if epochs else None
    if hist:
        e = hist["edges"]
        axes[2].bar(e[:-1], hist["counts"], width=np.diff(e), align="edge")
    axes[2].set_xlabel("ε̂")
    axes[2].set_title("margins this epoch", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
        fig.tight_layout(rect=(0, 0, 1, 0.93))  # leave the suptitle its own band above the subplot titles
    else:
        fig.tight_layout()
    return fig


class TrainingDashboard(_Explorer):
    """Live curves during ``fit``: ``dashboard.show()``, then ``fit(..., callbacks=[dashboard.callback])``.

    Loss per step (every ``every`` steps), clean accuracy and average margin per epoch, and the last
    epoch's margin histogram. The picture updates in place (at most once per ``min_interval`` seconds,
    and at every epoch end); the displayed output itself is renewed once, after the last epoch, so a
    headless run keeps the final curves.
    """

    def __init__(self, every: int = 5, title: str = "training", min_interval: float = 2.0):
        self.every, self.title, self.min_interval = every, title, min_interval
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
        return dashboard_figure(self.steps, self.losses, self.epochs, title=self.title)
