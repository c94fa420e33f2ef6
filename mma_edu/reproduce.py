"""Reproduce the paper's numbers: evaluate a released (or local) checkpoint beside what the paper reports.

:func:`reproduce` loads a checkpoint — a released model by name (downloaded
once into the cache by :func:`mma_edu.released.download_checkpoint`) or a local
``.pt`` file — and evaluates it in the paper's protocol (§6 of the notes):
whitebox PGD at every ε of :data:`mma_edu.presets.EVAL_EPS`, 10 restarts
(5 cross-entropy + 5 CW) of 100 steps, step size from
:func:`mma_edu.presets.eval_step_fraction`. The result puts the measured
row beside the paper's reported row, with the difference per ε and for
AvgAcc/AvgRobAcc. For ℓ2 models it also estimates the minimum ℓ2 distance
on the first 1,000 test images, beside the paper's CW-L2 numbers where the
paper has them: per image the shorter of AN-PGD's and FMN's verified
perturbations (``method="best"`` of :func:`mma_edu.evaluate.margin_distribution`),
and with ``peer="cw"`` also Carlini–Wagner ℓ2 — the paper's own measure —
from the ``attacks`` extra (foolbox), on the same images. How the two
compare (issue 24; 30 digits of the zoo, one busy CPU thread): on
``standard`` CW-ℓ2 (1,000 steps x 9 binary-search steps) has median 1.299,
"best" 1.279; on ``pgd-0.3`` 2.386 and 2.239 — per digit "best" is at most
CW's (median ratio 0.999 and 0.996) at 1/40 of the time (9–11 s against
~370 s). With 100 steps CW's distances are 2–4x too long: keep its default.

Expect gaps of both signs: the paper's robust accuracies also count
transfer attacks from its other models (whitebox restarts alone can only
find fewer adversarial examples), a subset of the test set has sampling
error, and different attacks find different minimum distances.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .data import ArrayDataset
from .distributed import Dist
from .files import atomic_write
from .evaluate import RobustAccuracy, margin_distribution, restart_plan, robust_accuracy
from .peer import DEFAULT_STEPS as DEFAULT_PEER_STEPS
from .peer import PEER_ATTACKS, advlib_distances, attack_name, foolbox_l2_distances, require_advlib, require_foolbox
from .presets import EVAL_EPS, eval_step_fraction
from .released import (NAME_RE, ReleasedModel, ReportedL2Distance, ReportedRow, download_checkpoint,
                       git_blob_sha1, list_released, load_registry, released_info, unknown_name_error)

DATA_KINDS = ("offline", "full")
# Upper end of the minimum-ℓ2-distance search, per dataset (well above the paper's CW-L2 medians).
MARGIN_MAX_EPS = {"mnist": 8.0, "cifar10": 4.0}
MARGIN_N = 1000  # the paper's CW-L2 table uses the first 1,000 test images
MARGIN_METHODS = ("best", "best+fab")  # the ℓ2 distance searches reproduce offers
# Peers of reproduce: foolbox's FMN and Carlini-Wagner l2 (the attacks extra), adv-lib's FAB (installed by hand).
REPRODUCE_PEERS = PEER_ATTACKS + ("fab",)


@dataclass
class L2Distances:
    """Minimum ℓ2 distances found on the first ``n`` test images by one method (0 for misclassified ones).

    ``margin`` is NaN where a peer attack found nothing; our AN-PGD search
    records its upper end (``max_eps``) there instead, as
    :func:`mma_edu.margins.estimate_margins` does. Means and medians skip NaN.
    """

    method: str
    settings: str
    margin: torch.Tensor = field(repr=False)
    found: torch.Tensor = field(repr=False)
    correct: torch.Tensor = field(repr=False)

    @property
    def n(self) -> int:
        return int(self.margin.shape[0])

    def summary(self) -> dict[str, float]:
        """clean %, mean and median over all n (0 for misclassified), the same over correct ones, found %."""
        m = self.margin.double()
        c = m[self.correct]
        nan = float("nan")
        return {
            "clean": 100 * self.correct.double().mean().item(),
            "mean": m.nanmean().item(),
            "median": m.nanmedian().item(),
            "mean_correct": c.nanmean().item() if len(c) else nan,
            "median_correct": c.nanmedian().item() if len(c) else nan,
            "found": 100 * self.found.double().mean().item(),
        }


@dataclass
class Reproduction:
    """Measured robust accuracy (and ℓ2 distances) of one checkpoint beside the paper's numbers."""

    model: str
    checkpoint: str
    epoch: int | None
    dataset: str
    norm: str
    data: str
    protocol: dict[str, Any]
    measured: RobustAccuracy
    eps_labels: list[str]
    reported: ReportedRow | None = None
    distances: L2Distances | None = None
    reported_distances: ReportedL2Distance | None = None
    peer: L2Distances | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.measured.robust.shape[0])

    def _reported_at(self, eps: float) -> float | None:
        if self.reported is None:
            return None
        for e, r in zip(self.reported.eps, self.reported.robust):
            if math.isclose(e, eps, rel_tol=1e-6, abs_tol=1e-9):
                return r
        return None

    def _same_eps(self) -> bool:
        r = self.reported
        return r is not None and len(r.eps) == len(self.measured.eps) and all(
            math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(r.eps, self.measured.eps))

    def rows(self) -> list[dict[str, Any]]:
        """Robust accuracy (%) rows: clean, each ε, AvgRobAcc, AvgAcc — label, eps, reported, measured, diff."""
        m, r = self.measured, self.reported
        out = [{"label": "clean", "eps": 0.0, "reported": r.clean if r else None, "measured": 100 * m.clean}]
        for e, lab, a in zip(m.eps, self.eps_labels, m.accuracy):
            out.append({"label": f"eps {lab}", "eps": e, "reported": self._reported_at(e), "measured": 100 * a})
        same = self._same_eps()
        out.append({"label": "AvgRobAcc", "eps": None, "reported": r.avg_rob_acc if same else None,
                    "measured": 100 * m.avg_rob_acc})
        out.append({"label": "AvgAcc", "eps": None, "reported": r.avg_acc if same else None,
                    "measured": 100 * m.avg_acc})
        for row in out:
            row["diff"] = None if row["reported"] is None else row["measured"] - row["reported"]
        return out

    def distance_rows(self) -> list[dict[str, Any]]:
        """ℓ2 rows (ℓ2 models only): clean %, mean and median distance, with the paper's CW-L2 numbers."""
        if self.distances is None:
            return []
        s, rep = self.distances.summary(), self.reported_distances
        out = [
            {"label": "clean %", "reported": rep.clean if rep else None, "measured": s["clean"], "fmt": "{:.1f}"},
            {"label": "mean", "reported": rep.mean if rep else None, "measured": s["mean"]},
            {"label": "median", "reported": rep.median if rep else None, "measured": s["median"]},
            {"label": "mean (correct only)", "reported": None, "measured": s["mean_correct"]},
            {"label": "median (correct only)", "reported": None, "measured": s["median_correct"]},
            {"label": "found %", "reported": None, "measured": s["found"], "fmt": "{:.1f}"},
        ]
        if self.peer is not None:
            p, name = self.peer.summary(), self.peer.method
            out += [
                {"label": f"mean ({name})", "reported": rep.mean if rep else None, "measured": p["mean"]},
                {"label": f"median ({name})", "reported": rep.median if rep else None, "measured": p["median"]},
                {"label": f"found % ({name})", "reported": None, "measured": p["found"], "fmt": "{:.1f}"},
            ]
        for row in out:
            row["diff"] = None if row["reported"] is None else row["measured"] - row["reported"]
        return out

    def header(self) -> list[str]:
        return _header_lines(self.model, self.checkpoint, self.epoch, self.data, self.n, self.norm, self.protocol)

    def footer(self) -> list[str]:
        lines = []
        if self.reported is not None:
            lines.append(f"reported: {self.reported.source} (whitebox PGD plus transfer attacks from the "
                         "authors' other models)")
        else:
            lines.append("reported: the paper has no robust-accuracy row for this model")
        if self.distances is not None:
            d = self.distances
            src = self.reported_distances.source if self.reported_distances else "the paper has no CW-L2 row"
            lines.append(f"l2 distances: {d.method} on the first {d.n:,} test images ({d.settings}), "
                         f"0 for misclassified; reported: {src}")
            if self.peer is not None:
                lines.append(f"peer: {self.peer.method} ({self.peer.settings}); NaN (skipped) where it found nothing")
        if self.n < 10_000:
            se = 100 * math.sqrt(0.25 / self.n)
            lines.append(f"n = {self.n:,}: each measured % has a sampling standard error of up to {se:.1f} points")
        lines += self.notes
        return lines

    def table(self, header: bool = True) -> str:
        """Plain text: header (unless ``header=False``), robust-accuracy table, ℓ2 table (ℓ2 models), notes."""
        lines = (self.header() + [""] if header else []) + [_text_table("robust accuracy %", self.rows(), "{:.2f}")]
        if self.distances is not None:
            lines += ["", _text_table("min l2 distance", self.distance_rows(), "{:.3f}")]
        return "\n".join(lines + [""] + self.footer())

    def markdown(self) -> str:
        """The same as :meth:`table`, as Markdown."""
        lines = [f"## {self.model}", ""] + [f"- {h}" for h in self.header()] + [""]
        lines += _md_table("robust accuracy %", self.rows(), "{:.2f}")
        if self.distances is not None:
            lines += [""] + _md_table("min l2 distance", self.distance_rows(), "{:.3f}")
        lines += [""] + [f"- {f}" for f in self.footer()]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model, "checkpoint": self.checkpoint, "epoch": self.epoch, "dataset": self.dataset,
            "norm": self.norm, "data": self.data, "n": self.n, "protocol": self.protocol,
            "rows": self.rows(), "measured": self.measured.as_dict(),
            "reported": None if self.reported is None else {
                "source": self.reported.source, "clean": self.reported.clean, "eps": self.reported.eps,
                "robust": self.reported.robust, "AvgRobAcc": self.reported.avg_rob_acc,
                "AvgAcc": self.reported.avg_acc},
            "notes": self.footer(),
        }
        if self.distances is not None:
            d = self.distances
            out["l2_distances"] = {"n": d.n, "method": d.method, "settings": d.settings,
                                   "rows": [{k: v for k, v in r.items() if k != "fmt"} for r in self.distance_rows()],
                                   "measured": d.summary(), "reported": None if self.reported_distances is None
                                   else {"source": self.reported_distances.source,
                                         "clean": self.reported_distances.clean,
                                         "mean": self.reported_distances.mean,
                                         "median": self.reported_distances.median}}
            if self.peer is not None:
                out["l2_distances"]["peer"] = {"method": self.peer.method, "settings": self.peer.settings,
                                               "measured": self.peer.summary()}
        return out

    def write_json(self, path: str | os.PathLike) -> Path:
        """:meth:`as_dict` as JSON (NaN written as null), atomically."""
        text = json.dumps(_nan_to_none(self.as_dict()), indent=1, allow_nan=False)
        return atomic_write(path, lambda f: f.write(text.encode()))

    def write_markdown(self, path: str | os.PathLike) -> Path:
        return atomic_write(path, lambda f: f.write(self.markdown().encode()))

    def figure(self):
        """A matplotlib Figure: reported and measured accuracy vs ε (and the ℓ2 distance histogram)."""
        from matplotlib.figure import Figure

        panels = 2 if self.distances is not None else 1
        fig = Figure(figsize=(5.5 * panels, 4), layout="constrained")
        axes = fig.subplots(1, panels, squeeze=False)[0]
        ax = axes[0]
        cifar_linf = (self.dataset, self.norm) == ("cifar10", "linf")
        scale = 255 if cifar_linf else 1
        m = self.measured
        ax.plot([0] + [scale * e for e in m.eps], [100 * m.clean] + [100 * a for a in m.accuracy], marker="o",
                label=f"measured (n={self.n:,}, AvgAcc {100 * m.avg_acc:.1f})")
        if self.reported is not None:
            r = self.reported
            ax.plot([0] + [scale * e for e in r.eps], [r.clean] + r.robust, marker="s", ls="--",
                    label=f"reported (AvgAcc {r.avg_acc:.1f})")
        ax.set_xlabel(f"ε ({self.norm}{', ×1/255' if cifar_linf else ''})")
        ax.set_ylabel("robust accuracy (%)")
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(self.model, fontsize=9)
        if self.distances is not None:
            ax = axes[1]
            d = self.distances
            ax.hist(d.margin[d.correct].numpy(), bins=30, color="0.6", label="measured (correct examples)")
            s = d.summary()
            ax.axvline(s["median"], color="C0", label=f"measured median {s['median']:.2f}")
            if self.reported_distances is not None:
                ax.axvline(self.reported_distances.median, color="C1", ls="--",
                           label=f"reported CW-L2 median {self.reported_distances.median:.2f}")
            ax.set_xlabel("minimum ℓ2 distance")
            ax.set_ylabel("examples")
            ax.legend(fontsize=8)
        return fig

    def save_plot(self, path: str | os.PathLike) -> Path:
        """Save :meth:`figure` (format from the suffix; PNG if none), atomically."""
        fmt = Path(path).suffix[1:].lower() or "png"
        fig = self.figure()
        return atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=120))


