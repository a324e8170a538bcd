"""The `train` dialect: losses, gradients, optimizer updates and parameter stores.

Still at the tensor level, next to `nn`. The `autodiff` pass builds `@train_step` from
`@forward` with these ops; their semantics (what `edge_opt.ir.interpreters.train` runs)
are those of PyTorch's autograd for the matching `nn` op and of `torch.optim` for the
optimizers. Every gradient op is the derivative of one `nn` op with respect to one
operand; the value it reads from the forward pass is the one that op needs and no more
(a max-pool's backward reads the index mask, not the input).

`train.store` is the only side effect at the tensor levels: it assigns a value to an
`nn.param`. Optimizer state (momentum, Adam moments, the step counter) are parameters
too.
"""

from __future__ import annotations

import math
from abc import ABC
from collections.abc import Sequence
from typing import ClassVar, Literal

from xdsl.dialects.builtin import (
    I64,
    AnyFloatConstr,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    Signedness,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    BaseAttr,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import MemoryWriteEffect, Pure, SymbolUserOpInterface
from xdsl.utils.exceptions import VerifyException

from edge_opt.dialects.nn import resolve_param, verify_static_shapes
from edge_opt.support import shapes
from edge_opt.support.shapes import ShapeError

FloatTensor = TensorType.constr(AnyFloatConstr)
IntTensor = TensorType.constr(BaseAttr(IntegerType))

Reduction = Literal["mean", "sum"]

STATE_ATTR = "train.state"
"""Discardable attribute of an optimizer-state `nn.param`: which state it is (`momentum`,
`exp_avg`, `exp_avg_sq`, `step`)."""
STATE_OF_ATTR = "train.state_of"
"""Discardable attribute of an optimizer-state `nn.param`: the parameter it belongs to."""

CHANNELS_ATTR = "train.channels"
"""Discardable attribute of a trainable `nn.param` (`array<i64: ...>`, sorted, unique):
the only channels (indices along `train.channel_axis`) that training updates; the
`autodiff` pass computes the gradient for those alone and scatters their update back.
Set by `sparse-update`'s channel-level selection."""
CHANNEL_AXIS_ATTR = "train.channel_axis"
"""Discardable attribute next to `train.channels` (`i64`): the parameter axis the
channels index (0, the output channels of a linear or convolution weight and bias)."""


def is_optimizer_state(param: Operation) -> bool:
    return STATE_ATTR in param.attributes

ui8 = IntegerType(8, Signedness.UNSIGNED)
MAX_POOL_WINDOW = 256
"""Largest kernel area whose window-local argmax fits the ui8 index mask."""


def _ints(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def _int(value: int) -> IntegerAttr:
    return IntegerAttr(value, 64)


def _float(value: float) -> FloatAttr:
    return FloatAttr(value, f32)


def _flag(value: bool) -> UnitAttr | None:
    return UnitAttr() if value else None


def _shape(value: SSAValue | Operation) -> tuple[int, ...]:
    type = SSAValue.get(value).type
    assert isinstance(type, TensorType)
    return type.get_shape()


def _like(value: SSAValue | Operation, shape: Sequence[int]) -> TensorType:
    type = SSAValue.get(value).type
    assert isinstance(type, TensorType)
    return TensorType(type.element_type, shape)


class TrainOperation(IRDLOperation, ABC):
    """Base of the `train` ops: `check()` raises `ShapeError`, reported with the op
    name. Operands and results share one element type, except those named in
    `INDEX_VALUES` (labels, index masks, the step counter)."""

    INDEX_VALUES: ClassVar[tuple[str, ...]] = ()

    def check(self) -> None:
        """Raises `ShapeError` if a shape or attribute rule is broken."""
    def verify_(self) -> None:
        verify_static_shapes(self)
        try:
            self.check()
        except ShapeError as e:
            raise VerifyException(f"{self.name}: {e}") from None
        exempt = {SSAValue.get(getattr(self, name)) for name in self.INDEX_VALUES}
        element_types = {
            value.type.element_type
            for value in (*self.operands, *self.results)
            if value not in exempt and isinstance(value.type, TensorType)
        }
        if len(element_types) > 1:
            raise VerifyException(
                f"{self.name}: operand and result element types differ "
                f"({', '.join(sorted(str(t) for t in element_types))})"
            )

    @staticmethod
    def expect(what: str, actual: Sequence[int], expected: Sequence[int]) -> None:
        if tuple(actual) != tuple(expected):
            raise ShapeError(f"{what} has shape {list(actual)}, expected {list(expected)}")


def _check_reduction(value: StringAttr) -> None:
    if value.data not in ("mean", "sum"):
        raise ShapeError(f'reduction must be "mean" or "sum", got "{value.data}"')


# --------------------------------------------------------------------------------------
# Parameter stores
# --------------------------------------------------------------------------------------


class _StoreSymbolUse(SymbolUserOpInterface):
    def verify(self, op: Operation) -> None:
        assert isinstance(op, StoreOp)
        resolve_param(op, op.param, op.value.type)


@irdl_op_definition
class StoreOp(IRDLOperation):
    """Assigns `value` to parameter `@param`; later `nn.load`s of it read `value`.

        train.store %w_new, @fc_weight : tensor<10x128xf32>
    """

    name = "train.store"

    value = operand_def(TensorType)
    param = prop_def(SymbolRefAttr)

    traits = traits_def(MemoryWriteEffect(), _StoreSymbolUse())
    assembly_format = "$value `,` $param attr-dict `:` type($value)"

    def __init__(self, value: SSAValue | Operation, param: str | SymbolRefAttr):
        if isinstance(param, str):
            param = SymbolRefAttr(param)
        super().__init__(operands=[value], properties={"param": param})


# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------


class _LossOp(TrainOperation, ABC):
    reduction = prop_def(StringAttr, default_value=StringAttr("mean"))
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)


@irdl_op_definition
class CrossEntropyOp(_LossOp):
    """Softmax cross-entropy of logits (N, C) against integer class labels (N,):
    `-log_softmax(logits)[n, labels[n]]`, averaged (`mean`, default) or summed over the
    batch; a rank-0 result. As `torch.nn.functional.cross_entropy`."""

    name = "train.cross_entropy"

    INDEX_VALUES: ClassVar = ("labels",)
    logits = operand_def(FloatTensor)
    labels = operand_def(IntTensor)
    loss = result_def(FloatTensor)

    assembly_format = (
        "$logits `,` $labels attr-dict `:` functional-type(operands, results)"
    )

    def __init__(
        self,
        logits: SSAValue | Operation,
        labels: SSAValue | Operation,
        reduction: Reduction = "mean",
    ):
        super().__init__(
            operands=[logits, labels],
            result_types=[_like(logits, ())],
            properties={"reduction": StringAttr(reduction)},
        )

    def check(self) -> None:
        _check_reduction(self.reduction)
        logits = _shape(self.logits)
        if len(logits) != 2:
            raise ShapeError(f"logits must have rank 2 (N, C), got {list(logits)}")
        self.expect("labels", _shape(self.labels), logits[:1])
        self.expect("the loss", _shape(self.loss), ())


@irdl_op_definition
class CrossEntropyGradOp(_LossOp):
    """Gradient of `train.cross_entropy` w.r.t. the logits (seed 1):
    `(softmax(logits) - onehot(labels)) / N` (`mean`) or without `/ N` (`sum`)."""

    name = "train.cross_entropy_grad"

    INDEX_VALUES: ClassVar = ("labels",)
    logits = operand_def(FloatTensor)
    labels = operand_def(IntTensor)
    result = result_def(FloatTensor)

    assembly_format = (
        "$logits `,` $labels attr-dict `:` functional-type(operands, results)"
    )

    def __init__(
        self,
        logits: SSAValue | Operation,
        labels: SSAValue | Operation,
        reduction: Reduction = "mean",
    ):
        super().__init__(
            operands=[logits, labels],
            result_types=[SSAValue.get(logits).type],
            properties={"reduction": StringAttr(reduction)},
        )

    def check(self) -> None:
        _check_reduction(self.reduction)
        logits = _shape(self.logits)
        if len(logits) != 2:
            raise ShapeError(f"logits must have rank 2 (N, C), got {list(logits)}")
        self.expect("labels", _shape(self.labels), logits[:1])
        self.expect("the result", _shape(self.result), logits)


@irdl_op_definition
class MseOp(_LossOp):
    """Mean (`mean`, default) or sum (`sum`) of `(prediction - target)**2` over every
    element; a rank-0 result. As `torch.nn.functional.mse_loss`."""

    name = "train.mse"

    T: ClassVar = VarConstraint("T", FloatTensor)
    prediction = operand_def(T)
    target = operand_def(T)
    loss = result_def(FloatTensor)

    assembly_format = (
        "$prediction `,` $target attr-dict `:` type($prediction) `->` type($loss)"
    )

    def __init__(
        self,
        prediction: SSAValue | Operation,
        target: SSAValue | Operation,
        reduction: Reduction = "mean",
    ):
        super().__init__(
            operands=[prediction, target],
            result_types=[_like(prediction, ())],
            properties={"reduction": StringAttr(reduction)},
        )

    def check(self) -> None:
        _check_reduction(self.reduction)
        self.expect("the loss", _shape(self.loss), ())


@irdl_op_definition
class MseGradOp(_LossOp):
    """Gradient of `train.mse` w.r.t. the prediction (seed 1):
    `2 * (prediction - target) / numel` (`mean`) or `2 * (prediction - target)`."""

    name = "train.mse_grad"

    T: ClassVar = VarConstraint("T", FloatTensor)
    prediction = operand_def(T)
    target = operand_def(T)
    result = result_def(T)

    assembly_format = "$prediction `,` $target attr-dict `:` type($prediction)"

    def __init__(
        self,
        prediction: SSAValue | Operation,
        target: SSAValue | Operation,
        reduction: Reduction = "mean",
    ):
        super().__init__(
            operands=[prediction, target],
            result_types=[SSAValue.get(prediction).type],
            properties={"reduction": StringAttr(reduction)},
        )

    def check(self) -> None:
        _check_reduction(self.reduction)


# --------------------------------------------------------------------------------------
# Element-wise gradients: dx = f'(saved) * dy, all of one type
# --------------------------------------------------------------------------------------


class ElementwiseGradOp(TrainOperation, ABC):
    """`dx` from the output gradient `dy` and one saved forward value (the op's input
    `x` or output `y`, as each op says)."""

    T: ClassVar = VarConstraint("T", FloatTensor)
    grad = operand_def(T)
    saved = operand_def(T)
    result = result_def(T)

    traits = traits_def(Pure())
    assembly_format = "$grad `,` $saved attr-dict `:` type($grad)"

    def __init__(self, grad: SSAValue | Operation, saved: SSAValue | Operation):
        super().__init__(operands=[grad, saved], result_types=[SSAValue.get(grad).type])


@irdl_op_definition
class ReluGradOp(ElementwiseGradOp):
    """`dy * (y > 0)`, saved = the relu's output `y`."""

    name = "train.relu_grad"


@irdl_op_definition
class SigmoidGradOp(ElementwiseGradOp):
    """`dy * y * (1 - y)`, saved = the sigmoid's output `y`."""

    name = "train.sigmoid_grad"


@irdl_op_definition
class TanhGradOp(ElementwiseGradOp):
    """`dy * (1 - y**2)`, saved = the tanh's output `y`."""

    name = "train.tanh_grad"


@irdl_op_definition
class SiluGradOp(ElementwiseGradOp):
    """`dy * s * (1 + x * (1 - s))` with `s = sigmoid(x)`, saved = the input `x`."""

    name = "train.silu_grad"


@irdl_op_definition
class HardswishGradOp(ElementwiseGradOp):
    """`dy * (0 if x <= -3, 1 if x >= 3, (2x + 3) / 6 otherwise)`, saved = the input
    `x` (PyTorch's convention at the kinks)."""

    name = "train.hardswish_grad"


@irdl_op_definition
class ErfGradOp(ElementwiseGradOp):
    """`dy * 2 / sqrt(pi) * exp(-x**2)`, saved = the input `x`."""

    name = "train.erf_grad"


@irdl_op_definition
class GeluGradOp(ElementwiseGradOp):
    """Derivative of `nn.gelu` (same `approximate`) times `dy`, saved = the input `x`."""

    name = "train.gelu_grad"

    approximate = prop_def(StringAttr, default_value=StringAttr("none"))
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(
        self,
        grad: SSAValue | Operation,
        saved: SSAValue | Operation,
        approximate: str = "none",
    ):
        IRDLOperation.__init__(
            self,
            operands=[grad, saved],
            result_types=[SSAValue.get(grad).type],
            properties={"approximate": StringAttr(approximate)},
        )

    def check(self) -> None:
        if self.approximate.data not in ("none", "tanh"):
            raise ShapeError(
                f'approximate must be "none" or "tanh", got "{self.approximate.data}"'
            )


class ScalarParamsGradOp(ElementwiseGradOp, ABC):
    """An element-wise gradient with the f32 parameters of its forward op (its
    properties)."""

    irdl_options = (ParsePropInAttrDict(),)

    def _build(self, grad, saved, values: dict[str, float | None]) -> None:
        IRDLOperation.__init__(
            self,
            operands=[grad, saved],
            result_types=[SSAValue.get(grad).type],
            properties={k: None if v is None else _float(v) for k, v in values.items()},
        )

    def scalars(self) -> dict[str, float]:
        """The parameters by name (an absent optional one is left out)."""
        return {
            name: attr.value.data
            for name in self.get_irdl_definition().properties
            if isinstance(attr := self.properties.get(name), FloatAttr)
        }


@irdl_op_definition
class ClipGradOp(ScalarParamsGradOp):
    """`dy` where `min < y < max`, else 0 (an absent bound is -inf / +inf), saved = the
    clip's output `y`: PyTorch's `F.hardtanh` / `F.relu6` gradient."""

    name = "train.clip_grad"

    min = opt_prop_def(FloatAttr)
    max = opt_prop_def(FloatAttr)

    def __init__(self, grad, saved, min: float | None = None, max: float | None = None):
        self._build(grad, saved, {"min": min, "max": max})

    def bounds(self) -> tuple[float, float]:
        lo = -math.inf if self.min is None else self.min.value.data
        hi = math.inf if self.max is None else self.max.value.data
        return lo, hi


@irdl_op_definition
class HardsigmoidGradOp(ScalarParamsGradOp):
    """`alpha * dy` where `0 < y < 1`, else 0, saved = the hardsigmoid's output `y`
    (PyTorch's convention at the kinks)."""

    name = "train.hardsigmoid_grad"

    alpha = prop_def(FloatAttr)

    def __init__(self, grad, saved, alpha: float):
        self._build(grad, saved, {"alpha": alpha})


@irdl_op_definition
class EluGradOp(ScalarParamsGradOp):
    """`dy` where `x > 0`, else `alpha * exp(x) * dy`, saved = the input `x`."""

    name = "train.elu_grad"

    alpha = prop_def(FloatAttr)

    def __init__(self, grad, saved, alpha: float):
        self._build(grad, saved, {"alpha": alpha})


@irdl_op_definition
class LeakyReluGradOp(ScalarParamsGradOp):
    """`dy` where `x > 0`, else `alpha * dy`, saved = the input `x`."""

    name = "train.leaky_relu_grad"

    alpha = prop_def(FloatAttr)

    def __init__(self, grad, saved, alpha: float):
        self._build(grad, saved, {"alpha": alpha})


class _AxisGradOp(ElementwiseGradOp, ABC):
    axis = prop_def(IntegerAttr[I64], default_value=_int(-1))
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(
        self, grad: SSAValue | Operation, saved: SSAValue | Operation, axis: int = -1
    ):
        IRDLOperation.__init__(
            self,
            operands=[grad, saved],
            result_types=[SSAValue.get(grad).type],
            properties={"axis": _int(axis)},
        )

    def check(self) -> None:
        shapes.normalize_axis(self.axis.value.data, len(_shape(self.grad)))


@irdl_op_definition
class SoftmaxGradOp(_AxisGradOp):
    """`y * (dy - sum(dy * y, axis))`, saved = the softmax's output `y`."""

    name = "train.softmax_grad"


@irdl_op_definition
class LogSoftmaxGradOp(_AxisGradOp):
    """`dy - exp(y) * sum(dy, axis)`, saved = the log-softmax's output `y`."""

    name = "train.log_softmax_grad"


# --------------------------------------------------------------------------------------
# Normalisation gradients
# --------------------------------------------------------------------------------------


def _epsilon(value: float) -> FloatAttr:
    return _float(value)


def _check_channels(x: Sequence[int], groups: int | None = None) -> None:
    """The (N, C, ...) input rules of `nn.batch_norm` and `nn.group_norm`."""
    if len(x) < 2:
        raise ShapeError(f"input must have rank >= 2, got {list(x)}")
    if groups is not None and (groups < 1 or x[1] % groups):
        raise ShapeError(f"groups ({groups}) must divide the channel count ({x[1]})")


@irdl_op_definition
class LayerNormGradInputOp(TrainOperation):
    """Gradient of `nn.layer_norm` w.r.t. its input, from `dy`, the input `x` and the
    scale (statistics are recomputed from `x`)."""

    name = "train.layer_norm_grad_input"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    axis = prop_def(IntegerAttr[I64], default_value=_int(-1))
    epsilon = prop_def(FloatAttr, default_value=_epsilon(1e-5))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$grad `,` $input `,` $scale attr-dict `:` functional-type(operands, results)"
    )

    def __init__(self, grad, input, scale, axis: int = -1, epsilon: float = 1e-5):
        super().__init__(
            operands=[grad, input, scale],
            result_types=[SSAValue.get(input).type],
            properties={"axis": _int(axis), "epsilon": _epsilon(epsilon)},
        )

    def check(self) -> None:
        x = _shape(self.input)
        axis = shapes.normalize_axis(self.axis.value.data, len(x))
        self.expect("the output gradient", _shape(self.grad), x)
        self.expect("scale", _shape(self.scale), x[axis:])
        self.expect("the result", _shape(self.result), x)


