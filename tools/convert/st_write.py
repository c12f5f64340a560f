"""safetensors writer (and a small reader) with numpy only, no torch.

Layout: u64 little-endian header length N, N bytes of JSON (padded with spaces to a multiple of
8), then the data buffer; each header entry is name -> {"dtype", "shape", "data_offsets":
[begin, end)} relative to the data buffer. Tensors are written in order of decreasing element
size, then name, so every tensor starts at a multiple of its element size (ditd uses aligned F32
tensors in place). BF16 data is passed as uint16 bit patterns.

    write(path, [(name, "F32"|"F16"|"BF16"|..., shape, producer), ...], metadata)
        producer() returns the tensor's bytes (a numpy array or bytes), called once, in file
        order, so a large model streams through memory one tensor at a time.
    read(path) -> {name: StTensor}, metadata      (lazy, memory-mapped)
"""
import json
import mmap
import os
import struct

import numpy as np

ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
            "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
NUMPY = {"BOOL": "u1", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "F16": "<f2",
         "BF16": "<u2", "I32": "<i4", "U32": "<u4", "F32": "<f4", "I64": "<i8", "U64": "<u8",
         "F64": "<f8"}
MAX_HEADER = 100_000_000


class SafetensorsError(Exception):
    pass


def _count(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n


def write(path, entries, metadata=None):
    """Write the tensors of `entries` (see the module doc) to `path` atomically."""
    entries = sorted(entries, key=lambda e: (-ITEMSIZE[e[1]], e[0]))
    names = [e[0] for e in entries]
    if len(set(names)) != len(names):
        raise SafetensorsError("duplicate tensor names")
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name, dtype, shape, _ in entries:
        size = _count(shape) * ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": [int(s) for s in shape],
                        "data_offsets": [offset, offset + size]}
        offset += size
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)
    tmp = path + ".part"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hjson)))
            f.write(hjson)
            for name, dtype, shape, producer in entries:
                data = producer()
                if isinstance(data, np.ndarray):
                    if data.dtype.itemsize != ITEMSIZE[dtype] or data.size != _count(shape):
                        raise SafetensorsError("%s: producer returned %s %s for %s %s"
                                               % (name, data.dtype, data.shape, dtype, shape))
                    data = np.ascontiguousarray(data)
                    if data.dtype.byteorder == ">":
                        data = data.astype(data.dtype.newbyteorder("<"))
                    data = memoryview(data).cast("B") if data.size else b""
                if len(data) != header[name]["data_offsets"][1] - header[name]["data_offsets"][0]:
                    raise SafetensorsError("%s: %d bytes produced, %d expected"
                                           % (name, len(data), _count(shape) * ITEMSIZE[dtype]))
                f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return 8 + len(hjson) + offset


class StTensor:
    """One tensor of a safetensors file; same interface as ptload.Tensor."""

    def __init__(self, dtype, shape, array):
        self.dtype = dtype
        self.shape = tuple(shape)
        self._array = array

    @property
    def numel(self):
        return _count(self.shape)

    @property
    def itemsize(self):
        return ITEMSIZE[self.dtype]

    @property
    def nbytes(self):
        return self.numel * self.itemsize

    def numpy(self):
        return self._array.reshape(self.shape)

    def __repr__(self):
        return "StTensor(%s, %s)" % (self.dtype, list(self.shape))


def read(path):
    """Parse and check a safetensors file; returns ({name: StTensor}, metadata)."""
    f = open(path, "rb")
    try:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise SafetensorsError("%s: shorter than 8 bytes" % path)
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER or 8 + n > size:
            raise SafetensorsError("%s: bad header length %d" % (path, n))
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise SafetensorsError("%s: header is not JSON (%s)" % (path, e))
        if not isinstance(header, dict):
            raise SafetensorsError("%s: header is not a JSON object" % path)
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size > 8 + n else b""
    finally:
        f.close()
    meta = header.pop("__metadata__", None) or {}
    base = 8 + n
    out, spans = {}, []
    for name, e in header.items():
        try:
            dtype, shape, (begin, end) = e["dtype"], e["shape"], e["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError("%s: bad entry for %s" % (path, name))
        if dtype not in ITEMSIZE:
            raise SafetensorsError("%s: %s has unsupported dtype %r" % (path, name, dtype))
        if (not isinstance(shape, list) or
                not all(isinstance(s, int) and s >= 0 for s in shape) or
                not all(isinstance(o, int) for o in (begin, end)) or
                not 0 <= begin <= end or base + end > size or
                end - begin != _count(shape) * ITEMSIZE[dtype]):
            raise SafetensorsError("%s: bad shape or offsets for %s" % (path, name))
        spans.append((begin, end))
        count = _count(shape)
        arr = (np.frombuffer(mm, dtype=NUMPY[dtype], count=count, offset=base + begin)
               if count else np.empty(0, dtype=NUMPY[dtype]))
        out[name] = StTensor(dtype, shape, arr)
    pos = 0
    for begin, end in sorted(spans):
        if begin != pos:
            raise SafetensorsError("%s: tensors leave a hole or overlap at offset %d"
                                   % (path, begin))
        pos = end
    if base + pos != size:
        raise SafetensorsError("%s: data buffer does not end at the end of the file" % path)
    return out, meta
