"""Streams of images in batches: a folder of photos, a tensor, or any PyTorch dataset.

Dataset examples ("Feature Visualization", Olah et al. 2017, section "Dataset Examples") need
the model to see thousands of images, more than fit in memory at once. Every source here is an
iterable of batches with the same contract::

    for images, indices, labels in ImageFolderStream("my_photos", size=224, batch_size=32):
        ...  # images: (B, 3, 224, 224) float32 in [0, 1] on the CPU
             # indices: (B,) int64, which images of the folder these are (stable across runs)
             # labels: (B,) int64, the class of each image (-1: none)

so a loop over a stream holds one batch at a time, whatever the folder's size.

A folder follows torchvision's ``ImageFolder`` conventions, a little relaxed: images are found
recursively; an image's class is the name of the first-level subfolder it lies in
(``root/cat/a.jpg`` and ``root/cat/more/b.png`` are both "cat"); images directly in ``root`` have
no class (label -1). Hidden files and folders (``.ipynb_checkpoints``, ...) are ignored. A file
that cannot be read as an image (truncated, or not an image at all) is skipped with a warning
naming it; it never stops the stream.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .device import get_device, profile
from .images import SAMPLE_PHOTOS, photo_crops, preprocess, to_tensor

__all__ = [
    "IMAGE_EXTENSIONS",
    "Batch",
    "DatasetStream",
    "ImageFolderStream",
    "ImageStream",
    "TensorStream",
    "as_stream",
    "find_images",
    "select_batches",
    "write_photo_folder",
]  # fmt: skip

# torchvision's IMG_EXTENSIONS, matched case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (B,3,S,S), indices (B,), labels (B,)


def find_images(root: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS):
    """The image files under ``root``, their labels and the class names (ImageFolder conventions).

    Returns ``(paths, labels, classes)``: ``paths`` sorted (the order fixes every image's
    index), ``labels[i]`` the index in ``classes`` of the first-level subfolder holding
    ``paths[i]`` (-1 for files directly in ``root``), ``classes`` the sorted names of the
    first-level subfolders that hold at least one image. Files are chosen by extension only;
    whether they decode is found out when they are read.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no folder {str(root)!r}: give the folder that holds your images")
    exts = tuple(e.lower() for e in extensions)
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(exts):
                path = Path(dirpath) / name
                found.append((path.relative_to(root).as_posix(), path))
    found.sort()
    classes = sorted({rel.split("/")[0] for rel, _ in found if "/" in rel})
    index = {c: i for i, c in enumerate(classes)}
    labels = [index[rel.split("/")[0]] if "/" in rel else -1 for rel, _ in found]
    return [p for _, p in found], labels, classes


def _default_batch_size(batch_size: int | None) -> int:
    size = profile().batch_size if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return size


def _warn_skipped(name: str, reason: str) -> None:
    warnings.warn(f"skipped {name}: not a readable image ({reason})", UserWarning, stacklevel=3)


