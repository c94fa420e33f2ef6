"""Plotly figures in a page (JupyterLab, the course site): wait until they are drawn, hover a data point.

Shared by test_plotly.py (the figures of mma_edu.plots) and test_lab.py (the MNIST margin explorer of notebook 05).
"""

from __future__ import annotations

import time

# Page coordinates of the data position (x, y) in trace t of a plotly figure (the element with class js-plotly-plot).
AT_JS = """(gd, [t, x, y]) => {
  const fl = gd._fullLayout, tr = gd._fullData[t];
  const xa = fl[tr.xaxis.replace('x', 'xaxis')], ya = fl[tr.yaxis.replace('y', 'yaxis')];
  const box = gd.querySelector('.main-svg').getBoundingClientRect();
  return [box.left + xa._offset + xa.l2p(x), box.top + ya._offset + ya.l2p(y)];
}"""
# The data position of point k of trace t.
POINT_JS = "(gd, [t, k]) => { const tr = gd._fullData[t]; return [tr.x[k], tr.y[k]]; }"


def plots_drawn(page, expected: int, timeout: float = 60) -> None:
    """Until ``expected`` plotly figures are drawn on the page (no "Loading widget")."""
    deadline = time.time() + timeout
    while True:
        # JupyterLab's plotly renderer shows the output's PNG until the mouse enters it, then draws the figure.
        page.evaluate("() => document.querySelectorAll('.jp-RenderedPlotly .plot-img').forEach(i => {"
                      " if (i.offsetParent !== null) i.dispatchEvent(new MouseEvent('mouseenter')); })")
        n = page.eval_on_selector_all(".js-plotly-plot", "els => els.filter(e => e._fullLayout).length")
        text = page.inner_text("body")
        if n == expected and "Loading widget" not in text:
            return
        assert time.time() < deadline, f"{n} of {expected} plotly figures drawn"
        time.sleep(0.5)


def hover(page, plot, trace: int, point, want: list[str]) -> str:
    """Hover point k of a trace of ``plot`` (a locator of one js-plotly-plot element; or, given (x, y), that data
    position) until a hover label holding every string of ``want`` shows; returns the labels shown."""
    plot.scroll_into_view_if_needed()
    xy = list(point) if isinstance(point, tuple) else plot.evaluate(POINT_JS, [trace, point])
    x, y = plot.evaluate(AT_JS, [trace, *xy])
    deadline = time.time() + 20
    while True:
        page.mouse.move(x - 3, y)
        page.mouse.move(x, y)
        labels = page.eval_on_selector_all(".js-plotly-plot .hoverlayer .hovertext",
                                           "els => els.map(e => e.textContent)")
        if any(all(w in t for w in want) for t in labels):
            return " | ".join(labels)
        assert time.time() < deadline, f"no hover label with {want}: {labels}"
        time.sleep(0.3)
