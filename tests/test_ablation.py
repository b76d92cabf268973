"""circuitscope.methods.ablation on the planted curve model, whose circuit is known by construction.

``curves:k`` reads the thin line family (lines:0-7) with weight 1 and the thick family
(lines:8-15) with weight 0.5, so switching a family off removes a known part of its input.
"""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.methods import stimuli
from circuitscope.methods.ablation import ablated, ablation_effect
from circuitscope.methods.planted import PlantedCurveModel

THIN = [f"lines:{c}" for c in range(8)]
THICK = [f"lines:{c}" for c in range(8, 16)]


@pytest.fixture(scope="module")
def planted():
    return PlantedCurveModel()


@pytest.fixture(scope="module")
def arcs():
    return stimuli.curve([90.0, 0.0, 270.0], radius=12.0, size=44)


def test_ablated_zeroes_exactly_the_units_and_removes_its_hook(planted, arcs):
    clean = cs.activations(planted, arcs, ["lines"])["lines"]
    with ablated(planted, THIN):
        inside = cs.activations(planted, arcs, ["lines"])["lines"]
    after = cs.activations(planted, arcs, ["lines"])["lines"]
    assert torch.all(inside[:, :8] == 0)
    torch.testing.assert_close(inside[:, 8:], clean[:, 8:])
    assert clean[:, :8].abs().sum() > 0
    torch.testing.assert_close(after, clean)  # the hook is gone


def test_the_hook_is_removed_on_an_error(planted, arcs):
    clean = cs.activations(planted, arcs, ["curves"])["curves"]
    with pytest.raises(RuntimeError), ablated(planted, THIN):
        raise RuntimeError("boom")
    torch.testing.assert_close(cs.activations(planted, arcs, ["curves"])["curves"], clean)


def test_ablating_the_thin_family_leaves_the_thick_family_s_share(planted, arcs):
    """The curve unit's pre-ReLU input is linear in the line units: thin + thick parts add up."""
    unit = "curves_pre_relu:2"
    thin_off = ablation_effect(planted, arcs, THIN, unit)
    thick_off = ablation_effect(planted, arcs, THICK, unit)
    both_off = ablation_effect(planted, arcs, THIN + THICK, unit)
    bias = both_off.ablated
    torch.testing.assert_close(thin_off.clean, thick_off.clean)
    # clean = bias + thin part + thick part, each part measured by switching the other off
    torch.testing.assert_close(thin_off.clean, bias + (thin_off.clean - thin_off.ablated) + (thick_off.clean - thick_off.ablated),
                               rtol=1e-4, atol=1e-5)
    # the top-of-circle arc (90 degrees) is what curves:2 detects; the thin family carries most of it
    assert thin_off.change[0] < thick_off.change[0] < 0


def test_mean_ablation_sets_each_unit_to_its_value(planted, arcs):
    values = torch.arange(8, dtype=torch.float32)
    with ablated(planted, THIN, value=values):
        lines = cs.activations(planted, arcs, ["lines"])["lines"]
    torch.testing.assert_close(lines[:, :8], values.view(1, 8, 1, 1).expand_as(lines[:, :8]))
    with pytest.raises(ValueError, match="entries"):
        with ablated(planted, THIN, value=torch.zeros(3)):
            pass


def test_units_must_share_a_layer(planted):
    with pytest.raises(ValueError, match="one layer"):
        with ablated(planted, ["lines:0", "curves:1"]):
            pass


def test_fraction_kept(planted, arcs):
    effect = ablation_effect(planted, arcs, THIN, "curves:2")
    assert effect.clean.shape == effect.ablated.shape == (3,)
    assert 0 <= effect.fraction_kept() < 1
    assert ablation_effect(planted, arcs, ["lines:0"], "curves:2", value=0.0).unit == "curves:2"


def test_works_on_inceptionv1_names(synthetic_model):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    curves = [f"3b:{c}" for c in (379, 406, 385)]
    with ablated(synthetic_model, curves):
        acts = cs.activations(synthetic_model, images, ["mixed3b"])["mixed3b"]
    assert torch.all(acts[:, [379, 406, 385]] == 0)
    effect = ablation_effect(synthetic_model, images, curves, "4a:100")
    assert effect.clean.shape == (2,)
