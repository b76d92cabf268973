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

import json
import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import matplotlib.pyplot as plt  # importing pyplot registers the notebook display of figures
import numpy as np
import torch
from matplotlib.colors import LinearSegmentedColormap, Normalize, TwoSlopeNorm
from matplotlib.patches import FancyArrowPatch, Rectangle

from ..core.hooks import activations, check_layer_names
from ..core.models.inceptionv1 import BLOCKS, MAIN_LAYERS
from ..core.provenance import stamp
from ..core.receptive_field import GRAPH, receptive_field
from ..core.units import parse_unit
from ..methods.channels import strongest_channels, strongest_patch
from ..methods.classify import top_k_classes

__all__ = [
    "Provenance",
    "activation_maps",
    "architecture_diagram",
    "compare_with_published",
    "diverging_cmap",
    "diverging_norm",
    "imshow_diverging",
    "inception_block_diagram",
    "interactive_phase_diagram",
    "interactive_radial_tuning",
    "landing_figure",
    "layer_shapes",
    "matrix_heatmap",
    "radial_tuning_panels",
    "radial_tuning_plot",
    "receptive_field_figure",
    "show_images",
    "strongest_channels_chart",
    "strongest_patch_figure",
    "to_numpy_image",
    "top_k_chart",
    "unit_browser",
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

# -- one style, drawn for the page's column ------------------------------------------------------
#: The course site's text column (1280-pixel screen) in CSS pixels, the resolution figures are
#: drawn at, and so the widest a figure should be: ``COLUMN_IN`` inches fill the column at 1:1,
#: so a text of ``p`` points is ``p * DPI / 72`` pixels on the page. A wider figure is shrunk to
#: the column, and its text with it (the site's check, :func:`circuitscope.tools.book.check_figures`,
#: wants no text under 9 pixels as shown).
COLUMN_PX = 676
DPI = 100
COLUMN_IN = (COLUMN_PX - 2 * 0.1 * DPI) / DPI  # less the 0.1-inch margin of a "tight" PNG
#: Type sizes (points): body text, small print (credits, stamps), titles. 7 pt is 9.7 px.
FONT_PT, SMALL_PT, TITLE_PT = 9.0, 7.5, 10.0
#: The style every figure of the course is drawn in (:func:`use_style`, applied on import).
STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.figsize": (COLUMN_IN, COLUMN_IN * 0.62),
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": SMALL_PT + 0.5,
    "ytick.labelsize": SMALL_PT + 0.5,
    "legend.fontsize": SMALL_PT + 0.5,
    "figure.titlesize": TITLE_PT,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlepad": 4.0,
    "image.interpolation": "nearest",
}


def use_style() -> None:
    """Apply :data:`STYLE` to matplotlib (done when this module is imported)."""
    plt.rcParams.update(STYLE)


use_style()


def column_width(fraction: float = 1.0) -> float:
    """Inches for a figure that fills ``fraction`` of the page's column."""
    return COLUMN_IN * fraction


