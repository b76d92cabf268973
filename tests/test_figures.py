"""Figures made for the page: one style, sized for the site's column, readable, nothing overlapping.

The site shows a figure's PNG at its own size, shrunk to the text column when wider
(``max-width: 100%``): the column is :data:`circuitscope.tools.book.COLUMN_PX` CSS pixels on a
1280-pixel screen. Here every figure function of :mod:`circuitscope.figures.plotting` is drawn as a notebook
draws it (:func:`circuitscope.tools.book.draw_png`) and measured: its width against the column, its
smallest text at the size shown (at least :data:`circuitscope.tools.book.MIN_FONT_PX`), and pairs of
texts whose boxes overlap. The same measurements run over every figure of the built site
(:func:`circuitscope.tools.book.check_figures`, tests/test_book.py), from the records the build's kernels
write when they draw.
"""

from __future__ import annotations

import base64
import json
import re
from io import BytesIO

import numpy as np
import pytest
import torch

from circuitscope.figures import interactive, plotting, style
from circuitscope.tools import book

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images():
    gen = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 64, 64, generator=gen)


def measure(fig) -> dict:
    _, record = book.draw_png(fig)
    shown, smallest = book.figure_sizes(record)
    return {"record": record, "width": record["width"], "shown": shown, "smallest": smallest,
            "overlaps": book.overlapping_texts(record)}  # fmt: skip


def assert_fits(fig, name: str) -> dict:
    m = measure(fig)
    assert m["width"] <= book.COLUMN_PX, f"{name}: {m['width']} px wide, wider than the {book.COLUMN_PX}-px column"
    assert m["smallest"] >= book.MIN_FONT_PX, f"{name}: text of {m['smallest']:.1f} px on the page"
    assert not m["overlaps"], f"{name}: labels overlap: {m['overlaps'][:3]}"
    return m


def test_the_style_is_drawn_for_the_column():
    import matplotlib.pyplot as plt

    assert style.COLUMN_PX == book.COLUMN_PX
    assert plt.rcParams["figure.dpi"] == style.DPI
    # The smallest type of the style, at the figure's DPI, is readable on the page.
    smallest = min(style.STYLE[k] for k in style.STYLE if k.endswith(("size", "titlesize")) and
                   isinstance(style.STYLE[k], (int, float)))  # fmt: skip
    assert smallest * style.DPI / 72 >= book.MIN_FONT_PX
    assert style.SMALL_PT * style.DPI / 72 >= book.MIN_FONT_PX
    # A tight PNG of a column-wide figure (0.1-inch margins) is no wider than the column.
    assert style.COLUMN_IN * style.DPI + 2 * 0.1 * style.DPI <= book.COLUMN_PX + 0.5


@pytest.mark.parametrize("name", ["architecture", "block", "top_k", "strongest", "maps", "patch", "receptive"])
def test_model_figures_fit_the_column(synthetic_model, images, name):
    model, image = synthetic_model, images[0]
    fig = {
        "architecture": lambda: plotting.architecture_diagram(model),
        "block": lambda: plotting.inception_block_diagram(model),
        "top_k": lambda: plotting.top_k_chart(model, images[:3], titles=["a cat", "a long title here", "c"],
                                              results=[[(208, "golden retriever", 0.61), (207, "Labrador retriever", 0.2),
                                                        (852, "tennis ball", 0.1), (1, "kit fox", 0.05),
                                                        (594, "red-backed sandpiper", 0.01)]] * 3),
        "strongest": lambda: plotting.strongest_channels_chart(model, image, "mixed4a", k=8),
        "maps": lambda: plotting.activation_maps(model, image, layers=("conv2d0", "mixed3b")),
        "patch": lambda: plotting.strongest_patch_figure(model, image, "mixed3a", 5),
        "receptive": lambda: plotting.receptive_field_figure(model, image),
    }[name]()
    assert_fits(fig, name)


def test_the_layer_diagram_runs_down_the_column(synthetic_model):
    """Chapter 1's diagram was a 1490-px strip squeezed into the column (labels of 6 px): now one
    row per layer, as wide as the column, every label at full size."""
    m = assert_fits(plotting.architecture_diagram(synthetic_model), "architecture")
    assert m["record"]["height"] > m["width"] * 0.8, "the diagram should run down the page"
    assert m["smallest"] >= 10.0


