"""Grade a folder of submissions with nbgrader, one notebook per process.

Plain ``nbgrader autograde`` grades a whole class in one process: a notebook that kills its
kernel, or is not valid JSON, is dropped without a grade ("needs manual grade") and the whole run
exits non-zero. Here each notebook is autograded by its own ``nbgrader autograde --student S
--notebook N`` process (forked from a server that has nbgrader and torch loaded), under a
wall-clock limit, so one hostile notebook cannot stop the
others, and every notebook ends in one of two states, both recorded in the real gradebook:

* **graded** by nbgrader (``ZeroDeletedTests`` has scored deleted test cells 0 and said so);
* **zero**, with the reason: not submitted, not a valid notebook, the kernel died, the kernel
  stopped responding, grading ran past the wall-clock limit, nbgrader failed on it.

Every kernel runs in the sandbox of :mod:`.sandbox` (bubblewrap). Where it cannot start, grading
stops before touching the gradebook; ``sandbox=False`` (``--no-sandbox``) grades anyway, and every
row of the report then says so.

Every run rewrites its rows of ``autograder/grading_report.csv`` (one row per student, assignment
and notebook; never duplicated) and leaves nbgrader's output in ``autograder/logs/``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import nbformat

from . import deadlines
from . import sandbox as sandbox_mod
from .course import Course, CourseError
from .generate import SyncReport, _compare, normalize

#: Seconds one cell may run while autograding, unless CIRCUITSCOPE_GRADE_TIMEOUT or --timeout says.
DEFAULT_CELL_TIMEOUT = 300
TIMEOUT_ENV = "CIRCUITSCOPE_GRADE_TIMEOUT"
#: "1": a test cell scores the share of its cases that pass (autograder/nbgrader_config.py reads it).
PARTIAL_CREDIT_ENV = "CIRCUITSCOPE_PARTIAL_CREDIT"
REPORT_NAME = "grading_report.csv"
LOGS_NAME = "logs"

GRADED, ZERO = "graded", "zero"
NO_SANDBOX = "graded WITHOUT the sandbox (--no-sandbox)"

_EXCEPTION_LINE = re.compile(r"^\s*[\w.]*(Error|Exception|Exit)\b[\w.]*(:.*)?$")


@dataclass(frozen=True)
class Submission:
    """One student's submission of one assignment: a folder of notebooks."""

    student: str
    assignment: str
    folder: Path


@dataclass
class Outcome:
    """What grading did with one notebook of one submission (a row of the grading report)."""

    student_id: str
    assignment: str
    notebook: str
    status: str  # GRADED or ZERO
    score: float = 0.0
    max_score: float = 0.0
    seconds: float = 0.0
    problem: str = ""  # why it scored zero, or what grading noticed (deleted test cells, ...)
    # From the gradebook (see update_from_gradebook); `score` is raw_score - late_penalty.
    raw_score: float = 0.0
    late_penalty: float = 0.0
    hours_late: float = 0.0  # past the student's own due date (extension included); 0 if on time
    needs_manual_grade: str = ""  # cells nobody has scored yet (a written answer, say)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.student_id, self.assignment, self.notebook)


