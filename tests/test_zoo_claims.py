"""The paper's claims (§7 of the notes) on the ℓ∞ model zoo, judged by one rule (``mma_edu.claims.linf_claims``).

The zoo (``mma_edu/zoo.py``): nine SmallCNNs trained on the 4,000 offline MNIST digits with one budget (20
epochs, Adam 1e-3, batch 50, 10 attack steps). Every claim is judged on the manifest's per-digit outcomes on the
same 500 evaluation digits (``per_digit``: clean, robust at each ε under PGD 20 steps × 2 restarts CE+CW, margin;
``tests/test_zoo.py`` re-measures the shipped weights): accuracies by the exact McNemar test at α = 0.05,
margins, accuracy drops and AvgAcc by a paired 95% interval (``mma_edu.verdicts``). Notebook 05 calls the same
functions on the digits it measures itself.

First every model must have trained — a claim resting on a failed baseline proves nothing — and
``linf_claims`` judges nothing until it has (``claims.require_trained``).

Each claim's verdict is asserted as measured: "holds", "does not hold" or "unresolved at this n". A rebuilt
zoo that changes any verdict fails here, with the claim's numbers in the message. The second half checks that
every claim can fail: on synthetic outcomes whose verdict is known.
"""

from __future__ import annotations

import pytest
import torch

from mma_edu import claims as C
from mma_edu import verdicts as V
from mma_edu import zoo

H, F, U = V.HOLDS, V.FAILS, V.UNRESOLVED
MEASURED = C.ZOO_LINF_VERDICTS  # the verdicts measured on the shipped zoo, with their numbers


@pytest.fixture(scope="module")
def zoo_claims() -> dict[str, C.Claim]:
    man = zoo.manifest()
    for name in zoo.names():
        assert zoo._sha256(zoo.weight_path(name)) == man["models"][name]["sha256"], (
            f"{name}: weights are not the measured ones")
    out = C.outcomes_from_manifest(man)
    assert set(out) == set(zoo.names())
    return {c.key: c for c in C.linf_claims(out)}  # raises NotTrained unless every model trained


@pytest.mark.parametrize("rows", ["eval", "check"])
def test_per_digit_outcomes_are_the_measured_ones(rows):
    # The per-digit outcomes reproduce the manifest's summaries: all 500 digits ("eval") and the first check_n,
    # which tests/test_zoo.py re-measures from the shipped weights ("check").
    man = zoo.manifest()
    for name, o in C.outcomes_from_manifest(man).items():
        want = man["models"][name][rows]
        k = want["n"]
        assert o.correct[:k].double().mean().item() == pytest.approx(want["clean"], abs=1e-12), name
        for e, acc in want["robust"].items():
            assert o.robust[e][:k].double().mean().item() == pytest.approx(acc, abs=1e-12), (name, e)
        assert o.margin[:k].median().item() == pytest.approx(want["median_margin"], abs=1e-5), name


def test_every_model_trained():
    assert C.untrained(C.outcomes_from_manifest(zoo.manifest())) == []


def test_every_claim_has_its_measured_verdict(zoo_claims):
    assert set(zoo_claims) == set(MEASURED)


@pytest.mark.parametrize("key", list(MEASURED))
def test_claim_verdict_as_measured(zoo_claims, key):
    claim = zoo_claims[key]
    assert claim.verdict.verdict == MEASURED[key], str(claim)


# ---------------------------------------------------------------------------------------------------------------
# The claims on synthetic outcomes whose verdicts are known. Every model's digits are "comonotone": digit i is right
# (or robust at ε) where u_i < rate, with one u shared by all models (N evenly spaced values in a fixed shuffled
# order), so a model with the higher rate is right on a superset of digits: exactly N·(rate_a − rate_b) discordant
# digits, all for A (McNemar p = 2^(1 − that)).

