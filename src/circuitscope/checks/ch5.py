"""Checks for chapter 5's exercises ("Closing thoughts and recent work").

One function per exercise. ``check_x(fn)`` runs a few seeded cases (the visible cell of the
notebook); ``check_x(fn, hidden=True)`` runs those and more (nbgrader's hidden tests). Each prints
one success line or raises :class:`~circuitscope.checks.CheckFailed` with expected vs got and a
hint naming the likely mistake.

Nothing here needs InceptionV1's weights: the toy models, the planted sparse features and the
tiny planted "colour" model used to check feature visualization all have known answers, so the
checks pass with the real weights, the synthetic ones or none. References are bound when this
module is imported and every check runs in :func:`~circuitscope.checks._core.pristine` (see
``ch1``). Import this module in the notebook's locked setup cell, before any learner code.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn

from ..device import one_cpu_thread as _one_cpu_thread
from ..optvis.objectives import direction as _ref_direction
from ..sae import SparseAutoencoder as _SAE
from ..sae import mean_max_cosine_similarity as _ref_mmcs
from ..sae import planted_features as _planted_features
from ..superposition import ToyModel as _ToyModel
from ..superposition import feature_norms as _ref_feature_norms
from ..superposition import features_per_dimension as _ref_fpd
from ..superposition import importance_decay as _importance_decay
from ..superposition import importance_weighted_loss as _ref_loss
from . import _core as C

C.protect_package("circuitscope", exclude=("circuitscope.checks", "circuitscope_course"))

__all__ = [
    "PlantedColourModel",
    "check_features_per_dimension",
    "check_layer_vectors",
    "check_sae_forward",
    "check_toy_model",
    "check_train_sae",
    "check_train_toy",
    "check_visualize_feature",
]

_relu = torch.relu


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pair(got, label: str, names: str, n: int = 2) -> tuple:
    if not isinstance(got, (tuple, list)) or len(got) != n:
        C.fail(f"{label} should return {n} values", expected=f"({names})", got=type(got).__name__)
    return tuple(got)


def _scalar(value, what: str) -> float:
    t = C.as_tensor(value, what)
    if t.numel() != 1:
        C.fail(f"{what} should be a single number", expected="a scalar", got=f"shape {tuple(t.shape)}",
               hint="average over the batch and sum over the features: the loss is one number")  # fmt: skip
    return float(t.reshape(()))


# =============================================================================================
# Exercise 1: the toy model and its importance-weighted loss
# =============================================================================================
def _toy_case(m: int, n: int, batch: int, seed: int):
    gen = _gen(seed)
    W = torch.randn(m, n, generator=gen) * 0.8
    b = torch.randn(n, generator=gen) * 0.5  # some negative: the ReLU matters
    x = torch.rand(batch, n, generator=gen) * (torch.rand(batch, n, generator=gen) < 0.5)
    importance = 0.8 ** torch.arange(n, dtype=torch.float32)
    return W, b, x, importance


def _toy_reference(W, b, x, importance):
    out = _relu(x @ W.T @ W + b)
    loss = _ref_loss(x[:, None], out[:, None], importance[None])[0]
    return out, loss


@C.check
def check_toy_model(fn, hidden: bool = False) -> None:
    """Check ``fn(W, b, x, importance) -> (out, loss)`` (exercise 1).

    ``W: (m, n)``, ``b: (n,)``, ``x: (batch, n)``, ``importance: (n,)``; ``out = ReLU(x W^T W +
    b)`` ``(batch, n)``; ``loss`` a scalar: mean over the batch of ``sum_i I_i (x_i - out_i)^2``.
    """
    cases = [(2, 5, 16, 0), (3, 6, 9, 1)]
    if hidden:
        cases += [(1, 2, 30, 2), (5, 20, 64, 3), (4, 4, 7, 4)]
    for m, n, batch, seed in cases:
        W, b, x, importance = _toy_case(m, n, batch, seed)
        label = f"toy_model(W {m}x{n}, b ({n},), x ({batch}, {n}), importance ({n},))"
        exp_out, exp_loss = _toy_reference(W, b, x, importance)
        got = C.call(fn, W.clone(), b.clone(), x.clone(), importance.clone(), what=label)
        out, loss = _pair(got, label, "out, loss")
        out = C.as_tensor(out, f"{label}: out")
        C.resync()
        hint = "out = ReLU(W^T W x + b): for a batch of rows x, that is relu(x @ W.T @ W + b)"
        if C.close(out, x @ W.T @ W + b):
            hint = "did you forget the ReLU? out = ReLU(W^T W x + b) is never negative"
        elif C.close(out, _relu(x @ W.T @ W)):
            hint = "did you forget the bias b?"
        elif C.close(out, _relu(x @ W.T @ W) + b):
            hint = "add the bias BEFORE the ReLU: relu(x @ W.T @ W + b)"
        C.expect_close(out, exp_out, f"{label}: out", rtol=1e-4, atol=1e-5, hint=hint)
        value = _scalar(loss, f"{label}: loss")
        C.resync()
        if not math.isclose(value, float(exp_loss), rel_tol=1e-4, abs_tol=1e-6):
            err = (x - exp_out) ** 2
            variants = [  # (the loss a likely mistake gives, its hint)
                (err.sum(-1).mean(), "weight each feature's squared error by its importance I_i"),
                ((importance * err).mean(),
                 "SUM over the features (weighted by importance), then average over the batch"),
                (((importance * (x - exp_out)) ** 2).sum(-1).mean(),
                 "I_i multiplies the squared error, it is not inside the square"),
                ((importance * err).sum(), "average over the batch (mean over dim 0), do not sum it"),
            ]  # fmt: skip
            hint = next((h for v, h in variants if math.isclose(value, float(v), rel_tol=1e-4, abs_tol=1e-6)),
                        "loss = mean over the batch of sum_i I_i (x_i - out_i)^2")  # fmt: skip
            C.fail(f"{label}: wrong loss", expected=f"{float(exp_loss):.6g}", got=f"{value:.6g}", hint=hint)
    C.done("toy_model", len(cases), hidden)


# =============================================================================================
# Exercise 2: features per dimension
# =============================================================================================
def _fpd_cases(hidden: bool):
    angles = torch.arange(5) * 2 * math.pi / 5
    cases = [
        ("an orthogonal pair, a third feature dropped (2x3)", torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])),
        ("a pentagon of 5 unit features in 2 dimensions", torch.stack([angles.cos(), angles.sin()])),
        ("random W (3x7), norms far from 1", torch.randn(3, 7, generator=_gen(20)) * 0.7),
    ]
    if hidden:
        cases += [
            ("an antipodal pair in 1 dimension", torch.tensor([[1.0, -1.0]])),
            ("random W (10x40)", torch.randn(10, 40, generator=_gen(21)) * 0.3),
            ("a pentagon of length-1.3 vectors", 1.3 * torch.stack([angles.cos(), angles.sin()])),
            ("nothing represented (4x6 zeros)", torch.zeros(4, 6)),
        ]
    return cases


@C.check
def check_features_per_dimension(fn, hidden: bool = False) -> None:
    """Check ``fn(W) -> float`` (exercise 2): ``||W||_F^2 / m`` for ``W: (m, n)``."""
    cases = _fpd_cases(hidden)
    for what, W in cases:
        label = f"features_per_dimension({what})"
        expected = float(_ref_fpd(W))
        got = _scalar(C.call(fn, W.clone(), what=label), label)
        C.resync()
        if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6):
            continue
        m, n = W.shape
        norms = _ref_feature_norms(W)
        frob = float(W.pow(2).sum())
        hint = "sum the squared lengths of the feature vectors (||W||_F^2), divide by m, the hidden dimensions"
        if frob > 0 and math.isclose(got, m / frob, rel_tol=1e-4):
            hint = "inverted: m / ||W||_F^2 is the article's dimensions PER FEATURE; you want features per dimension"
        elif math.isclose(got, frob / n, rel_tol=1e-4, abs_tol=1e-9):
            hint = "divide by m, the number of hidden DIMENSIONS (W.shape[0]), not by the number of features"
        elif math.isclose(got, float(norms.sum()) / m, rel_tol=1e-4, abs_tol=1e-9):
            hint = "square the norms: ||W||_F^2 = sum_i ||W_i||^2"
        elif math.isclose(got, float((norms > 0.5).sum()) / m, rel_tol=1e-4, abs_tol=1e-9):
            hint = "do not count features above a threshold: sum their squared norms (a half-length vector counts 1/4)"
        C.fail(f"{label} is wrong", expected=f"{expected:.6g}", got=f"{got:.6g}", hint=hint)
    C.done("features_per_dimension", len(cases), hidden)


# =============================================================================================
# Exercise 3: training toy models: dense features, then sparse ones
# =============================================================================================
TOY_SPARSITIES = (0.0, 0.9)  # dense: no superposition; sparse: superposition


def _loss_per_step(losses, label: str, steps: int) -> list[float]:
    """A training function's return value as floats, one per step, or a clear failure."""
    C.resync()
    try:
        losses = [float(v) for v in losses]
    except (TypeError, ValueError, RuntimeError):
        C.fail(f"{label} should return the loss of every step", expected="a list of floats",
               got=type(losses).__name__)  # fmt: skip
    C.resync()
    if len(losses) != steps:
        C.fail(f"{label}: one loss per step", expected=steps, got=len(losses),
               hint="append loss.item() once per step")  # fmt: skip
    return losses


