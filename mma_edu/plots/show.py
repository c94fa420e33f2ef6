"""How a notebook shows a figure: plotly for JupyterLab, the matplotlib twin as ``image/png`` for the rest.

One output, three representations (a Jupyter front end picks the richest it can render):

- ``application/vnd.plotly.v1+json`` — the figure as data. JupyterLab draws it through the extension that
  ships inside the plotly package (hover, zoom, legend clicks), after a tab refresh and after a reopen alike,
  because it is output data, not live widget state. No plotly.js rides along: a figure costs kilobytes.
- ``image/png`` — the matplotlib twin drawn from the same data, as a palette PNG, made without a browser. It
  is what GitHub, nbconvert, untrusted notebooks and ``make tour``'s copies show.
- ``text/plain`` — one line naming the figure.

Plotly's own default in a Jupyter kernel (papermill included) is the mimetype alone: those outputs show
nothing outside JupyterLab. Hence this helper rather than ``fig.show()``.
"""

from __future__ import annotations

import base64
import json

import matplotlib.pyplot as plt

PLOTLY_MIME = "application/vnd.plotly.v1+json"
# What the plotly toolbar offers: no plotly logo (it links off the machine); a PNG download of what is shown.
CONFIG = {"displaylogo": False}


def figure_json(fig) -> dict:
    """A plotly Figure as the JSON of its mimetype output: {"data", "layout", "config"} (plain JSON types)."""
    import plotly.io as pio

    out = json.loads(pio.to_json(fig, validate=False, remove_uids=True))
    out["config"] = dict(CONFIG)
    return out


def _matplotlib_figure(static):
    """The matplotlib Figure of a Figure, an Axes or an array of axes."""
    import numpy as np
    from matplotlib.figure import Figure

    if isinstance(static, np.ndarray):
        static = static.flat[0]
    if isinstance(static, Figure):
        return static
    if hasattr(static, "get_figure"):
        return static.get_figure()
    raise TypeError(f"static must be a matplotlib Figure, Axes, array of Axes or PNG bytes, got {type(static).__name__}")


class Interactive:
    """A plotly figure and its static twin, displayed as one output (see the module's docstring).

    ``static``: a matplotlib Figure or Axes (its figure is rendered to PNG now, then closed, so the inline
    backend does not show it a second time), or PNG bytes. ``figure`` is the plotly Figure, ``png`` the PNG.
    """

    def __init__(self, figure, static, *, dpi: float = 100):
        from .static import palette_png

        self.figure = figure
        if isinstance(static, (bytes, bytearray)):
            self.png = bytes(static)
        else:
            mpl_fig = _matplotlib_figure(static)
            try:
                self.png = palette_png(mpl_fig, dpi=dpi)
            finally:
                plt.close(mpl_fig)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        title = self.figure.layout.title.text or "figure"
        return {PLOTLY_MIME: figure_json(self.figure), "image/png": base64.b64encode(self.png).decode("ascii"),
                "text/plain": f"<{title}: interactive in JupyterLab (plotly); static picture attached>"}

    def show(self):
        """Display now (in a notebook; the same as leaving the object last in a cell)."""
        from IPython.display import display

        display(self)
