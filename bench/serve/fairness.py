#!/usr/bin/python3
"""Fairness: a small request's latency on an idle daemon, and while one client keeps the largest
allowed job (n = max_images, steps = max_steps) running.

    bench/serve/fairness.py --model models/fashion-dit [--requests 100] [--rounds 3]
        [--steps 50] [--cfg 4] [--max-batch 16]

Each round first sends `requests` small requests (n 1, `steps` steps, cfg `cfg`) one after the
other to the idle daemon, then starts a client that sends the largest job again and again
(POST /generate, n = max_images, steps = max_steps, as JSON) and, once its first forward has
run, sends the same small requests again. It prints p50 / p99 / max latency both ways and their
ratios, the large client's image-steps per second with and without the small requests beside
it (its share of the machine), and the load average. All small answers must be byte-identical
to the idle ones.
"""
import argparse
import hashlib
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "daemon"))
from harness import Daemon  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def smalls(d, a):
    lat, digests = [], []
    for k in range(a.requests):
        body = {"class": k % 10, "cfg": a.cfg, "steps": a.steps, "seed": k}
        t0 = time.time()
        s, _, png = d.request("POST", "/generate", body, timeout=3600)
        lat.append(time.time() - t0)
        assert s == 200, s
        digests.append(hashlib.sha256(png).hexdigest())
    return lat, digests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ditd", default="build/src/daemon/ditd")
    ap.add_argument("--model", default="models/fashion-dit")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--extra", default="", help="more ditd flags, space-separated")
    a = ap.parse_args()
    args = ["--max-batch", str(a.max_batch), "--log-level", "warn"] + a.extra.split()
    with Daemon(a.ditd, a.model, *args, start_timeout=300) as d:
        d.wait_ready(600)
        info = d.json("GET", "/info")[2]
        lim = info["limits"]
        big = {"class": 1, "cfg": a.cfg, "steps": lim["max_steps"], "n": lim["max_images"],
               "seed": 99}
        d.request("POST", "/generate", {"class": 0, "cfg": a.cfg, "steps": 2})
        print("model %s (%d px); small: n 1, %d steps, cfg %g; large: n %d, %d steps; "
              "max_batch %d rows" % (info["model"]["name"], info["model"]["image_size"], a.steps,
                                     a.cfg, big["n"], big["steps"], a.max_batch), flush=True)
        rows = []
        for r in range(a.rounds):
            la0 = os.getloadavg()[0]
            idle, ref = smalls(d, a)
            stop = threading.Event()
            bigs = []

            def large():
                while not stop.is_set():
                    t0 = time.time()
                    s, _, _ = d.request("POST", "/generate", big, {"Accept": "application/json"},
                                        timeout=36000)
                    assert s == 200, s
                    bigs.append((t0, time.time()))

            t = threading.Thread(target=large)
            steps0 = d.metrics()["ditd_denoise_steps_total"]
            t.start()
            while d.metrics()["ditd_denoise_steps_total"] == steps0:
                time.sleep(0.01)
            # The large job alone for a moment: its own rate.
            m0, t0 = d.metrics()["ditd_denoise_steps_total"], time.time()
            time.sleep(1.0)
            alone_rate = (d.metrics()["ditd_denoise_steps_total"] - m0) / (time.time() - t0)
            m0, t0 = d.metrics()["ditd_denoise_steps_total"], time.time()
            loaded, got = smalls(d, a)
            both_rate = (d.metrics()["ditd_denoise_steps_total"] - m0) / (time.time() - t0)
            stop.set()
            t.join()
            assert got == ref, "answers differ beside the large job"
            row = {"round": r + 1,
                   "idle_ms": {"p50": 1e3 * pct(idle, 50), "p99": 1e3 * pct(idle, 99),
                               "max": 1e3 * max(idle)},
                   "loaded_ms": {"p50": 1e3 * pct(loaded, 50), "p99": 1e3 * pct(loaded, 99),
                                 "max": 1e3 * max(loaded)},
                   "ratio_p50": pct(loaded, 50) / pct(idle, 50),
                   "ratio_p99": pct(loaded, 99) / pct(idle, 99),
                   "large_image_steps_per_s": {"alone": round(alone_rate, 1),
                                               "with_small": round(both_rate, 1)},
                   "large_jobs_finished": len(bigs),
                   "loadavg": [round(la0, 2), round(os.getloadavg()[0], 2)]}
            for k in ("idle_ms", "loaded_ms"):
                row[k] = {x: round(v, 1) for x, v in row[k].items()}
            row["ratio_p50"] = round(row["ratio_p50"], 2)
            row["ratio_p99"] = round(row["ratio_p99"], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
        med = sorted(rows, key=lambda x: x["ratio_p99"])[len(rows) // 2]
        print("median round by p99 ratio: p50 %.2fx, p99 %.2fx (loaded / idle)"
              % (med["ratio_p50"], med["ratio_p99"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
