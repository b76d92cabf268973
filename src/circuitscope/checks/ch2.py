"""Checks for chapter 2's exercises ("Visualization by optimization").

Each check is an :class:`~.runner.Exercise` run by :mod:`.runner`: its seeded cases are data
(tensors, numbers, or a :class:`~.runner.Recipe` for a planted model, objective, image or
transform), judged against the library's own ``optvis`` functions or a property, with a table of
likely mistakes and their hints. ``check_x(fn)`` runs the visible cases, ``check_x(fn,
hidden=True)`` those and more. No check needs InceptionV1's weights: the optimisation exercises
run on planted models, and optimised images are compared with a reference only where the whole
run is deterministic (fixed transforms, a fixed seed), so an equally correct solution passes.

Every random value of a hidden case comes from a seed passed through :func:`~.runner.hidden_seed`:
the public number here, another one drawn from the grader's private key when it grades.
"""

from __future__ import annotations

import torch
from torch import nn

from ..methods.optvis.objectives import direction as _ref_direction
from ..methods.optvis.objectives import diversity as _ref_diversity
from ..methods.optvis.objectives import neuron as _ref_neuron
from ..methods.optvis.param import COLOR_CORRELATION_NORMALIZED as _NORMALIZED
from ..methods.optvis.param import COLOR_CORRELATION_SVD_SQRT as _CORRELATION
from ..methods.optvis.param import MAX_NORM_SVD_SQRT as _MAX_NORM
from ..methods.optvis.param import FourierImage as _RefFourier
from ..methods.optvis.param import decorrelate_colors as _ref_decorrelate
from ..methods.optvis.param import frequencies as _ref_frequencies
from ..methods.optvis.param import image as _ref_image
from ..methods.optvis.param import to_rgb as _ref_to_rgb
from ..methods.optvis.transform import jitter_by as _ref_jitter_by
from ..methods.optvis.transform import pad as _ref_pad
from ..methods.optvis.transform import rotate_by as _ref_rotate_by
from ..methods.optvis.transform import scale_by as _ref_scale_by
from .recipes import generator as _gen
from .runner import (
    Case,
    CheckFailed,
    Exercise,
    Mistake,
    Recipe,
    build,
    compare,
    expect_tensor,
    fail,
    hidden_seed,
    same,
)
from .runner import summary as _summary

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


def _is_tensor(got, shape: tuple | None = None) -> bool:
    """Whether ``got`` is a float tensor (of ``shape``, if given): a mistake's result can be compared."""
    return isinstance(got, torch.Tensor) and got.is_floating_point() and (
        shape is None or tuple(got.shape) == tuple(shape))


def _not_finite(case, got) -> bool:
    """``when`` of a mistake: a float tensor with inf or NaN in it."""
    return _is_tensor(got) and not bool(torch.isfinite(got).all())


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
    # (n, size, steps, lr, seed, about: what the case tests, for the graded feedback; set on every case
    # that comes after the hidden ones, so that the words fit a visible case too)
    linear = [(1, 8, 3, 0.01, 0, None), (2, 6, 20, 0.05, 1, None)]
    coupled = [(1, 8, 10, 0.1, 4, "a coupled objective (clamping after every step matters)")]
    if hidden:
        linear += [(3, 5, 1, 0.1, hidden_seed(2), "a batch of several images on a linear objective, a single step"),
                   (1, 12, 40, 0.02, hidden_seed(3), "a larger image on a linear objective, over many steps")]
        coupled += [(2, 7, 20, 0.05, hidden_seed(5),
                     "a batch of images on a coupled objective (clamping after every step matters)")]
    for kind, rows in (("linear", linear), ("coupled", coupled)):
        for n, size, steps, lr, seed, about in rows:
            w = torch.randn(n, 3, size, size, generator=_gen(100 + seed))
            factory = f"circuitscope.checks.ch2:{'LinearObjective' if kind == 'linear' else 'CoupledObjective'}"
            objective = Recipe(factory, w=w)
            args = (objective, _grey(n, size, seed), steps, lr)
            yield Case(f"pixel_ascent on a {kind} objective ({n} images, {size} px, {steps} steps, lr {lr})",
                       args, expect=_ref_pixel_ascent(objective.build(), args[1], steps, lr), rtol=1e-5, atol=1e-5,
                       hint="each step: x = clamp(x + lr * gradient, 0, 1)", about=about)  # fmt: skip
    # (channel, steps, the conv's seed, the image's seed, about)
    planted = [(0, 10, 5, 7, "a planted conv + ReLU (the objective must rise)")]
    if hidden:
        planted += [(2, 25, hidden_seed(5), hidden_seed(9),
                     "another planted conv + ReLU and channel, over more steps (the objective must rise)")]
    for k, steps, conv_seed, image_seed, about in planted:
        objective = Recipe("circuitscope.checks.ch2:PlantedObjective", seed=conv_seed, channel=k)
        yield Case(f"pixel_ascent on a planted conv + ReLU, channel {k}, {steps} steps",
                   (objective, _grey(1, 12, image_seed), steps, 0.05), verify=_objective_rose,
                   hint="follow +gradient of objective(x).sum() with respect to x", about=about)  # fmt: skip


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


