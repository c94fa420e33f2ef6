"""The training-budget study (mma_edu/budget_study.py): its plan, its statistics against hand computations,
one real (tiny) run that resumes, and the shipped results' internal consistency."""

from __future__ import annotations

import math

import pytest
import torch

from mma_edu import budget_study as bs
from mma_edu import zoo
from mma_edu.claims import NotTrained
from mma_edu.verdicts import HOLDS, UNRESOLVED
from mma_edu.train import MMA, PGDAT


def test_plan_runs_the_headline_pair_first_at_four_budgets_or_more_and_every_explanation():
    runs = bs.plan()
    keys = [r.key for r in runs]
    assert len(set(keys)) == len(keys), "keys must be unique (they name result entries and folders)"
    first = runs[: 2 * len(bs.BUDGETS)]
    assert {(r.model_name, r.steps) for r in first} == {(m, b) for b in bs.BUDGETS for m in ("mma-0.45", "pgd-0.4")}
    assert len(bs.BUDGETS) >= 4 and bs.BUDGETS[0] == 1600 and list(bs.BUDGETS) == sorted(bs.BUDGETS)
    for m in ("omma-0.45", "pgd-0.3"):
        assert {r.steps for r in runs if r.model_name == m and not r.variant} == set(bs.BUDGETS)
    assert f"mma-0.45@{bs.MID_BUDGET}+k40" in keys and f"pgd-0.4@{bs.MID_BUDGET}+noramp" in keys
    for seed in (1, 2):
        assert f"mma-0.45@{bs.FINAL_BUDGET}+s{seed}" in keys and f"pgd-0.4@{bs.FINAL_BUDGET}+s{seed}" in keys


def test_study_runs_make_the_methods_they_name():
    pgd = bs.StudyRun("pgd", 0.4, 3200).method()
    assert isinstance(pgd, PGDAT) and pgd.eps == 0.4 and pgd.steps == 10 and pgd.warmup_steps == 800
    assert bs.StudyRun("pgd", 0.4, 3200, ramp=False).method().warmup_steps == 0
    mma = bs.StudyRun("mma", 0.45, 1600, attack_steps=40).method()
    assert isinstance(mma, MMA) and mma.steps == 40 and mma.clean_weight == pytest.approx(1 / 3)
    assert bs.StudyRun("omma", 0.45, 1600).method().clean_weight == 0
    assert bs.StudyRun("mma", 0.45, 12800, seed=2).variant == "seed 2"
    shifted = bs.StudyRun("pgd", 0.4, 3200, shift=2)
    assert shifted.key == "pgd-0.4@3200+shift2" and bs.StudyRun("pgd", 0.4, 3200).augment() is None
    torch.manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 13, 13] = 1.0  # one bright pixel: where it lands is the shift
    moved = shifted.augment()(x).flatten(1).argmax(1)
    rows, cols = moved // 28 - 13, moved % 28 - 13
    assert rows.abs().max() == 2 and cols.abs().max() == 2 and len(set(zip(rows.tolist(), cols.tolist()))) > 10
    with pytest.raises(ValueError, match="shift"):
        bs.StudyRun("mma", 0.45, 1600, shift=9)
    with pytest.raises(ValueError, match="kind"):
        bs.StudyRun("trades", 0.3, 1600)
    with pytest.raises(ValueError, match="steps"):
        bs.StudyRun("mma", 0.45, 0)


def _entry(correct: list[int], robust: dict[str, list[int]], steps: int = 1600) -> dict:
    pd = {"correct": "".join(map(str, correct)), **{f"robust_{k}": "".join(map(str, v)) for k, v in robust.items()}}
    return {"steps": steps, "eval": {"per_digit": pd}}


def test_paired_gap_matches_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    cols = ["0.1", "0.2", "0.3", "0.4"]
    a_bits = torch.rand(5, 400, generator=g) < 0.7
    b_bits = torch.rand(5, 400, generator=g) < 0.5
    a = _entry(a_bits[0].int().tolist(), {c: a_bits[i + 1].int().tolist() for i, c in enumerate(cols)})
    b = _entry(b_bits[0].int().tolist(), {c: b_bits[i + 1].int().tolist() for i, c in enumerate(cols)})
    d = a_bits.double().mean(0) - b_bits.double().mean(0)  # each digit's share of the grid, a minus b
    gap, lo, hi = bs.paired_gap(a, b)
    half = 1.96 * d.std().item() / math.sqrt(400)
    assert gap == pytest.approx(d.mean().item()) and lo == pytest.approx(gap - half) and hi == pytest.approx(gap + half)
    rgap, rlo, rhi = bs.paired_gap(b, a)
    assert rgap == pytest.approx(-gap) and rlo == pytest.approx(-hi)
    # A model right everywhere against one wrong everywhere: a gap of exactly 1 and no spread.
    ones, zeros = _entry([1] * 10, {c: [1] * 10 for c in cols}), _entry([0] * 10, {c: [0] * 10 for c in cols})
    assert bs.paired_gap(ones, zeros) == pytest.approx((1.0, 1.0, 1.0))


