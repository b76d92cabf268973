"""circuitscope.methods.sae_eval: L0, variance explained, dead and dense features, the splice-in test.

Planted answers: an SAE that reconstructs exactly (no change when spliced in), one whose features
never fire (all dead; splicing it in zero-ablates the layer: a measurable change), and one with
planted dead and dense features. Chapter 5's exercises 8 and 9 are tested in test_chapters.py.
"""

from __future__ import annotations

import pytest
import torch

from circuitscope.checks.ch5 import PlantedClassifier, _eval_data, eval_sae, planted_sae
from circuitscope.methods import sae_eval
from circuitscope.methods.sae import SparseAutoencoder, feature_frequencies

pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- variance explained, L0, feature density -------------------------------------------------------
def test_fraction_of_variance_explained_at_its_landmarks():
    x = torch.randn(50, 4, generator=_gen(0)) + 3.0
    assert sae_eval.fraction_of_variance_explained(x, x) == 1.0
    assert sae_eval.fraction_of_variance_explained(x, x.mean(0).expand_as(x)) == pytest.approx(0.0, abs=1e-12)
    half = x.mean(0) + 0.5 * (x - x.mean(0))  # half the deviation: a quarter of the variance left
    assert sae_eval.fraction_of_variance_explained(x, half) == pytest.approx(0.75, rel=1e-6)
    with pytest.raises(ValueError, match="no variance"):
        sae_eval.fraction_of_variance_explained(torch.ones(3, 2), torch.ones(3, 2))


def test_an_exact_sae_explains_everything_and_a_zero_sae_has_only_dead_features():
    x = torch.rand(200, 6, generator=_gen(1)) * (torch.rand(200, 6, generator=_gen(2)) < 0.5)
    exact = sae_eval.evaluate_sae(sae_eval.identity_sae(6), x)
    assert exact.fve == pytest.approx(1.0, abs=1e-6)
    assert exact.l0 == pytest.approx(float((x > 0).sum(1).float().mean()))
    assert torch.equal(exact.frequency, (x > 0).float().mean(0))
    zero = sae_eval.evaluate_sae(sae_eval.zero_sae(6, 12), x)
    assert zero.l0 == 0.0 and bool(zero.dead.all()) and not bool(zero.dense.any())


def test_planted_dead_and_dense_features_are_found():
    sae = eval_sae(16, 40, seed=0, dead=(3, 17), dense=(5,))
    x = _eval_data(501, 16, 40, seed=0)
    report = sae_eval.evaluate_sae(sae, x, dense_threshold=0.1)
    assert bool(report.dead[[3, 17]].all()) and bool(report.dense[5]) and not bool(report.dead[5])
    assert torch.allclose(report.frequency, feature_frequencies(sae, x))
    assert torch.equal(report.dead, report.frequency == 0) and torch.equal(
        report.dense, report.frequency > 0.1
    )
    assert 0 < report.l0 < 40 and report.fve < 1
    assert set(report.as_dict()) == {"l0", "fve", "frequency", "dead", "dense"}


# -- reconstruction in the layer's shape, and the hook ---------------------------------------------
def test_reconstruct_activations_works_position_by_position_on_the_sae_scale():
    sae = planted_sae(5, 10, seed=0)
    with torch.no_grad():
        sae.input_scale.fill_(2.5)
    acts = torch.rand(2, 5, 3, 4, generator=_gen(3))
    with torch.no_grad():
        got = sae_eval.reconstruct_activations(sae, acts)
        one = sae(acts[1, :, 2, 3] / 2.5)[0] * 2.5
    assert got.shape == acts.shape and torch.allclose(got[1, :, 2, 3], one, atol=1e-6)
    exact = sae_eval.identity_sae(5)
    assert torch.equal(sae_eval.reconstruct_activations(exact, acts), acts)  # post-ReLU: exact


def test_the_splice_hook_is_removed_even_on_an_error():
    model = PlantedClassifier(channels=4, seed=0)
    with (
        pytest.raises(RuntimeError, match="boom"),
        sae_eval.spliced(model, sae_eval.identity_sae(4), "hidden"),
    ):
        assert len(model.hook_points["hidden"]._forward_hooks) == 1
        raise RuntimeError("boom")
    assert not model.hook_points["hidden"]._forward_hooks


# -- the splice-in test -----------------------------------------------------------------------------
def _classifier_case(seed: int = 0):
    model = PlantedClassifier(channels=6, classes=5, seed=seed)
    images = torch.rand(10, 3, 8, 8, generator=_gen(seed)) * (
        0.5 + torch.rand(10, 3, 1, 1, generator=_gen(seed + 1))
    )
    return model, images


def test_an_exact_sae_changes_nothing_and_a_zero_sae_changes_the_loss():
    model, images = _classifier_case()
    exact = sae_eval.spliced_metrics(model, sae_eval.identity_sae(6), "hidden", images)
    assert exact.loss_change == pytest.approx(0.0, abs=1e-6)  # the same up to float rounding
    assert exact.accuracy_change == 0.0 and exact.clean_accuracy == 1.0
    zero = sae_eval.spliced_metrics(model, sae_eval.zero_sae(6, 12), "hidden", images)
    assert zero.clean_loss == exact.clean_loss
    assert zero.loss_change > 0.1 and zero.accuracy_change < 0  # zero-ablating the layer costs the model
    assert not model.hook_points["hidden"]._forward_hooks


def test_loss_recovered_is_one_for_an_exact_sae_and_zero_for_zeros():
    model, images = _classifier_case(1)
    assert sae_eval.loss_recovered(model, sae_eval.identity_sae(6), "hidden", images) == pytest.approx(1.0)
    assert sae_eval.loss_recovered(model, sae_eval.zero_sae(6, 12), "hidden", images) == pytest.approx(
        0.0, abs=1e-9
    )
    between = sae_eval.loss_recovered(model, planted_sae(6, 12, 2), "hidden", images)
    assert between != pytest.approx(1.0)


def test_given_labels_are_used():
    model, images = _classifier_case(2)
    labels = torch.zeros(10, dtype=torch.long)
    result = sae_eval.spliced_metrics(model, sae_eval.identity_sae(6), "hidden", images, labels)
    with torch.no_grad():
        expected = float((model(images).argmax(-1) == 0).double().mean())
    assert result.clean_accuracy == pytest.approx(expected)


def test_the_splice_in_test_on_inceptionv1(synthetic_model):
    images = torch.rand(1, 3, 224, 224, generator=_gen(4))
    exact = sae_eval.spliced_metrics(synthetic_model, sae_eval.identity_sae(256), "mixed3a", images)
    assert exact.loss_change == pytest.approx(0.0, abs=1e-5) and exact.spliced_accuracy == 1.0
    zero = sae_eval.spliced_metrics(synthetic_model, sae_eval.zero_sae(256, 512), "mixed3a", images)
    assert zero.loss_change != pytest.approx(0.0, abs=1e-3)
    assert not any(h._forward_hooks for h in synthetic_model.hook_points.values())


def test_a_sae_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="6 channels"):
        sae_eval.reconstruct_activations(SparseAutoencoder(4, 8, device="cpu"), torch.rand(1, 6, 2, 2))
