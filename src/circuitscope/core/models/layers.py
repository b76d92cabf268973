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
from torch.autograd.function import once_differentiable

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
    (kernel,), (stride,) = conv.kernel_size[:1], conv.stride[:1]
    rows, cols = same_padding(x.shape[-2], kernel, stride), same_padding(x.shape[-1], kernel, stride)
    if rows[0] == rows[1] and cols[0] == cols[1]:
        # Symmetric: let the convolution pad (no padded copy of x, none of its gradient).
        return F.conv2d(x, conv.weight, conv.bias, conv.stride, (rows[0], cols[0]))
    return conv(pad_same(x, kernel, stride))


def max_pool_same(x: torch.Tensor, kernel: int = 3, stride: int = 2) -> torch.Tensor:
    """Max pool with "SAME" padding; the padding is -inf so it never wins the max."""
    rows, cols = same_padding(x.shape[-2], kernel, stride), same_padding(x.shape[-1], kernel, stride)
    if rows[0] == rows[1] and cols[0] == cols[1] and 2 * max(rows[0], cols[0]) <= kernel:
        # Symmetric: max_pool2d's own padding is -inf (and allowed up to half the window).
        return F.max_pool2d(x, kernel, stride, (rows[0], cols[0]))
    if rows[0] == cols[0] == 0 and all(
        _ceil_mode_size(n, kernel, stride) == -(-n // stride) for n in x.shape[-2:]
    ):
        # Padding only after: ceil_mode's last window runs off the end the same way.
        return F.max_pool2d(x, kernel, stride, ceil_mode=True)
    return F.max_pool2d(pad_same(x, kernel, stride, value=float("-inf")), kernel, stride)


def _ceil_mode_size(n: int, kernel: int, stride: int) -> int:
    """Output length of an unpadded ``ceil_mode`` pool over ``n`` positions."""
    return -(-(n - kernel) // stride) + 1 if n >= kernel else 0


def channel_window_sum(x: torch.Tensor, radius: int) -> torch.Tensor:
    """``out[:, c] = sum_{j=c-r..c+r} x[:, j]`` of ``x: (N, C, H, W)``, clipped at the ends.

    A 1x1 conv with a 0/1 band matrix: several times faster than pooling over channels, and
    the band's edges clip the window. The band is symmetric, so this map is its own adjoint.
    """
    idx = torch.arange(x.shape[1], device=x.device)
    band = ((idx[:, None] - idx[None, :]).abs() <= radius).to(x.dtype)[:, :, None, None]
    return F.conv2d(x, band)


class _LocalResponseNorm(torch.autograd.Function):
    """LRN with a hand-written backward: autograd's graph of the formula makes about fifteen
    full-size temporaries per call, this makes six (the layer was a large part of a render step).

    ``y = x * r`` with ``r = d ** -beta`` and ``d = bias + alpha * window_sum(x ** 2)``, so
    ``dL/dx = g * r - 2 alpha beta * x * window_sum(g * y / d)``.
    """

    @staticmethod
    def forward(ctx, x, radius: int, bias: float, alpha: float, beta: float):
        d = channel_window_sum(x * x, radius).mul_(alpha).add_(bias)
        r = d.rsqrt() if beta == 0.5 else d.pow(-beta)
        y = x * r
        ctx.save_for_backward(x, y, r, d)
        ctx.constants = radius, alpha, beta
        return y

    @staticmethod
    @once_differentiable  # a second derivative through this backward would be wrong: refuse it
    def backward(ctx, g):
        x, y, r, d = ctx.saved_tensors
        radius, alpha, beta = ctx.constants
        spread = channel_window_sum((g * y).div_(d), radius)
        grad = (g * r).addcmul_(x, spread, value=-2.0 * alpha * beta)
        return grad, None, None, None, None


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
    return _LocalResponseNorm.apply(x, radius, float(bias), float(alpha), float(beta))
