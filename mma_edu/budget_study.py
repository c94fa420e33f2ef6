"""The training-budget study: is "MMA loses to PGD-AT" on the zoo the method, or the budget?

The zoo (:mod:`mma_edu.zoo`) trains every model for 1,600 steps; the paper trains
LeNet5-Madry for 100,000. On the zoo, PGD-AT 0.4 beats MMA-0.45 in AvgAcc. This
module retrains the contenders at growing budgets with everything else fixed, and
measures each the way the zoo is measured, so the gap MMA − PGD-AT can be read as a
function of training steps.

What is fixed (:data:`SETUP`): the zoo's SmallCNN (chosen by measurement: about
0.07 s per MMA step on one CPU thread against about 1 s for LeNet5-Madry, so ~15×
more steps fit in the study's two hours), Adam at a constant learning rate (the
paper's MNIST schedule is constant, so scaling it to the budget changes nothing),
batch 50, 10 attack iterations, seed 0, and 500 of the 4,000 offline training digits
held out for the paper's model selection (the epoch with the best mean validation
margin is kept, which also guards against robust overfitting on so little data).
PGD-AT's ε ramp spans the first quarter of each budget, as in the zoo.

What varies (:class:`StudyRun`): the method and its size, the number of steps, and,
for the alternative explanations, the seed, MMA's attack iterations (10 against the
paper's 40), PGD-AT's ramp (on against the paper's off) and train-time shifts of the digits.

Run it (resumable: finished entries are kept, interrupted trainings resume)::

    python -m mma_edu.budget_study run --workers 2     # or: make budget-study
    python -m mma_edu.budget_study table              # the shipped results as a table

Results go to ``mma_edu/zoo_weights/budget_study.json`` (:data:`RESULTS`): one entry
per run with its settings, training and evaluation seconds, clean accuracy, robust
accuracy per ε (0.1–0.4 and 0.45), AvgAcc, AvgRobAcc, margin statistics and the
per-digit outcomes (as bit strings) that paired comparisons need. :func:`gap_table`
and :func:`gap_trend` turn them into the answer.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor

from .files import write_json
from .verdicts import (FAILS, HOLDS, UNRESOLVED, bits, interval_verdict, paired_mean_difference, replicate_verdict,
                       t_quantile_975, unbits)

RESULTS = Path(__file__).resolve().parent / "zoo_weights" / "budget_study.json"
FORMAT = "mma-edu-budget-study/1"
RUNS_DIR = Path("runs") / "budget_study"  # training folders (last.pt, best.pt, history.json), for resuming

# Everything every run shares. Steps per epoch: 3,500 training digits / 50 = 70.
SETUP: dict[str, Any] = {
    "data": "mnist_offline/train minus a stratified hold-out of 500 (seed 0): 3,500 digits",
    "model": "small_cnn",
    "model_kwargs": {},
    "batch_size": 50,
    "optimizer": "adam",
    "lr": 1e-3,
    "lr_schedule": "constant (the paper's MNIST schedule: Adam, no decay)",
    "val_size": 500,
    "val_margin_digits": 200,  # validation margins measured each epoch on this many held-out digits
    "selection": "best mean validation margin (estimate), checked every epoch",
    "pgd_warmup_fraction": 0.25,
    "threads_per_run": 1,
}
# Evaluation: the zoo's protocol (mma_edu.zoo.EVAL) on the same 500 test digits, with ε 0.45 added.
PAPER_EPS = (0.1, 0.2, 0.3, 0.4)
EXTRA_EPS = (0.45,)
BUDGETS = (1600, 3200, 6400, 12800)
MID_BUDGET = 3200
FINAL_BUDGET = 12800


@dataclass(frozen=True)
class StudyRun:
    """One training run of the study.

    ``kind``: "mma", "omma" or "pgd"; ``size``: d_max or ε; ``steps``: the training budget;
    ``attack_steps``: PGD iterations (of PGD-AT, or of MMA's AN-PGD); ``ramp``: PGD-AT's ε warm-up;
    ``shift``: train-time augmentation, each digit moved by up to this many pixels in each direction (0: none).
    """

    kind: str
    size: float
    steps: int
    seed: int = 0
    attack_steps: int = 10
    ramp: bool = True
    shift: int = 0

    def __post_init__(self):
        if self.kind not in ("mma", "omma", "pgd"):
            raise ValueError(f"kind must be 'mma', 'omma' or 'pgd', got {self.kind!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not isinstance(self.shift, int) or isinstance(self.shift, bool) or not 0 <= self.shift <= 4:
            raise ValueError(f"shift must be an integer number of pixels in [0, 4], got {self.shift!r}")

    @property
    def model_name(self) -> str:
        """The model's name in the zoo's style: "mma-0.45", "pgd-0.4"."""
        return f"{self.kind}-{self.size:g}"

    @property
    def variant(self) -> str:
        """What differs from the study's defaults, e.g. "seed 1", "40 AN-PGD steps", "no ramp" ("" if nothing)."""
        parts = []
        if self.seed:
            parts.append(f"seed {self.seed}")
        if self.attack_steps != 10:
            parts.append(f"{self.attack_steps} attack steps")
        if self.kind == "pgd" and not self.ramp:
            parts.append("no ramp")
        if self.shift:
            parts.append(f"shifts up to {self.shift} px")
        return ", ".join(parts)

    @property
    def key(self) -> str:
        """A unique, file-name-safe name: "mma-0.45@3200", "pgd-0.4@3200+noramp", "mma-0.45@12800+s1"."""
        tail = ""
        if self.seed:
            tail += f"+s{self.seed}"
        if self.attack_steps != 10:
            tail += f"+k{self.attack_steps}"
        if self.kind == "pgd" and not self.ramp:
            tail += "+noramp"
        if self.shift:
            tail += f"+shift{self.shift}"
        return f"{self.model_name}@{self.steps}{tail}"

    def augment(self):
        """The batch augmentation for :func:`mma_edu.train.fit`: a random crop of the digit padded by ``shift``
        pixels (a shift of up to ``shift`` in each direction; never mirrored), or None."""
        if not self.shift:
            return None
        from functools import partial

        from .data import random_crop_flip

        return partial(random_crop_flip, padding=self.shift, flip=False)

    def method(self):
        """A fresh training method for this run."""
        from .train import MMA, PGDAT

        if self.kind == "pgd":
            warmup = round(SETUP["pgd_warmup_fraction"] * self.steps) if self.ramp else 0
            return PGDAT(self.size, "linf", steps=self.attack_steps, warmup_steps=warmup)
        clean = 1 / 3 if self.kind == "mma" else 0.0
        return MMA(self.size, "linf", clean_weight=clean, steps=self.attack_steps)


def plan() -> list[StudyRun]:
    """Every run of the study, most informative first (an interrupted study has answered the most it could).

    1. the headline pair, MMA-0.45 and PGD-AT 0.4, at every budget;
    2. the alternative explanations at the mid budget: AN-PGD with the paper's 40 iterations, PGD-AT
       without its ramp;
    3. two more seeds of the headline pair at the final budget;
    4. OMMA-0.45 and PGD-AT 0.3, cheapest budgets first;
    5. a second seed of PGD-AT without its ramp, and seeds 1 and 2 of the headline pair at 1,600 and 3,200
       steps (added once the final budget's seeds disagreed by more than any gap: a gap per budget needs
       seeds behind it, not one run);
    6. the headline pair at the mid budget trained on digits shifted by up to 2 pixels (does augmentation help
       on 3,500 digits?);
    7. seeds 1 and 2 of the headline pair at 6,400 steps.
    """
    runs = [StudyRun(k, s, b) for b in BUDGETS for k, s in (("mma", 0.45), ("pgd", 0.4))]
    runs += [StudyRun("mma", 0.45, MID_BUDGET, attack_steps=40), StudyRun("pgd", 0.4, MID_BUDGET, ramp=False)]
    runs += [StudyRun(k, s, FINAL_BUDGET, seed=seed) for seed in (1, 2) for k, s in (("mma", 0.45), ("pgd", 0.4))]
    runs += [StudyRun(k, s, b) for b in BUDGETS for k, s in (("omma", 0.45), ("pgd", 0.3))]
    seeds = [StudyRun(k, s, b, seed=seed) for b in BUDGETS[:-1] for seed in (1, 2)
             for k, s in (("mma", 0.45), ("pgd", 0.4))]
    shifted = [StudyRun(k, s, MID_BUDGET, shift=2) for k, s in (("mma", 0.45), ("pgd", 0.4))]
    # the cheap seeds, then the shifts, then the dearest seeds (6,400 steps)
    runs += [StudyRun("pgd", 0.4, MID_BUDGET, seed=1, ramp=False)] + seeds[:8] + shifted + seeds[8:]
    return runs


# ----------------------------------------------------------------------------
# One run: train, keep the best epoch, measure
# ----------------------------------------------------------------------------

def splits():
    """(train, validation, test): 3,500 training and 500 held-out digits of the offline training split, and
    the zoo's 500 evaluation digits (:func:`mma_edu.zoo.eval_data`)."""
    from .data import holdout, mnist_offline
    from .zoo import eval_data

    train, val = holdout(mnist_offline().train, SETUP["val_size"], seed=0)
    return train, val, eval_data()


def measure(model) -> dict:
    """The zoo's protocol (:data:`mma_edu.zoo.EVAL`) on the 500 evaluation digits, at ε 0.1–0.4 and 0.45.

    Returns clean accuracy, robust accuracy per ε, AvgAcc and AvgRobAcc over the paper's grid (0.1–0.4),
    margin statistics, the largest fraction of digits given one class, and per-digit bit strings:
    ``correct`` and ``robust`` (one per ε)."""
    from .evaluate import margin_distribution, robust_accuracy
    from .losses import is_correct
    from .zoo import EVAL, eval_data

    data = eval_data()
    model = model.cpu().eval()
    eps = list(PAPER_EPS + EXTRA_EPS)
    ra = robust_accuracy(model, data, norm=EVAL["norm"], eps_list=eps, steps=EVAL["pgd_steps"],
                         restarts=EVAL["restarts"], losses=EVAL["losses"], step_fraction=EVAL["step_fraction"],
                         batch_size=EVAL["batch_size"], device="cpu", seed=EVAL["seed"], progress=False)
    md = margin_distribution(model, data, norm=EVAL["norm"], max_eps=EVAL["margin_max_eps"],
                             refine=EVAL["margin_refine"], batch_size=EVAL["batch_size"], device="cpu",
                             seed=EVAL["seed"], progress=False)
    with torch.no_grad():
        logits = model(data.x)
    correct = is_correct(logits, data.y)
    robust = {f"{e:g}": ra.robust[:, i].double().mean().item() for i, e in enumerate(eps)}
    grid = [robust[f"{e:g}"] for e in PAPER_EPS]
    clean = correct.double().mean().item()
    m = md.margin.double()
    return {
        "n": len(data),
        "clean": clean,
        "robust": robust,
        "avg_rob_acc": sum(grid) / len(grid),
        "avg_acc": (clean + sum(grid)) / (1 + len(grid)),
        "median_margin": m.median().item(),
        "mean_margin": m.mean().item(),
        "margin_q25": m.quantile(0.25).item(),
        "margin_q75": m.quantile(0.75).item(),
        "top_class_fraction": logits.argmax(1).bincount(minlength=10).max().item() / len(data),
        "per_digit": {"correct": bits(correct), **{f"robust_{e:g}": bits(ra.robust[:, i]) for i, e in enumerate(eps)}},
    }


def run_one(run: StudyRun, runs_dir: str | os.PathLike = RUNS_DIR, progress: bool = False) -> dict:
    """Train ``run`` (resuming its folder if an earlier attempt was interrupted), measure its best epoch;
    returns its results entry."""
    from .checkpoint import load_checkpoint
    from .models import build_model
    from .train import BEST, LAST, fit
    from .zoo import code_version

    train, val, _ = splits()
    folder = Path(runs_dir) / run.key
    method = run.method()
    torch.manual_seed(run.seed)
    model = build_model(SETUP["model"], **SETUP["model_kwargs"])
    resume = (folder / LAST).is_file()
    t0 = time.perf_counter()
    history = fit(model, train, method, steps=run.steps, batch_size=SETUP["batch_size"],
                  optimizer=SETUP["optimizer"], lr=SETUP["lr"], eval_data=val, eval_size=SETUP["val_margin_digits"],
                  out=folder, resume=resume, overwrite=not resume, device="cpu", seed=run.seed, progress=progress,
                  augment=run.augment(),
                  meta={"budget_study": run.key})
    seconds = time.perf_counter() - t0
    best = load_checkpoint(folder / BEST)
    t1 = time.perf_counter()
    measured = measure(best.model)
    epochs = history.epochs
    best_step = int(best.state["step"])
    best_rec = next((e for e in epochs if e["step"] == best_step), {})
    return {
        "key": run.key,
        "model": run.model_name,
        "variant": run.variant,
        **asdict(run),
        "method": method.config(),
        "best_step": best_step,
        "best_val_margin": best_rec.get("val_margin"),
        "val_curve": [{"step": e["step"], "val_acc": e.get("val_acc"), "val_margin": e.get("val_margin")}
                      for e in epochs],
        # the run's own training time, summed over its epochs (a resumed run's earlier attempts included)
        "train_seconds": round(sum(e.get("seconds", 0.0) for e in epochs if not e.get("partial")), 1),
        "train_seconds_this_call": round(seconds, 1),
        "resumed": resume,
        "eval_seconds": round(time.perf_counter() - t1, 1),
        "code_version": code_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "eval": measured,
    }


# ----------------------------------------------------------------------------
# The whole study, in worker processes
# ----------------------------------------------------------------------------

def load_results(path: str | os.PathLike = RESULTS) -> dict:
    """The study's results file (``{"format", "setup", "runs": {key: entry}}``); an empty one if missing."""
    import json

    p = Path(path)
    if not p.is_file():
        return {"format": FORMAT, "setup": SETUP, "runs": {}}
    with open(p) as f:
        data = json.load(f)
    if data.get("format") != FORMAT:
        raise ValueError(f"{p} is not a budget-study results file (format {data.get('format')!r}, want {FORMAT!r})")
    return data


def _worker(run: StudyRun, runs_dir: str) -> dict:
    torch.set_num_threads(SETUP["threads_per_run"])
    return run_one(run, runs_dir)


def run_study(runs: Iterable[StudyRun] | None = None, *, workers: int = 2, results: str | os.PathLike = RESULTS,
              runs_dir: str | os.PathLike = RUNS_DIR, log=print) -> dict:
    """Run every run of ``runs`` (default :func:`plan`) not yet in ``results``, ``workers`` at a time, each on one
    CPU thread in its own process; the results file is rewritten (atomically) after every finished run."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    data = load_results(results)
    todo = [r for r in (plan() if runs is None else list(runs)) if r.key not in data["runs"]]
    log(f"[budget-study] {len(data['runs'])} run(s) done, {len(todo)} to go, {workers} at a time")
    if not todo:
        return data
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, maxtasksperchild=1) as pool:
        pending = [(r, pool.apply_async(_worker, (r, str(runs_dir)))) for r in todo]
        for run, res in pending:
            entry = res.get()
            data["runs"][entry["key"]] = entry
            data["setup"] = SETUP
            write_json(results, data)
            ev = entry["eval"]
            log(f"[budget-study] {run.key}: clean {ev['clean']:.3f} AvgAcc {ev['avg_acc']:.3f} "
                f"AvgRobAcc {ev['avg_rob_acc']:.3f} median margin {ev['median_margin']:.3f} "
                f"(train {entry['train_seconds']:.0f} s, eval {entry['eval_seconds']:.0f} s; "
                f"{time.perf_counter() - t0:.0f} s in)")
    return data


# ----------------------------------------------------------------------------
# Reading the results
# ----------------------------------------------------------------------------

def per_digit_score(entry: dict) -> Tensor:
    """Each digit's share of the AvgAcc grid (clean + ε 0.1–0.4) that it survives: (N,) in [0, 1]; the mean
    over digits is the entry's AvgAcc."""
    pd = entry["eval"]["per_digit"]
    cols = [unbits(pd["correct"])] + [unbits(pd[f"robust_{e:g}"]) for e in PAPER_EPS]
    return torch.stack(cols, 1).double().mean(1)


def paired_gap(a: dict, b: dict) -> tuple[float, float, float]:
    """AvgAcc of entry ``a`` minus entry ``b`` on the same digits, with a 95% interval from the paired
    per-digit differences (:func:`mma_edu.verdicts.paired_mean_difference`; n = 500): (gap, low, high)."""
    v = paired_mean_difference(per_digit_score(a), per_digit_score(b))
    return v.difference, v.low, v.high


def gap_table(data: dict | None = None, a: str = "mma-0.45", b: str = "pgd-0.4") -> list[dict]:
    """One row per budget where both ``a`` and ``b`` (seed 0, default settings) are done: their AvgAcc and the
    paired gap a − b with its interval. Raises :class:`~mma_edu.claims.NotTrained` if either run of a budget
    failed to train (clean accuracy or one class for many digits, as the zoo's claims require)."""
    from .claims import NotTrained, collapsed

    runs = (load_results() if data is None else data)["runs"]
    rows = []
    for steps in sorted({e["steps"] for e in runs.values()}):
        ea, eb = runs.get(f"{a}@{steps}"), runs.get(f"{b}@{steps}")
        if ea is None or eb is None:
            continue
        # A run that failed to train would make the gap say nothing about the method (claims.collapsed).
        bad = [m for e in (ea, eb) for m in collapsed(e["key"], e["eval"]["clean"], e["eval"]["top_class_fraction"])]
        if bad:
            raise NotTrained("no gap is judged until both runs trained:\n  " + "\n  ".join(bad))
        gap, lo, hi = paired_gap(ea, eb)
        rows.append({"steps": steps, a: ea["eval"]["avg_acc"], b: eb["eval"]["avg_acc"],
                     "gap": gap, "low": lo, "high": hi, "verdict": interval_verdict(gap, lo, hi).verdict})
    return rows


def gap_change(data: dict, steps_from: int, steps_to: int, a: str = "mma-0.45", b: str = "pgd-0.4"):
    """Did the gap ``a`` − ``b`` close between two budgets? The paired per-digit change of the gap (each digit's
    score difference at ``steps_to`` minus at ``steps_from``, same 500 digits) as a
    :class:`~mma_edu.verdicts.Verdict`: "holds" when the gap rose beyond the noise."""
    runs = data["runs"]
    d = {s: per_digit_score(runs[f"{a}@{s}"]) - per_digit_score(runs[f"{b}@{s}"]) for s in (steps_from, steps_to)}
    return paired_mean_difference(d[steps_to], d[steps_from])


def gap_trend(rows: Sequence[dict]) -> dict:
    """Least-squares line through the gaps against log2(steps), weighted by their intervals: the change per
    doubling of the budget, and the budget where the line crosses 0 (None if the gap is not closing)."""
    if len(rows) < 2:
        raise ValueError(f"need gaps at two budgets or more, got {len(rows)}")
    xs = [math.log2(r["steps"]) for r in rows]
    ws = [1 / max((r["high"] - r["low"]) / 3.92, 1e-9) ** 2 for r in rows]
    ys = [r["gap"] for r in rows]
    sw = sum(ws)
    mx, my = sum(w * x for w, x in zip(ws, xs)) / sw, sum(w * y for w, y in zip(ws, ys)) / sw
    sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs))
    slope = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys)) / sxx
    slope_se = math.sqrt(1 / sxx)
    intercept = my - slope * mx
    crossing = None
    if slope > 0 and ys[-1] < 0:
        crossing = 2 ** (-intercept / slope)
    return {"per_doubling": slope, "per_doubling_se": slope_se, "intercept": intercept,
            "crossing_steps": crossing}


