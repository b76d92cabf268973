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
from ..optvis import render
from ..optvis.objectives import direction
from .data import check_vectors
from .model import SparseAutoencoder

__all__ = [
    "SAEFeatureModel",
    "dead_features",
    "feature_direction",
    "feature_frequencies",
    "mean_max_cosine_similarity",
    "plot_dictionary_match",
    "plot_sae_features",
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
        cs.top_examples(features, "my_photos", "mixed4a_sae:12", k=9).plot()

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
    return float(_cosines(learned, planted).max(dim=1).values.mean())


def _cosines(learned: torch.Tensor, planted: torch.Tensor) -> torch.Tensor:
    """Cosine similarities ``(n, m)`` between the columns of ``planted: (d, n)`` and of
    ``learned: (d, m)``, on the CPU."""
    a = learned.detach().float().cpu()
    b = planted.detach().float().cpu()
    a = a / a.norm(dim=0, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return b.T @ a



# -- figures for the chapter ------------------------------------------------------------------
def plot_sae_features(model, sae: SparseAutoencoder, layer: str, features, images: torch.Tensor,
                      renders: torch.Tensor | None = None, k: int = 4, size: int | None = None,
                      steps: int | None = None, seed: int = 0, progress: bool = False):  # fmt: skip
    """One row per SAE feature: its feature visualization, then its top ``k`` dataset examples.

    The visualization maximises ``direction(layer, W_dec[:, feature])`` with
    :func:`circuitscope.methods.optvis.render` (unless ``renders: (len(features), 3, H, W)`` are given);
    the examples are the receptive-field patches of ``images: (N, 3, H, W)`` in [0, 1] where
    the feature is largest (:func:`top_examples`, one pass over the images for all features).
    As in "Feature Visualization"'s figures that pair optimisation with dataset examples.
    Stamped with the model's weights. Returns the Figure.
    """
    from ...figures.plotting import image_grid  # the figures layer (and matplotlib) only when drawing

    features = [int(f) for f in features]
    if renders is None:
        objectives = [direction(layer, feature_direction(sae, f)) for f in features]
        renders = render(model, objectives, size=size, steps=steps, seed=seed, progress=progress)
    tops = top_examples(sae, model, images, layer, features, k=k)
    cells, titles = [], []
    for row, (picture, top) in enumerate(zip(renders, tops)):
        patches = list(top.patches()) if len(top) else []
        blanks = [torch.ones_like(picture)] * (k - len(patches))  # fewer images than k: white cells
        cells += [picture, *patches, *blanks]
        titles += ["direction\nvisualization" if row == 0 else ""]
        titles += [f"{score:.2g}" for score in top.scores.tolist()] + [""] * len(blanks)
    return image_grid(cells, titles, model=model, columns=k + 1, row_labels=[f"feature {f}" for f in features],
                      title=f"SAE features of {layer}: visualization and top dataset patches (score)")  # fmt: skip


def plot_dictionary_match(learned: torch.Tensor, planted: torch.Tensor, title: str | None = None):
    """How well a learned dictionary matches a planted one, as the cosine similarities between
    every planted direction (rows) and its best-matching learned directions (columns).

    ``learned: (d, m)`` (e.g. ``sae.W_dec``) and ``planted: (d, n)``, one direction per column.
    Columns are ordered so that planted direction ``i``'s best match sits at column ``i``
    (the remaining learned directions follow, by how well they match anything): a recovered
    dictionary shows a bright diagonal. The mean of that diagonal is
    :func:`mean_max_cosine_similarity`. Draws no model output, so it carries no weights
    caption. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    cos = _cosines(learned, planted)  # (n, m)
    best = cos.argmax(dim=1).tolist()
    order = list(dict.fromkeys(best))
    rest = [j for j in cos.max(dim=0).values.argsort(descending=True).tolist() if j not in order]
    order += rest
    fig, ax = plt.subplots(figsize=(min(9.0, 2 + 0.09 * len(order)), 2 + 0.09 * cos.shape[0]))
    im = ax.imshow(cos[:, order].numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto",
                   interpolation="nearest")  # fmt: skip
    ax.set_xlabel("learned directions (best matches first)")
    ax.set_ylabel("planted directions")
    score = float(cos.max(dim=1).values.mean())  # mean_max_cosine_similarity
    ax.set_title(title or f"cosine similarity; mean max = {score:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    plt.close(fig)
    return fig
