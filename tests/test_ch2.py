"""Chapter 2: what is particular to its exercise checks.

What every chapter's exercises satisfy (the reference passes, the stub and the named mistakes of
``tests/mistakes/ch2_feature_visualization.py`` fail, ...) is tested in ``tests/test_chapters.py``;
``plotting.image_grid`` in ``test_plotting.py``. Here: a kernel that patches ``allclose`` cannot
turn a failure into a pass; only the non-linear objective catches an objective taken on the
batch's summed activations; an equivalent torchvision solution passes.
"""

from __future__ import annotations

import pytest
import torch
from exercise_harness import OverTheWire, chapter

from circuitscope.checks import CheckFailed

pytestmark = pytest.mark.usefixtures("one_thread")

CHAPTER = chapter("ch2_feature_visualization")
checks = CHAPTER.checks


class _PatchedKernel(OverTheWire):
    """The grader and a kernel whose learner cell made every comparison succeed: the patch holds
    only while the kernel answers (its own process, in grading), not while the grader judges."""

    def __init__(self, fn, monkeypatch):
        super().__init__(fn)
        self.monkeypatch = monkeypatch

    def invoke(self, case):
        from circuitscope.checks import remote, wire

        request = wire.decode(wire.encode(wire.request(case, self.name)))
        with self.monkeypatch.context() as m:
            m.setattr(torch, "allclose", lambda *a, **k: True)
            m.setattr(torch, "isclose", lambda a, b, *r, **k: torch.ones_like(torch.as_tensor(a), dtype=torch.bool))
            reply = wire.encode(remote.answer(request, self.namespace))
        return wire.decode(reply)


def test_checks_resist_a_patched_allclose(monkeypatch):
    # A learner cell that makes every comparison succeed in its kernel must not turn a failure into a
    # pass: the verdict is computed in the grader's process, from the result as data.
    from circuitscope.checks.runner import run

    with pytest.raises(CheckFailed, match="sigmoid"):
        run(checks.check_to_rgb, _PatchedKernel(CHAPTER.mistake(CHAPTER.named["rgb: no sigmoid"].code), monkeypatch))


def test_only_the_nonlinear_objective_catches_batch_summed_activations():
    # the linear cases (a channel mean) pass it; the first failure is the diversity case's
    code = CHAPTER.named["render: objective on the batch's summed activations"].code
    with pytest.raises(CheckFailed) as failure:
        checks.check_render_loop(CHAPTER.mistake(code), hidden=True)
    assert "diversity" in str(failure.value).splitlines()[0]


def test_an_equivalent_torchvision_solution_passes():
    code = """
        def scale_and_rotate(x, factor, degrees):
            import torchvision.transforms.v2.functional as TF
            h, w = x.shape[-2:]
            size = [int(factor * h), int(factor * w)]
            if size != [h, w]:
                x = TF.resize(x, size, antialias=False)
            return TF.rotate(x, float(degrees), interpolation=TF.InterpolationMode.BILINEAR)
    """
    checks.check_scale_and_rotate(CHAPTER.mistake(code), hidden=True)