# The other comparisons the study's runs answer: MMA against PGD-AT at an ε chosen below the evaluation's largest
# (the paper's case for not having to choose ε), and OMMA (no clean loss) against MMA.
OTHER_PAIRS = (("mma-0.45", "pgd-0.3"), ("omma-0.45", "mma-0.45"))

# The alternative explanations: each variant (at seed 0; its other seeds are read too) against the run of the same
# method, budget and seed with the study's defaults. Name, variant, what it asks.
ALTERNATIVES = (
    ("k40", StudyRun("mma", 0.45, MID_BUDGET, attack_steps=40),
     "MMA-0.45 with the paper's 40 AN-PGD iterations instead of 10"),
    ("noramp", StudyRun("pgd", 0.4, MID_BUDGET, ramp=False), "PGD-AT 0.4 without its ε ramp (the paper's has none)"),
    ("shift", StudyRun("mma", 0.45, MID_BUDGET, shift=2), "MMA-0.45 trained on digits shifted by up to 2 px"),
    ("shift", StudyRun("pgd", 0.4, MID_BUDGET, shift=2), "PGD-AT 0.4 trained on digits shifted by up to 2 px"),
)


def _collapsed(*entries: dict) -> list[str]:
    """Why any of these runs failed to train (:func:`mma_edu.claims.collapsed`), as messages; [] if all trained."""
    from .claims import collapsed

    return [m for e in entries for m in collapsed(e["key"], e["eval"]["clean"], e["eval"]["top_class_fraction"])]


