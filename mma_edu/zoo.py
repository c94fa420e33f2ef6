"""The course's model zoo: reference models trained by this package, shipped with it.

Nine ℓ∞ models of the offline MNIST digits (:func:`mma_edu.data.mnist_offline`,
4,000 training digits), all trained by :func:`mma_edu.train.fit` with the
same budget (:data:`BUDGET`), so that the notebooks compare methods without
training them first and the tests check the paper's claims on models that
really trained:

- ``standard`` — cross-entropy on clean digits;
- ``pgd-0.1`` … ``pgd-0.4`` — PGD adversarial training at a fixed ε, with the
  radius ramped linearly from ~0 to ε over the first quarter of training
  (``PGDAT(warmup_steps=...)``). Without the ramp, ε ≥ 0.3 on this budget
  collapses to a constant classifier (about 10% at every ε);
- ``mma-0.3``, ``mma-0.45`` — MMA at two d_max (1/3 clean loss);
- ``omma-0.3``, ``omma-0.45`` — the same without the clean loss.

And five ℓ2 models, the rows of the paper's MNIST ℓ2 table (same budget and recipe,
their own manifest ``manifest-l2.json``, measured with :data:`EVAL_L2`):
``l2-pgd-2``, ``l2-pgd-4`` (PGD-AT at ℓ2 ε 2 and 4) and ``l2-mma-2``, ``l2-mma-4``,
``l2-mma-6`` (MMA at ℓ2 d_max 2, 4, 6); the table's standard model is ``standard``
(``zoo.names("l2")``, ``zoo.manifest(norm="l2")``, ``python -m mma_edu.zoo build --norm l2``).

Use::

    from mma_edu import zoo
    zoo.names()                      # ['standard', 'pgd-0.1', ...]
    model = zoo.load("mma-0.45")     # an nn.Module in eval mode, on the CPU
    zoo.manifest()["models"]["mma-0.45"]["eval"]   # what it measured when built

Build (about 15 minutes on one CPU thread; writes ``mma_edu/zoo_weights/``)::

    python -m mma_edu.zoo build                  # or: make zoo
    python -m mma_edu.zoo build --only pgd-0.3   # one model, merged into the manifest
    python -m mma_edu.zoo build --out /tmp/zoo   # somewhere else
    python -m mma_edu.zoo list

Each weight file is a checkpoint in this package's format
(:func:`mma_edu.checkpoint.save_checkpoint`, with ``model_name`` and
``model_kwargs``), read back with ``weights_only=True``. ``manifest.json``
records, per model, the command, seed, code version, torch version, training
time and the numbers measured on the saved weights by :data:`EVAL` — the
protocol the tests re-run (``tests/test_zoo.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .files import write_json

WEIGHTS_DIR = Path(__file__).resolve().parent / "zoo_weights"
MANIFEST = "manifest.json"
MANIFEST_L2 = "manifest-l2.json"  # the ℓ2 zoo's (its models are named "l2-...")
NORMS = ("linf", "l2")
FORMAT = "mma-edu-zoo/1"

# The budget every model gets (training steps, batch, optimizer, attack iterations, seed).
BUDGET: dict[str, Any] = {
    "data": "mnist_offline/train (4,000 digits)",
    "model": "small_cnn",
    "model_kwargs": {},
    "epochs": 20,
    "batch_size": 50,
    "optimizer": "adam",
    "lr": 1e-3,
    "attack_steps": 10,  # PGD iterations of PGD-AT and of MMA's AN-PGD
    "seed": 0,
}
# PGD-AT's ε warm-up: linear ramp over the first quarter of training (5 of 20 epochs).
WARMUP_FRACTION = 0.25


def recipe(steps_per_epoch: int = 80) -> str:
    """The training recipe in words (stored in the manifest); 80 steps per epoch = 4,000 digits / batch 50."""
    b = BUDGET
    steps = b["epochs"] * steps_per_epoch
    warmup = round(WARMUP_FRACTION * steps)
    k = b["attack_steps"]
    return (
        f"Every model: {b['model']} {b['model_kwargs'] or '(defaults: width 8, hidden 64)'} trained from seed {b['seed']} with {b['optimizer']} "
        f"lr {b['lr']:g}, batch {b['batch_size']}, {b['epochs']} epochs ({steps} steps) on the mnist_offline "
        f"training digits, l_inf. PGD-AT: cross-entropy at a {k}-step PGD point (random start, step 2.5*eps/{k}), "
        f"eps ramped linearly from eps/{warmup} to eps over the first {warmup} steps (PGDAT(warmup_steps={warmup})); "
        "without the ramp, eps >= 0.3 collapses to a constant classifier on this budget. MMA/OMMA: AN-PGD with "
        f"{k} PGD steps and 10 bisection steps, mineps = d_max/10, hinge at d_max, clean-loss weight 1/3 (MMA) "
        "or 0 (OMMA). Standard: clean cross-entropy."
    )

# The measurement protocol of the manifest (and of tests/test_zoo.py on its "check" subset).
EVAL: dict[str, Any] = {
    "data": "mnist_offline().test.subset(500) (fixed shuffle, seed 0)",
    "n": 500,
    "norm": "linf",
    "eps": [0.1, 0.2, 0.3, 0.4],
    "pgd_steps": 20,
    "restarts": 2,
    "losses": ["ce", "cw"],
    "step_fraction": 0.125,  # step = ε/8: the paper's ε/40 at 100 steps, scaled to 20 steps (same travel)
    "margin_max_eps": 0.6,
    "margin_refine": 1,
    "margin": "margin_distribution: AN-PGD 40 steps (logit margin), 12 bisection steps, 1 restart, refine 1",
    "batch_size": 100,
    "seed": 0,
    "check_n": 200,  # tests re-run everything on the first check_n digits of the same subset
}

# The ℓ2 zoo's protocol: the same digits, batches and seed; ε 1–4 (the paper's MNIST ℓ2 list), PGD step ε/4
# (the paper's step); margins are minimum ℓ2 distances by estimate_margins(method="best") (AN-PGD and FMN,
# the shorter verified one), the measure of the paper's ℓ2 table (which used Carlini-Wagner ℓ2).
EVAL_L2: dict[str, Any] = {
    **{k: v for k, v in EVAL.items() if k not in ("margin",)},
    "norm": "l2",
    "eps": [1.0, 2.0, 3.0, 4.0],
    "step_fraction": 0.25,
    "margin_max_eps": 10.0,
    "margin_method": "best",
    "check_n": 100,  # the ℓ2 margin search (AN-PGD + FMN) costs more: the tests re-measure 100 digits
    "margin": "margin_distribution(method='best'): AN-PGD 40 steps + FMN 100 steps, shorter verified point, refine 1",
}
PROTOCOLS = {"linf": EVAL, "l2": EVAL_L2}


@dataclass(frozen=True)
class ZooSpec:
    """One model of the zoo: ``kind`` is "standard", "pgd", "mma" or "omma"; ``size`` ε or d_max."""

    name: str
    kind: str
    size: float | None = None
    norm: str = "linf"

    def method(self, steps_per_epoch: int):
        """A fresh training method (methods keep per-run state: never share one between runs)."""
        from .train import MMA, PGDAT, Standard

        steps = BUDGET["attack_steps"]
        if self.kind == "standard":
            return Standard()
        if self.kind == "pgd":
            warmup = round(WARMUP_FRACTION * BUDGET["epochs"] * steps_per_epoch)
            return PGDAT(self.size, self.norm, steps=steps, warmup_steps=warmup)
        clean = 1 / 3 if self.kind == "mma" else 0.0
        return MMA(self.size, self.norm, clean_weight=clean, steps=steps)  # mineps = d_max/10 (the default)

    def describe(self) -> str:
        norm = "" if self.norm == "linf" else f" ({self.norm})"
        if self.kind == "standard":
            return "standard training (clean cross-entropy)"
        if self.kind == "pgd":
            return (f"PGD-AT{norm} at eps={self.size:g} (eps ramped linearly from 0 over the first "
                    f"{WARMUP_FRACTION:.0%} of steps)")
        if self.kind == "mma":
            return f"MMA{norm}, d_max={self.size:g}, 1/3 clean loss, mineps=d_max/10"
        return f"OMMA{norm} (MMA without clean loss), d_max={self.size:g}, mineps=d_max/10"


SPECS: tuple[ZooSpec, ...] = (
    ZooSpec("standard", "standard"),
    ZooSpec("pgd-0.1", "pgd", 0.1),
    ZooSpec("pgd-0.2", "pgd", 0.2),
    ZooSpec("pgd-0.3", "pgd", 0.3),
    ZooSpec("pgd-0.4", "pgd", 0.4),
    ZooSpec("mma-0.3", "mma", 0.3),
    ZooSpec("mma-0.45", "mma", 0.45),
    ZooSpec("omma-0.3", "omma", 0.3),
    ZooSpec("omma-0.45", "omma", 0.45),
)
# The ℓ2 zoo: the models of the paper's MNIST ℓ2 table (its standard model is the ℓ∞ zoo's "standard",
# which trains on clean digits only; it is measured with the ℓ2 protocol too).
SPECS_L2: tuple[ZooSpec, ...] = (
    ZooSpec("l2-pgd-2", "pgd", 2.0, "l2"),
    ZooSpec("l2-pgd-4", "pgd", 4.0, "l2"),
    ZooSpec("l2-mma-2", "mma", 2.0, "l2"),
    ZooSpec("l2-mma-4", "mma", 4.0, "l2"),
    ZooSpec("l2-mma-6", "mma", 6.0, "l2"),
)
_BY_NAME = {s.name: s for s in SPECS + SPECS_L2}


def _check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS!r}, got {norm!r}")
    return norm


def names(norm: str = "linf") -> list[str]:
    """The zoo's model names for ``norm``, in a fixed order: ℓ∞ (default) standard, PGD-AT by ε, MMA, OMMA;
    ℓ2 PGD-AT by ε, then MMA by d_max (the ℓ2 table's standard model is the ℓ∞ zoo's "standard")."""
    return [s.name for s in (SPECS if _check_norm(norm) == "linf" else SPECS_L2)]


def spec(name: str) -> ZooSpec:
    """The :class:`ZooSpec` called ``name``; a ValueError lists the names otherwise."""
    if name not in _BY_NAME:
        raise ValueError(f"name must be one of {names() + names('l2')!r}, got {name!r}")
    return _BY_NAME[name]


def _root(root: str | os.PathLike | None) -> Path:
    return WEIGHTS_DIR if root is None else Path(root)


def weight_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where the weights of ``name`` live: ``<root>/<name>.pt`` (root: the package's zoo_weights/)."""
    return _root(root) / f"{spec(name).name}.pt"


