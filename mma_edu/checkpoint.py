"""Checkpoints: atomic writes, safe loads (``weights_only=True``), the authors' format too.

Two formats are read:

- the authors' released files: ``{'epoch': int, 'model': state_dict}``
  (``model_best.pt``), whose keys our models share;
- ours: the same two keys plus ``'format': 'mma-edu/1'``, ``'model_name'``,
  ``'model_kwargs'`` and whatever training state the trainer stores.

A bare state_dict is accepted as well.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .files import write_serialized
from .models import build_model

FORMAT = "mma-edu/1"


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the model."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` with torch.save to ``path`` atomically.

    The data goes to a temporary file in the same folder, is flushed to disk,
    and only then renamed over ``path``: a crash mid-write leaves the previous
    checkpoint intact, never a truncated one.
    SIGINT and SIGTERM arriving meanwhile are held until the file is in place
    (:func:`mma_edu.interrupts.deferred_signals`), so Ctrl-C never loses a save.
    The file is serialized in memory first, so a full disk is an
    :class:`~mma_edu.files.OutputPathError` ("cannot write PATH: no space left on
    device; the previous file is kept"), not an error from inside torch.save.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"cannot write checkpoint {path}: it is a directory")
    return write_serialized(path, lambda f: torch.save(state, f))


def first_nonfinite(state_dict: dict[str, Any]) -> str | None:
    """A description of the first floating-point tensor holding NaN or inf (None when all are finite)."""
    for name, t in state_dict.items():
        if torch.is_tensor(t) and (t.is_floating_point() or t.is_complex()):
            bad = ~torch.isfinite(t)
            if bool(bad.any()):
                n_nan = int(torch.isnan(t).sum())
                what = ", ".join(w for w in (f"{n_nan:,} NaN" if n_nan else "",
                                             f"{int(bad.sum()) - n_nan:,} inf" if int(bad.sum()) > n_nan else "") if w)
                return f"{name!r} holds {what} of {t.numel():,} values"
    return None


def check_finite(state_dict: dict[str, Any], where: str) -> None:
    """Refuse weights with NaN or inf (a diverged run, a damaged file): they evaluate to accuracy 0 and
    margins 0 without any error. Raises :class:`CheckpointError` naming the first bad tensor."""
    problem = first_nonfinite(state_dict)
    if problem is not None:
        raise CheckpointError(f"{where}: non-finite weights: {problem} (a diverged run or a damaged file); "
                              "these weights cannot be evaluated or trained on")


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns: the model (weights loaded) and the raw dict."""

    model: nn.Module
    epoch: int | None
    state: dict[str, Any] = field(repr=False)

    @property
    def model_name(self) -> str | None:
        return self.state.get("model_name")

    @property
    def data_name(self) -> str | None:
        return self.state.get("data")


def _guess_model_name(sd: dict[str, Any]) -> str:
    if "1.conv1.weight" in sd:
        return "cifar10_wrn28_4"
    if "conv1.weight" in sd and "linear2.weight" in sd:
        return "lenet5_madry"
    raise CheckpointError(
        "cannot tell which model this state_dict belongs to; pass model=... "
        f"(first keys: {list(sd)[:4]})"
    )


def _check_fits(model: nn.Module, sd: dict[str, Any], path: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and hasattr(sd[k], "shape") and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        lines = [f"checkpoint {path} does not fit {type(model).__name__}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {missing[:5]}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {unexpected[:5]}")
        if wrong:
            lines.append(f"  shape mismatches ({len(wrong)}): {wrong[:5]}")
        raise CheckpointError("\n".join(lines))


def _first_reason(err: Exception) -> str:
    """Why torch.load failed, without its advice to retry with weights_only=False (which can run any code)."""
    text = str(err)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe:
        return (f"it holds a Python object of type {unsafe.group(1)}; only tensors and plain data are loaded, "
                "for safety")
    if "WeightsUnpickler" in text or "Unsupported operand" in text:
        return "it is not a valid torch.save file (corrupt, truncated or another format)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln]
    return (lines[0] if lines else type(err).__name__)[:300]


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load the raw checkpoint dict safely (tensors and plain Python types only)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; give the .pt file inside it (e.g. {path / 'best.pt'})")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path} safely (weights_only=True): {_first_reason(err)}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Load a checkpoint into ``model`` (or into the model it names or whose keys it has).

    Reads the authors' ``{'epoch', 'model'}`` files, ours, and bare state_dicts,
    always with ``weights_only=True``. Raises :class:`CheckpointError` naming
    the missing, unexpected or mis-shaped keys when the architecture differs,
    and the first tensor holding NaN or inf (parameters and buffers).
    """
    state = read_checkpoint(path, map_location)
    sd = state["model"] if isinstance(state.get("model"), dict) else state
    if sd is state:  # bare state_dict
        state = {"model": sd}
    bad = [k for k, v in sd.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f"checkpoint {path}: the state dict must map names to tensors; "
                              f"{len(bad)} value(s) are not tensors, e.g. {bad[0]!r}: {type(sd[bad[0]]).__name__}")
    if model is None:
        name = state.get("model_name") or _guess_model_name(sd)
        kwargs = state.get("model_kwargs") or {}
        if not isinstance(kwargs, dict):
            raise CheckpointError(f"checkpoint {path}: model_kwargs must be a dict, got {type(kwargs).__name__}")
        try:
            model = build_model(name, **kwargs)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"checkpoint {path}: cannot build model {name!r} with model_kwargs {kwargs!r}: "
                                  f"{err}") from err
    _check_fits(model, sd, str(path))
    check_finite(sd, f"checkpoint {path}")
    model.load_state_dict(sd)
    return Checkpoint(model=model, epoch=state.get("epoch"), state=state)
