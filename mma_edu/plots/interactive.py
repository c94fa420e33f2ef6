"""Interactive figures (plotly): pure functions from data to a ``plotly.graph_objects.Figure``.

Each mirrors a matplotlib figure of :mod:`mma_edu.plots.static` and draws from the same helper of
:mod:`mma_edu.plots.data`, so the two show the same numbers; the notebooks show both at once through
:class:`mma_edu.plots.Interactive` (plotly for JupyterLab, the matplotlib picture as ``image/png`` for
everything else). Hover text says what a point is. Short traces carry plain lists rounded to :data:`DIGITS`
significant digits (readable in the notebook's JSON); per-example arrays (hundreds of points, pixels) go as
float32/int32 numpy arrays, which plotly writes as base64 typed arrays: a saved notebook holds each on one line
instead of one line per number.
"""

from __future__ import annotations

import io
import base64
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import Tensor

from .data import (CLASS_COLORS, HISTORY_KEYS, HISTORY_LABELS, MARKED, accuracy_curves, ball_outlines,
                   boundary_grid, budget_curves, budget_gaps, history_series, margin_ecdfs, margin_pairs, margin_parts,
                   margin_sandwich, marked_mask, method_color, method_label, region_image, tradeoff_curves,
                   unbroken_text)

DIGITS = 6  # significant digits kept in a figure's data: plenty for a hover, half the bytes of float64 repr

# A small template of our own: plotly's default one adds about 8 KB to every figure in a notebook.
TEMPLATE = go.layout.Template(layout=dict(
    font=dict(family="DejaVu Sans, Arial, sans-serif", size=12), plot_bgcolor="white", paper_bgcolor="white",
    xaxis=dict(gridcolor="#e6e6e6", linecolor="#555", showline=True, zeroline=False, ticks="outside"),
    yaxis=dict(gridcolor="#e6e6e6", linecolor="#555", showline=True, zeroline=False, ticks="outside"),
    hoverlabel=dict(font=dict(size=12)), margin=dict(l=60, r=20, t=50, b=50),
    legend=dict(font=dict(size=11))))


def _r(v):
    """Round a number, or a nested list of numbers, to DIGITS significant digits (NaN and inf kept)."""
    if isinstance(v, (list, tuple)):
        return [_r(x) for x in v]
    if isinstance(v, (bool, np.bool_)) or v is None:
        return v
    f = float(v)
    return f if not np.isfinite(f) or f == 0 else float(f"{f:.{DIGITS}g}")


def _f32(values) -> np.ndarray:
    """Per-example floats as float32 (7 significant digits: plenty for a hover), sent as a typed array."""
    return np.asarray(values, dtype=np.float32)


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _group_title(fig: go.Figure, method: str | None, seen: set) -> dict:
    """legendgroup (and the group's title the first time) for a model's method: a legend click on any entry
    of the group hides the whole method (plotly's default legend.groupclick, "togglegroup")."""
    group = method_label(method)
    kw = dict(legendgroup=group)
    if group not in seen:
        seen.add(group)
        kw["legendgrouptitle_text"] = group
    return kw


# ---------------------------------------------------------------------------------------------------------------

