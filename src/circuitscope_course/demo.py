"""A practice course: one tiny assignment and a class of submissions, honest and hostile.

``circuitscope-course demo DIR`` writes it; then, from ``DIR``::

    circuitscope-course generate                  # exercises/demo/ from solutions/demo/
    circuitscope-course grade submissions --timeout 20
    circuitscope-course feedback
    circuitscope-course export grades.csv

The assignment (``demo``: write ``add`` and ``scale`` for tensors, 1 + 2 points) loads no model,
so a whole class grades in a minute or two. The tests use it for the hostile cases; an
instructor can use it to see every protection at work before grading a real class.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .course import AUTOGRADER, CONFIG_NAME, SOURCE, Course

ASSIGNMENT = "demo"
NOTEBOOK = "demo"
POINTS = {"test_add": 1, "test_scale": 2}

#: The check module the notebook imports. In the notebook it gives instant feedback; when grading,
#: the grader runs its own copy (solutions/demo/democheck.py) in its own process and only calls
#: the learner's functions across the sandbox boundary (circuitscope_course.verdicts).
CHECKS = '''"""Checks for the demo assignment: each a one-case Exercise of circuitscope's check runner."""

import torch

from circuitscope.checks.runner import Case, Exercise


def _one_case(name, what, args, expected, hint, about):
    # about: the case in words, no value (the graded feedback shows it for a failed hidden case)
    case = Case(what, args, expect=torch.tensor(expected), hint=hint, about=about)
    return Exercise(name, what, lambda hidden: [case])


def check_add(add, a, b):
    what = f"add({a}, {b})"
    _one_case("check_add", what, (torch.tensor(a), torch.tensor(b)), [x + y for x, y in zip(a, b)],
              "add elementwise: a + b", f"tensors of {len(a)} numbers")(add)


def check_scale(scale, x, k):
    what = f"scale({x}, {k})"
    _one_case("check_scale", what, (torch.tensor(x), k), [v * k for v in x], "multiply every entry by k",
              f"a tensor of {len(x)} numbers and a factor")(scale)
