"""Build the course site: ``python -m circuitscope.tools.book build [ROOT]`` (what ``scripts/book.sh`` runs).

The build is strict and self-contained:

* ``jupyter-book build ROOT -W -n --keep-going --all``: every Sphinx warning is an error (all of
  them are reported before it fails), and a notebook cell that raises fails the build
  (``execute.raise_on_error`` in ``_config.yml``);
* notebooks are executed through Jupyter Book's cache (``_build/.jupyter_cache``), so only
  changed notebooks run again; there is one cache per *identity* of the build (which weights
  ``load_inceptionv1()`` would use, and which published files are missing): the cache of
  another identity is set aside in ``_build/.jupyter_caches/<identity>`` and brought back when
  that identity builds again (:func:`use_execution_cache`), so a change of weights re-executes
  every page instead of keeping the old notice;
* before the kernels run (offline), the registry's published files are fetched into the cache
  (:func:`prefetch`), unless ``CIRCUITSCOPE_OFFLINE`` was set by the user; a file that cannot
  be had is reported (its pages show the "not available" note);
* the environment says ``CIRCUITSCOPE_OFFLINE=1`` (nothing is downloaded; without a local copy of
  the weights the pages use the synthetic ones), ``CIRCUITSCOPE_PROFILE=cpu`` unless set, and
  ``TQDM_DISABLE=1`` unless set (progress bars are noise on a static page);
* MathJax is served from the site itself (the ``sphinx-mathjax-offline`` extension), so maths
  renders without a network;
* before the build, the exercise pages (``book/<assignment>/exercises.ipynb``) are generated
  from ``solutions/`` (:mod:`circuitscope_course.pages`); they are committed, so this only
  changes them when a solution notebook changed;
* ``--classroom`` builds a release without solutions: the book is staged in a temporary folder
  whose exercise pages show the stubs only (the working tree is not touched), and the site is
  written to ``<output or root>/_build`` as usual; it leaves out the instructors' page, and
  links to no repository (no repository, issue, Colab or Binder button, no clone hint, install
  cells that install nothing), unless ``--learner-repo URL`` (or ``classroom.learner_repository``
  in ``_config.yml``) names a repository made for the class without ``solutions/``: then they
  all point there (:class:`circuitscope_course.pages.Classroom`);
* after the build, :func:`check_weights_notices` checks that every executed page that loads the
  model shows :func:`circuitscope.notice` right after loading it, and
  :func:`circuitscope_course.pages.check_published` that no file of the site shows a hidden
  test (nor, with ``--classroom``, a solution), and with ``--classroom``
  :func:`circuitscope_course.pages.check_classroom` that no file links to the course's
  repository, to ``solutions/`` or to the instructors' page, nor is that page;
* after the build, :func:`check_page_truth` checks what the pages say against the weights the
  build used: every notice is the build's state, no page says what is false in that state
  (:data:`CONTRADICTIONS`), no figure is shown twice on a page, no progress widget is left;
* ``--require-real`` (the hosted site): the build fails unless every page was made with the
  verified real weights and every published file could be had.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Flags passed to ``jupyter-book build``: warnings are errors, all reported, every page re-read.
STRICT_FLAGS = ("-W", "-n", "--keep-going", "--all")

#: Environment of the build and of the notebook kernels it starts: FORCED_ENV always,
#: DEFAULT_ENV unless the user set the variable.
FORCED_ENV = {"CIRCUITSCOPE_OFFLINE": "1"}
DEFAULT_ENV = {"CIRCUITSCOPE_PROFILE": "cpu", "TQDM_DISABLE": "1"}

#: CSS classes of the three notices :func:`circuitscope.core.provenance.notice` can show.
NOTICE_SYNTHETIC = "circuitscope-synthetic"
NOTICE_REAL = "circuitscope-real"
NOTICE_UNVERIFIED = "circuitscope-unverified"
#: The notice each weights state shows (the states of :mod:`circuitscope.core.provenance`).
NOTICES = {"real": NOTICE_REAL, "unverified": NOTICE_UNVERIFIED, "synthetic": NOTICE_SYNTHETIC}
#: The note :func:`circuitscope.core.published.show_unavailable` shows for a file it could not have.
UNAVAILABLE = "circuitscope-unavailable"

_LOADS_MODEL = re.compile(r"\bload_inceptionv1\s*\(")


def repo_root() -> Path:
    """The repository root: the folder with ``_config.yml`` above this file (a source checkout)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "_config.yml").is_file() and (parent / "_toc.yml").is_file():
            return parent
    return Path.cwd()


def build_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the build: ``base`` (default ``os.environ``) plus the book's settings."""
    env = dict(os.environ if base is None else base)
    env.update(FORCED_ENV)
    for key, value in DEFAULT_ENV.items():
        env.setdefault(key, value)
    return env


def jupyter_book_command() -> list[str]:
    """The ``jupyter-book`` executable of this environment (the one beside ``python``)."""
    beside = Path(sys.executable).with_name("jupyter-book")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    raise SystemExit(
        "jupyter-book is not installed in this environment; install the book extra: "
        "pip install -e '.[book]'"
    )


def build_dir(root: Path, output: Path | None = None) -> Path:
    """Where Jupyter Book writes: ``<output or root>/_build``."""
    return (output or root) / "_build"


def execution_cache(root: Path, build: Path, identity: str | None = None) -> Path:
    """The notebook execution cache: ``execute.cache`` of ``_config.yml``, else ``build/.jupyter_cache``.

    That path holds the cache of the identity that built last (:func:`use_execution_cache`);
    with ``identity``, the cache of that identity: the same path if it built last, else where
    it was set aside (``<cache>s/<identity>``, which may not exist).
    """
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    path = (config.get("execute") or {}).get("cache")
    cache = (root / path) if path else build / ".jupyter_cache"
    if identity is None or cache_identity(cache) == identity:
        return cache
    return _set_aside(cache, identity)


# -- one execution cache per identity --------------------------------------------------------
#: The file in an execution cache that names the identity it was built with.
IDENTITY_FILE = "circuitscope-identity.txt"


def _environ(env: dict[str, str]):
    """``os.environ`` is exactly ``env`` for the duration (the build's, so the kernels' view is computed)."""
    from unittest import mock

    return mock.patch.dict(os.environ, env, clear=True)


