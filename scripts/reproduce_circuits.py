#!/usr/bin/env python
"""Check three circuit facts of the Circuits thread against the articles' published results.

Measures, with the InceptionV1 weights, and compares with what the articles published:

1. the preferred orientations of the ten mixed3b curve detectors (3b:379, 406, 385, 343, 342,
   388, 324, 340, 330, 349), measured with synthetic curves; the article's values are the peaks
   of its published radial tuning curves (``published.preferred_orientations("mixed3b")``,
   "Curve Detectors", figure "Radial Tuning Curve", file ``curve-detectors/radial/data.json``);
2. the signs of the expanded weights (through mixed3b's bottlenecks) from the 3a early curves to
   the 3b curves: same orientation excites, opposite orientation inhibits ("Curve Circuits",
   "3a Early Curve Family"; "Zoom In", "Circuit 1");
3. the signs of the car detector 4c:447's weights from windows (4b:237), car body (4b:491) and
   wheels (4b:373), top two rows against bottom two rows ("Zoom In", "Circuit 3: Cars in
   Superposition", and the words of its figure ``zoom-in/images/car-circuit.png``).

It prints one table, ``claim | article's value | measured | verdict``, and exits with

* 0 when every row AGREES,
* 1 when any row DISAGREES,
* 2 when it cannot run: the published data cannot be had, the weights cannot be had, or the
  weights are the synthetic stand-in (the unit ids only mean something with InceptionV1's
  weights). A file of unknown hash ("unverified" weights) is refused unless
  ``--allow-unverified`` (or ``$CIRCUITSCOPE_ALLOW_UNVERIFIED=1``) accepts it; the output then
  says "UNVERIFIED weights" in its header.

Stimulus and orientation conventions. Claim 1 is measured as the article measured it: the
articles' stimulus (:func:`circuitscope.methods.stimuli.rounded_corner`: a filled 90-degree corner
rounded by an arc, its legs running to the image's edge, so no line ends; radius 60 px at
224 px among the radii averaged), its responses averaged over curvature (several radii) and
the preferred orientation taken as the peak (:func:`circuitscope.methods.stimuli.radial_tuning_curve`).
``--stimulus curve`` uses the short arc of the exercises instead. The stimuli count
orientation counter-clockwise and the article clockwise; the measured peaks are converted with
:func:`circuitscope.methods.stimuli.article_orientation` (read off the article's figures: see
:mod:`circuitscope.methods.stimuli`). As a safeguard the comparison still fits the single rotation (and
reflection) that best aligns the measured angles with the article's and prints it: with the
conversion it should be close to 0 and not mirrored. Each unit AGREES when its aligned angle
is within ``--tolerance`` degrees (30) of the article's.

What is the article's and what is this script's:

* The ten 3b units and their published tuning curves are the article's data. The stimulus's
  shape (a rounded 90-degree corner) and its 60 px radius follow the articles; the other radii,
  the colours (white on black), the angular step and the image size are ours (the article
  reports "a wide tolerance for the radius of curves" and invariance to colour).
* The 3a -> 3b pairs are "Curve Circuits"' (its weight figures use 3a:147 -> 3b:379,
  3a:81 -> 3b:385, 3a:71 -> 3b:340 and 3a:145 -> 3b:388). "Zoom In" uses 147 -> 379,
  81 -> 385, 145 -> 342 and 71 -> 330 (``--pairs zoom-in``). For each pair, the opposite early
  curve is the 3a curve detector whose published orientation ("Curve Detectors",
  ``curve-detectors/data/curves-mixed3a.json``) is nearest to 180 degrees from the source's.
  A kernel "excites" when the sum of its entries is positive and "inhibits" when negative
  (:func:`circuitscope.methods.circuits.kernel_regions` says where on the kernel the sign lies).
* The car claims are the words of "Zoom In"'s figure: windows "excite the car detector at the
  top and inhibit at the bottom", the car body "excites the car detector, especially at the
  bottom", wheels "excite the car detector at the bottom and inhibit at the top". Reading them
  as the signs of the sums of the kernel's top two and bottom two rows (and, for the body,
  bottom sum > top sum > 0) is this script's.

    python scripts/reproduce_circuits.py                       # the real weights (cache/download)
    python scripts/reproduce_circuits.py --weights inception5h.pth
    python scripts/reproduce_circuits.py --weights other.pth --allow-unverified
"""

