"""The whole nbgrader loop, offline: generate the assignments, submit, autograde, read the grades and feedback.

One notebook of each kind — theory (01), training (03), evaluation (07) — in the smoke profile, three
submissions each: the reference solutions (full autograded marks), the untouched student copy (0, no crash)
and an answer with a typical mistake (partial marks; the feedback HTML names the mistake with the check's
message). About 9 notebook runs: `make test-grading` (also in .ci/run), not `make test`.
"""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nbgrader", reason="the grader extra (pip install 'mma-edu[grader]', make assignments)")
# nbgrader's gradebook warns about its own session handling when grades are read back; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Object of type <Submitted")

ROOT = Path(__file__).resolve().parents[2]
KERNEL = "mma-edu"
# (assignment, the reference line a typical mistake changes, the mistaken line, the hint the feedback must show,
#  the grade_id that fails)
CASES = {
    "01_margins": ("d_2, d_inf = 1 / math.sqrt(2), 0.5", "d_2, d_inf = 0.5, 0.5",
                   "divided by the ℓ1 norm of w_y − w_j", "01-check-hand-margins"),
    "03_toy_decision_boundaries": ("loss_mma = (ce_adv * active).sum() / len(ce_adv)",
                                   "loss_mma = (ce_adv * active).sum() / active.sum()",
                                   "L_MMA divides by the whole batch size n", "03-check-mma-loss"),
    "07_evaluation": ("survivors &= correct[:, k].all(dim=0)", "survivors = clean & correct[:, k].all(dim=0)",
                      "an example broken at a smaller ε stays broken", "07-check-robust-curve"),
}
STUDENTS = ("reference", "untouched", "mistake")


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec named like the project's, running this very interpreter."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("kernel")
    install(kernel_name=KERNEL, display_name="mma-edu (tests)", prefix=str(prefix))
    return str(prefix / "share" / "jupyter")


def _answer_cell(nb: dict) -> dict:
    return next(c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
                .endswith("-answers"))


def _submission(release: dict, source: dict, student: str, mistake: tuple[str, str] | None) -> dict:
    """The release copy with the answer cell as that student hands it in."""
    nb = json.loads(json.dumps(release))
    if student == "untouched":
        return nb
    solved = "".join(_answer_cell(source)["source"])
    solved = "\n".join(line for line in solved.split("\n") if "### BEGIN SOLUTION" not in line
                       and "### END SOLUTION" not in line)
    if student == "mistake":
        assert mistake[0] in solved, f"the reference line moved; update CASES: {mistake[0]!r}"
        solved = solved.replace(mistake[0], mistake[1])
    _answer_cell(nb)["source"] = solved
    for cell in nb["cells"]:  # the written answer: graded by hand, so autograding leaves it to the instructor
        if cell["cell_type"] == "markdown" and cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            cell["source"] = "".join(cell["source"]).replace("YOUR ANSWER HERE", "My answer, in a few sentences.")
    return nb


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory, kernel_env):
    import os

    from mma_edu.grading.course import api, build

    course = tmp_path_factory.mktemp("course")
    started = time.perf_counter()
    build(course, ROOT / "notebooks", profile="smoke", only=list(CASES))
    built = time.perf_counter() - started
    old_env = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "MPLBACKEND")}
    os.environ["JUPYTER_PATH"], os.environ["MPLBACKEND"] = kernel_env, "Agg"
    try:
        grader = api(course)
        for name, (*mistake, _, _) in CASES.items():
            release = json.loads((course / "release" / name / f"{name}.ipynb").read_text())
            source = json.loads((course / "source" / name / f"{name}.ipynb").read_text())
            for student in STUDENTS:
                path = course / "submitted" / student / name / f"{name}.ipynb"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(_submission(release, source, student, mistake)))
            for student in STUDENTS:
                result = grader.autograde(name, student, force=True, create=True)
                assert result["success"], result.get("error") or result.get("log")
                result = grader.generate_feedback(name, student, force=True)
                assert result["success"], result.get("error") or result.get("log")
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    print(f"\nnbgrader loop: build {built:.0f} s, autograde + feedback of {len(CASES) * len(STUDENTS)} "
          f"submissions {time.perf_counter() - started - built:.0f} s", file=sys.stderr)
    return course


def _grades(course: Path, name: str, student: str) -> dict[str, tuple[float | None, float, bool]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(name, name, student)
        return {g.name: (g.score if not g.needs_manual_grade else None, g.max_score, g.needs_manual_grade)
                for g in nb.grades}


def _feedback(course: Path, name: str, student: str) -> str:
    html = (course / "feedback" / student / name / f"{name}.html").read_text()
    return html_lib.unescape(re.sub(r"<[^>]+>", "", html))


@pytest.mark.parametrize("name", CASES)
def test_reference_solutions_get_full_marks(graded_course, name):
    grades = _grades(graded_course, name, "reference")
    auto = {k: v for k, v in grades.items() if "-check-" in k}
    assert len(auto) == 2, grades
    assert all(score == top for score, top, _ in auto.values()), grades
    written = {k: v for k, v in grades.items() if k not in auto}
    assert written and all(manual for _, _, manual in written.values()), "written answers await the instructor"


@pytest.mark.parametrize("name", CASES)
def test_untouched_copy_gets_zero_without_crashing(graded_course, name):
    grades = _grades(graded_course, name, "untouched")
    assert grades and all(score == 0 for score, _, _ in grades.values()), grades
    text = _feedback(graded_course, name, "untouched")
    assert text.count("this test gives 0 points until the answer above is filled in") >= 2


@pytest.mark.parametrize("name", CASES)
def test_typical_mistake_gets_partial_marks_and_named_in_feedback(graded_course, name):
    *_, hint, failing = CASES[name]
    grades = _grades(graded_course, name, "mistake")
    auto = {k: v[0] for k, v in grades.items() if "-check-" in k}
    assert auto[failing] == 0, grades
    assert 0 < sum(auto.values()) < sum(v[1] for k, v in grades.items() if "-check-" in k), grades
    text = _feedback(graded_course, name, "mistake")
    assert "ExerciseError" in text and hint in text, text[-3000:]
