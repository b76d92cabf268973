"""The class labels of InceptionV1's 1008 logits (inception5h's label file)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

NUM_LABELED = 1001  # logits 1001..1007 have no label


@lru_cache(maxsize=1)
def _labels() -> tuple[str, ...]:
    text = resources.files("circuitscope.data").joinpath("inception5h_labels.txt").read_text()
    return tuple(line.strip() for line in text.splitlines())


def labels() -> list[str]:
    """The 1001 labels; ``labels()[i]`` names logit ``i``; index 0 is ``"dummy"``."""
    return list(_labels())


def label(index: int) -> str:
    """The label of logit ``index`` (0..1007); logits 1001..1007 are ``"(unlabelled 1001)"``."""
    if not 0 <= index < 1008:
        raise IndexError(f"logit index {index} is outside 0..1007")
    names = _labels()
    return names[index] if index < len(names) else f"(unlabelled {index})"
