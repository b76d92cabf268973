"""The ``circuitscope`` command: environment info, the weights and the published data.

    circuitscope info                      # device, profile, which weights load_inceptionv1() would use
    circuitscope weights download          # fetch and verify inception5h.pth into the cache
    circuitscope weights install FILE      # verify a manually downloaded file, copy it to the cache
    circuitscope weights verify FILE       # check a file's format, names, shapes, values and hash
    circuitscope data list                 # the registry's files and where each is (cache, mirror)
    circuitscope data fetch [NAME ...]     # fetch registry files (default: all), verified
    circuitscope gallery LAYER --out DIR   # every channel of a layer as PNGs + index.html (resumable)
    circuitscope gallery --all-layers --out DIR   # a whole-model Microscope (a static site, resumable)
    circuitscope dataset-examples FOLDER 4e:55 ...  # the images that excite units most
    circuitscope sae LAYER --images FOLDER --checkpoint FILE  # train a sparse autoencoder

The gallery, dataset-examples and sae commands spread their work over every process when
started by ``torchrun`` (see :mod:`circuitscope.core.distributed`).
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__
from ..core import registry
from ..core.device import get_device, profile
from ..core.models import weights as W
from .gallery import add_gallery_arguments, run_gallery

#: What ``info`` says for each weights state ``weights_plan()`` can give.
_PLAN_TEXT = {
    "real": "REAL: the published InceptionV1 (inception5h), hash verified",
    "unverified": "UNVERIFIED: a file with InceptionV1's names and shapes, not the published one",
    "refused": "REFUSED: a file that is not the published one; load_inceptionv1() will raise",
    "synthetic": "SYNTHETIC: the deterministic stand-in (no real weights here)",
}


def _info(_args) -> int:
    plan = W.weights_plan()
    print(f"circuitscope {__version__}")
    print(f"device:  {get_device()}    profile: {profile()}")
    print(f"cache:   {W.cache_dir()}")
    for var in (W.ENV_WEIGHTS, W.ENV_ALLOW_UNVERIFIED, W.ENV_OFFLINE):
        print(f"${var}: {os.environ.get(var) or '(not set)'}")
    print(f"weights: {_PLAN_TEXT[plan.state]}")
    if plan.path is not None:
        print(f"  file:  {plan.path}")
        print(f"  hash:  {plan.digest}")
    print(f"  why:   {plan.reason}")
    print(f"  identity: {plan.identity}")
    if plan.state == "synthetic" and not W.offline():
        print("  (run 'circuitscope weights download' to get the real weights)")
    _data_info()
    return 0


def _data_info() -> None:
    """The data mirror and how many registry files :func:`registry.fetch` can give offline."""
    mirrors = registry.mirrors()
    setting = os.environ.get(registry.ENV_MIRROR)
    missing = " (no such folder)" if setting and not mirrors else ""
    print(f"${registry.ENV_MIRROR}: {setting or '(not set)'}{missing}")
    names = list(registry.entries())
    have = sum(registry.available(n) for n in names)
    print(f"data:    {have} of {len(names)} published files available without downloading")


def _download(_args) -> int:
    path = W.fetch("inception5h.pth")
    print(f"verified: {path}")
    return 0


def _install(args) -> int:
    print(f"verified and installed: {W.copy_to_cache(args.file)}")
    return 0


def _verify(args) -> int:
    loaded = W.file_state_dict(args.file, allow_unverified=True)  # format errors still raise
    n = len(loaded.state_dict)
    if loaded.state == "real":
        print(f"ok: {args.file} is the published file ({n} tensors, hash verified)")
        return 0
    print(f"UNVERIFIED: {args.file} has InceptionV1's {n} tensor names and shapes and finite values, "
          f"but it is not the published file: {loaded.source}. load_inceptionv1() refuses it unless "
          f"allow_unverified=True or {W.ENV_ALLOW_UNVERIFIED}=1.")  # fmt: skip
    return 1


def _data_list(_args) -> int:
    """One line per registry file: where it is now (cached, mirror, or to download) and its size."""
    cached = mirrored = 0
    for name, e in registry.entries().items():
        if registry.cached_path(name).is_file():
            where, cached = "cached", cached + 1
        elif registry.mirror_copy(e) is not None:
            where, mirrored = "mirror", mirrored + 1
        else:
            where = "-"
        print(f"{where:7} {e.bytes / 1e6:7.2f} MB  {name}")
    total = len(registry.entries())
    print(f"{total} files: {cached} cached, {mirrored} in a mirror (not yet verified), "
          f"{total - cached - mirrored} to download")  # fmt: skip
    return 0


def _data_fetch(args) -> int:
    for name in args.names:
        registry.entry(name)  # an unknown name fails before anything is fetched
    results = registry.fetch_all(args.names or None, progress=not args.no_progress)
    failed = {n: r for n, r in results.items() if isinstance(r, Exception)}
    for name, err in failed.items():
        print(f"failed: {name}: {err}", file=sys.stderr)
    print(f"{len(results) - len(failed)} of {len(results)} files fetched and verified into "
          f"{registry.cache_dir() / 'published'}; {len(failed)} failed")  # fmt: skip
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="circuitscope", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="device, profile, weights and data status").set_defaults(run=_info)
    weights = sub.add_parser("weights", help="get or check the InceptionV1 weights")
    wsub = weights.add_subparsers(dest="action", required=True)
    wsub.add_parser("download", help="download and verify inception5h.pth").set_defaults(run=_download)
    for name, fn, text in [("install", _install, "verify FILE and copy it into the cache"),
                           ("verify", _verify, "check FILE's format, names, values and hash")]:  # fmt: skip
        p = wsub.add_parser(name, help=text)
        p.add_argument("file")
        p.set_defaults(run=fn)
    data = sub.add_parser("data", help="the articles' published files (the data registry)")
    dsub = data.add_subparsers(dest="action", required=True)
    dsub.add_parser("list", help="every registry file and where it is").set_defaults(run=_data_list)
    fetch = dsub.add_parser("fetch", help="fetch registry files (default: all), verified by hash")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="registry names (default: all)")
    fetch.add_argument("--no-progress", action="store_true")
    fetch.set_defaults(run=_data_fetch)
    gallery = sub.add_parser(
        "gallery", help="render every channel of a layer into a browsable folder (a local Microscope)"
    )
    add_gallery_arguments(gallery).set_defaults(run=run_gallery)
    from . import examples_command, sae_command  # torch and the methods only for these commands

    examples = sub.add_parser("dataset-examples", help="the images of a folder that excite units most")
    examples_command.add_arguments(examples).set_defaults(run=examples_command.run)
    sae_parser = sub.add_parser("sae", help="train a sparse autoencoder on a layer's activations (resumable)")
    sae_command.add_arguments(sae_parser).set_defaults(run=sae_command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (W.WeightsError, registry.DataError, FileNotFoundError, ValueError, KeyError) as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else err  # no repr quotes
        print(f"error: {text}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
