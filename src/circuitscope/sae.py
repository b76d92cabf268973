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

Shapes: activation vectors ``x: (batch, d_in)``; features ``f: (batch, d_hidden)``;
``W_enc: (d_hidden, d_in)``, ``W_dec: (d_in, d_hidden)``.
"""

from __future__ import annotations

import inspect
import itertools
import os
import random
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from . import distributed
from .device import get_device, one_cpu_thread
from .progress import bar as progress_bar
from .provenance import weights_state

__all__ = [
    "ActivationBatches",
    "PlantedFeatures",
    "SAEFeatureModel",
    "SAELoss",
    "SparseAutoencoder",
    "TrainingHistory",
    "activation_batches",
    "activation_scale",
    "dead_features",
    "feature_direction",
    "feature_frequencies",
    "load_sae",
    "mean_max_cosine_similarity",
    "photo_crops",
    "planted_features",
    "plot_dictionary_match",
    "plot_sae_features",
    "top_examples",
    "train_layer_sae",
    "train_sae",
]  # fmt: skip

CHECKPOINT_FORMAT = "circuitscope.sae/1"


# -- the model -----------------------------------------------------------------------------
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


def _loss_parts(x: torch.Tensor, x_hat: torch.Tensor, f: torch.Tensor, l1_coeff: float) -> SAELoss:
    """:class:`SAELoss` of a batch from its reconstruction ``x_hat`` and features ``f`` (shared by
    :meth:`SparseAutoencoder.loss` and training, where the forward pass may run through DDP)."""
    mse = (x - x_hat).pow(2).sum(-1).mean()
    l1 = f.abs().sum(-1).mean()
    l0 = (f > 0).float().sum(-1).mean().detach()
    return SAELoss(mse + l1_coeff * l1, mse, l1, l0)


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
        """What :func:`load_sae` needs to rebuild this SAE: ``d_in``, ``d_hidden``, ``tied``."""
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
        return _loss_parts(x, x_hat, f, l1_coeff)

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


# -- data: where the vectors come from -----------------------------------------------------
def _check_vectors(batch: torch.Tensor, d_in: int | None = None) -> torch.Tensor:
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
            total = _num_batches(self.source)
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


class _Stream:
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
            self.source = _check_vectors(source, d_in)
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
        return _check_vectors(item, self.d_in)

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


# -- training ------------------------------------------------------------------------------
@dataclass
class TrainingHistory:
    """Losses logged by :func:`train_sae`: each list has one entry per logging interval (the
    mean over the interval), at ``steps``. See :class:`SAELoss` for the terms."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    l1: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return asdict(self)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a crash while saving never leaves a broken checkpoint


def _load(path: str | os.PathLike) -> dict:
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a circuitscope SAE checkpoint")
    return payload


def load_sae(path: str | os.PathLike, device: str | torch.device | None = None) -> SparseAutoencoder:
    """Rebuild the :class:`SparseAutoencoder` saved in a :func:`train_sae` checkpoint."""
    device = get_device(device)
    payload = _load(path)
    sae = SparseAutoencoder(**payload["config"], device=device)
    sae.load_state_dict(payload["sae"])
    return sae


def _small_step(x: torch.Tensor, sae: SparseAutoencoder) -> bool:
    """A CPU step under about 16M multiply-adds (one thread is faster)."""
    return x.device.type == "cpu" and x.numel() * sae.d_hidden <= 2**24


