"""InceptionV1's structure, names, hooks, gradients and synthetic weights."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED

import circuitscope as cs
from circuitscope.core.models import LAYER_NAMES, MAIN_LAYERS, InceptionV1
from circuitscope.core.models.layers import (
    conv2d_same,
    local_response_norm,
    max_pool_same,
    pad_same,
    same_padding,
)


def spec_tensors():
    path = SHARED / "specs" / "inception5h_state_dict.json"
    if not path.exists():  # a checkout without shared/: the packaged copy is the same file
        from importlib import resources

        path = resources.files("circuitscope.data") / "inception5h_state_dict.json"
    return json.loads(path.read_text())


def test_parameters_are_named_and_shaped_as_the_weight_file():
    spec = spec_tensors()
    model = InceptionV1()
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    want = [(t["name"], t["shape"]) for t in spec["tensors"]]
    assert got == want  # same names, shapes and order: strict loading works
    assert sum(v.numel() for v in model.state_dict().values()) == spec["total_parameters"] == 7066380


def test_layer_names_cover_the_spec_table_branches_and_pre_relu():
    for name in MAIN_LAYERS:
        assert name in LAYER_NAMES
    for block in ["mixed3a", "mixed4e", "mixed5b"]:
        for suffix in ["", "_pre_relu", "_1x1", "_3x3_bottleneck", "_3x3", "_5x5_bottleneck", "_5x5",
                       "_pool", "_pool_reduce", "_3x3_pre_relu", "_5x5_bottleneck_pre_relu"]:  # fmt: skip
            assert block + suffix in LAYER_NAMES
    counts = {"mixed3a": 256, "mixed3b": 480, "mixed4a": 508, "mixed4b": 512, "mixed4c": 512,
              "mixed4d": 528, "mixed4e": 832, "mixed5a": 832, "mixed5b": 1024, "conv2d2": 192,
              "softmax2_pre_activation": 1008}  # fmt: skip
    for name, channels in counts.items():
        assert InceptionV1.layer_channels[name] == channels


@pytest.mark.parametrize("n,k,s,expected", [(224, 7, 2, (2, 3)), (112, 3, 2, (0, 1)), (56, 3, 2, (0, 1)),
                                            (97, 7, 2, (3, 3)), (28, 3, 1, (1, 1)), (5, 5, 1, (2, 2))])
def test_same_padding(n, k, s, expected):
    assert same_padding(n, k, s) == expected


def test_lrn_matches_a_direct_loop_with_tf_constants():
    x = torch.randn(2, 23, 3, 4) * 30
    out = local_response_norm(x)
    for c in range(23):
        window = x[:, max(0, c - 5) : min(23, c + 6)]
        expected = x[:, c] / (2.0 + 1e-4 * (window**2).sum(1)) ** 0.5
        torch.testing.assert_close(out[:, c], expected, rtol=1e-5, atol=1e-6)


def test_activations_stop_after_the_deepest_layer(synthetic_model):
    seen = []
    handle = synthetic_model.hook_points["mixed3b"].register_forward_hook(lambda *a: seen.append(1))
    try:
        acts = cs.activations(synthetic_model, torch.rand(1, 3, 64, 64), ["conv2d0", "mixed3a_3x3"])
    finally:
        handle.remove()
    assert list(acts) == ["conv2d0", "mixed3a_3x3"] and seen == []
    assert acts["conv2d0"].shape == (1, 64, 32, 32)


def test_gradients_reach_the_input_but_never_the_weights(synthetic_model):
    images = torch.rand(1, 3, 64, 64, requires_grad=True)
    acts = cs.activations(synthetic_model, images, ["mixed4a_pre_relu"])
    acts["mixed4a_pre_relu"][0, 476].mean().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in synthetic_model.parameters())


def test_unknown_layer_lists_valid_names(synthetic_model):
    with pytest.raises(KeyError) as err:
        cs.activations(synthetic_model, torch.rand(1, 3, 32, 32), ["mixed4z"])
    text = str(err.value)
    assert "mixed4z" in text and "mixed4a" in text and "Did you mean" in text and "model.layer_names" in text


def test_capture_removes_its_hooks_even_on_error(synthetic_model):
    with pytest.raises(RuntimeError):
        with cs.capture(synthetic_model, ["conv2d1"]) as acts:
            synthetic_model(torch.rand(1, 3, 224, 224))
            assert acts["conv2d1"].shape == (1, 64, 56, 56)
            raise RuntimeError("boom")
    assert all(len(p._forward_hooks) == 0 for p in synthetic_model.hook_points.values())


def test_hook_points_can_replace_values(synthetic_model):
    images = torch.rand(1, 3, 224, 224)
    handle = synthetic_model.hook_points["mixed5b"].register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    try:
        logits = synthetic_model(images)
    finally:
        handle.remove()
    expected = synthetic_model.softmax2_pre_activation_matmul.bias
    torch.testing.assert_close(logits[0], expected)


def test_classifier_rejects_too_small_images_clearly(synthetic_model):
    with pytest.raises(ValueError, match="at least 193"):
        synthetic_model(torch.rand(1, 3, 128, 128))


def test_bad_image_shape_is_explained(synthetic_model):
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        synthetic_model(torch.rand(3, 224, 224))


def test_synthetic_weights_are_deterministic_and_labelled():
    a = cs.load_inceptionv1("synthetic", device="cpu")
    b = cs.load_inceptionv1("synthetic", device="cpu")
    assert a.is_synthetic and "SYNTHETIC" in a.weights_source and "SYNTHETIC" in repr(a)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert all(not p.requires_grad for p in a.parameters())


def test_synthetic_activations_are_alive_and_of_similar_scale(synthetic_model):
    images = cs.sample_images(size=224)
    with torch.no_grad():
        acts = cs.activations(synthetic_model, images, [n for n in MAIN_LAYERS if n.startswith(("conv", "mixed"))])
    stds = []
    for name, a in acts.items():
        assert torch.isfinite(a).all(), name
        alive = (a > 0).flatten(2).any(-1).any(0).float().mean()
        assert alive > 0.95, f"{name}: only {alive:.0%} of channels ever fire on the sample photos"
        stds.append(float(a.std()))
    assert max(stds) / min(stds) < 10, f"activation scales drift through the depth: {stds}"


def test_synthetic_first_layer_is_gabor_and_colour_filters(synthetic_model):
    from circuitscope.core.models.synthetic import first_layer_bank

    w = synthetic_model.conv2d0_pre_relu_conv.weight
    bank = first_layer_bank()
    cos = torch.nn.functional.cosine_similarity(w.flatten(1), bank.flatten(1))
    torch.testing.assert_close(cos, torch.ones(64), rtol=0, atol=1e-5)  # calibration only rescales
    luminance = bank[:32]
    assert torch.allclose(luminance[:, 0], luminance[:, 1]) and torch.allclose(luminance[:, 1], luminance[:, 2])


@pytest.mark.parametrize("beta", [0.5, 0.75])
def test_lrn_gradient_matches_autograd_of_the_formula(beta):
    x = (torch.randn(2, 13, 3, 4, dtype=torch.float64) * 30).requires_grad_()
    torch.autograd.gradcheck(lambda t: local_response_norm(t, beta=beta), (x,))

    def formula(t):
        window = F.conv2d(t * t, (torch.arange(13)[:, None] - torch.arange(13)[None, :]).abs().le(5)
                          .to(t.dtype)[:, :, None, None])  # fmt: skip
        return t / (2.0 + 1e-4 * window) ** beta

    g = torch.randn(2, 13, 3, 4, dtype=torch.float64)
    (ours,) = torch.autograd.grad(local_response_norm(x, beta=beta), x, g)
    (theirs,) = torch.autograd.grad(formula(x), x, g)
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("size", [7, 8, 9, 19, 38])
@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (5, 1), (7, 2), (1, 1)])
def test_same_ops_equal_explicit_padding(size, kernel, stride):
    x = torch.randn(2, 4, size, size + 1)
    conv = torch.nn.Conv2d(4, 3, kernel, stride=stride)
    torch.testing.assert_close(conv2d_same(x, conv), conv(pad_same(x, kernel, stride)))
    expected = F.max_pool2d(pad_same(x, kernel, stride, value=float("-inf")), kernel, stride)
    torch.testing.assert_close(max_pool_same(x, kernel, stride), expected, rtol=0, atol=0)


# -- which weights made a result: the three states ------------------------------------------
def test_random_init_is_synthetic_and_the_flag_is_derived_from_the_state():
    model = InceptionV1()
    assert model.weights_state == "synthetic" and model.is_synthetic
    assert "random initialisation" in model.weights_source and "synthetic" in repr(model)
    model.weights_state = "real"
    assert not model.is_synthetic
    model.is_synthetic = True  # older code still sets the flag: it moves the state
    assert model.weights_state == "synthetic"
    model.is_synthetic = False  # a loaded file nothing vouches for
    assert model.weights_state == "unverified"


STATE_TEXT = {  # what each state's caption, notice and stamp must say
    "real": ("hash verified", "circuitscope-real", "#555555"),
    "unverified": ("UNVERIFIED WEIGHTS", "circuitscope-unverified", "#b35c00"),
    "synthetic": ("SYNTHETIC WEIGHTS", "circuitscope-synthetic", "#b00020"),
    "published": ("computed by Lucid", "circuitscope-real", "#555555"),
}


@pytest.mark.parametrize("state", sorted(STATE_TEXT))
def test_every_weights_state_has_its_caption_notice_and_stamp(state):
    import matplotlib.colors
    import matplotlib.pyplot as plt

    from circuitscope.core import provenance

    model = InceptionV1()
    model.weights_state, model.weights_source = state, "/data/inception5h.pth (git blob SHA-1 0123abcd)"
    words, css, colour = STATE_TEXT[state]
    caption = provenance.weights_caption(model)
    assert words in caption
    assert ("InceptionV1 (inception5h) weights" in caption) == (state == "real")
    page = provenance.notice_html(model)
    assert css in page
    if state in ("unverified", "real"):
        assert "0123abcd" in page  # the file and its hash are named
    fig = plt.figure()
    provenance.stamp(fig, model)
    (text,) = [t for t in fig.texts if t.get_text() == caption]
    assert matplotlib.colors.to_hex(text.get_color()) == colour
    plt.close(fig)


def test_objects_without_a_state_fall_back_on_their_flag():
    from circuitscope.core import provenance
    from circuitscope.figures.plotting import Provenance

    class Flagged:
        is_synthetic = False

    assert provenance.weights_state(Flagged()) == "unverified"  # nothing vouches for it
    assert provenance.weights_state(Provenance(False, "Lucid's activations")) == "published"
    assert provenance.weights_state(Provenance(True, "a toy")) == "synthetic"
    assert provenance.weights_state(Provenance(False, "a file", "unverified")) == "unverified"


def test_planted_and_toy_models_say_planted():
    from circuitscope.checks.ch5 import PlantedColourModel
    from circuitscope.core import provenance
    from circuitscope.methods.planted import PlantedCurveModel, PlantedPatternModel

    for model in (PlantedCurveModel(), PlantedPatternModel(), PlantedColourModel()):
        assert provenance.weights_state(model) == "planted" and model.is_synthetic, type(model).__name__


def test_the_synthetic_stand_in_is_the_same_with_any_number_of_threads():
    # Two processes (torchrun ranks, a grader and its kernel) must build the very same stand-in.
    import subprocess
    import sys

    code = ("import sys, torch; torch.set_num_threads(int(sys.argv[1])); import circuitscope as cs; "
            "from circuitscope.methods.dataset_examples import model_fingerprint; "
            "print(model_fingerprint(cs.load_inceptionv1('synthetic')))")  # fmt: skip
    prints = {subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True,
                             check=True).stdout.strip() for n in (1, 2, 3)}  # fmt: skip
    assert len(prints) == 1 and all(prints)
