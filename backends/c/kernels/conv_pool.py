"""C forms of the convolution and pooling kernels (`edge_kernels_conv_pool.h`).

Each kernel op becomes one runtime call with a `static const` parameter struct: an
`edge_conv2d_t` describing a convolution (for the transposed convolution and its
gradients, the convolution it is the input gradient of: see the header) or an
`edge_pool2d_t`. Sizes come from the buffers, so ceil mode and output padding are
already in them; the other attributes come from the op's properties, which are its
tensor-level twin's.

`kernel_call(op)` is the whole decision, as data; the emitter prints it and the kernel
tests call the runtime through it, so what is tested is what is emitted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from xdsl.dialects.builtin import Float32Type, IntegerType, MemRefType, Signedness
from xdsl.ir import Operation, SSAValue

from edge_opt.backends.c.emitter import EmitError, FunctionContext, emitter
from edge_opt.dialects import kernel

CONV2D_FIELDS = (
    "n", "c", "h", "w", "o", "kh", "kw", "oh", "ow", "stride", "padding", "dilation",
    "groups",
)
"""The fields of `edge_conv2d_t`, in declaration order."""

POOL2D_FIELDS = (
    "n", "c", "h", "w", "oh", "ow", "kh", "kw", "stride", "padding", "dilation",
    "count_include_pad",
)
"""The fields of `edge_pool2d_t`, in declaration order."""

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class KernelCall:
    """One runtime call: `function(&params, *arguments)` (without `&params` when
    `struct` is None). An argument is a buffer, a C integer, or None for `NULL`."""

    function: str
    struct: str | None
    fields: dict[str, object] = field(default_factory=dict)
    arguments: tuple[SSAValue | int | None, ...] = ()


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, MemRefType)
    return tuple(value.type.get_shape())


def _check(op: kernel.KernelOp, indices: Sequence[SSAValue] = ()) -> None:
    """float32 buffers (ui8 for index masks) whose sizes fit the runtime's int32."""
    for value in [*op.inputs, *op.outputs]:
        assert isinstance(value.type, MemRefType)
        element = value.type.element_type
        if value in indices:
            if element != IntegerType(8, Signedness.UNSIGNED):
                raise EmitError(f"{op.name}: the index mask must be ui8, got {element}")
        elif not isinstance(element, Float32Type):
            raise EmitError(
                f"{op.name}: the C runtime has float32 kernels only, got {element}"
            )
        if math.prod(_shape(value)) > _INT32_MAX:
            raise EmitError(
                f"{op.name}: buffer {value.type} has more than 2^31 - 1 elements "
                "(the runtime indexes with int32)"
            )


def conv2d_fields(
    input: Sequence[int],
    weight: Sequence[int],
    output: Sequence[int],
    op: kernel.KernelOp,
) -> dict[str, object]:
    """`edge_conv2d_t` of the convolution with input X, weight W and output Y shapes."""
    n, c, h, w = input
    o, _, kh, kw = weight
    _, _, oh, ow = output
    return {
        "n": n, "c": c, "h": h, "w": w, "o": o, "kh": kh, "kw": kw, "oh": oh, "ow": ow,
        "stride": list(op.stride.get_values()),  # type: ignore[attr-defined]
        "padding": list(op.padding.get_values()),  # type: ignore[attr-defined]
        "dilation": list(op.dilation.get_values()),  # type: ignore[attr-defined]
        "groups": op.groups.value.data,  # type: ignore[attr-defined]
    }


def pool2d_fields(
    input: Sequence[int], output: Sequence[int], op: kernel.KernelOp
) -> dict[str, object]:
    """`edge_pool2d_t` of a pooling from `input` to `output` (NCHW)."""
    n, c, h, w = input
    _, _, oh, ow = output
    kh, kw = op.kernel.get_values()  # type: ignore[attr-defined]
    dilation = getattr(op, "dilation", None)
    return {
        "n": n, "c": c, "h": h, "w": w, "oh": oh, "ow": ow, "kh": kh, "kw": kw,
        "stride": list(op.stride.get_values()),  # type: ignore[attr-defined]
        "padding": list(op.padding.get_values()),  # type: ignore[attr-defined]
        "dilation": [1, 1] if dilation is None else list(dilation.get_values()),
        "count_include_pad": int(getattr(op, "count_include_pad", None) is not None),
    }


