"""A planted circuit: a tiny model whose curve detectors are built, by hand, from line detectors.

"Curve Circuits" (Cammarata et al., 2021, "An Artificial Artificial Neural Network") rebuilt
InceptionV1's curve detectors by writing the weights out by hand from the circuit's description:
"each layer builds a contrast detector by tiling a simpler contrast detector along its
tangent. When the two shapes are aligned the weight is most positive, and most negative when
they are perpendicular." This module does the same at toy scale, so that every method of the
circuits chapter can be checked against an answer known by construction, with or without the
real InceptionV1 weights.

:class:`PlantedCurveModel` (input ``(N, 3, H, W)`` in ``[0, 1]``, best at sizes ``4 * odd``,
e.g. 44):

* ``lines`` (16 channels): fixed oriented line detectors on the grey image, 8 orientations
  (0, 22.5, ..., 157.5 degrees; 0 = horizontal, counter-clockwise) in two families, ``thin``
  (channels 0-7) and ``thick`` (channels 8-15), each followed by a ReLU and averaged over
  ``cell x cell`` pixel cells (a coarse grid, as InceptionV1's pools make one).
* ``curves`` (8 channels): curve detectors facing 0, 45, ..., 315 degrees (the direction from
  the circle's centre to the arc's midpoint, as in :func:`circuitscope.methods.stimuli.curve`). Each
  is a 5x5 convolution over ``lines`` whose weights are **planted**: along an arc of radius
  ``radius`` pixels through the centre cell, the line orientation tangent to the arc excites
  (thin family weight 1, thick family 0.5) and the perpendicular orientation inhibits
  (``inhibition`` times as much), fading with a cell's distance from the arc.

The ground truth is returned by :meth:`PlantedCurveModel.planted_weights`,
:meth:`~PlantedCurveModel.planted_factors` and :meth:`~PlantedCurveModel.arc_cells`. The
model is a :class:`~circuitscope.core.models.named.NamedModel`, as InceptionV1 is (``named_forward``,
``hook_points``, ``layer_names``, ``relus``), and keeps its convolutions in
``<layer>_pre_relu_conv`` modules, so :func:`circuitscope.activations`,
:func:`circuitscope.methods.stimuli.tuning_curve` and :func:`circuitscope.methods.circuits.weights_between`
work on it (``layer_inputs`` declares that ``lines`` feeds ``curves`` directly).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...core.models.named import NamedModel, check_images
from ..stimuli import line

__all__ = ["CURVE_ORIENTATIONS", "FAMILIES", "FAMILY_WEIGHTS", "LINE_ORIENTATIONS", "PLANTED_CAPTION", "PlantedCurveModel"]

LINE_ORIENTATIONS = tuple(22.5 * i for i in range(8))  # degrees, period 180
CURVE_ORIENTATIONS = tuple(45.0 * i for i in range(8))  # degrees, period 360
FAMILIES = ("thin", "thick")
FAMILY_WEIGHTS = (1.0, 0.5)  # how much each line family counts in every curve unit
_LINE_SIGMA = {"thin": 1.0, "thick": 1.6}  # profile width across the line, pixels
_LINE_LENGTH = 2.5  # Gaussian length along the line, pixels
_LINE_KERNEL = 13
#: The caption of figures made with a planted model (use ``caption=PLANTED_CAPTION`` in plots).
PLANTED_CAPTION = "PLANTED CIRCUIT: hand-set weights known by construction, not InceptionV1"
_CURVE_KERNEL = 5


def line_kernel(orientation: float, sigma: float, size: int = _LINE_KERNEL) -> torch.Tensor:
    """A zero-sum oriented line detector ``(size, size)`` (float64), rows top to bottom.

    Across the line: a centre Gaussian minus a surround twice as wide (zero integral); along
    it: a Gaussian of length ``2.5`` px. ``orientation`` in degrees, counter-clockwise from
    horizontal.
    """
    c = (size - 1) / 2
    r = torch.arange(size, dtype=torch.float64) - c
    v, u = torch.meshgrid(-r, r, indexing="ij")  # v up, u right
    t = math.radians(orientation)
    along = u * math.cos(t) + v * math.sin(t)
    across = -u * math.sin(t) + v * math.cos(t)
    profile = torch.exp(-(across**2) / (2 * sigma**2)) - 0.5 * torch.exp(-(across**2) / (8 * sigma**2))
    kernel = profile * torch.exp(-(along**2) / (2 * _LINE_LENGTH**2))
    return kernel - kernel.mean()


def _wrap_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0


def _orientation_weights(theta: float) -> torch.Tensor:
    """Linear interpolation of a line orientation (period 180) over the 8 orientation channels."""
    pos = (theta % 180.0) / 22.5
    lo = math.floor(pos)
    frac = pos - lo
    w = torch.zeros(8, dtype=torch.float64)
    w[lo % 8] += 1 - frac
    w[(lo + 1) % 8] += frac
    return w


class PlantedCurveModel(NamedModel):
    """Line detectors -> planted curve detectors; see the module docstring.

    Args:
        radius: the planted arcs' radius in pixels (draw test curves with the same radius).
        width: the planted arcs' angular extent in degrees.
        cell: the pooling cell of ``lines`` in pixels.
        inhibition: weight of the perpendicular orientation relative to the tangent one.
        line_threshold: the line detectors' bias is ``-line_threshold`` (their response to a
            centred 2-px line at their orientation is scaled to 1).
        falloff: how fast weights fade with a cell's distance from the arc (Gaussian sigma, cells).

    ``forward(images)`` returns the curve activations ``(N, 8, H / cell, W / cell)``.
    """

    layer_names: ClassVar[list[str]] = ["lines_pre_relu", "lines", "curves_pre_relu", "curves"]
    layer_channels: ClassVar[dict[str, int]] = {
        "lines_pre_relu": 16,
        "lines": 16,
        "curves_pre_relu": 8,
        "curves": 8,
    }
    layer_inputs: ClassVar[dict[str, str]] = {"curves": "lines"}  # direct connections, for circuits
    # ``lines`` is pooled after its ReLU, so only ``curves`` is a plain ReLU (for redirected ReLU).
    relus: ClassVar[dict[str, str]] = {"curves": "curves_pre_relu"}

    def __init__(
        self,
        radius: float = 12.0,
        width: float = 120.0,
        cell: int = 4,
        inhibition: float = 0.5,
        line_threshold: float = 0.25,
        falloff: float = 0.5,
    ) -> None:
        super().__init__()
        self.radius, self.width, self.cell = float(radius), float(width), int(cell)
        self.inhibition, self.falloff = float(inhibition), float(falloff)
        self.lines_pre_relu_conv = nn.Conv2d(3, 16, _LINE_KERNEL, padding=_LINE_KERNEL // 2)
        self.curves_pre_relu_conv = nn.Conv2d(16, 8, _CURVE_KERNEL, padding=_CURVE_KERNEL // 2)
        with torch.no_grad():
            self.lines_pre_relu_conv.weight.copy_(self._line_weights())
            self.lines_pre_relu_conv.bias.fill_(-line_threshold)
            self.curves_pre_relu_conv.weight.copy_(self.planted_weights())
            self.curves_pre_relu_conv.bias.zero_()
        self.requires_grad_(False)
        self.eval()
        self.weights_state = "planted"  # built by hand, not InceptionV1: figures say "PLANTED MODEL"
        self.is_synthetic = True  # read by older code
        self.weights_source = "planted curve circuit (hand-set weights, known by construction)"

    # -- construction ------------------------------------------------------------------------
    def _line_weights(self) -> torch.Tensor:
        weights = torch.zeros(16, 3, _LINE_KERNEL, _LINE_KERNEL, dtype=torch.float64)
        for f, family in enumerate(FAMILIES):
            for o, theta in enumerate(LINE_ORIENTATIONS):
                kernel = line_kernel(theta, _LINE_SIGMA[family])
                patch = line(theta, size=_LINE_KERNEL, thickness=2.0, dtype=torch.float64)[0, 0]
                kernel = kernel / (kernel * patch).sum()  # response 1 to a centred line
                weights[f * 8 + o] = kernel / 3  # the grey image is the mean of R, G, B
        return weights.float()

    def arc_cells(self, unit: int) -> list[tuple[int, int, float, float]]:
        """Where curve unit ``unit``'s planted arc runs: ``[(row, col, tangent, strength), ...]``.

        ``row, col`` index the 5x5 kernel (row 0 at the top, the centre at ``(2, 2)``);
        ``tangent`` is the line orientation (degrees, period 180) tangent to the arc at the
        arc point nearest the cell; ``strength`` in ``(0, 1]`` fades with the cell's distance
        from the arc. Cells with no weight are left out.
        """
        phi = math.radians(CURVE_ORIENTATIONS[unit])
        r = self.radius / self.cell
        half = math.radians(self.width) / 2
        cu, cv = -r * math.cos(phi), -r * math.sin(phi)  # circle centre; the arc's midpoint is (0, 0)
        cells = []
        c = (_CURVE_KERNEL - 1) // 2
        for row in range(_CURVE_KERNEL):
            for col in range(_CURVE_KERNEL):
                u, v = col - c, c - row
                du, dv = u - cu, v - cv
                delta = math.radians(_wrap_deg(math.degrees(math.atan2(dv, du) - phi)))
                nearest = phi + max(-half, min(half, delta))  # angle of the nearest arc point
                pu, pv = cu + r * math.cos(nearest), cv + r * math.sin(nearest)
                distance = math.hypot(u - pu, v - pv)
                strength = math.exp(-(distance**2) / (2 * self.falloff**2))
                if strength >= 0.1:
                    cells.append((row, col, (math.degrees(nearest) + 90.0) % 180.0, strength))
        return cells

    def planted_weights(self) -> torch.Tensor:
        """The curve units' weights by construction: ``(8, 16, 5, 5)`` float32.

        ``[unit, family * 8 + orientation, row, col]``: at each arc cell, ``+strength`` times the
        family weight on the tangent orientation and ``-inhibition * strength`` times it on the
        perpendicular one (orientations between channels are split linearly between the two
        nearest).
        """
        w = torch.zeros(8, 16, _CURVE_KERNEL, _CURVE_KERNEL, dtype=torch.float64)
        for unit in range(8):
            for row, col, tangent, strength in self.arc_cells(unit):
                pattern = _orientation_weights(tangent) - self.inhibition * _orientation_weights(
                    tangent + 90.0
                )
                for f, fw in enumerate(FAMILY_WEIGHTS):
                    w[unit, f * 8 : f * 8 + 8, row, col] = fw * strength * pattern
        return w.float()

    def planted_factors(self) -> torch.Tensor:
        """The channel factors of the planted weights: ``(8, 16)``, non-negative, unit L2 rows.

        Factor ``o`` is "a line at orientation ``LINE_ORIENTATIONS[o]``, either family": thin
        channel ``o`` with weight 1 and thick channel ``8 + o`` with weight 0.5. Every curve
        unit's weights are signed spatial maps times these factors, so one-sided NMF with
        ``k = 8`` should find them ("Visualizing Weights", "Dimensionality and Scale").
        """
        f = torch.zeros(8, 16)
        for o in range(8):
            f[o, o], f[o, 8 + o] = FAMILY_WEIGHTS
        return f / f.norm(dim=1, keepdim=True)

    # -- forward -----------------------------------------------------------------------------
    def named_forward(self, images: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(name, value)`` for each of :attr:`layer_names`; ``images: (N, 3, H, W)`` in [0, 1]."""
        check_images(images)
        _, pre = item = self.emit("lines_pre_relu", self.lines_pre_relu_conv(images))
        yield item
        _, lines = item = self.emit("lines", F.avg_pool2d(F.relu(pre), self.cell))
        yield item
        _, pre = item = self.emit("curves_pre_relu", self.curves_pre_relu_conv(lines))
        yield item
        yield self.emit("curves", F.relu(pre))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.run_to(images, ["curves"])["curves"]

    def extra_repr(self) -> str:
        return f"radius={self.radius}, width={self.width}, cell={self.cell}, inhibition={self.inhibition}"
