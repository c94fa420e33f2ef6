"""The shared part of the explorers: a picture as palette PNG, and the base class of every explorer."""

from __future__ import annotations

import base64

import ipywidgets as W
import matplotlib.pyplot as plt

from .. import plots

DPI = 80  # PNG resolution of every view: sharp on a projector, ~5-30 KB per picture


def png_bytes(fig) -> bytes:
    """A matplotlib figure as a palette PNG at :data:`DPI` (:func:`mma_edu.plots.palette_png`); the figure is closed.

    Less to send on every move of a control, and less for a notebook to carry (each picture is saved twice,
    as the widget's state and as the output's image/png).
    """
    try:
        return plots.palette_png(fig, dpi=DPI)
    finally:
        plt.close(fig)


# Under every explorer: after a reopen the saved picture shows but the controls move nothing until the cell runs.
LIVE_HINT = ("<small style='color:#666'>Controls do nothing? Run this cell to make this live (a reopened "
             "notebook shows the saved picture; a running kernel redraws it).</small>")


class _Explorer:
    """Base: ``self.widget`` is the live view; ``figure()`` draws the current state (matplotlib)."""

    widget: W.Widget
    image: W.Image

    def _make_image(self, hint: bool = True) -> W.Widget:
        """The picture and, with ``hint`` (views with controls), under it the hint a reopened notebook needs
        (its saved picture shows, but only a running kernel redraws it). Returns what to place; the picture
        itself is ``self.image``."""
        # At its natural size: in a flex column (VBox) a picture is stretched to the column's width by default
        # (align-items: stretch), 2.6x and blurry in a 1400-px window; flex-start keeps its own width.
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto", width="auto",
                                                           align_self="flex-start"))
        return W.VBox([self.image, W.HTML(LIVE_HINT)]) if hint else self.image

    def figure(self):
        raise NotImplementedError

    def redraw(self) -> None:
        """Draw the current state into the picture (PNG bytes in the Image widget's state)."""
        self.image.value = png_bytes(self.figure())

    def show(self):
        """Display now and keep a handle, so :meth:`refresh` can renew the static copy later."""
        self._ipython_display_()

    def _ipython_display_(self):
        # Displayed with a display id (also when left last in a cell), so that a view moved from code
        # (show_step, select, set) renews its output's image/png: headless copies, the site and untrusted opens
        # show the last state, not the first.
        from IPython.display import display

        self._handle = display(self._repr_mimebundle_(), raw=True, display_id=True)

    def refresh(self) -> None:
        """Renew the displayed output (widget and its ``image/png`` copy) if it was displayed."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.update(self._repr_mimebundle_(), raw=True)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        # Live frontends render the widget; headless renderers (papermill, nbconvert, the course site,
        # untrusted notebooks) show the same picture as image/png.
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        bundle["text/plain"] = f"<{type(self).__name__}: interactive in JupyterLab; static view attached>"
        return bundle


def _label(text: str) -> W.HTML:
    return W.HTML(value=text, layout=W.Layout(margin="0 0 0 8px"))
