"""Top-k classes (``circuitscope.methods.classify``) on planted logits and on the model."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.methods.classify import class_probabilities, top_k_classes


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

