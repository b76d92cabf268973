"""Chapter 2's plausible mistakes: ``NAMED`` (each fails its check with its hint: tests/test_chapters.py)
and ``MISTAKES``, the nbgrader round trip's mistakes submission: the first named mistake of each
exercise, the whole cells at the top (``tests/test_course.py`` puts them all into one submission and
requires the real nbgrader to give 0 to every exercise).
"""

from __future__ import annotations

from exercise_harness import SOLUTIONS, Mistake, first_mistakes

# (check, hidden cases needed, words the hint must contain, code[, error raised])
NAMED: dict[str, Mistake] = {
    # -- the round trip's submission: one whole cell per exercise, as a learner writes it --
    # gradient DEscent: the sign is wrong
    "ascent: descends (a whole cell)": Mistake("check_pixel_ascent", False, "went DOWN", '''
def pixel_ascent(objective, images, steps, lr):
    """Plain gradient ascent on pixels (wrong: it descends)."""
    x = images.detach().clone()
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x).sum(), x)
        x = (x.detach() - lr * grad).clamp(0, 1)
    return x.detach()
'''),
    # pads with zeros instead of the given value
    "jitter: padded with zeros": Mistake("check_pad_and_jitter", False, "not with zeros", '''
def pad_and_jitter(x, width, dy, dx, d, value=0.5):
    """Pad, then crop at a fixed offset (wrong: pads with zeros)."""
    padded = F.pad(x, (width, width, width, width))
    h, w = padded.shape[-2:]
    return padded[..., dy : dy + h - d, dx : dx + w - d]
'''),
    # rotates clockwise
    "rotate: clockwise": Mistake("check_scale_and_rotate", False, "wrong way", '''
def scale_and_rotate(x, factor, degrees):
    """Resize, then rotate (wrong: clockwise)."""
    import torchvision.transforms.v2.functional as TF
    h, w = x.shape[-2:]
    size = [int(factor * h), int(factor * w)]
    if size != [h, w]:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return TF.rotate(x, -float(degrees), interpolation=TF.InterpolationMode.BILINEAR) if degrees else x
'''),
    # multiplies by the frequency instead of dividing
    "fourier: the amplitude grows with frequency": Mistake("check_fourier_image", False, "must FALL", '''
def fourier_image(spectrum, size, decay_power=1.0):
    """Scaled Fourier spectrum -> image (wrong: amplitude grows with frequency)."""
    h, w = size
    f = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)
    scale = math.sqrt(h * w) * f.clamp_min(1.0 / max(h, w)) ** decay_power
    return torch.fft.irfft2(torch.view_as_complex(spectrum.contiguous()) * scale, s=(h, w)) / 4
'''),
    # forgets to normalise the matrix
    "rgb: the matrix not normalised": Mistake("check_to_rgb", False, "0.4619524", '''
def to_rgb(t):
    """Decorrelated colours -> RGB (wrong: matrix not normalised)."""
    return torch.sigmoid(torch.einsum("ij,njhw->nihw", COLOR_CORRELATION_SVD_SQRT, t))
'''),
    # x and y swapped
    "neuron: x and y swapped": Mistake("check_neuron_objective", False, "x is the column", '''
def neuron_objective(acts, n, x=None, y=None):
    """Channel n at one position (wrong: x and y swapped)."""
    h, w = acts.shape[-2:]
    y = h // 2 if y is None else y
    x = w // 2 if x is None else x
    return acts[:, n, x, y]
'''),
    # sums over positions instead of averaging
    "direction: summed over positions": Mistake("check_direction_objective", False, "MEAN over positions", '''
def direction_objective(acts, vector):
    """Dot product with a direction (wrong: summed over positions)."""
    return torch.einsum("nchw,c->nhw", acts, vector).sum(dim=(1, 2))
'''),
    # keeps each image's similarity to itself
    "diversity: each image's similarity to itself kept": Mistake("check_diversity_objective", False, "itself", '''
def diversity_objective(acts):
    """Gram-matrix similarity (wrong: includes j == i)."""
    n, c = acts.shape[:2]
    flat = acts.reshape(n, c, -1)
    grams = F.normalize((flat @ flat.transpose(1, 2)).reshape(n, -1), dim=1)
    return (grams @ grams.T).sum(dim=1)
'''),
    # loss.backward() fills the model's weights' gradients too
    "render: the model's weights get gradients too": Mistake("check_render_loop", False, "weights", '''
def render_loop(model, objective, image, transform, steps=32, lr=0.05):
    """The render loop (wrong: backward() also reaches the model's weights)."""
    optimizer = torch.optim.Adam(image.parameters(), lr=lr)
    values = []
    for _ in range(steps):
        optimizer.zero_grad()
        value = objective(model(transform(image()))).sum()
        (-value).backward()
        optimizer.step()
        values.append(float(value.detach()))
    with torch.no_grad():
        return image().detach(), values
'''),
    # -- more plausible mistakes --
    "ascent: no clamp": Mistake(
        "check_pixel_ascent",
        False,
        "clamp the pixels",
        """
        def pixel_ascent(objective, images, steps, lr):
            x = images.detach().clone()
            for _ in range(steps):
                x.requires_grad_(True)
                (grad,) = torch.autograd.grad(objective(x).sum(), x)
                x = x.detach() + lr * grad
            return x
    """,
    ),
    "ascent: gradients accumulate": Mistake(
        "check_pixel_ascent",
        False,
        "accumulate",
        """
        def pixel_ascent(objective, images, steps, lr):
            x = images.detach().clone().requires_grad_(True)
            for _ in range(steps):
                objective(x).sum().backward()
                with torch.no_grad():
                    x += lr * x.grad
                    x.clamp_(0, 1)
            return x.detach()
    """,
    ),
    "ascent: clamps once, after an unclamped loop": Mistake(
        "check_pixel_ascent",
        False,
        "after EVERY step",
        """
        def pixel_ascent(objective, images, steps, lr):
            x = images.detach().clone()
            for _ in range(steps):
                x.requires_grad_(True)
                (grad,) = torch.autograd.grad(objective(x).sum(), x)
                x = x.detach() + lr * grad
            return x.clamp(0, 1)
    """,
    ),
    "ascent: modifies its input": Mistake(
        "check_pixel_ascent",
        False,
        "copy",
        """
        def pixel_ascent(objective, images, steps, lr):
            x = images
            for _ in range(steps):
                x.requires_grad_(True)
                (grad,) = torch.autograd.grad(objective(x).sum(), x)
                with torch.no_grad():
                    x += lr * grad
                    x.clamp_(0, 1)
                x.requires_grad_(False)
            return x.detach()
    """,
    ),
    "jitter: dy and dx swapped": Mistake(
        "check_pad_and_jitter",
        False,
        "row offset",
        """
        def pad_and_jitter(x, width, dy, dx, d, value=0.5):
            padded = F.pad(x, (width,) * 4, value=value)
            h, w = padded.shape[-2:]
            return padded[..., dx : dx + h - d, dy : dy + w - d]
    """,
    ),
    "jitter: crops d from each end": Mistake(
        "check_pad_and_jitter",
        False,
        "not d from each end",
        """
        def pad_and_jitter(x, width, dy, dx, d, value=0.5):
            padded = F.pad(x, (width,) * 4, value=value)
            h, w = padded.shape[-2:]
            return padded[..., dy : dy + h - 2 * d, dx : dx + w - 2 * d]
    """,
    ),
    "scale: align_corners=True": Mistake(
        "check_scale_and_rotate",
        False,
        "half-pixel",
        """
        def scale_and_rotate(x, factor, degrees):
            import torchvision.transforms.v2.functional as TF
            h, w = x.shape[-2:]
            x = F.interpolate(x, size=(int(factor * h), int(factor * w)), mode="bilinear", align_corners=True)
            return TF.rotate(x, float(degrees), interpolation=TF.InterpolationMode.BILINEAR)
    """,
    ),
    "rotate: nearest neighbour": Mistake(
        "check_scale_and_rotate",
        False,
        "BILINEAR",
        """
        def scale_and_rotate(x, factor, degrees):
            import torchvision.transforms.v2.functional as TF
            h, w = x.shape[-2:]
            size = [int(factor * h), int(factor * w)]
            if size != [h, w]:
                x = TF.resize(x, size, antialias=False)
            return TF.rotate(x, float(degrees))
    """,
    ),
    "fourier: no sqrt(HW) and / 4": Mistake(
        "check_fourier_image",
        False,
        "overall scale",
        """
        def fourier_image(spectrum, size, decay_power=1.0):
            h, w = size
            f = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)
            scale = 1 / f.clamp_min(1.0 / max(h, w)) ** decay_power
            return torch.fft.irfft2(torch.view_as_complex(spectrum.contiguous()) * scale, s=(h, w))
    """,
    ),
    "fourier: division by zero at f = 0": Mistake(
        "check_fourier_image",
        False,
        "zero frequency",
        """
        def fourier_image(spectrum, size, decay_power=1.0):
            h, w = size
            f = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)
            scale = math.sqrt(h * w) / f ** decay_power
            return torch.fft.irfft2(torch.view_as_complex(spectrum.contiguous()) * scale, s=(h, w)) / 4
    """,
    ),
    "rgb: transposed matrix": Mistake(
        "check_to_rgb",
        False,
        "transpose",
        """
        def to_rgb(t):
            m = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()
            return torch.sigmoid(torch.einsum("ji,njhw->nihw", m, t))
    """,
    ),
    "rgb: no sigmoid": Mistake(
        "check_to_rgb",
        False,
        "sigmoid",
        """
        def to_rgb(t):
            m = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()
            return torch.einsum("ij,njhw->nihw", m, t)
    """,
    ),
    "neuron: centre (H - 1) // 2": Mistake(
        "check_neuron_objective",
        False,
        "H // 2",
        """
        def neuron_objective(acts, n, x=None, y=None):
            h, w = acts.shape[-2:]
            y = (h - 1) // 2 if y is None else y
            x = (w - 1) // 2 if x is None else x
            return acts[:, n, y, x]
    """,
    ),
    "neuron: x = x or W // 2 (0 taken for missing)": Mistake(
        "check_neuron_objective",
        False,
        "x=0 is a real position, the left column: test `x is None`, not `not x`",
        """
        def neuron_objective(acts, n, x=None, y=None):
            h, w = acts.shape[-2:]
            x = x or w // 2
            y = y or h // 2
            return acts[:, n, y, x]
    """,
    ),
    "neuron: the channel mean": Mistake(
        "check_neuron_objective",
        False,
        "channel objective",
        """
        def neuron_objective(acts, n, x=None, y=None):
            return acts[:, n].mean(dim=(1, 2))
    """,
    ),
    "direction: normalised vector": Mistake(
        "check_direction_objective",
        False,
        "do not normalise",
        """
        def direction_objective(acts, vector):
            v = vector / vector.norm()
            return torch.einsum("nchw,c->nhw", acts, v).mean(dim=(1, 2))
    """,
    ),
    "diversity: Gram matrices not normalised": Mistake(
        "check_diversity_objective",
        False,
        "unit norm",
        """
        def diversity_objective(acts):
            n, c = acts.shape[:2]
            flat = acts.reshape(n, c, -1)
            grams = (flat @ flat.transpose(1, 2)).reshape(n, -1)
            sims = grams @ grams.T
            return sims.sum(1) - sims.diagonal()
    """,
    ),
    "render: descends": Mistake(
        "check_render_loop",
        False,
        "mind the sign",
        """
        def render_loop(model, objective, image, transform, steps=32, lr=0.05):
            params = list(image.parameters())
            optimizer = torch.optim.Adam(params, lr=lr)
            values = []
            for _ in range(steps):
                value = objective(model(transform(image()))).sum()
                for p, g in zip(params, torch.autograd.grad(value, params)):
                    p.grad = g
                optimizer.step()
                values.append(float(value.detach()))
            return image().detach(), values
    """,
    ),
    "render: no transform": Mistake(
        "check_render_loop",
        False,
        "every step",
        """
        def render_loop(model, objective, image, transform, steps=32, lr=0.05):
            params = list(image.parameters())
            optimizer = torch.optim.Adam(params, lr=lr)
            values = []
            for _ in range(steps):
                value = objective(model(image())).sum()
                for p, g in zip(params, torch.autograd.grad(-value, params)):
                    p.grad = g
                optimizer.step()
                values.append(float(value.detach()))
            return image().detach(), values
    """,
    ),
    # A linear objective (a channel mean) cannot tell the batch's activations summed before the
    # objective from the objective summed after it: the non-linear, batch-coupled case can.
    "render: objective on the batch's summed activations": Mistake(
        "check_render_loop",
        False,
        "the objective values differ from the reference loop's",
        """
        def render_loop(model, objective, image, transform, steps=32, lr=0.05):
            params = list(image.parameters())
            optimizer = torch.optim.Adam(params, lr=lr)
            values = []
            for _ in range(steps):
                value = objective(model(transform(image())).sum(0, keepdim=True)).sum()
                for p, g in zip(params, torch.autograd.grad(-value, params)):
                    p.grad = g
                optimizer.step()
                values.append(float(value.detach()))
            return image().detach(), values
    """,
    ),
    "render: SGD instead of Adam": Mistake(
        "check_render_loop",
        False,
        "Adam",
        """
        def render_loop(model, objective, image, transform, steps=32, lr=0.05):
            params = list(image.parameters())
            optimizer = torch.optim.SGD(params, lr=lr)
            values = []
            for _ in range(steps):
                value = objective(model(transform(image()))).sum()
                for p, g in zip(params, torch.autograd.grad(-value, params)):
                    p.grad = g
                optimizer.step()
                values.append(float(value.detach()))
            return image().detach(), values
    """,
    ),
}


MISTAKES: dict[str, str] = first_mistakes(NAMED, SOLUTIONS / "ch2_feature_visualization" / "ch2_exercises.ipynb")
