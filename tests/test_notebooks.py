"""The course: every notebook runs top to bottom in smoke mode, in a fresh kernel, through papermill."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
KERNEL = "mma-edu"
# Records a notebook must publish when it runs (by notebook number).
REQUIRED_RECORDS = {
    "05": ["05.results", "05.own_median_memory"],
    "06": ["06.data", "06.clean_acc", "06.median_margin"],
    "07": ["07.restarts", "07.table"],
}


def test_the_course_has_its_eight_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert len(names) == 8 and names[0] == "01_margins.ipynb" and names[-1] == "08_exact_margins.ipynb", names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean_and_well_formed(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip the outputs"
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "first code cell must be tagged parameters"
    assert 'profile = "laptop"' in "".join(code[0]["source"])
    first = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown" and "Learning objectives" in first
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "## Exercises" in text
    # The claims it teaches are checked outside the solutions: assert, or course.check (which also records them).
    assert any(("assert " in "".join(c["source"]) or "course.check(" in "".join(c["source"]))
               for c in code if "solution" not in c["metadata"].get("tags", []))
    assert nb["metadata"]["kernelspec"]["name"] == KERNEL


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags") or []


def _src(cell: dict) -> str:
    return "".join(cell["source"])


CHECK_CALL = re.compile(r"exercises\.(check_\w+)\(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_teaching_conventions(path):
    """Prerequisites and objectives first; exercises at three levels as nbgrader cells (mma_edu/grading): one answer
    cell whose stubs are followed by the reference solution, one locked graded test cell per checked exercise
    with the grading table's points (a hidden randomized case in the core ones), a manual-graded written answer
    with its rubric; a summary with what comes next at the end."""
    from mma_edu.course import exercises
    from mma_edu.grading.mark import BEGIN_HIDDEN, BEGIN_SOLUTION, END_SOLUTION
    from mma_edu.grading.table import EXERCISES

    cells = json.loads(path.read_text())["cells"]
    first = _src(cells[0])
    assert "Prerequisites" in first and "Learning objectives" in first, "open with prerequisites and objectives"
    heads = {i: _src(c) for i, c in enumerate(cells) if c["cell_type"] == "markdown"}
    ex = [i for i, t in heads.items() if t.lstrip().startswith("## Exercises")]
    summary = [i for i, t in heads.items() if t.lstrip().startswith("## Summary")]
    assert len(ex) == 1 and len(summary) == 1, "one '## Exercises' and one '## Summary' markdown cell"
    assert summary[0] > ex[0], "the summary comes after the exercises, at the end"
    assert "next" in heads[summary[0]].lower(), "the summary says what comes next"
    levels = heads[ex[0]].lower()
    assert all(word in levels for word in ("compute", "implement", "investigate")), "exercises at three levels"
    graded = {c["metadata"]["nbgrader"]["grade_id"]: c for c in cells if "nbgrader" in c.get("metadata", {})}
    assert all(ex[0] < cells.index(c) < summary[0] for c in graded.values()), "nbgrader cells between the two"
    answers = [c for c in graded.values() if c["metadata"]["nbgrader"]["solution"] and c["cell_type"] == "code"]
    assert len(answers) == 1, "one answer cell (nbgrader: autograded answer)"
    body = _src(answers[0])
    stub, _, rest = body.partition(BEGIN_SOLUTION)
    solution = rest.partition(END_SOLUTION)[0]
    assert "None" in stub and solution.strip(), "the answer cell holds stubs, then the reference solution"
    assert not CHECK_CALL.findall(body), "the checks run in the graded test cells, not in the answer cell"
    table = EXERCISES[path.name[:2]]
    tests = {c["metadata"]["nbgrader"]["grade_id"]: c for c in graded.values()
             if c["cell_type"] == "code" and c["metadata"]["nbgrader"]["grade"]}
    assert len(tests) >= 2 and len(tests) == len(table.autograded)
    for e in table.autograded:
        cell = tests[f"{path.name[:2]}-{e.check.replace('_', '-')}"]
        meta = cell["metadata"]["nbgrader"]
        assert meta["locked"] and meta["points"] == e.total, (e.check, meta)
        assert CHECK_CALL.findall(_src(cell))[0] == e.check and "exercises.graded(" in _src(cell)
        assert (BEGIN_HIDDEN in _src(cell)) == bool(e.hidden), e.check
        assert callable(getattr(exercises, e.check))
    for w in table.written:
        meta = graded[w.key]["metadata"]["nbgrader"]
        assert graded[w.key]["cell_type"] == "markdown" and meta["grade"] and meta["solution"]
        assert meta["points"] == w.points and "Rubric" in _src(graded[w.key]).partition(BEGIN_SOLUTION)[2]
    prose = [c for c in cells if "solution" in _tags(c)]
    assert prose and all(c["cell_type"] == "markdown" for c in prose), "solution prose, tagged (the student copy drops it)"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec named like the project's, running this very interpreter, found first on JUPYTER_PATH."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("kernel")
    install(kernel_name=KERNEL, display_name="mma-edu (tests)", prefix=str(prefix))
    spec = prefix / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json"
    assert json.loads(spec.read_text())["argv"][0] == sys.executable
    return str(prefix / "share" / "jupyter")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_smoke_mode(path, tmp_path, kernel_env, monkeypatch):
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    monkeypatch.setenv("JUPYTER_PATH", kernel_env)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / path.name
    try:
        pm.execute_notebook(str(path), str(out), parameters={"profile": "smoke"}, kernel_name=KERNEL,
                            cwd=str(path.parent), progress_bar=False, execution_timeout=300)
    except PapermillExecutionError as err:
        pytest.fail(f"{path.name}: cell {err.exec_count} failed:\n{err.ename}: {err.evalue}\n"
                    + "\n".join(err.traceback[-6:]), pytrace=False)
    executed = json.loads(out.read_text())
    # The reference solutions ran their exercise checks, and passed them (a wrong one raises ExerciseError).
    printed = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", [])
                      if o.get("output_type") == "stream")
    assert printed.count("correct: ") >= 2, "the solutions' exercise checks did not run"
    # The headline numbers each notebook publishes (mma_edu.course.record) are there for the tests to read.
    from mma_edu.course import read_records

    records = read_records(out, require=REQUIRED_RECORDS.get(path.name[:2], ()))
    if path.name.startswith("05"):
        # The zoo's numbers as the notebook measured them: MMA's margins grew, every model trained.
        res = records["05.results"]
        assert res["mma-0.45"]["median_margin"] >= 1.5 * res["standard"]["median_margin"], res
        assert min(r["clean"] for r in res.values()) >= 0.9, res
    # Every widget output also carries a static picture, so the headless run shows something; and no
    # JavaScript bundle rides along (issue 13: executed notebooks stay under 2 MB).
    for cell in executed["cells"]:
        for o in cell.get("outputs", []):
            data = o.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                assert "image/png" in data, "".join(cell["source"])[:80]
            if "application/vnd.plotly.v1+json" in data:  # plotly figures (mma_edu.plots.Interactive): data only,
                assert "image/png" in data, "".join(cell["source"])[:80]  # with the matplotlib twin's picture
                assert "text/html" not in data and len(json.dumps(data)) < 400_000, "".join(cell["source"])[:80]
            if "image/png" in data:  # palette PNGs (course.settings -> plots.compact_inline): colour type 3
                assert base64.b64decode(data["image/png"])[25] == 3, "".join(cell["source"])[:80]
    assert out.stat().st_size <= 2_000_000, f"{path.name}: executed copy is {out.stat().st_size:,} bytes"


# The student copy (make student) is made by nbgrader: tests/grading/test_build.py (make test-grading).
