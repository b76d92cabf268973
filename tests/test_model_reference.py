"""The model against an independent, slow, obviously-correct forward pass.

The reference below is written from the spec (shared/specs/inceptionv1.md) alone: it reads
weights from the state dict by name, pads by explicit arithmetic into a new tensor, computes
max pools by scanning windows and LRN by a loop over channels. Nothing is shared with the
library except the weight names.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import circuitscope as cs
from circuitscope.core.models import LAYER_NAMES, InceptionV1

BLOCK_NAMES = ["mixed3a", "mixed3b", "mixed4a", "mixed4b", "mixed4c", "mixed4d", "mixed4e",
               "mixed5a", "mixed5b"]  # fmt: skip


def pad_explicit(x, k, s, fill):
    """TF SAME padding, spelled out: out = ceil(n/s); total = max((out-1)*s + k - n, 0)."""
    n, c, h, w = x.shape
    th = max((math.ceil(h / s) - 1) * s + k - h, 0)
    tw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    top, left = th // 2, tw // 2
    out = torch.full((n, c, h + th, w + tw), fill, dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def conv(state, name, x, stride=1):
    w, b = state[f"{name}_pre_relu_conv.weight"], state[f"{name}_pre_relu_conv.bias"]
    return F.conv2d(pad_explicit(x, w.shape[-1], stride, 0.0), w, b, stride=stride)


def maxpool(x, k=3, s=2):
    p = pad_explicit(x, k, s, float("-inf"))
    oh, ow = math.ceil(x.shape[2] / s), math.ceil(x.shape[3] / s)
    out = torch.empty(x.shape[0], x.shape[1], oh, ow)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = p[:, :, i * s : i * s + k, j * s : j * s + k].amax(dim=(2, 3))
    return out


def lrn(x, r=5, bias=2.0, alpha=1e-4, beta=0.5):
    out = torch.empty_like(x)
    C = x.shape[1]
    for c in range(C):
        lo, hi = max(0, c - r), min(C - 1, c + r)
        sq = (x[:, lo : hi + 1] ** 2).sum(dim=1)
        out[:, c] = x[:, c] / (bias + alpha * sq) ** beta
    return out


def reference_forward(state, images):
    """Every named value, computed from the spec by hand."""
    v = {}
    x = images * 255 - 117
    v["conv2d0_pre_relu"] = conv(state, "conv2d0", x, stride=2)
    v["conv2d0"] = v["conv2d0_pre_relu"].clamp_min(0)
    v["maxpool0"] = maxpool(v["conv2d0"])
    v["localresponsenorm0"] = lrn(v["maxpool0"])
    v["conv2d1_pre_relu"] = conv(state, "conv2d1", v["localresponsenorm0"])
    v["conv2d1"] = v["conv2d1_pre_relu"].clamp_min(0)
    v["conv2d2_pre_relu"] = conv(state, "conv2d2", v["conv2d1"])
    v["conv2d2"] = v["conv2d2_pre_relu"].clamp_min(0)
    v["localresponsenorm1"] = lrn(v["conv2d2"])
    v["maxpool1"] = maxpool(v["localresponsenorm1"])
    x = v["maxpool1"]
    for name in BLOCK_NAMES:
        if name == "mixed4a":
            x = v["maxpool4"] = maxpool(x)
        if name == "mixed5a":
            x = v["maxpool10"] = maxpool(x)
        v[f"{name}_pool"] = maxpool(x, 3, 1)
        inputs = {"1x1": x, "3x3_bottleneck": x, "5x5_bottleneck": x, "pool_reduce": v[f"{name}_pool"]}
        for sub in ["1x1", "3x3_bottleneck", "5x5_bottleneck", "pool_reduce", "3x3", "5x5"]:
            inp = inputs.get(sub) if sub in inputs else v[f"{name}_{sub}_bottleneck"]
            v[f"{name}_{sub}_pre_relu"] = conv(state, f"{name}_{sub}", inp)
            v[f"{name}_{sub}"] = v[f"{name}_{sub}_pre_relu"].clamp_min(0)
        order = ["1x1", "3x3", "5x5", "pool_reduce"]  # the concatenation order of the spec
        v[f"{name}_pre_relu"] = torch.cat([v[f"{name}_{b}_pre_relu"] for b in order], 1)
        x = v[name] = torch.cat([v[f"{name}_{b}"] for b in order], 1)
    if min(x.shape[-2:]) >= 7:
        h, w = x.shape[-2] - 6, x.shape[-1] - 6  # 7x7 VALID windows, stride 1
        v["avgpool0"] = torch.stack(
            [torch.stack([x[:, :, i : i + 7, j : j + 7].mean(dim=(2, 3)) for j in range(w)], -1)
             for i in range(h)], -2)  # fmt: skip
        flat = v["avgpool0"].mean(dim=(2, 3))
        W, b = state["softmax2_pre_activation_matmul.weight"], state["softmax2_pre_activation_matmul.bias"]
        v["softmax2_pre_activation"] = flat @ W.T + b
        e = torch.exp(v["softmax2_pre_activation"] - v["softmax2_pre_activation"].amax(1, keepdim=True))
        v["softmax2"] = e / e.sum(1, keepdim=True)
    return v


def random_state(seed=0):
    """Random weights of the right shapes, scaled so activations stay O(1)..O(100)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, p in InceptionV1().state_dict().items():
        if name.endswith("bias"):
            state[name] = torch.randn(p.shape, generator=g) * 0.1
        else:
            state[name] = torch.randn(p.shape, generator=g) * math.sqrt(2.0 / p[0].numel())
    return state


@pytest.fixture(scope="module")
def random_model():
    state = random_state()
    model = InceptionV1()
    model.load_state_dict(state, strict=True)
    return model.eval(), state


@pytest.mark.parametrize("size", [(224, 224), (97, 131)])
def test_every_named_layer_matches_reference(random_model, size):
    model, state = random_model
    images = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = reference_forward(state, images)
        names = [n for n in LAYER_NAMES if n in ref]
        got = cs.activations(model, images, names)
    if size == (224, 224):
        assert set(names) == set(LAYER_NAMES), "the reference must cover every name at 224"
    else:
        assert "mixed5b" in names and "softmax2" not in names
    for name in names:
        r, g = ref[name], got[name]
        assert g.shape == r.shape, name
        scale = r.abs().max().clamp_min(1e-6)
        err = (g - r).abs().max() / scale
        assert err < 1e-4, f"{name}: max relative error {err:.2e}"


def test_spatial_sizes_at_224_follow_the_spec_table(random_model):
    model, _ = random_model
    expected = {"conv2d0": 112, "maxpool0": 56, "conv2d2": 56, "maxpool1": 28, "mixed3b": 28,
                "maxpool4": 14, "mixed4e": 14, "maxpool10": 7, "mixed5b": 7, "avgpool0": 1}  # fmt: skip
    with torch.no_grad():
        acts = cs.activations(model, torch.zeros(1, 3, 224, 224), list(expected))
    for name, size in expected.items():
        assert tuple(acts[name].shape[-2:]) == (size, size), name
        assert acts[name].shape[1] == model.layer_channels[name], name
