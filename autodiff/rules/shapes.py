"""Gradient rules: shape ops and reductions."""

from __future__ import annotations

import math
from collections.abc import Sequence

from xdsl.ir import Operation, SSAValue

from edge_opt.autodiff.rules.builder import (
    GradientBuilder,
    Grads,
    rule,
    shape_of,
    type_of,
)
from edge_opt.dialects import nn, train
from edge_opt.support import shapes


@rule(nn.ReshapeOp, nn.SqueezeOp, nn.UnsqueezeOp)
def _reshape(b: GradientBuilder, op: Operation, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(nn.ReshapeOp(dy, shape_of(op.operands[0])))]


@rule(nn.GatherOp)
def _gather(b: GradientBuilder, op: nn.GatherOp, dy: SSAValue, needs: Sequence[bool]):
    """`dy`'s slices scattered into zeros of the input's type at the gathered indices.
    An index gathered several times receives the sum of its slices: the positions of
    `dy` are split into rounds (the r-th occurrence of every index), each round has
    unique indices and is one `train.scatter` into zeros, and the rounds are added."""
    indices = op.indices.get_values()
    axis = shapes.normalize_axis(op.axis.value.data, len(shape_of(op.input)))
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for position, index in enumerate(indices):
        occurrence = seen.get(index, 0)
        seen[index] = occurrence + 1
        if occurrence == len(rounds):
            rounds.append([])
        rounds[occurrence].append(position)
    zeros = b.zeros(type_of(op.input))
    total: SSAValue | None = None
    for positions in rounds:
        part = (
            dy if len(positions) == len(indices)
            else b.emit(nn.GatherOp(dy, positions, axis))
        )
        scattered = b.emit(
            train.ScatterOp(zeros, part, [indices[p] for p in positions], axis)
        )
        total = scattered if total is None else b.emit(nn.AddOp(total, scattered))
    return [total]


@rule(nn.BroadcastToOp)
def _broadcast_to(b: GradientBuilder, op: nn.BroadcastToOp, dy: SSAValue,
                  needs: Sequence[bool]):
    return [b.reduce_to(dy, shape_of(op.input))]


@rule(nn.PadOp)
def _pad(b: GradientBuilder, op: nn.PadOp, dy: SSAValue, needs: Sequence[bool]):
    """The gradient of the padded positions is dropped: `dy` cropped back."""
    shape, pads = shape_of(op.input), op.pads.get_values()
    begins = pads[: len(shape)]
    ends = [begin + size for begin, size in zip(begins, shape)]
    return [b.emit(nn.SliceOp(dy, begins, ends))]


@rule(nn.TransposeOp)
def _transpose(b: GradientBuilder, op: nn.TransposeOp, dy: SSAValue,
               needs: Sequence[bool]):
    perm = op.perm.get_values()
    inverse = [perm.index(i) for i in range(len(perm))]
    return [b.emit(nn.TransposeOp(dy, inverse))]


@rule(nn.ConcatOp)
def _concat(b: GradientBuilder, op: nn.ConcatOp, dy: SSAValue, needs: Sequence[bool]):
    shape = shape_of(dy)
    axis = shapes.normalize_axis(op.axis.value.data, len(shape))
    grads: Grads = []
    offset = 0
    for operand, need in zip(op.inputs, needs, strict=True):
        size = shape_of(operand)[axis]
        if need:
            starts = [offset if a == axis else 0 for a in range(len(shape))]
            ends = [offset + size if a == axis else d for a, d in enumerate(shape)]
            grads.append(b.emit(nn.SliceOp(dy, starts, ends)))
        else:
            grads.append(None)
        offset += size
    return grads


@rule(nn.SliceOp)
def _slice(b: GradientBuilder, op: nn.SliceOp, dy: SSAValue, needs: Sequence[bool]):
    return [
        b.emit(train.SliceGradOp(
            dy, type_of(op.input), op.starts.get_values(), op.ends.get_values(),
            op.steps.get_values()))
    ]


def _reduce(b: GradientBuilder, op: nn.ReduceMeanOp | nn.ReduceSumOp, dy: SSAValue, mean: bool) -> SSAValue:
    shape = shape_of(op.input)
    axes = shapes.normalize_axes(op.axes.get_values(), len(shape))
    keep = [1 if a in axes else d for a, d in enumerate(shape)]
    spread = b.expand_to(dy, keep, shape)
    if mean:
        spread = b.scale(spread, 1.0 / math.prod(shape[a] for a in axes))
    return spread


@rule(nn.ReduceSumOp)
def _reduce_sum(b: GradientBuilder, op: nn.ReduceSumOp, dy: SSAValue,
                needs: Sequence[bool]):
    return [_reduce(b, op, dy, mean=False)]


@rule(nn.ReduceMeanOp)
def _reduce_mean(b: GradientBuilder, op: nn.ReduceMeanOp, dy: SSAValue,
                 needs: Sequence[bool]):
    return [_reduce(b, op, dy, mean=True)]
