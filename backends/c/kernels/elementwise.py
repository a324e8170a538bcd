"""C forms of the element-wise kernels (`edge_kernels_elementwise.h`)."""

from __future__ import annotations

import math

from xdsl.dialects.builtin import FloatAttr
from xdsl.ir import Operation

from edge_opt.backends.c.emitter import EmitError, FunctionContext, c_literal, emitter
from edge_opt.dialects import kernel

_UNARY = {
    kernel.ReluKernelOp: "relu",
    kernel.SigmoidKernelOp: "sigmoid",
    kernel.TanhKernelOp: "tanh",
    kernel.SiluKernelOp: "silu",
    kernel.HardswishKernelOp: "hardswish",
    kernel.ErfKernelOp: "erf",
    kernel.SqrtKernelOp: "sqrt",
    kernel.ExpKernelOp: "exp",
    kernel.LogKernelOp: "log",
    kernel.NegKernelOp: "neg",
    kernel.CeilKernelOp: "ceil",
    kernel.FloorKernelOp: "floor",
    kernel.RoundKernelOp: "round",
}

_WITH_SCALARS = {
    kernel.ClipKernelOp: ("clip", ("min", "max")),
    kernel.HardsigmoidKernelOp: ("hardsigmoid", ("alpha", "beta")),
    kernel.EluKernelOp: ("elu", ("alpha",)),
    kernel.LeakyReluKernelOp: ("leaky_relu", ("alpha",)),
}
"""Kernels with float parameters: the C name and the properties passed, in order."""

_BINARY = {
    kernel.AddKernelOp: "add",
    kernel.SubKernelOp: "sub",
    kernel.MulKernelOp: "mul",
    kernel.DivKernelOp: "div",
    kernel.PowKernelOp: "pow",
}

_GRAD = {
    kernel.ReluGradKernelOp: "relu",
    kernel.SigmoidGradKernelOp: "sigmoid",
    kernel.TanhGradKernelOp: "tanh",
    kernel.SiluGradKernelOp: "silu",
    kernel.HardswishGradKernelOp: "hardswish",
    kernel.ErfGradKernelOp: "erf",
}

_GRAD_WITH_SCALARS = {
    kernel.ClipGradKernelOp: ("clip", ("min", "max")),
    kernel.HardsigmoidGradKernelOp: ("hardsigmoid", ("alpha",)),
    kernel.EluGradKernelOp: ("elu", ("alpha",)),
    kernel.LeakyReluGradKernelOp: ("leaky_relu", ("alpha",)),
}


def _float_only(f: FunctionContext, op: Operation) -> None:
    for value in op.operands:
        if f.ctype(value) != "float":
            raise EmitError(f"{op.name}: the C runtime has float32 kernels only")


@emitter(*_UNARY)
def emit_unary(f: FunctionContext, op: kernel.KernelOp) -> None:
    _float_only(f, op)
    (x,), (y,) = op.inputs, op.outputs
    f.call(f"edge_{_UNARY[type(op)]}_f32", f.numel(y), f.ptr(x), f.ptr(y))


def _scalars(op: Operation, names: tuple[str, ...]) -> list[str]:
    """The op's float properties as C literals; an absent clip bound is -inf / +inf."""
    values = []
    for name in names:
        attr = op.properties.get(name)
        if isinstance(attr, FloatAttr):
            values.append(attr.value.data)
        else:
            values.append(-math.inf if name == "min" else math.inf)
    return [c_literal(v, "float") for v in values]


@emitter(*_WITH_SCALARS)
def emit_unary_with_scalars(f: FunctionContext, op: kernel.KernelOp) -> None:
    _float_only(f, op)
    (x,), (y,) = op.inputs, op.outputs
    name, scalars = _WITH_SCALARS[type(op)]
    f.call(f"edge_{name}_f32", f.numel(y), *_scalars(op, scalars), f.ptr(x), f.ptr(y))


@emitter(kernel.GeluKernelOp)
def emit_gelu(f: FunctionContext, op: kernel.KernelOp) -> None:
    _float_only(f, op)
    (x,), (y,) = op.inputs, op.outputs
    name = "gelu_tanh" if op.approximate.data == "tanh" else "gelu"  # type: ignore[attr-defined]
    f.call(f"edge_{name}_f32", f.numel(y), f.ptr(x), f.ptr(y))


def broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """Element strides reading a dense `shape` operand at each axis of `out` (0 where
    it is broadcast), padded to the runtime's rank."""
    strides = [0] * len(out)
    step = 1
    for axis in range(len(shape) - 1, -1, -1):
        out_axis = len(out) - len(shape) + axis
        strides[out_axis] = 0 if shape[axis] == 1 and out[out_axis] != 1 else step
        step *= shape[axis]
    return strides + [0] * (6 - len(out))


@emitter(*_BINARY)
def emit_binary(f: FunctionContext, op: kernel.KernelOp) -> None:
    _float_only(f, op)
    (lhs, rhs), (out,) = op.inputs, op.outputs
    shape = f.shape(out)
    if len(shape) > 6:
        raise EmitError(f"{op.name}: rank {len(shape)} > 6 is not supported by the runtime")
    params = f.params(
        "edge_broadcast_t",
        rank=len(shape),
        shape=list(shape) + [1] * (6 - len(shape)),
        lhs_strides=broadcast_strides(f.shape(lhs), shape),
        rhs_strides=broadcast_strides(f.shape(rhs), shape),
    )
    f.call(f"edge_{_BINARY[type(op)]}_f32", params, f.ptr(lhs), f.ptr(rhs), f.ptr(out))


@emitter(*_GRAD, kernel.GeluGradKernelOp)
def emit_grad(f: FunctionContext, op: kernel.KernelOp) -> None:
    _float_only(f, op)
    (dy, saved), (dx,) = op.inputs, op.outputs
    if isinstance(op, kernel.GeluGradKernelOp):
        name = "gelu_tanh" if op.approximate.data == "tanh" else "gelu"  # type: ignore[attr-defined]
    else:
        name = _GRAD[type(op)]
    f.call(f"edge_{name}_grad_f32", f.numel(dx), f.ptr(dy), f.ptr(saved), f.ptr(dx))


@emitter(*_GRAD_WITH_SCALARS)
def emit_grad_with_scalars(f: FunctionContext, op: kernel.KernelOp) -> None:
    _float_only(f, op)
    (dy, saved), (dx,) = op.inputs, op.outputs
    name, scalars = _GRAD_WITH_SCALARS[type(op)]
    f.call(
        f"edge_{name}_grad_f32", f.numel(dx), *_scalars(op, scalars), f.ptr(dy),
        f.ptr(saved), f.ptr(dx),
    )
