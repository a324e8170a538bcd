"""Liveness of the buffers of a buffer-level function.

The order of ops is the schedule. A `kernel.alloc` buffer is live from its alloc to its
last use, through `kernel.view`s of it, and to the end if the function returns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType
from xdsl.ir import Operation, SSAValue

from edge_opt.dialects import kernel
from edge_opt.dialects.kernel import memory_level
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.memory_plan import Buffer


def byte_size(type: MemRefType) -> int:
    return type.element_count() * numpy_dtype(type.element_type).itemsize


@dataclass(frozen=True)
class Allocation:
    """One `kernel.alloc` of a function with its lifetime (op indices)."""

    op: kernel.AllocOp
    buffer: Buffer
    level: str


def allocations(function: func.FuncOp) -> list[Allocation]:
    """The arena buffers of `function` with their lifetimes (see the module docstring)."""
    ops = list(function.body.block.ops)
    index = {op: i for i, op in enumerate(ops)}
    result = []
    for op in ops:
        if not isinstance(op, kernel.AllocOp):
            continue
        end = max(index[op], *(_last_use(v, index) for v in _aliases(op.result)))
        name = f"{function.sym_name.data}:{index[op]}:{op.result.name_hint or ''}"
        assert isinstance(op.result.type, MemRefType)
        result.append(Allocation(
            op, Buffer(name, byte_size(op.result.type), index[op], end),
            memory_level(op.result.type),
        ))
    return result


def _aliases(value: SSAValue) -> Iterator[SSAValue]:
    """A buffer and every view of it, transitively."""
    yield value
    for use in value.uses:
        if isinstance(use.operation, kernel.ViewOp):
            yield from _aliases(use.operation.result)


def _last_use(value: SSAValue, index: dict[Operation, int]) -> int:
    """The index of the last op that uses `value`, or that holds (in a region, as a
    `tile.for` holds its body) an op that uses it; -1 if none: an unused buffer lives at
    its alloc only."""
    return max((index[_top_level(use.operation, index)] for use in value.uses), default=-1)


def _top_level(op: Operation, index: dict[Operation, int]) -> Operation:
    while op not in index:
        parent = op.parent_op()
        assert parent is not None, f"{op.name} is outside the function"
        op = parent
    return op
