"""Sparse autoencoders (dictionary learning) on InceptionV1 activations.

The sparse autoencoder of "Towards Monosemanticity" (Bricken et al., 2023, section "Problem
Setup") rewrites an activation vector ``x`` as a sparse, non-negative
combination of many more learned directions than ``x`` has dimensions::

    f  = ReLU(W_enc (x - b_dec) + b_enc)     features: (d_hidden,), mostly zero
    x^ = W_dec f + b_dec                      reconstruction: (d_in,)
    loss = ||x - x^||^2 + l1_coeff * ||f||_1  (each averaged over the batch)

The columns of ``W_dec`` (the *dictionary*) have unit norm, so the L1 penalty cannot be dodged
by shrinking ``f`` and growing ``W_dec``: after every step they are renormalised, and before it
the part of their gradient parallel to them is removed (the article's appendix on training).

A learned feature is then a direction in a layer's activation space: render it with
``optvis.objectives.direction(layer, feature_direction(sae, i))`` and look at the images that
excite it most with :func:`top_examples`.

Training streams activation vectors from any named layer (:func:`activation_batches`), runs on
the GPU when there is one, shows a progress bar and checkpoints, so that a long run can be
stopped and resumed with exactly the result of one uninterrupted run (bit for bit on a CPU)::

    model = cs.load_inceptionv1()
    sae, history = train_layer_sae(model, image_batches, "mixed4a", expansion=4, steps=20_000,
                                   checkpoint="mixed4a_sae.pt", checkpoint_every=500)

The TopK sparse autoencoder of "Scaling and evaluating sparse autoencoders" (Gao et al., 2024)
keeps the ``k`` largest pre-activations instead of paying an L1 penalty
(:class:`TopKSparseAutoencoder`); the same :func:`train_sae` trains it.

The package is four modules: :mod:`~circuitscope.methods.sae.model` (the autoencoders),
:mod:`~circuitscope.methods.sae.data` (where the vectors come from), :mod:`~circuitscope.methods.sae.training`
(the loop) with :mod:`~circuitscope.methods.sae.checkpoint` (saving and resuming), and
:mod:`~circuitscope.methods.sae.features` (looking at what was learned); every public name is here.

Shapes: activation vectors ``x: (batch, d_in)``; features ``f: (batch, d_hidden)``;
``W_enc: (d_hidden, d_in)``, ``W_dec: (d_in, d_hidden)``.
"""

from __future__ import annotations

from ...core.images import photo_crops
from .checkpoint import CHECKPOINT_FORMAT, TrainingHistory, load_sae
from .data import ActivationBatches, PlantedFeatures, activation_batches, activation_scale, planted_features
from .features import (
    SAEFeatureModel,
    dead_features,
    feature_cosines,
    feature_direction,
    feature_frequencies,
    mean_max_cosine_similarity,
    top_examples,
)
from .model import SAELoss, SparseAutoencoder, TopKSparseAutoencoder, build_sae
from .training import train_layer_sae, train_sae

__all__ = [
    "ActivationBatches",
    "CHECKPOINT_FORMAT",
    "PlantedFeatures",
    "SAEFeatureModel",
    "SAELoss",
    "SparseAutoencoder",
    "TopKSparseAutoencoder",
    "TrainingHistory",
    "activation_batches",
    "activation_scale",
    "build_sae",
    "dead_features",
    "feature_cosines",
    "feature_direction",
    "feature_frequencies",
    "load_sae",
    "mean_max_cosine_similarity",
    "photo_crops",
    "planted_features",
    "top_examples",
    "train_layer_sae",
    "train_sae",
]  # fmt: skip
