"""Several processes give the single process's run (issue 14): torchrun with gloo on CPU, two ranks.

One plain process and one ``torchrun --nproc_per_node 2`` run the same script
(tests/distributed_child.py): a tiny MMA run (7 steps, global batch 20 = 2 x 10, random augmentation,
validation, best.pt); MMA with synchronized batch norm and bn_mode "reference"; the same MMA run
stopped by SIGTERM sent to one rank, then resumed; PGD-AT; a sharded ``robust_accuracy``,
``margin_distribution`` and validation over several batches (the last short); the ``evaluate``,
``margins`` and ``reproduce`` commands. 15-40 s on 2 shared cores.

What must hold, and how exactly:

- weights after 2 ranks = after 1 process to 1e-6 (float rounding: the gradient is averaged over
  ranks instead of summed over one batch; measured 3e-8 to 7e-8); the MMA margin memory is identical;
- the stopped-and-resumed 2-rank run equals the uninterrupted one bitwise (weights, memory, optimizer,
  history);
- evaluation and validation: every per-example result (robust, margins, perturbed points) is bitwise
  the single process's; the commands print once (rank 0) and write the same JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mma_edu.distributed import ENV_VARS, Dist, as_dist
from mma_edu.interrupts import GracefulStop

HERE = Path(__file__).parent
TOLERANCE = 1e-6  # largest weight difference allowed between 1 and 2 processes


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for var in ENV_VARS:
        env.pop(var, None)  # the single process must not think it was launched by torchrun
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both runs of tests/distributed_child.py (15-40 s together on 2 shared cores)."""
    root = tmp_path_factory.mktemp("distributed")
    child = str(HERE / "distributed_child.py")
    one = subprocess.run([sys.executable, child, str(root)], capture_output=True, text=True, timeout=150,
                         env=_env(), cwd=HERE.parent)
    assert one.returncode == 0, one.stderr[-3000:]
    # --standalone: a rendezvous on localhost at a free port.
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          child, str(root)], capture_output=True, text=True, timeout=150, env=_env(), cwd=HERE.parent)
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
    load = lambda w: torch.load(root / f"results-{w}.pt", weights_only=True)  # noqa: E731
    return root, load(1), load(2), one, two


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _bitwise(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_ranks_train_as_one_process(runs):
    _, one, two, *_ = runs
    assert two["world"] == 2 and one["world"] == 1
    # MMA found margins (the memory is not trivially its initial value) and both runs hold the same memory.
    memory = one["plain"]["margins"]
    assert (memory > 0).sum() >= 10 and memory.unique().numel() >= 10
    assert torch.equal(two["plain"]["margins"], memory)
    assert _max_diff(one["plain"]["model"], two["plain"]["model"]) < TOLERANCE
    assert _max_diff(one["pgdat"], two["pgdat"]) < TOLERANCE
    h1, h2 = one["plain"]["last"]["history"], two["plain"]["last"]["history"]
    assert torch.allclose(torch.tensor(h1["step_loss"]), torch.tensor(h2["step_loss"]), rtol=1e-5, atol=0)
    assert [e["val_margin"] for e in h1["epochs"]] == pytest.approx([e["val_margin"] for e in h2["epochs"]], rel=1e-5)
    assert len(h2["epochs"]) == 3  # two epochs and the partial one
    assert two["plain"]["last"]["world_size"] == 2 and len(two["plain"]["last"]["rng_ranks"]) == 2


@pytest.mark.slow
def test_synchronized_batch_norm_with_the_reference_bn_mode_is_the_single_process_batch_norm(runs):
    """CPU stand-in for torch's GPU-only SyncBatchNorm (tests/distributed_child.py): with bn_mode "reference"
    AN-PGD's train-mode forwards normalize with the whole batch's S+, as one process does; a rank whose S+
    is empty joins them with an empty batch (else the other rank would wait forever)."""
    _, one, two, *_ = runs
    assert two["sync_bn"]["empty"] > 0 and one["sync_bn"]["empty"] == 0  # the empty-batch path ran
    assert (one["sync_bn"]["margins"] > 0).sum() >= 10
    assert torch.equal(two["sync_bn"]["margins"], one["sync_bn"]["margins"])
    assert _max_diff(one["sync_bn"]["model"], two["sync_bn"]["model"]) < TOLERANCE  # running statistics too


@pytest.mark.slow
def test_ranks_that_disagree_on_the_run_are_refused(runs):
    _, one, two, *_ = runs
    assert one["mismatch"] is None  # one process: nothing to disagree with
    assert "every rank must call fit with the same data" in two["mismatch"]


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_all_after_the_same_step_and_resume_is_exact(runs):
    _, one, two, *_ = runs
    for r in (one, two):
        assert r["stopped_at"] == 4 and r["signal"] == 15
        assert _bitwise(r["resumed"]["model"], r["plain"]["model"])
        assert torch.equal(r["resumed"]["margins"], r["plain"]["margins"])
        assert _bitwise(r["resumed"]["last"]["optimizer"]["state"][0], r["plain"]["last"]["optimizer"]["state"][0])
        assert r["resumed"]["last"]["history"]["step_loss"] == r["plain"]["last"]["history"]["step_loss"]
    assert two["files"] == ["best.pt", "history.json", "last.pt"]  # rank 0 alone wrote; no lock left


@pytest.mark.slow
def test_resume_with_another_world_size_warns_and_continues(runs, tmp_path, capsys):
    sys.path.insert(0, str(HERE))
    try:
        import distributed_child as child
    finally:
        sys.path.remove(str(HERE))
    root, _, two, *_ = runs
    out = tmp_path / "run"
    shutil.copytree(root / "stopped-copy-2", out)  # stopped after step 4 by 2 ranks
    start = torch.load(root / "start.pt", weights_only=True)["model"]
    model, method = child.train(out, start, None, resume=True)
    said = capsys.readouterr().out
    assert "trained on 2 process(es), this one has 1" in said and "not bitwise" in said
    # Same global batches and random draws: the 2-rank run's result, to float rounding.
    assert _max_diff(model.state_dict(), two["plain"]["model"]) < TOLERANCE
    assert torch.equal(method.margins, two["plain"]["margins"])


@pytest.mark.slow
def test_sharded_evaluation_and_validation_are_bitwise_the_single_process_ones(runs):
    _, one, two, *_ = runs
    for key in ("robust", "margin", "found", "x_adv", "l2_margin", "l2_found_by", "l2_x_adv"):
        assert torch.equal(one["eval"][key], two["eval"][key]), key
    # ℓ2 "best" really mixed both estimators (so FMN's random restarts were replayed on the other rank).
    by = one["eval"]["l2_found_by"].tolist()
    assert by.count(2) > 0 and by.count(3) > 0, by
    assert one["eval"]["accuracy"] == two["eval"]["accuracy"] and one["eval"]["clean"] == two["eval"]["clean"]
    assert 0 < one["eval"]["clean"] < 1 and one["eval"]["found"].any()  # a real mix of outcomes
    assert two["eval_same_on_every_rank"]
    assert one["validation"]["estimate"] == two["validation"]["estimate"]  # val_acc, val_margin, median: exact
    assert 0 < one["validation"]["estimate"]["val_margin"] < 0.5
    assert torch.equal(one["validation"]["reference"], two["validation"]["reference"])
    assert one["validation"]["reference"].unique().numel() > 3


@pytest.mark.slow
def test_commands_under_torchrun_print_once_and_write_the_single_process_results(runs):
    root, _, _, one, two = runs
    for name in ("evaluate", "margins", "reproduce"):
        assert json.loads((root / f"{name}-1.json").read_text()) == json.loads((root / f"{name}-2.json").read_text())
    # Rank 1 prints nothing: the two runs print the same lines (but for the file names they wrote).
    same = lambda out: [line for line in out.splitlines() if not line.startswith("wrote")]  # noqa: E731
    assert same(two.stdout) == same(one.stdout) and one.stdout.count("AvgRobAcc") == 2
    for rank in (0, 1):  # every rank's error reaches the console
        assert f"mma-edu evaluate [rank {rank} of 2]: error: " in two.stderr
    assert "mma-edu evaluate: error: " in one.stderr  # untagged in one process


def test_a_global_batch_must_split_evenly():
    with pytest.raises(ValueError, match=r"batch_size \(20\) must be divisible by the number of processes \(3\)"):
        Dist(rank=0, world=3).shard(20)
    assert Dist(rank=1, world=2).shard(20) == slice(10, 20)
    assert as_dist(None).shard(20) == slice(0, 20)
    with pytest.raises(ValueError, match="dist must be"):
        as_dist("gloo")


def test_under_torchrun_a_ctrl_c_delivered_twice_is_one_ctrl_c():
    """The terminal sends SIGINT to every worker and torchrun passes its own on: within the window the
    second is the same Ctrl-C; after it (and in one process, window 0) a second Ctrl-C aborts."""
    stop = GracefulStop(duplicate_window=60.0)
    stop._handler(signal.SIGINT, None)
    stop._handler(signal.SIGINT, None)  # no KeyboardInterrupt
    assert stop.signum == signal.SIGINT
    stop.duplicate_window = 0.0
    with pytest.raises(KeyboardInterrupt):
        stop._handler(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        plain = GracefulStop()
        plain._handler(signal.SIGINT, None)
        plain._handler(signal.SIGINT, None)


def test_init_from_env_outside_torchrun_and_for_one_process(monkeypatch):
    from mma_edu.distributed import init_from_env

    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    assert init_from_env("cpu") == Dist()  # no torchrun: one process, no group joined
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not init_from_env("cpu").active  # torchrun --nproc_per_node 1: nothing to share
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="RANK, WORLD_SIZE and LOCAL_RANK must be integers"):
        init_from_env("cpu")
