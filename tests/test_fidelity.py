"""Facts the course states about InceptionV1 and Lucid that its code computes, checked against the code.

Issue 18 ("scientific fidelity") corrected these statements; each test pins one of them to what
the library actually does, so that the text and the code cannot drift apart again:

* mixed3b's 3x3 bottleneck is 128 channels wide (96 is mixed3a's), read from the model, and the
  chapter 3 exercise says so;
* Lucid's redirected ReLU covers 17 updates (``global_step <= 16``, counting from 0), and
  ``optvis.render`` applies it for exactly that many;
* ``scale_by`` resizes with half-pixel centres, which is *not* TensorFlow 1's legacy
  ``resize_bilinear`` sampling that Lucid uses (the docstring says so);
* ``x * 255 - 117`` is applied by the PyTorch model itself (Lucid's ``image_value_range``);
* every citation key on the pages has a bib entry;
* the 3a -> 3b curve pairs the pages draw are "Zoom In"'s, as they say.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from circuitscope.core.models.layers import conv2d_same
from circuitscope.methods.optvis.transform import scale_by

# The module, not the function `circuitscope.methods.optvis.render` that the package exports.
render_module = importlib.import_module("circuitscope.methods.optvis.render")

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SOLUTIONS = ROOT / "solutions"


def _markdown(path: Path) -> str:
    """All markdown of a notebook, or a markdown file's text."""
    if path.suffix == ".md":
        return path.read_text()
    nb = nbformat.read(path, as_version=4)
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


# -- mixed3b's bottleneck widths ----------------------------------------------------------------
def test_bottleneck_widths_read_from_the_model(synthetic_model):
    """mixed3b's 3x3 branch reads a 128-wide bottleneck, mixed3a's a 96-wide one (GoogLeNet's table)."""
    model = synthetic_model
    for block, width in (("mixed3b", 128), ("mixed3a", 96)):
        neck = getattr(model, f"{block}_3x3_bottleneck_pre_relu_conv")
        branch = getattr(model, f"{block}_3x3_pre_relu_conv")
        assert (
            neck.out_channels
            == branch.in_channels
            == model.layer_channels[f"{block}_3x3_bottleneck"]
            == width
        )


def test_chapter_3_exercise_states_the_model_s_bottleneck_width(synthetic_model):
    text = _markdown(SOLUTIONS / "ch3_circuits" / "ch3_exercises.ipynb")
    stated = re.search(r"the (\d+) units of `mixed3b_3x3_bottleneck`", text)
    assert stated, "exercise 1 should say how many units mixed3b_3x3_bottleneck has"
    assert int(stated[1]) == synthetic_model.layer_channels["mixed3b_3x3_bottleneck"]


# -- redirected ReLU: 17 updates ----------------------------------------------------------------
def _lucid_redirected_updates(steps: int) -> int:
    """Updates whose ReLU gradient Lucid redirects: ``not global_step > 16``, global_step = 0, 1, ..."""
    return sum(1 for global_step in range(steps) if not global_step > 16)


def test_render_redirects_the_relu_gradient_for_lucid_s_17_updates(synthetic_model, monkeypatch):
    calls = []

    class Counting:
        """Stands in for RedirectedReLU in render's hooks and counts the updates that use it."""

        @staticmethod
        def apply(pre):
            calls.append(1)
            return original.apply(pre)

    original = render_module.RedirectedReLU
    monkeypatch.setattr(render_module, "RedirectedReLU", Counting)
    steps = 24
    # conv2d0 is the only ReLU before the objective, so one call per redirected update.
    render_module.render(synthetic_model, "conv2d0:50", size=16, steps=steps, seed=0, progress=False)
    assert len(calls) == _lucid_redirected_updates(steps) == 17


def test_chapter_2_states_the_redirected_update_count():
    text = _markdown(BOOK / "ch2_feature_visualization" / "index.ipynb")
    stated = re.search(r"for the first (\d+) updates the ReLUs pass gradient", text)
    assert stated and int(stated[1]) == render_module.REDIRECT_STEPS == _lucid_redirected_updates(512)


