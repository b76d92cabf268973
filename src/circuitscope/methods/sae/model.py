"""The sparse autoencoders: the L1 one of "Towards Monosemanticity" and the TopK one of
"Scaling and evaluating sparse autoencoders".

Shapes: activation vectors ``x: (batch, d_in)``; features ``f: (batch, d_hidden)``;
``W_enc: (d_hidden, d_in)``, ``W_dec: (d_in, d_hidden)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from ...core.device import get_device

__all__ = ["SAELoss", "SparseAutoencoder", "TopKSparseAutoencoder", "build_sae"]


class SAELoss(NamedTuple):
    """The parts of the training loss, each a scalar tensor.

    ``total = mse + l1_coeff * l1``; ``mse``: squared L2 reconstruction error per vector (summed
    over ``d_in``), averaged over the batch; ``l1``: L1 norm of the features per vector (summed
    over ``d_hidden``), averaged over the batch; ``l0``: mean number of active features per
    vector (not differentiable; for monitoring).
    """

    total: torch.Tensor
    mse: torch.Tensor
    l1: torch.Tensor
    l0: torch.Tensor


class SparseAutoencoder(nn.Module):
    """A one-hidden-layer sparse autoencoder with a unit-norm dictionary.

    Args:
        d_in: size of the activation vectors (a layer's channels).
        d_hidden: number of learned features (the dictionary size; usually a multiple of
            ``d_in``: "expansion factor").
        tied: if True the encoder is the decoder's transpose (``W_enc = W_dec^T``); the
            default, untied, is the article's.
        device: where the parameters live (default :func:`circuitscope.get_device`).
        seed: seeds the initialisation: random unit-norm decoder columns, ``W_enc = W_dec^T``
            to start with, zero biases.

    Attributes:
        W_enc: ``(d_hidden, d_in)`` (absent when ``tied``); b_enc: ``(d_hidden,)``.
        W_dec: ``(d_in, d_hidden)``, unit-norm columns; b_dec: ``(d_in,)``.
        input_scale: a buffer (scalar, default 1). The vectors the SAE was trained on are a
            layer's activations divided by it (:func:`train_layer_sae` sets it so their mean
            norm is 1); :func:`top_examples` and :func:`activation_batches` apply it.
    """

    def __init__(self, d_in: int, d_hidden: int, tied: bool = False,
                 device: str | torch.device | None = None, seed: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.d_in, self.d_hidden, self.tied = int(d_in), int(d_hidden), bool(tied)
        gen = torch.Generator().manual_seed(seed)
        W_dec = torch.randn(self.d_in, self.d_hidden, generator=gen)
        W_dec /= W_dec.norm(dim=0, keepdim=True)
        device = get_device(device)
        self.W_dec = nn.Parameter(W_dec.to(device))
        if not self.tied:
            self.W_enc = nn.Parameter(W_dec.T.clone().to(device))
        self.b_enc = nn.Parameter(torch.zeros(self.d_hidden, device=device))
        self.b_dec = nn.Parameter(torch.zeros(self.d_in, device=device))
        self.register_buffer("input_scale", torch.ones((), device=device))

    @property
    def device(self) -> torch.device:
        return self.W_dec.device

    @property
    def encoder_weight(self) -> torch.Tensor:
        """``W_enc: (d_hidden, d_in)`` (``W_dec^T`` when tied)."""
        return self.W_dec.T if self.tied else self.W_enc

    def config(self) -> dict[str, Any]:
        """What :func:`build_sae` (and so :func:`~circuitscope.methods.sae.load_sae`) needs to rebuild
        this SAE: ``d_in``, ``d_hidden``, ``tied``."""
        return {"d_in": self.d_in, "d_hidden": self.d_hidden, "tied": self.tied}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``f = ReLU(W_enc (x - b_dec) + b_enc)``: ``(..., d_in)`` -> ``(..., d_hidden)`` >= 0."""
        return torch.relu((x - self.b_dec) @ self.encoder_weight.T + self.b_enc)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``x^ = W_dec f + b_dec``: ``(..., d_hidden)`` -> ``(..., d_in)``."""
        return f @ self.W_dec.T + self.b_dec

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction (..., d_in), features (..., d_hidden))`` of ``x: (..., d_in)``."""
        f = self.encode(x)
        return self.decode(f), f

    def loss(self, x: torch.Tensor, l1_coeff: float) -> SAELoss:
        """The training loss on a batch ``x: (batch, d_in)``; see :class:`SAELoss`."""
        x_hat, f = self(x)
        return self.loss_parts(x, x_hat, f, l1_coeff)

    def loss_parts(self, x: torch.Tensor, x_hat: torch.Tensor, f: torch.Tensor, l1_coeff: float) -> SAELoss:
        """:class:`SAELoss` of a batch from its reconstruction ``x_hat`` and features ``f`` (shared
        by :meth:`loss` and training, where the forward pass may run through DDP)."""
        mse = (x - x_hat).pow(2).sum(-1).mean()
        l1 = f.abs().sum(-1).mean()
        l0 = (f > 0).float().sum(-1).mean().detach()
        return SAELoss(mse + l1_coeff * l1, mse, l1, l0)

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale every dictionary vector (column of ``W_dec``) to unit norm, in place."""
        self.W_dec /= self.W_dec.norm(dim=0, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_gradient_(self) -> None:
        """Remove from ``W_dec.grad`` each column's component parallel to that column.

        With unit-norm columns, that component would only change the columns' lengths, which
        :meth:`normalize_decoder_` undoes; removing it keeps the optimiser's moments about the
        directions.
        """
        if self.W_dec.grad is None:
            return
        parallel = (self.W_dec.grad * self.W_dec).sum(0, keepdim=True)
        self.W_dec.grad -= parallel * self.W_dec

    @torch.no_grad()
    def init_decoder_bias_(self, x: torch.Tensor) -> None:
        """Set ``b_dec`` to the mean of ``x: (N, d_in)`` (a good start; the article used the
        geometric median)."""
        self.b_dec.copy_(x.to(self.b_dec).mean(0))

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, d_hidden={self.d_hidden}, tied={self.tied}"


class TopKSparseAutoencoder(SparseAutoencoder):
    """A sparse autoencoder whose sparsity is set, not paid for: only the ``k`` largest
    pre-activations of each input are kept ("Scaling and evaluating sparse autoencoders", Gao
    et al. 2024, section 2.3, "TopK activation function")::

        f  = ReLU(TopK_k(W_enc (x - b_dec) + b_enc))   at most k non-zero features per input
        x^ = W_dec f + b_dec
        loss = ||x - x^||^2                             no L1 penalty: k fixes the sparsity

    The ReLU keeps features non-negative, as the L1 SAE's are (Gao et al.'s code does the
    same): an input has exactly ``k`` active features whenever its ``k``-th largest
    pre-activation is positive, fewer otherwise. Trained by the same :func:`train_sae`
    (``l1_coeff`` is ignored; the L1 term is still reported in the history, for comparison).
    The article's auxiliary loss for dead features (AuxK) is left out.

    Args:
        d_in, d_hidden, tied, device, seed: as for :class:`SparseAutoencoder`.
        k: active features per input, ``1 <= k <= d_hidden``.
    """

    def __init__(self, d_in: int, d_hidden: int, k: int, tied: bool = False,
                 device: str | torch.device | None = None, seed: int = 0) -> None:  # fmt: skip
        if not 1 <= int(k) <= int(d_hidden):
            raise ValueError(f"k must lie in 1..d_hidden={d_hidden}, got {k}")
        super().__init__(d_in, d_hidden, tied=tied, device=device, seed=seed)
        self.k = int(k)

    def config(self) -> dict[str, Any]:
        """As :meth:`SparseAutoencoder.config`, plus ``k``."""
        return {**super().config(), "k": self.k}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features: the ``k`` largest pre-activations of each input (ReLU'd), zeros elsewhere:
        ``(..., d_in)`` -> ``(..., d_hidden)`` >= 0."""
        pre = (x - self.b_dec) @ self.encoder_weight.T + self.b_enc
        top = pre.topk(self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, torch.relu(top.values))

    def loss_parts(self, x: torch.Tensor, x_hat: torch.Tensor, f: torch.Tensor, l1_coeff: float) -> SAELoss:
        """The reconstruction error alone (``total = mse``); ``l1_coeff`` is ignored."""
        parts = super().loss_parts(x, x_hat, f, 0.0)
        return parts._replace(total=parts.mse)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, k={self.k}"


def build_sae(config: dict[str, Any], device: str | torch.device | None = None) -> SparseAutoencoder:
    """The SAE described by ``config`` (:meth:`SparseAutoencoder.config`): a
    :class:`TopKSparseAutoencoder` when it names ``k``, else a :class:`SparseAutoencoder`."""
    config = dict(config)
    if "k" in config:
        return TopKSparseAutoencoder(**config, device=device)
    return SparseAutoencoder(**config, device=device)
