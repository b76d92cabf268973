"""What every chapter's exercise tests share.

* The chapters, read from their solution notebooks: :data:`CHAPTERS` and :func:`chapter` (its
  exercises from the nbgrader test cells, the namespace its setup cell imports, the functions its
  solution cells and its untouched stubs define, its named mistakes from tests/mistakes/).
* ``reference_functions`` runs each solution cell of a source notebook, ``stub_functions`` the cells
  nbgrader's ClearSolutions makes of them (what a learner starts from), both in a namespace that
  stands for the notebook's setup cell.
* Assertions the chapter tests make: a check passes (in time, over the wire), a stub or a mistake
  fails with its hint, the hidden cases draw their values from the grader's private key.
"""

from __future__ import annotations

import re
import tempfile
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import nbformat
import pytest


def solution_cells(nb) -> dict[str, str]:
    """``{grade_id: source}`` of the solution cells, in notebook order."""
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    }


def graded_checks(notebook: Path) -> dict[str, tuple[str, str]]:
    """``{check name: (function it is called on, grade_id of the solution cell)}``, read from the
    test cells of ``notebook`` (each starts ``chN.check_x(fn)``; test_course holds them to that)."""
    table = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        match = re.match(r"ch\d+\.(check_\w+)\((\w+)\)", cell.source)
        if grade_id.endswith("-test") and match:
            table[match[1]] = (match[2], grade_id.removesuffix("-test"))
    return table


def run_cells(sources: dict[str, str], namespace: dict) -> dict:
    """Execute the cells in ``namespace`` (a fresh copy); what they define."""
    ns = dict(namespace)
    for grade_id, source in sources.items():
        exec(compile(source, f"<solution cell {grade_id}>", "exec"), ns)  # noqa: S102
    return ns


def reference_functions(notebook: Path, namespace: dict) -> dict:
    """What the solution cells of ``notebook`` define."""
    return run_cells(solution_cells(nbformat.read(notebook, as_version=4)), namespace)


def stub_functions(notebook: Path, namespace: dict) -> dict:
    """What the learner's untouched cells define (nbgrader's own ClearSolutions)."""
    from nbgrader.preprocessors import ClearSolutions

    nb, _ = ClearSolutions().preprocess(nbformat.read(notebook, as_version=4), {})
    return run_cells(solution_cells(nb), namespace)


def assert_check_passes(check, fn, hidden: bool, capsys, seconds: float = 10.0) -> None:
    """``check(fn)`` passes: one success line (naming the hidden cases when it ran them), in time."""
    start = time.perf_counter()
    check(fn, hidden=hidden)
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("\u2714"), f"one success line expected, got {out!r}"
    assert ("hidden" in out[0]) == hidden, out[0]
    assert elapsed < seconds, f"{check.__name__} took {elapsed:.1f} s (should be a few seconds at most)"


def assert_stub_fails(check, stub_fn) -> None:
    """The untouched learner stub fails the check with a clear message, not a raw NotImplementedError."""
    from circuitscope.checks import CheckFailed

    with pytest.raises(CheckFailed, match="not implemented"):
        check(stub_fn)


MISTAKES_DIR = Path(__file__).resolve().parent / "mistakes"


def load_mistakes(assignment: str) -> dict[str, str]:
    """``{solution grade_id: source of a plausible wrong cell}`` from tests/mistakes/<assignment>.py ({} if none)."""
    module = _load_mistakes_module(assignment)
    return {} if module is None else dict(module.MISTAKES)


def assert_mistake_fails(check, fn, hint: str, needs_hidden: bool = False) -> str:
    """``check`` fails ``fn`` (with its hidden cases; ``needs_hidden``: only those catch it) with a
    message that gives ``hint``; the message, for the caller's further assertions."""
    from circuitscope.checks import CheckFailed

    if needs_hidden:  # the visible cases pass it; the hidden ones catch it
        check(fn, hidden=False)
    with pytest.raises(CheckFailed) as failure:
        check(fn, hidden=True)
    message = str(failure.value)
    assert hint in message, f"the message does not say {hint!r}:\n{message}"
    return message


class OverTheWire:
    """Runs a check's cases as the grader does, in one process: each request and each outcome is
    encoded and decoded with the wire format (so every argument and result must be data)."""

    def __init__(self, fn, name: str = "learner_function"):
        self.namespace, self.name = {name: fn}, name

    def invoke(self, case):
        from circuitscope.checks import remote, wire

        request = wire.decode(wire.encode(wire.request(case, self.name)))
        return wire.decode(wire.encode(remote.answer(request, self.namespace)))

    def invoke_many(self, cases):
        """All cases in one request and one reply, as the grader sends them (runner.run)."""
        from circuitscope.checks import remote, wire

        requests = wire.decode(wire.encode([wire.request(case, self.name) for case in cases]))
        return wire.decode(wire.encode([remote.answer(request, self.namespace) for request in requests]))


