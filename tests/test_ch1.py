"""Chapter 1: its library functions, its exercise checks and its two notebooks.

* Library: receptive fields against a brute-force measurement on the model itself; top-k
  classes, strongest channels and patches on planted inputs; every figure function stamps the
  weights it was made with.
* Checks: each passes on the solution notebook's reference code (visible and hidden cases) and
  fails, with the right hint, on the untouched stub and on plausible mistakes.
* Notebooks (slow): the chapter page and the solution notebook run top to bottom in the CPU
  profile with synthetic weights; the nbgrader round trip gives the solution full marks, the
  stub nothing and a notebook of plausible mistakes nothing.
"""

from __future__ import annotations

import math
import textwrap
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
    copied,
    graded_checks,
    mistake_function,
    private_key,
    reference_functions,
    stub_functions,
)

import circuitscope as cs
from circuitscope import plotting
from circuitscope.channels import strongest_channels, strongest_patch, strongest_position
from circuitscope.checks import CheckFailed
from circuitscope.checks import ch1 as checks
from circuitscope.checks.runner import judge
from circuitscope.classify import class_probabilities, top_k_classes
from circuitscope.models.inceptionv1 import LAYER_NAMES, PIXEL_OFFSET, PIXEL_SCALE, InceptionV1
from circuitscope.models.layers import same_padding
from circuitscope.receptive_field import (
    GRAPH,
    SPATIAL_LAYERS,
    chain_receptive_field,
    kernel_strides,
    layer_ops,
    receptive_field,
)

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ch1_introduction" / "ch1_exercises.ipynb"


# =============================================================================================
# Receptive fields
# =============================================================================================
@pytest.fixture(scope="module")
def positive_model():
    """InceptionV1 in float64 with every weight 1/fan_in and no biases.

    Fed an image whose pixels map to exactly 0 inside the model (``117/255``) with one column
    raised, every value is 0 except where that column can reach: every op (positive convolution,
    ReLU, max pool, LRN, concatenation) keeps "0 stays 0, positive stays positive". So the
    positions a column reaches are exactly those whose receptive field contains it.
    """
    model = InceptionV1().double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.zero_() if name.endswith("bias") else p.fill_(1.0 / p[0].numel())
    return model


def _reach(model, layer: str, width: int, columns: list[int]) -> torch.Tensor:
    """Bool ``(len(columns), positions)``: which positions of ``layer`` each raised column reaches.

    Images are one pixel tall: fields are separable, so one axis is measured at a time.
    """
    base = torch.full((len(columns), 3, 1, width), PIXEL_OFFSET / PIXEL_SCALE, dtype=torch.float64)
    for i, u in enumerate(columns):
        base[i, :, 0, u] += 1.0
    with torch.no_grad():
        value = cs.activations(model, base, [layer])[layer]
    return value.abs().amax(dim=(1, 2)) > 0


@pytest.mark.parametrize("width", [224, 225, 61])
@pytest.mark.parametrize(
    "layer",
    [
        "conv2d0",
        "maxpool0",
        "conv2d2",
        "maxpool1",
        "mixed3a_3x3",
        "mixed3b",
        "mixed4a_pool_reduce",
        "mixed4b",
    ],
)
def test_receptive_field_matches_brute_force(positive_model, layer, width):
    rf = receptive_field(layer, width)
    reach = _reach(positive_model, layer, width, list(range(width)))  # (columns, positions)
    assert reach.shape[1] == rf.positions, (
        f"{layer} at {width}: {reach.shape[1]} positions, not {rf.positions}"
    )
    for i in range(rf.positions):
        seen = torch.nonzero(reach[:, i]).flatten()
        first, last = int(seen.min()), int(seen.max())
        assert (first, last) == rf.clipped(i), f"{layer} at {width}, position {i}"
        assert len(seen) == last - first + 1, "a field has a hole"