def test_gap_trend_recovers_a_known_line_and_its_crossing():
    # gap = -0.16 + 0.02 * log2(steps / 1600): closes 2 points per doubling, crosses 0 at 1600 * 2**8.
    rows = [{"steps": s, "gap": -0.16 + 0.02 * math.log2(s / 1600), "low": 0, "high": 0} for s in (1600, 3200, 6400, 12800)]
    for r in rows:
        r["low"], r["high"] = r["gap"] - 0.03, r["gap"] + 0.03
    t = bs.gap_trend(rows)
    assert t["per_doubling"] == pytest.approx(0.02) and t["crossing_steps"] == pytest.approx(1600 * 2 ** 8, rel=1e-6)
    widening = [{**r, "gap": -r["gap"] - 0.2} for r in rows]
    assert bs.gap_trend(widening)["crossing_steps"] is None
    with pytest.raises(ValueError, match="two budgets"):
        bs.gap_trend(rows[:1])


@pytest.mark.slow
def test_a_tiny_run_trains_keeps_its_best_epoch_measures_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setitem(zoo.EVAL, "n", 100)
    monkeypatch.setitem(bs.SETUP, "val_margin_digits", 20)
    run = bs.StudyRun("mma", 0.45, 3)
    entry = bs.run_one(run, tmp_path)
    ev = entry["eval"]
    assert entry["key"] == "mma-0.45@3" and entry["best_step"] == 3 and ev["n"] == 100
    assert len(ev["per_digit"]["correct"]) == 100
    assert ev["avg_acc"] == pytest.approx(bs.per_digit_score(entry).mean().item())
    curve = [ev["clean"]] + [ev["robust"][f"{e:g}"] for e in bs.PAPER_EPS + bs.EXTRA_EPS]
    assert all(b <= a for a, b in zip(curve, curve[1:])), curve
    # The folder holds the finished run: a second call resumes it and measures the same weights.
    again = bs.run_one(run, tmp_path)
    assert again["resumed"] and again["eval"]["per_digit"] == ev["per_digit"]


def test_run_study_skips_runs_already_in_the_results(tmp_path):
    run = bs.StudyRun("mma", 0.45, 1600)
    path = tmp_path / "results.json"
    bs.write_json(path, {"format": bs.FORMAT, "setup": bs.SETUP, "runs": {run.key: {"key": run.key}}})
    logged = []
    data = bs.run_study([run], workers=1, results=path, runs_dir=tmp_path / "runs", log=logged.append)
    assert data["runs"] == {run.key: {"key": run.key}} and "0 to go" in logged[0]
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="workers"):
        bs.run_study([run], workers=0, results=path)
    bs.write_json(path, {"format": "something else", "runs": {}})
    with pytest.raises(ValueError, match="budget-study"):
        bs.load_results(path)


def test_shipped_results_are_consistent():
    if not bs.RESULTS.is_file():
        pytest.skip(f"no study results shipped yet ({bs.RESULTS}): run `make budget-study`")
    data = bs.load_results()
    assert data["runs"], "an empty results file"
    known = {r.key for r in bs.plan()}
    for key, e in data["runs"].items():
        assert key in known and e["key"] == key
        ev = e["eval"]
        assert ev["n"] == zoo.EVAL["n"] and len(ev["per_digit"]["correct"]) == ev["n"]
        assert ev["avg_acc"] == pytest.approx(bs.per_digit_score(e).mean().item()), key
        curve = [ev["clean"]] + [ev["robust"][f"{x:g}"] for x in bs.PAPER_EPS + bs.EXTRA_EPS]
        assert all(b <= a for a, b in zip(curve, curve[1:])), (key, curve)
        assert 0 < e["best_step"] <= e["steps"] and e["train_seconds"] > 0


