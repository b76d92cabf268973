"""Canvas and Moodle in and out: collect a submissions download, import a roster, return grades
and feedback in the files each LMS imports.

The file names below are the LMSs' own, read from their source code (2024-25):

**Canvas**, *Download Submissions* (``lib/content_zipper.rb``): one flat file per uploaded file,
``<name>[_LATE]_<user id>_<file id>_<file name>``. ``<name>`` is the sortable name ("Lovelace, Ada")
lower-cased with every non-word character removed (``lovelaceada``); ``LATE`` (``late`` in older
Canvas) marks a submission after its due date; anonymous grading writes ``[LATE_]anon_<anonymous
id>`` instead of name and user id. A text entry or a URL is ``..._<user id>_text.html`` /
``_link.html``. A file uploaded again under the same name is renamed by Canvas (``demo-1.ipynb``).
The zip carries **no submission time** (its entry times are when the zip was made): only ``LATE``.
*Re-Upload Submissions* (``Assignment#generate_comments_from_files``) attaches each file of a zip
as a comment to a submission: the first all-digit ``_``-separated part of its name is the user
id, the second the id of a file of that user's submission (so feedback is named
``<name>_<user id>_<file id>_<notebook>_feedback.html``). *Import* in the gradebook
(``lib/gradebook_importer.rb``) reads ``Student, ID, SIS User ID, SIS Login ID, Section``, then one
column per assignment (its title, or ``Title (assignment id)``), and an optional ``Points
Possible`` row; a student is found by ``ID`` (Canvas user id), then the SIS ids, then the name.

**Moodle**, *Download all submissions* (``mod/assign/locallib.php``): per student, a folder
``<Full Name>_<participant id>_assignsubmission_file_/<file name>`` (Moodle >= 4.1 drops the last
``_``; Moodle <= 3.0, or "download submissions in folders" off, prefixes flat files the same way).
The participant id is Moodle's per-assignment id of the student (the grading worksheet's
"Participant <id>"); with blind marking the name is "Participant"; ``_`` in names become spaces.
The zip carries no submission time (its entry times come from Moodle's file store, not the submission).
*Upload grading worksheet* (``assignfeedback_offline``) needs the columns ``Identifier``
(``Participant <id>``), ``Grade`` and ``Last modified (grade)``. *Upload multiple feedback files in
a zip* (``assignfeedback_file``) reads ``<name>_<participant id>_assignfeedback_file_<file name>``.

nbgrader has ``nbgrader zip_collect`` (a file-name regex per LMS). It is not used here because it
writes only into ``submitted/``, reports a file it cannot place only as a log warning (and by
default copies a wrongly named notebook anyway), stops on two files for one notebook when the
download has no times (Canvas and Moodle have none), cannot map LMS names to a roster, and keeps
no record of the LMS ids needed to send grades and feedback back.

Where each thing is kept: the normalised submissions in ``<into>/<student>/<assignment>/`` (by
default ``autograder/submitted/``, nbgrader's own); per assignment, ``autograder/lms-<assignment>.csv``
records who was who in the LMS (ignored by git, like every CSV in ``autograder/``); a roster goes
into the gradebook (``Student``: id, names, email, ``lms_user_id`` = the Canvas user id).
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import shutil
import sys
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from .course import Course, CourseError

COURSE_ID = "circuitscope"  # nbgrader's course id (nbgrader_config.py), as grading opens the gradebook
CANVAS, MOODLE = "canvas", "moodle"
LMSES = (CANVAS, MOODLE)

#: nbgrader's own format for ``timestamp.txt`` (``Exchange.timestamp_format``), read by ``parse_utc``.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"

# Canvas's names (see the module docstring). The anonymous form is tried first: an all-digit
# anonymous id would otherwise read as a user id.
_CANVAS_ANON = re.compile(
    r"^(?:(?P<late>late)_)?anon_(?P<id>[a-z0-9]+)_(?P<file_id>\d+)_(?P<file>.+)$", re.IGNORECASE
)
_CANVAS = re.compile(
    r"^(?P<name>\w+?)(?:_(?P<late>late))?_(?P<id>\d+)_(?P<file_id>\d+)_(?P<file>.+)$", re.IGNORECASE
)
_CANVAS_TEXT = re.compile(r"^(?P<name>\w+?)(?:_late)?_(?P<id>\d+)_(?P<kind>text|link)\.html$", re.IGNORECASE)
# Moodle's: a folder (with or without the last "_") or a flat file, after the plugin's name.
_MOODLE = re.compile(
    r"^(?P<name>[^/]+?)_(?P<id>\d+)_(?P<plugin>assignsubmission_[a-z]+)(?:_?/(?P<path>.+)|_(?P<flat>[^/]+))$"
)
# What an LMS or a file manager appends to a file uploaded twice: "demo-1.ipynb", "demo (2).ipynb".
_COPY_SUFFIX = re.compile(r"^(?P<stem>.+?)(?:-\d+| \(\d+\))+$")
_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


def _key(text: str) -> str:
    """A name as both LMSs reduce it: case-folded, letters and digits only ("Lovelace, Ada" -> lovelaceada)."""
    return re.sub(r"[\W_]+", "", unicodedata.normalize("NFC", text).casefold())


def slug(text: str) -> str:
    """A student id made from an LMS name: ASCII letters, digits and ``-`` ("Ada Lovelace" -> ada-lovelace)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


