"""The linear-algebra op family of `nn` and `train`: `nn.linear`, `nn.matmul`,
`nn.conv2d`, `nn.conv_transpose2d`, and the gradient ops of the linear layer and the
convolutions.

A convolution's attributes (`stride`, `padding`, `dilation`, `groups`, and
`output_padding` for the transposed one) are declared once, in `ConvAttributes` and
`ConvTransposeAttributes`, which the forward ops and their gradient ops share with the
shape rule they imply (`forward_shape`). Each gradient op checks the output gradient
against the forward shape rule applied to its result (the input or weight type it
stands for).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    I64,
    DenseArrayBase,
    IntegerAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure

from edge_opt.dialects.base import (
    FloatTensor,
    NNOperation,
    TrainOperation,
    element_of,
    flag,
    int_,
    ints,
    like,
    shape_of,
)
from edge_opt.support import shapes
from edge_opt.support.shapes import ShapeError

# --------------------------------------------------------------------------------------
# The attributes of a convolution
# --------------------------------------------------------------------------------------

_CONV_DEFAULTS: dict[str, object] = {
    "stride": (1, 1), "padding": (0, 0, 0, 0), "output_padding": (0, 0),
    "dilation": (1, 1), "groups": 1,
}


class ConvAttributes:
    """The properties of `nn.conv2d` and of its gradient ops, and the shape rule they
    imply."""

    BUILD_ORDER: ClassVar[tuple[str, ...]] = ("stride", "padding", "dilation", "groups")
    """The order in which the forward op's builder sets them (and they print)."""

    stride = prop_def(DenseArrayBase.constr(i64), default_value=ints([1, 1]))
    padding = prop_def(DenseArrayBase.constr(i64), default_value=ints([0, 0, 0, 0]))
    dilation = prop_def(DenseArrayBase.constr(i64), default_value=ints([1, 1]))
    groups = prop_def(IntegerAttr[I64], default_value=int_(1))

    irdl_options = (ParsePropInAttrDict(),)

    def conv_attributes(self) -> dict[str, object]:
        """The attributes as Python values, by the names the builders and
        `edge_opt.support.shapes` take."""
        return {
            "stride": self.stride.get_values(),
            "padding": self.padding.get_values(),
            "dilation": self.dilation.get_values(),
            "groups": self.groups.value.data,
        }

    @staticmethod
    def shape_rule(input: Sequence[int], weight: Sequence[int],
                   attributes: dict[str, object]) -> tuple[int, ...]:
        """The forward op's result shape."""
        return shapes.conv2d(input, weight, **attributes)  # type: ignore[arg-type]

    def forward_shape(self, input: Sequence[int], weight: Sequence[int]) -> tuple[int, ...]:
        return self.shape_rule(input, weight, self.conv_attributes())


class ConvTransposeAttributes(ConvAttributes):
    """The properties of `nn.conv_transpose2d` and of its gradient ops."""

    BUILD_ORDER: ClassVar[tuple[str, ...]] = (
        "stride", "padding", "output_padding", "dilation", "groups"
    )

    output_padding = prop_def(DenseArrayBase.constr(i64), default_value=ints([0, 0]))

    def conv_attributes(self) -> dict[str, object]:
        return {**super().conv_attributes(), "output_padding": self.output_padding.get_values()}

    @staticmethod
    def shape_rule(input: Sequence[int], weight: Sequence[int],
                   attributes: dict[str, object]) -> tuple[int, ...]:
        return shapes.conv_transpose2d(input, weight, **attributes)  # type: ignore[arg-type]


