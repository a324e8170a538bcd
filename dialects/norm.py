"""The normalisation op family of `nn` and `train`: `nn.softmax`, `nn.log_softmax`,
`nn.layer_norm`, `nn.batch_norm`, `nn.group_norm` and their gradient ops.

Each op's attributes (`axis`; `axis` and `epsilon`; `epsilon` and `training`; `groups`
and `epsilon`) are declared once, in an attribute class the forward op and its gradient
ops share, with the builder of their properties.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence

from xdsl.dialects.builtin import I64, FloatAttr, IntegerAttr, UnitAttr
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

from edge_opt.dialects.base import (
    FloatTensor,
    NNOperation,
    SameTypeUnaryOp,
    SavedGradOp,
    TrainOperation,
    flag,
    float_,
    int_,
    like,
    shape_of,
)
from edge_opt.support import shapes
from edge_opt.support.shapes import ShapeError

# --------------------------------------------------------------------------------------
# The attributes
# --------------------------------------------------------------------------------------


class AxisAttribute:
    """`axis` (default the last) of softmax, log-softmax and their gradients."""

    axis = prop_def(IntegerAttr[I64], default_value=int_(-1))

    irdl_options = (ParsePropInAttrDict(),)


class LayerNormAttributes:
    """`axis` (the first normalized axis) and `epsilon` of `nn.layer_norm` and its
    gradients."""

    axis = prop_def(IntegerAttr[I64], default_value=int_(-1))
    epsilon = prop_def(FloatAttr, default_value=float_(1e-5))

    irdl_options = (ParsePropInAttrDict(),)

    @staticmethod
    def norm_properties(axis: int, epsilon: float) -> dict[str, Attribute]:
        return {"axis": int_(axis), "epsilon": float_(epsilon)}


class BatchNormAttributes:
    """`epsilon` and `training` (batch statistics) of `nn.batch_norm` and its
    gradients."""

    epsilon = prop_def(FloatAttr, default_value=float_(1e-5))
    training = opt_prop_def(UnitAttr)

    irdl_options = (ParsePropInAttrDict(),)

    @staticmethod
    def norm_properties(epsilon: float, training: bool) -> dict[str, Attribute | None]:
        return {"epsilon": float_(epsilon), "training": flag(training)}


class GroupNormAttributes:
    """`groups` and `epsilon` of `nn.group_norm` and its gradients."""

    groups = prop_def(IntegerAttr[I64])
    epsilon = prop_def(FloatAttr, default_value=float_(1e-5))

    irdl_options = (ParsePropInAttrDict(),)

    @staticmethod
    def norm_properties(groups: int, epsilon: float) -> dict[str, Attribute]:
        return {"groups": int_(groups), "epsilon": float_(epsilon)}


def check_channels(x: Sequence[int], groups: int | None = None) -> None:
    """The (N, C, ...) input rules of batch and group normalization."""
    if len(x) < 2:
        raise ShapeError(f"input must have rank >= 2, got {list(x)}")
    if groups is not None and (groups < 1 or x[1] % groups):
        raise ShapeError(f"groups ({groups}) must divide the channel count ({x[1]})")


# --------------------------------------------------------------------------------------
# nn
# --------------------------------------------------------------------------------------


class _AxisOp(AxisAttribute, SameTypeUnaryOp, ABC):
    def __init__(self, input: SSAValue | Operation, axis: int = -1):
        super().__init__(input, {"axis": int_(axis)})

    def expected_shape(self) -> tuple[int, ...]:
        shape = shape_of(self.input)
        shapes.normalize_axis(self.axis.value.data, len(shape))
        return shape


@irdl_op_definition
class SoftmaxOp(_AxisOp):
    """`exp(x) / sum(exp(x))` along `axis` (default the last)."""

    name = "nn.softmax"


@irdl_op_definition
class LogSoftmaxOp(_AxisOp):
    """`x - log(sum(exp(x)))` along `axis` (default the last)."""

    name = "nn.log_softmax"


class _NormOp(NNOperation, ABC):
    """`input`, `scale`, `bias` (and statistics) -> a result of the input's type."""

    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    bias = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())
    assembly_format = (
        "$input `,` $scale `,` $bias attr-dict `:` functional-type(operands, results)"
    )

    def _channel_operands(self, names: Sequence[str], note: str = "") -> tuple[int, ...]:
        """The input shape, after checking that the named operands are per channel."""
        shape = shape_of(self.input)
        for name in names:
            operand = getattr(self, name)
            if shape_of(operand) != (shape[1],):
                raise ShapeError(
                    f"{name} shape {list(shape_of(operand))} must be [{shape[1]}]{note}"
                )
        return shape


