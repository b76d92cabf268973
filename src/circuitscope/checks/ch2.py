"""Checks for chapter 2's exercises ("Visualization by optimization").

One function per exercise. ``check_x(fn)`` runs a few seeded cases (the visible cell of the
notebook); ``check_x(fn, hidden=True)`` runs those and more (other sizes, batches, offsets).
Each prints one success line or raises :class:`~circuitscope.checks.CheckFailed` with expected
vs got and a hint.

No check needs InceptionV1's weights: the optimisation exercises run on planted models (a
linear objective whose gradient ascent has a closed form, a tiny convolution with a ReLU) and
every other exercise has an exact answer given by the library's own ``optvis`` functions, bound
here at import. Optimised images are never compared pixel by pixel with an answer computed
elsewhere unless the whole computation is deterministic (fixed transforms, a fixed seed), so
an equally correct solution passes. Import this module in the notebook's locked setup cell,
before any learner code.
"""

from __future__ import annotations

import torch
from torch import nn

from ..optvis.objectives import direction as _ref_direction
from ..optvis.objectives import diversity as _ref_diversity
from ..optvis.objectives import neuron as _ref_neuron
from ..optvis.param import COLOR_CORRELATION_NORMALIZED as _NORMALIZED
from ..optvis.param import COLOR_CORRELATION_SVD_SQRT as _CORRELATION
from ..optvis.param import MAX_NORM_SVD_SQRT as _MAX_NORM
from ..optvis.param import FourierImage as _RefFourier
from ..optvis.param import decorrelate_colors as _ref_decorrelate
from ..optvis.param import frequencies as _ref_frequencies
from ..optvis.param import image as _ref_image
from ..optvis.param import to_rgb as _ref_to_rgb
from ..optvis.transform import jitter_by as _ref_jitter_by
from ..optvis.transform import pad as _ref_pad
from ..optvis.transform import rotate_by as _ref_rotate_by
from ..optvis.transform import scale_by as _ref_scale_by
from . import _core as C
from .runner import Case, Exercise, Mistake, Recipe, build, compare, expect_tensor, fail

# The library modules the references above use, as they are now (before any learner code).
C.protect_package("circuitscope", exclude=("circuitscope.checks", "circuitscope_course"))

__all__ = [
    "check_direction_objective",
    "check_diversity_objective",
    "check_fourier_image",
    "check_neuron_objective",
    "check_pad_and_jitter",
    "check_pixel_ascent",
    "check_render_loop",
    "check_scale_and_rotate",
    "check_to_rgb",
]

_Tensor = torch.Tensor


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tensor_result(got, label: str, shape: tuple, nonfinite_hint: str | None = None) -> torch.Tensor:
    """The learner's result as a plain float64 tensor of ``shape`` (or a failure)."""
    if isinstance(got, tuple) and len(got) and isinstance(got[0], _Tensor):
        C.fail(f"{label} returned a tuple", expected="one tensor", got=f"a tuple of {len(got)}")
    got = C.as_tensor(got, label)
    C.expect_shape(got, shape, label)
    if not got.is_floating_point():
        C.fail(f"{label} returned integers", expected="a float tensor", got=str(got.dtype))
    if not bool(torch.isfinite(got).all()):
        C.fail(f"{label} contains inf or NaN", expected="finite values", got=C._summary(got),
               hint=nonfinite_hint)  # fmt: skip
    return got.detach().double()


# =============================================================================================
# Exercise 1: naive gradient ascent on pixels
# =============================================================================================
# The objectives the cases pass are course objects: each side of the grader builds its own from
# the same recipe (a seed or a weight), so only data crosses the sandbox boundary.
class LinearObjective:
    """``f(x)_i = <w, x_i>``: its gradient is ``w`` everywhere, so ascent has a closed form."""

    def __init__(self, w: torch.Tensor):
        self.w = w

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


