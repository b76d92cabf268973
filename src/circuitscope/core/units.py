"""A unit's name, as the papers write it: ``"4c:447"`` is channel 447 of ``mixed4c``.

``parse_unit`` reads the short and full forms (``"3b:379"``, ``"mixed3b:379"``, a ``(layer,
channel)`` pair) and checks them against a model's layers, with "did you mean" for typos;
``format_unit`` writes the short form back.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Iterable

from .models.inceptionv1 import LAYER_CHANNELS


def expand_short_name(name: str, known: Iterable[str] = LAYER_CHANNELS) -> str:
    """``"3b"`` -> ``"mixed3b"``, ``"3b_5x5"`` -> ``"mixed3b_5x5"``; other names unchanged."""
    if re.match(r"^\d[a-e](_|$)", name) and ("mixed" + name) in known:
        return "mixed" + name
    return name


def layer_channels_of(model) -> dict[str, int]:
    """The channels of every named value of ``model`` (InceptionV1's when it declares none)."""
    return getattr(model, "layer_channels", None) or LAYER_CHANNELS


def parse_unit(unit: str | tuple[str, int], model=None) -> tuple[str, int]:
    """``"3b:379"`` -> ``("mixed3b", 379)``; ``"mixed3b:379"`` and ``("mixed3b", 379)`` too.

    Layer names may be short (``"4c"``, ``"3b_5x5"``) or full (``"mixed3b_pre_relu"``); the
    layer must exist in ``model`` (InceptionV1 when ``model`` is None) and the channel must be
    in range, otherwise ``ValueError`` says what is valid.
    """
    if isinstance(unit, tuple):
        layer, channel = unit
        if isinstance(channel, bool) or not isinstance(channel, int):
            try:
                channel = operator.index(channel)  # numpy and one-element integer tensors too
            except TypeError:
                raise ValueError(f"the channel of {unit!r} is not an integer") from None
    else:
        if not isinstance(unit, str) or unit.count(":") != 1:
            raise ValueError(
                f"a unit is written 'layer:channel', e.g. '3b:379' or 'mixed3b:379'; got {unit!r}"
            )
        layer, _, ch = unit.partition(":")
        try:
            channel = int(ch)
        except ValueError:
            raise ValueError(f"the channel of {unit!r} is not an integer") from None
    channels = layer_channels_of(model)
    layer = expand_short_name(layer.strip(), channels)
    if layer not in channels:
        close = difflib.get_close_matches(layer, list(channels), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        if model is None:
            raise ValueError(
                f"unknown layer {layer!r} in unit {unit!r}.{hint} Without a model, units are looked up "
                f"in InceptionV1; for another model's layers pass the model: parse_unit({unit!r}, model)"
            )
        raise ValueError(
            f"unknown layer {layer!r} in unit {unit!r}.{hint} Layers are e.g. "
            f"{', '.join(list(channels)[:6])}, ... (all: model.layer_names)"
        )
    if not 0 <= channel < channels[layer]:
        raise ValueError(
            f"channel {channel} of {layer} is out of range: it has {channels[layer]} channels "
            f"(0..{channels[layer] - 1})"
        )
    return layer, int(channel)


def format_unit(layer: str, channel: int) -> str:
    """``("mixed3b", 379)`` -> ``"3b:379"`` (the papers' short form)."""
    short = layer[5:] if re.match(r"^mixed\d[a-e]", layer) else layer
    return f"{short}:{channel}"
