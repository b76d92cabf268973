"""The classroom release of the site stands alone (``build --classroom``, ``circuitscope_course.pages``).

It leads to no copy of the solutions: no link to the course's repository (it holds ``solutions/``)
in any form (GitHub, Colab, Binder, a clone hint, an install cell), none to ``solutions/``, and
no instructors' page. Fast tests check the pieces (the check itself on small files, the staged
configuration, table of contents, banners and install cells); the slow tests build the whole
book once as the class gets it, and a small book that names a learner repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import quote, unquote

import nbformat
import pytest
import yaml
from book_harness import ROOT, mini_book, run_build

from circuitscope.tools import book
from circuitscope_course import pages
from circuitscope_course.pages import Classroom, Site

PUBLIC = Site.read(ROOT)
OWNER, REPO = PUBLIC.owner_repo.split("/")
LEARNER = "https://github.com/example-class/circuits-learners"
EXERCISES = pages.exercises(ROOT)
needs_exercises = pytest.mark.skipif(not EXERCISES, reason="solutions/ has no assignments yet")


def _site(tmp_path: Path, files: dict[str, str]) -> Path:
    """A built site (``html/``) holding ``files`` (path: text)."""
    html = tmp_path / "html"
    for name, text in files.items():
        (html / name).parent.mkdir(parents=True, exist_ok=True)
        (html / name).write_text(text, encoding="utf-8")
    return html


def _notebook_text(code: str) -> str:
    return nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]))


# -- the check, on small sites -----------------------------------------------------------------
CLEAN = {
    "book/intro.html": (
        f'<a href="{LEARNER}">repository</a> <a href="setup.html">setup</a> '
        '<a href="../_static/x.css">css</a> <a href="ch1/exercises.html#solutions">anchor</a> '
        '<a href="https://github.com/ProGamerGov/pytorch-old-tensorflow-models">weights</a> '
        f'<a href="https://github.com/{OWNER}/{REPO}-learners">a look-alike name</a> '
        f"<p>For instructors</p><pre>~/.cache/{OWNER}/{REPO}_course/weights</pre>"
    ),
    "book/setup.html": f'<a href="{Classroom(PUBLIC, LEARNER).site.colab_url("exercises/a/b.ipynb")}">Colab</a>',
    "_downloads/abc/ch1_exercises.ipynb": _notebook_text(f'%pip install "circuitscope @ git+{LEARNER}@v0.1.0"'),
}


def test_a_site_that_leads_nowhere_forbidden_passes(tmp_path):
    assert pages.check_classroom(_site(tmp_path, CLEAN), ROOT) == []


#: One file each, that leads a learner to the public repository, to solutions/ or to the instructors' page.
LEAKS = {
    "repository button": ("book/intro.html", f'<a href="{PUBLIC.repo_url}" class="btn">repository</a>'),
    "issues button": ("book/intro.html", f'<a href="{PUBLIC.repo_url}/issues/new?title=x">issue</a>'),
    "edit button": ("book/intro.html", f'<a href="{PUBLIC.repo_url}/edit/main/book/intro.md">edit</a>'),
    "Colab button": ("book/ch1/index.html", f'<a href="{PUBLIC.colab_url("book/ch1/x.ipynb")}">C</a>'),
    "Binder button": ("book/ch1/index.html", f'<a href="https://mybinder.org/v2/gh/{OWNER}/{REPO}/main">B</a>'),
    "Binder on any git host": (
        "book/ch1/index.html", f'<a href="https://mybinder.org/v2/git/{quote(PUBLIC.repo_url, safe="")}/main">B</a>'
    ),
    "clone hint in a banner": ("book/ch1/exercises.html", f"<p>clone <a href='{PUBLIC.repo_url}.git'>it</a>"),
    "URL in a code block": ("book/intro.html", f"<pre><span>git clone {PUBLIC.repo_url}.git</span></pre>"),
    "GitHub Pages site": ("book/intro.html", f'<a href="https://{OWNER}.github.io/{REPO}/">the site</a>'),
    "install cell of a download": ("_downloads/abc/ch1_exercises.ipynb", _notebook_text(
        f'%pip install -q "circuitscope @ git+{PUBLIC.repo_url}@v0.1.0"')),
    "link to solutions/": ("book/ch1/exercises.html",
                           '<a href="../../solutions/ch1/ch1_exercises.ipynb">the answers</a>'),
    "solutions/ of any repository": ("book/ch1/exercises.html",
                                     f'<a href="{LEARNER}/blob/main/solutions/ch1/a.ipynb">x</a>'),
    "link to the instructors' page": ("book/intro.html", '<a href="instructors.html#grading">guide</a>'),
    "the instructors' page itself": ("book/instructors.html", "<h1>For instructors</h1>"),
    "the instructors' page's source": ("_sources/book/instructors.md", "# For instructors\n"),
}


@pytest.mark.parametrize("name", LEAKS)
def test_the_check_finds_each_way_to_the_solutions(tmp_path, name):
    where, text = LEAKS[name]
    html = _site(tmp_path, {**CLEAN, where: CLEAN.get(where, "") + text})
    problems = pages.check_classroom(html, ROOT)
    assert len(problems) == 1 and problems[0].startswith(where), problems


def test_a_relative_link_is_read_from_its_page(tmp_path):
    # ../instructors.html from book/ch1/ is book/instructors.html; from the site's root it is not.
    html = _site(tmp_path, {"book/ch1/index.html": '<a href="../instructors.html">x</a>',
                            "other.html": '<a href="instructors.html">x</a>'})  # fmt: skip
    assert [p.split(" ")[0] for p in pages.check_classroom(html, ROOT)] == ["book/ch1/index.html"]


@pytest.mark.parametrize("target, expected", [
    ({"reftype": "myst", "refdomain": None, "reftarget": "instructors"}, "book/instructors"),
    ({"reftype": "myst", "refdomain": None, "reftarget": "../instructors.md#grade"}, "book/instructors"),
    ({"reftype": "myst", "refdomain": "doc", "reftarget": "book/instructors"}, "book/instructors"),
    ({"reftype": "doc", "refdomain": "std", "reftarget": "/book/instructors"}, "book/instructors"),
    ({"reftype": "ref", "refdomain": "std", "reftarget": "instructors"}, None),
])  # fmt: skip
def test_referenced_page(target, expected):
    refdoc = "book/ch1/index" if target["reftarget"].startswith("..") else "book/intro"
    assert pages.referenced_page(target, refdoc) == expected


# -- the staged book ---------------------------------------------------------------------------
def test_without_pages_drops_the_instructors_page_and_the_parts_it_empties():
    toc = {"root": "book/intro", "parts": [
        {"caption": "A", "chapters": [{"file": "book/a"}, {"file": "book/instructors.md"}]},
        {"caption": "Only for instructors", "chapters": [{"file": "book/instructors"}]},
        {"caption": "B", "chapters": [{"file": "book/b", "sections": [{"file": "book/instructors"}]}]},
    ]}  # fmt: skip
    assert pages.without_pages(toc) == {"root": "book/intro", "parts": [
        {"caption": "A", "chapters": [{"file": "book/a"}]},
        {"caption": "B", "chapters": [{"file": "book/b", "sections": []}]},
    ]}  # fmt: skip
    with pytest.raises(pages.PagesError, match="root page"):
        pages.without_pages({"root": "book/instructors"})


def test_the_real_toc_loses_the_instructors_page_only():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    before, after = json.dumps(toc), json.dumps(pages.without_pages(toc))
    assert '"book/instructors"' in before and '"book/instructors"' not in after
    assert after.count('"file"') == before.count('"file"') - 1


def _config(learner: str | None) -> dict:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return Classroom(PUBLIC, learner).config(config)


def test_classroom_config_without_a_learner_repository_links_nowhere():
    config = _config(None)
    assert config["repository"]["url"] == ""
    buttons = ("use_repository_button", "use_issues_button", "use_edit_page_button")
    assert not any(config["html"][button] for button in buttons)
    launch = config["launch_buttons"]
    assert not any(launch.get(k) for k in ("colab_url", "binderhub_url", "jupyterhub_url", "thebe"))
    assert config["parse"]["myst_substitutions"]["repo_url"] == pages.NO_REPOSITORY
    assert config["sphinx"]["config"]["circuitscope_left_out"] == ["book/instructors"]
    assert PUBLIC.owner_repo not in json.dumps(config)


def test_classroom_config_with_a_learner_repository_points_there():
    config = _config(LEARNER)
    assert config["repository"]["url"] == LEARNER and config["html"]["use_repository_button"]
    assert not config["html"]["use_issues_button"] and not config["html"]["use_edit_page_button"]
    assert config["launch_buttons"]["colab_url"]  # Colab opens the learner repository's notebooks
    assert config["parse"]["myst_substitutions"]["repo_url"] == LEARNER
    assert PUBLIC.owner_repo not in json.dumps(config)


def test_classroom_read_takes_the_option_over_the_config_and_refuses_the_public_repository(tmp_path):
    config = {"repository": {"url": PUBLIC.repo_url},
              "classroom": {"learner_repository": LEARNER, "learner_branch": "spring"}}  # fmt: skip
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    assert Classroom.read(ROOT).learner_repo is None  # the repository's own default: no links
    configured = Classroom.read(tmp_path)
    assert (configured.learner_repo, configured.learner_branch) == (LEARNER, "spring")
    assert Classroom.read(tmp_path, "https://github.com/a/b.git/").learner_repo == "https://github.com/a/b"
    with pytest.raises(pages.PagesError, match="holds solutions/"):
        Classroom.read(tmp_path, PUBLIC.repo_url.upper().replace("HTTPS://GITHUB.COM", "https://github.com"))
    with pytest.raises(pages.PagesError, match="learner-repo"):
        Classroom.read(tmp_path, "https://gitlab.com/a/b")


def test_build_refuses_a_learner_repository_without_classroom_or_a_bad_one(capsys):
    assert book.main(["build", str(ROOT), "--learner-repo", LEARNER]) == 2
    assert "--classroom" in capsys.readouterr().err
    assert book.main(["build", str(ROOT), "--classroom", "--learner-repo", PUBLIC.repo_url]) == 2
    assert "holds solutions/" in capsys.readouterr().err


@needs_exercises
@pytest.mark.parametrize("learner", [None, LEARNER])
def test_classroom_banner_opens_the_learner_notebook_of_the_learner_repository_or_none(learner):
    exercise = EXERCISES[0]
    classroom = Classroom(PUBLIC, learner)
    banner = next(c.source for c in pages.make_page(classroom.site, exercise, classroom=True).cells
                  if "circuitscope-exercises-banner" in c.source)  # fmt: skip
    urls = re.findall(r"\]\((https?://[^)]+)\)", banner)
    assert PUBLIC.owner_repo not in banner
    assert f"<../../{exercise.learner}>" in banner  # the download of the learner notebook
    assert urls == ([classroom.site.colab_url(exercise.learner), LEARNER] if learner else [])


@pytest.mark.parametrize("learner", [None, LEARNER])
def test_install_cells_are_retargeted_and_stay_valid_for_nbgrader(tmp_path, learner):
    from nbgrader.utils import compute_checksum

    source = ROOT / "exercises"
    notebook = next(source.glob("*/*.ipynb"), None)
    if notebook is None:
        pytest.skip("exercises/ is empty")
    copy = tmp_path / notebook.name
    copy.write_text(notebook.read_text())
    code = Classroom(PUBLIC, learner).install_source()
    assert pages.retarget_install_cells(tmp_path, code) == [copy]
    original = next(c for c in nbformat.read(notebook, as_version=4).cells if pages.is_install_cell(c))
    cell = next(c for c in nbformat.read(copy, as_version=4).cells if pages.is_install_cell(c))
    assert cell.source == code and PUBLIC.owner_repo not in code
    assert (cell.id, cell.metadata.tags) == (original.id, original.metadata.tags)
    if "checksum" in original.metadata.get("nbgrader", {}):
        checksum = cell.metadata.nbgrader.checksum
        assert checksum == compute_checksum(cell) != original.metadata.nbgrader.checksum
    assert (f"git+{LEARNER}@v{PUBLIC.version}" in code) == bool(learner)
    assert pages.retarget_install_cells(tmp_path, code) == []  # already current


# -- slow: the whole book, as the class gets it ------------------------------------------------
def _fail(result) -> str:
    return f"the build failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"


@pytest.fixture(scope="module")
def classroom_site(tmp_path_factory):
    """The repository's book, built once as the classroom release (no learner repository)."""
    out = tmp_path_factory.mktemp("classroom")
    result = run_build(ROOT, out, cache=tmp_path_factory.mktemp("weights-cache"), args=("--classroom",))
    assert result.returncode == 0, _fail(result)
    return out / "_build" / "html"


