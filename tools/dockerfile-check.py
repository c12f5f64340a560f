#!/usr/bin/python3
"""Build the repository's Dockerfile without a Docker engine, then run and check its final stage.

    sudo /usr/bin/python3 tools/dockerfile-check.py [--keep] [--no-cache] [--workdir DIR]

The Dockerfile is interpreted, not handed to an engine. Only the instructions ditd's Dockerfile
uses are known (FROM, RUN, WORKDIR, COPY, ENV, USER, EXPOSE, STOPSIGNAL, HEALTHCHECK,
ENTRYPOINT); anything else is refused. Each stage is a directory tree:

* FROM debian:12 is a `debootstrap --variant=minbase bookworm` tree (the official image is made
  with the same variant) with the image's apt sources, no package lists and no host identity;
  FROM debian:12-slim is that tree with the slim image's dpkg path excludes applied as well
  (documentation, man pages, locales; copyright files are kept). The debootstrap result is kept
  under the work directory, so only the first run pays for it.
* RUN runs `chroot ROOT /bin/sh -c CMD` with /proc, /dev and /sys bind-mounted (and the host's
  resolv.conf, as an engine provides one), as the stage's USER, in its WORKDIR, with its ENV.
* COPY copies from the build context (minus .dockerignore) or from an earlier stage; new files
  are owned by 0:0 as with an engine. A layer cache keyed on the instruction chain (and on the
  content of copied files) keeps a snapshot after each RUN, so unchanged steps are skipped.

Then the final stage runs as its container would (ENTRYPOINT as USER with ENV and WORKDIR,
/proc, /dev and /sys mounted, PID 1 of its own PID namespace) except that
`--listen 127.0.0.1:PORT` is appended: the container listens on 0.0.0.0, which on a host
without a network namespace would mean every interface.
The checks print one PASS/FAIL line each; the exit status is 1 if any fails, 2 for usage errors.
Needs root, debootstrap, curl and a reachable Debian mirror. See docs/operations.md.
"""
import argparse
import configparser
import fcntl
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KEYWORDS = ("FROM", "RUN", "WORKDIR", "COPY", "ENV", "USER", "EXPOSE", "STOPSIGNAL",
            "HEALTHCHECK", "ENTRYPOINT")
