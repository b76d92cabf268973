"""Training a sparse autoencoder: :func:`train_sae` on any vectors, :func:`train_layer_sae` on a
layer of a model.

The loop is the one "Towards Monosemanticity" describes (appendix on autoencoder training):
for each batch, the loss, its gradient with the part parallel to the dictionary vectors
removed, an Adam step, and the dictionary renormalised to unit-norm columns. Saving and
resuming are :class:`~circuitscope.methods.sae.checkpoint.Checkpoint`'s job; where the vectors come
from, :mod:`circuitscope.methods.sae.data`'s.
"""

from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path

import torch

from ...core import distributed
from ...core.device import one_cpu_thread
from ...core.progress import bar as progress_bar
from .checkpoint import Checkpoint, TrainingHistory, read_checkpoint
from .data import VectorStream, activation_batches, activation_scale
from .model import SparseAutoencoder, TopKSparseAutoencoder

__all__ = ["train_layer_sae", "train_sae"]


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

    Each step: the loss of :meth:`SparseAutoencoder.loss` on one batch (the L1 SAE's, or the
    reconstruction error alone for a :class:`TopKSparseAutoencoder`), its gradient with the
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

    Under ``torchrun`` (:mod:`circuitscope.core.distributed` initialised) the SAE is wrapped in
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
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    stream = VectorStream(batches, batch_size, seed, sae.d_in, distributed.rank(), distributed.world_size())
    run = Checkpoint(checkpoint, sae, opt, stream, {"lr": lr, "l1_coeff": l1_coeff, "batch_size": batch_size,
                                                    "seed": seed})  # fmt: skip
    step, history, log = run.resume(resume, log_every)
    if step == 0:
        sae.normalize_decoder_()  # not on a resume: renormalising again could change the last bits
    forward = _data_parallel(sae)
    bar = progress_bar(total=steps, initial=step, desc="SAE", progress=progress and distributed.is_main(),
                       unit="step")  # fmt: skip
    try:
        while step < steps:
            x = _next_batch(stream, sae.device, run.gather_positions)
            if x is None:
                warnings.warn(f"the data ran out after {step} of {steps} steps", stacklevel=2)
                break
            with one_cpu_thread(_small_step(x, sae)):
                loss = sae.loss_parts(x, *forward(x), l1_coeff)
                opt.zero_grad(set_to_none=True)
                _global_batch_mean(loss.total, x, stream).backward()
                sae.remove_parallel_gradient_()  # keep the update to the dictionary's directions
                run.updating = True  # an interruption from here to the end leaves half-updated weights
                opt.step()
                sae.normalize_decoder_()  # back to unit-norm dictionary vectors
                run.updating = False
            log.add(loss)
            step += 1
            run.position = stream.state()
            if step % log_every == 0:
                bar.set_postfix(**log.write(step))
            bar.update(1)
            if checkpoint_every and step % checkpoint_every == 0:
                run.save(step, history, log)
    except BaseException:
        run.save_after_error(step, history, log)
        raise
    finally:
        bar.close()
    if log.count:
        log.write(step, reset=False)  # a last, partial interval; a resume finishes it from the checkpoint
    run.save_at_end(step, history, log)
    return history


def _next_batch(stream: VectorStream, device: torch.device, together: bool) -> torch.Tensor | None:
    """The next batch on ``device`` as float32, or None when the data have run out (``together``:
    on every rank as soon as any rank's share has)."""
    with one_cpu_thread(stream.is_tensor):  # a gather; the model (if any) keeps its threads
        x = stream.next()
    if together:
        flag = torch.tensor([0.0 if x is None else 1.0], device=device)
        if float(distributed.all_reduce(flag, "min")) == 0:
            x = None
    return None if x is None else x.to(device, non_blocking=True).float()


def _global_batch_mean(total: torch.Tensor, x: torch.Tensor, stream: VectorStream) -> torch.Tensor:
    """``total`` weighted so that DDP's average of the ranks' gradients is the gradient of the
    global batch's mean (a tensor source under ``torchrun``; else ``total`` itself)."""
    world = distributed.world_size()
    if world > 1 and stream.is_tensor:
        return total * (len(x) * world / stream.global_rows)
    return total


def _data_parallel(sae: SparseAutoencoder):
    """``sae`` itself, or under ``torchrun`` wrapped in ``DistributedDataParallel``."""
    if distributed.world_size() == 1:
        return sae
    from torch.nn.parallel import DistributedDataParallel  # only under torchrun

    # Wrapping broadcasts rank 0's parameters and buffers, so all ranks start alike;
    # input_scale is constant, so buffers need no broadcast at every forward (the argument
    # is named forward_sync_buffers in recent PyTorch, broadcast_buffers before).
    sync = inspect.signature(DistributedDataParallel).parameters
    no_sync = {"forward_sync_buffers" if "forward_sync_buffers" in sync else "broadcast_buffers": False}
    device = sae.device
    return DistributedDataParallel(sae, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)


def _small_step(x: torch.Tensor, sae: SparseAutoencoder) -> bool:
    """A CPU step under about 16M multiply-adds (one thread is faster)."""
    return x.device.type == "cpu" and x.numel() * sae.d_hidden <= 2**24


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
    k: int | None = None,
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
    ``k``: train a :class:`TopKSparseAutoencoder` keeping ``k`` features per vector instead of
    the L1 one (``l1_coeff`` is then ignored).
    Other arguments as in :func:`activation_batches` and :func:`train_sae`.
    """
    d_in = model.layer_channels[layer] if layer in getattr(model, "layer_channels", {}) else None
    stream = activation_batches(model, image_batches, layer, positions, shuffle=True, seed=seed)
    first = None
    if d_in is None:
        first = next(iter(stream))
        d_in = first.shape[1]
    d_hidden = d_hidden or expansion * d_in
    sae = (SparseAutoencoder(d_in, d_hidden, tied=tied, device=model.device, seed=seed) if k is None
           else TopKSparseAutoencoder(d_in, d_hidden, k, tied=tied, device=model.device, seed=seed))  # fmt: skip
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and resume and path.exists():
        sae.input_scale.copy_(read_checkpoint(path)["sae"]["input_scale"])
    else:
        first = next(iter(stream)) if first is None else first
        sae.input_scale.fill_(activation_scale(first))
        sae.init_decoder_bias_(first / sae.input_scale)
    stream.scale = float(sae.input_scale)
    history = train_sae(sae, stream, steps, lr, l1_coeff, batch_size=batch_size, checkpoint=checkpoint,
                        checkpoint_every=checkpoint_every, resume=resume, progress=progress, seed=seed,
                        log_every=log_every)  # fmt: skip
    return sae, history
