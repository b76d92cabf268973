"""Build the course site: ``python -m circuitscope.book build [ROOT]`` (what ``scripts/book.sh`` runs).

The build is strict and self-contained:

* ``jupyter-book build ROOT -W -n --keep-going --all``: every Sphinx warning is an error (all of
  them are reported before it fails), and a notebook cell that raises fails the build
  (``execute.raise_on_error`` in ``_config.yml``);
* notebooks are executed through Jupyter Book's cache (``_build/.jupyter_cache``), so only
  changed notebooks run again;
* the environment says ``CIRCUITSCOPE_OFFLINE=1`` (nothing is downloaded; without a local copy of
  the weights the pages use the synthetic ones), ``CIRCUITSCOPE_PROFILE=cpu`` unless set, and
  ``TQDM_DISABLE=1`` unless set (progress bars are noise on a static page);
* MathJax is served from the site itself (the ``sphinx-mathjax-offline`` extension), so maths
  renders without a network;
* before the build, the exercise pages (``book/<assignment>/exercises.ipynb``) are generated
  from ``solutions/`` (:mod:`circuitscope.course.pages`); they are committed, so this only
  changes them when a solution notebook changed;
* ``--classroom`` builds a release without solutions: the book is staged in a temporary folder
  whose exercise pages show the stubs only (the working tree is not touched), and the site is
  written to ``<output or root>/_build`` as usual;
* after the build, :func:`check_weights_notices` checks that every executed page that loads the
  model shows :func:`circuitscope.notice` right after loading it, and
  :func:`circuitscope.course.pages.check_published` that no file of the site shows a hidden
  test (nor, with ``--classroom``, a solution).
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

#: CSS classes of the two notices :func:`circuitscope.provenance.notice` can show.
NOTICE_SYNTHETIC = "circuitscope-synthetic"
NOTICE_REAL = "circuitscope-real"

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


def execution_cache(root: Path, build: Path) -> Path:
    """The notebook execution cache: ``execute.cache`` of ``_config.yml``, else ``build/.jupyter_cache``."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    path = (config.get("execute") or {}).get("cache")
    return (root / path) if path else build / ".jupyter_cache"


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


def _notices_in(cell) -> set[str]:
    text = json.dumps(cell.get("outputs", []))
    return {cls for cls in (NOTICE_SYNTHETIC, NOTICE_REAL) if cls in text}


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


def check_weights_notices(build: Path, cache_path: Path | None = None) -> list[NoticeProblem]:
    """Pages that load InceptionV1 without saying which weights they used.

    For every executed notebook of the build (``build/jupyter_execute``: ``.ipynb`` pages and
    MyST notebooks alike, with outputs from the execution cache ``cache_path``, default
    ``build/.jupyter_cache``), each code cell that calls ``load_inceptionv1(`` must show
    ``cs.notice(model)`` in its own output or in the next code cell's, and the built HTML page
    must contain that notice (it was not hidden with a ``remove-output`` tag). With synthetic
    weights the notice is the red "Made with synthetic weights" box.
    """
    problems: list[NoticeProblem] = []
    executed = build / "jupyter_execute"
    html = build / "html"
    cache_path = cache_path or build / ".jupyter_cache"
    cache = None
    if cache_path.is_dir():
        from jupyter_cache import get_cache

        cache = get_cache(cache_path)
    for path in sorted(executed.rglob("*.ipynb")) if executed.is_dir() else []:
        page = path.relative_to(executed).with_suffix("").as_posix()
        nb = _executed_notebook(path, cache)
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
                    "loading the model: with synthetic weights it shows the red 'Made with "
                    "synthetic weights' box that every such page must carry.",
                ))
            shown |= found
        page_html = html / f"{page}.html"
        if shown and page_html.is_file():
            text = page_html.read_text(encoding="utf-8")
            for cls in sorted(cls for cls in shown if cls not in text):
                kind = "synthetic-weights" if cls == NOTICE_SYNTHETIC else "weights"
                problems.append(NoticeProblem(
                    page,
                    f"the notebook shows the {kind} notice (class {cls!r}) but the built page "
                    f"{page_html} does not: do not hide the output of the cs.notice(model) cell.",
                ))
    return problems


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


