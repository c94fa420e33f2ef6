"""`make book`: the executed course as a static site. Built here from two notebooks executed in smoke mode
(make book uses make tour's laptop-profile copies); the pages load in Chromium with navigation, their
equations typeset by the MathJax the site carries (this machine cannot reach a CDN: what renders came with
the site), their figures and the widgets' static pictures."""

from __future__ import annotations

import importlib.util
import os

import pytest

from .conftest import ROOT

NOTEBOOKS = ["01_margins.ipynb", "04_anpgd.ipynb"]


@pytest.mark.skipif(importlib.util.find_spec("jupyter_book") is None,
                    reason="jupyter_book is not installed (pip install 'mma-edu[site]')")
def test_book_builds_the_executed_course_into_pages_with_equations_and_figures(page, jupyter_env, tmp_path,
                                                                                monkeypatch):
    import papermill as pm

    from mma_edu import book

    assert "mma_edu.book" in (ROOT / "Makefile").read_text()  # what make book runs
    for k in ("JUPYTER_PATH", "PYTHONPATH"):
        monkeypatch.setenv(k, jupyter_env[k])
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: figures become outputs
    executed = tmp_path / "executed"
    executed.mkdir()
    for name in NOTEBOOKS:
        pm.execute_notebook(str(ROOT / "notebooks" / name), str(executed / name), parameters={"profile": "smoke"},
                            kernel_name="mma-edu", cwd=str(ROOT / "notebooks"), progress_bar=False)
    html = book.build(sorted(executed.glob("*.ipynb")), tmp_path / "site")

    page.goto((html / "index.html").as_uri())
    nav = page.locator("nav a.reference.internal").all_inner_texts()
    assert any("Margins" in t for t in nav) and any("AN-PGD" in t for t in nav), nav

    page.goto((html / "01_margins.html").as_uri())
    # MathJax 2 keeps each equation's TeX in a script element and draws it beside, in .MathJax spans.
    tex = page.locator('script[type^="math/tex"]')
    tex.first.wait_for(state="attached", timeout=30_000)
    assert any("\\infty" in t for t in tex.all_text_contents()), tex.all_text_contents()[:5]
    page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0",
                           timeout=60_000)
    rendered = page.locator(".MathJax, .MathJax_CHTML, .MathJax_SVG").count()
    assert rendered >= 10 and rendered >= tex.count() // 2, (rendered, tex.count())
    assert "Math Processing Error" not in page.inner_text("body")
    figures = page.locator(".cell_output img").evaluate_all("els => els.map(e => e.naturalWidth)")
    assert len(figures) >= 4 and all(w > 100 for w in figures), figures  # matplotlib figures and widget views
    text = page.inner_text("body")
    assert "Traceback" not in text and "Error displaying widget" not in text
    assert "interactive in JupyterLab" not in text  # the widget's text/plain is not shown over its picture
    assert os.path.getsize(html / "01_margins.html") < 5_000_000
