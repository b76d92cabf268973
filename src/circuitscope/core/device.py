"""Which device to compute on, and how much work to ask of it (the CPU/GPU profile).

Every chapter asks :func:`profile` for image sizes, optimisation steps and batch sizes, so one
notebook runs in minutes on a laptop CPU and at the papers' full size on a GPU.
"""

from __future__ import annotations

import os
import random
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch

ENV_DEVICE = "CIRCUITSCOPE_DEVICE"  # force a device: "cpu", "cuda", "cuda:1", "mps"
ENV_PROFILE = "CIRCUITSCOPE_PROFILE"  # force a profile: "cpu" or "gpu"


def get_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else ``$CIRCUITSCOPE_DEVICE``, else cuda, then mps, then cpu."""
    if device is None:
        device = os.environ.get(ENV_DEVICE) or None
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass(frozen=True)
class Profile:
    """How much work a chapter does: sizes in pixels, optimisation steps, batch sizes.

    Attributes:
        name: "cpu" or "gpu".
        image_size: size of photos fed to the model (224 is the training size).
        render_size: size of feature visualizations (Lucid's default is 128).
        render_steps: optimisation steps per visualization (Lucid's default is 512).
        batch_size: images per batch for streaming work (dataset examples, galleries).
    """

    name: str
    image_size: int
    render_size: int
    render_steps: int
    batch_size: int

    def override(self, **changes) -> Profile:
        """A copy with some fields changed: ``profile().override(render_steps=64)``."""
        return replace(self, **changes)


PROFILES = {
    "cpu": Profile("cpu", image_size=224, render_size=64, render_steps=48, batch_size=8),
    "gpu": Profile("gpu", image_size=224, render_size=128, render_steps=512, batch_size=64),
}


def profile(name: str | None = None, device: str | torch.device | None = None, **overrides) -> Profile:
    """The profile for ``name``, ``$CIRCUITSCOPE_PROFILE``, or the device ("gpu" on cuda).

    Keyword arguments override single fields: ``profile(render_steps=128)``.
    """
    name = name or os.environ.get(ENV_PROFILE) or ("gpu" if get_device(device).type == "cuda" else "cpu")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {sorted(PROFILES)}")
    return PROFILES[name].override(**overrides) if overrides else PROFILES[name]


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices) for reproducible runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def one_cpu_thread(enabled: bool = True):
    """Run the block on one CPU thread (a no-op when ``enabled`` is False).

    For small tensors, waking extra threads costs more than they save: on a busy two-core
    machine tiny convolutions and toy-model steps ran 10-40x slower with two threads.
    """
    if not enabled:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
