"""Shared fixtures: seeded RNG and small trained models (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mma_edu.data import toy_2d
from mma_edu.models import MLP, Linear


# The suite's models are small: one thread runs them fastest, and two threads on a 2-core machine shared with
# notebook kernels and child processes wait on each other (measured: 70 s instead of 464 s for the zoo, claims
# and evaluation tests). `make test` also sets OMP_NUM_THREADS=1 for every process it starts.
torch.set_num_threads(1)

HERE = Path(__file__).resolve().parent


def pytest_addoption(parser):
    parser.addoption("--browser", action="store_true",
                     help="also collect tests/browser/ (a real Chromium; make test-browser)")
    parser.addoption("--grading", action="store_true",
                     help="also collect tests/grading/ (the nbgrader loop, minutes; make test-grading)")


def pytest_ignore_collect(collection_path, config):
    # The browser suite and the nbgrader loop run only when asked, so a plain `pytest` never runs them twice
    # beside make's own call.
    for suite in ("browser", "grading"):
        if collection_path == HERE / suite and not config.getoption(f"--{suite}"):
            named = any(str(Path(a.split("::")[0]).resolve()).startswith(str(collection_path)) for a in config.args)
            return not named  # `pytest tests/browser/...` asks for it by name
    return None


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def random_linear(in_dim: int, num_classes: int, seed: int = 0) -> Linear:
    """A float64 linear model with Gaussian weights and biases."""
    g = torch.Generator().manual_seed(seed)
    model = Linear(in_dim, num_classes).double()
    with torch.no_grad():
        model.fc.weight.copy_(torch.randn(num_classes, in_dim, generator=g, dtype=torch.float64))
        model.fc.bias.copy_(torch.randn(num_classes, generator=g, dtype=torch.float64))
    return model


@pytest.fixture(scope="session")
def moons_mlp():
    """An MLP trained to 100% accuracy on 200 two-moons points: (model, dataset)."""
    torch.manual_seed(0)
    ds = toy_2d("moons", 200, noise=0.1, seed=0)
    model = MLP(hidden=32, depth=2)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(500):
        loss = F.cross_entropy(model(ds.x), ds.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    assert (model(ds.x).argmax(1) == ds.y).float().mean() > 0.98
    return model, ds
