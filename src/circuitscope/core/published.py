"""The Circuits articles' own results: figures and data published with them, from the real network.

The articles published renders, weights and tuning curves of the real InceptionV1 (CC BY 4.0).
This module fetches them through the verified registry (:mod:`circuitscope.core.registry`) and
reads them into plain arrays, so pages can show the article's result beside their own
reproduction, whatever weights the reproduction ran on:

* :func:`figure`: a published figure, shown with its credit line;
* :func:`published_render`: one unit's render, cut from a layer's sprite sheet by channel;
* :func:`radial_tuning`: a curve family's radial tuning curves (720 orientations each);
* :func:`families`: the "Overview of Early Vision" grouping of a layer's units into families;
* :func:`dog_cat`: a photo and the ``mixed4d`` activations Lucid computed for it.

Every display says where its content came from (:func:`credit`); a page built where a file
cannot be had shows a short note instead and goes on (:func:`show_unavailable`).
"""

from __future__ import annotations

import ast
import base64
import contextlib
import html
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

from . import registry
from .images import load_image
from .models import LAYER_CHANNELS
from .registry import DataError, DataUnavailableError
from .units import parse_unit

__all__ = [
    "SOURCES",
    "DataError",
    "DataUnavailableError",
    "LucidExample",
    "credit",
    "dog_cat",
    "families",
    "family_of",
    "figure",
    "optional",
    "preferred_orientations",
    "published_render",
    "radial_tuning",
    "render_grid",
]  # fmt: skip


@dataclass(frozen=True)
class Source:
    """An article (or release) that registry files come from, and how to credit it."""

    authors: str
    title: str
    venue: str
    year: int
    url: str
    license: str = "CC BY 4.0"

    def credit(self, adapted: bool = False, what: str = "Figure") -> str:
        verb = f"{what} adapted from" if adapted else f"{what} from"
        licence = f" ({self.license})" if self.license else ""
        return f'{verb} {self.authors}, "{self.title}", {self.venue}, {self.year}, {self.url}{licence}.'


SOURCES: dict[str, Source] = {
    "zoom-in": Source("Olah et al.", "Zoom In: An Introduction to Circuits", "Distill", 2020,
                      "https://distill.pub/2020/circuits/zoom-in/"),
    "early-vision": Source("Olah et al.", "An Overview of Early Vision in InceptionV1", "Distill", 2020,
                           "https://distill.pub/2020/circuits/early-vision/"),
    "curve-detectors": Source("Cammarata et al.", "Curve Detectors", "Distill", 2020,
                              "https://distill.pub/2020/circuits/curve-detectors/"),
    "curve-circuits": Source("Cammarata et al.", "Curve Circuits", "Distill", 2021,
                             "https://distill.pub/2020/circuits/curve-circuits/"),
    "equivariance": Source("Olah et al.", "Naturally Occurring Equivariance in Neural Networks",
                           "Distill", 2020, "https://distill.pub/2020/circuits/equivariance/"),
    "frequency-edges": Source("Schubert et al.", "High-Low Frequency Detectors", "Distill", 2021,
                              "https://distill.pub/2020/circuits/frequency-edges/"),
    "visualizing-weights": Source("Voss et al.", "Visualizing Weights", "Distill", 2021,
                                  "https://distill.pub/2020/circuits/visualizing-weights/"),
    "building-blocks": Source("Olah et al.", "The Building Blocks of Interpretability", "Distill", 2018,
                              "https://distill.pub/2018/building-blocks/"),
    "inception5h": Source("Google", "inception5h (the TensorFlow release of InceptionV1)", "TensorFlow",
                          2015, "https://storage.googleapis.com/download.tensorflow.org/models/inception5h.zip",
                          license="Apache 2.0"),
}  # fmt: skip


def credit(name: str, adapted: bool = False, what: str = "Figure") -> str:
    """The credit line for registry file ``name`` ("Figure from Olah et al., ... (CC BY 4.0).")."""
    return SOURCES[registry.entry(name).source].credit(adapted, what)


