"""A child process for the fault tests (tests/test_faults.py): real signals, sent at chosen moments.

    python tests/fault_child.py OUT_FOLDER

runs, for each scenario, a tiny MMA training into its own folder, interrupted by a real
SIGINT/SIGTERM that this process sends itself at a chosen moment (inside the attack, inside a
checkpoint write, inside the history write, twice in a row...), then resumes it to the end. It
compares each resumed run with an uninterrupted one and prints one JSON line per scenario.
Signals go to a child process so that a mistake cannot interrupt pytest itself.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

from mma_edu.checkpoint import read_checkpoint
from mma_edu.data import mnist_offline
from mma_edu.interrupts import TrainingInterrupted
from mma_edu.models import SmallCNN, build_model
from mma_edu.train import BEST, LAST, MMA, Standard, fit

STEPS = 20  # 8 steps per epoch: two full epochs and a partial one
torch.set_num_threads(1)
SPLITS = mnist_offline()
TRAIN, VAL = SPLITS.train.subset(200), SPLITS.test.subset(20)


def pretrained():
    torch.manual_seed(0)
    model = build_model("small_cnn", width=4, hidden=16)
    fit(model, TRAIN, Standard(), steps=30, batch_size=50, lr=3e-3, progress=False, device="cpu")
    return model.state_dict()


START = pretrained()


def run(out: Path, resume: bool = False, callbacks=()):
    model = build_model("small_cnn", width=4, hidden=16)
    model.load_state_dict(START)
    method = MMA(d_max=0.3, norm="linf", mineps=0.05, steps=3, search_steps=4)
    fit(model, TRAIN, method, steps=STEPS, batch_size=25, lr=1e-3, eval_data=VAL, eval_size=20, eval_steps=3,
        out=out, resume=resume, progress=False, device="cpu", seed=7, callbacks=callbacks)


class Trigger:
    """Sends ``signals`` to this process at the ``at``-th call of whatever it wraps."""

    def __init__(self, at: int, signals=(signal.SIGINT,)):
        self.at, self.signals, self.calls = at, signals, 0

    def fire(self):
        self.calls += 1
        if self.calls == self.at:
            for s in self.signals:
                os.kill(os.getpid(), s)


def in_forward(at, signals=(signal.SIGINT,)):
    """Signal inside the at-th forward pass of the model (most forwards are AN-PGD's)."""
    trigger = Trigger(at, signals)

    def hook(module, args, output):
        if isinstance(module, SmallCNN):  # the whole model, not each of its layers
            trigger.fire()

    return torch.nn.modules.module.register_module_forward_hook(hook).remove


def in_torch_save(at):
    """Signal inside the at-th torch.save, before a byte is written."""
    trigger, real = Trigger(at), torch.save

    def save(*args, **kwargs):
        trigger.fire()
        return real(*args, **kwargs)

    torch.save = save
    return lambda: setattr(torch, "save", real)


def in_rename_of(name, at):
    """Signal inside the at-th atomic write of the file ``name``, just before its rename."""
    trigger, real = Trigger(at), os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == name:
            trigger.fire()
        return real(src, dst, *args, **kwargs)

    os.replace = replace
    return lambda: setattr(os, "replace", real)


def in_validation(at, signals=(signal.SIGINT, signal.SIGINT)):
    """Signals at the start of the at-th validation (the third is the final, partial epoch's: step 20)."""
    import mma_edu.train.loop as loop

    trigger, real = Trigger(at, signals), loop.validate

    def validate(*args, **kwargs):
        trigger.fire()
        return real(*args, **kwargs)

    loop.validate = validate
    return lambda: setattr(loop, "validate", real)


SCENARIOS = {
    "sigint-in-attack": lambda: in_forward(37),  # step 2, inside AN-PGD
    "sigint-in-attack-late": lambda: in_forward(170),  # step 18, the last epoch (partial)
    "sigterm-in-attack": lambda: in_forward(150, (signal.SIGTERM,)),
    "sigint-in-best-write": lambda: in_torch_save(1),  # the first save of the run is best.pt (epoch 1)
    "sigint-in-last-write": lambda: in_torch_save(2),
    "sigint-in-history-write": lambda: in_rename_of("history.json", 1),
    "double-sigint-in-attack": lambda: in_forward(120, (signal.SIGINT, signal.SIGINT)),
    # issue 27: at the very end; the resume then asks for no more steps ("already complete") and must repair
    "double-sigint-in-final-validation": lambda: in_validation(3),
}


def state(folder: Path) -> dict:
    ck = read_checkpoint(folder / LAST)
    ck["history"]["epochs"] = [{k: v for k, v in e.items() if k != "seconds"} for e in ck["history"]["epochs"]]
    return ck


def same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def main(root: Path) -> None:
    run(root / "reference")
    ref = state(root / "reference")
    for name, arm in SCENARIOS.items():
        folder = root / name
        disarm = arm()
        outcome = {"scenario": name}
        try:
            run(folder)
            outcome["interrupted"] = None
        except TrainingInterrupted as stop:
            outcome.update(interrupted=signal.Signals(stop.signum).name, step=stop.step)
        except KeyboardInterrupt:
            outcome["interrupted"] = "abort"
        finally:
            disarm()
        outcome["files"] = sorted(p.name for p in folder.iterdir())
        saved = read_checkpoint(folder / LAST)
        outcome["saved_step"] = saved["step"]
        best = read_checkpoint(folder / BEST) if (folder / BEST).exists() else None
        outcome["best_consistent"] = (best["step"] if best else None) == saved["best_step"]
        torch.manual_seed(12345)  # as a fresh process would be: the checkpoint must restore the RNG
        run(folder, resume=True)
        got = state(folder)
        outcome["exact"] = {k: same(ref[k], got[k]) for k in
                            ("model", "optimizer", "method_state", "rng", "best", "best_step", "step")}
        outcome["exact"]["history"] = same(ref["history"]["step_loss"], got["history"]["step_loss"]) and same(
            ref["history"]["epochs"], got["history"]["epochs"])
        print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
