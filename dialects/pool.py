"""The pooling op family of `nn` and `train`: `nn.max_pool2d`, `nn.avg_pool2d`,
`nn.global_avg_pool`, `train.max_pool2d_with_indices` (the max pool `autodiff` runs, so
that the backward keeps an index mask rather than the input) and the pooling gradients.

The window attributes (`kernel`, `stride`, `padding`, `ceil_mode`, and `dilation` for
the max pools, `count_include_pad` for the average pools) are declared once, in
`PoolAttributes` and its two extensions, with the shape rule they imply.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerType,
    Signedness,
    TensorType,
    UnitAttr,
    i64,
)
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
    TrainOperation,
    flag,
    ints,
    like,
    shape_of,
)
from edge_opt.support import shapes
from edge_opt.support.shapes import ShapeError

ui8 = IntegerType(8, Signedness.UNSIGNED)
MAX_POOL_WINDOW = 256
"""Largest kernel area whose window-local argmax fits the ui8 index mask."""


class PoolAttributes:
    """The window of a 2-D pool, shared by the pooling ops and their gradients."""

    kernel = prop_def(DenseArrayBase.constr(i64))
    stride = prop_def(DenseArrayBase.constr(i64), default_value=ints([1, 1]))
    padding = prop_def(DenseArrayBase.constr(i64), default_value=ints([0, 0, 0, 0]))
    ceil_mode = opt_prop_def(UnitAttr)

    irdl_options = (ParsePropInAttrDict(),)

    def _dilation(self) -> tuple[int, ...]:
        return (1, 1)

    def pool_attributes(self) -> dict[str, object]:
        """`kernel`, `stride`, `padding`, `ceil_mode` as Python values (the keyword
        arguments of the builders and the numerics)."""
        return {
            "kernel": self.kernel.get_values(),
            "stride": self.stride.get_values(),
            "padding": self.padding.get_values(),
            "ceil_mode": self.ceil_mode is not None,
        }

    def pooled_shape(self, input: Sequence[int]) -> tuple[int, ...]:
        """The pooled shape of an input of shape `input`."""
        a = self.pool_attributes()
        return shapes.pool2d(
            input, a["kernel"], a["stride"], a["padding"], self._dilation(),  # type: ignore[arg-type]
            a["ceil_mode"],  # type: ignore[arg-type]
        )


class MaxPoolAttributes(PoolAttributes):
    """A max pool's window, with `dilation`."""

    dilation = prop_def(DenseArrayBase.constr(i64), default_value=ints([1, 1]))

    def _dilation(self) -> tuple[int, ...]:
        return self.dilation.get_values()


class AvgPoolAttributes(PoolAttributes):
    """An average pool's window, with `count_include_pad`."""

    count_include_pad = opt_prop_def(UnitAttr)


def pool_properties(
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    ceil_mode: bool,
    dilation: Sequence[int] | None = None,
    count_include_pad: bool | None = None,
) -> dict[str, Attribute | None]:
    """The properties of a pooling op in the order every builder sets them."""
    properties: dict[str, Attribute | None] = {
        "kernel": ints(kernel), "stride": ints(stride), "padding": ints(padding),
    }
    if dilation is not None:
        properties["dilation"] = ints(dilation)
    properties["ceil_mode"] = flag(ceil_mode)
    if count_include_pad is not None:
        properties["count_include_pad"] = flag(count_include_pad)
    return properties


def _pooled(input: SSAValue | Operation, kernel, stride, padding, dilation,
            ceil_mode: bool) -> TensorType:
    """The result type of pooling `input`."""
    return like(input, shapes.pool2d(shape_of(input), kernel, stride, padding, dilation,
                                     ceil_mode))


def _check_mask_window(kernel: Sequence[int]) -> None:
    kh, kw = kernel
    if kh * kw > MAX_POOL_WINDOW:
        raise ShapeError(
            f"kernel {kh}x{kw} has more than {MAX_POOL_WINDOW} positions, which a "
            "ui8 index mask cannot address"
        )


# --------------------------------------------------------------------------------------
# nn
# --------------------------------------------------------------------------------------


