"""Chapter 4 (polysemanticity): what is particular to its exercise checks.

What every chapter's exercises satisfy (the reference passes, the stub and the named mistakes of
``tests/mistakes/ch4_polysemanticity.py`` fail, ...) is tested in ``tests/test_chapters.py``; the
library's planted facts the chapter's figures rest on in ``test_polysemanticity.py`` and
``test_dataset_examples.py``. Here: any maximum is accepted on ties, and the reference's patches
of the top examples hold the planted pattern at their centre.
"""

from __future__ import annotations

import pytest
from exercise_harness import assert_check_passes, chapter

from circuitscope.methods.planted import PlantedPatternModel, planted_images

pytestmark = pytest.mark.usefixtures("one_thread")

CHAPTER = chapter("ch4_polysemanticity")
checks = CHAPTER.checks


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
    fn = CHAPTER.mistake(code)
    assert_check_passes(checks.check_top_k_examples, fn, True, capsys, seconds=20)



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