# -- bilinear resize: half-pixel centres, not TF1's legacy sampling -----------------------------
def _tf1_legacy_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False).

    Output pixel ``i`` samples the input at ``i * in / out``; neighbours past the edge are clamped.
    Written out here because it is the reference the library is compared with, not a library.
    """

    def axis(n_in: int, n_out: int):
        src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, (src - lo).to(x.dtype)

    (y0, y1, wy), (x0, x1, wx) = axis(x.shape[-2], size[0]), axis(x.shape[-1], size[1])
    rows = x[..., y0, :] * (1 - wy)[:, None] + x[..., y1, :] * wy[:, None]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_scale_by_uses_half_pixel_centres_not_tf1_legacy_sampling(factor):
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    size = (int(factor * 20), int(factor * 20))
    ours = scale_by(x, factor)
    half_pixel = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=False)
    torch.testing.assert_close(ours, half_pixel, rtol=1e-5, atol=1e-5)
    legacy = _tf1_legacy_resize(x, size)
    assert legacy.shape == ours.shape
    assert (ours - legacy).abs().max() > 0.05, "scale_by should differ from TF1's legacy sampling"


def test_the_legacy_reference_is_tf1_s_rule_on_a_ramp():
    """On a linear ramp the legacy rule returns the sampled positions themselves: i * in / out."""
    ramp = torch.arange(10, dtype=torch.float64).repeat(1, 1, 1, 1)  # (1, 1, 1, 10)
    out = _tf1_legacy_resize(ramp, (1, 8))
    torch.testing.assert_close(out[0, 0, 0, :7], torch.arange(7, dtype=torch.float64) * 10 / 8)


# -- x * 255 - 117 happens in the model ---------------------------------------------------------
def test_the_model_feeds_the_graph_x_times_255_minus_117(synthetic_model):
    """Lucid's image_value_range (-117, 255 - 117): images in [0, 1] reach conv2d0 as x * 255 - 117."""
    import circuitscope as cs

    model = synthetic_model
    images = torch.stack([torch.zeros(3, 16, 16), torch.ones(3, 16, 16), torch.rand(3, 16, 16)])
    with torch.no_grad():
        got = cs.activations(model, images, ["conv2d0_pre_relu"])["conv2d0_pre_relu"]
        expected = conv2d_same(images * 255 - 117, model.conv2d0_pre_relu_conv)
        unscaled = conv2d_same(images, model.conv2d0_pre_relu_conv)
    torch.testing.assert_close(got, expected)
    assert (got - unscaled).abs().max() > 1


# -- citations ------------------------------------------------------------------------------------
CITE = re.compile(r"\{cite(?::\w+)?\}`([^`]+)`")


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", (BOOK / "references.bib").read_text(), re.MULTILINE))


def test_every_citation_on_the_pages_has_a_bib_entry():
    pages = sorted(BOOK.glob("*.md")) + sorted(BOOK.glob("ch*/index.ipynb"))
    cited = {
        key.strip() for page in pages for group in CITE.findall(_markdown(page)) for key in group.split(",")
    }
    assert cited, "no citations found: the pattern no longer matches the pages"
    assert "sharkey2022taking" in cited
    missing = sorted(cited - _bib_keys())
    assert not missing, f"cited on the pages but not in book/references.bib: {missing}"


# -- the 3a -> 3b curve pairs are Zoom In's ---------------------------------------------------------
ZOOM_IN_PAIRS = [("3a:147", "3b:379"), ("3a:81", "3b:385"), ("3a:145", "3b:342"), ("3a:71", "3b:330")]


def _pairs_in(path: Path):
    """The value of the one ``pairs = [...]`` assignment in the notebook's code cells."""
    nb = nbformat.read(path, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "%" not in c.source]  # no IPython magics
    found = [
        ast.literal_eval(node.value)
        for source in cells
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pairs" for t in node.targets)
    ]
    assert len(found) == 1, f"{path}: expected one `pairs = [...]`"
    return [tuple(p) for p in found[0]]


@pytest.mark.parametrize(
    "path", ["book/ch3_circuits/index.ipynb", "solutions/ch3_circuits/ch3_exercises.ipynb"]
)
def test_curve_pairs_drawn_are_zoom_in_s_and_are_credited_to_it(path):
    spec = importlib.util.spec_from_file_location("_rc_pairs", ROOT / "scripts" / "reproduce_circuits.py")
    rc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rc)
    assert [(f"3a:{a}", f"3b:{b}") for a, b in rc.PAIRS["zoom-in"]] == ZOOM_IN_PAIRS
    assert _pairs_in(ROOT / path) == ZOOM_IN_PAIRS
    text = _markdown(ROOT / path)
    assert re.search(r'"Zoom In"[^.]*\b(draws|figure)', text), (
        f"{path}: the pairs should be credited to Zoom In"
    )
    assert "`71 → 340`" in text and "`145 → 388`" in text, f"{path}: name Curve Circuits' own pairs too"