def wrap(text: str, width_in: float, pt: float = FONT_PT) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``pt`` points (DejaVu Sans
    averages about 0.58 em a character in prose; 0.63 is used, since labels are mostly digits,
    underscores and wide letters); a word longer than a line is broken."""
    import textwrap

    chars = max(6, int(width_in * 72 / (pt * 0.63)))
    return "\n".join(
        "\n".join(textwrap.wrap(line, chars, break_on_hyphens=False) or [""]) for line in str(text).split("\n")
    )


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


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` tensor in [0, 1] -> ``(H, W, 3)`` float array for ``imshow``."""
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one image (3, H, W), got {tuple(image.shape)}")
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


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
        _no_ticks(ax)
        if titles and i < len(titles) and titles[i]:
            ax.set_title(wrap(titles[i], size * 0.95))
    fig.tight_layout(pad=0.3, w_pad=0.4)
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

    fig, ax = plt.subplots(figsize=(COLUMN_IN, 4.9))
    col_x = [0.0, 3.0, 6.0, 9.0]
    box_w, box_h = 2.7, 0.95

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
        ax.text(x, y + (0.17 if sub else 0), text, ha="center", va="center", fontsize=SMALL_PT + 0.5, weight="bold")
        if sub:
            ax.text(x, y - 0.22, sub, ha="center", va="center", fontsize=SMALL_PT)

    def arrow(x0, y0, x1, y1):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=10, lw=0.8))

    def fmt(name):
        s = shapes[name]
        return f"{s[0]} ch \u00b7 {s[1]}\u00d7{s[2]}"

    top_y, mid_y, low_y, out_y = 5.0, 3.4, 2.0, 0.2
    box(4.5, top_y, f"input: {source}", KIND_COLOURS[_kind(source)] + "55", fmt(source))
    box_w = 2.7
    # Branch 1: 1x1
    box(col_x[0], low_y, "1x1 conv", KIND_COLOURS["conv"] + "55", fmt(f"{block}_1x1"))
    # Branches 2 and 3: bottleneck then conv
    box(col_x[1], mid_y, "1x1 bottleneck", KIND_COLOURS["conv"] + "33", fmt(f"{block}_3x3_bottleneck"))
    box(col_x[1], low_y, "3x3 conv", KIND_COLOURS["conv"] + "55", fmt(f"{block}_3x3"))
    box(col_x[2], mid_y, "1x1 bottleneck", KIND_COLOURS["conv"] + "33", fmt(f"{block}_5x5_bottleneck"))
    box(col_x[2], low_y, "5x5 conv", KIND_COLOURS["conv"] + "55", fmt(f"{block}_5x5"))
    # Branch 4: pool then 1x1
    box(col_x[3], mid_y, "3x3 max pool", KIND_COLOURS["pool"] + "55", fmt(f"{block}_pool"))
    box(col_x[3], low_y, "1x1 conv", KIND_COLOURS["conv"] + "55", fmt(f"{block}_pool_reduce"))
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
    suffixes = ["1x1", "3x3", "5x5", "pool"]
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
            f"{suffixes[i]}\n{start}\u2013{start + w - 1}",
            ha="center",
            va="center",
            fontsize=SMALL_PT,
        )
        arrow(x, low_y - box_h / 2, x0 + ww / 2, out_y + box_h / 2)
        start += w
    ax.text(
        4.5,
        out_y - box_h / 2 - 0.25,
        wrap(f"{block}: the four branches concatenated, {total} channels ({fmt(block)}); "
             "the numbers are each branch's channel indices", COLUMN_IN * 0.95),
        ha="center",
        va="top",
    )
    ax.set_xlim(-1.5, 10.5)
    ax.set_ylim(-1.3, top_y + 0.6)
    _no_ticks(ax)
    ax.set_title(wrap(f"Inside the inception block {block} (shapes measured on a {input_size}\u00d7{input_size} "
                      "image; every conv is followed by a ReLU)", COLUMN_IN, TITLE_PT), fontsize=TITLE_PT)  # fmt: skip
    fig.subplots_adjust(left=0.01, right=0.99, top=0.88, bottom=0.07)
    return _finish(fig, model)


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
        _no_ticks(ax_img)
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
    ax.set_title(title, fontsize=SMALL_PT + 0.5)
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
    _no_ticks(ax_img)
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
    return _finish(fig, model)


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
    _no_ticks(axes[1])
    axes[2].imshow(to_numpy_image(image[:, top : bottom + 1, left : right + 1]))
    axes[2].set_title("the patch it saw", fontsize=SMALL_PT + 0.5)
    _no_ticks(axes[2])
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.45 / fig.get_figheight(),
                        bottom=0.28 / fig.get_figheight(), wspace=0.08)  # fmt: skip
    return _finish(fig, model)


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
    _no_ticks(ax)
    ax.set_title(
        f"Receptive field of a central position, by layer\n"
        f"({size}\u00d7{size} image; fields may reach past its edge)",
        fontsize=TITLE_PT,
    )
    fig.subplots_adjust(left=0.01, right=0.6, top=0.88, bottom=0.08)
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
        _caption_and_close(fig, model, caption)
    return fig