def test_gap_change_is_the_paired_change_of_the_per_digit_gap():
    cols = ["correct"] + [f"robust_{e:g}" for e in bs.PAPER_EPS + bs.EXTRA_EPS]

    def entry(bits_: str) -> dict:
        return {"eval": {"per_digit": {c: bits_ for c in cols}}}

    # At 1,600 steps MMA is right on 2 of 4 digits and PGD-AT on all 4; at 3,200 both on all 4: the gap closed by 0.5.
    data = {"runs": {"mma-0.45@1600": entry("1100"), "pgd-0.4@1600": entry("1111"),
                     "mma-0.45@3200": entry("1111"), "pgd-0.4@3200": entry("1111")}}
    v = bs.gap_change(data, 1600, 3200)
    assert v.difference == pytest.approx(0.5) and v.low < 0.5 < v.high
    assert bs.gap_change(data, 3200, 1600).difference == pytest.approx(-0.5)


def _study_entry(key: str, score_bits: str, clean: float = 0.95) -> dict:
    cols = ["correct"] + [f"robust_{e:g}" for e in bs.PAPER_EPS + bs.EXTRA_EPS]
    n = len(score_bits)
    return {"key": key, "eval": {"per_digit": {c: score_bits for c in cols}, "clean": clean,
                                 "top_class_fraction": 0.1, "avg_acc": score_bits.count("1") / n,
                                 "median_margin": 0.4, "robust": {"0.4": 0.5}}}


def test_alternatives_judge_each_variant_against_its_own_default_on_the_same_digits():
    mid = bs.MID_BUDGET
    runs = {f"mma-0.45@{mid}": _study_entry(f"mma-0.45@{mid}", "1100" * 50),
            f"mma-0.45@{mid}+k40": _study_entry(f"mma-0.45@{mid}+k40", "1111" * 50),   # better on 100 digits
            f"pgd-0.4@{mid}": _study_entry(f"pgd-0.4@{mid}", "1110" * 50),
            f"pgd-0.4@{mid}+noramp": _study_entry(f"pgd-0.4@{mid}+noramp", "1101" * 50)}  # as good, other digits
    rows = {r["key"]: r for r in bs.alternatives({"runs": runs})}
    k40, noramp = rows[f"mma-0.45@{mid}+k40"], rows[f"pgd-0.4@{mid}+noramp"]
    assert k40["change"] == pytest.approx(0.5) and k40["verdict"] == HOLDS
    assert noramp["change"] == pytest.approx(0.0) and noramp["verdict"] == UNRESOLVED
    # A variant that collapsed is a finding of its own, never a comparison, however it scores against its default.
    runs[f"pgd-0.4@{mid}+noramp"] = _study_entry(f"pgd-0.4@{mid}+noramp", "1111" * 50, clean=0.11)
    row = next(r for r in bs.alternatives({"runs": runs}) if r["key"] == f"pgd-0.4@{mid}+noramp")
    assert not row["trained"] and row["verdict"] is None and row["change"] is None
    assert any("did not train" in m for m in row["collapsed"])
    # ... a second seed of it is read against the default run of its own seed
    runs[f"pgd-0.4@{mid}+s1"] = _study_entry(f"pgd-0.4@{mid}+s1", "1110" * 50)
    runs[f"pgd-0.4@{mid}+s1+noramp"] = _study_entry(f"pgd-0.4@{mid}+s1+noramp", "1111" * 50)
    row = next(r for r in bs.alternatives({"runs": runs}) if r["key"] == f"pgd-0.4@{mid}+s1+noramp")
    assert row["seed"] == 1 and row["base"] == f"pgd-0.4@{mid}+s1" and row["change"] == pytest.approx(0.25)
    # a default run that collapsed leaves nothing to judge against
    runs[f"mma-0.45@{mid}"]["eval"]["clean"] = 0.11
    with pytest.raises(NotTrained):
        bs.alternatives({"runs": runs})
    assert bs.alternatives({"runs": {}}) == []


