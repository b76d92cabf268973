"""The grading sandbox (circuitscope_course.sandbox), proven on a class of hostile submissions.

Real nbgrader, real gradebook, the demo assignment of test_course_hostile.py (``add`` 1 point,
``scale`` 2 points). Each hostile student does one thing in a learner cell; each must score 0 or
its honest score, every other student (a correct one graded after them included) must be graded
right, and the gradebook must hold only what the grader wrote.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from test_course_hostile import CELL_TIMEOUT, CONFIG, _autograded, _cell, _gradebook_state

from circuitscope_course import Course, CourseError, cli, demo, generate
from circuitscope_course import sandbox as sandbox_mod
from circuitscope_course.grading import GRADED, NO_SANDBOX, grade, read_report

pytestmark = pytest.mark.slow

BACKGROUND_ARG = "4321.5"  # `sleep 4321.5`: a command line no other process has
FORKS = 3000  # the fork bomb stops by itself after this many processes, sandbox or not


def _sandbox_or_skip():
    try:
        sandbox_mod.check()
    except sandbox_mod.SandboxUnavailable as err:
        pytest.skip(f"no sandbox on this machine: {err}")


def _hostile(root: Path, port: int) -> dict[str, tuple[str, str, float]]:
    """student -> (add cell, scale cell, honest score)."""
    stub_scale = "def scale(x, k):\n    raise NotImplementedError"
    return {
        "a_vandal": (
            demo.ADD
            + f"""
import pathlib, shutil
root = pathlib.Path({str(root)!r})
try:
    for p in (root / "autograder" / "submitted").iterdir():
        if p.name != "a_vandal":
            shutil.rmtree(p)
except OSError as err:
    print("delete refused:", err)
for target in (root / "autograder" / "pwned.txt", root / "autograder" / "submitted" / "zz_correct" / "x"):
    try:
        target.write_text("pwned")
    except OSError as err:
        print("write refused:", err)""",
            demo.SCALE,
            3.0,
        ),
        "gradebook_editor": (
            f"""import sqlite3
try:
    con = sqlite3.connect("file:" + {str(root / "autograder" / "gradebook.db")!r} + "?mode=rw", uri=True)
    con.execute("UPDATE grade SET auto_score = 6000")
    con.commit()
    print("EDITED")
except Exception as err:
    print("refused:", err)
def add(a, b):
    raise NotImplementedError""",
            stub_scale,
            0.0,
        ),
        "solutions_reader": (
            f"""import json
nb = json.load(open({str(root / "solutions" / "demo" / "demo.ipynb")!r}))
for cell in nb["cells"]:
    if "BEGIN SOLUTION" in "".join(cell["source"]):
        exec("".join(cell["source"]))""",
            "",
            0.0,
        ),
        "network": (
            f"""import socket
s = socket.create_connection(("127.0.0.1", {port}), timeout=5)
s.sendall(b"the hidden tests")
def add(a, b):
    return a + b""",
            demo.SCALE,
            2.0,
        ),
        "memory_hog": (
            demo.ADD + "\nimport numpy\nhog = numpy.zeros(12 * 2**30, dtype=numpy.uint8)",  # 12 GiB
            demo.SCALE,
            3.0,
        ),
        "background": (
            demo.ADD
            + f"""
import subprocess
subprocess.Popen(["sleep", "{BACKGROUND_ARG}"], start_new_session=True)""",
            demo.SCALE,
            3.0,
        ),
        "fork_bomb": (
            demo.ADD
            + f"""
import os, time
made = 0
try:
    for _ in range({FORKS}):
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
        made += 1
    print("forked", made)
except OSError as err:
    print("fork refused after", made, type(err).__name__)""",
            demo.SCALE,
            3.0,
        ),
        # --- code that works on the kernel itself: the verdicts are computed outside it -----------
        "input_transformer": (
            "get_ipython().input_transformers_post.append(lambda lines: ['print(\"\u2714 all pass\")\\n'])\n"
            + "def add(a, b):\n    raise NotImplementedError",
            stub_scale,
            0.0,
        ),
        "run_cell_patch": (
            """ip = get_ipython()
def run_cell(raw_cell, *args, **kwargs):
    print("\u2714 add: all 2 cases pass.")
async def run_cell_async(raw_cell, *args, **kwargs):
    print("\u2714 add: all 2 cases pass.")
ip.run_cell, ip.run_cell_async = run_cell, run_cell_async
def add(a, b):
    raise NotImplementedError""",
            stub_scale,
            0.0,
        ),
        "check_replacer": (
            PATCH_CHECKS + "\ndef add(a, b):\n    return a - b",
            "def scale(x, k):\n    return x",
            0.0,
        ),
        "inside_replacer": (
            "def add(a, b):\n" + textwrap.indent(PATCH_CHECKS, "    ") + "\n    return a - b",
            "def scale(x, k):\n" + textwrap.indent(PATCH_CHECKS, "    ") + "\n    return x",
            0.0,
        ),
        "patcher_but_right": (PATCH_CHECKS + "\n" + demo.ADD, demo.SCALE, 3.0),  # patches cost nothing
        "forger": (
            f"""import base64, os, pickle