def manifest(root: str | os.PathLike | None = None, norm: str = "linf") -> dict:
    """The manifest of the ``norm`` zoo (``<root>/manifest.json``, or ``manifest-l2.json`` for ℓ2): protocol,
    budget and one entry per built model."""
    path = _root(root) / (MANIFEST if _check_norm(norm) == "linf" else MANIFEST_L2)
    if not path.is_file():
        flag = "" if norm == "linf" else " --norm l2"
        raise FileNotFoundError(f"no zoo manifest at {path}; build the zoo with `make zoo` "
                                f"(python -m mma_edu.zoo build{flag})")
    with open(path) as f:
        return json.load(f)


def load(name: str, root: str | os.PathLike | None = None, device: str | torch.device = "cpu", *,
         verify: bool = True) -> nn.Module:
    """The zoo model ``name`` with its shipped weights, in eval mode on ``device``.

    The model maps digits (N, 1, 28, 28) in [0, 1] to logits (N, 10). The file must match the sha256
    the manifest records for it (``verify=False``: skip that, as the build does before it records it);
    a mismatch (bit flips, another model's file) is a ValueError that says how to rebuild it.
    """
    from .checkpoint import load_checkpoint
    from .device import resolve_device

    device = resolve_device(device)  # a bad device name is the caller's error, not the file's
    path = weight_path(name, root)
    rebuild = f"rebuild it with `python -m mma_edu.zoo build --only {name}`" + (
        " (or restore the shipped file: git checkout mma_edu/zoo_weights)" if root is None else "")
    if not path.is_file():
        raise FileNotFoundError(f"zoo weights for {name!r} not found at {path}; build them with "
                                f"`python -m mma_edu.zoo build --only {name}`")
    if verify:
        expected = manifest(root, spec(name).norm).get("models", {}).get(name, {}).get("sha256")
        if expected is None:
            raise ValueError(f"zoo weights {path}: the manifest in {path.parent} records no sha256 for {name!r}, "
                             f"so the file cannot be verified; {rebuild}")
        got = _sha256(path)
        if got != expected:
            raise ValueError(f"zoo weights {path} do not match the manifest (sha256 {got[:16]}..., expected "
                             f"{expected[:16]}...): the file is damaged or from another build; {rebuild}")
    return load_checkpoint(path, map_location=device).model.to(device).eval()


