"""Checks for chapter 1's exercises ("Introduction: zooming in on InceptionV1").

One function per exercise. ``check_x(fn)`` runs a few seeded cases (the visible cell of the
notebook); ``check_x(fn, hidden=True)`` runs those and more (nbgrader's hidden tests: other
sizes, non-square inputs, grey images, failing forward passes, ...). Each prints one success
line or raises :class:`~circuitscope.checks.CheckFailed` with expected vs got and a hint.

The checks need no weights: they build planted models (tiny modules whose answers are known)
or an InceptionV1 with PyTorch's default initialisation, so they pass with the real weights,
the synthetic ones or none. The reference implementations are bound when this module is
imported, so redefining a library name in a notebook changes nothing here; and every check runs
in :func:`~circuitscope.checks._core.pristine` (the ``@C.check`` decorator), so patching what
those references use (``torch.softmax = ...``, ``torch.Tensor.argmax = ...``) changes nothing
either, while the learner's function still runs in the learner's world. Import this module in
the notebook's locked setup cell, before any learner code.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import nn

from ..hooks import activations as _ref_activations
from ..hooks import capture as _ref_capture
from ..channels import strongest_channels as _ref_strongest
from ..channels import strongest_patch as _ref_patch
from ..classify import top_k_classes as _ref_top_k
from ..images import preprocess as _ref_preprocess
from ..class_labels import labels as _labels
from ..models.inceptionv1 import HookPoint as _HookPoint
from ..models.layers import same_padding as _same_padding
from ..receptive_field import chain_receptive_field as _ref_chain
from ..receptive_field import kernel_strides as _kernel_strides
from ..receptive_field import receptive_field as _ref_rf
from . import _core as C

# The library modules the references above use, as they are now (before any learner code).
C.protect_package("circuitscope", exclude=("circuitscope.checks", "circuitscope_course"))

__all__ = [
    "check_preprocess",
    "check_top_k",
    "check_capture",
    "check_strongest_channels",
    "check_receptive_field",
    "check_strongest_patch",
]

_Tensor = torch.Tensor
_ndarray = np.ndarray
_plain_str = str.__str__  # an exact str, even from a str subclass whose __eq__ would lie
_abs = torch.abs
_LABELS = tuple(_labels())


# =============================================================================================
# Exercise 1: preprocessing
# =============================================================================================
def _smooth_photo(h: int, w: int, seed: int, kind: str = "uint8"):
    """A smooth (H, W, 3) test image: red grows left to right, green top to bottom, blue waves.

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


def _chelsea():
    import skimage.data

    return skimage.data.chelsea()  # (300, 451, 3) uint8


def _describe_image(img) -> str:
    return f"{img.dtype} array of shape {img.shape}"


def _preprocess_cases(hidden: bool):
    cases = [
        ("a smooth 120x200 uint8 image, size=64", _smooth_photo(120, 200, 0), 64, 0.02),
        ("the chelsea photo (300x451 uint8), size=224", _chelsea(), 224, 0.03),
    ]
    if hidden:
        cases += [
            (
                "a portrait 200x120 float32 image in [0, 1], size=64",
                _smooth_photo(200, 120, 1, "float32"),
                64,
                0.02,
            ),
            ("a square 90x90 uint8 image, size=48", _smooth_photo(90, 90, 2), 48, 0.02),
            ("a grey (H, W) 100x150 uint8 image, size=64", _smooth_photo(100, 150, 3, "grey"), 64, 0.02),
            ("a small 40x60 uint8 image enlarged, size=96", _smooth_photo(40, 60, 4), 96, 0.02),
            ("an odd 131x257 float64 image, size=100", _smooth_photo(131, 257, 5, "float64"), 100, 0.02),
            ("the chelsea photo, size=128", _chelsea(), 128, 0.03),
        ]
    return cases