def conv_properties(attributes: dict[str, object]) -> dict[str, Attribute]:
    """Properties from convolution attributes given as Python values, in the order
    given."""
    unknown = set(attributes) - set(_CONV_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown convolution attributes {sorted(unknown)}")
    return {
        key: int_(value) if isinstance(value, int) else ints(value)  # type: ignore[arg-type]
        for key, value in attributes.items()
    }


# --------------------------------------------------------------------------------------
# Forward ops
# --------------------------------------------------------------------------------------


class _WeightedOp(NNOperation, ABC):
    """`input` and `weight`, an optional per-output-channel `bias`."""

    input = operand_def(FloatTensor)
    weight = operand_def(FloatTensor)
    bias = opt_operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())

    assembly_format = (
        "$input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, "
        "results)"
    )

    CHANNEL_AXIS: ClassVar[int] = -1
    """The result axis of the output channels, which the bias has."""

    def forward_shape(self, input: Sequence[int], weight: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError

    def expected_shape(self) -> tuple[int, ...]:
        shape = self.forward_shape(shape_of(self.input), shape_of(self.weight))
        channels = shape[self.CHANNEL_AXIS]
        if self.bias is not None and shape_of(self.bias) != (channels,):
            raise ShapeError(
                f"bias shape {list(shape_of(self.bias))} must be [{channels}]"
            )
        return shape


@irdl_op_definition
class LinearOp(_WeightedOp):
    """`input @ weight.T + bias`: (..., in) x (out, in) [+ (out,)] -> (..., out)."""

    name = "nn.linear"

    def __init__(
        self,
        input: SSAValue | Operation,
        weight: SSAValue | Operation,
        bias: SSAValue | Operation | None = None,
    ):
        shape = shapes.linear(shape_of(input), shape_of(weight))
        super().__init__(
            operands=[input, weight, bias],
            result_types=[TensorType(element_of(input), shape)],
        )

    def forward_shape(self, input: Sequence[int], weight: Sequence[int]) -> tuple[int, ...]:
        return shapes.linear(input, weight)


@irdl_op_definition
class MatmulOp(NNOperation):
    """Batched matrix product `op(lhs) @ op(rhs)`, `op` transposing the last two axes
    when `transpose_lhs` / `transpose_rhs` is set; batch axes broadcast."""

    name = "nn.matmul"

    lhs = operand_def(FloatTensor)
    rhs = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    transpose_lhs = opt_prop_def(UnitAttr)
    transpose_rhs = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    assembly_format = (
        "$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` "
        "type($result)"
    )

    def __init__(
        self,
        lhs: SSAValue | Operation,
        rhs: SSAValue | Operation,
        transpose_lhs: bool = False,
        transpose_rhs: bool = False,
    ):
        shape = shapes.matmul(shape_of(lhs), shape_of(rhs), transpose_lhs, transpose_rhs)
        super().__init__(
            operands=[lhs, rhs],
            result_types=[TensorType(element_of(lhs), shape)],
            properties={
                "transpose_lhs": flag(transpose_lhs),
                "transpose_rhs": flag(transpose_rhs),
            },
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.matmul(
            shape_of(self.lhs),
            shape_of(self.rhs),
            self.transpose_lhs is not None,
            self.transpose_rhs is not None,
        )


class _ConvOp(_WeightedOp, ABC):
    """A convolution: NCHW input, the bias per output channel (axis 1)."""

    CHANNEL_AXIS: ClassVar[int] = 1
    BUILD_ORDER: ClassVar[tuple[str, ...]]

    def shape_rule(self, input, weight, attributes) -> tuple[int, ...]:
        raise NotImplementedError

    def __init__(
        self,
        input: SSAValue | Operation,
        weight: SSAValue | Operation,
        bias: SSAValue | Operation | None = None,
        **attributes: object,
    ):
        """`attributes`: `stride`, `padding`, `dilation`, `groups` (and
        `output_padding` for the transposed convolution), each defaulting as the
        property does."""
        unknown = set(attributes) - set(self.BUILD_ORDER)
        if unknown:
            raise TypeError(f"{self.name}: unknown attributes {sorted(unknown)}")
        values = {k: attributes.get(k, _CONV_DEFAULTS[k]) for k in self.BUILD_ORDER}
        shape = self.shape_rule(shape_of(input), shape_of(weight), values)
        super().__init__(
            operands=[input, weight, bias],
            result_types=[TensorType(element_of(input), shape)],
            properties=conv_properties(values),
        )


@irdl_op_definition
class Conv2dOp(ConvAttributes, _ConvOp):
    """2-D convolution (cross-correlation), NCHW input, weight (O, C/groups, kh, kw).

    `groups == C == O` is a depthwise convolution.
    """

    name = "nn.conv2d"


@irdl_op_definition
class ConvTranspose2dOp(ConvTransposeAttributes, _ConvOp):
    """2-D transposed convolution (the gradient of `nn.conv2d` w.r.t. its input),
    NCHW input, weight (C, O/groups, kh, kw), as `torch.nn.functional.conv_transpose2d`.
    """

    name = "nn.conv_transpose2d"


# --------------------------------------------------------------------------------------
# Gradient ops
# --------------------------------------------------------------------------------------


class _GradInputOp(TrainOperation, ABC):
    """The gradient w.r.t. the forward op's input, from `dy` and the weight; the result
    type is the forward input's."""

    grad = operand_def(FloatTensor)
    weight = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())
    assembly_format = "$grad `,` $weight attr-dict `:` functional-type(operands, results)"

    def forward_shape(self, input: Sequence[int], weight: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError

    def check(self) -> None:
        self.expect(
            "the output gradient",
            shape_of(self.grad),
            self.forward_shape(shape_of(self.result), shape_of(self.weight)),
        )


class _GradWeightOp(TrainOperation, ABC):
    """The gradient w.r.t. the forward op's weight, from `dy` and the input; the result
    type is the weight's."""

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())
    assembly_format = "$grad `,` $input attr-dict `:` functional-type(operands, results)"

    def forward_shape(self, input: Sequence[int], weight: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError

    def check(self) -> None:
        self.expect(
            "the output gradient",
            shape_of(self.grad),
            self.forward_shape(shape_of(self.input), shape_of(self.result)),
        )


class _LinearShape:
    def forward_shape(self, input: Sequence[int], weight: Sequence[int]) -> tuple[int, ...]:
        return shapes.linear(input, weight)


@irdl_op_definition
class LinearGradInputOp(_LinearShape, _GradInputOp):
    """Gradient of `nn.linear` w.r.t. its input: `dy @ weight`, (..., out) -> (..., in)."""

    name = "train.linear_grad_input"

    def __init__(self, grad, weight):
        dy, w = shape_of(grad), shape_of(weight)
        super().__init__(operands=[grad, weight], result_types=[like(grad, (*dy[:-1], w[1]))])


@irdl_op_definition
class LinearGradWeightOp(_LinearShape, _GradWeightOp):
    """Gradient of `nn.linear` w.r.t. its weight: `dy^T @ x` summed over all leading
    axes, (..., out) and (..., in) -> (out, in)."""

    name = "train.linear_grad_weight"

    def __init__(self, grad, input):
        super().__init__(
            operands=[grad, input],
            result_types=[like(grad, (shape_of(grad)[-1], shape_of(input)[-1]))],
        )


class _ConvGradInputOp(_GradInputOp, ABC):
    def __init__(self, grad, weight, input_type: TensorType, **conv_attrs: object):
        super().__init__(
            operands=[grad, weight], result_types=[input_type],
            properties=conv_properties(conv_attrs),
        )


class _ConvGradWeightOp(_GradWeightOp, ABC):
    def __init__(self, grad, input, weight_type: TensorType, **conv_attrs: object):
        super().__init__(
            operands=[grad, input], result_types=[weight_type],
            properties=conv_properties(conv_attrs),
        )


@irdl_op_definition
class Conv2dGradInputOp(ConvAttributes, _ConvGradInputOp):
    """Gradient of `nn.conv2d` w.r.t. its input (a transposed convolution of `dy` with
    the weight); the result type is the forward input's."""

    name = "train.conv2d_grad_input"


@irdl_op_definition
class Conv2dGradWeightOp(ConvAttributes, _ConvGradWeightOp):
    """Gradient of `nn.conv2d` w.r.t. its weight (correlation of the input with `dy`);
    the result type is the weight's."""

    name = "train.conv2d_grad_weight"


@irdl_op_definition
class ConvTranspose2dGradInputOp(ConvTransposeAttributes, _ConvGradInputOp):
    """Gradient of `nn.conv_transpose2d` w.r.t. its input (a convolution of `dy` with
    the weight); the result type is the forward input's."""

    name = "train.conv_transpose2d_grad_input"


@irdl_op_definition
class ConvTranspose2dGradWeightOp(ConvTransposeAttributes, _ConvGradWeightOp):
    """Gradient of `nn.conv_transpose2d` w.r.t. its weight; the result type is the
    weight's."""

    name = "train.conv_transpose2d_grad_weight"
