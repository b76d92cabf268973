"""Chapter 5's plausible mistakes: ``NAMED`` (each fails its check with its hint: tests/test_chapters.py)
and ``MISTAKES``, the nbgrader round trip's mistakes submission: the first named mistake of each
exercise, the whole cells at the top (``tests/test_course.py`` puts them all into one submission and
requires the real nbgrader to give 0 to every exercise).
"""

from __future__ import annotations

from exercise_harness import SOLUTIONS, Mistake, first_mistakes

# (check, hidden cases needed, words the hint must contain, code[, error raised])
NAMED: dict[str, Mistake] = {
    # -- the round trip's submission: one whole cell per exercise, as a learner writes it --
    # The ReLU is forgotten: outputs go negative.
    "toy: no ReLU (a whole cell)": Mistake("check_toy_model", False, "forget the ReLU", '''
def toy_model(W, b, x, importance):
    out = x @ W.T @ W + b
    loss = (importance * (x - out) ** 2).sum(dim=-1).mean()
    return out, loss
'''),
    # The article's dimensions per feature, not features per dimension.
    "fpd: inverted (a whole cell)": Mistake("check_features_per_dimension", False, "inverted", '''
def features_per_dimension(W):
    return float(W.shape[0] / W.pow(2).sum())
'''),
    # The optimiser never steps: nothing trains.
    "train toy: no optimizer step (a whole cell)": Mistake("check_train_toy", False, "optimizer.step()", '''
def train_toy(model, steps=1000, batch_size=512, lr=1e-2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x = model.generate_batch(batch_size, generator)
        loss = (model.importance * (x - model(x)) ** 2).sum(-1).mean(0).sum()
        optimizer.zero_grad()
        loss.backward()
        losses.append(loss.item())
    return losses
'''),
    # F.mse_loss-style error: averaged over d_in instead of summed.
    "sae: the error averaged over d_in": Mistake("check_sae_forward", False, "SUMMED over d_in", '''
def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
    x_hat = f @ W_dec.T + b_dec
    return x_hat, f, ((x - x_hat) ** 2).mean() + l1_coeff * f.abs().sum(dim=-1).mean()
'''),
    # The dictionary is never renormalised.
    "train sae: never renormalised (a whole cell)": Mistake("check_train_sae", False, "divide each column of W_dec by its norm", '''
def train_sae(sae, data, steps=1000, lr=1e-3, l1_coeff=0.1, batch_size=256, seed=0):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x = data[torch.randint(len(data), (batch_size,), generator=generator)]
        loss = sae.loss(x, l1_coeff).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
'''),
    # reshape without moving the channels last.
    "vectors: reshape only (a whole cell)": Mistake("check_layer_vectors", False, "reshape alone", '''
def layer_vectors(acts):
    return acts.reshape(-1, acts.shape[1])
'''),
    # The encoder row instead of the decoder column.
    "visualize: encoder row (a whole cell)": Mistake("check_visualize_feature", False, "ENCODER", '''
def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
    vector = sae.W_enc[feature].detach()
    image = render(model, direction(layer, vector), size=size, steps=steps, seed=seed, progress=False)
    return vector, image
'''),
    # The variance about zero, not about the mean vector.
    "evaluate: variance about zero": Mistake("check_evaluate_sae", False, "MEAN vector", '''
def evaluate_sae(sae, x, dense_threshold=0.1):
    with torch.no_grad():
        x_hat, f = sae(x)
    active = (f > 0).float()
    frequency = active.mean(dim=0)
    fve = 1 - (x - x_hat).pow(2).sum() / x.pow(2).sum()
    return {"l0": float(active.sum(dim=1).mean()), "fve": float(fve), "frequency": frequency,
            "dead": frequency == 0, "dense": frequency > dense_threshold}
'''),
    # The clean run made with the hook already on: both runs are spliced.
    "splice: both runs spliced": Mistake("check_spliced_metrics", False, "WITHOUT the hook", '''
def spliced_metrics(model, sae, layer, images, labels):
    def replace(module, inputs, acts):
        n, c, h, w = acts.shape
        x_hat = sae(acts.permute(0, 2, 3, 1).reshape(-1, c) / sae.input_scale)[0] * sae.input_scale
        return x_hat.reshape(n, h, w, c).permute(0, 3, 1, 2)

    with torch.no_grad():
        handle = model.hook_points[layer].register_forward_hook(replace)
        try:
            clean = model(images)
            spliced = model(images)
        finally:
            handle.remove()
    ce = torch.nn.functional.cross_entropy
    return {"clean_loss": float(ce(clean, labels)), "spliced_loss": float(ce(spliced, labels)),
            "clean_accuracy": float((clean.argmax(-1) == labels).float().mean()),
            "spliced_accuracy": float((spliced.argmax(-1) == labels).float().mean())}
'''),
    # -- more plausible mistakes --
    # -- exercise 1 --
    "toy: no ReLU": Mistake("check_toy_model", False, "forget the ReLU", """
        def toy_model(W, b, x, importance):
            out = x @ W.T @ W + b
            return out, (importance * (x - out) ** 2).sum(-1).mean()
    """),
    "toy: no bias": Mistake("check_toy_model", False, "forget the bias", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W)
            return out, (importance * (x - out) ** 2).sum(-1).mean()
    """),
    "toy: bias after the ReLU": Mistake("check_toy_model", False, "BEFORE the ReLU", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W) + b
            return out, (importance * (x - out) ** 2).sum(-1).mean()
    """),
    "toy: unweighted loss": Mistake("check_toy_model", False, "importance I_i", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, ((x - out) ** 2).sum(-1).mean()
    """),
    "toy: mean over the features": Mistake("check_toy_model", False, "SUM over the features", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, (importance * (x - out) ** 2).mean()
    """),
    "toy: importance inside the square": Mistake("check_toy_model", False, "not inside the square", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, ((importance * (x - out)) ** 2).sum(-1).mean()
    """),
    "toy: summed over the batch": Mistake("check_toy_model", False, "average over the batch", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, (importance * (x - out) ** 2).sum()
    """),
    "toy: another activation": Mistake("check_toy_model", False, "relu(x @ W.T @ W + b)", """
        def toy_model(W, b, x, importance):
            out = torch.sigmoid(x @ W.T @ W + b)
            return out, (importance * (x - out) ** 2).sum(-1).mean()
    """),
    "toy: one loss per row": Mistake("check_toy_model", False, "the loss is one number", """
        def toy_model(W, b, x, importance):
            out = torch.relu(x @ W.T @ W + b)
            return out, (importance * (x - out) ** 2).sum(-1)
    """),
    # -- exercise 2 --
    "fpd: inverted": Mistake("check_features_per_dimension", False, "inverted", """
        def features_per_dimension(W):
            return float(W.shape[0] / W.pow(2).sum())
    """),
    "fpd: divided by the features": Mistake("check_features_per_dimension", False, "DIMENSIONS", """
        def features_per_dimension(W):
            return float(W.pow(2).sum() / W.shape[1])
    """),
    "fpd: norms not squared": Mistake("check_features_per_dimension", False, "square the norms", """
        def features_per_dimension(W):
            return float(W.norm(dim=0).sum() / W.shape[0])
    """),
    "fpd: counting represented features": Mistake("check_features_per_dimension", False, "do not count", """
        def features_per_dimension(W):
            return float((W.norm(dim=0) > 0.5).sum() / W.shape[0])
    """),
    # -- exercise 3 --
    "train toy: no optimizer step": Mistake("check_train_toy", False, "optimizer.step()", """
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
    "train toy: gradient ascent": Mistake("check_train_toy", False, "went UP", """
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
    "train toy: only the last loss": Mistake("check_train_toy", False, "one loss per step", """
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
    "train toy: losses averaged over the instances": Mistake("check_train_toy", False, "do not average them", """
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
    "train toy: batches not drawn with the seed": Mistake("check_train_toy", False, "the first loss should be", """
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
    "train toy: the same batch every step": Mistake("check_train_toy", False, "FRESH batch", """
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
    "train toy: gradients never zeroed": Mistake("check_train_toy", False, "zero the gradients", """
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
    "train toy: SGD": Mistake("check_train_toy", False, "torch.optim.Adam", """
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
    "sae: no ReLU": Mistake("check_sae_forward", False, "forget the ReLU", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = (x - b_dec) @ W_enc.T + b_enc
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: b_dec not subtracted": Mistake("check_sae_forward", False, "subtract the decoder bias", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu(x @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: tied encoder": Mistake("check_sae_forward", False, "TIED", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_dec + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: no decoder bias": Mistake("check_sae_forward", False, "decoder bias b_dec", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: F.mse_loss": Mistake("check_sae_forward", False, "SUMMED over d_in", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, torch.nn.functional.mse_loss(x_hat, x) + l1_coeff * f.abs().sum(-1).mean()
    """),
    "sae: L1 averaged over the features": Mistake("check_sae_forward", False, "SUMMED over the features", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean() + l1_coeff * f.abs().mean()
    """),
    "sae: one loss per vector": Mistake("check_sae_forward", False, "the loss is one number", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1) + l1_coeff * f.abs().sum(-1)
    """),
    "sae: no L1 penalty": Mistake("check_sae_forward", False, "L1 penalty", """
        def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
            f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
            x_hat = f @ W_dec.T + b_dec
            return x_hat, f, ((x - x_hat) ** 2).sum(-1).mean()
    """),
    # -- exercise 5 --
    "train sae: no renormalisation": Mistake("check_train_sae", False, "unit norm", """
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
    "train sae: no optimizer step": Mistake("check_train_sae", False, "did not fall", """
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
    "train sae: no L1 penalty": Mistake("check_train_sae", False, "not recovered", """
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
    "vectors: reshape only": Mistake("check_layer_vectors", False, "reshape alone", """
        def layer_vectors(acts):
            return acts.reshape(-1, acts.shape[1])
    """),
    "vectors: transposed": Mistake("check_layer_vectors", False, "one ROW", """
        def layer_vectors(acts):
            return acts.permute(1, 0, 2, 3).reshape(acts.shape[1], -1)
    """),
    "vectors: columns before rows": Mistake("check_layer_vectors", False, "ROW (y)", """
        def layer_vectors(acts):
            return acts.permute(0, 3, 2, 1).reshape(-1, acts.shape[1])
    """),
    # -- exercise 7 --
    "visualize: encoder row": Mistake("check_visualize_feature", False, "ENCODER", """
        def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
            vector = sae.W_enc[feature].detach()
            return vector, render(model, direction(layer, vector), size=size, steps=steps, seed=seed, progress=False)
    """),
    "visualize: the negative direction rendered": Mistake("check_visualize_feature", False, "does not excite", """
        def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
            vector = sae.W_dec[:, feature].detach()
            return vector, render(model, direction(layer, -vector), size=size, steps=steps, seed=seed, progress=False)
    """),
    "visualize: the image not returned whole": Mistake("check_visualize_feature", False, "(1, 3, size, size)", """
        def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
            vector = sae.W_dec[:, feature].detach()
            return vector, render(model, direction(layer, vector), size=size, steps=steps, seed=seed, progress=False)[0]
    """),
    # -- exercises 8 and 9 --
    'evaluate: variance not centred': Mistake('check_evaluate_sae', False, 'MEAN vector', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), x.pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: the fraction unexplained': Mistake('check_evaluate_sae', False, 'UNexplained', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: a mean of per-dimension ratios': Mistake('check_evaluate_sae', False, 'per-dimension', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - ((x - x_hat).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)).mean()),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: x.var()': Mistake('check_evaluate_sae', False, 'own mean', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean()).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: L0 summed over the vectors': Mistake('check_evaluate_sae', False, 'MEAN number of active', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: f >= 0 counted as active': Mistake('check_evaluate_sae', False, 'f > 0 strictly', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f >= 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: one frequency per vector': Mistake('check_evaluate_sae', False, 'one frequency per FEATURE', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=1)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": frequency > dense_threshold}
    """),
    'evaluate: dense by count': Mistake('check_evaluate_sae', False, 'FRACTION of vectors', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency == 0, "dense": active.sum(dim=0) > dense_threshold}
    """),
    'evaluate: dead as rare': Mistake('check_evaluate_sae', False, 'NEVER fires', """
        def evaluate_sae(sae, x, dense_threshold=0.1):
            with torch.no_grad():
                x_hat, f = sae(x)
            active = (f > 0).float()
            frequency = active.mean(dim=0)
            error, variance = (x - x_hat).pow(2).sum(), (x - x.mean(dim=0)).pow(2).sum()
            return {"l0": float(active.sum(dim=1).mean()), "fve": float(1 - error / variance),
                    "frequency": frequency, "dead": frequency < dense_threshold, "dense": frequency > dense_threshold}
    """),
    'splice: clean run with the hook on': Mistake('check_spliced_metrics', False, 'WITHOUT the hook', """
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
    'splice: reshape without permute': Mistake('check_spliced_metrics', False, 'reshape alone', """
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
    'splice: input_scale ignored': Mistake('check_spliced_metrics', False, 'input_scale', """
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
    "splice: the clean model's classes as labels": Mistake('check_spliced_metrics', False, 'labels you are given', """
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
    'splice: losses summed': Mistake('check_spliced_metrics', False, 'do not sum it', """
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
    'splice: the hook never removed': Mistake('check_spliced_metrics', False, 'handle.remove()', """
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


MISTAKES: dict[str, str] = first_mistakes(NAMED, SOLUTIONS / "ch5_closing_thoughts" / "ch5_exercises.ipynb")
