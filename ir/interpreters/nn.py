"""Interpreter semantics of the `nn` dialect: one `@impl` per op, each a thin wrapper
that reads the op's attributes and calls `edge_opt.support.numerics`.

Values are NumPy arrays. Parameter values come from the interpreter's parameter state
(`ParamState`, set up by `edge_opt.ir.session`), falling back to the `nn.param`'s inline
value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Operation

from edge_opt.dialects import nn
from edge_opt.support import numerics
from edge_opt.support.dtypes import numpy_dtype, to_numpy


class ParamState(dict[str, np.ndarray]):
    """Current parameter values by name, owned by a `Session`."""


def param_state(interpreter: Interpreter) -> ParamState:
    return interpreter.get_data(NnFunctions, "params", ParamState)


def _result(op: Operation, value: Any) -> tuple[np.ndarray]:
    """Cast to the result's element type: NumPy promotes scalars and mixed dtypes."""
    result_type = op.results[0].type
    assert isinstance(result_type, TensorType)
    array = np.asarray(value, dtype=numpy_dtype(result_type.element_type))
    assert array.shape == tuple(result_type.get_shape()), (
        f"{op.name}: interpreter produced shape {array.shape}, type says "
        f"{result_type}"
    )
    return (array,)


def _unary(f: Callable[[np.ndarray], np.ndarray]):
    def run(self: NnFunctions, interpreter: Interpreter, op: Operation, args: tuple):
        return _result(op, f(args[0]))

    return run


