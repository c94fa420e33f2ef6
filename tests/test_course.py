"""Course records: what a notebook records survives papermill and is read back by read_records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mma_edu import course

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "mma-edu"


def test_record_stores_plain_json_values():
    course.record("t.float", torch.tensor(0.25))
    course.record("t.list", torch.tensor([1, 2]))
    course.record("t.dict", {"a": (1.5, None)})
    course.record("t.int", torch.tensor(3))
    rec = course.records()
    assert rec["t.float"] == 0.25 and rec["t.list"] == [1, 2] and rec["t.dict"] == {"a": [1.5, None]}
    assert rec["t.int"] == 3 and isinstance(rec["t.int"], int)


@pytest.mark.parametrize("key, value, match", [
    ("", 1.0, "key must be a non-empty string"),
    (3, 1.0, "key must be a non-empty string"),
    ("k", float("nan"), "must be finite"),
    ("k", object(), "must be JSON-like"),
    ("k", {1: 2}, "dict keys must be strings"),
])
def test_record_rejects_what_json_cannot_hold(key, value, match):
    with pytest.raises(ValueError, match=match):
        course.record(key, value)


def test_check_records_and_raises_only_when_strict():
    course.check(True, "holds", key="t.ok")
    course.check(1 > 2, "does not hold here", strict=False)
    assert course.records()["t.ok"] is True
    assert course.records()["check: does not hold here"] is False
    with pytest.raises(AssertionError, match="claim does not hold: two is less than one"):
        course.check(2 < 1, "two is less than one")


def test_read_records_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="executed notebook not found"):
        course.read_records(tmp_path / "missing.ipynb")
    bad = tmp_path / "bad.ipynb"
    bad.write_text("not json")
    with pytest.raises(ValueError, match="is not a notebook"):
        course.read_records(bad)
    empty = tmp_path / "empty.ipynb"
    empty.write_text(json.dumps({"cells": []}))
    with pytest.raises(KeyError, match="no record of \\['x'\\]"):
        course.read_records(empty, require=["x"])


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A kernelspec named like the project's, running this very interpreter, found first on JUPYTER_PATH."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("kernel")
    install(kernel_name=KERNEL, display_name="mma-edu (tests)", prefix=str(prefix))
    return str(prefix / "share" / "jupyter")


@pytest.mark.slow
def test_records_survive_papermill(tmp_path, kernel_env, monkeypatch):
    import nbformat
    import papermill as pm
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[
        new_code_cell("acc = 0.5", metadata={"tags": ["parameters"]}),
        new_code_cell("import numpy as np, torch\nfrom mma_edu import course\ncourse.record('acc', acc)"),
        new_code_cell("course.record('acc', acc + 0.25)  # the last record of a key wins\n"
                      "course.record('curve', torch.tensor([0.9, 0.5]))\n"
                      "course.record('np', np.float32(0.125))\n"
                      "course.check(acc < 1, 'accuracy below one')\n"
                      "course.check(acc > 1, 'accuracy above one', strict=False)\n"
                      "print('plain output is ignored')"),
    ])
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "mma-edu", "language": "python"}
    src, out = tmp_path / "tiny.ipynb", tmp_path / "tiny.out.ipynb"
    nbformat.write(nb, src)
    monkeypatch.setenv("JUPYTER_PATH", kernel_env)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the kernel imports this checkout's mma_edu
    pm.execute_notebook(str(src), str(out), parameters={"acc": 0.625}, kernel_name=KERNEL, cwd=str(tmp_path),
                        progress_bar=False, execution_timeout=120)
    nbformat.validate(nbformat.read(out, as_version=4))  # the custom mime type is valid notebook data
    rec = course.read_records(out, require=["acc", "curve"])
    assert rec == {"acc": 0.875, "curve": [pytest.approx(0.9), 0.5], "np": 0.125,
                   "check: accuracy below one": True, "check: accuracy above one": False}
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    texts = ["".join(o["data"]["text/plain"]) for o in outputs if "data" in o]
    # One line per record for people; record() returns None, so no echo of the value.
    assert texts == ["record acc = 0.625", "record acc = 0.875", "record curve = [0.8999999761581421, 0.5]",
                     "record np = 0.125", "holds: accuracy below one", "does NOT hold: accuracy above one"]
