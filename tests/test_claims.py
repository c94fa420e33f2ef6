"""MMA's own claims, checked by training on the offline MNIST subset on a CPU (about 40 s).

Same budget for both models: a SmallCNN, 6 epochs of Adam at batch 50 on 4,000 digits; held-out
margins on 300 test digits (ℓ∞ AN-PGD search, refined). Every model must first have trained
(high clean accuracy, not one class for everything): a claim resting on a failed run proves nothing.

The comparison with fixed-ε PGD-AT (over-perturbation, small-ε PGD beating MMA, d_max
insensitivity) runs on the model zoo, whose baselines are checked to have trained:
``tests/test_zoo_claims.py``.
"""

import pytest
import torch

from mma_edu.data import mnist_offline
from mma_edu.margins import estimate_margins
from mma_edu.models import build_model
from mma_edu.train import MMA, Standard, clean_accuracy, fit

D_MAX = 0.3
EPOCHS = 6
MIN_CLEAN = 0.90  # every model must reach this before its margins mean anything
MAX_TOP_CLASS = 0.2  # a constant classifier gives one class to every digit; the test set has 10% of each


@pytest.fixture(scope="module")
def trained():
    train, test = mnist_offline()
    test = test.subset(300)
    out = {}
    for name, method in [
        ("standard", Standard()),
        ("mma", MMA(D_MAX, "linf", mineps=0.05, steps=10)),
    ]:
        torch.manual_seed(0)
        model = build_model("small_cnn")
        fit(model, train, method, epochs=EPOCHS, batch_size=50, lr=1e-3, progress=False, device="cpu")
        margins = estimate_margins(model, test.x, test.y, norm="linf", max_eps=0.5, steps=20, refine=1)
        with torch.no_grad():
            top = model(test.x).argmax(1).bincount(minlength=10).max().item() / len(test)
        out[name] = dict(model=model, method=method, acc=clean_accuracy(model, test, torch.device("cpu")),
                         median=margins.margin.median().item(), top=top)
    print({k: (round(v["acc"], 3), round(v["median"], 3), round(v["top"], 3)) for k, v in out.items()})
    return train, out


def test_every_model_trained(trained):
    _, r = trained
    for name, v in r.items():
        assert v["acc"] >= MIN_CLEAN and v["top"] <= MAX_TOP_CLASS, (name, v["acc"], v["top"])


def test_mma_grows_margins_at_high_clean_accuracy(trained):
    _, r = trained
    assert r["mma"]["median"] >= 1.5 * r["standard"]["median"], (r["mma"]["median"], r["standard"]["median"])


def test_margin_memory_tracks_fresh_estimates(trained):
    train, r = trained
    model, method = r["mma"]["model"], r["mma"]["method"]
    idx = torch.arange(0, len(train), 8)  # 500 training examples
    fresh = estimate_margins(model, train.x[idx], train.y[idx], norm="linf", max_eps=method.max_eps, steps=20,
                             refine=1).margin
    stored = method.margins[idx].cpu()
    corr = torch.corrcoef(torch.stack([stored, fresh]))[0, 1].item()
    assert corr > 0.6, corr
