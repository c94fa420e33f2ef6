"""The worker of tests/test_distributed.py: one tiny MMA run, a run stopped by SIGTERM on one rank and
resumed, a sharded evaluation and the ``evaluate``, ``margins`` and ``reproduce`` commands, on every process
torchrun starts (gloo, CPU).

    torchrun --standalone --nproc_per_node 2 tests/distributed_child.py OUT_FOLDER

also runs as one plain process (no torchrun): then it is the single-process reference. Rank 0 writes
what it measured into OUT_FOLDER/results-W.pt (W = the number of processes).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from datetime import timedelta
from pathlib import Path

import torch

from mma_edu.checkpoint import read_checkpoint, save_checkpoint
from mma_edu.cli import main as cli_main
from mma_edu.data import mnist_offline, random_crop_flip
from mma_edu.distributed import init_from_env
from mma_edu.evaluate import margin_distribution, robust_accuracy
from mma_edu.interrupts import TrainingInterrupted
from mma_edu.models import build_model
from mma_edu.train import LAST, MMA, PGDAT, Standard, fit, validate
from mma_edu.train.selection import reference_validation_margin

torch.set_num_threads(1)
SPLITS = mnist_offline()
TRAIN, VAL, TEST = SPLITS.train.subset(60), SPLITS.test.subset(20), SPLITS.test.subset(50)
STEPS, BATCH = 7, 20  # 3 steps per epoch: two epochs (validation, best.pt) and a partial one
STOP_AT = 4  # the step after which rank 1 (alone) receives SIGTERM


def start_weights(folder: Path) -> dict:
    """A briefly pretrained SmallCNN (so that MMA's S+ is not empty), made once and shared by file."""
    path = folder / "start.pt"
    if not path.exists():
        torch.manual_seed(0)
        model = build_model("small_cnn", width=4, hidden=16)
        fit(model, SPLITS.train.subset(1000), Standard(), steps=100, batch_size=50, lr=3e-3, progress=False,
            device="cpu")
        save_checkpoint(path, {"model": model.state_dict()})
    return read_checkpoint(path)["model"]


def bn_net(sync: bool) -> torch.nn.Module:
    """A tiny conv net with batch norm; ``sync``: its batch norm synchronized over the ranks."""
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2, bias=False), (CpuSyncBatchNorm if sync else torch.nn.BatchNorm2d)(4),
                               torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 13 * 13, 10))


class CpuSyncBatchNorm(torch.nn.SyncBatchNorm):
    """SyncBatchNorm's arithmetic on CPU (torch's own runs on GPUs only): in train mode the batch statistics
    are sums over every rank's examples, through an all-reduce that autograd differentiates; a rank with an
    empty batch takes part (as torch's does). ``empty`` counts the empty batches this rank brought."""

    empty = 0

    def forward(self, x):
        if not self.training:
            return torch.nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                                  False, 0.0, self.eps)
        CpuSyncBatchNorm.empty += x.shape[0] == 0
        c, shape = x.shape[1], (1, -1, 1, 1)
        local = torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), x.new_tensor([x.numel() / c])])
        total = torch.distributed.nn.functional.all_reduce(local)
        n = total[-1]
        mean = total[:c] / n
        var = total[c : 2 * c] / n - mean * mean
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * n / (n - 1))
            self.num_batches_tracked += 1
        return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps) * self.weight.view(shape) + \
            self.bias.view(shape)


def bn_weights(folder: Path) -> dict:
    path = folder / "bn-start.pt"
    if not path.exists():
        model = bn_net(sync=False)
        fit(model, SPLITS.train.subset(1000), Standard(), steps=12, batch_size=50, lr=3e-3, progress=False,
            device="cpu")
        save_checkpoint(path, {"model": model.state_dict()})
    return read_checkpoint(path)["model"]


def shift(x: torch.Tensor) -> torch.Tensor:
    return random_crop_flip(x, 2, flip=False)  # random draws every step: sharded as the single process draws


def train(out: Path, start: dict, dist, *, method=None, resume=False, callbacks=()):
    model = build_model("small_cnn", width=4, hidden=16)
    model.load_state_dict(start)
    method = method or MMA(d_max=0.3, norm="linf", mineps=0.05, steps=3, search_steps=4)
    fit(model, TRAIN, method, steps=STEPS, batch_size=BATCH, lr=1e-3, augment=shift, eval_data=VAL, eval_size=20,
        eval_steps=3, out=out, resume=resume, progress=False, device="cpu", seed=3, callbacks=callbacks, dist=dist)
    return model, method


