"""The mark step: a course notebook, as written today, turned into an nbgrader source notebook.

Today's convention (explained in notebook 1): after ``## Exercises``, one *exercise cell* holds the answers as
``None`` (or functions returning ``None``) and calls ``exercises.check_...``; cells tagged ``solution`` (prose
and code) follow. :func:`mark_notebook` rewrites that tail into nbgrader's cells:

* one **answer cell** (nbgrader "autograded answer"): the exercise cell without its checks, then every solution
  code cell inside ``### BEGIN SOLUTION`` / ``### END SOLUTION``. Run top to bottom, the solutions replace the
  ``None`` answers (a learner alone sees them work); the student copy keeps only the stubs.
* one **graded test cell** per ``check_...`` (locked, with the points of :data:`~mma_edu.grading.table.EXERCISES`):
  the exercise cell's own check call wrapped in ``exercises.graded(...)``, so a pending answer scores 0 and a
  wrong one fails with the helper's message; then the exercise's randomized case between
  ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``.
* one **manual-graded cell** per written exercise, its rubric inside the solution region (instructor's copy).
* the solution prose stays, still tagged ``solution``: the student copy drops it
  (:class:`~mma_edu.grading.nbgrader_plugin.DropSolutionCells`).

Marking is idempotent: a notebook that already has nbgrader cells only gets its points refreshed from the
table. It needs no nbgrader (plain JSON in, plain JSON out).
"""

from __future__ import annotations

import ast
import copy
import re
from typing import Any

from .table import EXERCISES, Autograded, Written

SOLUTION_TAG = "solution"
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CHECK = re.compile(r"^check_\w+$")


class MarkError(ValueError):
    """The notebook does not follow the exercise convention the mark step reads (the message says where)."""


def _src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags") or []


def _lines(text: str) -> list[str]:
    """nbformat's source as a list of lines, each but the last ending in a newline."""
    return text.splitlines(keepends=True)


def is_marked(nb: dict) -> bool:
    return any("nbgrader" in c.get("metadata", {}) for c in nb["cells"])


def _nbgrader(grade_id: str, *, grade: bool, solution: bool, locked: bool, points: int | None = None) -> dict:
    meta: dict[str, Any] = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
                            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _check_calls(stmt: ast.stmt) -> list[ast.Call]:
    """The ``exercises.check_...(...)`` calls inside one statement."""
    return [n for n in ast.walk(stmt) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "exercises" and CHECK.match(n.func.attr)]


def split_checks(code: str, where: str) -> tuple[str, list[tuple[str, str]]]:
    """Split a code cell into (the code without its check statements, [(check name, graded statement)]).

    A check statement is a top-level statement holding an ``exercises.check_...`` call (a bare call, or a
    ``for`` loop over norms around one); in the graded statement each such call is wrapped in
    ``exercises.graded(...)``.
    """
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        raise MarkError(f"{where}: the cell is not valid Python ({err.msg}, line {err.lineno})") from None
    lines = code.splitlines()
    drop: set[int] = set()
    checks: list[tuple[str, str]] = []
    for stmt in tree.body:
        calls = _check_calls(stmt)
        if not calls:
            continue
        names = {c.func.attr for c in calls}
        if len(names) != 1:
            raise MarkError(f"{where}: one statement calls several checks {sorted(names)}; give each its own")
        first, last = stmt.lineno - 1, stmt.end_lineno - 1
        block = [line.encode() for line in lines[first:last + 1]]
        # ast offsets are in UTF-8 bytes; wrap from the last call backwards so earlier offsets stay valid.
        for call in sorted(calls, key=lambda c: (c.end_lineno, c.end_col_offset), reverse=True):
            end_row, end_col = call.end_lineno - 1 - first, call.end_col_offset
            row, col = call.lineno - 1 - first, call.col_offset
            block[end_row] = block[end_row][:end_col] + b")" + block[end_row][end_col:]
            block[row] = block[row][:col] + b"exercises.graded(" + block[row][col:]
        checks.append((names.pop(), "\n".join(b.decode() for b in block)))
        drop.update(range(first, last + 1))
    kept = [line for i, line in enumerate(lines) if i not in drop]
    text = re.sub(r"\n{3,}", "\n\n\n", "\n".join(kept)).strip("\n")
    return text, checks


def _test_cell(number: str, ex: Autograded, visible: list[str]) -> dict:
    head = f"# Graded test ({ex.level}, {ex.total} points): {ex.what}. Do not edit this cell."
    body = [head, *visible]
    if ex.hidden:
        body += [BEGIN_HIDDEN, ex.hidden, END_HIDDEN]
    grade_id = f"{number}-{ex.check.replace('_', '-')}"
    return {"cell_type": "code", "execution_count": None, "id": grade_id, "outputs": [],
            "metadata": {"nbgrader": _nbgrader(grade_id, grade=True, solution=False, locked=True,
                                               points=ex.total)},
            "source": _lines("\n".join(body))}