N = 500
EPS = ("0.1", "0.2", "0.3", "0.4")
# (clean, robust at 0.1, 0.2, 0.3, 0.4, margin scale): a zoo on which every claim holds.
HOLDS_ALL = {
    "standard": (0.95, 0.40, 0.00, 0.00, 0.00, 0.09),
    "pgd-0.1": (0.97, 0.90, 0.30, 0.00, 0.00, 0.15),
    "pgd-0.2": (0.96, 0.95, 0.93, 0.05, 0.00, 0.22),
    "pgd-0.3": (0.96, 0.93, 0.90, 0.80, 0.00, 0.30),
    "pgd-0.4": (0.91, 0.85, 0.80, 0.70, 0.55, 0.35),
    "mma-0.3": (0.98, 0.92, 0.80, 0.50, 0.00, 0.30),
    "mma-0.45": (0.97, 0.90, 0.85, 0.80, 0.75, 0.40),
    "omma-0.3": (0.97, 0.92, 0.80, 0.55, 0.00, 0.31),
    "omma-0.45": (0.965, 0.88, 0.83, 0.78, 0.70, 0.38),
}


def synthetic(table: dict) -> dict[str, C.Outcomes]:
    u = (torch.randperm(N, generator=torch.Generator().manual_seed(0)).double() + 0.5) / N
    out = {}
    for name, (clean, *rob, scale) in table.items():
        correct = u < clean
        out[name] = C.Outcomes(correct, {e: u < r for e, r in zip(EPS, rob)},
                               torch.where(correct, scale * (1.5 - u), torch.zeros(N)).double(), 0.11)
    return out


def verdicts_of(table: dict) -> dict[str, str]:
    return {c.key: c.verdict.verdict for c in C.linf_claims(synthetic(table))}


def test_every_claim_holds_where_the_data_says_so():
    got = verdicts_of(HOLDS_ALL)
    assert got == {k: V.HOLDS for k in got}, got
    assert len(got) == 15


# For each claim: a change of the table that makes the data contradict it.
FAILING = {
    "1_margins_grow": {"mma-0.45": (0.97, 0.90, 0.85, 0.80, 0.75, 0.12)},
    "2a_eps_far_above_margin": {"standard": (0.95, 0.40, 0.00, 0.00, 0.00, 0.30)},
    "2b_pgd04_gives_up_clean": {"pgd-0.4": (0.99, 0.85, 0.80, 0.70, 0.55, 0.35)},
    "2c_pgd04_gives_up_eps01_vs_mma03": {"pgd-0.4": (0.99, 0.96, 0.80, 0.70, 0.55, 0.35)},
    "2d_pgd04_gives_up_eps01_vs_mma045": {"pgd-0.4": (0.99, 0.96, 0.80, 0.70, 0.55, 0.35)},
    "3_chosen_pgd_beats_mma_at_0.1": {"mma-0.3": (0.99, 0.985, 0.80, 0.50, 0.00, 0.30)},
    "3_chosen_pgd_beats_mma_at_0.2": {"omma-0.3": (0.97, 0.96, 0.96, 0.55, 0.00, 0.31)},
    "4a_mma_drop_smaller": {"mma-0.45": (0.90, 0.90, 0.85, 0.80, 0.75, 0.40)},
    "4b_omma_drop_smaller": {"omma-0.45": (0.90, 0.88, 0.83, 0.78, 0.70, 0.38)},
    "4c_mma_dmax_costs_eps01": {"mma-0.45": (0.97, 0.96, 0.85, 0.80, 0.75, 0.40)},
    "4d_omma_dmax_costs_eps01": {"omma-0.45": (0.965, 0.95, 0.83, 0.78, 0.70, 0.38)},
    "4e_dmax_buys_eps04": {"mma-0.3": (0.98, 0.92, 0.80, 0.80, 0.78, 0.30)},
    "5a_eps04_vs_accurate_pgd": {"pgd-0.3": (0.96, 0.93, 0.90, 0.80, 0.80, 0.30)},
    "5b_eps04_matched_radius": {"pgd-0.4": (0.91, 0.85, 0.80, 0.80, 0.80, 0.35)},
    "6_mma_best_avg_acc": {"omma-0.45": (0.97, 0.95, 0.90, 0.85, 0.80, 0.38)},
}


@pytest.mark.parametrize("key", list(FAILING))
def test_each_claim_does_not_hold_where_the_data_contradicts_it(key):
    assert verdicts_of({**HOLDS_ALL, **FAILING[key]})[key] == V.FAILS


