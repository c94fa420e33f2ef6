"""``python -m mma_edu.grading``: mark notebooks, build the course directory, write the student copy, the table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..files import atomic_write
from . import course
from .mark import MarkError, is_marked, mark_notebook
from .table import readme_table

README_BEGIN = "<!-- grading table: python -m mma_edu.grading table --write README.md -->"
README_END = "<!-- end of grading table -->"


def _mark(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        if not path.is_file() or not path.name[:2].isdigit():
            print(f"error: {path}: expected a course notebook NN_name.ipynb", file=sys.stderr)
            return 2
        nb = json.loads(path.read_text())
        was = is_marked(nb)
        marked = mark_notebook(nb, path.name[:2])
        if marked != nb:
            text = json.dumps(marked, indent=1, ensure_ascii=False) + "\n"
            mode = path.stat().st_mode & 0o777
            atomic_write(path, lambda f, text=text: f.write(text.encode()))
            path.chmod(mode)
        print(f"{path}: {'already marked, points refreshed' if was else 'marked'}"
              f"{'' if marked != nb else ' (unchanged)'}")
    return 0


def readme_with_table(readme: str) -> str:
    """The README text with the block between the grading-table markers regenerated."""
    if README_BEGIN not in readme or README_END not in readme:
        raise ValueError(f"the README has no grading table block ({README_BEGIN} ... {README_END})")
    head, rest = readme.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    return f"{head}{README_BEGIN}\n{readme_table()}{README_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mma_edu.grading", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("mark", help="turn course notebooks into nbgrader source notebooks, in place (idempotent)")
    p.add_argument("notebooks", nargs="+")
    p = sub.add_parser("build", help="the nbgrader course directory: source/ -> release/ (make assignments)")
    p.add_argument("out", nargs="?", default="build/assignments")
    p.add_argument("--source", default=None, help="the course's notebooks (default: notebooks/ of the checkout)")
    p.add_argument("--profile", default=None, help="set every notebook's profile (e.g. smoke to autograde fast)")
    p = sub.add_parser("student", help="the student copy of the course, made by nbgrader (make student)")
    p.add_argument("out", nargs="?", default="build/student")
    p.add_argument("--source", default=None)
    p = sub.add_parser("table", help="print the README's table of graded exercises")
    p.add_argument("--write", metavar="README", help="regenerate the table block in this README instead")
    args = parser.parse_args(argv)
    try:
        if args.command == "mark":
            return _mark(args.notebooks)
        if args.command == "table":
            if args.write:
                path = Path(args.write)
                path.write_text(readme_with_table(path.read_text()))
            else:
                print(readme_table(), end="")
            return 0
        source = args.source or course.DEFAULT_SOURCE
        if args.command == "build":
            written = course.build(args.out, source, profile=args.profile)
            what = f"assignments released in {Path(args.out) / 'release'} (nbgrader course directory {args.out})"
        else:
            written = course.write_student_copy(args.out, source)
            what = f"notebooks without solutions in {args.out}"
    except (FileNotFoundError, ValueError, MarkError, course.GraderMissing) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    print(f"{len(written)} {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
