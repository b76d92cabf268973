"""Due dates, late penalties and per-student extensions, kept where nbgrader reads them.

* **Due date**: the gradebook's ``Assignment.duedate``, exactly what ``nbgrader db assignment add
  --duedate`` writes. A submission's time is its ``timestamp.txt`` (nbgrader's convention).
* **Penalty**: nbgrader's ``AssignLatePenalties`` (autograde step) asks a ``LateSubmissionPlugin``
  how many points a late notebook loses. :class:`CoursePenalty` is that plugin
  (``c.AssignLatePenalties.plugin_class`` in ``autograder/nbgrader_config.py``); it reads each
  assignment's method from ``autograder/deadlines.json``: ``none``, ``zero`` or ``per-day:P``
  (P percent of the notebook's score for each started day late). nbgrader's own plugin knows only
  ``none`` and ``zero``, for the whole course.
* **Extension**: nbgrader 0.9 keeps one per student and assignment in the gradebook
  (``SubmittedAssignment.extension``, set by ``Gradebook.grant_extension``), and every lateness it
  computes adds it to the due date. But that row only exists once the student has submitted, and
  nbgrader has no command for it. So an extension is recorded in ``deadlines.json`` when it is
  granted (before or after the student submits) and copied into the gradebook whenever the
  submission exists: by ``extend`` itself, by ``grade``, and by :class:`CoursePenalty` during a
  plain ``nbgrader autograde``. An extension set with nbgrader's API alone is left as it is.

``deadlines.json`` sits beside ``gradebook.db``; both name students, so neither belongs in git.
Changing a due date, a penalty or an extension recomputes the penalties already in the gradebook
(:func:`reapply`): no regrading needed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from nbgrader.plugins import LateSubmissionPlugin

from .course import Course, CourseError

FILE_NAME = "deadlines.json"
METHODS = ("none", "zero", "per-day")
_DAY = 24 * 3600
_STUDENT_ID = re.compile(r"^[^\s/\\]+$")
TIME_EXAMPLES = "'2026-12-20 23:59 UTC', '2026-12-20 23:59 Europe/Berlin' or '2026-12-20T23:59+01:00'"


# --- the penalty ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Penalty:
    """How a late notebook loses points: ``none``, ``zero`` or ``per-day:P``."""

    method: str = "none"
    percent: float = 0.0  # per started day late, for "per-day"

    @classmethod
    def parse(cls, text: str) -> Penalty:
        """``"none"``, ``"zero"`` or ``"per-day:10"``; anything else is a :class:`CourseError`."""
        method, _, value = str(text).strip().lower().partition(":")
        if method in ("none", "zero") and not value:
            return cls(method)
        if method == "per-day":
            try:
                percent = float(value)
            except ValueError:
                percent = -1.0
            if 0 < percent <= 100:
                return cls(method, percent)
        raise CourseError(
            f"unknown late penalty {text!r}: use none, zero, or per-day:P with P the percent of the "
            "score lost per started day late (0 < P <= 100), e.g. per-day:10"
        )

    def __str__(self) -> str:
        return f"per-day:{self.percent:g}" if self.method == "per-day" else self.method

    def describe(self) -> str:
        """The policy in words, for people."""
        if self.method == "zero":
            return "a late notebook scores 0"
        if self.method == "per-day":
            return f"{self.percent:g}% of the score per started day late"
        return "no penalty"

    def points(self, score: float, seconds_late: float) -> float:
        """Points a notebook that scored ``score`` loses when ``seconds_late`` late (0 to score)."""
        if seconds_late <= 0 or score <= 0 or self.method == "none":
            return 0.0
        if self.method == "zero":
            return float(score)
        days = math.ceil(seconds_late / _DAY)
        return min(float(score), round(score * self.percent / 100 * days, 4))


# --- times ---------------------------------------------------------------------------------------


def parse_time(text: str) -> dt.datetime:
    """A moment written with its time zone, as the gradebook keeps it (naive UTC).

    nbgrader's parser (``nbgrader.utils.parse_utc``) reads it; a time without a zone, or with a
    zone it does not know, is refused here instead of being taken silently as UTC.
    """
    import dateutil.parser
    import dateutil.tz
    from nbgrader.utils import parse_utc

    parts = str(text).strip().split(" ")
    try:
        if len(parts) == 3:  # "DATE TIME ZONE", nbgrader's form
            zone = parts[2]
            if re.fullmatch(r"[+-]?\d+", zone):
                # nbgrader reads a bare number as seconds east of UTC ("+0100" as 100 s)
                raise ValueError(f"write an offset without the space, e.g. {parts[0]} {parts[1]}+01:00")
            if dateutil.tz.gettz(zone) is None:
                raise ValueError(f"unknown time zone {zone!r}")
        elif dateutil.parser.parse(text).tzinfo is None:
            raise ValueError("it has no time zone")
        return parse_utc(text)
    except (ValueError, OverflowError) as err:
        raise CourseError(f"cannot read the time {text!r} ({err}): write it with its time zone, "
                          f"e.g. {TIME_EXAMPLES}") from None  # fmt: skip


def show_time(moment: dt.datetime | None) -> str:
    """A gradebook time (naive UTC) for people: ``2026-12-20 23:59 UTC``."""
    return "none" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def show_duration(seconds: float) -> str:
    """``2 d 3 h 5 min``, to the minute (a few seconds late is ``1 min``)."""
    minutes = max(1, math.ceil(seconds / 60)) if seconds > 0 else 0
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    return " ".join(p for p in parts if p) or "0 min"


# --- deadlines.json ------------------------------------------------------------------------------


class Deadlines:
    """``deadlines.json`` beside the gradebook: each assignment's penalty, each student's extension.

    ``{"penalties": {"ch1": "per-day:10"},
       "extensions": {"ch1": {"alice": {"hours": 48}, "bob": {"until": "2026-12-24T12:00:00"}}}}``
    (``until``: naive UTC, as the gradebook keeps times).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        data = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise CourseError(f"{self.path} is not readable JSON ({err}): fix or delete it") from None
        self.penalties: dict[str, str] = dict(data.get("penalties", {}))
        self.extensions: dict[str, dict[str, dict]] = {
            a: dict(e) for a, e in data.get("extensions", {}).items()
        }

    @classmethod
    def of(cls, course: Course) -> Deadlines:
        return cls.beside(course.db_path)

    @classmethod
    def beside(cls, gradebook: str | os.PathLike) -> Deadlines:
        """The file beside a gradebook, given its path or its ``sqlite:///`` URL."""
        return cls(Path(str(gradebook).removeprefix("sqlite:///")).parent / FILE_NAME)

    def save(self) -> None:
        data = {"penalties": self.penalties, "extensions": {a: e for a, e in self.extensions.items() if e}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self.path)  # never half a file, even if interrupted

    def penalty(self, assignment: str) -> Penalty:
        return Penalty.parse(self.penalties.get(assignment, "none"))

    def extension(self, assignment: str, student: str, duedate: dt.datetime | None) -> dt.timedelta | None:
        """The student's extension past ``duedate``, or None if none was granted here."""
        entry = self.extensions.get(assignment, {}).get(student)
        if entry is None:
            return None
        if "until" in entry:
            if duedate is None:
                return None  # no due date: nothing to extend
            return max(dt.timedelta(0), dt.datetime.fromisoformat(entry["until"]) - duedate)
        return dt.timedelta(hours=float(entry["hours"]))


