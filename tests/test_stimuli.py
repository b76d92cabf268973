"""Synthetic stimuli have exact geometry; tuning curves find preferred orientations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from circuitscope import stimuli
from circuitscope.planted import PlantedCurveModel
from circuitscope.stimuli import arc_geometry, circular_mean, curve, high_low_frequency, line, tuning_curve


def rotate(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate images counter-clockwise (as displayed) about their centre, bilinearly.

    Output pixel at (u, v) (v up) takes the input at R(-degrees) (u, v); in grid_sample's
    coordinates (x right, y down) that is (c x - s y, s x + c y).
    """
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=images.dtype).expand(len(images), 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", align_corners=True)


def centroid_angle(images: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted mean direction (degrees, v up) of each image's pixels about ``centres``."""
    _, _, h, w = images.shape
    y, x = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    m = images[:, 0].double()
    du = x - centres[:, 0, None, None]
    dv = centres[:, 1, None, None] - y
    return torch.rad2deg(torch.atan2((m * dv).sum((1, 2)), (m * du).sum((1, 2))))


# -- shapes, ranges, batching, devices ----------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [lambda **k: curve(30.0, **k), lambda **k: line(30.0, **k), lambda **k: high_low_frequency(30.0, **k)],
)
def test_stimuli_are_images_in_unit_range(make):
    img = make(size=(40, 50))
    assert img.shape == (1, 3, 40, 50) and img.dtype == torch.float32 and img.device.type == "cpu"
    assert float(img.min()) >= 0.0 and float(img.max()) <= 1.0 and float(img.std()) > 0.05


def test_parameters_broadcast_to_a_batch():
    imgs = curve([0.0, 90.0, 180.0, 270.0], radius=12.0, width=[90.0] * 4, size=32)
    assert imgs.shape == (4, 3, 32, 32)
    assert curve(0.0, radius=[8.0, 12.0, 16.0], size=32).shape == (3, 3, 32, 32)
    assert line(torch.arange(5) * 36.0, size=24).shape == (5, 3, 24, 24)
    with pytest.raises(ValueError, match="common length"):
        curve([0.0, 90.0], radius=[5.0, 6.0, 7.0])
    with pytest.raises(ValueError, match="line"):
        curve(0.0, radius=float("inf"))


def test_colours_and_device():
    img = curve(45.0, radius=10.0, size=33, foreground=(1.0, 0.0, 0.0), background=0.25)
    assert torch.allclose(img[0, :, 0, 0], torch.tensor([0.25, 0.25, 0.25]))  # a far corner is background
    mid = img[0, :, 16, 16]  # the arc's midpoint is the centre pixel
    assert torch.allclose(mid, torch.tensor([1.0, 0.0, 0.0]))
    assert curve(0.0, device="cpu", dtype=torch.float64).dtype == torch.float64
    if torch.cuda.is_available():
        assert curve([0.0, 1.0], device="cuda").device.type == "cuda"


# -- exact geometry -----------------------------------------------------------------------------
def test_arc_centre_line_is_at_the_given_radius_and_drawn():
    ori, radius = torch.tensor([0.0, 37.0, 123.0, 250.0]), 14.0
    points, centres = arc_geometry(ori, radius, width=150.0, size=65)
    assert torch.allclose(
        (points - centres[:, None]).norm(dim=-1), torch.full((4, 65), radius, dtype=torch.float64), atol=1e-9
    )
    assert torch.allclose(
        points[:, 32], torch.tensor([32.0, 32.0], dtype=torch.float64).expand(4, 2), atol=1e-9
    )
    # The rendered stroke covers its centre line: the pixel nearest each point (at most 0.71 px
    # away) is fully covered by a 3-px stroke.
    imgs = curve(ori, radius, width=150.0, size=65, thickness=3.0, dtype=torch.float64)
    cols, rows = points.round().long().unbind(-1)
    assert torch.all(imgs[torch.arange(4)[:, None], 0, rows, cols] == 1.0)


@pytest.mark.parametrize("radius", [9.0, 16.0, 23.5])
def test_drawn_pixels_lie_at_the_given_radius(radius):
    ori = torch.tensor([10.0, 100.0, 200.0])
    imgs = curve(ori, radius, width=180.0, size=71, thickness=2.0, dtype=torch.float64)
    _, centres = arc_geometry(ori, radius, width=180.0, size=71)
    y, x = torch.meshgrid(
        torch.arange(71.0, dtype=torch.float64), torch.arange(71.0, dtype=torch.float64), indexing="ij"
    )
    for img, c in zip(imgs[:, 0], centres):
        dist = torch.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2)
        drawn = img > 0
        assert float((dist[drawn] - radius).abs().max()) <= 1.0 + 0.5 + 1e-9  # half thickness + half aa
        mean_radius = float((img * dist).sum() / img.sum())
        assert abs(mean_radius - radius) < 0.15, mean_radius


