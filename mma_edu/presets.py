"""The paper's training runs as named presets (§5 of the notes).

``get_preset("mnist-linf-mma-0.45")`` gives the model, method, optimizer,
schedule, batch size and step count of that run; ``mma-edu presets`` lists
them all. Names: ``{dataset}-{norm}-{method}-{size}`` with method one of mma,
omma, pgd, and ``{dataset}-standard``. CIFAR10 ℓ∞ sizes are in 1/255 units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .train.methods import MMA, PGDAT, Method, Standard
from .train.optim import PiecewiseConstant

# Evaluation ε lists (§6 of the notes) and PGD step size as a fraction of ε.
EVAL_EPS = {
    ("mnist", "linf"): [0.1, 0.2, 0.3, 0.4],
    ("mnist", "l2"): [1.0, 2.0, 3.0, 4.0],
    ("cifar10", "linf"): [k / 255 for k in (4, 8, 12, 16, 20, 24, 28, 32)],
    ("cifar10", "l2"): [0.5, 1.0, 1.5, 2.0, 2.5],
}


def eval_step_fraction(dataset: str, norm: str, steps: int = 100) -> float:
    """The paper's evaluation step size over ε: 1/40 for MNIST ℓ∞, 1/4 otherwise, at 100 steps.

    With fewer or more steps the step scales so that the total travel stays the same.
    """
    base = 1 / 40 if (dataset, norm) == ("mnist", "linf") else 1 / 4
    return base * 100 / steps


# Validation search radius (test-time AN-PGD), as the reference's test ε settings.
VALIDATION_EPS = {("mnist", "linf"): 0.3, ("mnist", "l2"): 2.0, ("cifar10", "linf"): 8 / 255, ("cifar10", "l2"): 1.0}

MINEPS = {("mnist", "linf"): 0.1, ("mnist", "l2"): 0.5, ("cifar10", "linf"): 0.005, ("cifar10", "l2"): 0.5}

DATASET_SETUP = {
    "mnist": dict(model="lenet5_madry", batch_size=50, steps=100_000, optimizer="adam", lr=1e-4,
                  schedule=None, weight_decay=0.0, augment=False, attack_steps=40),
    "cifar10": dict(model="cifar10_wrn28_4", batch_size=128, steps=50_000, optimizer="sgd", lr=0.3,
                    schedule=PiecewiseConstant([20_000, 30_000, 40_000], [0.3, 0.09, 0.03, 0.009]),
                    weight_decay=2e-4, augment=True, attack_steps=10),
}


@dataclass
class Preset:
    """One of the paper's runs."""

    name: str
    dataset: str  # "mnist" or "cifar10"
    method_kind: str  # "standard", "pgd", "mma", "omma"
    norm: str | None
    size: float | None  # d_max (MMA) or eps (PGD), in input units
    model: str
    batch_size: int
    steps: int
    optimizer: str
    lr: float
    schedule: PiecewiseConstant | None
    weight_decay: float
    augment: bool
    attack_steps: int
    method_kwargs: dict = field(default_factory=dict)

    def method(self, **overrides) -> Method:
        """A fresh method object (MMA keeps per-run state, so never share one between runs)."""
        kw = {**self.method_kwargs, **overrides}
        if self.method_kind == "standard":
            return Standard()
        if self.method_kind == "pgd":
            return PGDAT(self.size, self.norm, steps=self.attack_steps, **kw)
        clean = 0.0 if self.method_kind == "omma" else 1 / 3
        return MMA(self.size, self.norm, clean_weight=clean, mineps=MINEPS[(self.dataset, self.norm)],
                   steps=self.attack_steps, **kw)

    @property
    def eval_norm(self) -> str:
        return self.norm or "linf"

    @property
    def eval_eps(self) -> list[float]:
        return EVAL_EPS[(self.dataset, self.eval_norm)]

    @property
    def validation_max_eps(self) -> float:
        """Upper end of the per-epoch validation margin search."""
        if self.method_kind in ("mma", "omma"):
            return 1.05 * self.size  # type: ignore[operator]
        return 2 * VALIDATION_EPS[(self.dataset, self.eval_norm)]

    def describe(self) -> str:
        if self.method_kind == "standard":
            what = "standard training"
        else:
            size = f"{self.size * 255:g}/255" if (self.dataset, self.norm) == ("cifar10", "linf") else f"{self.size:g}"
            what = {"pgd": f"PGD-AT eps={size}", "mma": f"MMA d_max={size}", "omma": f"OMMA d_max={size}"}[
                self.method_kind]
        norm = f" {self.norm}" if self.norm else ""
        return (f"{self.dataset}{norm} {what}; {self.model}, {self.optimizer} lr {self.lr:g}, "
                f"batch {self.batch_size}, {self.steps:,} steps")


def _fmt(size: float) -> str:
    return f"{size:.2f}".rstrip("0").rstrip(".") if size < 1 else f"{size:.1f}"


def _build() -> dict[str, Preset]:
    out: dict[str, Preset] = {}

    def add(name, dataset, kind, norm, size):
        setup = dict(DATASET_SETUP[dataset])
        out[name] = Preset(name=name, dataset=dataset, method_kind=kind, norm=norm, size=size, **setup)

    for dataset in ("mnist", "cifar10"):
        add(f"{dataset}-standard", dataset, "standard", None, None)
    for kind in ("mma", "omma"):
        add(f"mnist-linf-{kind}-0.45", "mnist", kind, "linf", 0.45)
        for d in (2.0, 4.0, 6.0):
            add(f"mnist-l2-{kind}-{_fmt(d)}", "mnist", kind, "l2", d)
        for d in (12, 20, 32):
            add(f"cifar10-linf-{kind}-{d}", "cifar10", kind, "linf", d / 255)
        for d in (1.0, 2.0, 3.0):
            add(f"cifar10-l2-{kind}-{_fmt(d)}", "cifar10", kind, "l2", d)
    for e in (0.1, 0.2, 0.3, 0.4):
        add(f"mnist-linf-pgd-{_fmt(e)}", "mnist", "pgd", "linf", e)
    for e in (2.0, 4.0):
        add(f"mnist-l2-pgd-{_fmt(e)}", "mnist", "pgd", "l2", e)
    for e in (4, 8, 16, 24):
        add(f"cifar10-linf-pgd-{e}", "cifar10", "pgd", "linf", e / 255)
    for e in (1.0, 2.0):
        add(f"cifar10-l2-pgd-{_fmt(e)}", "cifar10", "pgd", "l2", e)
    return out


PRESETS: dict[str, Preset] = _build()


def get_preset(name: str) -> Preset:
    """The preset called ``name``, or a ValueError listing close names."""
    if name in PRESETS:
        return PRESETS[name]
    import difflib

    close = difflib.get_close_matches(name, PRESETS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown preset {name!r}.{hint} 'mma-edu presets' lists all {len(PRESETS)}.")
