"""What the model says an image is: class probabilities and the top-k classes with their labels.

InceptionV1 ends in 1008 logits (``softmax2_pre_activation``); their softmax (``softmax2``)
gives the class probabilities. ``labels()[i]`` names logit ``i``: index 0 is ``"dummy"`` and
logits 1001..1007 have no label (see :mod:`circuitscope.labels`).
"""

from __future__ import annotations

import torch

from ..core.class_labels import label

__all__ = ["class_probabilities", "top_k_classes"]


def _batch(images: torch.Tensor) -> torch.Tensor:
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (N, 3, H, W) or one image (3, H, W), got {tuple(images.shape)}")
    return images


@torch.no_grad()
def class_probabilities(model, images: torch.Tensor) -> torch.Tensor:
    """Softmax over the logits: ``(N, 1008)`` probabilities summing to 1 along the classes.

    ``images: (N, 3, H, W)`` (or one image ``(3, H, W)``) float in [0, 1], H and W >= 193.
    """
    images = _batch(images)
    device = getattr(model, "device", images.device)
    logits = model(images.to(device))
    return torch.softmax(logits.float(), dim=-1).cpu()


def top_k_classes(model, images: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """The ``k`` most probable classes of each image, most probable first.

    ``images: (N, 3, H, W)`` (or one image ``(3, H, W)``) float in [0, 1]. Returns one list per
    image of ``k`` tuples ``(index, label, probability)``: ``index`` is the logit's index
    (0..1007), ``label`` is ``labels()[index]`` and ``probability`` the softmax over all 1008
    logits (a Python float in [0, 1]). This is the "top-k" of the ImageNet challenge that
    InceptionV1 (GoogLeNet) won in 2014 (Szegedy et al., "Going deeper with convolutions", §7).
    """
    probs = class_probabilities(model, images)
    values, indices = probs.topk(k, dim=-1)
    return [
        [(int(i), label(int(i)), float(p)) for p, i in zip(row_p, row_i)]
        for row_p, row_i in zip(values, indices)
    ]
