"""What a visualization maximises: objectives that add, subtract and scale like numbers.

"Feature Visualization" (Olah et al. 2017), section "The Building Blocks" (neuron, channel,
layer, class logit, direction) and section "Diversity"::

    channel("mixed4a", 476) - 1e2 * diversity("mixed4a")

An objective is a small object with ``layers`` (the names it reads) that maps the activations
``acts: {name: (N, C, H, W) tensor}`` to **one value per batch element**, a ``(N,)`` tensor.
The renderer maximises the sum of these values over the batch, so a batch of different
objectives (``[channel("mixed3a", c) for c in range(8)]``) is one forward pass, and
``objective.batch(i)`` restricts an objective to image ``i``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F

from ...core.class_labels import labels

Acts = Mapping[str, torch.Tensor]
LOGITS = "softmax2_pre_activation"


def _batch_size(acts: Acts) -> int:
    for value in acts.values():
        return value.shape[0]
    raise ValueError("no activations given")


def _channel_of(acts: Acts, layer: str, n: int) -> torch.Tensor:
    """``acts[layer][:, n]``, or an ``IndexError`` that names the layer and its channel count."""
    value = acts[layer]
    c = value.shape[1]
    if not -c <= n < c:
        raise IndexError(f"channel {n} is out of range for {layer}, which has {c} channels (0..{c - 1})")
    return value[:, n]


def _fmt(x: float) -> str:
    return f"{x:g}"


class Objective:
    """Maps ``acts: {layer name: (N, ...)}`` to ``(N,)``: one value per batch element.

    Attributes:
        layers: the layer names the objective reads (the model runs as far as the deepest).
        elementwise: True when element ``i``'s value depends on image ``i`` alone (False for
            :func:`diversity`, which compares the images of a batch).
    """

    layers: tuple[str, ...] = ()
    elementwise: bool = True

    def __call__(self, acts: Acts) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def batch(self, i: int) -> Objective:
        """This objective for batch element ``i`` only (0 for every other element)."""
        return _Batch(self, i)

    # -- arithmetic: objectives combine linearly, like numbers ------------------------------
    def _terms(self) -> tuple[tuple[float, Objective], ...]:
        return ((1.0, self),)

    def _constant(self) -> float:
        return 0.0

    def __add__(self, other):
        if isinstance(other, (int, float)):
            return _Sum(self._terms(), self._constant() + float(other))
        if isinstance(other, Objective):
            return _Sum(self._terms() + other._terms(), self._constant() + other._constant())
        return NotImplemented

    __radd__ = __add__

    def __mul__(self, k):
        if isinstance(k, Objective):
            raise TypeError("objectives multiply by numbers only (e.g. 0.1 * diversity('mixed4a'))")
        if not isinstance(k, (int, float)):
            return NotImplemented
        return _Sum(tuple((k * c, o) for c, o in self._terms()), k * self._constant())

    __rmul__ = __mul__

    def __truediv__(self, k):
        if not isinstance(k, (int, float)):
            return NotImplemented
        return self * (1.0 / k)

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        if isinstance(other, (int, float, Objective)):
            return self + (-other)
        return NotImplemented

    def __rsub__(self, other):
        if isinstance(other, (int, float)):
            return (-self) + other
        return NotImplemented

    def __repr__(self) -> str:
        return self.description

    @property
    def description(self) -> str:
        return type(self).__name__


class _Sum(Objective):
    """``sum(weight * objective) + constant``."""

    def __init__(self, terms: tuple[tuple[float, Objective], ...], constant: float = 0.0):
        self.terms, self.constant = tuple(terms), float(constant)
        self.layers = tuple(dict.fromkeys(n for _, o in self.terms for n in o.layers))
        self.elementwise = all(o.elementwise for _, o in self.terms)

    def _terms(self):
        return self.terms

    def _constant(self):
        return self.constant

    def __call__(self, acts: Acts) -> torch.Tensor:
        total = None
        for weight, objective in self.terms:
            value = objective(acts) if weight == 1 else weight * objective(acts)
            total = value if total is None else total + value
        if total is None:
            n = _batch_size(acts)
            device = next(iter(acts.values())).device
            return torch.full((n,), self.constant, device=device)
        return total + self.constant if self.constant else total

    @property
    def description(self) -> str:
        text = ""
        for weight, objective in self.terms:
            sign = "-" if weight < 0 else "+"
            mag = abs(weight)
            part = objective.description if mag == 1 else f"{_fmt(mag)}·{objective.description}"
            text = (f"-{part}" if sign == "-" else part) if not text else f"{text} {sign} {part}"
        if self.constant:
            text = f"{text} {'-' if self.constant < 0 else '+'} {_fmt(abs(self.constant))}"
        return text or _fmt(self.constant)


class _Batch(Objective):
    """``objective`` for batch element ``index`` only; 0 for the other elements."""

    def __init__(self, objective: Objective, index: int):
        self.objective, self.index = objective, index
        self.layers, self.elementwise = objective.layers, objective.elementwise

    def __call__(self, acts: Acts) -> torch.Tensor:
        n, i = _batch_size(acts), self.index
        if not -n <= i < n:
            raise IndexError(f"batch element {i} does not exist in a batch of {n}")
        i %= n
        if self.elementwise:  # evaluate on image i alone: cheaper
            value = self.objective({k: v[i : i + 1] for k, v in acts.items()})[0]
        else:
            value = self.objective(acts)[i]
        return value * F.one_hot(torch.tensor(i, device=value.device), n).to(value.dtype)

    @property
    def description(self) -> str:
        return f"{self.objective.description}[batch {self.index}]"


# -- the building blocks --------------------------------------------------------------------
class Channel(Objective):
    """Mean activation of channel ``n`` of ``layer`` over all positions: ``(N,)``."""

    def __init__(self, layer: str, n: int):
        self.layer, self.n, self.layers = layer, int(n), (layer,)

    def __call__(self, acts: Acts) -> torch.Tensor:
        value = _channel_of(acts, self.layer, self.n)
        return value.flatten(1).mean(1) if value.dim() > 1 else value

    @property
    def description(self) -> str:
        return f"channel({self.layer!r}, {self.n})"


class Neuron(Objective):
    """Activation of channel ``n`` of ``layer`` at one position (column ``x``, row ``y``)."""

    def __init__(self, layer: str, n: int, x: int | None = None, y: int | None = None):
        self.layer, self.n, self.x, self.y, self.layers = layer, int(n), x, y, (layer,)

    def __call__(self, acts: Acts) -> torch.Tensor:
        value = _channel_of(acts, self.layer, self.n)  # (N, H, W)
        h, w = value.shape[-2:]
        y = h // 2 if self.y is None else self.y
        x = w // 2 if self.x is None else self.x
        return value[:, y, x]

    @property
    def description(self) -> str:
        where = "" if self.x is None and self.y is None else f", x={self.x}, y={self.y}"
        return f"neuron({self.layer!r}, {self.n}{where})"


class Direction(Objective):
    """Mean over positions of the dot product of ``layer``'s activation vector with ``vector``."""

    def __init__(self, layer: str, vector):
        self.layer, self.layers = layer, (layer,)
        self.vector = torch.as_tensor(vector, dtype=torch.float32).flatten()

    def __call__(self, acts: Acts) -> torch.Tensor:
        value = acts[self.layer]
        if value.shape[1] != self.vector.numel():
            raise ValueError(
                f"direction has {self.vector.numel()} entries, {self.layer} has {value.shape[1]} channels"
            )
        vec = self.vector.to(device=value.device, dtype=value.dtype)
        dots = torch.einsum("nc...,c->n...", value, vec)
        return dots.flatten(1).mean(1) if dots.dim() > 1 else dots

    @property
    def description(self) -> str:
        return f"direction({self.layer!r}, <{self.vector.numel()}-vector>)"


