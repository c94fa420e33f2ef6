"""Exercise checks: each ``check_...`` says *what* is wrong with an answer, not only that it is wrong.

The convention of the course (explained in notebook 1):

* an exercise cell holds ``answer = None`` (or a function whose body is
  ``return None``) and then calls its check: ``None`` means "not attempted
  yet", so the check prints a note and Run All goes on;
* a right answer prints ``correct: ...`` and returns True;
* a wrong answer raises :class:`ExerciseError` (an AssertionError) whose
  message names the first wrong value, the value it should be, and — when the
  answer matches a typical mistake — which mistake.

Solutions live in cells tagged ``solution``; they call the same checks, so the
smoke run of every notebook checks the reference solutions too.

For nbgrader (:mod:`mma_edu.grading`), a graded test cell calls
``graded(check_...(...))``: a pending answer then scores 0 without stopping
*Run All*; a hidden test reruns a check on a randomized case
(``seed=hidden_seed()``, or :func:`random_linear_problem`) that a hard-coded
answer fails.

The ground truths come from the library (closed forms in :mod:`mma_edu.margins`,
:class:`~mma_edu.train.MMA`'s objective, :func:`~mma_edu.attacks.bisect`,
:class:`~mma_edu.models.PerImageStandardization`, :func:`~mma_edu.bounds.layer_bounds`)
or from a few lines written out here, each tested against the library in
``tests/test_exercises.py``.

One module per notebook (``nb01_margins`` ... ``nb08_exact_margins``), the shared replies and parsing in
``_common``; everything is re-exported here, so notebooks keep ``from mma_edu.course import exercises`` and
``exercises.check_...``. Points and levels of each exercise: :data:`mma_edu.grading.table.EXERCISES`.
"""

from ._common import ExerciseError, graded, hidden_seed
from .nb01_margins import check_hand_margins, check_linear_margins, random_linear_problem
from .nb02_margin_gradients import S_LOGITS, check_losses_by_hand, check_margin_gradient
from .nb03_mma_loss import MMA_BATCH, check_mma_loss, check_mma_loss_by_hand, mma_objective
from .nb04_anpgd import (BISECTION_EXAMPLE, check_bisection, check_bisection_by_hand, check_pgd, pgd_problem,
                         reference_bisection, reference_pgd)
from .nb05_mnist_mma import S_PLUS_LOGITS, check_over_perturbed, check_s_plus
from .nb06_cifar10_mma import check_eps_units, check_standardization
from .nb07_evaluation import PAPER_MNIST_MMA_ROW, check_avg_accuracies, check_robust_curve
from .nb08_exact_margins import IBP_EXAMPLE, _ibp_variant, check_ibp, check_interval_bounds_by_hand

__all__ = [
    "ExerciseError",
    # graded test cells (mma_edu.grading)
    "graded", "hidden_seed",
    # 01
    "check_hand_margins", "check_linear_margins", "random_linear_problem",
    # 02
    "check_losses_by_hand", "check_margin_gradient",
    # 03
    "MMA_BATCH", "mma_objective", "check_mma_loss_by_hand", "check_mma_loss",
    # 04
    "reference_bisection", "check_bisection_by_hand", "check_bisection", "reference_pgd", "pgd_problem", "check_pgd",
    # 05
    "S_PLUS_LOGITS", "check_s_plus", "check_over_perturbed",
    # 06
    "check_eps_units", "check_standardization",
    # 07
    "PAPER_MNIST_MMA_ROW", "check_avg_accuracies", "check_robust_curve",
    # 08
    "IBP_EXAMPLE", "check_interval_bounds_by_hand", "check_ibp",
]