class Interactive:
    """A figure that is interactive on the course site and a plain image everywhere else.

    Its HTML is the static ``image`` (PNG bytes, a matplotlib figure of the same data) and a
    script: on a page of the course site (whose ``<html>`` names its root, ``data-content_root``)
    it loads the site's own copy of plotly.js (``_static/plotly.min.js``, copied there by
    :mod:`circuitscope_course.pages`; never a CDN, so the site works offline) and draws ``spec``
    (a plotly figure as JSON) over the image. Without JavaScript, or in Jupyter and Colab, the
    image is what shows. ``hover_isolate``: hovering a curve fades the others.
    """

    def __init__(self, spec: dict, image: bytes, alt: str, hint: str = "", hover_isolate: bool = True):
        self.spec, self.image, self.alt, self.hint, self.hover_isolate = spec, image, alt, hint, hover_isolate

    def _repr_html_(self) -> str:
        import base64
        import hashlib
        import html
        import json

        payload = json.dumps(self.spec, separators=(",", ":"), sort_keys=True)
        uid = "cs-plot-" + hashlib.sha256(payload.encode() + self.image).hexdigest()[:12]
        data = base64.b64encode(self.image).decode("ascii")
        hint = f'<p class="circuitscope-hint">{html.escape(self.hint)}</p>' if self.hint else ""
        script = _INTERACTIVE_JS.replace("__ID__", uid).replace("__SPEC__", payload.replace("</", "<\\/"))
        script = script.replace("__ISOLATE__", "true" if self.hover_isolate else "false")
        return (f'<div class="circuitscope-interactive" id="{uid}">'
                f'<img src="data:image/png;base64,{data}" alt="{html.escape(self.alt)}">{hint}</div>'
                f"<script>{script}</script>")  # fmt: skip


_INTERACTIVE_JS = """(function () {
  var root = document.documentElement.getAttribute("data-content_root");
  var box = document.getElementById("__ID__");
  if (root === null || !box) return;
  var spec = __SPEC__;
  function draw() {
    var plot = document.createElement("div");
    plot.style.width = "100%";
    box.insertBefore(plot, box.firstChild);
    window.Plotly.newPlot(plot, spec.data, spec.layout, spec.config).then(function () {
      var img = box.querySelector("img");
      if (img) img.style.display = "none";
      if (!__ISOLATE__) return;
      var n = spec.data.length;
      function fade(keep) {
        var op = [];
        for (var i = 0; i < n; i++) op.push(keep === null || i === keep ? 1 : 0.12);
        window.Plotly.restyle(plot, {opacity: op});
      }
      plot.on("plotly_hover", function (e) { fade(e.points[0].curveNumber); });
      plot.on("plotly_unhover", function () { fade(null); });
    });
  }
  if (!window.__circuitscopePlotly) {
    window.__circuitscopePlotly = new Promise(function (ok, fail) {
      if (window.Plotly) return ok();
      var s = document.createElement("script");
      s.src = root + "_static/plotly.min.js";
      s.onload = ok;
      s.onerror = fail;
      document.head.appendChild(s);
    });
  }
  window.__circuitscopePlotly.then(draw, function () {});
})();"""


def _png(fig) -> bytes:
    from io import BytesIO

    out = BytesIO()
    fig.canvas.print_figure(out, format="png", dpi=fig.dpi, bbox_inches="tight", facecolor=fig.get_facecolor())
    return out.getvalue()


