"""The bundled examples work as documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


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
