"""Chapter 2: its exercise checks and its figure helper.

* Checks: each passes on the solution notebook's reference code (visible and hidden cases) and
  fails, with the right hint, on the untouched stub and on plausible mistakes (the table below
  and every entry of ``tests/mistakes/ch2_feature_visualization.py``).
* The solution notebook's layout is checked for every chapter in tests/test_course.py.
* ``plotting.image_grid`` stamps the weights that made the images.

The chapter page and the notebooks are executed by the generic book and course tests.
"""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_harness import (
    PRIVATE_KEYS,
    OverTheWire,
    assert_check_passes,
    assert_hidden_cases_change,
    assert_mistake_fails,
    assert_passes_over_the_wire,
    assert_stub_fails,
    graded_checks,
    load_mistakes,
    mistake_function,
    private_key,
    reference_functions,
    solution_cells,
    stub_functions,
)

import circuitscope as cs
from circuitscope import optvis, plotting
from circuitscope.checks import CheckFailed
from circuitscope.checks import ch2 as checks
from circuitscope.optvis.param import COLOR_CORRELATION_SVD_SQRT

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ch2_feature_visualization" / "ch2_exercises.ipynb"
ASSIGNMENT_ID = "ch2_feature_visualization"

EXERCISES = {  # check -> (the function the notebook defines, its solution cell's grade_id)
    "check_pixel_ascent": ("pixel_ascent", "ch2-pixel-ascent"),
    "check_pad_and_jitter": ("pad_and_jitter", "ch2-pad-and-jitter"),
    "check_scale_and_rotate": ("scale_and_rotate", "ch2-scale-and-rotate"),
    "check_fourier_image": ("fourier_image", "ch2-fourier-image"),
    "check_to_rgb": ("to_rgb", "ch2-to-rgb"),
    "check_neuron_objective": ("neuron_objective", "ch2-neuron-objective"),
    "check_direction_objective": ("direction_objective", "ch2-direction-objective"),
    "check_diversity_objective": ("diversity_objective", "ch2-diversity-objective"),
    "check_render_loop": ("render_loop", "ch2-render-loop"),
}
FUNCTIONS = {fn for fn, _ in EXERCISES.values()}


def _namespace() -> dict:
    """What the solution notebook's setup cell defines (without loading the model)."""
    return {"math": math, "np": np, "torch": torch, "F": F, "cs": cs, "optvis": optvis,
            "COLOR_CORRELATION_SVD_SQRT": COLOR_CORRELATION_SVD_SQRT}  # fmt: skip


@pytest.fixture(scope="module")
def reference():
    return reference_functions(SOLUTION, _namespace())


@pytest.fixture(scope="module")
def stub():
    return stub_functions(SOLUTION, _namespace())


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes(reference, check, hidden, capsys):
    assert_check_passes(getattr(checks, check), reference[EXERCISES[check][0]], hidden, capsys, seconds=10)


@pytest.mark.parametrize("key", PRIVATE_KEYS)
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_the_hidden_cases_under_private_keys(reference, check, key, capsys):
    with private_key(key):
        assert_check_passes(getattr(checks, check), reference[EXERCISES[check][0]], True, capsys, seconds=10)


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_hidden_cases_change_with_the_key(check):
    assert_hidden_cases_change(getattr(checks, check))


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_stub_fails(stub, check):
    assert_stub_fails(getattr(checks, check), stub[EXERCISES[check][0]])


