"""Files written whole or not at all: :func:`atomic_write` and :func:`write_json`.

Every file the package writes — checkpoints, histories, manifests, reports — goes
to a temporary file in the same folder, is flushed to disk and only then renamed
over its name. A crash or kill -9 mid-write leaves the previous file intact
(and a ``.NAME.*.tmp`` leftover that the run folder removes at its next start);
SIGINT and SIGTERM arriving meanwhile wait until the file is in place
(:func:`mma_edu.interrupts.deferred_signals`).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from .interrupts import deferred_signals


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(binary file)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with deferred_signals():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def write_json(path: str | os.PathLike, obj: Any, indent: int = 1) -> Path:
    """``obj`` as JSON (a final newline), written atomically."""
    text = json.dumps(obj, indent=indent) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode()))
