"""Getting, verifying and loading weight files: every failure has its own clear error."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
import warnings

import pytest
import torch

import circuitscope as cs
from circuitscope.models import InceptionV1, weights as W


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory):
    """A real-format weight file (random values) and the state dict it holds."""
    model = InceptionV1()
    path = tmp_path_factory.mktemp("w") / "inception5h.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


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
    """Serve tmp_path/www on 127.0.0.1 for the download tests."""
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


def test_a_saved_state_dict_loads_strictly_with_a_hash_warning(weight_file):
    path, state = weight_file
    with pytest.warns(UserWarning, match="not byte-identical"):
        model = cs.load_inceptionv1(path, device="cpu")
    assert not model.is_synthetic and "unverified" in model.weights_source
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_a_file_with_the_known_hash_loads_without_warning(weight_file, hub_for):
    path, _ = weight_file
    hub_for(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = cs.load_inceptionv1(str(path), device="cpu")
    assert "hash verified" in model.weights_source


def test_truncated_file(weight_file, tmp_path):
    path, _ = weight_file
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(UserWarning), pytest.raises(W.WeightsTruncatedError, match="truncated.*download it again"):
        cs.load_inceptionv1(cut)


def test_corrupt_file(weight_file, tmp_path):
    data = bytearray(weight_file[0].read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # damage a tensor's bytes
    bad = tmp_path / "bad.pth"
    bad.write_bytes(bytes(data))
    with pytest.warns(UserWarning), pytest.raises(W.WeightsCorruptError, match="corrupted"):
        cs.load_inceptionv1(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a weight file at all")
    with pytest.warns(UserWarning), pytest.raises(W.WeightsCorruptError, match="could not be read"):
        cs.load_inceptionv1(junk)


def test_wrong_shapes_and_names(weight_file, tmp_path):
    state = dict(weight_file[1])
    state["mixed4a_3x3_pre_relu_conv.weight"] = torch.zeros(10, 96, 3, 3)
    del state["conv2d0_pre_relu_conv.bias"]
    state["fc.weight"] = torch.zeros(2)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.warns(UserWarning), pytest.raises(W.WeightsMismatchError) as err:
        cs.load_inceptionv1(path)
    text = str(err.value)
    assert "mixed4a_3x3_pre_relu_conv.weight: (10, 96, 3, 3), expected (204, 96, 3, 3)" in text
    assert "missing tensors (1)" in text and "conv2d0_pre_relu_conv.bias" in text
    assert "unexpected tensors (1)" in text and "fc.weight" in text


def test_lucid_offline_names_the_variable_the_url_and_the_steps():
    with pytest.raises(W.WeightsUnavailableError) as err:
        cs.load_inceptionv1("lucid")
    text = str(err.value)
    assert "CIRCUITSCOPE_WEIGHTS" in text and W.DATA_HUB["inception5h.pth"].url in text
    assert "weights='synthetic'" in text and "download" in text


def test_auto_offline_falls_back_to_synthetic_loudly():
    with pytest.warns(UserWarning, match="SYNTHETIC weights"):
        model = cs.load_inceptionv1("auto", device="cpu")
    assert model.is_synthetic


def test_lucid_from_the_environment_variable_is_verified(weight_file, monkeypatch, hub_for):
    path, _ = weight_file
    monkeypatch.setenv("CIRCUITSCOPE_WEIGHTS", str(path))
    with pytest.raises(W.WeightsHashError, match="expected 119f77db"):
        cs.load_inceptionv1("lucid")
    hub_for(path)  # now the file is "the known one"
    model = cs.load_inceptionv1("lucid", device="cpu")
    assert not model.is_synthetic and "CIRCUITSCOPE_WEIGHTS" in model.weights_source


def test_download_verifies_caches_and_loads(weight_file, http_server, hub_for, monkeypatch):
    path, state = weight_file
    root, url = http_server
    (root / "inception5h.pth").write_bytes(path.read_bytes())
    hub_for(path, url + "/inception5h.pth")
    monkeypatch.delenv("CIRCUITSCOPE_OFFLINE")
    model = cs.load_inceptionv1("auto", device="cpu", progress=False)
    assert not model.is_synthetic
    cached = W.cache_dir() / "inception5h.pth"
    assert cached.read_bytes() == path.read_bytes()
    (root / "inception5h.pth").unlink()  # second call: from the cache, no network
    assert not cs.load_inceptionv1("lucid", device="cpu", progress=False).is_synthetic
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
    assert not (W.cache_dir() / "inception5h.pth").exists()
    # A server error: unavailable, with the manual steps, and no partial file left in the cache.
    (root / "inception5h.pth").unlink()
    with pytest.raises(W.WeightsUnavailableError, match="download failed"):
        cs.load_inceptionv1("lucid", progress=False)
    assert not any(W.cache_dir().glob("*.part"))


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
    assert not model.is_synthetic
    (W.cache_dir() / "inception5h.pth").unlink()


def test_unknown_weights_argument():
    with pytest.raises(ValueError, match="'auto', 'lucid', 'synthetic'"):
        cs.load_inceptionv1("imagenet")
