"""Hardened grading, proven on a class of hostile submissions (real nbgrader, real kernels).

The assignment is the practice course of :mod:`circuitscope_course.demo` (``add`` and ``scale``,
1 + 2 points, no model), built in a temporary folder with this repository's nbgrader config.
Each hostile case is its own student in one class; the class is graded twice (once through the
Python API, once through the ``circuitscope-course`` command line), then given feedback and
exported. Grading one notebook takes nbgrader ~5-20 s, so the module takes a few minutes.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbgrader import utils as nbgrader_utils

from circuitscope_course import Course, check_sync, cli, demo, generate
from circuitscope_course.grading import GRADED, ZERO, grade, read_report
from circuitscope_course.results import export_csv, feedback, hidden_test_lines, html_text, quoted_lines

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "autograder" / "nbgrader_config.py"
CELL_TIMEOUT = 30  # seconds; the setup cell imports torch, which is slow on a busy CI machine


class Graded:
    """The demo class, graded twice, with feedback and two exports."""

    def __init__(self, root: Path):
        self.root = root
        self.course = Course(root)
        self.log: list[str] = []


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Graded:
    g = Graded(tmp_path_factory.mktemp("demo-course"))
    demo.create(g.root, CONFIG)
    generate(g.course, log=g.log.append)
    g.submissions = g.root / "submissions"
    demo.write_submissions(g.submissions, g.course.release / "demo" / "demo.ipynb")

    g.first = {o.student_id: o for o in grade(g.course, g.submissions, timeout=CELL_TIMEOUT, jobs=2,
                                              progress=False, log=g.log.append)}  # fmt: skip
    g.first_grades = _gradebook_state(g.course)
    g.first_csv = _rows(export_csv(g.course, g.root / "grades-1.csv"))

    args = ["grade", str(g.submissions), "--timeout", str(CELL_TIMEOUT), "--jobs", "2", "--no-progress"]
    g.cli_status = cli.main(["--root", str(g.root), *args])
    g.second = {o.student_id: o for o in read_report(g.course)}
    g.second_grades = _gradebook_state(g.course)
    g.second_csv = _rows(export_csv(g.course, g.root / "grades-2.csv"))
    g.report = read_report(g.course)

    g.feedback = feedback(g.course, log=g.log.append)
    return g


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _gradebook_state(course: Course) -> dict:
    """student -> {grade cell: (auto_score, needs_manual_grade)}, straight from the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url) as gb:
        return {
            sub.student.id: {g.name: (g.auto_score, g.needs_manual_grade) for g in sub.notebooks[0].grades}
            for sub in gb.assignment_submissions("demo")
        }


def _autograded(g: Graded, student: str) -> nbformat.NotebookNode:
    return nbformat.read(g.course.autograded / student / "demo" / "demo.ipynb", as_version=4)


def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _nbgrader_log(g: Graded, student: str) -> str:
    return (g.course.autograder / "logs" / student / "demo" / "demo.log").read_text()


# --- every submission ends graded, or zero with a reason, and the others are still graded -----


def test_whole_class_is_graded_and_the_command_succeeds(graded):
    assert set(graded.first) == set(demo.EXPECTED)
    assert graded.cli_status == 0
    zeroed = {s for s, o in graded.first.items() if o.status == ZERO}
    assert zeroed == {"kernel_killer", "invalid_json"}
    for outcome in graded.first.values():
        assert outcome.status in (GRADED, ZERO)
        if outcome.status == ZERO:
            assert outcome.problem, outcome


@pytest.mark.parametrize("student", list(demo.EXPECTED))
def test_each_submission_scores_what_it_earned(graded, student):
    what, expected = demo.EXPECTED[student]
    assert graded.first[student].score == expected, f"{student} ({what}): {graded.first[student]}"
    assert graded.first[student].max_score == 3.0


# --- hardening, case by case --------------------------------------------------------------------


def test_monkeypatched_comparisons_earn_nothing(graded):
    nb = _autograded(graded, "monkeypatch")
    patch_cell = _cell(nb, "add")
    assert "torch.allclose = lambda" in patch_cell.source
    assert not [o for o in patch_cell.outputs if o.output_type == "error"], "the patches must have run"
    for test in ("test_add", "test_scale"):
        errors = [o for o in _cell(nb, test).outputs if o.output_type == "error"]
        assert errors and errors[0].ename == "CheckFailed", errors  # the check ran, and was not fooled
        assert "wrong values" in errors[0].evalue
    assert graded.first_grades["monkeypatch"] == {"test_add": (0.0, False), "test_scale": (0.0, False)}


