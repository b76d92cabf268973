"""Checks for chapter 3's exercises ("Circuits").

One function per exercise. ``check_x(fn)`` runs a few seeded cases (the visible cell of the
notebook); ``check_x(fn, hidden=True)`` runs those and more (nbgrader's hidden tests). Each
prints one success line or raises :class:`~circuitscope.checks.CheckFailed` with expected vs
got and a hint for the likely mistake.

No check needs the real weights: the weight exercises run on an InceptionV1 with PyTorch's
default (seeded) initialisation, where the answer is the weights' own algebra, and compare the
expanded weights with a brute-force linearisation by autograd (ReLUs removed); the stimulus,
tuning-curve and circuit exercises run on :class:`~circuitscope.planted.PlantedCurveModel`,
whose circuit is known by construction; NMF runs on planted low-rank data. The references are
bound when this module is imported and every check runs in
:func:`~circuitscope.checks._core.pristine`, as in chapter 1. Import this module in the
notebook's locked setup cell, before any learner code.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from ..circuits import branch_of as _branch_of
from ..circuits import expanded_weights as _ref_expanded
from ..circuits import expanded_weights_by_gradient as _ref_by_gradient
from ..circuits import format_unit as _format_unit
from ..circuits import nmf as _ref_nmf
from ..circuits import parse_unit as _parse_unit
from ..device import one_cpu_thread as _one_thread
from ..hooks import activations as _ref_activations
from ..planted import PlantedCurveModel as _Planted
from ..stimuli import curve as _ref_curve
from ..stimuli import tuning_curve as _ref_tuning
from . import _core as C

# The library modules the references above use, as they are now (before any learner code).
C.protect_package("circuitscope", exclude=("circuitscope.checks", "circuitscope_course"))

__all__ = [
    "check_direct_weights",
    "check_expanded_weights",
    "check_curve_stimulus",
    "check_tuning_curve",
    "check_read_circuit",
    "check_nmf",
]


def _fresh_inception():
    """InceptionV1 with PyTorch's default initialisation, seeded (the caller's RNG untouched)."""
    return C.seeded_inception(3)


#: The reference's copy; learner code gets a fresh twin, so nothing it does reaches this one.
_default_init_inception = lru_cache(maxsize=1)(_fresh_inception)


def _weight(model, layer: str) -> torch.Tensor:
    return getattr(model, f"{layer}_pre_relu_conv").weight.detach()


def _as_kernel(got, label: str, shape: tuple) -> torch.Tensor:
    t = C.as_tensor(got, label)
    C.expect_shape(
        t, shape, label, hint="one source unit and one target unit: a single (k, k) spatial kernel"
    )
    return t


# =============================================================================================
# Exercise 1: the weights between two directly connected units
# =============================================================================================
def _direct_cases(hidden: bool):
    cases = [("conv2d1:5", "conv2d2:7"), ("mixed3b_3x3_bottleneck:12", "3b:140")]
    if hidden:
        cases += [
            ("mixed3b_5x5_bottleneck:3", "3b:379"),
            ("3a:147", "3b:50"),  # the 1x1 branch reads mixed3a directly
            ("mixed4c_5x5_bottleneck:20", "4c:447"),
            ("mixed4b_3x3_bottleneck:40", "mixed4b_3x3:7"),  # a branch unit, by its branch name
        ]
    return cases


@C.check
def check_direct_weights(fn, hidden: bool = False) -> None:
    """Check ``fn(model, source_unit, target_unit) -> (k, k)`` (exercise 1)."""
    with _one_thread():  # tiny tensors: one thread is several times faster on a busy CPU
        _check_direct_weights(fn, hidden)


def _check_direct_weights(fn, hidden: bool) -> None:
    cases = _direct_cases(hidden)
    for source, target in cases:
        expected = _ref_expanded(_default_init_inception(), source, target)
        label = f"direct_weights(model, {source!r}, {target!r})"
        got = _as_kernel(
            C.call(fn, _fresh_inception(), source, target, what=label), label, tuple(expected.shape)
        )
        if C.close(got, expected, rtol=1e-5, atol=1e-7):
            continue
        (_, s_ch), (t_layer, t_ch) = _parse_unit(source), _parse_unit(target)
        hint = "weight[target_channel, source_channel] of the target's <layer>_pre_relu_conv"
        branch = t_layer
        if t_layer.startswith("mixed") and "_" not in t_layer:
            branch, t_ch = _branch_of(target)
        w = _weight(_default_init_inception(), branch)
        _, concat = _parse_unit(target)
        if s_ch < w.shape[0] and t_ch < w.shape[1] and C.close(got, w[s_ch, t_ch]):
            hint = "the indices are swapped: a conv weight is (out_channels, in_channels, k, k), target first"
        elif concat != t_ch and concat < w.shape[0] and C.close(got, w[concat, s_ch]):
            hint = (
                f"{target} is a channel of {t_layer}'s concatenated output: it is channel {t_ch} of its "
                f"branch {branch} (circuits.branch_of). Index the branch's weight with that"
            )
        elif C.close(got, w[t_ch, s_ch].flip(0)) or C.close(got, w[t_ch, s_ch].t()):
            hint = "return the kernel as stored: row 0 at the top, not flipped or transposed"
        C.expect_close(got, expected, label, rtol=1e-5, atol=1e-7, hint=hint)
    C.done("direct_weights", len(cases), hidden)


# =============================================================================================
# Exercise 2: expanded weights through a 1x1 bottleneck
# =============================================================================================
def _expanded_cases(hidden: bool):
    cases = [("3a:147", "3b:379"), ("3a:81", "3b:385")]
    if hidden:
        cases += [("3a:50", "3b:200"), ("4b:237", "4c:447"), ("4b:373", "4c:447"), ("4d:3", "4e:300")]
    return cases


def _brute_force(source: str, target: str) -> torch.Tensor:
    """The gradient of the linearised model (ReLU as identity), by autograd: the definition."""
    branch, index = _branch_of(target)
    return _ref_by_gradient(_default_init_inception(), source, f"{branch}:{index}")


@C.check
def check_expanded_weights(fn, hidden: bool = False) -> None:
    """Check ``fn(model, source_unit, target_unit) -> (k, k)`` (exercise 2) against autograd."""
    with _one_thread():  # tiny tensors: one thread is several times faster on a busy CPU
        _check_expanded_weights(fn, hidden)


def _check_expanded_weights(fn, hidden: bool) -> None:
    cases = _expanded_cases(hidden)
    for source, target in cases:
        expected = _brute_force(source, target)
        label = f"expanded_weights_bottleneck(model, {source!r}, {target!r})"
        got = _as_kernel(
            C.call(fn, _fresh_inception(), source, target, what=label), label, tuple(expected.shape)
        )
        if C.close(got, expected, rtol=1e-4, atol=1e-7 + 1e-5 * float(expected.abs().max())):
            continue
        model = _default_init_inception()
        branch, t_ch = _branch_of(target)
        _, s_ch = _parse_unit(source)
        w_late = _weight(model, branch)[t_ch]  # (bottleneck, k, k)
        w_neck = _weight(model, f"{branch}_bottleneck")[:, s_ch, 0, 0]  # (bottleneck,)
        hint = (
            "sum over the bottleneck channels b: W_branch[target, b] (k x k) times "
            "W_bottleneck[b, source] (a 1x1 weight)"
        )
        if C.close(got, torch.einsum("bij,b->ij", w_late, w_neck.clamp(min=0))):
            hint = (
                "did you apply the ReLU? Expanded weights linearise the network: the bottleneck's ReLU "
                "is the identity, so negative bottleneck weights count too"
            )
        elif C.close(got, w_late.sum(0)):
            hint = "each bottleneck channel must be weighted by its weight from the source unit"
        elif C.close(got, torch.einsum("bij,b->ij", w_late.abs(), w_neck.abs())):
            hint = "keep the signs: positive weights excite, negative ones inhibit"
        C.expect_close(got, expected, label, rtol=1e-4, atol=1e-7, hint=hint)
    C.done("expanded_weights_bottleneck", len(cases), hidden)


# =============================================================================================
# Exercise 3: a curve stimulus
# =============================================================================================
def _curve_cases(hidden: bool):
    cases = [(30.0, 16.0, 90.0, 64, 2.0), (90.0, 12.0, 120.0, 48, 2.0)]
    if hidden:
        cases += [
            (200.0, 20.0, 120.0, 64, 3.0),
            (-45.0, 10.0, 180.0, 41, 2.0),
            (135.0, 25.0, 60.0, 80, 1.5),
            (0.0, 8.0, 360.0, 33, 2.0),  # a whole circle
        ]
    return cases


def _mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().mean())


@C.check
def check_curve_stimulus(fn, hidden: bool = False) -> None:
    """Check ``fn(orientation, radius, width, size, thickness) -> (3, size, size)`` (exercise 3).

    Properties (exact geometry, within anti-aliasing): the drawn pixels lie at ``radius`` from
    the circle's centre, which lies ``radius`` behind the image centre against ``orientation``;
    the arc faces ``orientation``; it matches :func:`circuitscope.stimuli.curve` on average.
    Rotating by 90 degrees rotates the image.
    """
    with _one_thread():  # tiny tensors: one thread is several times faster on a busy CPU
        _check_curve_stimulus(fn, hidden)


def _check_curve_stimulus(fn, hidden: bool) -> None:
    cases = _curve_cases(hidden)
    for ori, rad, wid, size, thick in cases:
        label = f"draw_curve(orientation={ori}, radius={rad}, width={wid}, size={size}, thickness={thick})"
        got = C.as_tensor(C.call(fn, ori, rad, wid, size, thick, what=label), label)
        C.expect_shape(got, (3, size, size), label, hint="one RGB image, channels first: (3, size, size)")
        got = got.double()
        if not bool(torch.isfinite(got).all()) or float(got.min()) < 0 or float(got.max()) > 1:
            C.fail(f"{label}: values outside [0, 1]", expected="[0, 1]", got=f"[{float(got.min()):.3g}, {float(got.max()):.3g}]",
                   hint="clamp the coverage to [0, 1]")  # fmt: skip
        expected = _ref_curve(ori, rad, wid, size, thick, dtype=torch.float64)[0]
        # Geometry: the ink lies at `radius` from the circle's centre, on the side it faces.
        ink = got.mean(0)
        c = (size - 1) / 2
        phi = math.radians(ori)
        cx, cy = c - rad * math.cos(phi), c + rad * math.sin(phi)  # (column, row): rows grow downwards
        rows, cols = torch.meshgrid(
            torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64), indexing="ij"
        )
        dist = torch.sqrt((cols - cx) ** 2 + (rows - cy) ** 2)
        total = float(ink.sum())
        off = float((ink * (dist - rad).abs()).sum()) / max(total, 1e-9)
        ink_ratio = total / float(expected.mean(0).sum())  # the arc's length (and thickness) is right
        if abs(ink_ratio - 1) > 0.15 or off > 1.0 or _mad(got, expected) > 0.04:
            hint = (
                "the circle's centre is radius pixels behind the image centre, against the orientation; "
                "a pixel's intensity is clamp(0.5 + (thickness / 2 - |distance to circle - radius|), 0, 1) "
                "inside the arc's angular span"
            )
            variants = {
                "rows grow downwards: the y axis points UP in the convention (90 = up), so y = (size - 1) / 2 - row":
                    _ref_curve(-ori, rad, wid, size, thick, dtype=torch.float64)[0],
                "the circle's centre lies BEHIND the arc's midpoint: centre = image centre - radius * (cos, sin) "
                "of the orientation, so the curve bulges towards the orientation":
                    _ref_curve(ori + 180.0, rad, wid, size, thick, dtype=torch.float64)[0],
                "width is the whole arc's angular extent: it spans orientation - width / 2 to orientation + width / 2":
                    _ref_curve(ori, rad, min(2 * wid, 360.0), size, thick, dtype=torch.float64)[0],
                "width is the whole arc's extent (not its half): it spans orientation +- width / 2":
                    _ref_curve(ori, rad, wid / 2, size, thick, dtype=torch.float64)[0],
                "angles are in degrees: convert with math.radians before cos and sin":
                    _ref_curve(math.degrees(ori) % 360, rad, wid, size, thick, dtype=torch.float64)[0],
            }  # fmt: skip
            if total == 0:
                hint = "the image is black: draw the arc in white (1.0) on black (0.0)"
            else:
                best = min(variants, key=lambda h: _mad(got, variants[h]))
                if _mad(got, variants[best]) < 0.5 * _mad(got, expected) and wid < 360:
                    hint = best
            C.fail(
                f"{label} is not the expected arc",
                expected=f"ink at {rad} px from the circle's centre (column {cx:.1f}, row {cy:.1f}); "
                f"mean |difference| from stimuli.curve < 0.04",
                got=f"ink on average {off:.2f} px off that circle, {ink_ratio:.2f} times the expected amount of ink; "
                f"mean |difference| {_mad(got, expected):.3f}",
                hint=hint,
            )
    # Rotation: turning the orientation by 90 degrees turns the (square) image by 90 degrees.
    ori, rad, wid, size, thick = cases[0]
    label = "draw_curve(orientation + 90, ...) vs the image rotated by 90 degrees"
    a = C.as_tensor(C.call(fn, ori, rad, wid, size, thick, what=label), label).double()
    b = C.as_tensor(C.call(fn, ori + 90.0, rad, wid, size, thick, what=label), label).double()
    if _mad(torch.rot90(a, 1, dims=(1, 2)), b) > 0.02:
        C.fail(f"{label}: not a rotation", expected="mean |difference| < 0.02",
               got=f"{_mad(torch.rot90(a, 1, dims=(1, 2)), b):.3f}",
               hint="orientation is counter-clockwise: 90 degrees more turns the curve a quarter turn to the left")  # fmt: skip
    C.done("draw_curve", len(cases) + 1, hidden)


# =============================================================================================
# Exercise 4: a radial tuning curve
# =============================================================================================
@lru_cache(maxsize=4)
def _planted(**kwargs) -> _Planted:
    return _Planted(**kwargs)


def _tuning_cases(hidden: bool):
    cases = [({}, "curves:2", 16, 12.0, 44), ({}, "curves:5", 8, 12.0, 44)]
    if hidden:
        cases += [
            ({"radius": 16.0, "inhibition": 1.0}, "curves:7", 12, 16.0, 52),
            ({}, "curves:0", 8, 12.0, 48),  # an even map (12 x 12): the centre is (H - 1) // 2
            ({}, "lines:3", 8, 12.0, 44),
        ]
    return cases


@C.check
def check_tuning_curve(fn, hidden: bool = False) -> None:
    """Check ``fn(model, unit, angles, radius, size) -> (A,)`` (exercise 4) on planted models."""
    with _one_thread():  # tiny tensors: one thread is several times faster on a busy CPU
        _check_tuning_curve(fn, hidden)


def _check_tuning_curve(fn, hidden: bool) -> None:
    cases = _tuning_cases(hidden)
    for kwargs, unit, n, radius, size in cases:
        angles = torch.arange(n, dtype=torch.float64) * (360.0 / n)
        ref_model = _planted(**kwargs)
        expected = _ref_tuning(ref_model, unit, angles=angles, size=size, radius=radius).responses
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        label = f"radial_tuning_curve(PlantedCurveModel({args}), {unit!r}, {n} angles, radius={radius}, size={size})"
        got = C.as_tensor(
            C.call(fn, _Planted(**kwargs), unit, angles.clone(), radius, size, what=label), label
        )
        C.expect_shape(
            got, (n,), label, hint="one response per angle: the unit's activation at the centre position"
        )
        if C.close(got, expected, rtol=1e-4, atol=1e-5):
            continue
        layer, channel = _parse_unit(unit, ref_model)
        images = _ref_curve(angles, radius=radius, size=size)
        acts = _ref_activations(ref_model, images, [layer, f"{layer}_pre_relu"])
        act, pre = acts[layer][:, channel], acts[f"{layer}_pre_relu"][:, channel]
        h, w = act.shape[-2:]
        hint = "draw stimuli.curve(angles, radius=radius, size=size) and read the unit at the centre position ((H - 1) // 2, (W - 1) // 2)"
        if C.close(got, act.amax(dim=(1, 2))):
            hint = "read the unit at the centre position, where the curve's midpoint is, not its maximum over the map"
        elif C.close(got, act.mean(dim=(1, 2))):
            hint = "read the unit at the centre position, not the mean over the map"
        elif C.close(got, act[:, h // 2, w // 2]):
            hint = (
                "the centre of a map of H positions is (H - 1) // 2 (it differs from H // 2 when H is even)"
            )
        elif C.close(got, pre[:, (h - 1) // 2, (w - 1) // 2]):
            hint = (
                "did you forget the ReLU? Read the layer's activation (e.g. 'curves'), not its pre-ReLU value"
            )
        elif C.close(got.flip(0), expected) or C.close(
            got, _ref_tuning(ref_model, unit, angles=-angles, size=size, radius=radius).responses
        ):
            hint = "draw the curve at each of the given angles, in order"
        C.expect_close(got, expected, label, rtol=1e-4, atol=1e-5, hint=hint)
    C.done("radial_tuning_curve", len(cases), hidden)


# =============================================================================================
# Exercise 5: recovering the planted circuit
# =============================================================================================
def _random_curves(seed: int) -> _Planted:
    """A planted model whose curve weights are replaced by seeded noise: no pattern to guess."""
    model = _Planted()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.curves_pre_relu_conv.weight.copy_(0.3 * torch.randn(8, 16, 5, 5, generator=gen))
    return model


def _circuit_cases(hidden: bool):
    cases = [("planted", "curves:2", 0.1), ("planted", "curves:0", 0.3)]
    if hidden:
        cases += [
            ("inhibition=1", "curves:4", 0.1),
            ("random 5", "curves:6", 0.2),
            ("random 6", "curves:1", 0.05),
        ]
    return cases


def _circuit_model(name: str) -> _Planted:
    if name == "planted":
        return _Planted()
    if name == "inhibition=1":
        return _Planted(inhibition=1.0)
    return _random_curves(int(name.split()[1]))


def _ref_circuit(model, target: str, source: str, threshold: float):
    kernels = _ref_expanded(model, source, target)  # (C, k, k)
    totals = kernels.double().sum(dim=(1, 2))
    limit = threshold * float(totals.abs().max())
    layer = _parse_unit(f"{source}:0", model)[0]
    order = torch.argsort(totals, descending=True).tolist()
    excites = [(_format_unit(layer, c), float(totals[c])) for c in order if float(totals[c]) > limit]
    inhibits = [
        (_format_unit(layer, c), float(totals[c])) for c in reversed(order) if float(totals[c]) < -limit
    ]
    return excites, inhibits, totals, kernels


def _units(pairs) -> list:
    out = []
    for pair in pairs:
        try:
            out.append(str(pair[0]))
        except (TypeError, IndexError, KeyError):
            out.append(repr(pair))
    return out


@C.check
def check_read_circuit(fn, hidden: bool = False) -> None:
    """Check ``fn(model, target_unit, source_layer, threshold) -> (excites, inhibits)`` (exercise 5)."""
    with _one_thread():  # tiny tensors: one thread is several times faster on a busy CPU
        _check_read_circuit(fn, hidden)


def _check_read_circuit(fn, hidden: bool) -> None:
    cases = _circuit_cases(hidden)
    for name, target, threshold in cases:
        model = _circuit_model(name)
        excites, inhibits, totals, kernels = _ref_circuit(model, target, "lines", threshold)
        label = f"read_circuit(<{name} model>, {target!r}, 'lines', threshold={threshold})"
        got = C.call(fn, _circuit_model(name), target, "lines", threshold, what=label)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            C.fail(f"{label} should return two lists", expected="(excites, inhibits)", got=type(got).__name__)
        g_ex, g_in = list(got[0]), list(got[1])
        C.resync()
        got_ex, got_in = _units(g_ex), _units(g_in)
        C.resync()
        exp_ex, exp_in = [u for u, _ in excites], [u for u, _ in inhibits]
        if got_ex != exp_ex or got_in != exp_in:
            hint = (
                "a source unit's total is the sum of its whole k x k kernel; keep units whose total is above "
                "threshold * max|total| (excites, largest first) or below -threshold * max|total| (inhibits, "
                "most negative first)"
            )
            centre = kernels[:, kernels.shape[-2] // 2, kernels.shape[-1] // 2]
            if not got_in and exp_in:
                hint = "no inhibitors? Keep the sign of each total: negative weights inhibit"
            elif set(got_ex) == set(exp_ex) and set(got_in) == set(exp_in):
                hint = "order excites from the largest total down, inhibits from the most negative up"
            elif got_ex == [
                _format_unit("lines", int(c))
                for c in torch.argsort(centre, descending=True)
                if float(centre[c]) > threshold * float(centre.abs().max())
            ]:
                hint = "sum the whole k x k kernel, not only its centre entry"
            elif got_ex == [u for u, t in excites if t > threshold] or (
                [
                    _format_unit("lines", int(c))
                    for c in torch.argsort(totals, descending=True)
                    if float(totals[c]) > threshold
                ]
                == got_ex
            ):
                hint = (
                    "the threshold is relative: compare with threshold * max(|total|), not threshold itself"
                )
            C.fail(f"{label}: wrong units", expected=f"excites {exp_ex}, inhibits {exp_in}",
                   got=f"excites {got_ex}, inhibits {got_in}", hint=hint)  # fmt: skip
        for got_pairs, exp_pairs, what in ((g_ex, excites, "excites"), (g_in, inhibits, "inhibits")):
            values = [p[1] for p in got_pairs]
            C.resync()
            C.expect_close(torch.tensor([float(v) for v in values], dtype=torch.float64),
                           torch.tensor([v for _, v in exp_pairs], dtype=torch.float64),
                           f"{label}: the totals of {what}", rtol=1e-4, atol=1e-6,
                           hint="each total is the sum of the unit's k x k kernel (with its sign)")  # fmt: skip
    C.done("read_circuit", len(cases), hidden)


# =============================================================================================
# Exercise 6: NMF
# =============================================================================================
def _low_rank(n: int, m: int, k: int, seed: int, zero_column: bool = False):
    """Non-negative ``x = w0 @ h0`` of rank k; each row of h0 owns some columns (a unique NMF)."""
    gen = torch.Generator().manual_seed(seed)
    w0 = torch.rand(n, k, generator=gen, dtype=torch.float64) + 0.1
    h0 = torch.rand(k, m, generator=gen, dtype=torch.float64) * (torch.rand(k, m, generator=gen) < 0.4)
    for j in range(k):
        h0[:, j * (m // k) : j * (m // k) + 2] = 0.0
        h0[j, j * (m // k) : j * (m // k) + 2] = 1.0  # anchor columns: h0 is separable
    if zero_column:
        h0[:, -1] = 0.0  # a column of zeros in x: 0 / 0 without an epsilon
    return w0 @ h0, h0 / h0.norm(dim=1, keepdim=True)


def _nmf_cases(hidden: bool):
    cases = [(30, 20, 3, 0, False)]
    if hidden:
        cases += [(60, 40, 5, 1, False), (25, 50, 4, 2, True), (12, 12, 2, 3, False)]
    return cases


@C.check
def check_nmf(fn, hidden: bool = False) -> None:
    """Check ``fn(x, k, n_iter, seed) -> (w, h)`` (exercise 6) on planted low-rank data."""
    with _one_thread():  # tiny tensors: one thread is several times faster on a busy CPU
        _check_nmf(fn, hidden)


def _check_nmf(fn, hidden: bool) -> None:
    cases = _nmf_cases(hidden)
    for n, m, k, seed, zero_column in cases:
        x, h0 = _low_rank(n, m, k, seed, zero_column)
        label = f"nmf(x of shape ({n}, {m}) and rank {k}, k={k}, n_iter=500, seed={seed})"
        got = C.call(fn, x.clone(), k, 500, seed, what=label)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            C.fail(f"{label} should return two tensors", expected="(w, h)", got=type(got).__name__)
        w, h = C.as_tensor(got[0], f"{label} w").double(), C.as_tensor(got[1], f"{label} h").double()
        C.resync()
        C.expect_shape(w, (n, k), f"{label}: w", hint="x (n, m) ~ w (n, k) @ h (k, m)")
        C.expect_shape(h, (k, m), f"{label}: h", hint="x (n, m) ~ w (n, k) @ h (k, m)")
        if not (bool(torch.isfinite(w).all()) and bool(torch.isfinite(h).all())):
            C.fail(f"{label}: NaN or inf in the factors", expected="finite values", got="NaN/inf",
                   hint="add a small eps (e.g. 1e-12) to the denominators of the updates: a column of zeros gives 0 / 0")  # fmt: skip
        if float(w.min()) < 0 or float(h.min()) < 0:
            C.fail(f"{label}: negative entries", expected="w >= 0 and h >= 0",
                   got=f"min w {float(w.min()):.3g}, min h {float(h.min()):.3g}",
                   hint="NMF factors are non-negative: multiplicative updates keep them so (an SVD or a plain gradient step does not)")  # fmt: skip
        norms = h.norm(dim=1)
        if not C.close(norms, torch.ones(k, dtype=torch.float64), rtol=1e-4, atol=1e-4):
            C.fail(f"{label}: the rows of h should have unit L2 norm", expected=[1.0] * k,
                   got=[round(float(v), 4) for v in norms],
                   hint="divide each row of h by its norm and multiply the matching column of w by it")  # fmt: skip
        error = float((x - w @ h).norm() / x.norm())
        lib_w, lib_h = _ref_nmf(x, k, n_iter=500, init="random", seed=seed)
        lib_error = float((x - lib_w @ lib_h).norm() / x.norm())
        if error > max(2 * lib_error, 0.02):
            C.fail(f"{label}: the reconstruction is poor", expected=f"|x - w h| / |x| <= {max(2 * lib_error, 0.02):.3g} (library: {lib_error:.3g})",
                   got=f"{error:.3g}",
                   hint="update h <- h * (w.T x) / (w.T w h + eps), then w <- w * (x h.T) / (w h h.T + eps), n_iter times")  # fmt: skip
        cosines = (h0 @ h.T).amax(dim=1)  # each planted factor against its best match
        wanted = min(0.95, float((h0 @ lib_h.double().T).amax(dim=1).min()) - 0.05)  # small cases are harder
        if float(cosines.min()) < wanted:
            C.fail(f"{label}: the planted factors were not recovered", expected=f"every planted row of h0 matched (cosine > {wanted:.2f})",
                   got=f"worst cosine {float(cosines.min()):.3f}",
                   hint="run all n_iter updates, from a positive start")  # fmt: skip
    C.done("nmf", len(cases), hidden)
