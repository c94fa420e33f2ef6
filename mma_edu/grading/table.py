"""The course's graded exercises in one table: level, points and what each checks, per notebook.

Each notebook has a *warm-up* (compute by hand), a *core* exercise (implement a piece of the library), each
autograded by its ``check_...`` helper, a hidden randomized case for the core exercise where a hard-coded answer
would otherwise pass, and a *stretch* exercise (investigate) answered in writing and graded by hand with a rubric.

The mark step (:mod:`mma_edu.grading.mark`) reads points from here; the README's table is generated from here
(``python -m mma_edu.grading table``) and a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

# The notebooks' exercise levels compute / implement / investigate are graded as warm-up / core / stretch.
LEVELS = ("warm-up", "core", "stretch")


@dataclass(frozen=True)
class Autograded:
    """An exercise checked by ``exercises.<check>``: one graded test cell, ``points`` for passing it.

    ``hidden`` is the code of a second, randomized case (nbgrader's hidden tests: not in the student copy),
    worth ``hidden_points``; it runs in the same test cell, so the points of the cell are the sum.
    """

    check: str
    level: str
    points: int
    what: str
    hidden: str | None = None
    hidden_points: int = 0

    @property
    def total(self) -> int:
        return self.points + self.hidden_points


@dataclass(frozen=True)
class Written:
    """An exercise answered in prose: an nbgrader manual-graded cell, with the rubric in the instructor's copy."""

    key: str
    level: str
    points: int
    prompt: str
    rubric: str

    @property
    def total(self) -> int:
        return self.points


@dataclass(frozen=True)
class NotebookExercises:
    notebook: str  # the notebook's number, "01" ... "08"
    autograded: tuple[Autograded, ...]
    written: tuple[Written, ...]

    @property
    def points(self) -> int:
        return sum(e.total for e in self.autograded) + sum(w.total for w in self.written)


EXERCISES: dict[str, NotebookExercises] = {e.notebook: e for e in (
    NotebookExercises("01", (
        Autograded("check_hand_margins", "warm-up", 2, "d₂ and d∞ of one point of a linear model, by hand"),
        Autograded("check_linear_margins", "core", 3, "exact margins of a linear model (closed form, dual norm), "
                   "both norms",
                   hidden="W_, b_, x_, y_ = exercises.random_linear_problem(exercises.hidden_seed())\n"
                          "for p in norms.NORMS:\n"
                          "    exercises.graded(exercises.check_linear_margins(my_linear_margins, W_, b_, x_, y_, p))",
                   hidden_points=2),
    ), (
        Written("01-norms", "stretch", 3,
                "Exercise 3: prove d∞ ≤ d₂ ≤ √n·d∞, say when each inequality is tight for a linear model, and why "
                "the ℓ∞ δ* arrows are diagonal.",
                "1 point: the chain of norm inequalities and the deduction for the margins (the ℓ2 ball lies inside "
                "the ℓ∞ ball of the same radius, the ℓ∞ ball of radius t inside the ℓ2 ball of radius √n·t). "
                "1 point: tightness — one nonzero coordinate of w_y − w_j for the first, equal magnitudes for the "
                "second. 1 point: ℓ∞ steepest ascent is sign(w_j − w_y), every coordinate moves by the full d∞."),)),
    NotebookExercises("02", (
        Autograded("check_losses_by_hand", "warm-up", 2, "L_LM, L_SLM and cross-entropy of one logit vector"),
        Autograded("check_margin_gradient", "core", 3, "∇_θ d at a boundary point against the closed-form margin's "
                   "derivative, both norms",
                   hidden="seed_ = exercises.hidden_seed()\n"
                          "for p in norms.NORMS:\n"
                          "    exercises.graded(exercises.check_margin_gradient(margin_gradient, p, seed=seed_))",
                   hidden_points=2),
    ), (
        Written("02-dual-and-clean-loss", "stretch", 3,
                "Exercise 3: which dual norm appears for ℓ∞, why the ℓ∞ margin of a linear model is differentiable "
                "almost everywhere, and what changes with the clean loss in section 5.",
                "1 point: the ℓ1 norm of ∇_x L. 1 point: differentiable where the closest class is unique and no "
                "coordinate of w_y − w_j is 0. 1 point: with the clean loss one step barely moves the margins "
                "(laptop profile: mean margin 0.3524 before and after, no point moving by more than 2·10⁻⁴, half of "
                "them down; the step at x + δ* adds 0.078) — the points are classified with p_y > 0.998, where the "
                "clean loss's gradient is tiny, and it is not aligned with the margin's."),)),
    NotebookExercises("03", (
        Autograded("check_mma_loss_by_hand", "warm-up", 2, "MMA's objective of a four-example batch, by hand"),
        Autograded("check_mma_loss", "core", 3, "MMA's objective (hinge, S⁻, clean mix, OMMA) on random batches",
                   hidden="exercises.graded(exercises.check_mma_loss(mma_loss, seed=exercises.hidden_seed()))",
                   hidden_points=2),
    ), (
        Written("03-pgd-at-large-eps", "stretch", 3,
                "Exercise 3: explain why PGD-AT at a large ε (0.7) loses clean accuracy, how d_max changes MMA's "
                "margins, and why margins can end above d_max.",
                "1 point: at ε 0.7 the ε-balls of the two classes overlap around the tips of the moons, each inside "
                "the other moon's arc; PGD-AT gives those points up (laptop profile: 38 of 200 with margin 0, "
                "against 20 at ε 0.5), so train accuracy falls from 0.900 to 0.810. 1 point: a larger d_max gives "
                "larger margins and costs accuracy (median margin 0.405, 0.510, 0.663 and train accuracy 1.000, "
                "0.980, 0.905 at d_max 0.3, 0.5, 0.8). 1 point: the hinge only stops pushing; the clean loss and the "
                "other examples keep moving the boundary, so margins can exceed d_max (at d_max 0.3, 81% of them; "
                "standard training alone reaches a median of 0.364)."),)),
    NotebookExercises("04", (
        Autograded("check_bisection_by_hand", "warm-up", 2, "AN-PGD's bisection on one ray, by hand"),
        Autograded("check_bisection", "core", 3, "the bisection (first test at ε_prev, search_steps midpoints, "
                   "last midpoint reported) on five rays",
                   hidden="exercises.graded(exercises.check_bisection(my_bisection, seed=exercises.hidden_seed()))",
                   hidden_points=2),
        Autograded("check_pgd", "core", 3, "PGD written out (zero start, steepest ascent of the norm, projection "
                   "onto the ball, clamp into [0, 1]) step for step against the library's, ℓ∞ and ℓ2",
                   hidden="exercises.graded(exercises.check_pgd(my_pgd, seed=exercises.hidden_seed()))",
                   hidden_points=2),
    ), (
        Written("04-scaling", "stretch", 3,
                "Exercise 4: why AN-PGD divides by ε_prev and not by ‖x_adv − x‖, what happens to examples PGD "
                "cannot break, and which norm gives tighter one-round estimates.",
                "1 point: the point at scale ε_prev is the PGD point (its loss is already known) and ‖u‖ ≤ 1. "
                "1 point: unbroken examples end near max_eps = 1.05·d_max, past the hinge. 1 point: ℓ∞, whose sign "
                "steps reach the optimal corner in few steps (section 3, refine = 0: median estimate/exact 1.0007 in "
                "ℓ∞ against 1.0172 in ℓ2, 95th percentile 1.33 against 1.66)."),)),
    NotebookExercises("05", (
        Autograded("check_s_plus", "warm-up", 2, "which of four digits are in S⁺ (p_y > 1/2, not just correct)"),
        Autograded("check_over_perturbed", "core", 3, "the fraction of margins strictly below ε",
                   hidden="exercises.graded(exercises.check_over_perturbed(over_perturbed, "
                          "seed=exercises.hidden_seed()))",
                   hidden_points=2),
    ), (
        Written("05-omma-and-ramp", "stretch", 3,
                "Exercise 3: what dropping the clean loss (OMMA) costs and buys, and what happens to PGD-AT at 0.4 "
                "without the ε ramp.",
                "1 point: OMMA gains a little margin and robustness at large ε (on the zoo +5 to +7 points at "
                "ε 0.3-0.4). 1 point: it gives up a little clean accuracy (0.4-0.6 points on the zoo; the clean loss "
                "keeps easy digits confident), and with more training the two come together (section 7: AvgAcc "
                "+0.1 at 12,800 steps, unresolved). 1 point: without the ramp PGD-AT 0.4 collapses to one class "
                "(11.2% at every ε, in both of the study's seeds)."),)),
    NotebookExercises("06", (
        Autograded("check_eps_units", "warm-up", 2, "ε = 8/255 per pixel value and its ℓ2 length over 3×32×32"),
        Autograded("check_standardization", "core", 3, "per-image standardization (unbiased std, floor 1/√n), "
                   "a constant image included",
                   hidden="exercises.graded(exercises.check_standardization(my_standardization, "
                          "seed=exercises.hidden_seed()))",
                   hidden_points=2),
    ), (
        Written("06-standardization-space", "stretch", 3,
                "Exercise 3: why margins would be measured in the wrong space if the data were standardized "
                "beforehand, and which ε range d_max = 12/255 and 32/255 each help.",
                "1 point: ε must be measured on the [0, 1] image the adversary changes, not on standardized pixels "
                "whose scale differs per image. 1 point: d_max = 12/255 stops pushing a margin once it reaches "
                "12/255 (the hinge), so it helps at small ε, up to 12/255, and keeps more clean accuracy. 1 point: "
                "d_max = 32/255 keeps pushing margins up to 32/255, so it helps at large ε at some cost in clean "
                "accuracy (section 5: the released MMA-32 leads TRADES only from 16/255 on, and its clean accuracy "
                "is lower, 84.4 against 84.9)."),)),
    NotebookExercises("07", (
        Autograded("check_avg_accuracies", "warm-up", 2, "AvgAcc and AvgRobAcc of the paper's MMA-0.45 row"),
        Autograded("check_robust_curve", "core", 3, "the worst case over restarts, clean mistakes and smaller-ε "
                   "breaks carried along",
                   hidden="exercises.graded(exercises.check_robust_curve(robust_curve, seed=exercises.hidden_seed()))",
                   hidden_points=2),
    ), (
        Written("07-capstone", "stretch", 3,
                "Exercise 3 (capstone): with intervals, does the paper's conclusion — MMA's gain is at large ε — "
                "survive the stronger evaluation (APGD, more restarts) on these models?",
                "1 point: reports APGD (DLR and CE) against PGD for both models and names where PGD is inflated "
                "(laptop profile, 100 digits, CE and DLR at 100 steps: pgd-0.3 at ε 0.3, 76% → 73%, and mma-0.45 at "
                "ε 0.4, 33% → 28%; no change elsewhere; one loss at 10 steps is weaker than PGD). 1 point: the "
                "number of restarts after which robust accuracy stops dropping, judged with the intervals (CE PGD, "
                "300 digits: the standard model moves by at most 1.3 points from 1 to 8 restarts; mma-0.45 at ε 0.4 "
                "goes from 30.3% to 25.7%, 26.0% at 16 — less than the width of one interval, [25.2, 35.9] at "
                "30.3%). 1 point: a conclusion that follows from the intervals: MMA's gain at large ε survives (ε "
                "0.4: 28% [19.5, 37.9] against 0% [0, 3.6] for pgd-0.3), at ε ≤ 0.3 it shows none; a drop smaller "
                "than an interval's width is not evidence."),)),
    NotebookExercises("08", (
        Autograded("check_interval_bounds_by_hand", "warm-up", 2, "interval bounds of one affine layer, by hand"),
        Autograded("check_ibp", "core", 3, "interval bound propagation through the ReLU network, inside [0, 1]",
                   hidden="eps_ = 0.01 + (exercises.hidden_seed() % 1000) / 10_000\n"
                          "exercises.graded(exercises.check_ibp(my_ibp, net, x, y, eps=eps_))",
                   hidden_points=2),
    ), (
        Written("08-unstable-relus", "stretch", 3,
                "Exercise 3: how the MILP's time grows with the unstable ReLUs, and why the MMA network has fewer "
                "of them.",
                "1 point: each unstable ReLU is one binary to branch on, so the time grows roughly exponentially "
                "with their number (wider, deeper nets and larger boxes are slower). 1 point: MMA training makes the "
                "ReLUs more stable: fewer unstable over the same max_eps box (laptop profile: median 62% against 88% "
                "of the 16). 1 point: why it might — keeping each digit's decision far from the boundary makes the "
                "network change less around the data, so fewer pre-activations change sign within the box (the link "
                "to certified training: robust networks are the ones verifiers handle best)."),)),
)}


def readme_table() -> str:
    """The README's table of graded exercises (markdown), one row per exercise."""
    rows = ["| notebook | exercise | level | points | what it checks |", "|---|---|---|---|---|"]
    for nb in EXERCISES.values():
        for e in nb.autograded:
            pts = f"{e.points} + {e.hidden_points} hidden" if e.hidden_points else str(e.points)
            rows.append(f"| {nb.notebook} | `{e.check}` | {e.level} | {pts} | {e.what} |")
        for w in nb.written:
            rows.append(f"| {nb.notebook} | written answer (manual) | {w.level} | {w.points} | {w.prompt} |")
        rows.append(f"| {nb.notebook} | **total** | | **{nb.points}** | |")
    return "\n".join(rows) + "\n"
