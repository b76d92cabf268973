"""Synthetic stimuli and tuning curves: curves, lines and high-low frequency boundaries.

"Curve Detectors" (Cammarata et al., 2020, sections "Synthetic Curves" and "Radial Tuning
Curve") probes neurons with drawings whose properties are known exactly: a curve's orientation
and radius, a line's orientation, the side of a high-low frequency boundary ("Zoom In",
"Example 2: High-Low Frequency Detectors"). This module draws them, batched over parameters and
on any device, and measures a unit's response as the orientation turns.

Conventions (every function here):

* Images are ``(N, 3, H, W)`` float in ``[0, 1]``, on ``device``; ``N`` is the broadcast length
  of the array-valued parameters (scalars, sequences or 1-D tensors).
* Angles are in **degrees, counter-clockwise, 0 = pointing right, 90 = pointing up** (towards
  row 0), measured about ``centre``. ``centre`` is a pixel position ``(x, y)`` = (column, row);
  by default the image centre ``((W - 1) / 2, (H - 1) / 2)``, so that rotating by 90 degrees maps
  the pixel grid of a square image onto itself exactly.
* Lengths are in pixels. Edges are anti-aliased: a pixel's intensity is the fraction of a
  one-pixel box covered by the stroke, ``clamp(0.5 + (thickness / 2 - distance) / aa, 0, 1)``,
  where ``distance`` is the exact distance from the pixel centre to the centre line.

Orientation of a curve = the direction from the circle's centre to the arc's midpoint (where
the curve bulges): ``curve(90)`` is an arc shaped like the top of a circle, its midpoint at
``centre``. Orientation of a line = its direction (period 180). Orientation of a high-low
boundary = the direction pointing into the high-frequency side.

Two curve stimuli. :func:`curve` draws a short stroke (an arc of ``width`` degrees with round
end caps): simple to define and to write, the one the exercises use. :func:`rounded_corner` is
the stimulus of the articles' experiments: a 90-degree corner rounded by an arc of radius
``radius`` whose two ends continue as tangent lines to the image's edge, filled or drawn as a
boundary, so that the image has no line ends (line ends excite other units: "end" detectors);
at 224 px its radius is about 60 px (:data:`ARTICLE_RADIUS_224`). The real-unit experiments
(:func:`radial_tuning_curve`, ``scripts/reproduce_circuits.py``) use it.

The articles count orientation the other way round. Their published radial tuning data ("Curve
Detectors", ``radial/data.json``: entry ``i`` at ``i / 2`` degrees) and their stimulus grids go
clockwise on the screen (y pointing down): a curve whose bulge points in direction ``theta``
here has the article's orientation ``-theta`` (mod 360) (:func:`article_orientation`). This was
read off the article's figures: the ten 3b curve detectors' peaks in the synthetic-curve heatmap
(whose header shows each column's stimulus) and in the radial data agree under this map within
about 5 degrees, and the radial plot (angle ``i / 2 + 90`` drawn clockwise from 12 o'clock)
then points each unit's lobe at its curves' bulge. The high-low stimuli's columns in "High-Low
Frequency Detectors" turn clockwise too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..core import published
from ..core.hooks import activations
from ..core.units import parse_unit

__all__ = [
    "arc_geometry",
    "article_orientation",
    "ARTICLE_RADII",
    "circular_mean",
    "compare_radial_tuning",
    "corner_geometry",
    "curve",
    "from_article_orientation",
    "high_low_frequency",
    "high_low_tuning",
    "HighLowTuning",
    "line",
    "radial_tuning_curve",
    "RadialComparison",
    "rotated",
    "rounded_corner",
    "tuning_curve",
    "TuningCurve",
]  # fmt: skip

Number = float | int
Param = Number | Sequence[Number] | torch.Tensor
Colour = Number | Sequence[Number]


# -- helpers -----------------------------------------------------------------------------------
def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # mps has no float64


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cpu")
    return torch.device(device)


def _broadcast(*params: Param, device: torch.device) -> list[torch.Tensor]:
    """Each parameter as a ``(N,)`` tensor of the common broadcast length N."""
    dtype = _work_dtype(device)
    flat = [torch.as_tensor(p, dtype=dtype, device=device).reshape(-1) for p in params]
    try:
        return list(torch.broadcast_tensors(*flat))
    except RuntimeError as err:
        sizes = [len(f) for f in flat]
        raise ValueError(
            f"stimulus parameters must be scalars or of one common length, got lengths {sizes}"
        ) from err


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    return int(h), int(w)


def _coords(size, centre, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates ``(u, v)`` of shape ``(1, H, W)`` relative to ``centre``, v up."""
    h, w = _size(size)
    dtype = _work_dtype(device)
    cx, cy = ((w - 1) / 2, (h - 1) / 2) if centre is None else (float(centre[0]), float(centre[1]))
    x = torch.arange(w, dtype=dtype, device=device) - cx
    y = torch.arange(h, dtype=dtype, device=device) - cy
    v, u = torch.meshgrid(-y, x, indexing="ij")
    return u.unsqueeze(0), v.unsqueeze(0)


