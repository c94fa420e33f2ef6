"""Notebook 7 (evaluation): AvgAcc / AvgRobAcc, and the worst-case robust-accuracy curve."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

from ... import paper
from ._common import _close, _correct, _number, _pending, _wrong


PAPER_MNIST_MMA_ROW = paper.MNIST_LINF["mma-0.45"]  # clean, then ε = 0.1, 0.2, 0.3, 0.4 (%, the paper's MMA-0.45)


def check_avg_accuracies(avg_acc: float | None, avg_rob_acc: float | None,
                         row: Sequence[float] = PAPER_MNIST_MMA_ROW) -> bool | None:
    """AvgAcc and AvgRobAcc of a row (clean accuracy first, then one per ε), in the row's units."""
    if avg_acc is None or avg_rob_acc is None:
        return _pending("check_avg_accuracies")
    avg_acc, avg_rob_acc = _number(avg_acc, "avg_acc"), _number(avg_rob_acc, "avg_rob_acc")
    clean, *rob = (float(v) for v in row)
    true_acc, true_rob = (clean + sum(rob)) / (len(rob) + 1), sum(rob) / len(rob)
    ok = lambda a, b: _close(a, b, rel=1e-3, abs_=0.06)  # noqa: E731  (the paper rounds to 0.1)
    if ok(avg_acc, true_acc) and ok(avg_rob_acc, true_rob):
        return _correct(f"AvgAcc {true_acc:.2f}, AvgRobAcc {true_rob:.2f}.")
    if ok(avg_acc, true_rob) and ok(avg_rob_acc, true_acc):
        _wrong("swapped: AvgAcc includes the clean accuracy (K + 1 values), AvgRobAcc only the K robust ones.")
    if not ok(avg_rob_acc, true_rob):
        hint = ("you included the clean accuracy; AvgRobAcc averages only the K robust accuracies"
                if ok(avg_rob_acc, true_acc) else
                f"you divided by {len(rob) + 1}; there are K = {len(rob)} robust accuracies"
                if ok(avg_rob_acc, sum(rob) / (len(rob) + 1)) else f"the mean of {rob}")
        _wrong(f"avg_rob_acc = {avg_rob_acc:.2f}, should be {true_rob:.2f}: {hint}.")
    hint = ("you left out the clean accuracy; AvgAcc averages it with the K robust ones"
            if ok(avg_acc, true_rob) else
            f"you divided by {len(rob)}; there are K + 1 = {len(rob) + 1} values"
            if ok(avg_acc, (clean + sum(rob)) / len(rob)) else f"the mean of {[clean] + rob}")
    _wrong(f"avg_acc = {avg_acc:.2f}, should be {true_acc:.2f}: {hint}.")


def _robust_curve(clean: Tensor, correct: Tensor) -> list[float]:
    survived = clean.clone()
    out = []
    for k in range(correct.shape[1]):
        survived = survived & correct[:, k].all(0)
        out.append(survived.float().mean().item())
    return out


def check_robust_curve(fn: Callable | None, seed: int = 0) -> bool | None:
    """``fn(clean (N,) bool, correct (R, K, N) bool) -> K accuracies``: the paper's worst case over restarts.

    ``correct[r, k, n]``: restart r at the k-th (increasing) ε left example n classified correctly. An example
    is robust at ε_k only if it is clean-correct, every restart at ε_k failed, and it was robust at every
    smaller ε. The random part of the case comes from ``seed``.
    """
    if fn is None:
        return _pending("check_robust_curve")
    gen = torch.Generator().manual_seed(seed)
    clean = torch.rand(40, generator=gen) < 0.9
    correct = torch.rand(3, 4, 40, generator=gen) < torch.tensor([0.97, 0.9, 0.8, 0.7])[None, :, None]
    correct[:, :, 0] = True  # a clean mistake that no attack needs to break
    clean[0] = False
    correct[:, 1, 1] = False  # broken at ε_1, then (by chance of the restarts) "correct" at ε_2, ε_3
    correct[:, 2:, 1] = True
    clean[1] = True
    out = fn(clean.clone(), correct.clone())
    if out is None:
        return _pending("check_robust_curve")
    mine = [float(v) for v in (out.tolist() if torch.is_tensor(out) else out)]
    truth = _robust_curve(clean, correct)
    if len(mine) != len(truth):
        _wrong(f"return one accuracy per ε: {len(truth)} values, got {len(mine)}")
    if all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(mine, truth)):
        return _correct(f"robust accuracy per ε {[round(v, 3) for v in truth]}: worst case over restarts, "
                        "clean mistakes and smaller-ε breaks carried along.")
    variants = {
        "you averaged over restarts; an example is robust only if EVERY restart fails (take the worst case, "
        "all over r)": [(clean & correct[:, k].float().mean(0).ge(0.5)).float().mean().item()
                        for k in range(correct.shape[1])],
        "an example broken by ANY restart is not robust: use all over restarts, not any":
            [(clean & correct[:, k].any(0)).float().mean().item() for k in range(correct.shape[1])],
        "an example misclassified without attack is not robust at any ε: start from the clean mask":
            _robust_curve(torch.ones_like(clean), correct),
        "an example broken at a smaller ε stays broken (the same perturbation lies in the larger ball): carry "
        "the survivors from one ε to the next": [(clean & correct[:, k].all(0)).float().mean().item()
                                                for k in range(correct.shape[1])],
    }
    for hint, v in variants.items():
        if all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(mine, v)):
            _wrong(f"you give {[round(a, 3) for a in mine]}, the protocol {[round(b, 3) for b in truth]}: {hint}.")
    k = next(i for i, (a, b) in enumerate(zip(mine, truth)) if not math.isclose(a, b, abs_tol=1e-6))
    _wrong(f"at the ε number {k} you give {mine[k]:.3f}, the protocol {truth[k]:.3f}.")