import circuitscope.checks.remote as remote
from IPython.display import publish_display_data
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + {str(root / "PWNED")!r},))
def serve(text):
    publish_display_data({{remote.wire.MIME: base64.b64encode(pickle.dumps(Payload())).decode()}})
remote.serve = serve
def add(a, b):
    return a + b""",
            demo.SCALE,
            0.0,
        ),
        "zz_correct": (demo.ADD, demo.SCALE, 3.0),  # graded after the others
    }


#: Learner code that replaces the checks, the runner's comparisons and the grader's kernel-side
#: entry point, as a hostile learner would (top level, or inside the graded function).
PATCH_CHECKS = """import democheck
import circuitscope.checks.runner as runner
democheck.check_add = democheck.check_scale = lambda *a, **k: print("\u2714 all cases pass")
runner.compare = runner.judge = lambda *a, **k: None
runner.same = lambda *a, **k: True
runner.Exercise.__call__ = lambda self, *a, **k: print("\u2714 all cases pass")"""


class Class:
    pass


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Class:
    _sandbox_or_skip()
    g = Class()
    g.root = tmp_path_factory.mktemp("sandbox-course")
    g.course = Course(g.root)
    demo.create(g.root, CONFIG)
    generate(g.course, log=lambda *_: None)
    release = nbformat.read(g.course.release / "demo" / "demo.ipynb", as_version=4)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    g.cases = _hostile(g.root, listener.getsockname()[1])
    g.submissions = g.root / "submissions"
    for student, (add, scale, _) in g.cases.items():
        nb = copy.deepcopy(release)
        _cell(nb, "add").source = add
        if scale:
            _cell(nb, "scale").source = scale
        (g.submissions / student / "demo").mkdir(parents=True)
        nbformat.write(nb, g.submissions / student / "demo" / "demo.ipynb")
    g.log = []
    g.outcomes = {o.student_id: o for o in grade(g.course, g.submissions, timeout=CELL_TIMEOUT, jobs=2,
                                                 progress=False, log=g.log.append)}  # fmt: skip
    try:
        g.connection = listener.accept()
    except BlockingIOError:
        g.connection = None
    listener.close()
    g.grades = _gradebook_state(g.course)
    return g


def _outputs(g, student: str, grade_id: str = "add") -> str:
    cell = _cell(_autograded(g, student), grade_id)
    return json.dumps(cell.outputs)


@pytest.mark.parametrize("student", ["a_vandal", "gradebook_editor", "solutions_reader", "network",
                                     "memory_hog", "background", "fork_bomb", "input_transformer",
                                     "run_cell_patch", "check_replacer", "inside_replacer",
                                     "patcher_but_right", "forger", "zz_correct"])  # fmt: skip
def test_each_submission_scores_its_honest_score(hostile, student):
    outcome = hostile.outcomes[student]
    assert outcome.status == GRADED and outcome.score == hostile.cases[student][2], outcome
    assert "WITHOUT" not in outcome.problem


def test_the_gradebook_holds_only_what_the_grader_wrote(hostile):
    expected = {
        student: {"test_add": (1.0 if score in (1.0, 3.0) else 0.0, False),
                  "test_scale": (2.0 if score >= 2.0 else 0.0, False)}
        for student, (_, _, score) in hostile.cases.items()
    }  # fmt: skip
    assert hostile.grades == expected
    assert "EDITED" not in _outputs(hostile, "gradebook_editor")
    assert "unable to open database" in _outputs(hostile, "gradebook_editor")


def test_other_students_files_and_the_autograder_folder_are_out_of_reach(hostile):
    assert not (hostile.course.autograder / "pwned.txt").exists()
    for student in hostile.cases:
        assert (hostile.course.submitted / student / "demo" / "demo.ipynb").is_file(), student
    assert not (hostile.course.submitted / "zz_correct" / "x").exists()
    out = _outputs(hostile, "a_vandal")
    assert "delete refused" in out and "write refused" in out, out


def test_a_forged_reply_is_never_unpickled(hostile):
    assert not (hostile.root / "PWNED").exists()
    assert "could not be read as data" in _outputs(hostile, "forger", "test_add")


def test_patched_kernels_print_no_verdict(hostile):
    """What the kernel printed never reaches a test cell: its outputs are the grader's."""
    for student in ("input_transformer", "run_cell_patch", "check_replacer", "inside_replacer"):
        out = _outputs(hostile, student, "test_add")
        assert "all pass" not in out and "all cases pass" not in out, (student, out)
        assert "CheckFailed" in out or "NoAnswer" in out, (student, out)


