"""Gradient rules: linear algebra and convolutions."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import SSAValue

from edge_opt.autodiff.rules.builder import (
    GradientBuilder,
    Grads,
    rule,
    shape_of,
    type_of,
)
from edge_opt.dialects import nn, train


@rule(nn.LinearOp)
def _linear(b: GradientBuilder, op: nn.LinearOp, dy: SSAValue, needs: Sequence[bool]):
    out = len(shape_of(dy)) - 1
    grads: Grads = [
        b.emit(train.LinearGradInputOp(dy, op.weight)) if needs[0] else None,
        b.emit(train.LinearGradWeightOp(b.channels_of(dy, op.weight, out), op.input))
        if needs[1] else None,
    ]
    if op.bias is not None:
        leading = tuple(range(out))
        grads.append(
            b.sum_over(b.channels_of(dy, op.bias, out), leading) if needs[2] else None
        )
    return grads


@rule(nn.MatmulOp)
def _matmul(b: GradientBuilder, op: nn.MatmulOp, dy: SSAValue, needs: Sequence[bool]):
    ta, tb = op.transpose_lhs is not None, op.transpose_rhs is not None
    d_lhs = d_rhs = None
    if needs[0]:
        if ta:
            full = nn.MatmulOp(op.rhs, dy, transpose_lhs=tb, transpose_rhs=True)
        else:
            full = nn.MatmulOp(dy, op.rhs, transpose_rhs=not tb)
        d_lhs = b.reduce_to(b.emit(full), shape_of(op.lhs))
    if needs[1]:
        if tb:
            full = nn.MatmulOp(dy, op.lhs, transpose_lhs=True, transpose_rhs=ta)
        else:
            full = nn.MatmulOp(op.lhs, dy, transpose_lhs=not ta)
        d_rhs = b.reduce_to(b.emit(full), shape_of(op.rhs))
    return [d_lhs, d_rhs]


@rule(nn.Conv2dOp, nn.ConvTranspose2dOp)
def _conv(b: GradientBuilder, op: nn.Conv2dOp | nn.ConvTranspose2dOp, dy: SSAValue,
          needs: Sequence[bool]):
    attrs = op.conv_attributes()
    if isinstance(op, nn.Conv2dOp):
        grad_input, grad_weight = train.Conv2dGradInputOp, train.Conv2dGradWeightOp
    else:
        grad_input = train.ConvTranspose2dGradInputOp
        grad_weight = train.ConvTranspose2dGradWeightOp
    weight_type = type_of(op.weight)
    restriction = b.restricted.get(op.weight)
    if restriction is not None:  # `autodiff` allows it for nn.conv2d, groups = 1
        weight_type = restriction.restrict(weight_type)
    grads: Grads = [
        b.emit(grad_input(dy, op.weight, type_of(op.input), **attrs)) if needs[0] else None,
        b.emit(grad_weight(b.channels_of(dy, op.weight, 1), op.input, weight_type,
                           **attrs))
        if needs[1] else None,
    ]
    if op.bias is not None:
        grads.append(
            b.sum_over(b.channels_of(dy, op.bias, 1), (0, 2, 3)) if needs[2] else None
        )
    return grads
