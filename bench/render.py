"""Benchmark feature-visualization rendering: the same work done several ways, side by side.

    python bench/render.py                                  # CPU: 8 channels of mixed3a, 64 px, 32 steps
    python bench/render.py --device cuda --layer mixed4a --all-channels --size 224 --steps 512

Compared (each renders the same channels with the same settings):

* ``loop``: one channel at a time (one render call per channel);
* ``batched``: all channels in one batch (``render(model, [channel(...), ...])``);
* ``full depth``: batched, but the forward pass runs on through mixed5b instead of stopping at
  the target layer;
* on a GPU also ``bf16`` (autocast), ``channels_last``, and both together.

For each: wall time, images x steps per second, speed-up over the loop, and peak memory (GPU:
``torch.cuda.max_memory_allocated``; CPU: the process's peak resident set, reset before each
configuration where Linux allows it). Goals (from the issue): on the CPU, batched >= 2.5x
faster than the loop for 8 channels of mixed3a at 64 px and 32 steps; on one H200, all 508
channels of mixed4a at 224 px and 512 steps in <= 60 s. A benchmark, not a test: it prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import torch

import circuitscope as cs
from circuitscope.optvis import channel, render


@dataclass
class Config:
    name: str
    batched: bool = True
    stop_early: bool = True
    autocast: torch.dtype | None = None
    channels_last: bool = False


def configs_for(device: torch.device, names: list[str] | None) -> list[Config]:
    every = {
        "loop": Config("loop (one at a time)", batched=False),
        "batched": Config("batched"),
        "full": Config("batched, full depth", stop_early=False),
        "bf16": Config("batched, bf16 autocast", autocast=torch.bfloat16),
        "cl": Config("batched, channels_last", channels_last=True),
        "bf16cl": Config("batched, bf16 + channels_last", autocast=torch.bfloat16, channels_last=True),
    }
    if names is None:
        names = ["loop", "batched", "full"] + (["bf16", "cl", "bf16cl"] if device.type == "cuda" else [])
    return [every[n] for n in names]


# -- memory ---------------------------------------------------------------------------------
def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: writing 5 resets the peak resident set size (VmHWM)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def _proc_status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


_BASELINE = {"rss": 0}


def reset_baseline(device: torch.device) -> None:
    """CPU: remember the resident set before a run, to report what the run added."""
    if device.type != "cuda":
        _BASELINE["rss"] = _proc_status("VmRSS") or 0


def peak_bytes(device: torch.device) -> int:
    """GPU: peak allocated by PyTorch. CPU: peak resident set minus the set before the run."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    peak = _proc_status("VmHWM")
    if peak is None:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return max(0, peak - _BASELINE["rss"])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- one configuration ------------------------------------------------------------------------