# Plausible mistakes: (check, hidden cases needed, words the hint must contain, code).
MISTAKES = {
    "ascent: no clamp": (
        "check_pixel_ascent",
        False,
        "clamp the pixels",
        """
        def pixel_ascent(objective, images, steps, lr):
            x = images.detach().clone()
            for _ in range(steps):
                x.requires_grad_(True)
                (grad,) = torch.autograd.grad(objective(x).sum(), x)
                x = x.detach() + lr * grad
            return x
    """,
    ),
    "ascent: gradients accumulate": (
        "check_pixel_ascent",
        False,
        "accumulate",
        """
        def pixel_ascent(objective, images, steps, lr):
            x = images.detach().clone().requires_grad_(True)
            for _ in range(steps):
                objective(x).sum().backward()
                with torch.no_grad():
                    x += lr * x.grad
                    x.clamp_(0, 1)
            return x.detach()
    """,
    ),
    "ascent: clamps once, after an unclamped loop": (
        "check_pixel_ascent",
        False,
        "after EVERY step",
        """
        def pixel_ascent(objective, images, steps, lr):
            x = images.detach().clone()
            for _ in range(steps):
                x.requires_grad_(True)
                (grad,) = torch.autograd.grad(objective(x).sum(), x)
                x = x.detach() + lr * grad
            return x.clamp(0, 1)
    """,
    ),
    "ascent: modifies its input": (
        "check_pixel_ascent",
        False,
        "copy",
        """
        def pixel_ascent(objective, images, steps, lr):
            x = images
            for _ in range(steps):
                x.requires_grad_(True)
                (grad,) = torch.autograd.grad(objective(x).sum(), x)
                with torch.no_grad():
                    x += lr * grad
                    x.clamp_(0, 1)
                x.requires_grad_(False)
            return x.detach()
    """,
    ),
    "jitter: dy and dx swapped": (
        "check_pad_and_jitter",
        False,
        "row offset",
        """
        def pad_and_jitter(x, width, dy, dx, d, value=0.5):
            padded = F.pad(x, (width,) * 4, value=value)
            h, w = padded.shape[-2:]
            return padded[..., dx : dx + h - d, dy : dy + w - d]
    """,
    ),
    "jitter: crops d from each end": (
        "check_pad_and_jitter",
        False,
        "not d from each end",
        """
        def pad_and_jitter(x, width, dy, dx, d, value=0.5):
            padded = F.pad(x, (width,) * 4, value=value)
            h, w = padded.shape[-2:]
            return padded[..., dy : dy + h - 2 * d, dx : dx + w - 2 * d]
    """,
    ),
    "scale: align_corners=True": (
        "check_scale_and_rotate",
        False,
        "half-pixel",
        """
        def scale_and_rotate(x, factor, degrees):
            import torchvision.transforms.v2.functional as TF
            h, w = x.shape[-2:]
            x = F.interpolate(x, size=(int(factor * h), int(factor * w)), mode="bilinear", align_corners=True)
            return TF.rotate(x, float(degrees), interpolation=TF.InterpolationMode.BILINEAR)
    """,
    ),
    "rotate: nearest neighbour": (
        "check_scale_and_rotate",
        False,
        "BILINEAR",
        """
        def scale_and_rotate(x, factor, degrees):
            import torchvision.transforms.v2.functional as TF
            h, w = x.shape[-2:]
            size = [int(factor * h), int(factor * w)]
            if size != [h, w]:
                x = TF.resize(x, size, antialias=False)
            return TF.rotate(x, float(degrees))
    """,
    ),
    "fourier: no sqrt(HW) and / 4": (
        "check_fourier_image",
        False,
        "overall scale",
        """
        def fourier_image(spectrum, size, decay_power=1.0):
            h, w = size
            f = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)
            scale = 1 / f.clamp_min(1.0 / max(h, w)) ** decay_power
            return torch.fft.irfft2(torch.view_as_complex(spectrum.contiguous()) * scale, s=(h, w))
    """,
    ),
    "fourier: division by zero at f = 0": (
        "check_fourier_image",
        False,
        "zero frequency",
        """
        def fourier_image(spectrum, size, decay_power=1.0):
            h, w = size
            f = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)
            scale = math.sqrt(h * w) / f ** decay_power
            return torch.fft.irfft2(torch.view_as_complex(spectrum.contiguous()) * scale, s=(h, w)) / 4
    """,
    ),
    "rgb: transposed matrix": (
        "check_to_rgb",
        False,
        "transpose",
        """
        def to_rgb(t):
            m = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()
            return torch.sigmoid(torch.einsum("ji,njhw->nihw", m, t))
    """,
    ),
    "rgb: no sigmoid": (
        "check_to_rgb",
        False,
        "sigmoid",
        """
        def to_rgb(t):
            m = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()
            return torch.einsum("ij,njhw->nihw", m, t)
    """,
    ),
    "neuron: centre (H - 1) // 2": (
        "check_neuron_objective",
        False,
        "H // 2",
        """
        def neuron_objective(acts, n, x=None, y=None):
            h, w = acts.shape[-2:]
            y = (h - 1) // 2 if y is None else y
            x = (w - 1) // 2 if x is None else x
            return acts[:, n, y, x]
    """,
    ),
    "neuron: x = x or W // 2 (0 taken for missing)": (
        "check_neuron_objective",
        False,
        "x=0 is a real position, the left column: test `x is None`, not `not x`",
        """
        def neuron_objective(acts, n, x=None, y=None):
            h, w = acts.shape[-2:]
            x = x or w // 2
            y = y or h // 2
            return acts[:, n, y, x]
    """,
    ),
    "neuron: the channel mean": (
        "check_neuron_objective",
        False,
        "channel objective",
        """
        def neuron_objective(acts, n, x=None, y=None):
            return acts[:, n].mean(dim=(1, 2))
    """,
    ),
    "direction: normalised vector": (
        "check_direction_objective",
        False,
        "do not normalise",
        """
        def direction_objective(acts, vector):
            v = vector / vector.norm()
            return torch.einsum("nchw,c->nhw", acts, v).mean(dim=(1, 2))
    """,
    ),
    "diversity: Gram matrices not normalised": (
        "check_diversity_objective",
        False,
        "unit norm",
        """
        def diversity_objective(acts):
            n, c = acts.shape[:2]
            flat = acts.reshape(n, c, -1)
            grams = (flat @ flat.transpose(1, 2)).reshape(n, -1)
            sims = grams @ grams.T
            return sims.sum(1) - sims.diagonal()
    """,
    ),
    "render: descends": (
        "check_render_loop",
        False,
        "mind the sign",
        """
        def render_loop(model, objective, image, transform, steps=32, lr=0.05):
            params = list(image.parameters())
            optimizer = torch.optim.Adam(params, lr=lr)
            values = []
            for _ in range(steps):
                value = objective(model(transform(image()))).sum()
                for p, g in zip(params, torch.autograd.grad(value, params)):
                    p.grad = g
                optimizer.step()
                values.append(float(value.detach()))
            return image().detach(), values
    """,
    ),
    "render: no transform": (
        "check_render_loop",
        False,
        "every step",
        """
        def render_loop(model, objective, image, transform, steps=32, lr=0.05):
            params = list(image.parameters())
            optimizer = torch.optim.Adam(params, lr=lr)
            values = []
            for _ in range(steps):
                value = objective(model(image())).sum()
                for p, g in zip(params, torch.autograd.grad(-value, params)):
                    p.grad = g
                optimizer.step()
                values.append(float(value.detach()))
            return image().detach(), values
    """,
    ),
    # A linear objective (a channel mean) cannot tell the batch's activations summed before the
    # objective from the objective summed after it: the non-linear, batch-coupled case can.
    "render: objective on the batch's summed activations": (
        "check_render_loop",
        False,
        "the objective values differ from the reference loop's",
        """
        def render_loop(model, objective, image, transform, steps=32, lr=0.05):
            params = list(image.parameters())
            optimizer = torch.optim.Adam(params, lr=lr)
            values = []
            for _ in range(steps):
                value = objective(model(transform(image())).sum(0, keepdim=True)).sum()
                for p, g in zip(params, torch.autograd.grad(-value, params)):
                    p.grad = g
                optimizer.step()
                values.append(float(value.detach()))
            return image().detach(), values
    """,
    ),
    "render: SGD instead of Adam": (
        "check_render_loop",
        False,
        "Adam",
        """
        def render_loop(model, objective, image, transform, steps=32, lr=0.05):
            params = list(image.parameters())
            optimizer = torch.optim.SGD(params, lr=lr)
            values = []
            for _ in range(steps):
                value = objective(model(transform(image()))).sum()
                for p, g in zip(params, torch.autograd.grad(-value, params)):
                    p.grad = g
                optimizer.step()
                values.append(float(value.detach()))
            return image().detach(), values
    """,
    ),
}