def _coverage(distance: torch.Tensor, thickness: torch.Tensor, aa: float) -> torch.Tensor:
    return (0.5 + (thickness.view(-1, 1, 1) / 2 - distance) / aa).clamp(0.0, 1.0)


def _colour(value: Colour, device, dtype) -> torch.Tensor:
    c = torch.as_tensor(value, dtype=dtype, device=device).reshape(-1)
    if c.numel() == 1:
        c = c.expand(3)
    if c.numel() != 3:
        raise ValueError(f"a colour is a number or an RGB triple in [0, 1], got {value!r}")
    return c.view(1, 3, 1, 1)


def _compose(alpha: torch.Tensor, foreground: Colour, background: Colour, dtype) -> torch.Tensor:
    """``(N, H, W)`` coverage -> ``(N, 3, H, W)`` image ``background + alpha * (fg - bg)``."""
    fg = _colour(foreground, alpha.device, alpha.dtype)
    bg = _colour(background, alpha.device, alpha.dtype)
    return (bg + alpha.unsqueeze(1) * (fg - bg)).clamp(0.0, 1.0).to(dtype)


def _wrap(angle: torch.Tensor) -> torch.Tensor:
    """Radians wrapped into ``[-pi, pi)``."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


# -- stimuli -----------------------------------------------------------------------------------
def arc_geometry(
    orientation: Param,
    radius: Param,
    width: Param = 120.0,
    size: int | tuple[int, int] = 64,
    centre: tuple[float, float] | None = None,
    n: int = 65,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact centre line of the arcs :func:`curve` draws, for checking and plotting.

    Returns ``points: (N, n, 2)`` pixel positions ``(x, y)`` evenly spaced along each arc (the
    middle one at ``centre``) and ``centres: (N, 2)``, each circle's centre in pixels; every
    point lies at distance ``radius`` from its circle's centre.
    """
    device = _device(device)
    ori, rad, wid = _broadcast(orientation, radius, width, device=device)
    h, w = _size(size)
    cx, cy = ((w - 1) / 2, (h - 1) / 2) if centre is None else (float(centre[0]), float(centre[1]))
    phi = torch.deg2rad(ori)
    cu, cv = -rad * torch.cos(phi), -rad * torch.sin(phi)  # circle centre, v up, about `centre`
    t = torch.linspace(-0.5, 0.5, n, dtype=phi.dtype, device=device)
    alpha = phi[:, None] + torch.deg2rad(wid)[:, None] * t[None, :]
    pu = cu[:, None] + rad[:, None] * torch.cos(alpha)
    pv = cv[:, None] + rad[:, None] * torch.sin(alpha)
    points = torch.stack([cx + pu, cy - pv], dim=-1)
    centres = torch.stack([cx + cu, cy - cv], dim=-1)
    return points, centres


