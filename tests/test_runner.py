"""The check runner, its wire format and the grader's reading of test cells.

* The runner: a case passes or fails with one clean block (what, expected, got, hint); the first
  matching mistake gives the hint; an input modified in place fails; errors get hints.
* The wire format carries data only: a pickle holding code is refused, never run.
* The grader's plan of a test cell accepts imports and check calls only.
* Instant feedback in a real (plain) Jupyter kernel: the same success line, and a failure shown
  as one block without the check's own code.
"""

from __future__ import annotations

import base64
import pickle
import re

import nbformat
import numpy as np
import pytest
import torch
from exercise_harness import OverTheWire
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from circuitscope.checks import remote, wire
from circuitscope.checks.runner import (
    Apply,
    Attr,
    Call,
    Case,
    CheckFailed,
    Exercise,
    Local,
    Mistake,
    Opaque,
    Outcome,
    Recipe,
    run,
    to_data,
)
from circuitscope_course.verdicts import PlanError, imports, plan


def _double_cases(hidden):
    x = torch.arange(6.0).reshape(2, 3)
    yield Case("double(x)", (x,), expect=x * 2, hint="multiply by 2")
    if hidden:
        yield Case("double(-x)", (-x,), expect=-x * 2)


DOUBLE = Exercise("check_double", "double", _double_cases,
                  mistakes=[Mistake("you added 2 instead of doubling", result=lambda case: case.args[0] + 2)])  # fmt: skip


def test_a_right_answer_prints_one_line(capsys):
    DOUBLE(lambda x: x * 2)
    DOUBLE(lambda x: x * 2, hidden=True)
    assert capsys.readouterr().out.splitlines() == [
        "\u2714 double: all 1 cases pass.",
        "\u2714 double: all 2 cases pass (visible and hidden cases).",
    ]


def test_a_wrong_answer_fails_with_expected_got_and_the_mistakes_hint():
    with pytest.raises(CheckFailed) as failure:
        DOUBLE(lambda x: x + 2)
    block = failure.value.block()
    assert block.startswith("double(x) has the right shape but wrong values")
    assert "expected:" in block and "got:" in block and "hint: you added 2 instead of doubling" in block
    assert failure.value._render_traceback_() == ["\u2718 CheckFailed: " + block]


def test_the_stub_the_fallback_hint_and_an_in_place_change():
    def stub(x):
        raise NotImplementedError()

    with pytest.raises(CheckFailed, match="not implemented yet"):
        DOUBLE(stub)
    with pytest.raises(CheckFailed, match="hint: multiply by 2"):
        DOUBLE(lambda x: x * 3)
    with pytest.raises(CheckFailed, match="changed the arguments"):
        DOUBLE(lambda x: x.mul_(2))
    with pytest.raises(CheckFailed, match="wrong shape"):
        DOUBLE(lambda x: (x * 2).T)
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        DOUBLE(lambda x: 1 / 0)


def test_to_data_keeps_data_and_names_the_rest():
    out = to_data({"a": np.arange(3), "b": (np.float32(1.5), torch.Size([2, 3])), "m": torch.nn.Linear(2, 2)})
    assert torch.equal(out["a"], torch.arange(3)) and out["b"] == (1.5, (2, 3))
    assert isinstance(out["m"], Opaque) and out["m"].type == "Linear"


def test_the_wire_round_trips_data_recipes_steps_and_outcomes():
    value = {"x": torch.randn(2, 3), "r": Recipe("circuitscope.checks.ch2:LinearObjective", w=torch.ones(1)),
             "steps": (Call(torch.zeros(1)), Attr("shape"), Apply("circuitscope.checks.runner:to_data")),
             "o": Outcome(value=[1, 2.5, "s", None], error=("ValueError", "bad"))}  # fmt: skip
    back = wire.decode(wire.encode(value))
    assert torch.equal(back["x"], value["x"]) and back["r"].factory == value["r"].factory
    assert torch.equal(back["r"].kwargs["w"], torch.ones(1))
    assert [s.kind for s in back["steps"]] == ["call", "attr", "apply"]
    assert back["o"].value == [1, 2.5, "s", None] and back["o"].error == ("ValueError", "bad")


