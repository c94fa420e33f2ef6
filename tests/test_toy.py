"""2-D toys: the ε/d_max sweep scores models as the paper does (clean accuracy, AvgRobAcc), checked against the
closed form of a linear model, reuses models it is given, and names bad inputs."""

import pytest
import torch
from torch import nn

from mma_edu.data import ArrayDataset, toy_2d
from mma_edu.margins import linear_margins
from mma_edu.toy import SweepPoint, score_2d, sweep_2d


def _linear_problem():
    torch.manual_seed(0)
    x = torch.randn(200, 2)
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.5], [-1.0, -0.5]]))
        model.bias.copy_(torch.tensor([0.1, -0.1]))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0.3).long()  # a line near, but not on, the model's boundary: some errors
    return model, ArrayDataset(x, y)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_score_2d_matches_the_closed_form_of_a_linear_model(norm):
    model, data = _linear_problem()
    eps = [0.1, 0.3, 0.6]
    clean, acc = score_2d(model, data, norm=norm, eps=eps)
    margins = linear_margins(model.weight, model.bias, data.x, data.y, norm=norm)  # 0 where misclassified
    correct = model(data.x).argmax(1) == data.y
    assert clean == pytest.approx(correct.float().mean().item())
    assert 0 < clean < 1
    # Robust at ε exactly when correct and the margin exceeds ε (PGD finds the linear worst case; allow the
    # few points within a hair of ε).
    for e, a in zip(eps, acc):
        want = (correct & (margins > e)).float().mean().item()
        assert a == pytest.approx(want, abs=0.011), (e, a, want)
    assert acc == sorted(acc, reverse=True) and acc[-1] < acc[0]


def test_sweep_reuses_given_models_trains_the_rest_and_averages_robust_accuracy():
    data = toy_2d("moons", 40, noise=0.1, seed=0)
    model, _ = _linear_problem()
    given = nn.Sequential(nn.Linear(2, 2))
    given[0].load_state_dict(model.state_dict())
    lines = []
    points = sweep_2d(data, {"pgd": (0.1, 0.3), "mma": (0.2,)}, "l2", eps=(0.1, 0.2), epochs=2,
                      trained={("pgd", 0.3): given}, progress=lines.append)
    assert [(p.method, p.size) for p in points] == [("pgd", 0.1), ("pgd", 0.3), ("mma", 0.2)]
    assert points[1].model is given and points[0].model is not given and "(reused)" in lines[1]
    clean, acc = score_2d(given, data, norm="l2", eps=(0.1, 0.2))
    assert (points[1].clean, points[1].accuracy) == (clean, acc)
    assert points[1].avg_rob_acc == pytest.approx(sum(acc) / 2)
    assert SweepPoint("mma", 0.5, 1.0, [0.1, 0.2], [0.8, 0.4]).avg_rob_acc == pytest.approx(0.6)


@pytest.mark.parametrize("kw, match", [
    (dict(sizes={"standard": (0.1,)}), "sizes must map 'pgd' or 'mma'"),
    (dict(sizes={"pgd": ()}), r"sizes\['pgd'\] must be a non-empty"),
    (dict(sizes={"mma": (-0.1,)}), r"sizes\['mma'\] must be a non-empty list of positive"),
    (dict(eps=(0.3, 0.1)), "eps must be a non-empty increasing list"),
    (dict(eps=()), "eps must be a non-empty increasing list"),
])
def test_sweep_names_bad_inputs(kw, match):
    data = toy_2d("moons", 20, seed=0)
    args = dict(sizes={"pgd": (0.1,)}, eps=(0.1,)) | kw
    with pytest.raises(ValueError, match=match):
        sweep_2d(data, args["sizes"], "l2", eps=args["eps"], epochs=1)