_CONV_CALLS: dict[type, tuple[str, str, str, str]] = {
    # op: (kernel, then which of the op's first input `a`, second input `b` and output
    # `out` are the convolution's X, W and Y)
    kernel.Conv2dKernelOp: ("edge_conv2d_f32", "a", "b", "out"),  # x, w[, bias] -> y
    kernel.Conv2dGradInputKernelOp: ("edge_conv2d_grad_input_f32", "out", "b", "a"),
    kernel.Conv2dGradWeightKernelOp: ("edge_conv2d_grad_weight_f32", "b", "out", "a"),
    # The transposed convolution is the input gradient of the convolution from its
    # output (X) to its input (Y), with the same weight.
    kernel.ConvTranspose2dKernelOp: ("edge_conv_transpose2d_f32", "out", "b", "a"),
    kernel.ConvTranspose2dGradInputKernelOp: (
        "edge_conv_transpose2d_grad_input_f32", "a", "b", "out"),
    kernel.ConvTranspose2dGradWeightKernelOp: (
        "edge_conv_transpose2d_grad_weight_f32", "a", "out", "b"),
}
"""The gradient ops take (dy, w) -> dx or (dy, x) -> dw; the forward ops a bias (or
NULL) before their output."""


def _conv_call(op: kernel.KernelOp) -> KernelCall:
    ins, (out,) = op.inputs, op.outputs
    values = {"a": ins[0], "b": ins[1], "out": out}
    name, x, w, y = _CONV_CALLS[type(op)]
    fields = conv2d_fields(_shape(values[x]), _shape(values[w]), _shape(values[y]), op)
    if isinstance(op, kernel.Conv2dKernelOp | kernel.ConvTranspose2dKernelOp):
        args = (ins[0], ins[1], ins[2] if len(ins) > 2 else None, out)
    else:
        args = (ins[0], ins[1], out)
    return KernelCall(name, "edge_conv2d_t", fields, args)


_CONV_OPS = (
    kernel.Conv2dKernelOp,
    kernel.Conv2dGradInputKernelOp,
    kernel.Conv2dGradWeightKernelOp,
    kernel.ConvTranspose2dKernelOp,
    kernel.ConvTranspose2dGradInputKernelOp,
    kernel.ConvTranspose2dGradWeightKernelOp,
)

_POOL_OPS = (
    kernel.MaxPool2dKernelOp,
    kernel.AvgPool2dKernelOp,
    kernel.MaxPool2dWithIndicesKernelOp,
    kernel.MaxPool2dGradKernelOp,
    kernel.AvgPool2dGradKernelOp,
)


def kernel_call(op: Operation) -> KernelCall:
    """The runtime call that implements a conv/pool kernel op."""
    if isinstance(op, _CONV_OPS):
        _check(op)
        return _conv_call(op)
    if isinstance(op, kernel.GlobalAvgPoolKernelOp):
        _check(op)
        (x,), (y,) = op.inputs, op.outputs
        n, c, *spatial = _shape(x)
        return KernelCall("edge_global_avg_pool_f32", None, {},
                          (n * c, math.prod(spatial), x, y))
    if isinstance(op, (kernel.MaxPool2dKernelOp, kernel.AvgPool2dKernelOp)):
        _check(op)
        (x,), (y,) = op.inputs, op.outputs
        name = "max" if isinstance(op, kernel.MaxPool2dKernelOp) else "avg"
        return KernelCall(f"edge_{name}_pool2d_f32", "edge_pool2d_t",
                          pool2d_fields(_shape(x), _shape(y), op), (x, y))
    if isinstance(op, kernel.MaxPool2dWithIndicesKernelOp):
        (x,), (y, indices) = op.inputs, op.outputs
        _check(op, [indices])
        return KernelCall("edge_max_pool2d_with_indices_f32", "edge_pool2d_t",
                          pool2d_fields(_shape(x), _shape(y), op), (x, y, indices))
    if isinstance(op, kernel.MaxPool2dGradKernelOp):
        (dy, indices), (dx,) = op.inputs, op.outputs
        _check(op, [indices])
        return KernelCall("edge_max_pool2d_grad_f32", "edge_pool2d_t",
                          pool2d_fields(_shape(dx), _shape(dy), op), (dy, indices, dx))
    if isinstance(op, kernel.AvgPool2dGradKernelOp):
        _check(op)
        (dy,), (dx,) = op.inputs, op.outputs
        return KernelCall("edge_avg_pool2d_grad_f32", "edge_pool2d_t",
                          pool2d_fields(_shape(dx), _shape(dy), op), (dy, dx))
    raise EmitError(f"{op.name} is not a convolution or pooling kernel")


@emitter(*_CONV_OPS, *_POOL_OPS, kernel.GlobalAvgPoolKernelOp)
def emit_conv_pool(f: FunctionContext, op: Operation) -> None:
    call = kernel_call(op)
    args: list[object] = []
    if call.struct is not None:
        args.append(f.params(call.struct, **call.fields))
    for argument in call.arguments:
        if argument is None:
            args.append("NULL")
        elif isinstance(argument, SSAValue):
            args.append(f.ptr(argument))
        else:
            args.append(argument)
    f.call(call.function, *args)