# ----------------------------------------------------------------------------
# Formatting helpers
# ----------------------------------------------------------------------------

def _header_lines(model: str, checkpoint: str, epoch: int | None, data: str, n: int, norm: str,
                  protocol: dict[str, Any]) -> list[str]:
    p = protocol
    losses = " + ".join(f"{p['plan'].count(loss)} {loss}" for loss in dict.fromkeys(p["plan"]))
    return [
        f"model      {model}",
        f"checkpoint {checkpoint}" + (f" (epoch {epoch})" if epoch is not None else ""),
        f"data       {data} ({n:,} examples)",
        f"attack     whitebox PGD {norm}: {p['restarts']} restarts ({losses}) x {p['steps']} steps, "
        f"step {p['step_fraction']:g}*eps, seed {p['seed']}",
    ]


def _cell(v: float | None, fmt: str, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return ("+" if signed and v >= 0 else "") + fmt.format(v)


def _text_table(title: str, rows: list[dict[str, Any]], fmt: str) -> str:
    width = max(len(title), *(len(r["label"]) for r in rows))
    lines = [f"{title:<{width}}  {'reported':>9}  {'measured':>9}  {'diff':>8}"]
    for r in rows:
        f = r.get("fmt", fmt)
        lines.append(f"{r['label']:<{width}}  {_cell(r['reported'], f):>9}  {_cell(r['measured'], f):>9}  "
                     f"{_cell(r['diff'], f, signed=True):>8}")
    return "\n".join(lines)


def _md_table(title: str, rows: list[dict[str, Any]], fmt: str) -> list[str]:
    lines = [f"| {title} | reported | measured | diff |", "|---|---:|---:|---:|"]
    for r in rows:
        f = r.get("fmt", fmt)
        lines.append(f"| {r['label']} | {_cell(r['reported'], f)} | {_cell(r['measured'], f)} | "
                     f"{_cell(r['diff'], f, signed=True)} |")
    return lines


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------
# Resolving what to evaluate
# ----------------------------------------------------------------------------

def identify(path: str | os.PathLike) -> tuple[ReleasedModel | None, str]:
    """Which released model a local file is: by checksum, else by a released name in its path.

    Returns (info or None, how): how is "checksum", "path" (name found in the
    path but the content differs from the released file) or "" (unknown).
    """
    path = Path(path)
    models = load_registry()["models"]
    digest = git_blob_sha1(path)
    by_sum = [n for n, e in models.items() if e["git_blob_sha1"] == digest]
    in_path = [part for part in path.resolve().parts if NAME_RE.match(part) and part in models]
    if by_sum:
        name = next((n for n in in_path if n in by_sum), by_sum[0])
        return released_info(name), "checksum"
    if in_path:
        return released_info(in_path[-1]), "path"
    return None, ""


def _dataset_of(ck) -> str:
    data_name = ck.data_name or ""
    for fam in ("cifar10", "mnist"):
        if data_name.startswith(fam):
            return fam
    return "cifar10" if type(ck.model).__name__ in ("Sequential", "WideResNet") else "mnist"


def _test_set(dataset: str, data: str, root: str | os.PathLike) -> ArrayDataset:
    from . import data as D

    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {data!r}")
    if data == "offline":
        if dataset != "mnist":
            raise ValueError(f"{dataset} has no offline copy; use data='full' (--data full) after "
                             f"'mma-edu download {dataset}'")
        # The offline digits are stored class by class; shuffle them once (fixed) so that "the first n"
        # is a mix of classes. The first n are then exactly ``mnist_offline().test.subset(n)``.
        test = D.mnist_offline().test
        idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))
        return ArrayDataset(test.x[idx], test.y[idx], f"{test.name}-shuffled")
    return (D.mnist(root) if dataset == "mnist" else D.cifar10(root)).test


