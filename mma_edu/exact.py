"""Exact ℓ∞ margins of small ReLU networks by mixed-integer linear programming, and certified lower bounds.

- :func:`exact_margins` — the true margin d(x, y) = min ‖δ‖∞ s.t. some class
  j ≠ y reaches z_j ≥ z_y at x + δ (x + δ in the valid box), up to ``max_eps``,
  solved as a MILP with SciPy's HiGHS (``scipy.optimize.milp``), with the
  minimizing perturbation and a proved lower bound.
- :func:`certified_margins` — (from :mod:`mma_edu.bounds`) the largest radius
  at which interval or CROWN bounds prove that the decision holds.

Together with :func:`mma_edu.margins.estimate_margins` they sandwich the truth:

    certified ≤ exact ≤ AN-PGD estimate.

The MILP (one per rival class j, see :func:`exact_margins`): with bounds
l_k ≤ z_k ≤ u_k of every hidden pre-activation over the box of radius
max_eps, a ReLU whose sign is fixed there is linear (a = z, or a = 0), and
each *unstable* one (l < 0 < u) gets one binary s:

    a ≥ 0,  a ≥ z,  a ≤ z − l(1 − s),  a ≤ u·s,   s ∈ {0, 1}.

How long it takes — measured with ``python -m bench.exact_margins`` on 2
shared laptop-class CPU cores (SciPy 1.17 / HiGHS 1.12, torch on one
thread), ℓ∞ on 28×28 digits, MLPs after 300 Adam steps, max_eps = 0.1,
seconds per correctly classified digit, median / worst of 10:

    784-8-10      0.1 / 0.8        784-8-8-10     0.5 / 0.8
    784-16-10     0.2 / 1.5        784-16-16-10   0.4 / 6
    784-32-10     1.7 / 4.5        784-32-32-10   1.9 / 21
    784-64-10     2.7 / 9          784-64-64-10   4.9 / over the 60 s limit (1 of 10)

so nets of up to a few dozen ReLUs per layer run in seconds. The course
notebook's 784-16-10 at max_eps = 0.25 takes about 0.7 s per digit (1 s
after MMA training: its margins are larger, so are the boxes searched).
The cost grows roughly exponentially with the number of unstable ReLUs:
wider or deeper nets and larger boxes are slower; a time limit keeps a run
bounded and reports "unknown" (never a guessed number).
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import Tensor, nn

from .attacks._common import Clip, check_batch, check_not_empty, eval_mode
from .bounds import ReluNetwork, certified_margins, checked_network, layer_bounds, one_thread, unstable_fraction
from .losses import decides_otherwise, is_correct, rounding_slack
from .margins import estimate_margins

__all__ = ["ExactMargins", "STATUSES", "certified_margins", "exact_margins"]

STATUSES = ("exact", "above_max_eps", "unknown", "misclassified")

# HiGHS's primal heuristics (sub-MIPs, RINS, RENS, ...) hunt for feasible points; here branching finds them
# quickly on its own, and turning the heuristics off made a typical program ~4x faster (measured, 784-32-32-10).
_HIGHS = {
    "mip_heuristic_effort": 0.0,
    "mip_heuristic_run_rins": False,
    "mip_heuristic_run_rens": False,
    "mip_heuristic_run_root_reduced_cost": False,
    "mip_heuristic_run_zi_round": False,
    "mip_heuristic_run_shifting": False,
}


@dataclass
class ExactMargins:
    """Per-example results of :func:`exact_margins`; every field has one row per example.

    ``margin`` is trustworthy wherever it is a number: exact to ``tol``
    ("exact"), 0 ("misclassified"), inf ("above_max_eps": no perturbation up
    to max_eps changes the decision) — and NaN when the solver ran out of
    time ("unknown"); ``lower`` then still holds what was proved.
    """

    margin: Tensor  # (N,) float64 exact ℓ∞ margin = ‖delta‖∞; 0, inf or NaN as the status says
    status: list[str]  # (N,) one of STATUSES
    delta: Tensor  # (N, ...) the minimizing perturbation (x + delta is misclassified); 0 if misclassified, NaN if none
    reached: Tensor  # (N,) int64 the class predicted at x + delta (-1 where there is no delta)
    lower: Tensor  # (N,) float64 proved lower bound of the margin (margin − tol ≤ lower ≤ margin where exact)
    unstable: Tensor  # (N,) fraction of hidden ReLUs unstable over the max_eps box (each would need a binary)
    binaries: Tensor  # (N,) int64 binaries of the largest program solved (its box may be smaller than max_eps)
    seconds: Tensor  # (N,) solve time per example

    def mask(self, *statuses: str) -> Tensor:
        """(N,) bool: the examples whose status is one of ``statuses``, e.g. ``res.mask("exact")``."""
        bad = [s for s in statuses if s not in STATUSES]
        if bad or not statuses:
            raise ValueError(f"statuses must be among {STATUSES!r}, got {statuses!r}")
        return torch.tensor([s in statuses for s in self.status], dtype=torch.bool)

    def counts(self) -> dict[str, int]:
        """How many examples have each status."""
        return {s: self.status.count(s) for s in STATUSES}


# ----------------------------------------------------------------------------
# The program
# ----------------------------------------------------------------------------

@contextmanager
def _quiet_c_stdout():
    """Silence file descriptor 1 for a while: HiGHS sometimes prints debugging lines from C, around Python."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


