"""Figures: what a plot shows must be what the data says."""

import matplotlib

matplotlib.use("Agg")

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
