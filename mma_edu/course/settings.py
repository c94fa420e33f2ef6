"""Each notebook's settings per profile, in one place, so the notebook's code reads as the lesson.

    cfg = course.settings(profile, "06", dry_run=dry_run, device=device)
    cfg["n_test"], cfg.device, cfg.steps_of(preset.steps)

:func:`settings` checks the profile and the notebook, picks the device
("auto": CUDA, then MPS, then the CPU), sets one CPU thread where a notebook's
models are tiny, and applies a dry run (:mod:`mma_edu.dryrun`): the paper
profile's real settings with only the number of steps and examples capped.
The returned :class:`Settings` reads like a dict (``cfg["epochs"]``) and
prints as a table that says what was capped.

Profiles: "smoke" (the tests, < 1 min each), "laptop" (the default, minutes
on a CPU), "paper" (the paper's settings: full datasets, a GPU for 05 and 06).
In notebooks 01–04 the paper profile is a larger toy run that a CPU finishes in
a minute or two, so a dry run has nothing to cap there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterator

import torch

from .. import plots
from ..device import resolve_device
from ..dryrun import DryRun
from .records import set_dry_run

PROFILES = ("smoke", "laptop", "paper")

# notebook -> profile -> settings (the values each notebook's cells read as cfg[...]).
TABLES: dict[str, dict[str, dict[str, Any]]] = {
    "01": {
        "smoke":  dict(n=60,  resolution=0.01,  epochs=60),
        "laptop": dict(n=150, resolution=0.005, epochs=150),
        "paper":  dict(n=300, resolution=0.0025, epochs=300),
    },
    "02": {
        "smoke":  dict(n_points=6,  n_train=80,  epochs=60,  h=1e-3),
        "laptop": dict(n_points=16, n_train=150, epochs=150, h=1e-3),
        "paper":  dict(n_points=40, n_train=300, epochs=300, h=1e-3),
    },
    # 03: sweep_eps / sweep_dmax are the sweep's PGD-AT ε and MMA d_max (the notebook's own eps_small, eps_large
    # and d_max join them, reused); sweep_radii the ε AvgRobAcc averages over.
    "03": {
        "smoke":  dict(n=100, epochs=60, sweep_eps=(0.1, 0.3, 0.5), sweep_dmax=(0.3, 0.5, 0.7),
                       sweep_radii=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6)),
        "laptop": dict(n=200, epochs=150, sweep_eps=(0.1, 0.3, 0.5, 0.7), sweep_dmax=(0.3, 0.5, 0.7, 0.9),
                       sweep_radii=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6)),
        "paper":  dict(n=400, epochs=300, sweep_eps=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
                       sweep_dmax=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                       sweep_radii=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6)),
    },
    "04": {
        "smoke":  dict(n=80,  epochs=60,  n_linear=150, resolution=0.01),
        "laptop": dict(n=200, epochs=150, n_linear=500, resolution=0.005),
        "paper":  dict(n=400, epochs=300, n_linear=2000, resolution=0.0025),
    },
    # 05 paper: the presets mnist-standard, -linf-pgd-0.3, -linf-pgd-0.4, -linf-mma-0.45 on full MNIST, each for
    # its own 100,000 steps, model selection on the first 5,000 training images (n_val).
    "05": {
        "smoke":  dict(n_test=200, own_epochs=1, own_n=1000),
        "laptop": dict(n_test=500, own_epochs=3, own_n=None),
        "paper":  dict(n_test=10_000, own_epochs=None, own_n=None, n_val=5000),
    },
    "06": {
        "smoke":  dict(depth=10, widen=1, steps=100, batch=64, lr=0.1, attack_steps=5, n_train=4000, n_test=100,
                       eval_steps=10, restarts=1, margin_ratio=1.3, download=False, n_released=20, released_steps=3),
        "laptop": dict(depth=10, widen=1, steps=200, batch=64, lr=0.1, attack_steps=5, n_train=None, n_test=200,
                       eval_steps=10, restarts=1, margin_ratio=1.5, download=True, n_released=200,
                       released_steps=10),
        "paper":  dict(depth=28, widen=4, steps=50_000, batch=128, lr=0.3, attack_steps=10, n_train=None,
                       n_test=10_000, eval_steps=100, restarts=10, margin_ratio=1.5, download=True,
                       n_released=10_000, released_steps=100, n_val=5000),
    },
    "07": {
        "smoke":  dict(n_test=100, steps=20, restarts=(1, 2, 4), full_restarts=2, n_naive=50, n_peer=30,
                       peer_steps=20, apgd_steps=10, n_released=100, n_cw=5, cw_steps=1000),
        "laptop": dict(n_test=300, steps=40, restarts=(1, 2, 4, 8), full_restarts=4, n_naive=100, n_peer=100,
                       peer_steps=50, apgd_steps=20, n_released=300, n_cw=30, cw_steps=1000),
        "paper":  dict(n_test=1000, steps=100, restarts=(1, 2, 5, 10, 20), full_restarts=10, n_naive=1000,
                       n_peer=1000, peer_steps=100, apgd_steps=100, n_released=1000, n_cw=1000, cw_steps=1000),
    },
    "08": {
        "smoke":  dict(width=16, depth=1, epochs=3,  n=8,   max_eps=0.25, time_limit=10),
        "laptop": dict(width=16, depth=1, epochs=5,  n=100, max_eps=0.25, time_limit=60),
        "paper":  dict(width=32, depth=2, epochs=10, n=300, max_eps=0.3,  time_limit=600),
    },
}

# What a dry run caps in each notebook's table: key -> kind of cap (see DryRun). Everything else stays.
DRY_CAPS: dict[str, dict[str, str]] = {
    "05": {"n_test": "examples", "n_val": "examples"},
    "06": {"steps": "steps", "batch": "batch", "n_test": "examples", "n_val": "examples", "n_released": "examples",
           "eval_steps": "pgd_steps", "released_steps": "pgd_steps"},
    "07": {"n_test": "examples", "n_naive": "examples", "n_peer": "examples", "n_released": "examples",
           "steps": "pgd_steps", "apgd_steps": "pgd_steps", "peer_steps": "pgd_steps", "n_cw": "examples",
           "cw_steps": "pgd_steps"},
    "08": {"n": "examples"},
}

# Notebooks whose models are tiny: one CPU thread runs them fastest (measured in a Jupyter kernel: 3.6 s instead
# of 33 s for one zoo measurement at two threads, which spend their time waiting on each other) and keeps
# timings steady beside other programs. None: in every profile; else the profiles it applies to.
# The 2-D toys (01-04: MLPs of a few hundred weights) likewise in every profile: on a busy machine, two threads
# slowed 03 from 22 s to 712 s (issue 25), one thread 1.6-2.4x at most.
# 06's WideResNet-10-1 (smoke, laptop) too: one MMA step (batch 64, 5 attack steps) took 0.29-0.33 s on one thread
# and 1.06-1.22 s on two, measured side by side with the machine busy (load 5 on 2 cores, 2026-12-02) — busy is
# the case the 5-minute budget must hold in. The paper profile (a GPU) is left alone.
ONE_THREAD: dict[str, tuple[str, ...] | None] = {"01": None, "02": None, "03": None, "04": None,
                                                 "05": ("smoke", "laptop"), "06": ("smoke", "laptop"),
                                                 "07": ("smoke", "laptop"), "08": None}

NOTEBOOKS = tuple(TABLES)

# What each notebook takes, printed at its top (cfg.expected). Laptop: `python -m bench.notebooks_under_load` on a
# quiet 2-core x86-64 CPU without GPU and with one busy process per core beside it (README, 2026-12-07), rounded up.
# Smoke: the tests (< 1 min each). Paper: the paper's settings.
EXPECTED: dict[str, dict[str, str]] = {
    "01": {"smoke": "under 1 min", "laptop": "about 10 s", "paper": "about 1 min"},
    "02": {"smoke": "under 1 min", "laptop": "about 10 s", "paper": "about 1 min"},
    "03": {"smoke": "under 1 min", "laptop": "about 1 min (45 s measured, 54 s on a busy machine)", "paper": "a few minutes"},
    "04": {"smoke": "under 1 min", "laptop": "about 10 s", "paper": "about 1 min"},
    "05": {"smoke": "under 1 min", "laptop": "about 3 min (162 s measured, 169 s on a busy machine)", "paper": "hours on a GPU (four runs of 100,000 steps)"},
    "06": {"smoke": "under 1 min", "laptop": "about 3 min (stand-in: 146 s, 162 s on a busy machine), more on real CIFAR10",
           "paper": "days on a GPU (50,000 steps of a WideResNet-28-4)"},
    "07": {"smoke": "under 1 min", "laptop": "about 4 min (244 s measured, 252 s on a busy machine)", "paper": "an hour or more on a CPU, minutes on a GPU"},
    "08": {"smoke": "under 1 min", "laptop": "about 4 min (204 s measured, 227 s on a busy machine)", "paper": "an hour or more (MILPs of up to 10 min each)"},
}


def _notebook_key(notebook: Any) -> str:
    text = f"{notebook:02d}" if isinstance(notebook, int) and not isinstance(notebook, bool) else str(notebook)
    key = text[:2]
    if key not in TABLES or not (len(text) == 2 or text[2] == "_"):
        raise ValueError(f"notebook must be one of {', '.join(NOTEBOOKS)} (or a file name such as "
                         f"'05_mnist_mma.ipynb'), got {notebook!r}")
    return key


class Settings(Mapping):
    """One notebook's settings in one profile: ``cfg["key"]`` or ``cfg.key``; prints as a table.

    Attributes: ``notebook`` ("01"–"08"), ``profile``, ``device`` (a torch.device),
    ``dry_run`` (a :class:`~mma_edu.dryrun.DryRun`, or None), ``capped``
    (key -> (real value, capped value): what the dry run changed).
    """

    def __init__(self, notebook: str, profile: str, values: dict[str, Any], device: torch.device,
                 dry_run: DryRun | None, capped: dict[str, tuple[Any, Any]], notes: list[str]):
        self._values = dict(values)
        self.notebook, self.profile, self.device, self.dry_run = notebook, profile, device, dry_run
        self.capped, self.notes = dict(capped), list(notes)

    # Mapping: the notebooks read cfg["key"].
    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise KeyError(f"notebook {self.notebook} has no setting {key!r}; it has {list(self._values)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"notebook {self.notebook} has no setting {key!r}; it has "
                                 f"{list(self._values)}") from None

    # Lengths that come from a preset rather than the table (05 trains four presets).
    @property
    def expected(self) -> str:
        """One line: how long this notebook takes in this profile (:data:`EXPECTED`), for its first cell."""
        busy = " (quiet 2-core CPU; allow up to 2.5x on a busy machine)" if self.profile == "laptop" else ""
        return f"notebook {self.notebook}, profile {self.profile!r}: expected run time {EXPECTED[self.notebook][self.profile]}{busy}"

    def steps_of(self, total: int) -> int:
        """A run's number of training steps: ``total``, or the dry run's cap."""
        return total if self.dry_run is None else self.dry_run.train_steps(total)

    @property
    def eval_batch(self) -> int:
        """Examples per evaluation batch: 500 (the library's default), or the dry run's (so it runs two)."""
        return 500 if self.dry_run is None else self.dry_run.eval_batch_size(500)

    @property
    def attack_precision(self) -> str:
        """Precision of AN-PGD's PGD iterations in MMA runs: "bf16" in the paper profile on CUDA — the mixed
        precision the library offers (:mod:`mma_edu.speed`; margins within a few percent, the bisection and the
        training stay float32) — else "fp32"."""
        return "bf16" if self.profile == "paper" and self.device.type == "cuda" else "fp32"

    def method_of(self, preset):
        """``preset.method()``, with :attr:`attack_precision` for MMA/OMMA presets."""
        if preset.method_kind in ("mma", "omma"):
            return preset.method(precision=self.attack_precision)
        return preset.method()

    def batch_of(self, batch_size: int) -> int:
        """A run's training batch: ``batch_size`` (a dry run keeps it unless its opt-in batch cap is set)."""
        return batch_size if self.dry_run is None else self.dry_run.train_batch(batch_size)

    def run_folder(self, name: str) -> dict[str, Any]:
        """``fit`` arguments for a resumable run in ``runs/NAME`` (a dry run: ``runs/dry-run/NAME``, started afresh).

        A dry run never resumes nor touches a real run's folder.
        """
        if self.dry_run is not None:
            return dict(out=Path("runs") / "dry-run" / name, resume=False, overwrite=True)
        out = Path("runs") / name
        return dict(out=out, resume=(out / "last.pt").exists(), overwrite=False)

    def cifar10(self, data: str = "auto", root: str | os.PathLike = "data", download: bool | None = None):
        """CIFAR10 (or, where allowed, the digit stand-in) for notebook 06, and a sentence saying which and why.

        ``data``: "auto" (CIFAR10 under ``root``, else downloaded, else the stand-in), "cifar10" (CIFAR10 or an
        error) or "standin". The paper profile needs real CIFAR10. ``download`` None: the profile decides.
        Returns (Splits, why).
        """
        from .. import data as D

        if data not in ("auto", "cifar10", "standin"):
            raise ValueError(f"data must be 'auto', 'cifar10' or 'standin', got {data!r}")
        if download is not None and not isinstance(download, bool):
            raise ValueError(f"download must be True, False or None (the profile decides), got {download!r}")
        fetch = self._values.get("download", False) if download is None else download
        if data == "cifar10" or self.profile == "paper":
            return D.cifar10(root, download=fetch), "CIFAR10 (required by this profile or data='cifar10')"
        if data == "standin":
            offline = D.mnist_offline()
            return D.Splits(D.as_cifar_shape(offline.train), D.as_cifar_shape(offline.test)), "data='standin'"
        return D.cifar10_or_standin(root, download=fetch)

    def __repr__(self) -> str:
        head = f"notebook {self.notebook}, profile {self.profile!r}, device {self.device}"
        if self.dry_run is not None:
            head += ", DRY RUN"
        width = max(len(k) for k in self._values) if self._values else 0
        lines = [head]
        for k, v in self._values.items():
            shown = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else repr(v)
            if k in self.capped:
                real = self.capped[k][0]
                shown += f"   (capped by the dry run; the profile's value is {real:,})" if isinstance(real, int) \
                    else f"   (capped by the dry run; the profile's value is {real!r})"
            lines.append(f"  {k:<{width}}  {shown}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython shows the table, not a one-line repr
        p.text(repr(self))


def settings(profile: str, notebook: str | int, *, dry_run: Any = False, device: str | torch.device = "auto",
             threads: bool = True, compact_figures: bool = True) -> Settings:
    """The settings of ``notebook`` ("01"–"08") in ``profile`` ("smoke", "laptop" or "paper").

    Args:
        dry_run: False; True (the paper path capped to 2 steps and 16 examples, see :mod:`mma_edu.dryrun`);
            or a dict of caps, e.g. ``{"steps": 1, "examples": 8}``. Only with ``profile="paper"``:
            the fast profiles are already short. In a dry run the notebook's claims (``course.check``)
            are shown and recorded but not judged: a model trained for two steps is not expected to hold them.
        device: "auto" (CUDA, then MPS, then the CPU), "cpu", "cuda", ...: ``cfg.device``.
        threads: set one CPU thread where the notebook's models are small (the toys 01-04 and 08 always; 05,
            06 and 07 outside the paper profile); False leaves torch's thread count alone.
        compact_figures: in a notebook, inline figures are saved as palette PNGs
            (:func:`mma_edu.plots.compact_inline`), so executed notebooks stay small; False keeps full colour.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    key = _notebook_key(notebook)
    dry = DryRun.parse(dry_run)
    if dry is not None and profile != "paper":
        raise ValueError(f"dry_run applies to profile 'paper' only (the {profile!r} profile is already short); "
                         f"got profile {profile!r} with dry_run={dry_run!r}")
    dev = resolve_device(device)
    values = dict(TABLES[key][profile])
    capped: dict[str, tuple[Any, Any]] = {}
    notes: list[str] = []
    if dry is not None:
        for k, kind in DRY_CAPS.get(key, {}).items():
            real = values[k]
            new = {"steps": dry.train_steps, "batch": dry.train_batch, "examples": dry.n_examples,
                   "pgd_steps": dry.pgd_steps}[kind](real, label=k)
            if new != real:
                values[k], capped[k] = new, (real, new)
        if key not in DRY_CAPS:
            notes.append("dry run: nothing to cap; this notebook's paper profile is a larger toy run that a CPU "
                         "finishes in a minute or two")
        if key in ("05", "06"):
            notes.append(f"dry run: at most {dry.steps} training step(s) per run and evaluation batches of "
                         f"{dry.eval_batch}; runs go to runs/dry-run/")
    set_dry_run(dry is not None)
    if compact_figures:
        plots.compact_inline()
    one = ONE_THREAD.get(key, ())
    if threads and (one is None or (dev.type == "cpu" and profile in one)):
        torch.set_num_threads(1)
        notes.append("one CPU thread: this notebook's models are tiny, and threads would wait on each other")
    return Settings(key, profile, values, dev, dry, capped, notes)


def run_summary(model: torch.nn.Module, history) -> dict[str, Any]:
    """What a training run was, as plain data for ``course.record``: the model's parameter count, the run's
    settings (``history.config``) and, per epoch, its step, validation accuracy and margin, which estimator
    selected, and whether the epoch was cut short (a dry run validates at its last step)."""
    keys = ("step", "val_acc", "val_margin", "selection", "partial")
    return {"parameters": sum(p.numel() for p in model.parameters()), **history.config,
            "epochs": [{k: e.get(k) for k in keys} for e in history.epochs]}
