"""Bad input gets one clear error naming the argument — never a silent result (issue: reliability).

One table over the library, checkpoints and the command line: each row calls something with one bad
argument and names the exception type and a piece of text the message must contain (the argument's
name, or what is wrong). The command-line rows also check: exit status 2, one line, no traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mma_edu import data as D
from mma_edu import zoo
from mma_edu.attacks import anpgd, fmn, pgd
from mma_edu.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from mma_edu.cli import main
from mma_edu.evaluate import compare, margin_distribution, robust_accuracy
from mma_edu.margins import MarginResult, estimate_margins, linear_margins, widen_until_broken
from mma_edu.models import Linear, build_model
from mma_edu.train import MMA, PGDAT, Standard, fit
from mma_edu.train.run_folder import LOCK

NAN = float("nan")


def _model(classes: int = 3) -> Linear:
    torch.manual_seed(0)
    return Linear(4, classes)


def _x(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 4, generator=torch.Generator().manual_seed(0))


def _y(n: int = 6) -> torch.Tensor:
    return torch.arange(n) % 3


def _ds(n: int = 6, x=None) -> D.ArrayDataset:
    return D.ArrayDataset(_x(n) if x is None else x, _y(n), "toy")


def _nan_x() -> torch.Tensor:
    x = _x()
    x[2, 1] = NAN
    return x


def _empty() -> D.ArrayDataset:
    return D.ArrayDataset(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), "empty")


class _Flat(torch.nn.Module):
    """Returns (N,) instead of (N, C) logits."""

    def forward(self, x):
        return x.sum(1)


def _fit(**kw):
    args = dict(model=_model(), train_data=_ds(), method=Standard(), steps=1, batch_size=3, progress=False,
                device="cpu")
    args.update(kw)
    return fit(args.pop("model"), args.pop("train_data"), args.pop("method"), **args)


def _run_folder(tmp: Path, **kw) -> Path:
    out = tmp / "run"
    _fit(out=out, **kw)
    return out


def _locked_folder(tmp: Path) -> Path:
    out = tmp / "locked"
    out.mkdir()
    (out / LOCK).write_text(f'{{"pid": {os.getpid()}, "host": "{os.uname().nodename}"}}')
    return out


def _bad_kwargs_checkpoint(tmp: Path) -> Path:
    m = build_model("small_cnn", width=2, hidden=4)
    return save_checkpoint(tmp / "bad_kwargs.pt", {"model_name": "small_cnn", "model_kwargs": {"widht": 2},
                                                   "model": m.state_dict()})


def _non_tensor_checkpoint(tmp: Path) -> Path:
    return save_checkpoint(tmp / "non_tensor.pt", {"model": {"conv1.weight": [1, 2, 3]}})


def _garbage_file(tmp: Path) -> Path:
    path = tmp / "garbage.pt"
    path.write_bytes(b"not a checkpoint at all")
    return path


class Unsafe:
    """A class that weights_only loading must refuse to unpickle."""


def _unsafe_checkpoint(tmp: Path) -> Path:
    path = tmp / "unsafe.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": Unsafe()}, path)
    return path


def _wrong_architecture(tmp: Path) -> Path:
    return save_checkpoint(tmp / "wrong.pt", {"model": build_model("small_cnn", width=2, hidden=4).state_dict()})


def _nan_checkpoint(tmp: Path) -> Path:
    """A small_cnn whose second tensor holds NaN (as a diverged run saves it)."""
    m = build_model("small_cnn", width=2, hidden=4)
    sd = m.state_dict()
    name = list(sd)[1]
    sd[name][0] = NAN
    return save_checkpoint(tmp / "nan.pt", {"model_name": "small_cnn", "model_kwargs": {"width": 2, "hidden": 4},
                                            "model": sd, "data": "mnist_offline/train",
                                            "method": {"norm": "linf"}})


def _inf_buffer(tmp: Path):
    """A batch-norm running variance of inf: a buffer, not a parameter."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    sd = model.state_dict()
    sd["1.running_var"][1] = float("inf")
    return load_checkpoint(save_checkpoint(tmp / "inf.pt", {"model": sd}), model=model)


