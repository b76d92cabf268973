"""Chapter 1: what is particular to its exercise checks.

What every chapter's exercises satisfy (the reference passes, the stub and the named mistakes of
``tests/mistakes/ch1_introduction.py`` fail, ...) is tested in ``tests/test_chapters.py``; the
library the chapter uses in ``test_receptive_field.py``, ``test_classify.py``,
``test_channels.py`` and ``test_plotting.py``. Here: other correct answers pass (another resize,
ties broken the other way, other containers), the capture check names the hooks a learner left
behind, and a patched ``allclose`` does not turn a failure into a pass.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from exercise_harness import OverTheWire, chapter

from circuitscope.checks import CheckFailed
from circuitscope.checks.runner import judge

CHAPTER = chapter("ch1_introduction")
checks = CHAPTER.checks


@pytest.mark.parametrize(
    "name, code",
    [
        (
            "PIL resize",
            """
        def preprocess(image, size=224):
            from PIL import Image
            arr = np.asarray(image)
            if arr.dtype != np.uint8:
                arr = (arr * 255).round().astype(np.uint8)
            img = Image.fromarray(arr).convert("RGB")
            w, h = img.size
            s = size / min(w, h)
            img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
            w, h = img.size
            l, t = (w - size) // 2, (h - size) // 2
            return torch.from_numpy(np.array(img.crop((l, t, l + size, t + size)))).permute(2, 0, 1) / 255.0
    """,
        ),
        (
            "torchvision, no antialiasing",
            """
        def preprocess(image, size=224):
            import torchvision.transforms.functional as TF
            x = cs.images.to_tensor(image)
            x = TF.resize(x, size, antialias=False)
            return TF.center_crop(x, size).clamp(0, 1)
    """,
        ),
    ],
)
def test_other_correct_preprocessing_passes(name, code):
    ns = CHAPTER.namespace()
    exec(compile(textwrap.dedent(code), "<alternative>", "exec"), ns)  # noqa: S102
    checks.check_preprocess(ns["preprocess"], hidden=True)


@pytest.mark.parametrize(
    "check, code",
    [
        (  # the last position of a tied maximum, not the first
            "check_strongest_patch",
            """
        def strongest_patch(acts, channel, layer, input_size=224):
            m = acts[channel]
            row, col = divmod(int((m == m.max()).flatten().nonzero()[-1]), m.shape[1])
            return library_receptive_field(layer, input_size).box(row, col)
    """,
        ),
        (  # among equal means, the larger channel index first
            "check_strongest_channels",
            """
        def strongest_channels(acts, k=10):
            means = acts.mean(dim=(2, 3))
            rows = [sorted(range(means.shape[1]), key=lambda c: (-float(row[c]), -c))[:k] for row in means]
            channels = torch.tensor(rows)
            return means.gather(1, channels), channels
    """,
        ),
        (  # among equal probabilities, the larger class index first; a namedtuple per class
            "check_top_k",
            """
        def top_k_classes(model, images, k=5):
            from collections import namedtuple
            Top = namedtuple("Top", "index label probability")
            probs = torch.softmax(model(images), dim=-1)
            return [[Top(c, cs.label(c), float(row[c])) for c in
                     sorted(range(row.shape[0]), key=lambda c: (-float(row[c]), -c))[:k]] for row in probs]
    """,
        ),
        (  # torch.topk's own return value, and an OrderedDict
            "check_capture",
            """
        def capture_activations(model, images, names):
            from collections import OrderedDict
            store = OrderedDict()
            handles = [model.hook_points[n].register_forward_hook(
                lambda m, i, o, n=n: store.__setitem__(n, o.detach())) for n in names]
            try:
                model(images)
            finally:
                for h in handles:
                    h.remove()
            return store
    """,
        ),
        (
            "check_strongest_channels",
            """
        def strongest_channels(acts, k=10):
            return acts.mean(dim=(2, 3)).topk(k, dim=1)
    """,
        ),
    ],
)
def test_other_correct_answers_pass(check, code):
    # Ties may be broken either way (the case labels say so); containers may be namedtuples,
    # torch.return_types or dict subclasses.
    fn = CHAPTER.mistake(code)
    getattr(checks, check)(fn, hidden=True)
    getattr(checks, check)(OverTheWire(fn), hidden=True)

def test_hooks_left_after_the_planted_failure_are_named():
    def leaves_hooks(model, images, names):
        for name in names:
            model.hook_points[name].register_forward_hook(lambda *a: None)
        return {name: model(images) for name in names}

    case = next(c for c in checks.check_capture.cases(True) if c.raises)
    with pytest.raises(CheckFailed, match="after the forward pass raised an error") as failure:
        judge(checks.check_capture, case, OverTheWire(leaves_hooks).invoke(case))
    assert "hook_points.conv2d0_pre_relu" in str(failure.value) and "finally" in str(failure.value)


def test_a_global_hook_left_behind_is_named():
    handles = []

    def capture_activations(model, images, names):
        store = {}
        handles.append(torch.nn.modules.module.register_module_forward_hook(
            lambda m, i, o: store.update({n: o for n in names if m is model.hook_points[n]})))
        model(images)
        return store

    try:
        with pytest.raises(CheckFailed, match="hooks still on the global hooks"):
            checks.check_capture(capture_activations)
    finally:
        for handle in handles:
            handle.remove()


def test_a_global_hook_set_before_the_call_is_not_blamed(reference, capsys):
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *a: None)
    try:
        checks.check_capture(reference["capture_activations"])
    finally:
        handle.remove()
    assert capsys.readouterr().out.startswith("\u2714")


def test_checks_resist_a_patched_allclose(reference, monkeypatch):
    # A learner cell that makes every comparison succeed must not turn a failure into a pass.
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    with pytest.raises(CheckFailed):
        checks.check_strongest_channels(CHAPTER.mistake(CHAPTER.named["channels: sum, not mean"].code))
