"""Where InceptionV1's weights come from: download, verify, cache, check, load.

A ``DATA_HUB`` table names each remote file with its URL and hash (the d2l way). Files are
downloaded once into :func:`cache_dir`, verified by hash before anything reads them, and every
failure says which check failed and what to do about it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping

import torch
from tqdm.auto import tqdm

ENV_WEIGHTS = "CIRCUITSCOPE_WEIGHTS"  # path to inception5h.pth (or inception5h.zip)
ENV_CACHE = "CIRCUITSCOPE_CACHE"  # cache directory
ENV_OFFLINE = "CIRCUITSCOPE_OFFLINE"  # "1": never try the network


@dataclass(frozen=True)
class Remote:
    """A file the library can download: its URL and the hash that identifies its bytes."""

    filename: str
    url: str
    git_blob_sha1: str | None = None
    sha256: str | None = None

    def verify(self, path: Path) -> None:
        """Raise :class:`WeightsHashError` unless ``path`` has this file's hash."""
        if self.git_blob_sha1 is not None:
            got, want, kind = git_blob_sha1(path), self.git_blob_sha1, "git blob SHA-1"
        else:
            got, want, kind = sha256_file(path), self.sha256, "SHA-256"
        if got != want:
            raise WeightsHashError(
                f"{path} is not the expected {self.filename}: its {kind} is {got}, expected "
                f"{want}. The file is incomplete, corrupted or a different file. Delete it and "
                f"download it again from {self.url}"
            )


DATA_HUB: dict[str, Remote] = {
    "inception5h.pth": Remote(
        "inception5h.pth",
        "https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth",
        git_blob_sha1="119f77db85c8352960933e025312b507d9a96ed7",
    ),
    # The original TensorFlow release; converted without TensorFlow (models/graphdef.py).
    "inception5h.zip": Remote(
        "inception5h.zip",
        "https://storage.googleapis.com/download.tensorflow.org/models/inception5h.zip",
        sha256="d13569f6a98159de37e92e9c8ec4dae8f674fbf475f69fe6199b514f756d4364",
    ),
}


class WeightsError(RuntimeError):
    """Base class: the weights could not be had or could not be trusted."""


class WeightsUnavailableError(WeightsError):
    """No local copy, and the download failed (offline, blocked, server error)."""


class WeightsHashError(WeightsError):
    """The bytes are not those of the known file."""


class WeightsCorruptError(WeightsError):
    """The file is not a readable PyTorch weight file."""


class WeightsTruncatedError(WeightsCorruptError):
    """The file ends early (an interrupted download or copy)."""


class WeightsMismatchError(WeightsError):
    """Tensor names or shapes differ from inception5h's."""


# -- hashes -------------------------------------------------------------------------------
def _chunks(path: Path, size: int = 1 << 20):
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The object id ``git hash-object`` gives a file: ``sha1(b"blob <len>\\0" + bytes)``."""
    path = Path(path)
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    for chunk in _chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    for chunk in _chunks(Path(path)):
        digest.update(chunk)
    return digest.hexdigest()


# -- cache and download -------------------------------------------------------------------
def cache_dir() -> Path:
    """``$CIRCUITSCOPE_CACHE``, else ``$XDG_CACHE_HOME/circuitscope``, else ``~/.cache/circuitscope``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "circuitscope"


def offline() -> bool:
    """True when ``$CIRCUITSCOPE_OFFLINE`` forbids network access."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes"}


def download(url: str, dest: Path, progress: bool = True, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically (a partial file never takes ``dest``'s name)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                      disable=not progress) as bar:  # fmt: skip
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def fetch(name: str, progress: bool = True) -> Path:
    """A verified local copy of ``DATA_HUB[name]``: from the cache, else downloaded.

    A cached file that fails verification is set aside (``*.bad``) and downloaded again.
    """
    remote = DATA_HUB[name]
    path = cache_dir() / remote.filename
    if path.exists():
        try:
            remote.verify(path)
            return path
        except WeightsHashError:
            warnings.warn(f"cached {path} failed verification; downloading it again", stacklevel=2)
            os.replace(path, path.with_suffix(path.suffix + ".bad"))
    if offline():
        raise WeightsUnavailableError(_manual_steps(remote, f"${ENV_OFFLINE} is set"))
    try:
        download(remote.url, path, progress=progress)
    except OSError as err:  # URLError, HTTPError, timeouts and disk errors are all OSErrors
        raise WeightsUnavailableError(_manual_steps(remote, f"download failed: {err}")) from err
    try:
        remote.verify(path)
    except WeightsHashError:
        path.unlink()  # never leave an unverified file where the next call would trust it
        raise
    return path


def _manual_steps(remote: Remote, why: str) -> str:
    return (
        f"Could not get the InceptionV1 weights ({why}).\n"
        f"To use the real weights, on a machine with internet access download\n"
        f"    {DATA_HUB['inception5h.pth'].url}\n"
        f"and either put it at {cache_dir() / 'inception5h.pth'} or set "
        f"{ENV_WEIGHTS}=/path/to/inception5h.pth.\n"
        f"(Also accepted: the original {DATA_HUB['inception5h.zip'].url}.)\n"
        f"To go on without them, use load_inceptionv1(weights='synthetic')."
    )


# -- reading and checking a state dict ---------------------------------------------------
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of ``inception5h.pth`` (116 tensors)."""
    text = resources.files("circuitscope.data").joinpath("inception5h_state_dict.json").read_text()
    return {t["name"]: tuple(t["shape"]) for t in json.loads(text)["tensors"]}


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a PyTorch weight file safely (``weights_only``), telling truncation from corruption."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":  # the zip-based format of torch.save since 1.6
        if not zipfile.is_zipfile(path):
            raise WeightsTruncatedError(
                f"{path} is truncated: it starts like a PyTorch weight file but its end is "
                "missing (an interrupted download or copy). Delete it and download it again."
            )
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
        if bad is not None:
            raise WeightsCorruptError(
                f"{path} is corrupted: the checksum of its member {bad!r} does not match. "
                "Delete it and download it again."
            )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for unreadable files
        kind = WeightsTruncatedError if _looks_truncated(err) else WeightsCorruptError
        raise kind(
            f"{path} could not be read as a PyTorch weight file ({type(err).__name__}: {err}). "
            "Delete it and download it again; if you made it yourself, save it with "
            "torch.save(model.state_dict(), path)."
        ) from err
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsCorruptError(
            f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of names to "
            "tensors); save one with torch.save(model.state_dict(), path)."
        )
    return dict(obj)


