"""AN-PGD step by step (notebook 4): PGD at ε_prev, then the bisection's bracket, in a window sized to the run."""

from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from .. import norms, plots
from ..attacks import anpgd
from .base import _Explorer, _label


def anpgd_view_halfwidth(trace: dict, eps_init: float, direction: Tensor, upper: float, norm: str) -> float:
    """Half-width of a square window around x that holds the ε_prev ball, the PGD path and the final bracket.

    Sized to the run (25% room), not to max_eps, so a path of radius 0.16 fills the view.
    """
    path = torch.stack([d[0] for d in trace["pgd"]]).double()  # (steps + 1, 2) offsets from x
    norms.check_norm(norm)
    # The ε_prev ball (square or disc) fits in the square of half-width ε_prev; the bracket ends at x + upper·u.
    far = max(eps_init, float(path.abs().max()), upper * float(direction.abs().max()))
    return 1.25 * far


def anpgd_step_figure(model: nn.Module, x: Tensor, y: Tensor, trace: dict, *, norm: str, eps_init: float,
                      step: int, halfwidth: float, ax=None):
    """AN-PGD up to ``step`` (PGD first, then bisection) in the window x ± halfwidth."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.2, 5))
    plots.plot_anpgd_trace(model, x, y, trace, norm=norm, eps_init=eps_init, upto=step, ax=ax, pad=halfwidth)
    x0 = x[0].detach().cpu().double()
    ax.set_xlim(float(x0[0]) - halfwidth, float(x0[0]) + halfwidth)
    ax.set_ylim(float(x0[1]) - halfwidth, float(x0[1]) + halfwidth)
    ax.set_aspect("equal")
    return fig


class ANPGDStepThrough(_Explorer):
    """Step through one AN-PGD run on a 2-D point: PGD iterates, then the bisection's bracket."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, *, eps_init: float, norm: str, max_eps: float,
                 steps: int = 10, search_steps: int = 10, loss: str = "lm", seed: int = 0):
        if x.shape != (1, 2):
            raise ValueError(f"x must be one 2-D point of shape (1, 2), got {tuple(x.shape)}")
        self.model, self.x, self.y, self.norm, self.eps_init = model, x, y, norm, eps_init
        self.trace: dict = {}
        torch.manual_seed(seed)
        self.result = anpgd(model, x, y, eps_init, norm=norm, max_eps=max_eps, steps=steps,
                            search_steps=search_steps, loss=loss, clip=None, trace=self.trace)
        self.total = len(self.trace["pgd"]) + len(self.trace["bisect"])
        self.halfwidth = anpgd_view_halfwidth(self.trace, eps_init, self.result.direction[0],
                                              float(self.result.upper[0]), norm)
        self.slider = W.IntSlider(value=1, min=1, max=self.total, description="step", continuous_update=True)
        self.label = _label("")
        self.slider.observe(lambda change: self._draw_step(change["new"]), names="value")
        self.widget = W.VBox([self.slider, self.label, self._make_image()])
        self._draw_step(1)

    def view(self, k: int) -> dict:
        """What step k shows: the PGD path so far, bisection points tested, the bracket."""
        k = max(1, min(int(k), self.total))
        x0 = self.x[0]
        n_pgd = len(self.trace["pgd"])
        path = x0 + torch.stack([d[0] for d in self.trace["pgd"][: min(k, n_pgd)]])
        out = {"step": k, "phase": "pgd" if k <= n_pgd else "bisect", "path": path, "tests": x0[None][:0],
               "bracket": None}
        if k > n_pgd:
            u = self.result.direction[0]
            done = self.trace["bisect"][: k - n_pgd]
            ts = torch.stack([s["t"][0] for s in done])
            last = done[-1]
            out["tests"] = x0 + ts[:, None] * u
            out["bracket"] = (float(last["lower"][0]), float(last["upper"][0]))
            out["segment"] = torch.stack([x0 + last["lower"][0] * u, x0 + last["upper"][0] * u])
        return out

    def show_step(self, k: int) -> dict:
        """Go to step k from code: the slider moves there and the view redraws."""
        k = max(1, min(int(k), self.total))
        if self.slider.value != k:
            self.slider.value = k  # the observer draws
            self.refresh()  # the output's static copy follows
        return self.view(k)

    def _draw_step(self, k: int) -> None:
        v = self.view(k)
        self.label.value = (f"step {v['step']} / {self.total} ({v['phase']}): "
                            + (f"bracket [{v['bracket'][0]:.4f}, {v['bracket'][1]:.4f}]" if v["bracket"]
                               else f"PGD at ε_prev = {self.eps_init:g}"))
        self.redraw()

    def sequence_figure(self, steps: tuple[int, ...] | None = None):
        """The run as a row of panels, for viewers without the slider (a saved notebook, a printout): by default
        the start, the last PGD iterate, two bisection steps later, and the end. Returns the figure."""
        n_pgd = len(self.trace["pgd"])
        if steps is None:
            steps = tuple(dict.fromkeys(min(k, self.total) for k in (1, n_pgd, n_pgd + 2, self.total)))
        bad = [k for k in steps if not (isinstance(k, int) and 1 <= k <= self.total)]
        if not steps or bad:
            raise ValueError(f"steps must be step numbers in [1, {self.total}], got {steps!r}")
        fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 4.2), squeeze=False)
        for ax, k in zip(axes[0], steps):
            anpgd_step_figure(self.model, self.x, self.y, self.trace, norm=self.norm, eps_init=self.eps_init,
                              step=k, halfwidth=self.halfwidth, ax=ax)
            ax.title.set_fontsize(9)
            if ax is not axes[0, -1]:
                ax.get_legend().remove()
        fig.tight_layout()
        return fig

    def figure(self):
        return anpgd_step_figure(self.model, self.x, self.y, self.trace, norm=self.norm, eps_init=self.eps_init,
                                 step=self.slider.value, halfwidth=self.halfwidth)