def interactive_radial_tuning(
    tunings: dict,
    angles=None,
    *,
    layer: str | None = None,
    rotate: float = 0.0,
    title: str | None = None,
    note: str | None = None,
    model=None,
    caption: str | None = None,
):
    """:func:`radial_tuning_plot`, interactive on the course site (:class:`Interactive`): hover a
    curve to see only that unit with its response at each orientation; click a unit in the legend
    to hide it, double-click to show it alone. Same arguments as :func:`radial_tuning_plot`; the
    static figure it draws is the image shown without JavaScript (and in Jupyter or Colab).

    Needs ``plotly`` (the ``book`` extra; Colab has it); without it, returns the static figure.
    """
    static = radial_tuning_plot(tunings, angles, layer=layer, rotate=rotate, title=title, note=note,
                                model=model, caption=caption)  # fmt: skip
    try:
        import plotly.graph_objects as go
    except ImportError:
        return static
    colours = plt.get_cmap("hsv")
    n = max(len(tunings), 1)
    traces = []
    for i, (unit, values) in enumerate(tunings.items()):
        r = values.detach().double().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
        a = (np.arange(len(r)) * 360.0 / len(r) if angles is None
             else (angles.detach().double().cpu().numpy() if isinstance(angles, torch.Tensor)
                   else np.asarray(angles, float)))  # fmt: skip
        label = f"{layer}:{unit}" if layer is not None and not isinstance(unit, str) else str(unit)
        rgb = "rgb({:.0f},{:.0f},{:.0f})".format(*(255 * np.asarray(colours(i / n)[:3])))
        traces.append(go.Scatterpolar(
            r=np.round(np.clip(np.append(r, r[:1]), 0, None), 4), theta=np.round((np.append(a, a[:1]) + rotate) % 360, 2),
            mode="lines", name=label, line={"color": rgb, "width": 1.6},
            hovertemplate=f"{label}<br>response %{{r:.3g}}<extra></extra>",
        ))  # fmt: skip
    fig = go.Figure(traces)
    fig.update_layout(
        height=480, margin={"l": 30, "r": 30, "t": 50 if title else 20, "b": 30}, font={"size": 13},
        title={"text": title, "x": 0.5} if title else None, legend={"font": {"size": 12}},
        polar={"bgcolor": "white",
               "radialaxis": {"showticklabels": False, "ticks": "", "gridcolor": "#dddddd"},
               "angularaxis": {"rotation": 0, "direction": "counterclockwise", "gridcolor": "#dddddd",
                               "linecolor": "#444444", "showticklabels": not rotate % 360}},
        hovermode="closest", paper_bgcolor="white",
    )  # fmt: skip
    spec = json.loads(fig.to_json())
    spec["config"] = {"displaylogo": False, "responsive": True,
                      "modeBarButtonsToRemove": ["toImage", "select2d", "lasso2d"]}  # fmt: skip
    hint = "Hover a curve to see that unit alone; click a unit in the legend to hide it, double-click to isolate it."
    if note:
        hint = f"{hint} {note}"
    if caption is None and model is not None:
        from ..core.provenance import weights_caption

        hint = f"{hint} {weights_caption(model)}"
    alt = f"Radial tuning curves of {len(tunings)} units" + (f": {title}" if title else "")
    return Interactive(spec, _png(static), alt, hint)


