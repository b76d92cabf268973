"""Getting, verifying and loading weight files: three states, and every failure its own clear error."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
import warnings

import pytest
import torch

import circuitscope as cs
from circuitscope.core import provenance
from circuitscope.core.models import weights as W
from circuitscope.tools import cli


@pytest.fixture(scope="module")
def weight_file(real_format_weights):
    """The session's real-format weight file (random values) and the state dict it holds."""
    return real_format_weights, torch.load(real_format_weights, weights_only=True)


@pytest.fixture
def hub_for(monkeypatch):
    """Point DATA_HUB's .pth entry at a given URL and file hash (the test's own file)."""

    def point(path, url="http://127.0.0.1:9/none"):
        remote = W.Remote("inception5h.pth", url, git_blob_sha1=W.git_blob_sha1(path))
        monkeypatch.setitem(W.DATA_HUB, "inception5h.pth", remote)
        return remote

    return point


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 for the download tests (no network beyond this machine)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_git_blob_sha1_equals_git_hash_object(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 1000 + b"end")
    out = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert W.git_blob_sha1(path) == out.stdout.strip()


# -- the three states ---------------------------------------------------------------------
def test_an_unverified_file_is_refused_by_default_and_says_how_to_accept_it(weight_file, monkeypatch):
    monkeypatch.delenv(W.ENV_ALLOW_UNVERIFIED, raising=False)
    with pytest.raises(W.WeightsHashError) as err:
        cs.load_inceptionv1(weight_file[0], device="cpu")
    text = str(err.value)
    assert "names and shapes" in text and W.git_blob_sha1(weight_file[0]) in text
    assert "allow_unverified=True" in text and "CIRCUITSCOPE_ALLOW_UNVERIFIED=1" in text


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_an_accepted_unverified_file_loads_strictly_as_unverified(weight_file, monkeypatch, how):
    path, state = weight_file
    if how == "environment":
        monkeypatch.setenv(W.ENV_ALLOW_UNVERIFIED, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # accepted on purpose: the notices say it, not a warning
        model = cs.load_inceptionv1(path, device="cpu", allow_unverified=how == "argument")
    assert model.weights_state == "unverified" and not model.is_synthetic
    assert str(path) in model.weights_source and W.git_blob_sha1(path) in model.weights_source
    assert "unverified" in model.weights_source and "UNVERIFIED" in provenance.weights_caption(model)
    assert "inception5h) weights" not in provenance.weights_caption(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_a_file_with_the_known_hash_loads_as_real(weight_file, hub_for):
    path, _ = weight_file
    hub_for(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = cs.load_inceptionv1(str(path), device="cpu")
    assert model.weights_state == "real" and "hash verified" in model.weights_source
    assert provenance.is_real(model)


def test_the_environment_variable_file_is_refused_unless_accepted(weight_file, monkeypatch, hub_for):
    path, _ = weight_file
    monkeypatch.setenv("CIRCUITSCOPE_WEIGHTS", str(path))
    for mode in ("lucid", "auto"):  # "auto" must not hide a wrong file behind the stand-in
        with pytest.raises(W.WeightsHashError, match="expected 119f77db"):
            cs.load_inceptionv1(mode)
    monkeypatch.setenv(W.ENV_ALLOW_UNVERIFIED, "1")
    model = cs.load_inceptionv1("auto", device="cpu")
    assert model.weights_state == "unverified" and "CIRCUITSCOPE_WEIGHTS" in model.weights_source
    monkeypatch.delenv(W.ENV_ALLOW_UNVERIFIED)
    hub_for(path)  # now the file is "the known one"
    model = cs.load_inceptionv1("lucid", device="cpu")
    assert model.weights_state == "real" and "CIRCUITSCOPE_WEIGHTS" in model.weights_source


def test_synthetic_and_random_init_are_synthetic():
    assert cs.InceptionV1().weights_state == "synthetic" and cs.InceptionV1().is_synthetic
    assert "random initialisation" in cs.InceptionV1().weights_source
    with pytest.warns(UserWarning, match="SYNTHETIC weights"):
        model = cs.load_inceptionv1("auto", device="cpu")  # offline, nothing cached
    assert model.weights_state == "synthetic"


# -- every bad file has its own error -----------------------------------------------------
def _damaged(path, data):
    """Flip 64 bytes in the middle of a tensor: the zip member's CRC no longer matches."""
    data = bytearray(data)
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


class _Evil:
    """A pickle that would create a file when unpickled without ``weights_only``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _bad_file(kind, tmp_path, weight_file):
    path, state = weight_file
    out = tmp_path / f"{kind}.pth"
    if kind == "truncated":
        out.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "corrupted":
        _damaged(out, path.read_bytes())
    elif kind == "random bytes":
        out.write_bytes(bytes(range(256)) * 40)
    elif kind == "empty":
        out.write_bytes(b"")
    elif kind == "malicious pickle":
        torch.save({"conv2d0_pre_relu_conv.weight": _Evil(tmp_path / "pwned")}, out)  # runs with weights_only=False
    elif kind in ("missing tensors", "wrong shapes", "NaN", "inf"):
        state = dict(state)
        if kind == "missing tensors":
            del state["conv2d0_pre_relu_conv.bias"]
            state["fc.weight"] = torch.zeros(2)
        elif kind == "wrong shapes":
            state["mixed4a_3x3_pre_relu_conv.weight"] = torch.zeros(10, 96, 3, 3)
        else:
            bad = state["mixed4b_5x5_pre_relu_conv.weight"].clone()
            bad[3, 1, 2, 2] = float("nan") if kind == "NaN" else float("inf")
            state["mixed4b_5x5_pre_relu_conv.weight"] = bad
        torch.save(state, out)
    elif kind == "folder":
        out = tmp_path / "a_folder.pth"
        out.mkdir()
    elif kind == "missing path":
        out = tmp_path / "nowhere" / "inception5h.pth"
    return out


BAD_FILES = {
    "truncated": (W.WeightsTruncatedError, "truncated.*download it again"),
    "corrupted": (W.WeightsCorruptError, "corrupted"),
    "random bytes": (W.WeightsCorruptError, "could not be read"),
    "empty": (W.WeightsTruncatedError, "empty"),
    "malicious pickle": (W.WeightsCorruptError, "could not be read"),
    "missing tensors": (W.WeightsMismatchError, r"missing tensors \(1\).*conv2d0_pre_relu_conv.bias.*"
                                                r"unexpected tensors \(1\).*fc.weight"),
    "wrong shapes": (W.WeightsMismatchError, r"mixed4a_3x3_pre_relu_conv.weight: \(10, 96, 3, 3\), "
                                             r"expected \(204, 96, 3, 3\)"),
    "NaN": (W.WeightsNonFiniteError, "'mixed4b_5x5_pre_relu_conv.weight' has 1 NaN or infinite"),
    "inf": (W.WeightsNonFiniteError, "'mixed4b_5x5_pre_relu_conv.weight' has 1 NaN or infinite"),
    "folder": (FileNotFoundError, "is a folder"),
    "missing path": (FileNotFoundError, "no weight file"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("allow", [False, True], ids=["default", "allow_unverified"])
def test_every_bad_file_is_refused_with_its_own_error(kind, allow, tmp_path, weight_file):
    """The format is checked before the hash, so accepting unverified files never lets one in."""
    error, pattern = BAD_FILES[kind]
    path = _bad_file(kind, tmp_path, weight_file)
    with pytest.raises(error, match=f"(?s){pattern}"):
        cs.load_inceptionv1(path, allow_unverified=allow)
    assert not (tmp_path / "pwned").exists()  # the pickle's payload never ran


def test_non_finite_error_is_a_corrupt_error():
    assert issubclass(W.WeightsNonFiniteError, W.WeightsCorruptError)


# -- finding and downloading ---------------------------------------------------------------
def test_lucid_offline_names_the_variable_the_url_and_the_steps():
    with pytest.raises(W.WeightsUnavailableError) as err:
        cs.load_inceptionv1("lucid")
    text = str(err.value)
    assert "CIRCUITSCOPE_WEIGHTS" in text and W.DATA_HUB["inception5h.pth"].url in text
    assert "weights='synthetic'" in text and "download" in text


def test_cache_and_offline_are_the_registrys(monkeypatch, tmp_path):
    from circuitscope.core import registry

    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(tmp_path / "c"))
    assert W.cache_dir() == registry.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("CIRCUITSCOPE_OFFLINE", "0")
    assert W.offline() is registry.offline() is False


def test_download_verifies_caches_and_loads(weight_file, http_server, hub_for, monkeypatch):
    path, state = weight_file
    root, url = http_server
    (root / "inception5h.pth").write_bytes(path.read_bytes())
    hub_for(path, url + "/inception5h.pth")
    monkeypatch.delenv("CIRCUITSCOPE_OFFLINE")
    model = cs.load_inceptionv1("auto", device="cpu", progress=False)
    assert model.weights_state == "real"
    cached = W.cache_dir() / "inception5h.pth"
    assert cached.read_bytes() == path.read_bytes()
    assert [p.name for p in W.cache_dir().glob("inception5h.pth*")] == ["inception5h.pth"]
    (root / "inception5h.pth").unlink()  # second call: from the cache, no network
    assert cs.load_inceptionv1("lucid", device="cpu", progress=False).weights_state == "real"
    cached.unlink()


def test_a_bad_download_is_rejected_and_leaves_nothing_behind(weight_file, http_server, hub_for, monkeypatch):
    path, _ = weight_file
    root, url = http_server
    (root / "inception5h.pth").write_bytes(path.read_bytes()[:1000])  # a cut-off transfer
    hub_for(path, url + "/inception5h.pth")
    monkeypatch.delenv("CIRCUITSCOPE_OFFLINE")
    monkeypatch.setitem(W.DATA_HUB, "inception5h.zip", W.Remote("inception5h.zip", url + "/missing.zip", sha256="0" * 64))
    with pytest.raises(W.WeightsHashError, match="download it again"):
        cs.load_inceptionv1("lucid", progress=False)
    assert not any(W.cache_dir().glob("inception5h.*"))
    # A server error: unavailable, with the manual steps, and no partial file left in the cache.
    (root / "inception5h.pth").unlink()
    with pytest.raises(W.WeightsUnavailableError, match="download failed"):
        cs.load_inceptionv1("lucid", progress=False)
    assert not any(W.cache_dir().glob("inception5h.*"))


def test_a_zip_download_with_the_wrong_sha256_is_refused_by_pooch(http_server, monkeypatch):
    root, url = http_server
    (root / "inception5h.zip").write_bytes(b"PK not the release")
    monkeypatch.setitem(W.DATA_HUB, "inception5h.zip", W.Remote("inception5h.zip", url + "/inception5h.zip", sha256="0" * 64))
    monkeypatch.delenv("CIRCUITSCOPE_OFFLINE")
    with pytest.raises(W.WeightsHashError, match="not the expected inception5h.zip"):
        W.fetch("inception5h.zip", progress=False)
    assert not any(W.cache_dir().glob("inception5h.*"))


def test_a_corrupted_cache_is_downloaded_again(weight_file, http_server, hub_for, monkeypatch):
    path, _ = weight_file
    root, url = http_server
    (root / "inception5h.pth").write_bytes(path.read_bytes())
    hub_for(path, url + "/inception5h.pth")
    W.cache_dir().mkdir(parents=True, exist_ok=True)
    (W.cache_dir() / "inception5h.pth").write_bytes(b"garbage")
    monkeypatch.delenv("CIRCUITSCOPE_OFFLINE")
    with pytest.warns(UserWarning, match="failed verification"):
        model = cs.load_inceptionv1("lucid", device="cpu", progress=False)
    assert model.weights_state == "real"
    (W.cache_dir() / "inception5h.pth").unlink()
    (W.cache_dir() / "inception5h.pth.bad").unlink()


def test_unknown_weights_argument():
    with pytest.raises(ValueError, match="'auto', 'lucid', 'synthetic'"):
        cs.load_inceptionv1("imagenet")


# -- which weights "auto" would use, without loading them -----------------------------------
def test_weights_identity_names_each_state_without_reading_tensors(weight_file, hub_for, monkeypatch):
    path, _ = weight_file
    digest = W.git_blob_sha1(path)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("weights_identity read the tensors"))
    from circuitscope.core.models.synthetic import SYNTHETIC_VERSION

    assert W.weights_identity() == cs.models.weights_identity() == f"synthetic-{SYNTHETIC_VERSION}"
    monkeypatch.setenv("CIRCUITSCOPE_WEIGHTS", str(path))
    assert W.weights_identity() == f"refused-{digest[:12]}"  # loading it would raise
    monkeypatch.setenv(W.ENV_ALLOW_UNVERIFIED, "1")
    assert W.weights_identity() == f"unverified-{digest[:12]}"
    hub_for(path)
    assert W.weights_identity() == f"real-{digest[:12]}"
    monkeypatch.setenv("CIRCUITSCOPE_WEIGHTS", str(path.parent / "missing.pth"))
    assert W.weights_identity().startswith("synthetic-")  # "auto" falls back to the stand-in


def test_weights_identity_of_a_cached_file(weight_file, hub_for):
    path, _ = weight_file
    cached = W.cache_dir() / "inception5h.pth"
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(path.read_bytes())
    try:
        assert W.weights_identity().startswith("synthetic-")  # not the published hash: not used
        hub_for(path)
        assert W.weights_identity() == f"real-{W.git_blob_sha1(path)[:12]}"
        assert W.weights_plan().path == cached
    finally:
        cached.unlink()


# -- the command line -------------------------------------------------------------------------
def test_cli_verify_reports_unverified_and_real(weight_file, hub_for, capsys):
    path, _ = weight_file
    assert cli.main(["weights", "verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("UNVERIFIED") and W.git_blob_sha1(path) in out
    hub_for(path)
    assert cli.main(["weights", "verify", str(path)]) == 0
    assert "hash verified" in capsys.readouterr().out


def test_cli_verify_reports_a_bad_file(tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a weight file")
    assert cli.main(["weights", "verify", str(junk)]) == 1
    assert "could not be read" in capsys.readouterr().err


def test_cli_info_tells_which_state_load_would_give(weight_file, hub_for, monkeypatch, capsys):
    path, _ = weight_file
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "weights: SYNTHETIC" in out and "identity: synthetic-" in out and "published files available" in out
    monkeypatch.setenv("CIRCUITSCOPE_WEIGHTS", str(path))
    cli.main(["info"])
    out = capsys.readouterr().out
    assert "weights: REFUSED" in out and W.git_blob_sha1(path) in out and str(path) in out
    monkeypatch.setenv(W.ENV_ALLOW_UNVERIFIED, "1")
    cli.main(["info"])
    assert "weights: UNVERIFIED" in capsys.readouterr().out
    hub_for(path)
    cli.main(["info"])
    assert "weights: REAL" in capsys.readouterr().out
