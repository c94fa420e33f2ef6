"""ℓ∞ margin estimator settings against exact margins on robustly trained ReLU nets: accuracy and time.

    python -m bench.margin_settings [--n 24] [--width 8] [--steps 300]

Issue 24: AN-PGD's 95th percentile on MMA- and PGD-AT-trained nets is
1.3-1.5x the exact margin. For each net — a 784-``width``-10 ReLU net
trained ``steps`` Adam steps (seeded) on the offline digits by MMA (d_max
0.2) and by PGD-AT (ε 0.1, warm-up) — the exact ℓ∞ margins of ``n`` test
digits (:func:`mma_edu.exact.exact_margins`, max_eps 0.3), then each
setting of :func:`mma_edu.margins.estimate_margins` (max_eps 0.45): the
median, 95th percentile and worst of estimate/exact over the exactly solved
digits, the smallest estimate − proved lower bound (never negative: every
reported point flips), and the seconds, with their ratio to today's
default (refine=3, untargeted).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from mma_edu.data import mnist_offline
from mma_edu.exact import exact_margins
from mma_edu.margins import estimate_margins
from mma_edu.models import MLP
from mma_edu.train.loop import train_step
from mma_edu.train.methods import MMA, PGDAT

from .common import machine, table

SETTINGS = {
    "default (refine=3)": {},
    "restarts=3": {"restarts": 3},
    'method="best"': {"method": "best"},
    "targets=3": {"targets": 3},
    'targets="all"': {"targets": "all"},
    'refine=1, targets="all"': {"refine": 1, "targets": "all"},
    'method="fab"': {"method": "fab"},
    'method="best+fab"': {"method": "best+fab"},
}


def robust_net(method, *, width: int, steps: int, n: int, seed: int = 0):
    """(model, x, y): a 784-width-10 ReLU net trained by ``method`` and ``n`` shuffled test digits."""
    torch.manual_seed(seed)
    train, test = mnist_offline()
    model = nn.Sequential(nn.Flatten(), MLP(784, hidden=width, depth=1, num_classes=10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    method.setup(len(train), torch.device("cpu"))
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(train), (64,), generator=g)
        train_step(model, method, opt, train.x[idx], train.y[idx], idx)
    sub = test.subset(n, seed=1)
    return model.eval(), sub.x, sub.y


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"estimate/exact on {args.n} digits, 784-{args.width}-10 nets; {machine()}")
    rows = []
    for name, method in (("MMA d_max 0.2", MMA(d_max=0.2, steps=10)),
                         ("PGD-AT eps 0.1", PGDAT(eps=0.1, steps=10, warmup_steps=100))):
        model, x, y = robust_net(method, width=args.width, steps=args.steps, n=args.n)
        ex = exact_margins(model, x, y, max_eps=0.3)
        solved = ex.mask("exact")
        base = None
        for label, kwargs in SETTINGS.items():
            torch.manual_seed(0)
            t = time.perf_counter()
            est = estimate_margins(model, x, y, max_eps=0.45, **kwargs)
            sec = time.perf_counter() - t
            base = sec if base is None else base
            r = (est.margin[solved] / ex.margin[solved]).double()
            rows.append({"net": name, "setting": label, "n": int(solved.sum()), "median": f"{r.median():.4f}",
                         "p95": f"{r.quantile(0.95):.3f}", "worst": f"{r.max():.3f}",
                         "min est-lower": f"{(est.margin - ex.lower)[solved].min():.1e}",
                         "seconds": f"{sec:.2f} ({sec / base:.2f}x)"})
    print(table(rows, ["net", "setting", "n", "median", "p95", "worst", "min est-lower", "seconds"]))


if __name__ == "__main__":
    main()
