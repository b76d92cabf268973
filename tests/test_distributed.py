"""Work spread over processes (torch.distributed, gloo on the CPU): equal to one process.

One module fixture starts 2 processes once (``torch.multiprocessing.spawn``) and has them do
every distributed job; the tests compare what they wrote with the same jobs run here, alone.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
from PIL import Image

import circuitscope as cs
from circuitscope.core import distributed
from circuitscope.core.device import one_cpu_thread
from circuitscope.methods.dataset_examples import top_examples
from circuitscope.methods.sae import SparseAutoencoder, planted_features, train_sae

pytestmark = pytest.mark.filterwarnings("ignore:skipped dogs/broken.png")
WORLD = 2
UNITS = [("mixed3a", c) for c in (0, 5, 17, 63)] + [("conv2d2", 3)]
SAE_STEPS, SAE_BATCH = 24, 96
GALLERY_CHANNELS = "0:5"


# -- the data the jobs share ------------------------------------------------------------------
def tensor_images() -> torch.Tensor:
    """22 seeded images, 40 px, with exact duplicates (ties whose order must be by index)."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(22, 3, 40, 40, generator=gen)
    images[9] = images[2]  # equal scores for every unit: image 2 must come first
    images[20] = images[2]
    images[15] = images[7]
    return images


