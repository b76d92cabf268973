"""Chapter 4 (polysemanticity): its exercise checks and its solution notebook.

* Checks: each passes on the solution notebook's reference code (visible and hidden cases),
  fails on the untouched stub, and fails with the right hint on plausible mistakes (the
  ``MISTAKES`` table; ``tests/mistakes/ch4_polysemanticity.py`` holds the cells the nbgrader
  round trip of ``tests/test_course.py`` submits, and each of them fails here too).
* The solution notebook's layout is checked for every chapter in tests/test_course.py.
* Library: the chapter's demonstrations rest on planted facts (the diversity render of the
  planted polysemantic unit separates its two patterns; the patches of its top examples hold
  the patterns at their centre); the rest of the library is tested in
  ``test_dataset_examples.py`` and ``test_polysemanticity.py``.

The chapter page and the solution notebook are executed by the site build and
``tests/test_course.py``, not here.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import torch
from exercise_harness import (
    PRIVATE_KEYS,
    assert_check_passes,
    assert_hidden_cases_change,
    assert_mistake_fails,
    assert_passes_over_the_wire,
    assert_stub_fails,
    load_mistakes,
    mistake_function,
    private_key,
    reference_functions,
    solution_cells,
    stub_functions,
)

import circuitscope as cs
from circuitscope.checks import CheckFailed
from circuitscope.checks import ch4 as checks
from circuitscope.optvis import channel, diversity, render
from circuitscope.polysemanticity import PlantedPatternModel, count_clusters, planted_images

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ch4_polysemanticity" / "ch4_exercises.ipynb"
ASSIGNMENT_ID = "ch4_polysemanticity"

pytestmark = pytest.mark.usefixtures("one_thread")

EXERCISES = {  # check -> (the function the notebook defines, its grade_id)
    "check_top_k_examples": ("top_k_examples", "ch4-top-k-examples"),
    "check_receptive_patch": ("receptive_patch", "ch4-receptive-patch"),
    "check_diverse_render": ("diverse_render", "ch4-diverse-render"),
    "check_effective_classes": ("effective_classes", "ch4-effective-classes"),
    "check_outgoing_weights": ("outgoing_weights", "ch4-outgoing-weights"),
    "check_facets": ("facets", "ch4-facets"),
}


def _namespace() -> dict:
    """What the solution notebook's setup cell defines (without loading InceptionV1)."""
    return {
        "math": math,
        "Counter": Counter,
        "torch": torch,
        "cs": cs,
        "channel": channel,
        "diversity": diversity,
        "render": render,
        "PlantedPatternModel": PlantedPatternModel,
        "count_clusters": count_clusters,
        "planted_images": planted_images,
    }


@pytest.fixture(scope="module")
def reference():
    return reference_functions(SOLUTION, _namespace())


@pytest.fixture(scope="module")
def stub():
    return stub_functions(SOLUTION, _namespace())


# =============================================================================================
# The checks: the reference passes, the stub and plausible mistakes fail
# =============================================================================================
@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes(reference, check, hidden, capsys):
    assert_check_passes(getattr(checks, check), reference[EXERCISES[check][0]], hidden, capsys, seconds=20)


@pytest.mark.parametrize("key", PRIVATE_KEYS)
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_the_hidden_cases_under_private_keys(reference, check, key, capsys):
    with private_key(key):
        assert_check_passes(getattr(checks, check), reference[EXERCISES[check][0]], True, capsys, seconds=20)


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_hidden_cases_change_with_the_key(check):
    assert_hidden_cases_change(getattr(checks, check))


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_over_the_wire(reference, check, capsys):
    assert_passes_over_the_wire(getattr(checks, check), reference[EXERCISES[check][0]], capsys)


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_stub_fails_with_a_clear_message(stub, check):
    assert_stub_fails(getattr(checks, check), stub[EXERCISES[check][0]])


