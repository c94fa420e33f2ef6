"""Evaluation: the paper's protocol, its invariants, and the fast path's equality with the naive one."""

import pytest
import torch

from mma_edu.data import ArrayDataset, mnist_offline
from mma_edu.evaluate import compare, margin_distribution, restart_plan, robust_accuracy
from mma_edu.margins import grid_margins_2d
from mma_edu.models import Linear
from mma_edu.presets import eval_step_fraction


@pytest.fixture
def moons(moons_mlp):
    model, ds = moons_mlp
    return model, ArrayDataset(ds.x, ds.y, "moons")


EPS = [0.05, 0.1, 0.2, 0.3, 0.5]


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_robust_accuracy_is_monotone_and_averages_are_defined_as_in_the_paper(moons, norm):
    model, data = moons
    r = robust_accuracy(model, data, norm=norm, eps_list=EPS, steps=20, restarts=4, clip=None, progress=False)
    assert r.clean == 1.0
    assert all(b <= a for a, b in zip(r.accuracy, r.accuracy[1:]))
    assert r.accuracy[-1] < r.accuracy[0]
    assert r.avg_rob_acc == pytest.approx(sum(r.accuracy) / 5)
    assert r.avg_acc == pytest.approx((1.0 + sum(r.accuracy)) / 6)
    assert r.robust.shape == (200, 5)
    # Robust accuracy at ε can't exceed the fraction of points whose true margin exceeds ε.
    grid = grid_margins_2d(model, data.x, data.y, norm=norm, resolution=0.005, pad=1.0)
    for e, acc in zip(EPS, r.accuracy):
        assert acc <= (grid.margin > e - grid.tolerance).float().mean().item() + 1e-9


def test_fast_evaluation_gives_exactly_the_naive_result(moons):
    model, data = moons
    kw = dict(norm="linf", eps_list=EPS, steps=10, restarts=4, clip=None, progress=False, batch_size=64, seed=3)
    fast = robust_accuracy(model, data, **kw)
    naive = robust_accuracy(model, data, skip_broken=False, **kw)
    assert torch.equal(fast.robust, naive.robust)


def test_evaluation_leaves_the_callers_rng_alone(moons):
    model, data = moons
    torch.manual_seed(5)
    robust_accuracy(model, data, norm="l2", eps_list=[0.1], steps=2, restarts=1, clip=None, progress=False)
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(1), after)


def test_restart_plan_splits_losses_in_blocks():
    assert restart_plan(10, ("ce", "cw")) == ["ce"] * 5 + ["cw"] * 5
    assert restart_plan(3, ("ce", "cw")) == ["ce", "ce", "cw"]
    with pytest.raises(ValueError, match="losses must be one of"):
        restart_plan(2, ("ce", "xent"))


def test_paper_step_sizes():
    assert eval_step_fraction("mnist", "linf") == pytest.approx(1 / 40)
    assert eval_step_fraction("cifar10", "linf") == pytest.approx(1 / 4)
    assert eval_step_fraction("mnist", "linf", steps=50) == pytest.approx(1 / 20)


@pytest.mark.parametrize("eps_list, message", [([], "non-empty"), ([0.2, 0.1], "increasing"), ([-0.1], ">= 0")])
def test_bad_eps_lists(moons, eps_list, message):
    model, data = moons
    with pytest.raises(ValueError, match=message):
        robust_accuracy(model, data, norm="linf", eps_list=eps_list, clip=None, progress=False)


def test_margin_distribution_and_comparison_table(moons):
    model, data = moons
    res = margin_distribution(model, data, norm="l2", max_eps=1.0, clip=None, progress=False, batch_size=70)
    s = res.summary((0.1, 0.2))
    assert s["n"] == 200 and s["found"] == 1.0
    assert s["q25"] <= s["median"] <= s["q75"] and 0 <= s["frac>0.2"] <= s["frac>0.1"] <= 1
    table = compare({"mlp": model, "same": model}, data, norm="linf", eps_list=[0.1, 0.2], steps=5, restarts=1,
                    clip=None, progress=False).table()
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["model", "clean"] and "AvgAcc" in lines[0]
    assert lines[1].split()[1:] == lines[2].split()[1:]  # same model, same seed, same numbers


def _step_fraction_used(monkeypatch, data, **kw):
    """(step size / ε seen by the attack, the result's step_fraction) of one robust_accuracy run."""
    import mma_edu.evaluate as ev

    seen = []
    real = ev.pgd_with_margin

    def spy(model, x, y, eps, **akw):
        seen.append(akw["step_size"] / eps)
        return real(model, x, y, eps, **akw)

    monkeypatch.setattr(ev, "pgd_with_margin", spy)
    torch.manual_seed(0)
    model = kw.pop("model", None) or Linear(784, 10)
    r = robust_accuracy(model, data, eps_list=[0.1], restarts=1, progress=False, device="cpu", **kw)
    assert seen and all(s == pytest.approx(seen[0]) for s in seen)
    assert r.as_dict()["step_fraction"] == r.step_fraction
    return seen[0], r.step_fraction


def test_default_step_size_follows_the_dataset_as_the_paper(monkeypatch, moons):
    test = mnist_offline().test.subset(5)  # "mnist_offline/test[5]"
    # The README example (MNIST ℓ∞, 20 steps): the paper's 1/40 at 100 steps, scaled by 100/20.
    used, recorded = _step_fraction_used(monkeypatch, test, norm="linf", steps=20)
    assert used == pytest.approx(1 / 8) and recorded == pytest.approx(eval_step_fraction("mnist", "linf", 20))
    assert _step_fraction_used(monkeypatch, test, norm="linf", steps=100)[0] == pytest.approx(1 / 40)
    assert _step_fraction_used(monkeypatch, test, norm="l2", steps=100)[0] == pytest.approx(1 / 4)
    stand_in = ArrayDataset(test.x, test.y, "my digits")
    used, _ = _step_fraction_used(monkeypatch, stand_in, norm="linf", steps=100, dataset="cifar10")
    assert used == pytest.approx(1 / 4)
    # Unknown data (toys): the library's PGD default, 2.5/steps.
    model, data = moons
    used, _ = _step_fraction_used(monkeypatch, data, model=model, norm="l2", steps=20, clip=None)
    assert used == pytest.approx(2.5 / 20)
    # An explicit value wins.
    assert _step_fraction_used(monkeypatch, test, norm="linf", steps=20, step_fraction=0.3)[0] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="^dataset must be one of"):
        robust_accuracy(model, data, norm="l2", eps_list=[0.1], dataset="svhn", clip=None, progress=False)
    with pytest.raises(ValueError, match="^step_fraction must be"):
        robust_accuracy(model, data, norm="l2", eps_list=[0.1], step_fraction=float("nan"), clip=None, progress=False)


def test_binomial_interval_closed_forms_and_symmetry():
    from mma_edu.evaluate import binomial_ci

    # k = 0 and k = n have closed forms: (0, 1 - (a/2)^(1/n)) and ((a/2)^(1/n), 1).
    assert binomial_ci(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1))
    assert binomial_ci(10, 10) == pytest.approx((0.025 ** 0.1, 1.0))
    lo, hi = binomial_ci(270, 300)
    assert lo < 0.9 < hi and binomial_ci(30, 300) == pytest.approx((1 - hi, 1 - lo))
    assert binomial_ci(270, 300, 0.99)[0] < lo  # a higher level gives a wider interval
    with pytest.raises(ValueError, match="successes must be an integer"):
        binomial_ci(11, 10)
