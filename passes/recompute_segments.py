"""Segment recomputation, the search of `recompute{segments=true}` (see
`edge_opt.passes.recompute`): a forward value the backward reads is recomputed with the
forward ops it needs, back to values that are live anyway at its first backward use.

A segment's copies read the parameters through the forward's loads. A segment is only
taken where no update of such a parameter comes before its first backward use: updates
write the parameter's buffer in place, so `bufferize` would keep a copy of the old
weights for the copies to read, bytes the graph model does not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.dialects import func
from xdsl.ir import BlockArgument, Operation, SSAValue

from edge_opt.dialects import nn, train
from edge_opt.ir.cost import flops
from edge_opt.ir.op_graph import function_peak
from edge_opt.ir.report import training_phases


@dataclass(frozen=True)
class Segment:
    """The forward `ops` (in forward order) whose copies, placed before `first`, give
    the backward every value of theirs it reads from `first` on."""

    ops: tuple[Operation, ...]
    first: Operation
    flops: int


def recompute_segments(function: func.FuncOp, budget: float,
                       kinds: tuple[type[Operation], ...] | None, why: str
                       ) -> tuple[int, int, int]:
    """Recomputes segments of ops of `kinds` (None: any) while one lowers `function`'s
    peak, the best each round, within `budget` x its FLOPs; returns the peak before and
    after and the FLOPs added."""
    before = peak = function_peak(function, why)
    allowed = budget * sum(flops(op) for op in function.body.block.ops
                           if not isinstance(op, func.ReturnOp))
    added = 0
    while True:
        best: tuple[tuple[int, int, int], int, Segment] | None = None
        for index, segment in enumerate(segments(function, kinds)):
            if added + segment.flops > allowed:
                continue
            copies = place_copies(segment)
            lowered = function_peak(function, why)
            remove_copies(copies)
            key = (segment.flops, lowered, index)
            if lowered < peak and (best is None or key < best[0]):
                best = (key, lowered, segment)
        if best is None:
            return before, peak, added
        _, peak, chosen = best
        place_copies(chosen)
        added += chosen.flops


def segments(function: func.FuncOp, kinds: tuple[type[Operation], ...] | None
             ) -> list[Segment]:
    """One segment per forward value that ops after the forward read, in forward
    order; values whose segment would leave `kinds` or cross a parameter update are
    left out."""
    phases = training_phases(function)
    forward = phases["forward"]
    forward_set = set(forward)
    position = {op: i for i, op in enumerate(function.body.block.ops)}
    updates = _update_positions(function, position)
    found = []
    for op in forward:
        if len(op.results) != 1 or isinstance(op, nn.LoadOp | nn.ConstantOp) or op.regions:
            continue
        later = [u.operation for u in op.results[0].uses
                 if u.operation not in forward_set and u.operation in position]
        if not later:
            continue
        first = min(later, key=position.__getitem__)
        ops = _closure(op, position[first], position, forward_set, kinds)
        if ops is None or _crosses_update(ops, position[first], updates):
            continue
        found.append(Segment(ops, first, sum(flops(o) for o in ops)))
    return found


def _closure(op: Operation, first: int, position: dict[Operation, int],
             forward: set[Operation], kinds: tuple[type[Operation], ...] | None
             ) -> tuple[Operation, ...] | None:
    """`op` and the forward ops it needs back to values live at position `first`, in
    forward order; None if one is not of `kinds` or cannot be copied."""
    taken: set[Operation] = set()
    stack = [op]
    while stack:
        current = stack.pop()
        if current in taken:
            continue
        if kinds is not None and not isinstance(current, (*kinds, *VIEWS)):
            return None
        taken.add(current)
        for operand in current.operands:
            if _live_anyway(operand, first, position):
                continue
            owner = operand.owner
            if not isinstance(owner, Operation) or owner not in forward or owner.regions:
                return None
            stack.append(owner)
    return tuple(sorted(taken, key=position.__getitem__))


VIEWS = (nn.ReshapeOp, nn.SqueezeOp, nn.UnsqueezeOp)


def _live_anyway(value: SSAValue, first: int, position: dict[Operation, int]) -> bool:
    return (isinstance(value, BlockArgument)
            or isinstance(value.owner, nn.LoadOp | nn.ConstantOp)
            or any(position.get(u.operation, -1) >= first for u in value.uses))


def _update_positions(function: func.FuncOp, position: dict[Operation, int]
                      ) -> dict[str, int]:
    """For each stored parameter, the earliest position where its buffer may change:
    the op that computes the stored value (it may run in place) or the store."""
    earliest: dict[str, int] = {}
    for op in function.body.block.ops:
        if isinstance(op, train.StoreOp):
            name = op.param.string_value()
            owner = op.value.owner
            at = position[owner] if isinstance(owner, Operation) else position[op]
            earliest[name] = min(earliest.get(name, at), at)
    return earliest


def _crosses_update(ops: Sequence[Operation], first: int, updates: dict[str, int]) -> bool:
    for op in ops:
        for operand in op.operands:
            load = operand.owner
            if isinstance(load, nn.LoadOp) and updates.get(
                    load.param.string_value(), first) < first:
                return True
    return False


def place_copies(segment: Segment) -> list[tuple[Operation, Operation]]:
    """Copies the segment's ops before its first backward use and points every use
    from there on at the copies; returns (original, copy) pairs."""
    block = segment.first.parent_block()
    assert block is not None
    position = {op: i for i, op in enumerate(block.ops)}
    start = position[segment.first]
    mapping: dict[SSAValue, SSAValue] = {}
    pairs = []
    for op in segment.ops:
        copy = op.clone(value_mapper=dict(mapping))
        for result, copied in zip(op.results, copy.results, strict=True):
            copied.name_hint = f"{result.name_hint}_again" if result.name_hint else None
            mapping[result] = copied
        block.insert_op_before(copy, segment.first)
        pairs.append((op, copy))
    for op, copy in pairs:
        for result, copied in zip(op.results, copy.results, strict=True):
            result.replace_uses_with_if(
                copied, lambda use: position.get(use.operation, -1) >= start)
    return pairs


def remove_copies(pairs: list[tuple[Operation, Operation]]) -> None:
    """Undoes `place_copies`."""
    for op, copy in reversed(pairs):
        for result, copied in zip(op.results, copy.results, strict=True):
            copied.replace_all_uses_with(result)
        copy.detach()
        copy.erase()
