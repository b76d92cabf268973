"""Chapter 3: its exercise checks and its new figures (the notebook's layout: test_course).

* Checks: each passes on the solution notebook's reference code (visible and hidden cases, also
  over the grader's wire format) and on equally right variants (``EQUIVALENT``), and fails, with
  the right hint, on the untouched stub and on plausible mistakes (``MISTAKES``, also the mistakes
  submission of the nbgrader round trip: ``tests/mistakes/ch3_circuits.py``).
* The library itself (expanded weights against autograd, stimuli geometry, the planted circuit,
  NMF) is tested in ``test_circuits.py``, ``test_stimuli.py`` and ``test_planted.py``; here only
  what chapter 3 added: the tuning-curve figure and the planted-model caption.
"""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch
from exercise_harness import (
    PRIVATE_KEYS,
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
from circuitscope import circuits, stimuli
from circuitscope.checks import CheckFailed
from circuitscope.checks import ch3 as checks
from circuitscope.circuits import branch_of, format_unit, parse_unit
from circuitscope.planted import CURVE_ORIENTATIONS, PLANTED_CAPTION, PlantedCurveModel

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ch3_circuits" / "ch3_exercises.ipynb"

EXERCISES = {  # check -> the function the notebook defines
    "check_direct_weights": "direct_weights",
    "check_expanded_weights": "expanded_weights_bottleneck",
    "check_curve_stimulus": "draw_curve",
    "check_tuning_curve": "radial_tuning_curve",
    "check_read_circuit": "read_circuit",
    "check_nmf": "nmf",
    "check_branch_shares": "branch_shares",
    "check_banding_index": "banding_index",
}
GRADE_IDS = {check: grade_id for check, (_, grade_id) in graded_checks(SOLUTION).items()}


# =============================================================================================
# The exercise checks: the reference passes, the stub and plausible mistakes fail
# =============================================================================================
def _namespace() -> dict:
    """What the solution notebook's setup cell defines (without loading InceptionV1)."""
    return {
        "library_curve": copied(stimuli.curve),  # the library's answer, copied (exercise_harness.copied)
        "math": math,
        "torch": torch,
        "cs": cs,
        "circuits": circuits,
        "stimuli": stimuli,
        "branch_of": branch_of,
        "format_unit": format_unit,
        "parse_unit": parse_unit,
        "CURVE_ORIENTATIONS": CURVE_ORIENTATIONS,
        "PlantedCurveModel": PlantedCurveModel,
    }


@pytest.fixture(scope="module")
def reference():
    return reference_functions(SOLUTION, _namespace())


@pytest.fixture(scope="module")
def stub():
    return stub_functions(SOLUTION, _namespace())


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes(reference, check, hidden, capsys):
    assert_check_passes(getattr(checks, check), reference[EXERCISES[check]], hidden, capsys, seconds=10)


@pytest.mark.parametrize("key", PRIVATE_KEYS)
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_the_hidden_cases_under_private_keys(reference, check, key, capsys):
    with private_key(key):
        assert_check_passes(getattr(checks, check), reference[EXERCISES[check]], True, capsys, seconds=10)


# Their hidden cases are exact geometry on fixed arguments and the planted model: nothing random.
WITHOUT_RANDOM_VALUES = {"check_curve_stimulus", "check_tuning_curve"}


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_hidden_cases_change_with_the_key(check):
    assert_hidden_cases_change(getattr(checks, check), changes=check not in WITHOUT_RANDOM_VALUES)


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_stub_fails(stub, check):
    assert_stub_fails(getattr(checks, check), stub[EXERCISES[check]])


NMF = """
    def nmf(x, k, n_iter=500, seed=0):
        gen = torch.Generator().manual_seed(seed)
        x = x.double()
        w = torch.rand(x.shape[0], k, generator=gen, dtype=torch.float64)
        h = torch.rand(k, x.shape[1], generator=gen, dtype=torch.float64)
        for _ in range(n_iter):
            h = h * (w.T @ x) / (w.T @ w @ h + 1e-12)
            w = w * (x @ h.T) / (w @ h @ h.T + 1e-12)
        norms = h.norm(dim=1, keepdim=True)
        return w * norms.T, h / norms
"""  # a right NMF (from a start other than the solution's), which the mistakes below change

# Plausible mistakes: (check, hidden cases needed, words the hint must contain, code).
# The first of each check is also the nbgrader round trip's mistakes submission.
MISTAKES = {
    # -- exercise 1 --
    "direct: source and target swapped": (
        "check_direct_weights",
        False,
        "swapped",
        """
        def direct_weights(model, source_unit, target_unit):
            target_layer, target_channel = parse_unit(target_unit)
            if target_layer.startswith("mixed") and "_" not in target_layer:
                target_layer, target_channel = branch_of(target_unit)
            _, source_channel = parse_unit(source_unit)
            weight = getattr(model, f"{target_layer}_pre_relu_conv").weight
            return weight[source_channel, target_channel].detach()
    """,
    ),
    "direct: the concatenated channel used as the branch's": (
        "check_direct_weights",
        False,
        "branch_of",
        """
        def direct_weights(model, source_unit, target_unit):
            target_layer, target_channel = parse_unit(target_unit)
            if target_layer.startswith("mixed") and "_" not in target_layer:
                target_layer = branch_of(target_unit)[0]
            _, source_channel = parse_unit(source_unit)
            return getattr(model, f"{target_layer}_pre_relu_conv").weight[target_channel, source_channel].detach()
    """,
    ),
    # -- exercise 2 --
    "expanded: the bottleneck's ReLU applied to its weights": (
        "check_expanded_weights",
        False,
        "ReLU",
        """
        def expanded_weights_bottleneck(model, source_unit, target_unit):
            branch, channel = branch_of(target_unit)
            _, source = parse_unit(source_unit)
            w_branch = getattr(model, f"{branch}_pre_relu_conv").weight[channel]
            w_neck = getattr(model, f"{branch}_bottleneck_pre_relu_conv").weight[:, source, 0, 0]
            return torch.einsum("bij,b->ij", w_branch, torch.relu(w_neck)).detach()
    """,
    ),
    "expanded: the bottleneck's weights left out": (
        "check_expanded_weights",
        False,
        "weighted by its weight",
        """
        def expanded_weights_bottleneck(model, source_unit, target_unit):
            branch, channel = branch_of(target_unit)
            return getattr(model, f"{branch}_pre_relu_conv").weight[channel].sum(0).detach()
    """,
    ),
    # -- exercise 3 --
    "curve: y axis pointing down": (
        "check_curve_stimulus",
        False,
        "y axis points UP",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            c = (size - 1) / 2
            coords = torch.arange(size, dtype=torch.float64) - c
            y, x = torch.meshgrid(coords, coords, indexing="ij")  # y grows downwards: wrong
            phi, half = math.radians(orientation), math.radians(min(width, 360.0)) / 2
            cx, cy = -radius * math.cos(phi), -radius * math.sin(phi)
            angle = torch.remainder(torch.atan2(y - cy, x - cx) - phi + math.pi, 2 * math.pi) - math.pi
            d = (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs()
            d = torch.where(angle.abs() <= half, d, torch.full_like(d, 99.0))
            return (0.5 + thickness / 2 - d).clamp(0, 1).float().expand(3, -1, -1).clone()
    """,
    ),
    "curve: the circle's centre in front of the arc": (
        "check_curve_stimulus",
        False,
        "BEHIND",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            c = (size - 1) / 2
            coords = torch.arange(size, dtype=torch.float64) - c
            y, x = torch.meshgrid(-coords, coords, indexing="ij")
            phi, half = math.radians(orientation), math.radians(min(width, 360.0)) / 2
            cx, cy = radius * math.cos(phi), radius * math.sin(phi)  # wrong side
            angle = torch.remainder(torch.atan2(y - cy, x - cx) - phi - math.pi + math.pi, 2 * math.pi) - math.pi
            d = (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs()
            d = torch.where(angle.abs() <= half, d, torch.full_like(d, 99.0))
            return (0.5 + thickness / 2 - d).clamp(0, 1).float().expand(3, -1, -1).clone()
    """,
    ),
    "curve: width taken as the half-width": (
        "check_curve_stimulus",
        False,
        "whole arc's angular extent",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            return library_curve(orientation, radius=radius, width=min(2 * width, 360.0), size=size,
                                 thickness=thickness)[0]
    """,
    ),
    "curve: the angle from the orientation not wrapped (an arc facing 270 degrees vanishes)": (
        "check_curve_stimulus",
        False,
        "wrap the angle",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            c = (size - 1) / 2
            coords = torch.arange(size, dtype=torch.float64) - c
            y, x = torch.meshgrid(-coords, coords, indexing="ij")
            phi, half = math.radians(orientation), math.radians(min(width, 360.0)) / 2
            cx, cy = -radius * math.cos(phi), -radius * math.sin(phi)
            angle = torch.atan2(y - cy, x - cx) - phi  # in [-pi - phi, pi - phi]: not wrapped
            d = (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs()
            d = torch.where(angle.abs() <= half, d, torch.full_like(d, 99.0))
            return (0.5 + thickness / 2 - d).clamp(0, 1).float().expand(3, -1, -1).clone()
    """,
    ),
    "curve: angles in [0, 360), their difference not wrapped (an arc across 0 degrees is cut)": (
        "check_curve_stimulus",
        False,
        "wrap the angle",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            c = (size - 1) / 2
            coords = torch.arange(size, dtype=torch.float64) - c
            y, x = torch.meshgrid(-coords, coords, indexing="ij")
            phi, half = math.radians(orientation % 360), math.radians(min(width, 360.0)) / 2
            cx, cy = -radius * math.cos(phi), -radius * math.sin(phi)
            angle = torch.remainder(torch.atan2(y - cy, x - cx), 2 * math.pi) - phi
            d = (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs()
            d = torch.where(angle.abs() <= half, d, torch.full_like(d, 99.0))
            return (0.5 + thickness / 2 - d).clamp(0, 1).float().expand(3, -1, -1).clone()
    """,
    ),
    # -- exercise 4 --
    "tuning: the maximum over the map": (
        "check_tuning_curve",
        False,
        "not its maximum",
        """
        def radial_tuning_curve(model, unit, angles, radius, size):
            layer, channel = parse_unit(unit, model)
            images = stimuli.curve(angles, radius=radius, size=size)
            acts = cs.activations(model, images, [layer])[layer]
            return acts[:, channel].amax(dim=(1, 2))
    """,
    ),
    "tuning: the centre as H // 2": (  # a visible case has an even map (10 x 10)
        "check_tuning_curve",
        False,
        "(H - 1) // 2",
        """
        def radial_tuning_curve(model, unit, angles, radius, size):
            layer, channel = parse_unit(unit, model)
            acts = cs.activations(model, stimuli.curve(angles, radius=radius, size=size), [layer])[layer]
            return acts[:, channel, acts.shape[-2] // 2, acts.shape[-1] // 2]
    """,
    ),
    "tuning: the pre-ReLU value": (
        "check_tuning_curve",
        False,
        "forget the ReLU",
        """
        def radial_tuning_curve(model, unit, angles, radius, size):
            layer, channel = parse_unit(unit, model)
            name = layer + "_pre_relu"
            acts = cs.activations(model, stimuli.curve(angles, radius=radius, size=size), [name])[name]
            h, w = acts.shape[-2:]
            return acts[:, channel, (h - 1) // 2, (w - 1) // 2]
    """,
    ),
    # -- exercise 5 --
    "circuit: absolute values": (
        "check_read_circuit",
        False,
        "Keep the sign",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit).abs().sum(dim=(1, 2))
            limit = threshold * totals.max()
            order = torch.argsort(totals, descending=True).tolist()
            return [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] > limit], []
    """,
    ),
    "circuit: only the centre entry": (
        "check_read_circuit",
        False,
        "whole k x k kernel",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit)[:, 2, 2]
            limit = threshold * totals.abs().max()
            order = torch.argsort(totals, descending=True).tolist()
            excites = [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] > limit]
            inhibits = [(format_unit(source_layer, c), float(totals[c])) for c in reversed(order) if totals[c] < -limit]
            return excites, inhibits
    """,
    ),
    "circuit: an absolute threshold": (
        "check_read_circuit",
        False,
        "relative",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit).sum(dim=(1, 2))
            order = torch.argsort(totals, descending=True).tolist()
            excites = [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] > threshold]
            inhibits = [(format_unit(source_layer, c), float(totals[c])) for c in reversed(order) if totals[c] < -threshold]
            return excites, inhibits
    """,
    ),
    "circuit: inhibitors in the wrong order": (
        "check_read_circuit",
        False,
        "most negative",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit).sum(dim=(1, 2))
            limit = threshold * totals.abs().max()
            order = torch.argsort(totals, descending=True).tolist()
            excites = [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] > limit]
            inhibits = [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] < -limit]
            return excites, inhibits
    """,
    ),
    # -- exercise 6 --
    "nmf: a truncated SVD": (
        "check_nmf",
        False,
        "non-negative",
        """
        def nmf(x, k, n_iter=500, seed=0):
            u, s, vh = torch.linalg.svd(x.double(), full_matrices=False)
            w, h = u[:, :k] * s[:k], vh[:k]
            return w, h
    """,
    ),
    "nmf: rows of h not normalised": (
        "check_nmf",
        False,
        "unit L2 norm",
        """
        def nmf(x, k, n_iter=500, seed=0):
            gen = torch.Generator().manual_seed(seed)
            x = x.double()
            w = torch.rand(x.shape[0], k, generator=gen, dtype=torch.float64)
            h = torch.rand(k, x.shape[1], generator=gen, dtype=torch.float64)
            for _ in range(n_iter):
                h = h * (w.T @ x) / (w.T @ w @ h + 1e-12)
                w = w * (x @ h.T) / (w @ h @ h.T + 1e-12)
            return w, h
    """,
    ),
    "nmf: no epsilon": (
        "check_nmf",
        False,
        "eps",
        """
        def nmf(x, k, n_iter=500, seed=0):
            gen = torch.Generator().manual_seed(seed)
            x = x.double()
            w = torch.rand(x.shape[0], k, generator=gen, dtype=torch.float64)
            h = torch.rand(k, x.shape[1], generator=gen, dtype=torch.float64)
            for _ in range(n_iter):
                h = h * (w.T @ x) / (w.T @ w @ h)
                w = w * (x @ h.T) / (w @ h @ h.T)
            norms = h.norm(dim=1, keepdim=True)
            return w * norms.T, h / norms
    """,
    ),
    "nmf: an unseeded start": (
        "check_nmf",
        False,
        "seed the random start",
        NMF.replace("gen = torch.Generator().manual_seed(seed)", "gen = None  # not seeded"),
    ),
    "nmf: the seed ignored": (
        "check_nmf",
        False,
        "seed the random start",
        NMF.replace("manual_seed(seed)", "manual_seed(0)"),
    ),
    "nmf: n_iter ignored": (
        "check_nmf",
        False,
        "run exactly n_iter updates",
        NMF.replace("range(n_iter)", "range(500)"),
    ),
    "nmf: n_iter counting the updates of h and of w separately": (
        "check_nmf",
        False,
        "run exactly n_iter updates",
        NMF.replace("range(n_iter)", "range(n_iter // 2)"),
    ),
    # -- exercise 7 --
    "branches: the end of a range included": (
        "check_branch_shares",
        False,
        "excludes its end",
        """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            ranges, start = {}, 0
            for name in names:
                ranges[name] = (start, start + model.layer_channels[name])
                start += model.layer_channels[name]
            held_by = [next(n for n, (lo, hi) in ranges.items() if lo <= c <= hi) for c in channels]
            return held_by, {n: (held_by.count(n) / len(channels) if channels else 0.0) for n in names}
    """,
    ),
    "branches: mixed3b's widths hard-coded": (
        "check_branch_shares",
        False,
        "read each branch's width from model.layer_channels",
        """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            bounds = [0, 128, 320, 416, 480]  # mixed3b's
            held_by = [next(names[i] for i in range(4) if bounds[i] <= c < bounds[i + 1]) for c in channels]
            return held_by, {n: (held_by.count(n) / len(channels) if channels else 0.0) for n in names}
    """,
    ),
    "branches: counts, not shares": (
        "check_branch_shares",
        False,
        "FRACTIONS",
        """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            ranges, start = {}, 0
            for name in names:
                ranges[name] = (start, start + model.layer_channels[name])
                start += model.layer_channels[name]
            held_by = [next(n for n, (lo, hi) in ranges.items() if lo <= c < hi) for c in channels]
            return held_by, {n: float(held_by.count(n)) for n in names}
    """,
    ),
    "branches: only the branches that hold a channel": (
        "check_branch_shares",
        False,
        "EVERY branch",
        """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            ranges, start = {}, 0
            for name in names:
                ranges[name] = (start, start + model.layer_channels[name])
                start += model.layer_channels[name]
            held_by = [next(n for n, (lo, hi) in ranges.items() if lo <= c < hi) for c in channels]
            return held_by, {n: held_by.count(n) / len(channels) for n in set(held_by)}
    """,
    ),
    "branches: short names": (
        "check_branch_shares",
        False,
        "layer name",
        """
        def branch_shares(model, block, channels):
            names = ["1x1", "3x3", "5x5", "pool_reduce"]
            ranges, start = {}, 0
            for name in names:
                ranges[name] = (start, start + model.layer_channels[f"{block}_{name}"])
                start += model.layer_channels[f"{block}_{name}"]
            held_by = [next(n for n, (lo, hi) in ranges.items() if lo <= c < hi) for c in channels]
            return held_by, {n: (held_by.count(n) / len(channels) if channels else 0.0) for n in names}
    """,
    ),
    # -- exercise 8 --
    "banding: column means (vertical bands)": (
        "check_banding_index",
        False,
        "constant along each ROW",
        """
        def banding_index(weight):
            centred = weight - weight.mean(dim=(-2, -1), keepdim=True)
            means = centred.mean(dim=-2, keepdim=True).expand_as(centred)
            return float(means.pow(2).sum() / centred.pow(2).sum())
    """,
    ),
    "banding: kernels not centred": (
        "check_banding_index",
        False,
        "centre each kernel",
        """
        def banding_index(weight):
            means = weight.mean(dim=-1, keepdim=True).expand_as(weight)
            return float(means.pow(2).sum() / weight.pow(2).sum())
    """,
    ),
    "banding: row means counted once": (
        "check_banding_index",
        False,
        "each row mean stands for the k entries",
        """
        def banding_index(weight):
            centred = weight - weight.mean(dim=(-2, -1), keepdim=True)
            return float(centred.mean(dim=-1).pow(2).sum() / centred.pow(2).sum())
    """,
    ),
    "banding: a mean of per-kernel ratios": (
        "check_banding_index",
        False,
        "pool over the kernels",
        """
        def banding_index(weight):
            centred = weight - weight.mean(dim=(-2, -1), keepdim=True)
            rows = centred.mean(dim=-1, keepdim=True).expand_as(centred)
            return float((rows.pow(2).sum(dim=(-2, -1)) / centred.pow(2).sum(dim=(-2, -1))).mean())
    """,
    ),
}


def _mistake(code: str):
    return mistake_function(code, _namespace(), EXERCISES.values())


def _assert_mistake_caught(name: str) -> None:
    check, needs_hidden, hint, code = MISTAKES[name]
    message = assert_mistake_fails(getattr(checks, check), _mistake(code), hint, needs_hidden)
    assert "expected" in message


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_plausible_mistake_fails_with_a_hint(name):
    _assert_mistake_caught(name)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistakes_fail_under_a_private_key(name):
    # The hidden cases the grader runs (other values, the same shapes) catch them all the same.
    with private_key(PRIVATE_KEYS[0]):
        _assert_mistake_caught(name)


def test_no_channels_divided_by_zero_gets_the_empty_list_hint():
    # An error, not a value (no "expected" line): only a hidden case has no channels.
    code = """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            ranges, start = {}, 0
            for name in names:
                ranges[name] = (start, start + model.layer_channels[name])
                start += model.layer_channels[name]
            held_by = [next(n for n, (lo, hi) in ranges.items() if lo <= c < hi) for c in channels]
            return held_by, {n: held_by.count(n) / len(channels) for n in names}
    """
    fn = _mistake(code)
    checks.check_branch_shares(fn)  # the visible cases have channels
    with pytest.raises(CheckFailed, match=r"raised ZeroDivisionError(.|\n)*no channels: every share is 0.0"):
        checks.check_branch_shares(fn, hidden=True)


def test_the_librarys_branch_of_is_unavailable_while_branch_shares_is_checked():
    code = """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            held_by = [branch_of(f"{block}:{c}")[0] for c in channels]
            return held_by, {n: (held_by.count(n) / len(channels) if channels else 0.0) for n in names}
    """
    with pytest.raises(CheckFailed, match=r"library's own answer(.|\n)*write it yourself"):
        checks.check_branch_shares(_mistake(code))


def test_each_test_cell_checks_the_function_its_solution_cell_defines():
    nb = nbformat.read(SOLUTION, as_version=4)
    ids = {c.metadata.nbgrader["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    assert set(GRADE_IDS.values()) == ids
    assert {check: fn for check, (fn, _) in graded_checks(SOLUTION).items()} == EXERCISES


def test_every_exercise_has_a_mistake_that_fails():
    assert {check for check, *_ in MISTAKES.values()} == set(EXERCISES)
    first = {}
    for check, needs_hidden, _, _ in MISTAKES.values():
        first.setdefault(check, needs_hidden)
    assert not any(first.values()), "the round trip's mistake of each exercise should fail visibly"


# Equally right variants the checks must accept: (check, code).
EQUIVALENT = {
    "circuit: sorted(), ties in channel order": (
        "check_read_circuit",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit).sum(dim=(1, 2))
            limit = threshold * float(totals.abs().max())
            pairs = [(format_unit(source_layer, c), float(t)) for c, t in enumerate(totals)]
            excites = sorted([p for p in pairs if p[1] > limit], key=lambda p: p[1], reverse=True)
            inhibits = sorted([p for p in pairs if p[1] < -limit], key=lambda p: p[1])
            return excites, inhibits
    """,
    ),
    "circuit: torch.argsort, ascending for the inhibitors": (
        "check_read_circuit",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit).sum(dim=(1, 2))
            limit = threshold * totals.abs().max()
            down, up = torch.argsort(totals, descending=True), torch.argsort(totals)
            excites = [(format_unit(source_layer, int(c)), float(totals[c])) for c in down if totals[c] > limit]
            inhibits = [(format_unit(source_layer, int(c)), float(totals[c])) for c in up if totals[c] < -limit]
            return excites, inhibits
    """,
    ),
    "curve: no round caps at the arc's ends": (
        "check_curve_stimulus",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            c = (size - 1) / 2
            coords = torch.arange(size, dtype=torch.float64) - c
            y, x = torch.meshgrid(-coords, coords, indexing="ij")
            phi, half = math.radians(orientation), math.radians(min(width, 360.0)) / 2
            cx, cy = -radius * math.cos(phi), -radius * math.sin(phi)
            angle = torch.remainder(torch.atan2(y - cy, x - cx) - phi + math.pi, 2 * math.pi) - math.pi
            d = (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs()
            d = torch.where(angle.abs() <= half, d, torch.full_like(d, 99.0))
            return (0.5 + thickness / 2 - d).clamp(0, 1).float().expand(3, -1, -1).clone()
    """,
    ),
    "nmf: the solution's start without its scale (the updates are scale-invariant)": ("check_nmf", NMF),
    "nmf: h drawn first, by the global generator": (
        "check_nmf",
        NMF.replace("gen = torch.Generator().manual_seed(seed)", "torch.manual_seed(seed); gen = None")
        .replace("w = torch.rand(x.shape[0], k, generator=gen, dtype=torch.float64)\n        h = torch.rand(k, x.shape[1], generator=gen, dtype=torch.float64)",
                 "h = torch.rand(k, x.shape[1], dtype=torch.float64)\n        w = torch.rand(x.shape[0], k, dtype=torch.float64)"),
    ),
    "nmf: w updated before h": (
        "check_nmf",
        NMF.replace("h = h * (w.T @ x) / (w.T @ w @ h + 1e-12)\n            w = w * (x @ h.T) / (w @ h @ h.T + 1e-12)",
                    "w = w * (x @ h.T) / (w @ h @ h.T + 1e-12)\n            h = h * (w.T @ x) / (w.T @ w @ h + 1e-12)"),
    ),
    "nmf: in float32, from |randn|": (
        "check_nmf",
        NMF.replace("torch.float64", "torch.float32").replace("x.double()", "x.float()")
        .replace("torch.rand(", "torch.randn(").replace("generator=gen, dtype=torch.float32)", "generator=gen, dtype=torch.float32).abs()"),
    ),
}


