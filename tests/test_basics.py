"""Labels, images, device and profile helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED

import circuitscope as cs
from circuitscope.core.images import SAMPLE_PHOTOS


def test_labels_are_the_shipped_file():
    labels = cs.labels()
    assert len(labels) == 1001 and labels[0] == "dummy"
    shared = SHARED / "data" / "inception5h_labels.txt"
    if shared.exists():
        assert labels == [line.strip() for line in shared.read_text().splitlines()]
    assert cs.label(1005) == "(unlabelled 1005)"
    with pytest.raises(IndexError):
        cs.label(1008)


@pytest.mark.parametrize("name", sorted(SAMPLE_PHOTOS))
def test_sample_photos_are_bundled_rgb_in_unit_range(name):
    img = cs.sample_image(name, size=97)
    assert img.shape == (3, 97, 97) and img.dtype == torch.float32
    assert 0 <= float(img.min()) and float(img.max()) <= 1 and float(img.std()) > 0.05


def test_preprocess_crops_the_centre_and_scales_to_unit_range():
    arr = np.zeros((100, 300, 3), dtype=np.uint8)
    arr[:, 100:200] = 255  # a white centre third: exactly what a centre crop keeps
    out = cs.preprocess(arr, size=50)
    assert out.shape == (3, 50, 50)
    assert float(out[:, :, 2:-2].min()) > 0.99  # antialiasing only touches the edge columns
    grey = cs.preprocess(np.full((40, 30), 0.5, dtype=np.float32), size=20)
    assert grey.shape == (3, 20, 20) and torch.allclose(grey, torch.full_like(grey, 0.5), atol=1e-5)
    with pytest.raises(KeyError, match="choose from"):
        cs.sample_image("dog")


def test_device_and_profile_overrides(monkeypatch):
    assert cs.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("CIRCUITSCOPE_DEVICE", "cpu")
    assert cs.get_device() == torch.device("cpu")
    assert cs.profile().name == "cpu"
    assert cs.profile("gpu").render_steps == 512 and cs.profile("gpu").render_size == 128
    p = cs.profile(render_steps=7)
    assert p.render_steps == 7 and p.name == "cpu"
    monkeypatch.setenv("CIRCUITSCOPE_PROFILE", "gpu")
    assert cs.profile().name == "gpu"
    with pytest.raises(ValueError, match="choose from"):
        cs.profile("tpu")


def test_seed_everything_makes_runs_repeatable():
    cs.seed_everything(3)
    a = torch.rand(3), np.random.rand(2)
    cs.seed_everything(3)
    b = torch.rand(3), np.random.rand(2)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_cli_info_and_weights_commands(tmp_path, capsys):
    from circuitscope.tools.cli import main

    assert main(["info"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out  # offline, nothing cached
    assert main(["weights", "download"]) == 1
    assert "CIRCUITSCOPE_WEIGHTS" in capsys.readouterr().err
    bogus = tmp_path / "x.pth"
    bogus.write_bytes(b"nope")
    assert main(["weights", "install", str(bogus)]) == 1
    assert "git blob SHA-1" in capsys.readouterr().err


def test_exports_survive_importing_every_submodule():
    """A submodule named like an export would replace it on import: none may."""
    import importlib
    import pkgutil
    import types

    import circuitscope

    for info in pkgutil.walk_packages(circuitscope.__path__, "circuitscope."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    for name in circuitscope.__all__:
        assert not isinstance(getattr(circuitscope, name), types.ModuleType), name


def test_no_progress_bar_when_tqdm_is_disabled_by_the_environment(monkeypatch):
    """An explicit disable=False would override TQDM_DISABLE and leave an empty widget on a page."""
    from circuitscope.core.progress import bar, bar_disabled

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert not bar_disabled(True) and bar_disabled(False)
    monkeypatch.setenv("TQDM_DISABLE", "1")  # a site build: no widget, even when progress=True
    assert bar_disabled(True) and bar_disabled(False)
    assert bar(range(3), progress=True).disable


def test_the_library_carries_no_course_tooling():
    """`import circuitscope` (and its checks) loads neither the course package nor nbgrader."""
    import subprocess
    import sys

    code = ("import sys, circuitscope, circuitscope.checks.ch1\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('circuitscope_course', 'nbgrader')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
