"""make assignments / make student: the nbgrader course directory and the student copy (nbgrader installed)."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

pytest.importorskip("nbgrader", reason="the grader extra (pip install 'mma-edu[grader]', make assignments)")

from mma_edu.grading.__main__ import main  # noqa: E402
from mma_edu.grading.nbgrader_plugin import NOTE  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
KERNEL = "mma-edu"
# The reference answers of each notebook's warm-up: in the course, never in a student copy.
ANSWERS = {"01": "d_2, d_inf = 1 / math.sqrt(2), 0.5", "02": "l_slm = math.log(math.exp(1.0) + math.exp(0.0))",
           "03": "L = 2 / 3 * (0.9 + 1.5 + 0.7) / 4", "04": "eps_hat = 0.33125",
           "05": "in_s_plus = [True, False, False, True]", "06": "linf_change, l2_length = 8 / 255, ",
           "07": "avg_acc = (98.9 + 97.9 + 96.0 + 92.6 + 85.2) / 5", "08": "lower, upper = [0.3, -0.6], [0.9, 0.2]"}


def _src(cell: dict) -> str:
    return "".join(cell["source"])


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags") or []


@pytest.fixture(scope="module")
def student_copy(tmp_path_factory):
    """``python -m mma_edu.grading student OUT`` (what make student runs)."""
    out = tmp_path_factory.mktemp("student") / "student"
    assert main(["student", str(out)]) == 0
    return out


def test_student_copy_is_readable_by_everyone(student_copy):
    written = sorted(student_copy.glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in written), \
        {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in written}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_copy_has_no_solution_text(path, student_copy):
    original = json.loads(path.read_text())["cells"]
    text = (student_copy / path.name).read_text()
    copy = json.loads(text)["cells"]
    copy_text = "\n".join(_src(c) for c in copy)
    assert not any("solution" in _tags(c) for c in copy)
    # Every line that only a solution holds (code or prose, beyond trivial ones) is gone, the rubrics too.
    kept = [c for c in original if "solution" not in _tags(c)]
    elsewhere = {line.strip() for c in kept for line in c["source"]}
    distinctive = {line.strip() for c in original if "solution" in _tags(c) for line in c["source"]
                   if len(line.strip()) > 20 and line.strip() not in elsewhere}
    assert len(distinctive) >= 3, distinctive
    leaked = [line for line in distinctive if line in copy_text]
    assert not leaked, leaked
    assert ANSWERS[path.name[:2]] in path.read_text() and ANSWERS[path.name[:2]] not in text
    assert "Rubric" not in copy_text and "BEGIN SOLUTION" not in copy_text and "HIDDEN TESTS" not in copy_text
    # What the student does see: the stubs, the graded tests, the note, and no pointer to solutions "further down".
    assert "= None" in copy_text and "exercises.graded(exercises.check_" in copy_text and NOTE in copy_text
    assert "further down" not in copy_text
    # Everything before the exercises is the course as it is.
    ex = next(i for i, c in enumerate(original) if _src(c).lstrip().startswith("## Exercises"))
    assert [_src(c) for c in copy[:ex]] == [_src(c) for c in original[:ex]]


def test_course_directory_for_instructors(tmp_path):
    out = tmp_path / "assignments"
    assert main(["build", str(out), "--profile", "smoke"]) == 0
    config = out / "nbgrader_config.py"
    assert stat.S_IMODE(config.stat().st_mode) == 0o644 and "DropSolutionCells" in config.read_text()
    for path in NOTEBOOKS:
        source = json.loads((out / "source" / path.stem / path.name).read_text())
        assert any("nbgrader" in c["metadata"] for c in source["cells"])
        assert 'profile = "smoke"' in _src(next(c for c in source["cells"] if "parameters" in _tags(c)))
        release = out / "release" / path.stem / path.name
        assert "BEGIN HIDDEN TESTS" in json.dumps(source) and "HIDDEN TESTS" not in release.read_text()
    assert (out / "gradebook.db").exists()


def test_bad_folders_get_clear_errors(tmp_path, capsys):
    assert main(["student", str(tmp_path / "out"), "--source", str(tmp_path)]) == 2
    assert "source must be a folder of the course's notebooks" in capsys.readouterr().err
    assert main(["student", str(ROOT / "notebooks")]) == 2
    assert "must not be the source folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("kernel")
    install(kernel_name=KERNEL, display_name="mma-edu (tests)", prefix=str(prefix))
    return str(prefix / "share" / "jupyter")


@pytest.mark.parametrize("name", ["01_margins.ipynb", "04_anpgd.ipynb"])
def test_student_copy_runs_top_to_bottom(name, student_copy, tmp_path, kernel_env, monkeypatch):
    """Run All on the untouched copy: the graded tests say 'not attempted' (0 points) and nothing stops."""
    import papermill as pm

    monkeypatch.setenv("JUPYTER_PATH", kernel_env)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / name
    pm.execute_notebook(str(student_copy / name), str(out), parameters={"profile": "smoke"}, kernel_name=KERNEL,
                        cwd=str(ROOT / "notebooks"), progress_bar=False, execution_timeout=300)
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    printed = "".join("".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    assert printed.count("not attempted yet") >= 2 and "correct:" not in printed
    assert re.search(r"0 points until the answer above is filled in", printed)
