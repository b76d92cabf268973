"""Figures every chapter uses: the architecture, predictions, activation maps, colour maps.

Every function that draws from a model returns a :class:`matplotlib.figure.Figure` stamped with
the weights it was made with (:func:`circuitscope.provenance.stamp`): a figure made with the
synthetic stand-in says "SYNTHETIC WEIGHTS" on it. Figures are closed in pyplot before they are
returned, so a notebook shows each exactly once (as the cell's value) and nothing piles up in
memory; save one with ``fig.savefig(path)``.

Images are ``(3, H, W)`` float tensors in [0, 1] (or batches ``(N, 3, H, W)``), as everywhere in
:mod:`circuitscope`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt  # importing pyplot registers the notebook display of figures
import numpy as np
import torch
from matplotlib.colors import LinearSegmentedColormap, Normalize, TwoSlopeNorm
from matplotlib.patches import FancyArrowPatch, Rectangle

from .channels import strongest_channels, strongest_patch
from .classify import top_k_classes
from .hooks import activations, check_layer_names
from .models.inceptionv1 import BLOCKS, MAIN_LAYERS
from .provenance import stamp
from .receptive_field import GRAPH, receptive_field

__all__ = [
    "Provenance",
    "activation_maps",
    "architecture_diagram",
    "compare_with_published",
    "diverging_cmap",
    "diverging_norm",
    "imshow_diverging",
    "inception_block_diagram",
    "layer_shapes",
    "radial_tuning_panels",
    "radial_tuning_plot",
    "receptive_field_figure",
    "show_images",
    "strongest_channels_chart",
    "strongest_patch_figure",
    "to_numpy_image",
    "top_k_chart",
]

# Colours by kind of layer (colour-blind safe: Okabe-Ito).
KIND_COLOURS = {
    "conv": "#0072B2",
    "pool": "#999999",
    "norm": "#CCCCCC",
    "block": "#E69F00",
    "head": "#009E73",
}
ACTIVATION_CMAP = "magma"  # activations are >= 0 after the ReLU: a sequential map
_BLOCK_NAMES = {b.name for b in BLOCKS}


# -- helpers -----------------------------------------------------------------------------------
class Provenance(NamedTuple):
    """Where precomputed values came from, for figures not made by running a model here.

    ``Provenance(False, "activations computed by Lucid, from Building Blocks' published data")``
    stamps a figure as the real network's published values (state ``"published"``);
    ``state`` names another state of :mod:`circuitscope.provenance` explicitly.
    """

    is_synthetic: bool
    weights_source: str
    state: str | None = None

    @property
    def weights_state(self) -> str:
        # Not synthetic and not computed here means published by the articles, not "unverified".
        return self.state or ("synthetic" if self.is_synthetic else "published")


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` tensor in [0, 1] -> ``(H, W, 3)`` float array for ``imshow``."""
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one image (3, H, W), got {tuple(image.shape)}")
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def show_images(images, titles: Sequence[str] | None = None, size: float = 2.6):
    """Images side by side (``(N, 3, H, W)`` or a list of ``(3, H, W)``), each with its size.

    Draws no model output, so it carries no weights caption.
    """
    images = list(images)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.4), squeeze=False)
    for i, (ax, img) in enumerate(zip(axes[0], images)):
        ax.imshow(to_numpy_image(torch.as_tensor(img)))
        _no_ticks(ax)
        name = titles[i] if titles else ""
        ax.set_title(f"{name} {tuple(img.shape)}".strip(), fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _finish(fig, model):
    """Stamp the weights caption (callers leave room at the bottom), detach from pyplot."""
    stamp(fig, model)
    plt.close(fig)
    return fig


def image_grid(
    images,
    titles: Sequence[str] | None = None,
    model=None,
    columns: int | None = None,
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
        columns: images per row (default: all in one row, at most 8).
        row_labels: a label written left of each row.
        size: inches per image.
        title: a title over the whole figure.

    Returns:
        A :class:`matplotlib.figure.Figure` (closed in pyplot: a notebook shows it once).
    """
    images = [torch.as_tensor(img) for img in images]
    n = len(images)
    ncols = columns or min(n, 8)
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
        ax.imshow(to_numpy_image(images[k]), interpolation="nearest")
        if titles is not None and k < len(titles):
            ax.set_title(titles[k], fontsize=8)
    if row_labels:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, bottom / fig.get_figheight(), 1, 1))
    if model is not None:
        return _finish(fig, model)
    plt.close(fig)
    return fig


def _kind(name: str) -> str:
    if name in _BLOCK_NAMES:
        return "block"
    if name.startswith(("maxpool", "avgpool")):
        return "pool"
    if name.startswith("localresponsenorm"):
        return "norm"
    if name.startswith("softmax"):
        return "head"
    return "conv"


def _no_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


@torch.no_grad()
def layer_shapes(
    model, input_size: int = 224, layers: Iterable[str] = MAIN_LAYERS
) -> dict[str, tuple[int, ...]]:
    """Shape of each named value for one ``input_size`` image, found by running the model.

    Returns ``{name: (C, H, W)}`` (``(1008,)`` for logits and softmax), without the batch axis.
    """
    names = check_layer_names(model, layers)
    x = torch.zeros(1, 3, input_size, input_size, device=model.device)
    return {n: tuple(v.shape[1:]) for n, v in activations(model, x, names).items()}


# -- the architecture --------------------------------------------------------------------------
def architecture_diagram(model, input_size: int = 224, layers: Sequence[str] | None = None):
    """InceptionV1's named layers as boxes, with channels and spatial size measured by running
    an ``input_size`` image through ``model`` (not written down by hand).

    A box's height grows with the layer's spatial size, its width with its channel count; colour
    gives the kind of layer. Below each: the receptive field of one position (pixels).
    """
    layers = (
        list(layers) if layers is not None else [n for n in MAIN_LAYERS if n != "softmax2_pre_activation"]
    )
    shapes = layer_shapes(model, input_size, layers)
    max_hw = max(s[1] for s in shapes.values() if len(s) == 3)
    max_c = max(s[0] for s in shapes.values())

    fig, ax = plt.subplots(figsize=(15, 5.0))
    step, unit_w, unit_h = 1.0, 0.8, 3.0
    y_top, y_rf = unit_h / 2 + 0.2, -unit_h / 2 - 0.3
    for i, name in enumerate(layers):
        shape = shapes[name]
        c = shape[0]
        h = unit_h * np.sqrt(shape[1] / max_hw) if len(shape) == 3 else 0.12
        w = max(0.1, unit_w * np.sqrt(c / max_c))
        cx = i * step
        ax.add_patch(
            Rectangle(
                (cx - w / 2, -h / 2), w, h, facecolor=KIND_COLOURS[_kind(name)], edgecolor="black", lw=0.6
            )
        )
        ax.text(cx, y_top + 0.45, f"{c}", ha="center", va="bottom", fontsize=8)
        ax.text(
            cx,
            y_top,
            f"{shape[1]}\u00d7{shape[2]}" if len(shape) == 3 else "\u2014",
            ha="center",
            va="bottom",
            fontsize=7.5,
        )
        if name in GRAPH:
            ax.text(
                cx, y_rf, f"{receptive_field(name, input_size).size}", ha="center", va="top", fontsize=7.5
            )
        ax.text(
            cx + 0.15,
            y_rf - 0.5,
            name,
            ha="right",
            va="top",
            rotation=50,
            fontsize=8.5,
            rotation_mode="anchor",
        )
    for y, text in ((y_top + 0.45, "channels"), (y_top, "H\u00d7W"), (y_rf, "RF (px)")):
        ax.text(-0.7, y, text, ha="right", va="bottom" if y > 0 else "top", fontsize=8, style="italic")
    ax.set_xlim(-2.0, len(layers) * step - 0.4)
    ax.set_ylim(y_rf - 2.6, y_top + 1.0)
    _no_ticks(ax)
    handles = [
        Rectangle((0, 0), 1, 1, facecolor=col, edgecolor="black", lw=0.6) for col in KIND_COLOURS.values()
    ]
    ax.legend(
        handles,
        [
            "convolution + ReLU",
            "max / average pool",
            "local response norm",
            "inception block",
            "classifier (softmax over 1008 logits)",
        ],
        loc="lower right",
        fontsize=8,
        ncol=5,
        frameon=False,
        bbox_to_anchor=(1.0, -0.03),
    )
    ax.set_title(
        f"InceptionV1's named layers, shapes measured on a {input_size}\u00d7{input_size} image "
        "(box height ~ spatial size, width ~ channels; RF: receptive field of one position)",
        fontsize=10,
    )
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.05)
    return _finish(fig, model)


def inception_block_diagram(model, block: str = "mixed3b", input_size: int = 224):
    """The four branches of one inception block, with the channel counts of each step and the
    channel range each branch fills in the block's concatenated output (measured by running
    the model).

    Channel ranges matter: "3b:379" is channel 379 of ``mixed3b``, which this diagram shows to be
    in the 5x5 branch (channels 320-415), where "Curve Detectors" finds the curve detectors.
    """
    if block not in _BLOCK_NAMES:
        raise KeyError(f"{block!r} is not an inception block; choose from {sorted(_BLOCK_NAMES)}")
    spec = next(b for b in BLOCKS if b.name == block)
    parents = [p for p, _ in GRAPH[f"{block}_1x1_pre_relu"]]
    source = parents[0]
    names = [
        source,
        f"{block}_1x1",
        f"{block}_3x3_bottleneck",
        f"{block}_3x3",
        f"{block}_5x5_bottleneck",
        f"{block}_5x5",
        f"{block}_pool",
        f"{block}_pool_reduce",
        block,
    ]
    shapes = layer_shapes(model, input_size, names)

    fig, ax = plt.subplots(figsize=(11, 6.2))
    col_x = [0.0, 3.0, 6.0, 9.0]
    box_w, box_h = 2.4, 0.8

    def box(x, y, text, colour, sub=None):
        ax.add_patch(
            Rectangle(
                (x - box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                facecolor=colour,
                edgecolor="black",
                lw=0.7,
                alpha=0.9,
            )
        )
        ax.text(x, y + (0.1 if sub else 0), text, ha="center", va="center", fontsize=9.5, weight="bold")
        if sub:
            ax.text(x, y - 0.2, sub, ha="center", va="center", fontsize=8)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10, lw=0.8))

    def fmt(name):
        s = shapes[name]
        return f"{s[0]} ch, {s[1]}\u00d7{s[2]}"

    top_y, mid_y, low_y, out_y = 5.0, 3.4, 2.0, 0.2
    box(4.5, top_y, f"input: {source}", KIND_COLOURS[_kind(source)] + "55", fmt(source))
    # Branch 1: 1x1
    box(col_x[0], low_y, "1x1 conv + ReLU", KIND_COLOURS["conv"] + "55", fmt(f"{block}_1x1"))
    # Branches 2 and 3: bottleneck then conv
    box(col_x[1], mid_y, "1x1 bottleneck", KIND_COLOURS["conv"] + "33", fmt(f"{block}_3x3_bottleneck"))
    box(col_x[1], low_y, "3x3 conv + ReLU", KIND_COLOURS["conv"] + "55", fmt(f"{block}_3x3"))
    box(col_x[2], mid_y, "1x1 bottleneck", KIND_COLOURS["conv"] + "33", fmt(f"{block}_5x5_bottleneck"))
    box(col_x[2], low_y, "5x5 conv + ReLU", KIND_COLOURS["conv"] + "55", fmt(f"{block}_5x5"))
    # Branch 4: pool then 1x1
    box(col_x[3], mid_y, "3x3 max pool, stride 1", KIND_COLOURS["pool"] + "55", fmt(f"{block}_pool"))
    box(col_x[3], low_y, "1x1 conv + ReLU", KIND_COLOURS["conv"] + "55", fmt(f"{block}_pool_reduce"))
    for x in col_x:
        arrow(4.5, top_y - box_h / 2, x, (mid_y if x != col_x[0] else low_y) + box_h / 2)
    for x in col_x[1:]:
        arrow(x, mid_y - box_h / 2, x, low_y + box_h / 2)
    # The concatenation, with each branch's channel range.
    widths = [shapes[n][0] for n in (f"{block}_1x1", f"{block}_3x3", f"{block}_5x5", f"{block}_pool_reduce")]
    total = shapes[block][0]
    assert sum(widths) == total == spec.out_channels, "branch widths must add up to the block's channels"
    left, span = col_x[0] - box_w / 2, col_x[3] + box_w / 2 - (col_x[0] - box_w / 2)
    start = 0
    suffixes = ["_1x1", "_3x3", "_5x5", "_pool_reduce"]
    for i, (w, x) in enumerate(zip(widths, col_x)):
        x0 = left + span * start / total
        ww = span * w / total
        ax.add_patch(
            Rectangle(
                (x0, out_y - box_h / 2),
                ww,
                box_h,
                facecolor=KIND_COLOURS["block"],
                edgecolor="black",
                lw=0.7,
                alpha=0.35 + 0.15 * i,
            )
        )
        ax.text(
            x0 + ww / 2,
            out_y,
            f"{block}{suffixes[i]}\n{start}\u2013{start + w - 1}",
            ha="center",
            va="center",
            fontsize=8,
        )
        arrow(x, low_y - box_h / 2, x0 + ww / 2, out_y + box_h / 2)
        start += w
    ax.text(
        4.5,
        out_y - box_h / 2 - 0.25,
        f"{block}: the four branches concatenated, {total} channels ({fmt(block)}); "
        "numbers are the channel indices of each branch",
        ha="center",
        va="top",
        fontsize=9,
    )
    ax.set_xlim(-1.6, 10.6)
    ax.set_ylim(-1.0, top_y + 0.7)
    _no_ticks(ax)
    ax.set_title(
        f"Inside the inception block {block} (shapes measured on a {input_size}\u00d7{input_size} image)",
        fontsize=11,
    )
    fig.subplots_adjust(left=0.01, right=0.99, top=0.93, bottom=0.05)
    return _finish(fig, model)


# -- predictions -------------------------------------------------------------------------------
def top_k_chart(
    model,
    images: torch.Tensor,
    k: int = 5,
    titles: Sequence[str] | None = None,
    results: list | None = None,
    cols: int = 2,
):
    """Each image beside a bar chart of its ``k`` most probable classes.

    ``images: (N, 3, H, W)`` in [0, 1]. ``results`` (optional) is what
    :func:`circuitscope.classify.top_k_classes` returns (one list of ``(index, label,
    probability)`` per image), for plotting someone else's computation; by default it is
    computed here. Probabilities are shown on a 0-1 axis.
    """
    if images.dim() == 3:
        images = images[None]
    results = results if results is not None else top_k_classes(model, images, k)
    n = len(results)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig = plt.figure(figsize=(5.4 * cols, 2.2 * rows + 0.6), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96), w_pad=0.1, wspace=0.05)
    subfigs = np.atleast_1d(fig.subfigures(rows, cols, squeeze=False)).reshape(rows, cols)
    for i in range(rows * cols):
        sub = subfigs[divmod(i, cols)]
        if i >= n:
            continue
        res = results[i]
        ax_img, ax_bar = sub.subplots(1, 2, width_ratios=[1, 1.25])
        ax_img.imshow(to_numpy_image(images[i]))
        _no_ticks(ax_img)
        if titles is not None:
            ax_img.set_title(titles[i], fontsize=9)
        probs = [float(p) for _, _, p in res][::-1]
        names = [f"{lab} ({int(idx)})" for idx, lab, _ in res][::-1]
        ax_bar.barh(range(len(probs)), probs, color=KIND_COLOURS["head"])
        ax_bar.set_yticks(range(len(probs)), names, fontsize=8)
        ax_bar.set_xlim(0, 1)
        ax_bar.tick_params(axis="x", labelsize=7)
        for y, p in enumerate(probs):
            ax_bar.text(min(p + 0.02, 0.85), y, f"{p:.2f}", va="center", fontsize=7)
        ax_bar.spines[["top", "right"]].set_visible(False)
    fig.suptitle(f"Top-{k} classes (softmax probabilities; the number is the logit index)", fontsize=11)
    return _finish(fig, model)


# -- activations ------------------------------------------------------------------------------
def _map_axes(ax, channel_map: np.ndarray, title: str, vmax: float | None = None):
    ax.imshow(
        channel_map,
        cmap=ACTIVATION_CMAP,
        vmin=0,
        vmax=vmax if vmax else max(float(channel_map.max()), 1e-6),
        interpolation="nearest",
    )
    ax.set_title(title, fontsize=8)
    _no_ticks(ax)


@torch.no_grad()
def activation_maps(
    model,
    image: torch.Tensor,
    layers: Sequence[str] = ("conv2d0", "mixed3b", "mixed4d", "mixed5b"),
    channels: dict[str, Sequence[int]] | None = None,
    n: int = 4,
):
    """Activation maps of a few channels at several depths for one image.

    One row per layer: the image, then ``n`` channels' ``(H', W')`` maps (by default the ``n``
    channels with the highest peak, i.e. that fire hardest somewhere in the image; ``channels``
    maps a layer to the channels to show). Each map has its own colour scale, from 0 (black) to its
    maximum (white-yellow);
    a pixel of a map is one position, whose receptive field is printed in the row's label.
    """
    image = image[0] if image.dim() == 4 else image
    acts = activations(model, image[None], layers)
    rows = len(layers)
    fig, axes = plt.subplots(rows, n + 1, figsize=(1.9 * (n + 1), 2.0 * rows + 0.4), squeeze=False)
    size = image.shape[-1]
    for r, layer in enumerate(layers):
        a = acts[layer][0].float().cpu()
        if channels and layer in channels:
            chosen = list(channels[layer])
        else:  # the channels that fire hardest somewhere in the image
            chosen = a.amax(dim=(-2, -1)).topk(min(n, a.shape[0])).indices.tolist()
        ax = axes[r, 0]
        ax.imshow(to_numpy_image(image))
        _no_ticks(ax)
        rf = receptive_field(layer, size) if layer in GRAPH else None
        label = f"{layer}\n{a.shape[0]} ch, {a.shape[1]}\u00d7{a.shape[2]}"
        if rf:
            label += f"\nRF {rf.size} px"
            # Draw the field of the centre position to scale.
            top, left, bottom, right = rf.box(a.shape[1] // 2, a.shape[2] // 2)
            ax.add_patch(
                Rectangle(
                    (left - 0.5, top - 0.5),
                    right - left + 1,
                    bottom - top + 1,
                    fill=False,
                    edgecolor="#56B4E9",
                    lw=1.2,
                )
            )
        ax.set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center", labelpad=4)
        for j in range(n):
            ax = axes[r, j + 1]
            if j < len(chosen):
                _map_axes(
                    ax, a[chosen[j]].numpy(), f"{layer}:{chosen[j]}  max {float(a[chosen[j]].max()):.2g}"
                )
            else:
                ax.axis("off")
    fig.suptitle(
        "Activation maps: each panel is one channel; brighter = stronger response "
        "(blue box: the receptive field of the centre position)",
        fontsize=10,
    )
    fig.subplots_adjust(left=0.14, right=0.99, top=0.9, bottom=0.06, wspace=0.08, hspace=0.35)
    return _finish(fig, model)


@torch.no_grad()
def strongest_channels_chart(
    model,
    image: torch.Tensor,
    layer: str = "mixed4d",
    k: int = 8,
    channels: Sequence[int] | None = None,
    acts: torch.Tensor | None = None,
):
    """The ``k`` channels of ``layer`` with the largest mean activation for ``image``: a bar chart
    of every channel's mean (sorted) with those ``k`` highlighted, and their maps.

    ``channels`` (optional) gives the channels to show, strongest first (e.g. someone's answer
    to the exercise); by default :func:`circuitscope.channels.strongest_channels` picks them.
    ``acts`` (optional, ``(C, H, W)``) are precomputed activations of ``layer`` for ``image``;
    ``model`` then only says where they came from (a model or a :class:`Provenance`).
    """
    image = image[0] if image.dim() == 4 else image
    if acts is None:
        a = activations(model, image[None], [layer])[layer][0].float().cpu()
    else:
        a = torch.as_tensor(acts).float().cpu()
    means = a.mean(dim=(-2, -1))
    chosen = list(channels) if channels is not None else strongest_channels(a, k).channels.tolist()
    k = len(chosen)
    fig = plt.figure(figsize=(max(10, 1.5 * k + 2.5), 5.2))
    grid = fig.add_gridspec(2, k + 2, height_ratios=[1.15, 1], hspace=0.3, wspace=0.15)
    ax_img = fig.add_subplot(grid[0, 0:2])
    ax_img.imshow(to_numpy_image(image))
    _no_ticks(ax_img)
    ax_img.set_title("the image", fontsize=9)
    ax = fig.add_subplot(grid[0, 2:])
    order = torch.argsort(means, descending=True)
    ax.bar(range(len(means)), means[order].numpy(), width=1.0, color="#BBBBBB")
    ranks = {int(c): int(r) for r, c in enumerate(order)}
    for c in chosen:
        ax.bar(ranks[int(c)], float(means[int(c)]), width=1.0, color=KIND_COLOURS["block"])
    ax.set_xlim(-1, len(means))
    ax.set_xlabel(
        f"all {len(means)} channels of {layer}, sorted by mean activation (orange: the {k} shown below)",
        fontsize=8,
    )
    ax.set_ylabel("mean over positions", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    vmax = float(a[chosen].max()) if k else 1.0
    for j, c in enumerate(chosen):
        _map_axes(
            fig.add_subplot(grid[1, j + 1]),
            a[int(c)].numpy(),
            f"{layer}:{int(c)}\nmean {float(means[int(c)]):.2f}",
            vmax=vmax,
        )
    fig.suptitle(
        f"The strongest channels of {layer} for this image (maps share one colour scale)", fontsize=10
    )
    fig.subplots_adjust(left=0.03, right=0.99, top=0.9, bottom=0.07)
    return _finish(fig, model)


@torch.no_grad()
def strongest_patch_figure(
    model, image: torch.Tensor, layer: str, channel: int, box: tuple[int, int, int, int] | None = None
):
    """Where one channel fires hardest: its activation map, and the image with the receptive
    field of the strongest position outlined and cropped out.

    ``box`` (optional) is ``(top, left, bottom, right)`` inclusive, e.g. someone's answer to the
    exercise; by default :func:`circuitscope.channels.strongest_patch` computes it.
    """
    image = image[0] if image.dim() == 4 else image
    a = activations(model, image[None], [layer])[layer][0].float().cpu()
    box = box if box is not None else strongest_patch(a, channel, layer, image.shape[-1])
    top, left, bottom, right = (int(v) for v in box)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.8))
    _map_axes(axes[0], a[channel].numpy(), f"{layer}:{channel} ({a.shape[1]}\u00d7{a.shape[2]} positions)")
    axes[1].imshow(to_numpy_image(image))
    axes[1].add_patch(
        Rectangle(
            (left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, fill=False, edgecolor="#56B4E9", lw=2
        )
    )
    axes[1].set_title(
        f"receptive field of the strongest position\nrows {top}\u2013{bottom}, cols {left}\u2013{right}",
        fontsize=8,
    )
    _no_ticks(axes[1])
    axes[2].imshow(to_numpy_image(image[:, top : bottom + 1, left : right + 1]))
    axes[2].set_title("the patch it saw", fontsize=8)
    _no_ticks(axes[2])
    fig.subplots_adjust(left=0.02, right=0.98, top=0.85, bottom=0.08, wspace=0.1)
    return _finish(fig, model)


def receptive_field_figure(
    model,
    image: torch.Tensor,
    layers: Sequence[str] = ("conv2d0", "conv2d2", "mixed3a", "mixed3b", "mixed4a", "mixed4c"),
):
    """The receptive field of the centre position of several layers, drawn on the image.

    Fields grow with depth (each layer adds ``(kernel - 1) * jump`` pixels); past about
    ``mixed4b`` they are wider than a 224-pixel image. Drawn from the receptive-field arithmetic
    of :mod:`circuitscope.receptive_field` (the weights play no part, but the figure is stamped
    like every other).
    """
    image = image[0] if image.dim() == 4 else image
    size = image.shape[-1]
    fig, ax = plt.subplots(figsize=(6.5, 5.6))
    ax.imshow(to_numpy_image(image))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(layers)))
    for layer, colour in zip(layers, colours):
        rf = receptive_field(layer, size)
        centre = rf.positions // 2
        first, last = rf.span(centre)
        ax.add_patch(
            Rectangle(
                (first - 0.5, first - 0.5),
                rf.size,
                rf.size,
                fill=False,
                edgecolor=colour,
                lw=2,
                label=f"{layer}: {rf.size} px (jump {rf.jump})",
            )
        )
    fields = [receptive_field(layer, size) for layer in layers]
    lo = min(min(rf.span(rf.positions // 2)[0] for rf in fields), 0) - 4
    hi = max(max(rf.span(rf.positions // 2)[1] for rf in fields), size) + 4
    ax.set_xlim(lo, hi)
    ax.set_ylim(hi, lo)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    _no_ticks(ax)
    ax.set_title(
        f"Receptive field of a central position, by layer\n"
        f"({size}\u00d7{size} image; fields may reach past its edge)",
        fontsize=10,
    )
    fig.subplots_adjust(left=0.02, right=0.68, top=0.92, bottom=0.06)
    return _finish(fig, model)


# -- colour maps for signed values (weights, pre-ReLU activations, attributions) ----------------
def diverging_cmap(name: str = "circuitscope_diverging") -> LinearSegmentedColormap:
    """A diverging colour map for signed values: blue for negative, white for zero, red for
    positive (perceptually balanced, readable by colour-blind readers; used from chapter 3 on
    for weights). Pair it with :func:`diverging_norm` so zero is white."""
    colours = ["#053061", "#2166AC", "#92C5DE", "#F7F7F7", "#F4A582", "#B2182B", "#67001F"]
    return LinearSegmentedColormap.from_list(name, colours, N=256)


def diverging_norm(values, vmax: float | None = None) -> Normalize:
    """A norm centred on 0, symmetric: ``[-vmax, vmax]`` with ``vmax = max |values|`` by default."""
    if vmax is None:
        arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
        vmax = float(np.abs(arr).max()) if arr.size else 1.0
    vmax = vmax or 1.0
    return TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)


def imshow_diverging(ax, values, vmax: float | None = None, colorbar: bool = False, **kwargs):
    """Show a 2-D signed array on ``ax`` with :func:`diverging_cmap` centred on zero; returns the image."""
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    im = ax.imshow(
        arr, cmap=diverging_cmap(), norm=diverging_norm(arr, vmax), interpolation="nearest", **kwargs
    )
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


# -- radial tuning curves ----------------------------------------------------------------------
def radial_tuning_plot(
    tunings: dict,
    angles=None,
    *,
    layer: str | None = None,
    rotate: float = 0.0,
    title: str | None = None,
    note: str | None = None,
    model=None,
    caption: str | None = None,
    ax=None,
    legend: bool = True,
):
    """A family's radial tuning curves in one polar panel ("Curve Detectors", "Radial Tuning Curve").

    Args:
        tunings: ``{unit: (A,) responses}``: a unit id (``"3b:379"``) or a channel number
            (with ``layer``, e.g. ``"3b"``) for each unit, in the order to colour them; the
            arrays may be tensors. :func:`circuitscope.published.radial_tuning` gives this
            form (``A = 720``), as does ``{tc.unit: tc.responses for tc in curves}`` for
            :class:`~circuitscope.stimuli.TuningCurve` s.
        angles: ``(A,)`` orientations in degrees (default ``A`` steps over the full circle:
            ``i / 2`` degrees for 720 values).
        rotate: degrees added to every angle when drawn ("Curve Detectors" draws its data at
            ``i / 2 + 90`` degrees: ``rotate=90``).
        title, note: above the panel; under it (e.g. a credit line, wrapped).
        model / caption: the weights caption, or a caption of your own, at the foot of the
            figure (only when this function makes the figure).
        ax: a polar axes to draw into (the caller then owns the figure); default a new figure.

    Each curve is drawn as radius = response (negatives clipped at 0), with a dashed spoke at
    its peak. Returns the figure, closed in pyplot when it was made here.
    """
    import textwrap

    own = ax is None
    if own:
        fig = plt.figure(figsize=(4.6, 4.9))
        ax = fig.add_subplot(projection="polar")
    fig = ax.figure
    colours = plt.get_cmap("hsv")
    n = max(len(tunings), 1)
    for i, (unit, values) in enumerate(tunings.items()):
        r = values.detach().double().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
        a = (np.arange(len(r)) * 360.0 / len(r) if angles is None
             else (angles.detach().double().cpu().numpy() if isinstance(angles, torch.Tensor)
                   else np.asarray(angles, float)))  # fmt: skip
        label = f"{layer}:{unit}" if layer is not None and not isinstance(unit, str) else str(unit)
        t = np.deg2rad(np.append(a, a[:1]) + rotate)
        colour = colours(i / n)
        ax.plot(t, np.clip(np.append(r, r[:1]), 0, None), color=colour, linewidth=1.2, label=label)
        peak = int(np.argmax(r))
        ax.plot([np.deg2rad(a[peak] + rotate)] * 2, [0, max(float(r[peak]), 1e-9)], "--", color=colour, linewidth=0.8)
    ax.set_yticklabels([])
    ax.tick_params(labelsize=7)
    if rotate % 360:
        ax.set_xticklabels([])  # drawn turned: angle labels would misstate the data's angles
    if legend:
        ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.32, 1.12))
    if title:
        ax.set_title(title, fontsize=9.5, pad=14)
    if note:
        ax.text(0.5, -0.1, textwrap.fill(note, 62), transform=ax.transAxes, ha="center", va="top",
                fontsize=7, color="#444444")  # fmt: skip
    if own:
        fig.subplots_adjust(bottom=0.2 if note else 0.12)
        _caption_and_close(fig, model, caption)
    return fig


def _caption_and_close(fig, model, caption: str | None) -> None:
    """Foot of a figure: ``caption`` if given, else ``model``'s weights stamp; closed in pyplot."""
    if caption is not None:
        fig.text(0.5, 0.002, caption, ha="center", va="bottom", fontsize=8, color="#555555")
    elif model is not None:
        stamp(fig, model)
    plt.close(fig)


