"""Work spread over several processes with ``torch.distributed``: one helper for every command.

Under ``torchrun`` each process gets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous address in its environment. :func:`init` reads them and joins the process group
(``gloo`` on the CPU, ``nccl`` when the process has a GPU); without them it does nothing, and
every helper below then acts as for one process (rank 0 of 1), so the same code runs alone,
on one node with several GPUs, or on several nodes::

    from circuitscope.core import distributed as dist

    dist.init()                                   # no-op outside torchrun
    mine = dist.shard(channels)                   # this rank's share: channels[rank::world]
    found = dist.all_gather_object(results)       # every rank's results, in rank order
    if dist.is_main():
        write_the_page(found)
    dist.barrier()

The commands that use it: ``circuitscope gallery`` (channels sharded over ranks),
``circuitscope dataset-examples`` (images sharded, top-k merged exactly) and
``circuitscope sae`` (DistributedDataParallel). Files are written by every rank into the same
output folder, so on several nodes that folder must be on a shared file system.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as tdist

__all__ = [
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast_object",
    "device",
    "init",
    "is_distributed",
    "is_main",
    "local_rank",
    "rank",
    "shard",
    "shutdown",
    "world_size",
]

T = TypeVar("T")
_STARTED_HERE = False  # whether init() created the process group (so shutdown() may end it)


def _env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1


def init(backend: str | None = None, timeout_s: float = 1800) -> bool:
    """Join the process group ``torchrun`` describes; returns :func:`is_distributed`.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default ``nccl`` when CUDA is available (each
            process then uses GPU ``LOCAL_RANK``), else ``gloo``.
        timeout_s: how long a collective may wait for the others (a long render per rank
            must fit; the default of 30 minutes does for one gallery batch).

    Without ``WORLD_SIZE > 1`` in the environment, or when a group exists already, nothing
    is done. Safe to call more than once.
    """
    global _STARTED_HERE
    if not tdist.is_available() or _env_world() <= 1 or tdist.is_initialized():
        return is_distributed()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    tdist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    _STARTED_HERE = True
    return is_distributed()


def shutdown() -> None:
    """Leave the process group if :func:`init` created it (after a last barrier)."""
    global _STARTED_HERE
    if _STARTED_HERE and tdist.is_initialized():
        tdist.barrier()
        tdist.destroy_process_group()
    _STARTED_HERE = False


def rank() -> int:
    """This process's rank, 0 .. world_size - 1 (0 when not distributed)."""
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """How many processes share the work (1 when not distributed)."""
    return tdist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index on its node (``LOCAL_RANK``; 0 when not set): its GPU number."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """True on rank 0: the process that writes shared files and shows progress."""
    return rank() == 0


def device(requested: str | torch.device | None = None) -> torch.device | str | None:
    """The device this rank should compute on.

    Distributed with CUDA and ``requested`` None or ``"cuda"``: ``cuda:LOCAL_RANK`` (one GPU per
    process). Otherwise ``requested`` unchanged (None: the library's usual choice).
    """
    if is_distributed() and torch.cuda.is_available() and requested in (None, "cuda"):
        return torch.device("cuda", local_rank())
    return requested


def shard(items: Sequence[T], rank_: int | None = None, world: int | None = None) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item from index ``rank`` (round robin,
    so that the shares differ in length by at most one)."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    return list(items[r::w])


def barrier() -> None:
    """Wait until every rank gets here (no-op when not distributed)."""
    if is_distributed():
        tdist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (any picklable object; ``obj`` itself when alone)."""
    if not is_distributed():
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank (``[obj]`` when alone)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    tdist.all_gather_object(out, obj)
    return out


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Sum (``op="sum"``), mean (``"mean"``), maximum (``"max"``) or minimum (``"min"``) of
    ``tensor`` over ranks, in place; returns it. With nccl the tensor must be on this rank's GPU."""
    if not is_distributed():
        return tensor
    reduce_op = {"sum": tdist.ReduceOp.SUM, "mean": tdist.ReduceOp.SUM, "max": tdist.ReduceOp.MAX,
                 "min": tdist.ReduceOp.MIN}[op]  # fmt: skip
    tdist.all_reduce(tensor, op=reduce_op)
    if op == "mean":
        tensor /= world_size()
    return tensor
