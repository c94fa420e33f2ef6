"""Interactive explorers for the notebooks: ipywidgets controls around plotly FigureWidgets.

- :class:`MarginExplorer2D` — pick a 2-D dataset, norm, method and ε/d_max; a
  small net is retrained and its decision boundary, margins (balls) and
  shortest successful perturbations (arrows) are drawn.
- :class:`ANPGDStepThrough` — a slider over the PGD and bisection steps of AN-PGD.
- :class:`MNISTMarginExplorer` — pick a test digit: x, δ*, x + δ*, logits, margin.
- :class:`TrainingDashboard` — loss, accuracy and margin histogram updating during ``fit``.

Each object displays as its live widget in JupyterLab and carries a static
PNG of the same view in the same output, so notebooks executed headless
(papermill, nbconvert) still show a picture. The update logic is plain
methods (``update``, ``show_step``, ``select``, ``callback``) that tests call directly.
"""

from __future__ import annotations

import base64
import io

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor, nn

from . import norms, plots
from .attacks import anpgd
from .data import TOYS, ArrayDataset, toy_2d
from .margins import MarginResult, estimate_margins
from .models import MLP

METHODS_2D = ("standard", "pgd", "mma")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class _Explorer:
    """Base: ``self.widget`` is the live view, ``static_figure()`` a matplotlib copy of it."""

    widget: W.Widget

    def static_figure(self):
        raise NotImplementedError

    def show(self):
        """Display now and keep a handle, so :meth:`refresh` can replace the static view later."""
        from IPython.display import display

        self._handle = display(self, display_id=True)
        return None

    def refresh(self) -> None:
        """Re-render the displayed output (widget and static picture) if :meth:`show` displayed it."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.update(self)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        # Live frontends prefer the widget view; headless renderers show the PNG.
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = _png(self.static_figure())
        bundle["text/plain"] = f"<{type(self).__name__}: interactive in JupyterLab; static view attached>"
        return bundle


def _colors(y: Tensor) -> list[str]:
    return [plots.CLASS_COLORS[int(k)] for k in y]


def _balls_xy(x: Tensor, radii: Tensor, norm: str) -> tuple[list, list]:
    """Ball outlines as one polyline with None breaks (plotly draws it as a single trace)."""
    keep = torch.isfinite(radii) & (radii > 0)
    xs, ys = [], []
    for outline in plots.ball_outlines(x[keep], radii[keep], norm, n=48):
        xs += outline[:, 0].tolist() + [None]
        ys += outline[:, 1].tolist() + [None]
    return xs, ys


def _segments_xy(a: Tensor, b: Tensor) -> tuple[list, list]:
    xs, ys = [], []
    for p, q in zip(a.tolist(), b.tolist()):
        xs += [p[0], q[0], None]
        ys += [p[1], q[1], None]
    return xs, ys


def train_2d(data: ArrayDataset, method: str, size: float, norm: str, *, epochs: int = 150, hidden: int = 32,
             seed: int = 0, callbacks=(), model: nn.Module | None = None) -> tuple[nn.Module, object]:
    """Train a small MLP on 2-D data with "standard", "pgd" (ε = size) or "mma" (d_max = size).

    Returns (model, history). Pass ``model`` to train one you hold (e.g. to snapshot it from a callback).
    """
    from .train import MMA, PGDAT, Standard, fit

    if method not in METHODS_2D:
        raise ValueError(f"method must be one of {METHODS_2D!r}, got {method!r}")
    meth = {"standard": lambda: Standard(),
            "pgd": lambda: PGDAT(size, norm, steps=10, clip=None),
            "mma": lambda: MMA(size, norm, mineps=size / 10, steps=10, clip=None)}[method]()
    torch.manual_seed(seed)
    if model is None:
        model = MLP(hidden=hidden, depth=2, num_classes=int(data.y.max()) + 1)
    batch = min(50, len(data))
    hist = fit(model, data, meth, epochs=epochs, batch_size=batch, lr=1e-2, progress=False, device="cpu", seed=seed,
               callbacks=callbacks)
    return model, hist


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
        self.fig = go.FigureWidget(layout=dict(width=560, height=500, margin=dict(l=10, r=10, t=40, b=10),
                                               yaxis=dict(scaleanchor="x"), showlegend=False))
        self.button.on_click(lambda _: self.update())
        controls = W.VBox([self.dataset, self.norm, self.method, W.HBox([self.size, self.button]), self.status])
        self.widget = W.VBox([controls, self.fig])
        self.update()

    def update(self) -> None:
        """Retrain with the current controls, re-estimate the margins, redraw."""
        self.status.value = "training…"
        self.data = toy_2d(self.dataset.value, self.n, noise=self.noise, seed=self.seed)
        self.model, self.history = train_2d(self.data, self.method.value, self.size.value, self.norm.value,
                                            epochs=self.epochs, seed=self.seed)
        self.margins: MarginResult = estimate_margins(self.model, self.data.x, self.data.y, norm=self.norm.value,
                                                      max_eps=1.5, clip=None, steps=30, refine=2)
        acc = float((self.margins.margin > 0).float().mean())
        self.title = (f"{self.method.value} ({self.norm.value}, {self.size.value:g}): train acc {acc:.2f}, "
                      f"median margin {self.margins.margin.median():.3f}")
        self.status.value = self.title
        self._draw()

    def _draw(self) -> None:
        gx, gy, probs = plots.boundary_grid(self.model, self.data.x, pad=0.5, resolution=120)
        x, y, m = self.data.x, self.data.y, self.margins
        bx, by = _balls_xy(x, m.margin, self.norm.value)
        ax, ay = _segments_xy(x[m.found], m.x_adv[m.found])
        with self.fig.batch_update():
            self.fig.data = []
            self.fig.add_contour(x=gx, y=gy, z=probs.argmax(-1), showscale=False, opacity=0.25,
                                 colorscale=[[i / max(probs.shape[-1] - 1, 1), c]
                                             for i, c in enumerate(plots.CLASS_COLORS[: probs.shape[-1]])],
                                 contours=dict(coloring="fill"), line=dict(width=0))
            self.fig.add_scatter(x=bx, y=by, mode="lines", line=dict(width=0.7, color="rgba(0,0,0,0.35)"))
            self.fig.add_scatter(x=ax, y=ay, mode="lines", line=dict(width=1.2, color="black"))
            self.fig.add_scatter(x=x[:, 0].tolist(), y=x[:, 1].tolist(), mode="markers",
                                 marker=dict(size=6, color=_colors(y), line=dict(width=0.5, color="white")),
                                 text=[f"margin {v:.3f}" for v in m.margin.tolist()], hoverinfo="text")
            self.fig.layout.title = self.title

    def static_figure(self):
        fig, ax = plt.subplots(figsize=(5.5, 5))
        plots.plot_decision_boundary(self.model, self.data.x, self.data.y, ax=ax, margins=self.margins.margin,
                                     norm=self.norm.value, x_adv=self.margins.x_adv, title=self.title)
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
        self.slider = W.IntSlider(value=1, min=1, max=self.total, description="step", continuous_update=True)
        self.label = W.HTML()
        self.fig = go.FigureWidget(layout=dict(width=520, height=480, margin=dict(l=10, r=10, t=40, b=10),
                                               yaxis=dict(scaleanchor="x"), showlegend=True,
                                               legend=dict(font=dict(size=9))))
        gx, gy, probs = plots.boundary_grid(model, x, pad=max_eps * 1.2, resolution=120)
        ball = plots.ball_outlines(x, torch.tensor([eps_init]), norm)[0]
        self.fig.add_contour(x=gx, y=gy, z=probs.argmax(-1), showscale=False, opacity=0.25, line=dict(width=0),
                             colorscale=[[0, plots.CLASS_COLORS[0]], [1, plots.CLASS_COLORS[1]]], name="regions")
        self.fig.add_scatter(x=ball[:, 0], y=ball[:, 1], mode="lines", line=dict(dash="dash", color="gray"),
                             name=f"ε_prev = {eps_init:g}")
        self.fig.add_scatter(x=[], y=[], mode="lines+markers", name="PGD", line=dict(color="#e9a03b"))
        self.fig.add_scatter(x=[], y=[], mode="markers", name="bisection tests", marker=dict(color="black"))
        self.fig.add_scatter(x=[], y=[], mode="lines", name="bracket", line=dict(color="#2a9d5c", width=6))
        self.fig.add_scatter(x=x[:, 0].tolist(), y=x[:, 1].tolist(), mode="markers", name="x",
                             marker=dict(size=10, color=plots.CLASS_COLORS[int(y[0])]))
        self.slider.observe(lambda change: self.show_step(change["new"]), names="value")
        self.widget = W.VBox([self.slider, self.label, self.fig])
        self.show_step(1)

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
        v = self.view(k)
        with self.fig.batch_update():
            self.fig.data[2].x, self.fig.data[2].y = v["path"][:, 0].tolist(), v["path"][:, 1].tolist()
            self.fig.data[3].x, self.fig.data[3].y = v["tests"][:, 0].tolist(), v["tests"][:, 1].tolist()
            seg = v.get("segment")
            self.fig.data[4].x = seg[:, 0].tolist() if seg is not None else []
            self.fig.data[4].y = seg[:, 1].tolist() if seg is not None else []
            self.fig.layout.title = f"AN-PGD step {v['step']} / {self.total} ({v['phase']})"
        self.label.value = (f"bracket [{v['bracket'][0]:.4f}, {v['bracket'][1]:.4f}]" if v["bracket"]
                            else f"PGD at ε_prev = {self.eps_init:g}")
        return v

    def static_figure(self):
        fig, ax = plt.subplots(figsize=(5.5, 5))
        plots.plot_anpgd_trace(self.model, self.x, self.y, self.trace, norm=self.norm, eps_init=self.eps_init,
                               ax=ax, pad=float(self.result.upper.max()) * 1.2)
        return fig


class MNISTMarginExplorer(_Explorer):
    """Pick a test digit: the image, its shortest successful perturbation, the perturbed image, logits."""

    def __init__(self, model: nn.Module, data: ArrayDataset, *, norm: str, max_eps: float, steps: int = 40,
                 refine: int = 1):
        self.model, self.data, self.norm, self.max_eps = model, data, norm, max_eps
        self.steps, self.refine = steps, refine
        self._cache: dict[int, dict] = {}
        self.index = W.IntSlider(value=0, min=0, max=len(data) - 1, description="digit", continuous_update=False)
        self.label = W.HTML()
        fig = make_subplots(rows=1, cols=4, subplot_titles=("x", "δ*", "x + δ*", "logits"),
                            column_widths=[0.22, 0.22, 0.22, 0.34])
        self.fig = go.FigureWidget(fig)
        blank = np.zeros((28, 28))
        for col, scale in ((1, "gray"), (2, "RdBu"), (3, "gray")):
            self.fig.add_heatmap(z=blank, colorscale=scale, showscale=False, row=1, col=col)
        self.fig.add_bar(x=list(range(10)), y=[0] * 10, name="x", row=1, col=4)
        self.fig.add_bar(x=list(range(10)), y=[0] * 10, name="x + δ*", row=1, col=4)
        self.fig.update_yaxes(autorange="reversed", row=1, col=1)
        self.fig.update_yaxes(autorange="reversed", row=1, col=2)
        self.fig.update_yaxes(autorange="reversed", row=1, col=3)
        self.fig.update_layout(width=900, height=300, margin=dict(l=10, r=10, t=40, b=10), barmode="group")
        self.index.observe(lambda change: self.select(change["new"]), names="value")
        self.widget = W.VBox([self.index, self.label, self.fig])
        self.select(0)

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
        c = self.compute(int(i))
        delta = (c["x_adv"] - c["x"]).numpy()
        lim = float(np.abs(delta).max()) or 1.0
        with self.fig.batch_update():
            self.fig.data[0].z = c["x"].numpy()
            self.fig.data[1].z, self.fig.data[1].zmin, self.fig.data[1].zmax = delta, -lim, lim
            self.fig.data[2].z = c["x_adv"].numpy()
            self.fig.data[3].y = c["logits"].tolist()
            self.fig.data[4].y = c["logits_adv"].tolist()
        pred = int(c["logits_adv"].argmax())
        self.label.value = (f"label {c['y']}, predicted {int(c['logits'].argmax())}; {self.norm} margin "
                            f"{c['margin']:.4f}" + (f" → classified as {pred}" if c["found"] else " (none found)"))
        return c

    def static_figure(self):
        c = self.compute(self.index.value)
        fig, axes = plt.subplots(1, 4, figsize=(11, 2.8), gridspec_kw=dict(width_ratios=[1, 1, 1, 1.6]))
        delta = (c["x_adv"] - c["x"]).numpy()
        lim = float(np.abs(delta).max()) or 1.0
        axes[0].imshow(c["x"], cmap="gray", vmin=0, vmax=1)
        plots.delta_image(axes[1], delta, lim)
        axes[2].imshow(c["x_adv"], cmap="gray", vmin=0, vmax=1)
        for a, t in zip(axes[:3], ("x", "δ*", "x + δ*")):
            a.set_title(t)
            a.set_xticks([])
            a.set_yticks([])
        k = np.arange(10)
        axes[3].bar(k - 0.2, c["logits"], 0.4, label="x")
        axes[3].bar(k + 0.2, c["logits_adv"], 0.4, label="x + δ*")
        axes[3].set_xticks(k)
        axes[3].legend(fontsize=8)
        axes[3].set_title(f"label {c['y']}; margin {c['margin']:.3f}")
        fig.tight_layout()
        return fig


class TrainingDashboard(_Explorer):
    """Live curves during ``fit``: ``dashboard.show()``, then ``fit(..., callbacks=[dashboard.callback])``.

    Loss per step (every ``every`` steps), clean accuracy and average margin per
    epoch, and the last epoch's margin histogram. After each epoch the
    displayed static picture is refreshed too, so a headless run keeps the final curves.
    """

    def __init__(self, every: int = 5, title: str = "training"):
        self.every = every
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.epochs: list[dict] = []
        fig = make_subplots(rows=1, cols=3, subplot_titles=("loss (per step)", "accuracy / margin (per epoch)",
                                                            "margins this epoch"))
        self.fig = go.FigureWidget(fig)
        self.fig.add_scatter(x=[], y=[], mode="lines", name="loss", row=1, col=1)
        self.fig.add_scatter(x=[], y=[], mode="lines+markers", name="clean acc", row=1, col=2)
        self.fig.add_scatter(x=[], y=[], mode="lines+markers", name="avg margin", row=1, col=2)
        self.fig.add_bar(x=[], y=[], name="margins", row=1, col=3)
        self.fig.update_layout(width=950, height=300, margin=dict(l=10, r=10, t=40, b=10), title=title)
        self.widget = self.fig

    def callback(self, event) -> None:
        """Give this to ``fit(..., callbacks=[dashboard.callback])``."""
        if event.kind == "step" and event.step % self.every == 0:
            self.steps.append(event.step)
            self.losses.append(event.record["loss"])
            with self.fig.batch_update():
                self.fig.data[0].x, self.fig.data[0].y = self.steps, self.losses
        elif event.kind == "epoch":
            self.epochs.append(event.record)
            ep = [r["epoch"] for r in self.epochs]
            with self.fig.batch_update():
                self.fig.data[1].x, self.fig.data[1].y = ep, [r.get("clean_acc") for r in self.epochs]
                self.fig.data[2].x, self.fig.data[2].y = ep, [r.get("margin") for r in self.epochs]
                hist = event.record.get("margin_hist")
                if hist:
                    e = hist["edges"]
                    self.fig.data[3].x = [(a + b) / 2 for a, b in zip(e[:-1], e[1:])]
                    self.fig.data[3].y = hist["counts"]
            self.refresh()

    def static_figure(self):
        fig, axes = plt.subplots(1, 3, figsize=(12, 3))
        axes[0].plot(self.steps, self.losses)
        axes[0].set_title("loss (per step)")
        ep = [r["epoch"] for r in self.epochs]
        axes[1].plot(ep, [r.get("clean_acc") for r in self.epochs], marker="o", label="clean acc")
        if any(r.get("margin") is not None for r in self.epochs):
            axes[1].plot(ep, [r.get("margin") for r in self.epochs], marker="o", label="avg margin")
        axes[1].legend(fontsize=8)
        axes[1].set_title("per epoch")
        hist = self.epochs[-1].get("margin_hist") if self.epochs else None
        if hist:
            e = hist["edges"]
            axes[2].bar(e[:-1], hist["counts"], width=np.diff(e), align="edge")
        axes[2].set_title("margins this epoch")
        fig.tight_layout()
        return fig