def _written_cell(w: Written) -> dict:
    text = (f"**{w.prompt}** *({w.level}, {w.points} points, graded by hand; write your answer in this cell.)*\n\n"
            f"{BEGIN_SOLUTION}\n**Rubric (instructor's copy).** {w.rubric}\n{END_SOLUTION}")
    return {"cell_type": "markdown", "id": w.key,
            "metadata": {"nbgrader": _nbgrader(w.key, grade=True, solution=True, locked=False, points=w.points)},
            "source": _lines(text)}


def mark_notebook(nb: dict, number: str) -> dict:
    """The nbgrader source version of course notebook ``number`` ("01" ... "08"), nbformat 4 JSON.

    Raises :class:`MarkError` naming what does not match the convention or the table (a check the table does
    not grade, a graded check the notebook does not call, prose between the exercise and solution cells).
    """
    if number not in EXERCISES:
        raise MarkError(f"number must be one of {sorted(EXERCISES)} (a notebook of the course), got {number!r}")
    table = EXERCISES[number]
    nb = copy.deepcopy(nb)
    if is_marked(nb):
        return _refresh_points(nb, number)
    cells = nb["cells"]
    heads = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and _src(c).lstrip().startswith("## Exercises")]
    if len(heads) != 1:
        raise MarkError(f"notebook {number}: expected one '## Exercises' markdown cell, found {len(heads)}")
    stub_i = next((i for i in range(heads[0] + 1, len(cells)) if cells[i]["cell_type"] == "code"
                   and SOLUTION_TAG not in _tags(cells[i]) and "exercises.check_" in _src(cells[i])), None)
    if stub_i is None:
        raise MarkError(f"notebook {number}: no exercise cell (untagged code calling exercises.check_...) "
                        "after '## Exercises'")
    tail = list(range(stub_i + 1, len(cells)))
    solutions = [i for i in tail if SOLUTION_TAG in _tags(cells[i])]
    if solutions and solutions != list(range(stub_i + 1, solutions[-1] + 1)):
        raise MarkError(f"notebook {number}: the cells tagged solution must follow the exercise cell together")
    stub, checks = split_checks(_src(cells[stub_i]), f"notebook {number}, exercise cell")
    by_name: dict[str, list[str]] = {}
    for name, stmt in checks:
        by_name.setdefault(name, []).append(stmt)
    graded = {e.check for e in table.autograded}
    if set(by_name) != graded:
        raise MarkError(f"notebook {number}: the exercise cell calls {sorted(by_name)}, the grading table "
                        f"(mma_edu/grading/table.py) grades {sorted(graded)}")
    solution_code = []
    for i in solutions:
        if cells[i]["cell_type"] != "code":
            continue
        code, solved = split_checks(_src(cells[i]), f"notebook {number}, solution cell {cells[i].get('id')}")
        unknown = {name for name, _ in solved} - graded
        if unknown:
            raise MarkError(f"notebook {number}: a solution cell calls {sorted(unknown)}, which the exercise "
                            "cell does not pose")
        if code:
            solution_code.append(code)
    answer = dict(cells[stub_i])
    answer["source"] = _lines("\n".join([stub, "", BEGIN_SOLUTION, "\n\n\n".join(solution_code), END_SOLUTION]))
    answer["metadata"] = {**{k: v for k, v in answer.get("metadata", {}).items() if k != "tags"},
                          "nbgrader": _nbgrader(f"{number}-answers", grade=False, solution=True, locked=False)}
    answer["outputs"], answer["execution_count"] = [], None
    tests = [_test_cell(number, e, by_name[e.check]) for e in table.autograded]
    written = [_written_cell(w) for w in table.written]
    prose = [cells[i] for i in solutions if cells[i]["cell_type"] == "markdown"]
    rest = [cells[i] for i in tail if i not in solutions]
    nb["cells"] = cells[:stub_i] + [answer, *tests, *written, *prose] + rest
    return nb


def _refresh_points(nb: dict, number: str) -> dict:
    """An already marked notebook with the table's points (so re-marking after a table edit updates them)."""
    points = {f"{number}-{e.check.replace('_', '-')}": e.total for e in EXERCISES[number].autograded}
    points |= {w.key: w.points for w in EXERCISES[number].written}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta and meta.get("grade") and meta.get("grade_id") in points:
            meta["points"] = points[meta["grade_id"]]
    return nb


def set_profile(nb: dict, profile: str) -> dict:
    """A copy whose parameters cell says ``profile = "<profile>"`` (e.g. smoke, for quick autograding)."""
    from ..course.settings import PROFILES

    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    nb = copy.deepcopy(nb)
    cell = next((c for c in nb["cells"] if "parameters" in _tags(c)), None)
    if cell is None or not re.search(r'^profile = "\w+"', _src(cell), flags=re.M):
        raise MarkError("the notebook has no parameters cell setting profile = \"...\"")
    cell["source"] = _lines(re.sub(r'^profile = "\w+"', f'profile = "{profile}"', _src(cell), count=1, flags=re.M))
    return nb
