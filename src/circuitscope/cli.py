"""The ``circuitscope`` command: environment info and the weights.

    circuitscope info                      # device, profile, where the weights would come from
    circuitscope weights download          # fetch and verify inception5h.pth into the cache
    circuitscope weights install FILE      # verify a manually downloaded file, copy it to the cache
    circuitscope weights verify FILE       # check a file's hash, names and shapes
    circuitscope gallery LAYER --out DIR   # every channel of a layer as PNGs + index.html (resumable)
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .device import get_device, profile
from .gallery import add_gallery_arguments, run_gallery
from .models import weights as W


def _info(_args) -> int:
    env = os.environ.get(W.ENV_WEIGHTS)
    cached = [n for n in W.DATA_HUB if (W.cache_dir() / n).exists()]
    print(f"circuitscope {__version__}")
    print(f"device:  {get_device()}    profile: {profile()}")
    print(f"cache:   {W.cache_dir()}  ({', '.join(cached) or 'no weights cached'})")
    print(f"${W.ENV_WEIGHTS}: {env or '(not set)'}")
    if env or cached:
        print("weights: real InceptionV1 weights will be used (verified when loaded)")
    elif W.offline():
        print(f"weights: SYNTHETIC (no local copy and ${W.ENV_OFFLINE} forbids downloading)")
    else:
        print("weights: will be downloaded on first use of load_inceptionv1()")
    return 0


def _download(_args) -> int:
    path = W.fetch("inception5h.pth")
    print(f"verified: {path}")
    return 0


def _install(args) -> int:
    print(f"verified and installed: {W.copy_to_cache(args.file)}")
    return 0


def _verify(args) -> int:
    remote = W.DATA_HUB["inception5h.zip" if args.file.endswith(".zip") else "inception5h.pth"]
    remote.verify(args.file)
    state = W.read_verified(remote.filename, W.Path(args.file))
    print(f"ok: {args.file} is {remote.filename} ({len(state)} tensors, hash verified)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="circuitscope", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="device, profile and weights status").set_defaults(run=_info)
    weights = sub.add_parser("weights", help="get or check the InceptionV1 weights")
    wsub = weights.add_subparsers(dest="action", required=True)
    wsub.add_parser("download", help="download and verify inception5h.pth").set_defaults(run=_download)
    for name, fn, text in [("install", _install, "verify FILE and copy it into the cache"),
                           ("verify", _verify, "check FILE's hash, names and shapes")]:  # fmt: skip
        p = wsub.add_parser(name, help=text)
        p.add_argument("file")
        p.set_defaults(run=fn)
    gallery = sub.add_parser(
        "gallery", help="render every channel of a layer into a browsable folder (a local Microscope)"
    )
    add_gallery_arguments(gallery).set_defaults(run=run_gallery)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (W.WeightsError, FileNotFoundError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
