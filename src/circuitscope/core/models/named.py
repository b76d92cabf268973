"""The named-model contract: every model the library studies is a :class:`NamedModel`.

In the spirit of TransformerLens's hooked models: a model declares the values a reader talks
about, by name, in the order its forward pass computes them, and every method of the library
(activations, hooks, feature visualization, dataset examples, SAEs) reaches them through this
one contract and nothing else.

A :class:`NamedModel` declares

* ``layer_names``: every named value (layers, branches, pre-ReLU values), in forward order;
* ``layer_channels``: the channels of each;
* ``relus``: ``{relu output name: pre-ReLU name}`` for the values that are exactly
  ``relu(<pre-ReLU value>)``, nothing else in between: where feature visualization may use the
  redirected ReLU gradient (:func:`circuitscope.methods.optvis.render.redirected_relu`);
* ``hook_points``: one :class:`HookPoint` per name, for ordinary PyTorch forward hooks;
* ``device``: where its parameters live;

and implements one method, :meth:`NamedModel.named_forward`, which yields ``(name, value)``
in order with every value passed through its hook point (:meth:`NamedModel.emit`). It then
gets :meth:`NamedModel.run_to`, the one scan of the library: run the model only as far as the
deepest name asked for, and return the values by name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from typing import ClassVar

import torch
from torch import nn

__all__ = ["HookPoint", "HookPoints", "NamedModel", "check_images"]


class HookPoint(nn.Module):
    """An identity module at a named place of the forward pass, for forward hooks.

    A forward hook on it sees (and may replace) the value of that name.
    """

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return repr(self.name)


class HookPoints(nn.ModuleDict):
    """``model.hook_points``: the :class:`HookPoint` of each name, ``hook_points["mixed4a"]``.

    An ordinary ``nn.ModuleDict``, except that an unknown name raises a ``KeyError`` that says
    which names there are (the model's ``layer_names``) instead of repeating the name.
    """

    def __getitem__(self, key):
        if isinstance(key, str) and key not in self._modules:
            names = list(self._modules)
            close = difflib.get_close_matches(key, names, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(
                f"no hook point named {key!r}.{hint} The hook points are the model's layer names "
                f"(model.layer_names): {', '.join(names[:4])}, ..."
            )
        return super().__getitem__(key)


def check_images(images) -> None:
    """Raise a clear error unless ``images`` is a float tensor ``(N, 3, H, W)`` (values in [0, 1])."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"expected images as a torch.Tensor (N, 3, H, W) float in [0, 1], got {type(images).__name__}"
        )
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"expected images of shape (N, 3, H, W) in [0, 1], got {tuple(images.shape)}; "
            "for one image use images.unsqueeze(0), for HWC arrays permute(2, 0, 1)"
        )
    if not images.is_floating_point():
        raise TypeError(
            f"expected float images in [0, 1], got {images.dtype} pixels: for 0..255 pixels "
            "use images.float() / 255"
        )


class NamedModel(nn.Module):
    """Base class of the models the library studies; see the module docstring for the contract.

    Subclasses set ``layer_names`` and ``layer_channels`` (as class attributes, or by passing
    them to ``__init__``), declare ``relus`` where they have plain ReLUs, and implement
    :meth:`named_forward`. ``__init__`` makes one hook point per name.
    """

    layer_names: ClassVar[list[str]] = []
    layer_channels: ClassVar[dict[str, int]] = {}
    #: ``{relu output name: pre-ReLU name}``: values that are exactly ``relu(pre-ReLU value)``.
    relus: ClassVar[dict[str, str]] = {}

    def __init__(self, layer_names: list[str] | None = None, layer_channels: dict[str, int] | None = None) -> None:
        super().__init__()
        if layer_names is not None:
            self.layer_names = list(layer_names)
        if layer_channels is not None:
            self.layer_channels = dict(layer_channels)
        self.hook_points = HookPoints({n: HookPoint(n) for n in self.layer_names})

    # -- what a subclass writes ---------------------------------------------------------------
    def named_forward(self, images: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(name, value)`` for every name of :attr:`layer_names`, in order, each value
        passed through its hook point (``yield self.emit(name, value)``). Stopping the
        iteration stops the computation."""
        raise NotImplementedError(f"{type(self).__name__} must implement named_forward(images)")

    def emit(self, name: str, value: torch.Tensor) -> tuple[str, torch.Tensor]:
        """``(name, value)`` with ``value`` passed through ``hook_points[name]`` (which may replace it)."""
        return name, self.hook_points[name](value)

    # -- what every named model gets ------------------------------------------------------------
    def run_to(
        self, images: torch.Tensor, names: Iterable[str], *, until: str | None = None
    ) -> dict[str, torch.Tensor]:
        """``{name: value}`` for ``names``, in the order asked, running the model only as far
        as the deepest of them: nothing after it is computed.

        ``until``: keep running at least until that name (benchmarks compare stopping early
        with running the whole network). Runs under the caller's grad mode; ``images`` are
        used as given (move them to :attr:`device` first).
        """
        wanted = list(dict.fromkeys(names))
        remaining = set(wanted)
        found: dict[str, torch.Tensor] = {}
        if not remaining and until is None:
            return found
        for name, value in self.named_forward(images):
            if name in remaining:
                found[name] = value
                remaining.discard(name)
            if not remaining and (until is None or name == until):
                break
        missing = [n for n in wanted if n not in found]
        if missing:
            raise KeyError(f"the forward pass of {type(self).__name__} never produced {missing}")
        return {name: found[name] for name in wanted}

    @property
    def device(self) -> torch.device:
        """Where the model's parameters (else buffers) live; the CPU for a model with neither."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")
