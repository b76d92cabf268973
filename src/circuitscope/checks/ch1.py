"""Checks for chapter 1's exercises ("Introduction: zooming in on InceptionV1").

One :class:`~.runner.Exercise` per exercise, run by :mod:`.runner`: ``check_x(fn)`` runs the
visible cases, ``check_x(fn, hidden=True)`` those and more. A case is data (tensors, numbers,
lists) or a :class:`~.runner.Recipe` for a course object defined here (a test photo, a planted
classifier, a tiny hooked network, a seeded InceptionV1), which each side builds for itself. The
answers come from the library's own functions, computed where the verdict is; no weights needed.

Every random value of a hidden case comes from a seed passed through :func:`~.runner.hidden_seed`:
the public number here, another one drawn from the grader's private key when it grades.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..core.class_labels import label as _label
from ..core.class_labels import labels as _labels
from ..core.hooks import activations as _ref_activations
from ..core.hooks import capture as _ref_capture
from ..core.images import preprocess as _ref_preprocess
from ..core.models.layers import same_padding
from ..core.models.named import NamedModel
from ..core.receptive_field import chain_receptive_field as _ref_chain
from ..core.receptive_field import kernel_strides
from ..core.receptive_field import receptive_field as _ref_rf
from ..methods.channels import strongest_channels as _ref_strongest
from ..methods.channels import strongest_patch as _ref_patch
from ..methods.classify import top_k_classes as _ref_top_k
from .recipes import generator as _gen
from .recipes import seeded_inception
from .runner import (
    Apply,
    Case,
    CheckFailed,
    Exercise,
    Mistake,
    Recipe,
    as_tensor,
    build,
    compare,
    describe,
    fail,
    hidden_seed,
)

__all__ = [
    "check_capture",
    "check_preprocess",
    "check_receptive_field",
    "check_strongest_channels",
    "check_strongest_patch",
    "check_top_k",
]

#: Where the recipes and steps of this module live.
HERE = "circuitscope.checks.ch1:"


# =============================================================================================
# Exercise 1: preprocessing
# =============================================================================================
def smooth_photo(h: int, w: int, seed: int, kind: str = "uint8") -> np.ndarray:
    """A smooth ``(H, W, 3)`` test image (``(H, W)`` if ``kind == "grey"``): red grows left to
    right, green top to bottom, blue waves. ``kind``: "uint8", "grey" (uint8), "float32", "float64".

    Smooth, so that every reasonable resampler (PIL, torchvision, skimage, antialiased or not)
    gives nearly the same pixels, while a wrong crop, a squash or a flip changes them a lot.
    """
    gen = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    a, b, phase = gen.uniform(0.6, 1.4), gen.uniform(0.6, 1.4), gen.uniform(0, 2 * np.pi)
    red = 0.1 + 0.8 * x + 0 * y
    green = 0.1 + 0.8 * y + 0 * x
    blue = 0.5 + 0.35 * np.sin(2 * np.pi * (a * x + b * y) + phase)
    img = np.stack([red, green, blue], axis=-1)
    if kind == "grey":
        img = img.mean(axis=-1)
    if kind in ("uint8", "grey"):
        return np.round(img * 255).astype(np.uint8)
    return img.astype(np.float64 if kind == "float64" else np.float32)


def chelsea() -> np.ndarray:
    """skimage's cat photo: ``(300, 451, 3)`` uint8."""
    import skimage.data

    return skimage.data.chelsea()


def numpy_marked(value) -> tuple[bool, object]:
    """``(whether value is a NumPy array, value)``: a step run where the learner's function ran,
    since an array crosses the boundary as a tensor."""
    return isinstance(value, np.ndarray), value


def _photo(h: int, w: int, seed: int, kind: str = "uint8") -> Recipe:
    return Recipe(HERE + "smooth_photo", h=h, w=w, seed=seed, kind=kind)


def _preprocess_cases(hidden: bool):
    """Landscape, portrait and square images; uint8, float32, float64 and grey; shrunk and
    enlarged; odd sizes; a size equal to the shorter side (nothing to resize)."""
    rows = [
        ("a smooth 120x200 uint8 image, size=64", _photo(120, 200, 0), 64, 0.02, None),
        ("the chelsea photo (300x451 uint8), size=224", Recipe(HERE + "chelsea"), 224, 0.03, None),
    ]
    if hidden:
        rows += [
            ("a portrait 200x120 float32 image in [0, 1], size=64",
             _photo(200, 120, hidden_seed(1), "float32"), 64, 0.02,
             "a portrait (taller than wide) float32 image with values in [0, 1]"),
            ("a square 90x90 uint8 image, size=48", _photo(90, 90, hidden_seed(2)), 48, 0.02,
             "a square uint8 image"),
            ("a grey (H, W) 100x150 uint8 image, size=64", _photo(100, 150, hidden_seed(3), "grey"), 64, 0.02,
             "a grey (H, W) uint8 image, with no channel axis"),
            ("a small 40x60 uint8 image enlarged, size=96", _photo(40, 60, hidden_seed(4)), 96, 0.02,
             "a small uint8 image that must be enlarged (size larger than both sides)"),
            ("an odd 131x257 float64 image, size=100", _photo(131, 257, hidden_seed(5), "float64"), 100, 0.02,
             "a float64 image with odd side lengths"),
            ("the chelsea photo, size=128", Recipe(HERE + "chelsea"), 128, 0.03,
             "the cat photo at another output size"),
            ("a 64x97 uint8 image, size=64 (the shorter side already fits)",
             _photo(64, 97, hidden_seed(6)), 64, 0.02,
             "an image whose shorter side already equals size (no resizing needed, only the crop)"),
        ]  # fmt: skip
    for what, image, size, tol, about in rows:
        yield Case(f"preprocess(image, {size}) for {what}", (image, size), verify=_preprocess_ok,
                   then=(Apply(HERE + "numpy_marked"),), about=about,
                   data={"tol": tol, "expected": _ref_preprocess(image.build(), size)})  # fmt: skip


def _preprocess_ok(case: Case, got) -> None:
    """``got``: ``(returned a NumPy array?, the (3, size, size) image)``."""
    is_numpy, got = got
    size, expected = case.args[1], case.data["expected"]
    if is_numpy:
        fail(f"{case.label} returned a NumPy array", expected="a torch.Tensor", got=f"an array: {describe(got)}",
             hint="convert with torch.from_numpy(array) (and permute to (3, H, W))")  # fmt: skip
    if not isinstance(got, torch.Tensor):
        fail(f"{case.label} should return a tensor", expected="torch.Tensor", got=describe(got))
    if not got.is_floating_point():
        fail(f"{case.label} returned integers", expected="a float tensor (torch.float32)", got=str(got.dtype),
             hint="convert to float and divide uint8 images by 255")  # fmt: skip
    if tuple(got.shape) != (3, size, size):
        fail(f"{case.label} has the wrong shape", expected=(3, size, size), got=tuple(got.shape),
             hint=_shape_hint(got, size))  # fmt: skip
    _expect_unit_range(case, got.float(), expected)
    err = float((got.float() - expected).abs().mean())
    if not err <= case.data["tol"]:
        fail(f"{case.label} gives different pixels", expected=f"mean absolute difference <= {case.data['tol']}",
             got=f"{err:.4f} (your mean {float(got.float().mean()):.3f}, expected mean {float(expected.mean()):.3f})",
             hint="resize the shorter side to `size` (keep the aspect ratio), then crop the centre")  # fmt: skip