def main(root: Path) -> None:
    if "WORLD_SIZE" in os.environ:  # under torchrun: a rank stuck in a collective fails in a minute, not thirty
        torch.distributed.init_process_group("gloo", timeout=timedelta(seconds=60))
    dist = init_from_env("cpu")  # finds the group joined
    world = dist.world
    start = dist.on_main(lambda: start_weights(root))
    res: dict = {"world": world}

    # 1. An uninterrupted run.
    model, method = train(root / f"plain-{world}", start, dist)
    res["plain"] = {"model": model.state_dict(), "margins": method.margins.clone(),
                    "last": dist.on_main(lambda: read_checkpoint(root / f"plain-{world}" / LAST))}

    # 2. SIGTERM to one rank only (the last) after step STOP_AT; every rank stops there, rank 0 saves.
    def kill_one(event):
        if event.kind == "step" and event.step == STOP_AT and dist.rank == world - 1:
            os.kill(os.getpid(), signal.SIGTERM)

    out = root / f"stopped-{world}"
    try:
        train(out, start, dist, callbacks=[kill_one])
        res["stopped_at"] = None
    except TrainingInterrupted as stop:
        res["stopped_at"], res["signal"] = stop.step, stop.signum
    if dist.is_main:
        shutil.copytree(out, root / f"stopped-copy-{world}")  # for a resume with another world size
    dist.barrier()
    model, method = train(out, start, dist, resume=True)
    res["resumed"] = {"model": model.state_dict(), "margins": method.margins.clone(),
                      "last": dist.on_main(lambda: read_checkpoint(out / LAST))}
    res["files"] = dist.on_main(lambda: sorted(p.name for p in out.iterdir()))

    # 3. PGD-AT: its random starts cover the whole batch.
    model, _ = train(root / f"pgdat-{world}", start, dist, method=PGDAT(eps=0.2, steps=3))
    res["pgdat"] = model.state_dict()

    # 4. Batch norm synchronized over the ranks (plain batch norm in one process) with MMA's bn_mode
    #    "reference": AN-PGD's train-mode search on each rank's S+ only, 2 examples per rank per step.
    bn_start = dist.on_main(lambda: bn_weights(root))
    model = bn_net(sync=dist.active)
    model.load_state_dict(bn_start)
    method = MMA(d_max=0.3, norm="linf", mineps=0.05, steps=3, search_steps=4, bn_mode="reference")
    fit(model, TRAIN, method, steps=8, batch_size=4, lr=1e-3, progress=False, device="cpu", seed=5, dist=dist)
    res["sync_bn"] = {"model": model.state_dict(), "margins": method.margins.clone(),
                      "empty": sum(dist.all_gather_object(CpuSyncBatchNorm.empty))}

    # 5. Sharded evaluation: batches of 20 of 50 test digits (three batches, the last short).
    model = build_model("small_cnn", width=4, hidden=16)
    model.load_state_dict(start)
    ra = robust_accuracy(model, TEST, norm="linf", eps_list=[0.05, 0.1, 0.2], steps=3, restarts=2, batch_size=20,
                         device="cpu", progress=False, dist=dist)
    md = margin_distribution(model, TEST, norm="linf", max_eps=0.5, steps=3, search_steps=4, refine=1,
                             batch_size=20, device="cpu", progress=False, dist=dist)
    # l2 margins: "best" by default, AN-PGD and FMN (two restarts: FMN's second start is random).
    md2 = margin_distribution(model, TEST, norm="l2", max_eps=3.0, steps=3, search_steps=4, restarts=2, fmn_steps=5,
                              batch_size=20, device="cpu", progress=False, dist=dist)
    res["eval"] = {"robust": ra.robust, "clean": ra.clean, "accuracy": ra.accuracy, "margin": md.margin,
                   "found": md.found, "x_adv": md.x_adv, "l2_margin": md2.margin, "l2_found_by": md2.found_by,
                   "l2_x_adv": md2.x_adv}
    # Validation (fit's model selection), sharded the same way: two batches of 500, three of 8.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        est = validate(model, SPLITS.test, torch.device("cpu"), norm="linf", max_eps=0.5, size=1000, steps=1,
                       selection="estimate", dist=dist)
    ref = reference_validation_margin(model, VAL, norm="linf", max_eps=0.5, eps=0.2, step_size=0.05, pgd_steps=2,
                                      batch_size=8, device="cpu", dist=dist)
    res["validation"] = {"estimate": est, "reference": ref.margins}
    res["eval_same_on_every_rank"] = all(
        torch.equal(r, ra.robust) and torch.equal(m, md.margin)
        for r, m in dist.all_gather_object((ra.robust, md.margin)))
    # Ranks that disagree on the run are refused on every rank (not left waiting for each other).
    try:
        fit(build_model("small_cnn", width=4, hidden=16), TRAIN, Standard(), steps=2, batch_size=BATCH,
            progress=False, device="cpu", seed=dist.rank, dist=dist)
        res["mismatch"] = None
    except ValueError as err:
        res["mismatch"] = str(err)
    if dist.is_main:
        torch.save(res, root / f"results-{world}.pt")

    # 6. The command line in the same processes (it finds the process group already joined, and leaves it).
    ck = str(root / "plain-1" / LAST)  # the single-process run's, made first
    common = ["--norm", "linf", "--data", "offline", "--n", "50", "--batch-size", "20", "--device", "cpu",
              "--no-progress"]
    rc = [cli_main(["evaluate", ck, *common, "--eps", "0.1", "0.2", "--restarts", "2", "--steps", "3",
                    "--json", str(root / f"evaluate-{world}.json")]),
          cli_main(["margins", ck, *common, "--max-eps", "0.5", "--steps", "3", "--refine", "1",
                    "--json", str(root / f"margins-{world}.json")])]
    rc.append(cli_main(["reproduce", ck, "--norm", "l2", "--data", "offline", "--n", "50", "--steps", "2",
                        "--restarts", "2", "--batch-size", "20", "--margin-n", "30", "--margin-steps", "2",
                        "--device", "cpu", "--no-progress", "--json", str(root / f"reproduce-{world}.json")]))
    # A user error on every rank: each says so on stderr, tagged with its rank, and exits 2.
    rc.append(cli_main(["evaluate", str(root / "missing.pt"), *common, "--eps", "0.1"]))
    if rc != [0, 0, 0, 2]:
        sys.exit(f"mma-edu returned {rc}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