def test_edited_test_cells_are_restored_from_the_gradebook(graded):
    source = nbformat.read(graded.course.source / "demo" / "demo.ipynb", as_version=4)
    submitted = nbformat.read(graded.submissions / "edited_tests" / "demo" / "demo.ipynb", as_version=4)
    nb = _autograded(graded, "edited_tests")
    for test in ("test_add", "test_scale"):
        assert "check_" not in _cell(submitted, test).source  # the learner's edit
        assert _cell(nb, test).source == _cell(source, test).source  # what ran: the source, hidden tests too
        assert "BEGIN HIDDEN TESTS" in _cell(nb, test).source
        assert nbgrader_utils.is_locked(_cell(nb, test))  # a grade cell is locked whatever its flag says
    assert graded.first["edited_tests"].score == 0.0
    assert "Attribute 'checksum' for cell test_add has changed" in _nbgrader_log(graded, "edited_tests")


def test_deleted_test_cell_earns_nothing_and_is_reported(graded):
    # Plain nbgrader leaves the grade empty ("needs manual grade"); here it is 0, and said so.
    assert graded.first_grades["deleted_test"]["test_scale"] == (0.0, False)
    assert graded.first_grades["deleted_test"]["test_add"] == (1.0, False)
    assert "test_scale" in graded.first["deleted_test"].problem
    assert "DELETED TEST CELLS" in _nbgrader_log(graded, "deleted_test")
    assert any("deleted_test" in line and "test_scale" in line for line in graded.log)
    row = next(r for r in graded.first_csv if r["student_id"] == "deleted_test")
    assert "test_scale" in row["problems"] and float(row["score"]) == 1.0
    # and on a regrade (where plain nbgrader would keep a stale score) it is still 0
    assert graded.second_grades["deleted_test"]["test_scale"] == (0.0, False)


def test_a_hanging_cell_hits_the_timeout_and_the_rest_is_graded(graded):
    nb = _autograded(graded, "infinite_loop")
    errors = [o for o in _cell(nb, "test_add").outputs if o.output_type == "error"]
    # The grader's call of `add` was interrupted at the cell timeout; the verdict says so.
    assert [e.ename for e in errors] == ["CheckFailed"] and "ran past the time limit" in errors[0].evalue
    assert graded.first_grades["infinite_loop"] == {"test_add": (0.0, False), "test_scale": (2.0, False)}


@pytest.mark.parametrize(("student", "reason"), [
    ("kernel_killer", "the kernel died"),
    ("invalid_json", "not a valid notebook"),
])  # fmt: skip
def test_kernel_death_and_invalid_json_score_zero_in_the_gradebook(graded, student, reason):
    outcome = graded.first[student]
    assert outcome.status == ZERO and reason in outcome.problem
    assert any(line.startswith(f"ZERO {student}/demo/demo: ") and reason in line for line in graded.log)
    # recorded in the real gradebook: 0 everywhere, nothing left "needing manual grade"
    assert graded.first_grades[student] == {"test_add": (0.0, False), "test_scale": (0.0, False)}
    assert not (graded.course.autograded / student / "demo" / "demo.ipynb").exists()


def test_invalid_file_is_kept_aside_for_the_record(graded):
    folder = graded.course.submitted / "invalid_json" / "demo"
    assert (folder / "demo.ipynb.invalid").read_text().startswith('{"cells"')
    assert not (folder / "demo.ipynb").exists()  # so plain `nbgrader autograde` scores it as missing


def test_feedback_never_shows_hidden_tests(graded):
    hidden = hidden_test_lines(graded.course, "demo")
    assert demo.HIDDEN_ADD in hidden and demo.HIDDEN_SCALE in hidden
    graded_students = {s for s, o in graded.second.items() if o.status == GRADED}
    assert {p.parent.parent.name for p in graded.feedback} == graded_students
    for path in graded.feedback:
        text = html_text(path)
        assert not quoted_lines(text, hidden), path
        assert "HIDDEN TESTS" not in text
        assert "[10.0, -1.0, 3.5]" not in text and "0.125" not in text  # the hidden cases' inputs
    # What plain nbgrader renders (the autograded notebook) does hold them:
    assert demo.HIDDEN_ADD in _cell(_autograded(graded, "correct"), "test_add").source


