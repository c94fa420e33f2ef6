"""Widget update logic and the pure figure functions behind them, called directly (no browser needed).

The browser half (render, interact, refresh, reopen) is tests/browser/.
"""

import base64
import math

import numpy as np
import pytest
import torch

from mma_edu import norms
from mma_edu.data import mnist_offline, toy_2d
from mma_edu.margins import estimate_margins, linear_margins
from mma_edu.models import build_model
from mma_edu.train import Event, History
from mma_edu.widgets import (ANPGDStepThrough, LinearMarginPlayground, MarginExplorer2D, MarginMemory,
                             MNISTMarginExplorer, OverPerturbationView, TrainingDashboard, anpgd_view_halfwidth,
                             digit_figure, linear_margin_summary, linear_model_2d, method_2d, over_perturbed,
                             train_2d)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PNG = b"\x89PNG"


def _is_png_of(bundle: dict, widget) -> bool:
    """The output carries the live widget and, as image/png, exactly the picture the widget shows."""
    return (WIDGET_MIME in bundle and pic(widget).startswith(PNG)
            and base64.b64decode(bundle["image/png"]) == pic(widget))


def pic(widget) -> bytes:
    """The PNG the widget shows now."""
    return bytes(widget.image.value)


@pytest.fixture(scope="module")
def moons_net():
    data = toy_2d("moons", 60, seed=0)
    model, _ = train_2d(data, "standard", 0.0, "l2", epochs=30)
    return model, data


def test_margin_explorer_retrains_on_new_controls():
    e = MarginExplorer2D(dataset="moons", norm="l2", method="standard", n=60, epochs=30)
    first_model, first_png = e.model, pic(e)
    assert e.title.startswith("standard (l2")
    e.method.value, e.size.value, e.norm.value = "mma", 0.4, "linf"
    e.update()
    assert e.model is not first_model and e.title.startswith("mma (linf, 0.4)")
    assert pic(e) != first_png and e.status.value == e.title and not e.button.disabled
    assert _is_png_of(e._repr_mimebundle_(), e)


def test_linear_playground_gives_the_dual_norm_margins_and_moves_with_code():
    p = LinearMarginPlayground(w=(1.0, 0.5), b=0.2, selected=3)
    s = p.summary()
    x = p.x[3].double()
    score = 1.0 * x[0] + 0.5 * x[1] + 0.2
    assert s["score"] == pytest.approx(float(score))
    if s["correct"]:  # closed form by hand: |f(x)| / ‖w‖_1 and / ‖w‖_2
        assert s["margin"]["linf"] == pytest.approx(abs(float(score)) / 1.5)
        assert s["margin"]["l2"] == pytest.approx(abs(float(score)) / math.hypot(1.0, 0.5))
    before = pic(p)
    p.set(w=(-0.5, 2.0), b=-0.3, point=5)
    assert (p.w1.value, p.w2.value, p.b.value, p.point.value) == (-0.5, 2.0, -0.3, 5)  # controls moved
    assert pic(p) != before and ("d_\\infty" in p.formula.value or "misclassified" in p.formula.value)
    # every point: the library's exact margins, δ* lands on the line, and d_inf <= d_2 <= sqrt(2) d_inf
    weight, bias = linear_model_2d(p.w, p.b.value)
    for i in range(len(p.x)):
        s = linear_margin_summary(p.w, p.b.value, p.x, p.y, i)
        for q in norms.NORMS:
            assert s["margin"][q] == pytest.approx(float(linear_margins(weight, bias, p.x[i : i + 1], p.y[i : i + 1],
                                                                        norm=q)))
        if s["correct"]:
            on_line = p.x[i] + s["delta"]["l2"]
            assert float(on_line @ torch.tensor([-0.5, 2.0], dtype=torch.float64) - 0.3) == pytest.approx(0, abs=1e-9)
            assert s["margin"]["linf"] <= s["margin"]["l2"] + 1e-12 <= math.sqrt(2) * s["margin"]["linf"] + 1e-9
        else:
            assert s["margin"]["linf"] == s["margin"]["l2"] == 0
    assert _is_png_of(p._repr_mimebundle_(), p)
    with pytest.raises(ValueError, match=r"x must be \(N, 2\)"):
        LinearMarginPlayground(torch.zeros(3, 3), torch.zeros(3, dtype=torch.long))


