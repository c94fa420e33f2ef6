"""Nothing is lost on Ctrl-C, SIGTERM, a kill -9 or a second training into the same folder.

Real signals are sent to child processes (tests/fault_child.py, and the ``mma-edu`` command), so a
failure here cannot interrupt pytest itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mma_edu.checkpoint import read_checkpoint, save_checkpoint
from mma_edu.cli import main
from mma_edu.data import ArrayDataset
from mma_edu.models import Linear
from mma_edu.train import BEST, HISTORY, LAST, Standard, fit
from mma_edu.train.run_folder import LOCK

HERE = Path(__file__).parent
EXPECTED = {  # scenario -> what stopped the first run
    "sigint-in-attack": "SIGINT", "sigint-in-attack-late": "SIGINT", "sigterm-in-attack": "SIGTERM",
    "sigint-in-best-write": "SIGINT", "sigint-in-last-write": "SIGINT", "sigint-in-history-write": "SIGINT",
    "double-sigint-in-attack": "abort",
}


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    proc = subprocess.run([sys.executable, str(HERE / "fault_child.py"), str(root)], capture_output=True, text=True,
                          timeout=300, cwd=HERE.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {r["scenario"]: r for r in rows}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_a_signal_at_any_moment_then_resume_equals_the_uninterrupted_run(scenarios, name):
    r = scenarios[name]
    assert r["interrupted"] == EXPECTED[name], r
    if r["interrupted"] != "abort":
        assert r["saved_step"] == r["step"]  # last.pt holds the step it says it stopped after
    assert set(r["files"]) <= {LAST, BEST, HISTORY}, r["files"]  # no temp file, no lock left behind
    assert r["best_consistent"], r  # best.pt is the step last.pt names
    assert all(r["exact"].values()), r["exact"]  # weights, optimizer, margin memory, RNG, history: bitwise


def _toy():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 4, generator=g)
    return ArrayDataset(x, (x[:, 0] > 0.5).long(), "toy")


def _train(out: Path, steps: int, **kw):
    torch.manual_seed(0)
    model = Linear(4, 2)
    data = _toy()
    return fit(model, data, Standard(), steps=steps, batch_size=10, eval_data=data, out=out, progress=False,
               device="cpu", **kw)


def test_leftover_temp_files_are_removed_at_the_next_start(tmp_path):
    _train(tmp_path, 4)
    leftovers = [tmp_path / ".last.pt.abc123.tmp", tmp_path / ".history.json.xyz", tmp_path / ".best.pt.q.tmp"]
    for p in leftovers:
        p.write_bytes(b"half a file")
    _train(tmp_path, 6, resume=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LAST, BEST, HISTORY])


def test_a_missing_best_is_rebuilt_from_last_when_it_holds_that_step(tmp_path, capsys):
    _train(tmp_path, 4)  # one epoch: best.pt and last.pt at step 4
    assert read_checkpoint(tmp_path / LAST)["best_step"] == 4
    reference = read_checkpoint(tmp_path / BEST)["model"]
    (tmp_path / BEST).unlink()
    _train(tmp_path, 5, resume=True)
    assert "rebuilt it from last.pt (step 4)" in capsys.readouterr().out
    best = read_checkpoint(tmp_path / BEST)
    assert best["step"] in (4, 5) and (best["step"] == 5 or all(
        torch.equal(a, b) for a, b in zip(reference.values(), best["model"].values())))


def test_a_best_that_cannot_be_rebuilt_is_said_plainly(tmp_path, capsys):
    _train(tmp_path, 4)
    ck = read_checkpoint(tmp_path / LAST)
    ck["best_step"] = 2  # as if the best epoch were an earlier one than last.pt holds
    save_checkpoint(tmp_path / LAST, ck)
    (tmp_path / BEST).unlink()
    _train(tmp_path, 5, resume=True)
    out = capsys.readouterr().out
    assert "best.pt is missing and cannot be rebuilt" in out and "step 2" in out, out


def test_resume_at_or_past_the_end_says_the_run_is_complete(tmp_path, capsys):
    _train(tmp_path, 4)
    before = read_checkpoint(tmp_path / LAST)["model"]
    hist = _train(tmp_path, 3, resume=True)
    assert "already complete" in capsys.readouterr().out
    assert len(hist.step_loss) == 4
    assert all(torch.equal(a, b) for a, b in zip(before.values(), read_checkpoint(tmp_path / LAST)["model"].values()))


def test_a_stale_lock_from_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / LOCK).write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename}))
    _train(tmp_path, 2)
    assert not (tmp_path / LOCK).exists()


def _wait_for(path: Path, seconds: float) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.1)


def test_command_line_sigterm_saves_refuses_a_second_run_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "mnist-linf-mma-0.45", "--data", "offline", "--steps", "500", "--out", str(out),
            "--val-size", "10", "--no-progress", "--device", "cpu"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "mma_edu.cli", *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for(out / LOCK, 120)
        second = subprocess.run([sys.executable, "-m", "mma_edu.cli", *argv], capture_output=True, text=True,
                                env=env, timeout=120)
        assert second.returncode == 2 and "in use by another training" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGTERM)
        stdout, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM received: stopped after step" in stderr and "--resume" in stderr, stderr
    assert "resume=True" not in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == [HISTORY, LAST]  # lock released, nothing half-written
    saved = read_checkpoint(out / LAST)["step"]
    assert main(argv[:argv.index("500")] + [str(saved + 1)] + argv[argv.index("500") + 1:] + ["--resume"]) == 0
    text = capsys.readouterr().out
    assert f"resuming {out}/ at step {saved}" in text
    assert read_checkpoint(out / LAST)["step"] == saved + 1
