"""circuitscope.methods.branches: branch ranges and shares ("Branch Specialization"), the banding index
("Weight Banding"). Exact answers on InceptionV1's layout and on planted weights; chapter 3's
exercises 7 and 8 are tested in test_chapters.py."""

from __future__ import annotations

import pytest
import torch

from circuitscope.checks.ch3 import CURVE_FAMILY, block_layout
from circuitscope.core.models.inceptionv1 import BLOCKS, InceptionV1
from circuitscope.methods import branches
from circuitscope.methods.circuits import branch_of, branch_slices

LAYOUT = block_layout()  # InceptionV1's widths, no weights


# -- branch ranges and shares -------------------------------------------------------------------
def test_branch_ranges_of_mixed3b_are_the_concatenation_order():
    assert branches.branch_ranges(LAYOUT, "mixed3b") == {
        "mixed3b_1x1": range(128), "mixed3b_3x3": range(128, 320),
        "mixed3b_5x5": range(320, 416), "mixed3b_pool_reduce": range(416, 480)}  # fmt: skip


@pytest.mark.parametrize("block", [b.name for b in BLOCKS])
def test_branch_ranges_agree_with_the_circuits_module_for_every_block(block):
    ranges = branches.branch_ranges(LAYOUT, block)
    assert {k: (r.start, r.stop) for k, r in ranges.items()} == {
        k: (s.start, s.stop) for k, s in branch_slices(block).items()}  # fmt: skip


def test_the_curve_family_lies_in_the_5x5_branch_of_mixed3b():
    held_by, shares = branches.branch_shares(LAYOUT, "mixed3b", CURVE_FAMILY)
    assert held_by == ["mixed3b_5x5"] * len(CURVE_FAMILY)
    assert shares == {"mixed3b_1x1": 0.0, "mixed3b_3x3": 0.0, "mixed3b_5x5": 1.0, "mixed3b_pool_reduce": 0.0}


def test_branch_shares_agree_with_branch_of_on_every_channel_of_a_block():
    channels = list(range(512))
    held_by, shares = branches.branch_shares(LAYOUT, "mixed4c", channels)
    assert held_by == [branch_of(f"4c:{c}")[0] for c in channels]
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["mixed4c_3x3"] == pytest.approx(256 / 512)


def test_branch_shares_read_the_widths_from_the_model():
    planted = block_layout("mixed3b", seed=5)
    first = planted.layer_channels["mixed3b_1x1"]
    held_by, _ = branches.branch_shares(planted, "mixed3b", [first - 1, first])
    assert held_by == ["mixed3b_1x1", "mixed3b_3x3"]
    assert first != 128  # another width than InceptionV1's


def test_branch_shares_of_no_channels_are_zero_and_bad_channels_are_refused():
    assert set(branches.branch_shares(LAYOUT, "mixed4a", []).shares.values()) == {0.0}
    with pytest.raises(IndexError, match="0..479"):
        branches.branch_shares(LAYOUT, "mixed3b", [480])
    with pytest.raises(KeyError, match="not an inception block"):
        branches.branch_ranges(LAYOUT, "conv2d2")


# -- the banding index ---------------------------------------------------------------------------
def test_perfect_horizontal_bands_give_one_and_vertical_bands_zero():
    bands = branches.banded_weight(6, 5, 5, 1.0, seed=0)
    assert branches.banding_index(bands) == pytest.approx(1.0)
    assert branches.banding_index(bands.transpose(-1, -2)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_random_weights_give_the_random_level(k):
    noise = torch.randn(64, 64, k, k, generator=torch.Generator().manual_seed(k))
    assert branches.banding_index(noise) == pytest.approx(1 / (k + 1), abs=0.01)


def test_the_index_rises_with_planted_banding():
    values = [
        branches.banding_index(branches.banded_weight(16, 16, 5, s, seed=1)) for s in (0.0, 0.3, 0.6, 0.9)
    ]
    assert values == sorted(values) and values[0] < 0.2 and values[-1] > 0.9


def test_the_index_ignores_scale_offsets_and_zero_kernels():
    w = branches.banded_weight(8, 8, 5, 0.5, seed=2, dtype=torch.float64)
    base = branches.banding_index(w)
    assert branches.banding_index(1000 * w) == pytest.approx(base, rel=1e-9)
    offsets = torch.randn(8, 8, 1, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert branches.banding_index(w + offsets) == pytest.approx(base, rel=1e-9)
    padded = torch.cat([w, torch.zeros(4, 8, 5, 5, dtype=torch.float64)])  # pruned output channels
    assert branches.banding_index(padded) == pytest.approx(base, rel=1e-9)


def test_the_index_refuses_what_it_cannot_measure():
    with pytest.raises(ValueError, match="constant"):
        branches.banding_index(torch.ones(2, 2, 3, 3))
    with pytest.raises(ValueError, match=r"\(out, in, k, k\)"):
        branches.banding_index(torch.ones(2, 3, 3))


def test_layer_banding_finds_planted_bands_in_mixed5b():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = InceptionV1()
    with torch.no_grad():
        conv = model.mixed5b_5x5_pre_relu_conv
        conv.weight.copy_(branches.banded_weight(*conv.weight.shape[:3], 0.8, seed=4))
    bands = branches.layer_banding(model)
    assert list(bands)[:2] == ["mixed3a_3x3", "mixed3a_5x5"] and len(bands) == 2 * len(BLOCKS)
    assert max(bands, key=bands.get) == "mixed5b_5x5" and bands["mixed5b_5x5"] > 0.9
    others = [v for name, v in bands.items() if name != "mixed5b_5x5"]
    assert all(
        abs(v - (1 / 4 if name.endswith("3x3") else 1 / 6)) < 0.02
        for name, v in bands.items()
        if name != "mixed5b_5x5"
    ), others  # default init: the random level