def _pad_and_jitter_cases(hidden: bool):
    """``(x: (N, 3, H, W), width, dy, dx, d, value)``: the reference is the library's pad + jitter_by."""
    # ..., the images' seed, what a hidden case tests (None for a visible one)
    rows = [((1, 8, 8), 2, 1, 3, 4, 0.5, 0, None), ((2, 6, 9), 3, 0, 0, 2, 0.5, 1, None)]
    if hidden:
        rows += [((1, 5, 7), 0, 2, 1, 3, 0.5, hidden_seed(2), "no padding at all (width zero), on an oblong image"),
                 ((3, 10, 10), 12, 8, 0, 8, 0.25, hidden_seed(3),
                  "a batch padded by more than the image's own size, with another pad value and no column offset"),
                 ((1, 12, 6), 1, 4, 4, 4, 0.0, hidden_seed(4),
                  "padding with zeros as the value, and both offsets at their largest (dy and dx equal to d)")]  # fmt: skip
    for (n, h, w), width, dy, dx, d, value, seed, about in rows:
        x = _random_images(n, h, w, seed)
        hh, ww = h + 2 * width - d, w + 2 * width - d
        label = f"pad_and_jitter(x of shape {tuple(x.shape)}, width={width}, dy={dy}, dx={dx}, d={d}, value={value})"
        yield Case(label, (x, width, dy, dx, d, value), expect=_ref_jitter_by(_ref_pad(x, width, value), dy, dx, d),
                   rtol=0, atol=1e-6, hint=f"the crop is x[..., dy:dy + {hh}, dx:dx + {ww}]", about=about)  # fmt: skip


def _crop_size(case, got, grow: int, shrink: int) -> bool:
    """Whether ``got`` has the wrong shape, and its last two sizes are ``H + grow - shrink``,
    ``W + grow - shrink`` (H, W: the input's)."""
    x, width, _, _, d, _ = case.args
    h, w = x.shape[-2:]
    wrong = (h + grow * width - shrink * d, w + grow * width - shrink * d)
    return _is_tensor(got) and tuple(got.shape) != tuple(case.expect.shape) and tuple(got.shape[-2:]) == wrong


def _pad_and_jitter_variant(case, dy_dx_swapped: bool = False, zeros: bool = False):
    x, width, dy, dx, d, value = case.args
    if zeros and not width:
        return None
    padded = _ref_pad(x, width, 0.0 if zeros else value)
    return _ref_jitter_by(padded, dx, dy, d) if dy_dx_swapped else _ref_jitter_by(padded, dy, dx, d)


