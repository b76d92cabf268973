"""Where InceptionV1's weights come from: download, verify, cache, check, load.

A ``DATA_HUB`` table names each remote file with its URL and hash (the d2l way). Files are
downloaded once (by pooch) into :func:`cache_dir`, verified by hash before anything reads
them, and every failure says which check failed and what to do about it.

A loaded file has one of two states (see :mod:`circuitscope.core.provenance`): ``"real"`` when its
bytes are the published file's, ``"unverified"`` when it has InceptionV1's tensor names and
shapes but other bytes. Unverified files are refused unless the caller accepts them
(``allow_unverified=True`` or ``$CIRCUITSCOPE_ALLOW_UNVERIFIED=1``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from .. import registry

ENV_WEIGHTS = "CIRCUITSCOPE_WEIGHTS"  # path to inception5h.pth (or inception5h.zip)
ENV_CACHE = registry.ENV_CACHE  # cache directory (one definition: the registry's)
ENV_OFFLINE = registry.ENV_OFFLINE  # "1": never try the network
ENV_ALLOW_UNVERIFIED = "CIRCUITSCOPE_ALLOW_UNVERIFIED"  # "1": accept right-format files of other bytes


@dataclass(frozen=True)
class Remote:
    """A file the library can download: its URL and the hash that identifies its bytes."""

    filename: str
    url: str
    git_blob_sha1: str | None = None
    sha256: str | None = None

    @property
    def hash_kind(self) -> str:
        return "git blob SHA-1" if self.git_blob_sha1 is not None else "SHA-256"

    @property
    def expected(self) -> str:
        return self.git_blob_sha1 if self.git_blob_sha1 is not None else self.sha256

    def digest(self, path: Path) -> str:
        """``path``'s hash of the kind this file is known by."""
        return git_blob_sha1(path) if self.git_blob_sha1 is not None else sha256_file(path)

    def verify(self, path: Path) -> None:
        """Raise :class:`WeightsHashError` unless ``path`` has this file's hash."""
        got = self.digest(path)
        if got != self.expected:
            raise WeightsHashError(
                f"{path} is not the expected {self.filename}: its {self.hash_kind} is {got}, expected "
                f"{self.expected}. The file is incomplete, corrupted or a different file. Delete it "
                f"and download it again from {self.url}"
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


class WeightsNonFiniteError(WeightsCorruptError):
    """A tensor holds NaN or infinite values (a broken conversion or a diverged training run)."""


class WeightsMismatchError(WeightsError):
    """Tensor names or shapes differ from inception5h's."""


@dataclass(frozen=True)
class LoadedWeights:
    """A checked state dict and what it is.

    Attributes:
        state_dict: name -> tensor, exactly inception5h's names and shapes, all finite.
        source: a short human-readable account of the file (path, hash).
        state: ``"real"`` (the published bytes) or ``"unverified"`` (other bytes, accepted).
    """

    state_dict: dict
    source: str
    state: str


def allow_unverified_from_env() -> bool:
    """True when ``$CIRCUITSCOPE_ALLOW_UNVERIFIED`` accepts files of unknown hash."""
    return os.environ.get(ENV_ALLOW_UNVERIFIED, "").strip().lower() in {"1", "true", "yes"}


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
    """Where downloads are kept: :func:`circuitscope.core.registry.cache_dir` (``$CIRCUITSCOPE_CACHE``, ...)."""
    return registry.cache_dir()


def offline() -> bool:
    """True when ``$CIRCUITSCOPE_OFFLINE`` forbids network access (see :func:`registry.offline`)."""
    return registry.offline()


def fetch(name: str, progress: bool = True) -> Path:
    """A verified local copy of ``DATA_HUB[name]``: from the cache, else downloaded (by pooch).

    A cached file that fails verification is set aside (``*.bad``) and downloaded again. A
    downloaded file that fails is deleted: nothing unverified ever takes the cached name.
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
        raise WeightsUnavailableError(_manual_steps(f"${ENV_OFFLINE} is set"))
    _download(remote, path, progress)
    return path


def _download(remote: Remote, path: Path, progress: bool) -> None:
    """Download ``remote`` to ``path`` with pooch, verified; raise a WeightsError on failure.

    pooch checks a SHA-256 itself. The ``.pth`` is known only by its git blob SHA-1, so it is
    downloaded under a temporary name without a pooch hash, checked here, then renamed.
    """
    import pooch

    pooch.get_logger().setLevel("WARNING")  # its "use this hash" hint is not for our users
    part = path.with_name(path.name + ".download")
    known = f"sha256:{remote.sha256}" if remote.sha256 else None
    part.unlink(missing_ok=True)  # pooch would trust a leftover file when no hash is given
    try:
        pooch.retrieve(remote.url, known_hash=known, fname=part.name, path=path.parent, progressbar=progress,
                       downloader=pooch.HTTPDownloader(progressbar=progress, timeout=60))  # fmt: skip
    except ValueError as err:  # pooch's SHA-256 mismatch: it has already deleted the download
        raise WeightsHashError(f"the download of {remote.url} is not the expected {remote.filename} "
                               f"({err}). Download it again, or get it by hand (see 'circuitscope "
                               "weights install').") from err  # fmt: skip
    except OSError as err:  # requests' errors (connection, HTTP status, timeouts) are OSErrors
        part.unlink(missing_ok=True)
        raise WeightsUnavailableError(_manual_steps(f"download failed: {err}")) from err
    try:
        remote.verify(part)
    except WeightsHashError:
        part.unlink()  # never leave an unverified file where the next call would find it
        raise
    os.replace(part, path)


def _manual_steps(why: str) -> str:
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
    if path.stat().st_size == 0:
        raise WeightsTruncatedError(
            f"{path} is empty (0 bytes): an interrupted download or copy. Delete it and download it again."
        )
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
        + "\nUse the inception5h.pth file (see circuitscope.core.models.weights.DATA_HUB); a file "
        "from another InceptionV1 port (torchvision's GoogLeNet, captum's renamed copy) uses "
        "other names and is not this model."
    )


def check_finite(state: Mapping[str, torch.Tensor], source: str = "the weights") -> None:
    """Raise :class:`WeightsNonFiniteError` if a tensor holds NaN or inf (naming the first)."""
    for name, value in state.items():
        bad = ~torch.isfinite(value)
        if bool(bad.any()):
            raise WeightsNonFiniteError(
                f"{source} hold non-finite values: tensor {name!r} has {int(bad.sum())} NaN or "
                f"infinite entries (of {value.numel()}). Every result made with them would be NaN; "
                "the file is broken (a failed conversion or a diverged training run). Use the "
                "published inception5h.pth."
            )


# -- the sources "lucid" draws from ------------------------------------------------------
def lucid_state_dict(progress: bool = True, allow_unverified: bool = False) -> LoadedWeights:
    """The real weights (or, when accepted, an unverified file named by ``$CIRCUITSCOPE_WEIGHTS``).

    Order: ``$CIRCUITSCOPE_WEIGHTS``; a cached ``inception5h.pth``; a cached
    ``inception5h.zip``; a download of the ``.pth``; a download of the ``.zip``. Every file is
    verified by hash; a ``$CIRCUITSCOPE_WEIGHTS`` file of another hash is refused
    (:class:`WeightsHashError`) unless ``allow_unverified`` or ``$CIRCUITSCOPE_ALLOW_UNVERIFIED``.
    """
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"${ENV_WEIGHTS} points to {path}, which is not a file.")
        loaded = file_state_dict(path, allow_unverified=allow_unverified)
        return LoadedWeights(loaded.state_dict, f"{loaded.source}, from ${ENV_WEIGHTS}", loaded.state)
    cached = [n for n in ("inception5h.pth", "inception5h.zip") if (cache_dir() / n).exists()]
    errors = []
    for name in cached + [n for n in ("inception5h.pth", "inception5h.zip") if n not in cached]:
        try:
            path = fetch(name, progress=progress)
        except WeightsUnavailableError as err:
            errors.append(err)
            continue
        return LoadedWeights(read_verified(name, path), _source(path, DATA_HUB[name], verified=True), "real")
    raise errors[0]


def read_verified(name: str, path: Path) -> dict[str, torch.Tensor]:
    """Read a file already verified as ``DATA_HUB[name]`` (converting the ``.zip``) and check it."""
    return _read_checked(path, DATA_HUB[name].sha256 if name == "inception5h.zip" else None)


def _read_checked(path: Path, zip_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read ``path`` (a ``.pth``, or a ``.zip`` of SHA-256 ``zip_sha256``); check names, shapes, values."""
    if path.suffix == ".zip":
        from .graphdef import state_dict_from_inception5h_zip

        try:
            state = state_dict_from_inception5h_zip(path, expected_sha256=zip_sha256, spec=expected_shapes())
        except ValueError as err:  # the converter's own checks: say which file failed
            raise WeightsCorruptError(f"{path} could not be converted: {err}") from err
    else:
        state = read_state_dict(path)
    check_state_dict(state, str(path))
    check_finite(state, str(path))
    return state


def _source(path: Path, remote: Remote, verified: bool, digest: str | None = None) -> str:
    if verified:
        return f"{path} ({remote.hash_kind} {remote.expected[:12]}, hash verified)"
    return f"{path} (unverified: {remote.hash_kind} {digest}, not the published {remote.filename})"


def file_state_dict(path: str | os.PathLike, allow_unverified: bool = False) -> LoadedWeights:
    """A user-given weight file, read and checked; refused when its hash is not the published one.

    The file's format is checked first (so a cut-off or broken file gets its own error), then its
    hash. A file with InceptionV1's names and shapes but other bytes raises
    :class:`WeightsHashError` unless ``allow_unverified`` or ``$CIRCUITSCOPE_ALLOW_UNVERIFIED``;
    accepted, it has the state ``"unverified"``.

    Raises:
        FileNotFoundError: nothing (or a folder) at ``path``.
        WeightsCorruptError: unreadable, truncated, or with NaN/inf values (subclasses say which).
        WeightsMismatchError: other tensor names or shapes.
        WeightsHashError: the right format, the wrong bytes, and not accepted.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a folder, not a weight file: give the path of inception5h.pth")
    if not path.is_file():
        raise FileNotFoundError(f"no weight file at {path}")
    remote = DATA_HUB["inception5h.zip" if path.suffix == ".zip" else "inception5h.pth"]
    digest = remote.digest(path)
    verified = digest == remote.expected
    allowed = allow_unverified or allow_unverified_from_env()
    if path.suffix == ".zip" and not (verified or allowed):
        remote.verify(path)  # converting a graph is slow: refuse an unknown archive before it
    state = _read_checked(path, zip_sha256=digest)
    if not verified and not allowed:
        raise WeightsHashError(_refusal(path, remote, digest))
    return LoadedWeights(state, _source(path, remote, verified, digest), "real" if verified else "unverified")


def _refusal(path: Path, remote: Remote, digest: str) -> str:
    return (
        f"{path} has InceptionV1's tensor names and shapes, but it is not the published "
        f"{remote.filename}: its {remote.hash_kind} is {digest}, expected {remote.expected}. "
        "Results made with it may differ from the articles', so it is refused.\n"
        "If you meant to use this file (a converted or fine-tuned copy, a test file), accept it "
        "with load_inceptionv1(path, allow_unverified=True) or by setting "
        f"{ENV_ALLOW_UNVERIFIED}=1; every figure made with it is then marked UNVERIFIED WEIGHTS.\n"
        f"If you meant the published file, delete this one and download it again from {remote.url}"
    )


def copy_to_cache(path: str | os.PathLike) -> Path:
    """Verify a manually downloaded ``inception5h.pth`` and put it where ``"lucid"`` looks."""
    path = Path(path)
    DATA_HUB["inception5h.pth"].verify(path)
    dest = cache_dir() / "inception5h.pth"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return dest


# -- which weights "auto" would use, without reading them --------------------------------------
@dataclass(frozen=True)
class WeightsPlan:
    """What ``load_inceptionv1()`` (``"auto"``) would load now, found by hashing, not loading.

    Attributes:
        state: ``"real"``, ``"unverified"``, ``"synthetic"``, or ``"refused"`` (a
            ``$CIRCUITSCOPE_WEIGHTS`` file of unknown hash, not accepted: loading raises).
        path: the file it would read, or None.
        digest: that file's hash (git blob SHA-1 for a ``.pth``, SHA-256 for a ``.zip``), or "".
        reason: one line saying why.
    """

    state: str
    path: Path | None
    digest: str
    reason: str

    @property
    def identity(self) -> str:
        """See :func:`weights_identity`."""
        if self.state == "synthetic":
            from .synthetic import SYNTHETIC_VERSION

            return f"synthetic-{SYNTHETIC_VERSION}"
        return f"{self.state}-{self.digest[:12]}"


def weights_plan() -> WeightsPlan:
    """Which weights ``load_inceptionv1()`` would use right now (see :class:`WeightsPlan`).

    It hashes the candidate file but reads no tensors, and never downloads: with no local
    file it says ``"synthetic"`` (run ``circuitscope weights download`` first to change that).
    """
    env = os.environ.get(ENV_WEIGHTS)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            return WeightsPlan("synthetic", None, "", f"${ENV_WEIGHTS}={path} is not a file")
        remote = DATA_HUB["inception5h.zip" if path.suffix == ".zip" else "inception5h.pth"]
        digest = remote.digest(path)
        if digest == remote.expected:
            return WeightsPlan("real", path, digest, f"${ENV_WEIGHTS}, hash verified")
        if allow_unverified_from_env():
            why = f"${ENV_WEIGHTS}, accepted by ${ENV_ALLOW_UNVERIFIED}"
            return WeightsPlan("unverified", path, digest, why)
        return WeightsPlan("refused", path, digest, f"${ENV_WEIGHTS} is not the published file and "
                           f"${ENV_ALLOW_UNVERIFIED} is not set: loading will raise")  # fmt: skip
    for name in ("inception5h.pth", "inception5h.zip"):
        path, remote = cache_dir() / name, DATA_HUB[name]
        if path.is_file() and (digest := remote.digest(path)) == remote.expected:
            return WeightsPlan("real", path, digest, "cached, hash verified")
    why = "no verified weight file in the cache" + (f" and ${ENV_OFFLINE} is set" if offline() else "")
    return WeightsPlan("synthetic", None, "", why)


def weights_identity() -> str:
    """A short string naming the weights ``load_inceptionv1()`` would use, without loading them.

    ``"real-<12 hex>"`` (the verified file's hash), ``"unverified-<12 hex>"`` (a file accepted by
    ``$CIRCUITSCOPE_ALLOW_UNVERIFIED``), ``"synthetic-<version>"`` (no file: the stand-in), or
    ``"refused-<12 hex>"`` (a ``$CIRCUITSCOPE_WEIGHTS`` file that loading would refuse). Builds
    key caches of executed pages by it.
    """
    return weights_plan().identity
