"""Exercise checks: each passes the reference solution and names the mistake in typical wrong answers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mma_edu.course import exercises as E
from mma_edu.course.exercises import ExerciseError


def wrong(check, *args, match: str):
    with pytest.raises(ExerciseError, match=match):
        check(*args)


def test_none_means_not_attempted(capsys):
    assert E.check_hand_margins(None, None) is None
    assert E.check_mma_loss(None) is None
    assert E.check_bisection(lambda *a: None) is None
    assert "not attempted" in capsys.readouterr().out


# ------------------------------------------------------------------ 01
def test_hand_margins():
    assert E.check_hand_margins(1 / math.sqrt(2), 0.5)
    assert E.check_hand_margins(0.7071, 0.5)  # rounded by hand
    wrong(E.check_hand_margins, 0.7071, 1 / math.sqrt(2), match="dual norm, the ℓ1 norm")
    wrong(E.check_hand_margins, 0.5, 0.5, match="divided by the ℓ1 norm")
    wrong(E.check_hand_margins, 1.0, 0.5, match="divided by the ℓ∞ norm")  # ‖(1, −1)‖∞ = 1: the same number


def test_linear_margins():
    from mma_edu.margins import linear_margins

    torch.manual_seed(0)
    # Rows of very different lengths: the runner-up logit is then often not the nearest boundary.
    w = torch.randn(4, 5, dtype=torch.float64) * torch.tensor([1.0, 1.0, 6.0, 0.2], dtype=torch.float64)[:, None]
    b = torch.randn(4, dtype=torch.float64)
    x = torch.randn(30, 5, dtype=torch.float64)
    y = (x @ w.T + b).argmax(1)
    for norm in ("linf", "l2"):
        assert E.check_linear_margins(linear_margins(w, b, x, y, norm=norm), w, b, x, y, norm)
        assert E.check_linear_margins(lambda *a: linear_margins(*a[:4], norm=a[4]), w, b, x, y, norm)
    # ℓ2 norm of w_y − w_j for an ℓ∞ attack: the brief's example of a message.
    z = x @ w.T + b
    gap = z.gather(1, y[:, None]) - z
    l2 = (w[y][:, None] - w[None]).norm(dim=2)
    bad = (gap / l2.masked_fill(gap == 0, 1)).masked_fill(gap == 0, math.inf).amin(1)
    wrong(E.check_linear_margins, bad, w, b, x, y, "linf", match=r"your margin for point \d+ is .* the ℓ1 norm")
    # Only the runner-up class.
    runner = z.scatter(1, y[:, None], -math.inf).argmax(1)
    d1 = (w[y] - w[runner]).abs().sum(1)
    runner_only = gap.gather(1, runner[:, None]).squeeze(1) / d1
    assert not torch.allclose(runner_only, linear_margins(w, b, x, y, norm="linf"))  # the test data tells them apart
    wrong(E.check_linear_margins, runner_only, w, b, x, y, "linf", match="minimum over every j")


# ------------------------------------------------------------------ 02
def test_losses_by_hand():
    lm, slm = -2.0, math.log(math.e + 1) - 3
    ce = math.log(1 + math.exp(slm))
    assert E.check_losses_by_hand(lm, slm, ce)
    wrong(E.check_losses_by_hand, 2.0, slm, ce, match="the sign")
    wrong(E.check_losses_by_hand, lm, ce, ce, match="that is CE")
    wrong(E.check_losses_by_hand, lm, slm, ce / math.log(2), match="natural logarithm")


def _margin_gradient(sign=-1.0, dual=True):
    from mma_edu import norms
    from mma_edu.losses import logit_margin

    def fn(model, x_star, y, norm):
        x_star = x_star.clone().requires_grad_(True)
        loss = logit_margin(model(x_star), y).sum()
        g_theta = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
        (g_x,) = torch.autograd.grad(loss, x_star)
        size = norms.dual_norm_of(g_x, norm) if dual else norms.lp_norm(g_x, "linf" if norm == "linf" else "l1")
        return sign * torch.cat([g.flatten() for g in g_theta]) / size
    return fn


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_margin_gradient(norm):
    assert E.check_margin_gradient(_margin_gradient(), norm)
    wrong(E.check_margin_gradient, _margin_gradient(sign=1.0), norm, match="MINUS the loss gradient")
    wrong(E.check_margin_gradient, _margin_gradient(dual=False), norm, match="divide by its dual norm")


# ------------------------------------------------------------------ 03
def test_mma_objective_is_what_mma_trains():
    from mma_edu.losses import cross_entropy, soft_logit_margin
    from mma_edu.train import MMA

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(2, 3)
            self.last = None

        def forward(self, x):
            self.last = x.detach().clone()
            return self.inner(x)

    torch.manual_seed(0)
    model = Recorder()
    with torch.no_grad():
        model.inner.weight.mul_(20)
    x = torch.rand(64, 2)
    y = model.inner(x).argmax(1)
    y[:8] = (y[:8] + 1) % 3  # a few misclassified examples (S⁻)
    for c in (1 / 3, 0.0):
        method = MMA(d_max=0.05, norm="l2", steps=3, clean_weight=c)
        method.setup(64, torch.device("cpu"))
        loss, stats = method.batch_loss(model, x, y, torch.arange(64))
        x_mix = model.last  # the last forward of a step is the mixed batch
        with torch.no_grad():
            logits = model.inner(x)
            pos = soft_logit_margin(logits, y) < 0
            ours = E.mma_objective(cross_entropy(model.inner(x_mix), y), cross_entropy(logits, y), stats["_margins"],
                                   pos, 0.05, c)
        assert 0 < pos.sum() < 64 and (stats["_margins"][pos] >= 0.05).any()  # S⁻ and the hinge both occur
        assert abs(ours.item() - loss.item()) < 1e-6


def test_mma_loss_by_hand():
    assert E.check_mma_loss_by_hand(2 / 3 * 3.1 / 4 + 1 / 3 * 1.85 / 4)
    assert E.check_mma_loss_by_hand(0.6708)
    wrong(E.check_mma_loss_by_hand, 2 / 3 * 3.4 / 4 + 1 / 3 * 1.85 / 4, match="no hinge")
    wrong(E.check_mma_loss_by_hand, 2 / 3 * 3.1 / 3 + 1 / 3 * 1.85 / 4, match="whole batch size")
    wrong(E.check_mma_loss_by_hand, 3.1 / 4, match="OMMA")
    wrong(E.check_mma_loss_by_hand, 2 / 3 * 1.6 / 4 + 1 / 3 * 1.85 / 4, match="S⁻")


def test_mma_loss_function():
    assert E.check_mma_loss(E.mma_objective)

    def no_hinge(ce_adv, ce_clean, eps_hat, positive, d_max, c):
        return (1 - c) * ce_adv.mean() + c * ce_clean.mean()

    def per_active(ce_adv, ce_clean, eps_hat, positive, d_max, c):
        active = ~positive | (eps_hat < d_max)
        return (1 - c) * ce_adv[active].mean() + c * ce_clean.mean()

    wrong(E.check_mma_loss, no_hinge, match="no hinge")
    wrong(E.check_mma_loss, per_active, match="whole batch size")


# ------------------------------------------------------------------ 04
def test_reference_bisection_is_anpgds():
    from mma_edu.attacks import bisect
    from mma_edu.losses import get_loss

    # A 1-D "model": class 1 wins past x = boundary; the ray x + t·1 from 0.
    for t0, max_eps, boundary, steps in [(0.2, 0.5, 0.33, 4), (0.4, 0.5, 0.13, 10), (0.05, 0.4725, 1.0, 10)]:
        model = nn.Linear(1, 2).double()
        with torch.no_grad():
            model.weight.copy_(torch.tensor([[0.0], [1.0]], dtype=torch.float64))
            model.bias.copy_(torch.tensor([0.0, -boundary], dtype=torch.float64))
        x, y, u = torch.zeros(1, 1, dtype=torch.float64), torch.tensor([0]), torch.ones(1, 1, dtype=torch.float64)
        lm = get_loss("lm")
        t = torch.tensor([t0], dtype=torch.float64)
        est, found, lower, upper = bisect(model, x, y, u, t, lm(model(x + t0 * u), y),
                                          torch.tensor([max_eps], dtype=torch.float64), search_steps=steps,
                                          search_fn=lm, clip=None)
        ours = E.reference_bisection(lambda s: s >= boundary, t0, max_eps, steps)
        assert ours == pytest.approx((est.item(), lower.item(), upper.item()), abs=1e-12)


def test_bisection_by_hand():
    assert E.check_bisection_by_hand(0.33125)
    wrong(E.check_bisection_by_hand, 0.3125, match="lower end")
    wrong(E.check_bisection_by_hand, 0.328125, match="starts at t = ε_prev")
    wrong(E.check_bisection_by_hand, 0.33, match="where the boundary is")


def test_bisection_function():
    assert E.check_bisection(E.reference_bisection)

    def from_middle(is_adv, t0, max_eps, steps):
        return E.reference_bisection(is_adv, max_eps / 2, max_eps, steps)

    def returns_lower(is_adv, t0, max_eps, steps):
        est, lo, hi = E.reference_bisection(is_adv, t0, max_eps, steps)
        return lo, lo, hi

    def extra_step(is_adv, t0, max_eps, steps):
        return E.reference_bisection(is_adv, t0, max_eps, steps + 1)

    wrong(E.check_bisection, from_middle, match="start at t = ε_prev")
    wrong(E.check_bisection, returns_lower, match="lower end")
    wrong(E.check_bisection, extra_step, match="tested 6 points")


def test_reference_pgd_is_the_librarys_pgd():
    """The course's written-out PGD is bit for bit the library's PGD run (zero start, CE, box [0, 1])."""
    from mma_edu.attacks.pgd import perturb
    from mma_edu.losses import get_loss

    for seed in (0, 7):
        model, x, y = E.pgd_problem(seed)
        for norm, eps, alpha, steps in (("linf", 0.1, 0.05, 5), ("l2", 0.5, 0.25, 5), ("l2", 2.0, 1.0, 3)):
            ours = E.reference_pgd(model, x, y, eps, alpha, steps, norm)
            lib = perturb(model, x, y, torch.full((len(x),), eps), norm=norm, steps=steps,
                          step_size=torch.full((len(x),), alpha), loss_fn=get_loss("ce"), clip=(0.0, 1.0))
            assert torch.equal(ours, lib)
            assert (ours - x).abs().max() > 0.5 * min(eps, 1.0)  # the attack really moved


def test_pgd_exercise_names_typical_mistakes():
    from mma_edu.course.exercises.nb04_anpgd import _pgd_variant

    assert E.check_pgd(E.reference_pgd)
    assert E.check_pgd(E.reference_pgd, seed=12345)  # the hidden test's randomized case
    assert E.check_pgd(lambda *a: None) is None

    def variant(**kw):
        return lambda m, x, y, eps, a, k, norm: _pgd_variant(m, x, y, eps, a, k, norm, **kw)

    wrong(E.check_pgd, variant(sign=-1.0), match="stepped down the loss")
    wrong(E.check_pgd, variant(direction="raw"), match="raw gradient")
    wrong(E.check_pgd, variant(frozen_gradient=True), match="reused the gradient")
    wrong(E.check_pgd, variant(project=False), match="project δ back onto the ball")
    wrong(E.check_pgd, variant(box=False), match="leave the image box")
    wrong(E.check_pgd, variant(batch_norm=True), match="whole batch at once")
    wrong(E.check_pgd, lambda m, x, y, eps, a, k, norm: E.reference_pgd(m, x, y, eps, a, k + 1, norm),
          match="after 4 or 6 steps, not 5")
    wrong(E.check_pgd, variant(direction="linf"), match="ℓ∞ direction .* for an ℓ2 attack")
    wrong(E.check_pgd, lambda m, x, y, eps, a, k, norm: x, match="example 0 ends at another point")

    def hard_coded(m, x, y, eps, a, k, norm, answer={}):
        # the visible case's answers, memorized: fine there, caught by the hidden case
        return answer.setdefault((norm, eps), E.reference_pgd(m, x, y, eps, a, k, norm))

    assert E.check_pgd(hard_coded)
    with pytest.raises(ExerciseError):
        E.check_pgd(lambda m, x, y, eps, a, k, norm, c=E.pgd_problem(0):
                    E.reference_pgd(c[0], c[1], c[2], 0.1 if norm == "linf" else 0.5, 0.05 if norm == "linf" else 0.25,
                                    5, norm), seed=99)


# ------------------------------------------------------------------ 05
def test_s_plus():
    assert E.check_s_plus([True, False, False, True])
    wrong(E.check_s_plus, [True, True, False, True], match=r"example 1 is classified correctly .* p_y > 1/2")
    wrong(E.check_s_plus, [True, False, True, True], match="example 2 is misclassified")
    wrong(E.check_s_plus, [False, False, False, True], match="example 0 has p_y = 0.79")


def test_over_perturbed():
    assert E.check_over_perturbed(lambda m, eps: (m < eps).float().mean().item())
    wrong(E.check_over_perturbed, lambda m, eps: (m >= eps).float().mean(), match="complement")
    wrong(E.check_over_perturbed, lambda m, eps: (m < eps).sum(), match="a count")
    wrong(E.check_over_perturbed, lambda m, eps: (m <= eps).float().mean(), match="use <")


# ------------------------------------------------------------------ 06
def test_eps_units():
    assert E.check_eps_units(8 / 255, 8 / 255 * math.sqrt(3072))
    wrong(E.check_eps_units, 8 / 256, 1.74, match="255 steps")
    wrong(E.check_eps_units, 8 / 255, 8 / 255 * 32, match="three channels")
    wrong(E.check_eps_units, 8 / 255, 8 / 255 * 3072, match="ℓ1 length")


def test_standardization():
    from mma_edu.models import PerImageStandardization

    assert E.check_standardization(PerImageStandardization())

    def biased(x):
        f = x.flatten(1)
        std = f.std(1, unbiased=False).clamp_min(1 / math.sqrt(f.shape[1]))
        return (x - f.mean(1).view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)

    def per_channel(x):
        return (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True).clamp_min(1 / math.sqrt(64))

    def no_floor(x):
        f = x.flatten(1)
        return (x - f.mean(1).view(-1, 1, 1, 1)) / f.std(1).view(-1, 1, 1, 1)

    wrong(E.check_standardization, biased, match="biased standard deviation")
    wrong(E.check_standardization, per_channel, match="each channel on its own")
    wrong(E.check_standardization, no_floor, match="nan/inf for the constant image")


# ------------------------------------------------------------------ 07
def test_avg_accuracies():
    assert E.check_avg_accuracies(94.1, 92.9)
    wrong(E.check_avg_accuracies, 92.9, 94.1, match="swapped")
    wrong(E.check_avg_accuracies, 94.1, 94.1, match="included the clean accuracy")
    wrong(E.check_avg_accuracies, 92.9, 92.9, match="left out the clean accuracy")


def _curve(clean, correct):
    out, alive = [], clean.clone()
    for k in range(correct.shape[1]):
        alive &= correct[:, k].all(0)
        out.append(alive.float().mean().item())
    return out


def test_robust_curve():
    assert E.check_robust_curve(_curve)
    wrong(E.check_robust_curve, lambda c, r: [(c & r[:, k].any(0)).float().mean() for k in range(r.shape[1])],
          match="use all over restarts")
    wrong(E.check_robust_curve, lambda c, r: _curve(torch.ones_like(c), r), match="start from the clean mask")
    wrong(E.check_robust_curve, lambda c, r: [(c & r[:, k].all(0)).float().mean() for k in range(r.shape[1])],
          match="carry the survivors")


# ------------------------------------------------------------------ 08
def test_interval_bounds_by_hand():
    assert E.check_interval_bounds_by_hand([0.3, -0.6], [0.9, 0.2])
    wrong(E.check_interval_bounds_by_hand, [0.7, -0.6], [0.5, 0.2], match=r"through \|W\|")
    wrong(E.check_interval_bounds_by_hand, [-0.2, 1.3], [0.4, 2.1], match="add the bias")


def test_ibp():
    from mma_edu.bounds import relu_network

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    net = relu_network(model, (1, 4, 4))
    x = torch.rand(5, 1, 4, 4)
    x[:, 0, 0, :] = 0.01  # near the box edge, so that clipping matters
    y = model(x).argmax(1)

    def mine(net, x, eps, clip=(0.0, 1.0), absolute=True, relu=True):
        return E._ibp_variant(net, x, eps, clip, absolute, relu)

    assert E.check_ibp(mine, net, x, y)
    wrong(E.check_ibp, lambda n, x, e: mine(n, x, e, clip=None), net, x, y, match="pixel box")
    wrong(E.check_ibp, lambda n, x, e: mine(n, x, e, absolute=False), net, x, y, match=r"\|W\|")
    wrong(E.check_ibp, lambda n, x, e: mine(n, x, e, relu=False), net, x, y, match="ReLU")