# --- the files of a download -------------------------------------------------------------------


@dataclass(frozen=True)
class LmsFile:
    """One file of a download, with what its name says about who sent it."""

    entry: str  # its path in the zip
    lms: str
    lms_name: str  # "lovelaceada" (Canvas), "Ada Lovelace" (Moodle), "" when anonymous
    lms_id: str  # the Canvas user id ("anon_<id>" when anonymous), the Moodle participant id
    filename: str  # the name the student gave it, as the LMS kept it ("demo-1.ipynb")
    file_id: str = ""  # Canvas's id of the uploaded file
    late: bool = False
    timestamp: tuple = ()  # the zip entry's date_time, only to order two uploads of one file

    @property
    def who(self) -> str:
        return f"{self.lms_name or 'anonymous'} ({self.lms} id {self.lms_id})"


def parse_canvas(entry: str) -> LmsFile | str:
    """The :class:`LmsFile` a Canvas download calls ``entry``, or why it is not one."""
    name = PurePosixPath(entry).name
    text = _CANVAS_TEXT.match(name)
    if text:
        return f"a Canvas {text['kind']} entry, not an uploaded file: it cannot be graded"
    anon = _CANVAS_ANON.match(name)
    if anon:
        return LmsFile(
            entry, CANVAS, "", f"anon_{anon['id']}", anon["file"], anon["file_id"], bool(anon["late"])
        )
    match = _CANVAS.match(name)
    if not match:
        return "not named as Canvas names submissions (<name>_<user id>_<file id>_<file name>)"
    return LmsFile(
        entry, CANVAS, match["name"], match["id"], match["file"], match["file_id"], bool(match["late"])
    )


def parse_moodle(entry: str) -> LmsFile | str:
    """The :class:`LmsFile` a Moodle download calls ``entry``, or why it is not one.

    A folder around the whole download (a re-zipped one) is skipped over.
    """
    parts = PurePosixPath(entry).parts
    for start in range(len(parts)):
        match = _MOODLE.match("/".join(parts[start:]))
        if match:
            break
    else:
        return (
            "not named as Moodle names submissions (<Full Name>_<participant id>_assignsubmission_file_/...)"
        )
    if match["plugin"] != "assignsubmission_file":
        return f"Moodle's {match['plugin']} (not an uploaded file): it cannot be graded"
    name = "" if match["name"].casefold() == "participant" else match["name"]  # blind marking
    filename = PurePosixPath(match["path"] or match["flat"]).name
    return LmsFile(entry, MOODLE, name, match["id"], filename)


PARSERS = {CANVAS: parse_canvas, MOODLE: parse_moodle}