@irdl_op_definition
class LayerNormGradScaleOp(TrainOperation):
    """Gradient of `nn.layer_norm` w.r.t. its scale: `sum(dy * x_hat)` over the leading
    (not normalized) axes."""

    name = "train.layer_norm_grad_scale"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    axis = prop_def(IntegerAttr[I64], default_value=_int(-1))
    epsilon = prop_def(FloatAttr, default_value=_epsilon(1e-5))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$grad `,` $input attr-dict `:` functional-type(operands, results)"

    def __init__(self, grad, input, axis: int = -1, epsilon: float = 1e-5):
        x = _shape(input)
        start = shapes.normalize_axis(axis, len(x))
        super().__init__(
            operands=[grad, input],
            result_types=[_like(input, x[start:])],
            properties={"axis": _int(axis), "epsilon": _epsilon(epsilon)},
        )

    def check(self) -> None:
        x = _shape(self.input)
        axis = shapes.normalize_axis(self.axis.value.data, len(x))
        self.expect("the output gradient", _shape(self.grad), x)
        self.expect("the result", _shape(self.result), x[axis:])


@irdl_op_definition
class BatchNormGradInputOp(TrainOperation):
    """Gradient of `nn.batch_norm` w.r.t. its input. Inference mode:
    `dy * scale / sqrt(var + eps)`; `training`: through the batch statistics too."""

    name = "train.batch_norm_grad_input"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    mean = operand_def(FloatTensor)
    var = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    epsilon = prop_def(FloatAttr, default_value=_epsilon(1e-5))
    training = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$grad `,` $input `,` $scale `,` $mean `,` $var attr-dict `:` "
        "functional-type(operands, results)"
    )

    def __init__(self, grad, input, scale, mean, var, epsilon=1e-5, training=False):
        super().__init__(
            operands=[grad, input, scale, mean, var],
            result_types=[SSAValue.get(input).type],
            properties={"epsilon": _epsilon(epsilon), "training": _flag(training)},
        )

    def check(self) -> None:
        x = _shape(self.input)
        _check_channels(x)
        self.expect("the output gradient", _shape(self.grad), x)
        for name in ("scale", "mean", "var"):
            self.expect(name, _shape(getattr(self, name)), x[1:2])
        self.expect("the result", _shape(self.result), x)


