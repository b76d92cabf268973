"""Checkpoints of SAE training: what is saved, and how a run resumes from it.

A checkpoint holds the SAE, the optimiser, the step, the random number generators' states, the
data position (every rank's, under ``torchrun``), the history and the running sums of the
current logging interval: enough that a resumed run ends with exactly the SAE of one
uninterrupted run (bit for bit on a CPU). :class:`Checkpoint` does the saving and resuming for
:func:`~circuitscope.methods.sae.train_sae`, so that the training loop stays a training loop.
"""

from __future__ import annotations

import os
import random
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...core import distributed
from ...core.device import get_device
from .data import VectorStream
from .model import SAELoss, SparseAutoencoder, build_sae

__all__ = [
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "LossLog",
    "TrainingHistory",
    "load_sae",
    "read_checkpoint",
    "rng_state",
    "set_rng_state",
    "write_checkpoint",
]  # fmt: skip

CHECKPOINT_FORMAT = "circuitscope.methods.sae/1"


# -- the file ------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The states of PyTorch's, Python's and NumPy's global generators (and CUDA's, if any)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators' states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(path: Path, payload: dict) -> None:
    """Save ``payload`` to ``path`` atomically: a crash while saving never leaves a broken file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The payload of a :func:`~circuitscope.methods.sae.train_sae` checkpoint (tensors on the CPU)."""
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a circuitscope SAE checkpoint")
    return payload


def load_sae(path: str | os.PathLike, device: str | torch.device | None = None) -> SparseAutoencoder:
    """Rebuild the SAE (L1 or TopK) saved in a :func:`~circuitscope.methods.sae.train_sae` checkpoint."""
    payload = read_checkpoint(path)
    sae = build_sae(payload["config"], device=get_device(device))
    sae.load_state_dict(payload["sae"])
    return sae


