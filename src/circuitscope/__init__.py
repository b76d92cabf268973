"""circuitscope: mechanistic interpretability of InceptionV1, as a course and a toolkit.

The names most chapters need are here::

    import circuitscope as cs
    model = cs.load_inceptionv1()              # real weights if they can be had, else synthetic
    acts = cs.activations(model, images, ["mixed4a"])
    cs.labels()[0]                              # 'dummy'

Names load on first use, so ``import circuitscope`` is instant and tools that never touch the
model (the grading command) do not pay for importing PyTorch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS = {
    "InceptionV1": "models",
    "load_inceptionv1": "models",
    "activations": "hooks",
    "capture": "hooks",
    "check_layer_names": "hooks",
    "labels": "class_labels",
    "label": "class_labels",
    "get_device": "device",
    "profile": "device",
    "Profile": "device",
    "seed_everything": "device",
    "load_image": "images",
    "preprocess": "images",
    "sample_image": "images",
    "sample_images": "images",
    "notice": "provenance",
    "weights_caption": "provenance",
    "is_synthetic": "provenance",
    "class_probabilities": "classify",
    "top_k_classes": "classify",
    "channel_means": "channels",
    "strongest_channels": "channels",
    "strongest_patch": "channels",
    "parse_unit": "circuits",
    "branch_of": "circuits",
    "weights_between": "circuits",
    "expanded_weights": "circuits",
    "nmf_weights": "circuits",
    "tuning_curve": "stimuli",
    "render_gallery": "gallery",
    "top_examples": "dataset_examples",
    "TopExamples": "dataset_examples",
    "ImageFolderStream": "datasets",
    "measure_polysemanticity": "polysemanticity",
    "outgoing_weights": "polysemanticity",
    "diverse_renders": "polysemanticity",
    "ToyModel": "superposition",
    "train_toy_model": "superposition",
    "features_per_dimension": "superposition",
    "phase_diagram": "superposition",
    "SparseAutoencoder": "sae",
    "train_sae": "sae",
    "train_layer_sae": "sae",
    "activation_batches": "sae",
    "dead_features": "sae",
    "feature_direction": "sae",
    "SAEFeatureModel": "sae",
    "load_sae": "sae",
}
_SUBMODULES = {
    "models", "hooks", "class_labels", "device", "images", "provenance", "classify", "channels",
    "circuits", "stimuli", "planted", "plotting", "checks", "optvis", "gallery", "receptive_field",
    "superposition", "sae", "datasets", "dataset_examples", "polysemanticity",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
