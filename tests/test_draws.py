"""`seed_only_draws`: the models a seed draws do not change when a module with
constants is imported (Hypothesis would otherwise draw some of its constants)."""

from __future__ import annotations

import importlib
import sys

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.internal.conjecture import providers

from edge_opt.ir.model_io import print_module
from edge_opt.testing import draws
from edge_opt.testing.campaign import Campaign
from edge_opt.testing.strategies import RandomModel

CONSTANTS = "\n".join(f"C{i} = {i}" for i in range(2, 70)) + "\nBIG = [{}]\n".format(
    ", ".join(str(17 ** k) for k in range(3, 16)))


def drawn(examples: int = 15) -> list[str]:
    texts: list[str] = []

    @settings(max_examples=examples, database=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck), deadline=None)
    @seed(1234)
    @given(Campaign(ops=("linear", "conv2d", "relu", "max_pool2d")).models())
    def collect(model: RandomModel) -> None:
        texts.append(print_module(model.module))

    collect()
    return texts


@pytest.fixture
def constants_module(tmp_path, monkeypatch):
    """Imports a local module full of integer constants, after the first draws."""
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "many_constants.py").write_text(CONSTANTS)
    monkeypatch.syspath_prepend(str(folder))

    def load() -> None:
        importlib.import_module("many_constants")

    yield load
    sys.modules.pop("many_constants", None)


def test_a_seed_draws_the_same_models_after_an_import(constants_module):
    with draws.seed_only_draws():
        before = drawn()
        constants_module()
        assert drawn() == before


def test_without_it_the_import_changes_the_draws(constants_module, monkeypatch):
    """The mechanism the context turns off is real (the test above can fail); if a
    Hypothesis release drops or renames it, this fails: check `edge_opt.testing.draws`
    against it."""
    assert draws._COLLECT is not None
    monkeypatch.setattr(providers, "_get_local_constants", draws._COLLECT)
    draws._clear_cache()
    before = drawn(40)
    constants_module()
    after = drawn(40)
    draws._clear_cache()
    assert after != before
