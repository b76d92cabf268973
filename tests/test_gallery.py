"""The layer gallery (a local "Microscope"): files, the weights-state stamps, resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import circuitscope.tools.gallery as G
from circuitscope.core.provenance import weights_caption

SMALL = {"size": 16, "steps": 2, "batch_size": 2, "progress": False}


def test_parse_channels():
    assert G.parse_channels("0-3,7, 5-5", 10) == [0, 1, 2, 3, 5, 7]
    assert G.parse_channels(None, 3) == [0, 1, 2]
    assert G.parse_channels([4, 2, 2], 5) == [2, 4]
    with pytest.raises(ValueError, match="outside"):
        G.parse_channels("0-10", 10)
    with pytest.raises(ValueError, match="cannot read"):
        G.parse_channels("a-b", 10)


def test_gallery_writes_stamped_pngs_and_an_index(synthetic_model, tmp_path):
    index = G.render_gallery(synthetic_model, "conv2d0", "0-2", tmp_path, **SMALL)
    assert index == tmp_path / "index.html"
    names = sorted(p.name for p in tmp_path.glob("channel_*.png"))
    assert names == ["channel_0000.png", "channel_0001.png", "channel_0002.png"]
    png = np.asarray(Image.open(tmp_path / "channel_0001.png").convert("RGB"))
    assert png.shape[1] == 128 and png.shape[0] > 128  # 16 px enlarged 8x, plus the band
    band = png[128:]
    red = (band[..., 0] > 150) & (band[..., 1] < 60) & (band[..., 2] < 80)
    white = (band > 200).all(-1)
    assert red.mean() > 0.5 and white.any()  # a red band with (white) text on it
    page = index.read_text()
    assert "conv2d0" in page and "synthetic weights" in page.lower()
    assert all(f'src="{n}"' in page for n in names)
    assert "http://" not in page and "https://" not in page  # self-contained
    meta = json.loads((tmp_path / "gallery.json").read_text())
    assert meta["layer"] == "conv2d0" and meta["synthetic"] is True and meta["weights_state"] == "synthetic"
    assert Image.open(tmp_path / "channel_0001.png").text["Comment"] == weights_caption(synthetic_model)


def test_gallery_resumes_where_it_stopped(synthetic_model, tmp_path, monkeypatch):
    G.render_gallery(synthetic_model, "conv2d1", "0-3", tmp_path, **SMALL)
    (tmp_path / "channel_0002.png").unlink()
    rendered = []
    real_render = G.render

    def counting_render(model, objectives, **kw):
        rendered.extend(o.n for o in objectives)
        return real_render(model, objectives, **kw)

    monkeypatch.setattr(G, "render", counting_render)
    G.render_gallery(synthetic_model, "conv2d1", "0-5", tmp_path, **SMALL)
    assert rendered == [2, 4, 5]
    assert len(list(tmp_path.glob("channel_*.png"))) == 6
    with pytest.raises(ValueError, match="different gallery"):
        G.render_gallery(synthetic_model, "conv2d1", "0-5", tmp_path, **{**SMALL, "size": 24})


def test_each_state_gets_its_band():
    image = torch.rand(3, 128, 128)
    assert G.to_pil(image, "real").size == (128, 128) and G.to_pil(image, "published").size == (128, 128)
    for state, rgb in [("synthetic", (176, 0, 32)), ("unverified", (179, 92, 0))]:
        png = np.asarray(G.to_pil(image, state))
        assert png.shape[0] > 128
        colours, counts = np.unique(png[128:].reshape(-1, 3), axis=0, return_counts=True)
        assert tuple(colours[counts.argmax()]) == rgb, state  # the band's colour, under white text


def test_an_unverified_gallery_says_so_everywhere(synthetic_model, tmp_path, monkeypatch):
    """Made with an unverified file: never captioned as the published InceptionV1's weights."""
    import copy

    model = copy.deepcopy(synthetic_model)  # the fixture's model must not change
    model.weights_state, model.weights_source = "unverified", "/data/inception5h.pth (unverified: 0123abcd)"
    G.render_gallery(model, "conv2d0", "0", tmp_path, **SMALL)
    page = (tmp_path / "index.html").read_text()
    assert "UNVERIFIED WEIGHTS" in page and "0123abcd" in page
    assert "InceptionV1 (inception5h) weights" not in page and "SYNTHETIC" not in page
    png = Image.open(tmp_path / "channel_0000.png")
    assert png.text["Comment"] == weights_caption(model) and "0123abcd" in png.text["Source"]
    assert png.size[1] > png.size[0]  # the orange band
    assert json.loads((tmp_path / "gallery.json").read_text())["weights_state"] == "unverified"


def test_a_real_gallery_has_no_band_and_names_the_file(synthetic_model, tmp_path):
    import copy

    model = copy.deepcopy(synthetic_model)
    model.weights_state, model.weights_source = "real", "/data/inception5h.pth (hash verified)"
    G.render_gallery(model, "conv2d0", "0", tmp_path, **SMALL)
    page = (tmp_path / "index.html").read_text()
    assert weights_caption(model) in page and "/data/inception5h.pth" in page and "SYNTHETIC" not in page
    png = Image.open(tmp_path / "channel_0000.png")
    assert png.size[0] == png.size[1] and png.text["Comment"] == weights_caption(model)


