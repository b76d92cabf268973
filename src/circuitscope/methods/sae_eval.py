"""How good is a sparse autoencoder? The numbers dictionary-learning papers report.

"Towards Monosemanticity" (Bricken et al. 2023, §"How can we tell if the autoencoder is
working?" and the appendix on the autoencoders' evaluation) judges an SAE by:

* **sparsity**: L0, the mean number of active features per vector (:func:`evaluate_sae`);
* **reconstruction**: the fraction of the activations' variance the reconstruction explains,
  ``1 - sum ||x - x^||^2 / sum ||x - mean(x)||^2`` (:func:`fraction_of_variance_explained`);
* **feature density**: how often each feature fires over a dataset; features that never fire are
  **dead** (wasted dictionary), features that fire on a large share of the vectors are **dense**
  (rarely interpretable). The density threshold is a convention: this course calls a feature dense
  when it fires on more than 10% of the vectors;
* **the splice-in test**: put the reconstruction back into the network in place of the layer's
  activations and see what the model's loss and accuracy lose (:func:`spliced_metrics`;
  :func:`loss_recovered` compares it with zero-ablating the layer). A reconstruction that is
  close in squared error can still break what the rest of the network reads.

Shapes: activation vectors ``x: (N, d_in)``; a layer's activations ``(N, C, H, W)`` become
``N*H*W`` vectors of size ``C`` (channels last) and go back the same way. The SAE is the library's
:class:`~circuitscope.methods.sae.SparseAutoencoder`, used through its public API (``encode``, ``forward``,
``input_scale``, ``d_in``, ``d_hidden``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ..core.hooks import replaced
from .sae import SparseAutoencoder, feature_frequencies

__all__ = [
    "DENSE_THRESHOLD",
    "SAEEvaluation",
    "SpliceResult",
    "evaluate_sae",
    "fraction_of_variance_explained",
    "identity_sae",
    "loss_recovered",
    "reconstruct_activations",
    "spliced",
    "spliced_metrics",
    "zero_sae",
]

#: A feature that fires on more than this fraction of the vectors is called dense (a convention).
DENSE_THRESHOLD = 0.1


class SAEEvaluation(NamedTuple):
    """:func:`evaluate_sae`'s numbers.

    ``l0``: mean active features per vector (>= 0); ``fve``: fraction of variance explained
    (<= 1; 1 is a perfect reconstruction, 0 no better than the mean vector, negative worse);
    ``frequency``: ``(d_hidden,)`` the fraction of vectors each feature fires on, in [0, 1];
    ``dead``, ``dense``: ``(d_hidden,)`` bool masks (``frequency == 0``, ``frequency >
    dense_threshold``).
    """

    l0: float
    fve: float
    frequency: torch.Tensor
    dead: torch.Tensor
    dense: torch.Tensor

    def as_dict(self) -> dict:
        return self._asdict()


def fraction_of_variance_explained(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """``1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` over the rows of ``x, x_hat: (N, d)``.

    The variance is about the mean vector of ``x`` (over the rows), pooled over every entry
    (not a mean of per-dimension ratios). At most 1; 0 for reconstructing every row by the mean.
    Raises ``ValueError`` for ``x`` without variance (every row the same).
    """
    x, x_hat = x.detach().double(), x_hat.detach().double()
    if x.shape != x_hat.shape or x.dim() != 2:
        raise ValueError(
            f"expected x and x_hat of the same shape (N, d), got {tuple(x.shape)} and {tuple(x_hat.shape)}"
        )
    variance = float((x - x.mean(dim=0)).pow(2).sum())
    if variance == 0.0:
        raise ValueError("x has no variance: every row is the same vector")
    return 1.0 - float((x - x_hat).pow(2).sum()) / variance


@torch.no_grad()
def evaluate_sae(
    sae: SparseAutoencoder, x: torch.Tensor, dense_threshold: float = DENSE_THRESHOLD
) -> SAEEvaluation:
    """L0, fraction of variance explained, firing frequencies, dead and dense features of ``sae`` on ``x``.

    ``x: (N, d_in)`` activation vectors on the SAE's scale (already divided by
    ``sae.input_scale``, as it was trained). A feature *fires* on a vector when ``f > 0``.
    See :class:`SAEEvaluation` for the ranges; "Towards Monosemanticity" §"How can we tell if
    the autoencoder is working?".
    """
    x = x.to(sae.device).float()
    x_hat, f = sae(x)
    frequency = feature_frequencies(sae, x)
    return SAEEvaluation(
        l0=float((f > 0).float().sum(dim=-1).mean()),
        fve=fraction_of_variance_explained(x, x_hat),
        frequency=frequency,
        dead=frequency == 0,
        dense=frequency > dense_threshold,
    )


def reconstruct_activations(sae: SparseAutoencoder, acts: torch.Tensor) -> torch.Tensor:
    """The SAE's reconstruction of a layer's activations, in the layer's own shape and scale.

    ``acts: (N, C, H, W)`` (or ``(N, C)``), ``C == sae.d_in``: every position's channel vector
    is divided by ``sae.input_scale``, reconstructed, multiplied back, and put back in place.
    """
    if acts.shape[1] != sae.d_in:
        raise ValueError(f"the layer has {acts.shape[1]} channels, the SAE reads vectors of {sae.d_in}")
    scale = sae.input_scale
    if acts.dim() == 2:
        return (sae(acts.to(sae.device) / scale)[0] * scale).to(acts)
    n, c, h, w = acts.shape
    vectors = acts.permute(0, 2, 3, 1).reshape(-1, c).to(sae.device) / scale
    x_hat = sae(vectors)[0] * scale
    return x_hat.reshape(n, h, w, c).permute(0, 3, 1, 2).to(acts)


@contextmanager
def spliced(model, sae: SparseAutoencoder, layer: str, replace=None) -> Iterator[None]:
    """Inside the block, ``layer``'s output is replaced by the SAE's reconstruction of it.

    A forward hook on ``model.hook_points[layer]`` returns :func:`reconstruct_activations`
    (or ``replace(acts)`` when given: ``torch.zeros_like`` zero-ablates the layer); everything
    after the layer reads the replacement. The hook is removed when the block ends, even on an
    error.
    """
    with replaced(model, layer, replace or (lambda acts: reconstruct_activations(sae, acts))):
        yield


class SpliceResult(NamedTuple):
    """The model's cross-entropy loss and top-1 accuracy on the labels, clean and with the SAE's
    reconstruction spliced in (losses >= 0, accuracies in [0, 1])."""

    clean_loss: float
    spliced_loss: float
    clean_accuracy: float
    spliced_accuracy: float

    @property
    def loss_change(self) -> float:
        """``spliced_loss - clean_loss`` (0 for a perfect reconstruction; usually > 0)."""
        return self.spliced_loss - self.clean_loss

    @property
    def accuracy_change(self) -> float:
        """``spliced_accuracy - clean_accuracy`` (0 for a perfect reconstruction; usually < 0)."""
        return self.spliced_accuracy - self.clean_accuracy

    def as_dict(self) -> dict:
        return self._asdict()


def _loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    logits = logits.double()
    return float(F.cross_entropy(logits, labels)), float((logits.argmax(dim=-1) == labels).double().mean())


@torch.no_grad()
def spliced_metrics(model, sae: SparseAutoencoder, layer: str, images: torch.Tensor,
                    labels: torch.Tensor | None = None) -> SpliceResult:  # fmt: skip
    """The splice-in test: the model's loss and accuracy with ``layer`` replaced by the SAE's reconstruction.

    Args:
        model: a model whose ``forward(images)`` gives logits ``(N, classes)`` and whose
            ``hook_points[layer]`` is the layer (InceptionV1: at least 193 px images).
        sae: a :class:`~circuitscope.methods.sae.SparseAutoencoder` trained on ``layer``'s vectors.
        images: ``(N, 3, H, W)`` float in [0, 1].
        labels: ``(N,)`` class indices; default the clean model's own top-1 classes (then the
            clean accuracy is 1 and the spliced accuracy is the agreement with the clean model).

    Returns:
        :class:`SpliceResult`: mean cross-entropy and top-1 accuracy, clean and spliced.
    """
    images = images.to(model.device)
    clean = model(images)
    labels = clean.argmax(dim=-1) if labels is None else labels.to(clean.device).long()
    with spliced(model, sae, layer):
        patched = model(images)
    (clean_loss, clean_accuracy), (spliced_loss, spliced_accuracy) = (
        _loss_and_accuracy(clean, labels), _loss_and_accuracy(patched, labels))  # fmt: skip
    return SpliceResult(clean_loss, spliced_loss, clean_accuracy, spliced_accuracy)


@torch.no_grad()
def loss_recovered(model, sae: SparseAutoencoder, layer: str, images: torch.Tensor,
                   labels: torch.Tensor | None = None) -> float:  # fmt: skip
    """How much of the loss that zero-ablating ``layer`` costs the SAE's reconstruction gets back.

    ``(zero_loss - spliced_loss) / (zero_loss - clean_loss)``: 1 for a perfect reconstruction,
    0 for one no better than zeros (negative: worse). Raises ``ValueError`` when zero-ablating
    the layer does not change the loss (nothing to recover).
    """
    result = spliced_metrics(model, sae, layer, images, labels)
    images = images.to(model.device)
    if labels is None:
        labels = model(images).argmax(dim=-1)
    with spliced(model, sae, layer, replace=torch.zeros_like):
        zero_loss, _ = _loss_and_accuracy(model(images), labels.to(model.device).long())
    if zero_loss == result.clean_loss:
        raise ValueError(f"zero-ablating {layer} does not change the loss: nothing to recover")
    return (zero_loss - result.spliced_loss) / (zero_loss - result.clean_loss)


def identity_sae(d: int, device: str | torch.device | None = "cpu") -> SparseAutoencoder:
    """A planted SAE with ``d`` features that reconstructs every non-negative vector exactly.

    ``W_enc = W_dec = I``, zero biases: ``f = ReLU(x) = x`` for ``x >= 0`` (a post-ReLU layer),
    so ``x^ = x``. Splicing it into a post-ReLU layer changes nothing: the splice-in test's zero.
    """
    sae = SparseAutoencoder(d, d, device=device)
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(d))
        sae.W_dec.copy_(torch.eye(d))
    return sae


def zero_sae(
    d_in: int, d_hidden: int, device: str | torch.device | None = "cpu", seed: int = 0
) -> SparseAutoencoder:
    """A planted SAE whose features never fire (``W_enc = 0``, zero biases): its reconstruction is
    ``b_dec = 0``, so splicing it in zero-ablates the layer, and every feature is dead."""
    sae = SparseAutoencoder(d_in, d_hidden, device=device, seed=seed)
    with torch.no_grad():
        sae.W_enc.zero_()
    return sae