@irdl_op_definition
class LayerNormOp(LayerNormAttributes, _NormOp):
    """Normalizes over the axes `axis..rank-1` (ONNX `LayerNormalization`'s `axis`;
    PyTorch's `normalized_shape` is `input.shape[axis:]`), then `* scale + bias`, where
    scale and bias have shape `input.shape[axis:]`. Biased variance."""

    name = "nn.layer_norm"

    def __init__(
        self,
        input: SSAValue | Operation,
        scale: SSAValue | Operation,
        bias: SSAValue | Operation,
        axis: int = -1,
        epsilon: float = 1e-5,
    ):
        super().__init__(
            operands=[input, scale, bias],
            result_types=[SSAValue.get(input).type],
            properties=self.norm_properties(axis, epsilon),
        )

    def expected_shape(self) -> tuple[int, ...]:
        shape = shape_of(self.input)
        axis = shapes.normalize_axis(self.axis.value.data, len(shape))
        for name, operand in (("scale", self.scale), ("bias", self.bias)):
            if shape_of(operand) != shape[axis:]:
                raise ShapeError(
                    f"{name} shape {list(shape_of(operand))} must be the normalized "
                    f"shape {list(shape[axis:])}"
                )
        return shape


@irdl_op_definition
class BatchNormOp(BatchNormAttributes, _NormOp):
    """Batch normalization over axis 1 (channels) of a rank >= 2 input:
    `(x - mean) / sqrt(var + epsilon) * scale + bias`.

    Inference mode uses the `mean` and `var` operands (running statistics). With
    `training`, it normalizes with the batch's own statistics (biased variance over
    every axis but 1) and ignores the `mean`/`var` operands' values; updating running
    statistics is left to the training passes.
    """

    name = "nn.batch_norm"

    # xDSL orders a subclass's fields before the ones it inherits: all five here.
    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    bias = operand_def(FloatTensor)
    mean = operand_def(FloatTensor)
    var = operand_def(FloatTensor)

    assembly_format = (
        "$input `,` $scale `,` $bias `,` $mean `,` $var attr-dict `:` "
        "functional-type(operands, results)"
    )

    def __init__(
        self,
        input: SSAValue | Operation,
        scale: SSAValue | Operation,
        bias: SSAValue | Operation,
        mean: SSAValue | Operation,
        var: SSAValue | Operation,
        epsilon: float = 1e-5,
        training: bool = False,
    ):
        super().__init__(
            operands=[input, scale, bias, mean, var],
            result_types=[SSAValue.get(input).type],
            properties=self.norm_properties(epsilon, training),
        )

    def expected_shape(self) -> tuple[int, ...]:
        check_channels(shape_of(self.input))
        return self._channel_operands(("scale", "bias", "mean", "var"), " (the channel count)")


@irdl_op_definition
class GroupNormOp(GroupNormAttributes, _NormOp):
    """Group normalization: channels (axis 1) split into `groups`, each group normalized
    over its channels and all spatial positions, then `* scale + bias` per channel."""

    name = "nn.group_norm"

    def __init__(
        self,
        input: SSAValue | Operation,
        scale: SSAValue | Operation,
        bias: SSAValue | Operation,
        groups: int,
        epsilon: float = 1e-5,
    ):
        super().__init__(
            operands=[input, scale, bias],
            result_types=[SSAValue.get(input).type],
            properties=self.norm_properties(groups, epsilon),
        )

    def expected_shape(self) -> tuple[int, ...]:
        check_channels(shape_of(self.input), self.groups.value.data)
        return self._channel_operands(("scale", "bias"))


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------


class _AxisGradOp(AxisAttribute, SavedGradOp, ABC):
    def __init__(
        self, grad: SSAValue | Operation, saved: SSAValue | Operation, axis: int = -1
    ):
        super().__init__(grad, saved, {"axis": int_(axis)})

    def check(self) -> None:
        shapes.normalize_axis(self.axis.value.data, len(shape_of(self.grad)))


@irdl_op_definition
class SoftmaxGradOp(_AxisGradOp):
    """`y * (dy - sum(dy * y, axis))`, saved = the softmax's output `y`."""

    name = "train.softmax_grad"


@irdl_op_definition
class LogSoftmaxGradOp(_AxisGradOp):
    """`dy - exp(y) * sum(dy, axis)`, saved = the log-softmax's output `y`."""

    name = "train.log_softmax_grad"


class _NormGradOp(TrainOperation, ABC):
    """A gradient of a normalization, from `dy` and the forward input (statistics are
    recomputed from it). (Operands are declared by the subclasses, in order: xDSL
    orders a subclass's fields before the ones it inherits.)"""

    traits = traits_def(Pure())

    def _check_input(self, groups: int | None = None) -> tuple[int, ...]:
        x = shape_of(self.input)
        check_channels(x, groups)
        self.expect("the output gradient", shape_of(self.grad), x)
        return x


class _NormGradInputOp(_NormGradOp, ABC):
    """The input gradient: `dy`, `x`, the scale (and statistics) -> x's type."""

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    assembly_format = (
        "$grad `,` $input `,` $scale attr-dict `:` functional-type(operands, results)"
    )


class _NormGradScaleOp(_NormGradOp, ABC):
    """The scale gradient: `dy`, `x` (and statistics) -> the scale's type."""

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    assembly_format = "$grad `,` $input attr-dict `:` functional-type(operands, results)"