# The round-trip submission's mistakes (one per exercise) and the hint each must give.
MODULE_HINTS = {
    "ch2-pixel-ascent": "went DOWN",
    "ch2-pad-and-jitter": "not with zeros",
    "ch2-scale-and-rotate": "wrong way",
    "ch2-fourier-image": "must FALL",
    "ch2-to-rgb": "0.4619524",
    "ch2-neuron-objective": "x is the column",
    "ch2-direction-objective": "MEAN over positions",
    "ch2-diversity-objective": "itself",
    "ch2-render-loop": "weights",
}


def _mistake(code: str):
    return mistake_function(code, _namespace(), FUNCTIONS)


def _fails_with(check: str, fn, hint: str, needs_hidden: bool = False) -> None:
    message = assert_mistake_fails(getattr(checks, check), fn, hint, needs_hidden)
    assert "expected" in message


def _assert_mistake_caught(name: str) -> None:
    check, needs_hidden, hint, code = MISTAKES[name]
    _fails_with(check, _mistake(code), hint, needs_hidden)


def _assert_round_trip_mistake_caught(grade_id: str) -> None:
    code = load_mistakes(ASSIGNMENT_ID)[grade_id]
    check = next(c for c, (_, gid) in EXERCISES.items() if gid == grade_id)
    _fails_with(check, _mistake(code), MODULE_HINTS[grade_id])
    # the visible cases catch it too: the learner sees it before grading
    with pytest.raises(CheckFailed):
        getattr(checks, check)(_mistake(code), hidden=False)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_plausible_mistake_fails_with_a_hint(name):
    _assert_mistake_caught(name)


