#!/usr/bin/python3
"""Integration tests: start the real ditd on 127.0.0.1 with a tiny model and check what the
issue asks the daemon to show. One test per run (meson runs them in parallel):

    test_integration.py --ditd build/src/daemon/ditd --workdir build/tests/daemon/work NAME

Stdlib only, plus curl for the one test that runs the exact curl line of the README.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import SLOW, Daemon, check, is_png, png_from_b64, registry, run_test, sse_events

DELAY = {"DITD_TEST_STEP_DELAY_MS": "20"}
TESTS, test = registry()


def generate(d, body, headers=None):
    s, h, b = d.request("POST", "/generate", body, headers)
    check(s == 200, "generate %s -> %d %s" % (body, s, b[:300]))
    return h, b


@test
def curl_png(a):
    """The mission's curl line returns a PNG."""
    with Daemon(a.ditd, a.model) as d:
        d.wait_ready()
        out = subprocess.run(["curl", "-s", "-X", "POST", "localhost:%d/generate" % d.port,
                              "-d", '{"class":1,"cfg":4.0}'], capture_output=True, timeout=60)
        check(out.returncode == 0, "curl failed: %s" % out.stderr)
        check(is_png(out.stdout), "not a PNG: %r" % out.stdout[:40])
        s, h, b = d.request("POST", "/generate", {"class": "trouser", "cfg": 4.0, "seed": 3})
        check(s == 200 and h["content-type"] == "image/png", "class by name")
        check(h["x-seed"] == "3" and len(h["x-request-id"]) == 16, "headers %s" % h)
        check("sample;dur=" in h["server-timing"], "timings header")


@test
def stream_equals_plain(a):
    """Streamed and plain answers carry byte-identical images; same seed, same bytes."""
    with Daemon(a.ditd, a.model) as d:
        d.wait_ready()
        req = {"class": 2, "cfg": 3.0, "seed": 1234, "steps": 20}
        _, plain = generate(d, req)
        _, again = generate(d, req)
        check(plain == again, "same seed twice gave different bytes")
        _, other = generate(d, dict(req, seed=1235))
        check(plain != other, "different seeds gave the same image")
        c = d.conn()
        c.request("POST", "/generate", json.dumps(dict(req, stream=True, preview=5)))
        r = c.getresponse()
        check(r.status == 200 and r.getheader("Content-Type") == "text/event-stream", "stream")
        names, ids, image = [], [], None
        for eid, name, data in sse_events(r):
            names.append(name)
            ids.append(int(eid))
            if name == "image":
                image = png_from_b64(data["b64"])
                check(data["seed"] == 1234 and data["index"] == 0, "image event %s" % data)
        c.close()
        check(names[0] == "queued" and names[-1] == "done", "events %s" % names)
        check("started" in names and "progress" in names and "preview" in names, str(names))
        check(ids == list(range(1, len(ids) + 1)), "ids %s" % ids)
        check(image == plain, "streamed image differs from the plain one")
        # Accept: text/event-stream works too, and n > 1 answers JSON.
        c = d.conn()
        c.request("POST", "/generate", json.dumps(req), {"Accept": "text/event-stream"})
        r = c.getresponse()
        evs = [n for _, n, _ in sse_events(r)]
        c.close()
        check(evs[-1] == "done", "accept stream")
        s, h, body = d.json("POST", "/generate", dict(req, n=3))
        check(s == 200 and len(body["images"]) == 3, "n=3")
        check(png_from_b64(body["images"][0]["b64"]) == plain, "image 0 of n=3 equals n=1")
        check(png_from_b64(body["images"][1]["b64"]) != plain, "image 1 differs from image 0")