def robust_accuracy_figure(results: Mapping[str, "object"], *, percent: bool = True, level: float = 0.95,
                           per255: bool = False, title: str | None = None) -> go.Figure:
    """Robust accuracy against ε, one trace per model with its confidence band (twin of
    :func:`~mma_edu.plots.static.plot_robust_accuracy`).

    Traces, per model in ``results`` order: its band (``"<name> interval"``, no hover, no legend entry), then
    its line (``name``) whose points carry ``customdata`` [low, high, n] and hover "accuracy, interval, n".
    Models of one method share a legend group: clicking an entry hides the method.
    """
    curves = accuracy_curves(results, percent=percent, level=level)
    unit = "%" if percent else ""
    fig = go.Figure()
    seen: set = set()
    for c in curves:
        group = _group_title(fig, c.method, seen)
        fig.add_trace(go.Scatter(x=_r(c.eps + c.eps[::-1]), y=_r(c.high + c.low[::-1]), fill="toself",
                                 fillcolor=_rgba(c.color, 0.15), line=dict(width=0), hoverinfo="skip",
                                 showlegend=False, name=f"{c.name} interval", legendgroup=group["legendgroup"]))
        fig.add_trace(go.Scatter(
            x=_r(c.eps), y=_r(c.accuracy), mode="lines+markers", name=c.name, line=dict(color=c.color, width=2),
            marker=dict(size=6), customdata=[[_r(lo), _r(hi), c.n] for lo, hi in zip(c.low, c.high)],
            hovertemplate=(f"<b>{c.name}</b><br>ε = %{{x:.4g}}<br>accuracy %{{y:.1f}}{unit}<br>"
                           f"{level:.0%} interval [%{{customdata[0]:.1f}}, %{{customdata[1]:.1f}}]{unit}<br>"
                           "n = %{customdata[2]}<extra></extra>"),
            **group))
    norm = next(iter(results.values())).norm
    xaxis = dict(title=f"ε ({norm}" + (", in units of 1/255)" if per255 else ")"))
    if per255:
        from ..presets import eps_label

        ticks = sorted({e for c in curves for e in c.eps})
        xaxis.update(tickvals=_r(ticks), ticktext=[eps_label(e, True) if e else "0" for e in ticks])
    fig.update_layout(template=TEMPLATE, height=420, title=dict(text=title or "robust accuracy", font=dict(size=13)),
                      xaxis=xaxis, yaxis=dict(title="robust accuracy" + (" (%)" if percent else ""),
                                              range=[0, (100 if percent else 1) * 1.02]),
                      hovermode="closest", legend=dict(groupclick="togglegroup"))
    return fig


def margin_ecdf_figure(margins: Mapping[str, Tensor], labels=None, *, max_eps: float | None = None,
                       norm: str | None = None, found: Mapping[str, Tensor] | None = None,
                       d_max: Mapping[str, float] | None = None, title: str | None = None) -> go.Figure:
    """Per-example margins as empirical distribution functions, one trace per model, one point per example
    (twin of :func:`~mma_edu.plots.static.plot_margin_ecdf`).

    Each point's ``customdata`` is [index, label, hit] (hit: 1 when the search reached max_eps unbroken, drawn as
    an open circle);
    hover says the example's index, label, margin and whether it hit max_eps. ``d_max`` (model → d_max) adds
    a dotted vertical trace ``"<name> d_max"`` in the model's colour and legend group.
    """
    fig = go.Figure()
    seen: set = set()
    for c in margin_ecdfs(margins, labels, max_eps=max_eps, found=found):
        group = _group_title(fig, c.method, seen)
        cap = f"hit max_eps = {max_eps:g}: unbroken, margin ≥ max_eps" if max_eps is not None else "hit max_eps"
        fig.add_trace(go.Scatter(
            x=_f32(c.margin), y=_f32(c.fraction), mode="lines+markers",
            line=dict(shape="hv", color=c.color, width=1.5),
            marker=dict(size=5, color=c.color,  # open circles (symbol 100) where the search hit max_eps
                        symbol=[100 if h else 0 for h in c.hit] if any(c.hit) else 0),
            name=f"{c.name} (median {c.median:.3f})",
            customdata=np.array([c.index, c.label, [int(h) for h in c.hit]], dtype=np.int32).T.reshape(-1, 3),
            hovertemplate=(f"<b>{c.name}</b><br>example #%{{customdata[0]}}, label %{{customdata[1]}}<br>"
                           "margin %{x:.4f}<br>fraction ≤ it: %{y:.3f}<br>hit max_eps: %{customdata[2]}"
                           "<extra></extra>"),
            meta=dict(hit_means=cap), **group))
        if d_max and c.name in d_max:
            d = float(d_max[c.name])
            fig.add_trace(go.Scatter(x=[d, d], y=[0, 1], mode="lines", line=dict(color=c.color, dash="dot", width=1.5),
                                     name=f"{c.name} d_max", showlegend=False, legendgroup=group["legendgroup"],
                                     hovertemplate=f"{c.name}: d_max = {d:g}<extra></extra>"))
    if max_eps is not None:
        fig.add_vline(x=max_eps, line=dict(color="black", dash="dot", width=1))
    unit = f"{norm} " if norm else ""
    fig.update_layout(template=TEMPLATE, height=420, title=dict(text=title or "margin distributions", font=dict(size=13)),
                      xaxis=dict(title=f"{unit}margin (shortest successful perturbation found)"),
                      yaxis=dict(title="fraction of examples with margin ≤", range=[0, 1.02]),
                      hovermode="closest", legend=dict(groupclick="togglegroup"))
    return fig


