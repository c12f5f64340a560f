#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets: small handmade files, one per
corruption kind of docs/models.md (safetensors) and of npy.c, plus valid
files of every dtype; the malformed request list of the reliability tests
(tests/reliability/badbodies.py) for the request decoder; configuration files
and flag lists for the config parser. Run from anywhere; rewrites
fuzz/corpus/ in place.

    /usr/bin/python3 fuzz/make_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# name: bits per element, as in safetensors.c
DTYPES = {"BOOL": 8, "U8": 8, "I8": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
          "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
          "F8_E4M3": 8, "F8_E5M2": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6,
          "F6_E3M2": 6, "C64": 64}


def entry(dtype, shape, begin, end):
    return '{"dtype":"%s","shape":%s,"data_offsets":[%s,%s]}' % (
        dtype, shape, begin, end)


def st_file(header, data_len, pad_to=1, n=None):
    """8-byte N, header (str or bytes) padded with spaces to a multiple of
    pad_to, then data_len bytes of a pattern; n overrides N."""
    h = header.encode("utf-8", "surrogateescape") if isinstance(header, str) else header
    h += b" " * ((-len(h)) % pad_to)
    data = bytes((i * 7 + 3) & 0xff for i in range(data_len))
    return struct.pack("<Q", len(h) if n is None else n) + h + data


def safetensors_seeds():
    seeds = {}
    # Valid files: every dtype back to back, at N % 8 == 0 and N % 8 == 3.
    parts, off = [], 0
    for name, bits in DTYPES.items():
        size = 8 * bits // 8
        parts.append('"t_%s":%s' % (name, entry(name, "[2,4]", off, off + size)))
        off += size
    parts.append('"scalar":%s' % entry("F32", "[]", off, off + 4))
    parts.append('"empty":%s' % entry("F32", "[0,5]", off + 4, off + 4))
    hdr = '{"__metadata__":{"format":"pt"},' + ",".join(parts) + "}"
    seeds["valid_all_dtypes"] = st_file(hdr, off + 4, pad_to=8)
    hdr3 = hdr + " " * ((3 - len(hdr)) % 8)
    seeds["valid_misaligned_n"] = st_file(hdr3, off + 4)
    seeds["valid_empty"] = st_file("{}", 0)
    seeds["valid_f16"] = st_file('{"w":%s}' % entry("F16", "[2,2]", 0, 8), 8, pad_to=8)

    one = lambda e, d: st_file('{"w":%s}' % e, d)
    two = lambda a, b, d: st_file('{"a":%s,"b":%s}' % (a, b), d)
    seeds.update({
        "short_file": b"\x02\x00\x00",
        "header_too_large": struct.pack("<Q", 100000001) + b"{}",
        "header_n_max": struct.pack("<Q", 2**64 - 1) + b"{}",
        "header_past_eof": struct.pack("<Q", 64) + b"{}",
        "header_empty": struct.pack("<Q", 0),
        "header_start": st_file("[1]", 0),
        "header_utf8": st_file(b'{"a\xff":1}', 0),
        "header_utf8_overlong": st_file(b'{"\xc0\xaf":1}', 0),
        "header_utf8_surrogate": st_file(b'{"\xed\xa0\x80":1}', 0),
        "header_json": st_file('{"a":', 0),
        "header_json_bigint": one(entry("U8", "[99999999999999999999]", 0, 0), 0),
        "many_zero_size": st_file("{" + ",".join('"%d":%s' % (i, entry("U8", "[0]", 0, 0))
                                                 for i in range(40)) + "}", 0),
        "duplicate_name": two(entry("U8", "[1]", 0, 1), entry("U8", "[1]", 1, 2), 2)
        .replace(b'"b"', b'"a"'),
        "duplicate_field": st_file('{"w":{"dtype":"U8","dtype":"U8","shape":[1],'
                                   '"data_offsets":[0,1]}}', 1),
        "metadata_value": st_file('{"__metadata__":{"format":1}}', 0),
        "metadata_type": st_file('{"__metadata__":"pt"}', 0),
        "entry_type": st_file('{"w":1}', 0),
        "entry_missing": st_file('{"w":{"shape":[1],"data_offsets":[0,1]}}', 1),
        "entry_extra": st_file('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],'
                               '"x":0}}', 1),
        "dtype_unknown": one(entry("F17", "[1]", 0, 1), 1),
        "shape_negative": one(entry("U8", "[-1]", 0, 0), 0),
        "shape_real": one(entry("U8", "[2.0]", 0, 2), 2),
        "shape_above_2_31": one(entry("U8", "[2147483649]", 0, 0), 0),
        "shape_2_32_squared": one(entry("U8", "[4294967296,4294967296]", 0, 0), 0),
        "shape_nine_dims": one(entry("U8", "[1,1,1,1,1,1,1,1,1]", 0, 1), 1),
        "size_wraps_to_zero": one(entry("F32", "[2147483648,2147483648,4]", 0, 0), 0),
        "size_bits_overflow": one(entry("F32", "[2147483648,2147483648,2]", 0, 0), 0),
        "not_byte_aligned": one(entry("F4", "[3]", 0, 2), 2),
        "offsets_one": one(entry("U8", "[1]", 1, 1).replace("[1,1]", "[1]"), 1),
        "offsets_negative": one(entry("U8", "[1]", -1, 0), 1),
        "offsets_order": one(entry("U8", "[0]", 1, 0), 1),
        "past_eof": one(entry("U8", "[8]", 0, 8), 4),
        "size_mismatch_larger": one(entry("F32", "[1]", 0, 8), 8),
        "size_mismatch_smaller": one(entry("F32", "[2]", 0, 4), 4),
        "hole": two(entry("F32", "[1]", 0, 4), entry("F32", "[1]", 8, 12), 12),
        "hole_at_start": one(entry("F32", "[1]", 4, 8), 8),
        "overlap": two(entry("F32", "[1]", 0, 4), entry("F32", "[1]", 0, 4), 4),
        "overlap_partial": two(entry("F32", "[2]", 0, 8), entry("F32", "[1]", 4, 8), 8),
        "trailing": one(entry("F32", "[1]", 0, 4), 5),
    })
    return seeds


