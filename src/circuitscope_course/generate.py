"""``exercises/`` from ``solutions/``: generate the learner notebooks and check they are in sync.

Both use ``nbgrader generate_assignment`` unchanged, then :func:`normalize` the output so it is a
function of the sources alone (no editor timing metadata, one JSON layout, fixed permissions).
"""

from __future__ import annotations

import difflib
import filecmp
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import Course, CourseError

#: Cell metadata that records who ran what when: never part of an exercise.
VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")
#: Notebook metadata of the same kind.
VOLATILE_NOTEBOOK_METADATA = ("widgets", "toc-autonumbering", "varInspector")


def generate(course: Course, assignments: list[str] | None = None, log=print) -> list[str]:
    """Regenerate ``exercises/<assignment>/`` for each assignment (all by default).

    Also records the assignments in the gradebook, as ``nbgrader generate_assignment`` does.
    With no assignment named, release folders whose source is gone are removed.
    """
    names = course.require_assignments(assignments)
    if not names:
        raise CourseError(f"{course.source} has no assignments (folders holding a notebook)")
    for name in names:
        _generate_one(course, name, course.release)
        log(f"generated {course.release.name}/{name}/ from {course.source.name}/{name}/")
    if not assignments and course.release.is_dir():
        for stale in sorted(p for p in course.release.iterdir() if p.is_dir() and p.name not in names):
            shutil.rmtree(stale)
            log(f"removed {course.release.name}/{stale.name}/: {course.source.name}/{stale.name}/ is gone")
    return names


def _generate_one(course: Course, assignment: str, release_root: Path, db_url: str | None = None) -> Path:
    args = ["generate_assignment", assignment, "--force"]
    if release_root != course.release:
        args.append(f"--CourseDirectory.release_directory={release_root}")
    if db_url:
        args.append(f"--CourseDirectory.db_url={db_url}")
    result = course.nbgrader(*args)
    dest = release_root / assignment
    if result.returncode != 0 or not dest.is_dir():
        raise CourseError(
            f"nbgrader generate_assignment {assignment} failed (exit {result.returncode}):\n"
            + _tail(result.stdout + result.stderr)
        )
    normalize(dest)
    return dest


def normalize(folder: Path) -> None:
    """Make a generated release folder depend on its sources only (idempotent)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            if path.suffix == ".ipynb":
                nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
                for key in VOLATILE_NOTEBOOK_METADATA:
                    nb.metadata.pop(key, None)
                for cell in nb.cells:
                    for key in VOLATILE_CELL_METADATA:
                        cell.metadata.pop(key, None)
                text = nbformat.writes(nb)
                path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
            path.chmod(0o644)


@dataclass
class SyncReport:
    """What differs between ``exercises/`` and a fresh generation from ``solutions/``."""

    missing: list[str] = field(default_factory=list)  # generated, not in exercises/
    extra: list[str] = field(default_factory=list)  # in exercises/, not generated
    changed: dict[str, str] = field(default_factory=dict)  # path -> short diff

    @property
    def in_sync(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def summary(self, release_name: str = "exercises") -> str:
        if self.in_sync:
            return f"{release_name}/ is in sync with solutions/"
        lines = [f"{release_name}/ is out of sync with solutions/ (fix: circuitscope-course generate):"]
        lines += [f"  missing  {p}" for p in self.missing]
        lines += [f"  extra    {p}" for p in self.extra]
        for path, diff in self.changed.items():
            lines.append(f"  changed  {path}")
            lines += [f"      {line}" for line in diff.splitlines()]
        return "\n".join(lines)


def check_sync(course: Course, assignments: list[str] | None = None) -> SyncReport:
    """Generate every assignment into a temporary folder and compare it with ``exercises/``.

    Uses a temporary gradebook too, so checking changes nothing in the course.
    """
    names = course.require_assignments(assignments)
    report = SyncReport()
    with tempfile.TemporaryDirectory(prefix="circuitscope-sync-") as tmp:
        fresh = Path(tmp) / "release"
        for name in names:
            _generate_one(course, name, fresh, db_url=f"sqlite:///{Path(tmp) / 'gradebook.db'}")
        wanted = names if assignments else sorted(set(names) | _release_folders(course))
        for name in wanted:
            _compare(fresh / name, course.release / name, Path(course.release.name) / name, report)
    return report


def _release_folders(course: Course) -> set[str]:
    if not course.release.is_dir():
        return set()
    return {p.name for p in course.release.iterdir() if p.is_dir()}


def _files(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    }


def _compare(fresh: Path, current: Path, label: Path, report: SyncReport) -> None:
    new, old = _files(fresh), _files(current)
    report.missing += [str(label / p) for p in sorted(new - old)]
    report.extra += [str(label / p) for p in sorted(old - new)]
    for rel in sorted(new & old):
        a, b = current / rel, fresh / rel
        if not filecmp.cmp(a, b, shallow=False):
            report.changed[str(label / rel)] = _short_diff(a, b)


def _short_diff(current: Path, fresh: Path, limit: int = 12) -> str:
    if current.suffix == ".ipynb":
        try:
            return _notebook_diff(
                nbformat.read(current, as_version=4), nbformat.read(fresh, as_version=4), limit
            )
        except (OSError, ValueError, nbformat.reader.NotJSONError, nbformat.ValidationError):
            pass  # not a readable notebook: compare the text
    try:
        old = current.read_text(encoding="utf-8").splitlines()
        new = fresh.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return "(binary file differs)"
    diff = list(difflib.unified_diff(old, new, "committed", "generated", n=0, lineterm=""))[2:]
    more = len(diff) - limit
    return "\n".join(diff[:limit] + ([f"... {more} more changed lines"] if more > 0 else []))


def _notebook_diff(old, new, limit: int) -> str:
    """Which cells differ, and how: source first (what learners see), then ids and metadata."""
    lines = []
    if len(old.cells) != len(new.cells):
        lines.append(f"{len(old.cells)} cells committed, {len(new.cells)} generated")
    other = 0
    for i, (a, b) in enumerate(zip(old.cells, new.cells)):
        name = b.metadata.get("nbgrader", {}).get("grade_id") or b.cell_type
        if a.source != b.source or a.cell_type != b.cell_type:
            first = next(
                (x for x, y in zip(a.source.splitlines() + [""], b.source.splitlines() + [""]) if x != y), ""
            )
            lines.append(f"cell {i} ({name}): source differs, first at {first.strip()[:70]!r}")
        elif a.get("id") != b.get("id") or a.metadata != b.metadata:
            other += 1
    if other:
        lines.append(f"{other} cell(s) differ only in their id or metadata")
    if old.metadata != new.metadata:
        lines.append("notebook metadata differs")
    more = len(lines) - limit
    return "\n".join(lines[:limit] + ([f"... {more} more"] if more > 0 else [])) or "formatting differs"


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
