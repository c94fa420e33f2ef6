"""The grading room without nbgrader: the table of points, the mark step on copies of the notebooks, the hidden
randomized cases of the checks, and the make targets. (The nbgrader builds and the loop: tests/grading.)"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from mma_edu.course import exercises as E
from mma_edu.course.exercises import ExerciseError
from mma_edu.grading import mark as M
from mma_edu.grading.__main__ import main, readme_with_table
from mma_edu.grading.table import EXERCISES, LEVELS, readme_table

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _src(cell: dict) -> str:
    return "".join(cell["source"])


def _grading(cell: dict) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


# ------------------------------------------------------------------------------------------------ the table

def test_every_notebook_has_graded_exercises_at_the_three_levels():
    assert sorted(EXERCISES) == [p.name[:2] for p in NOTEBOOKS]
    for nb in EXERCISES.values():
        assert len(nb.autograded) >= 2 and nb.written, nb.notebook
        assert {e.level for e in nb.autograded} | {w.level for w in nb.written} == set(LEVELS), nb.notebook
        assert all(e.points > 0 and callable(getattr(E, e.check)) for e in nb.autograded)
        # warm-up 2, each core 3 + hidden 2 (04 has two: the bisection and PGD), written 3
        assert [e.total for e in nb.autograded if e.level == "warm-up"] == [2], nb.notebook
        assert all(e.total == 5 and e.hidden for e in nb.autograded if e.level == "core"), nb.notebook
        assert nb.points == 5 + 5 * sum(e.level == "core" for e in nb.autograded), (nb.notebook, nb.points)


def test_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert readme_with_table(readme) == readme, "regenerate: python -m mma_edu.grading table --write README.md"
    assert readme_table() in readme
    with pytest.raises(ValueError, match="grading table block"):
        readme_with_table("no table here")


# ------------------------------------------------------------------------------------------------ the mark step

# The course's notebooks are kept marked (nbgrader's source layout). The mark step is the authoring tool that gets
# there from the plain layout (an exercise cell calling exercises.check_..., then cells tagged "solution"); these
# are notebooks 01 and 04 as they were before marking, to test it on.
UNMARKED = sorted((ROOT / "tests" / "data" / "unmarked").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def marked(tmp_path_factory):
    """Copies of the unmarked notebooks, marked by the CLI twice (the second run must change nothing)."""
    folder = tmp_path_factory.mktemp("marked")
    copies = [Path(shutil.copy(p, folder / p.name)) for p in UNMARKED]
    assert not any(M.is_marked(json.loads(p.read_text())) for p in copies)
    assert main(["mark", *map(str, copies)]) == 0
    once = {p.name: p.read_text() for p in copies}
    assert main(["mark", *map(str, copies)]) == 0
    assert {p.name: p.read_text() for p in copies} == once, "marking is idempotent"
    return {p.name: json.loads(once[p.name]) for p in copies}


def _check_nbgrader_cells(nb: dict, number: str) -> str:
    """The nbgrader layout of a marked notebook against the table; returns the answer cell's solution part."""
    table = EXERCISES[number]
    graded = [c for c in nb["cells"] if _grading(c)]
    ids = [_grading(c)["grade_id"] for c in graded]
    assert len(set(ids)) == len(ids) and all(c["id"] == _grading(c)["grade_id"] or c["cell_type"] == "code"
                                             for c in graded)
    # One answer cell: the exercise cell's stubs, then the solution code in the solution region.
    answers = [c for c in graded if _grading(c)["solution"] and c["cell_type"] == "code"]
    assert len(answers) == 1 and not _grading(answers[0])["grade"]
    answer = _src(answers[0])
    stub, solution = answer.split(M.BEGIN_SOLUTION)
    assert solution.rstrip().endswith(M.END_SOLUTION) and "= None" in stub and "exercises.check_" not in answer
    assert not [c for c in nb["cells"] if c["cell_type"] == "code" and "solution" in (c["metadata"].get("tags") or [])]
    # One locked test cell per check, with the table's points, calling it through exercises.graded.
    tests = {_grading(c)["grade_id"]: c for c in graded if _grading(c)["grade"] and not _grading(c)["solution"]}
    assert len(tests) == len(table.autograded)
    for e in table.autograded:
        cell = tests[f"{number}-{e.check.replace('_', '-')}"]
        assert _grading(cell)["points"] == e.total and _grading(cell)["locked"]
        assert f"exercises.graded(exercises.{e.check}(" in _src(cell)
        assert (M.BEGIN_HIDDEN in _src(cell)) == bool(e.hidden)
    # Written answers: manual-graded markdown with the rubric inside the solution region.
    for w in table.written:
        cell = next(c for c in graded if _grading(c)["grade_id"] == w.key)
        assert cell["cell_type"] == "markdown" and _grading(cell)["grade"] and _grading(cell)["solution"]
        assert _src(cell).index(M.BEGIN_SOLUTION) < _src(cell).index("Rubric") < _src(cell).index(M.END_SOLUTION)
    assert sum(_grading(c)["points"] for c in graded if _grading(c)["grade"]) == table.points
    # nbgrader reads a marker in any cell, prose included ("no end solution statement found"): only where it belongs.
    for c in nb["cells"]:
        if not _grading(c).get("solution"):
            assert "BEGIN SOLUTION" not in _src(c) and "END SOLUTION" not in _src(c), _src(c)[:80]
        if not (_grading(c).get("grade") and not _grading(c).get("solution")):
            assert "HIDDEN TESTS" not in _src(c), _src(c)[:80]
    return solution


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_course_notebooks_are_marked_to_the_table(path):
    nb = json.loads(path.read_text())
    assert M.is_marked(nb), f"run: python -m mma_edu.grading mark {path.relative_to(ROOT)}"
    _check_nbgrader_cells(nb, path.name[:2])
    assert M.mark_notebook(nb, path.name[:2]) == nb, "marking a marked notebook changes nothing"