@pytest.mark.parametrize("key,change", [
    ("2b_pgd04_gives_up_clean", {"pgd-0.4": (0.97, 0.85, 0.80, 0.70, 0.55, 0.35)}),  # equal: nothing to judge by
    ("4c_mma_dmax_costs_eps01", {"mma-0.45": (0.97, 0.914, 0.85, 0.80, 0.75, 0.40)}),  # a few digits apart
    ("4a_mma_drop_smaller", {"mma-0.45": (0.92, 0.90, 0.85, 0.80, 0.75, 0.40)}),  # drops 5 vs 6 points
])
def test_a_difference_inside_the_noise_is_unresolved(key, change):
    assert verdicts_of({**HOLDS_ALL, **change})[key] == V.UNRESOLVED


def test_the_deciding_rival_is_named_and_is_the_worst():
    claims = {c.key: c for c in C.linf_claims(synthetic({**HOLDS_ALL, **FAILING["6_mma_best_avg_acc"]}))}
    assert "deciding: omma-0.45" in claims["6_mma_best_avg_acc"].text
    rival, v = C.all_of({"a": V.Verdict(V.HOLDS, 0.1, p=0.01), "b": V.Verdict(V.HOLDS, 0.05, p=0.04)})
    assert rival == "b"
    rival, v = C.all_of({"a": V.Verdict(V.HOLDS, 0.1, p=0.01), "b": V.Verdict(V.UNRESOLVED, 0.0, p=1.0),
                         "c": V.Verdict(V.FAILS, -0.1, p=0.01)})
    assert rival == "c" and v.verdict == V.FAILS


def test_claim_3_chooses_on_digits_it_does_not_judge():
    claims = {c.key: c for c in C.linf_claims(synthetic(HOLDS_ALL))}
    v = claims["3_chosen_pgd_beats_mma_at_0.2"]
    assert "pgd-0.2 over mma-0.45" in v.text and v.verdict.n == N - int(C.SELECT_FRACTION * N)


def test_a_collapsed_baseline_is_never_compared():
    # A PGD-AT 0.4 run stuck at one class (notebook 05's fast run once was): 2b would "hold" trivially.
    table = {**HOLDS_ALL, "pgd-0.4": (0.106, 0.106, 0.106, 0.106, 0.106, 0.0)}
    out = synthetic(table)
    out["pgd-0.4"] = C.Outcomes(out["pgd-0.4"].correct, out["pgd-0.4"].robust, out["pgd-0.4"].margin, 1.0)
    with pytest.raises(C.NotTrained, match="pgd-0.4 did not train") as err:
        C.linf_claims(out)
    assert "one class" in str(err.value) and "own eps" in str(err.value)
    assert C.untrained(synthetic(HOLDS_ALL)) == []
    with pytest.raises(ValueError, match="missing"):
        C.linf_claims({k: v for k, v in synthetic(HOLDS_ALL).items() if k != "omma-0.3"})


def test_live_measurements_and_the_manifest_give_the_same_outcomes():
    g = torch.Generator().manual_seed(3)
    m = zoo.Measurement(torch.rand(20, generator=g) < 0.8, torch.rand(20, 4, generator=g) < 0.5,
                        torch.rand(20, generator=g).double(), torch.randint(0, 10, (20,), generator=g))
    live = C.outcomes_from_measurements({"x": m})["x"]
    entry = {"eval": m.summary(), "per_digit": m.per_digit()}
    stored = C.outcomes_from_manifest({"models": {"x": entry}})["x"]
    assert torch.equal(live.correct, stored.correct) and live.robust.keys() == stored.robust.keys()
    assert all(torch.equal(live.robust[e], stored.robust[e]) for e in live.robust)
    assert torch.allclose(live.margin, stored.margin, atol=1e-5)
    assert live.top_class_fraction == stored.top_class_fraction == m.summary()["top_class_fraction"]
    with pytest.raises(ValueError, match="remeasure"):
        C.outcomes_from_manifest({"models": {"x": {"eval": m.summary()}}})
