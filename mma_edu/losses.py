"""Per-example losses on logits, named as in the paper (§1–§2 of the notes).

All functions take logits (N, C) and labels (N,) and return (N,): attacks sum
them (so each example's gradient does not depend on the batch), training
averages them.

Sign convention: the logit margin L_LM = max_{j≠y} f_j − f_y is < 0 exactly
when the example is classified correctly, ≥ 0 when it is not.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]

# CW loss confidence used by the paper's evaluation: max(L_LM + 50, 0).
CW_CONFIDENCE = 50.0


def _others(logits: Tensor, y: Tensor) -> Tensor:
    """Logits with the true class masked to -inf: (N, C)."""
    mask = F.one_hot(y, logits.shape[1]).bool()
    return logits.masked_fill(mask, float("-inf"))


def _true_logit(logits: Tensor, y: Tensor) -> Tensor:
    return logits.gather(1, y[:, None]).squeeze(1)


def logit_margin(logits: Tensor, y: Tensor) -> Tensor:
    """L_LM = max_{j≠y} f_j − f_y: (N, C), (N,) -> (N,). Negative means correct."""
    return _others(logits, y).amax(dim=1) - _true_logit(logits, y)


def soft_logit_margin(logits: Tensor, y: Tensor) -> Tensor:
    """L_SLM = logsumexp_{j≠y} f_j − f_y ≥ L_LM; negative exactly when p_y > 1/2."""
    return torch.logsumexp(_others(logits, y), dim=1) - _true_logit(logits, y)


def cw_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Carlini–Wagner margin loss of the evaluation protocol: max(L_LM + 50, 0)."""
    return torch.clamp(logit_margin(logits, y) + CW_CONFIDENCE, min=0)


def cross_entropy(logits: Tensor, y: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Per-example cross-entropy: (N, C), (N,) -> (N,).

    ``label_smoothing`` s trains on targets 1 − s + s/C on the label and s/C elsewhere (PGDLS).
    """
    return F.cross_entropy(logits, y, reduction="none", label_smoothing=label_smoothing)


def targeted_margin(target: Tensor) -> LossFn:
    """The loss f_t − f_y toward the classes ``target`` (N,): ≥ 0 once class t beats the label.

    The loss of a targeted (MultiTargeted) PGD: (N, C), (N,) -> (N,).
    """

    def loss(logits: Tensor, y: Tensor) -> Tensor:
        return _true_logit(logits, target) - _true_logit(logits, y)

    return loss


def rivals(logits: Tensor, y: Tensor, k: int) -> Tensor:
    """The ``k`` classes other than y with the largest logits, most likely first: (N, C), (N,) -> (N, k)."""
    return _others(logits, y).topk(k, dim=1).indices


LOSSES: dict[str, LossFn] = {
    "ce": cross_entropy,
    "cw": cw_loss,
    "lm": logit_margin,
    "slm": soft_logit_margin,
}


def get_loss(name: str, arg: str = "loss") -> LossFn:
    """Look a loss up by its short name, with a clear error naming ``arg``."""
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"{arg} must be one of {tuple(LOSSES)!r}, got {name!r}") from None


def is_correct(logits: Tensor, y: Tensor) -> Tensor:
    """Strictly correct predictions, L_LM < 0: (N, C), (N,) -> (N,) bool.

    Stricter than ``argmax == y`` only on exact ties, which count as errors,
    so robust accuracy never rests on a tie.
    """
    return logit_margin(logits, y) < 0


# How many float epsilons (relative to the largest logit) rounding may move a
# logit between two forward passes of the same input: another batch size, or
# float64 instead of float32. Measured well below this on the zoo's models
# (see tests/test_margins.py); the shared safety slack of every verified point.
ROUNDING_ULPS = 16


def rounding_slack(logits: Tensor) -> Tensor:
    """How far rounding can move each row's logits between two forward passes: (N, C) -> (N,).

    Why it matters: the same input in another batch (or in float64) rounds
    differently; a float32 logit moves by ~1e-7 relative. A point exactly on
    the boundary (L_LM = 0, or +2e-7) would then be misclassified in one
    forward pass and not in the next.
    """
    return ROUNDING_ULPS * torch.finfo(logits.dtype).eps * (1 + logits.detach().abs().amax(dim=1))


def beyond_rounding(value: Tensor, logits: Tensor) -> Tensor:
    """``value`` (N,) (a logit margin, or the soft one) > the rounding slack of ``logits`` (N, C): (N,) bool.

    The one test of "this point really changes the decision" behind every
    adversarial point the attacks and margin estimators report: it holds in
    any other forward pass of the point (single example, other batch, float64).
    """
    return value > rounding_slack(logits)


def decides_otherwise(logits: Tensor, y: Tensor) -> Tensor:
    """Misclassified by more than rounding could undo, L_LM > slack: (N, C), (N,) -> (N,) bool."""
    return beyond_rounding(logit_margin(logits, y), logits)
