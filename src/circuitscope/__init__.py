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
    "InceptionV1": "core.models",
    "load_inceptionv1": "core.models",
    "activations": "core.hooks",
    "capture": "core.hooks",
    "check_layer_names": "core.hooks",
    "labels": "core.class_labels",
    "label": "core.class_labels",
    "get_device": "core.device",
    "profile": "core.device",
    "Profile": "core.device",
    "seed_everything": "core.device",
    "load_image": "core.images",
    "preprocess": "core.images",
    "sample_image": "core.images",
    "sample_images": "core.images",
    "notice": "core.provenance",
    "weights_caption": "core.provenance",
    "is_synthetic": "core.provenance",
    "class_probabilities": "methods.classify",
    "top_k_classes": "methods.classify",
    "channel_means": "methods.channels",
    "strongest_channels": "methods.channels",
    "strongest_patch": "methods.channels",
    "parse_unit": "core.units",
    "branch_of": "methods.circuits",
    "weights_between": "methods.circuits",
    "expanded_weights": "methods.circuits",
    "nmf_weights": "methods.circuits",
    "tuning_curve": "methods.stimuli",
    "render_gallery": "tools.gallery",
    "top_examples": "methods.dataset_examples",
    "TopExamples": "methods.dataset_examples",
    "ImageFolderStream": "core.datasets",
    "measure_polysemanticity": "methods.polysemanticity",
    "outgoing_weights": "methods.polysemanticity",
    "diverse_renders": "methods.polysemanticity",
    "ToyModel": "methods.superposition",
    "train_toy_model": "methods.superposition",
    "features_per_dimension": "methods.superposition",
    "phase_diagram": "methods.superposition",
    "SparseAutoencoder": "methods.sae",
    "train_sae": "methods.sae",
    "train_layer_sae": "methods.sae",
    "activation_batches": "methods.sae",
    "dead_features": "methods.sae",
    "feature_direction": "methods.sae",
    "SAEFeatureModel": "methods.sae",
    "load_sae": "methods.sae",
}
# short name -> module: `cs.circuits`, `from circuitscope import plotting` (the book's spelling);
# the library itself imports by full path (`circuitscope.methods.circuits`).
_SUBMODULES = {
    "models": "core.models", "hooks": "core.hooks", "images": "core.images",
    "datasets": "core.datasets", "device": "core.device", "distributed": "core.distributed",
    "progress": "core.progress", "provenance": "core.provenance", "registry": "core.registry",
    "published": "core.published", "class_labels": "core.class_labels",
    "receptive_field": "core.receptive_field",
    "optvis": "methods.optvis", "circuits": "methods.circuits", "stimuli": "methods.stimuli",
    "planted": "methods.planted", "channels": "methods.channels", "classify": "methods.classify",
    "branches": "methods.branches", "dataset_examples": "methods.dataset_examples",
    "polysemanticity": "methods.polysemanticity", "superposition": "methods.superposition",
    "sae": "methods.sae", "sae_eval": "methods.sae_eval", "ablation": "methods.ablation",
    "feature_splitting": "methods.feature_splitting",
    "plotting": "figures.plotting", "style": "figures.style", "interactive": "figures.interactive",
    "cli": "tools.cli", "gallery": "tools.gallery", "book": "tools.book",
    "checks": "checks",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{_SUBMODULES[name]}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
