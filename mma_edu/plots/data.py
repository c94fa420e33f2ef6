"""What every figure shows, computed once: the matplotlib figures (:mod:`.static`) and the plotly ones
(:mod:`.interactive`) both draw from these helpers, so a picture and its interactive twin cannot disagree.

Nothing here draws. Every helper returns plain Python numbers (lists, floats, ints, strings), which is also
what the plotly figures carry, so a test or a browser can compare them with a notebook's records.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .. import norms

# The method of a model is read from the start of its name, case-insensitive ("MMA d_max=0.3", "mma-0.45",
# "PGD-AT 0.3", "pgd-0.1", "standard"). Order matters: "pgdls" before "pgd", "omma" before "mma".
METHODS = ("standard", "pgdls", "pgd", "omma", "mma", "released", "paper")

# One hue per method, one shade per model within it (light to dark as its ε or d_max grows): standard grey,
# PGD-AT oranges, MMA greens, OMMA blues. The middle shade is the method's colour (:func:`method_color`).
METHOD_SHADES = {
    "standard": ("#8c8c8c", "#5f5f5f", "#3a3a3a"),
    "pgdls": ("#d9a066", "#b5651d", "#7a3f0c"),
    "pgd": ("#fdb863", "#f08c1e", "#c45a00", "#8a3b00"),
    "omma": ("#89bde0", "#3f83c4", "#1b4f8a"),
    "mma": ("#7fcf8f", "#2a9d5c", "#12633a"),
    "released": ("#b39ddb", "#7b4fa0", "#4a2570"),
    "paper": ("#bdbdbd", "#7f7f7f", "#4d4d4d"),
}
OTHER_COLORS = ["#7b4fa0", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#d1495b"]


def method_of(name: str) -> str | None:
    """The training method a model's name starts with ("pgd" for "PGD-AT 0.3"), or None."""
    key = name.lower().replace("pgd-at", "pgd")
    return next((m for m in METHODS if key.startswith(m)), None)