def alternatives(data: dict) -> list[dict]:
    """The alternative explanations that are done: per variant run (every seed), its AvgAcc and the paired AvgAcc
    change against the default run at the same budget and seed (same 500 digits; a verdict "holds" means the
    variant is better beyond the noise), and both median margins.

    A run that failed to train is a result of its own, not a comparison: its row has ``trained`` False, the
    reasons in ``collapsed`` and ``verdict`` None (never "holds" or "does not hold"). A default run that failed
    raises :class:`~mma_edu.claims.NotTrained`."""
    from .claims import NotTrained

    runs, rows = data["runs"], []
    for name, variant, what in ALTERNATIVES:
        for seed in range(10):
            key = replace(variant, seed=seed).key
            base = StudyRun(variant.kind, variant.size, variant.steps, seed=seed).key
            if key not in runs:
                continue
            ev = runs[key]
            row = {"key": key, "name": name, "kind": variant.kind, "what": what, "seed": seed,
                   "avg_acc": ev["eval"]["avg_acc"],
                   "clean": ev["eval"]["clean"], "median_margin": ev["eval"]["median_margin"],
                   "robust_0.4": ev["eval"]["robust"]["0.4"], "collapsed": _collapsed(ev)}
            row["trained"] = not row["collapsed"]
            row.update(base=base if base in runs else None, change=None, low=None, high=None, verdict=None)
            if base in runs:
                eb = runs[base]
                if _collapsed(eb):
                    raise NotTrained("no alternative is judged until its default run trained:\n  "
                                     + "\n  ".join(_collapsed(eb)))
                row.update(base_avg_acc=eb["eval"]["avg_acc"], base_median_margin=eb["eval"]["median_margin"],
                           **{"base_robust_0.4": eb["eval"]["robust"]["0.4"]})
                if row["trained"]:
                    v = paired_mean_difference(per_digit_score(ev), per_digit_score(eb))
                    row.update(change=v.difference, low=v.low, high=v.high, verdict=v.verdict)
            rows.append(row)
    return rows


