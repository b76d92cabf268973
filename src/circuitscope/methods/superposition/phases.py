"""The phase diagram of "Superposition as a Phase Change": for 2 features in 1 dimension, is the
extra feature dropped, given a dimension of its own, or stored in superposition?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from .measures import feature_norms
from .model import ToyModel, importance_weighted_loss
from .training import train_toy_model

#: Names of the phases of the extra feature (index = phase code in :class:`PhaseDiagram`).
PHASES = ("not represented", "dedicated dimension", "superposition")



def classify_phase(W: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """The phase of feature 1 of 2-feature models: ``(n_instances,)`` ints (or 0-d) indexing
    :data:`PHASES`.

    ``W: (n_instances, m, 2)``. 0 "not represented": ``||W_1|| < threshold``; 1 "dedicated
    dimension": feature 1 represented and feature 0 not (with ``m = 1``, feature 1 takes the only
    dimension); 2 "superposition": both represented (for ``m = 1``, as an antipodal pair
    ``W_0 = -W_1``). Article, "Superposition as a Phase Change".
    """
    norms = feature_norms(W)
    if norms.shape[-1] != 2:
        raise ValueError(f"phase diagrams are for 2-feature models, got {norms.shape[-1]} features")
    first, extra = norms[..., 0] > threshold, norms[..., 1] > threshold
    phase = torch.zeros_like(norms[..., 0], dtype=torch.long)
    phase[extra & ~first] = 1
    phase[extra & first] = 2
    return phase



class PhaseDiagram(NamedTuple):
    """Result of :func:`phase_diagram`.

    Attributes:
        phases: ``(len(sparsities), len(importances))`` ints indexing :data:`PHASES`.
        sparsities: ``(S,)`` both features' sparsity (rows).
        importances: ``(I,)`` the extra feature's importance relative to feature 0 (columns).
        norms: ``(S, I, 2)`` ``||W_0||, ||W_1||`` of the chosen model at each point.
        losses: ``(S, I)`` its final loss.
    """

    phases: np.ndarray
    sparsities: np.ndarray
    importances: np.ndarray
    norms: np.ndarray
    losses: np.ndarray



def phase_diagram(
    sparsities: Sequence[float] | None = None,
    importances: Sequence[float] | None = None,
    n_hidden: int = 1,
    restarts: int = 4,
    steps: int = 1500,
    batch_size: int = 512,
    lr: float = 1e-2,
    seed: int = 0,
    progress: bool = False,
) -> PhaseDiagram:
    """Train 2-feature, ``n_hidden``-dimension toy models over sparsity x relative importance.

    Feature 0 has importance 1; the "extra" feature 1 has importance ``importances[j]``; both
    have sparsity ``sparsities[i]``. Every grid point trains ``restarts`` models from different
    initialisations (all in one batch) and keeps the one with the lowest loss, since gradient
    descent sometimes stops in a worse local minimum. Reproduces the article's "Superposition as
    a Phase Change" diagram for ``n = 2, m = 1``: the extra feature is not represented when it
    is unimportant, takes the dimension when it is more important than feature 0, and shares it
    in superposition (an antipodal pair) when both are sparse enough.

    Defaults: sparsities ``1 - 10 ** linspace(0, -2, 7)`` (density 1 down to 0.01) and
    importances ``10 ** linspace(-1, 1, 7)``: 196 models, about ten seconds on a CPU. A few
    points near the boundaries or at the sparsest row can land in the wrong phase (a local
    minimum every restart fell into); the article's empirical diagram shows the same noise.
    """
    sp = np.asarray(1 - 10 ** np.linspace(0, -2, 7) if sparsities is None else sparsities, dtype=np.float64)
    imp = np.asarray(10 ** np.linspace(-1, 1, 7) if importances is None else importances, dtype=np.float64)
    grid_s, grid_i = np.meshgrid(sp, imp, indexing="ij")  # (S, I)
    points = grid_s.size
    s_inst = np.repeat(grid_s.ravel(), restarts)
    i_inst = np.repeat(grid_i.ravel(), restarts)
    importance = np.stack([np.ones_like(i_inst), i_inst], axis=1)
    sparsity = np.stack([s_inst, s_inst], axis=1)
    model = ToyModel(2, n_hidden, n_instances=points * restarts, sparsity=torch.tensor(sparsity, dtype=torch.float32),
                     importance=torch.tensor(importance, dtype=torch.float32), seed=seed)  # fmt: skip
    train_toy_model(model, steps=steps, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
    # Compare restarts on a fresh, shared evaluation batch, scaled by each point's importances.
    with torch.no_grad():
        x = model.generate_batch(4 * batch_size, torch.Generator().manual_seed(seed + 1))
        loss = importance_weighted_loss(x, model(x), model.importance).cpu().view(points, restarts)
    best = loss.argmin(1)
    W = model.W.detach().cpu().view(points, restarts, n_hidden, 2)[torch.arange(points), best]
    phases = classify_phase(W).view(grid_s.shape).numpy()
    norms = feature_norms(W).view(*grid_s.shape, 2).numpy()
    return PhaseDiagram(phases, sp, imp, norms, loss.min(1).values.view(grid_s.shape).numpy())
