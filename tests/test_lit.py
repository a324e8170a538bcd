"""Runs the lit/FileCheck suite under tests/filecheck as part of pytest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SUITE = Path(__file__).resolve().parent / "filecheck"


def test_filecheck_suite():
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    lit = shutil.which("lit", path=env["PATH"])
    assert lit is not None, "lit is not installed (pip install -e '.[test]')"
    assert shutil.which("edge-opt", path=env["PATH"]), "edge-opt is not on PATH"
    result = subprocess.run(
        [lit, "-v", str(SUITE)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
