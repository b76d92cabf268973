"""The exercises on the site, and the Colab install cell: both generated, never written by hand.

**Exercise pages.** Each source notebook ``solutions/<assignment>/<notebook>.ipynb`` becomes a site
page ``book/<assignment>/exercises.ipynb`` (``exercises_<notebook>.ipynb`` when an assignment has
several notebooks), listed in ``_toc.yml`` and committed, so a plain ``jupyter-book build .`` works.
On the page:

* a banner under the title: **Open the exercises in Colab** (the *learner* notebook,
  ``exercises/<assignment>/<notebook>.ipynb`` on GitHub) and a download link to the same file,
  both from ``repository`` in ``_config.yml``, the one place to change;
* the Markdown as it is;
* for each solution cell, the stub the learner sees (exactly what nbgrader's ``ClearSolutions``
  makes, with the same markers and stub) as a code block that does not run, then the solution
  as a code cell that runs, folded into a "Show solution" dropdown (MyST-NB's ``hide-input``);
  so the page executes top to bottom and shows every check passing;
* test cells without their hidden tests (what ``ClearHiddenTests`` leaves: the visible check);
* every other cell as it is (the locked setup cell, figures, the install cell).

**Classroom release.** ``python -m circuitscope.tools.book build --classroom`` builds the site from a
staged copy of the book (the working tree is not touched) in which each exercise page shows the
stub and a note that the solution is not published. The solution still runs at build time, from
a cell removed from the page (``remove-cell``) that executes the cell of ``solutions/`` (its text
is never in the page, its source file, or its outputs), so the figures and checks after it
work. After every build, :func:`check_published` searches the site for hidden test code (and,
in a classroom build, solution code) and fails the build if it finds any.

The classroom site also stands alone (:class:`Classroom`): the instructors' page is left out
(:data:`LEFT_OUT`; links to it become plain text), and nothing links to this repository, which
holds ``solutions/``: no repository, issue, edit, Colab or Binder button, no clone hint, and
install cells that install nothing, unless the instructor names a learner repository (made for
the class, without ``solutions/``), where they all point instead. :func:`check_classroom` fails
the build on any link to this repository, to ``solutions/`` or to a left-out page.

**Install cell.** Every learner-facing notebook (``solutions/`` and so ``exercises/``, and the
chapter notebooks ``book/**/*.ipynb`` that run code) starts with one generated cell that installs
the library, pinned to this course's release tag ``v<version>`` (``pyproject.toml``), from the
repository of ``_config.yml``, only when it is missing (Colab, a fresh kernel). The cell has the
id ``install``, the tags ``install`` and ``remove-cell`` (not shown on the site) and, in
``solutions/``, nbgrader metadata that locks it (read-only).

    circuitscope-course pages [--check]           write (or check) the exercise pages
    circuitscope-course install-cells [--check]   write (or check) the install cells

The module is also a Sphinx extension (``_config.yml``: ``sphinx.extra_extensions``): on an
exercise page, the theme's Colab and Binder buttons open the learner notebook, not the page; in a
classroom build, references to a left-out page become their text.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import html
import json
import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .course import Course

# -- nbgrader's markers and stubs (its defaults, as in autograder/nbgrader_config.py) ------------
BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"

#: Where the book's chapters live, and the name of an assignment's exercise page.
BOOK = "book"
PAGE_STEM = "exercises"
#: Notebook metadata key of a generated page (what made it, from what, for which learner notebook).
METADATA_KEY = "circuitscope"

#: The solution dropdown: MyST-NB's cell-level prompts.
SHOW_SOLUTION, HIDE_SOLUTION = "Show solution", "Hide solution"
CLASSROOM_NOTE = "*The solution is not published in this release of the course.*"

#: The install cell: its id, its tags, and its nbgrader metadata in solutions/ (locked, read-only).
INSTALL_ID = "install"
INSTALL_TAGS = ["install", "remove-cell"]
#: The setup cell (locked, ``grade_id`` "setup") loads the model: its stderr is the
#: synthetic-weights warning, which the page shows as the notice box instead.
SETUP_ID = "setup"
SETUP_TAGS = ["remove-stderr"]
INSTALL_NBGRADER = {
    "grade": False, "grade_id": INSTALL_ID, "locked": True, "schema_version": 3,
    "solution": False, "task": False,
}  # fmt: skip


class PagesError(RuntimeError):
    """A source notebook the pages cannot be made from (unbalanced markers, unknown language)."""


# -- the one place: _config.yml and pyproject.toml ------------------------------------------------
#: A repository the pages may link to: Colab opens notebooks from GitHub only.
GITHUB_REPO = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")


@dataclass(frozen=True)
class Site:
    """What the generated text depends on: the repository (``_config.yml``) and the release.

    ``repo_url`` is ``https://github.com/<owner>/<repo>``, ``branch`` the branch the site's links
    point into, ``package`` and ``version`` the ``[project]`` of ``pyproject.toml``.
    """

    root: Path
    repo_url: str
    branch: str
    package: str
    version: str

    @classmethod
    def read(cls, root: str | os.PathLike) -> Site:
        import yaml

        root = Path(root).resolve()
        config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
        repository = config.get("repository") or {}
        url = str(repository.get("url") or "").rstrip("/")
        if not GITHUB_REPO.fullmatch(url):
            raise PagesError(
                f"_config.yml: repository.url must be https://github.com/<owner>/<repo> (Colab opens "
                f"notebooks from GitHub), not {url!r}"
            )
        project = {}
        if (root / "pyproject.toml").is_file():
            project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
        return cls(
            root=root,
            repo_url=url.removesuffix(".git"),
            branch=str(repository.get("branch") or "main"),
            package=project.get("name", "circuitscope"),
            version=project.get("version", "0.0.0"),
        )

    @property
    def owner_repo(self) -> str:
        return self.repo_url.split("github.com/", 1)[1]

    @property
    def tag(self) -> str:
        """The release tag the install cell pins: ``v<version>``."""
        return f"v{self.version}"

    def colab_url(self, path: str) -> str:
        """Colab opening ``path`` (relative to the repository root) from GitHub."""
        return f"https://colab.research.google.com/github/{self.owner_repo}/blob/{self.branch}/{path}"

    def github_url(self, path: str) -> str:
        return f"{self.repo_url}/blob/{self.branch}/{path}"

    @property
    def pip_requirement(self) -> str:
        """``circuitscope @ git+https://github.com/<owner>/<repo>@v<version>``: pinned to the tag."""
        return f"{self.package} @ git+{self.repo_url}@{self.tag}"

    @property
    def branch_requirement(self) -> str:
        """``circuitscope @ git+https://github.com/<owner>/<repo>@<branch>``: the install cell's
        fallback while the release tag is not published (a branch moves; the cell says so)."""
        return f"{self.package} @ git+{self.repo_url}@{self.branch}"