@test
def cobatch_identical(a):
    """A request alone and co-batched with seven others gives the same bytes."""
    with Daemon(a.ditd, a.model, "--max-batch", "16", env={"DITD_TEST_STEP_DELAY_MS": "5"}) as d:
        d.wait_ready()
        req = {"class": 5, "cfg": 4.0, "seed": 99, "steps": 30}
        h, alone = generate(d, req, {"Accept": "application/json"})
        alone_body = json.loads(alone)
        check(alone_body["timings"]["batch_size_mean"] == 1.0, "alone batch size")
        results = {}

        def run(i, body):
            results[i] = d.json("POST", "/generate", body, {"Accept": "application/json"})

        others = [{"class": i, "cfg": 1.0 + i, "seed": 1000 + i, "steps": 20 + 3 * i,
                   "sampler": ["ddpm", "ddim", "dpm++2m"][i % 3]} for i in range(7)]
        ts = [threading.Thread(target=run, args=(i, b)) for i, b in enumerate([req] + others)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        s, _, body = results[0]
        check(s == 200, "co-batched request failed")
        check(body["timings"]["batch_size_mean"] > 1.5,
              "not co-batched: mean batch %s" % body["timings"]["batch_size_mean"])
        check(body["images"][0]["b64"] == alone_body["images"][0]["b64"],
              "co-batched image differs from the same request alone")
        m = d.metrics()
        check(m["ditd_batch_size_sum"] / m["ditd_batch_size_count"] > 1.5, "batch metric")
    # Two workers with one BLAS thread each: still the same bytes, alone or not.
    with Daemon(a.ditd, a.model, "--workers", "2", "--max-batch", "16") as d:
        d.wait_ready()
        check(d.json("GET", "/info")[2]["compute"]["threads"] == 1, "workers > 1 force 1 thread")
        res = {}
        ts = [threading.Thread(target=lambda i=i: res.__setitem__(i, d.json(
            "POST", "/generate", req if i == 0 else dict(req, seed=i), {"Accept": "application/json"})))
            for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        check(res[0][2]["images"][0]["b64"] == alone_body["images"][0]["b64"],
              "2 workers gave other bytes than 1 worker")


@test
def cancel_within_step(a):
    """DELETE /jobs/{id} stops a running job within one step."""
    with Daemon(a.ditd, a.model, env={"DITD_TEST_STEP_DELAY_MS": "50"}) as d:
        d.wait_ready()
        s, h, job = d.json("POST", "/jobs", {"class": 1, "steps": 1000})
        check(s == 202 and h["location"] == "/jobs/" + job["id"], "202 + Location")
        deadline = time.time() + 10
        while time.time() < deadline:
            _, _, j = d.json("GET", h["location"])
            if j["progress"]["step"] >= 3:
                break
            time.sleep(0.02)
        t0 = time.time()
        s, _, j = d.json("DELETE", h["location"])
        at_delete = j["progress"]["step"]
        check(s == 200, "delete -> %d" % s)
        while time.time() < t0 + 5:
            _, _, j = d.json("GET", h["location"])
            if j["status"] == "cancelled":
                break
            time.sleep(0.01)
        took = time.time() - t0
        check(j["status"] == "cancelled" and j["reason"] == "client", "status %s" % j)
        check(j["progress"]["step"] <= at_delete + 1,
              "ran %d steps after DELETE" % (j["progress"]["step"] - at_delete))
        # The step count above is the real test; this bounds the wall time on a busy machine.
        check(took < 2.0, "cancel took %.3f s with 50 ms steps" % took)
        steps = d.metrics()["ditd_denoise_steps_total"]
        time.sleep(0.3)
        check(d.metrics()["ditd_denoise_steps_total"] == steps, "steps still running")
        s, _, _ = d.json("DELETE", h["location"])
        check(s == 409, "second DELETE -> %d" % s)


@test
def queue_429(a):
    """The queue answers 429 at exactly its limit plus one."""
    with Daemon(a.ditd, a.model, "--max-queue", "3", "--max-batch", "2", env=DELAY) as d:
        d.wait_ready()
        s, h, first = d.json("POST", "/jobs", {"class": 1, "steps": 500})
        check(s == 202, "first")
        deadline = time.time() + 10
        while d.json("GET", h["location"])[2]["status"] != "running" and time.time() < deadline:
            time.sleep(0.02)
        for i in range(3):
            s, _, j = d.json("POST", "/jobs", {"class": 1, "steps": 500})
            check(s == 202 and j["queue_position"] == i, "queued %d: %d %s" % (i, s, j))
        s, h, b = d.json("POST", "/jobs", {"class": 1, "steps": 500})
        check(s == 429, "limit+1 -> %d" % s)
        check(b["error"]["type"] == "overloaded" and int(h["retry-after"]) >= 1, "429 body %s" % b)
        s, _, _ = d.request("POST", "/generate", {"class": 1})
        check(s == 429, "generate at limit -> %d" % s)
        m = d.metrics()
        check(m['ditd_jobs_rejected_total{reason="queue_full"}'] == 2, "rejected metric")
        check(m["ditd_queue_depth"] == 3, "queue depth %s" % m["ditd_queue_depth"])


@test
def disconnect_frees_slot(a):
    """A client that leaves mid-stream (or while waiting) cancels its job within a step."""
    with Daemon(a.ditd, a.model, env={"DITD_TEST_STEP_DELAY_MS": "30"}) as d:
        d.wait_ready()
        for stream in (True, False):
            sock = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            body = json.dumps({"class": 1, "steps": 1000, "stream": stream})
            sock.sendall(("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                          % (len(body), body)).encode())
            if stream:
                got = b""
                while got.count(b"event: progress") < 3:
                    got += sock.recv(4096)
            else:
                deadline = time.time() + 10
                while d.metrics()["ditd_images_running"] < 1 and time.time() < deadline:
                    time.sleep(0.02)
            sock.close()
            deadline = time.time() + 3
            while time.time() < deadline:
                m = d.metrics()
                if m["ditd_images_running"] == 0 and m["ditd_workers_busy"] == 0:
                    break
                time.sleep(0.02)
            check(m["ditd_images_running"] == 0, "slot still busy (stream=%s)" % stream)
        check(m['ditd_jobs_cancelled_total{reason="disconnect"}'] == 2, "cancel reason")
        check(m["ditd_stream_clients"] == 0, "stream gauge")


@test
def sigterm_drains(a):
    """SIGTERM with work in flight: the listener stays open, readiness turns 503 "draining" (live
    stays 200), new work gets 503 + Retry-After in the JSON envelope, the in-flight requests
    finish with 200, then the listener closes and the daemon exits 0."""
    with Daemon(a.ditd, a.model, "--drain-timeout", str(20 * SLOW), env=DELAY) as d:
        d.wait_ready()
        results = []

        def run(i):
            results.append(d.request("POST", "/generate", {"class": i, "steps": 60, "seed": i}))

        ts = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            m = d.metrics()
            if m["ditd_jobs_received_total"] == 4 and m["ditd_jobs_running"] >= 1:
                break
            time.sleep(0.01)
        d.signal(signal.SIGTERM)
        # Until the work is done, health answers and new work is refused politely.
        deadline = time.time() + 5
        while time.time() < deadline:
            s, h, b = d.request("GET", "/health/ready", timeout=5)
            if s == 503:
                break
            time.sleep(0.01)
        check(s == 503 and json.loads(b)["status"] == "draining" and int(h["retry-after"]) >= 1,
              "readiness while draining: %d %s %s" % (s, h, b))
        check(d.request("GET", "/health/live", timeout=5)[0] == 200, "liveness while draining")
        for path in ("/generate", "/jobs"):
            s, h, b = d.json("POST", path, {"class": 1, "steps": 2}, timeout=5)
            check(s == 503 and b["error"]["type"] == "unavailable_error" and
                  int(h["retry-after"]) >= 1, "new work while draining: %d %s %s" % (s, h, b))
        check(len(results) < 4, "the in-flight work ended before the checks; slow the steps")
        m = d.metrics()
        check(m["ditd_draining"] == 1 and m["ditd_ready"] == 0, "draining gauges")
        check(m['ditd_jobs_rejected_total{reason="draining"}'] == 2, "draining rejections")
        for t in ts:
            t.join(60 * SLOW)
        rc = d.wait_exit(30)
        check(rc == 0, "exit code %s" % rc)
        check(len(results) == 4 and all(r[0] == 200 and is_png(r[2]) for r in results),
              "in-flight answers: %s" % [r[0] for r in results])
        check("draining" in d.logs() and "stopped" in d.logs(), "log")
        refused = False
        try:
            d.request("GET", "/health/live", timeout=2)
        except OSError:
            refused = True
        check(refused, "connections accepted after the exit")


@test
def sigterm_timeout_cancels(a):
    """Work that outlives drain_timeout is cancelled with 503 and the daemon exits 0."""
    with Daemon(a.ditd, a.model, "--drain-timeout", "1", env={"DITD_TEST_STEP_DELAY_MS": "50"}) as d:
        d.wait_ready()
        res = []
        t = threading.Thread(target=lambda: res.append(
            d.request("POST", "/generate", {"class": 1, "steps": 1000})))
        t.start()
        while d.metrics()["ditd_jobs_running"] < 1:
            time.sleep(0.01)
        t0 = time.time()
        d.signal(signal.SIGTERM)
        t.join(30)
        rc = d.wait_exit(30)
        check(rc == 0 and time.time() - t0 < 5, "exit %s after %.1f s" % (rc, time.time() - t0))
        check(res and res[0][0] == 503, "cancelled answer: %s" % (res[0][:2],))


@test
def metrics_add_up(a):
    """After a load run the metrics equal what the clients counted; promtool accepts them."""
    with Daemon(a.ditd, a.model, "--max-queue", "2", "--max-batch", "4",
                env={"DITD_TEST_STEP_DELAY_MS": "2"}) as d:
        d.wait_ready()
        counts = {}
        lock = threading.Lock()

        def client(i):
            for k in range(12):
                body = {"class": (i + k) % 10, "steps": 10, "seed": k}
                if k % 5 == 4:
                    body["cfg"] = -1           # a 400
                s, _, _ = d.request("POST", "/generate", body)
                with lock:
                    counts[s] = counts.get(s, 0) + 1

        ts = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        m = d.metrics()
        total = sum(counts.values())
        check(total == 96, "answers %s" % counts)
        check(counts.get(429, 0) > 0, "the load never hit the queue limit: %s" % counts)
        check(m['ditd_jobs_received_total'] == total, "received %s" % m['ditd_jobs_received_total'])
        check(m['ditd_jobs_total{outcome="completed"}'] == counts.get(200, 0), "completed")
        check(m['ditd_jobs_total{outcome="rejected"}'] == counts.get(429, 0) + counts.get(400, 0),
              "rejected")
        check(m['ditd_jobs_rejected_total{reason="queue_full"}'] == counts.get(429, 0), "queue_full")
        check(m['ditd_jobs_rejected_total{reason="invalid"}'] == counts.get(400, 0), "invalid")
        for code in (200, 400, 429):
            key = 'ditd_http_requests_total{endpoint="generate",code="%d"}' % code
            check(m.get(key, 0) == counts.get(code, 0), key)
        check(m["ditd_images_generated_total"] == counts.get(200, 0), "images")
        check(m["ditd_queue_depth"] == 0 and m["ditd_jobs_running"] == 0, "idle gauges")
        promtool = shutil.which("promtool")
        if promtool:
            _, _, page = d.request("GET", "/metrics")
            out = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True,
                                 timeout=30)
            check(out.returncode == 0, "promtool: %s %s" % (out.stdout, out.stderr))


@test
def validation_and_framing(a):
    """Field-level 400s, 413 before the body, framing the app must refuse, 404/405."""
    # A short drain: a POST /jobs result below is never fetched, and under valgrind the daemon
    # stops with SIGTERM, whose drain would wait drain_timeout for it.
    with Daemon(a.ditd, a.model, "--max-body", "1k", "--http-memory", "8k",
                "--drain-timeout", "2") as d:
        d.wait_ready()
        bad = [({"class": 1.5}, "class"), ({"class": 1, "cfg": -1}, "cfg"),
               ({"class": 1, "cfg": "inf"}, "cfg"), ({"class": 1, "sampler": "euler"}, "sampler"),
               ({"class": 99}, "class"), ({"class": 1, "steps": 0}, "steps"),
               ({"class": 1, "n": 100}, "n"), ({"class": 1, "bogus": 1}, "bogus"),
               ({"cfg": 4}, "class")]
        for body, field in bad:
            s, _, b = d.json("POST", "/generate", body)
            check(s == 400 and b["error"]["param"] == field, "%s -> %d %s" % (body, s, b))
            check(b["error"]["type"] == "invalid_request_error", "type")
        s, _, b = d.json("POST", "/generate", '{"class":1,"cfg":NaN}')
        check(s == 400, "NaN -> %d" % s)
        s, _, b = d.json("POST", "/generate", "x" * 2000)
        check(s == 413 and b["error"]["type"] == "payload_too_large", "413 %d" % s)

        def raw(head, body=b""):
            sock = socket.create_connection(("127.0.0.1", d.port), timeout=5 * SLOW)
            sock.sendall(head.encode() + body)
            data = sock.recv(65536)
            sock.close()
            return int(data.split(b" ", 2)[1])

        t0 = time.time()
        check(raw("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n") == 413,
              "CL over cap")
        check(time.time() - t0 < 2, "413 waited for the body")
        check(raw("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
                  "Content-Length: 5\r\n\r\n", b'{"class":1}') == 400, "duplicate CL")
        check(raw("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n", b'{"class":1}') == 400, "CL + TE")
        check(raw("POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n") == 501,
              "TE gzip")
        check(raw("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data\r\n"
                  "Content-Length: 11\r\n\r\n", b'{"class":1}') == 415, "415")
        check(raw("POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "b\r\n{\"class\":1}\r\n0\r\n\r\n") == 200, "chunked body")
        # A chunked body has no length to refuse up front: 413 once it ends (was a bare close).
        check(raw("POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "800\r\n" + " " * 2048 + "\r\n0\r\n\r\n") == 413, "chunked body over the cap")
        # Over http_memory: the JSON envelope, not libmicrohttpd's HTML page (its buffer is
        # 4 x http_memory; below that ditd answers itself).
        for size in (7000, 12000, 20000):
            s, h, b = d.json("GET", "/health/live", headers={"X-Big": "b" * size})
            want = 200 if size < 8192 else 431
            check(s == want, "%d-byte header -> %d %s" % (size, s, b))
            if s != 200:
                check(h["content-type"] == "application/json" and
                      b["error"]["type"] == "invalid_request_error" and
                      "http_memory" in b["error"]["message"], "431 envelope %s %s" % (h, b))
        s, h, b = d.json("GET", "/health/live?" + "q" * 12000)
        check(s == 414 and b["error"]["type"] == "invalid_request_error", "414 %d %s" % (s, b))
        s, h, b = d.json("POST", "/generate", {"class": 1}, {"Cookie": "c" * 9000})
        check(s == 431 and "http_memory" in b["error"]["message"], "431 on POST %d %s" % (s, b))
        check(d.request("GET", "/nope")[0] == 404, "404")
        # Client bytes that are not UTF-8 quoted in a message (was 500 "out of memory":
        # jansson refused the string), and names cut inside a character.
        check(raw("", b"GET /nope\xff HTTP/1.1\r\nHost: x\r\n\r\n") == 404, "non-UTF-8 URL")
        s, _, b = d.json("POST", "/generate", b'{"class":1}', {"Content-Type": "text/\xe9"})
        check(s == 415 and b["error"]["type"] == "invalid_request_error", "415 %d %s" % (s, b))
        s, _, b = d.json("POST", "/generate", json.dumps({"x" + "\u00e9" * 40: 1}).encode())
        check(s == 400 and b["error"]["param"].startswith("x\u00e9"), "cut field %d %s" % (s, b))
        s, h, _ = d.request("GET", "/generate")
        check(s == 405 and h["allow"] == "POST", "405")
        check(d.request("GET", "/jobs/0123456789abcdef")[0] == 404, "unknown job")
        s, _, info = d.json("GET", "/info")
        check(s == 200 and info["model"]["num_classes"] == 10, "info")
        check(info["limits"]["max_body"] == 1024 and info["defaults"]["cfg"] == 4.0, "info limits")
        s, _, cl = d.json("GET", "/classes")
        check(cl["classes"][7]["name"] == "sneaker", "classes")
        check(cl["classes"][0]["names"] == ["tshirt", "top"] and
              all(c["names"][0] == c["name"] for c in cl["classes"]), "synonyms %s" % cl)
        # Every listed name is accepted, in any case, for its own class; sampler and spacing
        # names are case-insensitive too and come back in their canonical spelling.
        for c in cl["classes"]:
            for name in c["names"]:
                s, _, b = d.json("POST", "/generate", {"class": name.upper(), "steps": 1,
                                                       "sampler": "DDIM", "spacing": "Uniform"},
                                 {"Accept": "application/json"})
                check(s == 200 and b["class"] == c["id"], "%s -> %d %s" % (name, s, b))
        s, _, j = d.json("POST", "/jobs", {"class": 0, "steps": 2, "sampler": "DPM++2M",
                                           "spacing": "DDIM"})
        check(s == 202 and j["request"]["sampler"] == "dpm++2m" and
              j["request"]["spacing"] == "ddim", "canonical names %s" % j)


@test
def auth_and_cors(a):
    """API keys (Bearer, constant-time compare), public health and metrics, CORS allow-list."""
    with Daemon(a.ditd, a.model, "--api-keys", "k1,secret-two",
                "--cors-origins", "https://ui.example") as d:
        d.wait_ready()
        s, h, b = d.json("POST", "/generate", {"class": 1})
        check(s == 401 and b["error"]["type"] == "authentication_error", "no key")
        check(h.get("www-authenticate") == "Bearer", "challenge")
        check(d.request("POST", "/generate", {"class": 1},
                        {"Authorization": "Bearer secret-twO"})[0] == 401, "wrong key")
        check(d.request("POST", "/generate", {"class": 1},
                        {"Authorization": "Bearer secret-two"})[0] == 200, "right key")
        check(d.request("POST", "/generate", {"class": 1}, {"X-Api-Key": "k1"})[0] == 200, "x-api-key")
        check(d.request("GET", "/health/live")[0] == 200, "health public")
        check(d.request("GET", "/metrics")[0] == 200, "metrics public")
        check(d.request("GET", "/info")[0] == 401, "info private")
        s, h, _ = d.request("OPTIONS", "/generate", None, {"Origin": "https://ui.example",
                                                           "Access-Control-Request-Method": "POST"})
        check(s == 204 and h["access-control-allow-origin"] == "https://ui.example", "preflight")
        allowed = [x.strip() for x in h["access-control-allow-headers"].split(",")]
        check("Authorization" in allowed and "*" in allowed, "allowed headers %s" % allowed)
        s, h, _ = d.request("GET", "/health/live", None, {"Origin": "https://evil.example"})
        check("access-control-allow-origin" not in h, "origin not allowed")
        m = d.metrics()
        check(m['ditd_jobs_rejected_total{reason="unauthorized"}'] == 2, "unauthorized count")


@test
def jobs_api(a):
    """Jobs: 202 + Location, events resumable with Last-Event-ID, images, TTL then 410."""
    with Daemon(a.ditd, a.model, "--job-ttl", "1") as d:
        d.wait_ready()
        s, h, j = d.json("POST", "/jobs", {"class": 3, "n": 2, "steps": 10, "seed": 8})
        check(s == 202, "202")
        loc = h["location"]
        c = d.conn()
        c.request("GET", loc + "/events")
        evs = list(sse_events(c.getresponse()))
        c.close()
        check(evs[-1][1] == "done" and sum(1 for e in evs if e[1] == "image") == 2, "events")
        c = d.conn()
        c.request("GET", loc + "/events", headers={"Last-Event-ID": evs[-3][0]})
        tail = list(sse_events(c.getresponse()))
        c.close()
        check([e[0] for e in tail] == [e[0] for e in evs[-2:]], "resume after %s" % evs[-3][0])
        s, _, j = d.json("GET", loc)
        check(j["status"] == "completed" and len(j["images"]) == 2, "job %s" % j)
        s, h, png = d.request("GET", j["images"][1]["url"])
        check(s == 200 and is_png(png) and h["x-seed"] == "8", "image 1")
        image_event = [e for e in evs if e[1] == "image" and e[2]["index"] == 1][0]
        check(png_from_b64(image_event[2]["b64"]) == png, "event image == url image")
        check(d.request("GET", loc + "/images/2.png")[0] == 404, "image 2 of 2")
        deadline = time.time() + 5
        while time.time() < deadline and d.request("GET", loc)[0] != 410:
            time.sleep(0.1)
        check(d.request("GET", loc)[0] == 410, "expired job should be 410")


@test
def idempotent_jobs(a):
    """POST /jobs with an Idempotency-Key: a repeat gets the same job (200, Idempotent-Replayed),
    another body 422, keys scoped per API key, released when the job expires (job_ttl)."""
    # drain_timeout 2: the results are never fetched (valgrind stops the daemon with SIGTERM).
    with Daemon(a.ditd, a.model, "--job-ttl", "1", "--api-keys", "alice,bob",
                "--drain-timeout", "2") as d:
        d.wait_ready()
        alice = {"Authorization": "Bearer alice", "Idempotency-Key": "req-1"}
        body = {"class": 3, "steps": 5, "seed": 8}
        s, h, j1 = d.json("POST", "/jobs", body, alice)
        check(s == 202 and "idempotent-replayed" not in h, "first: %d %s" % (s, h))
        s, h2, j2 = d.json("POST", "/jobs", body, alice)
        check(s == 200 and h2.get("idempotent-replayed") == "true", "repeat: %d %s" % (s, h2))
        check(j2["id"] == j1["id"] and h2["location"] == h["location"], "same job")
        s, _, e = d.json("POST", "/jobs", dict(body, seed=9), alice)
        check(s == 422 and e["error"]["param"] == "Idempotency-Key" and j1["id"] in
              e["error"]["message"], "other body: %d %s" % (s, e))
        # The body is compared byte for byte: the same JSON spaced differently is another body.
        s, _, _ = d.json("POST", "/jobs", json.dumps(body, indent=1), alice)
        check(s == 422, "re-spaced body: %d" % s)
        s, _, j3 = d.json("POST", "/jobs", body, {"X-Api-Key": "bob", "Idempotency-Key": "req-1"})
        check(s == 202 and j3["id"] != j1["id"], "bob's req-1 is not alice's")
        s, _, j4 = d.json("POST", "/jobs", body, dict(alice, **{"Idempotency-Key": "req-2"}))
        check(s == 202 and j4["id"] not in (j1["id"], j3["id"]), "new key, new job")
        s, _, j5 = d.json("POST", "/jobs", body, {"Authorization": "Bearer alice"})
        check(s == 202 and j5["id"] != j1["id"], "no key: always a new job")
        s, _, j = d.json("POST", "/jobs", body, dict(alice, **{"Idempotency-Key": '"req-1"'}))
        check(s == 200 and j["id"] == j1["id"], "the quoted (structured-field) form is the same key")
        for bad in ["", "a" * 256, "has space", "tab\there", '"', "caf\u00e9"]:
            s, _, e = d.json("POST", "/jobs", body, dict(alice, **{"Idempotency-Key": bad}))
            check(s == 400 and e["error"]["param"] == "Idempotency-Key", "key %r: %d" % (bad, s))
        check(d.json("POST", "/jobs", body, dict(alice, **{"Idempotency-Key": "k" * 255}))[0]
              == 202, "255 characters are allowed")
        m = d.metrics()
        # 5 jobs created, 2 bodies refused with 422 and 6 bad keys with 400; the 2 repeats
        # are answers about an existing job, not received jobs.
        check(m["ditd_jobs_received_total"] == 13, "received %s" % m["ditd_jobs_received_total"])
        check(m['ditd_jobs_rejected_total{reason="invalid"}'] == 8, "rejected invalid")
        check(m['ditd_http_requests_total{endpoint="jobs",code="200"}'] == 2, "2 repeats")
        check(m['ditd_http_requests_total{endpoint="jobs",code="422"}'] == 2, "2 other bodies")
        # Once the job is over and job_ttl has passed, the key is released: a new job.
        deadline = time.time() + 10
        while time.time() < deadline and d.request("GET", h["location"], None, alice)[0] != 410:
            time.sleep(0.1)
        s, _, j6 = d.json("POST", "/jobs", body, alice)
        check(s == 202 and j6["id"] != j1["id"], "after job_ttl: %d %s" % (s, j6))
        s, _, j7 = d.json("POST", "/jobs", body, alice)
        check(s == 200 and j7["id"] == j6["id"], "the new job holds the key now")


@test
def drain_keeps_results(a):
    """A drain keeps finished POST /jobs results until a client has them (all images fetched,
    the event stream read to its end, or a failure seen), within drain_timeout; then exits 0."""
    with Daemon(a.ditd, a.model, "--drain-timeout", str(20 * SLOW)) as d:
        d.wait_ready()
        jobs = [d.json("POST", "/jobs", {"class": c, "steps": 3, "n": 2, "seed": c})[2]["id"]
                for c in range(3)]
        deadline = time.time() + 10
        while time.time() < deadline and any(d.json("GET", "/jobs/" + j)[2]["status"] !=
                                             "completed" for j in jobs):
            time.sleep(0.02)
        d.signal(signal.SIGTERM)
        time.sleep(0.5)
        check(d.proc.poll() is None, "exited with 3 results nobody has fetched")
        check(d.request("GET", "/health/ready")[0] == 503, "readiness while keeping results")
        for k in (0, 1):                                    # job 0: both images
            check(d.request("GET", "/jobs/%s/images/%d.png" % (jobs[0], k))[0] == 200, "image")
        c = d.conn()                                        # job 1: its event stream
        c.request("GET", "/jobs/%s/events" % jobs[1])
        check([e[1] for e in sse_events(c.getresponse())][-1] == "done", "stream")
        c.close()
        check(d.request("GET", "/jobs/%s/images/0.png" % jobs[2])[0] == 200, "image")
        time.sleep(0.5)
        check(d.proc.poll() is None, "exited with one image of job 2 not fetched")
        t0 = time.time()
        check(d.request("GET", "/jobs/%s/images/1.png" % jobs[2])[0] == 200, "last image")
        rc = d.wait_exit(10)
        check(rc == 0 and time.time() - t0 < 3, "exit %s %.1f s after the last fetch"
              % (rc, time.time() - t0))
    # Nobody comes: the results are given up at drain_timeout, and the log says so.
    with Daemon(a.ditd, a.model, "--drain-timeout", "1") as d:
        d.wait_ready()
        j = d.json("POST", "/jobs", {"class": 1, "steps": 2})[2]["id"]
        deadline = time.time() + 10
        while time.time() < deadline and d.json("GET", "/jobs/" + j)[2]["status"] != "completed":
            time.sleep(0.02)
        t0 = time.time()
        d.signal(signal.SIGTERM)
        rc = d.wait_exit(10)
        check(rc == 0 and 0.9 < time.time() - t0 < 4, "exit %s after %.1f s with drain_timeout 1"
              % (rc, time.time() - t0))
        check("1 finished job result(s) were never fetched" in d.logs(), d.logs()[-500:])


@test
def deadline_504(a):
    """A request that outlives its deadline gets 504."""
    with Daemon(a.ditd, a.model, env={"DITD_TEST_STEP_DELAY_MS": "20"}) as d:
        d.wait_ready()
        t0 = time.time()
        s, _, b = d.json("POST", "/generate", {"class": 1, "steps": 1000, "deadline_ms": 300})
        check(s == 504 and b["error"]["type"] == "deadline_exceeded", "%d %s" % (s, b))
        check(time.time() - t0 < 2, "504 late")


@test
def systemd_notify(a):
    """READY=1 after load, WATCHDOG=1 pings, STATUS=, STOPPING=1 on SIGTERM (abstract socket)."""
    name = "@ditd-test-%d" % os.getpid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(0.2)
    msgs = []
    with Daemon(a.ditd, a.model, env={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "2000000"}) as d:
        d.wait_ready()
        t_end = time.time() + 3.2
        while time.time() < t_end:
            try:
                msgs.append((time.time(), sock.recv(4096).decode()))
            except socket.timeout:
                pass
        d.signal(signal.SIGTERM)
        check(d.wait_exit(10) == 0, "exit")
        try:
            while True:
                msgs.append((time.time(), sock.recv(4096).decode()))
        except socket.timeout:
            pass
    text = [m for _, m in msgs]
    check(sum("READY=1" in m for m in text) == 1, "READY=1 once: %s" % text)
    pings = [t for t, m in msgs if "WATCHDOG=1" in m]
    check(len(pings) >= 3, "watchdog pings: %d" % len(pings))
    # Pings come every 0.67 s; systemd would act only after 2.0 s without one. The margin
    # absorbs a busy machine (the suite also runs under ASan in parallel).
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    check(max(gaps) < 1.3, "ping gaps %s" % ["%.2f" % g for g in gaps])
    check(any("STATUS=" in m for m in text), "STATUS")
    check(any("STOPPING=1" in m for m in text), "STOPPING=1")


@test
def reload_sighup(a):
    """SIGHUP re-reads the file: reloadable keys apply, the others are reported."""
    conf = "[queue]\nmax_queue = 5\n"
    with Daemon(a.ditd, a.model, conf=conf) as d:
        d.wait_ready()
        check(d.json("GET", "/info")[2]["limits"]["max_queue"] == 5, "from the file")
        with open(d.conf, "w") as f:
            f.write("[queue]\nmax_queue = 7\n[compute]\nmax_batch = 4\n")
        d.signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and d.json("GET", "/info")[2]["limits"]["max_queue"] != 7:
            time.sleep(0.05)
        check(d.json("GET", "/info")[2]["limits"]["max_queue"] == 7, "reloaded")
        check("max_batch changed but needs a restart" in d.logs(), "restart note")
        check(d.metrics()["ditd_queue_capacity"] == 7, "capacity gauge")


@test
def cli(a):
    """--help lists every flag; a bad flag or file fails with a message; --probe works."""
    out = subprocess.run([a.ditd, "--help"], capture_output=True, timeout=30)
    check(out.returncode == 0 and b"--max-batch" in out.stdout and b"--drain-timeout" in out.stdout,
          "help")
    out = subprocess.run([a.ditd, "--workers", "x"], capture_output=True, timeout=30)
    check(out.returncode == 2 and b"workers" in out.stderr, "bad flag")
    with Daemon(a.ditd, a.model) as d:
        d.wait_ready()
        out = subprocess.run([a.ditd, "--probe", "--listen", "127.0.0.1:%d" % d.port],
                             capture_output=True, timeout=30)
        check(out.returncode == 0, "probe ready: %s" % out.stderr)
    out = subprocess.run([a.ditd, "--probe", "--listen", "127.0.0.1:1"], capture_output=True,
                         timeout=30)
    check(out.returncode == 1, "probe of nothing")
    bad_model = os.path.join(a.workdir, "no-such-model")
    p = subprocess.run([a.ditd, "--listen", "127.0.0.1:0", "--model", bad_model],
                       capture_output=True, timeout=60)
    check(p.returncode == 1 and b"cannot load the model" in p.stderr, "bad model: %s" % p.stderr)


@test
def logs_and_request_ids(a):
    """log_format = json: one object per line; the access log carries the request id, route,
    status, bytes and timings; a valid X-Request-Id is adopted and echoed (header, job object),
    an invalid one replaced. SIGHUP switches the format back to text."""
    conf = "[log]\nlog_format = json\naccess_log = yes\n"
    with Daemon(a.ditd, a.model, conf=conf) as d:
        d.wait_ready()
        s, h, png = d.request("POST", "/generate", {"class": 1, "steps": 3},
                              {"X-Request-Id": "client-id_1.x"})
        check(s == 200 and h["x-request-id"] == "client-id_1.x", "echo %s" % h)
        s, h, j = d.json("POST", "/jobs", {"class": 2, "steps": 3}, {"X-Request-Id": "job.req-7"})
        check(s == 202 and h["x-request-id"] == "job.req-7" and j["request_id"] == "job.req-7",
              "job object %s %s" % (h, j))
        check(d.json("GET", h["location"])[2]["request_id"] == "job.req-7", "kept by the job")
        for bad in ("has space", "x" * 65, "semi;colon", ""):
            s, h, j = d.json("POST", "/jobs", {"class": 2, "steps": 3}, {"X-Request-Id": bad})
            check(s == 202 and h["x-request-id"] == j["id"] == j["request_id"],
                  "invalid id %r replaced by the job id: %s %s" % (bad, h, j))
        s, h, _ = d.request("GET", "/health/live", None, {"X-Request-Id": "lb-1"})
        check(h.get("x-request-id") == "lb-1", "health echoes a client id")
        s, h, _ = d.request("GET", "/nope")
        check(s == 404 and len(h.get("x-request-id", "")) == 16, "generated id %s" % h)
        time.sleep(0.2)
        records = []
        for line in d.logs().splitlines():
            rec = json.loads(line)      # every line is one object
            check({"time", "level", "message"} <= set(rec), "record %s" % rec)
            records.append(rec)
        acc = [r for r in records if r["message"] == "access"]
        gen = [r for r in acc if r["request_id"] == "client-id_1.x"]
        check(len(gen) == 1, "access records %s" % acc)
        g = gen[0]
        check(g["method"] == "POST" and g["path"] == "/generate" and g["route"] == "generate" and
              g["status"] == 200 and g["bytes"] == len(png) and g["queue_ms"] >= 0 and
              g["total_ms"] >= g["queue_ms"] and g["outcome"] == "ok", "generate record %s" % g)
        check(any(r["request_id"] == "lb-1" and r["route"] == "health" for r in acc), "health")
        with open(d.conf, "w") as f:
            f.write("[log]\nlog_format = text\naccess_log = yes\n")
        d.signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline and "configuration reloaded" not in d.logs():
            time.sleep(0.05)
        d.request("GET", "/info", None, {"X-Request-Id": "after-reload"})
        time.sleep(0.2)
        last = [l for l in d.logs().splitlines() if "after-reload" in l]
        check(len(last) == 1 and not last[0].startswith("{") and
              " access request_id=after-reload " in last[0] and " status=200 " in last[0],
              "text access line %s" % last)


def step_rate(d, location, seconds=0.6):
    """Milliseconds per step of the running job at location, from its progress over a while."""
    t0, s0 = time.time(), d.json("GET", location)[2]["progress"]["step"]
    time.sleep(seconds)
    t1, s1 = time.time(), d.json("GET", location)[2]["progress"]["step"]
    check(s1 > s0, "job at %s made no progress in %.1f s" % (location, seconds))
    return 1000 * (t1 - t0) / (s1 - s0)


@test
def estimates(a):
    """A waiting job's /jobs object and its "queued" events carry starts_in_ms and eta_ms from
    the measured step rate; a 429's Retry-After is the estimated wait behind all the work there
    is, so it grows with the work queued."""
    step_ms = 20
    with Daemon(a.ditd, a.model, "--max-batch", "2", "--max-queue", "2",
                env={"DITD_TEST_STEP_DELAY_MS": str(step_ms)}) as d:
        d.wait_ready()
        s, h, run = d.json("POST", "/jobs", {"class": 1, "steps": 150})
        deadline = time.time() + 10
        while d.json("GET", h["location"])[2]["progress"]["step"] < 5 and time.time() < deadline:
            time.sleep(0.02)

        # The queue holds jobs of at least 40 steps: one of at most a quarter of the running
        # job's size (150 steps, 37 or fewer) would be admitted to run beside it (policy.h),
        # leaving a place free in the queue whenever a step ended between the POSTs.
        short_steps = 40

        def fill(steps):
            jobs = [d.json("POST", "/jobs", {"class": 1, "steps": steps})[2] for _ in range(2)]
            s, h, b = d.json("POST", "/jobs", {"class": 1, "steps": 10})
            check(s == 429 and b["error"]["type"] == "overloaded", "429 %d %s" % (s, b))
            return jobs, int(h["retry-after"])

        # The daemon estimates from the step rate it measures, which is the test's delay plus
        # the forward itself: several times the delay in a sanitizer build. Measure it too.
        rate = step_rate(d, h["location"])
        jobs, short = fill(short_steps)
        _, _, j = d.json("GET", "/jobs/" + jobs[1]["id"])
        p = j["progress"]
        left = 150 - d.json("GET", h["location"])[2]["progress"]["step"]
        # Second in line: it starts after the running job and the first queued one.
        want = (left + short_steps) * rate
        check(j["status"] == "queued" and 0.5 * want < p["starts_in_ms"] < 2 * want + 200,
              "starts_in_ms %s, expected about %d (%.0f ms per step measured)" % (p, want, rate))
        check(p["eta_ms"] - p["starts_in_ms"] >= short_steps * step_ms * 0.8, "eta_ms %s" % p)
        c = d.conn()
        c.request("GET", "/jobs/%s/events" % jobs[1]["id"])
        r = c.getresponse()
        first = next(sse_events(r))
        c.close()
        check(first[1] == "queued" and first[2]["eta_ms"] > first[2]["starts_in_ms"] > 0,
              "queued event %s" % (first,))
        for job in jobs:
            d.json("DELETE", "/jobs/" + job["id"])
        jobs, long = fill(200)
        print("Retry-After %d s (2 x %d steps queued), %d s (2 x 200); second in line: %s"
              % (short, short_steps, long, p))
        check(long > short and long - short >= (2 * (200 - short_steps) * step_ms) // 1000 - 1,
              "Retry-After %d s with 2 x %d steps queued, %d s with 2 x 200"
              % (short, short_steps, long))
        check(short >= (left * step_ms) // 1000, "Retry-After %d below the running job's %d ms"
              % (short, left * step_ms))
        for job in jobs + [run]:
            d.json("DELETE", "/jobs/" + job["id"])


@test
def small_beside_large(a):
    """Fairness: a small request sent while the largest allowed job runs is admitted at once,
    runs in its own forwards, and finishes while the large job is still running; both results
    are byte-identical to the same requests run alone."""
    with Daemon(a.ditd, a.model, "--max-batch", "16", "--max-steps", "400",
                env={"DITD_TEST_STEP_DELAY_MS": "5"}) as d:
        d.wait_ready()
        small = {"class": 3, "steps": 20, "seed": 5}
        big = {"class": 4, "steps": 400, "n": 8, "seed": 6}
        t0 = time.time()
        alone = d.request("POST", "/generate", small)[2]
        idle = time.time() - t0
        s, h, j = d.json("POST", "/jobs", big)
        deadline = time.time() + 10
        while d.json("GET", h["location"])[2]["progress"]["step"] < 8 * 10 and \
                time.time() < deadline:
            time.sleep(0.02)
        # One of the large job's forwards (16 rows, 8 image-steps), timed as it runs alone.
        forward = 8 * step_rate(d, h["location"]) / 1000
        t0 = time.time()
        s, _, png = d.request("POST", "/generate", small)
        took = time.time() - t0
        _, _, bj = d.json("GET", h["location"])
        check(s == 200 and png == alone, "small answer %d, same bytes: %s" % (s, png == alone))
        check(bj["status"] == "running" and bj["progress"]["step"] < 8 * 400,
              "the large job ended first: %s" % bj)
        # What the small request may pay beside the large job: the forward under way when it
        # arrives and the large job's due turns (1/8 of the time, ~3 of its forwards in 20
        # steps), with room for a noisy machine. Queued behind it (FIFO), it would wait for
        # the rest of the large job: hundreds of forwards.
        limit = 2 * idle + 6 * forward
        left = (8 * 400 - bj["progress"]["step"]) / 8 * forward
        print("small request: %.3f s idle, %.3f s beside the large job (limit %.3f s; "
              "%.3f s per large forward, %.1f s of the large job left)"
              % (idle, took, limit, forward, left))
        check(took < limit, "small request took %.2f s beside the large job, %.2f s idle, "
              "%.3f s per large forward" % (took, idle, forward))
        check(limit < (idle + left) / 2, "the test cannot tell: %.2f s limit, %.2f s of the "
              "large job left" % (limit, left))
        deadline = time.time() + 4 * left + 30
        while bj["status"] != "completed" and time.time() < deadline:
            time.sleep(0.1)
            bj = d.json("GET", h["location"])[2]
        check(bj["status"] == "completed", "large job %s" % bj["status"])
        # The first and the last image regenerated alone (index), each in its own 2-row forwards.
        for k in (0, 7):
            alone_k = d.request("POST", "/generate", dict(big, n=1, index=k))[2]
            s, _, img = d.request("GET", "%s/images/%d.png" % (h["location"], k))
            check(alone_k == img, "image %d of the large job" % k)


def probe(a, *args):
    return subprocess.run([a.ditd, "--probe"] + list(args), capture_output=True, timeout=30)


@test
def probe_config(a):
    """--probe takes the key, the listen address and the port file from the config file and the
    flags: it works with public_health = no, with a port the daemon got from its own --listen
    (the port file), and maps the wildcards 0.0.0.0 and [::] to loopback."""
    keys = os.path.join(tempfile.mkdtemp(prefix="ditd-test-"), "keys")
    with open(keys, "w") as f:
        f.write("# the probe sends the first key\nk-file\n")
    # The port in the file is not the daemon's: the port file says which one it bound.
    conf = ("[server]\nlisten = 0.0.0.0:1\nport_file = $TMP/port\n[auth]\napi_key_file = %s\n"
            "public_health = no\n" % keys)
    with Daemon(a.ditd, a.model, conf=conf) as d:
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline and probe(a, "--config", d.conf).returncode != 0:
            time.sleep(0.05)
        out = probe(a, "--config", d.conf)
        check(out.returncode == 0, "probe with the key file and the port file: %s" % out.stderr)
        check(d.request("GET", "/health/ready")[0] == 401, "health is not public here")
        out = probe(a, "--config", d.conf, "--api-key-file", "", "--api-keys", "wrong")
        check(out.returncode == 1 and b"401" in out.stderr, "wrong key: %s" % out.stderr)
        out = probe(a, "--config", d.conf, "--api-key-file", "", "--api-keys", "k-flag")
        check(out.returncode == 1, "a key the daemon does not know: %s" % out.stderr)
        out = probe(a, "--config", d.conf, "--listen", "0.0.0.0:%d" % d.port)
        check(out.returncode == 0, "0.0.0.0 probed on loopback: %s" % out.stderr)
        out = probe(a, "--config", d.conf, "--listen", "127.0.0.1:1")
        check(out.returncode == 1, "a --listen given to the probe wins over the port file")
        d.signal(signal.SIGTERM)
        check(d.wait_exit(30) == 0, "exit")
    # [::] is probed on [::1] (the daemon on [::1] only; the harness itself speaks IPv4).
    with Daemon(a.ditd, a.model, "--listen", "[::1]:0") as d:
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline:
            out = probe(a, "--listen", "[::]:%d" % d.port)
            if out.returncode == 0:
                break
            time.sleep(0.05)
        check(out.returncode == 0, "[::] probed on [::1]: %s" % out.stderr)


@test
def process_name(a):
    """After the BLAS re-exec (forced here by pinning a weak kernel) the daemon and all its
    threads are still called ditd: pgrep -x ditd finds it."""
    env = {"OPENBLAS_CORETYPE": "Prescott", "DITD_BLAS": "auto"}
    with Daemon(a.ditd, a.model, env=env) as d:
        d.wait_ready()
        check("switched from Prescott" in d.logs(), "no re-exec happened:\n" + d.logs())
        pid = d.proc.pid
        names = set()
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                names.add(f.read().strip())
        check(names == {"ditd"}, "thread names %s" % names)
        out = subprocess.run(["pgrep", "-x", "ditd"], capture_output=True, text=True, timeout=10)
        check(str(pid) in out.stdout.split(), "pgrep -x ditd: %r" % out.stdout)
        s, _, _ = d.request("POST", "/generate", {"class": 1, "steps": 2})
        check(s == 200, "serves after the re-exec")


@test
def connection_limits(a):
    """Per-IP cap (others still served) and the inactivity timeout of a half-sent request."""
    with Daemon(a.ditd, a.model, "--per-ip-limit", "4", "--connection-timeout", "1") as d:
        d.wait_ready()
        other = ("127.0.0.2", 0)   # a second client address on loopback
        held = [socket.create_connection(("127.0.0.1", d.port), timeout=5, source_address=other)
                for _ in range(4)]
        for s_ in held:
            s_.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")   # never finished
        extra = socket.create_connection(("127.0.0.1", d.port), timeout=5, source_address=other)
        extra.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = extra.recv(100)
        except OSError:
            got = b""
        check(got == b"", "a 5th connection from one address was served: %r" % got[:40])
        # Another address is another client.
        c = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        c.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        check(c.recv(100).startswith(b"HTTP/1.1 200"), "other address refused")
        c.close()
        t0 = time.time()
        for s_ in held:
            s_.settimeout(5)
            try:
                s_.recv(100)
            except OSError:
                pass
        took = time.time() - t0
        check(took < 3, "idle half-sent requests kept open %.1f s with a 1 s timeout" % took)
        check(d.request("GET", "/health/live")[0] == 200, "served again after the timeouts")


if __name__ == "__main__":
    sys.exit(run_test(TESTS))
