"""ℓ2 margins of the zoo's models by AN-PGD, by our FMN and by "best" (the shorter per example), with times.

    python -m bench.l2_margins [--n 200] [--models standard pgd-0.3 pgd-0.4] [--max-eps 4.0] [--peers] [--fab]

Issue 17: AN-PGD's ℓ2 margins of ℓ∞-trained models are too large. For each
model, on the first ``n`` evaluation digits (:func:`mma_edu.zoo.eval_data`):
the median ℓ2 margin, the fraction of digits broken below ``max_eps`` and
the seconds of :func:`mma_edu.margins.estimate_margins` with
``method="anpgd"`` (the defaults: 40 steps, refine 3), ``"fmn"`` (100 steps),
``"best"`` and ``"best"`` with ``targets="all"`` (issue 24); the time column
also gives each time over AN-PGD's. With ``--fab``, adv-lib's FAB (100
steps; adv-lib installed by hand, see :mod:`mma_edu.peer`). With
``--peers`` (the ``attacks`` extra), foolbox's FMN and DDN (100 steps) for
reference — unverified by us beyond a forward pass. Every median counts an
unbroken digit at max_eps (a lower value than its true margin could be).
"""

from __future__ import annotations

import argparse
import time

import torch

from mma_edu import zoo
from mma_edu.margins import estimate_margins

from .common import machine, table


def _peer(model, data, attack: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(lengths, found) of a foolbox ℓ2 attack, 100 steps; lengths of unbroken digits are inf."""
    import foolbox as fb

    from mma_edu import norms
    from mma_edu.losses import logit_margin

    fmodel = fb.PyTorchModel(model.eval(), bounds=(0.0, 1.0))
    atk = fb.attacks.L2FMNAttack(steps=100) if attack == "fmn" else fb.attacks.DDNAttack(steps=100)
    _, adv, _ = atk(fmodel, data.x, data.y, epsilons=None)
    with torch.no_grad():
        ok = (logit_margin(model(adv), data.y) >= 0) & (adv.min() >= 0) & (adv.max() <= 1)
    length = torch.where(ok, norms.norm_of(adv - data.x, "l2"), torch.tensor(float("inf")))
    return length, ok


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--models", nargs="+", default=["standard", "pgd-0.3", "pgd-0.4"])
    ap.add_argument("--max-eps", type=float, default=4.0)
    ap.add_argument("--peers", action="store_true", help="also foolbox FMN and DDN (needs the attacks extra)")
    ap.add_argument("--fab", action="store_true", help="also adv-lib's FAB (adv-lib installed by hand)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = zoo.eval_data(args.n)
    print(f"l2 margins of {args.n} digits, max_eps {args.max_eps:g}; {machine()}")
    rows = []
    for name in args.models:
        model = zoo.load(name)
        base = None
        for method, extra in (("anpgd", {}), ("fmn", {}), ("best", {}), ("best", {"targets": "all"})):
            torch.manual_seed(0)
            t = time.perf_counter()
            r = estimate_margins(model, data.x, data.y, norm="l2", max_eps=args.max_eps, method=method, **extra)
            sec = time.perf_counter() - t
            base = sec if base is None else base
            label = method + "".join(f", {k}={v!r}" for k, v in extra.items())
            rows.append({"model": name, "estimator": label, "median": f"{r.margin.median():.3f}",
                         "broken": f"{r.found.float().mean():.3f}", "seconds": f"{sec:.1f} ({sec / base:.2f}x)",
                         "found_by": r.found_by_counts()})
        if args.peers:
            for attack in ("fmn", "ddn"):
                t = time.perf_counter()
                length, ok = _peer(model, data, attack)
                sec = time.perf_counter() - t
                rows.append({"model": name, "estimator": f"foolbox {attack}",
                             "median": f"{length.clamp(max=args.max_eps).median():.3f}",
                             "broken": f"{ok.float().mean():.3f}", "seconds": f"{sec:.1f} ({sec / base:.2f}x)"})
        if args.fab:
            from mma_edu.peer import advlib_distances

            t = time.perf_counter()
            length, ok, _ = advlib_distances(model, data, attack="fab", steps=100)
            sec = time.perf_counter() - t
            median = length.nan_to_num(args.max_eps).clamp(max=args.max_eps).median()  # unbroken at max_eps
            rows.append({"model": name, "estimator": "adv-lib FAB", "median": f"{median:.3f}",
                         "broken": f"{ok.float().mean():.3f}", "seconds": f"{sec:.1f} ({sec / base:.2f}x)"})
    print(table(rows, ["model", "estimator", "median", "broken", "seconds", "found_by"]))


if __name__ == "__main__":
    main()
