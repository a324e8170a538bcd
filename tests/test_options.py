"""Pass options: every numeric option has a rule (`OPTION_RULES`), the rules hold for
every default, and parsing accepts the notations users write."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import get_type_hints

import pytest

from edge_opt.passes.options import OPTION_RULES, EdgeOptPass
from edge_opt.passes.registry import available_passes, parse_pipeline
from edge_opt.support.errors import UserError

EDGE_OPT_PASSES = {
    name: factory()
    for name, factory in available_passes().items()
    if issubclass(factory(), EdgeOptPass)
}


@pytest.mark.parametrize("name", sorted(EDGE_OPT_PASSES))
def test_every_numeric_option_has_a_rule_and_its_default_obeys_it(name: str):
    cls = EDGE_OPT_PASSES[name]
    hints = get_type_hints(cls)
    for f in fields(cls):
        if hints[f.name] not in (int, float):
            continue
        assert f.name in OPTION_RULES, f"{name}: option {f.name} has no rule"
        if f.default is not MISSING:
            assert OPTION_RULES[f.name].holds(f.default), f"{name}: default of {f.name}"
    cls()  # the defaults build


@pytest.mark.parametrize(
    "spec, field, value",
    [
        ("train-full{lr=1e-3}", "lr", 1e-3),
        ("train-full{lr=2E-2}", "lr", 2e-2),
        ("train-full{lr=1}", "lr", 1.0),
        ("train-full{epsilon=1.5e-7}", "epsilon", 1.5e-7),
        ("train-full{weight-decay=0}", "weight_decay", 0.0),
    ],
)
def test_float_notations(spec: str, field: str, value: float):
    (p,) = parse_pipeline(spec)
    assert getattr(p, field) == value and isinstance(getattr(p, field), float)


@pytest.mark.parametrize(
    "spec",
    [
        "train-full{lr=0}", "train-full{lr=-1}", "train-full{lr=inf}",
        "train-full{momentum=1}", "train-full{momentum=-0.1}",
        "train-full{beta2=1.0}", "train-full{epsilon=-1e-8}",
        "train-full{weight-decay=-0.1}", "train-lora{alpha=0}", "train-lora{rank=0}",
        "train-lora{seed=-1}", "train-last{layers=0}", "train-sparse{budget-kib=0}",
        "plan-memory{alignment=3}", "plan-memory{alignment=-8}",
        "tile-attention-depth-first{rows=0}", "infer{attention-rows=-1}",
        "train-full{lr=0.1 momentum=0.5 lr=0.2}",
    ],
)
def test_nonsense_values_are_errors(spec: str):
    with pytest.raises(UserError, match="invalid|more than once"):
        parse_pipeline(spec)


def test_rules_apply_when_passes_are_built_in_python():
    from edge_opt.passes.autodiff import AutodiffPass

    with pytest.raises(UserError, match="autodiff: option momentum=1.5 is invalid"):
        AutodiffPass(momentum=1.5)
