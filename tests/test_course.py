"""The nbgrader course of this repository: exercises in sync, a round trip per assignment, units.

The round trip runs each real assignment through the real ``nbgrader`` in a temporary copy of
the course: the solution notebook must score full marks, the untouched learner notebook 0.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from exercise_harness import load_mistakes
from nbformat.v4 import new_code_cell, new_notebook

from circuitscope_course import Course, check_sync, cli
from circuitscope_course.grading import GRADED, Outcome, find_submissions, grade, read_report, write_report
from circuitscope_course.nbgrader_ext import HideHiddenTests, _cell_line
from circuitscope_course.results import export_csv, feedback, hidden_test_lines, html_text, quoted_lines

ROOT = Path(__file__).resolve().parents[1]
COURSE = Course(ROOT)
ASSIGNMENTS = COURSE.assignments()
needs_assignments = pytest.mark.skipif(not ASSIGNMENTS, reason="solutions/ has no assignments yet")


# --- exercises/ is what nbgrader makes from solutions/ ------------------------------------------


@needs_assignments
def test_exercises_are_in_sync_with_solutions():
    report = check_sync(COURSE)
    assert report.in_sync, report.summary()


@needs_assignments
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercises_hold_no_hidden_tests_or_solutions(assignment):
    hidden = hidden_test_lines(COURSE, assignment)
    released = sorted((COURSE.release / assignment).glob("*.ipynb"))
    assert [p.stem for p in released] == COURSE.notebooks(assignment)
    for path in released:
        text = path.read_text(encoding="utf-8")
        for marker in ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN SOLUTION", "END SOLUTION"):
            assert marker not in text, f"{path}: {marker}"
        sources = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells)
        assert not quoted_lines(sources, hidden), f"{path} quotes hidden tests"


# --- the round trip ---------------------------------------------------------------------------------


def _course_copy(dest: Path) -> Course:
    for name in ("solutions", "exercises"):
        shutil.copytree(ROOT / name, dest / name)
    (dest / "autograder").mkdir(parents=True)
    shutil.copy(COURSE.config_file, dest / "autograder" / "nbgrader_config.py")
    course = Course(dest)
    # A fixed key: the graded hidden cases are the same at every run of the tests (a real course
    # makes a random one with `circuitscope-course hidden-key`).
    course.hidden_key_file.write_text("tests-fixed-key\n", encoding="utf-8")
    return course


# --- every source notebook follows the course's layout -------------------------------------------
SOLUTION_META = {"grade": False, "locked": False, "schema_version": 3, "solution": True, "task": False}
SETUP_META = {"grade": False, "grade_id": "setup", "locked": True, "schema_version": 3, "solution": False,
              "task": False}  # fmt: skip
HEADER_WORDS = ("Difficulty", "Importance", "Time", "min", "Follows", "https://")


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


@needs_assignments
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_notebooks_follow_the_course_layout(assignment):
    """Install cell, locked setup cell importing the checks before any learner code, then per exercise
    a header (difficulty, importance, time, the article it follows), a solution cell defining one
    documented function and a locked test cell: the visible check, then the same check with its
    hidden cases. An Explore section at the end; committed without outputs."""
    chapter = re.match(r"(ch\d+)_", assignment).group(1)
    for name in COURSE.notebooks(assignment):
        nb = nbformat.read(COURSE.source / assignment / f"{name}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3"
        cell_ids = [c.get("id") for c in nb.cells]
        assert all(cell_ids) and len(set(cell_ids)) == len(cell_ids)
        assert not [c for c in nb.cells if c.cell_type == "code" and c.get("outputs")], "commit without outputs"

        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].get("id") == "install" and _nbgrader(code[0])["locked"]
        setup = code[1]
        assert _nbgrader(setup) == SETUP_META, "the first cell after the install cell is the locked setup"
        checks_import = f"from circuitscope.checks import {chapter}"
        assert checks_import in setup.source
        if "load_inceptionv1" in setup.source:
            assert setup.source.index(checks_import) < setup.source.index("load_inceptionv1")
            assert "cs.notice(model)" in setup.source
        assert "cs.profile()" in setup.source

        solutions = [c for c in nb.cells if _nbgrader(c).get("solution")]
        tests = [c for c in nb.cells if _nbgrader(c).get("grade")]
        assert len(solutions) == len(tests) >= 5
        for sol, test in zip(solutions, tests):
            gid = _nbgrader(sol)["grade_id"]
            assert gid.startswith(f"{chapter}-") and _nbgrader(sol) == {**SOLUTION_META, "grade_id": gid}
            assert "### BEGIN SOLUTION" in sol.source and "### END SOLUTION" in sol.source
            fn = re.search(r"^def (\w+)\(", sol.source, re.MULTILINE)
            assert fn and '"""' in sol.source, f"{gid}: a solution cell defines one documented function"
            tmeta = _nbgrader(test)
            assert tmeta["locked"] and tmeta["points"] > 0 and tmeta["grade_id"] == f"{gid}-test"
            check = re.match(rf"{chapter}\.(check_\w+)\(", test.source)
            assert check, f"{gid}-test starts with the visible check"
            assert test.source == (
                f"{chapter}.{check[1]}({fn[1]})\n### BEGIN HIDDEN TESTS\n"
                f"from circuitscope.checks import {chapter} as _{chapter}\n"
                f"_{chapter}.{check[1]}({fn[1]}, hidden=True)\n### END HIDDEN TESTS"
            )
            assert nb.cells.index(sol) < nb.cells.index(test)
        headers = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Exercise")]
        assert len(headers) == len(solutions)
        for header in headers:
            assert all(word in header for word in HEADER_WORDS), header
        assert any(c.cell_type == "markdown" and c.source.startswith("## Explore") for c in nb.cells)


