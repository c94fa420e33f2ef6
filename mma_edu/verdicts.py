"""Claims judged with statistics: "holds", "does not hold", or "unresolved at this n".

Two models measured on the same digits are compared *paired*: only the digits that one gets right and the
other wrong carry information about which is better (McNemar's test). The exact two-sided McNemar test is
the binomial test of those discordant counts against ½: with b digits where A alone is right and c where B
alone is, p = P(|Bin(b + c, ½) − (b+c)/2| ≥ |b − (b+c)/2|).

The verdict of the claim "A is better than B" at level ``alpha`` (default 0.05):

- **holds**: A is right on more of the discordant digits and p < alpha;
- **does not hold**: B is right on more of them and p < alpha (the data contradicts the claim);
- **unresolved at this n**: p ≥ alpha — the difference is inside the noise, in either direction.

For averaged scores (e.g. AvgAcc, whose per-digit value is the share of the ε grid a digit survives) the
same three verdicts come from a paired 95% interval of the mean difference: :func:`interval_verdict`.
The notebooks' checks and ``tests/test_zoo_claims.py`` both call these functions, so a claim is judged by one
rule everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

HOLDS = "holds"
FAILS = "does not hold"
UNRESOLVED = "unresolved at this n"
ALPHA = 0.05


@dataclass(frozen=True)
class Verdict:
    """The outcome of one paired comparison "A better than B".

    ``a_only`` / ``b_only``: digits only A / only B gets right (McNemar), or None for interval verdicts;
    ``difference``: A's rate (or mean score) minus B's; ``p``: the two-sided p-value (None for intervals);
    ``low`` / ``high``: the difference's 95% interval where one was computed; ``unit``: None for rates and
    shares (printed in percentage points), else the unit of a raw score such as a margin (printed as is)."""

    verdict: str
    difference: float
    p: float | None = None
    a_only: int | None = None
    b_only: int | None = None
    n: int | None = None
    low: float | None = None
    high: float | None = None
    unit: str | None = None

    @property
    def holds(self) -> bool:
        return self.verdict == HOLDS

    def __str__(self) -> str:
        diff = f"{100 * self.difference:+.1f} points"
        if self.unit is not None:
            return (f"{self.verdict} ({self.difference:+.4f} {self.unit}, 95% interval "
                    f"[{self.low:+.4f}, {self.high:+.4f}])")
        if self.p is not None:
            return (f"{self.verdict} ({diff}; {self.a_only} digits only A gets right, {self.b_only} only B; "
                    f"McNemar exact p = {self.p:.3g}, n = {self.n})")
        return f"{self.verdict} ({diff}, 95% interval [{100 * self.low:+.1f}, {100 * self.high:+.1f}])"


def bits(t: Tensor) -> str:
    """Per-digit outcomes (N,) bool as a string of 0s and 1s: how results files store them for paired tests."""
    return "".join("1" if v else "0" for v in torch.as_tensor(t).bool().tolist())


def unbits(s: str) -> Tensor:
    """The inverse of :func:`bits`: a bool tensor (N,); a ValueError if ``s`` holds other characters."""
    if set(s) - {"0", "1"}:
        raise ValueError(f"per-digit outcomes must be a string of 0s and 1s, got {s[:20]!r}...")
    return torch.tensor([c == "1" for c in s], dtype=torch.bool)


def _as_bool(v: Tensor, name: str) -> Tensor:
    v = torch.as_tensor(v)
    if v.dim() != 1:
        raise ValueError(f"{name} must be a vector (N,) of per-digit outcomes, got shape {tuple(v.shape)}")
    return v.bool()


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value for the discordant counts (1.0 when there are none)."""
    for name, v in (("a_only", a_only), ("b_only", b_only)):
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a count >= 0, got {v!r}")
    m = a_only + b_only
    if m == 0:
        return 1.0
    k = min(a_only, b_only)
    # P(X <= k) for X ~ Bin(m, 1/2), doubled (the distribution is symmetric), capped at 1.
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2.0 ** m
    return min(1.0, 2 * tail)


def compare(a: Tensor, b: Tensor, alpha: float = ALPHA) -> Verdict:
    """The claim "A is better than B", judged on per-digit outcomes (N,) bool (e.g. correct, or robust at ε)
    of the same N digits by the exact McNemar test at ``alpha``."""
    a, b = _as_bool(a, "a"), _as_bool(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must be outcomes on the same digits, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    p = mcnemar_p(a_only, b_only)
    diff = (a_only - b_only) / len(a)
    verdict = UNRESOLVED if p >= alpha else (HOLDS if a_only > b_only else FAILS)
    return Verdict(verdict, diff, p, a_only, b_only, len(a))


def interval_verdict(difference: float, low: float, high: float, unit: str | None = None) -> Verdict:
    """The claim "A's mean score exceeds B's" from the paired difference and its 95% interval: holds if the
    interval lies above 0, does not hold if below, unresolved if it contains 0. ``unit``: see :class:`Verdict`."""
    if not low <= difference <= high:
        raise ValueError(f"need low <= difference <= high, got {low}, {difference}, {high}")
    verdict = HOLDS if low > 0 else FAILS if high < 0 else UNRESOLVED
    return Verdict(verdict, difference, low=low, high=high, unit=unit)


def paired_mean_difference(a: Tensor, b: Tensor, z: float = 1.96, unit: str | None = None) -> Verdict:
    """Per-digit scores (N,) of A and B on the same digits: the mean of a − b with its normal-approximation
    interval (z·sd/√N), judged by :func:`interval_verdict` (``unit``: None for rates and shares, else the
    scores' unit, e.g. "(l-inf margin)")."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.dim() != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be score vectors (N,) on the same digits, got {tuple(a.shape)} and {tuple(b.shape)}")
    d = a - b
    mean = d.mean().item()
    half = z * d.std(unbiased=True).item() / math.sqrt(len(d)) if len(d) > 1 else math.inf
    return interval_verdict(mean, mean - half, mean + half, unit)


def t_quantile_975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom (two-sided 95% intervals): tabulated for
    df ≤ 10, else the Cornish–Fisher expansion around z = 1.96 (within 1e-4 of the exact value there)."""
    if not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be a positive integer, got {df!r}")
    if df <= 10:
        return (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281)[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2) \
        + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)


def replicate_verdict(values, unit: str | None = None) -> Verdict:
    """The claim "the mean of these replicates is above 0", for a few independent replicates of one difference
    (e.g. the same comparison trained with different seeds): the mean with its t interval,
    mean ± t(0.975, n−1)·sd/√n, judged by :func:`interval_verdict`. Unlike a paired interval over digits, this one
    includes the run-to-run spread. Needs n ≥ 2."""
    v = [float(x) for x in values]
    if len(v) < 2 or not all(math.isfinite(x) for x in v):
        raise ValueError(f"values must be two or more finite numbers, got {values!r}")
    mean = sum(v) / len(v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1))
    half = t_quantile_975(len(v) - 1) * sd / math.sqrt(len(v))
    return Verdict(interval_verdict(mean, mean - half, mean + half, unit).verdict, mean, n=len(v),
                   low=mean - half, high=mean + half, unit=unit)
