"""Restricted reader of PyTorch checkpoints (torch.save zip format), Python standard library and
numpy only. It never imports torch and never runs code named by the pickle.

A torch.save file (torch >= 1.6) is a ZIP archive:

    <prefix>/data.pkl        the pickled object (protocol 2): dicts, tensors, numbers, strings
    <prefix>/data/<key>      raw bytes of one tensor storage (little-endian unless
                             <prefix>/byteorder says "big")
    <prefix>/version, <prefix>/byteorder, .data/serialization_id ...   bookkeeping

In data.pkl a tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
and a storage is a persistent id ("storage", torch.<Type>Storage, key, location, numel).

Safety: the unpickler's find_class hands out only our own stand-ins, fresh for every lookup: a
factory of plain OrderedDicts, dtype markers for the storage types, our tensor builders in place of
torch._utils._rebuild_tensor_v2 / _rebuild_parameter(_with_state), and a plain record in place of
argparse.Namespace (the "args" entry of facebookresearch/DiT train.py checkpoints). Any other
global (os.system, builtins.eval, ...) stops the load with CheckpointError before anything is
called. Tensors are checked against their storage (offset, sizes and strides must stay inside
it) and are read lazily from a memory map of the file.

    obj = load(path)        # nested dicts / lists / tuples / numbers / strings / Tensor
    t.dtype  -> "F32" | "F16" | "BF16" | "F64" | "I64" | ...      (safetensors dtype names)
    t.shape  -> tuple
    t.numpy() -> C-contiguous little-endian numpy array (BF16 as uint16 bit patterns)
"""
import collections
import mmap
import pickle
import re
import struct
import zipfile

import numpy as np


class CheckpointError(Exception):
    """The file is not a checkpoint this reader accepts; the message says why."""


# torch storage class name -> (safetensors dtype name, numpy dtype without byte order)
STORAGE_TYPES = {
    "FloatStorage": ("F32", "f4"),
    "HalfStorage": ("F16", "f2"),
    "BFloat16Storage": ("BF16", "u2"),     # numpy has no bfloat16: keep the 16-bit patterns
    "DoubleStorage": ("F64", "f8"),
    "LongStorage": ("I64", "i8"),
    "IntStorage": ("I32", "i4"),
    "ShortStorage": ("I16", "i2"),
    "CharStorage": ("I8", "i1"),
    "ByteStorage": ("U8", "u1"),
    "BoolStorage": ("BOOL", "u1"),
}

# A tensor may address more elements than its storage holds only through overlapping strides
# (stride 0, expand()); allow that for small tensors but refuse e.g. a 10^12-element stride-0
# "tensor" that would explode when made contiguous.
MAX_OVERLAP_ELEMENTS = 1 << 24
MAX_DIMS = 16
MAX_PICKLE_BYTES = 1 << 30

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# the legacy format (the default before torch 1.6) begins with the pickled magic number
# 0x1950a86a20f9469cfc6c
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


class _Sealed:
    """Objects the pickle may name but must not modify: BUILD on them is refused."""

    __slots__ = ()

    def __setstate__(self, state):
        raise CheckpointError("the pickle tries to set the state of a %s; refused"
                              % type(self).__name__)


class StorageType(_Sealed):
    """Stand-in for torch.<Name>Storage: only a dtype marker, never called."""

    __slots__ = ("name", "dtype", "np")

    def __init__(self, name):
        self.name = name
        self.dtype, self.np = STORAGE_TYPES[name]

    def __repr__(self):
        return "torch." + self.name


class Storage(_Sealed):
    """The raw bytes of <prefix>/data/<key>, as a 1-D numpy array of `numel` elements."""

    __slots__ = ("key", "type", "numel", "array")

    def __init__(self, key, stype, numel, array):
        self.key = key
        self.type = stype
        self.numel = numel
        self.array = array