def test_over_perturbed_balls_are_exactly_those_that_cross_the_boundary():
    # Ground truth on a linear model: an ε-ball crosses the line iff some point of its outline is classified
    # otherwise; with exact margins that is margin < ε.
    data = toy_2d("linear", 40, seed=0)
    weight, bias = linear_model_2d((1.0, 1.0), 0.0)
    margins = linear_margins(weight, bias, data.x.double(), data.y, norm="l2")
    outline = norms.unit_ball_outline("l2", 720).double()
    for eps in (0.05, 0.2, 0.6):
        ring = data.x.double()[:, None, :] + eps * outline[None]
        flips = ((ring.sum(-1) > 0).long() != data.y[:, None]).any(1) | (margins == 0)
        assert torch.equal(over_perturbed(margins, eps), flips)


def test_over_perturbation_view_follows_its_slider(moons_net):
    model, data = moons_net
    m = estimate_margins(model, data.x, data.y, norm="l2", max_eps=1.5, clip=None, refine=0).margin
    v = OverPerturbationView({"standard": (model, m), "shifted": (model, m + 0.1)}, data.x, data.y, norm="l2",
                             eps=0.05)
    first = pic(v)
    v.set(eps=0.5)
    assert v.eps.value == 0.5 and pic(v) != first
    assert v.fraction() == pytest.approx(float((m < 0.5).float().mean())) and "%" in v.label.value
    v.set(model="shifted")
    assert v.fraction() == pytest.approx(float((m + 0.1 < 0.5).float().mean()))
    with pytest.raises(ValueError, match="margins of 'bad' must have shape"):
        OverPerturbationView({"bad": (model, m[:3])}, data.x, data.y, norm="l2")


def test_anpgd_step_through_walks_pgd_then_a_shrinking_bracket(moons_net):
    model, data = moons_net
    s = ANPGDStepThrough(model, data.x[:1], data.y[:1], eps_init=0.1, norm="l2", max_eps=1.0, steps=5,
                         search_steps=8)
    assert s.total == 6 + 9  # start + 5 PGD iterates, 8 bisection steps + the final narrowing
    assert s.view(3)["phase"] == "pgd" and s.view(3)["bracket"] is None
    widths = [s.view(k)["bracket"] for k in range(7, s.total + 1)]
    widths = [hi - lo for lo, hi in widths]
    assert all(b <= a + 1e-9 for a, b in zip(widths, widths[1:]))
    lo, hi = s.view(s.total)["bracket"]
    assert lo == pytest.approx(s.result.lower.item()) and hi == pytest.approx(s.result.upper.item())
    with pytest.raises(ValueError, match=r"shape \(1, 2\)"):
        ANPGDStepThrough(model, data.x[:2], data.y[:2], eps_init=0.1, norm="l2", max_eps=1.0)


def test_anpgd_step_set_from_code_moves_the_slider_and_the_picture(moons_net):
    model, data = moons_net
    s = ANPGDStepThrough(model, data.x[:1], data.y[:1], eps_init=0.1, norm="l2", max_eps=1.0, steps=5)
    pictures = {pic(s)}
    v = s.show_step(s.total)
    assert s.slider.value == s.total and v["step"] == s.total and "bracket" in s.label.value
    pictures.add(pic(s))
    s.show_step(999)  # clamped
    assert s.slider.value == s.total
    s.slider.value = 2  # the slider drives the same view
    pictures.add(pic(s))
    assert len(pictures) == 3 and s.label.value.startswith("step 2 /")


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_anpgd_window_is_sized_to_the_run_and_holds_ball_path_and_bracket(moons_net, norm):
    model, data = moons_net
    x0 = data.x[3:4]
    s = ANPGDStepThrough(model, x0, data.y[3:4], eps_init=0.08, norm=norm, max_eps=1.5, steps=10)
    h = s.halfwidth
    path = torch.stack([d[0] for d in s.trace["pgd"]])
    end = s.result.upper[0] * s.result.direction[0]
    assert h >= 0.08 and h >= path.abs().max() and h >= end.abs().max()  # ball, path and bracket inside
    far = max(0.08, float(path.abs().max()), float(end.abs().max()))
    assert h <= 1.3 * far < 1.5  # sized to the run, not to max_eps
    ax = s.figure().axes[0]
    assert ax.get_xlim() == pytest.approx((float(x0[0, 0]) - h, float(x0[0, 0]) + h))
    assert ax.get_ylim() == pytest.approx((float(x0[0, 1]) - h, float(x0[0, 1]) + h))
    assert anpgd_view_halfwidth(s.trace, 10.0, s.result.direction[0], 0.0, norm) == pytest.approx(12.5)


