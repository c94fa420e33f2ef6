"""Train a gradient-masking candidate for issue 24: LeNet5-Madry, ℓ∞ PGD-AT, on the offline digits.

    python -m bench.masked_model --eps 0.4 --steps 4000 --out runs/masked/lenet5-pgd-0.4

ℓ∞ PGD training of Madry's LeNet5 at ε 0.3–0.4 is known to make the first layer threshold the pixels, which
flattens the gradients that ℓ2 attacks follow; FAB and other minimum-norm attacks then find much shorter ℓ2
perturbations than PGD-based searches. This trains such a model the way the budget study trains its SmallCNNs
(Adam, batch 50, ε ramp over the first quarter, 3,500 training digits, validation margins on 200 held-out
digits, best.pt by the best validation margin) and leaves it in ``--out`` for ``python -m bench.masked_l2
--checkpoint``. One thread; resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mma_edu.budget_study import splits
from mma_edu.models import build_model
from mma_edu.train import LAST, PGDAT, fit

from .common import machine


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eps", type=float, default=0.4)
    ap.add_argument("--steps", type=int, default=4000, help="training steps (batch 50)")
    ap.add_argument("--attack-steps", type=int, default=10, help="PGD iterations per training step")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train, val, _ = splits()
    torch.manual_seed(args.seed)
    model = build_model("lenet5_madry")
    method = PGDAT(args.eps, "linf", steps=args.attack_steps, warmup_steps=round(0.25 * args.steps))
    resume = (Path(args.out) / LAST).is_file()
    t = time.perf_counter()
    fit(model, train, method, steps=args.steps, batch_size=50, optimizer="adam", lr=args.lr, eval_data=val,
        eval_size=200, out=args.out, resume=resume, overwrite=not resume, device="cpu", seed=args.seed,
        progress=True, meta={"bench": "masked_model", **vars(args)})
    print(f"trained in {time.perf_counter() - t:.0f} s; {machine()}")


if __name__ == "__main__":
    main()
