"""Saying where a result came from: every figure and page made with synthetic weights says so."""

from __future__ import annotations

SYNTHETIC_LABEL = "synthetic weights"


def is_synthetic(model) -> bool:
    """True when ``model`` runs on the synthetic stand-in (or has no known real weights)."""
    return bool(getattr(model, "is_synthetic", True))


def weights_caption(model) -> str:
    """A one-line caption for figures: which weights made this."""
    if is_synthetic(model):
        return "SYNTHETIC WEIGHTS: a stand-in, not InceptionV1's learned features"
    return "InceptionV1 (inception5h) weights"


def stamp(fig, model) -> None:
    """Write the weights caption onto a matplotlib figure (in red when synthetic)."""
    synthetic = is_synthetic(model)
    fig.text(0.5, 0.002, weights_caption(model), ha="center", va="bottom", fontsize=8,
             color="#b00020" if synthetic else "#555555", weight="bold" if synthetic else "normal")  # fmt: skip


def notice(model):
    """Show a notice about the weights in a notebook (a warning box when synthetic)."""
    from IPython.display import HTML, display

    if is_synthetic(model):
        html = (
            '<div class="admonition warning circuitscope-synthetic" style="border-left:4px solid '
            '#b00020;padding:0.5em 1em;background:#fff4f4"><p class="admonition-title">'
            "<b>Made with synthetic weights</b></p><p>The real InceptionV1 weights were not "
            "available here, so the figures and numbers below come from a deterministic "
            "stand-in model. They show how the methods work, not what InceptionV1 learned.</p></div>"
        )
    else:
        html = f'<p class="circuitscope-real">Using InceptionV1 weights: {model.weights_source}</p>'
    display(HTML(html))