def weights_identity(env: dict[str, str] | None = None) -> str:
    """Which weights the pages' ``load_inceptionv1()`` will use: ``"real-<hash12>"``,
    ``"unverified-<hash12>"`` or ``"synthetic-<version>"``, computed in the build's environment
    ``env`` (default :func:`build_env`) without loading a tensor.

    This is :func:`circuitscope.core.models.weights.weights_identity`, run in that environment.
    """
    from circuitscope.core.models import weights as w

    with _environ(build_env() if env is None else env):
        return w.weights_identity()


def identity_state(identity: str) -> str | None:
    """The weights state an identity names (``"real"``, ``"unverified"``, ``"synthetic"``), else None."""
    state = identity.split("-", 1)[0].split("+", 1)[0]
    return state if state in NOTICES else None


def cache_key(identity: str, missing: list[str] | tuple[str, ...] = ()) -> str:
    """The execution cache's key: the weights' identity, and which published files are missing
    (the pages that show them differ: an "unavailable" note instead of the figure)."""
    if not missing:
        return identity
    import hashlib

    digest = hashlib.sha256("\n".join(sorted(missing)).encode()).hexdigest()[:8]
    return f"{identity}+missing-{len(missing)}-{digest}"


def cache_identity(cache: Path) -> str | None:
    """The identity recorded in an execution cache (None: no cache, or one without a record)."""
    try:
        return (cache / IDENTITY_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _set_aside(cache: Path, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.+-]", "_", key)
    return cache.with_name(cache.name + "s") / safe


def use_execution_cache(cache: Path, key: str) -> Path:
    """Make ``cache`` (the path Jupyter Book uses) the execution cache of ``key``; returns it.

    The cache there, if it belongs to another key (or to none: a cache from before identities
    were recorded), is moved aside to ``<cache>s/<its key>``; the one set aside for ``key``, if
    any, is moved back; else a new, empty cache is started. The key is written in the cache
    (:data:`IDENTITY_FILE`).
    """
    current = cache_identity(cache)
    if cache.exists() and current != key:
        aside = _set_aside(cache, current or "unrecorded")
        if aside.exists():
            shutil.rmtree(aside)
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(cache, aside)
    if not cache.exists():
        mine = _set_aside(cache, key)
        cache.parent.mkdir(parents=True, exist_ok=True)
        if mine.is_dir():
            os.replace(mine, cache)
        else:
            cache.mkdir()
    (cache / IDENTITY_FILE).write_text(key + "\n", encoding="utf-8")
    return cache


# -- published data ---------------------------------------------------------------------------
def prefetch(env: dict[str, str] | None = None) -> dict[str, str]:
    """Fetch the registry's published files into the cache the kernels read; ``{name: why}`` of
    those that could not be had (empty: all there).

    Downloads unless ``CIRCUITSCOPE_OFFLINE`` is set in ``env`` (default ``os.environ``): the
    kernels run offline, so this is when the build may use the network.
    """
    from circuitscope.core import registry

    names = registry.entries()
    print(f"The articles' published data: {len(names)} files (figures, tuning curves, renders; CC BY 4.0), "
          "fetched once into the cache and checked by hash...", flush=True)  # fmt: skip
    with _environ(dict(os.environ if env is None else env)):
        results = registry.fetch_all(progress=sys.stderr.isatty())  # a bar on a terminal, not in a log
    failed = {name: str(err) for name, err in results.items() if not isinstance(err, Path)}
    print(f"  {len(results) - len(failed)} of {len(results)} files ready.", flush=True)
    return failed


def missing_data(env: dict[str, str] | None = None) -> list[str]:
    """The published files the kernels could not have (no network), in the build's environment."""
    from circuitscope.core import registry

    with _environ(build_env() if env is None else env):
        return sorted(name for name in registry.entries() if not registry.available(name))


# -- the weights notice --------------------------------------------------------------------
@dataclass
class NoticeProblem:
    page: str
    message: str

    def __str__(self) -> str:
        return f"{self.page}: {self.message}"


def _code(source: str) -> str:
    """Cell source without comments and IPython magics (a crude but sufficient filter)."""
    lines = [line.split("#", 1)[0] for line in source.splitlines()]
    return "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))


_CLASS_ATTR = re.compile(r"""class\s*=\s*(?:\\?["'])([^"'\\]*)""")


def _classes(text: str) -> set[str]:
    """Every CSS class named in ``class="..."`` attributes of ``text`` (HTML, or JSON holding HTML)."""
    return {cls for attr in _CLASS_ATTR.findall(text) for cls in attr.split()}


def _notices_in(cell) -> set[str]:
    return _classes(json.dumps(cell.get("outputs", []))) & set(NOTICES.values())


def _open_cache(cache_path: Path | None):
    if cache_path is None or not cache_path.is_dir():
        return None
    from jupyter_cache import get_cache

    return get_cache(cache_path)


def _executed_pages(build: Path, cache_path: Path | None = None):
    """``(page, notebook with outputs)`` for every executed notebook of the build."""
    executed = build / "jupyter_execute"
    cache = _open_cache(cache_path or build / ".jupyter_cache")
    for path in sorted(executed.rglob("*.ipynb")) if executed.is_dir() else []:
        yield path.relative_to(executed).with_suffix("").as_posix(), _executed_notebook(path, cache)


def _executed_notebook(path: Path, cache):
    """The notebook myst-nb wrote for a page, with its outputs.

    On a cache hit myst-nb 1.x writes ``jupyter_execute/<page>.ipynb`` without outputs (it
    renders a merged copy but saves the original), so the outputs are taken from the execution
    cache when it holds a match.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if cache is not None:
        try:
            _, nb = cache.merge_match_into_notebook(nb)
        except KeyError:  # not cached (not executed, or executed without the cache)
            pass
    return nb


def check_weights_notices(
    build: Path, cache_path: Path | None = None, require_real: bool = False
) -> list[NoticeProblem]:
    """Pages that load InceptionV1 without saying which weights they used.

    For every executed notebook of the build (``build/jupyter_execute``: ``.ipynb`` pages and
    MyST notebooks alike, with outputs from the execution cache ``cache_path``, default
    ``build/.jupyter_cache``), each code cell that calls ``load_inceptionv1(`` must show
    ``cs.notice(model)`` in its own output or in the next code cell's, and the built HTML page
    must contain that notice (it was not hidden with a ``remove-output`` tag). Any of the three
    notices counts (:data:`NOTICES`: real, unverified, synthetic).

    ``require_real`` (the hosted site): also every notice must be the real one, and no page may
    show the "published figure not available" note (:data:`UNAVAILABLE`).
    """
    problems: list[NoticeProblem] = []
    html = build / "html"
    for page, nb in _executed_pages(build, cache_path):
        code = [c for c in nb.cells if c.cell_type == "code"]
        shown: set[str] = set()
        for i, cell in enumerate(code):
            source = "".join(cell.get("source", ""))
            if not _LOADS_MODEL.search(_code(source)):
                continue
            found = _notices_in(cell) | (_notices_in(code[i + 1]) if i + 1 < len(code) else set())
            if not found:
                line = next(ln.strip() for ln in source.splitlines() if _LOADS_MODEL.search(ln))
                problems.append(NoticeProblem(
                    page,
                    f"code cell {i + 1} ({line!r}) loads the model, but neither it nor the next "
                    "code cell shows which weights were used. Add `cs.notice(model)` right after "
                    "loading the model: it shows which weights made the page (the red 'Made with "
                    "synthetic weights' box, the orange 'unverified' one, or the real weights' line).",
                ))
            shown |= found
        page_html = html / f"{page}.html"
        if shown and page_html.is_file():
            text = page_html.read_text(encoding="utf-8")
            for cls in sorted(cls for cls in shown if cls not in _classes(text)):
                problems.append(NoticeProblem(
                    page,
                    f"the notebook shows the weights notice (class {cls!r}) but the built page "
                    f"{page_html} does not: do not hide the output of the cs.notice(model) cell.",
                ))
        if require_real:
            for cls in sorted(shown - {NOTICE_REAL}):
                problems.append(NoticeProblem(
                    page,
                    f"shows the {cls!r} notice, but --require-real needs every page made with the "
                    "verified real InceptionV1 weights (set CIRCUITSCOPE_WEIGHTS to inception5h.pth, "
                    "or build with internet access).",
                ))
    if require_real:
        for page_html in sorted(html.rglob("*.html")) if html.is_dir() else []:
            if UNAVAILABLE in _classes(page_html.read_text(encoding="utf-8")):
                problems.append(NoticeProblem(
                    page_html.relative_to(html).with_suffix("").as_posix(),
                    "shows a 'published figure not available' note, but --require-real needs every "
                    "published figure (build with internet access, or set CIRCUITSCOPE_MIRROR).",
                ))
    return problems


# -- what the pages say, against the weights they were built with ---------------------------
#: Text that is false on a page built in a weights state: ``{state: (phrase, ...)}``, matched
#: case-sensitively in the page's HTML (prose, outputs, and the class names of
#: :func:`circuitscope.core.provenance.by_state`). Add a phrase wherever a page could say it.
_SAYS_SYNTHETIC = (
    "SYNTHETIC WEIGHTS",
    "Made with synthetic weights",
    "built with synthetic weights",
    "we have not run the real weights",
    "circuitscope-state-synthetic",
)
_SAYS_UNVERIFIED = ("UNVERIFIED WEIGHTS", "Made with unverified weights", "circuitscope-state-unverified")
_SAYS_REAL = ("Using the real InceptionV1 weights", "circuitscope-state-real")
CONTRADICTIONS: dict[str, tuple[str, ...]] = {
    "synthetic": ("Made with unverified weights", "circuitscope-state-unverified", *_SAYS_REAL),
    "unverified": (*_SAYS_SYNTHETIC, *_SAYS_REAL),
    "real": (*_SAYS_SYNTHETIC, *_SAYS_UNVERIFIED),
}

#: An output that is a live widget (a progress bar left behind): empty on a static page.
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml")
_DATA_URI = re.compile(r"data:image/[a-z+.-]+;base64,[A-Za-z0-9+/=]+")
_HIDDEN_TAGS = {"remove-output", "remove-cell"}


def exercise_pages(root: Path) -> set[str]:
    """The generated exercise pages (``book/<chapter>/exercises``): they draw the solution's figure
    beside the library's reference figure, equal by design when the solution is right."""
    from circuitscope_course import pages

    return {Path(e.page).with_suffix("").as_posix() for e in pages.exercises(root)}


def check_page_truth(
    build: Path, state: str | None, cache_path: Path | None = None, repeats_allowed=()
) -> list[NoticeProblem]:
    """What executed pages say that is false, or shown wrong, for a build in weights ``state``.

    * every weights notice on every page is ``state``'s (:data:`NOTICES`); with ``state`` None
      (unknown), all pages' notices must at least agree;
    * no page contains a phrase of ``CONTRADICTIONS[state]`` (prose written for other weights);
    * no figure is shown twice on a page: no two outputs hold byte-identical images
      (``image/png`` etc., or the same ``data:`` URI in HTML outputs), except on the pages
      ``repeats_allowed`` (the generated exercise pages, where the solution's figure is drawn
      beside the library's reference figure for comparison: identical when the solution is right);
    * no output is a widget (:data:`WIDGET_MIME`: a progress bar, blank on the site).
    """
    problems: list[NoticeProblem] = []
    html = build / "html"
    seen_states: dict[str, set[str]] = {}
    for page, nb in _executed_pages(build, cache_path):
        page_html = html / f"{page}.html"
        text = page_html.read_text(encoding="utf-8") if page_html.is_file() else ""
        outputs_text = json.dumps([c.get("outputs", []) for c in nb.cells if c.cell_type == "code"])
        notices = (_classes(text) | _classes(outputs_text)) & set(NOTICES.values())
        states = {s for s, cls in NOTICES.items() if cls in notices}
        if states:
            seen_states[page] = states
        if state is not None and states - {state}:
            problems.append(NoticeProblem(
                page,
                f"shows the {', '.join(sorted(NOTICES[s] for s in states - {state}))} notice, but "
                f"the build's weights are {state!r}: a cell loads other weights than the build's.",
            ))
        for phrase in CONTRADICTIONS.get(state, ()) if state else ():
            where = "page" if phrase in text else "outputs" if phrase in outputs_text else None
            if where is not None:
                problems.append(NoticeProblem(
                    page,
                    f"says {phrase!r}, which is false for a page built with {state} weights: "
                    "write text that depends on the weights with cs.by_state(model, ...).",
                ))
        if page not in repeats_allowed:
            problems += _repeated_figures(page, nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        for i, cell in enumerate(code):
            if any(WIDGET_MIME in o.get("data", {}) for o in cell.get("outputs", [])):
                problems.append(NoticeProblem(
                    page,
                    f"code cell {i + 1} leaves a widget output (a progress bar?), which is blank on "
                    "the site: do not force tqdm on (the build sets TQDM_DISABLE=1).",
                ))
    if state is None and len({frozenset(s) for s in seen_states.values()}) > 1:
        listing = ", ".join(f"{p}: {'/'.join(sorted(s))}" for p, s in sorted(seen_states.items()))
        problems.append(NoticeProblem("(all pages)", f"pages were built with different weights: {listing}"))
    return problems


def _repeated_figures(page: str, nb) -> list[NoticeProblem]:
    """Outputs of ``nb`` that show an image another output already showed, byte for byte.

    An HTML output with several images (a grid of renders) counts as one figure, so a unit in
    two different grids is not a repeat; copies inside one output are not counted either; outputs
    hidden with a ``remove-output`` or ``remove-cell`` tag are not shown, so not counted.
    """
    import hashlib

    first: dict[str, tuple[int, int]] = {}
    problems = []
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        if _HIDDEN_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        for j, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            text = {m: "".join(v) if isinstance(v, list) else str(v) for m, v in data.items()}
            images = {text[m] for m in _IMAGE_MIMES if m in text}
            uris = _DATA_URI.findall(text.get("text/html", ""))
            # One image in an HTML output is a figure; several make one figure together (a grid
            # of renders, where the same unit may also appear in another grid).
            images |= set(uris) if len(uris) == 1 else {text["text/html"]} if uris else set()
            for key in {hashlib.sha256(re.sub(r"\s+", "", im).encode()).hexdigest() for im in images}:
                if key not in first:
                    first[key] = (i, j)
                    continue
                where = "another output of the same cell" if first[key][0] == i else f"code cell {first[key][0] + 1}"
                problems.append(NoticeProblem(
                    page,
                    f"code cell {i + 1} shows a figure identical (byte for byte) to one in {where}: "
                    "a figure shown twice.",
                ))
    return problems


# -- figures sized for the page --------------------------------------------------------------
#: The text column of a page on a 1280-pixel-wide screen (sphinx-book-theme), in CSS pixels:
#: figures are drawn for it (:data:`circuitscope.figures.style.COLUMN_IN` at its DPI).
COLUMN_PX = 676
#: The smallest text a figure may show, in CSS pixels at the size it is shown in the column.
MIN_FONT_PX = 9.0
#: Two texts of a figure overlap when they share more than this fraction of the smaller one's box.
OVERLAP_FRACTION = 0.15
#: The record of every matplotlib figure the build's kernels drew (one JSON object a line), in
#: the build folder; the environment variable that tells the kernels where it is.
FIGURE_AUDIT = "figure-audit.jsonl"
AUDIT_ENV = "CIRCUITSCOPE_FIGURE_AUDIT"


@contextlib.contextmanager
def _drawn_texts():
    """Collects ``{id: (text, box)}`` of every non-empty text matplotlib draws meanwhile (the box in
    the pixels of the image being drawn; the last draw of a text wins)."""
    from matplotlib.text import Text

    drawn: dict[int, tuple] = {}
    original = Text.draw

    def draw(self, renderer):
        result = original(self, renderer)
        try:
            if self.get_visible() and self.get_text().strip() and self.get_alpha() != 0:
                box = self.get_window_extent(renderer)
                clip = self.get_clip_box() if self.get_clip_on() else None
                if clip is None or box.overlaps(clip):
                    drawn[id(self)] = (self, box)
        except Exception:  # a text matplotlib cannot place: not shown either
            pass
        return result

    Text.draw = draw
    try:
        yield drawn
    finally:
        Text.draw = original


def figure_record(png: bytes, dpi: float, drawn: dict) -> dict:
    """What a figure drawn to ``png`` at ``dpi`` shows: its size in pixels and every text drawn
    (``drawn``, from :func:`_drawn_texts`: font size in points, box in the PNG's pixels), keyed
    by the SHA-256 of the PNG's bytes.

    The site shows the PNG at its own size, shrunk to the column when wider (``max-width: 100%``),
    so a text's size on the page is ``points * dpi / 72 * min(1, column / width)``.
    """
    import hashlib
    import struct

    width, height = struct.unpack(">II", png[16:24]) if png[:8] == b"\x89PNG\r\n\x1a\n" else (0, 0)
    texts = [{"text": t.get_text()[:80], "pt": float(t.get_fontsize()),
              "box": [round(float(v), 1) for v in (box.x0, box.y0, box.x1, box.y1)]}
             for t, box in drawn.values()]  # fmt: skip
    return {"sha256": hashlib.sha256(png).hexdigest(), "width": width, "height": height, "dpi": float(dpi),
            "texts": texts}  # fmt: skip


def draw_png(fig, **kwargs) -> tuple[bytes, dict]:
    """``fig`` drawn as the notebook shows it (IPython's ``print_figure``: PNG, ``bbox_inches="tight"``
    at the figure's DPI), and its :func:`figure_record`."""
    from io import BytesIO

    kw = {"format": "png", "dpi": fig.dpi, "bbox_inches": "tight", "facecolor": fig.get_facecolor(), **kwargs}
    out = BytesIO()
    with _drawn_texts() as drawn:
        fig.canvas.print_figure(out, **kw)
    png = out.getvalue()
    return png, figure_record(png, float(kw["dpi"]), drawn)


def install_figure_audit(path: str | os.PathLike) -> None:
    """Record every figure this process draws to PNG (:func:`figure_record`) in ``path`` (JSON
    lines); the build's kernels call it at start-up (:func:`kernel_profile`). Never raises into
    the drawing: a figure that cannot be measured is drawn as usual."""
    from matplotlib.backend_bases import FigureCanvasBase

    if getattr(FigureCanvasBase.print_figure, "_circuitscope_audit", False):
        return
    original = FigureCanvasBase.print_figure

    def print_figure(self, filename, *args, **kwargs):
        with _drawn_texts() as drawn:
            result = original(self, filename, *args, **kwargs)
        try:
            fmt = str(kwargs.get("format") or "").lower()
            if hasattr(filename, "getvalue") and fmt in ("png", ""):
                png = filename.getvalue()
                record = figure_record(png, float(kwargs.get("dpi") or self.figure.dpi), drawn)
                with open(path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
        except Exception:
            pass
        return result

    print_figure._circuitscope_audit = True
    FigureCanvasBase.print_figure = print_figure


_STARTUP = """# Written by circuitscope.tools.book: the build's kernels record each figure they draw.
import os as _os
if _os.environ.get("{env}"):
    try:
        from circuitscope.tools.book import install_figure_audit as _audit
        _audit(_os.environ["{env}"])
    except Exception:
        pass
"""


def kernel_profile(build: Path) -> Path:
    """An IPython folder (``IPYTHONDIR``) for the build's kernels, whose start-up file installs
    :func:`install_figure_audit` when :data:`AUDIT_ENV` is set; returns it."""
    ipython = build / ".ipython"
    startup = ipython / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-circuitscope-figures.py").write_text(_STARTUP.format(env=AUDIT_ENV), encoding="utf-8")
    return ipython


def read_figure_audit(path: Path) -> dict[str, dict]:
    """``{sha256 of a PNG: its record}`` from a figure audit file (empty when there is none)."""
    records: dict[str, dict] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return records
    for line in lines:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            record = json.loads(line)
            records[record["sha256"]] = record
    return records


def figure_sizes(record: dict, column_px: float = COLUMN_PX) -> tuple[float, float]:
    """``(width shown, smallest text shown)`` in CSS pixels for a figure of :func:`figure_record`
    shown in a column ``column_px`` wide."""
    width = float(record["width"]) or column_px
    shrink = min(1.0, column_px / width)
    sizes = [t["pt"] * record["dpi"] / 72 * shrink for t in record["texts"]]
    return min(width, column_px), min(sizes, default=float("inf"))


def overlapping_texts(record: dict, fraction: float = OVERLAP_FRACTION) -> list[tuple[str, str]]:
    """Pairs of texts of a figure whose boxes overlap by more than ``fraction`` of the smaller."""
    pairs = []
    texts = record["texts"]
    for i, a in enumerate(texts):
        ax0, ay0, ax1, ay1 = a["box"]
        for b in texts[i + 1:]:
            bx0, by0, bx1, by1 = b["box"]
            w, h = min(ax1, bx1) - max(ax0, bx0), min(ay1, by1) - max(ay0, by0)
            if w <= 0 or h <= 0:
                continue
            smaller = min((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)) or 1.0
            if w * h / smaller > fraction:
                pairs.append((a["text"], b["text"]))
    return pairs


_IMG_SRC = re.compile(r"""<img\b[^>]*?\bsrc=["']([^"']+)["']""")


def site_figures(html: Path) -> list[tuple[str, str, bytes]]:
    """``(page, name, PNG bytes)`` for every PNG image a page of the built site shows: files under
    ``_images`` (notebook outputs) and images inlined as ``data:`` URIs (HTML outputs)."""
    import base64

    found = []
    for page in sorted(html.rglob("*.html")):
        name = page.relative_to(html).with_suffix("").as_posix()
        if name.startswith(("_", "genindex", "search")):
            continue
        for k, src in enumerate(_IMG_SRC.findall(page.read_text(encoding="utf-8"))):
            if src.startswith("data:image/png;base64,"):
                with contextlib.suppress(ValueError):
                    found.append((name, f"inline image {k + 1}", base64.b64decode(src.split(",", 1)[1])))
                continue
            target = (page.parent / src.split("#", 1)[0].split("?", 1)[0]).resolve()
            if target.suffix.lower() == ".png" and "_images" in target.parts and target.is_file():
                found.append((name, target.name, target.read_bytes()))
    return found


def check_figures(build: Path, column_px: float = COLUMN_PX, min_font_px: float = MIN_FONT_PX) -> list[NoticeProblem]:
    """Every matplotlib figure the built site shows fits the column with readable, separate text.

    For each PNG a page shows, the record the kernels made when they drew it (:data:`FIGURE_AUDIT`)
    gives its width and its texts: the smallest text, at the size the figure is shown in a column
    ``column_px`` wide, must be at least ``min_font_px`` CSS pixels, and no two texts may overlap
    (:func:`overlapping_texts`). Images that matplotlib did not draw (photos, renders) have no
    record and no text to check (:func:`unrecorded_figures` lists them).
    """
    import hashlib

    records = read_figure_audit(build / FIGURE_AUDIT)
    problems = []
    for page, name, png in site_figures(build / "html"):
        record = records.get(hashlib.sha256(png).hexdigest())
        if record is None:
            continue
        shown, smallest = figure_sizes(record, column_px)
        if smallest < min_font_px:
            small = min(record["texts"], key=lambda t: t["pt"])["text"]
            problems.append(NoticeProblem(page, (
                f"figure {name} ({record['width']} px wide, shown {shown:.0f} px) has text of "
                f"{smallest:.1f} px ({small!r}): under {min_font_px:.0f} px; draw it for the column "
                "(circuitscope.figures.style.COLUMN_IN) with larger type")))
        for a, b in overlapping_texts(record)[:3]:
            problems.append(NoticeProblem(page, f"figure {name}: labels overlap: {a!r} and {b!r}"))
    return problems


def unrecorded_figures(build: Path) -> list[tuple[str, str, int]]:
    """``(page, name, width in px)`` of the site's PNGs that no kernel recorded drawing (not
    matplotlib figures, or pages taken from an execution cache made before the recording)."""
    import hashlib
    import struct

    records = read_figure_audit(build / FIGURE_AUDIT)
    return [(page, name, struct.unpack(">I", png[16:20])[0] if png[:4] == b"\x89PNG" else 0)
            for page, name, png in site_figures(build / "html")
            if hashlib.sha256(png).hexdigest() not in records]  # fmt: skip


# -- run times ------------------------------------------------------------------------------
#: Each notebook page must run within this on two CPU cores in the CPU profile (COURSE.md).
PAGE_BUDGET_S = 120.0


def execution_times(root: Path, cache_path: Path) -> dict[str, float]:
    """Seconds each notebook page took when it was last executed: ``{"book/ch1_introduction/index": 63.2}``.

    Read from the execution cache (``cache_path``), which records the run time of every notebook it
    executed; pages under ``root`` only, keyed like ``_toc.yml`` (relative, no suffix).
    """
    if not cache_path.is_dir():
        return {}
    from jupyter_cache import get_cache

    latest: dict[str, tuple] = {}
    for record in get_cache(cache_path).list_cache_records():
        seconds = (record.data or {}).get("execution_seconds")
        try:
            page = Path(record.uri).resolve().relative_to(root.resolve()).with_suffix("").as_posix()
        except ValueError:  # a notebook of another tree (a classroom stage)
            continue
        if seconds is not None and (page not in latest or record.created > latest[page][0]):
            latest[page] = (record.created, float(seconds))
    return {page: seconds for page, (_, seconds) in sorted(latest.items())}


#: What each weights state means, for the build's last lines.
STATE_WORDS = {
    "real": "the real InceptionV1 weights (inception5h.pth, hash verified)",
    "unverified": "an UNVERIFIED weight file (InceptionV1's shapes, not the published file)",
    "synthetic": "SYNTHETIC stand-in weights, not the real InceptionV1 (pages say so in a red box)",
}


def _report_times(times: dict[str, float], executed=(), cached=()) -> None:
    """Seconds per notebook page: ``executed`` ran in this build, ``cached`` came from the cache
    (their time is the one of the run that made them)."""
    if not times:
        return
    print(f"\nNotebook pages (seconds to run; budget {PAGE_BUDGET_S:.0f} s each on two CPU cores):")
    for page, seconds in times.items():
        how = "ran now" if page in executed else "cached" if page in cached else "last run"
        flag = "  OVER BUDGET" if seconds > PAGE_BUDGET_S else ""
        print(f"  {seconds:7.1f} s  {how:8s}  {page}{flag}")


def _notebook_pages(source: Path) -> int:
    """How many pages of ``source``'s ``_toc.yml`` are notebooks (run at build time)."""
    import yaml

    try:
        toc = yaml.safe_load((source / "_toc.yml").read_text(encoding="utf-8")) or {}
    except OSError:
        return 0
    files: list[str] = [toc.get("root", "")]

    def walk(entries):
        for entry in entries or []:
            if isinstance(entry, dict):
                files.append(entry.get("file", ""))
                walk(entry.get("sections"))
                walk(entry.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return sum(1 for f in files if f and (source / f"{f}.ipynb").is_file())


# -- the build ------------------------------------------------------------------------------
def build(
    root: Path,
    output: Path | None = None,
    extra_args: list[str] | tuple[str, ...] = (),
    classroom: bool = False,
    require_real: bool = False,
    learner_repo: str | None = None,
    microscope: Path | None = None,
) -> int:
    """Build the site of the book at ``root`` into ``<output or root>/_build/html``; the exit status.

    ``classroom=True``: the release without solutions, whose links lead to ``learner_repo`` (default
    ``_config.yml``'s ``classroom.learner_repository``) or nowhere; ``require_real=True``: fail
    unless every page is made with the verified real weights and every published file (see the
    module's docstring). ``microscope``: a folder written by ``circuitscope gallery --all-layers``,
    copied into the site and linked from its Microscope page (:func:`attach_microscope`).

    The steps: check the arguments, fetch the published data, choose the weights and the
    execution cache, run the pages and Sphinx, check the built site, report.
    """
    from circuitscope_course import pages

    root = Path(root).resolve()
    if not (root / "_config.yml").is_file():
        return _error(f"no _config.yml in {root}: is it the repository root?")
    if learner_repo and not classroom:
        return _error("--learner-repo is for the classroom release: add --classroom")
    try:
        release = pages.Classroom.read(root, learner_repo) if classroom else None
    except pages.PagesError as err:
        return _error(str(err))
    out_root = Path(output).resolve() if output is not None else root
    build_path = build_dir(root, out_root)
    if not _fetch_published(require_real):
        return 1
    env = build_env()
    identity = weights_identity(env)
    state = identity_state(identity)
    if require_real and state != "real":
        return _failed(f"--require-real needs the verified real weights, but the pages would use {identity!r}. "
                       "Set CIRCUITSCOPE_WEIGHTS to inception5h.pth (or put it in the cache: "
                       "circuitscope.core.models.weights.copy_to_cache).")  # fmt: skip
    key = cache_key(identity, missing_data(env))
    cache = use_execution_cache(execution_cache(root, build_path), key)
    log = _announce(root, identity, state, cache, key)
    # The kernels record each figure they draw (checked against the column after the build).
    build_path.mkdir(parents=True, exist_ok=True)
    env = {**env, AUDIT_ENV: str(build_path / FIGURE_AUDIT), "IPYTHONDIR": str(kernel_profile(build_path))}
    try:
        status, elapsed = _run_pages(root, out_root, build_path, extra_args, env, log, cache, release)
    except pages.PagesError as err:
        return _failed(f"the exercise pages cannot be made: {err}")
    if status != 0:
        return _failed(f"exit status {status} after {elapsed:.0f} s: a warning, an error, or a notebook cell "
                       "that raised; see the messages above.", status=status)  # fmt: skip
    status = _check_site(root, build_path, cache, identity, state, classroom, require_real, microscope)
    if status != 0:
        return status
    _report(root, build_path, cache, log, identity, state, release, elapsed)
    return 0


def _error(message: str) -> int:
    """A problem with how the build was asked for: exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def _failed(message: str, problems: list[str] = (), status: int = 1) -> int:
    """The build failed: say why (one line per problem), return ``status``."""
    print(f"\nBook build FAILED: {message}", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return status


def _fetch_published(require_real: bool) -> bool:
    """Fetch the published data now (the kernels run offline), unless the user said offline.
    False when a file could not be had and ``require_real`` needs every one."""
    from circuitscope.core import registry

    if registry.offline():
        return True
    failed = prefetch()
    if failed:
        print(f"\n{len(failed)} published file(s) could not be had; their pages show a "
              "'not available' note:", file=sys.stderr)  # fmt: skip
        for name, why in failed.items():
            print(f"  - {name}: {why.splitlines()[0]}", file=sys.stderr)
        if require_real:
            _failed("--require-real needs every published file.")
            return False
    return True


def _announce(root: Path, identity: str, state: str | None, cache: Path, key: str) -> BuildLog:
    """Say which weights and cache the pages use and what happens next; the build's log."""
    print(f"Weights: {identity}: {STATE_WORDS.get(state or '', 'unknown weights')}.", flush=True)
    print(f"Execution cache: {cache} (key {key}); unchanged pages are not run again.", flush=True)
    n_pages = _notebook_pages(root)
    print(f"Building the site: {n_pages} notebook pages run their code (on two CPU cores about a minute "
          "each the first time, seconds when cached), then Sphinx writes the HTML.", flush=True)  # fmt: skip
    return BuildLog(root, n_pages)


def _run_pages(root, out_root, build_path, extra_args, env, log, cache, release) -> tuple[int, float]:
    """Write the exercise pages, run every page and Sphinx (the classroom release from a staged
    copy without solutions); ``(exit status, seconds)``."""
    from circuitscope_course import pages

    if pages.exercises(root) and release is None:
        pages.write_pages(root)
    if release is not None:  # a page left by an earlier build (the instructors' page, a solution) must not ship
        shutil.rmtree(build_path / "html", ignore_errors=True)
    with pages.classroom_stage(root, release) if release is not None else contextlib.nullcontext(root) as source:
        log.source = Path(source)
        status, elapsed = _jupyter_book(source, out_root, extra_args, env, log=log)
        if release is not None:
            pages.forget_staged_notebooks(cache, source)
    return status, elapsed


def _check_site(root, build_path, cache, identity, state, classroom, require_real, microscope) -> int:
    """The built site's checks, in order; the first that fails ends the build (exit status 1).
    Figure problems are reported, not fatal."""
    from circuitscope_course import pages

    html = build_path / "html"
    has_exercises = bool(pages.exercises(root))
    checks = [
        ("pages that use the model must say which weights they used"
         + (" (and, with --require-real, be made with the real ones)." if require_real else "."),
         lambda: check_weights_notices(build_path, cache, require_real=require_real)),
        (f"pages say what is false for their weights ({identity}), or show a figure twice or a blank widget:",
         lambda: check_page_truth(build_path, state, cache, repeats_allowed=exercise_pages(root))),
        (f"the site shows {'hidden tests or solutions' if classroom else 'hidden tests'}:",
         lambda: pages.check_published(html, root, classroom) if has_exercises else []),
        ("the classroom site leads to what the class must not see (the course's repository, solutions/, "
         "the instructors' page):", lambda: pages.check_classroom(html, root) if classroom else []),
    ]  # fmt: skip
    for message, check in checks:
        problems = check()
        if problems:
            return _failed(message, problems)
    if microscope is not None:
        try:
            print(attach_microscope(html, Path(microscope), require_real=require_real))
        except MicroscopeError as err:
            return _failed(str(err))
    figures = check_figures(build_path)
    if figures:
        print(f"\n{len(figures)} figure problem(s) (text under {MIN_FONT_PX:.0f} px in the "
              f"{COLUMN_PX}-px column, or labels that overlap):")  # fmt: skip
        for problem in figures:
            print(f"  - {problem}")
    return 0


def _report(root, build_path, cache, log, identity, state, release, elapsed: float) -> None:
    """Each page's execution time, then where the site is and what it was made with."""
    times = execution_times(root, cache) if release is None else {}
    times.update(log.times)
    _report_times(dict(sorted(times.items())), executed=log.times, cached=log.cached)
    what = ""
    if release is not None:
        where = f"links to {release.learner_repo}" if release.learner_repo else "links to no repository"
        what = f"\n  Release:  classroom (no solutions, no instructors' page, {where})"
    index = build_path / "html" / "index.html"
    print(f"\nBook built in {elapsed:.0f} s.{what}"
          f"\n  Site:     {index}  (open it in a browser, or: python -m http.server -d {index.parent})"
          f"\n  Weights:  {identity}: {STATE_WORDS.get(state or '', 'unknown weights')}"
          f"\n  Pages:    {len(log.times)} run now, {len(log.cached)} from the cache")  # fmt: skip


# -- the Microscope --------------------------------------------------------------------------
MICROSCOPE_PAGE = Path("book") / "microscope.html"
_MICROSCOPE_STATUS = re.compile(r'<div class="circuitscope-microscope" id="microscope-status">.*?</div>', re.S)


class MicroscopeError(ValueError):
    """A Microscope folder that cannot be linked from the site (the message says what to do)."""


def attach_microscope(html: Path, microscope: Path, require_real: bool = False) -> str:
    """Copy the Microscope ``microscope`` (``circuitscope gallery --all-layers --out``: its
    ``index.html`` and ``microscope.json``) to ``html/microscope/`` and link it from the site's
    Microscope page, in place of its "built without" note. Returns a line for the log.

    Done on the built HTML, so that a site without a Microscope has no link to a missing page.
    """
    import html as html_lib

    info_path, index = microscope / "microscope.json", microscope / "index.html"
    if not (info_path.is_file() and index.is_file()):
        raise MicroscopeError(f"{microscope} is not a Microscope (no index.html and microscope.json): make one "
                              "with `circuitscope gallery --all-layers --out DIR`")  # fmt: skip
    info = json.loads(info_path.read_text(encoding="utf-8"))
    state = info.get("weights_state", "unknown")
    if require_real and state != "real":
        raise MicroscopeError(f"the Microscope in {microscope} was made with {state} weights; "
                              "--require-real links only one made with the verified real weights")  # fmt: skip
    page = html / MICROSCOPE_PAGE
    source = page.read_text(encoding="utf-8") if page.is_file() else ""
    if not _MICROSCOPE_STATUS.search(source):
        raise MicroscopeError(f"{page} has no Microscope note to replace (is book/microscope.md in _toc.yml?)")
    dest = html / "microscope"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(microscope, dest)
    layers = info.get("layers", {})
    units = sum(len(v.get("channels", [])) if isinstance(v.get("channels"), list) else int(v.get("channels") or 0)
                for v in layers.values())  # fmt: skip
    words = STATE_WORDS.get(state, f"{state} weights")
    link = (f'<div class="circuitscope-microscope" id="microscope-status"><p><a href="../microscope/index.html">'
            f"Open the Microscope</a>: {units} units of {len(layers)} layer(s) "
            f"({html_lib.escape(', '.join(layers))}), {info.get('size', '?')} px, {info.get('steps', '?')} "
            f"steps; made with {html_lib.escape(str(info.get('weights', state)))}: "
            f"{html_lib.escape(words)}.</p></div>")  # fmt: skip
    page.write_text(_MICROSCOPE_STATUS.sub(lambda _: link, source, count=1), encoding="utf-8")
    return f"Microscope: {units} units linked from {page} ({dest})"


# -- the build's log -------------------------------------------------------------------------
#: Lines of jupyter-book's output that say nothing to the reader of the log: ipykernel's warning
#: about its local TCP socket (one per notebook; the kernels listen on 127.0.0.1 only), and the
#: full MyST / MyST-NB configuration objects (hundreds of characters each, on every build).
_NOISE = (
    re.compile(r"Kernel is running over TCP without encryption"),
    re.compile(r"^(myst v[\d.]+: MdParserConfig|myst-nb v[\d.]+: NbParserConfig)\("),
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_EXECUTING = re.compile(r"^(?P<path>\S+?\.(?:ipynb|md)): Executing notebook")
_EXECUTED = re.compile(r"^(?P<path>\S+?\.(?:ipynb|md)): Executed notebook in (?P<s>[\d.]+) seconds")
_CACHED = re.compile(r"^(?P<path>\S+?\.(?:ipynb|md)): Using cached notebook")


class BuildLog:
    """Reads jupyter-book's output line by line and writes what a person needs to follow the build.

    Drops :data:`_NOISE` and ANSI colour codes, keeps every warning and error as it is, and turns
    myst-nb's notebook lines into one line per page with its number and time
    (``[3/10] book/ch2_feature_visualization/index: ran in 41.2 s``). :attr:`times` collects
    the seconds of each page executed in this build; :attr:`cached` the pages taken from the cache.
    """

    def __init__(self, source: Path, pages: int = 0, out=None):
        self.source = Path(source)
        self.pages = pages
        self.out = out if out is not None else sys.stdout
        self.times: dict[str, float] = {}
        self.cached: list[str] = []
        self._started: dict[str, float] = {}

    def _page(self, path: str) -> str:
        try:
            return Path(path).resolve().relative_to(self.source.resolve()).with_suffix("").as_posix()
        except ValueError:
            return Path(path).with_suffix("").as_posix()

    def _counter(self) -> str:
        done = len(self.times) + len(self.cached) + len(self._started)
        return f"[{done}/{self.pages}]" if self.pages else f"[{done}]"

    def line(self, raw: str) -> str | None:
        """The line to show for one line of jupyter-book's output (None: drop it)."""
        text = _ANSI.sub("", raw.rstrip("\n"))
        if any(p.search(text) for p in _NOISE):
            return None
        if m := _EXECUTING.match(text):
            page = self._page(m["path"])
            self._started[page] = time.monotonic()
            return f"{self._counter()} {page}: running its code cells..."
        if m := _EXECUTED.match(text):
            page = self._page(m["path"])
            self._started.pop(page, None)
            self.times[page] = float(m["s"])
            flag = f" (over the {PAGE_BUDGET_S:.0f} s budget)" if float(m["s"]) > PAGE_BUDGET_S else ""
            return f"      {page}: ran in {float(m['s']):.1f} s{flag}"
        if m := _CACHED.match(text):
            page = self._page(m["path"])
            self.cached.append(page)
            return f"{self._counter()} {page}: unchanged, outputs from the execution cache"
        if "Cached executed notebook" in text:
            return None
        return text

    def feed(self, stream) -> None:
        for raw in iter(stream.readline, ""):
            shown = self.line(raw)
            if shown is not None:
                print(shown, file=self.out, flush=True)


def _jupyter_book(
    source: Path, out_root: Path, extra_args, env: dict[str, str] | None = None, log: BuildLog | None = None
) -> tuple[int, float]:
    """``jupyter-book build SOURCE --path-output OUT_ROOT`` with the strict flags; (status, seconds).

    Its output (stdout and stderr together) goes through ``log`` (a :class:`BuildLog`).
    """
    cmd = [*jupyter_book_command(), "build", str(source), *STRICT_FLAGS]
    if out_root != source:
        cmd += ["--path-output", str(out_root)]
    cmd += list(extra_args)
    print("$ " + " ".join(cmd), flush=True)
    log = log or BuildLog(source)
    full_env = dict(build_env() if env is None else env)
    full_env.setdefault("NO_COLOR", "1")  # Sphinx and others: no colour codes in the log
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=full_env, cwd=source, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, encoding="utf-8", errors="replace", bufsize=1)  # fmt: skip
    with proc:
        log.feed(proc.stdout)
    return proc.wait(), time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m circuitscope.tools.book",
        description="Build the circuitscope course site (strict, offline, CPU profile).",
        epilog="Arguments after the known ones go to `jupyter-book build` unchanged.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the site into <root>/_build/html")
    b.add_argument("root", nargs="?", type=Path, default=None,
                   help="the book's root, with _config.yml and _toc.yml (default: this repository)")  # fmt: skip
    b.add_argument("--output", type=Path, default=None,
                   help="write <OUTPUT>/_build instead of <root>/_build (jupyter-book --path-output)")  # fmt: skip
    b.add_argument("--classroom", action="store_true",
                   help="a release for a class: exercise pages show the stubs only, no instructors' "
                        "page, no link to this repository (see --learner-repo)")  # fmt: skip
    b.add_argument("--learner-repo", default=None, metavar="URL",
                   help="with --classroom: the repository made for the class (https://github.com/"
                        "<owner>/<repo>, without solutions/) that the site's repository and launch "
                        "buttons, banners and install cells use (default: _config.yml's "
                        "classroom.learner_repository; none: no links)")  # fmt: skip
    b.add_argument("--require-real", action="store_true",
                   help="fail unless every page is made with the verified real weights and every "
                        "published figure could be had (the hosted site)")  # fmt: skip
    b.add_argument("--microscope", type=Path, default=None, metavar="DIR",
                   help="a Microscope made by `circuitscope gallery --all-layers --out DIR`: copied "
                        "into the site and linked from its Microscope page")  # fmt: skip
    args, extra = parser.parse_known_args(argv)
    return build(args.root or repo_root(), args.output, extra, classroom=args.classroom,
                 require_real=args.require_real, learner_repo=args.learner_repo,
                 microscope=args.microscope)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