class Logit(Objective):
    """Pre-softmax logit ``n`` (``softmax2_pre_activation``; needs images of >= 193 px)."""

    def __init__(self, n: int, layer: str = LOGITS):
        self.n, self.layer, self.layers = int(n), layer, (layer,)

    def __call__(self, acts: Acts) -> torch.Tensor:
        return _channel_of(acts, self.layer, self.n)

    @property
    def description(self) -> str:
        return f"logit({self.n})"


class Diversity(Objective):
    """Similarity of each image's style to the others' (Lucid's ``diversity``; subtract it).

    For each image ``i``: ``G_i = A_i A_i^T / ||A_i A_i^T||`` with ``A_i: (C, H*W)`` the
    activations of ``layer`` (the Gram matrix, as in style transfer, unit Frobenius norm);
    the value is ``sum_{j != i} <G_i, G_j>``, the cosine similarities to the other images.
    The values' batch mean equals Lucid's ``diversity``, so ``channel(...) - 1e2 *
    diversity(...)`` weights its terms as Lucid's tutorial does. 0 for a batch of one.
    """

    elementwise = False

    def __init__(self, layer: str):
        self.layer, self.layers = layer, (layer,)

    def __call__(self, acts: Acts) -> torch.Tensor:
        value = acts[self.layer]
        n, c = value.shape[:2]
        flat = value.reshape(n, c, -1)
        grams = F.normalize((flat @ flat.transpose(1, 2)).reshape(n, -1), dim=1, eps=1e-10)
        sims = grams @ grams.T  # (N, N) cosine similarities
        return sims.sum(1) - sims.diagonal()

    @property
    def description(self) -> str:
        return f"diversity({self.layer!r})"


