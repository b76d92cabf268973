"""Due dates, late penalties, extensions, manual overrides, per-exercise scores and clean feedback.

The fast tests check the pieces (penalty arithmetic, times, titles, the feedback's scrubbing, the
nbgrader plugin on a real gradebook). The slow ones grade a small class of the demo assignment
with the real nbgrader CLI, real kernels and the real gradebook, as an instructor would:

    circuitscope-course due demo "2026-12-20 23:59 UTC" --penalty per-day:10
    circuitscope-course extend extended demo --hours 48      (before that student submits)
    circuitscope-course grade ...; a grader's override in the gradebook; one student regraded;
    circuitscope-course export / feedback; an extension granted after grading.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import json
import os
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from circuitscope_course import Course, CourseError, cli, demo, generate
from circuitscope_course.deadlines import CoursePenalty, Deadlines, Penalty, parse_time
from circuitscope_course.grading import GRADED, Outcome, grade, read_report, write_report
from circuitscope_course.results import (
    MACHINE_NOTE,
    Exercise,
    exercise_columns,
    exercise_titles,
    export_csv,
    feedback,
    grader_paths,
    html_text,
    strip_machine_outputs,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "autograder" / "nbgrader_config.py"
CELL_TIMEOUT = 60  # seconds; the "machine" student builds the synthetic model
DUE = "2026-12-20 23:59 UTC"
LATE = "2026-12-22 06:00:00 UTC"  # 1 d 6 h 1 min after DUE: two started days
TITLES = {"add": "Exercise 1: add two tensors", "scale": "Exercise 2: scale a tensor"}


# --- the pieces ------------------------------------------------------------------------------------


def test_penalty_methods():
    per_day = Penalty.parse("per-day:10")
    assert str(per_day) == "per-day:10" and str(Penalty.parse(" ZERO ")) == "zero"
    assert per_day.points(14, 1) == pytest.approx(1.4)  # one second late: one started day
    assert per_day.points(14, 25 * 3600) == pytest.approx(2.8)
    assert per_day.points(14, 0) == 0.0 and per_day.points(0, 99999) == 0.0
    assert Penalty.parse("per-day:40").points(14, 5 * 24 * 3600) == 14  # never more than the score
    assert Penalty.parse("zero").points(14, 60) == 14 and Penalty.parse("none").points(14, 1e6) == 0
    for bad in ("per-day", "per-day:0", "per-day:150", "half", "zero:3"):
        with pytest.raises(CourseError, match="per-day:10"):
            Penalty.parse(bad)


def test_times_are_read_with_their_zone_and_refused_without():
    assert parse_time("2026-12-20 23:59 UTC") == dt.datetime(2026, 12, 20, 23, 59)
    assert parse_time("2026-12-20 23:59 Europe/Berlin") == dt.datetime(2026, 12, 20, 22, 59)
    assert parse_time("2026-12-20T23:59+01:00") == dt.datetime(2026, 12, 20, 22, 59)
    for bad, why in (("2026-12-20 23:59", "no time zone"), ("2026-12-20 23:59 +0100", "without the space"),
                     ("2026-12-20 23:59 Mars/Olympus", "unknown time zone"), ("soon", "time zone")):  # fmt: skip
        with pytest.raises(CourseError, match=why):
            parse_time(bad)


def _meta(grade_id, **flags):
    return {"nbgrader": {"grade_id": grade_id, "grade": False, "solution": False, "locked": False, **flags}}


def test_exercise_titles_come_from_the_headings_before_each_exercise():
    nb = new_notebook(cells=[
        new_markdown_cell("# The notebook's title"),
        new_code_cell("", metadata=_meta("first", solution=True)),
        new_code_cell("", metadata=_meta("first_test", grade=True, points=1)),
        new_markdown_cell("Some text\n\n## Exercise 2: curves\n\nmore"),
        new_code_cell("", metadata=_meta("second", solution=True)),
        new_code_cell("", metadata=_meta("second_test", grade=True, points=1)),
        new_code_cell("", metadata=_meta("third_test", grade=True, points=1)),
    ])  # fmt: skip
    assert exercise_titles(nb) == {
        "first": "first", "first_test": "first_test",  # a notebook's "#" title is no exercise's
        "second": "Exercise 2: curves", "second_test": "Exercise 2: curves",
        "third_test": "third_test",  # no heading of its own: not the previous exercise's
    }  # fmt: skip


def test_the_courses_own_exercises_are_titled():
    path = ROOT / "solutions" / "ch1_introduction" / "ch1_exercises.ipynb"
    if not path.is_file():
        pytest.skip("no chapter 1 exercises in this checkout")
    nb = nbformat.read(path, as_version=4)
    tests = [c.metadata.nbgrader["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    titles = exercise_titles(nb)
    assert tests and all(titles[t].startswith("Exercise") for t in tests), titles
    assert len({titles[t] for t in tests}) == len(tests)


def test_export_columns_are_qualified_only_where_titles_clash():
    a = Exercise("ch1", "nb", "t1", "Exercise 1")
    b = Exercise("ch2", "nb", "t1", "Exercise 1")
    c = Exercise("ch2", "nb", "t2", "Exercise 2")
    d = Exercise("ch2", "nb", "t3", "score")  # a title that is also a column of the export
    assert exercise_columns([a, b, c, d], ["score"]) == {
        a: "ch1: Exercise 1", b: "ch2: Exercise 1", c: "Exercise 2", d: "ch2: score"}  # fmt: skip


def test_feedback_outputs_lose_the_grading_machines_warnings_and_folders(tmp_path, monkeypatch):
    cache = tmp_path / "grader-cache"
    monkeypatch.setenv("CIRCUITSCOPE_CACHE", str(cache))
    library = str(Path(sysconfig.get_paths()["purelib"]) / "torch" / "nn" / "module.py")  # on sys.path
    warning = f"/tmp/ipykernel_2/1.py:2: UserWarning: SYNTHETIC weights\nput it at {cache}/inception5h.pth\n"
    nb = new_notebook(cells=[
        new_code_cell("learner", metadata=_meta("answer", solution=True), outputs=[
            new_output("stream", name="stderr", text=warning),
            new_output("display_data", data={"text/html": '<div class="admonition circuitscope-synthetic">x</div>'}),
            new_output("stream", name="stdout", text=f"my own line, from {library}\n"),
            new_output("error", ename="ValueError", evalue="bad", traceback=[f"File {library}:3, in f"]),
        ]),
        new_code_cell("check(answer)", metadata=_meta("test", grade=True, points=1), outputs=[
            new_output("stream", name="stderr", text=warning),
        ]),
    ])  # fmt: skip
    strip_machine_outputs(nb, grader_paths(tmp_path))
    learner, test = nb.cells[0].outputs, nb.cells[1].outputs
    assert learner[0].text == MACHINE_NOTE and len(learner) == 3  # the warning and the notice: one line
    assert learner[1].text == "my own line, from \u2026/torch/nn/module.py\n"  # the learner's output stays
    assert learner[2].traceback == ["File \u2026/torch/nn/module.py:3, in f"]
    # a test cell keeps its stderr (HideHiddenTests fails a cell that wrote there), paths removed
    assert test[0].name == "stderr" and "UserWarning" in test[0].text and str(cache) not in test[0].text


@pytest.fixture
def gradebook_path(tmp_path, monkeypatch):
    """A real nbgrader gradebook: assignment `a1` due at DUE, one notebook, student `s1` submitted LATE."""
    from nbgrader.api import Gradebook

    # a new gradebook is stamped by nbgrader's `alembic`, in this Python's bin folder
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    path = tmp_path / "gradebook.db"
    with Gradebook(f"sqlite:///{path}") as gb:
        gb.add_assignment("a1", duedate=DUE)
        gb.add_notebook("nb", "a1")
        gb.add_grade_cell("t1", "nb", "a1", max_score=10, cell_type="code")
        gb.add_student("s1")
        gb.add_submission("a1", "s1", timestamp=LATE)
    return path


@pytest.mark.filterwarnings("ignore:.*not in session")  # nbgrader's add_submission; harmless
def test_the_nbgrader_plugin_applies_the_penalty_and_a_pending_extension(gradebook_path):
    from nbgrader.api import Gradebook
    from nbgrader.preprocessors import AssignLatePenalties

    url = f"sqlite:///{gradebook_path}"
    store = Deadlines.beside(url)
    store.penalties["a1"] = "per-day:10"
    store.save()
    with Gradebook(url) as gb:
        # as AssignLatePenalties.preprocess sets itself up, then makes plugin_class(parent=self)
        owner = AssignLatePenalties()
        owner.assignment_id, owner.student_id, owner.gradebook, owner.db_url = "a1", "s1", gb, url
        plugin = CoursePenalty(parent=owner)
        late = gb.find_submission("a1", "s1").total_seconds_late
        assert plugin.late_submission_penalty("s1", 8.0, late) == pytest.approx(1.6)  # 2 days x 10%
        # granted before the student submitted: only in deadlines.json, not yet in the gradebook
        store.extensions["a1"] = {"s1": {"hours": 48}}
        store.save()
        assert gb.find_submission("a1", "s1").extension is None
        assert plugin.late_submission_penalty("s1", 8.0, late) is None
        assert gb.find_submission("a1", "s1").extension == dt.timedelta(hours=48)


def test_commands_need_a_gradebook_and_say_so(tmp_path, capsys):
    demo.create(tmp_path, CONFIG)
    assert cli.main(["--root", str(tmp_path), "due", "demo", DUE]) == 2
    assert "circuitscope-course generate" in capsys.readouterr().err


def test_an_older_report_is_read_with_no_penalty(tmp_path):
    course = Course(tmp_path)
    (tmp_path / "autograder").mkdir()
    (tmp_path / "autograder" / "grading_report.csv").write_text(
        "student_id,assignment,notebook,status,score,max_score,seconds,problem\na,ch1,nb,graded,2.5,3,1,\n"
    )
    (row,) = read_report(course)
    assert (row.score, row.raw_score, row.late_penalty, row.hours_late) == (2.5, 2.5, 0.0, 0.0)
    write_report(course, [Outcome("b", "ch1", "nb", GRADED, 1, 3, raw_score=2, late_penalty=1, hours_late=5)])
    assert [(o.student_id, o.score, o.late_penalty, o.hours_late) for o in read_report(course)] == [
        ("a", 2.5, 0.0, 0.0), ("b", 1.0, 1.0, 5.0)]  # fmt: skip


# --- a class, graded for real ----------------------------------------------------------------------


class Class:
    pass


def _titled_source(root: Path) -> None:
    """The demo's source notebook with a heading before each exercise."""
    path = root / "solutions" / "demo" / "demo.ipynb"
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in TITLES:
            cells.append(new_markdown_cell(f"## {TITLES[grade_id]}"))
        cells.append(cell)
    nb.cells = cells
    nbformat.write(nb, path)


