"""C forms of the softmax and normalisation kernels (`edge_kernels_norm.h`).

Each emitter reads the kernel op's properties (the same as its tensor twin's) and the
buffer shapes, and declares the runtime's parameter struct: the softmax family sees
its tensor as outer x axis x inner, layer norm as rows x normalized size, batch and
group norm as batch x channels x spatial.
"""

from __future__ import annotations

import math

from xdsl.dialects.builtin import MemRefType, f32
from xdsl.ir import Operation, SSAValue

from edge_opt.backends.c.emitter import EmitError, FunctionContext, emitter
from edge_opt.dialects import kernel
from edge_opt.support import shapes

INT32_MAX = 2**31 - 1

_SOFTMAX = {
    kernel.SoftmaxKernelOp: "softmax",
    kernel.LogSoftmaxKernelOp: "log_softmax",
    kernel.SoftmaxGradKernelOp: "softmax_grad",
    kernel.LogSoftmaxGradKernelOp: "log_softmax_grad",
}


def _check(f: FunctionContext, op: Operation) -> None:
    """Float32 buffers whose element offsets fit the runtime's `int32_t` indices."""
    for value in op.operands:
        assert isinstance(value.type, MemRefType)
        if value.type.element_type != f32:
            raise EmitError(
                f"{op.name}: the C runtime has float32 kernels only, got "
                f"{value.type.element_type}"
            )
        if f.numel(value) > INT32_MAX:
            raise EmitError(
                f"{op.name}: {f.numel(value)} elements exceed the runtime's int32 indices"
            )


def _axis(op: Operation, shape: tuple[int, ...]) -> int:
    axis = op.axis.value.data  # type: ignore[attr-defined]
    try:
        return shapes.normalize_axis(axis, len(shape))
    except shapes.ShapeError as e:
        raise EmitError(f"{op.name}: {e}") from None


def softmax_params(shape: tuple[int, ...], axis: int) -> dict[str, int]:
    """`edge_softmax_t` of a dense `shape` around `axis` (normalized)."""
    return {
        "outer": math.prod(shape[:axis]),
        "size": shape[axis],
        "inner": math.prod(shape[axis + 1 :]),
    }


def layer_norm_params(shape: tuple[int, ...], axis: int, epsilon: float) -> dict:
    """`edge_layer_norm_t`: rows = the leading axes, size = the normalized ones."""
    return {
        "rows": math.prod(shape[:axis]),
        "size": math.prod(shape[axis:]),
        "epsilon": float(epsilon),
    }


def channel_params(shape: tuple[int, ...]) -> dict[str, int]:
    """batch x channels x spatial of an (N, C, ...) tensor."""
    return {"batch": shape[0], "channels": shape[1], "spatial": math.prod(shape[2:])}


def _channel_shape(op: Operation, value: SSAValue, f: FunctionContext) -> tuple[int, ...]:
    shape = f.shape(value)
    if len(shape) < 2:
        raise EmitError(f"{op.name}: the input must have rank >= 2, got {list(shape)}")
    return shape


def _epsilon(op: Operation) -> float:
    return op.epsilon.value.data  # type: ignore[attr-defined]


@emitter(*_SOFTMAX)
def emit_softmax(f: FunctionContext, op: kernel.KernelOp) -> None:
    _check(f, op)
    (out,) = op.outputs
    shape = f.shape(out)
    params = f.params("edge_softmax_t", **softmax_params(shape, _axis(op, shape)))
    f.call(
        f"edge_{_SOFTMAX[type(op)]}_f32", params, *(f.ptr(v) for v in op.inputs), f.ptr(out)
    )


def _normalized(op: kernel.KernelOp) -> SSAValue:
    """The forward's input: the first operand of a normalization, the second (after
    `dy`) of its gradients."""
    return op.inputs[1] if "_grad" in op.name else op.inputs[0]


def _call(f: FunctionContext, op: kernel.KernelOp, struct: str, **fields) -> None:
    """`edge_NAME_f32(&params, operands...)`, NAME the kernel op's."""
    params = f.params(struct, **fields)
    name = op.name.split(".", 1)[1]
    f.call(f"edge_{name}_f32", params, *(f.ptr(v) for v in op.operands))


@emitter(
    kernel.LayerNormKernelOp,
    kernel.LayerNormGradInputKernelOp,
    kernel.LayerNormGradScaleKernelOp,
)
def emit_layer_norm(f: FunctionContext, op: kernel.KernelOp) -> None:
    _check(f, op)
    shape = f.shape(_normalized(op))
    _call(f, op, "edge_layer_norm_t",
          **layer_norm_params(shape, _axis(op, shape), _epsilon(op)))


@emitter(
    kernel.BatchNormKernelOp,
    kernel.BatchNormGradInputKernelOp,
    kernel.BatchNormGradScaleKernelOp,
)
def emit_batch_norm(f: FunctionContext, op: kernel.KernelOp) -> None:
    _check(f, op)
    _call(f, op, "edge_batch_norm_t",
          **channel_params(_channel_shape(op, _normalized(op), f)),
          epsilon=float(_epsilon(op)),
          training=op.training is not None)  # type: ignore[attr-defined]


@emitter(
    kernel.GroupNormKernelOp,
    kernel.GroupNormGradInputKernelOp,
    kernel.GroupNormGradScaleKernelOp,
)
def emit_group_norm(f: FunctionContext, op: kernel.KernelOp) -> None:
    _check(f, op)
    shape = _channel_shape(op, _normalized(op), f)
    groups = op.groups.value.data  # type: ignore[attr-defined]
    if groups < 1 or shape[1] % groups:
        raise EmitError(
            f"{op.name}: groups ({groups}) must divide the channel count ({shape[1]})"
        )
    dims = channel_params(shape)
    _call(f, op, "edge_group_norm_t", batch=dims["batch"], channels=dims["channels"],
          groups=groups, spatial=dims["spatial"], epsilon=float(_epsilon(op)))