# --- the gradebook -------------------------------------------------------------------------------


def sync_extension(gb, store: Deadlines, assignment: str, student: str) -> None:
    """Copy the student's extension from ``store`` into the gradebook's submission, if both exist."""
    from nbgrader.api import MissingEntry

    if student not in store.extensions.get(assignment, {}):
        return  # none granted here: an extension set with nbgrader's API stays
    try:
        sub = gb.find_submission(assignment, student)
    except MissingEntry:
        return  # not submitted yet: copied when it is
    extension = store.extension(assignment, student, sub.assignment.duedate)
    if sub.extension != extension:
        sub.extension = extension
        gb.db.commit()


def reapply(gb, store: Deadlines, assignment: str) -> None:
    """Recompute every late penalty of ``assignment`` in the gradebook from its scores now.

    The same rule as :class:`CoursePenalty` at autograde time, so a new due date, penalty or
    extension, or a score changed by hand (formgrader), takes effect without regrading.
    """
    penalty = store.penalty(assignment)
    for sub in gb.assignment_submissions(assignment):
        sync_extension(gb, store, assignment, sub.student.id)
        late = sub.total_seconds_late
        for nb in sub.notebooks:
            points = penalty.points(float(nb.score), late)
            nb.late_submission_penalty = points if late > 0 and penalty.method != "none" else None
    gb.db.commit()


