"""Synthetic stimuli have exact geometry; tuning curves find preferred orientations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from circuitscope.figures import plotting
from circuitscope.methods import stimuli
from circuitscope.methods.planted import PlantedCurveModel
from circuitscope.methods.stimuli import (
    arc_geometry,
    circular_mean,
    curve,
    high_low_frequency,
    line,
    tuning_curve,
)


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
    assert float(right) > 0.5 and float(left) < 0.1  # orientation 0: high frequency to the right
    assert float(top) > 0.5 and float(bottom) < 0.1  # orientation 90: high frequency above
    flat = high_low_frequency(0.0, size=64, mean=0.4, period_low=float("inf"))[0, 0]
    assert torch.allclose(flat[:, :28], torch.full_like(flat[:, :28], 0.4))  # the low side: flat grey at mean
    low = high_low_frequency(0.0, size=64, period_low=32.0)[0, 0]
    assert float(low[:, :28].std()) > 0.05  # a low-frequency grating instead of flat grey
    default = high_low_frequency(0.0, size=64, period_high=4.0)[0, 0]
    assert float(default[:, :28].std()) > 0.05  # by default both sides are patterned (ratio 4)


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
    assert set(stimuli.STIMULI) == {"curve", "line", "high_low", "rounded_corner"}


def test_radial_tuning_panels_put_a_published_family_beside_a_measured_one():
    import matplotlib.pyplot as plt
    import numpy as np

    from circuitscope.figures import plotting
    from circuitscope.methods.planted import PLANTED_CAPTION

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


# -- the articles' stimuli: rounded corners ------------------------------------------------------
from circuitscope.methods.stimuli import corner_geometry, high_low_tuning, radial_tuning_curve, rounded_corner


def _sample(img: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``img: (H, W)`` at pixel positions ``xy: (P, 2)`` = (column, row)."""
    h, w = img.shape
    grid = torch.stack([xy[:, 0] / (w - 1) * 2 - 1, xy[:, 1] / (h - 1) * 2 - 1], -1).view(1, 1, -1, 2)
    return F.grid_sample(img[None, None].double(), grid.double(), align_corners=True).flatten()


def _border_runs(mask: torch.Tensor) -> int:
    """How many separate runs of True the mask has along the image's border (walked around)."""
    ring = torch.cat([mask[0, :], mask[1:, -1], mask[-1, :-1].flip(0), mask[1:-1, 0].flip(0)])
    changes = (ring.int() - ring.roll(1).int()).clamp(min=0)
    return int(changes.sum()) if bool(ring.any()) and not bool(ring.all()) else int(bool(ring.all()))


def test_the_corner_has_the_given_radius_and_bulges_towards_its_orientation():
    size, r = 129, 30.0
    for angle in (0.0, 35.0, 90.0, 200.0):
        g = corner_geometry(angle, r, size=size)
        centre = g["centre"][0]
        assert torch.allclose((g["arc"][0] - centre).norm(dim=-1), torch.full((33,), r, dtype=torch.float64))
        mid = g["arc"][0, 16]
        assert torch.allclose(mid, torch.tensor([64.0, 64.0], dtype=torch.float64), atol=1e-9)  # at the centre
        bulge = mid - centre  # (x right, y down): its direction is the orientation
        assert math.degrees(math.atan2(-float(bulge[1]), float(bulge[0]))) % 360 == pytest.approx(angle, abs=1e-6)
        outline = rounded_corner(angle, r, size=size, fill=False, thickness=3.0)[0, 0]
        assert float(_sample(outline, g["arc"][0]).min()) > 0.9  # the arc is drawn where it should be
        filled = rounded_corner(angle, r, size=size)[0, 0]
        inside = centre + 0.0  # the circle's centre is inside the filled corner
        outside = mid + 4 * bulge / bulge.norm()  # beyond the bulge: background
        assert float(_sample(filled, torch.stack([inside, outside]))[0]) == pytest.approx(1.0)
        assert float(_sample(filled, torch.stack([inside, outside]))[1]) == pytest.approx(0.0)
    default = corner_geometry(0.0, size=224)
    assert float((default["arc"][0, 0] - default["centre"][0]).norm()) == pytest.approx(60.0)  # 60 px at 224