@C.check
def check_train_toy(fn, hidden: bool = False) -> None:
    """Check ``fn(model, steps, batch_size, lr, seed) -> list of floats`` (exercise 3).

    Trains a seeded 5-feature, 2-dimension :class:`~circuitscope.superposition.ToyModel` with a
    dense instance (S = 0) and a sparse one (S = 0.9) and checks the known regimes: about one
    feature per dimension when dense, clearly more than one when sparse; the loss falls.
    """
    seeds = [0] + ([1] if hidden else [])
    steps, batch_size, lr = 300, 256, 2e-2
    for seed in seeds:
        model = _ToyModel(5, 2, sparsity=list(TOY_SPARSITIES), importance=_importance_decay(5),
                          device="cpu", seed=seed)  # fmt: skip
        W0 = model.W.detach().clone()
        label = f"train_toy(ToyModel(5, 2, sparsity={list(TOY_SPARSITIES)}, seed={seed}), steps={steps})"
        with _one_cpu_thread():
            losses = C.call(fn, model, steps, batch_size, lr, seed, what=label)
        losses = _loss_per_step(losses, label, steps)
        W = C.plain_tensor(model.W)
        if C.close(W, W0, rtol=0, atol=1e-7):
            C.fail(f"{label}: the weights did not change", expected="W trained", got="W as initialised",
                   hint="did you forget optimizer.step()? (or create the optimizer on other parameters)")  # fmt: skip
        head, tail = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
        if not (math.isfinite(tail) and tail < 0.7 * head):
            hint = "each step: a fresh batch, loss, zero_grad, backward, step"
            if tail > head:
                hint = "the loss went UP: minimise it (loss.backward() on the loss itself, not on -loss)"
            C.fail(f"{label}: the loss did not fall", expected=f"last 30 steps < 0.7 x first 30 ({head:.4g})",
                   got=f"{tail:.4g}", hint=hint)  # fmt: skip
        fpd = _ref_fpd(model.W).tolist()
        dense, sparse = fpd
        hint = (
            "train on fresh batches from model.generate_batch(batch_size, generator) with the "
            "importance-weighted loss, zeroing the gradients every step"
        )
        if not 0.8 <= dense <= 1.25:
            C.fail(f"{label}: the dense instance (S = 0) should store about 1 feature per dimension",
                   expected="0.8 .. 1.25", got=f"{dense:.3f}", hint=hint)  # fmt: skip
        if sparse < 1.6:
            C.fail(f"{label}: the sparse instance (S = 0.9) should be in superposition",
                   expected="more than 1.6 features per dimension", got=f"{sparse:.3f}", hint=hint)  # fmt: skip
    C.done("train_toy", len(seeds), hidden)


