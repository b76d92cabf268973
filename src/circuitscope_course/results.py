"""After grading: feedback for learners and a CSV of grades for the instructor."""

from __future__ import annotations

import csv
import html
import os
import re
from pathlib import Path

import nbformat

from .course import Course, CourseError
from .grading import read_report

#: The columns of ``nbgrader export``'s CSV, then what grading noticed.
EXPORT_FIELDS = [
    "assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
    "raw_score", "late_submission_penalty", "score", "max_score", "problems",
]  # fmt: skip


def feedback(course: Course, assignments: list[str] | None = None, log=print) -> list[Path]:
    """``nbgrader generate_feedback`` for each graded assignment; returns the HTML files.

    The course config hides hidden tests (``HideHiddenTests``). As a second line of defence every
    HTML file is then searched for any line of hidden test code from ``solutions/``: a file that
    quotes one is deleted and reported, and this raises :class:`CourseError`.
    """
    names = [a for a in course.require_assignments(assignments)
             if any(course.autograded.glob(f"*/{a}/*.ipynb"))]  # fmt: skip
    if not names:
        raise CourseError("nothing graded yet: run `circuitscope-course grade SUBMISSIONS` first")
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


def export_csv(course: Course, dest: str | os.PathLike, assignments: list[str] | None = None) -> Path:
    """Write one row per student and assignment, from the gradebook (as ``nbgrader export``).

    Every student in the gradebook gets a row for every assignment asked for (a missing submission
    scores 0, as in nbgrader's exporter); ``problems`` lists what grading noticed, per notebook.
    The gradebook holds one submission per student and assignment, so regrading never adds rows.
    """
    from nbgrader.api import Gradebook, MissingEntry

    if not course.db_path.is_file():
        raise CourseError(f"no gradebook at {course.db_path}: grade some submissions first")
    wanted = set(assignments or [])
    problems: dict[tuple[str, str], list[str]] = {}
    for row in read_report(course):
        if row.problem:
            problems.setdefault((row.student_id, row.assignment), []).append(f"{row.notebook}: {row.problem}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with Gradebook(course.db_url, "circuitscope") as gb, dest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=EXPORT_FIELDS)
        writer.writeheader()
        for assignment in sorted(gb.assignments, key=lambda a: a.name):
            if wanted and assignment.name not in wanted:
                continue
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
                    row.update(timestamp="", raw_score=0.0, late_submission_penalty=0.0, score=0.0)
                    row["problems"] = row["problems"] or "no submission"
                else:
                    penalty = sub.late_submission_penalty or 0.0
                    row.update(
                        timestamp=sub.timestamp or "",
                        raw_score=sub.score,
                        late_submission_penalty=penalty,
                        score=max(0.0, sub.score - penalty),
                    )
                writer.writerow(row)
    return dest
