"""What the visualization must be robust to: small random transformations applied every step.

"Feature Visualization" (Olah et al. 2017), section "Regularization", *transformation
robustness*: an image that still excites the unit after being padded, jittered, scaled and
rotated a little cannot rely on high-frequency patterns that only work at one exact alignment.

Each transformation exists twice:

* a **function** with explicit arguments (``jitter_by(x, dy, dx, d)``, ``scale_by(x, 1.1)``,
  ``rotate_by(x, -5)``), deterministic and exactly testable;
* a **random transform** (``Jitter(8)``, ``RandomScale(...)``, ...) called as
  ``t(images, generator)``, which draws its arguments from a ``torch.Generator`` (on the CPU,
  so a seed gives the same draws on every device) and calls the function.

As in Lucid, one draw is made per step for the whole batch. Images are ``(N, 3, H, W)``;
spatial size may change (pad grows it, jitter and scale change it), as it does in Lucid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

# Lucid's standard_transforms: scales 0.90, 0.92, ..., 1.10; angles -10..10 with 0 weighted 6x.
LUCID_SCALES = tuple(1 + (i - 5) / 50.0 for i in range(11))
LUCID_ANGLES = tuple(range(-10, 11)) + 5 * (0,)


def _torchvision():
    """torchvision's functional transforms, imported on first use (the import takes seconds)."""
    import torchvision.transforms.v2.functional as TF
    from torchvision.transforms import InterpolationMode

    return TF, InterpolationMode


# -- deterministic functions ----------------------------------------------------------------
def pad(x: torch.Tensor, width: int, value: float = 0.5) -> torch.Tensor:
    """Pad ``x: (N, C, H, W)`` by ``width`` pixels of constant ``value`` on every side.

    Returns ``(N, C, H + 2 width, W + 2 width)``. Lucid pads with mid grey (0.5), so the
    border of the visualization is not forced to explain a hard edge.
    """
    return F.pad(x, (width, width, width, width), mode="constant", value=value)


def jitter_by(x: torch.Tensor, dy: int, dx: int, d: int) -> torch.Tensor:
    """Crop ``(H - d, W - d)`` from ``x: (N, C, H, W)`` starting at row ``dy``, column ``dx``.

    ``0 <= dy, dx <= d``; ``jitter_by(x, 0, 0, d)`` keeps the top-left part. (Lucid's
    ``jitter(d)`` is this crop at a random offset: a translation by up to ``d`` pixels.)
    """
    h, w = x.shape[-2:]
    if not (0 <= dy <= d and 0 <= dx <= d) or d >= min(h, w):
        raise ValueError(f"jitter offsets must lie in 0..{d} and d < image size; got dy={dy}, dx={dx}")
    return x[..., dy : dy + h - d, dx : dx + w - d]


def scale_by(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Resize ``x: (N, C, H, W)`` to ``(int(factor H), int(factor W))``, bilinear, no antialias.

    Half-pixel centres (PyTorch's ``align_corners=False``): output pixel ``i`` samples the input
    at ``(i + 0.5) * H / H' - 0.5``. Lucid's ``random_scale`` differs here: it calls TensorFlow
    1's ``resize_bilinear``, whose default is the older "legacy" sampling, ``i * H / H'``,
    without the half-pixel offset, a shift of a fraction of a pixel that does not matter for
    transformation robustness. ``factor == 1`` returns ``x`` unchanged.
    """
    h, w = x.shape[-2:]
    size = [int(factor * h), int(factor * w)]
    if size == [h, w]:
        return x
    TF, mode = _torchvision()
    return TF.resize(x, size, interpolation=mode.BILINEAR, antialias=False)


def rotate_by(x: torch.Tensor, degrees: float, fill: float = 0.0) -> torch.Tensor:
    """Rotate ``x: (N, C, H, W)`` counter-clockwise by ``degrees`` about its centre, bilinear.

    Same size out; corners that come from outside the image are ``fill`` (0, as in Lucid's
    ``tfa.image.rotate``). ``rotate_by(x, 90)`` equals ``torch.rot90(x, 1, (-2, -1))``.
    """
    if degrees == 0:
        return x
    # torchvision fills outside pixels with 0 (its own fill= blends in place, which autograd
    # refuses), so rotate x - fill and add fill back: the same for fill=0, and smooth edges.
    TF, mode = _torchvision()
    shifted = x - fill if fill else x
    out = TF.rotate(shifted, float(degrees), interpolation=mode.BILINEAR)
    return out + fill if fill else out


# -- random transforms ----------------------------------------------------------------------
class Transform:
    """A random transformation: ``t(images, generator) -> images``."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _choice(options: Sequence, generator: torch.Generator | None):
    return options[int(torch.randint(len(options), (), generator=generator))]


class Pad(Transform):
    """Pad by ``width`` pixels of ``value`` (not random; Lucid's ``pad(12, constant 0.5)``)."""

    def __init__(self, width: int, value: float = 0.5):
        self.width, self.value = width, value

    def __call__(self, x, generator=None):
        return pad(x, self.width, self.value)


class Jitter(Transform):
    """Crop ``d`` pixels less at a uniformly random offset ``0..d`` in each direction."""

    def __init__(self, d: int):
        self.d = d

    def __call__(self, x, generator=None):
        dy, dx = (int(v) for v in torch.randint(self.d + 1, (2,), generator=generator))
        return jitter_by(x, dy, dx, self.d)


class RandomScale(Transform):
    """Resize by a factor drawn uniformly from ``scales`` (default: Lucid's 0.90..1.10)."""

    def __init__(self, scales: Sequence[float] = LUCID_SCALES):
        self.scales = tuple(scales)

    def __call__(self, x, generator=None):
        return scale_by(x, _choice(self.scales, generator))


class RandomRotate(Transform):
    """Rotate by an angle in degrees drawn uniformly from ``angles`` (default: Lucid's list)."""

    def __init__(self, angles: Sequence[float] = LUCID_ANGLES, fill: float = 0.0):
        self.angles, self.fill = tuple(angles), fill

    def __call__(self, x, generator=None):
        return rotate_by(x, _choice(self.angles, generator), self.fill)


class Compose(Transform):
    """Apply ``transforms`` in order, each drawing from the same generator."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x, generator=None):
        for t in self.transforms:
            x = t(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def standard_transforms() -> Compose:
    """Lucid's ``standard_transforms``: pad 12 (grey), jitter 8, scale 0.90..1.10,
    rotate -10..10 degrees, jitter 4 ("Feature Visualization", section "Regularization").

    A 128 px image reaches the model at about 126..154 px.
    """
    return Compose(
        [Pad(12, 0.5), Jitter(8), RandomScale(LUCID_SCALES), RandomRotate(LUCID_ANGLES), Jitter(4)]
    )


def make_transforms(spec: str | Sequence[Callable] | Callable | None) -> Compose:
    """``"standard"``, ``None``/``"none"``/``[]`` (no transforms), a list, or one transform."""
    if spec is None or (isinstance(spec, str) and spec == "none"):
        return Compose([])
    if isinstance(spec, str):
        if spec == "standard":
            return standard_transforms()
        raise ValueError(f"transforms={spec!r} is not understood: use 'standard', 'none' or a list")
    if isinstance(spec, Compose):
        return spec
    if callable(spec):
        return Compose([spec])
    return Compose(list(spec))