class _Pool2dOp(NNOperation, ABC):
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def pooled_shape(self, input: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError

    def expected_shape(self) -> tuple[int, ...]:
        return self.pooled_shape(shape_of(self.input))


@irdl_op_definition
class MaxPool2dOp(MaxPoolAttributes, _Pool2dOp):
    """2-D max pooling; padding never wins (it is -inf)."""

    name = "nn.max_pool2d"

    def __init__(
        self,
        input: SSAValue | Operation,
        kernel: Sequence[int],
        stride: Sequence[int] | None = None,
        padding: Sequence[int] = (0, 0, 0, 0),
        dilation: Sequence[int] = (1, 1),
        ceil_mode: bool = False,
    ):
        stride = kernel if stride is None else stride
        super().__init__(
            operands=[input],
            result_types=[_pooled(input, kernel, stride, padding, dilation, ceil_mode)],
            properties=pool_properties(kernel, stride, padding, ceil_mode, dilation),
        )


@irdl_op_definition
class AvgPool2dOp(AvgPoolAttributes, _Pool2dOp):
    """2-D average pooling. With `count_include_pad` the divisor counts the padding
    (but not the part of a ceil-mode window beyond it), as PyTorch."""

    name = "nn.avg_pool2d"

    def __init__(
        self,
        input: SSAValue | Operation,
        kernel: Sequence[int],
        stride: Sequence[int] | None = None,
        padding: Sequence[int] = (0, 0, 0, 0),
        ceil_mode: bool = False,
        count_include_pad: bool = False,
    ):
        stride = kernel if stride is None else stride
        super().__init__(
            operands=[input],
            result_types=[_pooled(input, kernel, stride, padding, (1, 1), ceil_mode)],
            properties=pool_properties(kernel, stride, padding, ceil_mode,
                                       count_include_pad=count_include_pad),
        )


@irdl_op_definition
class GlobalAvgPoolOp(NNOperation):
    """Mean over every axis after the first two: (N, C, ...) -> (N, C, 1, ...)."""

    name = "nn.global_avg_pool"

    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, input: SSAValue | Operation):
        super().__init__(
            operands=[input],
            result_types=[like(input, self._shape_for(shape_of(input)))],
        )

    @staticmethod
    def _shape_for(shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) < 3:
            raise ShapeError(f"input must have rank >= 3, got {list(shape)}")
        return (*shape[:2], *(1 for _ in shape[2:]))

    def expected_shape(self) -> tuple[int, ...]:
        return self._shape_for(shape_of(self.input))


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------


class _PoolTrainOp(TrainOperation, ABC):
    traits = traits_def(Pure())

    def pooled_shape(self, input: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError


@irdl_op_definition
class MaxPool2dWithIndicesOp(MaxPoolAttributes, _PoolTrainOp):
    """`nn.max_pool2d` that also returns, per output, the window-local position
    `i * kw + j` of the maximum (the first on ties) as a `ui8` index mask, which is all
    that its backward needs of the forward pass."""

    name = "train.max_pool2d_with_indices"

    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    indices = result_def(TensorType.constr(ui8))
    INDEX_VALUES: ClassVar = ("indices",)

    assembly_format = "$input attr-dict `:` type($input) `->` type($result) `,` type($indices)"

    def __init__(self, input, kernel, stride, padding, dilation, ceil_mode: bool):
        pooled = _pooled(input, kernel, stride, padding, dilation, ceil_mode)
        super().__init__(
            operands=[input],
            result_types=[pooled, TensorType(ui8, pooled.get_shape())],
            properties=pool_properties(kernel, stride, padding, ceil_mode, dilation),
        )

    def check(self) -> None:
        _check_mask_window(self.kernel.get_values())
        expected = self.pooled_shape(shape_of(self.input))
        self.expect("the result", shape_of(self.result), expected)
        self.expect("the indices", shape_of(self.indices), expected)


@irdl_op_definition
class MaxPool2dGradOp(MaxPoolAttributes, _PoolTrainOp):
    """Gradient of `nn.max_pool2d` w.r.t. its input: each `dy` goes to the input position
    its window's index mask names (summed where windows overlap)."""

    name = "train.max_pool2d_grad"

    grad = operand_def(FloatTensor)
    indices = operand_def(TensorType.constr(ui8))
    result = result_def(FloatTensor)
    INDEX_VALUES: ClassVar = ("indices",)

    assembly_format = (
        "$grad `,` $indices attr-dict `:` functional-type(operands, results)"
    )

    def __init__(self, grad, indices, input_type: TensorType, kernel, stride, padding,
                 dilation, ceil_mode: bool):
        super().__init__(
            operands=[grad, indices],
            result_types=[input_type],
            properties=pool_properties(kernel, stride, padding, ceil_mode, dilation),
        )

    def check(self) -> None:
        _check_mask_window(self.kernel.get_values())
        expected = self.pooled_shape(shape_of(self.result))
        self.expect("the output gradient", shape_of(self.grad), expected)
        self.expect("the indices", shape_of(self.indices), expected)


@irdl_op_definition
class AvgPool2dGradOp(AvgPoolAttributes, _PoolTrainOp):
    """Gradient of `nn.avg_pool2d` w.r.t. its input: each `dy` spread evenly (by the
    forward's divisor) over its window."""

    name = "train.avg_pool2d_grad"

    grad = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    assembly_format = "$grad attr-dict `:` type($grad) `->` type($result)"

    def __init__(self, grad, input_type: TensorType, kernel, stride, padding,
                 ceil_mode: bool, count_include_pad: bool):
        super().__init__(
            operands=[grad],
            result_types=[input_type],
            properties=pool_properties(kernel, stride, padding, ceil_mode,
                                       count_include_pad=count_include_pad),
        )

    def check(self) -> None:
        self.expect(
            "the output gradient", shape_of(self.grad), self.pooled_shape(shape_of(self.result))
        )
