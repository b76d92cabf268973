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

What is checked against the articles' sources (distillpub/post--circuits-curve-detectors and
post--circuits-curve-circuits on GitHub, read for this script) and what is not:

* Verified: the ten 3b units, in the order listed above, are the units (and order) of the
  radial-tuning-curve figure's data in "Curve Detectors" (``pages/radial/data.json``); the
  article's curve renderer is parameterised by **orientation and curvature (radius)**, and it
  reports that curve detectors have "a wide tolerance for the radius of curves" and are invariant
  to cosmetic properties such as colour, and that 3b curves, unlike 3a ones, have no "echoes"
  (responses 180 degrees from the preferred orientation). "Curve Circuits" ("3a Early Curve
  Family"): "At every position curve neurons are excited by early curves in a similar
  orientation and inhibited by ones in the opposing orientation"; the inhibiting ones are
  rotated 180 degrees, not 90 (those negative weights are why 3b curves have no echoes).
* Not verified (the article's stimulus code was not available): the image size, stroke
  thickness, angular width of the arcs, black-on-white drawing, the radii and the angular
  step used below. They are reasonable choices; given the reported tolerance for radius and
  colour, the preferred orientations should not depend much on them. The 3a -> 3b pairs and
  the car-detector units are the course's (COURSE.md, from "Zoom In" / "Curve Circuits"), and the
  "top two rows vs bottom two rows" reading of the car kernels is this script's summary of
  "Zoom In"'s figure, not a number from the paper.

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
    "orientations, with no echoes (Curve Detectors, 'Joint Tuning Curves' and 'Radial Tuning "
    "Curve', 'The Curve Families of InceptionV1: 3b').",
    "early": "At every position curve neurons are excited by early curves in a similar "
    "orientation and inhibited by ones in the opposing orientation (Curve Circuits, '3a Early "
    "Curve Family'; Zoom In, 'Circuit 1').",
    "windows": "Windows (4b:237) excite the car detector 4c:447 at the top of its window and "
    "inhibit it at the bottom (Zoom In, 'Circuit 3: Cars in Superposition' and its figure).",
    "wheels": "Wheels (4b:373) do the reverse: excite at the bottom, inhibit at the top "
    "(Zoom In, 'Circuit 3').",
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


def _angle_gap(a: float, b: float) -> float:
    """Distance in degrees between two orientations (period 360)."""
    d = (a - b) % 360.0
    return min(d, 360.0 - d)


def collect(
    model,
    size: int = 224,
    angles: int = 72,
    radii=(20.0, 30.0, 45.0),
    width: float = 120.0,
    thickness: float = 3.0,
) -> dict:
    """Measure everything the report prints (meaningful only with the real weights).

    Curve stimuli: black arcs on white, ``width`` degrees wide, ``thickness`` px, at each radius
    in ``radii`` (px, in ``size``-px images), ``angles`` orientations; a unit's preferred
    orientation is the vector mean of its responses summed over the radii (several radii because
    the article varies curvature as well as orientation). These drawing parameters are not from
    the article (see the module docstring).
    """
    style = {"width": width, "thickness": thickness, "foreground": 0.0, "background": 1.0}

    def preferred(layer: str, units: list[int]) -> dict[int, float]:
        total = 0.0
        for r in radii:
            names = [f"{layer}:{u}" for u in units]
            curves = stimuli.tuning_curve(model, names, "curve", angles=angles, size=size, radius=r, **style)
            total = total + torch.stack([c.responses for c in curves])
        return {u: stimuli.circular_mean(curves[0].angles, total[i], 360.0) for i, u in enumerate(units)}

    curves_3b = preferred("3b", CURVES_3B)
    order = sorted(CURVES_3B, key=lambda u: curves_3b[u] if curves_3b[u] == curves_3b[u] else 1e9)  # nan last
    early_3a = preferred("3a", [a for a, _ in EARLY_CURVE_PAIRS])

    pairs = []
    for a, b in EARLY_CURVE_PAIRS:
        same = circuits.weights_between(model, f"3a:{a}", f"3b:{b}")
        # The opposing orientation: the early curve whose 3b partner faces most nearly the other way.
        others = [(a2, b2) for a2, b2 in EARLY_CURVE_PAIRS if b2 != b]
        a_opp = min(others, key=lambda p, b=b: _angle_gap(curves_3b[p[1]], curves_3b[b] + 180.0))[0]
        opposite = circuits.weights_between(model, f"3a:{a_opp}", f"3b:{b}")
        pairs.append(
            {
                "source": f"3a:{a}",
                "target": f"3b:{b}",
                "same_sum": float(same.sum()),
                "opposite_source": f"3a:{a_opp}",
                "opposite_sum": float(opposite.sum()),
                "orientation_3a": early_3a[a],
                "orientation_3b": curves_3b[b],
            }
        )

    car = {}
    for name, unit in (("windows", WINDOWS), ("wheels", WHEELS), ("body", BODY)):
        kernel = circuits.weights_between(model, unit, CAR)
        top, bottom = _row_sums(kernel)
        car[name] = {
            "unit": unit,
            "kernel": kernel,
            "top": top,
            "bottom": bottom,
            "total": float(kernel.sum()),
        }
    settings = {"size": size, "angles": angles, "radii": tuple(radii), "width": width, "thickness": thickness}
    return {
        "curves_3b": curves_3b,
        "order": order,
        "cyclic": _cyclic_match(order, CURVES_3B),
        "pairs": pairs,
        "car": car,
        "car_path": circuits.describe_path(model, WINDOWS, CAR),
        "settings": settings,
    }


def _sign(x: float) -> str:
    return "+" if x > 0 else "-" if x < 0 else "0"


def format_report(results: dict, caption: str = "") -> str:
    """The report as text: each paper statement, then what these weights give."""
    s = results["settings"]
    lines = [f"Weights: {caption}" if caption else "", ""]
    lines += [
        "1. mixed3b curve family: preferred orientations",
        "   (degrees, counter-clockwise; 0 = the curve faces right, i.e. bulges to the right)",
        f"   paper: {STATEMENTS['curves']}",
        f"   stimuli: black curves of radius {s['radii']} px, {s['width']} deg wide,",
        f"            {s['thickness']} px thick, in {s['size']} px images, {s['angles']} orientations;",
        "            each unit read at the centre position",
    ]
    lines += [f"     3b:{u:<4d} {results['curves_3b'][u]:7.1f}" for u in results["order"]]
    verdict = {
        "same": "the same circular order",
        "reversed": "the same circular order, reversed",
        "different": "a DIFFERENT order",
    }
    listed = ", ".join(str(u) for u in CURVES_3B)
    lines += [
        f"   measured circular order is {verdict[results['cyclic']]} as the course lists ({listed})",
        "",
    ]

    lines += [
        "2. 3a early curves -> 3b curves (expanded through mixed3b_5x5_bottleneck, ReLU as identity)",
        f"   paper: {STATEMENTS['early']}",
    ]
    for p in results["pairs"]:
        same = "excites" if p["same_sum"] > 0 else "does NOT excite"
        opposite = "inhibits" if p["opposite_sum"] < 0 else "does NOT inhibit"
        lines += [
            (
                f"     {p['source']} -> {p['target']} (facing {p['orientation_3a']:.1f} and "
                f"{p['orientation_3b']:.1f} deg): sum {p['same_sum']:+.4f}, {same}"
            ),
            (
                f"       opposing {p['opposite_source']} -> {p['target']}: "
                f"sum {p['opposite_sum']:+.4f}, {opposite}"
            ),
        ]
    lines.append("")

    lines += [
        "3. car detector 4c:447: top two rows vs bottom two rows of its 5x5 weights",
        f"   path: {results['car_path']}",
    ]
    expect = {"windows": ("+", "-"), "wheels": ("-", "+"), "body": None}
    for name in ("windows", "wheels", "body"):
        c = results["car"][name]
        got = (_sign(c["top"]), _sign(c["bottom"]))
        agree = "" if expect[name] is None else (", agrees" if got == expect[name] else ", DISAGREES")
        lines += [
            f"   paper: {STATEMENTS[name]}",
            (
                f"     {c['unit']} -> {CAR}: top {c['top']:+.4f} ({got[0]}), "
                f"bottom {c['bottom']:+.4f} ({got[1]}), total {c['total']:+.4f}{agree}"
            ),
        ]
        lines += ["       " + " ".join(f"{float(v):+.3f}" for v in row) for row in c["kernel"]]
    return "\n".join(lines).strip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--size", type=int, default=224, help="stimulus size in pixels (224)")
    parser.add_argument(
        "--angles", type=int, default=72, help="orientations per tuning curve (72: every 5 degrees)"
    )
    args = parser.parse_args(argv)
    model = load_real_model(args.device)
    results = collect(model, size=args.size, angles=args.angles)
    sys.stdout.write(format_report(results, cs.weights_caption(model) + f" ({model.weights_source})"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