def npy_file(header, data_len, major=1, minor=0):
    h = header.encode("latin-1")
    if major == 1:
        pre = b"\x93NUMPY" + bytes([major, minor]) + struct.pack("<H", len(h))
    else:
        pre = b"\x93NUMPY" + bytes([major, minor]) + struct.pack("<I", len(h))
    return pre + h + bytes(i & 0xff for i in range(data_len))


def npy_header(descr, fortran, shape):
    text = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    return text + " " * ((-(len(text) + 11)) % 64) + "\n"


def npy_seeds():
    h = npy_header
    return {
        "valid_f4": npy_file(h("<f4", "False", "(2, 3)"), 24),
        "valid_f8": npy_file(h("<f8", "False", "(3,)"), 24),
        "valid_i4": npy_file(h("<i4", "False", "(2, 2)"), 16),
        "valid_i8_scalar": npy_file(h("<i8", "False", "()"), 8),
        "valid_empty": npy_file(h("<f4", "False", "(0, 4)"), 0),
        "valid_v2": npy_file(h("<f4", "False", "(1,)"), 4, major=2),
        "valid_v3": npy_file(h("<f4", "False", "(1,)"), 4, major=3),
        "fortran_order": npy_file(h("<f4", "True", "(2, 2)"), 16),
        "big_endian": npy_file(h(">f4", "False", "(2,)"), 8),
        "dtype_unsupported": npy_file(h("|u1", "False", "(2,)"), 2),
        "version_4": npy_file(h("<f4", "False", "(1,)"), 4, major=4),
        "data_short": npy_file(h("<f4", "False", "(2, 3)"), 23),
        "data_long": npy_file(h("<f4", "False", "(2, 3)"), 25),
        "nine_dims": npy_file(h("<f4", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"), 4),
        "dim_negative": npy_file(h("<f4", "False", "(-1,)"), 0),
        "dim_huge": npy_file(h("<f4", "False", "(99999999999999999999,)"), 0),
        "count_overflow": npy_file(h("<f4", "False", "(4294967296, 4294967296)"), 0),
        "missing_key": npy_file("{'descr': '<f4', 'fortran_order': False, }\n", 4),
        "header_past_eof": npy_file(h("<f4", "False", "(1,)"), 0)[:40],
        "bad_magic": b"\x93NUMPX\x01\x00" + npy_file(h("<f4", "False", "(1,)"), 4)[8:],
    }


def request_seeds():
    """POST /generate bodies: valid ones, and the malformed list of the reliability tests."""
    import sys
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "reliability"))
    import badbodies
    seeds = {
        "valid_min": b'{"class":1}',
        "valid_name": b'{"class":"sneaker","cfg":4.0}',
        "valid_all": badbodies.dumps(badbodies.VALID),
        "valid_stream": b'{"class":7,"stream":true,"preview":5,"steps":20,"n":8,"seed":-1}',
        "valid_integral_real": b'{"class":2.0,"steps":25.0,"seed":9007199254740991}',
    }
    for i, (kind, body) in enumerate(badbodies.bodies(1000, 65536)):
        # Every handmade case; one in five of the random garbage is enough.
        if len(body) <= 2048 and (not kind.startswith("garbage") or i % 5 == 0):
            seeds["bad_%04d_%s" % (i, kind)] = body
    return seeds