def _with_mistakes(release: Path, dest: Path, mistakes: dict[str, str]) -> set[str]:
    """Copy the learner notebooks with each mistaken solution cell filled in; the test cells they feed."""
    tested = set()
    for path in sorted(release.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in mistakes:
                cell.source = mistakes[gid]
                tested.add(f"{gid}-test")
        dest.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest / path.name)
    return tested


@needs_assignments
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_exercise_has_a_plausible_mistake(assignment):
    """tests/mistakes/<assignment>.py gives a wrong answer for every solution cell (graded below)."""
    solution_ids = {
        cell.metadata.nbgrader["grade_id"]
        for name in COURSE.notebooks(assignment)
        for cell in nbformat.read(COURSE.source / assignment / f"{name}.ipynb", as_version=4).cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }
    mistakes = load_mistakes(assignment)
    assert solution_ids and set(mistakes) == solution_ids, (
        f"tests/mistakes/{assignment}.py must give one wrong solution per exercise: "
        f"missing {sorted(solution_ids - set(mistakes))}, unknown {sorted(set(mistakes) - solution_ids)}"
    )


@pytest.mark.slow
@needs_assignments
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_round_trip_solution_full_marks_untouched_and_mistakes_zero(assignment, tmp_path, monkeypatch):
    """The real nbgrader grades three submissions of each assignment in one class: the solution
    (full marks), the untouched learner notebook (0) and one with a plausible mistake in every
    exercise (0 on every exercise's test)."""
    monkeypatch.setenv("CIRCUITSCOPE_OFFLINE", "1")  # the grading kernels inherit these
    monkeypatch.setenv("CIRCUITSCOPE_PROFILE", "cpu")
    course = _course_copy(tmp_path / "course")
    submissions = tmp_path / "submissions"
    for student, folder in (("solution", course.source), ("untouched", course.release)):
        shutil.copytree(folder / assignment, submissions / student / assignment)
    mistaken_tests = _with_mistakes(
        course.release / assignment, submissions / "mistakes" / assignment, load_mistakes(assignment)
    )

    outcomes = grade(course, submissions, [assignment], jobs=2, progress=False)
    by_student = {}
    for o in outcomes:
        assert o.status == GRADED and not o.problem, o
        by_student.setdefault(o.student_id, []).append(o)
    solution, untouched = by_student["solution"], by_student["untouched"]
    assert len(solution) == len(COURSE.notebooks(assignment))
    for o in solution:
        assert o.max_score > 0 and o.score == o.max_score, f"the solution must score full marks: {o}"
    for o in untouched:
        assert o.score == 0.0, f"the untouched exercise must score 0: {o}"
    for o in by_student["mistakes"]:
        assert o.score == 0.0, f"every plausible mistake must score 0: {o}"
    _assert_mistakes_score_zero(course, assignment, mistaken_tests)

    made = feedback(course, [assignment])  # raises if any feedback quotes a hidden test
    assert {p.parent.parent.name for p in made} == {"solution", "untouched", "mistakes"}
    with export_csv(course, tmp_path / "grades.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted((r["student_id"], float(r["score"])) for r in rows) == [
        ("mistakes", 0.0), ("solution", sum(o.max_score for o in solution)), ("untouched", 0.0)]  # fmt: skip