def curve(
    orientation: Param,
    radius: Param = 20.0,
    width: Param = 120.0,
    size: int | tuple[int, int] = 64,
    thickness: Param = 2.0,
    centre: tuple[float, float] | None = None,
    foreground: Colour = 1.0,
    background: Colour = 0.0,
    aa: float = 1.0,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Anti-aliased arcs of circles: ``(N, 3, H, W)`` in ``[0, 1]`` on ``device``.

    Args:
        orientation: degrees; the direction from the circle's centre to the arc's midpoint
            ("Curve Detectors", section "Synthetic Curves": orientation and curvature are the
            two parameters of the curve renderer). ``90`` draws the top of a circle.
        radius: pixels (curvature = 1 / radius). Use :func:`line` for a straight line.
        width: the arc's angular extent in degrees, centred on ``orientation`` (360: a circle).
        size: ``H = W = size`` or ``(H, W)``.
        thickness: stroke width in pixels; the arc's midpoint is at ``centre``.
        foreground, background: grey levels or RGB triples in ``[0, 1]``.
        aa: width in pixels of the anti-aliased edge.

    ``orientation``, ``radius``, ``width`` and ``thickness`` broadcast to ``N`` images.
    """
    device = _device(device)
    ori, rad, wid, thick = _broadcast(orientation, radius, width, thickness, device=device)
    if bool((rad <= 0).any()) or not bool(torch.isfinite(rad).all()):
        raise ValueError("radius must be positive and finite; for a straight line use stimuli.line")
    u, v = _coords(size, centre, device)
    phi = torch.deg2rad(ori).view(-1, 1, 1)
    r = rad.view(-1, 1, 1)
    half = (torch.deg2rad(wid) / 2).clamp(max=math.pi).view(-1, 1, 1)
    cu, cv = -r * torch.cos(phi), -r * torch.sin(phi)
    du, dv = u - cu, v - cv
    rho = torch.sqrt(du**2 + dv**2)
    inside = _wrap(torch.atan2(dv, du) - phi).abs() <= half
    ends = []
    for sign in (-1.0, 1.0):
        eu, ev = cu + r * torch.cos(phi + sign * half), cv + r * torch.sin(phi + sign * half)
        ends.append(torch.sqrt((u - eu) ** 2 + (v - ev) ** 2))
    distance = torch.where(inside, (rho - r).abs(), torch.minimum(*ends))
    return _compose(_coverage(distance, thick, aa), foreground, background, dtype)


def line(
    orientation: Param,
    length: Param = float("inf"),
    size: int | tuple[int, int] = 64,
    thickness: Param = 2.0,
    centre: tuple[float, float] | None = None,
    offset: Param = 0.0,
    foreground: Colour = 1.0,
    background: Colour = 0.0,
    aa: float = 1.0,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Anti-aliased straight lines (segments with round caps): ``(N, 3, H, W)`` in ``[0, 1]``.

    ``orientation`` in degrees is the line's direction (period 180: 0 is horizontal, 90
    vertical). The segment's midpoint is ``centre`` shifted by ``offset`` pixels along the
    normal (the direction ``orientation + 90``); ``length=inf`` crosses the whole image.
    ``orientation``, ``length``, ``thickness`` and ``offset`` broadcast to ``N`` images.
    """
    device = _device(device)
    ori, length_, thick, off = _broadcast(orientation, length, thickness, offset, device=device)
    u, v = _coords(size, centre, device)
    theta = torch.deg2rad(ori).view(-1, 1, 1)
    along = u * torch.cos(theta) + v * torch.sin(theta)
    across = -u * torch.sin(theta) + v * torch.cos(theta) - off.view(-1, 1, 1)
    beyond = (along.abs() - length_.view(-1, 1, 1) / 2).clamp(min=0.0)
    beyond = torch.where(torch.isfinite(beyond), beyond, torch.zeros_like(beyond))
    distance = torch.sqrt(beyond**2 + across**2)
    return _compose(_coverage(distance, thick, aa), foreground, background, dtype)


#: The radius of the articles' rounded-corner stimuli at 224 px ("about 60 px").
ARTICLE_RADIUS_224 = 60.0

#: Radii (pixels at 224 px) over which :func:`radial_tuning_curve` averages by default: from a
#: tight curve to a nearly straight one. The article averages its radial tuning curves over
#: curvature but did not publish its grid; this one is ours, centred on its 60 px.
ARTICLE_RADII = (20.0, 30.0, 45.0, 60.0, 80.0, 110.0)


def article_orientation(angle):
    """This module's orientation (degrees, counter-clockwise) as the articles count it: ``-angle mod 360``.

    Works on numbers, numpy arrays and tensors; see the module docstring for how it was read.
    """
    return (-angle) % 360.0


def from_article_orientation(angle):
    """The articles' orientation (``i / 2`` for entry ``i`` of their radial data) in this module's."""
    return (-angle) % 360.0


def corner_geometry(
    orientation: Param,
    radius: Param | None = None,
    size: int | tuple[int, int] = 64,
    centre: tuple[float, float] | None = None,
    n: int = 33,
    device=None,
) -> dict[str, torch.Tensor]:
    """The exact outline of the shapes :func:`rounded_corner` draws, for checking and plotting.

    Returns a dict of ``(N, ...)`` tensors in pixel coordinates ``(x, y)`` (column, row):
    ``"centre"`` ``(N, 2)`` the arc's circle centre; ``"arc"`` ``(N, n, 2)`` points along the
    90-degree arc (the middle one at ``centre``, the arc's midpoint); ``"ends"`` ``(N, 2, 2)``
    the arc's two ends; ``"directions"`` ``(N, 2, 2)`` the unit directions (x right, y down) in
    which the straight legs leave the ends, tangent to the arc; ``"exits"`` ``(N, 2, 2)`` where
    each leg crosses the image's border (the pixel-centre box ``[0, W-1] x [0, H-1]``).
    """
    device = _device(device)
    h, w = _size(size)
    if radius is None:
        radius = ARTICLE_RADIUS_224 * min(h, w) / 224.0
    ori, rad = _broadcast(orientation, radius, device=device)
    cx, cy = ((w - 1) / 2, (h - 1) / 2) if centre is None else (float(centre[0]), float(centre[1]))
    phi = torch.deg2rad(ori)
    cu, cv = -rad * torch.cos(phi), -rad * torch.sin(phi)  # v up, about `centre`
    t = torch.linspace(-math.pi / 4, math.pi / 4, n, dtype=phi.dtype, device=device)
    a = phi[:, None] + t[None, :]
    arc = torch.stack(
        [cx + cu[:, None] + rad[:, None] * torch.cos(a), cy - (cv[:, None] + rad[:, None] * torch.sin(a))], -1
    )
    ends, dirs, exits = [], [], []
    for sign in (-1.0, 1.0):
        e = phi + sign * math.pi / 4
        eu, ev = cu + rad * torch.cos(e), cv + rad * torch.sin(e)
        du, dv = -sign * torch.sin(e), sign * torch.cos(e)  # tangent, pointing away from the arc
        ex, ey, dx, dy = cx + eu, cy - ev, du, -dv
        # distance along the leg to the border box, from inside (ray-box exit)
        big = torch.full_like(ex, float("inf"))
        tx = torch.where(dx > 1e-12, (w - 1 - ex) / dx, torch.where(dx < -1e-12, (0 - ex) / dx, big))
        ty = torch.where(dy > 1e-12, (h - 1 - ey) / dy, torch.where(dy < -1e-12, (0 - ey) / dy, big))
        s_ = torch.minimum(tx, ty).clamp(min=0)
        ends.append(torch.stack([ex, ey], -1))
        dirs.append(torch.stack([dx, dy], -1))
        exits.append(torch.stack([ex + s_ * dx, ey + s_ * dy], -1))
    return {
        "centre": torch.stack([cx + cu, cy - cv], -1),
        "arc": arc,
        "ends": torch.stack(ends, 1),
        "directions": torch.stack(dirs, 1),
        "exits": torch.stack(exits, 1),
    }


def rounded_corner(
    orientation: Param,
    radius: Param | None = None,
    size: int | tuple[int, int] = 64,
    fill: bool = True,
    thickness: Param = 3.0,
    centre: tuple[float, float] | None = None,
    foreground: Colour = 1.0,
    background: Colour = 0.0,
    aa: float = 1.0,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The articles' curve stimulus: a rounded 90-degree corner, ``(N, 3, H, W)`` in ``[0, 1]``.

    "Curve Detectors" ("Synthetic Curves", "Radial Tuning Curve") and "Curve Circuits" probe
    curve units with curves that have no line ends: a corner of 90 degrees whose tip is rounded
    by an arc of ``radius`` pixels, its two straight legs continuing the arc along its tangents
    to the edge of the image. The shape is the set of points within ``radius`` of a right-angled
    wedge (a quarter plane whose apex is the arc's circle centre), so its signed distance is
    exact: ``|p - apex|`` in front of the apex, else the distance to the nearer leg.

    Args:
        orientation: degrees, counter-clockwise, 0 = right: the direction from the arc's circle
            centre to the arc's midpoint (where the corner bulges), as in :func:`curve`. The
            articles count it the other way round (:func:`article_orientation`).
        radius: pixels; default ``60 * min(H, W) / 224`` (the articles' 60 px at 224 px).
        size: ``H = W = size`` or ``(H, W)``.
        fill: ``True`` fills the inside of the corner with ``foreground`` (a solid shape whose
            edge is the curve); ``False`` draws only its boundary, a stroke of ``thickness`` px.
        centre: where the arc's midpoint lies (pixels ``(x, y)``); default the image centre, so
            that turning by 90 degrees turns the image exactly.
        foreground, background: grey levels or RGB triples in ``[0, 1]``.
        aa: width in pixels of the anti-aliased edge.

    ``orientation``, ``radius`` and ``thickness`` broadcast to ``N`` images. The shape's exact
    outline is :func:`corner_geometry`.
    """
    device = _device(device)
    h, w = _size(size)
    if radius is None:
        radius = ARTICLE_RADIUS_224 * min(h, w) / 224.0
    ori, rad, thick = _broadcast(orientation, radius, thickness, device=device)
    if bool((rad <= 0).any()) or not bool(torch.isfinite(rad).all()):
        raise ValueError("radius must be positive and finite")
    u, v = _coords(size, centre, device)
    phi = torch.deg2rad(ori).view(-1, 1, 1)
    r = rad.view(-1, 1, 1)
    pu, pv = u + r * torch.cos(phi), v + r * torch.sin(phi)  # relative to the apex (circle centre)
    n1 = (torch.cos(phi + math.pi / 4), torch.sin(phi + math.pi / 4))  # outward normals of the legs
    n2 = (torch.cos(phi - math.pi / 4), torch.sin(phi - math.pi / 4))
    d1, d2 = pu * n1[0] + pv * n1[1], pu * n2[0] + pv * n2[1]
    wedge = torch.where((d1 > 0) & (d2 > 0), torch.sqrt(pu**2 + pv**2), torch.maximum(d1, d2))
    signed = wedge - r  # < 0 inside the shape
    if fill:
        alpha = (0.5 - signed / aa).clamp(0.0, 1.0)
    else:
        alpha = _coverage(signed.abs(), thick, aa)
    return _compose(alpha, foreground, background, dtype)


def high_low_frequency(
    orientation: Param,
    size: int | tuple[int, int] = 64,
    period_high: Param = 4.0,
    period_low: Param | None = None,
    ratio: Param = 4.0,
    pattern: str = "plaid",
    contrast_high: float = 1.0,
    contrast_low: float = 1.0,
    centre: tuple[float, float] | None = None,
    mean: float = 0.5,
    aa: float = 1.0,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A straight boundary between a high-frequency pattern and a low-frequency one.

    "High-Low Frequency Detectors" (Schubert et al., 2021, "Tuning curves", the figure of
    synthetic stimuli ``1.4-tuning-curves/samples-small.png``) probes the detectors with a
    boundary through the middle of the image, the same cosine pattern on both sides at two
    spatial frequencies, and varies the boundary's orientation (over the full circle, since
    the two sides differ) and the **frequency ratio** between the sides. The pattern in its
    figure is the product of two cosines aligned with the boundary (a plaid of light and dark
    blobs); ``pattern="grating"`` draws a single cosine whose stripes run parallel to the
    boundary instead.

    Each side is ``mean + contrast / 2 * cos(2 pi a / period) * cos(2 pi b / period)`` (plaid)
    or ``mean + contrast / 2 * cos(2 pi a / period)`` (grating), in coordinates ``(a, b)``
    rotated with the boundary: ``a`` the signed distance across it (into the high side), ``b``
    along it; the pattern rotates with the boundary as a whole.

    Args:
        orientation: degrees, counter-clockwise, 0 = right: the normal of the boundary pointing
            into the high-frequency side (the article counts clockwise:
            :func:`article_orientation`).
        period_high: pixels per cycle on the high side.
        period_low: pixels per cycle on the low side; default ``period_high * ratio``.
            ``float("inf")`` gives a flat grey side (this module's earlier stimulus).
        ratio: ``period_low / period_high`` = frequency ratio high : low, used when
            ``period_low`` is None (the article's second axis).
        pattern: ``"plaid"`` (the article's figure) or ``"grating"``.
        contrast_high, contrast_low: peak-to-peak contrast of each side, in ``[0, 1]``.
        aa: width in pixels over which the boundary is blended.

    Returns ``(N, 3, H, W)`` in ``[0, 1]``; ``orientation``, the periods and ``ratio``
    broadcast to ``N``.
    """
    if pattern not in ("plaid", "grating"):
        raise ValueError(f"pattern must be 'plaid' or 'grating', got {pattern!r}")
    device = _device(device)
    if period_low is None:
        ori, p_hi, rat = _broadcast(orientation, period_high, ratio, device=device)
        if bool((rat <= 0).any()):
            raise ValueError("ratio must be positive")
        p_lo = p_hi * rat
    else:
        ori, p_hi, p_lo = _broadcast(orientation, period_high, period_low, device=device)
    u, v = _coords(size, centre, device)
    phi = torch.deg2rad(ori).view(-1, 1, 1)
    a = u * torch.cos(phi) + v * torch.sin(phi)  # signed distance into the high side
    b = -u * torch.sin(phi) + v * torch.cos(phi)

    def texture(period: torch.Tensor, contrast: float) -> torch.Tensor:
        k = (2 * math.pi / period).view(-1, 1, 1)
        flat = torch.isinf(period).view(-1, 1, 1)  # an infinite period is flat grey at `mean`
        wave = torch.cos(k * a) * (torch.cos(k * b) if pattern == "plaid" else 1.0)
        return mean + torch.where(flat, 0.0, contrast / 2 * wave)

    weight = (0.5 + a / aa).clamp(0.0, 1.0)
    img = weight * texture(p_hi, contrast_high) + (1 - weight) * texture(p_lo, contrast_low)
    return img.clamp(0.0, 1.0).unsqueeze(1).expand(-1, 3, -1, -1).to(dtype).contiguous()


# -- tuning curves -----------------------------------------------------------------------------
def rotated(image: torch.Tensor, disc: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """A stimulus for :func:`tuning_curve` made of one image turned: "Curve Detectors" turns a
    unit's dataset examples and records the unit's response at each rotation ("Rotated Dataset
    Examples"), the natural-image counterpart of the synthetic curves.

    ``image: (3, H, W)`` in ``[0, 1]`` (e.g. a dataset example's crop, centred on what the unit
    sees). Returns ``draw(angles) -> (A, 3, H, W)`` in ``[0, 1]``: the image turned counter-
    clockwise by each angle (degrees; bilinear), as this library's orientations turn. With
    ``disc`` (default) only the inscribed disc is kept and the rest filled with the image's mean
    colour, so the corners do not come and go as it turns.
    """
    from torchvision.transforms.functional import InterpolationMode, rotate

    image = torch.as_tensor(image, dtype=torch.float32)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"rotated takes one (3, H, W) image in [0, 1], got shape {tuple(image.shape)}")
    mean = image.mean(dim=(1, 2), keepdim=True)
    if disc:
        h, w = image.shape[-2:]
        yy, xx = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij")
        inside = (yy**2 + xx**2 <= (min(h, w) / 2) ** 2).to(image.dtype)
        image = image * inside + mean * (1 - inside)

    def draw(angles: torch.Tensor) -> torch.Tensor:
        turned = [rotate(image, float(a), InterpolationMode.BILINEAR, fill=mean.flatten().tolist())
                  for a in torch.as_tensor(angles).reshape(-1)]  # fmt: skip
        return torch.stack(turned).clamp(0, 1)

    return draw


STIMULI: dict[str, tuple[Callable[..., torch.Tensor], float]] = {
    "curve": (curve, 360.0),
    "line": (line, 180.0),
    "high_low": (high_low_frequency, 360.0),
    "rounded_corner": (rounded_corner, 360.0),
}


def circular_mean(angles: torch.Tensor, weights: torch.Tensor, period: float = 360.0) -> float:
    """The weighted vector mean of ``angles`` (degrees, period ``period``), in ``[0, period)``.

    Each angle is a unit vector at ``2 pi * angle / period`` weighted by its (clipped at zero)
    weight; the result is the direction of their sum, the usual "preferred orientation" of a
    tuning curve. ``nan`` when every weight is zero.
    """
    w = weights.detach().double().clamp(min=0).cpu()
    t = angles.detach().double().cpu() * (2 * math.pi / period)
    x, y = float((w * torch.cos(t)).sum()), float((w * torch.sin(t)).sum())
    if x == 0 and y == 0:
        return float("nan")
    value = math.degrees(math.atan2(y, x)) * period / 360.0 % period
    return 0.0 if value >= period - 1e-9 else value  # -0.0 % period rounds up to period


@dataclass
class TuningCurve:
    """A unit's responses as a stimulus turns ("Curve Detectors", "Radial Tuning Curve").

    Attributes:
        unit: the unit id, e.g. ``"3b:379"``.
        angles: ``(A,)`` orientations in degrees.
        responses: ``(A,)`` the unit's activation at the centre position for each orientation.
        preferred: the circular (vector) mean of the positive responses, in ``[0, period)``.
        peak: the orientation with the largest response.
        period: 360 for curves and high-low boundaries, 180 for lines.
        radii: for :func:`radial_tuning_curve`, the radii (px) averaged over; else ``None``.
        grid: for :func:`radial_tuning_curve`, ``(A, R)`` the responses at each radius.
    """

    unit: str
    angles: torch.Tensor
    responses: torch.Tensor
    preferred: float
    peak: float
    period: float
    radii: tuple[float, ...] | None = None
    grid: torch.Tensor | None = None

    def angular_distance(self, angle: float, to: str = "preferred") -> float:
        """Smallest distance in degrees (modulo ``period``) from ``angle`` to ``preferred``/``peak``."""
        d = (getattr(self, to) - angle) % self.period
        return min(d, self.period - d)


def _centre_index(n: int) -> int:
    return (n - 1) // 2


def tuning_curve(
    model,
    unit: str | Sequence[str],
    stimulus: str | Callable[[torch.Tensor], torch.Tensor] = "curve",
    angles: int | Sequence[float] | torch.Tensor = 36,
    size: int = 128,
    pre_relu: bool = False,
    position: tuple[int, int] | None = None,
    period: float | None = None,
    batch_size: int = 32,
    **stimulus_kwargs,
) -> TuningCurve | list[TuningCurve]:
    """Responses of ``unit`` (or several units of one layer) to a stimulus at each orientation.

    Args:
        model: InceptionV1 or any :class:`~circuitscope.core.models.named.NamedModel` (e.g. a planted model).
        unit: ``"3b:379"`` / ``"mixed3b:379"`` or a list of units of the same layer.
        stimulus: ``"curve"``, ``"line"``, ``"high_low"`` (drawn at ``size`` pixels with
            ``stimulus_kwargs`` such as ``radius=``, ``width=``, ``thickness=``) or a callable
            mapping ``angles: (A,)`` degrees to images ``(A, 3, H, W)`` in ``[0, 1]``.
        angles: a count (evenly spaced over the period, from 0) or the angles in degrees.
        pre_relu: measure the pre-ReLU value (``<layer>_pre_relu``) instead of the activation.
        position: ``(row, col)`` in the layer; default its centre ``((H' - 1) // 2, (W' - 1) // 2)``.
        period: 360 (curves, high-low) or 180 (lines); needed for a callable stimulus
            (default 360).

    Returns a :class:`TuningCurve` (a list of them for a list of units). The stimuli are drawn
    on the model's device and run in batches of ``batch_size``; no gradients are kept.
    """
    units = [unit] if isinstance(unit, str) else list(unit)
    parsed = [parse_unit(u, model) for u in units]
    layers = {layer for layer, _ in parsed}
    if len(layers) != 1:
        raise ValueError(f"tuning_curve takes units of one layer at a time, got layers {sorted(layers)}")
    layer = layers.pop()
    if pre_relu and not layer.endswith("_pre_relu"):
        layer += "_pre_relu"
    device = getattr(model, "device", torch.device("cpu"))

    if isinstance(stimulus, str):
        if stimulus not in STIMULI:
            raise KeyError(f"unknown stimulus {stimulus!r}; choose from {sorted(STIMULI)} or pass a function")
        fn, default_period = STIMULI[stimulus]
        draw = partial(fn, size=size, device=device, **stimulus_kwargs)
        period = default_period if period is None else period
    else:
        draw, period = stimulus, 360.0 if period is None else period

    if isinstance(angles, int):
        angles = torch.arange(angles, dtype=torch.float64) * (period / angles)
    angles = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)

    chunks = []
    with torch.no_grad():
        for start in range(0, len(angles), batch_size):
            images = draw(angles[start : start + batch_size]).to(device)
            act = activations(model, images, [layer])[layer]
            row, col = position if position is not None else map(_centre_index, act.shape[-2:])
            chunks.append(act[:, [c for _, c in parsed], row, col].double().cpu())
    responses = torch.cat(chunks)  # (A, U)

    curves = []
    for i, name in enumerate(units):
        r = responses[:, i]
        curves.append(
            TuningCurve(
                unit=name,
                angles=angles.clone(),
                responses=r,
                preferred=circular_mean(angles, r, period),
                peak=float(angles[int(torch.argmax(r))]),
                period=float(period),
            )
        )
    return curves[0] if isinstance(unit, str) else curves


def radial_tuning_curve(
    model,
    unit: str | Sequence[str],
    angles: int | Sequence[float] | torch.Tensor = 72,
    size: int = 224,
    radii: Sequence[float] | None = None,
    stimulus: str = "rounded_corner",
    pre_relu: bool = False,
    position: tuple[int, int] | None = None,
    batch_size: int = 32,
    **stimulus_kwargs,
) -> TuningCurve | list[TuningCurve]:
    """The articles' radial tuning curve: one response per orientation, averaged over curvature.

    "Curve Detectors" ("Radial Tuning Curve"; its data ``radial/data.json``,
    ``data/curves-<layer>.json``): each unit's activation to synthetic curves is measured over
    orientation *and* curvature, and the curvature axis is reduced to one value per
    orientation by averaging; the preferred orientation is the orientation of the largest
    value (the figure's ``orientationType="max"``), here ``TuningCurve.peak``.

    Args:
        model, unit, pre_relu, position, batch_size: as :func:`tuning_curve`.
        angles: a count (evenly spaced over 360 degrees from 0) or the angles in degrees, in
            this module's convention (:func:`article_orientation` converts).
        size: image size in pixels (224, the articles').
        radii: radii in pixels **at 224 px**, scaled by ``size / 224``; default
            :data:`ARTICLE_RADII`.
        stimulus: ``"rounded_corner"`` (the articles', default; ``fill=`` etc. through
            ``stimulus_kwargs``) or ``"curve"`` (the short arc of the exercises).

    Returns a :class:`TuningCurve` per unit whose ``responses`` ``(A,)`` are the mean over radii
    (post-ReLU by default, so ``>= 0`` like the published data), with ``radii`` (px at ``size``)
    and ``grid`` ``(A, R)``.
    """
    if stimulus not in ("rounded_corner", "curve"):
        raise ValueError(f"stimulus must be 'rounded_corner' or 'curve', got {stimulus!r}")
    radii = tuple(float(r) * size / 224.0 for r in (ARTICLE_RADII if radii is None else radii))
    if not radii:
        raise ValueError("radii must not be empty")
    device = getattr(model, "device", torch.device("cpu"))
    fn = rounded_corner if stimulus == "rounded_corner" else curve
    per_radius = []
    for r in radii:
        draw = partial(fn, radius=r, size=size, device=device, **stimulus_kwargs)
        out = tuning_curve(model, unit, draw, angles=angles, pre_relu=pre_relu, position=position,
                           period=360.0, batch_size=batch_size)  # fmt: skip
        per_radius.append(out if isinstance(out, list) else [out])
    curves = []
    for i, first in enumerate(per_radius[0]):
        grid = torch.stack([pr[i].responses for pr in per_radius], dim=1)  # (A, R)
        mean = grid.mean(dim=1)
        curves.append(
            TuningCurve(
                unit=first.unit,
                angles=first.angles.clone(),
                responses=mean,
                preferred=circular_mean(first.angles, mean, 360.0),
                peak=float(first.angles[int(torch.argmax(mean))]),
                period=360.0,
                radii=radii,
                grid=grid,
            )
        )
    return curves[0] if isinstance(unit, str) else curves


@dataclass
class HighLowTuning:
    """A unit's responses to high-low frequency boundaries over orientation and frequency ratio.

    The two axes of "High-Low Frequency Detectors" ("Tuning curves", figures
    ``1.4-tuning-curves/response-mixed3a-*.png``: x orientation, y frequency ratio).

    Attributes:
        unit: the unit id.
        angles: ``(A,)`` degrees, this module's convention (the high side's direction).
        ratios: ``(R,)`` frequency ratios high : low (``period_low / period_high``).
        responses: ``(R, A)`` the unit's activation at the centre position.
        preferred: the circular mean over orientation of the responses averaged over ratios.
        peak: ``(angle, ratio)`` of the largest response.
    """

    unit: str
    angles: torch.Tensor
    ratios: torch.Tensor
    responses: torch.Tensor
    preferred: float
    peak: tuple[float, float]


def high_low_tuning(
    model,
    unit: str | Sequence[str],
    angles: int | Sequence[float] | torch.Tensor = 36,
    ratios: Sequence[float] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0),
    size: int = 128,
    period_high: float = 4.0,
    pre_relu: bool = False,
    position: tuple[int, int] | None = None,
    batch_size: int = 32,
    **stimulus_kwargs,
) -> HighLowTuning | list[HighLowTuning]:
    """Responses to :func:`high_low_frequency` over orientation x frequency ratio.

    The article's two-axis tuning ("High-Low Frequency Detectors", "Tuning curves"): the
    boundary turns through 360 degrees and the low side's period grows from ``period_high``
    (ratio 1: no boundary) to ``period_high * max(ratios)``. ``period_high`` is in pixels and is
    not scaled with ``size`` (the network's filters have a fixed size in pixels); the article's
    exact periods were not published, these are ours. ``stimulus_kwargs`` (``pattern=``,
    contrasts) go to :func:`high_low_frequency`. Returns a :class:`HighLowTuning` per unit.
    """
    device = getattr(model, "device", torch.device("cpu"))
    rows = []
    for ratio in ratios:
        draw = partial(high_low_frequency, size=size, period_high=period_high, ratio=float(ratio),
                       device=device, **stimulus_kwargs)  # fmt: skip
        out = tuning_curve(model, unit, draw, angles=angles, pre_relu=pre_relu, position=position,
                           period=360.0, batch_size=batch_size)  # fmt: skip
        rows.append(out if isinstance(out, list) else [out])
    result = []
    ratios_t = torch.as_tensor([float(r) for r in ratios], dtype=torch.float64)
    for i, first in enumerate(rows[0]):
        grid = torch.stack([row[i].responses for row in rows])  # (R, A)
        flat = int(torch.argmax(grid))
        r_i, a_i = divmod(flat, grid.shape[1])
        result.append(
            HighLowTuning(
                unit=first.unit,
                angles=first.angles.clone(),
                ratios=ratios_t.clone(),
                responses=grid,
                preferred=circular_mean(first.angles, grid.mean(dim=0), 360.0),
                peak=(float(first.angles[a_i]), float(ratios_t[r_i])),
            )
        )
    return result[0] if isinstance(unit, str) else result


# -- comparing a model's radial tuning with the article's --------------------------------------
@dataclass
class RadialComparison:
    """One unit's measured radial tuning against the published one (:func:`compare_radial_tuning`).

    Angles are in the **article's** convention (entry ``i`` of the data at ``i / 2`` degrees).

    Attributes:
        unit: e.g. ``"3b:379"``.
        published_peak: the published curve's argmax (the article's preferred orientation).
        measured_peak: the measured curve's argmax, converted to the article's convention.
        difference: ``measured_peak - published_peak`` wrapped into ``(-180, 180]``.
        correlation: Pearson correlation of the measured responses with the published curve
            read at the same orientations (1: the same shape up to scale and offset).
        shift: the rotation ``s`` (degrees, ``(-180, 180]``) for which the measured curve best
            matches the published one turned by ``s``, ``measured(t) ~ published(t - s)``
            (highest correlation); near 0 when the conventions and the tuning agree.
    """

    unit: str
    published_peak: float
    measured_peak: float
    difference: float
    correlation: float
    shift: float

    def agrees(self, tolerance: float = 30.0) -> bool:
        """Whether the peaks are within ``tolerance`` degrees."""
        return abs(self.difference) <= tolerance


def _wrap180(d: float) -> float:
    d = d % 360.0
    return d - 360.0 if d > 180.0 else d


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def compare_radial_tuning(curves, layer: str = "mixed3b", data: dict[int, np.ndarray] | None = None):
    """Compare measured radial tuning curves with "Curve Detectors"' published ones.

    ``curves``: :class:`circuitscope.methods.stimuli.TuningCurve` s of units of ``layer`` (e.g. from
    :func:`circuitscope.methods.stimuli.radial_tuning_curve`), their ``angles`` in the stimuli's
    convention (counter-clockwise); they are converted to the article's (clockwise,
    :func:`circuitscope.methods.stimuli.article_orientation`) before comparing. ``data``: the
    published curves ``{channel: (720,)}``; default :func:`circuitscope.core.published.radial_tuning` ``(layer)`` (fetched,
    credited as "Curve Detectors", Cammarata et al., 2020, CC BY 4.0). The published curve is
    read at the nearest of its 720 orientations.

    Returns one :class:`RadialComparison` per curve, in order. Raises ``KeyError`` for a unit the
    published data does not have.
    """
    if isinstance(curves, TuningCurve):
        curves = [curves]
    data = published.radial_tuning(layer) if data is None else data
    out = []
    for tc in curves:
        channel = int(str(tc.unit).rsplit(":", 1)[-1])
        if channel not in data:
            raise KeyError(f"the published {layer} data has no unit {channel}; it has {sorted(data)}")
        pub = np.asarray(data[channel], dtype=np.float64)
        n = len(pub)
        step = 360.0 / n
        art = article_orientation(tc.angles.double().cpu().numpy())
        measured = tc.responses.double().cpu().numpy()
        index = np.rint(art / step).astype(int) % n
        published_peak = float(np.argmax(pub)) * step
        measured_peak = float(article_orientation(float(tc.peak)))
        shifts = np.arange(n)
        scores = [_pearson(measured, pub[(index - s) % n]) for s in shifts]
        scores = np.nan_to_num(np.asarray(scores), nan=-np.inf)
        best = int(np.argmax(scores))
        out.append(
            RadialComparison(
                unit=str(tc.unit),
                published_peak=published_peak,
                measured_peak=measured_peak,
                difference=_wrap180(measured_peak - published_peak),
                correlation=_pearson(measured, pub[index]),
                shift=_wrap180(best * step),
            )
        )
    return out
