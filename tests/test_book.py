"""The course site: it builds with the real `jupyter-book` CLI, strictly, offline, and renders.

The slow tests share one build (module fixture ``site``) of the repository's book into a
temporary folder, with a private weight cache, so the pages are made with synthetic weights
exactly as on CI. The browser tests use a headless Chromium (Debian's ``chromium``, installed
by ``.ci/run``) against the built site served on 127.0.0.1, with every other host unreachable.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
import yaml

from circuitscope import book

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT = 900  # seconds; the whole book on two CPU cores takes a few minutes at most

# Pages the tests look at (paths relative to the site's root, without ".html").
LANDING = "book/intro"
CHAPTER = "book/ch1_introduction/index"  # a notebook page: executed, with launch buttons
MATH_PAGE = "book/ch5_closing_thoughts/index"  # displays equations


def run_build(root: Path, output: Path | None, cache: Path) -> subprocess.CompletedProcess:
    """``python -m circuitscope.book build ROOT``, as scripts/book.sh runs it, offline, no real weights."""
    env = {k: v for k, v in os.environ.items() if k != "CIRCUITSCOPE_WEIGHTS"}
    env["CIRCUITSCOPE_CACHE"] = str(cache)
    cmd = [sys.executable, "-m", "circuitscope.book", "build", str(root)]
    if output is not None:
        cmd += ["--output", str(output)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)


def toc_pages(root: Path = ROOT) -> list[str]:
    """Every file named in _toc.yml (root first), without suffix."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                pages.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return pages


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
    text = (site / "html" / f"{CHAPTER}.html").read_text(encoding="utf-8")
    assert book.NOTICE_SYNTHETIC in text, "the chapter page does not show the synthetic-weights notice"
    assert "circuitscope-synthetic" in (site / "html" / "_static" / "circuitscope.css").read_text()


@pytest.mark.slow
def test_pages_show_no_stderr(site):
    """The weights warning is hidden where the notice box shows it; other stderr is a bug to see."""
    noisy = [page.relative_to(site / "html").as_posix() for page in (site / "html").rglob("*.html")
             if 'class="output stderr' in page.read_text(encoding="utf-8")]  # fmt: skip
    assert not noisy, f"pages that show stderr output: {noisy}"


def notebook_pages(root: Path = ROOT) -> list[str]:
    """The pages of _toc.yml that are notebooks (executed at build time)."""
    return [p for p in toc_pages(root) if (root / f"{p}.ipynb").is_file()]


def chapter_pages(root: Path = ROOT) -> list[str]:
    """Each chapter's narrative page: ``book/ch<N>_<name>/index``."""
    return [p for p in notebook_pages(root) if re.fullmatch(r"book/ch\d+_\w+/index", p)]


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
    assert "Using cached notebook" in result.stdout + result.stderr, "the rebuild did not use the cache"
    assert book.check_weights_notices(site) == []


def _mini_book(tmp_path: Path, code_cells: list[str]) -> Path:
    """A copy of the book's configuration with a landing page and one notebook page."""
    root = tmp_path / "minibook"
    (root / "book").mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy(ROOT / "book" / "references.bib", root / "book" / "references.bib")
    shutil.copytree(ROOT / "book" / "_static", root / "book" / "_static")
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: book/page\n")
    (root / "book" / "intro.md").write_text("# A test book\n\nOne page.\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A page")] + [nbformat.v4.new_code_cell(c) for c in code_cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "book" / "page.ipynb")
    return root


@pytest.mark.slow
def test_a_notebook_that_raises_fails_the_build(tmp_path):
    root = _mini_book(tmp_path, ["x = 1", "raise RuntimeError('deliberately broken page')"])
    result = run_build(root, None, cache=tmp_path / "cache")
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"a notebook that raises did not fail the build:\n{output[-4000:]}"
    assert "deliberately broken page" in output
    assert "Book build FAILED" in output


@pytest.mark.slow
def test_a_page_that_loads_the_model_without_notice_fails_the_build(tmp_path):
    # A stand-in loader: the check reads the page's code and outputs, so no model needs to load.
    cells = ["load_inceptionv1 = lambda: 'a model'", "model = load_inceptionv1()", "print('no notice')"]
    root = _mini_book(tmp_path, cells)
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
