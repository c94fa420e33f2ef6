"""Small real file systems for the fault tests: a tmpfs that is full, or read-only (needs root and mount).

Where the machine cannot mount one (not root, a container without the capability), the test is skipped with
the reason; the same error paths are also tested by injecting ``OSError(ENOSPC)``.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def tmpfs(where: Path, size: str = "256k") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` mounted at ``where`` (skips the test where that is impossible)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real full or read-only disk needs root and the mount command (for a tmpfs)")
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def make_readonly(where: Path) -> None:
    """Remount the tmpfs at ``where`` read-only."""
    proc = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"cannot remount a tmpfs read-only here: {proc.stderr.strip()}")


def fill(folder: Path) -> None:
    """Write a filler file into ``folder`` until its file system is full (ENOSPC)."""
    fd = os.open(folder / ".filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0"):  # down to the last byte
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC, err  # a full disk, and nothing else
    finally:
        os.close(fd)
