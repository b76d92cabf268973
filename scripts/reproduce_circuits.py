#!/usr/bin/env python
"""Reproduce three circuit facts of the Circuits thread with the real InceptionV1 weights.

Prints, beside what the papers state:

1. the preferred orientations of the ten mixed3b curve detectors (3b:379, 406, 385, 343, 342,
   388, 324, 340, 330, 349), measured with synthetic curves, in circular order
   ("Curve Detectors", sections "Synthetic Curves" and "Radial Tuning Curve");
2. the signs of the expanded weights (through mixed3b's 5x5 bottleneck) from the 3a early
   curves to the 3b curves: 3a:147 -> 3b:379, 3a:81 -> 3b:385, 3a:145 -> 3b:342,
   3a:71 -> 3b:330 ("same orientation excites, opposite inhibits": "Zoom In", "Circuit 1";
   "Curve Circuits", "3a Early Curve Family");
3. the top-row and bottom-row signs of the car detector 4c:447's weights from the windows
   detector 4b:237 and the wheels detector 4b:373, and from the car body 4b:491
   ("Zoom In", "Circuit 3: Cars in Superposition").

The unit ids only mean something with the real weights, so the script refuses to run on the
synthetic stand-in (or when the real weights cannot be had) with a non-zero exit status.

    python scripts/reproduce_circuits.py                # needs the real weights
    CIRCUITSCOPE_WEIGHTS=/path/to/inception5h.pth python scripts/reproduce_circuits.py
"""

from __future__ import annotations

import argparse
import sys

import torch

import circuitscope as cs
from circuitscope import circuits, stimuli
from circuitscope.models import WeightsError
from circuitscope.provenance import is_synthetic

CURVES_3B = [379, 406, 385, 343, 342, 388, 324, 340, 330, 349]  # the course's (circular) order
EARLY_CURVE_PAIRS = [(147, 379), (81, 385), (145, 342), (71, 330)]  # 3a -> 3b, same orientation
CAR, WINDOWS, WHEELS, BODY = "4c:447", "4b:237", "4b:373", "4b:491"

STATEMENTS = {
    "curves": "The ten 3b curve detectors each prefer one orientation and jointly span all "
    "orientations (Curve Detectors, 'Radial Tuning Curve'; Zoom In, 'Example 1').",
    "early": "At every position, curve neurons are excited by early curves in a similar "
    "orientation and inhibited by ones in the opposing orientation (Curve Circuits, '3a Early "
    "Curve Family'; Zoom In, 'Circuit 1').",
    "windows": "Windows (4b:237) excite the car detector 4c:447 at the top of its window and "
    "inhibit it at the bottom (Zoom In, 'Circuit 3').",
    "wheels": "Wheels (4b:373) do the reverse: excite at the bottom, inhibit at the top (Zoom In, 'Circuit 3').",
    "body": "The car body (4b:491) also feeds the car detector (Zoom In, 'Circuit 3').",
}


def check_real_weights(model) -> None:
    """Exit (status 1) unless ``model`` runs on the real InceptionV1 weights."""
    if is_synthetic(model):
        raise SystemExit(
            "REFUSING to run: this model has SYNTHETIC weights. The unit ids of the Circuits "
            "thread (3b:379, 4c:447, ...) only mean something with the real InceptionV1 "
            "weights; get them with `circuitscope weights download` or set CIRCUITSCOPE_WEIGHTS "
            "to an inception5h.pth file."
        )


def load_real_model(device=None):
    """The real-weights model, or exit (status 1) with the steps to get the weights."""
    try:
        model = cs.load_inceptionv1("lucid", device=device)
    except WeightsError as err:
        raise SystemExit(
            "REFUSING to run: the real InceptionV1 weights are not available, and these results "
            f"are meaningless with synthetic ones.\n{err}"
        ) from None
    check_real_weights(model)
    return model


def _cyclic_match(order: list[int], reference: list[int]) -> str:
    """'same', 'reversed' or 'different': is ``order`` a rotation of ``reference`` (or its reverse)?"""
    n = len(reference)
    for candidate, name in ((reference, "same"), (reference[::-1], "reversed")):
        i = candidate.index(order[0])
        if [candidate[(i + j) % n] for j in range(n)] == order:
            return name
    return "different"


def _row_sums(kernel: torch.Tensor, rows: int = 2) -> tuple[float, float]:
    return float(kernel[:rows].sum()), float(kernel[-rows:].sum())