def find_submissions(
    folder: Path,
    assignments: list[str],
    known: list[str],
    log=print,
    expected: dict[str, list[str]] | None = None,
) -> list[Submission]:
    """Submissions in ``folder``: ``<student>/<assignment>/<notebook>.ipynb``.

    With exactly one assignment asked for, ``<student>/<notebook>.ipynb`` is accepted too.
    ``expected`` (assignment -> its notebook names, as ``Course.notebooks`` gives them): a notebook
    of a submission that matches none is logged by name, with the name expected. nbgrader grades
    only the expected names, so such a file (an LMS's ``renamed_12345_678_demo.ipynb``) would
    otherwise just score "not submitted".
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CourseError(f"no such folder: {folder}")
    found = []
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        matched = False
        for sub in sorted(p for p in student_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if sub.name in assignments:
                found.append(Submission(student_dir.name, sub.name, sub))
                matched = True
            elif sub.name not in known:
                log(f"skipping {sub}: there is no assignment called {sub.name!r}")
        loose = sorted(p.name for p in student_dir.glob("*.ipynb"))
        if not matched and len(assignments) == 1 and loose:
            found.append(Submission(student_dir.name, assignments[0], student_dir))
        elif loose:
            where = "beside its assignment folders" if matched else "with no assignment folder"
            log(f"skipping {', '.join(loose)} in {student_dir} ({where}): put notebooks in "
                "<student>/<assignment>/, or grade one assignment (-a ID)")  # fmt: skip
    for sub in found:
        names = (expected or {}).get(sub.assignment)
        stray = sorted(p.name for p in sub.folder.glob("*.ipynb") if names and p.stem not in names)
        if stray:
            missing = [f"{n}.ipynb" for n in names if not (sub.folder / f"{n}.ipynb").is_file()]
            log(f"{sub.student}/{sub.assignment}: {', '.join(stray)} match(es) no notebook of {sub.assignment} "
                f"and will not be graded; expected {', '.join(f'{n}.ipynb' for n in names)}"
                + (f" ({', '.join(missing)} missing: rename the file?)" if missing else ""))  # fmt: skip
    return found


def grade(
    course: Course,
    submissions_dir: str | os.PathLike,
    assignments: list[str] | None = None,
    *,
    timeout: int | None = None,
    notebook_timeout: int | None = None,
    jobs: int = 1,
    progress: bool = True,
    sandbox: bool = True,
    partial_credit: bool = False,
    log=print,
) -> list[Outcome]:
    """Autograde every submission in ``submissions_dir`` into the course's gradebook.

    ``timeout``: seconds one cell may run (default: $CIRCUITSCOPE_GRADE_TIMEOUT, else 300).
    ``notebook_timeout``: seconds the grading of one notebook may take before it is stopped, kernel
    and all (default: ``timeout`` times the notebook's number of code cells + 3). ``jobs``:
    notebooks graded at once. ``sandbox``: run every kernel in the sandbox (default); without it the
    kernels run with the grader's rights, and every outcome says so. ``partial_credit``: a test
    cell scores the share of its cases that pass (also on when the course's nbgrader_config.py
    or $CIRCUITSCOPE_PARTIAL_CREDIT turns it on). Returns one :class:`Outcome` per notebook, also written to the
    grading report.
    """
    submissions = _submissions(course, submissions_dir, assignments, log)
    cell_timeout = int(timeout or os.environ.get(TIMEOUT_ENV) or DEFAULT_CELL_TIMEOUT)
    env = _grading_env(cell_timeout, jobs, partial_credit, sandbox)
    _forkserver()  # it starts importing nbgrader and torch now, while the sandbox is checked
    if sandbox:
        env.update(_sandbox_env(submissions_dir))
    else:
        log(f"WARNING: {NO_SANDBOX}: every kernel runs with your rights, and a submission can change "
            "any grade, read solutions/ and the hidden tests, or damage the course folder")  # fmt: skip
    _record_assignments(course, sorted({s.assignment for s in submissions}), log)
    outcomes, tasks = _register(course, submissions, log)
    outcomes += _run_all(course, tasks, cell_timeout, notebook_timeout, env, jobs, progress, log)
    return _finish(course, outcomes, sandbox, log)


def _submissions(course: Course, submissions_dir, assignments: list[str] | None, log) -> list[Submission]:
    """The submissions to grade, after checking there are some and that the hidden-test key exists."""
    wanted = course.require_assignments(assignments)
    if not wanted:
        raise CourseError(f"{course.source} has no assignments to grade")
    submissions = find_submissions(Path(submissions_dir), wanted, course.assignments(), log=log,
                                   expected={a: course.notebooks(a) for a in wanted})  # fmt: skip
    if not submissions:
        raise CourseError(
            f"no submissions in {submissions_dir}: expected <student>/<assignment>/<notebook>.ipynb "
            f"for assignment(s) {', '.join(wanted)}"
        )
    if not course.hidden_key_file.is_file():
        raise CourseError(
            f"grading stopped: no hidden-test key ({course.hidden_key_file}). The hidden cases are drawn "
            "from this private key, so that the graded ones are not those in the package learners install. "
            "Make it once with `circuitscope-course hidden-key`, keep it (a new key changes the hidden "
            "cases between two gradings) and never publish it."
        )
    return submissions


def _grading_env(cell_timeout: int, jobs: int, partial_credit: bool, sandbox: bool) -> dict:
    """The environment of every notebook's grading process (read by autograder/nbgrader_config.py)."""
    env = {TIMEOUT_ENV: str(cell_timeout), sandbox_mod.ENV_SANDBOX: "1" if sandbox else "0"}
    if partial_credit:
        env[PARTIAL_CREDIT_ENV] = "1"
    if jobs > 1 and "OMP_NUM_THREADS" not in os.environ:
        # Each of the `jobs` kernels gets its share of the cores: two kernels that each wake a
        # thread per core on a two-core machine took twice as long per notebook.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def _sandbox_env(submissions_dir) -> dict:
    """Check that the sandbox can start (grading stops if not); what it must hide: the
    submissions as handed in (the other students' notebooks) and whatever the caller hides."""
    try:
        sandbox_mod.check()
    except sandbox_mod.SandboxUnavailable as err:
        raise CourseError(f"grading stopped: {err}") from None
    hide = [str(Path(submissions_dir).resolve()), os.environ.get(sandbox_mod.ENV_HIDE, "")]
    return {sandbox_mod.ENV_HIDE: os.pathsep.join(filter(None, hide))}


def _record_assignments(course: Course, names: list[str], log) -> None:
    """Describe ``names`` in the gradebook as solutions/ does now (cells, points, the hidden tests
    to restore): generated into a scratch folder, so exercises/ is not touched; a warning where
    exercises/ differs."""
    with tempfile.TemporaryDirectory(prefix="circuitscope-release-") as tmp:
        for name in names:
            _generate(course, name, Path(tmp))
            drift = SyncReport()
            _compare(Path(tmp) / name, course.release / name, Path(course.release.name) / name, drift)
            if not drift.in_sync:
                log(f"warning: {course.release.name}/{name}/ differs from what {course.source.name}/{name}/ "
                    "generates now; grading follows the latter (see: circuitscope-course check-sync)")  # fmt: skip


def _register(course: Course, submissions: list[Submission], log) -> tuple[list[Outcome], list]:
    """Copy each submission in and record it (student, submission time, extension) in the
    gradebook; ``(zeros, tasks)``: the notebooks that cannot be read, scored 0 now, and
    ``(submission, notebooks to run)`` for the rest."""
    from nbgrader.api import Gradebook

    outcomes: list[Outcome] = []
    tasks: list[tuple[Submission, list[str]]] = []
    store = deadlines.Deadlines.of(course)
    untimed: dict[str, list[str]] = {}  # assignment -> students without a submission time
    with Gradebook(course.db_url, "circuitscope") as gb, warnings.catch_warnings():
        # nbgrader's own add_submission trips SQLAlchemy's autoflush warning; it is harmless.
        warnings.filterwarnings("ignore", message=".*not in session.*")
        for sub in submissions:
            dest = _copy_in(course, sub)
            gb.update_or_create_student(sub.student)
            timestamp = _timestamp(dest)
            extra = {"timestamp": timestamp} if timestamp else {}
            row = gb.update_or_create_submission(sub.assignment, sub.student, **extra)
            deadlines.sync_extension(gb, store, sub.assignment, sub.student)
            if row.assignment.duedate is not None and not timestamp:
                untimed.setdefault(sub.assignment, []).append(sub.student)
            runnable = []
            for notebook in course.notebooks(sub.assignment):
                problem = _unreadable(dest / f"{notebook}.ipynb")
                if problem:
                    outcomes.append(Outcome(sub.student, sub.assignment, notebook, ZERO, problem=problem))
                else:
                    runnable.append(notebook)
            if runnable:
                tasks.append((sub, runnable))
        for outcome in outcomes:
            _zero(gb, course, outcome)
            log(f"ZERO {'/'.join(outcome.key)}: {outcome.problem}")
    for name, students in sorted(untimed.items()):
        log(f"{name} has a due date, but {len(students)} submission(s) have no timestamp.txt beside the "
            f"notebook ({', '.join(students[:5])}{', ...' if len(students) > 5 else ''}): "
            "they count as on time")  # fmt: skip
    return outcomes, tasks


def _run_all(course: Course, tasks: list, cell_timeout: int, notebook_timeout: int | None, env: dict,
             jobs: int, progress: bool, log) -> list[Outcome]:  # fmt: skip
    """Grade every notebook of ``tasks``, ``jobs`` at once (each in its own process); a zero is
    recorded in the gradebook as it comes."""
    from nbgrader.api import Gradebook

    outcomes = []
    bar = _progress(sum(len(nbs) for _, nbs in tasks), progress)
    write = bar.write if bar is not None and log is print else log
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [pool.submit(_grade_submission, course, sub, nbs, cell_timeout, notebook_timeout, env)
                       for sub, nbs in tasks]  # fmt: skip
            for future in as_completed(futures):
                for outcome in future.result():
                    if outcome.status == ZERO:
                        with Gradebook(course.db_url, "circuitscope") as gb:
                            _zero(gb, course, outcome)
                    _log_outcome(outcome, write)
                    outcomes.append(outcome)
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return outcomes


def _finish(course: Course, outcomes: list[Outcome], sandbox: bool, log) -> list[Outcome]:
    """Every outcome's scores and lateness from the gradebook, the late and unscored ones logged,
    the grading report written; the outcomes, sorted."""
    from nbgrader.api import Gradebook

    with Gradebook(course.db_url, "circuitscope") as gb:
        for outcome in outcomes:
            update_from_gradebook(gb, outcome)
            if not sandbox:
                outcome.problem = _join(outcome.problem, NO_SANDBOX)
        _log_gradebook_notes(gb, deadlines.Deadlines.of(course), outcomes, log)
    outcomes.sort(key=lambda o: o.key)
    write_report(course, outcomes)
    return outcomes

def update_from_gradebook(gb, outcome: Outcome) -> Outcome:
    """Fill ``outcome``'s scores, lateness and unscored cells from the gradebook as it is now.

    ``score`` is what the export and the feedback show: nbgrader's score (a grader's manual score
    where there is one) less the late penalty.
    """
    nb = gb.find_submission_notebook(outcome.notebook, outcome.assignment, outcome.student_id)
    outcome.raw_score, outcome.max_score = float(nb.score), float(nb.max_score)
    outcome.late_penalty = min(float(nb.late_submission_penalty or 0.0), outcome.raw_score)
    outcome.score = round(outcome.raw_score - outcome.late_penalty, 4)
    outcome.hours_late = round(nb.assignment.total_seconds_late / 3600, 2)
    # A grader's override (manual_score) is a decision, not a problem, even though nbgrader flags
    # it for review again after every regrade; only a cell nobody has scored needs a grader.
    outcome.needs_manual_grade = ", ".join(
        g.name for g in nb.grades if g.needs_manual_grade and g.manual_score is None
    )
    return outcome


def _log_gradebook_notes(gb, store, outcomes: list[Outcome], log) -> None:
    """One line per late submission and per notebook waiting for a grader."""
    seen = set()
    for o in sorted(outcomes, key=lambda o: o.key):
        if o.hours_late > 0 and (o.student_id, o.assignment) not in seen:
            seen.add((o.student_id, o.assignment))
            late = deadlines.lateness(gb, store, o.assignment, o.student_id)
            lost = sum(x.late_penalty for x in outcomes if x.key[:2] == o.key[:2])
            log(f"LATE {o.student_id}/{o.assignment}: {late.describe()}, {lost:g} point(s) off")
        if o.needs_manual_grade:
            log(f"needs manual grading (formgrader) {'/'.join(o.key)}: {o.needs_manual_grade}")


def _grade_submission(course: Course, sub: Submission, notebooks: list[str], cell_timeout: int,
                      notebook_timeout: int | None, env: dict) -> list[Outcome]:  # fmt: skip
    return [_grade_notebook(course, sub, nb, cell_timeout, notebook_timeout, env) for nb in notebooks]


def _grade_notebook(course: Course, sub: Submission, notebook: str, cell_timeout: int,
                    notebook_timeout: int | None, env: dict) -> Outcome:  # fmt: skip
    limit = notebook_timeout or cell_timeout * (_code_cells(course, sub.assignment, notebook) + 3)
    args = ["autograde", sub.assignment, "--student", sub.student, "--notebook", notebook, "--force"]
    log_path = course.autograder / LOGS_NAME / sub.student / sub.assignment / f"{notebook}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    proc = _forkserver().Process(
        target=_autograde, args=(args, str(course.autograder), course.environment(env), str(log_path)), daemon=True
    )  # fmt: skip
    proc.start()
    proc.join(limit)
    timed_out = proc.exitcode is None
    if timed_out:
        _kill_tree(proc.pid)
        proc.join()
    seconds = round(time.monotonic() - start, 1)
    output = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""

    graded = course.autograded / sub.student / sub.assignment / f"{notebook}.ipynb"
    outcome = Outcome(sub.student, sub.assignment, notebook, GRADED, seconds=seconds)
    if not timed_out and proc.exitcode == 0 and graded.is_file():
        deleted = _deleted_tests(graded)
        if deleted:
            outcome.problem = f"test cell(s) deleted, scored 0: {', '.join(deleted)}"
        return outcome
    outcome.status = ZERO
    why = _failure_reason(output, timed_out, limit, proc.exitcode)
    outcome.problem = f"{why} (log: {log_path.relative_to(course.root)})"
    graded.unlink(missing_ok=True)  # a half-written notebook from a killed run
    return outcome


