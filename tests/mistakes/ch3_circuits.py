"""Chapter 3's plausible mistakes: ``NAMED`` (each fails its check with its hint: tests/test_chapters.py)
and ``MISTAKES``, the nbgrader round trip's mistakes submission: the first named mistake of each
exercise (``tests/test_course.py`` requires the real nbgrader to give it 0 on every exercise).
"""

from __future__ import annotations

from exercise_harness import SOLUTIONS, Mistake, copied, first_mistakes

from circuitscope.methods import stimuli

#: The library's answer, copied (see exercise_harness.copied): a mistake written on top of it.
#: Not in the learner's notebook: no round-trip mistake (the first of each exercise) uses it.
HELPERS = {"library_curve": copied(stimuli.curve)}

NMF = """
    def nmf(x, k, n_iter=500, seed=0):
        gen = torch.Generator().manual_seed(seed)
        x = x.double()
        w = torch.rand(x.shape[0], k, generator=gen, dtype=torch.float64)
        h = torch.rand(k, x.shape[1], generator=gen, dtype=torch.float64)
        for _ in range(n_iter):
            h = h * (w.T @ x) / (w.T @ w @ h + 1e-12)
            w = w * (x @ h.T) / (w @ h @ h.T + 1e-12)
        norms = h.norm(dim=1, keepdim=True)
        return w * norms.T, h / norms
"""  # a right NMF (from a start other than the solution's), which the mistakes below change

