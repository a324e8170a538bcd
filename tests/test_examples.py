"""The bundled examples work as documented."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_example_loss_falls_and_model_learns():
    losses, accuracy = _load("train_tiny_cnn").train(steps=300, log_every=0)
    first, last = np.mean(losses[:25]), np.mean(losses[-25:])
    assert first > 2.0  # near log(10): the untrained model guesses
    assert last < 0.5 * first, (first, last)
    assert accuracy > 0.5  # chance is 0.1


def test_readme_main_command_runs_in_a_fresh_process(tmp_path: Path):
    """The README's first command, after its install step, exactly as written (in a
    copy of the examples): the project is written, built and run, and its test passes.
    A fresh process also catches registrations that only happen when tests import
    something first."""
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"```sh\n(.*?)\n```", readme, re.S).group(1)
    install, _, main_job = command.partition(" && ")
    assert install.startswith("python3 -m pip install -e .")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(main_job, shell=True, cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "OK" in result.stdout and "step 5 loss" in result.stdout
