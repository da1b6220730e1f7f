"""The stand-in's dialplan built from our own ``dialplans/*.conf``, so the stand-in's calls follow
the practice's real fallback path (front desk, then voicemail) instead of a hand-written copy.

The stand-in runs a handful of applications (``dialplan.APPLICATIONS``) and keeps no channel
variables. Our dialplan uses more: ``Gosub``/``Return``, ``Set``, ``GotoIf`` on ``$[…]``
expressions, ``GotoIfTime`` and ``Dial(Local/…)``. The import therefore *partially evaluates* each
entry extension into the straight list of steps a call actually takes:

- the settings (``Gosub(medagent-settings,s,1)``, plus ``variables`` to override them) are known
  at import time; ``${VAR}``, ``${LEN(…)}`` and ``${IF(…)}`` are filled in; ``Set`` of a known
  value only updates those values (the stand-in has no ``Set``);
- ``Gosub`` is inlined (``${ARGn}``, ``Return(value)`` → ``${GOSUB_RETVAL}``); ``Goto``/``GotoIf``
  inside an extension are followed; a ``Goto`` to another context is kept as a step;
- a ``GotoIf`` on what only the call knows is resolved by the stand-in's own rules: after
  ``Dial``, "``${DIALSTATUS}`` = ANSWER" is never true in the following step (the stand-in ends
  the call when an answered Dial ends), and after ``Stasis``, "``${STASISSTATUS}`` = FAILED" is
  always true in the following step (the stand-in goes on only when the app is not connected;
  a ``continue`` jumps elsewhere, a hang-up ends the call);
- ``Dial(Local/<ext>@<context>…)`` whose target starts with ``Stasis(…)`` becomes that ``Stasis``
  step on the caller's own channel. Same fallback: an absent app continues with the next step
  (as Asterisk's ``Hangup(34)`` on the Local leg makes the caller's ``Dial`` fail), and the
  agent's ``continue`` sends the caller where it sends the Local leg. Not modelled: the answer
  timeout of that ``Dial`` (an agent that never answers keeps the call in the stand-in) and the
  Local channel's own ids (the agent answers the caller's channel itself);
- ``GotoIfTime`` needs ``office_open`` (the stand-in has no clock of its own): ``True`` takes the
  branches labelled ``open``, ``False`` the others;
- the practice's numbers arrive on a pattern extension (``_X.``); the stand-in matches extensions
  exactly, so each of ``dids`` becomes an extension of its own (with ``${EXTEN}`` filled in).

Anything else (an unknown application, a condition that cannot be decided) raises ``ValueError``
naming the file and line, at import, not when a call reaches it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.adapters.asterisk_conf import ConfigFile, Context, dialplan, load
from agent.adapters.asterisk_conf import Step as ConfStep
from agent.pbxsim.dialplan import Dialplan, Step

SETTINGS_CONTEXT = "medagent-settings"
ENTRY_CONTEXTS = ("medagent-inbound", "medagent-fallback", "medagent-oncall", "medagent-clinicians")
"""Where calls start or are sent (Goto, ARI continue); subroutines are inlined, not imported."""
RUNTIME_VARIABLES = frozenset({"DIALSTATUS", "STASISSTATUS", "HANGUPCAUSE", "CALLERID(num)"})
"""Set by applications as the call runs; never known at import."""
MAX_STEPS = 500
"""A path longer than this is a loop in the dialplan."""

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Innermost first: a function or expression whose argument holds no other ${…} or $[…].
_FUNC = re.compile(r"\$\{(LEN|IF)\(([^(){}\[\]$]*)\)\}")
_EXPR = re.compile(r"\$\[([^\[\]${}]*)\]")
_COMPARE = re.compile(r'^\s*("?)(.*?)\1\s*(!=|=|>=|<=|>|<)\s*("?)(.*?)\4\s*$')


class Unknown(ValueError):
    """A value only the running call knows (``DIALSTATUS`` …)."""


@dataclass
class _Path:
    """One extension being flattened: the steps so far and what is known."""

    source: str
    values: dict[str, str]
    steps: list[Step] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)
    """Variables ``Set`` from what only the call knows."""
    last_app: str = ""
    """The last modelled step emitted (``Dial``/``Stasis``): decides runtime ``GotoIf``s."""


def import_dialplan(
    paths: Iterable[str | Path],
    *,
    dids: Iterable[str] = (),
    variables: Mapping[str, str] | None = None,
    office_open: bool | None = None,
    entry_contexts: Iterable[str] = ENTRY_CONTEXTS,
) -> Dialplan:
    """The stand-in's :class:`Dialplan` for our dialplan files (see the module docstring)."""
    files = [f for p in paths for f in load(Path(p))]
    contexts = dialplan(files)
    sources = {c.name: _source_of(files, c.name) for c in contexts.values()}
    flattener = _Flattener(contexts, sources, office_open)
    base = flattener.settings(variables or {})
    out: dict[str, dict[str, list[Step]]] = {}
    for cname in entry_contexts:
        ctx = contexts.get(cname)
        if ctx is None:
            raise ValueError(f"dialplan has no context [{cname}]")
        exts = out.setdefault(cname, {})
        for exten in ctx.extensions:
            if exten.startswith("_"):
                for did in dids:
                    if _matches(exten, did):
                        exts.setdefault(did, flattener.extension(cname, exten, base, did))
                continue
            exts[exten] = flattener.extension(cname, exten, base, exten)
    return Dialplan(out)


