"""Verdicts computed where no learner code ever ran: nbgrader's Execute, with test cells judged outside.

:class:`TrustedExecute` replaces nbgrader's ``Execute`` in the autograde step (``autograder/
nbgrader_config.py``, so plain ``nbgrader autograde`` and ``circuitscope-course grade`` both use
it). It runs every learner cell in the (sandboxed) kernel as usual. A test cell (an nbgrader grade
cell) is never sent to the kernel. Its source, which nbgrader's ``OverwriteCells`` has restored from
the gradebook, is read here as a plan (:func:`plan`): check calls such as
``ch2.check_pixel_ascent(pixel_ascent, hidden=True)``. Each check runs in this process, the
grader's, on a :class:`RemoteFunction` standing for the learner's ``pixel_ascent``: calling it
sends the arguments to the kernel as data (:mod:`circuitscope.checks.wire`), the kernel calls the
learner's function (:mod:`circuitscope.checks.remote`) and sends the result back as data, read with
``torch.load(weights_only=True)``. The cell's outputs (the success lines, or one error) are written
here, and nbgrader's ``SaveAutoGrades`` scores them as usual.

With partial credit on (``c.TrustedExecute.partial_credit``, or ``grade --partial-credit``), a
test cell whose checks are runner ``Exercise`` s scores its points times the share of their cases
that passed: every case runs, and the cell's output is that score as an ``execute_result`` (how
nbgrader reads partial credit), the first failure beside it for the feedback.

So whatever a submission does in its kernel (patch IPython's way of running cells, replace the
check functions, print fake success lines), the verdict is this process's comparison of the data
its functions returned with references this process computed. The check modules are trusted
code: ``circuitscope.checks.*`` from the installed library, or a module in the assignment's source
folder (``solutions/<assignment>/``, the instructor's), never the copy beside the submission.

A test cell may hold only imports and check calls (``module.check(function_name, literal, ...,
hidden=literal)``); anything else is refused with a message to the instructor, and the cell
scores 0 (see ``autograder/README.md``).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbformat.notebooknode import NotebookNode, from_dict
from nbformat.v4 import new_code_cell
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Bool, Unicode

from .nbgrader_ext import ABOUT_PREFIX, PARTIAL_MIME

#: Modules a check may come from without being in the assignment's source folder.
TRUSTED_PREFIX = "circuitscope.checks."
#: The code of the cell that carries a call of a learner's function (the call is its user expression).
WIRE_CELL = "# circuitscope: the grader calls a function of this notebook (see circuitscope.checks.remote)"
TIMED_OUT = "your function ran past the time limit (on this case or another of the exercise's) and was interrupted"


class PlanError(ValueError):
    """A test cell holds code the trusted grader does not run (a problem of the course, not the learner)."""


@dataclass
class CheckCall:
    """One line of a test cell: ``module.check(function, *args, **kwargs)``."""

    line: int
    module: str
    check: str
    function: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def imports(source: str) -> dict[str, str]:
    """``{alias: module}`` bound by the import statements of ``source`` (other code ignored)."""
    aliases: dict[str, str] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return aliases
    for node in tree.body:
        if isinstance(node, ast.Import):
            for name in node.names:
                if name.asname:
                    aliases[name.asname] = name.name
                else:
                    aliases[name.name.split(".")[0]] = name.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for name in node.names:
                aliases[name.asname or name.name] = f"{node.module}.{name.name}"
    return aliases


def plan(source: str, aliases: dict[str, str]) -> list[CheckCall]:
    """The check calls of a test cell, in order; :class:`PlanError` for anything else."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise PlanError(f"the test cell is not valid Python: {err}") from None
    aliases = {**aliases, **imports(source)}
    calls = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        call = node.value if isinstance(node, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name) and call.args
                and isinstance(call.args[0], ast.Name)):  # fmt: skip
            raise PlanError(f"line {node.lineno}: a test cell may hold only imports and check calls "
                            f"`module.check(function, ...)`, not {ast.unparse(node)[:80]!r}")  # fmt: skip
        module = aliases.get(call.func.value.id)
        if module is None:
            raise PlanError(f"line {node.lineno}: {call.func.value.id!r} is not an imported check module")
        try:
            args = tuple(ast.literal_eval(a) for a in call.args[1:])
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
        except ValueError:
            raise PlanError(f"line {node.lineno}: a check's other arguments must be literals") from None
        calls.append(CheckCall(node.lineno, module, call.func.attr, call.args[0].id, args, kwargs))
    return calls