def assert_passes_over_the_wire(check, fn, capsys) -> None:
    """``check`` (an Exercise) passes ``fn`` with all its cases sent over the wire format."""
    from circuitscope.checks.runner import run

    run(check, OverTheWire(fn), hidden=True)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("\u2714"), out


def copied(function):
    """A copy of a library function (same code object, own function object): what a learner who
    copied the library's code has. The checks make the library's own answer to an exercise
    unavailable by swapping that function's code during the call; a copy keeps working, so a
    mistake written on top of the library's answer still reaches the check's hints."""
    import types

    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                              function.__defaults__, function.__closure__)  # fmt: skip
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


@contextmanager
def private_key(text: str):
    """The grader's private key ``text`` in force (a temporary file named by
    ``$CIRCUITSCOPE_HIDDEN_KEY``, as the grader sets it): the hidden cases draw their values from
    it. The variable is restored, and the file removed, afterwards."""
    from circuitscope.checks.runner import HIDDEN_KEY_ENV

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hidden_key"
        path.write_text(text, encoding="utf-8")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(HIDDEN_KEY_ENV, str(path))
            yield


def case_values(case) -> list:
    """The values a case's arguments hold, flattened: tensors, arrays, numbers and strings, a
    recipe as its factory and keyword arguments (the seed of a course object among them)."""
    from circuitscope.checks.runner import Recipe

    def walk(value):
        if isinstance(value, Recipe):
            yield value.factory
            yield from walk(value.kwargs)
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                yield key
                yield from walk(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from walk(item)
        else:
            yield value

    return list(walk((case.args, case.kwargs)))


def same_values(a: list, b: list) -> bool:
    """Whether two :func:`case_values` lists are equal, tensor by tensor (exactly)."""
    import numpy as np
    import torch

    def equal(x, y) -> bool:
        if isinstance(x, (torch.Tensor, np.ndarray)) or isinstance(y, (torch.Tensor, np.ndarray)):
            x, y = torch.as_tensor(x), torch.as_tensor(y)
            return x.shape == y.shape and x.dtype == y.dtype and bool(torch.equal(x, y))
        return type(x) is type(y) and x == y

    return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))


#: The private keys the chapter tests grade the hidden cases under (any key must give fair cases).
PRIVATE_KEYS = ("k1", "k2", "k3")


def assert_hidden_cases_change(check, changes: bool = True, key: str = PRIVATE_KEYS[0]) -> None:
    """Under a private ``key`` the visible cases of ``check`` keep their public values, and (if
    ``changes``) at least one hidden case gets other values; a check without random values
    (``changes=False``) has the same hidden cases under any key."""
    visible, everything = list(check.cases(False)), list(check.cases(True))
    with private_key(key):
        visible_private, everything_private = list(check.cases(False)), list(check.cases(True))
    assert len(visible) == len(visible_private) and len(everything) == len(everything_private)
    for public, private in zip(visible, visible_private):
        assert same_values(case_values(public), case_values(private)), f"a visible case changed: {public.label}"
    changed = [p.label for p, q in zip(everything, everything_private)
               if not same_values(case_values(p), case_values(q))]  # fmt: skip
    if changes:
        assert changed, f"{check.__name__}: no hidden case draws its values from the private key"
    else:
        assert not changed, f"{check.__name__}: hidden cases changed with the key: {changed}"


# =============================================================================================
# The five chapters, read from their solution notebooks (never from a hand-kept table)
# =============================================================================================
ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"

#: Every assignment: a folder of solutions/ with a notebook (``ch1_introduction``, ...).
CHAPTERS = tuple(sorted(p.name for p in SOLUTIONS.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))))


class Mistake(NamedTuple):
    """A plausible wrong answer to one exercise, as a learner would write it.

    ``check``: the check that must catch it; ``needs_hidden``: only the hidden cases catch it (the
    visible ones pass it); ``hint``: words the failure message must hold; ``code``: the cell;
    ``raises``: the error the code raises on a case (its message names that error instead of an
    expected value), or "" when it returns a wrong value."""

    check: str
    needs_hidden: bool
    hint: str
    code: str
    raises: str = ""


@dataclass(frozen=True)
class Exercise:
    """One graded exercise: the check its test cell calls on the function its solution cell defines."""

    check: str
    function: str
    grade_id: str


def notebook_exercises(notebook: Path) -> tuple[Exercise, ...]:
    """The exercises of ``notebook``, in notebook order, read from its test cells."""
    return tuple(Exercise(check, fn, gid) for check, (fn, gid) in graded_checks(notebook).items())


