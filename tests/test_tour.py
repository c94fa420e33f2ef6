"""`make tour`'s runner on a tiny course: executes notebooks, writes copies, prints the table."""

import json
import sys

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


def test_a_kernel_registered_by_a_checkout_that_is_gone_is_one_clear_error(tmp_path, capsys, monkeypatch):
    """The course's kernel is user-global; another checkout may have registered it last with a Python that no
    longer exists. The tour says so and how to fix it, instead of failing every notebook with "No such file"."""
    kernels = tmp_path / "jupyter" / "kernels"
    for name, exe in (("gone", str(tmp_path / "old-checkout" / ".venv" / "bin" / "python")), ("here", sys.executable)):
        (kernels / name).mkdir(parents=True)
        (kernels / name / "kernel.json").write_text(json.dumps(
            {"argv": [exe, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": name,
             "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    assert tour.kernel_problem("here") is None
    problem = tour.kernel_problem("gone")
    assert "old-checkout" in problem and "does not exist" in problem and "make lab" in problem
    assert "no Jupyter kernel named 'nowhere'" in tour.kernel_problem("nowhere")
    with pytest.raises(SystemExit) as stop:
        tour.main(["--notebooks", str(tmp_path), "--kernel", "gone"])
    assert stop.value.code == 2 and "does not exist" in capsys.readouterr().err
