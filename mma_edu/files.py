"""Files written whole or not at all, and output paths checked before the work that fills them.

Every file the package writes — checkpoints, histories, manifests, reports — goes
to a temporary file in the same folder, is flushed to disk and only then renamed
over its name (:func:`atomic_write`). A crash or kill -9 mid-write leaves the
previous file intact (and a ``.NAME.*.tmp`` leftover that the run folder removes
at its next start); SIGINT and SIGTERM arriving meanwhile wait until the file is
in place (:func:`mma_edu.interrupts.deferred_signals`). A write that fails (a
full disk, a read-only mount) raises :class:`OutputPathError` naming the file and
the reason, and leaves the previous file as it was.

:func:`check_output_file` and :func:`check_output_dir` are the one place where an
output path given by the user (``--json``, ``--markdown``, ``--plot``, ``--out``,
``--cache-dir``) is checked before any work starts: a folder where a file is
expected, a file where a folder is expected (also on the way: ``afile/sub``), no
write permission, a read-only file system, a full disk.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from .interrupts import deferred_signals

# An output folder with less free space than this counts as full (a report or a small checkpoint needs more).
MIN_FREE_BYTES = 64 * 1024


class OutputPathError(OSError):
    """An output path cannot be written: the message names the path and the problem (one line)."""

    def __init__(self, message: str, errno_: int | None = None):
        super().__init__(message)
        self.message, self.errno = message, errno_

    def __str__(self) -> str:
        return self.message


def _problem(err: OSError) -> str:
    """A short reason for an OSError ("no space left on device", "read-only file system", ...)."""
    if err.errno is not None:
        return os.strerror(err.errno).lower()
    return str(err) or type(err).__name__


def _first_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (lstat: a dangling link counts as existing)."""
    p = path
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _check_folder_usable(folder: Path, what: str, target: Path) -> None:
    """``folder`` exists: it must be a folder we may write into, on a writable file system with free space."""
    if not folder.is_dir():
        raise OutputPathError(f"{what} {str(target)!r}: {str(folder)!r} is a file, not a folder", errno.ENOTDIR)
    if not os.access(folder, os.W_OK | os.X_OK):
        try:  # os.access does not say why: a read-only mount and a missing permission read differently
            readonly = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        except OSError:
            readonly = False
        why = "it is on a read-only file system" if readonly else "no write permission"
        raise OutputPathError(f"{what} {str(target)!r}: cannot write into {str(folder)!r} ({why})",
                              errno.EROFS if readonly else errno.EACCES)
    try:
        st = os.statvfs(folder)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize if os.geteuid() != 0 else st.f_bfree * st.f_frsize
    if free < MIN_FREE_BYTES:
        raise OutputPathError(f"{what} {str(target)!r}: no space left on device ({free:,} bytes free in "
                              f"{str(folder)!r})", errno.ENOSPC)


def check_output_file(path: str | os.PathLike, what: str = "output") -> Path:
    """Fail now, with one line naming ``path`` (``what``: the option, e.g. "--json"), if a file cannot be
    written there later: it is a folder, a folder on its way is a file, no permission, read-only, full."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputPathError(f"{what} {str(path)!r} is a directory; give a file name (e.g. {path / 'out'})",
                              errno.EISDIR)
    if os.path.lexists(path) and not path.is_file():
        raise OutputPathError(f"{what} {str(path)!r} exists and is not a regular file", errno.EEXIST)
    _check_folder_usable(_first_existing(path.parent), what, path)
    return path


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Fail now, with one line naming ``path``, if a folder cannot be made or written there later."""
    path = Path(path).expanduser()
    if os.path.lexists(path) and not path.is_dir():
        raise OutputPathError(f"{what} {str(path)!r} is an existing file, not a folder", errno.ENOTDIR)
    _check_folder_usable(_first_existing(path), what, path)
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(binary file)`` on a temporary file beside ``path``, then rename it over ``path``.

    Raises :class:`OutputPathError` ("cannot write PATH: no space left on device; the previous file is
    kept") when the file system refuses the write; the temporary file is removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"cannot write {path}: cannot create its folder {path.parent} "
                              f"({_problem(err)})", err.errno) from err
    with deferred_signals():
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as err:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            if isinstance(err, OutputPathError):
                raise
            kept = "; the previous file is kept" if path.exists() else ""
            raise OutputPathError(f"cannot write {path}: {_problem(err)}{kept}", err.errno) from err
        except BaseException:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """``data`` written atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(data))


def write_serialized(path: str | os.PathLike, save: Callable[[IO[bytes]], Any]) -> Path:
    """``save(buffer)`` into memory first, then the bytes atomically: a failing disk then raises an
    OSError from the write itself (as :class:`OutputPathError`), not from inside the serializer
    (torch.save reports a full disk as ``RuntimeError: [enforce fail at inline_container.cc...]``)."""
    with deferred_signals():  # a signal during serialization waits for the file too
        buf = io.BytesIO()
        save(buf)
        return atomic_write(path, lambda f: f.write(buf.getbuffer()))


def write_json(path: str | os.PathLike, obj: Any, indent: int = 1) -> Path:
    """``obj`` as JSON (a final newline), written atomically."""
    text = json.dumps(obj, indent=indent) + "\n"
    return write_bytes(path, text.encode())