def method_color(name: str, fallback: int = 0) -> str:
    """The course's colour for a method named ``name`` ("MMA-0.45", "PGD-AT 0.3", "standard", ...)."""
    method = method_of(name)
    if method is None:
        return OTHER_COLORS[fallback % len(OTHER_COLORS)]
    shades = METHOD_SHADES[method]
    return shades[(len(shades) - 1) // 2]


def _size(name: str) -> float:
    """The ε or d_max a model's name carries ("pgd-0.3" -> 0.3, "MMA d_max=0.45" -> 0.45); 0 when none."""
    found = re.findall(r"\d+(?:\.\d+)?(?:/\d+)?", name)
    if not found:
        return 0.0
    num, _, den = found[-1].partition("/")
    return float(num) / float(den) if den else float(num)


def model_colors(names: Sequence[str]) -> dict[str, str]:
    """One colour per model: its method's hue, a darker shade for a larger ε/d_max among the models of that method
    named here (a method with a single model gets its :func:`method_color`)."""
    colors: dict[str, str] = {}
    by_method: dict[str | None, list[str]] = {}
    for name in names:
        by_method.setdefault(method_of(name), []).append(name)
    other = 0
    for method, group in by_method.items():
        if method is None:
            for name in group:
                colors[name] = OTHER_COLORS[other % len(OTHER_COLORS)]
                other += 1
            continue
        shades = METHOD_SHADES[method]
        if len(group) == 1:
            colors[group[0]] = method_color(group[0])
            continue
        ranked = sorted(group, key=_size)
        for r, name in enumerate(ranked):  # spread the group over the shades, lightest first
            colors[name] = shades[round(r * (len(shades) - 1) / (len(ranked) - 1))] if len(ranked) <= len(shades) \
                else _mix(shades[0], shades[-1], r / (len(ranked) - 1))
    return colors


def _mix(a: str, b: str, t: float) -> str:
    ca, cb = (tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in (a, b))
    return "#" + "".join(f"{round(x + t * (y - x)):02x}" for x, y in zip(ca, cb))


def method_label(method: str | None) -> str:
    """How a legend names a method's group."""
    return {"standard": "standard", "pgdls": "PGDLS", "pgd": "PGD-AT", "omma": "OMMA", "mma": "MMA",
            "released": "released", "paper": "paper", None: "other"}[method]


# ---------------------------------------------------------------------------------------------------------------
# 2-D decision boundaries
# ---------------------------------------------------------------------------------------------------------------

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


def margin_parts(margins) -> tuple[Tensor, Tensor, float | None]:
    """(margin (N,) float64 on the CPU, unbroken (N,) bool, max_eps) of a 2-D figure's margins.

    ``margins``: a :class:`~mma_edu.margins.MarginResult` (anything with ``margin``, ``found`` and ``max_eps``),
    whose unbroken examples (the search reached max_eps without breaking them: margin only known to be
    ≥ max_eps) are marked; or a bare (N,) tensor, of which no example is known to be unbroken.
    """
    if hasattr(margins, "margin") and hasattr(margins, "found"):
        m = torch.as_tensor(margins.margin).detach().cpu().double().reshape(-1)
        unbroken = ~torch.as_tensor(margins.found).cpu().bool().reshape(-1)
        return m, unbroken, getattr(margins, "max_eps", None)
    m = torch.as_tensor(margins).detach().cpu().double().reshape(-1)
    return m, torch.zeros(m.numel(), dtype=torch.bool), None


def unbroken_text(max_eps: float | None) -> str:
    """How a legend or a hover names an example the margin search did not break within max_eps."""
    return f"margin ≥ max_eps = {max_eps:g} (not broken)" if max_eps is not None else "margin ≥ max_eps (not broken)"


def marked_mask(x: Tensor, marked: int | None = MARKED) -> Tensor:
    """(N,) bool: the points of x (N, 2) that get a ball and a δ* arrow (:func:`spread_subset`; None: all)."""
    shown = torch.zeros(len(x), dtype=torch.bool)
    shown[spread_subset(x, marked) if marked is not None else torch.arange(len(x))] = True
    return shown


CLASS_COLORS = ["#3b6fb6", "#d1495b", "#2a9d5c", "#e9a03b", "#7b4fa0", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"]


def region_image(pred: np.ndarray, *, alpha: float = 0.18) -> np.ndarray:
    """(R, R, 3) uint8 picture of predicted classes pred (R, R) (row i at y index i): each class's colour at
    ``alpha`` over white, the boundary (a pixel whose right or upper neighbour differs) in black; rows flipped so
    that row 0 is the top (largest y), as a picture is drawn."""
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in CLASS_COLORS], dtype=float)
    img = 255 * (1 - alpha) + alpha * rgb[pred % len(CLASS_COLORS)]
    edge = np.zeros(pred.shape, dtype=bool)
    edge[:, :-1] |= pred[:, :-1] != pred[:, 1:]
    edge[:-1, :] |= pred[:-1, :] != pred[1:, :]
    img[edge] = 0
    return img[::-1].round().astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# Robust accuracy against ε
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class AccuracyCurve:
    """One model's robust-accuracy curve: ε = 0 is the clean accuracy; lists of equal length, in percent or
    fractions as asked; (low, high) is the Clopper–Pearson interval at ``level`` over ``n`` examples."""

    name: str
    method: str | None
    color: str
    eps: list[float]
    accuracy: list[float]
    low: list[float]
    high: list[float]
    n: int
    avg_acc: float


