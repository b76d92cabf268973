"""Figures every chapter uses: the architecture, predictions, activation maps, colour maps.

Every function that draws from a model returns a :class:`matplotlib.figure.Figure` stamped with
the weights it was made with (:func:`circuitscope.core.provenance.stamp`): a figure made with the
synthetic stand-in says "SYNTHETIC WEIGHTS" on it. Figures are closed in pyplot before they are
returned, so a notebook shows each exactly once (as the cell's value) and nothing piles up in
memory; save one with ``fig.savefig(path)``.

Images are ``(3, H, W)`` float tensors in [0, 1] (or batches ``(N, 3, H, W)``), as everywhere in
:mod:`circuitscope`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import matplotlib.pyplot as plt  # importing pyplot registers the notebook display of figures
import numpy as np
import torch
from matplotlib import colors as mcolors
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from matplotlib.patches import FancyArrowPatch, Patch, Rectangle
from matplotlib.ticker import NullFormatter

from ..core import published
from ..core.hooks import activations, check_layer_names
from ..core.models.inceptionv1 import BLOCKS, LAYER_CHANNELS, MAIN_LAYERS
from ..core.provenance import caption_figure, stamp, weights_state
from ..core.receptive_field import GRAPH, receptive_field
from ..core.units import expand_short_name, format_unit, parse_unit
from ..methods.channels import strongest_channels, strongest_patch
from ..methods.classify import top_k_classes
from ..methods.dataset_examples import TopExamples, resolve_unit
from ..methods.optvis import direction, render
from ..methods.polysemanticity import outgoing_to_layer
from ..methods.sae import SparseAutoencoder, feature_cosines, feature_direction
from ..methods.sae import top_examples as sae_top_examples
from ..methods.stimuli import TuningCurve, curve
from ..methods.superposition import (
    PHASES,
    PhaseDiagram,
    as_instances,
    feature_norms,
    importance_decay,
    per_instance,
)
from .style import (
    ACTIVATION_CMAP,
    COLUMN_IN,
    FONT_PT,
    KIND_COLOURS,
    PHASE_COLOURS,
    SMALL_PT,
    TITLE_PT,
    caption_and_close,
    diverging_cmap,
    finish,
    imshow_diverging,
    no_ticks,
    to_numpy_image,
    wrap,
)

__all__ = [
    "Provenance",
    "activation_maps",
    "architecture_diagram",
    "compare_with_published",
    "image_grid",
    "inception_block_diagram",
    "landing_figure",
    "layer_shapes",
    "matrix_heatmap",
    "outgoing_weights_figure",
    "plot_circuit",
    "plot_dictionary_match",
    "plot_phase_diagram",
    "plot_sae_features",
    "plot_toy_features",
    "plot_toy_wtw",
    "plot_tuning_curves",
    "plot_weights",
    "radial_tuning_panels",
    "radial_tuning_plot",
    "receptive_field_figure",
    "show_images",
    "strongest_channels_chart",
    "strongest_patch_figure",
    "top_examples_figure",
    "top_k_chart",
]

_BLOCK_NAMES = {b.name for b in BLOCKS}


# -- helpers -----------------------------------------------------------------------------------
class Provenance(NamedTuple):
    """Where precomputed values came from, for figures not made by running a model here.

    ``Provenance(False, "activations computed by Lucid, from Building Blocks' published data")``
    stamps a figure as the real network's published values (state ``"published"``);
    ``state`` names another state of :mod:`circuitscope.core.provenance` explicitly.
    """

    is_synthetic: bool
    weights_source: str
    state: str | None = None

    @property
    def weights_state(self) -> str:
        # Not synthetic and not computed here means published by the articles, not "unverified".
        return self.state or ("synthetic" if self.is_synthetic else "published")


def show_images(images, titles: Sequence[str] | None = None, size: float = 2.6):
    """Images side by side (``(N, 3, H, W)`` or a list of ``(3, H, W)``), each under its title,
    as large as ``size`` inches while the row fits the page's column (:data:`COLUMN_IN`).

    Draws no model output, so it carries no weights caption.
    """
    images = list(images)
    size = min(size, COLUMN_IN / max(len(images), 1))
    lines = max((len(wrap(t, size * 0.95).split("\n")) for t in titles or []), default=0)
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size + 0.18 * lines + 0.1),
                             squeeze=False)  # fmt: skip
    for i, (ax, img) in enumerate(zip(axes[0], images)):
        ax.imshow(to_numpy_image(torch.as_tensor(img)))
        no_ticks(ax)
        if titles and i < len(titles) and titles[i]:
            ax.set_title(wrap(titles[i], size * 0.95))
    fig.tight_layout(pad=0.3, w_pad=0.4)
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
    label_w = 0.3 if row_labels else 0.0
    size = min(size, (COLUMN_IN - label_w) / ncols)  # the grid fits the page's column
    titles = [wrap(t, size * 0.95, SMALL_PT + 0.5) for t in titles] if titles is not None else None
    lines = max((len(t.split("\n")) for t in titles or []), default=0)
    bottom = 0.3 if model is not None else 0.0
    top = (0.15 + 0.18 * wrap(title, COLUMN_IN, TITLE_PT).count("\n") + 0.2) if title else 0.0
    title = wrap(title, COLUMN_IN, TITLE_PT) if title else title
    fig, axes = plt.subplots(nrows, ncols, squeeze=False,
                             figsize=(size * ncols + label_w, (size + 0.16 * lines + 0.06) * nrows + bottom + top))  # fmt: skip
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
            ax.set_title(titles[k], fontsize=SMALL_PT + 0.5)
    if row_labels:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].set_ylabel(label, fontsize=SMALL_PT + 0.5)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, bottom / fig.get_figheight(), 1, 1), pad=0.3, w_pad=0.3, h_pad=0.3)
    if model is not None:
        return finish(fig, model)
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
    """InceptionV1's named layers, input at the top, one row each, with channels and spatial size
    measured by running an ``input_size`` image through ``model`` (not written down by hand).

    Drawn down the page's column, so every label stays readable: a bar's length grows with the
    layer's channel count, its shade with its spatial size; colour gives the kind of layer. Each
    row also gives the receptive field of one position (pixels).
    """
    layers = (
        list(layers) if layers is not None else [n for n in MAIN_LAYERS if n != "softmax2_pre_activation"]
    )
    shapes = layer_shapes(model, input_size, layers)
    max_c = max(s[0] for s in shapes.values())
    row = 0.27
    fig = plt.figure(figsize=(COLUMN_IN, row * len(layers) + 1.35))
    top_in, bottom_in = 0.95, 0.4
    ax = fig.add_axes((0.0, bottom_in / fig.get_figheight(), 1.0, 1 - (top_in + bottom_in) / fig.get_figheight()))
    # Columns (in axes x from 0 to 1): name | bar | channels | H x W | receptive field.
    x_name, x_bar, bar_max, x_c, x_hw, x_rf = 0.25, 0.27, 0.36, 0.70, 0.82, 0.985
    n = len(layers)
    for i, name in enumerate(layers):
        y = n - 1 - i
        shape = shapes[name]
        c = shape[0]
        w = bar_max * max(0.02, np.sqrt(c / max_c))
        ax.add_patch(Rectangle((x_bar, y - 0.34), w, 0.68, facecolor=KIND_COLOURS[_kind(name)],
                               edgecolor="black", lw=0.5))  # fmt: skip
        ax.text(x_name, y, name, ha="right", va="center", family="monospace", fontsize=SMALL_PT + 0.5)
        ax.text(x_c, y, f"{c}", ha="right", va="center")
        ax.text(x_hw, y, f"{shape[1]}\u00d7{shape[2]}" if len(shape) == 3 else "\u2014", ha="right", va="center")
        rf = f"{receptive_field(name, input_size).size}" if name in GRAPH else "\u2014"
        ax.text(x_rf, y, rf, ha="right", va="center")
    for x, text in ((x_name, "layer"), (x_bar, "bar: \u221achannels"), (x_c, "channels"), (x_hw, "H\u00d7W"),
                    (x_rf, "RF (px)")):  # fmt: skip
        ax.text(x, n - 0.25, text, ha="left" if x == x_bar else "right", va="bottom", style="italic",
                color="#444444")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, n + 0.5)
    ax.axis("off")
    handles = [Rectangle((0, 0), 1, 1, facecolor=col, edgecolor="black", lw=0.5) for col in KIND_COLOURS.values()]
    fig.legend(handles, ["convolution + ReLU", "max / average pool", "local response norm", "inception block",
                         "classifier (softmax)"], loc="upper center", ncol=3, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.32 / fig.get_figheight()), handlelength=1.2, columnspacing=1.2)  # fmt: skip
    fig.suptitle(f"InceptionV1's named layers (measured on a {input_size}\u00d7{input_size} image)",
                 y=1 - 0.04 / fig.get_figheight(), va="top")  # fmt: skip
    return finish(fig, model)


_BRANCH_BOX_W, _BRANCH_BOX_H = 2.7, 0.95
_BRANCH_X = (0.0, 3.0, 6.0, 9.0)  # the four branches' columns
_TOP_Y, _MID_Y, _LOW_Y, _OUT_Y = 5.0, 3.4, 2.0, 0.2  # input, bottlenecks, branch outputs, concatenation


def inception_block_diagram(model, block: str = "mixed3b", input_size: int = 224):
    """The four branches of one inception block, with the channel counts of each step and the
    channel range each branch fills in the block's concatenated output (measured by running
    the model).

    Channel ranges matter: "3b:379" is channel 379 of ``mixed3b``, which this diagram shows to be
    in the 5x5 branch (channels 320-415), where "Curve Detectors" finds the curve detectors.
    """
    if block not in _BLOCK_NAMES:
        raise KeyError(f"{block!r} is not an inception block; choose from {sorted(_BLOCK_NAMES)}")
    source = GRAPH[f"{block}_1x1_pre_relu"][0][0]
    names = [source, *(f"{block}_{s}" for s in ("1x1", "3x3_bottleneck", "3x3", "5x5_bottleneck", "5x5", "pool",
                                                  "pool_reduce")), block]  # fmt: skip
    shapes = layer_shapes(model, input_size, names)

    def fmt(name):
        s = shapes[name]
        return f"{s[0]} ch \u00b7 {s[1]}\u00d7{s[2]}"

    fig, ax = plt.subplots(figsize=(COLUMN_IN, 4.9))
    _draw_branches(ax, block, source, fmt)
    widths = [shapes[f"{block}_{b}"][0] for b in ("1x1", "3x3", "5x5", "pool_reduce")]
    total = shapes[block][0]
    expected = next(b for b in BLOCKS if b.name == block).out_channels
    assert sum(widths) == total == expected, "branch widths must add up to the block's channels"
    _draw_concatenation(ax, widths)
    ax.text(4.5, _OUT_Y - _BRANCH_BOX_H / 2 - 0.25,
            wrap(f"{block}: the four branches concatenated, {total} channels ({fmt(block)}); "
                 "the numbers are each branch's channel indices", COLUMN_IN * 0.95), ha="center", va="top")  # fmt: skip
    ax.set_xlim(-1.5, 10.5)
    ax.set_ylim(-1.3, _TOP_Y + 0.6)
    no_ticks(ax)
    ax.set_title(wrap(f"Inside the inception block {block} (shapes measured on a {input_size}\u00d7{input_size} "
                      "image; every conv is followed by a ReLU)", COLUMN_IN, TITLE_PT), fontsize=TITLE_PT)  # fmt: skip
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.07)
    return finish(fig, model)


def _box(ax, x, y, text, colour, sub=None, w=_BRANCH_BOX_W, h=_BRANCH_BOX_H, alpha=0.9, pt=SMALL_PT + 0.5):
    """A labelled box centred at ``(x, y)``; ``sub`` (a shape, a range) in small print under the label."""
    ax.add_patch(Rectangle((x - w / 2, y - h / 2), w, h, facecolor=colour, edgecolor="black", lw=0.7, alpha=alpha))
    if text:
        ax.text(x, y + (0.17 if sub else 0), text, ha="center", va="center", fontsize=pt, weight="bold")
    if sub:
        ax.text(x, y - 0.22, sub, ha="center", va="center", fontsize=SMALL_PT)


def _arrow(ax, x0, y0, x1, y1) -> None:
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10, lw=0.8))


def _draw_branches(ax, block: str, source: str, fmt) -> None:
    """The block's input above its four branches (1x1; bottleneck then 3x3; bottleneck then
    5x5; max pool then 1x1), each box with its measured shape, and the arrows between them."""
    conv, light, pool = KIND_COLOURS["conv"] + "55", KIND_COLOURS["conv"] + "33", KIND_COLOURS["pool"] + "55"
    x1, x3, x5, xp = _BRANCH_X
    _box(ax, 4.5, _TOP_Y, f"input: {source}", KIND_COLOURS[_kind(source)] + "55", fmt(source))
    _box(ax, x1, _LOW_Y, "1x1 conv", conv, fmt(f"{block}_1x1"))
    _box(ax, x3, _MID_Y, "1x1 bottleneck", light, fmt(f"{block}_3x3_bottleneck"))
    _box(ax, x3, _LOW_Y, "3x3 conv", conv, fmt(f"{block}_3x3"))
    _box(ax, x5, _MID_Y, "1x1 bottleneck", light, fmt(f"{block}_5x5_bottleneck"))
    _box(ax, x5, _LOW_Y, "5x5 conv", conv, fmt(f"{block}_5x5"))
    _box(ax, xp, _MID_Y, "3x3 max pool", pool, fmt(f"{block}_pool"))
    _box(ax, xp, _LOW_Y, "1x1 conv", conv, fmt(f"{block}_pool_reduce"))
    for x in _BRANCH_X:
        _arrow(ax, 4.5, _TOP_Y - _BRANCH_BOX_H / 2, x, (_MID_Y if x != x1 else _LOW_Y) + _BRANCH_BOX_H / 2)
    for x in _BRANCH_X[1:]:
        _arrow(ax, x, _MID_Y - _BRANCH_BOX_H / 2, x, _LOW_Y + _BRANCH_BOX_H / 2)


def _draw_concatenation(ax, widths: list[int]) -> None:
    """The concatenated output as one bar split by branch, each part as wide as its channels and
    labelled with its channel range, an arrow from its branch."""
    total = sum(widths)
    left = _BRANCH_X[0] - _BRANCH_BOX_W / 2
    span = _BRANCH_X[3] + _BRANCH_BOX_W / 2 - left
    start = 0
    for i, (w, x, name) in enumerate(zip(widths, _BRANCH_X, ("1x1", "3x3", "5x5", "pool"))):
        x0, ww = left + span * start / total, span * w / total
        _box(ax, x0 + ww / 2, _OUT_Y, "", KIND_COLOURS["block"], w=ww, alpha=0.35 + 0.15 * i)
        ax.text(x0 + ww / 2, _OUT_Y, f"{name}\n{start}\u2013{start + w - 1}", ha="center", va="center", fontsize=SMALL_PT)
        _arrow(ax, x, _LOW_Y - _BRANCH_BOX_H / 2, x0 + ww / 2, _OUT_Y + _BRANCH_BOX_H / 2)
        start += w


# -- predictions -------------------------------------------------------------------------------
def top_k_chart(
    model,
    images: torch.Tensor,
    k: int = 5,
    titles: Sequence[str] | None = None,
    results: list | None = None,
    cols: int = 1,
):
    """Each image beside a bar chart of its ``k`` most probable classes.

    ``images: (N, 3, H, W)`` in [0, 1]. ``results`` (optional) is what
    :func:`circuitscope.methods.classify.top_k_classes` returns (one list of ``(index, label,
    probability)`` per image), for plotting someone else's computation; by default it is
    computed here. Probabilities are shown on a 0-1 axis.
    """
    if images.dim() == 3:
        images = images[None]
    results = results if results is not None else top_k_classes(model, images, k)
    n = len(results)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig = plt.figure(figsize=(COLUMN_IN, (COLUMN_IN / cols) * 0.22 * rows + 0.6), layout="constrained")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96), w_pad=0.1, wspace=0.05)
    subfigs = np.atleast_1d(fig.subfigures(rows, cols, squeeze=False)).reshape(rows, cols)
    for i in range(rows * cols):
        sub = subfigs[divmod(i, cols)]
        if i >= n:
            continue
        res = results[i]
        ax_img, ax_bar = sub.subplots(1, 2, width_ratios=[1, 2.6 if cols == 1 else 1.6])
        ax_img.imshow(to_numpy_image(images[i]))
        no_ticks(ax_img)
        if titles is not None:
            ax_img.set_title(wrap(titles[i], COLUMN_IN / cols * 0.3))
        probs = [float(p) for _, _, p in res][::-1]
        names = [f"{lab} ({int(idx)})" for idx, lab, _ in res][::-1]
        ax_bar.barh(range(len(probs)), probs, color=KIND_COLOURS["head"])
        ax_bar.set_yticks(range(len(probs)), names)
        ax_bar.set_xlim(0, 1)
        for y, p in enumerate(probs):
            ax_bar.text(min(p + 0.02, 0.88), y, f"{p:.2f}", va="center", fontsize=SMALL_PT + 0.5)
        ax_bar.spines[["top", "right"]].set_visible(False)
    fig.suptitle(wrap(f"Top-{k} classes (softmax probabilities; the number is the logit index)", COLUMN_IN, TITLE_PT))
    return finish(fig, model)


# -- activations ------------------------------------------------------------------------------
def _map_axes(ax, channel_map: np.ndarray, title: str, vmax: float | None = None):
    ax.imshow(
        channel_map,
        cmap=ACTIVATION_CMAP,
        vmin=0,
        vmax=vmax if vmax else max(float(channel_map.max()), 1e-6),
        interpolation="nearest",
    )
    ax.set_title(title, fontsize=SMALL_PT + 0.5)
    no_ticks(ax)


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
    label_in = 1.05  # the row labels, left of the image
    cell = (COLUMN_IN - label_in) / (n + 1)
    fig, axes = plt.subplots(rows, n + 1, figsize=(COLUMN_IN, (cell + 0.42) * rows + 1.05), squeeze=False)
    size = image.shape[-1]
    for r, layer in enumerate(layers):
        a = acts[layer][0].float().cpu()
        if channels and layer in channels:
            chosen = list(channels[layer])
        else:  # the channels that fire hardest somewhere in the image
            chosen = a.amax(dim=(-2, -1)).topk(min(n, a.shape[0])).indices.tolist()
        ax = axes[r, 0]
        ax.imshow(to_numpy_image(image))
        no_ticks(ax)
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
        ax.set_ylabel(label, fontsize=SMALL_PT + 0.5, rotation=0, ha="right", va="center", labelpad=4)
        for j in range(n):
            ax = axes[r, j + 1]
            if j < len(chosen):
                _map_axes(ax, a[chosen[j]].numpy(), f"ch {chosen[j]}\nmax {float(a[chosen[j]].max()):.2g}")
            else:
                ax.axis("off")
    fig.suptitle(wrap("Activation maps: each panel is one channel; brighter = stronger response "
                      "(blue box: the receptive field of the centre position)", COLUMN_IN, TITLE_PT))  # fmt: skip
    height = fig.get_figheight()
    fig.subplots_adjust(left=label_in / COLUMN_IN, right=0.995, top=1 - 0.95 / height, bottom=0.28 / height,
                        wspace=0.08, hspace=0.42 / (cell + 0.0))  # fmt: skip
    return finish(fig, model)


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
    to the exercise); by default :func:`circuitscope.methods.channels.strongest_channels` picks them.
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
    per_row = min(max(k, 1), 6 if k <= 6 else math.ceil(k / 2))
    map_rows = math.ceil(max(k, 1) / per_row)
    cell = COLUMN_IN / per_row
    top_h, gap = 2.1, 0.95  # the bar chart; the room under it for its label and the maps' titles
    title = wrap(f"The strongest channels of {layer} for this image (maps share one colour scale)", COLUMN_IN,
                 TITLE_PT)  # fmt: skip
    head = 0.25 + 0.2 * (title.count("\n") + 1)  # room above the panels for the title's lines
    fig = plt.figure(figsize=(COLUMN_IN, top_h + map_rows * (cell + gap) + 0.3 + head))
    mean_h = (top_h + cell * map_rows) / (1 + map_rows)
    grid = fig.add_gridspec(1 + map_rows, per_row, height_ratios=[top_h] + [cell] * map_rows,
                            hspace=gap / mean_h, wspace=0.08, left=0.01, right=0.99,
                            top=1 - head / fig.get_figheight(), bottom=0.3 / fig.get_figheight())  # fmt: skip
    split = max(1, round(per_row * 0.3))
    ax_img = fig.add_subplot(grid[0, :split])
    ax_img.imshow(to_numpy_image(image))
    no_ticks(ax_img)
    ax_img.set_title("the image")
    ax = fig.add_subplot(grid[0, split:])
    box = ax.get_position()  # room on its left for the axis labels
    ax.set_position((box.x0 + 0.08, box.y0, box.x1 - box.x0 - 0.08, box.height))
    order = torch.argsort(means, descending=True)
    ax.bar(range(len(means)), means[order].numpy(), width=1.0, color="#BBBBBB")
    ranks = {int(c): int(r) for r, c in enumerate(order)}
    for c in chosen:
        ax.bar(ranks[int(c)], float(means[int(c)]), width=1.0, color=KIND_COLOURS["block"])
    ax.set_xlim(-1, len(means))
    ax.set_xlabel(wrap(f"all {len(means)} channels of {layer}, sorted by mean activation "
                       f"(orange: the {k} shown below)", COLUMN_IN * 0.62))  # fmt: skip
    ax.set_ylabel("mean")
    ax.spines[["top", "right"]].set_visible(False)
    vmax = float(a[chosen].max()) if k else 1.0
    for j, c in enumerate(chosen):
        _map_axes(
            fig.add_subplot(grid[1 + j // per_row, j % per_row]),
            a[int(c)].numpy(),
            f"{layer}:{int(c)}\nmean {float(means[int(c)]):.2f}",
            vmax=vmax,
        )
    fig.suptitle(title)
    return finish(fig, model)


@torch.no_grad()
def strongest_patch_figure(
    model, image: torch.Tensor, layer: str, channel: int, box: tuple[int, int, int, int] | None = None
):
    """Where one channel fires hardest: its activation map, and the image with the receptive
    field of the strongest position outlined and cropped out.

    ``box`` (optional) is ``(top, left, bottom, right)`` inclusive, e.g. someone's answer to the
    exercise; by default :func:`circuitscope.methods.channels.strongest_patch` computes it.
    """
    image = image[0] if image.dim() == 4 else image
    a = activations(model, image[None], [layer])[layer][0].float().cpu()
    box = box if box is not None else strongest_patch(a, channel, layer, image.shape[-1])
    top, left, bottom, right = (int(v) for v in box)
    fig, axes = plt.subplots(1, 3, figsize=(COLUMN_IN, COLUMN_IN / 3 + 0.75))
    _map_axes(axes[0], a[channel].numpy(), f"{layer}:{channel}\n({a.shape[1]}\u00d7{a.shape[2]} positions)")
    axes[1].imshow(to_numpy_image(image))
    axes[1].add_patch(
        Rectangle(
            (left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, fill=False, edgecolor="#56B4E9", lw=2
        )
    )
    axes[1].set_title(
        f"field of the strongest position\nrows {top}\u2013{bottom}, cols {left}\u2013{right}",
        fontsize=SMALL_PT + 0.5,
    )
    no_ticks(axes[1])
    axes[2].imshow(to_numpy_image(image[:, top : bottom + 1, left : right + 1]))
    axes[2].set_title("the patch it saw", fontsize=SMALL_PT + 0.5)
    no_ticks(axes[2])
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.45 / fig.get_figheight(),
                        bottom=0.28 / fig.get_figheight(), wspace=0.08)  # fmt: skip
    return finish(fig, model)


def receptive_field_figure(
    model,
    image: torch.Tensor,
    layers: Sequence[str] = ("conv2d0", "conv2d2", "mixed3a", "mixed3b", "mixed4a", "mixed4c"),
):
    """The receptive field of the centre position of several layers, drawn on the image.

    Fields grow with depth (each layer adds ``(kernel - 1) * jump`` pixels); past about
    ``mixed4b`` they are wider than a 224-pixel image. Drawn from the receptive-field arithmetic
    of :mod:`circuitscope.core.receptive_field` (the weights play no part, but the figure is stamped
    like every other).
    """
    image = image[0] if image.dim() == 4 else image
    size = image.shape[-1]
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 4.4))
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
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    no_ticks(ax)
    ax.set_title(
        f"Receptive field of a central position, by layer\n"
        f"({size}\u00d7{size} image; fields may reach past its edge)",
        fontsize=TITLE_PT,
    )
    fig.subplots_adjust(left=0.01, right=0.6, top=0.88, bottom=0.08)
    return finish(fig, model)


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
            arrays may be tensors. :func:`circuitscope.core.published.radial_tuning` gives this
            form (``A = 720``), as does ``{tc.unit: tc.responses for tc in curves}`` for
            :class:`~circuitscope.methods.stimuli.TuningCurve` s.
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

    own = ax is None
    if own:
        fig = plt.figure(figsize=(min(4.6, COLUMN_IN), 4.9))
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
        ax.legend(fontsize=SMALL_PT, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                  handlelength=1.2)  # fmt: skip
    if title:
        ax.set_title(title, fontsize=FONT_PT, pad=14)
    if note:
        width_in = ax.get_position().width * fig.get_figwidth() * 1.3
        ax.text(0.5, -0.17, wrap(note, width_in, SMALL_PT), transform=ax.transAxes, ha="center", va="top",
                fontsize=SMALL_PT, color="#444444")  # fmt: skip
    if own:
        fig.subplots_adjust(bottom=0.2 if note else 0.12)
        caption_and_close(fig, model, caption)
    return fig


def radial_tuning_panels(panels: Sequence[dict], model=None, caption: str | None = None, panel_size: float = 4.6):
    """Radial tuning plots side by side, e.g. an article's published curves beside the page's own.

    ``panels``: one dict of :func:`radial_tuning_plot` arguments per panel (``tunings`` and
    any of ``angles``, ``layer``, ``rotate``, ``title``, ``note``, ``legend``). ``model`` stamps
    the figure with its weights caption, ``caption`` writes your own; put the source of a
    panel that did not come from ``model`` (a credit line) in its ``note``. Returns the figure,
    closed in pyplot.
    """
    # Side by side when they fit the column with their legends; else one above the other.
    across = len(panels) if len(panels) * 3.2 <= COLUMN_IN else 1
    down = math.ceil(len(panels) / across)
    panel_size = min(panel_size, COLUMN_IN / across * 0.62)
    note_h = 0.75 if any(p.get("note") for p in panels) else 0.2
    height = (panel_size + 0.5 + note_h) * down + 0.3
    fig, axes = plt.subplots(down, across, figsize=(COLUMN_IN, height),
                             subplot_kw={"projection": "polar"}, squeeze=False)  # fmt: skip
    for ax, panel in zip(axes.flat, panels):
        radial_tuning_plot(ax=ax, **panel)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.subplots_adjust(left=0.03, right=1 - 0.38 * COLUMN_IN / across / COLUMN_IN, bottom=(note_h + 0.25) / height,
                        top=1 - 0.45 / height, wspace=0.75, hspace=(note_h + 0.6) / panel_size)  # fmt: skip
    caption_and_close(fig, model, caption)
    return fig


def compare_with_published(images, units: Sequence[str], model, size: float = 1.6):
    """This page's renders of ``units`` (top row) above the article's renders of the same units.

    ``images``: ``(N, 3, H, W)`` rendered with ``model`` (stamped with its weights state);
    ``units``: ``"4b:111"``-style names of layers with a published sprite sheet
    (:func:`circuitscope.core.published.published_render`). The bottom row is credited to "The
    Building Blocks of Interpretability" (CC BY 4.0); a sheet that cannot be had leaves a note
    in its cells. Returns the figure, closed in pyplot.
    """

    n = len(units)
    size = min(size, (COLUMN_IN - 1.3) / n)  # the row fits the column, with its labels
    width = COLUMN_IN
    fig, axes = plt.subplots(2, n, figsize=(width, 2 * size + 1.5), squeeze=False)
    for j, unit in enumerate(units):
        axes[0, j].imshow(to_numpy_image(torch.as_tensor(images[j])))
        axes[0, j].set_title(unit, fontsize=SMALL_PT + 0.5)
        try:
            axes[1, j].imshow(published.published_render(unit))
        except published.DataError:
            axes[1, j].text(0.5, 0.5, "not\navailable\nhere", ha="center", va="center", fontsize=SMALL_PT)
        for ax in axes[:, j]:
            no_ticks(ax)
    axes[0, 0].set_ylabel(f"this page\n({weights_state(model)}\nweights)", fontsize=SMALL_PT + 0.5)
    axes[1, 0].set_ylabel("published\n(real\nInceptionV1)", fontsize=SMALL_PT + 0.5)
    source = published.credit(published.sprite_name(parse_unit(units[0])[0]), adapted=True)
    fig.text(0.5, 0.045, wrap(f"Bottom row: {source}", width * 0.95, SMALL_PT),
             ha="center", va="bottom", fontsize=SMALL_PT, color="#555555")  # fmt: skip
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return finish(fig, model)


# -- numbers as a table ----------------------------------------------------------------------------
def matrix_heatmap(
    values,
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    annotate: bool | None = None,
    decimals: int = 2,
    signed: bool | None = None,
):
    """A small matrix as a heatmap that fits the page's column, each cell labelled with its value
    (``annotate``, default when every label fits; zeros are left blank), instead of a tensor
    printed as text.

    ``values``: ``(R, C)`` array or tensor. Signed values use the diverging map (blue negative,
    white zero, red positive; ``signed`` forces it), others a sequential map from white.
    """
    arr = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    rows, cols = arr.shape
    cell = min(0.55, (COLUMN_IN - 1.0) / max(cols, 1))
    fig, ax = plt.subplots(figsize=(min(COLUMN_IN, cell * cols + 1.2), cell * rows + 1.0))
    signed = bool((arr < 0).any()) if signed is None else signed
    if signed:
        im = imshow_diverging(ax, arr)
    else:
        im = ax.imshow(arr, cmap="Blues", vmin=0, vmax=max(float(arr.max()), 1e-9), interpolation="nearest")
    pt = SMALL_PT
    if annotate is None:
        annotate = cell * 72 >= pt * 0.6 * (decimals + 2)
    if annotate:
        norm = im.norm
        for (r, c), v in np.ndenumerate(arr):
            if abs(v) < 0.5 * 10**-decimals:
                continue  # zero: left blank, so the structure shows
            shade = abs(float(norm(v)) - (0.5 if signed else 0.0)) * (2 if signed else 1)
            ax.text(c, r, f"{v:.{decimals}f}".replace("-0.00", "0.00"), ha="center", va="center", fontsize=pt,
                    color="white" if shade > 0.6 else "black")  # fmt: skip
    ax.set_xticks(range(cols), list(column_labels) if column_labels is not None else range(cols))
    ax.set_yticks(range(rows), list(row_labels) if row_labels is not None else range(rows))
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if title:
        ax.set_title(wrap(title, fig.get_figwidth()), fontsize=FONT_PT)
    fig.tight_layout(pad=0.3)
    plt.close(fig)
    return fig


# -- the landing page's figure -------------------------------------------------------------------
#: Units of the landing figure, one column per layer from early to late: curve detectors
#: (``mixed3b``), then units of ``mixed4a``, ``mixed4b`` (the car circuit's windows and wheels),
#: ``mixed4d`` and ``mixed5a``, as the articles rendered them with the real InceptionV1.
LANDING_UNITS = (("3b:379", "3b:406"), ("4a:476", "4a:465"), ("4b:237", "4b:373"), ("4d:479", "4d:417"),
                 ("5a:9", "5a:79"))  # fmt: skip


def landing_figure(units=LANDING_UNITS):
    """The course site's landing figure: ``(figure, alt text, credit)``.

    The articles' published renders of ``units`` (columns from early to late layers), fetched by
    :mod:`circuitscope.core.registry` and credited; when they cannot be had (offline without a
    mirror), a figure computed here instead: the synthetic curve stimuli of chapter 3 at eight
    orientations (no weights involved), with credit ``""``.
    """

    try:
        images = [[published.published_render(u) for u in column] for column in units]
        layers = sorted({published.sprite_name(_layer_of(u)) for column in units for u in column})
        credit = " ".join(published.credit(name, adapted=True) for name in layers[:1])
    except (published.DataError, KeyError, ValueError):
        angles = [0, 45, 90, 135, 180, 225, 270, 315]
        fig = show_images(curve(angles, radius=16.0, size=64), [f"{a}\u00b0" for a in angles], size=COLUMN_IN / 8)
        alt = "Synthetic curve stimuli at eight orientations, drawn by the library (chapter 3)"
        return fig, alt, ""
    cols, rows = len(units), max(len(c) for c in units)
    cell = COLUMN_IN / cols
    fig, axes = plt.subplots(rows, cols, figsize=(COLUMN_IN, rows * cell + 0.55), squeeze=False)
    for j, column in enumerate(units):
        for i in range(rows):
            ax = axes[i, j]
            no_ticks(ax)
            if i < len(column):
                ax.imshow(images[j][i])
                ax.set_title(column[i], fontsize=SMALL_PT + 0.5, pad=2)
    fig.suptitle("early layers  \u2192  late layers", fontsize=FONT_PT, color="#444444", y=0.995)
    fig.subplots_adjust(left=0.005, right=0.995, top=1 - 0.42 / fig.get_figheight(), bottom=0.01,
                        wspace=0.06, hspace=0.22)  # fmt: skip
    plt.close(fig)
    alt = ("Feature visualizations of ten InceptionV1 units, two per layer, from curve detectors in "
           "mixed3b to object parts in mixed4b and whole objects in mixed5a")  # fmt: skip
    return fig, alt, credit


def _layer_of(unit: str) -> str:
    return "mixed" + unit.split(":", 1)[0]


# -- circuits: weights, circuit diagrams, tuning curves (chapter 3) ------------------------------
# -- plots -------------------------------------------------------------------------------------

def plot_weights(
    weights,
    titles: Sequence[str] | None = None,
    model=None,
    caption: str | None = None,
    vmax: float | None = None,
    ncols: int | None = None,
    cell: float = 1.6,
    colorbar: bool = True,
    cmap=None,
):
    """Weight kernels as small multiples on a diverging colour map centred at 0.

    ``weights``: ``(k, k)``, ``(N, k, k)`` or ``(R, C, k, k)`` (a grid: rows x columns), a
    tensor or array. Positive weights are red, negative blue, zero white; one symmetric scale
    ``[-vmax, vmax]`` (default the largest magnitude) for every panel so they compare. Row 0
    of a kernel is drawn at the top. With ``model``, the figure is stamped with the weights
    caption (:func:`circuitscope.core.provenance.stamp`); ``caption`` overrides it. Returns the figure,
    closed in pyplot (a notebook shows it once, as the cell's value; ``display(fig)`` elsewhere).
    """
    cmap = cmap or diverging_cmap()

    w = (
        weights.detach().cpu().float().numpy()
        if isinstance(weights, torch.Tensor)
        else np.asarray(weights, dtype=float)
    )
    if w.ndim == 2:
        w = w[None]
    if w.ndim == 3:
        n = w.shape[0]
        ncols = ncols or min(n, 8)
        nrows = -(-n // ncols)
        panels = list(w)
    elif w.ndim == 4:
        nrows, ncols = w.shape[:2]
        panels = list(w.reshape(-1, *w.shape[-2:]))
    else:
        raise ValueError(f"expected (k, k), (N, k, k) or (R, C, k, k) weights, got shape {w.shape}")

    vmax = float(vmax if vmax is not None else max(np.abs(w).max(), 1e-12))
    bar = 0.8 if colorbar else 0.0
    cell = min(cell, (COLUMN_IN - bar) / ncols)
    # an axes is narrower than its cell: titles wrap to three quarters of it
    titles = [wrap(t, cell * 0.75, 7.5) for t in titles] if titles is not None else None
    lines = max((t.count("\n") + 1 for t in titles or []), default=0)  # title lines above each panel
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell * ncols + bar, (cell + 0.17 * lines) * nrows + 0.35), squeeze=False
    )
    image = None
    for i, ax in enumerate(axes.flat):
        _kernel_frame(ax)
        if i >= len(panels):
            ax.axis("off")
            continue
        image = ax.imshow(panels[i], cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize=7.5)
    if colorbar and image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    caption_figure(fig, model, caption)
    plt.close(fig)  # returned, not left open: a notebook shows it once, as the cell's value
    return fig


def _kernel_frame(ax) -> None:
    """No ticks, and a thin grey frame on all four sides: a kernel's edge shows even where its
    weights are near zero (near white)."""
    ax.set_xticks([]), ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color("#bbbbbb")
        spine.set_linewidth(0.6)


def _as_hwc(image):

    a = (
        image.detach().cpu().float().numpy()
        if isinstance(image, torch.Tensor)
        else np.asarray(image, dtype=float)
    )
    if a.ndim == 4:
        a = a[0]
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    return a.clip(0, 1)


def plot_circuit(
    units: Sequence[str],
    edges: Sequence[tuple[str, str, float | torch.Tensor]],
    thumbnails: dict | None = None,
    model=None,
    caption: str | None = None,
    title: str | None = None,
    cmap=None,
    thumb_size: float = 0.9,
):
    """A circuit diagram: units as feature-visualization thumbnails, edges coloured by sign.

    ("Zoom In", "Claim 2: Circuits"; "Visualizing Weights", "Contextualizing Weights with
    Feature Visualization".) Units are placed in columns by layer, earlier layers on the left
    (model order for InceptionV1 names, else order of appearance).

    Args:
        units: unit ids, e.g. ``["4b:237", "4b:373", "4c:447"]``.
        edges: ``(source, target, weight)``; ``weight`` a number or a 2-D kernel. A number
            colours the arrow (red excites, blue inhibits, on ``cmap`` centred at 0) and sets
            its width by magnitude; a kernel is drawn as a small weight heatmap on the arrow,
            which is coloured by the sign of the kernel's sum.
        thumbnails: ``{unit: image}`` with images ``(3, H, W)``/``(H, W, 3)`` in ``[0, 1]``
            (feature visualizations); units without one are drawn as labelled boxes.
        model: stamps the figure with the weights caption; ``caption`` overrides it.

    Returns the matplotlib figure.
    """
    cmap = cmap or diverging_cmap()
    pos = _circuit_layout(units)
    columns = round(max(x for x, _ in pos.values()) / 2.2) + 1
    rows = round(max(y for _, y in pos.values())) + 1
    fig, ax = plt.subplots(figsize=(2.2 * columns + 0.6, 0.9 * rows + 0.8))
    ax.set_xlim(-1, 2.2 * (columns - 1) + 1)
    ax.set_ylim(-0.9, rows - 0.1)
    ax.axis("off")
    _draw_edges(ax, edges, pos, cmap)
    _draw_units(ax, pos, thumbnails or {}, thumb_size)
    if title:
        ax.set_title(title)
    caption_figure(fig, model, caption)
    plt.close(fig)  # returned, not left open: a notebook shows it once, as the cell's value
    return fig


def _circuit_layout(units: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``{unit: (x, y)}``: one column per layer, 2.2 apart, earliest layer left (InceptionV1's
    order when every layer is one of its, else order of appearance); each column centred."""
    layers: list[str] = []
    for u in units:
        if u.split(":")[0] not in layers:
            layers.append(u.split(":")[0])
    order = {name: i for i, name in enumerate(LAYER_CHANNELS)}
    if all(expand_short_name(l) in order for l in layers):
        layers.sort(key=lambda l: order[expand_short_name(l)])
    columns = {l: [u for u in units if u.split(":")[0] == l] for l in layers}
    tallest = max(len(c) for c in columns.values())
    return {u: (x * 2.2, (tallest - 1) / 2 + (len(col) - 1) / 2 - i)
            for x, col in enumerate(columns.values()) for i, u in enumerate(col)}  # fmt: skip


def _edge_value(w) -> float:
    """An edge's signed strength: the number, or a kernel's sum."""
    return float(w.sum()) if isinstance(w, torch.Tensor) or hasattr(w, "sum") else float(w)


def _draw_edges(ax, edges, pos: dict, cmap) -> None:
    """Arrows coloured by sign on ``cmap`` (centred at 0), as wide as their strength; a 2-D
    kernel is drawn as a small heatmap on its arrow."""
    scale = max([abs(_edge_value(w)) for *_, w in edges] + [1e-12])
    colour_map = plt.get_cmap(cmap)
    for src, dst, w in edges:
        if src not in pos or dst not in pos:
            raise ValueError(f"edge {src} -> {dst}: both ends must be in units")
        v = _edge_value(w)
        ax.add_patch(FancyArrowPatch(
            pos[src], pos[dst], arrowstyle="-|>", mutation_scale=12, shrinkA=28, shrinkB=28,
            linewidth=1 + 3 * abs(v) / scale, color=colour_map(0.5 + 0.5 * v / scale), zorder=1,
        ))  # fmt: skip
        kernel = w.detach().cpu().float().numpy() if isinstance(w, torch.Tensor) else w
        if getattr(kernel, "ndim", 0) == 2:
            mx, my = 0.6 * pos[src][0] + 0.4 * pos[dst][0], 0.6 * pos[src][1] + 0.4 * pos[dst][1]
            inset = ax.inset_axes([mx - 0.22, my - 0.22, 0.44, 0.44], transform=ax.transData, zorder=3)
            m = max(abs(kernel).max(), 1e-12)
            inset.imshow(kernel, cmap=cmap, norm=mcolors.Normalize(-m, m), interpolation="nearest")
            _kernel_frame(inset)


def _draw_units(ax, pos: dict, thumbnails: dict, thumb_size: float) -> None:
    """Each unit as its thumbnail with its name under it, or as a labelled box."""
    for u, (x, y) in pos.items():
        if u in thumbnails:
            img = _as_hwc(thumbnails[u])
            box = AnnotationBbox(OffsetImage(img, zoom=thumb_size * 60 / max(img.shape[:2])), (x, y), frameon=True,
                                 pad=0.1, zorder=2)  # fmt: skip
            ax.add_artist(box)
            ax.text(x, y - 0.5, u, ha="center", va="top", fontsize=8)
        else:
            box = {"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "#333333"}
            ax.text(x, y, u, ha="center", va="center", fontsize=9, zorder=2, bbox=box)


def plot_tuning_curves(
    curves: TuningCurve | Sequence[TuningCurve],
    model=None,
    caption: str | None = None,
    title: str | None = None,
    polar: bool = True,
):
    """Radial tuning curves ("Curve Detectors", "Radial Tuning Curve"): response vs orientation.

    ``curves``: one :class:`TuningCurve` or several (drawn in one panel, each in its colour, its
    preferred orientation marked by a dashed spoke). ``polar=True`` draws the angle as the
    direction (0 = right, counter-clockwise, as the stimuli are drawn) and the response as the
    radius (negative responses clipped at 0); ``polar=False`` draws an ordinary line plot.
    With ``model`` the figure is stamped with its weights caption; ``caption`` overrides it.
    Returns the matplotlib figure.
    """

    curves = [curves] if isinstance(curves, TuningCurve) else list(curves)
    fig = plt.figure(figsize=(4.2, 4.4) if polar else (5.5, 3.4))
    ax = fig.add_subplot(projection="polar" if polar else None)
    colours = plt.get_cmap("hsv")
    for i, tc in enumerate(curves):
        a = tc.angles.double().cpu().numpy()
        r = tc.responses.double().cpu().numpy()
        colour = colours(i / max(len(curves), 1))
        if polar:
            t = np.deg2rad(np.append(a, a[:1]) * 360.0 / tc.period)
            ax.plot(t, np.clip(np.append(r, r[:1]), 0, None), color=colour, label=tc.unit)
            if tc.preferred == tc.preferred:  # not nan
                ax.plot([np.deg2rad(tc.preferred * 360.0 / tc.period)] * 2, [0, max(float(r.max()), 1e-9)],
                        "--", color=colour, linewidth=1)  # fmt: skip
        else:
            ax.plot(a, r, color=colour, label=tc.unit)
            ax.axvline(tc.preferred, color=colour, linestyle="--", linewidth=1)
            ax.set_xlabel("orientation (degrees)")
            ax.set_ylabel("response")
    if polar:
        ax.set_yticklabels([])
    ax.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.3, 1.12) if polar else None)
    if title:
        ax.set_title(title, fontsize=10, pad=14)
    fig.subplots_adjust(bottom=0.12)
    caption_figure(fig, model, caption)
    plt.close(fig)
    return fig


# -- dataset examples and outgoing weights (chapter 4) -------------------------------------------
def top_examples_figure(
    top: TopExamples,
    what: Literal["patches", "images"] = "patches",
    columns: int | None = None,
    figsize=None,
    field=None,
):
    """A grid of ``top``'s examples (patches by default) with score and class; returns the figure.

    The weights caption (red when synthetic) is written under it.
    """
    pics = top.patches(field=field) if what == "patches" else top.images()
    n = len(pics)
    columns = columns or min(n, 6)
    rows = -(-n // columns)
    cell = min(1.8, COLUMN_IN / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=figsize or (cell * columns, (cell + 0.45) * rows + 0.6), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, pic, s, lab in zip(axes.flat, pics, top.scores.tolist(), top.label_names):
        ax.imshow(pic.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(f"{s:.3g}" + (f"\n{wrap(lab, cell * 0.95, 8)}" if lab else ""), fontsize=8)
    fig.suptitle(wrap(f"Top {n} dataset examples of {top.unit} (by {top.by})", COLUMN_IN, 10), fontsize=10)
    stamp(fig, top.provenance)
    plt.close(fig)  # returned, not left open: a notebook shows it once, as the cell's value
    return fig


def outgoing_weights_figure(
    model, unit, layer: str | None = None, k: int = 5, highlight=(), pool: str = "average"
):
    """Every outgoing weight of ``unit`` into ``layer`` (default: the next layer), sorted, as
    bars; the ``k`` largest are labelled, and the units in ``highlight`` (e.g. ``["4d:417"]``)
    drawn in orange wherever they fall. Weights as in :func:`outgoing_weight_vector`. Stamped
    with the model's weights caption.
    """

    target, w = outgoing_to_layer(model, unit, layer, pool)
    values, order = torch.sort(w, descending=True, stable=True)
    names = [format_unit(target, int(o)) for o in order]
    marked = {format_unit(*resolve_unit(model, h)) for h in highlight}
    fig, ax = plt.subplots(figsize=(COLUMN_IN, 3.4))
    ax.bar(range(len(w)), values.numpy(), color="#5e81b5", width=1.0)
    top = ", ".join(f"{names[r]} {float(values[r]):+.2f}" for r in range(min(k, len(w))))
    ax.text(0.99, 0.97, wrap(f"largest: {top}", COLUMN_IN * 0.55, 7.5), transform=ax.transAxes, ha="right",
            va="top", fontsize=7.5)  # fmt: skip
    hits = [(r, n) for r, n in enumerate(names) if n in marked]
    rows = {"low": 0, "high": 0}
    for r, n in hits:
        value = float(values[r])
        ax.plot([r], [value], marker="v", color="#e66101", markersize=7)
        # Sorted bars leave two corners empty: lower left (the left bars are positive) and upper
        # right (the right ones negative). Each label gets its own row in the corner on its side.
        side = "low" if r < len(w) / 2 else "high"
        y = 0.08 + 0.1 * rows["low"] if side == "low" else 0.72 - 0.1 * rows["high"]
        rows[side] += 1
        right = r > 0.75 * len(w)  # near the right edge: the label ends at the line
        x = r - len(w) * 0.03 if right else r + len(w) * 0.03
        # the leader line and the label apart, so that a label's box is its text only
        ax.annotate("", (r, value), xycoords="data", textcoords=("data", "axes fraction"), xytext=(x, y),
                    arrowprops={"arrowstyle": "-", "color": "#e66101", "lw": 0.6})  # fmt: skip
        ax.text(x, y, f"{n} (rank {r + 1})", transform=ax.get_xaxis_transform(), ha="right" if right else "left",
                va="center", fontsize=7.5, color="#e66101")  # fmt: skip
    ax.axhline(0, color="#888888", linewidth=0.6)
    ax.set_xlabel(f"units of {target}, sorted by the weight they get")
    ax.set_ylabel("summed weight")
    ax.set_title(f"Outgoing weights of {format_unit(*resolve_unit(model, unit))} into {target}", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    stamp(fig, model)
    plt.close(fig)
    return fig


# -- superposition's toy models and sparse autoencoders (chapter 5) ------------------------------
def _colours(values: np.ndarray, cmap: str = "viridis"):

    v = np.asarray(values, dtype=float)
    span = v.max() - v.min()
    scaled = (v - v.min()) / span if span > 0 else np.ones_like(v) * 0.85
    return plt.get_cmap(cmap)(0.1 + 0.85 * scaled)


def plot_toy_features(W: torch.Tensor, importance=None, titles: Sequence[str] | None = None, size: float = 2.6):
    """The article's pictures of 2-D embeddings: one line from the origin per feature column.

    ``W: (2, n)`` or ``(n_instances, 2, n)``; ``importance: (n,)`` or ``(n_instances, n)``
    colours the features (yellow = most important, purple = least, like the article; default
    ``0.9 ** i``). Dense features give two orthogonal lines and three dots at the origin; sparse
    ones a pentagon. Returns a :class:`matplotlib.figure.Figure` (one panel per instance).
    """

    Wb, _ = as_instances(W)
    k, m, n = Wb.shape
    if m != 2:
        raise ValueError(f"plot_toy_features draws 2-D embeddings; W has m = {m} hidden dimensions")
    imp = importance_decay(n) if importance is None else torch.as_tensor(importance, dtype=torch.float32)
    imp = per_instance(imp, k, n, "importance", "feature").numpy()
    size = min(size, COLUMN_IN / k)  # every panel in the site's column
    fig, axes = plt.subplots(1, k, figsize=(size * k, size), squeeze=False)
    lim = max(1.2, float(feature_norms(Wb).max()) * 1.15)
    for idx, ax in enumerate(axes[0]):
        colours = _colours(-imp[idx], "viridis_r")
        for i in np.argsort(imp[idx]):  # most important drawn last, on top
            x, y = Wb[idx, :, i].tolist()
            ax.plot([0, x], [0, y], color=colours[i], lw=2, zorder=2)
            ax.scatter([x], [y], color=colours[i], s=28, zorder=3, edgecolors="k", linewidths=0.4)
        ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="#ccc", lw=0.6, zorder=1), ax.axvline(0, color="#ccc", lw=0.6, zorder=1)
        no_ticks(ax)  # the grey lines through the origin are the axes, as in the article
        if titles is not None:
            ax.set_title(wrap(titles[idx], size * 0.95, 9), fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_toy_wtw(
    W: torch.Tensor, b: torch.Tensor | None = None, titles: Sequence[str] | None = None, size: float = 2.6
):
    """``W^T W`` (which features interfere, and how) beside the bias ``b``, as in the article.

    ``W: (m, n)`` or ``(n_instances, m, n)``; ``b: (n,)`` or ``(n_instances, n)``. Blue is
    negative, red positive, white zero: the diagonal shows which features are represented, the
    off-diagonal entries the interference between them. Returns a Figure.
    """

    Wb, _ = as_instances(W)
    k, _, n = Wb.shape
    wtw = torch.einsum("kmi,kmj->kij", Wb, Wb)
    vmax = max(float(wtw.abs().max()), 1e-6)
    bb = None if b is None else torch.as_tensor(b).detach().float().cpu().reshape(k, n)
    per = 2 if bb is not None else 1
    size = min(size, (COLUMN_IN - 0.8) / (k * (1.25 if bb is not None else 1)))  # the site's column
    ratios = ([n, 1] if bb is not None else [n]) * k
    fig, axes = plt.subplots(1, per * k, figsize=(size * k * (1.25 if bb is not None else 1) + 0.8, size),
                             squeeze=False, layout="constrained", gridspec_kw={"width_ratios": ratios})  # fmt: skip
    axes = axes[0]
    for idx in range(k):
        ax = axes[per * idx]
        im = imshow_diverging(ax, wtw[idx], vmax=vmax)
        step = max(1, math.ceil(n / (size * 4)))  # about 4 tick labels an inch: they do not touch
        ax.set_xticks(range(0, n, step)), ax.set_yticks(range(0, n, step))
        ax.tick_params(labelsize=7)
        ax.set_title(wrap(titles[idx], size, 9) if titles is not None else "$W^TW$", fontsize=9)
        if bb is not None:
            imshow_diverging(axes[per * idx + 1], bb[idx][:, None], vmax=vmax)
            axes[per * idx + 1].set_xticks([]), axes[per * idx + 1].set_yticks([])
            axes[per * idx + 1].set_title("$b$", fontsize=9)
    fig.colorbar(im, ax=list(axes), fraction=0.03, pad=0.02)
    plt.close(fig)
    return fig


def plot_phase_diagram(diagram: PhaseDiagram, ax=None):
    """Draw a :class:`PhaseDiagram`: relative importance (log x) against feature density
    ``1 - S`` (log y, sparse at the bottom), one categorical colour per phase (colour-blind safe).
    Returns the Figure."""

    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.6, 3.8))
    density = 1 - np.asarray(diagram.sparsities)
    imp = np.asarray(diagram.importances)

    def edges(v):
        lv = np.log10(v)
        if len(lv) == 1:
            return 10 ** np.array([lv[0] - 0.5, lv[0] + 0.5])
        mid = (lv[1:] + lv[:-1]) / 2
        return 10 ** np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]])

    cmap = ListedColormap(PHASE_COLOURS)
    ax.pcolormesh(edges(imp), edges(np.clip(density, 1e-12, None)), diagram.phases, cmap=cmap,
                  norm=BoundaryNorm([-0.5, 0.5, 1.5, 2.5], 3), shading="flat")  # fmt: skip
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a narrow log axis overlap
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("relative importance of feature 1")
    ax.set_ylabel("feature density $1 - S$")
    ax.legend(handles=[Patch(color=c, label=p) for c, p in zip(PHASE_COLOURS, PHASES)], fontsize=7,
              loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)  # fmt: skip
    ax.set_title("Feature 1 in a 2-feature, 1-dimension toy model", fontsize=9)
    fig = fig or ax.figure
    fig.tight_layout()
    plt.close(fig)
    return fig


