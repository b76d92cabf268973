"""Circuits: the weights between units, expanded through bottlenecks and across layers.

"Zoom In" (Olah et al., 2020, "Claim 2: Circuits") reads circuits off the weights: the weights
between two units of a convolutional network form a small spatial kernel (5x5 for mixed3b's 5x5
branch) whose positive entries excite and negative entries inhibit. "Visualizing Weights"
(Voss et al., 2021, section "Dealing with Indirect Interactions") defines **expanded weights**
for units that are not literally adjacent: "the result of multiplying adjacent weight matrices,
potentially ignoring non-linearities", implemented "by taking gradients through our model,
ignoring or replacing all non-linear operations with the closest linear one". "Curve Circuits"
does exactly this with "a linear approximation of InceptionV1 where ReLUs are replaced with the
identity".

Units are written ``"layer:channel"`` as in the papers: ``"3b:379"`` is channel 379 of mixed3b's
concatenated output (``"mixed3b:379"`` too). mixed3b's channels are its branches in the order
``[1x1 | 3x3 | 5x5 | pool_reduce]``, so 3b:379 is channel 59 of the 5x5 branch
(:func:`branch_of`), whose input is the 32-channel 1x1 ``mixed3b_5x5_bottleneck``; the weight
from 3a:147 to 3b:379 is therefore an expanded weight through that bottleneck::

    W5 = model.mixed3b_5x5_pre_relu_conv.weight[59]               # (32, 5, 5)
    Wb = model.mixed3b_5x5_bottleneck_pre_relu_conv.weight[:, 147, 0, 0]   # (32,)
    weights_between(model, "3a:147", "3b:379") == einsum("bij,b->ij", W5, Wb)  # (5, 5)

The linearisation (documented choices, the same in every function here):

* **ReLUs are the identity** and **biases are ignored**: expanded weights are the gradient of
  the target unit's *pre-activation* with respect to the source *activation* in the model made
  linear, so they do not depend on any input.
* **Max pools become a linear stand-in** chosen by ``pool``:
  ``"average"`` (default; the closest linear operation to a 3x3 max: each of the 9 inputs gets
  weight 1/9; Captum's ``optim`` module linearises models the same way), ``"centre"`` (the max
  is taken to pick the window's centre: the identity, subsampled by the pool's stride), or
  ``"exclude"`` (paths through a max pool are dropped: a block's pool branch contributes
  nothing and its own units get zero weights; crossing a stride-2 pool between blocks, the
  only path there, raises), or ``"replicate"`` (each of the 9 inputs gets weight 1: the
  1x1 ``pool_reduce`` weight copied into every cell of the 3x3 window, as the weight figures
  of the Circuits thread draw a pool branch; a max pool passes whichever input is largest
  through unchanged, so any of the nine can carry the full weight; it is 9x ``"average"`` and
  is not the gradient of one linear network that sums to the max pool's output).
  ``"average"`` stays the default because it is the linearisation the exercises check and a
  true linear stand-in (the 9 weights sum to 1, as a max pool's gradient does); draw figures
  to compare with the articles' with ``pool="replicate"``.
  This applies to each block's 3x3 stride-1 pool branch and to the stride-2 pools between
  blocks (maxpool1, maxpool4, maxpool10), so e.g. mixed3b -> mixed4a is expanded across
  maxpool4 with stride 2.
* **Local response normalisation is linearised by freezing its normalisation** (``lrn=``).
  LRN computes ``y[c] = x[c] * r[c]`` with ``r[c] = (bias + alpha * sum_{|j-c|<=5} x[j]**2) ** -beta``
  (``bias=2, alpha=1e-4, beta=0.5``, InceptionV1's stem: ``localresponsenorm0`` after maxpool0,
  ``localresponsenorm1`` after conv2d2). Frozen at a reference input ``x0``, ``r`` becomes a
  per-channel, per-position constant and LRN the linear map ``x -> x * r(x0)``.
  ``lrn="scale"`` (default) freezes it at the zero input, as everything else here is
  linearised at zero (biases dropped): ``r = bias ** -beta = 1/sqrt(2)`` for every channel
  and position, which is also LRN's exact Jacobian at zero (the derivative of ``r`` is
  multiplied by ``x = 0``). ``lrn="identity"`` ignores LRN (scale 1); a ``(C,)`` tensor gives
  one scale per channel, e.g. :func:`lrn_scale` averaged over real images ("at a given
  input"); :func:`linearized_forward` and :func:`expanded_weights_by_gradient` also take the
  full per-position map ``(1, C, H, W)`` that :func:`lrn_scale` returns with ``reduce=None``
  (a kernel is then the gradient at the target's centre position, no longer one kernel for
  every position). So ``conv2d2 -> mixed3a`` (the high-low frequency, black-and-white and
  small-circle circuits of "High-Low Frequency Detectors" and "An Overview of Early Vision")
  expands through ``localresponsenorm1`` and ``maxpool1``. The articles do not say how they
  treated LRN; this choice is ours and is stated under every figure that uses it.

Spatial layout: an expanded kernel ``K`` of odd size ``(k, k)`` satisfies, in the linearised
model, ``target_pre_relu[o, p] = sum_{c, i, j} K[o, c, i, j] * source[c, anchor(p) + (i, j) - (k - 1) / 2]``
(plus a constant) with row ``i = 0`` at the top, as an image is drawn: the centre entry sits
at the target unit's own position and ``K[..., 0, :]`` is the row above it. Within a block
``anchor(p) = p``; across a stride-2 pool, positions are in the source layer's finer grid and
``anchor`` is the centre of the pooling window (the kernel does not depend on where SAME
padding puts that window). Kernels grow as layers compose:
``k_total = stride_earlier * (k_later - 1) + k_earlier``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from ..core.hooks import activations
from ..core.models.inceptionv1 import BLOCKS, LAYER_CHANNELS, POOL_BEFORE, InceptionV1
from ..core.models.layers import LRN_ALPHA, LRN_BETA, LRN_BIAS, LRN_RADIUS, channel_window_sum, pad_same
from ..core.units import expand_short_name, format_unit, layer_channels_of, parse_unit

__all__ = [
    "KernelRegions",
    "WeightFactors",
    "branch_of",
    "branch_slices",
    "concat_index",
    "describe_path",
    "expand_short_name",
    "expanded_weights",
    "expanded_weights_by_gradient",
    "format_unit",
    "kernel_regions",
    "layer_channels_of",
    "linearized_forward",
    "lrn_scale",
    "nmf",
    "nmf_weights",
    "parse_unit",
    "strongest_inputs",
    "weights_between",
]  # fmt: skip

PoolStandIn = Literal["average", "centre", "exclude", "replicate"]
LrnStandIn = Literal["scale", "identity"] | torch.Tensor
_BLOCKS = {b.name: b for b in BLOCKS}
_BRANCH_ORDER = ("1x1", "3x3", "5x5", "pool_reduce")  # the concatenation order
_SUBS = ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool_reduce", "pool")
_FEEDS = {"3x3_bottleneck": "3x3", "5x5_bottleneck": "5x5", "pool": "pool_reduce"}  # inside a block


# -- the linear structure of InceptionV1 -------------------------------------------------------
def _graph() -> tuple[dict[str, str], dict[str, str]]:
    """``kind`` and ``input`` of every main-path value (the spec's table), in forward order."""
    kind = {"conv2d0": "start", "maxpool0": "pool", "localresponsenorm0": "lrn", "conv2d1": "conv",
            "conv2d2": "conv", "localresponsenorm1": "lrn", "maxpool1": "pool"}  # fmt: skip
    for block in BLOCKS:
        if block.name in POOL_BEFORE:
            kind[POOL_BEFORE[block.name]] = "pool"
        kind[block.name] = "block"
    names = list(kind)
    return kind, {names[i]: names[i - 1] for i in range(1, len(names))}


_KIND, _INPUT = _graph()
_ORDER = {name: i for i, name in enumerate(_KIND)}


def branch_slices(block: str) -> dict[str, slice]:
    """Channels of each branch in a block's concatenated output.

    ``branch_slices("mixed3b") == {"mixed3b_1x1": slice(0, 128), "mixed3b_3x3": slice(128, 320),
    "mixed3b_5x5": slice(320, 416), "mixed3b_pool_reduce": slice(416, 480)}``.
    """
    b = _BLOCKS[expand_short_name(block)]
    out, start = {}, 0
    for sub in _BRANCH_ORDER:
        n = getattr(b, "c" + sub) if sub != "pool_reduce" else b.pool_reduce
        out[f"{b.name}_{sub}"] = slice(start, start + n)
        start += n
    return out


def branch_of(unit: str | tuple[str, int]) -> tuple[str, int]:
    """The branch holding a block's concatenated channel: ``"3b:379"`` -> ``("mixed3b_5x5", 59)``."""
    layer, channel = parse_unit(unit)
    layer = layer.removesuffix("_pre_relu")
    if layer not in _BLOCKS:
        convolution = _KIND.get(layer) in ("start", "conv") or (
            layer.startswith("mixed") and not layer.endswith("_pool")
        )
        own = f"the convolution {layer}_pre_relu_conv" if convolution else layer
        what = (
            "not an inception block's concatenated output:"
            if layer.startswith("mixed")  # a branch ("mixed3b_5x5") or its bottleneck already
            else "not an inception block (mixed3a..mixed5b), so its channels have no branch:"
        )
        raise ValueError(
            f"branch_of({unit!r}): {layer} is {what} {format_unit(layer, channel)} is channel "
            f"{channel} of {own} itself; call branch_of only for a block's channel such as '3b:379'"
        )
    for branch, sl in branch_slices(layer).items():
        if sl.start <= channel < sl.stop:
            return branch, channel - sl.start
    raise AssertionError("unreachable: parse_unit checked the range")


def concat_index(branch: str | tuple[str, int], index: int | None = None) -> int:
    """The concatenated channel of a branch channel: ``("mixed3b_5x5", 59)`` -> ``379``.

    Accepts ``concat_index("mixed3b_5x5", 59)``, ``concat_index(("mixed3b_5x5", 59))`` or
    ``concat_index("3b_5x5:59")``.
    """
    if index is None:
        branch, index = parse_unit(branch)
    branch = expand_short_name(branch).removesuffix("_pre_relu")
    block = branch.split("_")[0]
    slices = branch_slices(block) if block in _BLOCKS else {}
    if branch not in slices:
        raise ValueError(
            f"{branch!r} is not one of the concatenated branches {list(slices) or '(mixedXY_1x1, ...)'}"
        )
    sl = slices[branch]
    if not 0 <= index < sl.stop - sl.start:
        raise ValueError(f"{branch} has {sl.stop - sl.start} channels; {index} is out of range")
    return sl.start + index


# -- kernel algebra ----------------------------------------------------------------------------
@dataclass
class _Map:
    """A linear, convolutional map from one value to the next: ``kernel (O, I, k, k)``, stride.

    ``depthwise``: ``kernel`` is ``(C, 1, k, k)`` and acts on each channel separately.
    """

    kernel: torch.Tensor
    stride: int = 1
    depthwise: bool = False


def _compose(later: torch.Tensor, earlier: _Map) -> torch.Tensor:
    """The kernel of ``later`` after ``earlier``.

    ``K[o, i, s * d + e] = sum_m later[o, m, d] * earlier[m, i, e]`` (summed over all ``d, e``).

    That is a transposed convolution of ``later`` (batch O, channels M) by ``earlier`` with the
    earlier map's stride ``s``; sizes compose as ``s * (k_later - 1) + k_earlier``.
    """
    if not earlier.depthwise:
        return F.conv_transpose2d(later, earlier.kernel, stride=earlier.stride)
    # Depthwise (a pool stand-in): the same sum, one kernel offset at a time. (A grouped
    # transposed convolution computes it too, but is very slow in float64 on the CPU.)
    s, (o, c, k2, _), k1 = earlier.stride, later.shape, earlier.kernel.shape[-1]
    span = s * (k2 - 1) + 1
    out = later.new_zeros(o, c, span + k1 - 1, span + k1 - 1)
    for i in range(k1):
        for j in range(k1):
            out[:, :, i : i + span : s, j : j + span : s] += later * earlier.kernel[:, 0, i, j].view(
                1, c, 1, 1
            )
    return out


def _pad_to(kernel: torch.Tensor, size: int) -> torch.Tensor:
    p = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, (p, p, p, p)) if p else kernel


