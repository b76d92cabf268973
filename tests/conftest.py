"""Shared fixtures. Tests never touch the network or the user's weight cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# Set before circuitscope is imported anywhere: offline, a private cache, the CPU profile.
os.environ["CIRCUITSCOPE_OFFLINE"] = "1"
os.environ.setdefault("CIRCUITSCOPE_PROFILE", "cpu")
os.environ.setdefault("CIRCUITSCOPE_DEVICE", "cpu")
# The articles' published files, the Lucid photo and the labels come from ../shared/data, a
# mirror of the data registry (circuitscope.core.registry); never from the network.
if (SHARED / "data").is_dir():
    os.environ.setdefault("CIRCUITSCOPE_MIRROR", str(SHARED / "data"))
_REAL_WEIGHTS = os.environ.pop("CIRCUITSCOPE_WEIGHTS", None)  # only the parity test may use them


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def synthetic_model():
    """The synthetic InceptionV1 on the CPU (built once per session; do not modify it)."""
    import circuitscope as cs

    return cs.load_inceptionv1("synthetic", device="cpu")


@pytest.fixture(scope="session")
def real_format_weights(tmp_path_factory):
    """A ``.pth`` with inception5h's exact tensor names and shapes, seeded random finite values.

    Weights are He-normal (std ``sqrt(2 / fan_in)``), biases zero, so activations stay of
    ordinary scale through the depth. Its hash is not the published file's, so it loads as
    ``"unverified"`` (with ``allow_unverified=True`` or ``CIRCUITSCOPE_ALLOW_UNVERIFIED=1``) and
    is refused otherwise. Shared by the session: do not modify the file.
    """
    import math

    import torch

    from circuitscope.core.models.weights import expected_shapes

    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in expected_shapes().items():
        if name.endswith(".bias"):
            state[name] = torch.zeros(shape)
        else:
            state[name] = torch.randn(shape, generator=gen) * math.sqrt(2.0 / math.prod(shape[1:]))
    path = tmp_path_factory.mktemp("real_format_weights") / "inception5h.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def real_weights_path():
    """Path to the real inception5h.pth, or skip: it cannot be downloaded on CI machines."""
    if not _REAL_WEIGHTS or not Path(_REAL_WEIGHTS).is_file():
        pytest.skip("real InceptionV1 weights not available (set CIRCUITSCOPE_WEIGHTS to inception5h.pth)")
    return Path(_REAL_WEIGHTS)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a busy machine: one thread is many times faster than several.
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    from circuitscope.core.device import one_cpu_thread

    with one_cpu_thread():
        yield


@pytest.fixture(scope="module")
def reference(request):
    """What the solution notebook of a chapter test module's ``CHAPTER`` defines, by name."""
    return request.module.CHAPTER.reference