def detect(entries: list[str]) -> str:
    """Which LMS made a download: the one whose names fit most of its files."""
    counts = {lms: sum(isinstance(PARSERS[lms](e), LmsFile) for e in entries) for lms in LMSES}
    best = max(LMSES, key=lambda lms: counts[lms])
    if counts[best] == 0:
        shown = ", ".join(entries[:3]) or "no files"
        raise CourseError(
            f"this zip is neither a Canvas nor a Moodle submissions download ({shown}). Give --lms if it "
            "is one, or put the notebooks into <student>/<assignment>/<notebook>.ipynb by hand"
        )
    return best


def notebook_for(filename: str, expected: list[str]) -> str | None:
    """The expected notebook a submitted file name stands for ("demo-1.ipynb" -> demo), else None."""
    path = PurePosixPath(filename)
    if path.suffix.lower() != ".ipynb":
        return None
    if path.stem in expected:
        return path.stem
    plain = _COPY_SUFFIX.match(path.stem)
    if plain and plain["stem"] in expected:
        return plain["stem"]
    return None


# --- rosters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Student:
    """A student of the roster: their gradebook id and what the LMS knows them by."""

    id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    lms_user_id: str = ""  # the Canvas user id (Canvas's gradebook export: "ID")

    def name_keys(self) -> set[str]:
        """The student's name as Canvas ("lastfirst") and Moodle ("first last") write it, reduced."""
        keys = {_key(self.first_name + self.last_name), _key(self.last_name + self.first_name)}
        return keys - {""}

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)


# Column names, reduced by _column: nbgrader's ("id", "first_name"), Canvas's gradebook export
# ("Student", "ID", "SIS User ID", "SIS Login ID", or "LastName", "FirstName"), Moodle's exports
# ("First name", "Last name", "ID number", "Username", "Email address", "Full name").
# A student's gradebook id is the first non-empty of these; Canvas's "ID" is its own user id,
# not a student id, so it is one only in a file that is not a Canvas export.
_ID_COLUMNS = ("studentid", "sisuserid", "idnumber", "sisloginid", "username", "login")
_LMS_ID_COLUMNS = ("lmsuserid", "lmsid", "canvasid", "canvasuserid")
_FIRST = ("firstname", "first", "givenname")
_LAST = ("lastname", "last", "surname", "familyname")
_EMAIL = ("email", "emailaddress", "mail")