def _add(total: torch.Tensor | None, part: torch.Tensor) -> torch.Tensor:
    if total is None:
        return part
    size = max(total.shape[-1], part.shape[-1])
    return _pad_to(total, size) + _pad_to(part, size)


def _check_pool(pool: str) -> str:
    pool = "centre" if pool == "center" else pool
    if pool not in ("average", "centre", "exclude", "replicate"):
        raise ValueError(
            f"pool={pool!r}: the max-pool stand-in is 'average', 'centre', 'exclude' or 'replicate'"
        )
    return pool


def _check_lrn(lrn) -> str | torch.Tensor:
    if isinstance(lrn, torch.Tensor):
        if lrn.dim() not in (1, 4) or (lrn.dim() == 4 and lrn.shape[0] != 1):
            raise ValueError(
                f"lrn as a tensor is one scale per channel (C,) or a frozen map (1, C, H, W); got {tuple(lrn.shape)}"
            )
        return lrn
    if isinstance(lrn, (int, float)) and not isinstance(lrn, bool):
        return torch.tensor([float(lrn)])
    if lrn not in ("scale", "identity"):
        raise ValueError(f"lrn={lrn!r}: the LRN stand-in is 'scale', 'identity', a number or a tensor of scales")
    return lrn


def _lrn_scales(lrn, channels: int, like: torch.Tensor) -> torch.Tensor:
    """The frozen LRN as ``(C,)`` per-channel scales (the kernel algebra needs one per channel)."""
    if isinstance(lrn, str):
        value = LRN_BIAS**-LRN_BETA if lrn == "scale" else 1.0
        return like.new_full((channels,), value)
    if lrn.dim() == 4:
        raise ValueError(
            "a per-position LRN map (1, C, H, W) has no single kernel: use expanded_weights_by_gradient "
            "or linearized_forward with it, or lrn_scale(..., reduce='mean') for one scale per channel"
        )
    scales = lrn.to(like)
    if scales.numel() == 1:
        scales = scales.expand(channels)
    if scales.numel() != channels:
        raise ValueError(f"lrn has {scales.numel()} scales for {channels} channels")
    return scales.reshape(channels)


