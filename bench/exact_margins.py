"""Seconds per exact margin (MILP, HiGHS) against network width and the fraction of unstable ReLUs.

    python -m bench.exact_margins [--n 10] [--eps 0.05 0.1] [--widths 8 16 32 64] [--depths 1 2]

For each fully connected ReLU net 784-(width x depth)-10, trained for 300
Adam steps (seeded) on the offline digits, and each max_eps: exact ℓ∞
margins of ``n`` test digits with :func:`mma_edu.exact.exact_margins`
(default warm start, 60 s time limit per example). Columns: clean accuracy
on the 1,000 test digits; the unstable fraction (hidden ReLUs whose sign the
CROWN bounds over the max_eps box leave open — each needs a binary; median
over the correctly classified digits); seconds per correctly classified digit
(median, mean and maximum; a digit whose rivals CROWN rules out outright
needs no program and takes milliseconds); and how many digits ended with
each status. The cost grows roughly exponentially in the number of unstable
ReLUs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from mma_edu.data import mnist_offline
from mma_edu.exact import exact_margins
from mma_edu.losses import is_correct
from mma_edu.models import MLP

from .common import machine, table


def trained_mlp(width: int, depth: int, steps: int = 300, seed: int = 0) -> nn.Module:
    """A 784-(width x depth)-10 ReLU net after ``steps`` Adam steps (lr 1e-3, batch 64) on the offline digits."""
    torch.manual_seed(seed)
    train = mnist_offline().train
    model = nn.Sequential(nn.Flatten(), MLP(784, hidden=width, depth=depth, num_classes=10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(train), (64,), generator=g)
        loss = F.cross_entropy(model(train.x[idx]), train.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.exact_margins", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10, help="test digits per row (default 10)")
    p.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1], help="max_eps values (default 0.05 0.1)")
    p.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64], help="hidden widths")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2], help="hidden layers")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per example (default 60)")
    args = p.parse_args(argv)
    # Tiny networks: one thread trains them fastest (exact_margins runs on one thread anyway).
    torch.set_num_threads(1)
    test = mnist_offline().test
    digits = test.subset(args.n, seed=0)
    print(f"exact linf margins of {args.n} test digits, time limit {args.time_limit:g} s per example; {machine()}")
    rows = []
    for depth in args.depths:
        for width in args.widths:
            model = trained_mlp(width, depth)
            with torch.no_grad():
                acc = is_correct(model(test.x), test.y).float().mean().item()
            for eps in args.eps:
                t = time.perf_counter()
                res = exact_margins(model, digits.x, digits.y, max_eps=eps, time_limit=args.time_limit)
                total = time.perf_counter() - t
                ran = [i for i, s in enumerate(res.status) if s != "misclassified"]
                sec = [float(res.seconds[i]) for i in ran] or [0.0]
                unstable = [float(res.unstable[i]) for i in ran] or [0.0]
                counts = res.counts()
                rows.append({
                    "net": "784-" + "-".join([str(width)] * depth) + "-10", "clean acc": f"{acc:.3f}",
                    "max_eps": f"{eps:g}", "unstable ReLUs": f"{statistics.median(unstable):.0%}",
                    "s/example (median)": f"{statistics.median(sec):.2f}", "mean": f"{statistics.mean(sec):.2f}",
                    "max": f"{max(sec):.2f}",
                    "total s": f"{total:.1f}",
                    "exact/above/unknown/wrong": "/".join(str(counts[k]) for k in
                                                          ("exact", "above_max_eps", "unknown", "misclassified")),
                })
                print(f"  {rows[-1]['net']} max_eps {eps:g}: {total:.1f} s", flush=True)
    print(table(rows, ["net", "clean acc", "max_eps", "unstable ReLUs", "s/example (median)", "mean", "max",
                       "total s", "exact/above/unknown/wrong"]))


if __name__ == "__main__":
    main()