def accuracy_curves(results: Mapping[str, "object"], *, percent: bool = True, level: float = 0.95) \
        -> list[AccuracyCurve]:
    """The curves of :class:`~mma_edu.evaluate.RobustAccuracy` results, one per model, with their intervals."""
    if not results:
        raise ValueError("results must hold at least one RobustAccuracy")
    scale = 100.0 if percent else 1.0
    colors = model_colors(list(results))
    curves = []
    for name, r in results.items():
        acc = [r.clean] + list(r.accuracy)
        ci = [r.interval(a, level) for a in acc]
        curves.append(AccuracyCurve(name=name, method=method_of(name), color=colors[name],
                                    eps=[0.0] + [float(e) for e in r.eps], accuracy=[scale * a for a in acc],
                                    low=[scale * lo for lo, _ in ci], high=[scale * hi for _, hi in ci], n=r.n,
                                    avg_acc=scale * r.avg_acc))
    return curves


# ---------------------------------------------------------------------------------------------------------------
# Margin distributions
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class MarginECDF:
    """One model's per-example margins in increasing order, as an empirical distribution function.

    ``fraction[k]`` = (k + 1) / n is the fraction of examples with margin ≤ ``margin[k]``; ``index`` is each
    example's row in the evaluated data, ``label`` its class, ``hit`` whether the search reached ``max_eps``
    without breaking it (its margin is only known to be ≥ max_eps), ``misclassified`` whether its margin is 0.
    """

    name: str
    method: str | None
    color: str
    margin: list[float]
    fraction: list[float]
    index: list[int]
    label: list[int]
    hit: list[bool]
    median: float
    max_eps: float | None


def margin_ecdfs(margins: Mapping[str, Tensor], labels: Tensor | Sequence[int] | None = None, *,
                 max_eps: float | None = None, found: Mapping[str, Tensor] | None = None) -> list[MarginECDF]:
    """The sorted margins (N,) of each model with each example's index, label and whether it hit ``max_eps``.

    ``found`` (per model, (N,) bool, e.g. :attr:`MarginResult.found`) says which margins the search found;
    without it an example hit max_eps when its margin is ≥ max_eps (what an unbroken example reports; an exact
    margin above max_eps is inf). NaN margins (unknown) are left out of the curve; ``index`` keeps the rows.
    Margins that hit max_eps, and infinite ones, are drawn at ``max_eps``; a margin the search found beyond it
    (``found`` True: an attack not capped by max_eps, such as FMN) is drawn at its value.
    """
    if not margins:
        raise ValueError("margins must hold at least one model's margins")
    colors = model_colors(list(margins))
    out = []
    for name, m in margins.items():
        m = torch.as_tensor(m).detach().cpu().double().reshape(-1)
        n = m.numel()
        if labels is not None and len(labels) != n:
            raise ValueError(f"labels must have one entry per margin ({n} for {name!r}), got {len(labels)}")
        if found is not None and name in found:
            hit = ~torch.as_tensor(found[name]).cpu().bool().reshape(-1) & (m > 0)
        elif max_eps is not None:
            hit = m >= max_eps - 1e-6  # an unbroken example reports max_eps; an exact margin above it is inf
        else:
            hit = torch.zeros(n, dtype=torch.bool)
        known = ~torch.isnan(m)  # NaN: unknown (e.g. an exact solver's time limit); left out, indices kept
        order = torch.nonzero(known).squeeze(1)[torch.argsort(m[known], stable=True)]
        # At max_eps: what hit it unbroken and what is infinite. A margin found beyond max_eps (a search not
        # capped by it, such as FMN) is drawn where it is.
        shown = m[order]
        if max_eps is not None:
            shown = torch.where(hit[order] | ~torch.isfinite(shown), shown.clamp(max=max_eps), shown)
        k = order.numel()
        lab = torch.as_tensor(labels).cpu().reshape(-1)[order].tolist() if labels is not None else [-1] * k
        out.append(MarginECDF(name=name, method=method_of(name), color=colors[name], margin=shown.tolist(),
                              fraction=[(j + 1) / k for j in range(k)], index=order.tolist(),
                              label=[int(v) for v in lab], hit=hit[order].tolist(),
                              median=float(m[known].median()) if k else math.nan, max_eps=max_eps))
    return out


