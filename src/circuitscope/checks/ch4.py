"""Checks for chapter 4's exercises ("Polysemanticity"), as :class:`~.runner.Exercise` s.

Each check lists its cases as data (planted images, weights, labels), with recipes for the course
objects they need (the planted model, a seeded random-weights variant that records its batch
sizes); :mod:`.runner` calls the learner's function on them, here or in the grader's sandbox over
:mod:`.wire`, and judges the result on the trusted side against the library's own functions and
brute force. No check needs InceptionV1's weights: the answers are known by construction.

Every random value of a hidden case comes from a seed passed through :func:`~.runner.hidden_seed`:
the public number here, another one drawn from the grader's private key when it grades. What a
case plants (the patterns, the ties) stays; only the random rest changes.
"""

from __future__ import annotations

import functools
import math

import torch

from ..core.hooks import activations
from ..core.models.inceptionv1 import InceptionV1
from ..methods.dataset_examples import crop_window
from ..methods.optvis import channel as channel_objective
from ..methods.optvis import diversity, render
from ..methods.planted import PlantedPatternModel, planted_images
from ..methods.polysemanticity import effective_classes as ref_effective_classes
from ..methods.polysemanticity import label_entropy
from .recipes import generator as _gen
from .runner import Case, Exercise, Mistake, Opaque, Recipe, as_tensor, describe, fail, hidden_seed, same

__all__ = [
    "check_diverse_render",
    "check_effective_classes",
    "check_facets",
    "check_outgoing_weights",
    "check_receptive_patch",
    "check_top_k_examples",
]

_Tensor = torch.Tensor
_HERE = __name__  # "circuitscope.checks.ch4": the module the recipes below are named in


def _ints(value, dim: int = 1) -> list | None:
    """``value`` (data) as nested lists of ints (a ``dim``-dimensional tensor), or None."""
    if isinstance(value, (Opaque, str, bytes, dict)):
        return None
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        return None
    if t.dim() != dim or t.is_complex():
        return None
    return t.long().tolist()


# =============================================================================================
# Recipes: the course objects the cases name (rebuilt on each side of the grader)
# =============================================================================================
class CountingPlanted(PlantedPatternModel):
    """The planted model, recording the batch size of every forward pass (``.batches``).

    ``seed``: random weights instead of the planted ones (every image gets its own score).
    """

    def __init__(self, threshold: float = 0.5, seed: int | None = None) -> None:
        super().__init__(threshold)
        self.batches: list[int] = []
        if seed is not None:
            g = _gen(seed)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.2)

    def named_forward(self, images):
        self.batches.append(int(images.shape[0]))
        yield from super().named_forward(images)


def counting_planted(threshold: float = 0.5, seed: int | None = None) -> CountingPlanted:
    return CountingPlanted(threshold, seed)


# The batch sizes the model saw, as the kernel reports them: shows an honest kernel streamed;
# a kernel that rewrites the model class or this function can misreport it.
def seen_batches(model: CountingPlanted, *args, **kwargs) -> list[int]:
    return list(model.batches)