# =============================================================================================
# Exercise 4: the sparse autoencoder's forward pass and loss
# =============================================================================================
def _sae_case(d_in: int, d_hidden: int, batch: int, seed: int):
    gen = _gen(seed)
    W_dec = torch.randn(d_in, d_hidden, generator=gen)
    W_dec /= W_dec.norm(dim=0, keepdim=True)
    W_enc = torch.randn(d_hidden, d_in, generator=gen) * 0.7  # untied: not W_dec^T
    b_enc = torch.randn(d_hidden, generator=gen) * 0.3
    b_dec = torch.randn(d_in, generator=gen) * 0.5
    x = torch.randn(batch, d_in, generator=gen)
    return x, W_enc, b_enc, W_dec, b_dec


def _sae_reference(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f = _relu((x - b_dec) @ W_enc.T + b_enc)
    x_hat = f @ W_dec.T + b_dec
    loss = (x - x_hat).pow(2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    return x_hat, f, loss


@C.check
def check_sae_forward(fn, hidden: bool = False) -> None:
    """Check ``fn(x, W_enc, b_enc, W_dec, b_dec, l1_coeff) -> (x_hat, f, loss)`` (exercise 4)."""
    cases = [(6, 12, 10, 0.1, 0), (8, 32, 5, 0.5, 1)]
    if hidden:
        cases += [(3, 3, 40, 0.0, 2), (16, 64, 1, 1.0, 3), (10, 50, 33, 0.03, 4)]
    for d_in, d_hidden, batch, l1, seed in cases:
        x, W_enc, b_enc, W_dec, b_dec = _sae_case(d_in, d_hidden, batch, seed)
        label = f"sae_forward(x ({batch}, {d_in}), W_enc ({d_hidden}, {d_in}), ..., l1_coeff={l1})"
        exp_xhat, exp_f, exp_loss = _sae_reference(x, W_enc, b_enc, W_dec, b_dec, l1)
        args = [t.clone() for t in (x, W_enc, b_enc, W_dec, b_dec)]
        got = C.call(fn, *args, l1, what=label)
        x_hat, f, loss = _pair(got, label, "x_hat, f, loss", 3)
        f = C.as_tensor(f, f"{label}: f")
        C.resync()
        hint = "f = ReLU(W_enc (x - b_dec) + b_enc): for rows, relu((x - b_dec) @ W_enc.T + b_enc)"
        if C.close(f, (x - b_dec) @ W_enc.T + b_enc):
            hint = "did you forget the ReLU? features are never negative"
        elif C.close(f, _relu(x @ W_enc.T + b_enc)):
            hint = "subtract the decoder bias before encoding: x - b_dec"
        elif C.close(f, _relu((x - b_dec) @ W_dec + b_enc)):
            hint = "that is a TIED encoder (W_dec^T); this SAE is untied: use W_enc"
        C.expect_close(f, exp_f, f"{label}: f", rtol=1e-4, atol=1e-5, hint=hint)
        x_hat = C.as_tensor(x_hat, f"{label}: x_hat")
        C.resync()
        hint = "x_hat = W_dec f + b_dec: for rows, f @ W_dec.T + b_dec"
        if C.close(x_hat, exp_f @ W_dec.T):
            hint = "did you forget the decoder bias b_dec?"
        C.expect_close(x_hat, exp_xhat, f"{label}: x_hat", rtol=1e-4, atol=1e-5, hint=hint)
        value = _scalar(loss, f"{label}: loss")
        C.resync()
        if not math.isclose(value, float(exp_loss), rel_tol=1e-4, abs_tol=1e-6):
            mse_sum = (x - exp_xhat).pow(2).sum(-1).mean()
            mse_mean = (x - exp_xhat).pow(2).mean()
            l1_sum, l1_mean = exp_f.abs().sum(-1).mean(), exp_f.abs().mean()
            hint = "loss = mean over the batch of ||x - x_hat||^2 (summed over d_in) + l1_coeff * ||f||_1"
            if math.isclose(value, float(mse_mean + l1 * l1_sum), rel_tol=1e-4):
                hint = "the squared error is SUMMED over d_in (then averaged over the batch); F.mse_loss averages it"
            elif math.isclose(value, float(mse_sum + l1 * l1_mean), rel_tol=1e-4):
                hint = "the L1 norm is SUMMED over the features (then averaged over the batch)"
            elif math.isclose(value, float(mse_mean + l1 * l1_mean), rel_tol=1e-4):
                hint = "sum over the vector's entries, average over the batch, in both terms"
            elif math.isclose(value, float(mse_sum), rel_tol=1e-4):
                hint = "did you forget the L1 penalty l1_coeff * ||f||_1?"
            C.fail(f"{label}: wrong loss", expected=f"{float(exp_loss):.6g}", got=f"{value:.6g}", hint=hint)
    C.done("sae_forward", len(cases), hidden)


# =============================================================================================
# Exercise 5: training an SAE that recovers planted features
# =============================================================================================
SAE_PLANTED = {"d": 16, "n_features": 24, "p_active": 0.06, "noise": 0.01, "n_samples": 4000}
SAE_TRAINING = {"steps": 400, "lr": 5e-3, "l1_coeff": 0.2, "batch_size": 256}


@C.check
def check_train_sae(fn, hidden: bool = False) -> None:
    """Check ``fn(sae, data, steps, lr, l1_coeff, batch_size, seed) -> list of floats`` (exercise 5).

    On planted data (24 known unit directions in 16 dimensions, a few active per vector): the
    decoder columns end at unit norm, the loss falls, and the learned dictionary recovers the
    planted one (mean max cosine similarity >= 0.9).
    """
    seeds = [0] + ([1] if hidden else [])
    p = SAE_PLANTED
    for seed in seeds:
        planted = _planted_features(p["n_samples"], p["d"], p["n_features"], p["p_active"], p["noise"], seed)
        sae = _SAE(p["d"], 2 * p["n_features"], device="cpu", seed=seed)
        t = SAE_TRAINING
        label = (f"train_sae(SAE {p['d']} -> {2 * p['n_features']}, planted data {tuple(planted.data.shape)}, "
                 f"steps={t['steps']}, seed={seed})")  # fmt: skip
        with _one_cpu_thread():
            losses = C.call(fn, sae, planted.data.clone(), t["steps"], t["lr"], t["l1_coeff"], t["batch_size"],
                            seed, what=label)  # fmt: skip
        losses = _loss_per_step(losses, label, t["steps"])
        norms = C.plain_tensor(sae.W_dec).norm(dim=0)
        if not C.close(norms, torch.ones_like(norms), rtol=0, atol=1e-4):
            C.fail(f"{label}: the decoder columns should have unit norm", expected="every norm 1",
                   got=f"norms from {float(norms.min()):.4f} to {float(norms.max()):.4f}",
                   hint="after every optimizer step, divide each column of W_dec by its norm "
                   "(inside torch.no_grad()): otherwise the L1 penalty is dodged by shrinking f and growing W_dec")  # fmt: skip
        head, tail = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
        if not (math.isfinite(tail) and tail < 0.8 * head):
            C.fail(f"{label}: the loss did not fall", expected=f"last 20 steps < 0.8 x first 20 ({head:.4g})",
                   got=f"{tail:.4g}", hint="each step: a random batch, loss, zero_grad, backward, step, renormalise")  # fmt: skip
        score = _ref_mmcs(sae.W_dec, planted.dictionary)
        if score < 0.9:
            C.fail(f"{label}: the planted features were not recovered",
                   expected="mean max cosine similarity >= 0.9", got=f"{score:.3f}",
                   hint="use the L1 penalty (l1_coeff) in the loss and sample a fresh random batch each step")  # fmt: skip
    C.done("train_sae", len(seeds), hidden)


# =============================================================================================
# Exercise 6: activations to vectors
# =============================================================================================
@C.check
def check_layer_vectors(fn, hidden: bool = False) -> None:
    """Check ``fn(acts) -> (N*H*W, C)`` (exercise 6): one row per image and position, in the
    order image, row, column; row ``(n * H + y) * W + x`` is ``acts[n, :, y, x]``."""
    shapes = [(2, 5, 3, 4), (1, 7, 2, 2)]
    if hidden:
        shapes += [(3, 16, 5, 6), (4, 3, 1, 1), (2, 256, 7, 9)]
    for c, shape in enumerate(shapes):
        acts = torch.randn(*shape, generator=_gen(60 + c))
        n, ch, h, w = shape
        label = f"layer_vectors(acts of shape {shape})"
        expected = acts.permute(0, 2, 3, 1).reshape(-1, ch)
        got = C.as_tensor(C.call(fn, acts.clone(), what=label), label)
        C.resync()
        hint = "move the channels last (permute(0, 2, 3, 1)), then reshape(-1, C)"
        if tuple(got.shape) == (ch, n * h * w):
            hint = "one ROW per position: the result is (N*H*W, C), not (C, N*H*W)"
        elif C.close(got, acts.reshape(-1, ch)):
            hint = "reshape alone mixes channels and positions: move C last first, acts.permute(0, 2, 3, 1)"
        elif C.close(got, acts.permute(0, 3, 2, 1).reshape(-1, ch)):
            hint = "rows go image, then ROW (y), then column (x): permute(0, 2, 3, 1), not (0, 3, 2, 1)"
        C.expect_close(got, expected, label, rtol=0, atol=0, hint=hint)
    C.done("layer_vectors", len(shapes), hidden)


# =============================================================================================
# Exercise 7: visualizing an SAE feature with the direction objective
# =============================================================================================
class PlantedColourModel(nn.Module):
    """A one-layer model whose only layer, ``"colour"``, is linear in the pixel colours.

    ``colour = A (rgb - 0.5)`` at every pixel, ``A: (C, 3)`` fixed: the direction objective for
    ``v`` is then ``(A^T v) . (mean colour - 0.5)``, so the colour a good visualization drifts
    to is known (towards ``sign(A^T v)``). It has what :func:`circuitscope.optvis.render` needs:
    ``layer_names``, ``named_forward`` and ``device``.
    """

    layer_names: ClassVar[list[str]] = ["colour"]

    def __init__(self, channels: int = 4, seed: int = 0) -> None:
        super().__init__()
        A = torch.randn(channels, 3, generator=_gen(seed))
        self.conv = nn.Conv2d(3, channels, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(A[:, :, None, None])
        self.layer_channels = {"colour": channels}
        self.weights_state = "planted"  # built by hand with a known answer, not InceptionV1: figures say so
        self.is_synthetic = True

    @property
    def A(self) -> torch.Tensor:
        return self.conv.weight.detach()[:, :, 0, 0]

    @property
    def device(self) -> torch.device:
        return self.conv.weight.device

    def named_forward(self, images: torch.Tensor):
        yield "colour", self(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.conv(images - 0.5)


def _planted_sae(d_in: int, d_hidden: int, seed: int) -> _SAE:
    sae = _SAE(d_in, d_hidden, device="cpu", seed=seed)
    with torch.no_grad():  # an encoder far from the decoder's transpose, as after training
        sae.W_enc.copy_(torch.randn(d_hidden, d_in, generator=_gen(seed + 100)))
    return sae


@C.check
def check_visualize_feature(fn, hidden: bool = False) -> None:
    """Check ``fn(model, sae, layer, feature, size, steps, seed) -> (direction, image)`` (exercise 7).

    On :class:`PlantedColourModel`: ``direction`` is the decoder column ``W_dec[:, feature]``
    (unit norm); ``image`` is ``(1, 3, size, size)`` in [0, 1] and raises the direction objective
    clearly above a grey image's (where it is 0).
    """
    cases = [(0, 3, 32, 24)]
    if hidden:
        cases += [(1, 5, 24, 24)]
    for seed, feature, size, steps in cases:
        model = PlantedColourModel(4, seed=seed)
        sae = _planted_sae(4, 6, seed)
        label = f"visualize_feature(planted colour model, SAE 4 -> 6, 'colour', feature={feature}, size={size})"
        with _one_cpu_thread():
            got = C.call(fn, model, sae, "colour", feature, size, steps, seed, what=label)
        vec, image = _pair(got, label, "direction, image")
        vec = C.as_tensor(vec, f"{label}: direction")
        C.resync()
        expected = sae.W_dec[:, feature].detach()
        hint = "the feature's direction is its decoder column: sae.W_dec[:, feature]"
        if C.close(vec.flatten(), sae.W_enc[feature].detach()):
            hint = "that is the ENCODER row; the feature's direction in activation space is W_dec[:, feature]"
        C.expect_close(vec.flatten(), expected, f"{label}: direction", rtol=1e-5, atol=1e-6, hint=hint)
        image = C.as_tensor(image, f"{label}: image")
        C.resync()
        C.expect_shape(image, (1, 3, size, size), f"{label}: image",
                       hint="return render(...)'s images: (1, 3, size, size)")  # fmt: skip
        if not (bool(torch.isfinite(image).all()) and float(image.min()) >= 0 and float(image.max()) <= 1):
            C.fail(f"{label}: image values out of range", expected="in [0, 1]",
                   got=f"{float(image.min()):.3g} .. {float(image.max()):.3g}",
                   hint="return the images render() gives (already in [0, 1])")  # fmt: skip
        with torch.no_grad():
            value = float(_ref_direction("colour", expected)({"colour": model(image.float())}))
        u = model.A.T @ expected  # the colour direction the objective rewards
        best = 0.5 * float(u.abs().sum())  # every pixel saturated in the right colour
        # Lucid's settings move a Fourier image slowly: after 24 steps a correct render reaches
        # about 8% of the saturated value, the encoder row's render goes negative.
        if value < 0.03 * best:
            hint = "render the DIRECTION objective for the decoder column: direction(layer, W_dec[:, feature])"
            C.fail(f"{label}: the image does not excite the feature",
                   expected=f"direction objective > {0.03 * best:.3g} (a grey image gives 0)",
                   got=f"{value:.3g}", hint=hint)  # fmt: skip
    C.done("visualize_feature", len(cases), hidden)