# -- the install cell -----------------------------------------------------------------------------
def install_source(site: Site) -> str:
    """The install cell's code. ``%pip`` inside the ``if`` is an IPython line magic as any other.

    It installs the release tag ``v<version>`` (:attr:`Site.pip_requirement`); when that cannot be
    installed (the tag is not published yet), it says so and installs the site's branch
    (:attr:`Site.branch_requirement`), which moves. pip's own progress shows (no ``-q``).
    """
    return (
        "# Installs the course library when it is missing (Colab, a fresh kernel); does nothing otherwise.\n"
        "# Generated by `circuitscope-course install-cells` from pyproject.toml and _config.yml: "
        "do not edit.\n"
        "import importlib\n"
        "import importlib.util\n"
        f'if importlib.util.find_spec("{site.package}") is None:\n'
        f'    print("Installing {site.package} {site.version} (release {site.tag}) and what it needs: a few MB, '
        'plus PyTorch (already on Colab; elsewhere about 1-5 GB).")\n'
        f'    %pip install "{site.pip_requirement}"\n'
        "    importlib.invalidate_caches()\n"
        f'    if importlib.util.find_spec("{site.package}") is None:  # the tag is not published yet\n'
        f'        print("Release {site.tag} could not be installed: installing the branch {site.branch} instead. '
        'It moves, so the library may differ from this notebook.")\n'
        f'        %pip install "{site.branch_requirement}"'
    )


def install_cell(site: Site, nbgrader: bool) -> NotebookNode:
    """The install cell; ``nbgrader=True`` for a source notebook of ``solutions/`` (locked)."""
    metadata: dict = {"tags": list(INSTALL_TAGS)}
    if nbgrader:
        metadata["nbgrader"] = dict(INSTALL_NBGRADER)
    cell = nbformat.v4.new_code_cell(install_source(site), metadata=metadata)
    cell["id"] = INSTALL_ID
    return cell


def is_install_cell(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and (
        cell.get("id") == INSTALL_ID
        or INSTALL_ID in cell.metadata.get("tags", [])
        or cell.metadata.get("nbgrader", {}).get("grade_id") == INSTALL_ID
    )


def install_targets(root: Path) -> list[tuple[Path, bool]]:
    """``(notebook, nbgrader)`` for every notebook that must carry the install cell.

    The source notebooks of ``solutions/`` (nbgrader metadata: yes), and the notebooks under
    ``book/`` that run code and are not generated exercise pages (they get it from ``solutions/``).
    """
    targets = [(p, True) for p in sorted((root / "solutions").glob("*/*.ipynb"))]
    for path in sorted((root / BOOK).rglob("*.ipynb")):
        if "_build" in path.parts or ".ipynb_checkpoints" in path.parts:
            continue
        nb = nbformat.read(path, as_version=4)
        if METADATA_KEY in nb.metadata and "source" in nb.metadata[METADATA_KEY]:
            continue  # a generated exercise page
        if any(c.cell_type == "code" and not is_install_cell(c) for c in nb.cells):
            targets.append((path, False))
    return targets


def with_install_cell(nb: NotebookNode, site: Site, nbgrader: bool) -> NotebookNode:
    """``nb`` with exactly one, current, install cell: where it was, else right after the title cell."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cell = install_cell(site, nbgrader)
    existing = [i for i, c in enumerate(nb.cells) if is_install_cell(c)]
    if existing:
        position = existing[0]
        for i in reversed(existing):
            del nb.cells[i]
    else:
        position = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    if (nb.nbformat, nb.nbformat_minor) < (4, 5):
        del cell["id"]  # cell ids came with nbformat 4.5
    nb.cells.insert(position, cell)
    return nb


def write_install_cells(root: str | os.PathLike, check: bool = False, log=print) -> list[Path]:
    """Write (``check=False``) or find (``check=True``) the notebooks whose install cell is not current.

    Returns those notebooks. Writing keeps each notebook's format (``nbformat.writes`` and a final
    newline, as the rest of the course) and touches nothing else in it.
    """
    root = Path(root).resolve()
    site = Site.read(root)
    stale = []
    for path, nbgrader in install_targets(root):
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
        new = _dumps(with_install_cell(nb, site, nbgrader))
        if new != text:
            stale.append(path)
            if not check:
                path.write_text(new, encoding="utf-8")
                log(f"wrote the install cell of {path.relative_to(root)}")
    return stale


# -- what learners see (nbgrader's ClearSolutions and ClearHiddenTests) ---------------------------
def learner_source(source: str, cell_type: str = "code") -> str:
    """``source`` as nbgrader releases it: solution regions replaced by the stub, hidden tests removed.

    nbgrader's own ``ClearSolutions`` then ``ClearHiddenTests`` (the preprocessors of
    ``generate_assignment``), run on a one-cell notebook; ``tests/test_pages.py`` compares the
    result with ``exercises/``.
    """
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions

    hidden = BEGIN_HIDDEN_TESTS in source
    meta = {"nbgrader": {"solution": BEGIN_SOLUTION in source, "grade": hidden, "locked": False,
                         "grade_id": "cell", "schema_version": 3, **({"points": 1} if hidden else {})}}  # fmt: skip
    cell = (new_code_cell if cell_type == "code" else new_markdown_cell)(source, metadata=meta)
    kernelspec = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb = new_notebook(cells=[cell], metadata={"kernelspec": kernelspec})
    try:
        nb, _ = ClearSolutions().preprocess(nb, {})
        nb, _ = ClearHiddenTests().preprocess(nb, {})
    except RuntimeError as err:  # nbgrader's message for an unclosed or nested region
        raise PagesError(f"{err} in:\n{source}") from None
    return nb.cells[0].source


def without_hidden_tests(source: str) -> str:
    """``source`` without its hidden-test regions: nbgrader's ``ClearHiddenTests`` on a graded copy."""
    from nbformat.v4 import new_code_cell, new_notebook
    from nbgrader.preprocessors import ClearHiddenTests

    if BEGIN_HIDDEN_TESTS not in source:
        return source
    meta = {"nbgrader": {"solution": False, "grade": True, "locked": False, "grade_id": "cell",
                         "schema_version": 3, "points": 1}}  # fmt: skip
    nb = new_notebook(cells=[new_code_cell(source, metadata=meta)])
    try:
        nb, _ = ClearHiddenTests().preprocess(nb, {})
    except RuntimeError as err:  # nbgrader's message for a region left open
        raise PagesError(f"{err} in:\n{source}") from None
    return nb.cells[0].source