def _looks_truncated(err: Exception) -> bool:
    text = str(err).lower()
    return any(s in text for s in ("ran out of input", "eof", "unexpected end", "truncated"))


def check_state_dict(state: Mapping[str, torch.Tensor], source: str = "the weights") -> None:
    """Raise :class:`WeightsMismatchError` unless names and shapes equal inception5h's."""
    want = expected_shapes()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    wrong = [f"{k}: {tuple(state[k].shape)}, expected {want[k]}"
             for k in want if k in state and tuple(state[k].shape) != want[k]]  # fmt: skip
    if not (missing or extra or wrong):
        return

    def listing(title: str, items: list[str]) -> str:
        more = f"\n    ... and {len(items) - 8} more" if len(items) > 8 else ""
        return f"\n  {title} ({len(items)}):\n    " + "\n    ".join(items[:8]) + more

    raise WeightsMismatchError(
        f"{source} do not match InceptionV1 (inception5h):"
        + (listing("missing tensors", missing) if missing else "")
        + (listing("unexpected tensors", extra) if extra else "")
        + (listing("wrong shapes", wrong) if wrong else "")
        + "\nUse the inception5h.pth file (see circuitscope.models.weights.DATA_HUB); a file "
        "from another InceptionV1 port (torchvision's GoogLeNet, captum's renamed copy) uses "
        "other names and is not this model."
    )


# -- the sources "lucid" draws from ------------------------------------------------------
def lucid_state_dict(progress: bool = True) -> tuple[dict[str, torch.Tensor], str]:
    """The real weights and a description of their source.

    Order: ``$CIRCUITSCOPE_WEIGHTS``; a cached ``inception5h.pth``; a cached
    ``inception5h.zip``; a download of the ``.pth``; a download of the ``.zip``. Every file is
    verified by hash before it is read.
    """
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"${ENV_WEIGHTS} points to {path}, which is not a file.")
        name = "inception5h.zip" if path.suffix == ".zip" else "inception5h.pth"
        DATA_HUB[name].verify(path)
        return read_verified(name, path), f"{path} (from ${ENV_WEIGHTS}, hash verified)"
    cached = [n for n in ("inception5h.pth", "inception5h.zip") if (cache_dir() / n).exists()]
    errors = []
    for name in cached + [n for n in ("inception5h.pth", "inception5h.zip") if n not in cached]:
        try:
            path = fetch(name, progress=progress)
        except WeightsUnavailableError as err:
            errors.append(err)
            continue
        return read_verified(name, path), f"{path} (hash verified)"
    raise errors[0]


def read_verified(name: str, path: Path) -> dict[str, torch.Tensor]:
    if name == "inception5h.zip":
        from .graphdef import state_dict_from_inception5h_zip

        try:
            state = state_dict_from_inception5h_zip(
                path, expected_sha256=DATA_HUB[name].sha256, spec=expected_shapes()
            )
        except ValueError as err:  # the converter's own checks: say which file failed
            raise WeightsCorruptError(f"{path} could not be converted: {err}") from err
    else:
        state = read_state_dict(path)
    check_state_dict(state, str(path))
    return state


def file_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """A user-given weight file: read and checked; a warning when its hash is not the known one."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no weight file at {path}")
    if path.suffix == ".zip":  # the original TensorFlow release, verified by SHA-256
        return read_verified("inception5h.zip", path), f"{path} (converted from the original graph)"
    digest = git_blob_sha1(path)
    if digest != DATA_HUB["inception5h.pth"].git_blob_sha1:
        warnings.warn(
            f"{path} is not byte-identical to the published inception5h.pth (hash "
            f"{digest}); loading it anyway because its tensors have the right "
            "names and shapes. Results may differ from the papers.",
            stacklevel=3,
        )
        source = f"{path} (unverified file)"
    else:
        source = f"{path} (hash verified)"
    state = read_state_dict(path)
    check_state_dict(state, str(path))
    return state, source


def copy_to_cache(path: str | os.PathLike) -> Path:
    """Verify a manually downloaded ``inception5h.pth`` and put it where ``"lucid"`` looks."""
    path = Path(path)
    DATA_HUB["inception5h.pth"].verify(path)
    dest = cache_dir() / "inception5h.pth"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return dest
