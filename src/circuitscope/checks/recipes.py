"""Course objects the checks build on both sides of the grader's boundary, from a seed.

A case names them in a :class:`~.runner.Recipe` (``"circuitscope.checks.ch3:seeded_inception"``:
the chapter modules import them) so that the grader and the learner's kernel build the same one.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.models.inceptionv1 import InceptionV1


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (the caller's global random state is left alone)."""
    return torch.Generator().manual_seed(seed)


def seeded_inception(seed: int) -> nn.Module:
    """InceptionV1 with PyTorch's default initialisation, seeded without touching the caller's
    random state: the real structure, the same weights at every call, no weight file."""

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return InceptionV1().eval()
