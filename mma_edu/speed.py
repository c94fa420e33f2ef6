"""Speed switches that leave results unchanged or within a measured tolerance, all in one place.

- **Channels-last layout** for convolutional models (``fit(channels_last=...)``,
  ``robust_accuracy(channels_last=...)``; on by default for conv nets on 4-D
  data): the same arithmetic in another
  memory order, which oneDNN (CPU) and cuDNN (GPU) run faster. Margins agree
  with the default layout to float rounding (``bench/mma_step.py`` prints the
  largest difference).
- **bf16 attack precision** (``MMA(..., precision="bf16")``,
  ``anpgd(..., precision="bf16")``): AN-PGD's PGD iterations — which only pick
  the search direction — run under bfloat16 autocast; the bisection that
  measures the margin, and the training loss, stay in float32. Off by default:
  per-example margins move by up to a few percent (``bench/mma_step.py``).

The unoptimized paths stay one flag away (``channels_last=False``,
``precision="fp32"``) so the bench can time both side by side.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator

import torch
from torch import Tensor, nn

PRECISIONS = ("fp32", "bf16")


def has_conv(model: nn.Module) -> bool:
    """Whether the model has 2-D convolutions (where channels-last pays)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def use_channels_last(model: nn.Module, channels_last: bool | None, x: Tensor) -> bool:
    """Resolve ``channels_last=None`` (auto): on for conv nets fed 4-D batches (N, C, H, W)."""
    if channels_last is None:
        return x.dim() == 4 and has_conv(model)
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be True, False or None (auto), got {channels_last!r}")
    return channels_last


def as_layout(x: Tensor, channels_last: bool) -> Tensor:
    """x (N, C, H, W) in channels-last memory order when asked (a no-op for other shapes)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


@contextmanager
def channels_last_model(model: nn.Module, enabled: bool) -> Iterator[nn.Module]:
    """Run a block with the model's weights in channels-last layout, restoring the default layout after."""
    if not enabled:
        yield model
        return
    model.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        model.to(memory_format=torch.contiguous_format)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def attack_autocast(precision: str, device: torch.device) -> ContextManager:
    """Context for an attack's gradient passes: bfloat16 autocast for "bf16", nothing for "fp32"."""
    if check_precision(precision) == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
