"""The course site: it builds with the real `jupyter-book` CLI, strictly, offline, and renders.

The slow tests share one build (module fixture ``site``) of the repository's book into a
temporary folder, with a private weight cache, so the pages are made with synthetic weights
exactly as on CI (tests/test_real_format.py builds it once more with a real-format file, in the
"unverified" state). The browser tests use a headless Chromium (Debian's ``chromium``, installed
by ``.ci/run``) against the built site served on 127.0.0.1, with every other host unreachable.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml
from book_harness import (
    ROOT,
    chapter_pages,
    execute_notebook,
    mini_book,
    notebook_pages,
    run_build,
    toc_pages,
)

from circuitscope.tools import book

# Pages the tests look at (paths relative to the site's root, without ".html").
LANDING = "book/intro"
CHAPTER = "book/ch1_introduction/index"  # a notebook page: executed, with launch buttons
MATH_PAGE = "book/ch5_closing_thoughts/index"  # displays equations


class Assets(HTMLParser):
    """Collects the URLs a page loads: script sources, stylesheets, preloads, images."""

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(("script", a["src"]))
        elif tag == "link" and a.get("href") and ({"stylesheet", "preload", "modulepreload"}
                                                 & set((a.get("rel") or "").split())):  # fmt: skip
            self.urls.append((f"link rel={a['rel']}", a["href"]))
        elif tag == "img" and a.get("src"):
            self.urls.append(("img", a["src"]))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])


def parse(html_path: Path) -> Assets:
    parser = Assets()
    parser.feed(html_path.read_text(encoding="utf-8"))
    return parser


# -- fast: the pieces of the build command ---------------------------------------------------
def test_build_env_is_offline_and_cpu_unless_set():
    env = book.build_env({"PATH": "/bin", "CIRCUITSCOPE_OFFLINE": "0"})
    assert env["CIRCUITSCOPE_OFFLINE"] == "1"
    assert env["CIRCUITSCOPE_PROFILE"] == "cpu"
    assert env["PATH"] == "/bin"
    assert book.build_env({"CIRCUITSCOPE_PROFILE": "gpu"})["CIRCUITSCOPE_PROFILE"] == "gpu"


def test_config_is_strict_and_offline():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "cache"
    assert config["execute"]["raise_on_error"] is True
    assert config["execute"]["allow_errors"] is False
    assert config["only_build_toc_files"] is True
    assert "sphinx-mathjax-offline" in config["sphinx"]["extra_extensions"]
    assert "://" not in config["sphinx"]["config"]["mathjax_path"]
    assert {"-W", "--keep-going"} <= set(book.STRICT_FLAGS)


def _fake_build(tmp_path: Path, cells: list[dict], html: str) -> Path:
    build = tmp_path / "_build"
    (build / "jupyter_execute" / "book").mkdir(parents=True)
    (build / "html" / "book").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), build / "jupyter_execute" / "book" / "page.ipynb")
    (build / "html" / "book" / "page.html").write_text(html)
    return build


def _cell(source: str, html: str | None = None):
    outputs = [nbformat.v4.new_output("display_data", data={"text/html": html})] if html else []
    return nbformat.v4.new_code_cell(source, outputs=outputs, execution_count=1)


NOTICE = '<div class="admonition warning circuitscope-synthetic">Made with synthetic weights</div>'


def test_notice_check_accepts_a_notice_right_after_loading(tmp_path):
    cells = [_cell("import circuitscope as cs\nmodel = cs.load_inceptionv1()"), _cell("cs.notice(model)", NOTICE)]
    assert book.check_weights_notices(_fake_build(tmp_path, cells, f"<html>{NOTICE}</html>")) == []


def test_notice_check_flags_a_page_without_notice(tmp_path):
    cells = [_cell("import circuitscope as cs"), _cell("model = cs.load_inceptionv1()"), _cell("print(1)")]
    problems = book.check_weights_notices(_fake_build(tmp_path, cells, "<html></html>"))
    assert len(problems) == 1 and problems[0].page == "book/page"
    assert "cs.notice(model)" in problems[0].message and "load_inceptionv1" in problems[0].message


def test_notice_check_flags_a_notice_shown_too_late_or_hidden(tmp_path):
    late = [_cell("model = cs.load_inceptionv1()"), _cell("x = 1"), _cell("cs.notice(model)", NOTICE)]
    assert len(book.check_weights_notices(_fake_build(tmp_path / "late", late, f"<html>{NOTICE}</html>"))) == 1
    hidden = [_cell("model = cs.load_inceptionv1()\ncs.notice(model)", NOTICE)]
    problems = book.check_weights_notices(_fake_build(tmp_path / "hidden", hidden, "<html></html>"))
    assert len(problems) == 1 and "does not" in problems[0].message


def test_notice_check_ignores_comments_and_other_pages(tmp_path):
    cells = [_cell("# model = cs.load_inceptionv1()\nx = 1"), _cell("print(x)")]
    assert book.check_weights_notices(_fake_build(tmp_path, cells, "<html></html>")) == []


UNVERIFIED = '<div class="admonition warning circuitscope-unverified">Made with unverified weights</div>'
REAL = '<p class="circuitscope-real">Using the real InceptionV1 weights: x (hash verified)</p>'


@pytest.mark.parametrize("notice", [NOTICE, UNVERIFIED, REAL])
def test_notice_check_accepts_each_of_the_three_notices(tmp_path, notice):
    cells = [_cell("model = cs.load_inceptionv1()"), _cell("cs.notice(model)", notice)]
    assert book.check_weights_notices(_fake_build(tmp_path, cells, f"<html>{notice}</html>")) == []


def test_require_real_rejects_other_notices_and_unavailable_figures(tmp_path):
    for name, notice in (("synthetic", NOTICE), ("unverified", UNVERIFIED)):
        cells = [_cell("model = cs.load_inceptionv1()"), _cell("cs.notice(model)", notice)]
        build = _fake_build(tmp_path / name, cells, f"<html>{notice}</html>")
        assert book.check_weights_notices(build) == []
        problems = book.check_weights_notices(build, require_real=True)
        assert len(problems) == 1 and "--require-real" in problems[0].message, problems
    cells = [_cell("model = cs.load_inceptionv1()"), _cell("cs.notice(model)", REAL)]
    build = _fake_build(tmp_path / "real", cells, f"<html>{REAL}</html>")
    assert book.check_weights_notices(build, require_real=True) == []
    (build / "html" / "book" / "other.html").write_text(
        '<div class="admonition note circuitscope-unavailable">Published figure not available here</div>')
    problems = book.check_weights_notices(build, require_real=True)
    assert [p.page for p in problems] == ["book/other"] and "not available" in problems[0].message


def test_cli_has_require_real(monkeypatch):
    seen = {}
    monkeypatch.setattr(book, "build", lambda root, output, extra, **kw: seen.update(kw) or 0)
    assert book.main(["build", "--require-real"]) == 0 and seen["require_real"] is True
    assert book.main(["build"]) == 0 and seen["require_real"] is False


def test_truth_check_passes_a_consistent_page(tmp_path):
    cells = [_cell("model = cs.load_inceptionv1()"), _cell("cs.notice(model)", UNVERIFIED)]
    build = _fake_build(tmp_path, cells, f"<html>{UNVERIFIED}<p>The loaded file computes this.</p></html>")
    assert book.check_page_truth(build, "unverified") == []


def test_truth_check_flags_a_notice_of_other_weights(tmp_path):
    cells = [_cell("model = cs.load_inceptionv1()"), _cell("cs.notice(model)", NOTICE)]
    build = _fake_build(tmp_path, cells, f"<html>{NOTICE}</html>")
    assert book.check_page_truth(build, "synthetic") == []
    problems = [p for p in book.check_page_truth(build, "unverified") if "notice" in p.message]
    assert len(problems) == 1 and "circuitscope-synthetic" in problems[0].message


@pytest.mark.parametrize("state, phrase", [
    ("unverified", "Each figure says SYNTHETIC WEIGHTS at its foot."),
    ("unverified", "we have not run the real weights on these photos"),
    ("unverified", '<div class="circuitscope-by-state circuitscope-state-synthetic">'),
    ("real", "this page was built with synthetic weights"),
    ("real", "UNVERIFIED WEIGHTS"),
    ("synthetic", '<div class="circuitscope-by-state circuitscope-state-real">'),
    ("synthetic", "Made with unverified weights"),
])  # fmt: skip
def test_truth_check_flags_text_false_in_the_build_state(tmp_path, state, phrase):
    notice = {"unverified": UNVERIFIED, "real": REAL, "synthetic": NOTICE}[state]
    cells = [_cell("model = cs.load_inceptionv1()"), _cell("cs.notice(model)", notice)]
    build = _fake_build(tmp_path, cells, f"<html>{notice}<p>{phrase}</p></html>")
    problems = book.check_page_truth(build, state)
    assert len(problems) == 1 and "false" in problems[0].message and problems[0].page == "book/page", problems


def test_contradictions_table_covers_every_state_and_is_not_self_contradictory():
    assert set(book.CONTRADICTIONS) == set(book.NOTICES)
    for state, phrases in book.CONTRADICTIONS.items():
        assert phrases and f"circuitscope-state-{state}" not in phrases
        assert book.NOTICES[state] not in phrases


def test_truth_check_flags_agreeing_states_only_when_unknown(tmp_path):
    a = [_cell("model = cs.load_inceptionv1()"), _cell("cs.notice(model)", NOTICE)]
    build = _fake_build(tmp_path, a, f"<html>{NOTICE}</html>")
    nbformat.write(nbformat.v4.new_notebook(cells=[_cell("m = cs.load_inceptionv1()"), _cell("cs.notice(m)", UNVERIFIED)]),
                   build / "jupyter_execute" / "book" / "two.ipynb")  # fmt: skip
    problems = book.check_page_truth(build, None)
    assert len(problems) == 1 and "different weights" in problems[0].message


def _image(data: dict):
    return nbformat.v4.new_output("display_data", data=data)


def test_truth_check_flags_a_figure_shown_twice(tmp_path):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    other = png.replace("mNk", "mPk")
    uri, uri2, uri3 = (f"data:image/jpeg;base64,{png.replace('mNk', k)}" for k in ("mNk", "mAk", "mBk"))
    cells = [
        nbformat.v4.new_code_cell("plot(1)", outputs=[_image({"image/png": png})]),
        nbformat.v4.new_code_cell("plot(2)", outputs=[_image({"image/png": other})]),
        nbformat.v4.new_code_cell("plot(1) again", outputs=[_image({"image/png": png + "\n"})]),
        # a grid of renders is one figure: a unit may appear in two grids, but not a grid twice
        nbformat.v4.new_code_cell("grid", outputs=[_image({"text/html": f'<img src="{uri}"/><img src="{uri2}"/>'})]),
        nbformat.v4.new_code_cell("other grid", outputs=[_image({"text/html": f'<img src="{uri}"/><img src="{uri3}"/>'})]),
        nbformat.v4.new_code_cell("grid again", outputs=[_image({"text/html": f'<img src="{uri}"/><img src="{uri2}"/>'})]),
        nbformat.v4.new_code_cell("hidden", outputs=[_image({"image/png": other})],
                                  metadata={"tags": ["remove-output"]}),
    ]  # fmt: skip
    problems = book.check_page_truth(_fake_build(tmp_path, cells, "<html></html>"), "synthetic")
    messages = sorted(p.message for p in problems)
    assert len(problems) == 2, messages
    assert messages[0].startswith("code cell 3 shows a figure identical") and "code cell 1" in messages[0]
    assert messages[1].startswith("code cell 6 shows a figure identical") and "code cell 4" in messages[1]


def test_truth_check_flags_a_progress_widget(tmp_path):
    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
              "text/plain": "  0%|          | 0/10"}  # fmt: skip
    cells = [_cell("x = 1"), nbformat.v4.new_code_cell("for i in tqdm(range(10), disable=False): pass",
                                                       outputs=[_image(widget)])]  # fmt: skip
    problems = book.check_page_truth(_fake_build(tmp_path, cells, "<html></html>"), "synthetic")
    assert len(problems) == 1 and "code cell 2" in problems[0].message and "widget" in problems[0].message


# -- fast: one execution cache per weights identity -------------------------------------------------
def _cache_with(path: Path, marker: str) -> None:
    path.mkdir(parents=True)
    (path / "marker").write_text(marker)


def test_execution_cache_is_kept_per_identity(tmp_path):
    (tmp_path / "_config.yml").write_text("title: a book\n")
    cache = tmp_path / "_build" / ".jupyter_cache"
    _cache_with(cache, "legacy")  # a cache from before identities were recorded
    assert book.use_execution_cache(cache, "synthetic-v1") == cache
    assert not (cache / "marker").exists() and book.cache_identity(cache) == "synthetic-v1"
    assert (tmp_path / "_build" / ".jupyter_caches" / "unrecorded" / "marker").read_text() == "legacy"
    (cache / "marker").write_text("synthetic pages")
    book.use_execution_cache(cache, "unverified-0123456789ab")
    assert not (cache / "marker").exists() and book.cache_identity(cache) == "unverified-0123456789ab"
    (cache / "marker").write_text("unverified pages")
    aside = book.execution_cache(tmp_path, tmp_path / "_build", identity="synthetic-v1")
    assert aside == tmp_path / "_build" / ".jupyter_caches" / "synthetic-v1"
    assert (aside / "marker").read_text() == "synthetic pages"
    book.use_execution_cache(cache, "synthetic-v1")  # back: the first cache again
    assert (cache / "marker").read_text() == "synthetic pages"
    book.use_execution_cache(cache, "synthetic-v1")  # the same identity: nothing moves
    assert (cache / "marker").read_text() == "synthetic pages"
    assert book.execution_cache(tmp_path, tmp_path / "_build", identity="synthetic-v1") == cache
    unverified = book.execution_cache(tmp_path, tmp_path / "_build", identity="unverified-0123456789ab")
    assert (unverified / "marker").read_text() == "unverified pages"


def test_cache_key_and_identity_state():
    assert book.cache_key("synthetic-v1") == "synthetic-v1"
    key = book.cache_key("real-0123456789ab", ["b", "a"])
    assert key.startswith("real-0123456789ab+missing-2-") and key == book.cache_key("real-0123456789ab", ["a", "b"])
    assert [book.identity_state(i) for i in ("real-ab", "unverified-cd", "synthetic-v1", "refused-ef", key)] == [
        "real", "unverified", "synthetic", None, "real"]  # fmt: skip


def test_weights_identity_follows_the_build_environment(tmp_path, real_format_weights):
    base = {k: v for k, v in os.environ.items() if k != "CIRCUITSCOPE_WEIGHTS"}
    base["CIRCUITSCOPE_CACHE"] = str(tmp_path / "empty-cache")
    synthetic = book.weights_identity(book.build_env(base))
    assert book.identity_state(synthetic) == "synthetic"
    path = real_format_weights
    refused = book.weights_identity(book.build_env({**base, "CIRCUITSCOPE_WEIGHTS": str(path)}))
    assert refused.startswith("refused-")
    allowed = {**base, "CIRCUITSCOPE_WEIGHTS": str(path), "CIRCUITSCOPE_ALLOW_UNVERIFIED": "1"}
    unverified = book.weights_identity(book.build_env(allowed))
    assert book.identity_state(unverified) == "unverified" and unverified[len("unverified-"):] == refused[len("refused-"):]
    assert "CIRCUITSCOPE_WEIGHTS" not in os.environ or os.environ["CIRCUITSCOPE_WEIGHTS"] != str(path)


# -- the build's log: what a person reads on a first run --------------------------------------------
JB_OUTPUT = [
    "\x1b[01mRunning Sphinx v7.4.7\x1b[39;49;00m\n",
    "\x1b[01mmyst v3.0.1:\x1b[39;49;00m MdParserConfig(commonmark_only=False, gfm_only=False, enable_extensions={'deflist'})\n",
    "\x1b[01mmyst-nb v1.4.0:\x1b[39;49;00m NbParserConfig(custom_formats={}, metadata_key='mystnb')\n",
    "/root/book/ch1/index.ipynb: Executing notebook using local CWD [mystnb]\n",
    ("[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All communication (including code "
     "and outputs) is sent in plain text and is susceptible to eavesdropping.\n"),
    "/root/book/ch1/index.ipynb: Executed notebook in 12.34 seconds [mystnb]\n",
    "/root/book/ch1/index.ipynb: Cached executed notebook: ID=2 [mystnb]\n",
    "/root/book/ch2/index.ipynb: Using cached notebook: ID=3 [mystnb]\n",
    "/root/book/ch2/index.ipynb:12: WARNING: a real warning stays\n",
]


def test_build_log_drops_noise_and_names_each_page():
    import io

    out = io.StringIO()
    log = book.BuildLog(Path("/root"), pages=2, out=out)
    log.feed(io.StringIO("".join(JB_OUTPUT)))
    text = out.getvalue()
    assert "\x1b[" not in text, "ANSI colour codes in the log"
    assert "TCP without encryption" not in text
    assert "MdParserConfig(" not in text and "NbParserConfig(" not in text
    assert "Running Sphinx v7.4.7" in text
    assert "[1/2] book/ch1/index: running its code cells..." in text
    assert "book/ch1/index: ran in 12.3 s" in text
    assert "[2/2] book/ch2/index: unchanged, outputs from the execution cache" in text
    assert "WARNING: a real warning stays" in text, "warnings must never be filtered"
    assert log.times == {"book/ch1/index": 12.34} and log.cached == ["book/ch2/index"]


def test_build_ends_saying_where_the_site_is_which_weights_and_page_times(capsys):
    book._report_times({"book/a": 12.0, "book/b": 130.0}, executed={"book/a": 12.0}, cached=["book/b"])
    text = capsys.readouterr().out
    assert "12.0 s  ran now   book/a" in text and "cached    book/b  OVER BUDGET" in text
    for state in book.NOTICES:
        assert state.upper() in book.STATE_WORDS[state].upper() or state in book.STATE_WORDS[state]


# -- slow: the real build ------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The repository's book, built once with the real jupyter-book CLI into a temporary folder."""
    out = tmp_path_factory.mktemp("book")
    result = run_build(ROOT, out, cache=tmp_path_factory.mktemp("weights-cache"))
    assert result.returncode == 0, (
        f"the book build failed (exit {result.returncode}):\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )
    return out / "_build"


@pytest.mark.slow
def test_every_page_of_the_toc_is_built(site):
    html = site / "html"
    missing = [p for p in toc_pages() if not (html / f"{p}.html").is_file()]
    assert not missing, f"pages in _toc.yml without a built page: {missing}"
    assert (html / "index.html").is_file()
    assert (site / "jupyter_execute" / f"{CHAPTER}.ipynb").is_file(), "the chapter notebook was not executed"


@pytest.mark.slow
def test_no_page_loads_assets_from_the_network(site):
    html = site / "html"
    for page in (LANDING, CHAPTER, MATH_PAGE):
        remote = [(kind, url) for kind, url in parse(html / f"{page}.html").urls
                  if re.match(r"^(https?:)?//", url)]  # fmt: skip
        assert not remote, f"{page}.html loads from the network (it must work offline): {remote}"


@pytest.mark.slow
def test_mathjax_is_served_by_the_site(site):
    html = site / "html"
    scripts = [url for kind, url in parse(html / f"{MATH_PAGE}.html").urls if kind == "script"]
    mathjax = [url for url in scripts if "mathjax" in url.lower()]
    assert mathjax and all(url.endswith("_static/mathjax/tex-chtml.js") for url in mathjax), scripts
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert list((html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))


@pytest.mark.slow
def test_launch_buttons_open_the_notebook_from_the_configured_repository(site):
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]["url"].rstrip("/")
    org_repo = repo.split("github.com/", 1)[1]
    branch = config["repository"].get("branch", "main")
    links = parse(site / "html" / f"{CHAPTER}.html").links
    colab = [u for u in links if "colab.research.google.com" in u]
    binder = [u for u in links if "mybinder.org" in u]
    assert colab == [f"https://colab.research.google.com/github/{org_repo}/blob/{branch}/{CHAPTER}.ipynb"]
    assert binder and binder[0].startswith(f"https://mybinder.org/v2/gh/{org_repo}/{branch}")
    assert binder[0].endswith(f"{CHAPTER}.ipynb")
    assert any(u.endswith(f"_sources/{CHAPTER}.ipynb") for u in links), "no .ipynb download button"
    # No page anywhere sends Colab or Binder to a Markdown source.
    for page in (site / "html").rglob("*.html"):
        for url in parse(page).links:
            if "colab.research.google.com" in url or "mybinder.org" in url:
                assert url.endswith(".ipynb"), f"{page}: launch link to a non-notebook: {url}"


