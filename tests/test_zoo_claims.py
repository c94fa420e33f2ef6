"""The paper's claims (§7 of the notes) on the model zoo, as they hold on the zoo's budget.

The zoo (``mma_edu/zoo.py``): nine SmallCNNs trained on the 4,000 offline MNIST digits with one
budget (20 epochs, Adam 1e-3, batch 50, 10 attack steps); robust accuracy and margins are the
manifest's measurements on 500 test digits (PGD 20 steps × 2 restarts CE+CW; ``tests/test_zoo.py``
re-measures them from the shipped weights), clean accuracy is measured here on all 1,000 test digits.

First every model must have trained — a claim resting on a failed baseline proves nothing (a PGD-AT
model stuck at one class "loses clean accuracy" trivially). The ``trained`` fixture checks it and
every claim test depends on it.

Claims that do NOT hold on this budget are written as the paper states them and marked
``xfail(strict=True)`` with the measured numbers: if a rebuilt zoo makes one hold, the suite says so.
Thresholds: 1 point of accuracy is 5 of the 500 digits; gaps asked for are at least that.
"""

from __future__ import annotations

import pytest
import torch

from mma_edu import zoo
from mma_edu.data import mnist_offline

MIN_CLEAN = 0.90  # every model, on all 1,000 test digits
MAX_TOP_CLASS = 0.20  # a constant classifier gives one class to all digits; the test set has 10% of each
MIN_ROBUST_OWN_EPS = 0.5  # a PGD-AT model is robust at its own ε on at least half the digits
PGD = ["pgd-0.1", "pgd-0.2", "pgd-0.3", "pgd-0.4"]
MMAS = ["mma-0.3", "mma-0.45", "omma-0.3", "omma-0.45"]


def measure_zoo() -> dict:
    """Per model: the manifest's eval block (500 digits; its clean accuracy as "clean_500"), with "clean" and
    "top" (top-class fraction) measured here on all 1,000 test digits."""
    man = zoo.manifest()
    test = mnist_offline().test
    out = {}
    for name in zoo.names():
        entry = man["models"][name]
        assert zoo._sha256(zoo.weight_path(name)) == entry["sha256"], f"{name}: weights are not the measured ones"
        with torch.no_grad():
            pred = zoo.load(name)(test.x).argmax(1)
        out[name] = {**entry["eval"], "clean_500": entry["eval"]["clean"],
                     "clean": (pred == test.y).double().mean().item(),
                     "top": pred.bincount(minlength=10).max().item() / len(test)}
    return out


def assert_every_model_trained(out: dict) -> None:
    """High clean accuracy, no class for everything, and real robustness where adversarially trained."""
    for name, r in out.items():
        assert r["clean"] >= MIN_CLEAN, f"{name} did not train: clean accuracy {r['clean']:.3f}"
        assert r["top"] <= MAX_TOP_CLASS, f"{name} gives {r['top']:.0%} of the digits one class"
    for name in PGD:
        eps = f"{zoo.spec(name).size:g}"
        assert out[name]["robust"][eps] >= MIN_ROBUST_OWN_EPS, (name, out[name]["robust"])
    for name in PGD + MMAS:
        assert out[name]["robust"]["0.1"] > out["standard"]["robust"]["0.1"] + 0.2, (name, out[name]["robust"])


@pytest.fixture(scope="module")
def trained() -> dict:
    """The zoo's numbers (:func:`measure_zoo`), only if every model trained: otherwise every claim test errors."""
    out = measure_zoo()
    assert_every_model_trained(out)
    return out


def test_every_model_trained(trained):
    assert set(trained) == set(zoo.names())


def test_a_collapsed_baseline_fails_the_precondition(trained):
    # What notebook 05's fast PGD-AT run used to be: one class for every digit, 10.6% at every eps.
    collapsed = {k: dict(v) for k, v in trained.items()}
    collapsed["pgd-0.4"].update(clean=0.106, top=1.0, robust={e: 0.106 for e in ("0.1", "0.2", "0.3", "0.4")})
    with pytest.raises(AssertionError, match="pgd-0.4 did not train"):
        assert_every_model_trained(collapsed)


@pytest.mark.parametrize("name", MMAS)
def test_mma_grows_margins_at_high_clean_accuracy(trained, name):
    # Standard: median ℓ∞ margin 0.092; MMA/OMMA 0.30–0.38 at clean accuracy 95.2–97.1%.
    assert trained[name]["median_margin"] >= 1.5 * trained["standard"]["median_margin"], trained[name]
    assert trained[name]["clean"] >= 0.95, trained[name]["clean"]


def test_the_large_pgd_eps_is_far_above_the_typical_margin(trained):
    # Standard training's median margin (0.092) is under a quarter of 0.4: PGD-AT at 0.4 over-perturbs most digits.
    assert trained["standard"]["median_margin"] <= 0.4 / 2


@pytest.mark.parametrize("name", MMAS)
def test_pgd_far_above_the_margins_gives_up_clean_accuracy(trained, name):
    # PGD-AT 0.4: 93.1% clean vs 95.2–97.1% for MMA/OMMA (1,000 digits).
    assert trained["pgd-0.4"]["clean"] <= trained[name]["clean"] - 0.02, (trained["pgd-0.4"]["clean"],
                                                                          trained[name]["clean"])


