"""Shared fixtures and the hypothesis profile.

Property tests run without a deadline (interpreting a model takes what it takes) and
without the health checks for slow or large draws (random models are both); under CI
(`CI` set) every property test is derandomized, so that a run is reproducible. A test
file sets only its number of examples (`settings(max_examples=40)`).

The real models in `../shared/models/deeploy/` are oracles nobody here wrote. Outside
this workplace the folder is absent and tests that need it skip with a message; CI sets
`EDGE_OPT_REQUIRE_SHARED=1`, which turns that skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from edge_opt.testing.draws import seed_only_draws

settings.register_profile(
    "edge-opt",
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
    ],
)
settings.register_profile(
    "edge-opt-ci", settings.get_profile("edge-opt"), derandomize=True, database=None
)
settings.load_profile("edge-opt-ci" if os.environ.get("CI") else "edge-opt")


@pytest.fixture(autouse=True, scope="session")
def _draws_depend_on_the_seed_alone():
    """Derandomized draws that do not depend on the modules earlier tests imported
    (`edge_opt.testing.draws`)."""
    with seed_only_draws():
        yield

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