import argparse
import inspect
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np

#: The ten mixed3b curve detectors, in the order of the article's radial tuning figure.
CURVES_3B = [379, 406, 385, 343, 342, 388, 324, 340, 330, 349]

#: Same-orientation 3a -> 3b pairs, by the article that shows them.
PAIRS = {
    "curve-circuits": [(147, 379), (81, 385), (71, 340), (145, 388)],
    "zoom-in": [(147, 379), (81, 385), (145, 342), (71, 330)],
}
PAIR_SOURCES = {
    "curve-circuits": "Curve Circuits, '3a Early Curve Family', the figure 'Curves are excited by "
    "early curves in similar orientations' (post--circuits-curve-circuits, "
    "pages/curves3a/weightsSimilarOpposing/index.js)",
    "zoom-in": "Zoom In, 'Circuit 1: Curve Detectors', the figure 'Curve detectors are excited by "
    "earlier detectors in similar orientations' (post--circuits-zoom-in, "
    "public/images/CurveOrientationsA.svg)",
}

CAR = "4c:447"
TOLERANCE = 30.0  # degrees

#: The articles' statements checked in claims 2 and 3 (from their text and figures, not data).
CLAIMS = {
    "early": {
        "text": "At every position curve neurons are excited by early curves in a similar "
        "orientation and inhibited by ones in the opposing orientation.",
        "source": "Curve Circuits (Cammarata et al., 2021), '3a Early Curve Family'; "
        "Zoom In (Olah et al., 2020), 'Circuit 1'",
        "figures": ["curve-circuits/circuitWeights/figure.png", "zoom-in/images/curve-weights-a.png"],
    },
    "car": {
        "text": "Windows (4b:237) excite the car detector at the top and inhibit at the bottom. "
        "Car Body (4b:491) excites the car detector, especially at the bottom. Wheels (4b:373) "
        "excite the car detector at the bottom and inhibit at the top.",
        "source": "Zoom In (Olah et al., 2020), 'Circuit 3: Cars in Superposition' (words of its figure)",
        "figures": ["zoom-in/images/car-circuit.png"],
    },
}

#: Claim 3 as a table: (source unit, what, part of the kernel, the article's sign).
CAR_CLAIMS = [
    ("4b:237", "windows", "top", "+"),
    ("4b:237", "windows", "bottom", "-"),
    ("4b:491", "car body", "total", "+"),
    ("4b:491", "car body", "bottom > top", "+"),
    ("4b:373", "wheels", "top", "-"),
    ("4b:373", "wheels", "bottom", "+"),
]

EXIT_AGREE, EXIT_DISAGREE, EXIT_CANNOT_RUN = 0, 1, 2


class CannotRun(Exception):
    """The check cannot run (exit status 2): no published data, no weights, synthetic weights."""


@dataclass
class Row:
    """One line of the report."""

    claim: str
    article: str
    measured: str
    agrees: bool

    @property
    def verdict(self) -> str:
        return "AGREES" if self.agrees else "DISAGREES"


@dataclass
class Published:
    """What the articles published that the comparison needs."""

    orientations_3b: dict[int, float]  # the ten curve detectors, degrees (article's convention)
    orientations_3a: dict[int, float]  # the 3a early curves, degrees
    pairs: list[tuple[int, int]]
    pairs_source: str
    claims: dict = field(default_factory=lambda: CLAIMS)


@dataclass
class Measured:
    """What the weights give."""

    orientations_3b: dict[int, float]  # degrees, this script's convention; nan: no response
    pair_sums: dict[tuple[int, int], float]  # (3a unit, 3b unit) -> sum of the expanded kernel
    car: dict[str, dict[str, float]]  # "4b:237" -> {"top", "bottom", "total"}
    settings: dict = field(default_factory=dict)


