"""Instant feedback for the exercises, one module per chapter (``checks.ch1``, ...).

Each check is an :class:`~.runner.Exercise`: its cases as data and its likely mistakes with their
hints, run by :mod:`.runner`. In a notebook, ``ch2.check_pixel_ascent(pixel_ascent)`` calls the
function in the same kernel (an honest learner is assumed); the grader runs the same cases in its
own process and calls the function across the sandbox boundary (``circuitscope_course.verdicts``).
"""

import importlib

from .runner import CheckFailed, passed

__all__ = ["CheckFailed", "passed"]


def __getattr__(name: str):
    # Chapter modules load on first use: `checks.ch1.check_preprocess(...)`.
    if name.startswith("ch") and name[2:].isdigit():
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
