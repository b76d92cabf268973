"""A planted polysemantic unit: a tiny model whose one unit answers to two unrelated patterns.

Chapter 4's ground truth. Images are plain noise with, in some, a small cross or a checkerboard
(:func:`planted_images`, :func:`write_planted_folder` for a folder that dataset-example tools
read); in :class:`PlantedPatternModel` unit ``units:0`` fires for both patterns, so its top
examples fall into two groups the measurements of :mod:`circuitscope.methods.polysemanticity`
should find, while ``units:1`` answers to crosses only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...core.models.layers import conv2d_same, max_pool_same
from ...core.models.named import NamedModel, check_images
from ...core.receptive_field import Op, chain_receptive_field

PATTERNS = ("cross", "checker")
_PATTERN_SIZE = 9


def _pattern_mask(kind: str) -> torch.Tensor:
    """``(9, 9)`` float: the cross's arms (3 px wide), or the checkerboard's white squares (3 px)."""
    r = torch.arange(_PATTERN_SIZE)
    if kind == "cross":
        band = (r >= 3) & (r <= 5)
        return (band[:, None] | band[None, :]).float()
    if kind == "checker":
        cell = r // 3
        return ((cell[:, None] + cell[None, :]) % 2 == 0).float()
    raise ValueError(f"unknown pattern {kind!r}; choose from {PATTERNS}")



def draw_pattern(image: torch.Tensor, kind: str, center: tuple[int, int]) -> torch.Tensor:
    """Draw a 9x9 pattern centred at ``center = (row, col)`` into ``image: (3, H, W)`` in place.

    ``"cross"``: a pure red plus sign with 3-px arms (the rest of the 9x9 square is left as
    it was). ``"checker"``: a black-and-white checkerboard of 3-px squares filling the square.
    """
    y, x = center
    h = _PATTERN_SIZE // 2
    region = image[:, y - h : y + h + 1, x - h : x + h + 1]
    if region.shape[-2:] != (_PATTERN_SIZE, _PATTERN_SIZE):
        raise ValueError(f"a pattern at {center} does not fit inside a {tuple(image.shape[-2:])} image")
    mask = _pattern_mask(kind).bool()
    if kind == "cross":
        red = torch.tensor([1.0, 0.0, 0.0])[:, None]
        region[:, mask] = red
    else:
        region[:] = mask.float()
    return image



def planted_images(
    n_plain: int = 12,
    n_per_pattern: int = 4,
    size: int = 48,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str | None, tuple[int, int] | None]]]:
    """Noise images, some with one planted pattern: ``(images (N, 3, size, size) in [0, 1],
    labels (N,), truth)``.

    The first ``n_plain`` images are uniform noise (label 0, ``"plain"``), then ``n_per_pattern``
    with a red cross (label 1) and as many with a checkerboard (label 2), each at a random
    place. ``truth[i]`` is ``(pattern, (row, col) of its centre)`` (``(None, None)`` for plain
    images). Seeded: the same arguments give the same images.
    """
    g = torch.Generator().manual_seed(seed)
    n = n_plain + n_per_pattern * len(PATTERNS)
    images = torch.rand(n, 3, size, size, generator=g)
    labels = torch.zeros(n, dtype=torch.long)
    truth: list[tuple[str | None, tuple[int, int] | None]] = [(None, None)] * n_plain
    h = _PATTERN_SIZE // 2
    i = n_plain
    for p, kind in enumerate(PATTERNS):
        for _ in range(n_per_pattern):
            cy, cx = (int(v) for v in torch.randint(h + 1, size - h - 1, (2,), generator=g))
            draw_pattern(images[i], kind, (cy, cx))
            labels[i] = p + 1
            truth.append((kind, (cy, cx)))
            i += 1
    return images, labels, truth



def write_planted_folder(
    root: str | os.PathLike,
    n_plain: int = 12,
    n_per_pattern: int = 4,
    size: int = 48,
    seed: int = 0,
) -> dict[Path, tuple[str | None, tuple[int, int] | None]]:
    """Write :func:`planted_images` as PNG files in class folders ``plain/``, ``cross/``,
    ``checker/`` under ``root`` (lossless, so the pixels read back exactly).

    Returns ``{path: (pattern, centre)}``.
    """
    from PIL import Image

    images, labels, truth = planted_images(n_plain, n_per_pattern, size, seed)
    names = ("plain",) + PATTERNS
    root = Path(root)
    out = {}
    for i, (img, lab) in enumerate(zip(images, labels.tolist())):
        folder = root / names[lab]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{names[lab]}_{i:03d}.png"
        pixels = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(path)
        out[path] = truth[i]
    return out



class PlantedPatternModel(NamedModel):
    """A tiny model with a polysemantic unit, built by hand; the InceptionV1 interface.

    ``images: (N, 3, H, W)`` in [0, 1]. A :class:`~circuitscope.core.models.named.NamedModel` (with
    ``<layer>_pre_relu_conv`` modules and ``layer_inputs`` for the circuit tools); layers:

    * ``detectors`` (2 channels, 9x9 "SAME" convolution, stride 1): matched filters, 0 for a
      red cross (on redness ``R - (G + B) / 2``), 1 for a checkerboard (on grey), scaled so
      the pattern gives 1 before the bias of ``-threshold``; noise gives about 0.
    * ``units`` (3 channels, 3x3 stride-2 "SAME" max pool, then a 1x1 convolution):
      ``units:0 = cross + checker`` (**polysemantic**), ``units:1 = cross``,
      ``units:2 = checker``.

    :meth:`receptive_field` gives each layer's field by receptive-field arithmetic
    (``detectors``: 9 px; ``units``: 11 px, jump 2).
    """

    layer_names: ClassVar[list[str]] = ["detectors_pre_relu", "detectors", "units_pre_relu", "units"]
    layer_channels: ClassVar[dict[str, int]] = {
        "detectors_pre_relu": 2, "detectors": 2, "units_pre_relu": 3, "units": 3,
    }  # fmt: skip
    layer_inputs: ClassVar[dict[str, str]] = {"units": "detectors"}
    relus: ClassVar[dict[str, str]] = {"detectors": "detectors_pre_relu", "units": "units_pre_relu"}
    UNIT_WEIGHTS: ClassVar[list[list[float]]] = [[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]

    def __init__(self, threshold: float = 0.5) -> None:
        super().__init__()
        # Every weight is set below: skip the random init (it would draw from the caller's RNG).
        self.detectors_pre_relu_conv = nn.utils.skip_init(nn.Conv2d, 3, 2, _PATTERN_SIZE)
        self.units_pre_relu_conv = nn.utils.skip_init(nn.Conv2d, 2, 3, 1)
        with torch.no_grad():
            cross = _pattern_mask("cross")
            w = cross - cross.mean()
            w = w / (w * cross).sum()  # a red cross gives 1
            self.detectors_pre_relu_conv.weight[0] = torch.stack([w, -w / 2, -w / 2])
            checker = _pattern_mask("checker")
            w = checker - checker.mean()
            w = w / (w * checker).sum()  # a checkerboard gives 1
            self.detectors_pre_relu_conv.weight[1] = torch.stack([w, w, w]) / 3
            self.detectors_pre_relu_conv.bias.fill_(-threshold)
            self.units_pre_relu_conv.weight.copy_(torch.tensor(self.UNIT_WEIGHTS)[:, :, None, None])
            self.units_pre_relu_conv.bias.zero_()
        self.requires_grad_(False)
        self.eval()
        self.threshold = threshold
        self.weights_state = "planted"  # built by hand, not InceptionV1: figures say "PLANTED MODEL"
        self.is_synthetic = True  # read by older code
        self.weights_source = "planted patterns (hand-set weights, known by construction)"

    def named_forward(self, images: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(name, value)`` for each of :attr:`layer_names`; ``images: (N, 3, H, W)`` in [0, 1]."""
        check_images(images)
        _, pre = item = self.emit("detectors_pre_relu", conv2d_same(images, self.detectors_pre_relu_conv))
        yield item
        _, det = item = self.emit("detectors", F.relu(pre))
        yield item
        _, pre = item = self.emit("units_pre_relu", self.units_pre_relu_conv(max_pool_same(det, 3, 2)))
        yield item
        yield self.emit("units", F.relu(pre))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.run_to(images, ["units"])["units"]

    def receptive_field(self, layer: str, input_size: int):
        """The :class:`~circuitscope.core.receptive_field.ReceptiveField` of ``layer`` at ``input_size``."""
        base = layer.removesuffix("_pre_relu")
        ops = {"detectors": [Op("detectors", 9, 1)], "units": [Op("detectors", 9, 1), Op("pool", 3, 2)]}
        if base not in ops:
            raise KeyError(f"unknown layer {layer!r}; layers: {self.layer_names}")
        return chain_receptive_field(ops[base], input_size, layer)
