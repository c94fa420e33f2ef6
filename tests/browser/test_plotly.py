"""The plotly figures (mma_edu.plots.Interactive, the MNIST margin explorer) in a real Chromium: in JupyterLab
each figure renders, a hover shows the value the notebook recorded, a legend click hides a method, a drag-zoom
changes the range, and all of it again after a tab refresh and after a reopen on a fresh kernel; on the course
site a figure hovers with the network blocked. Also measures the explorer's control-to-picture latency.

A small notebook of its own (about 10 s of kernel time) keeps the JupyterLab test in the quick part of the
suite (about 50 s); the site test (about 35 s, a Jupyter Book build) runs with the rest.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import pytest

from .conftest import running_lab
from .plotly_page import hover, plots_drawn
from .test_lab import Notebook

NAME = "plotly_figures.ipynb"
CELLS = [
    """import torch
from mma_edu import course, plots, zoo
from mma_edu.evaluate import RobustAccuracy

g = torch.Generator().manual_seed(0)
results = {}
for k, name in enumerate(["standard", "pgd-0.1", "pgd-0.3", "mma-0.45"]):
    robust = torch.rand(300, 3, generator=g) < torch.tensor([0.9 - 0.1 * k, 0.5, 0.1 + 0.1 * k])
    results[name] = RobustAccuracy("linf", [0.1, 0.2, 0.3], 0.97, robust.double().mean(0).tolist(), robust)
r = results["pgd-0.3"]
lo, hi = r.interval(r.accuracy[1])
course.record("hover", {"x": 0.2, "text": f"accuracy {100 * r.accuracy[1]:.1f}%",
                        "interval": f"[{100 * lo:.1f}, {100 * hi:.1f}]"})
plots.robust_accuracy(results, title="robust accuracy (test)")""",
    """margins = {"standard": torch.rand(50, generator=g) * 0.2, "mma-0.45": torch.rand(50, generator=g) * 0.6}
plots.margin_ecdf(margins, torch.arange(50) % 10, max_eps=0.6, norm="linf", d_max={"mma-0.45": 0.45})""",
    """from mma_edu.widgets import MNISTMarginExplorer

