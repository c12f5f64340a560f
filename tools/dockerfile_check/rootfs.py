"""Stage trees on the host: what is mounted and running inside them, copying and removing them,
paths and users as seen from inside them.

A tree may have /proc, /dev and /sys bound into it and processes chrooted into it, so removal and
copying refuse to go through a mount; an `rm -rf` through a bind of /dev would reach the host."""
import os
import re
import signal
import subprocess
import time

from .common import DEFAULT_PATH, CheckError, say


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
