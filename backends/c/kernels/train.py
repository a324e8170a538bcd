"""C forms of the train kernels (`edge_kernels_train.h`): the losses `kernel.cross_entropy`,
`kernel.mse` and their gradients, and the optimizer updates `kernel.sgd`,
`kernel.sgd_momentum`, `kernel.adam` (which run in place when the bufferizer gives them
the parameter's and the state's buffers as outputs), and the fused weight updates
`kernel.linear_grad_weight_sgd`, `kernel.conv2d_grad_weight_sgd` (in place over the
weight, with their workspace of `chunk_rows` gradient rows).

The parameter structs are computed by the `*_params` functions, which the kernel tests
use as well."""

from __future__ import annotations

import math

from xdsl.ir import Operation, SSAValue

from edge_opt.backends.c.emitter import EmitError, FunctionContext, emitter
from edge_opt.backends.c.hyperparameters import runtime_fields
from edge_opt.backends.c.kernels.conv_pool import conv2d_fields
from edge_opt.backends.c.kernels.linalg import linear_params
from edge_opt.dialects import kernel


def _check_types(f: FunctionContext, op: Operation, labels: SSAValue | None = None) -> None:
    for value in op.operands:
        expected = "int32_t" if value is labels else "float"
        try:
            supported = f.ctype(value) == expected
        except EmitError:
            supported = False
        if not supported:
            what = "int32 labels" if value is labels else "float32 tensors"
            raise EmitError(f"{op.name}: the C runtime takes {what} only, got {value.type}")


def cross_entropy_params(logits: tuple[int, ...], reduction: str) -> dict[str, int]:
    return {"rows": logits[0], "classes": logits[1], "mean": int(reduction == "mean")}


def mse_params(shape: tuple[int, ...], reduction: str) -> dict[str, int]:
    return {"count": math.prod(shape), "mean": int(reduction == "mean")}


def sgd_params(count: int, lr: float, weight_decay: float) -> dict[str, object]:
    return {"count": count, "lr": lr, "weight_decay": weight_decay}


def sgd_momentum_params(
    count: int, lr: float, momentum: float, weight_decay: float, nesterov: bool
) -> dict[str, object]:
    return {
        "count": count,
        "nesterov": int(nesterov),
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
    }


def adam_params(
    count: int, lr: float, beta1: float, beta2: float, epsilon: float, weight_decay: float
) -> dict[str, object]:
    """`edge_adam_t`; 1 - beta and log(beta) in double here, so that the kernel's bias
    corrections 1 - beta^t = -expm1(t log(beta)) keep their digits in float."""
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"{name} = {beta} is outside [0, 1)")
    return {
        "count": count,
        "lr": lr,
        "beta1": beta1,
        "beta2": beta2,
        "one_minus_beta1": 1.0 - beta1,
        "one_minus_beta2": 1.0 - beta2,
        "log_beta1": math.log(beta1) if beta1 > 0 else -math.inf,
        "log_beta2": math.log(beta2) if beta2 > 0 else -math.inf,
        "epsilon": epsilon,
        "weight_decay": weight_decay,
    }


def _float(attribute) -> float:
    return float(attribute.value.data)


@emitter(kernel.CrossEntropyKernelOp, kernel.CrossEntropyGradKernelOp)
def emit_cross_entropy(f: FunctionContext, op: kernel.KernelOp) -> None:
    (logits, labels), (out,) = op.inputs, op.outputs
    _check_types(f, op, labels)
    fields = cross_entropy_params(f.shape(logits), op.reduction.data)  # type: ignore[attr-defined]
    grad = isinstance(op, kernel.CrossEntropyGradKernelOp)
    name = "cross_entropy_grad" if grad else "cross_entropy"
    f.call(f"edge_{name}_f32", f.params("edge_cross_entropy_t", **fields), f.ptr(logits),
           f.ptr(labels), f.ptr(out))


@emitter(kernel.MseKernelOp, kernel.MseGradKernelOp)
def emit_mse(f: FunctionContext, op: kernel.KernelOp) -> None:
    _check_types(f, op)
    (prediction, target), (out,) = op.inputs, op.outputs
    fields = mse_params(f.shape(prediction), op.reduction.data)  # type: ignore[attr-defined]
    name = "mse_grad" if isinstance(op, kernel.MseGradKernelOp) else "mse"
    f.call(f"edge_{name}_f32", f.params("edge_mse_t", **fields), f.ptr(prediction),
           f.ptr(target), f.ptr(out))