class ImageStream:
    """The common interface of image sources; iterate to get ``(images, indices, labels)``.

    Attributes:
        size: the images' size in pixels (square), or None when a tensor source keeps its own.
        batch_size: images per batch (the last batch may be smaller, and so may batches that
            lost a skipped image).
        classes: class names; ``labels`` index into it.
        skipped: ``{index: reason}`` of the items skipped so far.
    """

    size: int | None
    batch_size: int
    classes: list[str]

    def __init__(self) -> None:
        self.skipped: dict[int, str] = {}

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Batch]:
        raise NotImplementedError

    def load(self, index: int) -> torch.Tensor:
        """Image ``index`` as ``(3, S, S)`` float in [0, 1]; raises if it cannot be read."""
        raise NotImplementedError

    def images(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Images ``indices`` as one batch ``(n, 3, S, S)`` float in [0, 1]."""
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("no indices given")
        return torch.stack([self.load(i) for i in indices])

    def name(self, index: int) -> str:
        """A human-readable name for item ``index`` (a path relative to the folder, or ``#i``)."""
        return f"#{index}"

    def path(self, index: int) -> Path | None:
        """The file of item ``index`` (None for tensor sources)."""
        return None

    def label(self, index: int) -> int:
        """The label of item ``index`` (-1: none)."""
        return -1

    def label_name(self, index: int) -> str | None:
        """The class name of item ``index`` (None: no class)."""
        lab = self.label(index)
        return self.classes[lab] if 0 <= lab < len(self.classes) else None

    def fingerprint(self) -> str | None:
        """A hash that changes whenever the stream's content may change (None: unknown, no caching)."""
        return None

    @property
    def cacheable(self) -> bool:
        """Whether :meth:`fingerprint` names the content (so results may be cached)."""
        return False

    def num_batches(self) -> int:
        return -(-len(self) // self.batch_size)


# -- folders --------------------------------------------------------------------------------
class _FolderDataset(torch.utils.data.Dataset):
    """Reads one file; a bad file gives ``(None, index, label, reason)`` instead of raising."""

    def __init__(self, paths: list[Path], labels: list[int], size: int):
        self.paths, self.labels, self.size = paths, labels, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            image = read_image(self.paths[index], self.size)
        except Exception as err:  # noqa: BLE001 - any unreadable file is skipped, never a crash
            return None, index, self.labels[index], f"{type(err).__name__}: {err}"
        return image, index, self.labels[index], None


def read_image(path: str | os.PathLike, size: int) -> torch.Tensor:
    """Decode an image file as ``(3, size, size)`` float in [0, 1] (shorter side resized, centre crop).

    The same result as :func:`circuitscope.core.images.load_image` for images up to twice ``size``;
    larger photos are first shrunk by an integer factor while decoding (JPEG draft mode,
    ``Image.reduce``), which keeps big folders fast and changes pixels only slightly.
    """
    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale, never below `size`
        img.load()  # decode now: a truncated or corrupt file raises here
        factor = min(img.size) // (2 * size)
        if factor >= 2:
            img = img.reduce(factor)
        t = to_tensor(img)
    return preprocess(t, size)


def _collate(items):
    good = [it for it in items if it[0] is not None]
    bad = [(it[1], it[3]) for it in items if it[0] is None]
    if good:
        images = torch.stack([it[0] for it in good])
        indices = torch.tensor([it[1] for it in good], dtype=torch.long)
        labels = torch.tensor([it[2] for it in good], dtype=torch.long)
    else:
        images = indices = labels = None
    return images, indices, labels, bad


class ImageFolderStream(ImageStream):
    """The images of a folder, in batches: ``(images (B, 3, S, S) in [0, 1], indices, labels)``.

    Args:
        root: the folder (searched recursively; see :func:`find_images` for the conventions).
        size: images are resized (shorter side) and centre-cropped to ``size x size``
            (default: the profile's ``image_size``, 224).
        batch_size: images per batch (default: the profile's ``batch_size``).
        num_workers: processes decoding images in parallel (a ``torch.utils.data.DataLoader``);
            0 decodes in this process. Default: 0 on the CPU, up to 8 when a GPU is present
            (decoding, not the model, is then the bottleneck).
        extensions: the file name endings taken as images.

    Indices are positions in :attr:`paths` (sorted relative paths), so they stay the same from
    one run to the next while the folder does not change. Unreadable files are skipped with a
    ``UserWarning`` naming them and recorded in :attr:`skipped`.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        size: int | None = None,
        batch_size: int | None = None,
        num_workers: int | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ):
        super().__init__()
        self.root = Path(root).expanduser()
        self.paths, self.labels, self.classes = find_images(self.root, extensions)
        if not self.paths:
            raise ValueError(
                f"no images in {str(self.root)!r} (looked for {', '.join(extensions)}, recursively)"
            )
        self.size = profile().image_size if size is None else int(size)
        self.batch_size = _default_batch_size(batch_size)
        if num_workers is None:
            num_workers = min(8, max(1, (os.cpu_count() or 2) - 1)) if get_device().type == "cuda" else 0
        self.num_workers = int(num_workers)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        classes = f", {len(self.classes)} classes" if self.classes else ""
        return (
            f"ImageFolderStream({str(self.root)!r}: {len(self)} images{classes}, size={self.size}, "
            f"batch_size={self.batch_size})"
        )

    def __iter__(self) -> Iterator[Batch]:
        dataset = _FolderDataset(self.paths, self.labels, self.size)
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=torch.cuda.is_available(),
        )
        for images, indices, labels, bad in loader:
            for index, reason in bad:
                if index not in self.skipped:
                    self.skipped[index] = reason
                _warn_skipped(self.name(index), reason)
            if images is not None:
                yield images, indices, labels

    def load(self, index: int) -> torch.Tensor:
        return read_image(self.paths[index], self.size)

    def name(self, index: int) -> str:
        return self.paths[index].relative_to(self.root).as_posix()

    def path(self, index: int) -> Path:
        return self.paths[index]

    def label(self, index: int) -> int:
        return self.labels[index]

    cacheable = True

    def fingerprint(self) -> str:
        """SHA-256 of every file's relative path, size and modification time (and ``size``).

        Adding, removing, renaming or rewriting a file changes it; reading the files is not
        needed, so it is cheap for thousands of images.
        """
        h = hashlib.sha256(f"folder:{self.size}".encode())
        for path in self.paths:
            st = path.stat()
            h.update(f"\n{path.relative_to(self.root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}".encode())
        return h.hexdigest()


# -- tensors and datasets -------------------------------------------------------------------
class TensorStream(ImageStream):
    """A tensor of images ``(N, 3, H, W)`` in [0, 1] (on any device), in batches.

    ``labels: (N,)`` ints (default: all -1), ``classes`` their names. With ``size`` the images
    are resized and centre-cropped to ``size x size`` batch by batch; without, they are used as
    they are. The fingerprint hashes the pixels, so a cache keyed by it is safe.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: Sequence[int] | torch.Tensor | None = None,
        size: int | None = None,
        batch_size: int | None = None,
        classes: Sequence[str] | None = None,
    ):
        super().__init__()
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"expected images of shape (N, 3, H, W) in [0, 1], got {shape}")
        self.data = images.detach()
        n = len(images)
        self.labels = (
            torch.full((n,), -1, dtype=torch.long) if labels is None else torch.as_tensor(labels).long().cpu()
        )
        if len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for {n} images")
        self.size = None if size is None else int(size)
        self.batch_size = _default_batch_size(batch_size)
        self.classes = list(classes or [])

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"TensorStream({tuple(self.data.shape)}, size={self.size}, batch_size={self.batch_size})"

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().clamp(0, 1)
        if self.size is not None and tuple(x.shape[-2:]) != (self.size, self.size):
            x = torch.stack([preprocess(im, self.size) for im in x])
        return x

    def __iter__(self) -> Iterator[Batch]:
        for start in range(0, len(self), self.batch_size):
            stop = min(start + self.batch_size, len(self))
            yield self._prepare(self.data[start:stop]), torch.arange(start, stop), self.labels[start:stop]

    def load(self, index: int) -> torch.Tensor:
        return self._prepare(self.data[index : index + 1])[0].cpu()

    def label(self, index: int) -> int:
        return int(self.labels[index])

    cacheable = True

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"tensor:{tuple(self.data.shape)}:{self.data.dtype}:{self.size}".encode())
        data = self.data.cpu().contiguous()
        for start in range(0, len(data), 256):  # a chunk at a time: no full copy of a big tensor
            h.update(data[start : start + 256].numpy().tobytes())
        h.update(self.labels.numpy().tobytes())
        return h.hexdigest()


