import math

import pytest
import torch

from mma_edu import norms
from mma_edu.losses import cross_entropy, cw_loss, get_loss, is_correct, logit_margin, soft_logit_margin


@pytest.mark.parametrize("norm", norms.NORMS)
def test_project_lands_in_ball_and_keeps_inside_points(norm):
    delta = torch.randn(64, 3, 5, 5) * 3
    eps = torch.rand(64) + 0.1
    p = norms.project(delta, eps, norm)
    assert (norms.norm_of(p, norm) <= eps * (1 + 1e-6)).all()
    # Points already inside are untouched; projection is idempotent.
    torch.testing.assert_close(norms.project(p, eps, norm), p)
    small = delta * 1e-4
    torch.testing.assert_close(norms.project(small, eps, norm), small)


@pytest.mark.parametrize("norm", norms.NORMS)
def test_steepest_ascent_attains_the_dual_norm(norm):
    # max_{‖δ‖ ≤ 1} ⟨g, δ⟩ = ‖g‖_*, reached at the steepest-ascent direction.
    g = torch.randn(32, 40, dtype=torch.float64)
    d = norms.steepest_ascent(g, norm)
    torch.testing.assert_close(norms.norm_of(d, norm), torch.ones(32, dtype=torch.float64))
    torch.testing.assert_close((g * d).sum(1), norms.dual_norm_of(g, norm))
    # No random unit direction does better.
    r = norms.project(torch.randn(1000, 40, dtype=torch.float64) * 10, torch.ones(1000, dtype=torch.float64), norm)
    assert ((r @ g.T) <= norms.dual_norm_of(g, norm) + 1e-9).all()


@pytest.mark.parametrize("norm", norms.NORMS)
def test_zero_gradient_gives_zero_step_not_nan(norm):
    d = norms.steepest_ascent(torch.zeros(4, 10), norm)
    assert torch.equal(d, torch.zeros(4, 10))
    p = norms.project(torch.zeros(4, 10), torch.zeros(4), norm)
    assert torch.equal(p, torch.zeros(4, 10))


@pytest.mark.parametrize("norm", norms.NORMS)
def test_random_in_ball_is_inside_and_fills_it(norm):
    eps = torch.full((5000,), 0.5)
    s = norms.random_in_ball(torch.zeros(5000, 2), eps, norm)
    length = norms.norm_of(s, norm)
    assert (length <= 0.5 + 1e-6).all()
    # Uniform in a 2-D ball: P(‖s‖ ≤ r·eps) = r², so a quarter lies within half the radius.
    assert abs((length <= 0.25).float().mean().item() - 0.25) < 0.03


def test_unknown_norm_is_a_clear_error():
    with pytest.raises(ValueError, match="norm must be one of"):
        norms.project(torch.zeros(1, 2), torch.ones(1), "l1")


def test_unit_ball_outline_has_unit_norm():
    for norm in norms.NORMS:
        pts = norms.unit_ball_outline(norm, 64)
        torch.testing.assert_close(norms.norm_of(pts, norm), torch.ones(64))


def test_logit_margin_sign_matches_the_prediction():
    logits = torch.randn(500, 10)
    y = torch.randint(0, 10, (500,))
    lm = logit_margin(logits, y)
    assert torch.equal(lm < 0, logits.argmax(1) == y)
    assert torch.equal(is_correct(logits, y), lm < 0)
    # A tie counts as an error.
    assert not is_correct(torch.tensor([[1.0, 1.0]]), torch.tensor([0])).item()


def test_soft_logit_margin_bounds_logit_margin_and_marks_p_half():
    logits = torch.randn(500, 10) * 3
    y = torch.randint(0, 10, (500,))
    slm = soft_logit_margin(logits, y)
    assert (slm >= logit_margin(logits, y) - 1e-6).all()
    p_y = logits.softmax(1).gather(1, y[:, None]).squeeze(1)
    assert torch.equal(slm < 0, p_y > 0.5)
    # Where L_SLM = 0 cross-entropy is log 2 (two equal classes).
    two = torch.tensor([[2.0, 2.0]])
    assert soft_logit_margin(two, torch.tensor([0])).item() == pytest.approx(0.0, abs=1e-6)
    assert cross_entropy(two, torch.tensor([0])).item() == pytest.approx(math.log(2), abs=1e-6)


def test_cw_loss_is_shifted_clamped_logit_margin():
    logits = torch.tensor([[0.0, 100.0], [0.0, -10.0]])
    y = torch.tensor([1, 1])
    torch.testing.assert_close(cw_loss(logits, y), torch.tensor([0.0, 60.0]))


def test_get_loss_names_the_argument():
    with pytest.raises(ValueError, match=r"loss must be one of \('ce', 'cw', 'lm', 'slm'\)"):
        get_loss("hinge")