def train_sae(
    sae: SparseAutoencoder,
    batches,
    steps: int,
    lr: float = 1e-3,
    l1_coeff: float = 0.1,
    *,
    batch_size: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    progress: bool = True,
    seed: int = 0,
    log_every: int = 10,
) -> TrainingHistory:
    """Train ``sae`` with Adam for ``steps`` steps in all (counting steps done before a resume).

    Each step: the loss of :meth:`SparseAutoencoder.loss` on one batch, its gradient with the
    part parallel to the dictionary vectors removed, an Adam step, then the dictionary
    renormalised to unit-norm columns ("Towards Monosemanticity", appendix on autoencoder
    training). Runs on ``sae.device``; batches are moved there.

    Args:
        batches: the activation vectors, either a tensor ``(N, d_in)`` (or a ``TensorDataset``
            of one), sampled in a fresh seeded shuffle every epoch, or any iterable of
            ``(B, d_in)`` tensors (a list, :func:`activation_batches`, a generator...).
            Re-iterable sources are read again when they run out; a one-shot generator ends
            training early with a warning.
        steps: total number of optimisation steps.
        lr, l1_coeff: Adam's learning rate and the weight of the L1 penalty. ``l1_coeff``
            trades reconstruction for sparsity and depends on the data's scale: for vectors of
            mean norm about 1 (as :func:`train_layer_sae` makes them), 0.03 to 0.3 is a useful
            range; larger gives fewer active features and a worse reconstruction.
        batch_size: vectors per step. A tensor source defaults to 1024; an iterable's batches
            are used as they come when None, else cut and joined to exactly this size.
        checkpoint: a file to save to (every ``checkpoint_every`` steps, at the end, and when
            training stops on an error or Ctrl-C). It holds the SAE, the optimiser, the step,
            the random number generators' states, the data position and the history.
        resume: if ``checkpoint`` exists, continue from it (the data are skipped to where it
            stopped, without recomputing what can be indexed). ``False`` starts afresh and
            overwrites it.
        progress: show a tqdm progress bar with the loss.
        seed: seeds the shuffle of a tensor source.
        log_every: steps per entry of the returned history (plus one for a last, shorter
            interval).

    Returns:
        the :class:`TrainingHistory` (including the steps before a resume).

    Resuming gives the same SAE as one uninterrupted run (bit for bit on a CPU) provided the
    data are the same: the same tensor, or an iterable that yields the same batches in the
    same order each time. Iterables drawing from the global random generators are covered too:
    their states are restored after the data are skipped.

    Under ``torchrun`` (:mod:`circuitscope.distributed` initialised) the SAE is wrapped in
    ``DistributedDataParallel``: gradients are averaged over the ranks before the parallel
    part is removed and the dictionary renormalised, so every rank applies the same update and
    the unit-norm constraint holds on all. A tensor source gives each step the same global
    batch of ``batch_size`` vectors as one process, each rank taking every ``world``-th row
    (so the SAE equals one process's up to floating-point rounding); an iterable is dealt out
    item by item (item ``i`` to rank ``i % world``), each rank cutting batches of
    ``batch_size / world``. Rank 0 writes the checkpoint (with every rank's data position;
    resume with the same number of processes) and shows the bar; the history holds the
    ranks' mean losses. The checkpoint's folder must be shared by all ranks.
    """
    device = sae.device
    world, rank = distributed.world_size(), distributed.rank()
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    stream = _Stream(batches, batch_size, seed, sae.d_in, rank, world)
    history, step, resumed = TrainingHistory(), 0, None
    path = Path(checkpoint) if checkpoint is not None else None
    hyper = {"lr": lr, "l1_coeff": l1_coeff, "batch_size": batch_size, "seed": seed}

    if path is not None and resume and path.exists():
        payload = _load(path)
        if payload["config"] != sae.config():
            raise ValueError(f"checkpoint {path} holds an SAE {payload['config']}, not {sae.config()}")
        changed = {k: (payload["hyper"].get(k), v) for k, v in hyper.items() if payload["hyper"].get(k) != v}
        if changed:
            warnings.warn(f"resuming {path} with different settings (was, now): {changed}", stacklevel=2)
        sae.load_state_dict(payload["sae"])
        opt.load_state_dict(payload["optimizer"])
        for group in opt.param_groups:
            group["lr"] = lr
        step = int(payload["step"])
        history = TrainingHistory(**payload["history"])
        ranks = payload.get("data_ranks")
        if world > 1 and not stream.is_tensor and (ranks is None or len(ranks) != world):
            raise ValueError(f"checkpoint {path} was written by {len(ranks or [0])} process(es), not {world}: "
                             "resume it with as many")  # fmt: skip
        stream.seek(ranks[rank] if world > 1 and not stream.is_tensor else payload["data"])
        _set_rng_state(payload["rng"])  # after skipping: the skip may have drawn numbers
        resumed = payload["running"]

    # Only an iterable's data position differs between ranks; gathering it is a collective.
    gather_positions = world > 1 and not stream.is_tensor

    def save(collective: bool = True) -> None:
        if path is None or (gather_positions and not collective):
            return  # an error on one rank: the others cannot join a gather
        together = collective and world > 1
        ranks = distributed.all_gather_object(position) if gather_positions else None
        # The running sums of the logging interval, as the ranks' mean (what log() reports).
        running = distributed.all_reduce(sums.clone(), "mean") if together else sums
        if rank == 0:
            _save(path, {
                "format": CHECKPOINT_FORMAT, "config": sae.config(), "hyper": hyper, "step": step,
                "sae": sae.state_dict(), "optimizer": opt.state_dict(), "rng": _rng_state(),
                "data": position, "data_ranks": ranks, "history": history.as_dict(),
                "running": {"sums": running.cpu(), "count": count},
            })  # fmt: skip
        if together:
            distributed.barrier()  # nobody reads or rewrites the file before it is complete

    def log() -> list[float]:
        mean = (distributed.all_reduce(sums.clone(), "mean") / count).tolist()
        history.steps.append(step)
        for name, value in zip(("loss", "mse", "l1", "l0"), mean):
            getattr(history, name).append(value)
        return mean

    position = stream.state()  # where the data stand after the last completed step
    if step == 0:
        sae.normalize_decoder_()  # not on a resume: renormalising again could change the last bits
    sums, count = torch.zeros(4, device=device), 0
    if resumed is not None:  # finish the logging interval the checkpoint was in
        sums, count = resumed["sums"].to(device), int(resumed["count"])
        if history.steps and history.steps[-1] % log_every:
            for name in ("steps", "loss", "mse", "l1", "l0"):
                getattr(history, name).pop()  # the partial entry logged at the end of the last run
    saved_at, updating = step, False
    forward = sae
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Wrapping broadcasts rank 0's parameters and buffers, so all ranks start alike;
        # input_scale is constant, so buffers need no broadcast at every forward (the argument
        # is named forward_sync_buffers in recent PyTorch, broadcast_buffers before).
        sync = inspect.signature(DistributedDataParallel).parameters
        no_sync = {"forward_sync_buffers" if "forward_sync_buffers" in sync else "broadcast_buffers": False}
        forward = DistributedDataParallel(sae, device_ids=[device.index] if device.type == "cuda" else None,
                                          **no_sync)  # fmt: skip
    bar = progress_bar(total=steps, initial=step, desc="SAE", progress=progress and rank == 0, unit="step")
    try:
        while step < steps:
            with one_cpu_thread(stream.is_tensor):  # a gather; the model (if any) keeps its threads
                x = stream.next()
            if gather_positions:  # every rank stops together when any rank's share runs out
                flag = torch.tensor([0.0 if x is None else 1.0], device=device)
                if float(distributed.all_reduce(flag, "min")) == 0:
                    x = None
            if x is None:
                warnings.warn(f"the data ran out after {step} of {steps} steps", stacklevel=2)
                break
            x = x.to(device, non_blocking=True).float()
            with one_cpu_thread(_small_step(x, sae)):
                parts = _loss_parts(x, *forward(x), l1_coeff)
                opt.zero_grad(set_to_none=True)
                total = parts.total
                if world > 1 and stream.is_tensor:
                    # DDP averages the ranks' gradients; weighting each rank's mean by its share
                    # of the global batch makes that the gradient of the global batch's mean.
                    total = total * (len(x) * world / stream.global_rows)
                total.backward()
                sae.remove_parallel_gradient_()
                updating = True  # an interruption from here to the end leaves half-updated weights
                opt.step()
                sae.normalize_decoder_()
                updating = False
            sums += torch.stack([p.detach() for p in parts])
            count += 1
            step += 1
            position = stream.state()
            if step % log_every == 0:
                mean = log()
                sums.zero_()
                count = 0
                bar.set_postfix(loss=f"{mean[0]:.4g}", mse=f"{mean[1]:.4g}", l0=f"{mean[3]:.1f}")
            bar.update(1)
            if checkpoint_every and step % checkpoint_every == 0:
                save()
                saved_at = step
    except BaseException:
        if step != saved_at and not updating:
            save(collective=False)  # the state between steps is consistent: keep the work done
        raise
    finally:
        bar.close()
    if count:
        log()  # a last, partial interval; its sums stay in the checkpoint for a resume to finish
    if step != saved_at or (path is not None and not path.exists()):
        save()
    return history


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
        from .hooks import check_layer_names

        check_layer_names(model, [layer])
        if positions not in ("all", "centre", "center"):
            raise ValueError(f"positions must be 'all' or 'centre', got {positions!r}")
        if isinstance(image_batches, torch.Tensor):
            if image_batches.dim() != 4 or image_batches.shape[1] != 3:
                raise ValueError(f"expected images (N, 3, H, W) in [0, 1], got {tuple(image_batches.shape)}")
            if batch_size is None:
                from .device import profile

                batch_size = profile(device=model.device).batch_size
            image_batches = image_batches.split(batch_size)
        self.model, self.source, self.layer, self.positions = model, image_batches, layer, positions
        self.shuffle, self.scale, self.progress, self.seed = shuffle, float(scale), progress, seed

    def __len__(self) -> int:
        n = _num_batches(self.source)
        if n is None:
            raise TypeError("the image source has no length")
        return n

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.iter_from(0)

    def vectors(self, images: torch.Tensor, index: int = 0) -> torch.Tensor:
        """The vectors for one image batch ``(N, 3, H, W)`` (or a stream's ``(images, indices,
        labels)``): ``(M, C)`` on the model's device."""
        from .hooks import activations

        if isinstance(images, (tuple, list)):  # circuitscope.datasets streams: (images, indices, labels)
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
        from .datasets import ImageStream

        total = _num_batches(self.source)
        if total:
            start %= total
        bar = progress_bar(total=total, initial=start, desc=f"activations {self.layer}",
                           progress=self.progress, unit="batch")  # fmt: skip
        try:
            if _is_indexable(self.source):
                source = ((i, self.source[i]) for i in range(start, len(self.source), step))
            elif isinstance(self.source, ImageStream):
                from .dataset_examples import select_batches

                source = select_batches(self.source, start, step)
            else:
                source = ((i, x) for i, x in enumerate(_skip(self.source, start), start) if (i - start) % step == 0)
            for index, images in source:
                yield self.vectors(images, index)
                bar.update(step)
        finally:
            bar.close()