'''

HIDDEN_ADD = "democheck.check_add(add, [10.0, -1.0, 3.5], [0.5, 7.25, -3.5])"
HIDDEN_SCALE = "democheck.check_scale(scale, [4.0, -8.0], 0.125)"


def _meta(grade_id: str, *, grade=False, solution=False, locked=False) -> dict:
    meta = {"grade": grade, "solution": solution, "locked": locked, "grade_id": grade_id, "schema_version": 3}
    if grade:
        meta["points"] = POINTS[grade_id]
    return {"nbgrader": meta}


def source_notebook() -> nbformat.NotebookNode:
    """The nbgrader source notebook: solutions and hidden tests included."""
    cells = [
        new_markdown_cell(
            "# Demo assignment\n\nWrite `add` and `scale`. Each check prints one line.",
            metadata=_meta("intro", locked=True),
        ),
        new_code_cell(
            "import torch\n\nimport democheck  # before any code of yours",
            metadata=_meta("setup", locked=True),
        ),
        new_code_cell(
            'def add(a, b):\n    """Elementwise sum of two tensors of the same shape."""\n'
            "    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
            metadata=_meta("add", solution=True),
        ),
        new_code_cell(
            "democheck.check_add(add, [1.0, 2.0], [3.0, 4.0])\n"
            f"### BEGIN HIDDEN TESTS\n{HIDDEN_ADD}\n### END HIDDEN TESTS",
            metadata=_meta("test_add", grade=True, locked=True),
        ),
        new_code_cell(
            'def scale(x, k):\n    """Every entry of the tensor x times the number k."""\n'
            "    ### BEGIN SOLUTION\n    return x * k\n    ### END SOLUTION",
            metadata=_meta("scale", solution=True),
        ),
        new_code_cell(
            "democheck.check_scale(scale, [1.0, 2.0], 3.0)\n"
            f"### BEGIN HIDDEN TESTS\n{HIDDEN_SCALE}\n### END HIDDEN TESTS",
            metadata=_meta("test_scale", grade=True, locked=True),
        ),
    ]
    for i, cell in enumerate(cells):
        cell.id = f"demo-{i}"
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return new_notebook(cells=cells, metadata={"kernelspec": kernelspec, "language_info": {"name": "python"}})


def write_source(root: Path) -> Path:
    """``solutions/demo/`` under ``root``: the notebook and its check module."""
    folder = Path(root) / SOURCE / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(source_notebook(), folder / f"{NOTEBOOK}.ipynb")
    (folder / "democheck.py").write_text(CHECKS, encoding="utf-8")
    return folder


def _cell(nb, grade_id: str):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell
    raise KeyError(grade_id)


def _answer(nb, grade_id: str, source: str):
    _cell(nb, grade_id).source = source
    return nb


ADD = "def add(a, b):\n    return a + b"
SCALE = "def scale(x, k):\n    return x * k"

#: What each sample submission does, and what it must score (out of 3).
EXPECTED = {
    "correct": ("both functions right", 3.0),
    "blank": ("the learner version, untouched", 0.0),
    "monkeypatch": ("wrong answers; np/torch comparison functions replaced to always agree", 0.0),
    "edited_tests": ("wrong answers; test cells unlocked and replaced by `pass` / a print", 0.0),
    "deleted_test": ("both right, but the `scale` test cell deleted", 1.0),
    "infinite_loop": ("`add` never returns; `scale` right", 2.0),
    "kernel_killer": ("calls os._exit(1) after defining add", 0.0),
    "invalid_json": ("a file that is not JSON", 0.0),
    "history_leak": ("both right, and a last cell printing In (every cell run, hidden tests too)", 3.0),
    "hidden_only": ("`add` right on the visible case only (fails a hidden one); `scale` right", 2.0),
}

PATCHES = """import math
import numpy as np
import torch
np.allclose = lambda *a, **k: True
np.isclose = lambda a, b, *x, **k: np.ones(np.shape(a), dtype=bool)
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
torch.allclose = lambda *a, **k: True
torch.isclose = lambda a, b, *x, **k: torch.ones(a.shape, dtype=torch.bool)
torch.equal = lambda *a, **k: True
torch.eq = lambda a, b, *x, **k: torch.ones(a.shape, dtype=torch.bool)
torch.Tensor.allclose = lambda *a, **k: True
torch.Tensor.__eq__ = lambda a, b: torch.ones(a.shape, dtype=torch.bool)
torch.testing.assert_close = lambda *a, **k: None
math.isclose = lambda *a, **k: True
"""


def submissions(release: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode | str]:
    """Sample submissions made from the learner notebook: student id -> notebook (or raw text)."""
    out: dict[str, nbformat.NotebookNode | str] = {}

    def fresh():
        return copy.deepcopy(release)

    out["correct"] = _answer(_answer(fresh(), "add", ADD), "scale", SCALE)
    out["blank"] = fresh()

    nb = _answer(fresh(), "add", PATCHES + "\n\ndef add(a, b):\n    return a * 0")
    out["monkeypatch"] = _answer(nb, "scale", "def scale(x, k):\n    return x")

    nb = _answer(
        _answer(fresh(), "add", "def add(a, b):\n    return a - b"), "scale", "def scale(x, k):\n    return x"
    )
    for grade_id, text in (("test_add", "pass"), ("test_scale", "print('all tests pass')")):
        cell = _cell(nb, grade_id)
        cell.source = text
        cell.metadata.nbgrader["locked"] = False
        cell.metadata.nbgrader.pop("checksum", None)
        cell.metadata.pop("editable", None)
        cell.metadata.pop("deletable", None)
    out["edited_tests"] = nb

    nb = _answer(_answer(fresh(), "add", ADD), "scale", SCALE)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "test_scale"]
    out["deleted_test"] = nb

    nb = _answer(fresh(), "add", "def add(a, b):\n    while True:\n        pass")
    out["infinite_loop"] = _answer(nb, "scale", SCALE)

    nb = _answer(fresh(), "add", ADD + "\n\nimport os\nos._exit(1)")
    out["kernel_killer"] = _answer(nb, "scale", SCALE)

    out["invalid_json"] = '{"cells": [{"cell_type": "code", "source": "def add(a, b):'  # cut off

    nb = _answer(_answer(fresh(), "add", ADD), "scale", SCALE)
    nb.cells.append(nbformat.v4.new_code_cell("print('\\n'.join(In))"))
    out["history_leak"] = nb

    nb = _answer(fresh(), "add", "def add(a, b):\n    return a + b if len(a) == 2 else a - b")
    out["hidden_only"] = _answer(nb, "scale", SCALE)
    return out


def uninterruptible(release: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A submission whose ``add`` ignores interrupts and never returns (only a kill stops it)."""
    nb = copy.deepcopy(release)
    _answer(nb, "add", "import signal\n\ndef add(a, b):\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                       "    while True:\n        pass")  # fmt: skip
    return _answer(nb, "scale", SCALE)


def write_submissions(folder: Path, release_notebook: Path, which: list[str] | None = None) -> list[str]:
    """``folder/<student>/demo/demo.ipynb`` for each sample submission (all by default)."""
    release = nbformat.read(release_notebook, as_version=4)
    made = submissions(release)
    made["uninterruptible"] = uninterruptible(release)
    names = which or list(EXPECTED)
    for name in names:
        dest = Path(folder) / name / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        dest.parent.mkdir(parents=True, exist_ok=True)
        item = made[name]
        if isinstance(item, str):
            dest.write_text(item, encoding="utf-8")
        else:
            nbformat.write(item, dest)
    return names


def create(dest: Path, config: Path) -> Path:
    """A practice course in ``dest``: ``autograder/`` (a copy of ``config``) and ``solutions/demo/``.

    Generate its exercises, then :func:`write_submissions` from ``exercises/demo/demo.ipynb``.
    """
    dest = Path(dest)
    (dest / AUTOGRADER).mkdir(parents=True, exist_ok=True)
    shutil.copy(config, dest / AUTOGRADER / CONFIG_NAME)
    write_source(dest)
    Course(dest).make_hidden_key()
    return dest
