"""InceptionV1 and its weights: the model every chapter studies."""

from __future__ import annotations

import os
import warnings

import torch

from ..device import get_device
from .inceptionv1 import BLOCKS, LAYER_CHANNELS, LAYER_NAMES, MAIN_LAYERS, InceptionV1
from .synthetic import init_synthetic
from .weights import (
    LoadedWeights,
    WeightsCorruptError,
    WeightsError,
    WeightsHashError,
    WeightsMismatchError,
    WeightsNonFiniteError,
    WeightsUnavailableError,
    file_state_dict,
    lucid_state_dict,
    weights_identity,
)

__all__ = [
    "BLOCKS",
    "LAYER_CHANNELS",
    "LAYER_NAMES",
    "MAIN_LAYERS",
    "InceptionV1",
    "WeightsCorruptError",
    "WeightsError",
    "WeightsHashError",
    "WeightsMismatchError",
    "WeightsNonFiniteError",
    "WeightsUnavailableError",
    "load_inceptionv1",
    "weights_identity",
]  # fmt: skip

SYNTHETIC_WARNING = (
    "Using SYNTHETIC weights: the real InceptionV1 weights could not be had, so a deterministic "
    "stand-in is used. It shows how the methods work, not what InceptionV1 learned; every "
    "figure made with it says so."
)


def load_inceptionv1(
    weights: str | os.PathLike = "auto",
    device: str | torch.device | None = None,
    progress: bool = True,
    allow_unverified: bool = False,
) -> InceptionV1:
    """InceptionV1 in eval mode, frozen, on ``device`` (default: :func:`get_device`).

    ``weights``:
      * ``"lucid"``: the real weights (``$CIRCUITSCOPE_WEIGHTS``, else the cache, else a
        verified download); raises :class:`WeightsUnavailableError` with manual steps if none.
      * ``"synthetic"``: the seeded stand-in (``model.weights_state == "synthetic"``).
      * ``"auto"``: ``"lucid"`` if it can be had, else ``"synthetic"`` with a warning.
      * a path: that weight file (``.pth``, or the original ``.zip``), checked by format,
        names, shapes, finite values and hash.

    A file with the right names and shapes but not the published bytes (a path, or
    ``$CIRCUITSCOPE_WEIGHTS``) is refused with :class:`WeightsHashError` unless
    ``allow_unverified=True`` or ``$CIRCUITSCOPE_ALLOW_UNVERIFIED=1``; accepted, the model's
    ``weights_state`` is ``"unverified"`` and every figure says so. The verified file gives
    ``"real"``.
    """
    model = InceptionV1()
    if weights == "synthetic":
        init_synthetic(model)
    elif weights in ("lucid", "auto"):
        try:
            loaded = lucid_state_dict(progress=progress, allow_unverified=allow_unverified)
        except WeightsUnavailableError as err:
            if weights == "lucid":
                raise
            warnings.warn(f"{SYNTHETIC_WARNING}\n{err}", UserWarning, stacklevel=2)
            init_synthetic(model)
        else:
            _load(model, loaded)
    elif isinstance(weights, (str, os.PathLike)) and (
        isinstance(weights, os.PathLike) or os.sep in weights or weights.endswith((".pth", ".pt", ".zip"))
    ):
        _load(model, file_state_dict(weights, allow_unverified=allow_unverified))
    else:
        raise ValueError(
            f"weights={weights!r} is not understood: use 'auto', 'lucid', 'synthetic' or a path "
            "to an inception5h.pth file"
        )
    return model.to(get_device(device)).eval()


def _load(model: InceptionV1, loaded: LoadedWeights) -> None:
    model.load_state_dict(loaded.state_dict, strict=True)
    model.weights_state = loaded.state
    # No warning for "unverified": the caller accepted the file, and every figure says so.
    model.weights_source = loaded.source