def _shape_hint(got: torch.Tensor, size: int) -> str | None:
    if tuple(got.shape) == (size, size, 3):
        return "the model wants channels first: (3, H, W); use .permute(2, 0, 1)"
    if tuple(got.shape) == (size, size) or (got.dim() == 3 and got.shape[0] == 1):
        return "a grey image needs 3 identical channels (RGB): repeat it"
    if got.dim() == 3 and got.shape[0] == 3:
        return "the output must be size x size: resize the shorter side to `size`, then crop the centre"
    return None


def _expect_unit_range(case: Case, got: torch.Tensor, expected: torch.Tensor) -> None:
    """Fail unless ``got`` (3, size, size) lies in [0, 1] and is not scaled down once too often."""
    hi, lo = float(got.max()), float(got.min())
    if lo < -1e-3:
        fail(f"{case.label}: values outside [0, 1]", expected="values in [0, 1]", got=f"min {lo:.4g}, max {hi:.4g}",
             hint="do not subtract a mean or normalise: the model maps [0, 1] to its own range "
             "(x * 255 - 117) itself")  # fmt: skip
    if hi > 1.0 + 1e-3:
        fail(f"{case.label}: values outside [0, 1]", expected="values in [0, 1]", got=f"max {hi:.4g}",
             hint="values must be in [0, 1], not [0, 255]: divide uint8 images by 255")  # fmt: skip
    if hi < 0.05 and float(expected.max()) > 0.5:
        fail(f"{case.label}: the values are far too small", expected=f"max {float(expected.max()):.3f}",
             got=f"max {hi:.4g}", hint="float images are already in [0, 1]: divide only uint8 images by 255")  # fmt: skip


def _variants(image: np.ndarray, size: int) -> dict[str, torch.Tensor]:
    """What common mistakes give for ``image`` (each ``(3, size, size)``), to recognise them."""
    t = torch.from_numpy(np.ascontiguousarray(image)).float()
    if t.dim() == 2:
        t = t[..., None].expand(-1, -1, 3)
    t = t.permute(2, 0, 1)
    if image.dtype == np.uint8:
        t = t / 255
    h, w = t.shape[-2:]

    def resized(nh: int, nw: int) -> torch.Tensor:
        return nn.functional.interpolate(t[None], size=(nh, nw), mode="bilinear", antialias=True,
                                         align_corners=False)[0]  # fmt: skip

    out = {"squash": resized(size, size)}
    if h >= size and w >= size:
        top, left = (h - size) // 2, (w - size) // 2
        out["crop only"] = t[:, top : top + size, left : left + size]
    scale = size / min(h, w)
    out["corner"] = resized(max(size, round(h * scale)), max(size, round(w * scale)))[:, :size, :size]
    out["bgr"] = _ref_preprocess(image, size).flip(0)
    return out


_PREPROCESS_HINTS = {
    "squash": "the image was squashed to a square: resize the SHORTER side to `size` keeping the aspect "
    "ratio, then crop the centre of the longer side",
    "crop only": "the image was cropped but not resized: first resize the shorter side to `size`",
    "corner": "the crop is not centred: take the middle `size` pixels of the longer side "
    "(offset (new_length - size) // 2)",
    "bgr": "the colour channels are in the wrong order: keep RGB (red first), as skimage and PIL give it",
}


def _looks_like(name: str):
    """``when(case, got)``: whether ``got`` is, within the case's tolerance, mistake ``name``."""

    def when(case: Case, got) -> bool:
        is_numpy, got = got
        if is_numpy or not isinstance(got, torch.Tensor) or not got.is_floating_point():
            return False
        if "variants" not in case.data:
            case.data["variants"] = _variants(build(case.args[0]), case.args[1])
        variant = case.data["variants"].get(name)
        return (variant is not None and variant.shape == got.shape
                and float((got.float() - variant).abs().mean()) < case.data["tol"])  # fmt: skip

    return when


check_preprocess = Exercise(
    "check_preprocess", "preprocess", _preprocess_cases,
    forbid=("circuitscope.core.images:preprocess",),
    mistakes=[Mistake(hint, when=_looks_like(name)) for name, hint in _PREPROCESS_HINTS.items()],
    doc="""Check ``fn(image, size) -> (3, size, size)`` float tensor in [0, 1] (exercise 1).

    ``image``: ``(H, W, 3)`` uint8 in [0, 255] or float in [0, 1], or a grey ``(H, W)`` image.
    The shorter side is resized to ``size``, the longer one centre-cropped.""",
)  # fmt: skip


