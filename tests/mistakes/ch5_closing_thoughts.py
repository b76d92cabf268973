"""Plausible but wrong solutions for chapter 5's exercises, one per solution cell.

Each value is the source of a complete solution cell: the same ``def`` as the solution notebook
with a wrong body. Put together in one submission they must score 0 on every test cell.
"""

MISTAKES: dict[str, str] = {
    # The ReLU is forgotten: outputs go negative.
    "ch5-toy-model": '''
def toy_model(W, b, x, importance):
    out = x @ W.T @ W + b
    loss = (importance * (x - out) ** 2).sum(dim=-1).mean()
    return out, loss
''',
    # The article's dimensions per feature, not features per dimension.
    "ch5-features-per-dim": '''
def features_per_dimension(W):
    return float(W.shape[0] / W.pow(2).sum())
''',
    # The optimiser never steps: nothing trains.
    "ch5-train-toy": '''
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
''',
    # F.mse_loss-style error: averaged over d_in instead of summed.
    "ch5-sae-forward": '''
def sae_forward(x, W_enc, b_enc, W_dec, b_dec, l1_coeff):
    f = torch.relu((x - b_dec) @ W_enc.T + b_enc)
    x_hat = f @ W_dec.T + b_dec
    return x_hat, f, ((x - x_hat) ** 2).mean() + l1_coeff * f.abs().sum(dim=-1).mean()
''',
    # The dictionary is never renormalised.
    "ch5-train-sae": '''
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
''',
    # reshape without moving the channels last.
    "ch5-layer-vectors": '''
def layer_vectors(acts):
    return acts.reshape(-1, acts.shape[1])
''',
    # The encoder row instead of the decoder column.
    "ch5-visualize-feature": '''
def visualize_feature(model, sae, layer, feature, size=64, steps=None, seed=0):
    vector = sae.W_enc[feature].detach()
    image = render(model, direction(layer, vector), size=size, steps=steps, seed=seed, progress=False)
    return vector, image
''',
    # The variance about zero, not about the mean vector.
    "ch5-evaluate-sae": '''
def evaluate_sae(sae, x, dense_threshold=0.1):
    with torch.no_grad():
        x_hat, f = sae(x)
    active = (f > 0).float()
    frequency = active.mean(dim=0)
    fve = 1 - (x - x_hat).pow(2).sum() / x.pow(2).sum()
    return {"l0": float(active.sum(dim=1).mean()), "fve": float(fve), "frequency": frequency,
            "dead": frequency == 0, "dense": frequency > dense_threshold}
''',
    # The clean run made with the hook already on: both runs are spliced.
    "ch5-spliced-metrics": '''
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
''',
}
