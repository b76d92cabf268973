"""Looking at what a sparse autoencoder learned: how often its features fire, their
directions, the images that excite them (through :class:`SAEFeatureModel`, a named model whose
channels are the features), how well a dictionary matches a planted one, and the chapter's
figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from ...core.hooks import activations, check_layer_names
from ...core.models.named import NamedModel
from ...core.provenance import weights_state
from ...core.receptive_field import receptive_field
from ..dataset_examples import top_examples as dataset_top_examples
from .data import check_vectors
from .model import SparseAutoencoder

__all__ = [
    "SAEFeatureModel",
    "dead_features",
    "feature_direction",
    "feature_frequencies",
    "mean_max_cosine_similarity",
    "top_examples",
]  # fmt: skip


def _vector_batches(batches, batch_size: int = 4096) -> Iterable[torch.Tensor]:
    if isinstance(batches, torch.utils.data.TensorDataset):
        batches = batches.tensors[0]
    if isinstance(batches, torch.Tensor):
        return check_vectors(batches).split(batch_size)
    return batches


@torch.no_grad()
def feature_frequencies(sae: SparseAutoencoder, batches, max_batches: int | None = None) -> torch.Tensor:
    """How often each feature fires (``f > 0``): ``(d_hidden,)`` fractions in [0, 1].

    ``batches``: a tensor ``(N, d_in)`` or an iterable of ``(B, d_in)`` (at most
    ``max_batches`` of them are read).
    """
    counts = torch.zeros(sae.d_hidden, device=sae.device)
    total = 0
    for i, x in enumerate(_vector_batches(batches)):
        if max_batches is not None and i >= max_batches:
            break
        x = check_vectors(x, sae.d_in).to(sae.device).float()
        counts += (sae.encode(x) > 0).sum(0)
        total += len(x)
    if total == 0:
        raise ValueError("no data: feature frequencies need at least one vector")
    return (counts / total).cpu()


def dead_features(sae: SparseAutoencoder, batches, max_batches: int | None = None) -> torch.Tensor:
    """Features that never fire on ``batches``: a ``(d_hidden,)`` bool mask (``.sum()`` counts
    them). Dead features waste dictionary size; the article resampled them during training."""
    return feature_frequencies(sae, batches, max_batches) == 0


def feature_direction(sae: SparseAutoencoder, feature: int) -> torch.Tensor:
    """Feature ``feature``'s dictionary vector, column ``W_dec[:, feature]``: ``(d_in,)`` unit
    norm, detached. It is a direction in the layer's activation space, to render with the
    ``direction(layer, vector)`` objective of :mod:`circuitscope.methods.optvis.objectives`."""
    if not 0 <= feature < sae.d_hidden:
        raise IndexError(f"feature {feature} out of range: the SAE has {sae.d_hidden} features")
    return sae.W_dec[:, feature].detach().clone()


class SAEFeatureModel(NamedModel):
    """InceptionV1 up to ``layer`` followed by an SAE's encoder, as a model whose one named
    layer, ``f"{layer}_sae"``, has the SAE's features as channels.

    It plugs SAE features into tools made for channels, such as the chapter 4 dataset
    examples with their activation cache, patches and plots::

        features = SAEFeatureModel(sae, model, "mixed4a")
        top = cs.top_examples(features, "my_photos", "mixed4a_sae:12", k=9)
        cs.plotting.top_examples_figure(top)

    A :class:`~circuitscope.core.models.named.NamedModel`: ``named_forward(images)`` yields
    ``(f"{layer}_sae", (N, d_hidden, H', W'))`` (``(N, d_hidden)`` for a layer without
    positions), the layer's activations divided by ``sae.input_scale`` and encoded; receptive
    fields are the layer's.
    """

    def __init__(self, sae: SparseAutoencoder, model, layer: str) -> None:
        check_layer_names(model, [layer])
        name = f"{layer}_sae"
        super().__init__(layer_names=[name], layer_channels={name: sae.d_hidden})
        self.sae, self.model, self.layer, self.name = sae, model, layer, name
        self.weights_state = weights_state(model)  # features of the model's weights: the same state
        self.is_synthetic = self.weights_state in ("synthetic", "planted")
        self.weights_source = f"{getattr(model, 'weights_source', 'unknown')} + SAE on {layer}"

    @property
    def device(self) -> torch.device:
        return self.model.device

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """SAE features at every position: ``(N, d_hidden, H', W')`` (or ``(N, d_hidden)``)."""
        acts = activations(self.model, images, [self.layer])[self.layer] / self.sae.input_scale
        acts = acts.to(self.sae.device)
        if acts.dim() == 2:
            return self.sae.encode(acts)
        return self.sae.encode(acts.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def named_forward(self, images: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        yield self.emit(self.name, self.feature_maps(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.run_to(images, [self.name])[self.name]

    def receptive_field(self, layer: str, input_size: int):
        """The receptive field of the underlying layer (an SAE works position by position)."""
        return receptive_field(self.layer, input_size)


def top_examples(
    sae: SparseAutoencoder,
    model,
    images,
    layer: str,
    feature: int | list[int],
    k: int = 8,
    batch_size: int | None = None,
    **kwargs,
):
    """The ``k`` images of ``images`` (a tensor ``(N, 3, H, W)`` in [0, 1] or a folder) where
    SAE ``feature`` is largest, with receptive-field patches: chapter 4's dataset examples
    (:func:`circuitscope.methods.dataset_examples.top_examples`) run on :class:`SAEFeatureModel`.

    Returns its :class:`~circuitscope.methods.dataset_examples.TopExamples` (``indices``, ``scores``,
    ``positions``, ``patches()``, ``plot()``); ``kwargs`` go to it (``cache``, ``progress``...).
    ``feature`` a list: a list of results, from one pass over the images.
    """
    many = isinstance(feature, list)
    for f in feature if many else [feature]:
        if not 0 <= f < sae.d_hidden:
            raise IndexError(f"feature {f} out of range: the SAE has {sae.d_hidden} features")
    kwargs.setdefault("cache", False)
    kwargs.setdefault("progress", False)
    features = SAEFeatureModel(sae, model, layer)
    units = [(features.name, f) for f in feature] if many else (features.name, feature)
    return dataset_top_examples(features, images, units, k=k, batch_size=batch_size, **kwargs)


def mean_max_cosine_similarity(learned: torch.Tensor, planted: torch.Tensor) -> float:
    """For each planted direction (a column of ``planted: (d, n)``), the largest cosine
    similarity with any learned one (columns of ``learned: (d, m)``, e.g. ``sae.W_dec``),
    averaged over the planted directions: 1 when every planted feature was found."""
    return float(feature_cosines(learned, planted).max(dim=1).values.mean())


def feature_cosines(learned: torch.Tensor, planted: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``(n, m)`` between the columns of ``planted: (d, n)`` and of
    ``learned: (d, m)``, on the CPU."""
    a = learned.detach().float().cpu()
    b = planted.detach().float().cpu()
    a = a / a.norm(dim=0, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return b.T @ a


