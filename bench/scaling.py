"""How MMA training scales over processes: steps/s and images/s for 1, 2, ... ranks, with the efficiency.

    python -m bench.scaling [--procs 1 2] [--steps 12] [--attack-steps 10] [--device cpu|cuda]

Each row is one ``torchrun --standalone --nproc_per_node P -m bench.scaling --worker ...`` (gloo on CPU,
NCCL on GPUs: one process per GPU, so GPU rows need that many GPUs). Every row trains the same run:
LeNet5-Madry after one clean epoch, MMA ℓ∞ d_max 0.45 with ``--attack-steps`` PGD and 10 bisection
steps, global batch 50 (each of P ranks takes 50 / P examples), Adam. The first 2 steps are warm-up;
the rest are timed on rank 0 (ranks move in step with each other: every step all-reduces).

speed-up = (steps/s with P processes) / (steps/s with 1); efficiency = speed-up / P. On CPU each process
uses one thread (OMP_NUM_THREADS=1), so P processes use P cores: the table shows what a second core
buys through torch.distributed, communication and the duplicated work included (each rank draws the
random starts of the whole batch and averages the gradients).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from .common import machine, mid_training_lenet, table

BATCH = 50
WARMUP = 2


def worker(args) -> None:
    from mma_edu.data import mnist_offline
    from mma_edu.distributed import init_from_env, shutdown
    from mma_edu.train import MMA, fit

    if args.device == "cpu":
        torch.set_num_threads(1)  # one core per process
    dist = init_from_env(args.device)
    model = mid_training_lenet()  # cached in build/bench by the parent
    method = MMA(d_max=0.45, norm="linf", mineps=0.1, steps=args.attack_steps, search_steps=10)
    stamps: list[float] = []
    fit(model, mnist_offline().train, method, steps=WARMUP + args.steps, batch_size=BATCH, lr=1e-3,
        device=args.device, seed=0, progress=False, dist=dist,
        callbacks=[lambda e: stamps.append(time.perf_counter()) if e.kind == "step" else None])
    if dist.is_main:
        seconds = stamps[-1] - stamps[WARMUP - 1]
        Path(args.result).write_text(json.dumps({"procs": dist.world, "backend": dist.backend or "-",
                                                 "seconds": seconds, "steps": args.steps}))
    shutdown(dist)


def run(procs: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
               "-m", "bench.scaling", "--worker", "--result", str(result), "--steps", str(args.steps),
               "--attack-steps", str(args.attack_steps), "--device", args.device]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"{procs} process(es) failed:\n{proc.stderr[-3000:]}")
        return json.loads(result.read_text())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=12, help="timed steps per row (after 2 warm-up steps)")
    p.add_argument("--attack-steps", type=int, default=10, help="PGD iterations of AN-PGD (the paper: 40)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return
    if args.device == "cuda" and max(args.procs) > torch.cuda.device_count():
        raise SystemExit(f"--device cuda needs one GPU per process: {max(args.procs)} asked, "
                         f"{torch.cuda.device_count()} here")
    mid_training_lenet()  # train and cache the starting model once, before the workers load it
    rows, base = [], None
    for procs in args.procs:
        r = run(procs, args)
        rate = r["steps"] / r["seconds"]
        base = base or (rate if procs == args.procs[0] else None)
        speedup = rate / base * args.procs[0] if base else float("nan")
        rows.append({"processes": procs, "backend": r["backend"], "s/step": f"{1 / rate:.3f}",
                     "steps/s": f"{rate:.2f}", "images/s": f"{rate * BATCH:.0f}", "speed-up": f"{speedup:.2f}x",
                     "efficiency": f"{speedup / procs:.0%}"})
    print(f"MMA training, LeNet5-Madry, global batch {BATCH}, AN-PGD {args.attack_steps} PGD + 10 bisection steps, "
          f"{args.steps} timed steps; {args.device}; {machine()}")
    print(table(rows, ["processes", "backend", "s/step", "steps/s", "images/s", "speed-up", "efficiency"]))


if __name__ == "__main__":
    main()