def _column(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


def _first(row: dict, names: tuple[str, ...]) -> str:
    return next((row[n].strip() for n in names if (row.get(n) or "").strip()), "")


def read_roster(path: str | Path) -> tuple[list[Student], list[str]]:
    """The students of a roster CSV, and a line for each row left out (and why).

    Accepted: nbgrader's columns (``id, first_name, last_name, email[, lms_user_id]``), Canvas's
    gradebook export (``Student`` = "Last, First", ``ID`` = Canvas user id, ``SIS User ID``...) and
    Moodle's participant or grade exports (``First name``, ``Last name``, ``ID number``, ``Email
    address``, or ``Full name``). The student id is the first of: student id, SIS User ID, ID
    number, SIS Login ID, username, ``id``; without any, a slug of the name as the LMS writes it.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [{_column(k): (v or "") for k, v in row.items() if k} for row in csv.DictReader(fh)]
    except OSError as err:
        raise CourseError(f"cannot read the roster {path}: {err.strerror or err}") from None
    columns = set(rows[0]) if rows else set()
    canvas = "id" in columns and bool(columns & {"student", "sisuserid", "sisloginid"})  # Canvas's export
    id_columns = _ID_COLUMNS if canvas else (*_ID_COLUMNS, "id")
    lms_columns = (*_LMS_ID_COLUMNS, "id") if canvas else _LMS_ID_COLUMNS
    if rows and not columns & {*id_columns, *_FIRST, *_LAST, "student", "fullname"}:
        raise CourseError(
            f"{path} has no column naming students (found: {', '.join(sorted(columns))}). Expected "
            "id, first_name, last_name, email (or a Canvas or Moodle export of the class)"
        )
    students, skipped, seen = [], [], {}
    for number, row in enumerate(rows, start=2):
        first, last = _first(row, _FIRST), _first(row, _LAST)
        if not (first or last) and row.get("student", "").strip():
            last, _, first = (p.strip() for p in row["student"].partition(","))  # "Last, First"
        if not (first or last) and row.get("fullname", "").strip():
            first, _, last = row["fullname"].strip().rpartition(" ")
        label = f"{path.name}, row {number}"
        if "points possible" in row.get("student", "").lower() or not any(v.strip() for v in row.values()):
            continue  # Canvas's second row, blank lines: not students
        if (last, first) == ("Student", "Test"):
            skipped.append(f"{label}: Canvas's test student (Student View), left out")
            continue
        student_id = _first(row, id_columns) or slug(last + first if canvas else f"{first} {last}")
        if not student_id:
            skipped.append(f"{label}: no id and no name, left out")
            continue
        if not _VALID_ID.match(student_id):
            raise CourseError(
                f"{label}: {student_id!r} cannot be a student id (it names a folder: letters, digits "
                "and . _ @ + - only, no spaces). Fix the roster"
            )
        if student_id in seen:
            raise CourseError(f"{label}: student id {student_id!r} is already on row {seen[student_id]}")
        seen[student_id] = number
        students.append(Student(student_id, first, last, _first(row, _EMAIL), _first(row, lms_columns)))
    return students, skipped


def _gradebook(course: Course):
    """nbgrader's gradebook of the course (made if missing), as the rest of the course opens it."""
    from nbgrader.api import Gradebook

    if not course.db_path.is_file() and shutil.which("alembic") is None:
        # nbgrader stamps a new gradebook by running `alembic`, a script of its own environment
        # (the one this Python runs in), which a shell that did not activate it lacks.
        os.environ["PATH"] = os.pathsep.join(
            filter(None, [str(Path(sys.executable).parent), os.environ.get("PATH")])
        )
    course.db_path.parent.mkdir(parents=True, exist_ok=True)
    return Gradebook(course.db_url, COURSE_ID)


def gradebook_roster(course: Course) -> list[Student]:
    """The students in the course's gradebook (none if there is no gradebook yet)."""
    if not course.db_path.is_file():
        return []
    with _gradebook(course) as gb:
        return [
            Student(s.id, s.first_name or "", s.last_name or "", s.email or "", s.lms_user_id or "")
            for s in gb.students
        ]


@dataclass
class RosterImport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            (
                f"roster: {len(self.added)} student(s) added, {len(self.updated)} updated, "
                f"{len(self.unchanged)} unchanged"
            ),
            *self.skipped,
        ]


def import_roster(course: Course, path: str | Path) -> RosterImport:
    """Put the students of a roster CSV (:func:`read_roster`) into the gradebook.

    Through nbgrader's ``Gradebook.update_or_create_student``; importing the same file again
    changes nothing. An empty cell never erases what the gradebook holds.
    """
    from nbgrader.api import MissingEntry

    students, skipped = read_roster(path)
    result = RosterImport(skipped=skipped)
    fields_ = ("first_name", "last_name", "email", "lms_user_id")
    with _gradebook(course) as gb:
        for student in students:
            values = {f: getattr(student, f) for f in fields_ if getattr(student, f)}
            try:
                old = gb.find_student(student.id)
            except MissingEntry:
                result.added.append(student.id)
            else:
                changed = any((getattr(old, f) or "") != v for f, v in values.items())
                (result.updated if changed else result.unchanged).append(student.id)
                if not changed:
                    continue
            gb.update_or_create_student(student.id, **values)
    return result


# --- collecting --------------------------------------------------------------------------------


@dataclass
class Collected:
    """What :func:`collect` did with each file of a download."""

    assignment: str
    lms: str
    dest: Path
    placed: dict[str, list[str]] = field(default_factory=dict)  # student -> files written
    late: dict[str, str] = field(default_factory=dict)  # student -> what timestamp.txt says ("" if none)
    unplaced: list[tuple[str, str]] = field(default_factory=list)  # (file in the zip, why)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        notebooks = sum(f.endswith(".ipynb") for files in self.placed.values() for f in files)
        out = [
            f"collected {notebooks} notebook(s) of {self.assignment} from {len(self.placed)} student(s) "
            + f"({self.lms}) into {self.dest}"
        ]
        for student, stamp in sorted(self.late.items()):
            out.append(
                f"late: {student} ({self.lms} marks it late)" + (f"; timestamp.txt: {stamp}" if stamp else "")
            )
        out += self.notes
        if self.unplaced:
            out.append(f"could not place {len(self.unplaced)} file(s):")
            out += [f"  {entry}: {why}" for entry, why in self.unplaced]
        return out