# -- showing a figure -------------------------------------------------------------------------
class PublishedFigure:
    """A published figure (or a note that it could not be had) for a notebook: HTML with a credit.

    Attributes:
        name: the registry name; ``html``: what the notebook shows; ``available``: False when
            the file could not be had and ``html`` is the note that says so.
    """

    def __init__(self, name: str, html_text: str, available: bool):
        self.name, self.html, self.available = name, html_text, available

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        state = "shown" if self.available else "unavailable"
        return f"<published figure {self.name} ({state})>"


def _data_uri(image, max_width: int) -> str:
    """A PIL image, at most ``max_width`` px wide, as a data URI (PNG when it has alpha, else JPEG)."""
    from PIL import Image

    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    buf = io.BytesIO()
    if image.mode in ("RGBA", "LA", "P"):
        image.save(buf, format="PNG", optimize=True)
        mime = "image/png"
    else:
        image.convert("RGB").save(buf, format="JPEG", quality=88)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"


def _figure_html(body: str, caption: str, credit_line: str) -> str:
    cap = f"{caption} " if caption else ""
    return (
        '<figure class="circuitscope-published">' + body + "<figcaption>"
        f'<span class="circuitscope-published-label">Published result (real InceptionV1).</span> {cap}'
        f'<span class="circuitscope-credit">{_linkify(html.escape(credit_line))}</span>'
        "</figcaption></figure>"
    )


def _linkify(text: str) -> str:
    import re

    return re.sub(r"(https?://[^\s,)]+[^\s,).])", r'<a href="\1">\1</a>', text)


def show_unavailable(name: str, err: Exception) -> PublishedFigure:
    """The note a page shows when a published file cannot be had: what is missing, where it lives."""
    e = registry.entries().get(name)
    source = SOURCES[e.source] if e else Source("", "the Circuits thread", "Distill", 2020,
                                                "https://distill.pub/2020/circuits/")  # fmt: skip
    text = (
        '<div class="admonition note circuitscope-unavailable"><p class="admonition-title">'
        "Published figure not available here</p><p>The article's figure "
        f"<code>{html.escape(name)}</code> could not be had on this machine "
        f"({html.escape(type(err).__name__)}). See it in "
        f'<a href="{source.url}">{html.escape(source.title)}</a>. '
        f"Set <code>{registry.ENV_MIRROR}</code> to a mirror of the course data, or build with "
        "internet access, to show it here.</p></div>"
    )
    return PublishedFigure(name, text, available=False)


def figure(name: str, caption: str = "", crop: tuple[int, int, int, int] | None = None,
           max_width: int = 1400) -> PublishedFigure:  # fmt: skip
    """A published figure with its credit line, ready to display in a notebook.

    Args:
        name: a registry name (PNG, JPEG or SVG), e.g. ``"zoom-in/images/curves.png"``.
        caption: what the figure shows, in the page's words (HTML allowed).
        crop: ``(left, top, right, bottom)`` in the file's pixels; the credit then says "adapted".
        max_width: raster figures wider than this are scaled down for the page.

    Returns a :class:`PublishedFigure`; when the file cannot be had, one whose HTML is the note
    of :func:`show_unavailable` (the page goes on).
    """
    try:
        path = registry.fetch(name)
    except DataError as err:
        return show_unavailable(name, err)
    if path.suffix == ".svg":
        svg = path.read_text(encoding="utf-8")
        svg = svg[svg.index("<svg"):]  # drop an XML prolog: the SVG goes inline in the page
        body = f'<div class="circuitscope-svg">{svg}</div>'
    else:
        from PIL import Image

        with Image.open(path) as im:
            image = im.crop(crop) if crop else im.copy()
        body = f'<img src="{_data_uri(image, max_width)}" alt="{html.escape(caption or name)}"/>'
    return PublishedFigure(name, _figure_html(body, caption, credit(name, adapted=crop is not None)), True)


@contextlib.contextmanager
def optional():
    """Run a block that uses published data; if a file cannot be had, show the note and go on.

    For a page built offline without a mirror: the block stops where the missing file was
    needed, the note of :func:`show_unavailable` says which file and where to see it, and the
    page's next cells still run::

        with published.optional():
            tunings = published.radial_tuning("mixed3b")
            ...
    """
    from IPython.display import display

    try:
        yield
    except DataError as err:
        display(show_unavailable(getattr(err, "name", None) or "?", err))


