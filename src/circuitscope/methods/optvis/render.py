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
from dataclasses import dataclass

import torch

from ...core.device import profile as _profile
from ...core.hooks import check_layer_names
from ...core.progress import bar as progress_bar
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


class _Redirect:
    """The switch returned by :func:`redirected_relu`: set ``enabled`` per step."""

    def __init__(self):
        self.enabled = True
        self.pre: dict[str, torch.Tensor] = {}


@contextlib.contextmanager
def redirected_relu(model) -> Iterator[_Redirect]:
    """Use :class:`RedirectedReLU` for every ReLU of ``model`` inside the ``with`` block.

    The model declares its ReLUs (``model.relus``: ``{output name: pre-ReLU name}``, see
    :class:`~circuitscope.core.models.named.NamedModel`). Implemented with temporary forward hooks
    (removed on exit, even on an error): the hook on the pre-ReLU value keeps it, the hook on
    the ReLU's output replaces it by ``RedirectedReLU.apply(pre_relu)`` (same value, redirected
    gradient). Set
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
        for name, pre in model.relus.items():
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
    """``{name: value}`` for ``layers``, running the model only as far as the deepest one
    (:meth:`~circuitscope.core.models.named.NamedModel.run_to`).

    ``stop_early=False`` runs on through ``mixed5b`` (or the logits if asked for), the naive
    way, for benchmarks. An unknown name raises ``KeyError`` (with the valid names) before
    anything runs.
    """
    if isinstance(layers, str):
        raise TypeError(f"forward_to takes a list of layer names, e.g. [{layers!r}], not one string")
    layers = check_layer_names(model, layers)
    until = None if stop_early or DEEPEST_CONV not in model.layer_names else DEEPEST_CONV
    return model.run_to(images, layers, until=until)


@dataclass(frozen=True)
class RenderOptions:
    """How :func:`render` runs, not what it computes: switches for speed and for benchmarks.

    Attributes:
        autocast: e.g. ``torch.bfloat16`` to run the model under autocast (GPU speed-up).
        channels_last: feed the model channels-last tensors; ``None`` (default): on the CPU
            only, where it makes a render step about 1.3-1.4x faster (max pooling most of all).
        stop_early: run the model only to the deepest layer used (False: through mixed5b, the
            naive way, to measure what stopping early saves).
    """

    autocast: torch.dtype | None = None
    channels_last: bool | None = None
    stop_early: bool = True


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
    options: RenderOptions | None = None,
):
    """Feature visualization: images that maximise ``objectives``.

    Args:
        model: an :class:`~circuitscope.InceptionV1` or any other
            :class:`~circuitscope.core.models.named.NamedModel` (frozen; its weights get no gradient).
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
        options: speed switches (:class:`RenderOptions`: autocast, memory format, stopping
            early); they change how fast, not what is computed.

    Returns:
        ``images: (N, 3, size, size)`` float in [0, 1] on the CPU, or ``{step: images}`` when
        ``thresholds`` is given. Ctrl-C stops the optimisation and returns the images so far.
    """
    options = options or RenderOptions()
    objective, n = _batched_objective(objectives, batch)
    layers = check_layer_names(model, objective.layers)
    device = model.device
    prof = _profile(device=device)
    steps, marks = _step_marks(prof.render_steps if steps is None else int(steps), thresholds)
    if seed is None:
        seed = int(torch.randint(2**31 - 1, ()))
    generator = torch.Generator().manual_seed(seed)
    img = _image_param(param, n, prof.render_size if size is None else int(size), sd, decay_power,
                       decorrelate, generator, device)  # fmt: skip
    transform = make_transforms(transforms)
    params = [p for p in img.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    run_model = _model_runner(model, layers, options)

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
                # One step: a randomly transformed image, the objective, an Adam step up its gradient.
                redirect.enabled = step < redirect_steps
                acts = run_model(transform(img(), generator))
                values = objective({k: v.float() for k, v in acts.items()})
                if values.shape != (n,):
                    raise ValueError(f"{objective!r} gave shape {tuple(values.shape)}, expected ({n},)")
                grads = torch.autograd.grad(-values.sum(), params)
                for p, g in zip(params, grads):
                    p.grad = g
                optimizer.step()
                del acts, grads
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


def _batched_objective(objectives, batch: int | None) -> tuple[O.Objective, int]:
    """One objective over the batch and the batch size: a list gives one image per objective."""
    if isinstance(objectives, (list, tuple)):
        n = len(objectives)
        if batch is not None and batch != n:
            raise ValueError(f"batch={batch} but {n} objectives were given (one per image)")
        return O.per_element(objectives), n
    return O.as_objective(objectives), batch or 1


def _step_marks(steps: int, thresholds: Sequence[int] | None) -> tuple[int, set[int]]:
    """``steps`` checked, and the step counts at which to keep the images (always the last)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    marks = {int(t) for t in (thresholds or ())} | {steps}
    if min(marks) < 1 or max(marks) > steps:
        raise ValueError(f"thresholds must lie in 1..steps={steps}, got {thresholds}")
    return steps, marks


def _image_param(param, n: int, size: int, sd, decay_power, decorrelate, generator, device) -> ImageParam:
    """The image being optimised: the given :class:`ImageParam` (on ``device``) or a new one."""
    if isinstance(param, ImageParam):
        img = param.to(device)
        if img.batch != n:
            raise ValueError(f"the image parameterization has {img.batch} images, the objectives need {n}")
        return img
    return make_image(size, n, param, sd, decay_power, decorrelate, generator, device)


def _model_runner(model, layers: list[str], options: RenderOptions):
    """``images -> {layer: value}`` for ``layers``, with the memory format and precision of
    ``options``."""
    device = model.device
    channels_last = device.type == "cpu" if options.channels_last is None else options.channels_last

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        amp = (torch.autocast(device_type=device.type, dtype=options.autocast)
               if options.autocast is not None else contextlib.nullcontext())  # fmt: skip
        with amp:
            return forward_to(model, x, layers, options.stop_early)

    return run


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
