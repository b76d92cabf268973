"""Figures of feature visualizations: a grid of rendered images, stamped with their weights.

Every figure drawn from a model's renders says which weights made it
(:func:`circuitscope.provenance.stamp`), like the figures of :mod:`circuitscope.plotting`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from ..provenance import stamp


def image_grid(
    images,
    titles: Sequence[str] | None = None,
    model=None,
    ncols: int | None = None,
    row_labels: Sequence[str] | None = None,
    size: float = 1.8,
    title: str | None = None,
):
    """Images in a grid, each with its title; stamped with ``model``'s weights when given.

    Args:
        images: ``(N, 3, H, W)`` float in [0, 1], or a list of ``(3, H, W)``.
        titles: one short title per image (or None).
        model: the model the images were rendered with; the figure then says which weights
            made it ("SYNTHETIC WEIGHTS" in red for the stand-in). Pass None only for images
            that no model produced.
        ncols: images per row (default: all in one row, at most 8).
        row_labels: a label written left of each row.
        size: inches per image.
        title: a title over the whole figure.

    Returns:
        A :class:`matplotlib.figure.Figure` (closed in pyplot: a notebook shows it once).
    """
    images = [torch.as_tensor(img).detach().float().cpu() for img in images]
    n = len(images)
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    bottom = 0.3 if model is not None else 0.0
    top = 0.35 if title else 0.0
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(size * ncols + (0.4 if row_labels else 0), size * nrows + 0.35 * nrows + bottom + top))  # fmt: skip
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(images[k].clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
        if titles is not None and k < len(titles):
            ax.set_title(titles[k], fontsize=8)
    if row_labels:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, bottom / fig.get_figheight(), 1, 1))
    if model is not None:
        stamp(fig, model)
    plt.close(fig)
    return fig