@dataclass
class MarginPairs:
    """Two margin estimates of the same examples by one model, one point per example (notebook 07's ℓ2 panels):
    ``reference`` (x: the better bound, e.g. the best of AN-PGD and FMN) against ``estimate`` (y: e.g. AN-PGD
    alone). A point above the diagonal is an estimate longer than the reference: a worse upper bound.

    Shown: the examples the reference search broke (found, margin > 0); ``left_out`` counts the others
    (misclassified, or unbroken by the reference too). ``capped``: the estimate's search reached ``max_eps``
    unbroken, so its margin is only known to be ≥ max_eps (drawn at max_eps). ``excess`` is estimate /
    reference − 1, ``found_by`` which search found the reference ("anpgd", "fmn", ...; "unknown" without it).
    ``top`` is where the diagonal ends: the largest value drawn, at least max_eps.
    """

    name: str
    color: str
    index: list[int]
    label: list[int]
    reference: list[float]
    estimate: list[float]
    excess: list[float]
    capped: list[bool]
    found_by: list[str]
    max_eps: float | None
    left_out: int
    top: float


def margin_pairs(pairs: Mapping[str, tuple], labels: Tensor | Sequence[int] | None = None) -> list[MarginPairs]:
    """Per model (name → (estimate, reference), both :class:`~mma_edu.margins.MarginResult` of the same N
    examples), the examples the reference broke with both margins, in example order."""
    if not pairs:
        raise ValueError("pairs must hold at least one model's (estimate, reference) margins")
    colors = model_colors(list(pairs))
    out = []
    for name, (est, ref) in pairs.items():
        a = torch.as_tensor(est.margin).detach().cpu().double().reshape(-1)
        b = torch.as_tensor(ref.margin).detach().cpu().double().reshape(-1)
        n = b.numel()
        if a.numel() != n:
            raise ValueError(f"the estimate and the reference of {name!r} must hold the same examples, got "
                             f"{a.numel()} and {n} margins")
        if labels is not None and len(labels) != n:
            raise ValueError(f"labels must have one entry per margin ({n} for {name!r}), got {len(labels)}")
        keep = torch.as_tensor(ref.found).cpu().bool().reshape(-1) & (b > 0)
        idx = torch.nonzero(keep).squeeze(1)
        capped = ~torch.as_tensor(est.found).cpu().bool().reshape(-1)[idx]
        max_eps = getattr(est, "max_eps", None)
        shown = a[idx].clone()
        if max_eps is not None:
            shown[capped] = shown[capped].clamp(max=max_eps)
        by = ref.found_by_names() if hasattr(ref, "found_by_names") else ["unknown"] * n
        lab = torch.as_tensor(labels).cpu().reshape(-1)[idx].tolist() if labels is not None else [-1] * len(idx)
        top = max([float(max_eps or 0.0)] + b[idx].tolist() + shown.tolist())
        out.append(MarginPairs(name=name, color=colors[name], index=idx.tolist(), label=[int(v) for v in lab],
                               reference=b[idx].tolist(), estimate=shown.tolist(),
                               excess=(a[idx] / b[idx] - 1).tolist(), capped=capped.tolist(),
                               found_by=[by[i] for i in idx.tolist()], max_eps=max_eps, left_out=n - len(idx),
                               top=top))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The margin sandwich (notebook 08): certified ≤ exact ≤ AN-PGD
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Sandwich:
    """Per example, in the order shown (sorted by exact margin, unsolved last): the bounds and the gaps.

    ``series`` maps each bound's name ("certified (CROWN)", "exact (MILP)", "AN-PGD, refine=3", ...) to its
    values in that order; ``kind`` of each name is "certified", "exact" or "estimate". ``gap_below`` is exact −
    the largest certified bound, ``gap_above`` the smallest estimate − exact (NaN where exact is unknown).
    """

    order: list[int]
    series: dict[str, list[float]]
    kind: dict[str, str]
    exact_name: str
    gap_below: list[float]
    gap_above: list[float]
    max_eps: float