def solution_source(source: str) -> str:
    """The solution as it is shown: the cell without its marker lines (and any hidden tests)."""
    lines = [ln for ln in source.split("\n") if BEGIN_SOLUTION not in ln and END_SOLUTION not in ln]
    return without_hidden_tests("\n".join(lines))


def _regions(source: str, begin: str, end: str) -> list[str]:
    """The lines strictly inside ``begin`` ... ``end`` regions."""
    found, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            found.append(line)
    return found


def _is_solution(cell: NotebookNode) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


# -- the exercise pages -------------------------------------------------------------------------
@dataclass(frozen=True)
class Exercise:
    """One source notebook and the files made from it (paths relative to the repository root)."""

    assignment: str
    notebook: str  # without .ipynb
    page: str  # book/<assignment>/exercises.ipynb

    @property
    def source(self) -> str:
        return f"solutions/{self.assignment}/{self.notebook}.ipynb"

    @property
    def learner(self) -> str:
        return f"exercises/{self.assignment}/{self.notebook}.ipynb"


def exercises(root: str | os.PathLike) -> list[Exercise]:
    """Every source notebook of ``solutions/`` and its page (``book/<assignment>/exercises.ipynb``)."""
    course = Course(Path(root).resolve())
    found = []
    for assignment in course.assignments():
        notebooks = course.notebooks(assignment)
        for notebook in notebooks:
            stem = PAGE_STEM if len(notebooks) == 1 else f"{PAGE_STEM}_{notebook}"
            found.append(Exercise(assignment, notebook, f"{BOOK}/{assignment}/{stem}.ipynb"))
    return found


def make_page(site: Site, exercise: Exercise, classroom: bool = False) -> NotebookNode:
    """The site page of one source notebook (see the module's docstring); outputs are not stored."""
    source_nb = nbformat.read(site.root / exercise.source, as_version=4)
    language = source_nb.metadata.get("kernelspec", {}).get("language", "python")
    if language != "python":
        raise PagesError(f"{exercise.source}: only Python notebooks are supported, not {language!r}")
    cells: list[NotebookNode] = []
    for index, cell in enumerate(source_nb.cells):
        cell_id = cell.get("id") or f"cell-{index}"
        if index == 0 and cell.cell_type == "markdown" and cell.source.startswith("# "):
            title, _, rest = cell.source.partition("\n")
            cells.append(_markdown(title, f"{cell_id}-title"))
            cells.append(_markdown(_banner(site, exercise, classroom), "exercises-banner"))
            if rest.strip():
                cells.append(_markdown(rest.lstrip("\n"), cell_id))
        elif is_install_cell(cell):
            cells.append(_code(cell.source, cell_id, tags=list(INSTALL_TAGS)))
        elif _is_solution(cell) and cell.cell_type == "code":
            cells.append(_markdown(_fenced(learner_source(cell.source)), f"{cell_id}-stub"))
            if classroom:
                cells.append(_markdown(CLASSROOM_NOTE, f"{cell_id}-note"))
                grade_id = cell.metadata["nbgrader"]["grade_id"]
                cells.append(_code(_runner_source(exercise, grade_id), cell_id, tags=["remove-cell"]))
            else:
                cells.append(_code(
                    solution_source(cell.source), cell_id, tags=["hide-input"],
                    mystnb={"code_prompt_show": SHOW_SOLUTION, "code_prompt_hide": HIDE_SOLUTION},
                ))  # fmt: skip
        elif _is_solution(cell):  # a written answer
            cells.append(_markdown(learner_source(cell.source, "markdown"), f"{cell_id}-stub"))
            if classroom:
                cells.append(_markdown(CLASSROOM_NOTE, f"{cell_id}-note"))
            else:
                body = solution_source(cell.source)
                fence = _fence_for(body, ":")
                cells.append(_markdown(f"{fence}{{dropdown}} {SHOW_SOLUTION}\n{body}\n{fence}", cell_id))
        elif cell.cell_type == "code":
            setup = cell.metadata.get("nbgrader", {}).get("grade_id") == SETUP_ID
            tags = _tags(cell) + [t for t in SETUP_TAGS if setup and t not in _tags(cell)]
            cells.append(_code(without_hidden_tests(cell.source), cell_id, tags=tags))
        else:
            cells.append(_markdown(without_hidden_tests(cell.source), cell_id, tags=_tags(cell)))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {
        key: source_nb.metadata[key] for key in ("kernelspec", "language_info") if key in source_nb.metadata
    }
    nb.metadata[METADATA_KEY] = {
        "generated_by": "circuitscope-course pages: do not edit, edit the source",
        "source": exercise.source,
        "learner_notebook": exercise.learner,
        "classroom": classroom,
    }
    return nb


