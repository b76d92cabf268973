"""``circuitscope-course``: the nbgrader course's round trips in one command each.

    circuitscope-course generate [ASSIGNMENT ...]     exercises/ from solutions/ (deterministic)
    circuitscope-course check-sync [ASSIGNMENT ...]   exit 1 if exercises/ differs from a fresh generation
    circuitscope-course grade SUBMISSIONS [-a ID]     autograde <student>/<assignment>/<notebook>.ipynb
    circuitscope-course feedback [ASSIGNMENT ...]     HTML feedback (hidden tests never shown)
    circuitscope-course export grades.csv [-a ID]     one row per student and assignment
    circuitscope-course due [ASSIGNMENT DATE]         due dates and late penalties (no argument: show them)
    circuitscope-course extend STUDENT ASSIGNMENT     a student's extension (--hours H, --until DATE, --remove)
    circuitscope-course hidden-key                    the private key of the graded hidden cases (once)
    circuitscope-course demo DIR                      a practice course with honest and hostile submissions
    circuitscope-course pages [--check]               the site's exercise pages (book/<assignment>/)
    circuitscope-course install-cells [--check]       the Colab install cell of every learner-facing notebook

Each runs the real nbgrader commands from ``autograder/`` (see ``autograder/README.md``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .course import Course, CourseError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="circuitscope-course",
        description="Generate, check, grade and export the circuitscope nbgrader course.",
    )
    parser.add_argument("--root", type=Path, default=None,
                        help="the course repository (default: found from the working directory)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="regenerate exercises/ from solutions/")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: every assignment")

    p = sub.add_parser("check-sync", help="exit 1 if exercises/ differs from a fresh generation")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: every assignment")

    p = sub.add_parser("grade", help="autograde a folder of submissions into the gradebook")
    p.add_argument("submissions", type=Path, metavar="SUBMISSIONS_DIR",
                   help="holds <student>/<assignment>/<notebook>.ipynb")  # fmt: skip
    p.add_argument("-a", "--assignment", action="append", dest="assignments", metavar="ID",
                   help="grade only this assignment (repeatable; default: all)")  # fmt: skip
    p.add_argument("--timeout", type=int, default=None, metavar="SECONDS",
                   help="seconds one cell may run (default: $CIRCUITSCOPE_GRADE_TIMEOUT or 300)")  # fmt: skip
    p.add_argument("--notebook-timeout", type=int, default=None, metavar="SECONDS",
                   help="seconds one notebook may take in all before it is stopped "
                        "(default: the cell timeout x (code cells + 3))")  # fmt: skip
    p.add_argument("-j", "--jobs", type=int, default=1, help="notebooks graded at once (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run the kernels WITHOUT the bubblewrap sandbox (a submission can then change "
                        "any grade); the report marks every row")  # fmt: skip
    p.add_argument("--partial-credit", action="store_true",
                   help="score a test cell by the share of its cases (visible and hidden) that pass, "
                        "not all or nothing")  # fmt: skip

    sub.add_parser("hidden-key", help="make autograder/hidden_key, the private key of the graded hidden "
                   "cases (once; keep it, never publish it)")  # fmt: skip

    p = sub.add_parser("feedback", help="HTML feedback for graded submissions")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="default: every graded assignment")

    p = sub.add_parser("export", help="write grades as CSV, one row per student and assignment")
    p.add_argument("csv", type=Path, metavar="CSV")
    p.add_argument("-a", "--assignment", action="append", dest="assignments", metavar="ID",
                   help="export only this assignment (repeatable)")  # fmt: skip
    p = sub.add_parser("demo", help="write a practice course (tiny assignment, sample class) into DIR")
    p.add_argument("dest", type=Path, metavar="DIR")

    p = sub.add_parser("pages", help="write the site's exercise pages from solutions/ (book/<assignment>/)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a page is missing or out of date")  # fmt: skip

    p = sub.add_parser("install-cells",
                       help="write the install cell (pinned to this release) into every "
                            "learner-facing notebook")  # fmt: skip
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a notebook lacks the current install cell")  # fmt: skip
    _add_lms_parsers(sub)
    _add_deadline_parsers(sub)
    return parser


def _add_deadline_parsers(sub) -> None:
    """``due`` and ``extend``: due dates, late penalties, extensions (:mod:`.deadlines`)."""
    from .deadlines import TIME_EXAMPLES

    p = sub.add_parser("due", help="set an assignment's due date and late penalty (no argument: show all)")
    p.add_argument("assignment", nargs="?", metavar="ASSIGNMENT")
    p.add_argument("when", nargs="?", metavar="DATE", help=f"with its time zone: {TIME_EXAMPLES}")
    p.add_argument("--penalty", metavar="METHOD",
                   help="none (default), zero, or per-day:P (P%% of the score per started day late)")  # fmt: skip
    p.add_argument("--clear", action="store_true", help="remove the due date (nothing is late)")

    p = sub.add_parser("extend", help="give a student more time on one assignment")
    p.add_argument("student", metavar="STUDENT")
    p.add_argument("assignment", metavar="ASSIGNMENT")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--hours", type=float, metavar="H", help="H hours after the due date")
    how.add_argument("--until", metavar="DATE", help=f"until this time ({TIME_EXAMPLES})")
    how.add_argument("--remove", action="store_true", help="take the extension back")


def _run_deadlines(course: Course, args) -> int:
    from . import deadlines

    if args.command == "extend":
        print(deadlines.extend(course, args.student, args.assignment, hours=args.hours, until=args.until,
                               remove=args.remove))  # fmt: skip
    elif args.assignment is None:
        if args.when or args.penalty or args.clear:
            raise CourseError("name the assignment: circuitscope-course due ASSIGNMENT [DATE] [--penalty M]")
        print(deadlines.describe_all(course))
    elif args.clear and args.when:
        raise CourseError("give a DATE or --clear, not both")
    else:
        print(deadlines.set_due(course, args.assignment, args.when, args.penalty, clear=args.clear))
    return 0


def _add_lms_parsers(sub) -> None:
    """``collect``, ``roster import``, ``lms-export``, ``lms-feedback``: the LMS round trip (:mod:`.lms`)."""
    p = sub.add_parser("collect", help="normalise a Canvas or Moodle submissions zip into "
                                        "<student>/<assignment>/<notebook>.ipynb")  # fmt: skip
    p.add_argument("zip", type=Path, metavar="ZIP", help="the LMS's 'download submissions' zip")
    p.add_argument("-a", "--assignment", required=True, metavar="ID", help="the assignment it holds")
    p.add_argument("--roster", type=Path, metavar="CSV",
                   help="maps LMS ids and names to student ids (default: the gradebook's students)")  # fmt: skip
    p.add_argument("--into", type=Path, metavar="DIR",
                   help="where to put the submissions (default: autograder/submitted, nbgrader's own)")  # fmt: skip
    p.add_argument("--lms", choices=["canvas", "moodle", "auto"], default="auto",
                   help="which LMS made the zip (default: from its file names)")  # fmt: skip

    p = sub.add_parser("roster", help="the class list in the gradebook")
    roster = p.add_subparsers(dest="roster_command", required=True, metavar="ACTION")
    p = roster.add_parser("import", help="add or update students from a CSV (nbgrader's, or a Canvas or "
                                         "Moodle export); running it again changes nothing")  # fmt: skip
    p.add_argument("csv", type=Path, metavar="CSV")

    p = sub.add_parser("lms-export", help="grades in Canvas's or Moodle's import CSV")
    p.add_argument("--lms", choices=["canvas", "moodle"], required=True)
    p.add_argument("csv", type=Path, metavar="OUT.csv")
    p.add_argument("-a", "--assignment", action="append", dest="assignments", metavar="ID",
                   help="export only this assignment (repeatable; Moodle: exactly one)")  # fmt: skip

    p = sub.add_parser("lms-feedback", help="feedback pages named for the LMS's bulk upload, in one zip")
    p.add_argument("--lms", choices=["canvas", "moodle"], required=True)
    p.add_argument("zip", type=Path, metavar="OUT.zip")
    p.add_argument("-a", "--assignment", required=True, metavar="ID")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        course = Course(args.root.resolve()) if args.root else Course.find()
        if not course.config_file.is_file():
            raise CourseError(f"{course.config_file} is missing")
        return _run(course, args)
    except CourseError as err:
        print(f"circuitscope-course: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("circuitscope-course: interrupted", file=sys.stderr)
        return 130


def _run(course: Course, args) -> int:
    if args.command in ("collect", "roster", "lms-export", "lms-feedback"):
        return _run_lms(course, args)
    if args.command in ("due", "extend"):
        return _run_deadlines(course, args)
    return _COMMANDS[args.command](course, args)


def _cmd_generate(course: Course, args) -> int:
    from .generate import generate

    generate(course, args.assignments)
    return 0


def _cmd_check_sync(course: Course, args) -> int:
    from .generate import check_sync

    report = check_sync(course, args.assignments)
    print(report.summary(course.release.name))
    return 0 if report.in_sync else 1


def _cmd_grade(course: Course, args) -> int:
    from .grading import GRADED, REPORT_NAME, grade

    outcomes = grade(
        course,
        args.submissions,
        args.assignments,
        timeout=args.timeout,
        notebook_timeout=args.notebook_timeout,
        jobs=args.jobs,
        progress=not args.no_progress,
        sandbox=not args.no_sandbox,
        partial_credit=args.partial_credit,
    )
    graded = sum(o.status == GRADED for o in outcomes)
    zeroed = len(outcomes) - graded
    students = len({o.student_id for o in outcomes})
    late = {(o.student_id, o.assignment) for o in outcomes if o.hours_late > 0}
    lost = sum(o.late_penalty for o in outcomes)
    print(f"{len(outcomes)} notebook(s) from {students} student(s): {graded} graded, "
          f"{zeroed} scored 0 with a reason (see above), {len(late)} submission(s) late "
          f"({lost:g} point(s) of late penalty, in every score shown); every score is in "
          f"{course.db_path.relative_to(course.root)}, every row in "
          f"{(course.autograder / REPORT_NAME).relative_to(course.root)}")  # fmt: skip
    if args.no_sandbox:
        print("WARNING: this class was graded WITHOUT the sandbox (--no-sandbox): "
              "a submission could have changed any grade", file=sys.stderr)  # fmt: skip
    return 0


def _cmd_hidden_key(course: Course, args) -> int:
    existed = course.hidden_key_file.is_file()
    path = course.make_hidden_key()
    print(f"{path} {'already exists: kept' if existed else 'written'}; keep it private (not in git, "
          "not on the site) and keep it for the whole course")  # fmt: skip
    return 0


def _cmd_feedback(course: Course, args) -> int:
    from .results import feedback

    feedback(course, args.assignments)
    return 0


def _cmd_export(course: Course, args) -> int:
    from .results import export_csv

    path = export_csv(course, args.csv, args.assignments)
    print(f"wrote {path}")
    return 0


def _cmd_demo(course: Course, args) -> int:
    from . import demo
    from .generate import generate

    dest = args.dest.resolve()
    if dest.exists() and any(dest.iterdir()):
        raise CourseError(f"{dest} is not empty")
    demo.create(dest, course.config_file)
    practice = Course(dest)
    generate(practice)
    names = demo.write_submissions(
        dest / "submissions", practice.release / demo.ASSIGNMENT / f"{demo.NOTEBOOK}.ipynb"
    )
    a = demo.ASSIGNMENT
    print(f"wrote a practice course in {dest}: solutions/{a}/, exercises/{a}/, "
          f"and submissions/ from {len(names)} students:")  # fmt: skip
    for name in names:
        what, score = demo.EXPECTED[name]
        print(f"  {name:14s} {what} (should score {score:g}/3)")
    print(f"next: cd {dest} && circuitscope-course grade submissions --timeout 20 && "
          "circuitscope-course feedback && circuitscope-course export grades.csv")  # fmt: skip
    return 0


def _cmd_pages(course: Course, args) -> int:
    from .pages import write_pages

    changed = write_pages(course.root, check=args.check)
    if args.check:
        for path in changed:
            print(f"out of date: {path.relative_to(course.root)} (fix: circuitscope-course pages)")
        if not changed:
            print("the exercise pages are in sync with solutions/")
        return 1 if changed else 0
    if not changed:
        print("the exercise pages were already up to date")
    return 0


def _cmd_install_cells(course: Course, args) -> int:
    from .pages import write_install_cells

    stale = write_install_cells(course.root, check=args.check)
    if args.check:
        for path in stale:
            rel = path.relative_to(course.root)
            print(f"out of date: {rel} (fix: circuitscope-course install-cells)")
        if not stale:
            print("every install cell is current")
        return 1 if stale else 0
    if stale:
        print("now run `circuitscope-course generate` (exercises/) and `circuitscope-course pages`")
    else:
        print("every install cell was already current")
    return 0


#: ``circuitscope-course COMMAND`` -> what runs it (``(course, args) -> exit status``).
_COMMANDS = {
    "generate": _cmd_generate,
    "check-sync": _cmd_check_sync,
    "grade": _cmd_grade,
    "hidden-key": _cmd_hidden_key,
    "feedback": _cmd_feedback,
    "export": _cmd_export,
    "demo": _cmd_demo,
    "pages": _cmd_pages,
    "install-cells": _cmd_install_cells,
}


def _run_lms(course: Course, args) -> int:
    from . import lms

    if args.command == "collect":
        result = lms.collect(
            course, args.zip, args.assignment, roster=args.roster, into=args.into, lms=args.lms
        )
        print("\n".join(result.lines()))
        if result.placed:
            print(f"next: circuitscope-course grade {result.dest} -a {args.assignment}")
        return 0
    if args.command == "roster":
        print("\n".join(lms.import_roster(course, args.csv).lines()))
        return 0
    if args.command == "lms-export" and args.lms == "canvas":
        written = lms.export_canvas(course, args.csv, args.assignments)
    elif args.command == "lms-export":
        if not args.assignments or len(args.assignments) != 1:
            raise CourseError("a Moodle grading worksheet holds one assignment: give exactly one -a ID")
        written = lms.export_moodle(course, args.csv, args.assignments[0])
    else:
        written = lms.feedback_zip(course, args.zip, args.assignment, args.lms)
    print("\n".join(written.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