class Tensor(_Sealed):
    """A strided view of a Storage; materialised only by numpy()."""

    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage, offset, shape, stride):
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.stride = stride

    @property
    def dtype(self):
        return self.storage.type.dtype

    @property
    def numel(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def itemsize(self):
        return np.dtype(self.storage.type.np).itemsize

    @property
    def nbytes(self):
        return self.numel * self.itemsize

    def contiguous(self):
        """True when the tensor is a plain C-order run of its storage."""
        expect = 1
        for size, st in zip(reversed(self.shape), reversed(self.stride)):
            if size != 1 and st != expect:
                return False
            expect *= size
        return True

    def numpy(self):
        a = self.storage.array
        _check_view(self.storage, self.offset, self.shape, self.stride, self.numel)
        if self.numel == 0:
            out = np.empty(self.shape, dtype=a.dtype)
        elif self.contiguous():
            out = a[self.offset:self.offset + self.numel].reshape(self.shape)
        else:
            isz = a.dtype.itemsize
            view = np.lib.stride_tricks.as_strided(
                a[self.offset:], shape=self.shape, strides=[s * isz for s in self.stride],
                writeable=False)
            out = np.ascontiguousarray(view)
        want = np.dtype("<" + self.storage.type.np) if a.dtype.itemsize > 1 else a.dtype
        if out.dtype != want:
            out = out.astype(want)     # big-endian file
        return np.ascontiguousarray(out)

    def __repr__(self):
        return "Tensor(%s, %s)" % (self.dtype, list(self.shape))


class Record:
    """Inert stand-in for argparse.Namespace: keeps the pickled attributes as a dict."""

    def __init__(self, *args, **kwargs):
        self.__dict__["_args"] = args

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __repr__(self):
        return "Record(%s)" % ", ".join(sorted(k for k in self.__dict__ if k != "_args"))


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _int_tuple(v, what):
    if not isinstance(v, (tuple, list)) or not all(_is_int(x) and x >= 0 for x in v):
        raise CheckpointError("tensor %s must be a tuple of non-negative integers, got %r"
                              % (what, v))
    return tuple(v)


def _rebuild_tensor(storage, offset, size, stride, *rest):
    """Our replacement of torch._utils._rebuild_tensor_v2: validate, return a lazy Tensor."""
    if not isinstance(storage, Storage):
        raise CheckpointError("_rebuild_tensor_v2: the first argument is not a storage")
    if not _is_int(offset) or offset < 0:
        raise CheckpointError("_rebuild_tensor_v2: bad storage offset %r" % (offset,))
    size = _int_tuple(size, "size")
    stride = _int_tuple(stride, "stride")
    if len(size) != len(stride) or len(size) > MAX_DIMS:
        raise CheckpointError("tensor of storage %s: size %s and stride %s do not match"
                              % (storage.key, size, stride))
    t = Tensor(storage, offset, size, stride)
    _check_view(storage, offset, size, stride, t.numel)
    return t


def _check_view(storage, offset, size, stride, numel):
    """The view must stay inside its storage (and not blow up through stride 0)."""
    if not numel:
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.numel or last >= len(storage.array):
        raise CheckpointError(
            "tensor of storage %s (offset %d, size %s, stride %s) reaches element %d but the "
            "storage holds %d" % (storage.key, offset, list(size), list(stride), last,
                                  storage.numel))
    if numel > max(storage.numel, MAX_OVERLAP_ELEMENTS):
        raise CheckpointError("tensor of storage %s: %d elements from a storage of %d "
                              "(overlapping strides); refused" % (storage.key, numel,
                                                                  storage.numel))


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    if not isinstance(data, Tensor):
        raise CheckpointError("_rebuild_parameter: the data is not a tensor")
    return data


def _ordered_dict(*args):
    return collections.OrderedDict(*args)


def _fresh(fn):
    """A new callable per find_class call, so a BUILD aimed at it changes nothing shared."""
    return lambda *args: fn(*args)


# (module, name) -> factory of what find_class hands out (a fresh object every time)
ALLOWED = {
    ("collections", "OrderedDict"): lambda: _fresh(_ordered_dict),
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _fresh(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): lambda: _fresh(_rebuild_parameter),
    ("torch._utils", "_rebuild_parameter_with_state"): lambda: _fresh(_rebuild_parameter),
    ("argparse", "Namespace"): lambda: type("Namespace", (Record,), {}),
}
for _name in STORAGE_TYPES:
    ALLOWED[("torch", _name)] = (lambda n: lambda: StorageType(n))(_name)


class _Unpickler(pickle.Unpickler):
    def __init__(self, fileobj, archive):
        super().__init__(fileobj)
        self.archive = archive
        self.storages = {}

    def find_class(self, module, name):
        make = ALLOWED.get((module, name))
        if make is None:
            raise CheckpointError(
                "refusing global %s.%s in the checkpoint's pickle: a weights file needs only "
                "tensors, storages and dicts, so this file is either not a plain checkpoint or "
                "malicious (nothing was executed)" % (module, name))
        return make()

    def persistent_load(self, pid):
        if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage" or
                not isinstance(pid[1], StorageType) or not isinstance(pid[2], str) or
                not _is_int(pid[4]) or pid[4] < 0):
            raise CheckpointError("unexpected persistent id %r (expected ('storage', "
                                  "torch.<Type>Storage, key, location, numel))" % (pid,))
        _, stype, key, _location, numel = pid
        if type(stype.name) is not str or stype.name not in STORAGE_TYPES:
            raise CheckpointError("unexpected storage type in %r" % (pid,))
        stype = StorageType(stype.name)      # canonical marker, whatever the pickle did
        old = self.storages.get(key)
        if old is not None:
            if old.type.name != stype.name or old.numel != numel:
                raise CheckpointError("storage %s is declared twice with different types or "
                                      "sizes" % key)
            return old
        array = self.archive.storage_array(key, stype, numel)
        s = self.storages[key] = Storage(key, stype, numel, array)
        return s