#: Imported once by the fork server, so that each notebook's grading process starts with them:
#: nbgrader (and what autograder/nbgrader_config.py imports), torch, the checks, and what the
#: checks import when they first build a case (skimage's photos: 0.3 s in every notebook's process
#: before it was here). A module that cannot be imported is skipped (multiprocessing's rule).
_PRELOAD = ["nbgrader.apps", "nbclient", "IPython", "circuitscope_course.verdicts", "circuitscope_course.results",
            "circuitscope_course.deadlines", "circuitscope.checks.runner", "circuitscope.checks.recipes",
            "circuitscope.checks.wire", "circuitscope.checks.hints", "torch",
            *(f"circuitscope.checks.ch{n}" for n in range(1, 6)), "skimage.data", "skimage.io", "pooch"]  # fmt: skip
_FORKSERVER = None


def _forkserver():
    """The multiprocessing context that grades each notebook in a process of its own.

    Each notebook still gets its own process, so that a wall-clock limit can stop it, kernel and
    all, without touching the others. But a fresh ``python -m nbgrader`` spent 2-3 s importing
    nbgrader and then torch for the checks, for every notebook, where plain nbgrader pays that
    once per class. A fork server imports them once (``set_forkserver_preload``), and each
    notebook's process is forked from it with them loaded (so is generate_assignment's, see
    :func:`_generate`).
    """
    global _FORKSERVER
    if _FORKSERVER is None:
        import multiprocessing
        from multiprocessing import forkserver

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        # Started now, not at the first fork: the server imports the preload (seconds) while
        # grade() checks the sandbox.
        forkserver.ensure_running()
        _FORKSERVER = context
    return _FORKSERVER


