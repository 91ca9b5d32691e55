"""The dependency direction of DESIGN.md holds: core and mailcatcher never need Qt or each other."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, importlib.util, pkgutil, sys

    BLOCKED = {blocked!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked import of {{name}}")
            return None

    sys.meta_path.insert(0, Block())
    import {package}
    for mod in pkgutil.walk_packages({package}.__path__, "{package}."):
        importlib.import_module(mod.name)
    print("ok")
    """
)


@pytest.mark.parametrize(
    ("package", "blocked"),
    [
        ("core", {"PySide6", "shiboken6", "mailcatcher", "desktop"}),
        ("mailcatcher", {"PySide6", "shiboken6", "core", "desktop"}),
    ],
)
def test_package_imports_without_forbidden_layers(package: str, blocked: set[str]) -> None:
    """Every module of core and mailcatcher imports with Qt and the other layers blocked."""
    code = BLOCKER.format(package=package, blocked=sorted(blocked))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
