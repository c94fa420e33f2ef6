"""Margin estimates against ground truth: closed form for linear models, dense search in 2-D."""

import copy

import pytest
import torch
from torch import Tensor, nn

from conftest import random_linear
from mma_edu import norms, zoo
from mma_edu.attacks import anpgd, fmn, pgd_with_margin
from mma_edu.losses import decides_otherwise, logit_margin, rounding_slack
from mma_edu.margins import estimate_margins, grid_margins_2d, linear_margins, linear_shortest_perturbation


@pytest.mark.parametrize("norm", norms.NORMS)
def test_linear_margin_is_attained_and_not_beatable(norm):
    # δ* reaches the boundary exactly, has length d, and no random perturbation shorter than d flips.
    model = random_linear(5, 4, seed=3)
    w, b = model.fc.weight.detach(), model.fc.bias.detach()
    x = torch.randn(50, 5, dtype=torch.float64)
    y = model(x).argmax(1)
    d, delta = linear_shortest_perturbation(w, b, x, y, norm=norm)
    torch.testing.assert_close(linear_margins(w, b, x, y, norm=norm), d)
    torch.testing.assert_close(norms.norm_of(delta, norm), d)
    torch.testing.assert_close(logit_margin(model(x + delta), y).detach(), torch.zeros(50, dtype=torch.float64),
                               atol=1e-9, rtol=0)
    for _ in range(20):
        u = torch.randn(50, 5, dtype=torch.float64)
        u = u / norms.norm_of(u, norm)[:, None]
        assert (logit_margin(model(x + 0.999 * d[:, None] * u), y) < 0).all()


def test_linear_margins_of_misclassified_points_are_zero():
    model = random_linear(8, 3)
    x = torch.randn(100, 8, dtype=torch.float64)
    wrong = (model(x).argmax(1) + 1) % 3
    assert (linear_margins(model.fc.weight, model.fc.bias, x, wrong, norm="l2") == 0).any()
    right = model(x).argmax(1)
    assert (linear_margins(model.fc.weight, model.fc.bias, x, right, norm="l2") > 0).all()


@pytest.mark.parametrize("norm", norms.NORMS)
def test_estimate_matches_exact_linear_margins(norm):
    model = random_linear(50, 10, seed=0)
    x = torch.randn(300, 50, dtype=torch.float64)
    y = model(x).argmax(1)
    y[:20] = (y[:20] + 1) % 10  # some misclassified points
    exact = linear_margins(model.fc.weight.detach(), model.fc.bias.detach(), x, y, norm=norm)
    max_eps = 1.5 * float(exact.max())
    res = estimate_margins(model, x, y, norm=norm, max_eps=max_eps, clip=None)
    assert res.found.all()
    wrong = exact == 0
    assert (res.margin[wrong] == 0).all()
    # A found perturbation is real, so it is never shorter than the exact margin.
    tol = max_eps / 2**12
    assert (res.margin >= exact - tol).all()
    ratio = res.margin[~wrong] / exact[~wrong]
    assert ratio.median() <= 1.01, ratio.median()
    assert ratio.quantile(0.95) <= 1.05, ratio.quantile(0.95)
    # and the returned points really are misclassified and as long as reported
    assert (logit_margin(model(res.x_adv), y) >= 0).all()
    torch.testing.assert_close(norms.norm_of(res.x_adv - x, norm), res.margin)


@pytest.mark.parametrize("norm", norms.NORMS)
def test_estimate_matches_dense_search_on_a_trained_2d_mlp(moons_mlp, norm):
    model, ds = moons_mlp
    grid = grid_margins_2d(model, ds.x, ds.y, norm=norm, resolution=0.005, pad=1.0)
    est = estimate_margins(model, ds.x, ds.y, norm=norm, max_eps=1.0, clip=None)
    both = grid.found & est.found
    assert both.float().mean() > 0.95
    diff = (est.margin - grid.margin)[both]
    assert (diff.abs() <= grid.tolerance).float().mean() >= 0.95
    # The estimate is a real perturbation: never below the (grid-resolved) true margin.
    assert (diff >= -grid.tolerance).all()


@pytest.mark.parametrize("norm", norms.NORMS)
def test_dense_search_recovers_closed_form_margins_in_2d(norm):
    # The two ground truths agree with each other on a 2-D linear model.
    model = random_linear(2, 3, seed=5).float()
    x = torch.randn(100, 2)
    y = model(x).argmax(1)
    exact = linear_margins(model.fc.weight.detach(), model.fc.bias.detach(), x, y, norm=norm)
    grid = grid_margins_2d(model, x, y, norm=norm, resolution=0.01, pad=3.0)
    ok = grid.found
    assert ok.float().mean() > 0.9
    diff = grid.margin[ok] - exact[ok]
    assert (diff >= -1e-5).all() and (diff <= grid.tolerance + 1e-5).all()