# =============================================================================================
# Exercise 2: top-k classes
# =============================================================================================
class PlantedClassifier(nn.Module):
    """Returns planted logits: image ``i`` of a batch is filled with ``key / 100`` and gets row
    ``key`` of ``table: (rows, 1008)``. So the answer depends on each image, and the check knows it."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"the model expects images (N, 3, H, W), got {tuple(images.shape)}")
        key = (images[:, 0, 0, 0].float() * 100).round().long()
        return self.table[key]


def planted_logits(seed: int, tops: list[list[int]], tied: bool = False) -> torch.Tensor:
    """``(len(tops), 1008)`` logits, row ``r`` largest at ``tops[r]`` in that order. ``tied``:
    the classes of ``tops[r]`` tie in pairs (the 1st with the 2nd, the 3rd with the 4th, ...)."""
    gen = _gen(seed)
    table = torch.randn(len(tops), 1008, generator=gen)
    for r, top in enumerate(tops):
        for j, idx in enumerate(top):
            if tied:
                table[r, idx] = 7.0 - 0.8 * (j // 2)
            else:
                table[r, idx] = 7.0 - 0.8 * j + 0.1 * float(torch.rand((), generator=gen))
    return table


def planted_classifier(seed: int, tops: list[list[int]], tied: bool = False) -> PlantedClassifier:
    return PlantedClassifier(planted_logits(seed, tops, tied)).eval()


def images_for(n: int) -> torch.Tensor:
    """``(n, 3, 8, 8)``: image ``i`` is filled with ``i / 100`` (it selects row ``i`` of the table)."""
    return (torch.arange(n, dtype=torch.float32) / 100).view(n, 1, 1, 1).expand(n, 3, 8, 8).contiguous()


def _top_k_cases(hidden: bool):
    """Batches of 1 to 4 images; k from 1 to 10; class 0 ("dummy") and 1000+ among the answers;
    and tied logits (any order among classes of equal probability is accepted)."""
    # (what, planted top classes per image, k, tied, the seed of the other logits)
    rows = [("3 images, k=5", [[1, 55, 8, 174, 10], [947, 859, 996, 2, 0], [234, 251, 542, 1000, 7]], 5, False,
             100, None)]  # fmt: skip
    if hidden:
        rows += [
            ("1 image, k=1", [[449]], 1, False, hidden_seed(101),
             "a batch of a single image, asking for the top class only"),
            ("4 images, k=10", [[3 * i + j * 7 + 11 for j in range(6)] for i in range(4)], 10, False, hidden_seed(102),
             "a larger batch and a larger k"),
            ("2 images, k=3", [[1000, 1, 500], [0, 999, 2]], 3, False, hidden_seed(103),
             'the "dummy" class and the last labelled class among the top classes'),
            ("2 images, k=3, classes tied in pairs (any order among equal probabilities)",
             [[17, 3, 640, 88, 5, 6], [1007, 0, 12, 13, 14, 15]], 3, True, hidden_seed(104),
             ("logits with classes tied in pairs, a tie at the k-th place and an unlabelled class among the top "
             "(any order among equal probabilities is accepted)")),
        ]  # fmt: skip
    for what, tops, k, tied, seed, about in rows:
        model = Recipe(HERE + "planted_classifier", seed=seed, tops=tops, tied=tied)
        images = images_for(len(tops))
        with torch.no_grad():
            logits = model.build()(images)
        yield Case(f"top_k_classes(model, images, k={k}) for {what}", (model, images, k),
                   verify=_top_k_ok, about=about, data={"logits": logits, "expected": _ref_top_k(model.build(), images, k)})  # fmt: skip


def _triples(case: Case, got) -> list[list[tuple[int, str, float]]]:
    """``got`` as one list of ``(index, label, probability)`` per image, or a failure saying how not."""
    n, k = case.data["logits"].shape[0], case.args[2]
    if not isinstance(got, (list, tuple)) or len(got) != n:
        fail(f"{case.label} should return one list per image", expected=f"a list of {n} lists",
             got=describe(got) + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else ""),
             hint="loop over the images of the batch: one list of (index, label, probability) per image")  # fmt: skip
    for i, row in enumerate(got):
        if not isinstance(row, (list, tuple)) or len(row) != k:
            fail(f"{case.label}: the list for image {i} should have k={k} entries",
                 expected=f"{k} (index, label, probability) tuples",
                 got=describe(row) + (f" of length {len(row)}" if isinstance(row, (list, tuple)) else ""),
                 hint="take the k largest probabilities (torch.topk)")  # fmt: skip
    return [[_triple(case, entry) for entry in row] for row in got]


def _triple(case: Case, entry) -> tuple[int, str, float]:
    if not isinstance(entry, (list, tuple)) or len(entry) != 3:
        fail(f"{case.label}: each entry should be a tuple (index, label, probability)",
             expected="(int, str, float)", got=repr(entry)[:80])  # fmt: skip
    idx, name, prob = entry
    try:
        idx, prob = int(idx), float(prob)
    except (TypeError, ValueError, RuntimeError):
        fail(f"{case.label}: index and probability should be numbers", expected="(int, str, float)",
             got=repr(entry)[:80], hint="use .item() to turn one-element tensors into numbers")  # fmt: skip
    if not isinstance(name, str):
        fail(f"{case.label}: the label should be a string", expected="str", got=describe(name),
             hint="cs.labels()[index] is the class name")  # fmt: skip
    return idx, name, prob


def _ranked(logits: torch.Tensor, got: list[int], expected: list[int]) -> bool:
    """Whether ``got`` are ``len(expected)`` distinct classes whose logits (one image's ``(1008,)``)
    equal those of ``expected``, rank by rank: the right answer up to the order among ties."""
    if len(set(got)) != len(got) or not all(0 <= i < logits.shape[0] for i in got):
        return False
    return bool((logits[got] == logits[expected]).all())


def _top_k_error(case: Case, rows) -> tuple[int, str] | None:
    """The first wrong image and what is wrong in it: "classes", "labels" or "probabilities"."""
    logits = case.data["logits"]
    probs = torch.softmax(logits.double(), dim=-1)
    for i, row in enumerate(rows):
        idx = [t[0] for t in row]
        if not _ranked(logits[i], idx, [t[0] for t in case.data["expected"][i]]):
            return i, "classes"
        if [t[1] for t in row] != [_label(x) for x in idx]:
            return i, "labels"
        if not bool(torch.isclose(torch.tensor([t[2] for t in row], dtype=torch.float64), probs[i, idx],
                                  rtol=1e-3, atol=1e-5).all()):  # fmt: skip
            return i, "probabilities"
    return None


def _top_k_ok(case: Case, got) -> None:
    rows = _triples(case, got)
    error = _top_k_error(case, rows)
    if error is None:
        return
    i, part = error
    got_row, want = rows[i], case.data["expected"][i]
    if part == "classes":
        fail(f"{case.label}: wrong classes for image {i}", expected=[t[0] for t in want],
             got=[t[0] for t in got_row], hint="take the k LARGEST probabilities of each image, the most probable first")  # fmt: skip
    if part == "labels":
        fail(f"{case.label}: labels of image {i}", expected=[_label(t[0]) for t in got_row],
             got=[t[1] for t in got_row], hint="label each class with cs.labels()[index]")  # fmt: skip
    probs = torch.softmax(case.data["logits"].double(), dim=-1)[i, [t[0] for t in got_row]]
    fail(f"{case.label}: probabilities of image {i}", expected=[round(float(p), 6) for p in probs],
         got=[round(t[2], 6) for t in got_row], hint="the probability is the softmax of the logits over the 1008 classes")  # fmt: skip


def _top_k_mistake(hint: str, part: str, test) -> Mistake:
    """A mistake recognised in the first wrong image, when ``part`` of it is what is wrong:
    ``test(case, i, got_indices, expected_indices, got_row)``."""

    def when(case: Case, got) -> bool:
        try:
            rows = _triples(case, got)
        except CheckFailed:
            return False
        error = _top_k_error(case, rows)
        if error is None or error[1] != part:
            return False
        i = error[0]
        want = [t[0] for t in case.data["expected"][i]]
        return bool(test(case, i, [t[0] for t in rows[i]], want, rows[i]))

    return Mistake(hint, when=when)


def _shifted_names(want: list[int]) -> list[list[str | None]]:
    names = _labels()
    return [[names[x + d] if 0 <= x + d < len(names) else None for x in want] for d in (1, -1)]


def _probs_close(row, values: torch.Tensor, atol: float) -> bool:
    return bool(torch.isclose(torch.tensor([t[2] for t in row], dtype=torch.float64), values.double(),
                              rtol=1e-3, atol=atol).all())  # fmt: skip


_TOP_K_MISTAKES = [
    _top_k_mistake("right classes, wrong order: sort by probability, largest first (torch.topk does)", "classes",
                   lambda case, i, g, e, row: sorted(g) == sorted(e)),
    _top_k_mistake("the indices are shifted by one: the logit index IS the class index (0 is 'dummy')", "classes",
                   lambda case, i, g, e, row: g in ([x + 1 for x in e], [x - 1 for x in e])),
    _top_k_mistake("these are the LEAST probable classes: sort descending (torch.topk)", "classes",
                   lambda case, i, g, e, row: g == case.data["logits"][i].argsort()[: len(e)].tolist()),
    _top_k_mistake("labels()[0] is 'dummy' and labels()[i] names logit i: did you shift indices by one?",
                   "labels", lambda case, i, g, e, row: [t[1] for t in row] in _shifted_names(g)),
    _top_k_mistake("these are logits, not probabilities: apply torch.softmax(logits, dim=-1)", "probabilities",
                   lambda case, i, g, e, row: _probs_close(row, case.data["logits"][i, g], 1e-4)),
    _top_k_mistake("softmax over the classes (dim=-1 or dim=1), not over the batch (dim=0)", "probabilities",
                   lambda case, i, g, e, row: len(case.data["logits"]) > 1 and _probs_close(
                       row, torch.softmax(case.data["logits"].double(), dim=0)[i, g], 1e-5)),
    _top_k_mistake("probabilities lie in [0, 1]: apply torch.softmax(logits, dim=-1)", "probabilities",
                   lambda case, i, g, e, row: any(not 0 <= t[2] <= 1 + 1e-6 for t in row)),
]  # fmt: skip

check_top_k = Exercise(
    "check_top_k", "top_k_classes", _top_k_cases, mistakes=_TOP_K_MISTAKES,
    forbid=("circuitscope.methods.classify:top_k_classes",),
    errors={"IndexError": "an index past the end of a list: labels()[i] names logit i (labels()[0] is 'dummy'), "
            "so did you shift indices by one? (cs.label(i) also names logits 1001-1007)"},
    doc="""Check ``fn(model, images, k) -> [[(index, label, probability), ...] per image]`` (exercise 2).""",
)  # fmt: skip


# =============================================================================================
# Exercise 3: forward hooks
# =============================================================================================
class TinyHooked(NamedModel):
    """A tiny network with InceptionV1's interface (a :class:`~circuitscope.core.models.named.NamedModel`:
    ``hook_points[name]``, ``layer_names``, ``named_forward``).

    ``(N, 3, H, W) -> (N, 7)``: conv 3x3 -> ReLU -> max pool 2 -> mean -> linear. With
    ``fail_after`` set, the forward pass raises a RuntimeError right after that hook point, to test
    that hooks go even on errors.
    """

    layer_names: ClassVar[list[str]] = ["conv2d0_pre_relu", "conv2d0", "maxpool0", "softmax2_pre_activation"]
    layer_channels: ClassVar[dict[str, int]] = {"conv2d0_pre_relu": 5, "conv2d0": 5, "maxpool0": 5,
                                                "softmax2_pre_activation": 7}  # fmt: skip
    relus: ClassVar[dict[str, str]] = {"conv2d0": "conv2d0_pre_relu"}

    def __init__(self, seed: int = 0, fail_after: str | None = None):
        super().__init__()
        gen = _gen(seed)
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.linear = nn.Linear(5, 7)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.fail_after = fail_after
        self.requires_grad_(False)

    def _point(self, name: str, x: torch.Tensor) -> tuple[str, torch.Tensor]:
        item = self.emit(name, x)
        if name == self.fail_after:
            raise RuntimeError(f"planted failure after {name!r} (the check makes the forward pass fail)")
        return item

    def named_forward(self, images: torch.Tensor):
        _, x = item = self._point("conv2d0_pre_relu", self.conv(images))
        yield item
        _, x = item = self._point("conv2d0", torch.relu(x))
        yield item
        _, x = item = self._point("maxpool0", nn.functional.max_pool2d(x, 2))
        yield item
        yield self._point("softmax2_pre_activation", self.linear(x.mean(dim=(-2, -1))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.run_to(images, ["softmax2_pre_activation"])["softmax2_pre_activation"]


class OwnHook:
    """A forward hook that belongs to the model (it records nothing): a capture must leave it."""

    def __call__(self, module, inputs, output) -> None:
        return None


def _global_hook_ids() -> tuple[tuple[int, ...], tuple[int, ...]]:
    from torch.nn.modules import module

    return tuple(module._global_forward_hooks), tuple(module._global_forward_pre_hooks)


def with_own_hook(model: nn.Module, at: str | None = None) -> nn.Module:
    """``model`` with an :class:`OwnHook` on ``hook_points[at]`` (none if ``at`` is None); notes
    the global hooks there are now, as ``global_hooks_at_build``, for :func:`hooks_left`."""
    if at is not None:
        model.hook_points[at].register_forward_hook(OwnHook())
    model.global_hooks_at_build = _global_hook_ids()
    return model


def hooks_left(model: nn.Module, images=None, names=None) -> dict:
    """The hooks on ``model``: ``{"modules": {module name: (forward hooks, forward pre-hooks,
    OwnHooks among the forward hooks)} for every module that has one, "global": (global hooks added,
    global hooks removed since the model was built)}``. Called after the learner's function."""
    # Reported by the kernel: the hooks its torch holds; a kernel that rewrites torch can misreport them.
    modules = {}
    for name, module in model.named_modules():
        forward, pre = module._forward_hooks, module._forward_pre_hooks
        if forward or pre:
            own = sum(isinstance(h, OwnHook) for h in forward.values())
            modules[name] = (len(forward), len(pre), own)
    before, now = getattr(model, "global_hooks_at_build", ((), ())), _global_hook_ids()
    added = sum(len(set(n) - set(b)) for b, n in zip(before, now))
    removed = sum(len(set(b) - set(n)) for b, n in zip(before, now))
    return {"modules": modules, "global": (added, removed)}


