"""Sparse autoencoders: the model, recovery of planted features, checkpoint and resume, the
path from InceptionV1 activations to features (with the synthetic weights), and chapter 5's
photo crops and figures."""

from __future__ import annotations

import pytest
import torch

import circuitscope as cs
from circuitscope.figures import plotting
from circuitscope.methods import sae as S


def _noise_images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Seeded smooth random images ``(n, 3, size, size)`` in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=gen)
    return torch.nn.functional.interpolate(
        coarse, size=(size, size), mode="bilinear", align_corners=False
    ).clamp(0, 1)


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- the model -----------------------------------------------------------------------------
def test_encode_decode_and_loss_follow_the_article():
    sae = S.SparseAutoencoder(6, 10, device="cpu", seed=1)
    with torch.no_grad():
        sae.b_enc.normal_(generator=torch.Generator().manual_seed(2))
        sae.b_dec.normal_(generator=torch.Generator().manual_seed(3))
        sae.W_enc.mul_(3)  # untied: the encoder is its own matrix
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(4))
    f = sae.encode(x)
    assert f.shape == (5, 10) and f.min() >= 0
    assert torch.allclose(f, torch.relu((x - sae.b_dec) @ sae.W_enc.T + sae.b_enc), atol=1e-6)
    assert torch.allclose(sae.decode(f), f @ sae.W_dec.T + sae.b_dec, atol=1e-6)
    assert torch.allclose(sae.W_dec.norm(dim=0), torch.ones(10), atol=1e-6)
    parts = sae.loss(x, l1_coeff=0.5)
    mse = ((x - sae.decode(f)) ** 2).sum(1).mean()
    l1 = f.abs().sum(1).mean()
    assert torch.allclose(parts.mse, mse) and torch.allclose(parts.l1, l1)
    assert torch.allclose(parts.total, mse + 0.5 * l1)
    assert parts.l0.item() == (f > 0).float().sum(1).mean().item()
    tied = S.SparseAutoencoder(6, 10, tied=True, device="cpu")
    assert not hasattr(tied, "W_enc") and torch.equal(tied.encoder_weight, tied.W_dec.T)


def test_dictionary_stays_unit_norm_and_gradient_parallel_part_is_removed():
    sae = S.SparseAutoencoder(8, 16, device="cpu", seed=0)
    x = torch.rand(32, 8, generator=torch.Generator().manual_seed(0))
    sae.loss(x, 0.1).total.backward()
    assert (sae.W_dec.grad * sae.W_dec).sum(0).abs().max() > 1e-4  # there was a parallel part
    sae.remove_parallel_gradient_()
    assert (sae.W_dec.grad * sae.W_dec).sum(0).abs().max() < 1e-6
    S.train_sae(sae, x, steps=20, lr=1e-2, batch_size=8, progress=False)
    assert torch.allclose(sae.W_dec.norm(dim=0), torch.ones(16), atol=1e-5)


# -- planted ground truth ------------------------------------------------------------------
def test_sae_recovers_planted_sparse_features():
    """64 known directions in 32 dimensions, about 2.5 active per vector: the SAE finds them."""
    planted = S.planted_features(n_samples=20_000, d=32, n_features=64, p_active=0.04, noise=0.01, seed=0)
    assert planted.data.shape == (20_000, 32) and planted.dictionary.shape == (32, 64)
    sae = S.SparseAutoencoder(32, 128, device="cpu", seed=0)
    before = S.mean_max_cosine_similarity(sae.W_dec, planted.dictionary)
    history = S.train_sae(
        sae, planted.data, steps=1000, lr=3e-3, l1_coeff=0.2, batch_size=256, progress=False
    )
    after = S.mean_max_cosine_similarity(sae.W_dec, planted.dictionary)
    assert before < 0.7, f"a random dictionary should not match already ({before:.3f})"
    assert after >= 0.9, f"mean max cosine similarity {after:.3f} < 0.9 (before training: {before:.3f})"
    assert history.loss[-1] < history.loss[0]
    assert history.l0[-1] < 10  # sparse: a few features per vector
    assert S.mean_max_cosine_similarity(planted.dictionary, planted.dictionary) == pytest.approx(1.0)


