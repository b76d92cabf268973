"""Files the course fetches rather than ships: verified by hash, cached, or copied from a mirror.

Every third-party file the course shows (the Circuits articles' published figures and data, the
photo and activations Lucid computed, the class labels) is listed in ``data/registry.json`` with
its URL at a pinned commit and its SHA-256. :func:`fetch` returns a local, verified copy:

1. from the cache (``cache_dir()/published/<name>``) when its hash matches;
2. else from a **mirror**: every folder in ``$CIRCUITSCOPE_MIRROR`` (``os.pathsep``-separated)
   is searched for the file's mirror path (``distill/<repo>/<path>``, ``lucid_parity/<file>``,
   ``inception5h_labels.txt``), and also for that path without its first folder, so a mirror
   may be ``shared/data`` or ``shared/data/distill``;
3. else, unless ``$CIRCUITSCOPE_OFFLINE`` is set, downloaded from its URL.

The downloading, hashing and atomic writes are pooch's (the verified-download registry that
SciPy and scikit-image use); the mirror is a pooch *downloader*, so a mirrored copy is checked
by the same hash as a downloaded one. A file with the wrong hash is refused
(:class:`DataHashError`) and never left in the cache.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .progress import bar as progress_bar

ENV_MIRROR = "CIRCUITSCOPE_MIRROR"  # folders holding copies of the registry's files
ENV_CACHE = "CIRCUITSCOPE_CACHE"  # cache directory (the weights' too)
ENV_OFFLINE = "CIRCUITSCOPE_OFFLINE"  # "1": never use the network


class DataError(RuntimeError):
    """A registry file could not be had or could not be trusted."""


class DataUnavailableError(DataError):
    """Not cached, not in a mirror, and not downloadable (offline or the download failed)."""


class DataHashError(DataError):
    """The bytes are not those the registry lists (a changed, partial or wrong file)."""


@dataclass(frozen=True)
class Entry:
    """One registry file.

    Attributes:
        name: the registry's name, ``<source>/<path>`` (``"zoom-in/images/curves.png"``).
        url: the file at a pinned commit (or the archive holding it, see ``member``).
        sha256: hex SHA-256 of the file itself (of the member, for an archive member).
        mirror: the file's path inside a mirror folder.
        source: the article or release it comes from (a key of ``published.SOURCES``).
        member: for a file inside a zip archive at ``url``, its name in the archive.
    """

    name: str
    url: str
    sha256: str
    mirror: str
    source: str
    bytes: int = 0
    chapter: str = ""
    member: str | None = None


@lru_cache(maxsize=1)
def entries() -> dict[str, Entry]:
    """Every registry file by name."""
    text = resources.files("circuitscope.data").joinpath("registry.json").read_text()
    return {e["name"]: Entry(**e) for e in json.loads(text)}


def entry(name: str) -> Entry:
    """The registry entry ``name``; a ``KeyError`` that lists close names when it is unknown."""
    table = entries()
    if name not in table:
        import difflib

        close = difflib.get_close_matches(name, table, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"{name!r} is not in the course's data registry.{hint}")
    return table[name]


# -- where things are -----------------------------------------------------------------------
def cache_dir() -> Path:
    """``$CIRCUITSCOPE_CACHE``, else ``$XDG_CACHE_HOME/circuitscope``, else ``~/.cache/circuitscope``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "circuitscope"


