"""Dataset examples on planted data: the images holding a planted pattern are exactly the top
examples of the unit built to detect it, however the images are streamed."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch

from circuitscope.core.datasets import ImageFolderStream, TensorStream, as_stream, find_images
from circuitscope.figures import plotting
from circuitscope.methods.dataset_examples import (
    LayerSummary,
    TopExamples,
    clear_activation_cache,
    layer_summary,
    model_fingerprint,
    top_examples,
)
from circuitscope.methods.planted import PlantedPatternModel, planted_images, write_planted_folder

SIZE = 48
N_PLAIN, N_PER = 14, 4  # 22 images: more than several batches of 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return PlantedPatternModel()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("planted") / "images"
    truth = write_planted_folder(root, n_plain=N_PLAIN, n_per_pattern=N_PER, size=SIZE, seed=0)
    return root, {p.relative_to(root).as_posix(): t for p, t in truth.items()}


def names_with(truth: dict, *patterns: str) -> set[str]:
    return {name for name, (kind, _) in truth.items() if kind in patterns}


def query(model, source, unit, **kw):
    kw.setdefault("size", SIZE)
    kw.setdefault("progress", False)
    return top_examples(model, source, unit, **kw)


# -- the stream ---------------------------------------------------------------------------------
def test_folder_stream_contract(folder, tmp_path):
    root, truth = folder
    stream = ImageFolderStream(root, size=SIZE, batch_size=5)
    assert stream.classes == ["checker", "cross", "plain"]
    assert len(stream) == len(truth) and stream.num_batches() == 5
    seen = []
    for images, indices, labels in stream:
        assert images.dtype == torch.float32 and images.shape[1:] == (3, SIZE, SIZE)
        assert 0 <= images.min() and images.max() <= 1
        assert indices.dtype == torch.long and labels.shape == indices.shape
        seen += indices.tolist()
        for i, lab in zip(indices.tolist(), labels.tolist()):
            assert stream.classes[lab] == stream.name(i).split("/")[0]
    assert seen == list(range(len(truth)))
    # PNGs read back exactly (the stream's pixels are the planted ones)
    images, _, _ = planted_images(N_PLAIN, N_PER, SIZE, seed=0)
    i = stream.name(0)  # checker/checker_014.png is planted image 14
    assert torch.allclose(stream.load(0), images[int(i.split("_")[-1][:3])], atol=1 / 255)

    # files directly in the root have no class; hidden folders and other files are ignored
    flat = tmp_path / "flat"
    (flat / ".ipynb_checkpoints").mkdir(parents=True)
    shutil.copy(root / "plain" / "plain_000.png", flat / "a.PNG")
    shutil.copy(root / "plain" / "plain_000.png", flat / ".ipynb_checkpoints" / "b.png")
    (flat / "notes.txt").write_text("not an image")
    paths, labels, classes = find_images(flat)
    assert [p.name for p in paths] == ["a.PNG"] and labels == [-1] and classes == []


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        ImageFolderStream(tmp_path / "nope")
    with pytest.raises(ValueError, match="no images"):
        ImageFolderStream(tmp_path)


# -- planted ground truth -------------------------------------------------------------------------
@pytest.mark.parametrize("by", ["max", "mean"])
def test_top_examples_are_the_planted_images(model, folder, by):
    root, truth = folder
    cross = query(model, root, "units:1", k=N_PER, by=by, cache=False)
    checker = query(model, root, ("units", 2), k=N_PER, by=by, cache=False)
    both = query(model, root, "units:0", k=2 * N_PER, by=by, cache=False)
    assert set(cross.names) == names_with(truth, "cross")
    assert set(checker.names) == names_with(truth, "checker")
    assert set(both.names) == names_with(truth, "cross", "checker")
    for top in (cross, checker, both):
        assert isinstance(top, TopExamples) and (top.scores > 0).all()
        assert torch.all(top.scores[:-1] >= top.scores[1:])  # best first
        assert [p.relative_to(root).as_posix() for p in top.paths] == top.names
    assert set(cross.label_names) == {"cross"} and cross.unit == "units:1"


def test_position_and_patch_are_the_planted_pattern(model, folder):
    root, truth = folder
    top = query(model, root, "detectors:0", k=N_PER, cache=False)  # the cross detector, 9x9 field
    images = top.images()
    patches = top.patches()
    assert patches.shape == (N_PER, 3, 9, 9)
    for name, (row, col), image, patch in zip(top.names, top.positions.tolist(), images, patches):
        kind, (cy, cx) = truth[name]
        assert (kind, row, col) == ("cross", cy, cx)  # the matched filter peaks at the centre
        assert torch.equal(patch, image[:, cy - 4 : cy + 5, cx - 4 : cx + 5])
    # one layer up (3x3 stride-2 pool): an 11-px field whose box holds the pattern's centre
    top = query(model, root, "units:2", k=N_PER, cache=False)
    assert top.patches().shape == (N_PER, 3, 11, 11)
    for name, (t, l, b, r) in zip(top.names, top.boxes()):
        _, (cy, cx) = truth[name]
        assert t + 2 <= cy <= b - 2 and l + 2 <= cx <= r - 2
    # a patch reaching outside the image is filled; clip=True cuts it at the border instead
    top = query(model, root, "units:2", k=N_PER, cache=False)
    clipped = top.patches(field=41, clip=True)
    assert all(p.shape[0] == 3 and max(p.shape[1:]) <= 41 for p in clipped)
    assert top.patches(field=41, fill=0.25).shape == (N_PER, 3, 41, 41)


def test_tensor_source_and_plain_function(model):
    images, labels, truth = planted_images(N_PLAIN, N_PER, SIZE, seed=0)
    cross = {i for i, (kind, _) in enumerate(truth) if kind == "cross"}
    top = query(
        model, TensorStream(images, labels, classes=["plain", "cross", "checker"]), "units:1", k=N_PER
    )
    assert set(top.indices.tolist()) == cross and set(top.label_names) == {"cross"}
    assert top.paths == [None] * N_PER and top.images().shape == (N_PER, 3, SIZE, SIZE)
    # any function images -> (B, C, H, W) will do; patches then need a size
    top = query(lambda x: model(x), images, 1, k=N_PER, batch_size=5)
    assert set(top.indices.tolist()) == cross
    with pytest.raises(ValueError, match="field="):
        top.patches()
    assert top.patches(field=11).shape == (N_PER, 3, 11, 11)


# -- streaming = one pass ------------------------------------------------------------------------
@pytest.mark.parametrize("unit, k", [("units:0", 8), ("units:1", 10), ("detectors:1", 6)])
def test_streaming_in_small_batches_equals_one_pass(model, folder, tmp_path, unit, k):
    root, truth = folder
    one = query(model, root, unit, k=k, batch_size=len(truth), cache=False)
    small = query(model, root, unit, k=k, batch_size=3, cache=False)
    cached = query(model, root, unit, k=k, batch_size=3, cache=True, cache_dir=tmp_path)
    for other in (small, cached):
        assert torch.equal(other.indices, one.indices)  # ties (zeros) break by index alike
        assert torch.equal(other.positions, one.positions)
        assert torch.allclose(other.scores, one.scores, atol=1e-6)
    assert len(one) == k


def test_several_units_in_one_pass(model, folder):
    root, _ = folder
    units = ["units:0", "units:1", "detectors:1"]
    many = query(model, root, units, k=5, cache=False, batch_size=4)
    assert [t.unit for t in many] == units
    for t, u in zip(many, units):
        single = query(model, root, u, k=5, cache=False)
        assert torch.equal(t.indices, single.indices)


# -- broken files ---------------------------------------------------------------------------------
def test_broken_files_are_skipped_with_a_warning(model, folder, tmp_path):
    root, truth = folder
    dirty = tmp_path / "dirty"
    shutil.copytree(root, dirty)
    good = (root / "plain" / "plain_000.png").read_bytes()
    (dirty / "cross" / "truncated.png").write_bytes(good[: len(good) // 2])
    (dirty / "plain" / "text.jpg").write_text("this is not a JPEG")
    (dirty / "empty.png").write_bytes(b"")
    bad = {"cross/truncated.png", "plain/text.jpg", "empty.png"}
    for cache in (False, True, True):  # streaming; cache written; cache read
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            top = query(model, dirty, "units:1", k=N_PER, batch_size=3, cache=cache, cache_dir=tmp_path / "c")
        text = " ".join(str(w.message) for w in caught)
        assert all(name in text for name in bad), text
        assert set(top.names) == names_with(truth, "cross")
    stream = ImageFolderStream(dirty, size=SIZE, batch_size=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        n = sum(len(i) for _, i, _ in stream)
    assert n == len(truth) and {stream.name(i) for i in stream.skipped} == bad
    assert len(caught) == 3 and all(issubclass(w.category, UserWarning) for w in caught)


# -- the activation cache ---------------------------------------------------------------------------
class CountForwards:
    """Counts forward passes through a hook point."""

    def __init__(self, model, name: str):
        self.calls = 0
        self.handle = model.hook_points[name].register_forward_hook(self)

    def __call__(self, *_):
        self.calls += 1

    def remove(self):
        self.handle.remove()


def test_second_query_reads_the_cache_and_changes_invalidate_it(model, folder, tmp_path):
    root, truth = folder
    data = tmp_path / "data"
    shutil.copytree(root, data)
    cache = tmp_path / "cache"
    counter = CountForwards(model, "units")
    try:
        first = query(model, data, "units:1", k=N_PER, batch_size=5, cache_dir=cache)
        assert counter.calls == 5  # 22 images in batches of 5
        second = query(model, data, "units:2", k=N_PER, batch_size=7, cache_dir=cache)  # other channel
        assert counter.calls == 5  # read from the cache: the model did not run
        assert set(first.names) == names_with(truth, "cross")
        assert set(second.names) == names_with(truth, "checker")
        assert len(list(cache.iterdir())) == 1

        # a new image in the folder: recomputed, and it can win
        planted = (data / "cross" / "cross_014.png").read_bytes()
        (data / "plain" / "zz_new.png").write_bytes(planted)
        third = query(model, data, "units:1", k=N_PER + 1, cache_dir=cache)
        assert counter.calls > 5 and "plain/zz_new.png" in third.names
        calls = counter.calls

        # the same query again is cached; other weights or another size are not
        query(model, data, "units:0", k=3, cache_dir=cache)
        assert counter.calls == calls
        other = PlantedPatternModel(threshold=0.4)
        assert model_fingerprint(other) != model_fingerprint(model)
        other_counter = CountForwards(other, "units")
        query(other, data, "units:0", k=3, cache_dir=cache)
        assert other_counter.calls > 0
        other_counter.remove()
        query(model, data, "units:0", k=3, cache_dir=cache, size=SIZE + 2)
        assert counter.calls > calls
        # cache=False never touches it
        calls = counter.calls
        query(model, data, "units:0", k=3, cache_dir=cache, cache=False)
        assert counter.calls > calls
    finally:
        counter.remove()
    assert clear_activation_cache(cache) == 4 and not list(cache.iterdir())


def test_layer_summary(model, folder, tmp_path):
    root, truth = folder
    summary = layer_summary(model, root, "units", size=SIZE, batch_size=6, cache_dir=tmp_path, progress=False)
    assert isinstance(summary, LayerSummary) and summary.path is not None
    assert summary.max.shape == (len(truth), 3) and summary.grid == (SIZE // 2, SIZE // 2)
    memory = layer_summary(model, root, "units", size=SIZE, batch_size=6, cache=False, progress=False)
    assert memory.path is None
    images = as_stream(root, size=SIZE).images(range(len(truth)))
    with torch.no_grad():
        acts = model(images)
    assert torch.allclose(memory.scores(1), acts[:, 1].amax(dim=(1, 2)), atol=1e-6)
    assert torch.allclose(summary.scores(2, "mean"), acts[:, 2].mean(dim=(1, 2)), atol=1e-6)


# -- InceptionV1 ----------------------------------------------------------------------------------
def test_inceptionv1_patches_use_receptive_field_arithmetic():
    from circuitscope import InceptionV1, activations
    from circuitscope.core.receptive_field import receptive_field

    torch.manual_seed(0)
    inception = InceptionV1().eval()  # PyTorch's random initialisation is enough here

    images = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    top = top_examples(inception, images, "3a:7", k=3, progress=False, cache=False)
    rf = receptive_field("mixed3a", 64)
    assert top.grid == (rf.positions, rf.positions) and top.patches().shape == (3, 3, rf.size, rf.size)
    (y, x), (t, l, b, r) = top.positions[0].tolist(), top.boxes()[0]
    assert (t + b) // 2 == rf.center(y) and (l + r) // 2 == rf.center(x)
    with torch.no_grad():
        value = activations(inception, images, ["mixed3a"])["mixed3a"][:, 7].amax(dim=(1, 2))
    assert top.indices.tolist() == torch.sort(value, descending=True).indices[:3].tolist()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_gives_the_cpu_answer(folder):
    root, _ = folder
    cpu = query(PlantedPatternModel(), root, "units:0", k=8, cache=False)
    gpu = query(PlantedPatternModel().cuda(), root, "units:0", k=8, cache=False)
    assert gpu.indices.tolist() == cpu.indices.tolist()
    assert torch.allclose(gpu.scores, cpu.scores, atol=1e-4)


def test_dataset_examples_command_line(synthetic_model, tmp_path, monkeypatch, capsys):
    import json

    import numpy as np
    from PIL import Image

    from circuitscope.tools.cli import main

    monkeypatch.setattr("circuitscope.core.models.load_inceptionv1", lambda *a, **k: synthetic_model)
    photos = tmp_path / "photos"
    photos.mkdir()
    gen = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray((gen.random((36, 36, 3)) * 255).astype(np.uint8)).save(photos / f"p{i}.png")
    argv = ["dataset-examples", str(photos), "3a:5", "--k", "2", "--size", "32", "--out", str(tmp_path / "out"),
            "--weights", "synthetic", "--device", "cpu", "--no-progress", "--no-cache"]  # fmt: skip
    assert main(argv) == 0
    assert "TopExamples(3a:5" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "3a_5.json").read_text())
    assert len(record["names"]) == 2 and (tmp_path / "out" / "3a_5_1.png").exists()


def test_write_photo_folder_is_a_seeded_labelled_image_folder(tmp_path):
    from circuitscope.core.datasets import write_photo_folder

    written = write_photo_folder(
        tmp_path / "a", crops_per_photo=2, size=40, names=["chelsea", "coffee"], seed=3
    )
    again = write_photo_folder(
        tmp_path / "b", crops_per_photo=2, size=40, names=["chelsea", "coffee"], seed=3
    )
    assert sorted(p.relative_to(tmp_path / "a").as_posix() for p in written) == [
        "chelsea/chelsea_000.jpg", "chelsea/chelsea_001.jpg", "coffee/coffee_000.jpg", "coffee/coffee_001.jpg",
    ]  # fmt: skip
    assert [p.read_bytes() for p in written] == [p.read_bytes() for p in again], "not deterministic"
    stream = ImageFolderStream(tmp_path / "a", size=40, batch_size=3)
    images, _, _ = next(iter(stream))
    assert images.shape == (3, 3, 40, 40) and 0 <= float(images.min()) and float(images.max()) <= 1
    assert [stream.label_name(i) for i in range(4)] == ["chelsea", "chelsea", "coffee", "coffee"]
    # Crops differ from each other (a random place and size each), not copies of one image.
    assert float((images[0] - images[1]).abs().mean()) > 0.02


def test_top_examples_plot_is_closed_so_a_notebook_shows_it_once(tmp_path):
    import matplotlib.pyplot as plt

    import circuitscope as cs

    texts_of = lambda f: " ".join(t.get_text() for t in f.texts)

    model = PlantedPatternModel()
    images, _, _ = planted_images(n_plain=3, n_per_pattern=1, size=32, seed=0)
    top = cs.top_examples(model, images, "units:0", k=2, progress=False, cache_dir=tmp_path)
    before = plt.get_fignums()
    fig = plotting.top_examples_figure(top)
    assert plt.get_fignums() == before and "PLANTED MODEL" in texts_of(fig) and "SYNTHETIC" not in texts_of(fig)
