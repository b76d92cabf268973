"""The articles' published results, read through the registry from the test mirror (never the network)."""

from __future__ import annotations

import numpy as np
import pytest

from circuitscope import provenance, published, registry

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
