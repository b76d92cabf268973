"""Feature splitting with a known answer: planted families of features, and dictionaries of two sizes.

"Towards Monosemanticity" (Bricken et al., 2023, "Feature Splitting") trains sparse autoencoders
of several sizes on the same activations and finds that a feature of a small dictionary often
*splits* into several more specific features in a larger one. Whether a feature is "one thing"
therefore depends on the dictionary size. This module plants that situation so it can be seen
with the answer known:

* :func:`planted_families`: ``n_parents`` random unit directions, each with ``children`` close
  variants (cosine ``similarity`` to their parent); each vector is a sparse sum of children.
  A dictionary with one feature per family can only learn something near the parents; one
  with a feature per child can learn the children.
* :func:`splitting_report`: for a learned dictionary, how well it matches the parents and the
  children (each planted direction's best cosine similarity with the dictionary).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["PlantedFamilies", "SplittingReport", "planted_families", "splitting_report"]


class PlantedFamilies(NamedTuple):
    """Synthetic data whose features come in families of close variants.

    Attributes:
        data: ``(n_samples, d)`` vectors, each a sparse non-negative sum of children plus noise.
        parents: ``(d, n_parents)`` unit-norm family directions.
        children: ``(d, n_parents * children)`` unit-norm variants, family by family (columns
            ``p * children ... (p + 1) * children - 1`` belong to parent ``p``).
        family: ``(n_parents * children,)`` the parent index of each child.
    """

    data: torch.Tensor
    parents: torch.Tensor
    children: torch.Tensor
    family: torch.Tensor


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=0, keepdim=True)


def planted_families(
    n_samples: int = 8000,
    d: int = 32,
    n_parents: int = 8,
    children: int = 3,
    similarity: float = 0.8,
    p_active: float = 0.04,
    noise: float = 0.01,
    seed: int = 0,
) -> PlantedFamilies:
    """Vectors built from ``n_parents * children`` planted directions that come in families.

    Each child is ``similarity * parent + sqrt(1 - similarity^2) * u`` with ``u`` a random unit
    vector orthogonal to its parent, so its cosine with the parent is exactly ``similarity``
    (0 < similarity < 1). Each child is active with probability ``p_active`` with a magnitude
    uniform in [0, 1]; Gaussian noise of standard deviation ``noise`` is added. Seeded by
    ``seed`` without touching the global random state.
    """
    if not 0 < similarity < 1:
        raise ValueError(f"similarity must lie in (0, 1), got {similarity}")
    gen = torch.Generator().manual_seed(seed)
    parents = _unit(torch.randn(d, n_parents, generator=gen))
    family = torch.arange(n_parents).repeat_interleave(children)
    u = torch.randn(d, n_parents * children, generator=gen)
    p = parents[:, family]
    u = _unit(u - (u * p).sum(0, keepdim=True) * p)  # orthogonal to the child's parent
    kids = similarity * p + (1 - similarity**2) ** 0.5 * u
    active = torch.rand(n_samples, kids.shape[1], generator=gen) < p_active
    codes = torch.rand(n_samples, kids.shape[1], generator=gen) * active
    data = codes @ kids.T + noise * torch.randn(n_samples, d, generator=gen)
    return PlantedFamilies(data, parents, kids, family)


class SplittingReport(NamedTuple):
    """How a dictionary matches planted parents and children.

    Attributes:
        parent_match: ``(n_parents,)`` each parent's best cosine similarity with a learned feature.
        child_match: ``(n_children,)`` each child's best cosine similarity with a learned feature.
        children_found: how many children have a learned feature with cosine above ``threshold``.
        threshold: the cosine used for ``children_found``.
    """

    parent_match: torch.Tensor
    child_match: torch.Tensor
    children_found: int
    threshold: float


def splitting_report(decoder: torch.Tensor, planted: PlantedFamilies, threshold: float = 0.95) -> SplittingReport:
    """Best cosine similarities of the planted parents and children with ``decoder: (d, n)``.

    ``decoder``'s columns are the learned feature directions (``sae.W_dec``); they need not be
    unit-norm. A small dictionary that learned one feature per family matches the parents better
    than the children; a large one that split the families matches the children.
    """
    learned = _unit(decoder.detach().float().cpu())
    parent = (learned.T @ planted.parents).max(dim=0).values
    child = (learned.T @ planted.children).max(dim=0).values
    return SplittingReport(parent, child, int((child > threshold).sum()), threshold)
