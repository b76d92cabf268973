"""Two nbgrader preprocessors that close gaps in plain nbgrader 0.9 (see ``autograder/nbgrader_config.py``).

:class:`ZeroDeletedTests` (autograde step)
    A test cell deleted from a submission scores 0 and is logged. Plain nbgrader leaves its grade
    empty ("needs manual grade"), silently, and on a regrade keeps whatever the cell earned the
    last time it was present.

:class:`HideHiddenTests` (feedback step)
    Feedback never shows hidden tests. Plain nbgrader renders the autograded notebook, in which
    the hidden tests have been restored from the gradebook, so the feedback shows their code, and
    their tracebacks show it again. This removes the hidden regions, replaces the outputs of the
    cells that ran them with a one-line verdict, and removes any other output that quotes a line
    of hidden test code (a learner cell that prints ``In`` during grading, for example).
"""

from __future__ import annotations

import re

from nbformat.notebooknode import NotebookNode, from_dict
from nbgrader import utils
from nbgrader.api import Gradebook
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
from traitlets import Integer, List

#: Key under the notebook metadata where ZeroDeletedTests records what it found.
METADATA_KEY = "circuitscope"

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# IPython >= 8.5: "Cell In[12], line 4"; IPython 8.0-8.4: "Input In [12], in <cell line: 4>()".
_CELL_LINE = re.compile(r"(?:Cell|Input) In\s*\[\s*(\d*)\s*\],\s*(?:line (\d+)|in <cell line: (\d+)>)")
# Chained exceptions are printed oldest first; the one that reached the cell comes last.
_CHAINED = re.compile(r"During handling of the above exception|The above exception was the direct cause")


def deleted_grade_cells(
    nb: NotebookNode, gradebook: Gradebook, notebook_id: str, assignment_id: str
) -> list[str]:
    """Names of the notebook's grade cells (tests) in the gradebook but not in ``nb``, in order."""
    present = {cell.metadata.nbgrader["grade_id"] for cell in nb.cells if utils.is_grade(cell)}
    notebook = gradebook.find_notebook(notebook_id, assignment_id)
    order = {cell.name: i for i, cell in enumerate(notebook.source_cells)}
    missing = [cell.name for cell in notebook.grade_cells if cell.name not in present]
    return sorted(missing, key=lambda name: order.get(name, len(order)))


class ZeroDeletedTests(NbGraderPreprocessor):
    """Score 0 (not "needs manual grade") for every grade cell missing from a submission, and say so.

    Runs in the autograde step after ``SaveAutoGrades``. A grader's manual score, if there is one,
    is kept and the cell is flagged for review, as ``SaveAutoGrades`` does.
    """

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        info = resources["nbgrader"]
        notebook_id, assignment_id, student_id = info["notebook"], info["assignment"], info["student"]
        with Gradebook(info["db_url"]) as gb:
            missing = deleted_grade_cells(nb, gb, notebook_id, assignment_id)
            for name in missing:
                grade = gb.find_grade(name, notebook_id, assignment_id, student_id)
                grade.auto_score = 0.0
                grade.needs_manual_grade = grade.manual_score is not None
            gb.db.commit()
        if missing:
            self.log.warning(
                "DELETED TEST CELLS: %s/%s/%s has no cell %s; scored 0 for %s.",
                student_id,
                assignment_id,
                notebook_id,
                ", ".join(repr(m) for m in missing),
                "it" if len(missing) == 1 else "them",
            )
        nb.metadata.setdefault(METADATA_KEY, {})["deleted_test_cells"] = missing
        return nb, resources