def _binary(f: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def run(self: NnFunctions, interpreter: Interpreter, op: Operation, args: tuple):
        return _result(op, f(args[0], args[1]))

    return run


def _to_result_shape(
    self: NnFunctions, interpreter: Interpreter, op: Operation, args: tuple
):
    result_type = op.results[0].type
    assert isinstance(result_type, TensorType)
    return _result(op, np.reshape(args[0], result_type.get_shape()))


@register_impls
class NnFunctions(InterpreterFunctions):
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
        return _result(op, state[name])

    @impl(nn.ConstantOp)
    def run_constant(self, interpreter: Interpreter, op: nn.ConstantOp, args: tuple):
        return (np.array(op.array()),)

    run_relu = impl(nn.ReluOp)(_unary(lambda x: np.maximum(x, 0)))
    run_sigmoid = impl(nn.SigmoidOp)(_unary(numerics.sigmoid))
    run_tanh = impl(nn.TanhOp)(_unary(np.tanh))
    run_silu = impl(nn.SiluOp)(_unary(lambda x: x * numerics.sigmoid(x)))
    run_hardswish = impl(nn.HardswishOp)(_unary(numerics.hardswish))
    run_erf = impl(nn.ErfOp)(_unary(numerics.erf))
    run_sqrt = impl(nn.SqrtOp)(_unary(np.sqrt))
    run_exp = impl(nn.ExpOp)(_unary(np.exp))
    run_log = impl(nn.LogOp)(_unary(np.log))
    run_neg = impl(nn.NegOp)(_unary(np.negative))

    run_ceil = impl(nn.CeilOp)(_unary(np.ceil))
    run_floor = impl(nn.FloorOp)(_unary(np.floor))
    run_round = impl(nn.RoundOp)(_unary(np.round))

    @impl(nn.ClipOp)
    def run_clip(self, interpreter: Interpreter, op: nn.ClipOp, args: tuple):
        return _result(op, numerics.clip(args[0], *op.bounds()))

    @impl(nn.HardsigmoidOp)
    def run_hardsigmoid(self, interpreter: Interpreter, op: nn.HardsigmoidOp, args):
        return _result(op, numerics.hardsigmoid(args[0], **op.scalars()))

    @impl(nn.EluOp)
    def run_elu(self, interpreter: Interpreter, op: nn.EluOp, args: tuple):
        return _result(op, numerics.elu(args[0], **op.scalars()))

    @impl(nn.LeakyReluOp)
    def run_leaky_relu(self, interpreter: Interpreter, op: nn.LeakyReluOp, args):
        return _result(op, numerics.leaky_relu(args[0], **op.scalars()))

    @impl(nn.GeluOp)
    def run_gelu(self, interpreter: Interpreter, op: nn.GeluOp, args: tuple):
        return _result(op, numerics.gelu(args[0], op.approximate.data))

    run_add = impl(nn.AddOp)(_binary(np.add))
    run_sub = impl(nn.SubOp)(_binary(np.subtract))
    run_mul = impl(nn.MulOp)(_binary(np.multiply))
    run_div = impl(nn.DivOp)(_binary(np.divide))
    run_pow = impl(nn.PowOp)(_binary(np.power))

    @impl(nn.LinearOp)
    def run_linear(self, interpreter: Interpreter, op: nn.LinearOp, args: tuple):
        bias = args[2] if len(args) > 2 else None
        return _result(op, numerics.linear(args[0], args[1], bias))

    @impl(nn.MatmulOp)
    def run_matmul(self, interpreter: Interpreter, op: nn.MatmulOp, args: tuple):
        return _result(
            op,
            numerics.matmul(
                args[0],
                args[1],
                op.transpose_lhs is not None,
                op.transpose_rhs is not None,
            ),
        )

    @impl(nn.Conv2dOp)
    def run_conv2d(self, interpreter: Interpreter, op: nn.Conv2dOp, args: tuple):
        return _result(
            op,
            numerics.conv2d(
                args[0],
                args[1],
                args[2] if len(args) > 2 else None,
                op.stride.get_values(),
                op.padding.get_values(),
                op.dilation.get_values(),
                op.groups.value.data,
            ),
        )

    @impl(nn.ConvTranspose2dOp)
    def run_conv_transpose2d(
        self, interpreter: Interpreter, op: nn.ConvTranspose2dOp, args: tuple
    ):
        return _result(
            op,
            numerics.conv_transpose2d(
                args[0],
                args[1],
                args[2] if len(args) > 2 else None,
                op.stride.get_values(),
                op.padding.get_values(),
                op.output_padding.get_values(),
                op.dilation.get_values(),
                op.groups.value.data,
            ),
        )

    @impl(nn.SoftmaxOp)
    def run_softmax(self, interpreter: Interpreter, op: nn.SoftmaxOp, args: tuple):
        return _result(op, numerics.softmax(args[0], op.axis.value.data))

    @impl(nn.LogSoftmaxOp)
    def run_log_softmax(
        self, interpreter: Interpreter, op: nn.LogSoftmaxOp, args: tuple
    ):
        return _result(op, numerics.log_softmax(args[0], op.axis.value.data))

    @impl(nn.LayerNormOp)
    def run_layer_norm(self, interpreter: Interpreter, op: nn.LayerNormOp, args: tuple):
        return _result(
            op,
            numerics.layer_norm(
                *args, op.axis.value.data, op.epsilon.value.data
            ),
        )

    @impl(nn.BatchNormOp)
    def run_batch_norm(self, interpreter: Interpreter, op: nn.BatchNormOp, args: tuple):
        return _result(
            op,
            numerics.batch_norm(
                *args, op.epsilon.value.data, op.training is not None
            ),
        )

    @impl(nn.GroupNormOp)
    def run_group_norm(self, interpreter: Interpreter, op: nn.GroupNormOp, args: tuple):
        return _result(
            op,
            numerics.group_norm(
                *args, op.groups.value.data, op.epsilon.value.data
            ),
        )

    @impl(nn.AttentionOp)
    def run_attention(self, interpreter: Interpreter, op: nn.AttentionOp, args: tuple):
        return _result(
            op,
            numerics.attention(
                *args[:5],
                args[5:9] if len(args) == 9 else None,
                op.heads.value.data,
                op.scale.value.data,
            ),
        )

    @impl(nn.MaxPool2dOp)
    def run_max_pool2d(self, interpreter: Interpreter, op: nn.MaxPool2dOp, args: tuple):
        return _result(
            op,
            numerics.max_pool2d(
                args[0],
                op.kernel.get_values(),
                op.stride.get_values(),
                op.padding.get_values(),
                op.dilation.get_values(),
                op.ceil_mode is not None,
            ),
        )

    @impl(nn.AvgPool2dOp)
    def run_avg_pool2d(self, interpreter: Interpreter, op: nn.AvgPool2dOp, args: tuple):
        return _result(
            op,
            numerics.avg_pool2d(
                args[0],
                op.kernel.get_values(),
                op.stride.get_values(),
                op.padding.get_values(),
                op.ceil_mode is not None,
                op.count_include_pad is not None,
            ),
        )

    @impl(nn.GlobalAvgPoolOp)
    def run_global_avg_pool(
        self, interpreter: Interpreter, op: nn.GlobalAvgPoolOp, args: tuple
    ):
        x = args[0]
        return _result(op, np.mean(x, axis=tuple(range(2, x.ndim)), keepdims=True))

    run_reshape = impl(nn.ReshapeOp)(_to_result_shape)
    run_broadcast_to = impl(nn.BroadcastToOp)(
        lambda self, interpreter, op, args: _result(
            op, np.broadcast_to(args[0], op.result.type.get_shape()).copy()
        )
    )

    @impl(nn.PadOp)
    def run_pad(self, interpreter: Interpreter, op: nn.PadOp, args: tuple):
        pads, value = op.pads.get_values(), op.value.value.data
        return _result(op, numerics.pad(args[0], pads, value))

    run_squeeze = impl(nn.SqueezeOp)(_to_result_shape)
    run_unsqueeze = impl(nn.UnsqueezeOp)(_to_result_shape)

    @impl(nn.TransposeOp)
    def run_transpose(self, interpreter: Interpreter, op: nn.TransposeOp, args: tuple):
        return _result(op, np.transpose(args[0], op.perm.get_values()))

    @impl(nn.ConcatOp)
    def run_concat(self, interpreter: Interpreter, op: nn.ConcatOp, args: tuple):
        return _result(op, np.concatenate(args, axis=op.axis.value.data))

    @impl(nn.SliceOp)
    def run_slice(self, interpreter: Interpreter, op: nn.SliceOp, args: tuple):
        return _result(
            op,
            numerics.slice_(
                args[0],
                op.starts.get_values(),
                op.ends.get_values(),
                op.steps.get_values(),
            ),
        )

    @impl(nn.GatherOp)
    def run_gather(self, interpreter: Interpreter, op: nn.GatherOp, args: tuple):
        return _result(
            op, numerics.gather(args[0], op.indices.get_values(), op.axis.value.data)
        )

    @impl(nn.ReduceMeanOp)
    def run_reduce_mean(
        self, interpreter: Interpreter, op: nn.ReduceMeanOp, args: tuple
    ):
        return _result(
            op,
            np.mean(
                args[0], axis=op.axes.get_values(), keepdims=op.keepdims is not None
            ),
        )

    @impl(nn.ReduceSumOp)
    def run_reduce_sum(self, interpreter: Interpreter, op: nn.ReduceSumOp, args: tuple):
        return _result(
            op,
            np.sum(
                args[0], axis=op.axes.get_values(), keepdims=op.keepdims is not None
            ),
        )