class _Program:
    """The MILP for one example and one box radius, shared by all rival classes.

    Variables, in order: x' (n_0 inputs), t (the ℓ∞ radius), then per hidden
    layer the outputs a of its ReLUs that are not always off, then the
    binaries s of its unstable ReLUs. Rows: |x' − x| ≤ t, and per ReLU the
    exact (stable) or big-M (unstable) encoding; the rival's row is added by
    :meth:`solve`.
    """

    def __init__(self, net: ReluNetwork, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray, radius: float,
                 bounds: list[tuple[np.ndarray, np.ndarray]]):
        n0 = x0.size
        self.n0 = n0
        lbs: list[np.ndarray] = []
        ubs: list[np.ndarray] = []
        var_lo = [lo, np.zeros(1)]
        var_hi = [hi, np.full(1, radius)]
        integer = [np.zeros(n0), np.zeros(1)]
        t_col = n0
        ncol = n0 + 1
        entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (row, col, value) triples

        def add(block_rows: np.ndarray, block_cols: np.ndarray, values: np.ndarray) -> None:
            entries.append((block_rows, block_cols, values))

        # |x' − x0| ≤ t  as  x' − t ≤ x0  and  x' + t ≥ x0
        idx = np.arange(n0)
        add(idx, idx, np.ones(n0)); add(idx, np.full(n0, t_col), -np.ones(n0))
        add(n0 + idx, idx, np.ones(n0)); add(n0 + idx, np.full(n0, t_col), np.ones(n0))
        lbs += [np.full(n0, -np.inf), x0]
        ubs += [x0, np.full(n0, np.inf)]
        nrow = 2 * n0

        prev_cols = np.arange(n0)  # columns of the previous layer's outputs (all of x' at first)
        prev_keep = np.arange(n0)  # which of the previous layer's units those columns are
        self.unstable = 0
        for k, (l, u) in enumerate(bounds):
            w = net.weights[k].numpy()[:, prev_keep]
            b = net.biases[k].numpy()
            active, unstable = l >= 0, (l < 0) & (u > 0)
            keep = np.nonzero(active | unstable)[0]  # ReLUs always off are a = 0: no variable
            a_cols = ncol + np.arange(keep.size)
            ncol += keep.size
            uns = np.nonzero(unstable[keep])[0]  # positions within keep
            s_cols = ncol + np.arange(uns.size)
            ncol += uns.size
            self.unstable += uns.size
            var_lo += [np.zeros(keep.size), np.zeros(uns.size)]
            var_hi += [u[keep], np.ones(uns.size)]
            integer += [np.zeros(keep.size), np.ones(uns.size)]

            # a − W a_prev (= or ≥) b for every kept ReLU
            wk = w[keep]
            r = nrow + np.arange(keep.size)
            add(r, a_cols, np.ones(keep.size))
            rr, cc = np.nonzero(wk)
            add(r[rr], prev_cols[cc], -wk[rr, cc])
            is_act = active[keep]
            lbs.append(b[keep])
            ubs.append(np.where(is_act, b[keep], np.inf))
            nrow += keep.size
            # unstable: a − W a_prev − l s ≤ b − l   (a ≤ z − l(1 − s))
            wu = wk[uns]
            r = nrow + np.arange(uns.size)
            add(r, a_cols[uns], np.ones(uns.size))
            rr, cc = np.nonzero(wu)
            add(r[rr], prev_cols[cc], -wu[rr, cc])
            add(r, s_cols, -l[keep][uns])
            lbs.append(np.full(uns.size, -np.inf))
            ubs.append(b[keep][uns] - l[keep][uns])
            nrow += uns.size
            # unstable: a − u s ≤ 0   (a ≤ u·s)
            r = nrow + np.arange(uns.size)
            add(r, a_cols[uns], np.ones(uns.size))
            add(r, s_cols, -u[keep][uns])
            lbs.append(np.full(uns.size, -np.inf))
            ubs.append(np.zeros(uns.size))
            nrow += uns.size
            prev_cols, prev_keep = a_cols, keep

        self.w_out = net.weights[-1].numpy()[:, prev_keep]
        self.b_out = net.biases[-1].numpy()
        self.prev_cols = prev_cols
        self.ncol = ncol
        rr = np.concatenate([e[0] for e in entries])
        cc = np.concatenate([e[1] for e in entries])
        vv = np.concatenate([e[2] for e in entries])
        self.matrix = sparse.csr_array((vv, (rr, cc)), shape=(nrow, ncol))
        self.lb, self.ub = np.concatenate(lbs), np.concatenate(ubs)
        self.var_lo, self.var_hi = np.concatenate(var_lo), np.concatenate(var_hi)
        self.integer = np.concatenate(integer)
        self.cost = np.zeros(ncol)
        self.cost[t_col] = 1.0

    def solve(self, y: int, j: int, time_limit: float, gap: float, kappa: float = 0.0):
        """min t such that z_j − z_y ≥ kappa; returns SciPy's OptimizeResult."""
        row = np.zeros((1, self.ncol))
        row[0, self.prev_cols] = self.w_out[j] - self.w_out[y]
        matrix = sparse.vstack([self.matrix, sparse.csr_array(row)], format="csr")
        lb = np.append(self.lb, self.b_out[y] - self.b_out[j] + kappa)
        ub = np.append(self.ub, np.inf)
        with warnings.catch_warnings(), _quiet_c_stdout():
            # SciPy passes options it does not know to HiGHS verbatim, and says so; we mean it. (A HiGHS
            # too old to know one ignores it, and says so too: the programs are the same, only slower.)
            warnings.filterwarnings("ignore", message="Unrecognized options")
            return milp(
                self.cost, integrality=self.integer, bounds=Bounds(self.var_lo, self.var_hi),
                constraints=LinearConstraint(matrix, lb, ub),
                options={"time_limit": max(time_limit, 1e-6), "mip_rel_gap": gap, "presolve": True, **_HIGHS},
            )


