"""Widget update logic, called directly (no browser needed)."""

import pytest
import torch

from mma_edu.data import mnist_offline, toy_2d
from mma_edu.models import build_model
from mma_edu.train import Event, History
from mma_edu.widgets import ANPGDStepThrough, MarginExplorer2D, MNISTMarginExplorer, TrainingDashboard, train_2d

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_margin_explorer_retrains_on_new_controls():
    e = MarginExplorer2D(dataset="moons", norm="l2", method="standard", n=60, epochs=30)
    first_model = e.model
    assert e.title.startswith("standard (l2")
    e.method.value, e.size.value, e.norm.value = "mma", 0.4, "linf"
    e.update()
    assert e.model is not first_model and e.title.startswith("mma (linf, 0.4)")
    assert len(e.fig.data) == 4 and len(e.fig.data[3].x) == 60  # regions, balls, arrows, points
    bundle = e._repr_mimebundle_()
    assert WIDGET_MIME in bundle and bundle["image/png"]


def test_anpgd_step_through_walks_pgd_then_a_shrinking_bracket():
    data = toy_2d("moons", 60, seed=0)
    model, _ = train_2d(data, "standard", 0.0, "l2", epochs=30)
    s = ANPGDStepThrough(model, data.x[:1], data.y[:1], eps_init=0.1, norm="l2", max_eps=1.0, steps=5,
                         search_steps=8)
    assert s.total == 6 + 9  # start + 5 PGD iterates, 8 bisection steps + the final narrowing
    assert s.show_step(3)["phase"] == "pgd" and s.show_step(3)["bracket"] is None
    widths = [s.show_step(k)["bracket"] for k in range(7, s.total + 1)]
    widths = [hi - lo for lo, hi in widths]
    assert all(b <= a + 1e-9 for a, b in zip(widths, widths[1:]))
    lo, hi = s.show_step(s.total)["bracket"]
    assert lo == pytest.approx(s.result.lower.item()) and hi == pytest.approx(s.result.upper.item())
    assert len(s.fig.data[3].x) == len(s.trace["bisect"])
    with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
        ANPGDStepThrough(model, data.x[:2], data.y[:2], eps_init=0.1, norm="l2", max_eps=1.0)


def test_mnist_explorer_selects_digits_and_caches():
    test = mnist_offline().test.subset(5)
    model = build_model("small_cnn")
    m = MNISTMarginExplorer(model, test, norm="linf", max_eps=0.5, steps=3, refine=0)
    c = m.select(2)
    assert c["y"] == int(test.y[2]) and (c["x_adv"] - c["x"]).abs().max() <= c["margin"] + 1e-6
    assert m.compute(2) is c  # cached
    assert "margin" in m.label.value
    assert m.fig.data[0].z is not None and len(m.fig.data[3].y) == 10


def test_training_dashboard_updates_from_events():
    d = TrainingDashboard(every=2)
    h = History()
    for step in range(1, 7):
        d.callback(Event("step", step, 0, {"loss": 1.0 / step}, h))
    d.callback(Event("epoch", 6, 0, {"epoch": 1, "clean_acc": 0.8, "margin": 0.1,
                                     "margin_hist": {"edges": [0, 0.5, 1.0], "counts": [3, 1]}}, h))
    assert d.steps == [2, 4, 6] and list(d.fig.data[0].y) == [0.5, 0.25, 1 / 6]
    assert list(d.fig.data[1].y) == [0.8] and list(d.fig.data[3].y) == [3, 1]
    assert d._repr_mimebundle_()["image/png"]


def test_train_2d_rejects_unknown_methods():
    with pytest.raises(ValueError, match="method must be one of"):
        train_2d(toy_2d("moons", 20), "trades", 0.1, "l2", epochs=1)
