"""Activations of InceptionV1 by the names the papers use, and temporary hooks.

``activations(model, images, ["mixed4a", "mixed4a_3x3_pre_relu"])`` runs the model only as far
as the deepest name asked for and returns the values by name; gradients flow through them.
``capture`` does the same for any forward pass with temporary forward hooks. Both work on any
:class:`~circuitscope.core.models.named.NamedModel` (InceptionV1, the planted models, the SAE
feature model): :meth:`NamedModel.run_to` is the one scan that stops at the deepest name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from .models.inceptionv1 import LAYER_NAMES, MAIN_LAYERS
from .models.named import HookPoint, HookPoints, NamedModel

__all__ = ["HookPoint", "HookPoints", "NamedModel", "activations", "capture", "check_layer_names", "replaced"]


def check_layer_names(model: torch.nn.Module, names: Iterable[str]) -> list[str]:
    """Return ``names`` as a list; raise ``KeyError`` listing the valid names for an unknown one."""
    names = [names] if isinstance(names, str) else list(names)
    valid = getattr(model, "layer_names", LAYER_NAMES)
    for name in names:
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise KeyError(
                f"unknown layer name {name!r}.{hint}\nMain layers: {', '.join(MAIN_LAYERS)}.\n"
                "Also: '<layer>_pre_relu' for any conv or block, and branches "
                "'<block>_1x1', '_3x3_bottleneck', '_3x3', '_5x5_bottleneck', '_5x5', '_pool', "
                "'_pool_reduce' (e.g. 'mixed4a_3x3_pre_relu'). All names: model.layer_names."
            )
    return names


def activations(model: NamedModel, images: torch.Tensor, layers: str | Iterable[str]) -> dict[str, torch.Tensor]:
    """Named activations of ``images: (N, 3, H, W)`` float in [0, 1].

    Returns ``{name: (N, C, H', W')}`` (``(N, 1008)`` for logits/softmax) for each name in
    ``layers``, in the order asked. Computes nothing past the deepest name. Runs under the
    caller's grad mode, so wrap it in ``torch.no_grad()`` when no gradient is needed.
    """
    wanted = check_layer_names(model, layers)
    return model.run_to(images.to(model.device), wanted)


@contextmanager
def capture(model, layers: str | Iterable[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Record named values during any forward pass inside the ``with`` block.

    >>> with capture(model, ["mixed3b"]) as acts:
    ...     logits = model(images)
    >>> acts["mixed3b"].shape  # (N, 480, 28, 28)

    The hooks are removed when the block ends, even on an error.
    """
    names = check_layer_names(model, layers)
    store: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(_module, _inputs, output):
            store[name] = output

        return hook

    handles = [model.hook_points[n].register_forward_hook(hook_for(n)) for n in names]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def replaced(model, layer: str, replace) -> Iterator[None]:
    """Inside the ``with`` block, the named value ``layer`` is ``replace(value)`` in every forward
    pass, and every later layer computes from it (ablations, a dictionary's reconstruction spliced in).

    ``replace`` maps the value (e.g. ``(N, C, H, W)``) to a tensor of the same shape. The hook is
    removed when the block ends, even on an error.
    """
    (name,) = check_layer_names(model, [layer])
    handle = model.hook_points[name].register_forward_hook(lambda _module, _inputs, output: replace(output))
    try:
        yield
    finally:
        handle.remove()