explorer = MNISTMarginExplorer(zoo.load("mma-0.45"), zoo.eval_data(12), norm="linf", max_eps=0.6, steps=5, refine=0)
explorer""",
]

def _notebook(folder: Path) -> Path:
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{k}", "metadata": {}, "outputs": [],
              "source": src} for k, src in enumerate(CELLS)]
    nb = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python (mma-edu)", "language": "python",
                                                      "name": "mma-edu"}, "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = folder / NAME
    path.write_text(json.dumps(nb, indent=1))
    return path


@pytest.fixture(scope="module")
def plotly_lab(jupyter_env, tmp_path_factory):
    nbdir = tmp_path_factory.mktemp("plotly")
    _notebook(nbdir)
    with running_lab(jupyter_env, nbdir) as server:
        yield server


def _plot(page, i: int):
    """The i-th plotly figure of the page."""
    return page.locator(".js-plotly-plot").nth(i)


def _checks(page, record: dict) -> None:
    """Hover, legend click, drag-zoom on the robust-accuracy figure (plot 0)."""
    # Trace 2k+1 is model k's line (its band comes first); pgd-0.3 is model 2, its ε = 0.2 point is index 2.
    hover(page, _plot(page, 0), 5, 2, [record["text"], record["interval"], "n = 300"])
    # A legend click on a PGD-AT entry hides every PGD-AT model and band (legend group), not the others.
    page.locator(".js-plotly-plot").nth(0).locator(".legend .traces", has_text="pgd-0.1").click()
    page.wait_for_function("() => { const d = document.querySelectorAll('.js-plotly-plot')[0]._fullData;"
                           " return d.filter(t => t.legendgroup === 'PGD-AT').every(t => t.visible === 'legendonly')"
                           " && d.filter(t => t.legendgroup !== 'PGD-AT').every(t => t.visible === true); }",
                           timeout=10_000)
    before = page.evaluate("() => document.querySelectorAll('.js-plotly-plot')[0]._fullLayout.xaxis.range.slice()")
    box = page.locator(".js-plotly-plot").nth(0).locator(".nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.3 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.6 * box["width"], box["y"] + 0.7 * box["height"], steps=8)
    page.mouse.up()
    page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot')[0]._fullLayout.xaxis.range[1]"
                           f" < {before[1]} - 1e-6", timeout=10_000)


@pytest.mark.quick
def test_plotly_figures_hover_hide_zoom_in_lab_after_refresh_and_reopen(page, plotly_lab):
    console = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    nb = Notebook(page, plotly_lab, NAME).open()
    nb.run_all()
    plots_drawn(page, 3)
    saved = nb.save()
    from mma_edu.course import read_records

    record = read_records(plotly_lab.dir / NAME)["hover"]
    _checks(page, record)

    # The explorer: moving its control redraws its figure; latency from the key press to the new picture.
    out = page.locator(".jp-OutputArea-output:has(.jupyter-widgets)").last
    times = []
    for _ in range(8):
        old = page.evaluate("() => document.querySelectorAll('.js-plotly-plot')[2]._fullLayout.annotations[0].text")
        out.locator(".noUi-handle").first.focus()
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            f"() => {{ const p = document.querySelectorAll('.js-plotly-plot')[2];"
            f" return p && p._fullLayout && p._fullLayout.annotations[0].text !== {json.dumps(old)}; }}",
            timeout=30_000)
        times.append(time.perf_counter() - t0)
    print(f"\nexplorer control-to-picture latency over {len(times)} moves: median {statistics.median(times):.3f} s, "
          f"worst {max(times):.3f} s")
    assert statistics.median(times) < 2.0, times
    hover(page, _plot(page, 2), 1, (14, 14), ["δ* ="])  # a pixel of δ*: the hover names its value

    # A tab refresh: the figures come back (output data), and still hover, hide and zoom.
    page.reload()
    page.wait_for_selector(".jp-Notebook .jp-CodeCell")
    nb.wait_kernel()
    plots_drawn(page, 3)
    _checks(page, record)

    # Saved, then reopened on a fresh kernel: drawn from the file, alive.
    nb.save()
    nb.shut_down_kernels()
    page.goto("about:blank")
    nb.open()
    plots_drawn(page, 3)
    _checks(page, record)
    assert not [c for c in console if "plotly" in c.lower()], console
    size = (plotly_lab.dir / NAME).stat().st_size
    assert size < 600_000, f"saved notebook is {size:,} bytes"
    assert "widgets" in saved["metadata"]


def test_site_figure_hovers_offline(page, plotly_lab, tmp_path):
    import importlib.util

    if importlib.util.find_spec("jupyter_book") is None:
        pytest.skip("jupyter_book is not installed (pip install 'mma-edu[site]')")
    import papermill as pm

    from mma_edu import book

    executed = tmp_path / "executed"
    executed.mkdir()
    nb = executed / "01_plotly.ipynb"
    src = json.loads((plotly_lab.dir / NAME).read_text())
    src["cells"].insert(0, {"cell_type": "markdown", "id": "t", "metadata": {}, "source": "# Plotly figures"})
    (tmp_path / NAME).write_text(json.dumps(src))
    pm.execute_notebook(str(tmp_path / NAME), str(nb), kernel_name="mma-edu", progress_bar=False, cwd=str(tmp_path))
    html = book.build([nb], tmp_path / "site")
    off_machine = []

    def block(route):
        if not route.request.url.startswith("file://"):
            off_machine.append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", block)
    page.goto((html / "01_plotly.html").as_uri())
    plots_drawn(page, 2)  # the explorer is a widget: the site shows its picture
    from mma_edu.course import read_records

    record = read_records(nb)["hover"]
    hover(page, _plot(page, 0), 5, 2, [record["text"], record["interval"], "n = 300"])
    assert not off_machine, off_machine
    size = (html / "01_plotly.html").stat().st_size
    assert size < 400_000, f"the page is {size:,} bytes (plotly.js must not be inlined)"
    assert (html / "_static" / "plotly.min.js").stat().st_size > 1_000_000
