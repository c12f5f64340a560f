"""Stages and the builder that applies their instructions to stage trees, with the layer cache.

Every stage is first walked without touching its tree to know the cache key of each step; the
real pass then starts from the newest snapshot whose key still matches."""
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time

from .bases import BASES, base_tree
from .common import DEFAULT_PATH, CheckError, UsageError, say
from .context import digest_files
from .dockerfile import exec_form, parse_duration, parse_signal, take_flags, words
from .rootfs import (RootMounts, chroot_argv, container_env, copy_tree, in_root, remove_tree,
                     resolve_user)


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
