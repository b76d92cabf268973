"""A local "Microscope": every channel of a layer, rendered in batches, browsable in a page.

``render_gallery(model, "mixed4a", out_dir="gallery/mixed4a")`` writes ``channel_0000.png``,
``channel_0001.png``, ... (one feature visualization per channel, "Feature Visualization",
Olah et al. 2017; many channels per batch, one forward pass per step) and an ``index.html``
that shows them as a grid with their channel numbers. It is resumable: channels whose PNG
exists are skipped, so an interrupted run continues where it stopped. Every PNG's metadata and
the page carry :func:`circuitscope.provenance.weights_caption`; made with synthetic weights each
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
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from .device import profile
from .hooks import check_layer_names
from .optvis import channel, render
from .progress import bar as progress_bar
from .provenance import SYNTHETIC_LABEL, weights_caption, weights_state

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
    """``"0-63,100,200-203"`` (inclusive ranges) or a list -> sorted unique channels.

    ``None`` means every channel ``0 .. n_channels - 1``; each must lie in that range.
    """
    if spec is None:
        return list(range(n_channels))
    if isinstance(spec, str):
        chosen: set[int] = set()
        for part in spec.replace(" ", "").split(","):
            if not part:
                continue
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not m:
                raise ValueError(f"cannot read channels {spec!r}: use e.g. '0-63' or '3,7,100-110'")
            lo, hi = int(m[1]), int(m[2] if m[2] is not None else m[1])
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
    path.write_text(json.dumps(meta, indent=2) + "\n")


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
        channels: ``"0-63,100"``, a list, or None for every channel.
        size, steps: per image (default: the profile's ``render_size`` and ``render_steps``).
        batch_size: channels optimised together (default: the profile's ``batch_size``).
        seed: batch ``k`` (first channel ``c``) uses seed ``seed + c``.
        render_kwargs: passed on to :func:`circuitscope.optvis.render` (``lr``, ``autocast``, ...).

    Channels whose PNG exists are skipped (resumable); ``index.html`` is rewritten after each
    batch. Each PNG is ``(S, S)`` (``S >= 128``, small renders enlarged), plus a band reading
    "synthetic weights" (red) or "unverified weights" (orange) for those weights states.
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
    _check_meta(out, meta)
    todo = [c for c in chosen if not (out / png_name(c)).exists()]
    bar = progress_bar(total=len(chosen), initial=len(chosen) - len(todo), desc=f"gallery {layer}",
                       progress=progress, unit="ch")  # fmt: skip
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            images = render(model, [channel(layer, c) for c in batch], size=size, steps=steps,
                            seed=seed + batch[0], progress=progress, **render_kwargs)  # fmt: skip
            for c, image in zip(batch, images):
                save_png(image, out / png_name(c), model)
            bar.update(len(batch))
            write_index(out, model, meta)
    finally:
        bar.close()
    return write_index(out, model, meta)


def write_index(out_dir: Path, model, meta: dict) -> Path:
    """Write ``index.html``: every ``channel_*.png`` in ``out_dir`` as a grid (self-contained)."""
    out_dir = Path(out_dir)
    found = sorted(int(m[1]) for p in out_dir.iterdir() if (m := PNG_PATTERN.fullmatch(p.name)))
    layer = html.escape(meta["layer"])
    caption = html.escape(weights_caption(model))
    cells = "\n".join(
        f'<figure id="c{c}" data-ch="{c}"><a href="{png_name(c)}"><img src="{png_name(c)}" '
        f'loading="lazy" alt="{layer} channel {c}"></a><figcaption>{layer}:{c}</figcaption></figure>'
        for c in found
    )
    banner = _banner(weights_state(model), caption, html.escape(str(meta["weights"])))
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
    path.write_text(page)
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


# -- command line ---------------------------------------------------------------------------
def add_gallery_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``circuitscope gallery`` (shared by the CLI and :func:`gallery_main`)."""
    parser.add_argument("layer", help="layer name, e.g. mixed4a or mixed4a_pre_relu")
    parser.add_argument("--channels", default=None, help="e.g. 0-63 or 3,7,100-110 (default: all)")
    parser.add_argument("--out", required=True, help="output folder (resumable)")
    parser.add_argument("--size", type=int, default=None, help="pixels (default: profile's)")
    parser.add_argument("--steps", type=int, default=None, help="steps (default: profile's)")
    parser.add_argument("--batch-size", type=int, default=None, help="channels per batch")
    parser.add_argument("--weights", default="auto", help="auto, lucid, synthetic or a .pth path")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="accept a weight file that is not the published inception5h.pth")  # fmt: skip
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: best available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPUs)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def run_gallery(args: argparse.Namespace) -> int:
    """Run ``circuitscope gallery`` for parsed ``args``."""
    from .models import load_inceptionv1

    model = load_inceptionv1(args.weights, device=args.device, progress=not args.no_progress,
                             allow_unverified=args.allow_unverified)  # fmt: skip
    state = weights_state(model)
    if state in BANDS:
        print(f"note: {weights_caption(model)}; every image is marked '{BANDS[state][0]}'")
    extra = {"autocast": torch.bfloat16} if args.bf16 else {}
    index = render_gallery(model, args.layer, args.channels, args.out, args.size, args.steps, args.batch_size,
                           seed=args.seed, progress=not args.no_progress, lr=args.lr, **extra)  # fmt: skip
    print(f"gallery: {index}")
    return 0


def gallery_main(argv: list[str] | None = None) -> int:
    """``python -m circuitscope.gallery mixed3a --channels 0-15 --out gallery/mixed3a``."""
    parser = argparse.ArgumentParser(prog="circuitscope gallery", description=__doc__.split("\n")[0])
    return run_gallery(add_gallery_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(gallery_main())