# ----------------------------------------------------------------------------
# Measuring (the manifest's numbers; the tests re-run measure() on check_n digits)
# ----------------------------------------------------------------------------

def eval_data(n: int | None = None):
    """The evaluation digits: the first ``n`` (default EVAL["n"]) of mnist_offline's test set after a
    fixed shuffle (the test split itself is sorted by class). x (n, 1, 28, 28), y (n,)."""
    from .data import mnist_offline

    return mnist_offline().test.subset(EVAL["n"] if n is None else n)


@dataclass
class Measurement:
    """Per-example results of :func:`measure` on the first N evaluation digits.

    The evaluation runs in batches of ``EVAL["batch_size"]`` with one seed for the whole run, so the
    first k rows of a run on N digits equal a run on k digits (k a multiple of the batch size): the
    manifest's "check" numbers are the first ``check_n`` rows of the build's run, which the tests
    re-measure from scratch.
    """

    correct: Tensor  # (N,) bool: clean digit classified correctly
    robust: Tensor  # (N, len(eps)) bool: no PGD restart succeeded at that ε (nor at any smaller one)
    margin: Tensor  # (N,) margin estimate in the protocol's norm (0 where misclassified)
    pred: Tensor  # (N,) predicted class
    eps: tuple[float, ...] = tuple(EVAL["eps"])  # the protocol's ε list (the columns of robust)

    def summary(self, n: int | None = None) -> dict:
        """Clean accuracy, robust accuracy per ε (keys "0.1", ...), AvgRobAcc, margin statistics and the
        largest fraction of digits given one class (near 1.0 for a constant classifier), over the first n."""
        k = self.correct.shape[0] if n is None else n
        rob = self.robust[:k].double().mean(0).tolist()
        m = self.margin[:k].double()
        return {
            "n": k,
            "clean": self.correct[:k].double().mean().item(),
            "robust": {f"{e:g}": a for e, a in zip(self.eps, rob)},
            "avg_rob_acc": sum(rob) / len(rob),
            "median_margin": m.median().item(),
            "mean_margin": m.mean().item(),
            "margin_q25": m.quantile(0.25).item(),
            "margin_q75": m.quantile(0.75).item(),
            "top_class_fraction": self.pred[:k].bincount(minlength=10).max().item() / k,
        }

    def per_digit(self) -> dict:
        """Every digit's outcome, for paired comparisons (:mod:`mma_edu.verdicts`): ``correct`` and
        ``robust_<ε>`` as 0/1 strings (:func:`mma_edu.verdicts.bits`), ``margin`` as a list (5 decimals)."""
        from .verdicts import bits

        return {"correct": bits(self.correct),
                **{f"robust_{e:g}": bits(self.robust[:, i]) for i, e in enumerate(self.eps)},
                "margin": [round(v, 5) for v in self.margin.double().tolist()]}


