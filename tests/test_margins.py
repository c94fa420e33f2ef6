"""Margin estimates against ground truth: closed form for linear models, dense search in 2-D."""

import pytest
import torch

from conftest import random_linear
from mma_edu import norms
from mma_edu.losses import logit_margin
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
