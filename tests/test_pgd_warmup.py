"""PGD-AT's ε warm-up (``PGDAT(warmup_steps=...)``): the radius ramps, the ramp survives resume."""

import pytest
import torch

from mma_edu.data import mnist_offline
from mma_edu.models import build_model
from mma_edu.train import LAST, PGDAT, fit


@pytest.fixture(scope="module")
def train():
    return mnist_offline().train.subset(200)


def test_radius_ramps_linearly_then_stays(train):
    method = PGDAT(eps=0.3, steps=2, warmup_steps=4)
    seen = []
    fit(build_model("small_cnn"), train, method, steps=6, batch_size=50, progress=False, device="cpu",
        callbacks=[lambda e: seen.append(e.record["eps"]) if e.kind == "step" else None])
    assert seen == pytest.approx([0.075, 0.15, 0.225, 0.3, 0.3, 0.3])
    assert method.config()["warmup_steps"] == 4 and "steps_done" not in method.config()


def test_no_warmup_is_the_fixed_radius():
    method = PGDAT(eps=0.3)
    assert method.current_eps() == 0.3 and method.state_dict() == {}


@pytest.mark.parametrize("bad", [-1, 1.5, True, "4"])
def test_warmup_steps_must_be_a_count(bad):
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        PGDAT(eps=0.3, warmup_steps=bad)


def test_resume_continues_the_ramp(tmp_path, train):
    def run(out, steps, resume=False):
        torch.manual_seed(0)
        model = build_model("small_cnn")
        method = PGDAT(eps=0.3, steps=2, warmup_steps=6)
        fit(model, train, method, steps=steps, batch_size=50, out=out, resume=resume, progress=False, device="cpu")
        return model, method

    ref, ref_method = run(tmp_path / "a", 8)
    run(tmp_path / "b", 3)  # stops mid-ramp
    model, method = run(tmp_path / "b", 8, resume=True)
    assert method.steps_done == ref_method.steps_done == 8
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    assert (tmp_path / "b" / LAST).exists()