def collect(
    course: Course,
    zip_path: str | Path,
    assignment: str,
    *,
    roster: str | Path | None = None,
    into: str | Path | None = None,
    lms: str = "auto",
) -> Collected:
    """Normalise an LMS download into ``<into>/<student>/<assignment>/<notebook>.ipynb``.

    ``roster`` (a CSV, :func:`read_roster`; default: the gradebook's students) maps Canvas user
    ids, then LMS names, to student ids; a student on no roster gets :func:`slug` of the LMS name
    ("lovelaceada", "ada-lovelace"; "participant-<id>" under blind marking). Copy suffixes are
    stripped (``demo-1.ipynb`` -> ``demo.ipynb``); a student's other files go beside the notebook.
    Every file that is not placed is listed with the reason (:attr:`Collected.unplaced`): a
    notebook of another name, a second upload of one notebook (the later is kept), text entries.
    A student's folder in ``into`` is replaced; other students' are left alone.

    Canvas's ``LATE`` marker is kept: ``timestamp.txt`` (nbgrader's submission time) says one
    second after the assignment's due date in the gradebook: the least it can be late, since the
    download has no times (check Canvas and edit the file for a time-based penalty). Without a due
    date the lateness is only reported.
    """
    expected = course.notebooks(course.require_assignments([assignment])[0])
    if lms not in (*LMSES, "auto"):
        raise CourseError(f"unknown LMS {lms!r}: use canvas, moodle or auto")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as err:
        raise CourseError(f"cannot read {zip_path} as a zip file: {err}") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        lms = detect([i.filename for i in infos]) if lms == "auto" else lms
        result = Collected(assignment, lms, Path(into) if into is not None else course.submitted)
        files = []
        for info in infos:
            parsed = PARSERS[lms](info.filename)
            if isinstance(parsed, str):
                result.unplaced.append((info.filename, parsed))
            else:
                files.append(dataclasses.replace(parsed, timestamp=info.date_time))
        known = read_roster(roster)[0] if roster else gradebook_roster(course)
        stamp = _late_timestamp(course, assignment)
        manifest = []
        for (lms_id, student), mine in sorted(_identify(files, known, result).items(), key=lambda i: i[0][1]):
            chosen = _choose(mine, expected, student, result)
            late = any(f.late for f in mine)
            if chosen:
                _write_submission(archive, result, student, chosen, stamp if late else None)
            # Canvas attaches returned feedback to the submission holding this file id: any of theirs.
            file_id = next((f.file_id for f in (*chosen.values(), *mine) if f.file_id), "")
            manifest.append({"lms": lms, "student_id": student, "lms_name": mine[0].lms_name,
                             "lms_id": lms_id, "file_id": file_id, "late": int(late)})  # fmt: skip
    if result.late and not stamp:
        result.notes.append(
            f"the gradebook has no due date for {assignment}, so the late submissions above carry no "
            "timestamp.txt: set the due date, then collect again"
        )
    _write_manifest(course, assignment, lms, manifest)
    return result


def _late_timestamp(course: Course, assignment: str) -> str:
    """``timestamp.txt`` for a submission the LMS marks late: 1 s after the due date ('' without one)."""
    due = _due_date(course, assignment)
    if due is None:
        return ""
    return (due + timedelta(seconds=1)).replace(tzinfo=UTC).strftime(TIMESTAMP_FORMAT)


def _write_submission(archive, result: Collected, student: str, chosen: dict, stamp: str | None) -> None:
    """``<dest>/<student>/<assignment>/``: the chosen files, and ``timestamp.txt`` when late."""
    folder = result.dest / student / result.assignment
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, item in sorted(chosen.items()):
        (folder / name).write_bytes(archive.read(item.entry))
    if stamp is not None:
        if stamp:
            (folder / "timestamp.txt").write_text(stamp + "\n", encoding="utf-8")
        result.late[student] = stamp
    result.placed[student] = sorted(chosen)


