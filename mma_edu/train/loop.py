"""The training loop: ``fit`` runs any method for a number of steps, with checkpoints and resume.

Data order is fixed by ``seed`` and the epoch number (a fresh permutation per
epoch), and the checkpoint holds the RNG states, so a run stopped at any step
and resumed reaches the same weights as an uninterrupted one (same seed, CPU).

Nothing is lost on an interruption: SIGINT (Ctrl-C) and SIGTERM let the step in
progress finish, then ``last.pt`` and ``history.json`` are written and
:class:`~mma_edu.interrupts.TrainingInterrupted` is raised; no signal can cut a
checkpoint write short (:mod:`mma_edu.interrupts`). The run folder is checked
and locked before the first step (:mod:`mma_edu.train.run_folder`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from ..checkpoint import FORMAT, CheckpointError, check_finite, read_checkpoint, save_checkpoint
from ..attacks._common import check_count, check_dataset, eval_mode
from ..data import ArrayDataset
from ..device import resolve_device  # noqa: F401 - re-exported by mma_edu.train
from ..distributed import Dist, as_dist, has_sync_batchnorm
from ..files import write_json
from ..interrupts import GracefulStop, TrainingInterrupted, raise_if_interrupted_at_startup
from ..losses import is_correct
from ..speed import as_layout, use_channels_last
from .methods import MMA, PGDAT, Method
from .optim import make_optimizer, set_lr
from .selection import reference_validation_margin
from .run_folder import BEST, HISTORY, LAST, RunFolderError, RunLock, check_run_folder, remove_leftovers


@dataclass
class History:
    """What a run did: its settings, one record per epoch, and the loss of every step."""

    config: dict = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"config": self.config, "epochs": self.epochs, "step_loss": self.step_loss}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(config=d.get("config", {}), epochs=list(d.get("epochs", [])), step_loss=list(d.get("step_loss", [])))

    def column(self, key: str) -> list:
        """One statistic across epochs, e.g. ``history.column("clean_acc")``."""
        return [e.get(key) for e in self.epochs]

    def save_json(self, path: str | os.PathLike) -> None:
        """Write as JSON atomically (temp file + rename)."""
        write_json(path, self.to_dict())


@dataclass
class Event:
    """What callbacks receive: ``kind`` is "step" or "epoch"; ``record`` that step's or epoch's statistics."""

    kind: str
    step: int
    epoch: int
    record: dict
    history: History


class _EpochStats:
    """Running sums of the per-step statistics of the current epoch."""

    def __init__(self, state: dict | None = None):
        state = state or {}
        self.sums: dict[str, float] = dict(state.get("sums", {}))
        self.steps: int = state.get("steps", 0)
        self.seconds: float = state.get("seconds", 0.0)
        m = state.get("margins")
        self.margins: list[Tensor] = [m] if m is not None and m.numel() else []

    def add(self, stats: dict, seconds: float) -> None:
        for k, v in stats.items():
            if k == "_margins":
                self.margins.append(v.detach().float().cpu())
            else:
                self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.steps += 1
        self.seconds += seconds

    def state(self) -> dict:
        m = torch.cat(self.margins) if self.margins else torch.zeros(0)
        return {"sums": self.sums, "steps": self.steps, "seconds": self.seconds, "margins": m}

    def record(self, hist_max: float | None) -> dict:
        rec: dict[str, Any] = {k: v / max(self.steps, 1) for k, v in self.sums.items()}
        rec["steps"] = self.steps
        rec["seconds"] = self.seconds
        if self.margins and hist_max:
            m = torch.cat(self.margins)
            counts = torch.histc(m.clamp(max=hist_max), bins=20, min=0.0, max=hist_max)
            rec["margin_hist"] = {"edges": torch.linspace(0, hist_max, 21).tolist(), "counts": counts.tolist()}
            rec["margin_median"] = m.median().item()
        return rec


def _hist_max(method: Method) -> float | None:
    return method.max_eps if isinstance(method, MMA) else None


def _eval_settings(method: Method, norm: str | None, max_eps: float | None) -> tuple[str | None, float | None]:
    if norm is None and isinstance(method, (MMA, PGDAT)):
        norm = method.norm
    if max_eps is None:
        if isinstance(method, MMA):
            max_eps = method.max_eps
        elif isinstance(method, PGDAT):
            max_eps = 2 * method.eps
    return norm, max_eps


@torch.no_grad()
def clean_accuracy(model: nn.Module, data: ArrayDataset, device: torch.device, batch_size: int = 500,
                   dist: Dist | None = None) -> float:
    """Fraction of ``data`` classified correctly (strictly: ties are errors); ``dist``: ranks share the batches."""
    dist = as_dist(dist)
    correct = 0
    with eval_mode(model):
        for b, i in enumerate(range(0, len(data), batch_size)):
            if dist.owns(b):
                x, y = data.x[i : i + batch_size].to(device), data.y[i : i + batch_size].to(device)
                correct += int(is_correct(model(x), y).sum())
    correct = int(dist.all_reduce_sum(torch.tensor([correct])).item())
    return correct / max(len(data), 1)


def validate(
    model: nn.Module,
    data: ArrayDataset,
    device: torch.device,
    *,
    norm: str | None,
    max_eps: float | None,
    size: int = 500,
    steps: int = 20,
    clip: tuple[float, float] | None = (0.0, 1.0),
    selection: str = "estimate",
    dist: Dist | None = None,
) -> dict:
    """Clean accuracy on ``data`` and, where ``norm`` and ``max_eps`` are known, the mean and
    median margin of ``size`` examples, measured as ``selection`` says:

    - "estimate": our verified estimator (:func:`mma_edu.margins.estimate_margins`: AN-PGD search
      from max_eps/2, logit-margin loss, every point checked, no refinement rounds) on ``size``
      examples after a fixed shuffle;
    - "reference": the authors' selection criterion
      (:func:`mma_edu.train.selection.reference_validation_margin`) on the first ``size`` examples.

    ``out["selection"]`` records which estimator ran, on how many images, at which ε. ``dist``:
    several processes share the batches (bitwise the single-process result, on every rank).
    """
    from ..margins import estimate_margins

    dist = as_dist(dist)
    out: dict[str, Any] = {"val_acc": clean_accuracy(model, data, device, dist=dist)}
    if norm is None or max_eps is None or size == 0:
        return out
    if selection == "reference":
        sel = reference_validation_margin(model, data, norm=norm, max_eps=max_eps, size=size, clip=clip,
                                          device=device, seed=None, dist=dist)
        out.update(val_margin=sel.mean, val_margin_median=sel.margins.median().item(), selection=sel.record)
    else:
        sub = data.subset(size)
        margin = torch.zeros(len(sub), dtype=sub.x.dtype)
        for b, i in enumerate(range(0, len(sub), 500)):
            x, y = sub.x[i : i + 500].to(device), sub.y[i : i + 500].to(device)
            if not dist.owns(b):  # another rank's batch: its random draws only (no PGD or bisection steps)
                estimate_margins(model, x, y, norm=norm, max_eps=max_eps, steps=0, search_steps=0, refine=0, clip=clip)
                continue
            margin[i : i + len(x)] = estimate_margins(model, x, y, norm=norm, max_eps=max_eps, steps=steps,
                                                      search_steps=10, refine=0, clip=clip).margin.cpu()
        margin = dist.combine_disjoint(margin)
        out["val_margin"] = margin.mean().item()
        out["val_margin_median"] = margin.median().item()
        out["selection"] = {"estimator": "estimate_margins (verified AN-PGD search, ours)", "images": len(sub),
                            "norm": norm, "max_eps": max_eps, "pgd_steps": steps, "search_steps": 10, "refine": 0}
    return out


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _epoch_order(n: int, epoch: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def train_step(model: nn.Module, method: Method, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
               index: Tensor, dist: Dist | None = None) -> dict:
    """One training step on a batch x (N, ...), y (N,) with dataset indices ``index`` (N,).

    The method's loss (its attack runs inside), one backward pass, one
    optimizer step; returns the method's statistics. With ``dist`` on several
    processes, x is this rank's shard of the global batch and the gradients
    are averaged over ranks before the step.

    A loss that is NaN or inf (on any rank) takes no backward pass and no
    optimizer step: the weights stay as they were, and the statistics say
    ``_nonfinite: True`` (``fit`` then stops or skips, see ``nan_policy``).
    """
    model.train()
    loss, stats = method.batch_loss(model, x, y, index)
    finite = bool(torch.isfinite(loss.detach()).all())
    if dist is not None and dist.active:
        finite = dist.max_int(0 if finite else 1) == 0  # every rank skips the same step, or none does
    if not finite:
        return {**stats, "loss": float(loss.detach().float().mean()), "_nonfinite": True}
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if dist is not None and dist.active:
        # Why not DistributedDataParallel: an MMA step runs ~50 forwards (AN-PGD's PGD and bisection,
        # the clean and the mixed pass) per backward, while DDP's hooks assume one forward per backward,
        # and DDP re-broadcasts rank 0's buffers at every forward, which would overwrite the batch-norm
        # statistics that bn_mode defines per rank. One all-reduce of the flattened gradients after the
        # backward is the same arithmetic as DDP's bucketed all-reduce (sum / world): each rank's loss is
        # its shard's mean, so the mean of the ranks' gradients is the gradient of the global batch's loss.
        # DDP overlaps that all-reduce with the backward; here the attack's ~50 passes dwarf it.
        dist.average_gradients(model)
    optimizer.step()
    if dist is not None and dist.active and not has_sync_batchnorm(model):
        # Batch norm's running statistics were updated from each rank's shard: their mean over ranks is
        # the single process's running mean (the update is linear in the batch mean), and every rank
        # attacks the next batch with one and the same model.
        dist.average_buffers(model)
    return stats


def _global_stats(stats: dict, dist: Dist) -> dict:
    """The ranks' step statistics averaged (each a mean over an equal shard: the global batch's mean)."""
    if not dist.active:
        return stats
    keys = sorted(k for k in stats if not k.startswith("_"))
    values = dist.all_reduce_sum(torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64)) / dist.world
    return {**stats, **dict(zip(keys, values.tolist()))}


SELECTIONS = ("estimate", "reference")
NAN_POLICIES = ("stop", "skip")


class NonFiniteLoss(RuntimeError):
    """Training stopped because a step's loss was NaN or inf (``nan_policy="stop"``).

    ``step`` is the step whose loss was not finite (1-based, as the progress bar counts); ``kept`` the
    checkpoint on disk from before it (None without an ``out`` folder or before the first save).
    """

    def __init__(self, step: int, loss: float, kept: Path | None, kept_step: int | None):
        self.step, self.loss, self.kept, self.kept_step = step, loss, kept, kept_step
        where = (f"{kept} (step {kept_step:,}) is kept as it was" if kept is not None
                 else "nothing was saved")
        super().__init__(f"the loss of step {step:,} is {loss} (not finite): training stopped before updating "
                         f"the weights with it; {where}. Lower the learning rate, or skip such steps with "
                         "--nan-policy skip (nan_policy='skip')")


# Settings that may differ between a run and its resumption; any other difference is refused.
_MAY_CHANGE = ("steps", "device", "world_size")


def _plain(obj: Any) -> Any:
    """As a JSON round trip leaves it (tuples become lists), so saved and current settings compare equal."""
    return json.loads(json.dumps(obj, default=str))


def _settings_differences(saved: dict, now: dict) -> list[str]:
    a, b = _plain(saved), _plain(now)
    keys = sorted((set(a) & set(b)) - set(_MAY_CHANGE))
    return [f"{k} (saved {a[k]!r}, now {b[k]!r})" for k in keys if a[k] != b[k]]


def _best_problem(path: Path, best_step: int) -> str | None:
    """Why ``best.pt`` does not hold step ``best_step`` (None if it does)."""
    if not path.exists():
        return "missing"
    try:
        step = read_checkpoint(path).get("step")
    except (CheckpointError, OSError) as err:
        return f"unreadable ({err})"
    return None if step == best_step else f"from step {step}, not step {best_step}"


def owed_repairs(ck: dict, out_dir: Path) -> list[str]:
    """What a saved run still owes at its last step (empty when nothing): the record of the epoch that
    ends there (an interruption during its validation), a ``best.pt`` that is not the step ``last.pt``
    names as best (an interruption before its write). ``ck`` is the run's ``last.pt``."""
    owed = []
    step = ck.get("step", 0)
    if ck.get("epoch_end_pending"):
        owed.append(f"the record of the epoch ending at step {step:,}")
    elif step and not any(e.get("step") == step for e in ck.get("history", {}).get("epochs", [])):
        owed.append(f"the record of the (partial) epoch ending at step {step:,}")
    best_step = ck.get("best_step")
    if best_step is not None and best_step == step:
        problem = _best_problem(out_dir / BEST, best_step)
        if problem:
            owed.append(f"best.pt ({problem})")
    return owed


