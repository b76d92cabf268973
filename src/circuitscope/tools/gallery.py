"""A local "Microscope": every channel of a layer, rendered in batches, browsable in a page.

``render_gallery(model, "mixed4a", out_dir="gallery/mixed4a")`` writes ``channel_0000.png``,
``channel_0001.png``, ... (one feature visualization per channel, "Feature Visualization",
Olah et al. 2017; many channels per batch, one forward pass per step) and an ``index.html``
that shows them as a grid with their channel numbers. It is resumable: channels whose PNG
exists are skipped, so an interrupted run continues where it stopped. Every PNG's metadata and
the page carry :func:`circuitscope.core.provenance.weights_caption`; made with synthetic weights each
PNG also shows a red "synthetic weights" band, with unverified weights an orange "unverified
weights" band.

From the shell::

    circuitscope gallery mixed4a --channels 0-63 --out gallery/mixed4a
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from ..core import distributed, published
from ..core.device import profile
from ..core.hooks import check_layer_names
from ..core.progress import bar as progress_bar
from ..core.provenance import SYNTHETIC_LABEL, weights_caption, weights_state
from ..core.registry import DataError
from ..methods.dataset_examples import top_examples
from ..methods.optvis import Objective, RenderOptions, channel, per_element, render
from .model_options import add_model_arguments, start

MIN_DISPLAY_SIZE = 128  # small CPU renders are enlarged (nearest neighbour) so they can be seen
META_FILE = "gallery.json"
PNG_PATTERN = re.compile(r"channel_(\d+)\.png$")
#: The band under each image, by weights state: its text and colour (none for real weights).
BANDS = {"synthetic": (SYNTHETIC_LABEL, (176, 0, 32)), "unverified": ("unverified weights", (179, 92, 0)),
         "planted": ("planted model", (31, 95, 139))}


def png_name(ch: int) -> str:
    """``channel_0042.png`` for channel 42."""
    return f"channel_{ch:04d}.png"


def parse_channels(spec: str | Iterable[int] | None, n_channels: int) -> list[int]:
    """``"0-63,100,200-203"`` (inclusive ranges), ``"0:64"`` (slices, end excluded) or a list
    -> sorted unique channels.

    ``None`` means every channel ``0 .. n_channels - 1``; each must lie in that range.
    """
    if spec is None:
        return list(range(n_channels))
    if isinstance(spec, str):
        chosen: set[int] = set()
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            m = re.fullmatch(r"(\d+)(?:([-:])(\d+))?", part)
            if not m:
                raise ValueError(f"cannot read channels {spec!r}: use e.g. '0-63', '0:64' or '3,7,100-110'")
            lo, hi = int(m[1]), int(m[3] if m[3] is not None else m[1])
            if m[2] == ":":  # a Python slice: the end is excluded
                hi -= 1
            if hi < lo:
                raise ValueError(f"empty channel range {part!r}")
            chosen.update(range(lo, hi + 1))
    else:
        chosen = {int(c) for c in spec}
    bad = [c for c in chosen if not 0 <= c < n_channels]
    if bad:
        raise ValueError(f"channels {sorted(bad)[:5]} are outside 0..{n_channels - 1}")
    return sorted(chosen)


def to_pil(image: torch.Tensor, state: str = "real", min_size: int = MIN_DISPLAY_SIZE) -> Image.Image:
    """``image: (3, H, W)`` in [0, 1] -> a PIL image, enlarged to at least ``min_size`` px by an
    integer factor (nearest neighbour), with the band of :data:`BANDS` below for a ``state``
    that has one ("synthetic": red, "unverified": orange, "planted": blue; "real", "published": none)."""
    array = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round()
    pil = Image.fromarray(array.astype(np.uint8), "RGB")
    factor = max(1, -(-min_size // max(pil.size)))
    if factor > 1:
        pil = pil.resize((pil.width * factor, pil.height * factor), Image.NEAREST)
    if state not in BANDS:
        return pil
    text, colour = BANDS[state]
    band = max(16, pil.width // 8)
    out = Image.new("RGB", (pil.width, pil.height + band), colour)
    out.paste(pil, (0, 0))
    draw = ImageDraw.Draw(out)
    font = _font(text, pil.width - 4, band - 3)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    xy = ((pil.width - (right - left)) / 2 - left, pil.height + (band - (bottom - top)) / 2 - top)
    draw.text(xy, text, fill=(255, 255, 255), font=font)
    return out


def _font_file() -> str | None:
    """DejaVu Sans as bundled with matplotlib (a dependency), or None."""
    try:
        from matplotlib import font_manager

        return font_manager.findfont("DejaVu Sans", fallback_to_default=True)
    except (ImportError, OSError, RuntimeError, ValueError):  # pragma: no cover - no matplotlib
        return None


def _font(text: str, max_width: int, max_height: int):
    """The largest bold sans font size whose rendering of ``text`` fits the box."""
    path = _font_file()
    for size in range(max_height, 5, -1):
        try:
            font = ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)
        except (OSError, TypeError):  # no FreeType, or Pillow < 10.1: one bitmap size
            return ImageFont.load_default()
        left, _, right, _ = font.getbbox(text)
        if right - left <= max_width:
            return font
    return font


def save_png(image: torch.Tensor, path: Path, model) -> None:
    """Write one channel's image atomically (a partial file never looks finished).

    The PNG's text metadata says which weights made it (``Comment``: the weights caption,
    ``Source``: ``model.weights_source``), so a copied file keeps its provenance.
    """
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", weights_caption(model))
    info.add_text("Source", str(getattr(model, "weights_source", "unknown")))
    tmp = path.with_suffix(".tmp.png")
    to_pil(image, weights_state(model)).save(tmp, pnginfo=info)
    os.replace(tmp, path)


def _check_meta(out_dir: Path, meta: dict) -> None:
    path = out_dir / META_FILE
    if path.exists():
        old = json.loads(path.read_text())
        keys = ("layer", "size", "steps", "weights")
        diff = {k: (old.get(k), meta[k]) for k in keys if old.get(k) != meta[k]}
        if diff:
            detail = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            raise ValueError(
                f"{out_dir} holds a different gallery ({detail}). Use another output folder, "
                "or delete it to start again."
            )
        meta = {**old, **meta}
    _write_text(path, json.dumps(meta, indent=2) + "\n")


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically: a reader (or a browser) never sees half a page."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _on_main(fn, *args):
    """Run ``fn(*args)`` on rank 0 only; an error there is raised on every rank (as a
    ValueError), so that no rank is left waiting for the others."""
    error = None
    if distributed.is_main():
        try:
            fn(*args)
        except ValueError as err:
            error = str(err)
    error = distributed.broadcast_object(error)
    if error is not None:
        raise ValueError(error)


def _todo(out: Path, chosen: list[int], done) -> list[int]:
    """The channels of ``chosen`` not yet ``done(out, c)``, as rank 0 sees them, on every rank.

    Listed by one rank and broadcast: a rank that looked later would see files another rank
    had just written and shard the work differently.
    """
    todo = [c for c in chosen if not done(out, c)] if distributed.is_main() else None
    return distributed.broadcast_object(todo)


def _rank_desc(text: str) -> str:
    world = distributed.world_size()
    return text if world == 1 else f"{text} (rank {distributed.rank()} of {world})"


def render_gallery(
    model,
    layer: str,
    channels: str | Sequence[int] | None = None,
    out_dir: str | os.PathLike = "gallery",
    size: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **render_kwargs,
) -> Path:
    """Render ``channels`` of ``layer`` (default: all) into ``out_dir``; return ``index.html``.

    Args:
        model: an :class:`~circuitscope.InceptionV1`.
        layer: any layer name, e.g. ``"mixed4a"`` or ``"mixed4a_pre_relu"``.
        channels: ``"0-63,100"``, ``"0:64"``, a list, or None for every channel.
        size, steps: per image (default: the profile's ``render_size`` and ``render_steps``).
        batch_size: channels optimised together (default: the profile's ``batch_size``).
        seed: batch ``k`` (first channel ``c``) uses seed ``seed + c``.
        render_kwargs: passed on to :func:`circuitscope.methods.optvis.render` (``lr``, ``options``, ...).

    Channels whose PNG exists are skipped (resumable); ``index.html`` is rewritten after each
    batch. Each PNG is ``(S, S)`` (``S >= 128``, small renders enlarged), plus a band reading
    "synthetic weights" (red) or "unverified weights" (orange) for those weights states.

    Under ``torchrun`` (:mod:`circuitscope.core.distributed` initialised) the channels still to do
    are shared round robin between the ranks, each rendering its own batches into the same
    folder; rank 0 writes ``gallery.json`` and ``index.html`` and shows the progress bar.
    Which channels share a batch then differs from one process, and with it each batch's
    random start, so the images differ (as they do for another ``batch_size``).
    """
    (layer,) = check_layer_names(model, [layer])
    prof = profile(device=model.device)
    size = prof.render_size if size is None else int(size)
    steps = prof.render_steps if steps is None else int(steps)
    batch_size = prof.batch_size if batch_size is None else int(batch_size)
    chosen = parse_channels(channels, model.layer_channels[layer])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = weights_state(model)
    meta = {"layer": layer, "size": size, "steps": steps,
            "weights": getattr(model, "weights_source", "unknown"),
            "weights_state": state, "synthetic": state == "synthetic"}  # fmt: skip
    _on_main(_check_meta, out, meta)
    todo = _todo(out, chosen, lambda o, c: (o / png_name(c)).exists())
    mine = distributed.shard(todo)
    main = distributed.is_main()
    bar = progress_bar(total=len(chosen) - len(todo) + len(mine), initial=len(chosen) - len(todo),
                       desc=_rank_desc(f"gallery {layer}"), progress=progress and main, unit="ch")  # fmt: skip
    try:
        for start in range(0, len(mine), batch_size):
            batch = mine[start : start + batch_size]
            images = render(model, [channel(layer, c) for c in batch], size=size, steps=steps,
                            seed=seed + batch[0], progress=progress and main, **render_kwargs)  # fmt: skip
            for c, image in zip(batch, images):
                save_png(image, out / png_name(c), model)
            bar.update(len(batch))
            if main:
                write_index(out, model, meta)
    finally:
        bar.close()
    distributed.barrier()
    return write_index(out, model, meta) if main else out / "index.html"


def write_index(out_dir: Path, model, meta: dict) -> Path:
    """Write ``index.html``: every ``channel_*.png`` in ``out_dir`` as a grid (self-contained)."""
    out_dir = Path(out_dir)
    found = sorted(int(m[1]) for p in out_dir.iterdir() if (m := PNG_PATTERN.fullmatch(p.name)))
    layer = html.escape(meta["layer"])
    caption = html.escape(weights_caption(model))
    # Each image links to its channel's page where there is one (a Microscope), else to itself.
    links = {c: unit_page_name(c) if (out_dir / unit_page_name(c)).exists() else png_name(c) for c in found}
    cells = "\n".join(
        f'<figure id="c{c}" data-ch="{c}"><a href="{links[c]}"><img src="{png_name(c)}" '
        f'loading="lazy" alt="{layer} channel {c}"></a><figcaption>{layer}:{c}</figcaption></figure>'
        for c in found
    )
    banner = _banner(weights_state(model), caption, html.escape(str(meta["weights"])))
    if (out_dir.parent / MICROSCOPE_FILE).exists():
        banner = '<nav><a href="../index.html">&uarr; all layers</a></nav>\n' + banner
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{layer}: feature visualizations</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
.synthetic {{ border-left: 4px solid #b00020; background: #fff4f4; padding: .5em 1em; }}
.unverified {{ border-left: 4px solid #b35c00; background: #fff8ef; padding: .5em 1em; }}
.real {{ color: #555; }}
#grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }}
figure {{ margin: 0; text-align: center; font-size: 13px; }}
img {{ width: 100%; image-rendering: pixelated; }}
input {{ font-size: 1em; width: 8em; }}
</style></head><body>
<h1>{layer}</h1>
{banner}
<p>{len(found)} channels; each image maximises one channel's mean activation
({meta["size"]} px, {meta["steps"]} steps, Fourier parameterization, Lucid's transforms;
"Feature Visualization", Olah et al. 2017). Made by <code>circuitscope gallery</code>.</p>
<p><label>Channel: <input id="q" type="search" placeholder="e.g. 42"></label></p>
<div id="grid">
{cells}
</div>
<script>
document.getElementById("q").addEventListener("input", function (e) {{
  var q = e.target.value.trim();
  document.querySelectorAll("#grid figure").forEach(function (f) {{
    f.style.display = (!q || f.dataset.ch === q) ? "" : "none";
  }});
}});
</script>
</body></html>
"""
    path = out_dir / "index.html"
    _write_text(path, page)
    return path


def _banner(state: str, caption: str, source: str) -> str:
    """The index page's line on the weights (``caption`` and ``source`` already HTML-escaped)."""
    if state == "synthetic":
        return (f'<p class="synthetic"><b>{caption}.</b> These images show how the method works, not '
                "what InceptionV1 learned.</p>")  # fmt: skip
    if state == "unverified":
        return (f'<p class="unverified"><b>{caption}.</b> Made with {source}; they may differ from '
                "what the published InceptionV1 learned.</p>")  # fmt: skip
    return f'<p class="real">{caption}: {source}</p>'


# -- the whole model: a Microscope --------------------------------------------------------------
#: The layers ``circuitscope gallery --all-layers`` renders: every mixed (inception) block.
MIXED_LAYERS = ("mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e",
                "mixed5a", "mixed5b")  # fmt: skip
MICROSCOPE_FILE = "microscope.json"
DIVERSITY_DIR, EXAMPLES_DIR, PUBLISHED_DIR = "diversity", "examples", "published"
EXAMPLE_DISPLAY_SIZE = 160  # dataset patches are shrunk to at most this (receptive fields reach 400 px)


def unit_page_name(ch: int) -> str:
    """``channel_0042.html``: the page of channel 42, beside its PNG."""
    return f"channel_{ch:04d}.html"


def diversity_name(ch: int, i: int) -> str:
    """``channel_0042_1.png``: channel 42's diversity render number 1 (in ``diversity/``)."""
    return f"channel_{ch:04d}_{i}.png"


class GroupDiversity(Objective):
    """:func:`~circuitscope.methods.optvis.diversity` within consecutive groups of ``n`` images.

    For a batch of ``G * n`` images, image ``i`` of group ``g`` gets the sum of the
    cosine similarities of its Gram matrix to those of the other images of group ``g`` only, so
    that one batch can ask several channels at once for ``n`` different images each
    ("Feature Visualization", section "Diversity") without comparing different channels'
    images. Values: ``(G * n,)`` in [0, n - 1]; subtract it.
    """

    elementwise = False

    def __init__(self, layer: str, n: int):
        self.layer, self.layers, self.n = layer, (layer,), int(n)

    def __call__(self, acts) -> torch.Tensor:
        value = acts[self.layer]
        total, c = value.shape[:2]
        if total % self.n:
            raise ValueError(f"a batch of {total} images is not made of groups of {self.n}")
        flat = value.reshape(total, c, -1)
        grams = torch.nn.functional.normalize((flat @ flat.transpose(1, 2)).reshape(total, -1), dim=1, eps=1e-10)
        grams = grams.reshape(total // self.n, self.n, -1)
        sims = grams @ grams.transpose(1, 2)  # (G, n, n)
        return (sims.sum(-1) - sims.diagonal(dim1=1, dim2=2)).reshape(total)

    @property
    def description(self) -> str:
        return f"diversity({self.layer!r}, groups of {self.n})"


def render_diversity(
    model,
    layer: str,
    channels: str | Sequence[int] | None = None,
    out_dir: str | os.PathLike = "gallery",
    n: int = 4,
    weight: float = 1e2,
    size: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **render_kwargs,
) -> Path:
    """``n`` different images per channel: ``channel(layer, c) - weight * diversity``, into
    ``out_dir/diversity/channel_CCCC_I.png`` (``I`` in ``0 .. n-1``); returns that folder.

    ``batch_size`` counts images (default: the profile's), so ``batch_size // n`` channels
    are optimised together, each in its own group of ``n`` (:class:`GroupDiversity`).
    Resumable (a channel whose last image exists is skipped) and sharded over the ranks of a
    ``torchrun`` like :func:`render_gallery`. Images are stamped as :func:`save_png` does.
    """
    (layer,) = check_layer_names(model, [layer])
    if n < 2:
        raise ValueError(f"diversity needs at least 2 images per channel, got n={n}")
    prof = profile(device=model.device)
    batch_size = prof.batch_size if batch_size is None else int(batch_size)
    per_call = max(1, batch_size // n)
    chosen = parse_channels(channels, model.layer_channels[layer])
    folder = Path(out_dir) / DIVERSITY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    todo = _todo(folder, chosen, lambda o, c: (o / diversity_name(c, n - 1)).exists())
    mine = distributed.shard(todo)
    main = distributed.is_main()
    bar = progress_bar(total=len(mine), desc=_rank_desc(f"diversity {layer}"), progress=progress and main,
                       unit="ch")  # fmt: skip
    try:
        for start in range(0, len(mine), per_call):
            batch = mine[start : start + per_call]
            objective = per_element([channel(layer, c) for c in batch for _ in range(n)])
            objective = objective - weight * GroupDiversity(layer, n)
            images = render(model, objective, batch=len(batch) * n, size=size, steps=steps,
                            seed=seed + 1_000_003 + batch[0], progress=progress and main,
                            **render_kwargs)  # fmt: skip
            for j, c in enumerate(batch):
                for i in range(n):  # the last one last: its presence marks the channel done
                    save_png(images[j * n + i], folder / diversity_name(c, i), model)
            bar.update(len(batch))
    finally:
        bar.close()
    distributed.barrier()
    return folder


def save_examples(model, layer: str, channels: Sequence[int], out_dir: str | os.PathLike, source,
                  k: int = 6, image_size: int | None = None, batch_size: int | None = None,
                  progress: bool = True) -> Path:  # fmt: skip
    """The top ``k`` dataset examples of each channel (:func:`circuitscope.top_examples`, one
    pass over ``source`` for the whole layer, sharded over ranks under ``torchrun``), saved
    as receptive-field patches ``out_dir/examples/channel_CCCC_R.png`` (rank ``R``, best
    first, at most 160 px) and ``channel_CCCC.json`` (names, scores, positions). Channels
    whose JSON exists are skipped. Returns the folder."""
    folder = Path(out_dir) / EXAMPLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    todo = _todo(folder, list(channels), lambda o, c: (o / f"channel_{c:04d}.json").exists())
    if not todo:
        return folder
    main = distributed.is_main()
    found = top_examples(model, source, [(layer, c) for c in todo], k=k, size=image_size,
                         batch_size=batch_size, progress=progress and main)  # fmt: skip
    if main:
        for c, top in zip(todo, found):
            patches = top.patches() if len(top) else []
            for r, patch in enumerate(patches):
                pil = to_pil(patch, "real", min_size=0)
                pil.thumbnail((EXAMPLE_DISPLAY_SIZE, EXAMPLE_DISPLAY_SIZE))
                tmp = folder / f".channel_{c:04d}_{r}.tmp.png"
                pil.save(tmp)
                os.replace(tmp, folder / f"channel_{c:04d}_{r}.png")
            record = {"unit": top.unit, "by": top.by, "names": top.names, "scores": top.scores.tolist(),
                      "positions": top.positions.tolist(), "labels": top.label_names,
                      "weights": top.weights_source}  # fmt: skip
            _write_text(folder / f"channel_{c:04d}.json", json.dumps(record, indent=1) + "\n")
    distributed.barrier()
    return folder


def save_published(layer: str, channels: Sequence[int], out_dir: str | os.PathLike) -> str | None:
    """Copy the article's render of each channel (:func:`circuitscope.core.published.published_render`)
    into ``out_dir/published/channel_CCCC.png``. Returns the credit line, or None when the
    articles published no renders of ``layer`` or the data cannot be had (a warning says why:
    offline, no mirror, a wrong hash)."""
    if layer not in published.SPRITE_COLUMNS:
        return None
    folder = Path(out_dir) / PUBLISHED_DIR
    try:
        for c in channels:
            path = folder / png_name(c)
            if not path.exists():
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(published.published_render(f"{layer}:{c}")).save(path)
        return published.credit(published.sprite_name(layer), adapted=True)
    except DataError as err:
        warnings.warn(f"the article's renders of {layer} are not shown: {err}", stacklevel=2)
        return None


_PAGE_STYLE = """body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1100px; }
.synthetic { border-left: 4px solid #b00020; background: #fff4f4; padding: .5em 1em; }
.unverified { border-left: 4px solid #b35c00; background: #fff8ef; padding: .5em 1em; }
.real { color: #555; }
.row { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
figure { margin: 0; text-align: center; font-size: 13px; }
img { image-rendering: pixelated; }
.main img { width: 256px; } .small img { width: 128px; }
.credit { color: #555; font-size: 12px; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: right; }
td:first-child, th:first-child { text-align: left; }"""


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>\n{_PAGE_STYLE}\n</style></head><body>\n"
            f"{body}\n</body></html>\n")  # fmt: skip


def _weights_banner(model, meta: dict) -> str:
    return _banner(weights_state(model), html.escape(weights_caption(model)), html.escape(str(meta["weights"])))


def write_unit_page(out_dir: Path, model, meta: dict, ch: int, channels: Sequence[int],
                    published_credit: str | None = None) -> Path:  # fmt: skip
    """Write ``out_dir/channel_CCCC.html``: channel ``ch``'s render, its diversity renders, its
    dataset examples and the article's render, whichever exist in ``out_dir`` (self-contained:
    relative links only). ``channels``: the layer's rendered channels, for previous / next."""
    out_dir = Path(out_dir)
    layer = html.escape(meta["layer"])
    unit = f"{layer}:{ch}"
    i = list(channels).index(ch) if ch in channels else -1
    nav = ['<a href="index.html">&uarr; all of ' + layer + "</a>"]
    if i > 0:
        nav.append(f'<a href="{unit_page_name(channels[i - 1])}">&larr; {channels[i - 1]}</a>')
    if 0 <= i < len(channels) - 1:
        nav.append(f'<a href="{unit_page_name(channels[i + 1])}">{channels[i + 1]} &rarr;</a>')
    parts = [f"<nav>{' '.join(nav)}</nav>", f"<h1>{unit}</h1>", _weights_banner(model, meta)]
    figures = []
    if (out_dir / png_name(ch)).exists():
        figures.append(f'<figure class="main"><img src="{png_name(ch)}" alt="{unit}">'
                       f"<figcaption>feature visualization ({meta['size']} px, {meta['steps']} steps)"
                       "</figcaption></figure>")  # fmt: skip
    pub = out_dir / PUBLISHED_DIR / png_name(ch)
    if pub.exists():
        credit = html.escape(published_credit or "From the Circuits articles (CC BY 4.0).")
        figures.append(f'<figure class="main"><img src="{PUBLISHED_DIR}/{png_name(ch)}" alt="published {unit}">'
                       f'<figcaption>the article\'s render (the real InceptionV1)<br><span class="credit">'
                       f"{credit}</span></figcaption></figure>")  # fmt: skip
    parts.append(f'<div class="row">{"".join(figures)}</div>')
    div = sorted(out_dir.glob(f"{DIVERSITY_DIR}/channel_{ch:04d}_*.png"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    if div:
        cells = "".join(f'<figure class="small"><img src="{DIVERSITY_DIR}/{p.name}" alt="diversity {unit}">'
                        "</figure>" for p in div)  # fmt: skip
        parts.append(f'<h2>Diversity</h2><p>{len(div)} images optimised together, each pushed away from the '
                     'others ("Feature Visualization", section "Diversity").</p>'
                     f'<div class="row">{cells}</div>')  # fmt: skip
    record = out_dir / EXAMPLES_DIR / f"channel_{ch:04d}.json"
    if record.exists():
        ex = json.loads(record.read_text())
        cells = "".join(
            f'<figure class="small"><img src="{EXAMPLES_DIR}/channel_{ch:04d}_{r}.png" alt="{html.escape(name)}">'
            f"<figcaption>{html.escape(name)}<br>{score:.3g}</figcaption></figure>"
            for r, (name, score) in enumerate(zip(ex["names"], ex["scores"]))
        )
        parts.append(f"<h2>Dataset examples</h2><p>The receptive-field patches of the {len(ex['names'])} "
                     f"images where {unit} fires most (by {ex['by']}), with its largest activation.</p>"
                     f'<div class="row">{cells}</div>')  # fmt: skip
    path = out_dir / unit_page_name(ch)
    _write_text(path, _page(f"{unit}", "\n".join(parts)))
    return path


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_microscope_index(out_dir: Path, model) -> Path:
    """Write ``out_dir/index.html``: one row per layer of ``microscope.json`` with its channels,
    a strip of renders, and the time spent on it (all runs together)."""
    out_dir = Path(out_dir)
    record = _read_json(out_dir / MICROSCOPE_FILE)
    rows = []
    for layer, info in record.get("layers", {}).items():
        folder = out_dir / layer
        found = sorted(int(m[1]) for p in folder.iterdir() if (m := PNG_PATTERN.fullmatch(p.name))) \
            if folder.is_dir() else []  # fmt: skip
        strip = "".join(f'<img src="{layer}/{png_name(c)}" width="48" alt="{layer}:{c}" loading="lazy">'
                        for c in found[:12])  # fmt: skip
        rows.append(f'<tr><td><a href="{layer}/index.html">{layer}</a></td><td>{len(found)} of '
                    f"{model.layer_channels.get(layer, '?')}</td><td>{info.get('seconds', 0):.1f} s</td>"
                    f'<td style="text-align:left">{strip}</td></tr>')  # fmt: skip
    meta = {"weights": getattr(model, "weights_source", "unknown")}
    body = (f"<h1>InceptionV1, layer by layer</h1>\n{_weights_banner(model, meta)}\n"
            f"<p>Every channel's feature visualization ({record.get('size')} px, {record.get('steps')} "
            "steps), with diversity renders, dataset examples and the article's own render where "
            "there are some. Made by <code>circuitscope gallery --all-layers</code>.</p>\n"
            "<table><tr><th>layer</th><th>channels</th><th>time</th><th></th></tr>\n"
            + "\n".join(rows) + "\n</table>")  # fmt: skip
    path = out_dir / "index.html"
    _write_text(path, _page("InceptionV1 Microscope", body))
    return path


def render_microscope(
    model,
    out_dir: str | os.PathLike,
    layers: Sequence[str] | None = None,
    channels: str | Sequence[int] | None = None,
    size: int | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    diversity: int = 4,
    diversity_weight: float = 1e2,
    examples=None,
    k: int = 6,
    image_size: int | None = None,
    published: bool = True,
    seed: int = 0,
    progress: bool = True,
    **render_kwargs,
) -> Path:
    """A local Microscope: every channel of every layer in ``layers`` (default: the mixed
    layers, :data:`MIXED_LAYERS`), browsable as a static site; returns ``out_dir/index.html``.

    ``out_dir/index.html`` lists the layers; ``out_dir/<layer>/index.html`` is
    :func:`render_gallery`'s grid of the layer, each image linking to the channel's page
    ``out_dir/<layer>/channel_CCCC.html`` (:func:`write_unit_page`) with:

    * its feature visualization (``size`` px, ``steps`` steps: the profile's by default);
    * ``diversity`` renders (:func:`render_diversity`; 0 for none);
    * when ``examples`` (a folder of images, a tensor or a dataset) is given, its top ``k``
      dataset examples (:func:`save_examples`, images of ``image_size`` px);
    * with ``published``, the article's render of the real network where the articles
      published one (mixed3b, 4a, 4b, 4d, 5a; :func:`save_published`).

    ``channels`` picks the same channels of every layer (default: all). Resumable: every piece
    already on disk is skipped. Under ``torchrun`` the channels are sharded over the ranks.
    ``out_dir/microscope.json`` records the settings and the seconds spent on each layer (over
    all runs); :func:`timing_summary` formats them.
    """
    layers = check_layer_names(model, list(layers or MIXED_LAYERS))
    prof = profile(device=model.device)
    size = prof.render_size if size is None else int(size)
    steps = prof.render_steps if steps is None else int(steps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    main = distributed.is_main()
    record_path = out / MICROSCOPE_FILE
    record = _read_json(record_path) if main else {}
    record.update({"size": size, "steps": steps, "diversity": diversity,
                   "weights": getattr(model, "weights_source", "unknown"), "weights_state": weights_state(model)})
    record.setdefault("layers", {})
    if main:
        for layer in layers:
            record["layers"].setdefault(layer, {"seconds": 0.0})
        _write_text(record_path, json.dumps(record, indent=2) + "\n")  # before the pages: they link up to it
    distributed.barrier()
    outer = progress_bar(layers, desc="microscope", unit="layer", progress=progress and main)
    for layer in outer:
        start = time.perf_counter()
        chosen = parse_channels(channels, model.layer_channels[layer])
        folder = out / layer
        render_gallery(model, layer, chosen, folder, size, steps, batch_size, seed=seed, progress=progress,
                       **render_kwargs)  # fmt: skip
        if diversity:
            render_diversity(model, layer, chosen, folder, diversity, diversity_weight, size, steps, batch_size,
                             seed=seed, progress=progress, **render_kwargs)  # fmt: skip
        if examples is not None:
            save_examples(model, layer, chosen, folder, examples, k, image_size, progress=progress)
        if main:
            credit = save_published(layer, chosen, folder) if published else None
            meta = _read_json(folder / META_FILE)
            done = sorted(int(m[1]) for p in folder.iterdir() if (m := PNG_PATTERN.fullmatch(p.name)))
            for c in done:
                write_unit_page(folder, model, meta, c, done, credit)
            write_index(folder, model, meta)
            seconds = time.perf_counter() - start
            entry = record["layers"][layer]
            entry["seconds"] = float(entry.get("seconds", 0.0)) + seconds
            entry["last_run_seconds"] = seconds
            entry["channels"] = len(done)
            _write_text(record_path, json.dumps(record, indent=2) + "\n")
            write_microscope_index(out, model)
        distributed.barrier()
    return out / "index.html"


def timing_summary(out_dir: str | os.PathLike) -> str:
    """A table of the seconds spent per layer (this run's and all runs') from ``microscope.json``."""
    record = _read_json(Path(out_dir) / MICROSCOPE_FILE)
    lines = [f"{'layer':10s} {'channels':>8s} {'this run':>10s} {'all runs':>10s}"]
    total = last = 0.0
    for layer, info in record.get("layers", {}).items():
        lines.append(f"{layer:10s} {info.get('channels', 0):8d} {info.get('last_run_seconds', 0):9.1f}s "
                     f"{info.get('seconds', 0):9.1f}s")  # fmt: skip
        total += info.get("seconds", 0)
        last += info.get("last_run_seconds", 0)
    lines.append(f"{'total':10s} {'':8s} {last:9.1f}s {total:9.1f}s")
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------
def add_gallery_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``circuitscope gallery`` (shared by the CLI and :func:`gallery_main`)."""
    parser.add_argument("layer", nargs="?", default=None,
                        help="layer name, e.g. mixed4a or mixed4a_pre_relu (or --all-layers / --layers)")  # fmt: skip
    parser.add_argument("--all-layers", action="store_true",
                        help="a whole-model Microscope: every mixed layer, with diversity renders, "
                             "dataset examples (--examples) and the article's renders, as a static site")  # fmt: skip
    parser.add_argument("--layers", default=None, help="a Microscope of these layers, e.g. mixed3a,mixed4a")
    parser.add_argument("--channels", default=None, help="e.g. 0-63, 0:64 or 3,7,100-110 (default: all)")
    parser.add_argument("--out", required=True, help="output folder (resumable)")
    parser.add_argument("--size", type=int, default=None, help="pixels (default: profile's)")
    parser.add_argument("--steps", type=int, default=None, help="steps (default: profile's)")
    parser.add_argument("--batch-size", type=int, default=None, help="channels per batch")
    parser.add_argument("--diversity", type=int, default=4,
                        help="Microscope: diversity renders per channel (0: none)")  # fmt: skip
    parser.add_argument("--diversity-weight", type=float, default=1e2)
    parser.add_argument("--examples", default=None, help="Microscope: a folder of images for dataset examples")
    parser.add_argument("--k", type=int, default=6, help="Microscope: dataset examples per channel")
    parser.add_argument("--image-size", type=int, default=None, help="dataset images' size (default 224)")
    parser.add_argument("--no-published", action="store_true", help="Microscope: without the article's renders")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPUs)")
    return add_model_arguments(parser)


def run_gallery(args: argparse.Namespace) -> int:
    """Run ``circuitscope gallery`` for parsed ``args`` (spread over the processes of a
    ``torchrun``, when started by one)."""
    microscope = args.all_layers or args.layers is not None
    if microscope == (args.layer is not None):
        raise ValueError("give either one LAYER, or --all-layers / --layers for a whole-model Microscope")
    model, main = start(args)
    state = weights_state(model)
    if state in BANDS and main:
        print(f"note: {weights_caption(model)}; every image is marked '{BANDS[state][0]}'")
    extra = {"options": RenderOptions(autocast=torch.bfloat16)} if args.bf16 else {}
    if microscope:
        layers = args.layers.split(",") if args.layers else None
        index = render_microscope(model, args.out, layers, args.channels, args.size, args.steps, args.batch_size,
                                  diversity=args.diversity, diversity_weight=args.diversity_weight,
                                  examples=args.examples, k=args.k, image_size=args.image_size,
                                  published=not args.no_published, seed=args.seed, progress=not args.no_progress,
                                  lr=args.lr, **extra)  # fmt: skip
        if main:
            print(timing_summary(args.out))
    else:
        index = render_gallery(model, args.layer, args.channels, args.out, args.size, args.steps, args.batch_size,
                               seed=args.seed, progress=not args.no_progress, lr=args.lr, **extra)  # fmt: skip
    if main:
        print(f"gallery: {index}")
    distributed.shutdown()
    return 0


def gallery_main(argv: list[str] | None = None) -> int:
    """``python -m circuitscope.tools.gallery mixed3a --channels 0-15 --out gallery/mixed3a``."""
    parser = argparse.ArgumentParser(prog="circuitscope gallery", description=__doc__.split("\n")[0])
    return run_gallery(add_gallery_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(gallery_main())