def _generate(course: Course, assignment: str, release_root: Path) -> Path:
    """``nbgrader generate_assignment`` into ``release_root`` (see :func:`.generate._generate_one`),
    in a process forked from the fork server: a fresh ``python -m nbgrader`` spent about 1.5 s
    importing nbgrader for 0.2 s of work, in every grade() call."""
    log_path = release_root / f"generate-{assignment}.log"  # beside the release folder, not in it
    args = ["generate_assignment", assignment, "--force", f"--CourseDirectory.release_directory={release_root}"]
    env = course.environment()
    proc = _forkserver().Process(target=_autograde, args=(args, str(course.autograder), env, str(log_path)),
                                 daemon=True)  # fmt: skip
    proc.start()
    proc.join()
    dest = release_root / assignment
    if proc.exitcode != 0 or not dest.is_dir():
        output = log_path.read_text(encoding="utf-8", errors="replace") if log_path.is_file() else ""
        if "Safe importing of main module" in output or not log_path.is_file():
            # The process never ran nbgrader: multiprocessing printed why (on this console).
            raise CourseError(f"nbgrader generate_assignment {assignment} could not start "
                              f"(exit {proc.exitcode}); if the error above says 'Safe importing of main "
                              "module': " + _failure_reason("Safe importing of main module", False, 0, None))  # fmt: skip
        raise CourseError(f"nbgrader generate_assignment {assignment} failed (exit {proc.exitcode}):\n"
                          + "\n".join(output.strip().splitlines()[-25:]))  # fmt: skip
    normalize(dest)
    return dest