def config_seeds():
    """First byte even: an INI file; odd: argv, one argument per line (fuzz_config.c)."""
    with open(os.path.join(HERE, "..", "conf", "ditd.conf"), "rb") as f:
        conf = f.read()
    files = {
        "conf_shipped": conf,
        "conf_small": b"[compute]\nworkers = 2 ; inline comment\n[queue]\nmax_queue = 5\n",
        "conf_unknown_key": b"[server]\n\nlisten = x:1\nbogus = 1\n",
        "conf_wrong_section": b"[server]\nworkers = 2\n",
        "conf_range": b"[compute]\nmax_batch = 0\n",
        "conf_nan": b"[request]\ndefault_cfg = nan\n",
        "conf_bytes": b"[server]\nmax_body = 16m\nhttp_memory = 9k\n",
        "conf_overflow": b"[server]\nmax_body = 99999999999999999999k\n",
        "conf_lists": b"[auth]\napi_keys = a, b ,,c\ncors_origins = *, https://x\n",
        "conf_cross": b"[request]\ndefault_steps = 900\nmax_steps = 10\n",
        "conf_no_section": b"workers = 1\n",
        "conf_long_line": b"[auth]\napi_keys = " + b"k" * 300 + b"\n",
        "conf_bool": b"[log]\naccess_log = maybe\n",
    }
    args = {
        "args_flags": b"--workers\n2\n--max-queue\n7\n--listen\n127.0.0.1:0",
        "args_equals": b"--max-body=1k\n--log-level=debug\n--access-log=yes",
        "args_short": b"-w\n1\n-b\n4\n-q\n0\n-m\n/tmp/x",
        "args_bad": b"--workers\nx\n--nope\nstray",
        "args_help": b"--help",
        "args_probe": b"--probe\n--listen\n[::1]:80",
    }
    seeds = {k: b"\x00" + v for k, v in files.items()}
    seeds.update({k: b"\x01" + v for k, v in args.items()})
    return seeds


def png_file(text, itxt=(), size=2):
    """A grey size x size PNG with tEXt chunks (and uncompressed iTXt ones) as dit writes."""
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    raw = b"".join(b"\x00" + bytes(size) for _ in range(size))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
    for k, v in text:
        out += chunk(b"tEXt", k.encode() + b"\x00" + v.encode())
    for k, v in itxt:
        out += chunk(b"iTXt", k.encode() + b"\x00\x00\x00\x00\x00" + v.encode())
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def metadata_seeds():
    """PNGs as dit and ditd write them (tEXt keys of docs/api.md), and broken variants."""
    good = [("Software", "ditd 0.1.0"), ("model", "fashion-dit"), ("model_id", "4887ac1a3a459a07"),
            ("class", "7"), ("class_name", "sneaker"), ("cfg", "4"), ("steps", "2"),
            ("sampler", "ddpm"), ("spacing", "uniform"), ("eta", "0"), ("seed", "3"),
            ("index", "0-1"), ("precision", "fp32")]

    def with_(key, value):
        return [(k, value if k == key else v) for k, v in good]
    seeds = {
        "valid": png_file(good),
        "valid_itxt": png_file(good[:6], itxt=good[6:]),
        "valid_single_index": png_file(with_("index", "5")),
        "valid_ddim": png_file(with_("sampler", "ddim") + [("spacing", "ddim"), ("eta", "0.5")]),
        "missing_seed": png_file([kv for kv in good if kv[0] != "seed"]),
        "bad_steps": png_file(with_("steps", "1001")),
        "bad_cfg": png_file(with_("cfg", "nan")),
        "bad_index_range": png_file(with_("index", "9-2")),
        "bad_sampler": png_file(with_("sampler", "euler")),
        "long_model": png_file(with_("model", "m" * 300)),
        "truncated": png_file(good)[:100],
        "not_png": b"GIF89a" + bytes(32),
    }
    return seeds


def write(target, seeds, ext):
    d = os.path.join(CORPUS, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, name + ext), "wb") as f:
            f.write(data)
    print("%s: %d seeds, %d bytes" % (target, len(seeds), sum(map(len, seeds.values()))))


if __name__ == "__main__":
    write("fuzz_safetensors", safetensors_seeds(), ".safetensors")
    write("fuzz_npy", npy_seeds(), ".npy")
    write("fuzz_request", request_seeds(), ".json")
    write("fuzz_config", config_seeds(), ".bin")
    write("fuzz_metadata", metadata_seeds(), ".png")
