"""Gradient rules: element-wise."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn, train
from edge_opt.passes.gradients.builder import (
    RULES,
    GradientBuilder,
    Grads,
    Rule,
    rule,
    shape_of,
)


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
        b.reduce_to(dy, shape_of(op.lhs)) if needs[0] else None,
        b.reduce_to(dy, shape_of(op.rhs)) if needs[1] else None,
    ]


@rule(nn.SubOp)
def _sub(b: GradientBuilder, op: nn.SubOp, dy: SSAValue, needs: Sequence[bool]):
    return [
        b.reduce_to(dy, shape_of(op.lhs)) if needs[0] else None,
        b.reduce_to(b.emit(nn.NegOp(dy)), shape_of(op.rhs)) if needs[1] else None,
    ]


@rule(nn.MulOp)
def _mul(b: GradientBuilder, op: nn.MulOp, dy: SSAValue, needs: Sequence[bool]):
    return [
        b.reduce_to(b.emit(nn.MulOp(dy, op.rhs)), shape_of(op.lhs)) if needs[0] else None,
        b.reduce_to(b.emit(nn.MulOp(dy, op.lhs)), shape_of(op.rhs)) if needs[1] else None,
    ]


@rule(nn.DivOp)
def _div(b: GradientBuilder, op: nn.DivOp, dy: SSAValue, needs: Sequence[bool]):
    d_lhs = d_rhs = None
    if needs[0]:
        d_lhs = b.reduce_to(b.emit(nn.DivOp(dy, op.rhs)), shape_of(op.lhs))
    if needs[1]:
        # d(l/r)/dr = -(l/r)/r = -result/r
        ratio = b.emit(nn.DivOp(b.emit(nn.MulOp(dy, op.result)), op.rhs))
        d_rhs = b.reduce_to(b.emit(nn.NegOp(ratio)), shape_of(op.rhs))
    return [d_lhs, d_rhs]


@rule(nn.PowOp)
def _pow(b: GradientBuilder, op: nn.PowOp, dy: SSAValue, needs: Sequence[bool]):
    d_lhs = d_rhs = None
    if needs[0]:
        exponent = b.emit(nn.SubOp(op.rhs, b.constant(1.0, op.rhs)))
        slope = b.emit(nn.MulOp(op.rhs, b.emit(nn.PowOp(op.lhs, exponent))))
        d_lhs = b.reduce_to(b.emit(nn.MulOp(dy, slope)), shape_of(op.lhs))
    if needs[1]:
        slope = b.emit(nn.MulOp(op.result, b.emit(nn.LogOp(op.lhs))))
        d_rhs = b.reduce_to(b.emit(nn.MulOp(dy, slope)), shape_of(op.rhs))
    return [d_lhs, d_rhs]


@rule(nn.SoftmaxOp)
def _softmax(b: GradientBuilder, op: nn.SoftmaxOp, dy: SSAValue, needs: Sequence[bool]):
    return [b.emit(train.SoftmaxGradOp(dy, op.result, op.axis.value.data))]


@rule(nn.LogSoftmaxOp)
def _log_softmax(b: GradientBuilder, op: nn.LogSoftmaxOp, dy: SSAValue,
                 needs: Sequence[bool]):
    return [b.emit(train.LogSoftmaxGradOp(dy, op.result, op.axis.value.data))]
