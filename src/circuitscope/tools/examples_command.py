"""``circuitscope dataset-examples``: the images of a folder that excite units most, written as
PNG grids and a JSON summary per unit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core import distributed
from ..methods.dataset_examples import TopExamples, top_examples
from .model_options import add_model_arguments, start

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """The arguments of ``circuitscope dataset-examples``."""
    parser.add_argument("source", help="a folder of images (ImageFolder conventions)")
    parser.add_argument("units", nargs="+", help='units such as 4e:55 or mixed3a:10')
    parser.add_argument("--k", type=int, default=9, help="examples per unit")
    parser.add_argument("--by", choices=("max", "mean"), default="max")
    parser.add_argument("--pre-relu", action="store_true", help="rank by the value before the ReLU")
    parser.add_argument("--size", type=int, default=None, help="image size (default 224)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per forward pass")
    parser.add_argument("--out", default=None, help="write each unit's patches (PNG) and a JSON here")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")
    return add_model_arguments(parser)


def run(args) -> int:
    """Run ``circuitscope dataset-examples`` (under ``torchrun``: images sharded over the ranks,
    the result identical to one process's; rank 0 prints and writes)."""
    model, main = start(args)
    found = top_examples(model, args.source, list(args.units), k=args.k, by=args.by, layer_pre_relu=args.pre_relu,
                         batch_size=args.batch_size, size=args.size, cache=not args.no_cache,
                         progress=not args.no_progress)  # fmt: skip
    if main:
        for top in found:
            print(top)
            if args.out:
                _write_unit(top, Path(args.out))
        if args.out:
            print(f"written to {args.out}")
    distributed.shutdown()
    return 0


def _write_unit(top: TopExamples, out: Path) -> None:
    """``<unit>_<rank>.png`` patches and ``<unit>.json`` (names, scores, positions, weights)."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    stem = top.unit.replace(":", "_")
    if len(top):
        for r, patch in enumerate(top.patches()):
            pixels = (patch.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(pixels).save(out / f"{stem}_{r}.png")
    record = {"unit": top.unit, "by": top.by, "names": top.names, "indices": top.indices.tolist(),
              "scores": top.scores.tolist(), "positions": top.positions.tolist(), "labels": top.label_names,
              "weights": top.weights_source, "weights_state": top.weights_state}  # fmt: skip
    (out / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
