"""The package layering the style guide sets, read from the source with `ast`: the harness
(`loadtest/`) talks to a server over the network and imports `protocol`, never `server`;
`protocol/` imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_packages(path: Path) -> set[str]:
    """The top-level package of every module `path` imports, however it is spelled."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value.split(".")[0])
    return found


def _is_dynamic_import(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in ("import_module", "__import__") and bool(node.args)


@pytest.mark.parametrize(
    ("package", "forbidden"), [("loadtest", {"server"}), ("protocol", {"server", "loadtest"})]
)
def test_no_module_imports_a_package_above_its_layer(package: str, forbidden: set[str]) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & forbidden)
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_every_spelling(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "import server.db\n"
        "from server import app\n"
        "import importlib\n"
        "def f():\n"
        "    from server.store import Store\n"
        "    importlib.import_module('server.config')\n"
        "from . import sibling\n"
    )
    assert imported_packages(module) == {"server", "importlib"}
