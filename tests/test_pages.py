"""The exercises on the site and the Colab install cell (``circuitscope_course.pages``).

Fast tests check the committed files: the exercise pages are what ``solutions/`` makes, their
stubs and checks are what nbgrader releases (``exercises/``), hidden tests and solution markers
never appear, and every learner-facing notebook carries the current install cell. The slow test
builds a small book holding the chapter 1 exercise page twice, as it is and as the classroom
release, and reads the HTML.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import yaml

from circuitscope_course import cli, pages
from circuitscope_course.pages import Site

ROOT = Path(__file__).resolve().parents[1]
SITE = Site.read(ROOT)
EXERCISES = pages.exercises(ROOT)
needs_exercises = pytest.mark.skipif(not EXERCISES, reason="solutions/ has no assignments yet")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
BUILD_TIMEOUT = 900


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _by_id(nb) -> dict:
    return {cell.get("id"): cell for cell in nb.cells}


def _nbgrader(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _fenced_code(markdown: str) -> str:
    match = re.fullmatch(r"(`{3,})python\n(.*)\n\1", markdown, flags=re.DOTALL)
    assert match, f"not a fenced Python block:\n{markdown}"
    return match.group(2)


# -- the exercise pages: committed, in sync, and safe -------------------------------------------
@needs_exercises
def test_pages_are_in_sync_with_solutions():
    stale = pages.write_pages(ROOT, check=True)
    assert not stale, f"out of date (run `circuitscope-course pages`): {[str(p) for p in stale]}"
    assert cli.main(["--root", str(ROOT), "pages", "--check"]) == 0


@needs_exercises
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.page)
def test_pages_show_no_hidden_tests_and_no_markers(exercise):
    text = (ROOT / exercise.page).read_text(encoding="utf-8")
    for marker in MARKERS:
        assert marker not in text, f"{exercise.page}: {marker}"
    hidden = pages.secret_lines(ROOT, solutions=False)
    assert hidden, "the solutions have no hidden tests: is secret_lines broken?"
    shown = [line for line in hidden if line in pages.published_text(ROOT / exercise.page)]
    assert not shown, f"{exercise.page} shows hidden test code: {shown}"


@needs_exercises
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.page)
def test_the_setup_cell_hides_its_stderr_on_the_site(exercise):
    """Its stderr is the weights warning; the page shows the notice box (test_book) instead."""
    source, page = _read(ROOT / exercise.source), _read(ROOT / exercise.page)
    setup = [c for c in source.cells if _nbgrader(c).get("grade_id") == pages.SETUP_ID]
    assert len(setup) == 1
    assert "remove-stderr" in _by_id(page)[setup[0].id].metadata["tags"]
    others = [c for c in page.cells if c.get("id") != setup[0].id and "remove-stderr" in c.metadata.get("tags", [])]
    assert not others, "only the setup cell hides its stderr"


@needs_exercises
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.page)
def test_stubs_and_checks_are_what_nbgrader_releases(exercise):
    """Each stub, and each check cell, is the cell of the nbgrader release in exercises/."""
    source, page, release = (_read(ROOT / p) for p in (exercise.source, exercise.page, exercise.learner))
    page_cells, released = _by_id(page), _by_id(release)
    solutions = [c for c in source.cells if _nbgrader(c).get("solution") and c.cell_type == "code"]
    tests = [c for c in source.cells if _nbgrader(c).get("grade") and not _nbgrader(c).get("solution")]
    assert solutions and tests
    for cell in solutions:
        stub = page_cells[f"{cell.id}-stub"]
        assert stub.cell_type == "markdown"
        assert _fenced_code(stub.source) == released[cell.id].source
        assert "raise NotImplementedError()" in stub.source
    for cell in tests:
        assert page_cells[cell.id].cell_type == "code"
        assert page_cells[cell.id].source == released[cell.id].source
        assert page_cells[cell.id].source.strip(), "the visible check is gone"


@needs_exercises
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.page)
def test_each_solution_is_folded_right_after_its_stub(exercise):
    source, page = _read(ROOT / exercise.source), _read(ROOT / exercise.page)
    ids = [c.get("id") for c in page.cells]
    for cell in (c for c in source.cells if _nbgrader(c).get("solution") and c.cell_type == "code"):
        shown = page.cells[ids.index(cell.id)]
        assert ids.index(cell.id) == ids.index(f"{cell.id}-stub") + 1
        assert shown.cell_type == "code" and "hide-input" in shown.metadata["tags"]
        assert shown.metadata["mystnb"]["code_prompt_show"] == "Show solution"
        lines = cell.source.split("\n")
        assert shown.source == "\n".join(ln for ln in lines if not re.search("(BEGIN|END) SOLUTION", ln))
    # Everything else is there, in order: the page is the notebook, with stubs and a banner added.
    kept = [c.id for c in source.cells]
    assert [i for i in ids if i in kept] == kept
    assert all(not c.get("outputs") for c in page.cells if c.cell_type == "code"), "outputs are committed"
    assert page.metadata["circuitscope"]["learner_notebook"] == exercise.learner


@needs_exercises
def test_every_page_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    for exercise in EXERCISES:
        stem = exercise.page.removesuffix(".ipynb")
        listed = re.search(rf"^\s*- file: {re.escape(stem)}\s*$", toc, flags=re.MULTILINE)
        assert listed, f"{stem} is not in _toc.yml"


@needs_exercises
def test_banner_opens_the_learner_notebook_from_the_configured_repository(tmp_path):
    exercise = EXERCISES[0]
    page = _read(ROOT / exercise.page)
    assert page.cells[0].source.startswith("# ") and "\n" not in page.cells[0].source  # the title
    banner = page.cells[1].source
    colab = f"https://colab.research.google.com/github/{SITE.owner_repo}/blob/{SITE.branch}/{exercise.learner}"
    assert f"[Open the exercises in Colab]({colab})" in banner
    download = re.search(r"\{download\}`[^<`]*<([^>]+)>`", banner).group(1)
    assert (ROOT / Path(exercise.page).parent / download).resolve() == (ROOT / exercise.learner).resolve()
    # One place to change: another repository in _config.yml, other links.
    moved = tmp_path / "moved"
    for name in ("solutions", "exercises"):
        shutil.copytree(ROOT / name, moved / name)
    shutil.copy(ROOT / "pyproject.toml", moved / "pyproject.toml")
    config = (ROOT / "_config.yml").read_text(encoding="utf-8").replace(SITE.repo_url, "https://github.com/someone/fork")
    (moved / "_config.yml").write_text(config, encoding="utf-8")
    site = Site.read(moved)
    assert (site.owner_repo, site.branch) == ("someone/fork", SITE.branch)
    text = json.dumps(pages.make_page(site, exercise))
    assert site.colab_url(exercise.learner) in text and SITE.colab_url(exercise.learner) not in text
    assert "https://github.com/someone/fork@v" in pages.install_source(site)


def test_site_refuses_a_repository_colab_cannot_open(tmp_path):
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://gitlab.com/a/b\n")
    with pytest.raises(pages.PagesError, match="github.com"):
        Site.read(tmp_path)


# -- the classroom release -------------------------------------------------------------------------
@needs_exercises
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.page)
def test_classroom_page_holds_no_solution(exercise):
    nb = pages.make_page(SITE, exercise, classroom=True)
    text = "\n".join(c.source for c in nb.cells)
    secrets = pages.secret_lines(ROOT, solutions=True)
    assert any(what.startswith("a solution") for what in secrets.values())
    shown = [line for line in secrets if line in text]
    assert not shown, f"the classroom page shows {shown}"
    runners = [c for c in nb.cells if "run_solution(" in c.source]
    solutions = [c for c in _read(ROOT / exercise.source).cells if _nbgrader(c).get("solution")]
    assert len(runners) == len(solutions)
    assert all(c.metadata["tags"] == ["remove-cell"] for c in runners)
    assert sum(pages.CLASSROOM_NOTE in c.source for c in nb.cells) == len(solutions)
    assert nb.metadata["circuitscope"]["classroom"] is True


@needs_exercises
def test_run_solution_defines_the_solution_in_the_namespace(monkeypatch):
    import torch

    exercise = EXERCISES[0]
    monkeypatch.chdir(ROOT / Path(exercise.page).parent)  # where the page runs while the book builds
    source = _read(ROOT / exercise.source)
    grade_id = next(_nbgrader(c)["grade_id"] for c in source.cells if "def strongest_channels" in c.source)
    namespace = {"torch": torch}
    pages.run_solution(namespace, exercise.source, grade_id)
    _, channels = namespace["strongest_channels"](torch.arange(24.0).reshape(1, 6, 2, 2), k=2)
    assert channels.tolist() == [[5, 4]]
    with pytest.raises(KeyError):
        pages.run_solution({}, exercise.source, "no-such-cell")


def test_check_published_finds_hidden_tests_and_solutions(tmp_path):
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (html / "book" / "ok.html").write_text("<p>ch1.check_preprocess(preprocess)</p>")
    assert pages.check_published(html, ROOT, classroom=True) == []
    secrets = pages.secret_lines(ROOT, solutions=True)
    hidden = next(line for line, what in secrets.items() if what.startswith("a hidden test"))
    solution = next(line for line, what in secrets.items() if what.startswith("a solution"))
    # Pygments splits code into spans and escapes it: the check reads the text, not the markup.
    spans = "".join(f"<span>{ch}</span>" for ch in solution).replace(">&<", ">&amp;<")
    (html / "book" / "leak.html").write_text(f"<pre>{spans}</pre>")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(hidden)])
    (html / "_sources").mkdir()
    nbformat.write(nb, html / "_sources" / "leak.ipynb")
    problems = pages.check_published(html, ROOT, classroom=True)
    assert len(problems) == 2 and any("leak.html" in p for p in problems), problems
    assert [p for p in pages.check_published(html, ROOT, classroom=False)] == [
        p for p in problems if "leak.ipynb" in p
    ]


def test_lines_a_learner_notebook_or_a_chapter_page_shows_are_not_secrets():
    secrets = pages.secret_lines(ROOT, solutions=True)
    shown = "\n".join(
        [pages.published_text(ROOT / e.learner) for e in EXERCISES]
        + [pages.published_text(p) for p in sorted((ROOT / "book").rglob("index.ipynb"))]
    )
    assert secrets and not [line for line in secrets if line in shown]


def test_launch_buttons_of_an_exercise_page_open_the_learner_notebook(tmp_path):
    page = tmp_path / "book" / "ch" / "exercises.ipynb"
    page.parent.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["circuitscope"] = {"learner_notebook": "exercises/ch/ch.ipynb"}
    nbformat.write(nb, page)
    app = SimpleNamespace(
        env=SimpleNamespace(doc2path=lambda name: str(tmp_path / f"{name}.ipynb")),
        config={"html_theme_options": {"path_to_docs": ""}},
    )
    colab = "https://colab.research.google.com/github/o/r/blob/main/book/ch/exercises.ipynb"
    binder = "https://mybinder.org/v2/gh/o/r/main?urlpath=lab/tree/book/ch/exercises.ipynb"
    context = {"header_buttons": [{"label": "launch-buttons", "buttons": [{"url": colab}, {"url": binder}]}]}
    pages._learner_launch_links(app, "book/ch/exercises", "page.html", context, None)
    urls = [b["url"] for b in context["header_buttons"][0]["buttons"]]
    assert urls == [colab.replace("book/ch/exercises", "exercises/ch/ch"),
                    binder.replace("book/ch/exercises", "exercises/ch/ch")]  # fmt: skip


# -- the install cell ------------------------------------------------------------------------------
def test_install_cell_is_pinned_to_this_release():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    source = pages.install_source(SITE)
    repo = config["repository"]["url"].rstrip("/")
    assert f'%pip install "circuitscope @ git+{repo}@v{project["version"]}"' in source
    assert " -q " not in source, "pip's progress must show: the install is minutes on a fresh machine"
    # Until the release tag is published, the cell falls back to the branch, and says so.
    branch = config["repository"].get("branch", "main")
    assert f'%pip install "circuitscope @ git+{repo}@{branch}"' in source
    assert "It moves" in source and f"v{project['version']} could not be installed" in source
    assert 'if importlib.util.find_spec("circuitscope") is None:' in source
    assert "do not edit" in source
    import circuitscope

    assert circuitscope.__version__ == project["version"], "pyproject.toml and __version__ disagree"


def _learner_facing() -> list[Path]:
    found = sorted((ROOT / "solutions").glob("*/*.ipynb")) + sorted((ROOT / "exercises").glob("*/*.ipynb"))
    found += [ROOT / e.page for e in EXERCISES]
    found += [p for p, _ in pages.install_targets(ROOT) if p not in found]
    return found


@pytest.mark.parametrize("path", _learner_facing(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_learner_facing_notebook_has_the_current_install_cell(path):
    nb = _read(path)
    cells = [c for c in nb.cells if pages.is_install_cell(c)]
    assert len(cells) == 1, f"{path}: {len(cells)} install cells (fix: circuitscope-course install-cells)"
    cell = cells[0]
    assert cell.source == pages.install_source(SITE), f"{path}: stale (circuitscope-course install-cells)"
    assert {"install", "remove-cell"} <= set(cell.metadata["tags"]), "it must be removed from the site"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert first_code is cell, f"{path}: the install cell is not the first code cell"
    rel = path.relative_to(ROOT).parts[0]
    if rel == "solutions":
        assert cell.metadata["nbgrader"] == pages.INSTALL_NBGRADER
    if rel == "exercises":  # nbgrader locked it
        assert cell.metadata["nbgrader"]["locked"] and cell.metadata["editable"] is False


def test_install_cells_are_current():
    assert pages.write_install_cells(ROOT, check=True) == []
    targets = {p.relative_to(ROOT).as_posix() for p, _ in pages.install_targets(ROOT)}
    assert "book/ch1_introduction/index.ipynb" in targets
    assert not any(t.endswith("/exercises.ipynb") for t in targets), "generated pages get it from solutions/"


def test_install_cell_goes_after_the_title_and_is_refreshed_in_place():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("x = 1"),
    ])  # fmt: skip
    first = pages.with_install_cell(nb, SITE, nbgrader=True)
    assert [c.get("id") for c in first.cells][1] == "install" and len(first.cells) == 3
    assert pages.with_install_cell(first, SITE, nbgrader=True) == first  # idempotent
    stale = nbformat.from_dict(json.loads(json.dumps(first)))
    stale.cells[1].source = "%pip install circuitscope"  # hand-edited, unpinned
    stale.cells.append(nbformat.v4.new_code_cell("# another", metadata={"tags": ["install"]}))
    fixed = pages.with_install_cell(stale, SITE, nbgrader=True)
    assert fixed == first
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("y = 2")])
    assert pages.with_install_cell(other, SITE, nbgrader=False).cells[0].id == "install"


def test_install_cell_runs_pip_only_when_the_library_is_missing(monkeypatch):
    """The cell as IPython runs it: ``%pip`` inside the ``if`` becomes a line-magic call."""
    import importlib.util

    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(pages.install_source(SITE))
    calls = []
    shell = SimpleNamespace(run_line_magic=lambda name, line: calls.append((name, line)))
    exec(code, {"get_ipython": lambda: shell})
    assert calls == [], "pip ran although circuitscope is installed"
    real_find_spec = importlib.util.find_spec
    missing = lambda name, *a: None if name == "circuitscope" else real_find_spec(name, *a)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", missing)
    exec(code, {"get_ipython": lambda: shell})
    # The tag first; the library still missing (the tag not published), then the branch.
    assert calls == [("pip", f'install "{SITE.pip_requirement}"'), ("pip", f'install "{SITE.branch_requirement}"')]
    assert SITE.pip_requirement.endswith(f"@v{SITE.version}")
    assert SITE.branch_requirement.endswith(f"@{SITE.branch}")


def test_install_cell_stops_at_the_release_when_it_installs(monkeypatch):
    import importlib.util

    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(pages.install_source(SITE))
    calls = []
    installed = []
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *a):
        if name == "circuitscope":
            return object() if installed else None
        return real_find_spec(name, *a)

    def pip(name, line):
        calls.append(line)
        installed.append(line)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    exec(code, {"get_ipython": lambda: SimpleNamespace(run_line_magic=pip)})
    assert calls == [f'install "{SITE.pip_requirement}"']


def test_exercise_page_download_button_gives_the_learner_notebook():
    """The header's download button of an exercise page offers the learner notebook (the file the
    banner's download link gives), not the page's own source, which holds the solutions."""
    exercise = EXERCISES[0]
    learner = exercise.learner
    env = SimpleNamespace(doc2path=lambda name: ROOT / f"{name}.ipynb",
                          dlfiles={learner: ({exercise.page[:-6]}, f"abc123/{Path(learner).name}")})  # fmt: skip
    app = SimpleNamespace(env=env, config={"html_theme_options": {}})
    sources = "../../_sources/" + exercise.page
    context = {
        "pathto": lambda target, resource=0: "../../" + target,
        "header_buttons": [{"label": "download-buttons", "buttons": [
            {"type": "link", "url": sources, "text": ".ipynb", "label": "download-notebook-button"},
            {"type": "link", "url": sources.replace(".ipynb", ".md"), "text": ".md", "label": "download-source-button"},
            {"type": "javascript", "javascript": "window.print()", "text": ".pdf", "label": "download-pdf-button"},
        ]}],
    }  # fmt: skip
    pages._learner_launch_links(app, exercise.page[:-6], "page.html", context, None)
    buttons = context["header_buttons"][0]["buttons"]
    links = [b["url"] for b in buttons if b["type"] == "link"]
    assert links == [f"../../_downloads/abc123/{Path(learner).name}"], links
    assert [b["label"] for b in buttons] == ["download-notebook-button", "download-pdf-button"]


def test_bibliography_labels_are_the_texts_author_year_citations():
    """One citation style: the list's labels read as the text's author-year citations, and no two
    entries share one."""
    import pybtex.database

    db = pybtex.database.parse_file(str(ROOT / "book" / "references.bib"))
    labels = {key: pages.author_year_label(entry) for key, entry in db.entries.items()}
    assert labels["olah2020zoom"] == "Olah et al., 2020c"
    assert labels["olshausen1997sparse"] == "Olshausen and Field, 1997"
    assert labels["gorton2024missing"] == "Gorton, 2024"
    assert labels["lucid"] == "The Lucid authors, 2018"
    dupes = sorted(label for label in labels.values() if list(labels.values()).count(label) > 1)
    assert not dupes, f"two entries cite alike (give their years a letter, 2020a/2020b): {dupes}"
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert config["bibtex_default_style"] == pages.BIBLIOGRAPHY_STYLE
    assert config["bibtex_reference_style"] == "author_year"
    pages.register_bibliography_style()
    from pybtex.plugin import find_plugin

    style = find_plugin("pybtex.style.formatting", pages.BIBLIOGRAPHY_STYLE)()
    formatted = list(style.format_entries(db.entries.values()))
    assert {e.label for e in formatted} == set(labels.values())
    order = [e.label for e in style.format_bibliography(db).entries]
    assert order.index("Olah et al., 2020a") < order.index("Olah et al., 2020b") < order.index("Olah et al., 2020c")


def test_install_cell_is_a_no_op_in_a_real_kernel(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    from circuitscope_course.course import _kernel_dir

    # The "python3" kernel is this Python, which has circuitscope installed.
    paths = [str(_kernel_dir()), os.environ.get("JUPYTER_PATH")]
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, paths)))
    nb = nbformat.v4.new_notebook(cells=[pages.install_cell(SITE, nbgrader=False),
                                         nbformat.v4.new_code_cell("print('after')")])  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources=resources).execute()
    assert nb.cells[0].outputs == [], nb.cells[0].outputs
    assert nb.cells[1].outputs[0].text == "after\n"


# -- slow: the site, as it is and as the classroom release ----------------------------------------
def _mini_book(dest: Path, exercise) -> Path:
    """The repository's configuration and course, with a landing page and one exercise page."""
    root = dest / "minibook"
    (root / "book").mkdir(parents=True)
    for name in ("_config.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, root / name)
    for name in ("solutions", "exercises"):
        shutil.copytree(ROOT / name, root / name)
    shutil.copy(ROOT / "book" / "references.bib", root / "book" / "references.bib")
    shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    page = exercise.page.removesuffix(".ipynb")
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/intro\nchapters:\n  - file: {page}\n")
    (root / "book" / "intro.md").write_text("# A test book\n\nThe exercise page only.\n")
    return root


def _build(root: Path, output: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CIRCUITSCOPE_WEIGHTS"}
    env["CIRCUITSCOPE_CACHE"] = str(output / "weights-cache")
    cmd = [sys.executable, "-m", "circuitscope.tools.book", "build", str(root), "--output", str(output), *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    output_tail = f"{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{output_tail}"
    return result


_DETAILS = re.compile(r'<details class="[^"]*\bhide above-input\b[^"]*">(.*?)</details>', re.DOTALL)


@pytest.mark.slow
@needs_exercises
def test_the_site_folds_solutions_and_the_classroom_release_drops_them(tmp_path):
    exercise = EXERCISES[0]
    root = _mini_book(tmp_path, exercise)
    source = _read(ROOT / exercise.source)
    n_solutions = sum(bool(_nbgrader(c).get("solution")) for c in source.cells)
    n_checks = sum(bool(_nbgrader(c).get("grade")) for c in source.cells)
    solution_lines = [ln for ln, what in pages.secret_lines(ROOT, solutions=True).items()
                      if what == f"a solution of {exercise.source}"]  # fmt: skip
    assert solution_lines
    page_html = Path(exercise.page).with_suffix(".html")

    # As it is: the build writes the page, every solution is in a collapsed <details>, checks pass.
    _build(root, tmp_path / "site")
    assert (root / exercise.page).read_text() == (ROOT / exercise.page).read_text()
    html_dir = tmp_path / "site" / "_build" / "html"
    text = (html_dir / page_html).read_text(encoding="utf-8")
    folded = _DETAILS.findall(text)
    assert len(folded) == n_solutions
    assert all("Show solution" in block for block in folded)
    assert not re.search(r"<details[^>]*\bopen\b", text), "a solution is unfolded"
    inside = pages.published_text(_write(tmp_path / "inside.html", "".join(folded)))
    outside = pages.published_text(_write(tmp_path / "outside.html", _DETAILS.sub("", text)))
    assert all(line in inside for line in solution_lines)
    assert not [line for line in solution_lines if line in outside], "solution code outside a dropdown"
    assert outside.count("raise NotImplementedError()") >= n_solutions  # the stubs
    assert len(re.findall(r"✔ \w+: all \d+ cases pass", outside)) == n_checks
    assert pages.check_published(html_dir, root, classroom=False) == []
    links = re.findall(r'href="([^"]+)"', text)
    learner_colab = SITE.colab_url(exercise.learner)
    assert learner_colab in links, "no banner link to the learner notebook"
    assert not [u for u in links if "colab.research" in u and u != learner_colab], "a Colab link to the page"
    downloads = list((html_dir / "_downloads").glob(f"*/{Path(exercise.learner).name}"))
    assert downloads and downloads[0].read_bytes() == (ROOT / exercise.learner).read_bytes()

    # The classroom release: no solution code in any file of the site; figures and checks still run.
    _build(root, tmp_path / "classroom", "--classroom")
    assert (root / exercise.page).read_text() == (ROOT / exercise.page).read_text(), "the tree changed"
    html_dir = tmp_path / "classroom" / "_build" / "html"
    text = (html_dir / page_html).read_text(encoding="utf-8")
    assert not _DETAILS.findall(text)
    assert pages.check_published(html_dir, root, classroom=True) == []
    shown = pages.published_text(html_dir / page_html)
    assert shown.count("The solution is not published in this release") == n_solutions
    assert len(re.findall(r"✔ \w+: all \d+ cases pass", shown)) == n_checks
    assert "run_solution" not in shown


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