def import_our_dialplan(
    root: str | Path,
    *,
    dids: Iterable[str] = (),
    variables: Mapping[str, str] | None = None,
    office_open: bool | None = None,
) -> Dialplan:
    """``dialplans/medagent-settings.conf`` + ``dialplans/medagent.conf`` under ``root``."""
    d = Path(root) / "dialplans"
    return import_dialplan(
        [d / "medagent-settings.conf", d / "medagent.conf"],
        dids=dids,
        variables=variables,
        office_open=office_open,
    )


def _source_of(files: Sequence[ConfigFile], context: str) -> str:
    for f in files:
        if any(s.name == context for s in f.sections):
            return f.source
    return "<dialplan>"


def _matches(pattern: str, exten: str) -> bool:
    """Asterisk extension patterns: X (0-9), Z (1-9), N (2-9), [..], . (one or more), ! (any)."""
    rx = ""
    for ch in pattern[1:]:
        rx += {
            "X": "[0-9]",
            "Z": "[1-9]",
            "N": "[2-9]",
            ".": ".+",
            "!": ".*",
        }.get(ch, re.escape(ch) if ch not in "[]-" else ch)
    return re.fullmatch(rx, exten) is not None


class _Flattener:
    def __init__(
        self, contexts: dict[str, Context], sources: dict[str, str], office_open: bool | None
    ) -> None:
        self.contexts = contexts
        self.sources = sources
        self.office_open = office_open
        self.overrides: dict[str, str] = {}

    # -- values ----------------------------------------------------------------------------------

    def settings(self, overrides: Mapping[str, str]) -> dict[str, str]:
        """The practice's settings: the ``Set`` steps of ``[medagent-settings]``, then overrides."""
        values: dict[str, str] = {}
        self.overrides = dict(overrides)
        if SETTINGS_CONTEXT in self.contexts:
            path = _Path(self.sources[SETTINGS_CONTEXT], values)
            self._run(path, SETTINGS_CONTEXT, "s", 1, [])
            values = path.values
        values.update(overrides)
        return values

    def substitute(self, text: str, path: _Path, where: str) -> str:
        """Fill in ``${VAR}``, ``${LEN(…)}``, ``${IF(…)}`` and ``$[…]``, innermost first."""
        for _ in range(50):
            before = text
            text = _VAR.sub(lambda m: self._value(m.group(1), path, where), text)
            text = _EXPR.sub(lambda m: _expression(m.group(1), where), text)
            text = _FUNC.sub(lambda m: _function(m.group(1), m.group(2)), text)
            if text == before:
                if "${" in text or "$[" in text:
                    # A function or operator this import does not know (RAND, CUT, …).
                    raise ValueError(f"{where}: cannot evaluate {text!r} for the stand-in")
                return text
        raise ValueError(f"{where}: cannot expand {text!r}")

    def _value(self, name: str, path: _Path, where: str) -> str:
        if name in path.values:
            return path.values[name]
        if name in path.unknown or name in RUNTIME_VARIABLES:
            raise Unknown(f"{where}: ${{{name}}} is only known to the running call")
        return ""  # never set on this path: Asterisk reads an empty string

    # -- flattening ------------------------------------------------------------------------------

    def extension(
        self, context: str, exten: str, base: Mapping[str, str], dialed: str
    ) -> list[Step]:
        path = _Path(self.sources[context], {**base, "EXTEN": dialed})
        self._run(path, context, exten, 1, [])
        if not path.steps:
            raise ValueError(f"{path.source}: {context},{exten} does nothing the stand-in can run")
        return path.steps

    def _run(
        self, path: _Path, context: str, exten: str, priority: int, frames: list[str]
    ) -> str | None:
        """Follow the dialplan from ``context,exten,priority``; returns a ``Return`` value inside
        a subroutine, ``None`` when the path ends (hang-up, a Goto elsewhere, the end)."""
        for _ in range(MAX_STEPS):
            step = self._step(context, exten, priority)
            if step is None:
                return None  # fell off the end: Asterisk hangs up, and so does the stand-in
            where = f"{self.sources.get(context, path.source)}:{step.line}"
            nxt = self._do(path, step, context, exten, where, frames)
            if isinstance(nxt, _Return):
                return nxt.value
            if nxt is None:
                return None
            context, exten, priority = nxt
        raise ValueError(f"{path.source}: more than {MAX_STEPS} steps from {context},{exten}")

    def _step(self, context: str, exten: str, priority: int) -> ConfStep | None:
        ctx = self.contexts.get(context)
        if ctx is None:
            return None
        for s in ctx.extensions.get(exten, []):
            if s.number == priority:
                return s
        return None

    def _label(self, context: str, exten: str, label: str, where: str) -> int:
        ctx = self.contexts.get(context)
        for s in ctx.extensions.get(exten, []) if ctx else []:
            if s.label == label:
                return s.number
        raise ValueError(f"{where}: no label {label!r} in {context},{exten}")

    def _target(self, spec: str, context: str, exten: str, where: str) -> tuple[str, str, int]:
        parts = [p.strip() for p in spec.split(",")]
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"{where}: bad Goto target {spec!r}")
        ctx = parts[0] if len(parts) == 3 else context
        ext = parts[-2] if len(parts) >= 2 else exten
        where_to = parts[-1]
        prio = int(where_to) if where_to.isdigit() else self._label(ctx, ext, where_to, where)
        return ctx, ext, prio

    def _goto(
        self, path: _Path, spec: str, context: str, exten: str, where: str
    ) -> tuple[str, str, int] | None:
        """Inside this context: follow (the path is flattened); to another context: a Goto step
        of the stand-in, and this path ends."""
        ctx, ext, prio = self._target(spec, context, exten, where)
        if ctx == context:
            return ctx, ext, prio
        if ctx not in self.contexts:
            raise ValueError(f"{where}: Goto to unknown context {ctx!r}")
        if prio != 1:
            # Flattened extensions renumber their steps; only an extension's start survives.
            raise ValueError(f"{where}: Goto into the middle of {ctx},{ext} is not modelled")
        path.steps.append(Step("Goto", f"{ctx},{ext},1"))
        return None

    def _do(
        self, path: _Path, step: ConfStep, context: str, exten: str, where: str, frames: list[str]
    ) -> tuple[str, str, int] | _Return | None:
        following = (context, exten, step.number + 1)
        app = step.app
        if app == "NoOp":
            path.steps.append(Step("NoOp", step.args))
            return following
        if app == "Set":
            name, _, raw = step.args.partition("=")
            name = name.strip().lstrip("_")
            if name in self.overrides:
                # The settings are Set again by every call's Gosub: the override must win there.
                path.values[name] = self.overrides[name]
                return following
            try:
                path.values[name] = self.substitute(raw, path, where)
            except Unknown:
                # Decided by the call; the stand-in keeps no variables.
                path.values.pop(name, None)
                path.unknown.add(name)
            else:
                path.unknown.discard(name)
            return following
        if app == "Gosub":
            return self._gosub(path, step.args, context, exten, where, frames, following)
        if app == "Return":
            if not frames:
                return None
            return _Return(self.substitute(step.args, path, where))
        if app == "Goto":
            return self._goto(path, self.substitute(step.args, path, where), context, exten, where)
        if app == "GotoIf":
            return self._goto_if(path, step.args, context, exten, where, following)
        if app == "GotoIfTime":
            return self._goto_if_time(path, step.args, context, exten, where, following)
        if app == "Dial":
            return self._dial(path, step.args, where, following)
        if app == "Stasis":
            path.steps.append(Step("Stasis", self.substitute(step.args, path, where)))
            path.last_app = "Stasis"
            return following
        if app == "VoiceMail":
            box = self.substitute(step.args, path, where).split(",")[0]
            path.steps.append(Step("VoiceMail", box))
            return None  # the stand-in's voicemail keeps the call until the caller hangs up
        if app == "Hangup":
            path.steps.append(Step("Hangup", self.substitute(step.args, path, where)))
            return None
        if app in ("Answer", "Wait", "Playback"):
            path.steps.append(Step(app, self.substitute(step.args, path, where)))
            return following
        raise ValueError(f"{where}: {app}() is not modelled by the stand-in")

    def _gosub(
        self,
        path: _Path,
        args: str,
        context: str,
        exten: str,
        where: str,
        frames: list[str],
        following: tuple[str, str, int],
    ) -> tuple[str, str, int] | None:
        m = re.fullmatch(r"([^()]*?)(?:\((.*)\))?", args.strip())
        assert m is not None  # the pattern matches any text
        target, sub_args = m.group(1), m.group(2)
        ctx, ext, prio = self._target(target, context, exten, where)
        saved = {k: path.values[k] for k in path.values if k.startswith("ARG")}
        for k in saved:
            del path.values[k]
        if sub_args:
            for i, a in enumerate(sub_args.split(","), start=1):
                path.values[f"ARG{i}"] = self.substitute(a.strip(), path, where)
        if len(frames) > 20:
            raise ValueError(f"{where}: Gosub nested too deep")
        returned = self._run(path, ctx, ext, prio, [*frames, f"{context},{exten}"])
        for k in [k for k in path.values if k.startswith("ARG")]:
            del path.values[k]
        path.values.update(saved)
        if returned is None:
            # The subroutine ended the call (VoiceMail, Hangup) or jumped away.
            if path.steps and path.steps[-1].app in ("VoiceMail", "Hangup", "Goto"):
                return None
            returned = ""
        path.values["GOSUB_RETVAL"] = returned
        return following

    def _goto_if(
        self,
        path: _Path,
        args: str,
        context: str,
        exten: str,
        where: str,
        following: tuple[str, str, int],
    ) -> tuple[str, str, int] | None:
        cond, _, branches = args.rpartition("?")
        yes, _, no = branches.partition(":")
        try:
            taken = _truth(self.substitute(cond, path, where))
        except Unknown:
            taken = self._runtime_condition(path, cond, where)
        spec = yes if taken else no
        if not spec.strip():
            return following
        return self._goto(path, self.substitute(spec, path, where), context, exten, where)

    def _runtime_condition(self, path: _Path, cond: str, where: str) -> bool:
        """A status only the call knows, decided as the stand-in would (module docstring)."""
        m = re.fullmatch(r'\s*\$\[\s*"\$\{(\w+)\}"\s*(=|!=)\s*"(\w+)"\s*\]\s*', cond)
        if m is not None:
            var, op, value = m.groups()
            known = {
                ("Dial", "DIALSTATUS", "ANSWER"): False,
                ("Stasis", "STASISSTATUS", "FAILED"): True,
            }
            outcome = known.get((path.last_app, var, value))
            if outcome is not None:
                return outcome if op == "=" else not outcome
        raise ValueError(f"{where}: cannot decide {cond.strip()!r} for the stand-in")

    def _goto_if_time(
        self,
        path: _Path,
        args: str,
        context: str,
        exten: str,
        where: str,
        following: tuple[str, str, int],
    ) -> tuple[str, str, int] | None:
        if self.office_open is None:
            raise ValueError(f"{where}: GotoIfTime needs office_open (the stand-in has no clock)")
        _, _, spec = args.rpartition("?")
        yes, _, no = spec.partition(":")
        taken = (yes.strip().rsplit(",", 1)[-1] == "open") == self.office_open
        chosen = yes if taken else no
        if not chosen.strip():
            return following
        return self._goto(path, chosen, context, exten, where)

    def _dial(
        self, path: _Path, args: str, where: str, following: tuple[str, str, int]
    ) -> tuple[str, str, int]:
        text = self.substitute(args, path, where)
        dest = text.split(",")[0]
        if dest.startswith("Local/"):
            exten, _, rest = dest[len("Local/") :].partition("@")
            ctx = rest.split("/")[0]
            first = self._step(ctx, exten, 1)
            if first is None or first.app != "Stasis":
                raise ValueError(f"{where}: Dial({dest}) is modelled only when it runs Stasis")
            stasis = self.substitute(first.args, path, f"{self.sources[ctx]}:{first.line}")
            path.steps.append(Step("Stasis", stasis))
            path.last_app = "Dial"  # what follows reads the caller's DIALSTATUS
            return following
        path.steps.append(Step("Dial", text))
        path.last_app = "Dial"
        return following


@dataclass(frozen=True)
class _Return:
    value: str


def _function(name: str, arg: str) -> str:
    if name == "LEN":
        return str(len(arg))
    cond, _, branches = arg.partition("?")
    yes, _, no = branches.partition(":")
    return yes if _truth(cond) else no


def _expression(expr: str, where: str) -> str:
    m = _COMPARE.match(expr)
    if m is None:
        raise ValueError(f"{where}: cannot evaluate $[{expr}]")
    left, op, right = m.group(2), m.group(3), m.group(5)
    if left.lstrip("-").isdigit() and right.lstrip("-").isdigit():
        a, b = int(left), int(right)
        result = {"=": a == b, "!=": a != b, ">": a > b, "<": a < b, ">=": a >= b, "<=": a <= b}[op]
    elif op in ("=", "!="):
        result = (left == right) == (op == "=")
    else:
        raise ValueError(f"{where}: cannot compare {left!r} {op} {right!r}")
    return "1" if result else "0"


def _truth(text: str) -> bool:
    """Asterisk's condition: empty or 0 is false."""
    t = text.strip()
    return t not in ("", "0")
