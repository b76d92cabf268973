"""Training toy models: Adam on the importance-weighted loss, every instance at once."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ...core.device import one_cpu_thread
from ...core.progress import bar as progress_bar
from .model import ToyModel, importance_weighted_loss


class TrainResult(NamedTuple):
    """What :func:`train_toy_model` returns: ``losses: (n_logged, n_instances)`` per-instance
    losses (each a mean over the logging interval) at ``steps: (n_logged,)``."""

    steps: torch.Tensor
    losses: torch.Tensor

    @property
    def final(self) -> torch.Tensor:
        """The last logged per-instance losses ``(n_instances,)``."""
        return self.losses[-1]



def train_toy_model(
    model: ToyModel,
    steps: int = 3000,
    batch_size: int = 512,
    lr: float = 1e-2,
    seed: int = 0,
    log_every: int = 100,
    progress: bool = False,
) -> TrainResult:
    """Train every instance of ``model`` with Adam on fresh synthetic batches; returns the losses.

    The defaults (3000 steps of 512 samples, learning rate 1e-2 with a cosine decay to 0) train
    a 5-feature, 2-dimension sweep in a few seconds on a CPU; the article used 10,000 steps at
    1e-3. Much larger learning rates converge faster in the dense regime but can kill sparse
    features for good (``W_i`` shrinks to 0 with a negative bias, and the ReLU passes no
    gradient). Data are drawn with a CPU generator seeded by ``seed``, so a run is
    reproducible; on a CPU it runs on one thread (faster for tensors this small).
    """
    with one_cpu_thread(model.device.type == "cpu"):
        return _train_toy_model(model, steps, batch_size, lr, seed, log_every, progress)



def _train_toy_model(model, steps, batch_size, lr, seed, log_every, progress) -> TrainResult:

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(steps, 1)))
    )
    logged_steps, logged, running, count = [], [], 0.0, 0
    for step in progress_bar(range(steps), desc="toy models", progress=progress):
        x = model.generate_batch(batch_size, gen)
        per_instance = importance_weighted_loss(x, model(x), model.importance)
        opt.zero_grad(set_to_none=True)
        per_instance.sum().backward()
        opt.step()
        sched.step()
        running = running + per_instance.detach()
        count += 1
        if count == log_every or step == steps - 1:
            logged_steps.append(step + 1)
            logged.append((running / count).cpu())
            running, count = 0.0, 0
    if not logged:
        logged, logged_steps = [torch.full((model.n_instances,), float("nan"))], [0]
    return TrainResult(torch.tensor(logged_steps), torch.stack(logged))