def plot_sae_features(model, sae: SparseAutoencoder, layer: str, features, images: torch.Tensor,
                      renders: torch.Tensor | None = None, k: int = 4, size: int | None = None,
                      steps: int | None = None, seed: int = 0, progress: bool = False):  # fmt: skip
    """One row per SAE feature: its feature visualization, then its top ``k`` dataset examples.

    The visualization maximises ``direction(layer, W_dec[:, feature])`` with
    :func:`circuitscope.methods.optvis.render` (unless ``renders: (len(features), 3, H, W)`` are given);
    the examples are the receptive-field patches of ``images: (N, 3, H, W)`` in [0, 1] where
    the feature is largest (:func:`top_examples`, one pass over the images for all features).
    As in "Feature Visualization"'s figures that pair optimisation with dataset examples.
    Stamped with the model's weights. Returns the Figure.
    """

    features = [int(f) for f in features]
    if renders is None:
        objectives = [direction(layer, feature_direction(sae, f)) for f in features]
        renders = render(model, objectives, size=size, steps=steps, seed=seed, progress=progress)
    tops = sae_top_examples(sae, model, images, layer, features, k=k)
    cells, titles = [], []
    for row, (picture, top) in enumerate(zip(renders, tops)):
        patches = list(top.patches()) if len(top) else []
        blanks = [torch.ones_like(picture)] * (k - len(patches))  # fewer images than k: white cells
        cells += [picture, *patches, *blanks]
        titles += ["direction\nvisualization" if row == 0 else ""]
        titles += [f"{score:.2g}" for score in top.scores.tolist()] + [""] * len(blanks)
    return image_grid(cells, titles, model=model, columns=k + 1, row_labels=[f"feature {f}" for f in features],
                      title=f"SAE features of {layer}: visualization and top dataset patches (score)")  # fmt: skip