def margin_pairs_figure(pairs: Mapping[str, tuple], labels=None, *, norm: str | None = None,
                        estimate_name: str = "AN-PGD alone", reference_name: str = "best of AN-PGD and FMN",
                        title: str | None = None) -> go.Figure:
    """Two margin estimates of the same examples, one panel per model, one point per example (twin of
    :func:`~mma_edu.plots.static.plot_margin_pairs`).

    Traces per model: ``name`` (the examples the estimate broke; x the reference, y the estimate), with
    ``"<name>: unbroken"`` (the estimate reached max_eps unbroken: drawn at max_eps as triangles) when there are
    any, and ``"<name>: diagonal"``. Each point's ``customdata`` is [index, label, estimate / reference − 1] and
    its ``text`` the search that found the reference; hover says the example, its label, both margins and how
    much longer the estimate is.
    """
    panels = margin_pairs(pairs, labels)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p.name for p in panels], horizontal_spacing=0.07)
    unit = f" ({norm})" if norm else ""
    for col, p in enumerate(panels, start=1):
        for capped in (False, True):
            ks = [k for k, c in enumerate(p.capped) if c == capped]
            if capped and not ks:
                continue
            if capped:
                second = f"{estimate_name}: unbroken at max_eps = {p.max_eps:g}, margin ≥ {p.max_eps:g}"
            else:
                second = f"{estimate_name} %{{y:.4f}} (%{{customdata[2]:+.1%}})"
            fig.add_trace(go.Scatter(
                x=_f32([p.reference[k] for k in ks]), y=_f32([p.estimate[k] for k in ks]), mode="markers",
                name=f"{p.name}: unbroken" if capped else p.name, showlegend=False,
                marker=dict(size=8 if capped else 6, symbol="triangle-up" if capped else "circle",
                            color="#666666" if capped else p.color),
                customdata=_f32([[p.index[k], p.label[k], p.excess[k]] for k in ks]).reshape(-1, 3),
                text=[p.found_by[k] for k in ks],
                hovertemplate=(f"<b>{p.name}</b><br>digit #%{{customdata[0]}}, label %{{customdata[1]}}<br>"
                               f"{reference_name} %{{x:.4f}} (found by %{{text}})<br>{second}<extra></extra>")),
                row=1, col=col)
        fig.add_trace(go.Scatter(x=[0, _r(p.top)], y=[0, _r(p.top)], mode="lines", name=f"{p.name}: diagonal",
                                 showlegend=False, line=dict(color="black", dash="dash", width=1), hoverinfo="skip"),
                      row=1, col=col)
        fig.update_xaxes(title_text=reference_name + unit, row=1, col=col)
        fig.update_yaxes(title_text=estimate_name + unit if col == 1 else None, row=1, col=col)
    fig.update_annotations(font_size=11)
    fig.update_layout(template=TEMPLATE, height=380, hovermode="closest",
                      title=dict(text=title or f"{estimate_name} against {reference_name}, per example",
                                 font=dict(size=13)))
    return fig