def test_mnist_explorer_orders_digits_by_margin_and_shows_plotly_in_an_output():
    from mma_edu.plots import PLOTLY_MIME

    test = mnist_offline().test.subset(6)
    model = build_model("small_cnn")
    m = MNISTMarginExplorer(model, test, norm="linf", max_eps=0.5, steps=3, refine=0)
    margins = [m.margin[v].item() for _, v in m.index.options]
    assert margins == sorted(margins) and sorted(v for _, v in m.index.options) == list(range(6))
    assert m.index.value == m.order[0]  # starts at the smallest margin
    (out,) = m.output.outputs
    fig = out["data"][PLOTLY_MIME]
    assert [t["name"] for t in fig["data"]] == ["x", "δ*", "x + δ*"]  # a plain figure's data, not a FigureWidget
    i = m.order[-1]
    c = m.select(i)
    assert m.index.value == i and c["y"] == int(test.y[i])
    (out,) = m.output.outputs
    z = out["data"][PLOTLY_MIME]["data"][1]["z"]  # a typed array: base64 of float32, with its shape
    assert z["dtype"] == "f4"
    z = torch.from_numpy(np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.float32).reshape(28, 28).copy()).double()
    assert torch.allclose(z, (c["x_adv"] - c["x"]).double(), atol=1e-5)  # the δ* shown is this digit's
    assert z.abs().max() <= c["margin"] + 1e-5 and f"#{i}" in out["data"]["text/plain"]
    assert "margin" in m.label.value and f"{c['margin']:.4f}" in m.label.value
    bundle = m._repr_mimebundle_()
    assert WIDGET_MIME in bundle and base64.b64decode(bundle["image/png"]).startswith(PNG)
    with pytest.raises(ValueError, match=r"i must be in \[0, 5\]"):
        m.select(6)


def test_digit_figure_has_square_pixels_and_labels_every_class():
    c = dict(x=torch.rand(28, 28), x_adv=torch.rand(28, 28), y=3, logits=torch.randn(10),
             logits_adv=torch.randn(10), margin=0.1, found=True)
    fig = digit_figure(c, norm="linf")
    fig.canvas.draw()  # as rendered: aspect applied after the δ* colour bar took its room
    for ax in fig.axes[:3]:
        box = ax.get_window_extent()
        assert box.width == pytest.approx(box.height, rel=0.02)  # 28 x 28 pixels drawn square
    assert [int(t) for t in fig.axes[3].get_xticks()] == list(range(10))


def _events(d, steps_total=None):
    h = History(config={"steps": steps_total} if steps_total else {})
    for step in range(1, 7):
        d.callback(Event("step", step, 0, {"loss": 1.0 / step}, h))
    d.callback(Event("epoch", 6, 0, {"epoch": 1, "clean_acc": 0.8, "margin": 0.1,
                                     "margin_hist": {"edges": [0, 0.5, 1.0], "counts": [3, 1]}}, h))