# -- the toy model's phase diagram, interactive ------------------------------------------------------
def interactive_phase_diagram(diagram):
    """:func:`circuitscope.methods.superposition.plot_phase_diagram`, interactive on the course site
    (:class:`Interactive`): hover a cell to read its sparsity ``S`` (and density ``1 - S``), the
    extra feature's relative importance, its phase, the two features' norms and the loss of the
    model kept there ("Toy Models of Superposition", "Superposition as a Phase Change").

    ``diagram``: a :class:`~circuitscope.methods.superposition.PhaseDiagram`. The static figure is the
    image shown without JavaScript (and in Jupyter or Colab); without ``plotly``, it is returned.
    """
    from ..methods.superposition import PHASE_COLOURS, PHASES, plot_phase_diagram

    static = plot_phase_diagram(diagram)
    try:
        import plotly.graph_objects as go
    except ImportError:
        return static
    phases = np.asarray(diagram.phases, dtype=int)
    sparsity = np.asarray(diagram.sparsities, dtype=float)
    importance = np.asarray(diagram.importances, dtype=float)
    norms, losses = np.asarray(diagram.norms, dtype=float), np.asarray(diagram.losses, dtype=float)

    def edges(v):  # cell edges halfway between the points, in log space (as the static figure)
        lv = np.log10(v)
        if len(lv) == 1:
            return 10 ** np.array([lv[0] - 0.5, lv[0] + 0.5])
        mid = (lv[1:] + lv[:-1]) / 2
        return 10 ** np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]])

    density = np.clip(1 - sparsity, 1e-12, None)
    text = [[(f"sparsity S = {s:.3g} (density {1 - s:.3g})<br>relative importance {imp:.3g}<br>"
              f"phase: <b>{PHASES[phases[i, j]]}</b><br>|W\u2080| = {norms[i, j, 0]:.2f}, "
              f"|W\u2081| = {norms[i, j, 1]:.2f}, loss {losses[i, j]:.3g}")
             for j, imp in enumerate(importance)] for i, s in enumerate(sparsity)]  # fmt: skip
    n = len(PHASES)
    scale = [[k / n + d, c] for k, c in enumerate(PHASE_COLOURS) for d in (0.0, 1.0 / n)]
    traces = [go.Heatmap(
        z=phases.tolist(), x=np.round(edges(importance), 6).tolist(), y=np.round(edges(density), 6).tolist(),
        text=text, hovertemplate="%{text}<extra></extra>", colorscale=scale, zmin=-0.5, zmax=n - 0.5,
        showscale=False, xgap=1, ygap=1, name="phase",
    )]  # fmt: skip
    for colour, phase in zip(PHASE_COLOURS, PHASES):  # the legend: one swatch per phase
        traces.append(go.Scatter(x=[None], y=[None], mode="markers", name=phase, hoverinfo="skip",
                                 marker={"symbol": "square", "size": 12, "color": colour}))  # fmt: skip
    fig = go.Figure(traces)
    fig.update_layout(
        height=430, margin={"l": 60, "r": 10, "t": 40, "b": 10}, font={"size": 13}, paper_bgcolor="white",
        plot_bgcolor="white", title={"text": "Feature 1 in a 2-feature, 1-dimension toy model", "x": 0.5,
                                     "font": {"size": 14}},
        xaxis={"type": "log", "dtick": 1, "title": {"text": "relative importance of feature 1"}},
        yaxis={"type": "log", "dtick": 1, "title": {"text": "feature density 1 \u2212 S"}},
        legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": -0.2, "yanchor": "top"},
        hovermode="closest",
    )  # fmt: skip
    spec = json.loads(fig.to_json())
    spec["config"] = {"displaylogo": False, "responsive": True, "displayModeBar": False}  # a 2-D grid: hover only
    hint = ("Hover a cell to read its sparsity, the extra feature's relative importance, its phase, the "
            "norms of both features' columns of W and the loss of the model kept there.")  # fmt: skip
    alt = (f"Phase diagram of the extra feature over {len(sparsity)} sparsities and {len(importance)} "
           "relative importances: not represented, dedicated dimension or superposition")  # fmt: skip
    return Interactive(spec, _png(static), alt, hint, hover_isolate=False)


# -- a unit browser: the articles' renders beside this page's ----------------------------------------
def _data_uri(image, fmt: str = "PNG", quality: int = 80) -> str:
    import base64
    from io import BytesIO

    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    out = BytesIO()
    image.convert("RGB").save(out, format=fmt, **({"quality": quality, "optimize": True} if fmt == "JPEG" else {}))
    mime = "jpeg" if fmt == "JPEG" else "png"
    return f"data:image/{mime};base64,{base64.b64encode(out.getvalue()).decode('ascii')}"


def _browser_grid(images, units: Sequence[str], model, published_cells: dict, columns: int = 5):
    """The unit browser's static figure: bands of ``columns`` units, this page's renders (titled)
    above the article's (``published_cells``: ``{unit: (h, w, 3) uint8}``; a missing one says so)."""
    from ..core.provenance import weights_state

    n = len(units)
    columns = max(1, min(columns, n))
    bands = math.ceil(n / columns)
    label_w = 0.9
    cell = min(1.25, (COLUMN_IN - label_w) / columns)
    fig, axes = plt.subplots(2 * bands, columns, squeeze=False,
                             figsize=(COLUMN_IN, bands * (2 * cell + 0.3) + 0.35))  # fmt: skip
    for k in range(bands * columns):
        top, bottom = axes[2 * (k // columns), k % columns], axes[2 * (k // columns) + 1, k % columns]
        for ax in (top, bottom):
            _no_ticks(ax)
        if k >= n:
            top.axis("off"), bottom.axis("off")
            continue
        top.imshow(to_numpy_image(torch.as_tensor(images[k])))
        top.set_title(units[k], fontsize=SMALL_PT + 0.5, pad=2)
        if units[k] in published_cells:
            bottom.imshow(published_cells[units[k]])
        else:
            bottom.text(0.5, 0.5, "not\navailable\nhere", ha="center", va="center", fontsize=SMALL_PT)
    for b in range(bands):
        axes[2 * b, 0].set_ylabel(f"this page\n({weights_state(model)})", fontsize=SMALL_PT + 0.5)
        axes[2 * b + 1, 0].set_ylabel("published\n(real)", fontsize=SMALL_PT + 0.5)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1), pad=0.3, h_pad=0.2, w_pad=0.3)
    return _finish(fig, model)


