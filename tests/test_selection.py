"""The reference's model-selection score (mean validation margin) against exact margins of linear models."""

import pytest
import torch

from conftest import random_linear
from mma_edu import norms
from mma_edu.data import ArrayDataset, mnist_offline
from mma_edu.margins import linear_margins
from mma_edu.models import Linear
from mma_edu.train import selection
from mma_edu.train.selection import REFERENCE_VALIDATION, reference_validation_margin


def _binary_linear(norm, n=300, dim=20):
    model = random_linear(dim, 2, seed=3)
    x = torch.randn(n, dim, dtype=torch.float64)
    y = model(x).argmax(1)
    exact = linear_margins(model.fc.weight.detach(), model.fc.bias.detach(), x, y, norm=norm)
    return model, ArrayDataset(x, y, "linear toy"), exact


@pytest.mark.parametrize("norm", norms.NORMS)
def test_estimate_is_an_upper_bound_close_to_the_exact_margin(norm):
    model, data, exact = _binary_linear(norm)
    max_eps = float(exact.max()) * 1.1
    eps = max_eps / 2  # where the reference's first bisection step is exact (see the next test)
    res = reference_validation_margin(model, data, norm=norm, max_eps=max_eps, eps=eps, step_size=2.5 * eps / 40,
                                      pgd_steps=40, clip=None, device="cpu")
    # The boundary along u (‖u‖ ≤ 1) is at a scale >= the margin; the last midpoint
    # is within half the last bracket, max_eps / 2^11, of it.
    tol = max_eps / 2**11
    assert (res.margins >= exact - tol * (1 + 1e-6)).all()
    # For two classes ℓ∞ PGD finds the optimal direction (a corner): the estimate is the margin to the
    # bisection's width. In ℓ2 some of the random start's orthogonal part survives 40 steps: a few % above.
    if norm == "linf":
        assert (res.margins - exact).abs().max() <= tol * 1.01
    assert ((res.margins - exact) / exact).median() < 0.03
    assert res.mean == pytest.approx(res.margins.double().mean().item())
    assert res.record["estimator"] == "reference" and res.record["images"] == 300
    assert res.record["eps"] == eps and res.record["pgd_steps"] == 40 and res.record["search_steps"] == 10


def test_multiclass_estimate_stays_above_the_exact_margin():
    model = random_linear(20, 5, seed=4)
    x = torch.randn(300, 20, dtype=torch.float64)
    y = model(x).argmax(1)
    exact = linear_margins(model.fc.weight.detach(), model.fc.bias.detach(), x, y, norm="l2")
    max_eps = float(exact.max()) * 1.1
    res = reference_validation_margin(model, ArrayDataset(x, y), norm="l2", max_eps=max_eps, eps=max_eps / 2,
                                      step_size=2.5 * max_eps / 2 / 40, pgd_steps=40, clip=None, device="cpu")
    assert (res.margins >= exact - max_eps / 2**11).all()
    assert ((res.margins - exact) / exact).median() < 0.1  # PGD on the soft margin: a good direction, not the best


def test_reference_start_reuses_the_pgd_loss_and_check_start_fixes_it():
    # With ε above max_eps/2, PGD at ε breaks examples whose margin lies in (max_eps/2, ε); the
    # reference books that success at max_eps/2, so their estimate falls below max_eps/2.
    model, data, exact = _binary_linear("linf")
    max_eps = float(exact.max()) * 1.1
    eps = 0.9 * max_eps
    kw = dict(norm="linf", max_eps=max_eps, eps=eps, step_size=2.5 * eps / 40, pgd_steps=40, clip=None, device="cpu")
    ref = reference_validation_margin(model, data, **kw)
    checked = reference_validation_margin(model, data, check_start=True, **kw)
    between = (exact > max_eps / 2 * 1.01) & (exact < eps * 0.99)
    assert between.sum() > 10
    assert (ref.margins[between] <= max_eps / 2).all()
    assert ((checked.margins - exact).abs() <= max_eps / 2**10).all()
    assert checked.record["start"] != ref.record["start"]


def test_dataset_settings_follow_the_reference(monkeypatch):
    seen = {}
    real = selection.perturb

    def spy(model, x, y, eps, **kw):
        seen.update(eps=eps[0].item(), step=kw["step_size"][0].item(), steps=kw["steps"], loss=kw["loss_fn"].__name__)
        return real(model, x, y, eps, **kw)

    monkeypatch.setattr(selection, "perturb", spy)
    data = mnist_offline().test.subset(6)  # named "mnist_offline/test[6]": MNIST settings
    torch.manual_seed(0)
    model = Linear(784, 10)
    res = reference_validation_margin(model, data, norm="linf", max_eps=0.4725, device="cpu")
    assert seen == {"eps": pytest.approx(0.3), "step": pytest.approx(0.01), "steps": 40, "loss": "soft_logit_margin"}
    assert res.margins.shape == (6,) and (res.margins >= 0).all() and (res.margins <= 0.4725).all()
    assert {k: res.record[k] for k in ("estimator", "images", "eps", "pgd_steps", "dataset")} == {
        "estimator": "reference", "images": 6, "eps": 0.3, "pgd_steps": 40, "dataset": "mnist"}
    res2 = reference_validation_margin(model, data, norm="l2", max_eps=3.0, dataset="cifar10", size=4, device="cpu")
    assert res2.record["images"] == 4 and res2.record["step_size"] == REFERENCE_VALIDATION[("cifar10", "l2")].step_size
    assert seen["steps"] == 10


def test_seeded_and_leaves_the_callers_rng_alone():
    model, data, exact = _binary_linear("l2", n=40)
    kw = dict(norm="l2", max_eps=float(exact.max()), eps=0.5, step_size=0.05, pgd_steps=5, clip=None, device="cpu")
    torch.manual_seed(5)
    a = reference_validation_margin(model, data, **kw)
    after = torch.rand(1)
    torch.manual_seed(5)
    b = reference_validation_margin(model, data, **kw)
    assert torch.equal(a.margins, b.margins) and torch.equal(torch.rand(1), after)


def test_bad_arguments_name_themselves():
    model, data, _ = _binary_linear("linf", n=4)
    with pytest.raises(ValueError, match="^dataset: cannot tell"):
        reference_validation_margin(model, data, norm="linf", max_eps=1.0, clip=None)
    with pytest.raises(ValueError, match="^dataset must be one of"):
        reference_validation_margin(model, data, norm="linf", max_eps=1.0, dataset="imagenet", clip=None)
    with pytest.raises(ValueError, match="^max_eps must be"):
        reference_validation_margin(model, data, norm="linf", max_eps=float("nan"), dataset="mnist", clip=None)
    with pytest.raises(ValueError, match="^pgd_steps must be"):
        reference_validation_margin(model, data, norm="linf", max_eps=1.0, dataset="mnist", pgd_steps=0, clip=None)
