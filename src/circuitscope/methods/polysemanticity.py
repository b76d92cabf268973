"""Polysemanticity: measuring how many unrelated things a unit responds to, and following a
feature into the next layer.

"Zoom In" (Olah et al. 2020, section "Polysemantic Neurons") shows units that respond to
several unrelated inputs: 4e:55 fires for cat faces, fronts of cars and cat legs. The evidence
is of two kinds, both here:

* **dataset examples from several unrelated groups**: :func:`measure_polysemanticity` (a
  heuristic of this course: the articles count nothing, they look) takes a unit's
  top examples (:func:`circuitscope.methods.dataset_examples.top_examples`) and asks how many
  different things they are, in two ways: by their class labels (:func:`label_entropy`,
  :func:`effective_classes`, when the folder has classes) and by clustering what the network
  itself sees there (:func:`example_features`, :func:`count_clusters`);
* **diverse feature visualizations**: :func:`diverse_renders` optimises several images for the
  unit at once with a penalty on their similarity ("Feature Visualization", Olah et al. 2017,
  section "Diversity").

"Zoom In" (section "Cars in Superposition") then follows a feature into the next layer: the
car feature of 4c:447 goes, with positive weights, to mixed4d units that mostly detect dogs; its
figure names 4d:417, 4d:241 and 4d:277 as examples, followed by "...", without ranking them.
:func:`outgoing_weights` ranks a unit's outgoing weights (through bottlenecks as expanded
weights, summed over space): that ranking is this library's own measurement.

What the measures measure, and their limits:

* Label entropy counts *classes*, not *things*: a dog unit looking at 20 dog breeds has high
  entropy and is not polysemantic, and a unit for "car fronts" and "cat faces" may show both in
  one class. Use it with coarse, unrelated classes (a folder per kind of thing).
* Clusters of the network's own activation vectors (at the unit's best position, with the unit
  itself left out: "what else is going on where it fires") count groups of examples that
  the layer represents differently. Different poses of one object may form groups too, and
  unrelated things that share a texture may not. The count depends on ``k``, on the layer the
  features come from and on the silhouette threshold; it is a number to look at next to the
  examples themselves, not a replacement for them.
* Neither measure sees everything a unit does: only what is in the folder, and only its
  strongest responses.

:class:`PlantedPatternModel` and :func:`planted_images` / :func:`write_planted_folder` give
data whose answer is known: unit ``units:0`` responds to a red cross *and* to a checkerboard
(two unrelated patterns), ``units:1`` only to the cross, ``units:2`` only to the checkerboard.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.device import one_cpu_thread, profile
from ..core.models.inceptionv1 import BLOCKS, InceptionV1
from ..core.provenance import weights_state
from ..core.units import expand_short_name, format_unit, layer_channels_of
from .circuits import expanded_weights
from .dataset_examples import WARNINGS, TopExamples, fields_for, resolve_unit, top_examples, unit_activations
from .optvis import channel, diversity, render

__all__ = [
    "Clusters",
    "Polysemanticity",
    "count_clusters",
    "diverse_renders",
    "effective_classes",
    "example_features",
    "kmeans",
    "label_entropy",
    "measure_polysemanticity",
    "next_layer",
    "outgoing_weight_vector",
    "outgoing_weights",
    "silhouette",
]  # fmt: skip


# -- labels -----------------------------------------------------------------------------------
def _label_counts(labels) -> Counter:
    if isinstance(labels, torch.Tensor):
        labels = labels.tolist()
    return Counter(lab for lab in labels if lab is not None and lab != -1)


def label_entropy(labels, base: float = 2.0) -> float:
    """Shannon entropy of the class labels among a unit's top examples (bits by default).

    ``labels``: a sequence (or ``(k,)`` tensor) of class indices or names; -1 and None (no
    class) are left out. 0 when all examples share one class; ``log2(m)`` when they spread
    evenly over ``m`` classes. NaN when no example has a class.
    """
    counts = _label_counts(labels)
    total = sum(counts.values())
    if total == 0:
        return float("nan")
    h = -sum((c / total) * math.log(c / total) for c in counts.values())
    return h / math.log(base) + 0.0  # + 0.0: no "-0.0"


def effective_classes(labels) -> float:
    """``2 ** label_entropy(labels)``: how many equally common classes would give the same
    spread (the perplexity). 1 for a single class, ``m`` for ``m`` classes in equal numbers."""
    return 2.0 ** label_entropy(labels, base=2.0)


# -- clusters ---------------------------------------------------------------------------------
def kmeans(
    x: torch.Tensor, k: int, seed: int = 0, iters: int = 100, restarts: int = 4
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """k-means (k-means++ starts, Lloyd iterations) of ``x: (n, d)`` into ``k`` clusters.

    Returns ``(assignment (n,) int64, centres (k, d), inertia)``, the best of ``restarts``
    seeded runs (the same ``seed`` gives the same answer).
    """
    x = x.detach().double().cpu()
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must lie in 1..{n} (the number of points), got {k}")
    g = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(restarts):
        centres = x[torch.randint(n, (1,), generator=g)]
        for _ in range(1, k):
            d2 = torch.cdist(x, centres).min(1).values ** 2
            probs = d2 / d2.sum() if d2.sum() > 0 else torch.full((n,), 1.0 / n, dtype=x.dtype)
            centres = torch.cat([centres, x[torch.multinomial(probs, 1, generator=g)]])
        for _ in range(iters):
            assign = torch.cdist(x, centres).argmin(1)
            new = torch.stack(
                [x[assign == j].mean(0) if (assign == j).any() else centres[j] for j in range(k)]
            )
            if torch.allclose(new, centres):
                break
            centres = new
        assign = torch.cdist(x, centres).argmin(1)
        inertia = float(((x - centres[assign]) ** 2).sum())
        if best is None or inertia < best[2] - 1e-12:
            best = (assign, centres, inertia)
    return best[0], best[1].float(), best[2]


def silhouette(x: torch.Tensor, assignment: torch.Tensor) -> float:
    """Mean silhouette of a clustering (Rousseeuw 1987): for each point ``(b - a) / max(a, b)``,
    ``a`` its mean distance to its own cluster, ``b`` to the nearest other cluster.

    In [-1, 1]: near 1, tight clusters far apart; near 0, no structure. Points alone in their
    cluster count 0. 0 when there are fewer than two clusters.
    """
    x = x.detach().double().cpu()
    labels = torch.as_tensor(assignment).cpu()
    clusters = labels.unique()
    if len(clusters) < 2:
        return 0.0
    d = torch.cdist(x, x)
    values = []
    for i in range(len(x)):
        own = labels == labels[i]
        if own.sum() < 2:
            values.append(0.0)
            continue
        a = d[i, own].sum() / (own.sum() - 1)
        b = min(d[i, labels == c].mean() for c in clusters if c != labels[i])
        m = max(float(a), float(b))
        values.append(0.0 if m == 0 else float((b - a) / m))
    return float(np.mean(values))


@dataclass
class Clusters:
    """How many well-separated groups a set of feature vectors falls into.

    Attributes:
        n: the number of clusters found (1 when no split is well separated).
        assignment: ``(n_points,)`` int64, each point's cluster (0..n-1, numbered by first
            appearance, so the best example is in cluster 0).
        silhouette: the chosen split's mean silhouette (0 for one cluster).
        silhouette_by_k: the best silhouette for each number of clusters tried.
    """

    n: int
    assignment: torch.Tensor
    silhouette: float
    silhouette_by_k: dict[int, float]


def _renumber(assign: torch.Tensor) -> torch.Tensor:
    order = {}
    for a in assign.tolist():
        order.setdefault(a, len(order))
    return torch.tensor([order[a] for a in assign.tolist()], dtype=torch.long)


def count_clusters(
    features: torch.Tensor,
    max_clusters: int = 5,
    threshold: float = 0.5,
    min_distance: float = 0.05,
    normalize: bool = True,
    seed: int = 0,
) -> Clusters:
    """The number of well-separated clusters in ``features: (n, d)``.

    Rows are scaled to unit length first (``normalize``: cosine geometry, as activation
    vectors are compared). For each ``k`` in ``2..max_clusters`` (and below ``n``) k-means
    splits the points; the split with the best mean silhouette is kept if its silhouette is at
    least ``threshold`` (0.5: "reasonable structure" in Kaufman and Rousseeuw's reading of
    silhouettes; 0.25-0.5 is "weak") and all its centres are at least ``min_distance`` apart
    (so that points equal up to rounding are not split). Otherwise there is one cluster.
    """
    x = features.detach().float().cpu().flatten(1)
    if normalize:
        x = F.normalize(x, dim=1)
    n = len(x)
    by_k: dict[int, float] = {}
    best = (1, torch.zeros(n, dtype=torch.long), 0.0)
    for k in range(2, min(max_clusters, n - 1) + 1):
        assign, centres, _ = kmeans(x, k, seed=seed)
        used = assign.unique()
        if len(used) < k or torch.pdist(centres[used].double()).min() < min_distance:
            by_k[k] = 0.0
            continue
        s = silhouette(x, assign)
        by_k[k] = s
        if s >= threshold and s > best[2]:
            best = (k, assign, s)
    return Clusters(best[0], _renumber(best[1]), best[2], by_k)


# -- features of top examples ----------------------------------------------------------------
def _position_in(model, top: TopExamples, layer: str, grid: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """Each example's best position in the unit's layer, mapped to ``layer``'s grid.

    Returns ``((k, 2) positions, half)``: ``layer``'s positions within ``half`` of the mapped one
    (clipped to the grid) lie under the unit's cell, so a finer layer is read as the maximum
    over that window (``half = 0``: one position).
    """
    if layer == top.layer or tuple(grid) == tuple(top.grid):
        return top.positions.clone(), 0
    ours = top._fields
    theirs = fields_for(model, layer, grid, top.image_size)
    out = []
    for y, x in top.positions.tolist():
        pos = []
        for axis, (p, g, gu) in enumerate(zip((y, x), grid, top.grid)):
            if ours is not None and theirs is not None:
                q = round((ours[axis].center(p) - theirs[axis].start) / theirs[axis].jump)
            else:
                q = int((p + 0.5) * g / gu)
            pos.append(min(max(q, 0), g - 1))
        out.append(pos)
    if ours is not None and theirs is not None:
        ratio = ours[0].jump / theirs[0].jump
    else:
        ratio = grid[0] / top.grid[0]
    return torch.tensor(out, dtype=torch.long).reshape(-1, 2), max(0, round(ratio / 2))


def example_features(
    model,
    top: TopExamples,
    layer: str | None = None,
    exclude_unit: bool = True,
    where: str = "argmax",
    batch_size: int | None = None,
) -> torch.Tensor:
    """What the network sees at each top example: activation vectors ``(k, C)`` float32 (CPU).

    Args:
        model: the model the examples came from.
        top: the unit's top examples.
        layer: the layer to read (default: the unit's own layer). Another layer is read at the
            position nearest the unit's best one (by receptive-field centres); a finer layer
            as the maximum over the positions under the unit's cell.
        exclude_unit: leave the unit's own channel out (it is high in every top example by
            construction, so it says nothing about how they differ).
        where: ``"argmax"`` (the unit's best position) or ``"mean"`` (mean over all positions:
            the whole image, like a penultimate-layer embedding).
        batch_size: images per forward pass (default: the profile's).
    """
    if where not in ("argmax", "mean"):
        raise ValueError(f"where must be 'argmax' or 'mean', got {where!r}")
    layer = layer or top.layer
    batch_size = batch_size or profile().batch_size
    vectors = []
    for start in range(0, len(top), batch_size):
        sub = top.indices[start : start + batch_size]
        acts = unit_activations(model, top.source.images(sub), [layer])[layer].float().cpu()
        if where == "mean":
            vectors.append(acts.mean(dim=(2, 3)))
            continue
        pos, half = _position_in(model, top, layer, tuple(acts.shape[-2:]))
        for a, (y, x) in zip(acts, pos[start : start + batch_size].tolist()):
            window = a[:, max(y - half, 0) : y + half + 1, max(x - half, 0) : x + half + 1]
            vectors.append(window.amax(dim=(1, 2))[None])
    v = torch.cat(vectors) if vectors else torch.empty(0, 0)
    if exclude_unit and layer == top.layer and v.shape[1] > 1:
        v = torch.cat([v[:, : top.channel], v[:, top.channel + 1 :]], dim=1)
    return v


@dataclass
class Polysemanticity:
    """How many unrelated things a unit's top examples show: this course's heuristics for the
    polysemantic neurons of "Zoom In" ("Polysemantic Neurons"), not measures from the article.

    Attributes:
        unit: the unit (``"4e:55"``).
        top: the top examples measured (those scoring above ``min_score``).
        n_clusters: well-separated groups among them, by what the network sees there
            (:func:`count_clusters` of :func:`example_features`).
        clusters: the full clustering (assignment per example, silhouettes).
        label_entropy: entropy in bits of the examples' classes (NaN when unlabelled).
        effective_classes: ``2 ** label_entropy`` (NaN when unlabelled).
        features_layer: the layer whose activations were clustered.
    """

    unit: str
    top: TopExamples
    n_clusters: int
    clusters: Clusters
    label_entropy: float
    effective_classes: float
    features_layer: str

    def groups(self) -> list[list[str]]:
        """The examples' names, one list per cluster (cluster 0 holds the best example)."""
        out: list[list[str]] = [[] for _ in range(self.n_clusters)]
        for name, c in zip(self.top.names, self.clusters.assignment.tolist()):
            out[c].append(name)
        return out

    def __repr__(self) -> str:
        head = (
            f"Polysemanticity({self.unit}: {self.n_clusters} cluster(s) among {len(self.top)} top examples "
            f"(silhouette {self.clusters.silhouette:.2f}, features from {self.features_layer}"
            + _weights_note(self.top)
        )
        lines = [head]
        if not math.isnan(self.label_entropy):
            lines.append(
                f"  classes: entropy {self.label_entropy:.2f} bits, {self.effective_classes:.2f} effective classes "
                f"{dict(Counter(n for n in self.top.label_names if n is not None).most_common(5))}"
            )
        for i, g in enumerate(self.groups()):
            shown = ", ".join(g[:4]) + (", ..." if len(g) > 4 else "")
            lines.append(f"  cluster {i}: {len(g)} example(s): {shown}")
        return "\n".join(lines) + ")"


def _weights_note(top: TopExamples) -> str:
    """``"; SYNTHETIC WEIGHTS)"`` (or UNVERIFIED WEIGHTS, PLANTED MODEL) when so, else ``")"``."""
    state = weights_state(top.provenance)
    return f"; {WARNINGS[state]})" if state in WARNINGS else ")"


def _subset(top: TopExamples, keep: torch.Tensor) -> TopExamples:
    idx = keep.nonzero().flatten().tolist()
    return TopExamples(
        top.layer, top.channel, top.by, top.indices[idx], top.scores[idx], top.positions[idx],
        top.grid, top.image_size, top.labels[idx], [top.label_names[i] for i in idx],
        [top.names[i] for i in idx], top.source, top.weights_source, top.is_synthetic, top._fields,
        top.weights_state,
    )  # fmt: skip


def measure_polysemanticity(
    model,
    source,
    unit=None,
    k: int = 16,
    *,
    features_layer: str | None = None,
    where: str = "argmax",
    max_clusters: int = 5,
    threshold: float = 0.5,
    min_score: float | None = 0.0,
    seed: int = 0,
    **top_kwargs,
) -> Polysemanticity:
    """How many unrelated things ``unit`` responds to, from its top ``k`` dataset examples.

    Args:
        model: the model (InceptionV1, a planted model, ...).
        source: an image source for :func:`~circuitscope.methods.dataset_examples.top_examples`, or
            the :class:`~circuitscope.methods.dataset_examples.TopExamples` already found.
        unit: ``"4e:55"`` and the like (not needed when ``source`` is a ``TopExamples``).
        k: how many top examples to look at.
        features_layer: the layer whose activation vectors are clustered (default: the
            unit's own layer, without the unit itself; see :func:`example_features`).
        where: read the features at the unit's best position (``"argmax"``) or averaged over
            the image (``"mean"``).
        max_clusters, threshold: see :func:`count_clusters`.
        min_score: examples scoring at most this are left out: they do not excite the unit
            (default 0, right after a ReLU; ``None`` keeps all, e.g. for pre-ReLU values).
        seed: seeds k-means.
        top_kwargs: passed to ``top_examples`` (``by``, ``batch_size``, ``size``, ``cache``, ...).

    Returns a :class:`Polysemanticity`: the cluster count and the label spread side by side.
    The module docstring says what each measures and where they mislead.
    """
    if isinstance(source, TopExamples):
        top = source
    else:
        if unit is None:
            raise ValueError("give the unit, e.g. measure_polysemanticity(model, folder, '4e:55')")
        top = top_examples(model, source, unit, k=k, **top_kwargs)
    if min_score is not None:
        top = _subset(top, top.scores > min_score)
    layer = features_layer or top.layer
    if len(top) >= 3:
        feats = example_features(model, top, layer, where=where)
        clusters = count_clusters(feats, max_clusters, threshold, seed=seed)
    else:  # too few examples to tell groups apart
        clusters = Clusters(1 if len(top) else 0, torch.zeros(len(top), dtype=torch.long), 0.0, {})
    return Polysemanticity(
        top.unit, top, clusters.n, clusters, label_entropy(top.labels), effective_classes(top.labels), layer
    )


# -- following a feature into the next layer ---------------------------------------------------
_WEIGHT_LAYERS = ["conv2d0", "conv2d1", "conv2d2"] + [b.name for b in BLOCKS]


def next_layer(model, layer: str) -> str:
    """The layer a unit of ``layer`` feeds: the next inception block (``"mixed4c"`` ->
    ``"mixed4d"``; a branch such as ``"mixed4c_5x5"`` feeds ``"mixed4d"`` too), or for other
    models the layer whose ``model.layer_inputs`` names ``layer``."""
    base = layer.removesuffix("_pre_relu")
    if isinstance(model, InceptionV1):
        base = base.split("_")[0] if base.startswith("mixed") else base
        if base not in _WEIGHT_LAYERS:
            raise ValueError(f"{layer!r} is not a convolution or an inception block")
        i = _WEIGHT_LAYERS.index(base)
        if i + 1 == len(_WEIGHT_LAYERS):
            raise ValueError(f"{base} is the last block: its outgoing weights go to the classifier")
        return _WEIGHT_LAYERS[i + 1]
    for target, inp in getattr(model, "layer_inputs", {}).items():
        if inp == base:
            return target
    raise ValueError(f"no layer of this model takes {base!r} as input (model.layer_inputs)")


def outgoing_weight_vector(model, unit, layer: str | None = None, pool: str = "average") -> torch.Tensor:
    """``(O,)``: the weight from ``unit`` to each unit of ``layer`` (default :func:`next_layer`),
    summed over space.

    Directly connected (a 1x1 branch) this is the plain weight; through a bottleneck, a pool
    or across a stride-2 max pool it is the expanded weight ("Visualizing Weights", "Dealing
    with Indirect Interactions"; :func:`circuitscope.methods.circuits.expanded_weights`, ReLUs as the
    identity, max pools as ``pool``) summed over the kernel: how much a uniform patch of the
    feature raises each next-layer pre-activation.
    """
    src_layer, channel = resolve_unit(model, unit)
    target = layer or next_layer(model, src_layer)
    w = expanded_weights(model, (src_layer.removesuffix("_pre_relu"), channel), target, pool=pool)
    return w.flatten(1).sum(1).float().cpu() if w.dim() > 1 else w.float().cpu()


def outgoing_weights(
    model,
    unit,
    layer: str | None = None,
    k: int = 10,
    sign: str = "positive",
    pool: str = "average",
) -> list[tuple[str, float]]:
    """The ``k`` largest outgoing weights of ``unit``: ``[("4d:417", w), ...]``, strongest first.

    "Zoom In", "Cars in Superposition", names 4d:417, 4d:241 and 4d:277 as examples of the
    mostly-dog units that 4c:447's car feature goes to; ``outgoing_weights(model, "4c:447",
    "mixed4d")`` ranks all of mixed4d by the weights at hand (the article gives no ranking). ``sign``:
    ``"positive"`` (largest excitatory), ``"negative"`` (most inhibitory) or ``"abs"``
    (largest magnitude). Weights are summed over space (:func:`outgoing_weight_vector`).
    """
    if sign not in ("positive", "negative", "abs"):
        raise ValueError(f"sign must be 'positive', 'negative' or 'abs', got {sign!r}")
    target, w = outgoing_to_layer(model, unit, layer, pool)
    key = {"positive": w, "negative": -w, "abs": w.abs()}[sign]
    order = torch.sort(key, descending=True, stable=True).indices[:k]
    return [(format_unit(target, int(o)), float(w[o])) for o in order]


def outgoing_to_layer(model, unit, layer: str | None, pool: str) -> tuple[str, torch.Tensor]:
    """The target layer's full name (default :func:`next_layer`) and :func:`outgoing_weight_vector`."""
    src_layer, _ = resolve_unit(model, unit)
    target = expand_short_name(
        (layer or next_layer(model, src_layer)).removesuffix("_pre_relu"), layer_channels_of(model)
    )
    return target, outgoing_weight_vector(model, unit, target, pool=pool)


# -- diverse feature visualizations -------------------------------------------------------------
def diverse_renders(
    model,
    unit,
    n: int = 4,
    strength: float = 1e2,
    diversity_layer: str | None = None,
    **render_kwargs,
) -> torch.Tensor:
    """``n`` feature visualizations of ``unit`` pushed apart from each other ("Feature
    Visualization", section "Diversity"): one batch maximising ``channel(unit) - strength *
    diversity(layer)``, as Lucid's tutorial does with ``strength = 1e2``.

    A polysemantic unit tends to show its different facets in different images (4e:55: cat
    faces in one, car fronts in another). ``render_kwargs`` go to
    :func:`circuitscope.methods.optvis.render` (``size``, ``steps``, ``seed``, ``progress``, ...).
    Returns ``(n, 3, S, S)`` float in [0, 1] on the CPU.
    """
    layer, ch = resolve_unit(model, unit)
    objective = channel(layer, ch) - strength * diversity(diversity_layer or layer)
    # A tiny model (a planted one) on the CPU runs many times faster on one thread.
    tiny = sum(p.numel() for p in model.parameters()) < 100_000 and model.device.type == "cpu"
    with one_cpu_thread(enabled=tiny):
        return render(model, objective, batch=n, **render_kwargs)