def seed_gaps(data: dict, steps: int = FINAL_BUDGET, a: str = "mma-0.45", b: str = "pgd-0.4") -> dict | None:
    """The gap ``a`` − ``b`` at ``steps`` for every seed whose pair is done (seed s of a against seed s of b),
    with each model's AvgAcc per seed: how much of the gap a different seed moves. ``None`` if no pair is done.

    Returns {"steps", "seeds", "gaps", "lows", "highs" (each gap's paired interval over the digits), a, b (AvgAcc
    lists), "gap_mean", "gap_spread" (max − min),
    "digit_halfwidth" (the mean half-width of the per-seed paired intervals: the digit-sampling noise alone),
    "low", "high", "verdict" (the seeds' mean gap with its t interval, :func:`mma_edu.verdicts.replicate_verdict`,
    which includes the seed-to-seed spread; None below two seeds), "excluded" (pairs left out because a run
    failed to train, with the reasons)}."""
    runs = data["runs"]
    seeds, gaps, lows, highs, avg_a, avg_b, excluded = [], [], [], [], [], [], []
    for seed in range(10):
        tail = f"+s{seed}" if seed else ""
        ea, eb = runs.get(f"{a}@{steps}{tail}"), runs.get(f"{b}@{steps}{tail}")
        if ea is None or eb is None:
            continue
        bad = _collapsed(ea, eb)
        if bad:  # a failed run says nothing about the method: left out, and said so
            excluded += bad
            continue
        gap, lo, hi = paired_gap(ea, eb)
        seeds.append(seed)
        gaps.append(gap)
        lows.append(lo)
        highs.append(hi)
        avg_a.append(ea["eval"]["avg_acc"])
        avg_b.append(eb["eval"]["avg_acc"])
    if not seeds:
        return None
    out = {"steps": steps, "seeds": seeds, "gaps": gaps, "lows": lows, "highs": highs, a: avg_a, b: avg_b,
           "gap_mean": sum(gaps) / len(gaps), "gap_spread": max(gaps) - min(gaps),
           "digit_halfwidth": sum(hi - lo for lo, hi in zip(lows, highs)) / (2 * len(seeds)), "low": None, "high": None, "verdict": None,
           "excluded": excluded}
    if len(seeds) >= 2:
        v = replicate_verdict(gaps)
        out.update(low=v.low, high=v.high, verdict=v.verdict)
    return out