def as_robust_accuracy(m: Measurement, norm: str = "linf"):
    """A :class:`~mma_edu.evaluate.RobustAccuracy` of a measurement (for tables with intervals and plots)."""
    from .evaluate import RobustAccuracy

    p = PROTOCOLS[_check_norm(norm)]
    return RobustAccuracy(p["norm"], list(p["eps"]), m.correct.double().mean().item(),
                          m.robust.double().mean(0).tolist(), m.robust, p["step_fraction"])


def measure(model: nn.Module, n: int | None = None, norm: str = "linf") -> Measurement:
    """Measure ``model`` on the first ``n`` evaluation digits (default EVAL["n"]) with the ``norm`` protocol
    (:data:`EVAL` for ℓ∞, :data:`EVAL_L2` for ℓ2): whitebox PGD (:func:`mma_edu.evaluate.robust_accuracy`)
    and margins (:func:`mma_edu.evaluate.margin_distribution`), both seeded."""
    from .evaluate import margin_distribution, robust_accuracy
    from .losses import is_correct

    p = PROTOCOLS[_check_norm(norm)]
    data = eval_data(p["n"] if n is None else n)
    model = model.cpu().eval()
    bs = p["batch_size"]
    ra = robust_accuracy(model, data, norm=p["norm"], eps_list=p["eps"], steps=p["pgd_steps"],
                         restarts=p["restarts"], losses=p["losses"], step_fraction=p["step_fraction"],
                         batch_size=bs, device="cpu", seed=p["seed"], progress=False)
    md = margin_distribution(model, data, norm=p["norm"], max_eps=p["margin_max_eps"], refine=p["margin_refine"],
                             batch_size=bs, device="cpu", seed=p["seed"], progress=False,
                             **({"method": p["margin_method"]} if "margin_method" in p else {}))
    with torch.no_grad():
        logits = model(data.x)
    return Measurement(correct=is_correct(logits, data.y), robust=ra.robust, margin=md.margin,
                       pred=logits.argmax(1), eps=tuple(p["eps"]))


