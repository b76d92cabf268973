"""circuitscope: mechanistic interpretability of InceptionV1, as a course and a toolkit.

The names most chapters need are here::

    import circuitscope as cs
    model = cs.load_inceptionv1()              # real weights if they can be had, else synthetic
    acts = cs.activations(model, images, ["mixed4a"])
    cs.labels()[0]                              # 'dummy'
"""

from .activations import activations, capture, check_layer_names
from .device import Profile, get_device, profile, seed_everything
from .images import load_image, preprocess, sample_image, sample_images
from .labels import label, labels
from .models import InceptionV1, load_inceptionv1
from .provenance import notice, weights_caption

__version__ = "0.1.0"

__all__ = [
    "InceptionV1", "load_inceptionv1", "activations", "capture", "check_layer_names",
    "labels", "label", "get_device", "profile", "Profile", "seed_everything",
    "load_image", "preprocess", "sample_image", "sample_images", "notice", "weights_caption",
]  # fmt: skip
