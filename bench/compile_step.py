"""Does ``torch.compile`` (inductor, CPU) speed up the budget study's training steps? Eager vs compiled, side by side.

    python -m bench.compile_step [--repeats 15] [--model small_cnn|lenet]

The setting of the budget study (mma_edu/budget_study.py): the zoo's SmallCNN with real margins (or
LeNet5-Madry), batch 50, one CPU thread, an MMA step (AN-PGD: 10 PGD iterations + 10 bisection steps) and
a PGD-AT step (10 iterations). The compiled rows wrap the model in ``torch.compile`` (default inductor
backend, ``dynamic=True`` because AN-PGD runs on the S⁺ sub-batch, whose size changes every step).
Rows are interleaved so that machine noise hits all alike; the first compiled steps (compilation) are
timed separately. The equality check compares the ε̂ each path's MMA step estimates from the same
weights, memory and seeds.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from mma_edu.data import mnist_offline
from mma_edu.train import MMA, PGDAT, train_step

from .common import machine, mid_training_lenet, mma_small_cnn, table


def _step_fn(model: torch.nn.Module, method, x, y, index):
    opt = torch.optim.Adam(model.parameters(), lr=0.0)  # lr 0: every repeat times the same weights

    def step():
        torch.manual_seed(0)
        return train_step(model, method, opt, x, y, index)

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compile_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--model", choices=("small_cnn", "lenet"), default="small_cnn")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(machine(), "| 1 thread")
    base = mma_small_cnn() if args.model == "small_cnn" else mid_training_lenet()
    data = mnist_offline().train
    x, y, index = data.x[:50], data.y[:50], torch.arange(50)
    rows = []
    for name, make in (("MMA-0.45 (10+10)", lambda: MMA(0.45, "linf", steps=10)),
                       ("PGD-AT 0.4 (10)", lambda: PGDAT(0.4, "linf", steps=10))):
        eager = copy.deepcopy(base).train()
        compiled_model = copy.deepcopy(base).train()
        compiled = torch.compile(compiled_model, dynamic=True)
        methods = {}
        for label in ("eager", "compiled"):
            m = make()
            m.setup(len(data), torch.device("cpu"))
            if isinstance(m, MMA):
                m.margins[:50] = 0.2  # remembered margins mid-training
            methods[label] = m
        fns = {"eager": _step_fn(eager, methods["eager"], x, y, index),
               "compiled": _step_fn(compiled, methods["compiled"], x, y, index)}
        t0 = time.perf_counter()
        for _ in range(3):
            fns["compiled"]()
        compile_s = time.perf_counter() - t0
        fns["eager"]()
        times = {"eager": [], "compiled": []}
        for _ in range(args.repeats):
            for label, fn in fns.items():
                t = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - t)
        e, c = statistics.median(times["eager"]), statistics.median(times["compiled"])
        row = {"step": name, "eager s": f"{e:.4f}", "compiled s": f"{c:.4f}", "eager / compiled": f"{e / c:.2f}x",
               "first 3 compiled steps s": f"{compile_s:.1f}"}
        if isinstance(methods["eager"], MMA):
            a, b = methods["eager"].margins[:50], methods["compiled"].margins[:50]
            rel = ((a - b).abs() / a.clamp(min=1e-6)).max().item()
            row["max rel. diff of eps-hat"] = f"{rel:.1e}"
        rows.append(row)
    print(table(rows, list(dict.fromkeys(k for r in rows for k in r))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
