"""Time the paper's evaluation protocol, naive vs fast, side by side in one process.

    python -m bench.evaluation [--n 100] [--steps 100] [--restarts 10] [--device auto]

Whitebox PGD at each ε of the paper's MNIST ℓ∞ list (0.1, 0.2, 0.3, 0.4),
``restarts`` restarts of ``steps`` iterations (half cross-entropy, half CW),
an example robust only if every restart fails. Rows per model:

- ``naive``: every restart on every example at every ε (``skip_broken=False``);
- ``fast``: only examples still unbroken are attacked — by later restarts and
  at larger ε (``skip_broken=True``, the default of ``robust_accuracy``);
- ``fast, channels-last``: the same with the model and inputs in channels-last
  layout (``channels_last=None``, the default, picks it for conv nets).

``example-passes`` counts examples sent through the model (forward passes,
each followed by a backward inside PGD): the work the fast path skips. An
example that survives must be attacked by every restart at every ε, so for
robust models the saving is bounded by the fraction that breaks early.
The equality column compares each row's per-example robust matrix
(examples × ε) with the naive one. Two models: LeNet5-Madry after one clean
epoch (no robustness training: most examples break early) and a SmallCNN
trained with MMA (real margins: many examples survive to the larger ε).
"""

from __future__ import annotations

import argparse
import time

import torch

from mma_edu.data import mnist_offline
from mma_edu.evaluate import robust_accuracy
from mma_edu.presets import EVAL_EPS, eval_step_fraction
from mma_edu.train import resolve_device

from .common import machine, mid_training_lenet, mma_small_cnn, table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.evaluation", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100, help="test examples (default 100)")
    p.add_argument("--steps", type=int, default=100, help="PGD iterations per restart (default 100, as the paper)")
    p.add_argument("--restarts", type=int, default=10, help="restarts (default 10: 5 CE + 5 CW)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    dev = resolve_device(args.device)
    eps = EVAL_EPS[("mnist", "linf")]
    test = mnist_offline().test.subset(args.n)
    print(f"robust accuracy, MNIST linf eps {eps}, {args.n} examples, {args.restarts} restarts x {args.steps} "
          f"steps; {machine()}")
    rows = []
    for name, model in [("lenet (1 clean epoch)", mid_training_lenet()), ("small_cnn (MMA 0.3)", mma_small_cnn())]:
        model = model.to(dev).eval()
        passes = [0]  # examples through the model, counted by a forward hook
        hook = model.register_forward_hook(lambda mod, inp, out: passes.__setitem__(0, passes[0] + len(inp[0])))
        kw = dict(norm="linf", eps_list=eps, steps=args.steps, restarts=args.restarts,
                  step_fraction=eval_step_fraction("mnist", "linf", args.steps), device=dev, progress=False)
        results = {}
        for label, skip, cl in [("naive", False, False), ("fast", True, False), ("fast, channels-last", True, True)]:
            passes[0] = 0
            t = time.perf_counter()
            r = robust_accuracy(model, test, skip_broken=skip, channels_last=cl, **kw)
            results[label] = (time.perf_counter() - t, r, passes[0])
        hook.remove()
        t_naive, naive, p_naive = results["naive"]
        for label, (sec, r, n_pass) in results.items():
            differ = int((r.robust != naive.robust).sum())
            rows.append({
                "model": name, "path": label, "seconds": f"{sec:.1f}", "x naive": f"{t_naive / sec:.2f}",
                "example-passes": f"{n_pass:,} ({100 * n_pass / p_naive:.0f}%)",
                "robust acc per eps": " ".join(f"{a:.2f}" for a in r.accuracy), "AvgRobAcc": f"{r.avg_rob_acc:.3f}",
                "same as naive": "yes" if differ == 0 else f"no ({differ} of {r.robust.numel()} entries differ)",
            })
    print(table(rows, ["model", "path", "seconds", "x naive", "example-passes", "robust acc per eps", "AvgRobAcc",
                       "same as naive"]))


if __name__ == "__main__":
    main()