# -- the TopK SAE (Gao et al. 2024) --------------------------------------------------------
def test_topk_sae_keeps_exactly_the_k_largest_pre_activations():
    sae = S.TopKSparseAutoencoder(8, 32, k=3, device="cpu", seed=0)
    with torch.no_grad():
        sae.b_enc.fill_(10.0)  # every pre-activation positive: exactly k survive the ReLU
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    f = sae.encode(x)
    assert f.shape == (50, 32) and (f >= 0).all()
    assert ((f > 0).sum(-1) == 3).all(), "exactly k active features per input"
    pre = (x - sae.b_dec) @ sae.encoder_weight.T + sae.b_enc
    kept = pre.topk(3, dim=-1)
    assert torch.equal(f.gather(-1, kept.indices), kept.values), "the kept values are the k largest"
    # Without the bias, never more than k; the loss is the reconstruction error alone.
    sae.b_enc.data.zero_()
    f = sae.encode(x)
    assert ((f > 0).sum(-1) <= 3).all()
    loss = sae.loss(x, l1_coeff=123.0)
    assert torch.equal(loss.total, loss.mse) and loss.l0 <= 3
    with pytest.raises(ValueError, match="k must lie"):
        S.TopKSparseAutoencoder(8, 4, k=5)


def test_topk_sae_trains_with_the_same_trainer_and_recovers_planted_features(tmp_path):
    planted = S.planted_features(n_samples=20_000, d=32, n_features=64, p_active=0.04, noise=0.01, seed=0)
    sae = S.TopKSparseAutoencoder(32, 128, k=4, device="cpu", seed=0)
    before = S.mean_max_cosine_similarity(sae.W_dec, planted.dictionary)
    path = tmp_path / "topk.pt"
    history = S.train_sae(sae, planted.data, steps=1000, lr=3e-3, batch_size=256, progress=False,
                          checkpoint=path)  # fmt: skip
    after = S.mean_max_cosine_similarity(sae.W_dec, planted.dictionary)
    assert after >= 0.9 and after > before + 0.2, f"mean max cosine similarity {before:.3f} -> {after:.3f}"
    assert history.loss[-1] < history.loss[0] and max(history.l0) <= 4
    assert torch.allclose(sae.W_dec.norm(dim=0), torch.ones(128), atol=1e-5)  # the trainer's unit norm
    loaded = S.load_sae(path, device="cpu")
    assert isinstance(loaded, S.TopKSparseAutoencoder) and loaded.k == 4
    assert torch.equal(loaded.W_dec, sae.W_dec)


# -- checkpoint and resume -----------------------------------------------------------------
def test_checkpoint_and_resume_equal_one_run(tmp_path):
    data = S.planted_features(n_samples=600, d=16, n_features=24, seed=1).data  # epochs: 600 / 64
    kwargs = {"lr": 3e-3, "l1_coeff": 0.1, "batch_size": 64, "progress": False, "seed": 5}
    one = S.SparseAutoencoder(16, 32, device="cpu", seed=0)
    history_one = S.train_sae(one, data, steps=40, **kwargs)

    path = tmp_path / "sae.pt"
    first = S.SparseAutoencoder(16, 32, device="cpu", seed=0)
    S.train_sae(first, data, steps=23, checkpoint=path, checkpoint_every=7, **kwargs)
    assert path.exists()
    resumed = S.SparseAutoencoder(16, 32, device="cpu", seed=123)  # as in a new process: fresh weights
    history = S.train_sae(resumed, data, steps=40, checkpoint=path, **kwargs)
    assert _same_state(one, resumed), "resuming from the checkpoint must give the one-run result"
    assert history.as_dict() == history_one.as_dict()
    assert torch.equal(S.load_sae(path, device="cpu").W_dec, one.W_dec)
    # resume=False starts again and overwrites
    again = S.SparseAutoencoder(16, 32, device="cpu", seed=0)
    S.train_sae(again, data, steps=20, checkpoint=path, resume=False, **kwargs)
    assert torch.equal(S.load_sae(path, device="cpu").W_dec, again.W_dec)
    with pytest.raises(ValueError, match="holds an SAE"):
        S.train_sae(S.SparseAutoencoder(16, 8, device="cpu"), data, steps=30, checkpoint=path, **kwargs)


class _Batches:
    """A re-iterable, unindexable source of unevenly sized batches that can crash on demand."""

    def __init__(self, data: torch.Tensor, sizes: list[int], crash_after: int | None = None):
        self.parts = list(data.split(sizes))
        self.crash_after, self.read = crash_after, 0

    def __iter__(self):
        for part in self.parts:
            if self.crash_after is not None and self.read >= self.crash_after:
                raise RuntimeError("simulated crash")
            self.read += 1
            yield part