def gaps_over_seeds(data: dict, a: str = "mma-0.45", b: str = "pgd-0.4") -> list[dict]:
    """:func:`seed_gaps` at every budget where a pair is done, in budget order."""
    steps = sorted({e["steps"] for e in data["runs"].values()})
    return [g for g in (seed_gaps(data, s, a, b) for s in steps) if g is not None]


def seed_trend(data: dict, a: str = "mma-0.45", b: str = "pgd-0.4") -> dict | None:
    """The gap's change per doubling of the budget, from every seed pair at every budget: an ordinary
    least-squares line through (log2 steps, gap) with each pair one observation, so the seed-to-seed spread is
    in its interval (t with n − 2 degrees of freedom). ``None`` below 3 pairs or 2 budgets.

    Returns {"per_doubling", "low", "high", "se", "n", "intercept", "verdict" (the claim "the gap grows with
    the budget"), "crossing_steps" (where the line reaches 0, if it rises towards 0 from below; else None)}."""
    points = [(math.log2(g["steps"]), gap) for g in gaps_over_seeds(data, a, b) for gap in g["gaps"]]
    if len(points) < 3 or len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    intercept = my - slope * mx
    resid = sum((y - intercept - slope * x) ** 2 for x, y in points) / (n - 2)
    se = math.sqrt(resid / sxx)
    half = t_quantile_975(n - 2) * se
    last = max(x for x, _ in points)
    crossing = 2 ** (-intercept / slope) if slope > 0 and intercept + slope * last < 0 else None
    return {"per_doubling": slope, "se": se, "low": slope - half, "high": slope + half, "n": n,
            "intercept": intercept, "verdict": interval_verdict(slope, slope - half, slope + half).verdict,
            "crossing_steps": crossing}


