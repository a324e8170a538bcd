"""Lowerings of element-wise ONNX ops: the unary and binary ones of the default domain,
Gelu, and `com.microsoft` Gelu and FastGelu."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_opt.dialects import nn
from edge_opt.ir.onnx_import.errors import _Unsupported
from edge_opt.ir.onnx_import.registry import _MS_DOMAIN, _Lowering, _lowering
from edge_opt.ir.onnx_import.values import _Const

if TYPE_CHECKING:
    from edge_opt.ir.onnx_import.importer import _Importer


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
}


def _unary_lowering(op: type[nn.UnaryElementwiseOp]) -> _Lowering:
    def lower(self: _Importer, node, ins, attrs):
        return [self.emit(op(self.ssa(ins[0])))]

    return lower


for _name, _op in _UNARY.items():
    _lowering(_name)(_unary_lowering(_op))

_BINARY: dict[str, type[nn.BinaryElementwiseOp]] = {
    "Add": nn.AddOp,
    "Sub": nn.SubOp,
    "Mul": nn.MulOp,
    "Div": nn.DivOp,
    "Pow": nn.PowOp,
}


def _binary_lowering(op: type[nn.BinaryElementwiseOp]) -> _Lowering:
    def lower(self: _Importer, node, ins, attrs):
        if ins[0] is None or ins[1] is None:
            raise _Unsupported("missing operand")
        if isinstance(ins[0], _Const) and not isinstance(ins[1], _Const):
            rhs = self.ssa(ins[1])
            lhs = self.like(ins[0], rhs)
        else:
            lhs = self.ssa(ins[0])
            rhs = self.like(ins[1], lhs)
        return [self.emit(op(lhs, rhs))]

    return lower


for _name, _op in _BINARY.items():
    _lowering(_name)(_binary_lowering(_op))


@_lowering("Gelu", ["approximate"])
def _gelu(self: _Importer, node, ins, attrs):
    approximate = attrs.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise _Unsupported(f"approximate={approximate}")
    return [self.emit(nn.GeluOp(self.ssa(ins[0]), approximate))]


@_lowering("Gelu", domain=_MS_DOMAIN)
def _ms_gelu(self: _Importer, node, ins, attrs):
    return [self.emit(nn.GeluOp(self.ssa(ins[0]), "none"))]


@_lowering("FastGelu", domain=_MS_DOMAIN)
def _ms_fast_gelu(self: _Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    if ins[1] is not None:
        x = self.emit(nn.AddOp(x, self.ssa(ins[1])))
    return [self.emit(nn.GeluOp(x, "tanh"))]