def _on_its_device(model: nn.Module):
    """``model`` as a function of CPU inputs to CPU logits, run on its own device (the programs live on the CPU)."""
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    return lambda x: model(x.to(device)).cpu()


# ----------------------------------------------------------------------------
# One example
# ----------------------------------------------------------------------------

def _box(x0: np.ndarray, radius: float, clip: Clip) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = x0 - radius, x0 + radius
    if clip is not None:
        lo, hi = np.maximum(lo, clip[0]), np.minimum(hi, clip[1])
    return lo, hi


def _bounds_at(net: ReluNetwork, x: Tensor, y: Tensor, radius: float, clip: Clip):
    """CROWN bounds (hidden layers, as numpy) and the upper bounds of z_j − z_y over the box of ``radius``."""
    bounds, spec_up = layer_bounds(net, x, y, torch.tensor([radius], dtype=torch.float64), norm="linf", clip=clip)
    # Widen by a hair: the big-M constants must hold for the exact network, not only in float64 rounding.
    pad = [(l[0].numpy() - 1e-9 * (1 + l[0].abs().numpy()), u[0].numpy() + 1e-9 * (1 + u[0].abs().numpy()))
           for l, u in bounds]
    return pad, spec_up[0].numpy(), bounds


def _decides_otherwise(model, x: Tensor, delta: Tensor, y: Tensor) -> bool:
    """Does x + delta change the decision, by more than rounding could undo (:func:`~mma_edu.losses.decides_otherwise`)?"""
    with torch.no_grad():
        logits = model(x + delta)
    return bool(decides_otherwise(logits, y).item())


