"""The figures of ``circuitscope.figures.plotting``: every figure a model made says which weights made it
(synthetic, real); measured layer shapes; the diverging colour map; the image grid."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.figures import interactive, plotting, style
from circuitscope.methods.stimuli import TuningCurve


def _texts(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts)


FIGURES = {
    "architecture_diagram": lambda m, img: plotting.architecture_diagram(m, input_size=224),
    "inception_block_diagram": lambda m, img: plotting.inception_block_diagram(m, "mixed4a", input_size=96),
    "top_k_chart": lambda m, img: plotting.top_k_chart(m, img[None], k=3),
    "activation_maps": lambda m, img: plotting.activation_maps(m, img, layers=["conv2d0", "mixed3a"], n=2),
    "strongest_channels_chart": lambda m, img: plotting.strongest_channels_chart(m, img, "mixed3a", k=3),
    "strongest_patch_figure": lambda m, img: plotting.strongest_patch_figure(m, img, "mixed3a", 5),
    "receptive_field_figure": lambda m, img: plotting.receptive_field_figure(m, img),
    "radial_tuning_plot": lambda m, img: plotting.radial_tuning_plot({"3b:379": torch.rand(72)}, model=m),
    "radial_tuning_panels": lambda m, img: plotting.radial_tuning_panels([{"tunings": {"3b:379": torch.rand(72)}}], model=m),
    "compare_with_published": lambda m, img: plotting.compare_with_published(img[None], ["4b:111"], m),
    "image_grid": lambda m, img: plotting.image_grid([img, img], ["a", "b"], model=m),
    "plot_weights": lambda m, img: plotting.plot_weights(torch.randn(2, 5, 5), model=m),
    "plot_circuit": lambda m, img: plotting.plot_circuit(["4b:237", "4c:447"], [("4b:237", "4c:447", 1.0)], model=m),
    "plot_tuning_curves": lambda m, img: plotting.plot_tuning_curves(
        TuningCurve("3b:379", torch.arange(0.0, 360.0, 45.0), torch.rand(8), 90.0, 90.0, 360.0), model=m),
}


def test_every_model_figure_function_is_listed():
    # Every public function of plotting that takes a model is checked for its stamp below.
    import inspect

    takes_model = {
        name
        for name in plotting.__all__
        if callable(getattr(plotting, name))
        and "model" in inspect.signature(getattr(plotting, name)).parameters
    }
    # layer_shapes draws nothing; two figures need a trained or planted model to draw, and are
    # tested where it is made: test_polysemanticity.py (outgoing_weights_figure, on the planted
    # pattern model) and test_sae.py (plot_sae_features, on an SAE)
    assert takes_model - {"layer_shapes", "outgoing_weights_figure", "plot_sae_features"} == set(FIGURES)


def test_the_interactive_figure_says_which_weights_made_it(synthetic_model):
    figure = interactive.interactive_radial_tuning({"3b:379": torch.rand(72)}, model=synthetic_model)
    assert "SYNTHETIC" in getattr(figure, "hint", "").upper()  # shown under the chart on the site


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figures_say_which_weights_made_them(synthetic_model, name):
    image = cs.sample_image("chelsea", size=224)
    fig = FIGURES[name](synthetic_model, image)
    assert "SYNTHETIC WEIGHTS" in _texts(fig), f"{name} does not say it was made with synthetic weights"


def test_a_figure_from_real_activations_is_not_marked_synthetic():
    from circuitscope.core import published

    example = published.dog_cat()
    assert example.image.shape == (3, 224, 224) and example.acts["mixed4d"].shape == (528, 14, 14)
    fig = plotting.strongest_channels_chart(
        example, example.image, "mixed4d", k=4, acts=example.acts["mixed4d"]
    )
    assert "SYNTHETIC" not in _texts(fig) and "InceptionV1" in _texts(fig)
    # Lucid's statistics of this fixture (shared/data/lucid_parity/README.md): max 887, ~22% > 0.
    a = example.acts["mixed4d"]
    assert float(a.max()) == pytest.approx(887.0, abs=1.0) and 0.2 < float((a > 0).float().mean()) < 0.25


def test_architecture_shapes_are_measured(synthetic_model):
    shapes = plotting.layer_shapes(synthetic_model, 224)
    assert shapes["conv2d0"] == (64, 112, 112) and shapes["mixed3b"] == (480, 28, 28)
    assert (
        shapes["mixed4d"] == (528, 14, 14)
        and shapes["mixed5b"] == (1024, 7, 7)
        and shapes["softmax2"] == (1008,)
    )
    assert plotting.layer_shapes(synthetic_model, 256, ["mixed4a"])["mixed4a"] == (508, 16, 16)


def test_diverging_norm_is_centred():
    norm = style.diverging_norm(torch.tensor([-1.0, 3.0]))
    assert (
        norm(0.0) == pytest.approx(0.5)
        and norm(3.0) == pytest.approx(1.0)
        and norm(-3.0) == pytest.approx(0.0)
    )
    assert style.diverging_cmap()(0.5)[:3] == pytest.approx((0.969, 0.969, 0.969), abs=0.01)



def test_image_grid_says_which_weights_made_the_images(synthetic_model):
    images = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    fig = plotting.image_grid(images, [str(i) for i in range(5)], model=synthetic_model, columns=3, title="t")
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "SYNTHETIC WEIGHTS" in texts
    assert len([ax for ax in fig.axes if ax.images]) == 5 and len(fig.axes) == 6
    plain = plotting.image_grid(list(images[:2]), ["a", "b"])
    assert not plain.texts  # no model, no stamp: the images came from no model