class HideHiddenTests(ClearHiddenTests):
    """Remove hidden tests, their outputs and any output quoting them (feedback step).

    A subclass of ``ClearHiddenTests``, so it uses the same delimiters: a course that changes
    them (``c.ClearHiddenTests.begin_test_delimeter``) needs no other setting.
    """

    # nbconvert's HTML exporter configures this for every NbConvertBase; declared to accept it.
    display_data_priority = List(NbGraderPreprocessor.display_data_priority.default_value).tag(config=True)

    min_quoted_length = Integer(
        8, help="A line of hidden test code at least this long (stripped) found in an output hides it."
    ).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        self._hidden_lines = set()
        for cell in nb.cells:
            for line in self._hidden_region(cell.source)[1]:
                text = line.strip()
                if len(text) >= self.min_quoted_length:
                    self._hidden_lines.add(text)
        return NbGraderPreprocessor.preprocess(self, nb, resources)

    def _hidden_region(self, source: str) -> tuple[set[int], list[str]]:
        """1-based numbers and texts of the lines in hidden regions (delimiters included)."""
        begin, end = self.begin_test_delimeter, self.end_test_delimeter
        numbers, texts, inside = set(), [], False
        for number, line in enumerate(source.split("\n"), start=1):
            if begin in line:
                inside = True
            if inside:
                numbers.add(number)
                if begin not in line and end not in line:
                    texts.append(line)
            if end in line:
                inside = False
        return numbers, texts

    def preprocess_cell(self, cell: NotebookNode, resources: dict, index: int) -> tuple[NotebookNode, dict]:
        hidden_numbers, _ = self._hidden_region(cell.source)
        if hidden_numbers:
            self._remove_hidden_test_region(cell)
            if cell.cell_type == "code":
                cell.outputs = [self._verdict(cell.outputs, hidden_numbers, cell.get("execution_count"))]
        elif cell.cell_type == "code":
            cell.outputs = [self._redact(output) for output in cell.outputs]
        return cell, resources

    def _verdict(self, outputs: list, hidden_numbers: set[int], execution_count: int | None) -> NotebookNode:
        errors = [o for o in outputs if o.get("output_type") == "error"]
        partial = [o["data"][PARTIAL_MIME] for o in outputs if o.get("output_type") == "execute_result"
                   and PARTIAL_MIME in o.get("data", {})]  # fmt: skip
        if not errors and partial:
            # partial credit: the first failure, told as below, then how many cases passed
            failed = self._verdict([from_dict({"output_type": "error", **{k: partial[0][k] for k in (
                "ename", "evalue", "traceback")}})], hidden_numbers, execution_count)  # fmt: skip
            return from_dict({**failed, "evalue": f"{failed['evalue']}; {partial[0]['summary']}",
                              "traceback": [f"{failed['traceback'][0]}; {partial[0]['summary']}"]})  # fmt: skip
        if not errors:
            if any(o.get("output_type") == "stream" and o.get("name") == "stderr" for o in outputs):
                # nbgrader scores a test cell that wrote to stderr 0, as if it had failed
                return _stream("\u2718 This cell wrote to stderr (a warning?), which the autograder counts "
                               "as a failure.\n")  # fmt: skip
            return _stream("\u2714 Every test in this cell passed, the hidden ones included.\n")
        timeouts = [e for e in errors if e.get("ename") == "CellTimeoutError"]
        error = (timeouts or errors)[0]
        ename, evalue = error.get("ename", "Error"), _ANSI.sub("", error.get("evalue", ""))
        line = _cell_line(error.get("traceback", []), execution_count)
        if timeouts:
            evalue = "this cell ran past the time limit, so it was interrupted"
        elif line is None or line in hidden_numbers:
            about = _about(error.get("traceback", []))
            evalue = "a hidden test failed (hidden tests are not shown)"
            if about and not self._quotes_hidden(about):
                # the grader's words for the failing case's property (Case.about), never its values
                evalue = f"a hidden test failed: {about} (hidden tests are not shown)"
        elif self._quotes_hidden(evalue):
            evalue = "a test failed"
        return from_dict({"output_type": "error", "ename": ename, "evalue": evalue,
                          "traceback": [f"{ename}: {evalue}"]})  # fmt: skip

    def _quotes_hidden(self, text: str) -> bool:
        return any(line in text for line in self._hidden_lines)

    def _redact(self, output: NotebookNode) -> NotebookNode:
        texts = [output.get("text", ""), output.get("evalue", "")]
        texts += output.get("traceback", [])
        texts += [v if isinstance(v, str) else "".join(v) for v in output.get("data", {}).values()
                  if isinstance(v, (str, list))]  # fmt: skip
        if self._hidden_lines and self._quotes_hidden(_ANSI.sub("", "\n".join(map(str, texts)))):
            return _stream("[output removed from the feedback: it quoted hidden test code]\n")
        return output


def _stream(text: str) -> NotebookNode:
    return from_dict({"output_type": "stream", "name": "stdout", "text": text})


#: The line of a test cell's error in which the grader names the failing case's property
#: (``circuitscope_course.verdicts``, from ``Case.about``).
ABOUT_PREFIX = "hidden case: "
#: MIME type of a partly passed test cell's verdict (cases passed, the failure), for the feedback.
PARTIAL_MIME = "application/vnd.circuitscope.partial+json"


def _about(traceback: list[str]) -> str | None:
    for line in traceback:
        text = _ANSI.sub("", line)
        if text.startswith(ABOUT_PREFIX):
            return text[len(ABOUT_PREFIX):].strip() or None
    return None


def _cell_line(traceback: list[str], execution_count: int | None) -> int | None:
    """The line of the cell (``In[execution_count]``) that raised, from an IPython traceback.

    That is the first frame of this cell in the last of the chained exceptions: the exception
    that escaped the cell. Frames of other cells (a learner's function) do not count.
    """
    text = _CHAINED.split(_ANSI.sub("", "\n".join(traceback)))[-1]
    for match in _CELL_LINE.finditer(text):
        if execution_count is None or match.group(1) == str(execution_count):
            return int(match.group(2) or match.group(3))
    return None
