"""The code base stays ruff clean (lint and format), checked with the pinned ruff."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    done = subprocess.run([sys.executable, "-m", "ruff", *command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_manual_is_numpy_only():
    files = sorted((ROOT / "manual").rglob("*.py"))
    assert files
    allowed = {"numpy", "manual", "dataclasses", "math", "collections", "typing"}  # typing: annotations only
    found = {str(path.relative_to(ROOT)): imported_roots(path) - allowed for path in files}
    assert {path: roots for path, roots in found.items() if roots} == {}
