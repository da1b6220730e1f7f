"""Asterisk's configuration syntax: parse ``*.conf`` files, read the dialplan out of them, fill in values.

Used by the static check of the admin's files in ``asterisk-conf/`` and ``dialplans/`` and by the
real-Asterisk test tier, which generates a running configuration from those same files. Pure: the
functions take text; only :func:`load` reads files (and follows ``#include``).

The grammar handled is the one ``main/config.c`` accepts:

- ``[name]`` sections; ``[name](!)`` a template, ``[name](tpl1,tpl2)`` inherits templates,
  ``[name](!,tpl)`` both, ``[name](+)`` appends to an earlier section of that name;
- ``key = value`` and ``key => value`` (the same thing to Asterisk; ``=>`` is dialplan habit);
- ``;`` starts a comment unless escaped as ``\\;``; ``;--`` … ``--;`` is a block comment that may
  span lines;
- ``#include file`` / ``#include "file"`` and ``#tryinclude``; ``#exec`` is recognised and refused
  (our files must not run programs when Asterisk reloads).

Asterisk has no backslash line continuation; in a dialplan the continuation of an extension is
``same =>``, which :func:`dialplan` resolves to the extension above it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

_SECTION = re.compile(r"^\[(?P<name>[^\]]+)\](?:\((?P<flags>[^)]*)\))?\s*$")
_OPTION = re.compile(r"^(?P<key>[^=]+?)\s*(?P<op>=>|=)\s*(?P<value>.*)$")
_DIRECTIVE = re.compile(r"^#(?P<name>include|tryinclude|exec)\s+(?P<arg>.+)$")
_PRIORITY = re.compile(r"^(?P<prio>\d+|n|hint|[ns]\+\d+)(?:\((?P<label>[A-Za-z0-9_-]+)\))?$")
_APP = re.compile(r"^(?P<app>[A-Za-z_][A-Za-z0-9_]*)(?:\((?P<args>.*)\))?$", re.S)


@dataclass(frozen=True)
class Option:
    key: str
    value: str
    line: int
    arrow: bool = False
    """Written as ``=>`` rather than ``=``."""


@dataclass
class Section:
    name: str
    line: int
    template: bool = False
    """``(!)``: a template only, never used as a section by itself."""
    inherits: tuple[str, ...] = ()
    append: bool = False
    """``(+)``: adds to an earlier section of the same name."""
    options: list[Option] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        """The last value of ``key`` (Asterisk's own rule for single-valued options)."""
        values = self.values(key)
        return values[-1] if values else None

    def values(self, key: str) -> list[str]:
        return [o.value for o in self.options if o.key == key]


@dataclass(frozen=True)
class Include:
    target: str
    line: int
    optional: bool
    """``#tryinclude``: a missing file is not an error."""


@dataclass
class ConfigFile:
    source: str
    sections: list[Section] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)

    def named(self, name: str) -> list[Section]:
        """All sections called ``name`` (pjsip.conf reuses one name for endpoint, aor, identify)."""
        return [s for s in self.sections if s.name == name]

    def section(self, name: str) -> Section:
        found = self.named(name)
        if not found:
            raise KeyError(f"{self.source}: no section [{name}]")
        return found[0]


