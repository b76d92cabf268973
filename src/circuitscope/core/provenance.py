"""Saying where a result came from: which of three weight states made every figure and page.

* ``"real"``: the published InceptionV1 file (``inception5h``), its hash verified;
* ``"unverified"``: a file with InceptionV1's tensor names and shapes that loaded, but whose
  hash is not the published file's (a fine-tuned or converted copy, or a test file): its
  results may differ from the articles';
* ``"synthetic"``: the deterministic stand-in, or any model with no loaded weights (a bare
  ``InceptionV1()`` is randomly initialised and counts as synthetic).

Values the real network computed elsewhere and the articles published (Lucid's activations,
see :mod:`circuitscope.core.published`) have the state ``"published"``; a small model built by hand
with a known answer (:mod:`circuitscope.methods.planted`) has the state ``"planted"``: it is a teaching
tool, not InceptionV1 under any weights.

Every figure says which (:func:`stamp`), every page shows a box under the cell that loads the
model (:func:`notice`), and text that depends on the state is chosen by :func:`by_state`.
"""

from __future__ import annotations

import html

SYNTHETIC_LABEL = "synthetic weights"
STATES = ("real", "unverified", "synthetic", "published", "planted")

#: Caption, colour and notice class of each state.
CAPTIONS = {
    "real": "InceptionV1 (inception5h) weights, hash verified",
    "unverified": "UNVERIFIED WEIGHTS: loaded, but not the published inception5h file",
    "synthetic": "SYNTHETIC WEIGHTS: a stand-in, not InceptionV1's learned features",
    "published": "Real InceptionV1: values computed by Lucid, published with the article",
    "planted": "PLANTED MODEL: built by hand with a known answer, not InceptionV1",
}
COLOURS = {"real": "#555555", "unverified": "#b35c00", "synthetic": "#b00020", "published": "#555555",
           "planted": "#1f5f8b"}
NOTICE_CLASS = {
    "real": "circuitscope-real",
    "unverified": "circuitscope-unverified",
    "synthetic": "circuitscope-synthetic",
    "published": "circuitscope-real",
    "planted": "circuitscope-planted",
}


def weights_state(model) -> str:
    """``"real"``, ``"unverified"``, ``"synthetic"`` or ``"published"`` (see the module docstring).

    Reads ``model.weights_state``; an object without it is ``"synthetic"`` unless it says
    ``is_synthetic = False`` (then ``"unverified"``: nothing vouches for it).
    """
    state = getattr(model, "weights_state", None)
    if state in STATES:
        return state
    if state is not None:
        raise ValueError(f"unknown weights state {state!r}; expected one of {STATES}")
    return "synthetic" if getattr(model, "is_synthetic", True) else "unverified"


def is_synthetic(model) -> bool:
    """True when ``model`` runs on the synthetic stand-in or on no loaded weights at all."""
    return weights_state(model) == "synthetic"


def is_real(model) -> bool:
    """True only for the verified real weights (or values they published)."""
    return weights_state(model) in ("real", "published")


def weights_caption(model) -> str:
    """A one-line caption for figures: which weights made this."""
    return CAPTIONS[weights_state(model)]


def stamp(fig, model) -> None:
    """Write the weights caption at the foot of a matplotlib figure (red synthetic, orange unverified)."""
    state = weights_state(model)
    loud = state in ("synthetic", "unverified", "planted")
    fig.text(0.5, 0.002, CAPTIONS[state], ha="center", va="bottom", fontsize=8,
             color=COLOURS[state], weight="bold" if loud else "normal")  # fmt: skip


def caption_figure(fig, model, caption: str | None = None) -> None:
    """Write ``caption`` at the foot of a figure (grey); without one, :func:`stamp` it with the
    model's weights (nothing when ``model`` is None too)."""
    if caption is not None:
        fig.text(0.5, 0.002, caption, ha="center", va="bottom", fontsize=8, color="#555555")
    elif model is not None:
        stamp(fig, model)


class _HTML:
    """Minimal rich-display object (IPython's HTML without importing IPython at module import)."""

    def __init__(self, text: str):
        self.text = text

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def notice_html(model) -> str:
    """The HTML of :func:`notice`: a warning box for synthetic or unverified weights."""
    state = weights_state(model)
    source = html.escape(str(getattr(model, "weights_source", "")))
    if state == "synthetic":
        return (
            '<div class="admonition warning circuitscope-synthetic" style="border-left:4px solid '
            '#b00020;padding:0.5em 1em;background:#fff4f4"><p class="admonition-title">'
            "<b>Made with synthetic weights</b></p><p>The real InceptionV1 weights were not "
            "available here, so the figures and numbers below come from a deterministic "
            "stand-in model. They show how the methods work, not what InceptionV1 learned. "
            "The articles' own results, shown beside them, are the real network's.</p></div>"
        )
    if state == "unverified":
        return (
            '<div class="admonition warning circuitscope-unverified" style="border-left:4px solid '
            '#b35c00;padding:0.5em 1em;background:#fff8ef"><p class="admonition-title">'
            "<b>Made with unverified weights</b></p><p>The weights used below have "
            "InceptionV1's names and shapes, but the file is not the published "
            f"<code>inception5h</code> (its hash differs): <code>{source}</code>. Its results "
            "may differ from the articles'; the articles' own results, shown beside them, are "
            "the reference.</p></div>"
        )
    if state == "planted":
        return (
            '<p class="circuitscope-planted"><b>A planted model:</b> built by hand so that the '
            "answer is known; not InceptionV1.</p>"
        )
    return f'<p class="circuitscope-real">Using the real InceptionV1 weights: {source}</p>'


def notice(model):
    """Show which weights a page uses (a warning box unless they are the verified real ones)."""
    from IPython.display import HTML, display

    display(HTML(notice_html(model)))


def by_state(model, *, real: str, synthetic: str, unverified: str | None = None):
    """Show the Markdown text that is true of ``model``'s weights.

    Pages use it (in a cell tagged ``remove-input``) wherever what a figure shows depends on
    the weights. ``unverified`` defaults to a sentence saying that the figure shows what the
    loaded file computes, which may differ from the article's result.
    """
    from IPython.display import Markdown, display

    state = weights_state(model)
    if state == "unverified" and unverified is None:
        unverified = (
            "These weights are not the published InceptionV1 file, so this figure shows what "
            "*that* file computes; it may differ from the real network's result, which the "
            "article's figure on this page shows."
        )
    if state == "planted":
        raise ValueError("by_state describes InceptionV1's weights; a planted model has no such choice")
    text = {"real": real, "published": real, "synthetic": synthetic, "unverified": unverified}[state]
    display(Markdown(f'<div class="circuitscope-by-state circuitscope-state-{state}">\n\n{text}\n\n</div>'))
