"""Paired verdicts (mma_edu/verdicts.py) against hand computations and scipy's exact binomial test."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import binomtest

from mma_edu import verdicts as V


@pytest.mark.parametrize("a_only,b_only", [(0, 0), (3, 0), (10, 4), (4, 10), (25, 12), (60, 41), (7, 7)])
def test_mcnemar_p_is_the_exact_two_sided_binomial_test_of_the_discordant_digits(a_only, b_only):
    want = 1.0 if a_only + b_only == 0 else binomtest(a_only, a_only + b_only, 0.5).pvalue
    assert V.mcnemar_p(a_only, b_only) == pytest.approx(min(1.0, want), rel=1e-9)


def test_mcnemar_by_hand():
    # 3 discordant digits, all for A: p = 2 * (1/2)^3 = 0.25.
    assert V.mcnemar_p(3, 0) == pytest.approx(0.25)
    # 6 discordant, 5 vs 1: P(X <= 1) = (1 + 6) / 64; doubled = 14/64.
    assert V.mcnemar_p(5, 1) == pytest.approx(14 / 64)
    with pytest.raises(ValueError, match="a_only"):
        V.mcnemar_p(-1, 2)


def _pair(n: int, a_only: int, b_only: int, both: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.zeros(n, dtype=torch.bool)
    b = torch.zeros(n, dtype=torch.bool)
    a[:a_only] = True
    b[a_only : a_only + b_only] = True
    a[a_only + b_only : a_only + b_only + both] = True
    b[a_only + b_only : a_only + b_only + both] = True
    return a, b


def test_the_three_verdicts():
    # 93.6% against 95.8% on 500 digits (11 digits apart): whether that is a finding depends on how the
    # models disagree. 2 against 13 discordant digits: p = 0.007, B is better.
    a, b = _pair(500, 2, 13, 466)
    v = V.compare(a, b)
    assert v.verdict == V.FAILS and v.b_only == 13 and v.difference == pytest.approx(-11 / 500)
    a, b = _pair(500, 8, 19, 460)  # the same 2.2 points from 8 against 19: p = 0.052, unresolved
    assert V.compare(a, b).verdict == V.UNRESOLVED
    a, b = _pair(500, 40, 5, 400)
    v = V.compare(a, b)
    assert v.holds and v.p < 1e-6 and "McNemar" in str(v)
    # Agreement everywhere: nothing to judge by.
    assert V.compare(a, a).verdict == V.UNRESOLVED and V.compare(a, a).p == 1.0


def test_a_larger_alpha_resolves_more():
    a, b = _pair(200, 9, 3, 150)  # p = 0.146
    assert V.compare(a, b).verdict == V.UNRESOLVED and V.compare(a, b, alpha=0.2).holds


def test_bad_inputs_name_the_parameter():
    a, b = _pair(10, 1, 1, 1)
    with pytest.raises(ValueError, match="same digits"):
        V.compare(a, b[:5])
    with pytest.raises(ValueError, match="alpha"):
        V.compare(a, b, alpha=1.5)
    with pytest.raises(ValueError, match="vector"):
        V.compare(a.view(2, 5), b.view(2, 5))
    with pytest.raises(ValueError, match="low <= difference"):
        V.interval_verdict(0.5, 0.6, 0.7)


def test_paired_mean_difference_matches_a_hand_computation():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 6, (300,), generator=g).double() / 5
    b = torch.randint(0, 6, (300,), generator=g).double() / 5
    v = V.paired_mean_difference(a, b)
    d = (a - b).numpy()
    half = 1.96 * d.std(ddof=1) / math.sqrt(300)
    assert v.difference == pytest.approx(d.mean()) and v.low == pytest.approx(d.mean() - half)
    assert v.verdict == (V.HOLDS if v.low > 0 else V.FAILS if v.high < 0 else V.UNRESOLVED)
    assert V.paired_mean_difference(a + 0.5, a).holds and V.paired_mean_difference(a, a + 0.5).verdict == V.FAILS


def test_per_digit_outcomes_round_trip_as_strings():
    t = torch.tensor([True, False, False, True, True])
    assert V.bits(t) == "10011" and torch.equal(V.unbits(V.bits(t)), t)
    with pytest.raises(ValueError, match="0s and 1s"):
        V.unbits("10x1")


def test_scores_with_a_unit_print_in_that_unit():
    a, b = torch.full((50,), 0.30, dtype=torch.float64), torch.full((50,), 0.10, dtype=torch.float64)
    a[0] = 0.31  # some spread, so the interval has a width
    v = V.paired_mean_difference(a, b, unit="(l-inf margin)")
    assert v.holds and "+0.2002 (l-inf margin)" in str(v) and "points" not in str(v)
    assert "points" in str(V.paired_mean_difference(a, b))
