"""Reverse-mode gradient rules, one per `nn` op, used by the `autodiff` pass.

A rule receives the op (in the function being differentiated), the gradient `dy` of its
result and which operands need a gradient, and emits the ops that compute those
gradients, returning one value (or None) per operand. Each rule reads only the forward
values its gradient needs: a relu's backward reads its output, a linear layer's weight
gradient reads its input only if the weight trains, a max-pool reads the index mask that
`train.max_pool2d_with_indices` produced instead of its input.

Rules build ops with the `nn`/`train` builders through `GradientBuilder.emit`, which
appends them to the backward pass in order.

A parameter updated only at some output channels (`edge_opt.ir.channels`) gets its
gradient for those alone: the linear and convolution rules gather `dy` to those channels
before the weight-gradient op, whose result then has the restricted shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Block, Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn, train
from edge_opt.ir.channels import ChannelRestriction
from edge_opt.passes.lower_attention import concat, head_block, query_blocks
from edge_opt.support import shapes
from edge_opt.support.dtypes import numpy_dtype, to_dense

Grads = list[SSAValue | None]
Rule = Callable[["GradientBuilder", Operation, SSAValue, Sequence[bool]], Grads]

RULES: dict[type[Operation], Rule] = {}


def rule(*op_types: type[Operation]) -> Callable[[Rule], Rule]:
    def register(f: Rule) -> Rule:
        for op_type in op_types:
            RULES[op_type] = f
        return f

    return register


def _type(value: SSAValue) -> TensorType:
    assert isinstance(value.type, TensorType)
    return value.type


def _shape(value: SSAValue) -> tuple[int, ...]:
    return _type(value).get_shape()


@dataclass
class GradientBuilder:
    """Appends backward ops to `block`; helpers for the common gradient plumbing.

    `restricted` maps the values of channel-restricted parameters (their `nn.load`s) to
    the channels whose gradient is wanted."""

    block: Block
    restricted: dict[SSAValue, ChannelRestriction] = field(default_factory=dict)
    _gathered: dict[tuple[SSAValue, tuple[int, ...], int], SSAValue] = field(
        default_factory=dict
    )

    def emit(self, op: Operation) -> SSAValue:
        self.block.add_op(op)
        return op.results[0]

    def constant(self, value: float, like: SSAValue) -> SSAValue:
        element = _type(like).element_type
        array = np.asarray(value, dtype=numpy_dtype(element))
        return self.emit(nn.ConstantOp(to_dense(array, TensorType(element, ()))))

    def scale(self, value: SSAValue, factor: float) -> SSAValue:
        return self.emit(nn.MulOp(value, self.constant(factor, value)))

    def reduce_to(self, grad: SSAValue, shape: Sequence[int]) -> SSAValue:
        """Sums `grad` over the axes along which an operand of `shape` was broadcast."""
        axes = shapes.broadcast_axes(shape, _shape(grad))
        if not axes:
            return grad
        summed = self.emit(nn.ReduceSumOp(grad, axes, keepdims=True))
        if _shape(summed) == tuple(shape):
            return summed
        return self.emit(nn.ReshapeOp(summed, shape))

    def expand_to(self, grad: SSAValue, keep_shape: Sequence[int],
                  shape: Sequence[int]) -> SSAValue:
        """Broadcasts a reduced gradient back: reshape to the keepdims shape, then to
        `shape`."""
        if _shape(grad) != tuple(keep_shape):
            grad = self.emit(nn.ReshapeOp(grad, keep_shape))
        return self.emit(nn.BroadcastToOp(grad, shape))

    def sum_over(self, grad: SSAValue, axes: Sequence[int]) -> SSAValue:
        return self.emit(nn.ReduceSumOp(grad, axes)) if axes else grad

    def zeros(self, type: TensorType) -> SSAValue:
        array = np.zeros(type.get_shape(), numpy_dtype(type.element_type))
        return self.emit(nn.ConstantOp(to_dense(array, type)))

    def channels_of(self, dy: SSAValue, param: SSAValue | None, axis: int) -> SSAValue:
        """`dy`, or its slices along `axis` (its output-channel axis) at the channels
        `param`'s update is restricted to; one gather per `dy` and channel set, shared
        by a weight and its bias."""
        restriction = self.restricted.get(param) if param is not None else None
        if restriction is None:
            return dy
        key = (dy, restriction.channels, axis)
        if key not in self._gathered:
            gathered = self.emit(nn.GatherOp(dy, restriction.channels, axis))
            if dy.name_hint is not None:
                gathered.name_hint = f"{dy.name_hint}_channels"
            self._gathered[key] = gathered
        return self._gathered[key]


# --------------------------------------------------------------------------------------
# Element-wise
# --------------------------------------------------------------------------------------


def _unary(grad_op: type[train.ElementwiseGradOp], saved: str) -> Rule:
    """`dx = grad_op(dy, y)` (saved = "output") or `grad_op(dy, x)` ("input")."""
    def vjp(b: GradientBuilder, op: Operation, dy: SSAValue, needs: Sequence[bool]):
        value = op.results[0] if saved == "output" else op.operands[0]
        return [b.emit(grad_op(dy, value))]

    return vjp


for _op, _grad, _saved in (
    (nn.ReluOp, train.ReluGradOp, "output"),
    (nn.SigmoidOp, train.SigmoidGradOp, "output"),
    (nn.TanhOp, train.TanhGradOp, "output"),
    (nn.SiluOp, train.SiluGradOp, "input"),
    (nn.HardswishOp, train.HardswishGradOp, "input"),
    (nn.ErfOp, train.ErfGradOp, "input"),
):
    RULES[_op] = _unary(_grad, _saved)


@rule(nn.GeluOp)
def _gelu(b: GradientBuilder, op: nn.GeluOp, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(train.GeluGradOp(dy, op.input, op.approximate.data))]


def _value(attr) -> float | None:
    return None if attr is None else attr.value.data


@rule(nn.ClipOp)
def _clip(b: GradientBuilder, op: nn.ClipOp, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(train.ClipGradOp(dy, op.result, _value(op.min), _value(op.max)))]


@rule(nn.HardsigmoidOp)
def _hardsigmoid(b: GradientBuilder, op: nn.HardsigmoidOp, dy: SSAValue,
                 needs: Sequence[bool]):
    return [b.emit(train.HardsigmoidGradOp(dy, op.result, op.alpha.value.data))]


@rule(nn.EluOp)
def _elu(b: GradientBuilder, op: nn.EluOp, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(train.EluGradOp(dy, op.input, op.alpha.value.data))]


@rule(nn.LeakyReluOp)
def _leaky_relu(b: GradientBuilder, op: nn.LeakyReluOp, dy: SSAValue,
                needs: Sequence[bool]):
    return [b.emit(train.LeakyReluGradOp(dy, op.input, op.alpha.value.data))]


@rule(nn.CeilOp, nn.FloorOp, nn.RoundOp)
def _piecewise_constant(b: GradientBuilder, op: Operation, dy: SSAValue,
                        needs: Sequence[bool]) -> Grads:
    """Rounding is flat almost everywhere: a gradient through it would be zero (PyTorch
    gives zeros), which silently stops training whatever lies before it. Refuse."""
    raise PassFailedException(
        f"autodiff: {op.name} (result %{op.results[0].name_hint or '?'}) has no "
        "gradient (it is piecewise constant), but a trainable parameter's gradient "
        "would have to flow through it; freeze the parameters it depends on "
        "(freeze{frozen=REGEX}, train-last, ...)"
    )


@rule(nn.SqrtOp)
def _sqrt(b: GradientBuilder, op: nn.SqrtOp, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(nn.DivOp(b.scale(dy, 0.5), op.result))]


@rule(nn.ExpOp)
def _exp(b: GradientBuilder, op: nn.ExpOp, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(nn.MulOp(dy, op.result))]


@rule(nn.LogOp)
def _log(b: GradientBuilder, op: nn.LogOp, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(nn.DivOp(dy, op.input))]


@rule(nn.NegOp)
def _neg(b: GradientBuilder, op: nn.NegOp, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(nn.NegOp(dy))]


@rule(nn.AddOp)
def _add(b: GradientBuilder, op: nn.AddOp, dy: SSAValue, needs: Sequence[bool]):
    return [
        b.reduce_to(dy, _shape(op.lhs)) if needs[0] else None,
        b.reduce_to(dy, _shape(op.rhs)) if needs[1] else None,
    ]


@rule(nn.SubOp)
def _sub(b: GradientBuilder, op: nn.SubOp, dy: SSAValue, needs: Sequence[bool]):
    return [
        b.reduce_to(dy, _shape(op.lhs)) if needs[0] else None,
        b.reduce_to(b.emit(nn.NegOp(dy)), _shape(op.rhs)) if needs[1] else None,
    ]


@rule(nn.MulOp)
def _mul(b: GradientBuilder, op: nn.MulOp, dy: SSAValue, needs: Sequence[bool]):
    return [
        b.reduce_to(b.emit(nn.MulOp(dy, op.rhs)), _shape(op.lhs)) if needs[0] else None,
        b.reduce_to(b.emit(nn.MulOp(dy, op.lhs)), _shape(op.rhs)) if needs[1] else None,
    ]


@rule(nn.DivOp)
def _div(b: GradientBuilder, op: nn.DivOp, dy: SSAValue, needs: Sequence[bool]):
    d_lhs = d_rhs = None
    if needs[0]:
        d_lhs = b.reduce_to(b.emit(nn.DivOp(dy, op.rhs)), _shape(op.lhs))
    if needs[1]:
        # d(l/r)/dr = -(l/r)/r = -result/r
        ratio = b.emit(nn.DivOp(b.emit(nn.MulOp(dy, op.result)), op.rhs))
        d_rhs = b.reduce_to(b.emit(nn.NegOp(ratio)), _shape(op.rhs))
    return [d_lhs, d_rhs]


@rule(nn.PowOp)
def _pow(b: GradientBuilder, op: nn.PowOp, dy: SSAValue, needs: Sequence[bool]):
    d_lhs = d_rhs = None
    if needs[0]:
        exponent = b.emit(nn.SubOp(op.rhs, b.constant(1.0, op.rhs)))
        slope = b.emit(nn.MulOp(op.rhs, b.emit(nn.PowOp(op.lhs, exponent))))
        d_lhs = b.reduce_to(b.emit(nn.MulOp(dy, slope)), _shape(op.lhs))
    if needs[1]:
        slope = b.emit(nn.MulOp(op.result, b.emit(nn.LogOp(op.lhs))))
        d_rhs = b.reduce_to(b.emit(nn.MulOp(dy, slope)), _shape(op.rhs))
    return [d_lhs, d_rhs]


@rule(nn.SoftmaxOp)
def _softmax(b: GradientBuilder, op: nn.SoftmaxOp, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(train.SoftmaxGradOp(dy, op.result, op.axis.value.data))]


@rule(nn.LogSoftmaxOp)
def _log_softmax(b: GradientBuilder, op: nn.LogSoftmaxOp, dy: SSAValue,
                 needs: Sequence[bool]):
    return [b.emit(train.LogSoftmaxGradOp(dy, op.result, op.axis.value.data))]


# --------------------------------------------------------------------------------------
# Linear algebra and convolutions
# --------------------------------------------------------------------------------------


@rule(nn.LinearOp)
def _linear(b: GradientBuilder, op: nn.LinearOp, dy: SSAValue, needs: Sequence[bool]):
    out = len(_shape(dy)) - 1
    grads: Grads = [
        b.emit(train.LinearGradInputOp(dy, op.weight)) if needs[0] else None,
        b.emit(train.LinearGradWeightOp(b.channels_of(dy, op.weight, out), op.input))
        if needs[1] else None,
    ]
    if op.bias is not None:
        leading = tuple(range(out))
        grads.append(
            b.sum_over(b.channels_of(dy, op.bias, out), leading) if needs[2] else None
        )
    return grads


@rule(nn.MatmulOp)
def _matmul(b: GradientBuilder, op: nn.MatmulOp, dy: SSAValue, needs: Sequence[bool]):
    ta, tb = op.transpose_lhs is not None, op.transpose_rhs is not None
    d_lhs = d_rhs = None
    if needs[0]:
        if ta:
            full = nn.MatmulOp(op.rhs, dy, transpose_lhs=tb, transpose_rhs=True)
        else:
            full = nn.MatmulOp(dy, op.rhs, transpose_rhs=not tb)
        d_lhs = b.reduce_to(b.emit(full), _shape(op.lhs))
    if needs[1]:
        if tb:
            full = nn.MatmulOp(dy, op.lhs, transpose_lhs=True, transpose_rhs=ta)
        else:
            full = nn.MatmulOp(op.lhs, dy, transpose_lhs=not ta)
        d_rhs = b.reduce_to(b.emit(full), _shape(op.rhs))
    return [d_lhs, d_rhs]


def _conv_attrs(op: nn._ConvLikeOp) -> dict[str, object]:
    attrs: dict[str, object] = {
        "stride": op.stride.get_values(),
        "padding": op.padding.get_values(),
        "dilation": op.dilation.get_values(),
        "groups": op.groups.value.data,
    }
    if isinstance(op, nn.ConvTranspose2dOp):
        attrs["output_padding"] = op.output_padding.get_values()
    return attrs


@rule(nn.Conv2dOp, nn.ConvTranspose2dOp)
def _conv(b: GradientBuilder, op: nn._ConvLikeOp, dy: SSAValue, needs: Sequence[bool]):
    attrs = _conv_attrs(op)
    if isinstance(op, nn.Conv2dOp):
        grad_input, grad_weight = train.Conv2dGradInputOp, train.Conv2dGradWeightOp
    else:
        grad_input = train.ConvTranspose2dGradInputOp
        grad_weight = train.ConvTranspose2dGradWeightOp
    weight_type = _type(op.weight)
    restriction = b.restricted.get(op.weight)
    if restriction is not None:  # `autodiff` allows it for nn.conv2d, groups = 1
        weight_type = restriction.restrict(weight_type)
    grads: Grads = [
        b.emit(grad_input(dy, op.weight, _type(op.input), **attrs)) if needs[0] else None,
        b.emit(grad_weight(b.channels_of(dy, op.weight, 1), op.input, weight_type,
                           **attrs))
        if needs[1] else None,
    ]
    if op.bias is not None:
        grads.append(
            b.sum_over(b.channels_of(dy, op.bias, 1), (0, 2, 3)) if needs[2] else None
        )
    return grads


# --------------------------------------------------------------------------------------
# Normalisations
# --------------------------------------------------------------------------------------


@rule(nn.LayerNormOp)
def _layer_norm(b: GradientBuilder, op: nn.LayerNormOp, dy: SSAValue,
                needs: Sequence[bool]):
    axis, eps = op.axis.value.data, op.epsilon.value.data
    leading = tuple(range(shapes.normalize_axis(axis, len(_shape(dy)))))
    return [
        b.emit(train.LayerNormGradInputOp(dy, op.input, op.scale, axis, eps))
        if needs[0] else None,
        b.emit(train.LayerNormGradScaleOp(dy, op.input, axis, eps)) if needs[1] else None,
        b.sum_over(dy, leading) if needs[2] else None,
    ]


def _channel_axes(value: SSAValue) -> tuple[int, ...]:
    return (0, *range(2, len(_shape(value))))


@rule(nn.BatchNormOp)
def _batch_norm(b: GradientBuilder, op: nn.BatchNormOp, dy: SSAValue,
                needs: Sequence[bool]):
    eps, training = op.epsilon.value.data, op.training is not None
    grads: Grads = [
        b.emit(train.BatchNormGradInputOp(
            dy, op.input, op.scale, op.mean, op.var, eps, training))
        if needs[0] else None,
        b.emit(train.BatchNormGradScaleOp(dy, op.input, op.mean, op.var, eps, training))
        if needs[1] else None,
        b.sum_over(dy, _channel_axes(dy)) if needs[2] else None,
        None,
        None,
    ]
    if not training and (needs[3] or needs[4]):
        grads[3], grads[4] = _batch_norm_statistics_grads(b, op, dy, needs)
    # In training mode the output does not depend on the mean/var operands.
    return grads


def _batch_norm_statistics_grads(
    b: GradientBuilder, op: nn.BatchNormOp, dy: SSAValue, needs: Sequence[bool]
) -> tuple[SSAValue | None, SSAValue | None]:
    """Inference mode, y = (x - mean) * scale * (var + eps)^-1/2 + bias:
    dmean = -sum(dy) * scale * rstd, dvar = -1/2 * sum(dy * (x - mean)) * scale * rstd^3."""
    rank = len(_shape(dy))
    channels = _shape(op.mean)
    keep = (1, channels[0]) + (1,) * (rank - 2)
    axes = _channel_axes(dy)
    var_eps = b.emit(nn.AddOp(op.var, b.constant(op.epsilon.value.data, op.var)))
    rstd = b.emit(nn.DivOp(b.constant(1.0, op.var), b.emit(nn.SqrtOp(var_eps))))
    scaled = b.emit(nn.MulOp(op.scale, rstd))
    d_mean = d_var = None
    if needs[3]:
        d_mean = b.emit(nn.NegOp(b.emit(nn.MulOp(b.sum_over(dy, axes), scaled))))
    if needs[4]:
        centered = b.emit(nn.SubOp(op.input, b.emit(nn.ReshapeOp(op.mean, keep))))
        total = b.sum_over(b.emit(nn.MulOp(dy, centered)), axes)
        cube = b.emit(nn.MulOp(scaled, b.emit(nn.MulOp(rstd, rstd))))
        d_var = b.scale(b.emit(nn.MulOp(total, cube)), -0.5)
    return d_mean, d_var


@rule(nn.GroupNormOp)
def _group_norm(b: GradientBuilder, op: nn.GroupNormOp, dy: SSAValue,
                needs: Sequence[bool]):
    groups, eps = op.groups.value.data, op.epsilon.value.data
    return [
        b.emit(train.GroupNormGradInputOp(dy, op.input, op.scale, groups, eps))
        if needs[0] else None,
        b.emit(train.GroupNormGradScaleOp(dy, op.input, groups, eps)) if needs[1] else None,
        b.sum_over(dy, _channel_axes(dy)) if needs[2] else None,
    ]


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------


def _pool_attrs(op: nn._Pool2dOp | train._PoolAttrsOp) -> dict[str, object]:
    return {
        "kernel": op.kernel.get_values(),
        "stride": op.stride.get_values(),
        "padding": op.padding.get_values(),
        "ceil_mode": op.ceil_mode is not None,
    }


@rule(train.MaxPool2dWithIndicesOp)
def _max_pool(b: GradientBuilder, op: train.MaxPool2dWithIndicesOp, dy: SSAValue,
              needs: Sequence[bool]):
    """The autodiff pass runs a differentiated `nn.max_pool2d` as this op, so that the
    backward reads its index mask rather than keeping the input alive."""
    return [
        b.emit(train.MaxPool2dGradOp(
            dy, op.indices, _type(op.input), dilation=op.dilation.get_values(),
            **_pool_attrs(op)))
    ]


@rule(nn.AvgPool2dOp)
def _avg_pool(b: GradientBuilder, op: nn.AvgPool2dOp, dy: SSAValue,
              needs: Sequence[bool]):
    return [
        b.emit(train.AvgPool2dGradOp(
            dy, _type(op.input), count_include_pad=op.count_include_pad is not None,
            **_pool_attrs(op)))
    ]


@rule(nn.GlobalAvgPoolOp)
def _global_avg_pool(b: GradientBuilder, op: nn.GlobalAvgPoolOp, dy: SSAValue,
                     needs: Sequence[bool]):
    shape = _shape(op.input)
    spread = b.emit(nn.BroadcastToOp(dy, shape))
    return [b.scale(spread, 1.0 / math.prod(shape[2:]))]


# --------------------------------------------------------------------------------------
# Shape ops and reductions
# --------------------------------------------------------------------------------------


@rule(nn.ReshapeOp, nn.SqueezeOp, nn.UnsqueezeOp)
def _reshape(b: GradientBuilder, op: Operation, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(nn.ReshapeOp(dy, _shape(op.operands[0])))]


@rule(nn.GatherOp)
def _gather(b: GradientBuilder, op: nn.GatherOp, dy: SSAValue, needs: Sequence[bool]):
    """`dy`'s slices scattered into zeros of the input's type at the gathered indices.
    An index gathered several times receives the sum of its slices: the positions of
    `dy` are split into rounds (the r-th occurrence of every index), each round has
    unique indices and is one `train.scatter` into zeros, and the rounds are added."""
    indices = op.indices.get_values()
    axis = shapes.normalize_axis(op.axis.value.data, len(_shape(op.input)))
    rounds: list[list[int]] = []
    seen: dict[int, int] = {}
    for position, index in enumerate(indices):
        occurrence = seen.get(index, 0)
        seen[index] = occurrence + 1
        if occurrence == len(rounds):
            rounds.append([])
        rounds[occurrence].append(position)
    zeros = b.zeros(_type(op.input))
    total: SSAValue | None = None
    for positions in rounds:
        part = (
            dy if len(positions) == len(indices)
            else b.emit(nn.GatherOp(dy, positions, axis))
        )
        scattered = b.emit(
            train.ScatterOp(zeros, part, [indices[p] for p in positions], axis)
        )
        total = scattered if total is None else b.emit(nn.AddOp(total, scattered))
    return [total]


@rule(nn.BroadcastToOp)
def _broadcast_to(b: GradientBuilder, op: nn.BroadcastToOp, dy: SSAValue,
                  needs: Sequence[bool]):
    return [b.reduce_to(dy, _shape(op.input))]


@rule(nn.PadOp)
def _pad(b: GradientBuilder, op: nn.PadOp, dy: SSAValue, needs: Sequence[bool]):
    """The gradient of the padded positions is dropped: `dy` cropped back."""
    shape, pads = _shape(op.input), op.pads.get_values()
    begins = pads[: len(shape)]
    ends = [begin + size for begin, size in zip(begins, shape)]
    return [b.emit(nn.SliceOp(dy, begins, ends))]


@rule(nn.TransposeOp)
def _transpose(b: GradientBuilder, op: nn.TransposeOp, dy: SSAValue,
               needs: Sequence[bool]):
    perm = op.perm.get_values()
    inverse = [perm.index(i) for i in range(len(perm))]
    return [b.emit(nn.TransposeOp(dy, inverse))]


@rule(nn.ConcatOp)
def _concat(b: GradientBuilder, op: nn.ConcatOp, dy: SSAValue, needs: Sequence[bool]):
    shape = _shape(dy)
    axis = shapes.normalize_axis(op.axis.value.data, len(shape))
    grads: Grads = []
    offset = 0
    for operand, need in zip(op.inputs, needs, strict=True):
        size = _shape(operand)[axis]
        if need:
            starts = [offset if a == axis else 0 for a in range(len(shape))]
            ends = [offset + size if a == axis else d for a, d in enumerate(shape)]
            grads.append(b.emit(nn.SliceOp(dy, starts, ends)))
        else:
            grads.append(None)
        offset += size
    return grads


@rule(nn.SliceOp)
def _slice(b: GradientBuilder, op: nn.SliceOp, dy: SSAValue, needs: Sequence[bool]):
    return [
        b.emit(train.SliceGradOp(
            dy, _type(op.input), op.starts.get_values(), op.ends.get_values(),
            op.steps.get_values()))
    ]


def _reduce(b: GradientBuilder, op: nn._ReduceOp, dy: SSAValue, mean: bool) -> SSAValue:
    shape = _shape(op.input)
    axes = shapes.normalize_axes(op.axes.get_values(), len(shape))
    keep = [1 if a in axes else d for a, d in enumerate(shape)]
    spread = b.expand_to(dy, keep, shape)
    if mean:
        spread = b.scale(spread, 1.0 / math.prod(shape[a] for a in axes))
    return spread


@rule(nn.ReduceSumOp)
def _reduce_sum(b: GradientBuilder, op: nn.ReduceSumOp, dy: SSAValue,
                needs: Sequence[bool]):
    return [_reduce(b, op, dy, mean=False)]


@rule(nn.ReduceMeanOp)
def _reduce_mean(b: GradientBuilder, op: nn.ReduceMeanOp, dy: SSAValue,
                 needs: Sequence[bool]):
    return [_reduce(b, op, dy, mean=True)]


# --------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------


def _split_heads(b: GradientBuilder, value: SSAValue, heads: int) -> SSAValue:
    """(B, S, H*d) -> (B, H, S, d), as `nn.attention` splits its projections."""
    batch, tokens, features = _shape(value)
    split = b.emit(nn.ReshapeOp(value, (batch, tokens, heads, features // heads)))
    return b.emit(nn.TransposeOp(split, (0, 2, 1, 3)))


def _merge_heads(b: GradientBuilder, value: SSAValue) -> SSAValue:
    """(B, H, S, d) -> (B, S, H*d), the inverse of `_split_heads`."""
    batch, heads, tokens, size = _shape(value)
    moved = b.emit(nn.TransposeOp(value, (0, 2, 1, 3)))
    return b.emit(nn.ReshapeOp(moved, (batch, tokens, heads * size)))


def _rows(b: GradientBuilder, value: SSAValue) -> SSAValue:
    """(B, S, F) -> (B*S, F): a view, so that a weight gradient is one matmul."""
    batch, tokens, features = _shape(value)
    return b.emit(nn.ReshapeOp(value, (batch * tokens, features)))


def _named(value: SSAValue, base: str | None, name: str) -> SSAValue:
    if base is not None:
        value.name_hint = f"{base}_{name}"
    return value


class _Wanted(NamedTuple):
    """Which of the merged heads `o` and the head gradients d_q, d_k, d_v the attention
    backward needs."""

    o: bool
    q: bool
    k: bool
    v: bool


_Core = tuple[SSAValue | None, SSAValue | None, SSAValue | None, SSAValue | None]


def _attention_core(b: GradientBuilder, q: SSAValue, k: SSAValue, v: SSAValue | None,
                    d_o: SSAValue | None, scale: float, wants: _Wanted,
                    base: str | None) -> _Core:
    """`(o, d_q, d_k, d_v)` per head (B, H, S, d) from the recomputed q, k, v, all
    heads at once (the (B, H, S, S) map exists inside the backward)."""
    scores = _named(b.emit(nn.MatmulOp(q, k, transpose_rhs=True)), base, "scores")
    a = _named(b.emit(nn.SoftmaxOp(b.scale(scores, scale), -1)), base, "probs")
    o = d_q = d_k = d_v = None
    if wants.o:
        assert v is not None
        o = b.emit(nn.MatmulOp(a, v))
    if wants.v:
        assert d_o is not None
        d_v = b.emit(nn.MatmulOp(a, d_o, transpose_lhs=True))
    if wants.q or wants.k:
        assert v is not None and d_o is not None
        d_a = _named(b.emit(nn.MatmulOp(d_o, v, transpose_rhs=True)), base, "dprobs")
        d_s = _named(b.scale(b.emit(train.SoftmaxGradOp(d_a, a, -1)), scale),
                     base, "dscores")
        if wants.q:
            d_q = b.emit(nn.MatmulOp(d_s, k))
        if wants.k:
            d_k = b.emit(nn.MatmulOp(d_s, q, transpose_lhs=True))
    return o, d_q, d_k, d_v


def _dense_attention_core(b: GradientBuilder, q: SSAValue, k: SSAValue,
                          v: SSAValue | None, d_o: SSAValue | None, heads: int,
                          scale: float, wants: _Wanted, base: str | None) -> _Core:
    """`_attention_core` of all heads at once: from the projections q, k, v and d_o
    (B, S, H*d), split into heads, to merged `(o, d_q, d_k, d_v)` (B, S, H*d)."""

    def split(value: SSAValue | None, name: str) -> SSAValue | None:
        return None if value is None else _named(_split_heads(b, value, heads), base, name)

    parts = _attention_core(b, split(q, "q"), split(k, "k"), split(v, "v"),
                            split(d_o, "d_o"), scale, wants, base)
    o, d_q, d_k, d_v = (None if p is None else _merge_heads(b, p) for p in parts)
    return o, d_q, d_k, d_v


def _blocked_attention_core(b: GradientBuilder,
                            recompute: Callable[[str], SSAValue | None],
                            d_o: SSAValue | None, heads: int, scale: float,
                            wants: _Wanted, base: str | None, rows: int) -> _Core:
    """`_dense_attention_core` one head and one block of `rows` query rows at a time
    (`nn.attention`'s `block_rows`), on column slices of the projections that
    `recompute("q" | "k" | "v")` emits (None: v is not needed): each block
    recomputes its (rows, S) scores and probabilities, adds its share to d_k and d_v
    (sums over the query rows) and writes its rows of o and d_q; nothing larger than
    one block's map exists. The heads of k and v are sliced before q is recomputed,
    so that k and v die early."""
    k, v = recompute("k"), recompute("v")
    assert k is not None
    k_heads = [head_block(b.emit, k, heads, h) for h in range(heads)]
    v_heads = [None if v is None else head_block(b.emit, v, heads, h)
               for h in range(heads)]
    q = recompute("q")
    assert q is not None
    tokens = _shape(q)[1]
    per_head: dict[str, list[SSAValue]] = {"o": [], "q": [], "k": [], "v": []}
    for head, k_head, v_head in zip(range(heads), k_heads, v_heads):
        blocks: dict[str, list[SSAValue]] = {"o": [], "q": []}
        sums: dict[str, SSAValue] = {}
        for start, stop in query_blocks(tokens, rows):
            q_block = head_block(b.emit, q, heads, head, (start, stop))
            d_o_block = (
                None if d_o is None else head_block(b.emit, d_o, heads, head, (start, stop))
            )
            tag = None if base is None else f"{base}_h{head}_r{start}"
            o, d_q, d_k, d_v = _attention_core(
                b, q_block, k_head, v_head, d_o_block, scale, wants, tag
            )
            for key, value in (("o", o), ("q", d_q)):
                if value is not None:
                    blocks[key].append(value)
            for key, value in (("k", d_k), ("v", d_v)):
                if value is not None:
                    sums[key] = (
                        value if key not in sums else b.emit(nn.AddOp(sums[key], value))
                    )
        for key, pieces in blocks.items():
            if pieces:
                per_head[key].append(concat(b.emit, pieces, 1))
        for key, value in sums.items():
            per_head[key].append(value)
    o, d_q, d_k, d_v = (
        concat(b.emit, per_head[key], 2) if per_head[key] else None
        for key in ("o", "q", "k", "v")
    )
    return o, d_q, d_k, d_v


@rule(nn.AttentionOp)
def _attention(b: GradientBuilder, op: nn.AttentionOp, dy: SSAValue,
               needs: Sequence[bool]):
    """Flash-attention style: the backward reads only the op's inputs (x, the weights
    and biases) and `dy`. It recomputes q, k, v, the probabilities `a` and the merged
    heads `o` (the op's own steps), then applies the chain rule with `nn` ops and
    `train.softmax_grad`; the S x S map exists only inside the backward, never across
    the forward/backward gap; with `block_rows` (`tile-attention-depth-first`) not even
    there: the backward runs one head and query block at a time
    (`_blocked_attention_core`). Only what the operands that need a gradient use is
    emitted (v is not recomputed for a `wq` alone, nor `o` without `wo`). With `x2` = x
    as (B*S, D) rows and `m(.)` merged heads:

        d_wo = m(o)^T @ dy,  d_bo = sum(dy),  d_o = dy @ wo^T (split into heads)
        d_a = d_o @ v^T,  d_v = a^T @ d_o
        d_s = softmax_grad(d_a, a) * scale
        d_q = d_s @ k,  d_k = d_s^T @ q
        d_wq = x2^T @ m(d_q),  d_bq = sum(m(d_q))  (likewise k, v)
        d_x = m(d_q) @ wq^T + m(d_k) @ wk^T + m(d_v) @ wv^T
    """
    x, wq, wk, wv, wo = op.x, op.wq, op.wk, op.wv, op.wo
    heads, scale = op.heads.value.data, op.scale.value.data
    biases = op.biases
    bq, bk, bv, _ = (None,) * 4 if biases is None else biases
    need_x, need_wq, need_wk, need_wv, need_wo = needs[:5]
    need_bq, need_bk, need_bv, need_bo = needs[5:9] if biases is not None else [False] * 4
    base = op.result.name_hint
    grads: Grads = [None] * len(op.operands)
    if need_bo:
        grads[8] = b.sum_over(dy, (0, 1))
    # What each part of the backward is needed for (only that much is emitted).
    need_q = need_x or need_wq or need_bq  # d_q
    need_k = need_x or need_wk or need_bk  # d_k
    need_v = need_x or need_wv or need_bv  # d_v
    need_scores = need_q or need_k  # d_a, softmax_grad
    if not (need_scores or need_v or need_wo):
        return grads

    def project(w: SSAValue, bias: SSAValue | None) -> SSAValue:
        y = b.emit(nn.MatmulOp(x, w))
        return y if bias is None else b.emit(nn.AddOp(y, bias))

    # Recompute the forward from the inputs (nothing of it was kept).
    projections = {"q": (wq, bq), "k": (wk, bk), "v": (wv, bv)}

    def recompute(name: str) -> SSAValue | None:
        if name == "v" and not (need_wo or need_scores):
            return None
        w, bias = projections[name]
        return _named(project(w, bias), base, f"{name}_proj")

    x_rows = _rows(b, x) if need_wq or need_wk or need_wv else None
    d_o = None
    if need_scores or need_v:
        d_o = b.emit(nn.MatmulOp(dy, wo, transpose_rhs=True))
    wants = _Wanted(o=need_wo, q=need_q, k=need_k, v=need_v)
    rows = op.rows_per_block
    if rows is None:
        q, k, v = recompute("q"), recompute("k"), recompute("v")
        assert q is not None and k is not None
        o, d_q, d_k, d_v = _dense_attention_core(
            b, q, k, v, d_o, heads, scale, wants, base
        )
    else:
        o, d_q, d_k, d_v = _blocked_attention_core(
            b, recompute, d_o, heads, scale, wants, base, rows
        )
    if o is not None:
        grads[4] = b.emit(nn.MatmulOp(_rows(b, o), _rows(b, dy), transpose_lhs=True))
    d_input: list[SSAValue] = []

    def weight_grads(merged: SSAValue, w: SSAValue, index: int,
                     need_w: bool, need_b: bool) -> None:
        if need_w:
            assert x_rows is not None
            grads[index] = b.emit(
                nn.MatmulOp(x_rows, _rows(b, merged), transpose_lhs=True)
            )
        if need_b:
            grads[index + 4] = b.sum_over(merged, (0, 1))
        if need_x:
            d_input.append(b.emit(nn.MatmulOp(merged, w, transpose_rhs=True)))

    if d_v is not None:
        weight_grads(d_v, wv, 3, need_wv, need_bv)
    if d_q is not None:
        weight_grads(d_q, wq, 1, need_wq, need_bq)
    if d_k is not None:
        weight_grads(d_k, wk, 2, need_wk, need_bk)
    if need_x:
        total = d_input[0]
        for more in d_input[1:]:
            total = b.emit(nn.AddOp(total, more))
        grads[0] = total
    return grads