class _SafeItem(torch.utils.data.Dataset):
    def __init__(self, dataset, size: int | None):
        self.dataset, self.size = dataset, size

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            image, label = _split_item(self.dataset[index])
            image = to_tensor(image)
            if self.size is not None:
                image = preprocess(image, self.size)
        except Exception as err:  # noqa: BLE001 - a bad item is skipped, never a crash
            return None, index, -1, f"{type(err).__name__}: {err}"
        return image, index, label, None


def _split_item(item) -> tuple[object, int]:
    """``(image, label)`` of a dataset item: an image, ``(image, label, ...)`` or ``{"image", "label"}``."""
    if isinstance(item, (tuple, list)):
        image, label = item[0], (item[1] if len(item) > 1 else -1)
    elif isinstance(item, dict):
        image, label = item.get("image", item.get("img")), item.get("label", -1)
    else:
        image, label = item, -1
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        label = label.item()
    return image, int(label) if isinstance(label, (int, np.integer)) else -1


class DatasetStream(ImageStream):
    """Any map-style dataset whose items are an image or ``(image, label)``, in batches.

    Images may be PIL images, arrays or ``(3, H, W)`` tensors in [0, 1] (no normalisation:
    give a torchvision dataset a ``transform`` that stops at ``ToTensor()``). They are resized
    and centre-cropped to ``size`` (default: the profile's ``image_size``). Items that raise
    are skipped with a warning. No fingerprint is known, so results are not cached unless
    ``cache_key`` names this exact content.
    """

    def __init__(
        self,
        dataset,
        size: int | None = None,
        batch_size: int | None = None,
        num_workers: int = 0,
        classes: Sequence[str] | None = None,
        cache_key: str | None = None,
    ):
        super().__init__()
        self.dataset = dataset
        self.size = profile().image_size if size is None else int(size)
        self.batch_size = _default_batch_size(batch_size)
        self.num_workers = int(num_workers)
        self.classes = list(classes if classes is not None else getattr(dataset, "classes", []) or [])
        self.cache_key = cache_key

    def __len__(self) -> int:
        return len(self.dataset)

    def __repr__(self) -> str:
        return f"DatasetStream({type(self.dataset).__name__}: {len(self)} items, size={self.size})"

    def __iter__(self) -> Iterator[Batch]:
        loader = torch.utils.data.DataLoader(
            _SafeItem(self.dataset, self.size),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=_collate,
            pin_memory=torch.cuda.is_available(),
        )
        for images, indices, labels, bad in loader:
            for index, reason in bad:
                self.skipped.setdefault(index, reason)
                _warn_skipped(self.name(index), reason)
            if images is not None:
                yield images, indices, labels

    def load(self, index: int) -> torch.Tensor:
        image, _ = _split_item(self.dataset[index])
        return preprocess(to_tensor(image), self.size)

    def label(self, index: int) -> int:
        return _split_item(self.dataset[index])[1]

    @property
    def cacheable(self) -> bool:
        return self.cache_key is not None

    def fingerprint(self) -> str | None:
        if self.cache_key is None:
            return None
        return hashlib.sha256(f"dataset:{self.cache_key}:{len(self)}:{self.size}".encode()).hexdigest()


