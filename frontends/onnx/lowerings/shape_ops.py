"""Lowerings of the ONNX shape ops (Reshape, Flatten, Transpose, Squeeze, Unsqueeze,
Concat, Slice, Gather, Expand, Pad) and reductions (ReduceMean, ReduceSum)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import onnx
from xdsl.ir import SSAValue

from edge_opt.dialects import nn
from edge_opt.frontends.onnx.errors import Unsupported
from edge_opt.frontends.onnx.lowerings.common import (
    int_list,
    normalize_axis_of,
    scalar_operand,
)
from edge_opt.frontends.onnx.registry import lowering
from edge_opt.frontends.onnx.values import tensor_shape
from edge_opt.ir.model_io import first_line
from edge_opt.support import shapes
from edge_opt.support.shapes import ShapeError

if TYPE_CHECKING:
    from edge_opt.frontends.onnx.importer import Importer


def _reshaped(self: Importer, x: SSAValue, shape: Sequence[int]) -> SSAValue:
    shape = tuple(int(d) for d in shape)
    if any(d < 1 for d in shape):
        raise Unsupported(f"empty result shape {list(shape)}")
    if shape == tensor_shape(x):
        return x
    return self.emit(nn.ReshapeOp(x, shape))


def _evaluated_shape(self: Importer, node: onnx.NodeProto, ins) -> tuple[int, ...]:
    """Output shape of a shape op, by the reference evaluator on a stand-in input
    (keeps ONNX's rules for 0, -1 and allowzero in one place: the spec's code)."""
    try:
        result = self.evaluate(node, ins)[0]
    except Exception as e:
        raise ShapeError(first_line(e)) from None
    return tuple(np.shape(result))


@lowering("Reshape", ["allowzero"])
def _reshape(self: Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    self.constant(ins[1], "shape")
    return [_reshaped(self, x, _evaluated_shape(self, node, ins))]


@lowering("Flatten", ["axis"])
def _flatten(self: Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    return [_reshaped(self, x, _evaluated_shape(self, node, ins))]


@lowering("Transpose", ["perm"])
def _transpose(self: Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    rank = len(tensor_shape(x))
    perm = int_list(attrs.get("perm", list(reversed(range(rank)))))
    if perm == list(range(rank)):
        return [x]
    return [self.emit(nn.TransposeOp(x, perm))]


def _axes(self: Importer, ins, attrs, since: int, what: str) -> list[int] | None:
    """`axes` from the attribute (opset < since) or the second input."""
    if self.opset < since:
        return int_list(attrs["axes"]) if "axes" in attrs else None
    if "axes" in attrs:
        raise Unsupported(f"axes attribute (an input since opset {since})")
    value = ins[1]
    return None if value is None else int_list(self.constant(value, what))


@lowering("Squeeze", ["axes"])
def _squeeze(self: Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    shape = tensor_shape(x)
    axes = _axes(self, ins, attrs, 13, "axes")
    if axes is None:
        axes = [i for i, d in enumerate(shape) if d == 1]
    axes = sorted(shapes.normalize_axes(axes, len(shape)))
    if not axes:
        return [x]
    return [self.emit(nn.SqueezeOp(x, axes))]


@lowering("Unsqueeze", ["axes"])
def _unsqueeze(self: Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    axes = _axes(self, ins, attrs, 13, "axes")
    if not axes:
        raise Unsupported("no axes")
    axes = sorted(shapes.normalize_axes(axes, len(tensor_shape(x)) + len(axes)))
    return [self.emit(nn.UnsqueezeOp(x, axes))]


@lowering("Concat", ["axis"])
def _concat(self: Importer, node, ins, attrs):
    values = [self.ssa(v) for v in ins if v is not None]
    if "axis" not in attrs:
        raise Unsupported("no axis")
    axis = normalize_axis_of(attrs["axis"], len(tensor_shape(values[0])))
    if len(values) == 1:
        return [values[0]]
    return [self.emit(nn.ConcatOp(values, axis))]


@lowering("Slice", ["starts", "ends", "axes"])
def _slice(self: Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    shape = tensor_shape(x)
    rank = len(shape)
    if self.opset < 10:
        if "starts" not in attrs or "ends" not in attrs:
            raise Unsupported("no starts or ends")
        starts, ends = int_list(attrs["starts"]), int_list(attrs["ends"])
        axes = int_list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        if attrs:
            raise Unsupported("attributes (inputs since opset 10)")

        def optional(index: int, what: str) -> list[int] | None:
            value = ins[index]
            return None if value is None else int_list(self.constant(value, what))

        starts = optional(1, "starts")
        ends = optional(2, "ends")
        if starts is None or ends is None:
            raise Unsupported("missing starts or ends")
        axes = optional(3, "axes")
        axes = list(range(len(starts))) if axes is None else axes
        steps = optional(4, "steps") or [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ShapeError("starts, ends, axes and steps differ in length")
    begin, end, step = [0] * rank, list(shape), [1] * rank
    for axis, a, b, s in zip(shapes.normalize_axes(axes, rank), starts, ends, steps):
        if s == 0:
            raise ShapeError(f"step 0 on axis {axis}")
        # ONNX Slice clamps exactly as Python's slice.indices does.
        lo, hi, s = slice(a, b, s).indices(shape[axis])
        if len(range(lo, hi, s)) == 0:
            raise Unsupported(f"empty slice on axis {axis}")
        begin[axis], end[axis], step[axis] = lo, hi, s
    if begin == [0] * rank and end == list(shape) and step == [1] * rank:
        return [x]
    return [self.emit(nn.SliceOp(x, begin, end, step))]


@lowering("Gather", ["axis"])
def _gather(self: Importer, node, ins, attrs):
    """Constant indices only: `nn.gather` of the flattened indices (ONNX's negative ones
    counted from the end), then a squeeze for a scalar index or a reshape to
    `data.shape[:axis] + indices.shape + data.shape[axis + 1:]` for a multi-axis one."""
    x = self.ssa(ins[0])
    shape = tensor_shape(x)
    indices = np.asarray(self.constant(ins[1], "indices"))
    if indices.dtype.kind not in "iu":
        raise Unsupported(f"indices of type {indices.dtype}")
    axis = normalize_axis_of(attrs.get("axis", 0), len(shape))
    if indices.size == 0:
        raise Unsupported("empty indices")
    size = shape[axis]
    flat = [int(i) for i in indices.reshape(-1)]
    outside = [i for i in flat if not -size <= i < size]
    if outside:
        raise ShapeError(f"indices {outside} are outside [-{size}, {size}) (axis {axis})")
    gathered = self.emit(nn.GatherOp(x, [i % size for i in flat], axis))
    if indices.ndim == 0:
        return [self.emit(nn.SqueezeOp(gathered, [axis]))]
    return [
        _reshaped(self, gathered, (*shape[:axis], *indices.shape, *shape[axis + 1 :]))
    ]


@lowering("Expand")
def _expand(self: Importer, node, ins, attrs):
    """`nn.broadcast_to` the bidirectional broadcast of the input and `shape`."""
    x = self.ssa(ins[0])
    shape = int_list(self.constant(ins[1], "shape"))
    target = shapes.broadcast(tensor_shape(x), shape)
    if target == tensor_shape(x):
        return [x]
    return [self.emit(nn.BroadcastToOp(x, target))]


_PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _pad_arguments(self: Importer, ins, attrs, rank: int) -> tuple[list[int], float]:
    """ONNX `pads` over every axis (begins, then ends) and the constant value: from
    attributes before opset 11, from inputs since (with `axes` since opset 18)."""
    if self.opset < 11:
        if "pads" not in attrs:
            raise Unsupported("no pads")
        return int_list(attrs["pads"]), float(attrs.get("value", 0.0))
    if "pads" in attrs or "value" in attrs:
        raise Unsupported("pads or value attribute (inputs since opset 11)")
    pads = int_list(self.constant(ins[1], "pads"))
    value = scalar_operand(self, ins[2], "constant_value") or 0.0
    if ins[3] is None:
        return pads, value
    axes = shapes.normalize_axes(int_list(self.constant(ins[3], "axes")), rank)
    if len(pads) != 2 * len(axes):
        raise ShapeError(f"{len(pads)} pads for {len(axes)} axes")
    full = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        full[axis], full[rank + axis] = pads[i], pads[len(axes) + i]
    return full, value


@lowering("Pad", ["mode", "pads", "value"])
def _pad(self: Importer, node, ins, attrs):
    """Negative pads crop first (`nn.slice`); then constant padding is `nn.pad`, and
    reflect, edge and wrap padding are, axis by axis, a concatenation of the input
    with slices of it (reversed for reflect, broadcast for edge), as NumPy pads."""
    x = self.ssa(ins[0])
    rank = len(tensor_shape(x))
    mode = attrs.get("mode", "constant")
    if mode not in _PAD_MODES:
        raise Unsupported(f"mode={mode} (supported: {', '.join(_PAD_MODES)})")
    pads, value = _pad_arguments(self, ins, attrs, rank)
    if len(pads) != 2 * rank:
        raise ShapeError(f"{len(pads)} pads for a rank-{rank} input")
    if any(p < 0 for p in pads):
        shape = tensor_shape(x)
        starts = [max(-p, 0) for p in pads[:rank]]
        ends = [d - max(-p, 0) for d, p in zip(shape, pads[rank:])]
        if any(e <= s for s, e in zip(starts, ends)):
            raise Unsupported(f"pads {pads} crop the input {list(shape)} to nothing")
        x = self.emit(nn.SliceOp(x, starts, ends))
        pads = [max(p, 0) for p in pads]
    if not any(pads):
        return [x]
    if mode == "constant":
        return [self.emit(nn.PadOp(x, pads, value))]
    for axis in range(rank):
        x = _pad_axis(self, x, axis, pads[axis], pads[rank + axis], mode)
    return [x]


def _pad_axis(
    self: Importer, x: SSAValue, axis: int, before: int, after: int, mode: str
) -> SSAValue:
    """`x` padded along one axis in a non-constant mode."""
    if not before and not after:
        return x
    shape = tensor_shape(x)
    size = shape[axis]
    limit = size - 1 if mode == "reflect" else (size if mode == "wrap" else None)
    if limit is not None and max(before, after) > limit:
        raise Unsupported(
            f"mode={mode} with padding {max(before, after)} > {limit} on axis {axis} "
            f"(size {size})"
        )

    def part(start: int, end: int, step: int = 1) -> SSAValue:
        starts, ends, steps = [0] * len(shape), list(shape), [1] * len(shape)
        starts[axis], ends[axis], steps[axis] = start, end, step
        return self.emit(nn.SliceOp(x, starts, ends, steps))

    def edge(index: int, count: int) -> SSAValue:
        target = list(shape)
        target[axis] = count
        return self.emit(nn.BroadcastToOp(part(index, index + 1), target))

    pieces = []
    if before:
        pieces.append(
            part(before, 0, -1) if mode == "reflect"
            else edge(0, before) if mode == "edge"
            else part(size - before, size)
        )
    pieces.append(x)
    if after:
        pieces.append(
            part(size - 2, size - 2 - after, -1) if mode == "reflect"
            else edge(size - 1, after) if mode == "edge"
            else part(0, after)
        )
    return self.emit(nn.ConcatOp(pieces, axis))


def _reduce_lowering(op: type[nn.ReduceMeanOp] | type[nn.ReduceSumOp], since: int):
    def lower(self: Importer, node, ins, attrs):
        x = self.ssa(ins[0])
        rank = len(tensor_shape(x))
        axes = _axes(self, ins, attrs, since, "axes")
        if not axes:
            if attrs.get("noop_with_empty_axes", 0) or rank == 0:
                return [x]
            axes = list(range(rank))
        axes = sorted(shapes.normalize_axes(axes, rank))
        return [self.emit(op(x, axes, bool(attrs.get("keepdims", 1))))]

    return lower


lowering("ReduceMean", ["axes", "keepdims", "noop_with_empty_axes"])(
    _reduce_lowering(nn.ReduceMeanOp, 18)
)
lowering("ReduceSum", ["axes", "keepdims", "noop_with_empty_axes"])(
    _reduce_lowering(nn.ReduceSumOp, 13)
)
