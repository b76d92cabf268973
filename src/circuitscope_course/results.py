"""After grading: feedback for learners and a CSV of grades for the instructor.

Both read the gradebook as it is when they run, after :func:`refresh` has recomputed the late
penalties (a grader may have changed a score in formgrader) and brought
``autograder/grading_report.csv`` up to date: the report, the export and the feedback pages give
every student the same score.

Each exercise is named by its title (:func:`exercise_titles`) in the export's per-exercise
columns and in the feedback's score table. The feedback pages are made by nbgrader with
:class:`FeedbackExporter` (``c.GenerateFeedback.exporter_class`` in ``nbgrader_config.py``), so
plain ``nbgrader generate_feedback`` makes the same pages.
"""

from __future__ import annotations

import csv
import html
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert.exporters import HTMLExporter
from traitlets import default

from . import deadlines
from .course import Course, CourseError
from .grading import Outcome, read_report, update_from_gradebook, write_report

#: The columns of ``nbgrader export``'s CSV, then lateness and what grading noticed; one column
#: per exercise follows them.
EXPORT_FIELDS = [
    "assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
    "raw_score", "late_submission_penalty", "score", "max_score", "hours_late", "extension_hours",
    "problems",
]  # fmt: skip


def feedback(course: Course, assignments: list[str] | None = None, log=print) -> list[Path]:
    """``nbgrader generate_feedback`` for each graded assignment; returns the HTML files.

    Penalties are recomputed first (:func:`refresh`). The pages name each exercise, say how late
    the submission was, and show nothing of the grading machine (:class:`FeedbackExporter`).
    The course config hides hidden tests (``HideHiddenTests``). As a second line of defence every
    HTML file is then searched for any line of hidden test code from ``solutions/``: a file that
    quotes one is deleted and reported, and this raises :class:`CourseError`.
    """
    names = [a for a in course.require_assignments(assignments)
             if any(course.autograded.glob(f"*/{a}/*.ipynb"))]  # fmt: skip
    if not names:
        raise CourseError("nothing graded yet: run `circuitscope-course grade SUBMISSIONS` first")
    refresh(course, names)
    made, leaks, failures = [], [], []
    for name in names:
        result = course.nbgrader("generate_feedback", name, "--force")
        if result.returncode != 0:
            failures.append(
                f"{name}: " + "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
            )
        hidden = hidden_test_lines(course, name)
        count = 0
        for path in sorted(course.feedback.glob(f"*/{name}/*.html")):
            quoted = quoted_lines(html_text(path), hidden)
            if quoted:
                path.unlink()
                leaks.append(
                    f"{path.relative_to(course.root)} quoted hidden test code ({quoted[0]!r}); deleted"
                )
            else:
                made.append(path)
                count += 1
        where = course.feedback.relative_to(course.root)
        log(f"feedback for {name}: {count} file(s) in {where}/<student>/{name}/")
    if leaks or failures:
        raise CourseError("\n".join(["feedback problems:", *leaks, *failures]))
    return made


