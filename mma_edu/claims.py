"""The paper's claims judged on the zoo, each by :mod:`mma_edu.verdicts` on the same digits.

Each claim is a sentence, the two sides it compares, and its :class:`~mma_edu.verdicts.Verdict`. Notebooks
print them and assert the ones that hold; ``tests/test_zoo_l2.py`` asserts the same verdicts from the
shipped manifest, so a rebuilt zoo that changes a verdict fails the tests.

Per-digit outcomes come from the manifest's ``per_digit`` blocks (``python -m mma_edu.zoo remeasure``
stores them): ``correct`` and ``margin`` on the zoo's 500 evaluation digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import paper
from .verdicts import Verdict, compare, paired_mean_difference, unbits


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, as judged here: ``text`` says it, ``paper`` says where the paper's numbers stand."""

    key: str
    text: str
    paper: str
    verdict: Verdict

    def __str__(self) -> str:
        return f"{self.text}: {self.verdict}  [paper: {self.paper}]"


def _per_digit(entry: dict) -> tuple[Tensor, Tensor]:
    pd = entry.get("per_digit")
    if pd is None:
        raise ValueError(f"manifest entry {entry.get('name')!r} has no per-digit outcomes; store them with "
                         "`python -m mma_edu.zoo remeasure --norm l2`")
    return unbits(pd["correct"]), torch.tensor(pd["margin"], dtype=torch.float64)


def l2_entries(man: dict) -> dict[str, dict]:
    """The ℓ2 table's models from the ℓ2 manifest: "standard" first, then the ℓ2 zoo."""
    return {"standard": man["standard"], **man["models"]}


def l2_table(man: dict) -> list[dict]:
    """Our ℓ2 zoo beside the paper's MNIST ℓ2 table: per model, clean accuracy (%), mean and median minimum ℓ2
    distance ("best": AN-PGD and FMN) on our 500 digits, and the paper's (CW-ℓ2, 1,000 digits, LeNet5)."""
    rows = []
    for name, e in l2_entries(man).items():
        correct, margin = _per_digit(e)
        pc, pm, pmed = paper.MNIST_L2_DISTANCES[name]
        rows.append({"model": name, "clean": 100 * correct.double().mean().item(), "mean": margin.mean().item(),
                     "median": margin.median().item(), "paper_clean": pc, "paper_mean": pm, "paper_median": pmed})
    return rows


def l2_claims(man: dict) -> list[Claim]:
    """The MNIST ℓ2 table's claims, each judged on the same 500 digits (clean accuracy by McNemar, distances and
    accuracy drops by a paired interval)."""
    d = {name: _per_digit(e) for name, e in l2_entries(man).items()}
    c = {k: v[0] for k, v in d.items()}
    m = {k: v[1] for k, v in d.items()}
    p = paper.MNIST_L2_DISTANCES
    drop = lambda a, b: c[a].double() - c[b].double()  # noqa: E731  per digit: 1 where only the first is right
    return [
        Claim("pgd_eps_costs_clean", "PGD-AT at eps 2 keeps more clean accuracy than at eps 4",
              f"{p['l2-pgd-2'][0]} vs {p['l2-pgd-4'][0]}", compare(c["l2-pgd-2"], c["l2-pgd-4"])),
        Claim("mma_keeps_clean", "MMA-4.0 keeps more clean accuracy than PGD-AT at eps 4",
              f"{p['l2-mma-4'][0]} vs {p['l2-pgd-4'][0]}", compare(c["l2-mma-4"], c["l2-pgd-4"])),
        Claim("mma_drop_smaller", "raising the size from 2 to 4 costs PGD-AT more clean accuracy than MMA",
              f"{p['l2-pgd-2'][0] - p['l2-pgd-4'][0]:.1f} vs {p['l2-mma-2'][0] - p['l2-mma-4'][0]:.1f} points",
              paired_mean_difference(drop("l2-pgd-2", "l2-pgd-4"), drop("l2-mma-2", "l2-mma-4"))),
        Claim("mma_distance_grows_2_4", "MMA's distances grow with d_max: MMA-4.0 over MMA-2.0 (mean)",
              f"{p['l2-mma-4'][1]} vs {p['l2-mma-2'][1]}", paired_mean_difference(m["l2-mma-4"], m["l2-mma-2"])),
        Claim("mma_distance_grows_4_6", "MMA's distances grow with d_max: MMA-6.0 over MMA-4.0 (mean)",
              f"{p['l2-mma-6'][1]} vs {p['l2-mma-4'][1]}", paired_mean_difference(m["l2-mma-6"], m["l2-mma-4"])),
        Claim("mma_distance_beats_pgd", "MMA-4.0's distances exceed PGD-AT eps 4's (mean)",
              f"{p['l2-mma-4'][1]} vs {p['l2-pgd-4'][1]}", paired_mean_difference(m["l2-mma-4"], m["l2-pgd-4"])),
        Claim("robust_beats_standard", "every robust model's distances exceed the standard model's (PGD-AT eps 2)",
              f"{p['l2-pgd-2'][1]} vs {p['standard'][1]}", paired_mean_difference(m["l2-pgd-2"], m["standard"])),
    ]
