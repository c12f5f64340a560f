"""Running the final stage as its container would, and the checks made on it (PASS/FAIL lines).

The daemon gets `--listen 127.0.0.1:PORT` appended: the container listens on 0.0.0.0, which on a
host without a network namespace would mean every interface."""
import configparser
import os
import re
import shlex
import signal
import socket
import stat
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request

from .common import DEFAULT_PATH, CheckError, say
from .context import content_digest
from .rootfs import RootMounts, chroot_argv, container_env, in_root, resolve_user


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def http(method, url, body=None, timeout=5.0):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening_addresses(pid):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(m.group(1))
    found = []
    for table, family in (("tcp", 4), ("tcp6", 6)):
        with open(f"/proc/net/{table}") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] != "0A" or cols[9] not in inodes:
                    continue
                addr_hex, port_hex = cols[1].split(":")
                raw = bytes.fromhex(addr_hex)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                addr = socket.inet_ntop(socket.AF_INET if family == 4 else socket.AF_INET6, raw)
                found.append(f"{addr}:{int(port_hex, 16)}" if family == 4
                             else f"[{addr}]:{int(port_hex, 16)}")
    return found


def elf_interp(path):
    """True for an ELF file with a program interpreter (a dynamically linked program)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF":
                return False
            bits, endian = head[4], "<" if head[5] == 1 else ">"
            if bits == 2:
                phoff, = struct.unpack_from(endian + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
            else:
                phoff, = struct.unpack_from(endian + "I", head, 28)
                phentsize, phnum = struct.unpack_from(endian + "HH", head, 42)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                ptype, = struct.unpack(endian + "I", f.read(4))
                if ptype == 3:
                    return True
    except (OSError, struct.error):
        return False
    return False


def config_drain_timeout(root, entrypoint):
    """drain_timeout of the configuration file the ENTRYPOINT names (30 when absent)."""
    path = None
    for i, a in enumerate(entrypoint):
        if a == "--config" and i + 1 < len(entrypoint):
            path = entrypoint[i + 1]
        elif a.startswith("--config="):
            path = a.split("=", 1)[1]
    if path:
        cp = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None)
        try:
            cp.read(in_root(root, path))
            return cp.getint("queue", "drain_timeout", fallback=30), path
        except (configparser.Error, ValueError):
            pass
    return 30, path


class Checks:
    def __init__(self):
        self.results = []

    def report(self, name, ok, detail):
        say(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
        self.results.append((name, ok))


def check_no_compiler(checks, final):
    root = final.root
    dirs = []
    for d in final.env.get("PATH", DEFAULT_PATH).split(":") + DEFAULT_PATH.split(":"):
        if d and d not in dirs:
            dirs.append(d)
    found = []
    for tool in ("gcc", "cc", "meson"):
        for d in dirs:
            if os.path.lexists(os.path.join(in_root(root, d), tool)):
                found.append(f"{d}/{tool}")
    checks.report("no-compiler", not found,
                  f"found {', '.join(found)}" if found else
                  f"gcc, cc and meson absent from {len(dirs)} PATH directories")


def check_ldd(checks, final, user, run_dir):
    root = final.root
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d not in ("proc", "sys", "dev")]
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = "/" + os.path.relpath(full, root)
            ours = rel.startswith("/usr/local/") and ".so" in name
            if (st.st_mode & 0o111 and elf_interp(full)) or ours:
                files.append(rel)
    files.sort()
    script = 'for f do echo "@@ $f"; ldd "$f" 2>&1 || echo "@@status $?"; done'
    with RootMounts(root):
        p = subprocess.run(chroot_argv(root, user, "/", ["/bin/sh", "-c", script, "sh"] + files),
                           env={"PATH": DEFAULT_PATH}, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
    with open(os.path.join(run_dir, "ldd.txt"), "w") as f:
        f.write(p.stdout + p.stderr)
    bad, current = [], None
    for line in p.stdout.splitlines():
        if line.startswith("@@ "):
            current = line[3:]
        elif "not found" in line or line.startswith("@@status"):
            bad.append(f"{current}: {line.strip()}")
    local = [f for f in files if f.startswith("/usr/local/")]
    ok = p.returncode == 0 and not bad and bool(local)
    detail = (f"{len(files)} dynamically linked programs (ours: {', '.join(local) or 'none'}), "
              "every library resolves" if ok else
              "; ".join(bad[:8]) or f"ldd loop exited {p.returncode}: {p.stderr.strip()[:200]}")
    checks.report("ldd", ok, detail)


def check_model(checks, final, ctx, log_text):
    path = final.env.get("DITD_MODEL")
    if not path:
        checks.report("model", False, "the image's ENV has no DITD_MODEL")
        return
    host = in_root(final.root, path)
    source = os.path.join(ctx.path, "models", os.path.basename(path.rstrip("/")))
    problems, n = [], 0
    if not os.path.isfile(os.path.join(host, "model_index.json")):
        problems.append(f"no model_index.json under {path}")
    if os.path.isdir(source):
        for dirpath, _, filenames in os.walk(source):
            for name in filenames:
                rel = os.path.relpath(os.path.join(dirpath, name), source)
                mine = os.path.join(host, rel)
                n += 1
                if not os.path.isfile(mine):
                    problems.append(f"{rel} missing")
                elif content_digest(os.path.join(source, rel)) != content_digest(mine):
                    problems.append(f"{rel} differs from models/{os.path.basename(source)}")
                elif not os.stat(mine).st_mode & stat.S_IROTH:
                    problems.append(f"{rel} is not world-readable")
    loaded = f"loading {path.rstrip('/')}" in log_text
    if not loaded:
        problems.append(f"the daemon's log does not say it loaded {path}")
    checks.report("model", not problems,
                  "; ".join(problems[:5]) if problems else
                  f"DITD_MODEL={path}: {n} files identical to models/{os.path.basename(source)},"
                  " world-readable, and the daemon loaded it")


def readme_curl(ctx, port, out):
    with open(os.path.join(ctx.path, "README.md"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("curl ") and "/generate" in line:
                break
        else:
            raise CheckError("README.md has no `curl ... /generate` line")
    argv = shlex.split(line.split("#", 1)[0])
    readme_argv = list(argv)
    for i, a in enumerate(argv):
        if re.match(r"(https?://)?[^/\s]+:\d+/generate$", a):
            argv[i] = re.sub(r"^(https?://)?[^/]+", f"127.0.0.1:{port}", a)
        if a == "-o" and i + 1 < len(argv):
            argv[i + 1] = out
    if "-o" not in argv:
        argv += ["-o", out]
    return readme_argv, argv[:1] + ["-sS", "-w", "%{http_code} %{content_type}"] + argv[1:]


def run_final(final, ctx, work, args, checks):
    root = final.root
    run_dir = os.path.join(work, "run")
    os.makedirs(run_dir, exist_ok=True)
    user = resolve_user(root, final.user)
    env = container_env(final, user[3])

    check_no_compiler(checks, final)
    check_ldd(checks, final, (0, 0, [0], "/root"), run_dir)

    if not final.entrypoint or final.entrypoint[1]:
        checks.report("start", False, "no exec-form ENTRYPOINT to start")
        return
    entry = final.entrypoint[0]
    exposed = final.expose[0][0] if final.expose else 8080
    # Never the EXPOSE port: the HEALTHCHECK has to follow a --listen given at run time.
    port = args.port or free_port()
    if port == exposed:
        say(f"note: --port {port} is the EXPOSE port; the healthcheck then proves less")
    argv = entry + ["--listen", f"127.0.0.1:{port}"]
    say(f"starting: unshare --pid --fork --mount-proc chroot --userspec={user[0]}:{user[1]} "
        f"{root} {shlex.join(argv)}")
    say(f"  (appended --listen 127.0.0.1:{port}; the container itself listens on the "
        "ENTRYPOINT's 0.0.0.0)")
    log_path = os.path.join(run_dir, "ditd.log")
    drain_timeout, conf = config_drain_timeout(root, entry)
    budget = drain_timeout + 2 + 3
    base = f"http://127.0.0.1:{port}"
    # Its own PID namespace, as in a container: the ENTRYPOINT is PID 1 there, and a PID 1
    # gets no default signal actions (a SIGTERM without a handler would be ignored).
    pidns = ["unshare", "--pid", "--fork", "--kill-child", f"--mount-proc={root}/proc"]
    with RootMounts(root), open(log_path, "wb") as log:
        proc = subprocess.Popen(pidns + chroot_argv(root, user, final.workdir, argv), env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        daemon = None
        try:
            t = time.monotonic()
            while daemon is None and proc.poll() is None and time.monotonic() - t < 10:
                with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                    kids = f.read().split()
                daemon = int(kids[0]) if kids else None
                time.sleep(0.01)
            if daemon is None:
                checks.report("start", False, f"unshare exited {proc.poll()}; log:\n"
                                              f"{log_tail(log_path)}")
                return
            run_daemon_checks(checks, final, ctx, proc, daemon, user, env, port, exposed, base,
                              budget, drain_timeout, log_path, run_dir, args)
        finally:
            if proc.poll() is None:
                if daemon:
                    os.kill(daemon, signal.SIGKILL)
                proc.kill()
                proc.wait()


def log_tail(path, n=15):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-n:])


def run_daemon_checks(checks, final, ctx, proc, pid, user, env, port, exposed, base, budget,
                      drain_timeout, log_path, run_dir, args):
    """proc is unshare (its exit status is the daemon's), pid the daemon's host pid."""
    root = final.root
    t0, ready = time.monotonic(), False
    while time.monotonic() - t0 < args.ready_timeout:
        if proc.poll() is not None:
            break
        try:
            if http("GET", base + "/health/ready", timeout=2)[0] == 200:
                ready = True
                break
        except OSError:
            pass
        time.sleep(0.2)
    if not ready:
        state = (f"exited with status {proc.returncode}" if proc.poll() is not None
                 else f"not ready after {args.ready_timeout} s")
        checks.report("ready", False, f"{state}; log:\n{log_tail(log_path)}")
        return
    checks.report("ready", True, f"/health/ready answered 200 after "
                                 f"{time.monotonic() - t0:.1f} s")

    # Identity of the process serving (chroot exec'd it, so the pid is the daemon's).
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    uids = [int(x) for x in re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()]
    gids = [int(x) for x in re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()]
    nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M).group(1).split()
    exe = os.readlink(f"/proc/{pid}/exe")
    ok = all(u != 0 for u in uids) and all(g != 0 for g in gids) and uids[0] == user[0] \
        and gids[0] == user[1]
    checks.report("non-root", ok, f"{exe.removeprefix(root)} (pid {pid}, PID {nspid[-1]} in its "
                                  f"namespace) runs as uid {uids[0]} gid {gids[0]} "
                                  f"(USER {final.user})")

    addrs = listening_addresses(pid)
    checks.report("listen", addrs == [f"127.0.0.1:{port}"],
                  f"listening on {', '.join(addrs) or 'nothing'} (override of the "
                  "ENTRYPOINT's 0.0.0.0 for this check)")

    with open(log_path, errors="replace") as f:
        check_model(checks, final, ctx, f.read())

    out = os.path.join(run_dir, "out.png")
    if os.path.exists(out):
        os.remove(out)
    readme_argv, curl = readme_curl(ctx, port, out)
    say(f"README: {shlex.join(readme_argv)}")
    say(f"  run:  {shlex.join(curl)}")
    curl_env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    p = subprocess.run(curl, capture_output=True, text=True, env=curl_env, timeout=120)
    head = b""
    if os.path.exists(out):
        with open(out, "rb") as f:
            head = f.read(24)
    ok = p.returncode == 0 and p.stdout.startswith("200 ") and head[:8] == PNG_MAGIC
    if ok:
        w, h = struct.unpack(">II", head[16:24])
        detail = f"HTTP 200 {p.stdout[4:]}, {os.path.getsize(out)} bytes, PNG {w}x{h}"
    else:
        detail = f"curl status {p.returncode}, '{p.stdout}', first bytes {head[:8]!r} {p.stderr}"
    checks.report("curl-png", ok, detail)

    hc = final.healthcheck
    if not hc:
        checks.report("healthcheck", False, "the image has no HEALTHCHECK")
    else:
        probe = hc["argv"]
        fixed = [a for a in probe if re.search(r"(^|[^\w.])(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:]*\]):\d+", a)]
        t = time.monotonic()
        try:
            p = subprocess.run(chroot_argv(root, user, final.workdir, probe), env=env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=hc["timeout"])
            rc, err = p.returncode, p.stderr.strip()
        except subprocess.TimeoutExpired:
            rc, err = None, f"timed out after {hc['timeout']} s"
        checks.report("healthcheck", rc == 0 and not fixed,
                      f"{shlex.join(probe)} exited {rc} in {time.monotonic() - t:.2f} s "
                      f"as uid {user[0]}, the daemon on port {port} (EXPOSE {exposed})" +
                      (f": {err}" if err else "") +
                      (f"; hard-coded address {fixed}" if fixed else ""))

    # SIGTERM with a request in flight: the drain should let it finish, then exit 0.
    answer = {}

    def long_request():
        try:
            answer["r"] = http("POST", base + "/generate", b'{"class":7,"steps":1000}',
                               timeout=budget + 30)
        except OSError as e:
            answer["r"] = (None, {}, str(e).encode())

    worker = threading.Thread(target=long_request, daemon=True)
    worker.start()
    running, t = 0, time.monotonic()
    while time.monotonic() - t < 10 and not running:
        time.sleep(0.1)
        m = re.search(r"^ditd_jobs_running (\S+)$",
                      http("GET", base + "/metrics")[2].decode(), re.M)
        running = int(float(m.group(1))) if m else 0
    t = time.monotonic()
    os.kill(pid, final.stopsignal)
    while time.monotonic() - t < 2 and proc.poll() is None:
        with open(log_path, errors="replace") as f:
            if re.search(r"\bdraining\b", f.read()):
                break
        time.sleep(0.02)
    if hc:
        p = subprocess.run(chroot_argv(root, user, final.workdir, probe), env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=hc["timeout"] + 5)
        checks.report("healthcheck-draining", p.returncode != 0,
                      f"the probe exits {p.returncode} once {final.stopsignal.name} is "
                      f"received ({p.stderr.strip() or 'no message'})")
    try:
        rc = proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        rc = None
    elapsed = time.monotonic() - t
    checks.report("sigterm", rc == 0 and elapsed <= budget,
                  f"{final.stopsignal.name} to PID {nspid[-1]} -> exit status {rc} after "
                  f"{elapsed:.1f} s "
                  f"(budget {budget} s = drain_timeout {drain_timeout} + 2 s flush + 3 s)")
    worker.join(timeout=10)
    status, headers, body = answer.get("r", (None, {}, b""))
    checks.report("drain", running >= 1 and status == 200 and body[:8] == PNG_MAGIC,
                  f"{running} job(s) running at the signal; the in-flight 1000-step request "
                  f"got {status} {headers.get('Content-Type', '')} "
                  f"({len(body)} bytes)")
