"""Chapter 3: what is particular to its exercise checks.

What every chapter's exercises satisfy (the reference passes, the stub and the named mistakes of
``tests/mistakes/ch3_circuits.py`` fail, ...) is tested in ``tests/test_chapters.py``; the
tuning-curve figure in ``test_stimuli.py``. Here: an error gets its own hint (no channels), the
library's ``branch_of`` is unavailable while ``branch_shares`` is checked, and equally right
variants (``EQUIVALENT``) pass and differ from the reference.
"""

from __future__ import annotations

import pytest
import torch
from exercise_harness import assert_check_passes, chapter

from circuitscope.checks import CheckFailed
from circuitscope.methods.planted import PlantedCurveModel

pytestmark = pytest.mark.usefixtures("one_thread")

CHAPTER = chapter("ch3_circuits")
checks = CHAPTER.checks
NMF = CHAPTER.mistakes.NMF  # a right NMF (from a start other than the solution's)


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
    fn = CHAPTER.mistake(code)
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
        checks.check_branch_shares(CHAPTER.mistake(code))


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
    assert_check_passes(getattr(checks, check), CHAPTER.mistake(code), True, capsys, seconds=10)


def test_the_variants_differ_from_the_reference(reference):
    # The tie-breaking variants give another order than the solution on a planted case, and the
    # NMF variants (but the unscaled start, the same up to scale) other factors: each equivalence
    # test above tests something.
    model = PlantedCurveModel()
    ref = reference["read_circuit"](model, "curves:2", "lines", 0.1)
    for name in ("circuit: sorted(), ties in channel order", "circuit: torch.argsort, ascending for the inhibitors"):
        got = CHAPTER.mistake(EQUIVALENT[name][1])(model, "curves:2", "lines", 0.1)
        assert sorted(got[0]) == sorted(ref[0]) and sorted(got[1]) == sorted(ref[1])
        assert got != ref, name
    x = torch.rand(20, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _, h = reference["nmf"](x, 3, 5, 0)
    for name in [n for n in EQUIVALENT if n.startswith("nmf") and "scale" not in n]:
        _, h2 = CHAPTER.mistake(EQUIVALENT[name][1])(x, 3, 5, 0)
        assert not torch.allclose(h2.double(), h, atol=1e-3), name