def _report_times(times: dict[str, float]) -> None:
    if not times:
        return
    print(f"\nNotebook run times (last execution; budget {PAGE_BUDGET_S:.0f} s each on two CPU cores):")
    for page, seconds in times.items():
        flag = "  OVER BUDGET" if seconds > PAGE_BUDGET_S else ""
        print(f"  {seconds:7.1f} s  {page}{flag}")


# -- the build ------------------------------------------------------------------------------
def build(
    root: Path,
    output: Path | None = None,
    extra_args: list[str] | tuple[str, ...] = (),
    classroom: bool = False,
) -> int:
    """Build the site of the book at ``root`` into ``<output or root>/_build/html``; the exit status.

    ``classroom=True``: the release without solutions (see the module's docstring).
    """
    from circuitscope.course import pages

    root = Path(root).resolve()
    if not (root / "_config.yml").is_file():
        print(f"error: no _config.yml in {root}: is it the repository root?", file=sys.stderr)
        return 2
    out_root = Path(output).resolve() if output is not None else root
    has_exercises = bool(pages.exercises(root))
    try:
        if has_exercises and not classroom:
            pages.write_pages(root)
        with pages.classroom_stage(root) if classroom else contextlib.nullcontext(root) as source:
            status, elapsed = _jupyter_book(source, out_root, extra_args)
            if classroom:
                pages.forget_staged_notebooks(execution_cache(root, build_dir(root, out_root)), source)
    except pages.PagesError as err:
        print(f"\nBook build FAILED: the exercise pages cannot be made: {err}", file=sys.stderr)
        return 1
    if status != 0:
        print(f"\nBook build FAILED (exit status {status}) after {elapsed:.0f} s: a warning, an "
              "error, or a notebook cell that raised; see the messages above.", file=sys.stderr)  # fmt: skip
        return status
    build_path = build_dir(root, out_root)
    problems = check_weights_notices(build_path, execution_cache(root, build_path))
    if problems:
        print("\nBook build FAILED: pages that use the model must say which weights they used.",
              file=sys.stderr)  # fmt: skip
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    leaks = pages.check_published(build_path / "html", root, classroom) if has_exercises else []
    if leaks:
        what = "hidden tests or solutions" if classroom else "hidden tests"
        print(f"\nBook build FAILED: the site shows {what}:", file=sys.stderr)
        for leak in leaks:
            print(f"  - {leak}", file=sys.stderr)
        return 1
    if not classroom:
        _report_times(execution_times(root, execution_cache(root, build_path)))
    release = " (classroom release: no solutions)" if classroom else ""
    print(f"\nBook built in {elapsed:.0f} s{release}: {build_path / 'html' / 'index.html'}")
    return 0


def _jupyter_book(source: Path, out_root: Path, extra_args) -> tuple[int, float]:
    """``jupyter-book build SOURCE --path-output OUT_ROOT`` with the strict flags; (status, seconds)."""
    cmd = [*jupyter_book_command(), "build", str(source), *STRICT_FLAGS]
    if out_root != source:
        cmd += ["--path-output", str(out_root)]
    cmd += list(extra_args)
    print("$ " + " ".join(cmd), flush=True)
    start = time.monotonic()
    status = subprocess.call(cmd, env=build_env(), cwd=source)
    return status, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m circuitscope.book",
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
                   help="a release without solutions: exercise pages show the stubs only")  # fmt: skip
    args, extra = parser.parse_known_args(argv)
    return build(args.root or repo_root(), args.output, extra, classroom=args.classroom)


if __name__ == "__main__":
    sys.exit(main())
