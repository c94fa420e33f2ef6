"""PGD and AN-PGD against ground truth: exact margins of linear models, invariants on trained models."""

import pytest
import torch
from torch import nn

from conftest import random_linear
from mma_edu import norms
from mma_edu.attacks import anpgd, pgd, pgd_with_margin
from mma_edu.losses import decides_otherwise, is_correct, logit_margin
from mma_edu.margins import linear_margins
from mma_edu.models import LeNet5Madry


def _binary_linear_problem(norm, n=400, dim=20):
    model = random_linear(dim, 2, seed=1)
    x = torch.randn(n, dim, dtype=torch.float64)
    y = model(x).argmax(1)
    exact = linear_margins(model.fc.weight.detach(), model.fc.bias.detach(), x, y, norm=norm)
    return model, x, y, exact


@pytest.mark.parametrize("norm", norms.NORMS)
@pytest.mark.parametrize("loss", ["ce", "cw", "lm", "slm"])
def test_pgd_breaks_exactly_the_points_closer_than_eps_on_a_binary_linear_model(norm, loss):
    # For two classes every loss increases along the same direction, so PGD is
    # exact: a point is broken if and only if its exact margin is below eps.
    model, x, y, exact = _binary_linear_problem(norm)
    eps = float(exact.median())
    _, lm, _ = pgd_with_margin(model, x, y, eps, norm=norm, loss=loss, steps=40, clip=None)
    clear = (exact - eps).abs() > 0.02 * eps  # leave PGD's finite-step convergence out
    assert torch.equal((lm >= 0)[clear], (exact <= eps)[clear])
    assert clear.float().mean() > 0.9


@pytest.mark.parametrize("norm", norms.NORMS)
def test_pgd_points_stay_in_ball_and_box_and_successes_really_flip(norm):
    torch.manual_seed(0)
    model = LeNet5Madry().eval()
    x = torch.rand(16, 1, 28, 28)
    y = model(x).argmax(1)
    eps = torch.linspace(0.0, 0.5 if norm == "linf" else 5.0, 16)
    xa, lm, broken = pgd_with_margin(model, x, y, eps, norm=norm, steps=5)
    assert (norms.norm_of(xa - x, norm) <= eps + 1e-6).all()
    assert xa.min() >= 0 and xa.max() <= 1
    with torch.no_grad():
        logits = model(xa)
    torch.testing.assert_close(logit_margin(logits, y), lm)
    assert torch.equal(lm >= 0, ~is_correct(logits, y))
    assert torch.equal(broken, decides_otherwise(logits, y))
    assert torch.equal(xa[0], x[0])  # eps = 0 leaves the input alone


def _robust(model, x, y, eps, **kw):
    torch.manual_seed(1)
    return ~pgd_with_margin(model, x, y, eps, clip=None, **kw)[2]


@pytest.mark.parametrize("norm", norms.NORMS)
def test_robust_accuracy_never_rises_with_eps(moons_mlp, norm):
    model, ds = moons_mlp
    eps_list = torch.linspace(0.0, 0.6, 13).tolist()
    acc = [_robust(model, ds.x, ds.y, e, norm=norm, restarts=3).float().mean().item() for e in eps_list]
    assert acc[0] > 0.98 and acc[-1] < 0.5
    assert all(b <= a for a, b in zip(acc, acc[1:])), acc


@pytest.mark.parametrize("norm", norms.NORMS)
def test_more_restarts_never_make_more_points_robust(moons_mlp, norm):
    model, ds = moons_mlp
    one = _robust(model, ds.x, ds.y, 0.25, norm=norm, restarts=1, steps=10)
    five = _robust(model, ds.x, ds.y, 0.25, norm=norm, restarts=5, steps=10)
    assert not (five & ~one).any()  # robust under 5 restarts implies robust under the first


@pytest.mark.parametrize("norm", norms.NORMS)
def test_skipping_broken_examples_changes_no_result(moons_mlp, norm):
    model, ds = moons_mlp
    fast = _robust(model, ds.x, ds.y, 0.2, norm=norm, restarts=4, loss=["ce", "cw", "ce", "cw"])
    naive = _robust(model, ds.x, ds.y, 0.2, norm=norm, restarts=4, loss=["ce", "cw", "ce", "cw"], skip_broken=False)
    assert torch.equal(fast, naive)


def test_attack_leaves_no_parameter_gradients_and_restores_mode():
    model = LeNet5Madry().train()
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    pgd(model, x, y, 0.1, steps=2)
    anpgd(model, x, y, 0.1, norm="linf", max_eps=0.3, steps=2, search_steps=2)
    anpgd(model, x, y, 0.1, norm="linf", max_eps=0.3, steps=2, search_steps=2, bn_mode="reference")
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    pgd(model, x, y, 0.1, steps=1)
    assert not model.training


@pytest.mark.parametrize("norm", norms.NORMS)
def test_zero_input_gradient_gives_no_nan(norm):
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.tensor([1.0, 0.0]))

        def forward(self, x):
            return self.b.expand(x.shape[0], 2) + 0 * x.flatten(1).sum(1, keepdim=True)

    x = torch.rand(3, 5)
    xa = pgd(Constant(), x, torch.zeros(3, dtype=torch.long), 0.3, norm=norm, steps=3, random_start=False)
    assert torch.isfinite(xa).all() and torch.equal(xa, x)


