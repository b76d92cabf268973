"""Checks for chapter 5's exercises ("Closing thoughts and recent work").

Each check is an :class:`~circuitscope.checks.runner.Exercise` run by :mod:`.runner`: seeded cases
as data (tensors and numbers; the toy model, the sparse autoencoder and the planted colour model as
:class:`~.runner.Recipe` s), the reference answer or a property, and a table of likely mistakes
with their hints. ``check_x(fn)`` runs the visible cases, ``check_x(fn, hidden=True)`` those and
more. Nothing here needs InceptionV1's weights: every case has a known answer.

Every random value of a hidden case comes from a seed passed through :func:`~.runner.hidden_seed`:
the public number here, another one drawn from the grader's private key when it grades.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar

import torch
from torch import nn

from ..core.hooks import replaced
from ..core.models.named import NamedModel
from ..methods.optvis.objectives import direction
from ..methods.sae import SparseAutoencoder, mean_max_cosine_similarity, planted_features
from ..methods.sae_eval import evaluate_sae, identity_sae, spliced_metrics, zero_sae
from ..methods.superposition import ToyModel, feature_norms, importance_decay, importance_weighted_loss
from ..methods.superposition import features_per_dimension as ref_features_per_dimension
from .recipes import generator as _gen
from .runner import (
    Case,
    Exercise,
    Mistake,
    Recipe,
    as_tensor,
    build,
    compare,
    describe,
    fail,
    hidden_seed,
    same,
)

__all__ = [
    "PlantedClassifier",
    "PlantedColourModel",
    "check_evaluate_sae",
    "check_features_per_dimension",
    "check_layer_vectors",
    "check_sae_forward",
    "check_spliced_metrics",
    "check_toy_model",
    "check_train_sae",
    "check_train_toy",
    "check_visualize_feature",
    "eval_sae",
    "forward_hooks_left",
    "planted_sae",
    "sae_decoder",
    "seeded_toy_model",
    "splice_sae",
    "toy_parameters",
]

_relu = torch.relu
SCALAR_HINT = "average over the batch and sum over the features: the loss is one number"


# =============================================================================================
# Results made of several parts: (out, loss), (x_hat, f, loss), (direction, image)
# =============================================================================================
def _tuple(got, label: str, names: tuple[str, ...]) -> tuple:
    """``got`` as a tuple of ``len(names)`` parts, or a failure saying what it was."""
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        fail(f"{label} should return {len(names)} values", expected=f"({', '.join(names)})",
             got=describe(got))  # fmt: skip
    return tuple(got)


def _parts(*names: str, order: tuple[int, ...] | None = None):
    """A property: the result is the tuple ``names``, each part matching ``case.data["expect"]``
    (compared in ``order``: the part a mistake starts from first)."""

    def verify(case: Case, got) -> None:
        parts = _tuple(got, case.label, names)
        for i in order or range(len(names)):
            compare(parts[i], case.data["expect"][i], f"{case.label}: {names[i]}", case.rtol, case.atol)

    return verify


def _part(got, i: int):
    return got[i] if isinstance(got, (tuple, list)) and len(got) > i else None


def _wrong_part(i: int):
    """``Mistake.when``: part ``i`` of a tuple result does not match the reference."""

    def when(case: Case, got) -> bool:
        expect = case.data["expect"]
        return isinstance(got, (tuple, list)) and len(got) == len(expect) and not same(
            got[i], expect[i], case.rtol, case.atol)  # fmt: skip

    return when


def _part_is(i: int, variant):
    """``Mistake.when``: part ``i`` is wrong and equals ``variant(case)``, what a mistaken line gives."""

    def when(case: Case, got) -> bool:
        return _wrong_part(i)(case, got) and same(got[i], variant(case), case.rtol, case.atol)

    return when


def _not_scalar(i: int):
    """``Mistake.when``: part ``i`` is a tensor of more than one number."""
    return lambda case, got: isinstance(_part(got, i), torch.Tensor) and _part(got, i).numel() != 1


# =============================================================================================
# Exercise 1: the toy model and its importance-weighted loss
# =============================================================================================
def _toy_inputs(m: int, n: int, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    """``W (m, n)``, ``b (n,)`` (some negative: the ReLU matters), ``x (batch, n)`` sparse in
    [0, 1], ``importance (n,)``."""
    gen = _gen(seed)
    W = torch.randn(m, n, generator=gen) * 0.8
    b = torch.randn(n, generator=gen) * 0.5
    x = torch.rand(batch, n, generator=gen) * (torch.rand(batch, n, generator=gen) < 0.5)
    importance = 0.8 ** torch.arange(n, dtype=torch.float32)
    return W, b, x, importance


def _toy_cases(hidden: bool):
    sizes = [(2, 5, 16, 0, None), (3, 6, 9, 1, None)]  # (m, n, batch, seed, about: hidden cases only)
    sizes += [(1, 2, 30, hidden_seed(2), "a single hidden dimension"),
              (5, 20, 64, hidden_seed(3), "many features in a larger model, with a larger batch"),
              (4, 4, 7, hidden_seed(4), "as many hidden dimensions as features (a square W)")] if hidden else []  # fmt: skip
    for m, n, batch, seed, about in sizes:
        W, b, x, importance = _toy_inputs(m, n, batch, seed)
        out = _relu(x @ W.T @ W + b)
        loss = importance_weighted_loss(x[:, None], out[:, None], importance[None])[0]
        yield Case(f"toy_model(W {m}x{n}, b ({n},), x ({batch}, {n}), importance ({n},))",
                   (W, b, x, importance), verify=_parts("out", "loss"), data={"expect": (out, float(loss))},
                   hint="loss = mean over the batch of sum_i I_i (x_i - out_i)^2", about=about)  # fmt: skip


def _toy_out(relu: bool = True, bias: str | None = "before"):
    """What a mistaken forward pass gives: ``(batch, n)`` (the bias before or after the ReLU, or none)."""

    def out(case: Case) -> torch.Tensor:
        W, b, x, _ = case.args
        pre = x @ W.T @ W + (b if bias == "before" else 0)
        return (_relu(pre) if relu else pre) + (b if bias == "after" else 0)

    return out


def _toy_loss(formula):
    """What a mistaken loss ``formula(x, out, importance)`` gives on the reference ``out``."""
    return lambda case: float(formula(case.args[2], case.data["expect"][0], case.args[3]))


_TOY_LOSS_MISTAKES = [  # (hint, the loss the mistake computes)
    ("weight each feature's squared error by its importance I_i",
     lambda x, out, imp: ((x - out) ** 2).sum(-1).mean()),
    ("SUM over the features (weighted by importance), then average over the batch",
     lambda x, out, imp: (imp * (x - out) ** 2).mean()),
    ("I_i multiplies the squared error, it is not inside the square",
     lambda x, out, imp: ((imp * (x - out)) ** 2).sum(-1).mean()),
    ("average over the batch (mean over dim 0), do not sum it",
     lambda x, out, imp: (imp * (x - out) ** 2).sum()),
]  # fmt: skip

check_toy_model = Exercise(
    "check_toy_model", "toy_model", _toy_cases,
    doc="""Check ``fn(W, b, x, importance) -> (out, loss)`` (exercise 1).

    ``W: (m, n)``, ``b: (n,)``, ``x: (batch, n)``, ``importance: (n,)``; ``out = ReLU(x W^T W +
    b)`` ``(batch, n)``; ``loss`` a scalar: mean over the batch of ``sum_i I_i (x_i - out_i)^2``.
    """,
    mistakes=[
        Mistake("did you forget the ReLU? out = ReLU(W^T W x + b) is never negative",
                when=_part_is(0, _toy_out(relu=False))),
        Mistake("did you forget the bias b?", when=_part_is(0, _toy_out(bias=None))),
        Mistake("add the bias BEFORE the ReLU: relu(x @ W.T @ W + b)",
                when=_part_is(0, _toy_out(bias="after"))),
        Mistake("out = ReLU(W^T W x + b): for a batch of rows x, that is relu(x @ W.T @ W + b)",
                when=_wrong_part(0)),
        Mistake(SCALAR_HINT, when=_not_scalar(1)),
        *(Mistake(hint, when=_part_is(1, _toy_loss(formula))) for hint, formula in _TOY_LOSS_MISTAKES),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 2: features per dimension
# =============================================================================================
def _fpd_cases(hidden: bool):
    angles = torch.arange(5) * 2 * math.pi / 5
    pair = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    cases = [
        ("an orthogonal pair, a third feature dropped (2x3)", pair),
        ("a pentagon of 5 unit features in 2 dimensions", torch.stack([angles.cos(), angles.sin()])),
        ("random W (3x7), norms far from 1", torch.randn(3, 7, generator=_gen(20)) * 0.7),
    ]
    if hidden:
        cases += [
            ("an antipodal pair in 1 dimension", torch.tensor([[1.0, -1.0]])),
            ("random W (10x40)", torch.randn(10, 40, generator=_gen(hidden_seed(21))) * 0.3),
            ("a pentagon of length-1.3 vectors", 1.3 * torch.stack([angles.cos(), angles.sin()])),
            ("nothing represented (4x6 zeros)", torch.zeros(4, 6)),
        ]
    # What each hidden case tests, in words, in the order of the hidden cases.
    abouts = ["an antipodal pair of features in a single dimension", "a larger random W",
              "a pentagon of features longer than unit length", "a W of zeros (nothing represented)"]
    for i, (what, W) in enumerate(cases):
        yield Case(f"features_per_dimension({what})", (W,), expect=float(ref_features_per_dimension(W)),
                   rtol=1e-4, atol=1e-6,
                   hint="sum the squared lengths of the feature vectors (||W||_F^2), "
                   "divide by m, the hidden dimensions", about=abouts[i - 3] if i >= 3 else None)  # fmt: skip


def _fpd_variant(formula):
    """What a mistaken ``formula(W, m, n, ||W||_F^2)`` gives (``None`` where it is undefined)."""

    def result(case: Case):
        (W,) = case.args
        return formula(W, W.shape[0], W.shape[1], float(W.pow(2).sum()))

    return result


check_features_per_dimension = Exercise(
    "check_features_per_dimension", "features_per_dimension", _fpd_cases,
    forbid=("circuitscope.methods.superposition:features_per_dimension",),
    doc="""Check ``fn(W) -> float`` (exercise 2): ``||W||_F^2 / m`` for ``W: (m, n)``.""",
    mistakes=[
        Mistake("inverted: m / ||W||_F^2 is the article's dimensions PER FEATURE; "
                "you want features per dimension",
                result=_fpd_variant(lambda W, m, n, frob: m / frob if frob > 0 else None)),
        Mistake("divide by m, the number of hidden DIMENSIONS (W.shape[0]), not by the number of features",
                result=_fpd_variant(lambda W, m, n, frob: frob / n)),
        Mistake("square the norms: ||W||_F^2 = sum_i ||W_i||^2",
                result=_fpd_variant(lambda W, m, n, frob: float(feature_norms(W).sum()) / m)),
        Mistake("do not count features above a threshold: "
                "sum their squared norms (a half-length vector counts 1/4)",
                result=_fpd_variant(lambda W, m, n, frob: float((feature_norms(W) > 0.5).sum()) / m)),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 3: training toy models: dense features, then sparse ones
# =============================================================================================
TOY_SPARSITIES = (0.0, 0.9)  # dense: no superposition; sparse: superposition
TOY_TRAINING = {"steps": 300, "batch_size": 256, "lr": 2e-2}
LOSS_UP_HINT = "the loss went UP: minimise it (loss.backward() on the loss itself, not on -loss)"
NO_STEP_HINT = "did you forget optimizer.step()? (or create the optimizer on other parameters)"


def seeded_toy_model(n_features: int = 5, n_hidden: int = 2, sparsity=TOY_SPARSITIES,
                     seed: int = 0) -> ToyModel:  # fmt: skip
    """A seeded :class:`~circuitscope.methods.superposition.ToyModel` on the CPU, one instance per
    sparsity, importances ``0.9 ** i``: ``W (len(sparsity), n_hidden, n_features)``."""
    return ToyModel(n_features, n_hidden, sparsity=list(sparsity), importance=importance_decay(n_features),
                    device="cpu", seed=seed)  # fmt: skip


def toy_parameters(model: ToyModel, *_) -> dict[str, torch.Tensor]:
    """The model's ``W`` and ``b`` after the learner's loop (an observation of the kernel).

    It shows the weights as the kernel reports them; a kernel whose library was rewritten
    could report other weights than it trained."""
    return {"W": model.W.detach(), "b": model.b.detach()}


def _loss_per_step(losses, label: str, steps: int) -> list[float]:
    """A training function's return value as floats, one per step, or a clear failure."""
    try:
        losses = [float(v) for v in losses]
    except (TypeError, ValueError, RuntimeError):
        fail(f"{label} should return the loss of every step", expected="a list of floats",
             got=describe(losses))  # fmt: skip
    if len(losses) != steps:
        fail(f"{label}: one loss per step", expected=steps, got=len(losses),
             hint="append loss.item() once per step")  # fmt: skip
    return losses


