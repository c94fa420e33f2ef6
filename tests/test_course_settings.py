"""course.settings: each notebook's per-profile settings, checked inputs, and the dry run's caps (one place)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mma_edu import course
from mma_edu.course.settings import DRY_CAPS, TABLES, Settings
from mma_edu.data import DatasetNotFoundError, write_cifar10_fixture


@pytest.fixture(autouse=True)
def _no_dry_run_left_over():
    yield
    course.set_dry_run(False)


def test_every_notebook_has_the_three_profiles_with_the_same_keys():
    assert list(TABLES) == ["01", "02", "03", "04", "05", "06", "07", "08"]
    for nb, table in TABLES.items():
        assert list(table) == ["smoke", "laptop", "paper"], nb
        assert set(table["smoke"]) <= set(table["paper"]) and set(table["laptop"]) <= set(table["paper"]), nb
    for nb, caps in DRY_CAPS.items():  # a cap names a real setting of the paper profile
        assert set(caps) <= set(TABLES[nb]["paper"]), nb


@pytest.mark.parametrize("args,words", [
    (("big", "05"), "profile must be one of ['smoke', 'laptop', 'paper'], got 'big'"),
    (("paper", "09"), "notebook must be one of 01, 02, 03, 04, 05, 06, 07, 08"),
    (("paper", "5x"), "notebook must be one of"),
    (("paper", True), "notebook must be one of"),
])
def test_bad_profile_or_notebook_names_the_parameter_and_the_valid_values(args, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        course.settings(*args)


def test_notebook_may_be_a_number_or_a_file_name():
    assert course.settings("smoke", 5).notebook == course.settings("smoke", "05_mnist_mma.ipynb").notebook == "05"


def test_fast_profiles_read_as_before_and_refuse_a_dry_run():
    cfg = course.settings("laptop", "06", device="cpu")
    assert cfg["steps"] == 200 and cfg.batch == 64 and cfg.dry_run is None and not cfg.capped
    assert cfg.steps_of(1000) == 1000 and cfg.batch_of(128) == 128 and cfg.eval_batch == 500
    assert cfg.run_folder("x") == {"out": Path("runs/x"), "resume": False, "overwrite": False}
    with pytest.raises(KeyError, match="has no setting 'nope'"):
        cfg["nope"]
    with pytest.raises(ValueError, match="dry_run applies to profile 'paper' only"):
        course.settings("laptop", "06", dry_run=True)


def test_paper_dry_run_caps_lengths_only_and_says_so(capsys):
    real = course.settings("paper", "06", device="cpu")
    dry = course.settings("paper", "06", dry_run=True, device="cpu")
    printed = capsys.readouterr().out
    assert "dry run: steps 50,000 -> 2" in printed and "dry run: n_test 10,000 -> 16" in printed
    assert dry.capped == {"steps": (50_000, 2), "n_test": (10_000, 16), "n_val": (5000, 16),
                          "n_released": (10_000, 16)}
    # Everything else is the paper profile's: the full model, batch, lr, attack, evaluation protocol.
    for key in real:
        if key not in dry.capped:
            assert dry[key] == real[key], key
    assert (dry.depth, dry.widen, dry.batch, dry.attack_steps, dry.eval_steps, dry.restarts) == (28, 4, 128, 10, 100, 10)
    assert "capped by the dry run; the profile's value is 50,000" in repr(dry)
    assert dry.steps_of(100_000) == 2 and dry.batch_of(50) == 50 and dry.eval_batch == 8
    assert dry.run_folder("06-MMA") == {"out": Path("runs/dry-run/06-MMA"), "resume": False, "overwrite": True}
    opt_in = course.settings("paper", "06", dry_run={"batch_size": 8, "eval_steps": 1}, device="cpu")
    assert (opt_in.batch, opt_in.eval_steps, opt_in.released_steps) == (8, 1, 1)
    assert "NOTE: the training batch and the evaluation's PGD steps capped too" in opt_in.dry_run.report()


def test_toy_notebooks_have_nothing_to_cap():
    cfg = course.settings("paper", "03", dry_run=True, device="cpu")
    assert dict(cfg) == TABLES["03"]["paper"] and not cfg.capped and "nothing to cap" in repr(cfg)


def test_claims_are_shown_but_not_judged_in_a_dry_run():
    course.settings("paper", "07", dry_run=True, device="cpu")
    course.check(False, "a claim a two-step model cannot hold")  # recorded, does not raise
    assert course.records()["check: a claim a two-step model cannot hold"] is False
    course.settings("paper", "07", device="cpu")  # a real run judges again
    with pytest.raises(AssertionError, match="claim does not hold"):
        course.check(False, "a claim a two-step model cannot hold")


def test_attack_precision_is_bf16_on_cuda_in_the_paper_profile_only():
    def make(profile, device):
        return Settings("05", profile, {}, torch.device(device), None, {}, [])

    assert make("paper", "cuda").attack_precision == "bf16"
    assert make("paper", "cpu").attack_precision == make("laptop", "cuda").attack_precision == "fp32"
    from mma_edu.presets import get_preset

    assert make("paper", "cuda").method_of(get_preset("mnist-linf-mma-0.45")).precision == "bf16"
    assert make("paper", "cuda").method_of(get_preset("mnist-linf-pgd-0.3")).config()["method"] == "pgdat"


def test_cifar10_data_falls_back_to_the_stand_in_outside_the_paper_profile_only(tmp_path):
    splits, why = course.settings("smoke", "06", device="cpu").cifar10("auto", tmp_path / "none")
    assert "stand-in" in splits.train.name and "download not asked for" in why
    with pytest.raises(DatasetNotFoundError):
        course.settings("paper", "06", device="cpu").cifar10("auto", tmp_path / "none", download=False)
    write_cifar10_fixture(tmp_path / "real", n_train=10, n_test=4)
    splits, why = course.settings("paper", "06", device="cpu").cifar10("auto", tmp_path / "real", download=False)
    assert splits.train.name == "cifar10/train" and "required by this profile" in why
    with pytest.raises(ValueError, match="data must be 'auto', 'cifar10' or 'standin', got 'imagenet'"):
        course.settings("smoke", "06", device="cpu").cifar10("imagenet")


def test_every_notebook_says_its_expected_run_time_in_every_profile():
    from mma_edu.course.settings import EXPECTED

    assert set(EXPECTED) == set(TABLES) and all(set(v) == {"smoke", "laptop", "paper"} for v in EXPECTED.values())
    line = course.settings("laptop", "03").expected
    assert line.startswith("notebook 03, profile 'laptop': expected run time about 1 min") and "busy" in line
    assert "busy" not in course.settings("smoke", "03").expected
