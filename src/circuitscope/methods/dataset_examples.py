"""Dataset examples: the images, and the image patches, that excite a unit most.

"Feature Visualization" (Olah, Mordvintsev and Schubert, Distill 2017, section "Dataset
Examples") pairs every visualization with "examples from the dataset that cause the neuron to
activate strongly"; "Zoom In" (Olah et al. 2020, "Claim 1: Features", "Polysemantic Neurons")
reads them to find out what a unit responds to, and shows units such as 4e:55 that respond to
unrelated things (cat faces, fronts of cars, cat legs: its figure of 4e:55 shows feature
visualizations, and it points to "Feature Visualization" for more).

``top_examples(model, "my_photos", "4e:55", k=9)`` streams the folder through the model in
batches (on the GPU when the model is there), scores each image by the unit's largest
activation (``by="max"``: the best position, as a neuron at one place sees it) or its mean over
positions (``by="mean"``: the channel objective), and keeps the ``k`` best. The result knows
where in each image the unit fired most, so :meth:`TopExamples.patches` cuts out the
receptive field of that position (:mod:`circuitscope.core.receptive_field`): the part of the
image the unit actually saw.

Memory stays constant however many images there are:

* **with the activation cache** (the default for folders and tensors): the first query for a
  layer computes, for every image and every channel of the layer, the maximum over positions,
  where it is and the mean (a few numbers per image and channel, never the activations), and
  writes them to disk as memory-mapped ``.npy`` files. Any later query for any channel of that
  layer over the same images reads them instead of running the model. The cache is keyed by
  the folder's file list with sizes and modification times (or a tensor's pixels), the layer,
  the image size and the model's weights (a hash of its parameters), so changing any of these
  computes afresh.
* **without** (``cache=False``, or a source that cannot be fingerprinted): a running top-``k``
  per unit is merged batch by batch; only ``k`` scores per unit are ever held.

Ties are broken by the lower image index, so the answer does not depend on the batch size.

Under ``torchrun`` (:mod:`circuitscope.core.distributed`) the batches are dealt out to the ranks
round robin (batch ``b`` to rank ``b % world``, the same batches as one process would make),
each rank keeps a running top-``k`` of its own images, and the ranks' lists are merged by the
same order (score, then index): the result is identical to one process's, ties included.
The activation cache is read when it is already complete, but written by single-process runs
only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..core import distributed
from ..core.datasets import ImageStream, as_stream, select_batches
from ..core.hooks import check_layer_names
from ..core.models.inceptionv1 import InceptionV1
from ..core.models.named import NamedModel
from ..core.models.weights import cache_dir as circuitscope_cache_dir
from ..core.progress import bar as progress_bar
from ..core.provenance import weights_state
from ..core.receptive_field import GRAPH, receptive_field
from ..core.units import format_unit, parse_unit

__all__ = [
    "LayerSummary",
    "TopExamples",
    "activation_cache_dir",
    "clear_activation_cache",
    "crop_window",
    "fields_for",
    "layer_summary",
    "model_device",
    "model_fingerprint",
    "resolve_unit",
    "select_batches",
    "top_examples",
    "unit_activations",
]  # fmt: skip

By = Literal["max", "mean"]
CACHE_VERSION = 1
_CACHE_FILES = ("max.npy", "argmax.npy", "mean.npy", "valid.npy", "meta.json")


# -- units, models, devices -----------------------------------------------------------------
def resolve_unit(model, unit, layer_pre_relu: bool = False) -> tuple[str, int]:
    """``"4e:55"``, ``"mixed4e:55"`` or ``("mixed4e", 55)`` -> ``("mixed4e", 55)``.

    With ``layer_pre_relu=True`` the layer becomes ``"mixed4e_pre_relu"`` (the value before
    the ReLU, which also ranks images the unit does not fire on). For a model given as a plain
    function ``images -> (B, C, H, W)``, ``unit`` is a channel number (or ``("output", c)``).
    """
    if not isinstance(model, NamedModel):
        if isinstance(unit, tuple):
            unit = unit[1]
        if isinstance(unit, str) and ":" in unit:
            unit = unit.rsplit(":", 1)[1]
        return "output", int(unit)
    layer, channel = parse_unit(unit, model)
    if layer_pre_relu and not layer.endswith("_pre_relu"):
        layer = f"{layer}_pre_relu"
        check_layer_names(model, [layer])
    return layer, channel


def model_device(model) -> torch.device:
    """Where ``model`` computes: a named model's :attr:`~NamedModel.device`; for a plain function
    the device of its first parameter (if it has any), else the CPU."""
    if isinstance(model, NamedModel):
        return model.device
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")


def unit_activations(model, images: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Activations of ``layers`` for ``images: (B, 3, H, W)`` in [0, 1], without gradients.

    Images go to the model's device; values come back there, as ``(B, C, H', W')``
    (``(B, C, 1, 1)`` for a layer without positions, such as the logits).
    """
    images = images.to(model_device(model), non_blocking=True)
    with torch.no_grad():
        acts = model.run_to(images, layers) if isinstance(model, NamedModel) else {"output": model(images)}
    return {k: (v[:, :, None, None] if v.dim() == 2 else v) for k, v in acts.items()}


