"""The run folder (``fit(out=...)``, ``mma-edu train --out``): checked before training, locked while training.

- :func:`check_run_folder` — before any step: ``out`` must be a folder we can
  write; a folder that already holds a run needs ``resume`` (continue it) or
  ``overwrite`` (start afresh); ``resume`` needs ``last.pt``.
- :class:`RunLock` — a ``.lock`` file holding the owner's pid and host, so two
  trainings never write into one folder at once. A lock whose process is gone
  (a kill -9, a crash) is stale and taken over.
- :func:`remove_leftovers` — temporary files of writes that a kill -9 cut
  short (``.last.pt.*.tmp``, ``.history.json.*``) are removed at the next start.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from ..files import OutputPathError, check_output_dir
from ..interrupts import deferred_signals

LAST = "last.pt"
BEST = "best.pt"
HISTORY = "history.json"
LOCK = ".lock"
RUN_FILES = (LAST, BEST, HISTORY)


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (wrong kind of path, a run already there, locked...)."""


def check_run_folder(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Fail at once, with one line, if training into ``out`` would fail or clobber a run."""
    if resume and overwrite:
        raise RunFolderError("resume and overwrite (--resume and --force) exclude each other: pick one")
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"out {str(out)!r} is an existing file, not a folder: choose another --out")
    try:  # a file on the way (afile/sub), no permission, a read-only mount, a full disk
        check_output_dir(out, "out")
    except OutputPathError as err:
        raise RunFolderError(str(err)) from None
    for name in (*RUN_FILES, LOCK):
        if os.path.lexists(out / name) and not (out / name).is_file():
            raise RunFolderError(f"{str(out / name)!r} is not a regular file (a directory?); the run folder needs "
                                 f"that name for its {'lock' if name == LOCK else 'file'}: remove it")
    has_run = out.is_dir() and any((out / f).exists() for f in RUN_FILES)
    if resume and not (out / LAST).exists():
        what = "holds no last.pt" if out.is_dir() else "does not exist"
        raise RunFolderError(f"cannot resume: {str(out)!r} {what}; start a new run without --resume (resume=True)")
    if has_run and not resume and not overwrite:
        raise RunFolderError(
            f"out {str(out)!r} already holds a run ({', '.join(f for f in RUN_FILES if (out / f).exists())}): "
            "continue it with --resume (resume=True) or start afresh with --force (overwrite=True)")


def remove_leftovers(out: Path) -> list[Path]:
    """Delete temporary files left by interrupted atomic writes; returns what was removed."""
    removed = []
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return True  # unknown owner: assume it is alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Exclusive use of a run folder by one process (``with RunLock(out): ...``).

    Nested use in one process is allowed: ``mma-edu train`` takes the lock before it loads any data, and
    ``fit`` inside it finds the lock already held by this process (and leaves it to the outer holder).
    """

    _held_here: set[str] = set()  # lock paths this process holds

    def __init__(self, out: Path):
        self.path = Path(out) / LOCK
        self.held = False

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        key = os.path.abspath(self.path)
        if key in RunLock._held_here and self.path.is_file():
            return  # held by an outer RunLock of this process; it releases the lock
        if os.path.lexists(self.path) and not self.path.is_file():
            raise RunFolderError(f"the lock {str(self.path)!r} is not a regular file (a directory?): remove it")
        for _ in range(2):  # a second try after removing a stale lock
            try:
                with deferred_signals():  # never leave an empty lock behind
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                    try:
                        with os.fdopen(fd, "w") as f:
                            json.dump(me, f)
                    except OSError as err:  # a full disk: no half-written lock
                        self.path.unlink(missing_ok=True)
                        raise RunFolderError(f"cannot take the lock {str(self.path)!r}: "
                                             f"{os.strerror(err.errno).lower() if err.errno else err}") from None
                    self.held = True
                    RunLock._held_here.add(key)
                return
            except FileExistsError:
                owner = self._owner()
                if owner is None and self._young():
                    owner = {"pid": "?", "host": "?"}  # just created, not yet written: held
                if owner is not None and (owner.get("host") != me["host"] or _alive(owner.get("pid"))):
                    raise RunFolderError(
                        f"{str(self.path.parent)!r} is in use by another training (pid {owner.get('pid')} on "
                        f"{owner.get('host')}); wait for it, or delete {self.path} if that process is gone") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
        raise RunFolderError(f"could not take the lock {self.path}")

    def _owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text())
            return owner if isinstance(owner, dict) and "pid" in owner else None
        except (OSError, ValueError):
            return None  # unreadable: treat as stale

    def _young(self, seconds: float = 10.0) -> bool:
        import time

        try:
            return time.time() - self.path.stat().st_mtime < seconds
        except OSError:
            return False

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            RunLock._held_here.discard(os.path.abspath(self.path))
            self.held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
