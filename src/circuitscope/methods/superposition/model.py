"""The toy ReLU output model: ``x' = ReLU(W^T W x + b)``, many instances in one tensor, and
the importance-weighted loss it is trained with."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...core.device import get_device


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