@pytest.mark.parametrize("path", UNMARKED, ids=lambda p: p.name)
def test_mark_turns_the_exercises_into_nbgrader_cells(path, marked):
    original, nb = json.loads(path.read_text()), marked[path.name]
    solution = _check_nbgrader_cells(nb, path.name[:2])
    solution_code = [c for c in original["cells"] if "solution" in (c["metadata"].get("tags") or [])
                     and c["cell_type"] == "code"]
    at = 0
    for cell in solution_code:  # every solution cell, but for its check statements, is kept, in order
        kept, checks = M.split_checks(_src(cell), cell["id"])
        assert checks and kept in solution[at:] or not checks and _src(cell).strip() in solution[at:], cell["id"]
        at = solution.index(kept or _src(cell).strip(), at)
    # The solution prose stays, tagged; everything before the exercises and after them is untouched.
    assert [_src(c) for c in nb["cells"] if "solution" in (c["metadata"].get("tags") or [])] == \
        [_src(c) for c in original["cells"] if "solution" in (c["metadata"].get("tags") or [])
         and c["cell_type"] == "markdown"]
    plain = [c for c in original["cells"] if "solution" not in (c["metadata"].get("tags") or [])
             and "exercises.check_" not in _src(c)]
    assert [_src(c) for c in plain] == [_src(c) for c in nb["cells"] if not _grading(c)
                                        and "solution" not in (c["metadata"].get("tags") or [])]


def test_the_graded_test_cells_run_against_the_reference_solutions():
    """Notebook 4's marked exercise cells, executed in order (no kernel): the reference passes, hidden part too."""
    nb = json.loads((ROOT / "notebooks" / "04_anpgd.ipynb").read_text())
    scope: dict = {}
    for cell in nb["cells"]:
        if _grading(cell) and cell["cell_type"] == "code":
            exec(_src(cell), scope)  # noqa: S102 (our own notebook)
    assert scope["eps_hat"] == 0.33125


