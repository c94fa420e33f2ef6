"""2-D toys (notebooks 1-4): train a small MLP with standard training, PGD-AT at ε or MMA at d_max, and sweep
ε and d_max to see what each buys in robustness and costs in clean accuracy (the paper's message, cheap in 2-D).

    model, history = train_2d(data, "mma", 0.5, "l2")
    points = sweep_2d(data, {"pgd": (0.1, 0.3, 0.5), "mma": (0.1, 0.3, 0.5)}, "l2", eps=(0.1, 0.2, 0.3))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from . import norms
from .data import ArrayDataset
from .evaluate import robust_accuracy
from .models import MLP

METHODS_2D = ("standard", "pgd", "mma")


def method_2d(method: str, size: float, norm: str):
    """The training method of :func:`train_2d`: "standard", "pgd" (ε = size) or "mma" (d_max = size)."""
    from .train import MMA, PGDAT, Standard

    if method not in METHODS_2D:
        raise ValueError(f"method must be one of {METHODS_2D!r}, got {method!r}")
    return {"standard": lambda: Standard(),
            "pgd": lambda: PGDAT(size, norm, steps=10, clip=None),
            "mma": lambda: MMA(size, norm, mineps=size / 10, steps=10, clip=None)}[method]()


def mlp_2d(data: ArrayDataset, *, hidden: int = 32, seed: int = 0) -> nn.Module:
    """The small MLP :func:`train_2d` trains when given none (2 hidden layers of ``hidden``), seeded: make it
    yourself to hold it from the start, e.g. to snapshot its weights from a callback."""
    torch.manual_seed(seed)
    return MLP(hidden=hidden, depth=2, num_classes=int(data.y.max()) + 1)


def train_2d(data: ArrayDataset, method, size: float, norm: str, *, epochs: int = 150, hidden: int = 32,
             seed: int = 0, callbacks=(), model: nn.Module | None = None) -> tuple[nn.Module, object]:
    """Train a small MLP on 2-D data with "standard", "pgd" (ε = size) or "mma" (d_max = size).

    ``method`` is one of those names or a method object from :func:`method_2d` (to read its state, e.g.
    MMA's margin memory, from a callback). Returns (model, history). Pass ``model`` to train one you hold.
    """
    from .train import fit

    meth = method_2d(method, size, norm) if isinstance(method, str) else method
    if model is None:
        model = mlp_2d(data, hidden=hidden, seed=seed)
    torch.manual_seed(seed)
    batch = min(50, len(data))
    hist = fit(model, data, meth, epochs=epochs, batch_size=batch, lr=1e-2, progress=False, device="cpu", seed=seed,
               callbacks=callbacks)
    return model, hist


@dataclass
class SweepPoint:
    """One trained model of a sweep: its method ("pgd" or "mma"), its size (PGD-AT's ε or MMA's d_max), its clean
    accuracy and its robust accuracy at each ε of ``eps`` (PGD with CE and CW restarts, as the paper's protocol)."""

    method: str
    size: float
    clean: float
    eps: list[float]
    accuracy: list[float]
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def avg_rob_acc(self) -> float:
        """The paper's AvgRobAcc: the mean robust accuracy over the ε list."""
        return sum(self.accuracy) / len(self.accuracy)


def score_2d(model: nn.Module, data: ArrayDataset, *, norm: str, eps: Sequence[float], steps: int = 20,
             restarts: int = 2, seed: int = 0) -> tuple[float, list[float]]:
    """(clean accuracy, robust accuracy at each ε of ``eps``) of a 2-D model: whitebox PGD (CE, then CW
    restarts), no box (the toys live in the plane). PGD finds an upper bound of the robust accuracy."""
    r = robust_accuracy(model, data, norm=norm, eps_list=list(eps), steps=steps, restarts=restarts, clip=None,
                        device="cpu", seed=seed, progress=False)
    return r.clean, list(r.accuracy)


def sweep_2d(data: ArrayDataset, sizes: Mapping[str, Sequence[float]], norm: str, *, eps: Sequence[float],
             epochs: int = 150, seed: int = 0,
             trained: Mapping[tuple[str, float], nn.Module] | None = None,
             progress: Callable[[str], None] | None = None) -> list[SweepPoint]:
    """Train (or reuse) one model per method and size, and score each: clean accuracy and AvgRobAcc over ``eps``.

    Args:
        data: the 2-D training points (scored on the same points: in 2-D the question is the boundary's shape).
        sizes: method -> sizes, e.g. ``{"pgd": (0.1, 0.3, 0.5), "mma": (0.1, 0.3, 0.5)}`` (ε for "pgd",
            d_max for "mma"); methods from :data:`METHODS_2D` other than "standard".
        norm: "l2" or "linf", of training and of the attack.
        eps: the radii AvgRobAcc averages over (increasing, positive).
        trained: models already trained with :func:`train_2d` on ``data`` with these settings, keyed by
            (method, size): they are scored, not retrained.
        progress: called with a line per model (e.g. ``print``).

    Returns the points in ``sizes`` order (method by method, sizes as given).
    """
    norms.check_norm(norm)
    eps = [float(e) for e in eps]
    if not eps or any(e <= 0 for e in eps) or eps != sorted(eps):
        raise ValueError(f"eps must be a non-empty increasing list of positive radii, got {eps!r}")
    for method, group in sizes.items():
        if method not in METHODS_2D or method == "standard":
            raise ValueError(f"sizes must map 'pgd' or 'mma' to sizes, got method {method!r}")
        if not group or any(float(s) <= 0 for s in group):
            raise ValueError(f"sizes[{method!r}] must be a non-empty list of positive sizes, got {group!r}")
    trained = dict(trained or {})
    points = []
    for method, group in sizes.items():
        for size in group:
            model = trained.get((method, float(size)))
            reused = model is not None
            if model is None:
                model, _ = train_2d(data, method, float(size), norm, epochs=epochs, seed=seed)
            clean, acc = score_2d(model, data, norm=norm, eps=eps, seed=seed)
            points.append(SweepPoint(method, float(size), clean, eps, acc, model=model))
            if progress is not None:
                progress(f"{method} {float(size):g}: clean {clean:.3f}, AvgRobAcc {points[-1].avg_rob_acc:.3f}"
                         + (" (reused)" if reused else ""))
    return points
