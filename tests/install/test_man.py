#!/usr/bin/python3
"""The man pages say what --help says: every flag of `ditd --help` and every key of conf/ditd.conf
is in ditd(8), with the same short flag, default and [restart] mark; every flag of each
`dit COMMAND --help` is in that command's subsection of dit(1). Both pages render without groff
warnings.

    test_man.py --dit build/src/cli/dit --ditd build/src/daemon/ditd --man build/man --conf conf/ditd.conf
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

LONG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
SHORT = re.compile(r"(?<![\w-])-[a-zA-Z](?![\w-])")


def plain(roff):
    """roff source -> text: no font escapes, \\- as -, no comment lines."""
    lines = [l for l in roff.splitlines() if not l.startswith('.\\"')]
    text = "\n".join(lines)
    text = re.sub(r"\\f[BIRP]", "", text)
    return text.replace("\\-", "-").replace("\\(aq", "'")


def sections(text, marker):
    """{title: body} of the lines starting with marker ('.SH' or '.SS')."""
    out, title = {}, None
    for line in text.splitlines():
        if line.startswith(marker) or line.startswith(".SH"):
            title = line[4:].strip().strip('"') if line.startswith(marker) else None
            if title is not None:
                out[title] = ""
        elif title is not None:
            out[title] += line + "\n"
    return out


def run(*argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise SystemExit("%s failed: %s" % (" ".join(argv), p.stderr))
    return p.stdout


def compare(what, in_help, in_man, problems, page, source="--help"):
    for f in sorted(in_help - in_man):
        problems.append("%s: %s is in %s but not in %s; document it there"
                        % (what, f, source, page))
    for f in sorted(in_man - in_help):
        problems.append("%s: %s is in %s but not in %s" % (what, f, page, source))


def check_ditd(a, problems):
    page = os.path.join(a.man, "ditd.8")
    with open(page) as f:
        man = plain(f.read())
    help_ = run(a.ditd, "--help")
    compare("ditd", set(LONG.findall(help_)), set(LONG.findall(man)), problems, page)
    compare("ditd short flags", set(SHORT.findall(help_)),
            set(SHORT.findall("".join(sections(man, ".SH").get(k, "")
                                      for k in ("OPTIONS", "CONFIGURATION")))), problems, page)
    # key = default (flags) [restart], from both sides
    helped = {}
    keys_help = help_[re.search(r"^\[\w+\]$", help_, re.M).start():]   # from [server] on
    for m in re.finditer(r"^\s+(?:(-\w), )?--([a-z-]+)\s+.*\(default: (.*?)\)( \[restart\])?$",
                         keys_help, re.M):
        helped[m.group(2).replace("-", "_")] = (m.group(1), m.group(3), bool(m.group(4)))
    conf_sec = sections(man, ".SH").get("CONFIGURATION", "")
    documented = {}
    for m in re.finditer(r"^(\w+) = (.*?) \((?:(-\w), )?--([a-z-]+)\)( \[restart\])?$", conf_sec,
                         re.M):
        key, default, short, flag, restart = m.groups()
        if flag.replace("-", "_") != key:
            problems.append("ditd(8): key %s is shown with flag --%s" % (key, flag))
        documented[key] = (short, default, bool(restart))
    with open(a.conf) as f:
        conf_keys = set(re.findall(r"^(\w+) =", f.read(), re.M))
    compare("ditd keys", conf_keys, set(documented), problems, page, "conf/ditd.conf")
    compare("ditd keys", set(helped), set(documented), problems, page)
    for key in sorted(set(helped) & set(documented)):
        if helped[key] != documented[key]:
            problems.append("ditd(8): %s is (short flag, default, restart) %s there, %s in --help"
                            % (key, documented[key], helped[key]))
    return len(documented)


def check_dit(a, problems):
    page = os.path.join(a.man, "dit.1")
    with open(page) as f:
        man = plain(f.read())
    common = sections(man, ".SH").get("OPTIONS OF EVERY COMMAND", "")
    common_flags = set(LONG.findall(common))
    top = run(a.dit, "--help").split("options of every command:", 1)[-1].split("\n\n", 1)[0]
    compare("dit", set(LONG.findall(top)), common_flags, problems,
            page + " (OPTIONS OF EVERY COMMAND)")
    subs = sections(man, ".SS")
    n = 0
    for cmd in ("generate", "info", "bench", "forward", "decode", "schedule"):
        help_ = run(a.dit, cmd, "--help")
        body = subs.get("dit " + cmd)
        if body is None:
            problems.append("dit(1) has no subsection \"dit %s\"" % cmd)
            continue
        compare("dit " + cmd, set(LONG.findall(help_)) | set(SHORT.findall(help_)),
                set(LONG.findall(body)) | set(SHORT.findall(body)) | common_flags, problems,
                page + " (dit %s)" % cmd)
        n += len(set(LONG.findall(help_)))
    return n


def check_render(a, problems):
    groff = shutil.which("groff")
    if not groff:
        print("note: no groff, rendering not checked")
        return
    for page in ("dit.1", "ditd.8"):
        p = subprocess.run([groff, "-man", "-ww", "-z", os.path.join(a.man, page)],
                           capture_output=True, text=True, timeout=30, env=dict(os.environ, LC_ALL="C"))
        if p.returncode != 0 or p.stderr.strip():
            problems.append("groff warns about %s: %s" % (page, p.stderr.strip()[:500]))


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--dit", "--ditd", "--man", "--conf"):
        ap.add_argument(opt, required=True)
    a = ap.parse_args()
    problems = []
    keys = check_ditd(a, problems)
    flags = check_dit(a, problems)
    check_render(a, problems)
    for p in problems:
        print("FAIL: " + p)
    if problems:
        return 1
    print("ditd(8): %d keys with flags, defaults and [restart]; dit(1): %d command flags" % (keys, flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
