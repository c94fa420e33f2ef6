"""FAB (our fast adaptive boundary attack) and estimate_margins(method="fab" | "best+fab") against ground truth.

Ground truths: a linear program and a constrained solver for the step onto a hyperplane in the box, the
closed form of linear models, the exact dynamic program of tests/test_fmn.py's gradient-masked model, and
adv-lib's FAB (the peer, from the ``attacks`` extra; skipped without it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize
from torch import nn

from mma_edu import norms, zoo
from mma_edu.attacks import fab
from mma_edu.attacks.fab import boundary_gradients
from mma_edu.losses import decides_otherwise, logit_margin
from mma_edu.margins import estimate_margins
from test_fmn import _assert_verified, _linear_case, _masked_case, exact_threshold_margins


def _scipy_step(w: np.ndarray, c: float, low: np.ndarray, high: np.ndarray, norm: str) -> float:
    """The length of the shortest δ with w·δ = c in [low, high] by a general solver (an LP for ℓ∞)."""
    d = w.size
    if norm == "linf":  # variables (δ, t): minimize t, −t <= δ_i <= t
        cost = np.r_[np.zeros(d), 1.0]
        a_ub = np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]])
        res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(2 * d), A_eq=np.r_[w, 0.0][None], b_eq=[c],
                      bounds=list(zip(low, high)) + [(0, None)], method="highs")
        assert res.status == 0
        return float(res.x[-1])
    res = minimize(lambda v: v @ v, np.zeros(d), jac=lambda v: 2 * v, bounds=list(zip(low, high)),
                   constraints=[{"type": "eq", "fun": lambda v: w @ v - c, "jac": lambda v: w}], method="SLSQP",
                   options={"ftol": 1e-14, "maxiter": 500})
    assert res.success, res.message
    return float(np.sqrt(res.x @ res.x))


@pytest.mark.parametrize("norm", norms.NORMS)
def test_the_step_onto_a_hyperplane_in_the_box_is_the_shortest(norm):
    g = torch.Generator().manual_seed(0)
    n, d = 40, 12
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    x[x < 0.3], x[x > 0.85] = 0.0, 1.0  # pixels at the box's walls, as in digits
    w = torch.randn(n, d, generator=g, dtype=torch.float64) * (torch.rand(n, d, generator=g) < 0.7)
    c = torch.randn(n, generator=g, dtype=torch.float64) * 1.5  # either side of the point
    c[:3] = 0.0
    low, high = -x, 1 - x
    step = norms.shortest_step_to_hyperplane(w, c, low, high, norm)
    assert ((step >= low) & (step <= high)).all()
    reach_hi = torch.where(w > 0, high, low).mul(w).sum(1)  # the most and least w·δ the box allows
    reach_lo = torch.where(w > 0, low, high).mul(w).sum(1)
    on = (c <= reach_hi) & (c >= reach_lo)
    assert on.sum() >= 25 and (~on).sum() >= 3  # both cases are tested
    torch.testing.assert_close((step * w).sum(1)[on], c[on], atol=1e-9, rtol=1e-9)
    assert (norms.norm_of(step[:3], norm) == 0).all()
    # where the box cannot reach the hyperplane: its corner nearest to it
    far = torch.where(c > reach_hi, reach_hi, reach_lo)
    torch.testing.assert_close((step * w).sum(1)[~on], far[~on])
    length = norms.norm_of(step, norm)
    for i in torch.nonzero(on).squeeze(1).tolist():
        ref = _scipy_step(w[i].numpy(), float(c[i]), low[i].numpy(), high[i].numpy(), norm)
        assert length[i].item() == pytest.approx(ref, rel=1e-6, abs=1e-9), (i, length[i].item(), ref)


def test_the_step_without_a_box_is_the_closed_form():
    g = torch.Generator().manual_seed(1)
    w, c = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    for norm in norms.NORMS:
        step = norms.shortest_step_to_hyperplane(w, c, None, None, norm)
        torch.testing.assert_close((step * w).sum(1), c)
        torch.testing.assert_close(norms.norm_of(step, norm), c.abs() / norms.dual_norm_of(w, norm))


def test_boundary_gradients_are_each_rival_class_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5)).double()
    x, y = torch.rand(4, 1, 3, 4, dtype=torch.float64), torch.tensor([0, 3, 4, 1])
    rivals, g, grad = boundary_gradients(model, x, y, 5)
    assert rivals.shape == (4, 4) and (rivals != y[:, None]).all()
    for i in range(4):
        for j, s in enumerate(rivals[i].tolist()):
            xi = x[i : i + 1].clone().requires_grad_(True)
            out = model(xi)[0]
            (ref,) = torch.autograd.grad(out[s] - out[y[i]], xi)
            torch.testing.assert_close(grad[i, j], ref[0])
            torch.testing.assert_close(g[i, j], (out[s] - out[y[i]]).detach())


@pytest.mark.parametrize("norm", norms.NORMS)
def test_fab_reaches_the_closed_form_on_linear_models(norm):
    model, x, y, exact = _linear_case(norm)
    res = fab(model, x, y, norm=norm, clip=None)
    assert res.found.all()
    ratio = res.length / exact
    # A real perturbation is never shorter than the margin. FAB projects onto the nearest hyperplane: on a
    # linear model its first step is the exact one, overshot by η; the bisection then ends 1/2^10 of it away.
    assert (ratio >= 1 - 1e-9).all()
    assert ratio.max() <= 1.001, ratio.max()  # measured 1.0003 on every example
    with torch.no_grad():
        assert decides_otherwise(model(res.x_adv), y).all()


def test_every_point_fab_reports_flips_beyond_rounding_even_where_its_iterates_stop_on_a_tie():
    """A model whose iterates land exactly on the boundary (logits tie): FAB's own test counts the tie, so it
    moves on; the point it reports is lengthened until a forward pass of its own decides otherwise."""

    class Tie(nn.Module):  # f_1 − f_0 = x_0 + x_1 − 1, exactly representable steps
        def forward(self, x):
            return torch.stack([torch.zeros_like(x[:, 0]), x[:, 0] + x[:, 1] - 1.0], 1)

    x = torch.tensor([[0.25, 0.25], [0.5, 0.0], [0.125, 0.375]])
    y = torch.zeros(3, dtype=torch.long)
    res = fab(Tie(), x, y, norm="l2", steps=20, clip=(0.0, 1.0))
    assert res.found.all()
    exact = (1 - x.sum(1)) / 2**0.5
    assert (res.length >= exact).all() and (res.length <= 1.001 * exact).all(), res.length / exact
    for i in range(3):  # each alone, and in float64
        assert decides_otherwise(Tie()(res.x_adv[i : i + 1]), y[i : i + 1]).all()
        assert logit_margin(Tie()(res.x_adv[i : i + 1].double()), y[i : i + 1]).item() > 0


def test_on_the_threshold_model_fab_is_fooled_and_best_plus_fab_keeps_fmns_margin():
    """The decoy pixels of tests/test_fmn.py's model fool FAB's linearization (2.3x the exact margin): why
    "best+fab" keeps FMN and AN-PGD beside FAB instead of replacing them."""
    model, x, y = _masked_case()
    r_dp, r_low = exact_threshold_margins(model, x, budget_steps=600, radius=0.35)
    out = {}
    for method in ("fab", "best+fab"):
        torch.manual_seed(0)
        out[method] = res = estimate_margins(model, x, y, norm="l2", max_eps=1.0, method=method)
        assert res.found.all()
        _assert_verified(model, x, y, res, "l2", (0.0, 1.0))
        assert (res.margin >= r_low - 1e-9).all()
    assert (out["fab"].margin / r_dp).median() > 1.5  # measured 2.34
    assert (out["best+fab"].margin <= 1.02 * r_dp).all(), (out["best+fab"].margin / r_dp).max()


def test_best_plus_fab_is_never_longer_than_best_or_fab_alone():
    model = zoo.load("pgd-0.3").eval()
    data = zoo.eval_data(24)
    res = {}
    for method in ("best", "fab", "best+fab"):
        torch.manual_seed(0)
        res[method] = estimate_margins(model, data.x, data.y, norm="l2", max_eps=10.0, method=method, refine=1,
                                       fmn_steps=40, fab_steps=40)
        _assert_verified(model, data.x, data.y, res[method], "l2", (0.0, 1.0))
    both = res["best+fab"]
    assert (both.margin <= res["best"].margin + 1e-6).all() and (both.margin <= res["fab"].margin + 1e-6).all()
    assert set(both.found_by_counts()) <= {"clean", "anpgd", "fmn", "fab"}


def test_fab_settings_are_checked():
    model, x, y, _ = _linear_case("l2", n=4)
    for kwargs, name in (({"eta": 0.9}, "eta"), ({"beta": 1.0}, "beta"), ({"beta": 0.0}, "beta"),
                         ({"alpha_max": 1.5}, "alpha_max"), ({"steps": 0}, "steps"), ({"restarts": 0}, "restarts"),
                         ({"max_eps": -1.0}, "max_eps"), ({"seed": 1.5}, "seed")):
        with pytest.raises(ValueError, match=name):
            fab(model, x, y, norm="l2", clip=None, **kwargs)
    with pytest.raises(ValueError, match="fab_steps"):
        estimate_margins(model, x, y, norm="l2", max_eps=1.0, clip=None, method="fab", fab_steps=0)
    with pytest.raises(ValueError, match="targets"):
        estimate_margins(model, x, y, norm="l2", max_eps=1.0, clip=None, method="fab", targets=2)
    with pytest.raises(ValueError, match="best\\+fab"):
        estimate_margins(model, x, y, norm="l2", max_eps=1.0, clip=None, method="fabulous")


def test_fab_with_restarts_is_deterministic_given_its_seed_and_leaves_the_global_rng_alone():
    model, x, y, _ = _linear_case("l2", n=16)
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    a = fab(model, x, y, norm="l2", clip=None, steps=10, restarts=3, max_eps=5.0, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = fab(model, x, y, norm="l2", clip=None, steps=10, restarts=3, max_eps=5.0, seed=3)
    assert torch.equal(a.x_adv, b.x_adv)


@pytest.mark.parametrize("norm", norms.NORMS)
def test_fab_matches_the_peers_fab_on_a_zoo_model(norm):
    """Our FAB against adv-lib's (the ``attacks`` extra), same settings (100 steps, one start), 40 digits of an
    ℓ∞-PGD-trained zoo model: per digit ours is at most 0.1% longer (the same iterates; ours also bisects)."""
    pytest.importorskip("adv_lib", reason="adv-lib is not installed (see mma_edu.peer for installing it)")
    from mma_edu.peer import advlib_distances

    model = zoo.load("pgd-0.3").eval()
    data = zoo.eval_data(40)
    peer, found, correct = advlib_distances(model, data, attack="fab", norm=norm, steps=100)
    ours = fab(model, data.x, data.y, norm=norm, steps=100, max_eps=10.0)
    both = found & correct & ours.found
    assert both.sum() >= 30
    ratio = ours.length[both] / peer[both]
    assert ratio.max() <= 1.002, ratio.max()
    assert (ours.found | ~(found & correct)).all()  # ours breaks every digit the peer breaks


def _masked_l2_check(model, n: int) -> dict:
    """"best" and "best+fab" on the first n evaluation digits, and their per-digit ratio."""
    data = zoo.eval_data(n)
    out = {"data": data}
    for method in ("best", "best+fab"):
        torch.manual_seed(0)
        out[method] = estimate_margins(model, data.x, data.y, norm="l2", max_eps=10.0, method=method, refine=1)
        _assert_verified(model, data.x, data.y, out[method], "l2", (0.0, 1.0))
    return out


def test_on_the_zoos_masked_pgd_model_best_plus_fab_shortens_the_digits_best_overestimates():
    """The zoo's ℓ∞ PGD-AT model at ε 0.4 masks ℓ2 gradients on some digits: there FAB finds perturbations much
    shorter than AN-PGD's and FMN's (measured on 100 digits: best+fab/best median 1.000, 15% of digits below 0.95,
    the least 0.45)."""
    model = zoo.load("pgd-0.4").eval()
    out = _masked_l2_check(model, 60)
    best, both = out["best"], out["best+fab"]
    keep = best.found & (best.margin > 0)
    assert keep.float().mean() >= 0.9  # the model is a trained one (measured: 59 of 60 digits correct)
    ratio = both.margin[keep] / best.margin[keep]
    assert (ratio <= 1 + 1e-6).all()  # one more search never lengthens
    assert (ratio < 0.95).float().mean() >= 0.08, ratio  # the masking this test is about (measured 15%)
    assert both.found_by_counts().get("fab", 0) >= 5


@pytest.fixture(scope="module")
def masked_small_cnn():
    """A SmallCNN PGD-trained (ℓ∞, ε 0.3, 600 steps, seeded) on 2,000 offline digits: a model that masks ℓ2
    gradients on some digits, trained in the test (about 20 s on one thread). Only where the peer is installed."""
    pytest.importorskip("adv_lib", reason="adv-lib is not installed (see mma_edu.peer for installing it)")
    from mma_edu.data import mnist_offline
    from mma_edu.models import build_model
    from mma_edu.train import PGDAT, fit

    torch.manual_seed(0)
    model = build_model("small_cnn")
    fit(model, mnist_offline().train.subset(2000, seed=0), PGDAT(0.3, "linf", steps=10, warmup_steps=150),
        steps=600, batch_size=50, lr=1e-3, device="cpu", progress=False)
    return model.eval()


def test_on_a_masked_model_trained_here_best_plus_fab_is_within_5_percent_of_the_peers_fab(masked_small_cnn):
    """The issue-24 requirement: on a gradient-masked ℓ∞-trained model, the ℓ2 estimate within 5% of FAB's
    (adv-lib's, from the extra). Measured on 60 digits: "best" 0.89x the peer's median but above it by more than
    5% on 17% of digits (p90 1.10); "best+fab" within 5% on every digit (p90 1.000)."""
    from mma_edu.peer import advlib_distances

    out = _masked_l2_check(masked_small_cnn, 60)
    peer, found, correct = advlib_distances(masked_small_cnn, out["data"], attack="fab", steps=100)
    ok = found & correct
    assert correct.float().mean() >= 0.9  # it trained
    over = {}
    for method in ("best", "best+fab"):
        res = out[method]
        keep = ok & res.found
        ratio = res.margin[keep] / peer[keep]
        over[method] = (ratio > 1.05).float().mean().item()
        assert res.margin[keep].median() <= 1.05 * peer[keep].median()
    assert over["best"] >= 0.05, over  # the masking: without FAB some digits are overestimated
    assert over["best+fab"] <= 0.02, over