def _lrn_map(lrn, channels: int, like: torch.Tensor) -> _Map:
    return _Map(_lrn_scales(lrn, channels, like).view(channels, 1, 1, 1).clone(), 1, depthwise=True)


def _lrn_same(x: torch.Tensor, lrn) -> torch.Tensor:
    """The frozen LRN as an operation on ``x: (N, C, H, W)``."""
    if isinstance(lrn, torch.Tensor) and lrn.dim() == 4:
        if lrn.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"the frozen LRN map is {tuple(lrn.shape)} but the LRN's input here is {tuple(x.shape)}: "
                "compute it (lrn_scale(..., reduce=None)) at the size this forward pass uses"
            )
        return x * lrn.to(x)
    return x * _lrn_scales(lrn, x.shape[1], x).view(1, -1, 1, 1)


def lrn_scale(model, images: torch.Tensor, layer: str = "localresponsenorm1", reduce: str | None = "mean"):
    """LRN's normalisation ``r = (bias + alpha * window_sum(x**2)) ** -beta`` at a given input.

    ``images: (N, 3, H, W)`` in ``[0, 1]``; ``layer``: ``"localresponsenorm0"`` or
    ``"localresponsenorm1"``. Returns ``(C,)`` (the mean over images and positions, for
    ``expanded_weights(..., lrn=...)``) or, with ``reduce=None``, the map ``(N, C, H', W')``
    (pass one image's ``[i:i+1]`` to :func:`linearized_forward` or
    :func:`expanded_weights_by_gradient`). Values lie in ``(0, bias ** -beta] = (0, 0.7071]``:
    ``0.7071`` where the local activity is small, less where it is large. No gradients.
    """

    inputs = {"localresponsenorm0": "maxpool0", "localresponsenorm1": "conv2d2"}
    if layer not in inputs:
        raise ValueError(f"layer must be one of {sorted(inputs)}, got {layer!r}")
    with torch.no_grad():
        x = activations(model, images, [inputs[layer]])[inputs[layer]]
        r = (LRN_BIAS + LRN_ALPHA * channel_window_sum(x * x, LRN_RADIUS)) ** -LRN_BETA
    if reduce is None:
        return r
    if reduce != "mean":
        raise ValueError(f"reduce must be 'mean' or None, got {reduce!r}")
    return r.mean(dim=(0, 2, 3))


def _pool_map(channels: int, stride: int, pool: str, like: torch.Tensor) -> _Map | None:
    """The linear stand-in of a 3x3 max pool (``None`` for ``"exclude"``)."""
    if pool == "exclude":
        return None
    k = torch.zeros(channels, 1, 3, 3, dtype=like.dtype, device=like.device)
    if pool == "average":
        k += 1.0 / 9.0
    elif pool == "replicate":
        k += 1.0
    else:
        k[:, :, 1, 1] = 1.0
    return _Map(k, stride, depthwise=True)


def _weight(model, name: str) -> torch.Tensor:
    return getattr(model, f"{name}_pre_relu_conv").weight


def _conv_map(model, name: str) -> _Map:
    conv = getattr(model, f"{name}_pre_relu_conv")
    return _Map(conv.weight, conv.stride[0])


def _branch_rows(model, block: str, sub: str, rows, pool: str) -> torch.Tensor:
    """Kernel from the block's input to ``rows`` of branch ``sub``'s pre-activation."""
    if sub == "pool":
        raise ValueError(f"{block}_pool is a max pool and has no weights; ask for {block}_pool_reduce")
    w = _weight(model, f"{block}_{sub}")[rows]
    if sub in ("1x1", "3x3_bottleneck", "5x5_bottleneck"):
        return w
    if sub in ("3x3", "5x5"):
        return _compose(w, _Map(_weight(model, f"{block}_{sub}_bottleneck")))
    if sub == "pool_reduce":
        stand_in = _pool_map(w.shape[1], 1, pool, w)
        if stand_in is None:  # "exclude": the only path is dropped
            return w.new_zeros(w.shape[0], w.shape[1], 3, 3)
        return _compose(w, stand_in)
    raise AssertionError(f"unknown branch {sub}")


def _through_block(model, block: str, later: torch.Tensor, pool: str) -> torch.Tensor:
    """Compose ``later`` (wrt the block's concatenated output) with the block's four branches."""
    total = None
    for branch, sl in branch_slices(block).items():
        sub = branch[len(block) + 1 :]
        part = _compose(later[:, sl], _Map(_weight(model, branch)))
        if sub in ("3x3", "5x5"):
            part = _compose(part, _Map(_weight(model, f"{branch}_bottleneck")))
        elif sub == "pool_reduce":
            stand_in = _pool_map(part.shape[1], 1, pool, part)
            if stand_in is None:
                continue
            part = _compose(part, stand_in)
        total = _add(total, part)
    return total


# -- endpoints ---------------------------------------------------------------------------------
@dataclass
class _End:
    """A source or target: a main-path node or a branch of a block, and channels (None: all)."""

    layer: str  # canonical name, without _pre_relu
    node: str | None  # main-path value (None for a branch)
    block: str | None = None
    sub: str | None = None
    channels: list[int] | None = None
    is_unit: bool = False


