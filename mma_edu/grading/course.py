"""The nbgrader course directory of mma-edu: ``source/`` (marked notebooks) → ``release/`` (student copies).

``build(out)`` (``make assignments``) writes ``out/nbgrader_config.py`` and, for every course notebook
``NN_name.ipynb``, the assignment ``NN_name``: ``out/source/NN_name/NN_name.ipynb`` (the notebook after the mark
step, :mod:`mma_edu.grading.mark`) and, through ``nbgrader generate_assignment``, ``out/release/NN_name/``.
An instructor then runs nbgrader's own commands in ``out`` (``nbgrader autograde``, ``generate_feedback``...).

``write_student_copy(out)`` (``make student``) builds such a course directory in a scratch folder and copies
the released notebooks into ``out``, readable by everyone (mode 0644).

nbgrader (the ``grader`` extra) is imported only here, when a build runs; nbgrader calls ``alembic`` by name for
its gradebook, so the interpreter's ``bin`` folder is put first on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..files import atomic_write
from .mark import mark_notebook, set_profile

# The course's notebooks, next to the package in a source checkout.
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "notebooks"
CODE_STUB = "# YOUR CODE HERE: replace the None answers above (and the bodies that return None)."
TEXT_STUB = "YOUR ANSWER HERE"

CONFIG = '''"""nbgrader's configuration for the mma-edu course (written by python -m mma_edu.grading build)."""

from nbgrader.converters import GenerateAssignment

from mma_edu.grading.nbgrader_plugin import DropSolutionCells

c = get_config()  # noqa: F821 (nbgrader's config loader defines it)
c.CourseDirectory.course_id = "mma-edu"
# The exercise cells keep their None stubs above the solution region: the stub below only points at them.
c.ClearSolutions.code_stub = {{"python": {code_stub!r}}}
c.ClearSolutions.text_stub = {text_stub!r}
# The student copy loses the worked solutions in prose (cells tagged "solution"), then nbgrader's own steps.
c.GenerateAssignment.preprocessors = [DropSolutionCells,
                                      *GenerateAssignment.class_traits()["preprocessors"].default()]
# Autograding runs each notebook top to bottom: training notebooks take minutes per cell on the laptop profile.
c.Execute.timeout = {timeout}
'''


class GraderMissing(RuntimeError):
    """nbgrader is not installed (the ``grader`` extra)."""


def _require_nbgrader() -> None:
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        raise GraderMissing("nbgrader is not installed: pip install 'mma-edu[grader]' "
                            "(or make assignments, which installs it)") from None
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def course_notebooks(source: str | Path = DEFAULT_SOURCE) -> list[Path]:
    source = Path(source)
    notebooks = sorted(source.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"source must be a folder of the course's notebooks (NN_*.ipynb), found none in "
                                f"{source}")
    return notebooks


def write_config(out: Path, timeout: int = 1800) -> Path:
    path = out / "nbgrader_config.py"
    text = CONFIG.format(code_stub=CODE_STUB, text_stub=TEXT_STUB, timeout=timeout)
    atomic_write(path, lambda f: f.write(text.encode()))
    path.chmod(0o644)  # atomic_write's temporary file is private (0600)
    return path


def _write_json(path: Path, nb: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))
    path.chmod(0o644)


def api(course_dir: str | Path):
    """nbgrader's Python API on a course directory, configured by its ``nbgrader_config.py``."""
    _require_nbgrader()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    course_dir = Path(course_dir).resolve()
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    config.CourseDirectory.root = str(course_dir)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _run(result: dict, what: str) -> None:
    if not result.get("success"):
        raise RuntimeError(f"nbgrader {what} failed:\n{result.get('error') or ''}\n{result.get('log') or ''}")


def build(out: str | Path, source: str | Path = DEFAULT_SOURCE, *, profile: str | None = None,
          only: list[str] | None = None) -> list[Path]:
    """Build the course directory ``out``; returns the released notebooks.

    ``profile`` sets the parameters cell of every assignment (e.g. ``"smoke"`` to autograde in seconds; the
    default keeps the notebooks' own, ``laptop``). ``only`` limits the build to these assignment names.
    """
    notebooks = course_notebooks(source)
    out = Path(out)
    if out.resolve() == Path(source).resolve():
        raise ValueError(f"out must not be the source folder {source}")
    if only is not None:
        names = {p.stem for p in notebooks}
        unknown = sorted(set(only) - names)
        if unknown:
            raise ValueError(f"only must name course notebooks {sorted(names)}, got unknown {unknown}")
        notebooks = [p for p in notebooks if p.stem in only]
    _require_nbgrader()
    out.mkdir(parents=True, exist_ok=True)
    write_config(out)
    for path in notebooks:
        nb = mark_notebook(json.loads(path.read_text()), path.name[:2])
        if profile is not None:
            nb = set_profile(nb, profile)
        _write_json(out / "source" / path.stem / path.name, nb)
    grader = api(out)
    released = []
    for path in notebooks:
        _run(grader.generate_assignment(path.stem, force=True, create=True), f"generate_assignment {path.stem}")
        target = out / "release" / path.stem / path.name
        if not target.exists():
            raise RuntimeError(f"nbgrader generate_assignment {path.stem} wrote no {target}")
        target.chmod(0o644)
        released.append(target)
    return released


def write_student_copy(out: str | Path, source: str | Path = DEFAULT_SOURCE) -> list[Path]:
    """The student copy of every course notebook in ``out`` (made by nbgrader); returns the paths written."""
    out = Path(out)
    if out.resolve() == Path(source).resolve():
        raise ValueError(f"out must not be the source folder {source}: the copy would overwrite the solutions")
    with tempfile.TemporaryDirectory(prefix="mma-edu-course-") as scratch:
        released = build(scratch, source)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for path in released:
            target = out / path.name
            shutil.copyfile(path, target)
            target.chmod(0o644)
            written.append(target)
    return written