@dataclass(frozen=True)
class Lateness:
    """When a submission was due (the student's own due date) and how late it came."""

    due: dt.datetime | None  # extension included
    submitted: dt.datetime | None
    extension: dt.timedelta | None
    seconds_late: float
    penalty: Penalty

    def describe(self) -> str:
        """For the instructor: ``1 d 2 h late (due 2026-12-22 23:59 UTC, extension 2 d included): penalty
        per-day:10``; '' when on time."""
        if self.seconds_late <= 0:
            return ""
        due = show_time(self.due)
        if self.extension:
            due += f", extension {show_duration(self.extension.total_seconds())} included"
        return f"{show_duration(self.seconds_late)} late (due {due}): penalty {self.penalty}"

    def for_student(self, penalty_points: float) -> str:
        """One sentence for the learner's feedback page ('' when there is no due date)."""
        if self.due is None:
            return ""
        due = f"Due {show_time(self.due)}"
        if self.extension:
            due += f" (your extension of {show_duration(self.extension.total_seconds())} included)"
        if self.submitted is None:
            return f"{due}; no submission time was recorded, so it counts as on time."
        when = f"submitted {show_time(self.submitted)}"
        if self.seconds_late <= 0:
            return f"{due}; {when}: on time."
        text = (
            f"{due}; {when}: {show_duration(self.seconds_late)} late. Late policy: {self.penalty.describe()}"
        )
        return text + (f", so {penalty_points:g} point(s) are taken off." if penalty_points > 0 else ".")


def lateness(gb, store: Deadlines, assignment: str, student: str) -> Lateness:
    """The student's :class:`Lateness` on ``assignment``, from the gradebook (submission needed)."""
    sub = gb.find_submission(assignment, student)
    return Lateness(sub.duedate, sub.timestamp, sub.extension, float(sub.total_seconds_late),
                    store.penalty(assignment))  # fmt: skip


# --- nbgrader's plugin ---------------------------------------------------------------------------


class CoursePenalty(LateSubmissionPlugin):
    """The late penalty of ``circuitscope-course due --penalty``, for nbgrader's AssignLatePenalties.

    nbgrader calls it (``c.AssignLatePenalties.plugin_class``) for each late notebook with the
    student, the score and the seconds late. nbgrader's own ``penalty_method`` setting is not
    used: each assignment's method comes from ``deadlines.json``. An extension granted there
    before the student submitted is copied into the gradebook first, and the lateness recomputed.
    """

    def late_submission_penalty(
        self, student_id: str, score: float, total_seconds_late: float
    ) -> float | None:
        owner = self.parent  # AssignLatePenalties: it knows the assignment and holds the gradebook open
        assignment, gb = getattr(owner, "assignment_id", None), getattr(owner, "gradebook", None)
        if assignment is None or gb is None:
            raise CourseError("CoursePenalty runs inside nbgrader's AssignLatePenalties (autograde step)")
        store = Deadlines.beside(owner.db_url)
        sync_extension(gb, store, assignment, student_id)
        seconds = gb.find_submission(assignment, student_id).total_seconds_late
        penalty = store.penalty(assignment)
        self.log.info("late penalty for %s/%s: %s, %.0f s late", student_id, assignment, penalty, seconds)
        if seconds <= 0 or penalty.method == "none":
            return None
        return penalty.points(score, seconds)


# --- the commands --------------------------------------------------------------------------------


def set_due(course: Course, assignment: str, when: str | None = None, penalty: str | None = None,
            clear: bool = False) -> str:  # fmt: skip
    """Set (or ``clear``) an assignment's due date and/or its penalty; returns what it is now."""
    from nbgrader.api import Gradebook

    (assignment,) = course.require_assignments([assignment])
    _require_gradebook(course)
    store = Deadlines.of(course)
    if penalty is not None:
        store.penalties[assignment] = str(Penalty.parse(penalty))
    duedate = None if clear or when is None else parse_time(when)
    with Gradebook(course.db_url, "circuitscope") as gb:
        if clear or when is not None:
            # nbgrader's own `db assignment add --duedate`: the assignment row, created if need be
            row = gb.update_or_create_assignment(assignment)
            row.duedate = duedate
            gb.db.commit()
        store.save()
        reapply(gb, store, assignment)
        return describe_assignment(gb, store, assignment)