class _Archive:
    """The zip container: locates data.pkl and maps the storage entries without copying."""

    def __init__(self, path):
        self.path = path
        self.file = open(path, "rb")
        try:
            self.zip = zipfile.ZipFile(self.file)
        except (zipfile.BadZipFile, OSError) as e:
            raise CheckpointError("%s: broken zip container (%s)" % (path, e))
        self.mm = mmap.mmap(self.file.fileno(), 0, access=mmap.ACCESS_READ)
        self.infos = {i.filename: i for i in self.zip.infolist()}
        pkls = [n for n in self.infos if n == "data.pkl" or n.endswith("/data.pkl")]
        pkls = [n for n in pkls if n.count("/") <= 1]
        if len(pkls) != 1:
            if any(n.endswith("constants.pkl") for n in self.infos):
                raise CheckpointError("%s is a TorchScript archive (torch.jit.save), not a "
                                      "torch.save checkpoint" % path)
            raise CheckpointError("%s: expected exactly one <prefix>/data.pkl entry, found %d"
                                  % (path, len(pkls)))
        self.pkl = pkls[0]
        self.prefix = self.pkl[:-len("data.pkl")]
        order = self.infos.get(self.prefix + "byteorder")
        self.byteorder = "little"
        if order is not None:
            self.byteorder = self.zip.read(order).decode("ascii", "replace").strip()
            if self.byteorder not in ("little", "big"):
                raise CheckpointError("%s: unknown byteorder %r" % (path, self.byteorder))

    def close(self):
        # numpy views may still point into the map; drop our references and let the garbage
        # collector unmap it when the last view goes
        self.zip.close()
        self.file.close()

    def _stored_range(self, info):
        """(begin, end) of an uncompressed entry's bytes in the file."""
        hdr = self.mm[info.header_offset:info.header_offset + 30]
        if len(hdr) != 30 or hdr[:4] != b"PK\x03\x04":
            raise CheckpointError("%s: bad local header for %s" % (self.path, info.filename))
        nlen, elen = struct.unpack("<HH", hdr[26:30])
        begin = info.header_offset + 30 + nlen + elen
        end = begin + info.file_size
        if end > len(self.mm):
            raise CheckpointError("%s: entry %s passes the end of the file"
                                  % (self.path, info.filename))
        return begin, end

    def read_pickle(self):
        info = self.infos[self.pkl]
        if info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError("%s: data.pkl is %d bytes; refused" % (self.path,
                                                                          info.file_size))
        return self.zip.open(info)

    def storage_array(self, key, stype, numel):
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
            raise CheckpointError("bad storage key %r" % key)
        name = self.prefix + "data/" + key
        info = self.infos.get(name)
        if info is None:
            raise CheckpointError("%s: storage %s has no entry %s" % (self.path, key, name))
        dt = np.dtype(("<" if self.byteorder == "little" else ">") + stype.np)
        need = numel * dt.itemsize
        if info.file_size < need:
            raise CheckpointError("%s: storage %s holds %d bytes, %d elements of %s need %d"
                                  % (self.path, key, info.file_size, numel, stype.name, need))
        if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1:
            begin, _ = self._stored_range(info)
            return np.frombuffer(self.mm, dtype=dt, count=numel, offset=begin)
        data = self.zip.read(info)       # compressed entry (not written by torch): copy it
        return np.frombuffer(data, dtype=dt, count=numel)


def sniff(path):
    """'zip', 'legacy', 'tar', 'safetensors' or 'unknown', from the first bytes of the file."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in ZIP_MAGIC:
        return "zip"
    if head.startswith(LEGACY_MAGIC):
        return "legacy"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if len(head) >= 9:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    return "unknown"


def load(path):
    """Load a torch.save zip checkpoint; returns the object tree with Tensor leaves."""
    kind = sniff(path)
    if kind in ("legacy", "tar"):
        raise CheckpointError(
            "%s uses PyTorch's legacy (pre-1.6, non-zip) serialization, which this reader does "
            "not accept. Re-save it with a newer torch, on a machine you trust with this file: "
            "torch.save(torch.load(OLD, map_location='cpu', weights_only=True), NEW)" % path)
    if kind != "zip":
        raise CheckpointError("%s is not a PyTorch zip checkpoint (torch.save, torch >= 1.6)"
                              % path)
    ar = _Archive(path)
    try:
        with ar.read_pickle() as f:
            try:
                obj = _Unpickler(f, ar).load()
            except CheckpointError:
                raise
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                    IndexError, KeyError, MemoryError, RecursionError) as e:
                raise CheckpointError("%s: cannot unpickle %s: %s: %s"
                                      % (path, ar.pkl, type(e).__name__, e))
    finally:
        ar.close()
    return obj
