"""Pass options: every numeric option has a rule (`OPTION_RULES`), the rules hold for
every default, and parsing accepts the notations users write."""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import get_type_hints

import pytest

from edge_opt.ir.options import OPTION_GROUPS, OPTION_RULES, EdgeOptPass
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


def _defaults(cls: type) -> dict[str, object]:
    return {f.name: f.default for f in fields(cls) if f.default is not MISSING}


def test_an_option_has_one_default_in_every_pass_and_pipeline():
    """Options declared in groups (`ir/options.py`) cannot drift; this also catches
    an option re-declared by hand with another default (e.g. `seed` or `function`)."""
    seen: dict[str, tuple[object, str]] = {}
    for name, factory in sorted(available_passes().items()):
        cls = factory()
        if not issubclass(cls, EdgeOptPass):
            continue
        for option, default in _defaults(cls).items():
            if option in ("seed", "function", "rows", "trainable", "frozen"):
                continue  # per-pass meanings, not a shared option
            first = seen.setdefault(option, (default, name))
            assert default == first[0], (
                f"{option}: {name} defaults to {default!r}, {first[1]} to {first[0]!r}")


@pytest.mark.parametrize("pipeline", ["train-full", "train-last", "train-sparse",
                                      "train-lora"])
def test_a_pipeline_hands_its_groups_to_its_passes_whole(pipeline: str):
    """Every option of a group a pass takes reaches it from the pipeline, changed."""
    spec = (f"{pipeline}{{loss=mse reduction=sum optimizer=adam lr=0.5 beta1=0.5 "
            "beta2=0.75 epsilon=0.001 weight-decay=0.25}")
    (named,) = parse_pipeline(spec)
    given = {f.name: getattr(named, f.name) for f in fields(named)}
    handed = 0
    for p in named.passes():
        for group in OPTION_GROUPS:
            if isinstance(p, group):
                for f in fields(group):
                    assert getattr(p, f.name) == given[f.name], (p.name, f.name)
                    handed += 1
    assert handed >= 2
