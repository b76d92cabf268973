"""Progress bars that stay off where they must: one place that decides whether tqdm shows a bar.

tqdm reads ``TQDM_DISABLE`` only as the default of its ``disable`` argument: passing
``disable=False`` explicitly overrides it, and in a notebook that leaves an empty progress
widget on the built page (the site build sets ``TQDM_DISABLE=1``). Every bar of the library is
made here so that ``progress=True`` still honours the environment.
"""

from __future__ import annotations

import os


def bar_disabled(progress: bool) -> bool:
    """True when no bar may be shown: the caller said ``progress=False``, or ``TQDM_DISABLE`` is set."""
    env = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return not progress or env not in ("", "0", "false", "no", "off")


def bar(iterable=None, *, progress: bool = True, **kwargs):
    """``tqdm.auto.tqdm(iterable, **kwargs)``, disabled by :func:`bar_disabled`."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=bar_disabled(progress), **kwargs)