def _submission(release, folder: Path, add: str, scale: str, timestamp: str | None) -> None:
    nb = copy.deepcopy(release)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in ("add", "scale"):
            cell.source = add if grade_id == "add" else scale
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "demo.ipynb")
    if timestamp:
        (folder / "timestamp.txt").write_text(timestamp + "\n")


MACHINE_ADD = """import circuitscope as cs
model = cs.load_inceptionv1()       # synthetic here: a warning naming the grader's cache
cs.provenance.notice(model)
print("library at", cs.__file__)    # a path of the grading machine

def add(a, b):
    return a + b"""


def _rows(path: Path) -> dict[str, dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return {r["student_id"]: r for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Class:
    from nbgrader.api import Gradebook

    g = Class()
    g.root = tmp_path_factory.mktemp("late-course")
    g.course = Course(g.root)
    demo.create(g.root, CONFIG)
    _titled_source(g.root)
    generate(g.course, log=lambda *_: None)

    def run(*args: str) -> int:
        return cli.main(["--root", str(g.root), *args])

    assert run("due", "demo", DUE, "--penalty", "per-day:10") == 0
    assert run("extend", "extended", "demo", "--hours", "48") == 0  # before they submit

    release = nbformat.read(g.course.release / "demo" / "demo.ipynb", as_version=4)
    g.submissions = g.root / "submissions"
    for student, add, scale, stamp in (
        ("late", demo.ADD, demo.SCALE, LATE),
        ("extended", demo.ADD, demo.SCALE, LATE),
        ("override", "def add(a, b):\n    return a - b", "def scale(x, k):\n    return x", "2026-12-19 12:00 UTC"),
        ("machine", MACHINE_ADD, demo.SCALE, "2026-12-19 12:00 UTC"),
    ):  # fmt: skip
        _submission(release, g.submissions / student / "demo", add, scale, stamp)
    g.log = []
    g.first = {o.student_id: o for o in grade(g.course, g.submissions, timeout=CELL_TIMEOUT, jobs=2,
                                              progress=False, log=g.log.append)}  # fmt: skip
    g.first_csv = _rows(export_csv(g.course, g.root / "grades-1.csv"))
    g.first_report = read_report(g.course)

    # A grader gives `override` the add exercise's point and a comment (what formgrader does),
    # then that student is regraded (a resubmission, a fixed test, ...).
    with Gradebook(g.course.db_url) as gb:
        gb.find_grade("test_add", "demo", "demo", "override").manual_score = 1.0
        gb.find_comment("add", "demo", "demo", "override").manual_comment = "Right idea: mind the sign."
        gb.db.commit()
    again = g.root / "again"
    (again / "override").mkdir(parents=True)
    (g.submissions / "override" / "demo").rename(again / "override" / "demo")
    g.relog = []
    g.second = {o.student_id: o for o in grade(g.course, again, timeout=CELL_TIMEOUT, progress=False,
                                               log=g.relog.append)}  # fmt: skip
    with Gradebook(g.course.db_url) as gb:
        grade_row = gb.find_grade("test_add", "demo", "demo", "override")
        g.override_grade = (grade_row.manual_score, grade_row.auto_score, grade_row.needs_manual_grade)
    g.second_csv = _rows(export_csv(g.course, g.root / "grades-2.csv"))
    g.second_report = read_report(g.course)

    g.feedback = feedback(g.course, log=lambda *_: None)
    g.pages = {p.parent.parent.name: p.read_text(encoding="utf-8") for p in g.feedback}
    g.texts = {p.parent.parent.name: html_text(p) for p in g.feedback}  # what a reader sees

    # An extension granted after grading, up to just after `late` handed in.
    assert run("extend", "late", "demo", "--until", "2026-12-22 06:30 UTC") == 0
    g.extended_csv = _rows(export_csv(g.course, g.root / "grades-3.csv"))
    g.extended_report = read_report(g.course)
    return g


def _report_row(report: list[Outcome], student: str) -> Outcome:
    (row,) = [o for o in report if o.student_id == student]
    return row


def _numbers(row: dict, *keys: str) -> tuple[float, ...]:
    return tuple(float(row[k]) for k in keys)


@pytest.mark.slow
def test_a_late_submission_loses_its_penalty_in_every_output(graded):
    outcome = graded.first["late"]
    assert outcome.status == GRADED and outcome.raw_score == 3.0
    # 1 d 6 h 1 min late: two started days at 10% of 3 points
    assert (outcome.late_penalty, outcome.score, outcome.hours_late) == pytest.approx((0.6, 2.4, 30.02))
    row = graded.first_csv["late"]
    columns = ("score", "late_submission_penalty", "hours_late", "extension_hours")
    assert _numbers(row, *columns) == pytest.approx((2.4, 0.6, 30.02, 0.0))
    assert any(line.startswith("LATE late/demo: 1 d 6 h 1 min late") for line in graded.log), graded.log
    page = graded.texts["late"]
    assert "1 d 6 h 1 min late" in page and "0.6 point(s) are taken off" in page
    assert "Late submission penalty</td><td>-0.6" in graded.pages["late"]


@pytest.mark.slow
def test_an_extension_granted_before_submitting_makes_it_on_time(graded):
    outcome = graded.first["extended"]
    assert (outcome.score, outcome.late_penalty, outcome.hours_late) == (3.0, 0.0, 0.0)
    row = graded.first_csv["extended"]
    assert _numbers(row, "score", "late_submission_penalty", "hours_late", "extension_hours") == (3, 0, 0, 48)
    assert not any("LATE extended" in line for line in graded.log)
    page = graded.texts["extended"]
    assert "your extension of 2 d included" in page and "on time" in page


@pytest.mark.slow
def test_an_extension_granted_after_grading_needs_no_regrade(graded):
    row = graded.extended_csv["late"]
    assert _numbers(row, "score", "late_submission_penalty", "hours_late") == (3, 0, 0)
    assert _report_row(graded.extended_report, "late").score == 3.0
    store = json.loads((graded.course.autograder / "deadlines.json").read_text())
    assert store["penalties"] == {"demo": "per-day:10"}
    assert set(store["extensions"]["demo"]) == {"extended", "late"}


@pytest.mark.slow
@pytest.mark.parametrize("when", ["first", "second", "extended"])
def test_the_report_and_the_export_give_every_student_the_same_score(graded, when):
    report, export = getattr(graded, f"{when}_report"), getattr(graded, f"{when}_csv")
    assert set(export) == {o.student_id for o in report} == {"late", "extended", "override", "machine"}
    for o in report:
        row = export[o.student_id]
        assert (o.score, o.raw_score, o.late_penalty, o.hours_late) == pytest.approx(
            (float(row["score"]), float(row["raw_score"]), float(row["late_submission_penalty"]),
             float(row["hours_late"])))  # fmt: skip


@pytest.mark.slow
def test_the_export_has_one_column_per_exercise_named_by_its_title(graded):
    add, scale = TITLES["add"], TITLES["scale"]
    for rows in (graded.first_csv, graded.second_csv):
        for row in rows.values():
            assert sum(_numbers(row, add, scale)) == pytest.approx(float(row["raw_score"]))
    assert _numbers(graded.first_csv["late"], add, scale) == (1, 2)
    assert _numbers(graded.first_csv["override"], add, scale) == (0, 0)
    assert _numbers(graded.second_csv["override"], add, scale) == (1, 0)  # the grader's point


@pytest.mark.slow
def test_a_manual_override_survives_a_regrade_with_no_false_problem(graded):
    assert graded.first["override"].score == 0.0
    manual, auto, flagged = graded.override_grade
    assert (manual, auto) == (1.0, 0.0)  # the regrade scored it 0 again; the grader's point stands
    assert flagged  # nbgrader flags an overridden cell for review after each regrade ...
    outcome = graded.second["override"]  # ... which is not a problem to report
    assert outcome.score == 1.0 and not outcome.problem and not outcome.needs_manual_grade
    assert _report_row(graded.second_report, "override").score == 1.0
    row = graded.second_csv["override"]
    assert float(row["score"]) == 1.0 and row["problems"] == ""
    assert not any("needs manual grading" in line for line in graded.relog), graded.relog


@pytest.mark.slow
def test_feedback_names_each_exercise_and_shows_the_graders_comment(graded):
    assert set(graded.pages) == {"late", "extended", "override", "machine"}
    for student, page in graded.pages.items():
        assert f'href="#test_add">{TITLES["add"]}</a>' in page, student  # the score table's rows
        assert f'href="#test_scale">{TITLES["scale"]}</a>' in page, student
        assert ">Test cell<" not in page
    override = graded.texts["override"]
    assert "Comment on Exercise 1: add two tensors" in override and "Right idea: mind the sign." in override


@pytest.mark.slow
def test_feedback_shows_nothing_of_the_grading_machine(graded):
    page = graded.pages["machine"]
    assert graded.first["machine"].score == 3.0
    assert MACHINE_NOTE.strip() in graded.texts["machine"]
    assert "library at \u2026/circuitscope/__init__.py" in graded.texts["machine"]  # the learner's line stays
    for secret in ("UserWarning", "SYNTHETIC", "synthetic weights", str(ROOT), str(graded.root), sys.prefix,
                   os.environ["CIRCUITSCOPE_CACHE"]):  # fmt: skip
        assert secret not in page, secret


@pytest.mark.slow
def test_due_shows_the_settings(graded, capsys):
    assert cli.main(["--root", str(graded.root), "due"]) == 0
    out = capsys.readouterr().out
    assert "demo: due 2026-12-20 23:59 UTC, late penalty per-day:10" in out
    assert "extension for extended: 2 d, so due 2026-12-22 23:59 UTC" in out
    assert cli.main(["--root", str(graded.root), "extend", "late", "demo", "--hours", "-3"]) == 2
    assert "--hours must be more than 0" in capsys.readouterr().err