def _strip_comment(line: str) -> str:
    """Drop a ``;`` comment, keeping ``\\;`` as a literal semicolon."""
    out = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if ch == ";":
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def parse(text: str, *, source: str = "<string>") -> ConfigFile:
    """Parse one file's text. Raises ``ValueError("source:line: what is wrong")``."""
    cfg = ConfigFile(source=source)
    current: Section | None = None
    in_block = False
    block_start = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if in_block:
            end = line.find("--;")
            if end < 0:
                continue
            line = line[end + 3 :]
            in_block = False
        start = line.find(";--")
        if start >= 0 and (start == 0 or line[start - 1] != "\\"):
            end = line.find("--;", start + 3)
            if end < 0:
                in_block, block_start = True, lineno
                line = line[:start]
            else:
                line = line[:start] + line[end + 3 :]
        line = _strip_comment(line)
        if not line:
            continue
        where = f"{source}:{lineno}"
        if line.startswith("#"):
            m = _DIRECTIVE.match(line)
            if not m:
                raise ValueError(f"{where}: unknown directive {line.split()[0]!r}")
            if m["name"] == "exec":
                raise ValueError(f"{where}: #exec runs a program on every reload; not allowed here")
            target = m["arg"].strip().strip('"').strip("<>")
            cfg.includes.append(Include(target, lineno, optional=m["name"] == "tryinclude"))
            continue
        if line.startswith("["):
            m = _SECTION.match(line)
            if not m:
                raise ValueError(f"{where}: malformed section header {line!r}")
            name = m["name"].strip()
            if not name:
                raise ValueError(f"{where}: empty section name")
            flags = [f.strip() for f in (m["flags"] or "").split(",") if f.strip()]
            if m["flags"] is not None and not flags:
                raise ValueError(f"{where}: empty template list in {line!r}")
            append = "+" in flags
            if append and not cfg.named(name):
                raise ValueError(
                    f"{where}: [{name}](+) appends to a section that is not defined above"
                )
            current = Section(
                name=name,
                line=lineno,
                template="!" in flags,
                inherits=tuple(f for f in flags if f not in ("!", "+")),
                append=append,
            )
            for parent in current.inherits:
                if not any(s.template or s.name == parent for s in cfg.named(parent)):
                    raise ValueError(f"{where}: [{name}] inherits unknown template {parent!r}")
            cfg.sections.append(current)
            continue
        m = _OPTION.match(line)
        if not m:
            raise ValueError(f"{where}: expected 'key = value', got {line!r}")
        if current is None:
            raise ValueError(f"{where}: option {m['key']!r} before any [section]")
        current.options.append(
            Option(m["key"].strip(), m["value"].strip(), lineno, arrow=m["op"] == "=>")
        )
    if in_block:
        raise ValueError(f"{source}:{block_start}: block comment ';--' is never closed")
    return cfg


def load(path: Path, *, search: Path | None = None) -> list[ConfigFile]:
    """Parse ``path`` and, depth first, every file it ``#include``s (relative to ``search``,
    default the file's folder, as Asterisk resolves them against its config directory)."""
    base = search if search is not None else path.parent
    seen: set[Path] = set()
    out: list[ConfigFile] = []

    def visit(p: Path, chain: tuple[str, ...]) -> None:
        resolved = p.resolve()
        if resolved in seen:
            raise ValueError(f"{p}: included twice (via {' -> '.join(chain)})")
        seen.add(resolved)
        cfg = parse(p.read_text(), source=str(p))
        out.append(cfg)
        for inc in cfg.includes:
            target = Path(inc.target) if Path(inc.target).is_absolute() else base / inc.target
            if not target.exists():
                if inc.optional:
                    continue
                raise ValueError(f"{p}:{inc.line}: #include {inc.target!r} not found in {base}")
            visit(target, (*chain, str(p)))

    visit(path, ())
    return out


# --------------------------------------------------------------------------------------------------
# Dialplan (extensions.conf)


@dataclass(frozen=True)
class Step:
    """One priority of an extension: ``exten => 100,1(start),Dial(PJSIP/x,20)``."""

    priority: str
    """As written: ``1``, ``n``, ``hint``, ``n+2``."""
    number: int
    """Resolved priority number (0 for a hint)."""
    label: str | None
    app: str
    args: str
    line: int


@dataclass
class Context:
    name: str
    extensions: dict[str, list[Step]] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)

    def has(self, extension: str, priority: int = 1) -> bool:
        return any(s.number == priority for s in self.extensions.get(extension, []))

    def apps(self) -> list[str]:
        return [s.app for steps in self.extensions.values() for s in steps if s.priority != "hint"]


