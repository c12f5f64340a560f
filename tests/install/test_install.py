#!/usr/bin/python3
"""`meson install` as an operator uses it, staged with DESTDIR in a temporary directory: every file
lands where the build's paths say (programs, bundled model, configuration, systemd unit, docs, man
pages), a reinstall keeps an edited configuration, the installed ditd started from outside the
source tree with no model flag serves the installed model and answers the README's curl line
with a PNG, the installed dit finds it too, the installed unit passes `systemd-analyze verify`
and `systemd-analyze security --offline=yes`, and `ninja uninstall` removes it all but the
configuration.

    test_install.py --build BUILD_DIR --source SOURCE_DIR --paths JSON
"""
import argparse
import filecmp
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
from harness import Daemon, check, is_png  # noqa: E402


def run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    check(p.returncode == 0, "%s failed (%d):\n%s%s" % (" ".join(argv), p.returncode, p.stdout,
                                                          p.stderr))
    return p


def png_text(png):
    out, pos = {}, 8
    while pos + 12 <= len(png):
        n = int.from_bytes(png[pos:pos + 4], "big")
        if png[pos + 4:pos + 8] == b"tEXt":
            k, _, v = png[pos + 8:pos + 8 + n].partition(b"\0")
            out[k.decode()] = v.decode()
        pos += 12 + n
    return out


class Install:
    def __init__(self, a):
        self.a, self.p = a, a.paths
        self.destdir = tempfile.mkdtemp(prefix="ditd-install-")

    def at(self, path):
        """An installed path (absolute, as configured) inside the staging directory."""
        return self.destdir + path

    def install(self):
        return run(["meson", "install", "-C", self.a.build, "--no-rebuild",
                    "--destdir", self.destdir])

    def files(self):
        out = set()
        for root, _, names in os.walk(self.destdir):
            out.update(os.path.join(root, n)[len(self.destdir):] for n in names)
        return out


def check_layout(t):
    p, src = t.p, t.a.source
    for prog in ("dit", "ditd"):
        check(os.access(t.at(p["bindir"] + "/" + prog), os.X_OK), "%s not installed" % prog)
    model_src = os.path.join(src, "models", "fashion-dit")
    model = t.at(p["modeldir"] + "/fashion-dit")
    for root, _, names in os.walk(model_src):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), model_src)
            check(filecmp.cmp(os.path.join(root, n), os.path.join(model, rel), shallow=False),
                  "installed model file %s differs or is missing" % rel)
    docs = os.path.join(src, "docs")
    for n in sorted(os.listdir(docs)):
        if not n.endswith(".md"):
            continue
        check(filecmp.cmp(os.path.join(docs, n), t.at(p["docdir"] + "/" + n), shallow=False)
              if os.path.exists(t.at(p["docdir"] + "/" + n)) else False,
              "docs/%s is not installed: add it to docs/meson.build" % n)
        with open(os.path.join(docs, n)) as f:
            for img in re.findall(r"\]\(([\w.-]+\.(?:png|svg|jpg))\)", f.read()):
                check(os.path.exists(t.at(p["docdir"] + "/" + img)),
                      "docs/%s shows %s, which is not installed: add it to docs/meson.build"
                      % (n, img))
    with open(t.at(p["docdir"] + "/README.md")) as f:
        for link in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", f.read()):
            check(os.path.exists(t.at(p["docdir"] + "/" + link)),
                  "the installed README.md links to %s, which is not beside it" % link)
    conf = os.path.join(src, "conf", "ditd.conf")
    for where in (p["docdir"] + "/examples/ditd.conf", p["sysconfdir"] + "/ditd/ditd.conf"):
        check(os.path.exists(t.at(where)) and filecmp.cmp(conf, t.at(where), shallow=False),
              "%s is not conf/ditd.conf" % where)
    for page in ("man1/dit.1", "man8/ditd.8"):
        path = t.at(p["mandir"] + "/" + page)
        check(os.path.exists(path), "%s not installed" % page)
        with open(path) as f:
            left = re.findall(r"@[A-Z]+@", f.read())
        check(not left, "%s keeps unsubstituted %s" % (page, left))


def check_unit_text(t):
    p = t.p
    with open(t.at(p["unitdir"] + "/ditd.service")) as f:
        unit = f.read()
    check(not re.findall(r"@[A-Z]+@", unit), "the unit keeps @...@ slots")
    want = "ExecStart=%s/ditd --config %s/ditd/ditd.conf" % (p["bindir"], p["sysconfdir"])
    check(want in unit.splitlines(), "no line %r in the unit" % want)
    doc = re.search(r"^Documentation=file://(\S+)", unit, re.M).group(1)
    check(os.path.exists(t.at(doc)), "Documentation= names %s, not installed" % doc)
    check("ReadOnlyPaths=-%s" % p["modeldir"] in unit, "ReadOnlyPaths is not the model dir")
    check("mkdir -p %s/ditd" % p["sysconfdir"] in unit, "the install comment lacks mkdir -p")
    return unit