def margin_sandwich(certified: Mapping[str, Tensor], exact: Tensor, estimates: Mapping[str, Tensor], *,
                    solved: Tensor, max_eps: float, exact_name: str = "exact (MILP)") -> Sandwich:
    """Certified lower bounds, exact margins and estimates (upper bounds) of the same N examples, sorted by
    exact margin (examples the solver did not solve last); exact margins above max_eps drawn at max_eps."""
    exact = torch.as_tensor(exact).detach().cpu().double().reshape(-1)
    solved = torch.as_tensor(solved).cpu().bool().reshape(-1)
    n = exact.numel()
    for what, group in (("certified", certified), ("estimates", estimates)):
        for name, v in group.items():
            if torch.as_tensor(v).numel() != n:
                raise ValueError(f"{what}[{name!r}] must have one value per example ({n}), got {torch.as_tensor(v).numel()}")
    order = torch.argsort(torch.where(solved, exact, torch.full_like(exact, 2 * max_eps)), stable=True)
    cert = {k: torch.as_tensor(v).detach().cpu().double().reshape(-1)[order] for k, v in certified.items()}
    est = {k: torch.as_tensor(v).detach().cpu().double().reshape(-1)[order] for k, v in estimates.items()}
    ex = exact[order].clamp(max=max_eps)
    ok = solved[order]
    best_cert = torch.stack(list(cert.values())).max(0).values if cert else torch.full_like(ex, math.nan)
    best_est = torch.stack(list(est.values())).min(0).values if est else torch.full_like(ex, math.nan)
    nan = torch.full_like(ex, math.nan)
    series = {**{k: v.tolist() for k, v in cert.items()}, exact_name: ex.tolist(), **{k: v.tolist() for k, v in est.items()}}
    kind = {**{k: "certified" for k in cert}, exact_name: "exact", **{k: "estimate" for k in est}}
    return Sandwich(order=order.tolist(), series=series, kind=kind, exact_name=exact_name,
                    gap_below=torch.where(ok, ex - best_cert, nan).tolist(),
                    gap_above=torch.where(ok, best_est - ex, nan).tolist(), max_eps=float(max_eps))


# ---------------------------------------------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------------------------------------------

# What each column of a run's history is, as the axes say it.
# MMA's margin estimate (epsilon with a hat) in text that is printed or shown: a combining circumflex (U+0302)
# lands beside the ε in monospace output and in matplotlib, so plain text (prints, hovers, plotly titles) says
# EPS_HAT and matplotlib labels say EPS_HAT_TEX (mathtext; :func:`~mma_edu.plots.static.mathtext` converts).
EPS_HAT = "ε-hat"
EPS_HAT_TEX = r"$\hat{\varepsilon}$"
HISTORY_LABELS = {"loss": "training loss (mean per batch)", "clean_acc": "clean accuracy (training batches)",
                  "margin": f"mean {EPS_HAT} found in training", "margin_median": f"median {EPS_HAT} in MMA's margin memory"}
HISTORY_KEYS = ("loss", "clean_acc", "margin_median")


def history_series(history, keys: Sequence[str] = HISTORY_KEYS) -> dict[str, tuple[list[int], list[float]]]:
    """Per key present in the run's epochs: (steps, values) — the step at the end of each epoch and the value.

    ``history``: a :class:`~mma_edu.train.History`, its ``to_dict()`` or the dict in a run's history.json.
    Epochs without the key (a standard run has no margins) are left out; a key no epoch has is left out.
    """
    epochs = history.epochs if hasattr(history, "epochs") else history.get("epochs", [])
    out = {}
    for key in keys:
        rows = [(int(e.get("step", e.get("epoch", k + 1))), float(e[key])) for k, e in enumerate(epochs)
                if e.get(key) is not None and not e.get("partial")]
        if rows:
            out[key] = ([s for s, _ in rows], [v for _, v in rows])
    return out