class CoupledObjective(LinearObjective):
    """``f(x)_i = <w, x_i> + sum_p x_p x_(p+1)`` (neighbours along a row): not linear, so where
    the pixels go depends on where they are. A loop that clamps only once, at the end, lets
    pixels run past 1 and drags their neighbours with them: a different image."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return super().__call__(x) + (x * x.roll(1, -1)).flatten(1).sum(1)


class _PlantedConv(nn.Module):
    """A tiny planted "network": one 5x5 convolution (fixed seeded weights), then a ReLU.

    ``forward(images: (N, 3, H, W)) -> (N, 4, H - 4, W - 4)``. Its parameters require gradients
    (as a freshly built model's do), so a loop that calls ``loss.backward()`` fills their
    ``.grad``: the render-loop check looks for exactly that.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 5)
        g = _gen(seed)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(4, 3, 5, 5, generator=g) * 0.2)
            self.conv.bias.copy_(torch.tensor([0.05, 0.02, 0.1, 0.03]))  # all alive on grey

    def forward(self, x):
        return torch.relu(self.conv(x * 2 - 1))


def planted_conv(seed: int = 0) -> _PlantedConv:
    return _PlantedConv(seed)


def _channel_mean(k: int):
    def objective(acts: torch.Tensor) -> torch.Tensor:
        return acts[:, k].flatten(1).mean(1)

    return objective


class PlantedObjective:
    """The mean of channel ``channel`` of the planted conv + ReLU: ``(N, 3, H, W) -> (N,)``."""

    def __init__(self, seed: int, channel: int):
        self.model, self.channel = _PlantedConv(seed), channel

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _channel_mean(self.channel)(self.model(x))


def _grey(n: int, size: int, seed: int) -> torch.Tensor:
    return (0.5 + 0.01 * torch.randn(n, 3, size, size, generator=_gen(seed))).clamp(0, 1)


def _ref_pixel_ascent(objective, images: torch.Tensor, steps: int, lr: float, clamp_each: bool = True,
                      accumulate: bool = False) -> torch.Tensor:  # fmt: skip
    """The reference (``clamp_each`` and ``accumulate`` make two likely mistakes of it)."""
    x, total = images.detach().clone(), torch.zeros_like(images)
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x).sum(), x)
        total = total + grad if accumulate else grad
        x = x.detach() + lr * total
        x = x.clamp(0, 1) if clamp_each else x
    return x.detach().clamp(0, 1)


def _ascent(case, **variant):
    objective, images, steps, lr = build(case.args)
    if "negate" in variant:
        return _ref_pixel_ascent(lambda x: -objective(x), images, steps, lr)
    return _ref_pixel_ascent(objective, images, steps, lr, **variant)


def _pixel_ascent_cases(hidden: bool):
    """Linear objectives (ascent has a closed form), a coupled one (clamping every step matters)
    and a planted conv + ReLU (an objective through a network must rise)."""
    linear = [(1, 8, 3, 0.01, 0), (2, 6, 20, 0.05, 1)] + ([(3, 5, 1, 0.1, 2), (1, 12, 40, 0.02, 3)] if hidden else [])
    coupled = [(1, 8, 10, 0.1, 4)] + ([(2, 7, 20, 0.05, 5)] if hidden else [])
    for kind, rows in (("linear", linear), ("coupled", coupled)):
        for n, size, steps, lr, seed in rows:
            w = torch.randn(n, 3, size, size, generator=_gen(100 + seed))
            factory = f"circuitscope.checks.ch2:{'LinearObjective' if kind == 'linear' else 'CoupledObjective'}"
            objective = Recipe(factory, w=w)
            args = (objective, _grey(n, size, seed), steps, lr)
            yield Case(f"pixel_ascent on a {kind} objective ({n} images, {size} px, {steps} steps, lr {lr})",
                       args, expect=_ref_pixel_ascent(objective.build(), args[1], steps, lr), rtol=1e-5, atol=1e-5,
                       hint="each step: x = clamp(x + lr * gradient, 0, 1)")  # fmt: skip
    for k, steps in [(0, 10)] + ([(2, 25)] if hidden else []):
        objective = Recipe("circuitscope.checks.ch2:PlantedObjective", seed=5, channel=k)
        yield Case(f"pixel_ascent on a planted conv + ReLU, channel {k}, {steps} steps",
                   (objective, _grey(1, 12, 7 + k), steps, 0.05), verify=_objective_rose,
                   hint="follow +gradient of objective(x).sum() with respect to x")  # fmt: skip


