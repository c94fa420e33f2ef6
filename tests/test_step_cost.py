"""step_cost: forward and backward passes per training step counted exactly, seconds measured, inputs checked."""

import pytest
import torch
from torch import nn

from mma_edu.step_cost import step_cost
from mma_edu.train import MMA, PGDAT, Standard


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


def test_passes_per_step_follow_the_methods_definitions():
    x, y = torch.rand(8, 1, 2, 2), torch.zeros(8, dtype=torch.long)
    model = _net()
    with torch.no_grad():  # class 0 with certainty: every example in S⁺ (p_y > 1/2), so MMA searches them all
        model[-1].bias[0] = 10.0
    before = [p.clone() for p in model.parameters()]
    cost = step_cost(model, {"standard": Standard(), "pgd": PGDAT(0.3, "linf", steps=7),
                             "mma": MMA(0.5, "linf", steps=7, search_steps=10)}, x, y, repeats=2)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the original is left alone
    assert (cost["standard"].forwards, cost["standard"].backwards) == (1, 1)
    # PGD-AT: 7 attack steps (forward + input gradient), then the training forward and backward (at least).
    assert cost["pgd"].forwards >= 8 and cost["pgd"].backwards == 8
    # MMA adds the bisection's 10 forwards and the clean pass on top of its 7 PGD steps.
    assert cost["mma"].forwards >= 7 + 10 + 2 and cost["mma"].forwards > cost["pgd"].forwards
    assert all(c.seconds > 0 for c in cost.values())


@pytest.mark.parametrize("kw, match", [(dict(methods={}), "methods must name"), (dict(repeats=0), "repeats must"),
                                       (dict(y=torch.zeros(3, dtype=torch.long)), "same number")])
def test_bad_inputs_are_named(kw, match):
    args = dict(methods={"standard": Standard()}, x=torch.rand(8, 1, 2, 2), y=torch.randint(0, 3, (8,)),
                repeats=1) | kw
    with pytest.raises(ValueError, match=match):
        step_cost(_net(), args["methods"], args["x"], args["y"], repeats=args["repeats"])
