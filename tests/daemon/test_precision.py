#!/usr/bin/python3
"""The daemon and the precision setting: what runs is said in the log, /info and /metrics; a CPU
without bf16 (simulated with DITD_ISA=avx2) falls back to fp32 under `auto`; in bf16 continuous
batching, previews and the thread count leave every image's bytes as they are alone.

    test_precision.py --ditd build/src/daemon/ditd --workdir build/tests/daemon/work NAME

Runs on two tiny random models: 16 tokens per image (ditd's panel kernel) and 64 (sgemm tiles),
so both bf16 kernels are served. Stdlib only.
"""
import fcntl
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from harness import Daemon, check, png_from_b64, registry, run_test, sse_events

TESTS, test = registry()
HERE = os.path.dirname(os.path.abspath(__file__))


def models(a):
    """(name, directory) of the two tiny models (the second made once per work directory)."""
    tiles = os.path.join(a.workdir, "tiny-model-64")
    with open(os.path.join(a.workdir, ".lock-64"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([sys.executable, os.path.join(HERE, "make_tiny_model.py"), tiles,
                        "--input-size", "16"], check=True, timeout=300)
    return [("16 tokens", a.model), ("64 tokens", tiles)]


def info(d):
    s, _, body = d.json("GET", "/info")
    check(s == 200, "/info -> %d" % s)
    return body


def build_info(d):
    """The labels of ditd_build_info as a dict."""
    for k in d.metrics():
        if k.startswith("ditd_build_info{"):
            return dict(kv.split("=", 1) for kv in k[len("ditd_build_info{"):-1].replace(
                '"', "").split(","))
    raise AssertionError("no ditd_build_info in /metrics")


@test
def precision_fallback(a):
    """On a CPU without bf16, auto runs fp32 and says why: log, /info, metrics."""
    with Daemon(a.ditd, a.model, env={"DITD_ISA": "avx2"}) as d:
        d.wait_ready()
        logs = d.logs()
        check("precision auto: fp32 (this CPU has no AVX512-BF16/AMX" in logs,
              "no fallback line in the log:\n" + logs[-2000:])
        c = info(d)["compute"]
        check(c["precision"] == "fp32" and c["isa"] in ("avx2", "sse", "generic"),
              "/info compute %s" % c)
        check("no AVX512-BF16/AMX" in c["precision_note"], "note %s" % c["precision_note"])
        check(info(d)["limits"]["max_batch_rows"] == 16, "fp32 row budget")
        labels = build_info(d)
        check(labels["precision"] == "fp32" and labels["isa"] == c["isa"], "labels %s" % labels)
    try:
        Daemon(a.ditd, a.model, "--precision", "bf8").kill()
        raise AssertionError("ditd started with --precision bf8")
    except RuntimeError as e:
        check("precision: 'bf8' is not one of auto, fp32, bf16" in str(e), str(e)[-500:])


def generate_json(d, body):
    s, _, b = d.json("POST", "/generate", body, {"Accept": "application/json"})
    check(s == 200, "generate %s -> %d %s" % (body, s, b))
    return b


@test
def bf16_cobatch_identical(a):
    """bf16: alone, co-batched with seven others, streamed with previews: the same bytes."""
    for name, model in models(a):
        with Daemon(a.ditd, model, "--precision", "bf16",
                    env={"DITD_TEST_STEP_DELAY_MS": "5"}) as d:
            d.wait_ready()
            c = info(d)["compute"]
            check(c["precision"] == "bf16", "%s: /info compute %s" % (name, c))
            check("precision bf16" in d.logs(), "%s: no precision line in the log" % name)
            check(build_info(d)["precision"] == "bf16", "metrics label")
            req = {"class": 5, "cfg": 4.0, "seed": 99, "steps": 24}
            alone = generate_json(d, req)
            check(alone["timings"]["batch_size_mean"] == 1.0, "alone batch size")
            others = [{"class": i, "cfg": 1.0 + i, "seed": 1000 + i, "steps": 16 + 3 * i,
                       "sampler": ["ddpm", "ddim", "dpm++2m"][i % 3]} for i in range(7)]
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda b: generate_json(d, b), [req] + others))
            check(results[0]["timings"]["batch_size_mean"] > 1.5,
                  "%s: not co-batched (mean batch %s)" % (name, results[0]["timings"]))
            check(results[0]["images"][0]["b64"] == alone["images"][0]["b64"],
                  "%s: the co-batched image differs from the same request alone" % name)
            conn = d.conn()
            conn.request("POST", "/generate", json.dumps(dict(req, stream=True, preview=4)))
            r = conn.getresponse()
            names, image = [], None
            for _, ev, data in sse_events(r):
                names.append(ev)
                if ev == "image":
                    image = data["b64"]
            conn.close()
            check("preview" in names and names[-1] == "done", "%s: events %s" % (name, names))
            check(image == alone["images"][0]["b64"], "%s: the streamed image differs" % name)


@test
def bf16_threads_identical(a):
    """bf16 on one and on two compute threads: the same bytes."""
    for name, model in models(a):
        images = []
        for threads in ("1", "2"):
            with Daemon(a.ditd, model, "--precision", "bf16", "--threads", threads) as d:
                d.wait_ready()
                body = generate_json(d, {"class": 3, "cfg": 4.0, "seed": 7, "steps": 12, "n": 2})
                images.append([png_from_b64(i["b64"]) for i in body["images"]])
        check(images[0] == images[1], "%s: 1 and 2 threads gave different bytes" % name)


if __name__ == "__main__":
    sys.exit(run_test(TESTS))
