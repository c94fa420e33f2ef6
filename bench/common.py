"""Shared pieces of the benchmarks: the models they time, a timer, memory readings and a table printer."""

from __future__ import annotations

import gc
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from mma_edu.checkpoint import read_checkpoint, save_checkpoint
from mma_edu.data import mnist_offline
from mma_edu.models import LeNet5Madry, build_model
from mma_edu.train import MMA, Standard, fit

CACHE = Path("build/bench")


def _cached(name: str, make: Callable[[], torch.nn.Module], rebuild: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Train once with ``make`` and keep the weights in build/bench/ (later runs load them into ``rebuild()``)."""
    path = CACHE / f"{name}.pt"
    if path.exists():
        model = rebuild()
        model.load_state_dict(read_checkpoint(path)["model"])
        return model
    model = make()
    save_checkpoint(path, {"model": model.state_dict()})  # atomic: an interrupted run leaves no broken cache
    return model


def mid_training_lenet() -> torch.nn.Module:
    """LeNet5-Madry after one clean epoch of Adam 1e-3 at batch 50 on the offline MNIST subset (~95% clean)."""

    def make():
        torch.manual_seed(0)
        model = LeNet5Madry()
        fit(model, mnist_offline().train, Standard(), epochs=1, progress=False, device="cpu", channels_last=False)
        return model

    return _cached("lenet_clean_1epoch", make, LeNet5Madry)


def mma_small_cnn() -> torch.nn.Module:
    """A SmallCNN trained with MMA (ℓ∞, d_max 0.3, 10 attack steps) for 6 epochs: a model with real margins."""

    def make():
        torch.manual_seed(0)
        model = build_model("small_cnn")
        fit(model, mnist_offline().train, MMA(0.3, "linf", mineps=0.05, steps=10), epochs=6, progress=False,
            device="cpu")
        return model

    return _cached("small_cnn_mma_0.3", make, lambda: build_model("small_cnn"))


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB, from /proc (Linux); NaN elsewhere."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return float("nan"), float("nan")


def live_tensor_mib() -> float:
    """MiB held by tensors Python can still reach (after a garbage collection): flat across steps means no leak."""
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # touching some deprecated torch objects warns
        tensors = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, cuda={torch.cuda.is_available()}")


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table with one row per dict."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*columns), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*row) for row in cells]
    return "\n".join(lines)
