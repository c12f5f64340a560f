#!/usr/bin/python3
"""Continuous batching pays: the same requests sent by 8 concurrent clients vs one at a time.

    bench/serve/batching.py --ditd build/src/daemon/ditd --model models/fashion-dit \
        [--requests 16] [--steps 50] [--cfg 4] [--clients 8] [--max-batch 16]

Starts ditd on 127.0.0.1 with default workers/threads and the given row budget, sends the same
list of requests (class k % num_classes, seed k) sequentially, then from `clients` threads, and
prints images/s both ways and their ratio. Each image's bytes must match across the two runs.
"""
import argparse
import hashlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "daemon"))
from harness import Daemon  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ditd", default="build/src/daemon/ditd")
    ap.add_argument("--model", default="models/fashion-dit")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    args = ["--max-batch", str(a.max_batch), "--log-level", "warn"]
    if a.workers:
        args += ["--workers", str(a.workers)]
    if a.threads:
        args += ["--threads", str(a.threads)]
    with Daemon(a.ditd, a.model, *args, start_timeout=300) as d:
        d.wait_ready(600)
        info = d.json("GET", "/info")[2]
        ncls = info["model"]["num_classes"]
        reqs = [{"class": k % ncls, "cfg": a.cfg, "steps": a.steps, "seed": k}
                for k in range(a.requests)]
        # warm-up
        d.request("POST", "/generate", dict(reqs[0], steps=2))

        seq = {}
        cpu0 = d.metrics()["process_cpu_seconds_total"]
        t0 = time.time()
        for k, r in enumerate(reqs):
            s, _, b = d.request("POST", "/generate", r, timeout=3600)
            assert s == 200, s
            seq[k] = hashlib.sha256(b).hexdigest()
        t_seq = time.time() - t0
        cpu1 = d.metrics()["process_cpu_seconds_total"]

        par = {}
        todo = list(range(len(reqs)))
        lock = threading.Lock()

        def client():
            while True:
                with lock:
                    if not todo:
                        return
                    k = todo.pop(0)
                s, _, b = d.request("POST", "/generate", reqs[k], timeout=3600)
                assert s == 200, s
                par[k] = hashlib.sha256(b).hexdigest()

        t0 = time.time()
        ts = [threading.Thread(target=client) for _ in range(a.clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        t_par = time.time() - t0
        m = d.metrics()
        cpu2 = m["process_cpu_seconds_total"]
        same = all(seq[k] == par[k] for k in seq)
        print("model %s (%dpx), %d requests x %d steps, cfg %g, max_batch %d rows, %s x %s threads"
              % (info["model"]["name"], info["model"]["image_size"], a.requests, a.steps, a.cfg,
                 a.max_batch, info["compute"]["workers"], info["compute"]["threads"]))
        print("one at a time : %.3f images/s (%.2f s)" % (a.requests / t_seq, t_seq))
        print("%d clients     : %.3f images/s (%.2f s)" % (a.clients, a.requests / t_par, t_par))
        print("speed-up      : %.2fx" % (t_seq / t_par))
        # CPU time is robust to other load on a shared machine (wall time is not).
        print("daemon CPU s per image: %.4f one at a time, %.4f with %d clients (%.2fx less)"
              % ((cpu1 - cpu0) / a.requests, (cpu2 - cpu1) / a.requests, a.clients,
                 (cpu1 - cpu0) / max(cpu2 - cpu1, 1e-9)))
        print("cores busy: %.2f one at a time, %.2f with %d clients"
              % ((cpu1 - cpu0) / t_seq, (cpu2 - cpu1) / t_par, a.clients))
        print("mean images per forward over both runs: %.2f"
              % (m["ditd_batch_size_sum"] / m["ditd_batch_size_count"]))
        print("identical bytes across the two runs: %s" % same)
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