def _observed_weights(case: Case) -> torch.Tensor:
    """The trained ``W`` the kernel reported, checked to have moved from its initial value."""
    W = case.observed.get("W") if isinstance(case.observed, dict) else None
    if not isinstance(W, torch.Tensor):
        fail(f"{case.label}: the model's weights could not be read after training",
             got=describe(case.observed))  # fmt: skip
    if same(W, build(case.args[0]).W.detach(), 0.0, 1e-7):
        fail(f"{case.label}: the weights did not change", expected="W trained", got="W as initialised",
             hint=NO_STEP_HINT)  # fmt: skip
    return W


def _ref_train_toy(case: Case, **variant) -> list[float]:
    """The reference loop's losses on ``case`` (each keyword of :func:`_train_toy` makes one
    likely mistake of it)."""
    return _train_toy(*build(case.args), **variant)


def _train_toy(model: ToyModel, steps: int, batch_size: int, lr: float, seed: int, fresh: bool = True,
               zero_grad: bool = True, mean: bool = False, optimizer: str = "adam",
               maximize: bool = False) -> list[float]:  # fmt: skip
    """The reference loop: trains ``model`` in place, returns its losses."""
    gen = _gen(seed)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr, maximize=maximize)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses, x = [], None
    for _ in range(steps):
        x = model.generate_batch(batch_size, gen) if fresh or x is None else x
        loss = model.loss(x) / (model.n_instances if mean else 1)
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _trajectory_is(**variant):
    """``Mistake.when``: the losses are those of the reference loop with ``variant``."""

    def when(case: Case, got) -> bool:
        try:
            losses = [float(v) for v in got]
        except (TypeError, ValueError, RuntimeError):
            return False
        return same(losses, _ref_train_toy(case, **variant), case.rtol, case.atol)

    return when