def write_folder(root) -> None:
    """9 PNGs in two class folders and one unreadable file (skipped by every rank alike)."""
    gen = torch.Generator().manual_seed(1)
    for i in range(9):
        folder = root / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (torch.rand(36, 36, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    (root / "dogs" / "broken.png").write_bytes(b"not an image")


def sae_data() -> torch.Tensor:
    return planted_features(n_samples=600, d=16, n_features=32, seed=3).data


def sae_args(checkpoint=None, steps=SAE_STEPS) -> dict:
    return {"steps": steps, "lr": 3e-3, "l1_coeff": 0.05, "batch_size": SAE_BATCH, "seed": 5,
            "checkpoint": checkpoint, "checkpoint_every": 8, "progress": False, "log_every": 6}  # fmt: skip


def _run_jobs(model, out, folder) -> dict:
    """What every process (or the single one) computes; returns picklable results."""
    results = {}
    found = top_examples(model, tensor_images(), UNITS, k=6, batch_size=4, cache=False, progress=False)
    results["tensor"] = [(t.indices, t.scores, t.positions) for t in found]
    found = top_examples(model, str(folder), UNITS[:2], k=4, batch_size=2, size=32, cache=False, progress=False)
    results["folder"] = [(t.indices, t.scores, t.positions, t.names) for t in found]
    sae = SparseAutoencoder(16, 48, seed=1, device="cpu")
    history = train_sae(sae, sae_data(), **sae_args(out / "sae.pt"))
    results["sae"] = {k: v.clone() for k, v in sae.state_dict().items()}
    results["history"] = history.as_dict()
    # An interrupted run (stopped after 8 steps), then resumed to the end.
    sae2 = SparseAutoencoder(16, 48, seed=1, device="cpu")
    train_sae(sae2, sae_data(), **sae_args(out / "sae_resumed.pt", steps=8))
    sae2 = SparseAutoencoder(16, 48, seed=1, device="cpu")
    train_sae(sae2, sae_data(), **sae_args(out / "sae_resumed.pt"))
    results["sae_resumed"] = {k: v.clone() for k, v in sae2.state_dict().items()}
    return results


def _worker(rank: int, port: int, out: str, folder: str) -> None:
    from pathlib import Path

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(WORLD), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})  # fmt: skip
    torch.set_num_threads(1)
    assert distributed.init(backend="gloo")
    assert (distributed.rank(), distributed.world_size()) == (rank, WORLD)
    model = cs.load_inceptionv1("synthetic", device="cpu", progress=False)
    # The parent's weights: the synthetic ones differ in their last bits with the thread count.
    model.load_state_dict(torch.load(Path(out) / "weights.pt"))
    out_dir = Path(out)
    results = _run_jobs(model, out_dir, Path(folder))
    from circuitscope.tools.gallery import render_gallery, render_microscope

    seen = []
    import circuitscope.tools.gallery as G

    real_render = G.render

    def counting(model, objectives, **kw):
        seen.extend([o.n for o in objectives] if isinstance(objectives, list) else ["diversity"])
        return real_render(model, objectives, **kw)

    G.render = counting
    render_gallery(model, "conv2d0", GALLERY_CHANNELS, out_dir / "gallery", size=16, steps=2, batch_size=2,
                   progress=False)  # fmt: skip
    results["rendered"] = list(seen)
    render_microscope(model, out_dir / "microscope", ["mixed3a"], "0:3", size=16, steps=2, batch_size=4,
                      diversity=2, examples=str(folder), k=2, image_size=32, progress=False)  # fmt: skip
    G.render = real_render
    torch.save(results, out_dir / f"rank{rank}.pt")
    distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, synthetic_model):
    """Run :func:`_worker` on 2 processes; returns (output folder, image folder, [rank results])."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("two_ranks")
    torch.save(synthetic_model.state_dict(), out / "weights.pt")
    folder = tmp_path_factory.mktemp("images")
    write_folder(folder)
    mp.spawn(_worker, args=(_free_port(), str(out), str(folder)), nprocs=WORLD, join=True)
    return out, folder, [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def alone(tmp_path_factory, two_ranks, synthetic_model):
    """The same jobs in this one process (on one thread, as each rank ran)."""
    out = tmp_path_factory.mktemp("alone")
    with one_cpu_thread():
        return _run_jobs(synthetic_model, out, two_ranks[1])


# -- the helpers alone --------------------------------------------------------------------------
def test_helpers_are_no_ops_in_one_process():
    assert not distributed.is_distributed() and not distributed.init()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.shard(list(range(7))) == list(range(7))
    assert distributed.shard(list(range(7)), 1, 3) == [1, 4]
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object(5) == 5
    t = torch.ones(3)
    assert distributed.all_reduce(t, "mean") is t and t.tolist() == [1, 1, 1]
    distributed.barrier()
    assert distributed.device("cpu") == "cpu"


# -- equal to one process ---------------------------------------------------------------------
def test_dataset_examples_are_identical_to_one_process(two_ranks, alone):
    _, _, ranks = two_ranks
    for r in ranks:
        for (i, s, p), (i1, s1, p1) in zip(r["tensor"], alone["tensor"]):
            assert torch.equal(i, i1) and torch.equal(s, s1) and torch.equal(p, p1)
        for got, want in zip(r["folder"], alone["folder"]):
            assert all(torch.equal(a, b) for a, b in zip(got[:3], want[:3])) and got[3] == want[3]
    ties = 0
    for indices, scores, _ in ranks[0]["tensor"]:
        for a, b, sa, sb in zip(indices, indices[1:], scores, scores[1:]):
            if sa == sb:  # duplicated images: equal scores, the lower index first
                ties += 1
                assert a < b
    assert ties > 0
    assert len(alone["folder"][0][0]) == 4


def test_sae_under_ddp_equals_one_process_and_keeps_unit_norm(two_ranks, alone):
    _, _, ranks = two_ranks
    for r in ranks:
        for name, value in alone["sae"].items():
            torch.testing.assert_close(r["sae"][name], value, rtol=1e-4, atol=1e-5, msg=name)
        np.testing.assert_allclose(r["history"]["loss"], alone["history"]["loss"], rtol=1e-4)
        assert r["history"]["steps"] == alone["history"]["steps"]
        norms = r["sae"]["W_dec"].norm(dim=0)
        torch.testing.assert_close(norms, torch.ones_like(norms))
    for name, value in ranks[0]["sae"].items():  # every rank holds the same SAE
        assert torch.equal(ranks[1]["sae"][name], value), name


def test_sae_under_ddp_resumes_as_one_run(two_ranks):
    _, _, ranks = two_ranks
    for r in ranks:
        for name, value in r["sae"].items():
            torch.testing.assert_close(r["sae_resumed"][name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_gallery_channels_are_sharded_over_ranks(two_ranks):
    out, _, ranks = two_ranks
    rendered = [r["rendered"] for r in ranks]
    assert sorted(rendered[0] + rendered[1]) == [0, 1, 2, 3, 4]  # each channel once, by one rank
    assert rendered[0] and rendered[1]
    names = sorted(p.name for p in (out / "gallery").glob("channel_*.png"))
    assert names == [f"channel_{c:04d}.png" for c in range(5)]
    page = (out / "gallery" / "index.html").read_text()
    assert all(f'src="{n}"' in page for n in names)


def test_microscope_under_two_ranks_is_complete(two_ranks):
    out, _, _ = two_ranks
    layer = out / "microscope" / "mixed3a"
    for c in range(3):
        assert (layer / f"channel_{c:04d}.html").exists()
        assert (layer / "diversity" / f"channel_{c:04d}_1.png").exists()
        assert (layer / "examples" / f"channel_{c:04d}.json").exists()
    assert "mixed3a" in (out / "microscope" / "index.html").read_text()
