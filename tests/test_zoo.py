"""The model zoo: the shipped weights still measure what the manifest says; the manifest is complete; files are small.

Re-measurement: every model is measured again with the manifest's protocol
(``zoo.EVAL``: PGD 20 steps × 2 restarts CE+CW at ε 0.1–0.4, ℓ∞ margins by
``margin_distribution``) on the first ``check_n`` = 200 evaluation digits with
the same seed, and compared with the manifest's "check" block, which the build
took from the first 200 rows of the same seeded run. On the machine that built
the zoo the numbers are equal; elsewhere float rounding may flip a few
borderline digits, hence the tolerances: clean accuracy equal, robust accuracy
within ``ROBUST_TOL`` (4 digits of 200), median margin within ``MARGIN_TOL``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mma_edu import zoo
from mma_edu.models import SmallCNN

ROOT = Path(__file__).resolve().parents[1]
ROBUST_TOL = 0.02
MARGIN_TOL = 0.01
MAX_TOTAL_BYTES = 3_000_000



@pytest.fixture(scope="module")
def manifest() -> dict:
    return zoo.manifest()


def test_manifest_lists_every_model_with_its_provenance_and_numbers(manifest):
    MANIFEST, MODELS = manifest, manifest["models"]
    assert MANIFEST["format"] == zoo.FORMAT
    assert MANIFEST["budget"]["epochs"] == zoo.BUDGET["epochs"] and MANIFEST["protocol"] == zoo.EVAL
    assert list(MODELS) == zoo.names()
    eps_keys = [f"{e:g}" for e in zoo.EVAL["eps"]]
    for name, m in MODELS.items():
        assert m["command"] == f"python -m mma_edu.zoo build --only {name}"
        assert m["seed"] == zoo.BUDGET["seed"]
        # Built from committed code: a commit hash, no uncommitted changes.
        assert re.fullmatch(r"[0-9a-f]{40}", m["code_version"]), (name, m["code_version"])
        assert m["torch"] and m["train_seconds"] > 0
        assert m["method"]["method"] in ("standard", "pgdat", "mma")
        for block, n in (("eval", zoo.EVAL["n"]), ("check", zoo.EVAL["check_n"])):
            ev = m[block]
            assert ev["n"] == n and list(ev["robust"]) == eps_keys
            assert 0 <= ev["clean"] <= 1 and ev["median_margin"] >= 0
            # A point broken at a smaller ε stays broken: the curve never rises.
            curve = [ev["clean"]] + [ev["robust"][k] for k in eps_keys]
            assert all(b <= a for a, b in zip(curve, curve[1:])), (name, block, curve)


def test_pgd_models_state_their_warmup_recipe(manifest):
    for name, m in manifest["models"].items():
        if m["kind"] == "pgd":
            assert m["method"]["warmup_steps"] > 0 and m["method"]["eps"] == m["size"], name


def test_weight_files_are_small_and_are_the_measured_ones(manifest):
    total = 0
    for name, m in manifest["models"].items():
        path = zoo.weight_path(name)
        assert path.is_file() and path.stat().st_size == m["bytes"]
        assert zoo._sha256(path) == m["sha256"], f"{name}: weights changed since they were measured"
        total += m["bytes"]
    assert total <= MAX_TOTAL_BYTES, total


def test_package_data_ships_the_zoo():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["mma_edu"]
    assert "zoo_weights/*.pt" in data and "zoo_weights/manifest.json" in data


@pytest.mark.parametrize("name", zoo.names())
def test_shipped_weights_measure_what_the_manifest_says(name, manifest):
    model = zoo.load(name)
    assert isinstance(model, SmallCNN) and not model.training
    m = zoo.measure(model, zoo.EVAL["check_n"]).summary()
    want = manifest["models"][name]["check"]
    assert m["clean"] == want["clean"], name
    for e, acc in want["robust"].items():
        assert abs(m["robust"][e] - acc) <= ROBUST_TOL, (name, e, m["robust"][e], acc)
    assert abs(m["median_margin"] - want["median_margin"]) <= MARGIN_TOL, (name, m["median_margin"], want)


def test_load_and_spec_errors_name_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="name must be one of"):
        zoo.load("pgd-0.7")
    with pytest.raises(FileNotFoundError, match="zoo build --only standard"):
        zoo.load("standard", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="make zoo"):
        zoo.manifest(tmp_path)


def test_build_writes_loadable_weights_and_merges_the_manifest(tmp_path, monkeypatch):
    """The build machinery on a tiny budget (1 epoch, 100 evaluation digits), into a temporary folder."""
    monkeypatch.setitem(zoo.BUDGET, "epochs", 1)
    monkeypatch.setitem(zoo.BUDGET, "attack_steps", 2)
    monkeypatch.setitem(zoo.EVAL, "n", 100)
    monkeypatch.setitem(zoo.EVAL, "check_n", 100)
    zoo.build(["standard"], root=tmp_path, log=lambda *_: None)
    man = zoo.build(["pgd-0.1"], root=tmp_path, log=lambda *_: None)
    assert list(man["models"]) == ["standard", "pgd-0.1"]  # the second build merged, in zoo order
    m = man["models"]["pgd-0.1"]
    assert m["method"]["warmup_steps"] == round(zoo.WARMUP_FRACTION * 80)  # a quarter of 1 epoch of 80 steps
    assert m["check"] == m["eval"]  # check_n == n here
    model = zoo.load("pgd-0.1", root=tmp_path)
    again = zoo.measure(model, 100).summary()
    assert again == m["eval"]  # same machine, same seed: equal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "pgd-0.1.pt", "standard.pt"]


def test_command_line_lists_the_zoo():
    out = subprocess.run([sys.executable, "-m", "mma_edu.zoo", "list"], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert all(name in out.stdout for name in zoo.names()) and "median" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "mma_edu.zoo", "build", "--only", "nope"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "unknown name(s) ['nope']" in bad.stderr


def test_remeasure_compares_summaries_up_to_rounding_not_bit_for_bit():
    a = {"clean": 0.958, "robust": [0.9, 0.5], "margin": {"median": 0.35216, "n": 500}, "norm": "linf"}
    assert zoo.summaries_agree(a, {**a, "margin": {"median": 0.35216 * (1 + 3e-6), "n": 500}})
    assert not zoo.summaries_agree(a, {**a, "clean": 0.956})          # one digit of 500 changed
    assert not zoo.summaries_agree(a, {**a, "robust": [0.9, 0.502]})
    assert not zoo.summaries_agree(a, {**a, "norm": "l2"})
    assert not zoo.summaries_agree(a, {k: v for k, v in a.items() if k != "norm"})
    for man in (zoo.manifest(), zoo.manifest(norm="l2")):
        assert not any("remeasured_eval" in e for e in man["models"].values())
