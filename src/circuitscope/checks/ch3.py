"""Checks for chapter 3's exercises ("Circuits"), each an :class:`~.runner.Exercise` run by :mod:`.runner`.

The cases are data (unit names, numbers, tensors; a :class:`~.runner.Recipe` for a model); the
references and properties are computed where the cases are judged, with the library's own
functions. The weight exercises run on a seeded default-initialised InceptionV1 (checked against
autograd), the stimulus, tuning and circuit ones on the planted curve model, NMF on planted data.

Every random value of a hidden case comes from a seed passed through :func:`~.runner.hidden_seed`:
the public number here, another one drawn from the grader's private key when it grades (the hidden
weight cases' InceptionV1, the random circuits, the planted NMF data). The curve stimulus and the
tuning curve have no random value: their hidden cases are the same under any key.
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import pairwise

import torch

from ..core.hooks import activations
from ..core.models.inceptionv1 import LAYER_CHANNELS
from ..core.units import format_unit, parse_unit
from ..methods.branches import BRANCH_SUFFIXES, banded_weight
from ..methods.circuits import branch_of, expanded_weights, expanded_weights_by_gradient
from ..methods.stimuli import curve, tuning_curve
from .recipes import seeded_inception
from .runner import Case, CheckFailed, Exercise, Mistake, Recipe, as_tensor, compare, fail, hidden_seed, same

__all__ = [
    "BlockLayout",
    "block_layout",
    "check_banding_index",
    "check_branch_shares",
    "check_curve_stimulus",
    "check_direct_weights",
    "check_expanded_weights",
    "check_nmf",
    "check_read_circuit",
    "check_tuning_curve",
    "random_curves",
    "seeded_inception",
]

PLANTED = "circuitscope.methods.planted:PlantedCurveModel"


def _wrong_shape(got, expected: torch.Tensor) -> bool:
    """Whether ``got`` is a tensor (or numbers) whose shape is not ``expected``'s."""
    try:
        return tuple(as_tensor(got, "").shape) != tuple(expected.shape)
    except AssertionError:
        return False


def _earlier(case: Case, key):
    """What an earlier case of this run stored under ``key`` (the runner judges in order)."""
    store = case.data["store"]
    if key not in store:
        raise RuntimeError(f"{case.label}: its earlier case was not judged first")
    return store[key]


# =============================================================================================
# Exercise 1: the weights between two directly connected units
# =============================================================================================
#: The seed of the visible cases' InceptionV1 (the hidden cases' is ``hidden_seed`` of it).
INCEPTION_SEED = 3


def _inception_recipe(seed: int) -> Recipe:
    return Recipe("circuitscope.checks.ch3:seeded_inception", seed=seed)


@lru_cache(maxsize=2)
def _inception(seed: int):
    """The references' own copy of the case's model (the learner's function gets a fresh one)."""
    return _inception_recipe(seed).build()


def _weight(case: Case, layer: str) -> torch.Tensor:
    """``(out, in, k, k)``: the weight of ``layer``'s convolution in the references' copy of the case's model."""
    return getattr(_inception(case.args[0].kwargs["seed"]), f"{layer}_pre_relu_conv").weight.detach()


def _weight_cases(visible: list, hidden: list | None) -> list[tuple[Recipe, str, str]]:
    """``(model, source, target)``: the visible pairs on the public model, the hidden ones (if
    asked) on the model of the hidden seed."""
    public, private = _inception_recipe(INCEPTION_SEED), _inception_recipe(hidden_seed(INCEPTION_SEED))
    return [(public, *pair) for pair in visible] + [(private, *pair) for pair in hidden or ()]


KERNEL_HINT = "one source unit and one target unit: a single (k, k) spatial kernel"


def _direct_cases(hidden: bool):
    pairs = [("conv2d1:5", "conv2d2:7"), ("mixed3b_3x3_bottleneck:12", "3b:140")]
    more = [
        ("mixed3b_5x5_bottleneck:3", "3b:379"),
        ("3a:147", "3b:50"),  # the 1x1 branch reads mixed3a directly
        ("mixed4c_5x5_bottleneck:20", "4c:447"),
        ("mixed4b_3x3_bottleneck:40", "mixed4b_3x3:7"),  # a branch unit, by its branch name
    ]
    # What each hidden case tests, in words (all on a model initialised from another seed).
    abouts = {
        ("mixed3b_5x5_bottleneck:3", "3b:379"): "a target in another branch of a block, named by its channel of "
        "the block's concatenated output, read from that branch's bottleneck (another model's weights)",
        ("3a:147", "3b:50"): "a target in the block's 1x1 branch, which reads the previous block directly "
        "(another model's weights)",
        ("mixed4c_5x5_bottleneck:20", "4c:447"): "a deeper block's unit, named by its channel of the concatenated "
        "output (another model's weights)",
        ("mixed4b_3x3_bottleneck:40", "mixed4b_3x3:7"): "a target named by its branch's own layer name, not the "
        "block's (another model's weights)",
    }  # fmt: skip
    for i, (model, source, target) in enumerate(_weight_cases(pairs, more if hidden else None)):
        yield Case(f"direct_weights(model, {source!r}, {target!r})", (model, source, target),
                   about=abouts[source, target] if i >= len(pairs) else None,
                   expect=expanded_weights(_inception(model.kwargs["seed"]), source, target), rtol=1e-5, atol=1e-7,
                   hint="weight[target_channel, source_channel] of the target's <layer>_pre_relu_conv",
                   mistakes=_concatenated(target))  # fmt: skip


def _concatenated(target: str) -> tuple:
    """The mistake of indexing a block's branch with the concatenated channel (for such a target)."""
    layer = parse_unit(target)[0]
    if not (layer.startswith("mixed") and "_" not in layer):
        return ()
    branch, index = branch_of(target)
    return (Mistake(f"{target} is a channel of {layer}'s concatenated output: it is channel {index} of its "
                    f"branch {branch} (circuits.branch_of). Index the branch's weight with that",
                    result=_concatenated_channel),)  # fmt: skip


def _direct_parts(case: Case) -> tuple[torch.Tensor, int, int, int]:
    """``(weight of the target's branch, source channel, branch channel, concatenated channel)``."""
    _, source, target = case.args
    (_, s), (layer, t) = parse_unit(source), parse_unit(target)
    branch, b = branch_of(target) if layer.startswith("mixed") and "_" not in layer else (layer, t)
    return _weight(case, branch), s, b, t


def _swapped(case: Case):
    w, s, t, _ = _direct_parts(case)
    return w[s, t] if s < w.shape[0] and t < w.shape[1] else None


def _concatenated_channel(case: Case):
    w, s, t, concat = _direct_parts(case)
    return w[concat, s] if concat != t and concat < w.shape[0] else None


def _flipped_or_transposed(case: Case, got) -> bool:
    w, s, t, _ = _direct_parts(case)
    return same(got, w[t, s].flip(0)) or same(got, w[t, s].t())


