#!/usr/bin/python3
"""Fleet test: three ditd replicas on 127.0.0.1 behind HAProxy, run with the configuration an
operator would use (deploy/haproxy/haproxy.cfg, addresses from the environment), under a load of
concurrent clients. During the load one replica is drained with SIGTERM and another is killed
with SIGKILL and restarted on its port. Then:

* every request got exactly one answer, and the balancer answered every one (no reset reached a
  client);
* nothing a draining replica had taken is lost: each request it answered is a 200 (a 3 s job
  included), a POST /jobs job it was running is polled and its images fetched through the
  balancer (which keeps sending /jobs/... to it), it leaves the rotation on readiness 503 and
  exits 0 once that is done, and what reached it after the signal got 503 there and was retried
  by the balancer on another replica;
* a request that the killed replica had taken is lost only if it was in flight at the kill: a
  POST without Idempotency-Key gets 502 from the balancer (it is never run twice), one with a
  key is retried on another replica; new requests meanwhile are retried on the live ones;
* the counts agree three ways, per replica: what the clients saw (X-Served-By), what HAProxy
  counted (stats socket, `show stat`), and what each replica counted: /metrics for the replicas
  alive at the end, the access log (written unbuffered, so it survives the process) for the
  drained one and the killed incarnation.

Before the load, /jobs through the balancer: a job is found again by its id (HAProxy's stick
table learns it from the answer) and a POST /jobs retried with its Idempotency-Key reaches the
replica that holds the key.

    test_fleet.py --ditd build/src/daemon/ditd --workdir DIR [--seconds 12] [--clients 9]

Loopback only, every wait bounded; HAProxy and the replicas are stopped by pid at the end.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "daemon"))

from harness import Daemon, check, ensure_model, is_png  # noqa: E402

CFG = os.path.join(ROOT, "deploy", "haproxy", "haproxy.cfg")
NAMES = ("r1", "r2", "r3")
DRAINED, KILLED, KEPT = NAMES
STEP_DELAY = {"DITD_TEST_STEP_DELAY_MS": "20"}
BODY_STEPS = 10
LONG_STEPS = 150        # about 3 s at 20 ms a step: running through the drain
JOB_STEPS = 60          # the /jobs job on the drained replica: still running at the signal
# An access record: "access ... method=POST path=/generate ... status=200 ..." (log_format text).
ACCESS = re.compile(r" access .*?\bmethod=(\S+) path=(\S+) .*?\bstatus=(\d{3})\b")
# An httplog line: backend/server, status, termination state, .../retries, {X-Request-Id}.
HALOG = re.compile(r" ditd_in (\S+)/(\S+) \S+ (\d{3}) \d+ - - (\S{4}) \d+/\d+/\d+/\d+/(\+?)(\d+) "
                   r"\d+/\d+ \{([^}]*)\}")


def free_port():
    """A port for HAProxy's bind (it refuses port 0)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Balancer:
    """HAProxy in the foreground with deploy/haproxy/haproxy.cfg."""

    def __init__(self, tmp, replicas):
        self.sock = os.path.join(tmp, "haproxy.sock")
        self.log_path = os.path.join(tmp, "haproxy.log")
        self.port = free_port()
        env = dict(os.environ, HAPROXY_BIND="127.0.0.1:%d" % self.port,
                   HAPROXY_STATS_SOCKET=self.sock)
        for name, port in replicas.items():
            env["DITD_" + name.upper()] = "127.0.0.1:%d" % port
        self.sent = {}
        self.log = open(self.log_path, "w")
        # One thread: with several, HAProxy drops a `log stdout` line rather than wait when two
        # threads write at once (its DroppedLogs), and the checks below read one line per
        # request. A second global section sets it; the deployed file is run as it is.
        one_thread = os.path.join(tmp, "one-thread.cfg")
        with open(one_thread, "w") as f:
            f.write("global\n    nbthread 1\n")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", CFG, "-f", one_thread], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            check(self.proc.poll() is None, "haproxy exited:\n" + self.logs())
            if os.path.exists(self.sock) and all(s == "UP" for s in self.states().values()):
                return
            time.sleep(0.05)
        raise AssertionError("haproxy did not see the replicas up:\n" + self.logs())

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stats(self):
        """{(proxy, server): {column: value}} from `show stat`."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.sock)
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        lines = data.decode().splitlines()
        cols = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            if line:
                row = dict(zip(cols, line.split(",")))
                out[(row["pxname"], row["svname"])] = row
        return out

    def states(self):
        return {sv: row["status"].split()[0] for (px, sv), row in self.stats().items()
                if px == "ditd" and sv in NAMES}

    def wait_state(self, name, state, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.states()[name] == state:
                return
            time.sleep(0.05)
        raise AssertionError("%s not %s in haproxy within %s s: %s" % (name, state, timeout,
                                                                        self.states()))

    def request(self, method, path, body=None, headers=None, timeout=60):
        """A request of the test itself (not a load client's): counted in self.sent by status
        class and server, since HAProxy's counters include it."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers=headers or {})
            r = c.getresponse()
            h = dict((k.lower(), v) for k, v in r.getheaders())
            key = ("%dxx" % (r.status // 100), h.get("x-served-by"))
            self.sent[key] = self.sent.get(key, 0) + 1
            return r.status, h, r.read()
        finally:
            c.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def start_replica(a, port=0, tag=""):
    return Daemon(a.ditd, a.model, "--listen", "127.0.0.1:%d" % port, "--threads", "1",
                  "--max-batch", "8", "--max-queue", "64", "--drain-timeout", "30",
                  "--access-log", "yes", env=STEP_DELAY)


def sticky_jobs(lb):
    """/jobs through the balancer: the stick table routes by job id and by Idempotency-Key."""
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"class": 2, "steps": 4, "seed": 5}
    s, h, b = lb.request("POST", "/jobs", body, key)
    check(s == 202, "POST /jobs with a key via haproxy: %d %s" % (s, b[:200]))
    job, home = json.loads(b)["id"], h["x-served-by"]
    for _ in range(4):
        s, h, b = lb.request("POST", "/jobs", body, key)
        check(s == 200 and json.loads(b)["id"] == job and h["x-served-by"] == home,
              "a retried POST /jobs must reach %s and get job %s back: %d %s %s"
              % (home, job, s, h.get("x-served-by"), b[:200]))
    s, h, b = lb.request("POST", "/jobs", body)
    check(s == 202, "POST /jobs without a key: %d" % s)
    plain, plain_home = json.loads(b)["id"], h["x-served-by"]
    for jid, where in ((job, home), (plain, plain_home)) * 3:
        s, h, b = lb.request("GET", "/jobs/" + jid)
        check(s == 200 and h["x-served-by"] == where,
              "GET /jobs/%s must go to %s, went to %s (%d)" % (jid, where, h.get("x-served-by"), s))
    # Fetched, so that no replica's drain waits for them.
    for jid, where in ((job, home), (plain, plain_home)):
        deadline = time.time() + 10
        while lb.request("GET", "/jobs/%s/images/0.png" % jid)[0] != 200:
            check(time.time() < deadline, "job %s did not complete" % jid)
            time.sleep(0.05)


def pin_job(lb, name, steps, deleted):
    """A POST /jobs job that the balancer placed on replica `name`; the others are deleted
    (counted per replica in `deleted`)."""
    for _ in range(20):
        s, h, b = lb.request("POST", "/jobs", {"class": 6, "steps": steps, "n": 2, "seed": 3})
        check(s == 202, "POST /jobs: %d %s" % (s, b[:200]))
        jid = json.loads(b)["id"]
        if h["x-served-by"] == name:
            return jid
        s, h, _ = lb.request("DELETE", "/jobs/" + jid)
        check(s == 200, "DELETE /jobs/%s: %d" % (jid, s))
        deleted[h["x-served-by"]] = deleted.get(h["x-served-by"], 0) + 1
    raise AssertionError("20 jobs and none placed on %s" % name)


def fetch_job(lb, jid, name, timeout):
    """Poll a job through the balancer until it completes, then fetch its images: every answer
    must come from replica `name`."""
    deadline = time.time() + timeout
    while True:
        s, h, b = lb.request("GET", "/jobs/" + jid)
        check(s == 200 and h["x-served-by"] == name, "GET /jobs/%s during the drain: %d from %s"
              % (jid, s, h.get("x-served-by")))
        if json.loads(b)["status"] == "completed":
            break
        check(time.time() < deadline, "job %s not completed within %s s" % (jid, timeout))
        time.sleep(0.05)
    for k in (0, 1):
        s, h, b = lb.request("GET", "/jobs/%s/images/%d.png" % (jid, k))
        check(s == 200 and is_png(b) and h["x-served-by"] == name,
              "image %d of job %s during the drain: %d from %s" % (k, jid, s, h.get("x-served-by")))


def client(lb_port, idx, t_end, out, lock):
    """POST /generate until t_end; every third request carries an Idempotency-Key."""
    n = 0
    while time.time() < t_end:
        keyed = n % 3 == 2
        headers = {"Content-Type": "application/json"}
        if keyed:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        body = json.dumps({"class": (idx + n) % 10, "cfg": 1.0, "steps": BODY_STEPS,
                           "seed": idx * 100000 + n})
        rec = {"keyed": keyed, "id": "fleet-%d-%d" % (idx, n), "t0": time.time()}
        headers["X-Request-Id"] = rec["id"]
        c = http.client.HTTPConnection("127.0.0.1", lb_port, timeout=60)
        try:
            c.request("POST", "/generate", body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            rec.update(status=r.status, by=r.getheader("X-Served-By"),
                       png=r.status != 200 or is_png(data))
        except (OSError, http.client.HTTPException) as e:
            rec.update(status="transport: %r" % e, by=None, png=True)
        finally:
            c.close()
        rec["t1"] = time.time()
        with lock:
            out.append(rec)
        n += 1


def access_counts(log_text):
    """{(method, path, status): n} from a replica's access log."""
    counts = {}
    for m in ACCESS.finditer(log_text):
        k = (m.group(1), m.group(2), int(m.group(3)))
        counts[k] = counts.get(k, 0) + 1
    return counts


def server_sum(stats, name, col):
    return sum(int(stats[(px, name)][col] or 0) for px in ("ditd", "ditd_once"))


def fleet(a):
    tmp = a.tmp
    reps = {n: start_replica(a) for n in NAMES}
    started = list(reps.values())     # every process, the killed incarnation included
    lb = None
    try:
        for d in reps.values():
            d.wait_ready()
        ports = {n: d.port for n, d in reps.items()}
        lb = Balancer(tmp, ports)
        sticky_jobs(lb)
        lb0 = lb.stats()
        lb.sent = {}

        recs, lock = [], threading.Lock()
        t_start = time.time()
        t_end = t_start + a.seconds
        ts = [threading.Thread(target=client, args=(lb.port, i, t_end, recs, lock), daemon=True)
              for i in range(a.clients)]
        for t in ts:
            t.start()
        events = {}

        def watch_exit(d):
            d.proc.wait()
            events["drained_exit"] = time.time()

        # A long job sent to the replica directly, running when it is told to drain: it must
        # finish, and while it runs the replica answers readiness with 503, which is how
        # HAProxy takes it out of rotation.
        long_job = {}

        def long_request():
            c = reps[DRAINED].conn(timeout=60)
            c.request("POST", "/generate", json.dumps({"class": 4, "cfg": 1.0, "steps": LONG_STEPS,
                                                       "seed": 1}))
            r = c.getresponse()
            long_job.update(status=r.status, png=is_png(r.read()), t1=time.time())
            c.close()

        time.sleep(a.seconds * 0.2 - 0.5)
        lj = threading.Thread(target=long_request, daemon=True)
        lj.start()
        # And a POST /jobs job the balancer put there, running at the signal: its results
        # must stay reachable through the balancer until fetched.
        deleted = {}
        held = pin_job(lb, DRAINED, JOB_STEPS, deleted)
        time.sleep(max(0.0, t_start + a.seconds * 0.2 - time.time()))
        events["term"] = time.time()
        reps[DRAINED].signal(signal.SIGTERM)
        watcher = threading.Thread(target=watch_exit, args=(reps[DRAINED],), daemon=True)
        watcher.start()
        lb.wait_state(DRAINED, "DOWN", 5)
        events["drained_down"] = time.time()
        row = lb.stats()[("ditd", DRAINED)]
        check(row["check_status"] == "L7STS" and row["check_code"] == "503",
              "haproxy took %s out on %s %s, not on readiness 503"
              % (DRAINED, row["check_status"], row["check_code"]))
        fetch_job(lb, held, DRAINED, 10)
        events["job_fetched"] = time.time()

        time.sleep(max(0.0, t_start + a.seconds * 0.4 - time.time()))
        events["kill"] = time.time()
        reps[KILLED].proc.kill()
        reps[KILLED].proc.wait(5)
        events["dead"] = time.time()
        old_killed_log = reps[KILLED].logs()
        lb.wait_state(KILLED, "DOWN", 5)
        time.sleep(0.5)
        events["restart"] = time.time()
        reps[KILLED] = start_replica(a, ports[KILLED])
        started.append(reps[KILLED])
        reps[KILLED].wait_ready()
        lb.wait_state(KILLED, "UP", 10)
        events["killed_up"] = time.time()

        lj.join(60)
        check(long_job.get("status") == 200 and long_job["png"],
              "the long job running at the drain: %s" % long_job)
        events["long_done"] = long_job["t1"]
        for t in ts:
            t.join(90)
        check(not any(t.is_alive() for t in ts), "clients still running 90 s after the load")
        rc = reps[DRAINED].wait_exit(35)
        check(rc == 0, "the drained replica exited with %s:\n%s" % (rc, reps[DRAINED].logs()[-3000:]))
        watcher.join(5)
        drained_log = reps[DRAINED].logs()
        st = lb.stats()
        live = {n: reps[n].metrics() for n in (KILLED, KEPT)}
        took = time.time() - t_start
        # HAProxy writes a request's log line after its answer left: let the last ones land.
        deadline = time.time() + 5
        while time.time() < deadline and lb.logs().count("{fleet-") < len(recs):
            time.sleep(0.05)
        report(a, recs, events, t_start, st, lb0, live, drained_log, old_killed_log,
               reps[KILLED].logs(), lb.logs(), lb.sent, deleted, took)
    except BaseException:
        if lb:
            keep = os.path.join(a.workdir, "fleet-failed-haproxy.log")
            shutil.copy(lb.log_path, keep)
            sys.stderr.write("haproxy's log: %s\n" % keep)
        raise
    finally:
        if lb:
            lb.stop()
        for d in started:
            d.kill()


def by_server(recs, status, pred=lambda r: True):
    out = {n: 0 for n in NAMES}
    for r in recs:
        if r["status"] == status and pred(r):
            out[r["by"]] += 1
    return out


def report(a, recs, ev, t0, st, lb0, live, drained_log, killed_log, restarted_log, lb_log, own,
           deleted, took):
    rel = {k: round(v - t0, 2) for k, v in sorted(ev.items(), key=lambda kv: kv[1])}
    total = len(recs)
    statuses = {}
    for r in recs:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    print("  %d requests in %.1f s (all phases %.1f s); events (s): %s" % (total, a.seconds, took, rel))
    print("  outcomes: %s" % sorted(statuses.items(), key=str))

    # 1. One answer each, from the balancer; PNGs intact.
    bad = [r for r in recs if not isinstance(r["status"], int)]
    check(not bad, "%d requests got no HTTP answer: %s" % (len(bad), bad[:3]))
    check(all(r["png"] for r in recs), "a 200 without a PNG")
    check(set(statuses) <= {200, 502}, "unexpected statuses %s" % statuses)

    # 2. The killed replica: a 502 only for a POST without a key that was in flight at the kill.
    fails = [r for r in recs if r["status"] == 502]
    # In flight: sent before the process was gone (until then the kernel still queues new
    # connections for it) and not answered before the signal.
    def at_kill(r):
        return r["t0"] <= ev["dead"] and r["t1"] >= ev["kill"]

    for r in fails:
        check(not r["keyed"] and r["by"] == KILLED and at_kill(r),
              "a 502 that was not a keyless request in flight at the kill: %s" % r)
    # HAProxy's log has one line per client request (its X-Request-Id), with the same status.
    lines = {}
    for m in HALOG.finditer(lb_log):
        if m.group(7).startswith("fleet-"):     # not the /jobs phase before the load
            lines.setdefault(m.group(7), []).append(m)
    for r in recs:
        got = lines.get(r["id"], [])
        check(len(got) == 1 and int(got[0].group(3)) == r["status"] and got[0].group(2) == r["by"],
              "haproxy logged %s %d times (%s), the client saw %s from %s"
              % (r["id"], len(got), [g.group(0) for g in got], r["status"], r["by"]))
        r["retries"] = int(got[0].group(6))
        r["state"] = got[0].group(4)
    check(len(lines) == len(recs), "haproxy logged requests no client sent")
    for r in fails:
        check(r["state"].startswith("SH") and r["retries"] == 0,
              "a 502 that is not 'server closed the connection': %s" % r)
    inflight_kill = [r for r in recs if at_kill(r)]
    retried_keyed = [r for r in inflight_kill if r["keyed"] and r["retries"] > 0]
    print("  in flight at the kill: %d; 502 (keyless, on %s): %d; keyed ones retried: %d"
          % (len(inflight_kill), KILLED, len(fails), len(retried_keyed)))

    # 3. The drained replica: everything it answered was a 200; it did cancel nothing.
    check(by_server(recs, 502)[DRAINED] == 0, "a 502 from the drained replica")
    inflight_term = [r for r in recs if r["by"] == DRAINED and r["t0"] <= ev["term"] <= r["t1"]]
    check(inflight_term, "no request was in flight at the drained replica: the drain was not tested")
    check(all(r["status"] == 200 for r in inflight_term), "a request in flight at the drain failed")
    check("drain timeout" not in drained_log, "the drain timed out:\n" + drained_log[-2000:])
    after = [r for r in recs if r["by"] == DRAINED and r["t0"] > ev["drained_exit"]]
    check(not after, "requests served by the drained replica after it exited: %s" % after[:3])
    check(ev["drained_exit"] >= ev["job_fetched"], "the drained replica exited before its /jobs "
          "result was fetched")
    print("  in flight at the drained replica at SIGTERM: %d through haproxy + 1 long job, all "
          "200, + 1 POST /jobs job, fetched through haproxy after %.2f s; out of rotation "
          "(readiness 503) %.2f s after the signal, the long job done after %.2f s, exit 0 "
          "after %.2f s"
          % (len(inflight_term), ev["job_fetched"] - ev["term"], ev["drained_down"] - ev["term"],
             ev["long_done"] - ev["term"], ev["drained_exit"] - ev["term"]))

    # 4. Clients vs HAProxy: the frontend, and each server over both backends.
    fe = st[("ditd_in", "FRONTEND")]
    fe0 = lb0[("ditd_in", "FRONTEND")]
    # The test's own requests during the load (the /jobs job on the drained replica) count too.
    own_total = sum(own.values())
    own_cls = {c: sum(v for (k, _), v in own.items() if k == c) for c in ("2xx", "5xx")}
    fe_req = int(fe["req_tot"]) - int(fe0["req_tot"])
    check(fe_req == total + own_total, "haproxy frontend counted %d requests, clients sent %d "
          "and the test %d" % (fe_req, total, own_total))
    for cls, n in (("2xx", statuses.get(200, 0)), ("5xx", statuses.get(502, 0))):
        got = int(fe["hrsp_" + cls]) - int(fe0["hrsp_" + cls])
        check(got == n + own_cls[cls], "haproxy frontend %s = %d, clients saw %d, the test %d"
              % (cls, got, n, own_cls[cls]))
    seen_ok = by_server(recs, 200)
    for n in NAMES:
        got = server_sum(st, n, "hrsp_2xx") - server_sum(lb0, n, "hrsp_2xx")
        mine = own.get(("2xx", n), 0)
        check(got == seen_ok[n] + mine, "haproxy counted %d 2xx from %s, clients %d, the test %d"
              % (got, n, seen_ok[n], mine))
    retries = sum(int(st[(px, "BACKEND")]["wretr"]) + int(st[(px, "BACKEND")]["wredis"])
                  for px in ("ditd", "ditd_once"))
    print("  haproxy: %s; retries + redispatches: %d" % (
        ", ".join("%s 2xx %d" % (n, seen_ok[n]) for n in NAMES), retries))

    # 5. Replicas vs clients and HAProxy. The kept replica's /metrics see all of its life
    #    (the /jobs posts of the first phase included); the others by their access logs.
    kept = live[KEPT]
    gen_ok = kept.get('ditd_http_requests_total{endpoint="generate",code="200"}', 0)
    check(gen_ok == seen_ok[KEPT], "%s /metrics: %d generate 200, clients saw %d"
          % (KEPT, gen_ok, seen_ok[KEPT]))
    outcomes = sum(kept.get('ditd_jobs_total{outcome="%s"}' % o, 0)
                   for o in ("completed", "rejected", "cancelled", "failed"))
    check(kept["ditd_jobs_received_total"] == outcomes + kept["ditd_jobs_running"] +
          kept["ditd_queue_depth"], "%s jobs do not add up" % KEPT)
    check(kept.get('ditd_jobs_total{outcome="cancelled"}', 0) == deleted.get(KEPT, 0) and
          kept.get('ditd_jobs_total{outcome="failed"}', 0) == 0,
          "%s: cancelled or failed jobs beyond the %d the test deleted"
          % (KEPT, deleted.get(KEPT, 0)))

    drained = access_counts(drained_log)
    check(drained.get(("POST", "/generate", 200), 0) == seen_ok[DRAINED] + 1,
          "%s access log: %d generate 200, clients %d through haproxy + the long one" % (
              DRAINED, drained.get(("POST", "/generate", 200), 0), seen_ok[DRAINED]))
    refused = drained.get(("POST", "/generate", 503), 0)
    # A 503 that HAProxy retries elsewhere counts as a retry on the server that sent it
    # (wretr), never as its answer; so do connections refused once the listener closed.
    retried = server_sum(st, DRAINED, "wretr") - server_sum(lb0, DRAINED, "wretr")
    check(server_sum(st, DRAINED, "hrsp_5xx") == server_sum(lb0, DRAINED, "hrsp_5xx"),
          "haproxy passed a 5xx of %s on to a client" % DRAINED)
    check(refused <= retried, "%s refused %d during the drain (503), haproxy retried %d"
          % (DRAINED, refused, retried))
    print("  %s: %d generate 200 in its access log; %d new requests refused with 503 while it "
          "drained, all retried elsewhere (haproxy: %d retries away from it)"
          % (DRAINED, seen_ok[DRAINED], refused, retried))

    before = by_server(recs, 200, lambda r: r["t0"] < ev["kill"])[KILLED]
    old = access_counts(killed_log).get(("POST", "/generate", 200), 0)
    check(old == before, "killed %s's access log: %d generate 200 before the kill, clients %d"
          % (KILLED, old, before))
    new_metrics = live[KILLED].get('ditd_http_requests_total{endpoint="generate",code="200"}', 0)
    new_log = access_counts(restarted_log).get(("POST", "/generate", 200), 0)
    since = by_server(recs, 200, lambda r: r["t0"] > ev["restart"])[KILLED]
    check(new_metrics == new_log == since == seen_ok[KILLED] - before,
          "restarted %s: /metrics %d, access log %d, clients after the restart %d, in all %d - %d"
          % (KILLED, new_metrics, new_log, since, seen_ok[KILLED], before))
    print("  %s: %d generate 200 before the kill, %d after the restart (its /metrics agree)"
          % (KILLED, before, since))
    print("FIGURE fleet: %d requests, %d clients, %.0f s: drain of %s lost 0 of %d in flight; kill "
          "of %s: %d keyless 502, %d keyed retried; clients = haproxy = replicas"
          % (total, a.clients, a.seconds, DRAINED, len(inflight_term) + 2, KILLED, len(fails),
             len(retried_keyed)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ditd", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seconds", type=float, default=12)
    ap.add_argument("--clients", type=int, default=9)
    a = ap.parse_args()
    if not shutil.which("haproxy"):
        print("SKIP: haproxy is not installed (tools/install-deps.sh installs it)")
        return 77
    a.model = ensure_model(a.workdir)
    a.tmp = os.path.join(a.workdir, "fleet-%d" % os.getpid())
    os.makedirs(a.tmp, exist_ok=True)
    fleet(a)
    shutil.rmtree(a.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