@dataclass
class _Outcome:
    """What :func:`_one_example` found for one example (see :class:`ExactMargins` for the fields)."""

    margin: float
    status: str
    lower: float
    unstable: float
    binaries: int
    delta: Tensor | None = None  # None: no perturbation (NaN in the result)
    reached: int = -1


def _one_example(model, net, x: Tensor, y: Tensor, max_eps: float, clip: Clip, deadline: float, gap: float,
                 tol: float, known: float, hint: int) -> _Outcome:
    """Exact margin of one correctly classified example x (1, ...), y (1,).

    ``known``: the length of a perturbation already checked to change the decision (inf if none);
    ``hint``: the class it reached (tried first; -1 if none).
    """
    x0 = x.reshape(-1).double().numpy()
    yi = int(y)
    radius = float(max_eps)
    np_bounds, spec_up, t_bounds = _bounds_at(net, x, y, radius, clip)
    unstable = float(unstable_fraction(t_bounds)[0]) if t_bounds else 0.0
    binaries = 0  # the most binaries in any program solved
    # Rivals the bounds cannot rule out, most promising first (largest possible z_j − z_y).
    rivals = [int(j) for j in np.argsort(-spec_up, kind="stable") if j != yi and spec_up[j] >= 0]
    if hint in rivals:
        rivals.remove(hint)
        rivals.insert(0, hint)
    lower = radius  # every rival ruled out so far needs more than this
    best_t, best_x, best_j = known, None, -1
    program, program_radius = None, None
    for n_tried, j in enumerate(rivals, 1):
        # Only radii up to the shortest perturbation known matter (padded so that it stays inside).
        # Smaller box, tighter bounds, fewer unstable ReLUs — and maybe this rival is ruled out outright.
        needed = min(float(max_eps), best_t * (1 + 1e-6) + 1e-12)
        if needed < radius:
            radius = needed
            np_bounds, spec_up, _ = _bounds_at(net, x, y, radius, clip)
        if spec_up[j] < 0:
            continue
        if program is None or program_radius != radius:
            lo, hi = _box(x0, radius, clip)
            program, program_radius = _Program(net, x0, lo, hi, radius, np_bounds), radius
        binaries = max(binaries, program.unstable)
        res = program.solve(yi, j, deadline - time.perf_counter(), gap)
        if res.status == 0:
            t = float(res.fun)
            bound = res.get("mip_dual_bound")
            lower = min(lower, t if bound is None or not math.isfinite(bound) else float(bound))
            if best_x is None or t < best_t:
                best_t, best_x, best_j = t, res.x[: x0.size], j
        elif res.status == 2:  # infeasible: this rival needs more than the current radius
            lower = min(lower, radius)
        else:  # time or node limit, or a numerical failure: say so, never guess
            bound = res.get("mip_dual_bound")
            proved = float(bound) if bound is not None and math.isfinite(bound) else 0.0
            # Rivals not tried yet could be closer than anything proved: then nothing is proved.
            lower = min(lower, proved, best_t) if n_tried == len(rivals) else 0.0
            return _Outcome(math.nan, "unknown", lower, unstable, binaries)
    if best_x is None:
        if math.isfinite(known):  # the programs missed a perturbation we hold: numerically unreliable
            return _Outcome(math.nan, "unknown", 0.0, unstable, binaries)
        return _Outcome(math.inf, "above_max_eps", float(max_eps), unstable, binaries)

    # The solver's point lies on the boundary, up to its feasibility tolerance. Make it really change the
    # decision: first step past it along the rival's gradient sign; where that fails (at a ReLU kink the
    # gradient can point the wrong way), solve the rival's program again asking z_j − z_y ≥ κ, a hair
    # more than rounding. Either way the forward pass of the model has the last word.
    found = None
    for cand in _pushed(net, x, best_x, best_t, yi, best_j, clip, tol):
        found = _accept(model, x, y, cand, lower, tol)
        if found is not None:
            break
    if found is None:
        with torch.no_grad():
            kappa = 4 * float(rounding_slack(model(x)))
        wanted = min(float(max_eps), best_t + tol)  # room for the slightly longer answer
        if program_radius < wanted:
            np_bounds, _, _ = _bounds_at(net, x, y, wanted, clip)
            program = _Program(net, x0, *_box(x0, wanted, clip), wanted, np_bounds)
        for _ in range(4):
            res = program.solve(yi, best_j, deadline - time.perf_counter(), gap, kappa)
            if res.status != 0:
                break
            found = _accept(model, x, y, torch.from_numpy(res.x[: x0.size]).reshape(x.shape), lower, tol)
            if found is not None:
                break
            kappa *= 10
    if found is None:
        return _Outcome(math.nan, "unknown", lower, unstable, binaries)
    margin, delta, reached = found
    return _Outcome(margin, "exact", min(lower, margin), unstable, binaries, delta[0], reached)


