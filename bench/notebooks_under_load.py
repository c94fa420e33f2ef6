"""Time the course notebooks with a competing CPU load beside them (issue 25: the course must hold on a busy laptop).

    python -m bench.notebooks_under_load                  # laptop profile, every notebook, load on and off
    python -m bench.notebooks_under_load --only 03 06     # some notebooks
    python -m bench.notebooks_under_load --no-baseline    # under load only

For each notebook: a run on the machine as it is (the baseline), then a run with one busy process per CPU core
started beside it (``--load N`` to choose N), each in a fresh kernel through :func:`mma_edu.tour.run_notebook`.
It prints seconds, the ratio loaded/baseline and whether the loaded run stays within ``--budget`` seconds (the
course's goal: 5 minutes). Run it on a machine that is otherwise quiet: a baseline measured beside other
programs is not a baseline, and the script says so when the load average at the start is above one per core.
The executed copies go to ``build/bench-load/`` (baseline) and ``build/bench-load/loaded/``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from mma_edu.tour import KERNEL, kernel_problem, notebooks, run_notebook

OUT = Path("build/bench-load")


def _spin(stop) -> None:
    """One busy process: pure-Python arithmetic until told to stop (no threads, no torch: a plain CPU hog)."""
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x = (x + i * i) % 1_000_003


@contextmanager
def cpu_load(processes: int):
    """``processes`` busy processes while the block runs; stopped (and joined) on the way out, errors included."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    workers = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(processes)]
    for w in workers:
        w.start()
    try:
        yield workers
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():  # only our own workers, by handle
                w.terminate()
                w.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notebooks_under_load", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="laptop", choices=("smoke", "laptop", "paper"))
    parser.add_argument("--only", nargs="*", default=None, help="notebook numbers, e.g. 03 06 (default: all)")
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1, help="busy processes (default: one per core)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the runs without load")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds a loaded run may take (default 300)")
    parser.add_argument("--kernel", default=KERNEL)
    parser.add_argument("--notebooks", default="notebooks")
    args = parser.parse_args(argv)
    if args.load < 1:
        parser.error(f"--load must be at least 1, got {args.load}")
    problem = kernel_problem(args.kernel)
    if problem:
        parser.error(problem)
    books = [nb for nb in notebooks(args.notebooks) if args.only is None or nb.name[:2] in args.only]
    if not books:
        parser.error(f"no notebooks match --only {args.only} in {args.notebooks}/")
    cores = os.cpu_count() or 1
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if busy > cores:
        print(f"WARNING: load average {busy:.1f} on {cores} cores before starting: the machine is not quiet, "
              "so the baseline is not one (and the loaded runs carry more than --load).", flush=True)
    params = {"profile": args.profile}
    rows = []
    for nb in books:
        base = None
        if not args.no_baseline:
            print(f"{nb.name}: baseline ...", flush=True)
            base = run_notebook(nb, OUT, params, args.kernel)
        print(f"{nb.name}: with {args.load} busy process(es) ...", flush=True)
        with cpu_load(args.load):
            loaded = run_notebook(nb, OUT / "loaded", params, args.kernel)
        rows.append((nb.name, base, loaded))
    width = max(len(r[0]) for r in rows)
    print(f"\nprofile {args.profile!r}, {cores} cores, load = {args.load} busy process(es); budget {args.budget:g} s")
    print(f"{'notebook':<{width}}  {'baseline s':>10}  {'loaded s':>9}  {'ratio':>6}  within budget  status")
    ok = True
    for name, base, (sec, status) in rows:
        ratio = f"{sec / base[0]:6.2f}" if base else f"{'-':>6}"
        fits = sec <= args.budget and status == "ok"
        ok &= fits and (base is None or base[1] == "ok")
        shown = status if base is None or base[1] == "ok" else f"baseline {base[1]}; loaded {status}"
        print(f"{name:<{width}}  {base[0] if base else float('nan'):10.1f}  {sec:9.1f}  {ratio}  "
              f"{'yes' if fits else 'NO':>13}  {shown}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