def _files(html: Path) -> list[Path]:
    return [p for p in sorted(html.rglob("*")) if p.is_file()]


def _hrefs(html: Path) -> dict[str, list[str]]:
    """``{page: [href or src, ...]}`` of every HTML page (a plain reading, independent of the check)."""
    found = {}
    for path in html.rglob("*.html"):
        found[path.relative_to(html).as_posix()] = re.findall(r'(?:href|src)="([^"]*)"', path.read_text())
    return found


@pytest.mark.slow
def test_classroom_site_never_names_the_course_repository(classroom_site):
    # Every file, whatever its kind (pages, sources, downloads, search index, scripts), as bytes.
    forms = {PUBLIC.owner_repo.lower(), f"{OWNER}.github.io/{REPO}".lower()}

    def names_it(path: Path) -> bool:  # also %-quoted, as Binder writes a repository's URL
        text = unquote(unquote(path.read_bytes().decode("utf-8", "replace"))).lower()
        return any(form in text for form in forms)

    named = [p.relative_to(classroom_site).as_posix() for p in _files(classroom_site) if names_it(p)]
    assert not named, f"files that name {PUBLIC.repo_url}: {named}"
    launch = [(page, u) for page, urls in _hrefs(classroom_site).items() for u in urls
              if "colab.research.google.com" in u or "mybinder.org" in u]  # fmt: skip
    assert not launch, f"launch buttons with no learner repository to open: {launch[:5]}"


