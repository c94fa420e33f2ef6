"""The preprocessor the course adds to nbgrader's ``generate_assignment``: the student copy loses the solution prose.

nbgrader clears what lies between ``### BEGIN SOLUTION`` and ``### END SOLUTION``; the course's worked
solutions in prose are whole markdown cells tagged ``solution`` (nbgrader allows no ungraded markdown solution
cells), so this drops them, leaving one note where a run of them stood. It also rewrites the exercises' intro
sentence that points at solutions "further down", which is untrue in the student copy.

Listed first in ``GenerateAssignment.preprocessors`` by the course's ``nbgrader_config.py``
(:func:`mma_edu.grading.course.write_config`). Needs nbconvert only.
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell
from traitlets import default

SOLUTION_TAG = "solution"
NOTE = ("*The solutions are not part of this copy of the course. Ask your instructor, or compare with the "
        "published course once you have tried.*")
# The exercises' intro in the course notebooks: "The solutions are in the cells tagged `solution` further down;
# they call the same checks. (Instructors: `make student` writes a copy of the course without them.)"
FURTHER_DOWN = re.compile(r"The solutions are in the cells tagged[^.]*?further down[^.]*\.(\s*\(Instructors:[^)]*\))?")
FURTHER_DOWN_NOTE = "The solutions are not part of this copy of the course."


class DropSolutionCells(Preprocessor):
    """Remove non-nbgrader cells tagged ``solution`` (one note per run of them) and the "further down" pointer."""

    @default("enabled")
    def _enabled_default(self) -> bool:  # nbconvert's preprocessors are off unless enabled
        return True

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        cells, notes = [], 0
        for cell in nb.cells:
            tagged = SOLUTION_TAG in (cell.get("metadata", {}).get("tags") or [])
            if tagged and "nbgrader" not in cell.get("metadata", {}):
                if not (cells and cells[-1].get("id", "").startswith("solutions-removed")):
                    notes += 1
                    note = new_markdown_cell(NOTE)
                    note["id"] = f"solutions-removed-{notes}"
                    cells.append(note)
                continue
            if cell.cell_type == "markdown":
                cell.source = FURTHER_DOWN.sub(FURTHER_DOWN_NOTE, cell.source)
            cells.append(cell)
        nb.cells = cells
        return nb, resources
