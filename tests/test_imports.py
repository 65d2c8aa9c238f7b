"""The import rules of DESIGN.md, checked on the source with `ast`, and on a real interpreter.

- cuefarm (the library) imports none of the programs, nor SQLAlchemy, Alembic or Qt;
- supervisor never imports Qt, cuegui or rqd;
- rqd never imports SQLAlchemy, Alembic, Qt, supervisor or cuegui;
- cuegui never imports SQLAlchemy, Alembic, supervisor or rqd.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT = {"qtpy", "PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph"}
DB = {"sqlalchemy", "alembic", "psycopg2"}
FORBIDDEN: dict[str, set[str]] = {
    "cuefarm": {"supervisor", "rqd", "cuegui"} | DB | QT,
    "supervisor": {"cuegui", "rqd"} | QT,
    "rqd": {"supervisor", "cuegui"} | DB | QT,
    "cuegui": {"supervisor", "rqd"} | DB,
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level module) for every absolute import, including importlib/__import__
    calls with a constant name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.partition(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append((node.lineno, node.module.partition(".")[0]))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = (func.attr if isinstance(func, ast.Attribute)
                    else func.id if isinstance(func, ast.Name) else "")
            arg = node.args[0]
            if (name in ("import_module", "__import__") and isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str) and not arg.value.startswith(".")):
                found.append((node.lineno, arg.value.partition(".")[0]))
    return found


def source_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_packages_have_sources():
    assert source_files("cuefarm"), "the library must be there"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_import_rules(package):
    violations = []
    for path in source_files(package):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_modules(tree):
            if module in FORBIDDEN[package]:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not violations, "\n".join(violations)


def test_checker_sees_every_import_form():
    tree = ast.parse("import a.b\nfrom c.d import e\nfrom . import f\nfrom .g import h\n"
                     "import importlib\nimportlib.import_module('i.j')\n__import__('k')\n"
                     "def later():\n    import m\n")
    assert [m for _, m in imported_modules(tree)] == ["a", "c", "importlib", "i", "k", "m"]


def loaded_after(code: str) -> set[str]:
    """Top-level modules loaded in a fresh interpreter after running `code`."""
    probe = (f"{code}\nimport json, sys\n"
             "print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


HEAVY = {"sqlalchemy", "alembic", "PySide6", "qtpy", "pyqtgraph", "supervisor", "rqd", "cuegui"}


def test_cli_and_client_load_nothing_heavy():
    assert not loaded_after("import cuefarm.cli, cuefarm.client") & HEAVY


def test_cli_help_loads_no_program():
    # The program commands are listed in help without being imported.
    code = ("from cuefarm.cli import cli\n"
            "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass")
    assert not loaded_after(code) & HEAVY


def test_cli_query_loads_no_program():
    # A query that fails fast (nothing listens there) still goes through command resolution.
    code = ("from cuefarm.cli import cli\n"
            "try:\n    cli.main(['--supervisor', '127.0.0.1:9', '--timeout', '0.05', 'jobs'])\n"
            "except SystemExit:\n    pass")
    assert not loaded_after(code) & HEAVY