def test_training_dashboard_updates_in_place_from_events():
    d = TrainingDashboard(every=2, min_interval=0.0)
    widget, empty = d.widget, pic(d)
    _events(d)
    assert d.steps == [2, 4, 6] and d.losses == [0.5, 0.25, 1 / 6] and d.epochs[0]["clean_acc"] == 0.8
    assert d.widget is widget and pic(d) != empty  # same widget, new picture
    assert _is_png_of(d._repr_mimebundle_(), d)
    fig = d.figure()  # the title has a band of its own above the subplot titles
    top = min(ax.title.get_window_extent(fig.canvas.get_renderer()).y1 for ax in fig.axes)
    assert fig._suptitle.get_window_extent(fig.canvas.get_renderer()).y0 >= top


def test_dashboard_renews_its_output_once_after_the_last_epoch(monkeypatch):
    d = TrainingDashboard(every=2, min_interval=0.0)
    renewed = []
    monkeypatch.setattr(d, "refresh", lambda: renewed.append(len(d.epochs)))
    _events(d, steps_total=12)
    assert renewed == []  # step 6 of 12: not the end
    _events(d, steps_total=6)
    assert renewed == [2]


def test_margin_memory_records_each_examples_eps_over_epochs():
    data = toy_2d("moons", 40, seed=0)
    method = method_2d("mma", 0.3, "l2")
    memory = MarginMemory(method, d_max=0.3, min_interval=0.0)
    _, history = train_2d(data, method, 0.3, "l2", epochs=4, callbacks=[memory.callback])
    assert memory.memory.shape == (4, 40) and memory.epoch.max == 4 and memory.epoch.value == 4
    assert torch.equal(memory.memory[-1], method.margins.cpu().float())
    # the history's mean ε̂ per epoch is the mean of this memory (0 for misclassified examples)
    assert memory.memory.mean(1).tolist() == pytest.approx(history.column("margin"), abs=1e-4)
    first = pic(memory)
    memory.epoch.value = 1
    assert pic(memory) != first
    with pytest.raises(ValueError, match="margin memory"):
        MarginMemory(method_2d("standard", 0.0, "l2"))


def test_train_2d_rejects_unknown_methods():
    with pytest.raises(ValueError, match="method must be one of"):
        train_2d(toy_2d("moons", 20), "trades", 0.1, "l2", epochs=1)