# ----------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------

def code_version() -> str:
    """The git commit of the package's checkout (``+dirty`` if its code has uncommitted changes;
    the zoo's own weights are not counted), or "unknown" outside a git checkout."""
    pkg = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(pkg), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", str(pkg.parent), "status", "--porcelain", "--", ".",
                                 f":(exclude){pkg.name}/{WEIGHTS_DIR.name}"],
                                capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if status.strip() else "")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_one(name: str, root: str | os.PathLike | None = None, progress: bool = False,
              version: str | None = None) -> dict:
    """Train zoo model ``name`` with :data:`BUDGET`, save its weights, measure them; returns its manifest entry.
    ``version``: the code's :func:`code_version`, read when the build started (default: now)."""
    from .checkpoint import FORMAT as CKPT_FORMAT, save_checkpoint
    from .data import mnist_offline
    from .models import build_model, count_parameters
    from .train import fit

    s = spec(name)
    train = mnist_offline().train
    steps_per_epoch = len(train) // BUDGET["batch_size"]
    method = s.method(steps_per_epoch)
    torch.manual_seed(BUDGET["seed"])
    model = build_model(BUDGET["model"], **BUDGET["model_kwargs"])
    t0 = time.perf_counter()
    history = fit(model, train, method, epochs=BUDGET["epochs"], batch_size=BUDGET["batch_size"],
                  optimizer=BUDGET["optimizer"], lr=BUDGET["lr"], device="cpu", seed=BUDGET["seed"],
                  progress=progress, meta={"zoo": name})
    seconds = time.perf_counter() - t0
    path = weight_path(name, root)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_checkpoint(path, {
        "format": CKPT_FORMAT, "model_name": BUDGET["model"], "model_kwargs": dict(BUDGET["model_kwargs"]),
        "epoch": BUDGET["epochs"], "step": BUDGET["epochs"] * steps_per_epoch, "model": state,
        "method": method.config(), "data": train.name, "meta": {"zoo": name},
    })
    shipped = load(name, root, verify=False)  # measure exactly what ships (its hash is recorded below)
    t1 = time.perf_counter()
    measured = measure(shipped, norm=s.norm)
    last = history.epochs[-1]
    return {
        "name": name,
        "description": s.describe(),
        "kind": s.kind,
        "size": s.size,
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": _sha256(path),
        "norm": s.norm,
        "parameters": count_parameters(shipped),
        "method": method.config(),
        "command": f"python -m mma_edu.zoo build --only {name}",
        "seed": BUDGET["seed"],
        "code_version": version or code_version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "train_seconds": round(seconds, 1),
        "eval_seconds": round(time.perf_counter() - t1, 1),
        "final_epoch_train_clean_acc": last.get("clean_acc"),
        "eval": measured.summary(),
        "check": measured.summary(PROTOCOLS[s.norm]["check_n"]),
        "per_digit": measured.per_digit(),
    }


