"""Interpreter semantics of the `nn` dialect: a table (`SEMANTICS`) of thin functions
that read the op's attributes and call `edge_opt.support.numerics` (the element-wise
ops, their table row's forward).

Values are NumPy arrays. Parameter values come from the interpreter's parameter state
(`ParamState`, set up by `edge_opt.ir.session`), falling back to the `nn.param`'s inline
value.
"""

from __future__ import annotations

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl

from edge_opt.dialects import elementwise, nn
from edge_opt.ir.interpreters.semantics import (
    Semantics,
    is_set,
    register_semantics,
    result_shape,
    typed_results,
)
from edge_opt.support import numerics
from edge_opt.support.dtypes import to_numpy


class ParamState(dict[str, np.ndarray]):
    """Current parameter values by name, owned by a `Session`."""


def param_state(interpreter: Interpreter) -> ParamState:
    return interpreter.get_data(NnFunctions, "params", ParamState)


def _optional(args: tuple, index: int) -> np.ndarray | None:
    return args[index] if len(args) > index else None


def _reshaped(op, a: tuple) -> np.ndarray:
    return np.reshape(a[0], result_shape(op))


SEMANTICS: dict[type, Semantics] = {
    nn.ConstantOp: lambda op, a: np.array(op.array()),
    nn.LinearOp: lambda op, a: numerics.linear(a[0], a[1], _optional(a, 2)),
    nn.MatmulOp: lambda op, a: numerics.matmul(
        a[0], a[1], is_set(op.transpose_lhs), is_set(op.transpose_rhs)),
    nn.Conv2dOp: lambda op, a: numerics.conv2d(
        a[0], a[1], _optional(a, 2), op.stride.get_values(), op.padding.get_values(),
        op.dilation.get_values(), op.groups.value.data),
    nn.ConvTranspose2dOp: lambda op, a: numerics.conv_transpose2d(
        a[0], a[1], _optional(a, 2), op.stride.get_values(), op.padding.get_values(),
        op.output_padding.get_values(), op.dilation.get_values(), op.groups.value.data),
    nn.SoftmaxOp: lambda op, a: numerics.softmax(a[0], op.axis.value.data),
    nn.LogSoftmaxOp: lambda op, a: numerics.log_softmax(a[0], op.axis.value.data),
    nn.LayerNormOp: lambda op, a: numerics.layer_norm(
        *a, op.axis.value.data, op.epsilon.value.data),
    nn.BatchNormOp: lambda op, a: numerics.batch_norm(
        *a, op.epsilon.value.data, is_set(op.training)),
    nn.GroupNormOp: lambda op, a: numerics.group_norm(
        *a, op.groups.value.data, op.epsilon.value.data),
    nn.AttentionOp: lambda op, a: numerics.attention(
        *a[:5], a[5:9] if len(a) == 9 else None, op.heads.value.data,
        op.scale.value.data),
    nn.MaxPool2dOp: lambda op, a: numerics.max_pool2d(
        a[0], op.kernel.get_values(), op.stride.get_values(), op.padding.get_values(),
        op.dilation.get_values(), is_set(op.ceil_mode)),
    nn.AvgPool2dOp: lambda op, a: numerics.avg_pool2d(
        a[0], op.kernel.get_values(), op.stride.get_values(), op.padding.get_values(),
        is_set(op.ceil_mode), is_set(op.count_include_pad)),
    nn.GlobalAvgPoolOp: lambda op, a: np.mean(
        a[0], axis=tuple(range(2, a[0].ndim)), keepdims=True),
    nn.ReshapeOp: _reshaped,
    nn.SqueezeOp: _reshaped,
    nn.UnsqueezeOp: _reshaped,
    nn.BroadcastToOp: lambda op, a: np.broadcast_to(a[0], result_shape(op)).copy(),
    nn.PadOp: lambda op, a: numerics.pad(a[0], op.pads.get_values(), op.value.value.data),
    nn.TransposeOp: lambda op, a: np.transpose(a[0], op.perm.get_values()),
    nn.ConcatOp: lambda op, a: np.concatenate(a, axis=op.axis.value.data),
    nn.SliceOp: lambda op, a: numerics.slice_(
        a[0], op.starts.get_values(), op.ends.get_values(), op.steps.get_values()),
    nn.GatherOp: lambda op, a: numerics.gather(
        a[0], op.indices.get_values(), op.axis.value.data),
    nn.ReduceMeanOp: lambda op, a: np.mean(
        a[0], axis=op.axes.get_values(), keepdims=is_set(op.keepdims)),
    nn.ReduceSumOp: lambda op, a: np.sum(
        a[0], axis=op.axes.get_values(), keepdims=is_set(op.keepdims)),
    **{
        op_type: lambda op, a: op.ROW.forward(a[0], **op.values())
        for op_type in elementwise.UNARY_OPS
    },
    **{
        op_type: lambda op, a: op.ROW.forward(a[0], a[1])
        for op_type in elementwise.BINARY_OPS
    },
}
"""The semantics of every `nn` op that computes from its operands (`nn.load` reads the
parameter state; `nn.param` is a declaration)."""


class NnFunctions(InterpreterFunctions):
    """`nn.load`, and an `@impl` per entry of `SEMANTICS` (added below)."""

    @impl(nn.LoadOp)
    def run_load(self, interpreter: Interpreter, op: nn.LoadOp, args: tuple):
        name = op.param.string_value()
        state = param_state(interpreter)
        if name not in state:
            param = interpreter.get_op_for_symbol(op.param)
            assert isinstance(param, nn.ParamOp)
            interpreter.interpreter_assert(
                param.value is not None,
                f"parameter @{name} has no value: load the model's .npz or pass it "
                "in params",
            )
            assert param.value is not None
            state[name] = to_numpy(param.value)
        return typed_results(op, (state[name],))


register_semantics(NnFunctions, SEMANTICS)