def _autograde(args: list[str], cwd: str, env: dict, log_path: str) -> None:
    """In a process of the fork server (one notebook's grading, or generate_assignment):
    ``nbgrader <args>`` in ``cwd``, its output into ``log_path``."""
    os.setsid()  # a process group of its own, as the subprocess was (see _kill_tree)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    # Whatever this process leaves in the temporary folder (nbgrader_config.py's socket folder,
    # whose atexit clean-up does not run in a multiprocessing child) goes with it.
    tmp = tempfile.mkdtemp(prefix="circuitscope-grade-")
    os.environ["TMPDIR"] = tempfile.tempdir = tmp
    try:
        from nbgrader.apps import NbGraderApp

        NbGraderApp.launch_instance(argv=args)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        shutil.rmtree(tmp, ignore_errors=True)


def _failure_reason(output: str, timed_out: bool, limit: int, returncode: int | None) -> str:
    if timed_out:
        return f"grading ran past {limit} s and was stopped (an infinite loop the kernel would not leave?)"
    if "Safe importing of main module" in output:  # multiprocessing's words (see _forkserver)
        return ("grading could not start: grade() was called at the top level of a script; "
                "put the call under `if __name__ == \"__main__\":`")  # fmt: skip
    if "Kernel died" in output or "DeadKernelError" in output:
        return "the kernel died while running it (os._exit, a crash, or out of memory)"
    if "UnresponsiveKernelError" in output or "kernel became unresponsive" in output:
        return "the kernel stopped responding after a cell timed out"
    if "Notebook failed to validate" in output:
        return "its nbgrader cell metadata is corrupted"
    if "CellTimeoutError" in output:
        return "a cell ran past the time limit and the kernel did not recover"
    errors = [line.strip() for line in output.splitlines() if _EXCEPTION_LINE.match(line)]
    detail = errors[-1] if errors else f"exit status {returncode}, no autograded notebook"
    return f"nbgrader could not grade it: {detail[:200]}"


