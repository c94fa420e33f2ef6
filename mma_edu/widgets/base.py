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


class _Explorer:
    """Base: ``self.widget`` is the live view; ``figure()`` draws the current state (matplotlib)."""

    widget: W.Widget
    image: W.Image

    def _make_image(self) -> W.Image:
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto"))
        return self.image

    def figure(self):
        raise NotImplementedError

    def redraw(self) -> None:
        """Draw the current state into the picture (PNG bytes in the Image widget's state)."""
        self.image.value = png_bytes(self.figure())

    def show(self):
        """Display now and keep a handle, so :meth:`refresh` can renew the headless copy later."""
        from IPython.display import display

        self._handle = display(self, display_id=True)

    def refresh(self) -> None:
        """Renew the displayed output (widget and its ``image/png`` copy) if :meth:`show` displayed it."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            handle.update(self)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        # Live frontends render the widget; headless renderers (papermill, nbconvert, the course site,
        # untrusted notebooks) show the same picture as image/png.
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["image/png"] = base64.b64encode(self.image.value).decode("ascii")
        bundle["text/plain"] = f"<{type(self).__name__}: interactive in JupyterLab; static view attached>"
        return bundle


def _label(text: str) -> W.HTML:
    return W.HTML(value=text, layout=W.Layout(margin="0 0 0 8px"))
