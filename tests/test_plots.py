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