@pytest.mark.slow
def test_classroom_site_has_no_link_to_solutions(classroom_site):
    to_solutions = [(page, u) for page, urls in _hrefs(classroom_site).items() for u in urls
                    if "solutions/" in unquote(u)]  # fmt: skip
    assert not to_solutions
    assert not [p for p in _files(classroom_site) if "solutions" in p.relative_to(classroom_site).parts]


@pytest.mark.slow
def test_classroom_site_leaves_out_the_instructors_page(classroom_site):
    assert not list(classroom_site.rglob("instructors.*")), "the instructors' page or its source is published"
    index = (classroom_site / "searchindex.js").read_text()
    assert "book/instructors" not in index
    linking = [page for page, urls in _hrefs(classroom_site).items() if any("instructors." in u for u in urls)]
    assert not linking, f"pages linking to the instructors' page: {linking}"
    intro = pages.published_text(classroom_site / "book" / "intro.html")
    assert "For instructors" in intro and pages.NO_REPOSITORY in intro  # the text stays, without the link


@pytest.mark.slow
def test_classroom_site_passes_its_own_check_and_still_offers_the_learner_notebooks(classroom_site):
    assert pages.check_classroom(classroom_site, ROOT) == []
    downloads = {p.name for p in (classroom_site / "_downloads").rglob("*.ipynb")}
    assert {Path(e.learner).name for e in EXERCISES} <= downloads