@pytest.mark.parametrize("grade_id", sorted(MODULE_HINTS))
def test_round_trip_mistakes_fail_with_a_hint(grade_id):
    _assert_round_trip_mistake_caught(grade_id)


@pytest.mark.parametrize(
    "caught, name",
    [pytest.param(_assert_mistake_caught, name, id=name) for name in sorted(MISTAKES)]
    + [pytest.param(_assert_round_trip_mistake_caught, gid, id=f"round trip {gid}") for gid in sorted(MODULE_HINTS)],
)
def test_mistakes_fail_under_a_private_key(caught, name):
    # The hidden cases the grader runs (other values, the same shapes) catch them all the same.
    with private_key(PRIVATE_KEYS[0]):
        caught(name)


def test_every_exercise_has_mistakes():
    assert {check for check, *_ in MISTAKES.values()} == set(EXERCISES)
    assert set(load_mistakes(ASSIGNMENT_ID)) == set(MODULE_HINTS) == {gid for _, gid in EXERCISES.values()}
    assert set(load_mistakes(ASSIGNMENT_ID)) == set(solution_cells(nbformat.read(SOLUTION, as_version=4)))
    # each test cell calls the check EXERCISES names on the function it names
    assert graded_checks(SOLUTION) == EXERCISES


class _PatchedKernel(OverTheWire):
    """The grader and a kernel whose learner cell made every comparison succeed: the patch holds
    only while the kernel answers (its own process, in grading), not while the grader judges."""

    def __init__(self, fn, monkeypatch):
        super().__init__(fn)
        self.monkeypatch = monkeypatch

    def invoke(self, case):
        from circuitscope.checks import remote, wire

        request = wire.decode(wire.encode(wire.request(case, self.name)))
        with self.monkeypatch.context() as m:
            m.setattr(torch, "allclose", lambda *a, **k: True)
            m.setattr(torch, "isclose", lambda a, b, *r, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool))
            reply = wire.encode(remote.answer(request, self.namespace))
        return wire.decode(reply)


def test_checks_resist_a_patched_allclose(monkeypatch):
    # A learner cell that makes every comparison succeed in its kernel must not turn a failure into a
    # pass: the verdict is computed in the grader's process, from the result as data.
    from circuitscope.checks.runner import run

    with pytest.raises(CheckFailed, match="sigmoid"):
        run(checks.check_to_rgb, _PatchedKernel(_mistake(MISTAKES["rgb: no sigmoid"][3]), monkeypatch))


def test_only_the_nonlinear_objective_catches_batch_summed_activations():
    # the linear cases (a channel mean) pass it; the first failure is the diversity case's
    code = MISTAKES["render: objective on the batch's summed activations"][3]
    with pytest.raises(CheckFailed) as failure:
        checks.check_render_loop(_mistake(code), hidden=True)
    assert "diversity" in str(failure.value).splitlines()[0]


def test_an_equivalent_torchvision_solution_passes():
    code = """
        def scale_and_rotate(x, factor, degrees):
            import torchvision.transforms.v2.functional as TF
            h, w = x.shape[-2:]
            size = [int(factor * h), int(factor * w)]
            if size != [h, w]:
                x = TF.resize(x, size, antialias=False)
            return TF.rotate(x, float(degrees), interpolation=TF.InterpolationMode.BILINEAR)
    """
    checks.check_scale_and_rotate(_mistake(code), hidden=True)


# =============================================================================================
# Library: the figure helper
# =============================================================================================
def test_image_grid_says_which_weights_made_the_images(synthetic_model):
    images = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    fig = plotting.image_grid(images, [str(i) for i in range(5)], model=synthetic_model, columns=3, title="t")
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "SYNTHETIC WEIGHTS" in texts
    assert len([ax for ax in fig.axes if ax.images]) == 5 and len(fig.axes) == 6
    plain = plotting.image_grid(list(images[:2]), ["a", "b"])
    assert not plain.texts  # no model, no stamp: the images came from no model


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_over_the_wire(reference, check, capsys):
    assert_passes_over_the_wire(getattr(checks, check), reference[EXERCISES[check][0]], capsys)
