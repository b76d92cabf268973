"""Ablation: switch a family of units off and measure what changes downstream.

Reading a circuit from its weights is a hypothesis about what the network computes; an
intervention tests it. "Curve Circuits" (Cammarata et al., 2021) edits the real network's
weights and measures the curve detectors again; "Zoom In" (Olah et al., 2020) calls for such
experiments as the harder evidence behind a circuit. The simplest intervention is an
**ablation**: set some units' activations to a constant (zero, or their mean) everywhere in the
layer, let the rest of the network run on that, and compare a later unit's response with the
clean run.

* :func:`ablated`: a context manager inside which the given units of one layer are replaced by
  a constant, through a temporary forward hook on the layer's hook point (removed on exit,
  even on an error), so that every later layer reads the ablated values;
* :func:`ablation_effect`: a downstream unit's response to a batch of images, clean and with
  the units ablated.

Works on any :class:`~circuitscope.core.models.named.NamedModel` (InceptionV1, the planted models).
Units are written as everywhere in the library (``"3b:379"``, ``"lines:0"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

import torch

from ..core.hooks import activations, replaced
from ..core.units import parse_unit

__all__ = ["AblationEffect", "ablated", "ablation_effect"]


def _layer_and_channels(model, units: str | Iterable[str]) -> tuple[str, list[int]]:
    """The one layer of ``units`` and their channels; ``ValueError`` if they span layers."""
    units = [units] if isinstance(units, str) else list(units)
    if not units:
        raise ValueError("ablate at least one unit")
    parsed = [parse_unit(u, model) for u in units]
    layers = {layer for layer, _ in parsed}
    if len(layers) != 1:
        raise ValueError(f"the units to ablate must be in one layer; got {sorted(layers)}")
    return layers.pop(), sorted({c for _, c in parsed})


@contextmanager
def ablated(model, units: str | Iterable[str], value: float | torch.Tensor = 0.0) -> Iterator[None]:
    """Inside the block, ``units`` (one layer) read ``value`` at every position.

    Args:
        model: a :class:`~circuitscope.core.models.named.NamedModel`.
        units: unit ids of one layer, e.g. ``[f"3b:{c}" for c in CURVES_3B]``.
        value: the constant they are set to: ``0.0`` (zero ablation, default), or a tensor of
            one value per unit (e.g. each unit's mean activation: mean ablation).

    The rest of the layer is untouched; every later layer computes from the ablated values.
    The hook is removed when the block ends, even on an error.
    """
    layer, channels = _layer_and_channels(model, units)
    index = torch.tensor(channels)
    fill = torch.as_tensor(value, dtype=torch.float32)
    if fill.dim() == 1 and fill.numel() != len(channels):
        raise ValueError(f"value has {fill.numel()} entries for {len(channels)} units")

    def ablate(output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        v = fill.to(out)
        v = v.view(1, -1, *([1] * (out.dim() - 2))) if v.dim() == 1 else v
        out[:, index.to(out.device)] = v.expand_as(out[:, index.to(out.device)])
        return out

    with replaced(model, layer, ablate):
        yield


class AblationEffect(NamedTuple):
    """A unit's response to images, clean and with other units ablated.

    Attributes:
        unit: the measured unit; ``ablated_units``: the units switched off.
        clean, ablated: ``(N,)`` the unit's activation at the centre position of its map (or at
            ``position``), for each image.
    """

    unit: str
    ablated_units: tuple[str, ...]
    clean: torch.Tensor
    ablated: torch.Tensor

    @property
    def change(self) -> torch.Tensor:
        """``(N,)`` ablated minus clean."""
        return self.ablated - self.clean

    def fraction_kept(self) -> float:
        """Total ablated response over total clean response (1: the ablation changed nothing;
        ``nan`` when the clean response is 0 everywhere)."""
        total = float(self.clean.sum())
        return float(self.ablated.sum()) / total if total != 0 else float("nan")


def _centre_response(model, images: torch.Tensor, unit: str, position: tuple[int, int] | None) -> torch.Tensor:
    layer, channel = parse_unit(unit, model)
    with torch.no_grad():
        acts = activations(model, images, [layer])[layer][:, channel]
    if acts.dim() == 1:
        return acts.detach().cpu()
    y, x = position if position is not None else (acts.shape[-2] // 2, acts.shape[-1] // 2)
    return acts[:, y, x].detach().cpu()


def ablation_effect(
    model,
    images: torch.Tensor,
    units: str | Sequence[str],
    target: str,
    value: float | torch.Tensor = 0.0,
    position: tuple[int, int] | None = None,
) -> AblationEffect:
    """``target``'s response to ``images: (N, 3, H, W)`` in [0, 1], clean and with ``units`` ablated.

    The response is the target's activation at the centre of its map (or at ``position``), as
    the articles measure a neuron. ``units`` must lie in a layer before ``target``'s.
    """
    images = images.to(model.device)
    clean = _centre_response(model, images, target, position)
    with ablated(model, units, value):
        changed = _centre_response(model, images, target, position)
    units = (units,) if isinstance(units, str) else tuple(units)
    return AblationEffect(target, units, clean, changed)