# Bumped when the way a base tree is derived from debootstrap changes (rebuilds the bases).
BASE_RECIPE = 1
BASES = {
    "debian:12": "debian-12", "debian:bookworm": "debian-12",
    "debian:12-slim": "debian-12-slim", "debian:bookworm-slim": "debian-12-slim",
}
# The slim image keeps dpkg from installing these (last matching line wins).
SLIM_PATH_RULES = [
    ("exclude", "/usr/share/doc/*"),
    ("include", "/usr/share/doc/*/copyright"),
    ("exclude", "/usr/share/groff/*"),
    ("exclude", "/usr/share/info/*"),
    ("exclude", "/usr/share/linda/*"),
    ("exclude", "/usr/share/lintian/*"),
    ("exclude", "/usr/share/locale/*"),
    ("exclude", "/usr/share/man/*"),
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class CheckError(Exception):
    """The Dockerfile, the context or a build step is wrong (reported as FAIL)."""


class UsageError(Exception):
    """The Dockerfile uses something this interpreter does not do (exit 2)."""


class Interrupted(BaseException):
    pass


def say(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- mounts, processes, removal

def mountpoints():
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            raw = line.split()[4]
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


def mounts_under(path):
    path = os.path.realpath(path)
    return [m for m in mountpoints() if m == path or m.startswith(path + "/")]


def unmount(point, recursive=False):
    flags = ["--recursive"] if recursive else []
    if subprocess.run(["umount"] + flags + [point], stderr=subprocess.DEVNULL).returncode == 0:
        return True
    return subprocess.run(["umount", "--lazy"] + flags + [point]).returncode == 0


def kill_processes_in(root):
    """SIGKILL processes whose root directory is this tree (all started by this tool)."""
    root = os.path.realpath(root)
    killed = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            r = os.readlink(f"/proc/{name}/root")
        except OSError:
            continue
        if r == root or r.startswith(root + "/"):
            try:
                os.kill(int(name), signal.SIGKILL)
                killed.append(int(name))
            except ProcessLookupError:
                pass
    if killed:
        say(f"note: killed processes left in {root}: {killed}")
        time.sleep(0.2)


class RootMounts:
    """/proc, /dev and /sys of the host bound into a tree (and resolv.conf for RUN).

    The binds are recursive (so /dev/pts and /dev/shm are there, as in a container) and made
    slaves at once: on a host whose mounts are shared (systemd's default), unmounting a shared
    copy of /dev/pts would otherwise unmount the host's own."""

    def __init__(self, root, resolv=False):
        self.root, self.resolv = root, resolv
        self.points, self.created = [], []

    def __enter__(self):
        try:
            for name in ("proc", "dev", "sys"):
                target = os.path.join(self.root, name)
                if os.path.islink(target):
                    raise CheckError(f"/{name} is a symlink in {self.root}")
                os.makedirs(target, exist_ok=True)
                self._bind("/" + name, target)
            if self.resolv and os.path.exists("/etc/resolv.conf"):
                target = os.path.join(self.root, "etc", "resolv.conf")
                if not os.path.islink(target):
                    if not os.path.exists(target):
                        open(target, "w").close()
                        self.created.append(target)
                    self._bind("/etc/resolv.conf", target)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _bind(self, src, dst):
        subprocess.run(["mount", "--rbind", src, dst], check=True)
        self.points.append(dst)
        subprocess.run(["mount", "--make-rslave", dst], check=True)

    def __exit__(self, *exc):
        kill_processes_in(self.root)
        stuck = [p for p in reversed(self.points) if not unmount(p, recursive=True)]
        self.points = []
        for path in self.created:
            try:
                os.remove(path)
            except OSError:
                pass
        if stuck:
            raise CheckError(f"could not unmount {stuck}")
        return False


def remove_tree(path, work):
    path = os.path.abspath(path)
    if not path.startswith(os.path.realpath(work) + "/"):
        raise CheckError(f"refusing to remove {path}: not under the work directory")
    if not os.path.lexists(path):
        return
    left = mounts_under(path)
    if left:
        raise CheckError(f"refusing to remove {path}: still mounted: {left}")
    subprocess.run(["rm", "-rf", "--one-file-system", "--", path], check=True)


def copy_tree(src, dst):
    """cp -a of a whole tree, refused while anything is mounted inside it."""
    if mounts_under(src):
        raise CheckError(f"refusing to copy {src}: something is mounted inside")
    subprocess.run(["cp", "-a", "--reflink=auto", src, dst], check=True)


def in_root(root, path, follow_last=True):
    """Host path of `path` as seen inside `root`, symlinks resolved as chroot would see them."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done, hops = [], 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, name)
        if os.path.islink(here) and (parts or follow_last):
            hops += 1
            if hops > 40:
                raise CheckError(f"too many levels of symlinks in {path}")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        done.append(name)
    return os.path.join(root, *done)


# ---------------------------------------------------------------- Dockerfile parsing

class Instruction:
    def __init__(self, lineno, keyword, rest):
        self.lineno, self.keyword, self.rest = lineno, keyword, rest
        self.flags = {}

    def where(self):
        return f"Dockerfile:{self.lineno}"

    def short(self, width=100):
        text = re.sub(r"\s+", " ", f"{self.keyword} {self.rest}").strip()
        return text if len(text) <= width else text[:width - 3] + "..."


def parse_dockerfile(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    # Parser directives: only at the very top, before any comment, blank line or instruction.
    for line in lines:
        m = re.match(r"#\s*([A-Za-z]+)\s*=\s*(\S*)\s*$", line)
        if not m:
            break
        name, value = m.group(1).lower(), m.group(2)
        if name == "escape" and value != "\\":
            raise UsageError(f"parser directive escape={value} is not supported")
        if name not in ("escape", "syntax", "check"):
            break
    out, buf, start = [], None, 0
    for n, raw in enumerate(lines, 1):
        stripped = raw.strip()
        if buf is None:
            if not stripped or stripped.startswith("#"):
                continue
            buf, start = "", n
        elif not stripped or stripped.startswith("#"):
            continue        # comments and blank lines inside a continuation are dropped
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1]
            continue
        out.append((start, buf + line))
        buf = None
    if buf is not None:
        out.append((start, buf))
    instructions = []
    for lineno, text in out:
        m = re.match(r"\s*(\S+)\s*(.*)$", text, re.S)
        keyword = m.group(1).upper()
        if keyword not in KEYWORDS:
            raise UsageError(f"Dockerfile:{lineno}: unsupported instruction {m.group(1)} "
                             f"(this interpreter knows {', '.join(KEYWORDS)})")
        instructions.append(Instruction(lineno, keyword, m.group(2).strip()))
    if not instructions or instructions[0].keyword != "FROM":
        raise UsageError("Dockerfile: the first instruction must be FROM")
    return instructions


def take_flags(ins, allowed):
    rest = ins.rest
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        name, eq, value = token[2:].partition("=")
        if name not in allowed or not eq:
            raise UsageError(f"{ins.where()}: {ins.keyword} flag --{name} is not supported"
                             f" (known: {', '.join('--' + a + '=' for a in allowed) or 'none'})")
        ins.flags[name] = value
    return rest


def exec_form(text):
    text = text.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None     # not JSON: an engine treats it as shell form too
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _variable(text, i, env):
    if text.startswith("${", i):
        j = text.find("}", i + 2)
        if j < 0:
            raise UsageError(f"unterminated ${{ in {text!r}")
        m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?::([-+])(.*))?$", text[i + 2:j], re.S)
        if not m:
            raise UsageError(f"unsupported substitution in {text!r}")
        name, op, word = m.groups()
        value = env.get(name, "")
        if op == "-":
            value = value or word
        elif op == "+":
            value = word if value else ""
        return value, j + 1
    m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(text, i + 1)
    if not m:
        return "$", i + 1
    return env.get(m.group(0), ""), m.end()


def words(text, env, split=True):
    """Quotes, backslashes and $VAR / ${VAR} / ${VAR:-x} / ${VAR:+x}, as an engine does them
    for ENV, WORKDIR, COPY, USER, EXPOSE and STOPSIGNAL."""
    out, cur, have, i, n = [], [], False, 0, len(text)
    while i < n:
        c = text[i]
        if split and c in " \t\r\n":
            if have:
                out.append("".join(cur))
                cur, have = [], False
            i += 1
            continue
        have = True
        if c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise UsageError(f"unterminated ' in {text!r}")
            cur.append(text[i + 1:j])
            i = j + 1
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$':
                    cur.append(text[i + 1])
                    i += 2
                elif text[i] == "$":
                    value, i = _variable(text, i, env)
                    cur.append(value)
                else:
                    cur.append(text[i])
                    i += 1
            if i >= n:
                raise UsageError(f'unterminated " in {text!r}')
            i += 1
        elif c == "\\" and i + 1 < n:
            cur.append(text[i + 1])
            i += 2
        elif c == "$":
            value, i = _variable(text, i, env)
            cur.append(value)
        else:
            cur.append(c)
            i += 1
    if have:
        out.append("".join(cur))
    return out


def parse_duration(text, ins):
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise UsageError(f"{ins.where()}: bad duration {text!r}")
    return total


def parse_signal(text, ins):
    name = text.strip().upper()
    try:
        if name.isdigit():
            return signal.Signals(int(name))
        return signal.Signals[name if name.startswith("SIG") else "SIG" + name]
    except (KeyError, ValueError):
        raise UsageError(f"{ins.where()}: unknown signal {text!r}") from None


# ---------------------------------------------------------------- build context

def ignore_regex(pattern):
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            else:
                out.append(".*")
                i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith(("!", "^")):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + "$")


class Context:
    """The build context: a directory minus what .dockerignore excludes."""

    def __init__(self, path, work):
        self.path = os.path.realpath(path)
        self.work = os.path.realpath(work)
        self.rules = []
        ignore = os.path.join(self.path, ".dockerignore")
        if os.path.exists(ignore):
            with open(ignore, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    keep = line.startswith("!")
                    pat = os.path.normpath(line[1:].strip() if keep else line).lstrip("/")
                    if pat in ("", "."):
                        continue
                    self.rules.append((keep, ignore_regex(pat)))
        self.has_exceptions = any(keep for keep, _ in self.rules)
        self._entries = None

    def excluded(self, rel):
        parents = [rel]
        while "/" in parents[-1]:
            parents.append(parents[-1].rsplit("/", 1)[0])
        result = False
        for keep, rx in self.rules:
            if any(rx.match(p) for p in parents):
                result = not keep
        return result

    def refresh(self):
        self._entries = None

    def entries(self):
        """Relative paths of every entry sent to an engine, sorted."""
        if self._entries is not None:
            return self._entries
        out, warned = [], False
        for dirpath, dirnames, filenames in os.walk(self.path):
            reldir = os.path.relpath(dirpath, self.path)
            reldir = "" if reldir == "." else reldir + "/"
            keep_dirs = []
            for d in sorted(dirnames):
                full = os.path.join(dirpath, d)
                rel = reldir + d
                if os.path.realpath(full) == self.work:
                    if not self.excluded(rel) and not warned:
                        say(f"warning: the work directory {self.work} is inside the context and "
                            "not excluded by .dockerignore; leaving it out")
                        warned = True
                    continue
                ex = self.excluded(rel)
                if not ex:
                    out.append(rel)
                if os.path.islink(full):
                    continue
                if ex and not self.has_exceptions:
                    continue
                keep_dirs.append(d)
            dirnames[:] = keep_dirs
            for name in sorted(filenames):
                rel = reldir + name
                if not self.excluded(rel):
                    out.append(rel)
        self._entries = sorted(out)
        return self._entries

    def select(self, src, ins):
        """(relative top path, [relative paths]) for one COPY source."""
        src = os.path.normpath(src.lstrip("/")) if src not in (".", "./", "/") else "."
        if src.startswith(".."):
            raise CheckError(f"{ins.where()}: COPY source {src} is outside the build context")
        entries = self.entries()
        if src == ".":
            return [(".", entries)]
        if any(ch in src for ch in "*?["):
            rx = ignore_regex(src)
            tops = [e for e in entries if rx.match(e)]
        else:
            tops = [src] if src in entries else []
        if not tops:
            raise CheckError(f"{ins.where()}: COPY source {src} is not in the build context "
                             "(missing, or excluded by .dockerignore)")
        result = []
        for top in tops:
            full = os.path.join(self.path, top)
            if os.path.isdir(full) and not os.path.islink(full):
                result.append((top, [e for e in entries if e.startswith(top + "/")]))
            else:
                result.append((top, [top]))
        return result


def content_digest(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def digest_files(base, rels):
    h = hashlib.sha256()
    for rel in rels:
        full = os.path.join(base, rel)
        st = os.lstat(full)
        h.update(f"{rel}\0{st.st_mode:o}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(full).encode())
        elif stat.S_ISREG(st.st_mode):
            with open(full, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------- users and environment

def read_db(root, name):
    path = os.path.join(root, "etc", name)
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            rows = [line.rstrip("\n").split(":") for line in f if ":" in line]
    return rows


def resolve_user(root, spec):
    """(uid, gid, supplementary gids, home) for USER name[:group] inside root."""
    user, _, group = (spec or "root").partition(":")
    passwd = read_db(root, "passwd")
    groups = read_db(root, "group")
    entry = None
    for row in passwd:
        if len(row) >= 7 and (row[0] == user or (user.isdigit() and row[2] == user)):
            entry = row
            break
    if entry is None and not user.isdigit():
        raise CheckError(f"unable to find user {user}: no matching entries in passwd file")
    uid = int(entry[2]) if entry else int(user)
    gid = int(entry[3]) if entry else 0
    home = entry[5] if entry else "/"
    name = entry[0] if entry else None
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            row = next((r for r in groups if len(r) >= 3 and r[0] == group), None)
            if row is None:
                raise CheckError(f"unable to find group {group}")
            gid = int(row[2])
        extra = [gid]
    else:
        extra = [gid] + [int(r[2]) for r in groups
                         if len(r) >= 4 and name and name in r[3].split(",") and int(r[2]) != gid]
    return uid, gid, extra, home


def container_env(stage, home):
    env = {"HOSTNAME": "dockerfile-check"}
    env.update(stage.env)
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOME", home)
    return env


def chroot_argv(root, user, workdir, argv):
    uid, gid, groups, _ = user
    out = ["chroot", f"--userspec={uid}:{gid}", "--groups=" + ",".join(map(str, groups)), root]
    if workdir != "/":
        out += ["/usr/bin/env", f"--chdir={workdir}"]
    return out + list(argv)


# ---------------------------------------------------------------- base trees

def host_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_json(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=1)
    os.replace(path + ".tmp", path)


def write_file(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def debootstrap(work, args):
    cache = os.path.join(work, "cache")
    raw = os.path.join(cache, "debootstrap-bookworm-minbase")
    meta = host_json(raw + ".json")
    if meta and os.path.isdir(raw):
        return raw, meta
    if not shutil.which("debootstrap"):
        raise CheckError("debootstrap is not installed (apt-get install debootstrap)")
    partial = raw + ".partial"
    remove_tree(partial, work)
    remove_tree(raw, work)
    say(f"debootstrap --variant=minbase bookworm {partial} {args.mirror}  (first run only)")
    t = time.monotonic()
    # Its own process group, so that an interruption stops all of it (downloads, dpkg).
    p = subprocess.Popen(["debootstrap", "--variant=minbase", "bookworm", partial, args.mirror],
                         stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        rc = p.wait()
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise
    finally:
        kill_processes_in(partial)
        for point in sorted(mounts_under(partial), key=len, reverse=True):
            unmount(point)
    if rc != 0:
        raise CheckError(f"debootstrap failed with status {rc}")
    os.rename(partial, raw)
    meta = {"id": uuid.uuid4().hex, "suite": "bookworm", "variant": "minbase",
            "mirror": args.mirror, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.monotonic() - t, 1)}
    write_json(raw + ".json", meta)
    return raw, meta


def slim_excluded(path):
    state = False
    for kind, pattern in SLIM_PATH_RULES:
        if fnmatch.fnmatchcase(path, pattern):
            state = kind == "exclude"
    return state


def make_image_like(root, slim, args):
    """Turn a debootstrap tree into the equivalent of the official image's root file system."""
    etc = os.path.join(root, "etc")
    # The image's apt sources (deb822, with updates and security), and no package lists: an
    # image needs `apt-get update` before it can install anything.
    if os.path.exists(os.path.join(etc, "apt", "sources.list")):
        os.remove(os.path.join(etc, "apt", "sources.list"))
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    write_file(os.path.join(etc, "apt", "sources.list.d", "debian.sources"),
               f"Types: deb\nURIs: {args.mirror}\nSuites: bookworm bookworm-updates\n"
               f"Components: main\nSigned-By: {keyring}\n\n"
               f"Types: deb\nURIs: {args.security_mirror}\nSuites: bookworm-security\n"
               f"Components: main\nSigned-By: {keyring}\n")
    lists = os.path.join(root, "var", "lib", "apt", "lists")
    for name in os.listdir(lists) if os.path.isdir(lists) else []:
        full = os.path.join(lists, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.remove(full)
    archives = os.path.join(root, "var", "cache", "apt", "archives")
    for name in os.listdir(archives) if os.path.isdir(archives) else []:
        if name.endswith(".deb"):
            os.remove(os.path.join(archives, name))
    for name in ("pkgcache.bin", "srcpkgcache.bin"):
        path = os.path.join(root, "var", "cache", "apt", name)
        if os.path.exists(path):
            os.remove(path)
    # Container image conventions: services never start during a build, apt keeps no .deb
    # files and no translations, dpkg skips fsync.
    write_file(os.path.join(root, "usr", "sbin", "policy-rc.d"),
               "#!/bin/sh\n# dockerfile-check: no service starts inside an image build.\nexit 101\n",
               0o755)
    write_file(os.path.join(etc, "apt", "apt.conf.d", "docker-clean"),
               "# dockerfile-check: keep no downloaded packages in the image.\n"
               "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb "
               "/var/cache/apt/*.bin || true\"; };\n"
               "APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb "
               "/var/cache/apt/*.bin || true\"; };\n"
               "Dir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n")
    write_file(os.path.join(etc, "apt", "apt.conf.d", "docker-no-languages"),
               "Acquire::Languages \"none\";\n")
    write_file(os.path.join(etc, "dpkg", "dpkg.cfg.d", "docker-apt-speedup"), "force-unsafe-io\n")
    # No identity of the host: an engine provides these files at run time.
    for name in ("resolv.conf", "hostname"):
        path = os.path.join(etc, name)
        if os.path.lexists(path):
            os.remove(path)
    if slim:
        lines = ["# dockerfile-check: the slim image's dpkg path filters."]
        lines += [f"path-{kind} {pattern}" for kind, pattern in SLIM_PATH_RULES]
        write_file(os.path.join(etc, "dpkg", "dpkg.cfg.d", "docker"), "\n".join(lines) + "\n")
        removed = 0
        for top in ("usr/share/doc", "usr/share/groff", "usr/share/info", "usr/share/linda",
                    "usr/share/lintian", "usr/share/locale", "usr/share/man"):
            base = os.path.join(root, top)
            for dirpath, dirnames, filenames in os.walk(base, topdown=False):
                for name in filenames:
                    full = os.path.join(dirpath, name)
                    if slim_excluded("/" + os.path.relpath(full, root)):
                        os.remove(full)
                        removed += 1
                for name in dirnames:
                    full = os.path.join(dirpath, name)
                    if os.path.islink(full):
                        if slim_excluded("/" + os.path.relpath(full, root)):
                            os.remove(full)
                    elif not os.listdir(full):
                        os.rmdir(full)
        say(f"slim: removed {removed} files matching the slim image's dpkg path excludes")


def base_tree(name, work, args):
    raw, raw_meta = debootstrap(work, args)
    tree = os.path.join(work, "cache", name)
    meta = host_json(tree + ".json")
    if meta and os.path.isdir(tree) and meta.get("raw") == raw_meta["id"] \
            and meta.get("recipe") == BASE_RECIPE and meta.get("mirror") == args.mirror:
        return tree, meta["id"]
    say(f"preparing the {name} base tree from the debootstrap tree")
    partial = tree + ".partial"
    remove_tree(partial, work)
    remove_tree(tree, work)
    copy_tree(raw, partial)
    make_image_like(partial, name.endswith("-slim"), args)
    os.rename(partial, tree)
    meta = {"id": uuid.uuid4().hex, "raw": raw_meta["id"], "recipe": BASE_RECIPE,
            "mirror": args.mirror}
    write_json(tree + ".json", meta)
    return tree, meta["id"]


# ---------------------------------------------------------------- stages

class Stage:
    def __init__(self, index, instructions):
        self.index = index
        self.instructions = instructions
        self.from_ins = instructions[0]
        self.name = None
        self.root = None
        self.key = None
        self.reset()

    def reset(self):
        self.env = {"PATH": DEFAULT_PATH}
        self.workdir = "/"
        self.user = "root"
        self.expose = []
        self.stopsignal = signal.SIGTERM
        self.healthcheck = None
        self.entrypoint = None

    def label(self):
        return self.name or str(self.index)

    def inherit(self, other):
        self.env = dict(other.env)
        self.workdir, self.user = other.workdir, other.user
        self.expose = list(other.expose)
        self.stopsignal, self.healthcheck = other.stopsignal, other.healthcheck
        self.entrypoint = other.entrypoint


def split_stages(instructions):
    stages, current = [], None
    for ins in instructions:
        if ins.keyword == "FROM":
            current = Stage(len(stages), [ins])
            stages.append(current)
            rest = take_flags(ins, ())
            parts = rest.split()
            if len(parts) == 3 and parts[1].lower() == "as":
                current.name = parts[2].lower()
            elif len(parts) != 1:
                raise UsageError(f"{ins.where()}: expected FROM <image> [AS <name>]")
            image = parts[0].lower().removeprefix("docker.io/").removeprefix("library/")
            known = [s.name for s in stages[:-1]]
            if image not in BASES and image not in known:
                raise UsageError(f"{ins.where()}: base image {parts[0]} is not supported "
                                 f"(known: {', '.join(sorted(BASES))}, or an earlier stage)")
            current.image = image
        else:
            current.instructions.append(ins)
            validate(ins)
    return stages


def validate(ins):
    """Syntax of one non-FROM instruction, checked before anything is built."""
    k = ins.keyword
    if k == "RUN":
        take_flags(ins, ())
    elif k == "COPY":
        rest = take_flags(ins, ("from", "chown"))
        args = exec_form(rest) or words(rest, {}, split=True)
        if len(args) < 2:
            raise UsageError(f"{ins.where()}: COPY needs a source and a destination")
    elif k == "HEALTHCHECK":
        rest = take_flags(ins, ("interval", "timeout", "start-period", "start-interval",
                                "retries"))
        head = rest.split(None, 1)[0].upper() if rest else ""
        if head not in ("CMD", "NONE"):
            raise UsageError(f"{ins.where()}: HEALTHCHECK needs CMD or NONE")
    elif k in ("WORKDIR", "USER", "STOPSIGNAL", "ENTRYPOINT", "ENV", "EXPOSE") and not ins.rest:
        raise UsageError(f"{ins.where()}: {k} needs an argument")


class Builder:
    def __init__(self, stages, ctx, work, args):
        self.stages, self.ctx, self.work, self.args = stages, ctx, work, args
        self.layers = os.path.join(work, "layers")
        self.used_keys = set()

    # One instruction's effect on the stage. With execute=False only the metadata changes and
    # the chain key is returned; with execute=True the file system changes too.
    def step(self, stage, ins, execute):
        k = ins.keyword
        if k == "ENV":
            before = dict(stage.env)
            first = ins.rest.split(None, 1)[0]
            if "=" in first:
                for w in words(ins.rest, before):
                    name, eq, value = w.partition("=")
                    if not eq or not re.match(r"[A-Za-z_][A-Za-z0-9_.-]*$", name):
                        raise UsageError(f"{ins.where()}: ENV {w!r} is not name=value")
                    stage.env[name] = value
            else:
                name, _, value = ins.rest.partition(" ")
                stage.env[name] = "".join(words(value.strip(), before, split=False))
            return ""
        if k == "WORKDIR":
            path = "".join(words(ins.rest, stage.env, split=False))
            stage.workdir = os.path.normpath(os.path.join(stage.workdir, path))
            if execute:
                target = in_root(stage.root, stage.workdir)
                os.makedirs(target, exist_ok=True)
            return ""
        if k == "USER":
            stage.user = "".join(words(ins.rest, stage.env, split=False))
            return ""
        if k == "EXPOSE":
            for w in words(ins.rest, stage.env):
                port, _, proto = w.partition("/")
                if not port.isdigit() or proto not in ("", "tcp", "udp"):
                    raise UsageError(f"{ins.where()}: bad EXPOSE {w}")
                stage.expose.append((int(port), proto or "tcp"))
            return ""
        if k == "STOPSIGNAL":
            stage.stopsignal = parse_signal("".join(words(ins.rest, stage.env, False)), ins)
            return ""
        if k == "ENTRYPOINT":
            argv = exec_form(ins.rest)
            stage.entrypoint = (argv, False) if argv else (["/bin/sh", "-c", ins.rest], True)
            return ""
        if k == "HEALTHCHECK":
            rest = take_flags(ins, ("interval", "timeout", "start-period", "start-interval",
                                    "retries"))
            head, _, cmd = rest.partition(" ")
            if head.upper() == "NONE":
                stage.healthcheck = None
                return ""
            hc = {"interval": 30.0, "timeout": 30.0, "start-period": 0.0, "start-interval": 5.0,
                  "retries": 3}
            for name, value in ins.flags.items():
                hc[name] = int(value) if name == "retries" else parse_duration(value, ins)
            argv = exec_form(cmd)
            hc["argv"] = argv if argv else ["/bin/sh", "-c", cmd.strip()]
            stage.healthcheck = hc
            return ""
        if k == "RUN":
            rest = take_flags(ins, ())
            argv = exec_form(rest) or ["/bin/sh", "-c", rest]
            if execute:
                self.run(stage, argv, ins)
            return ""
        if k == "COPY":
            return self.copy(stage, ins, execute)
        raise UsageError(f"{ins.where()}: unsupported instruction {k}")

    def run(self, stage, argv, ins):
        user = resolve_user(stage.root, stage.user)
        env = container_env(stage, user[3])
        with RootMounts(stage.root, resolv=True):
            rc = subprocess.run(chroot_argv(stage.root, user, stage.workdir, argv), env=env,
                                stdin=subprocess.DEVNULL).returncode
        if rc != 0:
            raise CheckError(f"{ins.where()}: RUN exited with status {rc}: {ins.short(80)}")

    def copy(self, stage, ins, execute):
        rest = take_flags(ins, ("from", "chown"))
        args = exec_form(rest) or words(rest, stage.env)
        srcs, dest = args[:-1], args[-1]
        dest_abs = os.path.normpath(os.path.join(stage.workdir, dest))
        to_dir = dest.endswith("/") or dest in (".", "./") or len(srcs) > 1
        src_stage = None
        if "from" in ins.flags:
            name = ins.flags["from"].lower()
            src_stage = next((s for s in self.stages[:stage.index]
                              if s.name == name or str(s.index) == name), None)
            if src_stage is None:
                raise UsageError(f"{ins.where()}: COPY --from={name}: no earlier stage of that name")
        if src_stage:
            items = []
            for src in srcs:
                host = in_root(src_stage.root, os.path.join("/", src))
                if not os.path.lexists(host):
                    raise CheckError(f"{ins.where()}: COPY --from={src_stage.label()}: {src} "
                                     "does not exist in that stage")
                if os.path.isdir(host):
                    rels = []
                    for dirpath, dirnames, filenames in os.walk(host):
                        for n in dirnames + filenames:
                            rels.append(os.path.relpath(os.path.join(dirpath, n), host))
                    items.append((host, True, sorted(rels), os.path.basename(src)))
                else:
                    items.append((host, False, [], os.path.basename(src)))
            chain = f"from {src_stage.key} " + json.dumps(args) + json.dumps(ins.flags)
        else:
            if execute:
                self.ctx.refresh()      # list the tree again: it may have changed since pass 1
            items, digest = [], hashlib.sha256()
            for src in srcs:
                for top, rels in self.ctx.select(src, ins):
                    host = os.path.join(self.ctx.path, top) if top != "." else self.ctx.path
                    if os.path.isdir(host) and not os.path.islink(host):
                        sub = [os.path.relpath(r, top) if top != "." else r for r in rels]
                        items.append((host, True, sub, os.path.basename(top)))
                    else:
                        items.append((host, False, [], os.path.basename(top)))
                    digest.update(digest_files(self.ctx.path, rels).encode())
            chain = "context " + digest.hexdigest() + json.dumps(args) + json.dumps(ins.flags)
        if len(srcs) > 1 and not dest.endswith("/"):
            raise UsageError(f"{ins.where()}: COPY with several sources needs a destination "
                             "ending in /")
        if execute:
            owner = (0, 0)
            if "chown" in ins.flags:
                u, g, _, _ = resolve_user(stage.root, ins.flags["chown"])
                owner = (u, g)
            for host, is_dir, rels, base in items:
                if is_dir:
                    self.copy_dir(stage.root, host, rels, dest_abs, owner)
                else:
                    target = os.path.join(dest_abs, base) if to_dir else dest_abs
                    self.copy_entry(stage.root, host, target, owner)
        return chain

    def make_parents(self, root, path):
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts)):
            host = in_root(root, "/" + "/".join(parts[:i]))
            if not os.path.isdir(host):
                os.mkdir(host, 0o755)
                os.lchown(host, 0, 0)

    def copy_entry(self, root, src, dest, owner):
        self.make_parents(root, dest)
        target = in_root(root, dest, follow_last=False)
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            if os.path.lexists(target) and not os.path.isdir(target):
                os.remove(target)
            if not os.path.isdir(target):
                os.mkdir(target)
            os.chmod(target, stat.S_IMODE(st.st_mode))
        else:
            if os.path.isdir(target) and not os.path.islink(target):
                raise CheckError(f"COPY: cannot replace directory {dest} with a file")
            if os.path.lexists(target):
                os.remove(target)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(src), target)
            else:
                shutil.copy2(src, target)
        os.lchown(target, *owner)
        if not stat.S_ISLNK(st.st_mode):
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    def copy_dir(self, root, src, rels, dest, owner):
        self.make_parents(root, dest + "/x")
        host = in_root(root, dest)
        if not os.path.isdir(host):
            os.mkdir(host, 0o755)
            os.lchown(host, *owner)
        for rel in rels:      # sorted: a directory comes before its contents
            self.copy_entry(root, os.path.join(src, rel), os.path.join(dest, rel), owner)

    def build_stage(self, stage):
        start = time.monotonic()
        stage.root = os.path.join(self.work, "stages", f"{stage.index}-{stage.label()}", "root")
        os.makedirs(os.path.dirname(stage.root), exist_ok=True)
        if stage.image in BASES:
            base_path, base_id = base_tree(BASES[stage.image], self.work, self.args)
            key = hashlib.sha256(f"base {base_id}".encode()).hexdigest()
        else:
            parent = next(s for s in self.stages if s.name == stage.image)
            base_path, key = parent.root, parent.key
        # Pass 1: metadata only, to know every step's cache key.
        stage.reset()
        if stage.image not in BASES:
            stage.inherit(parent)
        body = stage.instructions[1:]
        keys, chains = [], []
        for ins in body:
            chain = self.step(stage, ins, execute=False)
            chains.append(chain)
            key = hashlib.sha256(f"{key}\n{ins.keyword} {ins.rest}\n{chain}".encode()).hexdigest()
            keys.append(key)
        stage.key = key
        self.used_keys.update(keys)
        resume = -1
        if not self.args.no_cache:
            for i, ins in enumerate(body):
                if ins.keyword == "RUN" and os.path.isdir(os.path.join(self.layers, keys[i])):
                    resume = i
        # Pass 2: for real, starting from the newest cached snapshot.
        remove_tree(stage.root, self.work)
        copy_tree(os.path.join(self.layers, keys[resume]) if resume >= 0 else base_path,
                  stage.root)
        stage.reset()
        if stage.image not in BASES:
            stage.inherit(parent)
        n = len(stage.instructions)
        say(f"[{stage.label()} 1/{n}] {stage.from_ins.short()}")
        for i, ins in enumerate(body):
            tag = f"[{stage.label()} {i + 2}/{n}]"
            if i <= resume and ins.keyword in ("RUN", "COPY", "WORKDIR"):
                self.step(stage, ins, execute=False)
                say(f"{tag} CACHED {ins.short()}")
                continue
            t = time.monotonic()
            say(f"{tag} {ins.short()}")
            if self.step(stage, ins, execute=True) != chains[i]:
                # The snapshots would be filed under a key that no longer matches their content.
                raise CheckError(f"{ins.where()}: the build context changed during the build "
                                 "(someone edited the tree); run again")
            if ins.keyword in ("RUN", "COPY"):
                say(f"{tag} done in {time.monotonic() - t:.1f} s")
            if ins.keyword == "RUN" and not self.args.no_cache:
                snap = os.path.join(self.layers, keys[i])
                os.makedirs(self.layers, exist_ok=True)
                remove_tree(snap + ".partial", self.work)
                copy_tree(stage.root, snap + ".partial")
                os.rename(snap + ".partial", snap)
        say(f"[{stage.label()}] built in {time.monotonic() - start:.1f} s")

    def build(self):
        remove_tree(os.path.join(self.work, "stages"), self.work)
        for stage in self.stages:
            self.build_stage(stage)
        if os.path.isdir(self.layers) and not self.args.no_cache:
            for name in os.listdir(self.layers):
                if name not in self.used_keys:
                    remove_tree(os.path.join(self.layers, name), self.work)