def test_float64_and_unbounded_inputs_work():
    model = random_linear(6, 3)
    x = torch.randn(10, 6, dtype=torch.float64) * 5  # outside [0, 1]: needs clip=None
    y = model(x).argmax(1)
    xa = pgd(model, x, y, 0.5, norm="l2", clip=None, steps=3)
    assert xa.dtype == torch.float64
    with pytest.raises(ValueError, match="clip"):
        pgd(model, x, y, 0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    model = LeNet5Madry().cuda()
    x, y = torch.rand(4, 1, 28, 28, device="cuda"), torch.arange(4, device="cuda")
    assert pgd(model, x, y, 0.1, steps=2).device.type == "cuda"
    assert anpgd(model, x, y, 0.1, norm="l2", max_eps=1.0, steps=2).eps.device.type == "cuda"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(norm="l1"), "norm must be one of"),
        (dict(loss="hinge"), "loss must be one of"),
        (dict(eps=-0.1), "eps must be >= 0"),
        (dict(eps=torch.ones(3)), r"eps must be a float or a tensor of shape \(4,\)"),
        (dict(step_size=-1.0), "step_size must be >= 0"),
        (dict(restarts=0), "restarts must be an integer >= 1"),
        (dict(steps=-1), "steps must be an integer >= 0"),
        (dict(y=torch.tensor([0, 1, 2, 10])), r"y must be < the number of classes \(10\)"),
        (dict(y=torch.tensor([0, 1, 2])), "same N"),
        (dict(clip=(1.0, 0.0)), "clip must be"),
    ],
)
def test_pgd_bad_input_names_the_argument(kwargs, message):
    args = dict(x=torch.rand(4, 1, 28, 28), y=torch.tensor([0, 1, 2, 3]), eps=0.1)
    args.update(kwargs)
    model = LeNet5Madry()
    with pytest.raises(ValueError, match=message):
        pgd(model, args.pop("x"), args.pop("y"), args.pop("eps"), **args)


# ------------------------------------------------------------------------- AN-PGD


@pytest.mark.parametrize("norm", norms.NORMS)
def test_anpgd_bisection_converges_to_the_exact_margin_of_a_binary_linear_model(norm):
    model, x, y, exact = _binary_linear_problem(norm)
    max_eps = float(exact.max()) * 1.1
    search_steps = 12
    # Not exactly the median: PGD at an example's own exact margin lands on the
    # boundary (L_LM = 0.0, a tie that is not reported as found).
    res = anpgd(model, x, y, 1.01 * float(exact.median()), norm=norm, max_eps=max_eps, loss="lm",
                search_steps=search_steps, clip=None)
    assert res.found.all()
    # Along u the logit margin is affine: L(x + t·u) = L(x) + t·⟨g, u⟩, zero at t*.
    # The bracket holds t* and the estimate is within the bracket width of it.
    g = model.fc.weight[1 - y] - model.fc.weight[y]
    t_star = (-logit_margin(model(x), y) / (g * res.direction).sum(1)).detach()
    assert (res.lower <= t_star + 1e-9).all() and (t_star <= res.upper + 1e-9).all()
    width = max_eps / 2 ** (search_steps - 1)
    assert ((res.upper - res.lower) <= width * (1 + 1e-9)).all()
    assert ((res.eps - t_star).abs() <= width).all()
    # PGD's direction is close to the optimal one, so ε̂ is close to the exact margin.
    assert ((res.eps - exact).abs() / exact).median() < 0.02
    # The bracket is honest: the upper end is adversarial, the lower end is not.
    up = x + res.upper[:, None] * res.direction
    lo = x + res.lower[:, None] * res.direction
    assert (logit_margin(model(up), y) >= 0).all()
    assert (logit_margin(model(lo), y) < 0).all()
    # A found perturbation is an upper bound of the margin.
    assert (norms.norm_of(up - x, norm) >= exact * (1 - 1e-9)).all()


def test_anpgd_unbroken_examples_end_near_max_eps_unfound():
    model, x, y, exact = _binary_linear_problem("linf")
    max_eps = float(exact.quantile(0.3))
    far = exact > 1.5 * max_eps  # L_SLM ≥ L_LM, so keep a safety gap
    assert far.sum() > 100
    res = anpgd(model, x[far], y[far], max_eps / 2, norm="linf", max_eps=max_eps, loss="slm", clip=None)
    assert not res.found.any()
    assert (res.eps >= max_eps * (1 - 2**-10)).all() and (res.eps <= max_eps).all()
    assert (norms.norm_of(res.x_adv - x[far], "linf") <= res.eps + 1e-9).all()


def test_anpgd_point_is_clipped_to_the_box():
    model = LeNet5Madry().eval()
    x = torch.rand(8, 1, 28, 28)
    y = model(x).argmax(1)
    res = anpgd(model, x, y, torch.full((8,), 0.2), norm="l2", max_eps=3.0, steps=3, search_steps=4)
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert (norms.norm_of(res.direction, "l2") <= 1 + 1e-5).all()


def test_anpgd_bad_input():
    model = LeNet5Madry()
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="eps_init must be <= max_eps"):
        anpgd(model, x, y, 0.5, norm="linf", max_eps=0.3)
    with pytest.raises(ValueError, match="eps_init must be > 0"):
        anpgd(model, x, y, 0.0, norm="linf", max_eps=0.3)
    with pytest.raises(ValueError, match="search_steps"):
        anpgd(model, x, y, 0.1, norm="linf", max_eps=0.3, search_steps=-1)
    with pytest.raises(ValueError, match="^bn_mode must be one of"):
        anpgd(model, x, y, 0.1, norm="linf", max_eps=0.3, bn_mode="train")
