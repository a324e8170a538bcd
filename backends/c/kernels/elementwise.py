"""C forms of the element-wise kernels (`edge_kernels_elementwise.h`), from the rows of
`edge_opt.support.elementwise`: a unary op calls `edge_NAME_f32(n, scalars..., x, y)`,
its gradient `edge_NAME_grad_f32(n, scalars of the gradient op..., dy, saved, dx)`
(NAME with `_VALUE` for a choice other than its default: `edge_gelu_tanh_f32`), a binary
op `edge_NAME_f32(&broadcast, lhs, rhs, out)`."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import Operation

from edge_opt.backends.c.emitter import EmitError, FunctionContext, c_literal, emitter
from edge_opt.dialects import kernel
from edge_opt.dialects.elementwise import (
    BINARY_OPS,
    GRAD_OPS,
    UNARY_OPS,
    ElementwiseGradOp,
    UnaryElementwiseOp,
    attribute_values,
)
from edge_opt.support.elementwise import Attribute, Scalar


def _float_only(f: FunctionContext, op: Operation) -> None:
    for value in op.operands:
        if f.ctype(value) != "float":
            raise EmitError(f"{op.name}: the C runtime has float32 kernels only")


def _scalars(values: dict[str, float | str], attributes: Sequence[Attribute]) -> list[str]:
    """The float attributes as C literals, in the row's order."""
    return [c_literal(values[a.name], "float") for a in attributes if isinstance(a, Scalar)]


@emitter(*(kernel.KERNEL_OF[op] for op in (*UNARY_OPS, *GRAD_OPS)))
def emit_unary(f: FunctionContext, op: kernel.KernelOp) -> None:
    """`edge_NAME_f32(n, scalars..., x, y)` or `edge_NAME_grad_f32(n, scalars...,
    dy, saved, dx)`."""
    _float_only(f, op)
    twin = op.TENSOR_OP
    assert issubclass(twin, UnaryElementwiseOp | ElementwiseGradOp)
    values = attribute_values(op, twin.ATTRIBUTES)
    name = twin.ROW.c_name(values) + ("_grad" if issubclass(twin, ElementwiseGradOp) else "")
    (out,) = op.outputs
    f.call(
        f"edge_{name}_f32", f.numel(out), *_scalars(values, twin.ATTRIBUTES),
        *(f.ptr(value) for value in op.inputs), f.ptr(out),
    )


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


@emitter(*(kernel.KERNEL_OF[op] for op in BINARY_OPS))
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
    f.call(f"edge_{op.TENSOR_OP.ROW.name}_f32", params, f.ptr(lhs), f.ptr(rhs), f.ptr(out))
