"""Static figures (matplotlib) used by the notebooks and by the widgets' headless views.

Every function draws onto ``ax`` (a new figure when None) and returns the axes
or figure, so notebooks can combine them.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection
from torch import Tensor, nn

from . import norms
from .presets import eps_label

CLASS_COLORS = ["#3b6fb6", "#d1495b", "#2a9d5c", "#e9a03b", "#7b4fa0", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"]


# One colour per training method in every notebook (names are matched by their start, case-insensitive:
# "MMA d_max=0.3", "mma-0.45" and "MMA" are all MMA green).
METHOD_COLORS = {"standard": "#3b6fb6", "pgdls": "#b5651d", "pgd": "#e9a03b", "omma": "#7fb800", "mma": "#2a9d5c",
                 "released": "#7b4fa0", "paper": "#7f7f7f"}


def method_color(name: str, fallback: int = 0) -> str:
    """The course's colour for a method named ``name`` ("MMA-0.45", "PGD-AT 0.3", "standard", ...)."""
    key = name.lower().replace("pgd-at", "pgd")
    for method, colour in METHOD_COLORS.items():
        if key.startswith(method):
            return colour
    return CLASS_COLORS[(fallback + 4) % 10]


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.5))
    return ax


@torch.no_grad()
def boundary_grid(model: nn.Module, x: Tensor, *, pad: float = 0.5, resolution: int = 200):
    """Class probabilities of a 2-D model on a square grid around the points x (N, 2).

    Returns (gx (R,), gy (R,), probs (R, R, C)) as numpy arrays, probs[i, j] at (gx[j], gy[i]).
    """
    lo = (x.min(0).values - pad).tolist()
    hi = (x.max(0).values + pad).tolist()
    gx = torch.linspace(lo[0], hi[0], resolution, dtype=x.dtype)
    gy = torch.linspace(lo[1], hi[1], resolution, dtype=x.dtype)
    pts = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    probs = model(pts.to(dev)).softmax(1).cpu()
    model.train(was)
    return gx.numpy(), gy.numpy(), probs.reshape(resolution, resolution, -1).numpy()


def ball_outlines(x: Tensor, radii: Tensor, norm: str, n: int = 64) -> np.ndarray:
    """Outlines (N, n, 2) of each point's ball of its radius: circles (ℓ2) or squares (ℓ∞)."""
    unit = norms.unit_ball_outline(norm, n).to(x.dtype)
    return (x[:, None, :] + radii[:, None, None].to(x.dtype) * unit[None]).cpu().numpy()


# How many points of a 2-D figure get a ball and a δ* arrow: more than a dozen overlap and hide the boundary.
MARKED = 12

# The one colour map for perturbations δ* (red: brighter, blue: darker), always drawn with a colour bar.
DELTA_CMAP = "RdBu_r"


