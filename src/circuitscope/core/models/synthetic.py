"""Synthetic stand-in weights for InceptionV1, for machines without the real ones.

They are NOT InceptionV1's weights and show none of the papers' features. They are built so
that the methods of the course still visibly work:

* ``conv2d0`` is a bank of oriented Gabor filters and colour-contrast filters, the kinds of
  units the real first layer has ("An Overview of Early Vision", Olah et al. 2020), so that
  its feature visualizations show the method working;
* every later layer is seeded random (He-normal), then calibrated on a few bundled sample
  photos so that each channel's pre-ReLU value has mean -0.25 and standard deviation 1: no dead
  channels, no overflow, and activations of the same scale at every depth.
"""

from __future__ import annotations

import math

import torch

from ..device import one_cpu_thread
from ..images import sample_images
from .inceptionv1 import InceptionV1

SYNTHETIC_SEED = 0
#: Names the stand-in's recipe in ``weights_identity()`` ("synthetic-v1"): bump it whenever
#: :func:`init_synthetic` would produce other weights, so caches of executed pages are redone.
SYNTHETIC_VERSION = "v1"
PRE_RELU_MEAN = -0.25  # about 40% of a channel's values pass the ReLU on the calibration photos
PRE_RELU_STD = 1.0
LOGIT_STD = 2.0

# Colour directions in RGB: luminance and the two opponent axes of early vision.
_LUMINANCE = (1 / 3, 1 / 3, 1 / 3)
_RED_GREEN = (1.0, -1.0, 0.0)
_BLUE_YELLOW = (-0.5, -0.5, 1.0)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    return torch.meshgrid(r, r, indexing="ij")  # (y, x)


def gabor(size: int, theta: float, wavelength: float, phase: float, sigma: float) -> torch.Tensor:
    """A zero-mean Gabor kernel ``(size, size)``, unit L2 norm; ``theta`` in radians."""
    y, x = _grid(size)
    along = x * math.cos(theta) + y * math.sin(theta)
    kernel = torch.exp(-(x**2 + y**2) / (2 * sigma**2)) * torch.cos(2 * math.pi * along / wavelength + phase)
    kernel = kernel - kernel.mean()
    return kernel / kernel.norm()


def center_surround(size: int, sigma_center: float, sigma_surround: float | None) -> torch.Tensor:
    """A difference of Gaussians (or one Gaussian when ``sigma_surround`` is None), unit norm."""
    y, x = _grid(size)
    r2 = x**2 + y**2
    kernel = torch.exp(-r2 / (2 * sigma_center**2)) / sigma_center**2
    if sigma_surround is not None:
        kernel = kernel - torch.exp(-r2 / (2 * sigma_surround**2)) / sigma_surround**2
    return kernel / kernel.norm()


def first_layer_bank(size: int = 7) -> torch.Tensor:
    """64 filters ``(64, 3, size, size)``: 32 luminance Gabors, 16 colour Gabors, 16 colour blobs.

    Luminance Gabors: 8 orientations x 2 wavelengths x 2 phases. Colour Gabors: 8 orientations
    on the red-green and blue-yellow axes. Colour-contrast units: 4 opponent colours x
    {small and large centre-surround, small and large blob}.
    """
    def colour(kernel: torch.Tensor, rgb) -> torch.Tensor:
        return torch.tensor(rgb, dtype=torch.float64)[:, None, None] * kernel

    thetas = [i * math.pi / 8 for i in range(8)]
    filters = [colour(gabor(size, t, lam, ph, sigma=lam / 2), _LUMINANCE)
               for lam in (3.0, 5.0) for ph in (0.0, math.pi / 2) for t in thetas]  # fmt: skip
    filters += [colour(gabor(size, t, 5.0, 0.0, sigma=2.0), axis)
                for axis in (_RED_GREEN, _BLUE_YELLOW) for t in thetas]  # fmt: skip
    profiles = [center_surround(size, 1.0, 2.0), center_surround(size, 1.5, 3.0),
                center_surround(size, 1.0, None), center_surround(size, 2.0, None)]  # fmt: skip
    opponents = [_RED_GREEN, tuple(-v for v in _RED_GREEN), _BLUE_YELLOW, tuple(-v for v in _BLUE_YELLOW)]
    filters += [colour(p, axis) for axis in opponents for p in profiles]
    bank = torch.stack(filters).float()
    return bank / bank.flatten(1).norm(dim=1)[:, None, None, None]


def calibration_images(size: int = 96) -> torch.Tensor:
    """``(8, 3, size, size)`` in [0, 1]: four bundled sample photos and their mirror images."""
    photos = sample_images(["chelsea", "astronaut", "coffee", "rocket"], size=size)
    return torch.cat([photos, photos.flip(-1)])


@torch.no_grad()
def init_synthetic(model: InceptionV1, seed: int = SYNTHETIC_SEED) -> InceptionV1:
    """Fill ``model`` with the calibrated synthetic weights, in place; deterministic in ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in model.named_parameters():
        if name.endswith(".bias"):
            param.zero_()
        else:
            fan_in = param[0].numel()
            param.copy_(torch.randn(param.shape, generator=gen) * math.sqrt(2.0 / fan_in))
    model.conv2d0_pre_relu_conv.weight.copy_(first_layer_bank())
    # One thread: a convolution's sums come out in another order with more threads, and the
    # stand-in must be the same model (the same fingerprint) in every process on a machine.
    with one_cpu_thread(model.device.type == "cpu"):
        _calibrate(model, calibration_images().to(model.device))
    model.weights_state = "synthetic"
    model.weights_source = (
        f"SYNTHETIC (seeded stand-in {SYNTHETIC_VERSION}, seed {seed}; not InceptionV1's weights)"
    )
    return model


def _calibrate(model: InceptionV1, images: torch.Tensor) -> None:
    """Rescale each conv so its pre-ReLU channels have mean PRE_RELU_MEAN and std PRE_RELU_STD.

    Runs one forward pass; a hook on each conv's ``*_pre_relu`` point adjusts that conv and
    passes the adjusted value on, so every layer is calibrated on calibrated inputs.
    """
    def make_hook(conv: torch.nn.Conv2d):
        def hook(_module, _inputs, y):
            std, mean = torch.std_mean(y, dim=(0, 2, 3))
            scale = PRE_RELU_STD / std.clamp_min(1e-6)
            conv.weight.mul_(scale[:, None, None, None])
            conv.bias.sub_(mean).mul_(scale).add_(PRE_RELU_MEAN)
            return (y - mean[:, None, None]) * scale[:, None, None] + PRE_RELU_MEAN

        return hook

    handles = []
    for name, point in model.hook_points.items():
        conv = getattr(model, f"{name}_conv", None)
        if isinstance(conv, torch.nn.Conv2d):
            handles.append(point.register_forward_hook(make_hook(conv)))
    try:
        pooled = None
        for name, value in model.named_forward(images):
            if name == "mixed5b":
                pooled = value.mean(dim=(-2, -1))  # what avgpool0 gives at 224 px
                break
    finally:
        for h in handles:
            h.remove()
    linear = model.softmax2_pre_activation_matmul
    logits = linear(pooled)
    scale = LOGIT_STD / logits.std().clamp_min(1e-6)
    linear.weight.mul_(scale)
    linear.bias.copy_(-logits.mean(dim=0) * scale)