def dialplan(files: list[ConfigFile]) -> dict[str, Context]:
    """Read the contexts out of parsed extensions.conf-style files (``[general]`` and ``[globals]``
    are settings, not contexts). Raises ``ValueError`` on a malformed ``exten``/``same`` line."""
    contexts: dict[str, Context] = {}
    for cfg in files:
        for section in cfg.sections:
            if section.name in ("general", "globals") or section.template:
                continue
            ctx = contexts.setdefault(section.name, Context(section.name))
            last: tuple[str, int] | None = None
            for opt in section.options:
                where = f"{cfg.source}:{opt.line}"
                if opt.key == "include":
                    ctx.includes.append(opt.value.split(",")[0].strip())
                    continue
                if opt.key == "same":
                    if last is None:
                        raise ValueError(f"{where}: 'same =>' with no extension above it")
                    ext, prev = last
                    prio_text, _, rest = opt.value.partition(",")
                    if not rest:
                        raise ValueError(f"{where}: expected 'same => priority,App(args)'")
                    step = _step(prio_text.strip(), rest, prev, opt.line, where)
                elif opt.key == "exten":
                    parts = opt.value.split(",", 2)
                    if len(parts) < 3:
                        raise ValueError(f"{where}: expected 'exten => name,priority,App(args)'")
                    ext = parts[0].strip()
                    if not ext:
                        raise ValueError(f"{where}: empty extension name")
                    steps = ctx.extensions.get(ext, [])
                    prev = max((s.number for s in steps), default=0)
                    step = _step(parts[1].strip(), parts[2], prev, opt.line, where)
                elif opt.key in ("switch", "ignorepat", "eswitch", "lswitch"):
                    continue
                else:
                    raise ValueError(f"{where}: unexpected {opt.key!r} in dialplan context")
                steps = ctx.extensions.setdefault(ext, [])
                if step.priority != "hint" and any(s.number == step.number for s in steps):
                    raise ValueError(f"{where}: {ext} priority {step.number} defined twice")
                steps.append(step)
                if step.priority != "hint":
                    last = (ext, step.number)
    return contexts


def _step(prio_text: str, app_text: str, prev: int, line: int, where: str) -> Step:
    m = _PRIORITY.match(prio_text)
    if not m:
        raise ValueError(f"{where}: bad priority {prio_text!r}")
    prio = m["prio"]
    if prio == "hint":
        return Step(prio, 0, None, "hint", app_text.strip(), line)
    if prio == "n":
        number = prev + 1
    elif prio.startswith(("n+", "s+")):
        number = prev + int(prio[2:])
    else:
        number = int(prio)
    a = _APP.match(app_text.strip())
    if not a:
        raise ValueError(f"{where}: expected App(args), got {app_text.strip()!r}")
    return Step(prio, number, m["label"], a["app"], a["args"] or "", line)


# --------------------------------------------------------------------------------------------------
# Filling in an admin's placeholders


def fill_in(text: str, values: Mapping[tuple[str, str], str]) -> str:
    """Set ``key`` in ``[section]`` for each ``(section, key) -> value``: the first line that sets the
    key (or a commented-out ``;key =`` line) in the first section of that name is replaced; a key
    not present is added at the top of the section. Comments elsewhere are kept, so the result still
    reads like the admin's file. Raises ``ValueError`` for a section that does not exist."""
    lines = text.splitlines()
    cfg = parse(text)
    for (section_name, key), value in values.items():
        found = cfg.named(section_name)
        if not found:
            raise ValueError(f"fill_in: no section [{section_name}]")
        sec = found[0]
        end = _section_end(lines, sec.line)
        target = None
        for i in range(sec.line, end):
            stripped = lines[i].lstrip().lstrip(";").lstrip()
            if re.match(rf"^{re.escape(key)}\s*(=>|=)", stripped):
                target = i
                break
        new = f"{key} = {value}"
        if target is None:
            lines.insert(sec.line, new)
        else:
            lines[target] = new
        cfg = parse("\n".join(lines))
    return "\n".join(lines) + "\n"


def _section_end(lines: list[str], header_line: int) -> int:
    """Index one past the last line of the section whose header is at 1-based ``header_line``."""
    for i in range(header_line, len(lines)):
        if lines[i].lstrip().startswith("["):
            return i
    return len(lines)


_SET = re.compile(r"Set\((?P<inherit>_{0,2})(?P<name>[A-Za-z0-9_]+)=(?P<value>[^)\n]*)\)")