class _PerElement(Objective):
    """Objective ``objectives[i]`` for batch element ``i`` (one batch, one forward pass).

    Plain channel objectives are evaluated together with one gather per layer (a gallery of
    500 channels costs one indexing operation, not 500).
    """

    def __init__(self, objectives: Sequence[Objective]):
        self.objectives = [as_objective(o) for o in objectives]
        self.layers = tuple(dict.fromkeys(n for o in self.objectives for n in o.layers))
        self.elementwise = all(o.elementwise for o in self.objectives)
        groups: dict[str, list[int]] = {}
        self._others: list[int] = []
        for i, o in enumerate(self.objectives):
            if type(o) is Channel:
                groups.setdefault(o.layer, []).append(i)
            else:
                self._others.append(i)
        self._groups = {
            layer: (torch.tensor(idx), torch.tensor([self.objectives[i].n for i in idx]))
            for layer, idx in groups.items()
        }
        # The channel of each layer furthest out of range, checked before the gather.
        self._extreme = {
            layer: max((self.objectives[i].n for i in idx), key=lambda c: c if c >= 0 else -c - 1)
            for layer, idx in groups.items()
        }
        self._on_device: dict[torch.device, dict] = {}
        self._order: torch.Tensor | None = None
        # One layer of plain channels, in batch order (a gallery): no reordering needed.
        self._identity = not self._others and len(groups) == 1

    def __call__(self, acts: Acts) -> torch.Tensor:
        n = _batch_size(acts)
        if n != len(self.objectives):
            raise ValueError(f"{len(self.objectives)} objectives for a batch of {n} images")
        device = next(iter(acts.values())).device
        if device not in self._on_device:  # index tensors, moved once per device
            self._on_device[device] = {k: (r.to(device), c.to(device)) for k, (r, c) in self._groups.items()}
        values = []
        for layer, (rows, channels) in self._on_device[device].items():
            _channel_of(acts, layer, self._extreme[layer])  # an IndexError that says which channel
            picked = acts[layer][rows, channels]  # (k, H, W) or (k,)
            values.append(picked.flatten(1).mean(1) if picked.dim() > 1 else picked)
        for i in self._others:
            o = self.objectives[i]
            if o.elementwise:
                values.append(o({k: v[i : i + 1] for k, v in acts.items()}))
            else:
                values.append(o(acts)[i : i + 1])
        if self._order is None:  # values come grouped; put them back in batch order
            grouped = [r for r, _ in self._groups.values()] + [torch.tensor([i]) for i in self._others]
            self._order = torch.cat(grouped).argsort()
        if self._identity:
            return values[0]
        return torch.cat(values)[self._order.to(device)]

    @property
    def description(self) -> str:
        shown = ", ".join(o.description for o in self.objectives[:3])
        more = f", ... ({len(self.objectives)} in all)" if len(self.objectives) > 3 else ""
        return f"[{shown}{more}]"


# -- constructors with the papers' names ---------------------------------------------------
def channel(layer: str, n: int) -> Channel:
    """Mean activation of channel ``n`` of ``layer`` (e.g. ``channel("mixed4a_pre_relu", 476)``)."""
    return Channel(layer, n)


def neuron(layer: str, n: int, x: int | None = None, y: int | None = None) -> Neuron:
    """Channel ``n`` of ``layer`` at column ``x``, row ``y``; the centre by default.

    With an even size the centre is the bottom-right of the middle 2x2 (``H // 2, W // 2``),
    as in Lucid.
    """
    return Neuron(layer, n, x, y)


def direction(layer: str, vector) -> Direction:
    """A direction in ``layer``'s activation space: ``vector: (C,)`` (e.g. a dictionary feature)."""
    return Direction(layer, vector)


def logit(n: int | str, layer: str = LOGITS) -> Logit:
    """Class logit ``n`` (an index 0..1007 or a label such as ``"goldfish"``)."""
    if isinstance(n, str):
        names = labels()
        if n not in names:
            raise KeyError(f"no class labelled {n!r}; see circuitscope.labels()")
        n = names.index(n)
    return Logit(n, layer)


def diversity(layer: str) -> Diversity:
    """How alike the batch's images look to ``layer`` (Gram-matrix cosine similarity).

    Subtract it to ask for different images: ``channel("mixed5a", 9) - 1e2 *
    diversity("mixed5a")`` ("Feature Visualization", section "Diversity").
    """
    return Diversity(layer)


def per_element(objectives: Iterable[Objective | str]) -> Objective:
    """One objective per batch element: element ``i`` maximises ``objectives[i]``."""
    return _PerElement(list(objectives))


def as_objective(obj: Objective | str) -> Objective:
    """An :class:`Objective`, or ``"layer:n"`` for ``channel(layer, n)``."""
    if isinstance(obj, Objective):
        return obj
    if isinstance(obj, str) and ":" in obj:
        layer, n = obj.rsplit(":", 1)
        return Channel(layer.strip(), int(n))
    raise TypeError(f"not an objective: {obj!r} (use channel(...), neuron(...), or 'layer:n')")