@irdl_op_definition
class BatchNormGradScaleOp(TrainOperation):
    """Gradient of `nn.batch_norm` w.r.t. its scale: `sum(dy * x_hat)` over all axes but
    the channels, `x_hat` normalized as the forward did (`training`: batch statistics)."""

    name = "train.batch_norm_grad_scale"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    mean = operand_def(FloatTensor)
    var = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    epsilon = prop_def(FloatAttr, default_value=_epsilon(1e-5))
    training = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$grad `,` $input `,` $mean `,` $var attr-dict `:` "
        "functional-type(operands, results)"
    )

    def __init__(self, grad, input, mean, var, epsilon=1e-5, training=False):
        super().__init__(
            operands=[grad, input, mean, var],
            result_types=[SSAValue.get(mean).type],
            properties={"epsilon": _epsilon(epsilon), "training": _flag(training)},
        )

    def check(self) -> None:
        x = _shape(self.input)
        _check_channels(x)
        self.expect("the output gradient", _shape(self.grad), x)
        for name in ("mean", "var", "result"):
            self.expect(name, _shape(getattr(self, name)), x[1:2])


@irdl_op_definition
class GroupNormGradInputOp(TrainOperation):
    """Gradient of `nn.group_norm` w.r.t. its input (statistics recomputed from `x`)."""

    name = "train.group_norm_grad_input"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    groups = prop_def(IntegerAttr[I64])
    epsilon = prop_def(FloatAttr, default_value=_epsilon(1e-5))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$grad `,` $input `,` $scale attr-dict `:` functional-type(operands, results)"
    )

    def __init__(self, grad, input, scale, groups: int, epsilon: float = 1e-5):
        super().__init__(
            operands=[grad, input, scale],
            result_types=[SSAValue.get(input).type],
            properties={"groups": _int(groups), "epsilon": _epsilon(epsilon)},
        )

    def check(self) -> None:
        x = _shape(self.input)
        _check_channels(x, self.groups.value.data)
        self.expect("the output gradient", _shape(self.grad), x)
        self.expect("scale", _shape(self.scale), x[1:2])
        self.expect("the result", _shape(self.result), x)


