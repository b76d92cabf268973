"""Where the course lives and how its nbgrader commands are run.

A course is a folder laid out as this repository is::

    solutions/<assignment>/<notebook>.ipynb   nbgrader source notebooks
    exercises/<assignment>/                   generated learner versions
    autograder/nbgrader_config.py             nbgrader settings; every path is relative to it
    autograder/{submitted,autograded,feedback}/<student>/<assignment>/, autograder/gradebook.db

Every nbgrader command runs in a subprocess started in ``autograder/``, so nbgrader reads the
course's config file exactly as an instructor's ``cd autograder && nbgrader ...`` does.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: The file in autograder/ that holds the private key of the hidden cases.
HIDDEN_KEY_NAME = "hidden_key"

CONFIG_NAME = "nbgrader_config.py"
AUTOGRADER = "autograder"
SOURCE = "solutions"
RELEASE = "exercises"

#: Set in every grading kernel unless already set: no downloads, the CPU profile's sizes.
GRADING_ENV = {"CIRCUITSCOPE_OFFLINE": "1", "CIRCUITSCOPE_PROFILE": "cpu"}


class CourseError(RuntimeError):
    """A problem an instructor has to fix (a missing folder, an unknown assignment, ...)."""


@dataclass(frozen=True)
class Course:
    """A course folder: ``root`` holds ``solutions/``, ``exercises/`` and ``autograder/``."""

    root: Path

    @classmethod
    def find(cls, start: str | os.PathLike | None = None) -> Course:
        """The course containing ``start`` (default: the working directory), else this checkout's."""
        here = Path(start or os.getcwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / AUTOGRADER / CONFIG_NAME).is_file():
                return cls(folder)
        checkout = Path(__file__).resolve().parents[3]  # src/circuitscope_course/course.py
        if (checkout / AUTOGRADER / CONFIG_NAME).is_file():
            return cls(checkout)
        raise CourseError(
            f"no {AUTOGRADER}/{CONFIG_NAME} in {here} or any folder above it: "
            "run this from the course repository, or pass --root"
        )

    @property
    def autograder(self) -> Path:
        return self.root / AUTOGRADER

    @property
    def config_file(self) -> Path:
        return self.autograder / CONFIG_NAME

    @property
    def source(self) -> Path:
        return self.root / SOURCE

    @property
    def release(self) -> Path:
        return self.root / RELEASE

    @property
    def submitted(self) -> Path:
        return self.autograder / "submitted"

    @property
    def autograded(self) -> Path:
        return self.autograder / "autograded"

    @property
    def feedback(self) -> Path:
        return self.autograder / "feedback"

    @property
    def hidden_key_file(self) -> Path:
        """``autograder/hidden_key``: the private key that draws the graded hidden cases (never committed)."""
        return self.autograder / HIDDEN_KEY_NAME

    def make_hidden_key(self) -> Path:
        """Write a new private key, unless there is one: a new key would change the hidden cases
        between two gradings of the same class."""
        path = self.hidden_key_file
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        return path

    @property
    def db_path(self) -> Path:
        return self.autograder / "gradebook.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"

    def assignments(self) -> list[str]:
        """Assignment ids: the folders of ``solutions/`` that hold at least one notebook."""
        if not self.source.is_dir():
            return []
        return sorted(
            p.name for p in self.source.iterdir()
            if p.is_dir() and not p.name.startswith((".", "_")) and any(p.glob("*.ipynb"))
        )  # fmt: skip

    def notebooks(self, assignment: str) -> list[str]:
        """Notebook names (without ``.ipynb``) of an assignment's source."""
        return sorted(p.stem for p in (self.source / assignment).glob("*.ipynb"))

    def require_assignments(self, wanted: list[str] | None) -> list[str]:
        known = self.assignments()
        if not wanted:
            return known
        unknown = [a for a in wanted if a not in known]
        if unknown:
            raise CourseError(
                f"unknown assignment(s) {', '.join(unknown)}: "
                f"{SOURCE}/ has {', '.join(known) if known else 'no assignments yet'}"
            )
        return list(wanted)

    def nbgrader(self, *args: str, env: dict | None = None, timeout: float | None = None,
                 **kwargs) -> subprocess.CompletedProcess:  # fmt: skip
        """Run ``nbgrader ARGS`` from ``autograder/`` with this Python; output captured as text."""
        return subprocess.run(
            [sys.executable, "-m", "nbgrader", *args],
            check=False,
            cwd=self.autograder,
            env=self.environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,
        )

    def environment(self, extra: dict | None = None) -> dict:
        """The environment nbgrader runs in: grading defaults, and a kernel that is this Python."""
        env = dict(os.environ)
        # nbgrader runs the `alembic` script of its own environment (gradebook migrations).
        env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
        for key, value in GRADING_ENV.items():
            env.setdefault(key, value)
        # Kernels start from the "python3" kernelspec. One registered in the user's own Jupyter
        # folder could be another Python without circuitscope: JUPYTER_PATH comes first.
        env["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(_kernel_dir()), env.get("JUPYTER_PATH")]))
        env.update(extra or {})
        return env


_KERNEL_DIR: Path | None = None


def _kernel_dir() -> Path:
    """A Jupyter data folder holding a ``python3`` kernelspec for ``sys.executable``."""
    global _KERNEL_DIR
    if _KERNEL_DIR is None or not _KERNEL_DIR.is_dir():
        folder = Path(tempfile.mkdtemp(prefix="circuitscope-kernel-"))
        spec = folder / "kernels" / "python3"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "metadata": {"debugger": True},
        }))  # fmt: skip
        _KERNEL_DIR = folder
        atexit.register(shutil.rmtree, folder, True)
    return _KERNEL_DIR