def collect(model, size: int = 224, angles: int = 72, radii=(20.0, 30.0, 45.0), width: float = 120.0, thickness: float = 3.0) -> dict:
    """Measure everything the report prints. Works on any InceptionV1 (meaningful only on the real one)."""
    kwargs = dict(width=width, thickness=thickness, foreground=0.0, background=1.0)  # black curves on white

    def preferred(layer: str, units: list[int]) -> dict[int, float]:
        total = None
        for r in radii:
            curves = stimuli.tuning_curve(model, [f"{layer}:{u}" for u in units], "curve", angles=angles, size=size, radius=r, **kwargs)
            resp = torch.stack([c.responses for c in curves])
            total = resp if total is None else total + resp
        a = curves[0].angles
        return {u: stimuli.circular_mean(a, total[i], 360.0) for i, u in enumerate(units)}

    curves_3b = preferred("3b", CURVES_3B)
    order = sorted(CURVES_3B, key=lambda u: (curves_3b[u] if curves_3b[u] == curves_3b[u] else 1e9))
    early_3a = preferred("3a", [a for a, _ in EARLY_CURVE_PAIRS])

    pairs = []
    for a, b in EARLY_CURVE_PAIRS:
        same = circuits.weights_between(model, f"3a:{a}", f"3b:{b}")
        # The opposite orientation: the paired early curve whose 3b partner prefers the curve most nearly 180 degrees away.
        def gap(b2: int) -> float:
            d = (curves_3b[b2] - curves_3b[b] - 180.0) % 360.0
            return min(d, 360.0 - d)

        a_opp, b_opp = min(((a2, b2) for a2, b2 in EARLY_CURVE_PAIRS if b2 != b), key=lambda p: gap(p[1]))
        opposite = circuits.weights_between(model, f"3a:{a_opp}", f"3b:{b}")
        pairs.append(dict(source=f"3a:{a}", target=f"3b:{b}", same_sum=float(same.sum()), same_max=float(same.max()),
                          opposite_source=f"3a:{a_opp}", opposite_sum=float(opposite.sum()),
                          orientation_3a=early_3a[a], orientation_3b=curves_3b[b]))  # fmt: skip

    car = {}
    for name, unit in (("windows", WINDOWS), ("wheels", WHEELS), ("body", BODY)):
        kernel = circuits.weights_between(model, unit, CAR)
        top, bottom = _row_sums(kernel)
        car[name] = dict(unit=unit, kernel=kernel, top=top, bottom=bottom, total=float(kernel.sum()),
                         path=circuits.describe_path(model, unit, CAR))  # fmt: skip
    return dict(curves_3b=curves_3b, order=order, cyclic=_cyclic_match(order, CURVES_3B), pairs=pairs, car=car,
                settings=dict(size=size, angles=angles, radii=tuple(radii), width=width, thickness=thickness))  # fmt: skip


def _sign(x: float) -> str:
    return "+" if x > 0 else "-" if x < 0 else "0"


def format_report(results: dict, caption: str = "") -> str:
    lines = [f"Weights: {caption}" if caption else "", ""]
    s = results["settings"]
    lines += [
        "1. mixed3b curve family: preferred orientations (degrees, counter-clockwise, 0 = curve facing right)",
        f"   paper: {STATEMENTS['curves']}",
        f"   stimuli: curves of radius {s['radii']} px, {s['width']} deg wide, {s['thickness']} px, {s['size']} px images, {s['angles']} orientations",
    ]
    for u in results["order"]:
        lines.append(f"     3b:{u:<4d} {results['curves_3b'][u]:7.1f}")
    listed = ", ".join(str(u) for u in CURVES_3B)
    verdict = {"same": "the same circular order", "reversed": "the same circular order, reversed", "different": "a DIFFERENT order"}
    lines += [f"   measured circular order is {verdict[results['cyclic']]} as the course lists ({listed})", ""]

    lines += ["2. 3a early curves -> 3b curves (expanded through mixed3b_5x5_bottleneck)", f"   paper: {STATEMENTS['early']}"]
    for p in results["pairs"]:
        ok_same, ok_opp = p["same_sum"] > 0, p["opposite_sum"] < 0
        lines.append(
            f"     {p['source']:>7} -> {p['target']:<7} (3a at {p['orientation_3a']:5.1f}, 3b at {p['orientation_3b']:5.1f} deg): "
            f"sum {p['same_sum']:+.4f} ({'excites' if ok_same else 'does NOT excite'}); "
            f"opposite {p['opposite_source']} -> {p['target']}: sum {p['opposite_sum']:+.4f} ({'inhibits' if ok_opp else 'does NOT inhibit'})"
        )
    lines.append("")

    lines += ["3. car detector 4c:447 (5x5 branch, expanded through mixed4c_5x5_bottleneck): top two rows vs bottom two rows"]
    expect = {"windows": ("+", "-"), "wheels": ("-", "+"), "body": None}
    for name in ("windows", "wheels", "body"):
        c = results["car"][name]
        got = (_sign(c["top"]), _sign(c["bottom"]))
        agree = "" if expect[name] is None else ("  agrees" if got == expect[name] else "  DISAGREES")
        lines.append(f"   paper: {STATEMENTS[name]}")
        lines.append(f"     {c['unit']} -> {CAR}: top {c['top']:+.4f} ({got[0]}), bottom {c['bottom']:+.4f} ({got[1]}), total {c['total']:+.4f}{agree}")
        rows = "\n".join("       " + " ".join(f"{float(v):+.3f}" for v in row) for row in c["kernel"])
        lines.append(rows)
    return "\n".join(lines).strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--size", type=int, default=224, help="stimulus size in pixels (224)")
    parser.add_argument("--angles", type=int, default=72, help="orientations per tuning curve (72: every 5 degrees)")
    args = parser.parse_args(argv)
    model = load_real_model(args.device)
    results = collect(model, size=args.size, angles=args.angles)
    sys.stdout.write(format_report(results, cs.weights_caption(model) + f" ({model.weights_source})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