check_direct_weights = Exercise(
    "check_direct_weights", "direct_weights", _direct_cases,
    doc="""Check ``fn(model, source_unit, target_unit) -> (k, k)`` (exercise 1).""",
    mistakes=[
        Mistake(KERNEL_HINT, when=lambda case, got: _wrong_shape(got, case.expect)),
        Mistake("the indices are swapped: a conv weight is (out_channels, in_channels, k, k), target first",
                result=_swapped),
        Mistake("return the kernel as stored: row 0 at the top, not flipped or transposed",
                when=_flipped_or_transposed),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 2: expanded weights through a 1x1 bottleneck
# =============================================================================================
def _expanded_cases(hidden: bool):
    pairs = [("3a:147", "3b:379"), ("3a:81", "3b:385")]
    more = [("3a:50", "3b:200"), ("4b:237", "4c:447"), ("4b:373", "4c:447"), ("4d:3", "4e:300")]
    # What each hidden case tests, in words (all on a model initialised from another seed).
    abouts = {
        ("3a:50", "3b:200"): "a target in a block's 3x3 branch (another model's weights)",
        ("4b:237", "4c:447"): "a pair of deeper blocks (another model's weights)",
        ("4b:373", "4c:447"): "another source unit for the same deeper target (another model's weights)",
        ("4d:3", "4e:300"): "a pair of later blocks, a target in a 3x3 branch (another model's weights)",
    }
    for i, (model, source, target) in enumerate(_weight_cases(pairs, more if hidden else None)):
        branch, index = branch_of(target)
        # The definition: the gradient of the linearised model (ReLU as identity), by autograd.
        expected = expanded_weights_by_gradient(_inception(model.kwargs["seed"]), source, f"{branch}:{index}")
        yield Case(f"expanded_weights_bottleneck(model, {source!r}, {target!r})", (model, source, target),
                   expect=expected, rtol=1e-4, atol=1e-7 + 1e-5 * float(expected.abs().max()),
                   about=abouts[source, target] if i >= len(pairs) else None,
                   hint="sum over the bottleneck channels b: W_branch[target, b] (k x k) times "
                        "W_bottleneck[b, source] (a 1x1 weight)")  # fmt: skip


def _bottleneck_parts(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W_branch[target]: (bottleneck, k, k), W_bottleneck[:, source]: (bottleneck,))``."""
    _, source, target = case.args
    branch, t = branch_of(target)
    return _weight(case, branch)[t], _weight(case, f"{branch}_bottleneck")[:, parse_unit(source)[1], 0, 0]


def _through_relu(case: Case) -> torch.Tensor:
    late, neck = _bottleneck_parts(case)
    return torch.einsum("bij,b->ij", late, neck.clamp(min=0))


def _unsigned(case: Case) -> torch.Tensor:
    late, neck = _bottleneck_parts(case)
    return torch.einsum("bij,b->ij", late.abs(), neck.abs())


check_expanded_weights = Exercise(
    "check_expanded_weights", "expanded_weights_bottleneck", _expanded_cases,
    forbid=("circuitscope.methods.circuits:expanded_weights", "circuitscope.methods.circuits:expanded_weights_by_gradient",),
    doc="""Check ``fn(model, source_unit, target_unit) -> (k, k)`` (exercise 2) against autograd.""",
    mistakes=[
        Mistake(KERNEL_HINT, when=lambda case, got: _wrong_shape(got, case.expect)),
        Mistake("did you apply the ReLU? Expanded weights linearise the network: the bottleneck's ReLU "
                "is the identity, so negative bottleneck weights count too",
                result=_through_relu),
        Mistake("each bottleneck channel must be weighted by its weight from the source unit",
                result=lambda case: _bottleneck_parts(case)[0].sum(0)),
        Mistake("keep the signs: positive weights excite, negative ones inhibit",
                result=_unsigned),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 3: a curve stimulus
# =============================================================================================
def _curve_cases(hidden: bool):
    """Arcs facing every way round the circle (an angle test that does not wrap fails on some)."""
    rows = [(30.0, 16.0, 90.0, 64, 2.0), (90.0, 12.0, 120.0, 48, 2.0), (270.0, 14.0, 100.0, 56, 2.0)]
    visible = len(rows)
    # What each hidden case tests, in words, in the order of the rows below.
    abouts = [
        "an arc facing past 180 degrees, with a larger radius and a thicker line",
        "a negative orientation, a half-circle arc, on an odd-sized image",
        "a narrow arc of a large radius facing up and to the left, with a thinner line",
        "a whole circle (the arc's width a full turn), on an odd-sized image",
        "an arc facing right (orientation zero)",
        "an arc facing left (exactly 180 degrees, where the angle wraps)",
        "an arc facing down and to the right, given as an angle between 270 and 360 degrees",
        "an orientation just short of a full turn, with a thicker line",
        "a negative orientation of more than a quarter turn",
        "an orientation of more than a full turn (it must wrap)",
    ]
    if hidden:
        rows += [
            (200.0, 20.0, 120.0, 64, 3.0),
            (-45.0, 10.0, 180.0, 41, 2.0),
            (135.0, 25.0, 60.0, 80, 1.5),
            (0.0, 8.0, 360.0, 33, 2.0),  # a whole circle
            (0.0, 14.0, 120.0, 48, 2.0),
            (180.0, 16.0, 150.0, 56, 2.0),
            (315.0, 12.0, 120.0, 48, 2.0),
            (350.0, 15.0, 90.0, 52, 2.5),
            (-120.0, 12.0, 140.0, 48, 2.0),
            (480.0, 14.0, 100.0, 50, 2.0),  # = 120 degrees
        ]
    store = {}  # this run's first image, for the rotation case
    for i, args in enumerate(rows):
        yield Case(_curve_label(*args), args, verify=_arc, data={"store": store},
                   about=abouts[i - visible] if i >= visible else None)  # fmt: skip
    # Turning the orientation by 90 degrees turns the (square) image by 90 degrees.
    ori, *rest = rows[0]
    yield Case("draw_curve(orientation + 90, ...) vs the image rotated by 90 degrees", (ori + 90.0, *rest),
               verify=_rotated, data={"store": store},
               about="the orientation turned by a quarter turn: the image must turn with it",
               hint="orientation is counter-clockwise: 90 degrees more turns the curve a quarter turn to the left")  # fmt: skip


def _curve_label(ori, rad, wid, size, thick) -> str:
    return f"draw_curve(orientation={ori}, radius={rad}, width={wid}, size={size}, thickness={thick})"


def _mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().mean())


def _reference_curve(ori, rad, wid, size, thick) -> torch.Tensor:
    """``(3, size, size)`` float64: the library's arc."""
    return curve(ori, rad, wid, size, thick, dtype=torch.float64)[0]


def _image(case: Case, got) -> torch.Tensor:
    """The learner's ``(3, size, size)`` image as float64 in [0, 1], or a failure."""
    size = case.args[3]
    got = as_tensor(got, case.label)
    if tuple(got.shape) != (3, size, size):
        fail(f"{case.label} has the wrong shape", expected=(3, size, size), got=tuple(got.shape),
             hint="one RGB image, channels first: (3, size, size)")  # fmt: skip
    got = got.double()
    if not bool(torch.isfinite(got).all()) or float(got.min()) < 0 or float(got.max()) > 1:
        fail(f"{case.label}: values outside [0, 1]", expected="[0, 1]",
             got=f"[{float(got.min()):.3g}, {float(got.max()):.3g}]", hint="clamp the coverage to [0, 1]")  # fmt: skip
    return got


def _arc(case: Case, got) -> None:
    """Property (exact geometry, within anti-aliasing): the ink lies at ``radius`` from the
    circle's centre, ``radius`` behind the image centre against ``orientation``; there is as much
    of it as in :func:`circuitscope.methods.stimuli.curve`'s arc, which the image matches on average."""
    ori, rad, _, size, _ = case.args
    got = _image(case, got)
    expected = _reference_curve(*case.args)
    ink = got.mean(0)
    c, phi = (size - 1) / 2, math.radians(ori)
    cx, cy = c - rad * math.cos(phi), c + rad * math.sin(phi)  # (column, row): rows grow downwards
    rows, cols = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                                indexing="ij")  # fmt: skip
    total = float(ink.sum())
    off = float((ink * (torch.sqrt((cols - cx) ** 2 + (rows - cy) ** 2) - rad).abs()).sum()) / max(total, 1e-9)
    ink_ratio = total / float(expected.mean(0).sum())  # the arc's length (and thickness) is right
    if abs(ink_ratio - 1) > 0.15 or off > 1.0 or _mad(got, expected) > 0.04:
        fail(f"{case.label} is not the expected arc",
             expected=f"ink at {rad} px from the circle's centre (column {cx:.1f}, row {cy:.1f}); "
                      f"mean |difference| from stimuli.curve < 0.04",
             got=f"ink on average {off:.2f} px off that circle, {ink_ratio:.2f} times the expected amount of ink; "
                 f"mean |difference| {_mad(got, expected):.3f}",
             hint="the circle's centre is radius pixels behind the image centre, against the orientation; "
                  "a pixel's intensity is clamp(0.5 + (thickness / 2 - |distance to circle - radius|), 0, 1) "
                  "inside the arc's angular span")  # fmt: skip
    case.data["store"].setdefault("first", got)


def _rotated(case: Case, got) -> None:
    """Property: this image (orientation + 90) is the run's first image turned a quarter left."""
    a, b = _earlier(case, "first"), _image(case, got)
    difference = _mad(torch.rot90(a, 1, dims=(1, 2)), b)
    if difference > 0.02:
        fail(f"{case.label}: not a rotation", expected="mean |difference| < 0.02", got=f"{difference:.3f}")


CURVE_VARIANTS = {  # hint -> the arguments of the arc a mistaken drawer draws instead
    "rows grow downwards: the y axis points UP in the convention (90 = up), so y = (size - 1) / 2 - row":
        lambda ori, rad, wid, size, thick: (-ori, rad, wid, size, thick),
    "the circle's centre lies BEHIND the arc's midpoint: centre = image centre - radius * (cos, sin) "
    "of the orientation, so the curve bulges towards the orientation":
        lambda ori, rad, wid, size, thick: (ori + 180.0, rad, wid, size, thick),
    "width is the whole arc's angular extent: it spans orientation - width / 2 to orientation + width / 2":
        lambda ori, rad, wid, size, thick: (ori, rad, min(2 * wid, 360.0), size, thick),
    "width is the whole arc's extent (not its half): it spans orientation +- width / 2":
        lambda ori, rad, wid, size, thick: (ori, rad, wid / 2, size, thick),
    "angles are in degrees: convert with math.radians before cos and sin":
        lambda ori, rad, wid, size, thick: (math.degrees(ori) % 360, rad, wid, size, thick),
}  # fmt: skip


def _curve_variant(case: Case, got) -> str | None:
    """The hint of the mistaken arc ``got`` is closest to (if much closer than to the right
    one), for an arc case whose image has the right shape and range; else None."""
    wid, size = case.args[2], case.args[3]
    if case.verify is not _arc or wid >= 360 or not _plausible_image(got, size):
        return None
    got = got.double()
    mads = {hint: _mad(got, _reference_curve(*variant(*case.args))) for hint, variant in CURVE_VARIANTS.items()}
    best = min(mads, key=mads.get)
    return best if mads[best] < 0.5 * _mad(got, _reference_curve(*case.args)) else None


def _plausible_image(got, size: int) -> bool:
    return (isinstance(got, torch.Tensor) and tuple(got.shape) == (3, size, size) and got.is_floating_point()
            and bool(torch.isfinite(got).all()) and float(got.min()) >= 0 and float(got.max()) <= 1)  # fmt: skip


def _black(case: Case, got) -> bool:
    """A black image, before any arc of this run was drawn right."""
    return _plausible_image(got, case.args[3]) and float(got.sum()) == 0 and not case.data["store"]


def _part_missing(case: Case, got) -> bool:
    """Ink only where the arc's is, but too little (none, once an arc of this run was right):
    part of the arc's angular span left out, as an angle test that does not wrap leaves it."""
    if case.verify is not _arc or not _plausible_image(got, case.args[3]):
        return False
    ink, expected = got.double().mean(0), _reference_curve(*case.args).mean(0)
    total, outside = float(ink.sum()), float((ink * (expected == 0)).sum())
    return total < 0.85 * float(expected.sum()) and outside <= 0.02 * total and (total > 0 or bool(case.data["store"]))


check_curve_stimulus = Exercise(
    "check_curve_stimulus", "draw_curve", _curve_cases,
    forbid=("circuitscope.methods.stimuli:curve",),
    doc="""Check ``fn(orientation, radius, width, size, thickness) -> (3, size, size)`` (exercise 3).

    Properties (exact geometry, within anti-aliasing): the drawn pixels lie at ``radius`` from
    the circle's centre, which lies ``radius`` behind the image centre against ``orientation``;
    the arc faces ``orientation`` (any angle, negative or past 360); it matches
    :func:`circuitscope.methods.stimuli.curve` on average. Rotating by 90 degrees rotates the image.
    """,
    mistakes=[
        Mistake("the image is black: draw the arc in white (1.0) on black (0.0)", when=_black),
        *(Mistake(hint, when=lambda case, got, hint=hint: _curve_variant(case, got) == hint)
          for hint in CURVE_VARIANTS),
        Mistake("part of the arc is missing: wrap the angle from the orientation into [-180, 180) degrees "
                "(e.g. with torch.remainder) before comparing it with width / 2, so that arcs facing any way "
                "(270, -45, 480 degrees) are drawn whole", when=_part_missing),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 4: a radial tuning curve
# =============================================================================================
@lru_cache(maxsize=4)
def _planted(**kwargs):
    """The references' own planted model (the learner's function gets a fresh one)."""
    return Recipe(PLANTED, **kwargs).build()


def _tuning_cases(hidden: bool):
    """The centre of an even map (H = size / 4) is (H - 1) // 2, not H // 2: some maps are even."""
    rows = [({}, "curves:2", 16, 12.0, 44), ({}, "curves:5", 8, 12.0, 44), ({}, "curves:1", 8, 12.0, 40)]
    if hidden:
        rows += [
            ({"radius": 16.0, "inhibition": 1.0}, "curves:7", 12, 16.0, 52),
            ({}, "curves:0", 8, 12.0, 48),  # an even map (12 x 12): the centre is (H - 1) // 2
            ({}, "lines:3", 8, 12.0, 44),
            ({"radius": 16.0, "inhibition": 1.0}, "curves:6", 12, 16.0, 56),  # 14 x 14
        ]
    # What each hidden case tests, in words, in the order of the hidden rows.
    abouts = [
        "a planted model with inhibition and another curve radius, more angles, an odd-sized map",
        "an even-sized activation map (the centre is (H - 1) // 2)",
        "a unit of the earlier layer (lines), not of curves",
        "an even-sized map, on a planted model with inhibition and another curve radius",
    ]
    for i, (kwargs, unit, n, radius, size) in enumerate(rows):
        angles = torch.arange(n, dtype=torch.float64) * (360.0 / n)
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        yield Case(f"radial_tuning_curve(PlantedCurveModel({args}), {unit!r}, {n} angles, radius={radius}, size={size})",
                   (Recipe(PLANTED, **kwargs), unit, angles, radius, size),
                   expect=tuning_curve(_planted(**kwargs), unit, angles=angles, size=size, radius=radius).responses,
                   rtol=1e-4, atol=1e-5, about=abouts[i - 3] if i >= 3 else None,
                   hint="draw stimuli.curve(angles, radius=radius, size=size) and read the unit at the centre "
                        "position ((H - 1) // 2, (W - 1) // 2)")  # fmt: skip


def _unit_maps(case: Case, pre_relu: bool = False) -> torch.Tensor:
    """``(A, H, W)``: the case's unit over its whole map, for each angle's curve."""
    model, unit, angles, radius, size = case.args
    planted = _planted(**model.kwargs)
    layer, channel = parse_unit(unit, planted)
    name = f"{layer}_pre_relu" if pre_relu else layer
    return activations(planted, curve(angles, radius=radius, size=size), [name])[name][:, channel]


def _off_centre(case: Case):
    maps = _unit_maps(case)
    h, w = maps.shape[-2:]
    return maps[:, h // 2, w // 2] if (h % 2 == 0 or w % 2 == 0) else None


def _pre_relu(case: Case):
    maps = _unit_maps(case, pre_relu=True)
    return maps[:, (maps.shape[-2] - 1) // 2, (maps.shape[-1] - 1) // 2]


def _angles_reversed(case: Case, got) -> bool:
    model, unit, angles, radius, size = case.args
    negated = tuning_curve(_planted(**model.kwargs), unit, angles=-angles, size=size, radius=radius).responses
    return (isinstance(got, torch.Tensor) and got.dim() == 1) and (same(got.flip(0), case.expect) or same(got, negated))


check_tuning_curve = Exercise(
    "check_tuning_curve", "radial_tuning_curve", _tuning_cases,
    forbid=("circuitscope.methods.stimuli:tuning_curve",),
    doc="""Check ``fn(model, unit, angles, radius, size) -> (A,)`` (exercise 4) on planted models.""",
    mistakes=[
        Mistake("one response per angle: the unit's activation at the centre position",
                when=lambda case, got: _wrong_shape(got, case.expect)),
        Mistake("read the unit at the centre position, where the curve's midpoint is, not its maximum over the map",
                result=lambda case: _unit_maps(case).amax(dim=(1, 2))),
        Mistake("read the unit at the centre position, not the mean over the map",
                result=lambda case: _unit_maps(case).mean(dim=(1, 2))),
        Mistake("the centre of a map of H positions is (H - 1) // 2 (it differs from H // 2 when H is even)",
                result=_off_centre),
        Mistake("did you forget the ReLU? Read the layer's activation (e.g. 'curves'), not its pre-ReLU value",
                result=_pre_relu),
        Mistake("draw the curve at each of the given angles, in order", when=_angles_reversed),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 5: recovering the planted circuit
# =============================================================================================
def random_curves(seed: int):
    """A planted model whose curve weights are replaced by seeded noise: no pattern to guess."""
    model = Recipe(PLANTED).build()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.curves_pre_relu_conv.weight.copy_(0.3 * torch.randn(8, 16, 5, 5, generator=gen))
    return model


ORDER_HINT = "order excites from the largest total down, inhibits from the most negative up"


def _random_curves(seed: int) -> Recipe:
    return Recipe("circuitscope.checks.ch3:random_curves", seed=seed)


def _circuit_cases(hidden: bool):
    """The planted circuit is symmetric: some source units have equal totals (any order among
    them is right)."""
    rows = [("planted", Recipe(PLANTED), "curves:2", 0.1), ("planted", Recipe(PLANTED), "curves:0", 0.3)]
    if hidden:
        rows += [("inhibition=1", Recipe(PLANTED, inhibition=1.0), "curves:4", 0.1),
                 ("random", _random_curves(hidden_seed(5)), "curves:6", 0.2),
                 ("another random", _random_curves(hidden_seed(6)), "curves:1", 0.05)]  # fmt: skip
    # What each hidden case tests, in words, in the order of the hidden rows.
    abouts = ["the planted model with inhibition (negative weights to read)",
              "a model whose curve weights are random noise (no pattern to guess)",
              "random curve weights and a low threshold (many source units kept)"]  # fmt: skip
    for i, (name, model, target, threshold) in enumerate(rows):
        kernels = expanded_weights(model.build(), "lines", target)  # (C, k, k)
        yield Case(f"read_circuit(<{name} model>, {target!r}, 'lines', threshold={threshold})",
                   (model, target, "lines", threshold), verify=_circuit, rtol=1e-4, atol=1e-6,
                   about=abouts[i - 2] if i >= 2 else None,
                   hint="a source unit's total is the sum of its whole k x k kernel; keep units whose total is above "
                        "threshold * max|total| (excites, largest first) or below -threshold * max|total| "
                        "(inhibits, most negative first)",
                   data={"kernels": kernels, "totals": kernels.double().sum(dim=(1, 2))})  # fmt: skip


def _selected(totals: torch.Tensor, limit: float) -> tuple[list[str], list[str]]:
    """``(excites, inhibits)``: the units whose ``totals`` (C,) are above ``limit`` / below
    ``-limit``, largest / most negative first."""
    order = torch.argsort(totals, descending=True).tolist()
    return ([format_unit("lines", c) for c in order if float(totals[c]) > limit],
            [format_unit("lines", c) for c in reversed(order) if float(totals[c]) < -limit])  # fmt: skip


def _expected_units(case: Case) -> tuple[list[str], list[str]]:
    totals = case.data["totals"]
    return _selected(totals, case.args[3] * float(totals.abs().max()))


def _pairs(got, case: Case) -> tuple[list, list]:
    """The learner's ``(excites, inhibits)`` as two lists of pairs, or a failure."""
    if not isinstance(got, (tuple, list)) or len(got) != 2 or not all(isinstance(g, (tuple, list)) for g in got):
        fail(f"{case.label} should return two lists", expected="(excites, inhibits)", got=type(got).__name__)
    return list(got[0]), list(got[1])


def _units(pairs) -> list[str]:
    """The source unit of each ``(unit, total)`` pair (a malformed pair as its repr)."""
    return [str(p[0]) if isinstance(p, (tuple, list)) and p else repr(p) for p in pairs]


def _circuit(case: Case, got) -> None:
    """Property: the same units as the reference, in order of their totals (any order among
    equal totals), each with its total."""
    g_ex, g_in = _pairs(got, case)
    got_ex, got_in = _units(g_ex), _units(g_in)
    exp_ex, exp_in = _expected_units(case)
    if sorted(got_ex) != sorted(exp_ex) or sorted(got_in) != sorted(exp_in):
        fail(f"{case.label}: wrong units", expected=f"excites {exp_ex}, inhibits {exp_in}",
             got=f"excites {got_ex}, inhibits {got_in}")  # fmt: skip
    totals = case.data["totals"]
    total = {format_unit("lines", c): float(t) for c, t in enumerate(totals)}  # by unit name
    tie = 1e-5 * float(totals.abs().max())  # totals closer than this are equal (float32 sums)
    for units, sign in ((got_ex, 1.0), (got_in, -1.0)):
        ranked = [sign * total[u] for u in units]
        if any(a < b - tie for a, b in pairwise(ranked)):
            fail(f"{case.label}: the right units in the wrong order", expected=f"excites {exp_ex}, inhibits {exp_in}",
                 got=f"excites {got_ex}, inhibits {got_in}", hint=ORDER_HINT)  # fmt: skip
    for pairs, units, what in ((g_ex, got_ex, "excites"), (g_in, got_in, "inhibits")):
        values = [p[1] if isinstance(p, (tuple, list)) and len(p) > 1 else None for p in pairs]
        try:
            compare(values, [total[u] for u in units], f"{case.label}: the totals of {what}",
                    case.rtol, case.atol)  # fmt: skip
        except CheckFailed as failure:
            fail(failure.what, failure.expected, failure.got,
                 hint="each total is the sum of the unit's k x k kernel (with its sign)")


def _circuit_units(got) -> tuple[set, set] | None:
    try:
        return tuple(set(_units(part)) for part in got[:2]) if len(got) == 2 else None
    except TypeError:
        return None


def _selects(case: Case, got, totals: torch.Tensor, limit: float) -> bool:
    """Whether ``got``'s excites are those ``totals`` select above ``limit`` (and are wrong)."""
    units = _circuit_units(got)
    wrong = _selected(totals, limit)[0]
    return units is not None and units[0] == set(wrong) and set(wrong) != set(_expected_units(case)[0])


def _centre_only(case: Case, got) -> bool:
    kernels = case.data["kernels"]
    centre = kernels[:, kernels.shape[-2] // 2, kernels.shape[-1] // 2].double()
    return _selects(case, got, centre, case.args[3] * float(centre.abs().max()))


def _absolute_threshold(case: Case, got) -> bool:
    return _selects(case, got, case.data["totals"], case.args[3])


def _no_inhibitors(case: Case, got) -> bool:
    units = _circuit_units(got)
    return units is not None and not units[1] and bool(_expected_units(case)[1])


check_read_circuit = Exercise(
    "check_read_circuit", "read_circuit", _circuit_cases,
    doc="""Check ``fn(model, target_unit, source_layer, threshold) -> (excites, inhibits)`` (exercise 5).

    The units must be those above (below) the relative threshold, largest (most negative) first;
    units with equal totals may come in any order.""",
    mistakes=[
        Mistake("no inhibitors? Keep the sign of each total: negative weights inhibit", when=_no_inhibitors),
        Mistake("sum the whole k x k kernel, not only its centre entry", when=_centre_only),
        Mistake("the threshold is relative: compare with threshold * max(|total|), not threshold itself",
                when=_absolute_threshold),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 6: NMF
# =============================================================================================
def _low_rank(n: int, m: int, k: int, seed: int, zero_column: bool = False):
    """Non-negative ``x = w0 @ h0`` of rank k; each row of h0 owns some columns (a unique NMF).

    Returns ``x: (n, m)`` and ``h0: (k, m)`` with unit-norm rows (float64)."""
    gen = torch.Generator().manual_seed(seed)
    w0 = torch.rand(n, k, generator=gen, dtype=torch.float64) + 0.1
    h0 = torch.rand(k, m, generator=gen, dtype=torch.float64) * (torch.rand(k, m, generator=gen) < 0.4)
    for j in range(k):
        h0[:, j * (m // k) : j * (m // k) + 2] = 0.0
        h0[j, j * (m // k) : j * (m // k) + 2] = 1.0  # anchor columns: h0 is separable
    if zero_column:
        h0[:, -1] = 0.0  # a column of zeros in x: 0 / 0 without an epsilon
    return w0 @ h0, h0 / h0.norm(dim=1, keepdim=True)


SHAPE_HINT = "x (n, m) ~ w (n, k) @ h (k, m)"
SEED_HINT = ("seed the random start: gen = torch.Generator().manual_seed(seed), then torch.rand(..., generator=gen); "
             "the same seed must give the same start, another seed another one")  # fmt: skip
N_ITER_HINT = "run exactly n_iter updates (n_iter=0: the start itself, normalised)"
UPDATE_HINT = "update h <- h * (w.T x) / (w.T w h + eps), then w <- w * (x h.T) / (w h h.T + eps), n_iter times"


def _nmf_cases(hidden: bool):
    """Each planted factorisation twice: ``n_iter=0`` (the learner's own seeded start) and
    ``n_iter=500``, which must be the multiplicative updates from that start (so any random
    start is right, and a poor local minimum is the start's, not the learner's). The first
    one also: the same seed again (the same start), another seed (another start), 5 updates."""
    # (n, m, k, the learner's seed, a zero column, the planted data's seed)
    rows = [(30, 20, 3, 0, False, 0)]
    if hidden:
        rows += [(60, 40, 5, 1, False, hidden_seed(1)), (25, 50, 4, 2, True, hidden_seed(2)),
                 (12, 12, 2, 3, False, hidden_seed(3))]  # fmt: skip
    store = {}  # this run's starts, by (x's shape, k, seed): the later calls are judged from them
    # What each hidden row tests, in words (None for the visible one).
    kinds = [None, "a larger planted matrix of higher rank", ("a wide planted matrix with a column of zeros "
             "(a division of zero by zero without an epsilon)"), "a small square planted matrix of low rank"]
    for i, (n, m, k, seed, zero_column, data_seed) in enumerate(rows):
        x, h0 = _low_rank(n, m, k, data_seed, zero_column)
        what = f"x of shape ({n}, {m}) and rank {k}, k={k}"
        start = f"{kinds[i]}: your seeded start (no updates)" if kinds[i] else None
        factors = f"{kinds[i]}: the factors after many updates from your own start" if kinds[i] else None
        data = {"store": store, "start": (tuple(x.shape), k, seed), "h0": h0}
        yield Case(f"nmf({what}, n_iter=0, seed={seed}): the start", (x, k, 0, seed), verify=_start, data=data,
                   about=start)  # fmt: skip
        if i == 0:
            yield Case(f"nmf({what}, n_iter=0, seed={seed}) again", (x, k, 0, seed), verify=_same_start, data=data)
            yield Case(f"nmf({what}, n_iter=0, seed={seed + 1})", (x, k, 0, seed + 1), verify=_another_start,
                       data=data)  # fmt: skip
            yield Case(f"nmf({what}, n_iter=5, seed={seed})", (x, k, 5, seed), verify=_updated, data=data)
        yield Case(f"nmf({what}, n_iter=500, seed={seed})", (x, k, 500, seed), verify=_planted_factors, data=data,
                   about=factors)  # fmt: skip


def _factors(case: Case, got) -> tuple[torch.Tensor, torch.Tensor]:
    """The learner's ``(w: (n, k), h: (k, m))`` as float64: non-negative, finite, rows of h of unit norm."""
    x, k = case.args[0], case.args[1]
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        fail(f"{case.label} should return two tensors", expected="(w, h)", got=type(got).__name__)
    w, h = as_tensor(got[0], f"{case.label}: w").double(), as_tensor(got[1], f"{case.label}: h").double()
    for t, shape, what in ((w, (x.shape[0], k), "w"), (h, (k, x.shape[1]), "h")):
        if tuple(t.shape) != shape:
            fail(f"{case.label}: {what} has the wrong shape", expected=shape, got=tuple(t.shape), hint=SHAPE_HINT)
    if not (bool(torch.isfinite(w).all()) and bool(torch.isfinite(h).all())):
        fail(f"{case.label}: NaN or inf in the factors", expected="finite values", got="NaN/inf",
             hint="add a small eps (e.g. 1e-12) to the denominators of the updates: a column of zeros gives 0 / 0")  # fmt: skip
    if float(w.min()) < 0 or float(h.min()) < 0:
        fail(f"{case.label}: negative entries", expected="w >= 0 and h >= 0",
             got=f"min w {float(w.min()):.3g}, min h {float(h.min()):.3g}",
             hint="NMF factors are non-negative: multiplicative updates keep them so (an SVD or a plain gradient step does not)")  # fmt: skip
    norms = h.norm(dim=1)
    if not same(norms, torch.ones(k, dtype=torch.float64), 1e-4, 1e-4):
        fail(f"{case.label}: the rows of h should have unit L2 norm", expected=[1.0] * k,
             got=[round(float(v), 4) for v in norms],
             hint="divide each row of h by its norm and multiply the matching column of w by it")  # fmt: skip
    return w, h


def _updates(x: torch.Tensor, w: torch.Tensor, h: torch.Tensor, n_iter: int, h_first: bool = True, eps: float = 1e-12):
    """Lee and Seung's multiplicative updates of ``w: (n, k)``, ``h: (k, m)`` for ``x: (n, m)``,
    ``n_iter`` times (h then w, or w then h), rows of h then scaled to unit norm. The updates
    commute with moving a scale from h's rows to w's columns, so a normalised start is as good
    as the start itself."""
    for _ in range(n_iter):
        if h_first:
            h = h * (w.T @ x) / (w.T @ w @ h + eps)
        w = w * (x @ h.T) / (w @ h @ h.T + eps)
        if not h_first:
            h = h * (w.T @ x) / (w.T @ w @ h + eps)
    norms = h.norm(dim=1, keepdim=True).clamp(min=eps)
    return w * norms.T, h / norms


def _near(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> bool:
    """``a`` equals ``b`` within ``tol`` of ``b``'s largest entry (float32 arithmetic passes)."""
    return float((a - b).abs().max()) <= tol * float(b.abs().max()) + 1e-12


def _agrees(w, h, reference) -> bool:
    return _near(w @ h, reference[0] @ reference[1]) and _near(h, reference[1])


def _from_start(case: Case, w, h) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: the updates from this run's start (in the update order closer to ``w, h``)."""
    x, _, n_iter, _ = case.args
    start = _earlier(case, case.data["start"])
    both = [_updates(x, *start, n_iter, h_first) for h_first in (True, False)]
    return min(both, key=lambda ref: float((w @ h - ref[0] @ ref[1]).abs().max()) + float((h - ref[1]).abs().max()))


def _error(case: Case, w: torch.Tensor, h: torch.Tensor) -> float:
    """The relative reconstruction error ``|x - w h| / |x|``."""
    x = case.args[0]
    return float((x - w @ h).norm() / x.norm())


def _start(case: Case, got) -> None:
    """Property: n_iter=0 gives the (normalised) start, no fit yet (a random start's relative
    error is above 0.5 on these data, even at its best scale); kept for the later calls."""
    w, h = _factors(case, got)
    if _error(case, w, h) < 0.2:
        fail(f"{case.label}: already a fit", expected="the random start: |x - w h| / |x| above 0.2",
             got=f"{_error(case, w, h):.3g}", hint=N_ITER_HINT)  # fmt: skip
    case.data["store"][case.data["start"]] = (w, h)


def _same_start(case: Case, got) -> None:
    """Property: the same seed gives the same start again."""
    w, h = _factors(case, got)
    if not _agrees(w, h, _earlier(case, case.data["start"])):
        fail(f"{case.label}: another start", expected="the start of the same call before (the same seed)",
             got="other factors", hint=SEED_HINT)  # fmt: skip


def _another_start(case: Case, got) -> None:
    """Property: another seed gives another start."""
    w, h = _factors(case, got)
    if _agrees(w, h, _earlier(case, case.data["start"])):
        fail(f"{case.label}: the start of seed={case.args[3] - 1}", expected="another start (another seed)",
             got="the same factors", hint=SEED_HINT)  # fmt: skip


def _updated(case: Case, got) -> None:
    """Property: exactly n_iter updates from the start (a few: a count off by one shows)."""
    x, _, n_iter, _ = case.args
    w, h = _factors(case, got)
    if _agrees(w, h, _from_start(case, w, h)):
        return
    start = _earlier(case, case.data["start"])
    other_counts = any(_agrees(w, h, _updates(x, *start, j, order)) for j in range(2 * n_iter + 2) if j != n_iter
                       for order in (True, False))  # fmt: skip
    fewer = other_counts or _error(case, w, h) < 0.5 * _error(case, *_from_start(case, w, h))
    fail(f"{case.label}: not {n_iter} updates from the start (the n_iter=0 call's factors)",
         expected=f"|x - w h| / |x| = {_error(case, *_from_start(case, w, h)):.4g}", got=f"{_error(case, w, h):.4g}",
         hint=N_ITER_HINT if fewer else UPDATE_HINT)  # fmt: skip


def _planted_factors(case: Case, got) -> None:
    """Property: a closer fit than the start's, as close as the updates from the start get,
    with every planted factor recovered that they recover; then those updates exactly."""
    w, h = _factors(case, got)
    ref_w, ref_h = _from_start(case, w, h)
    error, ref_error = _error(case, w, h), _error(case, ref_w, ref_h)
    start_error = _error(case, *_earlier(case, case.data["start"]))
    if not error < 0.5 * start_error:
        fail(f"{case.label}: no closer a fit than the start (n_iter=0)", expected=f"|x - w h| / |x| below {start_error:.3g}",
             got=f"{error:.3g}", hint=N_ITER_HINT)  # fmt: skip
    if error > max(2 * ref_error, 0.02):
        fail(f"{case.label}: the reconstruction is poor",
             expected=f"|x - w h| / |x| <= {max(2 * ref_error, 0.02):.3g} (the updates from your start: {ref_error:.3g})",
             got=f"{error:.3g}", hint=UPDATE_HINT)  # fmt: skip
    h0 = case.data["h0"]
    cosines = (h0 @ h.T).amax(dim=1)  # each planted factor against its best match
    wanted = min(0.95, float((h0 @ ref_h.T).amax(dim=1).min()) - 0.05)  # what the start allows
    if float(cosines.min()) < wanted:
        fail(f"{case.label}: the planted factors were not recovered",
             expected=f"every planted row of h0 matched (cosine > {wanted:.2f})", got=f"worst cosine {float(cosines.min()):.3f}",
             hint="run all n_iter updates, from a positive start")  # fmt: skip
    if not _agrees(w, h, (ref_w, ref_h)):
        fail(f"{case.label}: not {case.args[2]} updates from the start (the n_iter=0 call's factors)",
             expected=f"|x - w h| / |x| = {ref_error:.4g}", got=f"{error:.4g}", hint=UPDATE_HINT)  # fmt: skip


check_nmf = Exercise(
    "check_nmf", "nmf", _nmf_cases,
    forbid=("circuitscope.methods.circuits:nmf",),
    doc="""Check ``fn(x, k, n_iter, seed) -> (w, h)`` (exercise 6) on planted low-rank data.

    ``fn(x, k, 0, seed)`` is the learner's own (normalised) seeded start; the results after 5 and
    500 updates must be the multiplicative updates from it. The same seed gives the same start,
    another seed another one.""",
)  # fmt: skip


# =============================================================================================
# Exercise 7: which branch holds a family of units (Branch Specialization)
# =============================================================================================
class BlockLayout:
    """The layer widths of a model, and nothing else: what :func:`branches.branch_ranges` reads.

    ``layer_channels`` is InceptionV1's (a copy), or, for a planted layout, the same with one
    block's branch widths replaced (the block total adds up). The learner's function gets this
    in place of the model: it reads ``model.layer_channels`` the same way.
    """

    def __init__(self, layer_channels: dict) -> None:
        self.layer_channels = dict(layer_channels)
        self.layer_names = list(layer_channels)

    def __repr__(self) -> str:
        return f"BlockLayout({len(self.layer_channels)} layers)"


def block_layout(block: str | None = None, seed: int = 0) -> BlockLayout:
    """InceptionV1's layer widths; with ``block``, that block's branches get other widths
    (8..40 channels each, and other bottleneck widths), drawn from ``seed``."""

    widths = dict(LAYER_CHANNELS)
    if block is not None:
        gen = torch.Generator().manual_seed(seed)
        sizes = [int(v) for v in torch.randint(8, 41, (6,), generator=gen)]
        names = ("1x1", "3x3", "5x5", "pool_reduce", "3x3_bottleneck", "5x5_bottleneck")
        for name, size in zip(names, sizes):
            widths[f"{block}_{name}"] = widths[f"{block}_{name}_pre_relu"] = size
        widths[block] = widths[f"{block}_pre_relu"] = sum(sizes[:4])
    return BlockLayout(widths)


#: "Curve Detectors": the ten curve detectors of mixed3b, all in its 5x5 branch (channels 320-415).
CURVE_FAMILY = [379, 406, 385, 343, 342, 388, 324, 340, 330, 349]
BRANCH_HINT = ("the branches are concatenated in the order 1x1, 3x3, 5x5, pool_reduce; branch i holds the "
               "channels from the sum of the widths before it (included) to that sum plus its own width (excluded)")  # fmt: skip


def _shares_reference(layout: BlockLayout, block: str, channels: list[int], *, widths_of=None,
                      inclusive: bool = False, counts: bool = False, present_only: bool = False,
                      short: bool = False, percent: bool = False):  # fmt: skip
    """:func:`branches.branch_shares` as data (``(branches, shares)``), or what a mistake gives."""

    widths = widths_of or layout.layer_channels
    names, start, ranges = [], 0, []
    for suffix in BRANCH_SUFFIXES:
        width = int(widths[f"{block}_{suffix}"])
        names.append(suffix if short else f"{block}_{suffix}")
        ranges.append((start, start + width))
        start += width
    branches = []
    for c in channels:
        hit = [n for n, (a, b) in zip(names, ranges) if a <= c < b or (inclusive and c == b)]
        if not hit:
            return None
        branches.append(hit[0])
    n = len(channels)
    shares = {name: (branches.count(name) * (1 if counts else 100 if percent else 1) / (1 if counts else n or 1))
              for name in names}  # fmt: skip
    if present_only:
        shares = {k: v for k, v in shares.items() if k in branches}
    return (branches, shares)


def _branch_cases(hidden: bool):
    inception = Recipe("circuitscope.checks.ch3:block_layout")
    rows = [
        ("mixed3b", CURVE_FAMILY, inception, None),
        ("mixed4c", [0, 127, 128, 383, 384, 447, 448, 470], inception, None),  # the boundaries of mixed4c
    ]
    if hidden:
        gen = torch.Generator().manual_seed(hidden_seed(70))
        planted = Recipe("circuitscope.checks.ch3:block_layout", block="mixed3b", seed=hidden_seed(71))
        rows += [
            ("mixed3b", [0, 127, 128, 319, 320, 415, 416, 479], inception,
             "the first and last channel of every branch of mixed3b"),
            ("mixed5b", [int(c) for c in torch.randint(0, 1024, (25,), generator=gen)], inception,
             "many channels of the last block, spread over its branches"),
            ("mixed3a", [136, 110, 180, 132, 112, 72, 101], inception,
             "a family of units in the first block (its branches have other widths than mixed3b's)"),
            ("mixed3b", [int(c) for c in torch.randint(0, 40, (12,), generator=gen)], planted,
             "a model whose branches have other widths than InceptionV1's: read them from model.layer_channels"),
            ("mixed4e", [831], inception, "a single channel, the last one of the block (in pool_reduce)"),
            ("mixed4a", [], inception, "no channels at all: every share is 0.0"),
        ]
    for block, channels, layout, about in rows:
        expected = _shares_reference(layout.build(), block, channels)
        yield Case(f"branch_shares(model, {block!r}, {channels if len(channels) <= 10 else f'{len(channels)} channels'})",
                   (layout, block, list(channels)), expect=expected, about=about, rtol=1e-6, atol=1e-9,
                   data={"block": block, "channels": list(channels), "layout": layout}, hint=BRANCH_HINT)  # fmt: skip


def _shares_variant(**variant):
    def result(case: Case):
        data = case.data
        return _shares_reference(data["layout"].build(), data["block"], data["channels"], **variant)

    return result


def _hard_coded(case: Case):
    """What mixed3b's widths, hard-coded, give for another block or layout."""
    data = case.data
    inception = block_layout()
    widths = {f"{data['block']}_{s}": inception.layer_channels[f"mixed3b_{s}"]
              for s in ("1x1", "3x3", "5x5", "pool_reduce")}  # fmt: skip
    wrong = _shares_reference(data["layout"].build(), data["block"], data["channels"], widths_of=widths)
    return wrong if wrong != case.expect else None


check_branch_shares = Exercise(
    "check_branch_shares", "branch_shares", _branch_cases,
    forbid=("circuitscope.methods.branches:branch_shares", "circuitscope.methods.branches:branch_ranges",
            "circuitscope.methods.circuits:branch_of", "circuitscope.methods.circuits:branch_slices",
            "circuitscope.methods.circuits:concat_index"),
    doc="""Check ``fn(model, block, channels) -> (branches, shares)`` (exercise 7).

    ``branches``: one branch name per channel (``"mixed3b_5x5"``); ``shares``: every branch of the
    block, in concatenation order, with the fraction of the channels it holds.""",
    mistakes=[
        Mistake("a branch's range excludes its end: channel start + width is the NEXT branch's first channel "
                "(start <= c < start + width)", result=_shares_variant(inclusive=True)),
        Mistake("read each branch's width from model.layer_channels[f'{block}_1x1'] (and _3x3, _5x5, "
                "_pool_reduce): other blocks, and other models, have other widths than mixed3b",
                result=_hard_coded),
        Mistake("shares are FRACTIONS of the channels (count / number of channels), not counts",
                result=_shares_variant(counts=True)),
        Mistake("shares are fractions in [0, 1], not percentages", result=_shares_variant(percent=True)),
        Mistake("list EVERY branch of the block in shares, with 0.0 for a branch that holds none of the channels",
                result=_shares_variant(present_only=True)),
        Mistake("name each branch by its layer name, f'{block}_5x5' (e.g. 'mixed3b_5x5'), not '5x5'",
                result=_shares_variant(short=True)),
    ],
    errors={"ZeroDivisionError": "no channels: every share is 0.0 (do not divide by len(channels) when it is 0)"},
)  # fmt: skip


# =============================================================================================
# Exercise 8: a weight-banding index (Weight Banding)
# =============================================================================================
def _banding_reference(weight: torch.Tensor, variant: str | None = None) -> float | None:
    """:func:`branches.banding_index`, or what a mistaken version gives (None where undefined)."""
    w = weight.double()
    centred = w if variant == "uncentred" else w - w.mean(dim=(-2, -1), keepdim=True)
    axis = -2 if variant == "columns" else -1
    means = centred.mean(dim=axis, keepdim=True)
    if variant == "no_k":
        rows, total = means.pow(2).sum(dim=(-2, -1)), centred.pow(2).sum(dim=(-2, -1))
    else:
        rows, total = means.expand_as(centred).pow(2).sum(dim=(-2, -1)), centred.pow(2).sum(dim=(-2, -1))
    if variant == "per_kernel":
        return float((rows / total).mean())
    return float(rows.sum() / total.sum()) if float(total.sum()) > 0 else None


def _banding_cases(hidden: bool):
    rows = [  # (label, weight, about)
        ("planted bands of strength 0.7, 5x5 kernels", banded_weight(8, 6, 5, 0.7, seed=1), None),
        ("independent random 3x3 kernels (no bands)", banded_weight(6, 4, 3, 0.0, seed=2), None),
        ("perfect horizontal bands (every row constant)", banded_weight(4, 3, 5, 1.0, seed=3), None),
        ("perfect VERTICAL bands (every column constant)", banded_weight(4, 3, 5, 1.0, seed=4).transpose(-1, -2).contiguous(),
         None),
    ]  # fmt: skip
    if hidden:
        pruned = banded_weight(10, 8, 5, 0.5, seed=hidden_seed(81))
        pruned[::3] = 0.0  # pruned output channels: all-zero kernels
        rows += [
            ("5x5 kernels, weak bands", banded_weight(16, 12, 5, 0.3, seed=hidden_seed(80)),
             "5x5 kernels with weak planted bands (another seed)"),
            ("5x5 kernels, some all zero", pruned,
             "kernels of which some are all zero (a pruned channel): pool the energies before dividing"),
            ("3x3 kernels in float64, strong bands", banded_weight(12, 20, 3, 0.85, seed=hidden_seed(82), dtype=torch.float64),
             "3x3 kernels in float64 with strong planted bands"),
            ("7x7 kernels, large values", 1000.0 * banded_weight(5, 3, 7, 0.5, seed=hidden_seed(83)),
             "7x7 kernels with large values (the index does not depend on the scale)"),
            ("5x5 kernels with a constant offset", banded_weight(6, 6, 5, 0.4, seed=hidden_seed(84)) + 3.0,
             "kernels with a large constant offset: a kernel's mean is not a band"),
        ]  # fmt: skip
    for label, weight, about in rows:
        yield Case(f"banding_index({label}: {tuple(weight.shape)})", (weight,), expect=_banding_reference(weight),
                   rtol=1e-4, atol=1e-6, about=about,
                   hint="centre each kernel, replace each entry by its row's mean, and divide the summed squares "
                        "of those row means by the summed squares of the centred kernels, over all kernels")  # fmt: skip


def _is_nan(got) -> bool:
    """Whether ``got`` is a single NaN (a float or a one-number tensor)."""
    if isinstance(got, torch.Tensor) and got.numel() == 1 and got.is_floating_point():
        got = float(got)
    return isinstance(got, float) and math.isnan(got)


def _banding_variant(variant: str):
    return lambda case: _banding_reference(case.args[0], variant)


check_banding_index = Exercise(
    "check_banding_index", "banding_index", _banding_cases,
    forbid=("circuitscope.methods.branches:banding_index", "circuitscope.methods.branches:layer_banding"),
    doc="""Check ``fn(weight) -> float`` (exercise 8): the share of the centred kernels' energy held by
    their row means, pooled over all ``(out, in)`` kernels of ``weight: (out, in, k, k)``.""",
    mistakes=[
        Mistake("horizontal bands are constant along each ROW: average over the columns (the last dim, -1), "
                "not over the rows", result=_banding_variant("columns")),
        Mistake("centre each kernel first (subtract its own mean over its k x k entries): a constant offset "
                "is not a band", result=_banding_variant("uncentred")),
        Mistake("compare energies over the same k x k entries: each row mean stands for the k entries of its "
                "row (broadcast it back, or multiply its square by k)", result=_banding_variant("no_k")),
        Mistake("pool over the kernels: sum the row-mean energies of all kernels, sum the total energies, "
                "then divide once (a mean of per-kernel ratios weighs a near-zero kernel as much as a strong one, "
                "and an all-zero kernel gives 0 / 0)", result=_banding_variant("per_kernel")),
        Mistake("pool over the kernels before dividing: an all-zero kernel gives 0 / 0 = NaN",
                when=lambda case, got: _is_nan(got)),
    ],
)  # fmt: skip
