"""Where a sparse autoencoder's vectors come from: tensors, iterables, a layer's activations
over images (:func:`activation_batches`), and planted data with a known answer
(:func:`planted_features`).

Every source is read through a :class:`VectorStream`, which cuts batches of a fixed size and
remembers its position, so that training can be stopped and resumed exactly (and, under
``torchrun``, deals each process its share).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import NamedTuple

import torch

from ...core.datasets import ImageStream, select_batches
from ...core.device import profile
from ...core.hooks import activations, check_layer_names
from ...core.progress import bar as progress_bar

__all__ = [
    "ActivationBatches",
    "PlantedFeatures",
    "VectorStream",
    "activation_batches",
    "activation_scale",
    "check_vectors",
    "num_batches",
    "planted_features",
]  # fmt: skip


def check_vectors(batch: torch.Tensor, d_in: int | None = None) -> torch.Tensor:
    """``batch`` as a tensor ``(batch, d_in)``; a clear error for anything else (images, a
    wrong size)."""
    if not isinstance(batch, torch.Tensor):
        batch = torch.as_tensor(batch)
    if batch.dim() != 2:
        hint = (" These look like images: stream activation vectors with "
                "activation_batches(model, images, layer).") if batch.dim() == 4 and batch.shape[1] == 3 else ""  # fmt: skip
        raise ValueError(
            f"expected a batch of activation vectors (batch, d_in), got {tuple(batch.shape)}.{hint}"
        )
    if d_in is not None and batch.shape[1] != d_in:
        raise ValueError(f"the SAE takes vectors of size {d_in}, the data has {batch.shape[1]}")
    return batch


def _is_indexable(source) -> bool:
    return (
        hasattr(source, "__len__") and hasattr(source, "__getitem__") and not isinstance(source, (str, bytes))
    )


def _iter_from(source, start: int) -> Iterator:
    """Iterate ``source`` from its ``start``-th item, pass after pass (epochs) while it can.

    Skips without reading where it can: ``source.iter_from(start)`` if it has one (such as
    :class:`ActivationBatches`), indexing for sequences; otherwise reads and drops ``start``
    items. A one-shot iterator (a generator) ends when it is exhausted.
    """
    if _is_indexable(source):
        n = len(source)
        for i in itertools.count(start) if n else ():
            yield source[i % n]
        return
    first = hasattr(source, "iter_from")
    passes = source.iter_from(start) if first else _skip(source, start)
    while True:
        produced = False
        for item in passes:
            produced = True
            yield item
        if not produced or iter(source) is source:
            return
        passes = iter(source)


def _skip(source, start: int) -> Iterator:
    """``source`` from its ``start``-th item, counting through repeated passes of a re-iterable
    source (one that gives a fresh iterator each time), then the rest of that pass."""
    while True:
        count = 0
        for item in source:
            if count >= start:
                yield item
            count += 1
        if count == 0 or count > start or iter(source) is source:
            return
        start -= count


class _RankItems:
    """Items ``rank, rank + world, rank + 2 world, ...`` of an iterable ``source``: one rank's
    share of the data under ``torchrun``. ``iter_from(j)`` starts at this rank's ``j``-th item
    (skipping without reading where ``source`` can: ``iter_from`` or indexing)."""

    def __init__(self, source, rank: int, world: int) -> None:
        self.source, self.rank, self.world = source, rank, world

    def __iter__(self) -> Iterator:
        return self.iter_from(0)

    def _local_len(self) -> int | None:
        try:
            total = num_batches(self.source)
        except TypeError:  # an ActivationBatches over images without a length
            return None
        return None if total is None else max(0, -(-(total - self.rank) // self.world))

    def iter_from(self, start: int) -> Iterator:
        local = self._local_len()
        if local:  # a count across passes, as ActivationBatches.iter_from takes it
            start %= local
        first = start * self.world + self.rank
        if _is_indexable(self.source):
            yield from (self.source[i] for i in range(first, len(self.source), self.world))
            return
        if isinstance(self.source, ActivationBatches):  # the model runs on this rank's batches only
            yield from self.source.iter_from(first, self.world)
            return
        if hasattr(self.source, "iter_from"):
            items, offset = self.source.iter_from(first), 0
        else:
            items, offset = iter(self.source), first
        for i, item in enumerate(items):
            if i >= offset and (i - offset) % self.world == 0:
                yield item


class VectorStream:
    """Batches of exactly ``batch_size`` vectors (or the source's own batches when it is None)
    from ``source``, remembering a position that :meth:`seek` can return to.

    A tensor ``(N, d_in)`` source is shuffled anew each epoch by a generator seeded with
    ``(seed, epoch)``; its position is the number of vectors handed out. An iterable source's
    position is ``(items read, vectors used from the last one)``.
    """

    def __init__(self, source, batch_size: int | None, seed: int, d_in: int, rank: int = 0, world: int = 1) -> None:
        if isinstance(source, torch.utils.data.TensorDataset):
            source = source.tensors[0]
        self.d_in, self.seed = d_in, seed
        self.is_tensor = isinstance(source, torch.Tensor)
        self.rank, self.world = rank, world
        self.batch_size = batch_size if batch_size is not None else (1024 if self.is_tensor else None)
        self.global_rows = 0  # tensor source: rows of the last whole (all ranks') batch
        if self.is_tensor:
            self.source = check_vectors(source, d_in)
        elif world > 1:
            # Each rank reads every world-th item and cuts batches of its share of the size.
            self.source = _RankItems(source, rank, world)
            if self.batch_size is not None:
                if self.batch_size % world:
                    raise ValueError(f"batch_size {self.batch_size} is not divisible by the {world} processes")
                self.batch_size //= world
        else:
            self.source = source
        self.samples = 0  # tensor source: vectors handed out
        self.items, self.offset = 0, 0  # iterable source: items read, rows used of the current one
        self._iterator: Iterator | None = None
        self._current: torch.Tensor | None = None
        self._perm: tuple[int, torch.Tensor] | None = None

    # position ----------------------------------------------------------------------------
    def state(self) -> dict[str, int]:
        if self.is_tensor:
            return {"kind": "tensor", "samples": self.samples}
        # ``items`` counts items fully or partly read; a partly used one is read again on seek.
        partial = self._current is not None and self.offset < len(self._current)
        return {
            "kind": "iterable",
            "items": self.items - int(partial),
            "offset": self.offset if partial else 0,
        }

    def seek(self, state: dict[str, int]) -> None:
        if state["kind"] != ("tensor" if self.is_tensor else "iterable"):
            raise ValueError(f"the checkpoint's data position is for a {state['kind']} source, not this one")
        if self.is_tensor:
            self.samples = int(state["samples"])
            return
        self.items, self.offset = int(state["items"]), int(state["offset"])
        self._iterator = _iter_from(self.source, self.items)
        self._current = None
        if self.offset:
            self._current = self._read()
            if self._current is None:
                raise ValueError("the data ended before the checkpoint's position")

    # reading -----------------------------------------------------------------------------
    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(len(self.source), generator=gen))
        return self._perm[1]

    def _read(self) -> torch.Tensor | None:
        if self._iterator is None:
            self._iterator = _iter_from(self.source, self.items)
        try:
            item = next(self._iterator)
        except StopIteration:
            return None
        self.items += 1
        return check_vectors(item, self.d_in)

    def next(self) -> torch.Tensor | None:
        """The next batch ``(B, d_in)``, or None when the data has run out."""
        if self.is_tensor:
            n, parts, need = len(self.source), [], self.batch_size
            while need:
                epoch, i = divmod(self.samples, n)
                take = min(need, n - i)
                parts.append(self._permutation(epoch)[i : i + take])
                self.samples += take
                need -= take
            rows = torch.cat(parts)
            self.global_rows = len(rows)
            # Several processes: the same global batch as one process, each rank its strided share.
            return self.source[rows[self.rank :: self.world] if self.world > 1 else rows]
        if self.batch_size is None:
            self._current, self.offset = self._read(), 0
            if self._current is not None:
                self.offset = len(self._current)
            return self._current
        parts, need = [], self.batch_size
        while need:
            if self._current is None or self.offset >= len(self._current):
                self._current, self.offset = self._read(), 0
                if self._current is None:
                    return torch.cat(parts) if parts else None
            take = min(need, len(self._current) - self.offset)
            parts.append(self._current[self.offset : self.offset + take])
            self.offset += take
            need -= take
        return parts[0] if len(parts) == 1 else torch.cat([p.to(parts[0].device) for p in parts])



# -- activations from InceptionV1 ----------------------------------------------------------
def _to_vectors(acts: torch.Tensor, positions: str) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N*H*W, C)`` ("all") or ``(N, C)`` ("centre"); ``(N, C)`` as is."""
    if acts.dim() == 2:
        return acts
    if positions == "all":
        return acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1])
    if positions in ("centre", "center"):
        return acts[:, :, acts.shape[2] // 2, acts.shape[3] // 2]
    raise ValueError(f"positions must be 'all' or 'centre', got {positions!r}")


class ActivationBatches:
    """Activation vectors of one layer, one batch per batch of images; see :func:`activation_batches`.

    Iterable (again and again if its image source is); ``iter_from(k)`` starts at the ``k``-th
    image batch without running the model on the ones before (used to resume training).
    """

    def __init__(self, model, image_batches, layer: str, positions: str = "all", batch_size: int | None = None,
                 shuffle: bool = True, scale: float = 1.0, progress: bool = False, seed: int = 0) -> None:  # fmt: skip
        check_layer_names(model, [layer])
        if positions not in ("all", "centre", "center"):
            raise ValueError(f"positions must be 'all' or 'centre', got {positions!r}")
        if isinstance(image_batches, torch.Tensor):
            if image_batches.dim() != 4 or image_batches.shape[1] != 3:
                raise ValueError(f"expected images (N, 3, H, W) in [0, 1], got {tuple(image_batches.shape)}")
            if batch_size is None:
                batch_size = profile(device=model.device).batch_size
            image_batches = image_batches.split(batch_size)
        self.model, self.source, self.layer, self.positions = model, image_batches, layer, positions
        self.shuffle, self.scale, self.progress, self.seed = shuffle, float(scale), progress, seed

    def __len__(self) -> int:
        n = num_batches(self.source)
        if n is None:
            raise TypeError("the image source has no length")
        return n

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.iter_from(0)

    def vectors(self, images: torch.Tensor, index: int = 0) -> torch.Tensor:
        """The vectors for one image batch ``(N, 3, H, W)`` (or a stream's ``(images, indices,
        labels)``): ``(M, C)`` on the model's device."""
        if isinstance(images, (tuple, list)):  # circuitscope.core.datasets streams: (images, indices, labels)
            images = images[0]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected an image batch (N, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        with torch.no_grad():
            acts = activations(self.model, images.float(), [self.layer])[self.layer]
        vecs = _to_vectors(acts, self.positions)
        if self.shuffle:  # the same order for the same batch, however iteration started
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
            vecs = vecs[torch.randperm(len(vecs), generator=gen).to(vecs.device)]
        return vecs / self.scale if self.scale != 1.0 else vecs

    def iter_from(self, start: int, step: int = 1) -> Iterator[torch.Tensor]:
        """One pass over the image batches from the ``start``-th (taken modulo the number of
        batches, so a count across passes works), without running the model on earlier ones.
        ``step > 1``: only every ``step``-th batch from there (one rank's share); a folder or
        tensor stream then reads only those images."""
        total = num_batches(self.source)
        if total:
            start %= total
        bar = progress_bar(total=total, initial=start, desc=f"activations {self.layer}",
                           progress=self.progress, unit="batch")  # fmt: skip
        try:
            if _is_indexable(self.source):
                source = ((i, self.source[i]) for i in range(start, len(self.source), step))
            elif isinstance(self.source, ImageStream):
                source = select_batches(self.source, start, step)
            else:
                source = ((i, x) for i, x in enumerate(_skip(self.source, start), start) if (i - start) % step == 0)
            for index, images in source:
                yield self.vectors(images, index)
                bar.update(step)
        finally:
            bar.close()


def num_batches(source) -> int | None:
    """Batches in an image source: ``num_batches()`` for :mod:`circuitscope.core.datasets` streams
    (whose ``len`` counts images), else ``len``; None when unknown."""
    if hasattr(source, "num_batches"):
        return int(source.num_batches())
    return len(source) if hasattr(source, "__len__") else None


def activation_batches(
    model,
    image_batches,
    layer: str,
    positions: str = "all",
    batch_size: int | None = None,
    shuffle: bool = True,
    scale: float = 1.0,
    progress: bool = False,
    seed: int = 0,
) -> ActivationBatches:
    """Stream activation vectors of ``layer`` (any name in ``model.layer_names``) over images.

    Args:
        image_batches: any iterable of ``(N, 3, H, W)`` float images in [0, 1] (a list, a
            DataLoader) or of ``(images, ...)`` tuples (a :mod:`circuitscope.core.datasets` stream
            such as ``ImageFolderStream``), or one tensor ``(N, 3, H, W)``, cut into batches of
            ``batch_size`` (default: the profile's).
        positions: ``"all"``: every spatial position is a vector, ``(N*H'*W', C)`` per batch;
            ``"centre"``: only the centre position, ``(N, C)``. Layers without positions
            (the logits) give ``(N, C)``.
        shuffle: shuffle the vectors within each batch (seeded by ``seed`` and the batch's
            index, so the order is the same on every pass), so that a step's vectors do not all
            come from one image when :func:`train_sae` cuts batches smaller.
        scale: every vector is divided by it (see :func:`activation_scale`).
        progress: a tqdm bar over the image batches.

    Each batch is computed when it is asked for, on the model's device, without gradients and
    only as far into the network as ``layer``, so memory stays constant however many images.
    """
    return ActivationBatches(
        model, image_batches, layer, positions, batch_size, shuffle, scale, progress, seed
    )


def activation_scale(vectors: torch.Tensor) -> float:
    """The mean L2 norm of ``vectors: (M, d)``; dividing by it gives vectors of mean norm 1."""
    return float(vectors.float().norm(dim=-1).mean().clamp_min(1e-12))



# -- planted ground truth ------------------------------------------------------------------
class PlantedFeatures(NamedTuple):
    """Synthetic data with known sparse features (:func:`planted_features`).

    Attributes:
        data: ``(n_samples, d)`` vectors ``x = D c + noise``.
        dictionary: ``D: (d, n_features)`` the planted unit-norm feature directions.
        codes: ``c: (n_samples, n_features)`` non-negative, sparse coefficients.
    """

    data: torch.Tensor
    dictionary: torch.Tensor
    codes: torch.Tensor


def planted_features(
    n_samples: int = 20_000,
    d: int = 32,
    n_features: int = 64,
    p_active: float = 0.04,
    noise: float = 0.01,
    seed: int = 0,
) -> PlantedFeatures:
    """Vectors made of a few of ``n_features`` known directions in ``d`` dimensions, more
    directions than dimensions: superposition with a known answer.

    Each feature is active with probability ``p_active`` (so about ``p_active * n_features``
    per vector) with a magnitude uniform in [0, 1]; Gaussian noise of standard deviation
    ``noise`` is added to every coordinate. The directions are random unit vectors. A sparse
    autoencoder should find them: see :func:`mean_max_cosine_similarity`. (This is the test of
    Sharkey, Braun and Millidge's "Taking features out of superposition with sparse
    autoencoders", 2022, that "Towards Monosemanticity" builds on.)
    """
    gen = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(d, n_features, generator=gen)
    dictionary /= dictionary.norm(dim=0, keepdim=True)
    active = torch.rand(n_samples, n_features, generator=gen) < p_active
    codes = torch.rand(n_samples, n_features, generator=gen) * active
    data = codes @ dictionary.T + noise * torch.randn(n_samples, d, generator=gen)
    return PlantedFeatures(data, dictionary, codes)