def run(model, cfg: Config, layer: str, channels: list[int], args, steps: int) -> tuple[float, float]:
    """Render ``channels`` as ``cfg`` says; return (wall seconds, process CPU seconds)."""
    kw = dict(size=args.size, steps=steps, seed=args.seed, progress=args.progress, stop_early=cfg.stop_early,
              autocast=cfg.autocast, channels_last=cfg.channels_last)  # fmt: skip
    sync(model.device)
    start, cpu_start = time.perf_counter(), time.process_time()
    if cfg.batched:
        bs = args.batch_size or len(channels)
        for i in range(0, len(channels), bs):
            render(model, [channel(layer, c) for c in channels[i : i + bs]], **kw)
    else:
        for c in channels:
            render(model, channel(layer, c), **kw)
    sync(model.device)
    return time.perf_counter() - start, time.process_time() - cpu_start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--layer", default="mixed3a")
    p.add_argument("--channels", type=int, default=8, help="the first N channels of the layer")
    p.add_argument("--all-channels", action="store_true", help="every channel of the layer")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=None, help="channels per batch (default: all)")
    p.add_argument("--loop-sample", type=int, default=8,
                   help="time the loop on this many channels and extrapolate (it is slow)")  # fmt: skip
    p.add_argument("--configs", default=None, help="comma list of: loop,batched,full,bf16,cl,bf16cl")
    p.add_argument("--repeats", type=int, default=1, help="time each config this often, keep the fastest")
    p.add_argument("--warmup-steps", type=int, default=16, help="untimed steps per config first")
    p.add_argument("--weights", default="synthetic", help="timing does not depend on the weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--progress", action="store_true", help="show the render progress bars")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # 11 input sizes (random scale) are each tuned once
    model = cs.load_inceptionv1(args.weights, device=device, progress=False)
    n_layer = model.layer_channels[args.layer]
    channels = list(range(n_layer if args.all_channels else min(args.channels, n_layer)))
    n = len(channels)
    cfgs = configs_for(device, args.configs.split(",") if args.configs else None)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# render benchmark: {n} channels of {args.layer}, {args.size} px, {args.steps} steps, "
          f"batch {args.batch_size or n}; {name}; torch {torch.__version__}")  # fmt: skip
    samples = {id(c): channels[: min(n, args.loop_sample)] if not c.batched else channels for c in cfgs}
    for cfg in cfgs:  # warm up every configuration first (kernels, oneDNN/cuDNN plans, caches)
        if args.warmup_steps:
            run(model, cfg, args.layer, samples[id(cfg)][: (args.batch_size or n)], args, min(args.warmup_steps, args.steps))
    timings = {id(c): [] for c in cfgs}
    mems = {id(c): 0 for c in cfgs}
    for _ in range(args.repeats):  # repeats interleave the configurations (fairer on a busy machine)
        for cfg in cfgs:
            sample = samples[id(cfg)]
            reset_peak(device)
            reset_baseline(device)
            wall, cpu = run(model, cfg, args.layer, sample, args, args.steps)
            mems[id(cfg)] = max(mems[id(cfg)], peak_bytes(device))
            timings[id(cfg)].append((wall * n / len(sample), cpu * n / len(sample)))
            print(f"  {cfg.name}: {wall:.2f} s", file=sys.stderr, flush=True)
    rows = [(c, min(timings[id(c)])[0], min(t[1] for t in timings[id(c)]), mems[id(c)], len(samples[id(c)]) < n)
            for c in cfgs]  # fmt: skip

    loop = next((s for c, s, *_ in rows if not c.batched), None)
    loop_cpu = next((s for c, _, s, *_ in rows if not c.batched), None)
    head = (f"{'configuration':32s} {'time (s)':>10s} {'img*steps/s':>12s} {'vs loop':>8s} "
            f"{'CPU s':>9s} {'vs loop':>8s} {'peak mem':>10s}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for cfg, seconds, cpu, mem, extrapolated in rows:
        rate = n * args.steps / seconds
        speed = f"{loop / seconds:.2f}x" if loop else "-"
        cpu_speed = f"{loop_cpu / cpu:.2f}x" if loop_cpu else "-"
        star = "*" if extrapolated else " "
        print(f"{cfg.name:32s} {seconds:9.2f}{star} {rate:12.1f} {speed:>8s} {cpu:9.2f} {cpu_speed:>8s} "
              f"{mem / 2**20:7.0f} MiB")  # fmt: skip
    print("time: wall clock, fastest of --repeats; CPU s: this process's CPU time (less sensitive to other load);")
    print("peak mem: GPU: torch.cuda.max_memory_allocated; CPU: peak resident set added by the run")
    if any(r[4] for r in rows):
        print(f"* timed on {min(n, args.loop_sample)} channels and scaled to {n}")

    batched = [s for c, s, *_ in rows if c.batched and c.stop_early]
    if device.type == "cpu" and loop and batched:
        for label, best in (("batched", batched[0]), ("best batched configuration", min(batched))):
            ratio = loop / best
            print(f"goal (CPU): {label} >= 2.5x faster than the loop: {ratio:.2f}x -> {'met' if ratio >= 2.5 else 'NOT met'}")
    if device.type == "cuda" and batched:
        best = min(batched)
        print(f"goal (H200, mixed4a x 508, 224 px, 512 steps <= 60 s): best {best:.1f} s "
              f"-> {'met' if best <= 60 else 'NOT met'} (for this run's settings)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
