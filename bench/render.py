"""Benchmark feature-visualization rendering: the same work done several ways, side by side.

    python bench/render.py                                  # CPU: 8 channels of mixed3a, 64 px, 32 steps
    python bench/render.py --device cuda --layer mixed4a --all-channels --size 224 --steps 512

Compared (each renders the same channels with the same settings and seed):

* ``loop``: one channel at a time (one ``render`` call per channel);
* ``batched``: all channels in one batch (``render(model, [channel(...), ...])``);
* ``full depth``: batched, but the forward pass runs on through mixed5b instead of stopping at
  the target layer;
* on the CPU also both of the first two in NCHW (render's CPU default is channels-last);
* on a GPU also ``bf16`` (autocast), ``channels_last``, and both together;
* ``compiled`` (``--configs ...,compiled``): batched, with the forward pass to the target
  layer under ``torch.compile`` (the redirected-ReLU hooks are traced with it);
* with ``--lucent`` (when ``torch-lucent`` is importable, not a dependency of this project):
  Lucent 0.1.8's own ``render_vis`` loop, one channel at a time, against ``render`` batched,
  both for ``--lucent-channels`` channels x ``--steps`` steps at ``--lucent-size`` px.

Every row also gives the achieved GFLOP/s (the FLOPs of one render step counted by
``torch.utils.flop_counter`` times the steps, over the time), set against this machine's
convolution peak, measured in the same run with a large convolution (``--no-peak`` skips it).

For each: wall time, images x steps per second, speed-up over the loop with the same memory
format and precision, and peak memory (GPU:
``torch.cuda.max_memory_allocated``; CPU: the peak resident memory a short run of the same
configuration adds, measured in a fresh subprocess). Timing is robust to a busy machine: every
render call is timed ``--repeats`` times, interleaved with the other configurations, and the
fastest time of each call is kept.

Goals (from the issue): on the CPU, batched >= 2.5x faster than the loop for 8 channels of
mixed3a at 64 px and 32 steps, and >= 5x faster than Lucent's loop for 4 channels x 32 steps at
224 px; on one H200, all 508 channels of mixed4a at 224 px and 512 steps in <= 60 s. A
benchmark, not a test: it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

import circuitscope as cs
from circuitscope.methods.optvis import RenderOptions, channel, render


@dataclass
class Config:
    key: str
    name: str
    batched: bool = True
    stop_early: bool = True
    autocast: torch.dtype | None = None
    channels_last: bool | None = None  # None: render's default (channels-last on the CPU only)
    compiled: bool = False


CONFIGS = {
    c.key: c
    for c in [
        Config("loop", "loop (one at a time)", batched=False),
        Config("batched", "batched"),
        Config("full", "batched, full depth", stop_early=False),
        Config("loopnchw", "loop, NCHW", batched=False, channels_last=False),
        Config("nchw", "batched, NCHW", channels_last=False),
        Config("loopcl", "loop, channels_last", batched=False, channels_last=True),
        Config("bf16", "batched, bf16 autocast", autocast=torch.bfloat16),
        Config("cl", "batched, channels_last", channels_last=True),
        Config("bf16cl", "batched, bf16 + channels_last", autocast=torch.bfloat16, channels_last=True),
        Config("compiled", "batched, torch.compile", compiled=True),
    ]
}


def default_configs(device: torch.device) -> list[str]:
    extra = ["bf16", "cl", "bf16cl"] if device.type == "cuda" else ["loopnchw", "nchw"]
    return ["loop", "batched", "full", *extra]


def loop_for(cfg: Config, rows) -> tuple[Config, float] | None:
    """The loop row that does the same work as ``cfg`` one channel at a time, if timed."""
    for other, seconds, *_ in rows:
        if not other.batched and (other.channels_last, other.autocast) == (cfg.channels_last, cfg.autocast):
            return other, seconds
    return None


def jobs(cfg: Config, channels: list[int], batch_size: int | None) -> list[list[int]]:
    """The render calls of a configuration: one channel each, or batches of channels."""
    if not cfg.batched:
        return [[c] for c in channels]
    bs = batch_size or len(channels)
    return [channels[i : i + bs] for i in range(0, len(channels), bs)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class CompiledToLayer:
    """``model`` whose forward pass to ``layer`` runs under ``torch.compile`` (for ``render``).

    ``run_to`` gives only ``layer``; everything else (hook points, ReLUs, parameters, names) is
    the model's, so ``render``'s redirected-ReLU hooks are traced into the compiled graph.
    """

    def __init__(self, model, layer: str):
        self.model, self.layer = model, layer
        # One graph per input size (the random scale gives about 11): automatic dynamic shapes
        # failed in inductor here ("cannot determine truth value of Relational").
        torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
        self.fn = torch.compile(self._to_layer, dynamic=False)

    def _to_layer(self, x):
        return self.model.run_to(x, [self.layer])[self.layer]

    def run_to(self, x, names, *, until=None):
        if list(names) != [self.layer] or until is not None:
            raise KeyError(f"the compiled model gives only {self.layer!r}, not {list(names)}")
        return {self.layer: self.fn(x)}

    def __getattr__(self, name):
        return getattr(self.model, name)


_COMPILED: dict = {}


def render_job(model, cfg: Config, layer: str, job: list[int], args, steps: int) -> float:
    """One render call; returns wall seconds."""
    objectives = channel(layer, job[0]) if not cfg.batched else [channel(layer, c) for c in job]
    if cfg.compiled:
        model = _COMPILED.setdefault((id(model), layer), CompiledToLayer(model, layer))
    sync(model.device)
    start = time.perf_counter()
    options = RenderOptions(stop_early=cfg.stop_early, autocast=cfg.autocast, channels_last=cfg.channels_last)
    render(model, objectives, size=args.size, steps=steps, seed=args.seed, progress=args.progress, options=options)
    sync(model.device)
    return time.perf_counter() - start


def render_flops(model, layer: str, channels: list[int], size: int, seed: int = 0) -> float:
    """Floating-point operations of one batched render step (forward and backward, counted by
    ``torch.utils.flop_counter``: convolutions and matrix products, 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        render(model, [channel(layer, c) for c in channels], size=size, steps=1, seed=seed, progress=False)
    return float(counter.get_total_flops())


def conv_peak(device: torch.device, repeats: int = 5) -> float:
    """This device's float32 convolution peak in GFLOP/s: the best of ``repeats`` timings of a
    large 3x3 convolution (8 x 256 x 56 x 56 -> 256 channels, 29.6 GFLOP, channels-last)."""
    x = torch.randn(8, 256, 56, 56, device=device).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device).to(memory_format=torch.channels_last)
    flops = 2 * 8 * 256 * 256 * 9 * 56 * 56
    best = float("inf")
    with torch.no_grad():
        conv(x)  # plan and warm up
        for _ in range(repeats):
            sync(device)
            start = time.perf_counter()
            conv(x)
            sync(device)
            best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def lucent_comparison(args) -> tuple[float, float, str] | None:
    """Lucent's own loop (``lucent.optvis.render.render_vis``, one channel per call, its
    defaults: Fourier parameterization, decorrelation, standard transforms, Adam 0.05) against
    ``render`` batched, on the same channels, size and steps, each with its own InceptionV1
    (the time does not depend on the weights). Returns (lucent s, ours s, version) or None."""
    try:
        import lucent
        from lucent.modelzoo import inceptionv1
        from lucent.optvis import param as lparam
        from lucent.optvis import render as lrender
    except ImportError:
        return None
    device = torch.device(args.device)
    theirs = inceptionv1(pretrained=False).to(device).eval()
    channels = list(range(args.lucent_channels))
    size, steps = args.lucent_size, args.steps
    start = time.perf_counter()
    for c in channels:
        lrender.render_vis(theirs, f"{args.layer}:{c}", lambda: lparam.image(size), thresholds=(steps,),
                           show_image=False, progress=False, fixed_image_size=size)  # fmt: skip
    lucent_s = time.perf_counter() - start
    ours = cs.load_inceptionv1(args.weights, device=device, progress=False)
    render(ours, [channel(args.layer, c) for c in channels], size=size, steps=2, progress=False)  # warm up
    start = time.perf_counter()
    render(ours, [channel(args.layer, c) for c in channels], size=size, steps=steps, seed=args.seed, progress=False)
    return lucent_s, time.perf_counter() - start, getattr(lucent, "__version__", "?")