def build(only: Sequence[str] | None = None, root: str | os.PathLike | None = None, progress: bool = False,
          log=print, norm: str = "linf") -> dict:
    """Train, save and measure the ``norm`` zoo (or its models in ``only``); merges into its manifest and returns
    it. The ℓ2 manifest also holds the ℓ∞ zoo's "standard" model measured with the ℓ2 protocol."""
    todo = names(norm) if not only else [spec(n).name for n in only]
    wrong = [n for n in todo if spec(n).norm != norm]
    if wrong:
        raise ValueError(f"only: {wrong} are not models of the {norm} zoo {names(norm)}")
    out = _root(root)
    out.mkdir(parents=True, exist_ok=True)
    try:
        current = manifest(root, norm)
    except FileNotFoundError:
        current = {}
    models = dict(current.get("models", {}))
    version = code_version()  # the code this process runs: read once, before a later commit can move HEAD
    t0 = time.perf_counter()
    for name in todo:
        log(f"[zoo] {name}: {spec(name).describe()}")
        entry = train_one(name, root, progress, version)
        models[name] = entry
        ev = entry["eval"]
        rob = " ".join(f"{k}:{v:.3f}" for k, v in ev["robust"].items())
        log(f"[zoo] {name}: clean {ev['clean']:.3f}  robust {rob}  median margin {ev['median_margin']:.3f}  "
            f"(train {entry['train_seconds']:.0f} s, eval {entry['eval_seconds']:.0f} s)")
        result = {
            "format": FORMAT,
            "recipe": recipe(),
            "budget": {**BUDGET, "pgd_warmup_fraction": WARMUP_FRACTION},
            "protocol": PROTOCOLS[norm],
            "total_seconds": round(sum(m["train_seconds"] + m["eval_seconds"] for m in models.values()), 1),
            "models": {n: models[n] for n in names(norm) if n in models},
        }
        if norm == "l2":
            result["standard"] = current.get("standard") or _measure_standard_l2(root, version)
        write_json(out / (MANIFEST if norm == "linf" else MANIFEST_L2), result)  # an interrupted build keeps what it made
    log(f"[zoo] built {len(todo)} model(s) in {time.perf_counter() - t0:.0f} s into {out}")
    return manifest(root, norm)


def _measure_standard_l2(root: str | os.PathLike | None, version: str) -> dict:
    """The ℓ∞ zoo's "standard" model (clean training: no norm involved) measured with the ℓ2 protocol."""
    path = weight_path("standard", root)
    m = measure(load("standard", root), norm="l2")
    return {"name": "standard", "file": path.name, "sha256": _sha256(path), "code_version": version,
            "eval": m.summary(), "check": m.summary(EVAL_L2["check_n"]), "per_digit": m.per_digit()}


def summaries_agree(a: Any, b: Any, rel: float = 1e-4) -> bool:
    """Whether two measurement summaries (nested dicts / lists of numbers and strings) agree: the same keys
    and strings, equal integers and accuracies up to ``rel`` relative (margins summed in another order differ
    by ~1e-6 between runs of the same weights on the same machine; a real change is far larger)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(summaries_agree(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(summaries_agree(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def remeasure(root: str | os.PathLike | None = None, norm: str = "linf", log=print) -> dict:
    """Measure the shipped weights of the ``norm`` zoo again (no training) and store each model's per-digit
    outcomes (``per_digit``) in its manifest entry, beside the numbers the build measured; a model whose
    summary now differs from the build's is reported (same machine and seed: it should not)."""
    man = manifest(root, norm)
    entries = dict(man["models"])
    if norm == "l2":
        entries["standard"] = man["standard"]
    for name, entry in entries.items():
        if _sha256(weight_path(name, root)) != entry["sha256"]:
            raise ValueError(f"{name}: the weights are not the ones the manifest measured; rebuild with "
                             f"`python -m mma_edu.zoo build --only {name}`")
        m = measure(load(name, root), norm=norm)
        same = summaries_agree(m.summary(), entry["eval"])
        log(f"[zoo] {name}: per-digit outcomes stored; summary {'unchanged' if same else 'DIFFERS from the build'}")
        entry["per_digit"] = m.per_digit()
        entry.pop("remeasured_eval", None)
        if not same:
            entry["remeasured_eval"] = m.summary()
    write_json(_root(root) / (MANIFEST if norm == "linf" else MANIFEST_L2), man)
    return man