def as_stream(
    source,
    size: int | None = None,
    batch_size: int | None = None,
    num_workers: int | None = None,
) -> ImageStream:
    """Any image source as an :class:`ImageStream`.

    ``source`` may be a folder (``str`` or ``Path``), a tensor ``(N, 3, H, W)`` in [0, 1], a
    map-style dataset, or a stream (then ``size``, if given, must be its size; a different
    ``batch_size`` gives a copy that batches differently).
    """
    if isinstance(source, ImageStream):
        native = source.size
        if (
            native is None
            and isinstance(source, TensorStream)
            and source.data.shape[-1] == source.data.shape[-2]
        ):
            native = source.data.shape[-1]
        if size is not None and native != int(size):
            raise ValueError(f"the stream gives images of size {native}, not {size}; make a new stream")
        if batch_size is not None and int(batch_size) != source.batch_size:
            source = copy.copy(source)  # the caller's stream keeps its batch size
            source.batch_size = _default_batch_size(batch_size)
        return source
    if isinstance(source, (str, os.PathLike)):
        return ImageFolderStream(source, size=size, batch_size=batch_size, num_workers=num_workers)
    if isinstance(source, torch.Tensor):
        return TensorStream(source, size=size, batch_size=batch_size)
    if hasattr(source, "__getitem__") and hasattr(source, "__len__"):
        return DatasetStream(source, size=size, batch_size=batch_size, num_workers=num_workers or 0)
    raise TypeError(
        f"cannot stream images from {type(source).__name__}: give a folder path, a tensor "
        "(N, 3, H, W) in [0, 1], a dataset, or an ImageStream"
    )


def select_batches(stream: ImageStream, start: int = 0, step: int = 1):
    """``(b, batch)`` for batches ``b = start, start + step, ...`` of ``stream`` (numbered as one
    pass cuts them). Folders and tensors read only those images; other sources are read whole
    and the other batches dropped."""
    n, bs = len(stream), stream.batch_size
    numbers = list(range(-(-n // bs)))[start::step]
    if isinstance(stream, TensorStream):
        for b in numbers:
            lo, hi = b * bs, min(b * bs + bs, n)
            yield b, (stream._prepare(stream.data[lo:hi]), torch.arange(lo, hi), stream.labels[lo:hi])
    elif isinstance(stream, ImageFolderStream):
        loader = torch.utils.data.DataLoader(
            _FolderDataset(stream.paths, stream.labels, stream.size),
            batch_sampler=[list(range(b * bs, min(b * bs + bs, n))) for b in numbers],
            num_workers=stream.num_workers, collate_fn=_collate, pin_memory=torch.cuda.is_available(),
        )  # fmt: skip
        for b, (images, indices, labels, bad) in zip(numbers, loader):
            for index, reason in bad:
                stream.skipped.setdefault(index, reason)
                _warn_skipped(stream.name(index), reason)
            if images is not None:
                yield b, (images, indices, labels)
    else:
        for b, batch in enumerate(stream):
            if b >= start and (b - start) % step == 0:
                yield b, batch


def write_photo_folder(
    root: str | os.PathLike,
    crops_per_photo: int = 6,
    size: int = 224,
    names: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[Path, str]:
    """Write a small labelled image folder made from the bundled photos, with no download.

    Each photo of :data:`circuitscope.core.images.SAMPLE_PHOTOS` (or those in ``names``) gives
    ``crops_per_photo`` JPEG files in ``root/<photo name>/``: the seeded random crops of
    :func:`circuitscope.core.images.photo_crops` (30% to 100% of the photo's shorter side at a random
    place, half of them mirrored, resized to ``size`` x ``size``). A stand-in for a real folder
    of photos: enough to show how dataset examples are found and cached, far too few to say what
    a unit of InceptionV1 responds to.

    Seeded (the same arguments give the same files). Returns ``{path: class name}``.
    """
    names = list(names or SAMPLE_PHOTOS)
    crops = photo_crops(len(names) * crops_per_photo, size=size, seed=seed, names=names)  # i: names[i % n]
    out: dict[Path, str] = {}
    for i, crop in enumerate(crops):
        name = names[i % len(names)]
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}_{i // len(names):03d}.jpg"
        pixels = crop.permute(1, 2, 0).mul(255).round().clamp(0, 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(path, quality=92)
        out[path] = name
    return out