def _identify(
    files: list[LmsFile], roster: list[Student], result: Collected
) -> dict[tuple[str, str], list[LmsFile]]:
    """(LMS id, student id) -> that student's files: by roster LMS id, then unique name, else a slug."""
    by_lms_id = {s.lms_user_id: s.id for s in roster if s.lms_user_id}
    by_name: dict[str, set[str]] = {}
    for student in roster:
        for key in student.name_keys():
            by_name.setdefault(key, set()).add(student.id)
    groups: dict[str, list[LmsFile]] = {}
    for f in files:
        groups.setdefault(f.lms_id, []).append(f)
    owner: dict[str, str] = {}
    for lms_id, mine in groups.items():
        first = mine[0]
        matches = by_name.get(_key(first.lms_name), set()) if first.lms_name else set()
        if first.lms == CANVAS and lms_id in by_lms_id:  # Moodle's participant ids differ per assignment
            owner[lms_id] = by_lms_id[lms_id]
        elif len(matches) == 1:
            owner[lms_id] = next(iter(matches))
        else:
            if matches:
                result.notes.append(f"{first.who}: the roster has {len(matches)} students of that name "
                                    f"({', '.join(sorted(matches))}); give Canvas ids in the roster")  # fmt: skip
            owner[lms_id] = _fallback_id(first)
    claimed: dict[str, int] = {}
    for student in owner.values():
        claimed[student] = claimed.get(student, 0) + 1
    out = {}
    for lms_id, student in owner.items():
        if claimed[student] > 1:  # two LMS users, one id: keep them apart
            result.notes.append(f"{groups[lms_id][0].who} is one of {claimed[student]} LMS users that map to "
                                f"{student!r}: collected as {student}-{slug(lms_id)}; give a roster")  # fmt: skip
            student = f"{student}-{slug(lms_id)}"
        out[(lms_id, student)] = groups[lms_id]
    return out


def _fallback_id(f: LmsFile) -> str:
    """The student id of someone on no roster: the LMS name as a slug, or the LMS id when anonymous."""
    if f.lms_name and slug(f.lms_name):
        return slug(f.lms_name)
    if f.lms == MOODLE:
        return slug(f"participant {f.lms_id}")
    return slug(f.lms_id if f.lms_id.startswith("anon_") else f"canvas {f.lms_id}")


def _choose(mine: list[LmsFile], expected: list[str], student: str, result: Collected) -> dict[str, LmsFile]:
    """File name in the student's folder -> the file to put there (the later of two uploads)."""
    assignment = result.assignment
    notebooks: dict[str, list[LmsFile]] = {}
    extras: dict[str, list[LmsFile]] = {}
    want = ", ".join(f"{n}.ipynb" for n in expected)
    for f in mine:
        nb = notebook_for(f.filename, expected)
        if nb:
            notebooks.setdefault(f"{nb}.ipynb", []).append(f)
        elif f.filename.lower().endswith(".ipynb"):
            why = (
                f"a notebook named {f.filename!r} from {f.who}: {assignment} expects {want}; rename it in "
                f"the zip and collect again, or copy it to {result.dest / student / assignment}/{want}"
            )
            result.unplaced.append((f.entry, why))
        elif f.filename.lower() == "timestamp.txt":  # nbgrader would take it as the submission time
            result.unplaced.append(
                (f.entry, f"{f.who} sent a timestamp.txt: only the LMS says when work came in")
            )
        elif f.filename.startswith("."):
            result.unplaced.append((f.entry, f"a hidden file from {f.who}: not copied"))
        else:
            extras.setdefault(f.filename, []).append(f)
    if not notebooks:
        for f in (f for group in extras.values() for f in group):
            result.unplaced.append(
                (f.entry, f"{f.who} sent no notebook of {assignment} ({want}) to put it beside")
            )
        return {}
    chosen = {}
    for name, group in {**notebooks, **extras}.items():  # notebooks first: their file ids name feedback
        group = sorted(group, key=lambda f: (int(f.file_id or 0), f.timestamp, f.entry))
        chosen[name] = group[-1]
        for older in group[:-1]:
            why = f"{older.who} sent {name} more than once: kept the later upload, {group[-1].entry}"
            result.unplaced.append((older.entry, why))
    return chosen


