"""The built wheel carries what a non-editable install needs: migrations, Lua scripts, pages, and
(where a C compiler is) the fan-out's write loop in C."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_wheel_runs_migrations_from_the_installed_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("vqueue-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "migrations/001_core.sql",
        "server/scripts/join.lua",
        "server/scripts/common.lua",
        "server/store/core.py",
        "server/db/core.py",
        "protocol/codec.py",
    ):
        assert required in names, required
    compiler = shutil.which("cc") or shutil.which("gcc")
    built = any(n.startswith("server/_straight.") and n.endswith(".so") for n in names)
    assert built == bool(compiler)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    # Import from the installed copy only (not the source tree) and list what it would apply.
    code = (
        "import server.db.core as c, server.store.core as s;"
        f"assert c.__file__.startswith({str(target)!r}), c.__file__;"
        "print([n for n, _ in c.migration_files()]); print(sorted(s._load_scripts()));"
        "import server.outbox as o; print('native', o.runs_c_loop())"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert "001_core.sql" in out and "'join'" in out
    assert f"native {bool(compiler)}" in out