def setup_namespace(notebook: Path) -> dict:
    """What the notebook's setup cell (the one importing its checks) imports, without running the
    rest of it (loading InceptionV1, printing the device)."""
    import ast

    nb = nbformat.read(notebook, as_version=4)
    (setup,) = [c for c in nb.cells if c.cell_type == "code" and "from circuitscope.checks import" in c.source
                and not c.metadata.get("nbgrader", {}).get("grade")]  # fmt: skip
    tree = ast.parse(setup.source)
    imports = ast.Module([n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    namespace: dict = {}
    exec(compile(imports, f"<setup cell of {notebook.name}>", "exec"), namespace)  # noqa: S102
    namespace.pop("__builtins__", None)
    return namespace


def defined_functions(code: str) -> list[str]:
    """The names of the functions ``code`` defines at its top level."""
    import ast

    return [n.name for n in ast.parse(textwrap.dedent(code)).body if isinstance(n, ast.FunctionDef)]


def first_mistakes(named: dict[str, Mistake], notebook: Path) -> dict[str, str]:
    """``{grade_id: cell}``: the first named mistake of each exercise, the nbgrader round trip's
    mistakes submission (tests/test_course.py grades it; each must score 0)."""
    grade_ids = {e.check: e.grade_id for e in notebook_exercises(notebook)}
    cells: dict[str, str] = {}
    for mistake in named.values():
        cells.setdefault(grade_ids[mistake.check], textwrap.dedent(mistake.code).strip())
    return cells


def _load_mistakes_module(assignment: str):
    import importlib.util

    path = MISTAKES_DIR / f"{assignment}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"mistakes_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Chapter:
    """One chapter's exercises as the tests see them: its notebook, its checks module, the
    namespace of its setup cell, its reference and stub functions, and its named mistakes
    (``tests/mistakes/<assignment>.py``: ``NAMED``, and ``HELPERS`` the mistakes are written with)."""

    def __init__(self, assignment: str):
        import importlib

        self.assignment = assignment
        (self.notebook,) = sorted((SOLUTIONS / assignment).glob("*.ipynb"))
        self.exercises = notebook_exercises(self.notebook)
        modules = {re.match(r"(ch\d+)\.", c.source)[1] for c in self._test_cells()}
        (self.module,) = modules
        self.checks = importlib.import_module(f"circuitscope.checks.{self.module}")
        self.mistakes = _load_mistakes_module(assignment)
        self.named: dict[str, Mistake] = dict(getattr(self.mistakes, "NAMED", {}))
        self._reference = self._stub = None

    def _test_cells(self):
        return [c for c in nbformat.read(self.notebook, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade_id", "").endswith("-test")]  # fmt: skip

    def __repr__(self) -> str:
        return f"Chapter({self.assignment!r})"

    @property
    def functions(self) -> set[str]:
        return {e.function for e in self.exercises}

    def exercise(self, check: str) -> Exercise:
        return next(e for e in self.exercises if e.check == check)

    def check(self, name: str):
        """The check ``name`` (``"check_x"``) of this chapter."""
        return getattr(self.checks, name)

    def namespace(self, helpers: bool = True) -> dict:
        """A fresh copy of what the setup cell imports, with the mistakes' ``HELPERS`` (the
        library's answers, copied: see :func:`copied`) unless ``helpers=False``."""
        ns = setup_namespace(self.notebook)
        if helpers:
            ns.update(getattr(self.mistakes, "HELPERS", {}))
        return ns

    @property
    def reference(self) -> dict:
        """What the solution cells define (built once; do not modify)."""
        if self._reference is None:
            self._reference = reference_functions(self.notebook, self.namespace())
        return self._reference

    @property
    def stub(self) -> dict:
        """What the learner's untouched cells define (built once)."""
        if self._stub is None:
            self._stub = stub_functions(self.notebook, self.namespace())
        return self._stub

    def mistake(self, code: str):
        """The exercise function the cell ``code`` defines, run after the reference solutions (as
        in a notebook where the earlier exercises are solved) in the setup cell's namespace."""
        names = [n for n in defined_functions(code) if n in self.functions]
        assert len(names) == 1, f"the cell should define one exercise function, not {names}"
        namespace = {**self.namespace(), **{f: self.reference[f] for f in self.functions}}
        return run_cells({"mistake": textwrap.dedent(code)}, namespace)[names[0]]


_CHAPTERS: dict[str, Chapter] = {}


def chapter(assignment: str) -> Chapter:
    """The chapter ``assignment`` (built once per session)."""
    if assignment not in _CHAPTERS:
        _CHAPTERS[assignment] = Chapter(assignment)
    return _CHAPTERS[assignment]


def assert_named_mistake_fails(check, fn, mistake: Mistake) -> str:
    """``check`` fails ``fn`` as ``mistake`` says: with its hint; and the message says what was
    expected, with a hint line (or, for a mistake that raises, names the error it raised)."""
    message = assert_mistake_fails(check, fn, mistake.hint, mistake.needs_hidden)
    if mistake.raises:
        assert f"raised {mistake.raises}" in message, f"the message does not name {mistake.raises}:\n{message}"
    else:
        assert "expected" in message and "hint:" in message, f"no expected value or no hint line:\n{message}"
    return message
