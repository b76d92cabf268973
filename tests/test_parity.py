"""With the real weights: the model reproduces Lucid's mixed4d activations.

Lucid computed mixed4d for six photos with the original TensorFlow graph, published with Distill's
"Building Blocks of Interpretability" (CC BY 4.0); :func:`circuitscope.core.published.dog_cat` fetches
them through the verified data registry (the tests' mirror is shared/data). The real weights
cannot be downloaded on CI machines, so this test skips there; run it with CIRCUITSCOPE_WEIGHTS set.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import circuitscope as cs
from circuitscope.core import published, registry

PHOTOS = list(published.LUCID_PHOTOS)


@pytest.mark.parametrize("photo", PHOTOS)
def test_mixed4d_matches_lucid(real_weights_path, photo):
    try:
        example = published.dog_cat(photo)
    except registry.DataError as err:
        pytest.skip(f"Lucid's published activations are not available here: {err}")
    model = cs.load_inceptionv1(real_weights_path, device="cpu")
    assert model.weights_state == "real", "the parity test needs the published inception5h.pth"
    with torch.no_grad():
        ours = cs.activations(model, example.image[None], ["mixed4d"])["mixed4d"][0].permute(1, 2, 0).numpy()
    lucid = example.acts["mixed4d"].permute(1, 2, 0).numpy()  # (528, 14, 14) -> Lucid's HWC
    assert ours.shape == lucid.shape == (14, 14, 528)
    corr = np.corrcoef(ours.ravel(), lucid.ravel())[0, 1]
    assert corr > 0.95, f"correlation with Lucid's mixed4d is only {corr:.3f}"
    top_ours = set(np.argsort(ours.max(axis=(0, 1)))[-10:])
    top_lucid = set(np.argsort(lucid.max(axis=(0, 1)))[-10:])
    assert len(top_ours & top_lucid) >= 7, "the strongest channels differ from Lucid's"