def _classify(model, spec) -> _End:
    """Parse a layer name, a unit, or a list of units of one layer."""
    if isinstance(spec, (list, tuple)) and not (
        len(spec) == 2 and isinstance(spec[1], int) and isinstance(spec[0], str)
    ):
        parsed = [parse_unit(u, model) for u in spec]
        layers = {l.removesuffix("_pre_relu") for l, _ in parsed}
        if len(layers) != 1:
            raise ValueError(f"units must come from one layer, got {sorted(layers)}")
        end = _classify(model, layers.pop())
        end.channels = [c for _, c in parsed]
        return end
    if isinstance(spec, tuple) or (isinstance(spec, str) and ":" in spec):
        layer, channel = parse_unit(spec, model)
        end = _classify(model, layer)
        end.channels, end.is_unit = [channel], True
        return end
    if not isinstance(spec, str):
        raise TypeError(f"expected a layer name or a unit like '3b:379', got {spec!r}")
    name = expand_short_name(spec.strip(), layer_channels_of(model)).removesuffix("_pre_relu")
    if not isinstance(model, InceptionV1):
        if name not in layer_channels_of(model):
            raise ValueError(
                f"unknown layer {name!r}; this model's layers are {list(layer_channels_of(model))}"
            )
        return _End(name, name)
    if name in _KIND:
        return _End(name, name)
    m = re.match(r"^(mixed\d[a-e])_(.+)$", name)
    if m and m.group(1) in _BLOCKS and m.group(2) in _SUBS:
        return _End(name, None, m.group(1), m.group(2))
    raise ValueError(
        f"unknown layer {spec!r}: use a main layer ({', '.join(n for n in _KIND if _KIND[n] != 'lrn')}) "
        "or a branch such as 'mixed3b_5x5' / 'mixed3b_5x5_bottleneck'"
    )


def _source_as_node(src: _End) -> tuple[str, list[int] | None, bool]:
    """A concatenated branch as a source is a slice of its block's output."""
    if src.node is not None:
        return src.node, src.channels, False
    if src.sub in _BRANCH_ORDER:
        sl = branch_slices(src.block)[src.layer]
        chans = (
            list(range(sl.start, sl.stop)) if src.channels is None else [sl.start + c for c in src.channels]
        )
        return src.block, chans, False
    return src.layer, src.channels, True  # a bottleneck or the block's pool: inside the block


def _target_rows(model, tgt: _End, pool: str) -> tuple[torch.Tensor, str]:
    """Kernel rows of the target units wrt the input of the target's node, and that input."""
    if tgt.node is not None:
        kind = _KIND[tgt.node]
        channels = tgt.channels if tgt.channels is not None else list(range(LAYER_CHANNELS[tgt.node]))
        if kind == "conv":
            return _weight(model, tgt.node)[channels], _INPUT[tgt.node]
        if kind != "block":
            raise ValueError(
                f"{tgt.node} is a {'max pool' if kind == 'pool' else 'normalisation'} "
                "and has no weights of its own"
            )
        groups: dict[str, list[tuple[int, int]]] = {}
        for pos, ch in enumerate(channels):
            branch, idx = branch_of((tgt.node, ch))
            groups.setdefault(branch, []).append((pos, idx))
        parts = {
            b: _branch_rows(model, tgt.node, b[len(tgt.node) + 1 :], [i for _, i in g], pool)
            for b, g in groups.items()
        }
        size = max(p.shape[-1] for p in parts.values())
        first = next(iter(parts.values()))
        rows = first.new_zeros(len(channels), first.shape[1], size, size)
        for b, g in groups.items():
            rows[[pos for pos, _ in g]] = _pad_to(parts[b], size)
        return rows, _INPUT[tgt.node]
    channels = tgt.channels if tgt.channels is not None else list(range(LAYER_CHANNELS[tgt.layer]))
    return _branch_rows(model, tgt.block, tgt.sub, channels, pool), _INPUT[tgt.block]


def _generic_weights(model, src: _End, tgt: _End) -> torch.Tensor:
    inputs = getattr(model, "layer_inputs", {})
    if inputs.get(tgt.layer) != src.layer:
        raise ValueError(
            f"{src.layer} -> {tgt.layer}: this model declares direct connections {inputs} "
            "(model.layer_inputs); only those are supported outside InceptionV1"
        )
    w = _weight(model, tgt.layer)
    return w if tgt.channels is None else w[tgt.channels]


def _shape_result(kernel: torch.Tensor, src_channels, tgt: _End, src_is_unit: bool) -> torch.Tensor:
    if src_channels is not None:
        kernel = kernel[:, src_channels]
    if src_is_unit:
        kernel = kernel[:, 0]
    if tgt.is_unit:
        kernel = kernel[0]
    return kernel.detach().clone()


def _path(src_node: str, target_node: str, pool: str, lrn="scale") -> list[str]:
    """The main-path values strictly between source and target, target side first (validated).

    ``lrn=None`` refuses paths through a local response normalisation (kept for callers that
    want the old behaviour); otherwise they are linearised (module docstring).
    """
    if _ORDER[src_node] >= _ORDER[target_node]:
        raise ValueError(f"source {src_node} does not come before target {target_node}")
    path, node = [], _INPUT[target_node]
    while node != src_node:
        if _KIND[node] == "lrn" and lrn is None:
            raise ValueError(
                f"the path from {src_node} to {target_node} crosses {node}, a local response "
                f"normalisation, which is not linear; start at or after it (e.g. from {node!r})"
            )
        if _KIND[node] == "pool" and pool == "exclude":
            raise ValueError(f"pool='exclude' drops {node}, the only path from {src_node} to {target_node}")
        path.append(node)
        node = _INPUT[node]
    return path


