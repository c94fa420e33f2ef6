"""The paper-scale path, end to end on a CPU: dry runs of the paper profile and of the paper presets.

A dry run (mma_edu/dryrun.py) keeps the real settings — the full models, the presets' optimizer, schedule,
batch, attack, validation and model selection, the evaluation protocol — and caps only the number of steps
and examples. These tests run it on fixture datasets written in torchvision's on-disk formats (MNIST IDX
files of real digits, CIFAR10 python pickles of random images) and check what ran, from the records the
notebooks publish, the histories and checkpoints the command line writes, and the protocol each evaluation
reports.

What is exercised in full and what is capped further (WideResNet-28-4 on a CPU: one MMA step at batch 128
takes about 80 s, and the paper's 10 x 100-step evaluation of one example a model cannot be moved off takes
minutes):
- MNIST (LeNet5-Madry): notebook 05 and the command line run the presets' batch 50, the paper's evaluation
  (10 restarts x 100 steps, 5 CE + 5 CW) on 16 test digits in two batches of 8, 2 training steps.
- CIFAR10 (WideResNet-28-4): notebook 06 and the command line run 1 training step at batch 8 (not 128) and
  an evaluation with the paper's 10 restarts but 1 PGD step (not 100) on 8 images in batches of 4 — the batch
  and step caps are opt-in caps the dry run prints.
  The preset's batch 128 and the paper's 100 steps are checked as configuration (every preset below).
- Every one of the paper presets goes through ``mma-edu train --dry-run`` up to the call of ``fit``, whose
  arguments are checked against the preset; the representatives above train, evaluate and reproduce.
- Notebook 07 evaluates the zoo with the paper profile's protocol (100 steps, up to 20 restarts) on 4 digits.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mma_edu import cli, data as D
from mma_edu.checkpoint import read_checkpoint
from mma_edu.course import read_records
from mma_edu.presets import PRESETS

pytestmark = pytest.mark.paper_path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "mma-edu"
PARAMS = {"lenet5_madry": 3_274_634, "cifar10_wrn28_4": 5_849_050}
# The caps the CIFAR10 runs add for a CPU (see the module docstring); the MNIST runs use the plain dry run.
WRN_CAPS = {"steps": 1, "batch_size": 8, "eval_steps": 1, "examples": 8, "eval_batch": 4}
WRN_CAPS_CLI = ",".join(f"{k}={v}" for k, v in WRN_CAPS.items())


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """MNIST (300 train / 100 test real digits, IDX files) and CIFAR10 (100 / 40 random images, pickles)."""
    root = tmp_path_factory.mktemp("data")
    D.write_mnist_fixture(root, n_train=300, n_test=100)
    D.write_cifar10_fixture(root, n_train=100, n_test=40)
    return root


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec named like the project's, running this very interpreter, found first on JUPYTER_PATH."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("kernel")
    install(kernel_name=KERNEL, display_name="mma-edu (tests)", prefix=str(prefix))
    return str(prefix / "share" / "jupyter")


def run_paper_notebook(number: str, tmp_path: Path, kernel_env: str, monkeypatch, **parameters) -> dict:
    """Run a notebook in the paper profile as a dry run (cwd: tmp_path, so runs/ lands there); its records."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    monkeypatch.setenv("JUPYTER_PATH", kernel_env)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = tmp_path / path.name
    params = {"profile": "paper", "dry_run": True, **parameters}
    try:
        pm.execute_notebook(str(path), str(out), parameters=params, kernel_name=KERNEL, cwd=str(tmp_path),
                            progress_bar=False, execution_timeout=300)
    except PapermillExecutionError as err:
        pytest.fail(f"{path.name}: cell {err.exec_count} failed:\n{err.ename}: {err.evalue}\n"
                    + "\n".join(err.traceback[-6:]), pytrace=False)
    cells = json.loads(out.read_text())["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
    seconds = {i: c["metadata"].get("papermill", {}).get("duration") for i, c in enumerate(cells)}
    return {"records": read_records(out), "text": text, "seconds": seconds}


def check_run(run: dict, *, parameters: int, batch_size: int, steps: int, lr: float, optimizer: str,
              images: int, margin: bool = True) -> None:
    """A notebook's record of one training run: the full model, the preset's settings, validation that ran."""
    assert run["parameters"] == parameters
    assert (run["batch_size"], run["steps"], run["lr"], run["optimizer"]) == (batch_size, steps, lr, optimizer)
    last = run["epochs"][-1]
    assert last["step"] == steps and last["partial"]  # the dry run ends inside the first epoch: validated there
    assert 0 <= last["val_acc"] <= 1
    if margin:  # model selection by the reference's validation search, on the capped held-out images
        assert last["val_margin"] is not None and last["selection"]["estimator"] == "reference"
        assert last["selection"]["images"] == images


def test_notebook_05_paper_dry_run(data_root, tmp_path, kernel_env, monkeypatch):
    out = run_paper_notebook("05", tmp_path, kernel_env, monkeypatch, root=str(data_root))
    rec = out["records"]
    assert set(rec["05.runs"]) == {"standard", "pgd-0.3", "pgd-0.4", "mma-0.45"}
    for name, run in rec["05.runs"].items():
        check_run(run, parameters=PARAMS["lenet5_madry"], batch_size=50, steps=2, lr=1e-4, optimizer="adam",
                  images=16)
        assert (tmp_path / "runs" / "dry-run" / f"05-{name}" / "best.pt").exists()  # selection kept a model
    assert rec["05.runs"]["mma-0.45"]["d_max"] == 0.45 and rec["05.runs"]["pgd-0.4"]["eps"] == 0.4
    for proto in rec["05.protocol"].values():  # the paper's protocol on 16 digits in two batches
        assert proto == {"steps": 100, "restarts": 10, "losses": ["ce"] * 5 + ["cw"] * 5, "n": 16, "batch_size": 8}
    # The attack did run: digits the two-step models classify correctly were broken by it.
    assert any(r["clean"] > r["robust"][0] for r in rec["05.results"].values()), rec["05.results"]
    assert "dry run: training steps 100,000 -> 2" in out["text"]
    assert not list((tmp_path / "runs").glob("05-*"))  # a dry run never writes where a real run resumes


def test_notebook_06_paper_dry_run(data_root, tmp_path, kernel_env, monkeypatch):
    out = run_paper_notebook("06", tmp_path, kernel_env, monkeypatch, root=str(data_root), download=False,
                             released=None, dry_run=WRN_CAPS)
    rec = out["records"]
    assert rec["06.data"] == "cifar10/train"  # the CIFAR10 files (the fixture), not the stand-in
    for name, run in rec["06.runs"].items():
        # The notebook selects the standard model by validation accuracy (it measures no margins for it).
        check_run(run, parameters=PARAMS["cifar10_wrn28_4"], batch_size=8, steps=1, lr=0.3, optimizer="sgd",
                  images=8, margin=name == "MMA")
    assert rec["06.runs"]["MMA"]["bn_mode"] == "reference" and rec["06.runs"]["MMA"]["d_max"] == 32 / 255
    for proto in rec["06.protocol"].values():  # the paper's 10 restarts; 1 PGD step instead of 100 (WRN_CAPS)
        assert proto == {"steps": 1, "restarts": 10, "losses": ["ce"] * 5 + ["cw"] * 5, "n": 8, "batch_size": 4}
    assert "dry run: batch 128 -> 8" in out["text"] and "dry run: eval_steps 100 -> 1" in out["text"]


def test_notebook_07_paper_dry_run(tmp_path, kernel_env, monkeypatch):
    # 07 runs about 35,000 PGD iterations at the paper profile's 100 steps whatever the number of digits (each
    # restart of each eps of each call), and its claims need the full steps: 4 digits in batches of 2 keep it short.
    out = run_paper_notebook("07", tmp_path, kernel_env, monkeypatch, released=None,
                             dry_run={"examples": 4, "eval_batch": 2})
    rec = out["records"]
    assert sorted(map(int, rec["07.restarts"])) == [1, 2, 5, 10, 20]  # the paper profile's restart ladder
    assert rec["07.protocol"] == {"steps": 100, "restarts": 10, "losses": ["ce"] * 5 + ["cw"] * 5, "n": 4,
                                  "batch_size": 2}
    assert "dry run: n_test 1,000 -> 4" in out["text"]


# ---------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------

def test_every_paper_preset_reaches_fit_with_its_settings(data_root, tmp_path, monkeypatch, capsys):
    """``mma-edu train --preset P --dry-run`` for all the presets, up to fit: the arguments it gets are P's."""
    import mma_edu.train as T
    from mma_edu.models import count_parameters
    from mma_edu.train.loop import History

    calls = []

    def fake_fit(model, train, method, **kw):
        calls.append((count_parameters(model), method.config(), kw))
        return History()

    monkeypatch.setattr(T, "fit", fake_fit)
    for name, p in PRESETS.items():
        argv = ["train", "--preset", name, "--data", "full", "--root", str(data_root), "--dry-run",
                "--out", str(tmp_path / name), "--no-progress"]
        assert cli.main(argv) == 0, capsys.readouterr().err
        n_params, method, kw = calls[-1]
        assert n_params == PARAMS[p.model], name
        assert (kw["steps"], kw["batch_size"], kw["optimizer"], kw["lr"], kw["weight_decay"]) == (
            2, p.batch_size, p.optimizer, p.lr, p.weight_decay), name
        assert kw["lr_schedule"] is p.schedule and (kw["augment"] is not None) == p.augment, name
        assert (kw["eval_size"], kw["eval_max_eps"], kw["eval_norm"], kw["selection"]) == (
            16, p.validation_max_eps, p.eval_norm, "reference"), name
        if p.method_kind != "standard":
            assert method["steps"] == p.attack_steps and method["norm"] == p.norm, name
        if p.method_kind in ("mma", "omma"):
            assert method["d_max"] == p.size and method["bn_mode"] == "reference", name
    assert len(calls) == len(PRESETS) == 64
    assert {p.model for p in PRESETS.values()} == set(PARAMS)


def _train(preset: str, root: Path, out: Path, caps: str | None = None) -> dict:
    argv = ["train", "--preset", preset, "--data", "full", "--root", str(root), "--out", str(out), "--no-progress",
            "--dry-run"] + ([caps] if caps else [])
    assert cli.main(argv) == 0
    return json.loads((out / "history.json").read_text())


@pytest.mark.parametrize("preset,caps", [("mnist-linf-mma-0.45", None), ("mnist-l2-omma-2.0", None),
                                         ("cifar10-linf-mma-32", WRN_CAPS_CLI)])
def test_representative_presets_train_evaluate_and_reproduce(preset, caps, data_root, tmp_path, capsys):
    p = PRESETS[preset]
    hist = _train(preset, data_root, tmp_path / "run", caps)
    steps, n = (1, 8) if caps else (2, 16)
    assert hist["config"]["steps"] == steps and hist["config"]["batch_size"] == (8 if caps else p.batch_size)
    last = hist["epochs"][-1]
    assert last["partial"] and last["step"] == steps and "val_margin" in last
    assert last["selection"]["images"] == n and last["selection"]["estimator"] == "reference"
    ck = read_checkpoint(tmp_path / "run" / "best.pt")
    assert sum(v.numel() for k, v in ck["model"].items() if "running" not in k and "num_batches" not in k) \
        == PARAMS[p.model]
    assert ck["method"]["steps"] == p.attack_steps and ck["method"]["d_max"] == p.size
    out = capsys.readouterr().out
    assert "dry run: training steps" in out and "everything else is the real setting" in out

    ev = ["--dry-run"] + ([caps] if caps else [])
    js = tmp_path / "eval.json"
    assert cli.main(["evaluate", str(tmp_path / "run" / "best.pt"), "--norm", p.norm, "--root", str(data_root),
                     "--eps", *map(str, p.eval_eps),
                     "--no-progress", "--json", str(js), *ev]) == 0
    proto = json.loads(js.read_text())["protocol"]
    assert proto == {"steps": 1 if caps else 100, "restarts": 10, "losses": ["ce"] * 5 + ["cw"] * 5, "n": n,
                     "batch_size": n // 2}
    rep = tmp_path / "rep.json"
    assert cli.main(["reproduce", str(tmp_path / "run" / "best.pt"), "--root", str(data_root), "--no-progress",
                     "--json", str(rep), *ev]) == 0
    r = json.loads(rep.read_text())
    assert r["n"] == n and r["protocol"]["restarts"] == 10 and r["protocol"]["steps"] == (1 if caps else 100)
    assert r["measured"]["eps"] == p.eval_eps
    if p.norm == "l2":
        assert r["l2_distances"]["n"] == n


def test_dry_run_caps_are_checked():
    from mma_edu.dryrun import DryRun

    assert DryRun.parse(False) is None and DryRun.parse(True) == DryRun()
    assert DryRun.parse("steps=1,batch_size=8") == DryRun(steps=1, batch_size=8)
    for bad, words in (("steps=0", "steps must be an integer >= 1"), ("stepz=1", "no cap 'stepz'"),
                       ("steps", "must look like"), ({"examples": 2.5}, "examples must be an integer")):
        with pytest.raises(ValueError, match=words):
            DryRun.parse(bad)
    dry = DryRun()
    assert (dry.train_steps(100_000), dry.train_steps(1), dry.train_batch(128), dry.n_examples(None)) == (2, 1, 128, 16)
    assert dry.capped == {"training steps": (100_000, 2), "test examples": ("all", 16)}
