"""The planted curve circuit: known by construction, recovered by the chapter's methods."""

from __future__ import annotations

import math

import pytest
import torch

import circuitscope as cs
from circuitscope.core.provenance import is_synthetic, weights_state
from circuitscope.methods import circuits
from circuitscope.methods.planted import (
    CURVE_ORIENTATIONS,
    FAMILY_WEIGHTS,
    LINE_ORIENTATIONS,
    PlantedCurveModel,
)
from circuitscope.methods.stimuli import curve, tuning_curve


@pytest.fixture(scope="module")
def planted():
    return PlantedCurveModel()


def nearest_channel(theta: float) -> int:
    """The line channel (0..7) whose orientation is nearest ``theta`` (period 180)."""
    return min(
        range(8),
        key=lambda c: min((theta - LINE_ORIENTATIONS[c]) % 180, (LINE_ORIENTATIONS[c] - theta) % 180),
    )


def arc_tangent(unit: int, row: int, col: int, radius_cells: float = 3.0) -> float:
    """Tangent orientation (degrees, period 180) of the planted arc where it passes a kernel cell.

    Independent of the model's code: the circle through the centre cell, facing ``unit``'s
    orientation, has its centre ``radius_cells`` behind; the tangent is perpendicular to the radius.
    """
    phi = math.radians(CURVE_ORIENTATIONS[unit])
    cu, cv = -radius_cells * math.cos(phi), -radius_cells * math.sin(phi)
    u, v = col - 2, 2 - row
    return (math.degrees(math.atan2(v - cv, u - cu)) + 90.0) % 180.0


def test_planted_model_is_a_named_model(planted):
    images = curve([0.0, 90.0], radius=12.0, size=44)
    acts = cs.activations(planted, images, ["lines", "curves_pre_relu", "curves"])
    assert acts["lines"].shape == (2, 16, 11, 11) and acts["curves"].shape == (2, 8, 11, 11)
    assert torch.equal(acts["curves"], torch.relu(acts["curves_pre_relu"]))
    assert torch.equal(planted(images), acts["curves"])
    assert weights_state(planted) == "planted" and not is_synthetic(planted)  # hand-built, not a stand-in
    assert "planted" in planted.weights_source
    assert torch.equal(PlantedCurveModel().planted_weights(), planted.planted_weights())  # deterministic


@pytest.mark.parametrize("unit", range(8))
def test_tuning_curve_peaks_at_the_planted_orientation(planted, unit):
    tc = tuning_curve(planted, f"curves:{unit}", angles=24, size=44, radius=12.0, width=120.0)
    assert tc.peak == pytest.approx(CURVE_ORIENTATIONS[unit])
    assert tc.angular_distance(CURVE_ORIENTATIONS[unit]) < 5.0
    opposite = int(torch.argmin((tc.angles - (CURVE_ORIENTATIONS[unit] + 180) % 360).abs()))
    assert float(tc.responses.max()) > 2 * float(tc.responses[opposite])


def test_weights_between_recovers_the_planted_connections(planted):
    truth = planted.planted_weights()
    for unit in range(8):
        kernels = torch.stack(
            [circuits.weights_between(planted, f"lines:{c}", f"curves:{unit}") for c in range(16)]
        )
        assert kernels.shape == (16, 5, 5)
        assert torch.equal(kernels, truth[unit])
        assert torch.equal(circuits.expanded_weights(planted, "lines", f"curves:{unit}"), truth[unit])
        cells = planted.arc_cells(unit)
        assert len(cells) >= 5
        for row, col, _, strength in cells:
            tangent = arc_tangent(unit, row, col)
            thin = kernels[:8, row, col]
            if strength > 0.5:  # on the arc: the tangent line excites, the perpendicular inhibits
                along, across = nearest_channel(tangent), nearest_channel(tangent + 90.0)
                assert float(thin[along]) > 0 and float(thin[across]) < 0
                assert int(torch.argmax(thin)) in {along, (along + 1) % 8, (along - 1) % 8}
                assert int(torch.argmin(thin)) in {across, (across + 1) % 8, (across - 1) % 8}
            # The thick family carries the same pattern, half as strong.
            assert torch.allclose(kernels[8:, row, col], FAMILY_WEIGHTS[1] * thin)
        on_arc = {(r, c) for r, c, _, _ in cells}
        off = [(r, c) for r in range(5) for c in range(5) if (r, c) not in on_arc]
        assert all(float(kernels[:, r, c].abs().max()) == 0.0 for r, c in off)


def test_the_top_of_a_circle_unit_reads_as_expected(planted):
    # curves:2 faces up (90 degrees): a horizontal line excites it at the centre, a vertical one
    # inhibits it there, and nothing above the arc matters.
    assert float(circuits.weights_between(planted, "lines:0", "curves:2")[2, 2]) > 0
    assert float(circuits.weights_between(planted, "lines:4", "curves:2")[2, 2]) < 0
    assert (
        float(
            sum(circuits.weights_between(planted, f"lines:{c}", "curves:2")[0].abs().sum() for c in range(16))
        )
        == 0.0
    )
    # Its left flank, one row down, runs at 45 degrees ("/"), its right flank at 135 ("\\").
    assert float(circuits.weights_between(planted, "lines:2", "curves:2")[3, 0]) > 0.5
    assert float(circuits.weights_between(planted, "lines:6", "curves:2")[3, 4]) > 0.5
    assert float(circuits.weights_between(planted, "lines:6", "curves:2")[3, 0]) < 0


def test_gradient_definition_matches_on_the_planted_model(planted):
    by_gradient = circuits.expanded_weights_by_gradient(planted, "lines", "curves:5")
    assert torch.allclose(by_gradient, planted.planted_weights()[5], atol=1e-6)
    with pytest.raises(ValueError, match="direct connections"):
        circuits.expanded_weights(planted, "curves", "lines")


def test_nmf_recovers_the_planted_factors(planted):
    factors = circuits.nmf_weights(planted.planted_weights(), k=8, n_iter=2000)
    assert factors.spatial.shape == (8, 8, 5, 5) and factors.channels.shape == (8, 16)
    assert float(factors.channels.min()) >= 0 and factors.error < 1e-2
    similarity = factors.channels @ planted.planted_factors().T  # (found, planted), unit rows
    best = similarity.max(dim=0)
    assert float(best.values.min()) > 0.99  # every planted factor is found...
    assert len(set(best.indices.tolist())) == 8  # ...each by a different NMF factor
    assert torch.allclose(factors.reconstruct(), planted.planted_weights(), atol=1e-2)
