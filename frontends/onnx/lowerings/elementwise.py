"""Lowerings of element-wise ONNX ops: one per row of `edge_opt.support.elementwise` with
an ONNX name (the op with the node's attributes), Clip (whose bounds became inputs in
opset 11), PRelu, and `com.microsoft` Gelu and FastGelu."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_opt.dialects import nn
from edge_opt.dialects.elementwise import (
    BINARY_OPS,
    UNARY_OPS,
    BinaryElementwiseOp,
    UnaryElementwiseOp,
)
from edge_opt.frontends.onnx.errors import Unsupported
from edge_opt.frontends.onnx.lowerings.common import scalar_operand
from edge_opt.frontends.onnx.registry import MS_DOMAIN, Lowering, lowering
from edge_opt.frontends.onnx.values import Const, tensor_shape
from edge_opt.support.elementwise import Choice

if TYPE_CHECKING:
    from edge_opt.frontends.onnx.importer import Importer


def _unary_lowering(op: type[UnaryElementwiseOp]) -> Lowering:
    """The op with the node's attributes (ours by name; ONNX's defaults where they
    differ), a `Choice` value it does not know refused."""
    row = op.ROW

    def lower(self: Importer, node, ins, attrs):
        values: dict[str, object] = {}
        for attr in op.ATTRIBUTES:
            default = row.onnx_defaults.get(attr.name, attr.default)
            value = attrs.get(attr.name, default)
            if isinstance(attr, Choice) and value not in attr.values:
                raise Unsupported(f"{attr.name}={value}")
            values[attr.name] = value if isinstance(attr, Choice) else float(value)
        return [self.emit(op(self.ssa(ins[0]), **values))]

    return lower


for _op in UNARY_OPS:
    if _op.ROW.onnx is not None:
        lowering(_op.ROW.onnx, [a.name for a in _op.ATTRIBUTES])(_unary_lowering(_op))


def _binary_lowering(op: type[BinaryElementwiseOp]) -> Lowering:
    def lower(self: Importer, node, ins, attrs):
        if ins[0] is None or ins[1] is None:
            raise Unsupported("missing operand")
        if isinstance(ins[0], Const) and not isinstance(ins[1], Const):
            rhs = self.ssa(ins[1])
            lhs = self.like(ins[0], rhs)
        else:
            lhs = self.ssa(ins[0])
            rhs = self.like(ins[1], lhs)
        return [self.emit(op(lhs, rhs))]

    return lower


for _op in BINARY_OPS:
    lowering(_op.ROW.onnx)(_binary_lowering(_op))


@lowering("Clip", ["min", "max"])
def _clip(self: Importer, node, ins, attrs):
    """Bounds are attributes before opset 11 and optional inputs since (this replaces
    the lowering from Clip's table row, which reads attributes only)."""
    x = self.ssa(ins[0])
    if self.opset < 11:
        lo, hi = attrs.get("min"), attrs.get("max")
    else:
        lo, hi = scalar_operand(self, ins[1], "min"), scalar_operand(self, ins[2], "max")
    if lo is None and hi is None:
        return [x]
    lo = None if lo is None else float(lo)
    hi = None if hi is None else float(hi)
    return [self.emit(nn.ClipOp(x, lo, hi))]


@lowering("PRelu")
def _prelu(self: Importer, node, ins, attrs):
    """`relu(x) + slope * min(x, 0)` with `min(x, 0) = -relu(-x)`: exact, and the slope
    (often a trainable parameter, broadcast to x) gets its gradient from `nn.mul`."""
    x = self.ssa(ins[0])
    if ins[1] is None:
        raise Unsupported("missing slope")
    slope = self.like(ins[1], x)
    negative = self.emit(nn.NegOp(self.emit(nn.ReluOp(self.emit(nn.NegOp(x))))))
    scaled = self.emit(nn.MulOp(negative, slope))
    if tensor_shape(scaled) != tensor_shape(x):
        raise Unsupported(
            f"slope of shape {list(tensor_shape(slope))} does not broadcast to the input "
            f"shape {list(tensor_shape(x))}"
        )
    return [self.emit(nn.AddOp(self.emit(nn.ReluOp(x)), scaled))]


@lowering("Gelu", domain=MS_DOMAIN)
def _ms_gelu(self: Importer, node, ins, attrs):
    return [self.emit(nn.GeluOp(self.ssa(ins[0]), "none"))]


@lowering("FastGelu", domain=MS_DOMAIN)
def _ms_fast_gelu(self: Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    if ins[1] is not None:
        x = self.emit(nn.AddOp(x, self.ssa(ins[1])))
    return [self.emit(nn.GeluOp(x, "tanh"))]
