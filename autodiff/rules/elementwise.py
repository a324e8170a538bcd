"""Gradient rules: element-wise. The unary ops' rules come from their rows in
`edge_opt.support.elementwise` (a gradient op reading the saved input or output, or a
refusal for the piecewise-constant ones); the composite ones and the binary ops are
written here with other `nn` ops."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.ir import Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.autodiff.rules.builder import (
    RULES,
    GradientBuilder,
    Grads,
    Rule,
    rule,
    shape_of,
)
from edge_opt.dialects import nn, train
from edge_opt.dialects.elementwise import GRAD_OP, UNARY_OPS


def _with_grad_op(op_type: type[nn.UnaryElementwiseOp]) -> Rule:
    """`dx = train.NAME_grad(dy, saved)`, saved = the op's input or output as its row
    says, with the gradient op's attributes copied from the op."""
    row = op_type.ROW
    grad_op = GRAD_OP[row.name]
    names = [a.name for a in grad_op.ATTRIBUTES]

    def vjp(b: GradientBuilder, op: Operation, dy: SSAValue, needs: Sequence[bool]):
        assert isinstance(op, nn.UnaryElementwiseOp)
        saved = op.results[0] if row.saved == "output" else op.operands[0]
        arguments = op.arguments()
        return [b.emit(grad_op(dy, saved, **{name: arguments[name] for name in names}))]

    return vjp


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


for _op in UNARY_OPS:
    if _op.ROW.gradient == "op":
        RULES[_op] = _with_grad_op(_op)
    elif _op.ROW.gradient == "none":
        RULES[_op] = _piecewise_constant
# The rows with `gradient="composite"` have their rules below, written with `nn` ops.


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
