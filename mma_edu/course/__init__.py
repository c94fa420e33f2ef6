"""Course helpers the notebooks call instead of carrying boilerplate.

- :mod:`mma_edu.course.records` — ``record`` / ``check`` headline numbers and claims; ``read_records`` in tests.
- :mod:`mma_edu.course.exercises` — the exercises' ``check_...`` helpers, which say what is wrong with an answer
  (``from mma_edu.course import exercises``).
- :mod:`mma_edu.course.student` — ``python -m mma_edu.course.student OUT``: the course without its solutions.

``from mma_edu import course; course.record(...)`` keeps working: the record API is re-exported here.
"""

from .records import MIME, check, read_records, record, records

__all__ = ["MIME", "check", "read_records", "record", "records"]
