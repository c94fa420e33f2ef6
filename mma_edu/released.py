"""The authors' released MMA/OMMA checkpoints: names, the paper's numbers, verified downloads.

The authors published 20 trained models (``model_best.pt`` files holding
``{'epoch': int, 'model': state_dict}``) in the repository BorealisAI/mma_training.
``mma_edu/released_checkpoints.json`` pins them: the commit, each file's path
and its git blob SHA-1, plus the numbers the paper reports for some of them.

- :func:`list_released` — the names, e.g. ``"mnist-Linf-MMA-0.45-sd0"``.
- :func:`released_info` — path, checksum, dataset, norm, method, size and the
  paper's reported numbers of one model.
- :func:`download_checkpoint` — fetch one file into the cache folder, verify
  it, and return its path (no download when a verified copy is cached).

Cache folder: ``$MMA_EDU_CACHE`` if set, else ``~/.cache/mma-edu/checkpoints``;
each model lands in ``<cache>/<name>/model_best.pt``.

Integrity: git stores a file as the blob ``b"blob <size>\\0" + data``, named
by its SHA-1. A downloaded file is accepted only if that hash equals the
pinned one; anything else (a truncated transfer, a tampered mirror) is
deleted and refused with :class:`IntegrityError`. The file is written to a
temporary name in the cache folder and renamed only once verified, so the
cache never holds a partial or unverified file under the final name.
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGISTRY_FILE = Path(__file__).with_name("released_checkpoints.json")
CACHE_ENV = "MMA_EDU_CACHE"
CHUNK = 1 << 20  # bytes per read while streaming a download
NAME_RE = re.compile(
    r"^(?P<dataset>mnist|cifar10)-(?P<norm>Linf|L2)-(?P<method>MMA|OMMA)-(?P<size>[0-9.]+)-sd(?P<seed>\d+)$")


class IntegrityError(ValueError):
    """A downloaded or cached file does not match its pinned git blob SHA-1 (or arrived truncated)."""


class DownloadError(OSError):
    """A download failed before any data could be checked (network, HTTP status)."""


@dataclass(frozen=True)
class ReportedRow:
    """A robust-accuracy row of the paper (all numbers in %); ``eps`` in input units."""

    source: str
    clean: float
    eps: list[float]
    robust: list[float]
    avg_rob_acc: float
    avg_acc: float
    eps_labels: list[str]


@dataclass(frozen=True)
class ReportedL2Distance:
    """The paper's CW-L2 minimum-distance row: clean accuracy (%), mean and median ℓ2 distance."""

    source: str
    clean: float
    mean: float
    median: float


@dataclass(frozen=True)
class ReleasedModel:
    """One released checkpoint: where it lives, how to verify it, what it is and what the paper reports."""

    name: str
    path: str  # inside the authors' repository
    git_blob_sha1: str
    commit: str
    url_template: str
    dataset: str  # "mnist" or "cifar10"
    norm: str  # "linf" or "l2"
    method: str  # "mma" or "omma"
    size: float  # d_max in input units (CIFAR10 ℓ∞: the name's number / 255)
    size_label: str  # d_max as written in the name ("0.45", "32", "2.0")
    seed: int
    reported: ReportedRow | None
    reported_l2_distance: ReportedL2Distance | None
    notes: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """The raw-file URL at the pinned commit."""
        return self.url_template.format(commit=self.commit, path=self.path)

    def url_at(self, base_url: str | None = None) -> str:
        """``base_url + "/" + path`` for a mirror, or :attr:`url` when ``base_url`` is None."""
        return self.url if base_url is None else base_url.rstrip("/") + "/" + self.path.lstrip("/")

    @property
    def preset(self) -> str:
        """The name of the matching training preset (``mma-edu presets``)."""
        return f"{self.dataset}-{self.norm}-{self.method}-{self.size_label}"


