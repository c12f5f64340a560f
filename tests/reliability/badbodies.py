#!/usr/bin/python3
"""The malformed and out-of-range POST /generate bodies of the reliability tests.

    badbodies.py [--count 1000] [--max-body 262144] [--corpus DIR]

bodies(count, max_body) returns `count` (kind, bytes) pairs, the same every time: broken JSON,
wrong types, out-of-range values, huge numbers, deep nesting, big arrays under the cap, binary
garbage, invalid UTF-8, empty bodies, bodies over the cap, duplicate and unknown keys, NaN and
Infinity literals. Every one of them must get a 4xx with the JSON error envelope (400, or 413
for the bodies over `max_body`). With --corpus the small ones are written as seeds for the
request fuzzer (fuzz/corpus/fuzz_request).
"""
import argparse
import json
import os
import random
import struct

VALID = {"class": 1, "cfg": 4.0, "steps": 10, "sampler": "ddim", "spacing": "uniform",
         "eta": 0.0, "seed": 5, "n": 1, "stream": False, "preview": 0, "deadline_ms": 60000}

# Values of each field that must be refused, by kind (wrong type, out of range, huge).
OUT_OF_RANGE = {
    "class": [-1, 10, 11, 1000, 2**31, -2**31, 2**63 - 1, -2**63, 1.5, 0.0001, 9.99],
    "cfg": [-0.0001, -1, 20.0001, 21, 1e308, -1e308, 1e300, 2**63 - 1],
    "steps": [0, -1, 1001, 10**6, 2**31, 2**63 - 1, -2**63, 2.5, 1e15],
    "eta": [-0.01, 1.01, 2, -1e300, 1e300],
    "seed": [-2, -1000, -2**63, 1.5, -0.5, 1e19, 9.3e18],
    "n": [0, -1, 9, 100, 2**31, 1.5],
    "preview": [-1, 1001, 11, 2**31, 0.5],
    "deadline_ms": [0, -1, 86400001, 2**31, 2**63 - 1, 0.5],
    "sampler": ["euler", "", "DDPM ", "ddpm\u0000", "d" * 200, "dpm++2m" * 3],
    "spacing": ["linear", "", "uniform ", "x" * 300],
}
WRONG_TYPES = [None, True, False, "1", "", [], [1], {}, {"a": 1}, "4.0", "NaN"]
TYPED = {"class": ("int", "str"), "cfg": ("num",), "steps": ("int",), "eta": ("num",),
         "seed": ("int",), "n": ("int",), "preview": ("int",), "deadline_ms": ("int",),
         "stream": ("bool",), "sampler": ("str",), "spacing": ("str",)}


def dumps(obj):
    return json.dumps(obj).encode()


def type_ok(field, value):
    kinds = TYPED[field]
    if isinstance(value, bool):
        return "bool" in kinds
    if isinstance(value, int):
        return "int" in kinds or "num" in kinds
    if isinstance(value, float) and value != value:
        return False
    if isinstance(value, float) and abs(value) == float("inf"):
        return "num" in kinds
    if isinstance(value, float):
        # Integral reals such as 2.0 are accepted where integers are due (up to 9e15).
        return "num" in kinds or ("int" in kinds and value == int(value) and abs(value) <= 9e15)
    if isinstance(value, str):
        return "str" in kinds
    return False