def _first_loss_wrong(case: Case, got) -> bool:
    """``Mistake.when``: one loss per step, but the first (the untrained model's) is wrong."""
    try:
        first, n = float(got[0]), len(got)
    except (TypeError, ValueError, RuntimeError, IndexError):
        return False
    expect = case.data["losses"]
    return n == len(expect) and not math.isclose(first, expect[0], rel_tol=case.rtol, abs_tol=case.atol)


_TRAJECTORY_MISTAKES = (
    Mistake("SUM the per-instance losses over the instances (model.loss(x)), do not average them",
            when=_trajectory_is(mean=True)),
    Mistake("the first loss should be the untrained model's model.loss(x) on the first batch of "
            "model.generate_batch(batch_size, generator), with generator = torch.Generator().manual_seed(seed)",
            when=_first_loss_wrong),
    Mistake(LOSS_UP_HINT, when=_trajectory_is(maximize=True)),
    Mistake("draw a FRESH batch every step: model.generate_batch(batch_size, generator) inside the loop",
            when=_trajectory_is(fresh=False)),
    Mistake("zero the gradients every step (optimizer.zero_grad()): otherwise they accumulate",
            when=_trajectory_is(zero_grad=False)),
    Mistake("use torch.optim.Adam(model.parameters(), lr=lr), as the exercise says",
            when=_trajectory_is(optimizer="sgd")),
)  # fmt: skip


def _verify_trajectory(case: Case, got) -> None:
    """A few steps, compared step by step with the reference loop (the spec fixes every draw)."""
    losses = _loss_per_step(got, case.label, case.args[1])
    _observed_weights(case)
    compare(losses, case.data["losses"], f"{case.label}: the losses", case.rtol, case.atol)


def _regimes(losses: list[float], W: torch.Tensor) -> tuple[float, float, float, float]:
    """``(first, last, dense, sparse)``: the mean loss of the first and of the last 30 steps, and
    the features per dimension of the dense and the sparse instance of ``W``."""
    head, tail = sum(losses[:30]) / 30, sum(losses[-30:]) / 30
    dense, sparse = ref_features_per_dimension(W.float()).tolist()
    return head, tail, dense, sparse


@lru_cache(maxsize=4)
def _fair_regime_seed(start: int, tries: int = 20) -> int:
    """The seed of a hidden full run: the first of ``start``, ``start + 1``, ... (``start`` a
    hidden seed) on which the reference loop shows both regimes with a margin. About one seed in
    ten does not after 300 steps (the dense instance not settled yet, or the loss falling slowly):
    a right answer would fail there."""
    t = TOY_TRAINING
    for seed in range(start, start + tries):
        model = seeded_toy_model(seed=seed)
        head, tail, dense, sparse = _regimes(_train_toy(model, t["steps"], t["batch_size"], t["lr"], seed),
                                             model.W.detach())  # fmt: skip
        if tail < 0.6 * head and 0.9 <= dense <= 1.15 and sparse >= 1.8:  # the case's bounds, with a margin
            return seed
    raise RuntimeError(f"no seed from {start} to {start + tries - 1} shows the toy model's regimes")


def _verify_regimes(case: Case, got) -> None:
    """A full run: the loss falls, the dense instance has about 1 feature per dimension, the
    sparse one clearly more."""
    steps = case.args[1]
    losses = _loss_per_step(got, case.label, steps)
    W = _observed_weights(case)
    head, tail, dense, sparse = _regimes(losses, W)
    if not (math.isfinite(tail) and tail < 0.7 * head):
        fail(f"{case.label}: the loss did not fall", expected=f"last 30 steps < 0.7 x first 30 ({head:.4g})",
             got=f"{tail:.4g}",
             hint=LOSS_UP_HINT if tail > head else "each step: a fresh batch, loss, zero_grad, backward, step")  # fmt: skip
    if not 0.8 <= dense <= 1.25:
        fail(f"{case.label}: the dense instance (S = 0) should store about 1 feature per dimension",
             expected="0.8 .. 1.25", got=f"{dense:.3f}")  # fmt: skip
    if sparse < 1.6:
        fail(f"{case.label}: the sparse instance (S = 0.9) should be in superposition",
             expected="more than 1.6 features per dimension", got=f"{sparse:.3f}")  # fmt: skip


def _train_toy_cases(hidden: bool):
    """A few exact steps on models of other shapes (every draw is fixed by the seed), then full
    runs of the article's 5-feature, 2-dimension model, dense and sparse."""
    # (n, m, sparsity, steps, batch_size, lr, seed, about: hidden cases only)
    short = [(5, 2, (0.0, 0.5, 0.9), 5, 64, 0.05, 3, None)]
    short += [(8, 3, (0.2, 0.95), 6, 32, 0.03, hidden_seed(4),
               "a few exact steps on a model of another shape and other sparsities, on another seed")] if hidden else []
    for n, m, sparsity, steps, batch_size, lr, seed, about in short:
        model = Recipe("circuitscope.checks.ch5:seeded_toy_model", n_features=n, n_hidden=m, sparsity=sparsity,
                       seed=seed)  # fmt: skip
        case = Case(f"train_toy(ToyModel({n}, {m}, sparsity={list(sparsity)}, seed={seed}), steps={steps}, "
                    f"batch_size={batch_size}, lr={lr})", (model, steps, batch_size, lr, seed),
                    verify=_verify_trajectory, rtol=1e-3, atol=1e-6,
                    observe="circuitscope.checks.ch5:toy_parameters",
                    mistakes=_TRAJECTORY_MISTAKES, about=about,
                    hint="Adam(model.parameters(), lr=lr); each step a fresh "
                    "model.generate_batch(batch_size, generator) (generator seeded with seed), "
                    "model.loss(x), zero_grad, backward, step")  # fmt: skip
        case.data["losses"] = _ref_train_toy(case)
        yield case
    t = TOY_TRAINING
    for full, seed in enumerate([0] + ([_fair_regime_seed(hidden_seed(1))] if hidden else [])):
        model = Recipe("circuitscope.checks.ch5:seeded_toy_model", seed=seed)
        yield Case(f"train_toy(ToyModel(5, 2, sparsity={list(TOY_SPARSITIES)}, seed={seed}), "
                   f"steps={t['steps']})",
                   (model, t["steps"], t["batch_size"], t["lr"], seed), verify=_verify_regimes,
                   observe="circuitscope.checks.ch5:toy_parameters",
                   about="a full run on a seed the visible cases do not use (both regimes must show)" if full
                   else "a full run of the toy model, dense and sparse (both regimes must show)",
                   hint="train on fresh batches from model.generate_batch(batch_size, generator) with the "
                   "importance-weighted loss, zeroing the gradients every step")  # fmt: skip