def test_crash_then_resume_equals_one_run(tmp_path):
    """Batches cut across uneven source batches and epochs; a crash saves, a restart resumes."""
    data = S.planted_features(n_samples=230, d=12, n_features=20, seed=2).data
    sizes = [50, 37, 61, 45, 37]
    kwargs = {"lr": 3e-3, "l1_coeff": 0.1, "batch_size": 40, "progress": False}
    one = S.SparseAutoencoder(12, 24, device="cpu", seed=0)
    history_one = S.train_sae(one, _Batches(data, sizes), steps=25, **kwargs)
    assert history_one.steps == [10, 20, 25]

    path = tmp_path / "crash.pt"
    crashing = S.SparseAutoencoder(12, 24, device="cpu", seed=0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        S.train_sae(crashing, _Batches(data, sizes, crash_after=9), steps=25, checkpoint=path, **kwargs)
    assert path.exists(), "a crash must leave a checkpoint of the steps done"
    resumed = S.SparseAutoencoder(12, 24, device="cpu", seed=7)
    history = S.train_sae(resumed, _Batches(data, sizes), steps=25, checkpoint=path, **kwargs)
    assert _same_state(one, resumed)
    assert history.as_dict() == history_one.as_dict()


def test_one_shot_generator_runs_out_with_a_warning():
    data = torch.rand(100, 4, generator=torch.Generator().manual_seed(0))
    sae = S.SparseAutoencoder(4, 8, device="cpu")
    with pytest.warns(UserWarning, match="ran out after 5"):
        S.train_sae(sae, (b for b in data.split(20)), steps=10, progress=False)
    with pytest.raises(ValueError, match="activation_batches"):
        S.train_sae(sae, [torch.rand(2, 3, 8, 8)], steps=1, progress=False)


# -- dead features and directions ----------------------------------------------------------
def test_dead_features_and_frequencies():
    sae = S.SparseAutoencoder(8, 12, device="cpu", seed=0)
    with torch.no_grad():
        sae.b_enc[[2, 5, 11]] = -1e3  # can never fire
        sae.b_enc[0] = 1e3  # always fires
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    freq = S.feature_frequencies(sae, x)
    assert freq.shape == (12,) and freq.min() >= 0 and freq.max() <= 1 and freq[0] == 1
    dead = S.dead_features(sae, list(x.split(100)))
    assert dead.dtype == torch.bool and dead.nonzero().flatten().tolist() == [2, 5, 11]
    assert int(dead.sum()) == 3


def test_feature_direction_feeds_the_direction_objective():
    sae = S.SparseAutoencoder(256, 512, device="cpu", seed=0)
    v = S.feature_direction(sae, 7)
    assert v.shape == (256,) and torch.allclose(v, sae.W_dec[:, 7]) and abs(v.norm().item() - 1) < 1e-5
    v.add_(1)  # a copy: the SAE is untouched
    assert not torch.allclose(v, sae.W_dec[:, 7])
    with pytest.raises(IndexError):
        S.feature_direction(sae, 512)
    from circuitscope.methods.optvis.objectives import direction

    acts = torch.rand(2, 256, 4, 4)
    value = direction("mixed3a", S.feature_direction(sae, 7))({"mixed3a": acts})
    expected = torch.einsum("nchw,c->n", acts, sae.W_dec[:, 7].detach()) / 16
    assert torch.allclose(value, expected, atol=1e-5)


# -- InceptionV1 activations (synthetic weights) -------------------------------------------
def test_activation_batches_stream_every_position(synthetic_model):
    images = _noise_images(5)
    with torch.no_grad():
        acts = cs.activations(synthetic_model, images, ["mixed3a"])["mixed3a"]  # (5, 256, 8, 8)
    _n, c, h, w = acts.shape
    plain = S.activation_batches(synthetic_model, images, "mixed3a", batch_size=2, shuffle=False)
    batches = list(plain)
    assert len(plain) == 3 and [b.shape for b in batches] == [(2 * h * w, c), (2 * h * w, c), (h * w, c)]
    assert torch.allclose(torch.cat(batches), acts.permute(0, 2, 3, 1).reshape(-1, c), atol=1e-5)
    assert batches[0].device == synthetic_model.device
    centre = list(
        S.activation_batches(synthetic_model, images, "mixed3a", "centre", batch_size=5, shuffle=False)
    )
    assert len(centre) == 1 and torch.allclose(centre[0], acts[:, :, h // 2, w // 2], atol=1e-5)
    shuffled = S.activation_batches(synthetic_model, images, "mixed3a", batch_size=2, seed=3, scale=2.0)
    first = list(shuffled)
    assert torch.allclose(first[1].sort(0).values * 2, batches[1].sort(0).values, atol=1e-5)
    assert not torch.allclose(first[1] * 2, batches[1])
    later = list(shuffled.iter_from(1))  # resuming skips batches and keeps their order
    assert len(later) == 2 and all(torch.equal(a, b) for a, b in zip(later, first[1:]))
    with pytest.raises(KeyError, match="mixed3a"):
        S.activation_batches(synthetic_model, images, "mixed3x")


def test_train_layer_sae_on_inceptionv1(synthetic_model, tmp_path):
    images = _noise_images(4)
    path = tmp_path / "mixed3a.pt"
    sae, history = S.train_layer_sae(synthetic_model, list(images.split(2)), "mixed3a", expansion=2, steps=12,
                                     lr=3e-3, l1_coeff=0.05, batch_size=128, checkpoint=path, progress=False,
                                     log_every=4)  # fmt: skip
    assert sae.W_dec.shape == (256, 512) and sae.W_enc.shape == (512, 256)
    assert sae.input_scale.item() > 0 and sae.device == synthetic_model.device
    assert history.steps == [4, 8, 12] and history.loss[-1] < history.loss[0]
    assert path.exists() and torch.equal(S.load_sae(path, device="cpu").W_dec, sae.W_dec)
    dead = S.dead_features(
        sae, S.activation_batches(synthetic_model, images, "mixed3a", scale=sae.input_scale.item())
    )
    assert dead.shape == (512,)


def test_top_examples_are_the_strongest_images(synthetic_model):
    images = _noise_images(5, seed=4)
    sae = S.SparseAutoencoder(256, 64, device="cpu", seed=0)
    with torch.no_grad():
        sae.input_scale.fill_(3.0)
        sae.b_enc.fill_(0.5)  # the feature fires in every image: a well-defined ranking
    feature = 5
    top = S.top_examples(sae, synthetic_model, images, "mixed3a", feature, k=3, batch_size=3)
    with torch.no_grad():
        acts = cs.activations(synthetic_model, images, ["mixed3a"])["mixed3a"] / 3.0
        f = sae.encode(acts.permute(0, 2, 3, 1))[..., feature]  # (5, 8, 8)
    per_image = f.flatten(1).max(1).values
    assert top.indices.tolist() == per_image.topk(3).indices.tolist()
    assert torch.allclose(top.scores, per_image.topk(3).values, atol=1e-5)
    for idx, (row, col), patch in zip(top.indices, top.positions, top.patches()):
        assert torch.isclose(f[idx, row, col], per_image[idx], atol=1e-5)
        assert patch.shape[0] == 3 and patch.shape[1] > 1 and patch.shape[2] > 1
    with pytest.raises(IndexError, match="out of range"):
        S.top_examples(sae, synthetic_model, images, "mixed3a", 64)
    many = S.top_examples(sae, synthetic_model, images, "mixed3a", [feature, 9], k=3, batch_size=3)
    assert [t.channel for t in many] == [feature, 9] and torch.equal(many[0].indices, top.indices)
    with pytest.raises(IndexError, match="out of range"):
        S.top_examples(sae, synthetic_model, images, "mixed3a", [1, 64])


def test_sae_feature_maps_are_the_encoded_layer(synthetic_model):
    images = _noise_images(6, seed=5)
    sae = S.SparseAutoencoder(256, 32, device="cpu", seed=0)
    features = S.SAEFeatureModel(sae, synthetic_model, "mixed3a")
    maps = features.feature_maps(images)
    with torch.no_grad():
        acts = cs.activations(synthetic_model, images, ["mixed3a"])["mixed3a"]
    expected = sae.encode(acts.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert maps.shape == (6, 32, 8, 8) and torch.allclose(maps, expected, atol=1e-6)


def test_training_streams_from_an_image_folder_and_resumes(synthetic_model, tmp_path):
    """The chapter 4 folder stream composes: batches of (images, indices, labels), skipped on resume."""
    from PIL import Image

    from circuitscope.core.datasets import ImageFolderStream

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(_noise_images(5, size=48, seed=6)):
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(folder / f"{i}.png")
    stream = ImageFolderStream(folder, size=48, batch_size=2, num_workers=0)
    acts = S.activation_batches(synthetic_model, stream, "mixed3a", seed=1)
    assert len(acts) == 3  # batches, not images
    every = list(acts)
    assert [len(v) for v in every] == [2 * 36, 2 * 36, 36]  # mixed3a is 6x6 at 48 px
    assert all(torch.equal(a, b) for a, b in zip(acts.iter_from(2), every[2:]))
    kwargs = {"lr": 3e-3, "l1_coeff": 0.05, "batch_size": 50, "progress": False}
    one = S.SparseAutoencoder(256, 64, device="cpu", seed=0)
    S.train_sae(one, acts, steps=6, **kwargs)  # 180 vectors per pass: crosses a pass
    path = tmp_path / "folder.pt"
    part = S.SparseAutoencoder(256, 64, device="cpu", seed=0)
    S.train_sae(part, acts, steps=4, checkpoint=path, **kwargs)
    resumed = S.SparseAutoencoder(256, 64, device="cpu", seed=9)
    S.train_sae(resumed, S.activation_batches(synthetic_model, stream, "mixed3a", seed=1), steps=6,
                checkpoint=path, **kwargs)  # fmt: skip
    assert _same_state(one, resumed)


# -- the chapter's image set and figures ---------------------------------------------------
def test_photo_crops_are_seeded_and_in_range():
    a = S.photo_crops(6, size=40, seed=1)
    assert a.shape == (6, 3, 40, 40) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, S.photo_crops(6, size=40, seed=1))
    assert not torch.equal(a, S.photo_crops(6, size=40, seed=2))
    assert len({tuple(x.flatten()[:20].tolist()) for x in a}) == 6  # six different crops


def test_sae_feature_figure_is_stamped(synthetic_model):
    images = S.photo_crops(4, size=64, seed=0)
    sae = S.SparseAutoencoder(256, 16, device="cpu", seed=0)
    with torch.no_grad():
        sae.b_enc.fill_(0.1)  # every feature fires: examples exist
    renders = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fig = plotting.plot_sae_features(synthetic_model, sae, "mixed3a", [3, 7], images, renders=renders, k=3)
    assert "SYNTHETIC WEIGHTS" in " ".join(t.get_text() for t in fig.texts)
    assert len(fig.axes) == 2 * 4
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (32, 32, 3) and torch.allclose(torch.as_tensor(shown), renders[0].permute(1, 2, 0))


def test_dictionary_match_figure_puts_best_matches_on_the_diagonal():
    planted = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0)))[0][:, :4]
    perm = torch.tensor([2, 0, 5, 1, 3, 4])
    learned = torch.cat([planted, torch.randn(6, 2, generator=torch.Generator().manual_seed(1))], 1)[:, perm]
    fig = plotting.plot_dictionary_match(learned, planted)
    shown = torch.as_tensor(fig.axes[0].images[0].get_array())
    assert shown.shape == (4, 6)
    assert torch.allclose(shown.diagonal(), torch.ones(4), atol=1e-5)  # recovered: a bright diagonal
    assert "1.000" in fig.axes[0].get_title()


def test_sae_command_line_trains_and_resumes(synthetic_model, tmp_path, monkeypatch, capsys):

    import numpy as np
    from PIL import Image

    from circuitscope.tools.cli import main

    monkeypatch.setattr("circuitscope.core.models.load_inceptionv1", lambda *a, **k: synthetic_model)
    photos = tmp_path / "photos"
    photos.mkdir()
    gen = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((gen.random((36, 36, 3)) * 255).astype(np.uint8)).save(photos / f"p{i}.png")
    argv = ["sae", "conv2d2", "--images", str(photos), "--checkpoint", str(tmp_path / "sae.pt"), "--steps", "4",
            "--expansion", "2", "--batch-size", "32", "--image-size", "32", "--image-batch-size", "2",
            "--weights", "synthetic", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "step 4" in capsys.readouterr().out
    assert main([*argv[:7], "6", *argv[8:]]) == 0  # resumed to 6 steps
    assert "step 6" in capsys.readouterr().out