def read_history(folder: str | Path) -> dict:
    """The history.json of a run folder (``mma-edu train --out FOLDER`` or ``fit(..., out=FOLDER)``)."""
    path = Path(folder)
    if path.is_dir():
        path = path / "history.json"
    if not path.is_file():
        raise FileNotFoundError(f"folder must be a run folder holding history.json; {path} does not exist")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------------------------
# The training-budget study (mma_edu/budget_study.py)
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class BudgetCurve:
    """One model's AvgAcc against its training budget (seed 0, the study's default settings), in percent, with
    a 95% interval per budget from its per-digit scores; ``clean`` and ``median_margin`` for the hover;
    ``other_seeds``: (steps, seed, AvgAcc %) of the same model trained with other seeds."""

    name: str
    color: str
    steps: list[int]
    avg_acc: list[float]
    low: list[float]
    high: list[float]
    clean: list[float]
    median_margin: list[float]
    other_seeds: list[tuple[int, int, float]]


@dataclass
class BudgetGaps:
    """The paired AvgAcc gap of ``a`` minus ``b`` per budget in percentage points: seed 0's with its 95% interval
    over digits and verdict (``steps`` … ``verdicts``); every other seed's pair (``seed_points``: steps, seed, gap,
    low, high); where two seeds or more are done, their mean with its t interval over seeds (``mean_*``); and the
    trend line (points per doubling with its 95% interval; ``trend_label`` says what it was fitted to: every seed
    pair when budgets have seeds, else seed 0; None below two budgets)."""

    a: str
    b: str
    steps: list[int]
    gap: list[float]
    low: list[float]
    high: list[float]
    verdicts: list[str]
    seed_points: list[tuple[int, int, float, float, float]]
    mean_steps: list[int]
    mean_gap: list[float]
    mean_low: list[float]
    mean_high: list[float]
    mean_verdicts: list[str]
    per_doubling: float | None
    per_doubling_low: float | None
    per_doubling_high: float | None
    crossing_steps: float | None
    trend_label: str | None
    line_steps: list[int]
    line: list[float]  # the trend's gap at each of ``line_steps`` (empty without a trend)


def _seed_of(entry: dict) -> int | None:
    """The seed of a run that differs from the study's defaults in its seed only ("seed 2" -> 2), else None."""
    v = entry.get("variant", "")
    return int(v[5:]) if v.startswith("seed ") and v[5:].isdigit() else None


def budget_curves(results: dict, names: Sequence[str] = ("mma-0.45", "pgd-0.4", "omma-0.45", "pgd-0.3")) \
        -> list[BudgetCurve]:
    """The curves of the study's results (:func:`mma_edu.budget_study.load_results`) for ``names``."""
    from ..budget_study import per_digit_score
    from ..verdicts import paired_mean_difference

    everything = list(results["runs"].values())
    runs = [e for e in everything if not e.get("variant")]
    colors = model_colors([n for n in names if any(e["model"] == n for e in runs)])
    curves = []
    for name in names:
        mine = sorted((e for e in runs if e["model"] == name), key=lambda e: e["steps"])
        if not mine:
            continue
        cis = [paired_mean_difference(per_digit_score(e), torch.zeros(e["eval"]["n"], dtype=torch.float64))
               for e in mine]
        others = sorted((e["steps"], _seed_of(e), 100 * e["eval"]["avg_acc"]) for e in everything
                        if e["model"] == name and _seed_of(e))
        curves.append(BudgetCurve(name=name, color=colors[name], steps=[e["steps"] for e in mine],
                                  avg_acc=[100 * e["eval"]["avg_acc"] for e in mine],
                                  low=[100 * max(v.low, 0.0) for v in cis], high=[100 * min(v.high, 1.0) for v in cis],
                                  clean=[100 * e["eval"]["clean"] for e in mine],
                                  median_margin=[e["eval"]["median_margin"] for e in mine], other_seeds=others))
    return curves


