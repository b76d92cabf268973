"""Interactive figures: plotly on the course site, a plain image everywhere else.

:class:`Interactive` is the mechanism (a static PNG with a script that draws a plotly figure over
it when the page is on the course site); ``interactive_radial_tuning`` (a family of tuning
curves), ``interactive_phase_diagram`` (the toy model's phase diagram) and ``unit_browser``
(the articles' renders beside this page's, by unit) use it.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..core import published, registry
from ..core.models import LAYER_CHANNELS
from ..core.models.inceptionv1 import MAIN_LAYERS
from ..core.provenance import weights_caption, weights_state
from ..core.units import parse_unit
from ..methods.superposition import PHASES
from .plotting import plot_phase_diagram, radial_tuning_plot
from .style import COLUMN_IN, PHASE_COLOURS, SMALL_PT, figure_png, finish, no_ticks, to_numpy_image


def _widget_html(css_class: str, prefix: str, spec: dict, image: bytes, alt: str, hint: str, js: str) -> str:
    """The HTML of an interactive figure: the static ``image`` (PNG bytes) with ``hint`` under it,
    in a box the script ``js`` finds by its id (a hash of ``spec`` and the image) and draws
    ``spec`` (JSON) into; ``js`` holds the placeholders ``__ID__`` and ``__SPEC__``."""
    payload = json.dumps(spec, separators=(",", ":"), sort_keys=True)
    uid = f"{prefix}-" + hashlib.sha256(payload.encode() + image).hexdigest()[:12]
    data = base64.b64encode(image).decode("ascii")
    script = js.replace("__ID__", uid).replace("__SPEC__", payload.replace("</", "<\\/"))
    return (f'<div class="{css_class}" id="{uid}">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">{hint}</div>'
            f"<script>{script}</script>")  # fmt: skip


class Interactive:
    """A figure that is interactive on the course site and a plain image everywhere else.

    Its HTML is the static ``image`` (PNG bytes, a matplotlib figure of the same data) and a
    script: on a page of the course site (whose ``<html>`` names its root, ``data-content_root``)
    it loads the site's own copy of plotly.js (``_static/plotly.min.js``, copied there by
    :mod:`circuitscope_course.pages`; never a CDN, so the site works offline) and draws ``spec``
    (a plotly figure as JSON) over the image. Without JavaScript, or in Jupyter and Colab, the
    image is what shows. ``hover_isolate``: hovering a curve fades the others.
    """

    def __init__(self, spec: dict, image: bytes, alt: str, hint: str = "", hover_isolate: bool = True):
        self.spec, self.image, self.alt, self.hint, self.hover_isolate = spec, image, alt, hint, hover_isolate

    def _repr_html_(self) -> str:
        hint = f'<p class="circuitscope-hint">{html.escape(self.hint)}</p>' if self.hint else ""
        return _widget_html("circuitscope-interactive", "cs-plot", self.spec, self.image, self.alt, hint,
                            _INTERACTIVE_JS.replace("__ISOLATE__", "true" if self.hover_isolate else "false"))


_INTERACTIVE_JS = """(function () {
  var root = document.documentElement.getAttribute("data-content_root");
  var box = document.getElementById("__ID__");
  if (root === null || !box) return;
  var spec = __SPEC__;
  function draw() {
    var plot = document.createElement("div");
    plot.style.width = "100%";
    box.insertBefore(plot, box.firstChild);
    window.Plotly.newPlot(plot, spec.data, spec.layout, spec.config).then(function () {
      var img = box.querySelector("img");
      if (img) img.style.display = "none";
      if (!__ISOLATE__) return;
      var n = spec.data.length;
      function fade(keep) {
        var op = [];
        for (var i = 0; i < n; i++) op.push(keep === null || i === keep ? 1 : 0.12);
        window.Plotly.restyle(plot, {opacity: op});
      }
      plot.on("plotly_hover", function (e) { fade(e.points[0].curveNumber); });
      plot.on("plotly_unhover", function () { fade(null); });
    });
  }
  if (!window.__circuitscopePlotly) {
    window.__circuitscopePlotly = new Promise(function (ok, fail) {
      if (window.Plotly) return ok();
      var s = document.createElement("script");
      s.src = root + "_static/plotly.min.js";
      s.onload = ok;
      s.onerror = fail;
      document.head.appendChild(s);
    });
  }
  window.__circuitscopePlotly.then(draw, function () {});
})();"""


def interactive_radial_tuning(
    tunings: dict,
    angles=None,
    *,
    layer: str | None = None,
    rotate: float = 0.0,
    title: str | None = None,
    note: str | None = None,
    model=None,
    caption: str | None = None,
):
    """:func:`radial_tuning_plot`, interactive on the course site (:class:`Interactive`): hover a
    curve to see only that unit with its response at each orientation; click a unit in the legend
    to hide it, double-click to show it alone. Same arguments as :func:`radial_tuning_plot`; the
    static figure it draws is the image shown without JavaScript (and in Jupyter or Colab).

    Needs ``plotly`` (the ``book`` extra; Colab has it); without it, returns the static figure.
    """
    static = radial_tuning_plot(tunings, angles, layer=layer, rotate=rotate, title=title, note=note,
                                model=model, caption=caption)  # fmt: skip
    try:
        import plotly.graph_objects as go
    except ImportError:
        return static
    colours = plt.get_cmap("hsv")
    n = max(len(tunings), 1)
    traces = []
    for i, (unit, values) in enumerate(tunings.items()):
        r = values.detach().double().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
        a = (np.arange(len(r)) * 360.0 / len(r) if angles is None
             else (angles.detach().double().cpu().numpy() if isinstance(angles, torch.Tensor)
                   else np.asarray(angles, float)))  # fmt: skip
        label = f"{layer}:{unit}" if layer is not None and not isinstance(unit, str) else str(unit)
        rgb = "rgb({:.0f},{:.0f},{:.0f})".format(*(255 * np.asarray(colours(i / n)[:3])))
        traces.append(go.Scatterpolar(
            r=np.round(np.clip(np.append(r, r[:1]), 0, None), 4), theta=np.round((np.append(a, a[:1]) + rotate) % 360, 2),
            mode="lines", name=label, line={"color": rgb, "width": 1.6},
            hovertemplate=f"{label}<br>response %{{r:.3g}}<extra></extra>",
        ))  # fmt: skip
    fig = go.Figure(traces)
    fig.update_layout(
        height=480, margin={"l": 30, "r": 30, "t": 50 if title else 20, "b": 30}, font={"size": 13},
        title={"text": title, "x": 0.5} if title else None, legend={"font": {"size": 12}},
        polar={"bgcolor": "white",
               "radialaxis": {"showticklabels": False, "ticks": "", "gridcolor": "#dddddd"},
               "angularaxis": {"rotation": 0, "direction": "counterclockwise", "gridcolor": "#dddddd",
                               "linecolor": "#444444", "showticklabels": not rotate % 360}},
        hovermode="closest", paper_bgcolor="white",
    )  # fmt: skip
    spec = json.loads(fig.to_json())
    spec["config"] = {"displaylogo": False, "responsive": True,
                      "modeBarButtonsToRemove": ["toImage", "select2d", "lasso2d"]}  # fmt: skip
    hint = "Hover a curve to see that unit alone; click a unit in the legend to hide it, double-click to isolate it."
    if note:
        hint = f"{hint} {note}"
    if caption is None and model is not None:

        hint = f"{hint} {weights_caption(model)}"
    alt = f"Radial tuning curves of {len(tunings)} units" + (f": {title}" if title else "")
    return Interactive(spec, figure_png(static), alt, hint)


# -- the toy model's phase diagram, interactive ------------------------------------------------------
def interactive_phase_diagram(diagram):
    """:func:`circuitscope.figures.plotting.plot_phase_diagram`, interactive on the course site
    (:class:`Interactive`): hover a cell to read its sparsity ``S`` (and density ``1 - S``), the
    extra feature's relative importance, its phase, the two features' norms and the loss of the
    model kept there ("Toy Models of Superposition", "Superposition as a Phase Change").

    ``diagram``: a :class:`~circuitscope.methods.superposition.PhaseDiagram`. The static figure is the
    image shown without JavaScript (and in Jupyter or Colab); without ``plotly``, it is returned.
    """

    static = plot_phase_diagram(diagram)
    try:
        import plotly.graph_objects as go
    except ImportError:
        return static
    phases = np.asarray(diagram.phases, dtype=int)
    sparsity = np.asarray(diagram.sparsities, dtype=float)
    importance = np.asarray(diagram.importances, dtype=float)
    norms, losses = np.asarray(diagram.norms, dtype=float), np.asarray(diagram.losses, dtype=float)

    def edges(v):  # cell edges halfway between the points, in log space (as the static figure)
        lv = np.log10(v)
        if len(lv) == 1:
            return 10 ** np.array([lv[0] - 0.5, lv[0] + 0.5])
        mid = (lv[1:] + lv[:-1]) / 2
        return 10 ** np.concatenate([[2 * lv[0] - mid[0]], mid, [2 * lv[-1] - mid[-1]]])

    density = np.clip(1 - sparsity, 1e-12, None)
    text = [[(f"sparsity S = {s:.3g} (density {1 - s:.3g})<br>relative importance {imp:.3g}<br>"
              f"phase: <b>{PHASES[phases[i, j]]}</b><br>|W\u2080| = {norms[i, j, 0]:.2f}, "
              f"|W\u2081| = {norms[i, j, 1]:.2f}, loss {losses[i, j]:.3g}")
             for j, imp in enumerate(importance)] for i, s in enumerate(sparsity)]  # fmt: skip
    n = len(PHASES)
    scale = [[k / n + d, c] for k, c in enumerate(PHASE_COLOURS) for d in (0.0, 1.0 / n)]
    traces = [go.Heatmap(
        z=phases.tolist(), x=np.round(edges(importance), 6).tolist(), y=np.round(edges(density), 6).tolist(),
        text=text, hovertemplate="%{text}<extra></extra>", colorscale=scale, zmin=-0.5, zmax=n - 0.5,
        showscale=False, xgap=1, ygap=1, name="phase",
    )]  # fmt: skip
    for colour, phase in zip(PHASE_COLOURS, PHASES):  # the legend: one swatch per phase
        traces.append(go.Scatter(x=[None], y=[None], mode="markers", name=phase, hoverinfo="skip",
                                 marker={"symbol": "square", "size": 12, "color": colour}))  # fmt: skip
    fig = go.Figure(traces)
    fig.update_layout(
        height=430, margin={"l": 60, "r": 10, "t": 40, "b": 10}, font={"size": 13}, paper_bgcolor="white",
        plot_bgcolor="white", title={"text": "Feature 1 in a 2-feature, 1-dimension toy model", "x": 0.5,
                                     "font": {"size": 14}},
        xaxis={"type": "log", "dtick": 1, "title": {"text": "relative importance of feature 1"}},
        yaxis={"type": "log", "dtick": 1, "title": {"text": "feature density 1 \u2212 S"}},
        legend={"orientation": "h", "x": 0.5, "xanchor": "center", "y": -0.2, "yanchor": "top"},
        hovermode="closest",
    )  # fmt: skip
    spec = json.loads(fig.to_json())
    spec["config"] = {"displaylogo": False, "responsive": True, "displayModeBar": False}  # a 2-D grid: hover only
    hint = ("Hover a cell to read its sparsity, the extra feature's relative importance, its phase, the "
            "norms of both features' columns of W and the loss of the model kept there.")  # fmt: skip
    alt = (f"Phase diagram of the extra feature over {len(sparsity)} sparsities and {len(importance)} "
           "relative importances: not represented, dedicated dimension or superposition")  # fmt: skip
    return Interactive(spec, figure_png(static), alt, hint, hover_isolate=False)


# -- a unit browser: the articles' renders beside this page's ----------------------------------------
def _data_uri(image, fmt: str = "PNG", quality: int = 80) -> str:
    import base64
    from io import BytesIO

    from PIL import Image

    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    out = BytesIO()
    image.convert("RGB").save(out, format=fmt, **({"quality": quality, "optimize": True} if fmt == "JPEG" else {}))
    mime = "jpeg" if fmt == "JPEG" else "png"
    return f"data:image/{mime};base64,{base64.b64encode(out.getvalue()).decode('ascii')}"


def _browser_grid(images, units: Sequence[str], model, published_cells: dict, columns: int = 5):
    """The unit browser's static figure: bands of ``columns`` units, this page's renders (titled)
    above the article's (``published_cells``: ``{unit: (h, w, 3) uint8}``; a missing one says so)."""

    n = len(units)
    columns = max(1, min(columns, n))
    bands = math.ceil(n / columns)
    label_w = 0.9
    cell = min(1.25, (COLUMN_IN - label_w) / columns)
    fig, axes = plt.subplots(2 * bands, columns, squeeze=False,
                             figsize=(COLUMN_IN, bands * (2 * cell + 0.3) + 0.35))  # fmt: skip
    for k in range(bands * columns):
        top, bottom = axes[2 * (k // columns), k % columns], axes[2 * (k // columns) + 1, k % columns]
        for ax in (top, bottom):
            no_ticks(ax)
        if k >= n:
            top.axis("off"), bottom.axis("off")
            continue
        top.imshow(to_numpy_image(torch.as_tensor(images[k])))
        top.set_title(units[k], fontsize=SMALL_PT + 0.5, pad=2)
        if units[k] in published_cells:
            bottom.imshow(published_cells[units[k]])
        else:
            bottom.text(0.5, 0.5, "not\navailable\nhere", ha="center", va="center", fontsize=SMALL_PT)
    for b in range(bands):
        axes[2 * b, 0].set_ylabel(f"this page\n({weights_state(model)})", fontsize=SMALL_PT + 0.5)
        axes[2 * b + 1, 0].set_ylabel("published\n(real)", fontsize=SMALL_PT + 0.5)
    fig.tight_layout(rect=(0, 0.3 / fig.get_figheight(), 1, 1), pad=0.3, h_pad=0.2, w_pad=0.3)
    return finish(fig, model)


class UnitBrowser:
    """Browse units of several layers: the articles' published render of a unit beside this page's.

    On the course site (as :class:`Interactive`, only where ``<html>`` names the site's root) a
    script draws a layer menu, a channel slider and two panels: the published render, cut from the
    layer's sprite sheet held in the page (a ``data:`` URI, no request), and this page's render
    when the page rendered that unit (``own``), labelled with its weights state. Without
    JavaScript, and in Jupyter or Colab, the static ``image`` (a grid of the units rendered here
    above their published renders) shows instead.

    Attributes:
        layers: ``{layer: {"channels", "columns", "rows", "cell", "sprite"}}``: the published
            renders of every channel of each layer, ``cell`` pixels each.
        own: ``{unit: PNG data URI}``: this page's renders.
        state, caption, credit: the weights state and caption of ``own``; the published credit.
    """

    def __init__(self, layers: dict, own: dict, state: str, caption: str, credit: str, image: bytes, alt: str,
                 note: str = ""):  # fmt: skip
        self.layers, self.own, self.state, self.caption, self.credit = layers, own, state, caption, credit
        self.image, self.alt, self.note = image, alt, note

    def spec(self) -> dict:
        """What the page's script reads: the layers, their channel counts and sprites, the own renders."""
        names = [n for n in MAIN_LAYERS if n in self.layers or any("mixed" + u.split(":")[0] == n for u in self.own)]
        return {"layers": self.layers, "own": self.own, "units": list(self.own), "state": self.state,
                "caption": self.caption, "order": names,
                "channels": {n: LAYER_CHANNELS[n] for n in names}}  # fmt: skip

    def _repr_html_(self) -> str:
        credit = f' <span class="circuitscope-credit">{html.escape(self.credit)}</span>' if self.credit else ""
        note = f" {html.escape(self.note)}" if self.note else ""
        hint = (f'<p class="circuitscope-hint">Pick a layer and a channel: the article\'s render of the unit '
                f"(real InceptionV1) beside this page's, where this page rendered it ({html.escape(self.caption)})."
                f"{note}{credit}</p>")  # fmt: skip
        return _widget_html("circuitscope-browser", "cs-browser", self.spec(), self.image, self.alt, hint, _BROWSER_JS)


_BROWSER_JS = """(function () {
  var root = document.documentElement.getAttribute("data-content_root");
  var box = document.getElementById("__ID__");
  if (root === null || !box) return;
  var spec = __SPEC__;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }
  function short(layer) { return layer.replace(/^mixed/, ""); }
  var ui = el("div", "cs-browser-ui");
  var controls = el("div", "cs-browser-controls");
  var layerLabel = el("label", null, "Layer ");
  var layer = el("select");
  spec.order.forEach(function (name) {
    var o = el("option", null, name);
    o.value = name;
    layer.appendChild(o);
  });
  layerLabel.appendChild(layer);
  var channelLabel = el("label", "cs-browser-channel", "Channel ");
  var slider = el("input");
  slider.type = "range";
  slider.min = 0;
  var number = el("input");
  number.type = "number";
  number.min = 0;
  channelLabel.appendChild(slider);
  channelLabel.appendChild(number);
  controls.appendChild(layerLabel);
  controls.appendChild(channelLabel);
  ui.appendChild(controls);
  var ownUnits = spec.units;  // in the page's order (spec.own's keys are sorted)
  if (ownUnits.length) {
    var jump = el("div", "cs-browser-jump", "Rendered on this page: ");
    ownUnits.forEach(function (unit) {
      var b = el("button", null, unit);
      b.type = "button";
      b.addEventListener("click", function () { show(unit); });
      jump.appendChild(b);
    });
    ui.appendChild(jump);
  }
  var panels = el("div", "cs-browser-panels");
  function panel(title, cls) {
    var f = el("figure", "cs-browser-panel " + (cls || ""));
    var view = el("div", "cs-browser-view");
    var cap = el("figcaption", null, title);
    f.appendChild(view);
    f.appendChild(cap);
    panels.appendChild(f);
    return {view: view, cap: cap};
  }
  var pub = panel("Published render (real InceptionV1)", "cs-browser-published");
  var own = panel("This page (" + spec.state + " weights)", "cs-browser-own cs-state-" + spec.state);
  ui.appendChild(panels);
  function show(unit) {
    var parts = unit.split(":"), name = "mixed" + parts[0];
    layer.value = name;
    update(name, parseInt(parts[1], 10));
  }
  function update(name, channel) {
    var n = spec.channels[name];
    channel = Math.max(0, Math.min(n - 1, channel || 0));
    slider.max = n - 1;
    number.max = n - 1;
    slider.value = channel;
    number.value = channel;
    var unit = short(name) + ":" + channel, sheet = spec.layers[name];
    pub.view.textContent = "";
    pub.view.style.backgroundImage = "";
    pub.view.setAttribute("role", "img");
    if (sheet) {
      var col = channel % sheet.columns, row = Math.floor(channel / sheet.columns);
      pub.view.style.backgroundImage = "url(" + sheet.sprite + ")";
      pub.view.style.backgroundSize = (sheet.columns * 100) + "% " + (sheet.rows * 100) + "%";
      pub.view.style.backgroundPosition = (sheet.columns > 1 ? col / (sheet.columns - 1) * 100 : 0) + "% " +
        (sheet.rows > 1 ? row / (sheet.rows - 1) * 100 : 0) + "%";
      pub.view.setAttribute("aria-label", "Published render of " + unit);
    } else {
      pub.view.appendChild(el("span", null, "No published render of " + name + " here."));
      pub.view.setAttribute("aria-label", "No published render of " + unit);
    }
    pub.cap.textContent = unit + ": published render (real InceptionV1)";
    own.view.textContent = "";
    if (spec.own[unit]) {
      var img = el("img");
      img.src = spec.own[unit];
      img.alt = "This page's render of " + unit + " (" + spec.state + " weights)";
      own.view.appendChild(img);
    } else {
      var here = ownUnits.filter(function (u) { return u.split(":")[0] === short(name); });
      own.view.appendChild(el("span", null, "Not rendered on this page" +
        (here.length ? " (in " + name + ": " + here.join(", ") + ")." : ".")));
    }
    own.cap.textContent = unit + ": this page, " + spec.caption;
  }
  layer.addEventListener("change", function () { update(layer.value, parseInt(number.value, 10)); });
  slider.addEventListener("input", function () { update(layer.value, parseInt(slider.value, 10)); });
  number.addEventListener("change", function () { update(layer.value, parseInt(number.value, 10)); });
  box.insertBefore(ui, box.firstChild);
  var fallback = box.querySelector(":scope > img");
  if (fallback) fallback.style.display = "none";
  if (ownUnits.length) show(ownUnits[0]); else update(spec.order[0], 0);
})();"""


def unit_browser(images, units: Sequence[str], model, layers: Sequence[str] | None = None, cell_px: int = 48,
                 columns: int = 5) -> UnitBrowser:  # fmt: skip
    """A browser of the articles' published renders beside this page's renders (:class:`UnitBrowser`).

    Args:
        images: ``(N, 3, H, W)`` float in [0, 1], this page's renders of ``units``, made with
            ``model`` (labelled with its weights state).
        units: ``"4b:111"``-style names, one per image.
        layers: layers whose every channel's published render the page holds (default the five
            of :data:`circuitscope.core.published.SPRITE_COLUMNS`: "The Building Blocks of
            Interpretability" published a render of every channel of these); a sheet that cannot
            be had is left out, with a note.
        cell_px: pixels per published render in the page (the sheets' 110 scaled down: all
            five layers at 48 px add about 2 MB to the page).
        columns: units per band of the static grid.

    The published renders are fetched by :mod:`circuitscope.core.registry` (hash-checked) and credited.
    """
    from PIL import Image


    images = [torch.as_tensor(img) for img in images]
    if len(images) != len(units):
        raise ValueError(f"{len(images)} images for {len(units)} units")
    sheets, missing = {}, []
    for layer in layers if layers is not None else list(published.SPRITE_COLUMNS):
        try:
            path = registry.fetch(published.sprite_name(layer))
        except published.DataError:
            missing.append(layer)
            continue
        cols, cell = published.SPRITE_COLUMNS[layer], published.SPRITE_CELL
        with Image.open(path) as im:
            rows = round(im.height / cell)
            small = im.convert("RGB").resize((cols * cell_px, rows * cell_px), Image.LANCZOS)
        sheets[layer] = {"channels": LAYER_CHANNELS[layer], "columns": cols, "rows": rows, "cell": cell_px,
                         "sprite": _data_uri(small, "JPEG", 75)}  # fmt: skip
    cells = {}
    for unit in units:
        if parse_unit(unit)[0] in sheets:
            cells[unit] = published.published_render(unit)
    static = _browser_grid(images, list(units), model, cells, columns)
    own = {unit: _data_uri((to_numpy_image(img) * 255).round().astype(np.uint8)) for unit, img in zip(units, images)}
    credit = published.credit(published.sprite_name(next(iter(sheets))), adapted=True) if sheets else ""
    note = (f"The published renders of {', '.join(missing)} could not be had on this machine." if missing else "")
    alt = (f"This page's renders of {', '.join(units)} ({weights_state(model)} weights) above the "
           "published renders of the same units")  # fmt: skip
    return UnitBrowser(sheets, own, weights_state(model), weights_caption(model), credit, figure_png(static), alt, note)
