"""Seconds per graded notebook, with and without the grading sandbox, side by side.

    python bench/grading.py                      # 4 copies of the chapter 1 solution, -j 1
    python bench/grading.py -n 30 -j 2           # a class of 30, two at a time
    python bench/grading.py --assignment demo    # the tiny demo assignment (no model): fixed costs only

Each run grades the same class three times in a temporary copy of the course: with
``circuitscope-course grade`` (every kernel in the sandbox, verdicts in the grader's process),
with ``grade --no-sandbox``, and with plain nbgrader as a course without this project's
tooling would run it (stock ``nbgrader autograde`` of the whole class in one process: nbgrader's
own Execute, checks inside the kernel, no sandbox). It prints seconds per notebook (the class's
wall clock over its size) and the wall clock of the whole class, and what ``grade`` adds per
notebook over plain nbgrader. Nothing is asserted: this is for reading.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from circuitscope_course import Course, demo, generate
from circuitscope_course.grading import grade


def _course(dest: Path, assignment: str) -> Course:
    if assignment == demo.ASSIGNMENT:
        demo.create(dest, ROOT / "autograder" / "nbgrader_config.py")
        course = Course(dest)
        generate(course, log=lambda *_: None)
        return course
    for name in ("solutions", "exercises"):
        shutil.copytree(ROOT / name / assignment, dest / name / assignment)
    (dest / "autograder").mkdir(parents=True)
    shutil.copy(ROOT / "autograder" / "nbgrader_config.py", dest / "autograder" / "nbgrader_config.py")
    course = Course(dest)
    course.make_hidden_key()
    return course


def _class(course: Course, assignment: str, folder: Path, n: int) -> None:
    """``n`` students, each handing in the solution (every cell runs, every check passes)."""
    for i in range(n):
        shutil.copytree(course.source / assignment, folder / f"student{i:02d}" / assignment)


def _run(
    course: Course, folder: Path, assignment: str, jobs: int, sandbox: bool
) -> tuple[list[float], float]:
    start = time.monotonic()
    outcomes = grade(
        course, folder, [assignment], jobs=jobs, progress=False, sandbox=sandbox, log=lambda *_: None
    )
    wall = time.monotonic() - start
    bad = [o for o in outcomes if o.score != o.max_score]
    if bad:
        print(f"warning: {len(bad)} notebook(s) did not score full marks, e.g. {bad[0]}", file=sys.stderr)
    return [o.seconds for o in outcomes], wall


PLAIN_CONFIG = """c = get_config()
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "circuitscope"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.ExecutePreprocessor.timeout = 300
"""


def _plain(course: Course, folder: Path, assignment: str) -> float:
    """Wall clock of stock ``nbgrader autograde`` of the whole class (one process, one at a time)."""
    root = course.root.parent / "plain"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(course.source / assignment, root / "solutions" / assignment)
    (root / "nbgrader_config.py").write_text(PLAIN_CONFIG.format(root=str(root)))
    shutil.copytree(folder, root / "submitted")
    env = {**os.environ, "CIRCUITSCOPE_OFFLINE": "1", "CIRCUITSCOPE_PROFILE": "cpu",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}  # alembic
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run([*nbgrader, "generate_assignment", assignment, "--force"], cwd=root, env=env,
                   check=True, capture_output=True)  # fmt: skip
    start = time.monotonic()
    subprocess.run([*nbgrader, "autograde", assignment, "--force"], cwd=root, env=env, check=True,
                   capture_output=True)  # fmt: skip
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignment", default="ch1_introduction")
    parser.add_argument("-n", "--students", type=int, default=4)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each arm (fastest kept)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="circuitscope-bench-") as tmp:
        course = _course(Path(tmp) / "course", args.assignment)
        folder = Path(tmp) / "submissions"
        _class(course, args.assignment, folder, args.students)
        _run(course, folder, args.assignment, args.jobs, True)  # warm the caches (disk, imports)
        arms = {
            "plain nbgrader": lambda: _plain(course, folder, args.assignment),
            "grade --no-sandbox": lambda: _run(course, folder, args.assignment, args.jobs, False)[1],
            "grade": lambda: _run(course, folder, args.assignment, args.jobs, True)[1],
        }
        walls = {name: float("inf") for name in arms}
        # Interleaved, fastest of --repeats: a shared machine's load then hits every arm alike.
        for _ in range(args.repeats):
            for name, arm in arms.items():
                walls[name] = min(walls[name], arm())

    n = args.students
    print(f"{args.assignment}: {n} notebook(s) per run, fastest of {args.repeats} interleaved runs; "
          f"grade with -j {args.jobs}, plain nbgrader one at a time")
    print(f"{'':26s}" + "".join(f"{name:>20s}" for name in walls))
    print(f"{'seconds per notebook':26s}" + "".join(f"{w / n:20.2f}" for w in walls.values()))
    print(f"{'wall clock, whole class':26s}" + "".join(f"{w:20.1f}" for w in walls.values()))
    print(f"grade adds {(walls['grade'] - walls['plain nbgrader']) / n:+.2f} s per notebook over plain nbgrader"
          f" ({walls['grade --no-sandbox'] / n - walls['plain nbgrader'] / n:+.2f} s without the sandbox)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