class UnitBrowser:
    """Browse units of several layers: the articles' published render of a unit beside this page's.

    On the course site (as :class:`Interactive`, only where ``<html>`` names the site's root) a
    script draws a layer menu, a channel slider and two panels: the published render, cut from the
    layer's sprite sheet held in the page (a ``data:`` URI, no request), and this page's render
    when the page rendered that unit (``own``), labelled with its weights state. Without
    JavaScript, and in Jupyter or Colab, the static ``image`` (a grid of the units rendered here
    above their published renders) shows instead.

    Attributes:
        layers: ``{layer: {"channels", "columns", "rows", "cell", "sprite"}}``: the published
            renders of every channel of each layer, ``cell`` pixels each.
        own: ``{unit: PNG data URI}``: this page's renders.
        state, caption, credit: the weights state and caption of ``own``; the published credit.
    """

    def __init__(self, layers: dict, own: dict, state: str, caption: str, credit: str, image: bytes, alt: str,
                 note: str = ""):  # fmt: skip
        self.layers, self.own, self.state, self.caption, self.credit = layers, own, state, caption, credit
        self.image, self.alt, self.note = image, alt, note

    def spec(self) -> dict:
        """What the page's script reads: the layers, their channel counts and sprites, the own renders."""
        from ..core.models import LAYER_CHANNELS

        names = [n for n in MAIN_LAYERS if n in self.layers or any("mixed" + u.split(":")[0] == n for u in self.own)]
        return {"layers": self.layers, "own": self.own, "units": list(self.own), "state": self.state,
                "caption": self.caption, "order": names,
                "channels": {n: LAYER_CHANNELS[n] for n in names}}  # fmt: skip

    def _repr_html_(self) -> str:
        import base64
        import hashlib
        import html

        payload = json.dumps(self.spec(), separators=(",", ":"), sort_keys=True)
        uid = "cs-browser-" + hashlib.sha256(payload.encode() + self.image).hexdigest()[:12]
        data = base64.b64encode(self.image).decode("ascii")
        credit = f' <span class="circuitscope-credit">{html.escape(self.credit)}</span>' if self.credit else ""
        note = f" {html.escape(self.note)}" if self.note else ""
        hint = (f'<p class="circuitscope-hint">Pick a layer and a channel: the article\'s render of the unit '
                f"(real InceptionV1) beside this page's, where this page rendered it ({html.escape(self.caption)})."
                f"{note}{credit}</p>")  # fmt: skip
        script = _BROWSER_JS.replace("__ID__", uid).replace("__SPEC__", payload.replace("</", "<\\/"))
        return (f'<div class="circuitscope-browser" id="{uid}">'
                f'<img src="data:image/png;base64,{data}" alt="{html.escape(self.alt)}">{hint}</div>'
                f"<script>{script}</script>")  # fmt: skip


