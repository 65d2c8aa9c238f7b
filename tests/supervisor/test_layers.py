"""The supervisor's parts import one another in layers, never in a circle.

Every import counts: top level, inside functions and under TYPE_CHECKING.  A module may import
modules of its own layer or below, never above; and no set of modules may import one another
in a circle, inside a layer either.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "supervisor"

# Lowest first.  A new module must be placed here: the test fails for one that is not.
LAYERS: list[tuple[str, set[str]]] = [
    ("plain parts: data and functions, no database",
     {"supervisor", "supervisor.registry", "supervisor.roles", "supervisor.matching",
      "supervisor.planning", "supervisor.logrelay"}),
    ("store: the only place that writes SQL", {"supervisor.store"}),
    ("services the loop runs off its thread",
     {"supervisor.background", "supervisor.metering", "supervisor.usage",
      "supervisor.licensing", "supervisor.events", "supervisor.notify",
      "supervisor.retention", "supervisor.trust"}),
    ("live state and effects", {"supervisor.live", "supervisor.outbox"}),
    ("what handlers get", {"supervisor.intake", "supervisor.farmbus", "supervisor.context"}),
    ("handlers", {"supervisor.dispatch", "supervisor.workerlink", "supervisor.registration",
                  "supervisor.schedules", "supervisor.metrics", "supervisor.billing",
                  "supervisor.why", "supervisor.access", "supervisor.requests",
                  "supervisor.billing_api", "supervisor.clientapi", "supervisor.farmlink",
                  "supervisor.presence", "supervisor.auditing", "supervisor.wrangling",
                  "supervisor.exports", "supervisor.notify_api", "supervisor.archive_api",
                  "supervisor.comments", "supervisor.stats", "supervisor.keys_api",
                  "supervisor.bigsubmit", "supervisor.submitproc"}),
    ("the loop", {"supervisor.loop"}),
    ("assembly", {"supervisor.server", "supervisor.pipeline"}),
    ("program", {"supervisor.main", "supervisor.__main__"}),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    name = ".".join(parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The supervisor modules `path` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from supervisor import live` imports supervisor.live; `from supervisor.live
            # import Live` imports supervisor.live
            names = [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in known:
                n = n.rpartition(".")[0]
            if n:
                found.add(n)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(p, known) - {m} for m, p in mods.items()}


def layer_of(module: str) -> int:
    for i, (_, members) in enumerate(LAYERS):
        for m in members:
            if module == m or (m != "supervisor" and module.startswith(m + ".")):
                return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected sets of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_inside_the_supervisor():
    assert cycles(graph()) == []


def test_each_module_imports_only_its_layer_and_below():
    wrong = []
    for m, deps in sorted(graph().items()):
        for d in sorted(deps):
            if layer_of(d) > layer_of(m):
                wrong.append(f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} "
                             f"({LAYERS[layer_of(d)][0]})")
    assert not wrong, "\n".join(wrong)


def test_the_checker_sees_circles_and_hidden_imports(tmp_path):
    src = tmp_path / "a.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                   "    from supervisor.loop import Loop\n"
                   "def late():\n    import supervisor.server\n"
                   "from supervisor import live\n")
    assert imports_of(src, {"supervisor.loop", "supervisor.server", "supervisor.live",
                            "supervisor"}) == {"supervisor.loop", "supervisor.server",
                                               "supervisor.live"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# What a module outside the store may take from SQLAlchemy: the types of what it passes on, and
# the errors it handles.  Statements (select, insert, text, func, dialects, ...) are the store's.
OUTSIDE_THE_STORE = {"sqlalchemy.Connection", "sqlalchemy.Engine"}


def sql_outside_the_store(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            if node.module != "sqlalchemy.exc":
                found += [f"{node.module}.{a.name}" for a in node.names
                          if f"{node.module}.{a.name}" not in OUTSIDE_THE_STORE]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("execute", "exec_driver_sql", "scalar", "scalars")):
            found.append(f"a call of .{node.func.attr}() at line {node.lineno}")
    return found


def test_only_the_store_writes_sql():
    wrong = {m: found for m, p in sorted(modules().items())
             if not (m == "supervisor.store" or m.startswith("supervisor.store."))
             and (found := sql_outside_the_store(p))}
    assert not wrong, wrong


def test_the_sql_checker_sees_statements(tmp_path):
    src = tmp_path / "a.py"
    src.write_text("from sqlalchemy import Connection, select\nimport sqlalchemy.dialects\n"
                   "from sqlalchemy.exc import IntegrityError\n"
                   "def f(conn):\n    conn.execute(select(1))\n")
    assert sql_outside_the_store(src) == ["sqlalchemy.select", "sqlalchemy.dialects",
                                          "a call of .execute() at line 5"]
