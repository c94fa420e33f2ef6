"""Training: the MMA loss as the paper defines it, checkpoints, resume and Ctrl-C."""

import json

import pytest
import torch
from torch import nn

from mma_edu.attacks import anpgd
from mma_edu.checkpoint import load_checkpoint, read_checkpoint
from mma_edu.data import mnist_offline
from mma_edu.losses import cross_entropy, soft_logit_margin
from mma_edu.models import build_model
from mma_edu.train import BEST, HISTORY, LAST, MMA, OMMA, PGDAT, PiecewiseConstant, Standard, fit


@pytest.fixture(scope="module")
def tiny_data():
    splits = mnist_offline()
    return splits.train.subset(200), splits.test.subset(40)


def _model():
    torch.manual_seed(0)
    return build_model("small_cnn", width=4, hidden=16)


def test_mma_loss_matches_the_paper_definition():
    model = _model()
    # Pre-train a little so that some examples are correct and some are not.
    data = mnist_offline().train.subset(100)
    fit(model, data, Standard(), steps=30, batch_size=50, lr=3e-3, progress=False, device="cpu")
    x, y, index = data.x[:50], data.y[:50], torch.arange(50)
    method = MMA(d_max=0.1, norm="linf", mineps=0.05, steps=5, search_steps=6)
    method.setup(100, torch.device("cpu"))
    method.margins[:50] = torch.linspace(0.0, 0.2, 50)  # some below mineps, some above max_eps

    torch.manual_seed(123)
    model.train()
    loss, stats = method.batch_loss(model, x, y, index)

    # The same computation written out from §4 of the paper notes.
    torch.manual_seed(123)
    with torch.no_grad():
        logits = model(x)
        pos = soft_logit_margin(logits, y) < 0
        eps_prev = torch.linspace(0.0, 0.2, 50)[pos].clamp(0.05, 0.105)
        res = anpgd(model, x[pos], y[pos], eps_prev, norm="linf", max_eps=0.105, steps=5, search_steps=6,
                    loss="slm")
        eps_hat = torch.zeros(50)
        eps_hat[pos] = res.eps
        x_mix = x.clone()
        x_mix[pos] = res.x_adv
        ce = cross_entropy(model(x_mix), y)
        keep = ~pos | (eps_hat < 0.1)
        expected = (2 / 3) * (ce * keep).sum() / 50 + (1 / 3) * cross_entropy(logits, y).mean()
    assert 0 < pos.sum() < 50 and (pos & ~keep).any()  # both sets and the hinge are exercised
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-5, atol=1e-6)
    # The memory now holds ε̂ for S⁺ and 0 for S⁻.
    torch.testing.assert_close(method.margins[:50], eps_hat)
    assert stats["hinge_dropped"] == pytest.approx((pos & ~keep).float().mean().item())


def test_omma_drops_the_clean_loss():
    assert OMMA(0.3).clean_weight == 0 and MMA(0.3).clean_weight == pytest.approx(1 / 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(d_max=-1.0), "d_max must be a positive number"),
    (dict(d_max=0.3, norm="l1"), "norm must be one of"),
    (dict(d_max=0.3, clean_weight=2.0), r"clean_weight must be in \[0, 1\]"),
    (dict(d_max=0.3, mineps=0.5), r"mineps \(0.5\) must be <="),
])
def test_mma_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MMA(**kwargs)


def test_fit_bad_arguments(tiny_data):
    train, _ = tiny_data
    with pytest.raises(ValueError, match="exactly one of steps= and epochs="):
        fit(_model(), train, Standard(), progress=False)
    with pytest.raises(ValueError, match="batch_size must be an integer in"):
        fit(_model(), train, Standard(), steps=1, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        fit(_model(), train, Standard(), steps=1, optimizer="rmsprop", progress=False)
    with pytest.raises(ValueError, match="resume=True needs out="):
        fit(_model(), train, Standard(), steps=1, resume=True, progress=False)


_PRETRAINED: dict = {}


def _pretrained(train):
    """A model that already classifies most examples, so AN-PGD (and its randomness) is in play."""
    if not _PRETRAINED:
        model = _model()
        fit(model, train, Standard(), steps=40, batch_size=50, lr=3e-3, progress=False, device="cpu")
        _PRETRAINED.update({k: v.clone() for k, v in model.state_dict().items()})
    model = _model()
    model.load_state_dict(_PRETRAINED)
    return model


def _run(tmp, data, steps, resume=False, callbacks=()):
    train, val = data
    model = _pretrained(train)
    method = MMA(d_max=0.3, norm="linf", mineps=0.05, steps=3, search_steps=4)
    hist = fit(model, train, method, steps=steps, batch_size=25, lr=1e-3, eval_data=val, eval_size=20,
               eval_steps=3, out=tmp, resume=resume, progress=False, device="cpu", seed=7, callbacks=callbacks)
    return model, method, hist


def test_resume_reproduces_the_uninterrupted_run(tmp_path, tiny_data):
    # 8 steps per epoch; stop mid-epoch at step 5, resume to 12.
    ref_model, ref_method, ref_hist = _run(tmp_path / "a", tiny_data, 12)
    _run(tmp_path / "b", tiny_data, 5)
    assert read_checkpoint(tmp_path / "b" / LAST)["step"] == 5
    torch.manual_seed(999)  # as in a fresh process: the checkpoint must restore the RNG
    model, method, hist = _run(tmp_path / "b", tiny_data, 12, resume=True)
    assert hist.step_loss == ref_hist.step_loss  # every step's loss, exactly
    assert ref_hist.epochs[0]["margin"] > 0  # AN-PGD ran
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(method.margins, ref_method.margins)  # the margin memory survived
    assert [e["epoch"] for e in hist.epochs] == [1, 2]
    assert hist.epochs[-1]["partial"] and not hist.epochs[0].get("partial")
    assert hist.epochs[0]["loss"] == pytest.approx(ref_hist.epochs[0]["loss"])
    assert (tmp_path / "b" / BEST).exists() and (tmp_path / "b" / HISTORY).exists()


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tmp_path, tiny_data):
    ref_model, _, ref_hist = _run(tmp_path / "a", tiny_data, 10)

    def interrupt(event):
        if event.kind == "step" and event.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", tiny_data, 10, callbacks=[interrupt])
    assert read_checkpoint(tmp_path / "b" / LAST)["step"] == 3
    torch.manual_seed(999)
    model, _, hist = _run(tmp_path / "b", tiny_data, 10, resume=True)
    assert hist.step_loss == ref_hist.step_loss
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()))