@irdl_op_definition
class GroupNormGradScaleOp(TrainOperation):
    """Gradient of `nn.group_norm` w.r.t. its scale: `sum(dy * x_hat)` per channel."""

    name = "train.group_norm_grad_scale"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    groups = prop_def(IntegerAttr[I64])
    epsilon = prop_def(FloatAttr, default_value=_epsilon(1e-5))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$grad `,` $input attr-dict `:` functional-type(operands, results)"

    def __init__(self, grad, input, groups: int, epsilon: float = 1e-5):
        super().__init__(
            operands=[grad, input],
            result_types=[_like(input, _shape(input)[1:2])],
            properties={"groups": _int(groups), "epsilon": _epsilon(epsilon)},
        )

    def check(self) -> None:
        x = _shape(self.input)
        _check_channels(x, self.groups.value.data)
        self.expect("the output gradient", _shape(self.grad), x)
        self.expect("the result", _shape(self.result), x[1:2])


# --------------------------------------------------------------------------------------
# Linear and convolution gradients
# --------------------------------------------------------------------------------------


@irdl_op_definition
class LinearGradInputOp(TrainOperation):
    """Gradient of `nn.linear` w.r.t. its input: `dy @ weight`, (..., out) -> (..., in)."""

    name = "train.linear_grad_input"

    grad = operand_def(FloatTensor)
    weight = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())
    assembly_format = "$grad `,` $weight attr-dict `:` functional-type(operands, results)"

    def __init__(self, grad, weight):
        dy, w = _shape(grad), _shape(weight)
        super().__init__(
            operands=[grad, weight], result_types=[_like(grad, (*dy[:-1], w[1]))]
        )

    def check(self) -> None:
        w = _shape(self.weight)
        self.expect(
            "the output gradient",
            _shape(self.grad),
            shapes.linear(_shape(self.result), w),
        )


