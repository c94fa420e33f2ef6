"""Optimizers and learning-rate schedules of the paper (§5 of the notes), by step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch


@dataclass
class PiecewiseConstant:
    """Learning rate ``values[k]`` from step ``boundaries[k-1]`` on (k = 0 before the first boundary).

    CIFAR10 in the paper: PiecewiseConstant([20000, 30000, 40000], [0.3, 0.09, 0.03, 0.009]).
    """

    boundaries: list[int]
    values: list[float]

    def __post_init__(self):
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError("values must have one more entry than boundaries")
        if list(self.boundaries) != sorted(self.boundaries):
            raise ValueError("boundaries must be increasing")

    def __call__(self, step: int) -> float:
        k = sum(step >= b for b in self.boundaries)
        return self.values[k]


OPTIMIZERS = ("adam", "sgd")


def make_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    lr: float,
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Adam (MNIST in the paper) or SGD with momentum (CIFAR10)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS!r}, got {name!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
