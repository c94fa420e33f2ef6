"""`make tour`'s runner on a tiny course: executes notebooks, writes copies, prints the table."""

import json

import nbformat
import pytest

from mma_edu import tour


def _notebook(path, source):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell('profile = "laptop"')
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)


def test_tour_runs_in_order_and_reports_failures(tmp_path, capsys, monkeypatch):
    books = tmp_path / "notebooks"
    books.mkdir()
    _notebook(books / "01_ok.ipynb", "assert profile == 'smoke'")
    _notebook(books / "02_bad.ipynb", "raise RuntimeError('science broke')")
    (books / "scratch.ipynb").write_text("{}")  # not numbered: not part of the course
    code = tour.main(["--notebooks", str(books), "--out", str(tmp_path / "build"), "--profile", "smoke",
                      "--kernel", "python3"])
    out = capsys.readouterr().out
    assert code == 1
    lines = [l for l in out.splitlines() if l.startswith(("01_", "02_"))]
    assert lines[0].startswith("01_ok.ipynb") and lines[0].endswith("ok")
    assert "FAILED" in lines[1]
    executed = json.loads((tmp_path / "build" / "01_ok.ipynb").read_text())
    assert executed["cells"][-1]["execution_count"] is not None
