"""Checks for chapter 4's exercises ("Polysemanticity").

One function per exercise. ``check_x(fn)`` runs a few seeded cases (the visible cell of the
notebook); ``check_x(fn, hidden=True)`` runs those and more (nbgrader's hidden tests). Each
prints one success line or raises :class:`~circuitscope.checks.CheckFailed` with expected vs
got and a hint.

No check needs InceptionV1's weights. They use planted data whose answer is known
(:class:`~circuitscope.polysemanticity.PlantedPatternModel`, a unit built to respond to a red
cross *and* a checkerboard, and :func:`~circuitscope.polysemanticity.planted_images`), seeded
random models and weights, and brute force. So they pass with the real weights, the synthetic
ones or none. The references are bound when this module is imported (the notebook's locked
setup cell) and every check runs in :func:`~circuitscope.checks._core.pristine`, as in
:mod:`circuitscope.checks.ch1`.
"""

from __future__ import annotations

import math

import torch

from ..dataset_examples import _crop as _ref_crop
from ..device import one_cpu_thread as _one_cpu_thread
from ..hooks import activations as _ref_activations
from ..optvis import channel as _ref_channel
from ..optvis import diversity as _ref_diversity
from ..polysemanticity import PlantedPatternModel as _Planted
from ..polysemanticity import effective_classes as _ref_effective_classes
from ..polysemanticity import label_entropy as _ref_label_entropy
from ..polysemanticity import planted_images as _ref_planted_images
from . import _core as C

C.protect_package("circuitscope", exclude=("circuitscope.checks", "circuitscope_course"))

__all__ = [
    "check_diverse_render",
    "check_effective_classes",
    "check_facets",
    "check_outgoing_weights",
    "check_receptive_patch",
    "check_top_k_examples",
]

_Tensor = torch.Tensor


class _CountingPlanted(_Planted):
    """The planted model, recording the batch size of every forward pass (streaming check)."""

    def __init__(self, threshold: float = 0.5, seed: int | None = None) -> None:
        super().__init__(threshold)
        self.batches: list[int] = []
        if seed is not None:  # random weights: every image gets its own score, no ties
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in self.parameters():
                    p.copy_(torch.randn(p.shape, generator=g) * 0.2)

    def named_forward(self, images):
        self.batches.append(int(images.shape[0]))
        yield from super().named_forward(images)


