"""Transfer attacks: a model attacked through itself is whitebox PGD, example by example; through another model
the attack is weaker than whitebox on the target; bad inputs are named."""

import pytest
import torch
from torch import nn

from mma_edu import zoo
from mma_edu.evaluate import robust_accuracy
from mma_edu.transfer import transfer_accuracy

EPS = [0.1, 0.2, 0.3]


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    return zoo.eval_data(60)


def test_self_transfer_is_whitebox_pgd_example_by_example(digits):
    model = zoo.load("standard")
    kw = dict(norm="linf", eps_list=EPS, steps=10, restarts=2, seed=3)
    white = robust_accuracy(model, digits, progress=False, **kw)
    self_t = transfer_accuracy(model, model, digits, **kw)
    assert self_t.clean == white.clean and torch.equal(self_t.robust, white.robust)
    assert self_t.protocol["attack"] == "transfer" and self_t.protocol["losses"] == ["ce", "cw"]


def test_transfer_from_another_model_is_no_stronger_than_whitebox_here(digits):
    source, target = zoo.load("standard"), zoo.load("mma-0.45")
    kw = dict(norm="linf", eps_list=EPS, steps=10, restarts=2, seed=0)
    white = robust_accuracy(target, digits, progress=False, **kw)
    moved = transfer_accuracy(source, target, digits, **kw)
    assert moved.clean == white.clean
    # Robust accuracy never rises with ε, and the transferred perturbations break fewer digits than whitebox.
    assert all(b <= a for a, b in zip([moved.clean] + moved.accuracy, moved.accuracy))
    assert all(m >= w for m, w in zip(moved.accuracy, white.accuracy)) and moved.accuracy[-1] > white.accuracy[-1]


def test_transfer_names_bad_inputs(digits):
    m = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ValueError, match="norm"):
        transfer_accuracy(m, m, digits, norm="l3", eps_list=[0.1])
    with pytest.raises(ValueError, match="eps"):
        transfer_accuracy(m, m, digits, norm="linf", eps_list=[0.3, 0.1])
    with pytest.raises(ValueError, match="steps"):
        transfer_accuracy(m, m, digits, norm="linf", eps_list=[0.1], steps=0)
    # the same checks as whitebox PGD's (evaluate.check_attack_args), the step fraction included
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="step_fraction"):
            transfer_accuracy(m, m, digits, norm="linf", eps_list=[0.1], step_fraction=bad)