def _variants(image, size: int) -> dict[str, torch.Tensor]:
    """What common mistakes would give, to recognise them in a learner's answer."""
    t = torch.from_numpy(np.ascontiguousarray(image)).float()
    if t.dim() == 2:
        t = t[..., None].expand(-1, -1, 3)
    t = t.permute(2, 0, 1)
    if image.dtype == np.uint8:
        t = t / 255
    h, w = t.shape[-2:]
    out = {}
    out["squash"] = nn.functional.interpolate(
        t[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )[0]
    if h >= size and w >= size:
        top, left = (h - size) // 2, (w - size) // 2
        out["crop only"] = t[:, top : top + size, left : left + size]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    big = nn.functional.interpolate(
        t[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False
    )[0]
    out["corner"] = big[:, :size, :size]
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


@C.check
def check_preprocess(fn, hidden: bool = False) -> None:
    """Check ``fn(image, size) -> (3, size, size)`` float tensor in [0, 1] (exercise 1).

    ``image``: ``(H, W, 3)`` uint8 in [0, 255] or float in [0, 1], or a grey ``(H, W)`` image.
    The shorter side is resized to ``size``, the longer one centre-cropped.
    """
    cases = _preprocess_cases(hidden)
    for what, image, size, tol in cases:
        label = f"preprocess(image, {size}) for {what}"
        expected = _ref_preprocess(image, size)
        got = C.call(fn, image.copy(), size, what=label)
        if isinstance(got, _ndarray):
            C.fail(
                f"{label} returned a NumPy array",
                expected="a torch.Tensor",
                got=_describe_image(got),
                hint="convert with torch.from_numpy(array) (and permute to (3, H, W))",
            )
        if not isinstance(got, _Tensor):
            C.fail(f"{label} should return a tensor", expected="torch.Tensor", got=type(got).__name__)
        got = C.plain_tensor(got)
        C.resync()
        if not got.is_floating_point():
            C.fail(
                f"{label} returned integers",
                expected="a float tensor (torch.float32)",
                got=str(got.dtype),
                hint="convert to float and divide uint8 images by 255",
            )
        if tuple(got.shape) != tuple(expected.shape):
            hint = None
            if tuple(got.shape) == (size, size, 3):
                hint = "the model wants channels first: (3, H, W); use .permute(2, 0, 1)"
            elif tuple(got.shape) == (size, size) or (got.dim() == 3 and got.shape[0] == 1):
                hint = "a grey image needs 3 identical channels (RGB): repeat it"
            elif got.dim() == 3 and got.shape[0] == 3 and tuple(got.shape[1:]) != (size, size):
                hint = (
                    "the output must be size x size: resize the shorter side to `size`, then crop the centre"
                )
            C.fail(f"{label} has the wrong shape", expected=(3, size, size), got=tuple(got.shape), hint=hint)
        got = got.float()
        hi, lo = float(got.max()), float(got.min())
        if lo < -1e-3:
            C.fail(
                f"{label}: values outside [0, 1]",
                expected="values in [0, 1]",
                got=f"min {lo:.4g}, max {hi:.4g}",
                hint="do not subtract a mean or normalise: the model maps [0, 1] to its own range "
                "(x * 255 - 117) itself",
            )
        if hi > 1.0 + 1e-3:
            C.fail(
                f"{label}: values outside [0, 1]",
                expected="values in [0, 1]",
                got=f"max {hi:.4g}",
                hint="values must be in [0, 1], not [0, 255]: divide uint8 images by 255",
            )
        if hi < 0.05 and float(expected.max()) > 0.5:
            C.fail(
                f"{label}: the values are far too small",
                expected=f"max {float(expected.max()):.3f}",
                got=f"max {hi:.4g}",
                hint="float images are already in [0, 1]: divide only uint8 images by 255",
            )
        err = float(_abs(got - expected).mean())
        if not err <= tol:
            hint = "resize the shorter side to `size` (keep the aspect ratio), then crop the centre"
            for name, variant in _variants(image, size).items():
                if tuple(variant.shape) == tuple(got.shape) and float(_abs(got - variant).mean()) < tol:
                    hint = _PREPROCESS_HINTS[name]
                    break
            C.fail(
                f"{label} gives different pixels",
                expected=f"mean absolute difference <= {tol}",
                got=f"{err:.4f} (your mean {float(got.mean()):.3f}, "
                f"expected mean {float(expected.mean()):.3f})",
                hint=hint,
            )
    C.done("preprocess", len(cases), hidden)


# =============================================================================================
# Exercise 2: top-k classes
# =============================================================================================
class _PlantedClassifier(nn.Module):
    """Returns planted logits: image ``i`` of a batch is filled with ``key / 100`` and gets row
    ``key`` of ``table``. So the answer depends on each image, and the check knows it."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"the model expects images (N, 3, H, W), got {tuple(images.shape)}")
        key = (images[:, 0, 0, 0].float() * 100).round().long()
        return self.table[key]


def _planted_logits(rows: int, seed: int, tops: list[list[int]]) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(rows, 1008, generator=gen)
    for r, top in enumerate(tops):
        for j, idx in enumerate(top):
            table[r, idx] = 7.0 - 0.8 * j + 0.1 * float(torch.rand((), generator=gen))
    return table


def _top_k_cases(hidden: bool):
    cases = [("3 images, k=5", [[1, 55, 8, 174, 10], [947, 859, 996, 2, 0], [234, 251, 542, 1000, 7]], 5)]
    if hidden:
        cases += [
            ("1 image, k=1", [[449]], 1),
            ("4 images, k=10", [[3 * i + j * 7 + 11 for j in range(6)] for i in range(4)], 10),
            ("2 images, k=3", [[1000, 1, 500], [0, 999, 2]], 3),
        ]
    return cases


def _images_for(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float32) / 100).view(n, 1, 1, 1).expand(n, 3, 8, 8).contiguous()


def _as_triples(got, n: int, k: int, label: str) -> list[list[tuple[int, str, float]]]:
    if not isinstance(got, (list, tuple)) or len(got) != n:
        C.fail(
            f"{label} should return one list per image",
            expected=f"a list of {n} lists",
            got=type(got).__name__ + (f" of length {len(got)}" if hasattr(got, "__len__") else ""),
            hint="loop over the images of the batch: one list of (index, label, probability) per image",
        )
    out = []
    for i, row in enumerate(got):
        if not isinstance(row, (list, tuple)) or len(row) != k:
            C.fail(
                f"{label}: the list for image {i} should have k={k} entries",
                expected=f"{k} (index, label, probability) tuples",
                got=type(row).__name__ + (f" of length {len(row)}" if hasattr(row, "__len__") else ""),
                hint="take the k largest probabilities (torch.topk)",
            )
        triples = []
        for entry in row:
            if not isinstance(entry, (list, tuple)) or len(entry) != 3:
                C.fail(
                    f"{label}: each entry should be a tuple (index, label, probability)",
                    expected="(int, str, float)",
                    got=repr(entry)[:80],
                )
            idx, name, prob = entry
            try:
                idx_i, prob_f = int(idx), float(prob)
            except (TypeError, ValueError, RuntimeError):
                C.fail(
                    f"{label}: index and probability should be numbers",
                    expected="(int, str, float)",
                    got=repr(entry)[:80],
                    hint="use .item() to turn one-element tensors into numbers",
                )
            if not isinstance(name, str):
                C.fail(
                    f"{label}: the label should be a string",
                    expected="str",
                    got=type(name).__name__,
                    hint="cs.labels()[index] is the class name",
                )
            triples.append((idx_i, _plain_str(name), prob_f))
        out.append(triples)
    C.resync()  # the learner's objects ran their own methods above
    return out


@C.check
def check_top_k(fn, hidden: bool = False) -> None:
    """Check ``fn(model, images, k) -> [[(index, label, probability), ...] per image]`` (exercise 2)."""
    cases = _top_k_cases(hidden)
    for c, (what, tops, k) in enumerate(cases):
        n = len(tops)
        table = _planted_logits(n, seed=100 + c, tops=tops)
        images = _images_for(n)
        # The reference answer first, from a model of its own: the learner's gets another copy.
        reference_model = _PlantedClassifier(table.clone()).eval()
        expected = _ref_top_k(reference_model, images, k)
        with torch.no_grad():
            logits = reference_model(images)
        model = _PlantedClassifier(table.clone()).eval()
        label = f"top_k_classes(model, images, k={k}) for {what}"
        try:
            with C.learner():
                answer = fn(model, images.clone(), k)
        except IndexError as err:
            C.fail(
                f"{label} raised IndexError: {err}",
                hint="an index past the end of a list: labels()[i] names logit i (labels()[0] is 'dummy'), "
                "so did you shift indices by one? (cs.label(i) also names logits 1001-1007)",
            )
        except Exception:  # noqa: BLE001 -- reported by C.call with the usual message
            answer = C.call(fn, model, images.clone(), k, what=label)
        got = _as_triples(answer, n, k, label)
        for i in range(n):
            g_idx = [t[0] for t in got[i]]
            e_idx = [t[0] for t in expected[i]]
            if g_idx != e_idx:
                hint = "take the k LARGEST probabilities of each image, the most probable first"
                if sorted(g_idx) == sorted(e_idx):
                    hint = "right classes, wrong order: sort by probability, largest first (torch.topk does)"
                elif g_idx == [x + 1 for x in e_idx] or g_idx == [x - 1 for x in e_idx]:
                    hint = "the indices are shifted by one: the logit index IS the class index (0 is 'dummy')"
                elif g_idx == logits[i].argsort()[:k].tolist():
                    hint = "these are the LEAST probable classes: sort descending (torch.topk)"
                C.fail(f"{label}: wrong classes for image {i}", expected=e_idx, got=g_idx, hint=hint)
            g_names = [t[1] for t in got[i]]
            e_names = [t[1] for t in expected[i]]
            if g_names != e_names:
                hint = "label each class with cs.labels()[index]"
                shifted = [
                    [_LABELS[x + d] if 0 <= x + d < len(_LABELS) else None for x in e_idx] for d in (1, -1)
                ]
                if g_names in shifted:
                    hint = (
                        "labels()[0] is 'dummy' and labels()[i] names logit i: did you shift indices by one?"
                    )
                C.expect_equal(g_names, e_names, f"{label}: labels of image {i}", hint=hint)
            g_p = torch.tensor([t[2] for t in got[i]], dtype=torch.float64)
            e_p = torch.tensor([t[2] for t in expected[i]], dtype=torch.float64)
            if not C.close(g_p, e_p, rtol=1e-3, atol=1e-5):
                hint = "the probability is the softmax of the logits over the 1008 classes"
                raw = logits[i, e_idx].double()
                over_batch = torch.softmax(logits.double(), dim=0)[i, e_idx]
                if C.close(g_p, raw, rtol=1e-3, atol=1e-4):
                    hint = "these are logits, not probabilities: apply torch.softmax(logits, dim=-1)"
                elif n > 1 and C.close(g_p, over_batch, rtol=1e-3, atol=1e-5):
                    hint = "softmax over the classes (dim=-1 or dim=1), not over the batch (dim=0)"
                elif float(g_p.max()) > 1 + 1e-6 or float(g_p.min()) < 0:
                    hint = "probabilities lie in [0, 1]: apply torch.softmax(logits, dim=-1)"
                C.expect_close(
                    g_p, e_p, f"{label}: probabilities of image {i}", rtol=1e-3, atol=1e-5, hint=hint
                )
    C.done("top_k_classes", len(cases), hidden)


# =============================================================================================
# Exercise 3: forward hooks
# =============================================================================================
class _TinyHooked(nn.Module):
    """A tiny network with InceptionV1's interface: ``hook_points[name]`` and ``layer_names``.

    conv 3x3 -> ReLU -> max pool 2 -> mean -> linear. With ``fail_after`` set, the forward pass
    raises a RuntimeError right after that hook point, to test that hooks go even on errors.
    """

    layer_names = ["conv2d0_pre_relu", "conv2d0", "maxpool0", "softmax2_pre_activation"]

    def __init__(self, seed: int = 0, fail_after: str | None = None):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.linear = nn.Linear(5, 7)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        self.hook_points = nn.ModuleDict({n: _HookPoint(n) for n in self.layer_names})
        self.fail_after = fail_after
        self.requires_grad_(False)

    def _point(self, name: str, x: torch.Tensor) -> torch.Tensor:
        x = self.hook_points[name](x)
        if name == self.fail_after:
            raise RuntimeError(f"planted failure after {name!r} (the check makes the forward pass fail)")
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self._point("conv2d0_pre_relu", self.conv(images))
        x = self._point("conv2d0", torch.relu(x))
        x = self._point("maxpool0", nn.functional.max_pool2d(x, 2))
        return self._point("softmax2_pre_activation", self.linear(x.mean(dim=(-2, -1))))


def _fresh_inception():
    """InceptionV1 with PyTorch's default initialisation, seeded: the real structure, no weights."""
    return C.seeded_inception(0)


#: The reference's copy, never handed to learner code (which gets a fresh twin), so it stays as made.
_default_init_inception = lru_cache(maxsize=1)(_fresh_inception)


def _hook_state(model: nn.Module) -> dict:
    state = {}
    for name, module in model.named_modules():
        state[name] = (tuple(module._forward_hooks), tuple(module._forward_pre_hooks))
    global_hooks = C.learner_global_hooks()  # set aside while a check runs: the learner's own
    state[None] = (global_hooks["_global_forward_hooks"], global_hooks["_global_forward_pre_hooks"])
    return state


def _check_hooks_gone(model, before: dict, label: str, after_error: bool = False) -> None:
    after = _hook_state(model)
    if after == before:
        return
    empty = ((), ())
    added = [n for n in after if any(h not in before.get(n, empty)[i] for i in (0, 1) for h in after[n][i])]
    lost = [n for n in before if any(h not in after.get(n, empty)[i] for i in (0, 1) for h in before[n][i])]
    if lost:
        C.fail(
            f"{label}: a hook that was on the model before your function ran is gone",
            expected="the model's other hooks untouched",
            got=f"hooks removed from {lost}",
            hint="remove only your own hooks, each with handle.remove(), not every hook of a module "
            "(never _forward_hooks.clear())",
        )
    where = ", ".join("the global hooks" if n is None else (n or "the model") for n in added)
    if after_error:
        C.fail(
            f"{label}: hooks were left on the model after the forward pass raised an error",
            expected="no hooks left",
            got=f"hooks still on {where}",
            hint="remove the hooks in a `finally:` block (try: ... finally: for h in handles: "
            "h.remove()), so they go even when the forward pass fails",
        )
    C.fail(
        f"{label}: hooks were left on the model",
        expected="no hooks left after your function returns",
        got=f"hooks still on {where}",
        hint="did you forget to remove the hooks? register_forward_hook returns a handle: call "
        "handle.remove() for each one (a forgotten hook keeps recording on every later forward pass)",
    )


_LATE_BINDING = (
    "all your hooks wrote to the same key: a hook defined in a loop sees the loop variable's LAST "
    "value. Bind the name when you make the hook: def make_hook(name): def hook(module, inputs, "
    "output): store[name] = output; return hook"
)


def _capture_case(fn, model, reference, images, names, label):
    """One case: ``model`` goes to the learner's function, ``reference`` (a twin) gives the answer."""
    with torch.no_grad():
        with _ref_capture(reference, names) as store:
            reference(images)
        expected = dict(store)
    sentinel_calls = []
    sentinel = model.hook_points[names[0]].register_forward_hook(lambda *a: sentinel_calls.append(1))
    before = _hook_state(model)
    try:
        got = C.call(fn, model, images.clone(), list(names), what=label)
        _check_hooks_gone(model, before, label)
    finally:
        sentinel.remove()
    if not isinstance(got, dict):
        C.fail(f"{label} should return a dict", expected="{name: tensor}", got=type(got).__name__)
    got = dict(got)  # a plain dict: a subclass's methods are learner code
    C.resync()
    got_names = set(got)
    if got_names != set(names):
        hint = "one entry per name asked for, keyed by the name"
        if len(names) > 1 and got_names == {names[-1]}:
            hint = _LATE_BINDING
        C.fail(
            f"{label} returned the wrong keys",
            expected=sorted(names),
            got=sorted(map(str, got_names)),
            hint=hint,
        )
    last = expected[names[-1]]
    for name in names:
        value = C.as_tensor(got[name], f"{label}[{name!r}]")
        if (
            len(names) > 1
            and name != names[-1]
            and tuple(value.shape) == tuple(last.shape)
            and C.close(value, last)
        ):
            C.fail(f"{label}[{name!r}] holds the value of {names[-1]!r}", hint=_LATE_BINDING)
        C.expect_close(
            value,
            expected[name],
            f"{label}[{name!r}]",
            hint="store the hook's `output` (hook(module, inputs, output)) for this name, from ONE "
            "forward pass of these images",
        )


@C.check
def check_capture(fn, hidden: bool = False) -> None:
    """Check ``fn(model, images, names) -> {name: activation}`` with forward hooks (exercise 3).

    The hooks go on ``model.hook_points[name]``, one forward pass runs, and every hook is removed
    afterwards, even when the forward pass raises.
    """
    gen = torch.Generator().manual_seed(3)
    reference = _TinyHooked(seed=1)
    cases = 0
    images = torch.rand(2, 3, 8, 8, generator=gen)
    _capture_case(
        fn,
        _TinyHooked(seed=1),
        reference,
        images,
        ["conv2d0", "maxpool0"],
        "capture_activations(tiny_model, images, ['conv2d0', 'maxpool0'])",
    )
    cases += 1
    _capture_case(
        fn,
        _TinyHooked(seed=1),
        reference,
        images,
        ["softmax2_pre_activation"],
        "capture_activations(tiny_model, images, ['softmax2_pre_activation'])",
    )
    cases += 1
    if hidden:
        other = torch.rand(3, 3, 11, 7, generator=gen)
        _capture_case(
            fn,
            _TinyHooked(seed=1),
            reference,
            other,
            list(_TinyHooked.layer_names),
            "capture_activations(tiny_model, 3 images 11x7, all four names)",
        )
        cases += 1
        # The forward pass fails: the hooks must go all the same.
        failing = _TinyHooked(seed=1, fail_after="conv2d0")
        label = (
            "capture_activations(model whose forward pass raises, images, ['conv2d0_pre_relu', 'maxpool0'])"
        )
        before = _hook_state(failing)
        try:
            with C.learner():
                fn(failing, images.clone(), ["conv2d0_pre_relu", "maxpool0"])
        except NotImplementedError:
            C.fail(
                f"{label}: not implemented yet.", hint="replace `raise NotImplementedError()` with your code"
            )
        except Exception:  # noqa: BLE001 -- the planted error (or the learner's) may pass through
            pass
        _check_hooks_gone(failing, before, label, after_error=True)
        cases += 1
        # The real InceptionV1 structure (default initialisation: no weights needed). The answer
        # comes from the cached model; the learner's function gets a twin.
        image = torch.rand(1, 3, 224, 224, generator=gen)
        names = ["conv2d0", "mixed3b", "mixed4a_3x3_pre_relu"]
        with torch.no_grad():
            expected = _ref_activations(_default_init_inception(), image, names)
        model = _fresh_inception()
        label = f"capture_activations(InceptionV1, one 224x224 image, {names})"
        sentinel = model.hook_points["mixed3b"].register_forward_hook(lambda *a: None)
        before = _hook_state(model)
        try:
            got = C.call(fn, model, image.clone(), list(names), what=label)
            _check_hooks_gone(model, before, label)
        finally:
            sentinel.remove()
        got = dict(got) if isinstance(got, dict) else got
        C.resync()
        got_names = set(got) if isinstance(got, dict) else None
        if got_names != set(names):
            C.fail(
                f"{label} returned the wrong keys",
                expected=sorted(names),
                got=sorted(map(str, got_names)) if got_names is not None else type(got).__name__,
            )
        for name in names:
            C.expect_close(
                C.as_tensor(got[name], f"{label}[{name!r}]"),
                expected[name],
                f"{label}[{name!r}]",
                rtol=1e-4,
                atol=1e-4,
            )
        cases += 1
    C.done("capture_activations", cases, hidden)


# =============================================================================================
# Exercise 4: strongest channels
# =============================================================================================
def _planted_acts(n: int, c: int, h: int, w: int, seed: int, signed: bool = False) -> torch.Tensor:
    """Activations whose mean-ranking differs from their max-ranking and between images."""
    gen = torch.Generator().manual_seed(seed)
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


@C.check
def check_strongest_channels(fn, hidden: bool = False) -> None:
    """Check ``fn(acts, k) -> (scores, channels)`` (exercise 4).

    ``acts: (N, C, H, W)``; a channel's score is its mean over the H x W positions; ``scores``
    ``(N, k)`` float and ``channels`` ``(N, k)`` integer, largest score first.
    """
    cases = [((2, 12, 6, 6), 3, False)]
    if hidden:
        cases += [
            ((3, 40, 5, 9), 5, False),
            ((1, 7, 1, 1), 7, False),
            ((2, 20, 4, 4), 4, True),
            ((1, 480, 28, 28), 10, False),
        ]
    for c, (shape, k, signed) in enumerate(cases):
        acts = _planted_acts(*shape, seed=40 + c, signed=signed)
        label = f"strongest_channels(acts of shape {shape}, k={k})"
        exp_scores, exp_channels = _ref_strongest(acts, k)
        got = C.call(fn, acts.clone(), k, what=label)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            C.fail(
                f"{label} should return two tensors",
                expected="(scores, channels)",
                got=type(got).__name__,
                hint="torch.topk returns (values, indices): return both",
            )
        scores, channels = C.as_tensor(got[0], f"{label} scores"), C.as_tensor(got[1], f"{label} channels")
        C.resync()  # got's own methods (a list subclass's __getitem__) are learner code
        n = shape[0]
        for value, what in ((scores, "scores"), (channels, "channels")):
            if tuple(value.shape) != (n, k):
                hint = (
                    "one row per image, k columns: average over the positions (dims 2 and 3), "
                    "then topk over the channels (dim 1)"
                )
                if value.dim() == 4 or tuple(value.shape[:2]) == (n, shape[1]):
                    hint = "average each channel over its positions first: acts.mean(dim=(2, 3)) is (N, C)"
                C.fail(
                    f"{label}: {what} have the wrong shape",
                    expected=(n, k),
                    got=tuple(value.shape),
                    hint=hint,
                )
        if channels.is_floating_point():
            C.fail(
                f"{label}: channels should be integer indices",
                expected="torch.int64",
                got=str(channels.dtype),
                hint="return the indices from topk, not the values",
            )
        g_ch, e_ch = channels.tolist(), exp_channels.tolist()
        if g_ch != e_ch:
            means = acts.mean(dim=(2, 3))
            maxes = acts.amax(dim=(2, 3))
            hint = "rank channels by their mean over all positions, largest first"
            if g_ch == maxes.topk(k, dim=1).indices.tolist():
                hint = "you ranked channels by their MAXIMUM; the score is the MEAN over positions"
            elif g_ch == means.topk(k, dim=1, largest=False).indices.tolist() or [
                sorted(r) for r in g_ch
            ] == [sorted(r) for r in e_ch]:
                hint = "sort from the largest score down (torch.topk, or argsort(descending=True))"
            elif n > 1 and all(r == means.mean(0).topk(k).indices.tolist() for r in g_ch):
                hint = "each image gets its own ranking: do not average over the batch (dim 0)"
            elif g_ch == acts.abs().mean(dim=(2, 3)).topk(k, dim=1).indices.tolist():
                hint = "rank by the mean itself, not by the mean absolute value"
            C.fail(f"{label}: wrong channels", expected=e_ch, got=g_ch, hint=hint)
        hint = "the score is the channel's mean over positions"
        if (
            C.close(scores.double(), exp_scores.double() * shape[2] * shape[3], rtol=1e-4, atol=1e-4)
            and shape[2] * shape[3] > 1
        ):
            hint = "that is the SUM over positions; the score is the MEAN (divide by H * W)"
        C.expect_close(scores, exp_scores, f"{label}: scores", rtol=1e-4, atol=1e-5, hint=hint)
    C.done("strongest_channels", len(cases), hidden)


# =============================================================================================
# Exercise 5: receptive-field arithmetic
# =============================================================================================
def _variant_fields(ops, n: int) -> dict[str, tuple]:
    """What common mistakes give, to name them."""
    out = {}
    # forgot the jump in the size
    size = 1 + sum(k - 1 for k, _ in ops)
    out["size_no_jump"] = size
    # start ignoring padding; start with padding from the original input size; start as left edge
    start_nopad = start_inpad = 0.0
    jump = 1
    m = n
    for k, s in ops:
        p_here, _ = _same_padding(m, k, s)
        p_orig, _ = _same_padding(n, k, s)
        start_nopad += (k - 1) / 2 * jump
        start_inpad += ((k - 1) / 2 - p_orig) * jump
        jump *= s
        m = -(-m // s)
    out["start_nopad"] = start_nopad
    out["start_inpad"] = start_inpad
    return out


def _rf_cases(hidden: bool):
    cases = [
        ("[(3, 1)], 10", [(3, 1)], 10),
        ("[(3, 1), (3, 1)], 10", [(3, 1), (3, 1)], 10),
        ("conv2d0 then maxpool0: [(7, 2), (3, 2)], 224", [(7, 2), (3, 2)], 224),
        ("the path to mixed3a at 224", _kernel_strides("mixed3a"), 224),
    ]
    if hidden:
        gen = np.random.default_rng(5)
        for _ in range(8):
            length = int(gen.integers(1, 7))
            ops = [(int(gen.choice([1, 3, 5, 7])), int(gen.choice([1, 1, 2, 3]))) for _ in range(length)]
            n = int(gen.choice([224, 225, 97, 33, 7]))
            cases.append((f"random chain {ops}, {n}", ops, n))
        for layer, n in (
            ("mixed3b", 225),
            ("mixed4c", 224),
            ("mixed4c", 227),
            ("mixed5b", 224),
            ("maxpool10", 300),
        ):
            cases.append((f"the path to {layer} at {n}", _kernel_strides(layer), n))
    return cases


@C.check
def check_receptive_field(fn, hidden: bool = False) -> None:
    """Check ``fn(ops, input_size) -> (size, jump, start)`` (exercise 5).

    ``ops``: ``[(kernel, stride), ...]`` applied in order, each with TensorFlow "SAME" padding;
    ``start`` is the centre of position 0's field in input pixels (pixel i centred at i).
    """
    cases = _rf_cases(hidden)
    for what, ops, n in cases:
        label = f"receptive_field({what})"
        expected = _ref_chain(ops, n)
        variants = _variant_fields(ops, n)
        got = C.call(fn, [tuple(op) for op in ops], n, what=label)
        try:
            size, jump, start = got
            size, jump, start = float(size), float(jump), float(start)
        except (TypeError, ValueError):
            C.fail(f"{label} should return three numbers", expected="(size, jump, start)", got=repr(got)[:80])
        C.resync()
        if jump != expected.jump:
            hint = "the jump is the product of the strides so far"
            if jump == sum(s for _, s in ops):
                hint = "the jump MULTIPLIES by each stride (it is their product), it does not add up"
            C.fail(f"{label}: wrong jump", expected=expected.jump, got=got[1], hint=hint)
        if size != expected.size:
            hint = "each layer adds (kernel - 1) * jump to the size, with the jump BEFORE this layer's stride"
            if size == variants["size_no_jump"]:
                hint = (
                    "each layer adds (kernel - 1) TIMES THE JUMP so far, not just (kernel - 1): "
                    "did you forget the stride product?"
                )
            C.fail(f"{label}: wrong size", expected=expected.size, got=got[0], hint=hint)
        if start != expected.start:
            hint = (
                "start += ((kernel - 1) / 2 - pad_before) * jump, "
                "with pad_before from same_padding(n, kernel, stride)"
            )
            if start == variants["start_nopad"]:
                hint = (
                    "padding shifts the fields: subtract pad_before * jump at each layer "
                    "(pad_before from same_padding)"
                )
            elif start == variants["start_inpad"]:
                hint = (
                    "the padding of each layer depends on the size of ITS input: "
                    "update n = ceil(n / stride) after each layer"
                )
            elif start == expected.start - (expected.size - 1) / 2:
                hint = "that is the first pixel of the field; start is its CENTRE: add (size - 1) / 2"
            C.fail(f"{label}: wrong start", expected=expected.start, got=got[2], hint=hint)
    C.done("receptive_field", len(cases), hidden)


# =============================================================================================
# Exercise 6: the patch a channel saw
# =============================================================================================
def _patch_cases(hidden: bool):
    cases = [("mixed3a", 224, (5, 20)), ("conv2d0", 224, (0, 111))]
    if hidden:
        cases += [
            ("mixed4a", 224, (3, 11)),
            ("mixed3b", 225, (27, 2)),
            ("conv2d2", 97, (12, 24)),
            ("mixed4d", 224, (13, 0)),
        ]
    return cases


@C.check
def check_strongest_patch(fn, hidden: bool = False) -> None:
    """Check ``fn(acts, channel, layer, input_size) -> (top, left, bottom, right)`` (exercise 6).

    ``acts: (C, H, W)`` of ``layer`` for one square ``input_size`` image; the box is the receptive
    field of the position where ``channel`` is largest, inclusive, clipped to the image.
    """
    cases = _patch_cases(hidden)
    for c, (layer, n, (row, col)) in enumerate(cases):
        rf = _ref_rf(layer, n)
        gen = torch.Generator().manual_seed(60 + c)
        acts = torch.rand(6, rf.positions, rf.positions, generator=gen)
        channel = 2 + c % 3
        acts[channel, row, col] = 5.0
        other = (channel + 1) % 6  # another channel peaks higher elsewhere
        acts[other, (row + 3) % rf.positions, (col + 5) % rf.positions] = 9.0
        label = f"strongest_patch(acts of {layer} {tuple(acts.shape)}, channel={channel}, {layer!r}, {n})"
        expected = tuple(int(v) for v in _ref_patch(acts, channel, layer, n))
        got = C.call(fn, acts.clone(), channel, layer, n, what=label)
        try:
            box = tuple(int(v) for v in got)
        except (TypeError, ValueError, RuntimeError):
            C.fail(
                f"{label} should return four integers",
                expected="(top, left, bottom, right)",
                got=repr(got)[:80],
            )
        C.resync()
        if len(box) != 4:
            C.fail(
                f"{label} should return four integers",
                expected="(top, left, bottom, right)",
                got=repr(got)[:80],
            )
        if box != expected:
            hint = (
                "take the position (row, col) of the channel's maximum, then the receptive field of that "
                "row and of that column: centre = start + i * jump, half = (size - 1) // 2"
            )
            swapped = rf.box(col, row)
            unclipped = (rf.span(row)[0], rf.span(col)[0], rf.span(row)[1], rf.span(col)[1])
            a_row, a_col = divmod(int(acts[other].flatten().argmax()), rf.positions)
            if box == swapped:
                hint = "rows and columns are swapped: the box is (top, left, bottom, right) = rows first"
            elif box == unclipped:
                hint = "clip the box to the image: rows and columns run from 0 to input_size - 1"
            elif box == rf.box(a_row, a_col):
                hint = "use the maximum of acts[channel] only, not of all channels"
            elif box == (expected[0], expected[1], expected[2] + 1, expected[3] + 1) or box[2:] == tuple(
                min(v + 1, n) for v in expected[2:]
            ):
                hint = "bottom and right are INCLUSIVE: the last pixel of the field, not one past it"
            elif box[2] - box[0] == rf.size - 1 and box[3] - box[1] == rf.size - 1:
                hint = (
                    "the size is right but the place is not: centre = start + i * jump "
                    "(start can be negative)"
                )
            C.fail(f"{label}: wrong box", expected=expected, got=box, hint=hint)
    C.done("strongest_patch", len(cases), hidden)