def test_a_crash_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, tiny_data, monkeypatch):
    _run(tmp_path, tiny_data, 8)  # one full epoch: last.pt at step 8
    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        real_save(obj, f, *args, **kwargs)
        raise OSError("disk full")  # after writing: the file is complete but the write "failed"

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        _run(tmp_path, tiny_data, 16, resume=True)
    monkeypatch.undo()
    assert calls["n"] >= 1
    assert read_checkpoint(tmp_path / LAST)["step"] == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LAST, BEST, HISTORY])
    assert load_checkpoint(tmp_path / LAST).model_name == "small_cnn"


def test_history_records_margins_and_checkpoint_names_its_model(tmp_path, tiny_data):
    _, _, hist = _run(tmp_path, tiny_data, 8)
    rec = hist.epochs[0]
    for key in ("loss", "clean_acc", "margin", "margin_hist", "val_acc", "val_margin", "seconds"):
        assert key in rec, key
    assert sum(rec["margin_hist"]["counts"]) == 200  # every example's ε̂ this epoch
    ck = load_checkpoint(tmp_path / LAST)
    assert ck.state["data"] == "mnist_offline/train[200]" and ck.state["method"]["method"] == "mma"


def test_piecewise_constant_schedule():
    s = PiecewiseConstant([20_000, 30_000, 40_000], [0.3, 0.09, 0.03, 0.009])
    assert [s(0), s(19_999), s(20_000), s(35_000), s(49_999)] == [0.3, 0.3, 0.09, 0.03, 0.009]
    with pytest.raises(ValueError, match="one more entry"):
        PiecewiseConstant([1], [0.1])


def test_pgdat_trains_on_the_pgd_point(tiny_data):
    train, _ = tiny_data
    model = _model()
    method = PGDAT(eps=0.1, norm="linf", steps=3)
    hist = fit(model, train, method, steps=4, batch_size=50, progress=False, device="cpu")
    assert len(hist.step_loss) == 4 and all(k in hist.epochs[0] for k in ("adv_acc", "clean_acc"))
    with pytest.raises(ValueError, match="eps must be a positive number"):
        PGDAT(eps=0.0)


# ------------------------------------------------------------ batch norm during AN-PGD, training point