# -- public API --------------------------------------------------------------------------------
def expanded_weights(
    model, source, target, pool: PoolStandIn = "average", lrn: LrnStandIn = "scale"
) -> torch.Tensor:
    """Weights from ``source`` activations to ``target`` pre-activations, linearised.

    "Visualizing Weights", "Dealing with Indirect Interactions": the product of the weight
    matrices along every path, ReLUs as the identity, biases ignored, max pools replaced by the
    ``pool`` stand-in (see the module docstring). For directly connected layers these are the
    plain weights.

    Args:
        model: an :class:`InceptionV1` (or a model with ``layer_inputs``, e.g. a planted model;
            then only direct connections).
        source: a layer (``"mixed3a"``, ``"3a"``, ``"maxpool4"``, ``"mixed3b_5x5"``, or inside
            the target's block ``"mixed3b_5x5_bottleneck"`` / ``"mixed3b_pool"``) or a unit
            ``"3a:147"``.
        target: a layer with weights (``"mixed3b"``, ``"mixed3b_5x5"``, ``"conv2d2"``, ...),
            a unit ``"3b:379"``, or a list of units of one layer.
        pool: the max-pool stand-in, ``"average"``, ``"centre"``, ``"exclude"`` or
            ``"replicate"`` (module docstring).
        lrn: the frozen local response normalisation on paths through the stem:
            ``"scale"`` (its value at zero input, ``1/sqrt(2)``), ``"identity"``, or ``(C,)``
            per-channel scales (:func:`lrn_scale`).

    Returns ``(O, C, k, k)`` for a target layer (or list) and a source layer; the ``O``
    dimension is dropped for a single target unit and the ``C`` dimension for a source unit,
    so ``expanded_weights(model, "3a:147", "3b:379")`` is ``(5, 5)``. Units of one target of
    different sizes (branches) are zero-padded, centred, to the largest. Same dtype and
    device as the model's weights.
    """
    pool, lrn = _check_pool(pool), _check_lrn(lrn)
    src, tgt = _classify(model, source), _classify(model, target)
    with torch.no_grad():
        if not isinstance(model, InceptionV1):
            return _shape_result(_generic_weights(model, src, tgt), src.channels, tgt, src.is_unit)
        src_node, src_channels, inside = _source_as_node(src)
        if inside:  # a bottleneck (or the block's pool) feeds exactly one branch of its block
            wanted = _FEEDS[src.sub]
            feeds = f"{src.block}_{wanted}"
            if tgt.node == src.block and tgt.channels is not None:  # concatenated units
                branches = [branch_of((src.block, c)) for c in tgt.channels]
                if any(b != feeds for b, _ in branches):
                    raise ValueError(
                        f"{src.layer} only feeds {feeds} "
                        f"(channels {branch_slices(src.block)[feeds]} of {src.block})"
                    )
                rows = [i for _, i in branches]
            elif (tgt.block, tgt.sub) == (src.block, wanted):
                rows = tgt.channels if tgt.channels is not None else slice(None)
            else:
                raise ValueError(f"{src.layer} only feeds {feeds}; got target {tgt.layer}")
            return _shape_result(_weight(model, feeds)[rows], src_channels, tgt, src.is_unit)
        if src_node not in _KIND:
            raise ValueError(f"{source!r} is not a layer on the main path")
        path = _path(src_node, tgt.node or tgt.block, pool, lrn)
        kernel, _ = _target_rows(model, tgt, pool)
        for node in path:  # from the target back to the source
            kind = _KIND[node]
            if kind == "pool":
                kernel = _compose(kernel, _pool_map(kernel.shape[1], 2, pool, kernel))
            elif kind == "lrn":
                kernel = _compose(kernel, _lrn_map(lrn, kernel.shape[1], kernel))
            elif kind == "conv":
                kernel = _compose(kernel, _conv_map(model, node))
            else:
                kernel = _through_block(model, node, kernel, pool)
        return _shape_result(kernel, src_channels, tgt, src.is_unit)


def weights_between(
    model, source_unit: str, target_unit: str, pool: PoolStandIn = "average", lrn: LrnStandIn = "scale"
) -> torch.Tensor:
    """The ``(k, k)`` spatial kernel from one unit to another ("Zoom In", "Circuit 1").

    ``weights_between(model, "3a:147", "3b:379")`` is the 5x5 kernel of "Curve Circuits":
    positive entries where 3a:147 firing excites 3b:379's pre-activation, negative where it
    inhibits; row 0 is the top. Directly connected units give their conv weights; others give
    expanded weights (:func:`expanded_weights`, same ``pool`` stand-in).
    """
    for u in (source_unit, target_unit):
        if not (isinstance(u, tuple) or (isinstance(u, str) and ":" in u)):
            raise ValueError(
                f"weights_between takes two units like '3a:147' and '3b:379'; got {u!r} "
                "(for layers use expanded_weights)"
            )
    return expanded_weights(model, source_unit, target_unit, pool=pool, lrn=lrn)


def strongest_inputs(
    model, source: str, target_unit: str, n: int = 10, pool: PoolStandIn = "average"
) -> list[tuple[str, torch.Tensor]]:
    """The ``n`` source units with the largest weights (L2 norm of the kernel) into ``target_unit``.

    "Visualizing Weights", "Contextualizing Weights": fix the output unit and "pick the input
    channels with high magnitude weights". Returns ``[(unit, kernel (k, k)), ...]``, strongest first.
    """
    kernels = expanded_weights(model, source, target_unit, pool=pool)  # (C, k, k)
    layer = _classify(model, source).layer
    order = torch.argsort(kernels.flatten(1).norm(dim=1), descending=True)[:n]
    return [(format_unit(layer, int(c)), kernels[c]) for c in order]


