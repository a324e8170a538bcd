"""Gradient rules: normalisations."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import SSAValue

from edge_opt.autodiff.rules.builder import (
    GradientBuilder,
    Grads,
    rule,
    shape_of,
)
from edge_opt.dialects import nn, train
from edge_opt.support import shapes


@rule(nn.LayerNormOp)
def _layer_norm(b: GradientBuilder, op: nn.LayerNormOp, dy: SSAValue,
                needs: Sequence[bool]):
    axis, eps = op.axis.value.data, op.epsilon.value.data
    leading = tuple(range(shapes.normalize_axis(axis, len(shape_of(dy)))))
    return [
        b.emit(train.LayerNormGradInputOp(dy, op.input, op.scale, axis, eps))
        if needs[0] else None,
        b.emit(train.LayerNormGradScaleOp(dy, op.input, axis, eps)) if needs[1] else None,
        b.sum_over(dy, leading) if needs[2] else None,
    ]


def _channel_axes(value: SSAValue) -> tuple[int, ...]:
    return (0, *range(2, len(shape_of(value))))


@rule(nn.BatchNormOp)
def _batch_norm(b: GradientBuilder, op: nn.BatchNormOp, dy: SSAValue,
                needs: Sequence[bool]):
    eps, training = op.epsilon.value.data, op.training is not None
    grads: Grads = [
        b.emit(train.BatchNormGradInputOp(
            dy, op.input, op.scale, op.mean, op.var, eps, training))
        if needs[0] else None,
        b.emit(train.BatchNormGradScaleOp(dy, op.input, op.mean, op.var, eps, training))
        if needs[1] else None,
        b.sum_over(dy, _channel_axes(dy)) if needs[2] else None,
        None,
        None,
    ]
    if not training and (needs[3] or needs[4]):
        grads[3], grads[4] = _batch_norm_statistics_grads(b, op, dy, needs)
    # In training mode the output does not depend on the mean/var operands.
    return grads


def _batch_norm_statistics_grads(
    b: GradientBuilder, op: nn.BatchNormOp, dy: SSAValue, needs: Sequence[bool]
) -> tuple[SSAValue | None, SSAValue | None]:
    """Inference mode, y = (x - mean) * scale * (var + eps)^-1/2 + bias:
    dmean = -sum(dy) * scale * rstd, dvar = -1/2 * sum(dy * (x - mean)) * scale * rstd^3."""
    rank = len(shape_of(dy))
    channels = shape_of(op.mean)
    keep = (1, channels[0]) + (1,) * (rank - 2)
    axes = _channel_axes(dy)
    var_eps = b.emit(nn.AddOp(op.var, b.constant(op.epsilon.value.data, op.var)))
    rstd = b.emit(nn.DivOp(b.constant(1.0, op.var), b.emit(nn.SqrtOp(var_eps))))
    scaled = b.emit(nn.MulOp(op.scale, rstd))
    d_mean = d_var = None
    if needs[3]:
        d_mean = b.emit(nn.NegOp(b.emit(nn.MulOp(b.sum_over(dy, axes), scaled))))
    if needs[4]:
        centered = b.emit(nn.SubOp(op.input, b.emit(nn.ReshapeOp(op.mean, keep))))
        total = b.sum_over(b.emit(nn.MulOp(dy, centered)), axes)
        cube = b.emit(nn.MulOp(scaled, b.emit(nn.MulOp(rstd, rstd))))
        d_var = b.scale(b.emit(nn.MulOp(total, cube)), -0.5)
    return d_mean, d_var


@rule(nn.GroupNormOp)
def _group_norm(b: GradientBuilder, op: nn.GroupNormOp, dy: SSAValue,
                needs: Sequence[bool]):
    groups, eps = op.groups.value.data, op.epsilon.value.data
    return [
        b.emit(train.GroupNormGradInputOp(dy, op.input, op.scale, groups, eps))
        if needs[0] else None,
        b.emit(train.GroupNormGradScaleOp(dy, op.input, groups, eps)) if needs[1] else None,
        b.sum_over(dy, _channel_axes(dy)) if needs[2] else None,
    ]
