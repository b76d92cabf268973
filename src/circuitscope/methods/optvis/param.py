"""How an image is represented while it is optimised: the *parameterization*.

"Feature Visualization" (Olah, Mordvintsev, Schubert 2017), section "Preconditioning and
Parameterization": the same image can be described by different numbers, and gradient ascent
takes very different paths depending on which. Two descriptions are here:

* :class:`PixelImage`: one number per pixel and colour (the naive one).
* :class:`FourierImage`: the 2-D Fourier coefficients of each colour plane, scaled by
  ``1 / frequency ** decay_power`` so that a step of the optimiser changes every frequency
  about equally in the *image* (natural images have a ~1/f amplitude spectrum). This is
  Lucid's default ``fft_image`` and what makes the familiar pictures appear.

Both then map their unbounded values to colours the same way (:func:`to_rgb`): multiply by the
square root of ImageNet's colour correlation matrix (so the optimised channels are decorrelated
colours), then squash with a sigmoid into [0, 1].

Every parameterization is a small ``nn.Module``: calling it, ``param()``, returns
``images: (N, 3, H, W)`` float in [0, 1] (there is no ``.image()`` method); its ``parameters()``
are what the optimiser changes; ``raw()`` returns the values before colour mapping and sigmoid.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The square root of ImageNet's colour correlation matrix (rows: R, G, B), as Lucid ships it.
COLOR_CORRELATION_SVD_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02],
     [0.27, 0.00, -0.05],
     [0.27, -0.09, 0.03]]
)  # fmt: skip
# Normalised by its largest column norm (0.4619524), so no decorrelated axis is amplified.
MAX_NORM_SVD_SQRT = float(COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max())
COLOR_CORRELATION_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / MAX_NORM_SVD_SQRT

DEFAULT_SD = 0.01  # Lucid's initial standard deviation of the parameters
DEFAULT_DECAY_POWER = 1.0  # amplitude ~ 1 / frequency ** decay_power
FFT_OUTPUT_SCALE = 4.0  # Lucid divides the inverse FFT by 4 (an empirical constant)


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def decorrelate_colors(t: torch.Tensor) -> torch.Tensor:
    """Map decorrelated colour values to RGB: ``t: (N, 3, H, W)`` -> ``(N, 3, H, W)``.

    Each pixel's 3-vector ``v`` becomes ``COLOR_CORRELATION_NORMALIZED @ v``. A step along one
    input channel changes the image along one principal colour direction of ImageNet
    ("Feature Visualization", section "Preconditioning and Parameterization").
    """
    matrix = COLOR_CORRELATION_NORMALIZED.to(device=t.device, dtype=t.dtype)
    return torch.einsum("ij,njhw->nihw", matrix, t)


def to_rgb(t: torch.Tensor, decorrelate: bool = True) -> torch.Tensor:
    """Unbounded values ``t: (N, 3, H, W)`` -> images ``(N, 3, H, W)`` float in (0, 1).

    Optionally :func:`decorrelate_colors`, then a sigmoid (Lucid's ``to_valid_rgb``).
    """
    if decorrelate:
        t = decorrelate_colors(t)
    return torch.sigmoid(t)


def frequencies(h: int, w: int) -> torch.Tensor:
    """Spatial frequency (cycles per pixel) of each coefficient of ``torch.fft.rfft2``.

    Returns ``(h, w // 2 + 1)``: ``sqrt(fy**2 + fx**2)`` with ``fy`` from ``fftfreq(h)`` and
    ``fx`` from ``rfftfreq(w)``; 0 at the constant term, at most ``sqrt(0.5)``.
    """
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.rfftfreq(w, dtype=torch.float64)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


def spectrum_scale(h: int, w: int, decay_power: float = DEFAULT_DECAY_POWER) -> torch.Tensor:
    """Per-coefficient amplitude scale ``(h, w // 2 + 1)`` of :class:`FourierImage`.

    ``1 / max(f, 1 / max(h, w)) ** decay_power * sqrt(h * w)``: the 1/f spectrum of natural
    images (the constant term is treated as the lowest non-zero frequency), times
    ``sqrt(h * w)`` so that, with ``irfft2``'s ``1 / (h * w)``, the map is about unitary.
    """
    f = frequencies(h, w).clamp_min(1.0 / max(h, w))
    return (1.0 / f**decay_power * math.sqrt(h * w)).float()


# Attributes a learner may look for on a parameterization to get its images: it is called instead.
_NOT_METHODS = frozenset({"image", "images", "get_image", "get_images", "to_image", "rgb"})


class ImageParam(nn.Module):
    """Base class: call it, ``param() -> (N, 3, H, W)`` in [0, 1]; ``raw()`` before colours/sigmoid.

    It has no ``.image()`` method: the object itself is called (``forward``).
    """

    decorrelate: bool
    batch: int
    size: tuple[int, int]

    def raw(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        return to_rgb(self.raw(), self.decorrelate)

    def __getattr__(self, name: str):
        try:  # parameters, buffers and submodules, as for any nn.Module
            return super().__getattr__(name)
        except AttributeError:
            if name not in _NOT_METHODS:
                raise
        raise AttributeError(
            f"{type(self).__name__} is called, not asked for an image: there is no .{name}; call "
            f"the object itself (param(), or image() if your variable is named image) to get the "
            f"(N, 3, H, W) images in [0, 1]"
        )


class PixelImage(ImageParam):
    """``batch`` images described pixel by pixel (the naive parameterization).

    Parameters: ``pixels: (batch, 3, H, W)``, initialised ``N(0, sd**2)``; the image is
    ``to_rgb(pixels)``, so it starts as mid grey with faint noise.
    """

    def __init__(
        self,
        batch: int,
        size: int | tuple[int, int],
        sd: float = DEFAULT_SD,
        decorrelate: bool = True,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ):
        super().__init__()
        self.batch, self.size, self.decorrelate = batch, _hw(size), decorrelate
        init = torch.randn((batch, 3, *self.size), generator=generator) * sd
        self.pixels = nn.Parameter(init.to(device))

    def raw(self) -> torch.Tensor:
        """``(batch, 3, H, W)`` unbounded values."""
        return self.pixels


class FourierImage(ImageParam):
    """``batch`` images described by their scaled 2-D Fourier coefficients (Lucid's ``fft_image``).

    Parameters: ``spectrum: (batch, 3, H, W // 2 + 1, 2)`` (real, imaginary), initialised
    ``N(0, sd**2)``. ``raw() = irfft2(spectrum * spectrum_scale(H, W, decay_power)) / 4``, so
    the raw image's expected amplitude spectrum falls as ``1 / f ** decay_power``.
    """

    def __init__(
        self,
        batch: int,
        size: int | tuple[int, int],
        sd: float = DEFAULT_SD,
        decay_power: float = DEFAULT_DECAY_POWER,
        decorrelate: bool = True,
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ):
        super().__init__()
        self.batch, self.size, self.decorrelate = batch, _hw(size), decorrelate
        self.decay_power = decay_power
        h, w = self.size
        init = torch.randn((batch, 3, h, w // 2 + 1, 2), generator=generator) * sd
        self.spectrum = nn.Parameter(init.to(device))
        self.register_buffer("scale", spectrum_scale(h, w, decay_power).to(device), persistent=False)

    def raw(self) -> torch.Tensor:
        """``(batch, 3, H, W)`` unbounded values: the inverse FFT of the scaled spectrum."""
        coefficients = torch.view_as_complex(self.spectrum) * self.scale
        return torch.fft.irfft2(coefficients, s=self.size) / FFT_OUTPUT_SCALE


def image(
    size: int | tuple[int, int],
    batch: int = 1,
    param: str = "fft",
    sd: float = DEFAULT_SD,
    decay_power: float = DEFAULT_DECAY_POWER,
    decorrelate: bool = True,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> ImageParam:
    """A parameterized batch of images: ``param="fft"`` (Lucid's default) or ``"pixel"``.

    Calling the result gives ``(batch, 3, H, W)`` float in [0, 1]. The initial values are drawn
    on the CPU from ``generator`` (same generator state, same images on every device).
    """
    if param == "fft":
        return FourierImage(batch, size, sd, decay_power, decorrelate, generator, device)
    if param == "pixel":
        return PixelImage(batch, size, sd, decorrelate, generator, device)
    raise ValueError(f"param={param!r} is not understood: use 'fft' or 'pixel'")
