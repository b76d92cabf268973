"""Which channels respond most to an image, and where.

A layer's activations for one image are ``(C, H, W)``: for each of its ``C`` channels
(features, in "Zoom In"'s language) a map of how strongly it responds at each position. Ranking
channels by their mean over positions is the simplest way to ask "what does this layer see in
this photo?" (the question behind the activation grids of Olah et al., "The Building Blocks of
Interpretability", Distill 2018).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..core.receptive_field import receptive_field

__all__ = ["TopChannels", "channel_means", "strongest_channels", "strongest_patch", "strongest_position"]


class TopChannels(NamedTuple):
    """The result of :func:`strongest_channels`: ``scores`` and ``channels``, strongest first."""

    scores: torch.Tensor
    channels: torch.Tensor


def channel_means(acts: torch.Tensor) -> torch.Tensor:
    """Mean of each channel over its spatial positions: ``(N, C, H, W) -> (N, C)``,
    ``(C, H, W) -> (C,)``."""
    if acts.dim() not in (3, 4):
        raise ValueError(f"expected activations (N, C, H, W) or (C, H, W), got {tuple(acts.shape)}")
    return acts.float().mean(dim=(-2, -1))


def strongest_channels(acts: torch.Tensor, k: int = 10) -> TopChannels:
    """The ``k`` channels with the largest mean activation over positions, per image.

    ``acts: (N, C, H, W)`` gives ``scores: (N, k)`` float and ``channels: (N, k)`` long;
    ``acts: (C, H, W)`` gives ``(k,)`` and ``(k,)``. Sorted by score, largest first.
    """
    scores, channels = channel_means(acts).topk(k, dim=-1)
    return TopChannels(scores, channels)


def strongest_position(channel_map: torch.Tensor) -> tuple[int, int]:
    """``(row, col)`` of the largest value of an ``(H, W)`` map (the first one, row-major, on ties)."""
    if channel_map.dim() != 2:
        raise ValueError(f"expected one channel's (H, W) map, got {tuple(channel_map.shape)}")
    flat = int(channel_map.flatten().argmax())
    return divmod(flat, channel_map.shape[1])


def strongest_patch(
    acts: torch.Tensor, channel: int, layer: str, input_size: int = 224
) -> tuple[int, int, int, int]:
    """The input patch that drove ``channel`` hardest: ``(top, left, bottom, right)``, inclusive,
    clipped to the image.

    ``acts: (C, H, W)``: ``layer``'s activations for one square ``input_size`` image. The patch is
    the receptive field (:func:`circuitscope.core.receptive_field.receptive_field`) of the position
    where the channel is largest. Cropping such patches from many images gives a unit's
    "dataset examples" (Olah et al., "Feature Visualization", Distill 2017).
    """
    if acts.dim() != 3:
        raise ValueError(f"expected one image's activations (C, H, W), got {tuple(acts.shape)}")
    row, col = strongest_position(acts[channel])
    return receptive_field(layer, input_size).box(row, col)