# =============================================================================================
# Exercise 1: top-k dataset examples, streamed in batches
# =============================================================================================
def _brute_top_k(model, images, layer, channel, k):
    """All images at once: max over positions, stable descending sort (ties: lower index)."""
    with torch.no_grad():
        acts = _ref_activations(model, images, [layer])[layer][:, channel]
    flat = acts.flatten(1)
    mx, arg = flat.max(dim=1)
    order = torch.sort(mx, descending=True, stable=True).indices[:k]
    w = acts.shape[-1]
    pos = torch.stack([arg[order] // w, arg[order] % w], dim=1)
    return order, mx[order], pos, acts


def _top_k_cases(hidden: bool):
    # (what, model seed or None, threshold, layer, channel, n_plain, n_per, size, k, batch, image seed)
    cases = [
        ("planted units:0 (cross or checkerboard)", None, 0.5, "units", 0, 6, 3, 40, 6, 4, 0),
        ("planted units:2 (checkerboard only)", None, 0.5, "units", 2, 6, 3, 40, 3, 5, 1),
    ]
    if hidden:
        cases += [
            ("random-weights model, detectors:1", 11, 0.5, "detectors", 1, 9, 2, 36, 7, 4, 2),
            ("random-weights model, units:1", 12, 0.5, "units", 1, 13, 1, 33, 5, 3, 3),
            ("planted units:1 (cross only), one image per batch", None, 0.5, "units", 1, 4, 2, 32, 2, 1, 4),
            (
                "random-weights model, units_pre_relu:0, k = N",
                13,
                0.5,
                "units_pre_relu",
                0,
                5,
                1,
                28,
                7,
                2,
                5,
            ),
        ]
    return cases


@C.check
def check_top_k_examples(fn, hidden: bool = False) -> None:
    """Check ``fn(model, images, layer, channel, k, batch_size) -> (indices, scores, positions)``.

    ``images: (N, 3, H, W)``; score = the channel's largest value over positions; ``indices``
    ``(k,)`` int64 best first, ``scores`` ``(k,)``, ``positions`` ``(k, 2)`` ``(row, col)``;
    the model may see at most ``batch_size`` images per forward pass.
    """
    cases = _top_k_cases(hidden)
    for what, mseed, threshold, layer, channel, n_plain, n_per, size, k, batch, iseed in cases:
        images, _labels, _truth = _ref_planted_images(n_plain, n_per, size, seed=iseed)
        model = _CountingPlanted(threshold, mseed)
        exp_idx, exp_scores, exp_pos, acts = _brute_top_k(model, images, layer, channel, k)
        model.batches.clear()
        n = len(images)
        label = f"top_k_examples({what}, {n} images, k={k}, batch_size={batch})"
        got = C.call(fn, model, images.clone(), layer, channel, k, batch, what=label)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            C.fail(f"{label} should return three tensors", expected="(indices, scores, positions)",
                   got=type(got).__name__)  # fmt: skip
        idx = C.as_tensor(got[0], f"{label} indices")
        scores = C.as_tensor(got[1], f"{label} scores")
        pos = C.as_tensor(got[2], f"{label} positions")
        C.resync()
        seen = list(model.batches)
        if not seen or max(seen) > batch:
            C.fail(
                f"{label}: the model saw too many images at once",
                expected=f"forward passes of at most {batch} images",
                got=f"passes of {seen}",
                hint="stream: loop over images[start : start + batch_size], keeping only the best k so far",
            )
        C.expect_shape(idx, (k,), f"{label} indices", hint="one index per example, k of them")
        got_idx, want_idx = [int(i) for i in idx.tolist()], exp_idx.tolist()
        if got_idx != want_idx:
            maxes = acts.flatten(1).max(1).values
            means = acts.flatten(1).mean(1)
            hint = "rank the images by the channel's LARGEST value over positions, best first"
            if got_idx == torch.sort(means, descending=True, stable=True).indices[:k].tolist():
                hint = "you ranked by the MEAN over positions; a dataset example is scored by its MAXIMUM"
            elif got_idx == torch.sort(maxes, descending=False, stable=True).indices[:k].tolist():
                hint = "largest first: sort in descending order"
            elif batch < n and all(0 <= i < batch for i in got_idx) and max(want_idx) >= batch:
                hint = "indices are positions in the whole dataset: add the batch's start to each index"
            C.fail(f"{label}: wrong images", expected=want_idx, got=got_idx, hint=hint)
        C.expect_close(scores.float(), exp_scores, f"{label} scores", rtol=1e-4, atol=1e-5,
                       hint="the score is the channel's largest value over the image's positions")  # fmt: skip
        C.expect_shape(pos, (k, 2), f"{label} positions", hint="one (row, col) pair per example")
        got_pos = [[int(v) for v in r] for r in pos.tolist()]
        if got_pos != exp_pos.tolist():
            hint = "the position of the maximum in the layer's grid: row = flat // W, col = flat % W"
            if got_pos == exp_pos.flip(1).tolist():
                hint = "rows and columns are swapped: (row, col) = (flat // W, flat % W)"
            C.fail(f"{label}: wrong positions", expected=exp_pos.tolist(), got=got_pos, hint=hint)
    C.done("top_k_examples", len(cases), hidden)


# =============================================================================================
# Exercise 2: the receptive-field patch
# =============================================================================================
def _patch_cases(hidden: bool):
    # (what, image (H, W), row, col, size, jump, start, fill)
    cases = [
        ("inside the image", (40, 40), 5, 7, 11, 2, 1.0, 0.5),
        ("at the corner (the field reaches outside)", (40, 40), 0, 0, 11, 2, 0.0, 0.5),
    ]
    if hidden:
        cases += [
            ("a non-square image, far edge", (30, 50), 14, 24, 9, 2, 1.0, 0.0),
            ("mixed3a-like: jump 8, start 3", (224, 224), 27, 3, 59, 8, 3.0, 0.5),
            ("mixed4a-like: larger than the image", (224, 224), 7, 13, 171, 16, 7.0, 1.0),
            ("negative start", (64, 48), 2, 11, 21, 4, -2.0, 0.25),
            ("size 1", (16, 16), 3, 9, 1, 1, 0.0, 0.5),
        ]
    return cases


def _ref_patch(image, row, col, size, jump, start, fill):
    half = (size - 1) // 2
    top, left = int(start + row * jump) - half, int(start + col * jump) - half
    return _ref_crop(image, top, left, top + size - 1, left + size - 1, fill, False)


@C.check
def check_receptive_patch(fn, hidden: bool = False) -> None:
    """Check ``fn(image, row, col, size, jump, start, fill) -> (3, size, size)``.

    The patch is centred on pixel ``start + i * jump`` in each direction (``i`` the row, then
    the column); pixels outside the image take the value ``fill``.
    """
    cases = _patch_cases(hidden)
    for c, (what, (h, w), row, col, size, jump, start, fill) in enumerate(cases):
        gen = torch.Generator().manual_seed(200 + c)
        image = torch.rand(3, h, w, generator=gen)
        label = f"receptive_patch({what}: image {tuple(image.shape)}, row={row}, col={col}, size={size}, " \
                f"jump={jump}, start={start}, fill={fill})"  # fmt: skip
        expected = _ref_patch(image, row, col, size, jump, start, fill)
        got = C.call(fn, image.clone(), row, col, size, jump, start, fill, what=label)
        got = C.as_tensor(got, label)
        shape_hint = "the patch is always size x size: pad with `fill` where the field leaves the image"
        if tuple(got.shape) != (3, size, size):
            C.fail(
                f"{label} has the wrong shape",
                expected=(3, size, size),
                got=tuple(got.shape),
                hint=shape_hint,
            )
        if not C.close(got.float(), expected):
            hint = "centre = start + i * jump, half = (size - 1) // 2; the patch spans centre - half .. centre + half"
            swapped = _ref_patch(image, col, row, size, jump, start, fill)
            nostart = _ref_patch(image, row, col, size, jump, 0.0, fill)
            if row != col and C.close(got.float(), swapped):
                hint = "rows and columns are swapped: the row index moves the patch down, the column right"
            elif start != 0 and C.close(got.float(), nostart):
                hint = "the centre is start + i * jump: did you forget the start?"
            elif C.close(got.float(), _shifted_patch(image, row, col, size, jump, start, fill)):
                hint = (
                    "the patch must not move into the image: where the field leaves the image, "
                    "fill with `fill` (cut what overlaps, paste it at the right offset)"
                )
            elif fill != 0.0 and C.close(got.float(), _ref_patch(image, row, col, size, jump, start, 0.0)):
                hint = "pixels outside the image take the value `fill`, not 0"
            C.fail(f"{label}: wrong pixels", expected=_summary(expected), got=_summary(got), hint=hint)
    C.done("receptive_patch", len(cases), hidden)


def _shifted_patch(image, row, col, size, jump, start, fill):
    """A common mistake: the window slid back inside the image (where it fits)."""
    half = (size - 1) // 2
    h, w = image.shape[-2:]
    top = min(max(int(start + row * jump) - half, 0), max(h - size, 0))
    left = min(max(int(start + col * jump) - half, 0), max(w - size, 0))
    return _ref_crop(image, top, left, top + size - 1, left + size - 1, fill, False)


def _summary(t: _Tensor) -> str:
    t = t.double()
    return f"shape {tuple(t.shape)}, mean {float(t.mean()):.4f}, corner pixel {float(t[0, 0, 0]):.4f}"


# =============================================================================================
# Exercise 3: a diversity render
# =============================================================================================
def _diversity_value(model, images, layer) -> float:
    """The batch's mean Gram-matrix cosine similarity at ``layer`` (Lucid's diversity)."""
    with torch.no_grad():
        acts = _ref_activations(model, images, [layer])
        return float(_ref_diversity(layer)(acts).mean())


def _channel_values(model, images, layer, channel) -> _Tensor:
    with torch.no_grad():
        return _ref_channel(layer, channel)(_ref_activations(model, images, [layer]))


@C.check
def check_diverse_render(fn, hidden: bool = False) -> None:
    """Check ``fn(model, layer, channel, n, strength, diversity_layer, size, steps, seed)``.

    It returns ``(n, 3, size, size)`` in [0, 1]: one batch optimised for ``channel - strength *
    diversity(diversity_layer)``. Properties checked on the planted polysemantic unit: with
    ``strength > 0`` the images are less alike (lower mean Gram similarity) than with
    ``strength = 0`` from the same seed, and the channel still rises above a grey image's.
    """
    cases = [("units", 0, 4, 1.0, "units", 32, 40, 0)]
    if hidden:
        cases += [("units", 0, 3, 10.0, "detectors", 28, 40, 1), ("units", 0, 2, 3.0, "units", 24, 40, 2)]
    model = _Planted(threshold=0.0)  # a threshold of 0: the gradient is not zero at the start
    with _one_cpu_thread():  # a tiny model: one thread is many times faster on a busy CPU
        for case in cases:
            _check_one_render(fn, model, *case)
    C.done("diverse_render", len(cases), hidden)


def _check_one_render(fn, model, layer, channel, n, strength, div_layer, size, steps, seed) -> None:
    """One case of :func:`check_diverse_render`: renders with and without diversity, compared."""
    label = f"diverse_render(planted model, {layer!r}, {channel}, n={n}, strength={{}}, " \
            f"diversity_layer={div_layer!r}, size={size}, steps={steps}, seed={seed})"  # fmt: skip
    results = {}
    for s in (0.0, strength):
        what = label.format(s)
        got = C.call(fn, model, layer, channel, n, s, div_layer, size, steps, seed, what=what)
        got = C.as_tensor(got, what).float()
        if tuple(got.shape) != (n, 3, size, size):
            hint = "render ONE batch of n images: render(model, objective, batch=n, size=size, ...)"
            C.fail(
                f"{what} has the wrong shape", expected=(n, 3, size, size), got=tuple(got.shape), hint=hint
            )
        if not bool(torch.isfinite(got).all()) or float(got.min()) < 0 or float(got.max()) > 1:
            C.fail(f"{what}: values outside [0, 1]", expected="images in [0, 1]",
                   got=f"min {float(got.min()):.3g}, max {float(got.max()):.3g}",
                   hint="return render's images as they are")  # fmt: skip
        results[s] = got
    plain, diverse = results[0.0], results[strength]
    sim_plain = _diversity_value(model, plain, div_layer)
    sim_diverse = _diversity_value(model, diverse, div_layer)
    if C.close(plain, diverse, atol=1e-6):
        C.fail(f"{label.format(strength)}: the same images as with strength=0",
               expected="the diversity term to change the images", got="identical images",
               hint="subtract strength * diversity(diversity_layer) from the channel objective")  # fmt: skip
    if not sim_diverse < 0.9 * sim_plain:
        hint = "maximise channel(layer, channel) - strength * diversity(diversity_layer)"
        if sim_diverse >= 0.99 * sim_plain:  # as alike as without it, or more: the wrong sign
            hint = "SUBTRACT the diversity term: adding it rewards images that look alike"
        C.fail(
            f"{label.format(strength)}: the images are not more diverse than without the diversity term",
            expected=f"a mean Gram similarity below {0.9 * sim_plain:.3f} (strength=0 gives {sim_plain:.3f})",
            got=f"{sim_diverse:.3f}",
            hint=hint,
        )
    grey = _channel_values(model, torch.full((1, 3, size, size), 0.5), layer, channel)
    values = _channel_values(model, diverse, layer, channel)
    if not float(values.mean()) > float(grey.mean()) + 0.005:
        C.fail(
            f"{label.format(strength)}: the channel did not rise",
            expected=f"a mean channel value above a grey image's ({float(grey.mean()):.3f})",
            got=f"{float(values.mean()):.3f}",
            hint="the objective is channel(layer, channel) MINUS strength * diversity: keep the channel term",
        )


# =============================================================================================
# Exercise 4: how many classes among the top examples
# =============================================================================================
def _class_cases(hidden: bool):
    cases = [
        ("one class", [3, 3, 3, 3]),
        ("two classes, equally often", [1, 2, 1, 2, 2, 1]),
        ("four classes, equally often", [0, 1, 2, 3]),
        ("uneven: 6, 1, 1", [5, 5, 5, 5, 5, 5, 7, 8]),
    ]
    if hidden:
        gen = torch.Generator().manual_seed(4)
        cases += [
            ("with unlabelled examples (-1)", [2, -1, 2, 4, -1, 4]),
            ("a tensor of labels", torch.tensor([9, 9, 1, 1, 1, 0])),
            ("one example", [7]),
            ("class names", ["cat", "car", "cat", "car", "leg"]),
            ("random labels", torch.randint(0, 6, (40,), generator=gen)),
        ]
    return cases


@C.check
def check_effective_classes(fn, hidden: bool = False) -> None:
    """Check ``fn(labels) -> float``: ``2 ** H`` (H the entropy in bits of the label
    distribution, unlabelled ``-1`` left out); 1 for one class, m for m equal classes."""
    cases = _class_cases(hidden)
    for what, labels in cases:
        lab = labels.clone() if isinstance(labels, _Tensor) else list(labels)
        label = f"effective_classes({what}: {lab.tolist() if isinstance(lab, _Tensor) else lab})"
        expected = _ref_effective_classes(labels)
        got = C.call(fn, lab, what=label)
        try:
            value = float(got)
        except (TypeError, ValueError, RuntimeError):
            C.fail(f"{label} should return a number", expected="a float", got=repr(got)[:80])
        C.resync()
        if not math.isclose(value, expected, rel_tol=1e-5, abs_tol=1e-6):
            values = labels.tolist() if isinstance(labels, _Tensor) else list(labels)
            n_classes = len({v for v in values if v != -1})
            h_bits = _ref_label_entropy(values)
            h_all = _ref_label_entropy([str(v) for v in values])  # "-1" counted as a class
            hint = (
                "compute the entropy in bits of the label frequencies, H = -sum p log2 p, then return 2 ** H"
            )
            if math.isclose(value, n_classes) and n_classes > 1:
                hint = "that counts the distinct classes; weight them by how often they occur: 2 ** entropy"
            elif math.isclose(value, h_bits, abs_tol=1e-6):
                hint = "that is the entropy itself; the effective number of classes is 2 ** H"
            elif math.isclose(value, 2 ** (h_bits * math.log(2)), rel_tol=1e-5) or math.isclose(
                value, math.exp(h_bits), rel_tol=1e-5
            ):
                hint = "mixed bases: with H in bits use 2 ** H (with H in nats, e ** H)"
            elif math.isclose(value, 2**h_all, rel_tol=1e-5):
                hint = "leave the unlabelled examples (-1) out"
            C.fail(f"{label} is wrong", expected=f"{expected:.6g}", got=f"{value:.6g}", hint=hint)
    C.done("effective_classes", len(cases), hidden)


# =============================================================================================
# Exercise 5: outgoing weights
# =============================================================================================
def _weight_cases(hidden: bool):
    g = torch.Generator().manual_seed(5)
    cases = [
        ("random 1x1 weights (6, 4, 1, 1)", torch.randn(6, 4, 1, 1, generator=g), 2, 3),
        ("random 3x3 weights (8, 5, 3, 3)", torch.randn(8, 5, 3, 3, generator=g), 4, 4),
        ("the planted model's units layer", _Planted().units_pre_relu_conv.weight.detach().clone(), 1, 2),
    ]
    if hidden:
        cases += [
            ("random 5x5 weights (20, 16, 5, 5)", torch.randn(20, 16, 5, 5, generator=g), 15, 6),
            ("k = all outputs", torch.randn(5, 3, 3, 3, generator=g), 0, 5),
            ("mostly negative weights", torch.randn(10, 4, 3, 3, generator=g) - 1.0, 3, 3),
            ("InceptionV1 mixed4d_1x1 (PyTorch's random init), from 4c:447", _inception_4d_1x1(), 447, 5),
        ]
    return cases


def _inception_4d_1x1() -> _Tensor:
    """``(112, 528, 1, 1)``: mixed4d's 1x1 weights at PyTorch's seeded initialisation (the
    caller's random state untouched)."""
    return C.seeded_inception(0).mixed4d_1x1_pre_relu_conv.weight.detach().clone()


@C.check
def check_outgoing_weights(fn, hidden: bool = False) -> None:
    """Check ``fn(weight, channel, k) -> (targets, values)`` on weights ``(O, C, kh, kw)``: each
    output's weight from input ``channel`` summed over the kernel; the ``k`` largest, largest first."""
    cases = _weight_cases(hidden)
    for what, weight, channel, k in cases:
        label = f"outgoing_weights({what}, channel={channel}, k={k})"
        summed = weight[:, channel].flatten(1).sum(1)
        order = torch.sort(summed, descending=True, stable=True).indices[:k]
        got = C.call(fn, weight.clone(), channel, k, what=label)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            C.fail(f"{label} should return two tensors", expected="(targets, values)", got=type(got).__name__)
        targets = C.as_tensor(got[0], f"{label} targets")
        values = C.as_tensor(got[1], f"{label} values")
        C.resync()
        C.expect_shape(targets, (k,), f"{label} targets", hint="the k strongest target units")
        C.expect_shape(values, (k,), f"{label} values", hint="one summed weight per target")
        got_t = [int(t) for t in targets.tolist()]
        if got_t != order.tolist() or not C.close(values.float(), summed[order], rtol=1e-4, atol=1e-5):
            hint = "weight[out, in, y, x]: the unit's outgoing weights are weight[:, channel], summed over (y, x)"
            if channel < weight.shape[0]:  # the mistaken weight[channel] exists: compare with it
                incoming = weight[channel].flatten(1).sum(1)
                k_in = min(k, len(incoming))
                if got_t[:k_in] == torch.sort(incoming, descending=True, stable=True).indices[:k_in].tolist():
                    hint = (
                        "those are the INCOMING weights weight[channel]; outgoing ones are weight[:, channel]"
                    )
            if got_t == torch.sort(summed.abs(), descending=True, stable=True).indices[:k].tolist():
                hint = "rank by the signed weight (excitatory first), not by its magnitude"
            elif got_t == torch.sort(weight[:, channel].flatten(1).amax(1), descending=True,
                                     stable=True).indices[:k].tolist():  # fmt: skip
                hint = "SUM the weights over the kernel's positions (not the maximum)"
            elif got_t == order.tolist():
                hint = "the values are the summed weights of those targets"
            C.fail(f"{label} is wrong", expected=(order.tolist(), [round(v, 4) for v in summed[order].tolist()]),
                   got=(got_t, [round(float(v), 4) for v in values.tolist()]), hint=hint)  # fmt: skip
    C.done("outgoing_weights", len(cases), hidden)


# =============================================================================================
# Exercise 6: the planted unit's two facets
# =============================================================================================
def _facet_cases(hidden: bool):
    # (unit channel, n_plain, n_per, size, k, batch, seed)
    cases = [(0, 6, 3, 40, 9, 4, 0), (1, 6, 3, 40, 6, 4, 1)]
    if hidden:
        cases += [(0, 8, 4, 48, 12, 5, 2), (2, 5, 3, 36, 8, 3, 3), (0, 4, 2, 32, 6, 2, 4)]
    return cases


@C.check
def check_facets(fn, hidden: bool = False) -> None:
    """Check ``fn(model, images, layer, channel, k, batch_size) -> list of lists of indices`` on
    the planted model: ``units:0`` responds to two unrelated patterns, so its top examples fall
    into exactly two groups, the cross images and the checkerboard images; ``units:1`` and
    ``units:2`` into one. Images that do not excite the unit belong to no group."""
    cases = _facet_cases(hidden)
    model = _Planted()
    for channel, n_plain, n_per, size, k, batch, seed in cases:
        images, _labels, truth = _ref_planted_images(n_plain, n_per, size, seed=seed)
        kinds = {0: ("cross", "checker"), 1: ("cross",), 2: ("checker",)}[channel]
        expected = sorted(sorted(i for i, (kind, _) in enumerate(truth) if kind == p) for p in kinds)
        label = (f"facets(planted model, {len(images)} images ({n_per} crosses, {n_per} checkerboards), "
                 f"'units', {channel}, k={k}, batch_size={batch})")  # fmt: skip
        got = C.call(fn, model, images.clone(), "units", channel, k, batch, what=label)
        try:
            groups = sorted(sorted(int(i) for i in group) for group in got)
        except (TypeError, ValueError, RuntimeError):
            C.fail(f"{label} should return a list of lists of image indices",
                   expected="[[i, ...], [j, ...]]", got=repr(got)[:80])  # fmt: skip
        C.resync()
        if groups != expected:
            hint = (
                "take the top-k examples, keep those that excite the unit (score > 0), read the layer's "
                "other channels at each one's best position, and cluster them with count_clusters"
            )
            plain = {i for i, (kind, _) in enumerate(truth) if kind is None}
            if any(i in plain for g in groups for i in g):
                hint = "leave out examples with score <= 0: they do not excite the unit at all"
            elif len(groups) == 1 and len(expected) == 2:
                hint = "one group: cluster what else the layer sees at each example (its other channels)"
            C.fail(f"{label}: wrong groups", expected=expected, got=groups, hint=hint)
    C.done("facets", len(cases), hidden)