@pytest.mark.slow
def test_the_app_notebook_runs_headless(tmp_path, monkeypatch):
    """make app's page (app/explorers.ipynb) runs top to bottom in smoke mode, each explorer with its picture
    (the browser suite checks it in Voilà; this runs without a Chromium). About 10 s."""
    import json
    from pathlib import Path

    import papermill as pm
    from ipykernel.kernelspec import install

    root = Path(__file__).resolve().parents[1]
    install(kernel_name="mma-edu", display_name="mma-edu (tests)", prefix=str(tmp_path / "k"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "k" / "share" / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / "explorers.ipynb"
    pm.execute_notebook(str(root / "app" / "explorers.ipynb"), str(out), parameters={"profile": "smoke"},
                        kernel_name="mma-edu", cwd=str(root / "app"), progress_bar=False, execution_timeout=300)
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    views = [o["data"] for o in outputs if WIDGET_MIME in o.get("data", {})]
    assert len(views) == 5 and all(base64.b64decode(v["image/png"]).startswith(PNG) for v in views)


def test_a_view_moved_from_code_renews_its_static_copy(moons_net):
    """AN-PGD's static copies used to stay at "step 1" although the notebook walked to the last step."""
    model, data = moons_net

    class Handle:
        bundles = []

        def update(self, bundle, raw=False):
            self.bundles.append(bundle)

    s = ANPGDStepThrough(model, data.x[:1], data.y[:1], eps_init=0.2, norm="l2", max_eps=1.5, steps=5,
                         search_steps=4)
    s._handle = Handle()
    s.show_step(s.total)
    (bundle,) = Handle.bundles
    assert base64.b64decode(bundle["image/png"]) == pic(s) and WIDGET_MIME in bundle


def test_explorers_say_how_to_make_them_live_and_the_trainer_asks_for_train():
    from mma_edu.widgets.base import LIVE_HINT

    m = MarginExplorer2D(n=30, epochs=3)
    texts = [c.value for c in m.widget.children[1].children if hasattr(c, "value") and isinstance(c.value, str)]
    assert LIVE_HINT in texts and "run this cell to make this live" in LIVE_HINT.lower()
    shown = pic(m)
    m.method.value = "standard"  # a control changed: the old picture stays, and the status says so
    assert "press Train" in m.status.value and pic(m) == shown
    m.update()
    assert "press Train" not in m.status.value and pic(m) != shown


def test_over_perturbation_figure_rings_over_perturbed_points_in_black_and_draws_few_balls(moons_net):
    from mma_edu.plots import CLASS_COLORS
    from mma_edu.widgets import over_perturbation_figure

    model, data = moons_net
    m = estimate_margins(model, data.x, data.y, norm="l2", max_eps=1.5, clip=None, refine=0).margin
    fig = over_perturbation_figure(model, data.x, data.y, m, 0.3, norm="l2", marked=5)
    ax = fig.axes[0]
    rings = [c for c in ax.collections if c.get_label().startswith("over-perturbed")]
    assert len(rings) == 1 and len(rings[0].get_offsets()) == int((m < 0.3).sum()) > 0
    balls = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 2]
    assert len(balls) == 5  # only the marked points' balls, not one per point
    assert not {ln.get_color() for ln in balls} & set(CLASS_COLORS)  # no class colour means "over-perturbed"



def test_dashboard_keeps_accuracy_and_margin_on_separate_axes_and_draws_d_max():
    d = TrainingDashboard(every=2, min_interval=0.0, d_max=0.3)
    _events(d)
    fig = d.figure()
    acc_ax, margin_ax, hist_ax = fig.axes[1], fig.axes[2], fig.axes[3]
    assert [ln.get_ydata()[0] for ln in acc_ax.get_lines()] == [0.8] and acc_ax.get_ylim() == (0, 1.02)
    assert margin_ax.get_lines()[0].get_ydata()[0] == 0.1  # the margin curve, alone on its own axis
    verticals = sorted(ln.get_xdata()[0] for ln in hist_ax.get_lines())
    assert verticals == pytest.approx([0.3, 0.315])  # d_max and maxeps = 1.05·d_max
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_anpgd_step_through_shows_its_sequence_without_the_slider(moons_net):
    model, data = moons_net
    s = ANPGDStepThrough(model, data.x[:1], data.y[:1], eps_init=0.1, norm="l2", max_eps=1.0, steps=5,
                         search_steps=8)
    fig = s.sequence_figure()
    assert [ax.get_title() for ax in fig.axes] == [f"AN-PGD step {k} of {s.total}" for k in (1, 6, 8, s.total)]
    with pytest.raises(ValueError, match=r"steps must be step numbers in \[1, 15\]"):
        s.sequence_figure((0, 3))
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_margin_explorer_draws_unbroken_points_as_crosses_not_huge_balls():
    from matplotlib.collections import LineCollection
    from torch import nn

    from mma_edu.widgets.toy2d import margin_figure_2d

    data = toy_2d("moons", 40, seed=0)
    collapsed = nn.Linear(2, 2)  # class 0 everywhere: no boundary within max_eps
    with torch.no_grad():
        collapsed.weight.zero_()
        collapsed.bias.copy_(torch.tensor([1.0, 0.0]))
    r = estimate_margins(collapsed, data.x, data.y, norm="l2", max_eps=1.5, clip=None, steps=5, refine=0)
    assert int(r.unbroken.sum()) == int((data.y == 0).sum()) > 0
    ax = margin_figure_2d(collapsed, data, r, norm="l2", title="collapsed").axes[0]
    balls = [c for c in ax.collections if isinstance(c, LineCollection) and len(c.get_segments())
             and len(c.get_segments()[0]) > 20]
    assert sum(len(c.get_segments()) for c in balls) == 0
    assert "margin ≥ max_eps = 1.5 (not broken)" in ax.get_legend().texts[0].get_text()
    import matplotlib.pyplot as plt

    plt.close("all")
