"""Results the real InceptionV1 computed, for pages built without the real weights.

``dog_cat()`` returns a photo and the ``mixed4d`` activations that Lucid (TensorFlow, the
original graph and weights) computed for it, published with Distill's "The Building Blocks of
Interpretability" (Olah et al., 2018; CC-BY 4.0). See ``README.md`` in this folder for the
sources and hashes.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["ATTRIBUTION", "LucidExample", "dog_cat"]

HERE = Path(__file__).resolve().parent
ATTRIBUTION = (
    'Photo and activations: Olah et al., "The Building Blocks of Interpretability", Distill 2018 '
    "(CC-BY 4.0), computed by Lucid with the real InceptionV1 weights."
)


class LucidExample(NamedTuple):
    """A photo and activations the real InceptionV1 computed for it.

    Attributes:
        image: ``(3, 224, 224)`` float in [0, 1].
        acts: ``{layer: (C, H, W) float32}``.
        is_synthetic: always False: these come from the real weights.
        weights_source: where the values came from (also makes this usable as a figure's
            provenance, see :func:`circuitscope.provenance.stamp`).
    """

    image: torch.Tensor
    acts: dict[str, torch.Tensor]
    is_synthetic: bool
    weights_source: str


def dog_cat() -> LucidExample:
    """The "dog_cat" photo and its ``mixed4d`` activations ``(528, 14, 14)``, post-ReLU."""
    from ..images import load_image

    image = load_image(HERE / "dog_cat.jpeg", size=None)
    with np.load(HERE / "dog_cat_mixed4d.npz") as data:
        mixed4d = torch.from_numpy(data["mixed4d"].astype(np.float32))
    return LucidExample(image, {"mixed4d": mixed4d}, False, ATTRIBUTION)