def _banner(site: Site, exercise: Exercise, classroom: bool) -> str:
    page_dir = (site.root / exercise.page).parent
    download = Path(os.path.relpath(site.root / exercise.learner, page_dir)).as_posix()
    name = Path(exercise.learner).name
    if classroom:
        what = (
            "This page shows the exercises and what their checks print when the answers are right; "
            "the solutions are not published in this release."
        )
    else:
        what = (
            "This page shows the exercises **with their solutions**: each stub is followed by its "
            f"solution, folded (*{SHOW_SOLUTION}*), and by its check, run. Try each exercise yourself first."
        )
    download_line = f"- {{download}}`Download the exercises notebook <{download}>` (`{name}`)"
    if site.repo_url:
        links = (
            f"- **[Open the exercises in Colab]({site.colab_url(exercise.learner)})** (it installs the "
            "course library, pinned to this release, when it is missing)\n"
            f"{download_line}, or open `{exercise.learner}` in a clone of [the repository]({site.repo_url})\n"
        )
    else:  # a classroom release without a learner repository (Classroom.site): nothing to link to
        links = f"{download_line}\n"
    return (
        ":::{admonition} Do the exercises in the learner notebook\n"
        ":class: tip circuitscope-exercises-banner\n"
        f"{what} The learner notebook has the stubs and checks, and no solutions:\n\n"
        f"{links}"
        ":::"
    )


def _runner_source(exercise: Exercise, grade_id: str) -> str:
    return (
        "# Classroom release: the solution runs here (so the cells below work) but is not published.\n"
        "from circuitscope_course.pages import run_solution\n"
        f"run_solution(globals(), {exercise.source!r}, {grade_id!r})"
    )


def run_solution(namespace: dict, source: str, grade_id: str) -> None:
    """Run the solution cell ``grade_id`` of ``source`` (``solutions/...ipynb``) in ``namespace``.

    What a classroom page runs instead of showing the solution. ``source`` is found in the working
    directory (the page's folder while the book builds) or the nearest folder above it holding it.
    """
    here = Path.cwd().resolve()
    path = next((d / source for d in (here, *here.parents) if (d / source).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{source} is not in {here} or any folder above it")
    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id), None)
    if cell is None:
        raise KeyError(f"{source} has no cell {grade_id!r}")
    exec(compile(solution_source(cell.source), f"<solution {grade_id}>", "exec"), namespace)


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.metadata.get("tags", []))


def _markdown(source: str, cell_id: str, tags: list[str] | None = None) -> NotebookNode:
    cell = nbformat.v4.new_markdown_cell(source, metadata={"tags": tags} if tags else {})
    cell["id"] = _cell_id(cell_id)
    return cell


def _code(source: str, cell_id: str, tags: list[str] | None = None, **extra) -> NotebookNode:
    metadata = {"tags": tags} if tags else {}
    metadata.update(extra)
    cell = nbformat.v4.new_code_cell(source, metadata=metadata)
    cell["id"] = _cell_id(cell_id)
    return cell


def _cell_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:64]


def _fence_for(text: str, char: str = "`") -> str:
    longest = max((len(m) for m in re.findall(re.escape(char) + "+", text)), default=0)
    return char * max(3, longest + 1)


def _fenced(code: str) -> str:
    fence = _fence_for(code)
    return f"{fence}python\n{code}\n{fence}"


def _dumps(nb: NotebookNode) -> str:
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write_pages(
    root: str | os.PathLike,
    classroom: bool = False,
    dest: str | os.PathLike | None = None,
    check: bool = False,
    log=print,
    site: Site | None = None,
) -> list[Path]:
    """Write every exercise page under ``dest`` (default ``root``); returns the pages that changed.

    ``check=True`` writes nothing and returns the pages that are missing or differ from a fresh
    generation. Pages whose source is gone are not deleted (remove them from ``_toc.yml`` too).
    ``site`` (default: ``root``'s) is where the pages' links point (a classroom's: :class:`Classroom`).
    """
    root = Path(root).resolve()
    dest = Path(dest).resolve() if dest else root
    site = site or Site.read(root)
    changed = []
    for exercise in exercises(root):
        text = _dumps(make_page(site, exercise, classroom))
        path = dest / exercise.page
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            changed.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                log(f"wrote {path.relative_to(dest)} from {exercise.source}")
    return changed


# -- the classroom build: a staged copy of the book -----------------------------------------------
#: Pages the classroom release leaves out (Sphinx document names): the instructors' guide lists
#: what the grader cannot stop and where the solutions are.
LEFT_OUT = ("book/instructors",)
#: The folder of learner notebooks (``exercises/``): the stage holds a copy, with its install cells.
LEARNER_DIR = "exercises"
#: What the classroom site says in place of the repository's address when it has none to give.
NO_REPOSITORY = "ask your instructor for its address"