# =============================================================================================
# Exercise 1: top-k dataset examples, streamed in batches
# =============================================================================================
def _top_k_case(what: str, model: Recipe, images: _Tensor, layer: str, channel: int, k: int,
                batch: int, about: str | None = None) -> Case:  # fmt: skip
    """One call; ``data``: the channel's maps ``acts (N, H', W')``, brute force over all images."""
    with torch.no_grad():
        acts = activations(model.build(), images, [layer])[layer][:, channel]
    maxes, flat = acts.flatten(1).max(dim=1)
    order = torch.sort(maxes, descending=True, stable=True).indices[:k]
    w = acts.shape[-1]
    return Case(
        f"top_k_examples({what}, {len(images)} images, k={k}, batch_size={batch})",
        (model, images, layer, channel, k, batch), verify=_verify_top_k,
        observe=f"{_HERE}:seen_batches", rtol=1e-4, atol=1e-5, about=about,
        data={"acts": acts, "maxes": maxes, "order": order.tolist(), "k": k, "batch": batch,
              "positions": torch.stack([flat[order] // w, flat[order] % w], dim=1).tolist()},
    )  # fmt: skip


def _top_k_cases(hidden: bool):
    """Planted units (the answer known by construction; exact ties among the checkerboards and
    the plain images: lower index first), random-weights models, uneven and oversized batches,
    non-square images (a grid whose height is not its width)."""
    planted = Recipe(f"{_HERE}:counting_planted")
    # (what, model seed or None, layer, channel, n_plain, n_per, size, k, batch, image seed)
    rows = [
        ("planted units:0 (cross or checkerboard)", None, "units", 0, 6, 3, 40, 6, 4, 0),
        ("planted units:2 (checkerboard only)", None, "units", 2, 6, 3, 40, 3, 5, 1),
    ]
    if hidden:
        s = hidden_seed
        rows += [
            ("random-weights model, detectors:1", s(11), "detectors", 1, 9, 2, 36, 7, 4, s(2)),
            ("random-weights model, units:1", s(12), "units", 1, 13, 1, 33, 5, 3, s(3)),
            ("planted units:1 (cross only), one image per batch", None, "units", 1, 4, 2, 32, 2, 1, s(4)),
            ("random-weights model, units_pre_relu:0, k = N", s(13), "units_pre_relu", 0, 5, 1, 28, 7, 2, s(5)),
            ("planted units:2, k past the checkerboards (ties at 0)", None, "units", 2, 5, 2, 31, 6, 3, s(6)),
            ("planted units:0, batch_size larger than the dataset", None, "units", 0, 3, 2, 30, 4, 50, s(7)),
        ]
    # What each hidden case tests, in words, in the order of the hidden rows.
    abouts = [
        "a random-weights model, a unit of the first layer, a dataset that does not split evenly into batches",
        "a random-weights model on an odd image size",
        "a batch size of one image",
        "a pre-ReLU layer (negative scores) of a random-weights model, with k equal to the number of images",
        "k past the images that excite the unit (ties at zero: the lower index first)",
        "a batch size larger than the whole dataset",
    ]
    for i, (what, mseed, layer, channel, n_plain, n_per, size, k, batch, iseed) in enumerate(rows):
        model = planted if mseed is None else Recipe(f"{_HERE}:counting_planted", seed=mseed)
        images = planted_images(n_plain, n_per, size, seed=iseed)[0]
        yield _top_k_case(what, model, images, layer, channel, k, batch, about=abouts[i - 2] if i >= 2 else None)
    if hidden:
        case = _non_square_case(hidden_seed(14), hidden_seed(8))
        case.about = "non-square images (the activation grid's height is not its width), a random-weights model"
        yield case


def _non_square_case(model_seed: int, image_seed: int, tries: int = 20) -> Case:
    """A random-weights model on non-square 27x44 images: the first draw (from the seeds, then the
    next ones) on which reading a flat index with the grid's height lands off a maximum in some
    example (when every example peaks in the grid's top row, the two readings agree); the last
    draw if none of ``tries`` does (a fair case all the same, only that mistake would pass it)."""
    what = "random-weights model, non-square 27x44 images, units:2"
    for i in range(tries):
        images = torch.rand(11, 3, 27, 44, generator=_gen(image_seed + i))
        case = _top_k_case(what, Recipe(f"{_HERE}:counting_planted", seed=model_seed + i), images, "units", 2, 5, 4)
        h, w = case.data["acts"].shape[-2:]
        if not _at_maxima(case, case.data["order"], [divmod(r * w + c, h) for r, c in case.data["positions"]]):
            break
    return case


def _top_k_parts(got) -> tuple | None:
    """``(indices list, scores, positions list)`` of a result, or None if it is not that shape."""
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return None
    return _ints(got[0]), got[1], _ints(got[2], dim=2)


def _at_maxima(case: Case, indices: list, positions) -> bool:
    """Whether each ``(row, col)`` holds its image's largest value (any of them, on ties)."""
    acts = case.data["acts"]
    h, w = acts.shape[-2:]
    if positions is None or len(positions) != len(indices):
        return False
    for i, pos in zip(indices, positions):
        if len(pos) != 2 or not (0 <= pos[0] < h and 0 <= pos[1] < w and 0 <= i < len(acts)):
            return False
        best = float(acts[i].max())
        if float(acts[i, pos[0], pos[1]]) < best - (1e-5 + 1e-4 * abs(best)):
            return False
    return True


def _rounded(values, digits: int = 5):
    """A tensor's values, rounded for a message (or what ``values`` is, if not a tensor)."""
    if not isinstance(values, _Tensor):
        return describe(values)
    return [round(float(v), digits) for v in values.flatten()]


def _verify_top_k(case: Case, got) -> None:
    k, batch, want = case.data["k"], case.data["batch"], case.data["order"]
    parts = _top_k_parts(got)
    if parts is None:
        fail(f"{case.label} should return three tensors", expected="(indices, scores, positions)",
             got=describe(got))  # fmt: skip
    seen = case.observed
    if not isinstance(seen, list) or not seen or max(seen) > batch:
        fail(f"{case.label}: the model saw too many images at once",
             expected=f"forward passes of at most {batch} images", got=f"passes of {seen}",
             hint="stream: loop over images[start : start + batch_size], "
                  "keeping only the best k so far")  # fmt: skip
    indices, scores, positions = parts
    if indices is None or len(indices) != k:
        fail(f"{case.label} indices has the wrong shape", expected=(k,), got=describe(got[0]),
             hint="one index per example, k of them")  # fmt: skip
    if indices != want:
        fail(f"{case.label}: wrong images", expected=want, got=indices,
             hint="rank the images by the channel's LARGEST value over positions, best first")  # fmt: skip
    expected_scores = case.data["maxes"][want]
    if not same(scores, expected_scores, case.rtol, case.atol):
        fail(f"{case.label} scores are wrong", expected=_rounded(expected_scores), got=_rounded(scores),
             hint="the score is the channel's largest value over the image's positions")  # fmt: skip
    if positions is None or len(positions) != k or any(len(p) != 2 for p in positions):
        fail(f"{case.label} positions has the wrong shape", expected=(k, 2), got=describe(got[2]),
             hint="one (row, col) pair per example")  # fmt: skip
    if not _at_maxima(case, want, positions):
        fail(f"{case.label}: wrong positions",
             expected=f"{case.data['positions']} (or another maximum on ties)", got=positions,
             hint="the position of the maximum in the layer's grid: "
                  "row = flat // W, col = flat % W")  # fmt: skip


def _ranked_by(case: Case, got, values: _Tensor, descending: bool = True) -> bool:
    """Whether ``got``'s indices (not the right ones) are the top k of ``values`` in that order."""
    parts = _top_k_parts(got)
    if parts is None or parts[0] is None or parts[0] == case.data["order"]:
        return False
    order = torch.sort(values, descending=descending, stable=True).indices[: case.data["k"]]
    return parts[0] == order.tolist()


def _indices_within_batch(case: Case, got) -> bool:
    parts, batch, want = _top_k_parts(got), case.data["batch"], case.data["order"]
    if parts is None or not parts[0] or parts[0] == want:
        return False
    return batch < len(case.data["acts"]) and all(0 <= i < batch for i in parts[0]) and max(want) >= batch


def _tail_dropped(case: Case, got) -> bool:
    """Whether ``got`` ranks only the full batches (the last, shorter one left out)."""
    n, batch = len(case.data["acts"]), case.data["batch"]
    if n % batch == 0:
        return False
    return _ranked_by(case, got, case.data["maxes"][: n - n % batch])


def _positions_read_as(case: Case, got, reread) -> bool:
    """Whether ``got``'s positions are wrong but ``reread(row, col, H, W)`` of each is a maximum."""
    parts = _top_k_parts(got)
    if parts is None or parts[0] != case.data["order"] or parts[2] is None:
        return False
    h, w = case.data["acts"].shape[-2:]
    if _at_maxima(case, parts[0], parts[2]) or any(len(p) != 2 for p in parts[2]):
        return False
    return _at_maxima(case, parts[0], [reread(r, c, h, w) for r, c in parts[2]])


def _h_w_confused(case: Case, got) -> bool:
    """Whether ``got``'s positions were read as ``(flat // H, flat % H)`` on a non-square grid."""
    h, w = case.data["acts"].shape[-2:]
    return h != w and _positions_read_as(case, got, lambda r, c, h, w: divmod(r * h + c, w))


def _tie_order_wrong(case: Case, got) -> bool:
    """Whether ``got``'s indices have exactly the right scores, in another order among ties."""
    parts, want, maxes = _top_k_parts(got), case.data["order"], case.data["maxes"]
    if parts is None or parts[0] is None or parts[0] == want or len(parts[0]) != len(want):
        return False
    if not all(0 <= i < len(maxes) for i in parts[0]):
        return False
    return torch.equal(maxes[parts[0]], maxes[want])


check_top_k_examples = Exercise(
    "check_top_k_examples", "top_k_examples", _top_k_cases,
    forbid=("circuitscope.methods.dataset_examples:top_examples",),
    doc="""Check ``fn(model, images, layer, channel, k, batch_size) -> (indices, scores, positions)``.

    ``images: (N, 3, H, W)``; score = the channel's largest value over positions; ``indices``
    ``(k,)`` int64 best first (ties: lower index first), ``scores`` ``(k,)``, ``positions``
    ``(k, 2)`` ``(row, col)`` of a maximum (any of them on ties); the model may see at most
    ``batch_size`` images per forward pass.
    """,
    mistakes=[
        Mistake("you ranked by the MEAN over positions; a dataset example is scored by its MAXIMUM",
                when=lambda case, got: _ranked_by(case, got, case.data["acts"].flatten(1).mean(1))),
        Mistake("largest first: sort in descending order",
                when=lambda case, got: _ranked_by(case, got, case.data["maxes"], descending=False)),
        Mistake("indices are positions in the whole dataset: add the batch's start to each index",
                when=_indices_within_batch),
        Mistake("the last, shorter batch was left out: loop over range(0, N, batch_size); "
                "images[start : start + batch_size] takes what is left", when=_tail_dropped),
        Mistake("ties: the lower index first (a stable sort, the best so far before the new batch)",
                when=_tie_order_wrong),
        Mistake("rows and columns are swapped: (row, col) = (flat // W, flat % W)",
                when=lambda case, got: _positions_read_as(case, got, lambda r, c, h, w: (c, r))),
        Mistake("divide the flat index by the grid's WIDTH W (the last dimension), not its height: "
                "(row, col) = (flat // W, flat % W)",
                when=_h_w_confused),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 2: the receptive-field patch
# =============================================================================================
def _ref_patch(image: _Tensor, row: int, col: int, size: int, jump: int, start: float,
               fill: float) -> _Tensor:  # fmt: skip
    """``(3, size, size)``: pixels ``c - half .. c - half + size - 1``, ``c = start + i * jump``."""
    half = (size - 1) // 2
    top, left = int(start + row * jump) - half, int(start + col * jump) - half
    return crop_window(image, top, left, top + size - 1, left + size - 1, fill, False)


def _shifted_patch(image, row, col, size, jump, start, fill) -> _Tensor:
    """A common mistake: the window slid back inside the image (where it fits)."""
    half = (size - 1) // 2
    h, w = image.shape[-2:]
    top = min(max(int(start + row * jump) - half, 0), max(h - size, 0))
    left = min(max(int(start + col * jump) - half, 0), max(w - size, 0))
    return crop_window(image, top, left, top + size - 1, left + size - 1, fill, False)


def _patch_cases(hidden: bool):
    """Inside, at a corner, past the far edge, larger than the image, negative start, size 1,
    odd and non-square images, a field wholly outside the image (all `fill`)."""
    # (what, image (H, W), row, col, size, jump, start, fill, the image's seed)
    rows = [
        ("inside the image", (40, 40), 5, 7, 11, 2, 1.0, 0.5, 200),
        ("at the corner (the field reaches outside)", (40, 40), 0, 0, 11, 2, 0.0, 0.5, 201),
    ]
    if hidden:
        s = hidden_seed
        rows += [
            ("a non-square image, far edge", (30, 50), 14, 24, 9, 2, 1.0, 0.0, s(202)),
            ("mixed3a-like: jump 8, start 3", (224, 224), 27, 3, 59, 8, 3.0, 0.5, s(203)),
            ("mixed4a-like: larger than the image", (224, 224), 7, 13, 171, 16, 7.0, 1.0, s(204)),
            ("negative start", (64, 48), 2, 11, 21, 4, -2.0, 0.25, s(205)),
            ("size 1", (16, 16), 3, 9, 1, 1, 0.0, 0.5, s(206)),
            ("the last position of an odd-sized grid", (33, 47), 16, 23, 7, 2, 1.0, 0.75, s(207)),
            ("a field wholly past the image's bottom edge", (20, 20), 15, 2, 5, 2, 0.0, 0.5, s(208)),
        ]
    # What each hidden case tests, in words, in the order of the hidden rows.
    abouts = [
        "a non-square image, with the field past its far edge",
        "a real-sized image and a field like a mixed layer's (a large jump, a start past zero)",
        "a field larger than the whole image",
        "a negative start, on a non-square image",
        "a field of a single pixel",
        "the last position of an odd-sized, non-square grid",
        "a field wholly past the image's bottom edge (all fill)",
    ]
    for i, (what, (h, w), row, col, size, jump, start, fill, seed) in enumerate(rows):
        image = torch.rand(3, h, w, generator=_gen(seed))
        yield Case(
            f"receptive_patch({what}: image {tuple(image.shape)}, row={row}, col={col}, size={size}, "
            f"jump={jump}, start={start}, fill={fill})",
            (image, row, col, size, jump, start, fill), verify=_verify_patch,
            data={"expected": _ref_patch(image, row, col, size, jump, start, fill)},
            about=abouts[i - 2] if i >= 2 else None,
        )  # fmt: skip


def _summary(t: _Tensor) -> str:
    t = t.double()
    return f"shape {tuple(t.shape)}, mean {float(t.mean()):.4f}, corner pixel {float(t[0, 0, 0]):.4f}"


def _verify_patch(case: Case, got) -> None:
    expected, size = case.data["expected"], case.args[3]
    got = as_tensor(got, case.label)
    if tuple(got.shape) != (3, size, size):
        fail(f"{case.label} has the wrong shape", expected=(3, size, size), got=tuple(got.shape),
             hint="the patch is always size x size: pad with `fill` where the field leaves the image")  # fmt: skip
    if not same(got.float(), expected, case.rtol, case.atol):
        fail(f"{case.label}: wrong pixels", expected=_summary(expected), got=_summary(got),
             hint="centre = start + i * jump, half = (size - 1) // 2; "
                  "the patch spans centre - half .. centre + half")  # fmt: skip


def _patch_variant(case: Case, **change) -> _Tensor | None:
    """The reference patch with some arguments changed (None when that changes nothing)."""
    image, row, col, size, jump, start, fill = case.args
    args = {"row": row, "col": col, "size": size, "jump": jump, "start": start, "fill": fill}
    if all(args[key] == value for key, value in change.items()):
        return None
    return _ref_patch(image, **{**args, **change})


check_receptive_patch = Exercise(
    "check_receptive_patch", "receptive_patch", _patch_cases,
    doc="""Check ``fn(image, row, col, size, jump, start, fill) -> (3, size, size)``.

    The patch is centred on pixel ``start + i * jump`` in each direction (``i`` the row, then
    the column); pixels outside the image take the value ``fill``.
    """,
    mistakes=[
        Mistake("rows and columns are swapped: the row index moves the patch down, the column right",
                result=lambda case: _patch_variant(case, row=case.args[2], col=case.args[1])),
        Mistake("the centre is start + i * jump: did you forget the start?",
                result=lambda case: _patch_variant(case, start=0.0)),
        Mistake("the patch must not move into the image: where the field leaves the image, fill with "
                "`fill` (cut what overlaps, paste it at the right offset)",
                result=lambda case: _shifted_patch(*case.args)),
        Mistake("pixels outside the image take the value `fill`, not 0",
                result=lambda case: _patch_variant(case, fill=0.0)),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 3: a diversity render
# =============================================================================================
def _planted_for_render() -> PlantedPatternModel:
    return PlantedPatternModel(threshold=0.0)  # a threshold of 0: the gradient is not zero at the start


def _diversity_value(images: _Tensor, layer: str) -> float:
    """The batch's mean Gram-matrix cosine similarity at ``layer`` (Lucid's diversity)."""
    with torch.no_grad():  # runs inside runner.run, on one CPU thread
        acts = activations(_planted_for_render(), images.float(), [layer])
        return float(diversity(layer)(acts).mean())


def _channel_mean(images: _Tensor, layer: str, channel: int) -> float:
    """The batch's mean value of the channel objective (``images: (n, 3, H, W)``)."""
    with torch.no_grad():
        acts = activations(_planted_for_render(), images.float(), [layer])
        return float(channel_objective(layer, channel)(acts).mean())


@functools.lru_cache(maxsize=8)
def _plain_render(layer: str, channel: int, n: int, size: int, steps: int, seed: int) -> _Tensor:
    """The library's render without the diversity term (the same for every run of the check:
    computed once; the cases only read it). Called inside runner.run, on one CPU thread."""
    return render(_planted_for_render(), channel_objective(layer, channel), batch=n, size=size,
                  steps=steps, seed=seed, progress=False).detach()  # fmt: skip


def _render_cases(hidden: bool):
    """Each setting twice: without the diversity term (``strength=0``) and with it; the images
    with it are compared with the library's own plain render (same seed)."""
    rows = [("units", 0, 4, 1.0, "units", 32, 40, 0)]  # the seed: the learner's render's, and the plain one's
    if hidden:
        rows += [("units", 0, 3, 10.0, "detectors", 28, 40, hidden_seed(1)),
                 ("units", 0, 2, 3.0, "units", 24, 40, hidden_seed(2))]  # fmt: skip
    model = Recipe("circuitscope.methods.planted:PlantedPatternModel", threshold=0.0)
    # What each hidden row tests, in words: (without the diversity term, with it).
    abouts = [
        ("a batch of another size and seed, without the diversity term",
         "a strong diversity term, measured on the earlier layer (detectors)"),
        ("a pair of smaller images on another seed, without the diversity term",
         "a diversity term on a pair of smaller images"),
    ]
    for i, (layer, channel, n, strength, div_layer, size, steps, seed) in enumerate(rows):
        plain = _plain_render(layer, channel, n, size, steps, seed)
        grey = _channel_mean(torch.full((1, 3, size, size), 0.5), layer, channel)
        for j, s in enumerate((0.0, strength)):
            yield Case(
                f"diverse_render(planted model, {layer!r}, {channel}, n={n}, strength={s}, "
                f"diversity_layer={div_layer!r}, size={size}, steps={steps}, seed={seed})",
                (model, layer, channel, n, s, div_layer, size, steps, seed), verify=_verify_render,
                data={"plain": plain, "similarity": _diversity_value(plain, div_layer), "grey": grey},
                about=abouts[i - 1][j] if i >= 1 else None,
            )  # fmt: skip


def _verify_render(case: Case, got) -> None:
    _, layer, channel, n, strength, div_layer, size, _, _ = case.args
    got = as_tensor(got, case.label)
    if tuple(got.shape) != (n, 3, size, size):
        fail(f"{case.label} has the wrong shape", expected=(n, 3, size, size), got=tuple(got.shape),
             hint="render ONE batch of n images: render(model, objective, batch=n, size=size, ...)")  # fmt: skip
    got = got.float()
    if not bool(torch.isfinite(got).all()) or float(got.min()) < 0 or float(got.max()) > 1:
        fail(f"{case.label}: values outside [0, 1]", expected="images in [0, 1]",
             got=f"min {float(got.min()):.3g}, max {float(got.max()):.3g}",
             hint="return render's images as they are")  # fmt: skip
    if strength > 0:
        if _same_as_plain(case, got):
            fail(f"{case.label}: the same images as with strength=0",
                 expected="the diversity term to change the images", got="identical images")  # fmt: skip
        plain_sim, sim = case.data["similarity"], _diversity_value(got, div_layer)
        if not sim < 0.9 * plain_sim:
            fail(f"{case.label}: the images are not more diverse than without the diversity term",
                 expected=f"a mean Gram similarity below {0.9 * plain_sim:.3f} "
                          f"(strength=0 gives {plain_sim:.3f})", got=f"{sim:.3f}",
                 hint="maximise channel(layer, channel) - strength * diversity(diversity_layer)")  # fmt: skip
    value, grey = _channel_mean(got, layer, channel), case.data["grey"]
    if not value > grey + 0.005:
        fail(f"{case.label}: the channel did not rise",
             expected=f"a mean channel value above a grey image's ({grey:.3f})", got=f"{value:.3f}",
             hint="the objective is channel(layer, channel) MINUS strength * diversity: "
                  "keep the channel term")  # fmt: skip


def _render_result(case: Case, got) -> _Tensor | None:
    """``got`` as the batch of images the case asks for (with the diversity term), or None."""
    _, _, _, n, strength, _, size, _, _ = case.args
    if strength == 0 or not isinstance(got, _Tensor) or tuple(got.shape) != (n, 3, size, size):
        return None
    return got.float()


def _same_as_plain(case: Case, got) -> bool:
    images = _render_result(case, got)
    return images is not None and same(images, case.data["plain"], 0.0, 1e-3)


def _no_more_diverse(case: Case, got) -> bool:
    """Whether ``got`` is as alike as the plain render, or more (the term added, not subtracted)."""
    images = _render_result(case, got)
    if images is None or not bool(torch.isfinite(images).all()):
        return False
    return _diversity_value(images, case.args[5]) >= 0.99 * case.data["similarity"]


check_diverse_render = Exercise(
    "check_diverse_render", "diverse_render", _render_cases,
    forbid=("circuitscope.methods.polysemanticity:diverse_renders",),
    doc="""Check ``fn(model, layer, channel, n, strength, diversity_layer, size, steps, seed)``.

    It returns ``(n, 3, size, size)`` in [0, 1]: one batch optimised for ``channel - strength *
    diversity(diversity_layer)``. Properties checked on the planted polysemantic unit: with
    ``strength > 0`` the images are less alike (lower mean Gram similarity) than the plain render
    from the same seed, and the channel still rises above a grey image's.
    """,
    mistakes=[
        Mistake("subtract strength * diversity(diversity_layer) from the channel objective",
                when=_same_as_plain),
        Mistake("SUBTRACT the diversity term: adding it rewards images that look alike",
                when=_no_more_diverse),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 4: how many classes among the top examples
# =============================================================================================
def _class_cases(hidden: bool):
    rows = [
        ("one class", [3, 3, 3, 3]),
        ("two classes, equally often", [1, 2, 1, 2, 2, 1]),
        ("four classes, equally often", [0, 1, 2, 3]),
        ("uneven: 6, 1, 1", [5, 5, 5, 5, 5, 5, 7, 8]),
    ]
    if hidden:
        rows += [
            ("with unlabelled examples (-1)", [2, -1, 2, 4, -1, 4]),
            ("a tensor of labels", torch.tensor([9, 9, 1, 1, 1, 0])),
            ("one example", [7]),
            ("class names", ["cat", "car", "cat", "car", "leg"]),
            ("random labels", torch.randint(0, 6, (40,), generator=_gen(hidden_seed(4)))),
            ("a tensor with unlabelled examples (-1)", torch.tensor([-1, 3, 3, -1, 8, 8, 8, 3])),
            ("one labelled example among unlabelled ones", [-1, -1, 6, -1]),
            ("eight classes, once each", list(range(10, 18))),
        ]
    # What each hidden case tests, in words, in the order of the hidden rows.
    abouts = [
        "unlabelled examples (label -1), which must be left out",
        "labels given as a tensor, not a list",
        "a single example",
        "class names (strings) as the labels",
        "many random labels",
        "a tensor of labels with unlabelled examples",
        "a single labelled example among unlabelled ones",
        "many classes, each seen once",
    ]
    for i, (what, labels) in enumerate(rows):
        shown = labels.tolist() if isinstance(labels, _Tensor) else labels
        yield Case(f"effective_classes({what}: {shown})", (labels,), expect=ref_effective_classes(labels),
                   rtol=1e-5, atol=1e-6, about=abouts[i - 4] if i >= 4 else None,
                   hint="compute the entropy in bits of the label frequencies, H = -sum p log2 p, "
                        "then return 2 ** H")  # fmt: skip


def _labels(case: Case) -> list:
    labels = case.args[0]
    return labels.tolist() if isinstance(labels, _Tensor) else list(labels)


def _distinct_count(case: Case) -> float | None:
    n = len({v for v in _labels(case) if v != -1})
    return float(n) if n > 1 else None


def _mixed_bases(case: Case, got) -> bool:
    """Whether ``got`` is ``2 ** (H ln 2)`` or ``e ** H`` (``H`` in bits)."""
    h = label_entropy(_labels(case))
    return any(same(got, wrong, case.rtol, case.atol) for wrong in (2 ** (h * math.log(2)), math.exp(h)))


def _each_element_a_class(case: Case) -> float | None:
    """What a Counter of a tensor's elements gives: each 0-d tensor its own key (n examples)."""
    if not isinstance(case.args[0], _Tensor):
        return None
    return float(sum(1 for v in _labels(case) if v != -1))


check_effective_classes = Exercise(
    "check_effective_classes", "effective_classes", _class_cases,
    forbid=("circuitscope.methods.polysemanticity:effective_classes",),
    doc="""Check ``fn(labels) -> float``: ``2 ** H`` (H the entropy in bits of the label
    distribution, unlabelled ``-1`` left out); 1 for one class, m for m equal classes.""",
    mistakes=[
        Mistake("that counts the distinct classes; weight them by how often they occur: 2 ** entropy",
                result=_distinct_count),
        Mistake("that is the entropy itself; the effective number of classes is 2 ** H",
                result=lambda case: label_entropy(_labels(case))),
        Mistake("mixed bases: with H in bits use 2 ** H (with H in nats, e ** H)", when=_mixed_bases),
        Mistake("leave the unlabelled examples (-1) out",
                result=lambda case: 2 ** label_entropy([str(v) for v in _labels(case)])),
        Mistake("a Counter (or set) of a tensor's elements sees each 0-d tensor as its own key: "
                "convert with labels.tolist() first", result=_each_element_a_class),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 5: outgoing weights
# =============================================================================================
@functools.lru_cache(maxsize=2)
def _inception_4d_1x1(seed: int) -> _Tensor:
    """``(112, 528, 1, 1)``: mixed4d's 1x1 weights at PyTorch's initialisation, seeded (the
    caller's random state untouched)."""

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return InceptionV1().eval().mixed4d_1x1_pre_relu_conv.weight.detach().clone()


def _random_weights(seed: int) -> list[_Tensor]:
    """The random float kernels of the cases, in order, from one generator: the first two are the
    visible cases' (from the public seed), the rest the hidden cases' (from the hidden one)."""
    g = _gen(seed)
    shapes = [(6, 4, 1, 1), (8, 5, 3, 3), (20, 16, 5, 5), (5, 3, 3, 3), (10, 4, 3, 3)]
    return [torch.randn(*shape, generator=g) for shape in shapes]


def _weight_cases(hidden: bool):
    """Random kernels (1x1, 3x3, 5x5, 2x2, 1x3), the planted model's (a tie: lower index first),
    integer weights full of ties, the first and the last input channel, k = 1 and k = O."""
    one, three = _random_weights(5)[:2]
    planted = PlantedPatternModel().units_pre_relu_conv.weight.detach().clone()  # (3, 2, 1, 1)
    rows = [
        ("random 1x1 weights (6, 4, 1, 1)", one, 2, 3),
        ("random 3x3 weights (8, 5, 3, 3)", three, 4, 4),
        ("the planted model's units layer", planted, 1, 2),
    ]
    if hidden:
        five, all_outputs, negative = _random_weights(hidden_seed(5))[2:]
        rows += [
            ("random 5x5 weights (20, 16, 5, 5)", five, 15, 6),
            ("k = all outputs", all_outputs, 0, 5),
            ("mostly negative weights", negative - 1.0, 3, 3),
            ("InceptionV1 mixed4d_1x1 (PyTorch's random init), from 4c:447", _inception_4d_1x1(hidden_seed(0)), 447, 5),
            ("integer 2x2 weights, many ties (9, 4, 2, 2), the last input channel",
             torch.randint(-1, 2, (9, 4, 2, 2), generator=_gen(hidden_seed(6))).float(), 3, 6),
            ("a 1x3 kernel (7, 6, 1, 3), k = 1", torch.randn(7, 6, 1, 3, generator=_gen(hidden_seed(7))), 0, 1),
        ]  # fmt: skip
    # What each hidden case tests, in words, in the order of the hidden rows.
    abouts = [
        "random kernels larger than the visible cases', from the last input channel",
        "k equal to the number of output channels, from the first input channel",
        "mostly negative weights",
        "a real InceptionV1 layer's 1x1 weights (randomly initialised), with many outputs",
        "integer weights full of ties (the lower index first) in even-sized kernels, from the last input channel",
        "a non-square kernel, with k of one",
    ]
    for i, (what, weight, channel, k) in enumerate(rows):
        yield Case(f"outgoing_weights({what}, channel={channel}, k={k})", (weight, channel, k),
                   verify=_verify_weights, data=outgoing_to_layer(weight, channel, k),
                   about=abouts[i - 3] if i >= 3 else None)  # fmt: skip


def outgoing_to_layer(weight: _Tensor, channel: int, k: int) -> dict:
    """``summed (O,)``: each output's weight from ``channel`` over the kernel; ``order``: top k."""
    summed = weight[:, channel].flatten(1).sum(1)
    return {"summed": summed, "order": torch.sort(summed, descending=True, stable=True).indices[:k].tolist()}


def _weights_parts(got) -> tuple | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return None
    return _ints(got[0]), got[1]


def _verify_weights(case: Case, got) -> None:
    k, order, summed = case.args[2], case.data["order"], case.data["summed"]
    parts = _weights_parts(got)
    if parts is None:
        fail(f"{case.label} should return two tensors", expected="(targets, values)", got=describe(got))
    targets, values = parts
    if targets is None or len(targets) != k:
        fail(f"{case.label} targets has the wrong shape", expected=(k,), got=describe(got[0]),
             hint="the k strongest target units")  # fmt: skip
    if not isinstance(values, _Tensor) or tuple(values.shape) != (k,):
        fail(f"{case.label} values has the wrong shape", expected=(k,), got=describe(values),
             hint="one summed weight per target")  # fmt: skip
    if targets != order or not same(values.float(), summed[order], 1e-4, 1e-5):
        fail(f"{case.label} is wrong", expected=(order, _rounded(summed[order], 4)),
             got=(targets, _rounded(values, 4)),
             hint="weight[out, in, y, x]: the unit's outgoing weights are weight[:, channel], "
                  "summed over (y, x)")  # fmt: skip


def _targets_by(case: Case, got, values: _Tensor) -> bool:
    """Whether ``got``'s targets (not the right ones) are the top k of ``values``."""
    parts = _weights_parts(got)
    if parts is None or parts[0] is None or parts[0] == case.data["order"]:
        return False
    return parts[0] == torch.sort(values, descending=True, stable=True).indices[: case.args[2]].tolist()


def _kernel_max(case: Case) -> _Tensor:
    """``(O,)``: each output's largest weight from the case's channel (not the sum)."""
    weight, channel, _ = case.args
    return weight[:, channel].flatten(1).amax(1)


def _incoming(case: Case, got) -> bool:
    weight, channel, k = case.args
    parts = _weights_parts(got)
    if channel >= weight.shape[0] or parts is None or parts[0] is None or parts[0] == case.data["order"]:
        return False
    incoming = weight[channel].flatten(1).sum(1)
    k_in = min(k, len(incoming))
    return parts[0][:k_in] == torch.sort(incoming, descending=True, stable=True).indices[:k_in].tolist()


def _targets_tied(case: Case, got) -> bool:
    """Whether ``got``'s targets have exactly the right sums, in another order among ties."""
    parts, order, summed = _weights_parts(got), case.data["order"], case.data["summed"]
    if parts is None or parts[0] is None or parts[0] == order or len(parts[0]) != len(order):
        return False
    return all(0 <= t < len(summed) for t in parts[0]) and torch.equal(summed[parts[0]], summed[order])


def _right_targets(case: Case, got) -> bool:
    parts = _weights_parts(got)
    return parts is not None and parts[0] == case.data["order"]


check_outgoing_weights = Exercise(
    "check_outgoing_weights", "outgoing_weights", _weight_cases,
    forbid=("circuitscope.methods.polysemanticity:outgoing_weights", "circuitscope.methods.polysemanticity:outgoing_weight_vector",),
    doc="""Check ``fn(weight, channel, k) -> (targets, values)`` on weights ``(O, C, kh, kw)``: each
    output's weight from input ``channel`` summed over the kernel; the ``k`` largest, largest first
    (ties: lower index first).""",
    mistakes=[
        Mistake("rank by the signed weight (excitatory first), not by its magnitude",
                when=lambda case, got: _targets_by(case, got, case.data["summed"].abs())),
        Mistake("SUM the weights over the kernel's positions (not the maximum)",
                when=lambda case, got: _targets_by(case, got, _kernel_max(case))),
        Mistake("the values are the summed weights of those targets", when=_right_targets),
        Mistake("those are the INCOMING weights weight[channel]; outgoing ones are weight[:, channel]",
                when=_incoming),
        Mistake("ties: the lower index first (torch.sort(summed, descending=True, stable=True))",
                when=_targets_tied),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 6: the planted unit's two facets
# =============================================================================================
def _facet_cases(hidden: bool):
    """``units:0`` (two facets), ``units:1`` and ``units:2`` (one each), with plain images that do
    not excite the unit among the top k; odd sizes, uneven batches, one image per batch, two
    examples only (too few to split), k = N."""
    # (unit channel, n_plain, n_per, size, k, batch, seed)
    rows = [(0, 6, 3, 40, 9, 4, 0), (1, 6, 3, 40, 6, 4, 1)]
    if hidden:
        s = hidden_seed
        rows += [(0, 8, 4, 48, 12, 5, s(2)), (2, 5, 3, 36, 8, 3, s(3)), (0, 4, 2, 32, 6, 2, s(4)),
                 (1, 5, 2, 33, 5, 2, s(5)), (2, 3, 3, 35, 9, 1, s(6))]  # fmt: skip
    model = Recipe("circuitscope.methods.planted:PlantedPatternModel")
    # What each hidden case tests, in words, in the order of the hidden rows.
    abouts = [
        "the two-facet unit with more examples of each pattern, in uneven batches",
        "the checkerboard-only unit (a single facet), in uneven batches",
        "the two-facet unit with few examples of each pattern",
        "the cross-only unit on an odd image size, with too few examples to split",
        "the checkerboard-only unit with k equal to the number of images, one image per batch",
    ]
    for i, (channel, n_plain, n_per, size, k, batch, seed) in enumerate(rows):
        images, _labels, truth = planted_images(n_plain, n_per, size, seed=seed)
        kinds = {0: ("cross", "checker"), 1: ("cross",), 2: ("checker",)}[channel]
        expected = sorted(sorted(i for i, (kind, _) in enumerate(truth) if kind == p) for p in kinds)
        yield Case(
            f"facets(planted model, {len(images)} images ({n_per} crosses, {n_per} checkerboards), "
            f"'units', {channel}, k={k}, batch_size={batch})",
            (model, images, "units", channel, k, batch), verify=_verify_facets,
            data={"expected": expected, "plain": [i for i, (kind, _) in enumerate(truth) if kind is None]},
            hint="take the top-k examples, keep those that excite the unit (score > 0), read the layer's "
                 "other channels at each one's best position, and cluster them with count_clusters",
            about=abouts[i - 2] if i >= 2 else None,
        )  # fmt: skip


def _groups(got) -> list | None:
    """``got`` as sorted lists of ints (a list of groups of indices), or None."""
    if isinstance(got, (Opaque, str, dict)) or got is None:
        return None
    try:
        return sorted(sorted(int(i) for i in group) for group in got)
    except (TypeError, ValueError, RuntimeError):
        return None


def _verify_facets(case: Case, got) -> None:
    groups, expected = _groups(got), case.data["expected"]
    if groups is None:
        fail(f"{case.label} should return a list of lists of image indices", expected="[[i, ...], [j, ...]]",
             got=describe(got))  # fmt: skip
    if groups != expected:
        fail(f"{case.label}: wrong groups", expected=expected, got=groups)


def _plain_kept(case: Case, got) -> bool:
    groups, plain = _groups(got), set(case.data["plain"])
    return groups is not None and any(i in plain for g in groups for i in g)


def _one_group(case: Case, got) -> bool:
    groups = _groups(got)
    return groups is not None and len(groups) == 1 and len(case.data["expected"]) == 2


check_facets = Exercise(
    "check_facets", "facets", _facet_cases,
    doc="""Check ``fn(model, images, layer, channel, k, batch_size) -> list of lists of indices`` on
    the planted model: ``units:0`` responds to two unrelated patterns, so its top examples fall
    into exactly two groups, the cross images and the checkerboard images; ``units:1`` and
    ``units:2`` into one. Images that do not excite the unit belong to no group.""",
    mistakes=[
        Mistake("leave out examples with score <= 0: they do not excite the unit at all", when=_plain_kept),
        Mistake("one group: cluster what else the layer sees at each example (its other channels)",
                when=_one_group),
    ],
)  # fmt: skip
