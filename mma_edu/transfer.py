"""Transfer attacks: adversarial examples found on one model (the source), evaluated on another (the target).

The paper's evaluation adds them to whitebox PGD: a model whose own gradients are useless (gradient masking)
can still fall to perturbations crafted on a model whose gradients work. A transfer attack is weaker than a
working whitebox attack on the target, so it is a *check*: if it breaks more than the whitebox attack did, the
whitebox numbers were not to be trusted.

    r = transfer_accuracy(zoo.load("pgd-0.3"), zoo.load("mma-0.45"), test, norm="linf", eps_list=[0.1, 0.2])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .attacks import pgd_with_margin
from .attacks._common import Clip
from .data import ArrayDataset
from .evaluate import RobustAccuracy, check_attack_args
from .losses import is_correct


@torch.no_grad()
def _correct(model: nn.Module, x, y):
    return is_correct(model(x), y)


def transfer_accuracy(source: nn.Module, target: nn.Module, data: ArrayDataset, *, norm: str,
                      eps_list: Sequence[float], steps: int = 100, restarts: int = 1,
                      losses: Sequence[str] = ("ce", "cw"), step_fraction: float | None = None,
                      clip: Clip = (0.0, 1.0), batch_size: int = 500, device: str | torch.device = "cpu",
                      seed: int = 0) -> RobustAccuracy:
    """Robust accuracy of ``target`` against PGD perturbations crafted on ``source`` (whitebox on the source).

    At each ε every example is attacked on the source with the protocol of
    :func:`~mma_edu.evaluate.robust_accuracy` (same steps, restarts, losses, step size, random starts for the same
    seed); the target then classifies the source's adversarial points. An example counts as robust at ε when the
    target classifies it correctly clean and at the source's points of this ε and every smaller one.
    With ``source is target`` the result is whitebox PGD's (the tests check it example by example).

    Returns a :class:`~mma_edu.evaluate.RobustAccuracy` of the target; its ``protocol`` says "transfer".
    """
    eps, plan, step_fraction = check_attack_args(data, norm, eps_list, restarts, losses, steps, batch_size,
                                                 step_fraction)
    dev = torch.device(device)
    n = len(data)
    robust = torch.zeros(n, len(eps), dtype=torch.bool)
    clean = torch.zeros(n, dtype=torch.bool)
    modes = source.training, target.training
    source.to(dev).eval()
    target.to(dev).eval()
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            for i in range(0, n, batch_size):
                x, y = data.x[i : i + batch_size].to(dev), data.y[i : i + batch_size].to(dev)
                alive = _correct(target, x, y)
                clean[i : i + len(x)] = alive.cpu()
                for k, e in enumerate(eps):
                    # Every example is attacked on the source (one it classifies wrongly is its own clean point).
                    x_adv, _, _ = pgd_with_margin(source, x, y, e, norm=norm, steps=steps, step_size=step_fraction * e,
                                                  loss=plan, restarts=len(plan), clip=clip)
                    alive = alive & _correct(target, x_adv, y)  # broken at a smaller ε: broken here too
                    robust[i : i + len(x), k] = alive.cpu()
    finally:
        source.train(modes[0])
        target.train(modes[1])
    return RobustAccuracy(norm=norm, eps=eps, clean=clean.float().mean().item(),
                          accuracy=robust.float().mean(0).tolist(), robust=robust, step_fraction=step_fraction,
                          protocol={"attack": "transfer", "steps": steps, "restarts": len(plan), "losses": plan,
                                    "n": n, "batch_size": batch_size})