@pytest.mark.slow
def test_pages_built_with_synthetic_weights_show_the_notice(site):
    assert book.check_weights_notices(site) == []
    assert book.check_page_truth(site, "synthetic", repeats_allowed=book.exercise_pages(ROOT)) == []
    assert book.identity_state(book.cache_identity(book.execution_cache(ROOT, site)) or "") == "synthetic"
    for page in chapter_pages():
        text = (site / "html" / f"{page}.html").read_text(encoding="utf-8")
        assert book.NOTICE_SYNTHETIC in text, f"{page} does not show the synthetic-weights notice"
        assert book.NOTICE_UNVERIFIED not in text and book.NOTICE_REAL not in book._classes(text), page
    css = (site / "html" / "_static" / "circuitscope.css").read_text()
    for cls in (*book.NOTICES.values(), "circuitscope-published", "circuitscope-render-grid", "circuitscope-svg",
                book.UNAVAILABLE, "circuitscope-by-state"):  # fmt: skip
        assert cls in css, f"the site's stylesheet has no style for {cls}"


@pytest.mark.slow
def test_pages_show_no_stderr(site):
    """The weights warning is hidden where the notice box shows it; other stderr is a bug to see."""
    noisy = [page.relative_to(site / "html").as_posix() for page in (site / "html").rglob("*.html")
             if 'class="output stderr' in page.read_text(encoding="utf-8")]  # fmt: skip
    assert not noisy, f"pages that show stderr output: {noisy}"


