"""The Dockerfile's syntax: instructions and their flags, exec form, words with variables,
durations and signals.

Only the instructions ditd's Dockerfile uses are known (KEYWORDS); anything else is refused with
its line number rather than approximated, so that a check never passes on semantics the
interpreter only guessed."""
import json
import re
import signal

from .common import UsageError


KEYWORDS = ("FROM", "RUN", "WORKDIR", "COPY", "ENV", "USER", "EXPOSE", "STOPSIGNAL",
            "HEALTHCHECK", "ENTRYPOINT")


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
