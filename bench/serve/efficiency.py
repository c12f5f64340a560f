#!/usr/bin/python3
"""What the serving layer costs: images/s of ditd under `clients` concurrent clients against the
images/s that `dit bench` gives for the same model, steps and best batch.

    bench/serve/efficiency.py --model models/fashion-dit [--steps 50] [--cfg 4] [--clients 8]
        [--max-batch 0] [--seconds 20] [--rounds 3] [--batches 2,4,8,16]
    bench/serve/efficiency.py --model /tmp/dit-s2-256 --write-config S/2 --image-size 256 ...

With --write-config the model directory is first written, if it does not exist, with random
weights by bench/torch_vs_ditd.py's writer (PyTorch: run with /usr/bin/python3): the paper's
configuration at that image size, 1000 classes, and the small VAE that script uses (the
benchmark is about the serving layer, and a full SD VAE would add the same decode time to
every image both ways). Keep such models out of the repository (e.g. under /tmp).

Each round runs `dit bench --model M --batch B,... --json` (the DiT forward alone, in its own
process, with the daemon idle), takes the best batch's images/s = (B / rows per image) /
(steps x ms per forward), then lets `clients` connections send POST /generate (cfg, steps,
seeds 1, 2, 3, ...) back to back and counts images/s as the image-steps done (the daemon's
ditd_denoise_steps_total) in a window of `seconds` that starts `margin` seconds after the
clients, over the steps per image. The figure is exact to one forward pass at each end of the
window: make the window long against a forward. The clients are wrk's (one
thread, a Lua script for the bodies) when wrk is installed, else Python threads (--client);
the load generator shares the 2 cores with the daemon, and Python's costs several times wrk's
CPU per request, which the daemon's compute threads then lose. Rounds alternate the two so a
change in the machine's other load hits both; the ratio of each round and their median are
printed, with where the daemon's time went (forwards, VAE decode, PNG encode, the rest) from its
own metrics, and the load average.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "daemon"))
from harness import Daemon  # noqa: E402
sys.path.insert(0, os.path.join(HERE, ".."))
from torch_vs_ditd import cpu_name, write_model  # noqa: E402


def engine(a, rows_per_image):
    out = subprocess.run([a.dit, "bench", "--model", a.model, "--batch", a.batches,
                          "--iterations", str(a.iterations), "--json"],
                         capture_output=True, text=True, check=True)
    res = json.loads(out.stdout)["results"]
    best = None
    for r in res:
        ips = (r["batch"] / rows_per_image) * 1000.0 / (r["ms_per_forward"] * a.steps)
        if best is None or ips > best[1]:
            best = (r["batch"], ips, r["ms_per_forward"])
    return best, res


WRK_SCRIPT = r"""
-- POST /generate with a new seed each time (bench/serve/efficiency.py).
local n, cfg, steps = 0, 4, 50
function init(args)
  cfg, steps = args[1], args[2]
  n = tonumber(args[3]) * 1000000
end
request = function()
  n = n + 1
  return wrk.format("POST", "/generate", {["Content-Type"] = "application/json"},
    string.format('{"class":%d,"cfg":%s,"steps":%s,"seed":%d}', n % 10, cfg, steps, n))