def set_dialplan_variables(text: str, values: Mapping[str, str]) -> str:
    """Change the value in each ``Set(NAME=…)`` / ``Set(__NAME=…)`` of a settings dialplan (our
    ``medagent-settings.conf``), keeping the inheritance prefix. Raises ``ValueError`` for a name
    that is never set, so a renamed setting cannot be silently left at its old value."""
    seen: set[str] = set()

    def replace(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in values:
            return m.group(0)
        seen.add(name)
        return f"Set({m['inherit']}{name}={values[name]})"

    out = _SET.sub(replace, text)
    missing = sorted(set(values) - seen)
    if missing:
        raise ValueError(f"no Set() of {', '.join(missing)} in the dialplan")
    return out


# --------------------------------------------------------------------------------------------------
# The static check of the admin's files

_BIND_KEYS = re.compile(r"(^|_)bind(addr)?$|^tlsbindaddr$|^bindaddr$")
_WILDCARD = re.compile(r"^(0\.0\.0\.0|\*|::|\[::\]|0:0:0:0:0:0:0:0)(:\d+)?$")
_SECRET_KEYS = frozenset({"password", "secret", "passwd", "md5_cred"})
_AMI_FORBIDDEN = frozenset({"all", "system", "command", "config", "agi", "user", "dtmf"})
_JUMP = re.compile(r"^(?:[^?]*\?)?(?P<target>[^:]*)")
_LOCAL = re.compile(r"Local/(?P<exten>[^@/,)]+)@(?P<context>[A-Za-z0-9_-]+)")


def resolved(cfg: ConfigFile, section: Section) -> dict[str, str]:
    """A section's options with its templates' options underneath (last value wins)."""
    out: dict[str, str] = {}
    for parent in section.inherits:
        for tpl in cfg.named(parent):
            out.update(resolved(cfg, tpl))
    for opt in section.options:
        out[opt.key] = opt.value
    return out


def security_problems(files: list[ConfigFile]) -> list[str]:
    """Wildcard binds, passwords with a value (a shipped default that works), and AMI rights
    beyond what the agent needs."""
    problems = []
    for cfg in files:
        for section in cfg.sections:
            for opt in section.options:
                where = f"{cfg.source}:{opt.line}"
                if _BIND_KEYS.search(opt.key) and _WILDCARD.match(opt.value):
                    problems.append(f"{where}: {opt.key} = {opt.value} listens on every address")
                if opt.key in _SECRET_KEYS and opt.value:
                    problems.append(
                        f"{where}: [{section.name}] {opt.key} has a value; ship it empty so that "
                        "no default credential works"
                    )
                if Path(cfg.source).name == "manager.conf" and opt.key in ("read", "write"):
                    classes = {c.strip() for c in opt.value.split(",")}
                    extra = sorted(classes & _AMI_FORBIDDEN)
                    if extra:
                        problems.append(
                            f"{where}: [{section.name}] {opt.key} grants {', '.join(extra)}"
                        )
    return problems


def dialplan_problems(
    contexts: Mapping[str, Context], *, app: str, fallback: tuple[str, str, int]
) -> list[str]:
    """Jumps to contexts that do not exist, a missing fallback target, a Stasis app other than
    the agent's."""
    problems = []
    context, exten, priority = fallback
    if context not in contexts:
        problems.append(f"fallback context {context!r} is not defined")
    elif not contexts[context].has(exten, priority):
        problems.append(f"fallback {context},{exten},{priority} is not defined")
    for ctx in contexts.values():
        for ext, steps in ctx.extensions.items():
            for step in steps:
                where = f"{ctx.name},{ext},{step.number}"
                targets: list[str] = []
                if step.app in ("Goto", "Gosub", "GotoIf", "GosubIf", "GotoIfTime"):
                    branch = _JUMP.match(step.args)
                    text = branch["target"] if branch else ""
                    parts = [p.strip() for p in text.split(",")]
                    if len(parts) == 3:
                        targets.append(parts[0])
                for m in _LOCAL.finditer(step.args):
                    targets.append(m["context"])
                for target in targets:
                    if "$" not in target and target not in contexts:
                        problems.append(f"{where}: {step.app} to unknown context {target!r}")
                if step.app == "Stasis":
                    name = step.args.split(",")[0].strip()
                    if name != app and not name.startswith("${"):
                        problems.append(f"{where}: Stasis({name}) but the agent's app is {app!r}")
    return problems
