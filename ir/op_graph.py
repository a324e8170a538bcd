"""A tensor-level function as an `edge_opt.support.op_order.Graph`: its ops, the
buffers bufferization will give their results, and the order constraints, so that
passes can reorder the ops (`reorder-for-memory`) or weigh a change (`recompute`) by
the peak of live bytes.

- Buffers: one per result of a compute op (its bytes); reshapes, squeezes and
  unsqueezes are views of their operand's buffer; parameters, constants and the
  function's inputs are not counted (they persist), nor is an optimizer's new value
  (written over the parameter); returned values never die.
- In place: an element-wise op (and the others `kernel.KernelOp.INPLACE` lists) may
  write its result over an operand buffer that dies at it, as `bufferize` does.
- Order: an op runs after the producers of its operands; an op that writes `@p` (a
  `train.store`, an optimizer writing over `@p`) keeps its place relative to every op
  that reads `@p` (through its loads and their views).
- Free ops: parameter loads and constants have no operands and no buffer; they are left
  out of the graph and placed right before their first user. (A load whose every user
  comes after a store of the same parameter that follows the load reads the old value:
  it stays in the graph, ordered before that store.)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import kernel, nn, train
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.op_order import Graph

VIEWS = (nn.ReshapeOp, nn.SqueezeOp, nn.UnsqueezeOp)


def value_bytes(value: SSAValue) -> int:
    assert isinstance(value.type, TensorType)
    return value.type.element_count() * numpy_dtype(value.type.element_type).itemsize


@dataclass
class OpGraph:
    """The graph of a function's ops (module docstring): `ops[v]` is graph op v; `free`
    the ops left out."""

    function: func.FuncOp
    ops: list[Operation]
    free: list[Operation]
    graph: Graph

    def reorder(self, sequence: Sequence[int]) -> None:
        """Puts the function's ops in the order `sequence` of graph ops, each free op
        right before its first user, the return last."""
        block = self.function.body.block
        returned = block.last_op
        assert isinstance(returned, func.ReturnOp)
        scheduled = [self.ops[v] for v in sequence]
        position = {op: i for i, op in enumerate(scheduled)}
        before: dict[Operation, list[Operation]] = {}
        unused: list[Operation] = []
        for op in self.free:
            users = [_top(u.operation, block) for r in op.results for u in r.uses]
            firsts = [position[u] for u in users if u in position]
            if firsts:
                before.setdefault(scheduled[min(firsts)], []).append(op)
            elif not users or returned in users:
                unused.append(op)
        for op in [*self.ops, *self.free]:
            op.detach()
        for op in unused:
            block.insert_op_before(op, returned)
        for op in scheduled:
            for free in before.get(op, ()):
                block.insert_op_before(free, returned)
            block.insert_op_before(op, returned)


def _top(op: Operation, block) -> Operation:
    while op.parent_block() is not block:
        parent = op.parent_op()
        assert parent is not None
        op = parent
    return op


def op_graph(function: func.FuncOp, why: str) -> OpGraph:
    """The graph of `function` (a tensor-level function; `why` starts errors)."""
    block = function.body.block
    if any(not isinstance(t, TensorType) for t in function.function_type.inputs.data):
        raise PassFailedException(
            f"{why}: @{function.sym_name.data} is at the buffer level; run it before "
            "lower-to-buffers"
        )
    body = [op for op in block.ops if not isinstance(op, func.ReturnOp)]
    params = _param_reads(body)
    position = {op: i for i, op in enumerate(body)}
    stores = _stores(body)
    free = [op for op in body if _is_free(op, position, stores)]
    free_set = set(free)
    ops = [op for op in body if op not in free_set]
    index = {op: i for i, op in enumerate(ops)}
    buffers: dict[SSAValue, int] = {}
    sizes: list[int] = []
    creates: list[list[int]] = []
    reads: list[list[int]] = []
    in_place: list[list[tuple[int, list[int]]]] = []
    deps: list[set[int]] = []
    for op in ops:
        deps.append({index[o.owner] for o in op.operands
                     if isinstance(o.owner, Operation) and o.owner in index})
        reads.append(sorted({buffers[o] for o in op.operands if o in buffers}))
        made = []
        into_param = _writes_param(op, params)
        for i, result in enumerate(op.results):
            if i in into_param:
                continue
            if isinstance(op, VIEWS):
                if op.operands[0] in buffers:
                    buffers[result] = buffers[op.operands[0]]
                continue
            if isinstance(op, nn.LoadOp | nn.ConstantOp) or not isinstance(
                    result.type, TensorType):
                continue
            buffers[result] = len(sizes)
            sizes.append(value_bytes(result))
            made.append(buffers[result])
        creates.append(made)
        in_place.append(_in_place(op, buffers))
    _add_effect_edges(ops, params, deps)
    returned = block.last_op
    assert isinstance(returned, func.ReturnOp)
    pinned = frozenset(buffers[v] for v in returned.arguments if v in buffers)
    graph = Graph([sorted(d) for d in deps], creates, reads, sizes, in_place, pinned)
    return OpGraph(function, ops, free, graph)


def function_peak(function: func.FuncOp, why: str) -> int:
    """The peak of live bytes of `function` in its current op order (graph model)."""
    graph = op_graph(function, why).graph
    return graph.peak(range(len(graph)))


def _writes_param(op: Operation, params: dict[SSAValue, str]) -> set[int]:
    """The results of an optimizer op (or a scatter) that `bufferize` writes into the
    buffer of the parameter it updates (its in-place operand is a load of it)."""
    if not isinstance(op, train.SgdOp | train.SgdMomentumOp | train.AdamOp
                      | train.ScatterOp | train.LinearGradWeightSgdOp
                      | train.Conv2dGradWeightSgdOp):
        return set()
    kernel_op = kernel.KERNEL_OF[type(op)]
    return {output for output, inputs in kernel_op.INPLACE.items()
            if any(op.operands[i] in params for i in inputs)}


def _in_place(op: Operation, buffers: dict[SSAValue, int]) -> list[tuple[int, list[int]]]:
    kernel_op = kernel.KERNEL_OF.get(type(op))
    if kernel_op is None:
        return []
    pairs = []
    for output, inputs in kernel_op.INPLACE.items():
        if output < len(op.results) and op.results[output] in buffers:
            candidates = [buffers[op.operands[i]] for i in inputs
                          if i < len(op.operands) and op.operands[i] in buffers]
            pairs.append((buffers[op.results[output]], candidates))
    return pairs


def _param_reads(body: Sequence[Operation]) -> dict[SSAValue, str]:
    """The values that alias a parameter's buffer (its loads and their views)."""
    aliases: dict[SSAValue, str] = {}
    for op in body:
        if isinstance(op, nn.LoadOp):
            aliases[op.result] = op.param.string_value()
        elif isinstance(op, VIEWS) and op.operands[0] in aliases:
            aliases[op.results[0]] = aliases[op.operands[0]]
    return aliases


