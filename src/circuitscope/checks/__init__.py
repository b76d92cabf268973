"""Instant-feedback checks for the exercises, one module per chapter (``checks.ch1``, ...).

Import this in a notebook's first cell, before any learner code: the comparison functions the
checks use are bound at import time (see ``_core``).
"""

import importlib

from ._core import CheckFailed, passed

__all__ = ["CheckFailed", "passed"]


def __getattr__(name: str):
    # Chapter modules load on first use: `checks.ch1.check_preprocess(...)`.
    if name.startswith("ch") and name[2:].isdigit():
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
