"""The budget study's figure: the plotly twin and the matplotlib picture carry the study's own numbers."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from mma_edu import budget_study as bs
from mma_edu import plots
from mma_edu.plots.data import budget_curves, budget_gaps
from mma_edu.verdicts import bits


def _entry(model: str, steps: int, p: float, seed: int, study_seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    cols = {"correct": torch.rand(200, generator=g) < 0.97}  # trained models (gap_table refuses collapsed ones)
    for e in bs.PAPER_EPS + bs.EXTRA_EPS:
        cols[f"robust_{e:g}"] = cols.get(f"robust_{e:g}", torch.rand(200, generator=g) < p * (1 - e))
    per_digit = {k: bits(v) for k, v in cols.items()}
    tail = f"+s{study_seed}" if study_seed else ""
    entry = {"key": f"{model}@{steps}{tail}", "model": model, "variant": f"seed {study_seed}" if study_seed else "",
             "steps": steps,
             "eval": {"n": 200, "per_digit": per_digit, "clean": cols["correct"].double().mean().item(),
                      "median_margin": 0.3, "top_class_fraction": 0.11}}
    entry["eval"]["avg_acc"] = bs.per_digit_score(entry).mean().item()
    return entry


@pytest.fixture
def results() -> dict:
    runs = [_entry("mma-0.45", 1600, 0.7, 1), _entry("pgd-0.4", 1600, 0.9, 2),
            _entry("mma-0.45", 3200, 0.85, 3), _entry("pgd-0.4", 3200, 0.9, 4), _entry("omma-0.45", 1600, 0.8, 5)]
    return {"format": bs.FORMAT, "runs": {e["key"]: e for e in runs}}


def test_curves_and_gaps_are_the_studys_numbers(results):
    curves = {c.name: c for c in budget_curves(results)}
    assert set(curves) == {"mma-0.45", "pgd-0.4", "omma-0.45"} and curves["mma-0.45"].steps == [1600, 3200]
    for c in curves.values():
        for s, acc, lo, hi in zip(c.steps, c.avg_acc, c.low, c.high):
            assert acc == pytest.approx(100 * results["runs"][f"{c.name}@{s}"]["eval"]["avg_acc"])
            assert lo < acc < hi
    gaps = budget_gaps(results)
    table = bs.gap_table(results)
    assert gaps.steps == [1600, 3200] and gaps.gap == pytest.approx([100 * r["gap"] for r in table])
    assert gaps.verdicts == [r["verdict"] for r in table]
    assert gaps.per_doubling == pytest.approx(100 * bs.gap_trend(table)["per_doubling"])
    assert gaps.trend_label == "trend, seed 0" and not gaps.seed_points and not gaps.mean_steps


def test_other_seeds_their_mean_and_the_trend_over_every_pair(results):
    for steps, p_mma, p_pgd in ((1600, 0.75, 0.85), (3200, 0.9, 0.88)):
        for seed in (1, 2):
            for model, p in (("mma-0.45", p_mma), ("pgd-0.4", p_pgd)):
                e = _entry(model, steps, p, 10 * seed + steps // 100 + len(model), study_seed=seed)
                results["runs"][e["key"]] = e
    gaps = budget_gaps(results)
    by_seed = {g["steps"]: g for g in bs.gaps_over_seeds(results)}
    assert gaps.mean_steps == [1600, 3200]
    assert gaps.mean_gap == pytest.approx([100 * by_seed[s]["gap_mean"] for s in (1600, 3200)])
    assert gaps.mean_low == pytest.approx([100 * by_seed[s]["low"] for s in (1600, 3200)])
    assert sorted((st, sd) for st, sd, *_ in gaps.seed_points) == [(1600, 1), (1600, 2), (3200, 1), (3200, 2)]
    trend = bs.seed_trend(results)
    assert trend["n"] == 6 and gaps.per_doubling == pytest.approx(100 * trend["per_doubling"])
    assert gaps.trend_label == "trend over all 6 seed pairs"
    curves = {c.name: c for c in budget_curves(results)}
    assert [(st, sd) for st, sd, _ in curves["pgd-0.4"].other_seeds] == [(1600, 1), (1600, 2), (3200, 1), (3200, 2)]
    assert curves["mma-0.45"].steps == [1600, 3200]  # seed 0's line, the other seeds apart
    fig = plots.interactive.budget_study_figure(results)
    names = [t.name for t in fig.data]
    assert {"mma-0.45 other seeds", "pgd-0.4 other seeds", "other seeds", "mean over seeds", "trend"} <= set(names)
    mean = next(t for t in fig.data if t.name == "mean over seeds")
    assert list(mean.y) == pytest.approx(gaps.mean_gap, rel=1e-4)
    assert [c[3] for c in mean.customdata] == gaps.mean_verdicts
    left, right = plots.plot_budget_study(results)
    assert "mean over seeds, 95% over seeds" in [t.get_text() for t in right.get_legend().get_texts()]


def test_the_plotly_twin_and_the_picture_show_the_same_points(results):
    fig = plots.interactive.budget_study_figure(results)
    names = [t.name for t in fig.data]
    assert names == ["mma-0.45 interval", "mma-0.45", "pgd-0.4 interval", "pgd-0.4", "omma-0.45 interval",
                     "omma-0.45", "gap (seed 0)", "trend"]
    curves = {c.name: c for c in budget_curves(results)}
    line = next(t for t in fig.data if t.name == "mma-0.45")
    assert list(line.y) == pytest.approx(curves["mma-0.45"].avg_acc, rel=1e-5)
    assert "median margin" in line.hovertemplate and "clean" in line.hovertemplate
    gap = next(t for t in fig.data if t.name == "gap (seed 0)")
    assert [c[2] for c in gap.customdata] == budget_gaps(results).verdicts
    left, right = plots.plot_budget_study(results)
    drawn = {l.get_label(): list(l.get_ydata()) for l in left.get_lines()}
    assert drawn["mma-0.45"] == pytest.approx(curves["mma-0.45"].avg_acc)
    out = plots.budget_study(results)._repr_mimebundle_()
    assert plots.PLOTLY_MIME in out and "image/png" in out


def test_one_budget_draws_without_a_trend(results):
    one = {"format": bs.FORMAT, "runs": {k: v for k, v in results["runs"].items() if k.endswith("@1600")}}
    fig = plots.interactive.budget_study_figure(one)
    assert "trend" not in [t.name for t in fig.data] and budget_gaps(one).per_doubling is None


def test_a_run_that_failed_to_train_stops_the_gap(results):
    from mma_edu.claims import NotTrained

    results["runs"]["pgd-0.4@3200"]["eval"]["top_class_fraction"] = 0.9  # a constant classifier
    with pytest.raises(NotTrained, match="pgd-0.4@3200 gives 90%"):
        budget_gaps(results)
    results["runs"]["pgd-0.4@3200"]["eval"]["top_class_fraction"] = 0.11
    results["runs"]["mma-0.45@1600"]["eval"]["clean"] = 0.5
    with pytest.raises(NotTrained, match="mma-0.45@1600 did not train"):
        bs.gap_table(results)
