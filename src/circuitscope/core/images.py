"""Images in, tensors out: loading, preprocessing and the bundled sample photos.

The model takes ``(N, 3, H, W)`` float images in [0, 1]; everything here produces that. Sample
photos come from scikit-image's bundled data (freely licensed, installed with the package), so
nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# name -> (skimage.data function, description). All ship inside scikit-image's wheel.
SAMPLE_PHOTOS = {
    "chelsea": ("chelsea", "Chelsea the cat"),
    "astronaut": ("astronaut", "astronaut Eileen Collins"),
    "coffee": ("coffee", "a cup of coffee"),
    "rocket": ("rocket", "a rocket on its launch pad"),
    "motorcycle": ("stereo_motorcycle", "a motorcycle (left image of a stereo pair)"),
}


def to_tensor(image) -> torch.Tensor:
    """A PIL image, ``(H, W)``/``(H, W, 3|4)`` array (uint8 or float in [0, 1]) or ``(3, H, W)``
    tensor as a ``(3, H, W)`` float32 tensor in [0, 1]. Grey becomes RGB; alpha is dropped."""
    if isinstance(image, torch.Tensor):
        t = image.detach().float()
        if t.dim() != 3 or t.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) tensor, got {tuple(t.shape)}")
        return t.clamp(0, 1)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got {arr.shape}")
    arr = arr[..., :3]
    scale = 255.0 if arr.dtype == np.uint8 else 1.0
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32) / scale).permute(2, 0, 1).clamp(0, 1)


def preprocess(image, size: int = 224) -> torch.Tensor:
    """Resize the shorter side to ``size`` and centre-crop: ``(3, size, size)`` float in [0, 1].

    Bilinear with antialiasing, as PIL resizes. The model subtracts its own mean
    (``x * 255 - 117``), so nothing else is done here.
    """
    t = to_tensor(image)
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    t = F.interpolate(t[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
    top, left = (nh - size) // 2, (nw - size) // 2
    return t[:, top : top + size, left : left + size].clamp(0, 1)


def load_image(path: str | os.PathLike, size: int | None = 224) -> torch.Tensor:
    """Read an image file: ``(3, size, size)`` in [0, 1] (``size=None`` keeps its own size)."""
    with Image.open(Path(path)) as img:
        t = to_tensor(img)
    return t if size is None else preprocess(t, size)


def sample_image(name: str, size: int | None = 224) -> torch.Tensor:
    """A bundled sample photo: ``(3, size, size)`` float in [0, 1]; see :data:`SAMPLE_PHOTOS`."""
    if name not in SAMPLE_PHOTOS:
        raise KeyError(f"unknown sample photo {name!r}; choose from {sorted(SAMPLE_PHOTOS)}")
    import skimage.data

    image = getattr(skimage.data, SAMPLE_PHOTOS[name][0])()
    if isinstance(image, tuple):  # motorcycle() returns (left, right, disparity)
        image = image[0]
    t = to_tensor(image)
    return t if size is None else preprocess(t, size)


def sample_images(names: list[str] | None = None, size: int = 224) -> torch.Tensor:
    """Several sample photos as one batch ``(N, 3, size, size)`` (all of them by default)."""
    return torch.stack([sample_image(n, size) for n in (names or list(SAMPLE_PHOTOS))])


def photo_crops(n: int = 32, size: int = 128, seed: int = 0, names: list[str] | None = None) -> torch.Tensor:
    """``n`` seeded random crops of the bundled sample photos: ``(n, 3, size, size)`` in [0, 1].

    Each crop covers 30% to 100% of a photo's shorter side at a random place, half of them
    mirrored, resized to ``size``. A small, offline image set: enough to train a toy SAE and to
    rank its features' examples on a laptop, nowhere near the millions of ImageNet activations
    a real dictionary needs. ``names``: which photos (default all of
    :data:`SAMPLE_PHOTOS`).
    """
    photos = [sample_image(name, size=None) for name in (names or list(SAMPLE_PHOTOS))]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[-2:]
        side = int(min(h, w) * (0.3 + 0.7 * float(torch.rand((), generator=gen))))
        top = int(torch.randint(h - side + 1, (), generator=gen))
        left = int(torch.randint(w - side + 1, (), generator=gen))
        crop = photo[:, top : top + side, left : left + side]
        if bool(torch.rand((), generator=gen) < 0.5):
            crop = crop.flip(-1)
        crop = F.interpolate(crop[None], size=(size, size), mode="bilinear",
                                         antialias=True, align_corners=False)[0]  # fmt: skip
        out.append(crop.clamp(0, 1))
    return torch.stack(out)