@pytest.mark.slow
def test_every_notebook_page_runs_within_the_cpu_budget(site):
    """COURSE.md: each page runs in about two minutes on two CPU cores (the CPU profile)."""
    times = book.execution_times(ROOT, book.execution_cache(ROOT, site))
    pages = notebook_pages()
    assert len(chapter_pages()) >= 1 and set(chapter_pages()) < set(pages)
    missing = [p for p in pages if p not in times]
    assert not missing, f"notebook pages the build did not execute: {missing}"
    # A margin for a busy CI runner; the build prints the times (and flags those over budget).
    slow = {p: round(times[p]) for p in pages if times[p] > 1.5 * book.PAGE_BUDGET_S}
    assert not slow, f"pages over {1.5 * book.PAGE_BUDGET_S:.0f} s on this machine: {slow}"


@pytest.mark.slow
@pytest.mark.parametrize("page", chapter_pages())
def test_chapter_pages_show_figures_made_with_labelled_weights(site, page):
    cache_path = book.execution_cache(ROOT, site)
    from jupyter_cache import get_cache

    nb = book._executed_notebook(site / "jupyter_execute" / f"{page}.ipynb", get_cache(cache_path))
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(book.NOTICE_SYNTHETIC in str(o.get("data", {})) for o in outputs), "no synthetic-weights notice"
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert figures >= 4, f"{page} shows {figures} figures: a chapter teaches with pictures"