@dataclass(frozen=True)
class Classroom:
    """Where a classroom release may send learners: a learner repository, or nowhere.

    ``learner_repo`` (``https://github.com/<owner>/<repo>``) is a repository the instructor made
    for the class: this course without ``solutions/``, ``autograder/`` and the instructors' page,
    with no history that held them, tagged like this one. The site's repository and launch
    buttons, the exercise banners, ``{{ repo_url }}`` and the install cells point at it.
    ``None`` (the default): the site names no repository at all, has no launch buttons, and its
    notebooks expect the library installed (a JupyterHub, or as the instructor says).
    ``public`` is the course's own :class:`Site`, the one the site must never lead to.
    """

    public: Site
    learner_repo: str | None = None
    learner_branch: str = "main"

    @classmethod
    def read(cls, root: str | os.PathLike, learner_repo: str | None = None) -> Classroom:
        """The ``classroom`` key of ``_config.yml``; ``learner_repo`` (``--learner-repo``) wins."""
        import yaml

        public = Site.read(root)
        config = yaml.safe_load((public.root / "_config.yml").read_text(encoding="utf-8")) or {}
        settings = config.get("classroom") or {}
        url = str(learner_repo or settings.get("learner_repository") or "").rstrip("/").removesuffix(".git")
        if url and not GITHUB_REPO.fullmatch(url):
            raise PagesError(
                f"the learner repository must be https://github.com/<owner>/<repo> (Colab opens "
                f"notebooks from GitHub), not {url!r}: fix --learner-repo or classroom.learner_repository "
                "in _config.yml, or leave it empty for a site that links to no repository"
            )
        if url and url.lower() == public.repo_url.lower():
            raise PagesError(
                f"the learner repository {url} is the course's own repository, which holds solutions/: "
                "name a repository made for the class (without solutions/), or none"
            )
        return cls(public, url or None, str(settings.get("learner_branch") or "main"))

    @property
    def site(self) -> Site:
        """The :class:`Site` the classroom pages link to: the learner repository's, or none (``""``)."""
        return dataclasses.replace(self.public, repo_url=self.learner_repo or "", branch=self.learner_branch)

    def install_source(self) -> str:
        """The install cell of the classroom's notebooks: from the learner repository, or none."""
        if self.learner_repo:
            return install_source(self.site)
        package = self.public.package
        return (
            "# The course library must be installed already: this release does not say where from.\n"
            "# Generated by `python -m circuitscope.tools.book build --classroom`: do not edit.\n"
            "import importlib.util\n"
            f'if importlib.util.find_spec("{package}") is None:\n'
            f'    raise ModuleNotFoundError("The course library {package} is not installed: install it as '
            'your instructor says, then run this notebook again.")'
        )

    def config(self, config: dict) -> dict:
        """``_config.yml`` (as read) for the classroom site: links to the learner repository or none."""
        config = copy.deepcopy(config)
        learner = self.learner_repo
        # Jupyter Book fills a missing key from its defaults (its own repository, say): set every one.
        config.setdefault("html", {}).update(
            use_repository_button=bool(learner), use_issues_button=False, use_edit_page_button=False
        )
        config["repository"] = {**(config.get("repository") or {}), "url": learner or "",
                                "branch": self.learner_branch}  # fmt: skip
        if not learner:  # Colab and Binder open notebooks from a repository: none to open
            launch = config.setdefault("launch_buttons", {})
            launch.update({key: "" for key in _LAUNCH_URLS}, thebe=False)
        substitutions = config.setdefault("parse", {}).setdefault("myst_substitutions", {})
        if "repo_url" in substitutions:
            substitutions["repo_url"] = learner or NO_REPOSITORY
        config.setdefault("sphinx", {}).setdefault("config", {})["circuitscope_left_out"] = list(LEFT_OUT)
        return config


#: Jupyter Book's ``launch_buttons`` keys that name a service opening the page's repository.
_LAUNCH_URLS = ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url", "jupyterlite_url")


def without_pages(toc, pages: tuple[str, ...] = LEFT_OUT):
    """``_toc.yml`` (as read) without the entries of ``pages``, nor the parts they leave empty."""
    if isinstance(toc, list):
        kept = [without_pages(item, pages) for item in toc if not _is_entry_of(item, pages)]
        return [item for item in kept if not _emptied(item)]
    if isinstance(toc, dict):
        if page_name(toc.get("root")) in pages:
            raise PagesError(f"_toc.yml: the classroom release leaves out {toc['root']}, the root page")
        return {key: without_pages(value, pages) for key, value in toc.items()}
    return toc


def page_name(path) -> str:
    """The document name of a page's path: ``book/instructors.md`` is ``book/instructors``."""
    return re.sub(r"\.(md|ipynb|rst|html)$", "", str(path or "").strip("/"))


def _is_entry_of(item, pages: tuple[str, ...]) -> bool:
    return isinstance(item, dict) and "file" in item and page_name(item["file"]) in pages


#: The keys of ``_toc.yml`` that hold a list of entries.
_TOC_LISTS = ("parts", "chapters", "sections", "entries", "subtrees")


def _emptied(item) -> bool:
    """A part or subtree whose entries were all left out (Jupyter Book refuses an empty one)."""
    if not isinstance(item, dict) or "file" in item or "url" in item:
        return False
    lists = [key for key in _TOC_LISTS if key in item]
    return bool(lists) and not any(item[key] for key in lists)


def retarget_install_cells(folder: Path, source: str) -> list[Path]:
    """Give every install cell of the notebooks under ``folder`` the code ``source``; the notebooks changed.

    The cell keeps its id, tags and nbgrader metadata; a locked cell's nbgrader checksum is
    recomputed (nbgrader's own), so ``nbgrader validate`` does not report a changed cell.
    """
    from nbgrader.utils import compute_checksum

    changed = []
    for path in sorted(folder.rglob("*.ipynb")):
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        cells = [c for c in nb.cells if is_install_cell(c) and c.source != source]
        for cell in cells:
            cell.source = source
            if "checksum" in cell.metadata.get("nbgrader", {}):
                cell.metadata.nbgrader["checksum"] = compute_checksum(cell)
        if cells:
            path.write_text(_dumps(nb), encoding="utf-8")
            changed.append(path)
    return changed


def _write_yaml(path: Path, data) -> None:
    import yaml

    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def _read_yaml(path: Path):
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


