"""circuitscope.methods.feature_splitting: planted families, and how dictionaries of two sizes match them."""

from __future__ import annotations

import pytest
import torch

from circuitscope.methods import sae as sae_lib
from circuitscope.methods.feature_splitting import planted_families, splitting_report


def test_children_sit_at_the_stated_similarity_to_their_parent():
    fam = planted_families(n_samples=100, d=16, n_parents=4, children=3, similarity=0.7, seed=1)
    assert fam.data.shape == (100, 16) and fam.children.shape == (16, 12) and fam.parents.shape == (16, 4)
    torch.testing.assert_close(fam.children.norm(dim=0), torch.ones(12))
    cos = (fam.parents[:, fam.family] * fam.children).sum(0)
    torch.testing.assert_close(cos, torch.full((12,), 0.7))
    assert torch.equal(fam.family, torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]))
    again = planted_families(n_samples=100, d=16, n_parents=4, children=3, similarity=0.7, seed=1)
    torch.testing.assert_close(again.data, fam.data)
    with pytest.raises(ValueError):
        planted_families(similarity=1.0)


def test_report_on_the_planted_dictionaries_themselves():
    fam = planted_families(n_samples=10, d=16, n_parents=4, children=2, similarity=0.8, seed=0)
    exact = splitting_report(fam.children * 3.0, fam)  # scale does not matter
    torch.testing.assert_close(exact.child_match, torch.ones(8))
    assert exact.children_found == 8
    merged = splitting_report(fam.parents, fam)
    torch.testing.assert_close(merged.parent_match, torch.ones(4))
    assert merged.children_found == 0 and torch.all(merged.child_match < 0.95)


def test_a_small_dictionary_merges_and_a_large_one_splits():
    fam = planted_families(n_samples=4000, d=32, n_parents=8, children=3, similarity=0.8, seed=0)
    found = {}
    for n in (8, 24):
        sae = sae_lib.SparseAutoencoder(32, n, device="cpu", seed=0)
        sae_lib.train_sae(sae, fam.data, steps=600, lr=5e-3, l1_coeff=0.1, batch_size=256, progress=False)
        found[n] = splitting_report(sae.W_dec, fam)
    assert found[8].children_found <= 2 < 18 <= found[24].children_found
    assert found[8].parent_match.mean() > found[8].child_match.mean()
