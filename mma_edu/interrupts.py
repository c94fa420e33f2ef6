"""Signals without lost work: hold SIGINT/SIGTERM while files are written, stop training at a step boundary.

Two tools, both no-ops outside the main thread (Python only delivers signals there):

- :func:`deferred_signals` — a block during which SIGINT and SIGTERM are
  recorded instead of acted on; when the block ends they are delivered to
  whatever handler was there before. Checkpoint and history writes run inside
  one, so Ctrl-C can never leave a half-written or missing file.
- :class:`GracefulStop` — what ``fit`` installs for a whole run: the first
  SIGINT or SIGTERM only sets :attr:`GracefulStop.signum`; the loop finishes
  the step it is in, saves, and raises :class:`TrainingInterrupted`. A second
  Ctrl-C aborts at once (nothing more is saved).

Cluster schedulers send SIGTERM before they kill a job, so it gets the same
treatment as Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM after finishing a step.

    ``step`` is the last completed step, ``path`` the checkpoint that holds it
    (None when the run had no ``out`` folder, or has no checkpoint yet), ``signum`` the signal.
    ``before_first_step``: the signal came before this call took a step, and nothing was written.
    """

    def __init__(self, signum: int, step: int, path=None, before_first_step: bool = False):
        self.signum, self.step, self.path = signum, step, path
        if before_first_step:  # nothing changed: nothing was written (path: the run's unchanged last.pt, if any)
            super().__init__(f"{signal_name(signum)} received before the first step: stopped, nothing written")
            return
        where = f"; saved {path}" if path is not None else " (no out folder: nothing saved)"
        super().__init__(f"{signal_name(signum)} received: stopped after step {step}{where}")

    @property
    def exit_code(self) -> int:
        """The shell convention: 128 + signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + int(self.signum)


def _deliver(signum: int, handler) -> None:
    """Act on a held signal as its handler would have."""
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.raise_signal(signum)  # the default action (for SIGTERM: the process ends)
    # SIG_IGN: nothing to do


# SIGINTs that reached :func:`_startup_handler`. A library may catch the KeyboardInterrupt it raised (a bare
# ``except:`` while it probes optional imports) and carry on, and the process would then train as if no Ctrl-C
# had come: :func:`raise_if_interrupted_at_startup` (at the start of ``fit``) raises it again, and the next
# :class:`GracefulStop` stops before the first step if one came later still.
_STARTUP_SIGINTS: list[int] = []


def _importing(frame) -> bool:
    """Whether ``frame`` runs inside an import (importlib's frames are on its stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _startup_handler(signum, frame) -> None:
    _STARTUP_SIGINTS.append(signum)
    # Inside an import, a KeyboardInterrupt can land in C++ code that torch runs during its import (the process
    # then aborts: "terminate called after throwing ... KeyboardInterrupt") or half-load numpy ("cannot load
    # module more than once"): remember it only, and raise_if_interrupted_at_startup raises it after the imports.
    if not _importing(frame):
        raise KeyboardInterrupt


def install_startup_handler() -> None:
    """For a command line's start (imports, data loading): SIGINT raises KeyboardInterrupt as Python's default
    handler does, and is remembered, so that a Ctrl-C swallowed on the way still stops the training that follows.
    Only replaces Python's own default handler, and only in the main thread."""
    if _main_thread() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _startup_handler)


def remove_startup_handler() -> None:
    """Undo :func:`install_startup_handler` (Python's default handler again) and forget any held Ctrl-C."""
    if _main_thread() and signal.getsignal(signal.SIGINT) is _startup_handler:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _STARTUP_SIGINTS.clear()


def raise_if_interrupted_at_startup() -> None:
    """Raise KeyboardInterrupt if a start-up Ctrl-C was held (it came during an import) or swallowed on the way
    (and forget it): for the end of a command's imports and the start of long work, before it writes or prints
    anything, so that the command ends as for any Ctrl-C at start-up."""
    if _STARTUP_SIGINTS:
        _STARTUP_SIGINTS.clear()
        raise KeyboardInterrupt


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration of the block, then deliver them."""
    if not _main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.getsignal(s) for s in HANDLED}
    for s in HANDLED:
        signal.signal(s, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            if handler is not None:  # None: a handler installed outside Python, which we cannot restore
                signal.signal(s, handler)
        for s in dict.fromkeys(held):  # each kind once, in arrival order
            _deliver(s, previous[s])


class GracefulStop:
    """Context manager: the first SIGINT/SIGTERM sets :attr:`signum`; a second SIGINT raises at once.

    ``duplicate_window`` > 0: a second SIGINT within that many seconds of the first counts as the same
    Ctrl-C (under torchrun a worker gets one from the terminal and one passed on by torchrun).
    """

    def __init__(self, duplicate_window: float = 0.0) -> None:
        self.signum: int | None = None
        self._previous: dict = {}
        self.active = False
        self.duplicate_window = duplicate_window
        self._first = 0.0

    def _handler(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            if time.monotonic() - self._first < self.duplicate_window:
                return  # the same Ctrl-C, delivered twice
            raise KeyboardInterrupt  # second Ctrl-C: abort now
        if self.signum is None:
            self.signum, self._first = signum, time.monotonic()

    def __enter__(self) -> "GracefulStop":
        if _main_thread():
            self._previous = {s: signal.getsignal(s) for s in HANDLED}
            for s in HANDLED:
                signal.signal(s, self._handler)
            self.active = True
            if _STARTUP_SIGINTS:  # a Ctrl-C before this block that something swallowed: stop as if it came now
                self._handler(_STARTUP_SIGINTS[0], None)
                _STARTUP_SIGINTS.clear()
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            if handler is not None:
                signal.signal(s, handler)
        self._previous = {}
        self.active = False