# -- the published side --------------------------------------------------------------------
def load_published(pairs: str = "curve-circuits") -> Published:
    """The articles' values, from the verified data registry; :class:`CannotRun` if unavailable."""
    from circuitscope.core import published

    try:
        o3b = published.preferred_orientations("mixed3b")
        o3a = published.preferred_orientations("mixed3a")
    except published.DataError as err:
        raise CannotRun(
            "the articles' published data cannot be had, so there is nothing to compare with "
            f"({type(err).__name__}: {err}). Run `circuitscope data fetch` with internet access, "
            "or set CIRCUITSCOPE_MIRROR to a mirror of the course data."
        ) from None
    missing = [u for u in CURVES_3B if u not in o3b]
    if missing:
        raise CannotRun(f"the published mixed3b tuning data lacks units {missing}")
    return Published({u: o3b[u] for u in CURVES_3B}, o3a, PAIRS[pairs], PAIR_SOURCES[pairs])


def circular_difference(a: float, b: float, period: float = 360.0) -> float:
    """``a - b`` wrapped into ``(-period / 2, period / 2]``."""
    d = (a - b) % period
    return d - period if d > period / 2 else d


def opposite_partners(pub: Published) -> dict[int, int]:
    """For each pair's 3b unit, the 3a early curve facing most nearly the other way.

    That is the 3a unit (of the article's 3a curve data) whose published orientation is nearest
    to 180 degrees from the pair's 3a source.
    """
    out = {}
    for a, b in pub.pairs:
        target = pub.orientations_3a[a] + 180.0
        out[b] = min(
            (u for u in pub.orientations_3a if u != a),
            key=lambda u: abs(circular_difference(pub.orientations_3a[u], target)),
        )
    return out


def weight_pairs(pub: Published) -> list[tuple[int, int, str]]:
    """``(3a unit, 3b unit, "same" | "opposite")`` for every kernel claim 2 needs."""
    opposite = opposite_partners(pub)
    rows = []
    for a, b in pub.pairs:
        rows += [(a, b, "same"), (opposite[b], b, "opposite")]
    return rows


# -- the measured side ---------------------------------------------------------------------
#: Radii (px in 224-px images) of claim 1's stimuli: the article's 60 px and others around it.
RADII_224 = (20.0, 30.0, 45.0, 60.0, 80.0, 110.0)


def measure_orientations(model, size=224, angles=72, radii=None, width=120.0, thickness=3.0,
                         stimulus="rounded_corner") -> dict[int, float]:  # fmt: skip
    """Preferred orientations (degrees, **the article's convention**) of the ten 3b curve detectors.

    ``stimulus="rounded_corner"`` (default, the articles'): filled rounded corners, white on
    black; ``"curve"``: black arcs on white, ``width`` degrees wide, ``thickness`` px. At each
    radius of ``radii`` (px in ``size``-px images; default :data:`RADII_224` scaled to ``size``)
    and ``angles`` orientations each unit is read at the centre position; its responses are
    averaged over the radii and its preferred orientation is their peak, as the article's
    radial tuning curve (:func:`circuitscope.methods.stimuli.radial_tuning_curve`), converted to the
    article's clockwise count (:func:`circuitscope.methods.stimuli.article_orientation`). ``nan``: the
    unit did not respond.
    """
    from circuitscope.methods import stimuli

    radii = tuple(r * size / 224.0 for r in RADII_224) if radii is None else tuple(radii)
    style = ({"width": width, "thickness": thickness, "foreground": 0.0, "background": 1.0}
             if stimulus == "curve" else {})  # fmt: skip
    names = [f"3b:{u}" for u in CURVES_3B]
    curves = stimuli.radial_tuning_curve(model, names, angles=angles, size=size,
                                         radii=[r * 224.0 / size for r in radii], stimulus=stimulus,
                                         **style)  # fmt: skip
    out = {}
    for u, tc in zip(CURVES_3B, curves):
        responded = float(tc.responses.max()) > 0
        out[u] = stimuli.article_orientation(tc.peak) if responded else float("nan")
    return out


def _row_sums(kernel, rows: int = 2) -> tuple[float, float]:
    return float(kernel[:rows].sum()), float(kernel[-rows:].sum())


