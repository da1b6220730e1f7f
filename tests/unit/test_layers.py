"""The folders show the architecture: imports run down the layers, never up, and never in a circle.

Every module under ``agent/`` is parsed (not imported) and each of its imports of our own modules
becomes an edge, wherever the import stands: at the top, inside a function (the lazy imports that
keep ``medagent --help`` instant count as much as the others), or under ``TYPE_CHECKING``. ``cli``'s
``COMMANDS`` map names its modules as strings; those count as imports too.

Two rules over that graph:

* **Layers** (``LAYERS``, lowest first). A module may import its own package and the layers below
  it. Packages that share a row (``engines`` and ``adapters``) are siblings: neither imports the
  other.
* **No cycles.** No two modules import each other, directly or around a circle; nor do two packages
  (``agent.engines`` and ``agent.engines.nlu``, say) through their modules. Imports under
  ``TYPE_CHECKING`` are left out here: they never run, so they cannot tangle start-up, and they are
  how one module names another's class in an annotation.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "agent"

# The layers, lowest first: the top-level packages and modules under agent/, and what each is. A
# module may import from its own package and from the rows before its own, nothing else.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),  # the exception tree; imports nothing of ours
    ("core",),  # pure: no I/O, no clock, no asyncio; small settings objects of its own
    ("config",),  # typed settings; builds the core's settings objects from its sections
    ("log",),  # structlog set-up, redaction (reads [logging])
    ("engines", "adapters"),  # synchronous models / the asyncio edges; siblings
    ("runtime",),  # supervisor, call sessions, the agent's lifecycle: wires engines and adapters
    ("pbxsim",),  # the Asterisk stand-in and the harness that runs the agent against it
    ("commands",),  # one module per subcommand: the composition roots
    ("cli",),  # `medagent`: parses the command line, hands over to commands/
    ("__main__",),  # `python -m agent`
)
"""``pbxsim`` sits above ``runtime`` because ``pbxsim/simulate.py`` runs the real supervisor
against the stand-in; that it sits below only ``commands`` is what keeps it out of the agent:
nothing but a command (and tests and bench, which are not layered) imports the stand-in."""

LEVEL: dict[str, int] = {name: level for level, row in enumerate(LAYERS) for name in row}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    type_only: bool
    """Under ``if TYPE_CHECKING:``: for annotations only, never executed."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def owner(name: str) -> str | None:
    """The module of ours that ``name`` (a module, or a name inside one) lives in."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node below ``node``, and whether it stands under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, True
                yield from _walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, type_only
                yield from _walk(stmt, type_only)
            continue
        yield child, type_only
        yield from _walk(child, type_only)


def _targets(module: str, node: ast.AST) -> Iterable[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: from the importer's package, up level - 1
            package = module if is_package(module) else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{node.module}" if node.module else package
        else:
            base = node.module or ""
        for alias in node.names:
            # `from agent.engines import tts` imports the module agent.engines.tts;
            # `from agent.config import Config` imports a name of agent.config.
            submodule = f"{base}.{alias.name}"
            yield submodule if submodule in MODULES else base


def _command_modules(tree: ast.Module) -> list[tuple[str, int]]:
    """The module names in ``cli.COMMANDS`` (imported by name when their command runs)."""
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "COMMANDS"
            and isinstance(node.value, ast.Dict)
        ):
            out = []
            for value in node.value.values:
                assert isinstance(value, ast.Tuple) and isinstance(value.elts[0], ast.Constant)
                out.append((str(value.elts[0].value), value.lineno))
            return out
    raise AssertionError("agent/cli.py has no COMMANDS map")


COMMAND_MODULES = _command_modules(ast.parse((PACKAGE / "cli.py").read_text(encoding="utf-8")))


def imports() -> list[Import]:
    out: list[Import] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, type_only in _walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _targets(module, node):
                imported = owner(target) if target.split(".")[0] == "agent" else None
                if imported is None or imported == module:
                    continue
                edge = Import(module, imported, node.lineno, type_only)
                if edge not in out:  # `from x import a, b` is one import of x
                    out.append(edge)
    for name, line in COMMAND_MODULES:
        assert name in MODULES, f"agent/cli.py:{line}: COMMANDS names {name!r}, not a module"
        out.append(Import("agent.cli", name, line, False))
    return out


IMPORTS = imports()


def part(module: str) -> str:
    """The entry of ``LAYERS`` a module belongs to: ``agent.engines.nlu.train`` → ``engines``."""
    return module.split(".")[1] if module != "agent" else ""


def where(i: Import) -> str:
    return f"{MODULES[i.importer].relative_to(ROOT)}:{i.line}"


# --------------------------------------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if m != "agent" and part(m) not in LEVEL)
    assert not unplaced, f"modules outside every layer of LAYERS: {unplaced}"


def test_imports_follow_the_layers() -> None:
    wrong = []
    for i in IMPORTS:
        src, dst = part(i.importer), part(i.imported)
        if src not in LEVEL or dst not in LEVEL or src == dst:
            continue
        if LEVEL[dst] > LEVEL[src]:
            wrong.append(f"{where(i)}: {i.importer} imports {i.imported} (up: {src} < {dst})")
        elif LEVEL[dst] == LEVEL[src]:
            wrong.append(f"{where(i)}: {i.importer} imports {i.imported} (siblings {src}, {dst})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_commands_are_the_ones_cli_runs() -> None:
    """Every ``medagent`` subcommand is a module of ``agent/commands/``, and every public module
    there is a subcommand (helpers are ``_private``)."""
    commands = [
        m
        for m in MODULES
        if m.startswith("agent.commands.") and not m.rpartition(".")[2].startswith("_")
    ]
    assert sorted(name for name, _ in COMMAND_MODULES) == sorted(commands)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one member, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _describe(components: list[list[str]], edges: dict[tuple[str, str], Import]) -> str:
    lines = []
    for component in components:
        lines.append(" <-> ".join(component))
        members = set(component)
        for (a, b), i in sorted(edges.items()):
            if a in members and b in members:
                lines.append(f"    {where(i)}: {i.importer} imports {i.imported}")
    return "\n".join(lines)


def test_no_module_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    edges: dict[tuple[str, str], Import] = {}
    for i in IMPORTS:
        if not i.type_only:
            graph.setdefault(i.importer, set()).add(i.imported)
            edges.setdefault((i.importer, i.imported), i)
    cycles = strongly_connected(graph)
    assert not cycles, "modules that import each other:\n" + _describe(cycles, edges)


def package_of(module: str) -> str:
    """``agent.engines.nlu.train`` → ``agent.engines.nlu``. The modules at the top (``config``,
    ``cli``) are each their own unit: ``agent`` is not a package of the architecture."""
    parent = module.rpartition(".")[0]
    return module if is_package(module) or parent == "agent" else parent


def test_no_package_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    edges: dict[tuple[str, str], Import] = {}
    for i in IMPORTS:
        a, b = package_of(i.importer), package_of(i.imported)
        # A package's own modules and its __init__ are one unit; a parent's modules may use a
        # subpackage's or the subpackage its parent's, but not both.
        if i.type_only or a == b:
            continue
        graph.setdefault(a, set()).add(b)
        edges.setdefault((a, b), i)
    cycles = strongly_connected(graph)
    assert not cycles, "packages that import each other:\n" + _describe(cycles, edges)