def plot_dictionary_match(learned: torch.Tensor, planted: torch.Tensor, title: str | None = None):
    """How well a learned dictionary matches a planted one, as the cosine similarities between
    every planted direction (rows) and its best-matching learned directions (columns).

    ``learned: (d, m)`` (e.g. ``sae.W_dec``) and ``planted: (d, n)``, one direction per column.
    Columns are ordered so that planted direction ``i``'s best match sits at column ``i``
    (the remaining learned directions follow, by how well they match anything): a recovered
    dictionary shows a bright diagonal. The mean of that diagonal is
    :func:`mean_max_cosine_similarity`. Draws no model output, so it carries no weights
    caption. Returns the Figure.
    """

    cos = feature_cosines(learned, planted)  # (n, m)
    best = cos.argmax(dim=1).tolist()
    order = list(dict.fromkeys(best))
    rest = [j for j in cos.max(dim=0).values.argsort(descending=True).tolist() if j not in order]
    order += rest
    fig, ax = plt.subplots(figsize=(min(9.0, 2 + 0.09 * len(order)), 2 + 0.09 * cos.shape[0]))
    im = ax.imshow(cos[:, order].numpy(), cmap=diverging_cmap(), vmin=-1, vmax=1, aspect="auto",
                   interpolation="nearest")  # fmt: skip
    ax.set_xlabel("learned directions (best matches first)")
    ax.set_ylabel("planted directions")
    score = float(cos.max(dim=1).values.mean())  # mean_max_cosine_similarity
    ax.set_title(title or f"cosine similarity; mean max = {score:.3f}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    plt.close(fig)
    return fig