def _num_batches(source) -> int | None:
    """Batches in an image source: ``num_batches()`` for :mod:`circuitscope.datasets` streams
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
            DataLoader) or of ``(images, ...)`` tuples (a :mod:`circuitscope.datasets` stream
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


def train_layer_sae(
    model,
    image_batches,
    layer: str,
    expansion: int = 4,
    d_hidden: int | None = None,
    steps: int = 1000,
    lr: float = 1e-3,
    l1_coeff: float = 0.1,
    batch_size: int | None = 1024,
    positions: str = "all",
    tied: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    progress: bool = True,
    seed: int = 0,
    log_every: int = 10,
) -> tuple[SparseAutoencoder, TrainingHistory]:
    """Train an SAE on ``layer``'s activations over ``image_batches``; returns ``(sae, history)``.

    ``d_hidden`` defaults to ``expansion`` times the layer's channels. The vectors are divided
    by their mean norm on the first image batch (stored as ``sae.input_scale``, and read back
    from the checkpoint on a resume), so ``l1_coeff`` means the same at every layer. ``b_dec``
    starts at the mean of that batch's scaled vectors. The SAE lives on the model's device.
    Other arguments as in :func:`activation_batches` and :func:`train_sae`.
    """
    d_in = model.layer_channels[layer] if layer in getattr(model, "layer_channels", {}) else None
    stream = activation_batches(model, image_batches, layer, positions, shuffle=True, seed=seed)
    first = None
    if d_in is None:
        first = next(iter(stream))
        d_in = first.shape[1]
    sae = SparseAutoencoder(d_in, d_hidden or expansion * d_in, tied=tied, device=model.device, seed=seed)
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.exists():
        sae.input_scale.copy_(_load(path)["sae"]["input_scale"])
    else:
        first = next(iter(stream)) if first is None else first
        sae.input_scale.fill_(activation_scale(first))
        sae.init_decoder_bias_(first / sae.input_scale)
    stream.scale = float(sae.input_scale)
    history = train_sae(sae, stream, steps, lr, l1_coeff, batch_size=batch_size, checkpoint=checkpoint,
                        checkpoint_every=checkpoint_every, resume=resume, progress=progress, seed=seed,
                        log_every=log_every)  # fmt: skip
    return sae, history


# -- looking at the features ---------------------------------------------------------------
def _vector_batches(batches, batch_size: int = 4096) -> Iterable[torch.Tensor]:
    if isinstance(batches, torch.utils.data.TensorDataset):
        batches = batches.tensors[0]
    if isinstance(batches, torch.Tensor):
        return _check_vectors(batches).split(batch_size)
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
        x = _check_vectors(x, sae.d_in).to(sae.device).float()
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
    ``direction(layer, vector)`` objective of :mod:`circuitscope.optvis.objectives`."""
    if not 0 <= feature < sae.d_hidden:
        raise IndexError(f"feature {feature} out of range: the SAE has {sae.d_hidden} features")
    return sae.W_dec[:, feature].detach().clone()