check_train_toy = Exercise(
    "check_train_toy", "train_toy", _train_toy_cases,
    forbid=("circuitscope.methods.superposition:train_toy_model",),
    doc="""Check ``fn(model, steps, batch_size, lr, seed) -> list of floats`` (exercise 3).

    A few steps on seeded toy models, loss by loss against the reference loop; then trains a
    seeded 5-feature, 2-dimension :class:`~circuitscope.methods.superposition.ToyModel` with a dense
    instance (S = 0) and a sparse one (S = 0.9) and checks the known regimes: about one feature
    per dimension when dense, clearly more than one when sparse; the loss falls.
    """,
)  # fmt: skip


# =============================================================================================
# Exercise 4: the sparse autoencoder's forward pass and loss
# =============================================================================================
def _sae_inputs(d_in: int, d_hidden: int, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    """``x (batch, d_in)``, ``W_enc (d_hidden, d_in)`` (untied: not ``W_dec^T``), ``b_enc``,
    ``W_dec (d_in, d_hidden)`` with unit-norm columns, ``b_dec``."""
    gen = _gen(seed)
    W_dec = torch.randn(d_in, d_hidden, generator=gen)
    W_dec /= W_dec.norm(dim=0, keepdim=True)
    W_enc = torch.randn(d_hidden, d_in, generator=gen) * 0.7
    b_enc = torch.randn(d_hidden, generator=gen) * 0.3
    b_dec = torch.randn(d_in, generator=gen) * 0.5
    x = torch.randn(batch, d_in, generator=gen)
    return x, W_enc, b_enc, W_dec, b_dec


def _sae_reference(x, W_enc, b_enc, W_dec, b_dec, l1_coeff) -> tuple:
    """``(x_hat (batch, d_in), f (batch, d_hidden), loss)``, the loss a float."""
    f = _relu((x - b_dec) @ W_enc.T + b_enc)
    x_hat = f @ W_dec.T + b_dec
    loss = (x - x_hat).pow(2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    return x_hat, f, float(loss)


def _sae_forward_cases(hidden: bool):
    sizes = [(6, 12, 10, 0.1, 0), (8, 32, 5, 0.5, 1)]
    if hidden:
        sizes += [(3, 3, 40, 0.0, hidden_seed(2)), (16, 64, 1, 1.0, hidden_seed(3)), (10, 50, 33, 0.03, hidden_seed(4))]
    # What each hidden case tests, in words, in the order of the hidden sizes.
    abouts = ["no L1 penalty (a coefficient of zero), as many latents as inputs",
              "a batch of a single example, with a strong L1 penalty", "a larger SAE on an odd batch size"]
    for i, (d_in, d_hidden, batch, l1, seed) in enumerate(sizes):
        args = (*_sae_inputs(d_in, d_hidden, batch, seed), l1)
        yield Case(f"sae_forward(x ({batch}, {d_in}), W_enc ({d_hidden}, {d_in}), ..., l1_coeff={l1})", args,
                   verify=_parts("x_hat", "f", "loss", order=(1, 0, 2)), data={"expect": _sae_reference(*args)},
                   about=abouts[i - 2] if i >= 2 else None,
                   hint="loss = mean over the batch of ||x - x_hat||^2 (summed over d_in) "
                   "+ l1_coeff * ||f||_1")  # fmt: skip


def _sae_f(encoder: str = "untied", relu: bool = True, centre: bool = True):
    """What a mistaken encoder gives: ``f (batch, d_hidden)``."""

    def f(case: Case) -> torch.Tensor:
        x, W_enc, b_enc, W_dec, b_dec, _ = case.args
        pre = (x - b_dec if centre else x) @ (W_enc.T if encoder == "untied" else W_dec) + b_enc
        return _relu(pre) if relu else pre

    return f


def _sae_loss(mse: str, l1: str):
    """What a mistaken loss gives: each term summed over the vector then averaged over the batch
    (``"sum"``) or averaged over everything (``"mean"``); ``l1="none"``: no penalty."""

    def loss(case: Case) -> float:
        x, *_, l1_coeff = case.args
        x_hat, f, _ = case.data["expect"]
        err, size = (x - x_hat).pow(2), f.abs()
        error = err.sum(-1).mean() if mse == "sum" else err.mean()
        penalty = 0.0 if l1 == "none" else size.sum(-1).mean() if l1 == "sum" else size.mean()
        return float(error + l1_coeff * penalty)

    return loss


check_sae_forward = Exercise(
    "check_sae_forward", "sae_forward", _sae_forward_cases,
    doc="""Check ``fn(x, W_enc, b_enc, W_dec, b_dec, l1_coeff) -> (x_hat, f, loss)`` (exercise 4).""",
    mistakes=[
        Mistake("did you forget the ReLU? features are never negative", when=_part_is(1, _sae_f(relu=False))),
        Mistake("subtract the decoder bias before encoding: x - b_dec", when=_part_is(1, _sae_f(centre=False))),
        Mistake("that is a TIED encoder (W_dec^T); this SAE is untied: use W_enc",
                when=_part_is(1, _sae_f("tied"))),
        Mistake("f = ReLU(W_enc (x - b_dec) + b_enc): for rows, relu((x - b_dec) @ W_enc.T + b_enc)",
                when=_wrong_part(1)),
        Mistake("did you forget the decoder bias b_dec?",
                when=_part_is(0, lambda case: case.data["expect"][1] @ case.args[3].T)),
        Mistake("x_hat = W_dec f + b_dec: for rows, f @ W_dec.T + b_dec", when=_wrong_part(0)),
        Mistake(SCALAR_HINT, when=_not_scalar(2)),
        Mistake("the squared error is SUMMED over d_in (then averaged over the batch); F.mse_loss averages it",
                when=_part_is(2, _sae_loss("mean", "sum"))),
        Mistake("the L1 norm is SUMMED over the features (then averaged over the batch)",
                when=_part_is(2, _sae_loss("sum", "mean"))),
        Mistake("sum over the vector's entries, average over the batch, in both terms",
                when=_part_is(2, _sae_loss("mean", "mean"))),
        Mistake("did you forget the L1 penalty l1_coeff * ||f||_1?",
                when=_part_is(2, _sae_loss("sum", "none"))),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 5: training an SAE that recovers planted features
# =============================================================================================
SAE_PLANTED = {"d": 16, "n_features": 24, "p_active": 0.06, "noise": 0.01, "n_samples": 4000}
SAE_TRAINING = {"steps": 400, "lr": 5e-3, "l1_coeff": 0.2, "batch_size": 256}


def sae_decoder(sae: SparseAutoencoder, *_) -> torch.Tensor:
    """The SAE's ``W_dec (d_in, d_hidden)`` after the learner's loop (an observation of the kernel).

    It shows the dictionary as the kernel reports it; a kernel whose library was rewritten could
    report another one than it trained."""
    return sae.W_dec.detach()


def _train_sae_cases(hidden: bool):
    p, t = SAE_PLANTED, SAE_TRAINING
    for i, seed in enumerate([0] + ([hidden_seed(1)] if hidden else [])):
        planted = planted_features(p["n_samples"], p["d"], p["n_features"], p["p_active"], p["noise"], seed)
        sae = Recipe("circuitscope.methods.sae:SparseAutoencoder", d_in=p["d"], d_hidden=2 * p["n_features"],
                     device="cpu", seed=seed)  # fmt: skip
        yield Case(f"train_sae(SAE {p['d']} -> {2 * p['n_features']}, "
                   f"planted data {tuple(planted.data.shape)}, steps={t['steps']}, seed={seed})",
                   (sae, planted.data, t["steps"], t["lr"], t["l1_coeff"], t["batch_size"], seed),
                   verify=_verify_sae_training, observe="circuitscope.checks.ch5:sae_decoder",
                   about="training on a seed the visible cases do not use (other planted data, another start)"
                   if i else None,
                   data={"dictionary": planted.dictionary})  # fmt: skip


def _verify_sae_training(case: Case, got) -> None:
    """Unit-norm decoder columns, a falling loss, and the planted dictionary recovered."""
    losses = _loss_per_step(got, case.label, case.args[2])
    W_dec = case.observed
    if not isinstance(W_dec, torch.Tensor) or W_dec.dim() != 2:
        fail(f"{case.label}: the SAE's decoder could not be read after training", got=describe(W_dec))
    norms = W_dec.double().norm(dim=0)
    if not bool(((norms - 1).abs() <= 1e-4).all()):
        fail(f"{case.label}: the decoder columns should have unit norm", expected="every norm 1",
             got=f"norms from {float(norms.min()):.4f} to {float(norms.max()):.4f}",
             hint="after every optimizer step, divide each column of W_dec by its norm "
             "(inside torch.no_grad()): otherwise the L1 penalty is dodged by shrinking f and growing W_dec")  # fmt: skip
    head, tail = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    if not (math.isfinite(tail) and tail < 0.8 * head):
        fail(f"{case.label}: the loss did not fall", expected=f"last 20 steps < 0.8 x first 20 ({head:.4g})",
             got=f"{tail:.4g}",
             hint="each step: a random batch, loss, zero_grad, backward, step, renormalise")  # fmt: skip
    score = mean_max_cosine_similarity(W_dec.float(), case.data["dictionary"])
    if score < 0.9:
        fail(f"{case.label}: the planted features were not recovered",
             expected="mean max cosine similarity >= 0.9", got=f"{score:.3f}",
             hint="use the L1 penalty (l1_coeff) in the loss and sample a fresh random batch each step")  # fmt: skip


check_train_sae = Exercise(
    "check_train_sae", "train_sae", _train_sae_cases,
    forbid=("circuitscope.methods.sae:train_sae",),
    doc="""Check ``fn(sae, data, steps, lr, l1_coeff, batch_size, seed) -> list of floats`` (exercise 5).

    On planted data (24 known unit directions in 16 dimensions, a few active per vector): the
    decoder columns end at unit norm, the loss falls, and the learned dictionary recovers the
    planted one (mean max cosine similarity >= 0.9).
    """,
)  # fmt: skip


# =============================================================================================
# Exercise 6: activations to vectors
# =============================================================================================
def _layer_vectors_cases(hidden: bool):
    shapes = [((2, 5, 3, 4), 60), ((1, 7, 2, 2), 61)]  # (shape, seed)
    if hidden:
        shapes += [((3, 16, 5, 6), hidden_seed(62)), ((4, 3, 1, 1), hidden_seed(63)), ((2, 256, 7, 9), hidden_seed(64))]
    # What each hidden case tests, in words, in the order of the hidden shapes.
    abouts = ["a batch of non-square maps with more channels", "maps of a single position",
              "many channels on odd-sized, non-square maps"]
    for i, (shape, seed) in enumerate(shapes):
        acts = torch.randn(*shape, generator=_gen(seed))
        yield Case(f"layer_vectors(acts of shape {shape})", (acts,),
                   expect=acts.permute(0, 2, 3, 1).reshape(-1, shape[1]), rtol=0.0, atol=0.0,
                   hint="move the channels last (permute(0, 2, 3, 1)), then reshape(-1, C)",
                   about=abouts[i - 2] if i >= 2 else None)  # fmt: skip


def _transposed(case: Case, got) -> bool:
    """``Mistake.when``: ``(C, N*H*W)``, the vectors as columns."""
    n, ch, h, w = case.args[0].shape
    return isinstance(got, torch.Tensor) and ch != n * h * w and tuple(got.shape) == (ch, n * h * w)


check_layer_vectors = Exercise(
    "check_layer_vectors", "layer_vectors", _layer_vectors_cases,
    doc="""Check ``fn(acts) -> (N*H*W, C)`` (exercise 6): one row per image and position, in the
    order image, row, column; row ``(n * H + y) * W + x`` is ``acts[n, :, y, x]``.""",
    mistakes=[
        Mistake("one ROW per position: the result is (N*H*W, C), not (C, N*H*W)", when=_transposed),
        Mistake("reshape alone mixes channels and positions: move C last first, acts.permute(0, 2, 3, 1)",
                result=lambda case: case.args[0].reshape(-1, case.args[0].shape[1])),
        Mistake("rows go image, then ROW (y), then column (x): permute(0, 2, 3, 1), not (0, 3, 2, 1)",
                result=lambda case: case.args[0].permute(0, 3, 2, 1).reshape(-1, case.args[0].shape[1])),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 7: visualizing an SAE feature with the direction objective
# =============================================================================================
class PlantedColourModel(NamedModel):
    """A one-layer model whose only layer, ``"colour"``, is linear in the pixel colours.

    ``colour = A (rgb - 0.5)`` at every pixel, ``A: (C, 3)`` fixed: the direction objective for
    ``v`` is then ``(A^T v) . (mean colour - 0.5)``, so the colour a good visualization drifts
    to is known (towards ``sign(A^T v)``). A :class:`~circuitscope.core.models.named.NamedModel`, as
    :func:`circuitscope.methods.optvis.render` needs.
    """

    layer_names: ClassVar[list[str]] = ["colour"]

    def __init__(self, channels: int = 4, seed: int = 0) -> None:
        super().__init__(layer_channels={"colour": channels})
        A = torch.randn(channels, 3, generator=_gen(seed))
        self.conv = nn.Conv2d(3, channels, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(A[:, :, None, None])
        self.weights_state = "planted"  # built by hand with a known answer, not InceptionV1: figures say so
        self.is_synthetic = True

    @property
    def A(self) -> torch.Tensor:
        return self.conv.weight.detach()[:, :, 0, 0]

    def named_forward(self, images: torch.Tensor):
        yield self.emit("colour", self.conv(images - 0.5))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.run_to(images, ["colour"])["colour"]


def planted_sae(d_in: int, d_hidden: int, seed: int) -> SparseAutoencoder:
    """A seeded CPU SAE whose encoder is far from its decoder's transpose, as after training."""
    sae = SparseAutoencoder(d_in, d_hidden, device="cpu", seed=seed)
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_hidden, d_in, generator=_gen(seed + 100)))
    return sae


def _visualize_cases(hidden: bool):
    rows = [(0, 6, 3, 32, 24, None)]  # (seed, d_hidden, feature, size, steps, about: hidden cases only)
    rows += [(hidden_seed(1), 6, 5, 24, 24, "the SAE's last feature, on another seed and a smaller image"),
             (hidden_seed(4), 8, 7, 24, 24, "a wider SAE (more features), its last feature, on another seed")
             ] if hidden else []  # fmt: skip
    for seed, d_hidden, feature, size, steps, about in rows:
        model = Recipe("circuitscope.checks.ch5:PlantedColourModel", channels=4, seed=seed)
        sae = Recipe("circuitscope.checks.ch5:planted_sae", d_in=4, d_hidden=d_hidden, seed=seed)
        yield Case(f"visualize_feature(planted colour model, SAE 4 -> {d_hidden}, 'colour', feature={feature}, "
                   f"size={size})", (model, sae, "colour", feature, size, steps, seed),
                   verify=_verify_visualization, rtol=1e-5, atol=1e-6, about=about)  # fmt: skip


def _verify_visualization(case: Case, got) -> None:
    """The decoder column, and a ``(1, 3, size, size)`` image in [0, 1] that raises the direction
    objective clearly above a grey image's (0)."""
    model, sae, layer, feature, size, _, _ = build(case.args)
    vec, image = _tuple(got, case.label, ("direction", "image"))
    expected = sae.W_dec[:, feature].detach()
    compare(as_tensor(vec, f"{case.label}: direction").flatten(), expected, f"{case.label}: direction",
            case.rtol, case.atol)  # fmt: skip
    image = as_tensor(image, f"{case.label}: image")
    if tuple(image.shape) != (1, 3, size, size):
        fail(f"{case.label}: image has the wrong shape", expected=(1, 3, size, size), got=tuple(image.shape),
             hint="return render(...)'s images: (1, 3, size, size)")  # fmt: skip
    if not (bool(torch.isfinite(image).all()) and float(image.min()) >= 0 and float(image.max()) <= 1):
        fail(f"{case.label}: image values out of range", expected="in [0, 1]",
             got=f"{float(image.min()):.3g} .. {float(image.max()):.3g}",
             hint="return the images render() gives (already in [0, 1])")  # fmt: skip
    with torch.no_grad():
        value = float(direction(layer, expected)({layer: model(image.float())}))
    best = 0.5 * float((model.A.T @ expected).abs().sum())  # every pixel saturated in the right colour
    # Lucid's settings move a Fourier image slowly: after 24 steps a correct render reaches
    # about 8% of the saturated value, the encoder row's render goes negative.
    if value < 0.03 * best:
        fail(f"{case.label}: the image does not excite the feature",
             expected=f"direction objective > {0.03 * best:.3g} (a grey image gives 0)", got=f"{value:.3g}",
             hint="render the DIRECTION objective for the decoder column: "
             "direction(layer, W_dec[:, feature])")  # fmt: skip


def _direction_is(row: str):
    """``Mistake.when``: the direction returned (a 2-tuple's first part) is ``row`` of the SAE:
    ``"encoder"`` (``W_enc[feature]``), or ``"other"`` than the decoder column."""

    def when(case: Case, got) -> bool:
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            return False
        _, sae, _, feature, *_ = build(case.args)
        vec = got[0].flatten() if isinstance(got[0], torch.Tensor) else got[0]
        if row == "encoder":
            return same(vec, sae.W_enc[feature].detach(), case.rtol, case.atol)
        return not same(vec, sae.W_dec[:, feature].detach(), case.rtol, case.atol)

    return when


check_visualize_feature = Exercise(
    "check_visualize_feature", "visualize_feature", _visualize_cases,
    doc="""Check ``fn(model, sae, layer, feature, size, steps, seed) -> (direction, image)`` (exercise 7).

    On :class:`PlantedColourModel`: ``direction`` is the decoder column ``W_dec[:, feature]``
    (unit norm); ``image`` is ``(1, 3, size, size)`` in [0, 1] and raises the direction objective
    clearly above a grey image's (where it is 0).
    """,
    mistakes=[
        Mistake("that is the ENCODER row; the feature's direction in activation space is W_dec[:, feature]",
                when=_direction_is("encoder")),
        Mistake("the feature's direction is its decoder column: sae.W_dec[:, feature]",
                when=_direction_is("other")),
    ],
    errors={"ValueError: direction has": "the feature's direction is its decoder column: "
            "sae.W_dec[:, feature], one entry per channel of the layer"},
)  # fmt: skip


# =============================================================================================
# Exercise 8: evaluating an SAE: L0, variance explained, dead and dense features
# =============================================================================================
def _offset(d: int, seed: int) -> torch.Tensor:
    """``(d,)`` a seeded mean vector far from zero (activations are not centred)."""
    return 0.5 + torch.rand(d, generator=_gen(seed + 3))


def eval_sae(d_in: int, d_hidden: int, seed: int, dead: tuple = (), dense: tuple = ()) -> SparseAutoencoder:
    """A seeded CPU SAE for :func:`_eval_data`'s vectors, with planted dead and dense features.

    Its dictionary is the data's planted one (``W_dec``; the encoder 0.7 times its transpose,
    slightly perturbed; ``b_dec`` the data's offset; a negative ``b_enc`` that silences the noise
    and some crosstalk), so it reconstructs part of the variance with a few active features, as
    an imperfectly trained SAE does (planted dense features make it worse). The features in ``dead``
    can never fire (bias -1000); those in ``dense`` fire on most vectors (bias +0.6)."""
    dictionary = planted_features(1, d_in, d_hidden, 0.1, 0.0, seed).dictionary  # the data's, by its seed
    sae = SparseAutoencoder(d_in, d_hidden, device="cpu", seed=seed)
    with torch.no_grad():
        sae.W_dec.copy_(dictionary)
        sae.W_enc.copy_(0.7 * dictionary.T + 0.02 * torch.randn(d_hidden, d_in, generator=_gen(seed + 7)))
        sae.b_enc.fill_(-0.3)
        sae.b_enc[list(dead)] = -1000.0
        sae.b_enc[list(dense)] = 0.6
        sae.b_dec.copy_(_offset(d_in, seed))
    return sae


def _eval_data(n: int, d: int, d_hidden: int, seed: int) -> torch.Tensor:
    """``(n, d)``: sparse combinations of ``d_hidden`` planted directions, plus an offset (a mean
    far from zero)."""
    return planted_features(n, d, d_hidden, 0.08, 0.02, seed).data + _offset(d, seed)


def _evaluation(sae: SparseAutoencoder, x: torch.Tensor, threshold: float, variant: str | None = None):
    """The reference (``evaluate_sae`` as a dict of data), or what a mistaken version gives."""

    ref = evaluate_sae(sae, x, threshold).as_dict()
    with torch.no_grad():
        x_hat, f = sae(x)
    x, x_hat, f = x.double(), x_hat.double(), f.double()
    error = (x - x_hat).pow(2).sum()
    if variant == "uncentred":
        ref["fve"] = float(1 - error / x.pow(2).sum())
    elif variant == "unexplained":
        ref["fve"] = float(error / (x - x.mean(0)).pow(2).sum())
    elif variant == "per_dim":
        ref["fve"] = float(1 - ((x - x_hat).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)).mean())
    elif variant == "scalar_mean":
        ref["fve"] = float(1 - error / (x - x.mean()).pow(2).sum())
    elif variant == "l0_sum":
        ref["l0"] = float((f > 0).double().sum())
    elif variant == "l0_ge":
        ref["l0"] = float((f >= 0).double().sum(-1).mean())
    elif variant == "count_dense":
        ref["dense"] = (f > 0).double().sum(0) > threshold
    elif variant == "dead_rare":
        ref["dead"] = ref["frequency"] < threshold
    return ref


def _evaluate_cases(hidden: bool):
    rows = [(16, 40, 501, 0.1, 0, (3, 17), (5,), None)]  # (d, d_hidden, n, threshold, seed, dead, dense, about)
    if hidden:
        s = [hidden_seed(90 + i) for i in range(4)]
        rows += [
            (8, 24, 403, 0.25, s[0], (0, 23), (1, 2),
             "a smaller SAE, another dense threshold (0.25), dead and dense features at both ends"),
            (12, 48, 777, 0.1, s[1], (), (), "an SAE with no planted dead or dense feature"),
            (16, 32, 301, 0.05, s[2], tuple(range(0, 32, 4)), (1, 30), "many dead features, a low dense threshold"),
            (10, 30, 11, 0.3, s[3], (7,), (), "very few vectors"),
        ]  # fmt: skip
    for d, d_hidden, n, threshold, seed, dead, dense, about in rows:
        sae = Recipe(HERE5 + "eval_sae", d_in=d, d_hidden=d_hidden, seed=seed, dead=dead, dense=dense)
        x = _eval_data(n, d, d_hidden, seed)
        yield Case(f"evaluate_sae(SAE {d} -> {d_hidden}, x ({n}, {d}), dense_threshold={threshold})",
                   (sae, x, threshold), expect=_evaluation(sae.build(), x, threshold), rtol=1e-4, atol=1e-6,
                   about=about, data={"sae": sae},
                   hint="l0: mean over the vectors of the number of f > 0; fve: 1 - sum (x - x_hat)^2 / "
                        "sum (x - x.mean(0))^2; frequency: the mean of (f > 0) over the vectors, one per feature")  # fmt: skip


HERE5 = "circuitscope.checks.ch5:"


_VARIANT_KEY = {"uncentred": "fve", "unexplained": "fve", "per_dim": "fve", "scalar_mean": "fve",
                "l0_sum": "l0", "l0_ge": "l0", "count_dense": "dense", "dead_rare": "dead"}  # fmt: skip


def _eval_variant(variant: str):
    """``Mistake.when``: the one entry a mistaken line changes is wrong and equals what that line gives."""
    key = _VARIANT_KEY[variant]

    def when(case: Case, got) -> bool:
        if not isinstance(got, dict) or key not in got:
            return False
        sae, x, threshold = build(case.args)
        wrong = _evaluation(sae, x, threshold, variant)[key]
        return not same(got[key], case.expect[key], case.rtol, case.atol) and same(got[key], wrong, case.rtol, case.atol)

    return when


def _per_vector_frequency(case: Case, got) -> bool:
    """``Mistake.when``: ``frequency`` has one entry per vector, not per feature."""
    frequency = got.get("frequency") if isinstance(got, dict) else None
    return isinstance(frequency, torch.Tensor) and frequency.shape == (case.args[1].shape[0],)


check_evaluate_sae = Exercise(
    "check_evaluate_sae", "evaluate_sae", _evaluate_cases,
    forbid=("circuitscope.methods.sae_eval:evaluate_sae", "circuitscope.methods.sae_eval:fraction_of_variance_explained",
            "circuitscope.methods.sae:feature_frequencies", "circuitscope.methods.sae:dead_features"),
    doc="""Check ``fn(sae, x, dense_threshold) -> dict`` (exercise 8): ``l0`` (float), ``fve`` (float),
    ``frequency`` ``(d_hidden,)``, ``dead`` and ``dense`` ``(d_hidden,)`` bool masks.""",
    mistakes=[
        Mistake("the variance is about the MEAN vector: subtract x.mean(dim=0) before squaring "
                "(these activations are far from zero on average)", when=_eval_variant("uncentred")),
        Mistake("that is the fraction UNexplained: fve = 1 - error / variance", when=_eval_variant("unexplained")),
        Mistake("pool over every entry: total squared error over total variance, not a mean of per-dimension "
                "ratios", when=_eval_variant("per_dim")),
        Mistake("centre each dimension by its own mean, x - x.mean(dim=0), not by one mean of all the numbers",
                when=_eval_variant("scalar_mean")),
        Mistake("L0 is the MEAN number of active features per vector, not the total over all vectors",
                when=_eval_variant("l0_sum")),
        Mistake("a feature is active when f > 0 strictly: the ReLU's zeros do not fire",
                when=_eval_variant("l0_ge")),
        Mistake("one frequency per FEATURE: average (f > 0) over the vectors (dim 0), giving (d_hidden,)",
                when=_per_vector_frequency),
        Mistake("compare the FRACTION of vectors a feature fires on with dense_threshold, not its count",
                when=_eval_variant("count_dense")),
        Mistake("a dead feature NEVER fires (frequency == 0), it is not merely rare",
                when=_eval_variant("dead_rare")),
    ],
)  # fmt: skip


# =============================================================================================
# Exercise 9: the splice-in test
# =============================================================================================
class PlantedClassifier(NamedModel):
    """A tiny seeded image classifier with one named layer, ``"hidden"``, for the splice-in test.

    ``images (N, 3, H, W)`` -> ``hidden = ReLU(conv3x3(images))`` ``(N, C, H, W)`` (a
    :class:`~circuitscope.core.models.inceptionv1.HookPoint`: ``model.hook_points["hidden"]``) ->
    global average pooling -> a linear layer -> logits ``(N, classes)``. Like InceptionV1's
    last layers, so that splicing a reconstruction into ``hidden`` is what it is there.
    """

    layer_names: ClassVar[list[str]] = ["hidden"]

    def __init__(self, channels: int = 6, classes: int = 5, seed: int = 0) -> None:
        super().__init__(layer_channels={"hidden": channels})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(3, channels, 3, padding=1)
            self.fc = nn.Linear(channels, classes)
            with torch.no_grad():  # strong weights: the logits differ from image to image
                self.conv.weight.mul_(4.0)
                self.fc.weight.mul_(8.0)
        self.weights_state = "planted"
        self.is_synthetic = True
        self.requires_grad_(False)

    def named_forward(self, images: torch.Tensor):
        yield self.emit("hidden", torch.relu(self.conv(images - 0.5)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hidden = self.run_to(images, ["hidden"])["hidden"]
        return self.fc(hidden.mean(dim=(-2, -1)))


def splice_sae(kind: str, channels: int, d_hidden: int = 0, seed: int = 0, input_scale: float = 1.0):
    """The SAE a splice case plants: ``"identity"`` (exact on a post-ReLU layer), ``"zero"`` (its
    reconstruction is zeros: a zero ablation) or ``"random"`` (a seeded, imperfect one)."""

    if kind == "identity":
        sae = identity_sae(channels)
    elif kind == "zero":
        sae = zero_sae(channels, d_hidden or 2 * channels, seed=seed)
    else:
        sae = planted_sae(channels, d_hidden or 2 * channels, seed)
        with torch.no_grad():
            sae.b_enc.fill_(-0.2)
    with torch.no_grad():
        sae.input_scale.fill_(input_scale)
    return sae


def forward_hooks_left(model: nn.Module, *_, **__) -> int:
    """How many forward hooks (and pre-hooks) are on ``model``'s modules after the learner's call
    (as the kernel reports them)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


SPLICE_KEYS = ("clean_loss", "spliced_loss", "clean_accuracy", "spliced_accuracy")


def _splice(model, sae, layer: str, images, labels, variant: str | None = None) -> dict:
    """The reference (:func:`sae_eval.spliced_metrics` as a dict), or what a mistaken version gives."""
    import torch.nn.functional as F

    if variant is None:
        return dict(spliced_metrics(model, sae, layer, images, labels).as_dict())
    scale = 1.0 if variant == "no_scale" else sae.input_scale

    def replace(acts):
        n, c, h, w = acts.shape
        if variant == "no_permute":
            return (sae(acts.reshape(-1, c) / scale)[0] * scale).reshape(n, c, h, w)
        x_hat = sae(acts.permute(0, 2, 3, 1).reshape(-1, c) / scale)[0] * scale
        return x_hat.reshape(n, h, w, c).permute(0, 3, 1, 2)

    with torch.no_grad():
        clean = model(images)
        with replaced(model, layer, replace):
            patched = model(images)
        if variant == "clean_spliced":
            clean = patched
        target = clean.argmax(-1) if variant == "argmax_labels" else labels
        reduction = "sum" if variant == "summed" else "mean"
        return {"clean_loss": float(F.cross_entropy(clean.double(), target, reduction=reduction)),
                "spliced_loss": float(F.cross_entropy(patched.double(), target, reduction=reduction)),
                "clean_accuracy": float((clean.argmax(-1) == target).double().mean()),
                "spliced_accuracy": float((patched.argmax(-1) == target).double().mean())}  # fmt: skip


def _splice_cases(hidden: bool):
    # (model seed, channels, classes, images, size, SAE kind, d_hidden, input_scale, about)
    rows = [
        (0, 6, 5, 8, 8, "random", 12, 2.0, None),
        (1, 6, 5, 8, 8, "identity", 0, 1.0, None),
        (2, 6, 5, 8, 8, "zero", 12, 1.0, None),
    ]
    if hidden:
        s = [hidden_seed(100 + i) for i in range(4)]
        rows += [
            (s[0], 8, 7, 12, 6, "random", 24, 0.5, "another model and a wider SAE, with another input scale"),
            (s[1], 5, 3, 6, 7, "identity", 0, 3.0, "an exact SAE with an input scale: still no change at all"),
            (s[2], 4, 10, 9, 5, "zero", 8, 1.0, "a zero SAE on another model, with many classes"),
            (s[3], 6, 4, 1, 9, "random", 18, 1.0, "a single image"),
        ]  # fmt: skip
    for seed, channels, classes, n, size, kind, d_hidden, scale, about in rows:
        model = Recipe(HERE5 + "PlantedClassifier", channels=channels, classes=classes, seed=seed)
        sae = Recipe(HERE5 + "splice_sae", kind=kind, channels=channels, d_hidden=d_hidden, seed=seed, input_scale=scale)
        gen = _gen(seed + 11)
        images = torch.rand(n, 3, size, size, generator=gen)
        images = images * (0.5 + torch.rand(n, 3, 1, 1, generator=gen))  # each image its own colour
        with torch.no_grad():  # the labels: the clean model's classes, the first one changed
            labels = model.build()(images).argmax(dim=-1)
        labels[0] = (labels[0] + 1) % classes
        args = (model, sae, "hidden", images, labels)
        yield Case(f"spliced_metrics(planted classifier, {kind} SAE {channels} -> {d_hidden or channels}"
                   f"{f', input_scale={scale}' if scale != 1 else ''}, 'hidden', {n} images, labels)", args,
                   verify=_verify_splice, observe=HERE5 + "forward_hooks_left", rtol=1e-4, atol=1e-5, about=about,
                   data={"expect": _splice(*build(args))})  # fmt: skip


def _verify_splice(case: Case, got) -> None:
    """The four numbers match the reference; no hook is left on the model."""
    compare(got, case.data["expect"], case.label, case.rtol, case.atol)
    if case.observed:
        fail(f"{case.label}: a hook was left on the model", expected="no hooks after your function returns",
             got=f"{case.observed} hook(s) still on the model",
             hint="remove your hook when you are done: handle = ...register_forward_hook(...); try: ... "
                  "finally: handle.remove()")  # fmt: skip


def _splice_variant(variant: str):
    return lambda case: _splice(*build(case.args), variant=variant)


check_spliced_metrics = Exercise(
    "check_spliced_metrics", "spliced_metrics", _splice_cases,
    forbid=("circuitscope.methods.sae_eval:spliced_metrics", "circuitscope.methods.sae_eval:spliced",
            "circuitscope.methods.sae_eval:reconstruct_activations", "circuitscope.methods.sae_eval:loss_recovered"),
    doc="""Check ``fn(model, sae, layer, images, labels) -> dict`` (exercise 9): the cross-entropy loss
    and top-1 accuracy on ``labels``, clean and with the SAE's reconstruction spliced into ``layer``
    (``clean_loss``, ``spliced_loss``, ``clean_accuracy``, ``spliced_accuracy``); no hook left.""",
    mistakes=[
        Mistake("the clean numbers must come from the model WITHOUT the hook: run it once before adding the hook "
                "(or after removing it)", result=_splice_variant("clean_spliced")),
        Mistake("reshape alone mixes channels and positions: move the channels last first "
                "(acts.permute(0, 2, 3, 1).reshape(-1, C)), and permute back after decoding",
                result=_splice_variant("no_permute")),
        Mistake("the SAE reads vectors divided by sae.input_scale: divide before reconstructing, multiply back after",
                result=_splice_variant("no_scale")),
        Mistake("score against the labels you are given, not the clean model's own predictions",
                result=_splice_variant("argmax_labels")),
        Mistake("average the cross-entropy over the images (F.cross_entropy's default), do not sum it",
                result=_splice_variant("summed")),
    ],
    errors={"RuntimeError: shape '[": "the replacement must have the layer's shape (N, C, H, W): splice in the "
            "SAE's RECONSTRUCTION x_hat = sae(x)[0] (C numbers per position), not its features f (d_hidden numbers), "
            "reshaped to (N, H, W, C) and permuted back"},
)  # fmt: skip
