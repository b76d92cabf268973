"""Plausible wrong solutions for chapter 2's exercises, one per solution cell (by grade_id).

The round trip in tests/test_course.py puts all of them into one submission and requires 0
points on every test cell; tests/test_ch2.py checks that each fails with the right hint.
"""

MISTAKES: dict[str, str] = {
    # gradient DEscent: the sign is wrong
    "ch2-pixel-ascent": '''
def pixel_ascent(objective, images, steps, lr):
    """Plain gradient ascent on pixels (wrong: it descends)."""
    x = images.detach().clone()
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x).sum(), x)
        x = (x.detach() - lr * grad).clamp(0, 1)
    return x.detach()
''',
    # pads with zeros instead of the given value
    "ch2-pad-and-jitter": '''
def pad_and_jitter(x, width, dy, dx, d, value=0.5):
    """Pad, then crop at a fixed offset (wrong: pads with zeros)."""
    padded = F.pad(x, (width, width, width, width))
    h, w = padded.shape[-2:]
    return padded[..., dy : dy + h - d, dx : dx + w - d]
''',
    # rotates clockwise
    "ch2-scale-and-rotate": '''
def scale_and_rotate(x, factor, degrees):
    """Resize, then rotate (wrong: clockwise)."""
    import torchvision.transforms.v2.functional as TF
    h, w = x.shape[-2:]
    size = [int(factor * h), int(factor * w)]
    if size != [h, w]:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return TF.rotate(x, -float(degrees), interpolation=TF.InterpolationMode.BILINEAR) if degrees else x
''',
    # multiplies by the frequency instead of dividing
    "ch2-fourier-image": '''
def fourier_image(spectrum, size, decay_power=1.0):
    """Scaled Fourier spectrum -> image (wrong: amplitude grows with frequency)."""
    h, w = size
    f = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)
    scale = math.sqrt(h * w) * f.clamp_min(1.0 / max(h, w)) ** decay_power
    return torch.fft.irfft2(torch.view_as_complex(spectrum.contiguous()) * scale, s=(h, w)) / 4
''',
    # forgets to normalise the matrix
    "ch2-to-rgb": '''
def to_rgb(t):
    """Decorrelated colours -> RGB (wrong: matrix not normalised)."""
    return torch.sigmoid(torch.einsum("ij,njhw->nihw", COLOR_CORRELATION_SVD_SQRT, t))
''',
    # x and y swapped
    "ch2-neuron-objective": '''
def neuron_objective(acts, n, x=None, y=None):
    """Channel n at one position (wrong: x and y swapped)."""
    h, w = acts.shape[-2:]
    y = h // 2 if y is None else y
    x = w // 2 if x is None else x
    return acts[:, n, x, y]
''',
    # sums over positions instead of averaging
    "ch2-direction-objective": '''
def direction_objective(acts, vector):
    """Dot product with a direction (wrong: summed over positions)."""
    return torch.einsum("nchw,c->nhw", acts, vector).sum(dim=(1, 2))
''',
    # keeps each image's similarity to itself
    "ch2-diversity-objective": '''
def diversity_objective(acts):
    """Gram-matrix similarity (wrong: includes j == i)."""
    n, c = acts.shape[:2]
    flat = acts.reshape(n, c, -1)
    grams = F.normalize((flat @ flat.transpose(1, 2)).reshape(n, -1), dim=1)
    return (grams @ grams.T).sum(dim=1)
''',
    # loss.backward() fills the model's weights' gradients too
    "ch2-render-loop": '''
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
''',
}
