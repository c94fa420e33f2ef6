"""The ℓ2 zoo (``zoo.names("l2")``, ``manifest-l2.json``): complete provenance, the shipped weights re-measured.

Re-measurement as for the ℓ∞ zoo (tests/test_zoo.py): every ℓ2 model, and the ℓ∞ zoo's "standard" that the
ℓ2 table also uses, is measured again with :data:`zoo.EVAL_L2` on its first ``check_n`` = 100 digits and
compared with the manifest's "check" block (same seed; tolerances for float rounding elsewhere).
"""

from __future__ import annotations

import re

import pytest

from mma_edu import zoo

ROBUST_TOL = 0.03  # 3 digits of 100
MARGIN_TOL = 0.03  # ℓ2 distances are ~10x ℓ∞ ones


@pytest.fixture(scope="module")
def manifest() -> dict:
    try:
        return zoo.manifest(norm="l2")
    except FileNotFoundError as e:
        pytest.fail(str(e))


def test_l2_manifest_lists_every_model_with_its_provenance(manifest):
    assert manifest["format"] == zoo.FORMAT and manifest["protocol"] == zoo.EVAL_L2
    assert list(manifest["models"]) == zoo.names("l2")
    eps_keys = [f"{e:g}" for e in zoo.EVAL_L2["eps"]]
    entries = dict(manifest["models"], standard=manifest["standard"])
    for name, m in entries.items():
        assert re.fullmatch(r"[0-9a-f]{40}", m["code_version"]), (name, m["code_version"])
        assert zoo._sha256(zoo.weight_path(name)) == m["sha256"], f"{name}: weights changed since measured"
        for block, n in (("eval", zoo.EVAL_L2["n"]), ("check", zoo.EVAL_L2["check_n"])):
            ev = m[block]
            assert ev["n"] == n and list(ev["robust"]) == eps_keys
            curve = [ev["clean"]] + [ev["robust"][k] for k in eps_keys]
            assert all(b <= a for a, b in zip(curve, curve[1:])), (name, block, curve)
    for name in zoo.names("l2"):
        m = manifest["models"][name]
        assert m["norm"] == "l2" and m["method"]["norm"] == "l2" and m["size"] == zoo.spec(name).size
        assert m["command"] == f"python -m mma_edu.zoo build --only {name}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["standard"] + zoo.names("l2"))
def test_shipped_l2_weights_still_measure_what_the_manifest_says(manifest, name):
    want = (manifest["standard"] if name == "standard" else manifest["models"][name])["check"]
    got = zoo.measure(zoo.load(name), zoo.EVAL_L2["check_n"], norm="l2").summary()
    assert got["clean"] == pytest.approx(want["clean"], abs=1e-9), name
    for e, acc in want["robust"].items():
        assert abs(got["robust"][e] - acc) <= ROBUST_TOL, (name, e, got["robust"][e], acc)
    assert abs(got["median_margin"] - want["median_margin"]) <= MARGIN_TOL, (name, got["median_margin"], want)


def test_norm_is_checked():
    with pytest.raises(ValueError, match="norm must be one of"):
        zoo.names("l1")
    with pytest.raises(ValueError, match="norm must be one of"):
        zoo.manifest(norm="linf2")
    with pytest.raises(ValueError, match="not models of the l2 zoo"):
        zoo.build(["pgd-0.3"], norm="l2")


# The MNIST ℓ2 table's claims on the shipped ℓ2 zoo (mma_edu.claims.l2_claims, paired tests on the manifest's
# per-digit outcomes), asserted as measured (claims.ZOO_L2_VERDICTS): a rebuilt zoo that changes a verdict fails here.


def test_l2_claims_have_their_measured_verdicts(manifest):
    from mma_edu import claims

    found = {c.key: c for c in claims.l2_claims(manifest)}
    assert set(found) == set(claims.ZOO_L2_VERDICTS)
    for key, want in claims.ZOO_L2_VERDICTS.items():
        assert found[key].verdict.verdict == want, str(found[key])


def test_l2_table_stands_beside_the_papers(manifest):
    from mma_edu import claims, paper

    rows = {r["model"]: r for r in claims.l2_table(manifest)}
    assert list(rows) == ["standard"] + zoo.names("l2")
    for name, r in rows.items():
        assert (r["paper_clean"], r["paper_mean"], r["paper_median"]) == paper.MNIST_L2_DISTANCES[name]
        entry = manifest["standard"] if name == "standard" else manifest["models"][name]
        assert r["clean"] == pytest.approx(100 * entry["eval"]["clean"])
        assert r["median"] == pytest.approx(entry["eval"]["median_margin"], abs=1e-3)  # remeasured: rounding-slack changes


def test_l2_claims_are_not_judged_on_a_model_that_failed_to_train(manifest):
    import copy

    from mma_edu import claims

    broken = copy.deepcopy(manifest)
    broken["models"]["l2-pgd-4"]["eval"]["top_class_fraction"] = 0.95  # a constant classifier "loses clean accuracy"
    with pytest.raises(claims.NotTrained, match="l2-pgd-4 gives 95%"):
        claims.l2_claims(broken)
    n = len(broken["models"]["l2-mma-4"]["per_digit"]["correct"])
    broken = copy.deepcopy(manifest)
    broken["models"]["l2-mma-4"]["per_digit"]["correct"] = "0" * n
    with pytest.raises(claims.NotTrained, match="l2-mma-4 did not train"):
        claims.l2_claims(broken)
