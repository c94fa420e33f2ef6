"""Nothing is lost on Ctrl-C, SIGTERM, a kill -9 or a second training into the same folder.

Real signals are sent to child processes (tests/fault_child.py, and the ``mma-edu`` command), so a
failure here cannot interrupt pytest itself.
"""

from __future__ import annotations

import json
import math
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
    "double-sigint-in-attack": "abort", "double-sigint-in-final-validation": "SIGINT",
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


# ---------------------------------------------------------------------------------------------------------
# Issue 27: an interruption at the very end of a run; Ctrl-C before the first step; the late checks.
# ---------------------------------------------------------------------------------------------------------

def _files(folder: Path) -> dict:
    """Everything the run folder holds that resume must restore (weights, best, history), as loaded."""
    last, best = read_checkpoint(folder / LAST), read_checkpoint(folder / BEST)
    epochs = [{k: v for k, v in e.items() if k != "seconds"} for e in json.loads((folder / HISTORY).read_text())["epochs"]]
    return {"step": last["step"], "best_step": last["best_step"], "best": last["best"], "model": last["model"],
            "best_file_step": best["step"], "best_model": best["model"], "epochs": epochs}


def _same(a: dict, b: dict) -> bool:
    for k in a:
        if isinstance(a[k], dict) and a[k] and torch.is_tensor(next(iter(a[k].values()))):
            if a[k].keys() != b[k].keys() or not all(torch.equal(a[k][n], b[k][n]) for n in a[k]):
                return False
        elif a[k] != b[k]:
            return False
    return True


def _interrupt_at(monkeypatch, target: str, when):
    """Raise KeyboardInterrupt (what a second Ctrl-C does under GracefulStop) in mma_edu.train.loop.<target>
    at the call for which ``when(*args, **kwargs)`` is true."""
    import mma_edu.train.loop as loop

    real = getattr(loop, target)

    def wrapped(*args, **kwargs):
        if when(*args, **kwargs):
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, target, wrapped)
    return lambda: monkeypatch.setattr(loop, target, real)


def test_an_interrupted_last_best_write_is_repaired_by_the_complete_resume(tmp_path, monkeypatch, capsys):
    """Issue 27: Ctrl-C (twice) at the run's last best.pt write left best.pt stale (step 4 against 8), and resume
    answered "already complete". Now resume at the same --steps rebuilds it, equal to an uninterrupted run."""
    from mma_edu.interrupts import TrainingInterrupted

    _train(tmp_path / "ref", 8, lr=0.03)
    ref = _files(tmp_path / "ref")
    assert ref["best_step"] == 8  # the last epoch is the best: its best.pt write is the one interrupted
    undo = _interrupt_at(monkeypatch, "save_checkpoint", lambda path, state: Path(path).name == BEST
                         and state["step"] == 8)
    with pytest.raises(TrainingInterrupted):
        _train(tmp_path / "run", 8, lr=0.03)
    undo()
    assert read_checkpoint(tmp_path / "run" / BEST)["step"] == 4  # stale, as the issue found it
    assert read_checkpoint(tmp_path / "run" / LAST)["best_step"] == 8
    _train(tmp_path / "run", 8, lr=0.03, resume=True)
    out = capsys.readouterr().out
    assert "already complete" not in out and "best.pt (from step 4, not step 8)" in out, out
    assert _same(ref, _files(tmp_path / "run"))


def test_two_ctrl_c_in_the_final_validation_are_repaired_by_the_complete_resume(tmp_path, monkeypatch, capsys):
    """Issue 27: the final epoch's record and best.pt were lost (step 4 against 8) and resume said "complete"."""
    from mma_edu.interrupts import TrainingInterrupted
    import mma_edu.train.loop as loop

    _train(tmp_path / "ref", 8, lr=0.03)
    ref = _files(tmp_path / "ref")
    calls = []
    undo = _interrupt_at(monkeypatch, "validate", lambda *a, **k: calls.append(1) or len(calls) == 2)
    with pytest.raises(TrainingInterrupted) as stop:
        _train(tmp_path / "run", 8, lr=0.03)
    undo()
    assert stop.value.step == 8
    last = read_checkpoint(tmp_path / "run" / LAST)
    assert last["epoch_end_pending"] and [e["step"] for e in last["history"]["epochs"]] == [4]
    assert loop.owed_repairs(last, tmp_path / "run") == ["the record of the epoch ending at step 8"]
    _train(tmp_path / "run", 8, lr=0.03, resume=True)
    out = capsys.readouterr().out
    assert "already complete" not in out and "repairing it" in out, out
    assert _same(ref, _files(tmp_path / "run"))
    _train(tmp_path / "run", 8, lr=0.03, resume=True)  # now it owes nothing
    assert "already complete" in capsys.readouterr().out