def load_registry(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The raw registry JSON (default: the copy shipped in the package, :data:`REGISTRY_FILE`)."""
    path = Path(path) if path is not None else REGISTRY_FILE
    with open(path, encoding="utf-8") as f:
        reg = json.load(f)
    for key in ("commit", "url_template", "models"):
        if key not in reg:
            raise ValueError(f"registry {path} has no {key!r} entry")
    return reg


def list_released() -> list[str]:
    """Names of the released checkpoints, sorted."""
    return sorted(load_registry()["models"])


def parse_name(name: str) -> dict[str, Any]:
    """Dataset, norm, method, size and seed from a name such as ``cifar10-Linf-MMA-32-sd0``."""
    m = NAME_RE.match(name)
    if m is None:
        raise ValueError(f"name {name!r} is not of the form DATASET-{{Linf,L2}}-{{MMA,OMMA}}-SIZE-sdSEED")
    dataset, label = m["dataset"], m["size"]
    norm = m["norm"].lower()
    size = float(label) / 255 if (dataset, norm) == ("cifar10", "linf") else float(label)
    return {"dataset": dataset, "norm": norm, "method": m["method"].lower(), "size": size, "size_label": label,
            "seed": int(m["seed"])}


def unknown_name_error(name: str) -> ValueError:
    """The error for a name that is not released: it lists close names, as :func:`presets.get_preset` does."""
    names = list_released()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown released model {name!r}.{hint} "
                      f"'mma-edu download checkpoint --list' lists all {len(names)}.")


def _reported_row(raw: dict[str, Any]) -> ReportedRow:
    if "eps_255" in raw:
        eps = [k / 255 for k in raw["eps_255"]]
        labels = [f"{k:g}/255" for k in raw["eps_255"]]
    else:
        eps = [float(e) for e in raw["eps"]]
        labels = [f"{e:g}" for e in eps]
    return ReportedRow(source=raw.get("source", ""), clean=float(raw["clean"]), eps=eps,
                       robust=[float(r) for r in raw["robust"]], avg_rob_acc=float(raw["AvgRobAcc"]),
                       avg_acc=float(raw["AvgAcc"]), eps_labels=labels)


def released_info(name: str) -> ReleasedModel:
    """Everything known about one released checkpoint; ValueError with close names if unknown."""
    reg = load_registry()
    models = reg["models"]
    if name not in models:
        raise unknown_name_error(name)
    entry = models[name]
    reported = reg.get("reported", {})
    row = _reported_row(reported[name]) if name in reported else None
    cw = reported.get("cw_l2_min_distance_first_1000_test_images", {})
    dist = None
    if name in cw:
        clean, mean, median = cw[name]
        dist = ReportedL2Distance(source=cw.get("source", ""), clean=float(clean), mean=float(mean),
                                  median=float(median))
    parsed = parse_name(name)
    notes: list[str] = []
    rb = reported.get("robustbench_cifar10_L2_Ding2020MMA")
    if rb and (parsed["dataset"], parsed["norm"]) == ("cifar10", "l2"):
        notes.append(f"{rb.get('source', 'RobustBench')} (one of the authors' CIFAR10 L2 models): clean "
                     f"{rb['clean']}, PGD {rb['pgd']}, AutoAttack {rb['autoattack']}")
    return ReleasedModel(name=name, path=entry["path"], git_blob_sha1=entry["git_blob_sha1"], commit=reg["commit"],
                         url_template=reg["url_template"], reported=row, reported_l2_distance=dist,
                         notes=tuple(notes), **parsed)


# ----------------------------------------------------------------------------
# Integrity and cache
# ----------------------------------------------------------------------------

def git_blob_sha1(path: str | os.PathLike) -> str:
    """SHA-1 of ``b"blob <size>\\0" + data``: the name git gives the file's content."""
    path = Path(path)
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def default_cache_dir() -> Path:
    """``$MMA_EDU_CACHE`` if set, else ``~/.cache/mma-edu/checkpoints``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path("~/.cache/mma-edu/checkpoints").expanduser()


def cached_path(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where :func:`download_checkpoint` keeps ``name``: ``<cache>/<name>/model_best.pt``."""
    info = released_info(name)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / info.name / Path(info.path).name


def is_cached(name: str, cache_dir: str | os.PathLike | None = None) -> bool:
    """True if a copy of ``name`` whose checksum verifies is in the cache."""
    path = cached_path(name, cache_dir)
    return path.is_file() and git_blob_sha1(path) == released_info(name).git_blob_sha1


# ----------------------------------------------------------------------------
# Download
# ----------------------------------------------------------------------------

def _fetch(url: str, dest: Path, *, desc: str, progress: bool, timeout: float) -> None:
    """Stream ``url`` into the open-for-writing path ``dest``; refuse a short body."""
    from tqdm.auto import tqdm

    req = urllib.request.Request(url, headers={"User-Agent": "mma-edu"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as f:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            got = 0
            with tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                      disable=not progress) as bar:
                while True:
                    try:
                        chunk = resp.read(CHUNK)
                    except http.client.IncompleteRead as err:
                        f.write(err.partial)
                        got += len(err.partial)
                        break
                    if not chunk:
                        break
                    f.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    except urllib.error.HTTPError as err:
        raise DownloadError(f"cannot download {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"cannot download {url}: {getattr(reason, 'strerror', None) or reason}") from None
    if total is not None and got != total:
        raise IntegrityError(f"download truncated: received {got:,} of {total:,} bytes from {url}")


def download_checkpoint(
    name: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Fetch the released checkpoint ``name`` into the cache, verify it and return its path.

    Args:
        name: a name from :func:`list_released`.
        cache_dir: cache folder (default :func:`default_cache_dir`).
        base_url: a mirror: the file is fetched from ``base_url + "/" + path``
            (``path`` as in the authors' repository, e.g.
            ``trained_models/mnist-Linf-MMA-0.45-sd0/model_best.pt``); default:
            the authors' repository at the pinned commit.
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the server before giving up.

    A cached copy is used (no network at all) when its checksum verifies; a
    cached copy that does not verify is fetched again.

    Raises:
        ValueError: unknown name (with close names).
        DownloadError: the server could not be reached or answered an error.
        IntegrityError: the data arrived truncated or does not match the
            pinned git blob SHA-1; nothing is left in the cache.
    """
    info = released_info(name)
    dest = cached_path(name, cache_dir)
    if dest.is_file() and git_blob_sha1(dest) == info.git_blob_sha1:
        return dest
    url = info.url_at(base_url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            _fetch(url, tmp, desc=name, progress=progress, timeout=timeout)
        except DownloadError as err:
            raise DownloadError(f"{name}: {err}. Check the network, or point --base-url (base_url=) at a mirror "
                                f"that serves {info.path} under it.") from None
        except IntegrityError as err:
            raise IntegrityError(f"{name}: {err}; nothing was kept, try again") from None
        digest = git_blob_sha1(tmp)
        if digest != info.git_blob_sha1:
            raise IntegrityError(
                f"{name}: the file from {url} does not match the pinned checksum (git blob sha1 {digest}, "
                f"expected {info.git_blob_sha1}); it was deleted. A truncated transfer or a wrong mirror "
                "gives this; try again or use another --base-url.")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
            try:
                dest.parent.rmdir()  # only if nothing else is in it
            except OSError:
                pass
    return dest


def download_all(
    *, cache_dir: str | os.PathLike | None = None, base_url: str | None = None, progress: bool = True,
    timeout: float = 60.0,
) -> list[Path]:
    """:func:`download_checkpoint` for every released model; stops at the first failure (rerun to resume)."""
    return [download_checkpoint(n, cache_dir=cache_dir, base_url=base_url, progress=progress, timeout=timeout)
            for n in list_released()]


def describe(info: ReleasedModel) -> str:
    """One line: dataset, norm, method, d_max and whether the paper reports numbers for it."""
    size = f"{info.size_label}/255" if (info.dataset, info.norm) == ("cifar10", "linf") else info.size_label
    what = [f"{info.dataset} {info.norm} {info.method.upper()} d_max={size}"]
    if info.reported is not None:
        what.append("paper: robust-accuracy row")
    if info.reported_l2_distance is not None:
        what.append("paper: CW-L2 distances")
    return "; ".join(what)


def listing(cache_dir: str | os.PathLike | None = None) -> str:
    """The released models, one a line (name, what it is, whether a verified copy is in the cache, or a corrupt
    one), and the cache folder."""
    names = list_released()
    width = max(map(len, names))
    lines = []
    for name in names:
        info = released_info(name)
        path = cached_path(name, cache_dir)
        mark = ""
        if path.is_file():  # only a copy whose checksum verifies counts as downloaded
            mark = ("  [downloaded]" if git_blob_sha1(path) == info.git_blob_sha1 else
                    f"  [corrupt: {path.stat().st_size:,} bytes that fail the checksum; "
                    f"'mma-edu download checkpoint {name}' fetches it again]")
        lines.append(f"{name:<{width}}  {describe(info)}{mark}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    lines.append(f"cache: {root} (set ${CACHE_ENV} or --cache-dir to change it)")
    return "\n".join(lines)