def test_the_legs_continue_the_arc_along_its_tangents_to_the_edge():
    size = 96
    g = corner_geometry(30.0, 20.0, size=size)
    for i in range(2):
        end, d, exit_ = g["ends"][0, i], g["directions"][0, i], g["exits"][0, i]
        radial = end - g["centre"][0]
        assert float(d.norm()) == pytest.approx(1.0) and float((radial * d).sum()) == pytest.approx(0.0, abs=1e-9)
        arc_step = g["arc"][0, -1 if i else 0] - g["arc"][0, -2 if i else 1]  # the arc's own last step
        assert float((arc_step / arc_step.norm() * d).sum()) == pytest.approx(1.0, abs=2e-3)  # smooth join
        on_border = min(float(exit_[0]), float(exit_[1]), size - 1 - float(exit_[0]), size - 1 - float(exit_[1]))
        assert on_border == pytest.approx(0.0, abs=1e-9)
        t = torch.linspace(0, float((exit_ - end).norm()), 40, dtype=torch.float64)
        leg = end[None] + t[:, None] * d[None]
        outline = rounded_corner(30.0, 20.0, size=size, fill=False, thickness=3.0)[0, 0]
        assert float(_sample(outline, leg).min()) > 0.9  # drawn all the way to the edge


@pytest.mark.parametrize("angle", [0.0, 45.0, 123.0, 270.0])
def test_the_corner_has_no_line_ends_but_the_short_arc_has(angle):
    from scipy import ndimage

    outline = rounded_corner(angle, 18.0, size=80, fill=False, thickness=3.0)[0, 0] > 0.5
    _, count = ndimage.label(outline.numpy())
    assert count == 1 and _border_runs(outline) == 2  # one stroke, both of its ends outside the image
    arc = curve(angle, radius=18.0, size=80, thickness=3.0)[0, 0] > 0.5
    assert _border_runs(arc) == 0  # the exercise's arc ends inside the image: two line ends


@pytest.mark.parametrize("fill", [True, False])
def test_turning_the_corner_by_90_degrees_turns_the_image(fill):
    base = rounded_corner(17.0, 25.0, size=65, fill=fill)
    turned = rounded_corner(107.0, 25.0, size=65, fill=fill)
    assert torch.allclose(torch.rot90(base, 1, (2, 3)), turned, atol=1e-5)
    assert not torch.allclose(base, turned, atol=1e-2)


def test_article_orientation_is_the_mirror_of_ours():
    assert stimuli.article_orientation(117.0) == pytest.approx(243.0)  # 3b:379: published peak 243
    assert stimuli.from_article_orientation(stimuli.article_orientation(33.5)) == pytest.approx(33.5)
    t = torch.tensor([0.0, 90.0, 270.0])
    assert torch.equal(stimuli.article_orientation(t), torch.tensor([0.0, 270.0, 90.0]))


