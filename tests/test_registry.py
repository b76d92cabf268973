"""The data registry: verified copies from a mirror, the cache or a (faked) download; never the network."""

from __future__ import annotations

import hashlib
import shutil
import zipfile

import pooch
import pytest

from circuitscope.core import registry
from circuitscope.core.registry import DataHashError, DataUnavailableError, Entry
from circuitscope.tools import cli

PHOTO = "building-blocks/examples/input_images/dog_cat.jpeg"
needs_mirror = pytest.mark.skipif(not registry.mirrors(), reason="no data mirror (shared/data) beside this checkout")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A fresh cache folder of its own; returns its path."""
    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def no_mirror(tmp_path, monkeypatch):
    """$CIRCUITSCOPE_MIRROR pointing at an empty folder."""
    (tmp_path / "empty_mirror").mkdir()
    monkeypatch.setenv("CIRCUITSCOPE_MIRROR", str(tmp_path / "empty_mirror"))


@pytest.fixture
def fake_entry(monkeypatch):
    """Replace the registry by one entry of the test's own (name, bytes, member); returns it."""

    def install(data: bytes, member: str | None = None, name: str = "test/data.txt"):
        e = Entry(name=name, url=f"https://example.invalid/{'archive.zip' if member else name}",
                  sha256=hashlib.sha256(data).hexdigest(), mirror=f"test/{name}", source="zoom-in",
                  member=member)  # fmt: skip
        monkeypatch.setattr(registry, "entries", lambda: {name: e})
        return e

    return install


@pytest.fixture
def fake_download(monkeypatch):
    """Make pooch's HTTP downloader copy a local file instead (and record the URLs it was given)."""
    calls = []

    def serve(local_path):
        class Copy:
            def __init__(self, *args, **kwargs):
                pass

            def __call__(self, url, output_file, pooch_obj, check_only=False):
                calls.append(url)
                shutil.copyfile(local_path, output_file)

        monkeypatch.setattr(pooch, "HTTPDownloader", Copy)
        monkeypatch.delenv("CIRCUITSCOPE_OFFLINE")
        return calls

    return serve


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_mirror
def test_a_mirror_copy_is_verified_and_cached(empty_cache):
    path = registry.fetch(PHOTO)
    assert path == registry.cached_path(PHOTO) and path.is_relative_to(empty_cache)
    assert _sha256(path) == registry.entry(PHOTO).sha256
    assert path.read_bytes() == registry.mirror_copy(registry.entry(PHOTO)).read_bytes()


@needs_mirror
def test_a_cached_copy_needs_no_mirror(empty_cache, tmp_path, monkeypatch):
    first = registry.fetch(PHOTO)
    (tmp_path / "nothing").mkdir()
    monkeypatch.setenv("CIRCUITSCOPE_MIRROR", str(tmp_path / "nothing"))
    assert registry.fetch(PHOTO) == first and registry.available(PHOTO)