def _kept(out_dir: Path | None, dist: Dist) -> tuple[Path | None, int | None]:
    """The run's ``last.pt`` on disk and its step, (None, None) when there is none."""
    if out_dir is None:
        return None, None
    step = dist.on_main(lambda: read_checkpoint(out_dir / LAST).get("step") if (out_dir / LAST).exists() else None)
    return (out_dir / LAST if step is not None else None), step


def _check_outputs(model: nn.Module, x: Tensor, y_max: int) -> None:
    """The model must map a batch (n, ...) to logits (n, C) with C >= 2 and every label < C."""
    with eval_mode(model), torch.no_grad():
        logits = model(x)
    if logits.dim() != 2 or logits.shape[0] != x.shape[0] or logits.shape[1] < 2:
        raise ValueError(f"the model must return logits of shape (N, C) with C >= 2 classes; for a batch of "
                         f"{x.shape[0]} it returned shape {tuple(logits.shape)}")
    if y_max >= logits.shape[1]:
        raise ValueError(f"train_data has labels up to {y_max}, but the model has only {logits.shape[1]} outputs")


def _say(message: str, dist: Dist | None = None) -> None:
    if dist is None or dist.is_main:
        print(f"fit: {message}", flush=True)


def fit(
    model: nn.Module,
    train_data: ArrayDataset,
    method: Method,
    *,
    steps: int | None = None,
    epochs: int | None = None,
    batch_size: int = 50,
    optimizer: str | torch.optim.Optimizer = "adam",
    lr: float = 1e-3,
    lr_schedule: Callable[[int], float] | None = None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    augment: Callable[[Tensor], Tensor] | None = None,
    eval_data: ArrayDataset | None = None,
    eval_norm: str | None = None,
    eval_max_eps: float | None = None,
    eval_size: int = 500,
    eval_steps: int = 20,
    selection: str = "estimate",
    out: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str | torch.device = "auto",
    seed: int = 0,
    progress: bool = True,
    callbacks: Iterable[Callable[[Event], None]] = (),
    meta: dict | None = None,
    channels_last: bool | None = None,
    dist: Dist | None = None,
    nan_policy: str = "stop",
) -> History:
    """Train ``model`` on ``train_data`` with ``method`` for ``steps`` steps (or ``epochs`` epochs).

    Args:
        model: the network (moved to ``device``).
        train_data: an :class:`~mma_edu.data.ArrayDataset`; MMA keys its margin memory by its indices.
        method: :class:`Standard`, :class:`PGDAT` or :class:`MMA` (OMMA: ``clean_weight=0``).
        steps / epochs: run length (exactly one of them); an epoch is len(data) // batch_size steps.
            The last partial batch of each epoch is dropped (ours: every step then has batch_size
            examples, and the order is reshuffled every epoch, so no example is left out for good);
            the reference's loader keeps it — 352 steps per CIFAR10 epoch (45,000 images, batch
            128) against our 351.
        batch_size: examples per step.
        optimizer: "adam", "sgd" or an optimizer instance; lr, momentum, weight_decay for the named ones.
        lr_schedule: step -> learning rate (e.g. :class:`PiecewiseConstant`); constant lr if None.
        augment: batch transform (N, C, H, W) -> same, e.g. :func:`mma_edu.data.random_crop_flip`.
        eval_data: held-out data; each epoch records its clean accuracy and (for MMA and PGD-AT, or
            with eval_norm/eval_max_eps) the mean validation margin of ``eval_size`` of its examples,
            measured as ``selection`` says. ``best.pt`` keeps the epoch with the highest mean margin
            (clean accuracy when no margins are measured, e.g. ``eval_size=0``).
        selection: "estimate" — our verified margin estimator (:func:`validate`), or "reference" —
            the authors' selection search (:func:`mma_edu.train.selection.reference_validation_margin`:
            PGD at the test ε, bisection from max_eps/2, last midpoint), as the paper presets use.
            Each epoch's record holds ``selection``: which estimator, how many images, which ε.
        out: folder for ``last.pt`` (every epoch, at the end, on SIGINT/SIGTERM), ``best.pt`` and
            ``history.json``. Checked before the first step and locked while training.
        resume: continue the run saved in ``out/last.pt`` up to ``steps``; refused if ``out`` holds no
            run or the saved run has other settings (method, data, batch size, optimizer, seed, meta).
        overwrite: start afresh in an ``out`` that already holds a run (its files are replaced).
        device: "auto" (cuda, then mps, then cpu), "cpu", "cuda", ...
        seed: fixes initial RNG, data order and attacks' random starts.
        progress: show a tqdm progress bar (notebook-aware) with loss, accuracy and margin.
        callbacks: called with an :class:`Event` after every step and every epoch.
        meta: extra plain data stored in checkpoints (e.g. the preset name).
        channels_last: train in channels-last memory layout (faster convolutions, same results to
            float rounding; see :mod:`mma_edu.speed`); None (default) turns it on for conv nets.
        dist: several processes (:func:`mma_edu.distributed.init_from_env` under torchrun): each rank
            trains on its batch_size / world rows of the same global batch, draws its random numbers
            as the single process does, averages gradients, and holds the whole margin memory; the
            ranks share each validation's batches; only rank 0 writes ``out`` and shows progress; a signal on any rank stops every rank after
            the same step. None: one process.
        nan_policy: what a step whose loss is NaN or inf does (the weights are never updated with it):
            "stop" (default) raises :class:`NonFiniteLoss` naming the step, keeping the last checkpoint on
            disk as it was; "skip" leaves that step's weights unchanged, says so, and goes on.

    Returns:
        the :class:`History` (also in ``out/history.json``).

    Raises:
        TrainingInterrupted: on SIGINT (Ctrl-C) or SIGTERM, after finishing the step in progress and
            saving ``last.pt``: ``resume=True`` then continues exactly as if nothing had happened.
            A second Ctrl-C aborts at once, keeping the previous ``last.pt``.
        NonFiniteLoss: a step's loss was not finite and ``nan_policy="stop"``.
        mma_edu.checkpoint.CheckpointError: ``resume`` from a ``last.pt`` with NaN or inf weights.
    """
    raise_if_interrupted_at_startup()  # a Ctrl-C during the imports that a library's bare except swallowed
    check_dataset(train_data, "train_data")
    if not isinstance(method, Method):
        raise ValueError("method must be Standard(), PGDAT(...) or MMA(...) from mma_edu.train")
    if eval_data is not None:
        check_dataset(eval_data, "eval_data")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= len(train_data):
        raise ValueError(f"batch_size must be an integer in [1, {len(train_data)}], got {batch_size!r}")
    check_count(eval_size, "eval_size", 0)
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    check_count(eval_steps, "eval_steps", 1)
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
    dist = as_dist(dist)
    rows = dist.shard(batch_size)  # this rank's rows of every global batch
    steps_per_epoch = len(train_data) // batch_size
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps= and epochs=")
    for name, value in (("steps", steps), ("epochs", epochs)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    total = steps if steps is not None else epochs * steps_per_epoch  # type: ignore[operator]
    if resume and out is None:
        raise ValueError("resume=True needs out= (the folder holding last.pt)")
    out_dir = Path(out) if out is not None else None
    if dist.active:  # ranks that disagree on the run would wait on each other forever or drift apart
        plan = _plain([len(train_data), train_data.name, batch_size, total, seed, resume, out is not None,
                       eval_data is not None, method.config()])
        if any(other != plan for other in dist.all_gather_object(plan)):
            raise ValueError("every rank must call fit with the same data, method, batch_size, steps, seed, resume, "
                             f"out and eval_data; rank {dist.rank} has {plan!r}")
    if out_dir is not None:
        dist.on_main(lambda: check_run_folder(out_dir, resume=resume, overwrite=overwrite))

    dev = dist.resolve_device(device)
    model.to(dev)
    dist.broadcast_module(model)  # every rank starts from rank 0's weights
    cl = use_channels_last(model, channels_last, train_data.x)
    if cl:
        model.to(memory_format=torch.channels_last)
    X, Y = train_data.x.to(dev), train_data.y.to(dev)
    _check_outputs(model, as_layout(X[:2], cl), int(Y.max()))
    method.setup(len(train_data), dev)
    opt = optimizer if isinstance(optimizer, torch.optim.Optimizer) else make_optimizer(
        optimizer, model.parameters(), lr, momentum=momentum, weight_decay=weight_decay)
    eval_norm, eval_max_eps = _eval_settings(method, eval_norm, eval_max_eps)
    clip = getattr(method, "clip", (0.0, 1.0))
    spec = getattr(model, "_mma_edu_spec", {})

    history = History(config={
        **method.config(), "batch_size": batch_size, "steps": total, "seed": seed, "lr": lr,
        "optimizer": optimizer if isinstance(optimizer, str) else type(optimizer).__name__,
        "data": train_data.name, "device": str(dev),
        # how best.pt is chosen: a resumed run that measured otherwise would compare unlike numbers
        "eval_size": eval_size if eval_data is not None else 0,
        **({"selection": selection} if eval_data is not None else {}),
        **(meta or {}),
        **({"world_size": dist.world} if dist.active else {}),
    })
    callbacks, meta = list(callbacks), meta or {}
    writes = out_dir is not None and dist.is_main  # only rank 0 touches the run folder
    if writes:
        out_dir.mkdir(parents=True, exist_ok=True)
    # The run folder is ours alone until fit returns or raises.
    with RunLock(out_dir) if writes else nullcontext():
        if writes:
            remove_leftovers(out_dir)  # temp files of writes a kill -9 cut short
            if overwrite:
                for name in (LAST, BEST, HISTORY):
                    (out_dir / name).unlink(missing_ok=True)
        start_step, best, best_step, pending, owe_record = 0, -math.inf, None, False, False
        acc = _EpochStats()
        if resume:
            # Rank 0 reads last.pt and sends it to the others (no shared filesystem needed).
            ck = (dist.on_main(lambda: read_checkpoint(out_dir / LAST, map_location="cpu")) if dist.active
                  else read_checkpoint(out_dir / LAST, map_location=dev))
            diffs = _settings_differences(ck.get("history", {}).get("config", {}), history.config)
            if diffs:
                raise RunFolderError(f"cannot resume {str(out_dir)!r}: the saved run has other settings: "
                                     + "; ".join(diffs))
            check_finite(ck["model"], f"cannot resume from {out_dir / LAST}")
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            method.load_state_dict(ck.get("method_state", {}))
            method.setup(len(train_data), dev)
            start_step, best = ck["step"], ck.get("best", -math.inf)
            best_step, pending = ck.get("best_step"), bool(ck.get("epoch_end_pending", False))
            prev = History.from_dict(ck["history"])
            history.epochs = [e for e in prev.epochs if not e.get("partial")]
            owed = owed_repairs(ck, out_dir) if dist.is_main else []
            history.step_loss = prev.step_loss[:start_step]
            acc = _EpochStats(ck.get("accum"))
            saved_world = int(ck.get("world_size", 1))
            same_world = saved_world == dist.world
            _set_rng_state(ck["rng_ranks"][dist.rank] if same_world and "rng_ranks" in ck else ck["rng"])
            if not same_world and start_step < total:
                _say(f"warning: the run in {out_dir} was trained on {saved_world} process(es), this one has "
                     f"{dist.world}: it continues with the same global batches and random draws, but each rank's "
                     "share of every batch changes (and with it batch-norm statistics without --sync-bn, and "
                     "float rounding), so it is not bitwise the run the old world size would have made", dist)
            if start_step >= total:
                history.config["steps"] = start_step
                asked, total = total, start_step
                # the record of the epoch ending at the last step, if an interruption took it (pending: below)
                owe_record = not pending and not any(
                    e.get("step") == start_step for e in prev.epochs)
        else:
            torch.manual_seed(seed)

        def checkpoint(path: Path, step: int, epoch_end_pending: bool = False) -> None:
            # Collective on several processes: every rank's RNG state goes into rank 0's file.
            rng_ranks = dist.all_gather_object(_rng_state()) if dist.active else None
            if not dist.is_main:
                return
            save_checkpoint(path, {
                "format": FORMAT, "model_name": spec.get("name"), "model_kwargs": spec.get("kwargs", {}),
                "epoch": step // steps_per_epoch, "step": step, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "method": method.config(), "method_state": method.state_dict(),
                "rng": _rng_state(), "history": history.to_dict(), "accum": acc.state(), "best": best,
                "best_step": best_step, "epoch_end_pending": epoch_end_pending,
                "data": train_data.name, "meta": meta,
                **({"world_size": dist.world, "rng_ranks": rng_ranks} if dist.active else {}),
            })

        if resume and best_step is not None:
            problem = dist.on_main(lambda: _best_problem(out_dir / BEST, best_step))
            if problem and best_step == start_step:
                checkpoint(out_dir / BEST, start_step, pending)  # last.pt holds that very state
                _say(f"best.pt was {problem}: rebuilt it from last.pt (step {start_step:,})", dist)
            elif problem:
                _say(f"best.pt is {problem} and cannot be rebuilt: last.pt holds step {start_step:,}, the best "
                     f"validation was at step {best_step:,}; best.pt is written again when a later epoch beats "
                     f"{best:.4g}", dist)

        epoch_done = -1 if pending else start_step  # the last step whose epoch-end bookkeeping is complete
        if resume and start_step >= total:
            # "Already complete", but first the run gets what an interruption at its very end took from it:
            # the last epoch's record (and with it the choice of best.pt), a best.pt that was not written.
            owed = dist.broadcast_object(owed)
            if owed:
                _say(f"the run in {out_dir} is complete (step {start_step:,}) but lacks {'; '.join(owed)}: "
                     "repairing it", dist)
            else:
                _say(f"the run in {out_dir} is already complete: it stopped at step {start_step:,} and "
                     f"{asked:,} were asked for; nothing to do (ask for more steps to continue it)", dist)

        def end_epoch(step: int, partial: bool) -> None:
            nonlocal acc, best, best_step, epoch_done
            epoch = (step - 1) // steps_per_epoch
            rec = {"epoch": epoch + 1, "step": step, **acc.record(_hist_max(method))}
            if partial:
                rec["partial"] = True
            if eval_data is not None:
                # Validation draws its own random starts: the training stream stays as if it never ran.
                with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                    torch.manual_seed(seed)
                    rec.update(validate(model, eval_data, dev, norm=eval_norm, max_eps=eval_max_eps, size=eval_size,
                                        steps=eval_steps, clip=clip, selection=selection, dist=dist))
            history.epochs = [e for e in history.epochs if not e.get("partial") and e["step"] != step] + [rec]
            score = rec.get("val_margin", rec.get("val_acc"))
            improved = score is not None and score > best
            if improved:
                best, best_step = score, step
            if not partial:
                acc, epoch_done = _EpochStats(), step
            if out_dir is not None:
                if improved:
                    checkpoint(out_dir / BEST, step)  # before last.pt, which names it
                checkpoint(out_dir / LAST, step)
                if dist.is_main:
                    history.save_json(out_dir / HISTORY)
            for cb in callbacks:
                cb(Event("epoch", step, epoch, rec, history))

        def save_last(step: int) -> Path | None:
            if out_dir is None:
                return None
            boundary = step % steps_per_epoch == 0 and step > 0
            checkpoint(out_dir / LAST, step, epoch_end_pending=boundary and epoch_done != step)
            if dist.is_main:
                history.save_json(out_dir / HISTORY)
            return out_dir / LAST

        bar = None
        if progress and start_step < total and dist.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=start_step, desc=method.name, unit="step")
        step, in_step = start_step, False
        # torchrun passes a Ctrl-C on to its workers, which the terminal has already sent them: on several
        # processes a second SIGINT within a second is that same Ctrl-C, not a request to abort.
        stop = GracefulStop(duplicate_window=1.0 if dist.active else 0.0)

        def stop_signal() -> int | None:
            """The signal to stop on: as it arrived, or on several processes the one any rank received,
            agreed by all at the same step (a collective), so that every rank stops after the same step."""
            return stop.signum if not dist.active else (dist.max_int(stop.signum or 0) or None)

        halt = None
        method.dist = dist if dist.active else None
        try:
            with stop:
                if pending:
                    end_epoch(start_step, partial=False)
                elif owe_record:
                    end_epoch(start_step, partial=bool(start_step % steps_per_epoch))
                order = None
                while step < total and (halt := stop_signal()) is None:
                    epoch, k = divmod(step, steps_per_epoch)
                    if order is None or k == 0:
                        order = _epoch_order(len(train_data), epoch, seed).to(dev)
                    idx = order[k * batch_size : (k + 1) * batch_size]
                    in_step = True
                    x, y = X[idx], Y[idx]
                    if augment is not None:
                        x = augment(x)  # the whole global batch on every rank: the single process's draws
                    x, y, idx = as_layout(x[rows], cl), y[rows], idx[rows]
                    if lr_schedule is not None:
                        set_lr(opt, lr_schedule(step))
                    t0 = time.perf_counter()
                    stats = _global_stats(train_step(model, method, opt, x, y, idx, dist), dist)
                    nonfinite = bool(stats.pop("_nonfinite", False))
                    if nonfinite:
                        loss = float(stats.get("loss", float("nan")))
                        if nan_policy == "stop":
                            in_step = False
                            kept, kept_step = _kept(out_dir, dist)
                            raise NonFiniteLoss(step + 1, loss, kept, kept_step)
                        _say(f"the loss of step {step + 1:,} is {loss} (not finite): skipped it, the weights are "
                             "unchanged (nan_policy='skip')", dist)
                    step += 1
                    if not nonfinite:  # a skipped step leaves the epoch's statistics alone (its loss: step_loss)
                        acc.add(stats, time.perf_counter() - t0)
                    history.step_loss.append(stats["loss"])
                    in_step = False
                    public = {k: v for k, v in stats.items() if not k.startswith("_")}
                    if bar is not None:
                        bar.update(1)
                        shown = {k: f"{v:.3f}" for k, v in public.items() if k in ("loss", "clean_acc", "margin")}
                        bar.set_postfix(shown, refresh=False)
                    for cb in callbacks:
                        cb(Event("step", step, epoch, public, history))
                    if step % steps_per_epoch == 0:
                        end_epoch(step, partial=False)
                if halt is not None and step < total:
                    if step == start_step:  # before the first step: the folder already holds this state, if any
                        kept = out_dir / LAST if out_dir is not None and resume else None
                        raise TrainingInterrupted(halt, step, kept, before_first_step=True)
                    raise TrainingInterrupted(halt, step, save_last(step))
                if step % steps_per_epoch and step > start_step:
                    end_epoch(step, partial=True)
        except (TrainingInterrupted, NonFiniteLoss):
            raise
        except KeyboardInterrupt as err:
            # A KeyboardInterrupt from a callback, a second Ctrl-C, or outside the main thread. Between
            # steps the state is consistent and is saved; inside a step it is half-updated and is not.
            # On several processes the other ranks know nothing of it: saving (a collective) would hang.
            if in_step or dist.active:
                raise
            if step == start_step:  # no step taken: what the folder holds is this state already
                raise TrainingInterrupted(signal.SIGINT, step, out_dir / LAST if out_dir is not None and resume
                                          else None, before_first_step=True) from err
            raise TrainingInterrupted(signal.SIGINT, step, save_last(step)) from err
        finally:
            method.dist = None
            if bar is not None:
                bar.close()
        model.eval()
        return history