class _Payload:
    def __reduce__(self):
        return (print, ("this ran in the grader",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_the_wire_refuses_code(capsys):
    text = base64.b64encode(pickle.dumps(_Payload())).decode()
    with pytest.raises(pickle.UnpicklingError):
        wire.decode(text)
    assert "this ran" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="not a course function"):
        Recipe("os:system", command="true").build()


def test_a_call_over_the_wire_is_the_call_in_process(capsys):
    assert run(DOUBLE, OverTheWire(lambda x: x * 2, "double"), hidden=True) == 2
    assert run(DOUBLE, Local(lambda x: x * 2), hidden=True) == 2
    outcome = remote.answer({"function": "missing", "args": (), "kwargs": {}, "then": (), "observe": None,
                             "unchanged": False}, {})  # fmt: skip
    assert outcome.error[0] == "NameError" and "run the cell that defines it" in outcome.error[1]


def test_the_librarys_own_answer_is_unavailable_while_the_function_runs():
    import circuitscope as cs
    from circuitscope.core.images import preprocess as taken_before

    exercise = Exercise("check_pre", "preprocess", lambda hidden: [Case("preprocess(image)", (np.zeros((4, 6, 3)),),
                        expect=torch.zeros(3, 4, 4))], forbid=("circuitscope.core.images:preprocess",))  # fmt: skip
    for borrowed in (lambda image: cs.preprocess(image, 4), lambda image: taken_before(image, 4)):
        with pytest.raises(CheckFailed, match="write it yourself") as failure:
            exercise(borrowed)
        assert "library's own answer" in str(failure.value)
    assert tuple(cs.preprocess(np.zeros((4, 6, 3)), 4).shape) == (3, 4, 4)  # given back afterwards


# --- what the grader reads in a test cell -------------------------------------------------------
def test_plan_reads_check_calls_and_imports():
    aliases = imports("import torch\nfrom circuitscope.checks import ch2\nimport democheck")
    calls = plan("ch2.check_x(f)\n### BEGIN HIDDEN TESTS\nfrom circuitscope.checks import ch2 as _c\n"
                 "_c.check_x(f, hidden=True)\ndemocheck.check_add(add, [1.0], [2.0])", aliases)  # fmt: skip
    assert [(c.module, c.check, c.function, c.args, c.kwargs) for c in calls] == [
        ("circuitscope.checks.ch2", "check_x", "f", (), {}),
        ("circuitscope.checks.ch2", "check_x", "f", (), {"hidden": True}),
        ("democheck", "check_add", "add", ([1.0], [2.0]), {}),
    ]


@pytest.mark.parametrize("source", ["print('ok')", "x = 1", "ch2.check_x(lambda x: x)", "ch2.check_x(f, g())",
                                    "unknown.check_x(f)", "ch2.check_x(f"])  # fmt: skip
def test_plan_refuses_anything_else(source):
    with pytest.raises(PlanError):
        plan(source, {"ch2": "circuitscope.checks.ch2"})


# --- instant feedback in a real kernel ----------------------------------------------------------
@pytest.mark.slow
def test_instant_feedback_in_a_plain_kernel():
    cells = [
        "import torch\nfrom circuitscope.checks import ch2",
        "def pixel_ascent(objective, images, steps, lr):\n    x = images.detach().clone()\n"
        "    for _ in range(steps):\n        x.requires_grad_(True)\n"
        "        (g,) = torch.autograd.grad(objective(x).sum(), x)\n"
        "        x = (x.detach() + lr * g).clamp(0, 1)\n    return x",
        "ch2.check_pixel_ascent(pixel_ascent)",
        "def pixel_ascent(objective, images, steps, lr):\n    x = images.detach().clone()\n"
        "    for _ in range(steps):\n        x.requires_grad_(True)\n"
        "        (g,) = torch.autograd.grad(objective(x).sum(), x)\n"
        "        x = (x.detach() - lr * g).clamp(0, 1)\n    return x",
        "ch2.check_pixel_ascent(pixel_ascent)",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    passed, failed = nb.cells[2].outputs, nb.cells[4].outputs
    assert len(passed) == 1 and re.fullmatch("\u2714 pixel_ascent: all \\d+ cases pass.\n", passed[0].text), passed
    (error,) = [o for o in failed if o.output_type == "error"]
    assert error.ename == "CheckFailed" and len(error.traceback) == 1, error.traceback
    text = error.traceback[0]
    assert "went DOWN" in text and "expected:" in text and "got:" in text
    assert "runner.py" not in text and "_ref_" not in text and "File " not in text
    nbformat.validate(nb)


def test_partial_runs_every_case_and_counts_those_that_passed():
    cases = [Case(f"double({x})", (torch.tensor(float(x)),), expect=torch.tensor(2.0 * x)) for x in range(4)]
    exercise = Exercise("check_double", "double", lambda hidden: cases)

    def right_for_small(x):  # wrong from 2 on
        return 2 * x if x < 2 else x

    with pytest.raises(CheckFailed) as first:
        run(exercise, Local(right_for_small))
    assert (first.value.passed, first.value.total) == (None, None)  # all or nothing: stops at the first
    with pytest.raises(CheckFailed) as every:
        run(exercise, Local(right_for_small), partial=True)
    assert (every.value.passed, every.value.total) == (2, 4) and "double(2)" in every.value.what
    assert run(exercise, Local(lambda x: 2 * x), partial=True) == 4
