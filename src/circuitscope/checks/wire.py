"""The wire format between the grader and a sandboxed kernel: data only, never code.

:func:`encode` writes data (tensors, Python scalars, lists, tuples, dicts) and the runner's own
plain records (:class:`~.runner.Recipe`, :class:`~.runner.Step`, :class:`~.runner.Opaque`,
:class:`~.runner.Outcome`, as tagged dicts) with ``torch.save``; :func:`decode` reads them back
with ``torch.load(weights_only=True)``, PyTorch's restricted unpickler, which rebuilds tensors and
containers and refuses everything else (no class, no function, no code). A reply larger than
:data:`MAX_BYTES` is refused before it is read.
"""

from __future__ import annotations

import base64
import io

import torch

from .runner import Case, Opaque, Outcome, Recipe, Step

#: The MIME type of a reply in the kernel's display data.
MIME = "application/vnd.circuitscope.reply+base64"
#: The largest reply the grader reads.
MAX_BYTES = 256 * 2**20
_TAG = "__circuitscope__"


def _tagged(value):
    if isinstance(value, Recipe):
        return {_TAG: "recipe", "factory": value.factory, "kwargs": _tagged(value.kwargs)}
    if isinstance(value, Step):
        return {_TAG: "step", "kind": value.kind, "name": value.name, "args": _tagged(value.args),
                "kwargs": _tagged(value.kwargs)}  # fmt: skip
    if isinstance(value, Opaque):
        return {_TAG: "opaque", "type": value.type, "text": value.text}
    if isinstance(value, Outcome):
        return {_TAG: "outcome", "value": _tagged(value.value), "error": value.error,
                "observed": _tagged(value.observed), "args_after": _tagged(value.args_after)}  # fmt: skip
    if isinstance(value, (list, tuple)):
        return type(value)(_tagged(v) for v in value)
    if isinstance(value, dict):
        return {k: _tagged(v) for k, v in value.items()}
    return value


def _untagged(value):
    if isinstance(value, dict):
        kind = value.get(_TAG)
        if kind is None:
            return {k: _untagged(v) for k, v in value.items()}
        if kind == "recipe":
            return Recipe(str(value["factory"]), **_untagged(value["kwargs"]))
        if kind == "step":
            return Step(str(value["kind"]), str(value["name"]), tuple(_untagged(value["args"])),
                        _untagged(value["kwargs"]))  # fmt: skip
        if kind == "opaque":
            return Opaque(str(value["type"]), str(value["text"]))
        if kind == "outcome":
            error = value["error"]
            if error is not None:
                error = (str(error[0]), str(error[1]))
            return Outcome(_untagged(value["value"]), error, _untagged(value["observed"]),
                           _untagged(value["args_after"]))  # fmt: skip
        raise ValueError(f"unknown record {kind!r}")
    if isinstance(value, (list, tuple)):
        return type(value)(_untagged(v) for v in value)
    return value


def encode(value) -> str:
    """``value`` as base64 text (``torch.save`` of data)."""
    buffer = io.BytesIO()
    torch.save(_tagged(value), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode(text: str):
    """What :func:`encode` wrote, read with ``torch.load(weights_only=True)``: data only."""
    if len(text) > MAX_BYTES * 4 // 3 + 4:
        raise ValueError(f"reply larger than {MAX_BYTES // 2**20} MiB")
    raw = base64.b64decode(text, validate=True)
    return _untagged(torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu"))


def request(case: Case, function: str) -> dict:
    """The call ``case`` makes of the notebook's ``function``, as data for :func:`encode`."""
    return {"function": function, "args": tuple(case.args), "kwargs": dict(case.kwargs),
            "then": tuple(case.then), "observe": case.observe, "unchanged": bool(case.unchanged),
            "forbid": tuple(case.forbid)}  # fmt: skip