@irdl_op_definition
class LinearGradWeightOp(TrainOperation):
    """Gradient of `nn.linear` w.r.t. its weight: `dy^T @ x` summed over all leading
    axes, (..., out) and (..., in) -> (out, in)."""

    name = "train.linear_grad_weight"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())
    assembly_format = "$grad `,` $input attr-dict `:` functional-type(operands, results)"

    def __init__(self, grad, input):
        super().__init__(
            operands=[grad, input],
            result_types=[_like(grad, (_shape(grad)[-1], _shape(input)[-1]))],
        )

    def check(self) -> None:
        self.expect(
            "the output gradient",
            _shape(self.grad),
            shapes.linear(_shape(self.input), _shape(self.result)),
        )


class _ConvGradOp(TrainOperation, ABC):
    # Operands are declared by each subclass, `grad` first: xDSL orders a subclass's
    # fields before the ones it inherits.
    result = result_def(FloatTensor)
    stride = prop_def(DenseArrayBase.constr(i64), default_value=_ints([1, 1]))
    padding = prop_def(DenseArrayBase.constr(i64), default_value=_ints([0, 0, 0, 0]))
    dilation = prop_def(DenseArrayBase.constr(i64), default_value=_ints([1, 1]))
    groups = prop_def(IntegerAttr[I64], default_value=_int(1))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def conv_attributes(self) -> dict[str, object]:
        return {
            "stride": self.stride.get_values(),
            "padding": self.padding.get_values(),
            "dilation": self.dilation.get_values(),
            "groups": self.groups.value.data,
        }

    @staticmethod
    def _properties(attrs: dict[str, object]) -> dict[str, Attribute]:
        props: dict[str, Attribute] = {}
        for key, value in attrs.items():
            props[key] = _int(value) if isinstance(value, int) else _ints(value)  # type: ignore[arg-type]
        return props


@irdl_op_definition
class Conv2dGradInputOp(_ConvGradOp):
    """Gradient of `nn.conv2d` w.r.t. its input (a transposed convolution of `dy` with
    the weight); the result type is the forward input's."""

    name = "train.conv2d_grad_input"

    grad = operand_def(FloatTensor)
    weight = operand_def(FloatTensor)
    assembly_format = "$grad `,` $weight attr-dict `:` functional-type(operands, results)"

    def __init__(self, grad, weight, input_type: TensorType, **conv_attrs):
        super().__init__(
            operands=[grad, weight],
            result_types=[input_type],
            properties=self._properties(conv_attrs),
        )

    def check(self) -> None:
        a = self.conv_attributes()
        self.expect(
            "the output gradient",
            _shape(self.grad),
            shapes.conv2d(_shape(self.result), _shape(self.weight), **a),  # type: ignore[arg-type]
        )