def _due_date(course: Course, assignment: str) -> datetime | None:
    """The assignment's due date in the gradebook (naive UTC, as nbgrader keeps it), if any."""
    if not course.db_path.is_file():
        return None
    from nbgrader.api import MissingEntry

    with _gradebook(course) as gb:
        try:
            return gb.find_assignment(assignment).duedate
        except MissingEntry:
            return None


# --- the record of who was who in the LMS ------------------------------------------------------

MANIFEST_FIELDS = ["lms", "student_id", "lms_name", "lms_id", "file_id", "late"]


def manifest_path(course: Course, assignment: str) -> Path:
    """``autograder/lms-<assignment>.csv``: the LMS ids of each collected student (kept out of git)."""
    return course.autograder / f"lms-{assignment}.csv"


def read_manifest(course: Course, assignment: str) -> list[dict]:
    path = manifest_path(course, assignment)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_manifest(course: Course, assignment: str, lms: str, rows: list[dict]) -> None:
    """Merge ``rows`` into the manifest: a student's row from this LMS replaces the older one."""
    new = {(r["lms"], r["student_id"]): r for r in rows}
    kept = [r for r in read_manifest(course, assignment) if (r["lms"], r["student_id"]) not in new]
    path = manifest_path(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for row in sorted([*kept, *new.values()], key=lambda r: (r["lms"], r["student_id"])):
            writer.writerow({k: row.get(k, "") for k in MANIFEST_FIELDS})


def _lms_ids(course: Course, assignments: list[str], lms: str) -> dict[str, dict]:
    """student id -> their manifest row for ``lms`` (the last assignment's, where several)."""
    out = {}
    for assignment in assignments:
        for row in read_manifest(course, assignment):
            if row["lms"] == lms:
                out[row["student_id"]] = row
    return out


# --- grades back to the LMS ----------------------------------------------------------------------


@dataclass
class Written:
    """A file written for an LMS, and what the instructor must do by hand."""

    path: Path
    count: int
    what: str
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"wrote {self.path}: {self.count} {self.what}", *self.notes]


def course_scores(course: Course, assignments: list[str] | None = None) -> list[dict]:
    """The rows of the course's own export (:func:`.results.export_csv`): one score per student and assignment."""
    from .results import export_csv

    with tempfile.TemporaryDirectory(prefix="circuitscope-lms-") as tmp:
        path = export_csv(course, Path(tmp) / "grades.csv", assignments)
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))


def _number(value) -> str:
    text = f"{float(value or 0):.4f}".rstrip("0").rstrip(".")
    return text or "0"


CANVAS_FIELDS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_FIELDS = [
    "Identifier",
    "Full name",
    "Email address",
    "Grade",
    "Maximum Grade",
    "Last modified (grade)",
]


def export_canvas(course: Course, dest: str | Path, assignments: list[str] | None = None) -> Written:
    """Canvas's gradebook import CSV: one row per student, one column per assignment (its id as title).

    Scores are the course export's ``score`` (after any late penalty). ``ID`` is the student's
    Canvas user id (from the roster, else from a collected Canvas download); a student without
    one is matched by Canvas on the name ("Last, First"), and listed in the notes.
    """
    rows = course_scores(course, assignments)
    names = sorted({r["assignment"] for r in rows})
    if not names:
        raise CourseError("nothing to export: the gradebook has no assignments yet")
    people = {s.id: s for s in gradebook_roster(course)}
    canvas_ids = _lms_ids(course, names, CANVAS)
    table: dict[str, dict] = {}
    maxima: dict[str, str] = {}
    for r in rows:
        maxima[r["assignment"]] = _number(r["max_score"])
        table.setdefault(r["student_id"], {})[r["assignment"]] = _number(r["score"])
    notes = []
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*CANVAS_FIELDS, *names])
        writer.writerow(["Points Possible", "", "", "", "", *(maxima[n] for n in names)])
        for student_id, scores in sorted(table.items()):
            person = people.get(student_id, Student(student_id))
            canvas_id = person.lms_user_id or canvas_ids.get(student_id, {}).get("lms_id", "")
            if canvas_id.startswith("anon_"):
                canvas_id = ""
            shown = ", ".join(p for p in (person.last_name, person.first_name) if p) or student_id
            if not canvas_id:
                notes.append(f"no Canvas user id for {student_id}: Canvas will match them by the name {shown!r} "
                             "(import a Canvas roster, or collect their Canvas submission, to give it)")  # fmt: skip
            writer.writerow([shown, canvas_id, "", "", "", *(scores.get(n, "") for n in names)])
    return Written(dest, len(table), "student row(s) for Canvas (Grades > Import)", notes)