# -- every real-unit claim on a chapter page is marked "reported by" or "reproduced here" ----------
#: A unit of the real InceptionV1 named on a page: "3b:379", "mixed4c:447", "conv2d2:119".
#: (Planted models' units, "curves:2" or "lines:0", are not real units and do not match.)
REAL_UNIT = re.compile(r"(?<![\w:])(?:mixed)?(?:[345][a-e]|conv2d[0-2]):\d+\b")
#: The two marks (bold, case-insensitive): **Reported by "Zoom In".** ... {cite}`...`, and
#: **Reproduced here.** for what the cells after it compute with the weights at hand.
REPORTED = re.compile(r"\*\*reported by [^*]+\*\*", re.IGNORECASE)
REPRODUCED = re.compile(r"\*\*reproduced here\b[^*]*\*\*", re.IGNORECASE)
CHAPTER_PAGES = sorted(BOOK.glob("ch*/index.ipynb"))


def _paragraphs(source: str) -> list[str]:
    """A markdown cell's paragraphs: blocks between blank lines, each list item its own block."""
    out: list[str] = []
    current: list[str] = []
    for line in source.splitlines():
        starts_item = re.match(r"\s*(?:[-*]|\d+\.)\s", line)
        if not line.strip() or (starts_item and current):
            if current:
                out.append("\n".join(current))
            current = [line] if line.strip() else []
        else:
            current.append(line)
    if current:
        out.append("\n".join(current))
    return out


def claim_problems(cells: list[tuple[str, str]]) -> list[str]:
    """What is wrong with the marks of a page given as ``[(cell_type, source), ...]``.

    Only the page's claims sections count: from its first ``## `` heading on (the title, reading
    time and learning objectives before it are not claims). A paragraph that names a real unit
    must carry a mark; a **Reported by** paragraph must cite its source ({cite}); a
    **Reproduced here** paragraph must be followed by a code cell before the next section.
    """
    problems = []
    in_claims = False
    for i, (kind, source) in enumerate(cells):
        if kind != "markdown":
            continue
        for para in _paragraphs(source):
            if para.lstrip().startswith("## "):
                in_claims = True
            if not in_claims or para.lstrip().startswith(("#", "|")):
                continue
            reported, reproduced = REPORTED.search(para), REPRODUCED.search(para)
            where = f"cell {i}: {para.strip()[:90]!r}"
            if REAL_UNIT.search(para) and not (reported or reproduced):
                problems.append(f"names a real unit without 'Reported by' or 'Reproduced here': {where}")
            if reported and not CITE.search(para):
                problems.append(f"'Reported by' without a {{cite}} in the same paragraph: {where}")
            if reproduced:
                following = []
                for kind2, source2 in cells[i + 1:]:
                    if kind2 == "markdown" and source2.lstrip().startswith("## "):
                        break
                    following.append(kind2)
                if "code" not in following:
                    problems.append(f"'Reproduced here' but no code cell computes it before the next section: {where}")
    return problems


def _cells(path: Path) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]


def test_the_claim_check_finds_what_it_should():
    ok = [("markdown", "# Title\n\nObjectives name `4e:55` freely."),
          ("markdown", "## A\n\n**Reported by \"Zoom In\".** `4c:447` is a car detector {cite}`olah2020zoom`."),
          ("markdown", "**Reproduced here.** The cell draws `3b:379`'s weights."), ("code", "draw()"),
          ("markdown", "The planted `curves:2` needs no mark.")]
    assert claim_problems(ok) == []
    unmarked = [("markdown", "## A\n\nThe car detector `4c:447` reads windows above.")]
    uncited = [("markdown", "## A\n\n**Reported by \"Zoom In\".** `4c:447` reads windows above.")]
    uncomputed = [("markdown", "## A\n\n**Reproduced here.** `3b:379` is a curve detector."), ("markdown", "## B")]
    item = [("markdown", "## A\n\n- **Reported by \"Zoom In\".** `4c:447` {cite}`olah2020zoom`\n- and `4d:417` too")]
    for bad in (unmarked, uncited, uncomputed, item):
        assert len(claim_problems(bad)) == 1, bad


@pytest.mark.parametrize("page", CHAPTER_PAGES, ids=lambda p: p.parent.name)
def test_every_real_unit_claim_on_a_chapter_page_is_marked(page):
    problems = claim_problems(_cells(page))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", CHAPTER_PAGES, ids=lambda p: p.parent.name)
def test_every_chapter_page_uses_both_marks(page):
    text = _markdown(page)
    assert REPORTED.search(text) and REPRODUCED.search(text), f"{page}: use both marks"
