"""nbgrader configuration for the circuitscope course.

Run the standard commands from this folder (``cd autograder``): ``nbgrader generate_assignment
ch1_introduction``, ``nbgrader autograde ch1_introduction``, ``nbgrader generate_feedback
ch1_introduction``, ``nbgrader export``. ``circuitscope-course`` (see README.md) wraps them.

Every path is computed from this file's own location, so the course works wherever the
repository is cloned and whichever folder a command starts from:

    <repository>/solutions/<assignment>/<notebook>.ipynb    source (the only place an exercise is written)
    <repository>/exercises/<assignment>/<notebook>.ipynb    release (generated, committed)
    <repository>/autograder/submitted|autograded|feedback/<student>/<assignment>/
    <repository>/autograder/gradebook.db                     the gradebook (sqlite)

Every kernel autograde starts runs in the sandbox of circuitscope_course/sandbox.py (bubblewrap:
no gradebook, no other submissions, no solutions/, no network, limits; see README.md, "The
sandbox").

Environment variables:
    CIRCUITSCOPE_GRADE_TIMEOUT   seconds one cell may run while autograding (default 300)
    CIRCUITSCOPE_SANDBOX         "0": kernels run WITHOUT the sandbox (what `grade --no-sandbox` sets)
    CIRCUITSCOPE_PARTIAL_CREDIT  "1": partial credit per case (what `grade --partial-credit` sets)
    CIRCUITSCOPE_SANDBOX_MEMORY, CIRCUITSCOPE_SANDBOX_NPROC, CIRCUITSCOPE_SANDBOX_HIDE: see sandbox.py
"""

import os
from pathlib import Path

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    SaveAutoGrades,
)


# The course tooling is its own package (no torch at import): every nbgrader command reads this file.
try:
    from circuitscope_course import nbgrader_ext as _ext
    from circuitscope_course import sandbox as _sandbox
    from circuitscope_course.verdicts import TrustedExecute
except ImportError as error:  # pragma: no cover - a setup problem, said plainly
    raise ImportError("circuitscope_course is not installed: pip install -e '.[grade]' from the repository") from error

HideHiddenTests, ZeroDeletedTests = _ext.HideHiddenTests, _ext.ZeroDeletedTests

c = get_config()  # noqa: F821 (injected by traitlets)

_here = Path(__file__).resolve().parent
_root = _here.parent
_step = _here.name  # "autograder"

c.CourseDirectory.course_id = "circuitscope"
c.CourseDirectory.root = str(_root)
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = f"{_step}/submitted"
c.CourseDirectory.autograded_directory = f"{_step}/autograded"
c.CourseDirectory.feedback_directory = f"{_step}/feedback"
c.CourseDirectory.db_url = f"sqlite:///{_here / 'gradebook.db'}"

# A cell that runs longer than this is interrupted and its test fails (CellTimeoutError).
c.TrustedExecute.timeout = int(os.environ.get("CIRCUITSCOPE_GRADE_TIMEOUT", "300"))
c.TrustedExecute.interrupt_on_timeout = True
# After that interrupt, a kernel slow to send the cell's last output must not fail the whole
# notebook: the cell keeps the timeout error (so it scores 0) and grading goes on.
c.TrustedExecute.raise_on_iopub_timeout = False
# Partial credit: a test cell scores its points times the share of its exercise's cases that
# pass (visible and hidden), instead of all or nothing. Set it to True here to make it the
# course's rule for every grading, plain `nbgrader autograde` included.
c.TrustedExecute.partial_credit = os.environ.get("CIRCUITSCOPE_PARTIAL_CREDIT", "0") == "1"

# The sandbox. Kernels start from the "python3" kernelspec: the one put first on JUPYTER_PATH
# here runs ipykernel inside bubblewrap (or plainly, with CIRCUITSCOPE_SANDBOX=0). It shadows any
# "python3" kernelspec of the user's own Jupyter, which could be another Python. The sandboxed
# kernel has no network, so its ZMQ channels are Unix sockets (the IPC transport), not TCP.
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    filter(None, [str(_sandbox.kernel_dir(_sandbox.enabled())), os.environ.get("JUPYTER_PATH")])
)
c.KernelManager.transport = "ipc"
c.KernelManager.ip = _sandbox.ipc_prefix()  # absolute and private to this nbgrader process

# Test cells are judged in the grader's own process (circuitscope_course/verdicts.py): their
# check modules come from the installed library or from the assignment's folder in solutions/.
c.TrustedExecute.source_directory = str(_root / "solutions")

# The private key that draws the graded hidden cases (circuitscope.checks.runner.hidden_seed):
# made once by `circuitscope-course hidden-key`, never committed. `circuitscope-course grade`
# refuses to grade without it; plain `nbgrader autograde` then grades the public hidden cases.
if (_here / "hidden_key").is_file():
    os.environ["CIRCUITSCOPE_HIDDEN_KEY"] = str(_here / "hidden_key")

# Students are added to the gradebook the first time one of their submissions is graded.
c.Autograde.create_student = True

# nbgrader's autograde pipeline, plus ZeroDeletedTests: a test cell deleted from a submission
# scores 0 and is logged. Plain nbgrader leaves it "needs manual grade" (or, on a regrade, keeps
# the score the cell earned last time).
c.Autograde.autograde_preprocessors = [
    TrustedExecute,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveAutoGrades,
    ZeroDeletedTests,
    AssignLatePenalties,
    CheckCellMetadata,
]

# Feedback never shows hidden tests: plain nbgrader 0.9 renders the autograded notebook, hidden
# tests and their tracebacks included. HideHiddenTests removes the hidden regions and replaces
# the outputs of cells that ran them with a one-line verdict.
c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]

# Late work (circuitscope_course/deadlines.py). The due date is nbgrader's (the gradebook's
# assignment duedate); each assignment's penalty (`circuitscope-course due ... --penalty`) and the
# students' extensions (`circuitscope-course extend`) are applied by this AssignLatePenalties plugin.
from circuitscope_course.deadlines import CoursePenalty

c.AssignLatePenalties.plugin_class = CoursePenalty

# Feedback pages name each exercise, say how late the submission was, and show nothing of the
# grading machine (its folders, its warnings): circuitscope_course/results.py, FeedbackExporter.
from circuitscope_course.results import FeedbackExporter

c.GenerateFeedback.exporter_class = FeedbackExporter
