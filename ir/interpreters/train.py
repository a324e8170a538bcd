"""Interpreter semantics of the `train` dialect: one `@impl` per op, each reading the
op's attributes and calling `edge_opt.support.train_numerics`. `train.store` writes the
interpreter's parameter state (shared with `nn.load`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Operation

from edge_opt.dialects import train
from edge_opt.ir.interpreters.nn import param_state
from edge_opt.support import train_numerics as tn
from edge_opt.support.dtypes import numpy_dtype


def _typed(op: Operation, values: tuple[Any, ...]) -> tuple[np.ndarray, ...]:
    """Each result cast to its declared element type (NumPy promotes Python scalars)."""
    out = []
    for result, value in zip(op.results, values, strict=True):
        assert isinstance(result.type, TensorType)
        array = np.asarray(value, dtype=numpy_dtype(result.type.element_type))
        assert array.shape == tuple(result.type.get_shape()), (
            f"{op.name}: interpreter produced shape {array.shape}, type says "
            f"{result.type}"
        )
        out.append(array)
    return tuple(out)


def _shape(op: Operation) -> tuple[int, ...]:
    type = op.results[0].type
    assert isinstance(type, TensorType)
    return type.get_shape()


def _grad(f: Callable[..., np.ndarray]):
    """An element-wise gradient op: `f(dy, saved)`."""
    def run(self: TrainFunctions, interpreter: Interpreter, op: Operation, args: tuple):
        return _typed(op, (f(*args),))

    return run


def _pool(op: train._PoolAttrsOp) -> dict[str, Any]:
    return {
        "kernel": op.kernel.get_values(),
        "stride": op.stride.get_values(),
        "padding": op.padding.get_values(),
        "ceil_mode": op.ceil_mode is not None,
    }


@register_impls
class TrainFunctions(InterpreterFunctions):
    @impl(train.StoreOp)
    def run_store(self, interpreter: Interpreter, op: train.StoreOp, args: tuple):
        param_state(interpreter)[op.param.string_value()] = np.array(args[0])
        return ()

    @impl(train.CrossEntropyOp)
    def run_cross_entropy(self, interpreter: Interpreter, op: train.CrossEntropyOp, args):
        return _typed(op, (tn.cross_entropy(*args, op.reduction.data),))

    @impl(train.CrossEntropyGradOp)
    def run_cross_entropy_grad(
        self, interpreter: Interpreter, op: train.CrossEntropyGradOp, args
    ):
        return _typed(op, (tn.cross_entropy_grad(*args, op.reduction.data),))

    @impl(train.MseOp)
    def run_mse(self, interpreter: Interpreter, op: train.MseOp, args):
        return _typed(op, (tn.mse(*args, op.reduction.data),))

    @impl(train.MseGradOp)
    def run_mse_grad(self, interpreter: Interpreter, op: train.MseGradOp, args):
        return _typed(op, (tn.mse_grad(*args, op.reduction.data),))

    run_relu_grad = impl(train.ReluGradOp)(_grad(tn.relu_grad))
    run_sigmoid_grad = impl(train.SigmoidGradOp)(_grad(tn.sigmoid_grad))
    run_tanh_grad = impl(train.TanhGradOp)(_grad(tn.tanh_grad))
    run_silu_grad = impl(train.SiluGradOp)(_grad(tn.silu_grad))
    run_hardswish_grad = impl(train.HardswishGradOp)(_grad(tn.hardswish_grad))
    run_erf_grad = impl(train.ErfGradOp)(_grad(tn.erf_grad))

    @impl(train.ClipGradOp)
    def run_clip_grad(self, interpreter: Interpreter, op: train.ClipGradOp, args):
        return _typed(op, (tn.clip_grad(*args, *op.bounds()),))

    @impl(train.HardsigmoidGradOp)
    def run_hardsigmoid_grad(self, interpreter: Interpreter, op: train.HardsigmoidGradOp,
                             args):
        return _typed(op, (tn.hardsigmoid_grad(*args, **op.scalars()),))

    @impl(train.EluGradOp)
    def run_elu_grad(self, interpreter: Interpreter, op: train.EluGradOp, args):
        return _typed(op, (tn.elu_grad(*args, **op.scalars()),))

    @impl(train.LeakyReluGradOp)
    def run_leaky_relu_grad(self, interpreter: Interpreter, op: train.LeakyReluGradOp,
                            args):
        return _typed(op, (tn.leaky_relu_grad(*args, **op.scalars()),))

    @impl(train.GeluGradOp)
    def run_gelu_grad(self, interpreter: Interpreter, op: train.GeluGradOp, args):
        return _typed(op, (tn.gelu_grad(*args, op.approximate.data),))

    @impl(train.SoftmaxGradOp)
    def run_softmax_grad(self, interpreter: Interpreter, op: train.SoftmaxGradOp, args):
        return _typed(op, (tn.softmax_grad(*args, op.axis.value.data),))

    @impl(train.LogSoftmaxGradOp)
    def run_log_softmax_grad(
        self, interpreter: Interpreter, op: train.LogSoftmaxGradOp, args
    ):
        return _typed(op, (tn.log_softmax_grad(*args, op.axis.value.data),))

    @impl(train.LayerNormGradInputOp)
    def run_layer_norm_grad_input(
        self, interpreter: Interpreter, op: train.LayerNormGradInputOp, args
    ):
        return _typed(
            op,
            (tn.layer_norm_grad_input(*args, op.axis.value.data, op.epsilon.value.data),),
        )

    @impl(train.LayerNormGradScaleOp)
    def run_layer_norm_grad_scale(
        self, interpreter: Interpreter, op: train.LayerNormGradScaleOp, args
    ):
        return _typed(
            op,
            (tn.layer_norm_grad_scale(*args, op.axis.value.data, op.epsilon.value.data),),
        )

    @impl(train.BatchNormGradInputOp)
    def run_batch_norm_grad_input(
        self, interpreter: Interpreter, op: train.BatchNormGradInputOp, args
    ):
        return _typed(
            op,
            (
                tn.batch_norm_grad_input(
                    *args, op.epsilon.value.data, op.training is not None
                ),
            ),
        )

    @impl(train.BatchNormGradScaleOp)
    def run_batch_norm_grad_scale(
        self, interpreter: Interpreter, op: train.BatchNormGradScaleOp, args
    ):
        return _typed(
            op,
            (
                tn.batch_norm_grad_scale(
                    *args, op.epsilon.value.data, op.training is not None
                ),
            ),
        )

    @impl(train.GroupNormGradInputOp)
    def run_group_norm_grad_input(
        self, interpreter: Interpreter, op: train.GroupNormGradInputOp, args
    ):
        return _typed(
            op,
            (
                tn.group_norm_grad_input(
                    *args, op.groups.value.data, op.epsilon.value.data
                ),
            ),
        )

    @impl(train.GroupNormGradScaleOp)
    def run_group_norm_grad_scale(
        self, interpreter: Interpreter, op: train.GroupNormGradScaleOp, args
    ):
        return _typed(
            op,
            (
                tn.group_norm_grad_scale(
                    *args, op.groups.value.data, op.epsilon.value.data
                ),
            ),
        )

    run_linear_grad_input = impl(train.LinearGradInputOp)(_grad(tn.linear_grad_input))
    run_linear_grad_weight = impl(train.LinearGradWeightOp)(_grad(tn.linear_grad_weight))

    @impl(train.Conv2dGradInputOp)
    def run_conv2d_grad_input(
        self, interpreter: Interpreter, op: train.Conv2dGradInputOp, args
    ):
        return _typed(
            op, (tn.conv2d_grad_input(*args, _shape(op), **op.conv_attributes()),)
        )

    @impl(train.Conv2dGradWeightOp)
    def run_conv2d_grad_weight(
        self, interpreter: Interpreter, op: train.Conv2dGradWeightOp, args
    ):
        return _typed(
            op, (tn.conv2d_grad_weight(*args, _shape(op), **op.conv_attributes()),)
        )

    @impl(train.ConvTranspose2dGradInputOp)
    def run_conv_transpose2d_grad_input(
        self, interpreter: Interpreter, op: train.ConvTranspose2dGradInputOp, args
    ):
        return _typed(
            op,
            (tn.conv_transpose2d_grad_input(*args, _shape(op), **op.conv_attributes()),),
        )

    @impl(train.ConvTranspose2dGradWeightOp)
    def run_conv_transpose2d_grad_weight(
        self, interpreter: Interpreter, op: train.ConvTranspose2dGradWeightOp, args
    ):
        return _typed(
            op,
            (tn.conv_transpose2d_grad_weight(*args, _shape(op), **op.conv_attributes()),),
        )

    @impl(train.MaxPool2dWithIndicesOp)
    def run_max_pool2d_with_indices(
        self, interpreter: Interpreter, op: train.MaxPool2dWithIndicesOp, args
    ):
        return _typed(
            op,
            tn.max_pool2d_with_indices(
                args[0], dilation=op.dilation.get_values(), **_pool(op)
            ),
        )

    @impl(train.MaxPool2dGradOp)
    def run_max_pool2d_grad(
        self, interpreter: Interpreter, op: train.MaxPool2dGradOp, args
    ):
        return _typed(
            op,
            (
                tn.max_pool2d_grad(
                    *args, _shape(op), dilation=op.dilation.get_values(), **_pool(op)
                ),
            ),
        )

    @impl(train.AvgPool2dGradOp)
    def run_avg_pool2d_grad(
        self, interpreter: Interpreter, op: train.AvgPool2dGradOp, args
    ):
        return _typed(
            op,
            (
                tn.avg_pool2d_grad(
                    args[0],
                    _shape(op),
                    count_include_pad=op.count_include_pad is not None,
                    **_pool(op),
                ),
            ),
        )

    @impl(train.SliceGradOp)
    def run_slice_grad(self, interpreter: Interpreter, op: train.SliceGradOp, args):
        return _typed(
            op,
            (
                tn.slice_grad(
                    args[0],
                    _shape(op),
                    op.starts.get_values(),
                    op.ends.get_values(),
                    op.steps.get_values(),
                ),
            ),
        )

    @impl(train.ScatterOp)
    def run_scatter(self, interpreter: Interpreter, op: train.ScatterOp, args):
        return _typed(
            op, (tn.scatter(*args, op.indices.get_values(), op.axis.value.data),)
        )

    @impl(train.SgdOp)
    def run_sgd(self, interpreter: Interpreter, op: train.SgdOp, args):
        return _typed(
            op, (tn.sgd(*args, op.lr.value.data, op.weight_decay.value.data),)
        )

    @impl(train.SgdMomentumOp)
    def run_sgd_momentum(self, interpreter: Interpreter, op: train.SgdMomentumOp, args):
        return _typed(
            op,
            tn.sgd_momentum(
                *args,
                op.lr.value.data,
                op.momentum.value.data,
                op.weight_decay.value.data,
                op.nesterov is not None,
            ),
        )

    @impl(train.AdamOp)
    def run_adam(self, interpreter: Interpreter, op: train.AdamOp, args):
        return _typed(
            op,
            tn.adam(
                *args,
                op.lr.value.data,
                op.beta1.value.data,
                op.beta2.value.data,
                op.epsilon.value.data,
                op.weight_decay.value.data,
            ),
        )
