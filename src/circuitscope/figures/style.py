"""One style for every figure of the course, drawn for the site's text column.

The column is 676 CSS pixels wide (a 1280-pixel screen); figures are drawn at ``DPI`` so that
``COLUMN_IN`` inches fill it at 1:1. Signed values (weights, pre-ReLU activations) use one
diverging map, blue for negative, white for zero, red for positive (:func:`diverging_cmap`);
activations (>= 0) a sequential one (``ACTIVATION_CMAP``). The small helpers every figure
module shares (stamping the weights caption, closing a figure in pyplot) are here too.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LinearSegmentedColormap, Normalize, TwoSlopeNorm

from ..core.provenance import stamp

# Colours by kind of layer (colour-blind safe: Okabe-Ito).
KIND_COLOURS = {
    "conv": "#0072B2",
    "pool": "#999999",
    "norm": "#CCCCCC",
    "block": "#E69F00",
    "head": "#009E73",
}



#: The toy model's three phases (superposition.PHASES), in order.
PHASE_COLOURS = ("#0072B2", "#999999", "#D55E00")  # Okabe-Ito: blue, grey, vermillion
ACTIVATION_CMAP = "magma"  # activations are >= 0 after the ReLU: a sequential map



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



def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` tensor in [0, 1] -> ``(H, W, 3)`` float array for ``imshow``."""
    if image.dim() == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one image (3, H, W), got {tuple(image.shape)}")
    return image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()



def finish(fig, model):
    """Stamp the weights caption (callers leave room at the bottom), detach from pyplot."""
    stamp(fig, model)
    plt.close(fig)
    return fig



def no_ticks(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)



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



def figure_png(fig) -> bytes:
    from io import BytesIO

    out = BytesIO()
    fig.canvas.print_figure(out, format="png", dpi=fig.dpi, bbox_inches="tight", facecolor=fig.get_facecolor())
    return out.getvalue()



def caption_and_close(fig, model, caption: str | None) -> None:
    """Foot of a figure: ``caption`` if given, else ``model``'s weights stamp; closed in pyplot."""
    if caption is not None:
        fig.text(0.5, 0.002, wrap(caption, fig.get_figwidth(), 8), ha="center", va="bottom", fontsize=8,
                 color="#555555")  # fmt: skip
    elif model is not None:
        stamp(fig, model)
    plt.close(fig)