# -- slow: a small book whose classroom release names a learner repository ---------------------
@pytest.mark.slow
def test_classroom_with_a_learner_repository_points_every_link_there(tmp_path):
    root = mini_book(tmp_path, ["print('hello')"])
    (root / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (root / "book" / "instructors.md").write_text((ROOT / "book" / "instructors.md").read_text())
    (root / "book" / "intro.md").write_text(
        "# A test book\n\nClone the repository ({{ repo_url }}); see [the guide](instructors).\n"
    )
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/page\n  - file: book/instructors\n"
    )
    page = root / "book" / "page.ipynb"
    nb = pages.with_install_cell(nbformat.read(page, as_version=4), Site.read(root), nbgrader=False)
    nbformat.write(nb, page)
    out = tmp_path / "out"
    result = run_build(root, out, cache=tmp_path / "cache", args=("--classroom", "--learner-repo", LEARNER))
    assert result.returncode == 0, _fail(result)
    html = out / "_build" / "html"

    assert pages.check_classroom(html, root) == []
    assert not list(html.rglob("instructors.*"))
    text = (html / "book" / "page.html").read_text()
    assert f'href="{LEARNER}"' in text, "no repository button to the learner repository"
    learner = Classroom(Site.read(root), LEARNER).site
    assert learner.colab_url("book/page.ipynb") in text, "no Colab button on the learner repository"
    assert PUBLIC.owner_repo not in text
    intro = (html / "book" / "intro.html").read_text()
    assert f'href="{LEARNER}"' in intro and "the guide" in intro and "instructors.html" not in intro
    source = (html / "_sources" / "book" / "page.ipynb").read_text()
    assert f"git+{LEARNER}@v{PUBLIC.version}" in source and PUBLIC.owner_repo not in source
