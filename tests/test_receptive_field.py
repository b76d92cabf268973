"""Receptive fields (``circuitscope.core.receptive_field``): against a brute-force measurement on the
model itself, known values, the op chain against the graph, errors and clipping."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.core.models.inceptionv1 import LAYER_NAMES, PIXEL_OFFSET, PIXEL_SCALE, InceptionV1
from circuitscope.core.models.layers import same_padding
from circuitscope.core.receptive_field import (
    GRAPH,
    SPATIAL_LAYERS,
    chain_receptive_field,
    kernel_strides,
    layer_ops,
    receptive_field,
)


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