def extend(course: Course, student: str, assignment: str, *, hours: float | None = None,
           until: str | None = None, remove: bool = False) -> str:  # fmt: skip
    """Grant (or ``remove``) a student's extension: ``hours`` past the due date, or ``until`` a time."""
    from nbgrader.api import Gradebook, MissingEntry

    (assignment,) = course.require_assignments([assignment])
    _require_gradebook(course)
    if not _STUDENT_ID.match(student):
        raise CourseError(f"not a student id: {student!r} (no spaces or slashes)")
    if [hours is not None, until is not None, bool(remove)].count(True) != 1:
        raise CourseError("give exactly one of --hours H, --until TIME or --remove")
    store = Deadlines.of(course)
    granted = store.extensions.setdefault(assignment, {})
    with Gradebook(course.db_url, "circuitscope") as gb:
        if remove:
            granted.pop(student, None)
            try:
                gb.grant_extension(assignment, student)  # nbgrader's way: no duration removes it
            except MissingEntry:
                pass
        elif hours is not None:
            if not 0 < hours <= 24 * 365:
                raise CourseError(f"--hours must be more than 0 (and at most a year), not {hours:g}")
            granted[student] = {"hours": float(hours)}
        else:
            moment = parse_time(until)
            due = _duedate(gb, assignment)
            if due is not None and moment <= due:
                raise CourseError(f"--until {until!r} is not after the due date ({show_time(due)})")
            granted[student] = {"until": moment.isoformat()}
        store.save()
        reapply(gb, store, assignment)
        return describe_assignment(gb, store, assignment, only=student)


def describe_assignment(gb, store: Deadlines, assignment: str, only: str | None = None) -> str:
    """The due date, penalty and extensions of one assignment (or of one student), in a few lines."""
    due, penalty = _duedate(gb, assignment), store.penalty(assignment)
    lines = [f"{assignment}: due {show_time(due)}, late penalty {penalty} ({penalty.describe()})"]
    if due is None and (store.extensions.get(assignment) or penalty.method != "none"):
        lines.append("  no due date yet: nothing is late until you set one")
    granted = store.extensions.get(assignment, {})
    for student in sorted(s for s in granted if only in (None, s)):
        extension = store.extension(assignment, student, due)
        if extension is None:  # "until" a time, and no due date to count from
            lines.append(f"  extension for {student}: until {granted[student]['until']} UTC")
        else:
            mine = f", so due {show_time(due + extension)}" if due is not None else ""
            lines.append(f"  extension for {student}: {show_duration(extension.total_seconds())}{mine}"
                         f"{_submitted_note(gb, assignment, student)}")  # fmt: skip
    if only is not None and only not in granted:
        lines.append(f"  {only}: no extension")
    return "\n".join(lines)


def describe_all(course: Course) -> str:
    """``describe_assignment`` for every assignment of the course."""
    from nbgrader.api import Gradebook

    _require_gradebook(course)
    store = Deadlines.of(course)
    with Gradebook(course.db_url, "circuitscope") as gb:
        return "\n".join(describe_assignment(gb, store, a) for a in course.assignments())


def _require_gradebook(course: Course) -> None:
    # Opening a missing gradebook would create it, which needs nbgrader's `alembic` on PATH.
    if not course.db_path.is_file():
        raise CourseError(f"no gradebook at {course.db_path} yet: run `circuitscope-course generate` first "
                          "(it records the assignments there)")  # fmt: skip


def _duedate(gb, assignment: str) -> dt.datetime | None:
    from nbgrader.api import MissingEntry

    try:
        return gb.find_assignment(assignment).duedate
    except MissingEntry:
        return None


def _submitted_note(gb, assignment: str, student: str) -> str:
    from nbgrader.api import MissingEntry

    try:
        gb.find_submission(assignment, student)
    except MissingEntry:
        return " (nothing graded from them yet: it applies when it is)"
    return ""