def export_moodle(course: Course, dest: str | Path, assignment: str) -> Written:
    """Moodle's grading worksheet for one assignment (Assignment > Upload grading worksheet).

    ``Identifier`` is the participant id from the collected Moodle download; students without one
    are written with an empty identifier (Moodle's worksheet upload skips them; Moodle's
    gradebook CSV import can still match them by ``Email address``) and listed in the notes.
    """
    rows = course_scores(course, [assignment])
    people = {s.id: s for s in gradebook_roster(course)}
    participants = _lms_ids(course, [assignment], MOODLE)
    modified = datetime.now(UTC).replace(microsecond=0).isoformat()
    notes = []
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(MOODLE_FIELDS)
        for r in sorted(rows, key=lambda r: r["student_id"]):
            person = people.get(r["student_id"], Student(r["student_id"]))
            row = participants.get(r["student_id"])
            identifier = f"Participant {row['lms_id']}" if row else ""
            if not row:
                notes.append(f"no Moodle participant id for {r['student_id']} (not in a collected Moodle "
                             "download of this assignment): enter their grade in Moodle by hand")  # fmt: skip
            name = person.full_name or (row or {}).get("lms_name") or r["student_id"]
            writer.writerow(
                [identifier, name, person.email, _number(r["score"]), _number(r["max_score"]), modified]
            )
    return Written(dest, len(rows), f"student row(s) of {assignment} for Moodle", notes)


# --- feedback back to the LMS ---------------------------------------------------------------------


def feedback_zip(course: Course, dest: str | Path, assignment: str, lms: str = CANVAS) -> Written:
    """The assignment's feedback pages, named for the LMS's bulk upload, in one zip.

    Canvas (Submissions > Re-Upload Submissions): ``<name>_<user id>_<file id>_<notebook>_feedback.html``,
    the ids of the student's collected submission. Moodle (Upload multiple feedback files in a zip):
    ``<Full Name>_<participant id>_assignfeedback_file_<notebook>_feedback.html``. Students with a
    page but no collected LMS submission, and collected students without a page, are in the notes.
    """
    if lms not in LMSES:
        raise CourseError(f"unknown LMS {lms!r}: use canvas or moodle")
    notebooks = course.notebooks(course.require_assignments([assignment])[0])
    ids = _lms_ids(course, [assignment], lms)
    pages = {p.parent.parent.name for p in course.feedback.glob(f"*/{assignment}/*.html")}
    if not pages:
        raise CourseError(
            f"no feedback pages for {assignment}: run `circuitscope-course feedback {assignment}` first"
        )
    notes = [f"{student} has a feedback page but no {lms} submission of {assignment} was collected: send it by hand"
             for student in sorted(pages - set(ids))]  # fmt: skip
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for student, row in sorted(ids.items()):
            if lms == CANVAS and row["lms_id"].startswith("anon_"):
                notes.append(
                    f"{student}: an anonymous Canvas submission has no user id to name feedback with"
                )
                continue
            for nb in notebooks:
                page = course.feedback / student / assignment / f"{nb}.html"
                if not page.is_file():
                    notes.append(
                        f"{student}: no feedback page {nb}.html (not graded? run `circuitscope-course feedback`)"
                    )
                    continue
                if lms == CANVAS:
                    name = f"{row['lms_name']}_{row['lms_id']}_{row['file_id']}_{nb}_feedback.html"
                else:
                    name = f"{row['lms_name'] or 'Participant'}_{row['lms_id']}_assignfeedback_file_{nb}_feedback.html"
                out.write(page, name)
                count += 1
    return Written(dest, count, f"feedback page(s) for {lms}", notes)