def test_orientation_is_the_direction_the_curve_faces():
    ori = torch.tensor([0.0, 45.0, 90.0, 200.0, 333.0])
    imgs = curve(ori, 15.0, width=120.0, size=65)
    _, centres = arc_geometry(ori, 15.0, size=65)
    got = centroid_angle(imgs, centres)
    assert torch.allclose(
        torch.remainder(got - ori.double() + 180, 360) - 180, torch.zeros(5, dtype=torch.float64), atol=0.3
    )
    up = curve(90.0, 15.0, width=120.0, size=65)[0, 0]
    assert float(up[:32].sum()) < float(up[33:].sum())  # a "top of a circle": the arms go down


@pytest.mark.parametrize("size", [64, 65])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotating_the_orientation_by_90_degrees_rotates_the_image(size, k):
    base = 17.0
    cases = [
        (curve(base, 15.0, width=130.0, size=size), curve(base + 90 * k, 15.0, width=130.0, size=size)),
        (line(base, length=30.0, size=size), line(base + 90 * k, length=30.0, size=size)),
        (high_low_frequency(base, size=size), high_low_frequency(base + 90 * k, size=size)),
    ]
    for img, turned in cases:
        assert torch.allclose(torch.rot90(img, k, dims=(-2, -1)), turned, atol=1e-5)


@pytest.mark.parametrize("delta", [-12.0, 7.0, 20.0])
def test_small_rotations_rotate_the_image_approximately(delta):
    ori = torch.tensor([17.0, 140.0])
    imgs = curve(ori, 15.0, width=130.0, size=64, thickness=2.5, dtype=torch.float64)
    turned = curve(ori + delta, 15.0, width=130.0, size=64, thickness=2.5, dtype=torch.float64)
    resampled = rotate(imgs, delta)
    error = float((resampled - turned).abs().sum() / turned.sum())
    wrong_way = float((rotate(imgs, -delta) - turned).abs().sum() / turned.sum())
    assert error < 0.3 and wrong_way > 3 * error
    # The drawn curve's direction about its circle's centre turns by delta (up to pixel sampling).
    _, before = arc_geometry(ori, 15.0, size=64)
    _, after = arc_geometry(ori + delta, 15.0, size=64)
    shift = centroid_angle(turned, after) - centroid_angle(imgs, before)
    assert torch.allclose(
        torch.remainder(shift - delta + 180, 360) - 180, torch.zeros(2, dtype=torch.float64), atol=0.5
    )


def test_lines_pass_through_the_centre_at_their_orientation():
    img = line([0.0, 90.0], size=33, thickness=1.0)[:, 0]
    assert torch.all(img[0, 16] == 1.0) and float(img[0].sum()) == pytest.approx(33.0)  # the middle row
    assert torch.all(img[1, :, 16] == 1.0) and float(img[1].sum()) == pytest.approx(33.0)  # the middle column
    seg = line(0.0, length=10.0, size=33, thickness=1.0)[0, 0]
    assert (
        float(seg[16, 11:22].min()) == 1.0
        and float(seg[16, :9].max()) == 0.0
        and float(seg[16, 24:].max()) == 0.0
    )
    shifted = line(0.0, size=33, thickness=1.0, offset=5.0)[0, 0]  # along the normal (90 deg: up)
    assert torch.all(shifted[11] == 1.0)
    assert torch.allclose(line(10.0, size=32), line(190.0, size=32), atol=1e-6)  # period 180


def test_high_low_frequency_has_the_texture_on_the_oriented_side():
    img = high_low_frequency([0.0, 90.0], size=64, period_high=4.0)[:, 0]
    lap = (
        4 * img[:, 1:-1, 1:-1] - img[:, :-2, 1:-1] - img[:, 2:, 1:-1] - img[:, 1:-1, :-2] - img[:, 1:-1, 2:]
    ).abs()
    right, left = lap[0, :, 34:].mean(), lap[0, :, :28].mean()
    top, bottom = lap[1, :28].mean(), lap[1, 34:].mean()
    assert float(right) > 0.5 and float(left) < 1e-6  # orientation 0: high frequency to the right
    assert float(top) > 0.5 and float(bottom) < 1e-6  # orientation 90: high frequency above
    flat = high_low_frequency(0.0, size=64, mean=0.4)[0, 0]
    assert torch.allclose(flat[:, :28], torch.full_like(flat[:, :28], 0.4))  # the low side: flat grey at mean
    low = high_low_frequency(0.0, size=64, period_low=32.0)[0, 0]
    assert float(low[:, :28].std()) > 0.05  # a low-frequency grating instead of flat grey


