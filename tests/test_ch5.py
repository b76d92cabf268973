"""Chapter 5: what is particular to its exercise checks.

What every chapter's exercises satisfy (the reference passes, in this process and over the
grader's wire format; the stub and the named mistakes of ``tests/mistakes/ch5_closing_thoughts.py``
fail, ...) is tested in ``tests/test_chapters.py``; the toy models, SAEs and the chapter's figures
in ``test_superposition.py`` and ``test_sae.py``. Here: errors get their own hints (a decoder row,
the features spliced in), and the planted colour model the feature-visualization check relies on.
"""

from __future__ import annotations

import pytest
import torch
from exercise_harness import chapter

from circuitscope.checks import CheckFailed
from circuitscope.methods.optvis.objectives import direction

CHAPTER = chapter("ch5_closing_thoughts")
checks = CHAPTER.checks


def test_a_row_of_the_decoder_gets_the_decoder_column_hint():
    # W_dec[feature] has d_hidden entries: render's direction objective refuses it (an error, not a value).
    code = """
        def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
            vector = sae.W_dec[feature].detach()
            return vector, render(model, direction(layer, vector), size=size, steps=steps, seed=seed, progress=False)
    """
    with pytest.raises(CheckFailed, match=r"raised ValueError(.|\n)*decoder column: sae\.W_dec\[:, feature\]"):
        checks.check_visualize_feature(CHAPTER.mistake(code))


def test_splicing_the_features_in_gets_the_reconstruction_hint():
    # The features have d_hidden numbers per position: the reshape back raises (an error, not a value).
    code = """
        def spliced_metrics(model, sae, layer, images, labels):
            def replace(module, inputs, acts):
                n, c, h, w = acts.shape
                x_hat = sae(acts.permute(0, 2, 3, 1).reshape(-1, c) / sae.input_scale)[1]
                return x_hat.reshape(n, h, w, c).permute(0, 3, 1, 2)

            with torch.no_grad():
                clean = model(images)
                handle = model.hook_points[layer].register_forward_hook(replace)
                try:
                    spliced = model(images)
                finally:
                    handle.remove()
            ce = torch.nn.functional.cross_entropy
            return {"clean_loss": float(ce(clean, labels)), "spliced_loss": float(ce(spliced, labels)),
                    "clean_accuracy": float((clean.argmax(-1) == labels).float().mean()),
                    "spliced_accuracy": float((spliced.argmax(-1) == labels).float().mean())}
    """
    with pytest.raises(CheckFailed, match=r"raised RuntimeError(.|\n)*RECONSTRUCTION x_hat = sae\(x\)\[0\]"):
        checks.check_spliced_metrics(CHAPTER.mistake(code))



def test_planted_colour_model_has_a_known_best_colour():
    model = checks.PlantedColourModel(4, seed=0)
    v = torch.tensor([0.5, -0.5, 0.5, 0.5])
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        value = direction("colour", v)({"colour": model(images)})
    expected = (model.A.T @ v) @ (images.mean(dim=(2, 3)) - 0.5).T  # linear in the mean colour
    assert torch.allclose(value, expected, atol=1e-5)
    best = (model.A.T @ v > 0).float()[None, :, None, None].expand(1, 3, 8, 8)  # saturated colour
    with torch.no_grad():
        top = float(direction("colour", v)({"colour": model(best)}))
    assert top == pytest.approx(0.5 * float((model.A.T @ v).abs().sum()), rel=1e-5)
