"""Presets: the paper's runs, PGD-AT/PGDLS baselines over the ε grids of its tables, and each setting's source."""

import pytest

from mma_edu.cli import main
from mma_edu.presets import EVAL_EPS, MINEPS, PGDLS_SMOOTHING, PRESETS, get_preset
from mma_edu.train import MMA, PGDAT


def _size_name(dataset, norm, e):
    return f"{round(e * 255)}" if (dataset, norm) == ("cifar10", "linf") else (f"{e:.1f}" if e >= 1 else f"{e:g}")


GRID = [(d, n, e) for (d, n), eps in EVAL_EPS.items() for e in eps]


@pytest.mark.parametrize("kind", ["pgd", "pgdls"])
def test_pgd_baselines_cover_the_paper_grid(kind):
    for dataset, norm, e in GRID:
        p = get_preset(f"{dataset}-{norm}-{kind}-{_size_name(dataset, norm, e)}")
        m = p.method()
        assert isinstance(m, PGDAT) and m.eps == e and m.norm == norm and m.steps == p.attack_steps
        assert m.label_smoothing == (PGDLS_SMOOTHING if kind == "pgdls" else 0.0)
    # the grids of the paper's tables, at least
    assert {e for d, n, e in GRID if (d, n) == ("cifar10", "linf")} == {k / 255 for k in range(4, 33, 4)}
    assert {0.5, 1.0, 1.5, 2.0} <= {e for d, n, e in GRID if (d, n) == ("cifar10", "l2")}
    assert {e for d, n, e in GRID if (d, n) == ("mnist", "l2")} == {1.0, 2.0, 3.0, 4.0}


def test_mma_presets_reproduce_the_reference_batch_norm_and_clip_the_training_point():
    for name, p in PRESETS.items():
        if p.method_kind in ("mma", "omma"):
            m = p.method()
            assert isinstance(m, MMA) and m.bn_mode == "reference" and m.clip_training_point is True
            assert m.mineps == MINEPS[(p.dataset, p.norm)]
            assert m.clean_weight == (0 if p.method_kind == "omma" else 1 / 3)
            assert "bn_mode='reference'" in p.describe() and "clip_training_point=True" in p.describe()
    assert MMA(0.3).bn_mode == "eval" and MMA(0.3).mineps == pytest.approx(0.03)  # library defaults: ours


def test_every_preset_says_what_is_the_papers_and_what_is_ours():
    for name, p in PRESETS.items():
        line = p.describe()
        assert "| paper: " in line, name
        if p.method_kind != "standard":
            assert "| our reading: " in line, name
    assert "label smoothing 0.5 (the notes give no value)" in get_preset("mnist-linf-pgdls-0.3").describe()


def test_cli_lists_the_sources(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == len(PRESETS)
    line = next(l for l in out.splitlines() if l.startswith("cifar10-linf-pgdls-32 "))
    assert "PGDLS eps=32/255" in line and "our reading: label smoothing 0.5" in line