# The verdicts of :func:`study_claims` on the shipped results (``tests/test_budget_study.py`` and notebook 05
# assert them): rerunning the study and shipping other results must update them, and says which claims moved.
SHIPPED_VERDICTS: dict[str, str] = {
    "gap-1600": UNRESOLVED, "gap-3200": FAILS, "gap-6400": UNRESOLVED, "gap-12800": UNRESOLVED,
    "closing": UNRESOLVED, "seeds-matter": HOLDS, "k40": UNRESOLVED, "noramp-trains": FAILS,
    "shift-mma": FAILS, "shift-pgd": FAILS, "vs-pgd-0.3": HOLDS, "omma": UNRESOLVED,
}


@dataclass(frozen=True)
class StudyClaim:
    """One question the study answers, as a claim with its verdict ("holds", "does not hold", "unresolved at
    this n") and the numbers behind it."""

    key: str
    text: str
    verdict: str
    detail: str

    def __str__(self) -> str:
        return f"{self.key}. {self.text}: {self.verdict} ({self.detail})"


def _all_or_none(verdicts: Sequence[str]) -> str:
    """A claim about every case: holds if it holds in each, does not hold if it fails in each, else unresolved."""
    return HOLDS if all(v == HOLDS for v in verdicts) else FAILS if all(v == FAILS for v in verdicts) else UNRESOLVED


def study_claims(data: dict, *, spread_factor: float = 3.0) -> list[StudyClaim]:
    """The study's answers as claims, each judged by the rule of :mod:`mma_edu.verdicts` (paired over the 500
    digits for one pair of runs; a t interval over seeds for a mean over seeds). Only claims whose runs are done
    are returned. Raises :class:`~mma_edu.claims.NotTrained` where a comparison's default run failed to train.

    - ``gap-<steps>``, one per budget: MMA-0.45 beats PGD-AT 0.4 in AvgAcc (the mean over seeds with its t
      interval; seed 0's paired interval where no other seed is done);
    - ``closing``: the gap grows as the budget doubles (the trend over every seed pair);
    - ``seeds-matter``: at some budget with two seeds or more, the gap moves between seeds by more than
      ``spread_factor`` times the half-width of one pair's interval over digits (holds / does not hold, no noise
      test: it says whether one run per model can mislead);
    - ``k40``: MMA-0.45 with 40 AN-PGD iterations beats it with 10 (mid budget);
    - ``noramp-trains``: PGD-AT 0.4 trains without its ε ramp (every seed; unresolved if the seeds disagree);
    - ``shift-mma`` / ``shift-pgd``: shifts of up to 2 px improve the model (mid budget);
    - ``vs-pgd-0.3``: MMA-0.45 beats PGD-AT 0.3 at every budget (seed 0);
    - ``omma``: OMMA-0.45 beats MMA-0.45 at the largest budget (seed 0)."""
    out: list[StudyClaim] = []
    seeded = gaps_over_seeds(data)

    def gap_claim(key: str, g: dict, where: str) -> None:
        if g["verdict"] is not None:
            detail = (f"seeds {g['seeds']}: gaps " + ", ".join(f"{100 * x:+.1f}" for x in g["gaps"])
                      + f"; mean {100 * g['gap_mean']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}] points")
            verdict = g["verdict"]
        else:
            row = next(r for r in gap_table(data) if r["steps"] == g["steps"])
            detail = f"seed 0 only: {100 * row['gap']:+.1f} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}] points"
            verdict = row["verdict"]
        out.append(StudyClaim(key, f"MMA-0.45 has a higher AvgAcc than PGD-AT 0.4 {where}", verdict, detail))

    for g in seeded:
        gap_claim(f"gap-{g['steps']}", g, f"at {g['steps']:,} steps" + (" (the zoo's budget)" if g["steps"] == BUDGETS[0]
                                                                          else ""))
    t = seed_trend(data)
    if t is not None:
        cross = "" if t["crossing_steps"] is None else f"; reaches 0 near {t['crossing_steps']:,.0f} steps"
        out.append(StudyClaim("closing", "the gap MMA-0.45 − PGD-AT 0.4 grows as the budget doubles", t["verdict"],
                              f"{100 * t['per_doubling']:+.1f} [{100 * t['low']:+.1f}, {100 * t['high']:+.1f}] "
                              f"points per doubling over {t['n']} seed pairs{cross}"))
    multi = [g for g in seeded if len(g["seeds"]) >= 2]
    if multi:
        ok = [g["gap_spread"] > spread_factor * g["digit_halfwidth"] for g in multi]
        out.append(StudyClaim(
            "seeds-matter", f"at some budget another seed moves the gap by more than {spread_factor:g}× one pair's "
            "interval over digits (so one run per model can mislead)", HOLDS if any(ok) else FAILS,
            "; ".join(f"{g['steps']:,}: spread {100 * g['gap_spread']:.1f} against ±{100 * g['digit_halfwidth']:.1f}"
                      for g in multi)))
    alts = alternatives(data)
    judged = {(r["name"], r["kind"]): r for r in alts if r["seed"] == 0 and r["verdict"] is not None}

    def change(r: dict) -> str:
        return f"{100 * r['change']:+.1f} [{100 * r['low']:+.1f}, {100 * r['high']:+.1f}] points at {MID_BUDGET:,} steps"

    if (r := judged.get(("k40", "mma"))) is not None:
        out.append(StudyClaim("k40", "MMA-0.45 with the paper's 40 AN-PGD iterations beats it with 10", r["verdict"],
                              f"{change(r)}; median margin {r['median_margin']:.3f} against "
                              f"{r['base_median_margin']:.3f}"))
    noramp = [r for r in alts if r["name"] == "noramp"]
    if noramp:
        out.append(StudyClaim("noramp-trains", "PGD-AT 0.4 trains without its ε ramp",
                              _all_or_none([HOLDS if r["trained"] else FAILS for r in noramp]),
                              "; ".join(f"seed {r['seed']}: clean {100 * r['clean']:.1f}%"
                                        + ("" if r["trained"] else " (collapsed)") for r in noramp)))
    for kind, name in (("mma", "MMA-0.45"), ("pgd", "PGD-AT 0.4")):
        if (r := judged.get(("shift", kind))) is not None:
            out.append(StudyClaim(f"shift-{kind}", f"{name} trained on digits shifted by up to 2 px beats it without",
                                  r["verdict"], change(r)))
    vs03 = gap_table(data, "mma-0.45", "pgd-0.3")
    if vs03:
        out.append(StudyClaim("vs-pgd-0.3", "MMA-0.45 has a higher AvgAcc than PGD-AT 0.3 at every budget",
                              _all_or_none([r["verdict"] for r in vs03]),
                              "seed 0 only; " + ", ".join(f"{r['steps']:,}: {100 * r['gap']:+.1f} [{100 * r['low']:+.1f}, "
                                        f"{100 * r['high']:+.1f}]" for r in vs03)))
    om = [r for r in gap_table(data, "omma-0.45", "mma-0.45") if r["steps"] == FINAL_BUDGET]
    if om:
        r = om[0]
        out.append(StudyClaim("omma", f"OMMA-0.45 has a higher AvgAcc than MMA-0.45 at {FINAL_BUDGET:,} steps",
                              r["verdict"], f"seed 0 only; {100 * r['gap']:+.1f} [{100 * r['low']:+.1f}, "
                                            f"{100 * r['high']:+.1f}] points"))
    return out