def _pushed(net: ReluNetwork, x: Tensor, point: np.ndarray, t: float, y: int, j: int, clip: Clip, tol: float):
    """The solver's point, then the same pushed by growing steps (< tol) along the sign of ∇(z_j − z_y)."""
    start = torch.from_numpy(point).reshape(x.shape).double()
    xa = start.clone().requires_grad_(True)
    logits = net(xa)
    (logits[0, j] - logits[0, y]).backward()
    push = xa.grad.sign()
    xd = x.double()
    lo, hi = clip if clip is not None else (-math.inf, math.inf)
    for step in [0.0] + [tol * 2.0 ** -k for k in range(20, 0, -1)]:
        yield (start + step * push).clamp(xd - t - step, xd + t + step).clamp(lo, hi)


def _accept(model, x: Tensor, y: Tensor, point: Tensor, lower: float, tol: float) -> tuple[float, Tensor, int] | None:
    """(margin, delta, reached class) if ``point`` changes the decision within ``tol`` of the proved lower bound."""
    delta = point.to(x.dtype) - x
    if not _decides_otherwise(model, x, delta, y):
        return None
    margin = float(delta.double().abs().max())
    if margin - lower > tol:
        return None
    with torch.no_grad():
        reached = int(model(x + delta).argmax(1))
    return margin, delta, reached


def exact_margins(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str = "linf",
    max_eps: float,
    time_limit: float = 60.0,
    clip: Clip = (0.0, 1.0),
    gap: float = 1e-6,
    tol: float = 1e-5,
    warm_start: bool = True,
) -> ExactMargins:
    """Exact ℓ∞ margins of a ReLU network, up to ``max_eps``, by mixed-integer linear programming.

    For each example and each rival class j that CROWN bounds over the box of
    radius max_eps cannot rule out (those whose upper bound of z_j − z_y is
    < 0 are skipped), HiGHS solves

        min t   s.t.   x − t ≤ x' ≤ x + t,  x' in the box [clip] ∩ [x − max_eps, x + max_eps],
                       z_k = W_k a_{k−1} + b_k,  a_k = ReLU(z_k) (big-M with one binary per unstable ReLU),
                       z_j(x') ≥ z_y(x').

    Rivals are tried in order of their bound; once a perturbation of length t*
    is known, later programs only search radii ≤ t*, with bounds recomputed
    on that smaller box (fewer unstable ReLUs). The margin is the smallest
    optimum. With ``warm_start`` a quick AN-PGD search (checked by a forward
    pass) supplies the first t* and the first rival, before any program runs:
    the attack only narrows where the programs look — they still decide the
    margin, and they must find a perturbation at least as short.

    The solver's point is then checked with a forward pass of ``model``: if
    rounding left it a hair short of the boundary, it is pushed past along the
    rival's gradient sign by the smallest step that works, or (where that
    fails, at a ReLU kink) the rival's program is solved again asking
    z_j − z_y ≥ κ, a hair above rounding. So ``x + delta`` really is
    misclassified, margin = ‖delta‖∞ exactly, and margin − lower ≤ ``tol``.

    Args:
        model: a ReLU network built from supported layers (see
            :data:`mma_edu.bounds.SUPPORTED`); anything else is a ValueError naming the layer.
        x: inputs (N, ...) in ``clip``; y: labels (N,).
        norm: must be "linf" (ℓ2 margins would need a quadratic objective;
            use :func:`certified_margins` and AN-PGD to bracket them).
        max_eps: the largest margin looked for (> 0); larger ones are reported as inf.
        time_limit: seconds per example (all its programs together); past it the status is "unknown".
        clip: the valid input box, or None for unbounded inputs.
        gap: HiGHS's relative optimality gap (mip_rel_gap).
        tol: largest accepted difference between the returned margin and the proved lower bound.
        warm_start: start from the shortest perturbation AN-PGD finds (20 steps, 1 refinement round;
            much faster; same answer). False: the first programs search the whole max_eps box.

    Returns:
        :class:`ExactMargins` with margin, status, delta (shaped like x), reached class, proved lower
        bound, fraction of unstable ReLUs and seconds, per example.
    """
    if norm != "linf":
        raise ValueError(f"norm must be 'linf' for exact margins (got {norm!r}): an ℓ2 ball makes the program "
                         "quadratic; bracket ℓ2 margins with certified_margins and estimate_margins instead")
    check_batch(x, y, clip)
    check_not_empty(x.shape[0], "x")
    if not (isinstance(max_eps, (int, float)) and math.isfinite(max_eps) and max_eps > 0):
        raise ValueError(f"max_eps must be a positive number, got {max_eps!r}")
    for name, value in (("time_limit", time_limit), ("gap", gap), ("tol", tol)):
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    with one_thread():
        return _exact(model, x, y, float(max_eps), time_limit, clip, gap, tol, warm_start)