@pytest.mark.slow
def test_a_rebuild_from_the_execution_cache_passes(site, tmp_path):
    """The second build takes the notebooks from the cache, and still passes every check."""
    out = site.parent
    result = run_build(ROOT, out, cache=tmp_path / "cache")
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    output = result.stdout + result.stderr
    assert "from the execution cache" in output, "the rebuild did not use the cache"
    assert book.check_weights_notices(site) == []
    # A log a person can read: no kernel warnings, configuration dumps or colour codes; it ends
    # with where the site is, which weights built it and how long each page took.
    assert "TCP without encryption" not in output and "MdParserConfig(" not in output
    assert "\x1b[" not in output
    tail = output[output.rindex("Notebook pages"):]
    assert all(page in tail for page in notebook_pages()), tail
    assert "Site:" in tail and "index.html" in tail and "Weights:  synthetic-" in tail


@pytest.mark.slow
def test_a_change_of_weights_reexecutes_and_switching_back_reuses_the_first_cache(tmp_path, real_format_weights):
    """One execution cache per weights identity: the notice follows the weights, and the pages of
    weights built before come back from their own cache."""
    cells = ["import warnings\nwarnings.simplefilter('ignore')\nimport circuitscope as cs",
             "model = cs.load_inceptionv1(device='cpu')\ncs.notice(model)"]  # fmt: skip
    root = mini_book(tmp_path, cells)
    out, weights_cache = tmp_path / "out", tmp_path / "weights-cache"
    page = out / "_build" / "html" / "book" / "page.html"
    unverified = {"CIRCUITSCOPE_WEIGHTS": str(real_format_weights),
                  "CIRCUITSCOPE_ALLOW_UNVERIFIED": "1"}  # fmt: skip

    def build(env=None):
        result = run_build(root, out, cache=weights_cache, env=env)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        return output, page.read_text(encoding="utf-8")

    output, html = build()
    assert book.NOTICE_SYNTHETIC in html and book.NOTICE_UNVERIFIED not in html
    assert "from the execution cache" not in output
    cache = book.execution_cache(root, out / "_build")
    synthetic_identity = book.cache_identity(cache)
    assert book.identity_state(synthetic_identity) == "synthetic"

    output, html = build(unverified)
    assert "from the execution cache" not in output, "the page was not executed again with the new weights"
    assert book.NOTICE_UNVERIFIED in html and book.NOTICE_SYNTHETIC not in html
    assert book.identity_state(book.cache_identity(cache)) == "unverified"
    aside = book.execution_cache(root, out / "_build", identity=synthetic_identity)
    assert aside != cache and book.cache_identity(aside) == synthetic_identity

    output, html = build()
    assert "from the execution cache" in output, "switching back did not reuse the synthetic pages' cache"
    assert book.NOTICE_SYNTHETIC in html and book.NOTICE_UNVERIFIED not in html
    assert book.cache_identity(cache) == synthetic_identity


