"""Branches and bands: two structural findings that can be read off InceptionV1 without any image.

**Branch specialization** (Voss et al. 2021, "Branch Specialization", Distill,
https://distill.pub/2020/circuits/branch-specialization/). An inception block concatenates four parallel branches,
``[1x1 | 3x3 | 5x5 | pool_reduce]``. Features of one family tend to live in the same branch: the
ten curve detectors of "Curve Detectors" (``3b:379``, ``3b:406``, ...) all sit in mixed3b's 5x5
branch, channels 320-415 of its concatenated output. :func:`branch_ranges` gives each branch's
channels from a model's ``layer_channels`` (so it works for any model that names its branches the
InceptionV1 way), :func:`branch_shares` says where a family of channels lives.

**Weight banding** (Petrov et al. 2021, "Weight Banding", Distill,
https://distill.pub/2020/circuits/weight-banding/). In the last convolutional layers of vision models that end
with global average pooling, InceptionV1's mixed5b among them, the spatial kernels form
horizontal stripes: a kernel's weights change from row to row and barely along a row. The
article shows it in pictures (and with NMF); :func:`banding_index` turns it into one number, the
share of the kernels' energy that their row means hold.

Everything here reads weights and layer widths only: it runs on the CPU in milliseconds and gives
the same answer on any device.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch

__all__ = [
    "BRANCH_SUFFIXES",
    "BranchShares",
    "banded_weight",
    "banding_index",
    "branch_ranges",
    "branch_shares",
    "layer_banding",
]

#: The branches of a block, in the order of its concatenated output.
BRANCH_SUFFIXES = ("1x1", "3x3", "5x5", "pool_reduce")


def branch_ranges(model, block: str) -> dict[str, range]:
    """Each branch's channels in ``block``'s concatenated output, from ``model.layer_channels``.

    ``branch_ranges(model, "mixed3b") == {"mixed3b_1x1": range(0, 128), "mixed3b_3x3":
    range(128, 320), "mixed3b_5x5": range(320, 416), "mixed3b_pool_reduce": range(416, 480)}``
    for InceptionV1. ``model``: anything with a ``layer_channels`` dict that holds
    ``f"{block}_{suffix}"`` for each of :data:`BRANCH_SUFFIXES` (the bottlenecks do not count:
    they feed the 3x3 and 5x5 branches, they are not concatenated).
    """
    widths = getattr(model, "layer_channels", None)
    if not isinstance(widths, dict):
        raise TypeError(f"expected a model with a layer_channels dict, got {type(model).__name__}")
    missing = [f"{block}_{s}" for s in BRANCH_SUFFIXES if f"{block}_{s}" not in widths]
    if missing:
        raise KeyError(f"{block!r} is not an inception block of this model: it has no {', '.join(missing)}")
    out, start = {}, 0
    for suffix in BRANCH_SUFFIXES:
        width = int(widths[f"{block}_{suffix}"])
        out[f"{block}_{suffix}"] = range(start, start + width)
        start += width
    return out


class BranchShares(NamedTuple):
    """:func:`branch_shares`'s answer: ``branches[i]`` holds ``channels[i]``; ``shares`` maps
    every branch of the block (in concatenation order) to the fraction of the channels in it."""

    branches: list[str]
    shares: dict[str, float]


def branch_shares(model, block: str, channels: Iterable[int]) -> BranchShares:
    """Which branch of ``block`` holds each channel, and the share of the channels per branch.

    Args:
        model: a model with ``layer_channels`` (InceptionV1, or any that names its branches so).
        block: an inception block, e.g. ``"mixed3b"``.
        channels: channel indices of the block's concatenated output, ``0 <= c < width``
            (``[379, 406, 385]`` for three curve detectors of mixed3b).

    Returns:
        ``(branches, shares)``: ``branches`` a list of branch names, one per channel
        (``"mixed3b_5x5"``); ``shares`` ``{branch: fraction}`` for all four branches in
        concatenation order, fractions in [0, 1] summing to 1 (all 0.0 for no channels).
        "Branch Specialization": the curve family of mixed3b gives ``{"mixed3b_5x5": 1.0}`` and
        0.0 elsewhere.
    """
    ranges = branch_ranges(model, block)
    total = sum(len(r) for r in ranges.values())
    channels = [int(c) for c in channels]
    branches = []
    for c in channels:
        if not 0 <= c < total:
            raise IndexError(f"channel {c} is not a channel of {block} (0..{total - 1})")
        branches.append(next(name for name, r in ranges.items() if c in r))
    n = len(channels)
    shares = {name: (branches.count(name) / n if n else 0.0) for name in ranges}
    return BranchShares(branches, shares)


def banding_index(weight: torch.Tensor) -> float:
    """How horizontally banded a convolution's spatial kernels are: a number in [0, 1].

    ``weight: (out, in, k, k)`` (any float dtype, any device). Each kernel ``K`` (``k x k``, row 0
    at the top) is first centred, ``C = K - mean(K)``; its **row-mean image** ``R`` replaces
    every entry by the mean of its row, ``R[i, j] = mean_j' C[i, j']``. The index is the share of
    the energy that the row means hold, pooled over all kernels::

        banding_index = sum over kernels of sum_ij R[i, j]^2  /  sum over kernels of sum_ij C[i, j]^2

    1.0: every kernel is constant along its rows (perfect horizontal bands, "Weight Banding");
    0.0: every row averages to the kernel's mean (e.g. perfect vertical bands). Independent
    random weights give about ``1 / (k + 1)`` (1/6 for 5x5, 1/4 for 3x3), since ``k - 1`` of
    the ``k^2 - 1`` directions around the mean are row means. Pooling before dividing weighs
    each kernel by its energy and keeps an all-zero kernel (a pruned channel) harmless. The
    vertical index is ``banding_index(weight.transpose(-1, -2))``. Raises ``ValueError`` when
    every kernel is constant (nothing to measure).
    """
    if weight.dim() != 4 or weight.shape[-1] != weight.shape[-2]:
        raise ValueError(f"expected a convolution weight (out, in, k, k), got {tuple(weight.shape)}")
    w = weight.detach().double().cpu()
    centred = w - w.mean(dim=(-2, -1), keepdim=True)
    rows = centred.mean(dim=-1, keepdim=True).expand_as(centred)
    total = float(centred.pow(2).sum())
    if total == 0.0:
        raise ValueError("every kernel is constant: there is no spatial structure to measure")
    return float(rows.pow(2).sum()) / total


def layer_banding(
    model, blocks: Iterable[str] | None = None, sizes: Iterable[str] = ("3x3", "5x5")
) -> dict[str, float]:
    """:func:`banding_index` of the spatial convolutions of each block: ``{f"{block}_{size}": index}``.

    ``blocks`` default: every ``mixedXY`` block of the model (InceptionV1: mixed3a .. mixed5b, in
    order). "Weight Banding" finds the bands in the last block before global average pooling
    (mixed5b); earlier blocks are expected near the random level ``1 / (k + 1)`` (our expectation, not a
    number the article reports).
    """
    if blocks is None:
        blocks = [n for n in model.layer_names if n.startswith("mixed") and "_" not in n]
    out = {}
    for block in blocks:
        for size in sizes:
            conv = getattr(model, f"{block}_{size}_pre_relu_conv", None)
            if conv is not None:
                out[f"{block}_{size}"] = banding_index(conv.weight)
    return out


def banded_weight(out_channels: int, in_channels: int, k: int, banding: float, seed: int = 0,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:  # fmt: skip
    """Planted weights ``(out, in, k, k)`` with a chosen amount of horizontal banding.

    Each kernel is ``a * bands + b * noise`` with ``bands`` constant along rows and ``noise``
    independent Gaussian; ``banding`` in [0, 1] mixes them (0: pure noise, 1: pure bands), so
    :func:`banding_index` rises with it (exactly 1.0 at ``banding=1``). Seeded by ``seed``
    without touching the global random state: for tests and exercises with a known direction.
    """
    if not 0.0 <= banding <= 1.0:
        raise ValueError(f"banding must be in [0, 1], got {banding}")
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(out_channels, in_channels, k, 1, generator=gen, dtype=torch.float64).expand(
        -1, -1, -1, k
    )
    noise = torch.randn(out_channels, in_channels, k, k, generator=gen, dtype=torch.float64)
    return (banding * rows + (1.0 - banding) * noise).to(dtype)
