"""The speed switches keep results: equality of optimized and unoptimized paths (no timings here; see bench/)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from mma_edu.attacks import anpgd
from mma_edu.cli import main
from mma_edu.data import mnist_offline, toy_2d
from mma_edu.evaluate import robust_accuracy
from mma_edu.models import MLP, LeNet5Madry, SmallCNN
from mma_edu.speed import as_layout
from mma_edu.train import MMA, Standard, fit, train_step


@pytest.fixture(scope="module")
def digits():
    return mnist_offline()


@pytest.fixture(scope="module")
def small_cnn(digits):
    """A SmallCNN after one clean epoch (~90% clean accuracy), trained in the default layout."""
    torch.manual_seed(0)
    model = SmallCNN()
    fit(model, digits.train, Standard(), epochs=1, progress=False, device="cpu", channels_last=False)
    return model.eval()


def relative_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs() / b.abs().clamp_min(1e-12)


@pytest.mark.parametrize("cls", [LeNet5Madry, SmallCNN])
def test_pool_before_relu_is_bitwise_the_papers_relu_then_pool(cls):
    model = cls()
    x = torch.rand(8, 1, 28, 28, requires_grad=True)

    def paper_order(x):
        h = F.max_pool2d(F.relu(model.conv1(x)), 2)
        h = F.max_pool2d(F.relu(model.conv2(h)), 2)
        return model.linear2(F.relu(model.linear1(h.flatten(1))))

    ours, ref = model(x), paper_order(x)
    assert torch.equal(ours, ref)
    w = torch.randn_like(ours)
    (g_ours,) = torch.autograd.grad((ours * w).sum(), x)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    assert torch.equal(g_ours, g_ref)


def anpgd_as_in_mma(model, digits, norm: str, d_max: float, channels_last: bool = False, **kw):
    """AN-PGD on 200 training digits from ε_prev = 0.3·d_max, seed 1."""
    x, y = as_layout(digits.train.x[:200], channels_last), digits.train.y[:200]
    torch.manual_seed(1)
    return anpgd(model, x, y, torch.full((200,), 0.3 * d_max), norm=norm, max_eps=1.05 * d_max, **kw)


@pytest.mark.parametrize("norm,d_max", [("linf", 0.45), ("l2", 4.0)])
def test_channels_last_anpgd_margins_within_one_percent(small_cnn, digits, norm, d_max):
    base = anpgd_as_in_mma(small_cnn, digits, norm, d_max)
    fast_model = copy.deepcopy(small_cnn).to(memory_format=torch.channels_last)
    fast = anpgd_as_in_mma(fast_model, digits, norm, d_max, channels_last=True)
    assert fast_model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert (relative_gap(fast.eps, base.eps) <= 0.01).all()
    assert torch.equal(fast.found, base.found)


def test_mma_step_in_channels_last_matches_the_default_layout(small_cnn, digits):
    x, y, idx = digits.train.x[:50], digits.train.y[:50], torch.arange(50)
    out = {}
    for cl in (False, True):
        model = copy.deepcopy(small_cnn)
        if cl:
            model.to(memory_format=torch.channels_last)
        method = MMA(0.45, "linf", steps=20)
        method.setup(len(digits.train), torch.device("cpu"))
        # Plain SGD, so the step is the gradient itself: Adam's first step is lr * g / (|g| + 1e-8), about
        # lr * sign(g), which turns a rounding difference in a near-zero gradient into a full step either way
        # (CI saw one parameter move by ~1e-3 in one layout and not the other).
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(3)
        stats = train_step(model, method, opt, as_layout(x, cl), y, idx)
        out[cl] = (stats, model)
    (s0, m0), (s1, m1) = out[False], out[True]
    assert s1["loss"] == pytest.approx(s0["loss"], rel=1e-4)
    keep = s0["_margins"] > 0
    assert torch.equal(keep, s1["_margins"] > 0)
    assert (relative_gap(s1["_margins"][keep], s0["_margins"][keep]) <= 0.01).all()
    start = [p.detach() for p in small_cnn.parameters()]
    step0 = torch.cat([(p - q).flatten() for p, q in zip(m0.parameters(), start)])
    step1 = torch.cat([(p - q).flatten() for p, q in zip(m1.parameters(), start)])
    assert step0.norm() > 0, "the step moved nothing: the comparison below would be empty"
    # The same update: same direction (cosine) and length within 1%, as the margins above.
    assert torch.nn.functional.cosine_similarity(step0, step1, dim=0) > 0.999
    assert relative_gap(step1.norm(), step0.norm()) <= 0.01


@pytest.mark.parametrize("norm,d_max", [("linf", 0.45), ("l2", 4.0)])
def test_bf16_attack_precision_keeps_margins_close(small_cnn, digits, norm, d_max):
    base = anpgd_as_in_mma(small_cnn, digits, norm, d_max)
    fast = anpgd_as_in_mma(small_cnn, digits, norm, d_max, precision="bf16")
    assert fast.eps.dtype == torch.float32  # the bisection measures in float32
    gap = relative_gap(fast.eps, base.eps)
    # The tolerance the speed module documents: the mean within 1%, nearly every example within 1%,
    # none off by more than 10% (the estimator's own spread across random starts is larger).
    assert fast.eps.mean().item() == pytest.approx(base.eps.mean().item(), rel=0.01)
    assert (gap <= 0.01).float().mean() >= 0.9
    assert gap.max() <= 0.1


def test_fit_picks_channels_last_for_conv_nets_only(digits):
    conv, mlp = SmallCNN(), MLP()
    fit(conv, digits.train.subset(100), Standard(), steps=1, progress=False, device="cpu")
    assert conv.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    fit(mlp, toy_2d("moons", 100), Standard(), steps=1, progress=False, device="cpu")  # 2-D data: nothing to do
    with pytest.raises(ValueError, match="channels_last must be True, False or None"):
        fit(SmallCNN(), digits.train.subset(100), Standard(), steps=1, progress=False, channels_last="yes")


def test_bad_precision_is_refused_by_name(digits):
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16'\)"):
        MMA(0.3, "linf", precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        anpgd(SmallCNN(), digits.test.x[:2], digits.test.y[:2], 0.1, norm="linf", max_eps=0.3, precision="half")


def test_precision_flag_is_for_mma_presets_only(capsys):
    assert main(["train", "--preset", "mnist-linf-pgd-0.3", "--data", "offline", "--steps", "1",
                 "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--precision bf16 applies to MMA/OMMA presets" in err


def test_evaluation_in_channels_last_is_exactly_the_naive_result_and_restores_the_layout(small_cnn, digits):
    model = copy.deepcopy(small_cnn)
    kw = dict(norm="linf", eps_list=[0.05, 0.1, 0.2], steps=10, restarts=4, progress=False, device="cpu", seed=2)
    data = digits.test.subset(60)
    fast = robust_accuracy(model, data, channels_last=True, **kw)
    naive = robust_accuracy(model, data, channels_last=True, skip_broken=False, **kw)
    assert torch.equal(fast.robust, naive.robust)
    assert 0 < fast.accuracy[-1] < fast.accuracy[0]  # the attack breaks some, not all
    assert model.conv1.weight.is_contiguous()  # the caller's model is left in its layout
