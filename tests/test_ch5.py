"""Chapter 5: its exercise checks and the library it adds (the notebook's layout: test_course).

* Checks: each passes on the solution notebook's reference code (visible and hidden cases, in
  this process and with every case sent over the grader's wire format) and fails, with the
  right hint, on the untouched stub and on plausible mistakes (the MISTAKES table below, and
  tests/mistakes/ch5_closing_thoughts.py, which the nbgrader round trip of tests/test_course.py
  grades).
* The solution notebook's layout is checked for every chapter in tests/test_course.py.
* Library: the planted colour model the feature-visualization check relies on. (The toy models'
  regimes, planted-feature recovery, checkpoint/resume and the chapter's photo crops and
  figures are tested in test_superposition.py and test_sae.py.)

Timings here run on a shared CPU: the bounds are generous on purpose.
"""

from __future__ import annotations

import math
from pathlib import Path

import nbformat
import pytest
import torch
from exercise_harness import (
    PRIVATE_KEYS,
    assert_check_passes,
    assert_hidden_cases_change,
    assert_mistake_fails,
    assert_passes_over_the_wire,
    assert_stub_fails,
    load_mistakes,
    mistake_function,
    private_key,
    reference_functions,
    solution_cells,
    stub_functions,
)

import circuitscope as cs
from circuitscope import sae as sae_lib
from circuitscope import superposition as sp
from circuitscope.checks import CheckFailed
from circuitscope.checks import ch5 as checks
from circuitscope.optvis import render
from circuitscope.optvis.objectives import direction

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ch5_closing_thoughts" / "ch5_exercises.ipynb"
ASSIGNMENT_ID = "ch5_closing_thoughts"

EXERCISES = {  # check -> (the function the notebook defines, its solution cell's grade_id)
    "check_toy_model": ("toy_model", "ch5-toy-model"),
    "check_features_per_dimension": ("features_per_dimension", "ch5-features-per-dim"),
    "check_train_toy": ("train_toy", "ch5-train-toy"),
    "check_sae_forward": ("sae_forward", "ch5-sae-forward"),
    "check_train_sae": ("train_sae", "ch5-train-sae"),
    "check_layer_vectors": ("layer_vectors", "ch5-layer-vectors"),
    "check_visualize_feature": ("visualize_feature", "ch5-visualize-feature"),
    "check_evaluate_sae": ("evaluate_sae", "ch5-evaluate-sae"),
    "check_spliced_metrics": ("spliced_metrics", "ch5-spliced-metrics"),
}
FUNCTIONS = {fn for fn, _ in EXERCISES.values()}
CHECK_SECONDS = 30  # each check is a few seconds on two idle cores; the CPU here is shared


# =============================================================================================
# The exercise checks: the reference passes, the stub and plausible mistakes fail
# =============================================================================================
def _namespace() -> dict:
    """What the solution notebook's setup cell defines (without loading InceptionV1)."""
    return {"math": math, "torch": torch, "cs": cs, "sae_lib": sae_lib, "sp": sp,
            "render": render, "direction": direction}  # fmt: skip


@pytest.fixture(scope="module")
def reference():
    return reference_functions(SOLUTION, _namespace())


@pytest.fixture(scope="module")
def stub():
    return stub_functions(SOLUTION, _namespace())


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes(reference, check, hidden, capsys):
    fn = reference[EXERCISES[check][0]]
    assert_check_passes(getattr(checks, check), fn, hidden, capsys, seconds=CHECK_SECONDS)


@pytest.mark.parametrize("key", PRIVATE_KEYS)
@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_the_hidden_cases_under_private_keys(reference, check, key, capsys):
    with private_key(key):
        assert_check_passes(getattr(checks, check), reference[EXERCISES[check][0]], True, capsys, seconds=CHECK_SECONDS)


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_hidden_cases_change_with_the_key(check):
    assert_hidden_cases_change(getattr(checks, check))


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_reference_passes_over_the_wire(reference, check, capsys):
    assert_passes_over_the_wire(getattr(checks, check), reference[EXERCISES[check][0]], capsys)


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_stub_fails(stub, check):
    assert_stub_fails(getattr(checks, check), stub[EXERCISES[check][0]])


