"""Plausible but wrong solution cells for chapter 4, one per exercise (keyed by grade_id).

``tests/test_course.py`` submits them all in one notebook and requires 0 points on every
test cell; ``tests/test_ch4.py`` checks that each fails its check.
"""

MISTAKES: dict[str, str] = {
    # Ranks by the mean over positions: the channel objective, not a dataset example's score.
    "ch4-top-k-examples": '''
def top_k_examples(model, images: torch.Tensor, layer: str, channel: int, k: int = 9,
                   batch_size: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ranks by the mean (wrong)."""
    scores, flats, width = [], [], None
    for start in range(0, len(images), batch_size):
        with torch.no_grad():
            acts = cs.activations(model, images[start : start + batch_size], [layer])[layer]
        a = acts[:, channel].flatten(1)
        width = acts.shape[-1]
        scores.append(a.mean(dim=1))
        flats.append(a.argmax(dim=1))
    scores, flats = torch.cat(scores), torch.cat(flats)
    order = torch.sort(scores, descending=True, stable=True).indices[:k]
    return order, scores[order], torch.stack([flats[order] // width, flats[order] % width], dim=1)
'''.strip(),
    # Slides the window back into the image instead of filling outside pixels.
    "ch4-receptive-patch": '''
def receptive_patch(image: torch.Tensor, row: int, col: int, size: int, jump: int,
                    start: float, fill: float = 0.5) -> torch.Tensor:
    """Slides the patch into the image (wrong)."""
    half = (size - 1) // 2
    _, h, w = image.shape
    top = min(max(int(start + row * jump) - half, 0), max(h - size, 0))
    left = min(max(int(start + col * jump) - half, 0), max(w - size, 0))
    patch = image.new_full((3, size, size), fill)
    part = image[:, top : top + size, left : left + size]
    patch[:, : part.shape[1], : part.shape[2]] = part
    return patch
'''.strip(),
    # Adds the diversity term: rewards images that look alike.
    "ch4-diverse-render": '''
def diverse_render(model, layer: str, channel_index: int, n: int = 4, strength: float = 1.0,
                   diversity_layer: str | None = None, size: int = 32, steps: int = 48,
                   seed: int = 0) -> torch.Tensor:
    """Adds the diversity term (wrong sign)."""
    objective = channel(layer, channel_index) + strength * diversity(diversity_layer or layer)
    return render(model, objective, batch=n, size=size, steps=steps, seed=seed, progress=False)
'''.strip(),
    # Counts the distinct classes instead of their spread.
    "ch4-effective-classes": '''
def effective_classes(labels) -> float:
    """The number of distinct classes (wrong)."""
    if isinstance(labels, torch.Tensor):
        labels = labels.tolist()
    return float(len({lab for lab in labels if lab != -1}))
'''.strip(),
    # Reads the incoming weights weight[channel] instead of the outgoing weight[:, channel].
    "ch4-outgoing-weights": '''
def outgoing_weights(weight: torch.Tensor, channel: int, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The incoming weights (wrong)."""
    summed = weight[channel].flatten(1).sum(dim=1)
    targets = torch.sort(summed, descending=True, stable=True).indices[:k]
    return targets, summed[targets]
'''.strip(),
    # Keeps the examples that do not excite the unit (score 0) and does not split them.
    "ch4-facets": '''
def facets(model, images: torch.Tensor, layer: str, channel: int, k: int = 10,
           batch_size: int = 8) -> list[list[int]]:
    """Every top example in one group (wrong)."""
    indices, scores, positions = top_k_examples(model, images, layer, channel, k, batch_size)
    return [indices.tolist()]
'''.strip(),
}