def _kill_tree(pid: int) -> None:
    """Stop a process and all its descendants (the kernel runs in a session of its own)."""
    try:
        import psutil

        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=10)
    except ImportError:  # the kernel then exits by itself when it sees its parent gone
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    except Exception:  # noqa: BLE001, S110 -- psutil errors while the tree exits: nothing left to kill
        pass


def _copy_in(course: Course, sub: Submission) -> Path:
    """Put a submission in ``autograder/submitted/<student>/<assignment>/`` (replacing an older one)."""
    dest = course.submitted / sub.student / sub.assignment
    if sub.folder.resolve() == dest.resolve():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(sub.folder, dest, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return dest


def _timestamp(folder: Path) -> str | None:
    path = folder / "timestamp.txt"
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        return text or None
    return None


def _unreadable(path: Path) -> str:
    """Why ``path`` cannot be graded ('' if it can). Unreadable files are renamed ``*.invalid``.

    nbgrader only looks at ``*.ipynb``: renamed, the file stays for the record and a plain
    ``nbgrader autograde`` scores it as not submitted instead of failing on it.
    """
    if not path.exists():
        return "not submitted"
    try:
        nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 -- JSON errors, NotJSONError, binary files: all unreadable
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        path.replace(path.with_name(path.name + ".invalid"))
        return f"not a valid notebook ({type(err).__name__}: {first[:160]})"
    return ""


def _zero(gb, course: Course, outcome: Outcome) -> None:
    """Record 0 for every grade of a notebook (a grader's manual score, if any, stays)."""
    nb = gb.find_submission_notebook(outcome.notebook, outcome.assignment, outcome.student_id)
    for grade in nb.grades:
        grade.auto_score = 0.0
        grade.needs_manual_grade = grade.manual_score is not None
    nb.late_submission_penalty = None  # a penalty on the score it had before would now exceed it
    gb.db.commit()
    # Graded in an earlier run? Its graded copy and feedback would contradict the zero.
    (course.autograded / outcome.student_id / outcome.assignment / f"{outcome.notebook}.ipynb").unlink(
        missing_ok=True
    )
    (course.feedback / outcome.student_id / outcome.assignment / f"{outcome.notebook}.html").unlink(
        missing_ok=True
    )


def _deleted_tests(path: Path) -> list[str]:
    from .nbgrader_ext import METADATA_KEY

    nb = nbformat.read(path, as_version=4)
    return list(nb.metadata.get(METADATA_KEY, {}).get("deleted_test_cells", []))


def _code_cells(course: Course, assignment: str, notebook: str) -> int:
    try:
        nb = nbformat.read(course.source / assignment / f"{notebook}.ipynb", as_version=4)
    except (OSError, ValueError, nbformat.reader.NotJSONError):
        return 50
    return sum(cell.cell_type == "code" for cell in nb.cells)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _log_outcome(outcome: Outcome, write) -> None:
    where = "/".join(outcome.key)
    if outcome.status == ZERO:
        write(f"ZERO {where}: {outcome.problem}")
    elif outcome.problem:
        write(f"graded {where} ({outcome.seconds:.0f} s): {outcome.problem}")


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="autograding", unit="notebook", file=sys.stderr, dynamic_ncols=True)


# The grading report ------------------------------------------------------------------------

REPORT_FIELDS = [f.name for f in fields(Outcome)]


def read_report(course: Course) -> list[Outcome]:
    """The rows of the grading report (a report from before a column existed reads its default)."""
    path = course.autograder / REPORT_NAME
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        values = {}
        try:
            for f in fields(Outcome):
                text = row.get(f.name)
                if text is None and f.default is MISSING:
                    raise KeyError(f.name)
                if text is not None:
                    values[f.name] = float(text or 0) if isinstance(f.default, float) else text
        except (KeyError, ValueError):
            continue
        if "raw_score" not in row:  # written before lateness was reported: no penalty then
            values["raw_score"] = values.get("score", 0.0)
        out.append(Outcome(**values))
    return out


def write_report(course: Course, outcomes: list[Outcome]) -> Path:
    """Merge ``outcomes`` into the grading report: one row per student, assignment and notebook."""
    rows = {o.key: o for o in read_report(course)}
    rows.update({o.key: o for o in outcomes})
    path = course.autograder / REPORT_NAME
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=REPORT_FIELDS)
        writer.writeheader()
        for key in sorted(rows):
            writer.writerow(asdict(rows[key]))
    return path
