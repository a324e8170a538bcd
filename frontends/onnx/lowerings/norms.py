"""Lowerings of the ONNX normalisations and softmax: Softmax, LogSoftmax,
LayerNormalization, (inference) BatchNormalization, GroupNormalization and
InstanceNormalization (both `nn.group_norm`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import SSAValue

from edge_opt.dialects import nn
from edge_opt.frontends.onnx.errors import Unsupported
from edge_opt.frontends.onnx.lowerings.common import normalize_axis_of
from edge_opt.frontends.onnx.registry import Lowering, lowering
from edge_opt.frontends.onnx.values import Const, tensor_shape
from edge_opt.support.dtypes import numpy_dtype

if TYPE_CHECKING:
    from edge_opt.frontends.onnx.importer import Importer


def _softmax_lowering(op: type[nn.SoftmaxOp] | type[nn.LogSoftmaxOp]) -> Lowering:
    def lower(self: Importer, node, ins, attrs):
        x = self.ssa(ins[0])
        shape = tensor_shape(x)
        rank = len(shape)
        if self.opset >= 13:
            return [self.emit(op(x, normalize_axis_of(attrs.get("axis", -1), rank)))]
        # Before opset 13: softmax over the input coerced to 2-D at `axis`.
        axis = normalize_axis_of(attrs.get("axis", 1), rank)
        if all(d == 1 for d in shape[axis + 1 :]):
            return [self.emit(op(x, axis))]
        flat = (math.prod(shape[:axis]), math.prod(shape[axis:]))
        y = self.emit(op(self.emit(nn.ReshapeOp(x, flat)), 1))
        return [self.emit(nn.ReshapeOp(y, shape))]

    return lower


lowering("Softmax", ["axis"])(_softmax_lowering(nn.SoftmaxOp))
lowering("LogSoftmax", ["axis"])(_softmax_lowering(nn.LogSoftmaxOp))


@lowering("LayerNormalization", ["axis", "epsilon", "stash_type"])
def _layer_norm(self: Importer, node, ins, attrs):
    # stash_type selects the precision of the statistics; we compute in the input type.
    x = self.ssa(ins[0])
    shape = tensor_shape(x)
    axis = normalize_axis_of(attrs.get("axis", -1), len(shape))
    epsilon = float(attrs.get("epsilon", 1e-5))
    normalized = shape[axis:]
    scale = self.ssa(ins[1], "scale")
    bias = None if ins[2] is None else self.ssa(ins[2])
    if tensor_shape(scale) == normalized and (bias is None or tensor_shape(bias) == normalized):
        if bias is None:
            bias = self._ssa(Const(np.zeros(normalized, _dtype(x)), ""))
        return [self.emit(nn.LayerNormOp(x, scale, bias, axis, epsilon))]
    # Scale and bias that only broadcast to the normalized shape.
    ones = self._ssa(Const(np.ones(normalized, _dtype(x)), ""))
    zeros = self._ssa(Const(np.zeros(normalized, _dtype(x)), ""))
    y = self.emit(nn.LayerNormOp(x, ones, zeros, axis, epsilon))
    y = self.emit(nn.MulOp(y, scale))
    if bias is not None:
        y = self.emit(nn.AddOp(y, bias))
    if tensor_shape(y) != shape:
        raise Unsupported("scale or bias broadcast beyond the input shape")
    return [y]


def _dtype(value: SSAValue) -> np.dtype:
    assert isinstance(value.type, TensorType)
    return numpy_dtype(value.type.element_type)


@lowering(
    "BatchNormalization", ["epsilon", "momentum", "training_mode", "spatial", "is_test"]
)
def _batch_norm(self: Importer, node, ins, attrs):
    if attrs.get("training_mode", 0):
        raise Unsupported("training_mode=1 (import the inference graph)")
    if not attrs.get("spatial", 1):
        raise Unsupported("spatial=0")
    x = self.ssa(ins[0])
    operands = [self.ssa(v, "statistic") for v in ins[1:5]]
    if len(operands) != 4:
        raise Unsupported("fewer than 5 inputs")
    return [
        self.emit(
            nn.BatchNormOp(x, *operands, epsilon=float(attrs.get("epsilon", 1e-5)))
        )
    ]


@lowering("InstanceNormalization", ["epsilon"])
def _instance_norm(self: Importer, node, ins, attrs):
    """`nn.group_norm` with one group per channel."""
    x = self.ssa(ins[0])
    shape = tensor_shape(x)
    if len(shape) < 3:
        raise Unsupported(f"input of rank {len(shape)} (at least 3)")
    scale, bias = self.ssa(ins[1], "scale"), self.ssa(ins[2], "bias")
    epsilon = float(attrs.get("epsilon", 1e-5))
    return [self.emit(nn.GroupNormOp(x, scale, bias, shape[1], epsilon))]


@lowering("GroupNormalization", ["epsilon", "num_groups", "stash_type"])
def _group_norm(self: Importer, node, ins, attrs):
    """Scale and bias are per channel (C) since opset 21 and per group before (opset
    18, where each group's value is repeated over its channels: `nn.gather`, so a
    trainable per-group parameter stays one parameter). `stash_type` selects the
    precision of the statistics; we compute in the input type."""
    x = self.ssa(ins[0])
    shape = tensor_shape(x)
    if "num_groups" not in attrs:
        raise Unsupported("no num_groups")
    groups = int(attrs["num_groups"])
    if len(shape) < 3 or groups < 1 or shape[1] % groups:
        raise Unsupported(
            f"num_groups={groups} for an input of shape {list(shape)} (rank >= 3, "
            "groups dividing the channels)"
        )
    per = (shape[1],) if self.opset >= 21 else (groups,)
    channel_group = [c // (shape[1] // groups) for c in range(shape[1])]
    operands = []
    for value, what in ((ins[1], "scale"), (ins[2], "bias")):
        if value is None:
            raise Unsupported(f"missing {what}")
        given = tuple(self._shape_and_dtype(value)[0])
        if given != per:
            raise Unsupported(
                f"{what} of shape {list(given)} (opset {self.opset} expects "
                f"{list(per)}, one per {'channel' if self.opset >= 21 else 'group'})"
            )
        if per != (shape[1],) and isinstance(value, Const):
            value = Const(value.array[channel_group], value.source)
        operand = self.ssa(value, what)
        if tensor_shape(operand) != (shape[1],):
            operand = self.emit(nn.GatherOp(operand, channel_group, 0))
        operands.append(operand)
    epsilon = float(attrs.get("epsilon", 1e-5))
    return [self.emit(nn.GroupNormOp(x, *operands, groups, epsilon))]
