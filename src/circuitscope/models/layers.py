"""The TensorFlow operations of the original InceptionV1 graph, in PyTorch.

The Circuits thread's model ("inception5h") was a TensorFlow graph. Two of its operations do not
match PyTorch's defaults, so they are written out here:

* "SAME" padding is computed from the input size at run time, with the odd pixel on the
  right/bottom (PyTorch's ``padding="same"`` is symmetric and refuses strides > 1).
* Local response normalisation divides by ``(bias + alpha * sum of squares) ** beta``, where
  PyTorch's ``local_response_norm`` divides ``alpha`` by the window size.

See ``shared/specs/inceptionv1.md`` for the facts these implement.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# LRN constants read from the original graph (depth_radius, bias, alpha, beta).
LRN_RADIUS = 5
LRN_BIAS = 2.0
LRN_ALPHA = 1e-4
LRN_BETA = 0.5


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) for one spatial dimension.

    ``out = ceil(size / stride)``; the total padding makes ``out`` windows fit, and the extra
    pixel of an odd total goes after (right or bottom). ``same_padding(224, 7, 2) == (2, 3)``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad ``x: (N, C, H, W)`` for a square ``kernel``/``stride`` window as TensorFlow "SAME" does."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def conv2d_same(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """Apply ``conv`` (built with ``padding=0``) with "SAME" zero padding."""
    return conv(pad_same(x, conv.kernel_size[0], conv.stride[0]))


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """Max pool with "SAME" padding; the padding is -inf so it never wins the max."""
    return F.max_pool2d(pad_same(x, kernel, stride, value=float("-inf")), kernel, stride)


def local_response_norm(
    x: torch.Tensor,
    radius: int = LRN_RADIUS,
    bias: float = LRN_BIAS,
    alpha: float = LRN_ALPHA,
    beta: float = LRN_BETA,
) -> torch.Tensor:
    """TensorFlow's LRN over channels of ``x: (N, C, H, W)``.

    ``out[c] = x[c] / (bias + alpha * sum_{j=c-r..c+r} x[j]**2) ** beta``; the window is clipped
    at the first and last channel (zero padding of the squares gives exactly that).
    """
    # The window sums as a 1x1 conv with a band matrix: several times faster than pooling over
    # channels, and the band's edges clip the window at the first and last channel.
    idx = torch.arange(x.shape[1], device=x.device)
    band = ((idx[:, None] - idx[None, :]).abs() <= radius).to(x.dtype)[:, :, None, None]
    sums = F.conv2d(x.pow(2), band)
    return x / (bias + alpha * sums).pow(beta)