_NOT_AT_045 = pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "does not hold on this budget: at eps 0.1 PGD-AT 0.4 gets 90.4% vs 90.2% (MMA-0.45) and 89.6% (OMMA-0.45); "
    "it holds against d_max 0.3 (92.8%)"))


@pytest.mark.parametrize("name", ["mma-0.3", "omma-0.3", pytest.param("mma-0.45", marks=_NOT_AT_045),
                                  pytest.param("omma-0.45", marks=_NOT_AT_045)])
def test_pgd_far_above_the_margins_gives_up_small_eps_robustness(trained, name):
    assert trained["pgd-0.4"]["robust"]["0.1"] <= trained[name]["robust"]["0.1"] - 0.01, (
        trained["pgd-0.4"]["robust"], trained[name]["robust"])


@pytest.mark.parametrize("eps", [
    pytest.param("0.1", marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
        "does not hold on this budget: at eps 0.1 the best PGD-AT (0.2) gets 93.0%, the best MMA 92.8% "
        "(a tie: one digit)"))),
    "0.2",  # best PGD-AT (0.3): 87.2% vs best MMA (OMMA-0.45): 81.8%
])
def test_a_well_chosen_pgd_eps_beats_mma_at_small_eps(trained, eps):
    best_pgd = max(trained[n]["robust"][eps] for n in PGD)
    best_mma = max(trained[n]["robust"][eps] for n in MMAS)
    assert best_pgd >= best_mma + 0.01, (eps, best_pgd, best_mma)


@pytest.mark.parametrize("pair", [
    ("mma-0.3", "mma-0.45"),
    pytest.param(("omma-0.3", "omma-0.45"), marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
        "does not hold on this budget for OMMA: robust accuracy at eps 0.1 falls 3.2 points (92.8% -> 89.6%) "
        "from d_max 0.3 to 0.45; clean accuracy (-1.8) and median margin (+21%) stay within bounds"))),
])
def test_mma_is_fairly_insensitive_to_d_max(trained, pair):
    # d_max up by half: clean accuracy within 2 points, median margin within 25%, robust accuracy at
    # eps <= 0.2 within 3 points. (PGD-AT from eps 0.3 to 0.4 loses 3.3 points of clean accuracy.)
    a, b = trained[pair[0]], trained[pair[1]]
    assert abs(a["clean"] - b["clean"]) <= 0.02, (a["clean"], b["clean"])
    assert max(a["median_margin"], b["median_margin"]) <= 1.25 * min(a["median_margin"], b["median_margin"])
    for eps in ("0.1", "0.2"):
        assert abs(a["robust"][eps] - b["robust"][eps]) <= 0.03, (eps, a["robust"], b["robust"])


def test_raising_d_max_costs_less_clean_accuracy_than_raising_pgd_eps(trained):
    # MMA 0.3 -> 0.45: -1.0 point; PGD-AT 0.3 -> 0.4: -3.3 points (1,000 digits).
    mma_drop = trained["mma-0.3"]["clean"] - trained["mma-0.45"]["clean"]
    pgd_drop = trained["pgd-0.3"]["clean"] - trained["pgd-0.4"]["clean"]
    assert mma_drop <= pgd_drop - 0.01, (mma_drop, pgd_drop)


def test_mma_is_more_robust_at_large_eps_than_pgd_models_as_accurate(trained):
    # MMA's gain is clean accuracy and large-ε robustness together: every PGD-AT model at least as
    # accurate as MMA-0.45 (pgd-0.1, 0.2, 0.3) is at most 0.2% robust at eps 0.4; MMA-0.45 31.8%.
    mma = trained["mma-0.45"]
    rivals = [n for n in PGD if trained[n]["clean"] >= mma["clean"]]
    assert rivals, "no PGD-AT model is as accurate as MMA-0.45"
    for n in rivals:
        assert mma["robust"]["0.4"] >= trained[n]["robust"]["0.4"] + 0.1, (n, trained[n]["robust"], mma["robust"])


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "does not hold on this budget: PGD-AT 0.4 has the best AvgAcc (80.2%: 93.6 / 90.4 / 84.2 / 75.2 / 57.6) "
    "vs MMA-0.45 71.7% (95.8 / 90.2 / 80.4 / 60.2 / 31.8); PGD-AT 0.4 is more robust at every eps >= 0.2 "
    "at a cost of 2.2 points of clean accuracy"))
def test_mma_has_the_best_avg_acc(trained):
    # The paper's MNIST headline: MMA-0.45 has the best AvgAcc (mean of clean and robust accuracies).
    def avg_acc(r):
        return (r["clean_500"] + sum(r["robust"].values())) / (1 + len(r["robust"]))

    best = max(PGD + MMAS, key=lambda n: avg_acc(trained[n]))
    assert best in ("mma-0.45", "omma-0.45"), {n: round(avg_acc(trained[n]), 3) for n in PGD + MMAS}
