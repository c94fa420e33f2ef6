"""The student copy of the course: every notebook without its solution cells.

``python -m mma_edu.course.student OUT`` (``make student``) writes ``OUT/NN_*.ipynb``: each cell tagged
``solution`` is left out, and where a run of them stood, one note says so. Outputs are stripped. The exercise
cells stay: their answers are ``None`` and their ``check_...`` helpers print "not attempted yet", so the copy
still runs top to bottom (``tests/test_student.py`` runs it in smoke mode).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..files import atomic_write

SOLUTION_TAG = "solution"
NOTE = ("*The solutions are not part of this copy of the course. Ask your instructor, or compare with the "
        "published course once you have tried.*")
# The course's notebooks, next to the package in a source checkout.
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "notebooks"


def is_solution(cell: dict) -> bool:
    return SOLUTION_TAG in (cell.get("metadata", {}).get("tags") or [])


def student_notebook(nb: dict) -> dict:
    """A copy of the notebook (nbformat 4 JSON) without solution cells and without outputs."""
    cells = []
    for cell in nb["cells"]:
        if is_solution(cell):
            if not cells or cells[-1].get("id") != "solutions-removed":
                cells.append({"cell_type": "markdown", "id": "solutions-removed", "metadata": {}, "source": [NOTE]})
            continue
        cell = dict(cell)
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        cells.append(cell)
    ids = [c.get("id") for c in cells]
    if len(set(ids)) != len(ids):  # more than one removed run: number the notes (cell ids must be unique)
        n = 0
        for c in cells:
            if c.get("id") == "solutions-removed":
                n += 1
                c["id"] = f"solutions-removed-{n}"
    return {**nb, "cells": cells}


def write_student_copy(out: str | Path, source: str | Path = DEFAULT_SOURCE) -> list[Path]:
    """Write the student copy of every ``NN_*.ipynb`` in ``source`` into ``out``; returns the paths written."""
    source, out = Path(source), Path(out)
    notebooks = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"source must be a folder of the course's notebooks (NN_*.ipynb), "
                                f"found none in {source}")
    if out.resolve() == source.resolve():
        raise ValueError(f"out must not be the source folder {source}: the copy would overwrite the solutions")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = student_notebook(json.loads(path.read_text()))
        target = out / path.name
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        atomic_write(target, lambda f, text=text: f.write(text.encode()))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mma_edu.course.student",
                                     description="Write the course without its solution cells.")
    parser.add_argument("out", help="folder to write the student notebooks into (e.g. build/student)")
    parser.add_argument("--source", default=str(DEFAULT_SOURCE), help="the course's notebooks (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        written = write_student_copy(args.out, args.source)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    print(f"{len(written)} notebooks without solutions in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