def structural(max_body):
    """Bodies that are broken as a whole, each with its kind."""
    base = dumps({"class": 1, "cfg": 4.0, "steps": 10})
    out = [("empty", b""), ("whitespace", b" \r\n\t "), ("null_byte", b"\x00"),
           ("top_null", b"null"), ("top_true", b"true"), ("top_number", b"1"),
           ("top_string", b'"class"'), ("top_array", b'[{"class":1}]'), ("top_empty_array", b"[]"),
           ("nan_literal", b'{"class":1,"cfg":NaN}'), ("inf_literal", b'{"class":1,"cfg":Infinity}'),
           ("neg_inf_literal", b'{"class":1,"cfg":-Infinity}'),
           ("duplicate_key", b'{"class":1,"class":2}'),
           ("duplicate_key_other", b'{"class":1,"cfg":1,"cfg":2}'),
           ("single_quotes", b"{'class':1}"), ("unquoted_key", b"{class:1}"),
           ("trailing_comma", b'{"class":1,}'), ("comment", b'{"class":1 /* x */}'),
           ("trailing_garbage", base + b"x"), ("two_objects", base + base),
           ("leading_garbage", b"x" + base), ("bom", b"\xef\xbb\xbf" + base),
           ("hex_number", b'{"class":0x1}'), ("plus_number", b'{"class":+1}'),
           ("leading_zero", b'{"class":01}'), ("big_int", b'{"class":123456789012345678901234567890}'),
           ("huge_exponent", b'{"class":1,"cfg":1e400}'), ("tiny_exponent", b'{"class":1e-400}'),
           ("neg_huge_exponent", b'{"class":1,"cfg":-1e400}'),
           ("int64_overflow_seed", b'{"class":1,"seed":9223372036854775808}'),
           ("uint64_seed", b'{"class":1,"seed":18446744073709551615}'),
           ("neg_int64_overflow", b'{"class":-9223372036854775809}'),
           ("unterminated_string", b'{"class":"trous'), ("bad_escape", b'{"class":"\\q"}'),
           ("nul_escape", b'{"class":"a\\u0000b"}'), ("lone_surrogate", b'{"class":"\\ud800"}'),
           ("raw_control", b'{"class":"a\x01b"}'), ("invalid_utf8", b'{"class":"\xff\xfe"}'),
           ("overlong_utf8", b'{"class":"\xc0\xaf"}'), ("utf16", '{"class":1}'.encode("utf-16")),
           ("key_invalid_utf8", b'{"\xff":1}'), ("empty_key", b'{"":1}'),
           ("unknown_field", dumps({"class": 1, "cfg_scale": 4})),
           ("unknown_field_only", dumps({"prompt": "a cat"})),
           ("missing_class", dumps({"cfg": 4.0, "steps": 10})),
           ("missing_class_empty", b"{}"),
           ("preview_above_steps", dumps({"class": 1, "steps": 5, "preview": 6})),
           ("class_name_unknown", dumps({"class": "cat"})),
           ("class_name_long", dumps({"class": "x" * 5000})),
           ("class_name_traversal", dumps({"class": "../../../../etc/passwd"})),
           ("many_unknown_fields", dumps({"k%d" % i: i for i in range(2000)})),
           ]
    for depth in (64, 1000, 2048, 2049, 5000, 30000):
        out.append(("deep_array_%d" % depth, b"[" * depth + b"]" * depth))
        out.append(("deep_array_open_%d" % depth, b"[" * depth))
        obj = b'{"a":' * depth + b"1" + b"}" * depth
        if len(obj) < max_body:
            out.append(("deep_object_%d" % depth, obj))
        out.append(("deep_in_field_%d" % depth, b'{"class":' + b"[" * depth + b"]" * depth + b"}"))
    n_big = min(100000, (max_body - 64) // 2)
    out.append(("array_%d" % n_big, b'{"class":[' + b",".join([b"0"] * n_big) + b"]}"))
    out.append(("top_array_%d" % n_big, b"[" + b",".join([b"1"] * n_big) + b"]"))
    out.append(("long_string_field", dumps({"class": 1, "sampler": "a" * (max_body - 100)})))
    out.append(("many_keys", b"{" + b",".join(b'"%d":0' % i for i in range(max_body // 16)) + b"}"))
    # Over the cap: valid JSON padded with spaces, garbage, an array.
    out.append(("over_cap_padded", base + b" " * (max_body + 1 - len(base))))
    out.append(("over_cap_by_one", base[:-1] + b" " * (max_body + 1 - len(base)) + b"}"))
    out.append(("over_cap_garbage", bytes(random.Random(1).getrandbits(8) for _ in range(max_body + 7))))
    out.append(("over_cap_4x", b"[" + b"0," * (2 * max_body) + b"0]"))
    # Every prefix of a valid body is broken JSON.
    full = dumps(VALID)
    for i in range(len(full)):
        out.append(("truncated_%d" % i, full[:i]))
    return out


def field_cases():
    out = []
    for field, values in OUT_OF_RANGE.items():
        for v in values:
            body = dict(VALID)
            body[field] = v
            if field == "preview" and isinstance(v, int) and 0 <= v <= 1000:
                body["steps"] = 10
            out.append(("range_%s" % field, dumps(body)))
    for field in TYPED:
        for v in WRONG_TYPES:
            if type_ok(field, v):
                continue
            body = dict(VALID)
            body[field] = v
            out.append(("type_%s" % field, dumps(body)))
    return out


def garbage(rng, count):
    out = []
    for i in range(count):
        kind = i % 6
        n = rng.randint(1, 600)
        if kind == 0:
            b = bytes(rng.getrandbits(8) for _ in range(n))
        elif kind == 1:     # JSON-ish alphabet
            b = bytes(rng.choice(b'{}[]":,0123456789.eE+-truefalsnl \\u') for _ in range(n))
        elif kind == 2:     # a valid body with a few bytes flipped
            b = bytearray(dumps(VALID))
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.getrandbits(8)
            b = bytes(b)
        elif kind == 3:     # a valid body with a byte deleted or inserted
            b = bytearray(dumps(VALID))
            p = rng.randrange(len(b))
            if rng.random() < 0.5:
                del b[p]
            else:
                b.insert(p, rng.choice(b'{}[]",:\x00\xff'))
            b = bytes(b)
        elif kind == 4:     # binary formats that are not JSON
            b = rng.choice([b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"\x1f\x8b\x08", b"GIF89a",
                            struct.pack("<Q", 8) + b'{"a":1} ']) + bytes(
                rng.getrandbits(8) for _ in range(n))
        else:               # random numbers in every field
            body = dict(VALID)
            f = rng.choice(sorted(OUT_OF_RANGE))
            body[f] = rng.choice([rng.uniform(-1e300, 1e300), -rng.randint(2, 2**63),
                                  rng.randint(2**63, 2**70), rng.uniform(-1e9, -1e-9)])
            b = dumps(body).replace(b"Infinity", b"1e999")
        out.append(("garbage_%d" % kind, b))
    return out


def is_valid(body, max_body):
    """True when the daemon could accept the body (garbage may be valid by chance)."""
    if len(body) > max_body:
        return False
    try:
        obj = json.loads(body.decode("utf-8"), object_pairs_hook=_no_dups)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    if not isinstance(obj, dict) or set(obj) - set(TYPED) or "class" not in obj:
        return False
    limits = {"class": (0, 9), "cfg": (0, 20), "steps": (1, 1000), "eta": (0, 1),
              "seed": (-1, 2**63 - 1), "n": (1, 8), "preview": (0, 1000),
              "deadline_ms": (1, 86400000)}
    for k, v in obj.items():
        if not type_ok(k, v) and not (k == "class" and isinstance(v, str)):
            return False
        if k in limits and not isinstance(v, str):
            if not limits[k][0] <= v <= limits[k][1]:
                return False
    # Sampler and spacing names are case-insensitive (docs/api.md).
    return obj.get("sampler", "ddpm").lower() in ("ddpm", "ddim", "dpm++2m") and \
        obj.get("spacing", "uniform").lower() in ("uniform", "ddim") and \
        obj.get("preview", 0) <= obj.get("steps", 50) and not isinstance(obj["class"], str)


def _no_dups(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def bodies(count=1000, max_body=262144, seed=20261127):
    """`count` bodies that must each be refused with a 4xx, deterministic."""
    fixed = structural(max_body) + field_cases()
    rng = random.Random(seed)
    out = [(k, b) for k, b in fixed if not is_valid(b, max_body)]
    out = out[:count]
    while len(out) < count:
        for k, b in garbage(rng, count - len(out)):
            if not is_valid(b, max_body):
                out.append((k, b))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--max-body", type=int, default=262144)
    ap.add_argument("--corpus")
    a = ap.parse_args()
    bs = bodies(a.count, a.max_body)
    kinds = {}
    for k, b in bs:
        kinds[k.rstrip("0123456789_")] = kinds.get(k.rstrip("0123456789_"), 0) + 1
    print("%d bodies, %d kinds, %d bytes" % (len(bs), len(kinds), sum(len(b) for _, b in bs)))
    if a.corpus:
        os.makedirs(a.corpus, exist_ok=True)
        n = 0
        for i, (k, b) in enumerate(bs):
            if len(b) <= 4096:
                with open(os.path.join(a.corpus, "%04d_%s.json" % (i, k)), "wb") as f:
                    f.write(b)
                n += 1
        print("%d seeds in %s" % (n, a.corpus))


if __name__ == "__main__":
    main()
