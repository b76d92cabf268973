"""Polysemanticity measures on planted data: a unit built to respond to two unrelated patterns
is found to respond to two things; units built for one are found to respond to one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from circuitscope.methods.dataset_examples import top_examples
from circuitscope.methods.planted import PlantedPatternModel, write_planted_folder
from circuitscope.methods.polysemanticity import (
    count_clusters,
    diverse_renders,
    effective_classes,
    example_features,
    kmeans,
    label_entropy,
    measure_polysemanticity,
    next_layer,
    outgoing_weight_vector,
    outgoing_weights,
    silhouette,
)

SIZE = 48


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return PlantedPatternModel()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("planted") / "images"
    truth = write_planted_folder(root, n_plain=10, n_per_pattern=5, size=SIZE, seed=1)
    return root, {p.relative_to(root).as_posix(): kind for p, (kind, _) in truth.items()}


# -- labels ----------------------------------------------------------------------------------------
def test_label_entropy_and_effective_classes():
    assert label_entropy([3, 3, 3]) == 0 and effective_classes([3, 3, 3]) == 1
    assert label_entropy(torch.tensor([0, 1, 0, 1])) == pytest.approx(1.0)
    assert label_entropy(["cat", "car", "dog", "leg"]) == pytest.approx(2.0)
    assert effective_classes([0, 1, 2, 0, 1, 2]) == pytest.approx(3.0)
    assert label_entropy([0, 0, 0, 1], base=math.e) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    )
    assert label_entropy([5, 5, -1, None]) == 0  # unlabelled examples are left out
    assert math.isnan(label_entropy([-1, -1])) and math.isnan(label_entropy([]))


# -- clusters --------------------------------------------------------------------------------------
def blobs(centres: list[list[float]], per: int = 8, spread: float = 0.05, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(centres)
    return (c[:, None, :] + spread * torch.randn(len(c), per, c.shape[1], generator=g)).reshape(
        -1, c.shape[1]
    )


@pytest.mark.parametrize("n", [1, 2, 3])
def test_count_clusters_finds_planted_groups(n):
    directions = torch.eye(6)[:n] + 0.3  # well apart on the unit sphere
    x = blobs(directions.tolist())
    found = count_clusters(x, max_clusters=5)
    assert found.n == n
    truth = torch.arange(n).repeat_interleave(8)
    assert found.assignment.tolist() == truth.tolist()  # numbered by first appearance
    if n > 1:
        assert found.silhouette > 0.5 and max(found.silhouette_by_k, key=found.silhouette_by_k.get) == n


def test_count_clusters_one_group_of_noise_and_identical_points():
    x = torch.randn(24, 16, generator=torch.Generator().manual_seed(0))  # no structure
    assert count_clusters(x).n == 1
    assert count_clusters(torch.ones(6, 4)).n == 1  # identical points are never split
    assert count_clusters(torch.ones(2, 4)).n == 1  # too few to split


def test_kmeans_and_silhouette():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.0, 5.1]])
    assign, _centres, inertia = kmeans(x, 2, seed=0)
    assert assign[0] == assign[1] != assign[2] == assign[3]
    assert inertia == pytest.approx(4 * 0.05**2, abs=1e-6)
    assert silhouette(x, assign) > 0.95
    assert silhouette(x, torch.tensor([0, 1, 0, 1])) < 0  # a wrong split scores badly
    assert silhouette(x, torch.zeros(4)) == 0
    again, _, _ = kmeans(x, 2, seed=0)
    assert torch.equal(assign, again)


# -- the planted polysemantic unit -------------------------------------------------------------------
def test_planted_polysemantic_unit_has_two_groups(model, folder):
    root, truth = folder
    poly = measure_polysemanticity(model, root, "units:0", k=12, size=SIZE, progress=False)
    assert len(poly.top) == 10  # only the 10 patterned images excite it; the rest are left out
    assert poly.n_clusters == 2 and poly.clusters.silhouette > 0.9
    groups = [{truth[n] for n in g} for g in poly.groups()]
    assert sorted(map(sorted, groups)) == [["checker"], ["cross"]]
    assert poly.label_entropy == pytest.approx(1.0) and poly.effective_classes == pytest.approx(2.0)
    assert "2 cluster(s)" in repr(poly)


@pytest.mark.parametrize("unit, kind", [("units:1", "cross"), ("units:2", "checker")])
def test_planted_monosemantic_units_have_one_group(model, folder, unit, kind):
    root, truth = folder
    poly = measure_polysemanticity(model, root, unit, k=12, size=SIZE, progress=False)
    assert {truth[n] for n in poly.top.names} == {kind}
    assert poly.n_clusters == 1 and poly.label_entropy == 0


def test_features_from_another_layer_and_precomputed_examples(model, folder):
    root, truth = folder
    top = top_examples(model, root, "units:0", k=10, size=SIZE, progress=False)
    feats = example_features(model, top, "detectors")  # the layer below, at the nearest position
    assert feats.shape == (10, 2)
    for name, f in zip(top.names, feats):
        want = 0 if truth[name] == "cross" else 1
        assert f[want] > 0.3 and f[1 - want] == 0  # the detector of its own pattern, only
    own = example_features(model, top)
    assert own.shape == (10, 2)  # units 1 and 2; unit 0 itself left out
    assert measure_polysemanticity(model, top, features_layer="detectors").n_clusters == 2
    assert measure_polysemanticity(model, top, where="mean").n_clusters == 2


# -- following a feature into the next layer ----------------------------------------------------------
def test_outgoing_weights_of_planted_detectors(model):
    assert next_layer(model, "detectors") == "units"
    assert outgoing_weights(model, "detectors:0", k=2) == [("units:0", 1.0), ("units:1", 1.0)]
    assert [u for u, _ in outgoing_weights(model, "detectors:1", k=2)] == ["units:0", "units:2"]
    assert outgoing_weights(model, "detectors:1", k=1, sign="negative") == [("units:1", 0.0)]
    assert outgoing_weight_vector(model, "detectors:0").tolist() == [1.0, 1.0, 0.0]


def test_outgoing_weights_in_inceptionv1():
    from circuitscope import InceptionV1
    from circuitscope.methods.circuits import branch_slices

    torch.manual_seed(0)
    inception = InceptionV1().eval()  # PyTorch's random initialisation is enough here
    assert (
        next_layer(inception, "mixed4c") == "mixed4d"
        and next_layer(inception, "mixed4e_pre_relu") == "mixed5a"
    )
    assert next_layer(inception, "mixed3b_5x5") == "mixed4a"
    with pytest.raises(ValueError, match="last block"):
        next_layer(inception, "mixed5b")
    w = outgoing_weight_vector(inception, "4c:447")
    assert w.shape == (528,)
    direct = branch_slices("mixed4d")["mixed4d_1x1"]  # 1x1 branch: the plain weights
    assert torch.allclose(w[direct], inception.mixed4d_1x1_pre_relu_conv.weight[:, 447, 0, 0], atol=1e-6)
    top = outgoing_weights(inception, "4c:447", "4d", k=3)
    assert [u.split(":")[0] for u, _ in top] == ["4d"] * 3
    assert [v for _, v in top] == pytest.approx(torch.sort(w, descending=True).values[:3].tolist())


# -- diverse renders ---------------------------------------------------------------------------------
def test_diverse_renders(model):
    images = diverse_renders(model, "units:0", n=2, size=24, steps=6, seed=0, progress=False)
    assert images.shape == (2, 3, 24, 24) and 0 <= images.min() and images.max() <= 1
    assert not torch.allclose(images[0], images[1])


def test_planted_pattern_model_is_planted_not_synthetic():
    from circuitscope.core.provenance import weights_state

    assert weights_state(PlantedPatternModel()) == "planted"


# -- the chapter's demonstrations (moved from test_ch4) -------------------------------------------
def test_diversity_splits_the_planted_unit_into_its_two_patterns():
    import circuitscope as cs
    from circuitscope.methods.optvis import channel, diversity, render

    # The chapter's and exercise 3's figure: with the diversity term each image of the batch
    # specialises in one pattern (one detector fires, the other hardly); without it, both fire.
    model = PlantedPatternModel(threshold=0.0)
    obj = channel("units", 0)
    plain = render(model, obj, batch=4, size=32, steps=40, seed=0, progress=False)
    diverse = render(
        model, obj - 1.0 * diversity("units"), batch=4, size=32, steps=40, seed=0, progress=False
    )
    with torch.no_grad():
        det_plain = cs.activations(model, plain, ["detectors"])["detectors"].amax(dim=(2, 3))
        det_diverse = cs.activations(model, diverse, ["detectors"])["detectors"].amax(dim=(2, 3))
    ratio = lambda d: d.min(1).values / d.max(1).values.clamp_min(1e-6)
    assert bool((ratio(det_plain) > 0.5).all()), det_plain  # both patterns in every image
    assert bool((ratio(det_diverse) < 0.2).all()), det_diverse  # one pattern per image
    assert set(det_diverse.argmax(1).tolist()) == {0, 1}, "both patterns appear in the batch"


def test_outgoing_weights_figure_marks_the_highlighted_units():
    from circuitscope.figures.plotting import outgoing_weights_figure

    texts_of = lambda f: " ".join(t.get_text() for t in f.texts)

    fig = outgoing_weights_figure(PlantedPatternModel(), "detectors:0", k=2, highlight=["units:1"])
    ax = fig.axes[0]
    texts = texts_of(ax)
    assert "largest: units:0 +1.00, units:1 +1.00" in texts and "units:1 (rank 2)" in texts
    assert len(ax.patches) == 3 and "PLANTED MODEL" in texts_of(fig) and "SYNTHETIC" not in texts_of(fig)
