"""Released checkpoints: verified downloads from a local HTTP server, the cache, and `mma-edu reproduce`.

Nothing here touches the network: a thread serves fixture files on 127.0.0.1.
The fixture checkpoint has the authors' exact format, torch.save({'epoch', 'model'}),
with the reference key names; the registry is pointed at a copy whose checksums
are those of the fixtures.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from servers import free_port

from mma_edu import released
from mma_edu.checkpoint import load_checkpoint, save_checkpoint
from mma_edu.cli import build_parser, cmd_download, main
from mma_edu.data import mnist_offline
from mma_edu.evaluate import margin_distribution, robust_accuracy
from mma_edu.models import build_model
from mma_edu.presets import EVAL_EPS, eval_step_fraction
from mma_edu.reproduce import reproduce

ROOT = Path(__file__).resolve().parents[1]
LINF = "mnist-Linf-MMA-0.45-sd0"
L2 = "mnist-L2-MMA-2.0-sd0"


def blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


# ----------------------------------------------------------------------------
# Fixtures: two authors'-format files, a server, a registry that trusts them
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def state_dict():
    """LeNet5-Madry trained for a few steps on the offline digits (so robust accuracy is not all zeros)."""
    torch.manual_seed(0)
    model = build_model("lenet5_madry")
    train = mnist_offline().train
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in range(8):
        idx = torch.randint(len(train), (32,))  # the offline digits are stored class by class
        x, y = train.x[idx], train.y[idx]
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict()


def _authors_file(sd, epoch: int) -> bytes:
    buf = io.BytesIO()
    torch.save({"epoch": epoch, "model": sd}, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def files(state_dict) -> dict[str, bytes]:
    """Released name -> file bytes (two different files: epoch 3 and epoch 5)."""
    return {LINF: _authors_file(state_dict, 3), L2: _authors_file(state_dict, 5)}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        entry = self.server.routes.get(self.path)
        if entry is None:
            self.send_error(404)
            return
        data, truncate = entry
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if truncate else data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A file server on 127.0.0.1: ``srv.routes[path] = (bytes, truncate)``; ``srv.url``; ``srv.requests``."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.routes, srv.requests = {}, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/mirror"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _route(name: str) -> str:
    return "/mirror/" + released.released_info(name).path


@pytest.fixture
def registry(tmp_path_factory, monkeypatch, files):
    """The shipped registry, with the two fixture files' checksums in place of the real ones."""
    reg = json.loads(released.REGISTRY_FILE.read_text())
    for name, data in files.items():
        reg["models"][name]["git_blob_sha1"] = blob_sha1(data)
    path = tmp_path_factory.mktemp("registry") / "registry.json"
    path.write_text(json.dumps(reg))
    monkeypatch.setattr(released, "REGISTRY_FILE", path)
    return reg


@pytest.fixture
def serving(server, registry, files):
    """The server holding both fixture files at the authors' paths."""
    for name, data in files.items():
        server.routes[_route(name)] = (data, False)
    return server