# -- tuning curves ------------------------------------------------------------------------------
def test_circular_mean_wraps_around():
    assert circular_mean(torch.tensor([350.0, 10.0]), torch.tensor([1.0, 1.0])) == pytest.approx(
        0.0, abs=1e-9
    )
    assert circular_mean(torch.tensor([300.0, 320.0]), torch.tensor([1.0, 1.0])) == pytest.approx(310.0)
    assert circular_mean(
        torch.tensor([170.0, 20.0]), torch.tensor([1.0, 1.0]), period=180.0
    ) == pytest.approx(5.0)
    assert circular_mean(torch.tensor([90.0, 180.0]), torch.tensor([3.0, -5.0])) == pytest.approx(
        90.0
    )  # negatives ignored
    assert math.isnan(circular_mean(torch.tensor([0.0, 90.0]), torch.zeros(2)))


@pytest.fixture(scope="module")
def planted():
    return PlantedCurveModel()


def test_tuning_curve_of_line_units_peaks_at_their_orientation(planted):
    curves = tuning_curve(planted, [f"lines:{c}" for c in range(8)], stimulus="line", angles=16, size=44)
    assert len(curves) == 8 and all(c.period == 180.0 for c in curves)
    for c, tc in enumerate(curves):
        assert tc.angles.shape == tc.responses.shape == (16,)
        assert tc.peak == pytest.approx(22.5 * c)
        assert tc.angular_distance(22.5 * c) < 3.0


def test_tuning_curve_accepts_a_stimulus_function_and_checks_units(planted):
    def draw(angles):
        return curve(angles, radius=12.0, size=44)

    tc = tuning_curve(planted, "curves:2", stimulus=draw, angles=[0.0, 90.0, 180.0, 270.0])
    assert tc.peak == 90.0 and tc.unit == "curves:2"
    pre = tuning_curve(planted, "curves:2", stimulus=draw, angles=[0.0, 90.0, 180.0, 270.0], pre_relu=True)
    assert float(pre.responses.min()) < 0 <= float(tc.responses.min())  # pre-ReLU values go negative
    with pytest.raises(ValueError, match="one layer"):
        tuning_curve(planted, ["curves:0", "lines:0"])
    with pytest.raises(KeyError, match="unknown stimulus"):
        tuning_curve(planted, "curves:0", stimulus="spiral")
    assert set(stimuli.STIMULI) == {"curve", "line", "high_low"}


def test_radial_tuning_panels_put_a_published_family_beside_a_measured_one():
    import matplotlib.pyplot as plt
    import numpy as np

    from circuitscope import plotting
    from circuitscope.planted import PLANTED_CAPTION

    planted = PlantedCurveModel()
    curves = tuning_curve(planted, [f"curves:{u}" for u in range(4)], angles=12, size=44, radius=12.0)
    article = {7: np.cos(np.deg2rad(np.arange(720) / 2)).clip(0), 9: np.sin(np.deg2rad(np.arange(720) / 2)).clip(0)}
    before = plt.get_fignums()
    fig = plotting.radial_tuning_panels([
        dict(tunings=article, layer="3b", rotate=90, title="published", note="Data from somewhere (CC BY 4.0)."),
        dict(tunings={tc.unit: tc.responses for tc in curves}, angles=curves[0].angles, title="measured"),
    ], caption=PLANTED_CAPTION)
    assert plt.get_fignums() == before and [ax.name for ax in fig.axes] == ["polar", "polar"]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [t.get_text() for t in fig.texts]
    assert PLANTED_CAPTION in texts and any("CC BY 4.0" in t for t in texts)
    left, right = fig.axes
    assert [l.get_text() for l in left.get_legend().get_texts()] == ["3b:7", "3b:9"]
    assert len(right.get_legend().get_texts()) == 4
    peak = left.lines[0].get_xdata()[np.argmax(left.lines[0].get_ydata())]
    assert abs(np.rad2deg(peak) - 90) < 1  # unit 7 peaks at 0 degrees, drawn turned by 90
    one = plotting.radial_tuning_plot(article, layer="3b")
    assert plt.get_fignums() == before and one.axes[0].name == "polar"
