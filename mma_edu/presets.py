"""The paper's training runs as named presets (§5 of the notes).

``get_preset("mnist-linf-mma-0.45")`` gives the model, method, optimizer,
schedule, batch size and step count of that run; ``mma-edu presets`` lists
them all, each with which settings come from the paper and which are our
reading (``Preset.source``). Names: ``{dataset}-{norm}-{method}-{size}`` with
method one of mma, omma, pgd, pgdls (PGD-AT with label smoothing), and
``{dataset}-standard``. CIFAR10 ℓ∞ sizes are in 1/255 units.

The PGD-AT and PGDLS baselines cover the ε grid of the paper's tables
(:data:`EVAL_EPS`): MNIST ℓ∞ 0.1–0.4, ℓ2 1–4; CIFAR10 ℓ∞ 4–32 (/255),
ℓ2 0.5–2.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .attacks._common import check_count
from .train.methods import MMA, PGDAT, Method, Standard
from .train.optim import PiecewiseConstant
from .train.selection import REFERENCE_VALIDATION

# Evaluation ε lists (§6 of the notes) and PGD step size as a fraction of ε.
EVAL_EPS = {
    ("mnist", "linf"): [0.1, 0.2, 0.3, 0.4],
    ("mnist", "l2"): [1.0, 2.0, 3.0, 4.0],
    ("cifar10", "linf"): [k / 255 for k in (4, 8, 12, 16, 20, 24, 28, 32)],
    ("cifar10", "l2"): [0.5, 1.0, 1.5, 2.0, 2.5],
}


def eps_label(eps: float, per255: bool) -> str:
    """ε as the paper writes it: "8/255" on CIFAR10 ℓ∞ (``per255``), else "0.3"."""
    return f"{eps * 255:.3g}/255" if per255 else f"{eps:.4g}"


def eval_step_fraction(dataset: str, norm: str, steps: int = 100) -> float:
    """The paper's evaluation step size over ε: 1/40 for MNIST ℓ∞, 1/4 otherwise, at 100 steps.

    With fewer or more steps the step scales so that the total travel stays the same.
    """
    check_count(steps, "steps", 1)
    base = 1 / 40 if (dataset, norm) == ("mnist", "linf") else 1 / 4
    return base * 100 / steps


# Validation search radius (test-time AN-PGD), as the reference's test ε settings.
VALIDATION_EPS = {key: v.eps for key, v in REFERENCE_VALIDATION.items()}

# PGDLS: PGD-AT with label smoothing. The notes give no smoothing value: 0.5 is our reading.
PGDLS_SMOOTHING = 0.5

MINEPS = {("mnist", "linf"): 0.1, ("mnist", "l2"): 0.5, ("cifar10", "linf"): 0.005, ("cifar10", "l2"): 0.5}

DATASET_SETUP = {
    "mnist": dict(model="lenet5_madry", batch_size=50, steps=100_000, optimizer="adam", lr=1e-4,
                  schedule=None, weight_decay=0.0, augment=False, attack_steps=40),
    "cifar10": dict(model="cifar10_wrn28_4", batch_size=128, steps=50_000, optimizer="sgd", lr=0.3,
                    schedule=PiecewiseConstant([20_000, 30_000, 40_000], [0.3, 0.09, 0.03, 0.009]),
                    weight_decay=2e-4, augment=True, attack_steps=10),
}

# Where each preset's settings come from: the paper (§5 of the notes) or our reading.
_SETUP_PAPER = {
    "mnist": "LeNet5-Madry, Adam lr 1e-4, batch 50, 100k steps, no augmentation",
    "cifar10": "WideResNet-28-4, SGD 0.9 wd 2e-4, lr 0.3/0.09/0.03/0.009 at 20k/30k/40k, batch 128, 50k steps, "
               "reflect-pad-4 random crop + flip",
}
_SOURCES = {
    "standard": {"paper": [], "ours": []},
    "mma": {
        "paper": ["d_max", "mineps", "PGD iterations", "10 bisection steps", "eps_iter_scale 2.5",
                  "clean_loss_coeff 1/3", "max_eps 1.05·d_max", "batch norm as the reference (bn_mode='reference')"],
        "ours": ["training point clipped to [0, 1] (clip_training_point=True; the reference does not clip)"],
    },
    "pgd": {
        "paper": ["eps from the grid of the paper's tables (ℓ2 lists: our reading of its model names)"],
        "ours": ["attack: random start, cross-entropy, as many iterations as MMA, step 2.5·eps/iterations",
                 "no clean loss", "validation search up to 2× the test eps"],
    },
}
_SOURCES["omma"] = {"paper": [p.replace("1/3", "0") for p in _SOURCES["mma"]["paper"]], "ours": _SOURCES["mma"]["ours"]}
_SOURCES["pgdls"] = {"paper": ["PGD-AT with label smoothing (PGDLS)", *_SOURCES["pgd"]["paper"]],
                     "ours": [f"label smoothing {PGDLS_SMOOTHING:g} (the notes give no value)",
                              "smoothing on the training loss only, not the attack", *_SOURCES["pgd"]["ours"]]}


@dataclass
class Preset:
    """One of the paper's runs."""

    name: str
    dataset: str  # "mnist" or "cifar10"
    method_kind: str  # "standard", "pgd", "pgdls", "mma", "omma"
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
    source: dict = field(default_factory=dict)  # {"paper": [...], "ours": [...]}: where each setting comes from

    def method(self, **overrides) -> Method:
        """A fresh method object (MMA keeps per-run state, so never share one between runs)."""
        kw = {**self.method_kwargs, **overrides}
        if self.method_kind == "standard":
            return Standard()
        if self.method_kind in ("pgd", "pgdls"):
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
        """One line: what the run trains, its setup, and which settings are the paper's and which ours."""
        if self.method_kind == "standard":
            what = "standard training"
        else:
            size = f"{self.size * 255:g}/255" if (self.dataset, self.norm) == ("cifar10", "linf") else f"{self.size:g}"
            what = {"pgd": f"PGD-AT eps={size}", "pgdls": f"PGDLS eps={size} (label smoothing "
                    f"{self.method_kwargs.get('label_smoothing', 0):g})", "mma": f"MMA d_max={size}",
                    "omma": f"OMMA d_max={size}"}[self.method_kind]
        norm = f" {self.norm}" if self.norm else ""
        line = (f"{self.dataset}{norm} {what}; {self.model}, {self.optimizer} lr {self.lr:g}, "
                f"batch {self.batch_size}, {self.steps:,} steps")
        paper, ours = self.source.get("paper", []), self.source.get("ours", [])
        line += " | paper: " + "; ".join(paper)
        if ours:
            line += " | our reading: " + "; ".join(ours)
        return line


