"""Chapter 4's plausible mistakes: ``NAMED`` (each fails its check with its hint: tests/test_chapters.py)
and ``MISTAKES``, the nbgrader round trip's mistakes submission: the first named mistake of each
exercise, the whole cells at the top (``tests/test_course.py`` puts them all into one submission and
requires the real nbgrader to give 0 to every exercise).
"""

from __future__ import annotations

from exercise_harness import SOLUTIONS, Mistake, first_mistakes

# (check, hidden cases needed, words the hint must contain, code[, error raised])
NAMED: dict[str, Mistake] = {
    # -- the round trip's submission: one whole cell per exercise, as a learner writes it --
    # Ranks by the mean over positions: the channel objective, not a dataset example's score.
    "top-k: ranked by the mean, batch by batch": Mistake("check_top_k_examples", False, "MEAN over positions", '''
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
'''),
    # Slides the window back into the image instead of filling outside pixels.
    "patch: slid into the image, pasted into a filled patch": Mistake("check_receptive_patch", False, "must not move", '''
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
'''),
    # Adds the diversity term: rewards images that look alike.
    "render: diversity added (a whole cell)": Mistake("check_diverse_render", False, "SUBTRACT", '''
def diverse_render(model, layer: str, channel_index: int, n: int = 4, strength: float = 1.0,
                   diversity_layer: str | None = None, size: int = 32, steps: int = 48,
                   seed: int = 0) -> torch.Tensor:
    """Adds the diversity term (wrong sign)."""
    objective = channel(layer, channel_index) + strength * diversity(diversity_layer or layer)
    return render(model, objective, batch=n, size=size, steps=steps, seed=seed, progress=False)
'''),
    # Counts the distinct classes instead of their spread.
    "classes: distinct count (a whole cell)": Mistake("check_effective_classes", False, "distinct classes", '''
def effective_classes(labels) -> float:
    """The number of distinct classes (wrong)."""
    if isinstance(labels, torch.Tensor):
        labels = labels.tolist()
    return float(len({lab for lab in labels if lab != -1}))
'''),
    # Reads the incoming weights weight[channel] instead of the outgoing weight[:, channel].
    "weights: incoming (a whole cell)": Mistake("check_outgoing_weights", False, "INCOMING", '''
def outgoing_weights(weight: torch.Tensor, channel: int, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The incoming weights (wrong)."""
    summed = weight[channel].flatten(1).sum(dim=1)
    targets = torch.sort(summed, descending=True, stable=True).indices[:k]
    return targets, summed[targets]
'''),
    # Keeps the examples that do not excite the unit (score 0) and does not split them.
    "facets: every top example in one group": Mistake("check_facets", False, "score <= 0", '''
def facets(model, images: torch.Tensor, layer: str, channel: int, k: int = 10,
           batch_size: int = 8) -> list[list[int]]:
    """Every top example in one group (wrong)."""
    indices, scores, positions = top_k_examples(model, images, layer, channel, k, batch_size)
    return [indices.tolist()]
'''),
    # -- more plausible mistakes --
    "top-k: ranked by the mean": Mistake(
        "check_top_k_examples",
        False,
        "MEAN",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            order = torch.sort(acts.flatten(1).mean(1), descending=True, stable=True).indices[:k]
            flat = acts.flatten(1).argmax(1)[order]
            w = acts.shape[-1]
            return order, acts.flatten(1).max(1).values[order], torch.stack([flat // w, flat % w], 1)
    """,
    ),
    "top-k: smallest first": Mistake(
        "check_top_k_examples",
        False,
        "descending",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, stable=True).indices[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] // w, flat[order] % w], 1)
    """,
    ),
    "top-k: one pass over everything": Mistake(
        "check_top_k_examples",
        False,
        "stream",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            with torch.no_grad():
                acts = cs.activations(model, images, [layer])[layer][:, channel]
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, descending=True, stable=True).indices[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] // w, flat[order] % w], 1)
    """,
    ),
    "top-k: indices within the batch": Mistake(
        "check_top_k_examples",
        False,
        "batch's start",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            best = []
            for s in range(0, len(images), batch_size):
                with torch.no_grad():
                    a = cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                mx, flat = a.flatten(1).max(1)
                best += [(float(m), i, int(f), a.shape[-1]) for i, (m, f) in enumerate(zip(mx, flat))]
            best = sorted(best, key=lambda t: -t[0])[:k]
            return (torch.tensor([b[1] for b in best]), torch.tensor([b[0] for b in best]),
                    torch.tensor([[b[2] // b[3], b[2] % b[3]] for b in best]))
    """,
    ),
    "top-k: (col, row)": Mistake(
        "check_top_k_examples",
        False,
        "swapped",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, descending=True, stable=True).indices[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] % w, flat[order] // w], 1)
    """,
    ),
    "top-k: ties, higher index first": Mistake(
        "check_top_k_examples",
        False,
        "ties",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, stable=True).indices.flip(0)[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] // w, flat[order] % w], 1)
    """,
    ),
    "top-k: last batch dropped": Mistake(
        "check_top_k_examples",
        False,
        "shorter batch",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images) - batch_size + 1, batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, descending=True, stable=True).indices[:k]
            w = acts.shape[-1]
            return order, mx[order], torch.stack([flat[order] // w, flat[order] % w], 1)
    """,
    ),
    "top-k: flat index divided by the height": Mistake(
        "check_top_k_examples",
        True,
        "WIDTH",
        """
        def top_k_examples(model, images, layer, channel, k=9, batch_size=8):
            acts = torch.cat([cs.activations(model, images[s:s + batch_size], [layer])[layer][:, channel]
                              for s in range(0, len(images), batch_size)]).detach()
            mx, flat = acts.flatten(1).max(1)
            order = torch.sort(mx, descending=True, stable=True).indices[:k]
            h = acts.shape[-2]
            return order, mx[order], torch.stack([flat[order] // h, flat[order] % h], 1)
    """,
    ),
    "patch: rows and columns swapped": Mistake(
        "check_receptive_patch",
        False,
        "swapped",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            top, left = int(start + col * jump) - half, int(start + row * jump) - half
            padded = torch.nn.functional.pad(image, (size, size, size, size), value=fill)
            return padded[:, top + size : top + 2 * size, left + size : left + 2 * size]
    """,
    ),
    "patch: no start": Mistake(
        "check_receptive_patch",
        False,
        "forget the start",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            top, left = row * jump - half, col * jump - half
            padded = torch.nn.functional.pad(image, (size, size, size, size), value=fill)
            return padded[:, top + size : top + 2 * size, left + size : left + 2 * size]
    """,
    ),
    "patch: slid into the image": Mistake(
        "check_receptive_patch",
        False,
        "must not move",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            h, w = image.shape[-2:]
            top = min(max(int(start + row * jump) - half, 0), max(h - size, 0))
            left = min(max(int(start + col * jump) - half, 0), max(w - size, 0))
            padded = torch.nn.functional.pad(image, (0, size, 0, size), value=fill)
            return padded[:, top : top + size, left : left + size]
    """,
    ),
    "patch: zero padding": Mistake(
        "check_receptive_patch",
        False,
        "not 0",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            top, left = int(start + row * jump) - half, int(start + col * jump) - half
            padded = torch.nn.functional.pad(image, (size, size, size, size))
            return padded[:, top + size : top + 2 * size, left + size : left + 2 * size]
    """,
    ),
    "patch: padded by size only": Mistake(
        "check_receptive_patch",
        True,
        "always size x size",
        """
        def receptive_patch(image, row, col, size, jump, start, fill=0.5):
            half = (size - 1) // 2
            top, left = int(start + row * jump) - half, int(start + col * jump) - half
            padded = torch.nn.functional.pad(image, (size, size, size, size), value=fill)
            return padded[:, top + size : top + 2 * size, left + size : left + 2 * size]
    """,
    ),
    "render: diversity added": Mistake(
        "check_diverse_render",
        False,
        "SUBTRACT",
        """
        def diverse_render(model, layer, channel_index, n=4, strength=1.0, diversity_layer=None,
                           size=32, steps=48, seed=0):
            objective = channel(layer, channel_index) + strength * diversity(diversity_layer or layer)
            return render(model, objective, batch=n, size=size, steps=steps, seed=seed, progress=False)
    """,
    ),
    "render: no diversity term": Mistake(
        "check_diverse_render",
        False,
        "subtract strength",
        """
        def diverse_render(model, layer, channel_index, n=4, strength=1.0, diversity_layer=None,
                           size=32, steps=48, seed=0):
            return render(model, channel(layer, channel_index), batch=n, size=size, steps=steps,
                          seed=seed, progress=False)
    """,
    ),
    "render: one image at a time": Mistake(
        "check_diverse_render",
        False,
        "ONE batch",
        """
        def diverse_render(model, layer, channel_index, n=4, strength=1.0, diversity_layer=None,
                           size=32, steps=48, seed=0):
            objective = channel(layer, channel_index) - strength * diversity(diversity_layer or layer)
            return render(model, objective, size=size, steps=steps, seed=seed, progress=False)
    """,
    ),
    "classes: distinct count": Mistake(
        "check_effective_classes",
        False,
        "distinct classes",
        """
        def effective_classes(labels):
            labels = labels.tolist() if isinstance(labels, torch.Tensor) else labels
            return float(len({lab for lab in labels if lab != -1}))
    """,
    ),
    "classes: the entropy itself": Mistake(
        "check_effective_classes",
        False,
        "entropy itself",
        """
        def effective_classes(labels):
            labels = labels.tolist() if isinstance(labels, torch.Tensor) else labels
            counts = Counter(lab for lab in labels if lab != -1)
            total = sum(counts.values())
            return -sum(c / total * math.log2(c / total) for c in counts.values())
    """,
    ),
    "classes: e ** bits": Mistake(
        "check_effective_classes",
        False,
        "mixed bases",
        """
        def effective_classes(labels):
            labels = labels.tolist() if isinstance(labels, torch.Tensor) else labels
            counts = Counter(lab for lab in labels if lab != -1)
            total = sum(counts.values())
            return math.exp(-sum(c / total * math.log2(c / total) for c in counts.values()))
    """,
    ),
    "classes: unlabelled counted": Mistake(
        "check_effective_classes",
        True,
        "-1",
        """
        def effective_classes(labels):
            labels = labels.tolist() if isinstance(labels, torch.Tensor) else labels
            counts = Counter(labels)
            total = sum(counts.values())
            return 2 ** -sum(c / total * math.log2(c / total) for c in counts.values())
    """,
    ),
    "classes: a Counter of tensor elements": Mistake(
        "check_effective_classes",
        True,
        "tolist",
        """
        def effective_classes(labels):
            counts = Counter(lab for lab in labels if lab != -1)
            total = sum(counts.values())
            return 2 ** -sum(c / total * math.log2(c / total) for c in counts.values())
    """,
    ),
    "weights: incoming": Mistake(
        "check_outgoing_weights",
        False,
        "INCOMING",
        """
        def outgoing_weights(weight, channel, k=5):
            summed = weight[channel].flatten(1).sum(1)
            targets = torch.sort(summed, descending=True, stable=True).indices[:k]
            return targets, summed[targets]
    """,
    ),
    "weights: by magnitude": Mistake(
        "check_outgoing_weights",
        False,
        "magnitude",
        """
        def outgoing_weights(weight, channel, k=5):
            summed = weight[:, channel].flatten(1).sum(1)
            targets = torch.sort(summed.abs(), descending=True, stable=True).indices[:k]
            return targets, summed[targets]
    """,
    ),
    "weights: maximum over the kernel": Mistake(
        "check_outgoing_weights",
        False,
        "SUM",
        """
        def outgoing_weights(weight, channel, k=5):
            peak = weight[:, channel].flatten(1).amax(1)
            targets = torch.sort(peak, descending=True, stable=True).indices[:k]
            return targets, peak[targets]
    """,
    ),
    "weights: ties, higher index first": Mistake(
        "check_outgoing_weights",
        False,
        "ties",
        """
        def outgoing_weights(weight, channel, k=5):
            summed = weight[:, channel].flatten(1).sum(1)
            targets = torch.sort(summed, stable=True).indices.flip(0)[:k]
            return targets, summed[targets]
    """,
    ),
    "facets: examples that do not fire kept": Mistake(
        "check_facets",
        False,
        "score <= 0",
        """
        def facets(model, images, layer, channel, k=10, batch_size=8):
            with torch.no_grad():
                acts = cs.activations(model, images, [layer])[layer]
            scores = acts[:, channel].flatten(1).max(1).values
            top = torch.sort(scores, descending=True, stable=True).indices[:k]
            vectors = acts[top].flatten(2).amax(2)
            others = torch.cat([vectors[:, :channel], vectors[:, channel + 1:]], 1)
            c = count_clusters(others)
            return [[int(i) for i, a in zip(top, c.assignment) if a == g] for g in range(c.n)]
    """,
    ),
    "facets: one group": Mistake(
        "check_facets",
        False,
        "one group",
        """
        def facets(model, images, layer, channel, k=10, batch_size=8):
            with torch.no_grad():
                acts = cs.activations(model, images, [layer])[layer]
            scores = acts[:, channel].flatten(1).max(1).values
            top = torch.sort(scores, descending=True, stable=True).indices[:k]
            return [[int(i) for i in top if scores[i] > 0]]
    """,
    ),
}


MISTAKES: dict[str, str] = first_mistakes(NAMED, SOLUTIONS / "ch4_polysemanticity" / "ch4_exercises.ipynb")