@emitter(kernel.SgdKernelOp)
def emit_sgd(f: FunctionContext, op: kernel.KernelOp) -> None:
    _check_types(f, op)
    (param, grad), (new_param,) = op.inputs, op.outputs
    fields = sgd_params(
        f.numel(param), _float(op.lr), _float(op.weight_decay)  # type: ignore[attr-defined]
    )
    runtime = runtime_fields("lr", "weight_decay")
    f.call("edge_sgd_f32", f.params("edge_sgd_t", runtime, **fields), f.ptr(param), f.ptr(grad),
           f.ptr(new_param))


@emitter(kernel.LinearGradWeightSgdKernelOp, kernel.Conv2dGradWeightSgdKernelOp)
def emit_grad_weight_sgd(f: FunctionContext, op: kernel.KernelOp) -> None:
    """The layer's struct, SGD's (count set per chunk by the kernel), the chunk's rows,
    then the operands: dy, x, w, new w, workspace."""
    _check_types(f, op)
    (dy, x, weight), (new_weight, workspace) = op.inputs, op.outputs
    if isinstance(op, kernel.LinearGradWeightSgdKernelOp):
        layer = f.params("edge_linear_t", **linear_params(f.shape(x), f.shape(weight)))
    else:
        if op.groups.value.data != 1:  # type: ignore[attr-defined]
            raise EmitError(f"{op.name}: the C kernel takes groups = 1 only")
        fields = conv2d_fields(f.shape(x), f.shape(weight), f.shape(dy), op)
        layer = f.params("edge_conv2d_t", **fields)
    sgd = f.params("edge_sgd_t", runtime_fields("lr", "weight_decay"), **sgd_params(
        0, _float(op.lr), _float(op.weight_decay)))  # type: ignore[attr-defined]
    name = op.name.split(".", 1)[1]
    f.call(f"edge_{name}_f32", layer, sgd, op.chunk_rows.value.data,  # type: ignore[attr-defined]
           *(f.ptr(v) for v in (dy, x, weight, new_weight, workspace)))


@emitter(kernel.SgdMomentumKernelOp)
def emit_sgd_momentum(f: FunctionContext, op: kernel.KernelOp) -> None:
    _check_types(f, op)
    (param, grad, buffer), (new_param, new_buffer) = op.inputs, op.outputs
    fields = sgd_momentum_params(
        f.numel(param),
        _float(op.lr),  # type: ignore[attr-defined]
        _float(op.momentum),  # type: ignore[attr-defined]
        _float(op.weight_decay),  # type: ignore[attr-defined]
        op.nesterov is not None,  # type: ignore[attr-defined]
    )
    runtime = runtime_fields("lr", "momentum", "weight_decay")
    f.call("edge_sgd_momentum_f32", f.params("edge_sgd_momentum_t", runtime, **fields),
           f.ptr(param), f.ptr(grad), f.ptr(buffer), f.ptr(new_param), f.ptr(new_buffer))


@emitter(kernel.AdamKernelOp)
def emit_adam(f: FunctionContext, op: kernel.KernelOp) -> None:
    _check_types(f, op)
    (param, grad, exp_avg, exp_avg_sq, step) = op.inputs
    (new_param, new_exp_avg, new_exp_avg_sq) = op.outputs
    try:
        fields = adam_params(
            f.numel(param),
            _float(op.lr),  # type: ignore[attr-defined]
            _float(op.beta1),  # type: ignore[attr-defined]
            _float(op.beta2),  # type: ignore[attr-defined]
            _float(op.epsilon),  # type: ignore[attr-defined]
            _float(op.weight_decay),  # type: ignore[attr-defined]
        )
    except ValueError as e:
        raise EmitError(f"{op.name}: {e}: the runtime's bias correction needs it") from None
    runtime = runtime_fields("lr", "weight_decay")
    f.call("edge_adam_f32", f.params("edge_adam_t", runtime, **fields), f.ptr(param), f.ptr(grad),
           f.ptr(exp_avg), f.ptr(exp_avg_sq), f.ptr(step), f.ptr(new_param),
           f.ptr(new_exp_avg), f.ptr(new_exp_avg_sq))