def _fmt(size: float) -> str:
    return f"{size:.2f}".rstrip("0").rstrip(".") if size < 1 else f"{size:.1f}"


def _build() -> dict[str, Preset]:
    out: dict[str, Preset] = {}

    def add(name, dataset, kind, norm, size, **method_kwargs):
        setup = dict(DATASET_SETUP[dataset])
        src = _SOURCES[kind]
        source = {"paper": [_SETUP_PAPER[dataset], *src["paper"]], "ours": list(src["ours"])}
        out[name] = Preset(name=name, dataset=dataset, method_kind=kind, norm=norm, size=size,
                           method_kwargs=method_kwargs, source=source, **setup)

    def size_name(dataset, norm, size):
        return f"{round(size * 255)}" if (dataset, norm) == ("cifar10", "linf") else _fmt(size)

    for dataset in ("mnist", "cifar10"):
        add(f"{dataset}-standard", dataset, "standard", None, None)
    # MMA/OMMA at the paper's d_max; batch norm as the reference, the training point clipped (ours).
    mma = dict(bn_mode="reference", clip_training_point=True)
    for kind in ("mma", "omma"):
        add(f"mnist-linf-{kind}-0.45", "mnist", kind, "linf", 0.45, **mma)
        for d in (2.0, 4.0, 6.0):
            add(f"mnist-l2-{kind}-{_fmt(d)}", "mnist", kind, "l2", d, **mma)
        for d in (12, 20, 32):
            add(f"cifar10-linf-{kind}-{d}", "cifar10", kind, "linf", d / 255, **mma)
        for d in (1.0, 2.0, 3.0):
            add(f"cifar10-l2-{kind}-{_fmt(d)}", "cifar10", kind, "l2", d, **mma)
    # PGD-AT and PGDLS baselines over the ε grid of the paper's tables.
    for (dataset, norm), grid in EVAL_EPS.items():
        for e in grid:
            add(f"{dataset}-{norm}-pgd-{size_name(dataset, norm, e)}", dataset, "pgd", norm, e)
        for e in grid:
            add(f"{dataset}-{norm}-pgdls-{size_name(dataset, norm, e)}", dataset, "pgdls", norm, e,
                label_smoothing=PGDLS_SMOOTHING)
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
