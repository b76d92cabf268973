"""Read the original TensorFlow ``inception5h`` graph into a PyTorch state dict, without TensorFlow.

``inception5h.zip`` holds ``tensorflow_inception_graph.pb``, a serialized TensorFlow ``GraphDef``
in which every weight is a ``Const`` node. This module reads that protobuf with a small
wire-format reader (no ``protobuf`` or ``tensorflow`` dependency), keeps the float32 constants,
and renames/transposes them to the PyTorch parameter names of ``inception5h.pth``.

Protobuf field numbers used here, checked against TensorFlow's own ``.proto`` files
(tensorflow/tensorflow, ``tensorflow/core/framework/``):

* ``graph.proto``        GraphDef: ``repeated NodeDef node = 1`` (``library = 2``, ``version = 3``,
  ``versions = 4`` are skipped).
* ``node_def.proto``     NodeDef: ``name = 1``, ``op = 2``, ``repeated input = 3``, ``device = 4``,
  ``map<string, AttrValue> attr = 5`` (a map is a repeated entry message: key = 1, value = 2).
* ``attr_value.proto``   AttrValue oneof: ``list = 1``, ``s = 2``, ``i = 3``, ``f = 4``, ``b = 5``,
  ``type = 6``, ``shape = 7``, ``tensor = 8``, ``placeholder = 9``, ``func = 10``.
* ``tensor.proto``       TensorProto: ``dtype = 1``, ``tensor_shape = 2``, ``version_number = 3``,
  ``bytes tensor_content = 4``, ``repeated float float_val = 5 [packed = true]``.
* ``tensor_shape.proto`` TensorShapeProto: ``repeated Dim dim = 2`` (``unknown_rank = 3``);
  Dim: ``int64 size = 1``, ``name = 2``.
* ``types.proto``        DataType: ``DT_FLOAT = 1``.

Constant names in ``tensorflow_inception_graph.pb`` (``<layer>_w`` in HWIO layout
``[kh, kw, in, out]``, ``<layer>_b``, ``softmax2_w`` ``[1024, 1008]``, ``softmax2_b``, plus the
auxiliary heads ``head0_*``, ``nn0_*``, ``softmax0_*``, ``head1_*``, ``nn1_*``, ``softmax1_*``):
checked against public DeepDream scripts that print the imported graph's operations
(``import/conv2d0_w type=Const`` ... ``import/mixed5b_pool_reduce_b type=Const``,
``import/softmax2_w type=Const``), one of which also prints each tensor's last dimension
(``conv2d0_w`` 64, ``mixed4a_3x3_w`` 204, ``softmax2_w`` 1008, ...), i.e. output channels last,
as HWIO and ``x @ W`` need. Those sizes agree with every out-channel count in
``inception5h_state_dict.json``. The PyTorch names ``<layer>_pre_relu_conv`` and
``softmax2_pre_activation_matmul`` follow ProGamerGov/neural-dream
(``neural_dream/models/inception/inception5h.py``).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

INCEPTION5H_ZIP_SHA256 = "d13569f6a98159de37e92e9c8ec4dae8f674fbf475f69fe6199b514f756d4364"
INCEPTION5H_ZIP_URL = "https://storage.googleapis.com/download.tensorflow.org/models/inception5h.zip"
GRAPH_FILENAME = "tensorflow_inception_graph.pb"

# The packaged copy of the parameter list (names and PyTorch shapes of inception5h.pth).
_PACKAGED_SPEC = Path(str(resources.files("circuitscope.data").joinpath("inception5h_state_dict.json")))

_DT_FLOAT = 1

# Wire types (https://protobuf.dev/programming-guides/encoding/).
_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5


# --------------------------------------------------------------------------------------------
# Protobuf wire format
# --------------------------------------------------------------------------------------------


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at ``pos``; return (unsigned value, position after it)."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ValueError("Malformed protobuf: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:  # 10 bytes is the most a 64-bit varint may take
            raise ValueError("Malformed protobuf: varint longer than 10 bytes")


def _iter_fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)`` for each field of one message.

    ``value`` is an int for varints, and a zero-copy memoryview of the raw bytes for 64-bit
    (8 bytes), length-delimited (the payload) and 32-bit (4 bytes) fields. Callers skip fields
    they do not know simply by ignoring them.
    """
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError("Malformed protobuf: field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
            yield field, wire, value
        elif wire == _I64:
            if pos + 8 > end:
                raise ValueError("Malformed protobuf: truncated 64-bit field")
            yield field, wire, buf[pos : pos + 8]
            pos += 8
        elif wire == _LEN:
            length, pos = _read_varint(buf, pos)
            if pos + length > end:
                raise ValueError(
                    f"Malformed protobuf: field {field} claims {length} bytes, "
                    f"only {end - pos} left"
                )
            yield field, wire, buf[pos : pos + length]
            pos += length
        elif wire == _I32:
            if pos + 4 > end:
                raise ValueError("Malformed protobuf: truncated 32-bit field")
            yield field, wire, buf[pos : pos + 4]
            pos += 4
        else:
            # Groups (3, 4) are proto2-only and never appear in TensorFlow's proto3 messages.
            raise ValueError(f"Malformed or unsupported protobuf: wire type {wire} in field {field}")


def _as_int64(value: int) -> int:
    """Reinterpret a decoded varint as a signed int64 (negative numbers take 10 bytes)."""
    return value - (1 << 64) if value >= 1 << 63 else value


# --------------------------------------------------------------------------------------------
# TensorFlow messages
# --------------------------------------------------------------------------------------------


def _parse_shape(buf: memoryview) -> tuple[int, ...]:
    """TensorShapeProto -> tuple of dimension sizes (outermost first)."""
    dims: list[int] = []
    for field, wire, value in _iter_fields(buf):
        if field == 2 and wire == _LEN:  # repeated Dim dim
            size = 0  # proto3 default when the size field is absent
            for dfield, dwire, dvalue in _iter_fields(value):
                if dfield == 1 and dwire == _VARINT:
                    size = _as_int64(dvalue)
            dims.append(size)
        elif field == 3 and wire == _VARINT and value:
            raise ValueError("Constant tensor has unknown rank")
    return tuple(dims)


def _parse_float_tensor(buf: memoryview, node_name: str) -> np.ndarray | None:
    """TensorProto -> float32 array of its shape, or None if its dtype is not DT_FLOAT.

    Values come from ``tensor_content`` (raw little-endian bytes, row-major) when present, else
    from ``float_val`` (packed or one fixed32 per entry), with TensorFlow's rule that fewer
    values than elements repeat the last value and no values at all mean zeros.
    """
    dtype = 0
    shape: tuple[int, ...] = ()
    content: bytes | None = None
    float_chunks: list[bytes] = []
    for field, wire, value in _iter_fields(buf):
        if field == 1 and wire == _VARINT:
            dtype = value
        elif field == 2 and wire == _LEN:
            shape = _parse_shape(value)
        elif field == 4 and wire == _LEN:
            content = bytes(value)
        elif field == 5 and wire == _LEN:  # packed float_val
            if len(value) % 4:
                raise ValueError(f"Constant {node_name!r}: packed float_val is not a multiple of 4 bytes")
            float_chunks.append(bytes(value))
        elif field == 5 and wire == _I32:  # unpacked float_val
            float_chunks.append(bytes(value))
    if dtype != _DT_FLOAT:
        return None
    if any(d < 0 for d in shape):
        raise ValueError(f"Constant {node_name!r} has an unknown dimension in shape {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    if content:  # an empty tensor_content means "use float_val", as in TensorFlow
        if len(content) != 4 * count:
            raise ValueError(
                f"Constant {node_name!r}: tensor_content has {len(content)} bytes, "
                f"shape {shape} needs {4 * count}"
            )
        flat = np.frombuffer(content, dtype="<f4")
    else:
        values = np.frombuffer(b"".join(float_chunks), dtype="<f4")
        if values.size > count:
            raise ValueError(
                f"Constant {node_name!r}: {values.size} float_val entries for shape {shape}"
            )
        if values.size == 0:
            flat = np.zeros(count, dtype="<f4")
        else:
            flat = np.concatenate([values, np.full(count - values.size, values[-1], dtype="<f4")])
    # Native-endian float32, owning its memory (frombuffer views are read-only).
    return flat.astype(np.float32).reshape(shape)


def _parse_node(buf: memoryview) -> tuple[str, str, memoryview | None]:
    """NodeDef -> (name, op, the ``value`` attr's TensorProto bytes or None)."""
    name = op = ""
    tensor: memoryview | None = None
    for field, wire, value in _iter_fields(buf):
        if field == 1 and wire == _LEN:
            name = bytes(value).decode("utf-8")
        elif field == 2 and wire == _LEN:
            op = bytes(value).decode("utf-8")
        elif field == 5 and wire == _LEN:  # map<string, AttrValue> entry
            key = ""
            attr: memoryview | None = None
            for efield, ewire, evalue in _iter_fields(value):
                if efield == 1 and ewire == _LEN:
                    key = bytes(evalue).decode("utf-8")
                elif efield == 2 and ewire == _LEN:
                    attr = evalue
            if key == "value" and attr is not None:
                for afield, awire, avalue in _iter_fields(attr):
                    if afield == 8 and awire == _LEN:  # AttrValue.tensor
                        tensor = avalue
    return name, op, tensor


def read_graphdef_constants(pb_bytes: bytes) -> dict[str, np.ndarray]:
    """Every float32 ``Const`` node of a serialized GraphDef, by node name.

    Arrays keep TensorFlow's shapes and layout (conv weights HWIO ``[kh, kw, in, out]``).
    Constants of other dtypes (e.g. the int32 ``mixed3a/concat_dim``) and non-``Const`` nodes
    are left out; unknown protobuf fields are skipped. Raises ``ValueError`` on malformed input.
    """
    buf = memoryview(pb_bytes)
    constants: dict[str, np.ndarray] = {}
    for field, wire, value in _iter_fields(buf):
        if field != 1 or wire != _LEN:  # only GraphDef.node matters
            continue
        name, op, tensor = _parse_node(value)
        if op != "Const" or tensor is None:
            continue
        array = _parse_float_tensor(tensor, name)
        if array is None:
            continue
        if name in constants:
            raise ValueError(f"GraphDef has two Const nodes named {name!r}")
        constants[name] = array
    return constants


# --------------------------------------------------------------------------------------------
# inception5h names and layouts
# --------------------------------------------------------------------------------------------


def load_spec(path: str | Path | None = None) -> dict[str, tuple[int, ...]]:
    """Expected PyTorch parameter shapes by name, from an ``inception5h_state_dict.json``.

    Without ``path``, reads the copy shipped in ``circuitscope/data``. The JSON holds
    ``{"tensors": [{"name": ..., "shape": [...]}, ...]}``.
    """
    spec_path = Path(path) if path is not None else _PACKAGED_SPEC
    if not spec_path.is_file():
        raise ValueError(
            f"No parameter list at {spec_path}. Pass the expected shapes as "
            "spec={name: shape} or the path of inception5h_state_dict.json."
        )
    data = json.loads(spec_path.read_text(encoding="utf-8"))
    return {t["name"]: tuple(int(d) for d in t["shape"]) for t in data["tensors"]}


def tf_source(torch_name: str) -> tuple[str, tuple[int, ...] | None]:
    """The GraphDef constant behind a PyTorch parameter, and the axis permutation to apply.

    ``<layer>_pre_relu_conv.weight`` <- ``<layer>_w``, HWIO -> OIHW via ``(3, 2, 0, 1)``;
    ``<layer>_pre_relu_conv.bias`` <- ``<layer>_b``;
    ``softmax2_pre_activation_matmul.weight`` <- ``softmax2_w``, ``[1024, 1008]`` -> ``[1008, 1024]``;
    ``softmax2_pre_activation_matmul.bias`` <- ``softmax2_b``.
    """
    module, _, param = torch_name.rpartition(".")
    for suffix, layout in (("_pre_relu_conv", (3, 2, 0, 1)), ("_pre_activation_matmul", (1, 0))):
        if module.endswith(suffix) and param in ("weight", "bias"):
            layer = module[: -len(suffix)]
            if param == "weight":
                return f"{layer}_w", layout
            return f"{layer}_b", None
    raise ValueError(
        f"Don't know which GraphDef constant holds {torch_name!r}: expected names like "
        "'<layer>_pre_relu_conv.weight' or 'softmax2_pre_activation_matmul.bias'"
    )


def state_dict_from_graphdef(
    pb_bytes: bytes, spec: Mapping[str, Sequence[int]] | None = None
) -> dict[str, torch.Tensor]:
    """Convert ``tensorflow_inception_graph.pb`` bytes to the ``inception5h.pth`` state dict.

    ``spec`` maps each expected PyTorch parameter name to its shape (conv weight
    ``[out, in, kh, kw]``, conv bias ``[out]``, linear weight ``[1008, 1024]``, bias ``[1008]``);
    default: the packaged ``inception5h_state_dict.json`` (see ``load_spec``). The result has
    exactly the spec's names, in its order, as contiguous float32 tensors. Constants the spec
    does not ask for (the auxiliary heads ``head0``/``nn0``/``softmax0``, ``head1``/``nn1``/
    ``softmax1``) are ignored. Raises ``ValueError`` naming every missing constant and every
    shape mismatch.
    """
    expected = {
        name: tuple(int(d) for d in shape)
        for name, shape in (load_spec() if spec is None else spec).items()
    }
    constants = read_graphdef_constants(pb_bytes)

    state: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    wrong: list[str] = []
    for name, shape in expected.items():
        source, perm = tf_source(name)
        if source not in constants:
            missing.append(f"{source} (for {name})")
            continue
        array = constants[source]
        converted = array.transpose(perm) if perm is not None else array
        if converted.shape != shape:
            wrong.append(
                f"{source} {list(array.shape)} -> {name} {list(converted.shape)}, "
                f"expected {list(shape)}"
            )
            continue
        state[name] = torch.from_numpy(np.ascontiguousarray(converted))

    if missing or wrong:
        lines = ["This GraphDef is not the inception5h graph the model expects."]
        if missing:
            lines.append(f"Missing {len(missing)} Const tensor(s): " + ", ".join(missing) + ".")
        if wrong:
            lines.append(f"Wrong shape for {len(wrong)} tensor(s): " + "; ".join(wrong) + ".")
        lines.append(
            f"Use {GRAPH_FILENAME} from the original inception5h.zip "
            f"(sha256 {INCEPTION5H_ZIP_SHA256}, {INCEPTION5H_ZIP_URL})."
        )
        raise ValueError(" ".join(lines))
    return state


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_from_inception5h_zip(
    path: str | Path,
    expected_sha256: str = INCEPTION5H_ZIP_SHA256,
    spec: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """Verify ``inception5h.zip`` by SHA-256 and convert its graph (see ``state_dict_from_graphdef``).

    Raises ``FileNotFoundError`` if ``path`` does not exist and ``ValueError`` if the hash differs
    or the archive has no ``tensorflow_inception_graph.pb``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist. Download it from {INCEPTION5H_ZIP_URL}.")
    got = _sha256_file(path)
    if got != expected_sha256.lower():
        raise ValueError(
            f"SHA-256 mismatch for {path}: expected {expected_sha256.lower()}, got {got}. "
            f"The file is incomplete, corrupted or a different file: delete it and download it "
            f"again from {INCEPTION5H_ZIP_URL}."
        )
    with zipfile.ZipFile(path) as archive:
        members = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == GRAPH_FILENAME]
        if len(members) != 1:
            raise ValueError(
                f"{path} should contain exactly one {GRAPH_FILENAME}; it contains "
                f"{archive.namelist()}"
            )
        pb_bytes = archive.read(members[0])
    return state_dict_from_graphdef(pb_bytes, spec)