@pytest.mark.parametrize("layer", ["mixed4e", "mixed5b"])
def test_deep_receptive_fields_match_brute_force_on_a_wide_input(positive_model, layer):
    # 1000 px wide: the deep fields (427 and 715 px) fit inside, so their true extent shows.
    width = 1000
    rf = receptive_field(layer, width)
    probe = sorted(
        {
            c
            for i in (0, 3, rf.positions // 2, rf.positions - 1)
            for c in (*rf.clipped(i), rf.clipped(i)[0] - 1, rf.clipped(i)[1] + 1)
            if 0 <= c < width
        }
    )
    reach = _reach(positive_model, layer, width, probe)
    for row, column in enumerate(probe):
        for i in (0, 3, rf.positions // 2, rf.positions - 1):
            first, last = rf.clipped(i)
            assert bool(reach[row, i]) == (first <= column <= last), f"{layer}: column {column}, position {i}"


def test_receptive_field_known_values():
    # conv2d0 is 7x7 stride 2; "SAME" pads (2, 3) at 224 and (3, 3) at 225 (the spec's example).
    assert same_padding(224, 7, 2) == (2, 3)
    assert receptive_field("conv2d0", 224).as_tuple() == (7, 2, 1)
    assert receptive_field("conv2d0", 225).as_tuple() == (7, 2, 0)
    assert receptive_field("maxpool0").as_tuple() == (11, 4, 3)
    sizes = {
        n: receptive_field(n).size
        for n in ("mixed3a", "mixed3b", "mixed4a", "mixed4e", "mixed5b", "avgpool0")
    }
    assert sizes == {
        "mixed3a": 59,
        "mixed3b": 91,
        "mixed4a": 171,
        "mixed4e": 427,
        "mixed5b": 715,
        "avgpool0": 907,
    }
    assert [receptive_field(n).jump for n in ("conv2d0", "maxpool1", "mixed4a", "mixed5b")] == [2, 8, 16, 32]
    # Branches: the 3x3 and pool branches of a block see less than the 5x5 one, the block all.
    assert (
        receptive_field("mixed3b_3x3").size
        < receptive_field("mixed3b_5x5").size
        == receptive_field("mixed3b").size
    )
    assert receptive_field("mixed3b_pre_relu").as_tuple() == receptive_field("mixed3b").as_tuple()


@pytest.mark.parametrize("size", [224, 225, 193, 300, 57])
def test_layer_ops_chain_equals_the_graph(size):
    for layer in SPATIAL_LAYERS:
        if size < 224 and layer == "avgpool0":
            continue  # needs mixed5b at least 7x7
        assert chain_receptive_field(layer_ops(layer), size, layer) == receptive_field(layer, size), layer
    assert set(SPATIAL_LAYERS) == set(GRAPH) and set(LAYER_NAMES) - set(GRAPH) == {
        "softmax2_pre_activation",
        "softmax2",
    }


def test_receptive_field_errors():
    with pytest.raises(ValueError, match="not spatial"):
        receptive_field("softmax2")
    with pytest.raises(KeyError, match="mixed3b"):
        receptive_field("mixed3bb")
    with pytest.raises(ValueError, match="VALID"):
        kernel_strides("avgpool0")


def test_receptive_field_box_is_clipped():
    rf = receptive_field("mixed4a", 224)
    assert rf.box(0, 0) == (0, 0, rf.span(0)[1], rf.span(0)[1])
    assert rf.box(13, 13)[2:] == (223, 223)


# =============================================================================================
# Top-k classes, strongest channels, patches
# =============================================================================================
class _Fixed(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, images):
        return self.logits[: images.shape[0]]


def test_top_k_classes_on_planted_logits():
    logits = torch.full((2, 1008), -5.0)
    logits[0, [1, 174, 55]] = torch.tensor([3.0, 5.0, 4.0])
    logits[1, [1000, 0]] = torch.tensor([9.0, 8.0])
    result = top_k_classes(_Fixed(logits), torch.zeros(2, 3, 8, 8), k=3)
    assert [i for i, _, _ in result[0]] == [174, 55, 1]
    assert [n for _, n, _ in result[0]] == ["tabby", "tiger cat", "kit fox"]
    assert [n for _, n, _ in result[1]][:2] == ["dumbbell", "dummy"]
    probs = torch.softmax(logits, dim=-1)
    assert result[0][0][2] == pytest.approx(float(probs[0, 174]), rel=1e-6)
    assert all(isinstance(i, int) and isinstance(p, float) for row in result for i, _, p in row)
    assert top_k_classes(_Fixed(logits), torch.zeros(3, 8, 8), k=1) == [result[0][:1]]  # one image


def test_class_probabilities_on_the_model(synthetic_model):
    probs = class_probabilities(synthetic_model, cs.sample_images(["coffee"], size=224))
    assert probs.shape == (1, 1008) and float(probs.sum()) == pytest.approx(1.0, abs=1e-5)


def test_strongest_channels():
    acts = torch.zeros(2, 5, 3, 4)
    acts[0, 3] = 2.0
    acts[0, 1, 0, 0] = 10.0  # a spike: mean 10/12 < 2
    acts[1, 0] = 1.0
    scores, channels = strongest_channels(acts, k=2)
    assert channels[0].tolist() == [3, 1] and int(channels[1, 0]) == 0
    assert scores[0].tolist() == pytest.approx([2.0, 10 / 12])
    single = strongest_channels(acts[0], k=1)
    assert single.channels.tolist() == [3] and single.scores.shape == (1,)


def test_strongest_patch():
    rf = receptive_field("mixed3b", 224)
    acts = torch.zeros(4, rf.positions, rf.positions)
    acts[2, 5, 20] = 1.0
    acts[1, 0, 0] = 5.0
    assert strongest_position(acts[2]) == (5, 20)
    top, left, bottom, right = strongest_patch(acts, 2, "mixed3b", 224)
    assert (top + bottom) / 2 == rf.center(5) and (left + right) / 2 == rf.center(20) == 7 + 20 * 8
    assert strongest_patch(acts, 1, "mixed3b", 224)[:2] == (0, 0)  # clipped at the corner


# =============================================================================================
# Figures
# =============================================================================================
def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts)


FIGURES = {
    "architecture_diagram": lambda m, img: plotting.architecture_diagram(m, input_size=224),
    "inception_block_diagram": lambda m, img: plotting.inception_block_diagram(m, "mixed4a", input_size=96),
    "top_k_chart": lambda m, img: plotting.top_k_chart(m, img[None], k=3),
    "activation_maps": lambda m, img: plotting.activation_maps(m, img, layers=["conv2d0", "mixed3a"], n=2),
    "strongest_channels_chart": lambda m, img: plotting.strongest_channels_chart(m, img, "mixed3a", k=3),
    "strongest_patch_figure": lambda m, img: plotting.strongest_patch_figure(m, img, "mixed3a", 5),
    "receptive_field_figure": lambda m, img: plotting.receptive_field_figure(m, img),
    "radial_tuning_plot": lambda m, img: plotting.radial_tuning_plot({"3b:379": torch.rand(72)}, model=m),
    "radial_tuning_panels": lambda m, img: plotting.radial_tuning_panels([{"tunings": {"3b:379": torch.rand(72)}}], model=m),
    "compare_with_published": lambda m, img: plotting.compare_with_published(img[None], ["4b:111"], m),
}


def test_every_model_figure_function_is_listed():
    # Every public function of plotting that takes a model is checked for its stamp below.
    import inspect

    takes_model = {
        name
        for name in plotting.__all__
        if callable(getattr(plotting, name))
        and "model" in inspect.signature(getattr(plotting, name)).parameters
    }
    # layer_shapes draws nothing; the interactive figure's stamp is tested below
    assert takes_model - {"layer_shapes", "interactive_radial_tuning"} == set(FIGURES)


def test_the_interactive_figure_says_which_weights_made_it(synthetic_model):
    figure = plotting.interactive_radial_tuning({"3b:379": torch.rand(72)}, model=synthetic_model)
    assert "SYNTHETIC" in getattr(figure, "hint", "").upper()  # shown under the chart on the site


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figures_say_which_weights_made_them(synthetic_model, name):
    image = cs.sample_image("chelsea", size=224)
    fig = FIGURES[name](synthetic_model, image)
    assert "SYNTHETIC WEIGHTS" in _texts(fig), f"{name} does not say it was made with synthetic weights"


def test_a_figure_from_real_activations_is_not_marked_synthetic():
    from circuitscope import published

    example = published.dog_cat()
    assert example.image.shape == (3, 224, 224) and example.acts["mixed4d"].shape == (528, 14, 14)
    fig = plotting.strongest_channels_chart(
        example, example.image, "mixed4d", k=4, acts=example.acts["mixed4d"]
    )
    assert "SYNTHETIC" not in _texts(fig) and "InceptionV1" in _texts(fig)
    # Lucid's statistics of this fixture (shared/data/lucid_parity/README.md): max 887, ~22% > 0.
    a = example.acts["mixed4d"]
    assert float(a.max()) == pytest.approx(887.0, abs=1.0) and 0.2 < float((a > 0).float().mean()) < 0.25


def test_architecture_shapes_are_measured(synthetic_model):
    shapes = plotting.layer_shapes(synthetic_model, 224)
    assert shapes["conv2d0"] == (64, 112, 112) and shapes["mixed3b"] == (480, 28, 28)
    assert (
        shapes["mixed4d"] == (528, 14, 14)
        and shapes["mixed5b"] == (1024, 7, 7)
        and shapes["softmax2"] == (1008,)
    )
    assert plotting.layer_shapes(synthetic_model, 256, ["mixed4a"])["mixed4a"] == (508, 16, 16)


def test_diverging_norm_is_centred():
    norm = plotting.diverging_norm(torch.tensor([-1.0, 3.0]))
    assert (
        norm(0.0) == pytest.approx(0.5)
        and norm(3.0) == pytest.approx(1.0)
        and norm(-3.0) == pytest.approx(0.0)
    )
    assert plotting.diverging_cmap()(0.5)[:3] == pytest.approx((0.969, 0.969, 0.969), abs=0.01)


# =============================================================================================
# The exercise checks: the reference passes, the stub and plausible mistakes fail
# =============================================================================================
def _namespace() -> dict:
    """What the solution notebook's setup cell defines (without loading the model)."""
    from circuitscope.receptive_field import receptive_field as library_receptive_field

    return {
        # the library's answers, copied (see exercise_harness.copied): mistakes written on top of them
        "library_preprocess": copied(cs.preprocess),
        "library_patch": copied(strongest_patch),
        "library_chain": copied(chain_receptive_field),
        "math": math,
        "np": np,
        "torch": torch,
        "F": F,
        "cs": cs,
        "same_padding": same_padding,
        "kernel_strides": kernel_strides,
        "library_receptive_field": library_receptive_field,
    }


@pytest.fixture(scope="module")
def reference():
    return reference_functions(SOLUTION, _namespace())


@pytest.fixture(scope="module")
def stub():
    return stub_functions(SOLUTION, _namespace())


EXERCISES = {  # check -> the function the notebook defines
    "check_preprocess": "preprocess",
    "check_top_k": "top_k_classes",
    "check_capture": "capture_activations",
    "check_strongest_channels": "strongest_channels",
    "check_receptive_field": "receptive_field",
    "check_strongest_patch": "strongest_patch",
}


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes(reference, check, hidden, capsys):
    assert_check_passes(getattr(checks, check), reference[EXERCISES[check]], hidden, capsys, seconds=10)


@pytest.mark.parametrize("key", PRIVATE_KEYS)
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_the_hidden_cases_under_private_keys(reference, check, key, capsys):
    with private_key(key):
        assert_check_passes(getattr(checks, check), reference[EXERCISES[check]], True, capsys, seconds=10)


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_hidden_cases_change_with_the_key(check):
    assert_hidden_cases_change(getattr(checks, check))


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_stub_fails(stub, check):
    assert_stub_fails(getattr(checks, check), stub[EXERCISES[check]])


# Plausible mistakes: (check, hidden cases needed, words the hint must contain, code).
MISTAKES = {
    # -- exercise 1 --
    "preprocess: no scaling of uint8": (
        "check_preprocess",
        False,
        "not [0, 255]",
        """
        def preprocess(image, size=224):
            x = torch.from_numpy(np.asarray(image)).float().permute(2, 0, 1)
            h, w = x.shape[-2:]
            s = size / min(h, w)
            nh, nw = max(size, round(h * s)), max(size, round(w * s))
            x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True)[0]
            t, l = (nh - size) // 2, (nw - size) // 2
            return x[:, t:t + size, l:l + size]
    """,
    ),
    "preprocess: squashed into a square": (
        "check_preprocess",
        False,
        "squashed",
        """
        def preprocess(image, size=224):
            x = cs.images.to_tensor(image)
            return F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True)[0]
    """,
    ),
    "preprocess: corner crop": (
        "check_preprocess",
        False,
        "not centred",
        """
        def preprocess(image, size=224):
            x = cs.images.to_tensor(image)
            h, w = x.shape[-2:]
            s = size / min(h, w)
            nh, nw = max(size, round(h * s)), max(size, round(w * s))
            return F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True)[0][:, :size, :size]
    """,
    ),
    "preprocess: channels last": (
        "check_preprocess",
        False,
        "channels first",
        """
        def preprocess(image, size=224):
            return library_preprocess(image, size).permute(1, 2, 0)
    """,
    ),
    "preprocess: ImageNet normalisation": (
        "check_preprocess",
        False,
        "do not subtract",
        """
        def preprocess(image, size=224):
            mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
            std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
            return (library_preprocess(image, size) - mean) / std
    """,
    ),
    "preprocess: BGR": (
        "check_preprocess",
        False,
        "RGB",
        """
        def preprocess(image, size=224):
            return library_preprocess(image, size).flip(0)
    """,
    ),
    "preprocess: float images divided by 255 again": (
        "check_preprocess",
        True,
        "already in [0, 1]",
        """
        def preprocess(image, size=224):
            x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)
            return library_preprocess(x.numpy(), size)
    """,
    ),
    "preprocess: grey images not handled": (
        "check_preprocess",
        True,
        "raised",
        """
        def preprocess(image, size=224):
            x = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)
            return library_preprocess(x.permute(1, 2, 0).numpy(), size)
    """,
    ),
    # -- exercise 2 --
    "top-k: labels shifted by one": (
        "check_top_k",
        False,
        "did you shift",
        """
        def top_k_classes(model, images, k=5):
            p, i = torch.softmax(model(images), -1).topk(k)
            names = cs.labels()
            return [[(int(a), names[int(a) + 1], float(b)) for b, a in zip(pr, ir)]
                    for pr, ir in zip(p, i)]
    """,
    ),
    "top-k: softmax over the batch": (
        "check_top_k",
        False,
        "not over the batch",
        """
        def top_k_classes(model, images, k=5):
            logits = model(images)
            p = torch.softmax(logits, dim=0)
            i = logits.topk(k, dim=-1).indices
            return [[(int(a), cs.label(int(a)), float(p[n, a])) for a in row] for n, row in enumerate(i)]
    """,
    ),
    "top-k: logits, not probabilities": (
        "check_top_k",
        False,
        "not probabilities",
        """
        def top_k_classes(model, images, k=5):
            v, i = model(images).topk(k)
            return [[(int(a), cs.label(int(a)), float(b)) for b, a in zip(vr, ir)] for vr, ir in zip(v, i)]
    """,
    ),
    "top-k: least probable first": (
        "check_top_k",
        False,
        "LEAST",
        """
        def top_k_classes(model, images, k=5):
            p, i = torch.softmax(model(images), -1).topk(k, largest=False)
            return [[(int(a), cs.label(int(a)), float(b)) for b, a in zip(pr, ir)] for pr, ir in zip(p, i)]
    """,
    ),
    "top-k: ascending order": (
        "check_top_k",
        False,
        "wrong order",
        """
        def top_k_classes(model, images, k=5):
            p, i = torch.softmax(model(images), -1).topk(k)
            return [[(int(a), cs.label(int(a)), float(b)) for b, a in zip(pr, ir)][::-1]
                    for pr, ir in zip(p, i)]
    """,
    ),
    # -- exercise 3 --
    "hooks: never removed": (
        "check_capture",
        False,
        "forget to remove",
        """
        def capture_activations(model, images, names):
            store = {}
            def make(name):
                def hook(m, i, o):
                    store[name] = o
                return hook
            for name in names:
                model.hook_points[name].register_forward_hook(make(name))
            model(images)
            return store
    """,
    ),
    "hooks: a lambda in a loop": (
        "check_capture",
        False,
        "same key",
        """
        def capture_activations(model, images, names):
            store, handles = {}, []
            for name in names:
                handles.append(model.hook_points[name].register_forward_hook(
                    lambda m, i, o: store.__setitem__(name, o)))
            model(images)
            for h in handles:
                h.remove()
            return store
    """,
    ),
    "hooks: every hook of the module cleared": (
        "check_capture",
        False,
        "only your own",
        """
        def capture_activations(model, images, names):
            store = {}
            def make(name):
                def hook(m, i, o):
                    store[name] = o
                return hook
            for name in names:
                model.hook_points[name].register_forward_hook(make(name))
            model(images)
            for name in names:
                model.hook_points[name]._forward_hooks.clear()
            return store
    """,
    ),
    "hooks: not removed when the forward pass fails": (
        "check_capture",
        True,
        "finally",
        """
        def capture_activations(model, images, names):
            store = {}
            def make(name):
                def hook(m, i, o):
                    store[name] = o
                return hook
            handles = [model.hook_points[n].register_forward_hook(make(n)) for n in names]
            model(images)
            for h in handles:
                h.remove()
            return store
    """,
    ),
    "hooks: values zipped with the names in firing order": (
        "check_capture",
        True,
        "order of the forward pass",
        """
        def capture_activations(model, images, names):
            values, handles = [], []
            for name in names:
                handles.append(model.hook_points[name].register_forward_hook(lambda m, i, o: values.append(o)))
            try:
                with torch.no_grad():
                    model(images)
            finally:
                for h in handles:
                    h.remove()
            return dict(zip(names, values))
    """,
    ),
    # -- exercise 4 --
    "channels: ranked by the maximum": (
        "check_strongest_channels",
        False,
        "MAXIMUM",
        """
        def strongest_channels(acts, k=10):
            return acts.amax(dim=(2, 3)).topk(k, dim=1)
    """,
    ),
    "channels: sum, not mean": (
        "check_strongest_channels",
        False,
        "SUM",
        """
        def strongest_channels(acts, k=10):
            return acts.sum(dim=(2, 3)).topk(k, dim=1)
    """,
    ),
    "channels: smallest first": (
        "check_strongest_channels",
        False,
        "largest score down",
        """
        def strongest_channels(acts, k=10):
            return acts.mean(dim=(2, 3)).topk(k, dim=1, largest=False)
    """,
    ),
    "channels: averaged over the batch": (
        "check_strongest_channels",
        False,
        "over the batch",
        """
        def strongest_channels(acts, k=10):
            s, c = acts.mean(dim=(0, 2, 3)).topk(k)
            return s.expand(acts.shape[0], k), c.expand(acts.shape[0], k)
    """,
    ),
    "channels: averaged over the wrong dims": (
        "check_strongest_channels",
        False,
        "wrong shape",
        """
        def strongest_channels(acts, k=10):
            return acts.mean(dim=1).topk(k, dim=1)
    """,
    ),
    # -- exercise 5 --
    "receptive field: forgot the stride product": (
        "check_receptive_field",
        False,
        "stride product",
        """
        def receptive_field(ops, input_size):
            size, jump, start, n = 1, 1, 0.0, input_size
            for k, s in ops:
                p, _ = same_padding(n, k, s)
                size += k - 1
                start += ((k - 1) / 2 - p) * jump
                jump *= s
                n = math.ceil(n / s)
            return size, jump, int(start)
    """,
    ),
    "receptive field: no padding": (
        "check_receptive_field",
        False,
        "padding shifts",
        """
        def receptive_field(ops, input_size):
            size, jump, start = 1, 1, 0.0
            for k, s in ops:
                size += (k - 1) * jump
                start += (k - 1) / 2 * jump
                jump *= s
            return size, jump, int(start)
    """,
    ),
    "receptive field: padding from the image size": (
        "check_receptive_field",
        True,
        "ITS input",
        """
        def receptive_field(ops, input_size):
            size, jump, start = 1, 1, 0.0
            for k, s in ops:
                p, _ = same_padding(input_size, k, s)
                size += (k - 1) * jump
                start += ((k - 1) / 2 - p) * jump
                jump *= s
            return size, jump, int(start)
    """,
    ),
    "receptive field: first pixel, not centre": (
        "check_receptive_field",
        False,
        "CENTRE",
        """
        def receptive_field(ops, input_size):
            rf = library_chain(ops, input_size)
            return rf.size, rf.jump, rf.start - (rf.size - 1) // 2
    """,
    ),
    "receptive field: jump updated too early": (
        "check_receptive_field",
        False,
        "BEFORE",
        """
        def receptive_field(ops, input_size):
            size, jump, start, n = 1, 1, 0.0, input_size
            for k, s in ops:
                p, _ = same_padding(n, k, s)
                jump *= s
                size += (k - 1) * jump
                start += ((k - 1) / 2 - p) * jump
                n = math.ceil(n / s)
            return size, jump, int(start)
    """,
    ),
    "receptive field: starts from the first op": (
        "check_receptive_field",
        True,
        "empty chain of ops",
        """
        def receptive_field(ops, input_size):
            kernel, stride = ops[0]
            pad, _ = same_padding(input_size, kernel, stride)
            size, jump, start, n = kernel, stride, (kernel - 1) / 2 - pad, math.ceil(input_size / stride)
            for kernel, stride in ops[1:]:
                pad_before, _ = same_padding(n, kernel, stride)
                size += (kernel - 1) * jump
                start += ((kernel - 1) / 2 - pad_before) * jump
                jump *= stride
                n = math.ceil(n / stride)
            return size, jump, int(start)
    """,
    ),
    # -- exercise 6 --
    "patch: rows and columns swapped": (
        "check_strongest_patch",
        False,
        "swapped",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            t, l, b, r = library_patch(acts, channel, layer, input_size)
            return l, t, r, b
    """,
    ),
    "patch: not clipped": (
        "check_strongest_patch",
        False,
        "clip",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            row, col = divmod(int(acts[channel].argmax()), acts.shape[2])
            rf = library_receptive_field(layer, input_size)
            (t, b), (l, r) = rf.span(row), rf.span(col)
            return t, l, b, r
    """,
    ),
    "patch: maximum over every channel": (
        "check_strongest_patch",
        False,
        "acts[channel] only",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            row, col = divmod(int(acts.amax(dim=0).argmax()), acts.shape[2])
            return library_receptive_field(layer, input_size).box(row, col)
    """,
    ),
    "patch: exclusive end": (
        "check_strongest_patch",
        False,
        "INCLUSIVE",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            t, l, b, r = library_patch(acts, channel, layer, input_size)
            return t, l, b + 1, r + 1
    """,
    ),
    "patch: centre without start": (
        "check_strongest_patch",
        False,
        "place is not",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            row, col = divmod(int(acts[channel].argmax()), acts.shape[2])
            rf = library_receptive_field(layer, input_size)
            h = (rf.size - 1) // 2
            span = lambda i: (max(i * rf.jump - h, 0), min(i * rf.jump + h, input_size - 1))
            (t, b), (l, r) = span(row), span(col)
            return t, l, b, r
    """,
    ),
}


def _mistake(code: str):
    return mistake_function(code, _namespace(), EXERCISES.values())


def _assert_mistake_caught(name: str) -> None:
    check, needs_hidden, hint, code = MISTAKES[name]
    message = assert_mistake_fails(getattr(checks, check), _mistake(code), hint, needs_hidden)
    assert "expected" in message or "raised" in message or "hint" in message


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_plausible_mistake_fails_with_a_hint(name):
    _assert_mistake_caught(name)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistakes_fail_under_a_private_key(name):
    # The hidden cases the grader runs (other values, the same shapes) catch them all the same.
    with private_key(PRIVATE_KEYS[0]):
        _assert_mistake_caught(name)


def test_every_exercise_has_a_mistake_that_fails():
    assert {check for check, *_ in MISTAKES.values()} == set(EXERCISES)


@pytest.mark.parametrize(
    "name, code",
    [
        (
            "PIL resize",
            """
        def preprocess(image, size=224):
            from PIL import Image
            arr = np.asarray(image)
            if arr.dtype != np.uint8:
                arr = (arr * 255).round().astype(np.uint8)
            img = Image.fromarray(arr).convert("RGB")
            w, h = img.size
            s = size / min(w, h)
            img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
            w, h = img.size
            l, t = (w - size) // 2, (h - size) // 2
            return torch.from_numpy(np.array(img.crop((l, t, l + size, t + size)))).permute(2, 0, 1) / 255.0
    """,
        ),
        (
            "torchvision, no antialiasing",
            """
        def preprocess(image, size=224):
            import torchvision.transforms.functional as TF
            x = cs.images.to_tensor(image)
            x = TF.resize(x, size, antialias=False)
            return TF.center_crop(x, size).clamp(0, 1)
    """,
        ),
    ],
)
def test_other_correct_preprocessing_passes(name, code):
    ns = _namespace()
    exec(compile(textwrap.dedent(code), "<alternative>", "exec"), ns)  # noqa: S102
    checks.check_preprocess(ns["preprocess"], hidden=True)


@pytest.mark.parametrize(
    "check, code",
    [
        (  # the last position of a tied maximum, not the first
            "check_strongest_patch",
            """
        def strongest_patch(acts, channel, layer, input_size=224):
            m = acts[channel]
            row, col = divmod(int((m == m.max()).flatten().nonzero()[-1]), m.shape[1])
            return library_receptive_field(layer, input_size).box(row, col)
    """,
        ),
        (  # among equal means, the larger channel index first
            "check_strongest_channels",
            """
        def strongest_channels(acts, k=10):
            means = acts.mean(dim=(2, 3))
            rows = [sorted(range(means.shape[1]), key=lambda c: (-float(row[c]), -c))[:k] for row in means]
            channels = torch.tensor(rows)
            return means.gather(1, channels), channels
    """,
        ),
        (  # among equal probabilities, the larger class index first; a namedtuple per class
            "check_top_k",
            """
        def top_k_classes(model, images, k=5):
            from collections import namedtuple
            Top = namedtuple("Top", "index label probability")
            probs = torch.softmax(model(images), dim=-1)
            return [[Top(c, cs.label(c), float(row[c])) for c in
                     sorted(range(row.shape[0]), key=lambda c: (-float(row[c]), -c))[:k]] for row in probs]
    """,
        ),
        (  # torch.topk's own return value, and an OrderedDict
            "check_capture",
            """
        def capture_activations(model, images, names):
            from collections import OrderedDict
            store = OrderedDict()
            handles = [model.hook_points[n].register_forward_hook(
                lambda m, i, o, n=n: store.__setitem__(n, o.detach())) for n in names]
            try:
                model(images)
            finally:
                for h in handles:
                    h.remove()
            return store
    """,
        ),
        (
            "check_strongest_channels",
            """
        def strongest_channels(acts, k=10):
            return acts.mean(dim=(2, 3)).topk(k, dim=1)
    """,
        ),
    ],
)
def test_other_correct_answers_pass(check, code):
    # Ties may be broken either way (the case labels say so); containers may be namedtuples,
    # torch.return_types or dict subclasses.
    fn = _mistake(code)
    getattr(checks, check)(fn, hidden=True)
    getattr(checks, check)(OverTheWire(fn), hidden=True)


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_over_the_wire(reference, check, capsys):
    assert_passes_over_the_wire(getattr(checks, check), reference[EXERCISES[check]], capsys)


def test_hooks_left_after_the_planted_failure_are_named():
    def leaves_hooks(model, images, names):
        for name in names:
            model.hook_points[name].register_forward_hook(lambda *a: None)
        return {name: model(images) for name in names}

    case = next(c for c in checks.check_capture.cases(True) if c.raises)
    with pytest.raises(CheckFailed, match="after the forward pass raised an error") as failure:
        judge(checks.check_capture, case, OverTheWire(leaves_hooks).invoke(case))
    assert "hook_points.conv2d0_pre_relu" in str(failure.value) and "finally" in str(failure.value)


def test_a_global_hook_left_behind_is_named():
    handles = []

    def capture_activations(model, images, names):
        store = {}
        handles.append(torch.nn.modules.module.register_module_forward_hook(
            lambda m, i, o: store.update({n: o for n in names if m is model.hook_points[n]})))
        model(images)
        return store

    try:
        with pytest.raises(CheckFailed, match="hooks still on the global hooks"):
            checks.check_capture(capture_activations)
    finally:
        for handle in handles:
            handle.remove()


def test_a_global_hook_set_before_the_call_is_not_blamed(reference, capsys):
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *a: None)
    try:
        checks.check_capture(reference["capture_activations"])
    finally:
        handle.remove()
    assert capsys.readouterr().out.startswith("\u2714")


def test_checks_resist_a_patched_allclose(reference, monkeypatch):
    # A learner cell that makes every comparison succeed must not turn a failure into a pass.
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    with pytest.raises(CheckFailed):
        checks.check_strongest_channels(_mistake(MISTAKES["channels: sum, not mean"][3]))


# =============================================================================================
# The notebooks themselves run elsewhere: tests/test_book.py executes the chapter page (and checks
# its run time, its figures and its notice) and tests/test_course.py grades the solution, the
# untouched stub and tests/mistakes/ch1_introduction.py (the first mistake per exercise below)
# with the real nbgrader.
# =============================================================================================
GRADE_IDS = {check: grade_id for check, (_, grade_id) in graded_checks(SOLUTION).items()}


def test_grade_ids_name_the_solution_cells():
    nb = nbformat.read(SOLUTION, as_version=4)
    ids = {c.metadata.nbgrader["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    assert set(GRADE_IDS.values()) == ids and set(GRADE_IDS) == set(EXERCISES)
    # each test cell calls its check on the function EXERCISES names
    assert {check: fn for check, (fn, _) in graded_checks(SOLUTION).items()} == EXERCISES
