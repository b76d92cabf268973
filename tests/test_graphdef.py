"""Tests for the TensorFlow-free inception5h GraphDef converter.

The real ``inception5h.zip`` cannot be downloaded here, so these tests build GraphDefs with a
hand-written protobuf encoder that follows TensorFlow's ``.proto`` field numbers (GraphDef.node=1;
NodeDef name=1, op=2, input=3, device=4, attr=5; AttrValue type=6, tensor=8; TensorProto dtype=1,
tensor_shape=2, tensor_content=4, float_val=5; TensorShapeProto dim=2; Dim size=1).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from circuitscope.core.models.graphdef import (
    INCEPTION5H_ZIP_SHA256,
    INCEPTION5H_ZIP_URL,
    load_spec,
    read_graphdef_constants,
    state_dict_from_graphdef,
    state_dict_from_inception5h_zip,
)

_SHARED_SPEC = Path(__file__).parents[2] / "shared/specs/inception5h_state_dict.json"
_PACKAGED_SPEC = Path(__file__).parents[1] / "src/circuitscope/data/inception5h_state_dict.json"


def _spec() -> dict[str, tuple[int, ...]]:
    path = _SHARED_SPEC if _SHARED_SPEC.is_file() else _PACKAGED_SPEC
    data = json.loads(path.read_text())
    return {t["name"]: tuple(t["shape"]) for t in data["tensors"]}


SPEC = _spec()

# --------------------------------------------------------------------------------------------
# A minimal protobuf encoder (test-only)
# --------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 -> two's complement, 10 bytes
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def f_varint(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(n)


def f_len(field: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    return _key(field, 2) + _varint(len(payload)) + payload


def f_i32(field: int, raw: bytes) -> bytes:
    assert len(raw) == 4
    return _key(field, 5) + raw


def f_i64(field: int, raw: bytes) -> bytes:
    assert len(raw) == 8
    return _key(field, 1) + raw


# Unknown fields of every wire type, inserted at every message level to prove they are skipped.
UNKNOWN = (
    f_varint(99, 123456789)
    + f_i64(98, b"\x01" * 8)
    + f_len(97, b"\x08\x01 unknown payload \xff")
    + f_i32(96, b"\x00\x00\x80\x3f")
)


def shape_proto(shape) -> bytes:
    dims = b"".join(f_len(2, f_varint(1, d) + f_len(2, "dimname") + UNKNOWN) for d in shape)
    return UNKNOWN + dims


def tensor_proto(array: np.ndarray, mode: str = "content", dtype: int = 1) -> bytes:
    """TensorProto for a float32 array: raw ``tensor_content``, packed or unpacked ``float_val``."""
    flat = np.ascontiguousarray(array, dtype="<f4").ravel()
    msg = f_varint(1, dtype) + UNKNOWN + f_len(2, shape_proto(array.shape)) + f_varint(3, 0)
    if mode == "content":
        msg += f_len(4, flat.tobytes())
    elif mode == "packed":
        msg += f_len(5, flat.tobytes())
    elif mode == "unpacked":
        msg += b"".join(f_i32(5, struct.pack("<f", v)) for v in flat.tolist())
    elif mode == "split":  # packed and unpacked runs mixed: all must be concatenated in order
        half = flat.size // 2
        msg += f_len(5, flat[:half].tobytes())
        msg += b"".join(f_i32(5, struct.pack("<f", v)) for v in flat[half:].tolist())
    else:
        raise AssertionError(mode)
    return msg + UNKNOWN


def attr_entry(key: str, attr_value: bytes) -> bytes:
    return f_len(5, f_len(1, key) + f_len(2, attr_value))


def node(name: str, op: str, inputs=(), attrs: bytes = b"") -> bytes:
    body = f_len(1, name) + UNKNOWN + f_len(2, op)
    body += b"".join(f_len(3, i) for i in inputs)
    body += f_len(4, "/cpu:0") + attrs
    return f_len(1, body)


def const_node(name: str, array: np.ndarray, mode: str = "content") -> bytes:
    attrs = attr_entry("dtype", f_varint(6, 1) + UNKNOWN)  # AttrValue.type = DT_FLOAT
    attrs += attr_entry("value", UNKNOWN + f_len(8, tensor_proto(array, mode)))
    return node(name, "Const", attrs=attrs)


def graphdef(*nodes: bytes) -> bytes:
    versions = f_len(4, f_varint(1, 9))  # GraphDef.versions {producer: 9}
    return versions + f_varint(3, 9) + UNKNOWN + b"".join(nodes)


# --------------------------------------------------------------------------------------------
# An inception5h-like graph: every spec tensor in TF layout, plus things to ignore
# --------------------------------------------------------------------------------------------


def tf_name_and_shape(torch_name: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    module, param = torch_name.rsplit(".", 1)
    layer = module.removesuffix("_pre_relu_conv").removesuffix("_pre_activation_matmul")
    if param == "bias":
        return f"{layer}_b", shape
    if len(shape) == 4:  # [out, in, kh, kw] -> HWIO [kh, kw, in, out]
        return f"{layer}_w", (shape[2], shape[3], shape[1], shape[0])
    return f"{layer}_w", (shape[1], shape[0])  # [1008, 1024] -> [1024, 1008]


def to_torch_layout(array: np.ndarray) -> np.ndarray:
    if array.ndim == 4:
        return array.transpose(3, 2, 0, 1)
    if array.ndim == 2:
        return array.T
    return array


AUX_HEADS = {  # small shapes: these must be ignored, whatever they hold
    "head0_bottleneck_w": (1, 1, 508, 4),
    "head0_bottleneck_b": (4,),
    "nn0_w": (8, 6),
    "nn0_b": (6,),
    "softmax0_w": (6, 5),
    "softmax0_b": (5,),
    "head1_bottleneck_w": (1, 1, 528, 4),
    "head1_bottleneck_b": (4,),
    "nn1_w": (8, 6),
    "nn1_b": (6,),
    "softmax1_w": (6, 5),
    "softmax1_b": (5,),
}


def build_graph(rng: np.random.Generator, skip=(), reshape=None) -> tuple[bytes, dict]:
    """Serialized GraphDef with every spec tensor (TF layout); returns (bytes, tf arrays)."""
    reshape = reshape or {}
    arrays: dict[str, np.ndarray] = {}
    nodes = [
        node("input", "Placeholder", attrs=attr_entry("dtype", f_varint(6, 1))),
        # int32 constant, as mixed3a/concat_dim in the real graph: not a float weight.
        node(
            "mixed3a/concat_dim",
            "Const",
            attrs=attr_entry("value", f_len(8, f_varint(1, 3) + f_len(2, b"") + f_len(7, _varint(3)))),
        ),
    ]
    bias_modes = ["packed", "unpacked", "split"]
    for i, (name, shape) in enumerate(SPEC.items()):
        tf_name, tf_shape = tf_name_and_shape(name, shape)
        if tf_name in skip:
            continue
        tf_shape = reshape.get(tf_name, tf_shape)
        arrays[tf_name] = rng.standard_normal(tf_shape, dtype=np.float32)
        mode = "content" if len(tf_shape) > 1 else bias_modes[i % 3]
        nodes.append(const_node(tf_name, arrays[tf_name], mode))
        if tf_name.endswith("_b"):
            layer = tf_name[:-2]
            nodes.append(node(f"{layer}_pre_relu/conv", "Conv2D", inputs=["input", f"{layer}_w"]))
            nodes.append(node(f"{layer}_pre_relu", "BiasAdd", inputs=[f"{layer}_pre_relu/conv", tf_name]))
            nodes.append(node(layer, "Relu", inputs=[f"{layer}_pre_relu"]))
    for tf_name, tf_shape in AUX_HEADS.items():
        arrays[tf_name] = rng.standard_normal(tf_shape, dtype=np.float32)
        nodes.append(const_node(tf_name, arrays[tf_name]))
    return graphdef(*nodes), arrays


@pytest.fixture(scope="module")
def full_graph():
    return build_graph(np.random.default_rng(0))


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_spec_is_the_inception5h_parameter_list():
    assert len(SPEC) == 116
    assert sum(int(np.prod(s)) for s in SPEC.values()) == 7_066_380


def test_full_graph_converts_exactly(full_graph):
    pb, arrays = full_graph
    state = state_dict_from_graphdef(pb, SPEC)
    assert list(state) == list(SPEC)  # exactly the spec's names, in its order
    for name, shape in SPEC.items():
        tensor = state[name]
        tf_name, _ = tf_name_and_shape(name, shape)
        assert tensor.dtype == torch.float32
        assert tuple(tensor.shape) == shape
        assert tensor.is_contiguous()
        assert torch.equal(tensor, torch.from_numpy(to_torch_layout(arrays[tf_name]).copy())), name


def test_transpose_layout_by_element():
    # Pin the layout independently of the helper above: weight[o, i, y, x] == w_hwio[y, x, i, o].
    rng = np.random.default_rng(1)
    spec = {"c_pre_relu_conv.weight": (5, 3, 2, 4), "c_pre_relu_conv.bias": (5,),
            "softmax2_pre_activation_matmul.weight": (7, 6), "softmax2_pre_activation_matmul.bias": (7,)}
    w = rng.standard_normal((2, 4, 3, 5), dtype=np.float32)
    m = rng.standard_normal((6, 7), dtype=np.float32)
    b = rng.standard_normal(5, dtype=np.float32)
    mb = rng.standard_normal(7, dtype=np.float32)
    pb = graphdef(const_node("c_w", w), const_node("c_b", b, "packed"),
                  const_node("softmax2_w", m), const_node("softmax2_b", mb, "unpacked"))
    state = state_dict_from_graphdef(pb, spec)
    weight = state["c_pre_relu_conv.weight"]
    for o, i, y, x in [(0, 0, 0, 0), (4, 2, 1, 3), (2, 1, 0, 2), (3, 0, 1, 1)]:
        assert weight[o, i, y, x].item() == w[y, x, i, o]
    assert state["softmax2_pre_activation_matmul.weight"][5, 2].item() == m[2, 5]
    assert torch.equal(state["c_pre_relu_conv.bias"], torch.from_numpy(b))
    assert torch.equal(state["softmax2_pre_activation_matmul.bias"], torch.from_numpy(mb))


def test_read_graphdef_constants_keeps_float_consts_only(full_graph):
    pb, arrays = full_graph
    constants = read_graphdef_constants(pb)
    # Every float Const (spec tensors and auxiliary heads), nothing else: no Placeholder,
    # Conv2D/BiasAdd/Relu nodes, and no int32 concat_dim.
    assert set(constants) == set(arrays)
    for name, array in constants.items():
        assert array.dtype == np.float32
        np.testing.assert_array_equal(array, arrays[name])


def test_auxiliary_heads_are_ignored(full_graph):
    pb, _ = full_graph
    state = state_dict_from_graphdef(pb, SPEC)
    assert not [k for k in state if k.startswith(("head", "nn0", "nn1", "softmax0", "softmax1"))]


@pytest.mark.parametrize("mode", ["content", "packed", "unpacked", "split"])
def test_value_encodings_round_trip(mode):
    array = np.random.default_rng(2).standard_normal((2, 3, 4), dtype=np.float32)
    constants = read_graphdef_constants(graphdef(const_node("x", array, mode)))
    np.testing.assert_array_equal(constants["x"], array)
    assert constants["x"].flags.writeable


def test_float_val_shorter_than_shape_repeats_last_value():
    # TensorFlow's rule: fewer values than elements repeat the last; none at all means zeros.
    one = f_len(8, f_varint(1, 1) + f_len(2, shape_proto((2, 3))) + f_len(5, struct.pack("<f", 2.5)))
    empty = f_len(8, f_varint(1, 1) + f_len(2, shape_proto((4,))))
    pb = graphdef(node("one", "Const", attrs=attr_entry("value", one)),
                  node("zero", "Const", attrs=attr_entry("value", empty)))
    constants = read_graphdef_constants(pb)
    np.testing.assert_array_equal(constants["one"], np.full((2, 3), 2.5, np.float32))
    np.testing.assert_array_equal(constants["zero"], np.zeros(4, np.float32))


def test_scalar_const():
    constants = read_graphdef_constants(graphdef(const_node("s", np.float32(117.0).reshape(()), "packed")))
    assert constants["s"].shape == () and constants["s"] == 117.0


def test_missing_tensor_raises_clear_error():
    pb, _ = build_graph(np.random.default_rng(3), skip={"mixed4a_pool_reduce_w", "softmax2_b"})
    with pytest.raises(ValueError) as err:
        state_dict_from_graphdef(pb, SPEC)
    message = str(err.value)
    assert "Missing 2" in message
    assert "mixed4a_pool_reduce_w (for mixed4a_pool_reduce_pre_relu_conv.weight)" in message
    assert "softmax2_b (for softmax2_pre_activation_matmul.bias)" in message
    assert "inception5h.zip" in message and INCEPTION5H_ZIP_SHA256 in message


def test_wrong_shape_raises_clear_error():
    # A weight stored OIHW instead of HWIO, as a wrong export might do.
    pb, _ = build_graph(np.random.default_rng(4), reshape={"mixed3a_3x3_w": (128, 96, 3, 3)})
    with pytest.raises(ValueError) as err:
        state_dict_from_graphdef(pb, SPEC)
    message = str(err.value)
    assert "Wrong shape for 1" in message
    assert "mixed3a_3x3_w [128, 96, 3, 3]" in message
    assert "mixed3a_3x3_pre_relu_conv.weight" in message and "expected [128, 96, 3, 3]" in message


def test_tensor_content_size_mismatch_raises():
    bad = f_len(8, f_varint(1, 1) + f_len(2, shape_proto((2, 2))) + f_len(4, b"\x00" * 12))
    with pytest.raises(ValueError, match="tensor_content has 12 bytes"):
        read_graphdef_constants(graphdef(node("bad", "Const", attrs=attr_entry("value", bad))))


def test_unknown_dimension_raises():
    # size -1 is a 10-byte negative varint: also exercises int64 sign handling.
    bad = f_len(8, f_varint(1, 1) + f_len(2, shape_proto((-1, 2))))
    with pytest.raises(ValueError, match="unknown dimension"):
        read_graphdef_constants(graphdef(node("bad", "Const", attrs=attr_entry("value", bad))))


def test_truncated_protobuf_raises():
    pb = graphdef(const_node("x", np.ones((3, 3), np.float32)))
    with pytest.raises(ValueError, match="Malformed protobuf"):
        read_graphdef_constants(pb[:-5])


def test_unknown_spec_name_raises():
    with pytest.raises(ValueError, match="Don't know which GraphDef constant"):
        state_dict_from_graphdef(graphdef(), {"fc.weight": (2, 2)})


def test_packaged_spec_matches_shared_spec():
    if not _PACKAGED_SPEC.is_file():
        pytest.skip("package data not present")
    assert load_spec() == SPEC


def _write_zip(path: Path, pb: bytes, graph_name: str = "tensorflow_inception_graph.pb") -> str:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("imagenet_comp_graph_label_strings.txt", "dummy\nkit fox\n")
        archive.writestr(graph_name, pb)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_zip_with_wrong_sha256_raises(tmp_path, full_graph):
    path = tmp_path / "inception5h.zip"
    got = _write_zip(path, full_graph[0])
    with pytest.raises(ValueError) as err:
        state_dict_from_inception5h_zip(path, spec=SPEC)  # default: the real file's hash
    message = str(err.value)
    assert f"expected {INCEPTION5H_ZIP_SHA256}" in message
    assert f"got {got}" in message
    assert "delete it" in message and INCEPTION5H_ZIP_URL in message


def test_zip_with_right_sha256_converts(tmp_path, full_graph):
    pb, arrays = full_graph
    path = tmp_path / "inception5h.zip"
    digest = _write_zip(path, pb)
    state = state_dict_from_inception5h_zip(path, expected_sha256=digest.upper(), spec=SPEC)
    assert list(state) == list(SPEC)
    expected = to_torch_layout(arrays["mixed4a_3x3_bottleneck_w"])
    got = state["mixed4a_3x3_bottleneck_pre_relu_conv.weight"]
    assert torch.equal(got, torch.from_numpy(expected.copy()))
    assert torch.equal(state["softmax2_pre_activation_matmul.weight"],
                       torch.from_numpy(arrays["softmax2_w"].T.copy()))


def test_zip_without_graph_raises(tmp_path):
    path = tmp_path / "inception5h.zip"
    digest = _write_zip(path, b"", graph_name="something_else.pb")
    with pytest.raises(ValueError, match="tensorflow_inception_graph.pb"):
        state_dict_from_inception5h_zip(path, expected_sha256=digest, spec=SPEC)


def test_missing_zip_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="inception5h.zip"):
        state_dict_from_inception5h_zip(tmp_path / "nope.zip", spec=SPEC)


def test_load_inceptionv1_takes_the_original_zip(tmp_path, full_graph, monkeypatch):
    """End to end: $CIRCUITSCOPE_WEIGHTS -> verified zip -> converted -> strict load."""
    import circuitscope as cs
    from circuitscope.core.models import weights as W

    pb, arrays = full_graph
    path = tmp_path / "inception5h.zip"
    digest = _write_zip(path, pb)
    monkeypatch.setenv("CIRCUITSCOPE_WEIGHTS", str(path))
    with pytest.raises(W.WeightsHashError, match="SHA-256"):
        cs.load_inceptionv1("lucid")
    monkeypatch.setitem(W.DATA_HUB, "inception5h.zip", W.Remote("inception5h.zip", "http://127.0.0.1:9/x", sha256=digest))
    model = cs.load_inceptionv1("lucid", device="cpu")
    assert not model.is_synthetic
    assert torch.equal(model.conv2d0_pre_relu_conv.weight, torch.from_numpy(to_torch_layout(arrays["conv2d0_w"]).copy()))
