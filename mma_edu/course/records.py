"""Course records: headline numbers a notebook publishes and a test reads back from the executed notebook.

In a notebook::

    from mma_edu import course
    course.record("mma.clean_acc", acc)                  # shows: record mma.clean_acc = 0.971
    course.check(acc_mma > acc_pgd, "MMA keeps more clean accuracy than PGD-AT at eps 0.4")

In a test, after papermill ran the notebook::

    from mma_edu.course import read_records
    rec = read_records("build/05_mnist_mma.ipynb", require=["mma.clean_acc"])
    assert rec["mma.clean_acc"] >= 0.9

Each record is a ``display_data`` output whose bundle holds the JSON payload
``{"key": ..., "value": ...}`` under the mime type :data:`MIME` (nbformat
keeps ``application/...+json`` data as JSON, so the value survives papermill
and ``nbformat`` unchanged) plus a one-line ``text/plain`` for people.
Outside a notebook nothing is displayed; :func:`records` holds what this
process recorded either way.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from pathlib import Path
from typing import Any, Iterable

MIME = "application/vnd.mma-edu.record+json"

_RECORDS: dict[str, Any] = {}
_DRY_RUN = False  # a dry run (mma_edu.dryrun) shows and records claims but does not judge them


def set_dry_run(on: bool) -> None:
    """Claims are shown and recorded but never raise while ``on`` (set by ``course.settings(..., dry_run=...)``):
    a model trained for two steps of a dry run is not expected to hold what the full run shows."""
    global _DRY_RUN
    _DRY_RUN = bool(on)


def _plain(value: Any, key: str) -> Any:
    """``value`` as plain JSON data: numbers, strings, bools, None, lists and str-keyed dicts of them.

    0-d tensors / numpy scalars become Python numbers, tensors and arrays become lists.
    """
    if hasattr(value, "tolist") and callable(value.tolist):  # torch tensors, numpy arrays and scalars
        value = value.tolist()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"value of record {key!r} must be finite (JSON has no nan/inf), got {value}")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, key) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"value of record {key!r}: dict keys must be strings, got {list(value)[:5]!r}")
        return {k: _plain(v, key) for k, v in value.items()}
    raise ValueError(f"value of record {key!r} must be JSON-like (numbers, strings, lists, dicts, tensors), "
                     f"got {type(value).__name__}")


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _show(text: str, payload: dict) -> None:
    if _in_notebook():
        from IPython.display import display

        display({MIME: payload, "text/plain": text}, raw=True)


def record(key: str, value: Any) -> None:
    """Publish a headline number (or list/dict of them) under ``key``.

    In a notebook this adds an output carrying ``{"key": key, "value": value}``
    (mime type :data:`MIME`), which :func:`read_records` finds in the executed
    notebook. Recording a key again overrides it (the last one counts).
    :func:`records` shows the stored plain value. Returns None, so a cell
    ending in ``record(...)`` shows the record once.
    """
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"key must be a non-empty string, got {key!r}")
    plain = _plain(value, key)
    _RECORDS[key] = plain
    shown = f"{plain:.4g}" if isinstance(plain, float) else json.dumps(plain)
    _show(f"record {key} = {shown}", {"key": key, "value": plain})


def check(condition: Any, message: str, *, key: str | None = None, strict: bool = True) -> None:
    """State a claim: record whether it held (under ``key``, default ``"check: " + message``) and show it.

    With ``strict`` (default) a claim that does not hold raises AssertionError
    naming it; ``strict=False`` only records it — for claims the course states
    honestly as "does not hold on this budget" (:func:`records` has the outcome).
    In a dry run (:func:`set_dry_run`) nothing raises and the line says "not judged".
    """
    if not isinstance(message, str) or not message.strip():
        raise ValueError(f"message must be a non-empty string, got {message!r}")
    held = bool(condition)
    name = key if key is not None else f"check: {message}"
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"key must be a non-empty string or None, got {key!r}")
    _RECORDS[name] = held
    prefix = "(dry run, not judged) " if _DRY_RUN else ""
    _show(prefix + ("holds: " if held else "does NOT hold: ") + message, {"key": name, "value": held})
    if strict and not held and not _DRY_RUN:
        raise AssertionError(f"claim does not hold: {message}")


def records() -> dict[str, Any]:
    """What this process recorded so far (a copy)."""
    return dict(_RECORDS)


def _payloads(nb: dict) -> Iterable[dict]:
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") not in ("display_data", "execute_result", "update_display_data"):
                continue
            data = (out.get("data") or {}).get(MIME)
            if data is None:
                continue
            if isinstance(data, str):  # some writers store JSON data as text
                data = json.loads(data)
            if isinstance(data, dict) and "key" in data:
                yield data


def read_records(executed_notebook_path: str | os.PathLike, require: Iterable[str] = ()) -> dict[str, Any]:
    """Every record of an executed notebook (e.g. papermill's output), in cell order; the last of a key wins.

    ``require`` lists keys that must be there: a KeyError names the missing
    ones (and what is present), e.g. when the notebook stopped early.
    """
    path = Path(executed_notebook_path)
    if not path.is_file():
        raise FileNotFoundError(f"executed notebook not found: {path}")
    with open(path, encoding="utf-8") as f:
        try:
            nb = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not a notebook (invalid JSON: {err})") from err
    out = {p["key"]: p.get("value") for p in _payloads(nb)}
    missing = [k for k in require if k not in out]
    if missing:
        raise KeyError(f"{path.name} has no record of {missing}; it recorded {sorted(out)}")
    return out