def test_feedback_verdicts_replace_hidden_test_output(graded):
    def text(student):
        return html_text(graded.course.feedback / student / "demo" / "demo.html")

    assert "Every test in this cell passed, the hidden ones included" in text("correct")
    assert "not implemented yet" in text("blank")  # a visible check's message is kept
    assert "ran past the time limit" in text("infinite_loop")
    # a hidden failure is named in words (Case.about), without its values or code
    assert "a hidden test failed: tensors of 3 numbers" in text("hidden_only")
    assert "[10.0" not in text("hidden_only")
    # Hidden tests never run in the kernel (the grader judges them), so printing the kernel's
    # history (`In`) shows none of them; the feedback holds no hidden test line either way.
    leak = text("history_leak")
    assert demo.HIDDEN_SCALE not in leak and "democheck.check_add(add, [10.0" not in leak
    printed = json.dumps(_autograded(graded, "history_leak").cells[-1].outputs)
    assert "def add" in printed  # the learner's own cells are in the history
    assert "HIDDEN" not in printed and "democheck.check_add" not in printed


# --- grading twice ------------------------------------------------------------------------------


def test_regrading_gives_the_same_grades_and_no_duplicate_rows(graded):
    assert graded.first_grades == graded.second_grades
    for student, first in graded.first.items():
        second = graded.second[student]
        assert (first.status, first.score, first.max_score) == (second.status, second.score, second.max_score)
        assert re.sub(r"\(log: .*\)", "", first.problem) == re.sub(r"\(log: .*\)", "", second.problem)
    assert graded.first_csv == graded.second_csv
    students = [r["student_id"] for r in graded.second_csv]
    assert sorted(students) == sorted(demo.EXPECTED) and len(set(students)) == len(students)
    report = graded.report
    assert len(report) == len({o.key for o in report}) == len(demo.EXPECTED)


# --- exercises in sync ----------------------------------------------------------------------------


def test_check_sync_reports_drift(graded, tmp_path):
    copy = tmp_path / "course"
    for name in ("solutions", "exercises"):
        shutil.copytree(graded.root / name, copy / name)
    (copy / "autograder").mkdir()
    shutil.copy(CONFIG, copy / "autograder" / "nbgrader_config.py")
    nb_path = copy / "exercises" / "demo" / "demo.ipynb"
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells[0].source += "\nEdited by hand."
    nbformat.write(nb, nb_path)
    (copy / "exercises" / "demo" / "notes.txt").write_text("stray")

    report = check_sync(Course(copy))
    assert not report.in_sync
    assert list(report.changed) == ["exercises/demo/demo.ipynb"]
    assert "Edited by hand" in report.changed["exercises/demo/demo.ipynb"]
    assert report.extra == ["exercises/demo/notes.txt"] and report.missing == []
    assert cli.main(["--root", str(copy), "check-sync"]) == 1


# --- the wall-clock limit -----------------------------------------------------------------------


def test_a_kernel_that_ignores_interrupts_is_killed_at_the_notebook_limit(graded, tmp_path):
    psutil = pytest.importorskip("psutil")
    folder = tmp_path / "late"
    demo.write_submissions(folder, graded.course.release / "demo" / "demo.ipynb", ["uninterruptible"])
    (outcome,) = grade(
        graded.course, folder, timeout=300, notebook_timeout=25, progress=False, log=graded.log.append
    )
    assert outcome.status == ZERO and "ran past 25 s" in outcome.problem
    leftovers = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if str(graded.root) in proc.cwd():
                leftovers.append(proc)
        except (psutil.Error, OSError):
            continue
    assert not leftovers, f"processes still running in the course: {leftovers}"


# --- partial credit -----------------------------------------------------------------------------


def test_partial_credit_scores_the_share_of_cases_passed(tmp_path):
    root = tmp_path / "course"
    demo.create(root, CONFIG)
    course = Course(root)
    generate(course, log=lambda *_: None)
    demo.write_submissions(root / "subs", course.release / "demo" / "demo.ipynb", ["correct", "hidden_only", "blank"])
    args = ["grade", str(root / "subs"), "--timeout", str(CELL_TIMEOUT), "-j", "2", "--no-progress"]
    assert cli.main(["--root", str(root), *args, "--partial-credit"]) == 0
    grades = _gradebook_state(course)
    # hidden_only's `add` passes the visible case and fails the hidden one: half of test_add's point
    assert grades["hidden_only"] == {"test_add": (0.5, False), "test_scale": (2.0, False)}
    assert grades["correct"] == {"test_add": (1.0, False), "test_scale": (2.0, False)}
    assert grades["blank"] == {"test_add": (0.0, False), "test_scale": (0.0, False)}
    feedback(course, log=lambda *_: None)
    text = html_text(course.feedback / "hidden_only" / "demo" / "demo.html")
    assert "a hidden test failed: tensors of 3 numbers" in text and "1 of 2 cases passed" in text
    assert "[10.0" not in text
    # without the option, the same class is graded all or nothing
    assert cli.main(["--root", str(root), *args]) == 0
    assert _gradebook_state(course)["hidden_only"] == {"test_add": (0.0, False), "test_scale": (2.0, False)}
