"""bench/render.py still runs (a benchmark, not a timed test: tiny settings, no timing checks)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_render_benchmark_runs_and_prints_a_table(synthetic_model, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("bench_render", ROOT / "bench" / "render.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench.cs, "load_inceptionv1", lambda *a, **k: synthetic_model)
    argv = ["--layer", "conv2d1", "--channels", "2", "--size", "16", "--steps", "1", "--warmup-steps", "0",
            "--configs", "loop,batched,full,bf16,cl", "--repeats", "1", "--no-memory", "--no-peak", "--lucent",
            "--lucent-channels", "1", "--lucent-size", "16"]  # fmt: skip
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    names = ("loop (one at a time)", "batched, full depth", "bf16 autocast", "channels_last", "goal (CPU)")
    for name in names:
        assert name in out