def budget_gaps(results: dict, a: str = "mma-0.45", b: str = "pgd-0.4") -> BudgetGaps:
    """The gap tables and trend of :mod:`mma_edu.budget_study` (:func:`~mma_edu.budget_study.gap_table`,
    :func:`~mma_edu.budget_study.gaps_over_seeds`, :func:`~mma_edu.budget_study.seed_trend`), in points."""
    from ..budget_study import gap_table, gap_trend, gaps_over_seeds, seed_trend

    rows = gap_table(results, a, b)
    seeded = gaps_over_seeds(results, a, b)
    seed_points = [(g["steps"], seed, 100 * gap, 100 * lo, 100 * hi) for g in seeded
                   for seed, gap, lo, hi in zip(g["seeds"], g["gaps"], g["lows"], g["highs"]) if seed]
    means = [g for g in seeded if g["verdict"] is not None]
    trend = seed_trend(results, a, b) if means else None
    if trend is not None:
        label = f"trend over all {trend['n']} seed pairs"
        slope, lo, hi = trend["per_doubling"], trend["low"], trend["high"]
    elif len(rows) >= 2:
        trend = gap_trend(rows)
        label = "trend, seed 0"
        slope = trend["per_doubling"]
        lo, hi = slope - 1.96 * trend["per_doubling_se"], slope + 1.96 * trend["per_doubling_se"]
    else:
        label = slope = lo = hi = None
    line_steps = sorted({r["steps"] for r in rows} | {g["steps"] for g in seeded}) if trend else []
    line = [100 * (trend["intercept"] + trend["per_doubling"] * math.log2(s)) for s in line_steps]
    pct = (lambda v: None if v is None else 100 * v)
    return BudgetGaps(a=a, b=b, steps=[r["steps"] for r in rows], gap=[100 * r["gap"] for r in rows],
                      low=[100 * r["low"] for r in rows], high=[100 * r["high"] for r in rows],
                      verdicts=[r["verdict"] for r in rows], seed_points=seed_points,
                      mean_steps=[g["steps"] for g in means], mean_gap=[100 * g["gap_mean"] for g in means],
                      mean_low=[100 * g["low"] for g in means], mean_high=[100 * g["high"] for g in means],
                      mean_verdicts=[g["verdict"] for g in means], per_doubling=pct(slope),
                      per_doubling_low=pct(lo), per_doubling_high=pct(hi),
                      crossing_steps=None if trend is None else trend["crossing_steps"], trend_label=label,
                      line_steps=line_steps, line=line)


# ---------------------------------------------------------------------------------------------------------------

@dataclass
class TradeoffCurve:
    """One method's sweep: a point per trained model (its ``sizes``: ε or d_max), sorted by size; accuracies in
    percent or fractions as asked."""

    method: str
    label: str
    color: str
    sizes: list[float]
    clean: list[float]
    avg_rob_acc: list[float]


def tradeoff_curves(points: Sequence["object"], *, percent: bool = True) -> list[TradeoffCurve]:
    """The sweep's curves, one per method in order of first appearance. ``points``: objects with ``method``
    ("pgd", "mma", ...), ``size``, ``clean`` and ``avg_rob_acc`` (fractions), e.g. :class:`mma_edu.toy.SweepPoint`."""
    if not points:
        raise ValueError("points must hold at least one sweep point (method, size, clean, avg_rob_acc)")
    scale = 100.0 if percent else 1.0
    groups: dict[str, list] = {}
    for p in points:
        groups.setdefault(p.method, []).append(p)
    curves = []
    for method, group in groups.items():
        group = sorted(group, key=lambda p: p.size)
        word = "ε" if method in ("pgd", "pgdls") else "d_max"
        curves.append(TradeoffCurve(method=method, label=f"{method_label(method)} ({word} sweep)",
                                    color=method_color(method_label(method)), sizes=[float(p.size) for p in group],
                                    clean=[scale * float(p.clean) for p in group],
                                    avg_rob_acc=[scale * float(p.avg_rob_acc) for p in group]))
    return curves