_BROWSER_JS = """(function () {
  var root = document.documentElement.getAttribute("data-content_root");
  var box = document.getElementById("__ID__");
  if (root === null || !box) return;
  var spec = __SPEC__;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }
  function short(layer) { return layer.replace(/^mixed/, ""); }
  var ui = el("div", "cs-browser-ui");
  var controls = el("div", "cs-browser-controls");
  var layerLabel = el("label", null, "Layer ");
  var layer = el("select");
  spec.order.forEach(function (name) {
    var o = el("option", null, name);
    o.value = name;
    layer.appendChild(o);
  });
  layerLabel.appendChild(layer);
  var channelLabel = el("label", "cs-browser-channel", "Channel ");
  var slider = el("input");
  slider.type = "range";
  slider.min = 0;
  var number = el("input");
  number.type = "number";
  number.min = 0;
  channelLabel.appendChild(slider);
  channelLabel.appendChild(number);
  controls.appendChild(layerLabel);
  controls.appendChild(channelLabel);
  ui.appendChild(controls);
  var ownUnits = spec.units;  // in the page's order (spec.own's keys are sorted)
  if (ownUnits.length) {
    var jump = el("div", "cs-browser-jump", "Rendered on this page: ");
    ownUnits.forEach(function (unit) {
      var b = el("button", null, unit);
      b.type = "button";
      b.addEventListener("click", function () { show(unit); });
      jump.appendChild(b);
    });
    ui.appendChild(jump);
  }
  var panels = el("div", "cs-browser-panels");
  function panel(title, cls) {
    var f = el("figure", "cs-browser-panel " + (cls || ""));
    var view = el("div", "cs-browser-view");
    var cap = el("figcaption", null, title);
    f.appendChild(view);
    f.appendChild(cap);
    panels.appendChild(f);
    return {view: view, cap: cap};
  }
  var pub = panel("Published render (real InceptionV1)", "cs-browser-published");
  var own = panel("This page (" + spec.state + " weights)", "cs-browser-own cs-state-" + spec.state);
  ui.appendChild(panels);
  function show(unit) {
    var parts = unit.split(":"), name = "mixed" + parts[0];
    layer.value = name;
    update(name, parseInt(parts[1], 10));
  }
  function update(name, channel) {
    var n = spec.channels[name];
    channel = Math.max(0, Math.min(n - 1, channel || 0));
    slider.max = n - 1;
    number.max = n - 1;
    slider.value = channel;
    number.value = channel;
    var unit = short(name) + ":" + channel, sheet = spec.layers[name];
    pub.view.textContent = "";
    pub.view.style.backgroundImage = "";
    pub.view.setAttribute("role", "img");
    if (sheet) {
      var col = channel % sheet.columns, row = Math.floor(channel / sheet.columns);
      pub.view.style.backgroundImage = "url(" + sheet.sprite + ")";
      pub.view.style.backgroundSize = (sheet.columns * 100) + "% " + (sheet.rows * 100) + "%";
      pub.view.style.backgroundPosition = (sheet.columns > 1 ? col / (sheet.columns - 1) * 100 : 0) + "% " +
        (sheet.rows > 1 ? row / (sheet.rows - 1) * 100 : 0) + "%";
      pub.view.setAttribute("aria-label", "Published render of " + unit);
    } else {
      pub.view.appendChild(el("span", null, "No published render of " + name + " here."));
      pub.view.setAttribute("aria-label", "No published render of " + unit);
    }
    pub.cap.textContent = unit + ": published render (real InceptionV1)";
    own.view.textContent = "";
    if (spec.own[unit]) {
      var img = el("img");
      img.src = spec.own[unit];
      img.alt = "This page's render of " + unit + " (" + spec.state + " weights)";
      own.view.appendChild(img);
    } else {
      var here = ownUnits.filter(function (u) { return u.split(":")[0] === short(name); });
      own.view.appendChild(el("span", null, "Not rendered on this page" +
        (here.length ? " (in " + name + ": " + here.join(", ") + ")." : ".")));
    }
    own.cap.textContent = unit + ": this page, " + spec.caption;
  }
  layer.addEventListener("change", function () { update(layer.value, parseInt(number.value, 10)); });
  slider.addEventListener("input", function () { update(layer.value, parseInt(slider.value, 10)); });
  number.addEventListener("change", function () { update(layer.value, parseInt(number.value, 10)); });
  box.insertBefore(ui, box.firstChild);
  var fallback = box.querySelector(":scope > img");
  if (fallback) fallback.style.display = "none";
  if (ownUnits.length) show(ownUnits[0]); else update(spec.order[0], 0);
})();"""