def first(ds: ArrayDataset, n: int | None) -> ArrayDataset:
    """The first ``n`` examples in dataset order (the paper's "first 1,000 test images"); all if n is None."""
    if n is None or n >= len(ds):
        return ds
    return ArrayDataset(ds.x[:n], ds.y[:n], f"{ds.name}[:{n}]")


def _eps_labels(dataset: str, norm: str, eps: list[float]) -> list[str]:
    if (dataset, norm) == ("cifar10", "linf"):
        return [f"{round(e * 255):d}/255" for e in eps]
    return [f"{e:g}" for e in eps]


def reproduce(
    model: str | os.PathLike,
    *,
    norm: str | None = None,
    dataset: str | None = None,
    data: str = "full",
    root: str | os.PathLike = "data",
    n: int | None = None,
    steps: int = 100,
    restarts: int = 10,
    seed: int = 0,
    batch_size: int = 500,
    device: str = "auto",
    margin_n: int = MARGIN_N,
    margin_steps: int = 40,
    margin_max_eps: float | None = None,
    margin_method: str = "best",
    peer: str | None = None,
    peer_steps: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    progress: bool = True,
    log: Callable[[str], Any] | None = None,
    dist: Dist | None = None,
) -> Reproduction:
    """Evaluate a released model (by name) or a local checkpoint in the paper's protocol.

    Args:
        model: a released name (``mma-edu download checkpoint --list``; fetched
            into the cache if missing) or a path to a ``.pt`` file. A local
            file is recognised as a released model by its checksum (or a
            released name in its path); otherwise give ``norm``.
        norm: "linf" or "l2"; must match a released model's own norm.
        dataset: "mnist" or "cifar10"; default: the checkpoint's.
        data: "full" (the whole test set under ``root``) or "offline" (the
            1,000 offline MNIST test digits, no download).
        n: evaluate the first ``n`` test examples only (default: all).
        steps, restarts: PGD iterations per restart and restarts (split
            evenly over cross-entropy and CW); the step size is the paper's,
            scaled by 100/steps (:func:`mma_edu.presets.eval_step_fraction`).
        margin_n, margin_steps, margin_max_eps: ℓ2 models: the minimum-ℓ2
            distance search runs on the first ``min(margin_n, n)`` images with
            this many PGD steps per round, up to this radius
            (default :data:`MARGIN_MAX_EPS`).
        margin_method: ℓ2 models: "best" (AN-PGD and FMN, the shorter verified point per image) or
            "best+fab" (FAB too: the setting for models that may mask their gradients, about 4x the time;
            see :func:`mma_edu.margins.estimate_margins`).
        peer, peer_steps: ℓ2 models: also run foolbox's "fmn" or "cw"
            (Carlini–Wagner ℓ2, the paper's measure) minimum-norm attack on
            the same images (optional extra, see :mod:`mma_edu.peer`), or
            "fab": adv-lib's FAB, the peer for gradient-masked models
            (adv-lib installed by hand: see :mod:`mma_edu.peer`).
        cache_dir, base_url: where released files are cached, and a mirror
            (see :func:`mma_edu.released.download_checkpoint`).
        log: called with each line of the header before the evaluation starts.
        dist: several processes (:mod:`mma_edu.distributed`): the robust accuracy and the ℓ2
            distances are sharded over the ranks, with the single-process numbers on every rank
            (a ``peer`` attack runs whole on every rank).
    """
    from .checkpoint import load_checkpoint

    say = log or (lambda s: None)
    if norm is not None and norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if dataset is not None and dataset not in ("mnist", "cifar10"):
        raise ValueError(f"dataset must be 'mnist' or 'cifar10', got {dataset!r}")
    for value, what in ((steps, "steps"), (restarts, "restarts"), (margin_n, "margin_n"),
                        (margin_steps, "margin_steps"), (batch_size, "batch_size")):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be an integer >= 1 (or None for the whole test set), got {n!r}")
    if margin_max_eps is not None and not (math.isfinite(margin_max_eps) and margin_max_eps > 0):
        raise ValueError(f"margin_max_eps must be a positive number, got {margin_max_eps!r}")
    if margin_method not in MARGIN_METHODS:
        raise ValueError(f"margin_method must be one of {MARGIN_METHODS}, got {margin_method!r}")
    if peer is not None:
        if peer not in REPRODUCE_PEERS:
            raise ValueError(f"peer must be one of {REPRODUCE_PEERS} (or None), got {peer!r}")
        if peer_steps is not None and (not isinstance(peer_steps, int) or peer_steps < 1):
            raise ValueError(f"peer_steps must be an integer >= 1, got {peer_steps!r}")
        require_advlib() if peer == "fab" else require_foolbox()  # before, not after, a long evaluation

    notes: list[str] = []
    target = str(model)
    if target in list_released():
        info = released_info(target)
        if dist is not None and dist.active:  # rank 0 fetches; the others then find the verified copy
            dist.on_main(lambda: download_checkpoint(target, cache_dir=cache_dir, base_url=base_url,
                                                     progress=progress))
        path = download_checkpoint(target, cache_dir=cache_dir, base_url=base_url, progress=progress)
    elif Path(target).is_file():
        path = Path(target)
        info, how = identify(path)
        if how == "path":
            notes.append(f"{path} is named like the released {info.name} but its content differs from the "
                         "released file (checksum); the reported numbers are that model's")
    elif "/" not in target and os.sep not in target and not target.endswith(".pt"):
        raise unknown_name_error(target)
    else:
        raise FileNotFoundError(f"checkpoint not found: {target} (neither a file nor a released model name; "
                                "'mma-edu download checkpoint --list' lists the names)")

    if info is not None:
        if norm is not None and norm != info.norm:
            raise ValueError(f"norm {norm!r} does not match {info.name}, a {info.norm} model")
        if dataset is not None and dataset != info.dataset:
            raise ValueError(f"dataset {dataset!r} does not match {info.name}, a {info.dataset} model")
        norm, dataset = info.norm, info.dataset
    ck = load_checkpoint(path)
    if norm is None:  # our own checkpoints record the training method's norm
        method = ck.state.get("method")
        norm = method.get("norm") if isinstance(method, dict) and method.get("norm") in ("linf", "l2") else None
    if norm is None:
        raise ValueError(f"cannot tell which norm {path} was trained for: pass norm='linf' or 'l2' (--norm)")
    dataset = dataset or _dataset_of(ck)
    name = info.name if info is not None else target
    if peer is not None and norm != "l2":
        raise ValueError(f"peer attacks measure l2 distances; {name} is a {norm} model")

    test = first(_test_set(dataset, data, root), n)
    eps = EVAL_EPS[(dataset, norm)]
    frac = eval_step_fraction(dataset, norm, steps)
    plan = restart_plan(restarts, ("ce", "cw"))
    protocol = {"steps": steps, "restarts": restarts, "losses": ["ce", "cw"], "plan": plan, "step_fraction": frac,
                "seed": seed}
    for line in _header_lines(name, str(path), ck.epoch, test.name, len(test), norm, protocol):
        say(line)
    measured = robust_accuracy(ck.model, test, norm=norm, eps_list=eps, steps=steps, restarts=restarts,
                               losses=("ce", "cw"), step_fraction=frac, batch_size=batch_size, device=device,
                               seed=seed, progress=progress, dist=dist)
    distances = peer_result = None
    if norm == "l2":
        sub = first(test, margin_n)
        top = margin_max_eps if margin_max_eps is not None else MARGIN_MAX_EPS[dataset]
        res = margin_distribution(ck.model, sub, norm="l2", max_eps=top, steps=margin_steps, batch_size=batch_size,
                                  device=device, seed=seed, progress=progress, dist=dist, method=margin_method)
        # A correctly classified example always gets a length > 0 (found, or max_eps).
        # margin_distribution keeps, per image, the shortest of the searches' verified perturbations in l2.
        by = res.found_by_counts()
        fab_part = f", FAB {by.get('fab', 0)}" if margin_method == "best+fab" else ""
        label = "AN-PGD, FMN or FAB (best+fab)" if margin_method == "best+fab" else "AN-PGD or FMN (best)"
        distances = L2Distances(label, f"search up to {top:g}, {margin_steps} PGD steps per round; "
                                f"found by AN-PGD {by.get('anpgd', 0)}, FMN {by.get('fmn', 0)}{fab_part}", res.margin,
                                res.found, res.margin > 0)
        if peer == "fab":
            say(f"peer       adv-lib FAB on the first {len(sub):,} images")
            d, ok, correct = advlib_distances(ck.model, sub, attack="fab", steps=peer_steps, batch_size=batch_size)
            peer_result = L2Distances("adv-lib FAB", f"{peer_steps or 100} steps", d, ok, correct)
        elif peer is not None:
            say(f"peer       foolbox {attack_name(peer)} on the first {len(sub):,} images")
            d, ok, correct = foolbox_l2_distances(ck.model, sub, attack=peer, steps=peer_steps,
                                                  batch_size=batch_size, device=device)
            peer_result = L2Distances(f"foolbox {attack_name(peer)}", f"{peer_steps or DEFAULT_PEER_STEPS[peer]} steps",
                                      d, ok, correct)
    if info is not None:
        notes += list(info.notes)
    return Reproduction(
        model=name, checkpoint=str(path), epoch=ck.epoch, dataset=dataset, norm=norm, data=test.name,
        protocol=protocol, measured=measured, eps_labels=_eps_labels(dataset, norm, eps),
        reported=info.reported if info else None, distances=distances,
        reported_distances=info.reported_l2_distance if info else None, peer=peer_result, notes=notes,
    )