@pytest.mark.slow
def test_the_librarys_own_answer_scores_zero_with_its_message(tmp_path, monkeypatch):
    """A preprocess that returns the library's own `cs.preprocess` scores 0 on that exercise, with
    a message that says to write it yourself; every other exercise of the notebook scores."""
    from nbgrader.api import Gradebook

    monkeypatch.setenv("CIRCUITSCOPE_OFFLINE", "1")
    monkeypatch.setenv("CIRCUITSCOPE_PROFILE", "cpu")
    assignment, notebook = "ch1_introduction", "ch1_exercises"
    course = _course_copy(tmp_path / "course")
    folder = tmp_path / "submissions" / "borrower" / assignment
    shutil.copytree(course.source / assignment, folder)
    nb = nbformat.read(folder / f"{notebook}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ch1-preprocess")
    cell.source = "def preprocess(image, size=224):\n    return cs.preprocess(image, size)"
    nbformat.write(nb, folder / f"{notebook}.ipynb")

    (outcome,) = grade(course, tmp_path / "submissions", [assignment], progress=False)
    with Gradebook(course.db_url, "circuitscope") as gb:
        grades = {g.name: (g.score, g.max_score) for g in
                  gb.find_submission_notebook(notebook, assignment, "borrower").grades}  # fmt: skip
    assert grades.pop("ch1-preprocess-test")[0] == 0
    assert all(score == top for score, top in grades.values()), grades
    graded = nbformat.read(course.autograded / "borrower" / assignment / f"{notebook}.ipynb", as_version=4)
    test = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ch1-preprocess-test")
    assert "write it yourself" in json.dumps(test.outputs)
    assert outcome.score == sum(top for _, top in grades.values()) < outcome.max_score


def _assert_mistakes_score_zero(course: Course, assignment: str, tests: set[str]) -> None:
    """Each mistaken exercise's own test cell gave 0 (read from the real gradebook)."""
    from nbgrader.api import Gradebook

    assert tests, f"tests/mistakes/{assignment}.py holds no mistakes"
    with Gradebook(course.db_url, "circuitscope") as gb:
        grades = {
            g.name: g.score
            for name in course.notebooks(assignment)
            for g in gb.find_submission_notebook(name, assignment, "mistakes").grades
        }
    assert tests <= set(grades), sorted(tests - set(grades))
    assert all(grades[t] == 0 for t in tests), {t: grades[t] for t in tests}


# --- units ------------------------------------------------------------------------------------------


def _traceback(cell_count: int, line: int, learner_cell: int | None = None) -> list[str]:
    """An IPython 8 traceback, ANSI colours included; chained through a learner's function."""

    def frame(count, line):
        return (
            f"\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[{count}]\x1b[39m\x1b[32m, line {line}\x1b[39m"
        )

    tb = []
    if learner_cell is not None:
        tb += ["\x1b[31mNotImplementedError\x1b[39m   Traceback (most recent call last)",
               frame(learner_cell, 4) + ", in add",
               "\nDuring handling of the above exception, another exception occurred:\n"]  # fmt: skip
    tb += ["\x1b[31mCheckFailed\x1b[39m   Traceback (most recent call last)", frame(cell_count, line) + "\n",
           "File /x/_core.py:63, in call", "\x1b[31mCheckFailed\x1b[39m: add(...) is wrong"]  # fmt: skip
    return tb


def test_cell_line_is_read_from_the_cell_that_raised():
    assert _cell_line(_traceback(5, 1), 5) == 1
    assert _cell_line(_traceback(5, 3, learner_cell=4), 5) == 3  # not line 4 of the learner's cell
    assert _cell_line(["Input In [7], in <cell line: 2>()"], 7) == 2  # IPython 8.0-8.4
    assert _cell_line(["no frames here"], 5) is None