def measure(model, pub: Published, size=224, angles=72, radii=None, width=120.0,
            thickness=3.0, stimulus="rounded_corner") -> Measured:  # fmt: skip
    """Everything the comparison needs, from ``model``'s weights (see :func:`measure_orientations`)."""
    from circuitscope.methods import circuits

    radii = tuple(r * size / 224.0 for r in RADII_224) if radii is None else tuple(radii)
    orientations = measure_orientations(model, size, angles, radii, width, thickness, stimulus)
    sums = {}
    for a, b, _ in weight_pairs(pub):
        sums[(a, b)] = float(circuits.weights_between(model, f"3a:{a}", f"3b:{b}").sum())
    car = {}
    for unit in sorted({u for u, *_ in CAR_CLAIMS}):
        regions = circuits.kernel_regions(circuits.weights_between(model, unit, CAR), band=2)
        car[unit] = {"top": regions.regions["top"], "bottom": regions.regions["bottom"], "total": regions.total}
    settings = {"size": size, "angles": angles, "radii": tuple(round(r, 1) for r in radii), "width": width,
                "thickness": thickness, "stimulus": stimulus}  # fmt: skip
    return Measured(orientations, sums, car, settings)


# -- the comparison ------------------------------------------------------------------------
def align(measured: dict[int, float], article: dict[int, float]) -> tuple[int, float, dict[int, float]]:
    """The rotation (and reflection) that best maps ``measured`` angles onto ``article``'s.

    Returns ``(direction, offset, aligned)``: ``direction`` is +1 (same sense) or -1 (mirrored),
    ``offset`` in degrees, and ``aligned[u] = direction * measured[u] + offset`` (mod 360), the
    choice minimising the sum of squared circular differences over the units measured (nan
    units are left out of the fit and stay nan).
    """
    units = [u for u in article if u in measured and math.isfinite(measured[u])]
    if not units:
        return 1, 0.0, {u: float("nan") for u in article}
    m = np.array([measured[u] for u in units])
    p = np.array([article[u] for u in units])
    offsets = np.arange(0.0, 360.0, 0.25)
    best = None
    for direction in (1, -1):
        d = (p[None, :] - (direction * m[None, :] + offsets[:, None]) + 180.0) % 360.0 - 180.0
        cost = (d**2).sum(axis=1)
        i = int(np.argmin(cost))
        if best is None or cost[i] < best[0] - 1e-9:
            best = (cost[i], direction, float(offsets[i]))
    _, direction, offset = best
    aligned = {
        u: (direction * measured[u] + offset) % 360.0 if u in measured and math.isfinite(measured[u])
        else float("nan")
        for u in article
    }  # fmt: skip
    return direction, offset, aligned


def _cyclic_order(angles: dict[int, float]) -> list[int]:
    """Units sorted by angle, rotated to start at the article's first unit when present."""
    order = sorted((u for u in angles if math.isfinite(angles[u])), key=lambda u: angles[u])
    if CURVES_3B[0] in order:
        i = order.index(CURVES_3B[0])
        order = order[i:] + order[:i]
    return order


def _sign(x: float) -> str:
    return "+" if x > 0 else "-" if x < 0 else "0"