def table(data: dict | None = None) -> str:
    """The results as plain text: one row per run (accuracies in %)."""
    data = load_results() if data is None else data
    eps = [f"{e:g}" for e in PAPER_EPS + EXTRA_EPS]
    head = (f"{'run':<24} {'clean':>6} " + " ".join(f"{'eps ' + e:>8}" for e in eps)
            + f" {'AvgAcc':>7} {'AvgRob':>7} {'median':>7} {'best':>6} {'train s':>8}")
    rows = [head]
    for e in sorted(data["runs"].values(), key=lambda e: (e["steps"], e["key"])):
        ev = e["eval"]
        rows.append(f"{e['key']:<24} {100 * ev['clean']:6.1f} " + " ".join(f"{100 * ev['robust'][k]:8.1f}" for k in eps)
                    + f" {100 * ev['avg_acc']:7.1f} {100 * ev['avg_rob_acc']:7.1f} {ev['median_margin']:7.3f}"
                    + f" {e['best_step']:6d} {e['train_seconds']:8.0f}")
    gaps = gap_table(data)
    if gaps:
        rows.append("")
        rows.append("AvgAcc gap MMA-0.45 - PGD-AT 0.4 (paired, 95% interval), in points:")
        for g in gaps:
            rows.append(f"  {g['steps']:>6} steps: {100 * g['gap']:+6.1f}  [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]"
                        f"  MMA better: {g['verdict']}")
        for g0, g1 in zip(gaps, gaps[1:]):
            v = gap_change(data, g0["steps"], g1["steps"])
            rows.append(f"  {g0['steps']:>6} -> {g1['steps']:>6}: the gap changed by {100 * v.difference:+.1f} points "
                        f"[{100 * v.low:+.1f}, {100 * v.high:+.1f}]; closed: {v.verdict}")
        if len(gaps) >= 2:
            t = gap_trend(gaps)
            cross = "not closing" if t["crossing_steps"] is None else f"crosses 0 near {t['crossing_steps']:,.0f} steps"
            # ± counts the digits' noise only: where other seeds ran, the trend over seeds below is the one to read
            seeds_ran = any(len(g["seeds"]) >= 2 for g in gaps_over_seeds(data))
            rows.append(f"  trend (seed 0): {100 * t['per_doubling']:+.1f} ± {100 * t['per_doubling_se']:.1f} points "
                        f"per doubling; {cross}" + ("  (digit noise only; seeds differ more: read the trend over "
                                                   "seeds below)" if seeds_ran else ""))
    over_seeds = gaps_over_seeds(data)
    seeded = [g for g in over_seeds if len(g["seeds"]) >= 2]
    if seeded:
        rows.append("")
        rows.append("The same gap over seeds (seed s of MMA against seed s of PGD-AT; mean, 95% t interval over seeds):")
        for g in seeded:
            rows.append(f"  {g['steps']:>6} steps, seeds {g['seeds']}: gaps " + ", ".join(f"{100 * x:+.1f}" for x in g["gaps"])
                        + f"; mean {100 * g['gap_mean']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]"
                        f" (spread {100 * g['gap_spread']:.1f}, each gap's own interval ±{100 * g['digit_halfwidth']:.1f})"
                        f"  MMA better: {g['verdict']}")
        for g in over_seeds:
            for why in g["excluded"]:
                rows.append(f"  left out: {why}")
        t = seed_trend(data)
        if t is not None:
            cross = "" if t["crossing_steps"] is None else f"; the line reaches 0 near {t['crossing_steps']:,.0f} steps"
            rows.append(f"  trend over all {t['n']} pairs: {100 * t['per_doubling']:+.1f} [{100 * t['low']:+.1f}, "
                        f"{100 * t['high']:+.1f}] points per doubling; closing: {t['verdict']}{cross}")
    for a, b in OTHER_PAIRS:
        other = gap_table(data, a, b)
        if other:
            rows.append("")
            rows.append(f"AvgAcc gap {a} - {b} (seed 0, paired, 95% interval), in points:")
            rows += [f"  {g['steps']:>6} steps: {100 * g['gap']:+6.1f}  [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]"
                     f"  {a} better: {g['verdict']}" for g in other]
    alts = alternatives(data)
    if alts:
        rows.append("")
        rows.append("The alternative explanations (each against the default run of the same budget and seed):")
        for alt in alts:
            seed = f" (seed {alt['seed']})" if alt["seed"] else ""
            if not alt["trained"]:
                rows.append(f"  {alt['what']}{seed}: " + "; ".join(alt["collapsed"]) + " (not compared)")
            elif alt["verdict"] is not None:
                rows.append(f"  {alt['what']}{seed}: AvgAcc {100 * alt['avg_acc']:.1f} against {100 * alt['base_avg_acc']:.1f}, "
                            f"{100 * alt['change']:+.1f} [{100 * alt['low']:+.1f}, {100 * alt['high']:+.1f}]; "
                            f"better: {alt['verdict']}")
    claims = study_claims(data)
    if claims:
        rows.append("")
        rows.append("The study's claims:")
        rows += [f"  {c}" for c in claims]
    return "\n".join(rows)