def radial_tuning_panels(panels: Sequence[dict], model=None, caption: str | None = None, panel_size: float = 4.6):
    """Radial tuning plots side by side, e.g. an article's published curves beside the page's own.

    ``panels``: one dict of :func:`radial_tuning_plot` arguments per panel (``tunings`` and
    any of ``angles``, ``layer``, ``rotate``, ``title``, ``note``, ``legend``). ``model`` stamps
    the figure with its weights caption, ``caption`` writes your own; put the source of a
    panel that did not come from ``model`` (a credit line) in its ``note``. Returns the figure,
    closed in pyplot.
    """
    height = panel_size + (1.0 if any(p.get("note") for p in panels) else 0.3)
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size * len(panels) + 0.6, height),
                             subplot_kw={"projection": "polar"}, squeeze=False)  # fmt: skip
    for ax, panel in zip(axes[0], panels):
        radial_tuning_plot(ax=ax, **panel)
    fig.subplots_adjust(bottom=0.17 if height > panel_size + 0.5 else 0.08, top=0.86, wspace=0.55)
    _caption_and_close(fig, model, caption)
    return fig



def compare_with_published(images, units: Sequence[str], model, size: float = 1.6):
    """This page's renders of ``units`` (top row) above the article's renders of the same units.

    ``images``: ``(N, 3, H, W)`` rendered with ``model`` (stamped with its weights state);
    ``units``: ``"4b:111"``-style names of layers with a published sprite sheet
    (:func:`circuitscope.published.published_render`). The bottom row is credited to "The
    Building Blocks of Interpretability" (CC BY 4.0); a sheet that cannot be had leaves a note
    in its cells. Returns the figure, closed in pyplot.
    """
    import textwrap

    from . import published
    from .circuits import parse_unit
    from .provenance import weights_state

    n = len(units)
    width = max(size * n + 0.9, 6.5)  # room for the credit line and the weights stamp
    fig, axes = plt.subplots(2, n, figsize=(width, 2 * size + 1.5), squeeze=False)
    for j, unit in enumerate(units):
        axes[0, j].imshow(to_numpy_image(torch.as_tensor(images[j])))
        axes[0, j].set_title(unit, fontsize=8)
        try:
            axes[1, j].imshow(published.published_render(unit))
        except published.DataError:
            axes[1, j].text(0.5, 0.5, "not available\nhere", ha="center", va="center", fontsize=7)
        for ax in axes[:, j]:
            _no_ticks(ax)
    axes[0, 0].set_ylabel(f"this page's render\n({weights_state(model)} weights)", fontsize=8)
    axes[1, 0].set_ylabel("published render\n(real InceptionV1)", fontsize=8)
    source = published.credit(published.sprite_name(parse_unit(units[0])[0]), adapted=True)
    fig.text(0.5, 0.045, "\n".join(textwrap.wrap(f"Bottom row: {source}", int(width * 16), break_on_hyphens=False)),
             ha="center", va="bottom", fontsize=7, color="#555555")  # fmt: skip
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return _finish(fig, model)