class SAEFeatureModel(nn.Module):
    """InceptionV1 up to ``layer`` followed by an SAE's encoder, as a model whose one named
    layer, ``f"{layer}_sae"``, has the SAE's features as channels.

    It plugs SAE features into tools made for channels, such as the chapter 4 dataset
    examples with their activation cache, patches and plots::

        features = SAEFeatureModel(sae, model, "mixed4a")
        cs.top_examples(features, "my_photos", "mixed4a_sae:12", k=9).plot()

    ``named_forward(images)`` yields ``(f"{layer}_sae", (N, d_hidden, H', W'))`` (``(N,
    d_hidden)`` for a layer without positions), the layer's activations divided by
    ``sae.input_scale`` and encoded; receptive fields are the layer's.
    """

    def __init__(self, sae: SparseAutoencoder, model, layer: str) -> None:
        from .hooks import check_layer_names

        super().__init__()
        check_layer_names(model, [layer])
        self.sae, self.model, self.layer = sae, model, layer
        self.name = f"{layer}_sae"
        self.layer_names = [self.name]
        self.layer_channels = {self.name: sae.d_hidden}
        self.weights_state = weights_state(model)  # features of the model's weights: the same state
        self.is_synthetic = self.weights_state in ("synthetic", "planted")
        self.weights_source = f"{getattr(model, 'weights_source', 'unknown')} + SAE on {layer}"

    @property
    def device(self) -> torch.device:
        return self.model.device

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """SAE features at every position: ``(N, d_hidden, H', W')`` (or ``(N, d_hidden)``)."""
        from .hooks import activations

        acts = activations(self.model, images, [self.layer])[self.layer] / self.sae.input_scale
        acts = acts.to(self.sae.device)
        if acts.dim() == 2:
            return self.sae.encode(acts)
        return self.sae.encode(acts.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def named_forward(self, images: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        yield self.name, self.feature_maps(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(images)

    def receptive_field(self, layer: str, input_size: int):
        from .receptive_field import receptive_field

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
    (:func:`circuitscope.dataset_examples.top_examples`) run on :class:`SAEFeatureModel`.

    Returns its :class:`~circuitscope.dataset_examples.TopExamples` (``indices``, ``scores``,
    ``positions``, ``patches()``, ``plot()``); ``kwargs`` go to it (``cache``, ``progress``...).
    ``feature`` a list: a list of results, from one pass over the images.
    """
    from .dataset_examples import top_examples as dataset_top_examples

    many = isinstance(feature, list)
    for f in feature if many else [feature]:
        if not 0 <= f < sae.d_hidden:
            raise IndexError(f"feature {f} out of range: the SAE has {sae.d_hidden} features")
    kwargs.setdefault("cache", False)
    kwargs.setdefault("progress", False)
    features = SAEFeatureModel(sae, model, layer)
    units = [(features.name, f) for f in feature] if many else (features.name, feature)
    return dataset_top_examples(features, images, units, k=k, batch_size=batch_size, **kwargs)


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


# -- a small image set and a figure for the chapter -----------------------------------------
def photo_crops(n: int = 32, size: int = 128, seed: int = 0, names: list[str] | None = None) -> torch.Tensor:
    """``n`` seeded random crops of the bundled sample photos: ``(n, 3, size, size)`` in [0, 1].

    Each crop covers 30% to 100% of a photo's shorter side at a random place, half of them
    mirrored, resized to ``size``. A small, offline image set: enough to train a toy SAE and to
    rank its features' examples on a laptop, nowhere near the millions of ImageNet activations
    a real dictionary needs. ``names``: which photos (default all of
    :data:`circuitscope.images.SAMPLE_PHOTOS`).
    """
    from .images import SAMPLE_PHOTOS, sample_image

    photos = [sample_image(name, size=None) for name in (names or list(SAMPLE_PHOTOS))]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[-2:]
        side = int(min(h, w) * (0.3 + 0.7 * float(torch.rand((), generator=gen))))
        top = int(torch.randint(h - side + 1, (), generator=gen))
        left = int(torch.randint(w - side + 1, (), generator=gen))
        crop = photo[:, top : top + side, left : left + side]
        if bool(torch.rand((), generator=gen) < 0.5):
            crop = crop.flip(-1)
        crop = nn.functional.interpolate(crop[None], size=(size, size), mode="bilinear",
                                         antialias=True, align_corners=False)[0]  # fmt: skip
        out.append(crop.clamp(0, 1))
    return torch.stack(out)


def plot_sae_features(model, sae: SparseAutoencoder, layer: str, features, images: torch.Tensor,
                      renders: torch.Tensor | None = None, k: int = 4, size: int | None = None,
                      steps: int | None = None, seed: int = 0, progress: bool = False):  # fmt: skip
    """One row per SAE feature: its feature visualization, then its top ``k`` dataset examples.

    The visualization maximises ``direction(layer, W_dec[:, feature])`` with
    :func:`circuitscope.optvis.render` (unless ``renders: (len(features), 3, H, W)`` are given);
    the examples are the receptive-field patches of ``images: (N, 3, H, W)`` in [0, 1] where
    the feature is largest (:func:`top_examples`, one pass over the images for all features).
    As in "Feature Visualization"'s figures that pair optimisation with dataset examples.
    Stamped with the model's weights. Returns the Figure.
    """
    from .optvis import render
    from .optvis.objectives import direction
    from .plotting import image_grid

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


# -- command line ---------------------------------------------------------------------------
def add_arguments(parser):
    """The arguments of ``circuitscope sae``."""
    parser.add_argument("layer", help="the layer whose activations to learn a dictionary of, e.g. mixed4a")
    parser.add_argument("--images", required=True, help="a folder of images (ImageFolder conventions)")
    parser.add_argument("--checkpoint", required=True, help="the checkpoint file (resumed when it exists)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--expansion", type=int, default=4, help="features per channel")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--l1-coeff", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=1024, help="vectors per step (over all processes)")
    parser.add_argument("--positions", choices=("all", "centre"), default="all")
    parser.add_argument("--image-size", type=int, default=None, help="image size (default 224)")
    parser.add_argument("--image-batch-size", type=int, default=None, help="images per forward pass")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", default="auto", help="auto, lucid, synthetic or a .pth path")
    parser.add_argument("--allow-unverified", action="store_true")
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run(args) -> int:
    """Run ``circuitscope sae``: :func:`train_layer_sae` over a folder of images (under
    ``torchrun``: DistributedDataParallel, image batches dealt out to the ranks)."""
    from .datasets import ImageFolderStream
    from .models import load_inceptionv1

    distributed.init()
    main = distributed.is_main()
    model = load_inceptionv1(args.weights, device=distributed.device(args.device),
                             progress=main and not args.no_progress, allow_unverified=args.allow_unverified)  # fmt: skip
    images = ImageFolderStream(args.images, size=args.image_size, batch_size=args.image_batch_size)
    sae, history = train_layer_sae(model, images, args.layer, expansion=args.expansion, steps=args.steps,
                                   lr=args.lr, l1_coeff=args.l1_coeff, batch_size=args.batch_size,
                                   positions=args.positions, checkpoint=args.checkpoint,
                                   checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                                   seed=args.seed)  # fmt: skip
    if main and history.steps:
        print(f"SAE on {args.layer}: {sae.d_hidden} features; step {history.steps[-1]}: loss "
              f"{history.loss[-1]:.4g}, mse {history.mse[-1]:.4g}, L0 {history.l0[-1]:.1f}; "
              f"checkpoint {args.checkpoint}")  # fmt: skip
    distributed.shutdown()
    return 0
