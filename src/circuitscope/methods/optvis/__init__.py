"""Feature visualization by optimization, after Lucid's ``optvis`` ("Feature Visualization",
Olah, Mordvintsev, Schubert, Distill 2017).

Four small modules, one idea each:

* :mod:`~circuitscope.methods.optvis.param`: how an image is represented (pixels, or a 1/f-scaled
  Fourier spectrum with decorrelated colours), always mapped to [0, 1] by a sigmoid;
* :mod:`~circuitscope.methods.optvis.transform`: what it must be robust to (pad, jitter, scale, rotate);
* :mod:`~circuitscope.methods.optvis.objectives`: what is maximised, combined like numbers;
* :mod:`~circuitscope.methods.optvis.render`: the loop that ties them together.

>>> from circuitscope.methods.optvis import render, channel, diversity
>>> images = render(model, channel("mixed4a_pre_relu", 476))            # (1, 3, S, S) in [0, 1]
>>> images = render(model, [channel("mixed3a", c) for c in range(8)])   # 8 images, one batch
>>> images = render(model, channel("mixed5a", 9) - 1e2 * diversity("mixed5a"), batch=4)
"""

from . import objectives, param, transform
from .objectives import (
    Objective,
    as_objective,
    channel,
    direction,
    diversity,
    logit,
    neuron,
    per_element,
)
from .param import FourierImage, ImageParam, PixelImage, image, to_rgb
from .render import RedirectedReLU, RenderOptions, forward_to, redirected_relu, render
from .transform import standard_transforms

__all__ = [
    "FourierImage",
    "ImageParam",
    "Objective",
    "PixelImage",
    "RedirectedReLU",
    "RenderOptions",
    "as_objective",
    "channel",
    "direction",
    "diversity",
    "forward_to",
    "image",
    "logit",
    "neuron",
    "objectives",
    "param",
    "per_element",
    "redirected_relu",
    "render",
    "standard_transforms",
    "to_rgb",
    "transform",
]  # fmt: skip
