"""Strongest channels and the strongest patch (``circuitscope.methods.channels``) on planted activations."""

from __future__ import annotations

import pytest
import torch

from circuitscope.core.receptive_field import receptive_field
from circuitscope.methods.channels import strongest_channels, strongest_patch, strongest_position


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