def test_gallery_command_line(synthetic_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("circuitscope.core.models.load_inceptionv1", lambda *a, **k: synthetic_model)
    argv = ["conv2d0", "--channels", "3,4", "--out", str(tmp_path), "--size", "16", "--steps", "1",
            "--weights", "synthetic", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert G.gallery_main(argv) == 0
    assert (tmp_path / "channel_0004.png").exists()
    out = capsys.readouterr().out
    assert "synthetic" in out.lower() and "index.html" in out


# -- the whole-model Microscope ----------------------------------------------------------------
def _image_folder(root):
    gen = np.random.default_rng(0)
    root.mkdir()
    for i in range(6):
        Image.fromarray((gen.random((36, 36, 3)) * 255).astype(np.uint8)).save(root / f"photo{i}.png")
    return root


def test_parse_channels_takes_python_slices():
    assert G.parse_channels("0:4", 10) == [0, 1, 2, 3]
    assert G.parse_channels("2:3,7", 10) == [2, 7]


def test_group_diversity_compares_within_groups_only():
    acts = {"x": torch.rand(6, 4, 5, 5)}
    acts["x"][3:] = acts["x"][:3]  # group 2 repeats group 1: the same values if groups are kept apart
    values = G.GroupDiversity("x", 3)(acts)
    assert values.shape == (6,)
    torch.testing.assert_close(values[:3], values[3:])
    from circuitscope.methods.optvis import diversity

    torch.testing.assert_close(values[:3], diversity("x")({"x": acts["x"][:3]}))


def test_microscope_end_to_end_and_resumable(synthetic_model, tmp_path, monkeypatch, capsys):
    """``circuitscope gallery --layers ... --channels 0:4 --size 32 --steps 4``: the CI-sized run."""
    monkeypatch.setattr("circuitscope.core.models.load_inceptionv1", lambda *a, **k: synthetic_model)
    photos, out = _image_folder(tmp_path / "photos"), tmp_path / "site"
    argv = ["--layers", "mixed3a,mixed3b", "--channels", "0:4", "--size", "32", "--steps", "4", "--diversity", "2",
            "--examples", str(photos), "--k", "3", "--image-size", "32", "--batch-size", "4", "--out", str(out),
            "--weights", "synthetic", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert G.gallery_main(argv) == 0
    printed = capsys.readouterr().out
    assert "mixed3a" in printed and "mixed3b" in printed and "total" in printed  # time per layer
    index = (out / "index.html").read_text()
    assert 'href="mixed3a/index.html"' in index and 'href="mixed3b/index.html"' in index
    for layer in ("mixed3a", "mixed3b"):
        folder = out / layer
        assert sorted(p.name for p in folder.glob("channel_*.png")) == [G.png_name(c) for c in range(4)]
        grid = (folder / "index.html").read_text()
        assert 'href="channel_0002.html"' in grid and 'href="../index.html"' in grid
        page = (folder / "channel_0002.html").read_text()
        assert 'src="channel_0002.png"' in page and "diversity/channel_0002_1.png" in page
        assert "examples/channel_0002_0.png" in page and "photo" in page
        assert (folder / "examples" / "channel_0002_2.png").exists()
        assert "synthetic weights" in page.lower()
        assert "http://" not in grid and "src=\"http" not in page  # self-contained pages
    # The articles published renders of mixed3b (from the mirror), none of mixed3a.
    if (out / "mixed3b" / "published" / "channel_0001.png").exists():
        assert "published/channel_0001.png" in (out / "mixed3b" / "channel_0001.html").read_text()
        assert "CC BY 4.0" in (out / "mixed3b" / "channel_0001.html").read_text()
    assert not (out / "mixed3a" / "published").exists()
    record = json.loads((out / "microscope.json").read_text())
    assert set(record["layers"]) == {"mixed3a", "mixed3b"} and record["layers"]["mixed3a"]["seconds"] > 0

    # Interrupted: a render and a diversity render are lost; the rerun does only those.
    (out / "mixed3a" / "channel_0001.png").unlink()
    (out / "mixed3b" / "diversity" / "channel_0003_1.png").unlink()
    rendered = []
    real_render = G.render

    def counting(model, objectives, **kw):
        rendered.append([o.n for o in objectives] if isinstance(objectives, list) else objectives.description)
        return real_render(model, objectives, **kw)

    monkeypatch.setattr(G, "render", counting)
    assert G.gallery_main(argv) == 0
    assert rendered[0] == [1] and len(rendered) == 2 and "diversity" in rendered[1]
    assert (out / "mixed3a" / "channel_0001.png").exists()
    assert (out / "mixed3b" / "diversity" / "channel_0003_1.png").exists()


def test_gallery_needs_a_layer_or_a_microscope(tmp_path):
    with pytest.raises(ValueError, match="either one LAYER"):
        G.gallery_main(["--out", str(tmp_path)])