MISTAKES = {  # name -> (check, only the hidden cases catch it, words of the hint, code)
    "top-k: ranked by the mean": (
        "check_top_k_examples",
        False,
        "MEAN",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            order = torch.sort(acts.flatten(1).mean(1), descending=True, stable=True).indices[:k]
            flat = acts.flatten(1).argmax(1)[order]
            w = acts.shape[-1]
            return order, acts.flatten(1).max(1).values[order], torch.stack([flat // w, flat % w], 1)
    """,
    ),
    "top-k: smallest first": (
        "check_top_k_examples",
        False,
        "descending",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, stable=True).indices[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] // w, flat[order] % w], 1)
    """,
    ),
    "top-k: one pass over everything": (
        "check_top_k_examples",
        False,
        "stream",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            with torch.no_grad():
                acts = cs.activations(model, images, [layer])[layer][:, channel]
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, descending=True, stable=True).indices[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] // w, flat[order] % w], 1)
    """,
    ),
    "top-k: indices within the batch": (
        "check_top_k_examples",
        False,
        "batch's start",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            best = []
            for s in range(0, len(images), batch_size):
                with torch.no_grad():
                    a = cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                mx, flat = a.flatten(1).max(1)
                best += [(float(m), i, int(f), a.shape[-1]) for i, (m, f) in enumerate(zip(mx, flat))]
            best = sorted(best, key=lambda t: -t[0])[:k]
            return (torch.tensor([b[1] for b in best]), torch.tensor([b[0] for b in best]),
                    torch.tensor([[b[2] // b[3], b[2] % b[3]] for b in best]))
    """,
    ),
    "top-k: (col, row)": (
        "check_top_k_examples",
        False,
        "swapped",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, descending=True, stable=True).indices[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] % w, flat[order] // w], 1)
    """,
    ),
    "top-k: ties, higher index first": (
        "check_top_k_examples",
        False,
        "ties",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, stable=True).indices.flip(0)[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] // w, flat[order] % w], 1)
    """,
    ),
    "top-k: last batch dropped": (
        "check_top_k_examples",
        False,
        "shorter batch",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images) - batch_size + 1, batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, descending=True, stable=True).indices[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] // w, flat[order] % w], 1)
    """,
    ),
    "top-k: flat index divided by the height": (
        "check_top_k_examples",
        True,
        "WIDTH",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, descending=True, stable=True).indices[:k]
            h = acts.shape[-2]
            return order, mx[order], torch.stack([flat[order] // h, flat[order] % h], 1)
    """,
    ),
    "patch: rows and columns swapped": (
        "check_receptive_patch",
        False,
        "swapped",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            top, left = int(start + col * jump) - half, int(start + row * jump) - half
            padded = torch.nn.functional.pad(image, (size, size, size, size), value=fill)
            return padded[:, top + size : top + 2 * size, left + size : left + 2 * size]
    """,
    ),
    "patch: no start": (
        "check_receptive_patch",
        False,
        "forget the start",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            top, left = row * jump - half, col * jump - half
            padded = torch.nn.functional.pad(image, (size, size, size, size), value=fill)
            return padded[:, top + size : top + 2 * size, left + size : left + 2 * size]
    """,
    ),
    "patch: slid into the image": (
        "check_receptive_patch",
        False,
        "must not move",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            h, w = image.shape[-2:]
            top = min(max(int(start + row * jump) - half, 0), max(h - size, 0))
            left = min(max(int(start + col * jump) - half, 0), max(w - size, 0))
            padded = torch.nn.functional.pad(image, (0, size, 0, size), value=fill)
            return padded[:, top : top + size, left : left + size]
    """,
    ),
    "patch: zero padding": (
        "check_receptive_patch",
        False,
        "not 0",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            top, left = int(start + row * jump) - half, int(start + col * jump) - half
            padded = torch.nn.functional.pad(image, (size, size, size, size))
            return padded[:, top + size : top + 2 * size, left + size : left + 2 * size]
    """,
    ),
    "patch: padded by size only": (
        "check_receptive_patch",
        True,
        "always size x size",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            top, left = int(start + row * jump) - half, int(start + col * jump) - half
            padded = torch.nn.functional.pad(image, (size, size, size, size), value=fill)
            return padded[:, top + size : top + 2 * size, left + size : left + 2 * size]
    """,
    ),
    "render: diversity added": (
        "check_diverse_render",
        False,
        "SUBTRACT",
        """
        def diverse_render(model, layer, channel_index, n=4, strength=1.0, diversity_layer=None,
                           size=32, steps=48, seed=0):
            objective = channel(layer, channel_index) + strength * diversity(diversity_layer or layer)
            return render(model, objective, batch=n, size=size, steps=steps, seed=seed, progress=False)
    """,
    ),
    "render: no diversity term": (
        "check_diverse_render",
        False,
        "subtract strength",
        """
        def diverse_render(model, layer, channel_index, n=4, strength=1.0, diversity_layer=None,
                           size=32, steps=48, seed=0):
            return render(model, channel(layer, channel_index), batch=n, size=size, steps=steps,
                          seed=seed, progress=False)
    """,
    ),
    "render: one image at a time": (
        "check_diverse_render",
        False,
        "ONE batch",
        """
        def diverse_render(model, layer, channel_index, n=4, strength=1.0, diversity_layer=None,
                           size=32, steps=48, seed=0):
            objective = channel(layer, channel_index) - strength * diversity(diversity_layer or layer)
            return render(model, objective, size=size, steps=steps, seed=seed, progress=False)
    """,
    ),
    "classes: distinct count": (
        "check_effective_classes",
        False,
        "distinct classes",
        """
        def effective_classes(labels):
            labels = labels.tolist() if isinstance(labels, torch.Tensor) else labels
            return float(len({lab for lab in labels if lab != -1}))
    """,
    ),
    "classes: the entropy itself": (
        "check_effective_classes",
        False,
        "entropy itself",
        """
        def effective_classes(labels):
            labels = labels.tolist() if isinstance(labels, torch.Tensor) else labels
            counts = Counter(lab for lab in labels if lab != -1)
            total = sum(counts.values())
            return -sum(c / total * math.log2(c / total) for c in counts.values())
    """,
    ),
    "classes: e ** bits": (
        "check_effective_classes",
        False,
        "mixed bases",
        """
        def effective_classes(labels):
            labels = labels.tolist() if isinstance(labels, torch.Tensor) else labels
            counts = Counter(lab for lab in labels if lab != -1)
            total = sum(counts.values())
            return math.exp(-sum(c / total * math.log2(c / total) for c in counts.values()))
    """,
    ),
    "classes: unlabelled counted": (
        "check_effective_classes",
        True,
        "-1",
        """
        def effective_classes(labels):
            labels = labels.tolist() if isinstance(labels, torch.Tensor) else labels
            counts = Counter(labels)
            total = sum(counts.values())
            return 2 ** -sum(c / total * math.log2(c / total) for c in counts.values())
    """,
    ),
    "classes: a Counter of tensor elements": (
        "check_effective_classes",
        True,
        "tolist",
        """
        def effective_classes(labels):
            counts = Counter(lab for lab in labels if lab != -1)
            total = sum(counts.values())
            return 2 ** -sum(c / total * math.log2(c / total) for c in counts.values())
    """,
    ),
    "weights: incoming": (
        "check_outgoing_weights",
        False,
        "INCOMING",
        """
        def outgoing_weights(weight, channel, k=5):
            summed = weight[channel].flatten(1).sum(1)
            targets = torch.sort(summed, descending=True, stable=True).indices[:k]
            return targets, summed[targets]
    """,
    ),
    "weights: by magnitude": (
        "check_outgoing_weights",
        False,
        "magnitude",
        """
        def outgoing_weights(weight, channel, k=5):
            summed = weight[:, channel].flatten(1).sum(1)
            targets = torch.sort(summed.abs(), descending=True, stable=True).indices[:k]
            return targets, summed[targets]
    """,
    ),
    "weights: maximum over the kernel": (
        "check_outgoing_weights",
        False,
        "SUM",
        """
        def outgoing_weights(weight, channel, k=5):
            peak = weight[:, channel].flatten(1).amax(1)
            targets = torch.sort(peak, descending=True, stable=True).indices[:k]
            return targets, peak[targets]
    """,
    ),
    "weights: ties, higher index first": (
        "check_outgoing_weights",
        False,
        "ties",
        """
        def outgoing_weights(weight, channel, k=5):
            summed = weight[:, channel].flatten(1).sum(1)
            targets = torch.sort(summed, stable=True).indices.flip(0)[:k]
            return targets, summed[targets]
    """,
    ),
    "facets: examples that do not fire kept": (
        "check_facets",
        False,
        "score <= 0",
        """
        def facets(model, images, layer, channel, k=10, batch_size=8):
            with torch.no_grad():
                acts = cs.activations(model, images, [layer])[layer]
            scores = acts[:, channel].flatten(1).max(1).values
            top = torch.sort(scores, descending=True, stable=True).indices[:k]
            vectors = acts[top].flatten(2).amax(2)
            others = torch.cat([vectors[:, :channel], vectors[:, channel + 1:]], 1)
            c = count_clusters(others)
            return [[int(i) for i, a in zip(top, c.assignment) if a == g] for g in range(c.n)]
    """,
    ),
    "facets: one group": (
        "check_facets",
        False,
        "one group",
        """
        def facets(model, images, layer, channel, k=10, batch_size=8):
            with torch.no_grad():
                acts = cs.activations(model, images, [layer])[layer]
            scores = acts[:, channel].flatten(1).max(1).values
            top = torch.sort(scores, descending=True, stable=True).indices[:k]
            return [[int(i) for i in top if scores[i] > 0]]
    """,
    ),
}


def _mistake(code: str):
    return mistake_function(code, _namespace(), {fn for fn, _ in EXERCISES.values()})


def _assert_mistake_caught(name: str) -> None:
    check, needs_hidden, hint, code = MISTAKES[name]
    message = assert_mistake_fails(getattr(checks, check), _mistake(code), hint, needs_hidden)
    assert "expected" in message and "hint" in message


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_plausible_mistake_fails_with_a_hint(name):
    _assert_mistake_caught(name)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistakes_fail_under_a_private_key(name):
    # The hidden cases the grader runs (other values, the same shapes) catch them all the same.
    with private_key(PRIVATE_KEYS[0]):
        _assert_mistake_caught(name)


def test_every_exercise_has_a_mistake_that_fails():
    assert {check for check, *_ in MISTAKES.values()} == set(EXERCISES)


def test_top_k_accepts_any_maximum_on_ties(capsys):
    # A position is "a maximum" of the image's map: on ties (a flat map of zeros, a peak the
    # overlapping max pool copies to its neighbours) the LAST one in row-major order passes too.
    code = """
    def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
        acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                          for s in range(0, len(images), batch_size)]).detach()
        mx = acts.flatten(1).max(1).values
        order = torch.sort(mx, descending=True, stable=True).indices[:k]
        w = acts.shape[-1]
        last = [int((acts[i].flatten() == mx[i]).nonzero().max()) for i in order]
        return order, mx[order], torch.tensor([[f // w, f % w] for f in last])
    """
    fn = _mistake(code)
    assert_check_passes(checks.check_top_k_examples, fn, True, capsys, seconds=20)


def test_round_trip_mistakes_cover_every_exercise_and_fail():
    # The cells tests/test_course.py submits in place of the solutions: each must score 0.
    mistakes = load_mistakes(ASSIGNMENT_ID)
    by_grade_id = {gid: (check, fn) for check, (fn, gid) in EXERCISES.items()}
    assert set(mistakes) == set(by_grade_id) == set(solution_cells(nbformat.read(SOLUTION, as_version=4)))
    # All in one namespace, as in the submitted notebook: facets calls the wrong top_k_examples.
    ns = _namespace()
    for source in mistakes.values():
        exec(compile(source, "<mistake cell>", "exec"), ns)  # noqa: S102
    for gid, (check, fn) in by_grade_id.items():
        assert f"def {fn}(" in mistakes[gid], gid
        with pytest.raises(CheckFailed):
            getattr(checks, check)(ns[fn])


# =============================================================================================
# The planted facts the chapter's figures rest on
# =============================================================================================
def test_diversity_splits_the_planted_unit_into_its_two_patterns():
    # The chapter's and exercise 3's figure: with the diversity term each image of the batch
    # specialises in one pattern (one detector fires, the other hardly); without it, both fire.
    model = PlantedPatternModel(threshold=0.0)
    obj = channel("units", 0)
    plain = render(model, obj, batch=4, size=32, steps=40, seed=0, progress=False)
    diverse = render(
        model, obj - 1.0 * diversity("units"), batch=4, size=32, steps=40, seed=0, progress=False
    )
    with torch.no_grad():
        det_plain = cs.activations(model, plain, ["detectors"])["detectors"].amax(dim=(2, 3))
        det_diverse = cs.activations(model, diverse, ["detectors"])["detectors"].amax(dim=(2, 3))
    ratio = lambda d: d.min(1).values / d.max(1).values.clamp_min(1e-6)
    assert bool((ratio(det_plain) > 0.5).all()), det_plain  # both patterns in every image
    assert bool((ratio(det_diverse) < 0.2).all()), det_diverse  # one pattern per image
    assert set(det_diverse.argmax(1).tolist()) == {0, 1}, "both patterns appear in the batch"


def test_patches_of_the_top_examples_hold_the_pattern_at_their_centre(reference):
    images, _, truth = planted_images(n_plain=6, n_per_pattern=3, size=40, seed=3)
    model = PlantedPatternModel()
    idx, scores, pos = reference["top_k_examples"](model, images, "units", 0, 6, 4)
    assert {truth[i][0] for i in idx.tolist()} == {"cross", "checker"} and bool((scores > 0).all())
    rf = model.receptive_field("units", 40)
    for i, (r, c) in zip(idx.tolist(), pos.tolist()):
        centre = (rf.start + r * rf.jump, rf.start + c * rf.jump)
        cy, cx = truth[i][1]
        assert abs(centre[0] - cy) <= rf.jump and abs(centre[1] - cx) <= rf.jump, (i, centre, truth[i])
        patch = reference["receptive_patch"](images[i], r, c, rf.size, rf.jump, rf.start)
        assert patch.shape == (3, rf.size, rf.size)


# =============================================================================================
# Library additions for the chapter page
# =============================================================================================
def test_write_photo_folder_is_a_seeded_labelled_image_folder(tmp_path):
    from circuitscope.datasets import ImageFolderStream, write_photo_folder

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


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts)


def test_outgoing_weights_figure_marks_the_highlighted_units():
    from circuitscope.polysemanticity import outgoing_weights_figure

    fig = outgoing_weights_figure(PlantedPatternModel(), "detectors:0", k=2, highlight=["units:1"])
    ax = fig.axes[0]
    texts = _texts(ax)
    assert "largest: units:0 +1.00, units:1 +1.00" in texts and "units:1 (rank 2)" in texts
    assert len(ax.patches) == 3 and "PLANTED MODEL" in _texts(fig) and "SYNTHETIC" not in _texts(fig)


def test_top_examples_plot_is_closed_so_a_notebook_shows_it_once(tmp_path):
    import matplotlib.pyplot as plt

    model = PlantedPatternModel()
    images, _, _ = planted_images(n_plain=3, n_per_pattern=1, size=32, seed=0)
    top = cs.top_examples(model, images, "units:0", k=2, progress=False, cache_dir=tmp_path)
    before = plt.get_fignums()
    fig = top.plot()
    assert plt.get_fignums() == before and "PLANTED MODEL" in _texts(fig) and "SYNTHETIC" not in _texts(fig)