def test_seed_gaps_pair_each_seed_with_its_own_seed():
    f = bs.FINAL_BUDGET
    runs = {f"mma-0.45@{f}": _study_entry("a", "1100"), f"pgd-0.4@{f}": _study_entry("b", "1111"),
            f"mma-0.45@{f}+s1": _study_entry("c", "1110"), f"pgd-0.4@{f}+s1": _study_entry("d", "1110"),
            f"mma-0.45@{f}+s2": _study_entry("e", "1111")}  # seed 2's PGD-AT run not done: left out
    s = bs.seed_gaps({"runs": runs})
    assert s["seeds"] == [0, 1] and s["gaps"] == pytest.approx([-0.5, 0.0])
    assert s["gap_spread"] == pytest.approx(0.5) and s["gap_mean"] == pytest.approx(-0.25)
    single = bs.seed_gaps({"runs": {k: v for k, v in runs.items() if "+s1" not in k}})
    assert single["seeds"] == [0] and single["verdict"] is None  # one seed: no interval over seeds
    assert bs.seed_gaps({"runs": {}}) is None
    # The interval over seeds by hand: mean -0.25, sd 0.3536, t(0.975, 1) = 12.706.
    half = 12.7062 * (0.5 / math.sqrt(2)) / math.sqrt(2)
    assert (s["low"], s["high"]) == pytest.approx((-0.25 - half, -0.25 + half)) and s["verdict"] == UNRESOLVED
    # A pair where one run collapsed is left out, and said so: it must not decide the gap.
    runs[f"pgd-0.4@{f}+s2"] = _study_entry(f"pgd-0.4@{f}+s2", "0000", clean=0.1)
    s = bs.seed_gaps({"runs": runs})
    assert s["seeds"] == [0, 1] and any("did not train" in m for m in s["excluded"])


def test_replicate_verdict_is_the_t_interval_of_the_mean():
    from mma_edu.verdicts import FAILS, replicate_verdict, t_quantile_975

    assert t_quantile_975(2) == pytest.approx(4.303, abs=1e-3) and t_quantile_975(30) == pytest.approx(2.042, abs=1e-3)
    assert t_quantile_975(12) == pytest.approx(2.179, abs=1e-3)
    v = replicate_verdict([-0.062, 0.072, -0.007])  # the study's three seeds at 12,800 steps
    sd = torch.tensor([-0.062, 0.072, -0.007], dtype=torch.float64).std().item()
    assert v.difference == pytest.approx(0.001) and v.high - v.difference == pytest.approx(4.3027 * sd / math.sqrt(3))
    assert v.verdict == UNRESOLVED
    assert replicate_verdict([-0.05, -0.06, -0.055]).verdict == FAILS
    assert replicate_verdict([0.05, 0.06, 0.055]).verdict == HOLDS
    for bad in ([0.1], [0.1, float("nan")]):
        with pytest.raises(ValueError, match="values"):
            replicate_verdict(bad)


def test_seed_trend_is_least_squares_over_every_pair():
    # gap = -0.08 + 0.02 per doubling, seeds +-0.01 around it, at 1,600 ... 12,800 steps: the line and its t interval.
    runs, xs, ys = {}, [], []
    for i, steps in enumerate(bs.BUDGETS):
        for seed, noise in ((0, 0.01), (1, -0.01)):
            gap = -0.08 + 0.02 * i + noise
            n_a = round(100 * (0.5 + gap))  # the MMA run right on n_a of 100 digits, PGD-AT on 50
            tail = f"+s{seed}" if seed else ""
            runs[f"mma-0.45@{steps}{tail}"] = {**_study_entry("a", "1" * n_a + "0" * (100 - n_a)), "steps": steps}
            runs[f"pgd-0.4@{steps}{tail}"] = {**_study_entry("b", "1" * 50 + "0" * 50), "steps": steps}
            xs.append(math.log2(steps))
            ys.append((n_a - 50) / 100)
    t = bs.seed_trend({"runs": runs})
    X = torch.tensor([[1.0, x] for x in xs], dtype=torch.float64)
    coef = torch.linalg.lstsq(X, torch.tensor(ys, dtype=torch.float64).unsqueeze(1)).solution.squeeze(1)
    assert t["per_doubling"] == pytest.approx(coef[1].item()) and t["per_doubling"] == pytest.approx(0.02)
    assert t["n"] == 8 and t["low"] < 0.02 < t["high"] and t["verdict"] == HOLDS
    assert t["crossing_steps"] == pytest.approx(2 ** (-t["intercept"] / t["per_doubling"]))
    assert t["crossing_steps"] == pytest.approx(1600 * 2 ** 4, rel=0.01)  # -0.08 + 0.02 k = 0 at k = 4 doublings
    assert bs.seed_trend({"runs": {k: v for k, v in runs.items() if "@1600" in k}}) is None  # one budget