# ---------------------------------------------------------------- running the final stage

def http(method, url, body=None, timeout=5.0):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


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
    port = args.port or (exposed if port_free(exposed) else free_port())
    if port != exposed:
        say(f"note: port {exposed} is taken on this host; the check uses {port} instead")
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
        probe = [a.replace(f":{exposed}", f":{port}") for a in hc["argv"]]
        if probe != hc["argv"]:
            say(f"note: HEALTHCHECK address rewritten from port {exposed} to {port}")
        t = time.monotonic()
        try:
            p = subprocess.run(chroot_argv(root, user, final.workdir, probe), env=env,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=hc["timeout"])
            rc, err = p.returncode, p.stderr.strip()
        except subprocess.TimeoutExpired:
            rc, err = None, f"timed out after {hc['timeout']} s"
        checks.report("healthcheck", rc == 0,
                      f"{shlex.join(probe)} exited {rc} in {time.monotonic() - t:.2f} s "
                      f"as uid {user[0]}" + (f": {err}" if err else ""))

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


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dockerfile", default=os.path.join(REPO, "Dockerfile"))
    ap.add_argument("--context", default=REPO, help="build context (default: the repository)")
    ap.add_argument("--workdir", default=os.path.join(REPO, "tmp", "dockerfile-check"),
                    help="cache, layers, stage trees and logs (default: tmp/dockerfile-check);"
                    " the layer cache keeps the last successful build's steps only, so give"
                    " another Dockerfile its own")
    ap.add_argument("--keep", action="store_true",
                    help="keep the stage trees under WORKDIR/stages for inspection")
    ap.add_argument("--no-cache", action="store_true",
                    help="run every step (the debootstrap tree is still reused)")
    ap.add_argument("--build-only", action="store_true", help="build, do not run the checks")
    ap.add_argument("--port", type=int, default=0,
                    help="port for the run (default: the EXPOSE port if free, else any)")
    ap.add_argument("--ready-timeout", type=float, default=120.0)
    ap.add_argument("--mirror", default="http://deb.debian.org/debian")
    ap.add_argument("--security-mirror", default="http://deb.debian.org/debian-security")
    args = ap.parse_args()

    if os.geteuid() != 0:
        say("dockerfile-check: needs root (debootstrap, chroot, mount)")
        return 2
    work = os.path.realpath(args.workdir)
    os.makedirs(work, exist_ok=True)
    lock = open(os.path.join(work, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        say(f"dockerfile-check: another run holds {work}/lock")
        return 2

    def interrupted(signum, frame):
        raise Interrupted(signal.Signals(signum).name)
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, interrupted)

    started = time.monotonic()
    say(f"dockerfile-check: {args.dockerfile}, context {args.context}, work {work}; "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    # A killed earlier run may have left mounts or processes behind.
    for point in sorted(mounts_under(work), key=len, reverse=True):
        say(f"note: unmounting {point} (left by an earlier run)")
        unmount(point)
    stages_dir = os.path.join(work, "stages")
    kill_processes_in(work)

    checks, status = Checks(), 0
    try:
        stages = split_stages(parse_dockerfile(args.dockerfile))
        ctx = Context(args.context, work)
        say(f"context: {len(ctx.entries())} entries after .dockerignore")
        t = time.monotonic()
        try:
            Builder(stages, ctx, work, args).build()
            checks.report("build", True, f"{len(stages)} stages built in "
                                         f"{time.monotonic() - t:.0f} s")
        except CheckError as e:
            checks.report("build", False, str(e))
        if checks.results[-1][1] and not args.build_only:
            run_final(stages[-1], ctx, work, args, checks)
    except UsageError as e:
        say(f"dockerfile-check: {e}")
        status = 2
    except CheckError as e:
        checks.report("run", False, str(e))
    except Interrupted as e:
        say(f"dockerfile-check: interrupted by {e}")
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_processes_in(work)
        for point in sorted(mounts_under(work), key=len, reverse=True):
            unmount(point)
        if not args.keep:
            try:
                remove_tree(stages_dir, work)
            except CheckError as e:
                say(f"warning: {e}")
    if status == 2:
        return status
    failed = [name for name, ok in checks.results if not ok]
    wall = time.monotonic() - started
    if status == 0:
        status = 1 if failed or not checks.results else 0
    say(f"dockerfile-check: {len(checks.results) - len(failed)}/{len(checks.results)} checks "
        f"passed{' (failed: ' + ', '.join(failed) + ')' if failed else ''}; wall time "
        f"{wall / 60:.1f} min" + (f"; stage trees kept under {stages_dir}" if args.keep else ""))
    return status


if __name__ == "__main__":
    sys.exit(main())