def test_image_titles_are_short_and_do_not_overlap(images):
    """Chapter 3's exercise titles overlapped ("5x5_bottleneck:k -> 3b:379") and stimulus titles
    carried tensor shapes ("yours 0° (3,48,48)")."""
    fig = plotting.show_images(images[:3], ["yours 0°", "reference 0°", "yours 45°"])
    m = assert_fits(fig, "show_images")
    assert not any(re.search(r"\(\d+, ?\d+, ?\d+\)", t["text"]) for t in m["record"]["texts"]), m["record"]["texts"]
    titles = [f"5x5_bottleneck:{k} \u2192 3b:379" for k in range(8)]
    grid = plotting.image_grid(torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1)), titles,
                               title="weights into 3b:379 through the bottleneck")  # fmt: skip
    assert_fits(grid, "image_grid")
    wide = plotting.show_images(torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(2)),
                                [f"{a}\u00b0" for a in range(0, 360, 36)], size=2.6)  # fmt: skip
    assert_fits(wide, "show_images (10)")


def test_radial_tuning_figures_fit_the_column():
    rng = np.random.default_rng(0)
    tunings = {f"3b:{u}": np.abs(rng.normal(size=72)) for u in (379, 406, 385, 343, 342, 388, 324, 340, 330, 349)}
    one = plotting.radial_tuning_plot(tunings, title="published", note="Data adapted from Cammarata et al. (CC BY 4.0)")
    assert_fits(one, "radial_tuning_plot")
    panels = plotting.radial_tuning_panels([
        dict(tunings=tunings, rotate=90, title="published (real InceptionV1)",
             note="Data adapted from Cammarata et al., \u201cCurve Detectors\u201d, Distill, 2020 (CC BY 4.0)."),
        dict(tunings=tunings, title="measured on this page"),
    ], caption="a caption under both panels")  # fmt: skip
    assert_fits(panels, "radial_tuning_panels")


def test_numbers_are_a_heatmap_not_a_tensor():
    values = torch.zeros(8, 16)
    values[torch.arange(8), torch.arange(8) * 2] = 0.89
    fig = plotting.matrix_heatmap(values, [f"factor {i}" for i in range(8)], [str(c) for c in range(16)],
                                  xlabel="line unit", title="NMF channel factors")  # fmt: skip
    m = assert_fits(fig, "matrix_heatmap")
    shown = [t["text"] for t in m["record"]["texts"]]
    assert shown.count("0.89") == 8 and "0.00" not in shown, "values labelled, zeros left blank"


def test_compare_with_published_fits_the_column(synthetic_model):
    fig = plotting.compare_with_published(torch.rand(6, 3, 32, 32), [f"4b:{u}" for u in range(6)], synthetic_model)
    assert_fits(fig, "compare_with_published")


# -- the measurements themselves ---------------------------------------------------------------
def _record(width: int, texts: list[tuple[str, float, list[float]]], dpi: float = 100.0) -> dict:
    return {"sha256": "x", "width": width, "height": 100, "dpi": dpi,
            "texts": [{"text": t, "pt": pt, "box": box} for t, pt, box in texts]}  # fmt: skip


def test_text_is_measured_at_the_size_shown():
    # 8 pt at 100 dpi is 11.1 px; in a PNG twice the column's width it shows at half that.
    narrow = _record(600, [("a", 8.0, [0, 0, 10, 10])])
    wide = _record(2 * book.COLUMN_PX, [("a", 8.0, [0, 0, 10, 10])])
    assert book.figure_sizes(narrow) == (600, pytest.approx(8 * 100 / 72))
    assert book.figure_sizes(wide) == (book.COLUMN_PX, pytest.approx(8 * 100 / 72 / 2))


def test_overlapping_labels_are_found():
    record = _record(600, [("5x5_bottleneck:0 -> 3b:379", 8, [0, 0, 120, 10]),
                           ("5x5_bottleneck:1 -> 3b:379", 8, [100, 0, 220, 10]),
                           ("apart", 8, [300, 0, 340, 10])])  # fmt: skip
    pairs = book.overlapping_texts(record)
    assert pairs == [("5x5_bottleneck:0 -> 3b:379", "5x5_bottleneck:1 -> 3b:379")]


def test_check_figures_reads_the_site_and_the_kernels_records(tmp_path):
    import matplotlib.pyplot as plt

    build = tmp_path / "_build"
    (build / "html" / "_images").mkdir(parents=True)
    (build / "html" / "book").mkdir()
    good, bad = plt.figure(figsize=(3, 2)), plt.figure(figsize=(16, 2))
    for fig, text in ((good, "readable"), (bad, "tiny once shrunk")):
        fig.add_axes((0.05, 0.05, 0.9, 0.6)).plot([0, 1], [0, 1])
        fig.text(0.1, 0.8, text, fontsize=8)
    pages = []
    with open(build / book.FIGURE_AUDIT, "w") as audit:
        for name, fig in (("good", good), ("bad", bad)):
            png, record = book.draw_png(fig)
            (build / "html" / "_images" / f"{name}.png").write_bytes(png)
            audit.write(json.dumps(record) + "\n")
            pages.append(f'<img alt="" src="../_images/{name}.png">')
    data = base64.b64encode(book.draw_png(bad)[0]).decode()  # an image inlined in an HTML output
    pages.append(f'<img src="data:image/png;base64,{data}">')
    (build / "html" / "book" / "page.html").write_text("\n".join(pages))
    problems = book.check_figures(build)
    assert len(problems) == 2 and all(p.page == "book/page" for p in problems), problems
    assert "bad.png" in problems[0].message and "inline image" in problems[1].message


