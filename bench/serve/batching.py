#!/usr/bin/python3
"""Continuous batching pays: the same requests sent by 8 concurrent clients vs one at a time.

    bench/serve/batching.py --ditd build/src/daemon/ditd --model models/fashion-dit \
        [--requests 16] [--steps 50] [--cfg 4] [--clients 8] [--max-batch 16] [--rounds 3]

Starts ditd on 127.0.0.1 with default workers/threads and the given row budget, sends the same
list of requests (class k % num_classes, seed k) sequentially, then from `clients` threads, and
prints images/s both ways and their ratio, for `rounds` alternating rounds and their median.
Each image's bytes must match across all runs.
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
    ap.add_argument("--rounds", type=int, default=3)
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

        def one_at_a_time():
            out = {}
            for k, r in enumerate(reqs):
                s, _, b = d.request("POST", "/generate", r, timeout=3600)
                assert s == 200, s
                out[k] = hashlib.sha256(b).hexdigest()
            return out

        def concurrent():
            out, todo, lock = {}, list(range(len(reqs))), threading.Lock()

            def client():
                while True:
                    with lock:
                        if not todo:
                            return
                        k = todo.pop(0)
                    s, _, b = d.request("POST", "/generate", reqs[k], timeout=3600)
                    assert s == 200, s
                    out[k] = hashlib.sha256(b).hexdigest()

            ts = [threading.Thread(target=client) for _ in range(a.clients)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            return out

        def timed(fn):
            cpu0, t0 = d.metrics()["process_cpu_seconds_total"], time.time()
            hashes = fn()
            return time.time() - t0, d.metrics()["process_cpu_seconds_total"] - cpu0, hashes

        # Rounds alternate the two ways so that a change in the machine's other load hits
        # both; the median ratio is the figure.
        print("model %s (%dpx), %d requests x %d steps, cfg %g, max_batch %d rows, %s x %s threads"
              % (info["model"]["name"], info["model"]["image_size"], a.requests, a.steps, a.cfg,
                 a.max_batch, info["compute"]["workers"], info["compute"]["threads"]))
        ratios, same = [], True
        first = None
        for r in range(a.rounds):
            t_seq, c_seq, h_seq = timed(one_at_a_time)
            t_par, c_par, h_par = timed(concurrent)
            first = first or h_seq
            same = same and h_seq == h_par == first
            ratios.append(t_seq / t_par)
            print("round %d: one at a time %.3f images/s, %d clients %.3f images/s: %.2fx; "
                  "daemon CPU s/image %.4f -> %.4f; cores busy %.2f -> %.2f"
                  % (r + 1, a.requests / t_seq, a.clients, a.requests / t_par, t_seq / t_par,
                     c_seq / a.requests, c_par / a.requests, c_seq / t_seq, c_par / t_par),
                  flush=True)
        m = d.metrics()
        print("speed-up (median of %d rounds): %.2fx" % (a.rounds, sorted(ratios)[len(ratios) // 2]))
        print("mean images per forward over all runs: %.2f"
              % (m["ditd_batch_size_sum"] / m["ditd_batch_size_count"]))
        print("identical bytes across all runs: %s" % same)
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