def hidden_test_lines(course: Course, assignment: str, min_length: int = 8) -> set[str]:
    """Every line (stripped, at least ``min_length`` long) inside a hidden-test region of the source."""
    lines = set()
    for path in sorted((course.source / assignment).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            inside = False
            for line in cell.source.split("\n"):
                if "BEGIN HIDDEN TESTS" in line:
                    inside = True
                elif "END HIDDEN TESTS" in line:
                    inside = False
                elif inside and len(line.strip()) >= min_length:
                    lines.add(line.strip())
    return lines


def html_text(path: Path) -> str:
    """The text a reader sees in an HTML file (no styles, scripts or tags; entities decoded)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r"(?is)<(style|script)\b[^>]*>.*?</\1\s*>", " ", text)
    text = re.sub(r"(?s)<[^>]+>", "", text)
    return html.unescape(text)


def quoted_lines(text: str, lines: set[str]) -> list[str]:
    return sorted(line for line in lines if line in text)


# --- the gradebook now ---------------------------------------------------------------------------


def refresh(course: Course, assignments: list[str] | None = None) -> list[Outcome]:
    """Recompute the late penalties of ``assignments`` (all by default) and update the report from the gradebook.

    nbgrader computes a penalty at autograde time from the score then; a score a grader changed
    since (formgrader, nbgrader's API) or a new due date, penalty or extension would leave it
    stale. Returns the report's rows, every score as the gradebook has it now.
    """
    from nbgrader.api import Gradebook, MissingEntry

    if not course.db_path.is_file():
        raise CourseError(f"no gradebook at {course.db_path}: grade some submissions first")
    store = deadlines.Deadlines.of(course)
    rows = read_report(course)
    with Gradebook(course.db_url, "circuitscope") as gb:
        names = {a.name for a in gb.assignments}
        for name in sorted(names & set(assignments) if assignments else names):
            deadlines.reapply(gb, store, name)
        for row in rows:
            if row.assignment in names:
                try:
                    update_from_gradebook(gb, row)
                except MissingEntry:
                    continue  # a row of an older gradebook: left as it was
    if rows:
        write_report(course, rows)
    return rows


# --- exercise titles -----------------------------------------------------------------------------

_HEADING = re.compile(r"^\s{0,3}(#{2,6})\s+(.+?)\s*#*\s*$")


def exercise_titles(nb: nbformat.NotebookNode) -> dict[str, str]:
    """Each nbgrader cell's exercise title, by grade_id: the last heading (``##`` or deeper) before it.

    Only headings after the previous graded cell count: an exercise with no heading of its own is
    named by its grade_id, not by the exercise before it. The notebook's own title (``#``) is not
    an exercise's. A solution cell gets the title of the exercise it answers.
    """
    titles, heading = {}, None
    for cell in nb.cells:
        info = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                match = _HEADING.match(line)
                if match:
                    heading = match.group(2)
        grade_id = info.get("grade_id")
        if grade_id and (info.get("grade") or info.get("solution") or info.get("task")):
            titles[grade_id] = heading or grade_id
            if info.get("grade") or info.get("task"):
                heading = None  # the next exercise needs a heading of its own
    return titles


@dataclass(frozen=True)
class Exercise:
    """One graded cell of an assignment, and the column the export gives it."""

    assignment: str
    notebook: str
    grade_id: str
    title: str


def course_exercises(course: Course, gb, assignment: str) -> list[Exercise]:
    """The graded cells of ``assignment`` in the gradebook, in notebook order, titled from ``solutions/``."""
    out = []
    for notebook in sorted(gb.find_assignment(assignment).notebooks, key=lambda n: n.name):
        source = course.source / assignment / f"{notebook.name}.ipynb"
        titles = exercise_titles(nbformat.read(source, as_version=4)) if source.is_file() else {}
        order = {name: i for i, name in enumerate(titles)}
        names = sorted((c.name for c in notebook.grade_cells), key=lambda n: (order.get(n, len(order)), n))
        out += [Exercise(assignment, notebook.name, n, titles.get(n, n)) for n in names]
    return out


def exercise_columns(exercises: list[Exercise], taken: list[str]) -> dict[Exercise, str]:
    """A distinct column name per exercise: its title, qualified only where two would clash."""

    def qualified(ex: Exercise, level: int) -> str:
        return [ex.title, f"{ex.assignment}: {ex.title}", f"{ex.assignment}/{ex.notebook}: {ex.title}",
                f"{ex.assignment}/{ex.notebook}: {ex.title} ({ex.grade_id})"][level]  # fmt: skip

    level = dict.fromkeys(exercises, 0)
    while True:
        names = [qualified(ex, level[ex]) for ex in exercises]
        clashes = {n for n in names if names.count(n) > 1 or n in taken}
        if not clashes or all(v == 3 for v in level.values()):
            return {ex: qualified(ex, level[ex]) for ex in exercises}
        for ex in exercises:
            if qualified(ex, level[ex]) in clashes and level[ex] < 3:
                level[ex] += 1


# --- the export ----------------------------------------------------------------------------------


def export_csv(course: Course, dest: str | os.PathLike, assignments: list[str] | None = None) -> Path:
    """Write one row per student and assignment, from the gradebook (as ``nbgrader export``), then
    one column per exercise, named by its title.

    Every student in the gradebook gets a row for every assignment asked for (a missing submission
    scores 0, as in nbgrader's exporter). ``score`` is ``raw_score`` less the late penalty, as in
    the grading report and the feedback (:func:`refresh` runs first); ``hours_late`` counts from the
    student's own due date (``extension_hours`` included). An exercise's column holds its points
    before any late penalty (a grader's manual score where there is one). ``problems`` lists what
    grading noticed, per notebook, and any cell still waiting for a grader. The gradebook holds one
    submission per student and assignment, so regrading never adds rows.
    """
    from nbgrader.api import Gradebook, MissingEntry

    report = refresh(course, assignments)
    problems: dict[tuple[str, str], list[str]] = {}
    for row in report:
        for text in (
            row.problem,
            row.needs_manual_grade and f"needs manual grading: {row.needs_manual_grade}",
        ):
            if text:
                problems.setdefault((row.student_id, row.assignment), []).append(f"{row.notebook}: {text}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with Gradebook(course.db_url, "circuitscope") as gb:
        chosen = sorted((a for a in gb.assignments if not assignments or a.name in assignments),
                        key=lambda a: a.name)  # fmt: skip
        exercises = [ex for a in chosen for ex in course_exercises(course, gb, a.name)]
        columns = exercise_columns(exercises, EXPORT_FIELDS)
        with dest.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*EXPORT_FIELDS, *columns.values()])
            writer.writeheader()
            for assignment in chosen:
                for student in sorted(gb.students, key=lambda s: s.id):
                    row = {
                        "assignment": assignment.name, "duedate": assignment.duedate or "",
                        "student_id": student.id, "last_name": student.last_name or "",
                        "first_name": student.first_name or "", "email": student.email or "",
                        "max_score": assignment.max_score,
                        "problems": " | ".join(problems.get((student.id, assignment.name), [])),
                    }  # fmt: skip
                    try:
                        sub = gb.find_submission(assignment.name, student.id)
                    except MissingEntry:
                        row.update(timestamp="", raw_score=0.0, late_submission_penalty=0.0, score=0.0,
                                   hours_late=0.0, extension_hours=0.0)  # fmt: skip
                        row["problems"] = row["problems"] or "no submission"
                    else:
                        row.update(_submission_columns(sub))
                        scores = {(nb.name, g.name): g.score for nb in sub.notebooks for g in nb.grades}
                        row.update({col: scores.get((ex.notebook, ex.grade_id), "")
                                    for ex, col in columns.items() if ex.assignment == assignment.name})  # fmt: skip
                    writer.writerow(row)
    return dest


def _submission_columns(sub) -> dict:
    """The score and lateness columns of one submission (the same arithmetic as the report's)."""
    penalty = min(float(sub.late_submission_penalty or 0.0), float(sub.score))
    return {
        "timestamp": sub.timestamp or "",
        "raw_score": sub.score,
        "late_submission_penalty": penalty,
        "score": round(sub.score - penalty, 4),
        "hours_late": round(sub.total_seconds_late / 3600, 2),
        "extension_hours": round(sub.extension.total_seconds() / 3600, 2) if sub.extension else 0.0,
    }


# --- the feedback pages --------------------------------------------------------------------------

#: nbgrader's feedback page (``feedback/index.html.j2``, which this extends) with its list of
#: "Test cell" links replaced by a table naming each exercise, and a line on lateness. The rest of
#: the page, cells and comments, is nbgrader's. ``self.body_*()`` renders what nbgrader's
#: ``super()`` renders there: the notebook's cells.
FEEDBACK_TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block body -%}
{%- set extra = resources.circuitscope -%}
<body>
  <a name="top"></a>
  <div class="container">
    <div class="panel panel-default">
      <div class="panel-heading">
        <h4>{{ resources.nbgrader.notebook }} (Score: {{ resources.nbgrader.score | float | round(2) }} / {{ resources.nbgrader.max_score | float | round(2) }})</h4>
        <table id="toc" class="table table-condensed">
          <tr><th>Exercise</th><th>Score</th></tr>
          {%- for cell in nb.cells if cell.metadata.nbgrader and cell.metadata.nbgrader.grade_id %}
          {%- set info = cell.metadata.nbgrader %}
          {%- set title = extra.titles.get(info.grade_id, info.grade_id) %}
          {%- if info.grade or info.task %}
          <tr><td><a href="#{{ info.grade_id }}">{{ title | e }}</a></td><td>{{ info.score | float | round(2) }} / {{ info.points | float | round(2) }}</td></tr>
          {%- endif %}
          {%- if info.comment %}
          <tr><td colspan="2"><a href="#comment-{{ info.grade_id }}">Comment on {{ title | e }}</a></td></tr>
          {%- endif %}
          {%- endfor %}
          {%- if resources.nbgrader.late_penalty > 0 %}
          <tr class="late-penalty"><td>Late submission penalty</td><td>-{{ resources.nbgrader.late_penalty | float | round(2) }}</td></tr>
          {%- endif %}
        </table>
        {%- if extra.lateness %}
        <p class="lateness">{{ extra.lateness | e }}</p>
        {%- endif %}
      </div>
      <div class="panel-body">
        <div id="notebook" class="border-box-sizing">
          <div class="container" id="notebook-container">
            {{ self.body_header() }}{{ self.body_loop() }}{{ self.body_footer() }}
          </div>
        </div>
      </div>
    </div>
  </div>
</body>
{%- endblock body -%}
"""

#: What replaces an output that came from the grading machine rather than from the learner's code.
MACHINE_NOTE = "[a message from the grading machine (a warning, or the model weights it used) is not shown]\n"
_WARNING_LINE = re.compile(r"^\S.*:\d+: \w*Warning: ", re.MULTILINE)


class FeedbackExporter(HTMLExporter):
    """nbgrader's feedback page, with named exercises, lateness, and nothing of the grading machine.

    Set as ``c.GenerateFeedback.exporter_class``. Before nbgrader's preprocessors run, it puts
    each exercise's title (from ``solutions/``) and the submission's lateness (from the gradebook)
    in the resources the template reads, and removes what the grading machine wrote into the
    learner's outputs: warnings on stderr and the weights notice (:func:`strip_machine_outputs`),
    and its folders in any other output (:func:`grader_paths`).
    """

    @default("raw_template")
    def _raw_template_default(self) -> str:
        return FEEDBACK_TEMPLATE

    def from_notebook_node(self, nb, resources=None, **kw):
        resources = resources if resources is not None else {}
        info = resources.get("nbgrader", {})
        root = getattr(getattr(self.parent, "coursedir", None), "root", None)
        resources["circuitscope"] = page_details(root, info)
        strip_machine_outputs(nb, grader_paths(root))
        return super().from_notebook_node(nb, resources, **kw)


def page_details(root: str | None, info: dict) -> dict:
    """The template's ``resources.circuitscope``: exercise titles and the lateness sentence."""
    from nbgrader.api import Gradebook, MissingEntry

    details = {"titles": {}, "lateness": ""}
    if not info:
        return details
    if root:
        source = Course(Path(root)).source / info["assignment"] / f"{info['notebook']}.ipynb"
        if source.is_file():
            details["titles"] = exercise_titles(nbformat.read(source, as_version=4))
    with Gradebook(info["db_url"]) as gb:
        try:
            late = deadlines.lateness(gb, deadlines.Deadlines.beside(info["db_url"]), info["assignment"],
                                      info["student"])  # fmt: skip
            nb = gb.find_submission_notebook(info["notebook"], info["assignment"], info["student"])
        except MissingEntry:
            return details
        details["lateness"] = late.for_student(float(nb.late_submission_penalty or 0.0))
    return details


def grader_paths(root: str | os.PathLike | None = None) -> list[str]:
    """Folders of the grading machine that can show up in outputs, longest first.

    The course, the Python environment and every folder on ``sys.path``, the home and temporary
    folders, and the library's caches and data (``CIRCUITSCOPE_CACHE``, ``_MIRROR``, ``_WEIGHTS``).
    """
    env = os.environ
    cache = env.get("CIRCUITSCOPE_CACHE") or os.path.join(
        env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "circuitscope")  # fmt: skip
    candidates = [root, sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path, str(Path.home()),
                  tempfile.gettempdir(), cache, env.get("CIRCUITSCOPE_WEIGHTS"),
                  *(env.get("CIRCUITSCOPE_MIRROR") or "").split(os.pathsep)]  # fmt: skip
    paths = set()
    for path in filter(None, candidates):
        for form in (str(path), os.path.realpath(path)):
            if os.path.isabs(form) and form.rstrip("/").count("/") >= 1 and form != "/":
                paths.add(form.rstrip("/"))
    return sorted(paths, key=len, reverse=True)


def scrub_paths(text: str, paths: list[str]) -> str:
    """``text`` with each of ``paths`` (a whole path component) shown as ``…``."""
    if not paths:
        return text
    pattern = "|".join(re.escape(p) for p in paths)
    return re.sub(rf"(?<![\w.-])(?:{pattern})(?![\w.-])", "\u2026", text)


def strip_machine_outputs(nb: nbformat.NotebookNode, paths: list[str]) -> nbformat.NotebookNode:
    """Remove from ``nb`` (in place) what the grading machine, not the learner, wrote in outputs.

    In the learner's cells, a stderr stream holding a Python warning and the library's weights
    notice become one neutral line (:data:`MACHINE_NOTE`). A test cell keeps its outputs:
    ``HideHiddenTests`` reads them (nbgrader fails a test cell that wrote to stderr). In every
    cell, the grading machine's folders (``paths``) become ``…``.
    """
    from nbgrader.utils import is_grade, is_solution

    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        learners = is_solution(cell) or not is_grade(cell)
        kept = []
        for output in cell.get("outputs", []):
            if learners and _from_machine(output):
                if not kept or kept[-1].get("text") != MACHINE_NOTE:
                    kept.append(
                        nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": MACHINE_NOTE})
                    )
                continue
            kept.append(_scrubbed(output, paths))
        cell.outputs = kept
    return nb


def _from_machine(output) -> bool:
    """A Python warning on stderr, or the library's notice of the weights it loaded."""
    from circuitscope.core.provenance import NOTICE_CLASS

    if output.get("name") == "stderr" and _WARNING_LINE.search(_joined(output.get("text", ""))):
        return True
    classes = "|".join(re.escape(c) for c in sorted(set(NOTICE_CLASS.values())))
    return bool(
        re.search(rf'class="[^"]*\b(?:{classes})\b', _joined(output.get("data", {}).get("text/html", "")))
    )


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _scrubbed(output, paths: list[str]):
    """``output`` with the grading machine's folders removed from every text it holds."""
    if "text" in output:
        output["text"] = scrub_paths(_joined(output["text"]), paths)
    if "evalue" in output:
        output["evalue"] = scrub_paths(output["evalue"], paths)
    if "traceback" in output:
        output["traceback"] = [scrub_paths(line, paths) for line in output["traceback"]]
    for mime, value in output.get("data", {}).items():
        if isinstance(value, (str, list)) and (
            mime.startswith("text/") or mime.endswith(("json", "javascript"))
        ):
            output["data"][mime] = scrub_paths(_joined(value), paths)
    return output