def check_keeps_config(t):
    conf = t.at(t.p["sysconfdir"] + "/ditd/ditd.conf")
    with open(conf, "a") as f:
        f.write("# the operator's own edit\n")
    with open(conf) as f:
        edited = f.read()
    t.install()
    with open(conf) as f:
        check(f.read() == edited, "a reinstall replaced the operator's configuration")


def check_serves(t, work):
    """The installed daemon, from a directory outside the source tree, no model flag."""
    p = t.p
    env = {"DITD_MODEL": "", "DITD_CONFIG": ""}
    model = os.path.realpath(t.at(p["modeldir"] + "/fashion-dit"))
    with Daemon(t.at(p["bindir"] + "/ditd"), None, env=env, cwd=work, start_timeout=60) as d:
        d.wait_ready(60)
        check("loading %s\n" % model in d.logs(),
              "the installed ditd did not load the installed model %s:\n%s" % (model, d.logs()))
        with open(os.path.join(t.a.source, "README.md")) as f:
            line = next(l for l in f if l.startswith("curl -X POST localhost:8080/generate"))
        argv = shlex.split(line.split("#")[0].replace("localhost:8080", "localhost:%d" % d.port))
        run(["curl", "-sS", "--fail"] + argv[1:], cwd=work, timeout=60)
        out = argv[argv.index("-o") + 1]
        with open(os.path.join(work, out), "rb") as f:
            png = f.read()
        check(is_png(png), "the README's curl line got no PNG")
        meta = png_text(png)
        check(meta.get("model") == "fashion-dit" and len(meta.get("model_id", "")) == 16,
              "PNG metadata %s" % meta)
    dit = t.at(p["bindir"] + "/dit")
    r = run([dit, "--verbose", "generate", "--class", "7", "--seed", "1", "--steps", "4",
             "--quiet", "-o", "x.png"], cwd=work, env=dict(os.environ, DITD_MODEL=""))
    check("from %s\n" % model in r.stderr, "the installed dit used another model: %s" % r.stderr)
    with open(os.path.join(work, "x.png"), "rb") as f:
        check(png_text(f.read()).get("model_id") == meta["model_id"], "dit and ditd model ids")
    return model


def check_systemd(t, unit):
    """verify needs ExecStart's binary at its path and man:ditd(8) on the MANPATH: a copy of
    the installed unit points ExecStart into the staging directory, MANPATH at its man pages."""
    tool = shutil.which("systemd-analyze")
    if not tool:
        return None
    p = t.p
    copy_dir = tempfile.mkdtemp(prefix="ditd-unit-")
    exec_line = "ExecStart=%s/ditd" % p["bindir"]
    with open(os.path.join(copy_dir, "ditd.service"), "w") as f:
        f.write(unit.replace(exec_line, "ExecStart=%s/ditd" % t.at(p["bindir"])))
    man = ["--man=yes"] if shutil.which("man") else ["--man=no"]
    env = dict(os.environ, MANPATH=t.at(p["mandir"]))
    run([tool, "verify"] + man + [os.path.join(copy_dir, "ditd.service")], env=env)
    shutil.rmtree(copy_dir)
    sec = run([tool, "security", "--offline=yes", "--threshold=20",
               t.at(p["unitdir"] + "/ditd.service")])
    score = [l for l in sec.stdout.splitlines() if "Overall exposure level" in l]
    check(score, "no exposure level in:\n" + sec.stdout[-2000:])
    return "verify %s ok; %s" % (man[0], score[0].strip())


def check_uninstall(t):
    run(["ninja", "-C", t.a.build, "uninstall"])
    left = t.files()
    check(left == {t.p["sysconfdir"] + "/ditd/ditd.conf"},
          "uninstall left %s" % sorted(left)[:10])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--paths", required=True, help="JSON: bindir, modeldir, docdir, ... as configured")
    a = ap.parse_args()
    a.paths = json.loads(a.paths)
    # meson stops a test that runs out of time with SIGTERM: clean up (and stop the
    # daemon) on the way out then too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))
    t = Install(a)
    work = tempfile.mkdtemp(prefix="ditd-outside-")
    try:
        t.install()
        check_layout(t)
        unit = check_unit_text(t)
        check_keeps_config(t)
        model = check_serves(t, work)
        systemd = check_systemd(t, unit)
        check_uninstall(t)
    finally:
        shutil.rmtree(t.destdir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print("installed, kept the edited configuration, served %s from outside the tree, "
          "uninstalled" % model)
    if systemd is None:
        print("SKIP: no systemd-analyze (tools/install-deps.sh installs it): unit not verified")
        return 77
    print(systemd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