def compare(pub: Published, meas: Measured, tolerance: float = TOLERANCE) -> tuple[list[Row], list[str]]:
    """The report's rows, and notes on how claim 1 was aligned. Pure: no model, no files."""
    rows: list[Row] = []
    direction, offset, aligned = align(meas.orientations_3b, pub.orientations_3b)
    notes = [
        (
            f"Claim 1 alignment: measured angles {'mirrored (x -> -x) and ' if direction < 0 else ''}"
            f"rotated by {offset:+.2f} deg, the best single "
            f"{'reflection + rotation' if direction < 0 else 'rotation'} onto the article's angles; "
            f"a unit AGREES when its aligned angle is within {tolerance:g} deg of the article's."
        ),
    ]
    for u in CURVES_3B:
        art = pub.orientations_3b[u]
        raw = meas.orientations_3b.get(u, float("nan"))
        if not math.isfinite(aligned[u]):
            rows.append(Row(f"1. 3b:{u} preferred orientation", f"{art:.1f} deg", "no response", False))
            continue
        diff = circular_difference(aligned[u], art)
        rows.append(
            Row(
                f"1. 3b:{u} preferred orientation",
                f"{art:.1f} deg",
                f"{aligned[u]:.1f} deg (raw {raw:.1f}; diff {diff:+.1f})",
                abs(diff) <= tolerance,
            )
        )
    order = _cyclic_order(aligned)
    article_order = _cyclic_order(pub.orientations_3b)
    notes.append(
        "Claim 1 circular order (aligned): "
        + ("the article's" if order == article_order else "DIFFERENT from the article's ")
        + ("" if order == article_order else "(" + ", ".join(map(str, order)) + ")")
        + f"; article: {', '.join(map(str, article_order))} (information, not a verdict)."
    )

    for a, b, kind in weight_pairs(pub):
        s = meas.pair_sums[(a, b)]
        want = "+" if kind == "same" else "-"
        what = "same orientation, excites" if kind == "same" else "opposite orientation, inhibits"
        rows.append(
            Row(
                f"2. 3a:{a} -> 3b:{b} ({kind})",
                f"{want} ({what})",
                f"{_sign(s)} (sum {s:+.4f})",
                _sign(s) == want,
            )
        )

    for unit, name, part, want in CAR_CLAIMS:
        c = meas.car[unit]
        if part == "bottom > top":
            got = "+" if c["bottom"] > c["top"] else "-"
            shown = f"{c['bottom']:+.4f} vs {c['top']:+.4f}"
            article = "bottom > top (especially at the bottom)"
        else:
            got = _sign(c[part])
            shown = f"{got} ({c[part]:+.4f})"
            article = {"+": "+ (excites)", "-": "- (inhibits)"}[want]
        rows.append(Row(f"3. {unit} {name} -> {CAR} {part}", article, shown, got == want))
    return rows, notes


def exit_status(rows: list[Row]) -> int:
    """0 when every row agrees, 1 otherwise."""
    return EXIT_AGREE if all(r.agrees for r in rows) else EXIT_DISAGREE