@dataclass
class KernelRegions:
    """Where a ``(k, k)`` kernel is positive and where negative (see :func:`kernel_regions`).

    Attributes:
        total: the sum of all entries (what "excites or inhibits" alone would read).
        regions: sums over ``"top"``, ``"bottom"``, ``"left"``, ``"right"`` (the ``band``
            outermost rows or columns), ``"centre"`` (the middle entry, or the middle 3x3 for
            ``k >= 7``) and ``"surround"`` (everything but the centre).
        direction: degrees, counter-clockwise, 0 = right, 90 = up (the stimuli's convention):
            where the weights' first moment ``sum K[i, j] * (x_j, y_i)`` points, i.e. the side
            that is more positive than the opposite side; ``nan`` for a symmetric kernel.
        strength: the length of that moment divided by ``sum |K|`` (0: no side is favoured;
            at most ``(k - 1) / 2``, all weight at one edge).
        positive_centroid, negative_centroid: ``(x, y)`` offsets from the centre (y up) of the
            positive and of the negative weights; ``None`` when there are none.
    """

    total: float
    regions: dict[str, float]
    direction: float
    strength: float
    positive_centroid: tuple[float, float] | None
    negative_centroid: tuple[float, float] | None

    def sign(self, region: str) -> str:
        """``"+"``, ``"-"`` or ``"0"`` for a region (or ``"total"``)."""
        v = self.total if region == "total" else self.regions[region]
        return "+" if v > 0 else "-" if v < 0 else "0"

    def describe(self) -> str:
        """One line in words: the sign of each side, and the side that is most positive."""
        words = {"+": "excites", "-": "inhibits", "0": "is zero"}
        parts = [f"{words[self.sign(r)]} at the {r} ({self.regions[r]:+.3g})"
                 for r in ("top", "bottom", "left", "right", "centre")]  # fmt: skip
        if self.direction == self.direction:
            sides = ["right", "upper right", "top", "upper left", "left", "lower left", "bottom", "lower right"]
            side = sides[int(((self.direction + 22.5) % 360) // 45)]
            parts.append(f"most positive towards the {side} ({self.direction:.0f} deg, strength {self.strength:.2f})")
        return f"total {self.total:+.3g}; " + ", ".join(parts)


def kernel_regions(kernel: torch.Tensor, band: int | None = None) -> KernelRegions:
    """Which parts of a spatial kernel excite and which inhibit, not only its sum.

    "Zoom In" reads weights spatially: windows "excite the car detector at the top and inhibit
    at the bottom" ("Circuit 3: Cars in Superposition"); a high-low frequency detector gets
    opposite-signed weights on its two sides ("High-Low Frequency Detectors", "Construction").
    The sum of a kernel cannot say either. ``kernel: (k, k)`` (row 0 at the top, as
    :func:`expanded_weights` returns it), any real values; ``band``: rows/columns counted as
    "top"/"bottom"/"left"/"right" (default ``k // 2``, e.g. 2 of 5: the middle row is in
    neither). Returns a :class:`KernelRegions`.
    """
    k2 = kernel.detach().double().cpu()
    if k2.dim() != 2 or k2.shape[0] != k2.shape[1]:
        raise ValueError(f"kernel_regions takes one square (k, k) kernel, got shape {tuple(k2.shape)}")
    k = k2.shape[0]
    band = k // 2 if band is None else int(band)
    if not 1 <= band <= k:
        raise ValueError(f"band must be in 1..{k}, got {band}")
    c = (k - 1) / 2
    ys = (c - torch.arange(k, dtype=torch.float64)).view(-1, 1).expand(k, k)  # up is positive
    xs = (torch.arange(k, dtype=torch.float64) - c).view(1, -1).expand(k, k)
    half = 1 if k >= 7 else 0
    mid = slice(int(c) - half, int(c) + half + 1)
    centre = float(k2[mid, mid].sum()) if k % 2 else 0.0
    regions = {
        "top": float(k2[:band].sum()), "bottom": float(k2[k - band:].sum()),
        "left": float(k2[:, :band].sum()), "right": float(k2[:, k - band:].sum()),
        "centre": centre, "surround": float(k2.sum()) - centre,
    }  # fmt: skip
    mass = float(k2.abs().sum())
    mx, my = float((k2 * xs).sum()), float((k2 * ys).sum())
    moment = (mx * mx + my * my) ** 0.5
    if mass == 0 or moment <= 1e-12 * mass:
        direction, strength = float("nan"), 0.0
    else:
        import math

        direction, strength = math.degrees(math.atan2(my, mx)) % 360.0, moment / mass

    def centroid(w: torch.Tensor):
        total = float(w.sum())
        return None if total == 0 else (float((w * xs).sum()) / total, float((w * ys).sum()) / total)

    return KernelRegions(
        float(k2.sum()), regions, direction, strength, centroid(k2.clamp(min=0)), centroid((-k2).clamp(min=0))
    )


def describe_path(model, source: str, target: str, pool: PoolStandIn = "average") -> str:
    """In words, the linear path :func:`expanded_weights` multiplies out from source to target."""
    pool = _check_pool(pool)
    src, tgt = _classify(model, source), _classify(model, target)
    if not isinstance(model, InceptionV1):
        return f"{src.layer} -> {tgt.layer}: direct weights ({tgt.layer}_pre_relu_conv)"
    stand = {"average": "as a 3x3 average", "centre": "as its centre (identity)", "exclude": "dropped",
             "replicate": "with its 1x1 weight replicated over the 3x3 window"}[pool]  # fmt: skip
    src_node, _, inside = _source_as_node(src)
    if inside:
        return f"{src.layer} -> {src.block}_{_FEEDS[src.sub]} (direct weights)"

    def branch_words(block: str, sub: str) -> str:
        if sub in ("3x3", "5x5"):
            return f"{block}_{sub}_bottleneck (1x1 conv, ReLU as identity) -> {block}_{sub} ({sub} conv)"
        if sub == "pool_reduce":
            return f"{block}_pool (3x3 max pool {stand}) -> {block}_pool_reduce (1x1 conv)"
        return f"{block}_{sub} (1x1 conv)"

    steps = []
    if tgt.node is not None and _KIND.get(tgt.node) == "block" and tgt.channels is not None:
        branches = {branch_of((tgt.node, c))[0] for c in tgt.channels}
        last = "; ".join(branch_words(tgt.node, b[len(tgt.node) + 1 :]) for b in sorted(branches))
        node = _INPUT[tgt.node]
    elif tgt.node is not None:
        last = f"{tgt.node} ({'all four branches' if _KIND[tgt.node] == 'block' else 'conv'})"
        node = _INPUT[tgt.node]
    else:
        last, node = branch_words(tgt.block, tgt.sub), _INPUT[tgt.block]
    _path(src_node, tgt.node or tgt.block, pool)  # raises for paths expanded_weights refuses
    words = {"pool": f"3x3 stride-2 max pool {stand}", "block": "all four branches, ReLUs as identity",
             "lrn": "local response normalisation, frozen at zero input: x 1/sqrt(2)"}  # fmt: skip
    while node != src_node:
        kind = _KIND[node]
        steps.append(f"{node} ({words.get(kind, kind)})")
        node = _INPUT[node]
    return " -> ".join([src.layer, *reversed(steps), last])


# -- the brute-force definition ----------------------------------------------------------------
def _conv_same(x: torch.Tensor, weight: torch.Tensor, stride: int = 1) -> torch.Tensor:
    return F.conv2d(pad_same(x, weight.shape[-1], stride), weight, stride=stride)


def _pool_same(x: torch.Tensor, stride: int, pool: str) -> torch.Tensor:
    """The max-pool stand-in as an operation: 3x3 windows with TensorFlow "SAME" (zero) padding."""
    padded = pad_same(x, 3, stride)
    if pool in ("average", "replicate"):
        return F.avg_pool2d(padded, 3, stride) * (9.0 if pool == "replicate" else 1.0)
    out_h, out_w = -(-x.shape[-2] // stride), -(-x.shape[-1] // stride)
    centres = padded[..., 1::stride, 1::stride][..., :out_h, :out_w]  # each window's centre
    return centres if pool == "centre" else torch.zeros_like(centres)


def _branch_forward(model, block: str, sub: str, x: torch.Tensor, pool: str) -> torch.Tensor:
    if sub in ("3x3", "5x5"):
        x = _conv_same(x, _weight(model, f"{block}_{sub}_bottleneck"))
    elif sub == "pool_reduce":
        if pool == "exclude":
            w = _weight(model, f"{block}_pool_reduce")
            return x.new_zeros(x.shape[0], w.shape[0], *x.shape[-2:])
        x = _pool_same(x, 1, pool)
    elif sub == "pool":
        raise ValueError(f"{block}_pool is a max pool and has no pre-activation of its own")
    return _conv_same(x, _weight(model, f"{block}_{sub}"))


def linearized_forward(
    model, x: torch.Tensor, source: str, target: str, pool: PoolStandIn = "average", lrn: LrnStandIn = "scale"
) -> torch.Tensor:
    """Run InceptionV1 made linear from ``source`` activations to ``target`` pre-activations.

    The network of the module docstring, written out as a forward pass (ReLUs removed, biases
    dropped, max pools replaced by the ``pool`` stand-in with TensorFlow "SAME" padding, local
    response normalisations by ``x * r`` with the frozen ``lrn`` scale: a name, ``(C,)`` or a
    per-position map ``(1, C, H, W)`` from :func:`lrn_scale`), so
    its gradients are the expanded weights by definition. ``x: (N, C_source, H, W)``; returns
    ``(N, C_target, H', W')``. Slow and obviously correct: the reference that
    :func:`expanded_weights` is tested against.
    """
    pool, lrn = _check_pool(pool), _check_lrn(lrn)
    src, tgt = _classify(model, source), _classify(model, target)
    if not isinstance(model, InceptionV1):
        w = _generic_weights(model, src, tgt)
        return F.conv2d(x, w, padding=w.shape[-1] // 2)
    if src.channels is not None or tgt.channels is not None:
        raise ValueError("linearized_forward takes layers, not units")
    if src.node is None and src.sub not in _BRANCH_ORDER:  # a bottleneck or pool inside the block
        wanted = _FEEDS[src.sub]
        if (tgt.block, tgt.sub) != (src.block, wanted):
            raise ValueError(f"{src.layer} only feeds {src.block}_{wanted}")
        return _conv_same(x, _weight(model, tgt.layer))
    if src.node is None:
        raise ValueError("as a source give the whole block (e.g. 'mixed3b'), not one of its branches")
    target_node = tgt.node or tgt.block
    for node in [*reversed(_path(src.node, target_node, pool, lrn)), target_node]:
        kind = _KIND[node]
        if kind == "pool":
            x = _pool_same(x, 2, pool)
        elif kind == "lrn":
            x = _lrn_same(x, lrn)
        elif kind == "conv":
            conv = getattr(model, f"{node}_pre_relu_conv")
            x = _conv_same(x, conv.weight, conv.stride[0])
        elif kind == "block" and node == target_node and tgt.node is None:
            x = _branch_forward(model, node, tgt.sub, x, pool)
        elif kind == "block":
            x = torch.cat([_branch_forward(model, node, sub, x, pool) for sub in _BRANCH_ORDER], dim=1)
        else:
            raise ValueError(f"{node} has no weights of its own")
    return x


def _footprint(model, src: _End, tgt: _End) -> tuple[int, list[str]]:
    """Kernel size of the expanded weights and the stride-2 pools on the path (late to early)."""
    sizes = {"1x1": 1, "3x3_bottleneck": 1, "5x5_bottleneck": 1, "3x3": 3, "5x5": 5, "pool_reduce": 3}
    if tgt.node is not None and _KIND[tgt.node] == "conv":
        k, node = getattr(model, f"{tgt.node}_pre_relu_conv").kernel_size[0], _INPUT[tgt.node]
    elif tgt.node is not None:
        k, node = (
            max(sizes[branch_of((tgt.node, c))[0].split("_", 1)[1]] for c in tgt.channels),
            _INPUT[tgt.node],
        )
    else:
        k, node = sizes[tgt.sub], _INPUT[tgt.block]
    pools = []
    src_node = _source_as_node(src)[0]
    while node != src_node:
        kind = _KIND[node]
        if kind == "pool":
            k, pools = 2 * (k - 1) + 3, pools + [node]
        elif kind == "conv":
            k += getattr(model, f"{node}_pre_relu_conv").kernel_size[0] - 1
        elif kind == "block":
            k += 4
        node = _INPUT[node]
    return k, pools


def expanded_weights_by_gradient(
    model,
    source: str,
    target_unit: str,
    pool: PoolStandIn = "average",
    size: int | None = None,
    lrn: LrnStandIn = "scale",
) -> torch.Tensor:
    """Expanded weights by their definition: the gradient of the linearised network.

    Builds a source activation map ``(1, C, size, size)``, runs :func:`linearized_forward` to
    the target's layer, and takes the gradient of the target unit's pre-activation at the
    centre position ``((H' - 1) // 2, (W' - 1) // 2)`` with respect to the whole map; the kernel
    is the window around that position's anchor (across a stride-2 pool: the centre of its
    window). ``source`` is a main-path layer (``"mixed3a"``) or one of its units, or a
    bottleneck of the target's block. Returns ``(C, k, k)`` (``(k, k)`` for a source unit),
    equal to :func:`expanded_weights` up to rounding. Raises if any gradient falls outside the
    window (the kernel would be wrong). ``lrn`` as in :func:`linearized_forward`; a per-position
    map must match the LRN's size for a source map of ``size``.
    """
    pool, lrn = _check_pool(pool), _check_lrn(lrn)
    src, tgt = _classify(model, source), _classify(model, target_unit)
    if not tgt.is_unit:
        raise ValueError("expanded_weights_by_gradient takes one target unit, e.g. '3b:379'")
    channel = tgt.channels[0]
    pools: list[str] = []
    if not isinstance(model, InceptionV1):
        src_name, tgt_name = src.layer, tgt.layer
        k = _weight(model, tgt.layer).shape[-1]
    elif src.node is None and src.sub not in _BRANCH_ORDER:  # a bottleneck or the block's pool
        if tgt.node is not None:  # a concatenated unit: its branch
            branch, channel = branch_of((tgt.node, channel))
            tgt = _classify(model, f"{branch}:{channel}")
        src_name, tgt_name = src.layer, tgt.layer
        k = _weight(model, tgt.layer).shape[-1]
    else:
        src_name, tgt_name = _source_as_node(src)[0], tgt.layer
        _path(src_name, tgt.node or tgt.block, pool, lrn)  # refuse what expanded_weights refuses
        k, pools = _footprint(model, src, tgt)
    stride = 2 ** len(pools)
    n = size or (k + 4 * stride + 8)
    w = next(model.parameters())
    x = torch.zeros(
        1, layer_channels_of(model)[src_name], n, n, dtype=w.dtype, device=w.device, requires_grad=True
    )
    with torch.enable_grad():
        y = linearized_forward(model, x, src_name, tgt_name, pool=pool, lrn=lrn)
        row, col = (y.shape[-2] - 1) // 2, (y.shape[-1] - 1) // 2
        (grad,) = torch.autograd.grad(y[0, channel, row, col], x)
    # Map the output position back to the source grid through each stride-2 "SAME" pool: output
    # q of a pool over m inputs is the window [2q - before, 2q - before + 2], centred at 2q - before + 1.
    sizes = [n]
    for _ in pools:
        sizes.append(-(-sizes[-1] // 2))
    for m in reversed(sizes[:-1]):
        before = max((-(-m // 2) - 1) * 2 + 3 - m, 0) // 2
        row, col = 2 * row - before + 1, 2 * col - before + 1
    h = (k - 1) // 2
    if row - h < 0 or col - h < 0 or row + h >= n or col + h >= n:
        raise ValueError(f"size={n} is too small for a {k}x{k} kernel; pass a larger size")
    window = grad[0, :, row - h : row + h + 1, col - h : col + h + 1]
    rest = grad.clone()
    rest[0, :, row - h : row + h + 1, col - h : col + h + 1] = 0
    if bool(rest.any()):
        raise AssertionError(
            "the gradient reaches outside the expected window: the anchor or kernel size is wrong"
        )
    src_channels = src.channels
    if isinstance(model, InceptionV1) and src.node is None and src.sub in _BRANCH_ORDER:
        src_channels = _source_as_node(src)[1]
    if src_channels is not None:
        window = window[src_channels]
    return (window[0] if src.is_unit else window).detach()


# -- NMF ---------------------------------------------------------------------------------------
def _nndsvd(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NNDSVD start (Boutsidis & Gallopoulos, 2008) with zeros filled by the mean ("nndsvda")."""
    u, s, vh = torch.linalg.svd(x, full_matrices=False)
    w = x.new_zeros(x.shape[0], k)
    h = x.new_zeros(k, x.shape[1])
    for j in range(min(k, len(s))):
        a, b = u[:, j], vh[j]
        if j == 0:
            a, b, m = a.abs(), b.abs(), 1.0
        else:
            ap, an, bp, bn = a.clamp(min=0), (-a).clamp(min=0), b.clamp(min=0), (-b).clamp(min=0)
            mp, mn = ap.norm() * bp.norm(), an.norm() * bn.norm()
            a, b, m = (
                (ap / ap.norm(), bp / bp.norm(), mp)
                if mp > mn
                else (an / an.norm().clamp(min=1e-30), bn / bn.norm().clamp(min=1e-30), mn)
            )
        w[:, j] = (s[j] * m).sqrt() * a
        h[j] = (s[j] * m).sqrt() * b
    fill = x.mean()
    return w.masked_fill(w == 0, fill), h.masked_fill(h == 0, fill)


def nmf(
    x: torch.Tensor,
    k: int,
    n_iter: int = 1000,
    init: Literal["nndsvda", "random"] = "nndsvda",
    seed: int = 0,
    eps: float = 1e-12,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative matrix factorisation ``x ~ w @ h`` by multiplicative updates (Lee & Seung).

    ``x: (n, m)`` non-negative; returns ``w: (n, k)`` and ``h: (k, m)``, both non-negative,
    each row of ``h`` scaled to unit L2 norm (the scale moved into ``w``). Minimises the
    Frobenius error ``|x - w h|``. ``init="nndsvda"`` (default) starts from the SVD
    (deterministic; far less prone to poor local minima than a random start),
    ``init="random"`` from uniform noise seeded by ``seed``. Runs in float64 on ``x``'s device
    (float32 on mps) and returns ``x``'s dtype.
    """
    if x.dim() != 2:
        raise ValueError(f"nmf factors a matrix (n, m); got shape {tuple(x.shape)}")
    if bool((x < 0).any()):
        raise ValueError("nmf needs non-negative data; for signed weights use nmf_weights (one-sided NMF)")
    if not 1 <= k <= min(x.shape):
        raise ValueError(f"k must be between 1 and min(n, m) = {min(x.shape)}, got {k}")
    work = torch.float32 if x.device.type == "mps" else torch.float64
    data = x.detach().to(work)
    if init == "nndsvda":
        w, h = _nndsvd(data.cpu(), k)
        w, h = w.to(data.device), h.to(data.device)
    elif init == "random":
        gen = torch.Generator().manual_seed(seed)
        scale = (data.mean() / k).sqrt().clamp(min=eps).cpu()
        w = (torch.rand(data.shape[0], k, generator=gen, dtype=work) * scale).to(data.device)
        h = (torch.rand(k, data.shape[1], generator=gen, dtype=work) * scale).to(data.device)
    else:
        raise ValueError(f"init={init!r}: use 'nndsvda' or 'random'")
    for _ in range(n_iter):
        h *= (w.T @ data) / (w.T @ w @ h + eps)
        w *= (data @ h.T) / (w @ (h @ h.T) + eps)
    norms = h.norm(dim=1, keepdim=True).clamp(min=eps)
    return (w * norms.T).to(x.dtype), (h / norms).to(x.dtype)


@dataclass
class WeightFactors:
    """One-sided NMF of weights ("Visualizing Weights", "Aside: One Simple Trick").

    ``weights ~ einsum("...khw,kc->...chw", spatial, channels)``.

    Attributes:
        spatial: ``(O, k, kh, kw)`` (or ``(k, kh, kw)``) signed: how much each factor excites
            (> 0) or inhibits (< 0) the output unit at each position.
        channels: ``(k, C)`` non-negative, unit L2 norm rows: the mix of input channels in each
            factor (the input activations are non-negative, so only this side is constrained).
        error: relative Frobenius error of the reconstruction, ``|W - W_hat| / |W|``.
    """

    spatial: torch.Tensor
    channels: torch.Tensor
    error: float

    def reconstruct(self) -> torch.Tensor:
        return torch.einsum("...khw,kc->...chw", self.spatial, self.channels)


def nmf_weights(
    weights: torch.Tensor, k: int = 3, n_iter: int = 1000, init: str = "nndsvda", seed: int = 0
) -> WeightFactors:
    """Collapse the input channels of conv weights to ``k`` factors by one-sided NMF.

    "Visualizing Weights" ("Aside: One Simple Trick", "Dimensionality and Scale") reduces a
    unit's ``[width, height, input_channels]`` weights to a few factors "with one-sided NMF":
    only the channel factors are non-negative. Done here with ordinary NMF on the positive and
    negative parts stacked, ``[relu(W); relu(-W)]``, whose position factors subtract back to
    signed ones. ``weights: (C, kh, kw)`` for one unit or ``(O, C, kh, kw)``; with ``k = 3`` the
    factors can be shown as the red, green and blue of an image.
    """
    single = weights.dim() == 3
    w4 = weights.unsqueeze(0) if single else weights
    if w4.dim() != 4:
        raise ValueError(f"expected weights (C, kh, kw) or (O, C, kh, kw), got {tuple(weights.shape)}")
    o, c, kh, kw = w4.shape
    rows = w4.detach().permute(0, 2, 3, 1).reshape(-1, c)  # (O*kh*kw, C)
    stacked = torch.cat([rows.clamp(min=0), (-rows).clamp(min=0)])
    w, h = nmf(stacked, k, n_iter=n_iter, init=init, seed=seed)
    signed = w[: len(rows)] - w[len(rows) :]
    error = float((rows - signed @ h).norm() / rows.norm().clamp(min=1e-30))
    spatial = signed.reshape(o, kh, kw, k).permute(0, 3, 1, 2).contiguous()
    return WeightFactors(spatial[0] if single else spatial, h, error)