def offline() -> bool:
    """True when ``$CIRCUITSCOPE_OFFLINE`` forbids network access."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes"}


def mirrors() -> list[Path]:
    """The folders of ``$CIRCUITSCOPE_MIRROR`` that exist, in order."""
    raw = os.environ.get(ENV_MIRROR, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p and Path(p).expanduser().is_dir()]


def mirror_copy(e: Entry) -> Path | None:
    """The first mirror file for ``e`` (not yet verified), or None."""
    rel = Path(e.mirror)
    tails = [rel, Path(*rel.parts[1:])] if len(rel.parts) > 1 else [rel]
    for folder in mirrors():
        for tail in tails:
            if (folder / tail).is_file():
                return folder / tail
    return None


def cached_path(name: str) -> Path:
    """Where :func:`fetch` keeps ``name``: ``cache_dir()/published/<name>``."""
    return cache_dir() / "published" / entry(name).name


# -- fetching --------------------------------------------------------------------------------
class _Downloader:
    """A pooch downloader: copy from a mirror if one has the file, else download (unless offline).

    pooch calls it with the URL and a temporary output path, then checks the result's hash, so
    a mirrored copy is held to the same hash as a download.
    """

    def __init__(self, e: Entry, progress: bool):
        self.entry, self.progress = e, progress

    def __call__(self, url: str, output_file, pooch_obj, check_only: bool = False):
        local = mirror_copy(self.entry)
        if check_only:
            return local is not None or not offline()
        if local is not None:
            shutil.copyfile(local, output_file)
            return None
        if offline():
            raise DataUnavailableError(_unavailable(self.entry, f"${ENV_OFFLINE} is set and no mirror has it"))
        import pooch

        if self.entry.member is None:
            return pooch.HTTPDownloader(progressbar=self.progress, timeout=60)(url, output_file, pooch_obj)
        # An archive member: download the archive next to the output, extract, drop the archive.
        archive = Path(str(output_file) + ".zip")
        try:
            pooch.HTTPDownloader(progressbar=self.progress, timeout=60)(url, str(archive), pooch_obj)
            with zipfile.ZipFile(archive) as zf, zf.open(self.entry.member) as src, open(output_file, "wb") as dst:
                shutil.copyfileobj(src, dst)
        finally:
            archive.unlink(missing_ok=True)
        return None


def fetch(name: str, progress: bool = False) -> Path:
    """A verified local copy of registry file ``name`` (see the module's docstring for the order).

    Raises:
        DataUnavailableError: it is in no cache or mirror, and cannot be downloaded.
        DataHashError: the copy found or downloaded does not have the listed SHA-256.
    """
    import pooch

    # pooch logs "Downloading data from <url>" even when the mirror downloader copies a local
    # file; the HTTP download shows its own progress bar, so its log adds nothing.
    pooch.get_logger().setLevel("WARNING")
    e = entry(name)
    dest = cached_path(name)
    try:
        path = pooch.retrieve(
            e.url,
            known_hash=f"sha256:{e.sha256}",
            fname=dest.name,
            path=dest.parent,
            downloader=_Downloader(e, progress),
            progressbar=progress,
        )
    except DataError as err:
        err.name = name  # which file: published.optional() shows the note for it
        raise
    except ValueError as err:  # pooch's hash mismatch (it has already removed the bad copy)
        if "hash" not in str(err).lower():
            raise
        where = mirror_copy(e) or e.url
        raise _named(name, DataHashError(
            f"{name}: the copy from {where} does not have the SHA-256 the course lists "
            f"({e.sha256}), so it was refused. Replace it with the original file from {e.url}."
        )) from err
    except OSError as err:  # network errors, HTTP errors and disk errors
        raise _named(name, DataUnavailableError(_unavailable(e, f"download failed: {err}"))) from err
    return Path(path)


def _named(name: str, err: DataError) -> DataError:
    """``err`` with the registry name of the file it is about (``err.name``)."""
    err.name = name
    return err


def available(name: str) -> bool:
    """True when :func:`fetch` would succeed without downloading (cached or mirrored, verified)."""
    try:
        from unittest import mock

        with mock.patch.dict(os.environ, {ENV_OFFLINE: "1"}):  # cached or mirrored only
            fetch(name)
        return True
    except DataError:
        return False


def fetch_all(names=None, progress: bool = True) -> dict[str, Path | DataError]:
    """Fetch many registry files (default: all); ``{name: path or the error}``, never raising."""
    results: dict[str, Path | DataError] = {}
    for name in progress_bar(list(names or entries()), desc="published data", unit="file", progress=progress):
        try:
            results[name] = fetch(name)
        except DataError as err:
            results[name] = err
    return results


def _unavailable(e: Entry, why: str) -> str:
    return (
        f"{e.name} could not be had ({why}). On a machine with internet access it is downloaded "
        f"from {e.url}; offline, put a copy of the course's data mirror in a folder and set "
        f"{ENV_MIRROR} to it (expected there: {e.mirror})."
    )
