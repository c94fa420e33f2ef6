"""Interactive explorers for the notebooks: ipywidgets controls around one picture.

- :class:`LinearMarginPlayground` — move w and b of a linear classifier; its exact ℓ∞ and ℓ2 margins
  (dual norms) redraw with the formula.
- :class:`MarginExplorer2D` — pick a 2-D dataset, norm, method and ε/d_max; a small net is retrained
  and its decision boundary, margins (balls) and shortest successful perturbations (arrows) are drawn.
- :class:`OverPerturbationView` — slide a PGD-AT ε over trained 2-D nets: which points' ε-balls cross
  the decision boundary (margin < ε, over-perturbed).
- :class:`ANPGDStepThrough` — a slider over the PGD and bisection steps of AN-PGD.
- :class:`MarginMemory` — MMA's margin memory during training: each example's ε̂ over epochs.
- :class:`MNISTMarginExplorer` — pick a test digit: x, δ*, x + δ*, logits, margin.
- :class:`TrainingDashboard` — loss, accuracy and margin histogram updating during ``fit``.

**Design.** Every view is a *pure figure function* (module level, matplotlib, no widgets: the tests
call it) and a *thin widget*: controls plus an ``ipywidgets.Image`` that holds the view as PNG.
Because the picture is the widget's own synced state, it survives what broke the plotly
FigureWidgets these replaced: a browser-tab refresh (the frontend asks the kernel for every
model's state, picture included), a saved notebook reopened on a fresh kernel (the saved widget
state holds the picture; ``make lab`` turns on JupyterLab's saving of widget state), Voilà, and
headless runs (the output also carries the same PNG as ``image/png``; no JavaScript bundle, so an
executed notebook stays small). Controls are the single source of truth: setting a view from code
(``show_step``, ``select``, ``set``) moves its control, which redraws.
"""

from __future__ import annotations

import base64
import io
import time

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from . import norms, plots
from .attacks import anpgd
from .data import TOYS, ArrayDataset, toy_2d
from .margins import MarginResult, estimate_margins, linear_shortest_perturbation
from .models import MLP

METHODS_2D = ("standard", "pgd", "mma")
DPI = 80  # PNG resolution of every view: sharp on a projector, ~30-80 KB per picture


def png_bytes(fig) -> bytes:
    """A matplotlib figure as a palette PNG (the figure is closed).

    256 colours are plenty for these plots and make the PNG about 3x smaller than full colour: less to send
    on every move of a control, and less for a notebook to carry (each picture is saved twice, as the
    widget's state and as the output's image/png).
    """
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    img = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


