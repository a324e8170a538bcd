"""Gradient rules: pooling."""

from __future__ import annotations

import math
from collections.abc import Sequence

from xdsl.ir import SSAValue

from edge_opt.autodiff.rules.builder import (
    GradientBuilder,
    rule,
    shape_of,
    type_of,
)
from edge_opt.dialects import nn, train


@rule(train.MaxPool2dWithIndicesOp)
def _max_pool(b: GradientBuilder, op: train.MaxPool2dWithIndicesOp, dy: SSAValue,
              needs: Sequence[bool]):
    """The autodiff pass runs a differentiated `nn.max_pool2d` as this op, so that the
    backward reads its index mask rather than keeping the input alive."""
    return [
        b.emit(train.MaxPool2dGradOp(
            dy, op.indices, type_of(op.input), dilation=op.dilation.get_values(),
            **op.pool_attributes()))
    ]


@rule(nn.AvgPool2dOp)
def _avg_pool(b: GradientBuilder, op: nn.AvgPool2dOp, dy: SSAValue,
              needs: Sequence[bool]):
    return [
        b.emit(train.AvgPool2dGradOp(
            dy, type_of(op.input), count_include_pad=op.count_include_pad is not None,
            **op.pool_attributes()))
    ]


@rule(nn.GlobalAvgPoolOp)
def _global_avg_pool(b: GradientBuilder, op: nn.GlobalAvgPoolOp, dy: SSAValue,
                     needs: Sequence[bool]):
    shape = shape_of(op.input)
    spread = b.emit(nn.BroadcastToOp(dy, shape))
    return [b.scale(spread, 1.0 / math.prod(shape[2:]))]