def _model(factory: str, at: str | None, **kwargs) -> Recipe:
    return Recipe(HERE + "with_own_hook", model=Recipe(HERE + factory, **kwargs), at=at)


_LATE_BINDING = (
    "all your hooks wrote to the same key: a hook defined in a loop sees the loop variable's LAST "
    "value. Bind the name when you make the hook: def make_hook(name): def hook(module, inputs, "
    "output): store[name] = output; return hook"
)
_PLANTED = "RuntimeError: planted failure"


def _capture_case(label: str, model: Recipe, images: torch.Tensor, names: list[str], **tol) -> Case:
    """One case: the answer and the hooks before the call, from a model of the same recipe."""
    built = model.build()
    with torch.no_grad(), _ref_capture(built, names) as store:
        built(images)
    return Case(label, (model, images, list(names)), verify=_capture_ok, observe=HERE + "hooks_left",
                data={"expected": dict(store), "fired": list(store), "before": hooks_left(built)}, **tol)  # fmt: skip


@lru_cache(maxsize=2)
def _capture_images(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(2, 3, 8, 8)``, ``(3, 3, 11, 7)`` and ``(1, 3, 224, 224)`` images in [0, 1]."""
    gen = _gen(seed)
    return tuple(torch.rand(*shape, generator=gen) for shape in ((2, 3, 8, 8), (3, 3, 11, 7), (1, 3, 224, 224)))  # fmt: skip


@lru_cache(maxsize=2)
def _inception_answer(names: tuple[str, ...], seed: int, image_seed: int) -> tuple[dict, dict]:
    """The activations of InceptionV1 (``seed``) for the 224x224 image of ``image_seed``, and its
    hooks (with an OwnHook on mixed3b): computed once, the model is large."""
    model = with_own_hook(seeded_inception(seed), "mixed3b")
    with torch.no_grad():
        return _ref_activations(model, _capture_images(image_seed)[2], list(names)), hooks_left(model)


def _capture_cases(hidden: bool):
    """The tiny network (one or all hook points, in forward order or not, other image sizes), one
    whose forward pass raises, and the real InceptionV1 structure."""
    images = _capture_images(3)[0]
    for names in (["conv2d0", "maxpool0"], ["softmax2_pre_activation"]):
        yield _capture_case(f"capture_activations(tiny_model, images, {names})",
                            _model("TinyHooked", names[0], seed=1), images, names)  # fmt: skip
    if not hidden:
        return
    # The hidden cases' images and weights: the same shapes, drawn from the hidden seeds.
    image_seed, tiny, inception = hidden_seed(3), hidden_seed(1), hidden_seed(0)
    images, other, image = _capture_images(image_seed)
    names = list(TinyHooked.layer_names)
    yield _capture_case("capture_activations(tiny_model, 3 images 11x7, all four names)",
                        _model("TinyHooked", names[0], seed=tiny), other, names,
                        about="every hook point of the tiny network at once, on oblong images of another size")  # fmt: skip
    # The forward pass fails: the hooks must go all the same (the planted error may pass through).
    failing = _model("TinyHooked", None, seed=tiny, fail_after="conv2d0")
    yield Case("capture_activations(model whose forward pass raises, images, ['conv2d0_pre_relu', 'maxpool0'])",
               (failing, images, ["conv2d0_pre_relu", "maxpool0"]), verify=_capture_ok,
               observe=HERE + "hooks_left", raises=_PLANTED, data={"before": hooks_left(failing.build())},
               about="a model whose forward pass raises an error: your hooks must be removed all the same")  # fmt: skip
    # The real InceptionV1 structure (default initialisation: no weights needed).
    names = ["conv2d0", "mixed3b", "mixed4a_3x3_pre_relu"]
    expected, before = _inception_answer(tuple(names), inception, image_seed)
    yield Case(f"capture_activations(InceptionV1, one 224x224 image, {names})",
               (_model("seeded_inception", "mixed3b", seed=inception), image, names), verify=_capture_ok,
               observe=HERE + "hooks_left", data={"expected": expected, "before": before}, rtol=1e-4, atol=1e-4,
               about="the real InceptionV1 structure, including a pre-ReLU hook point and a layer that already "
               "carries a hook of the model's own (it must stay)")  # fmt: skip
    names = ["maxpool0", "conv2d0_pre_relu"]
    yield _capture_case(f"capture_activations(tiny_model, 3 images 11x7, {names}) (names not in forward order)",
                        _model("TinyHooked", "maxpool0", seed=tiny), other, names,
                        about="names asked for in an order other than the forward pass's")  # fmt: skip


def _capture_ok(case: Case, got) -> None:
    _expect_hooks_as_before(case)
    if case.raises:
        return  # the planted failure: only the hooks matter
    names, expected = case.args[2], case.data["expected"]
    if not isinstance(got, dict):
        fail(f"{case.label} should return a dict", expected="{name: tensor}", got=describe(got))
    if set(got) != set(names):
        hint = "one entry per name asked for, keyed by the name"
        if len(names) > 1 and set(got) == {names[-1]}:
            hint = _LATE_BINDING
        fail(f"{case.label} returned the wrong keys", expected=sorted(names), got=sorted(map(str, got)), hint=hint)
    last = expected[names[-1]]
    if len(names) > 1 and all(_same_tensor(got[name], last, case) for name in names):
        fail(f"{case.label}[{names[0]!r}] holds the value of {names[-1]!r}", hint=_LATE_BINDING)
    for name in names:
        what = f"{case.label}[{name!r}]"
        try:
            compare(got[name], expected[name], what, case.rtol, case.atol)
        except CheckFailed as failure:
            failure.hint = ("store the hook's `output` (hook(module, inputs, output)) for this name, from ONE "
                            "forward pass of these images")  # fmt: skip
            raise


def _same_tensor(got, expected: torch.Tensor, case: Case) -> bool:
    return (isinstance(got, torch.Tensor) and got.shape == expected.shape
            and bool(torch.isclose(got.double(), expected.double(), case.rtol, case.atol).all()))  # fmt: skip


def _expect_hooks_as_before(case: Case) -> None:
    """Fail unless the hooks on the model after the call (``case.observed``, from :func:`hooks_left`)
    are those it had before (``case.data["before"]``): none left, none of the model's own removed."""
    after, before = case.observed, case.data["before"]
    if not isinstance(after, dict) or set(after) != {"modules", "global"}:
        fail(f"{case.label}: the hooks on the model could not be read", got=describe(after))
    names = set(after["modules"]) | set(before["modules"])
    counts = {n: (before["modules"].get(n, (0, 0, 0)), after["modules"].get(n, (0, 0, 0))) for n in names}
    lost = sorted(n for n, (b, a) in counts.items() if any(x < y for x, y in zip(a, b)))
    added = sorted(n for n, (b, a) in counts.items() if a[0] > b[0] or a[1] > b[1])
    global_added, global_removed = after["global"]
    if lost or global_removed:
        where = lost + (["the global hooks"] if global_removed else [])
        fail(f"{case.label}: a hook that was on the model before your function ran is gone",
             expected="the model's other hooks untouched", got=f"hooks removed from {where}",
             hint="remove only your own hooks, each with handle.remove(), not every hook of a module "
             "(never _forward_hooks.clear())")  # fmt: skip
    if not (added or global_added):
        return
    where = ", ".join([n or "the model" for n in added] + (["the global hooks"] if global_added else []))
    if case.raises:
        fail(f"{case.label}: hooks were left on the model after the forward pass raised an error",
             expected="no hooks left", got=f"hooks still on {where}",
             hint="remove the hooks in a `finally:` block (try: ... finally: for h in handles: "
             "h.remove()), so they go even when the forward pass fails")  # fmt: skip
    fail(f"{case.label}: hooks were left on the model", expected="no hooks left after your function returns",
         got=f"hooks still on {where}",
         hint="did you forget to remove the hooks? register_forward_hook returns a handle: call "
         "handle.remove() for each one (a forgotten hook keeps recording on every later forward pass)")  # fmt: skip


def _zipped_in_firing_order(case: Case, got) -> bool:
    """Whether ``got`` pairs ``names`` with the values in the order the hooks fired."""
    names, fired = case.args[2], case.data.get("fired")
    return (fired is not None and fired != names and isinstance(got, dict) and set(got) == set(names)
            and all(_same_tensor(got[n], case.data["expected"][f], case) for n, f in zip(names, fired)))  # fmt: skip


_CAPTURE_MISTAKES = [
    Mistake("the hooks fire in the order of the forward pass, not in the order of `names`: key each value "
            "by its name inside its hook (store[name] = output)", when=_zipped_in_firing_order),
]  # fmt: skip


check_capture = Exercise(
    "check_capture", "capture_activations", _capture_cases, mistakes=_CAPTURE_MISTAKES,
    forbid=("circuitscope.core.hooks:capture", "circuitscope.core.hooks:activations",),
    doc="""Check ``fn(model, images, names) -> {name: activation}`` with forward hooks (exercise 3).

    The hooks go on ``model.hook_points[name]``, one forward pass runs, and every hook is removed
    afterwards, even when the forward pass raises.""",
)  # fmt: skip


# =============================================================================================
# Exercise 4: strongest channels
# =============================================================================================
def planted_acts(n: int, c: int, h: int, w: int, seed: int, signed: bool = False) -> torch.Tensor:
    """``(n, c, h, w)`` activations whose mean-ranking differs from their max-ranking and between images."""
    gen = _gen(seed)
    acts = torch.rand(n, c, h, w, generator=gen) * 0.5
    if signed:
        acts = acts - 0.4 + 0.3 * torch.randn(n, c, h, w, generator=gen)
    for i in range(n):
        perm = torch.randperm(c, generator=gen)
        # Broad channels: high mean everywhere. Spiky channels: one huge value, low mean.
        for rank, ch in enumerate(perm[: max(1, c // 3)].tolist()):
            acts[i, ch] += 1.0 + 0.37 * (c - rank) / c
        for ch in perm[max(1, c // 3) : max(1, c // 3) + max(1, c // 4)].tolist():
            # +0.5 to the mean (less than a broad channel's), but the largest single value.
            y, x = int(torch.randint(h, (), generator=gen)), int(torch.randint(w, (), generator=gen))
            acts[i, ch, y, x] += 0.5 * h * w + 2.0
    return acts


def _with_ties(acts: torch.Tensor, k: int) -> torch.Tensor:
    """``acts`` where, in each image, the channel ranked 2nd copies the 1st and the one ranked
    k+1st copies the kth: equal means, inside the top k and across its edge."""
    acts = acts.clone()
    order = acts.mean(dim=(2, 3)).argsort(dim=1, descending=True)
    for i in range(acts.shape[0]):
        for src, dst in ((0, 1), (k - 1, k)):
            acts[i, order[i, dst]] = acts[i, order[i, src]]
    return acts


def _strongest_cases(hidden: bool):
    """Square and oblong maps, 1x1 maps, k from 1 to all channels, negative values, a real layer's
    size, and channels with equal means (any order among them is accepted)."""
    rows = [((2, 12, 6, 6), 3, False, "", 40, None)]  # (shape, k, signed, note, seed, about)
    if hidden:
        rows += [((3, 40, 5, 9), 5, False, "", hidden_seed(41), "a batch of oblong (H != W) activation maps"),
                 ((1, 7, 1, 1), 7, False, "", hidden_seed(42),
                  "maps of a single position (H and W both one), with k equal to the number of channels"),
                 ((2, 20, 4, 4), 4, True, "", hidden_seed(43), "activations with negative values"),
                 ((1, 480, 28, 28), 10, False, "", hidden_seed(44), "activations the size of a real InceptionV1 layer"),
                 ((2, 9, 3, 5), 1, False, "", hidden_seed(45), "k of one: only the strongest channel"),
                 ((2, 15, 3, 3), 4, False, ", channels with equal means (any order among them)", hidden_seed(46),
                  "channels with equal means, including a tie at the k-th place (any order among them is accepted)")]  # fmt: skip
    for shape, k, signed, note, seed, about in rows:
        acts = planted_acts(*shape, seed=seed, signed=signed)
        acts = _with_ties(acts, k) if note else acts
        scores, channels = _ref_strongest(acts, k)
        yield Case(f"strongest_channels(acts of shape {shape}, k={k}){note}", (acts, k),
                   verify=_strongest_ok, data={"scores": scores, "channels": channels}, about=about)  # fmt: skip


def _two_tensors(case: Case, got) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores, channels)`` of shape ``(N, k)`` each, or a failure saying how ``got`` is not."""
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        fail(f"{case.label} should return two tensors", expected="(scores, channels)", got=describe(got),
             hint="torch.topk returns (values, indices): return both")  # fmt: skip
    acts, k = case.args
    out = []
    for value, what in zip(got, ("scores", "channels")):
        value = as_tensor(value, f"{case.label} {what}")
        if tuple(value.shape) != (acts.shape[0], k):
            hint = ("one row per image, k columns: average over the positions (dims 2 and 3), "
                    "then topk over the channels (dim 1)")  # fmt: skip
            if value.dim() == 4 or tuple(value.shape[:2]) == tuple(acts.shape[:2]):
                hint = "average each channel over its positions first: acts.mean(dim=(2, 3)) is (N, C)"
            fail(f"{case.label}: {what} have the wrong shape", expected=(acts.shape[0], k), got=tuple(value.shape),
                 hint=hint)  # fmt: skip
        out.append(value)
    if out[1].is_floating_point():
        fail(f"{case.label}: channels should be integer indices", expected="torch.int64", got=str(out[1].dtype),
             hint="return the indices from topk, not the values")  # fmt: skip
    return out[0], out[1]


def _right_channels(case: Case, channels: torch.Tensor) -> bool:
    """Whether each row of ``channels (N, k)`` names distinct channels whose means equal the k
    largest, in order (so any order among channels of equal mean is right)."""
    acts, _ = case.args
    means = acts.double().mean(dim=(2, 3))
    for row, mean_row, want in zip(channels.tolist(), means, case.data["scores"].double()):
        if len(set(row)) != len(row) or not all(0 <= ch < acts.shape[1] for ch in row):
            return False
        if not bool(torch.isclose(mean_row[row], want, rtol=1e-5, atol=1e-6).all()):
            return False
    return True


def _strongest_ok(case: Case, got) -> None:
    scores, channels = _two_tensors(case, got)
    if not _right_channels(case, channels):
        fail(f"{case.label}: wrong channels", expected=case.data["channels"].tolist(), got=channels.tolist(),
             hint="rank channels by their mean over all positions, largest first")  # fmt: skip
    try:
        compare(scores, case.data["scores"], f"{case.label}: scores", 1e-4, 1e-5)
    except CheckFailed as failure:
        failure.hint = "the score is the channel's mean over positions"
        raise


def _strongest_mistake(hint: str, part: str, test) -> Mistake:
    """A mistake recognised when the answer has the right shapes and ``part`` ("channels" or
    "scores") is the first thing wrong: ``test(case, acts, k, scores, channels)``."""

    def when(case: Case, got) -> bool:
        try:
            scores, channels = _two_tensors(case, got)
        except CheckFailed:
            return False
        if (part == "channels") == _right_channels(case, channels):
            return False
        acts, k = case.args
        return bool(test(case, acts, k, scores, channels))

    return Mistake(hint, when=when)


def _top(values: torch.Tensor, k: int, **kw) -> list:
    return values.topk(k, dim=-1, **kw).indices.tolist()


_STRONGEST_MISTAKES = [
    _strongest_mistake("you ranked channels by their MAXIMUM; the score is the MEAN over positions", "channels",
                       lambda case, acts, k, s, ch: ch.tolist() == _top(acts.amax(dim=(2, 3)), k)),
    _strongest_mistake("sort from the largest score down (torch.topk, or argsort(descending=True))", "channels",
                       lambda case, acts, k, s, ch: ch.tolist() == _top(acts.mean(dim=(2, 3)), k, largest=False)
                       or [sorted(r) for r in ch.tolist()] == [sorted(r) for r in case.data["channels"].tolist()]),
    _strongest_mistake("each image gets its own ranking: do not average over the batch (dim 0)", "channels",
                       lambda case, acts, k, s, ch: acts.shape[0] > 1
                       and all(r == _top(acts.mean(dim=(0, 2, 3)), k) for r in ch.tolist())),
    _strongest_mistake("rank by the mean itself, not by the mean absolute value", "channels",
                       lambda case, acts, k, s, ch: ch.tolist() == _top(acts.abs().mean(dim=(2, 3)), k)),
    _strongest_mistake("that is the SUM over positions; the score is the MEAN (divide by H * W)", "scores",
                       lambda case, acts, k, s, ch: acts.shape[2] * acts.shape[3] > 1 and bool(torch.isclose(
                           s.double(), case.data["scores"].double() * acts.shape[2] * acts.shape[3],
                           rtol=1e-4, atol=1e-4).all())),
]  # fmt: skip

check_strongest_channels = Exercise(
    "check_strongest_channels", "strongest_channels", _strongest_cases, mistakes=_STRONGEST_MISTAKES,
    forbid=("circuitscope.methods.channels:strongest_channels",),
    doc="""Check ``fn(acts, k) -> (scores, channels)`` (exercise 4).

    ``acts: (N, C, H, W)``; a channel's score is its mean over the H x W positions; ``scores``
    ``(N, k)`` float and ``channels`` ``(N, k)`` integer, largest score first.""",
)  # fmt: skip


# =============================================================================================
# Exercise 5: receptive-field arithmetic
# =============================================================================================
def _variant_fields(ops: list[tuple[int, int]], n: int) -> dict[str, float]:
    """What common mistakes give for the chain ``ops`` at input size ``n``, to name them."""
    start_nopad = start_inpad = 0.0
    jump = 1
    for k, s in ops:
        p_orig, _ = same_padding(n, k, s)
        start_nopad += (k - 1) / 2 * jump
        start_inpad += ((k - 1) / 2 - p_orig) * jump
        jump *= s
    return {"size_no_jump": 1 + sum(k - 1 for k, _ in ops), "start_nopad": start_nopad,
            "start_inpad": start_inpad, "jump_sum": sum(s for _, s in ops)}  # fmt: skip


def _telling(ops: list[tuple[int, int]], n: int) -> bool:
    """Whether the mistakes that get ``start`` wrong give different wrong values on the chain
    ``ops`` at size ``n``: a random chain on which two of them agree could not tell the learner
    which one was made (without padding at the input, padding from the image size looks like none)."""
    size, _, start = _ref_chain(ops, n).as_tuple()
    variants = _variant_fields(ops, n)
    wrong = [v for v in (variants["start_nopad"], variants["start_inpad"], start - (size - 1) / 2) if v != start]
    return len(set(wrong)) == len(wrong)


def _rf_cases(hidden: bool):
    """Hand-made chains, InceptionV1's own paths at several sizes (odd, even, not a multiple of
    the strides), random chains (each telling the mistakes apart), no op at all and a 1-pixel input."""
    rows = [  # (what, ops, input size, about: None for a visible case)
        ("[(3, 1)], 10", [(3, 1)], 10, None),
        ("[(3, 1), (3, 1)], 10", [(3, 1), (3, 1)], 10, None),
        ("conv2d0 then maxpool0: [(7, 2), (3, 2)], 224", [(7, 2), (3, 2)], 224, None),
        ("the path to mixed3a at 224", kernel_strides("mixed3a"), 224, None),
    ]
    if hidden:
        gen = np.random.default_rng(hidden_seed(5))  # random chains: another 8 under the grader's key
        chains = len(rows) + 8
        while len(rows) < chains:
            length = int(gen.integers(1, 7))
            ops = [(int(gen.choice([1, 3, 5, 7])), int(gen.choice([1, 1, 2, 3]))) for _ in range(length)]
            n = int(gen.choice([224, 225, 97, 33, 7]))
            if _telling(ops, n):
                rows.append((f"random chain {ops}, {n}", ops, n,
                             "a random chain of (kernel, stride) ops at a random input size"))
        paths = (("mixed3b", 225, "InceptionV1's path to a layer, at an odd input size"),
                 ("mixed4c", 224, "InceptionV1's path to a deeper layer"),
                 ("mixed4c", 227, ("InceptionV1's path to a deeper layer, at an input size that is not a multiple "
                  "of its strides")),
                 ("mixed5b", 224, "InceptionV1's path to its last layer before the final pooling"),
                 ("maxpool10", 300, ("InceptionV1's path to a pooling layer, at a larger input size that is not a "
                  "multiple of its strides")))
        for layer, n, about in paths:
            rows.append((f"the path to {layer} at {n}", kernel_strides(layer), n, about))
        rows += [("no ops at all: [], 10", [], 10, "an empty chain of ops (the field of a pixel itself)"),
                 ("a 1-pixel input: [(3, 2), (5, 3)], 1", [(3, 2), (5, 3)], 1,
                  "an input of a single pixel, through strided ops")]
    for what, ops, n, about in rows:
        ops = [tuple(op) for op in ops]
        yield Case(f"receptive_field({what})", (ops, n), verify=_rf_ok, about=about,
                   data={"expected": _ref_chain(ops, n).as_tuple(), "variants": _variant_fields(ops, n)})  # fmt: skip


def _three_numbers(case: Case, got) -> tuple[float, float, float]:
    try:
        size, jump, start = got
        return float(size), float(jump), float(start)
    except (TypeError, ValueError, RuntimeError):
        fail(f"{case.label} should return three numbers", expected="(size, jump, start)", got=repr(got)[:80])


def _rf_wrong(case: Case, got) -> str | None:
    """The first of "jump", "size", "start" that ``got`` has wrong (None if all are right)."""
    size, jump, start = _three_numbers(case, got)
    want_size, want_jump, want_start = case.data["expected"]
    for part, value, want in (("jump", jump, want_jump), ("size", size, want_size), ("start", start, want_start)):
        if value != want:
            return part
    return None


_RF_HINTS = {
    "jump": "the jump is the product of the strides so far",
    "size": "each layer adds (kernel - 1) * jump to the size, with the jump BEFORE this layer's stride",
    "start": "start += ((kernel - 1) / 2 - pad_before) * jump, with pad_before from same_padding(n, kernel, stride)",
}


def _rf_ok(case: Case, got) -> None:
    part = _rf_wrong(case, got)
    if part is not None:
        index = ("size", "jump", "start").index(part)
        fail(f"{case.label}: wrong {part}", expected=case.data["expected"][index], got=got[index],
             hint=_RF_HINTS[part])  # fmt: skip


def _rf_mistake(hint: str, part: str, test) -> Mistake:
    """A mistake recognised when ``part`` is the first thing wrong: ``test(case, (size, jump, start))``."""

    def when(case: Case, got) -> bool:
        try:
            return _rf_wrong(case, got) == part and bool(test(case, _three_numbers(case, got)))
        except CheckFailed:
            return False

    return Mistake(hint, when=when)


def _centre_minus_half(case: Case) -> float:
    size, _, start = case.data["expected"]
    return start - (size - 1) / 2


_RF_MISTAKES = [
    _rf_mistake("the jump MULTIPLIES by each stride (it is their product), it does not add up", "jump",
                lambda case, got: got[1] == case.data["variants"]["jump_sum"]),
    _rf_mistake("each layer adds (kernel - 1) TIMES THE JUMP so far, not just (kernel - 1): "
                "did you forget the stride product?", "size",
                lambda case, got: got[0] == case.data["variants"]["size_no_jump"]),
    _rf_mistake("padding shifts the fields: subtract pad_before * jump at each layer (pad_before from same_padding)",
                "start", lambda case, got: got[2] == case.data["variants"]["start_nopad"]),
    _rf_mistake("the padding of each layer depends on the size of ITS input: update n = ceil(n / stride) after "
                "each layer", "start", lambda case, got: got[2] == case.data["variants"]["start_inpad"]),
    _rf_mistake("that is the first pixel of the field; start is its CENTRE: add (size - 1) / 2", "start",
                lambda case, got: got[2] == _centre_minus_half(case)),
]  # fmt: skip

check_receptive_field = Exercise(
    "check_receptive_field", "receptive_field", _rf_cases, mistakes=_RF_MISTAKES,
    forbid=("circuitscope.core.receptive_field:chain_receptive_field", "circuitscope.core.receptive_field:receptive_field",),
    errors={"IndexError": "an empty chain of ops is the pixel itself, (size, jump, start) = (1, 1, 0): start "
            "from those values and loop over every op"},
    doc="""Check ``fn(ops, input_size) -> (size, jump, start)`` (exercise 5).

    ``ops``: ``[(kernel, stride), ...]`` applied in order, each with TensorFlow "SAME" padding;
    ``start`` is the centre of position 0's field in input pixels (pixel i centred at i).""",
)  # fmt: skip


# =============================================================================================
# Exercise 6: the patch a channel saw
# =============================================================================================
def _patch_cases(hidden: bool):
    """Shallow and deep layers, even and odd input sizes, maxima at an edge or a corner (clipped
    boxes), and a channel whose maximum is at two positions (either box is accepted)."""
    # (layer, input size, the planted maximum, the background's seed): the planted maxima below are
    # the case's structure, only the background is random.
    # The last item: what a hidden case tests, in words (None for a visible case).
    rows = [("mixed3a", 224, (5, 20), 60, None), ("conv2d0", 224, (0, 111), 61, None)]
    if hidden:
        rows += [("mixed4a", 224, (3, 11), hidden_seed(62), "a deeper layer, whose fields are large"),
                 ("mixed3b", 225, (27, 2), hidden_seed(63), "an odd input size, the maximum near the map's edges"),
                 ("conv2d2", 97, (12, 24), hidden_seed(64),
                  "an early layer at a small odd input size, the maximum in the map's last column (a clipped box)"),
                 ("mixed4d", 224, (13, 0), hidden_seed(65),
                  "the maximum in the bottom-left corner of the map (a clipped box)"),
                 ("mixed3a", 224, (27, 27), hidden_seed(66),
                  "the maximum in the bottom-right corner of the map (a clipped box)"),
                 ("maxpool1", 225, (4, 9), hidden_seed(67),
                  ("a pooling layer at an odd input size, where two positions tie for the channel's maximum "
                  "(either box is accepted)"))]  # fmt: skip
    for c, (layer, n, (row, col), seed, about) in enumerate(rows):
        rf = _ref_rf(layer, n)
        acts = torch.rand(6, rf.positions, rf.positions, generator=_gen(seed))
        channel = 2 + c % 3
        acts[channel, row, col] = 5.0
        other = (channel + 1) % 6  # another channel peaks higher elsewhere
        acts[other, (row + 3) % rf.positions, (col + 5) % rf.positions] = 9.0
        note = ""
        if layer == "maxpool1":  # a tie: the same maximum at a second position
            acts[channel, row + 5, col - 7] = 5.0
            note = " (two positions tie for the maximum: either box is accepted)"
        yield Case(f"strongest_patch(acts of {layer} {tuple(acts.shape)}, channel={channel}, {layer!r}, {n}){note}",
                   (acts, channel, layer, n), verify=_patch_ok, about=about,
                   data={"expected": tuple(int(v) for v in _ref_patch(acts, channel, layer, n)), "other": other})  # fmt: skip


def _four_ints(case: Case, got) -> tuple[int, int, int, int]:
    try:
        box = tuple(int(v) for v in got)
    except (TypeError, ValueError, RuntimeError):
        box = ()
    if len(box) != 4:
        fail(f"{case.label} should return four integers", expected="(top, left, bottom, right)", got=repr(got)[:80])
    return box


def _right_boxes(case: Case) -> set[tuple[int, int, int, int]]:
    """The boxes of every position where the channel is largest (one, unless there is a tie)."""
    acts, channel, layer, n = case.args
    rf, channel_map = _ref_rf(layer, n), acts[channel]
    return {rf.box(int(r), int(c)) for r, c in (channel_map == channel_map.max()).nonzero().tolist()}


def _patch_ok(case: Case, got) -> None:
    box = _four_ints(case, got)
    if box not in _right_boxes(case):
        fail(f"{case.label}: wrong box", expected=case.data["expected"], got=box,
             hint="take the position (row, col) of the channel's maximum, then the receptive field of that "
             "row and of that column: centre = start + i * jump, half = (size - 1) // 2")  # fmt: skip


def _patch_mistake(hint: str, test) -> Mistake:
    """``test(case, box, rf, (row, col), expected)``: the channel's strongest position, the right box."""

    def when(case: Case, got) -> bool:
        try:
            box = _four_ints(case, got)
        except CheckFailed:
            return False
        acts, channel, layer, n = case.args
        rf = _ref_rf(layer, n)
        position = divmod(int(acts[channel].flatten().argmax()), rf.positions)
        return bool(test(case, box, rf, position, case.data["expected"]))

    return Mistake(hint, when=when)


def _unclipped(rf, row: int, col: int) -> tuple[int, int, int, int]:
    return rf.span(row)[0], rf.span(col)[0], rf.span(row)[1], rf.span(col)[1]


def _other_channel_box(case: Case, rf) -> tuple[int, int, int, int]:
    acts = case.args[0]
    return rf.box(*divmod(int(acts[case.data["other"]].flatten().argmax()), rf.positions))


def _one_past(box, expected, n: int) -> bool:
    return box == (*expected[:2], expected[2] + 1, expected[3] + 1) or box[2:] == tuple(
        min(v + 1, n) for v in expected[2:])  # fmt: skip


_PATCH_MISTAKES = [
    _patch_mistake("rows and columns are swapped: the box is (top, left, bottom, right) = rows first",
                   lambda case, box, rf, pos, e: box == rf.box(pos[1], pos[0])),
    _patch_mistake("clip the box to the image: rows and columns run from 0 to input_size - 1",
                   lambda case, box, rf, pos, e: box == _unclipped(rf, *pos)),
    _patch_mistake("use the maximum of acts[channel] only, not of all channels",
                   lambda case, box, rf, pos, e: box == _other_channel_box(case, rf)),
    _patch_mistake("bottom and right are INCLUSIVE: the last pixel of the field, not one past it",
                   lambda case, box, rf, pos, e: _one_past(box, e, case.args[3])),
    _patch_mistake("the size is right but the place is not: centre = start + i * jump (start can be negative)",
                   lambda case, box, rf, pos, e: box[2] - box[0] == rf.size - 1 and box[3] - box[1] == rf.size - 1),
]  # fmt: skip

check_strongest_patch = Exercise(
    "check_strongest_patch", "strongest_patch", _patch_cases, mistakes=_PATCH_MISTAKES,
    forbid=("circuitscope.methods.channels:strongest_patch",),
    doc="""Check ``fn(acts, channel, layer, input_size) -> (top, left, bottom, right)`` (exercise 6).

    ``acts: (C, H, W)`` of ``layer`` for one square ``input_size`` image; the box is the receptive
    field of the position where ``channel`` is largest, inclusive, clipped to the image.""",
)  # fmt: skip