# -- the history and the running losses ----------------------------------------------------------
@dataclass
class TrainingHistory:
    """Losses logged by :func:`~circuitscope.methods.sae.train_sae`: each list has one entry per logging
    interval (the mean over the interval), at ``steps``. See :class:`SAELoss` for the terms."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    l1: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return asdict(self)


class LossLog:
    """The loss parts summed over the current logging interval, written to a history as means
    (over the interval and, under ``torchrun``, over the ranks)."""

    def __init__(self, history: TrainingHistory, device: torch.device) -> None:
        self.history = history
        self.sums, self.count = torch.zeros(4, device=device), 0

    def add(self, parts: SAELoss) -> None:
        self.sums += torch.stack([p.detach() for p in parts])
        self.count += 1

    def write(self, step: int, reset: bool = True) -> dict[str, str]:
        """Append the interval's means at ``step``; returns them formatted for a progress bar.
        ``reset=False`` keeps the sums (a last, partial interval a resume will finish)."""
        mean = (distributed.all_reduce(self.sums.clone(), "mean") / self.count).tolist()
        self.history.steps.append(step)
        for name, value in zip(("loss", "mse", "l1", "l0"), mean):
            getattr(self.history, name).append(value)
        if reset:
            self.sums.zero_()
            self.count = 0
        return {"loss": f"{mean[0]:.4g}", "mse": f"{mean[1]:.4g}", "l0": f"{mean[3]:.1f}"}

    def running(self, together: bool) -> dict[str, Any]:
        """The interval so far, for a checkpoint (the ranks' mean when ``together``)."""
        sums = distributed.all_reduce(self.sums.clone(), "mean") if together else self.sums
        return {"sums": sums.cpu(), "count": self.count}

    def restore(self, running: dict[str, Any], log_every: int) -> None:
        """Continue the interval a checkpoint was in (dropping the partial entry logged then)."""
        self.sums, self.count = running["sums"].to(self.sums.device), int(running["count"])
        history = self.history
        if history.steps and history.steps[-1] % log_every:
            for name in ("steps", "loss", "mse", "l1", "l0"):
                getattr(history, name).pop()


# -- saving and resuming ---------------------------------------------------------------------------
class Checkpoint:
    """The checkpoint file of one training run (or none, when ``path`` is None).

    :meth:`resume` continues from the file if there is one; :meth:`save` writes the state after
    the last completed step (``position`` is where the data stood then). ``updating`` is set
    by the training loop while the weights are half-updated: nothing is saved then.
    """

    def __init__(self, path, sae: SparseAutoencoder, optimizer, stream: VectorStream, hyper: dict) -> None:
        self.path = Path(path) if path is not None else None
        self.sae, self.optimizer, self.stream, self.hyper = sae, optimizer, stream, hyper
        self.world, self.rank = distributed.world_size(), distributed.rank()
        # Only an iterable's data position differs between ranks; gathering it is a collective.
        self.gather_positions = self.world > 1 and not stream.is_tensor
        self.position = stream.state()
        self.saved_at, self.updating = 0, False

    def resume(self, resume: bool, log_every: int) -> tuple[int, TrainingHistory, LossLog]:
        """``(step, history, log)``: from the file when ``resume`` and it exists, else a fresh start."""
        history = TrainingHistory()
        if self.path is None or not resume or not self.path.exists():
            return 0, history, LossLog(history, self.sae.device)
        payload = read_checkpoint(self.path)
        self._check(payload)
        self.sae.load_state_dict(payload["sae"])
        self.optimizer.load_state_dict(payload["optimizer"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.hyper["lr"]
        history = TrainingHistory(**payload["history"])
        ranks = payload.get("data_ranks")
        self.stream.seek(ranks[self.rank] if self.gather_positions else payload["data"])
        set_rng_state(payload["rng"])  # after skipping: the skip may have drawn numbers
        log = LossLog(history, self.sae.device)
        log.restore(payload["running"], log_every)
        self.position = self.stream.state()
        self.saved_at = int(payload["step"])
        return self.saved_at, history, log

    def _check(self, payload: dict) -> None:
        path, config = self.path, self.sae.config()
        if payload["config"] != config:
            raise ValueError(f"checkpoint {path} holds an SAE {payload['config']}, not {config}")
        was = payload["hyper"]
        changed = {k: (was.get(k), v) for k, v in self.hyper.items() if was.get(k) != v}
        if changed:
            warnings.warn(f"resuming {path} with different settings (was, now): {changed}", stacklevel=4)
        ranks = payload.get("data_ranks")
        if self.gather_positions and (ranks is None or len(ranks) != self.world):
            raise ValueError(f"checkpoint {path} was written by {len(ranks or [0])} process(es), not {self.world}: "
                             "resume it with as many")  # fmt: skip

    def save(self, step: int, history: TrainingHistory, log: LossLog, collective: bool = True) -> None:
        """Write the state after step ``step`` (rank 0 writes; ``collective=False``: this rank
        alone, after an error, when the ranks cannot gather)."""
        self.saved_at = step
        if self.path is None or (self.gather_positions and not collective):
            return  # an error on one rank: the others cannot join a gather
        together = collective and self.world > 1
        ranks = distributed.all_gather_object(self.position) if self.gather_positions else None
        running = log.running(together)
        if self.rank == 0:
            write_checkpoint(self.path, {
                "format": CHECKPOINT_FORMAT, "config": self.sae.config(), "hyper": self.hyper, "step": step,
                "sae": self.sae.state_dict(), "optimizer": self.optimizer.state_dict(), "rng": rng_state(),
                "data": self.position, "data_ranks": ranks, "history": history.as_dict(), "running": running,
            })  # fmt: skip
        if together:
            distributed.barrier()  # nobody reads or rewrites the file before it is complete

    def save_after_error(self, step: int, history: TrainingHistory, log: LossLog) -> None:
        """Keep the work done when training stops on an error or Ctrl-C, if the state between
        steps is consistent."""
        if step != self.saved_at and not self.updating:
            self.save(step, history, log, collective=False)

    def save_at_end(self, step: int, history: TrainingHistory, log: LossLog) -> None:
        if step != self.saved_at or (self.path is not None and not self.path.exists()):
            self.save(step, history, log)
