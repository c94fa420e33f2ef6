"""The course as an nbgrader assignment set: points, the mark step, the course directory.

- :mod:`mma_edu.grading.table` — ``EXERCISES``: every notebook's graded exercises, level, points, what each
  checks, hidden randomized cases and written answers' rubrics; ``readme_table()``.
- :mod:`mma_edu.grading.mark` — ``mark_notebook(nb, "01")``: today's exercise cells and solution cells turned
  into nbgrader cells (idempotent; plain JSON, no nbgrader needed).
- :mod:`mma_edu.grading.course` — ``build(out)``: the nbgrader course directory (``source/`` → ``release/``,
  ``nbgrader_config.py``); ``write_student_copy(out)`` for ``make student``. Needs the ``grader`` extra.
- :mod:`mma_edu.grading.nbgrader_plugin` — the preprocessor that drops the solution prose from student copies.

``python -m mma_edu.grading {mark,build,student,table}``: see ``--help``.
"""