@pytest.mark.parametrize("name", sorted(EQUIVALENT))
def test_an_equally_right_variant_passes(name, capsys):
    check, code = EQUIVALENT[name]
    assert_check_passes(getattr(checks, check), _mistake(code), True, capsys, seconds=10)


def test_the_variants_differ_from_the_reference(reference):
    # The tie-breaking variants give another order than the solution on a planted case, and the
    # NMF variants (but the unscaled start, the same up to scale) other factors: each equivalence
    # test above tests something.
    model = PlantedCurveModel()
    ref = reference["read_circuit"](model, "curves:2", "lines", 0.1)
    for name in ("circuit: sorted(), ties in channel order", "circuit: torch.argsort, ascending for the inhibitors"):
        got = _mistake(EQUIVALENT[name][1])(model, "curves:2", "lines", 0.1)
        assert sorted(got[0]) == sorted(ref[0]) and sorted(got[1]) == sorted(ref[1])
        assert got != ref, name
    x = torch.rand(20, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, h = reference["nmf"](x, 3, 5, 0)
    for name in [n for n in EQUIVALENT if n.startswith("nmf") and "scale" not in n]:
        _, h2 = _mistake(EQUIVALENT[name][1])(x, 3, 5, 0)
        assert not torch.allclose(h2.double(), h, atol=1e-3), name


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_over_the_wire(reference, check, capsys):
    assert_passes_over_the_wire(getattr(checks, check), reference[EXERCISES[check]], capsys)


# =============================================================================================
# What chapter 3 added to the library
# =============================================================================================
def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts)


def test_tuning_curve_figure_marks_the_preferred_orientation_and_its_weights(synthetic_model):
    import matplotlib.pyplot as plt

    planted = PlantedCurveModel()
    curves = stimuli.tuning_curve(planted, ["curves:0", "curves:2"], angles=8, size=44, radius=12.0)
    assert [tc.peak for tc in curves] == [CURVE_ORIENTATIONS[0], CURVE_ORIENTATIONS[2]]
    fig = stimuli.plot_tuning_curves(curves, caption=PLANTED_CAPTION)
    assert "PLANTED CIRCUIT" in _texts(fig) and fig.axes[0].name == "polar"
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4  # a curve and a preferred-orientation spoke per unit
    spoke = lines[3].get_xdata()
    assert spoke[0] == pytest.approx(math.radians(curves[1].preferred))
    plt.close(fig)
    fig = stimuli.plot_tuning_curves(curves[0], model=synthetic_model, polar=False)
    assert "SYNTHETIC WEIGHTS" in _texts(fig) and fig.axes[0].name != "polar"
    plt.close(fig)
