"""The options every model-running command shares (which weights, the device, progress bars),
and loading the model with them, once per process under ``torchrun``."""

from __future__ import annotations

import argparse

from ..core import distributed
from ..core.models import load_inceptionv1


def add_model_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--weights``, ``--allow-unverified``, ``--device`` and ``--no-progress``."""
    parser.add_argument("--weights", default="auto", help="auto, lucid, synthetic or a .pth path")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="accept a weight file that is not the published inception5h.pth")  # fmt: skip
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: best available)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def start(args: argparse.Namespace):
    """Join the ``torchrun`` group (if any) and load InceptionV1 as ``args`` say, on this process's
    device; ``(model, main)``, ``main`` true on the process that prints and writes."""
    distributed.init()
    main = distributed.is_main()
    model = load_inceptionv1(args.weights, device=distributed.device(args.device),
                             progress=main and not args.no_progress, allow_unverified=args.allow_unverified)  # fmt: skip
    return model, main