@contextlib.contextmanager
def classroom_stage(root: str | os.PathLike, classroom: Classroom | None = None) -> Iterator[Path]:
    """A temporary book root for the classroom release (``classroom``, default ``_config.yml``'s).

    ``book/`` and ``exercises/`` are copied: the exercise pages are the classroom versions, the
    :data:`LEFT_OUT` pages are gone, and every install cell installs from the learner repository
    (or from nowhere). ``_config.yml`` and ``_toc.yml`` are rewritten (:meth:`Classroom.config`,
    :func:`without_pages`). Every other top-level entry is a symbolic link to the repository's
    (``solutions/`` for the hidden solution cells, ...). The working tree is left as it is.
    """
    root = Path(root).resolve()
    classroom = classroom or Classroom.read(root)
    stage = Path(tempfile.mkdtemp(prefix="circuitscope-classroom-"))
    ignore = shutil.ignore_patterns("_build", ".ipynb_checkpoints", "__pycache__")
    try:
        for entry in sorted(root.iterdir()):
            if entry.name in ("_build", ".git", BOOK, LEARNER_DIR, "_config.yml", "_toc.yml"):
                continue
            (stage / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        for folder in (BOOK, LEARNER_DIR):
            if (root / folder).is_dir():
                shutil.copytree(root / folder, stage / folder, symlinks=True, ignore=ignore)
        _write_yaml(stage / "_config.yml", classroom.config(_read_yaml(root / "_config.yml")))
        _write_yaml(stage / "_toc.yml", without_pages(_read_yaml(root / "_toc.yml")))
        for page in LEFT_OUT:
            for path in (stage / page).parent.glob(Path(page).name + ".*"):
                path.unlink()
        write_pages(root, classroom=True, dest=stage, log=lambda *_: None, site=classroom.site)
        for folder in (BOOK, LEARNER_DIR):
            if (stage / folder).is_dir():
                retarget_install_cells(stage / folder, classroom.install_source())
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def forget_staged_notebooks(cache_path: Path, stage: Path) -> None:
    """Drop the execution cache's project records of a staged build (their files are gone)."""
    if not cache_path.is_dir():
        return
    from jupyter_cache import get_cache

    cache = get_cache(cache_path)
    for record in cache.list_project_records():
        if str(record.uri).startswith(str(stage)):
            with contextlib.suppress(Exception):
                cache.remove_nb_from_project(record.pk)


# -- what must never be published --------------------------------------------------------------
def secret_lines(root: str | os.PathLike, solutions: bool, min_length: int = 8) -> dict[str, str]:
    """``{line: what}``: lines of hidden tests (and of solutions, if asked) that must not be published.

    Lines are stripped and at least ``min_length`` long. A solution line that a learner
    notebook or a chapter page also shows (say ``with torch.no_grad():``) is not a secret.
    """
    root = Path(root).resolve()
    secrets: dict[str, str] = {}
    found = exercises(root)
    notebooks = {e.source: nbformat.read(root / e.source, as_version=4) for e in found}
    public = "\n".join(
        learner_source(c.source, c.cell_type) for nb in notebooks.values() for c in nb.cells
    ) + "\n".join(_chapter_page_sources(root, {e.page for e in found}))
    for exercise in found:
        nb = notebooks[exercise.source]
        for cell in nb.cells:
            for line in _regions(cell.source, BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS):
                if len(line.strip()) >= min_length:
                    secrets.setdefault(line.strip(), f"a hidden test of {exercise.source}")
            if solutions:
                for line in _regions(cell.source, BEGIN_SOLUTION, END_SOLUTION):
                    text = line.strip()
                    if len(text) >= min_length and text not in public:
                        secrets.setdefault(text, f"a solution of {exercise.source}")
    return secrets


def _chapter_page_sources(root: Path, generated: set[str]) -> list[str]:
    """The sources of the book's own pages (not the generated exercise pages): public by design."""
    texts = []
    for path in sorted((root / BOOK).rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix == ".md" or (path.suffix == ".ipynb" and rel not in generated):
            texts.append(published_text(path))
    return texts


def published_text(path: Path) -> str:
    """The text a reader can get from a file of the site: HTML as read, notebooks' sources and outputs."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(raw)
        except ValueError:
            return raw
        parts = []
        for cell in nb.get("cells", []):
            parts.append(_join(cell.get("source", "")))
            for output in cell.get("outputs", []):
                parts.append(_join(output.get("text", "")))
                parts += [_join(v) for v in output.get("data", {}).values() if isinstance(v, (str, list))]
                parts += output.get("traceback", [])
        return "\n".join(parts)
    if path.suffix in (".html", ".htm"):
        text = re.sub(r"(?is)<(style|script)\b[^>]*>.*?</\1\s*>", " ", raw)
        return html.unescape(re.sub(r"(?s)<[^>]+>", "", text))
    return raw


def _join(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def check_published(html_dir: Path, root: str | os.PathLike, classroom: bool) -> list[str]:
    """Files of the built site (``html_dir``) that show hidden tests, or (``classroom``) solutions.

    Every ``.html``, ``.ipynb`` and ``.txt`` file is searched, the page sources offered for download
    included. Returns one line per file and secret found.
    """
    secrets = secret_lines(root, solutions=classroom)
    problems = []
    if not secrets or not Path(html_dir).is_dir():
        return problems
    for path in sorted(Path(html_dir).rglob("*")):
        if path.suffix not in (".html", ".htm", ".ipynb", ".txt") or not path.is_file():
            continue
        text = published_text(path)
        for line, what in secrets.items():
            if line in text:
                problems.append(f"{path.relative_to(html_dir)} shows {what}: {line!r}")
                break
    return problems


# -- what a classroom site must never lead to -----------------------------------------------------
#: Attributes of HTML elements that hold a link.
_LINK_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "data-url"})
#: Absolute URLs in text (code blocks, notebooks, sources offered for download).
_URL = re.compile(r"""https?://[^\s<>"'`)\]]+""")
#: A host name that is never real (RFC 2606): relative links are resolved against it.
_SITE_HOST = "classroom.invalid"
#: The kinds of file a reader can open or download from the site.
_READABLE = (".html", ".htm", ".ipynb", ".md", ".txt", ".py")


class _LinkParser(HTMLParser):
    """The values of every link attribute (:data:`_LINK_ATTRIBUTES`) of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.links += [value for name, value in attrs if name in _LINK_ATTRIBUTES and value]


def site_links(path: Path) -> list[str]:
    """Every link a reader can follow from ``path``: HTML link attributes, and URLs in its text."""
    links = []
    if path.suffix in (".html", ".htm"):
        parser = _LinkParser()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        links += parser.links
    links += _URL.findall(published_text(path))
    return list(dict.fromkeys(links))


def repository_pattern(repo_url: str) -> re.Pattern:
    """A link into the repository ``repo_url`` (``https://github.com/<owner>/<repo>``), in any form:
    GitHub, Colab (``/github/<owner>/<repo>``), Binder (``/gh/<owner>/<repo>``), raw files, a
    ``git+`` requirement, or its GitHub Pages site (``<owner>.github.io/<repo>``)."""
    owner, repo = (re.escape(part) for part in repo_url.split("github.com/", 1)[1].split("/"))
    end = r"(?:\.git)?(?=$|[/?#@\"'\s])"
    return re.compile(
        rf"(?:github\.com|/github|/gh|githubusercontent\.com)/{owner}/{repo}{end}"
        rf"|{owner}\.github\.io/{repo}{end}",
        re.IGNORECASE,
    )


def forbidden_link(
    link: str, where: str, public: re.Pattern, left_out: tuple[str, ...] = LEFT_OUT
) -> str | None:
    """Why a classroom site must not have ``link`` (found in the site's file ``where``), or None.

    It leads to the course's public repository (``public``: :func:`repository_pattern`), to
    anything under a ``solutions/`` folder, or to a page the release leaves out (``left_out``).
    """
    from urllib.parse import unquote, urljoin, urlsplit

    url = unquote(unquote(link))  # Binder and Colab quote a repository once more inside their URLs
    if public.search(url):
        return "the course's repository, which holds solutions/"
    resolved = urlsplit(urljoin(f"https://{_SITE_HOST}/{where}", url))  # relative links: in the site
    segments = [s for s in resolved.path.split("/") if s]
    if "solutions" in segments:
        return "solutions/"
    if resolved.netloc == _SITE_HOST:
        page = "/".join(segments).removeprefix("_sources/")
        if any(page == name or page.startswith(name + ".") for name in left_out):
            return "a page the classroom release leaves out"
    return None


def check_classroom(
    html_dir: Path, root: str | os.PathLike, left_out: tuple[str, ...] = LEFT_OUT
) -> list[str]:
    """What leads a classroom site (``html_dir``) to the solutions: one line per file and link.

    A page of ``left_out`` that was built (or its source offered), and every link of a readable
    file (:func:`site_links`) that :func:`forbidden_link` refuses: to the course's repository of
    ``root``'s ``_config.yml``, to ``solutions/``, to a left-out page.
    """
    html_dir = Path(html_dir)
    public = repository_pattern(Site.read(root).repo_url)
    problems = []
    for name in left_out:
        for path in [html_dir / f"{name}.html", *(html_dir / "_sources").glob(f"{name}.*")]:
            if path.is_file():
                problems.append(f"{path.relative_to(html_dir)} is a page the classroom release leaves out")
    for path in sorted(html_dir.rglob("*")):
        if path.suffix not in _READABLE or not path.is_file():
            continue
        where = path.relative_to(html_dir).as_posix()
        for link in site_links(path):
            why = None if link.startswith("#") else forbidden_link(link, where, public, left_out)
            if why:
                problems.append(f"{where} links to {why}: {link}")
    return problems


# -- the Sphinx extension: launch buttons open the learner notebook; left-out pages are not linked --
def _learner_launch_links(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    path = Path(app.env.doc2path(pagename))  # also for pages that are not documents (search)
    if path.suffix != ".ipynb" or not path.is_file():
        return
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {}).get(METADATA_KEY, {})
    except ValueError:
        return
    learner = meta.get("learner_notebook")
    if not learner:
        return
    book_relpath = app.config["html_theme_options"].get("path_to_docs", "").strip("/")
    page = f"{book_relpath}/{pagename}.ipynb" if book_relpath else f"{pagename}.ipynb"
    download = _learner_download(app, learner, context)
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            # The page's own source holds the solutions: the header offers the learner notebook,
            # the file the banner's download link gives, and printing the page.
            buttons = [b for b in group.get("buttons", []) if b.get("type") != "link"]
            if download:
                buttons.insert(0, {
                    "type": "link", "url": download, "text": Path(learner).name, "icon": "fas fa-code",
                    "tooltip": "Download the exercises notebook (stubs and checks, no solutions)",
                    "label": "download-notebook-button",
                })  # fmt: skip
            group["buttons"] = buttons
            group["tooltip"] = "Download the exercises notebook"
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if button.get("url"):
                button["url"] = button["url"].replace(page, learner)
                if "tooltip" in button:
                    button["tooltip"] += ": the exercises notebook"


def _learner_download(app, learner: str, context: dict) -> str | None:
    """The site's URL (relative to the page) of the learner notebook ``learner``, which the page's
    banner offers with ``{download}`` (Sphinx copies it to ``_downloads/<hash>/<name>``); None when
    the page does not offer it."""
    files = getattr(app.env, "dlfiles", {}) or {}
    entry = files.get(learner) or files.get(str(Path(learner)))
    if not entry:
        return None
    return context["pathto"](f"_downloads/{entry[1]}", 1)


#: The landing page's figure: drawn at build time (:func:`circuitscope.figures.plotting.landing_figure`),
#: written to the site's ``_static`` folder, and placed on the page by the MyST substitution
#: ``{{ landing_figure }}`` (``book/intro.md``); never a remote image, never a committed one.
LANDING_PNG = "circuitscope-landing.png"
LANDING_KEY = "landing_figure"


def landing_figure_html(alt: str, credit: str, src: str = f"../_static/{LANDING_PNG}") -> str:
    """The landing figure's HTML: the image and its caption with the credit (or, for the figure the
    library computes when the published renders cannot be had, a caption that says so)."""
    if credit:
        caption = ("Ten units of InceptionV1 as the Circuits articles rendered them with the real "
                   "network, two per layer from early (curve detectors) to late (object parts, "
                   f"faces). {_linked(credit)}")  # fmt: skip
    else:
        caption = ("Curves at eight orientations, drawn by the course library: the stimuli chapter 3 "
                   "uses to measure curve detectors. (The articles' renders could not be had when "
                   "this site was built.)")  # fmt: skip
    return (f'<figure class="circuitscope-landing"><img src="{src}" alt="{html.escape(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip


def _linked(text: str) -> str:
    """``text`` escaped for HTML, with its URLs as links."""
    return re.sub(r"(https?://[^\s<]+[^\s<.,;)])", r'<a href="\1">\1</a>', html.escape(text, quote=False))


def _landing_figure(app) -> None:
    """Draw the landing figure into ``_static`` and set the ``{{ landing_figure }}`` substitution."""
    if app.builder.format != "html":
        return
    try:
        from circuitscope.figures import plotting

        fig, alt, credit = plotting.landing_figure()
        target = Path(app.outdir) / "_static" / LANDING_PNG
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=fig.dpi, bbox_inches="tight", facecolor="white")
        figure = landing_figure_html(alt, credit)
    except Exception as err:  # the page still builds; it says why it has no figure
        figure = f"*(The landing figure could not be drawn: {html.escape(str(err).splitlines()[0])})*"
    substitutions = dict(app.config.myst_substitutions or {}) if hasattr(app.config, "myst_substitutions") else {}
    substitutions[LANDING_KEY] = figure
    app.config.myst_substitutions = substitutions


def _copy_plotly(app, exception) -> None:
    """Serve plotly.js from the site itself (``_static/plotly.min.js``) for the interactive figures
    (:class:`circuitscope.figures.interactive.Interactive`): no CDN, so the site works offline."""
    if exception is not None or app.builder.format != "html":
        return
    try:
        import plotly
    except ImportError:  # no plotly: the interactive figures show their static image
        return
    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if source.is_file():
        target = Path(app.outdir) / "_static" / "plotly.min.js"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            shutil.copyfile(source, target)


def referenced_page(node, refdoc: str) -> str | None:
    """The page (document name) a cross-reference ``node`` (a ``pending_xref``) of page ``refdoc``
    names, or None when it names no page: a MyST link ``[text](instructors)``, or a ``{doc}`` role."""
    import posixpath

    target = str(node.get("reftarget", ""))
    if node.get("reftype") == "myst" and node.get("refdomain") == "doc":
        return target  # MyST resolved the path to a document name already
    if node.get("reftype") not in ("myst", "doc"):
        return None
    target = target.split("#", 1)[0]
    if target.startswith("/"):
        return page_name(target)
    return page_name(posixpath.normpath(posixpath.join(posixpath.dirname(refdoc), target)))


def _left_out_references():
    """A post-transform: a reference to a page the classroom release leaves out
    (``circuitscope_left_out``) becomes its text, where MyST or Sphinx would warn about a missing
    page (an error in the strict build). Made on demand: only the book's build needs Sphinx."""
    from docutils import nodes
    from sphinx import addnodes
    from sphinx.transforms.post_transforms import SphinxPostTransform

    class LeftOutReferences(SphinxPostTransform):
        default_priority = 8  # before MyST's resolver (9) and Sphinx's (10)

        def run(self, **kwargs) -> None:
            left_out = set(self.config.circuitscope_left_out)
            for node in list(self.document.findall(addnodes.pending_xref)) if left_out else []:
                if referenced_page(node, self.env.docname) in left_out:
                    text = node.astext() or str(node["reftarget"])
                    node.replace_self(nodes.inline(text, text))

    return LeftOutReferences


# -- citations: one author-year style, in the text and in the list ---------------------------------
#: The pybtex style of the book's bibliography (``bibtex_default_style`` in ``_config.yml``): the
#: list's labels are the text's citations, "Olah et al., 2020b" (``bibtex_reference_style:
#: author_year``); two works of the same first author and year carry the letter in their year.
BIBLIOGRAPHY_STYLE = "circuitscope"


def author_year_label(entry) -> str:
    """``"Olah et al., 2020b"``, ``"Olshausen and Field, 1997"``, ``"Gorton, 2024"``: what the
    author-year citation in the text says for ``entry`` (a pybtex entry)."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []

    def last(person) -> str:
        name = " ".join(person.last_names) or str(person)
        return name.replace("{", "").replace("}", "")

    if not people:
        who = entry.fields.get("organization") or entry.fields.get("title") or entry.key
    elif len(people) == 1:
        who = last(people[0])
    elif len(people) == 2:
        who = f"{last(people[0])} and {last(people[1])}"
    else:
        who = f"{last(people[0])} et al."
    return f"{who}, {entry.fields.get('year', 'n.d.')}".replace("{", "").replace("}", "")


def register_bibliography_style() -> None:
    """Register :data:`BIBLIOGRAPHY_STYLE` with pybtex: its ``plain`` formatting, author-year labels."""
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.plain import Style as Plain
    from pybtex.style.labels import BaseLabelStyle
    from pybtex.style.sorting import BaseSortingStyle

    class AuthorYearLabels(BaseLabelStyle):
        def format_labels(self, sorted_entries):
            for entry in sorted_entries:
                yield author_year_label(entry)

    class ByLabel(BaseSortingStyle):  # the list in the order of its labels: 2020a before 2020b
        def sorting_key(self, entry):
            return (author_year_label(entry).lower(), entry.fields.get("title", "").lower())

    class AuthorYearStyle(Plain):
        default_label_style = AuthorYearLabels
        default_sorting_style = ByLabel

    with contextlib.suppress(Exception):  # registered already (a second Sphinx app in one process)
        register_plugin("pybtex.style.labels", "circuitscope_author_year", AuthorYearLabels)
    with contextlib.suppress(Exception):
        register_plugin("pybtex.style.formatting", BIBLIOGRAPHY_STYLE, AuthorYearStyle)


def setup(app):
    """Sphinx entry point (``sphinx.extra_extensions: [circuitscope_course.pages]``)."""
    register_bibliography_style()
    # After sphinx-book-theme made its launch buttons (priority 501).
    app.connect("html-page-context", _learner_launch_links, priority=502)
    app.connect("build-finished", _copy_plotly)
    # Before MyST reads its configuration (priority 500), so the substitution is there.
    app.connect("builder-inited", _landing_figure, priority=400)
    # Pages a classroom release leaves out (Classroom.config sets it; empty otherwise).
    app.add_config_value("circuitscope_left_out", [], "env")
    app.add_post_transform(_left_out_references())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
