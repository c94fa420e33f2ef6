"""How long the paper profile of notebooks 05 and 06 takes: an estimate from measured passes and pass counts.

    python -m bench.paper_time [--repeats 3] [--gpu-tflops 25] [--gpu-floor-ms 1.0]

No run of the paper profile finishes on a CPU, and this project has no GPU, so the README's times are
estimates, made here in three steps, each printed:

1. **Passes per training step, counted**: one real ``train_step`` of each preset's method on the preset's
   model (at batch 8, WideResNet-28-4 and LeNet5-Madry alike) with a hook that counts forward calls made
   with and without gradients. Each call with gradients is a forward+backward pass; each without, a forward.
2. **Seconds per pass, measured on this CPU** (one thread, channels-last as ``fit`` uses it), at each
   preset's batch size (LeNet5-Madry 50, WideResNet-28-4 128): median of ``--repeats``; and the FLOPs of
   one forward (``torch.utils.flop_counter``), for the GPU estimate: a pass takes FLOPs / ``--gpu-tflops``
   (a sustained rate, not a peak: the default 25 TFLOP/s is our assumption for one current data-centre
   GPU in TF32/fp32), and never less than ``--gpu-floor-ms`` (kernel launches dominate small models).
   A forward+backward counts three forwards' FLOPs.
3. **Pass counts of the notebook**, from the presets and ``course.settings(...)``: training steps; the
   reference's validation search each epoch (its PGD steps forward+backward, 11 forwards, per held-out
   image); the evaluation (every restart of every PGD step at every ε for every test image — an upper
   bound: ``skip_broken`` skips examples already broken, which for robust models is most at large ε
   only) and, in 05, the margin distribution (40 PGD steps and 12 bisection steps, 4 rounds, per image).

CPU totals assume the whole run on one CPU thread of this machine; more cores help conv nets.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from mma_edu.course.settings import TABLES
from mma_edu.models import build_model
from mma_edu.presets import EVAL_EPS, get_preset
from mma_edu.speed import as_layout
from mma_edu.train import make_optimizer, train_step

# The runs of each notebook's paper profile: (preset, notebook's label).
RUNS = {
    "05": [("mnist-standard", "standard"), ("mnist-linf-pgd-0.3", "pgd-0.3"), ("mnist-linf-pgd-0.4", "pgd-0.4"),
           ("mnist-linf-mma-0.45", "mma-0.45")],
    "06": [("cifar10-standard", "standard"), ("cifar10-linf-mma-32", "MMA")],
}
TRAIN_SIZE = {"mnist": 60_000, "cifar10": 50_000}
VALIDATION_PGD_STEPS = {"mnist": 40, "cifar10": 10}  # the reference's validation search (train/selection.py)


class _Scale(torch.nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return self.factor * x


def count_passes(preset) -> tuple[int, int]:
    """(forward+backward, forward-only) model calls in one training step of ``preset``'s method (batch 8)."""
    torch.manual_seed(0)
    # A confident model (logits x 100, labels = its predictions): every example is in S+ (p_y > 1/2), so MMA
    # searches all of them, as it does for most of a batch once training is under way.
    model = torch.nn.Sequential(build_model(preset.model), _Scale(100.0))
    shape = (1, 28, 28) if preset.dataset == "mnist" else (3, 32, 32)
    x = torch.rand(8, *shape)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    method = preset.method()
    method.setup(8, torch.device("cpu"))
    counts = {True: 0, False: 0}
    hook = model.register_forward_pre_hook(lambda m, a: counts.__setitem__(torch.is_grad_enabled(),
                                                                            counts[torch.is_grad_enabled()] + 1))
    train_step(model, method, make_optimizer(preset.optimizer, model.parameters(), preset.lr), x, y, torch.arange(8))
    hook.remove()
    return counts[True], counts[False]


def seconds_per_pass(model_name: str, batch: int, repeats: int) -> tuple[float, float, float]:
    """(forward+backward s, forward s, forward FLOPs) per image of ``model_name`` at ``batch`` on this CPU."""
    torch.manual_seed(0)
    model = build_model(model_name).to(memory_format=torch.channels_last)
    shape = (1, 28, 28) if model_name == "lenet5_madry" else (3, 32, 32)
    x = as_layout(torch.rand(batch, *shape), True)
    y = torch.randint(0, 10, (batch,))
    model.train()

    def fb():
        xi = x.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(model(xi), y).backward()

    def f():
        with torch.no_grad():
            model(x)

    out = []
    for fn in (fb, f):
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out.append(statistics.median(times) / batch)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x[:1])
    return out[0], out[1], float(counter.get_total_flops())


