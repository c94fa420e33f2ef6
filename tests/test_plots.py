"""Figures: what a plot shows must be what the data says."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mma_edu import plots  # noqa: E402
from mma_edu.evaluate import RobustAccuracy  # noqa: E402


def test_margin_histogram_keeps_examples_clamped_at_max_eps():
    # float32 0.6 is 0.6000000238: in float32 it would fall past the float64 last bin edge and vanish.
    margins = torch.tensor([0.1, 0.3, 0.6, 0.6, 0.6], dtype=torch.float32)
    ax = plots.plot_margin_histograms({"MMA": margins}, max_eps=0.6, bins=6)
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == 5 and heights[-1] == 3


def test_one_colour_per_method_whatever_the_label():
    assert plots.method_color("MMA") == plots.method_color("mma-0.45") == plots.method_color("MMA d_max=0.3")
    assert plots.method_color("PGD-AT 0.3") == plots.method_color("pgd-0.1")
    assert len({plots.method_color(n) for n in ("standard", "PGD-AT", "MMA", "OMMA")}) == 4


def test_cifar_eps_axis_reads_in_units_of_1_over_255():
    r = RobustAccuracy("linf", [4 / 255, 8 / 255], 0.9, [0.6, 0.4], torch.ones(2, 2, dtype=torch.bool))
    ax = plots.plot_robust_accuracy({"MMA": r}, per255=True)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["0", "4/255", "8/255"], labels
    assert ax.get_lines()[0].get_color() == plots.method_color("MMA")


def _toy_model():
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))


def test_decision_boundary_draws_a_readable_subset_with_labelled_axes():
    from matplotlib.collections import LineCollection
    from matplotlib.quiver import Quiver

    model = _toy_model()
    x = torch.randn(100, 2)
    y = model(x).argmax(1)
    margins = torch.rand(100) * 0.3 + 0.01
    ax = plots.plot_decision_boundary(model, x, y, margins=margins, x_adv=x + 0.1, norm="l2", resolution=40)
    balls = [c for c in ax.collections if isinstance(c, LineCollection) and len(c.get_segments()) > 0
             and len(c.get_segments()[0]) > 20]  # ball outlines have 64 vertices, contour lines are separate
    arrows = [c for c in ax.collections if isinstance(c, Quiver)]
    assert sum(len(c.get_segments()) for c in balls) == plots.MARKED
    assert len(arrows) == 1 and arrows[0].N == plots.MARKED
    assert ax.get_xlabel() and ax.get_ylabel()
    assert any(f"for {plots.MARKED} of 100 points" in t.get_text() for t in ax.texts)
    # marked=None draws every point, and says nothing.
    ax = plots.plot_decision_boundary(model, x, y, x_adv=x + 0.1, resolution=40, marked=None)
    assert [c for c in ax.collections if isinstance(c, Quiver)][0].N == 100 and not ax.texts


def test_spread_subset_is_spread_and_deterministic():
    x = torch.cat([torch.randn(95, 2) * 0.01, torch.tensor([[5.0, 5], [-5, 5], [5, -5], [-5, -5], [0, 6]])])
    idx = plots.spread_subset(x, 6)
    assert len(idx) == 6 and len(set(idx.tolist())) == 6
    assert set(range(95, 100)) <= set(idx.tolist())  # the far-out points are all chosen, not 6 of the cluster
    assert torch.equal(idx, plots.spread_subset(x, 6))
    assert torch.equal(plots.spread_subset(x[:4], 6), torch.arange(4))


def test_digit_gallery_one_colour_scale_with_a_colour_bar():
    x = torch.rand(4, 1, 6, 6) * 0.5
    x_adv = x + torch.linspace(0.05, 0.2, 4)[:, None, None, None]
    fig = plots.digit_gallery(x, x_adv, torch.arange(4), torch.arange(4), torch.linspace(0.05, 0.2, 4), norm="linf",
                              vmax=0.3)
    deltas = [a.images[0] for a in fig.axes[4:8]]
    assert all(im.get_cmap().name == plots.DELTA_CMAP and im.get_clim() == (-0.3, 0.3) for im in deltas)
    bars = [a for a in fig.axes if a.get_label() == "<colorbar>"]
    assert len(bars) == 1 and "δ*" in bars[0].get_ylabel()


def test_every_static_plot_labels_its_axes():
    from mma_edu.train.loop import History

    ax = plots.plot_norm_balls()
    assert ax.get_xlabel() and ax.get_ylabel()
    ax = plots.plot_margin_histograms({"MMA": torch.rand(20)}, norm="linf")
    assert ax.get_xlabel().startswith("linf margin") and ax.get_ylabel() == "examples"
    h = History()
    h.epochs = [{"epoch": 1, "loss": 1.0, "clean_acc": 0.5, "margin": 0.1}, {"epoch": 2, "loss": 0.5, "clean_acc": 0.8,
                                                                            "margin": 0.2}]
    for a in plots.plot_history(h):
        assert a.get_xlabel() == "epoch" and a.get_ylabel()


def test_palette_png_is_smaller_and_keeps_the_picture():
    import io

    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    fig, ax = plt.subplots(figsize=(4, 3))
    xx, yy = np.meshgrid(np.linspace(-1, 1, 200), np.linspace(-1, 1, 200))
    ax.contourf(xx, yy, np.sin(3 * xx) * yy, levels=30, cmap="RdBu_r", alpha=0.6)
    small = plots.palette_png(fig, dpi=100)
    full = io.BytesIO()
    fig.savefig(full, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    a = np.asarray(Image.open(io.BytesIO(small)).convert("RGB"), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(full.getvalue())).convert("RGB"), dtype=float)
    assert small[25] == 3 and a.shape == b.shape  # colour type 3: palette; same pixels
    assert len(small) < 0.6 * len(full.getvalue())
    assert np.abs(a - b).mean() < 0.5 and (a[0, 0] == 255).all()  # 0-255 scale: no visible change, white stays white


def test_compact_inline_does_nothing_outside_a_kernel():
    assert plots.compact_inline() is False


# ---------------------------------------------------------------------------------------------------------------
# The interactive twins (plotly): the same numbers as the matplotlib figures, and hover that says what a point is
# ---------------------------------------------------------------------------------------------------------------

import base64  # noqa: E402
import json  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mma_edu.plots import data as pdata, interactive  # noqa: E402

ZOO_LIKE = ["standard", "pgd-0.1", "pgd-0.3", "pgd-0.4", "mma-0.3", "mma-0.45", "omma-0.45"]


def _results(n=300):
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, name in enumerate(ZOO_LIKE):
        robust = torch.rand(n, 3, generator=g) < torch.tensor([0.9, 0.6 - 0.05 * k, 0.2 + 0.05 * k])
        out[name] = RobustAccuracy("linf", [0.1, 0.2, 0.3], 0.95 + 0.005 * k, robust.double().mean(0).tolist(), robust)
    return out


def test_robust_accuracy_twins_draw_the_same_curves_with_intervals_and_n():
    results = _results()
    fig = interactive.robust_accuracy_figure(results)
    lines = [t for t in fig.data if t.fill is None]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert [t.name for t in lines] == ZOO_LIKE and len(bands) == len(ZOO_LIKE) == len(fig.data) // 2
    ax = plots.plot_robust_accuracy(results)
    for t, mpl_line, (name, r) in zip(lines, ax.get_lines(), results.items()):
        expected = [100 * r.clean] + [100 * a for a in r.accuracy]
        assert list(t.y) == pytest.approx(expected, abs=1e-4) and list(t.x) == [0.0, 0.1, 0.2, 0.3]
        assert list(mpl_line.get_ydata()) == pytest.approx(list(t.y), abs=1e-4)  # the twin draws the same line
        assert mpl_line.get_color() == t.line.color  # ... in the same colour
        for a, (lo, hi, n) in zip(expected, t.customdata):
            want = r.interval(a / 100)
            assert (lo, hi) == pytest.approx((100 * want[0], 100 * want[1]), abs=1e-4) and n == 300
            assert lo <= a <= hi
        for field in ("accuracy", "interval", "n = %{customdata[2]}"):
            assert field in t.hovertemplate
    plt.close("all")
    # One legend group per method: a click on any PGD-AT entry hides every PGD-AT model (and its band).
    groups = {t.name: t.legendgroup for t in lines}
    assert groups["pgd-0.1"] == groups["pgd-0.4"] == "PGD-AT" != groups["mma-0.3"] == "MMA" != groups["omma-0.45"]
    assert all(b.legendgroup == groups[b.name.removesuffix(" interval")] and not b.showlegend for b in bands)
    assert fig.layout.legend.groupclick == "togglegroup"
    # Each model its own shade within its method's hue; the shades darken as ε grows.
    colors = pdata.model_colors(ZOO_LIKE)
    assert len(set(colors.values())) == len(ZOO_LIKE)
    rank = [pdata.METHOD_SHADES["pgd"].index(colors[k]) for k in ("pgd-0.1", "pgd-0.3", "pgd-0.4")]
    assert rank == sorted(rank) and len(set(rank)) == 3
    assert colors["standard"] in pdata.METHOD_SHADES["standard"] and colors["omma-0.45"] in pdata.METHOD_SHADES["omma"]


def test_margin_ecdf_points_carry_index_label_margin_and_hit():
    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 10, (200,), generator=g)
    margins = {"standard": torch.rand(200, generator=g) * 0.3, "mma-0.45": (torch.rand(200, generator=g) * 0.7).clamp(max=0.6)}
    fig = interactive.margin_ecdf_figure(margins, labels, max_eps=0.6, norm="linf", d_max={"mma-0.45": 0.45})
    points = [t for t in fig.data if t.mode == "lines+markers"]
    assert len(points) == 2 and [t.name.split(" ")[0] for t in points] == ["standard", "mma-0.45"]
    ax = plots.plot_margin_ecdf(margins, labels, max_eps=0.6, norm="linf", d_max={"mma-0.45": 0.45})
    steps = [line for line in ax.get_lines() if len(line.get_xdata()) == 200]
    for t, mpl_step, (name, m) in zip(points, steps, margins.items()):
        assert len(t.x) == 200 and list(t.x) == sorted(t.x) and list(t.y)[-1] == 1.0
        assert list(mpl_step.get_xdata()) == pytest.approx(list(t.x), abs=1e-5)  # the twin's very points
        for x, (i, lab, hit) in zip(t.x, t.customdata):  # each point is the example its hover names
            i = int(i)
            assert x == pytest.approx(float(m[i]), abs=1e-5) and lab == int(labels[i])
            assert hit == int(float(m[i]) >= 0.6 - 1e-6)
        assert f"median {m.double().median():.3f}" in t.name
        for field in ("example #", "label", "margin", "hit max_eps"):
            assert field in t.hovertemplate
    assert sum(h for *_, h in points[1].customdata) == int((margins["mma-0.45"] >= 0.6 - 1e-6).sum()) > 0
    d_line = [t for t in fig.data if t.name == "mma-0.45 d_max"]
    assert len(d_line) == 1 and list(d_line[0].x) == [0.45, 0.45] and d_line[0].legendgroup == "MMA"
    plt.close("all")
    with pytest.raises(ValueError, match="labels must have one entry per margin"):
        interactive.margin_ecdf_figure(margins, labels[:5])


def test_margin_ecdf_takes_found_from_the_search():
    m = {"MMA": torch.tensor([0.0, 0.2, 0.5, 0.5])}
    found = {"MMA": torch.tensor([True, True, True, False])}  # the last is unbroken at max_eps 0.5
    (c,) = pdata.margin_ecdfs(m, [1, 2, 3, 4], max_eps=0.5, found=found)
    assert c.index == [0, 1, 2, 3] and c.hit == [False, False, False, True] and c.label == [1, 2, 3, 4]


def test_margin_sandwich_hover_has_all_three_values_and_the_gaps():
    exact = torch.tensor([0.05, 0.02, 0.3, 0.04], dtype=torch.float64)
    solved = torch.tensor([True, True, False, True])
    cert = {"certified (IBP)": exact - 0.02, "certified (CROWN)": exact - 0.01}
    est = {"AN-PGD, refine=0": exact + 0.003, "AN-PGD, refine=3": exact + 0.001}
    fig = interactive.margin_sandwich_figure(cert, exact, est, solved=solved, max_eps=0.1)
    assert [t.name for t in fig.data] == [*cert, "exact (MILP)", *est]
    order = [1, 3, 0, 2]  # sorted by exact margin, the unsolved example last
    ax = plots.plot_margin_sandwich(cert, exact, est, solved=solved, max_eps=0.1)
    for t, line in zip(fig.data, ax.get_lines()):
        assert list(line.get_ydata()) == pytest.approx(list(t.y))  # the twin draws the same points
    xs = [tuple(line.get_xdata()) for line in ax.get_lines()[:5]]
    assert len(set(xs)) == 5 and all(abs(x[k] - k) < 0.5 for x in xs for k in range(4))  # dodged, not stacked
    for k, (i, c, e, a, below, above) in enumerate(fig.data[0].customdata):
        assert i == order[k] and c == pytest.approx(float(exact[i]) - 0.01)  # the best (largest) certified bound
        assert e == pytest.approx(min(float(exact[i]), 0.1)) and a == pytest.approx(float(exact[i]) + 0.001)
        if solved[i]:
            assert below == pytest.approx(0.01) and above == pytest.approx(0.001)
        else:
            assert below != below and above != above  # NaN: no gap where the exact margin is unknown
    assert "certified" in fig.data[0].hovertemplate and "gap" in fig.data[0].hovertemplate
    plt.close("all")


def test_plot_run_draws_a_run_folders_history(tmp_path):
    from mma_edu.train import History

    h = History(epochs=[{"epoch": e, "step": 10 * e, "loss": 1.0 / e, "clean_acc": 0.5 + 0.1 * e,
                         "margin_median": 0.05 * e} for e in range(1, 4)])
    h.save_json(tmp_path / "history.json")
    shown = plots.plot_run(tmp_path)
    assert [t.name for t in shown.figure.data] == ["loss", "clean_acc", "margin_median"]
    assert list(shown.figure.data[2].x) == [10, 20, 30]
    assert list(shown.figure.data[2].y) == pytest.approx([0.05, 0.1, 0.15])
    assert not plt.get_fignums()  # the static twin went into the PNG and was closed
    standard = History(epochs=[{"epoch": 1, "step": 5, "loss": 0.3, "clean_acc": 0.9}])  # no margins: no panel
    assert [t.name for t in interactive.training_curves_figure(standard).data] == ["loss", "clean_acc"]
    with pytest.raises(FileNotFoundError, match="folder must be a run folder holding history.json"):
        plots.plot_run(tmp_path / "nowhere")


def test_interactive_output_is_plotly_data_plus_a_static_png_and_no_javascript():
    shown = plots.robust_accuracy(_results())
    bundle = shown._repr_mimebundle_()
    assert set(bundle) == {plots.PLOTLY_MIME, "image/png", "text/plain"}
    fig = bundle[plots.PLOTLY_MIME]
    assert set(fig) == {"data", "layout", "config"} and fig["config"]["displaylogo"] is False
    text = json.dumps(fig)
    assert len(text) < 30_000 and "<script" not in text and "bdata" not in text  # data as plain lists
    assert fig["data"][1]["y"] == list(shown.figure.data[1].y)
    png = base64.b64decode(bundle["image/png"])
    assert png.startswith(b"\x89PNG") and png[25] == 3  # a palette PNG of the matplotlib twin
    assert not plt.get_fignums()  # shown once: the inline backend finds no open figure to show again
    with pytest.raises(TypeError, match="static must be a matplotlib Figure"):
        plots.Interactive(shown.figure, "a picture")


def test_digit_views_show_x_delta_and_x_adv_with_square_pixels():
    x = torch.rand(28, 28)
    x_adv = (x + 0.1 * torch.randn(28, 28)).clamp(0, 1)
    fig = interactive.digit_views_figure(x, x_adv, label=3, pred_adv=5, margin=0.1, norm="linf", index=7)
    assert [t.name for t in fig.data] == ["x", "δ*", "x + δ*"]
    delta = torch.tensor(fig.data[1].z)
    assert torch.allclose(delta.double(), (x_adv - x).double(), atol=1e-5)
    assert fig.data[1].zmin == -fig.data[1].zmax == pytest.approx(-float((x_adv - x).abs().max()), rel=1e-5)
    assert [fig.layout[f"yaxis{k}"].scaleanchor for k in ("", "2", "3")] == ["x", "x2", "x3"]
    assert "#7" in fig.layout.annotations[0].text and "→ 5" in fig.layout.annotations[2].text


def test_margin_ecdf_leaves_unknown_margins_out_and_keeps_the_rows():
    m = {"standard (exact)": torch.tensor([0.1, float("nan"), float("inf"), 0.0], dtype=torch.float64)}
    (c,) = pdata.margin_ecdfs(m, [5, 6, 7, 8], max_eps=0.3)
    assert c.index == [3, 0, 2] and c.label == [8, 5, 7] and c.margin == [0.0, 0.1, 0.3]
    assert c.hit == [False, False, True] and c.fraction == pytest.approx([1 / 3, 2 / 3, 1.0])
    fig = interactive.margin_ecdf_figure(m, [5, 6, 7, 8], max_eps=0.3)
    assert np.isfinite(fig.data[0].x).all() and len(fig.data[0].x) == 3  # inf drawn at max_eps, NaN left out
    assert "bdata" in json.dumps(plots.figure_json(fig)["data"][0]["x"])  # a typed array: one line in a notebook


def test_decision_boundary_figure_hovers_points_and_draws_balls_to_scale():
    model = _toy_model()
    x = torch.randn(40, 2)
    y = model(x).argmax(1)
    margins = torch.rand(40) * 0.3 + 0.01
    fig = interactive.decision_boundary_figure({"A": (model, margins), "B": (model, None)}, x, y, norm="l2",
                                               resolution=40)
    assert len(fig.layout.images) == 2 and fig.layout.images[0].source.startswith("data:image/png;base64,")
    points = [t for t in fig.data if t.mode == "markers"]
    assert sorted(t.name for t in points) == sorted(f"{p}: class {k}" for p in "AB" for k in y.unique().tolist())
    for t in points:
        k = int(t.name.split("class ")[1])
        for px, py, (i, m) in zip(t.x, t.y, t.customdata):
            i = int(i)
            assert int(y[i]) == k and (px, py) == pytest.approx(tuple(x[i].tolist()), abs=1e-5)
            assert (m != m) == t.name.startswith("B") and (m != m or m == pytest.approx(float(margins[i]), abs=1e-6))
    (balls,) = [t for t in fig.data if t.name == "A: margin balls"]
    centres = x[plots.data.marked_mask(x)]
    radii = margins[plots.data.marked_mask(x)]
    xs, ys = [float(v) for v in balls.x if v == v], [float(v) for v in balls.y if v == v]  # NaN separates balls
    per = len(xs) // len(centres)
    for j, (c, r) in enumerate(zip(centres, radii)):  # every outline point lies at its margin from its point
        d = torch.tensor([xs[j * per : (j + 1) * per], ys[j * per : (j + 1) * per]]).T - c
        assert d.norm(dim=1).double().numpy() == pytest.approx(float(r), rel=1e-3)
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis2.scaleanchor == "x2"  # equal axes: to scale
    # The picture under the points is the same grid of predictions the matplotlib twin contours.
    _, _, probs = plots.boundary_grid(model, x, resolution=40)
    from PIL import Image
    import io
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(fig.layout.images[0].source.split(",")[1]))).convert("RGB"))
    assert (img == plots.data.region_image(probs.argmax(-1))).all()
    plots.plot_decision_boundaries({"A": (model, margins), "B": (model, None)}, x, y, norm="l2", resolution=40)
    plt.close("all")


def test_tradeoff_twins_draw_one_curve_per_method_sorted_by_size():
    from types import SimpleNamespace as P

    points = [P(method="pgd", size=0.5, clean=0.90, avg_rob_acc=0.75), P(method="pgd", size=0.1, clean=1.0,
              avg_rob_acc=0.53), P(method="mma", size=0.3, clean=1.0, avg_rob_acc=0.59),
              P(method="mma", size=0.7, clean=0.92, avg_rob_acc=0.76)]
    fig = interactive.tradeoff_figure(points)
    assert [t.name for t in fig.data] == ["PGD-AT (ε sweep)", "MMA (d_max sweep)"]
    pgd, mma = fig.data
    assert list(pgd.x) == pytest.approx([100.0, 90.0]) and list(pgd.y) == pytest.approx([53.0, 75.0])
    assert list(pgd.customdata) == [0.1, 0.5] and list(mma.text) == ["0.3", "0.7"]
    assert "d_max" in mma.hovertemplate and "ε" in pgd.hovertemplate
    ax = plots.plot_tradeoff(points)
    for t, line in zip(fig.data, ax.get_lines()):
        assert list(line.get_xdata()) == pytest.approx(list(t.x)) and list(line.get_ydata()) == pytest.approx(list(t.y))
        assert line.get_color() == t.line.color
    assert pgd.line.color != mma.line.color
    assert ax.get_xlabel() == "clean accuracy (%)" and ax.get_ylabel() == "AvgRobAcc (%)"
    plt.close("all")
    with pytest.raises(ValueError, match="points must hold"):
        plots.plot_tradeoff([])


def test_margin_histograms_draw_d_max_where_given():
    margins = {"standard": torch.tensor([0.01, 0.02]), "MMA": torch.tensor([0.1, 0.126, 0.126])}
    ax = plots.plot_margin_histograms(margins, max_eps=0.25, d_max={"MMA": 0.125})
    lines = ax.get_lines()
    assert len(lines) == 1 and lines[0].get_xdata()[0] == 0.125 and lines[0].get_color() == plots.method_color("MMA")
    assert len(plots.plot_margin_histograms(margins, max_eps=0.25).get_lines()) == 0
    plt.close("all")


def test_pixels_holding_counts_where_a_perturbation_lives_and_plot_deltas_titles_it():
    spread = torch.full((1, 4, 4), 0.25)  # 16 equal pixels: 90% of the squared length needs 15 of them
    sharp = torch.zeros(1, 4, 4)
    sharp[0, 0, 0] = 1.0
    assert plots.pixels_holding(spread) == 15 and plots.pixels_holding(sharp) == 1
    assert plots.pixels_holding(torch.zeros(1, 4, 4)) == 0
    with pytest.raises(ValueError, match="share must be in"):
        plots.pixels_holding(spread, share=0)
    fig = plots.plot_deltas(torch.zeros(1, 4, 4), {"AN-PGD": spread, "FMN": sharp})
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert "in 15 pixels" in titles[1] and "‖δ‖₂ = 1.00" in titles[1] and "in 1 pixels" in titles[2]
    plt.close(fig)


def _l2_pair():
    """AN-PGD alone and the best of AN-PGD and FMN on 6 digits, as notebook 07 measures them (max_eps 4)."""
    from mma_edu.margins import MarginResult

    x = torch.zeros(6, 2)
    anpgd = MarginResult(torch.tensor([0.0, 1.0, 2.4, 4.0, 4.0, 3.0]), torch.tensor([True, True, True, False, False, True]),
                         x, torch.tensor([1, 2, 2, 0, 0, 2], dtype=torch.int8), 4.0)
    # Digit 0 misclassified, 1 agreed, 2 and 5 shortened by FMN, 3 broken by FMN beyond max_eps (4.5), 4 by none.
    best = MarginResult(torch.tensor([0.0, 1.0, 2.0, 4.5, 4.0, 2.5]), torch.tensor([True, True, True, True, False, True]),
                        x, torch.tensor([1, 2, 3, 3, 0, 3], dtype=torch.int8), 4.0)
    return anpgd, best


def test_margin_pairs_twins_draw_each_digit_at_both_margins_and_capped_ones_as_triangles():
    anpgd, best = _l2_pair()
    labels = torch.tensor([7, 1, 4, 9, 3, 5])
    pairs = {"pgd-0.4": (anpgd, best)}
    (p,) = pdata.margin_pairs(pairs, labels)
    assert p.index == [1, 2, 3, 5] and p.label == [1, 4, 9, 5] and p.left_out == 2  # misclassified, unbroken by both
    assert p.reference == [1.0, 2.0, 4.5, 2.5] and p.estimate == pytest.approx([1.0, 2.4, 4.0, 3.0])
    assert p.capped == [False, False, True, False] and p.found_by == ["anpgd", "fmn", "fmn", "fmn"]
    assert p.excess == pytest.approx([0.0, 0.2, 4.0 / 4.5 - 1, 0.2]) and p.top == 4.5
    fig = interactive.margin_pairs_figure(pairs, labels, norm="ℓ2")
    assert [t.name for t in fig.data] == ["pgd-0.4", "pgd-0.4: unbroken", "pgd-0.4: diagonal"]
    dots, capped, diagonal = fig.data
    assert list(dots.x) == pytest.approx([1.0, 2.0, 2.5]) and list(dots.y) == pytest.approx([1.0, 2.4, 3.0])
    assert [tuple(int(v) for v in c[:2]) for c in dots.customdata] == [(1, 1), (2, 4), (5, 5)]
    assert [c[2] for c in dots.customdata] == pytest.approx([0.0, 0.2, 0.2]) and list(dots.text) == ["anpgd", "fmn", "fmn"]
    assert list(capped.x) == [4.5] and list(capped.y) == [4.0] and capped.marker.symbol == "triangle-up"
    assert "margin ≥ 4" in capped.hovertemplate and list(diagonal.x) == [0, 4.5] and diagonal.hoverinfo == "skip"
    for field in ("digit #%{customdata[0]}", "label %{customdata[1]}", "found by %{text}", "AN-PGD alone"):
        assert field in dots.hovertemplate
    fig_mpl = plots.plot_margin_pairs(pairs, labels, norm="ℓ2")
    ax = fig_mpl.axes[0]
    points, triangles = ax.collections  # the twin draws the same points, the capped one apart
    assert np.asarray(points.get_offsets()) == pytest.approx(np.stack([dots.x, dots.y], 1))
    assert triangles.get_offsets().tolist() == [[4.5, 4.0]] and "margin ≥ 4" in ax.get_legend().texts[0].get_text()
    assert ax.get_lines()[0].get_xdata().tolist() == [0, 4.5] and ax.get_xlabel() == "best of AN-PGD and FMN (ℓ2)"
    plt.close("all")
    from mma_edu.margins import MarginResult

    with pytest.raises(ValueError, match="must hold the same examples"):
        pdata.margin_pairs({"x": (anpgd, MarginResult(best.margin[:3], best.found[:3], best.x_adv[:3]))})


def test_margin_ecdf_draws_a_margin_found_beyond_max_eps_where_it_is():
    anpgd, best = _l2_pair()
    (a, b) = pdata.margin_ecdfs({"AN-PGD": anpgd.margin, "best": best.margin}, max_eps=4.0,
                                found={"AN-PGD": anpgd.found, "best": best.found})
    assert a.margin == pytest.approx([0.0, 1.0, 2.4, 3.0, 4.0, 4.0]) and a.hit == [False] * 4 + [True, True]
    assert b.margin == [0.0, 1.0, 2.0, 2.5, 4.0, 4.5] and b.hit == [False] * 4 + [True, False]  # FMN's 4.5 kept


def _collapsed():
    """A 2-D model that gives class 0 everywhere (a collapsed PGD-AT run) and its margins as AN-PGD finds them:
    no boundary within max_eps, so class 0's points are unbroken (reported at max_eps), class 1's misclassified."""
    from torch import nn

    from mma_edu.margins import estimate_margins

    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([1.0, 0.0]))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 2, generator=g)
    y = (x[:, 0] > 0).long()
    r = estimate_margins(model, x, y, norm="l2", max_eps=1.5, clip=None, steps=10, refine=0)
    assert bool((r.unbroken == (y == 0)).all()) and bool((r.margin[y == 1] == 0).all())
    return model, x, y, r


def _ball_segments(ax) -> int:
    from matplotlib.collections import LineCollection

    return sum(len(c.get_segments()) for c in ax.collections if isinstance(c, LineCollection)
               and len(c.get_segments()) > 0 and len(c.get_segments()[0]) > 20)  # ball outlines: 64 vertices


def test_unbroken_points_get_a_cross_and_no_ball_of_radius_max_eps_in_both_twins():
    model, x, y, r = _collapsed()
    unbroken = r.unbroken
    ax = plots.plot_decision_boundary(model, x, y, margins=r, norm="l2", resolution=30, marked=None)
    assert _ball_segments(ax) == 0  # no ball at all: nothing was broken, nothing's margin is known
    (crosses,) = [c for c in ax.collections if c.get_label().startswith("margin ≥ max_eps")]
    assert np.asarray(crosses.get_offsets()) == pytest.approx(x[unbroken].numpy())
    assert [t.get_text() for t in ax.get_legend().texts] == [f"margin ≥ max_eps = 1.5 (not broken): {int(unbroken.sum())} of 40"]
    plt.close("all")
    # Mixed: the same points, some with known margins: those get their balls, the unbroken ones do not.
    from mma_edu.margins import MarginResult

    m = torch.where(unbroken, torch.tensor(1.5), torch.rand(40, generator=torch.Generator().manual_seed(1)) * 0.3 + 0.05)
    found = ~unbroken | (torch.arange(40) % 2 == 0)  # every other class-0 point broken after all
    mixed = MarginResult(m, found, x, None, 1.5)
    ax = plots.plot_decision_boundary(model, x, y, margins=mixed, norm="l2", resolution=30, marked=None)
    assert _ball_segments(ax) == int(found.sum())
    plt.close("all")
    fig = interactive.decision_boundary_figure({"collapsed": (model, r), "mixed": (model, mixed)}, x, y,
                                               resolution=30, marked=None)
    balls = {t.name: t for t in fig.data if t.name.endswith("margin balls")}
    assert list(balls) == ["mixed: margin balls"]  # the collapsed panel has none
    assert sum(1 for v in balls["mixed: margin balls"].x if v != v) == int(found.sum())  # one NaN after each ball
    marks = [t for t in fig.data if t.name == "margin ≥ max_eps = 1.5 (not broken)"]
    assert len(marks) == 2 and [t.showlegend for t in marks] == [True, False] and marks[0].marker.symbol == "x-thin-open"
    assert np.asarray(marks[0].x) == pytest.approx(x[unbroken, 0].numpy())
    assert len(marks[1].x) == int((~found).sum())
    for t in fig.data:
        if ": class " not in t.name:
            continue
        assert "%{text}" in t.hovertemplate
        for (i, margin), text in zip(t.customdata, t.text):
            result = r if t.name.startswith("collapsed") else mixed
            if result.unbroken[int(i)]:
                assert text == "margin ≥ max_eps = 1.5 (not broken)" and margin != margin  # unknown: NaN
            else:
                assert text == f"margin {float(result.margin[int(i)]):.4f}" and margin == pytest.approx(float(result.margin[int(i)]))


def _string_literals(tree):
    """(line, text) of every string constant of a module that is not a docstring (f-strings' parts included)."""
    import ast

    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_no_printed_or_labelled_text_has_a_combining_hat():
    """The combining circumflex of "ε̂" (U+0302) lands beside the ε in monospace output and in matplotlib: what
    the package prints, labels or hovers, and the notebooks' code cells, say "ε-hat", "eps_hat" or mathtext."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    hat = "\u0302"
    found = [f"{path.relative_to(root)}:{line}: {text!r}" for path in sorted((root / "mma_edu").rglob("*.py"))
             for line, text in _string_literals(ast.parse(path.read_text(encoding="utf-8"))) if hat in text]
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        for k, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            if cell["cell_type"] == "code" and hat in "".join(cell["source"]):
                found.append(f"{path.name}: code cell {k}")
    assert not found, found
    # The scan sees what it must: a string with the hat is found, a docstring with it is not.
    probe = ast.parse('"""The estimate ε\u0302."""\nx = f"mean ε\u0302 {1}"\n')
    assert [line for line, text in _string_literals(probe) if hat in text] == [2]
    # ... and the labels that used it render as mathtext in matplotlib, as plain "ε-hat" in plotly.
    from mma_edu.train import History

    h = History(epochs=[{"epoch": 1, "step": 10, "loss": 1.0, "clean_acc": 0.5, "margin": 0.1, "margin_median": 0.2}])
    axes = plots.plot_training_curves(h, ("margin", "margin_median"))
    assert [a.get_title() for a in axes] == [r"mean $\hat{\varepsilon}$ found in training",
                                             r"median $\hat{\varepsilon}$ in MMA's margin memory"]
    axes[0].figure.canvas.draw()  # mathtext that parses
    titles = [a.text for a in interactive.training_curves_figure(h, ("margin", "margin_median")).layout.annotations]
    assert titles == ["mean ε-hat found in training", "median ε-hat in MMA's margin memory"]
    plt.close("all")
