"""The class labels of InceptionV1's 1008 logits (inception5h's label file).

The file is Google's (in ``inception5h.zip``), so it is fetched through the verified data
registry (:mod:`circuitscope.core.registry`), not shipped. Where it cannot be had (offline, no
mirror), labels fall back to ``"class <i>"`` with a one-time warning, so pages still build.
"""

from __future__ import annotations

import operator
import warnings
from functools import lru_cache

from . import registry

NUM_LABELED = 1001  # logits 1001..1007 have no label
LABELS_FILE = "inception5h/imagenet_comp_graph_label_strings.txt"


@lru_cache(maxsize=1)
def _labels() -> tuple[str, ...]:
    """The 1001 label strings; cached, so the fallback's warning is shown once per session."""
    try:
        path = registry.fetch(LABELS_FILE)
    except registry.DataError as err:
        warnings.warn(
            f"The InceptionV1 class labels are not available here, so classes are named "
            f"'class 0' ... 'class 1000'. ({err})",
            UserWarning,
            stacklevel=3,
        )
        return tuple(f"class {i}" for i in range(NUM_LABELED))
    return tuple(line.strip() for line in path.read_text().splitlines())


def labels() -> list[str]:
    """The 1001 labels; ``labels()[i]`` names logit ``i``; index 0 is ``"dummy"``.

    Without the label file: ``["class 0", ..., "class 1000"]`` (and a one-time warning).
    """
    return list(_labels())


def label(index: int) -> str:
    """The label of logit ``index`` (0..1007); logits 1001..1007 are ``"(unlabelled 1001)"``.

    Without the label file: ``f"class {index}"`` for 0..1000.
    """
    try:
        index = operator.index(index)  # ints, NumPy ints and one-element integer tensors
    except TypeError:
        shape = f" of shape {tuple(index.shape)}" if hasattr(index, "shape") else ""
        raise TypeError(
            f"label takes one logit index (an int), got a {type(index).__name__}{shape} "
            f"({index!r:.60}): use label(int(i)) for an integer index i, or "
            f"[label(int(i)) for i in indices] for several"
        ) from None
    if not 0 <= index < 1008:
        raise IndexError(
            f"logit index {index} is outside 0..1007: an index into the model's 1008 logits "
            "(the last dimension of model(images)) is needed"
        )
    names = _labels()
    return names[index] if index < len(names) else f"(unlabelled {index})"
