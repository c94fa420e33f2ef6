"""Peer attacks from well-kept libraries, to check our own numbers against.

Optional: needs the ``attacks`` extra (``pip install 'mma-edu[attacks]'``:
foolbox 3.3.4 and the Adversarial Robustness Toolbox 1.20).

- :func:`foolbox_distances` — minimum-norm attacks (foolbox): per example the
  length of the adversarial perturbation found, a second, independent upper
  bound of each margin beside our AN-PGD search
  (:func:`mma_edu.margins.estimate_margins`). ``"fmn"`` is the fast minimum-norm
  attack (Pintor et al. 2021, ℓ∞ and ℓ2); ``"cw"`` Carlini–Wagner ℓ2, the
  attack behind the paper's CW-L2 distance table.
- :func:`advlib_distances` — FAB (Croce & Hein 2020) and Carlini–Wagner ℓ2
  from adv-lib (Rony), when it is installed: FAB is the minimum-norm peer
  that does not rely on a loss at a fixed radius, the check for
  gradient-masked models. adv-lib is *not* in the extra: ``pip install
  adv-lib`` fails beside our stack (its dependency visdom ships only a
  source distribution whose build needs ``pkg_resources``, gone from
  setuptools 81; checked for issue 24 with pip 26.3), and in the extra it
  would break ``pip install 'mma-edu[attacks]'`` for everyone. By hand it
  installs (torch untouched; it adds visdom and jsonpatch)::

      echo 'setuptools<81' > build-constraints.txt
      pip install --build-constraint build-constraints.txt adv-lib
- :func:`apgd_robust` — APGD with the cross-entropy and the DLR loss (Croce &
  Hein 2020, the core of AutoAttack; ART's implementation): a stronger
  fixed-ε evaluation than plain PGD, to show that PGD numbers are upper bounds.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import norms
from .attacks._common import past_rounding
from .data import ArrayDataset
from .device import resolve_device

PEER_ATTACKS = ("fmn", "cw")
DEFAULT_STEPS = {"fmn": 100, "cw": 1000}
EXTRA_HINT = "pip install 'mma-edu[attacks]' (foolbox 3.3.4, adversarial-robustness-toolbox 1.20)"


def require_foolbox():
    """The foolbox module, or an ImportError that says how to install it."""
    try:
        import foolbox
    except ImportError as err:
        raise ImportError(f"the foolbox peer attack needs the optional extra: {EXTRA_HINT}") from err
    return foolbox


def attack_name(attack: str, norm: str = "l2") -> str:
    """The foolbox class behind ``attack`` for ``norm``."""
    if (attack, norm) == ("cw", "linf"):
        raise ValueError("the Carlini-Wagner peer attack is l2 only; use attack='fmn' for linf")
    return {("fmn", "l2"): "L2FMNAttack", ("fmn", "linf"): "LInfFMNAttack", ("cw", "l2"): "L2CarliniWagnerAttack"}[
        (attack, norm)]


def foolbox_l2_distances(model: nn.Module, data: ArrayDataset, **kwargs) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`foolbox_distances` in ℓ2."""
    return foolbox_distances(model, data, norm="l2", **kwargs)


def foolbox_distances(
    model: nn.Module,
    data: ArrayDataset,
    *,
    norm: str = "l2",
    attack: str = "fmn",
    steps: int | None = None,
    batch_size: int = 500,
    device: str | torch.device = "auto",
) -> tuple[Tensor, Tensor, Tensor]:
    """Minimum perturbation lengths (in ``norm``) found by a foolbox attack on inputs in [0, 1].

    Args:
        model: logits model; data: the examples.
        norm: "linf" or "l2"; attack: "fmn" (both norms) or "cw" (ℓ2; see the module docstring).
        steps: attack iterations (default: 100 for FMN; 1000 per binary-search
            step, 9 binary-search steps, for CW).

    Returns:
        (distance, found, correct), each (N,): ``distance`` is 0 where the
        clean example is misclassified and NaN where the attack found no
        adversarial example.
    """
    if attack not in PEER_ATTACKS:
        raise ValueError(f"attack must be one of {PEER_ATTACKS}, got {attack!r}")
    norms.check_norm(norm)
    cls = attack_name(attack, norm)
    steps = DEFAULT_STEPS[attack] if steps is None else steps
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    fb = require_foolbox()
    dev = resolve_device(device)
    was = model.training
    model.to(dev).eval()
    fmodel = fb.PyTorchModel(model, bounds=(0.0, 1.0), device=dev)
    atk = (getattr(fb.attacks, cls)(steps=steps) if attack == "fmn"
           else fb.attacks.L2CarliniWagnerAttack(binary_search_steps=9, steps=steps))
    dist, found, correct = [], [], []
    try:
        for i in range(0, len(data), batch_size):
            x, y = data.x[i : i + batch_size].to(dev), data.y[i : i + batch_size].to(dev)
            with torch.no_grad():
                ok = model(x).argmax(1) == y
            _, adv, success = atk(fmodel, x, y, epsilons=None)
            d = norms.norm_of(adv - x, norm)
            d = torch.where(ok, d, torch.zeros_like(d))
            d = torch.where(success | ~ok, d, torch.full_like(d, float("nan")))
            dist.append(d.detach().cpu())
            found.append((success | ~ok).cpu())
            correct.append(ok.cpu())
    finally:
        model.train(was)
    return torch.cat(dist), torch.cat(found), torch.cat(correct)


def require_art():
    """The ART package, or an ImportError that says how to install it."""
    try:
        import art  # noqa: F401
    except ImportError as err:
        raise ImportError(f"APGD needs the optional extra: {EXTRA_HINT}") from err
    return art


