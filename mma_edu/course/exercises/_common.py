"""What every notebook's checks share: :class:`ExerciseError`, the pending / correct / wrong replies,
and the parsing of numbers and vectors into tensors (with a message naming the bad value)."""

from __future__ import annotations

import math
import random
import sys
from typing import Any

import torch
from torch import Tensor


class ExerciseError(AssertionError):
    """A wrong answer: the message says which value is wrong and, where it can, why."""


def _pending(name: str) -> None:
    print(f"{name}: not attempted yet (the answer is None) — fill it in and rerun this cell.")
    return None


def graded(result: bool | None) -> None:
    """A graded test cell's verdict on a check's result: nothing for a right answer, a zero for a pending one.

    A wrong answer has already raised :class:`ExerciseError` inside the check. A pending one (``None``) prints
    a note to stderr, which nbgrader's autograder counts as a failed test (0 points) while *Run All* carries on.
    """
    if result is None:
        print("not attempted yet: this test gives 0 points until the answer above is filled in.", file=sys.stderr)


def hidden_seed() -> int:
    """A fresh seed for a hidden test's randomized case, printed so that a grade can be reproduced."""
    seed = random.SystemRandom().randrange(1, 2**31)
    print(f"randomized case, seed {seed}")
    return seed


def _correct(message: str) -> bool:
    print(f"correct: {message}")
    return True


def _wrong(message: str) -> None:
    raise ExerciseError(message)


_NAME = {"l1": "ℓ1", "l2": "ℓ2", "linf": "ℓ∞"}


def _close(a: float, b: float, rel: float = 2e-3, abs_: float = 1e-3) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=abs_)


def _number(value: Any, name: str) -> float:
    if torch.is_tensor(value):
        if value.numel() != 1:
            _wrong(f"{name} should be one number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    try:
        out = float(value)
    except (TypeError, ValueError):
        _wrong(f"{name} should be a number, got {type(value).__name__}: {value!r}")
    if not math.isfinite(out):
        _wrong(f"{name} should be a finite number, got {out}")
    return out


def _vector(value: Any, n: int, name: str) -> Tensor:
    try:
        t = torch.as_tensor(value, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        _wrong(f"{name} should be a list or tensor of {n} numbers, got {type(value).__name__}")
    if t.numel() != n:
        _wrong(f"{name} should have {n} values (one per example), got {t.numel()}")
    return t


def _fmt(t: Tensor) -> list[float]:
    return [round(v, 4) for v in t.tolist()]


def _first_mismatch(mine: Tensor, truth: Tensor, rtol: float, atol: float) -> int | None:
    bad = ~torch.isclose(mine, truth, rtol=rtol, atol=atol)
    return int(bad.nonzero()[0]) if bad.any() else None


def _matches(mine: Tensor, variant: Tensor, rtol: float, atol: float) -> bool:
    return mine.shape == variant.shape and bool(torch.isclose(mine, variant, rtol=rtol, atol=atol).all())