@irdl_op_definition
class Conv2dGradWeightOp(_ConvGradOp):
    """Gradient of `nn.conv2d` w.r.t. its weight (correlation of the input with `dy`);
    the result type is the weight's."""

    name = "train.conv2d_grad_weight"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    assembly_format = "$grad `,` $input attr-dict `:` functional-type(operands, results)"

    def __init__(self, grad, input, weight_type: TensorType, **conv_attrs):
        super().__init__(
            operands=[grad, input],
            result_types=[weight_type],
            properties=self._properties(conv_attrs),
        )

    def check(self) -> None:
        a = self.conv_attributes()
        self.expect(
            "the output gradient",
            _shape(self.grad),
            shapes.conv2d(_shape(self.input), _shape(self.result), **a),  # type: ignore[arg-type]
        )


class _ConvTransposeGradOp(_ConvGradOp, ABC):
    output_padding = prop_def(DenseArrayBase.constr(i64), default_value=_ints([0, 0]))

    def conv_attributes(self) -> dict[str, object]:
        return {**super().conv_attributes(), "output_padding": self.output_padding.get_values()}


@irdl_op_definition
class ConvTranspose2dGradInputOp(_ConvTransposeGradOp):
    """Gradient of `nn.conv_transpose2d` w.r.t. its input (a convolution of `dy` with
    the weight); the result type is the forward input's."""

    name = "train.conv_transpose2d_grad_input"

    grad = operand_def(FloatTensor)
    weight = operand_def(FloatTensor)
    assembly_format = "$grad `,` $weight attr-dict `:` functional-type(operands, results)"

    def __init__(self, grad, weight, input_type: TensorType, **conv_attrs):
        super().__init__(
            operands=[grad, weight],
            result_types=[input_type],
            properties=self._properties(conv_attrs),
        )

    def check(self) -> None:
        a = self.conv_attributes()
        self.expect(
            "the output gradient",
            _shape(self.grad),
            shapes.conv_transpose2d(_shape(self.result), _shape(self.weight), **a),  # type: ignore[arg-type]
        )


@irdl_op_definition
class ConvTranspose2dGradWeightOp(_ConvTransposeGradOp):
    """Gradient of `nn.conv_transpose2d` w.r.t. its weight; the result type is the
    weight's."""

    name = "train.conv_transpose2d_grad_weight"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    assembly_format = "$grad `,` $input attr-dict `:` functional-type(operands, results)"

    def __init__(self, grad, input, weight_type: TensorType, **conv_attrs):
        super().__init__(
            operands=[grad, input],
            result_types=[weight_type],
            properties=self._properties(conv_attrs),
        )

    def check(self) -> None:
        a = self.conv_attributes()
        self.expect(
            "the output gradient",
            _shape(self.grad),
            shapes.conv_transpose2d(_shape(self.input), _shape(self.result), **a),  # type: ignore[arg-type]
        )


# --------------------------------------------------------------------------------------
# Pooling and slicing
# --------------------------------------------------------------------------------------


class _PoolAttrsOp(TrainOperation, ABC):
    kernel = prop_def(DenseArrayBase.constr(i64))
    stride = prop_def(DenseArrayBase.constr(i64), default_value=_ints([1, 1]))
    padding = prop_def(DenseArrayBase.constr(i64), default_value=_ints([0, 0, 0, 0]))
    ceil_mode = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def _dilation(self) -> tuple[int, ...]:
        return (1, 1)

    def pooled_shape(self, input: Sequence[int]) -> tuple[int, ...]:
        return shapes.pool2d(
            input,
            self.kernel.get_values(),
            self.stride.get_values(),
            self.padding.get_values(),
            self._dilation(),
            self.ceil_mode is not None,
        )


def _check_mask_window(kernel: Sequence[int]) -> None:
    kh, kw = kernel
    if kh * kw > MAX_POOL_WINDOW:
        raise ShapeError(
            f"kernel {kh}x{kw} has more than {MAX_POOL_WINDOW} positions, which a "
            "ui8 index mask cannot address"
        )


@irdl_op_definition
class MaxPool2dWithIndicesOp(_PoolAttrsOp):
    """`nn.max_pool2d` that also returns, per output, the window-local position
    `i * kw + j` of the maximum (the first on ties) as a `ui8` index mask, which is all
    that its backward needs of the forward pass."""

    name = "train.max_pool2d_with_indices"

    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    indices = result_def(TensorType.constr(ui8))
    INDEX_VALUES: ClassVar = ("indices",)
    dilation = prop_def(DenseArrayBase.constr(i64), default_value=_ints([1, 1]))

    assembly_format = "$input attr-dict `:` type($input) `->` type($result) `,` type($indices)"

    def __init__(self, input, kernel, stride, padding, dilation, ceil_mode: bool):
        shape = shapes.pool2d(_shape(input), kernel, stride, padding, dilation, ceil_mode)
        super().__init__(
            operands=[input],
            result_types=[_like(input, shape), TensorType(ui8, shape)],
            properties={
                "kernel": _ints(kernel),
                "stride": _ints(stride),
                "padding": _ints(padding),
                "dilation": _ints(dilation),
                "ceil_mode": _flag(ceil_mode),
            },
        )

    def _dilation(self) -> tuple[int, ...]:
        return self.dilation.get_values()

    def check(self) -> None:
        _check_mask_window(self.kernel.get_values())
        expected = self.pooled_shape(_shape(self.input))
        self.expect("the result", _shape(self.result), expected)
        self.expect("the indices", _shape(self.indices), expected)