def model_fingerprint(model) -> str:
    """A hash naming the model's weights: its class, ``weights_source``, its weights state and
    the bytes of every parameter and buffer (so two synthetic models with different seeds differ).
    """
    h = hashlib.sha256(type(model).__module__.encode() + b"." + type(model).__qualname__.encode())
    h.update(f"|{getattr(model, 'weights_source', '')}|{weights_state(model)}".encode())
    state = model.state_dict() if hasattr(model, "state_dict") else {}
    for name, value in state.items():
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def activation_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the activation cache lives: ``cache_dir``, else ``<circuitscope cache>/activations``
    (``$CIRCUITSCOPE_CACHE``, else ``~/.cache/circuitscope``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return circuitscope_cache_dir() / "activations"


def clear_activation_cache(cache_dir: str | os.PathLike | None = None) -> int:
    """Delete every cached layer summary; returns how many were removed."""
    root = activation_cache_dir(cache_dir)
    removed = 0
    if root.is_dir():
        for entry in root.iterdir():
            if entry.is_dir() and (entry / "meta.json").exists():
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
    return removed


# -- the per-layer summary (the activation cache) -------------------------------------------
@dataclass
class LayerSummary:
    """Per image and channel of one layer: the largest activation, where it is, and the mean.

    Attributes:
        layer: the layer's name.
        max: ``(N, C)`` float32, each channel's largest value over positions (-inf for skipped
            images).
        argmax: ``(N, C)`` int32, where it is: ``row * W' + col`` in the layer's grid.
        mean: ``(N, C)`` float32, each channel's mean over positions.
        valid: ``(N,)`` bool, False for images that could not be read.
        grid: ``(H', W')``, the layer's positions.
        image_size: ``(H, W)`` of the images the model saw.
        skipped: ``{index: reason}`` of unreadable images.
        path: the cache folder the arrays are memory-mapped from (None: in memory).

    N is the number of items in the source, C the layer's channels. The arrays are NumPy
    (memory-mapped when cached), so reading one channel's column does not load the rest.
    """

    layer: str
    max: np.ndarray
    argmax: np.ndarray
    mean: np.ndarray
    valid: np.ndarray
    grid: tuple[int, int]
    image_size: tuple[int, int]
    skipped: dict[int, str] = dc_field(default_factory=dict)
    path: Path | None = None

    @property
    def channels(self) -> int:
        return self.max.shape[1]

    def scores(self, channel: int, by: By = "max") -> torch.Tensor:
        """``(N,)`` float32: each image's score for ``channel`` (-inf for skipped images)."""
        column = (self.max if by == "max" else self.mean)[:, channel]
        scores = torch.from_numpy(np.array(column, dtype=np.float32))
        scores[~torch.from_numpy(np.array(self.valid, dtype=bool))] = float("-inf")
        return scores

    def positions(self, channel: int) -> torch.Tensor:
        """``(N,)`` int64: the flat position of each image's maximum for ``channel``."""
        return torch.from_numpy(np.array(self.argmax[:, channel], dtype=np.int64))


def _reduce(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, C, H, W)`` -> max, argmax (flat position), mean over positions, each ``(B, C)``."""
    flat = acts.flatten(2).float()
    mx, arg = flat.max(dim=2)  # the first maximal position on ties
    return mx, arg, flat.mean(dim=2)


def _cache_key(stream: ImageStream, layer: str, model) -> str | None:
    fp = stream.fingerprint()
    if fp is None:
        return None
    meta = {"v": CACHE_VERSION, "source": fp, "layer": layer, "size": stream.size, "n": len(stream),
            "model": model_fingerprint(model)}  # fmt: skip
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def _entry_name(layer: str, key: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in layer)
    return f"{safe}-{key[:24]}"


def _load_cached(entry: Path, layer: str) -> LayerSummary | None:
    if not all((entry / f).exists() for f in _CACHE_FILES):
        return None
    try:
        meta = json.loads((entry / "meta.json").read_text())
        arrays = {n: np.load(entry / f"{n}.npy", mmap_mode="r") for n in ("max", "argmax", "mean", "valid")}
    except (OSError, ValueError) as err:
        warnings.warn(f"ignoring a damaged activation cache entry {entry} ({err})", stacklevel=3)
        return None
    return LayerSummary(
        layer, arrays["max"], arrays["argmax"], arrays["mean"], arrays["valid"],
        tuple(meta["grid"]), tuple(meta["image_size"]), {int(k): v for k, v in meta["skipped"].items()},
        entry,
    )  # fmt: skip


def _cached_summary(model, stream: ImageStream, layer: str, cache_dir) -> LayerSummary | None:
    """The complete cache entry of ``layer`` over ``stream``, or None."""
    key = _cache_key(stream, layer, model)
    return _load_cached(activation_cache_dir(cache_dir) / _entry_name(layer, key), layer) if key else None


def _progress(stream: ImageStream, desc: str, progress: bool):
    return progress_bar(total=len(stream), desc=desc, unit="img", progress=progress, leave=False)


def layer_summary(
    model,
    source,
    layer: str,
    *,
    size: int | None = None,
    batch_size: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    num_workers: int | None = None,
) -> LayerSummary:
    """Every channel's max, argmax and mean over positions for every image: a :class:`LayerSummary`.

    Args:
        model: InceptionV1 (or any :class:`~circuitscope.core.models.named.NamedModel`), on the
            device to compute on.
        source: a folder, a tensor ``(N, 3, H, W)`` in [0, 1], a dataset or an
            :class:`~circuitscope.core.datasets.ImageStream`.
        layer: a layer name of the model (``"mixed4e"``, ``"mixed4e_pre_relu"``, ...).
        size: the image size for folders and datasets (default: the profile's, 224).
        batch_size: images per forward pass (default: the profile's; 8 on the CPU, 64 on a GPU).
        cache: read and write the on-disk activation cache (when the source has a fingerprint).
        cache_dir: where the cache lives (default: :func:`activation_cache_dir`).
        progress: show a progress bar.
        num_workers: image-decoding processes for a folder (default: 0 on the CPU).

    With the cache the arrays are written straight to memory-mapped files, so memory does not
    grow with the number of images; without it they are held in memory (``N x C x 12`` bytes).
    """
    if isinstance(model, NamedModel):
        check_layer_names(model, [layer])
    stream = as_stream(source, size=size, batch_size=batch_size, num_workers=num_workers)
    key = _cache_key(stream, layer, model) if cache else None
    entry = activation_cache_dir(cache_dir) / _entry_name(layer, key) if key else None
    if entry is not None:
        cached = _load_cached(entry, layer)
        if cached is not None:
            if cached.skipped:
                names = ", ".join(stream.name(i) for i in sorted(cached.skipped)[:5])
                more = f" and {len(cached.skipped) - 5} more" if len(cached.skipped) > 5 else ""
                warnings.warn(
                    f"{len(cached.skipped)} unreadable image(s) skipped (as when cached): {names}{more}",
                    UserWarning,
                    stacklevel=2,
                )
            stream.skipped.update(cached.skipped)
            return cached
    if entry is not None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            warnings.warn(f"cannot write the activation cache in {entry.parent} ({err}); computing without it",
                          UserWarning, stacklevel=2)  # fmt: skip
            entry = None
    tmp = entry.with_name(f"{entry.name}.tmp-{uuid.uuid4().hex[:8]}") if entry is not None else None
    try:
        summary = _compute_summary(model, stream, layer, tmp, progress)
        if entry is None:
            return summary
        (tmp / "meta.json").write_text(json.dumps({
            "layer": layer, "grid": list(summary.grid), "image_size": list(summary.image_size),
            "skipped": {str(k): v for k, v in summary.skipped.items()}, "n": len(stream),
            "source": repr(stream), "weights": str(getattr(model, "weights_source", "")),
        }))  # fmt: skip
        del summary  # release the memory maps before moving the folder
        if entry.exists():  # a damaged entry (files missing): replace it
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.replace(tmp, entry)
        except OSError:  # another process wrote the same entry first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
        loaded = _load_cached(entry, layer)
        if loaded is None:
            raise RuntimeError(f"could not read back the activation cache entry {entry}")
        return loaded
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _compute_summary(
    model, stream: ImageStream, layer: str, folder: Path | None, progress: bool
) -> LayerSummary:
    n = len(stream)
    arrays: dict[str, np.ndarray] = {}
    grid = image_size = None
    bar = _progress(stream, f"{layer} (caching)" if folder is not None else layer, progress)
    try:
        for images, indices, _labels in stream:
            acts = unit_activations(model, images, [layer])[layer]
            mx, arg, mean = _reduce(acts)
            if not arrays:
                c = acts.shape[1]
                grid, image_size = tuple(acts.shape[-2:]), tuple(images.shape[-2:])
                if folder is not None:
                    folder.mkdir(parents=True, exist_ok=True)

                def alloc(name, dtype, shape, fill):
                    if folder is None:
                        return np.full(shape, fill, dtype=dtype)
                    a = np.lib.format.open_memmap(folder / f"{name}.npy", "w+", dtype, shape)
                    a[:] = fill
                    return a

                arrays = {
                    "max": alloc("max", np.float32, (n, c), -np.inf),
                    "argmax": alloc("argmax", np.int32, (n, c), 0),
                    "mean": alloc("mean", np.float32, (n, c), -np.inf),
                    "valid": alloc("valid", np.bool_, (n,), False),
                }
            elif tuple(images.shape[-2:]) != image_size:
                raise ValueError(
                    f"images of different sizes {image_size} and {tuple(images.shape[-2:])} in one "
                    "source: give a size so that all are resized alike"
                )
            rows = indices.numpy()
            arrays["max"][rows] = mx.cpu().numpy()
            arrays["argmax"][rows] = arg.cpu().numpy().astype(np.int32)
            arrays["mean"][rows] = mean.cpu().numpy()
            arrays["valid"][rows] = True
            bar.update(len(rows))
    finally:
        bar.close()
    if not arrays:
        raise ValueError(f"no readable images in {stream!r}")
    for a in arrays.values():
        if isinstance(a, np.memmap):
            a.flush()
    return LayerSummary(layer, arrays["max"], arrays["argmax"], arrays["mean"], arrays["valid"],
                        grid, image_size, dict(stream.skipped), folder)  # fmt: skip


# -- a running top-k --------------------------------------------------------------------------
def _rank(scores: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Column order of each row: score descending, then index ascending (deterministic ties)."""
    scores = torch.nan_to_num(scores, nan=float("-inf"))
    by_index = torch.sort(indices, dim=-1, stable=True).indices
    by_score = torch.sort(scores.gather(-1, by_index), dim=-1, descending=True, stable=True).indices
    return by_index.gather(-1, by_score)


class _RunningTopK:
    """The ``k`` best ``(score, index, position)`` of each of ``U`` units, merged batch by batch."""

    def __init__(self, units: int, k: int):
        self.k = k
        self.scores = torch.empty(units, 0)
        self.indices = torch.empty(units, 0, dtype=torch.long)
        self.positions = torch.empty(units, 0, dtype=torch.long)

    def update(self, scores: torch.Tensor, indices: torch.Tensor, positions: torch.Tensor) -> None:
        """``scores, positions: (B, U)``, ``indices: (B,)``."""
        u = self.scores.shape[0]
        s = torch.cat([self.scores, scores.T.float().cpu()], 1)
        i = torch.cat([self.indices, indices.cpu().long().expand(u, -1)], 1)
        p = torch.cat([self.positions, positions.T.long().cpu()], 1)
        order = _rank(s, i)[:, : self.k]
        self.scores, self.indices, self.positions = s.gather(1, order), i.gather(1, order), p.gather(1, order)


# -- the result -------------------------------------------------------------------------------
@dataclass
class TopExamples:
    """The ``k`` images of a source that excite one unit most, best first.

    Attributes:
        layer, channel: the unit (``unit`` gives it as ``"4e:55"``).
        by: ``"max"`` (score = the unit's largest activation over positions) or ``"mean"``.
        indices: ``(k,)`` int64, the images' indices in the source.
        scores: ``(k,)`` float32, their scores, descending.
        positions: ``(k, 2)`` int64, ``(row, col)`` in the layer's grid where the unit fired
            most in each image (the patch centre).
        grid: ``(H', W')`` of the layer; ``image_size``: ``(H, W)`` of the model's input.
        labels: ``(k,)`` int64 class labels (-1: none); ``label_names`` their names.
        names: the images' names (paths relative to the folder, or ``#index``).
        source: the :class:`~circuitscope.core.datasets.ImageStream` they came from.

    Fewer than ``k`` rows when the source has fewer readable images.
    """

    layer: str
    channel: int
    by: str
    indices: torch.Tensor
    scores: torch.Tensor
    positions: torch.Tensor
    grid: tuple[int, int]
    image_size: tuple[int, int]
    labels: torch.Tensor
    label_names: list[str | None]
    names: list[str]
    source: ImageStream
    weights_source: str = ""
    is_synthetic: bool = True
    _fields: tuple | None = dc_field(default=None, repr=False)
    # After _fields so positional construction (polysemanticity._subset) is unchanged; None:
    # derived from is_synthetic by provenance.weights_state.
    weights_state: str | None = None

    @property
    def unit(self) -> str:
        return format_unit(self.layer, self.channel)

    @property
    def paths(self) -> list[Path | None]:
        """The image files (None for tensor sources)."""
        return [self.source.path(int(i)) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        state = weights_state(self.provenance)
        weights = f", {WARNINGS[state]}" if state in WARNINGS else ""
        n = f"{len(self)} of {len(self.source)} images"
        lines = [f"TopExamples({self.unit}, by={self.by!r}, {n}{weights})"]
        for r, (name, s, (y, x), lab) in enumerate(
            zip(self.names, self.scores.tolist(), self.positions.tolist(), self.label_names)
        ):
            cls = f"  [{lab}]" if lab is not None else ""
            lines.append(f"  {r + 1:>2}. {name}  score {s:.4g} at ({y}, {x}){cls}")
        return "\n".join(lines)

    def images(self) -> torch.Tensor:
        """The whole images ``(k, 3, H, W)`` float in [0, 1] on the CPU, best first."""
        return self.source.images(self.indices)

    def boxes(self, field=None) -> list[tuple[int, int, int, int]]:
        """Each example's receptive field ``(top, left, bottom, right)``, inclusive, in input
        pixels; may reach outside the image (see :meth:`patches`)."""
        rows, cols = self._get_fields(field)
        out = []
        for y, x in self.positions.tolist():
            (top, bottom), (left, right) = rows.span(y), cols.span(x)
            out.append((top, left, bottom, right))
        return out

    def patches(self, field=None, fill: float = 0.5, clip: bool = False):
        """The receptive field of the unit's best position in each example: the part of the
        image it saw ("Feature Visualization", "Dataset Examples": the patches next to each
        visualization).

        Args:
            field: how big a patch is. Default: the layer's receptive field by receptive-field
                arithmetic (:func:`circuitscope.core.receptive_field.receptive_field`, or the
                model's own ``receptive_field(layer, input_size)``). Or a
                :class:`~circuitscope.core.receptive_field.ReceptiveField`, or an odd number of
                pixels (centred where the position's cell is).
            fill: the value of pixels outside the image (grey by default).
            clip: return the patches cut at the image's border, a list of ``(3, h, w)``.

        Returns ``(k, 3, P, P)`` float in [0, 1] (P: the field's size), best first; deep
        layers' fields are larger than the image (mixed4e's is 427 px at 224), so their
        patches are mostly the whole image with a ``fill`` border.
        """
        images = self.images()
        out = []
        for image, (top, left, bottom, right) in zip(images, self.boxes(field)):
            out.append(crop_window(image, top, left, bottom, right, fill, clip))
        return out if clip else torch.stack(out)

    @property
    def provenance(self) -> _Weights:
        """What :func:`circuitscope.core.provenance.stamp` reads: these examples' weights state and source."""
        return _Weights(self.is_synthetic, self.weights_source, self.weights_state)

    def _get_fields(self, field):
        if field is None:
            if self._fields is None:
                raise ValueError(
                    f"the receptive field of {self.layer!r} is not known for this model: "
                    "give field= (a ReceptiveField or a patch size in pixels)"
                )
            return self._fields
        return _fields_from(field, self.grid, self.image_size, self.layer)


#: What a repr says after results not made with the verified real weights, by weights state.
WARNINGS = {"synthetic": "SYNTHETIC WEIGHTS", "unverified": "UNVERIFIED WEIGHTS", "planted": "PLANTED MODEL"}


@dataclass
class _Weights:  # what provenance.stamp reads from a model
    is_synthetic: bool
    weights_source: str
    weights_state: str | None = None


def crop_window(image: torch.Tensor, top: int, left: int, bottom: int, right: int, fill: float, clip: bool):
    """Rows ``top..bottom`` and columns ``left..right`` (inclusive) of ``image: (3, H, W)``; the
    parts outside the image are ``fill`` (``clip=True``: cut off instead)."""
    _, h, w = image.shape
    t, l, b, r = max(top, 0), max(left, 0), min(bottom, h - 1), min(right, w - 1)
    if clip:
        return image[:, t : b + 1, l : r + 1].clone()
    out = image.new_full((3, bottom - top + 1, right - left + 1), fill)
    if b >= t and r >= l:
        out[:, t - top : b - top + 1, l - left : r - left + 1] = image[:, t : b + 1, l : r + 1]
    return out


# -- receptive fields -------------------------------------------------------------------------
class _GridField:
    """A patch of ``size`` pixels centred on a position's cell, when no arithmetic is known."""

    def __init__(self, size: int, positions: int, input_size: int):
        if size < 1 or size % 2 == 0:
            raise ValueError(f"a patch size must be a positive odd number of pixels, got {size}")
        self.size, self.positions, self.input_size = size, positions, input_size

    def center(self, i: int) -> int:
        return int((i + 0.5) * self.input_size / self.positions)

    def span(self, i: int) -> tuple[int, int]:
        half = (self.size - 1) // 2
        return self.center(i) - half, self.center(i) + half


def _fields_from(field, grid, image_size, layer):
    if isinstance(field, int):
        return tuple(_GridField(field, g, s) for g, s in zip(grid, image_size))
    if isinstance(field, tuple) and len(field) == 2:
        return field
    if hasattr(field, "span"):
        return field, field
    raise TypeError(
        f"field must be a ReceptiveField, a pair of them, or a patch size in pixels; got {field!r}"
    )


def fields_for(model, layer: str, grid: tuple[int, int], image_size: tuple[int, int]):
    """``(rows, cols)`` receptive fields of ``layer`` for an input of ``image_size``, or None.

    InceptionV1's layers use :func:`circuitscope.core.receptive_field.receptive_field`; another model
    may offer ``model.receptive_field(layer, input_size)``. The fields are checked against the
    layer's actual ``grid``.
    """
    fn = getattr(model, "receptive_field", None)
    if fn is None:
        if not (isinstance(model, InceptionV1) and layer in GRAPH):
            return None
        fn = receptive_field
    try:
        rows, cols = fn(layer, image_size[0]), fn(layer, image_size[1])
    except (ValueError, KeyError):
        return None
    if (rows.positions, cols.positions) != tuple(grid):
        warnings.warn(
            f"receptive-field arithmetic gives a {rows.positions}x{cols.positions} grid for {layer}, "
            f"the model gives {grid[0]}x{grid[1]}: patches not placed",
            stacklevel=3,
        )
        return None
    return rows, cols


# -- the query ----------------------------------------------------------------------------------
def top_examples(
    model,
    source,
    unit,
    k: int = 9,
    by: By = "max",
    layer_pre_relu: bool = False,
    batch_size: int | None = None,
    *,
    size: int | None = None,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    num_workers: int | None = None,
) -> TopExamples | list[TopExamples]:
    """The ``k`` images of ``source`` that excite ``unit`` most ("Feature Visualization",
    "Dataset Examples"; "Zoom In", "Polysemantic Neurons").

    Args:
        model: InceptionV1 from :func:`circuitscope.load_inceptionv1` (it computes on the
            model's device: the GPU when it is there), any :class:`~circuitscope.core.models.named.NamedModel`
            (e.g. a planted model), or a plain function ``images -> (B, C, H, W)``.
        source: a folder of images (ImageFolder conventions, see :mod:`circuitscope.core.datasets`),
            a tensor ``(N, 3, H, W)`` in [0, 1], a dataset, or an ``ImageStream``.
        unit: ``"4e:55"``, ``"mixed4e:55"``, ``("mixed4e", 55)``, or a list of units (then a
            list of results, from one pass over the images).
        k: how many examples.
        by: ``"max"`` ranks images by the unit's largest activation over positions (the
            strongest place it fired: dataset examples for a neuron), ``"mean"`` by its mean
            over positions (for the channel objective).
        layer_pre_relu: rank by the value before the ReLU.
        batch_size: images per forward pass (default: the profile's; 8 on the CPU, 64 on a GPU).
        size: the image size (default: the profile's, 224; a tensor keeps its own size).
        cache: use the on-disk activation cache (see the module docstring); ``False`` keeps a
            running top-k in memory instead.
        cache_dir: where the cache lives (default: :func:`activation_cache_dir`).
        progress: show a progress bar.
        num_workers: image-decoding processes for a folder (default: 0 on the CPU).

    Returns a :class:`TopExamples` (``.patches()``, ``.images()``; drawn by :func:`circuitscope.figures.plotting.top_examples_figure`). Unreadable
    images are skipped with a warning naming them.
    """
    if by not in ("max", "mean"):
        raise ValueError(f"by must be 'max' or 'mean', got {by!r}")
    if int(k) < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    many = isinstance(unit, list)
    units = [resolve_unit(model, u, layer_pre_relu) for u in (unit if many else [unit])]
    stream = as_stream(source, size=size, batch_size=batch_size, num_workers=num_workers)
    layers = list(dict.fromkeys(layer for layer, _ in units))
    use_cache = cache and isinstance(model, NamedModel) and stream.cacheable
    if use_cache and distributed.is_distributed():
        # Several ranks do not write one cache entry: use it only if every layer's is complete.
        have = all(_cached_summary(model, stream, layer, cache_dir) is not None for layer in layers)
        use_cache = all(distributed.all_gather_object(have))

    ranked: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    shapes: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
    if use_cache:
        for layer in layers:
            summary = layer_summary(model, stream, layer, cache=True, cache_dir=cache_dir, progress=progress)
            shapes[layer] = summary.grid, summary.image_size
            n = len(stream)
            for lay, ch in units:
                if lay == layer:
                    scores, indices = summary.scores(ch, by)[None], torch.arange(n)[None]
                    keep = _rank(scores, indices)[0, : int(k)]
                    keep = keep[torch.isfinite(scores[0, keep])]
                    ranked[(lay, ch)] = scores[0, keep], keep, summary.positions(ch)[keep]
    else:
        ranked, shapes = _stream_top_k(model, stream, units, int(k), by, progress)

    state = weights_state(model)
    results = []
    for layer, channel in units:
        scores, indices, flat = ranked[(layer, channel)]
        grid, image_size = shapes[layer]
        positions = (
            torch.stack([flat // grid[1], flat % grid[1]], dim=1)
            if len(flat)
            else torch.empty(0, 2, dtype=torch.long)
        )
        idx = indices.tolist()
        results.append(TopExamples(
            layer=layer, channel=channel, by=by, indices=indices.clone(), scores=scores.clone(),
            positions=positions, grid=grid, image_size=image_size,
            labels=torch.tensor([stream.label(i) for i in idx], dtype=torch.long),
            label_names=[stream.label_name(i) for i in idx], names=[stream.name(i) for i in idx],
            source=stream, weights_source=str(getattr(model, "weights_source", "")),
            is_synthetic=state in ("synthetic", "planted"), weights_state=state,
            _fields=fields_for(model, layer, grid, image_size),
        ))  # fmt: skip
    return results if many else results[0]


def _stream_top_k(model, stream: ImageStream, units, k: int, by: str, progress: bool):
    """One pass over ``stream`` keeping a running top-``k`` per unit (constant memory)."""
    layers = list(dict.fromkeys(layer for layer, _ in units))
    running = {layer: _RunningTopK(sum(1 for l, _ in units if l == layer), k) for layer in layers}
    channels = {layer: [c for l, c in units if l == layer] for layer in layers}
    shapes: dict = {}
    bar = _progress(stream, ", ".join(layers), progress and distributed.is_main())
    try:
        for images, indices, _labels in rank_batches(stream):
            acts = unit_activations(model, images, layers)
            for layer in layers:
                a = acts[layer]
                if layer not in shapes:
                    shapes[layer] = tuple(a.shape[-2:]), tuple(images.shape[-2:])
                mx, arg, mean = _reduce(a[:, channels[layer]])
                running[layer].update(mx if by == "max" else mean, indices, arg)
            bar.update(len(indices))
    finally:
        bar.close()
    if distributed.is_distributed():
        shapes = _merge_ranks(stream, running, shapes)
    if not shapes:
        raise ValueError(f"no readable images in {stream!r}")
    ranked = {}
    for layer in layers:
        r = running[layer]
        for row, ch in enumerate(channels[layer]):
            finite = torch.isfinite(r.scores[row])
            ranked[(layer, ch)] = r.scores[row][finite], r.indices[row][finite], r.positions[row][finite]
    return ranked, shapes


# -- several processes ------------------------------------------------------------------------
def rank_batches(stream: ImageStream):
    """This rank's batches of ``stream``: batch ``b`` (as one process cuts them) goes to rank
    ``b % world_size``, so every image is computed in the same batch as in one process.
    Yields ``(images, indices, labels)`` like the stream; not distributed, the stream itself.
    """
    world, rank = distributed.world_size(), distributed.rank()
    if world == 1:
        yield from stream
        return
    yield from (batch for _, batch in select_batches(stream, rank, world))


def _merge_ranks(stream: ImageStream, running: dict[str, _RunningTopK], shapes: dict) -> dict:
    """Merge every rank's running top-k into ``running`` (in place, on every rank) by the same
    order one process uses; returns the layers' shapes from whichever rank saw images."""
    mine = {layer: (r.scores, r.indices, r.positions) for layer, r in running.items()}
    gathered = distributed.all_gather_object((mine, shapes, dict(stream.skipped)))
    merged_shapes: dict = {}
    for _, their_shapes, skipped in gathered:
        for layer, shape in their_shapes.items():
            merged_shapes.setdefault(layer, shape)
        for index, reason in skipped.items():
            stream.skipped.setdefault(index, reason)
    for layer, r in running.items():
        parts = [g[0][layer] for g in gathered]
        s = torch.cat([p[0] for p in parts], 1)
        i = torch.cat([p[1] for p in parts], 1)
        p = torch.cat([p[2] for p in parts], 1)
        order = _rank(s, i)[:, : r.k]
        r.scores, r.indices, r.positions = s.gather(1, order), i.gather(1, order), p.gather(1, order)
    return merged_shapes


