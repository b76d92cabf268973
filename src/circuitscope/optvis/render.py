"""The loop that ties parameterization, transforms and objectives together.

"Feature Visualization" (Olah et al. 2017): start from faint noise, and for ``steps`` steps
transform the image a little at random, run the model as far as the objectives need, and take
an Adam step up the objective's gradient. Everything Lucid does by default is done here:
Fourier parameterization with decorrelated colours, the standard transforms, Adam with lr 0.05,
and for the first 17 updates the *redirected ReLU* gradient (:func:`redirected_relu`), so that a
unit that starts inactive still gets a gradient.

``render(model, [channel("mixed3a", c) for c in range(8)])`` optimises the 8 images in one
batch: one forward and backward pass per step for all of them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch

from ..device import profile as _profile
from ..hooks import check_layer_names
from ..progress import bar as progress_bar
from . import objectives as O
from .param import ImageParam
from .param import image as make_image
from .transform import make_transforms

# Lucid's redirected_relu_grad keeps the redirected gradient while ``global_step <= 16``; the
# step counter starts at 0 and counts updates, so the first 17 updates are redirected.
REDIRECT_STEPS = 17
DEEPEST_CONV = "mixed5b"


# -- redirected ReLU ------------------------------------------------------------------------
class RedirectedReLU(torch.autograd.Function):
    """``relu(x)`` whose gradient is redirected when the true one is zero for a whole image.

    Backward, with ``g`` the gradient of the *loss* (``-objective``): where the ReLU passes any
    gradient for batch element ``b``, element ``b`` gets the true ReLU gradient. Where it passes
    none (the unit is off everywhere the loss cares), ``g`` is passed through except where it
    would push an already negative input further down (``x < 0 and g > 0``).
    (Lucid, ``lucid/misc/redirected_relu_grad.py``.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return redirected_relu_grad(grad, x, host_sync=x.device.type == "cpu")


def redirected_relu_grad(grad: torch.Tensor, x: torch.Tensor, host_sync: bool = True) -> torch.Tensor:
    """:class:`RedirectedReLU`'s backward: ``grad`` of the output -> gradient of the input ``x``.

    ``host_sync=True`` (the CPU's way) looks at which batch elements need redirecting and computes
    only those; ``False`` (for GPUs, where a host sync stalls the queue) computes the redirected
    gradient everywhere and selects. Both give the same result.
    """
    # The ReLU's own backward kernel (zero where x <= 0; Lucid zeroes x < 0, which differs
    # only at exactly 0): boolean masks and masked_fill are several times slower on CPUs.
    relu_grad = torch.ops.aten.threshold_backward(grad, x, 0)
    # Batch elements whose true gradient is zero everywhere: usually none, or elements whose
    # incoming gradient is zero too (branches the objective does not read).
    dead = relu_grad.abs().amax(dim=tuple(range(1, x.dim())), keepdim=True) == 0
    if not host_sync:
        return torch.where(dead, grad.masked_fill((x < 0) & (grad > 0), 0), relu_grad)
    index = dead.flatten().nonzero().flatten()
    if len(index):
        g, negative = grad[index], x[index] < 0
        if bool(g.abs().amax() > 0):
            # Pass g there, except where it would push an already negative x lower.
            relu_grad[index] = g.masked_fill(negative & (g > 0), 0)
    return relu_grad


def relu_names(model) -> list[str]:
    """The names of the model's real ReLUs: each conv's output (``conv2d0``, ``mixed3a_3x3``, ...).

    Block outputs (``mixed3a``) are concatenations of their branches' ReLUs, so they are not
    listed; their gradient flows through the branch ReLUs.
    """
    return [n for n in model.layer_names if hasattr(model, f"{n}_pre_relu_conv")]


class _Redirect:
    """The switch returned by :func:`redirected_relu`: set ``enabled`` per step."""

    def __init__(self):
        self.enabled = True
        self.pre: dict[str, torch.Tensor] = {}


@contextlib.contextmanager
def redirected_relu(model) -> Iterator[_Redirect]:
    """Use :class:`RedirectedReLU` for every ReLU of ``model`` inside the ``with`` block.

    Implemented with temporary forward hooks (removed on exit, even on an error): the hook on
    ``<conv>_pre_relu`` keeps the pre-ReLU value, the hook on ``<conv>`` replaces the output by
    ``RedirectedReLU.apply(pre_relu)`` (same value, redirected gradient). Set
    ``switch.enabled = False`` to get the ordinary ReLU (the hooks then do nothing)::

        with redirected_relu(model) as switch:
            for step in range(steps):
                switch.enabled = step < 17  # Lucid: global_step <= 16
    """
    switch = _Redirect()

    def keep(name):
        def hook(_module, _inputs, output):
            if switch.enabled and torch.is_grad_enabled():
                switch.pre[name] = output

        return hook

    def replace(name):
        def hook(_module, _inputs, output):
            pre = switch.pre.pop(name, None)
            if switch.enabled and pre is not None:
                return RedirectedReLU.apply(pre)
            return None

        return hook

    handles = []
    try:
        for name in relu_names(model):
            pre = f"{name}_pre_relu"
            handles.append(model.hook_points[pre].register_forward_hook(keep(pre)))
            handles.append(model.hook_points[name].register_forward_hook(replace(pre)))
        yield switch
    finally:
        for handle in handles:
            handle.remove()
        switch.pre.clear()


@contextlib.contextmanager
def _frozen(model):
    """Parameters of ``model`` with ``requires_grad=False`` inside the block (restored after)."""
    states = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in states:
            p.requires_grad_(False)
        yield
    finally:
        for p, state in states:
            p.requires_grad_(state)


def forward_to(
    model, images: torch.Tensor, layers: Sequence[str], stop_early: bool = True
) -> dict[str, torch.Tensor]:
    """``{name: value}`` for ``layers``, running the model only as far as the deepest one.

    ``stop_early=False`` runs on through ``mixed5b`` (or the logits if asked for), the naive
    way, for benchmarks. An unknown name raises ``KeyError`` (with the valid names) before
    anything runs, when the model lists its ``layer_names``.
    """
    if isinstance(layers, str):
        raise TypeError(f"forward_to takes a list of layer names, e.g. [{layers!r}], not one string")
    wanted = set(layers)
    if getattr(model, "layer_names", None) is not None and not wanted.issubset(model.layer_names):
        check_layer_names(model, layers)
    found: dict[str, torch.Tensor] = {}
    for name, value in model.named_forward(images):
        if name in wanted:
            found[name] = value
        if len(found) == len(wanted) and (stop_early or name == DEEPEST_CONV):
            break
    return found


# -- the render loop ------------------------------------------------------------------------
def render(
    model,
    objectives,
    size: int | None = None,
    steps: int | None = None,
    lr: float = 0.05,
    param: str | ImageParam = "fft",
    decorrelate: bool = True,
    transforms="standard",
    seed: int | None = None,
    thresholds: Sequence[int] | None = None,
    progress: bool = True,
    *,
    batch: int | None = None,
    sd: float = 0.01,
    decay_power: float = 1.0,
    redirect_steps: int = REDIRECT_STEPS,
    autocast: torch.dtype | None = None,
    channels_last: bool | None = None,
    stop_early: bool = True,
):
    """Feature visualization: images that maximise ``objectives``.

    Args:
        model: an :class:`~circuitscope.InceptionV1` (frozen; its weights get no gradient).
        objectives: one objective (``channel("mixed4a", 476)``, or ``"mixed4a:476"``) for a
            batch of ``batch`` images (default 1), or a list, one objective per image, all
            optimised in one batch.
        size: image size in pixels (default: the profile's ``render_size``, 64 on the CPU,
            128 on a GPU; Lucid's is 128).
        steps: optimisation steps (default: the profile's ``render_steps``; Lucid's is 512).
        lr: Adam's learning rate (Lucid: 0.05).
        param: ``"fft"`` (Fourier, 1/f scaled), ``"pixel"``, or an :class:`ImageParam`.
        decorrelate: map colours through ImageNet's colour correlations.
        transforms: ``"standard"`` (Lucid's), ``"none"``, or a list of transforms.
        seed: seeds the initial image and the transforms (same seed, same images); ``None``
            draws a seed from PyTorch's global generator (see ``cs.seed_everything``).
        thresholds: step counts at which to keep the images as well; then a dict
            ``{steps_done: images}`` is returned (always including the last step).
        progress: show a tqdm progress bar.
        batch: the batch size for a single objective (ignored for a list).
        sd, decay_power: the parameterization's initial sd (0.01) and spectrum decay (1).
        redirect_steps: updates with the redirected ReLU gradient (Lucid: 17; 0 to turn off).
        autocast: e.g. ``torch.bfloat16`` to run the model under autocast (GPU speed-up).
        channels_last: feed the model channels-last tensors; ``None`` (default): on the CPU
            only, where it makes a render step about 1.3-1.4x faster (max pooling most of all).
        stop_early: run the model only to the deepest layer used (False: through mixed5b).

    Returns:
        ``images: (N, 3, size, size)`` float in [0, 1] on the CPU, or ``{step: images}`` when
        ``thresholds`` is given. Ctrl-C stops the optimisation and returns the images so far.
    """
    if isinstance(objectives, (list, tuple)):
        objective = O.per_element(objectives)
        n = len(objectives)
        if batch is not None and batch != n:
            raise ValueError(f"batch={batch} but {n} objectives were given (one per image)")
    else:
        objective = O.as_objective(objectives)
        n = batch or 1
    layers = check_layer_names(model, objective.layers)
    device = model.device
    prof = _profile(device=device)
    if channels_last is None:
        channels_last = device.type == "cpu"
    steps = prof.render_steps if steps is None else int(steps)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    marks = {int(t) for t in (thresholds or ())} | {steps}
    if min(marks) < 1 or max(marks) > steps:
        raise ValueError(f"thresholds must lie in 1..steps={steps}, got {thresholds}")

    if seed is None:
        seed = int(torch.randint(2**31 - 1, ()))
    generator = torch.Generator().manual_seed(seed)
    if isinstance(param, ImageParam):
        img = param.to(device)
        if img.batch != n:
            raise ValueError(f"the image parameterization has {img.batch} images, the objectives need {n}")
    else:
        size = prof.render_size if size is None else int(size)
        img = make_image(size, n, param, sd, decay_power, decorrelate, generator, device)
    transform = make_transforms(transforms)
    params = [p for p in img.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    amp = (
        torch.autocast(device_type=device.type, dtype=autocast)
        if autocast is not None
        else contextlib.nullcontext()
    )

    def snapshot() -> torch.Tensor:
        with torch.no_grad():
            return img().detach().float().cpu()

    kept: dict[int, torch.Tensor] = {}
    bar = progress_bar(total=steps, desc=_short(objective.description), progress=progress, leave=False)
    step = 0
    redirecting = redirected_relu(model) if redirect_steps > 0 else contextlib.nullcontext(_Redirect())
    with _frozen(model), redirecting as redirect:
        try:
            for step in range(steps):
                redirect.enabled = step < redirect_steps
                x = transform(img(), generator)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                with amp:
                    acts = forward_to(model, x, layers, stop_early)
                values = objective({k: v.float() for k, v in acts.items()})
                if values.shape != (n,):
                    raise ValueError(f"{objective!r} gave shape {tuple(values.shape)}, expected ({n},)")
                loss = -values.sum()
                grads = torch.autograd.grad(loss, params)
                for p, g in zip(params, grads):
                    p.grad = g
                optimizer.step()
                del acts, x, grads
                if step + 1 in marks:
                    kept[step + 1] = snapshot()
                bar.update(1)
                if progress and (step % 16 == 0 or step + 1 == steps):
                    bar.set_postfix(objective=f"{float(values.detach().mean()):.3g}")
        except KeyboardInterrupt:
            warnings.warn(f"render interrupted after {step} of {steps} steps; returning the images so far")
            kept[step] = snapshot()
        finally:
            bar.close()
    if thresholds is None:
        return kept[max(kept)]
    return kept


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
