"""Seconds per graded notebook, with and without the grading sandbox, side by side.

    python bench/grading.py                      # 4 copies of the chapter 1 solution, -j 1
    python bench/grading.py -n 30 -j 2           # a class of 30, two at a time
    python bench/grading.py --assignment demo    # the tiny demo assignment (no model)

Each run grades the same class twice in a temporary copy of the course, once with every kernel
in the sandbox and once with --no-sandbox, and prints the mean seconds per notebook (as the
grading report measures them: the whole ``nbgrader autograde`` of one notebook) and the wall
clock of the whole class. Nothing is asserted: this is for reading.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assignment", default="ch1_introduction")
    parser.add_argument("-n", "--students", type=int, default=4)
    parser.add_argument("-j", "--jobs", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="circuitscope-bench-") as tmp:
        course = _course(Path(tmp) / "course", args.assignment)
        folder = Path(tmp) / "submissions"
        _class(course, args.assignment, folder, args.students)
        _run(course, folder, args.assignment, args.jobs, True)  # warm the caches (disk, imports)
        results = {}
        for sandbox in (False, True):
            results[sandbox] = _run(course, folder, args.assignment, args.jobs, sandbox)

    print(f"{args.assignment}: {args.students} notebook(s) per run, -j {args.jobs}")
    print(f"{'':24s}{'without sandbox':>18s}{'with sandbox':>16s}{'overhead':>12s}")
    plain, boxed = (statistics.mean(results[s][0]) for s in (False, True))
    print(f"{'seconds per notebook':24s}{plain:18.2f}{boxed:16.2f}{(boxed / plain - 1) * 100:11.1f}%")
    plain_wall, boxed_wall = results[False][1], results[True][1]
    print(f"{'wall clock, whole class':24s}{plain_wall:18.1f}{boxed_wall:16.1f}"
          f"{(boxed_wall / plain_wall - 1) * 100:11.1f}%")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