def test_mark_errors_name_the_mismatch():
    nb = json.loads((ROOT / "tests" / "data" / "unmarked" / "01_margins.ipynb").read_text())
    with pytest.raises(M.MarkError, match=r"grades \['check_bisection', 'check_bisection_by_hand', 'check_pgd'\]"):
        M.mark_notebook(nb, "04")
    with pytest.raises(M.MarkError, match="number must be one of"):
        M.mark_notebook(nb, "09")
    no_ex = {**nb, "cells": [c for c in nb["cells"] if not _src(c).startswith("## Exercises")]}
    with pytest.raises(M.MarkError, match="one '## Exercises' markdown cell"):
        M.mark_notebook(no_ex, "01")
    with pytest.raises(M.MarkError, match="several checks"):
        M.split_checks("exercises.check_a(exercises.check_b(1))", "here")


def test_split_checks_wraps_calls_and_keeps_the_rest():
    code = 'x = "ε"  # ε\nexercises.check_x(x, "ℓ∞")\nfor p in P:\n    exercises.check_y(f(p), p)\ny = 2'
    rest, checks = M.split_checks(code, "here")
    assert rest == 'x = "ε"  # ε\ny = 2'
    assert checks == [("check_x", 'exercises.graded(exercises.check_x(x, "ℓ∞"))'),
                      ("check_y", "for p in P:\n    exercises.graded(exercises.check_y(f(p), p))")]


def test_set_profile_changes_only_the_parameters_cell():
    nb = json.loads((ROOT / "notebooks" / "01_margins.ipynb").read_text())
    smoke = M.set_profile(nb, "smoke")
    assert 'profile = "smoke"' in _src(smoke["cells"][1]) or any('profile = "smoke"' in _src(c) for c in smoke["cells"])
    assert sum(_src(a) != _src(b) for a, b in zip(nb["cells"], smoke["cells"])) == 1
    with pytest.raises(ValueError, match="profile must be one of"):
        M.set_profile(nb, "huge")


def test_mark_cli_refuses_what_is_not_a_course_notebook(tmp_path, capsys):
    assert main(["mark", str(tmp_path / "notes.ipynb")]) == 2
    assert "expected a course notebook" in capsys.readouterr().err


# --------------------------------------------------------------------------------- graded() and hidden cases

def test_graded_gives_zero_for_a_pending_answer_without_stopping(capsys):
    assert E.graded(E.check_hand_margins(None, None)) is None
    out = capsys.readouterr()
    assert "not attempted yet" in out.out and "0 points" in out.err
    assert E.graded(E.check_hand_margins(1 / math.sqrt(2), 0.5)) is None
    assert capsys.readouterr().err == ""
    with pytest.raises(ExerciseError, match="ℓ1 norm"):
        E.graded(E.check_hand_margins(0.5, 0.5))


def _replay(reference, record: list):
    """A 'hard-coded' answer: replays the outputs ``reference`` gave on the visible case, call by call."""
    outputs = iter(record)
    return lambda *args, **kw: next(outputs)


def _recorder(reference, record: list):
    def fn(*args, **kw):
        out = reference(*args, **kw)
        record.append(out)
        return out
    return fn


def _ref_mma_loss(ce_adv, ce_clean, eps_hat, positive, d_max, clean_weight):
    return E.mma_objective(ce_adv, ce_clean, eps_hat, positive, d_max, clean_weight)


def _ref_bisection(oracle, t0, max_eps, steps):
    return E.reference_bisection(oracle, t0, max_eps, steps)


def _ref_over_perturbed(margins, eps):
    return (margins < eps).float().mean().item()


def _ref_standardization(x):
    from mma_edu.models import PerImageStandardization

    return PerImageStandardization()(x)