class _BNNet(nn.Module):
    """conv → batch norm → ReLU → linear on 8×8 images, logits scaled up so most examples are confident."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 10)
        with torch.no_grad():
            self.fc.weight.mul_(20)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def _bn_batch():
    torch.manual_seed(0)
    model = _BNNet().train()
    x = torch.rand(32, 1, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)  # the train-mode prediction: the clean forward of batch_loss sees the same
    return model, x, y


@pytest.mark.parametrize("search_steps", [10, 3])
@pytest.mark.parametrize("bn_mode", ["reference", "eval"])
def test_batch_norm_running_statistics_update_as_the_reference(bn_mode, search_steps):
    model, x, y = _bn_batch()
    calls = []  # (train mode, grad enabled) of every forward
    model.register_forward_hook(lambda m, i, o: calls.append((m.training, torch.is_grad_enabled())))
    method = MMA(d_max=0.3, norm="linf", mineps=0.05, steps=3, search_steps=search_steps, bn_mode=bn_mode)
    method.setup(32, torch.device("cpu"))
    before = int(model.bn.num_batches_tracked)
    _, stats = method.batch_loss(model, x, y, torch.arange(32))
    updates = int(model.bn.num_batches_tracked) - before
    assert 2 <= int((method.margins > 0).sum()) < 32  # AN-PGD ran on a sub-batch S⁺ (ε̂ > 0 there only)
    # reference: clean + check at the PGD point + one per bisection step + mixed; eval: clean + mixed.
    assert updates == (search_steps + 3 if bn_mode == "reference" else 2)
    train_calls = [grad for training, grad in calls if training]
    assert len(train_calls) == updates
    # Only the clean and the mixed forward build graphs; the search forwards run without autograd.
    assert train_calls[0] and train_calls[-1] and not any(train_calls[1:-1])


def test_bn_modes_are_bitwise_identical_without_batch_norm(tiny_data):
    train, _ = tiny_data
    x, y, index = train.x[:50], train.y[:50], torch.arange(50)
    results = {}
    for bn_mode in ("eval", "reference"):
        model = _pretrained(train)
        method = MMA(d_max=0.3, norm="linf", mineps=0.05, steps=3, search_steps=5, bn_mode=bn_mode)
        method.setup(len(train), torch.device("cpu"))
        torch.manual_seed(11)
        model.train()
        loss, stats = method.batch_loss(model, x, y, index)
        loss.backward()
        results[bn_mode] = (loss.detach(), method.margins.clone(), [p.grad.clone() for p in model.parameters()])
    (la, ma, ga), (lb, mb, gb) = results["eval"], results["reference"]
    assert (ma > 0).any()
    assert torch.equal(la, lb) and torch.equal(ma, mb) and all(torch.equal(a, b) for a, b in zip(ga, gb))


def _training_points(clip_training_point, train):
    """The inputs of MMA's mixed forward (the training points) for one batch."""
    model = _pretrained(train)
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    # A small ε_prev so that ε̂ > ε_prev: x + ε̂·u then overshoots where the PGD point sat on the box's edge.
    method = MMA(d_max=0.3, norm="linf", mineps=0.01, steps=3, search_steps=6,
                 clip_training_point=clip_training_point)
    method.setup(len(train), torch.device("cpu"))
    torch.manual_seed(5)
    model.train()
    method.batch_loss(model, train.x[:50], train.y[:50], torch.arange(50))
    return seen[-1], method.margins[:50]


def test_training_point_is_clipped_unless_asked_to_reproduce_the_reference(tiny_data):
    train, _ = tiny_data
    clipped, eps_a = _training_points(True, train)
    raw, eps_b = _training_points(False, train)
    assert torch.equal(eps_a, eps_b)  # same search; only the returned point differs
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert raw.min() < 0 or raw.max() > 1  # the reference's unclipped point leaves the box
    torch.testing.assert_close(raw.clamp(0, 1), clipped, rtol=0, atol=1e-6)


def test_pgdls_smooths_the_training_loss_not_the_attack(tiny_data):
    train, _ = tiny_data
    model = _pretrained(train)
    x, y, index = train.x[:20], train.y[:20], torch.arange(20)
    points, losses = {}, {}
    for s in (0.0, 0.5):
        seen = []
        hook = model.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
        torch.manual_seed(3)
        model.train()
        losses[s], _ = PGDAT(0.1, steps=2, label_smoothing=s).batch_loss(model, x, y, index)
        hook.remove()
        points[s] = seen[-2]  # the PGD point: the last forward is the eval-mode clean accuracy
    assert torch.equal(points[0.0], points[0.5])  # the attack is the same
    with torch.no_grad():
        logits = model(points[0.5])
    expected = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.5)
    torch.testing.assert_close(losses[0.5].detach(), expected)
    assert not torch.allclose(losses[0.0], losses[0.5])


@pytest.mark.parametrize("selection", ["reference", "estimate"])
def test_history_records_how_best_was_selected(tmp_path, tiny_data, selection):
    train, val = tiny_data
    model = _pretrained(train)
    method = MMA(d_max=0.3, norm="linf", mineps=0.05, steps=2, search_steps=3)
    hist = fit(model, train, method, steps=8, batch_size=25, eval_data=val, eval_size=12, eval_steps=2,
               selection=selection, out=tmp_path, progress=False, device="cpu")
    rec = hist.epochs[0]["selection"]
    assert rec["images"] == 12
    if selection == "reference":
        # The reference's search: PGD at MNIST's test eps 0.3, 40 steps, bisection up to 1.05 d_max.
        assert rec["estimator"] == "reference" and rec["eps"] == 0.3 and rec["pgd_steps"] == 40
        assert rec["max_eps"] == pytest.approx(method.max_eps)
    else:
        assert rec["estimator"].startswith("estimate_margins") and rec["pgd_steps"] == 2
    saved = json.loads((tmp_path / HISTORY).read_text())["epochs"][0]["selection"]
    assert saved == rec
    best = read_checkpoint(tmp_path / BEST)
    assert best["best"] == pytest.approx(hist.epochs[0]["val_margin"])
    with pytest.raises(ValueError, match="selection must be one of"):
        fit(model, train, method, steps=1, selection="best", progress=False)