def hours(seconds: float) -> str:
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.0f} min"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--gpu-tflops", type=float, default=25.0, help="sustained GPU rate assumed (TFLOP/s)")
    ap.add_argument("--gpu-floor-ms", type=float, default=1.0, help="least time of one pass of a batch on a GPU")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cost = {}
    for model_name, batch in (("lenet5_madry", 50), ("cifar10_wrn28_4", 128)):
        fb, f, flops = seconds_per_pass(model_name, batch, args.repeats)
        cost[model_name] = (fb, f, flops, batch)
        print(f"{model_name}: batch {batch}: {fb * batch:.3f} s per forward+backward, {f * batch:.3f} s per forward "
              f"(CPU, one thread); {flops / 1e6:,.1f} MFLOP per image forward")

    def gpu(passes_fb: float, passes_f: float, images_per_pass: int, model_name: str) -> float:
        """Seconds on the assumed GPU for that many batch passes of images_per_pass images."""
        flops = cost[model_name][2] * images_per_pass * (3 * passes_fb + passes_f)
        return max(flops / (args.gpu_tflops * 1e12), (passes_fb + passes_f) * args.gpu_floor_ms / 1000)

    for nb, runs in RUNS.items():
        cfg = TABLES[nb]["paper"]
        total_cpu = total_gpu = 0.0
        print(f"\nnotebook {nb}, paper profile:")
        for preset_name, label in runs:
            p = get_preset(preset_name)
            fb_s, f_s, _, batch = cost[p.model]
            n_fb, n_f = count_passes(p)
            steps = p.steps
            cpu = steps * batch * (n_fb * fb_s + n_f * f_s)
            gpu_s = gpu(steps * n_fb, steps * n_f, batch, p.model)
            # Validation each epoch: the reference's search on the held-out images (every run of the notebook
            # measures it, for standard training too in 05; 06 measures margins for MMA only).
            epochs = steps * batch // (TRAIN_SIZE[p.dataset] - cfg["n_val"])
            searched = p.method_kind != "standard" or nb == "05"
            v_fb, v_f = (VALIDATION_PGD_STEPS[p.dataset], 11) if searched else (0, 1)
            cpu_v = epochs * cfg["n_val"] * (v_fb * fb_s + v_f * f_s)
            gpu_v = gpu(epochs * v_fb * cfg["n_val"] / 500, epochs * v_f * cfg["n_val"] / 500, 500, p.model)
            # Evaluation: every restart, step and eps for every test image (upper bound), and 05's margins.
            eps = len(EVAL_EPS[(p.dataset, "linf")])
            restarts, pgd_steps = (10, 100) if nb == "05" else (cfg["restarts"], cfg["eval_steps"])
            e_fb = eps * restarts * pgd_steps + (4 * 40 if nb == "05" else 2 * 10)
            e_f = 4 * 12 if nb == "05" else 2 * 12
            cpu_e = cfg["n_test"] * (e_fb * fb_s + e_f * f_s)
            gpu_e = gpu(e_fb * cfg["n_test"] / 500, e_f * cfg["n_test"] / 500, 500, p.model)
            print(f"  {label:>9}: {n_fb} fwd+bwd and {n_f} fwd per step x {steps:,} steps at batch {batch}: "
                  f"train CPU {hours(cpu)}, GPU {hours(gpu_s)}; validation ({epochs} epochs) CPU {hours(cpu_v)}, "
                  f"GPU {hours(gpu_v)}; evaluation (upper bound) CPU {hours(cpu_e)}, GPU {hours(gpu_e)}")
            total_cpu += cpu + cpu_v + cpu_e
            total_gpu += gpu_s + gpu_v + gpu_e
        print(f"  total: CPU (one thread) {hours(total_cpu)}; GPU at {args.gpu_tflops:g} TFLOP/s sustained, "
              f"floor {args.gpu_floor_ms:g} ms per pass: {hours(total_gpu)}")


if __name__ == "__main__":
    main()