def _objective_rose(case, got) -> None:
    objective, start, _, _ = build(case.args)
    got = expect_tensor(got, tuple(start.shape), case.label)
    with torch.no_grad():
        before, after = float(objective(start).sum()), float(objective(got.float()).sum())
    if not after > before:
        fail(f"{case.label}: the objective did not rise", expected=f"more than {before:.4g}", got=f"{after:.4g}")


check_pixel_ascent = Exercise(
    "check_pixel_ascent", "pixel_ascent", _pixel_ascent_cases,
    doc="""Check ``fn(objective, images, steps, lr) -> images`` (exercise 1): plain gradient ascent.

    ``objective(x: (N, 3, H, W)) -> (N,)``; each step ``x <- clamp(x + lr * grad, 0, 1)`` with
    ``grad`` the gradient of ``objective(x).sum()``; returns ``(N, 3, H, W)`` in [0, 1].""",
    mistakes=[
        Mistake("the objective went DOWN: that is gradient descent; ascent adds lr * gradient",
                result=lambda case: _ascent(case, negate=True)),
        Mistake("the images left [0, 1]: clamp the pixels to [0, 1] after every step",
                when=lambda case, got: isinstance(got, torch.Tensor) and got.is_floating_point()
                and (float(got.min()) < -1e-6 or float(got.max()) > 1 + 1e-6)),
        Mistake("the gradients accumulate from step to step: use torch.autograd.grad, or zero x.grad",
                result=lambda case: _ascent(case, accumulate=True) if case.args[2] > 1 else None),
        Mistake("clamp after EVERY step, not once at the end: a pixel past 1 changes the gradient "
                "of its neighbours on the next step", result=lambda case: _ascent(case, clamp_each=False)),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 2: pad and jitter
# =============================================================================================
def _random_images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=_gen(seed))


@C.check
def check_pad_and_jitter(fn, hidden: bool = False) -> None:
    """Check ``fn(x, width, dy, dx, d, value=0.5)`` (exercise 2): pad by ``width`` of ``value``
    on every side, then crop ``(H' - d, W' - d)`` starting at row ``dy``, column ``dx``."""
    cases = [((1, 8, 8), 2, 1, 3, 4, 0.5), ((2, 6, 9), 3, 0, 0, 2, 0.5)]
    if hidden:
        cases += [
            ((1, 5, 7), 0, 2, 1, 3, 0.5),
            ((3, 10, 10), 12, 8, 0, 8, 0.25),
            ((1, 12, 6), 1, 4, 4, 4, 0.0),
        ]
    for k, ((n, h, w), width, dy, dx, d, value) in enumerate(cases):
        x = _random_images(n, h, w, k)
        label = f"pad_and_jitter(x of shape {tuple(x.shape)}, width={width}, dy={dy}, dx={dx}, d={d}, value={value})"
        expected = _ref_jitter_by(_ref_pad(x, width, value), dy, dx, d)
        got = C.call(fn, x.clone(), width, dy, dx, d, value, what=label)
        got = C.as_tensor(got, label)
        hint = None
        hh, ww = h + 2 * width - d, w + 2 * width - d
        if tuple(got.shape) != tuple(expected.shape):
            if tuple(got.shape[-2:]) == (h + 2 * width - 2 * d, w + 2 * width - 2 * d):
                hint = "jitter removes d pixels in all from each side length, not d from each end"
            elif tuple(got.shape[-2:]) == (h + width - d, w + width - d):
                hint = "pad adds `width` pixels on EVERY side: the size grows by 2 * width"
            C.expect_shape(got, tuple(expected.shape), label, hint)
        if not C.close(got, expected, 0, 1e-6):
            padded = _ref_pad(x, width, value)
            if C.close(got, _ref_jitter_by(padded, dx, dy, d), 0, 1e-6):
                hint = "dy is the row offset (dimension -2), dx the column offset (dimension -1)"
            elif width and C.close(got, _ref_jitter_by(_ref_pad(x, width, 0.0), dy, dx, d), 0, 1e-6):
                hint = "pad with the constant `value` (0.5, mid grey), not with zeros"
            C.expect_close(
                got, expected, label, 0, 1e-6, hint=hint or f"the crop is x[..., dy:dy + {hh}, dx:dx + {ww}]"
            )
    C.done("pad_and_jitter", len(cases), hidden)


# =============================================================================================
# Exercise 3: scale and rotate
# =============================================================================================
@C.check
def check_scale_and_rotate(fn, hidden: bool = False) -> None:
    """Check ``fn(x, factor, degrees)`` (exercise 3): resize to ``int(factor * H), int(factor * W)``
    (bilinear, half-pixel centres, no antialiasing), then rotate counter-clockwise by ``degrees``
    about the centre (bilinear, zeros from outside)."""
    cases = [((1, 16, 16), 1.1, 10.0), ((2, 20, 20), 0.9, -7.0)]
    if hidden:
        cases += [((1, 12, 18), 1.2, 0.0), ((1, 17, 17), 1.0, 90.0), ((2, 30, 24), 0.92, 4.0)]
    for k, ((n, h, w), factor, degrees) in enumerate(cases):
        x = _random_images(n, h, w, 10 + k)
        label = f"scale_and_rotate(x of shape {tuple(x.shape)}, factor={factor}, degrees={degrees})"
        expected = _ref_rotate_by(_ref_scale_by(x, factor), degrees)
        got = C.as_tensor(C.call(fn, x.clone(), factor, degrees, what=label), label)
        hint = None
        if tuple(got.shape) != tuple(expected.shape):
            hint = "the new size is (int(factor * H), int(factor * W)); a rotation keeps the size"
            C.expect_shape(got, tuple(expected.shape), label, hint)
        if not C.close(got, expected, 1e-4, 1e-4):
            scaled = _ref_scale_by(x, factor)
            if degrees and C.close(got, _ref_rotate_by(scaled, -degrees), 1e-4, 1e-4):
                hint = "the rotation goes the wrong way: positive degrees turn the image counter-clockwise"
            elif degrees and C.close(got, _nearest_rotation(scaled, degrees), 1e-4, 1e-4):
                hint = ("rotate with BILINEAR interpolation (torchvision's rotate defaults to nearest: pass "
                        "interpolation=InterpolationMode.BILINEAR)")  # fmt: skip
            elif degrees and C.close(got, scaled, 1e-4, 1e-4):
                hint = "the image was not rotated"
            elif factor != 1:
                hint = ("resize bilinearly with half-pixel centres (F.interpolate(..., mode='bilinear', "
                        "align_corners=False), no antialiasing); rotate with the same convention "
                        "(F.affine_grid / F.grid_sample with align_corners=False)")  # fmt: skip
            C.expect_close(got, expected, label, 1e-4, 1e-4, hint=hint)
    C.done("scale_and_rotate", len(cases), hidden)


def _nearest_rotation(x: torch.Tensor, degrees: float) -> torch.Tensor:
    import torchvision.transforms.v2.functional as TF

    return TF.rotate(x, float(degrees))  # torchvision's default: nearest neighbour


# =============================================================================================
# Exercise 4: the Fourier parameterization
# =============================================================================================
_ZERO_FREQUENCY_HINT = "a division by a zero frequency? (the constant term has f = 0)"


def _fourier_reference(spectrum: torch.Tensor, size: tuple[int, int], decay_power: float) -> torch.Tensor:
    n = spectrum.shape[0]
    img = _RefFourier(n, size, sd=0.0, decay_power=decay_power, decorrelate=False)
    with torch.no_grad():
        img.spectrum.copy_(spectrum)
        return img.raw()


@C.check
def check_fourier_image(fn, hidden: bool = False) -> None:
    """Check ``fn(spectrum, size, decay_power) -> (N, 3, H, W)`` (exercise 4):
    ``irfft2(complex(spectrum) * scale, s=size) / 4`` with
    ``scale = sqrt(H W) / max(f, 1 / max(H, W)) ** decay_power``."""
    cases = [(1, (16, 16), 1.0), (2, (12, 20), 1.0)]
    if hidden:
        cases += [(1, (15, 15), 2.0), (3, (8, 11), 0.5), (1, (32, 32), 1.0)]
    for k, (n, (h, w), decay) in enumerate(cases):
        spectrum = torch.randn(n, 3, h, w // 2 + 1, 2, generator=_gen(20 + k))
        label = (
            f"fourier_image(spectrum of shape {tuple(spectrum.shape)}, size={(h, w)}, decay_power={decay})"
        )
        expected = _fourier_reference(spectrum, (h, w), decay).double()
        got = C.call(fn, spectrum.clone(), (h, w), decay, what=label)
        got = _tensor_result(got, label, (n, 3, h, w), _ZERO_FREQUENCY_HINT)
        if not C.close(got, expected, 1e-4, 1e-4):
            hint = "scale each coefficient by sqrt(H * W) / max(f, 1 / max(H, W)) ** decay_power, then irfft2 and / 4"
            ratio = (got.flatten() @ expected.flatten()) / (expected.flatten() @ expected.flatten())
            if C.close(got, expected * ratio, 1e-3, 1e-4):
                hint = (f"right shape of spectrum, wrong overall scale (yours is {float(ratio):.4g} times the "
                        "expected image): multiply by sqrt(H * W) and divide the inverse FFT by 4")  # fmt: skip
            elif C.close(got, _fourier_reference(spectrum, (h, w), -decay), 1e-4, 1e-4):
                hint = "the amplitude must FALL with frequency: divide by f ** decay_power, do not multiply"
            C.expect_close(got, expected, label, 1e-4, 1e-4, hint=hint)
    # The property that matters: the amplitude spectrum falls as 1 / f ** decay_power.
    n, size = 32, 32
    spectrum = torch.randn(n, 3, size, size // 2 + 1, 2, generator=_gen(99))
    decays = (1.0, 2.0) if hidden else (1.0,)
    for decay in decays:
        got = _tensor_result(C.call(fn, spectrum.clone(), (size, size), decay, what="fourier_image"),
                             "fourier_image", (n, 3, size, size), _ZERO_FREQUENCY_HINT)  # fmt: skip
        slope = _spectrum_slope(got)
        if not abs(slope + decay) < 0.1:
            C.fail(f"the amplitude spectrum of fourier_image(..., decay_power={decay}) does not fall as 1/f^{decay}",
                   expected=f"log-log slope {-decay}", got=f"{slope:.3f}",
                   hint="divide each coefficient by its frequency ** decay_power")  # fmt: skip
    C.done("fourier_image", len(cases) + len(decays), hidden)


def _spectrum_slope(images: torch.Tensor) -> float:
    """Least-squares slope of log amplitude against log frequency (DC and Nyquist left out)."""
    h, w = images.shape[-2:]
    amplitude = torch.fft.rfft2(images).abs().mean(dim=(0, 1))
    f = _ref_frequencies(h, w).expand_as(amplitude)
    inner = (f > 1.5 / w) & (torch.arange(w // 2 + 1) < w // 2)
    x, y = f[inner].log(), amplitude[inner].double().log()
    return float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


# =============================================================================================
# Exercise 5: decorrelated colours
# =============================================================================================
@C.check
def check_to_rgb(fn, hidden: bool = False) -> None:
    """Check ``fn(t) -> (N, 3, H, W)`` in (0, 1) (exercise 5): each pixel's 3-vector times the
    colour correlation matrix normalised by its largest column norm, then a sigmoid."""
    shapes = [(1, 3, 4, 4), (2, 3, 5, 7)] + ([(3, 3, 1, 1), (1, 3, 16, 9)] if hidden else [])
    for k, shape in enumerate(shapes):
        t = torch.randn(*shape, generator=_gen(30 + k)) * 2
        label = f"to_rgb(t of shape {shape})"
        expected = _ref_to_rgb(t, decorrelate=True)
        got = _tensor_result(C.call(fn, t.clone(), what=label), label, shape)
        if not C.close(got, expected, 1e-5, 1e-6):
            variants = {
                "not normalised": torch.sigmoid(torch.einsum("ij,njhw->nihw", _CORRELATION, t)),
                "transposed": torch.sigmoid(torch.einsum("ji,njhw->nihw", _NORMALIZED, t)),
                "no sigmoid": _ref_decorrelate(t),
                "row norm": torch.sigmoid(
                    torch.einsum("ij,njhw->nihw", _CORRELATION / _CORRELATION.norm(dim=1).max(), t)
                ),
            }
            hints = {
                "not normalised": f"divide the matrix by its largest column norm ({_MAX_NORM:.7f}) first",
                "transposed": "the matrix is applied as M @ v for each pixel's colour vector v (rows give R, G, B): "
                "you used its transpose",
                "no sigmoid": "finish with a sigmoid, so the colours lie in (0, 1)",
                "row norm": "normalise by the largest COLUMN norm (M.norm(dim=0).max()), not the largest row norm",
            }
            hint = next((hints[name] for name, v in variants.items() if C.close(got, v, 1e-5, 1e-6)), None)
            C.expect_close(got, expected, label, 1e-5, 1e-6, hint=hint)
    C.done("to_rgb", len(shapes), hidden)


# =============================================================================================
# Exercises 6-8: objectives on fixed activations
# =============================================================================================
def _acts(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=_gen(seed))


@C.check
def check_neuron_objective(fn, hidden: bool = False) -> None:
    """Check ``fn(acts, n, x=None, y=None) -> (N,)`` (exercise 6): channel ``n`` at column ``x``,
    row ``y``; the centre ``(H // 2, W // 2)`` by default."""
    cases = [((2, 5, 7, 7), 3, None, None), ((1, 4, 6, 8), 1, None, None), ((3, 6, 5, 9), 2, 7, 1)]
    if hidden:
        cases += [((2, 3, 4, 4), 0, 0, 3), ((1, 8, 9, 3), 7, None, None), ((2, 2, 6, 6), 1, 5, 0)]
    for k, (shape, n, x, y) in enumerate(cases):
        acts = _acts(*shape, seed=40 + k)
        where = "" if x is None else f", x={x}, y={y}"
        label = f"neuron_objective(acts of shape {shape}, n={n}{where})"
        expected = _ref_neuron("a", n, x, y)({"a": acts})
        got = (
            C.call(fn, acts.clone(), n, x, y, what=label)
            if x is not None
            else C.call(fn, acts.clone(), n, what=label)
        )
        got = _tensor_result(got, label, (shape[0],))
        if not C.close(got, expected, 1e-6, 1e-6):
            hint = None
            h, w = shape[-2:]
            xx, yy = (w // 2 if x is None else x), (h // 2 if y is None else y)
            if xx < h and yy < w and C.close(got, acts[:, n, xx, yy], 1e-6, 1e-6):
                hint = "x is the column (last dimension), y the row: acts[:, n, y, x]"
            elif x is None and C.close(got, acts[:, n, (h - 1) // 2, (w - 1) // 2], 1e-6, 1e-6):
                hint = "the centre is (H // 2, W // 2), as in Lucid (with an even size, the lower right of the middle 2x2)"
            elif C.close(got, acts[:, n].flatten(1).mean(1), 1e-6, 1e-6):
                hint = "that is the channel objective (mean over positions); a neuron is one position"
            C.expect_close(got, expected, label, 1e-6, 1e-6, hint=hint)
    C.done("neuron_objective", len(cases), hidden)


@C.check
def check_direction_objective(fn, hidden: bool = False) -> None:
    """Check ``fn(acts, vector) -> (N,)`` (exercise 7): the mean over positions of each position's
    activation vector dotted with ``vector``; a one-hot vector gives the channel objective."""
    cases = [((2, 5, 4, 4), None), ((1, 6, 3, 5), 2)]  # (shape, one-hot channel or None)
    if hidden:
        cases += [((3, 4, 1, 1), None), ((2, 7, 6, 2), None), ((1, 3, 8, 8), 0)]
    for k, (shape, hot) in enumerate(cases):
        acts = _acts(*shape, seed=50 + k)
        c = shape[1]
        vector = torch.zeros(c) if hot is not None else torch.randn(c, generator=_gen(60 + k))
        if hot is not None:
            vector[hot] = 1.0
        kind = "random" if hot is None else f"one-hot channel {hot}"
        label = f"direction_objective(acts of shape {shape}, vector={kind})"
        expected = _ref_direction("a", vector)({"a": acts})
        got = _tensor_result(C.call(fn, acts.clone(), vector.clone(), what=label), label, (shape[0],))
        if not C.close(got, expected, 1e-5, 1e-5):
            hint = None
            dots = torch.einsum("nchw,c->nhw", acts, vector)
            if C.close(got, dots.flatten(1).sum(1), 1e-5, 1e-5):
                hint = "take the MEAN over positions, not the sum (so a one-hot vector gives the channel objective)"
            elif C.close(got, expected / vector.norm(), 1e-5, 1e-5):
                hint = "do not normalise the vector: the objective is linear in it"
            C.expect_close(got, expected, label, 1e-5, 1e-5, hint=hint)
    C.done("direction_objective", len(cases), hidden)


@C.check
def check_diversity_objective(fn, hidden: bool = False) -> None:
    """Check ``fn(acts) -> (N,)`` (exercise 8): for each image the sum over the OTHER images of
    the cosine similarity of their Gram matrices."""
    shapes = [(3, 4, 5, 5), (2, 6, 3, 3)] + ([(1, 4, 2, 2), (5, 3, 4, 6)] if hidden else [])
    for k, shape in enumerate(shapes):
        acts = _acts(*shape, seed=70 + k).relu()
        label = f"diversity_objective(acts of shape {shape})"
        expected = _ref_diversity("a")({"a": acts})
        got = _tensor_result(C.call(fn, acts.clone(), what=label), label, (shape[0],))
        if not C.close(got, expected, 1e-4, 1e-5):
            hint = "G_i = A_i A_i^T with A_i the (C, H*W) activations of image i, divided by its norm; sum <G_i, G_j> over j != i"
            if C.close(got, expected + 1, 1e-4, 1e-5):
                hint = "leave out each image's similarity to itself (j != i): it is always 1"
            else:
                flat = acts.reshape(shape[0], shape[1], -1)
                grams = (flat @ flat.transpose(1, 2)).reshape(shape[0], -1)
                raw = grams @ grams.T
                if C.close(got, raw.sum(1) - raw.diagonal(), 1e-4, 1e-5):
                    hint = "normalise each Gram matrix to unit norm (a cosine similarity), or large activations dominate"
            C.expect_close(got, expected, label, 1e-4, 1e-5, hint=hint)
    same = _acts(1, 4, 3, 3, seed=79).relu().expand(3, -1, -1, -1).contiguous()
    got = _tensor_result(C.call(fn, same.clone(), what="diversity_objective(3 identical images)"),
                         "diversity_objective(3 identical images)", (3,))  # fmt: skip
    C.expect_close(got, torch.full((3,), 2.0), "diversity_objective(3 identical images)", 1e-4, 1e-5,
                   hint="identical images have cosine similarity 1 with each of the 2 others")  # fmt: skip
    C.done("diversity_objective", len(shapes) + 1, hidden)


# =============================================================================================
# Exercise 9: the render loop
# =============================================================================================
class _FixedShift:
    """A deterministic, differentiable transform: pad 2 (grey), crop back at offset (1, 2).
    Counts its calls, so the check knows it ran once per step."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return _ref_jitter_by(_ref_pad(x, 2, 0.5), 1, 2, 4)


def _ref_render_loop(model, objective, image, transform, steps, lr):
    params = list(image.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    values = []
    for _ in range(steps):
        value = objective(model(transform(image()))).sum()
        grads = torch.autograd.grad(-value, params)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        values.append(float(value.detach()))
    with torch.no_grad():
        return image().detach(), values


def _make_image(n: int, size: int, seed: int):
    return _ref_image(size, batch=n, param="fft", sd=0.01, generator=_gen(seed))


@C.check
def check_render_loop(fn, hidden: bool = False) -> None:
    """Check ``fn(model, objective, image, transform, steps, lr) -> (images, values)`` (exercise 9).

    Adam on ``image.parameters()`` maximising ``objective(model(transform(image()))).sum()``;
    ``images: (N, 3, H, W)`` in [0, 1] (detached), ``values``: the ``steps`` objective values; the
    model's parameters get no gradient. With fixed transforms the whole run is deterministic, so
    it is compared with the reference loop.
    """
    cases = [(1, 16, 12, 0.05, 0), (2, 16, 12, 0.05, 1)]
    if hidden:
        cases += [(3, 20, 20, 0.1, 2), (1, 12, 6, 0.02, 3)]
    for n, size, steps, lr, seed in cases:
        model = _PlantedConv(seed=seed)
        objective = _channel_mean(seed % 4)
        label = (
            f"render_loop(planted conv, channel {seed % 4}, {n} images of {size} px, {steps} steps, lr {lr})"
        )
        transform = _FixedShift()
        got = C.call(fn, model, objective, _make_image(n, size, seed), transform, steps, lr, what=label)
        if not (isinstance(got, tuple) and len(got) == 2):
            C.fail(f"{label} should return (images, values)", expected="a tuple of 2", got=type(got).__name__)
        images, values = got
        images = _tensor_result(images, f"{label}: the images", (n, 3, size, size))
        if any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters()):
            C.fail(f"{label} computed gradients for the model's weights",
                   expected="no .grad on the model's parameters", got="the model's weights have gradients",
                   hint="differentiate with respect to the image only: torch.autograd.grad(loss, "
                   "image.parameters()) (or set requires_grad_(False) on the model)")  # fmt: skip
        if float(images.min()) < 0 or float(images.max()) > 1:
            C.fail(f"{label}: images outside [0, 1]", expected="values in [0, 1]", got=C._summary(images),
                   hint="return image(), which the sigmoid keeps in [0, 1]")  # fmt: skip
        if transform.calls != steps:
            C.fail(f"{label}: the transform ran {transform.calls} times", expected=f"once per step ({steps})",
                   got=transform.calls, hint="transform the image every step, before the model sees it")  # fmt: skip
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError) as err:
            C.fail(f"{label}: values should be numbers", expected="a list of floats", got=str(err))
        C.resync()
        if len(values) != steps:
            C.fail(f"{label}: wrong number of values", expected=steps, got=len(values),
                   hint="append the objective's value once per step")  # fmt: skip
        if not values[-1] > values[0]:
            C.fail(f"{label}: the objective did not rise", expected=f"last value > first ({values[0]:.4g})",
                   got=f"{values[-1]:.4g}", hint="maximise: minimise the loss -objective (mind the sign)")  # fmt: skip
        ref_images, ref_values = _ref_render_loop(_PlantedConv(seed=seed), objective, _make_image(n, size, seed),
                                                  _FixedShift(), steps, lr)  # fmt: skip
        if not C.close(torch.tensor(values), torch.tensor(ref_values), 1e-3, 1e-5):
            C.fail(f"{label}: the objective values differ from the reference loop's",
                   expected=[round(v, 5) for v in ref_values[:4]] + ["..."],
                   got=[round(v, 5) for v in values[:4]] + ["..."],
                   hint="use torch.optim.Adam(image.parameters(), lr=lr); each step evaluate "
                   "objective(model(transform(image()))).sum() BEFORE the update and record it; clear "
                   "the old gradient every step")  # fmt: skip
        C.expect_close(images, ref_images, f"{label}: the final images", 1e-3, 1e-4,
                       hint="return image() after the last step")  # fmt: skip
    C.done("render_loop", len(cases), hidden)
