"""What one training step costs, method against method, on the same model and batch (notebook 05).

    cost = step_cost(model, {"PGD-AT": PGDAT(0.3, "linf", steps=10), "MMA": MMA(0.45, "linf", steps=10)}, x, y)
    cost["MMA"].seconds / cost["PGD-AT"].seconds, cost["MMA"].forwards

Two measures: **forward passes** of the model per step (counted by a hook: exact, the same on every machine —
a backward pass costs about two forwards more) and **seconds** per step (median of ``repeats``; the methods are
timed in turn, round by round, so a busy machine slows them alike and the *ratio* stays meaningful).
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn


@dataclass
class StepCost:
    """One method's training step: model forward passes (``forwards``), input-gradient passes of its attack
    (``backwards``: backward passes through the model, the optimizer's one included) and median ``seconds``."""

    forwards: int
    backwards: int
    seconds: float


def _one_step(model: nn.Module, method, x: Tensor, y: Tensor, opt: torch.optim.Optimizer) -> None:
    model.train()
    loss, _ = method.batch_loss(model, x, y, torch.arange(len(x)))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def step_cost(model: nn.Module, methods: Mapping[str, object], x: Tensor, y: Tensor, *, repeats: int = 5,
              lr: float = 1e-3) -> dict[str, StepCost]:
    """The cost of one training step of each method on ``model`` and the batch (x (N, ...), y (N,)).

    Each method trains its own copy of ``model`` (the original is left as it was), with Adam at ``lr``; one
    untimed step first (MMA's margin memory starts at mineps), then ``repeats`` timed rounds.
    """
    if not methods:
        raise ValueError("methods must name at least one training method")
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x and y must hold the same number (> 0) of examples, got {tuple(x.shape)} and {tuple(y.shape)}")
    runs = {}
    for name, method in methods.items():
        m = copy.deepcopy(model)
        if hasattr(method, "setup"):
            method.setup(len(x), x.device)
        runs[name] = (m, method, torch.optim.Adam(m.parameters(), lr=lr))
        _one_step(m, method, x, y, runs[name][2])  # warm-up, untimed
    counts = {}
    for name, (m, method, opt) in runs.items():  # count one step's passes with hooks
        n = {"f": 0, "b": 0}
        hf = m.register_forward_hook(lambda *_: n.__setitem__("f", n["f"] + 1))
        hb = m.register_full_backward_hook(lambda *_: n.__setitem__("b", n["b"] + 1))
        try:
            with warnings.catch_warnings():  # the hook fires on passes whose inputs need no gradient: that is fine
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                _one_step(m, method, x, y, opt)
        finally:
            hf.remove()
            hb.remove()
        counts[name] = (n["f"], n["b"])
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # round by round: each method timed in turn
        for name, (m, method, opt) in runs.items():
            start = time.perf_counter()
            _one_step(m, method, x, y, opt)
            seconds[name].append(time.perf_counter() - start)
    return {name: StepCost(*counts[name], statistics.median(seconds[name])) for name in runs}