class RemoteFunction:
    """Stands for the notebook's function ``name`` on the grader's side: a runner
    :class:`~circuitscope.checks.runner.Exercise` calls :meth:`invoke` with each case, and the
    case crosses into the kernel as data."""

    def __init__(self, name: str, send):
        self.__name__ = self.name = name
        self._send = send

    def invoke(self, case):
        from circuitscope.checks import wire

        return self._send([wire.request(case, self.name)])[0]

    def invoke_many(self, cases):
        """Every case's outcome from one round trip into the kernel (see ``runner.run``)."""
        from circuitscope.checks import wire

        return self._send([wire.request(case, self.name) for case in cases])


class TrustedExecute(Execute):
    """nbgrader's ``Execute``, except that test cells are judged in this process (see the module)."""

    source_directory = Unicode(
        "", help="The course's source folder (solutions/): check modules of an assignment are read from there."
    ).tag(config=True)

    partial_credit = Bool(
        False, help="Score a test cell by the share of its exercises' cases that pass, not all or nothing."
    ).tag(config=True)

    _timed_out = None  # the outcome of this test cell's call that ran past the time limit

    def preprocess(self, nb: NotebookNode, resources: dict, km=None):
        self._aliases: dict[str, str] = {}
        self._assignment = resources.get("nbgrader", {}).get("assignment", "")
        return super().preprocess(nb, resources, km=km)

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int):
        is_test = cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)
        if cell.cell_type == "code" and utils.is_locked(cell) and cell.metadata.nbgrader.get("grade_id"):
            # a locked cell, restored from the gradebook by OverwriteCells: its imports name the
            # check modules (``from circuitscope.checks import ch2``)
            self._aliases.update(imports(cell.source))
        if not is_test:
            return super().preprocess_cell(cell, resources, index)
        self._index, self._calls, self._timed_out, start = index, 0, None, time.perf_counter()
        cell.outputs = self.verdict(cell.source, float(cell.metadata.nbgrader.get("points", 0)))
        self.log.info("judged test cell %s in %.2f s (%d calls of the learner's functions)",
                      cell.metadata.nbgrader.get("grade_id"), time.perf_counter() - start, self._calls)
        cell.execution_count = None
        self.nb.cells[index] = cell  # nbclient stores each call's stand-in cell at this index
        return cell, resources

    # -- the verdict --------------------------------------------------------------------------
    def verdict(self, source: str, points: float = 0.0) -> list[NotebookNode]:
        """The outputs of a test cell: the checks' printed lines, then the first failure, if any
        (with partial credit: the cell's score, see :meth:`partial_verdict`)."""
        from circuitscope.checks.runner import CheckFailed, Exercise, run

        printed = io.StringIO()
        error = failure_of_partial = None
        cases: dict[tuple, tuple[int, int]] = {}  # a check (and its arguments): (passed, total)
        try:
            calls = plan(source, self._aliases)
        except PlanError as err:
            self.log.error("TEST CELL NOT GRADED: %s", err)
            return [_error("PlanError", f"this test cell cannot be graded ({err}); tell your instructor", 0)]
        for call in calls:
            # With partial credit, an Exercise's last call counts by its cases (the hidden call
            # runs the visible cases too); any other check's call counts as one case.
            whole = self.partial_credit and not call.args and set(call.kwargs) <= {"hidden"}
            key = (call.module, call.check) if whole else (call.module, call.check, repr(call.args))
            with contextlib.redirect_stdout(printed):
                try:
                    check = self.load_check(call)
                    remote = RemoteFunction(call.function, self._send)
                    if whole and isinstance(check, Exercise):
                        total = run(check, remote, hidden=bool(call.kwargs.get("hidden")), partial=True)
                        cases[key] = (total, total)
                    else:
                        check(remote, *call.args, **call.kwargs)
                        cases[key] = (1, 1)
                except CheckFailed as failure:
                    block = _error("CheckFailed", failure.block(), call.line, getattr(failure, "about", None))
                    if not self.partial_credit:
                        error = block
                    else:
                        cases[key] = (failure.passed, failure.total) if failure.total else (0, 1)
                        failure_of_partial = failure_of_partial or block
                except PlanError as err:
                    self.log.error("TEST CELL NOT GRADED: %s", err)
                    error = _error("PlanError", f"this test cell cannot be graded ({err})", call.line)
                except Exception as err:  # noqa: BLE001 -- a check that crashes on odd data fails the cell
                    error = _error(type(err).__name__, f"the check could not judge the answer: {err}", call.line)
            if error is not None:
                break
        outputs = []
        if printed.getvalue():
            outputs.append(from_dict({"output_type": "stream", "name": "stdout", "text": printed.getvalue()}))
        if error is None and failure_of_partial is not None:
            return outputs + self.partial_verdict(failure_of_partial, cases, points)
        return outputs + ([error] if error is not None else [])

    @staticmethod
    def partial_verdict(failure: NotebookNode, cases: dict, points: float) -> list[NotebookNode]:
        """A partly passed cell's outputs: the failure as text, and the score nbgrader reads.

        The score is ``points`` times the share of cases passed, over the cell's checks (each
        check's last call). It is an ``execute_result`` whose text is the number (nbgrader's
        partial credit), and it carries the failure (:data:`PARTIAL_MIME`) for the feedback.
        """
        passed, total = (sum(c[i] for c in cases.values()) for i in (0, 1))
        score = math.floor(100 * points * passed / total) / 100 if total else 0.0  # never above points
        summary = f"{passed} of {total} cases passed: {score:g} of {points:g} points (partial credit)"
        text = "\n".join(failure.traceback[1:2] + [f"  {summary}"]) + "\n"
        data = {"text/plain": f"{score:g}",
                PARTIAL_MIME: {"summary": summary, "ename": failure.ename, "evalue": failure.evalue,
                               "traceback": list(failure.traceback)}}  # fmt: skip
        return [from_dict({"output_type": "stream", "name": "stdout", "text": text}),
                from_dict({"output_type": "execute_result", "execution_count": None, "metadata": {},
                           "data": data})]  # fmt: skip

    def load_check(self, call: CheckCall):
        """The check function ``call`` names, from trusted code only."""
        module = self._trusted_module(call.module)
        check = getattr(module, call.check, None)
        if check is None or call.check.startswith("_") or not callable(check):
            raise PlanError(f"{call.module} has no check {call.check!r}")
        return check

    def _trusted_module(self, name: str):
        if name.startswith(TRUSTED_PREFIX):
            return importlib.import_module(name)
        path = Path(self.source_directory) / self._assignment / f"{name}.py"
        if not self.source_directory or "." in name or not path.is_file():
            raise PlanError(f"{name!r} is neither a module of {TRUSTED_PREFIX}* nor a file {path}")
        key = f"circuitscope_trusted_checks.{self._assignment}.{name}"
        if key not in sys.modules:
            spec = importlib.util.spec_from_file_location(key, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[key] = module
        return sys.modules[key]

    # -- one call across the sandbox boundary ---------------------------------------------------
    _wire_error = None  # the error of the user expression of the call in progress, as an output

    def on_cell_executed(self, **kwargs):
        super().on_cell_executed(**kwargs)
        # A user expression that raises (a notebook that broke ``__import__``, say) is no output:
        # the kernel reports it in the reply only. Kept as an error output, so that the learner
        # reads why the kernel gave no answer.
        content = (kwargs.get("execute_reply") or {}).get("content", {})
        result = content.get("user_expressions", {}).get("call")
        if isinstance(result, dict) and result.get("status") == "error":
            self._wire_error = from_dict({"output_type": "error", "ename": str(result.get("ename", "Error")),
                                          "evalue": str(result.get("evalue", "")), "traceback": []})  # fmt: skip

    def _send(self, requests: list[dict]) -> list:
        """Run ``requests`` (calls of one learner function) in the kernel, in one round trip; the
        :class:`Outcome` of each, as it sent them back (data only)."""
        from circuitscope.checks import wire
        from circuitscope.checks.runner import Outcome

        if self._timed_out is not None:
            # A call of this cell ran past the time limit: the cell's other cases (partial credit
            # runs them all) fail at once instead of waiting out the limit each.
            return [self._timed_out] * len(requests)
        self._calls += 1
        payload = requests[0] if len(requests) == 1 else requests
        call = f"__import__('circuitscope.checks.remote', fromlist=['serve']).serve({wire.encode(payload)!r})"
        # The call, with its data (megabytes of base64 for a real layer's activations), travels as
        # the request's user expression, evaluated by plain ``eval`` after the cell's code; the
        # cell itself is one comment. As a cell's code, IPython ran its input transformers over the
        # data and ipykernel hashed it, in pure Python, for the debugger's file name: about 0.3 s
        # per MB in the kernel, over 1 s per chapter-1 notebook. Same request, same time limit
        # (nbclient's timeout and interrupt), same reply (display data, read below).
        cell = new_code_cell(WIRE_CELL)
        client = self.kc
        client.execute = functools.partial(client.execute, user_expressions={"call": call})
        self._wire_error = None
        try:
            self.execute_cell(cell, self._index, store_history=False)
        finally:
            client.__dict__.pop("execute", None)
        if self._wire_error is not None:  # the call raised before it could answer (see on_cell_executed)
            cell.outputs.append(self._wire_error)
        replies = [o for o in cell.outputs if o.get("output_type") == "display_data"
                   and wire.MIME in o.get("data", {})]  # fmt: skip

        def every(outcome):
            return [outcome] * len(requests)

        if not replies:
            errors = [o for o in cell.outputs if o.get("output_type") == "error"]
            if errors and errors[-1].get("ename") == "CellTimeoutError":
                self._timed_out = Outcome(error=("TimeoutError", TIMED_OUT))
                return every(self._timed_out)
            detail = f": {errors[-1].get('ename')}: {errors[-1].get('evalue')}" if errors else ""
            return every(Outcome(error=("NoAnswer", f"the kernel gave no answer{detail}")))
        try:
            answer = wire.decode(replies[-1]["data"][wire.MIME])
        except Exception as err:  # noqa: BLE001 -- a reply that is not data is no answer
            return every(Outcome(error=("NoAnswer", f"the kernel's answer could not be read as data ({err})")))
        outcomes = [answer] if len(requests) == 1 else answer
        if not (isinstance(outcomes, list) and len(outcomes) == len(requests)
                and all(isinstance(o, Outcome) for o in outcomes)):  # fmt: skip
            return every(Outcome(error=("NoAnswer", "the kernel's answer is not an outcome")))
        return outcomes


def _error(ename: str, evalue: str, line: int = 0, about: str | None = None) -> NotebookNode:
    """An error output. Its traceback names the test cell's line, as IPython's would, so that
    the feedback step can tell a visible check's failure from a hidden one's; and the failing
    case's property in words (``Case.about``), which the feedback shows for a hidden case."""
    traceback = [f"Cell In[], line {line}", f"\u2718 {ename}: {evalue}"]
    if about:
        traceback.append(ABOUT_PREFIX + about)
    return from_dict({"output_type": "error", "ename": ename, "evalue": evalue, "traceback": traceback})
