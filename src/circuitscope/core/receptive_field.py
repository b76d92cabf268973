"""Receptive fields of InceptionV1's named layers, by receptive-field arithmetic.

A position of a convolutional layer sees a square patch of the input image, its *receptive
field*. Along one axis it is described by three numbers (the arithmetic of Araujo, Norris and
Sim, "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019, section
"Single-path networks"):

* ``size``: how many input pixels the field spans;
* ``jump``: how many input pixels apart neighbouring positions' fields are (the product of the
  strides so far);
* ``start``: the centre of position 0's field, in input pixels (pixel ``i`` is centred at ``i``;
  negative when the field reaches into the padding).

A layer with kernel ``k``, stride ``s`` and ``p`` pixels of padding before the first window
changes them as::

    size  += (k - 1) * jump
    start += ((k - 1) / 2 - p) * jump
    jump  *= s

InceptionV1 pads as TensorFlow's "SAME" does, so ``p`` depends on the size of the feature map
entering each layer (:func:`circuitscope.core.models.layers.same_padding`): at 224 px the 7x7
stride-2 ``conv2d0`` pads 2 pixels before, at 225 px it pads 3. The fields here are computed
from the model's layer definitions (``STEM``, ``BLOCKS``, the pools of ``named_forward``); an
inception block's field is the union of its branches' (all are centred alike, so it is the
widest branch's: the 5x5 one). ``tests/test_ch1.py`` checks every layer against a brute-force
measurement on the model itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from .hooks import check_layer_names
from .models.inceptionv1 import BLOCKS, LAYER_NAMES, MAIN_LAYERS, POOL_BEFORE, STEM
from .models.layers import same_padding

__all__ = [
    "Op",
    "ReceptiveField",
    "chain_receptive_field",
    "kernel_strides",
    "layer_ops",
    "receptive_field",
    "receptive_fields",
]

# Pools of the forward pass (see InceptionV1.named_forward and models.layers.max_pool_same).
MAXPOOL_KERNEL, MAXPOOL_STRIDE = 3, 2  # maxpool0, maxpool1, maxpool4, maxpool10
BRANCH_POOL_KERNEL = 3  # mixedXY_pool: 3x3 stride 1
AVGPOOL_KERNEL = 7  # avgpool0: 7x7 stride 1, VALID


class Op(NamedTuple):
    """One spatial operation on the way to a layer: a window of ``kernel`` with ``stride``.

    ``padding`` is ``"SAME"`` (TensorFlow's, computed from the input size) or ``"VALID"``.
    Element-wise operations (ReLU, LRN, concatenation) are ``kernel=1, stride=1``.
    """

    name: str
    kernel: int
    stride: int
    padding: str = "SAME"


_IDENTITY = 1, 1


def _graph() -> dict[str, list[tuple[str, Op]]]:
    """``name -> [(parent, op), ...]``: how each named value is computed from earlier ones.

    Mirrors :meth:`InceptionV1.named_forward`; ``"input"`` is the image.
    """
    g: dict[str, list[tuple[str, Op]]] = {}

    def add(name: str, parent: str | list[str], kernel: int = 1, stride: int = 1, padding: str = "SAME"):
        parents = [parent] if isinstance(parent, str) else parent
        g[name] = [(p, Op(name, kernel, stride, padding)) for p in parents]

    x = "input"
    for name, _cin, _cout, kernel, stride in STEM:
        add(f"{name}_pre_relu", x, kernel, stride)
        add(name, f"{name}_pre_relu")
        x = name
        if name == "conv2d0":
            add("maxpool0", x, MAXPOOL_KERNEL, MAXPOOL_STRIDE)
            add("localresponsenorm0", "maxpool0")
            x = "localresponsenorm0"
    add("localresponsenorm1", x)
    add("maxpool1", "localresponsenorm1", MAXPOOL_KERNEL, MAXPOOL_STRIDE)
    x = "maxpool1"
    for block in BLOCKS:
        n = block.name
        if n in POOL_BEFORE:
            add(POOL_BEFORE[n], x, MAXPOOL_KERNEL, MAXPOOL_STRIDE)
            x = POOL_BEFORE[n]
        kernels = {name: k for name, _i, _o, k in block.branches()}
        for sub in ("1x1", "3x3_bottleneck", "5x5_bottleneck"):
            add(f"{n}_{sub}_pre_relu", x, kernels[f"{n}_{sub}"])
        for sub in ("3x3", "5x5"):
            add(f"{n}_{sub}_bottleneck", f"{n}_{sub}_bottleneck_pre_relu")
            add(f"{n}_{sub}_pre_relu", f"{n}_{sub}_bottleneck", kernels[f"{n}_{sub}"])
        add(f"{n}_pool", x, BRANCH_POOL_KERNEL, 1)
        add(f"{n}_pool_reduce_pre_relu", f"{n}_pool", kernels[f"{n}_pool_reduce"])
        for sub in ("1x1", "3x3", "5x5", "pool_reduce"):
            add(f"{n}_{sub}", f"{n}_{sub}_pre_relu")
        subs = ("1x1", "3x3", "5x5", "pool_reduce")
        add(f"{n}_pre_relu", [f"{n}_{s}_pre_relu" for s in subs])
        add(n, [f"{n}_{s}" for s in subs])
        x = n
    add("avgpool0", x, AVGPOOL_KERNEL, 1, "VALID")
    return g


GRAPH = _graph()
SPATIAL_LAYERS = [n for n in LAYER_NAMES if n in GRAPH]  # every name but the logits and softmax


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of one layer's positions along one axis of a square input.

    Attributes:
        layer: the layer's name.
        input_size: the input's size in pixels (height or width).
        size: pixels a position's field spans.
        jump: input pixels between neighbouring positions' fields (product of the strides).
        start: centre of position 0's field, in input pixel coordinates (may be negative).
        positions: positions along the axis (the feature map's height or width).

    Position ``i``'s field covers input pixels ``start + i * jump - (size - 1) // 2`` to
    ``start + i * jump + (size - 1) // 2`` inclusive; :meth:`span` gives it and
    :meth:`clipped` the part inside the image. Sizes are odd for InceptionV1, so ``start`` is a
    whole pixel. For an ``H x W`` image compute one field per axis.
    """

    layer: str
    input_size: int
    size: int
    jump: int
    start: int
    positions: int

    def center(self, i: int) -> int:
        """Input pixel at the centre of position ``i``'s field."""
        return self.start + i * self.jump

    def span(self, i: int) -> tuple[int, int]:
        """``(first, last)`` input pixel of position ``i``'s field, inclusive; may leave the image."""
        half = (self.size - 1) // 2
        return self.center(i) - half, self.center(i) + half

    def clipped(self, i: int) -> tuple[int, int]:
        """``(first, last)`` pixel of position ``i``'s field inside the image, inclusive."""
        first, last = self.span(i)
        return max(first, 0), min(last, self.input_size - 1)

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` inclusive pixel box of position ``(row, col)`` of a
        square input, clipped to the image."""
        (top, bottom), (left, right) = self.clipped(row), self.clipped(col)
        return top, left, bottom, right

    def as_tuple(self) -> tuple[int, int, int]:
        """``(size, jump, start)``."""
        return self.size, self.jump, self.start


# -- the arithmetic ------------------------------------------------------------------------
class _Field(NamedTuple):
    first: int  # first input pixel of position 0's field
    size: int
    jump: int
    n: int  # positions along the axis


def _apply(f: _Field, op: Op) -> _Field:
    if op.kernel == 1 and op.stride == 1:
        return f
    if op.padding == "SAME":
        before, _after = same_padding(f.n, op.kernel, op.stride)
        n = -(-f.n // op.stride)
    elif op.padding == "VALID":
        before, n = 0, (f.n - op.kernel) // op.stride + 1
    else:
        raise ValueError(f"unknown padding {op.padding!r}")
    if n < 1:
        raise ValueError(f"{op.name}: a {f.n}-position input is too small for a {op.kernel}-window")
    return _Field(f.first - before * f.jump, f.size + (op.kernel - 1) * f.jump, f.jump * op.stride, n)


def _union(fields: list[_Field], name: str) -> _Field:
    if len({(f.jump, f.n) for f in fields}) != 1:
        raise ValueError(f"{name}: branches with different strides cannot be concatenated")
    first = min(f.first for f in fields)
    last = max(f.first + f.size - 1 for f in fields)
    return _Field(first, last - first + 1, fields[0].jump, fields[0].n)


def _result(layer: str, input_size: int, f: _Field) -> ReceptiveField:
    if f.size % 2 == 0:
        raise ValueError(f"{layer}: an even field size {f.size} has no centre pixel")
    return ReceptiveField(layer, input_size, f.size, f.jump, f.first + (f.size - 1) // 2, f.n)


def chain_receptive_field(
    ops: Iterable[Op | tuple[int, int]], input_size: int, layer: str = ""
) -> ReceptiveField:
    """The field after applying ``ops`` in order to a ``input_size``-pixel axis.

    Each op is an :class:`Op` or a ``(kernel, stride)`` pair with "SAME" padding.
    """
    f = _Field(0, 1, 1, input_size)
    for op in ops:
        f = _apply(f, op if isinstance(op, Op) else Op("", *op))
    return _result(layer or "chain", input_size, f)


@lru_cache(maxsize=4096)
def _field(layer: str, input_size: int) -> _Field:
    if layer == "input":
        return _Field(0, 1, 1, input_size)
    return _union([_apply(_field(parent, input_size), op) for parent, op in GRAPH[layer]], layer)


def _check_layer(layer: str) -> None:
    if layer in GRAPH:
        return
    if layer in LAYER_NAMES:
        raise ValueError(f"{layer!r} is not spatial: the logits see the whole image (averaged over mixed5b)")
    check_layer_names(None, [layer])  # raises KeyError with suggestions


def receptive_field(layer: str, input_size: int = 224) -> ReceptiveField:
    """The receptive field of ``layer`` (any spatial name, branches and ``_pre_relu`` included)
    for a square ``input_size`` image; see :class:`ReceptiveField`.

    >>> receptive_field("conv2d0").as_tuple()        # 7x7 stride 2, SAME pads 2 before at 224
    (7, 2, 1)
    >>> receptive_field("mixed3b").size
    91
    """
    _check_layer(layer)
    if input_size < 1:
        raise ValueError(f"input_size must be positive, got {input_size}")
    return _result(layer, input_size, _field(layer, int(input_size)))


def receptive_fields(input_size: int = 224, layers: Iterable[str] = MAIN_LAYERS) -> dict[str, ReceptiveField]:
    """:func:`receptive_field` of several layers (default: the main spatial layers)."""
    return {n: receptive_field(n, input_size) for n in layers if n in GRAPH}


def layer_ops(layer: str) -> list[Op]:
    """The spatial operations from the image to ``layer`` along its widest path, in order.

    Through each inception block the path takes the 5x5 branch (1x1 bottleneck, then 5x5): all
    branches are centred alike, so the widest one's field is the block's field.
    Element-wise steps (ReLU, LRN, concatenation, 1x1 convolutions) are left out.
    ``chain_receptive_field(layer_ops(name), n)`` equals ``receptive_field(name, n)``.
    """
    _check_layer(layer)
    path: list[Op] = []
    name = layer
    while name != "input":
        # The parent whose field reaches furthest; ties go to the first (the 5x5 branch wins).
        options = GRAPH[name]
        parent, op = max(options, key=lambda po: _apply(_field(po[0], 1024), po[1]).size)
        if not (op.kernel == 1 and op.stride == 1):
            path.append(op)
        name = parent
    return path[::-1]


def kernel_strides(layer: str) -> list[tuple[int, int]]:
    """``[(kernel, stride), ...]`` of :func:`layer_ops` (all "SAME"; not for ``avgpool0``)."""
    ops = layer_ops(layer)
    if any(op.padding != "SAME" for op in ops):
        raise ValueError(f"{layer!r} has a VALID-padded op on its path; use layer_ops()")
    return [(op.kernel, op.stride) for op in ops]