def test_a_mirror_copy_with_the_wrong_hash_is_refused_and_not_cached(fake_entry, empty_cache, tmp_path, monkeypatch):
    e = fake_entry(b"the published bytes")
    bad = tmp_path / "mirror" / e.mirror
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"changed bytes")
    monkeypatch.setenv("CIRCUITSCOPE_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(DataHashError, match="SHA-256"):
        registry.fetch(e.name)
    assert not registry.cached_path(e.name).exists()
    assert not any(p.is_file() for p in empty_cache.rglob("*"))  # no temporary left either
    assert not registry.available(e.name)


def test_offline_without_a_mirror_is_unavailable_and_names_the_variable(no_mirror, empty_cache):
    with pytest.raises(DataUnavailableError) as err:
        registry.fetch(PHOTO)
    text = str(err.value)
    assert "CIRCUITSCOPE_MIRROR" in text and registry.entry(PHOTO).url in text
    assert not registry.available(PHOTO)


def test_a_mirror_may_be_the_folder_below_the_first_level(fake_entry, empty_cache, tmp_path, monkeypatch):
    e = fake_entry(b"abc")
    (tmp_path / "m" / "test").mkdir(parents=True)  # mirror path test/test/data.txt, found without "test/"
    (tmp_path / "m" / "test" / "data.txt").write_bytes(b"abc")
    monkeypatch.setenv("CIRCUITSCOPE_MIRROR", str(tmp_path / "m"))
    assert registry.fetch(e.name).read_bytes() == b"abc"


def test_an_archive_member_is_downloaded_extracted_and_verified(fake_entry, fake_download, no_mirror, empty_cache,
                                                                 tmp_path):
    labels = b"dummy\nkit fox\nEnglish setter\n"
    archive = tmp_path / "inception5h.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("imagenet_comp_graph_label_strings.txt", labels)
        zf.writestr("tensorflow_inception_graph.pb", b"not needed")
    e = fake_entry(labels, member="imagenet_comp_graph_label_strings.txt", name="test/labels.txt")
    calls = fake_download(archive)
    path = registry.fetch(e.name)
    assert path.read_bytes() == labels and calls == [e.url]
    assert sorted(p.name for p in path.parent.iterdir()) == ["labels.txt"]  # the archive is gone
    assert registry.fetch(e.name) == path and calls == [e.url]  # second time: the cache


def test_a_download_with_the_wrong_hash_is_refused(fake_entry, fake_download, no_mirror, empty_cache, tmp_path):
    e = fake_entry(b"the published bytes")
    (tmp_path / "served").write_bytes(b"something else")
    fake_download(tmp_path / "served")
    with pytest.raises(DataHashError):
        registry.fetch(e.name)
    assert not registry.cached_path(e.name).exists()


def test_fetch_all_reports_each_file_and_never_raises(fake_entry, no_mirror, empty_cache):
    e = fake_entry(b"x")
    results = registry.fetch_all(progress=False)
    assert list(results) == [e.name] and isinstance(results[e.name], DataUnavailableError)


def test_unknown_names_suggest_close_ones():
    with pytest.raises(KeyError, match="Did you mean"):
        registry.entry("zoom-in/images/curve.png")


# -- the command line -------------------------------------------------------------------------
def test_cli_data_fetch_and_list(fake_entry, empty_cache, tmp_path, monkeypatch, capsys):
    e = fake_entry(b"abc")
    assert cli.main(["data", "list"]) == 0
    assert capsys.readouterr().out.startswith("-  ")  # neither cached nor mirrored yet
    assert cli.main(["data", "fetch", "--no-progress"]) == 1  # offline, no mirror: failed
    captured = capsys.readouterr()
    assert "0 of 1 files" in captured.out and e.name in captured.err
    (tmp_path / "m" / "test").mkdir(parents=True)
    (tmp_path / "m" / "test" / "data.txt").write_bytes(b"abc")
    monkeypatch.setenv("CIRCUITSCOPE_MIRROR", str(tmp_path / "m"))
    assert cli.main(["data", "list"]) == 0
    assert capsys.readouterr().out.startswith("mirror")
    assert cli.main(["data", "fetch", "--no-progress", e.name]) == 0
    assert "1 of 1 files fetched" in capsys.readouterr().out
    assert cli.main(["data", "list"]) == 0
    assert capsys.readouterr().out.startswith("cached")
    assert cli.main(["data", "fetch", "no/such/file"]) == 1
    assert "not in the course's data registry" in capsys.readouterr().err


# -- the class labels come through the registry ------------------------------------------------
@pytest.fixture
def fresh_labels():
    from circuitscope.core import class_labels

    class_labels._labels.cache_clear()
    yield class_labels
    class_labels._labels.cache_clear()  # later tests read the real labels again


@needs_mirror
def test_labels_come_from_the_registry(fresh_labels, empty_cache):
    labels = fresh_labels.labels()
    assert len(labels) == 1001 and labels[0] == "dummy" and fresh_labels.label(1) == "kit fox"
    assert registry.cached_path(fresh_labels.LABELS_FILE).is_file()


def test_without_the_label_file_classes_are_numbered_with_one_warning(fresh_labels, no_mirror, empty_cache):
    import warnings

    with pytest.warns(UserWarning, match="class labels are not available") as record:
        labels = fresh_labels.labels()
        assert fresh_labels.label(7) == "class 7" and fresh_labels.label(1005) == "(unlabelled 1005)"
    assert labels == [f"class {i}" for i in range(1001)]
    assert len([w for w in record if "class labels" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per session, not once per call
        fresh_labels.labels()


def test_no_registry_file_is_committed_to_the_repository():
    """Third-party files are fetched by hash, never carried: no tracked file has a registry hash."""
    import subprocess

    from conftest import ROOT

    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    listed = {e.sha256: name for name, e in registry.entries().items()}
    carried = []
    for rel in filter(None, tracked.decode().split("\0")):
        path = ROOT / rel
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() in listed:
            carried.append(f"{rel} (= {listed[hashlib.sha256(path.read_bytes()).hexdigest()]})")
    assert not carried, f"committed copies of registry files: {carried}"
    assert len(listed) == len(registry.entries()) >= 52  # 39 articles' files, 12 Lucid files, the labels
