"""Interpreter semantics of the `train` dialect: a table (`SEMANTICS`) of functions that
read the op's attributes and call `edge_opt.support.train_numerics` (the element-wise
gradients, their table row's derivative). `train.store` writes the interpreter's
parameter state (shared with `nn.load`)."""

from __future__ import annotations

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl
from xdsl.ir import Operation

from edge_opt.dialects import elementwise, train
from edge_opt.ir.interpreters.nn import param_state
from edge_opt.ir.interpreters.semantics import (
    Semantics,
    is_set,
    register_semantics,
    result_shape,
)
from edge_opt.support import train_numerics as tn


def _sgd_of(op: train.LinearGradWeightSgdOp | train.Conv2dGradWeightSgdOp,
            weight: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """`train.sgd` of `weight` by `grad`, the gradient first cast to the weight's type
    as the unfused grad-weight op's result is: the fused op gives the pair's numbers."""
    grad = np.asarray(grad, dtype=weight.dtype)
    return tn.sgd(weight, grad, op.lr.value.data, op.weight_decay.value.data)


SEMANTICS: dict[type[Operation], Semantics] = {
    train.CrossEntropyOp: lambda op, a: tn.cross_entropy(*a, op.reduction.data),
    train.CrossEntropyGradOp: lambda op, a: tn.cross_entropy_grad(*a, op.reduction.data),
    train.MseOp: lambda op, a: tn.mse(*a, op.reduction.data),
    train.MseGradOp: lambda op, a: tn.mse_grad(*a, op.reduction.data),
    train.SoftmaxGradOp: lambda op, a: tn.softmax_grad(*a, op.axis.value.data),
    train.LogSoftmaxGradOp: lambda op, a: tn.log_softmax_grad(*a, op.axis.value.data),
    train.LayerNormGradInputOp: lambda op, a: tn.layer_norm_grad_input(
        *a, op.axis.value.data, op.epsilon.value.data),
    train.LayerNormGradScaleOp: lambda op, a: tn.layer_norm_grad_scale(
        *a, op.axis.value.data, op.epsilon.value.data),
    train.BatchNormGradInputOp: lambda op, a: tn.batch_norm_grad_input(
        *a, op.epsilon.value.data, is_set(op.training)),
    train.BatchNormGradScaleOp: lambda op, a: tn.batch_norm_grad_scale(
        *a, op.epsilon.value.data, is_set(op.training)),
    train.GroupNormGradInputOp: lambda op, a: tn.group_norm_grad_input(
        *a, op.groups.value.data, op.epsilon.value.data),
    train.GroupNormGradScaleOp: lambda op, a: tn.group_norm_grad_scale(
        *a, op.groups.value.data, op.epsilon.value.data),
    train.LinearGradInputOp: lambda op, a: tn.linear_grad_input(*a),
    train.LinearGradWeightOp: lambda op, a: tn.linear_grad_weight(*a),
    train.Conv2dGradInputOp: lambda op, a: tn.conv2d_grad_input(
        *a, result_shape(op), **op.conv_attributes()),
    train.Conv2dGradWeightOp: lambda op, a: tn.conv2d_grad_weight(
        *a, result_shape(op), **op.conv_attributes()),
    train.ConvTranspose2dGradInputOp: lambda op, a: tn.conv_transpose2d_grad_input(
        *a, result_shape(op), **op.conv_attributes()),
    train.ConvTranspose2dGradWeightOp: lambda op, a: tn.conv_transpose2d_grad_weight(
        *a, result_shape(op), **op.conv_attributes()),
    train.MaxPool2dWithIndicesOp: lambda op, a: tn.max_pool2d_with_indices(
        a[0], dilation=op.dilation.get_values(), **op.pool_attributes()),
    train.MaxPool2dGradOp: lambda op, a: tn.max_pool2d_grad(
        *a, result_shape(op), dilation=op.dilation.get_values(), **op.pool_attributes()),
    train.AvgPool2dGradOp: lambda op, a: tn.avg_pool2d_grad(
        a[0], result_shape(op), count_include_pad=is_set(op.count_include_pad),
        **op.pool_attributes()),
    train.SliceGradOp: lambda op, a: tn.slice_grad(
        a[0], result_shape(op), op.starts.get_values(), op.ends.get_values(),
        op.steps.get_values()),
    train.ScatterOp: lambda op, a: tn.scatter(
        *a, op.indices.get_values(), op.axis.value.data),
    train.LinearGradWeightSgdOp: lambda op, a: _sgd_of(
        op, a[2], tn.linear_grad_weight(a[0], a[1])),
    train.Conv2dGradWeightSgdOp: lambda op, a: _sgd_of(
        op, a[2], tn.conv2d_grad_weight(
            a[0], a[1], result_shape(op), **op.conv_attributes())),
    train.SgdOp: lambda op, a: tn.sgd(*a, op.lr.value.data, op.weight_decay.value.data),
    train.SgdMomentumOp: lambda op, a: tn.sgd_momentum(
        *a, op.lr.value.data, op.momentum.value.data, op.weight_decay.value.data,
        is_set(op.nesterov)),
    train.AdamOp: lambda op, a: tn.adam(
        *a, op.lr.value.data, op.beta1.value.data, op.beta2.value.data,
        op.epsilon.value.data, op.weight_decay.value.data),
    **{
        op_type: lambda op, a: op.ROW.derivative(*a, **op.values())
        for op_type in elementwise.GRAD_OPS
    },
}
"""The semantics of every `train` op that computes values (`train.store` writes the
parameter state instead), each calling `edge_opt.support.train_numerics` or, for the
element-wise gradients, the derivative of their table row."""


class TrainFunctions(InterpreterFunctions):
    """`train.store`, and an `@impl` per entry of `SEMANTICS` (added below)."""

    @impl(train.StoreOp)
    def run_store(self, interpreter: Interpreter, op: train.StoreOp, args: tuple):
        param_state(interpreter)[op.param.string_value()] = np.array(args[0])
        return ()


register_semantics(TrainFunctions, SEMANTICS)
