"""Conventions every registry keeps, read from the registries themselves (the
interpreter's own tables, the gradient rules, the C emitters, the pass registry), so that
a new op or pass that misses a piece fails here, naming it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
from xdsl.interpreter import InterpreterFunctions
from xdsl.ir import Operation

import edge_opt.ir.interpreters as interpreters
from edge_opt.autodiff.rules import RULES
from edge_opt.backends.c.sources import emitters_missing
from edge_opt.dialects import nn
from edge_opt.dialects.dma import DMA
from edge_opt.dialects.kernel import KERNEL
from edge_opt.dialects.nn import NN
from edge_opt.dialects.tile import TILE
from edge_opt.dialects.train import TRAIN
from edge_opt.passes.registry import EDGE_OPT_PASSES, PIPELINES

ROOT = Path(__file__).resolve().parent.parent

NOT_DIFFERENTIATED: dict[type[Operation], str] = {
    nn.ParamOp: "a module-level declaration, not a computation",
    nn.LoadOp: "its adjoint is the parameter's gradient, which the optimizer consumes",
    nn.ConstantOp: "no operands",
    nn.MaxPool2dOp: "differentiated as train.max_pool2d_with_indices (the autodiff pass "
                    "rewrites it so that the backward reads the saved indices)",
}
"""The `nn` ops without a gradient rule, each with the reason."""

NOT_INTERPRETED: dict[type[Operation], str] = {
    nn.ParamOp: "a module-level declaration: the session holds parameter values",
}


def _interpreted_ops() -> set[type[Operation]]:
    """Every op with an `@impl` in the interpreter's function tables."""
    ops: set[type[Operation]] = set()
    for info in pkgutil.iter_modules(interpreters.__path__):
        module = importlib.import_module(f"{interpreters.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, InterpreterFunctions) and cls.__module__ == module.__name__:
                ops |= {op for op, _ in cls._impls()}
    return ops


@pytest.mark.parametrize("dialect", [NN, TRAIN, KERNEL, DMA, TILE], ids=lambda d: d.name)
def test_every_op_has_interpreter_semantics(dialect):
    interpreted = _interpreted_ops()
    missing = [op.name for op in dialect.operations
               if op not in interpreted and op not in NOT_INTERPRETED]
    assert missing == []


def test_every_differentiable_op_has_a_gradient_rule():
    missing = [op.name for op in NN.operations
               if op not in RULES and op not in NOT_DIFFERENTIATED]
    assert missing == []
    # The exceptions stay exceptions: a rule for one means the list is stale.
    assert [op.name for op in NOT_DIFFERENTIATED if op in RULES] == []


def test_every_kernel_op_has_a_c_emitter():
    assert emitters_missing() == []


ALL_PASSES = {**EDGE_OPT_PASSES, **PIPELINES}


@pytest.mark.parametrize("key", sorted(ALL_PASSES))
def test_registry_key_is_the_pass_name(key: str):
    assert ALL_PASSES[key]().name == key


def _lit_text() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "tests" / "filecheck").rglob("*.mlir")))


@pytest.mark.parametrize("key", sorted(ALL_PASSES))
def test_every_pass_has_a_lit_test(key: str):
    """A RUN line applies it (-p or --pipeline, alone or in a list)."""
    runs = [line for line in _lit_text().splitlines() if "RUN:" in line]
    pattern = re.compile(rf"(-p|--pipeline)\s+['\"]?([\w{{}}=.\-\" ]*,)?{re.escape(key)}\b")
    assert any(pattern.search(line) for line in runs), f"no lit test runs {key}"


@pytest.mark.parametrize("key", sorted(ALL_PASSES))
def test_every_pass_has_a_docs_section(key: str):
    """A `### \\`name\\`` section (passes) or a row of the named-pipeline table."""
    docs = (ROOT / "docs" / "pipelines.md").read_text()
    assert f"### `{key}`" in docs or re.search(rf"^\| `{re.escape(key)}\b", docs, re.M), key