@irdl_op_definition
class MaxPool2dGradOp(_PoolAttrsOp):
    """Gradient of `nn.max_pool2d` w.r.t. its input: each `dy` goes to the input position
    its window's index mask names (summed where windows overlap)."""

    name = "train.max_pool2d_grad"

    grad = operand_def(FloatTensor)
    indices = operand_def(TensorType.constr(ui8))
    result = result_def(FloatTensor)
    INDEX_VALUES: ClassVar = ("indices",)
    dilation = prop_def(DenseArrayBase.constr(i64), default_value=_ints([1, 1]))

    assembly_format = (
        "$grad `,` $indices attr-dict `:` functional-type(operands, results)"
    )

    def __init__(self, grad, indices, input_type: TensorType, kernel, stride, padding,
                 dilation, ceil_mode: bool):
        super().__init__(
            operands=[grad, indices],
            result_types=[input_type],
            properties={
                "kernel": _ints(kernel),
                "stride": _ints(stride),
                "padding": _ints(padding),
                "dilation": _ints(dilation),
                "ceil_mode": _flag(ceil_mode),
            },
        )

    def _dilation(self) -> tuple[int, ...]:
        return self.dilation.get_values()

    def check(self) -> None:
        _check_mask_window(self.kernel.get_values())
        expected = self.pooled_shape(_shape(self.result))
        self.expect("the output gradient", _shape(self.grad), expected)
        self.expect("the indices", _shape(self.indices), expected)


@irdl_op_definition
class AvgPool2dGradOp(_PoolAttrsOp):
    """Gradient of `nn.avg_pool2d` w.r.t. its input: each `dy` spread evenly (by the
    forward's divisor) over its window."""

    name = "train.avg_pool2d_grad"

    grad = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    count_include_pad = opt_prop_def(UnitAttr)

    assembly_format = "$grad attr-dict `:` type($grad) `->` type($result)"

    def __init__(self, grad, input_type: TensorType, kernel, stride, padding,
                 ceil_mode: bool, count_include_pad: bool):
        super().__init__(
            operands=[grad],
            result_types=[input_type],
            properties={
                "kernel": _ints(kernel),
                "stride": _ints(stride),
                "padding": _ints(padding),
                "ceil_mode": _flag(ceil_mode),
                "count_include_pad": _flag(count_include_pad),
            },
        )

    def check(self) -> None:
        self.expect(
            "the output gradient", _shape(self.grad), self.pooled_shape(_shape(self.result))
        )


@irdl_op_definition
class SliceGradOp(TrainOperation):
    """Gradient of `nn.slice` w.r.t. its input: `dy` scattered back to the sliced
    positions of a zero tensor of the input's type."""

    name = "train.slice_grad"

    grad = operand_def(TensorType)
    result = result_def(TensorType)
    starts = prop_def(DenseArrayBase.constr(i64))
    ends = prop_def(DenseArrayBase.constr(i64))
    steps = prop_def(DenseArrayBase.constr(i64))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$grad attr-dict `:` type($grad) `->` type($result)"

    def __init__(self, grad, input_type: TensorType, starts, ends, steps):
        super().__init__(
            operands=[grad],
            result_types=[input_type],
            properties={"starts": _ints(starts), "ends": _ints(ends), "steps": _ints(steps)},
        )

    def check(self) -> None:
        self.expect(
            "the output gradient",
            _shape(self.grad),
            shapes.slice_(
                _shape(self.result),
                self.starts.get_values(),
                self.ends.get_values(),
                self.steps.get_values(),
            ),
        )


@irdl_op_definition
class ScatterOp(TrainOperation):
    """`dest` with its slices at `indices` along `axis` replaced by the slices of
    `values`, in order (`torch.Tensor.index_copy(axis, indices, values)`). Indices are
    unique and in `[0, size)`. A channel-restricted update writes its new channels back
    into the whole parameter with it:

        %w_new = train.scatter %w, %w_channels_new {axis = 0 : i64, indices = array<i64: 1, 5>} : tensor<8x4xf32>, tensor<2x4xf32>
    """

    name = "train.scatter"

    T: ClassVar = VarConstraint("T", BaseAttr(TensorType))
    dest = operand_def(T)
    values = operand_def(TensorType)
    result = result_def(T)
    axis = prop_def(IntegerAttr[I64])
    indices = prop_def(DenseArrayBase.constr(i64))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$dest `,` $values attr-dict `:` type($dest) `,` type($values)"

    def __init__(self, dest: SSAValue | Operation, values: SSAValue | Operation,
                 indices: Sequence[int], axis: int):
        shapes.scatter(_shape(dest), _shape(values), indices, axis)
        super().__init__(
            operands=[dest, values],
            result_types=[SSAValue.get(dest).type],
            properties={"axis": _int(axis), "indices": _ints(indices)},
        )

    def check(self) -> None:
        shapes.scatter(
            _shape(self.dest), _shape(self.values), self.indices.get_values(),
            self.axis.value.data,
        )


# --------------------------------------------------------------------------------------
# Optimizers (torch.optim semantics); results are the new values, stored by train.store
# --------------------------------------------------------------------------------------


