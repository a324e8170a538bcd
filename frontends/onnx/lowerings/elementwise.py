"""Lowerings of element-wise ONNX ops: the unary and binary ones of the default domain,
the parametrised activations (Gelu, Clip, HardSigmoid, Elu, LeakyRelu, PRelu), and
`com.microsoft` Gelu and FastGelu."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_opt.dialects import nn
from edge_opt.frontends.onnx.errors import Unsupported
from edge_opt.frontends.onnx.lowerings.common import scalar_operand
from edge_opt.frontends.onnx.registry import MS_DOMAIN, Lowering, lowering
from edge_opt.frontends.onnx.values import Const, tensor_shape

if TYPE_CHECKING:
    from edge_opt.frontends.onnx.importer import _Importer


_UNARY: dict[str, type[nn.UnaryElementwiseOp]] = {
    "Relu": nn.ReluOp,
    "Sigmoid": nn.SigmoidOp,
    "Tanh": nn.TanhOp,
    "Erf": nn.ErfOp,
    "Sqrt": nn.SqrtOp,
    "Exp": nn.ExpOp,
    "Log": nn.LogOp,
    "Neg": nn.NegOp,
    "HardSwish": nn.HardswishOp,
    "Ceil": nn.CeilOp,
    "Floor": nn.FloorOp,
    "Round": nn.RoundOp,
}


def _unary_lowering(op: type[nn.UnaryElementwiseOp]) -> Lowering:
    def lower(self: _Importer, node, ins, attrs):
        return [self.emit(op(self.ssa(ins[0])))]

    return lower


for _name, _op in _UNARY.items():
    lowering(_name)(_unary_lowering(_op))

_BINARY: dict[str, type[nn.BinaryElementwiseOp]] = {
    "Add": nn.AddOp,
    "Sub": nn.SubOp,
    "Mul": nn.MulOp,
    "Div": nn.DivOp,
    "Pow": nn.PowOp,
}


def _binary_lowering(op: type[nn.BinaryElementwiseOp]) -> Lowering:
    def lower(self: _Importer, node, ins, attrs):
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


for _name, _op in _BINARY.items():
    lowering(_name)(_binary_lowering(_op))


@lowering("Gelu", ["approximate"])
def _gelu(self: _Importer, node, ins, attrs):
    approximate = attrs.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise Unsupported(f"approximate={approximate}")
    return [self.emit(nn.GeluOp(self.ssa(ins[0]), approximate))]


@lowering("Clip", ["min", "max"])
def _clip(self: _Importer, node, ins, attrs):
    """Bounds are attributes before opset 11 and optional inputs since."""
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


@lowering("HardSigmoid", ["alpha", "beta"])
def _hard_sigmoid(self: _Importer, node, ins, attrs):
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    return [self.emit(nn.HardsigmoidOp(self.ssa(ins[0]), alpha, beta))]


@lowering("Elu", ["alpha"])
def _elu(self: _Importer, node, ins, attrs):
    return [self.emit(nn.EluOp(self.ssa(ins[0]), float(attrs.get("alpha", 1.0))))]


@lowering("LeakyRelu", ["alpha"])
def _leaky_relu(self: _Importer, node, ins, attrs):
    alpha = float(attrs.get("alpha", 0.01))
    return [self.emit(nn.LeakyReluOp(self.ssa(ins[0]), alpha))]


@lowering("PRelu")
def _prelu(self: _Importer, node, ins, attrs):
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
def _ms_gelu(self: _Importer, node, ins, attrs):
    return [self.emit(nn.GeluOp(self.ssa(ins[0]), "none"))]


@lowering("FastGelu", domain=MS_DOMAIN)
def _ms_fast_gelu(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    if ins[1] is not None:
        x = self.emit(nn.AddOp(x, self.ssa(ins[1])))
    return [self.emit(nn.GeluOp(x, "tanh"))]
