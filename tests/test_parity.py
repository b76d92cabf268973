"""With the real weights: the model reproduces Lucid's mixed4d activations.

Lucid computed mixed4d for six photos with the original TensorFlow graph (shared/data/lucid_parity,
from Distill's "Building Blocks of Interpretability", CC-BY 4.0). The real weights cannot be
downloaded on CI machines, so this test skips there; run it with CIRCUITSCOPE_WEIGHTS set.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import circuitscope as cs

from conftest import SHARED

PARITY = SHARED / "data" / "lucid_parity"
PHOTOS = ["beer", "bowtie_guy", "chain", "dog_cat", "flowers", "pig"]


@pytest.mark.parametrize("photo", PHOTOS)
def test_mixed4d_matches_lucid(real_weights_path, photo):
    if not PARITY.exists():
        pytest.skip("shared/data/lucid_parity is not beside this checkout")
    model = cs.load_inceptionv1(real_weights_path, device="cpu")
    image = cs.load_image(PARITY / f"{photo}.jpeg", size=None)
    with torch.no_grad():
        ours = cs.activations(model, image[None], ["mixed4d"])["mixed4d"][0].permute(1, 2, 0).numpy()
    lucid = np.load(PARITY / f"{photo}_mixed4d.npy")[0]
    assert ours.shape == lucid.shape == (14, 14, 528)
    corr = np.corrcoef(ours.ravel(), lucid.ravel())[0, 1]
    assert corr > 0.95, f"correlation with Lucid's mixed4d is only {corr:.3f}"
    top_ours = set(np.argsort(ours.max(axis=(0, 1)))[-10:])
    top_lucid = set(np.argsort(lucid.max(axis=(0, 1)))[-10:])
    assert len(top_ours & top_lucid) >= 7, "the strongest channels differ from Lucid's"
