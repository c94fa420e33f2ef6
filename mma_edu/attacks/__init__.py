"""Attacks: PGD (ℓ∞/ℓ2, restarts, per-example radii) and AN-PGD, the margin search of MMA.

- :func:`pgd` — fixed-radius whitebox attack (``attacks/pgd.py``).
- :func:`anpgd` — adaptive-norm PGD: PGD at each example's remembered radius,
  then bisection to the decision boundary (``attacks/anpgd.py``).
- :func:`fmn` — the fast minimum-norm attack: the shortest adversarial
  perturbation, with a radius that follows the boundary (``attacks/fmn.py``).
- :func:`fab` — the fast adaptive boundary attack: steps that project onto the
  nearest linearized boundary; holds on gradient-masked models (``attacks/fab.py``).
"""

from .anpgd import BN_MODES, ANPGDResult, anpgd, bisect
from .fab import FABResult, fab
from .fmn import FMNResult, fmn
from .pgd import STEP_SCALE, perturb, pgd, pgd_with_margin

__all__ = ["pgd", "pgd_with_margin", "perturb", "anpgd", "ANPGDResult", "bisect", "STEP_SCALE", "BN_MODES", "fmn", "FMNResult", "fab", "FABResult"]