def test_the_command_line_repairs_a_complete_run_instead_of_calling_it_done(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "mnist-standard", "--data", "offline", "--steps", "2", "--val-size", "8",
            "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    ref = read_checkpoint(out / BEST)
    (out / BEST).unlink()  # as an interruption before its write leaves it
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 0
    text = capsys.readouterr().out
    assert "already complete" not in text and "repairing it" in text and "best.pt (missing)" in text, text
    assert all(torch.equal(a, b) for a, b in zip(ref["model"].values(), read_checkpoint(out / BEST)["model"].values()))
    assert main(argv + ["--resume"]) == 0
    assert "already complete" in capsys.readouterr().out


def test_ctrl_c_during_the_imports_is_one_line_exit_130_nothing_written(tmp_path):
    """A real SIGINT a moment after `mma-edu train` starts (it is importing torch then): no traceback."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    code = ("import sys; print('started', flush=True); from mma_edu.cli import main; "
            f"sys.exit(main(['train', '--preset', 'mnist-standard', '--data', 'offline', '--out', {str(out)!r}]))")
    # As in a terminal, where Ctrl-C is not ignored: a shell's background job (`make test &`) starts with SIGINT
    # ignored, Python keeps it so, and the child would rightly ignore the signal until training installs its own.
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip() == "mma-edu train: interrupted", stderr
    assert not out.exists()


@pytest.mark.parametrize("where", ["_load_splits", "build_model", "fit-before-the-first-step"])
def test_ctrl_c_before_the_first_step_is_one_line_exit_130_nothing_written(tmp_path, monkeypatch, capsys, where):
    """Data loading, model building, fit's checks: a Ctrl-C there (KeyboardInterrupt, as a real one raises)."""
    import mma_edu.cli as cli
    import mma_edu.models
    import mma_edu.train.loop as loop

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "_load_splits":
        monkeypatch.setattr(cli, "_load_splits", interrupt)
    elif where == "build_model":
        monkeypatch.setattr(mma_edu.models, "build_model", interrupt)
    else:
        monkeypatch.setattr(loop, "_check_outputs", interrupt)
    out = tmp_path / "new" / "run"
    assert main(["train", "--preset", "mnist-standard", "--data", "offline", "--steps", "2", "--out", str(out),
                 "--no-progress", "--device", "cpu"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "mma-edu train: interrupted", err
    assert not (tmp_path / "new").exists()  # the folders it made are gone again, and with them the lock


def _no_data(*args, **kwargs):
    raise AssertionError("the data was loaded before the check")


def test_the_lock_is_taken_before_any_data_is_loaded(tmp_path, monkeypatch, capsys):
    import mma_edu.cli as cli

    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(json.dumps({"pid": os.getppid(), "host": os.uname().nodename}))  # a live process
    monkeypatch.setattr(cli, "_load_splits", _no_data)
    assert main(["train", "--preset", "mnist-standard", "--data", "offline", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "in use by another training" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("change, flag", [(["--val-size", "6"], "--val-size"),
                                          (["--selection", "estimate"], "--selection"),
                                          (["--val-size", "0"], "--val-size"), (["--seed", "3"], "--seed")])
def test_resume_with_other_validation_settings_is_refused_before_loading_data(tmp_path, monkeypatch, capsys,
                                                                                change, flag):
    import mma_edu.cli as cli

    out = tmp_path / "run"

    def argv(steps: str, *extra: str) -> list[str]:
        return ["train", "--preset", "mnist-standard", "--data", "offline", "--steps", steps, "--out", str(out),
                "--no-progress", "--device", "cpu", *extra]

    assert main(argv("1", "--val-size", "8")) == 0
    before = (out / LAST).read_bytes()
    capsys.readouterr()
    monkeypatch.setattr(cli, "_load_splits", _no_data)
    keep = [] if flag == "--val-size" else ["--val-size", "8"]
    assert main(argv("2", *keep, *change, "--resume")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{flag} (saved" in err and "Traceback" not in err, err
    assert (out / LAST).read_bytes() == before and not (out / LOCK).exists()


# ---------------------------------------------------------------------------------------------------------
# Issue 27: a step whose loss is not finite (--nan-policy stop|skip)
# ---------------------------------------------------------------------------------------------------------

def _nan_at(method, calls: set[int]):
    """``method`` whose loss is NaN at the given (1-based) calls of batch_loss."""
    real, count = method.batch_loss, [0]

    def batch_loss(*args, **kwargs):
        count[0] += 1
        loss, stats = real(*args, **kwargs)
        if count[0] in calls:
            loss = loss * float("nan")
            stats = {**stats, "loss": float("nan")}
        return loss, stats

    method.batch_loss = batch_loss
    return method


def test_a_nan_loss_stops_the_run_keeps_the_last_good_checkpoint_and_names_the_step(tmp_path):
    from mma_edu.train.loop import NonFiniteLoss

    _train(tmp_path / "ref", 4)
    torch.manual_seed(0)
    with pytest.raises(NonFiniteLoss) as info:
        fit(Linear(4, 2), _toy(), _nan_at(Standard(), {6}), steps=8, batch_size=10, eval_data=_toy(),
            out=tmp_path / "run", progress=False, device="cpu")
    message = str(info.value)
    assert info.value.step == 6 and "the loss of step 6 is nan" in message and "(step 4) is kept" in message, message
    assert "--nan-policy skip" in message
    kept = read_checkpoint(tmp_path / "run" / LAST)
    assert kept["step"] == 4 and all(torch.isfinite(v).all() for v in kept["model"].values())
    assert all(torch.equal(a, b) for a, b in zip(read_checkpoint(tmp_path / "ref" / LAST)["model"].values(),
                                                 kept["model"].values()))  # the first epoch's, untouched
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [BEST, HISTORY, LAST]


def test_a_nan_loss_with_skip_leaves_the_weights_alone_and_goes_on(tmp_path, capsys):
    torch.manual_seed(0)
    skipping = Linear(4, 2)
    hist = fit(skipping, _toy(), _nan_at(Standard(), {3}), steps=4, batch_size=10, progress=False, device="cpu",
               nan_policy="skip", lr=0.05)
    assert "the loss of step 3 is nan (not finite): skipped it" in capsys.readouterr().out
    assert len(hist.step_loss) == 4 and math.isnan(hist.step_loss[2])
    assert all(torch.isfinite(p).all() for p in skipping.parameters())
    # Step 3 changed nothing: the weights after step 3 are those after step 2.
    torch.manual_seed(0)
    two = Linear(4, 2)
    seen = []
    fit(two, _toy(), _nan_at(Standard(), {3}), steps=3, batch_size=10, progress=False, device="cpu",
        nan_policy="skip", lr=0.05, callbacks=[lambda e: e.kind == "step" and seen.append(
            {k: v.clone() for k, v in two.state_dict().items()})])
    assert all(torch.equal(seen[1][k], seen[2][k]) for k in seen[1]) and not all(
        torch.equal(seen[0][k], seen[1][k]) for k in seen[0])


def test_a_nan_loss_on_the_command_line_is_one_line_exit_1(tmp_path, monkeypatch, capsys):
    from mma_edu.train.methods import Standard as StandardMethod

    real, count = StandardMethod.batch_loss, [0]

    def batch_loss(self, *args, **kwargs):
        count[0] += 1
        loss, stats = real(self, *args, **kwargs)
        return (loss * float("nan"), stats) if count[0] == 2 else (loss, stats)

    monkeypatch.setattr(StandardMethod, "batch_loss", batch_loss)
    out = tmp_path / "run"
    assert main(["train", "--preset", "mnist-standard", "--data", "offline", "--steps", "3", "--val-size", "0",
                 "--out", str(out), "--no-progress", "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the loss of step 2 is nan" in err and "Traceback" not in err, err
    assert not (out / LOCK).exists()


def test_a_signal_after_fit_has_set_up_but_before_the_first_step_writes_nothing(tmp_path, monkeypatch, capsys):
    """A real SIGINT once fit's signal handling is in place, before step 1: exit 130, one line, no files."""
    import mma_edu.train.loop as loop

    class SignalOnEntry(loop.GracefulStop):
        def __enter__(self):
            entered = super().__enter__()
            os.kill(os.getpid(), signal.SIGINT)  # handled by GracefulStop: recorded, not raised
            return entered

    monkeypatch.setattr(loop, "GracefulStop", SignalOnEntry)
    out = tmp_path / "new" / "run"
    assert main(["train", "--preset", "mnist-standard", "--data", "offline", "--steps", "2", "--out", str(out),
                 "--no-progress", "--device", "cpu"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "mma-edu train: SIGINT received before the first step: stopped, nothing written", err
    assert not (tmp_path / "new").exists()


def test_a_ctrl_c_that_a_library_swallowed_during_start_up_still_stops_training_before_its_first_step(tmp_path):
    """A real SIGINT while a command starts, caught by a bare ``except:`` (as some imports do when they probe
    optional modules): the training that follows must stop before its first step, not run for hours."""
    from mma_edu import interrupts
    from mma_edu.data import toy_2d
    from mma_edu.models import MLP
    from mma_edu.train import Standard, fit

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupts.install_startup_handler()
        try:
            signal.raise_signal(signal.SIGINT)
        except:  # noqa: E722 - the library's bare except this test is about
            pass
        # fit raises it again on entry, as Python would have: the command line says "interrupted", exit 130
        with pytest.raises(KeyboardInterrupt):
            fit(MLP(hidden=8, depth=1), toy_2d("moons", 64, seed=0), Standard(), steps=20, batch_size=16,
                out=tmp_path / "run", device="cpu", progress=False)
        assert not (tmp_path / "run").exists()  # before anything was written
        # consumed: the next training runs
        history = fit(MLP(hidden=8, depth=1), toy_2d("moons", 64, seed=0), Standard(), steps=4, batch_size=16,
                      device="cpu", progress=False)
        assert len(history.step_loss) == 4
        # swallowed later still, after fit's start (its checks, the model's first forward): the training's own
        # handler stops before the first step
        interrupts._STARTUP_SIGINTS.append(signal.SIGINT)
        with interrupts.GracefulStop() as graceful:
            assert graceful.signum == signal.SIGINT  # fit checks this before each step
        assert not interrupts._STARTUP_SIGINTS
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupts._STARTUP_SIGINTS.clear()


def test_a_ctrl_c_during_an_import_is_held_until_the_imports_are_done(tmp_path, monkeypatch):
    """Raised inside an import, a KeyboardInterrupt can abort the process (torch runs Python from C++ while it
    imports) or leave a module half-loaded: the start-up handler holds it, and it is raised after the imports."""
    from mma_edu import interrupts

    (tmp_path / "slow_extension.py").write_text(
        "import signal\nsignal.raise_signal(signal.SIGINT)\nLOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupts.install_startup_handler()
        import slow_extension  # noqa: F401 - the module's whole body ran: the signal did not cut it short

        assert slow_extension.LOADED and interrupts._STARTUP_SIGINTS == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_interrupted_at_startup()
        interrupts.raise_if_interrupted_at_startup()  # once only
        # outside an import it raises at once, as Python's own handler does
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        interrupts.remove_startup_handler()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and not interrupts._STARTUP_SIGINTS
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupts._STARTUP_SIGINTS.clear()
        sys.modules.pop("slow_extension", None)
