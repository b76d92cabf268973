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
    plot_features(model.W)                  # the article's pictures of the 2-D embeddings

Shapes: ``W: (n_instances, m, n)``, ``b: (n_instances, n)``; data ``x: (batch, n_instances, n)``.
Functions that take ``W`` also accept one instance ``(m, n)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..core.device import get_device, one_cpu_thread
from ..core.progress import bar as progress_bar

__all__ = [
    "PHASES",
    "PhaseDiagram",
    "ToyModel",
    "TrainResult",
    "classify_phase",
    "dimensions_per_feature",
    "feature_dimensionality",
    "feature_norms",
    "features_per_dimension",
    "importance_decay",
    "importance_weighted_loss",
    "phase_diagram",
    "represented_features",
    "train_toy_model",
]  # fmt: skip


def as_instances(W: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``W`` as ``(n_instances, m, n)``, and whether a single ``(m, n)`` was given."""
    W = torch.as_tensor(W).detach().float()
    if W.dim() == 2:
        return W[None], True
    if W.dim() != 3:
        raise ValueError(f"expected W of shape (m, n) or (n_instances, m, n), got {tuple(W.shape)}")
    return W, False


def per_instance(value, n_instances: int, n_features: int, name: str, one_d: str) -> torch.Tensor:
    """A number, a 1-D value or ``(n_instances, n_features)`` as ``(n_instances, n_features)``.

    ``one_d`` says what a 1-D value is: ``"instance"`` (one per instance) or ``"feature"``."""
    t = torch.as_tensor(value, dtype=torch.float32).detach().cpu()
    if t.dim() == 0:
        return t.expand(n_instances, n_features).clone()
    if t.dim() == 1 and one_d == "instance" and t.numel() == n_instances:
        return t[:, None].expand(n_instances, n_features).clone()
    if t.dim() == 1 and one_d == "feature" and t.numel() == n_features:
        return t[None].expand(n_instances, n_features).clone()
    if t.dim() == 2 and tuple(t.shape) == (n_instances, n_features):
        return t.clone()
    n_1d = n_instances if one_d == "instance" else n_features
    raise ValueError(
        f"{name} must be a number, ({n_1d},) one per {one_d}, or ({n_instances}, {n_features}); "
        f"got shape {tuple(t.shape)}"
    )


class ToyModel(nn.Module):
    """A batch of independent toy ReLU output models ``x' = ReLU(W^T W x + b)``.

    Args:
        n_features: ``n``, the number of input features.
        n_hidden: ``m``, the hidden dimensions (``m < n`` for superposition to be possible).
        n_instances: how many independent models to train side by side. Defaults to the length
            of a per-instance ``sparsity``/``importance``, else 1.
        sparsity: ``S`` in [0, 1), the probability a feature is zero: a number, one per instance
            ``(n_instances,)`` (a sweep), or ``(n_instances, n_features)``.
            (`1 - S` is the feature *density*, ARENA's ``feature_probability``.)
        importance: ``I_i`` >= 0: a number, one per feature ``(n_features,)``, or
            ``(n_instances, n_features)``; default 1 (the article's 5-feature example uses
            ``0.9 ** i``: :func:`importance_decay`).
        device: where the parameters live (default :func:`circuitscope.get_device`).
        seed: seeds the initialisation (Xavier-normal ``W``, zero ``b``).

    Attributes:
        W: ``(n_instances, m, n)`` parameter; column ``W[k, :, i]`` embeds feature ``i``.
        b: ``(n_instances, n)`` output bias.
        sparsity, importance: ``(n_instances, n)`` buffers.
    """

    def __init__(
        self,
        n_features: int = 5,
        n_hidden: int = 2,
        n_instances: int | None = None,
        sparsity=0.0,
        importance=1.0,
        device: str | torch.device | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if n_instances is None:
            sp, imp = torch.as_tensor(sparsity), torch.as_tensor(importance)
            n_instances = sp.shape[0] if sp.dim() >= 1 else imp.shape[0] if imp.dim() == 2 else 1
        self.n_features, self.n_hidden, self.n_instances = int(n_features), int(n_hidden), int(n_instances)
        sp = per_instance(sparsity, self.n_instances, self.n_features, "sparsity", "instance")
        if not bool(((sp >= 0) & (sp < 1)).all()):
            raise ValueError("sparsity must be in [0, 1): the probability a feature is zero")
        imp = per_instance(importance, self.n_instances, self.n_features, "importance", "feature")
        device = get_device(device)
        gen = torch.Generator().manual_seed(seed)
        std = math.sqrt(2.0 / (self.n_hidden + self.n_features))  # Xavier normal
        W = torch.randn(self.n_instances, self.n_hidden, self.n_features, generator=gen) * std
        self.W = nn.Parameter(W.to(device))
        self.b = nn.Parameter(torch.zeros(self.n_instances, self.n_features, device=device))
        self.register_buffer("sparsity", sp.to(device))
        self.register_buffer("importance", imp.to(device))

    @property
    def device(self) -> torch.device:
        return self.W.device

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """``h = W x``: ``x: (batch, n_instances, n)`` -> ``(batch, n_instances, m)``."""
        return torch.bmm(x.transpose(0, 1), self.W.transpose(1, 2)).transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x' = ReLU(W^T W x + b)``: ``(batch, n_instances, n)`` -> same shape, >= 0."""
        h = torch.bmm(x.transpose(0, 1), self.W.transpose(1, 2))  # (n_instances, batch, m)
        out = torch.baddbmm(self.b[:, None, :], h, self.W)  # W^T h + b: (n_instances, batch, n)
        return torch.relu(out).transpose(0, 1)

    def generate_batch(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Synthetic data ``(batch_size, n_instances, n)`` in [0, 1] on the model's device.

        Feature ``i`` of instance ``k`` is 0 with probability ``sparsity[k, i]``, else uniform in
        [0, 1], independently of all others. ``generator`` (a CPU generator) makes it reproducible.
        (One uniform draw ``u`` per entry does both: the feature is on when ``u < 1 - S``, and
        then ``u / (1 - S)`` is uniform in [0, 1].)
        """
        density = (1 - self.sparsity).cpu()
        u = torch.rand((batch_size, self.n_instances, self.n_features), generator=generator)
        return torch.where(u < density, u / density, torch.zeros(())).to(self.device)

    def loss(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss: :func:`importance_weighted_loss` summed over instances (a scalar).

        Summing keeps the instances independent: each one's gradient is that of its own loss.
        """
        out = self(x) if out is None else out
        return importance_weighted_loss(x, out, self.importance).sum()


def importance_decay(n_features: int, base: float = 0.9) -> torch.Tensor:
    """Importances ``base ** i`` for ``i = 0 .. n-1``: ``(n_features,)`` (article's default)."""
    return base ** torch.arange(n_features, dtype=torch.float32)


def importance_weighted_loss(x: torch.Tensor, out: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    """Per-instance loss ``mean over the batch of sum_i I_i (x_i - x'_i)^2``.

    ``x, out: (batch, n_instances, n)``, ``importance: (n_instances, n)`` or ``(n,)``;
    returns ``(n_instances,)`` (article, "Experiment Setup": the importance-weighted MSE).
    """
    return (importance * (x - out) ** 2).sum(-1).mean(0)


class TrainResult(NamedTuple):
    """What :func:`train_toy_model` returns: ``losses: (n_logged, n_instances)`` per-instance
    losses (each a mean over the logging interval) at ``steps: (n_logged,)``."""

    steps: torch.Tensor
    losses: torch.Tensor

    @property
    def final(self) -> torch.Tensor:
        """The last logged per-instance losses ``(n_instances,)``."""
        return self.losses[-1]


def train_toy_model(
    model: ToyModel,
    steps: int = 3000,
    batch_size: int = 512,
    lr: float = 1e-2,
    seed: int = 0,
    log_every: int = 100,
    progress: bool = False,
) -> TrainResult:
    """Train every instance of ``model`` with Adam on fresh synthetic batches; returns the losses.

    The defaults (3000 steps of 512 samples, learning rate 1e-2 with a cosine decay to 0) train
    a 5-feature, 2-dimension sweep in a few seconds on a CPU; the article used 10,000 steps at
    1e-3. Much larger learning rates converge faster in the dense regime but can kill sparse
    features for good (``W_i`` shrinks to 0 with a negative bias, and the ReLU passes no
    gradient). Data are drawn with a CPU generator seeded by ``seed``, so a run is
    reproducible; on a CPU it runs on one thread (faster for tensors this small).
    """
    with one_cpu_thread(model.device.type == "cpu"):
        return _train_toy_model(model, steps, batch_size, lr, seed, log_every, progress)


def _train_toy_model(model, steps, batch_size, lr, seed, log_every, progress) -> TrainResult:

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(steps, 1)))
    )
    logged_steps, logged, running, count = [], [], 0.0, 0
    for step in progress_bar(range(steps), desc="toy models", progress=progress):
        x = model.generate_batch(batch_size, gen)
        per_instance = importance_weighted_loss(x, model(x), model.importance)
        opt.zero_grad(set_to_none=True)
        per_instance.sum().backward()
        opt.step()
        sched.step()
        running = running + per_instance.detach()
        count += 1
        if count == log_every or step == steps - 1:
            logged_steps.append(step + 1)
            logged.append((running / count).cpu())
            running, count = 0.0, 0
    if not logged:
        logged, logged_steps = [torch.full((model.n_instances,), float("nan"))], [0]
    return TrainResult(torch.tensor(logged_steps), torch.stack(logged))


# -- measuring superposition ---------------------------------------------------------------
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


# -- the phase diagram ----------------------------------------------------------------------
PHASES = ("not represented", "dedicated dimension", "superposition")
"""Names of the phases of the extra feature (index = phase code in :class:`PhaseDiagram`)."""


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




