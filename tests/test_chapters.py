"""What every chapter's exercises must satisfy, for the five chapters at once.

The exercises are read from the solution notebooks (``solutions/<chapter>/*.ipynb``): each test
cell ``chN.check_x(fn)`` pairs a check with the function its solution cell (grade id without
``-test``) defines. The plausible mistakes are ``tests/mistakes/<chapter>.py``'s ``NAMED``.

* The reference (the solution cells) passes every check, visible and hidden cases, under
  several private keys, and with every case sent over the grader's wire format, in time.
* The hidden cases draw their values from the private key; the visible ones do not.
* The untouched stub fails every check with "not implemented", not a raw error.
* Every named mistake fails its check with its hint (also under a private key); every exercise
  has one; the first of each, the nbgrader round trip's submission, fails visibly, all of them
  in one notebook as nbgrader runs them.

What is particular to one chapter's exercises stays in ``tests/test_chN.py``.
"""

from __future__ import annotations

import nbformat
import pytest
from exercise_harness import (
    CHAPTERS,
    PRIVATE_KEYS,
    assert_check_passes,
    assert_hidden_cases_change,
    assert_named_mistake_fails,
    assert_passes_over_the_wire,
    assert_stub_fails,
    chapter,
    first_mistakes,
    load_mistakes,
    private_key,
    run_cells,
    solution_cells,
)

from circuitscope.checks import CheckFailed

pytestmark = pytest.mark.usefixtures("one_thread")

#: Seconds a check may take on the reference (10 unless named): a few seconds at most on two idle
#: cores; chapters 4 and 5 render and train, and the CPU here is shared.
SECONDS = {"ch4_polysemanticity": 20, "ch5_closing_thoughts": 30}

#: Checks whose hidden cases hold nothing random (exact geometry on fixed arguments and a
#: planted model): the same under any key.
WITHOUT_RANDOM_VALUES = {"ch3_circuits": {"check_curve_stimulus", "check_tuning_curve"}}

EXERCISES = [
    pytest.param(name, exercise, id=f"{name}-{exercise.check}")
    for name in CHAPTERS
    for exercise in chapter(name).exercises
]
MISTAKES = [pytest.param(name, mistake, id=f"{name}-{mistake}") for name in CHAPTERS for mistake in chapter(name).named]


def test_the_five_chapters_are_found():
    assert CHAPTERS == ("ch1_introduction", "ch2_feature_visualization", "ch3_circuits",
                        "ch4_polysemanticity", "ch5_closing_thoughts")  # fmt: skip
    assert set(SECONDS) | set(WITHOUT_RANDOM_VALUES) <= set(CHAPTERS)
    for name, checks in WITHOUT_RANDOM_VALUES.items():
        assert checks <= {e.check for e in chapter(name).exercises}, name


@pytest.mark.parametrize("name", CHAPTERS)
def test_each_solution_cell_has_one_check_on_the_function_it_defines(name):
    ch = chapter(name)
    cells = solution_cells(nbformat.read(ch.notebook, as_version=4))
    assert ch.exercises and [e.grade_id for e in ch.exercises] == list(cells)
    assert len({e.check for e in ch.exercises}) == len(ch.exercises), "a check is called twice"
    for exercise in ch.exercises:
        assert f"def {exercise.function}(" in cells[exercise.grade_id], exercise
        assert callable(ch.reference[exercise.function]) and callable(ch.stub[exercise.function])
    # every check of the chapter's module is used by an exercise
    public = {n for n in getattr(ch.checks, "__all__", dir(ch.checks)) if n.startswith("check_")}
    assert public == {e.check for e in ch.exercises}


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("name, exercise", EXERCISES)
def test_reference_passes(name, exercise, hidden, capsys):
    ch = chapter(name)
    assert_check_passes(ch.check(exercise.check), ch.reference[exercise.function], hidden, capsys,
                        seconds=SECONDS.get(name, 10))  # fmt: skip


@pytest.mark.parametrize("key", PRIVATE_KEYS)
@pytest.mark.parametrize("name, exercise", EXERCISES)
def test_reference_passes_the_hidden_cases_under_private_keys(name, exercise, key, capsys):
    ch = chapter(name)
    with private_key(key):
        assert_check_passes(ch.check(exercise.check), ch.reference[exercise.function], True, capsys,
                            seconds=SECONDS.get(name, 10))  # fmt: skip


@pytest.mark.parametrize("name, exercise", EXERCISES)
def test_reference_passes_over_the_wire(name, exercise, capsys):
    ch = chapter(name)
    assert_passes_over_the_wire(ch.check(exercise.check), ch.reference[exercise.function], capsys)


@pytest.mark.parametrize("name, exercise", EXERCISES)
def test_hidden_cases_change_with_the_key(name, exercise):
    changes = exercise.check not in WITHOUT_RANDOM_VALUES.get(name, set())
    assert_hidden_cases_change(chapter(name).check(exercise.check), changes=changes)


@pytest.mark.parametrize("name, exercise", EXERCISES)
def test_stub_fails(name, exercise):
    ch = chapter(name)
    assert_stub_fails(ch.check(exercise.check), ch.stub[exercise.function])


def _assert_named_mistake_caught(name: str, mistake: str) -> None:
    ch = chapter(name)
    m = ch.named[mistake]
    assert_named_mistake_fails(ch.check(m.check), ch.mistake(m.code), m)


@pytest.mark.parametrize("name, mistake", MISTAKES)
def test_plausible_mistake_fails_with_its_hint(name, mistake):
    _assert_named_mistake_caught(name, mistake)


@pytest.mark.parametrize("name, mistake", MISTAKES)
def test_mistakes_fail_under_a_private_key(name, mistake):
    # The hidden cases the grader runs (other values, the same shapes) catch them all the same.
    with private_key(PRIVATE_KEYS[0]):
        _assert_named_mistake_caught(name, mistake)


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_exercise_has_a_mistake_that_fails(name):
    ch = chapter(name)
    assert {m.check for m in ch.named.values()} == {e.check for e in ch.exercises}
    for mistake in ch.named.values():
        assert [f for f in ch.functions if f"def {f}(" in mistake.code], mistake


@pytest.mark.parametrize("name", CHAPTERS)
def test_round_trip_mistakes_fail_visibly_in_one_notebook(name):
    # tests/test_course.py grades them with the real nbgrader (slow): here, in one namespace as in
    # the submitted notebook (only the setup cell's names, no test helpers), each fails already its
    # visible cases, with its hint.
    ch = chapter(name)
    cells = load_mistakes(name)
    assert cells == first_mistakes(ch.named, ch.notebook)
    assert list(cells) == [e.grade_id for e in ch.exercises]
    first = {}
    for mistake in ch.named.values():
        first.setdefault(mistake.check, mistake)
    assert not any(m.needs_hidden for m in first.values()), "the round trip's mistakes should fail visibly"
    namespace = run_cells(cells, ch.namespace(helpers=False))
    for exercise in ch.exercises:
        assert f"def {exercise.function}(" in cells[exercise.grade_id], exercise
        with pytest.raises(CheckFailed) as failure:
            ch.check(exercise.check)(namespace[exercise.function])
        assert first[exercise.check].hint in str(failure.value), (exercise, str(failure.value))