APGD_LOSSES = {"ce": "cross_entropy", "dlr": "difference_logits_ratio"}


def apgd_robust(
    model: nn.Module,
    data: ArrayDataset,
    *,
    norm: str,
    eps_list: list[float],
    losses: tuple[str, ...] = ("ce", "dlr"),
    steps: int = 100,
    restarts: int = 1,
    batch_size: int = 250,
    seed: int = 0,
) -> Tensor:
    """Which examples survive APGD at each ε: a bool tensor (N, len(eps_list)).

    An example is robust at ε only if it is classified correctly and no APGD
    run (one per loss in ``losses``, each with ``restarts`` random starts)
    finds an adversarial point in the ε-ball; robust at ε also requires robust
    at every smaller ε, as :func:`mma_edu.evaluate.robust_accuracy` counts.
    Every point APGD returns is checked by a forward pass of our own.
    """
    import numpy as np

    norms.check_norm(norm)
    require_art()
    from art.attacks.evasion import AutoProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    for name in losses:
        if name not in APGD_LOSSES:
            raise ValueError(f"losses must be taken from {tuple(APGD_LOSSES)}, got {name!r}")
    was = model.training
    model.cpu().eval()
    n_classes = model(data.x[:1]).shape[1]
    clf = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(data.x.shape[1:]),
                            nb_classes=n_classes, clip_values=(0.0, 1.0), device_type="cpu")
    x, y = data.x.numpy(), data.y.numpy()
    robust = torch.zeros(len(data), len(eps_list), dtype=torch.bool)
    try:
        with torch.no_grad():
            alive = (model(data.x).argmax(1) == data.y)
        np.random.seed(seed)
        torch.manual_seed(seed)
        for k, eps in enumerate(eps_list):
            for name in losses:
                idx = torch.nonzero(alive).squeeze(1)
                if idx.numel() == 0:
                    break
                atk = AutoProjectedGradientDescent(
                    clf, norm=np.inf if norm == "linf" else 2, eps=eps, eps_step=2 * eps, max_iter=steps,
                    targeted=False, nb_random_init=restarts, batch_size=batch_size, loss_type=APGD_LOSSES[name],
                    verbose=False)
                adv = torch.from_numpy(atk.generate(x=x[idx.numpy()], y=y[idx.numpy()])).float()
                inside = norms.norm_of(adv - data.x[idx], norm) <= eps * (1 + 1e-5) + 1e-7
                with torch.no_grad():
                    broken = (model(adv).argmax(1) != data.y[idx]) & inside
                alive[idx[broken]] = False
            robust[:, k] = alive
    finally:
        model.train(was)
    return robust


ADVLIB_ATTACKS = ("fab", "cw")
ADVLIB_HINT = ("adv-lib is not installed (plain pip install adv-lib fails to build its dependency visdom; "
               "mma_edu/peer.py says how to install it)")


def require_advlib():
    """The ``adv_lib.attacks`` module, or an ImportError that says why it is missing."""
    try:
        from adv_lib import attacks
    except ImportError as err:
        raise ImportError(ADVLIB_HINT) from err
    return attacks


def advlib_distances(
    model: nn.Module,
    data: ArrayDataset,
    *,
    attack: str = "fab",
    norm: str = "l2",
    steps: int | None = None,
    batch_size: int = 500,
    seed: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Minimum perturbation lengths (in ``norm``) found by adv-lib's FAB or Carlini–Wagner ℓ2, on CPU.

    ``steps``: FAB iterations (default 100) or CW iterations per binary-search
    step (default 1,000; 9 steps). Every returned point is checked by our own
    forward pass: misclassified beyond rounding
    (:func:`mma_edu.losses.decides_otherwise`) and inside the box [0, 1].
    FAB stops a hair past the boundary, often within that rounding slack
    (L_LM ~1e-5 where the logits reach ~80): such a point is lengthened by
    0.01%, 0.1% or 1%, the first that passes, as our own estimators' points
    are held to the same test.

    Returns:
        (distance, found, correct), each (N,): ``distance`` is 0 where the
        clean example is misclassified and NaN where the attack found no
        verified adversarial example.
    """
    from .losses import is_correct

    if attack not in ADVLIB_ATTACKS:
        raise ValueError(f"attack must be one of {ADVLIB_ATTACKS}, got {attack!r}")
    norms.check_norm(norm)
    if attack == "cw" and norm != "l2":
        raise ValueError("the Carlini-Wagner peer attack is l2 only; use attack='fab' for linf")
    steps = (100 if attack == "fab" else 1000) if steps is None else steps
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    atk = require_advlib()
    was = model.training
    model.cpu().eval()
    dist, found, correct = [], [], []
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            for i in range(0, len(data), batch_size):
                x, y = data.x[i : i + batch_size], data.y[i : i + batch_size]
                with torch.no_grad():
                    ok = is_correct(model(x), y)
                if attack == "fab":
                    adv = atk.fab(model, x, y, norm=float("inf") if norm == "linf" else 2.0, n_iter=steps)
                else:
                    adv = atk.carlini_wagner_l2(model, x, y, binary_search_steps=9, max_iterations=steps)
                adv, real = past_rounding(model, x, y, adv.detach(), (0.0, 1.0))
                d = norms.norm_of(adv - x, norm)
                d = torch.where(ok, d, torch.zeros_like(d))
                d = torch.where(real | ~ok, d, torch.full_like(d, float("nan")))
                dist.append(d.detach())
                found.append(real | ~ok)
                correct.append(ok)
    finally:
        model.train(was)
    return torch.cat(dist), torch.cat(found), torch.cat(correct)
