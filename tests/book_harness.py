"""What the book tests share: the build command as CI runs it, the pages of _toc.yml, a tiny book.

Used by tests/test_book.py (the synthetic site) and tests/test_real_format.py (the site built
with a real-format weight file, in the "unverified" state).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT = 900  # seconds; the whole book on two CPU cores takes a few minutes at most


def run_build(
    root: Path,
    output: Path | None,
    cache: Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """``python -m circuitscope.tools.book build ROOT``, as scripts/book.sh runs it, offline.

    No real weights unless ``env`` (added to the environment) names a file: ``CIRCUITSCOPE_WEIGHTS``
    is removed from the inherited environment.
    """
    full = {k: v for k, v in os.environ.items() if k != "CIRCUITSCOPE_WEIGHTS"}
    full["CIRCUITSCOPE_CACHE"] = str(cache)
    full.update(env or {})
    cmd = [sys.executable, "-m", "circuitscope.tools.book", "build", str(root), *args]
    if output is not None:
        cmd += ["--output", str(output)]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=BUILD_TIMEOUT)


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


def notebook_pages(root: Path = ROOT) -> list[str]:
    """The pages of _toc.yml that are notebooks (executed at build time)."""
    return [p for p in toc_pages(root) if (root / f"{p}.ipynb").is_file()]


def chapter_pages(root: Path = ROOT) -> list[str]:
    """Each chapter's narrative page: ``book/ch<N>_<name>/index``."""
    return [p for p in notebook_pages(root) if re.fullmatch(r"book/ch\d+_\w+/index", p)]


def mini_book(tmp_path: Path, code_cells: list[str]) -> Path:
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


def execute_notebook(path: Path, env: dict[str, str], monkeypatch) -> tuple[nbformat.NotebookNode, list]:
    """Run the notebook at ``path`` in a real kernel (this Python) with ``env`` added; (notebook, errors).

    ``errors`` lists ``(code cell index, ename, evalue)`` of every cell that raised; the
    kernel inherits the environment through ``monkeypatch``.
    """
    from nbclient import NotebookClient

    from circuitscope_course.course import _kernel_dir

    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(_kernel_dir()), os.environ.get("JUPYTER_PATH")])))
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})  # fmt: skip
    client.execute()
    errors = [(i, o["ename"], o["evalue"]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o["output_type"] == "error"]  # fmt: skip
    return nb, errors