# Plausible mistakes: (check, hidden cases needed, words the hint must contain, code).
MISTAKES = {
    # -- exercise 1 --
    "toy: no ReLU": ("check_toy_model", False, "forget the ReLU", """
        def toy_model(W, b, x, importance):
            out = x @ W.T @ W + b
            return out, (importance * (x - out) ** 2).sum(-1).mean()
    """),
    "toy: no bias": ("check_toy_model", False, "forget the bias", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W)
            return out, (importance * (x - out) ** 2).sum(-1).mean()
    """),
    "toy: bias after the ReLU": ("check_toy_model", False, "BEFORE the ReLU", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W) + b
            return out, (importance * (x - out) ** 2).sum(-1).mean()
    """),
    "toy: unweighted loss": ("check_toy_model", False, "importance I_i", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, ((x - out) ** 2).sum(-1).mean()
    """),
    "toy: mean over the features": ("check_toy_model", False, "SUM over the features", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, (importance * (x - out) ** 2).mean()
    """),
    "toy: importance inside the square": ("check_toy_model", False, "not inside the square", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, ((importance * (x - out)) ** 2).sum(-1).mean()
    """),
    "toy: summed over the batch": ("check_toy_model", False, "average over the batch", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, (importance * (x - out) ** 2).sum()
    """),
    "toy: another activation": ("check_toy_model", False, "relu(x @ W.T @ W + b)", """
        def toy_model(W, b, x, importance):
            out = torch.sigmoid(x @ W.T @ W + b)
            return out, (importance * (x - out) ** 2).sum(-1).mean()
    """),
    "toy: one loss per row": ("check_toy_model", False, "the loss is one number", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, (importance * (x - out) ** 2).sum(-1)
    """),
    # -- exercise 2 --
    "fpd: inverted": ("check_features_per_dimension", False, "inverted", """
        def features_per_dimension(W):
            return float(W.shape[0] / W.pow(2).sum())
    """),
    "fpd: divided by the features": ("check_features_per_dimension", False, "DIMENSIONS", """
        def features_per_dimension(W):
            return float(W.pow(2).sum() / W.shape[1])
    """),
    "fpd: norms not squared": ("check_features_per_dimension", False, "square the norms", """
        def features_per_dimension(W):
            return float(W.norm(dim=0).sum() / W.shape[0])
    """),
    "fpd: counting represented features": ("check_features_per_dimension", False, "do not count", """
        def features_per_dimension(W):
            return float((W.norm(dim=0) > 0.5).sum() / W.shape[0])
    """),
    # -- exercise 3 --
    "train toy: no optimizer step": ("check_train_toy", False, "optimizer.step()", """
        def train_toy(model, steps=1000, batch_size=512, lr=1e-2, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                x = model.generate_batch(batch_size, gen)
                loss = model.loss(x)
                opt.zero_grad()
                loss.backward()
                losses.append(loss.item())
            return losses
    """),
    "train toy: gradient ascent": ("check_train_toy", False, "went UP", """
        def train_toy(model, steps=1000, batch_size=512, lr=1e-2, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                x = model.generate_batch(batch_size, gen)
                loss = model.loss(x)
                opt.zero_grad()
                (-loss).backward()
                opt.step()
                losses.append(loss.item())
            return losses
    """),
    "train toy: only the last loss": ("check_train_toy", False, "one loss per step", """
        def train_toy(model, steps=1000, batch_size=512, lr=1e-2, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            for _ in range(steps):
                x = model.generate_batch(batch_size, gen)
                loss = model.loss(x)
                opt.zero_grad()
                loss.backward()
                opt.step()
            return [loss.item()]
    """),
    "train toy: losses averaged over the instances": ("check_train_toy", False, "do not average them", """
        def train_toy(model, steps=1000, batch_size=512, lr=1e-2, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                x = model.generate_batch(batch_size, gen)
                loss = model.loss(x) / model.n_instances
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return losses
    """),
    "train toy: batches not drawn with the seed": ("check_train_toy", False, "the first loss should be", """
        def train_toy(model, steps=1000, batch_size=512, lr=1e-2, seed=0):
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                x = model.generate_batch(batch_size)  # the global generator, not one seeded with seed
                loss = model.loss(x)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return losses
    """),
    "train toy: the same batch every step": ("check_train_toy", False, "FRESH batch", """
        def train_toy(model, steps=1000, batch_size=512, lr=1e-2, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            losses = []
            x = model.generate_batch(batch_size, gen)
            for _ in range(steps):  # one batch, reused
                loss = model.loss(x)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return losses
    """),
    "train toy: gradients never zeroed": ("check_train_toy", False, "zero the gradients", """
        def train_toy(model, steps=1000, batch_size=512, lr=1e-2, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(model.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                x = model.generate_batch(batch_size, gen)
                loss = model.loss(x)
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return losses
    """),
    "train toy: SGD": ("check_train_toy", False, "torch.optim.Adam", """
        def train_toy(model, steps=1000, batch_size=512, lr=1e-2, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                x = model.generate_batch(batch_size, gen)
                loss = model.loss(x)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return losses
    """),
    # -- exercise 4 --
    "sae: no ReLU": ("check_sae_forward", False, "forget the ReLU", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = (x - b_dec) @ W_enc.T + b_enc
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: b_dec not subtracted": ("check_sae_forward", False, "subtract the decoder bias", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu(x @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: tied encoder": ("check_sae_forward", False, "TIED", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_dec + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: no decoder bias": ("check_sae_forward", False, "decoder bias b_dec", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: F.mse_loss": ("check_sae_forward", False, "SUMMED over d_in", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, torch.nn.functional.mse_loss(x_hat, x) + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: L1 averaged over the features": ("check_sae_forward", False, "SUMMED over the features", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().mean()
    """),
    "sae: one loss per vector": ("check_sae_forward", False, "the loss is one number", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1) + l1_coeff * f.abs().sum(-1)
    """),
    "sae: no L1 penalty": ("check_sae_forward", False, "L1 penalty", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean()
    """),
    # -- exercise 5 --
    "train sae: no renormalisation": ("check_train_sae", False, "unit norm", """
        def train_sae(sae, data, steps=1000, lr=1e-3, l1_coeff=0.1, batch_size=256, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(sae.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                loss = sae.loss(data[torch.randint(len(data), (batch_size,), generator=gen)], l1_coeff).total
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            return losses
    """),
    "train sae: no optimizer step": ("check_train_sae", False, "did not fall", """
        def train_sae(sae, data, steps=1000, lr=1e-3, l1_coeff=0.1, batch_size=256, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(sae.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                loss = sae.loss(data[torch.randint(len(data), (batch_size,), generator=gen)], l1_coeff).total
                opt.zero_grad()
                loss.backward()
                with torch.no_grad():
                    sae.W_dec /= sae.W_dec.norm(dim=0, keepdim=True)
                losses.append(loss.item())
            return losses
    """),
    "train sae: no L1 penalty": ("check_train_sae", False, "not recovered", """
        def train_sae(sae, data, steps=1000, lr=1e-3, l1_coeff=0.1, batch_size=256, seed=0):
            gen = torch.Generator().manual_seed(seed)
            opt = torch.optim.Adam(sae.parameters(), lr=lr)
            losses = []
            for _ in range(steps):
                loss = sae.loss(data[torch.randint(len(data), (batch_size,), generator=gen)], l1_coeff).mse
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    sae.W_dec /= sae.W_dec.norm(dim=0, keepdim=True)
                losses.append(loss.item())
            return losses
    """),
    # -- exercise 6 --
    "vectors: reshape only": ("check_layer_vectors", False, "reshape alone", """
        def layer_vectors(acts):
            return acts.reshape(-1, acts.shape[1])
    """),
    "vectors: transposed": ("check_layer_vectors", False, "one ROW", """
        def layer_vectors(acts):
            return acts.permute(1, 0, 2, 3).reshape(acts.shape[1], -1)
    """),
    "vectors: columns before rows": ("check_layer_vectors", False, "ROW (y)", """
        def layer_vectors(acts):
            return acts.permute(0, 3, 2, 1).reshape(-1, acts.shape[1])
    """),
    # -- exercise 7 --
    "visualize: encoder row": ("check_visualize_feature", False, "ENCODER", """
        def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
            vector = sae.W_enc[feature].detach()
            return vector, render(model, direction(layer, vector), size=size, steps=steps, seed=seed, progress=False)
    """),
    "visualize: the negative direction rendered": ("check_visualize_feature", False, "does not excite", """
        def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
            vector = sae.W_dec[:, feature].detach()
            return vector, render(model, direction(layer, -vector), size=size, steps=steps, seed=seed, progress=False)
    """),
    "visualize: the image not returned whole": ("check_visualize_feature", False, "(1, 3, size, size)", """
        def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
            vector = sae.W_dec[:, feature].detach()
            return vector, render(model, direction(layer, vector), size=size, steps=steps, seed=seed, progress=False)[0]
    """),
    # -- exercises 8 and 9 --
    'evaluate: variance not centred': ('check_evaluate_sae', False, 'MEAN vector', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), x.pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: the fraction unexplained': ('check_evaluate_sae', False, 'UNexplained', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: a mean of per-dimension ratios': ('check_evaluate_sae', False, 'per-dimension', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - ((x - x_hat).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)).mean()),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: x.var()': ('check_evaluate_sae', False, 'own mean', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean()).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: L0 summed over the vectors': ('check_evaluate_sae', False, 'MEAN number of active', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: f >= 0 counted as active': ('check_evaluate_sae', False, 'f > 0 strictly', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f >= 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: one frequency per vector': ('check_evaluate_sae', False, 'one frequency per FEATURE', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=1)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: dense by count': ('check_evaluate_sae', False, 'FRACTION of vectors', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": active.sum(dim=0) > dense_threshold}
    """),
    'evaluate: dead as rare': ('check_evaluate_sae', False, 'NEVER fires', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency < dense_threshold, "dense": frequency > dense_threshold}
    """),
    'splice: clean run with the hook on': ('check_spliced_metrics', False, 'WITHOUT the hook', """
        def spliced_metrics(model, sae, layer, images, labels):
            def replace(module, inputs, acts):
                n, c, h, w = acts.shape
                x_hat = sae(acts.permute(0, 2, 3, 1).reshape(-1, c) / sae.input_scale)[0] * sae.input_scale
                return x_hat.reshape(n, h, w, c).permute(0, 3, 1, 2)

            with torch.no_grad():
                handle = model.hook_points[layer].register_forward_hook(replace)
                clean = model(images)
                try:
                    spliced = model(images)
                finally:
                    handle.remove()
            ce = torch.nn.functional.cross_entropy
            return {"clean_loss": float(ce(clean, labels)), "spliced_loss": float(ce(spliced, labels)),
                    "clean_accuracy": float((clean.argmax(-1) == labels).float().mean()),
                    "spliced_accuracy": float((spliced.argmax(-1) == labels).float().mean())}
    """),
    'splice: reshape without permute': ('check_spliced_metrics', False, 'reshape alone', """
        def spliced_metrics(model, sae, layer, images, labels):
            def replace(module, inputs, acts):
                n, c, h, w = acts.shape
                x_hat = sae(acts.reshape(-1, c) / sae.input_scale)[0] * sae.input_scale
                return x_hat.reshape(n, c, h, w)

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
    """),
    'splice: input_scale ignored': ('check_spliced_metrics', False, 'input_scale', """
        def spliced_metrics(model, sae, layer, images, labels):
            def replace(module, inputs, acts):
                n, c, h, w = acts.shape
                x_hat = sae(acts.permute(0, 2, 3, 1).reshape(-1, c))[0]
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
    """),
    "splice: the clean model's classes as labels": ('check_spliced_metrics', False, 'labels you are given', """
        def spliced_metrics(model, sae, layer, images, labels):
            def replace(module, inputs, acts):
                n, c, h, w = acts.shape
                x_hat = sae(acts.permute(0, 2, 3, 1).reshape(-1, c) / sae.input_scale)[0] * sae.input_scale
                return x_hat.reshape(n, h, w, c).permute(0, 3, 1, 2)

            with torch.no_grad():
                clean = model(images)
                handle = model.hook_points[layer].register_forward_hook(replace)
                try:
                    spliced = model(images)
                finally:
                    handle.remove()
            ce = torch.nn.functional.cross_entropy
            labels = clean.argmax(-1)
            return {"clean_loss": float(ce(clean, labels)), "spliced_loss": float(ce(spliced, labels)),
                    "clean_accuracy": float((clean.argmax(-1) == labels).float().mean()),
                    "spliced_accuracy": float((spliced.argmax(-1) == labels).float().mean())}
    """),
    'splice: losses summed': ('check_spliced_metrics', False, 'do not sum it', """
        def spliced_metrics(model, sae, layer, images, labels):
            def replace(module, inputs, acts):
                n, c, h, w = acts.shape
                x_hat = sae(acts.permute(0, 2, 3, 1).reshape(-1, c) / sae.input_scale)[0] * sae.input_scale
                return x_hat.reshape(n, h, w, c).permute(0, 3, 1, 2)

            with torch.no_grad():
                clean = model(images)
                handle = model.hook_points[layer].register_forward_hook(replace)
                try:
                    spliced = model(images)
                finally:
                    handle.remove()
            ce = lambda logits, y: torch.nn.functional.cross_entropy(logits, y, reduction='sum')
            return {"clean_loss": float(ce(clean, labels)), "spliced_loss": float(ce(spliced, labels)),
                    "clean_accuracy": float((clean.argmax(-1) == labels).float().mean()),
                    "spliced_accuracy": float((spliced.argmax(-1) == labels).float().mean())}
    """),
    'splice: the hook never removed': ('check_spliced_metrics', False, 'handle.remove()', """
        def spliced_metrics(model, sae, layer, images, labels):
            def replace(module, inputs, acts):
                n, c, h, w = acts.shape
                x_hat = sae(acts.permute(0, 2, 3, 1).reshape(-1, c) / sae.input_scale)[0] * sae.input_scale
                return x_hat.reshape(n, h, w, c).permute(0, 3, 1, 2)

            with torch.no_grad():
                clean = model(images)
                handle = model.hook_points[layer].register_forward_hook(replace)
                spliced = model(images)
            ce = torch.nn.functional.cross_entropy
            return {"clean_loss": float(ce(clean, labels)), "spliced_loss": float(ce(spliced, labels)),
                    "clean_accuracy": float((clean.argmax(-1) == labels).float().mean()),
                    "spliced_accuracy": float((spliced.argmax(-1) == labels).float().mean())}
    """),
}


def _mistake(code: str):
    return mistake_function(code, _namespace(), FUNCTIONS)


def _assert_mistake_caught(name: str) -> None:
    check, needs_hidden, hint, code = MISTAKES[name]
    message = assert_mistake_fails(getattr(checks, check), _mistake(code), hint, needs_hidden)
    assert "expected" in message and "hint" in message


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_plausible_mistake_fails_with_a_hint(name):
    _assert_mistake_caught(name)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistakes_fail_under_a_private_key(name):
    # The hidden cases the grader runs (other values, the same shapes) catch them all the same.
    with private_key(PRIVATE_KEYS[0]):
        _assert_mistake_caught(name)


def test_a_row_of_the_decoder_gets_the_decoder_column_hint():
    # W_dec[feature] has d_hidden entries: render's direction objective refuses it (an error, not a value).
    code = """
        def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
            vector = sae.W_dec[feature].detach()
            return vector, render(model, direction(layer, vector), size=size, steps=steps, seed=seed, progress=False)
    """
    with pytest.raises(CheckFailed, match=r"raised ValueError(.|\n)*decoder column: sae\.W_dec\[:, feature\]"):
        checks.check_visualize_feature(_mistake(code))


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
        checks.check_spliced_metrics(_mistake(code))


def test_every_exercise_has_a_mistake_that_fails():
    assert {check for check, *_ in MISTAKES.values()} == set(EXERCISES)


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_round_trip_mistakes_fail_their_visible_check(check):
    # tests/test_course.py grades these with nbgrader; here: each one fails already visibly.
    mistakes = load_mistakes(ASSIGNMENT_ID)
    grade_ids = {gid for _, gid in EXERCISES.values()}
    assert set(mistakes) == grade_ids == set(solution_cells(nbformat.read(SOLUTION, as_version=4)))
    with pytest.raises(CheckFailed):
        getattr(checks, check)(_mistake(mistakes[EXERCISES[check][1]]))


# =============================================================================================
# Library: what the chapter adds
# =============================================================================================
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
