"""The base trees that stand for debian:12 and debian:12-slim, made from one debootstrap tree.

debootstrap is slow and needs the network, so its result is kept under the work directory and
reused; each base tree is derived from it again only when the debootstrap tree, the recipe
(BASE_RECIPE) or the mirror changes."""
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import time
import uuid

from .common import CheckError, say
from .rootfs import copy_tree, kill_processes_in, mounts_under, remove_tree, unmount


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
