"""Canvas and Moodle in and out (circuitscope_course.lms), on the demo course.

The fast tests build LMS downloads with the names Canvas and Moodle give their files and check
where each file lands, what is reported, and the roster in the real gradebook (nbgrader's API).
The slow ones (marked) collect a Canvas class with the real command line, grade it with real
nbgrader, and send grades and feedback back: the Canvas export must carry the course export's
numbers, the feedback zip Canvas's names.
"""

from __future__ import annotations

import csv
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import nbformat
import pytest

from circuitscope_course import Course, CourseError, cli, demo, generate, lms
from circuitscope_course.grading import find_submissions

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "autograder" / "nbgrader_config.py"
CELL_TIMEOUT = 30  # seconds; the setup cell imports torch, slow on a busy machine
DUE = datetime(2026, 12, 20, 23, 59)

#: A Canvas gradebook export, as the roster: its "ID" is the Canvas user id, "SIS User ID" the
#: student id; the second row and the test student are not students. Turing has no SIS User ID.
CANVAS_ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section,demo (77)
    Points Possible,,,,,3
"Lovelace, Ada",1001,s001,ada,A,
"Hopper, Grace",1002,s002,grace,A,
"Turing, Alan",1003,,alan,A,
"Student, Test",999,,,A,
"""


def _course(root: Path) -> Course:
    demo.create(root, CONFIG)
    return Course(root)


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as out:
        for name, text in files.items():
            out.writestr(name, text)
    return path


def _students(course: Course) -> dict:
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, "circuitscope") as gb:
        return {s.id: (s.first_name, s.last_name, s.email, s.lms_user_id) for s in gb.students}


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


NOTEBOOK = nbformat.writes(demo.source_notebook())


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("lovelaceada_1001_5001_demo.ipynb", ("lovelaceada", "1001", "5001", "demo.ipynb", False)),
        ("hoppergrace_LATE_1002_5003_demo-1.ipynb", ("hoppergrace", "1002", "5003", "demo-1.ipynb", True)),
        ("hoppergrace_late_1002_5003_my_demo.ipynb", ("hoppergrace", "1002", "5003", "my_demo.ipynb", True)),
        ("de_la_cruzjuan_1009_5009_demo.ipynb", ("de_la_cruzjuan", "1009", "5009", "demo.ipynb", False)),
        ("LATE_anon_12345_5010_demo.ipynb", ("", "anon_12345", "5010", "demo.ipynb", True)),
        ("renamed_12345_678_demo.ipynb", ("renamed", "12345", "678", "demo.ipynb", False)),
    ],
)
def test_canvas_names_read_as_canvas_writes_them(entry, expected):
    f = lms.parse_canvas(entry)
    assert isinstance(f, lms.LmsFile), f
    assert (f.lms_name, f.lms_id, f.file_id, f.filename, f.late) == expected


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("Ada Lovelace_20001_assignsubmission_file_/demo.ipynb", ("Ada Lovelace", "20001", "demo.ipynb")),
        (
            "Ada Lovelace_20001_assignsubmission_file/demo.ipynb",
            ("Ada Lovelace", "20001", "demo.ipynb"),
        ),  # 4.1+
        (
            "Ada Lovelace_20001_assignsubmission_file_demo (1).ipynb",
            ("Ada Lovelace", "20001", "demo (1).ipynb"),
        ),
        ("Participant_20004_assignsubmission_file_/demo.ipynb", ("", "20004", "demo.ipynb")),  # blind marking
        (
            "week 3/Ada Lovelace_20001_assignsubmission_file_/demo.ipynb",
            ("Ada Lovelace", "20001", "demo.ipynb"),
        ),
    ],
)
def test_moodle_names_read_as_moodle_writes_them(entry, expected):
    f = lms.parse_moodle(entry)
    assert isinstance(f, lms.LmsFile), f
    assert (f.lms_name, f.lms_id, f.filename) == expected


def test_what_is_not_an_uploaded_file_says_so():
    assert "text entry" in lms.parse_canvas("curiemarie_1005_text.html")
    assert "not named as Canvas" in lms.parse_canvas("readme.txt")
    assert "onlinetext" in lms.parse_moodle("Emmy Noether_20005_assignsubmission_onlinetext_/onlinetext.html")
    assert "not named as Moodle" in lms.parse_moodle("lovelaceada_1001_5001_demo.ipynb")


def test_copy_suffixes_are_stripped_and_other_names_are_not_guessed():
    assert lms.notebook_for("demo-1.ipynb", ["demo"]) == "demo"
    assert lms.notebook_for("demo (2).ipynb", ["demo"]) == "demo"
    assert lms.notebook_for("demo.ipynb", ["demo"]) == "demo"
    assert lms.notebook_for("demo_final.ipynb", ["demo"]) is None
    assert lms.notebook_for("demo-1.txt", ["demo"]) is None
    assert lms.detect(["lovelaceada_1001_5001_demo.ipynb", "readme.txt"]) == "canvas"
    assert lms.detect(["Ada Lovelace_20001_assignsubmission_file_/demo.ipynb"]) == "moodle"


# --- the roster ---------------------------------------------------------------------------------


def test_roster_import_is_idempotent(tmp_path, capsys):
    course = _course(tmp_path / "course")
    roster = tmp_path / "canvas.csv"
    roster.write_text(CANVAS_ROSTER, encoding="utf-8")

    first = lms.import_roster(course, roster)
    state = _students(course)
    assert sorted(first.added) == ["alan", "s001", "s002"] and not first.updated
    assert any("test student" in line for line in first.skipped)
    assert state == {
        "s001": ("Ada", "Lovelace", None, "1001"),
        "s002": ("Grace", "Hopper", None, "1002"),
        "alan": ("Alan", "Turing", None, "1003"),  # no SIS User ID: the SIS Login ID
    }

    assert cli.main(["--root", str(course.root), "roster", "import", str(roster)]) == 0
    assert "0 student(s) added, 0 updated, 3 unchanged" in capsys.readouterr().out
    assert _students(course) == state

    # Moodle's participants export: names, "ID number", "Email address"; a new email updates one student
    moodle = tmp_path / "moodle.csv"
    moodle.write_text("First name,Last name,ID number,Email address\nAda,Lovelace,s001,ada@uni.edu\n")
    again = lms.import_roster(course, moodle)
    assert (again.added, again.updated) == ([], ["s001"])
    assert _students(course)["s001"] == ("Ada", "Lovelace", "ada@uni.edu", "1001")  # Canvas id kept


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id,first_name,last_name,email,lms_user_id\nada,Ada,Lovelace,a@uni.edu,1001\n",  # nbgrader's
         ("ada", "Ada", "Lovelace", "a@uni.edu", "1001")),
        ("LastName,FirstName,ID,SIS User ID,SIS Login ID,Section\nLovelace,Ada,1001,,ada,A\n",  # Canvas
         ("ada", "Ada", "Lovelace", "", "1001")),
        ("Identifier,Full name,Email address,Status\nParticipant 20001,Ada Lovelace,a@uni.edu,Submitted\n",
         ("ada-lovelace", "Ada", "Lovelace", "a@uni.edu", "")),  # Moodle's grading worksheet: no id
        ("\ufeffFirst name,Last name,ID number,Email address\nAda,Lovelace,s001,a@uni.edu\n",  # Moodle, Excel BOM
         ("s001", "Ada", "Lovelace", "a@uni.edu", "")),
    ],
)  # fmt: skip
def test_rosters_in_each_format(tmp_path, text, expected):
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    students, skipped = lms.read_roster(path)
    assert [(s.id, s.first_name, s.last_name, s.email, s.lms_user_id) for s in students] == [expected]
    assert not skipped


def test_a_roster_that_cannot_name_folders_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,first_name,last_name,email\nada lovelace,Ada,Lovelace,\n")
    with pytest.raises(CourseError, match="cannot be a student id"):
        lms.read_roster(bad)
    bad.write_text("id,first_name,last_name,email\ns1,Ada,Lovelace,\ns1,Grace,Hopper,\n")
    with pytest.raises(CourseError, match="already on row 2"):
        lms.read_roster(bad)
    bad.write_text("colour,size\nred,3\n")
    with pytest.raises(CourseError, match="no column naming students"):
        lms.read_roster(bad)


# --- collecting without grading ---------------------------------------------------------------------


def test_a_moodle_download_is_placed_by_roster_name(tmp_path):
    course = _course(tmp_path / "course")
    roster = tmp_path / "canvas.csv"
    roster.write_text(CANVAS_ROSTER, encoding="utf-8")
    lms.import_roster(course, roster)
    download = _zip(tmp_path / "moodle.zip", {
        "Ada Lovelace_20001_assignsubmission_file_/demo.ipynb": NOTEBOOK,
        "Ada Lovelace_20001_assignsubmission_file_/data.csv": "x,y\n",
        "Grace Hopper_20002_assignsubmission_file/demo (1).ipynb": NOTEBOOK,
        "Participant_20004_assignsubmission_file_/demo.ipynb": NOTEBOOK,
        "Emmy Noether_20005_assignsubmission_onlinetext_/onlinetext.html": "<p>hi</p>",
        "Emmy Noether_20005_assignsubmission_file_/Demo.ipynb": NOTEBOOK,
        "Grace Hopper_20002_assignsubmission_file/timestamp.txt": "2020-01-01 00:00:00 UTC",  # an early time
    })  # fmt: skip
    into = tmp_path / "subs"
    result = lms.collect(course, download, "demo", into=into)  # roster: the gradebook's

    assert result.lms == "moodle"
    files = sorted(str(p.relative_to(into)) for p in into.rglob("*") if p.is_file())
    assert files == ["participant-20004/demo/demo.ipynb", "s001/demo/data.csv", "s001/demo/demo.ipynb",
                     "s002/demo/demo.ipynb"]  # fmt: skip
    unplaced = dict(result.unplaced)
    assert set(unplaced) == {
        "Emmy Noether_20005_assignsubmission_onlinetext_/onlinetext.html",
        "Emmy Noether_20005_assignsubmission_file_/Demo.ipynb",
        "Grace Hopper_20002_assignsubmission_file/timestamp.txt",  # never the student's word for the time
    }
    assert "'Demo.ipynb'" in unplaced["Emmy Noether_20005_assignsubmission_file_/Demo.ipynb"]
    assert "demo.ipynb" in unplaced["Emmy Noether_20005_assignsubmission_file_/Demo.ipynb"]
    text = "\n".join(result.lines())
    assert "could not place 3 file(s)" in text and "Demo.ipynb" in text
    rows = {r["student_id"]: r for r in lms.read_manifest(course, "demo")}
    assert {s: r["lms_id"] for s, r in rows.items()} == {
        "s001": "20001", "s002": "20002", "participant-20004": "20004", "emmy-noether": "20005",
    }  # fmt: skip


def test_canvas_lateness_without_a_due_date_is_reported_not_invented(tmp_path):
    course = _course(tmp_path / "course")
    download = _zip(tmp_path / "canvas.zip", {"hoppergrace_LATE_1002_5003_demo.ipynb": NOTEBOOK})
    result = lms.collect(course, download, "demo", into=tmp_path / "subs")
    assert result.late == {"hoppergrace": ""}
    assert not (tmp_path / "subs" / "hoppergrace" / "demo" / "timestamp.txt").exists()
    assert any("no due date" in line for line in result.lines())


def test_a_zip_that_is_no_lms_download_is_refused(tmp_path):
    course = _course(tmp_path / "course")
    with pytest.raises(CourseError, match="neither a Canvas nor a Moodle"):
        lms.collect(course, _zip(tmp_path / "x.zip", {"notes.txt": "x"}), "demo")
    (tmp_path / "y.zip").write_text("not a zip")
    with pytest.raises(CourseError, match="cannot read"):
        lms.collect(course, tmp_path / "y.zip", "demo")
    with pytest.raises(CourseError, match="unknown assignment"):
        lms.collect(course, tmp_path / "x.zip", "ch9")


def test_grading_names_a_notebook_it_will_not_grade(tmp_path):
    folder = tmp_path / "subs" / "ada" / "demo"
    folder.mkdir(parents=True)
    (folder / "renamed_12345_678_demo.ipynb").write_text(NOTEBOOK)
    log = []
    subs = find_submissions(
        tmp_path / "subs", ["demo"], ["demo"], log=log.append, expected={"demo": ["demo"]}
    )
    assert [s.student for s in subs] == ["ada"]
    assert len(log) == 1 and "renamed_12345_678_demo.ipynb" in log[0] and "expected demo.ipynb" in log[0]
    assert "demo.ipynb missing" in log[0]
    (folder / "demo.ipynb").write_text(NOTEBOOK)  # now only the stray is named, nothing is missing
    log.clear()
    find_submissions(tmp_path / "subs", ["demo"], ["demo"], log=log.append, expected={"demo": ["demo"]})
    assert len(log) == 1 and "missing" not in log[0]


# --- a Canvas class, graded, and back to Canvas (slow: real nbgrader) ----------------------------------


class Class:
    pass


@pytest.fixture(scope="module")
def canvas_class(tmp_path_factory) -> Class:
    from nbgrader.api import Gradebook

    from circuitscope_course import sandbox
    from circuitscope_course.grading import grade
    from circuitscope_course.results import feedback

    try:
        sandbox.check()
    except sandbox.SandboxUnavailable as err:
        pytest.skip(f"no sandbox on this machine: {err}")
    g = Class()
    g.root = tmp_path_factory.mktemp("lms-course")
    g.course = _course(g.root)
    generate(g.course, log=lambda *_: None)
    with Gradebook(g.course.db_url, "circuitscope") as gb:
        gb.update_or_create_assignment("demo", duedate=DUE)
    g.roster = g.root / "canvas-roster.csv"
    g.roster.write_text(CANVAS_ROSTER, encoding="utf-8")
    lms.import_roster(g.course, g.roster)

    made = demo.submissions(nbformat.read(g.course.release / "demo" / "demo.ipynb", as_version=4))
    correct, blank = nbformat.writes(made["correct"]), nbformat.writes(made["blank"])
    g.download = _zip(g.root / "canvas.zip", {
        "lovelaceada_1001_5001_demo.ipynb": correct,
        "lovelaceada_1001_5002_notes.txt": "my notes",
        "hoppergrace_LATE_1002_5003_demo-1.ipynb": correct,  # late, and renamed by Canvas
        "turingalan_1003_5004_renamed_12345_678_demo.ipynb": correct,  # the one stray file
        "noetheremmy_1004_5006_demo.ipynb": blank,  # on no roster
    })  # fmt: skip
    g.status = cli.main(["--root", str(g.root), "collect", str(g.download), "-a", "demo"])
    g.outcomes = {o.student_id: o for o in grade(g.course, g.course.submitted, ["demo"], timeout=CELL_TIMEOUT,
                                                 jobs=2, progress=False, log=lambda *_: None)}  # fmt: skip
    feedback(g.course, ["demo"], log=lambda *_: None)
    return g


@pytest.mark.slow
def test_a_canvas_class_is_collected_and_graded(canvas_class, capsys):
    g = canvas_class
    assert g.status == 0
    assert {s: o.score for s, o in g.outcomes.items()} == {"s001": 3.0, "s002": 3.0, "noetheremmy": 0.0}
    assert (g.course.submitted / "s001" / "demo" / "notes.txt").read_text() == "my notes"
    assert not (g.course.submitted / "alan").exists()
    # the stray file was reported by name (collect again: same zip, same report, same files)
    assert cli.main(["--root", str(g.root), "collect", str(g.download), "-a", "demo"]) == 0
    out = capsys.readouterr().out
    assert "could not place 1 file(s)" in out
    assert "turingalan_1003_5004_renamed_12345_678_demo.ipynb" in out and "expects demo.ipynb" in out
    assert "late: s002" in out and "next: circuitscope-course grade" in out


@pytest.mark.slow
def test_the_late_marker_reaches_nbgrader(canvas_class):
    from nbgrader.api import Gradebook

    stamp = (canvas_class.course.submitted / "s002" / "demo" / "timestamp.txt").read_text()
    assert stamp.strip() == "2026-12-20 23:59:01.000000 UTC"
    with Gradebook(canvas_class.course.db_url, "circuitscope") as gb:
        late = gb.find_submission("demo", "s002")
        on_time = gb.find_submission("demo", "s001")
        assert late.timestamp == DUE + timedelta(seconds=1) and late.total_seconds_late == 1.0
        assert on_time.total_seconds_late == 0


@pytest.mark.slow
def test_the_canvas_export_carries_the_course_exports_scores(canvas_class, tmp_path):
    from circuitscope_course.results import export_csv

    g = canvas_class
    ours = {r["student_id"]: float(r["score"]) for r in _rows(export_csv(g.course, tmp_path / "grades.csv"))}
    out = tmp_path / "canvas.csv"
    assert cli.main(["--root", str(g.root), "lms-export", "--lms", "canvas", str(out), "-a", "demo"]) == 0
    with out.open(newline="", encoding="utf-8") as fh:
        header, points, *rows = list(csv.reader(fh))
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "demo"]
    assert points[0] == "Points Possible" and points[5] == "3"
    canvas_ids = {
        "Lovelace, Ada": "1001",
        "Hopper, Grace": "1002",
        "Turing, Alan": "1003",
        "noetheremmy": "1004",
    }
    assert {r[0]: r[1] for r in rows} == canvas_ids  # roster ids, and the download's for Noether
    by_id = {"1001": "s001", "1002": "s002", "1003": "alan", "1004": "noetheremmy"}
    assert {by_id[r[1]]: float(r[5]) for r in rows} == ours
    assert ours == {"s001": 3.0, "s002": 3.0, "alan": 0.0, "noetheremmy": 0.0}


@pytest.mark.slow
def test_the_moodle_worksheet_uses_participant_ids(canvas_class, tmp_path):
    g = canvas_class
    download = _zip(tmp_path / "moodle.zip", {
        "Ada Lovelace_20001_assignsubmission_file_/demo.ipynb": NOTEBOOK,
        "Grace Hopper_20002_assignsubmission_file/demo.ipynb": NOTEBOOK,
    })  # fmt: skip
    lms.collect(g.course, download, "demo", into=tmp_path / "moodle-subs")  # placed only, not graded
    written = lms.export_moodle(g.course, tmp_path / "moodle.csv", "demo")
    rows = {r["Full name"]: r for r in _rows(written.path)}
    assert rows["Ada Lovelace"]["Identifier"] == "Participant 20001" and rows["Ada Lovelace"]["Grade"] == "3"
    assert rows["Grace Hopper"]["Identifier"] == "Participant 20002"
    assert rows["Alan Turing"]["Identifier"] == "" and rows["Alan Turing"]["Grade"] == "0"
    assert {r["Maximum Grade"] for r in rows.values()} == {"3"}
    assert sum("no Moodle participant id" in n for n in written.notes) == 2  # Turing and Noether


@pytest.mark.slow
def test_the_feedback_zip_is_named_for_canvas(canvas_class, tmp_path, capsys):
    g = canvas_class
    out = tmp_path / "feedback.zip"
    assert cli.main(["--root", str(g.root), "lms-feedback", "--lms", "canvas", str(out), "-a", "demo"]) == 0
    assert "alan: no feedback page demo.html" in capsys.readouterr().out  # the stray's sender: never graded
    with zipfile.ZipFile(out) as z:
        names = sorted(z.namelist())
        page = z.read("lovelaceada_1001_5001_demo_feedback.html")
    assert names == [
        "hoppergrace_1002_5003_demo_feedback.html",
        "lovelaceada_1001_5001_demo_feedback.html",
        "noetheremmy_1004_5006_demo_feedback.html",
    ]
    assert page == (g.course.feedback / "s001" / "demo" / "demo.html").read_bytes()
    # Canvas reads the user id and a file id of that user's submission as the first two all-digit parts
    with zipfile.ZipFile(g.download) as z:
        submitted = {tuple(p for p in n.split("_") if p.isdigit())[:2] for n in z.namelist()}
    for name in names:
        assert tuple(p for p in name.split("_") if p.isdigit())[:2] in submitted, name
