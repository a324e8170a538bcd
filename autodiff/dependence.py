"""Which values of a function a gradient flows through: the operands a result depends
on differentiably, and the values that depend on a set of seeds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from edge_opt.dialects import nn
from edge_opt.support.dtypes import numpy_dtype


def is_float_tensor(value: SSAValue) -> bool:
    return isinstance(value.type, TensorType) and numpy_dtype(
        value.type.element_type
    ).kind == "f"


def differentiable_operands(op: Operation) -> Sequence[SSAValue]:
    """The operands `op`'s results depend on differentiably: all of them, but the
    running statistics of a batch norm in training mode (which normalises with the
    batch's own statistics)."""
    if isinstance(op, nn.BatchNormOp) and op.training is not None:
        return op.operands[:3]
    return op.operands


def dependents(ops: Iterable[Operation], seeds: Iterable[SSAValue]) -> set[SSAValue]:
    """`seeds` and the float values of `ops` (in order) that depend on them
    differentiably."""
    result = set(seeds)
    for op in ops:
        if any(o in result for o in differentiable_operands(op)):
            result.update(r for r in op.results if is_float_tensor(r))
    return result


def requires_grad(function: func.FuncOp, trainable: set[str]) -> set[SSAValue]:
    """Float values of `function` that depend (differentiably) on a trainable
    parameter."""
    ops = list(function.body.block.ops)
    loads = [op.result for op in ops
             if isinstance(op, nn.LoadOp) and op.param.string_value() in trainable]
    return dependents(ops, loads)
