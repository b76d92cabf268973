"""scripts/reproduce_circuits.py: a check against the articles' published results, with exit codes.

0: every claim agrees; 1: any disagrees; 2: it cannot run (no published data, no weights,
synthetic weights). The comparison is tested on planted measurements; one end-to-end run uses
a file in inception5h's format with random values (so "unverified" weights).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "reproduce_circuits.py"


@pytest.fixture(scope="module")
def rc():
    spec = importlib.util.spec_from_file_location("reproduce_circuits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def pub(rc):
    return rc.load_published()  # the articles' data, from the mirror in tests/conftest.py


def agreeing(rc, pub, orientations=None):
    """Planted measurements that say exactly what the articles say."""
    sums = {(a, b): (1.0 if kind == "same" else -1.0) for a, b, kind in rc.weight_pairs(pub)}
    car = {
        "4b:237": {"top": 0.5, "bottom": -0.5, "total": 0.1},
        "4b:491": {"top": 0.1, "bottom": 0.6, "total": 0.9},
        "4b:373": {"top": -0.4, "bottom": 0.7, "total": 0.2},
    }
    return rc.Measured(dict(orientations or pub.orientations_3b), sums, car)


def test_published_values_are_the_articles(rc, pub):
    assert list(pub.orientations_3b) == rc.CURVES_3B
    assert pub.pairs == [(147, 379), (81, 385), (71, 340), (145, 388)]  # Curve Circuits' pairs
    # The opposite early curve of each pair is the other pair's source facing the other way.
    assert rc.opposite_partners(pub) == {379: 145, 385: 71, 340: 81, 388: 147}
    assert rc.load_published("zoom-in").pairs == [(147, 379), (81, 385), (145, 342), (71, 330)]


def test_all_agree_exit_0(rc, pub, monkeypatch, capsys):
    planted = agreeing(rc, pub)
    monkeypatch.setattr(rc, "load_model", lambda *a, **k: (object(), "real"))
    monkeypatch.setattr(rc, "measure", lambda model, p, **k: planted)
    assert rc.main([]) == 0
    out = capsys.readouterr().out
    assert "claim" in out and "article's value" in out and "verdict" in out
    verdicts = [line.rsplit("|", 1)[-1].strip() for line in out.splitlines() if line.count(" | ") == 3]
    assert verdicts[0] == "verdict" and verdicts[1:] == ["AGREES"] * 24
    assert "DISAGREES" not in out


def test_alignment_forgives_a_rotated_and_mirrored_convention(rc, pub):
    # Another origin and the other sense of rotation: the same relative orientations.
    other = {u: (77.0 - a) % 360.0 for u, a in pub.orientations_3b.items()}
    rows, notes = rc.compare(pub, agreeing(rc, pub, other))
    assert all(r.agrees for r in rows), rc.format_table(rows)
    assert "mirrored" in notes[0]
    direction, offset, aligned = rc.align(other, pub.orientations_3b)
    assert direction == -1
    for u, a in pub.orientations_3b.items():
        assert abs(rc.circular_difference(aligned[u], a)) < 0.5


def test_planted_disagreement_exit_1(rc, pub, monkeypatch, capsys):
    # Non-uniform rotation: no single rotation (or reflection) brings 379 and 343 back.
    shifted = dict(pub.orientations_3b)
    shifted[379] = (shifted[379] + 90.0) % 360.0
    shifted[343] = (shifted[343] - 100.0) % 360.0
    planted = agreeing(rc, pub, shifted)
    planted.pair_sums[(147, 379)] = -0.3  # same orientation inhibits: against the article
    planted.car["4b:373"] = {"top": 0.4, "bottom": -0.7, "total": -0.3}  # wheels upside down
    monkeypatch.setattr(rc, "load_model", lambda *a, **k: (object(), "real"))
    monkeypatch.setattr(rc, "measure", lambda model, p, **k: planted)
    assert rc.main([]) == 1
    out = capsys.readouterr().out
    bad = [line for line in out.splitlines() if line.rstrip().endswith("DISAGREES")]
    claims = " ".join(bad)
    assert "3b:379" in claims and "3b:343" in claims
    assert "3a:147 -> 3b:379 (same)" in claims
    assert "4b:373 wheels -> 4c:447 top" in claims and "4b:373 wheels -> 4c:447 bottom" in claims
    assert "3b:385" not in claims  # the others still agree
    assert "DISAGREE." in out


def test_unresponsive_unit_disagrees(rc, pub):
    planted = agreeing(rc, pub)
    planted.orientations_3b[406] = float("nan")
    rows, _ = rc.compare(pub, planted)
    (row,) = [r for r in rows if not r.agrees]
    assert "3b:406" in row.claim and row.measured == "no response"
    assert rc.exit_status(rows) == 1


def test_synthetic_weights_refused_exit_2(rc, capsys):
    assert rc.main(["--weights", "synthetic", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "REFUSING to run" in err and "SYNTHETIC" in err


def test_no_weights_exit_2(rc, capsys):
    # Offline, empty private cache, no $CIRCUITSCOPE_WEIGHTS (tests/conftest.py).
    assert rc.main(["--device", "cpu"]) == 2
    assert "REFUSING to run" in capsys.readouterr().err


def test_no_published_data_exit_2(rc, monkeypatch, capsys):
    from circuitscope.core import published

    def unavailable(layer="mixed3b"):
        raise published.DataUnavailableError("curve-detectors/radial/data.json: offline, no mirror")

    monkeypatch.setattr(published, "preferred_orientations", unavailable)
    monkeypatch.setattr(rc, "load_model", lambda *a, **k: pytest.fail("must not load weights"))
    assert rc.main([]) == 2
    assert "published data cannot be had" in capsys.readouterr().err


@pytest.fixture(scope="module")
def format_weights(request, tmp_path_factory):
    """conftest's ``real_format_weights`` when it exists, else a file made the same way here."""
    try:
        return Path(request.getfixturevalue("real_format_weights"))
    except pytest.FixtureLookupError:
        import torch

        from circuitscope.core.models.weights import expected_shapes

        gen = torch.Generator().manual_seed(0)
        state = {k: torch.randn(s, generator=gen) * 0.05 for k, s in expected_shapes().items()}
        path = tmp_path_factory.mktemp("weights") / "inception5h_format.pth"
        torch.save(state, path)
        return path


def test_unverified_refused_without_flag(rc, format_weights, capsys):
    assert rc.main(["--weights", str(format_weights), "--device", "cpu"]) == 2
    assert "--allow-unverified" in capsys.readouterr().err


def test_end_to_end_on_unverified_weights(rc, format_weights, capsys):
    from circuitscope.core.device import one_cpu_thread

    argv = ["--weights", str(format_weights), "--allow-unverified", "--device", "cpu",
            "--size", "96", "--angles", "24", "--radii", "15"]  # fmt: skip
    with one_cpu_thread():
        status = rc.main(argv)
    out = capsys.readouterr().out
    assert status in (0, 1), out
    assert "UNVERIFIED weights" in out.splitlines()[0]
    assert "article's value" in out and "verdict" in out
    for unit in rc.CURVES_3B:
        assert f"3b:{unit} preferred orientation" in out
    assert "4b:237 windows -> 4c:447 top" in out
    assert ("DISAGREES" in out) == (status == 1)