def margin_sandwich_figure(certified: Mapping[str, Tensor], exact: Tensor, estimates: Mapping[str, Tensor], *,
                           solved: Tensor, max_eps: float, norm: str = "ℓ∞") -> go.Figure:
    """Certified ≤ exact ≤ AN-PGD per example (twin of :func:`~mma_edu.plots.static.plot_margin_sandwich`).

    One trace per series (certified bounds, exact, estimates), in the order of
    :func:`~mma_edu.plots.data.margin_sandwich`; every point's ``customdata`` is [example, best certified,
    exact, best estimate, gap below, gap above], so any point's hover shows all three values and the gaps.
    """
    s = margin_sandwich(certified, exact, estimates, solved=solved, max_eps=max_eps)
    cert = [k for k, v in s.kind.items() if v == "certified"]
    est = [k for k, v in s.kind.items() if v == "estimate"]
    n = len(s.order)
    best_cert = [max(s.series[k][i] for k in cert) if cert else float("nan") for i in range(n)]
    best_est = [min(s.series[k][i] for k in est) if est else float("nan") for i in range(n)]
    custom = [[s.order[i], _r(best_cert[i]), _r(s.series[s.exact_name][i]), _r(best_est[i]), _r(s.gap_below[i]),
               _r(s.gap_above[i])] for i in range(n)]
    hover = ("example #%{customdata[0]}<br>certified %{customdata[1]:.4f}<br>exact %{customdata[2]:.5f}<br>"
             "AN-PGD %{customdata[3]:.5f}<br>gap exact − certified %{customdata[4]:.4f}<br>"
             "gap AN-PGD − exact %{customdata[5]:.5f}<extra>%{fullData.name}</extra>")
    style = {"certified": ("triangle-down", ["#9ecae1", "#3f83c4", "#1b4f8a"]), "exact": ("circle-open", ["black"]),
             "estimate": ("triangle-up", ["#fdb863", "#e6550d", "#a63603"])}
    count = {"certified": 0, "exact": 0, "estimate": 0}
    fig = go.Figure()
    for name, values in s.series.items():
        kind = s.kind[name]
        symbol, colors = style[kind]
        color = colors[min(count[kind], len(colors) - 1)]
        count[kind] += 1
        fig.add_trace(go.Scatter(x=list(range(n)), y=_r(values), mode="markers", name=name,
                                 marker=dict(symbol=symbol, size=10 if kind == "exact" else 7, color=color),
                                 customdata=custom, hovertemplate=hover))
    fig.add_hline(y=max_eps, line=dict(color="black", dash="dot", width=1))
    fig.update_layout(template=TEMPLATE, height=420,
                      title=dict(text="the margin sandwich: certified ≤ exact ≤ AN-PGD", font=dict(size=13)),
                      xaxis=dict(title="example (sorted by exact margin)"), yaxis=dict(title=f"{norm} margin"),
                      hovermode="closest")
    return fig