def test_the_build_records_the_figures_its_kernels_draw(tmp_path, monkeypatch):
    """The start-up file the build gives its kernels installs the recorder."""
    import runpy

    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    audit = tmp_path / "audit.jsonl"
    startup = book.kernel_profile(tmp_path) / "profile_default" / "startup" / "00-circuitscope-figures.py"
    monkeypatch.setenv(book.AUDIT_ENV, str(audit))
    monkeypatch.setattr(FigureCanvasBase, "print_figure", FigureCanvasBase.print_figure)  # undone after
    runpy.run_path(str(startup))
    from io import BytesIO

    from IPython.core.pylabtools import print_figure

    fig = plt.figure(figsize=(2, 1))
    fig.add_axes((0, 0, 1, 1)).axis("off")  # IPython draws no figure without axes
    fig.text(0.5, 0.5, "hello", fontsize=9)
    png = print_figure(fig, "png")
    plt.close(fig)
    records = book.read_figure_audit(audit)
    import hashlib

    record = records[hashlib.sha256(png).hexdigest()]
    assert [t["text"] for t in record["texts"]] == ["hello"] and record["width"] > 0
    assert BytesIO  # imported for the recorder's file-like check


# -- the interactive figure ----------------------------------------------------------------------
def test_interactive_figure_uses_the_sites_plotly_and_keeps_a_static_image():
    pytest.importorskip("plotly")
    rng = np.random.default_rng(1)
    tunings = {f"3b:{u}": np.abs(rng.normal(size=72)) for u in (379, 406, 385)}
    shown = interactive.interactive_radial_tuning(tunings, title="curves", note="Data: someone (CC BY 4.0).")
    assert isinstance(shown, interactive.Interactive)
    html = shown._repr_html_()
    assert "data-content_root" in html and '"_static/plotly.min.js"' in html, "plotly.js from the site itself"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no asset from the network"
    assert "cdn" not in re.sub(r"base64,[^\"]+", "", html).lower()
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="[^"]+"', html), "a static image without JS"
    spec = json.loads(re.search(r"var spec = (\{.*?\});\n", html, re.DOTALL).group(1))
    assert [t["name"] for t in spec["data"]] == list(tunings)
    assert "plotly_hover" in html, "hovering a unit isolates it"
    # The static image is the matplotlib figure of the same data, drawn for the column.
    png = base64.b64decode(re.search(r"base64,([^\"]+)", html).group(1))
    assert png.startswith(b"\x89PNG") and int.from_bytes(png[16:20], "big") <= book.COLUMN_PX
    assert "Data: someone" in html


def test_landing_figure_is_computed_and_credited(monkeypatch, tmp_path):
    """The landing page's figure: the articles' renders when they can be had (credited), else a
    figure the library computes; never a remote image."""
    from circuitscope.core import published
    from circuitscope_course import pages

    def unavailable(unit):
        raise published.DataError("offline")

    monkeypatch.setattr(published, "published_render", unavailable)
    fig, alt, credit = plotting.landing_figure()
    assert credit == "" and "curve" in alt.lower()
    assert_fits(fig, "landing fallback")
    html = pages.landing_figure_html(alt, credit)
    assert 'src="../_static/' + pages.LANDING_PNG + '"' in html and "could not be had" in html
    credited = pages.landing_figure_html("renders", "Figure adapted from Olah et al. (CC BY 4.0).")
    assert "CC BY 4.0" in credited and "://" not in credited.split("<figcaption>")[0]


# -- the phase diagram and the unit browser, interactive -------------------------------------------
def _no_network(html: str) -> None:
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no asset from the network"
    assert not re.search(r"""url\(["']?(https?:)?//""", html), "no CSS image from the network"
    assert "cdn" not in re.sub(r"base64,[^\"]+", "", html).lower()
    assert "data-content_root" in html, "drawn only on the course site"


def _static_png(html: str) -> bytes:
    found = re.search(r'<img src="data:image/png;base64,([^"]+)" alt="[^"]+"', html)
    assert found, "a static image for readers without JavaScript"
    png = base64.b64decode(found.group(1))
    assert png.startswith(b"\x89PNG") and int.from_bytes(png[16:20], "big") <= book.COLUMN_PX
    return png