def test_study_claims_read_seeds_collapses_and_fall_back_to_seed_0():
    f, mid = bs.FINAL_BUDGET, bs.MID_BUDGET

    def e(key: str, bits_: str, clean: float = 0.95) -> dict:
        return {**_study_entry(key, bits_, clean), "steps": int(key.split("@")[1].split("+")[0])}

    lo, hi = "1" * 50 + "0" * 50, "1" * 60 + "0" * 40
    runs = {k: e(k, b) for k, b in {
        "mma-0.45@1600": lo, "pgd-0.4@1600": hi,                      # the zoo's budget, seed 0 only: -10 points
        f"mma-0.45@{f}": hi, f"pgd-0.4@{f}": lo,                      # final budget: +10, -10, +10 over seeds
        f"mma-0.45@{f}+s1": lo, f"pgd-0.4@{f}+s1": hi,
        f"mma-0.45@{f}+s2": hi, f"pgd-0.4@{f}+s2": lo}.items()}
    runs[f"pgd-0.4@{mid}"] = e(f"pgd-0.4@{mid}", hi)
    runs[f"pgd-0.4@{mid}+noramp"] = e(f"pgd-0.4@{mid}+noramp", hi, clean=0.11)
    claims = {c.key: c for c in bs.study_claims({"runs": runs})}
    assert claims["gap-1600"].verdict == bs.FAILS and "seed 0 only" in claims["gap-1600"].detail
    assert claims[f"gap-{f}"].verdict == UNRESOLVED and "+3.3" in claims[f"gap-{f}"].detail
    # each pair differs on 10 of 100 digits: ±5.9 points over digits; the seeds' spread is 20 points > 3 × 5.9
    assert claims["seeds-matter"].verdict == HOLDS and "spread 20.0 against ±5.9" in claims["seeds-matter"].detail
    assert claims["noramp-trains"].verdict == bs.FAILS and "collapsed" in claims["noramp-trains"].detail
    assert "k40" not in claims and "vs-pgd-0.3" not in claims  # runs not done: no claim
    # the seeds agreeing at every budget: no spread, so "seeds matter" does not hold, and the mean is a finding
    for s in ("", "+s1", "+s2"):
        runs[f"mma-0.45@{f}{s}"], runs[f"pgd-0.4@{f}{s}"] = e(f"mma-0.45@{f}{s}", hi), e(f"pgd-0.4@{f}{s}", lo)
    claims = {c.key: c for c in bs.study_claims({"runs": runs})}
    assert claims["seeds-matter"].verdict == bs.FAILS and claims[f"gap-{f}"].verdict == HOLDS


def test_markdown_summary_has_a_row_per_budget_with_each_seed():
    f = bs.FINAL_BUDGET
    runs = {}
    for key, bits_ in {f"mma-0.45@{f}": "1" * 60 + "0" * 40, f"pgd-0.4@{f}": "1" * 50 + "0" * 50,
                       f"mma-0.45@{f}+s1": "1" * 50 + "0" * 50, f"pgd-0.4@{f}+s1": "1" * 60 + "0" * 40,
                       "mma-0.45@1600": "1" * 50 + "0" * 50, "pgd-0.4@1600": "1" * 50 + "0" * 50}.items():
        runs[key] = {**_study_entry(key, bits_), "steps": int(key.split("@")[1].split("+")[0]), "train_seconds": 100.0}
    md = bs.markdown_summary({"runs": runs}).splitlines()
    assert len(md) == 4 and md[2].startswith("| 1,600 | 50.0 | 50.0 | +0.0 | +0.0 (one seed) | — |")
    assert md[3].startswith(f"| {f:,} | 60.0 / 50.0 | 50.0 / 60.0 | +10.0 / -10.0 | +0.0 [")


def test_ctrl_c_ends_the_study_with_one_line_saying_how_to_resume(monkeypatch, capsys, tmp_path):
    from mma_edu.interrupts import TrainingInterrupted

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted(2, 140, tmp_path / "last.pt")

    monkeypatch.setattr(bs, "run_study", interrupted)
    assert bs.main(["run", "--results", str(tmp_path / "r.json"), "--runs-dir", str(tmp_path / "runs")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0] and "resume" in err[0] and str(tmp_path / "runs") in err[0]


def test_the_shipped_results_give_the_shipped_verdicts():
    """Notebook 05 asserts these verdicts; a rerun study that moves one must say so here."""
    if not bs.RESULTS.is_file():
        pytest.skip(f"no study results shipped yet ({bs.RESULTS})")
    data = bs.load_results()
    assert {r.key for r in bs.plan()} == set(data["runs"]), "the shipped results are the whole plan"
    assert {c.key: c.verdict for c in bs.study_claims(data)} == bs.SHIPPED_VERDICTS
