"""The articles' published results, read through the registry from the test mirror (never the network)."""

from __future__ import annotations

import numpy as np
import pytest

from circuitscope.core import provenance, published, registry
from circuitscope.methods import stimuli

pytestmark = pytest.mark.skipif(not registry.mirrors(), reason="no data mirror (shared/data) beside this checkout")

CURVES_3B = {324, 330, 340, 342, 343, 349, 379, 385, 388, 406}  # "Curve Detectors": the ten 3b units
FIGURE = "zoom-in/images/curves.png"


@pytest.fixture
def nothing_to_be_had(tmp_path, monkeypatch):
    """Offline, an empty mirror and an empty cache: no published file can be had."""
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CIRCUITSCOPE_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(tmp_path / "cache"))
    published._sprite.cache_clear()  # a sheet read earlier must not hide the missing file
    yield
    published._sprite.cache_clear()


def test_a_published_render_is_one_cell_of_the_sheet():
    cell = published.published_render("4b:111")
    assert cell.shape == (110, 110, 3) and cell.dtype == np.uint8 and cell.std() > 0
    assert np.array_equal(cell, published.published_render("mixed4b:111"))
    assert not np.array_equal(cell, published.published_render("4b:112"))


def test_an_unknown_layer_or_channel_says_what_exists():
    with pytest.raises(KeyError, match="mixed3b, mixed4a, mixed4b, mixed4d, mixed5a"):
        published.published_render("4c:1")
    with pytest.raises((KeyError, ValueError), match="512 channels"):
        published.published_render("4b:512")


def test_preferred_orientations_are_the_ten_curve_detectors():
    prefs = published.preferred_orientations()
    assert set(prefs) == CURVES_3B
    assert all(0 <= v < 360 for v in prefs.values())
    assert all(len(curve) == 720 for curve in published.radial_tuning().values())


def test_families_of_mixed3b():
    groups = published.families("mixed3b")
    assert 379 in groups["Curves"] and published.family_of("3b:379") == "Curves"
    units = [u for members in groups.values() for u in members]
    assert len(units) == len(set(units))  # a partition: no unit in two families
    with pytest.raises(KeyError, match="conv2d0"):
        published.families("mixed4a")


def test_a_figure_carries_its_credit_and_says_adapted_when_cropped():
    fig = published.figure(FIGURE, caption="Curve detectors")
    assert fig.available and "CC BY 4.0" in fig.html and "Figure from Olah et al." in fig.html
    assert "Zoom In" in fig.html and "data:image/" in fig.html and "Curve detectors" in fig.html
    cropped = published.figure(FIGURE, crop=(0, 0, 200, 100))
    assert "Figure adapted from" in cropped.html and "CC BY 4.0" in cropped.html


def test_an_unavailable_figure_is_a_note_not_an_error(nothing_to_be_had):
    fig = published.figure(FIGURE)
    assert not fig.available and "not available here" in fig.html
    assert registry.ENV_MIRROR in fig.html and "distill.pub/2020/circuits/zoom-in" in fig.html
    grid = published.render_grid(["4b:111", "4b:112"])
    assert not grid.available
    with pytest.raises(registry.DataUnavailableError):
        published.published_render("4b:111")


def test_dog_cat_is_the_published_activations():
    example = published.dog_cat()
    assert example.image.shape == (3, 224, 224) and 0 <= float(example.image.min()) <= float(example.image.max()) <= 1
    a = example.acts["mixed4d"]
    assert a.shape == (528, 14, 14) and float(a.max()) == pytest.approx(887.0, abs=1.0)
    assert provenance.weights_state(example) == "published" and not example.is_synthetic
    assert "CC BY 4.0" in example.weights_source and "Building Blocks" in example.weights_source
    with pytest.raises(KeyError, match="published photos"):
        published.dog_cat("cat")


def test_a_block_that_needs_unavailable_data_shows_a_note_and_goes_on(nothing_to_be_had, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    reached = []
    with published.optional():
        published.radial_tuning("mixed3b")
        reached.append("after")  # never: the block stops where the file was needed
    assert not reached and len(shown) == 1 and not shown[0].available
    assert "curve-detectors/radial/data.json" in shown[0].html and "CIRCUITSCOPE_MIRROR" in shown[0].html
    with pytest.raises(KeyError):  # other errors are not swallowed
        with published.optional():
            published.radial_tuning("mixed9z")


# -- comparing a model's radial tuning with the published one ------------------------------------
def _as_measured(data, units, shift=0.0, mirrored=False, step=1):
    """TuningCurves that a model whose tuning equals the article's (turned by ``shift``) would give.

    Angles in the stimuli's convention (counter-clockwise); the article's are clockwise. With
    ``mirrored`` the conversion is forgotten (the article's angles used as ours).
    """
    import torch

    from circuitscope.methods import stimuli

    art = np.arange(0, 720, step) / 2.0  # article angles at which we "measure"
    ours = art if mirrored else stimuli.from_article_orientation(art)
    curves = []
    for u in units:
        pub = data[u]
        values = pub[np.rint(((art - shift) % 360) * 2).astype(int) % 720]  # measured(t) = published(t - shift)
        r = torch.tensor(values)
        peak = float(ours[int(np.argmax(values))])
        curves.append(stimuli.TuningCurve(f"3b:{u}", torch.tensor(ours), r, peak, peak, 360.0))
    return curves


def test_compare_radial_tuning_scores_the_published_data_against_itself():
    data = published.radial_tuning("mixed3b")
    units = sorted(CURVES_3B)
    same = stimuli.compare_radial_tuning(_as_measured(data, units), "mixed3b")
    assert [c.unit for c in same] == [f"3b:{u}" for u in units]
    for c in same:
        assert c.correlation == pytest.approx(1.0) and c.difference == pytest.approx(0.0)
        assert c.shift == pytest.approx(0.0) and c.agrees()
        assert c.published_peak == published.preferred_orientations("mixed3b")[int(c.unit[3:])]
    turned = stimuli.compare_radial_tuning(_as_measured(data, units, shift=40.0), data=data)
    for c in turned:
        assert c.difference == pytest.approx(40.0, abs=1.0) and c.shift == pytest.approx(40.0, abs=1.0)
        assert not c.agrees(30.0) and c.correlation < 0.9
    # forgetting that the article counts clockwise is caught: peaks land on the mirror image
    mirrored = stimuli.compare_radial_tuning(_as_measured(data, units, mirrored=True), data=data)
    assert np.mean([c.correlation for c in mirrored]) < 0.5
    assert sum(c.agrees() for c in mirrored) < len(units) // 2
    with pytest.raises(KeyError, match="no unit 1"):
        stimuli.compare_radial_tuning(_as_measured({1: data[379]}, [1]), data=data)
