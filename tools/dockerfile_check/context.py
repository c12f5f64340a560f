"""The build context: the directory minus what .dockerignore excludes, the files a COPY takes
from it, and digests of file contents.

The digests make the layer cache key depend on what was copied, not only on the instruction
text, so that editing a copied file reruns that COPY and every step after it."""
import hashlib
import os
import re
import stat

from .common import CheckError, say


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