def _nan_run_folder(tmp: Path) -> Path:
    """A run whose last.pt holds NaN weights."""
    out = _run_folder(tmp)
    ck = read_checkpoint(out / "last.pt")
    ck["model"]["fc.weight"][0, 0] = NAN
    save_checkpoint(out / "last.pt", ck)
    return out


def _zoo_copy(tmp: Path, damage: str) -> Path:
    """The zoo's manifest and mma-0.45 weights in a folder of their own, the weights damaged as asked."""
    root = tmp / "zoo"
    root.mkdir()
    shutil.copy(zoo.WEIGHTS_DIR / zoo.MANIFEST, root)
    target = root / "mma-0.45.pt"
    if damage == "bit-flips":
        data = bytearray((zoo.WEIGHTS_DIR / "mma-0.45.pt").read_bytes())
        data[len(data) // 2] ^= 0x10
        target.write_bytes(bytes(data))
    elif damage == "other-architecture":
        m = build_model("lenet5_madry")
        save_checkpoint(target, {"model_name": "lenet5_madry", "model": m.state_dict()})
    else:  # nan weights in an otherwise good file
        ck = read_checkpoint(zoo.WEIGHTS_DIR / "mma-0.45.pt")
        next(iter(ck["model"].values())).view(-1)[0] = NAN
        save_checkpoint(target, ck)
    return root


def _lock_directory(tmp: Path) -> Path:
    out = tmp / "lockdir"
    (out / LOCK).mkdir(parents=True)
    return out


# (id, callable taking tmp_path, exception type, text the message must contain)
LIBRARY = [
    # attacks
    ("pgd-x-nan", lambda t: pgd(_model(), _nan_x(), _y(), 0.1, steps=2), ValueError, "x must hold finite"),
    ("pgd-eps-nan", lambda t: pgd(_model(), _x(), _y(), NAN, steps=2), ValueError, "eps"),
    ("pgd-eps-negative", lambda t: pgd(_model(), _x(), _y(), -0.1, steps=2), ValueError, "eps"),
    ("pgd-eps-wrong-shape", lambda t: pgd(_model(), _x(), _y(), torch.ones(4), steps=2), ValueError, "eps"),
    ("pgd-steps-negative", lambda t: pgd(_model(), _x(), _y(), 0.1, steps=-1), ValueError, "steps"),
    ("pgd-steps-float", lambda t: pgd(_model(), _x(), _y(), 0.1, steps=2.5), ValueError, "steps"),
    ("pgd-y-float", lambda t: pgd(_model(), _x(), _y().float(), 0.1, steps=2), ValueError, "y must be an integer"),
    ("pgd-y-length", lambda t: pgd(_model(), _x(), _y(5), 0.1, steps=2), ValueError, "same N"),
    ("pgd-y-too-large", lambda t: pgd(_model(), _x(), _y() + 5, 0.1, steps=2), ValueError, "number of classes"),
    ("pgd-norm", lambda t: pgd(_model(), _x(), _y(), 0.1, norm="l1", steps=2), ValueError, "norm"),
    ("pgd-clip", lambda t: pgd(_model(), _x(), _y(), 0.1, clip=(1.0, 0.0), steps=2), ValueError, "clip"),
    ("pgd-x-outside-box", lambda t: pgd(_model(), _x() + 2, _y(), 0.1, steps=2), ValueError, "box"),
    ("pgd-restarts-zero", lambda t: pgd(_model(), _x(), _y(), 0.1, restarts=0), ValueError, "restarts"),
    ("pgd-loss-unknown", lambda t: pgd(_model(), _x(), _y(), 0.1, loss="hinge"), ValueError, "loss"),
    ("anpgd-x-nan", lambda t: anpgd(_model(), _nan_x(), _y(), 0.1, norm="linf", max_eps=0.5), ValueError, "x"),
    ("anpgd-eps-init-nan", lambda t: anpgd(_model(), _x(), _y(), NAN, norm="linf", max_eps=0.5), ValueError,
     "eps_init"),
    ("anpgd-max-eps-zero", lambda t: anpgd(_model(), _x(), _y(), 0.1, norm="linf", max_eps=0.0), ValueError,
     "max_eps"),
    ("anpgd-search-steps", lambda t: anpgd(_model(), _x(), _y(), 0.1, norm="linf", max_eps=0.5, search_steps=-1),
     ValueError, "search_steps"),
    # margins
    ("margins-x-nan", lambda t: estimate_margins(_model(), _nan_x(), _y(), max_eps=0.5), ValueError, "x"),
    ("margins-max-eps-nan", lambda t: estimate_margins(_model(), _x(), _y(), max_eps=NAN), ValueError, "max_eps"),
    ("margins-refine", lambda t: estimate_margins(_model(), _x(), _y(), max_eps=0.5, refine=-1), ValueError, "refine"),
    ("margins-restarts", lambda t: estimate_margins(_model(), _x(), _y(), max_eps=0.5, restarts=0), ValueError,
     "restarts"),
    ("margins-batch-size", lambda t: estimate_margins(_model(), _x(), _y(), max_eps=0.5, batch_size=0), ValueError,
     "batch_size"),
    ("margins-method", lambda t: estimate_margins(_model(), _x(), _y(), max_eps=0.5, method="cw"), ValueError,
     "method must be one of"),
    ("margins-fab-steps", lambda t: estimate_margins(_model(), _x(), _y(), max_eps=0.5, method="fab", fab_steps=0),
     ValueError, "fab_steps"),
    ("margins-fmn-steps", lambda t: estimate_margins(_model(), _x(), _y(), max_eps=0.5, method="fmn", fmn_steps=0),
     ValueError, "fmn_steps"),
    ("fmn-norm", lambda t: fmn(_model(), _x(), _y(), norm="l1"), ValueError, "norm"),
    ("fmn-x-nan", lambda t: fmn(_model(), _nan_x(), _y(), norm="l2"), ValueError, "x"),
    ("fmn-steps", lambda t: fmn(_model(), _x(), _y(), norm="l2", steps=0), ValueError, "steps"),
    ("fmn-restarts", lambda t: fmn(_model(), _x(), _y(), norm="l2", restarts=0), ValueError, "restarts"),
    ("fmn-gamma-one", lambda t: fmn(_model(), _x(), _y(), norm="l2", gamma=1.0), ValueError, "gamma"),
    ("fmn-gamma-zero", lambda t: fmn(_model(), _x(), _y(), norm="l2", gamma=0.0), ValueError, "gamma"),
    ("fmn-step-size", lambda t: fmn(_model(), _x(), _y(), norm="l2", step_size=0.0), ValueError, "step_size"),
    ("fmn-max-eps", lambda t: fmn(_model(), _x(), _y(), norm="l2", max_eps=NAN), ValueError, "max_eps"),
    ("fmn-seed", lambda t: fmn(_model(), _x(), _y(), norm="l2", seed=1.5), ValueError, "seed"),
    ("widen-result", lambda t: widen_until_broken(_model(), _x(), _y(), "margins", norm="l2"), ValueError,
     "result must be a MarginResult"),
    ("widen-length", lambda t: widen_until_broken(_model(), _x(), _y(), estimate_margins(
        _model(), _x(3), _y(3), max_eps=0.5), norm="linf"), ValueError, "examples"),
    ("widen-factor", lambda t: widen_until_broken(_model(), _x(), _y(), estimate_margins(
        _model(), _x(), _y(), max_eps=0.5), factor=1.0), ValueError, "factor"),
    ("widen-max-eps", lambda t: widen_until_broken(_model(), _x(), _y(), estimate_margins(
        _model(), _x(), _y(), max_eps=0.5), max_eps=1.0), ValueError, "max_eps"),
    ("linear-weight-shape", lambda t: linear_margins(torch.ones(3), torch.ones(3), _x(), _y(), norm="linf"),
     ValueError, "weight"),
    ("linear-features", lambda t: linear_margins(torch.ones(3, 5), torch.ones(3), _x(), _y(), norm="linf"),
     ValueError, "features"),
    ("linear-y-length", lambda t: linear_margins(torch.ones(3, 4), torch.ones(3), _x(), _y(4), norm="linf"),
     ValueError, "same N"),
    ("linear-y-float", lambda t: linear_margins(torch.ones(3, 4), torch.ones(3), _x(), _y().float(), norm="l2"),
     ValueError, "y must be an integer"),
    ("linear-empty", lambda t: linear_margins(torch.ones(3, 4), torch.ones(3), torch.zeros(0, 4),
                                              torch.zeros(0, dtype=torch.long), norm="l2"), ValueError, "empty"),
    ("linear-x-nan", lambda t: linear_margins(torch.ones(3, 4), torch.ones(3), _nan_x(), _y(), norm="l2"),
     ValueError, "x must hold finite"),
    ("linear-weight-nan", lambda t: linear_margins(torch.full((3, 4), NAN), torch.ones(3), _x(), _y(), norm="l2"),
     ValueError, "weight"),
    ("summary-empty", lambda t: MarginResult(torch.zeros(0), torch.zeros(0, dtype=torch.bool),
                                             torch.zeros(0, 4)).summary(), ValueError, "empty"),
    # evaluation
    ("robacc-data-type", lambda t: robust_accuracy(_model(), (_x(), _y()), norm="linf", eps_list=[0.1]),
     ValueError, "data must be an mma_edu.data.ArrayDataset"),
    ("robacc-empty", lambda t: robust_accuracy(_model(), _empty(), norm="linf", eps_list=[0.1]), ValueError,
     "data is empty"),
    ("robacc-nan", lambda t: robust_accuracy(_model(), _ds(x=_nan_x()), norm="linf", eps_list=[0.1]), ValueError,
     "data.x"),
    ("robacc-eps-string", lambda t: robust_accuracy(_model(), _ds(), norm="linf", eps_list="0.1"), ValueError,
     "eps_list"),
    ("robacc-eps-nan", lambda t: robust_accuracy(_model(), _ds(), norm="linf", eps_list=[NAN]), ValueError,
     "eps_list"),
    ("robacc-eps-empty", lambda t: robust_accuracy(_model(), _ds(), norm="linf", eps_list=[]), ValueError,
     "eps_list"),
    ("robacc-eps-decreasing", lambda t: robust_accuracy(_model(), _ds(), norm="linf", eps_list=[0.2, 0.1]),
     ValueError, "increasing"),
    ("robacc-eps-not-numbers", lambda t: robust_accuracy(_model(), _ds(), norm="linf", eps_list=[0.1, "x"]),
     ValueError, "eps_list"),
    ("robacc-steps", lambda t: robust_accuracy(_model(), _ds(), norm="linf", eps_list=[0.1], steps=0), ValueError,
     "steps"),
    ("robacc-restarts", lambda t: robust_accuracy(_model(), _ds(), norm="linf", eps_list=[0.1], restarts=0),
     ValueError, "restarts"),
    ("robacc-losses", lambda t: robust_accuracy(_model(), _ds(), norm="linf", eps_list=[0.1], losses=["xx"]),
     ValueError, "losses"),
    ("robacc-step-fraction", lambda t: robust_accuracy(_model(), _ds(), norm="linf", eps_list=[0.1],
                                                       step_fraction=0.0), ValueError, "step_fraction"),
    ("robacc-norm", lambda t: robust_accuracy(_model(), _ds(), norm="linf2", eps_list=[0.1]), ValueError, "norm"),
    ("margdist-empty", lambda t: margin_distribution(_model(), _empty(), norm="linf", max_eps=0.5), ValueError,
     "data is empty"),
    ("margdist-nan", lambda t: margin_distribution(_model(), _ds(x=_nan_x()), norm="linf", max_eps=0.5),
     ValueError, "data.x"),
    ("margdist-batch-size", lambda t: margin_distribution(_model(), _ds(), norm="linf", max_eps=0.5, batch_size=0),
     ValueError, "batch_size"),
    ("margdist-method", lambda t: margin_distribution(_model(), _ds(), norm="l2", max_eps=0.5, method="cw"),
     ValueError, "method must be one of"),
    ("compare-no-models", lambda t: compare({}, _ds(), norm="linf", eps_list=[0.1]), ValueError, "models"),
    # data
    ("dataset-float-labels", lambda t: D.ArrayDataset(_x(2), torch.tensor([0.9, 1.0])), ValueError,
     "y must hold integer class labels"),
    ("dataset-bool-labels", lambda t: D.ArrayDataset(_x(2), torch.tensor([True, False])), ValueError, "y"),
    ("dataset-negative-labels", lambda t: D.ArrayDataset(_x(2), torch.tensor([0, -1])), ValueError, ">= 0"),
    ("dataset-lengths", lambda t: D.ArrayDataset(_x(3), _y(2)), ValueError, "same length"),
    ("dataset-2d-labels", lambda t: D.ArrayDataset(_x(2), torch.zeros(2, 1, dtype=torch.long)), ValueError,
     "y must have shape (N,)"),
    ("dataset-subset-zero", lambda t: _ds().subset(0), ValueError, "n must be positive"),
    ("toy-name", lambda t: D.toy_2d("moon"), ValueError, "name must be one of"),
    ("toy-n", lambda t: D.toy_2d("moons", n=1), ValueError, "n must be"),
    ("holdout-too-many", lambda t: D.holdout(_ds(), 6), ValueError, "n must be an integer in"),
    # training methods
    ("pgdat-steps-negative", lambda t: PGDAT(0.3, steps=-2), ValueError, "steps"),
    ("pgdat-steps-float", lambda t: PGDAT(0.3, steps=2.5), ValueError, "steps"),
    ("pgdat-eps-nan", lambda t: PGDAT(NAN), ValueError, "eps"),
    ("mma-steps-negative", lambda t: MMA(0.3, steps=-1), ValueError, "steps"),
    ("mma-search-steps", lambda t: MMA(0.3, search_steps=0), ValueError, "search_steps"),
    ("mma-d-max-nan", lambda t: MMA(NAN), ValueError, "d_max"),
    # fit
    ("fit-nan-data", lambda t: _fit(train_data=_ds(x=_nan_x())), ValueError, "train_data.x"),
    ("fit-empty-data", lambda t: _fit(train_data=_empty()), ValueError, "train_data is empty"),
    ("fit-data-type", lambda t: _fit(train_data=(_x(), _y())), ValueError, "train_data must be"),
    ("fit-output-shape", lambda t: _fit(model=_Flat()), ValueError, "logits of shape (N, C)"),
    ("fit-one-class", lambda t: _fit(model=Linear(4, 1)), ValueError, "C >= 2"),
    ("fit-labels-too-large", lambda t: _fit(model=Linear(4, 2)), ValueError, "labels up to 2"),
    ("fit-batch-size", lambda t: _fit(batch_size=0), ValueError, "batch_size"),
    ("fit-steps-negative", lambda t: _fit(steps=-1), ValueError, "steps"),
    ("fit-steps-and-epochs", lambda t: _fit(epochs=1), ValueError, "exactly one of steps= and epochs="),
    ("fit-eval-empty", lambda t: _fit(eval_data=_empty()), ValueError, "eval_data is empty"),
    ("fit-eval-size", lambda t: _fit(eval_data=_ds(), eval_size=-1), ValueError, "eval_size"),
    ("fit-resume-no-out", lambda t: _fit(resume=True), ValueError, "resume=True needs out="),
    ("fit-out-is-file", lambda t: _fit(out=_garbage_file(t)), ValueError, "is an existing file"),
    ("fit-out-holds-run", lambda t: _fit(out=_run_folder(t)), ValueError, "already holds a run"),
    ("fit-resume-nothing", lambda t: _fit(out=t / "nothing", resume=True), ValueError, "cannot resume"),
    ("fit-resume-and-overwrite", lambda t: _fit(out=t / "x", resume=True, overwrite=True), ValueError, "exclude"),
    ("fit-resume-other-method", lambda t: _fit(out=_run_folder(t), resume=True, steps=2, method=PGDAT(0.1, steps=1)),
     ValueError, "method (saved 'standard', now 'pgdat')"),
    ("fit-resume-other-data", lambda t: _fit(out=_run_folder(t), resume=True, steps=2,
                                             train_data=D.ArrayDataset(_x(), _y(), "other")), ValueError, "data"),
    ("fit-locked", lambda t: _fit(out=_locked_folder(t)), ValueError, "in use by another training"),
    ("fit-device-name", lambda t: _fit(device="gpu"), ValueError, "device must be"),
    # checkpoints
    ("ckpt-directory", lambda t: load_checkpoint(t), CheckpointError, "is a directory"),
    ("ckpt-missing", lambda t: load_checkpoint(t / "missing.pt"), FileNotFoundError, "checkpoint not found"),
    ("ckpt-bad-kwargs", lambda t: load_checkpoint(_bad_kwargs_checkpoint(t)), CheckpointError, "model_kwargs"),
    ("ckpt-non-tensor", lambda t: load_checkpoint(_non_tensor_checkpoint(t)), CheckpointError, "not tensors"),
    ("ckpt-garbage", lambda t: load_checkpoint(_garbage_file(t)), CheckpointError, "not a valid torch.save file"),
    ("ckpt-unsafe", lambda t: load_checkpoint(_unsafe_checkpoint(t)), CheckpointError, "Unsafe"),
    ("ckpt-wrong-model", lambda t: load_checkpoint(_wrong_architecture(t), model=build_model("small_cnn")),
     CheckpointError, "does not fit"),
    ("ckpt-save-to-directory", lambda t: save_checkpoint(t, {}), CheckpointError, "is a directory"),
    # issue 27: NaN models refused, shipped and cached weights verified, late and missing checks
    ("ckpt-nan-weights", lambda t: load_checkpoint(_nan_checkpoint(t)), CheckpointError,
     "non-finite weights: 'conv1.bias' holds 1 NaN of 2 values"),
    ("ckpt-inf-buffer", _inf_buffer, CheckpointError, "'1.running_var' holds 1 inf"),
    ("fit-resume-nan-weights", lambda t: _fit(out=_nan_run_folder(t), resume=True, steps=2), CheckpointError,
     "non-finite weights: 'fc.weight'"),
    ("fit-resume-other-eval-size", lambda t: _fit(out=_run_folder(t), eval_data=_ds(), eval_size=3, resume=True,
                                                  steps=2), ValueError, "eval_size (saved 0, now 3)"),
    ("fit-resume-other-selection", lambda t: _fit(out=_run_folder(t, eval_data=_ds()), eval_data=_ds(),
                                                  selection="reference", resume=True, steps=2), ValueError,
     "selection (saved 'estimate', now 'reference')"),
    ("fit-lock-is-a-directory", lambda t: _fit(out=_lock_directory(t)), ValueError, ".lock' is not a regular file"),
    ("fit-out-under-a-file", lambda t: _fit(out=_garbage_file(t) / "sub"), ValueError,
     "garbage.pt' is a file, not a folder"),
    ("fit-nan-policy", lambda t: _fit(nan_policy="ignore"), ValueError, "nan_policy must be one of"),
    ("zoo-bit-flips", lambda t: zoo.load("mma-0.45", root=_zoo_copy(t, "bit-flips")), ValueError,
     "do not match the manifest"),
    ("zoo-other-architecture", lambda t: zoo.load("mma-0.45", root=_zoo_copy(t, "other-architecture")), ValueError,
     "python -m mma_edu.zoo build --only mma-0.45"),
    ("zoo-nan-weights", lambda t: zoo.load("mma-0.45", root=_zoo_copy(t, "nan")), ValueError, "sha256"),
    ("zoo-nan-weights-unverified", lambda t: zoo.load("mma-0.45", root=_zoo_copy(t, "nan"), verify=False),
     CheckpointError, "non-finite weights: 'conv1.weight'"),
    ("zoo-device-name", lambda t: zoo.load("mma-0.45", device="gpu0"), ValueError, "device must be"),
]
if not torch.cuda.is_available():
    LIBRARY.append(("fit-device-cuda", lambda t: _fit(device="cuda"), ValueError, "CUDA is not available"))


@pytest.mark.parametrize("call, error, text", [row[1:] for row in LIBRARY], ids=[row[0] for row in LIBRARY])
def test_library_rejects_bad_input(tmp_path, call, error, text):
    with pytest.raises(error) as info:
        call(tmp_path)
    message = str(info.value)
    assert text in message, message
    assert "weights_only=False" not in message  # never advise the unsafe load


# Command-line rows: argv (with {tmp} for the test's folder), text the one-line error must contain.
CLI = [
    ("train-steps-zero", ["train", "--preset", "mnist-standard", "--steps", "0"], "--steps"),
    ("train-val-size-negative", ["train", "--preset", "mnist-standard", "--val-size", "-1"], "--val-size"),
    ("train-unknown-preset", ["train", "--preset", "mnist-linf-mma-0.4"], "unknown preset"),
    ("train-out-is-file", ["train", "--preset", "mnist-standard", "--data", "offline", "--out", "{tmp}/garbage.pt"],
     "is an existing file"),
    ("train-resume-nothing", ["train", "--preset", "mnist-standard", "--data", "offline", "--out", "{tmp}/none",
                              "--resume"], "cannot resume"),
    ("train-out-holds-run", ["train", "--preset", "mnist-standard", "--data", "offline", "--out", "{tmp}/run"],
     "--resume"),
    ("train-bf16-standard", ["train", "--preset", "mnist-standard", "--precision", "bf16"], "--precision"),
    ("train-cifar-offline", ["train", "--preset", "cifar10-linf-mma-32", "--data", "offline"], "no offline copy"),
    ("evaluate-steps-zero", ["evaluate", "x.pt", "--norm", "linf", "--eps", "0.1", "--steps", "0"], "--steps"),
    ("evaluate-restarts-zero", ["evaluate", "x.pt", "--norm", "linf", "--eps", "0.1", "--restarts", "0"],
     "--restarts"),
    ("evaluate-step-fraction-zero", ["evaluate", "x.pt", "--norm", "linf", "--eps", "0.1", "--step-fraction", "0"],
     "--step-fraction"),
    ("evaluate-n-zero", ["evaluate", "x.pt", "--norm", "linf", "--eps", "0.1", "--n", "0"], "--n"),
    ("evaluate-eps-inf", ["evaluate", "x.pt", "--norm", "linf", "--eps", "inf"], "--eps"),
    ("evaluate-eps-nan", ["evaluate", "x.pt", "--norm", "linf", "--eps", "nan"], "--eps"),
    ("evaluate-norm", ["evaluate", "x.pt", "--norm", "l3", "--eps", "0.1"], "--norm"),
    ("evaluate-missing", ["evaluate", "{tmp}/missing.pt", "--norm", "linf", "--eps", "0.1"], "checkpoint not found"),
    ("evaluate-directory", ["evaluate", "{tmp}", "--norm", "linf", "--eps", "0.1"], "is a directory"),
    ("evaluate-bad-kwargs", ["evaluate", "{tmp}/bad_kwargs.pt", "--norm", "linf", "--eps", "0.1"], "model_kwargs"),
    ("evaluate-garbage", ["evaluate", "{tmp}/garbage.pt", "--norm", "linf", "--eps", "0.1"], "not a valid"),
    ("margins-refine", ["margins", "x.pt", "--norm", "linf", "--max-eps", "0.5", "--refine", "-1"], "--refine"),
    ("margins-max-eps-nan", ["margins", "x.pt", "--norm", "linf", "--max-eps", "nan"], "--max-eps"),
    ("margins-non-tensor", ["margins", "{tmp}/non_tensor.pt", "--norm", "linf", "--max-eps", "0.5"], "not tensors"),
    # issue 27
    ("evaluate-nan-weights", ["evaluate", "{tmp}/nan.pt", "--norm", "linf", "--eps", "0.1"],
     "non-finite weights: 'conv1.bias'"),
    ("margins-nan-weights", ["margins", "{tmp}/nan.pt", "--norm", "linf", "--max-eps", "0.5"],
     "non-finite weights: 'conv1.bias'"),
    ("reproduce-nan-weights", ["reproduce", "{tmp}/nan.pt", "--data", "offline"], "non-finite weights: 'conv1.bias'"),
    ("train-resume-nan-weights", ["train", "--preset", "mnist-standard", "--data", "offline", "--out", "{tmp}/nanrun",
                                  "--steps", "3", "--val-size", "8", "--resume"], "non-finite weights"),
    ("train-lock-is-a-directory", ["train", "--preset", "mnist-standard", "--data", "offline", "--out",
                                   "{tmp}/lockdir"], ".lock' is not a regular file"),
    ("train-out-under-a-file", ["train", "--preset", "mnist-standard", "--data", "offline", "--out",
                                "{tmp}/garbage.pt/sub"], "garbage.pt' is a file, not a folder"),
    ("train-nan-policy", ["train", "--preset", "mnist-standard", "--nan-policy", "ignore"], "--nan-policy"),
    ("download-cache-dir-is-a-file", ["download", "checkpoint", "mnist-Linf-MMA-0.45-sd0", "--cache-dir",
                                      "{tmp}/garbage.pt"], "is an existing file, not a folder"),
    ("evaluate-json-is-a-directory", ["evaluate", "{tmp}/nan.pt", "--norm", "linf", "--eps", "0.1", "--json", "{tmp}"],
     "--json"),
]
if not torch.cuda.is_available():
    CLI.append(("train-device-cuda", ["train", "--preset", "mnist-standard", "--data", "offline", "--device", "cuda",
                                      "--out", "{tmp}/gpu"], "CUDA is not available"))


@pytest.mark.parametrize("argv, text", [row[1:] for row in CLI], ids=[row[0] for row in CLI])
def test_command_line_rejects_bad_input_in_one_line(tmp_path, capsys, argv, text):
    _garbage_file(tmp_path)
    _bad_kwargs_checkpoint(tmp_path)
    _non_tensor_checkpoint(tmp_path)
    _nan_checkpoint(tmp_path)
    _lock_directory(tmp_path)
    if "{tmp}/run" in argv:
        _run_folder(tmp_path)
    if "{tmp}/nanrun" in argv:
        nanrun = tmp_path / "nanrun"
        assert main(["train", "--preset", "mnist-standard", "--data", "offline", "--out", str(nanrun), "--steps", "2",
                     "--val-size", "8", "--no-progress", "--device", "cpu"]) == 0
        ck = read_checkpoint(nanrun / "last.pt")
        next(iter(ck["model"].values())).view(-1)[0] = NAN
        save_checkpoint(nanrun / "last.pt", ck)
        capsys.readouterr()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors: usage + one error line
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    last = err.splitlines()[-1]
    assert text in last, err
    assert "Traceback" not in err
    assert not (tmp_path / "gpu").exists()  # nothing written on failure


def test_download_without_network_is_one_line(tmp_path, capsys, monkeypatch):
    import urllib.error

    import torchvision.datasets

    class Offline:
        def __init__(self, *args, **kwargs):
            raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    for name in ("cifar10", "mnist"):
        assert main(["download", name, "--root", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "could not be downloaded" in err and "Traceback" not in err, err


def test_evaluate_lists_only_the_losses_it_ran(tmp_path, capsys):
    model = build_model("small_cnn", width=2, hidden=4)
    path = save_checkpoint(tmp_path / "m.pt", {"model_name": "small_cnn", "model_kwargs": {"width": 2, "hidden": 4},
                                               "model": model.state_dict(), "data": "mnist_offline/train"})
    assert main(["evaluate", str(path), "--norm", "linf", "--eps", "0.1", "--restarts", "1", "--steps", "2",
                 "--n", "4", "--no-progress", "--device", "cpu"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("PGD")][0]
    assert "1 ce" in line and "cw" not in line, line


def test_no_traceback_from_a_subprocess_either(tmp_path):
    """As a user runs it: the installed command, a user error, one line on stderr, exit 2."""
    proc = subprocess.run([sys.executable, "-m", "mma_edu.cli", "evaluate", str(tmp_path), "--norm", "linf",
                           "--eps", "0.1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "is a directory" in proc.stderr, proc.stderr


def test_val_size_zero_claims_no_best(tmp_path, capsys):
    out = tmp_path / "noval"
    assert main(["train", "--preset", "mnist-standard", "--data", "offline", "--steps", "2", "--val-size", "0",
                 "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "no best.pt" in text and "best.pt (" not in text
    assert not (out / "best.pt").exists()
    assert sorted(p.name for p in out.iterdir()) == ["history.json", "last.pt"]  # and the lock released


def test_list_marks_a_garbage_cached_file_as_corrupt_not_downloaded(tmp_path, capsys):
    """Issue 27: a 7-byte garbage file in the cache was listed [downloaded]."""
    from mma_edu import released

    name = "mnist-Linf-MMA-0.45-sd0"
    path = released.cached_path(name, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    assert main(["download", "checkpoint", "--list", "--cache-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(ln for ln in lines if ln.startswith(name + " "))
    assert "[corrupt: 7 bytes that fail the checksum" in line and "[downloaded]" not in line, line
    assert not any("[downloaded]" in ln for ln in lines)
