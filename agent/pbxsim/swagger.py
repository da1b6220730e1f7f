"""A small validator for ARI's Swagger 1.2 models (``ari-api-docs/*.json``).

Used by the conformance tests to check every event and response the stand-in produces: required
fields present, no field the model lacks, types right (``string``, ``int``/``long``, ``double``,
``boolean``, ``Date``, ``object``, ``List[T]``, nested models), ``allowableValues`` respected.
Inheritance comes from ``subTypes`` (``Message`` → ``Event`` → ``StasisStart``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$")
_LIST = re.compile(r"^List\[(.+)\]$")


class Models:
    def __init__(self, models: dict[str, Any]) -> None:
        self.models = models
        self.parent: dict[str, str] = {}
        for name, m in models.items():
            for sub in m.get("subTypes", []):
                self.parent[sub] = name

    @classmethod
    def load(cls, docs_dir: str | Path) -> Models:
        merged: dict[str, Any] = {}
        for f in sorted(Path(docs_dir).glob("*.json")):
            merged.update(json.loads(f.read_text()).get("models", {}))
        return cls(merged)

    def properties(self, model: str) -> dict[str, Any]:
        chain = [model]
        while chain[-1] in self.parent:
            chain.append(self.parent[chain[-1]])
        props: dict[str, Any] = {}
        for name in reversed(chain):
            props.update(self.models[name].get("properties", {}))
        return props

    def validate(self, value: Any, type_: str, where: str = "$") -> list[str]:
        """Problems found in ``value`` as an instance of ``type_`` (empty: valid)."""
        m = _LIST.match(type_)
        if m:
            if not isinstance(value, list):
                return [f"{where}: expected a list of {m.group(1)}, got {type(value).__name__}"]
            return [
                e
                for i, v in enumerate(value)
                for e in self.validate(v, m.group(1), f"{where}[{i}]")
            ]
        simple = {
            "string": lambda v: isinstance(v, str),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "object": lambda v: isinstance(v, dict),
            "Date": lambda v: isinstance(v, str) and bool(_DATE.match(v)),
        }
        if type_ in simple:
            return [] if simple[type_](value) else [f"{where}: expected {type_}, got {value!r}"]
        if type_ not in self.models:
            return [f"{where}: unknown model {type_}"]
        if not isinstance(value, dict):
            return [f"{where}: expected a {type_} object, got {type(value).__name__}"]
        props = self.properties(type_)
        errors = [f"{where}.{k}: not in model {type_}" for k in value if k not in props]
        for name, spec in props.items():
            if name not in value:
                if spec.get("required"):
                    errors.append(f"{where}.{name}: required by {type_} but missing")
                continue
            errors += self.validate(value[name], spec["type"], f"{where}.{name}")
            allowed = spec.get("allowableValues", {})
            if allowed.get("valueType") == "LIST" and value[name] not in allowed["values"]:
                errors.append(f"{where}.{name}: {value[name]!r} not in {allowed['values']}")
        return errors

    def validate_event(self, event: dict[str, Any]) -> list[str]:
        type_ = event.get("type")
        if not isinstance(type_, str) or type_ not in self.models:
            return [f"$.type: unknown event type {type_!r}"]
        return self.validate(event, type_)


def operations(docs_dir: str | Path) -> dict[tuple[str, str], set[str]]:
    """(method, path) → parameter names (path, query and body) of every documented operation."""
    ops: dict[tuple[str, str], set[str]] = {}
    for f in sorted(Path(docs_dir).glob("*.json")):
        for api in json.loads(f.read_text()).get("apis", []):
            for op in api.get("operations", []):
                ops[(op["httpMethod"], api["path"])] = {p["name"] for p in op.get("parameters", [])}
    return ops