def test_interactive_phase_diagram_holds_each_cells_values_and_keeps_the_static_figure():
    pytest.importorskip("plotly")
    from circuitscope.methods import superposition as sp

    phases = np.array([[0, 1, 1], [0, 2, 1]])
    diagram = sp.PhaseDiagram(phases, np.array([0.0, 0.9]), np.array([0.1, 1.0, 10.0]),
                              np.full((2, 3, 2), 0.5), np.full((2, 3), 0.01))  # fmt: skip
    shown = interactive.interactive_phase_diagram(diagram)
    assert isinstance(shown, interactive.Interactive)
    html = shown._repr_html_()
    _no_network(html)
    assert '"_static/plotly.min.js"' in html
    _static_png(html)
    cells = shown.spec["data"][0]
    assert cells["type"] == "heatmap" and cells["z"] == phases.tolist()
    assert len(cells["x"]) == 4 and len(cells["y"]) == 3, "cell edges around 3 importances and 2 densities"
    assert "sparsity S = 0.9 (density 0.1)" in cells["text"][1][0] and "relative importance 0.1" in cells["text"][1][0]
    assert "superposition" in cells["text"][1][1] and "not represented" in cells["text"][0][0]
    assert [t["name"] for t in shown.spec["data"][1:]] == list(sp.PHASES), "a legend swatch per phase"
    assert shown.spec["layout"]["xaxis"]["type"] == "log" == shown.spec["layout"]["yaxis"]["type"]
    assert shown.hover_isolate is False


@pytest.fixture
def fake_sheets(tmp_path, monkeypatch):
    """Sprite sheets of the published renders, made here: channel c's cell is one grey level."""
    from PIL import Image

    from circuitscope.core import published, registry

    def fetch(name, *args, **kwargs):
        if "mixed4a" in name:
            raise published.DataError(f"{name}: offline (test)")
        cols, cell = published.SPRITE_COLUMNS["mixed3b"], published.SPRITE_CELL
        sheet = np.zeros((23 * cell, cols * cell, 3), np.uint8)
        for c in range(480):
            sheet[cell * (c // cols):cell * (c // cols + 1), cell * (c % cols):cell * (c % cols + 1)] = c % 250
        path = tmp_path / "sheet.jpeg"
        Image.fromarray(sheet).save(path)
        return path

    monkeypatch.setattr(registry, "fetch", fetch)
    published._sprite.cache_clear()
    yield
    published._sprite.cache_clear()


def test_unit_browser_holds_the_published_sheets_and_the_pages_renders(fake_sheets, synthetic_model, images):
    from PIL import Image

    units = ["3b:379", "3b:342", "4a:476"]
    shown = interactive.unit_browser(images[:3], units, synthetic_model, layers=["mixed3b", "mixed4a"], cell_px=16)
    html = shown._repr_html_()
    _no_network(html)
    _static_png(html)
    spec = shown.spec()
    assert list(spec["layers"]) == ["mixed3b"] and "mixed4a" in shown.note, "a sheet that cannot be had is named"
    sheet = spec["layers"]["mixed3b"]
    assert (sheet["channels"], sheet["columns"], sheet["rows"], sheet["cell"]) == (480, 21, 23, 16)
    assert sheet["sprite"].startswith("data:image/jpeg;base64,")
    with Image.open(BytesIO(base64.b64decode(sheet["sprite"].split(",", 1)[1]))) as im:
        assert im.size == (21 * 16, 23 * 16)
    assert spec["units"] == units == sorted(spec["own"], key=units.index) and spec["order"] == ["mixed3b", "mixed4a"]
    assert spec["state"] == "synthetic" and "SYNTHETIC" in spec["caption"], "the page's renders say their weights"
    for unit, uri in spec["own"].items():
        with Image.open(BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as im:
            assert im.size == (64, 64), unit
    assert spec["channels"] == {"mixed3b": 480, "mixed4a": 508}
    assert "CC BY 4.0" in html and "Building Blocks" in html, "the published renders are credited"
    payload = json.loads(re.search(r"var spec = (\{.*?\});\n", html, re.DOTALL).group(1))
    assert payload == spec, "the page's script reads the same data"


def test_unit_browser_static_grid_fits_the_column(fake_sheets, synthetic_model, images):
    from circuitscope.core import published

    cells = {u: published.published_render(u) for u in ("3b:379", "3b:342")}
    units = ["3b:379", "3b:342", "4a:476", "3b:1", "3b:2", "3b:3", "3b:4", "3b:5"]
    batch = torch.cat([images, images])
    assert_fits(interactive._browser_grid(batch, units, synthetic_model, cells, columns=4), "unit browser grid")
