"""Planted models: tiny named models whose weights are set by hand, so the answer is known.

:mod:`~circuitscope.methods.planted.curves` builds curve detectors from line detectors (chapter
3's circuit, with its true weights); :mod:`~circuitscope.methods.planted.patterns` a
polysemantic unit that answers to two unrelated patterns (chapter 4), with the images that show
it. Figures made with them say PLANTED, never InceptionV1.
"""

from __future__ import annotations

from .curves import (
    CURVE_ORIENTATIONS,
    FAMILIES,
    FAMILY_WEIGHTS,
    LINE_ORIENTATIONS,
    PLANTED_CAPTION,
    PlantedCurveModel,
)
from .patterns import PATTERNS, PlantedPatternModel, draw_pattern, planted_images, write_planted_folder

__all__ = [
    "CURVE_ORIENTATIONS",
    "FAMILIES",
    "FAMILY_WEIGHTS",
    "LINE_ORIENTATIONS",
    "PATTERNS",
    "PLANTED_CAPTION",
    "PlantedCurveModel",
    "PlantedPatternModel",
    "draw_pattern",
    "planted_images",
    "write_planted_folder",
]