@pytest.mark.slow
def test_a_notebook_that_raises_fails_the_build(tmp_path):
    root = mini_book(tmp_path, ["x = 1", "raise RuntimeError('deliberately broken page')"])
    result = run_build(root, None, cache=tmp_path / "cache")
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"a notebook that raises did not fail the build:\n{output[-4000:]}"
    assert "deliberately broken page" in output
    assert "Book build FAILED" in output


@pytest.mark.slow
def test_a_page_that_loads_the_model_without_notice_fails_the_build(tmp_path):
    # A stand-in loader: the check reads the page's code and outputs, so no model needs to load.
    cells = ["load_inceptionv1 = lambda: 'a model'", "model = load_inceptionv1()", "print('no notice')"]
    root = mini_book(tmp_path, cells)
    result = run_build(root, None, cache=tmp_path / "cache")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-4000:]
    assert "book/page" in output and "cs.notice(model)" in output


# -- slow: what a browser shows ----------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def server(site):
    """The built site on http://127.0.0.1:<port>/."""
    handler = functools.partial(_QuietHandler, directory=str(site / "html"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium that can reach 127.0.0.1 and nothing else."""
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=15000", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run installs it)"
)


def assert_not_blank(png: Path) -> None:
    from PIL import Image

    with Image.open(png) as img:
        rgb = img.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        pixels = rgb.width * rgb.height
        non_white = sum(n for n, c in colours if min(c) < 240)
    assert len(colours) > 100, f"{png.name}: only {len(colours)} colours: the page looks blank"
    assert non_white / pixels > 0.02, f"{png.name}: only {non_white / pixels:.1%} non-white pixels"


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("page", [LANDING, *chapter_pages()])
def test_screenshot_is_not_blank(server, tmp_path, page):
    png = tmp_path / (page.replace("/", "_") + ".png")
    result = chromium(tmp_path, "--window-size=1280,1400", f"--screenshot={png}", f"{server}/{page}.html")
    assert png.is_file(), f"no screenshot of {page}:\n{result.stderr[-3000:]}"
    assert_not_blank(png)
    keep = os.environ.get("CIRCUITSCOPE_SCREENSHOTS")  # a folder to keep them in, for a human look
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)


@pytest.mark.slow
@needs_chromium
def test_maths_renders_offline(server, site, tmp_path):
    source = (site / "html" / f"{MATH_PAGE}.html").read_text(encoding="utf-8")
    assert 'class="math' in source, f"{MATH_PAGE} has no maths to render"
    result = chromium(tmp_path, "--dump-dom", f"{server}/{MATH_PAGE}.html")
    dom = result.stdout
    assert "<mjx-container" in dom, f"MathJax did not typeset {MATH_PAGE} offline:\n{result.stderr[-3000:]}"
    assert "<mjx-merror" not in dom and "data-mjx-error" not in dom, "MathJax reported a TeX error"


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in chapter_pages() if p.endswith("/index")])
def test_a_page_goes_on_without_the_published_data(page, tmp_path, monkeypatch):
    """Offline, no mirror, empty cache: each published figure or dataset becomes a note; no cell raises."""
    env = {"CIRCUITSCOPE_MIRROR": None, "CIRCUITSCOPE_OFFLINE": "1", "CIRCUITSCOPE_CACHE": str(tmp_path),
           "CIRCUITSCOPE_PROFILE": "cpu", "TQDM_DISABLE": "1"}  # fmt: skip
    nb, errors = execute_notebook(ROOT / f"{page}.ipynb", env, monkeypatch)
    assert not errors, f"{page} raised without the published data: {errors}"
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
    assert "circuitscope-unavailable" in outputs, f"{page} shows no note for the published data it could not have"


# -- slow: figures and layout as the reader sees them ------------------------------------------------
@pytest.mark.slow
def test_every_figure_of_the_site_fits_the_column(site):
    """Every matplotlib figure on the site, measured from what the build's kernels drew: no text
    under 9 px at the size the column shows it, no overlapping labels (see tests/test_figures.py)."""
    records = book.read_figure_audit(site / book.FIGURE_AUDIT)
    assert records, "the build's kernels recorded no figure (circuitscope.tools.book.kernel_profile)"
    shown = book.site_figures(site / "html")
    import hashlib

    recorded_pages = {page for page, _, png in shown if hashlib.sha256(png).hexdigest() in records}
    missing = [p for p in chapter_pages() if p not in recorded_pages]
    assert not missing, f"chapter pages whose figures were not recorded: {missing}"
    problems = book.check_figures(site)
    assert not problems, "figures not made for the column:\n" + "\n".join(map(str, problems))


MEASURE = """<!doctype html><html><body style="margin:0">
<iframe id="f" style="width:__WIDTH__px;height:1400px;border:0" src="__PAGE__"></iframe>
<pre id="result">pending</pre>
<script>
document.getElementById("f").addEventListener("load", function () {
  var frame = this, d = frame.contentDocument, w = frame.contentWindow;
  setTimeout(function () {
    var art = d.querySelector(".bd-article") || d.body;
    // Notebook figures (PNG outputs, under _images/); published figures are inlined HTML.
    var imgs = [].filter.call(art.querySelectorAll(".cell_output img"), function (i) {
      return (i.getAttribute("src") || "").indexOf("_images/") >= 0;
    }).map(function (i) {
      return {src: i.getAttribute("src").slice(-20), natural: i.naturalWidth,
              shown: i.getBoundingClientRect().width, visible: i.offsetParent !== null};
    });
    var pres = [].filter.call(art.querySelectorAll("pre"), function (p) {
      return p.offsetParent !== null && p.scrollWidth > p.clientWidth + 1;
    }).map(function (p) { return p.textContent.slice(0, 80); });
    var header = d.getElementById("pst-header");
    var column = art.querySelector("section > p") || art;
    document.getElementById("result").textContent = JSON.stringify({
      width: w.innerWidth, scroll: d.documentElement.scrollWidth,
      column: art.getBoundingClientRect().width, imgs: imgs, overflowing: pres,
      header: header ? w.getComputedStyle(header).display : "none",
      interactive: art.querySelectorAll(".circuitscope-interactive .js-plotly-plot").length,
      browser: art.querySelectorAll(".circuitscope-browser .cs-browser-panels .cs-browser-view").length,
      browserImages: [].filter.call(art.querySelectorAll(".circuitscope-browser .cs-browser-view"), function (v) {
        return v.style.backgroundImage.indexOf("data:image/") >= 0 || v.querySelector("img[src^='data:image/']");
      }).length,
      past: [].filter.call(art.querySelectorAll(".circuitscope-interactive, .circuitscope-browser, .cell.tag_full-width"),
        function (e) { var r = e.getBoundingClientRect(); return r.width > 0 && (r.left < -1 || r.right > w.innerWidth + 1); }
      ).map(function (e) { return e.className.slice(0, 60); })
    });
  }, 4000);
});
</script></body></html>"""


def measure(server, site, tmp_path, page: str, width: int) -> dict:
    """Lay ``page`` out in Chromium at ``width`` CSS pixels (an iframe of that width) and measure it."""
    name = f"_measure_{width}_{page.replace('/', '_')}.html"
    (site / "html" / name).write_text(MEASURE.replace("__WIDTH__", str(width)).replace("__PAGE__", f"{page}.html"))
    result = chromium(tmp_path, "--window-size=1400,1600", "--dump-dom", f"{server}/{name}")
    found = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.DOTALL)
    assert found and found.group(1) != "pending", f"no measurement of {page} at {width}px:\n{result.stderr[-2000:]}"
    import html as html_lib

    return json.loads(html_lib.unescape(found.group(1)))


@pytest.mark.slow
@needs_chromium
@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("page", [LANDING, *chapter_pages(), "book/weights", "book/instructors"])
def test_pages_fit_the_screen_at_desktop_and_phone_widths(server, site, tmp_path, page, width):
    """As a reader sees it at 1280 px and at 390 px (a phone): nothing runs past the screen (code
    wraps), no empty top bar, and on a desktop every figure shows at the size its check assumed."""
    m = measure(server, site, tmp_path, page, width)
    assert m["scroll"] <= m["width"] + 1, f"{page} at {width}px scrolls sideways ({m['scroll']} > {m['width']})"
    assert not m["overflowing"], f"{page} at {width}px: code or output cut off: {m['overflowing'][:3]}"
    assert m["header"] == "none", "the theme's top bar (a second search box) is back"
    if width == 1280:
        assert m["column"] >= book.COLUMN_PX - 2, f"the column is {m['column']:.0f} px, figures assume {book.COLUMN_PX}"
        squeezed = [i for i in m["imgs"] if i["visible"] and i["natural"] and
                    i["shown"] < min(i["natural"], book.COLUMN_PX) - 6]  # fmt: skip
        assert not squeezed, f"{page}: figures shown smaller than the column allows: {squeezed[:3]}"
    if page == "book/ch3_circuits/index" and width == 1280:
        assert m["interactive"] >= 1, "the curve family's interactive figure did not draw (plotly.js from _static)"
    assert not m["past"], f"{page} at {width}px: interactive or full-width figures run past the screen: {m['past']}"
    if page == "book/ch5_closing_thoughts/index":
        assert m["interactive"] >= 1, f"the phase diagram's interactive figure did not draw at {width}px"
    if page == "book/ch2_feature_visualization/index":
        assert m["browser"] == 2, f"the unit browser did not draw its two panels at {width}px"
        assert m["browserImages"] >= 1, "the unit browser shows no render (its images are data: URIs in the page)"


@pytest.mark.slow
def test_the_site_serves_plotly_itself_and_the_landing_figure(site):
    html = site / "html"
    assert (html / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    landing = (html / f"{LANDING}.html").read_text(encoding="utf-8")
    assert 'class="circuitscope-landing"' in landing and "../_static/circuitscope-landing.png" in landing
    assert (html / "_static" / "circuitscope-landing.png").is_file()
    assert "CC BY 4.0" in landing, "the landing figure's credit"


@pytest.mark.slow
@pytest.mark.parametrize("page, kind", [("book/ch5_closing_thoughts/index", "circuitscope-interactive"),
                                        ("book/ch2_feature_visualization/index", "circuitscope-browser")])  # fmt: skip
def test_interactive_figures_keep_a_static_image_and_load_nothing_remote(site, page, kind):
    """The phase diagram (chapter 5) and the unit browser (chapter 2): a static PNG for readers
    without JavaScript, a script that draws only on the site, and no URL of another host."""
    text = (site / "html" / f"{page}.html").read_text(encoding="utf-8")
    blocks = re.findall(rf'<div class="{kind}" id="([^"]+)">(.*?)</div><script>(.*?)</script>', text, re.DOTALL)
    assert blocks, f"{page} has no {kind}"
    for uid, body, script in blocks:
        assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="[^"]+"', body), f"{uid}: no static image"
        assert "data-content_root" in script and uid in script
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/[^\s\"']*\.(js|css|png|jpe?g)", script), uid
    if kind == "circuitscope-browser":
        assert "tag_full-width" in text, "the wide grid of published renders is marked full-width"


@pytest.mark.slow
def test_exercise_pages_download_the_learner_notebook(site):
    from circuitscope_course import pages

    for exercise in pages.exercises(ROOT):
        page = site / "html" / exercise.page.replace(".ipynb", ".html")
        links = parse(page).links
        downloads = [u for u in links if "_downloads/" in u]
        assert downloads and all(u.endswith(Path(exercise.learner).name) for u in downloads), downloads
        assert not any(u.endswith(f"_sources/{exercise.page}") for u in links), "the header offers the solutions"


@pytest.mark.slow
def test_references_list_and_text_cite_alike(site):
    """One citation style: the list's labels are the text's author-year citations."""
    refs = (site / "html" / "book" / "references.html").read_text(encoding="utf-8")
    labels = re.findall(r'<span class="label"><span class="fn-bracket">\[</span>([^<]+)<', refs) or \
        re.findall(r'class="label"[^>]*>\[?([^<\]]+)', refs)  # fmt: skip
    assert labels and not any(re.fullmatch(r"\d+", label) for label in labels), labels[:5]
    assert "Olah et al., 2020c" in labels
    chapter = (site / "html" / f"{CHAPTER}.html").read_text(encoding="utf-8")
    assert "Olah <em>et al.</em>, 2020c" in chapter or "Olah et al., 2020c" in chapter



def test_a_microscope_is_copied_into_the_site_and_linked(synthetic_model, tmp_path, monkeypatch):
    import circuitscope.tools.gallery as gallery

    monkeypatch.setattr("circuitscope.core.models.load_inceptionv1", lambda *a, **k: synthetic_model)
    scope = tmp_path / "scope"
    argv = ["--layers", "mixed3a", "--channels", "0:2", "--size", "32", "--steps", "2", "--diversity", "0",
            "--out", str(scope), "--weights", "synthetic", "--device", "cpu", "--no-progress", "--no-published"]
    assert gallery.gallery_main(argv) == 0
    # the built page as MyST writes it: the note of book/microscope.md, its raw HTML kept
    note = re.search(r'<div class="circuitscope-microscope".*?</div>', (ROOT / "book" / "microscope.md").read_text(),
                     re.S).group(0)  # fmt: skip
    html = tmp_path / "html"
    (html / "book").mkdir(parents=True)
    (html / book.MICROSCOPE_PAGE).write_text(f"<html><body><h1>A local Microscope</h1>{note}</body></html>")

    with pytest.raises(book.MicroscopeError, match="synthetic weights"):
        book.attach_microscope(html, scope, require_real=True)  # the hosted site links only a real one
    with pytest.raises(book.MicroscopeError, match="gallery --all-layers"):
        book.attach_microscope(html, tmp_path / "nothing")
    line = book.attach_microscope(html, scope)
    assert "2 units" in line
    page = (html / book.MICROSCOPE_PAGE).read_text()
    assert 'href="../microscope/index.html"' in page and "built without" not in page and "SYNTHETIC" in page
    assert (html / "microscope" / "index.html").is_file() and (html / "microscope" / "mixed3a").is_dir()
