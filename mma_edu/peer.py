"""A peer estimate of minimum ℓ2 distances from another library: foolbox's minimum-norm attacks.

Optional: needs the ``attacks`` extra (``pip install 'mma-edu[attacks]'``, i.e.
foolbox 3.3.4). :func:`foolbox_l2_distances` runs one of

- ``"fmn"`` — fast minimum-norm attack (Pintor et al. 2021), ``L2FMNAttack``;
- ``"cw"`` — Carlini–Wagner ℓ2 (``L2CarliniWagnerAttack``), the attack
  behind the paper's CW-L2 distance table,

on each example and returns the length of the adversarial perturbation it
found: a second, independent upper bound of each margin beside our AN-PGD
search (:func:`mma_edu.margins.estimate_margins`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .data import ArrayDataset
from .train.loop import resolve_device

PEER_ATTACKS = ("fmn", "cw")
DEFAULT_STEPS = {"fmn": 100, "cw": 1000}
EXTRA_HINT = "pip install 'mma-edu[attacks]' (foolbox 3.3.4)"


def require_foolbox():
    """The foolbox module, or an ImportError that says how to install it."""
    try:
        import foolbox
    except ImportError as err:
        raise ImportError(f"the foolbox peer attack needs the optional extra: {EXTRA_HINT}") from err
    return foolbox


def attack_name(attack: str) -> str:
    """The foolbox class behind ``attack``."""
    return {"fmn": "L2FMNAttack", "cw": "L2CarliniWagnerAttack"}[attack]


def foolbox_l2_distances(
    model: nn.Module,
    data: ArrayDataset,
    *,
    attack: str = "fmn",
    steps: int | None = None,
    batch_size: int = 500,
    device: str | torch.device = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """Minimum ℓ2 perturbation lengths found by a foolbox attack on inputs in [0, 1].

    Args:
        model: logits model; data: the examples.
        attack: "fmn" or "cw" (see the module docstring).
        steps: attack iterations (default: 100 for FMN; 1000 per binary-search
            step, 9 binary-search steps, for CW).

    Returns:
        (distance, found, correct), each (N,): ``distance`` is 0 where the
        clean example is misclassified and NaN where the attack found no
        adversarial example.
    """
    if attack not in PEER_ATTACKS:
        raise ValueError(f"attack must be one of {PEER_ATTACKS}, got {attack!r}")
    steps = DEFAULT_STEPS[attack] if steps is None else steps
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    fb = require_foolbox()
    dev = resolve_device(device)
    was = model.training
    model.to(dev).eval()
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=dev)
    atk = (fb.attacks.L2FMNAttack(steps=steps) if attack == "fmn"
           else fb.attacks.L2CarliniWagnerAttack(binary_search_steps=9, steps=steps))
    dist, found, correct = [], [], []
    try:
        for i in range(0, len(data), batch_size):
            x, y = data.x[i : i + batch_size].to(dev), data.y[i : i + batch_size].to(dev)
            with torch.no_grad():
                ok = model(x).argmax(1) == y
            _, adv, success = atk(fmodel, x, y, epsilons=None)
            d = (adv - x).flatten(1).norm(dim=1)
            d = torch.where(ok, d, torch.zeros_like(d))
            d = torch.where(success | ~ok, d, torch.full_like(d, float("nan")))
            dist.append(d.detach().cpu())
            found.append((success | ~ok).cpu())
            correct.append(ok.cpu())
    finally:
        model.train(was)
    return torch.cat(dist), torch.cat(found), torch.cat(correct)
