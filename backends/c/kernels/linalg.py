"""C forms of the linalg kernels (`edge_kernels_linalg.h`): `kernel.linear`,
`kernel.matmul`, `kernel.linear_grad_input`, `kernel.linear_grad_weight`.

The parameter structs are computed by the `*_params` functions (plain shapes in, field
dict out), which the kernel tests use as well, so that a test of a kernel is a test of
the parameters its emitter writes."""

from __future__ import annotations

import math

from xdsl.ir import Operation

from edge_opt.backends.c.emitter import EmitError, FunctionContext, emitter
from edge_opt.dialects import kernel

MAX_BATCH_RANK = 4
"""`edge_matmul_t` holds up to 4 batch axes (the runtime's rank 6, minus 2)."""


def _float_only(f: FunctionContext, op: Operation) -> None:
    for value in op.operands:
        try:
            supported = f.ctype(value) == "float"
        except EmitError:
            supported = False
        if not supported:
            raise EmitError(
                f"{op.name}: the C runtime has float32 kernels only, got {value.type}"
            )


def linear_params(input: tuple[int, ...], weight: tuple[int, ...]) -> dict[str, int]:
    """`edge_linear_t` of a linear layer with this input (..., in) and weight (out, in)."""
    return {
        "rows": math.prod(input[:-1]),
        "in_features": weight[1],
        "out_features": weight[0],
    }


def matmul_params(
    lhs: tuple[int, ...],
    rhs: tuple[int, ...],
    out: tuple[int, ...],
    transpose_lhs: bool,
    transpose_rhs: bool,
) -> dict[str, object]:
    """`edge_matmul_t` of `out = op(lhs) @ op(rhs)`: batch strides are element strides
    of each operand's matrices along the output's batch axes (0 where broadcast)."""
    batch = out[:-2]
    if len(batch) > MAX_BATCH_RANK:
        raise ValueError(f"{len(batch)} batch axes > {MAX_BATCH_RANK}")
    m, n = out[-2:]
    k = lhs[-2] if transpose_lhs else lhs[-1]

    def strides(shape: tuple[int, ...]) -> list[int]:
        result = [0] * len(batch)
        step = shape[-1] * shape[-2]
        for axis in range(len(shape) - 3, -1, -1):
            out_axis = len(batch) - (len(shape) - 2) + axis
            result[out_axis] = 0 if shape[axis] == 1 and batch[out_axis] != 1 else step
            step *= shape[axis]
        return result + [0] * (MAX_BATCH_RANK - len(batch))

    return {
        "m": m,
        "n": n,
        "k": k,
        "transpose_lhs": int(transpose_lhs),
        "transpose_rhs": int(transpose_rhs),
        "batch_rank": len(batch),
        "batch_shape": list(batch) + [1] * (MAX_BATCH_RANK - len(batch)),
        "lhs_batch_strides": strides(lhs),
        "rhs_batch_strides": strides(rhs),
    }


@emitter(kernel.LinearKernelOp, kernel.LinearGradInputKernelOp,
         kernel.LinearGradWeightKernelOp)
def emit_linear(f: FunctionContext, op: kernel.KernelOp) -> None:
    """`edge_NAME_f32(params, operands...)`, the parameters from the forward's input
    and weight shapes (the gradient's result stands for the one it is the gradient of);
    an absent bias is NULL."""
    _float_only(f, op)
    if isinstance(op, kernel.LinearKernelOp):
        x, w, *bias = op.inputs
        operands = [x, w, bias[0] if bias else None, *op.outputs]
    elif isinstance(op, kernel.LinearGradInputKernelOp):
        (dy, w), (x,) = op.inputs, op.outputs
        operands = [dy, w, x]
    else:
        (dy, x), (w,) = op.inputs, op.outputs
        operands = [dy, x, w]
    params = f.params("edge_linear_t", **linear_params(f.shape(x), f.shape(w)))
    name = op.name.split(".", 1)[1]
    f.call(f"edge_{name}_f32", params,
           *(f.ptr(v) if v is not None else "NULL" for v in operands))


@emitter(kernel.MatmulKernelOp)
def emit_matmul(f: FunctionContext, op: kernel.KernelOp) -> None:
    _float_only(f, op)
    (lhs, rhs), (out,) = op.inputs, op.outputs
    try:
        fields = matmul_params(
            f.shape(lhs), f.shape(rhs), f.shape(out),
            op.transpose_lhs is not None,  # type: ignore[attr-defined]
            op.transpose_rhs is not None,  # type: ignore[attr-defined]
        )
    except ValueError as e:
        raise EmitError(f"{op.name}: {e}: not supported by the runtime") from None
    f.call("edge_matmul_f32", f.params("edge_matmul_t", **fields), f.ptr(lhs), f.ptr(rhs),
           f.ptr(out))