class _Explorer:
    """Base: ``self.widget`` is the live view; ``figure()`` draws the current state (matplotlib)."""

    widget: W.Widget
    image: W.Image

    def _make_image(self) -> W.Image:
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto"))
        return self.image

    def figure(self):
        raise NotImplementedError

    def redraw(self) -> None:
        """Draw the current state into the picture (PNG bytes in the Image widget's state)."""
        self.image.value = png_bytes(self.figure())

    def show(self):
        """Display now and keep a handle, so :meth:`refresh` can renew the headless copy later."""
        from IPython.display import display

        self._handle = display(self, display_id=True)

    def refresh(self) -> None:
        """Renew the displayed output (widget and its ``image/png`` copy) if :meth:`show` displayed it."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.update(self)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        # Live frontends render the widget; headless renderers (papermill, nbconvert, the course site,
        # untrusted notebooks) show the same picture as image/png.
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        bundle["text/plain"] = f"<{type(self).__name__}: interactive in JupyterLab; static view attached>"
        return bundle


def _label(text: str) -> W.HTML:
    return W.HTML(value=text, layout=W.Layout(margin="0 0 0 8px"))


# --------------------------------------------------------------------------------------------------
# Linear-margin playground (notebook 1)


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


# --------------------------------------------------------------------------------------------------
# 2-D training and margins (notebooks 1-3)


def method_2d(method: str, size: float, norm: str):
    """The training method of :func:`train_2d`: "standard", "pgd" (ε = size) or "mma" (d_max = size)."""
    from .train import MMA, PGDAT, Standard

    if method not in METHODS_2D:
        raise ValueError(f"method must be one of {METHODS_2D!r}, got {method!r}")
    return {"standard": lambda: Standard(),
            "pgd": lambda: PGDAT(size, norm, steps=10, clip=None),
            "mma": lambda: MMA(size, norm, mineps=size / 10, steps=10, clip=None)}[method]()


def train_2d(data: ArrayDataset, method, size: float, norm: str, *, epochs: int = 150, hidden: int = 32,
             seed: int = 0, callbacks=(), model: nn.Module | None = None) -> tuple[nn.Module, object]:
    """Train a small MLP on 2-D data with "standard", "pgd" (ε = size) or "mma" (d_max = size).

    ``method`` is one of those names or a method object from :func:`method_2d` (to read its state, e.g.
    MMA's margin memory, from a callback). Returns (model, history). Pass ``model`` to train one you hold.
    """
    from .train import fit

    meth = method_2d(method, size, norm) if isinstance(method, str) else method
    torch.manual_seed(seed)
    if model is None:
        model = MLP(hidden=hidden, depth=2, num_classes=int(data.y.max()) + 1)
    batch = min(50, len(data))
    hist = fit(model, data, meth, epochs=epochs, batch_size=batch, lr=1e-2, progress=False, device="cpu", seed=seed,
               callbacks=callbacks)
    return model, hist


def margin_figure_2d(model: nn.Module, data: ArrayDataset, margins: MarginResult, *, norm: str, title: str,
                     ax=None):
    """Decision regions, each point's margin ball and its arrow to δ* (the view of :class:`MarginExplorer2D`)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 5))
    plots.plot_decision_boundary(model, data.x, data.y, ax=ax, margins=margins.margin, norm=norm,
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
        controls = W.VBox([self.dataset, self.norm, self.method, W.HBox([self.size, self.button]), self.status])
        self.widget = W.VBox([controls, self._make_image()])
        self.update()

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
                             name: str = "", ax=None):
    """Decision regions and every point's ε-ball: red where it crosses the boundary (margin < ε)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 5))
    plots.plot_decision_boundary(model, x, y, ax=ax)
    over = over_perturbed(margins, eps)
    balls = plots.ball_outlines(x.detach().cpu(), torch.full((len(x),), float(eps)), norm, n=48)
    for ball, bad in zip(balls, over.tolist()):
        ax.plot(ball[:, 0], ball[:, 1], lw=0.9 if bad else 0.5, color="#d62728" if bad else "0.55",
                alpha=0.9 if bad else 0.5)
    frac = float(over.float().mean())
    ax.set_title(f"{name + ': ' if name else ''}ε = {eps:.2f} ({norm}): {frac:.0%} of the points over-perturbed "
                 "(red: margin < ε)", fontsize=9)
    return fig


class OverPerturbationView(_Explorer):
    """Slide a PGD-AT ε over trained 2-D nets: red ε-balls cross the decision boundary (margin < ε).

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


# --------------------------------------------------------------------------------------------------
# AN-PGD step by step (notebook 4)


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
        return self.view(k)

    def _draw_step(self, k: int) -> None:
        v = self.view(k)
        self.label.value = (f"step {v['step']} / {self.total} ({v['phase']}): "
                            + (f"bracket [{v['bracket'][0]:.4f}, {v['bracket'][1]:.4f}]" if v["bracket"]
                               else f"PGD at ε_prev = {self.eps_init:g}"))
        self.redraw()

    def figure(self):
        return anpgd_step_figure(self.model, self.x, self.y, self.trace, norm=self.norm, eps_init=self.eps_init,
                                 step=self.slider.value, halfwidth=self.halfwidth)


# --------------------------------------------------------------------------------------------------
# MMA's margin memory (notebook 3)


def margin_memory_figure(memory: Tensor, epoch: int, *, d_max: float | None = None, shown: int = 24, axes=None):
    """Each example's ε̂ over epochs (left: ``shown`` examples spread over the final ranks, and the median)
    and the distribution at ``epoch`` (right). memory: (epochs, N), row e the memory after epoch e + 1."""
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
    if d_max is not None:
        axes[0].axhline(d_max, color="k", ls=":", lw=0.8, label="d_max")
    axes[0].axvline(epoch, color="#d62728", lw=0.8)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("ε̂ in memory")
    axes[0].legend(fontsize=8, loc="lower right")
    axes[0].set_title(f"{len(pick)} of {m.shape[1]} examples' ε̂ over epochs", fontsize=9)
    row = m[min(max(epoch, 1), m.shape[0]) - 1]
    top = float(m.max()) or 1.0
    axes[1].hist(row.numpy(), bins=30, range=(0, top), color="#2a9d5c")
    axes[1].set_xlabel("ε̂")
    axes[1].set_title(f"epoch {epoch}: median {row.median():.3f}, {(row == 0).float().mean():.0%} at 0", fontsize=9)
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
        return margin_memory_figure(self.memory, self.epoch.value, d_max=self.d_max)


# --------------------------------------------------------------------------------------------------
# MNIST digits (notebook 5)


def digit_figure(c: dict, *, norm: str):
    """x, δ* (red brighter, blue darker), x + δ* with square pixels, and the logits of all ten classes."""
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.9), gridspec_kw=dict(width_ratios=[1, 1, 1, 1.7]))
    delta = (c["x_adv"] - c["x"]).numpy()
    lim = float(np.abs(delta).max()) or 1.0
    axes[0].imshow(c["x"], cmap="gray", vmin=0, vmax=1)
    axes[1].imshow(delta, cmap="RdBu_r", vmin=-lim, vmax=lim)
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


# --------------------------------------------------------------------------------------------------
# Training dashboard (notebook 5)


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
        self.widget = self._make_image()
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
