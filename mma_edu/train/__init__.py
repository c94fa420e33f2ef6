"""Training: ``fit`` with the methods Standard, PGD-AT, MMA and OMMA (``mma_edu/train/methods.py``)."""

from .loop import BEST, HISTORY, LAST, Event, History, clean_accuracy, fit, resolve_device, train_step, validate
from .methods import MMA, OMMA, PGDAT, Method, Standard
from .optim import PiecewiseConstant, make_optimizer

__all__ = [
    "fit", "History", "Event", "Standard", "PGDAT", "MMA", "OMMA", "Method", "PiecewiseConstant",
    "make_optimizer", "resolve_device", "clean_accuracy", "validate", "LAST", "BEST", "HISTORY",
]
