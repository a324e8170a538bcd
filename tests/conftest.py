"""Shared fixtures.

The real models in `../shared/models/deeploy/` are oracles nobody here wrote. Outside
this workplace the folder is absent and tests that need it skip with a message; CI sets
`EDGE_OPT_REQUIRE_SHARED=1`, which turns that skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = Path(
    os.environ.get("EDGE_OPT_SHARED_MODELS", ROOT.parent / "shared" / "models" / "deeploy")
)


def deeploy_model(name: str) -> Path:
    """Folder of one Deeploy reference model; skips (or fails in CI) when absent."""
    folder = SHARED_MODELS / name
    if not folder.is_dir():
        message = (
            f"reference model {name} not found in {SHARED_MODELS} (the ../shared folder "
            "of the edge-opt workplace)"
        )
        if os.environ.get("EDGE_OPT_REQUIRE_SHARED") == "1":
            pytest.fail(message + "; EDGE_OPT_REQUIRE_SHARED=1 makes this an error")
        pytest.skip(message)
    return folder


@pytest.fixture
def shared_model():
    return deeploy_model