# -- memory -----------------------------------------------------------------------------------
def _proc_status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_memory_probe(args) -> None:
    """(In a subprocess.) Print the peak resident memory one short render adds, in bytes."""
    model = cs.load_inceptionv1(args.weights, device="cpu", progress=False)
    cfg = CONFIGS[args.memory_probe]
    channels = select_channels(model, args)
    job = jobs(cfg, channels, args.batch_size)[0]
    base = _proc_status("VmRSS")
    render_job(model, cfg, args.layer, job, args, steps=2)
    peak = _proc_status("VmHWM")
    print(json.dumps({"bytes": None if base is None or peak is None else max(0, peak - base)}))


def cpu_memory(cfg: Config, argv: list[str]) -> int | None:
    """Run :func:`cpu_memory_probe` in a fresh process; large blocks go back to the OS there
    (``MALLOC_MMAP_THRESHOLD_``), so the peak resident set follows the live tensors."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    cmd = [sys.executable, os.path.abspath(__file__), *argv, "--memory-probe", cfg.key]
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])["bytes"]
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return None


def select_channels(model, args) -> list[int]:
    n_layer = model.layer_channels[args.layer]
    return list(range(n_layer if args.all_channels else min(args.channels, n_layer)))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--layer", default="mixed3a")
    p.add_argument("--channels", type=int, default=8, help="the first N channels of the layer")
    p.add_argument("--all-channels", action="store_true", help="every channel of the layer")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=None, help="channels per batch (default: all)")
    p.add_argument("--loop-sample", type=int, default=8,
                   help="time the loop on at most this many channels and scale up (it is slow)")  # fmt: skip
    p.add_argument("--configs", default=None, help="comma list of: " + ",".join(CONFIGS))
    p.add_argument("--repeats", type=int, default=None,
                   help="time each render call n times, keep the fastest (CPU 3, GPU 1)")  # fmt: skip
    p.add_argument("--warmup-steps", type=int, default=16, help="untimed steps per configuration first")
    p.add_argument("--weights", default="synthetic", help="timing does not depend on the weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-memory", action="store_true", help="skip the CPU memory subprocesses")
    p.add_argument("--progress", action="store_true", help="show the render progress bars")
    p.add_argument("--lucent", action="store_true", help="also time Lucent's own loop (if importable)")
    p.add_argument("--lucent-channels", type=int, default=4)
    p.add_argument("--lucent-size", type=int, default=224)
    p.add_argument("--no-peak", action="store_true", help="skip the convolution peak and GFLOP/s")
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        cpu_memory_probe(args)
        return 0
    device = torch.device(args.device)
    if args.repeats is None:
        args.repeats = 1 if device.type == "cuda" else 3
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # 11 input sizes (random scale), each tuned once
    model = cs.load_inceptionv1(args.weights, device=device, progress=False)
    channels = select_channels(model, args)
    n = len(channels)
    cfgs = [CONFIGS[k] for k in (args.configs.split(",") if args.configs else default_configs(device))]
    work = {c.key: jobs(c, channels if c.batched else channels[: args.loop_sample], args.batch_size)
            for c in cfgs}  # fmt: skip
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    print(f"# render benchmark: {n} channels of {args.layer}, {args.size} px, {args.steps} steps, "
          f"batch {args.batch_size or n}; {name}; torch {torch.__version__}", flush=True)  # fmt: skip

    failed = {}
    for cfg in cfgs:  # warm up: kernels, oneDNN/cuDNN plans for every input size, caches
        if args.warmup_steps or cfg.compiled:
            for job in work[cfg.key][:1]:
                try:  # compiling sees every input size here, so the timed runs do not compile
                    render_job(model, cfg, args.layer, job, args, max(min(args.warmup_steps, args.steps),
                                                                      args.steps if cfg.compiled else 0))
                except Exception as err:  # report a configuration that fails, and go on
                    if not cfg.compiled:
                        raise
                    failed[cfg.key] = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    for key, why in failed.items():
        print(f"{CONFIGS[key].name}: failed ({why}); not timed")
    cfgs = [c for c in cfgs if c.key not in failed]
    times = {c.key: [[] for _ in work[c.key]] for c in cfgs}
    gpu_peak = {c.key: 0 for c in cfgs}
    for r in range(args.repeats):  # interleaved: a burst of load elsewhere hits all alike
        for cfg in cfgs:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            for i, job in enumerate(work[cfg.key]):
                times[cfg.key][i].append(render_job(model, cfg, args.layer, job, args, args.steps))
            if device.type == "cuda":
                gpu_peak[cfg.key] = max(gpu_peak[cfg.key], torch.cuda.max_memory_allocated(device))
            done = sum(t[-1] for t in times[cfg.key])
            print(f"  repeat {r + 1}: {cfg.name}: {done:.2f} s", file=sys.stderr, flush=True)

    rows = []
    for cfg in cfgs:
        timed = sum(len(j) for j in work[cfg.key])
        seconds = sum(min(t) for t in times[cfg.key]) * n / timed
        if device.type == "cuda":
            mem = gpu_peak[cfg.key]
        else:
            mem = None if args.no_memory else cpu_memory(cfg, argv)
        rows.append((cfg, seconds, mem, timed < n))

    peak = None if args.no_peak else conv_peak(device)
    # FLOPs per image and step: the batched count over n images (the loop does the same work).
    step_flops = None if args.no_peak else render_flops(model, args.layer, channels, args.size) / n
    head = (f"{'configuration':32s} {'time (s)':>10s} {'img*steps/s':>12s} {'vs loop':>8s} {'GFLOP/s':>8s} "
            f"{'of peak':>8s} {'peak mem':>10s}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for cfg, seconds, mem, scaled in rows:
        rate = n * args.steps / seconds
        loop = loop_for(cfg, rows)
        speed = f"{loop[1] / seconds:.2f}x" if loop else "-"
        memory = "-" if mem is None else f"{mem / 2**20:.0f} MiB"
        gflops = "-" if step_flops is None else f"{step_flops * rate / 1e9:.1f}"
        share = "-" if step_flops is None or not peak else f"{100 * step_flops * rate / 1e9 / peak:.0f}%"
        print(f"{cfg.name:32s} {seconds:9.2f}{'*' if scaled else ' '} {rate:12.1f} {speed:>8s} {gflops:>8s} "
              f"{share:>8s} {memory:>10s}")  # fmt: skip
    if peak is not None:
        print(f"GFLOP/s: {step_flops / 1e9:.3f} GFLOP per image and step (flop_counter, forward + backward) "
              f"x images x steps / time; peak: a large 3x3 convolution on this {device.type}: {peak:.1f} GFLOP/s")
    print(f"time: the sum over render calls of each call's fastest of {args.repeats} (wall clock)")
    print("vs loop: against the loop with the same memory format and precision")
    print("peak mem: " + ("torch.cuda.max_memory_allocated" if device.type == "cuda"
                          else "resident memory added by a 2-step run, in a fresh process"))  # fmt: skip
    if any(r[3] for r in rows):
        print(f"* timed on {min(n, args.loop_sample)} channels and scaled to {n}")

    batched = {c.key: s for c, s, *_ in rows if c.batched and c.stop_early}
    if device.type == "cpu":
        for cfg, seconds, *_ in rows:
            loop = loop_for(cfg, rows)
            if cfg.batched and cfg.stop_early and loop:
                ratio = loop[1] / seconds
                print(f"goal (CPU): {cfg.name} >= 2.5x faster than {loop[0].name}: {ratio:.2f}x "
                      f"-> {'met' if ratio >= 2.5 else 'NOT met'}")  # fmt: skip
    compiled = {c.key: s for c, s, *_ in rows if c.compiled}
    if compiled and "batched" in batched:
        ratio = batched["batched"] / compiled["compiled"]
        print(f"torch.compile: {ratio:.2f}x the eager batched speed -> {'helps' if ratio > 1.05 else 'does not help'}")
    if args.lucent:
        found = lucent_comparison(args)
        if found is None:
            print("lucent: torch-lucent is not importable; Lucent's loop not timed (pip install torch-lucent==0.1.8)")
        else:
            theirs, ours, version = found
            ratio = theirs / ours
            print(f"lucent {version}: {args.lucent_channels} channels x {args.steps} steps at {args.lucent_size} px: "
                  f"Lucent's loop {theirs:.2f} s, render batched {ours:.2f} s: {ratio:.2f}x "
                  f"-> goal >= 5x {'met' if ratio >= 5 else 'NOT met'}")  # fmt: skip
    if device.type == "cuda" and batched:
        best = min(batched, key=batched.get)
        verdict = "met" if batched[best] <= 60 else "NOT met"
        print(f"goal (H200: mixed4a x 508, 224 px, 512 steps in <= 60 s): best {CONFIGS[best].name}: "
              f"{batched[best]:.1f} s -> {verdict} (for this run's settings)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
