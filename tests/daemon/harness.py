"""Start the real ditd on 127.0.0.1 for a test and talk to it (stdlib only).

    with Daemon(ditd, model, "--max-queue", "3", env={...}) as d:
        status, headers, body = d.request("POST", "/generate", {"class": 1})

The daemon listens on an ephemeral port (--listen 127.0.0.1:0) and writes it to a port file;
every wait is bounded, and the daemon is always killed on exit.

With DITD_TEST_VALGRIND=1 in the environment the daemon runs under valgrind memcheck (start-up
waits are longer); on exit it gets SIGTERM rather than SIGKILL so that memcheck can report, and
a leak or an invalid access fails the test (exit code VALGRIND_ERROR, the log is printed).
"""
import base64
import fcntl
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VALGRIND = os.environ.get("DITD_TEST_VALGRIND") == "1"
VALGRIND_ERROR = 97
SLOW = 6 if VALGRIND else 1     # how much longer start-up takes under valgrind


def check(cond, msg):
    """A test's assertion (kept under python -O, unlike assert)."""
    if not cond:
        raise AssertionError(msg)


def parse_metrics(body):
    """{series: value} of a Prometheus text page (bytes), comment lines left out."""
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def registry():
    """(TESTS, test): a dict of test functions by name and the decorator that fills it."""
    tests = {}

    def test(fn):
        tests[fn.__name__] = fn
        return fn
    return tests, test


def run_test(tests):
    """The main() of a test script: `SCRIPT --ditd PATH --workdir DIR NAME` runs tests[NAME](a)
    with a.ditd, a.workdir and a.model (the tiny model)."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--ditd", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("name", choices=sorted(tests))
    a = ap.parse_args()
    a.model = ensure_model(a.workdir)
    return tests[a.name](a) or 0


def ensure_model(workdir):
    """The tiny random model, generated once per work directory (tests run in parallel)."""
    os.makedirs(workdir, exist_ok=True)
    model = os.path.join(workdir, "tiny-model")
    with open(os.path.join(workdir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([sys.executable, os.path.join(HERE, "make_tiny_model.py"), model],
                       check=True, timeout=300)
    return model


class Daemon:
    def __init__(self, ditd, model, *args, env=None, conf=None, start_timeout=30, cwd=None):
        """model None: no --model flag (the daemon finds its default model)."""
        self.tmp = tempfile.mkdtemp(prefix="ditd-test-")
        self.port_file = os.path.join(self.tmp, "port")
        self.log_path = os.path.join(self.tmp, "ditd.log")
        argv = [ditd, "--listen", "127.0.0.1:0", "--port-file", self.port_file]
        if model is not None:
            argv += ["--model", model]
        if conf is not None:
            self.conf = os.path.join(self.tmp, "ditd.conf")
            with open(self.conf, "w") as f:
                f.write(conf.replace("$TMP", self.tmp))    # e.g. port_file = $TMP/port
            argv += ["--config", self.conf]
        argv += list(args)
        e = dict(os.environ)
        e.pop("NOTIFY_SOCKET", None)
        e.pop("WATCHDOG_USEC", None)
        e.update(env or {})
        if VALGRIND:
            # A kept OpenBLAS kernel: no re-exec, and no AVX-512 (valgrind 3.19 lacks it).
            e["DITD_BLAS"] = "keep"
            e.setdefault("OPENBLAS_CORETYPE", "Haswell")
            self.vg_log = os.path.join(self.tmp, "valgrind.%p.log")
            argv = ["valgrind", "--error-exitcode=%d" % VALGRIND_ERROR, "--leak-check=full",
                    "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
                    "--track-fds=no", "--log-file=" + self.vg_log] + argv
            start_timeout *= SLOW
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=e,
                                     cwd=cwd)
        self.port = None
        deadline = time.time() + start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ditd exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            if os.path.exists(self.port_file):
                with open(self.port_file) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    break
            time.sleep(0.02)
        if not self.port:
            self.kill()
            raise RuntimeError("ditd did not bind:\n" + self.logs())

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            try:
                if self.request("GET", "/health/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("ditd not ready:\n" + self.logs())

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = self.conn(timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None, timeout=60):
        s, h, b = self.request(method, path, body, headers, timeout)
        return s, h, json.loads(b) if b else None

    def metrics(self):
        s, _, b = self.request("GET", "/metrics")
        check(s == 200, "GET /metrics -> %s" % s)
        return parse_metrics(b)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            return None
        self.valgrind_report(rc)
        return rc

    def valgrind_report(self, rc):
        """Print memcheck's summary lines, and its whole logs when it found errors (exit code
        VALGRIND_ERROR)."""
        if not VALGRIND:
            return
        d = os.path.dirname(self.vg_log)
        for name in sorted(os.listdir(d)):
            if name.startswith("valgrind."):
                with open(os.path.join(d, name)) as f:
                    text = f.read()
                if rc == VALGRIND_ERROR:
                    sys.stderr.write(text)
                keep = ("ERROR SUMMARY", "definitely lost", "All heap blocks were freed")
                print("memcheck: " + "; ".join(l.split("== ", 1)[-1] for l in text.splitlines()
                                               if any(k in l for k in keep)), flush=True)

    def kill(self):
        if self.proc.poll() is None and VALGRIND:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(60)
            except subprocess.TimeoutExpired:
                rc = None
            if rc is not None:
                self.log.close()
                self.valgrind_report(rc)
                if rc == VALGRIND_ERROR:
                    raise AssertionError("valgrind memcheck found errors (log above)")
                return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        return False


def sse_events(resp, limit=100000):
    """Yield (id, event, data-dict) from an http.client response of an event stream."""
    ev = {}
    n = 0
    while n < limit:
        line = resp.readline()
        if not line:
            return
        line = line.decode().rstrip("\n")
        if line == "":
            if "event" in ev:
                n += 1
                yield ev.get("id"), ev["event"], json.loads(ev.get("data", "null"))
            ev = {}
        elif line.startswith(":"):
            continue
        else:
            k, _, v = line.partition(": ")
            ev[k] = v


def png_from_b64(s):
    return base64.b64decode(s)


def is_png(b):
    return b[:8] == b"\x89PNG\r\n\x1a\n" and b[-8:-4] == b"IEND"