def test_estimate_bad_input():
    model = random_linear(3, 2)
    x, y = torch.zeros(2, 3, dtype=torch.float64), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="max_eps must be a positive number"):
        estimate_margins(model, x, y, max_eps=0.0, clip=None)
    with pytest.raises(ValueError, match="refine must be an integer >= 0"):
        estimate_margins(model, x, y, max_eps=1.0, refine=-1, clip=None)
    with pytest.raises(ValueError, match="targets must be an integer >= 0"):
        estimate_margins(model, x, y, max_eps=1.0, targets="some", clip=None)
    with pytest.raises(ValueError, match=r"targets must be 'all' or <= the number of classes - 1 \(1\)"):
        estimate_margins(model, x, y, max_eps=1.0, targets=2, clip=None)
    with pytest.raises(ValueError, match="not 'fmn'"):
        estimate_margins(model, x, y, max_eps=1.0, targets="all", method="fmn", clip=None)
    with pytest.raises(ValueError, match="target must differ from y"):
        anpgd(model, x, y, 0.5, norm="l2", max_eps=1.0, target=y.clone(), clip=None)


def test_estimate_in_batches_is_as_good_as_one_batch():
    model = random_linear(10, 4)
    x = torch.rand(200, 10, dtype=torch.float64)
    y = model(x).argmax(1)
    exact = linear_margins(model.fc.weight.detach(), model.fc.bias.detach(), x, y, norm="l2")
    for batch_size in (None, 7):
        r = estimate_margins(model, x, y, max_eps=2.0, norm="l2", clip=None, batch_size=batch_size)
        assert r.margin.shape == (200,) and r.x_adv.shape == x.shape
        ratio = r.margin / exact
        assert (ratio >= 1 - 1e-6).all() and ratio.median() <= 1.01 and ratio.quantile(0.95) <= 1.05


# ----------------------------------------------------------------------------
# Every reported point flips: ties and rounding (issue 24)
# ----------------------------------------------------------------------------

class _BatchRounding(nn.Module):
    """A float32 linear 2-class model whose batched forward favours class 1 by ``shift`` (a rounding stand-in).

    Run on one example the logits are exact (up to float32); in a batch of
    more than one, class 1's logit is raised by ``shift`` — as a batched
    matrix product can round the same input differently. Points within
    ``shift`` of the boundary then look adversarial (L_LM ≥ 0) to the batched
    forward and are correct in a forward of their own.
    """

    def __init__(self, shift: float = 3e-7):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        self.shift = shift

    def forward(self, x: Tensor) -> Tensor:
        z = x @ self.w.T
        if x.shape[0] > 1:
            z = z + torch.tensor([0.0, self.shift])
        return z

    def exact_margin(self, x: Tensor, y: Tensor) -> Tensor:
        """In float64, without the shift: z_0 − z_1 = x_0 − x_1 (the margin the shift blurs)."""
        z = x.double() @ self.w.detach().double().T
        return logit_margin(z, y)


def _flips_on_its_own(model, x_adv: Tensor, y: Tensor) -> Tensor:
    """(N,) bool: each point misclassified in a forward of its own (batch of one)."""
    with torch.no_grad():
        return torch.cat([logit_margin(model(x_adv[i : i + 1]), y[i : i + 1]) > 0 for i in range(len(y))])