@irdl_op_definition
class LayerNormGradInputOp(LayerNormAttributes, _NormGradInputOp):
    """Gradient of `nn.layer_norm` w.r.t. its input, from `dy`, the input `x` and the
    scale (statistics are recomputed from `x`)."""

    name = "train.layer_norm_grad_input"

    def __init__(self, grad, input, scale, axis: int = -1, epsilon: float = 1e-5):
        super().__init__(
            operands=[grad, input, scale],
            result_types=[SSAValue.get(input).type],
            properties=self.norm_properties(axis, epsilon),
        )

    def check(self) -> None:
        x = shape_of(self.input)
        axis = shapes.normalize_axis(self.axis.value.data, len(x))
        self.expect("the output gradient", shape_of(self.grad), x)
        self.expect("scale", shape_of(self.scale), x[axis:])
        self.expect("the result", shape_of(self.result), x)


@irdl_op_definition
class LayerNormGradScaleOp(LayerNormAttributes, _NormGradScaleOp):
    """Gradient of `nn.layer_norm` w.r.t. its scale: `sum(dy * x_hat)` over the leading
    (not normalized) axes."""

    name = "train.layer_norm_grad_scale"

    def __init__(self, grad, input, axis: int = -1, epsilon: float = 1e-5):
        x = shape_of(input)
        start = shapes.normalize_axis(axis, len(x))
        super().__init__(
            operands=[grad, input],
            result_types=[like(input, x[start:])],
            properties=self.norm_properties(axis, epsilon),
        )

    def check(self) -> None:
        x = shape_of(self.input)
        axis = shapes.normalize_axis(self.axis.value.data, len(x))
        self.expect("the output gradient", shape_of(self.grad), x)
        self.expect("the result", shape_of(self.result), x[axis:])


@irdl_op_definition
class BatchNormGradInputOp(BatchNormAttributes, _NormGradInputOp):
    """Gradient of `nn.batch_norm` w.r.t. its input. Inference mode:
    `dy * scale / sqrt(var + eps)`; `training`: through the batch statistics too."""

    name = "train.batch_norm_grad_input"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    mean = operand_def(FloatTensor)
    var = operand_def(FloatTensor)

    assembly_format = (
        "$grad `,` $input `,` $scale `,` $mean `,` $var attr-dict `:` "
        "functional-type(operands, results)"
    )

    def __init__(self, grad, input, scale, mean, var, epsilon=1e-5, training=False):
        super().__init__(
            operands=[grad, input, scale, mean, var],
            result_types=[SSAValue.get(input).type],
            properties=self.norm_properties(epsilon, training),
        )

    def check(self) -> None:
        x = self._check_input()
        for name in ("scale", "mean", "var"):
            self.expect(name, shape_of(getattr(self, name)), x[1:2])
        self.expect("the result", shape_of(self.result), x)


@irdl_op_definition
class BatchNormGradScaleOp(BatchNormAttributes, _NormGradScaleOp):
    """Gradient of `nn.batch_norm` w.r.t. its scale: `sum(dy * x_hat)` over all axes but
    the channels, `x_hat` normalized as the forward did (`training`: batch statistics)."""

    name = "train.batch_norm_grad_scale"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    mean = operand_def(FloatTensor)
    var = operand_def(FloatTensor)

    assembly_format = (
        "$grad `,` $input `,` $mean `,` $var attr-dict `:` "
        "functional-type(operands, results)"
    )

    def __init__(self, grad, input, mean, var, epsilon=1e-5, training=False):
        super().__init__(
            operands=[grad, input, mean, var],
            result_types=[SSAValue.get(mean).type],
            properties=self.norm_properties(epsilon, training),
        )

    def check(self) -> None:
        x = self._check_input()
        for name in ("mean", "var", "result"):
            self.expect(name, shape_of(getattr(self, name)), x[1:2])


@irdl_op_definition
class GroupNormGradInputOp(GroupNormAttributes, _NormGradInputOp):
    """Gradient of `nn.group_norm` w.r.t. its input (statistics recomputed from `x`)."""

    name = "train.group_norm_grad_input"

    def __init__(self, grad, input, scale, groups: int, epsilon: float = 1e-5):
        super().__init__(
            operands=[grad, input, scale],
            result_types=[SSAValue.get(input).type],
            properties=self.norm_properties(groups, epsilon),
        )

    def check(self) -> None:
        x = self._check_input(self.groups.value.data)
        self.expect("scale", shape_of(self.scale), x[1:2])
        self.expect("the result", shape_of(self.result), x)


@irdl_op_definition
class GroupNormGradScaleOp(GroupNormAttributes, _NormGradScaleOp):
    """Gradient of `nn.group_norm` w.r.t. its scale: `sum(dy * x_hat)` per channel."""

    name = "train.group_norm_grad_scale"

    def __init__(self, grad, input, groups: int, epsilon: float = 1e-5):
        super().__init__(
            operands=[grad, input],
            result_types=[like(input, shape_of(input)[1:2])],
            properties=self.norm_properties(groups, epsilon),
        )

    def check(self) -> None:
        x = self._check_input(self.groups.value.data)
        self.expect("the result", shape_of(self.result), x[1:2])
