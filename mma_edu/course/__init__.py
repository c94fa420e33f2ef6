"""Course helpers the notebooks call instead of carrying boilerplate.

- :mod:`mma_edu.course.records` — ``record`` / ``check`` headline numbers and claims; ``read_records`` in tests.
- :mod:`mma_edu.course.exercises` — the exercises' ``check_...`` helpers, which say what is wrong with an answer
  (``from mma_edu.course import exercises``).
- the student copy (``make student``) and the nbgrader assignments (``make assignments``) are made by
  :mod:`mma_edu.grading`, from the ``check_...`` calls and the cells tagged ``solution``.
- :mod:`mma_edu.course.settings` — ``settings(profile, notebook, dry_run=..., device=...)``: each notebook's
  per-profile settings, device, threads, CIFAR10-or-stand-in data, and the dry run of the paper profile.

``from mma_edu import course; course.record(...)`` keeps working: the record API is re-exported here.
"""

from .records import MIME, check, read_records, record, records, set_dry_run
from .settings import PROFILES, Settings, run_summary, settings

__all__ = ["MIME", "PROFILES", "Settings", "check", "read_records", "record", "records", "run_summary",
           "set_dry_run", "settings"]