def test_tied_logits_do_not_count_as_adversarial():
    z = torch.tensor([[1.0, 1.0, -3.0], [2.0, 2.0 + 2.4e-7, 0.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 0, 0])
    assert (logit_margin(z, y)[:2] >= 0).all()  # the old test (>= 0) called both adversarial
    assert decides_otherwise(z, y).tolist() == [False, False, True]
    assert (rounding_slack(z) > 2.4e-7).all()
    assert rounding_slack(z.double()).max() < 1e-13  # float64 logits need far less slack


def test_points_within_batch_rounding_of_the_boundary_are_refused():
    # Without the slack, each estimator reports points that its batched forward calls adversarial and a
    # forward of the point on its own calls correct (checked: they did, before issue 24).
    model = _BatchRounding()
    g = torch.Generator().manual_seed(0)
    x = 0.25 + 0.5 * torch.rand(64, 2, generator=g)
    y = torch.zeros(64, dtype=torch.long)
    x[:, 1] = torch.minimum(x[:, 1], x[:, 0] - 0.01)  # class 0 everywhere, margins ≥ 0.01
    for method in ("anpgd", "fmn", "best"):
        res = estimate_margins(model, x, y, norm="l2", max_eps=1.0, method=method, search_steps=30, fmn_steps=60)
        assert res.found.all(), method
        assert _flips_on_its_own(model, res.x_adv, y).all(), method
        assert (model.exact_margin(res.x_adv, y) > 0).all(), method  # float64, no shift
    res = fmn(model, x, y, norm="l2", search_steps=30)
    assert res.found.all() and _flips_on_its_own(model, res.x_adv, y).all()
    a = anpgd(model, x, y, 0.05, norm="l2", max_eps=1.0, loss="lm", search_steps=30)
    up = x + a.upper[:, None] * a.direction
    assert _flips_on_its_own(model, up[a.found], y[a.found]).all()
    # The paper's estimate (the last midpoint of the >= 0 bisection) sits inside the rounding band,
    # below the verified upper end, which is longer only by that band.
    assert (a.eps < a.upper).all() and ((a.upper - a.eps) < 1e-4).all()


def test_pgd_counts_a_tie_as_robust():
    model = _BatchRounding(shift=0.0)
    x = torch.tensor([[0.6, 0.4], [0.5, 0.5], [0.3, 0.7]])
    y = torch.zeros(3, dtype=torch.long)
    # eps 0 leaves every point where it is: one correct, one tied (L_LM = 0), one wrong.
    _, lm, broken = pgd_with_margin(model, x, y, 0.0, norm="l2", steps=1, clip=None)
    assert lm[1] == 0 and broken.tolist() == [False, False, True]


@pytest.mark.parametrize("name", ["standard", "pgd-0.3"])
def test_verified_points_flip_in_any_batch_and_in_float64(name):
    # Real rounding: zoo models, points bisected to within 2^-30 of the boundary by a batched >= 0 test.
    model = zoo.load(name)
    data = zoo.eval_data(60)
    res = fmn(model, data.x, data.y, norm="l2", steps=30, search_steps=0)
    xc, yc, d = data.x[res.found], data.y[res.found], (res.x_adv - data.x)[res.found]
    lo, hi = torch.zeros(len(yc)), torch.ones(len(yc))
    with torch.no_grad():
        for _ in range(30):
            mid = (lo + hi) / 2
            adv = logit_margin(model(xc + mid[:, None, None, None] * d), yc) >= 0
            lo, hi = torch.where(adv, lo, mid), torch.where(adv, mid, hi)
        pts = xc + hi[:, None, None, None] * d
        logits = model(pts)
        alone = torch.cat([logit_margin(model(pts[i : i + 1]), yc[i : i + 1]) for i in range(len(yc))])
        by7 = torch.cat([logit_margin(model(pts[i : i + 7]), yc[i : i + 7]) for i in range(0, len(yc), 7)])
        f64 = logit_margin(copy.deepcopy(model).double()(pts.double()), yc)
    # The test can fail: the batched >= 0 test accepts points that other forwards reject ...
    assert ((alone <= 0) | (by7 <= 0) | (f64 <= 0)).any()
    # ... and the slack's verdict holds in every other forward.
    ok = decides_otherwise(logits, yc)
    assert (alone[ok] > 0).all() and (by7[ok] > 0).all() and (f64[ok] > 0).all()
    # The slack is not vacuous: the rounding it covers is at most half of it here.
    unit = rounding_slack(logits)
    for other in (alone, by7, f64.float()):
        assert ((other - logit_margin(logits, yc)).abs() <= unit / 2).all()


@pytest.mark.parametrize("norm", norms.NORMS)
def test_targets_reach_the_nearest_class_on_linear_models(norm):
    # The untargeted search climbs toward the class that leads at x; on 300 points of a 10-class linear model
    # its worst estimate is 1.42x (linf) / 1.32x (l2) the closed form. One targeted search per rival class
    # reaches the nearest one: worst 1.0002 / 1.022.
    model = random_linear(50, 10, seed=0)
    x = torch.randn(300, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(1)
    exact = linear_margins(model.fc.weight.detach(), model.fc.bias.detach(), x, y, norm=norm)
    worst = {}
    for targets in (0, "all"):
        res = estimate_margins(model, x, y, norm=norm, max_eps=1.5 * float(exact.max()), clip=None, targets=targets)
        assert res.found.all() and (res.margin >= exact * (1 - 1e-9)).all()
        worst[targets] = (res.margin / exact).max()
    assert worst[0] > 1.1 and worst["all"] <= 1.03, worst