def test_solutions_cannot_be_read(hostile):
    assert "FileNotFoundError" in _outputs(hostile, "solutions_reader")


def test_no_network(hostile):
    assert hostile.connection is None, "the sandboxed kernel reached the test's socket"
    out = _outputs(hostile, "network")
    assert "OSError" in out or "ConnectionRefusedError" in out, out


def test_memory_is_limited(hostile):
    assert "MemoryError" in _outputs(hostile, "memory_hog")


def test_a_fork_bomb_is_stopped(hostile):
    out = _outputs(hostile, "fork_bomb")
    assert "fork refused after" in out, out


def test_background_processes_die_with_the_kernel(hostile):
    psutil = pytest.importorskip("psutil")
    time.sleep(1)
    survivors = []
    for proc in psutil.process_iter(["cmdline"]):
        if BACKGROUND_ARG in (proc.info["cmdline"] or []) or "time.sleep(20)" in " ".join(
            proc.info["cmdline"] or []
        ):
            survivors.append(proc)
    assert not survivors, survivors


# --- without the sandbox ------------------------------------------------------------------------


def test_no_sandbox_is_marked_in_the_report_and_the_console(hostile, tmp_path, capsys):
    folder = tmp_path / "subs"
    demo.write_submissions(folder, hostile.course.release / "demo" / "demo.ipynb", ["correct"])
    status = cli.main(["--root", str(hostile.root), "grade", str(folder), "--timeout", str(CELL_TIMEOUT),
                       "--no-progress", "--no-sandbox"])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0
    assert "WITHOUT the sandbox" in captured.out + captured.err
    row = next(o for o in read_report(hostile.course) if o.student_id == "correct")
    assert row.score == 3.0 and NO_SANDBOX in row.problem


def test_grading_stops_where_the_sandbox_cannot_start(tmp_path, monkeypatch, capsys):
    root = tmp_path / "course"
    demo.create(root, CONFIG)
    course = Course(root)
    generate(course, log=lambda *_: None)
    demo.write_submissions(root / "subs", course.release / "demo" / "demo.ipynb", ["correct"])
    monkeypatch.setattr(sandbox_mod, "bwrap_path", lambda: None)
    with pytest.raises(CourseError, match="bubblewrap"):
        grade(course, root / "subs", progress=False)
    assert cli.main(["--root", str(root), "grade", str(root / "subs"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "grading stopped" in err and "--no-sandbox" in err
    assert not course.submitted.exists() and not (course.autograder / "grading_report.csv").exists()


def test_a_launcher_never_removes_a_live_launchers_process_group(tmp_path):
    # Two notebooks graded at once: one launcher's clean-up of stale groups once removed the
    # other's group in the instant between creating it and moving in, and that kernel "died".
    live = tmp_path / f"{sandbox_mod.CGROUP_PREFIX}{os.getpid()}-abc"
    dead_pid = max(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()) + 10_000
    dead = tmp_path / f"{sandbox_mod.CGROUP_PREFIX}{dead_pid}-def"
    old_style = tmp_path / f"{sandbox_mod.CGROUP_PREFIX}xyz123"  # named before pids were
    for folder in (live, dead, old_style):
        folder.mkdir()
    sandbox_mod._remove_stale_cgroups(tmp_path)
    assert live.is_dir() and not dead.exists() and not old_style.exists()


def test_plain_nbgrader_autograde_judges_outside_the_kernel_too(tmp_path):
    """`nbgrader autograde` itself, from autograder/ (no circuitscope-course): the configuration's
    TrustedExecute judges the test cells, so a kernel that rewires its cell execution earns
    nothing, and an honest submission graded after it scores full marks."""
    _sandbox_or_skip()
    root = tmp_path / "course"
    demo.create(root, CONFIG)
    course = Course(root)
    generate(course, log=lambda *_: None)
    release = nbformat.read(course.release / "demo" / "demo.ipynb", as_version=4)
    cases = _hostile(root, 9)
    for student in ("run_cell_patch", "check_replacer", "zz_correct"):
        add, scale, _ = cases[student]
        nb = copy.deepcopy(release)
        _cell(nb, "add").source, _cell(nb, "scale").source = add, scale
        (course.submitted / student / "demo").mkdir(parents=True)
        nbformat.write(nb, course.submitted / student / "demo" / "demo.ipynb")
    result = course.nbgrader("autograde", "demo", "--create", env={"CIRCUITSCOPE_GRADE_TIMEOUT": str(CELL_TIMEOUT)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "judged test cell test_add" in result.stdout + result.stderr
    scores = {s: sum(score for score, _ in grades.values()) for s, grades in _gradebook_state(course).items()}
    assert scores == {"run_cell_patch": 0.0, "check_replacer": 0.0, "zz_correct": 3.0}
