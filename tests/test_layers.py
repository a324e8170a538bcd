"""The layering of the package (docs/architecture.md), enforced: import-linter's
contracts in pyproject.toml, and no import hidden inside a function (the usual way to
dodge an import cycle) except of optional heavy libraries."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS = PYPROJECT["tool"]["setuptools"]["package-dir"]

LAZY_IMPORTS_ALLOWED = {"matplotlib", "torch", "onnxruntime", "unicorn", "ziglang", "distributed"}
"""Libraries imported where they are used, so that a command that does not need them
does not pay for loading them (or fail without them)."""


def _source_files() -> list[tuple[str, Path]]:
    files = []
    for package, directory in PACKAGE_DIRS.items():
        for path in sorted((ROOT / directory).rglob("*.py")):
            files.append((package, path))
    return files


def test_every_package_directory_is_packaged():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    for package, directory in PACKAGE_DIRS.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory)
            name = ".".join([package, *relative.parts])
            assert name in listed, f"{name} ({init.parent}) is not in pyproject's packages"


def test_imports_only_point_down(tmp_path: Path):
    """import-linter on a copy of the package as a plain directory tree (it cannot
    follow the editable install's directory mapping)."""
    tree = tmp_path / "edge_opt"
    tree.mkdir()
    (tree / "__init__.py").write_text("")
    for package, directory in PACKAGE_DIRS.items():
        shutil.copytree(ROOT / directory, tree / package.split(".", 1)[1],
                        ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.h"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    exe = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(exe), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken" in result.stdout


def _function_level_imports(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text())
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.split(".")[0] not in LAZY_IMPORTS_ALLOWED:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: import {name}")
    return found


def test_no_function_level_imports():
    found = [hit for _, path in _source_files() for hit in _function_level_imports(path)]
    assert not found, "imports inside functions:\n" + "\n".join(found)
