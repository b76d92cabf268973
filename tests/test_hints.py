"""Errors from library calls: the library says plainly what happened, and the checks add a hint.

For each known mistake: the library raises the clear error, its ``LIBRARY_ERRORS`` key matches
that real message, and a check run on a learner function that makes the mistake (a tiny
:class:`~circuitscope.checks.runner.Exercise` built here)
fails with the hint.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import circuitscope as cs
from circuitscope.checks.hints import LIBRARY_ERRORS, library_hint
from circuitscope.checks.runner import Case, CheckFailed, Exercise, Recipe
from circuitscope.core import units
from circuitscope.methods import circuits
from circuitscope.methods.optvis import objectives as O
from circuitscope.methods.optvis import param
from circuitscope.methods.optvis.render import forward_to
from circuitscope.methods.planted import PlantedCurveModel


def error_of(fn, *args, **kwargs) -> tuple[str, str]:
    """``(exception class name, message)`` of what ``fn(*args, **kwargs)`` raises."""
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return type(info.value).__name__, str(info.value)


def hint_of(error: tuple[str, str]) -> str:
    hint = library_hint(*error)
    assert hint is not None, f"no LIBRARY_ERRORS key matches {error}"
    return hint


def hint_for(key: str) -> str:
    return LIBRARY_ERRORS[key]


def one_case_exercise(fn_args: tuple = (), **kwargs) -> Exercise:
    """An exercise with one case whose result is never looked at (the learner's call raises)."""
    return Exercise("tiny", "tiny exercise", lambda hidden: [Case("tiny(...)", args=fn_args, kwargs=kwargs,
                                                                  verify=lambda case, got: None)])  # fmt: skip


def failure_of(exercise: Exercise, learner) -> str:
    with pytest.raises(CheckFailed) as info:
        exercise(learner)
    return str(info.value)


# =============================================================================================
# 1. A FourierImage is called, not asked for .image()
# =============================================================================================
def test_a_parameterization_says_it_is_called():
    for p in (param.image(8, param="fft"), param.image(8, param="pixel")):
        with pytest.raises(AttributeError, match=r"is called, not asked for an image.*param\(\)"):
            p.image()
        assert type(p).__name__ in error_of(getattr, p, "image")[1]
        assert p().shape == (1, 3, 8, 8)  # calling it still works, and so do its parameters
        assert len(list(p.parameters())) == 1 and p.raw().shape == (1, 3, 8, 8)
    with pytest.raises(AttributeError, match="no attribute 'imag_'"):  # other names: PyTorch's own error
        param.image(8).imag_  # noqa: B018


def test_render_loop_calling_image_method_gets_the_hint():
    hint = hint_of(error_of(lambda: param.image(8).image()))
    assert hint == hint_for("AttributeError: is called, not asked for an image")

    def render_loop(image, steps):  # the mistake: image.image() instead of image()
        optimizer = torch.optim.Adam(image.parameters(), lr=0.05)
        for _ in range(steps):
            loss = -image.image().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return image.image().detach()

    image = Recipe("circuitscope.methods.optvis.param:image", size=8, batch=1)
    message = failure_of(one_case_exercise((image, 2)), render_loop)
    assert "raised AttributeError" in message and f"hint: {hint}" in message


# =============================================================================================
# 2. parse_unit("curves:2") without the planted model
# =============================================================================================
def test_parse_unit_without_the_model_says_to_pass_it():
    with pytest.raises(ValueError, match=r"unknown layer 'curves'.*Without a model.*InceptionV1.*model\)"):
        units.parse_unit("curves:2")
    assert units.parse_unit("curves:2", PlantedCurveModel()) == ("curves", 2)
    with pytest.raises(ValueError, match="Did you mean 'mixed3b'"):
        units.parse_unit("mixd3b:2")
    with pytest.raises(ValueError, match="Did you mean 'curves'.*model.layer_names"):
        units.parse_unit("curve:2", PlantedCurveModel())
    with pytest.raises(ValueError, match="not an integer"):
        units.parse_unit(("mixed3b", "5"))
    assert units.parse_unit(("mixed3b", np.int64(5))) == ("mixed3b", 5)


def test_tuning_curve_without_the_model_gets_the_hint():
    hint = hint_of(error_of(units.parse_unit, "curves:2"))
    assert hint == hint_for("ValueError: Without a model, units are looked up in InceptionV1")

    def radial_tuning_curve(model, unit):  # the mistake: parse_unit(unit) without model
        layer, channel = units.parse_unit(unit)
        return cs.activations(model, torch.zeros(1, 3, 16, 16), [layer])[layer][:, channel]

    planted = Recipe("circuitscope.methods.planted:PlantedCurveModel")
    message = failure_of(one_case_exercise((planted, "curves:2")), radial_tuning_curve)
    assert "raised ValueError" in message and f"hint: {hint}" in message


# =============================================================================================
# 3. branch_of on a unit that has no branch
# =============================================================================================
def test_branch_of_says_which_units_have_branches():
    with pytest.raises(ValueError, match=r"not an inception block.*conv2d2:7 is channel 7 of the convolution "
                                         r"conv2d2_pre_relu_conv.*only for a block's channel"):  # fmt: skip
        circuits.branch_of("conv2d2:7")
    with pytest.raises(
        ValueError, match="concatenated output.*channel 12 of the convolution mixed3b_5x5_pre_relu_conv"
    ):
        circuits.branch_of("mixed3b_5x5:12")
    with pytest.raises(ValueError, match="3b_pool:3 is channel 3 of mixed3b_pool itself"):
        circuits.branch_of("3b_pool:3")
    assert circuits.branch_of("3b:379") == ("mixed3b_5x5", 59)


def test_direct_weights_with_branch_of_everywhere_gets_the_hint():
    hint = hint_of(error_of(circuits.branch_of, "conv2d2:7"))
    assert hint == hint_for("ValueError: call branch_of only for a block's channel")
    assert hint_of(error_of(circuits.branch_of, "mixed3b_5x5:12")) == hint

    def direct_weights(source_unit, target_unit):  # the mistake: branch_of on every target
        _layer, _channel = circuits.branch_of(target_unit)
        return torch.zeros(3, 3)

    message = failure_of(one_case_exercise(("conv2d1:5", "conv2d2:7")), direct_weights)
    assert "raised ValueError" in message and f"hint: {hint}" in message


# =============================================================================================
# More library mistakes: each real message has its hint
# =============================================================================================
def test_layer_name_typos_are_named(synthetic_model):
    model, x = synthetic_model, torch.rand(1, 3, 32, 32)
    for call in (lambda: forward_to(model, x, ["mixd3b"]), lambda: cs.activations(model, x, ["3b"])):
        error = error_of(call)
        assert error[0] == "KeyError" and "unknown layer name" in error[1]
        assert hint_of(error) == hint_for("KeyError: unknown layer name")
    assert "Did you mean 'mixed3b'" in error_of(forward_to, model, x, ["mixd3b"])[1]
    assert hint_of(error_of(forward_to, model, x, "mixed3a")) == hint_for(
        "TypeError: forward_to takes a list of layer names"
    )
    assert forward_to(model, x, ["conv2d0"])["conv2d0"].shape[:2] == (1, 64)


def test_hook_points_typo_lists_the_names(synthetic_model):
    error = error_of(lambda: synthetic_model.hook_points["mixd3b"])
    assert error[0] == "KeyError" and "Did you mean 'mixed3b'" in error[1] and "model.layer_names" in error[1]
    assert hint_of(error) == hint_for("KeyError: no hook point named")
    assert "curves" in error_of(lambda: PlantedCurveModel().hook_points["curve"])[1]
    assert (
        "mixed3b" in synthetic_model.hook_points and synthetic_model.hook_points["mixed3b"].name == "mixed3b"
    )


def test_images_of_the_wrong_kind_are_named(synthetic_model):
    x = torch.rand(1, 3, 32, 32)
    for images, key in [
        ((x * 255).to(torch.uint8), "TypeError: expected float images in [0, 1]"),
        (x[0], "ValueError: expected images of shape (N, 3, H, W)"),
        (x.numpy(), "TypeError: expected images as a torch.Tensor"),
        (x, "ValueError: the classifier needs mixed5b to be at least 7x7"),
    ]:
        assert hint_of(error_of(synthetic_model, images)) == hint_for(key)
    assert hint_of(error_of(PlantedCurveModel(), (x * 255).to(torch.uint8))) == hint_for(
        "TypeError: expected float images in [0, 1]"
    )
    double = error_of(cs.activations, synthetic_model, x.double(), ["conv2d0"])
    assert double[0] == "RuntimeError" and "float64" in hint_of(double)


def test_labels_and_channels_out_of_range(synthetic_model):
    assert hint_of(error_of(cs.label, 1008)) == hint_for("IndexError: logit index")
    for bad in (torch.tensor([1, 2]), 3.0):
        error = error_of(cs.label, bad)
        assert error[0] == "TypeError" and hint_of(error) == hint_for(
            "TypeError: label takes one logit index"
        )
    assert cs.label(torch.tensor(5)) == cs.label(5) == cs.label(np.int64(5))
    acts = {"mixed3b": torch.rand(2, 480, 4, 4)}
    for objective in (O.channel("mixed3b", 480), O.neuron("mixed3b", 999), O.per_element(
            [O.channel("mixed3b", 1), O.channel("mixed3b", 480)])):  # fmt: skip
        error = error_of(objective, acts)
        assert error == ("IndexError", "channel 480 is out of range for mixed3b, which has 480 channels (0..479)") \
            or "channel 999" in error[1]  # fmt: skip
        assert hint_of(error) == hint_for("IndexError: is out of range for")
    assert O.channel("mixed3b", -1)(acts).shape == (2,)  # negative channels index from the end, as before


def test_missing_convolution_and_torch_errors_have_hints(synthetic_model):
    error = error_of(lambda: synthetic_model.mixed3b_pre_relu_conv)
    assert hint_of(error) == hint_for("AttributeError: _pre_relu_conv'")
    assert hint_of(error_of(lambda: torch.zeros(2)())) == hint_for(
        "TypeError: 'Tensor' object is not callable"
    )
    assert hint_of(error_of(lambda: torch.zeros(2).sum().backward())) == hint_for(
        "RuntimeError: does not require grad"
    )

    def hook(module, output):
        return None

    point = synthetic_model.hook_points["conv2d0"]
    handle = point.register_forward_hook(hook)
    try:
        assert "forward hook" in hint_of(error_of(point, torch.zeros(1)))
    finally:
        handle.remove()


def test_every_key_names_an_exception_and_a_message():
    for key in LIBRARY_ERRORS:
        kind, sep, text = key.partition(": ")
        assert kind.endswith("Error") and sep and text, key
