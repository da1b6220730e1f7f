"""A declarative model of the few dialplan pieces the stand-in runs.

Contexts hold extensions; an extension is a list of priorities (1, 2, …), each one application
call written as in ``extensions.conf`` (``Dial(PJSIP/frontdesk,20)``), optionally labelled
(``{"label": "fallback", "app": "Dial(PJSIP/frontdesk,20)"}``). Only the applications the
practice's snippets use are known; anything else is rejected when the file is loaded, not when a
call reaches it.

The file format (YAML or JSON)::

    contexts:
      medical-inbound:
        "100": ["NoOp(medical agent)", "Stasis(medical-agent)", "Goto(medagent-fallback,s,1)"]
      medagent-fallback:
        s: ["Dial(PJSIP/frontdesk,20)", "VoiceMail(100)", "Hangup()"]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

APPLICATIONS = frozenset(
    {"Stasis", "Dial", "Playback", "VoiceMail", "Goto", "Hangup", "Answer", "Wait", "NoOp"}
)

_CALL = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*\((.*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Step:
    app: str
    data: str = ""
    label: str = ""

    @property
    def args(self) -> list[str]:
        return [] if self.data == "" else [a.strip() for a in self.data.split(",")]

    @classmethod
    def parse(cls, text: str, label: str = "") -> Step:
        m = _CALL.match(text)
        if m is None:
            raise ValueError(f"dialplan step must look like App(args), got {text!r}")
        app, data = m.group(1), m.group(2).strip()
        if app not in APPLICATIONS:
            raise ValueError(
                f"dialplan application {app!r} is not modelled; known: {', '.join(sorted(APPLICATIONS))}"
            )
        return cls(app, data, label)


@dataclass(frozen=True)
class Target:
    """Where a Goto or an ARI /continue sends a channel."""

    context: str
    exten: str
    priority: int


@dataclass(frozen=True)
class Dialplan:
    contexts: dict[str, dict[str, list[Step]]] = field(default_factory=dict)

    def step(self, context: str, exten: str, priority: int) -> Step | None:
        steps = self.contexts.get(context, {}).get(exten)
        if steps is None or not 1 <= priority <= len(steps):
            return None
        return steps[priority - 1]

    def has_extension(self, context: str, exten: str) -> bool:
        return exten in self.contexts.get(context, {})

    def label_priority(self, context: str, exten: str, label: str) -> int | None:
        for i, s in enumerate(self.contexts.get(context, {}).get(exten, []), start=1):
            if s.label == label:
                return i
        return None

    def resolve_goto(self, data: str, here: Target) -> Target:
        """``Goto([[context,]exten,]priority|label)`` relative to ``here``."""
        parts = [p.strip() for p in data.split(",")] if data else []
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"Goto needs 1 to 3 arguments, got {data!r}")
        context = parts[0] if len(parts) == 3 else here.context
        exten = parts[-2] if len(parts) >= 2 else here.exten
        where = parts[-1]
        if where.isdigit():
            return Target(context, exten, int(where))
        prio = self.label_priority(context, exten, where)
        if prio is None:
            raise ValueError(f"no label {where!r} in {context},{exten}")
        return Target(context, exten, prio)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dialplan>") -> Dialplan:
        if not isinstance(data, dict) or not isinstance(data.get("contexts"), dict):
            raise ValueError(f"{source}: expected a mapping with a 'contexts' table")
        contexts: dict[str, dict[str, list[Step]]] = {}
        for cname, exts in data["contexts"].items():
            if not isinstance(exts, dict):
                raise ValueError(f"{source}: context {cname!r} must map extensions to step lists")
            contexts[str(cname)] = {}
            for exten, steps in exts.items():
                if not isinstance(steps, list) or not steps:
                    raise ValueError(f"{source}: {cname},{exten} must be a non-empty list of steps")
                parsed: list[Step] = []
                for i, raw in enumerate(steps, start=1):
                    where = f"{source}: {cname},{exten},{i}"
                    try:
                        if isinstance(raw, str):
                            parsed.append(Step.parse(raw))
                        elif isinstance(raw, dict) and isinstance(raw.get("app"), str):
                            parsed.append(Step.parse(raw["app"], str(raw.get("label", ""))))
                        else:
                            raise ValueError(f"expected a string or {{app, label}}, got {raw!r}")
                    except ValueError as exc:
                        raise ValueError(f"{where}: {exc}") from None
                contexts[str(cname)][str(exten)] = parsed
        return cls(contexts)

    @classmethod
    def load(cls, path: str | Path) -> Dialplan:
        """Load a ``.yaml``/``.yml``/``.json`` dialplan file. Raises ``ValueError`` naming the file."""
        p = Path(path)
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        return cls.from_dict(data, source=str(p))


DEFAULT_DIALPLAN_DATA: dict[str, Any] = {
    "contexts": {
        # The main number: the agent answers; if the app is not connected (agent down) or the
        # agent hands the call back, the front desk rings, then voicemail takes a message.
        "medical-inbound": {
            "100": [
                "NoOp(medical agent)",
                "Stasis(medical-agent)",
                "Goto(medagent-fallback,s,1)",
            ],
            # The /continue target used in the reference traces.
            "300": [
                "NoOp(landed in 300 via ARI continue)",
                "Playback(hello-world)",
                "Wait(3)",
                "Hangup()",
            ],
            "6001": ["Dial(PJSIP/clinician100,20)", "Hangup()"],
            "6003": ["Dial(PJSIP/clinician101,5)", "Hangup()"],
        },
        "medagent-fallback": {
            "s": [
                "NoOp(medagent fallback)",
                "Dial(PJSIP/frontdesk,20)",
                "VoiceMail(100)",
                "Hangup()",
            ],
        },
        "medical-clinician": {"s": ["NoOp(clinician leg)"]},
    }
}


def default_dialplan() -> Dialplan:
    return Dialplan.from_dict(DEFAULT_DIALPLAN_DATA, source="<default dialplan>")