def table(man: dict | None = None) -> str:
    """The manifest's numbers as a plain-text table (accuracies in %, margins in input units)."""
    man = manifest() if man is None else man
    norm = man["protocol"].get("norm", "linf")
    eps = [f"{e:g}" for e in man["protocol"]["eps"]]
    head = f"{'model':<10} {'clean':>6} " + " ".join(f"{'eps ' + e:>8}" for e in eps) + f" {'median':>7} {'train s':>7}"
    rows = [head]
    models = dict(man["models"])
    if norm == "l2" and "standard" in man:
        models = {"standard": {**man["standard"], "train_seconds": 0}, **models}
    for name in (["standard"] if norm == "l2" else []) + names(norm):
        m = models.get(name)
        if m is None:
            rows.append(f"{name:<10} (not built)")
            continue
        ev = m["eval"]
        rows.append(f"{name:<10} {100 * ev['clean']:6.1f} " + " ".join(f"{100 * ev['robust'][e]:8.1f}" for e in eps)
                    + f" {ev['median_margin']:7.3f} {m['train_seconds']:7.0f}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mma_edu.zoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="train, save and measure the zoo's models")
    b.add_argument("--only", nargs="+", metavar="NAME",
                   help=f"build only these (of {', '.join(names())}; with --norm l2: {', '.join(names('l2'))})")
    b.add_argument("--norm", default=None, choices=NORMS,
                   help="which zoo: linf or l2 (default: the zoo of the --only names, else linf)")
    b.add_argument("--out", default=None, help=f"folder for weights and manifest (default {WEIGHTS_DIR})")
    b.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: this small net gains little from more, and results "
                        "depend slightly on the thread count)")
    b.add_argument("--progress", action="store_true", help="show training progress bars")
    rm = sub.add_parser("remeasure", help="measure the shipped weights again and store per-digit outcomes")
    rm.add_argument("--out", default=None, help="folder holding weights and manifest (default: the package's)")
    rm.add_argument("--norm", default="linf", choices=NORMS, help="which zoo: linf (default) or l2")
    lst = sub.add_parser("list", help="the zoo's models and their measured numbers")
    lst.add_argument("--out", default=None, help="folder holding the manifest (default: the package's)")
    lst.add_argument("--norm", default="linf", choices=NORMS, help="which zoo: linf (default) or l2")
    args = parser.parse_args(argv)
    if args.cmd == "remeasure":
        torch.set_num_threads(1)
        remeasure(args.out, args.norm)
        return 0
    if args.cmd == "list":
        try:
            print(table(manifest(args.out, args.norm)))
        except FileNotFoundError:
            for s in (SPECS if args.norm == "linf" else SPECS_L2):
                print(f"{s.name:<10} {s.describe()}  (not built)")
        return 0
    if args.norm is None:  # "--only l2-mma-4" alone builds it: the manifest's recorded command stays short
        args.norm = "l2" if args.only and all(n in names("l2") for n in args.only) else "linf"
    if args.only:
        bad = [n for n in args.only if n not in names(args.norm)]
        if bad:
            parser.error(f"--only: unknown name(s) {bad} for --norm {args.norm}; choose from {names(args.norm)}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    man = build(args.only, args.out, progress=args.progress, norm=args.norm)
    print(table(man))
    return 0


if __name__ == "__main__":
    sys.exit(main())
