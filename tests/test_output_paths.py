"""Every output path is checked before the work; a full disk or a read-only mount is one line, and loses
nothing; a closed pipe is not a traceback (issue 27).

The checks run against real file systems where the machine allows (a tmpfs mounted full or read-only:
tests/mounts.py, skipped with the reason where it cannot be mounted), and the write errors are also
injected as ``OSError(ENOSPC)``. Each command row also checks that no work ran before the error.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mounts import fill, make_readonly, tmpfs

import mma_edu.checkpoint
import mma_edu.cli as cli
import mma_edu.files
import mma_edu.released
from mma_edu.checkpoint import read_checkpoint, save_checkpoint
from mma_edu.cli import main
from mma_edu.data import ArrayDataset
from mma_edu.files import OutputPathError, check_output_dir, check_output_file
from mma_edu.models import Linear, build_model
from mma_edu.train import BEST, HISTORY, LAST, Standard, fit
from mma_edu.train.run_folder import LOCK

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    """A full and a read-only file system (each a small tmpfs), with a folder on each."""
    base = tmp_path_factory.mktemp("disks")
    with tmpfs(base / "full", "256k") as full, tmpfs(base / "ro", "64k") as ro:
        (full / "folder").mkdir()
        (ro / "folder").mkdir()
        fill(full)
        make_readonly(ro)
        yield {"full": full / "folder", "readonly": ro / "folder"}


def _no_work(*args, **kwargs):
    raise AssertionError("the work started before the output path was checked")


def _model_file(tmp: Path) -> Path:
    model = build_model("small_cnn", width=2, hidden=4)
    return save_checkpoint(tmp / "m.pt", {"model_name": "small_cnn", "model_kwargs": {"width": 2, "hidden": 4},
                                          "model": model.state_dict(), "data": "mnist_offline/train"})


# Each command with its output option; {out} is the path under test, {ckpt} a small checkpoint.
COMMANDS = {
    "evaluate --json": ["evaluate", "{ckpt}", "--norm", "linf", "--eps", "0.1", "--json", "{out}"],
    "margins --json": ["margins", "{ckpt}", "--norm", "linf", "--max-eps", "0.5", "--json", "{out}"],
    "reproduce --json": ["reproduce", "{ckpt}", "--norm", "linf", "--json", "{out}"],
    "reproduce --markdown": ["reproduce", "{ckpt}", "--norm", "linf", "--markdown", "{out}"],
    "reproduce --plot": ["reproduce", "{ckpt}", "--norm", "linf", "--plot", "{out}"],
    "download --cache-dir": ["download", "checkpoint", "mnist-Linf-MMA-0.45-sd0", "--cache-dir", "{out}"],
    "train --out": ["train", "--preset", "mnist-standard", "--data", "offline", "--out", "{out}"],
}
# problem -> (how to make the path from tmp and the disks (a callable: only these rows mount), the error's text)
PROBLEMS = {
    "a-directory": (lambda t, d: t, "is a directory"),
    "under-a-file": (lambda t, d: t / "afile" / "sub" / "x.json", "'{tmp}/afile' is a file, not a folder"),
    "read-only": (lambda t, d: d()["readonly"] / "x.json", "read-only file system"),
    "full-disk": (lambda t, d: d()["full"] / "x.json", "no space left on device"),
}
# A folder is expected for these: "a directory" is fine there, "a file" is the problem instead.
FOLDER_OPTIONS = ("download --cache-dir", "train --out")


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_output_path_is_checked_before_any_work(tmp_path, monkeypatch, capsys, request, command, problem):
    import mma_edu.evaluate

    make, text = PROBLEMS[problem]
    out = make(tmp_path, lambda: request.getfixturevalue("disks"))
    (tmp_path / "afile").write_text("a file")
    if command in FOLDER_OPTIONS and problem == "a-directory":
        out, text = tmp_path / "afile", "is an existing file, not a folder"
    ckpt = _model_file(tmp_path)
    for module, name in ((mma_edu.checkpoint, "load_checkpoint"), (cli, "_load_splits"),
                         (mma_edu.released, "download_checkpoint"), (mma_edu.evaluate, "robust_accuracy")):
        monkeypatch.setattr(module, name, _no_work)
    argv = [a.replace("{out}", str(out)).replace("{ckpt}", str(ckpt)) for a in COMMANDS[command]]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert text.replace("{tmp}", str(tmp_path)) in err and str(out) in err, err
    assert not (tmp_path / "afile" / "sub").exists()


def test_the_checks_name_what_is_wrong(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert check_output_file(tmp_path / "new" / "deeper" / "x.json") == tmp_path / "new" / "deeper" / "x.json"
    assert check_output_dir(tmp_path / "new" / "folder") == tmp_path / "new" / "folder"
    with pytest.raises(OutputPathError, match="is a directory"):
        check_output_file(tmp_path, "--json")
    with pytest.raises(OutputPathError, match="afile' is a file, not a folder"):
        check_output_dir(tmp_path / "afile" / "sub", "--out")
    with pytest.raises(OutputPathError, match="not a regular file"):
        check_output_file(tmp_path / "dangling", "--json")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def _toy() -> ArrayDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 4, generator=g)
    return ArrayDataset(x, (x[:, 0] > 0.5).long(), "toy")


def test_a_disk_that_fills_during_training_is_one_clear_error_and_keeps_the_last_checkpoint(tmp_path):
    """A real full disk (tmpfs) after the first epoch: the next save fails with "no space left on device"
    (not torch's "RuntimeError: [enforce fail at inline_container.cc...]"), and last.pt stays the first epoch's."""
    with tmpfs(tmp_path / "disk", "512k") as disk:
        out = disk / "run"

        def fill_after_first_epoch(event):
            if event.kind == "epoch" and event.step == 4:
                fill(disk)

        torch.manual_seed(0)
        with pytest.raises(OutputPathError) as info:
            fit(Linear(4, 2), _toy(), Standard(), steps=8, batch_size=10, eval_data=_toy(), out=out, progress=False,
                device="cpu", callbacks=[fill_after_first_epoch])
        message = str(info.value)
        assert "no space left on device" in message and "the previous file is kept" in message, message
        assert "inline_container" not in message and info.value.errno == errno.ENOSPC
        assert read_checkpoint(out / LAST)["step"] == 4  # the previous checkpoint, whole
        assert sorted(p.name for p in out.iterdir()) == [BEST, HISTORY, LAST]  # no temp file, no lock


def _inject_enospc(monkeypatch, after: int = 0):
    """The file system says ENOSPC at the (after+1)-th fsync of an atomic write and later."""
    real, calls = os.fsync, []

    def fsync(fd):
        calls.append(fd)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(mma_edu.files.os, "fsync", fsync)


def test_enospc_in_a_training_save_on_the_command_line_is_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    argv = ["train", "--preset", "mnist-standard", "--data", "offline", "--steps", "1", "--val-size", "8",
            "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    before = {name: (out / name).read_bytes() for name in (LAST, BEST, HISTORY)}
    capsys.readouterr()
    _inject_enospc(monkeypatch)
    argv[argv.index("1")] = "2"
    assert main(argv + ["--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on device" in err and "Traceback" not in err, err
    assert "mma-edu train: error: cannot write" in err and str(out) in err, err
    assert {name: (out / name).read_bytes() for name in (LAST, BEST, HISTORY)} == before
    assert not (out / LOCK).exists() and sorted(p.name for p in out.iterdir()) == sorted(before)


def _eval_argv(command: str, ckpt: Path, json_path: Path) -> list[str]:
    common = ["--n", "4", "--no-progress", "--device", "cpu", "--json", str(json_path)]
    if command == "evaluate":
        return ["evaluate", str(ckpt), "--norm", "linf", "--eps", "0.1", "--restarts", "1", "--steps", "2", *common]
    return ["margins", str(ckpt), "--norm", "linf", "--max-eps", "0.5", "--steps", "2", "--refine", "0", *common]


@pytest.mark.parametrize("command", ["evaluate", "margins"])
def test_a_disk_that_fills_during_an_evaluation_leaves_no_empty_json(tmp_path, monkeypatch, capsys, command):
    """Issue 27: a full disk left a 0-byte JSON. Real: the tmpfs fills while the evaluation runs."""
    import mma_edu.evaluate as ev

    ckpt = _model_file(tmp_path)
    name = "robust_accuracy" if command == "evaluate" else "margin_distribution"
    real = getattr(ev, name)
    with tmpfs(tmp_path / "disk", "256k") as disk:
        def filling(*args, **kwargs):
            fill(disk)  # after the check, during the work
            return real(*args, **kwargs)

        monkeypatch.setattr(ev, name, filling)
        assert main(_eval_argv(command, ckpt, disk / "res.json")) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no space left on device" in err and "res.json" in err, err
        assert sorted(p.name for p in disk.iterdir()) == [".filler"]  # no JSON, empty or not; no temp file


@pytest.mark.parametrize("command", ["evaluate", "margins"])
def test_enospc_injected_in_the_json_write_leaves_no_file(tmp_path, monkeypatch, capsys, command):
    ckpt = _model_file(tmp_path)
    _inject_enospc(monkeypatch)
    assert main(_eval_argv(command, ckpt, tmp_path / "res.json")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on device" in err, err
    assert not (tmp_path / "res.json").exists() and not list(tmp_path.glob(".res.json*"))


def test_a_closed_pipe_ends_quietly_like_a_unix_tool(tmp_path):
    """`mma-edu download checkpoint --list | head -1`: the reader has gone; no BrokenPipeError on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away before the first byte
    try:
        proc = subprocess.run([sys.executable, "-m", "mma_edu.cli", "download", "checkpoint", "--list",
                               "--cache-dir", str(tmp_path)], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == "", proc.stderr  # 128 + SIGPIPE, as the shell reports it
    piped = subprocess.run(f"{sys.executable} -m mma_edu.cli download checkpoint --list --cache-dir {tmp_path} "
                           "| head -1", shell=True, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert piped.stderr == "" and len(piped.stdout.splitlines()) == 1, piped.stderr


def test_full_and_read_only_checks_without_a_mount(tmp_path, monkeypatch):
    """The same checks where no tmpfs can be mounted: the file system's answers injected."""
    real = os.statvfs

    class Full:
        def __init__(self, st, readonly=False):
            self.f_bavail = self.f_bfree = 0 if not readonly else st.f_bfree
            self.f_frsize = st.f_frsize
            self.f_flag = st.f_flag | (os.ST_RDONLY if readonly else 0)

    monkeypatch.setattr(mma_edu.files.os, "statvfs", lambda p: Full(real(p)))
    with pytest.raises(OutputPathError, match="no space left on device") as info:
        check_output_file(tmp_path / "x.json", "--json")
    assert info.value.errno == errno.ENOSPC and "--json" in str(info.value)
    monkeypatch.setattr(mma_edu.files.os, "statvfs", lambda p: Full(real(p), readonly=True))
    monkeypatch.setattr(mma_edu.files.os, "access", lambda p, mode: False)
    with pytest.raises(OutputPathError, match="read-only file system"):
        check_output_dir(tmp_path / "cache", "--cache-dir")
