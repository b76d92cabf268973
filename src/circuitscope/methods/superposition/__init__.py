"""The toy ReLU output model of "Toy Models of Superposition" (Elhage et al., 2022).

``n`` features are squeezed into ``m < n`` hidden dimensions and read back out::

    h  = W x                    W: (m, n), one column W_i per feature
    x' = ReLU(W^T h + b)        b: (n,)

Each feature is 0 with probability ``S`` (its *sparsity*) and uniform in [0, 1] otherwise; the
loss weights feature ``i``'s squared error by its *importance* ``I_i`` (article, "Demonstrating
Superposition: Experiment Setup"). With dense features the model keeps the ``m`` most important
features on orthogonal directions and drops the rest, as PCA would; with sparse features it
stores more features than it has dimensions, in *superposition*, and the ReLU filters out the
interference.

Following the article, many models ("instances") are trained at once in one batched tensor, each
with its own sparsity and importances, so a whole sweep trains in seconds on a CPU::

    model = ToyModel(n_features=5, n_hidden=2, sparsity=[0.0, 0.7, 0.9, 0.99])
    train_toy_model(model)
    features_per_dimension(model.W)        # (n_instances,): about 1 dense, over 2 sparse
    plotting.plot_toy_features(model.W)     # the article's pictures (circuitscope.figures)

Shapes: ``W: (n_instances, m, n)``, ``b: (n_instances, n)``; data ``x: (batch, n_instances, n)``.
Functions that take ``W`` also accept one instance ``(m, n)``.
"""

from __future__ import annotations

from .measures import (
    dimensions_per_feature,
    feature_dimensionality,
    feature_norms,
    features_per_dimension,
    represented_features,
)
from .model import ToyModel, as_instances, importance_decay, importance_weighted_loss, per_instance
from .phases import PHASES, PhaseDiagram, classify_phase, phase_diagram
from .training import TrainResult, train_toy_model

__all__ = [
    "PHASES",
    "PhaseDiagram",
    "ToyModel",
    "TrainResult",
    "as_instances",
    "classify_phase",
    "dimensions_per_feature",
    "feature_dimensionality",
    "feature_norms",
    "features_per_dimension",
    "importance_decay",
    "importance_weighted_loss",
    "per_instance",
    "phase_diagram",
    "represented_features",
    "train_toy_model",
]