def _ref_robust_curve(clean, correct):
    return E.nb07_evaluation._robust_curve(clean, correct)


@pytest.mark.parametrize("check, reference", [
    (E.check_mma_loss, _ref_mma_loss), (E.check_over_perturbed, _ref_over_perturbed),
    (E.check_standardization, _ref_standardization), (E.check_robust_curve, _ref_robust_curve),
], ids=lambda v: getattr(v, "__name__", ""))
def test_hidden_seeded_case_catches_hard_coded_answers(check, reference, capsys):
    record: list = []
    default_seed = None if check is E.check_over_perturbed else 0
    assert check(_recorder(reference, record), seed=default_seed) is True
    assert check(_replay(reference, record), seed=default_seed) is True  # passes the visible case
    with pytest.raises(ExerciseError):
        check(_replay(reference, list(record)), seed=12345)
    for seed in (1, 7, 2024):
        assert check(reference, seed=seed) is True


def test_hidden_bisection_case_catches_hard_coded_answers():
    record: list = []

    def recording(oracle, t0, max_eps, steps):
        out = E.reference_bisection(oracle, t0, max_eps, steps)
        record.append((oracle, out))
        return out

    assert E.check_bisection(recording) is True
    outs = iter([out for _, out in record])

    def hard_coded(oracle, t0, max_eps, steps):  # asks the oracle the same questions, replays the answers
        out = next(outs)
        E.reference_bisection(oracle, t0, max_eps, steps)
        return out

    with pytest.raises(ExerciseError):
        E.check_bisection(hard_coded, seed=99)
    for seed in (1, 5, 123):
        assert E.check_bisection(_ref_bisection, seed=seed) is True


def test_hidden_linear_and_gradient_cases():
    from mma_edu.margins import linear_margins
    from mma_edu.losses import logit_margin
    from mma_edu import norms

    W, b, x, y = E.random_linear_problem(3)
    assert W.shape == (4, 5) and x.shape == (12, 5) and (y[:6] == (x[:6] @ W.T + b).argmax(1)).all()
    assert (E.random_linear_problem(3)[0] == W).all() and not (E.random_linear_problem(4)[0] == W).all()
    good = lambda W, b, x, y, norm: linear_margins(W, b, x, y, norm=norm)  # noqa: E731
    fixed = good(W, b, x, y, "l2")
    assert E.check_linear_margins(good, W, b, x, y, "l2") is True
    with pytest.raises(ExerciseError):
        E.check_linear_margins(lambda *a: fixed, *E.random_linear_problem(8), "l2")

    def gradient(model, x_star, y, norm):
        x_star = x_star.clone().requires_grad_(True)
        loss = logit_margin(model(x_star), y).sum()
        g_theta = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
        (g_x,) = torch.autograd.grad(loss, x_star)
        return -torch.cat([g.flatten() for g in g_theta]) / norms.dual_norm_of(g_x, norm)

    assert E.check_margin_gradient(gradient, "l2", seed=11) is True


def test_hidden_seed_is_fresh_and_printed(capsys):
    seeds = {E.hidden_seed() for _ in range(5)}
    assert len(seeds) == 5 and all(s >= 1 for s in seeds)
    assert capsys.readouterr().out.count("randomized case, seed") == 5


# ------------------------------------------------------------------------------------------------ make targets

@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_targets_call_the_grading_room():
    for target, expected in (("student", "-m mma_edu.grading student build/student"),
                             ("assignments", "-m mma_edu.grading build build/assignments"),
                             ("test-grading", "-m pytest --grading tests/grading")):
        dry = subprocess.run(["make", "-n", "-B", "-C", str(ROOT), target], capture_output=True, text=True,
                             check=True)
        assert expected in dry.stdout, (target, dry.stdout)
        assert "import nbgrader" in dry.stdout and ".[grader]" in dry.stdout  # the extra, installed if missing
    assert "make test-grading" in (ROOT / ".ci" / "run").read_text()
