"""InceptionV1 (GoogLeNet) as the Circuits thread used it: Lucid's "inception5h" graph.

Every value the papers talk about is reachable by the name they use (``conv2d0``, ``mixed4a``,
``mixed4a_pre_relu``, ``mixed4a_3x3_bottleneck``, ...): the forward pass runs through one
:class:`HookPoint` per name, so ``model.hook_points["mixed4a"]`` takes ordinary PyTorch forward
hooks, and :meth:`InceptionV1.named_forward` yields the values in order and stops as soon as the
caller has what it needs.

Parameter names and shapes equal those of the public ``inception5h.pth`` file
(``data/inception5h_state_dict.json``), so that file loads with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import conv2d_same, local_response_norm, max_pool_same
from .named import HookPoint, HookPoints, NamedModel, check_images

__all__ = [
    "BLOCKS", "LAYER_CHANNELS", "LAYER_NAMES", "MAIN_LAYERS", "NUM_LOGITS", "PIXEL_OFFSET", "PIXEL_SCALE",
    "POOL_BEFORE", "RELUS", "STEM", "HookPoint", "HookPoints", "InceptionBlock", "InceptionV1", "check_images",
]  # fmt: skip

# The TensorFlow graph has no preprocessing of its own: it is fed pixels in [-117, 138],
# ``image01 * 255 - 117``, by Lucid (``image_value_range = (-117, 255 - 117)``) and by the
# TensorFlow tutorial that released the weights (``imagenet_mean = 117``). This model does it
# first thing in :meth:`InceptionV1.named_forward`, so it takes images in [0, 1].
PIXEL_SCALE = 255.0
PIXEL_OFFSET = 117.0
NUM_LOGITS = 1008


@dataclass(frozen=True)
class InceptionBlock:
    """Channel counts of one inception block ``mixedXY`` (see the spec's block diagram)."""

    name: str
    in_channels: int
    c1x1: int
    c3x3_bottleneck: int
    c3x3: int
    c5x5_bottleneck: int
    c5x5: int
    pool_reduce: int

    @property
    def out_channels(self) -> int:
        return self.c1x1 + self.c3x3 + self.c5x5 + self.pool_reduce

    def branches(self) -> list[tuple[str, int, int, int]]:
        """``(suffix, in, out, kernel)`` of each conv, in the weight file's order."""
        n, i = self.name, self.in_channels
        return [
            (f"{n}_1x1", i, self.c1x1, 1),
            (f"{n}_3x3_bottleneck", i, self.c3x3_bottleneck, 1),
            (f"{n}_5x5_bottleneck", i, self.c5x5_bottleneck, 1),
            (f"{n}_pool_reduce", i, self.pool_reduce, 1),
            (f"{n}_3x3", self.c3x3_bottleneck, self.c3x3, 3),
            (f"{n}_5x5", self.c5x5_bottleneck, self.c5x5, 5),
        ]


BLOCKS = [
    InceptionBlock("mixed3a", 192, 64, 96, 128, 16, 32, 32),
    InceptionBlock("mixed3b", 256, 128, 128, 192, 32, 96, 64),
    InceptionBlock("mixed4a", 480, 192, 96, 204, 16, 48, 64),
    InceptionBlock("mixed4b", 508, 160, 112, 224, 24, 64, 64),
    InceptionBlock("mixed4c", 512, 128, 128, 256, 24, 64, 64),
    InceptionBlock("mixed4d", 512, 112, 144, 288, 32, 64, 64),
    InceptionBlock("mixed4e", 528, 256, 160, 320, 32, 128, 128),
    InceptionBlock("mixed5a", 832, 256, 160, 320, 48, 128, 128),
    InceptionBlock("mixed5b", 832, 384, 192, 384, 48, 128, 128),
]
# A stride-2 max pool comes before these blocks (named as in the original graph).
POOL_BEFORE = {"mixed4a": "maxpool4", "mixed5a": "maxpool10"}

# Stem convolutions: (name, in, out, kernel, stride).
STEM = [("conv2d0", 3, 64, 7, 2), ("conv2d1", 64, 64, 1, 1), ("conv2d2", 64, 192, 3, 1)]


def _layer_channels() -> dict[str, int]:
    """Channels of every named value, in the order the forward pass produces them."""
    ch: dict[str, int] = {}
    for name, _, out, _, _ in STEM:
        ch[f"{name}_pre_relu"] = ch[name] = out
        if name == "conv2d0":
            ch["maxpool0"] = ch["localresponsenorm0"] = out
    ch["localresponsenorm1"] = ch["maxpool1"] = 192
    for block in BLOCKS:
        if block.name in POOL_BEFORE:
            ch[POOL_BEFORE[block.name]] = block.in_channels
        n = block.name
        for sub in ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5"):
            out = getattr(block, "c" + sub)
            ch[f"{n}_{sub}_pre_relu"] = ch[f"{n}_{sub}"] = out
        ch[f"{n}_pool"] = block.in_channels
        ch[f"{n}_pool_reduce_pre_relu"] = ch[f"{n}_pool_reduce"] = block.pool_reduce
        ch[f"{n}_pre_relu"] = ch[n] = block.out_channels
    ch["avgpool0"] = 1024
    ch["softmax2_pre_activation"] = ch["softmax2"] = NUM_LOGITS
    return ch


LAYER_CHANNELS = _layer_channels()
LAYER_NAMES = list(LAYER_CHANNELS)
# The spec's table: the main path, without branches and pre-ReLU values.
MAIN_LAYERS = [
    "conv2d0", "maxpool0", "localresponsenorm0", "conv2d1", "conv2d2", "localresponsenorm1",
    "maxpool1", "mixed3a", "mixed3b", "maxpool4", "mixed4a", "mixed4b", "mixed4c", "mixed4d",
    "mixed4e", "maxpool10", "mixed5a", "mixed5b", "avgpool0", "softmax2_pre_activation",
    "softmax2",
]  # fmt: skip


def _relus() -> dict[str, str]:
    """Every convolution's ReLU: ``{"conv2d0": "conv2d0_pre_relu", "mixed3a_3x3": ...}``.

    Block outputs (``mixed3a``) are concatenations of their branches' ReLUs, so they are not
    listed; their gradient flows through the branch ReLUs.
    """
    names = [name for name, *_ in STEM] + [n for block in BLOCKS for n, *_ in block.branches()]
    return {name: f"{name}_pre_relu" for name in LAYER_NAMES if name in names}


RELUS = _relus()


class InceptionV1(NamedModel):
    """InceptionV1 with the inception5h weight layout; input images in [0, 1].

    ``forward(images)`` maps ``images: (N, 3, H, W)`` float in [0, 1] to logits ``(N, 1008)``
    (index 0 is ``dummy``; see :func:`circuitscope.labels`). Every convolutional layer works
    at any size; the classifier needs ``H, W >= 193`` (mixed5b at least 7x7).

    Attributes:
        layer_names: every name :meth:`named_forward` yields, in order.
        layer_channels: channels of each named value.
        weights_state: ``"real"`` (the verified published file), ``"unverified"`` (a file of
            the right format but other bytes, accepted by the caller) or ``"synthetic"`` (the
            stand-in, or no loaded weights: a bare ``InceptionV1()`` is random initialisation).
            See :mod:`circuitscope.core.provenance`.
        is_synthetic: ``weights_state == "synthetic"`` (read-only view kept for older code).
        weights_source: a short human-readable account of where the weights came from.
    """

    layer_names = LAYER_NAMES
    layer_channels = LAYER_CHANNELS
    relus = RELUS

    def __init__(self) -> None:
        super().__init__()
        for name, cin, cout, k, stride in STEM:
            self.add_module(f"{name}_pre_relu_conv", nn.Conv2d(cin, cout, k, stride=stride))
        for block in BLOCKS:
            for name, cin, cout, k in block.branches():
                self.add_module(f"{name}_pre_relu_conv", nn.Conv2d(cin, cout, k))
        self.softmax2_pre_activation_matmul = nn.Linear(1024, NUM_LOGITS)
        self.requires_grad_(False)  # input optimisation must never build weight gradients
        # Random init is no one's learned features: it must never be stamped as InceptionV1's.
        self.weights_state = "synthetic"
        self.weights_source = "random initialisation (no weights loaded)"

    @property
    def is_synthetic(self) -> bool:
        """True unless real or unverified weights were loaded (derived from :attr:`weights_state`)."""
        return self.weights_state == "synthetic"

    @is_synthetic.setter
    def is_synthetic(self, value: bool) -> None:
        # Older code marks models by this flag: True means synthetic; False vouches for nothing
        # more than "some file was loaded", so it is "unverified" unless already "real".
        if value:
            self.weights_state = "synthetic"
        elif self.weights_state == "synthetic":
            self.weights_state = "unverified"

    # -- the forward pass, as a stream of named values --------------------------------------
    def named_forward(self, images: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(name, value)`` for every name in :attr:`layer_names`, in order.

        ``images: (N, 3, H, W)`` float in [0, 1]. Values are ``(N, C, H', W')`` tensors (logits
        and softmax ``(N, 1008)``). Stop iterating to stop computing: nothing after the last
        value taken is evaluated.
        """
        check_images(images)
        x = images * PIXEL_SCALE - PIXEL_OFFSET
        emit = self.emit
        for name, *_ in STEM:
            _, pre = item = emit(f"{name}_pre_relu", conv2d_same(x, self._conv(name)))
            yield item
            _, x = item = emit(name, F.relu(pre))
            yield item
            if name == "conv2d0":
                _, x = item = emit("maxpool0", max_pool_same(x))
                yield item
                _, x = item = emit("localresponsenorm0", local_response_norm(x))
                yield item
        _, x = item = emit("localresponsenorm1", local_response_norm(x))
        yield item
        _, x = item = emit("maxpool1", max_pool_same(x))
        yield item
        for block in BLOCKS:
            if block.name in POOL_BEFORE:
                _, x = item = emit(POOL_BEFORE[block.name], max_pool_same(x))
                yield item
            x = yield from self._block(block, x, emit)
        # The original graph pools 7x7 VALID; at inputs above 224 px several positions remain,
        # and averaging them keeps the classifier linear in the pooled features.
        if min(x.shape[-2:]) < 7:
            raise ValueError(
                f"the classifier needs mixed5b to be at least 7x7, got {tuple(x.shape[-2:])}: "
                "use images of at least 193x193 pixels (224 is the training size); "
                "every layer up to mixed5b works at any size"
            )
        _, pooled = item = emit("avgpool0", F.avg_pool2d(x, 7, stride=1))
        yield item
        logits = self.softmax2_pre_activation_matmul(pooled.mean(dim=(-2, -1)))
        _, logits = item = emit("softmax2_pre_activation", logits)
        yield item
        yield emit("softmax2", F.softmax(logits, dim=-1))

    def _conv(self, name: str) -> nn.Conv2d:
        return getattr(self, f"{name}_pre_relu_conv")

    def _block(self, block: InceptionBlock, x: torch.Tensor, emit):
        """Yield the named values of one inception block; return its output."""
        n = block.name
        pre_relus, outs = [], []

        def conv_relu(sub: str, inp: torch.Tensor):
            _, pre = item = emit(f"{n}_{sub}_pre_relu", conv2d_same(inp, self._conv(f"{n}_{sub}")))
            yield item
            _, out = item = emit(f"{n}_{sub}", F.relu(pre))
            yield item
            return pre, out

        pre, out = yield from conv_relu("1x1", x)
        pre_relus.append(pre), outs.append(out)
        for size in ("3x3", "5x5"):
            _, bottleneck = yield from conv_relu(f"{size}_bottleneck", x)
            pre, out = yield from conv_relu(size, bottleneck)
            pre_relus.append(pre), outs.append(out)
        _, pooled = item = emit(f"{n}_pool", max_pool_same(x, 3, 1))
        yield item
        pre, out = yield from conv_relu("pool_reduce", pooled)
        pre_relus.append(pre), outs.append(out)
        yield emit(f"{n}_pre_relu", torch.cat(pre_relus, dim=1))
        _, out = item = emit(n, torch.cat(outs, dim=1))
        yield item
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1008)`` for ``images: (N, 3, H, W)`` in [0, 1]."""
        return self.run_to(images, ["softmax2_pre_activation"])["softmax2_pre_activation"]

    def extra_repr(self) -> str:
        return f"weights ({self.weights_state}): {self.weights_source}"