check_pad_and_jitter = Exercise(
    "check_pad_and_jitter", "pad_and_jitter", _pad_and_jitter_cases,
    forbid=("circuitscope.methods.optvis.transform:pad", "circuitscope.methods.optvis.transform:jitter_by",),
    doc="""Check ``fn(x, width, dy, dx, d, value=0.5)`` (exercise 2): pad by ``width`` of ``value``
    on every side, then crop ``(H' - d, W' - d)`` starting at row ``dy``, column ``dx``.""",
    mistakes=[
        Mistake("jitter removes d pixels in all from each side length, not d from each end",
                when=lambda case, got: _crop_size(case, got, 2, 2)),
        Mistake("pad adds `width` pixels on EVERY side: the size grows by 2 * width",
                when=lambda case, got: _crop_size(case, got, 1, 1)),
        Mistake("dy is the row offset (dimension -2), dx the column offset (dimension -1)",
                result=lambda case: _pad_and_jitter_variant(case, dy_dx_swapped=True)),
        Mistake("pad with the constant `value` (0.5, mid grey), not with zeros",
                result=lambda case: _pad_and_jitter_variant(case, zeros=True)),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 3: scale and rotate
# =============================================================================================
_HALF_PIXEL_HINT = ("resize bilinearly with half-pixel centres (F.interpolate(..., mode='bilinear', "
                    "align_corners=False), no antialiasing); rotate with the same convention "
                    "(F.affine_grid / F.grid_sample with align_corners=False)")  # fmt: skip


def _scale_and_rotate_cases(hidden: bool):
    """``(x: (N, 3, H, W), factor, degrees)``: the reference is the library's scale_by + rotate_by."""
    # ..., the images' seed, what a hidden case tests (None for a visible one)
    rows = [((1, 16, 16), 1.1, 10.0, 10, None), ((2, 20, 20), 0.9, -7.0, 11, None)]
    if hidden:
        rows += [((1, 12, 18), 1.2, 0.0, hidden_seed(12), "an oblong image scaled up, with no rotation"),
                 ((1, 17, 17), 1.0, 90.0, hidden_seed(13),
                  "an odd-sized square image turned by a right angle, with no scaling"),
                 ((2, 30, 24), 0.92, 4.0, hidden_seed(14),
                  "a batch of oblong images scaled down slightly and turned by a small angle")]  # fmt: skip
    for (n, h, w), factor, degrees, seed, about in rows:
        x = _random_images(n, h, w, seed)
        yield Case(f"scale_and_rotate(x of shape {tuple(x.shape)}, factor={factor}, degrees={degrees})",
                   (x, factor, degrees), expect=_ref_rotate_by(_ref_scale_by(x, factor), degrees),
                   rtol=1e-4, atol=1e-4, hint=_HALF_PIXEL_HINT if factor != 1 else None, about=about)  # fmt: skip


def _nearest_rotation(x: torch.Tensor, degrees: float) -> torch.Tensor:
    import torchvision.transforms.v2.functional as TF

    return TF.rotate(x, float(degrees))  # torchvision's default: nearest neighbour


def _rotated(case, how: str):
    """What a mistaken rotation gives: ``how`` is "backwards", "nearest" or "none" (None when
    the case does not rotate)."""
    x, factor, degrees = case.args
    if not degrees:
        return None
    scaled = _ref_scale_by(x, factor)
    if how == "backwards":
        return _ref_rotate_by(scaled, -degrees)
    return _nearest_rotation(scaled, degrees) if how == "nearest" else scaled


check_scale_and_rotate = Exercise(
    "check_scale_and_rotate", "scale_and_rotate", _scale_and_rotate_cases,
    forbid=("circuitscope.methods.optvis.transform:scale_by", "circuitscope.methods.optvis.transform:rotate_by",),
    doc="""Check ``fn(x, factor, degrees)`` (exercise 3): resize to ``int(factor * H), int(factor * W)``
    (bilinear, half-pixel centres, no antialiasing), then rotate counter-clockwise by ``degrees``
    about the centre (bilinear, zeros from outside).""",
    mistakes=[
        Mistake("the new size is (int(factor * H), int(factor * W)); a rotation keeps the size",
                when=lambda case, got: _is_tensor(got) and tuple(got.shape) != tuple(case.expect.shape)),
        Mistake("the rotation goes the wrong way: positive degrees turn the image counter-clockwise",
                result=lambda case: _rotated(case, "backwards")),
        Mistake("rotate with BILINEAR interpolation (torchvision's rotate defaults to nearest: pass "
                "interpolation=InterpolationMode.BILINEAR)", result=lambda case: _rotated(case, "nearest")),
        Mistake("the image was not rotated", result=lambda case: _rotated(case, "none")),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 4: the Fourier parameterization
# =============================================================================================
_ZERO_FREQUENCY_HINT = "a division by a zero frequency? (the constant term has f = 0)"
_FOURIER_HINT = "scale each coefficient by sqrt(H * W) / max(f, 1 / max(H, W)) ** decay_power, then irfft2 and / 4"


def _fourier_reference(spectrum: torch.Tensor, size: tuple[int, int], decay_power: float) -> torch.Tensor:
    """The library's ``FourierImage.raw()`` for this spectrum: ``(N, 3, H, W)``."""
    img = _RefFourier(spectrum.shape[0], size, sd=0.0, decay_power=decay_power, decorrelate=False)
    with torch.no_grad():
        img.spectrum.copy_(spectrum)
        return img.raw()


def _fourier_cases(hidden: bool):
    """Exact cases ``(spectrum: (N, 3, H, W // 2 + 1, 2), (H, W), decay_power)``, then the property
    that matters: the amplitude spectrum of 32 random images falls as ``1 / f ** decay_power``."""
    # (n, size, decay_power, the spectrum's seed, what a hidden case tests: None for a visible one)
    rows = [(1, (16, 16), 1.0, 20, None), (2, (12, 20), 1.0, 21, None)]
    if hidden:
        rows += [(1, (15, 15), 2.0, hidden_seed(22), "an odd-sized square image with a steeper decay"),
                 (3, (8, 11), 0.5, hidden_seed(23), "a batch of oblong images with an odd width and a gentler decay"),
                 (1, (32, 32), 1.0, hidden_seed(24), "a larger square image")]  # fmt: skip
    for n, (h, w), decay, seed, about in rows:
        spectrum = torch.randn(n, 3, h, w // 2 + 1, 2, generator=_gen(seed))
        yield Case(f"fourier_image(spectrum of shape {tuple(spectrum.shape)}, size={(h, w)}, decay_power={decay})",
                   (spectrum, (h, w), decay), verify=_fourier_matches,
                   data={"expected": _fourier_reference(spectrum, (h, w), decay).double()},
                   rtol=1e-4, atol=1e-4, hint=_FOURIER_HINT, about=about)  # fmt: skip
    # (decay_power, seed, about: set on the visible case too, which comes after the hidden ones)
    spectra = [(1.0, 99, "the amplitude spectrum of many random images (it must fall with frequency)")]
    if hidden:
        spectra += [(2.0, hidden_seed(99), "the amplitude spectrum of many random images, with a steeper decay")]
    for decay, seed, about in spectra:
        spectrum = torch.randn(32, 3, 32, 17, 2, generator=_gen(seed))
        yield Case(f"the amplitude spectrum of fourier_image(..., decay_power={decay})",
                   (spectrum, (32, 32), decay), verify=_spectrum_falls, data={"decay": decay},
                   hint="divide each coefficient by its frequency ** decay_power", about=about)  # fmt: skip


def _fourier_matches(case, got) -> None:
    """``got`` equals the reference; an image off by one overall factor gets a hint naming it."""
    expected = case.data["expected"]
    try:
        compare(got, expected, case.label, case.rtol, case.atol)
    except CheckFailed as failure:
        if _is_tensor(got, tuple(expected.shape)) and bool(torch.isfinite(got).all()):
            flat, ref = got.double().flatten(), expected.flatten()
            ratio = float(flat @ ref / (ref @ ref))
            if same(got, expected * ratio, 1e-3, 1e-4):
                failure.hint = (f"right shape of spectrum, wrong overall scale (yours is {ratio:.4g} times "
                                "the expected image): multiply by sqrt(H * W) and divide the inverse FFT by 4")
        raise


def _spectrum_falls(case, got) -> None:
    """The log-log slope of ``got``'s amplitude spectrum is ``-decay_power`` (within 0.1)."""
    decay = case.data["decay"]
    got = expect_tensor(got, (32, 3, 32, 32), case.label)
    slope = _spectrum_slope(got)
    if not abs(slope + decay) < 0.1:
        fail(f"{case.label} does not fall as 1/f^{decay}", expected=f"log-log slope {-decay}", got=f"{slope:.3f}")


def _spectrum_slope(images: torch.Tensor) -> float:
    """Least-squares slope of log amplitude against log frequency (DC and Nyquist left out)."""
    h, w = images.shape[-2:]
    amplitude = torch.fft.rfft2(images).abs().mean(dim=(0, 1))
    f = _ref_frequencies(h, w).expand_as(amplitude)
    inner = (f > 1.5 / w) & (torch.arange(w // 2 + 1) < w // 2)
    x, y = f[inner].log(), amplitude[inner].double().log()
    return float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


def _growing_spectrum(case):
    """What dividing by ``f ** -decay_power`` (multiplying) gives, on an exact case."""
    if "expected" not in case.data:
        return None
    spectrum, size, decay = case.args
    return _fourier_reference(spectrum, size, -decay)


check_fourier_image = Exercise(
    "check_fourier_image", "fourier_image", _fourier_cases,
    doc="""Check ``fn(spectrum, size, decay_power) -> (N, 3, H, W)`` (exercise 4):
    ``irfft2(complex(spectrum) * scale, s=size) / 4`` with
    ``scale = sqrt(H W) / max(f, 1 / max(H, W)) ** decay_power``.""",
    mistakes=[
        Mistake(_ZERO_FREQUENCY_HINT, when=_not_finite),
        Mistake("the amplitude must FALL with frequency: divide by f ** decay_power, do not multiply",
                result=_growing_spectrum),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 5: decorrelated colours
# =============================================================================================
def _to_rgb_cases(hidden: bool):
    """``t: (N, 3, H, W)`` unbounded: the reference is the library's to_rgb(decorrelate=True)."""
    shapes = [((1, 3, 4, 4), 30, None), ((2, 3, 5, 7), 31, None)]  # (shape, seed, about: hidden cases only)
    shapes += [((3, 3, 1, 1), hidden_seed(32), "a batch of single-pixel images"),
               ((1, 3, 16, 9), hidden_seed(33), "a larger oblong image")] if hidden else []  # fmt: skip
    for shape, seed, about in shapes:
        t = torch.randn(*shape, generator=_gen(seed)) * 2
        yield Case(f"to_rgb(t of shape {shape})", (t,), expect=_ref_to_rgb(t, decorrelate=True),
                   rtol=1e-5, atol=1e-6, about=about)


def _colours(matrix: torch.Tensor, transposed: bool = False, sigmoid: bool = True):
    """A mistake's result: ``result(case)`` for ``matrix`` applied to each pixel (or its transpose)."""
    def result(case):
        (t,) = case.args
        out = torch.einsum("ji,njhw->nihw" if transposed else "ij,njhw->nihw", matrix, t)
        return torch.sigmoid(out) if sigmoid else out

    return result


check_to_rgb = Exercise(
    "check_to_rgb", "to_rgb", _to_rgb_cases,
    forbid=("circuitscope.methods.optvis.param:to_rgb", "circuitscope.methods.optvis.param:decorrelate_colors",),
    doc="""Check ``fn(t) -> (N, 3, H, W)`` in (0, 1) (exercise 5): each pixel's 3-vector times the
    colour correlation matrix normalised by its largest column norm, then a sigmoid.""",
    mistakes=[
        Mistake(f"divide the matrix by its largest column norm ({_MAX_NORM:.7f}) first",
                result=_colours(_CORRELATION)),
        Mistake("the matrix is applied as M @ v for each pixel's colour vector v (rows give R, G, B): "
                "you used its transpose", result=_colours(_NORMALIZED, transposed=True)),
        Mistake("finish with a sigmoid, so the colours lie in (0, 1)",
                result=lambda case: _ref_decorrelate(case.args[0])),
        Mistake("normalise by the largest COLUMN norm (M.norm(dim=0).max()), not the largest row norm",
                result=_colours(_CORRELATION / _CORRELATION.norm(dim=1).max())),
    ],
)  # fmt: skip


# =============================================================================================
# Exercises 6-8: objectives on fixed activations
# =============================================================================================
def _acts(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=_gen(seed))


def _neuron_cases(hidden: bool):
    """``(acts: (N, C, H, W), n[, x][, y])``. Positions at the edges (x=0, y=0, W-1, H-1) and x or y
    alone: 0 is a real position, not a missing one. A position left out is passed as nothing."""
    # (shape, n, x, y, the activations' seed)
    rows = [((2, 5, 7, 7), 3, None, None, 40), ((1, 4, 6, 8), 1, None, None, 41), ((3, 6, 5, 9), 2, 7, 1, 42),
            ((2, 3, 5, 7), 2, 0, 4, 43), ((1, 4, 6, 9), 0, 8, 0, 44), ((2, 3, 6, 5), 1, 0, None, 45)]  # fmt: skip
    rows = [(*row, None) for row in rows]  # the last item: what a hidden case tests (None for a visible one)
    if hidden:
        rows += [((2, 3, 4, 4), 0, 0, 3, hidden_seed(46),
                  "the left column (x = 0) and the bottom row of a square map, on the first channel"),
                 ((1, 8, 9, 3), 7, None, None, hidden_seed(47),
                  "the default centre of a tall, narrow map, on the last channel"),
                 ((2, 2, 6, 6), 1, 5, 0, hidden_seed(48),
                  "the right column and the top row (y = 0) of an even-sized square map"),
                 ((1, 5, 7, 6), 4, None, 0, hidden_seed(49),
                  "y = 0 given alone (the top row), x left to its default on an even width"),
                 ((2, 3, 5, 8), 1, 0, 0, hidden_seed(50), "x = 0 and y = 0 both given (the top-left corner)"),
                 ((1, 2, 4, 6), 1, 5, 3, hidden_seed(51), "the bottom-right corner of an even-sized oblong map")]  # fmt: skip
    for shape, n, x, y, seed, about in rows:
        acts = _acts(*shape, seed=seed)
        given = {name: v for name, v in (("x", x), ("y", y)) if v is not None}
        args, kwargs = ((acts, n, x, y), {}) if len(given) == 2 else ((acts, n), given)
        where = "".join(f", {name}={v}" for name, v in given.items())
        yield Case(f"neuron_objective(acts of shape {shape}, n={n}{where})", args, kwargs,
                   expect=_ref_neuron("a", n, x, y)({"a": acts}), rtol=1e-6, atol=1e-6,
                   data={"x": x, "y": y}, about=about)  # fmt: skip


def _where(case, default, missing=lambda v: v is None) -> tuple[int, int]:
    """The ``(row, column)`` a learner's code picks: ``default(size)`` where ``missing(y)`` (or x)."""
    h, w = case.args[0].shape[-2:]
    x, y = case.data["x"], case.data["y"]
    return (default(h) if missing(y) else y, default(w) if missing(x) else x)


def _neuron_at(case, row: int, column: int):
    """``acts[:, n, row, column]``: what a mistaken position gives (None when out of range)."""
    acts, n = case.args[:2]
    h, w = acts.shape[-2:]
    return acts[:, n, row, column] if 0 <= row < h and 0 <= column < w else None


def _half(size: int) -> int:
    return size // 2


check_neuron_objective = Exercise(
    "check_neuron_objective", "neuron_objective", _neuron_cases,
    forbid=("circuitscope.methods.optvis.objectives:neuron",),
    doc="""Check ``fn(acts, n, x=None, y=None) -> (N,)`` (exercise 6): channel ``n`` at column ``x``,
    row ``y``; the centre ``(H // 2, W // 2)`` by default (x=0 and y=0 are positions like any other).""",
    mistakes=[
        Mistake("x=0 is a real position, the left column: test `x is None`, not `not x` "
                "(likewise y=0, the top row)",
                result=lambda case: _neuron_at(case, *_where(case, _half, missing=lambda v: not v))
                if 0 in (case.data["x"], case.data["y"]) else None),
        Mistake("x is the column (last dimension), y the row: acts[:, n, y, x]",
                result=lambda case: _neuron_at(case, *reversed(_where(case, _half)))),
        Mistake("the centre is (H // 2, W // 2), as in Lucid (with an even size, the lower right of the "
                "middle 2x2)",
                result=lambda case: _neuron_at(case, *_where(case, lambda size: (size - 1) // 2))
                if None in (case.data["x"], case.data["y"]) else None),
        Mistake("that is the channel objective (mean over positions); a neuron is one position",
                result=lambda case: case.args[0][:, case.args[1]].flatten(1).mean(1)),
    ],
    # every x, y the cases pass is in range: an index out of bounds means rows and columns swapped
    errors={"IndexError: out of bounds": "x is the column (last dimension), y the row: acts[:, n, y, x]"},
)  # fmt: skip


def _direction_cases(hidden: bool):
    """``(acts: (N, C, H, W), vector: (C,))``, random or one-hot (which gives the channel objective)."""
    # (shape, one-hot channel or None, the activations' seed, the vector's seed)
    # ..., what a hidden case tests (None for a visible one)
    rows = [((2, 5, 4, 4), None, 50, 60, None), ((1, 6, 3, 5), 2, 51, 61, None)]
    if hidden:
        rows += [((3, 4, 1, 1), None, hidden_seed(52), hidden_seed(62),
                  "a random vector on a batch of single-position maps"),
                 ((2, 7, 6, 2), None, hidden_seed(53), hidden_seed(63), "a random vector on tall, narrow maps"),
                 ((1, 3, 8, 8), 0, hidden_seed(54), hidden_seed(64),
                  "a one-hot vector on the first channel (it must give the channel objective)")]  # fmt: skip
    for shape, hot, acts_seed, vector_seed, about in rows:
        acts, c = _acts(*shape, seed=acts_seed), shape[1]
        vector = torch.randn(c, generator=_gen(vector_seed)) if hot is None else torch.nn.functional.one_hot(
            torch.tensor(hot), c).float()  # fmt: skip
        kind = "random" if hot is None else f"one-hot channel {hot}"
        yield Case(f"direction_objective(acts of shape {shape}, vector={kind})", (acts, vector),
                   expect=_ref_direction("a", vector)({"a": acts}), rtol=1e-5, atol=1e-5, about=about)  # fmt: skip


check_direction_objective = Exercise(
    "check_direction_objective", "direction_objective", _direction_cases,
    forbid=("circuitscope.methods.optvis.objectives:direction",),
    doc="""Check ``fn(acts, vector) -> (N,)`` (exercise 7): the mean over positions of each position's
    activation vector dotted with ``vector``; a one-hot vector gives the channel objective.""",
    mistakes=[
        Mistake("take the MEAN over positions, not the sum (so a one-hot vector gives the channel objective)",
                result=lambda case: torch.einsum("nchw,c->n", *case.args)),
        Mistake("do not normalise the vector: the objective is linear in it",
                result=lambda case: case.expect / case.args[1].norm()),
    ],
)  # fmt: skip


def _gram_similarities(acts: torch.Tensor, normalise: bool) -> torch.Tensor:
    """``(N, N)``: the inner products of the images' Gram matrices (cosines if ``normalise``)."""
    flat = acts.reshape(acts.shape[0], acts.shape[1], -1)
    grams = (flat @ flat.transpose(1, 2)).reshape(acts.shape[0], -1)
    grams = grams / grams.norm(dim=1, keepdim=True) if normalise else grams
    return grams @ grams.T


def _sum_over_others(sims: torch.Tensor) -> torch.Tensor:
    """``(N,)``: each row of ``sims: (N, N)`` summed over ``j != i``."""
    return sims.sum(1) - sims.diagonal()


def _diversity_cases(hidden: bool):
    """``acts: (N, C, H, W)`` after a ReLU; then a batch of 3 identical images (2 each)."""
    shapes = [((3, 4, 5, 5), 70, None), ((2, 6, 3, 3), 71, None)]  # (shape, seed, about: hidden cases only)
    shapes += [((1, 4, 2, 2), hidden_seed(72), "a batch of a single image (there are no other images)"),
               ((5, 3, 4, 6), hidden_seed(73), "a larger batch of oblong maps")] if hidden else []  # fmt: skip
    for shape, seed, about in shapes:
        acts = _acts(*shape, seed=seed).relu()
        yield Case(f"diversity_objective(acts of shape {shape})", (acts,), expect=_ref_diversity("a")({"a": acts}),
                   rtol=1e-4, atol=1e-5, hint="G_i = A_i A_i^T with A_i the (C, H*W) activations of image i, "
                   "divided by its norm; sum <G_i, G_j> over j != i", about=about)  # fmt: skip
    identical = _acts(1, 4, 3, 3, seed=79).relu().expand(3, -1, -1, -1).contiguous()
    yield Case("diversity_objective(3 identical images)", (identical,), expect=torch.full((3,), 2.0),
               rtol=1e-4, atol=1e-5, about="a batch of identical images",
               hint="identical images have cosine similarity 1 with each of the 2 others")  # fmt: skip


check_diversity_objective = Exercise(
    "check_diversity_objective", "diversity_objective", _diversity_cases,
    forbid=("circuitscope.methods.optvis.objectives:diversity",),
    doc="""Check ``fn(acts) -> (N,)`` (exercise 8): for each image the sum over the OTHER images of
    the cosine similarity of their Gram matrices.""",
    mistakes=[
        Mistake("leave out each image's similarity to itself (j != i): it is always 1",
                result=lambda case: case.expect + 1),
        Mistake("normalise each Gram matrix to unit norm (a cosine similarity), or large activations dominate",
                result=lambda case: _sum_over_others(_gram_similarities(case.args[0], normalise=False))),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 9: the render loop
# =============================================================================================
# The model, objective, image and transform are course objects, rebuilt from a recipe on each
# side: the learner's loop runs on the kernel's copies, the reference loop on the grader's.
class ChannelMean:
    """The mean of channel ``channel``: ``acts (N, C, h, w) -> (N,)`` (linear in the activations)."""

    def __init__(self, channel: int):
        self.channel = channel

    def __call__(self, acts: torch.Tensor) -> torch.Tensor:
        return _channel_mean(self.channel)(acts)


class DiverseChannel(ChannelMean):
    """``ChannelMean(channel) - weight * diversity``: NOT linear in the activations, and it couples
    the images of a batch. A loop that sums the activations over the batch before the objective,
    or optimises the images one by one, matches the reference on a linear objective, not here."""

    def __init__(self, channel: int, weight: float = 0.5):
        super().__init__(channel)
        self.weight = weight

    def __call__(self, acts: torch.Tensor) -> torch.Tensor:
        return super().__call__(acts) - self.weight * _ref_diversity("a")({"a": acts})


class FixedShift:
    """A deterministic, differentiable transform: pad 2 (grey), crop back at offset (1, 2).
    Counts its calls, so the check knows it ran once per step."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return _ref_jitter_by(_ref_pad(x, 2, 0.5), 1, 2, 4)


def fft_image(n: int, size: int, seed: int):
    """``n`` seeded Fourier-parameterized images of ``size`` px (``image()``: ``(n, 3, size, size)``)."""
    return _ref_image(size, batch=n, param="fft", sd=0.01, generator=_gen(seed))


def render_side_effects(model, objective, image, transform, steps, lr) -> dict:
    """What the learner's loop left behind: ``{"model_grad": sum of |.grad| over the model's
    parameters (0.0 if none), "transform_calls": how many times the transform ran}``.

    Observed in the kernel after the call: it proves what an honest kernel did (backward() reached
    the weights, the transform ran once per step); it cannot prove it against a kernel that
    rewrites the library or these objects, which can misreport it.
    """
    grad = sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None)
    return {"model_grad": grad, "transform_calls": transform.calls}


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


def _render_loop_cases(hidden: bool):
    """``(model, objective, image, transform, steps, lr)``, all four objects recipes: a planted conv +
    ReLU, a channel mean (or a non-linear, batch-coupled objective), seeded FFT images, a fixed shift.
    The whole run is deterministic: the reference loop runs here on its own copies."""
    # (n, size, steps, lr, channel, diversity weight or None, the seed of the conv's weights and the images)
    # ..., what a hidden case tests (None for a visible one)
    rows = [(1, 16, 12, 0.05, 0, None, 0, None), (2, 16, 12, 0.05, 1, None, 1, None),
            (2, 16, 12, 0.05, 2, 0.5, 6, None)]
    if hidden:
        rows += [(3, 20, 20, 0.1, 2, None, hidden_seed(2),
                  "a batch of several larger images on a channel objective, over more steps"),
                 (1, 12, 6, 0.02, 3, None, hidden_seed(3), "a single small image over few steps, on another channel"),
                 (3, 16, 15, 0.05, 3, 1.0, hidden_seed(7),
                  "a batch of images on a non-linear objective that couples them (a channel minus diversity)")]  # fmt: skip
    for n, size, steps, lr, channel, weight, seed, about in rows:
        if weight is None:
            objective, what = Recipe("circuitscope.checks.ch2:ChannelMean", channel=channel), f"channel {channel}"
        else:
            objective = Recipe("circuitscope.checks.ch2:DiverseChannel", channel=channel, weight=weight)
            what = f"channel {channel} - {weight} * diversity"
        args = (Recipe("circuitscope.checks.ch2:planted_conv", seed=seed), objective,
                Recipe("circuitscope.checks.ch2:fft_image", n=n, size=size, seed=seed),
                Recipe("circuitscope.checks.ch2:FixedShift"), steps, lr)  # fmt: skip
        yield Case(f"render_loop(planted conv, {what}, {n} images of {size} px, {steps} steps, lr {lr})", args,
                   verify=_render_loop_verify, observe="circuitscope.checks.ch2:render_side_effects", about=about,
                   data={"n": n, "size": size, "steps": steps,
                         "reference": _ref_render_loop(*build(args))})  # fmt: skip


def _render_values(got, label: str) -> list[float]:
    """The learner's values as a list of floats (a list of numbers or 1-element tensors, or a tensor)."""
    if isinstance(got, torch.Tensor):
        got = got.flatten().tolist()
    if isinstance(got, (list, tuple)):
        try:
            return [float(v) for v in got]
        except (TypeError, ValueError, RuntimeError) as err:
            fail(f"{label}: values should be numbers", expected="a list of floats", got=str(err))
    fail(f"{label}: values should be numbers", expected="a list of floats", got=type(got).__name__)


def _render_loop_verify(case, got) -> None:
    """In the old check's order: ``(images, values)``; the model's weights got no gradient; images in
    [0, 1]; the transform ran once per step; ``steps`` values that rise; both as the reference's."""
    label, steps = case.label, case.data["steps"]
    n, size = case.data["n"], case.data["size"]
    if not (isinstance(got, tuple) and len(got) == 2):
        fail(f"{label} should return (images, values)", expected="a tuple of 2", got=type(got).__name__)
    images, values = got
    images = expect_tensor(images, (n, 3, size, size), f"{label}: the images")
    seen = case.observed
    if not isinstance(seen, dict):
        fail(f"{label}: the model and the transform could not be inspected after the call", got=repr(seen))
    if seen["model_grad"] > 0:
        fail(f"{label} computed gradients for the model's weights",
             expected="no .grad on the model's parameters", got="the model's weights have gradients",
             hint="differentiate with respect to the image only: torch.autograd.grad(loss, "
             "image.parameters()) (or set requires_grad_(False) on the model)")  # fmt: skip
    if float(images.min()) < 0 or float(images.max()) > 1:
        fail(f"{label}: images outside [0, 1]", expected="values in [0, 1]", got=_summary(images),
             hint="return image(), which the sigmoid keeps in [0, 1]")  # fmt: skip
    if seen["transform_calls"] != steps:
        calls = seen["transform_calls"]
        fail(f"{label}: the transform ran {calls} times", expected=f"once per step ({steps})", got=calls,
             hint="transform the image every step, before the model sees it")
    values = _render_values(values, label)
    if len(values) != steps:
        fail(f"{label}: wrong number of values", expected=steps, got=len(values),
             hint="append the objective's value once per step")  # fmt: skip
    if not values[-1] > values[0]:
        fail(f"{label}: the objective did not rise", expected=f"last value > first ({values[0]:.4g})",
             got=f"{values[-1]:.4g}", hint="maximise: minimise the loss -objective (mind the sign)")  # fmt: skip
    ref_images, ref_values = case.data["reference"]
    if not same(torch.tensor(values), torch.tensor(ref_values), 1e-3, 1e-5):
        fail(f"{label}: the objective values differ from the reference loop's",
             expected=[round(v, 5) for v in ref_values[:4]] + ["..."],
             got=[round(v, 5) for v in values[:4]] + ["..."],
             hint="use torch.optim.Adam(image.parameters(), lr=lr); each step evaluate "
             "objective(model(transform(image()))).sum() BEFORE the update and record it; clear "
             "the old gradient every step")  # fmt: skip
    try:
        compare(images, ref_images.double(), f"{label}: the final images", 1e-3, 1e-4)
    except CheckFailed as failure:
        fail(failure.what, failure.expected, failure.got, hint="return image() after the last step")


check_render_loop = Exercise(
    "check_render_loop", "render_loop", _render_loop_cases,
    forbid=("circuitscope.methods.optvis.render:render",),
    doc="""Check ``fn(model, objective, image, transform, steps, lr) -> (images, values)`` (exercise 9).

    Adam on ``image.parameters()`` maximising ``objective(model(transform(image()))).sum()``;
    ``images: (N, 3, H, W)`` in [0, 1] (detached), ``values``: the ``steps`` objective values; the
    model's parameters get no gradient. With fixed transforms the whole run is deterministic, so
    it is compared with the reference loop.""",
)  # fmt: skip