class _OptimizerOp(TrainOperation, ABC):
    T: ClassVar = VarConstraint("T", FloatTensor)
    lr = prop_def(FloatAttr)
    weight_decay = prop_def(FloatAttr, default_value=_float(0.0))
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)


@irdl_op_definition
class SgdOp(_OptimizerOp):
    """Plain SGD: `param - lr * (grad + weight_decay * param)`."""

    name = "train.sgd"

    param = operand_def(_OptimizerOp.T)
    grad = operand_def(_OptimizerOp.T)
    new_param = result_def(_OptimizerOp.T)

    assembly_format = "$param `,` $grad attr-dict `:` type($param)"

    def __init__(self, param, grad, lr: float, weight_decay: float = 0.0):
        super().__init__(
            operands=[param, grad],
            result_types=[SSAValue.get(param).type],
            properties={"lr": _float(lr), "weight_decay": _float(weight_decay)},
        )


@irdl_op_definition
class SgdMomentumOp(_OptimizerOp):
    """SGD with momentum, as `torch.optim.SGD` (no dampening), with the buffer a
    parameter initialised to zero: `g = grad + weight_decay * param`;
    `buf' = momentum * buf + g`; `param' = param - lr * (g + momentum * buf' if nesterov
    else buf')`. (PyTorch starts from `buf = g`, which is the same thing.)"""

    name = "train.sgd_momentum"

    param = operand_def(_OptimizerOp.T)
    grad = operand_def(_OptimizerOp.T)
    momentum_buffer = operand_def(_OptimizerOp.T)
    new_param = result_def(_OptimizerOp.T)
    new_momentum_buffer = result_def(_OptimizerOp.T)
    momentum = prop_def(FloatAttr)
    nesterov = opt_prop_def(UnitAttr)

    assembly_format = "$param `,` $grad `,` $momentum_buffer attr-dict `:` type($param)"

    def __init__(self, param, grad, buffer, lr: float, momentum: float,
                 weight_decay: float = 0.0, nesterov: bool = False):
        type = SSAValue.get(param).type
        super().__init__(
            operands=[param, grad, buffer],
            result_types=[type, type],
            properties={
                "lr": _float(lr),
                "momentum": _float(momentum),
                "weight_decay": _float(weight_decay),
                "nesterov": _flag(nesterov),
            },
        )


@irdl_op_definition
class AdamOp(_OptimizerOp):
    """Adam, as `torch.optim.Adam` (L2 weight decay added to the gradient):
    `m' = b1 m + (1-b1) g`, `v' = b2 v + (1-b2) g^2`,
    `param' = param - lr * (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps)` where `t`
    (rank-0 `step`) is the 1-based number of this step."""

    name = "train.adam"

    param = operand_def(_OptimizerOp.T)
    grad = operand_def(_OptimizerOp.T)
    exp_avg = operand_def(_OptimizerOp.T)
    exp_avg_sq = operand_def(_OptimizerOp.T)
    step = operand_def(FloatTensor)
    new_param = result_def(_OptimizerOp.T)
    new_exp_avg = result_def(_OptimizerOp.T)
    new_exp_avg_sq = result_def(_OptimizerOp.T)
    beta1 = prop_def(FloatAttr, default_value=_float(0.9))
    beta2 = prop_def(FloatAttr, default_value=_float(0.999))
    epsilon = prop_def(FloatAttr, default_value=_float(1e-8))
    INDEX_VALUES: ClassVar = ("step",)

    assembly_format = (
        "$param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` $step attr-dict `:` "
        "type($param) `,` type($step)"
    )

    def __init__(self, param, grad, exp_avg, exp_avg_sq, step, lr: float,
                 beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 weight_decay: float = 0.0):
        type = SSAValue.get(param).type
        super().__init__(
            operands=[param, grad, exp_avg, exp_avg_sq, step],
            result_types=[type, type, type],
            properties={
                "lr": _float(lr),
                "beta1": _float(beta1),
                "beta2": _float(beta2),
                "epsilon": _float(epsilon),
                "weight_decay": _float(weight_decay),
            },
        )

    def check(self) -> None:
        self.expect("step", _shape(self.step), ())


TRAIN = Dialect(
    "train",
    [
        StoreOp,
        CrossEntropyOp,
        CrossEntropyGradOp,
        MseOp,
        MseGradOp,
        ReluGradOp,
        SigmoidGradOp,
        TanhGradOp,
        SiluGradOp,
        HardswishGradOp,
        ErfGradOp,
        GeluGradOp,
        ClipGradOp,
        HardsigmoidGradOp,
        EluGradOp,
        LeakyReluGradOp,
        SoftmaxGradOp,
        LogSoftmaxGradOp,
        LayerNormGradInputOp,
        LayerNormGradScaleOp,
        BatchNormGradInputOp,
        BatchNormGradScaleOp,
        GroupNormGradInputOp,
        GroupNormGradScaleOp,
        LinearGradInputOp,
        LinearGradWeightOp,
        Conv2dGradInputOp,
        Conv2dGradWeightOp,
        ConvTranspose2dGradInputOp,
        ConvTranspose2dGradWeightOp,
        MaxPool2dWithIndicesOp,
        MaxPool2dGradOp,
        AvgPool2dGradOp,
        SliceGradOp,
        ScatterOp,
        SgdOp,
        SgdMomentumOp,
        AdamOp,
    ],
    [],
)