# -- renders of single units ------------------------------------------------------------------
#: Layers whose every channel has a published render, and the sprite sheet's number of columns.
SPRITE_COLUMNS = {"mixed3b": 21, "mixed4a": 22, "mixed4b": 22, "mixed4d": 22, "mixed5a": 28}
SPRITE_CELL = 110  # pixels per render in the sheets


def sprite_name(layer: str) -> str:
    """The registry name of ``layer``'s sprite sheet of channel renders."""
    if layer not in SPRITE_COLUMNS:
        raise KeyError(
            f"no published renders of {layer}: the articles published whole-layer sheets for "
            f"{', '.join(SPRITE_COLUMNS)} only"
        )
    return f"building-blocks/images/sprite_{layer}_channel_alpha.jpeg"


@lru_cache(maxsize=4)
def _sprite(layer: str) -> np.ndarray:
    from PIL import Image

    with Image.open(registry.fetch(sprite_name(layer))) as im:
        return np.asarray(im.convert("RGB"))


def published_render(unit: str) -> np.ndarray:
    """The article's render of one unit, cut from its layer's sprite sheet.

    Args:
        unit: ``"4b:111"`` or ``"mixed4b:111"`` (a layer of :data:`SPRITE_COLUMNS`).

    Returns ``(110, 110, 3)`` uint8 RGB. Raises ``KeyError`` for a layer without a sheet or a
    channel outside it, :class:`DataError` when the sheet cannot be had.
    """
    layer, channel = parse_unit(unit)
    sprite_name(layer)  # a clear KeyError for a layer without a sheet
    if not 0 <= channel < LAYER_CHANNELS[layer]:
        raise KeyError(f"{layer} has {LAYER_CHANNELS[layer]} channels; there is no channel {channel}")
    cols, cell = SPRITE_COLUMNS[layer], SPRITE_CELL
    y, x = cell * (channel // cols), cell * (channel % cols)
    return _sprite(layer)[y:y + cell, x:x + cell].copy()


def render_grid(units: list[str], caption: str = "", columns: int | None = None) -> PublishedFigure:
    """Published renders of ``units`` side by side, labelled by unit, with the credit line.

    When a sheet cannot be had, the note of :func:`show_unavailable` instead.
    """
    from PIL import Image

    try:
        cells = [published_render(u) for u in units]
    except DataError as err:
        return show_unavailable(sprite_name(parse_unit(units[0])[0]), err)
    columns = columns or len(units)
    items = []
    for unit, cell in zip(units, cells):
        uri = _data_uri(Image.fromarray(cell), SPRITE_CELL)
        items.append(f'<div class="circuitscope-render"><img src="{uri}" alt="{unit}"/>'
                     f"<div><code>{html.escape(unit)}</code></div></div>")  # fmt: skip
    body = (f'<div class="circuitscope-render-grid" style="grid-template-columns:repeat({columns}, '
            f'minmax(0, 110px))">' + "".join(items) + "</div>")  # fmt: skip
    # The credit is the same for every sheet (one article); name the first unit's.
    name = sprite_name(parse_unit(units[0])[0])
    return PublishedFigure(name, _figure_html(body, caption, credit(name, adapted=True)), True)


# -- tuning curves and families ----------------------------------------------------------------
#: Registry names of the radial tuning data, by layer (and by circuit edit for mixed3b).
RADIAL_DATA = {
    "conv2d2": "curve-detectors/data/curves-conv2d2.json",
    "mixed3a": "curve-detectors/data/curves-mixed3a.json",
    "mixed3b": "curve-detectors/radial/data.json",
    "mixed4a": "curve-detectors/data/curves-mixed4a.json",
    "mixed3b/early-curves-only": "curve-circuits/curves3a/noNegativeWeights/no-negative.json",
    "mixed3b/early-curves-positive": "curve-circuits/curves3a/noNegativeWeights/only-curves-no-negative.json",
}  # fmt: skip


def radial_tuning(layer: str = "mixed3b") -> dict[int, np.ndarray]:
    """A curve family's published radial tuning curves: ``{channel: (720,) float}``.

    Entry ``i`` is the unit's mean response to synthetic curves at orientation ``i / 2`` degrees
    ("Curve Detectors"). ``layer`` is a key of :data:`RADIAL_DATA`: ``"mixed3b"`` (the ten curve
    detectors), ``"mixed3a"``, ``"conv2d2"``, ``"mixed4a"``, or ``"mixed3b/early-curves-only"`` /
    ``"mixed3b/early-curves-positive"`` (the circuit edits of "Curve Circuits").
    """
    if layer not in RADIAL_DATA:
        raise KeyError(f"no published radial tuning for {layer!r}; there is for {', '.join(RADIAL_DATA)}")
    data = json.loads(registry.fetch(RADIAL_DATA[layer]).read_text())
    record = data[0] if isinstance(data, list) else data
    values = record.get("responsesByNeuron") or record["activations"]
    return {int(n): np.asarray(values[str(n)], dtype=np.float64) for n in record["neurons"]}


def orientations() -> np.ndarray:
    """The orientations, in degrees, of the 720 entries of a radial tuning curve: 0, 0.5, ... 359.5."""
    return np.arange(720) / 2.0


def preferred_orientations(layer: str = "mixed3b") -> dict[int, float]:
    """Each unit's preferred orientation in degrees (the peak of its published tuning curve)."""
    return {n: float(orientations()[np.argmax(v)]) for n, v in radial_tuning(layer).items()}


LAYER_DATA = ("conv2d0", "conv2d1", "conv2d2", "mixed3a", "mixed3b")


def families(layer: str) -> dict[str, list[int]]:
    """The "Overview of Early Vision" families of ``layer``: ``{family name: [channels]}``.

    The article grouped every unit of its five early layers (:data:`LAYER_DATA`) by hand; the
    groups partition the layer, in the article's display order.
    """
    if layer not in LAYER_DATA:
        raise KeyError(f"the article grouped {', '.join(LAYER_DATA)} only, not {layer!r}")
    # The file is a Python literal (trailing commas), not strict JSON.
    groups = ast.literal_eval(registry.fetch(f"early-vision/layer_data/{layer}.json").read_text())
    groups = sorted(groups, key=lambda g: -g.get("priority", 0))  # stable: ties keep file order
    return {g["name"]: [int(u) for u in g["units"]] for g in groups}


def family_of(unit: str) -> str:
    """The article's family of ``unit`` (``"3b:379"`` -> ``"Curves"``)."""
    layer, channel = parse_unit(unit)
    for name, units in families(layer).items():
        if channel in units:
            return name
    raise KeyError(f"{unit} is in no family of the article's {layer} data")


# -- activations the real network computed ------------------------------------------------------
class LucidExample(NamedTuple):
    """A photo and activations that Lucid computed for it with the real InceptionV1.

    Attributes:
        image: ``(3, 224, 224)`` float in [0, 1].
        acts: ``{layer: (C, H, W) float32}``, post-ReLU.
        weights_state: ``"published"``: the values were computed with the real weights,
            elsewhere (so figures made from them are stamped as the article's values).
        weights_source: the credit line.
    """

    image: torch.Tensor  # noqa: F821
    acts: dict
    weights_state: str
    weights_source: str

    @property
    def is_synthetic(self) -> bool:
        return False


LUCID_PHOTOS = ("dog_cat", "beer", "bowtie_guy", "chain", "flowers", "pig")


def dog_cat(photo: str = "dog_cat") -> LucidExample:
    """A "Building Blocks" photo and its ``mixed4d`` activations ``(528, 14, 14)`` from Lucid.

    ``photo`` is one of :data:`LUCID_PHOTOS`. Raises :class:`DataError` when the files cannot
    be had.
    """
    if photo not in LUCID_PHOTOS:
        raise KeyError(f"{photo!r} is not one of the published photos {LUCID_PHOTOS}")
    image = load_image(registry.fetch(f"building-blocks/examples/input_images/{photo}.jpeg"), size=None)
    nhwc = np.load(registry.fetch(f"building-blocks/data/{photo}_mixed4d_activations.npy"))
    mixed4d = torch.from_numpy(np.ascontiguousarray(nhwc[0].transpose(2, 0, 1), dtype=np.float32))
    source = credit(f"building-blocks/data/{photo}_mixed4d_activations.npy", what="Photo and activations")
    return LucidExample(image, {"mixed4d": mixed4d}, "published", source)