def format_table(rows: list[Row]) -> str:
    """``claim | article's value | measured | verdict`` as aligned text."""
    head = ("claim", "article's value", "measured", "verdict")
    cells = [head] + [(r.claim, r.article, r.measured, r.verdict) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(4)]
    lines = [" | ".join(c[i].ljust(widths[i]) for i in range(4)).rstrip() for c in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def format_report(pub: Published, meas: Measured, rows: list[Row], notes: list[str], header: str) -> str:
    """The whole printed report: header, sources, table, notes, summary."""
    s = meas.settings
    out = [header, ""]
    out.append("Sources:")
    out.append("  1. Curve Detectors (Cammarata et al., 2020), 'Radial Tuning Curve': published data "
               "curve-detectors/radial/data.json (peak of each unit's tuning curve)")  # fmt: skip
    if s and s.get("stimulus", "curve") == "curve":
        out.append(f"     measured with black curves of radius {s['radii']} px, {s['width']} deg wide, "
                   f"{s['thickness']} px thick, {s['size']} px images, "
                   f"{s['angles']} orientations")  # fmt: skip
    elif s:
        out.append(f"     measured with the articles' stimulus, filled rounded 90-degree corners of radius "
                   f"{s['radii']} px (averaged), {s['size']} px images, {s['angles']} orientations; "
                   "peaks converted to the article's clockwise count")  # fmt: skip
    out.append(f"  2. {CLAIMS['early']['source']}; pairs: {pub.pairs_source};")
    out.append("     opposite early curves from curve-detectors/data/curves-mixed3a.json; figures: "
               + ", ".join(CLAIMS["early"]["figures"]))  # fmt: skip
    out.append(f"  3. {CLAIMS['car']['source']}; figure: {', '.join(CLAIMS['car']['figures'])}")
    out += ["", format_table(rows), ""]
    out += notes
    bad = [r for r in rows if not r.agrees]
    out += ["", f"{len(rows) - len(bad)} of {len(rows)} rows agree"
            + (f"; {len(bad)} DISAGREE." if bad else ".")]  # fmt: skip
    return "\n".join(out) + "\n"


# -- the weights ---------------------------------------------------------------------------
def load_model(weights: str | None, allow_unverified: bool, device=None):
    """The model to check and its weights state; :class:`CannotRun` when it cannot be used."""
    import circuitscope as cs
    from circuitscope.core.models import WeightsError
    from circuitscope.core.provenance import weights_state

    spec = weights if weights else "lucid"
    kwargs = {"device": device}
    if "allow_unverified" in inspect.signature(cs.load_inceptionv1).parameters:
        kwargs["allow_unverified"] = allow_unverified
    try:
        model = cs.load_inceptionv1(spec, **kwargs)
    except (WeightsError, FileNotFoundError, ValueError) as err:
        raise CannotRun(
            "the real InceptionV1 weights cannot be had or used, and these claims are about "
            f"InceptionV1's learned weights.\n{err}\nGet the real weights with `circuitscope weights download`, "
            "pass --weights PATH, or accept a file of unknown hash with --allow-unverified."
        ) from None
    state = weights_state(model)
    if state == "synthetic":
        raise CannotRun(
            "this model has SYNTHETIC weights. The unit ids of the Circuits thread (3b:379, "
            "4c:447, ...) only mean something with the real InceptionV1 weights; get them with "
            "`circuitscope weights download` or pass --weights PATH to an inception5h.pth file."
        )
    if state == "unverified" and not allow_unverified:
        raise CannotRun(
            f"the weights ({getattr(model, 'weights_source', spec)}) are UNVERIFIED: not the "
            "published inception5h file. Pass --allow-unverified (or set "
            "CIRCUITSCOPE_ALLOW_UNVERIFIED=1) to check them anyway."
        )
    return model, state


def header_for(model, state: str) -> str:
    source = getattr(model, "weights_source", "")
    where = f" ({source})" if source else ""
    if state == "unverified":
        return (f"Weights: UNVERIFIED weights{where}: not the published inception5h file; "
                "any disagreement may be the file's, not the articles'.")  # fmt: skip
    return f"Weights: real InceptionV1 (inception5h), hash verified{where}"


# -- the command ---------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, metavar="PATH",
                        help="an inception5h.pth file (default: the real weights from "
                        "$CIRCUITSCOPE_WEIGHTS, the cache or a verified download)")  # fmt: skip
    parser.add_argument("--allow-unverified", action="store_true",
                        help="accept a weight file whose hash is not the published one; the "
                        "report is then labelled UNVERIFIED")  # fmt: skip
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    parser.add_argument("--size", type=int, default=224, help="stimulus size in pixels (224)")
    parser.add_argument("--angles", type=int, default=72, help="orientations per tuning curve (72)")
    parser.add_argument("--radii", type=float, nargs="+", default=None,
                        help="curve radii in pixels of --size images (default 20 30 45 60 80 110 "
                        "at 224 px, scaled to --size)")  # fmt: skip
    parser.add_argument("--stimulus", choices=["rounded_corner", "curve"], default="rounded_corner",
                        help="the articles' rounded corner (default) or the exercises' short arc")  # fmt: skip
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help="degrees within which an aligned orientation agrees (30)")  # fmt: skip
    parser.add_argument("--pairs", choices=sorted(PAIRS), default="curve-circuits",
                        help="whose 3a -> 3b pairs to check (curve-circuits)")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    allow = args.allow_unverified or os.environ.get("CIRCUITSCOPE_ALLOW_UNVERIFIED", "").strip().lower() in {
        "1", "true", "yes"}  # fmt: skip
    try:
        pub = load_published(args.pairs)
        model, state = load_model(args.weights, allow, args.device)
    except CannotRun as err:
        print(f"REFUSING to run (exit {EXIT_CANNOT_RUN}): {err}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    meas = measure(model, pub, size=args.size, angles=args.angles,
                   radii=None if args.radii is None else tuple(args.radii), stimulus=args.stimulus)  # fmt: skip
    rows, notes = compare(pub, meas, args.tolerance)
    sys.stdout.write(format_report(pub, meas, rows, notes, header_for(model, state)))
    return exit_status(rows)


if __name__ == "__main__":
    sys.exit(main())