end
"""


def serve_wrk(d, a, rnd):
    """`clients` wrk connections; the daemon's counters are read `margin` seconds after they
    start and `seconds` later, so the window holds neither the ramp-up nor the cancellations
    when wrk leaves. Returns (answers in the whole run, window seconds, metrics delta)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT)
    wrk = subprocess.Popen(["wrk", "-t1", "-c%d" % a.clients,
                            "-d%ds" % int(a.seconds + 2 * a.margin), "--timeout", "120s",
                            "-s", f.name, "http://127.0.0.1:%d/generate" % d.port, "--",
                            str(a.cfg), str(a.steps), str(rnd)],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(a.margin)
    m0, t0 = d.metrics(), time.time()
    time.sleep(a.seconds)
    m1, t1 = d.metrics(), time.time()
    out = wrk.communicate()[0]
    os.unlink(f.name)
    if wrk.returncode != 0 or "Non-2xx" in out:
        raise RuntimeError("wrk failed or saw errors:\n" + out)
    n = int(re.search(r"(\d+) requests in", out).group(1))
    delta = {k: m1[k] - m0.get(k, 0) for k in m1 if not k.endswith("_bucket")}
    return n, t1 - t0, delta


def serve(d, a, seed0):
    """`clients` closed-loop clients for a.seconds; returns (images, seconds, metrics delta)."""
    stop = time.time() + a.seconds
    done, lock = [], threading.Lock()
    seeds = iter(range(seed0, seed0 + 10 ** 6))

    def client():
        while time.time() < stop:
            with lock:
                seed = next(seeds)
            body = {"class": seed % 10, "cfg": a.cfg, "steps": a.steps, "seed": seed}
            s, _, png = d.request("POST", "/generate", body, timeout=3600)
            assert s == 200, s
            with lock:
                done.append(time.time())

    m0 = d.metrics()
    t0 = time.time()
    ts = [threading.Thread(target=client) for _ in range(a.clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = max(done) - t0
    m1 = d.metrics()
    delta = {k: m1[k] - m0.get(k, 0) for k in m1 if not k.endswith("_bucket")}
    return len(done), wall, delta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ditd", default="build/src/daemon/ditd")
    ap.add_argument("--dit", default="build/src/cli/dit")
    ap.add_argument("--model", default="models/fashion-dit")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-batch", type=int, default=0,
                    help="the daemon's row budget; 0 = the engine's best batch (what an operator "
                         "would configure)")
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--margin", type=float, default=5,
                    help="wrk runs this long before and after the measured window")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", default="2,4,8,16")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--extra", default="", help="more ditd flags, space-separated")
    ap.add_argument("--client", choices=["wrk", "python"],
                    default="wrk" if shutil.which("wrk") else "python")
    ap.add_argument("--write-config", help="write a random-weight model of this configuration "
                    "(e.g. S/2) to --model first, unless it exists")
    ap.add_argument("--image-size", type=int, default=256)
    a = ap.parse_args()
    rows = 2 if a.cfg > 1 else 1
    if a.write_config and not os.path.isdir(a.model):
        write_model(a.model, a.write_config, a.image_size)
    if a.max_batch == 0:
        a.max_batch = engine(a, rows)[0][0]
    args = ["--max-batch", str(a.max_batch), "--log-level", "warn"] + a.extra.split()
    with Daemon(a.ditd, a.model, *args, start_timeout=300) as d:
        d.wait_ready(600)
        info = d.json("GET", "/info")[2]
        d.request("POST", "/generate", {"class": 0, "cfg": a.cfg, "steps": 2})
        print("model %s (%d px), %d steps, cfg %g, %d %s clients, max_batch %d rows, %d worker(s)"
              " x %d threads, CPU: %s" % (info["model"]["name"], info["model"]["image_size"],
                                       a.steps, a.cfg, a.clients, a.client, a.max_batch,
                                       info["compute"]["workers"], info["compute"]["threads"],
                                       cpu_name()), flush=True)
        ratios = []
        seed = 0
        for r in range(a.rounds):
            la0 = os.getloadavg()[0]
            (b, eng, ms), res = engine(a, rows)
            same = [(row["batch"] / rows) * 1000.0 / (row["ms_per_forward"] * a.steps)
                    for row in res if row["batch"] == a.max_batch]
            if a.client == "wrk":
                n, wall, m = serve_wrk(d, a, r + 1)
            else:
                n, wall, m = serve(d, a, seed)
            seed += n
            # Image-steps done in the window, not answers: with clients in step, answers come
            # in bursts of `clients`, and counting them would round the window to whole bursts.
            ips = m["ditd_denoise_steps_total"] / a.steps / wall
            ratios.append(ips / eng)
            fw = m["ditd_forward_duration_seconds_sum"]
            dec = m["ditd_vae_decode_duration_seconds_sum"]
            enc = m["ditd_png_encode_duration_seconds_sum"]
            nf = m["ditd_forward_duration_seconds_count"]
            print(json.dumps({
                "round": r + 1, "engine_best_batch": b, "engine_ms_per_forward": ms,
                "engine_images_per_s": round(eng, 3), "daemon_answers": n,
                "daemon_seconds": round(wall, 2), "daemon_images_per_s": round(ips, 3),
                "ratio": round(ips / eng, 3),
                "ratio_same_batch": round(ips / same[0], 3) if same else None,
                "daemon_mean_images_per_forward": round(m["ditd_batch_size_sum"] /
                                                        max(1, m["ditd_batch_size_count"]), 2),
                "daemon_ms_per_forward": round(1000 * fw / max(1, nf), 3),
                "share_forward": round(fw / wall, 3), "share_decode": round(dec / wall, 3),
                "share_encode": round(enc / wall, 3),
                "share_rest": round(1 - (fw + dec + enc) / wall, 3),
                "daemon_cpu_cores": round(m["process_cpu_seconds_total"] / wall, 2),
                "loadavg": [round(la0, 2), round(os.getloadavg()[0], 2)]}), flush=True)
        ratios.sort()
        print("daemon / engine images per second, median of %d rounds: %.3f (rounds: %s)"
              % (a.rounds, ratios[len(ratios) // 2], ", ".join("%.3f" % x for x in ratios)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
