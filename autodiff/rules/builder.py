"""The gradient-rule registry (`RULES`, `@rule`) and `GradientBuilder`, which appends the
backward ops of a rule to the training step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Block, Operation, SSAValue

from edge_opt.dialects import nn
from edge_opt.ir.channels import ChannelRestriction
from edge_opt.support import shapes
from edge_opt.support.dtypes import numpy_dtype, to_dense
from edge_opt.support.registry import OpTable

Grads = list[SSAValue | None]
Rule = Callable[["GradientBuilder", Operation, SSAValue, Sequence[bool]], Grads]

RULES: OpTable[Rule] = OpTable()
rule = RULES.register


def type_of(value: SSAValue) -> TensorType:
    assert isinstance(value.type, TensorType)
    return value.type


def shape_of(value: SSAValue) -> tuple[int, ...]:
    return type_of(value).get_shape()


@dataclass
class GradientBuilder:
    """Appends backward ops to `block`; helpers for the common gradient plumbing.

    `restricted` maps the values of channel-restricted parameters (their `nn.load`s) to
    the channels whose gradient is wanted."""

    block: Block
    restricted: dict[SSAValue, ChannelRestriction] = field(default_factory=dict)
    _gathered: dict[tuple[SSAValue, tuple[int, ...], int], SSAValue] = field(
        default_factory=dict
    )

    def emit(self, op: Operation) -> SSAValue:
        self.block.add_op(op)
        return op.results[0]

    def constant(self, value: float, like: SSAValue) -> SSAValue:
        element = type_of(like).element_type
        array = np.asarray(value, dtype=numpy_dtype(element))
        return self.emit(nn.ConstantOp(to_dense(array, TensorType(element, ()))))

    def scale(self, value: SSAValue, factor: float) -> SSAValue:
        return self.emit(nn.MulOp(value, self.constant(factor, value)))

    def reduce_to(self, grad: SSAValue, shape: Sequence[int]) -> SSAValue:
        """Sums `grad` over the axes along which an operand of `shape` was broadcast
        (a sum over an axis of size 1, a leading one, is only a reshape)."""
        extents = shape_of(grad)
        axes = [a for a in shapes.broadcast_axes(shape, extents) if extents[a] != 1]
        if not axes:
            return grad if extents == tuple(shape) else self.emit(nn.ReshapeOp(grad, shape))
        summed = self.emit(nn.ReduceSumOp(grad, axes, keepdims=True))
        if shape_of(summed) == tuple(shape):
            return summed
        return self.emit(nn.ReshapeOp(summed, shape))

    def expand_to(self, grad: SSAValue, keep_shape: Sequence[int],
                  shape: Sequence[int]) -> SSAValue:
        """Broadcasts a reduced gradient back: reshape to the keepdims shape, then to
        `shape`."""
        if shape_of(grad) != tuple(keep_shape):
            grad = self.emit(nn.ReshapeOp(grad, keep_shape))
        return self.emit(nn.BroadcastToOp(grad, shape))

    def sum_over(self, grad: SSAValue, axes: Sequence[int]) -> SSAValue:
        """`grad` summed over `axes`, which leave the shape; the axes of size 1 are only
        dropped (a reshape, a view at the buffer level), not summed."""
        extents = shape_of(grad)
        summed = [a for a in axes if extents[a] != 1]
        if list(summed) == list(axes):
            return self.emit(nn.ReduceSumOp(grad, axes)) if axes else grad
        target = tuple(e for a, e in enumerate(extents) if a not in axes)
        if summed:
            grad = self.emit(nn.ReduceSumOp(grad, summed, keepdims=True))
        return self.emit(nn.ReshapeOp(grad, target))

    def zeros(self, type: TensorType) -> SSAValue:
        array = np.zeros(type.get_shape(), numpy_dtype(type.element_type))
        return self.emit(nn.ConstantOp(to_dense(array, type)))

    def channels_of(self, dy: SSAValue, param: SSAValue | None, axis: int) -> SSAValue:
        """`dy`, or its slices along `axis` (its output-channel axis) at the channels
        `param`'s update is restricted to; one gather per `dy` and channel set, shared
        by a weight and its bias."""
        restriction = self.restricted.get(param) if param is not None else None
        if restriction is None:
            return dy
        key = (dy, restriction.channels, axis)
        if key not in self._gathered:
            gathered = self.emit(nn.GatherOp(dy, restriction.channels, axis))
            if dy.name_hint is not None:
                gathered.name_hint = f"{dy.name_hint}_channels"
            self._gathered[key] = gathered
        return self._gathered[key]