def unit_browser(images, units: Sequence[str], model, layers: Sequence[str] | None = None, cell_px: int = 48,
                 columns: int = 5) -> UnitBrowser:  # fmt: skip
    """A browser of the articles' published renders beside this page's renders (:class:`UnitBrowser`).

    Args:
        images: ``(N, 3, H, W)`` float in [0, 1], this page's renders of ``units``, made with
            ``model`` (labelled with its weights state).
        units: ``"4b:111"``-style names, one per image.
        layers: layers whose every channel's published render the page holds (default the five
            of :data:`circuitscope.core.published.SPRITE_COLUMNS`: "The Building Blocks of
            Interpretability" published a render of every channel of these); a sheet that cannot
            be had is left out, with a note.
        cell_px: pixels per published render in the page (the sheets' 110 scaled down: all
            five layers at 48 px add about 2 MB to the page).
        columns: units per band of the static grid.

    The published renders are fetched by :mod:`circuitscope.core.registry` (hash-checked) and credited.
    """
    from PIL import Image

    from ..core import published, registry
    from ..core.models import LAYER_CHANNELS
    from ..core.provenance import weights_caption, weights_state

    images = [torch.as_tensor(img) for img in images]
    if len(images) != len(units):
        raise ValueError(f"{len(images)} images for {len(units)} units")
    sheets, missing = {}, []
    for layer in layers if layers is not None else list(published.SPRITE_COLUMNS):
        try:
            path = registry.fetch(published.sprite_name(layer))
        except published.DataError:
            missing.append(layer)
            continue
        cols, cell = published.SPRITE_COLUMNS[layer], published.SPRITE_CELL
        with Image.open(path) as im:
            rows = round(im.height / cell)
            small = im.convert("RGB").resize((cols * cell_px, rows * cell_px), Image.LANCZOS)
        sheets[layer] = {"channels": LAYER_CHANNELS[layer], "columns": cols, "rows": rows, "cell": cell_px,
                         "sprite": _data_uri(small, "JPEG", 75)}  # fmt: skip
    cells = {}
    for unit in units:
        if parse_unit(unit)[0] in sheets:
            cells[unit] = published.published_render(unit)
    static = _browser_grid(images, list(units), model, cells, columns)
    own = {unit: _data_uri((to_numpy_image(img) * 255).round().astype(np.uint8)) for unit, img in zip(units, images)}
    credit = published.credit(published.sprite_name(next(iter(sheets))), adapted=True) if sheets else ""
    note = (f"The published renders of {', '.join(missing)} could not be had on this machine." if missing else "")
    alt = (f"This page's renders of {', '.join(units)} ({weights_state(model)} weights) above the "
           "published renders of the same units")  # fmt: skip
    return UnitBrowser(sheets, own, weights_state(model), weights_caption(model), credit, _png(static), alt, note)


def _caption_and_close(fig, model, caption: str | None) -> None:
    """Foot of a figure: ``caption`` if given, else ``model``'s weights stamp; closed in pyplot."""
    if caption is not None:
        fig.text(0.5, 0.002, wrap(caption, fig.get_figwidth(), 8), ha="center", va="bottom", fontsize=8,
                 color="#555555")  # fmt: skip
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
    _caption_and_close(fig, model, caption)
    return fig



def compare_with_published(images, units: Sequence[str], model, size: float = 1.6):
    """This page's renders of ``units`` (top row) above the article's renders of the same units.

    ``images``: ``(N, 3, H, W)`` rendered with ``model`` (stamped with its weights state);
    ``units``: ``"4b:111"``-style names of layers with a published sprite sheet
    (:func:`circuitscope.core.published.published_render`). The bottom row is credited to "The
    Building Blocks of Interpretability" (CC BY 4.0); a sheet that cannot be had leaves a note
    in its cells. Returns the figure, closed in pyplot.
    """

    from ..core import published
    from ..core.provenance import weights_state

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
            _no_ticks(ax)
    axes[0, 0].set_ylabel(f"this page\n({weights_state(model)}\nweights)", fontsize=SMALL_PT + 0.5)
    axes[1, 0].set_ylabel("published\n(real\nInceptionV1)", fontsize=SMALL_PT + 0.5)
    source = published.credit(published.sprite_name(parse_unit(units[0])[0]), adapted=True)
    fig.text(0.5, 0.045, wrap(f"Bottom row: {source}", width * 0.95, SMALL_PT),
             ha="center", va="bottom", fontsize=SMALL_PT, color="#555555")  # fmt: skip
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return _finish(fig, model)


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
    from ..core import published

    try:
        images = [[published.published_render(u) for u in column] for column in units]
        layers = sorted({published.sprite_name(_layer_of(u)) for column in units for u in column})
        credit = " ".join(published.credit(name, adapted=True) for name in layers[:1])
    except (published.DataError, KeyError, ValueError):
        from ..methods.stimuli import curve

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
            _no_ticks(ax)
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

