"""Minimal safetensors reader/writer (pure python + torch/numpy).

File layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data buffer.
Each JSON entry is name -> {"dtype", "shape", "data_offsets": [begin, end)} with offsets relative
to the start of the data buffer. We write the JSON padded with spaces to a multiple of 8 bytes and
store the tensors contiguously in name order.
"""
import json
import struct

import numpy as np
import torch

# dtype name -> (torch dtype, bytes per element)
DTYPES = {
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
}
_NAME_OF = {tdt: name for name, (tdt, _) in DTYPES.items()}


def _tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: reinterpret the bits as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()  # native order; this package assumes a little-endian host


def save(tensors, path, metadata=None):
    """Write dict name -> tensor (F32/F16/BF16/I64) to `path`."""
    names = sorted(tensors)
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in names:
        t = tensors[name]
        if t.dtype not in _NAME_OF:
            raise ValueError(f"{name}: unsupported dtype {t.dtype}")
        b = _tensor_bytes(t)
        header[name] = {"dtype": _NAME_OF[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load(path, with_metadata=False):
    """Read a safetensors file; returns dict name -> torch tensor (and the metadata if asked)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    buf = memoryview(data)[8 + n:]
    out = {}
    for name, e in header.items():
        tdt, size = DTYPES[e["dtype"]]
        begin, end = e["data_offsets"]
        count = int(np.prod(e["shape"])) if e["shape"] else 1
        if end - begin != count * size:
            raise ValueError(f"{name}: size mismatch")
        raw = bytearray(buf[begin:end])
        if count == 0:
            t = torch.empty(0, dtype=tdt)
        else:
            t = torch.frombuffer(raw, dtype=tdt)
        out[name] = t.reshape(e["shape"]).clone()
    return (out, meta) if with_metadata else out
