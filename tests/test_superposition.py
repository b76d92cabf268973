"""The toy models of "Toy Models of Superposition": the model, its loss and its known regimes."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

from circuitscope.figures import plotting
from circuitscope.methods import superposition as sp

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def regimes():
    """5 features in 2 dimensions, importance 0.9**i: one dense instance, one very sparse."""
    model = sp.ToyModel(5, 2, sparsity=[0.0, 0.99], importance=sp.importance_decay(5), device="cpu", seed=0)
    result = sp.train_toy_model(model, seed=0)
    return model, result


def test_model_shapes_loss_and_data():
    model = sp.ToyModel(4, 2, sparsity=[0.0, 0.5, 0.9], importance=[1.0, 0.5, 0.25, 0.125], device="cpu")
    assert model.W.shape == (3, 2, 4) and model.b.shape == (3, 4)
    assert model.sparsity.shape == model.importance.shape == (3, 4)
    x = model.generate_batch(4000, torch.Generator().manual_seed(0))
    assert x.shape == (4000, 3, 4) and x.min() >= 0 and x.max() <= 1
    zeros = (x == 0).float().mean(dim=(0, 2))
    assert torch.allclose(zeros, torch.tensor([0.0, 0.5, 0.9]), atol=0.03), zeros
    active = x[:, 1][x[:, 1] > 0]
    assert abs(active.mean().item() - 0.5) < 0.03  # uniform in [0, 1] when active
    # x' = ReLU(W^T W x + b), instance by instance
    with torch.no_grad():
        model.b.normal_()
    out = model(x[:8])
    for k in range(3):
        W, b = model.W[k], model.b[k]
        expected = torch.relu(x[:8, k] @ W.T @ W + b)
        assert torch.allclose(out[:8, k], expected, atol=1e-5)
    assert torch.allclose(model.hidden(x[:8])[:, 2], x[:8, 2] @ model.W[2].T, atol=1e-6)
    # loss: per instance, mean over the batch of sum_i I_i (x_i - x'_i)^2, summed over instances
    per_instance = sp.importance_weighted_loss(x, model(x), model.importance)
    manual = ((x - model(x)) ** 2 * model.importance).sum(-1).mean(0)
    assert torch.allclose(per_instance, manual)
    assert torch.allclose(model.loss(x), manual.sum())


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="sparsity"):
        sp.ToyModel(5, 2, sparsity=1.0)
    with pytest.raises(ValueError, match="one per feature"):
        sp.ToyModel(5, 2, importance=[1.0, 2.0])
    with pytest.raises(ValueError, match="2-D"):
        plotting.plot_toy_features(torch.zeros(3, 5))


def test_known_geometries():
    """The article's sticky points: orthogonal pair, antipodal pair, pentagon."""
    orthogonal = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # 2 of 3 features, no sharing
    assert torch.allclose(sp.feature_dimensionality(orthogonal), torch.tensor([1.0, 1.0, 0.0]), atol=1e-6)
    assert math.isclose(sp.features_per_dimension(orthogonal).item(), 1.0, rel_tol=1e-6)
    antipodal = torch.tensor([[1.0, -1.0]])  # m = 1: two features on one dimension
    assert torch.allclose(sp.feature_dimensionality(antipodal), torch.tensor([0.5, 0.5]))
    assert math.isclose(sp.dimensions_per_feature(antipodal).item(), 0.5, rel_tol=1e-6)
    angles = torch.arange(5) * 2 * math.pi / 5
    pentagon = torch.stack([angles.cos(), angles.sin()])
    assert torch.allclose(sp.feature_dimensionality(pentagon), torch.full((5,), 0.4), atol=1e-5)
    assert math.isclose(sp.features_per_dimension(pentagon).item(), 2.5, rel_tol=1e-5)
    both = torch.stack([orthogonal[:, :2], pentagon[:, :2]])  # batched (2, 2, 2)
    assert sp.feature_norms(both).shape == (2, 2)
    assert sp.represented_features(pentagon).item() == 5


def test_dense_features_are_not_in_superposition(regimes):
    """Dense: the two most important features on orthogonal directions, the rest dropped (PCA)."""
    model, _ = regimes
    norms = sp.feature_norms(model.W)[0]
    assert norms[:2].min() > 0.8, f"the 2 most important features should be represented, norms {norms}"
    assert norms[2:].max() < 0.3, f"dense: only 2 features fit in 2 dimensions, norms {norms}"
    assert abs(sp.features_per_dimension(model.W)[0].item() - 1.0) < 0.1
    W = model.W[0].detach()
    cos = (W[:, 0] @ W[:, 1]) / (W[:, 0].norm() * W[:, 1].norm())
    assert abs(cos.item()) < 0.1, "the two represented features should be orthogonal"


def test_sparse_features_are_in_superposition(regimes):
    """Very sparse: all 5 features share the 2 dimensions."""
    model, result = regimes
    norms = sp.feature_norms(model.W)[1]
    assert norms.min() > 0.5, f"sparse: every feature should be represented, norms {norms}"
    assert sp.features_per_dimension(model.W)[1].item() > 1.5
    assert sp.represented_features(model.W).tolist() == [2, 5]
    assert result.losses.shape[1] == 2 and bool((result.final < result.losses[0]).all())


def test_phase_diagram_corners():
    """n = 2, m = 1: the extra feature is dropped, takes the dimension, or shares it."""
    assert sp.classify_phase(torch.tensor([[1.0, 0.0]])).item() == 0
    assert sp.classify_phase(torch.tensor([[0.0, 1.0]])).item() == 1
    assert sp.classify_phase(torch.tensor([[1.0, -1.0]])).item() == 2
    diagram = sp.phase_diagram(
        sparsities=[0.0, 0.95], importances=[0.1, 10.0], restarts=2, steps=1000, seed=0
    )
    assert diagram.phases.shape == (2, 2)
    assert diagram.phases.tolist() == [[0, 1], [2, 2]], diagram.norms
    fig = plotting.plot_phase_diagram(diagram)
    assert fig.axes


def test_figures(regimes):
    model, _ = regimes
    fig = plotting.plot_toy_features(model.W, titles=["S = 0", "S = 0.99"])
    assert len(fig.axes) == 2
    assert len(plotting.plot_toy_features(model.W[1]).axes) == 1
    fig = plotting.plot_toy_wtw(model.W, model.b)
    assert len(fig.axes) == 5  # 2 instances x (W^T W, b) + a colour bar