def _stores(body: Sequence[Operation]) -> dict[str, list[int]]:
    positions: dict[str, list[int]] = {}
    for i, op in enumerate(body):
        if isinstance(op, train.StoreOp):
            positions.setdefault(op.param.string_value(), []).append(i)
    return positions


def _is_free(op: Operation, position: dict[Operation, int],
             stores: dict[str, list[int]]) -> bool:
    """A constant, or a load some user of which comes before the next store to its
    parameter (so that user pins the load before the store)."""
    if isinstance(op, nn.ConstantOp):
        return True
    if not isinstance(op, nn.LoadOp):
        return False
    mine = position[op]
    later = [s for s in stores.get(op.param.string_value(), []) if s > mine]
    if not later:
        return True
    users = [position.get(u.operation, len(position)) for u in op.result.uses]
    return any(u < later[0] for u in users)


def _add_effect_edges(ops: Sequence[Operation], params: dict[SSAValue, str],
                      deps: list[set[int]]) -> None:
    """Each op that writes `@p` (a store, an optimizer that bufferizes into `@p`'s
    buffer) after the ops before it that read `@p`, and before the ops after it that
    read `@p` (in the given order); writes of `@p` in their order."""
    readers: dict[str, list[int]] = {}
    writers: dict[str, list[int]] = {}
    for v, op in enumerate(ops):
        for name in {params[o] for o in op.operands if o in params}:
            readers.setdefault(name, []).append(v)
        if isinstance(op, train.StoreOp):
            writers.setdefault(op.param.string_value(), []).append(v)
        elif _writes_param(op, params):
            for name in {params[o] for o in op.operands if o in params}:
                writers.setdefault(name, []).append(v)
    for name, positions in writers.items():
        for v in positions:
            for u in readers.get(name, ()):
                if u < v:
                    deps[v].add(u)
                elif u > v:
                    deps[u].add(v)
        for a, b in itertools.pairwise(positions):
            deps[b].add(a)