def _error(ename, evalue, traceback):
    return nbformat.from_dict(
        {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": traceback}
    )


def _stream(text):
    return nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": text})


TEST_SOURCE = "check(f, 1)\n### BEGIN HIDDEN TESTS\ncheck(f, 12345, secret=True)\n### END HIDDEN TESTS"


def _test_cell(count, outputs):
    cell = new_code_cell(TEST_SOURCE, execution_count=count, outputs=outputs)
    cell.metadata = {"nbgrader": {"grade": True, "grade_id": f"t{count}", "points": 1, "locked": True,
                                  "solution": False, "schema_version": 3}}  # fmt: skip
    return cell


def test_hide_hidden_tests_keeps_visible_failures_and_hides_the_rest():
    nb = new_notebook(cells=[
        _test_cell(1, [_stream("✔ check(f, 12345) passed\n")]),
        _test_cell(2, [_error("CheckFailed", "f(1) is wrong\n  expected: 2", _traceback(2, 1))]),
        _test_cell(3, [_stream("✔ ok\n"), _error("CheckFailed", "f(12345) is wrong", _traceback(3, 3))]),
        _test_cell(4, [_error("KeyboardInterrupt", "", []), _error("CellTimeoutError", "", ["timeout"])]),
        new_code_cell("print(In)", execution_count=5, outputs=[_stream("['check(f, 12345, secret=True)']")]),
        new_code_cell("print(1)", execution_count=6, outputs=[_stream("1\n")]),
        _test_cell(7, [nbformat.from_dict({"output_type": "stream", "name": "stderr", "text": "Warn"})]),
        _test_cell(8, [_error("CheckFailed", "f(12345) is wrong", _traceback(8, 3) + ["hidden case: a grey image"])]),
        _test_cell(9, [_error("CheckFailed", "f(12345) is wrong",
                              _traceback(9, 3) + ["hidden case: check(f, 12345, secret=True)"])]),
    ])  # fmt: skip
    nb, _ = HideHiddenTests().preprocess(nb, {})
    for cell in nb.cells[:4]:
        assert cell.source == "check(f, 1)"
        assert len(cell.outputs) == 1
    assert "passed, the hidden ones included" in nb.cells[0].outputs[0].text
    assert nb.cells[1].outputs[0].evalue == "f(1) is wrong\n  expected: 2"  # the learner saw it already
    assert nb.cells[1].outputs[0].traceback == ["CheckFailed: f(1) is wrong\n  expected: 2"]
    assert nb.cells[2].outputs[0].evalue == "a hidden test failed (hidden tests are not shown)"
    assert nb.cells[3].outputs[0].ename == "CellTimeoutError"
    assert "output removed" in nb.cells[4].outputs[0].text
    assert nb.cells[5].outputs[0].text == "1\n"
    assert "wrote to stderr" in nb.cells[6].outputs[0].text  # nbgrader scored it 0: no "passed" here
    # the grader's words for a failing hidden case are shown; words that quote hidden code are not
    assert nb.cells[7].outputs[0].evalue == "a hidden test failed: a grey image (hidden tests are not shown)"
    assert nb.cells[8].outputs[0].evalue == "a hidden test failed (hidden tests are not shown)"
    assert "12345" not in nbformat.writes(nb)


def test_find_submissions_accepts_both_layouts(tmp_path):
    (tmp_path / "ana" / "ch1").mkdir(parents=True)
    (tmp_path / "ana" / "ch1" / "nb.ipynb").write_text("{}")
    (tmp_path / "ana" / "typo").mkdir()
    (tmp_path / "bo").mkdir()
    (tmp_path / "bo" / "nb.ipynb").write_text("{}")
    (tmp_path / ".hidden").mkdir()
    log = []
    subs = find_submissions(tmp_path, ["ch1"], ["ch1", "ch2"], log=log.append)
    assert [(s.student, s.assignment, s.folder.name) for s in subs] == [
        ("ana", "ch1", "ch1"),
        ("bo", "ch1", "bo"),
    ]
    assert any("typo" in line for line in log)
    # with several assignments a flat folder is ambiguous, so it is not taken
    assert [
        s.student for s in find_submissions(tmp_path, ["ch1", "ch2"], ["ch1", "ch2"], log=log.append)
    ] == ["ana"]


def test_grading_report_has_one_row_per_notebook(tmp_path):
    course = Course(tmp_path)
    (tmp_path / "autograder").mkdir()
    write_report(
        course, [Outcome("a", "ch1", "nb", GRADED, 1, 2), Outcome("b", "ch1", "nb", "zero", 0, 2, 0, "x")]
    )
    write_report(course, [Outcome("a", "ch1", "nb", GRADED, 2, 2)])
    rows = read_report(course)
    assert [(o.student_id, o.score) for o in rows] == [("a", 2.0), ("b", 0.0)]
    assert rows[1].problem == "x"


def test_html_text_strips_markup(tmp_path):
    page = tmp_path / "f.html"
    page.write_text(
        "<style>.hidden{}</style><pre>check<span>(</span>f, 12345)</pre>&lt;ok&gt;<script>x()</script>"
    )
    text = html_text(page)
    assert "check(f, 12345)" in text and "<ok>" in text and "hidden" not in text and "x()" not in text
    assert quoted_lines(text, {"check(f, 12345)", "not there"}) == ["check(f, 12345)"]


def test_cli_reports_course_errors(tmp_path, capsys):
    assert cli.main(["--root", str(tmp_path), "generate"]) == 2
    assert "nbgrader_config.py" in capsys.readouterr().err
    (tmp_path / "autograder").mkdir()
    shutil.copy(COURSE.config_file, tmp_path / "autograder" / "nbgrader_config.py")
    assert cli.main(["--root", str(tmp_path), "grade", str(tmp_path / "nowhere")]) == 2
    assert "no assignments" in capsys.readouterr().err


def test_course_is_found_from_any_folder_inside_it(tmp_path, monkeypatch):
    assert Course.find(ROOT / "src" / "circuitscope").root == ROOT
    monkeypatch.chdir(ROOT / "autograder")
    assert Course.find().root == ROOT
