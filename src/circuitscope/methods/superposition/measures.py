"""How much superposition a toy model shows: feature norms, features per dimension, and each
feature's dimensionality (article, "The Geometry of Superposition")."""

from __future__ import annotations

import torch

from .model import as_instances


def feature_norms(W: torch.Tensor) -> torch.Tensor:
    """``||W_i||``: how strongly each feature is represented, ``(n_instances, n)`` (or ``(n,)``).

    About 1 for a represented feature, about 0 for one the model ignores.
    """
    Wb, single = as_instances(W)
    norms = Wb.norm(dim=1)
    return norms[0] if single else norms



def represented_features(W: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """How many features have ``||W_i|| > threshold``: ``(n_instances,)`` ints (or a 0-d tensor)."""
    return (feature_norms(W) > threshold).sum(-1)



def features_per_dimension(W: torch.Tensor) -> torch.Tensor:
    """``||W||_F^2 / m``: features stored per hidden dimension, ``(n_instances,)`` (or 0-d).

    ``||W||_F^2 = sum_i ||W_i||^2`` counts the represented features (each has norm about 1), so
    this is about 1 without superposition and above 1 with it (2.5 for a pentagon of 5
    unit-length features in 2 dimensions; trained sparse models often grow their vectors a
    little past length 1, which counts as more). It is the reciprocal of the article's "dimensions per feature"
    ``D* = m / ||W||_F^2`` (:func:`dimensions_per_feature`; section "The Geometry of
    Superposition: Feature Dimensionality").
    """
    Wb, single = as_instances(W)
    value = Wb.pow(2).sum(dim=(1, 2)) / Wb.shape[1]
    return value[0] if single else value



def dimensions_per_feature(W: torch.Tensor) -> torch.Tensor:
    """The article's ``D* = m / ||W||_F^2``: ``(n_instances,)`` (or 0-d); 1/2 for an antipodal
    pair, 2/5 for a pentagon ("The Geometry of Superposition")."""
    return 1.0 / features_per_dimension(W)



def feature_dimensionality(W: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per-feature dimensionality ``D_i = ||W_i||^2 / sum_j (W^_i . W_j)^2``: ``(n_instances, n)``.

    ``W^_i`` is ``W_i`` normalised. ``D_i`` is the fraction of a dimension feature ``i`` owns: 1
    for a feature on its own dimension, 1/2 for an antipodal pair, 2/5 in a pentagon, 0 for a
    feature that is not represented ("The Geometry of Superposition: Feature Dimensionality").
    """
    Wb, single = as_instances(W)
    norms_sq = Wb.pow(2).sum(1)  # (k, n)
    unit = Wb / (norms_sq.sqrt()[:, None, :] + eps)
    overlaps = torch.einsum("kmi,kmj->kij", unit, Wb).pow(2).sum(-1)  # (k, n)
    dims = norms_sq / (overlaps + eps)
    return dims[0] if single else dims