def training_curves_figure(history, keys: Sequence[str] = HISTORY_KEYS, *, title: str | None = None) -> go.Figure:
    """Loss, clean accuracy and the median of MMA's margin memory against the step, one panel (and one trace)
    per key the run has (twin of :func:`~mma_edu.plots.static.plot_training_curves`)."""
    series = history_series(history, keys)
    if not series:
        raise ValueError(f"history has none of the keys {list(keys)} in its epochs")
    fig = make_subplots(rows=1, cols=len(series), subplot_titles=[HISTORY_LABELS.get(k, k) for k in series],
                        horizontal_spacing=0.08)
    for col, (key, (steps, values)) in enumerate(series.items(), start=1):
        color = method_color("MMA") if key.startswith("margin") else "#3a3a3a"
        fig.add_trace(go.Scatter(x=steps, y=_r(values), mode="lines+markers", name=key, showlegend=False,
                                 line=dict(color=color), hovertemplate=f"step %{{x}}<br>{key} %{{y:.4g}}<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text="step", row=1, col=col)
    fig.update_annotations(font_size=11)
    fig.update_layout(template=TEMPLATE, height=330, title=dict(text=title or "training", font=dict(size=13)))
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Digits: x, δ*, x + δ* (the MNIST margin explorer)
# ---------------------------------------------------------------------------------------------------------------

def digit_views_figure(x: Tensor, x_adv: Tensor, *, label: int, pred_adv: int, margin: float, norm: str,
                 found: bool = True, index: int | None = None) -> go.Figure:
    """One digit (28×28), its shortest successful perturbation δ* = x_adv − x and x + δ*, side by side, with
    square pixels; hover gives each pixel's value. δ* uses the course's colour map on [−|δ*|max, |δ*|max]."""
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float).reshape(28, -1)
    xa = np.asarray(x_adv.detach().cpu() if hasattr(x_adv, "detach") else x_adv, dtype=float).reshape(x.shape)
    delta = xa - x
    lim = float(np.abs(delta).max()) or 1.0
    head = f"#{index}: " if index is not None else ""
    titles = (f"{head}x (label {label})", f"δ* ({norm} {margin:.4f})",
              f"x + δ* → {pred_adv}" if found else "x + δ* (none found)")
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.06)
    grey = [[0, "black"], [1, "white"]]
    fig.add_trace(go.Heatmap(z=_f32(x), zmin=0, zmax=1, colorscale=grey, showscale=False, name="x",
                             hovertemplate="row %{y}, col %{x}<br>x = %{z:.3f}<extra></extra>"), 1, 1)
    fig.add_trace(go.Heatmap(z=_f32(delta), zmin=-lim, zmax=lim, colorscale="RdBu", reversescale=True,
                             name="δ*", colorbar=dict(x=0.655, len=0.8, thickness=10, title=dict(text="δ*", side="top")),
                             hovertemplate="row %{y}, col %{x}<br>δ* = %{z:+.3f}<extra></extra>"), 1, 2)
    fig.add_trace(go.Heatmap(z=_f32(xa), zmin=0, zmax=1, colorscale=grey, showscale=False, name="x + δ*",
                             hovertemplate="row %{y}, col %{x}<br>x + δ* = %{z:.3f}<extra></extra>"), 1, 3)
    for col in (1, 2, 3):
        anchor = "x" if col == 1 else f"x{col}"
        fig.update_xaxes(showticklabels=False, showgrid=False, showline=False, ticks="", constrain="domain",
                         row=1, col=col)
        fig.update_yaxes(showticklabels=False, showgrid=False, showline=False, ticks="", autorange="reversed",
                         scaleanchor=anchor, constrain="domain", row=1, col=col)
    fig.update_annotations(font_size=12)
    fig.update_layout(template=TEMPLATE, height=300, width=760, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def image_uri(rgb: np.ndarray) -> str:
    """An (H, W, 3) uint8 picture as a PNG data URI (a plotly layout image: one small picture, not a heatmap)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------------------------------------------
# 2-D decision boundaries (notebook 03)
# ---------------------------------------------------------------------------------------------------------------

def decision_boundary_figure(panels: Mapping[str, tuple], x: Tensor, y: Tensor, *, norm: str = "l2",
                             cols: int = 2, resolution: int = 150, pad: float = 0.5,
                             marked: int | None = MARKED) -> go.Figure:
    """Decision regions of 2-D classifiers, zoomable, one panel per entry of ``panels`` (title → (model, margins
    or None), margins a MarginResult or a bare (N,) tensor); twin of
    :func:`~mma_edu.plots.static.plot_decision_boundaries`.

    The regions are a small picture under each panel (a layout image of :func:`~mma_edu.plots.data.region_image`,
    a few KB, where a heatmap of the grid would cost hundreds); the points are scatter traces, one per class and
    panel, named "<title>: class k", whose ``customdata`` is [index, margin (NaN: none given, or unknown)] and,
    with margins, ``text`` the hover's margin line. The balls of the ``marked`` points
    (:func:`~mma_edu.plots.data.marked_mask`) are drawn to scale (equal axes). A point the search did not break
    within max_eps (a MarginResult's unbroken ones) gets no ball, but a black × in a trace named
    :func:`~mma_edu.plots.data.unbroken_text` (one legend entry) and the hover "margin ≥ max_eps (not broken)".
    """
    x, y = x.detach().cpu(), y.cpu()
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(panels), horizontal_spacing=0.06,
                        vertical_spacing=0.08)
    shown = marked_mask(x, marked)
    for p, (title, (model, margins)) in enumerate(panels.items()):
        row, col = p // cols + 1, p % cols + 1
        gx, gy, probs = boundary_grid(model, x, pad=pad, resolution=resolution)
        ref = "" if p == 0 else str(p + 1)
        fig.add_layout_image(source=image_uri(region_image(probs.argmax(-1))), xref=f"x{ref}", yref=f"y{ref}",
                             x=float(gx[0]), y=float(gy[-1]), sizex=float(gx[-1] - gx[0]),
                             sizey=float(gy[-1] - gy[0]), sizing="stretch", layer="below")
        m, unbroken, max_eps = margin_parts(margins) if margins is not None else (None, None, None)
        for k in range(int(y.max()) + 1):
            idx = torch_nonzero(y == k)
            known = [m is not None and not bool(unbroken[i]) for i in idx]
            fig.add_trace(go.Scatter(
                x=_f32(x[idx, 0]), y=_f32(x[idx, 1]), mode="markers", name=f"{title}: class {k}",
                marker=dict(size=7, color=CLASS_COLORS[k], line=dict(width=0.6, color="white")), showlegend=False,
                customdata=_f32([[i, float(m[i]) if ok else np.nan] for i, ok in zip(idx, known)]).reshape(-1, 2),
                text=None if m is None else [f"margin {float(m[i]):.4f}" if ok else unbroken_text(max_eps)
                                             for i, ok in zip(idx, known)],
                hovertemplate=(f"point #%{{customdata[0]}}, class {k}<br>x = (%{{x:.3f}}, %{{y:.3f}})"
                               + ("<br>%{text}" if m is not None else "") + "<extra></extra>")),
                row=row, col=col)
        if m is not None and unbroken.any():
            idx = torch_nonzero(unbroken)
            fig.add_trace(go.Scatter(
                x=_f32(x[idx, 0]), y=_f32(x[idx, 1]), mode="markers", name=unbroken_text(max_eps),
                legendgroup="unbroken", showlegend=not any(t.legendgroup == "unbroken" for t in fig.data),
                marker=dict(symbol="x-thin-open", size=9, line=dict(width=1.5, color="black"), color="black"),
                hoverinfo="skip"), row=row, col=col)
        if m is not None:
            ok = shown & (m > 0) & m.isfinite() & ~unbroken
            idx = torch_nonzero(ok)
            if idx:
                outlines = ball_outlines(x[idx], m[idx].float(), norm)
                # Each outline closed and followed by a NaN: one trace, one line per ball.
                closed = np.concatenate([outlines, outlines[:, :1], np.full_like(outlines[:, :1], np.nan)], 1)
                fig.add_trace(go.Scatter(x=_f32(closed[..., 0].ravel()), y=_f32(closed[..., 1].ravel()), mode="lines", name=f"{title}: margin balls", showlegend=False,
                                         line=dict(color="rgba(0,0,0,0.55)", width=1), hoverinfo="skip"),
                              row=row, col=col)
        fig.update_xaxes(range=[float(gx[0]), float(gx[-1])], showgrid=False, row=row, col=col)
        fig.update_yaxes(range=[float(gy[0]), float(gy[-1])], showgrid=False, scaleanchor=f"x{ref}", scaleratio=1,
                         row=row, col=col)
    fig.update_annotations(font_size=11)
    fig.update_layout(template=TEMPLATE, height=430 * rows, hovermode="closest", dragmode="zoom",
                      title=dict(text=f"decision boundaries, {norm} margins as balls", font=dict(size=13)),
                      # The one legend entry (unbroken points), under the panels, clear of tick labels.
                      legend=dict(orientation="h", x=0, y=-30 / (430 * rows - 100), xanchor="left", yanchor="top"),
                      margin=dict(b=70))
    return fig


def torch_nonzero(mask) -> list[int]:
    """Indices (list) where a bool tensor is True."""
    return mask.nonzero().reshape(-1).tolist()


def budget_study_figure(results: dict, *, a: str = "mma-0.45", b: str = "pgd-0.4") -> go.Figure:
    """Twin of :func:`~mma_edu.plots.static.plot_budget_study`: left, each model's AvgAcc against its training
    steps with its band (hover: steps, AvgAcc, interval, clean accuracy, median margin) and its other seeds as
    open markers; right, the paired gap ``a`` − ``b`` per budget: seed 0's with its interval and verdict, the
    other seeds' (shifted right a little so they do not hide each other), their mean with the interval over
    seeds, the trend line and the zero line.

    Traces: per model its band (``"<name> interval"``), its line (``name``) and, if any, ``"<name> other seeds"``;
    then ``"gap (seed 0)"``, ``"other seeds"``, ``"mean over seeds"`` where there are any, and, with two budgets or
    more, ``"trend"``."""
    curves, gaps = budget_curves(results), budget_gaps(results, a, b)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("AvgAcc against the training budget", "does the gap close with more training?"))
    for c in curves:
        fig.add_trace(go.Scatter(x=c.steps + c.steps[::-1], y=_r(c.high + c.low[::-1]), fill="toself",
                                 fillcolor=_rgba(c.color, 0.15), line=dict(width=0), hoverinfo="skip",
                                 showlegend=False, name=f"{c.name} interval", legendgroup=c.name), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=c.steps, y=_r(c.avg_acc), mode="lines+markers", name=c.name, legendgroup=c.name,
            line=dict(color=c.color, width=2),
            customdata=[[_r(lo), _r(hi), _r(cl), _r(m)] for lo, hi, cl, m in zip(c.low, c.high, c.clean, c.median_margin)],
            hovertemplate=(f"<b>{c.name}</b> (seed 0)<br>%{{x}} steps<br>AvgAcc %{{y:.1f}}% [%{{customdata[0]:.1f}}, "
                           "%{customdata[1]:.1f}]<br>clean %{customdata[2]:.1f}%<br>median margin %{customdata[3]:.3f}"
                           "<extra></extra>")), row=1, col=1)
        if c.other_seeds:
            fig.add_trace(go.Scatter(
                x=[st for st, _, _ in c.other_seeds], y=_r([acc for _, _, acc in c.other_seeds]), mode="markers",
                name=f"{c.name} other seeds", legendgroup=c.name, showlegend=False,
                marker=dict(color=c.color, symbol="circle-open", size=9, line=dict(width=2)),
                customdata=[sd for _, sd, _ in c.other_seeds],
                hovertemplate=f"<b>{c.name}</b> seed %{{customdata}}<br>%{{x}} steps<br>AvgAcc %{{y:.1f}}%<extra></extra>"),
                row=1, col=1)
    if gaps.steps:
        fig.add_trace(go.Scatter(
            x=gaps.steps, y=_r(gaps.gap), mode="markers", name="gap (seed 0)", marker=dict(color="black", size=8),
            error_y=dict(type="data", symmetric=False, array=_r([hi - g for g, hi in zip(gaps.gap, gaps.high)]),
                         arrayminus=_r([g - lo for g, lo in zip(gaps.gap, gaps.low)])),
            customdata=[[_r(lo), _r(hi), v] for lo, hi, v in zip(gaps.low, gaps.high, gaps.verdicts)],
            hovertemplate=(f"%{{x}} steps, seed 0<br>{a} − {b}: %{{y:+.1f}} points<br>95% over digits "
                           f"[%{{customdata[0]:+.1f}}, %{{customdata[1]:+.1f}}]<br>{a} better: %{{customdata[2]}}"
                           "<extra></extra>")), row=1, col=2)
    if gaps.seed_points:
        pts = gaps.seed_points
        fig.add_trace(go.Scatter(
            x=[st * (1 + 0.05 * sd) for st, sd, *_ in pts], y=_r([g for _, _, g, _, _ in pts]), mode="markers",
            name="other seeds", marker=dict(color="grey", size=7, symbol="circle-open", line=dict(width=2)),
            error_y=dict(type="data", symmetric=False, array=_r([hi - g for _, _, g, _, hi in pts]),
                         arrayminus=_r([g - lo for _, _, g, lo, _ in pts]), color="grey"),
            customdata=[[st, sd, _r(lo), _r(hi)] for st, sd, _, lo, hi in pts],
            hovertemplate=(f"%{{customdata[0]}} steps, seed %{{customdata[1]}}<br>{a} − {b}: %{{y:+.1f}} points<br>"
                           "95% over digits [%{customdata[2]:+.1f}, %{customdata[3]:+.1f}]<extra></extra>")),
            row=1, col=2)
    if gaps.mean_steps:
        fig.add_trace(go.Scatter(
            x=[st * 0.95 for st in gaps.mean_steps], y=_r(gaps.mean_gap), mode="markers", name="mean over seeds",
            marker=dict(color="#d62728", size=11, symbol="diamond"),
            error_y=dict(type="data", symmetric=False, color="#d62728",
                         array=_r([hi - g for g, hi in zip(gaps.mean_gap, gaps.mean_high)]),
                         arrayminus=_r([g - lo for g, lo in zip(gaps.mean_gap, gaps.mean_low)])),
            customdata=[[st, _r(lo), _r(hi), v] for st, lo, hi, v in
                        zip(gaps.mean_steps, gaps.mean_low, gaps.mean_high, gaps.mean_verdicts)],
            hovertemplate=(f"%{{customdata[0]}} steps, mean over seeds<br>{a} − {b}: %{{y:+.1f}} points<br>"
                           "95% over seeds [%{customdata[1]:+.1f}, %{customdata[2]:+.1f}]<br>"
                           f"{a} better: %{{customdata[3]}}<extra></extra>")), row=1, col=2)
    if gaps.line:
        fig.add_trace(go.Scatter(x=gaps.line_steps, y=_r(gaps.line), mode="lines", name="trend",
                                 line=dict(color="grey", dash="dash"),
                                 hovertemplate=f"{gaps.trend_label}: {gaps.per_doubling:+.1f} "
                                               f"[{gaps.per_doubling_low:+.1f}, {gaps.per_doubling_high:+.1f}] points "
                                               "per doubling<extra></extra>"), row=1, col=2)
    fig.add_hline(y=0, line=dict(color="red", width=1), row=1, col=2)
    budgets = sorted({st for c in curves for st in c.steps} | set(gaps.steps))
    for col in (1, 2):
        fig.update_xaxes(type="log", title_text="training steps (batch 50)", row=1, col=col,
                         tickvals=budgets, ticktext=[f"{st:,}" for st in budgets])
    fig.update_yaxes(title_text="AvgAcc (%): clean and ε 0.1–0.4", row=1, col=1)
    fig.update_yaxes(title_text=f"AvgAcc {a} − {b} (points)", row=1, col=2)
    fig.update_layout(template=TEMPLATE, height=420, hovermode="closest")
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Clean accuracy against AvgRobAcc (notebook 03's sweep)
# ---------------------------------------------------------------------------------------------------------------

def tradeoff_figure(points, *, percent: bool = True, title: str | None = None) -> go.Figure:
    """Clean accuracy against AvgRobAcc, one trace per method (named by its label, e.g. "MMA (d_max sweep)"),
    each point's ``customdata`` its size (hover: ε or d_max, both accuracies); twin of
    :func:`~mma_edu.plots.static.plot_tradeoff`."""
    unit = "%" if percent else ""
    fig = go.Figure()
    for c in tradeoff_curves(points, percent=percent):
        word = "ε" if c.method in ("pgd", "pgdls") else "d_max"
        fig.add_trace(go.Scatter(
            x=_r(c.clean), y=_r(c.avg_rob_acc), mode="lines+markers+text", name=c.label,
            text=[f"{s:g}" for s in c.sizes], textposition="top right", customdata=_r(c.sizes),
            line=dict(color=c.color, width=2), marker=dict(size=8),
            hovertemplate=(f"<b>{method_label(c.method)}</b> {word} = %{{customdata:.3g}}<br>"
                           f"clean %{{x:.1f}}{unit}<br>AvgRobAcc %{{y:.1f}}{unit}<extra></extra>")))
    fig.update_layout(template=TEMPLATE, height=420, hovermode="closest",
                      title=dict(text=title or "clean accuracy against AvgRobAcc", font=dict(size=13)),
                      xaxis=dict(title="clean accuracy" + (" (%)" if percent else "")),
                      yaxis=dict(title="AvgRobAcc" + (" (%)" if percent else "")))
    return fig
