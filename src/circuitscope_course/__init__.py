"""The nbgrader course: generate the exercises, check they are in sync, grade, give feedback, export.

``circuitscope-course`` (:mod:`.cli`) is the command line; the functions are usable from Python::

    from circuitscope_course import Course, generate, check_sync, grade, feedback, export_csv
    course = Course.find()                  # the repository holding autograder/nbgrader_config.py
    generate(course)                        # exercises/ from solutions/
    outcomes = grade(course, "submissions") # <student>/<assignment>/<notebook>.ipynb
    export_csv(course, "grades.csv")

See ``autograder/README.md`` for the commands and what each protects against.
"""

from .course import Course, CourseError
from .generate import check_sync, generate

__all__ = ["Course", "CourseError", "check_sync", "export_csv", "feedback", "generate", "grade"]


def __getattr__(name: str):
    # grading pulls in nbgrader's gradebook (seconds to import): load it on first use.
    if name == "grade":
        from .grading import grade

        return grade
    if name in ("feedback", "export_csv"):
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
