"""Chapter 1's plausible mistakes: ``NAMED`` (each fails its check with its hint: tests/test_chapters.py)
and ``MISTAKES``, the nbgrader round trip's mistakes submission: the first named mistake of each
exercise (``tests/test_course.py`` requires the real nbgrader to give it 0 on every exercise).
"""

from __future__ import annotations

from exercise_harness import SOLUTIONS, Mistake, copied, first_mistakes

import circuitscope as cs
from circuitscope.core.receptive_field import chain_receptive_field
from circuitscope.methods.channels import strongest_patch

#: The library's answers, copied (see exercise_harness.copied): mistakes written on top of them.
#: Not in the learner's notebook: no round-trip mistake (the first of each exercise) uses them.
HELPERS = {
    "library_preprocess": copied(cs.preprocess),
    "library_patch": copied(strongest_patch),
    "library_chain": copied(chain_receptive_field),
}

# Plausible mistakes: (check, hidden cases needed, words the hint must contain, code[, error raised]).
NAMED: dict[str, Mistake] = {
    # -- exercise 1 --
    "preprocess: no scaling of uint8": Mistake(
        "check_preprocess",
        False,
        "not [0, 255]",
        """
        def preprocess(image, size=224):
            x = torch.from_numpy(np.asarray(image)).float().permute(2, 0, 1)
            h, w = x.shape[-2:]
            s = size / min(h, w)
            nh, nw = max(size, round(h * s)), max(size, round(w * s))
            x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True)[0]
            t, l = (nh - size) // 2, (nw - size) // 2
            return x[:, t:t + size, l:l + size]
    """,
    ),
    "preprocess: squashed into a square": Mistake(
        "check_preprocess",
        False,
        "squashed",
        """
        def preprocess(image, size=224):
            x = cs.images.to_tensor(image)
            return F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True)[0]
    """,
    ),
    "preprocess: corner crop": Mistake(
        "check_preprocess",
        False,
        "not centred",
        """
        def preprocess(image, size=224):
            x = cs.images.to_tensor(image)
            h, w = x.shape[-2:]
            s = size / min(h, w)
            nh, nw = max(size, round(h * s)), max(size, round(w * s))
            return F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True)[0][:, :size, :size]
    """,
    ),
    "preprocess: channels last": Mistake(
        "check_preprocess",
        False,
        "channels first",
        """
        def preprocess(image, size=224):
            return library_preprocess(image, size).permute(1, 2, 0)
    """,
    ),
    "preprocess: ImageNet normalisation": Mistake(
        "check_preprocess",
        False,
        "do not subtract",
        """
        def preprocess(image, size=224):
            mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
            std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
            return (library_preprocess(image, size) - mean) / std
    """,
    ),
    "preprocess: BGR": Mistake(
        "check_preprocess",
        False,
        "RGB",
        """
        def preprocess(image, size=224):
            return library_preprocess(image, size).flip(0)
    """,
    ),
    "preprocess: float images divided by 255 again": Mistake(
        "check_preprocess",
        True,
        "already in [0, 1]",
        """
        def preprocess(image, size=224):
            x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)
            return library_preprocess(x.numpy(), size)
    """,
    ),
    "preprocess: grey images not handled": Mistake(
        "check_preprocess",
        True,
        "raised",
        """
        def preprocess(image, size=224):
            x = torch.from_numpy(np.asarray(image)).permute(2, 0, 1)
            return library_preprocess(x.permute(1, 2, 0).numpy(), size)
    """,
        raises="RuntimeError",
    ),
    # -- exercise 2 --
    "top-k: labels shifted by one": Mistake(
        "check_top_k",
        False,
        "did you shift",
        """
        def top_k_classes(model, images, k=5):
            p, i = torch.softmax(model(images), -1).topk(k)
            names = cs.labels()
            return [[(int(a), names[int(a) + 1], float(b)) for b, a in zip(pr, ir)]
                    for pr, ir in zip(p, i)]
    """,
        raises="IndexError",
    ),
    "top-k: softmax over the batch": Mistake(
        "check_top_k",
        False,
        "not over the batch",
        """
        def top_k_classes(model, images, k=5):
            logits = model(images)
            p = torch.softmax(logits, dim=0)
            i = logits.topk(k, dim=-1).indices
            return [[(int(a), cs.label(int(a)), float(p[n, a])) for a in row] for n, row in enumerate(i)]
    """,
    ),
    "top-k: logits, not probabilities": Mistake(
        "check_top_k",
        False,
        "not probabilities",
        """
        def top_k_classes(model, images, k=5):
            v, i = model(images).topk(k)
            return [[(int(a), cs.label(int(a)), float(b)) for b, a in zip(vr, ir)] for vr, ir in zip(v, i)]
    """,
    ),
    "top-k: least probable first": Mistake(
        "check_top_k",
        False,
        "LEAST",
        """
        def top_k_classes(model, images, k=5):
            p, i = torch.softmax(model(images), -1).topk(k, largest=False)
            return [[(int(a), cs.label(int(a)), float(b)) for b, a in zip(pr, ir)] for pr, ir in zip(p, i)]
    """,
    ),
    "top-k: ascending order": Mistake(
        "check_top_k",
        False,
        "wrong order",
        """
        def top_k_classes(model, images, k=5):
            p, i = torch.softmax(model(images), -1).topk(k)
            return [[(int(a), cs.label(int(a)), float(b)) for b, a in zip(pr, ir)][::-1]
                    for pr, ir in zip(p, i)]
    """,
    ),
    # -- exercise 3 --
    "hooks: never removed": Mistake(
        "check_capture",
        False,
        "forget to remove",
        """
        def capture_activations(model, images, names):
            store = {}
            def make(name):
                def hook(m, i, o):
                    store[name] = o
                return hook
            for name in names:
                model.hook_points[name].register_forward_hook(make(name))
            model(images)
            return store
    """,
    ),
    "hooks: a lambda in a loop": Mistake(
        "check_capture",
        False,
        "same key",
        """
        def capture_activations(model, images, names):
            store, handles = {}, []
            for name in names:
                handles.append(model.hook_points[name].register_forward_hook(
                    lambda m, i, o: store.__setitem__(name, o)))
            model(images)
            for h in handles:
                h.remove()
            return store
    """,
    ),
    "hooks: every hook of the module cleared": Mistake(
        "check_capture",
        False,
        "only your own",
        """
        def capture_activations(model, images, names):
            store = {}
            def make(name):
                def hook(m, i, o):
                    store[name] = o
                return hook
            for name in names:
                model.hook_points[name].register_forward_hook(make(name))
            model(images)
            for name in names:
                model.hook_points[name]._forward_hooks.clear()
            return store
    """,
    ),
    "hooks: not removed when the forward pass fails": Mistake(
        "check_capture",
        True,
        "finally",
        """
        def capture_activations(model, images, names):
            store = {}
            def make(name):
                def hook(m, i, o):
                    store[name] = o
                return hook
            handles = [model.hook_points[n].register_forward_hook(make(n)) for n in names]
            model(images)
            for h in handles:
                h.remove()
            return store
    """,
    ),
    "hooks: values zipped with the names in firing order": Mistake(
        "check_capture",
        True,
        "order of the forward pass",
        """
        def capture_activations(model, images, names):
            values, handles = [], []
            for name in names:
                handles.append(model.hook_points[name].register_forward_hook(lambda m, i, o: values.append(o)))
            try:
                with torch.no_grad():
                    model(images)
            finally:
                for h in handles:
                    h.remove()
            return dict(zip(names, values))
    """,
    ),
    # -- exercise 4 --
    "channels: ranked by the maximum": Mistake(
        "check_strongest_channels",
        False,
        "MAXIMUM",
        """
        def strongest_channels(acts, k=10):
            return acts.amax(dim=(2, 3)).topk(k, dim=1)
    """,
    ),
    "channels: sum, not mean": Mistake(
        "check_strongest_channels",
        False,
        "SUM",
        """
        def strongest_channels(acts, k=10):
            return acts.sum(dim=(2, 3)).topk(k, dim=1)
    """,
    ),
    "channels: smallest first": Mistake(
        "check_strongest_channels",
        False,
        "largest score down",
        """
        def strongest_channels(acts, k=10):
            return acts.mean(dim=(2, 3)).topk(k, dim=1, largest=False)
    """,
    ),
    "channels: averaged over the batch": Mistake(
        "check_strongest_channels",
        False,
        "over the batch",
        """
        def strongest_channels(acts, k=10):
            s, c = acts.mean(dim=(0, 2, 3)).topk(k)
            return s.expand(acts.shape[0], k), c.expand(acts.shape[0], k)
    """,
    ),
    "channels: averaged over the wrong dims": Mistake(
        "check_strongest_channels",
        False,
        "wrong shape",
        """
        def strongest_channels(acts, k=10):
            return acts.mean(dim=1).topk(k, dim=1)
    """,
    ),
    # -- exercise 5 --
    "receptive field: forgot the stride product": Mistake(
        "check_receptive_field",
        False,
        "stride product",
        """
        def receptive_field(ops, input_size):
            size, jump, start, n = 1, 1, 0.0, input_size
            for k, s in ops:
                p, _ = same_padding(n, k, s)
                size += k - 1
                start += ((k - 1) / 2 - p) * jump
                jump *= s
                n = math.ceil(n / s)
            return size, jump, int(start)
    """,
    ),
    "receptive field: no padding": Mistake(
        "check_receptive_field",
        False,
        "padding shifts",
        """
        def receptive_field(ops, input_size):
            size, jump, start = 1, 1, 0.0
            for k, s in ops:
                size += (k - 1) * jump
                start += (k - 1) / 2 * jump
                jump *= s
            return size, jump, int(start)
    """,
    ),
    "receptive field: padding from the image size": Mistake(
        "check_receptive_field",
        True,
        "ITS input",
        """
        def receptive_field(ops, input_size):
            size, jump, start = 1, 1, 0.0
            for k, s in ops:
                p, _ = same_padding(input_size, k, s)
                size += (k - 1) * jump
                start += ((k - 1) / 2 - p) * jump
                jump *= s
            return size, jump, int(start)
    """,
    ),
    "receptive field: first pixel, not centre": Mistake(
        "check_receptive_field",
        False,
        "CENTRE",
        """
        def receptive_field(ops, input_size):
            rf = library_chain(ops, input_size)
            return rf.size, rf.jump, rf.start - (rf.size - 1) // 2
    """,
    ),
    "receptive field: jump updated too early": Mistake(
        "check_receptive_field",
        False,
        "BEFORE",
        """
        def receptive_field(ops, input_size):
            size, jump, start, n = 1, 1, 0.0, input_size
            for k, s in ops:
                p, _ = same_padding(n, k, s)
                jump *= s
                size += (k - 1) * jump
                start += ((k - 1) / 2 - p) * jump
                n = math.ceil(n / s)
            return size, jump, int(start)
    """,
    ),
    "receptive field: starts from the first op": Mistake(
        "check_receptive_field",
        True,
        "empty chain of ops",
        """
        def receptive_field(ops, input_size):
            kernel, stride = ops[0]
            pad, _ = same_padding(input_size, kernel, stride)
            size, jump, start, n = kernel, stride, (kernel - 1) / 2 - pad, math.ceil(input_size / stride)
            for kernel, stride in ops[1:]:
                pad_before, _ = same_padding(n, kernel, stride)
                size += (kernel - 1) * jump
                start += ((kernel - 1) / 2 - pad_before) * jump
                jump *= stride
                n = math.ceil(n / stride)
            return size, jump, int(start)
    """,
        raises="IndexError",
    ),
    # -- exercise 6 --
    "patch: not clipped": Mistake(
        "check_strongest_patch",
        False,
        "clip",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            row, col = divmod(int(acts[channel].argmax()), acts.shape[2])
            rf = library_receptive_field(layer, input_size)
            (t, b), (l, r) = rf.span(row), rf.span(col)
            return t, l, b, r
    """,
    ),
    "patch: rows and columns swapped": Mistake(
        "check_strongest_patch",
        False,
        "swapped",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            t, l, b, r = library_patch(acts, channel, layer, input_size)
            return l, t, r, b
    """,
    ),
    "patch: maximum over every channel": Mistake(
        "check_strongest_patch",
        False,
        "acts[channel] only",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            row, col = divmod(int(acts.amax(dim=0).argmax()), acts.shape[2])
            return library_receptive_field(layer, input_size).box(row, col)
    """,
    ),
    "patch: exclusive end": Mistake(
        "check_strongest_patch",
        False,
        "INCLUSIVE",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            t, l, b, r = library_patch(acts, channel, layer, input_size)
            return t, l, b + 1, r + 1
    """,
    ),
    "patch: centre without start": Mistake(
        "check_strongest_patch",
        False,
        "place is not",
        """
        def strongest_patch(acts, channel, layer, input_size=224):
            row, col = divmod(int(acts[channel].argmax()), acts.shape[2])
            rf = library_receptive_field(layer, input_size)
            h = (rf.size - 1) // 2
            span = lambda i: (max(i * rf.jump - h, 0), min(i * rf.jump + h, input_size - 1))
            (t, b), (l, r) = span(row), span(col)
            return t, l, b, r
    """,
    ),
}


MISTAKES: dict[str, str] = first_mistakes(NAMED, SOLUTIONS / "ch1_introduction" / "ch1_exercises.ipynb")
