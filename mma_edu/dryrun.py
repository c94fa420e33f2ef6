"""Dry runs: the paper-scale path with its real settings, capped in length only — all caps in this one place.

A dry run keeps everything a paper run is made of — the full model
(LeNet5-Madry, WideResNet-28-4), the preset's optimizer, learning-rate
schedule, batch size and attack steps, validation and model selection, the
evaluation protocol (restarts, PGD steps, step size, ε list) — and caps only
how long it runs: the number of training steps, and the number of validation
and test examples (evaluated in two batches). It exists so that a broken
paper path (a wrong model size, data loader, schedule, selection or
evaluation setting) shows up in seconds on a CPU, not after hours on a GPU.

    dry = DryRun()                                  # 2 steps, 16 examples in 2 batches of 8
    steps = dry.train_steps(100_000)                # -> 2, and remembered
    print(dry.report())                             # "dry run: training steps 100,000 -> 2; ..."

``DryRun.parse`` reads what a user passes: ``True``, a mapping such as
``{"steps": 1, "batch_size": 8}`` (a notebook's ``dry_run`` parameter) or the
text ``"steps=1,batch_size=8"`` (``mma-edu train --dry-run steps=1,batch_size=8``).
Two caps are off by default and exist for slow hardware only, each printed
when used: ``batch_size`` (the training batch) and ``eval_steps`` (PGD steps of
the evaluation) — a run that uses them no longer keeps the preset's batch or
the paper's evaluation steps, and its report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

# The caps a user may set, and what each limits (for messages and reports).
CAPS = {
    "steps": "training steps per run",
    "examples": "validation and test examples",
    "eval_batch": "examples per evaluation batch",
    "batch_size": "training batch (off by default: the preset's batch is kept)",
    "eval_steps": "PGD steps of the evaluation (off by default: the paper's are kept)",
}


def _fmt(value: Any) -> str:
    """A count with thousands separators; anything else as text ("all")."""
    return f"{value:,}" if isinstance(value, int) else str(value)


@dataclass
class DryRun:
    """How far a dry run goes, and a log of what it capped (``capped``: label -> (real, capped))."""

    steps: int = 2
    examples: int = 16
    eval_batch: int = 8
    batch_size: int | None = None
    eval_steps: int | None = None
    capped: dict[str, tuple[Any, Any]] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for f in fields(self):
            if f.name == "capped":
                continue
            v = getattr(self, f.name)
            optional = f.name in ("batch_size", "eval_steps")
            if (v is None and optional) or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                continue
            allowed = "an integer >= 1" + (" or None (no cap)" if optional else "")
            raise ValueError(f"dry_run {f.name} must be {allowed}, got {v!r}")

    @classmethod
    def parse(cls, value: Any) -> "DryRun | None":
        """None for no dry run (False, None); a DryRun for True, a mapping of caps, a "k=v,k=v" text, a DryRun."""
        if value is None or value is False:
            return None
        if value is True or value == "":
            return cls()
        if isinstance(value, DryRun):
            return value
        if isinstance(value, str):
            pairs = {}
            for part in value.split(","):
                key, sep, text = part.partition("=")
                if not sep:
                    raise ValueError(f"dry_run must look like 'steps=1,examples=8' (caps: {', '.join(CAPS)}), "
                                     f"got {value!r}")
                try:
                    pairs[key.strip()] = None if text.strip().lower() == "none" else int(text)
                except ValueError:
                    raise ValueError(f"dry_run {key.strip()} must be an integer, got {text!r}") from None
            value = pairs
        if isinstance(value, Mapping):
            unknown = [k for k in value if k not in CAPS]
            if unknown:
                raise ValueError(f"dry_run has no cap {unknown[0]!r}; the caps are: "
                                 + "; ".join(f"{k} ({v})" for k, v in CAPS.items()))
            return cls(**value)
        raise ValueError(f"dry_run must be False, True, a dict of caps such as {{'steps': 1}} or a DryRun, "
                         f"got {value!r}")

    def _note(self, label: str, real: Any, capped: Any) -> Any:
        if capped != real:
            if self.capped.get(label) != (real, capped):  # say each new cap once, as it is applied
                print(f"dry run: {label} {_fmt(real)} -> {_fmt(capped)}", flush=True)
            self.capped[label] = (real, capped)
        return capped

    def train_steps(self, total: int, label: str = "training steps") -> int:
        """At most :attr:`steps` of a run of ``total`` steps."""
        return self._note(label, total, min(total, self.steps))

    def train_batch(self, batch_size: int, label: str = "training batch") -> int:
        """The preset's batch, unless the (opt-in) ``batch_size`` cap is set."""
        return batch_size if self.batch_size is None else self._note(label, batch_size, min(batch_size,
                                                                                          self.batch_size))

    def n_examples(self, n: int | None, label: str = "test examples") -> int:
        """At most :attr:`examples` of ``n`` (None: all of a dataset, capped all the same)."""
        return self._note(label, "all" if n is None else n, self.examples if n is None else min(n, self.examples))

    def pgd_steps(self, steps: int, label: str = "evaluation PGD steps") -> int:
        """The paper's evaluation steps, unless the (opt-in) ``eval_steps`` cap is set."""
        return steps if self.eval_steps is None else self._note(label, steps, min(steps, self.eval_steps))

    def eval_batch_size(self, batch_size: int, label: str = "evaluation batch") -> int:
        """Evaluation batches of :attr:`eval_batch`, so the capped examples still run in two batches."""
        return self._note(label, batch_size, min(batch_size, self.eval_batch))

    def report(self) -> str:
        """One line: every cap applied so far, real -> capped; and that nothing else changed."""
        caps = "; ".join(f"{k} {_fmt(a)} -> {_fmt(b)}" for k, (a, b) in self.capped.items()) or "nothing yet"
        kept = "everything else is the real setting (model, optimizer, schedule, attack, selection, protocol)"
        extra = [n for n, on in (("the training batch", self.batch_size), ("the evaluation's PGD steps",
                                                                          self.eval_steps)) if on is not None]
        if extra:
            kept += f"; NOTE: {' and '.join(extra)} capped too (opt-in caps for slow hardware)"
        return f"dry run: {caps}; {kept}"
