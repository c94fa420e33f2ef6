"""Notebook 3 (toy decision boundaries): MMA's objective, by hand and as code."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from ._common import _close, _correct, _number, _pending, _wrong


# Notebook 3's batch: CE at the training point x + ε̂u and at the clean x, ε̂, S⁺ membership; d_max 0.5, c 1/3.
MMA_BATCH = dict(
    ce_adv=(0.9, 0.3, 1.5, 0.7),
    ce_clean=(0.1, 0.05, 1.5, 0.2),
    eps_hat=(0.2, 0.6, 0.0, 0.4),
    positive=(True, True, False, True),
    d_max=0.5,
    clean_weight=1 / 3,
)


def mma_objective(ce_adv: Tensor, ce_clean: Tensor, eps_hat: Tensor, positive: Tensor, d_max: float,
                  clean_weight: float) -> Tensor:
    """MMA's objective (§4 of the paper notes), as :meth:`mma_edu.train.MMA.batch_loss` computes it.

    L = (1 − c)·(1/n)[Σ_{i∈S⁺, ε̂_i<d_max} CE(x_i + ε̂_i u_i) + Σ_{j∈S⁻} CE(x_j)] + c·mean_k CE(x_k);
    for j ∈ S⁻ the training point is x_j itself, so ``ce_adv[j]`` is its clean CE. All (n,) -> scalar.
    """
    ce_adv, ce_clean, eps_hat = (torch.as_tensor(v, dtype=torch.float64) for v in (ce_adv, ce_clean, eps_hat))
    positive = torch.as_tensor(positive, dtype=torch.bool)
    active = ~positive | (eps_hat < d_max)
    n = ce_adv.numel()
    return (1 - clean_weight) * (ce_adv * active).sum() / n + clean_weight * ce_clean.mean()


def _mma_variants(batch: dict) -> dict[str, float]:
    ce_adv, ce_clean, eps_hat = (torch.as_tensor(batch[k], dtype=torch.float64)
                                 for k in ("ce_adv", "ce_clean", "eps_hat"))
    pos = torch.as_tensor(batch["positive"], dtype=torch.bool)
    d_max, c, n = batch["d_max"], batch["clean_weight"], ce_adv.numel()
    active = ~pos | (eps_hat < d_max)
    mma = (ce_adv * active).sum() / n
    clean = ce_clean.mean()
    return {
        "no hinge: an example in S⁺ with eps_hat ≥ d_max contributes nothing to L_MMA (it is far enough already)":
            ((1 - c) * ce_adv.mean() + c * clean).item(),
        "L_MMA divides by the whole batch size n, hinge-dropped examples included, not by the number of "
        "active examples": ((1 - c) * (ce_adv * active).sum() / active.sum() + c * clean).item(),
        "that is OMMA (no clean loss): MMA mixes in c = 1/3 of the clean cross-entropy": mma.item(),
        "the weights are swapped: L = (1 − c)·L_MMA + c·CE_clean with c = 1/3": (c * mma + (1 - c) * clean).item(),
        "the misclassified examples (S⁻) are trained on their clean loss inside L_MMA, not left out":
            ((1 - c) * (ce_adv * (pos & (eps_hat < d_max))).sum() / n + c * clean).item(),
        "the hinge keeps the examples BELOW d_max (eps_hat < d_max) and drops those above":
            ((1 - c) * (ce_adv * (~pos | (eps_hat >= d_max))).sum() / n + c * clean).item(),
    }


def check_mma_loss_by_hand(value: float | None) -> bool | None:
    """Notebook 3, exercise 1: the MMA objective of the four-example batch :data:`MMA_BATCH`, by hand."""
    if value is None:
        return _pending("check_mma_loss_by_hand")
    value = _number(value, "the loss")
    truth = mma_objective(**MMA_BATCH).item()
    if _close(value, truth, rel=1e-3, abs_=5e-4):
        return _correct(f"L = (2/3)·(0.9 + 1.5 + 0.7)/4 + (1/3)·(0.1 + 0.05 + 1.5 + 0.2)/4 = {truth:.4f}.")
    for hint, v in _mma_variants(MMA_BATCH).items():
        if _close(value, v, rel=1e-3, abs_=5e-4):
            _wrong(f"your loss is {value:.4f}, MMA's objective gives {truth:.4f}: {hint}.")
    _wrong(f"your loss is {value:.4f}, MMA's objective gives {truth:.4f}. Go through the four examples: which are "
           "in S⁺, which of those have eps_hat < d_max, and which CE each contributes.")


def check_mma_loss(fn: Callable | None, seed: int = 0) -> bool | None:
    """``fn(ce_adv, ce_clean, eps_hat, positive, d_max, clean_weight) -> scalar``: checked on random batches
    (from ``seed``)."""
    if fn is None:
        return _pending("check_mma_loss")
    gen = torch.Generator().manual_seed(seed)
    for trial in range(5):
        n = 8
        batch = dict(ce_adv=torch.rand(n, generator=gen, dtype=torch.float64) * 2,
                     ce_clean=torch.rand(n, generator=gen, dtype=torch.float64),
                     eps_hat=torch.rand(n, generator=gen, dtype=torch.float64) * 0.6,
                     positive=torch.rand(n, generator=gen) < 0.7, d_max=0.4,
                     clean_weight=(1 / 3, 0.0, 0.5, 1 / 3, 1 / 3)[trial])
        batch["positive"][:2] = torch.tensor([True, False])
        batch["eps_hat"][:2] = torch.tensor([0.55, 0.0], dtype=torch.float64)  # one hinge-dropped, one in S⁻
        batch["eps_hat"][~batch["positive"]] = 0.0
        batch["ce_adv"][~batch["positive"]] = batch["ce_clean"][~batch["positive"]]
        out = fn(*(batch[k].clone() if torch.is_tensor(batch[k]) else batch[k]
                   for k in ("ce_adv", "ce_clean", "eps_hat", "positive", "d_max", "clean_weight")))
        if out is None:
            return _pending("check_mma_loss")
        value = _number(out, "the loss")
        truth = mma_objective(**batch).item()
        if math.isclose(value, truth, rel_tol=1e-6, abs_tol=1e-9):
            continue
        msg = (f"batch {trial} (clean_weight {batch['clean_weight']:.3g}): your loss is {value:.6f}, "
               f"MMA's is {truth:.6f}")
        for hint, v in _mma_variants(batch).items():
            if math.isclose(value, v, rel_tol=1e-6, abs_tol=1e-9):
                _wrong(f"{msg}: {hint}.")
        _wrong(f"{msg}.")
    return _correct("your MMA objective equals MMA.batch_loss's on 5 random batches (hinge, S⁻, clean mix, OMMA).")
