"""Peer attacks from other libraries (optional extra `attacks`): checked against exact margins of linear models."""

import pytest
import torch

from mma_edu.data import ArrayDataset
from mma_edu.margins import linear_margins

from conftest import random_linear

pytest.importorskip("art")


def _data(model, n=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand(n, 8, generator=g)
    with torch.no_grad():
        return ArrayDataset(x, model(x).argmax(1), "toy")  # labels: the model's own predictions


def test_apgd_never_breaks_an_example_inside_its_exact_margin_and_breaks_beyond():
    from mma_edu.peer import apgd_robust

    model = random_linear(8, 4).float()
    data = _data(model)
    exact = linear_margins(model.fc.weight.double(), model.fc.bias.double(), data.x.double(), data.y, norm="linf")
    eps = [0.01, 0.03, 0.1]
    robust = apgd_robust(model, data, norm="linf", eps_list=eps, steps=30)
    for k, e in enumerate(eps):
        assert robust[exact > e * 1.001, k].all(), "an example was counted broken inside its margin"
        # No box can stop a linear model's shortest perturbation when it stays inside [0, 1]: x in [0.3, 0.7].
        assert not robust[exact < e * 0.999, k].any(), "APGD missed a perturbation the closed form gives"
    assert (robust[:, 1:] <= robust[:, :-1]).all()  # never robust at a larger eps after breaking at a smaller one


def test_fmn_distances_are_upper_bounds_of_exact_margins():
    pytest.importorskip("foolbox")
    from mma_edu.peer import foolbox_distances

    model = random_linear(8, 4).float()
    data = _data(model)
    exact = linear_margins(model.fc.weight.double(), model.fc.bias.double(), data.x.double(), data.y, norm="linf")
    d, found, correct = foolbox_distances(model, data, norm="linf", steps=100, device="cpu")
    assert correct.all() and found.float().mean() > 0.9
    assert (d[found].double() >= exact[found] * (1 - 1e-4)).all()  # a real perturbation is never shorter
    assert (d[found].double() <= exact[found] * 1.05 + 1e-4).float().mean() > 0.9  # and FMN gets close


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_our_fmn_is_no_weaker_than_foolbox_fmn_on_zoo_models(norm):
    # Our FMN (mma_edu.attacks.fmn) against foolbox's on 30 digits of the l_inf PGD-AT model, 100 steps each
    # (about 2 s per norm). Measured on 200 digits, l2 medians: standard 1.28 (ours) vs 1.68 (foolbox),
    # pgd-0.3 2.14 vs 3.25.
    pytest.importorskip("foolbox")
    from mma_edu import zoo
    from mma_edu.attacks.fmn import fmn
    from mma_edu.losses import logit_margin
    from mma_edu.peer import foolbox_distances

    data = zoo.eval_data(30)
    for name in ("pgd-0.3",):
        model = zoo.load(name)
        ours = fmn(model, data.x, data.y, norm=norm, steps=100)
        theirs, found, correct = foolbox_distances(model, data, norm=norm, steps=100, device="cpu")
        with torch.no_grad():
            assert (logit_margin(model(ours.x_adv[ours.found]), data.y[ours.found]) >= 0).all()
        both = ours.found & found & correct
        assert both.float().mean() >= 0.9
        ratio = ours.length[both] / theirs[both]
        assert ratio.median() <= 1.01, (name, ratio.median())


def _advlib():
    try:
        from mma_edu.peer import require_advlib

        return require_advlib()
    except ImportError as err:
        pytest.skip(str(err))


def test_advlib_fab_and_cw_are_upper_bounds_of_exact_margins():
    _advlib()
    from mma_edu.peer import advlib_distances

    model = random_linear(8, 4).float()
    data = _data(model)
    exact = linear_margins(model.fc.weight.double(), model.fc.bias.double(), data.x.double(), data.y, norm="l2")
    for attack, steps in (("fab", 50), ("cw", 200)):
        d, found, correct = advlib_distances(model, data, attack=attack, steps=steps)
        assert correct.all() and found.float().mean() > 0.9, attack
        assert (d[found].double() >= exact[found] * (1 - 1e-4)).all(), attack
        assert (d[found].double() <= exact[found] * 1.05 + 1e-4).float().mean() > 0.9, attack


@pytest.mark.slow
def test_best_with_targets_is_within_5_percent_of_fab_on_the_linf_trained_zoo_model():
    # Issue 24: the l2 margins of an l_inf PGD-trained model (a gradient-masking candidate), against FAB.
    # Measured (median per-digit ratio to FAB-100): pgd-0.3 on 200 digits, "best" 0.975x, with
    # targets="all" 0.960x, AN-PGD alone 0.997x, our FMN 0.990x; pgd-0.4 on 100 digits, "best" 0.958x.
    # On these 40 digits "best" alone varies with the seed between 0.98x and 1.06x of FAB's median
    # (per-digit ratios: median 0.97); targets="all" 0.98x (0.957). FAB misses 3 of the 40 digits
    # (L_LM -5 at its point). About 40 s on one thread.
    _advlib()
    from mma_edu import zoo
    from mma_edu.margins import estimate_margins
    from mma_edu.peer import advlib_distances

    model, data = zoo.load("pgd-0.3"), zoo.eval_data(40)
    fab, found, correct = advlib_distances(model, data, attack="fab", steps=100)
    torch.manual_seed(0)
    ours = estimate_margins(model, data.x, data.y, norm="l2", max_eps=10.0, method="best", targets="all")
    both = found & correct & ours.found
    assert both.float().mean() >= 0.85
    assert ours.margin[both].median() <= 1.05 * fab[both].median()
    assert (ours.margin[both] / fab[both]).median() <= 1.05