def _exact(model: nn.Module, x: Tensor, y: Tensor, max_eps: float, time_limit: float, clip: Clip, gap: float,
           tol: float, warm_start: bool) -> ExactMargins:
    """The body of :func:`exact_margins` (arguments checked)."""
    net = checked_network(model, x)
    n = x.shape[0]
    known = torch.full((n,), math.inf, dtype=torch.float64)
    hint = torch.full((n,), -1, dtype=torch.long)
    attack_seconds = 0.0
    if warm_start:
        start = time.perf_counter()
        # Its own random stream: the caller's RNG state is left as it was.
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(0)
            est = estimate_margins(model, x, y, norm="linf", max_eps=max_eps, steps=20, refine=1, clip=clip)
        with eval_mode(model), torch.no_grad():
            rival = model(est.x_adv).argmax(1).cpu()
        broken = (est.found & (est.margin > 0)).cpu()
        known[broken] = est.margin[broken].double().cpu()
        hint[broken] = rival[broken]
        attack_seconds = (time.perf_counter() - start) / n
    x = x.detach().cpu()
    y = y.cpu()
    margin = torch.zeros(n, dtype=torch.float64)
    lower = torch.zeros(n, dtype=torch.float64)
    unstable = torch.zeros(n, dtype=torch.float64)
    binaries = torch.zeros(n, dtype=torch.long)
    seconds = torch.zeros(n, dtype=torch.float64)
    delta = torch.zeros_like(x)
    reached = torch.full((n,), -1, dtype=torch.long)
    status: list[str] = []
    with eval_mode(model):
        forward = _on_its_device(model)
        for i in range(n):
            xi, yi = x[i : i + 1], y[i : i + 1]
            start = time.perf_counter()
            with torch.no_grad():
                logits = forward(xi)
            if not bool(is_correct(logits, yi)):
                status.append("misclassified")
                reached[i] = int(logits.argmax(1))
            else:
                out = _one_example(forward, net, xi, yi, max_eps, clip, start + time_limit, gap, tol,
                                   float(known[i]), int(hint[i]))
                margin[i], lower[i], unstable[i], binaries[i], reached[i] = (
                    out.margin, out.lower, out.unstable, out.binaries, out.reached)
                delta[i] = out.delta if out.delta is not None else math.nan
                status.append(out.status)
            seconds[i] = time.perf_counter() - start + attack_seconds
    return ExactMargins(margin=margin, status=status, delta=delta, reached=reached, lower=lower, unstable=unstable,
                        binaries=binaries, seconds=seconds)