# -- the articles' stimuli: high-low frequency boundaries -----------------------------------------
def _dominant(img: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(spatial frequency in cycles/px, direction in degrees mod 180, v up) of the masked region."""
    x = (img - img[mask].mean()) * mask.double()
    n = 512
    spec = torch.fft.fft2(x.double(), s=(n, n)).abs()
    spec[0, 0] = 0
    i = int(torch.argmax(spec))
    fy, fx = divmod(i, n)
    fy, fx = (fy if fy < n // 2 else fy - n) / n, (fx if fx < n // 2 else fx - n) / n
    return math.hypot(fx, fy), math.degrees(math.atan2(-fy, fx)) % 180


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0, 250.0])
@pytest.mark.parametrize("pattern", ["grating", "plaid"])
def test_high_low_sides_have_the_given_periods_and_orientation(angle, pattern):
    size, p_hi, ratio = 128, 5.0, 3.0
    img = high_low_frequency(angle, size=size, period_high=p_hi, ratio=ratio, pattern=pattern)[0, 0].double()
    u = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    v, uu = torch.meshgrid(-u, u, indexing="ij")
    a = uu * math.cos(math.radians(angle)) + v * math.sin(math.radians(angle))
    factor = math.sqrt(2) if pattern == "plaid" else 1.0  # cos(ka)cos(kb) has its energy on the diagonals
    expect_dir = (angle + (45.0 if pattern == "plaid" else 0.0)) % (90.0 if pattern == "plaid" else 180.0)
    for side, period in ((a > 3, p_hi), (a < -3, p_hi * ratio)):
        f, direction = _dominant(img, side)
        assert f * period == pytest.approx(factor, rel=0.08), (pattern, angle, period)
        modulus = 90.0 if pattern == "plaid" else 180.0
        diff = (direction - expect_dir) % modulus
        assert min(diff, modulus - diff) < 4.0
    assert img[a > 3].std() > 0.1 and img[a < -3].std() > 0.1  # both sides patterned, full contrast


def test_a_frequency_ratio_of_one_has_no_boundary():
    same = high_low_frequency(40.0, size=64, period_high=6.0, ratio=1.0, aa=1.0)
    whole = high_low_frequency(40.0, size=64, period_high=6.0, period_low=6.0)
    assert torch.allclose(same, whole)
    plain = 0.5 + 0.5 * torch.cos(torch.tensor(0.0))  # the pattern's value at the centre
    assert float(same[0, 0, 31:33, 31:33].max()) <= float(plain) + 1e-6
    with pytest.raises(ValueError, match="pattern"):
        high_low_frequency(0.0, pattern="checker")


# -- radial tuning over curvature, and the two-axis high-low tuning --------------------------------
def test_radial_tuning_averages_over_curvature_and_peaks_at_the_units_orientation(planted):
    radii = [224 * r / 44 for r in (10.0, 12.0, 14.0)]
    curves = radial_tuning_curve(planted, [f"curves:{u}" for u in range(8)], angles=24, size=44, radii=radii,
                                 stimulus="curve")  # fmt: skip
    for u, tc in enumerate(curves):
        assert tc.grid.shape == (24, 3) and tc.radii == pytest.approx((10.0, 12.0, 14.0))
        assert torch.allclose(tc.responses, tc.grid.mean(dim=1))
        assert tc.peak == float(tc.angles[int(torch.argmax(tc.responses))])
        assert tc.angular_distance(45.0 * u, to="peak") <= 15.0
    corner = radial_tuning_curve(planted, "curves:2", angles=24, size=44, radii=[224 * 12 / 44])
    assert corner.grid.shape == (24, 1) and corner.angular_distance(90.0, to="peak") <= 30.0
    with pytest.raises(ValueError, match="stimulus"):
        radial_tuning_curve(planted, "curves:2", stimulus="line")


def test_high_low_tuning_has_orientation_and_ratio_axes(planted):
    tun = high_low_tuning(planted, ["lines:0", "lines:4"], angles=8, ratios=(1.0, 4.0), size=44)
    assert len(tun) == 2 and tun[0].responses.shape == (2, 8) and torch.equal(tun[0].ratios, torch.tensor([1.0, 4.0], dtype=torch.float64))
    r, a = divmod(int(torch.argmax(tun[0].responses)), 8)
    assert tun[0].peak == (float(tun[0].angles[a]), float(tun[0].ratios[r]))


def test_tuning_curve_figure_marks_the_preferred_orientation_and_its_weights(synthetic_model):
    import matplotlib.pyplot as plt

    from circuitscope.methods.planted import CURVE_ORIENTATIONS, PLANTED_CAPTION

    texts_of = lambda f: " ".join(t.get_text() for t in f.texts)

    planted = PlantedCurveModel()
    curves = stimuli.tuning_curve(planted, ["curves:0", "curves:2"], angles=8, size=44, radius=12.0)
    assert [tc.peak for tc in curves] == [CURVE_ORIENTATIONS[0], CURVE_ORIENTATIONS[2]]
    fig = plotting.plot_tuning_curves(curves, caption=PLANTED_CAPTION)
    assert "PLANTED CIRCUIT" in texts_of(fig) and fig.axes[0].name == "polar"
    lines = fig.axes[0].get_lines()
    assert len(lines) == 4  # a curve and a preferred-orientation spoke per unit
    spoke = lines[3].get_xdata()
    assert spoke[0] == pytest.approx(math.radians(curves[1].preferred))
    plt.close(fig)
    fig = plotting.plot_tuning_curves(curves[0], model=synthetic_model, polar=False)
    assert "SYNTHETIC WEIGHTS" in texts_of(fig) and fig.axes[0].name != "polar"
    plt.close(fig)


def test_rotated_turns_one_image_counter_clockwise_inside_a_disc():
    image = torch.zeros(3, 33, 33)
    image[:, 16, 20:] = 1.0  # a bright ray from the centre pointing right (0 degrees)
    draw = stimuli.rotated(image)
    turned = draw(torch.tensor([0.0, 90.0, 180.0]))
    assert turned.shape == (3, 3, 33, 33) and 0 <= float(turned.min()) and float(turned.max()) <= 1
    # counter-clockwise as this library's orientations: 90 degrees points up (smaller rows)
    assert float(turned[1, 0, 4:13, 16].mean()) > 0.5 and float(turned[1, 0, 20:29, 16].mean()) < 0.1
    assert float(turned[2, 0, 16, 4:13].mean()) > 0.5  # 180: pointing left
    # the corners (outside the disc) hold the mean colour at every angle
    assert torch.allclose(turned[:, :, 0, 0], image.mean(dim=(1, 2))[None].expand(3, 3), atol=1e-6)


def test_a_unit_that_sees_a_turned_image_has_a_tuning_curve(synthetic_model):
    from circuitscope.core.images import sample_image

    photo = sample_image("coffee", size=64)
    curve = stimuli.tuning_curve(synthetic_model, "3b:379", stimulus=stimuli.rotated(photo), angles=8)
    assert curve.responses.shape == (8,) and curve.period == 360.0
    assert float(curve.responses.std()) > 0  # the response changes as the photo turns