def markdown_summary(data: dict, a: str = "mma-0.45", b: str = "pgd-0.4") -> str:
    """The headline pair per budget as a Markdown table (for the README and notes): each model's AvgAcc per seed
    (%), the gap per seed, their mean with the t interval over seeds and its verdict, the median margins (seed 0)
    and the training seconds per run (mean over seeds, one CPU thread)."""
    runs = data["runs"]
    lines = [f"| steps | {a} AvgAcc by seed | {b} AvgAcc by seed | gap by seed | mean gap [95% over seeds] | "
             f"{a} better | median margin {a} / {b} | train s {a} / {b} |", "|---|---|---|---|---|---|---|---|"]
    for g in gaps_over_seeds(data, a, b):
        steps = g["steps"]
        tails = ["" if s == 0 else f"+s{s}" for s in g["seeds"]]
        secs = [sum(runs[f"{m}@{steps}{t}"]["train_seconds"] for t in tails) / len(tails) for m in (a, b)]
        margins = [runs[f"{m}@{steps}"]["eval"]["median_margin"] for m in (a, b)]
        mean = (f"{100 * g['gap_mean']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]"
                if g["verdict"] is not None else f"{100 * g['gap_mean']:+.1f} (one seed)")
        lines.append(f"| {steps:,} | " + " / ".join(f"{100 * x:.1f}" for x in g[a]) + " | "
                     + " / ".join(f"{100 * x:.1f}" for x in g[b]) + " | "
                     + " / ".join(f"{100 * x:+.1f}" for x in g["gaps"]) + f" | {mean} | {g['verdict'] or '—'} | "
                     + f"{margins[0]:.3f} / {margins[1]:.3f} | {secs[0]:,.0f} / {secs[1]:,.0f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mma_edu.budget_study", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and measure every run not yet in the results file (resumable)")
    r.add_argument("--workers", type=int, default=2, help="runs at a time, one CPU thread each (default 2)")
    r.add_argument("--results", default=str(RESULTS), help=f"results file (default {RESULTS})")
    r.add_argument("--runs-dir", default=str(RUNS_DIR), help=f"training folders, for resuming (default {RUNS_DIR})")
    r.add_argument("--only", nargs="+", metavar="KEY", help="run only these keys of the plan (see `plan`)")
    sub.add_parser("plan", help="the study's runs, in the order they run")
    t = sub.add_parser("table", help="the results as a table, with the MMA - PGD-AT gap per budget")
    t.add_argument("--results", default=str(RESULTS))
    t.add_argument("--markdown", action="store_true", help="only the headline pair per budget, as a Markdown table")
    args = parser.parse_args(argv)
    if args.cmd == "plan":
        for run in plan():
            print(run.key)
        return 0
    if args.cmd == "table":
        data = load_results(args.results)
        print(markdown_summary(data) if args.markdown else table(data))
        return 0
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    runs = plan()
    if args.only:
        known = {r.key: r for r in runs}
        bad = [k for k in args.only if k not in known]
        if bad:
            parser.error(f"--only: unknown key(s) {bad}; see `python -m mma_edu.budget_study plan`")
        runs = [known[k] for k in args.only]
    try:
        data = run_study(runs, workers=args.workers, results=args.results, runs_dir=args.runs_dir)
    except KeyboardInterrupt as err:  # Ctrl-C reaches every worker; each saved its run (TrainingInterrupted)
        print(f"[budget-study] interrupted ({err or 'Ctrl-C'}): finished runs are in {args.results}; the others "
              f"resume from {args.runs_dir} when you run this again", file=sys.stderr)
        return 130
    print(table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
