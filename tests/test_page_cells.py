"""The chapter pages' code cells: a figure drawn in the middle of a cell must be displayed.

Jupyter shows only a cell's last expression. A figure function called on an earlier line of the
same cell draws a figure nobody sees: the text beside it then describes a figure the page does
not show (chapter 3's stimuli cell showed only the last of its three rows).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "book").glob("ch*/index.ipynb"))
FIGURE_CALL = re.compile(r"plot|show_images|figure|chart|diagram|grid|heatmap|panels")


def hidden_figures(source: str) -> list[str]:
    """The calls of figure functions in ``source`` whose value is thrown away (not last, not displayed)."""
    code = "\n".join(line for line in source.split("\n") if not line.lstrip().startswith(("%", "!")))
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return []
    lost = []
    for node in body[:-1]:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            name = ast.unparse(node.value.func).rsplit(".", 1)[-1]
            # caption_figure, stamp, savefig: they mark or save a figure, they do not draw one
            if not name.startswith(("caption", "stamp", "save")) and FIGURE_CALL.search(name):
                lost.append(ast.unparse(node)[:80])
    return lost


def test_the_check_finds_a_figure_that_is_never_shown():
    assert hidden_figures("plotting.show_images(a)\nplotting.show_images(b)") == ["plotting.show_images(a)"]
    assert hidden_figures("display(plotting.show_images(a))\nplotting.show_images(b)") == []
    assert hidden_figures("caption_figure(fig, model)\ndisplay(fig)") == []  # draws nothing new


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.parent.name)
def test_every_figure_a_page_draws_is_shown(page):
    nb = nbformat.read(page, as_version=4)
    lost = {c.get("id"): hidden_figures(c.source) for c in nb.cells if c.cell_type == "code"}
    assert not {k: v for k, v in lost.items() if v}, f"figures drawn but not displayed in {page.name}"