def _leftovers(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


# ----------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------

def test_registry_ships_in_the_package_with_the_papers_rows():
    names = released.list_released()
    assert len(names) == 20 and LINF in names and "cifar10-Linf-MMA-32-sd0" in names
    assert "released_checkpoints.json" in tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["mma_edu"]
    for name in names:
        info = released.released_info(name)
        assert info.preset == name.lower().removesuffix("-sd0")
        assert info.url.startswith("https://raw.githubusercontent.com/BorealisAI/mma_training/" + info.commit)
        assert info.url.endswith(f"trained_models/{name}/model_best.pt") and len(info.git_blob_sha1) == 40
    m = released.released_info(LINF)
    assert (m.dataset, m.norm, m.method, m.size, m.seed) == ("mnist", "linf", "mma", 0.45, 0)
    assert m.reported.eps == EVAL_EPS[("mnist", "linf")] and m.reported.robust == [97.9, 96.0, 92.6, 85.2]
    c = released.released_info("cifar10-Linf-OMMA-32-sd0")
    assert (c.method, c.size_label, c.reported) == ("omma", "32", None) and math.isclose(c.size, 32 / 255)
    c = released.released_info("cifar10-Linf-MMA-32-sd0")
    assert all(math.isclose(a, b) for a, b in zip(c.reported.eps, EVAL_EPS[("cifar10", "linf")]))
    assert c.reported.eps_labels[1] == "8/255"
    # AvgRobAcc and AvgAcc read as in the notes (§6): the paper's rows agree to rounding.
    for row in (m.reported, c.reported):
        assert abs(sum(row.robust) / len(row.robust) - row.avg_rob_acc) < 0.06
        assert abs((row.clean + sum(row.robust)) / (len(row.robust) + 1) - row.avg_acc) < 0.06
    d = released.released_info(L2).reported_l2_distance
    assert (d.clean, d.mean, d.median) == (99.3, 2.15, 2.22)
    assert released.released_info("cifar10-L2-MMA-1.0-sd0").notes  # the RobustBench L2 numbers


def test_unknown_name_lists_close_names(capsys):
    with pytest.raises(ValueError, match="unknown released model.*Did you mean mnist-Linf-MMA-0.45-sd0"):
        released.released_info("mnist-Linf-MMA-0.4-sd0")
    assert main(["download", "checkpoint", "cifar10-linf-mma-32-sd0", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cifar10-Linf-MMA-32-sd0" in err


def test_git_blob_sha1_is_gits_name_for_the_file(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert released.git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    f = tmp_path / "f"
    f.write_bytes(bytes(range(256)) * 5000)  # > one read chunk
    assert released.git_blob_sha1(f) == blob_sha1(f.read_bytes())
    if shutil.which("git"):
        assert released.git_blob_sha1(f) == subprocess.check_output(["git", "hash-object", str(f)], text=True).strip()


def test_cache_folder_default_and_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MMA_EDU_CACHE", raising=False)
    assert released.default_cache_dir() == Path.home() / ".cache" / "mma-edu" / "checkpoints"
    monkeypatch.setenv("MMA_EDU_CACHE", str(tmp_path / "c"))
    assert released.cached_path(LINF) == tmp_path / "c" / LINF / "model_best.pt"


# ----------------------------------------------------------------------------
# Downloads
# ----------------------------------------------------------------------------

def test_download_verifies_loads_and_then_uses_the_cache_without_network(serving, files, tmp_path):
    cache = tmp_path / "cache"
    path = released.download_checkpoint(LINF, cache_dir=cache, base_url=serving.url, progress=False)
    assert path == cache / LINF / "model_best.pt" and path.read_bytes() == files[LINF]
    assert serving.requests == [_route(LINF)] and _leftovers(cache) == [path]
    ck = load_checkpoint(path)  # the authors' format, reference key names, weights_only
    assert ck.epoch == 3 and type(ck.model).__name__ == "LeNet5Madry"
    # Cached and verified: no request, even with an unreachable mirror.
    mtime = path.stat().st_mtime_ns
    dead = f"http://127.0.0.1:{free_port()}"
    assert released.download_checkpoint(LINF, cache_dir=cache, base_url=dead, progress=False) == path
    assert len(serving.requests) == 1 and path.stat().st_mtime_ns == mtime
    assert released.is_cached(LINF, cache) and not released.is_cached(L2, cache)


def test_a_corrupt_cached_file_is_not_trusted(serving, files, tmp_path):
    cache = tmp_path / "cache"
    bad = released.cached_path(LINF, cache)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(files[LINF][:-1] + b"x")
    with pytest.raises(released.DownloadError):  # the mirror is unreachable: no silent use of the bad copy
        released.download_checkpoint(LINF, cache_dir=cache, base_url=f"http://127.0.0.1:{free_port()}",
                                     progress=False)
    path = released.download_checkpoint(LINF, cache_dir=cache, base_url=serving.url, progress=False)
    assert path == bad and path.read_bytes() == files[LINF] and len(serving.requests) == 1


def test_tampered_file_is_refused_and_deleted(server, registry, files, tmp_path):
    data = bytearray(files[LINF])
    data[len(data) // 2] ^= 0xFF
    server.routes[_route(LINF)] = (bytes(data), False)
    cache = tmp_path / "cache"
    with pytest.raises(released.IntegrityError, match="does not match the pinned checksum") as info:
        released.download_checkpoint(LINF, cache_dir=cache, base_url=server.url, progress=False)
    assert registry["models"][LINF]["git_blob_sha1"] in str(info.value)
    assert _leftovers(cache) == []


def test_truncated_download_is_refused(server, registry, files, tmp_path):
    server.routes[_route(LINF)] = (files[LINF], True)  # Content-Length says all, half is sent
    cache = tmp_path / "cache"
    with pytest.raises(released.IntegrityError, match=r"truncated: received [\d,]+ of [\d,]+ bytes"):
        released.download_checkpoint(LINF, cache_dir=cache, base_url=server.url, progress=False)
    assert _leftovers(cache) == []


def test_network_failure_is_one_clear_line(registry, tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(released.DownloadError, match="--base-url") as info:
        released.download_checkpoint(LINF, cache_dir=tmp_path, base_url=dead, progress=False)
    assert f"{dead}/trained_models/{LINF}/model_best.pt" in str(info.value)
    assert main(["download", "checkpoint", LINF, "--cache-dir", str(tmp_path), "--base-url", dead,
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot download" in err and "Traceback" not in err
    assert _leftovers(tmp_path) == []


def test_cli_download_list_and_download(serving, files, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["download", "checkpoint", "--list", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in released.list_released()) and str(cache) in out
    assert "[downloaded]" not in out
    assert main(["download", "checkpoint", LINF, "--cache-dir", str(cache), "--base-url", serving.url,
                 "--no-progress"]) == 0
    assert "verified" in capsys.readouterr().out and (cache / LINF / "model_best.pt").is_file()
    assert main(["download", "checkpoint", "--list", "--cache-dir", str(cache)]) == 0
    assert [ln for ln in capsys.readouterr().out.splitlines() if "[downloaded]" in ln][0].startswith(LINF)
    # the datasets keep their command
    args = build_parser().parse_args(["download", "mnist", "--root", "somewhere"])
    assert (args.func, args.dataset, args.root) == (cmd_download, "mnist", "somewhere")


# ----------------------------------------------------------------------------
# mma-edu reproduce
# ----------------------------------------------------------------------------

def test_reproduce_puts_measured_beside_reported(serving, state_dict, tmp_path, capsys):
    cache = tmp_path / "cache"
    out = {k: tmp_path / f"rep.{k}" for k in ("json", "md", "png")}
    assert main(["reproduce", LINF, "--data", "offline", "--n", "10", "--steps", "4", "--restarts", "2",
                 "--cache-dir", str(cache), "--base-url", serving.url, "--device", "cpu", "--no-progress",
                 "--json", str(out["json"]), "--markdown", str(out["md"]), "--plot", str(out["png"])]) == 0
    text = capsys.readouterr().out
    assert "reported" in text and "measured" in text and "mnist_offline/test-shuffled[:10] (10 examples)" in text
    assert "2 restarts (1 ce + 1 cw) x 4 steps, step 0.625*eps" in text
    rep = json.loads(out["json"].read_text())
    # Measured: exactly the paper protocol run directly on the first 10 (shuffled) offline test digits.
    model = build_model("lenet5_madry")
    model.load_state_dict(state_dict)
    test = mnist_offline().test
    direct = robust_accuracy(model, test.subset(10), norm="linf", eps_list=EVAL_EPS[("mnist", "linf")], steps=4,
                             restarts=2, step_fraction=eval_step_fraction("mnist", "linf", 4), device="cpu",
                             progress=False)
    assert rep["measured"]["accuracy"] == direct.accuracy and rep["measured"]["clean"] == direct.clean
    assert 0 < direct.clean and max(direct.accuracy) > 0  # a test that can see a wrong ε or step
    labels = [r["label"] for r in rep["rows"]]
    assert labels == ["clean", "eps 0.1", "eps 0.2", "eps 0.3", "eps 0.4", "AvgRobAcc", "AvgAcc"]
    assert [r["reported"] for r in rep["rows"]] == [98.9, 97.9, 96.0, 92.6, 85.2, 92.9, 94.1]
    measured = [100 * direct.clean] + [100 * a for a in direct.accuracy] + [100 * direct.avg_rob_acc,
                                                                             100 * direct.avg_acc]
    for row, m in zip(rep["rows"], measured):
        assert math.isclose(row["measured"], m) and math.isclose(row["diff"], m - row["reported"])
    assert rep["model"] == LINF and rep["n"] == 10 and rep["protocol"]["restarts"] == 2
    md = out["md"].read_text()
    assert "| robust accuracy % | reported | measured | diff |" in md
    assert f"| eps 0.1 | 97.90 | {100 * direct.accuracy[0]:.2f} |" in md
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "rep.json", "rep.md", "rep.png"]  # no temp files


def test_reproduce_l2_reports_minimum_distances(serving, state_dict, tmp_path):
    rep = reproduce(L2, data="offline", n=6, steps=2, restarts=1, margin_n=3, margin_steps=2, device="cpu",
                    cache_dir=tmp_path, base_url=serving.url, progress=False)
    assert rep.reported is None and rep.epoch == 5
    model = build_model("lenet5_madry")
    model.load_state_dict(state_dict)
    direct = margin_distribution(model, mnist_offline().test.subset(3), norm="l2", max_eps=8.0, steps=2,
                                 device="cpu", progress=False)
    assert torch.equal(rep.distances.margin, direct.margin) and rep.distances.n == 3
    rows = {r["label"]: r for r in rep.distance_rows()}
    assert (rows["clean %"]["reported"], rows["mean"]["reported"], rows["median"]["reported"]) == (99.3, 2.15, 2.22)
    assert math.isclose(rows["mean"]["measured"], direct.margin.double().mean().item())
    assert math.isclose(rows["median"]["diff"], direct.margin.double().median().item() - 2.22)
    assert rep.measured.eps == EVAL_EPS[("mnist", "l2")]
    table = rep.table()
    assert "min l2 distance" in table and "first 3 test images" in table and "—" in table
    assert "l2_distances" in rep.as_dict()


def test_reproduce_l2_with_fab_is_the_margin_distribution_of_best_plus_fab(serving, state_dict, tmp_path):
    rep = reproduce(L2, data="offline", n=4, steps=2, restarts=1, margin_n=3, margin_steps=2, device="cpu",
                    cache_dir=tmp_path, base_url=serving.url, progress=False, margin_method="best+fab")
    model = build_model("lenet5_madry")
    model.load_state_dict(state_dict)
    sub = mnist_offline().test.subset(3)
    direct = margin_distribution(model, sub, norm="l2", max_eps=8.0, steps=2, device="cpu", progress=False,
                                 method="best+fab")
    best = margin_distribution(model, sub, norm="l2", max_eps=8.0, steps=2, device="cpu", progress=False)
    assert torch.equal(rep.distances.margin, direct.margin)
    assert (direct.margin <= best.margin + 1e-6).all()
    assert rep.distances.method == "AN-PGD, FMN or FAB (best+fab)" and "FAB" in rep.distances.settings
    with pytest.raises(ValueError, match="margin_method"):
        reproduce(L2, data="offline", n=4, margin_method="fab", cache_dir=tmp_path, base_url=serving.url)


def test_reproduce_a_local_file(registry, files, state_dict, tmp_path, capsys):
    released_copy = tmp_path / "somewhere" / "model_best.pt"
    released_copy.parent.mkdir()
    released_copy.write_bytes(files[LINF])
    common = ["--data", "offline", "--n", "5", "--steps", "2", "--restarts", "1", "--device", "cpu",
              "--no-progress"]
    # Recognised by its checksum: the paper's row comes with it.
    assert main(["reproduce", str(released_copy), *common]) == 0
    out = capsys.readouterr().out
    assert f"model      {LINF}" in out and "97.90" in out
    # Any other file needs --norm; then there is nothing reported to compare with.
    other = tmp_path / "mine.pt"
    other.write_bytes(_authors_file(state_dict, 7))
    assert main(["reproduce", str(other), *common]) == 2
    assert "--norm" in capsys.readouterr().err
    assert main(["reproduce", str(other), "--norm", "linf", *common]) == 0
    out = capsys.readouterr().out
    assert "no robust-accuracy row" in out and "97.90" not in out
    # Our own checkpoints say their norm (and data) themselves.
    ours = save_checkpoint(tmp_path / "best.pt", {
        "format": "mma-edu/1", "model_name": "lenet5_madry", "model": state_dict,
        "method": {"method": "mma", "norm": "l2"}, "data": "mnist_offline/train"})
    assert main(["reproduce", str(ours), *common, "--margin-n", "2", "--margin-steps", "1"]) == 0
    assert "whitebox PGD l2" in capsys.readouterr().out
    assert main(["reproduce", str(tmp_path / "missing.pt"), *common]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["reproduce", released_copy.as_posix(), "--norm", "l2", *common]) == 2
    assert "does not match" in capsys.readouterr().err


def test_peer_attack_needs_its_extra_and_an_l2_model(registry, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "foolbox", None)  # as if not installed
    assert main(["reproduce", L2, "--peer", "fmn", "--data", "offline", "--n", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'mma-edu[attacks]'" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="peer must be one of"):
        reproduce(L2, peer="deepfool", data="offline", n=4, progress=False)


def test_fab_peer_needs_adv_lib(registry, monkeypatch):
    monkeypatch.setitem(sys.modules, "adv_lib", None)  # as if not installed
    with pytest.raises(ImportError, match="adv-lib is not installed"):
        reproduce(L2, peer="fab", data="offline", n=4, progress=False)


def test_peer_attack_distances_beside_ours(serving, state_dict, tmp_path):
    pytest.importorskip("foolbox")
    from mma_edu.peer import foolbox_l2_distances

    with pytest.raises(ValueError, match="l2 distances; mnist-Linf-MMA-0.45-sd0 is a linf model"):
        reproduce(LINF, peer="fmn", data="offline", n=4, cache_dir=tmp_path, base_url=serving.url, progress=False)
    rep = reproduce(L2, data="offline", n=4, steps=1, restarts=1, margin_n=4, margin_steps=2, peer="fmn",
                    peer_steps=5, device="cpu", cache_dir=tmp_path, base_url=serving.url, progress=False)
    model = build_model("lenet5_madry")
    model.load_state_dict(state_dict)
    d, found, correct = foolbox_l2_distances(model, mnist_offline().test.subset(4), attack="fmn", steps=5,
                                             device="cpu")
    assert torch.equal(rep.peer.correct, correct) and torch.equal(rep.distances.correct, correct)
    assert torch.allclose(rep.peer.margin, d, equal_nan=True) and (d[~correct] == 0).all()
    assert (d[correct & found] > 0).all() and rep.peer.method == "foolbox L2FMNAttack"
    rows = {r["label"]: r for r in rep.distance_rows()}
    assert rows["median (foolbox L2FMNAttack)"]["reported"] == 2.22
    assert math.isclose(rows["mean (foolbox L2FMNAttack)"]["measured"], d.double().nanmean().item())
    assert rep.as_dict()["l2_distances"]["peer"]["method"] == "foolbox L2FMNAttack"


def test_margins_when_every_example_is_misclassified():
    # `reproduce` on a poor checkpoint can hand the margin search a batch it gets all wrong.
    from mma_edu.margins import estimate_margins

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    torch.nn.init.zeros_(model[1].weight)
    with torch.no_grad():
        model[1].bias.copy_(torch.arange(10.0))  # always predicts 9
    test = mnist_offline().test
    keep = test.y != 9
    res = estimate_margins(model, test.x[keep][:5], test.y[keep][:5], norm="l2", max_eps=2.0, steps=2)
    assert torch.equal(res.margin, torch.zeros(5)) and res.found.all()


def test_fab_peer_distances_beside_ours(serving, tmp_path):
    try:
        from mma_edu.peer import require_advlib

        require_advlib()
    except ImportError as err:
        pytest.skip(str(err))
    rep = reproduce(L2, data="offline", n=4, steps=1, restarts=1, margin_n=4, margin_steps=2, peer="fab",
                    peer_steps=5, device="cpu", cache_dir=tmp_path, base_url=serving.url, progress=False)
    assert rep.peer.method == "adv-lib FAB" and torch.equal(rep.peer.correct, rep.distances.correct)
    assert (rep.peer.margin[~rep.peer.correct] == 0).all()
    assert (rep.peer.margin[rep.peer.found & rep.peer.correct] > 0).all()