def spread_subset(x: Tensor, k: int) -> Tensor:
    """Indices (≤ k,) of points of x (N, D) spread evenly over the data: greedy farthest-point sampling.

    Deterministic: starts at the point closest to the mean, then repeatedly adds the point farthest from
    those chosen. Returns all indices (in order) when N ≤ k.
    """
    n = x.shape[0]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    if n <= k:
        return torch.arange(n)
    flat = x.reshape(n, -1).double()
    first = int((flat - flat.mean(0)).norm(dim=1).argmin())
    chosen = [first]
    dist = (flat - flat[first]).norm(dim=1)
    for _ in range(k - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = torch.minimum(dist, (flat - flat[nxt]).norm(dim=1))
    return torch.tensor(sorted(chosen))


def plot_decision_boundary(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    ax=None,
    margins: Tensor | None = None,
    norm: str = "l2",
    x_adv: Tensor | None = None,
    title: str | None = None,
    pad: float = 0.5,
    resolution: int = 200,
    marked: int | None = MARKED,
):
    """Decision regions of a 2-D classifier, its points, and optionally some points' margins.

    margins (N,): draws the ball of that radius around a point (circle for
    ℓ2, square for ℓ∞) — it just touches the decision boundary. x_adv (N, 2):
    arrows to the shortest successful perturbation. Balls and arrows are drawn
    for at most ``marked`` points spread evenly over the data (ringed in black;
    None: every point), and a note in the corner says for how many.
    """
    ax = _ax(ax)
    x, y = x.detach().cpu(), y.cpu()
    gx, gy, probs = boundary_grid(model, x, pad=pad, resolution=resolution)
    c = probs.shape[-1]
    pred = probs.argmax(-1)
    ax.contourf(gx, gy, pred, levels=np.arange(c + 1) - 0.5, colors=CLASS_COLORS[:c], alpha=0.18)
    ax.contour(gx, gy, pred, levels=np.arange(c) + 0.5, colors="k", linewidths=1.2)
    for k in range(c):
        m = y == k
        ax.scatter(x[m, 0], x[m, 1], s=14, color=CLASS_COLORS[k], edgecolor="white", linewidth=0.4, zorder=3)
    if margins is not None or x_adv is not None:
        shown = torch.zeros(len(x), dtype=torch.bool)
        shown[spread_subset(x, marked) if marked is not None else torch.arange(len(x))] = True
        if shown.sum() < len(x):
            ax.scatter(x[shown, 0], x[shown, 1], s=30, facecolor="none", edgecolor="k", linewidth=0.9, zorder=4)
            what = " and ".join(w for w, v in (("balls", margins), ("δ*", x_adv)) if v is not None)
            ax.text(0.99, 0.01, f"{what} for {int(shown.sum())} of {len(x)} points (ringed)", transform=ax.transAxes,
                    ha="right", va="bottom", fontsize=7, bbox=dict(facecolor="white", alpha=0.7, lw=0))
    if margins is not None:
        finite = torch.isfinite(margins.cpu()) & (margins.cpu() > 0) & shown
        outlines = ball_outlines(x[finite], margins.cpu()[finite], norm)
        colors = [CLASS_COLORS[int(k)] for k in y[finite]]
        ax.add_collection(LineCollection(outlines, colors=colors, linewidths=0.9, alpha=0.8, zorder=2))
    if x_adv is not None:
        xa = x_adv.detach().cpu()
        moved = ((xa - x).norm(dim=1) > 0) & shown
        ax.quiver(x[moved, 0], x[moved, 1], (xa - x)[moved, 0], (xa - x)[moved, 1], angles="xy",
                  scale_units="xy", scale=1, width=0.005, color="k", alpha=0.8, zorder=4)
    ax.set_xlim(gx[0], gx[-1])
    ax.set_ylim(gy[0], gy[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return ax


def plot_norm_balls(ax=None, radius: float = 1.0):
    """The unit ℓ∞ ball (a square) contains the unit ℓ2 ball (a circle): ‖δ‖∞ ≤ ‖δ‖₂."""
    ax = _ax(ax)
    for norm, color in (("linf", CLASS_COLORS[1]), ("l2", CLASS_COLORS[0])):
        pts = radius * norms.unit_ball_outline(norm, 256).numpy()
        ax.plot(pts[:, 0], pts[:, 1], color=color, label=f"{norm} ball, radius {radius:g}")
    ax.set_aspect("equal")
    ax.set_xlabel("$\\delta_1$")
    ax.set_ylabel("$\\delta_2$")
    ax.axhline(0, color="0.8", lw=0.8)
    ax.axvline(0, color="0.8", lw=0.8)
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_robust_accuracy(results: Mapping[str, "object"], ax=None, percent: bool = True, per255: bool = False):
    """Robust accuracy vs ε for several :class:`~mma_edu.evaluate.RobustAccuracy` results (ε = 0 is clean).

    ``per255``: label ε in units of 1/255 (CIFAR10 ℓ∞), as the paper does.
    """
    ax = _ax(ax)
    scale = 100 if percent else 1
    eps_axis: list[float] = []
    for i, (name, r) in enumerate(results.items()):
        eps = [0.0] + list(r.eps)
        eps_axis = sorted(set(eps_axis) | set(eps))
        acc = [scale * r.clean] + [scale * a for a in r.accuracy]
        ax.plot(eps, acc, marker="o", ms=3, color=method_color(name, i),
                label=f"{name} (AvgAcc {scale * r.avg_acc:.1f})")
    norm = next(iter(results.values())).norm
    if per255:
        ax.set_xticks(eps_axis, [eps_label(e, True) if e else "0" for e in eps_axis], rotation=45, fontsize=8)
        ax.set_xlabel(f"ε ({norm}, in units of 1/255)")
    else:
        ax.set_xlabel(f"ε ({norm})")
    ax.set_ylabel("robust accuracy" + (" (%)" if percent else ""))
    ax.set_ylim(0, scale * 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_margin_histograms(margins: Mapping[str, Tensor], ax=None, bins: int = 30, max_eps: float | None = None,
                           norm: str | None = None):
    """Overlaid histograms of per-example margins, one per model; ``norm`` names the margins' norm on the axis."""
    ax = _ax(ax)
    top = max_eps or max(float(m.max()) for m in margins.values())
    edges = np.linspace(0, top, bins + 1)
    for i, (name, m) in enumerate(margins.items()):
        # In float64: a float32 margin clamped at max_eps (0.6000000238) would fall past the last edge (0.6).
        m = m.detach().cpu().double().clamp(max=top).numpy()
        ax.hist(m, bins=edges, alpha=0.45, color=method_color(name, i), label=f"{name} (median {np.median(m):.3f})")
    unit = f"{norm} " if norm else ""
    ax.set_xlabel(f"{unit}margin (length of the shortest successful perturbation found)")
    ax.set_ylabel("examples")
    ax.legend(fontsize=8)
    return ax


HISTORY_LABELS = {"loss": "training loss (mean per batch)", "clean_acc": "clean accuracy (training batches)",
                  "margin": "mean ε̂ found in training", "margin_median": "median ε̂ found in training"}


def plot_history(history, keys: Sequence[str] = ("loss", "clean_acc", "margin"), axes=None):
    """Per-epoch curves of a :class:`~mma_edu.train.History` (one panel per key present)."""
    keys = [k for k in keys if any(e.get(k) is not None for e in history.epochs)]
    if axes is None:
        _, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.6 * max(len(keys), 1), 3))
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, keys):
        ax.plot(history.column("epoch"), history.column(key), marker="o", ms=3)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(HISTORY_LABELS.get(key, key))
        ax.grid(alpha=0.3)
    return axes


def delta_image(ax, delta: Tensor, vmax: float, *, colorbar: bool = True, label: str = "δ* (change of pixel value)"):
    """Draw one perturbation (H, W) with the course's δ* colour map on the symmetric scale [−vmax, vmax].

    Returns the image; with ``colorbar`` a colour bar labelled ``label`` is attached to ``ax``.
    """
    if not vmax > 0:
        raise ValueError(f"vmax must be > 0, got {vmax!r}")
    im = ax.imshow(np.asarray(delta), cmap=DELTA_CMAP, vmin=-vmax, vmax=vmax)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    return im


def digit_gallery(x: Tensor, x_adv: Tensor, y: Tensor, pred_adv: Tensor, margins: Tensor, *, norm: str, n: int = 8,
                  vmax: float | None = None):
    """Digits (top), their shortest successful perturbations (middle) and x + δ* (bottom).

    Every δ* is drawn on one symmetric colour scale [−vmax, vmax] (default: the largest |δ*| shown), with
    one colour bar, so that panels — and galleries given the same ``vmax`` — compare at a glance.
    """
    n = min(n, x.shape[0])
    fig, axes = plt.subplots(3, n, figsize=(1.25 * n + 1.0, 4.1), squeeze=False)
    deltas = [(x_adv[i] - x[i])[0].detach().cpu() for i in range(n)]
    if vmax is None:
        vmax = max([float(d.abs().max()) for d in deltas] + [0.0]) or 1.0
    im = None
    for i in range(n):
        axes[0, i].imshow(x[i, 0].detach().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(f"label {int(y[i])}", fontsize=8)
        im = delta_image(axes[1, i], deltas[i], vmax, colorbar=False)
        axes[1, i].set_title(f"{norm} {float(margins[i]):.3f}", fontsize=8)
        axes[2, i].imshow(x_adv[i, 0].detach().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[2, i].set_title(f"→ {int(pred_adv[i])}", fontsize=8)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    axes[0, 0].set_ylabel("x", fontsize=8)
    axes[1, 0].set_ylabel("δ*", fontsize=8)
    axes[2, 0].set_ylabel("x + δ*", fontsize=8)
    fig.tight_layout()
    if im is not None:
        fig.colorbar(im, ax=list(axes[1]), fraction=0.02, pad=0.01, label="δ* (pixel change)")
    return fig


def plot_anpgd_trace(model: nn.Module, x: Tensor, y: Tensor, trace: dict, *, norm: str, eps_init: float,
                     upto: int | None = None, ax=None, pad: float = 0.6):
    """One 2-D example's AN-PGD run, up to step ``upto`` (PGD steps first, then bisection steps).

    Draws the decision boundary, the ball at ε_prev, the PGD path, the ray x + t·u and the
    bisection's tested points with the current bracket [lower, upper] highlighted.
    """
    ax = _ax(ax)
    pgd_path = torch.stack([d[0] for d in trace["pgd"]]).cpu()  # (steps + 1, 2)
    bis = trace["bisect"]
    total = len(pgd_path) + len(bis)
    upto = total if upto is None else max(1, min(upto, total))
    x0 = x[0].detach().cpu()
    plot_decision_boundary(model, x.cpu(), y.cpu(), ax=ax, pad=pad, resolution=150)
    ball = ball_outlines(x0[None], torch.tensor([eps_init]), norm)[0]
    ax.plot(ball[:, 0], ball[:, 1], color="0.3", lw=0.8, ls="--", label=f"ball ε_prev = {eps_init:g}")
    path = x0 + pgd_path[: min(upto, len(pgd_path))]
    ax.plot(path[:, 0], path[:, 1], "-o", ms=2.5, color="#e9a03b", lw=1, label="PGD iterates")
    if upto > len(pgd_path):
        u = (pgd_path[-1] / eps_init).numpy()
        k = upto - len(pgd_path)
        step = bis[k - 1]
        lo, hi = float(step["lower"][0]), float(step["upper"][0])
        t_max = float(bis[0]["upper"][0]) if k else hi
        ray = np.stack([x0.numpy(), x0.numpy() + max(t_max, hi) * u])
        ax.plot(ray[:, 0], ray[:, 1], color="0.5", lw=0.8)
        ts = np.array([float(s["t"][0]) for s in bis[:k]])
        ok = np.array([float(s["value"][0]) < 0 for s in bis[:k]])
        pts = x0.numpy()[None] + ts[:, None] * u[None]
        ax.scatter(pts[ok, 0], pts[ok, 1], marker="o", s=22, facecolor="white", edgecolor="k", zorder=5,
                   label="tested: still correct")
        ax.scatter(pts[~ok, 0], pts[~ok, 1], marker="x", s=26, color="k", zorder=5, label="tested: misclassified")
        seg = np.stack([x0.numpy() + lo * u, x0.numpy() + hi * u])
        ax.plot(seg[:, 0], seg[:, 1], color="#2a9d5c", lw=4, alpha=0.7, label=f"bracket [{lo:.3f}, {hi:.3f}]")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"AN-PGD step {upto} of {total}")
    return ax


def palette_png(fig, *, dpi: float = 100) -> bytes:
    """A matplotlib figure as a palette PNG (256 colours; the figure stays open).

    The course's plots use few colours, so this is about 3-4x smaller than full colour with no visible
    change: executed notebooks stay small (issue: ≤ 2 MB), and a widget sends less on every move.
    """
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    buf.seek(0)
    # Median cut keeps white white and the mean error under 0.1 of 255 (fast octree greys the background).
    img = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def compact_inline(dpi: float = 100) -> bool:
    """In a Jupyter kernel, show every inline matplotlib figure as a :func:`palette_png`.

    Returns False (and changes nothing) outside IPython. The inline backend displays each figure at the end
    of its cell through IPython's ``image/png`` formatter; registering ours for ``Figure`` replaces only the
    encoding, not when or what is shown.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the Jupyter stack we depend on
        return False
    shell = get_ipython()
    if shell is None:
        return False
    from matplotlib.figure import Figure

    shell.display_formatter.formatters["image/png"].for_type(Figure, lambda fig: palette_png(fig, dpi=dpi))
    return True