# Plausible mistakes: (check, hidden cases needed, words the hint must contain, code).
# The first of each check is also the nbgrader round trip's mistakes submission.
NAMED: dict[str, Mistake] = {
    # -- exercise 1 --
    "direct: source and target swapped": Mistake(
        "check_direct_weights",
        False,
        "swapped",
        """
        def direct_weights(model, source_unit, target_unit):
            target_layer, target_channel = parse_unit(target_unit)
            if target_layer.startswith("mixed") and "_" not in target_layer:
                target_layer, target_channel = branch_of(target_unit)
            _, source_channel = parse_unit(source_unit)
            weight = getattr(model, f"{target_layer}_pre_relu_conv").weight
            return weight[source_channel, target_channel].detach()
    """,
    ),
    "direct: the concatenated channel used as the branch's": Mistake(
        "check_direct_weights",
        False,
        "branch_of",
        """
        def direct_weights(model, source_unit, target_unit):
            target_layer, target_channel = parse_unit(target_unit)
            if target_layer.startswith("mixed") and "_" not in target_layer:
                target_layer = branch_of(target_unit)[0]
            _, source_channel = parse_unit(source_unit)
            return getattr(model, f"{target_layer}_pre_relu_conv").weight[target_channel, source_channel].detach()
    """,
    ),
    # -- exercise 2 --
    "expanded: the bottleneck's ReLU applied to its weights": Mistake(
        "check_expanded_weights",
        False,
        "ReLU",
        """
        def expanded_weights_bottleneck(model, source_unit, target_unit):
            branch, channel = branch_of(target_unit)
            _, source = parse_unit(source_unit)
            w_branch = getattr(model, f"{branch}_pre_relu_conv").weight[channel]
            w_neck = getattr(model, f"{branch}_bottleneck_pre_relu_conv").weight[:, source, 0, 0]
            return torch.einsum("bij,b->ij", w_branch, torch.relu(w_neck)).detach()
    """,
    ),
    "expanded: the bottleneck's weights left out": Mistake(
        "check_expanded_weights",
        False,
        "weighted by its weight",
        """
        def expanded_weights_bottleneck(model, source_unit, target_unit):
            branch, channel = branch_of(target_unit)
            return getattr(model, f"{branch}_pre_relu_conv").weight[channel].sum(0).detach()
    """,
    ),
    # -- exercise 3 --
    "curve: y axis pointing down": Mistake(
        "check_curve_stimulus",
        False,
        "y axis points UP",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            c = (size - 1) / 2
            coords = torch.arange(size, dtype=torch.float64) - c
            y, x = torch.meshgrid(coords, coords, indexing="ij")  # y grows downwards: wrong
            phi, half = math.radians(orientation), math.radians(min(width, 360.0)) / 2
            cx, cy = -radius * math.cos(phi), -radius * math.sin(phi)
            angle = torch.remainder(torch.atan2(y - cy, x - cx) - phi + math.pi, 2 * math.pi) - math.pi
            d = (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs()
            d = torch.where(angle.abs() <= half, d, torch.full_like(d, 99.0))
            return (0.5 + thickness / 2 - d).clamp(0, 1).float().expand(3, -1, -1).clone()
    """,
    ),
    "curve: the circle's centre in front of the arc": Mistake(
        "check_curve_stimulus",
        False,
        "BEHIND",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            c = (size - 1) / 2
            coords = torch.arange(size, dtype=torch.float64) - c
            y, x = torch.meshgrid(-coords, coords, indexing="ij")
            phi, half = math.radians(orientation), math.radians(min(width, 360.0)) / 2
            cx, cy = radius * math.cos(phi), radius * math.sin(phi)  # wrong side
            angle = torch.remainder(torch.atan2(y - cy, x - cx) - phi - math.pi + math.pi, 2 * math.pi) - math.pi
            d = (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs()
            d = torch.where(angle.abs() <= half, d, torch.full_like(d, 99.0))
            return (0.5 + thickness / 2 - d).clamp(0, 1).float().expand(3, -1, -1).clone()
    """,
    ),
    "curve: width taken as the half-width": Mistake(
        "check_curve_stimulus",
        False,
        "whole arc's angular extent",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            return library_curve(orientation, radius=radius, width=min(2 * width, 360.0), size=size,
                                 thickness=thickness)[0]
    """,
    ),
    "curve: the angle from the orientation not wrapped (an arc facing 270 degrees vanishes)": Mistake(
        "check_curve_stimulus",
        False,
        "wrap the angle",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            c = (size - 1) / 2
            coords = torch.arange(size, dtype=torch.float64) - c
            y, x = torch.meshgrid(-coords, coords, indexing="ij")
            phi, half = math.radians(orientation), math.radians(min(width, 360.0)) / 2
            cx, cy = -radius * math.cos(phi), -radius * math.sin(phi)
            angle = torch.atan2(y - cy, x - cx) - phi  # in [-pi - phi, pi - phi]: not wrapped
            d = (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs()
            d = torch.where(angle.abs() <= half, d, torch.full_like(d, 99.0))
            return (0.5 + thickness / 2 - d).clamp(0, 1).float().expand(3, -1, -1).clone()
    """,
    ),
    "curve: angles in [0, 360), their difference not wrapped (an arc across 0 degrees is cut)": Mistake(
        "check_curve_stimulus",
        False,
        "wrap the angle",
        """
        def draw_curve(orientation, radius, width=120.0, size=64, thickness=2.0):
            c = (size - 1) / 2
            coords = torch.arange(size, dtype=torch.float64) - c
            y, x = torch.meshgrid(-coords, coords, indexing="ij")
            phi, half = math.radians(orientation % 360), math.radians(min(width, 360.0)) / 2
            cx, cy = -radius * math.cos(phi), -radius * math.sin(phi)
            angle = torch.remainder(torch.atan2(y - cy, x - cx), 2 * math.pi) - phi
            d = (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs()
            d = torch.where(angle.abs() <= half, d, torch.full_like(d, 99.0))
            return (0.5 + thickness / 2 - d).clamp(0, 1).float().expand(3, -1, -1).clone()
    """,
    ),
    # -- exercise 4 --
    "tuning: the maximum over the map": Mistake(
        "check_tuning_curve",
        False,
        "not its maximum",
        """
        def radial_tuning_curve(model, unit, angles, radius, size):
            layer, channel = parse_unit(unit, model)
            images = stimuli.curve(angles, radius=radius, size=size)
            acts = cs.activations(model, images, [layer])[layer]
            return acts[:, channel].amax(dim=(1, 2))
    """,
    ),
    "tuning: the centre as H // 2": Mistake(  # a visible case has an even map (10 x 10)
        "check_tuning_curve",
        False,
        "(H - 1) // 2",
        """
        def radial_tuning_curve(model, unit, angles, radius, size):
            layer, channel = parse_unit(unit, model)
            acts = cs.activations(model, stimuli.curve(angles, radius=radius, size=size), [layer])[layer]
            return acts[:, channel, acts.shape[-2] // 2, acts.shape[-1] // 2]
    """,
    ),
    "tuning: the pre-ReLU value": Mistake(
        "check_tuning_curve",
        False,
        "forget the ReLU",
        """
        def radial_tuning_curve(model, unit, angles, radius, size):
            layer, channel = parse_unit(unit, model)
            name = layer + "_pre_relu"
            acts = cs.activations(model, stimuli.curve(angles, radius=radius, size=size), [name])[name]
            h, w = acts.shape[-2:]
            return acts[:, channel, (h - 1) // 2, (w - 1) // 2]
    """,
    ),
    # -- exercise 5 --
    "circuit: absolute values": Mistake(
        "check_read_circuit",
        False,
        "Keep the sign",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit).abs().sum(dim=(1, 2))
            limit = threshold * totals.max()
            order = torch.argsort(totals, descending=True).tolist()
            return [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] > limit], []
    """,
    ),
    "circuit: only the centre entry": Mistake(
        "check_read_circuit",
        False,
        "whole k x k kernel",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit)[:, 2, 2]
            limit = threshold * totals.abs().max()
            order = torch.argsort(totals, descending=True).tolist()
            excites = [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] > limit]
            inhibits = [(format_unit(source_layer, c), float(totals[c])) for c in reversed(order) if totals[c] < -limit]
            return excites, inhibits
    """,
    ),
    "circuit: an absolute threshold": Mistake(
        "check_read_circuit",
        False,
        "relative",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit).sum(dim=(1, 2))
            order = torch.argsort(totals, descending=True).tolist()
            excites = [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] > threshold]
            inhibits = [(format_unit(source_layer, c), float(totals[c])) for c in reversed(order) if totals[c] < -threshold]
            return excites, inhibits
    """,
    ),
    "circuit: inhibitors in the wrong order": Mistake(
        "check_read_circuit",
        False,
        "most negative",
        """
        def read_circuit(model, target_unit, source_layer, threshold=0.1):
            totals = circuits.expanded_weights(model, source_layer, target_unit).sum(dim=(1, 2))
            limit = threshold * totals.abs().max()
            order = torch.argsort(totals, descending=True).tolist()
            excites = [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] > limit]
            inhibits = [(format_unit(source_layer, c), float(totals[c])) for c in order if totals[c] < -limit]
            return excites, inhibits
    """,
    ),
    # -- exercise 6 --
    "nmf: a truncated SVD": Mistake(
        "check_nmf",
        False,
        "non-negative",
        """
        def nmf(x, k, n_iter=500, seed=0):
            u, s, vh = torch.linalg.svd(x.double(), full_matrices=False)
            w, h = u[:, :k] * s[:k], vh[:k]
            return w, h
    """,
    ),
    "nmf: rows of h not normalised": Mistake(
        "check_nmf",
        False,
        "unit L2 norm",
        """
        def nmf(x, k, n_iter=500, seed=0):
            gen = torch.Generator().manual_seed(seed)
            x = x.double()
            w = torch.rand(x.shape[0], k, generator=gen, dtype=torch.float64)
            h = torch.rand(k, x.shape[1], generator=gen, dtype=torch.float64)
            for _ in range(n_iter):
                h = h * (w.T @ x) / (w.T @ w @ h + 1e-12)
                w = w * (x @ h.T) / (w @ h @ h.T + 1e-12)
            return w, h
    """,
    ),
    "nmf: no epsilon": Mistake(
        "check_nmf",
        False,
        "eps",
        """
        def nmf(x, k, n_iter=500, seed=0):
            gen = torch.Generator().manual_seed(seed)
            x = x.double()
            w = torch.rand(x.shape[0], k, generator=gen, dtype=torch.float64)
            h = torch.rand(k, x.shape[1], generator=gen, dtype=torch.float64)
            for _ in range(n_iter):
                h = h * (w.T @ x) / (w.T @ w @ h)
                w = w * (x @ h.T) / (w @ h @ h.T)
            norms = h.norm(dim=1, keepdim=True)
            return w * norms.T, h / norms
    """,
    ),
    "nmf: an unseeded start": Mistake(
        "check_nmf",
        False,
        "seed the random start",
        NMF.replace("gen = torch.Generator().manual_seed(seed)", "gen = None  # not seeded"),
    ),
    "nmf: the seed ignored": Mistake(
        "check_nmf",
        False,
        "seed the random start",
        NMF.replace("manual_seed(seed)", "manual_seed(0)"),
    ),
    "nmf: n_iter ignored": Mistake(
        "check_nmf",
        False,
        "run exactly n_iter updates",
        NMF.replace("range(n_iter)", "range(500)"),
    ),
    "nmf: n_iter counting the updates of h and of w separately": Mistake(
        "check_nmf",
        False,
        "run exactly n_iter updates",
        NMF.replace("range(n_iter)", "range(n_iter // 2)"),
    ),
    # -- exercise 7 --
    "branches: the end of a range included": Mistake(
        "check_branch_shares",
        False,
        "excludes its end",
        """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            ranges, start = {}, 0
            for name in names:
                ranges[name] = (start, start + model.layer_channels[name])
                start += model.layer_channels[name]
            held_by = [next(n for n, (lo, hi) in ranges.items() if lo <= c <= hi) for c in channels]
            return held_by, {n: (held_by.count(n) / len(channels) if channels else 0.0) for n in names}
    """,
    ),
    "branches: mixed3b's widths hard-coded": Mistake(
        "check_branch_shares",
        False,
        "read each branch's width from model.layer_channels",
        """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            bounds = [0, 128, 320, 416, 480]  # mixed3b's
            held_by = [next(names[i] for i in range(4) if bounds[i] <= c < bounds[i + 1]) for c in channels]
            return held_by, {n: (held_by.count(n) / len(channels) if channels else 0.0) for n in names}
    """,
    ),
    "branches: counts, not shares": Mistake(
        "check_branch_shares",
        False,
        "FRACTIONS",
        """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            ranges, start = {}, 0
            for name in names:
                ranges[name] = (start, start + model.layer_channels[name])
                start += model.layer_channels[name]
            held_by = [next(n for n, (lo, hi) in ranges.items() if lo <= c < hi) for c in channels]
            return held_by, {n: float(held_by.count(n)) for n in names}
    """,
    ),
    "branches: only the branches that hold a channel": Mistake(
        "check_branch_shares",
        False,
        "EVERY branch",
        """
        def branch_shares(model, block, channels):
            names = [f"{block}_{s}" for s in ("1x1", "3x3", "5x5", "pool_reduce")]
            ranges, start = {}, 0
            for name in names:
                ranges[name] = (start, start + model.layer_channels[name])
                start += model.layer_channels[name]
            held_by = [next(n for n, (lo, hi) in ranges.items() if lo <= c < hi) for c in channels]
            return held_by, {n: held_by.count(n) / len(channels) for n in set(held_by)}
    """,
    ),
    "branches: short names": Mistake(
        "check_branch_shares",
        False,
        "layer name",
        """
        def branch_shares(model, block, channels):
            names = ["1x1", "3x3", "5x5", "pool_reduce"]
            ranges, start = {}, 0
            for name in names:
                ranges[name] = (start, start + model.layer_channels[f"{block}_{name}"])
                start += model.layer_channels[f"{block}_{name}"]
            held_by = [next(n for n, (lo, hi) in ranges.items() if lo <= c < hi) for c in channels]
            return held_by, {n: (held_by.count(n) / len(channels) if channels else 0.0) for n in names}
    """,
    ),
    # -- exercise 8 --
    "banding: column means (vertical bands)": Mistake(
        "check_banding_index",
        False,
        "constant along each ROW",
        """
        def banding_index(weight):
            centred = weight - weight.mean(dim=(-2, -1), keepdim=True)
            means = centred.mean(dim=-2, keepdim=True).expand_as(centred)
            return float(means.pow(2).sum() / centred.pow(2).sum())
    """,
    ),
    "banding: kernels not centred": Mistake(
        "check_banding_index",
        False,
        "centre each kernel",
        """
        def banding_index(weight):
            means = weight.mean(dim=-1, keepdim=True).expand_as(weight)
            return float(means.pow(2).sum() / weight.pow(2).sum())
    """,
    ),
    "banding: row means counted once": Mistake(
        "check_banding_index",
        False,
        "each row mean stands for the k entries",
        """
        def banding_index(weight):
            centred = weight - weight.mean(dim=(-2, -1), keepdim=True)
            return float(centred.mean(dim=-1).pow(2).sum() / centred.pow(2).sum())
    """,
    ),
    "banding: a mean of per-kernel ratios": Mistake(
        "check_banding_index",
        False,
        "pool over the kernels",
        """
        def banding_index(weight):
            centred = weight - weight.mean(dim=(-2, -1), keepdim=True)
            rows = centred.mean(dim=-1, keepdim=True).expand_as(centred)
            return float((rows.pow(2).sum(dim=(-2, -1)) / centred.pow(2).sum(dim=(-2, -1))).mean())
    """,
    ),
}


MISTAKES: dict[str, str] = first_mistakes(NAMED, SOLUTIONS / "ch3_circuits" / "ch3_exercises.ipynb")
