"""The shape op family of `nn` and `train`: reshape, broadcast, pad, transpose,
concatenate, slice, gather, squeeze/unsqueeze and the reductions (any element type but
for the reductions), with `train.slice_grad` and `train.scatter`, which share the slice
and index attributes of `nn.slice` and `nn.gather`."""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import ClassVar

from xdsl.dialects.builtin import (
    I64,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    BaseAttr,
    ParsePropInAttrDict,
    VarConstraint,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import Pure

from edge_opt.dialects.base import (
    FloatTensor,
    NNOperation,
    TrainOperation,
    element_of,
    flag,
    float_,
    int_,
    ints,
    shape_of,
)
from edge_opt.support import shapes


class _ShapeOp(NNOperation, ABC):
    """One operand of any element type; the result type says the new shape."""

    input = operand_def(TensorType)
    result = result_def(TensorType)

    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def _build(self, input: SSAValue | Operation, shape: Sequence[int],
               properties: dict[str, Attribute | None] | None = None) -> None:
        super().__init__(
            operands=[input],
            result_types=[TensorType(element_of(input), shape)],
            properties=properties or {},
        )


class _ShapeAttrOp(_ShapeOp, ABC):
    """A shape op with properties (parsed from the attribute dictionary)."""

    irdl_options = (ParsePropInAttrDict(),)


class SliceAttributes:
    """`starts`, `ends`, `steps` of `nn.slice` and `train.slice_grad`."""

    starts = prop_def(DenseArrayBase.constr(i64))
    ends = prop_def(DenseArrayBase.constr(i64))
    steps = prop_def(DenseArrayBase.constr(i64))

    @staticmethod
    def slice_properties(starts, ends, steps) -> dict[str, Attribute]:
        return {"starts": ints(starts), "ends": ints(ends), "steps": ints(steps)}

    def sliced_shape(self, input: Sequence[int]) -> tuple[int, ...]:
        return shapes.slice_(
            input, self.starts.get_values(), self.ends.get_values(), self.steps.get_values()
        )


class IndexAttributes:
    """`axis` and `indices` of `nn.gather` and `train.scatter`."""

    axis = prop_def(IntegerAttr[I64])
    indices = prop_def(DenseArrayBase.constr(i64))

    @staticmethod
    def index_properties(indices: Sequence[int], axis: int) -> dict[str, Attribute]:
        return {"axis": int_(axis), "indices": ints(indices)}


# --------------------------------------------------------------------------------------
# nn
# --------------------------------------------------------------------------------------


@irdl_op_definition
class ReshapeOp(_ShapeOp):
    """Row-major reshape to the result type's shape."""

    name = "nn.reshape"

    def __init__(self, input: SSAValue | Operation, shape: Sequence[int]):
        self._build(input, shape)

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.reshape(shape_of(self.input), shape_of(self.result))


@irdl_op_definition
class BroadcastToOp(_ShapeOp):
    """NumPy broadcasting of the input to the result type's shape (ONNX `Expand`)."""

    name = "nn.broadcast_to"

    def __init__(self, input: SSAValue | Operation, shape: Sequence[int]):
        shapes.broadcast_to(shape_of(input), shape)
        self._build(input, shape)

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.broadcast_to(shape_of(self.input), shape_of(self.result))


@irdl_op_definition
class PadOp(_ShapeAttrOp):
    """Constant padding: `pads` holds the padding before each axis, then after each
    axis (ONNX `Pad`'s order), all >= 0; new elements are `value` (`F.pad` with mode
    "constant"). The importer writes ONNX's reflect, edge and wrap modes as slices and
    concatenations.

        %y = nn.pad %x {pads = array<i64: 0, 0, 1, 2, 0, 0, 1, 2>} : tensor<1x2x4x4xf32> -> tensor<1x2x6x8xf32>
    """

    name = "nn.pad"

    pads = prop_def(DenseArrayBase.constr(i64))
    value = prop_def(FloatAttr, default_value=float_(0.0))

    def __init__(
        self, input: SSAValue | Operation, pads: Sequence[int], value: float = 0.0
    ):
        shape = shapes.pad(shape_of(input), pads)
        self._build(input, shape, {"pads": ints(pads), "value": float_(value)})

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.pad(shape_of(self.input), self.pads.get_values())


@irdl_op_definition
class TransposeOp(_ShapeAttrOp):
    """`result.shape[i] = input.shape[perm[i]]`."""

    name = "nn.transpose"

    perm = prop_def(DenseArrayBase.constr(i64))

    def __init__(self, input: SSAValue | Operation, perm: Sequence[int]):
        self._build(input, shapes.transpose(shape_of(input), perm), {"perm": ints(perm)})

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.transpose(shape_of(self.input), self.perm.get_values())


@irdl_op_definition
class ConcatOp(NNOperation):
    """Concatenation along `axis`."""

    name = "nn.concat"

    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    axis = prop_def(IntegerAttr[I64])

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$inputs attr-dict `:` functional-type($inputs, $result)"

    def __init__(self, inputs: Sequence[SSAValue | Operation], axis: int):
        shape = shapes.concat([shape_of(i) for i in inputs], axis)
        super().__init__(
            operands=[inputs],
            result_types=[TensorType(element_of(inputs[0]), shape)],
            properties={"axis": int_(axis)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.concat([shape_of(i) for i in self.inputs], self.axis.value.data)


@irdl_op_definition
class SliceOp(SliceAttributes, _ShapeAttrOp):
    """Per axis, the elements at indices `range(start, end, step)` (Python's `range`:
    no wrapping of negative bounds; `end = -1` with a negative step reaches index 0)."""

    name = "nn.slice"

    def __init__(
        self,
        input: SSAValue | Operation,
        starts: Sequence[int],
        ends: Sequence[int],
        steps: Sequence[int] | None = None,
    ):
        steps = [1] * len(starts) if steps is None else steps
        shape = shapes.slice_(shape_of(input), starts, ends, steps)
        self._build(input, shape, self.slice_properties(starts, ends, steps))

    def expected_shape(self) -> tuple[int, ...]:
        return self.sliced_shape(shape_of(self.input))


@irdl_op_definition
class GatherOp(IndexAttributes, _ShapeAttrOp):
    """The slices of the input at `indices` along `axis`, in the order listed (repeats
    allowed): `torch.index_select(input, axis, indices)`, ONNX `Gather` with constant
    1-D indices. Indices are in `[0, size)`; the importer resolves ONNX's negative ones.

        %y = nn.gather %x {axis = 0 : i64, indices = array<i64: 3, 1>} : tensor<4x5xf32> -> tensor<2x5xf32>
    """

    name = "nn.gather"

    def __init__(self, input: SSAValue | Operation, indices: Sequence[int], axis: int):
        shape = shapes.gather(shape_of(input), indices, axis)
        self._build(input, shape, self.index_properties(indices, axis))

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.gather(
            shape_of(self.input), self.indices.get_values(), self.axis.value.data
        )


class _AxesShapeOp(_ShapeAttrOp, ABC):
    axes = prop_def(DenseArrayBase.constr(i64))

    def __init__(self, input: SSAValue | Operation, axes: Sequence[int]):
        self._build(input, self.shape_rule(shape_of(input), axes), {"axes": ints(axes)})

    @staticmethod
    def shape_rule(input: Sequence[int], axes: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError

    def expected_shape(self) -> tuple[int, ...]:
        return self.shape_rule(shape_of(self.input), self.axes.get_values())


@irdl_op_definition
class SqueezeOp(_AxesShapeOp):
    """Removes the listed size-1 axes."""

    name = "nn.squeeze"

    shape_rule = staticmethod(shapes.squeeze)


@irdl_op_definition
class UnsqueezeOp(_AxesShapeOp):
    """Inserts size-1 axes at the listed positions of the result."""

    name = "nn.unsqueeze"

    shape_rule = staticmethod(shapes.unsqueeze)


class _ReduceOp(NNOperation, ABC):
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    axes = prop_def(DenseArrayBase.constr(i64))
    keepdims = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(
        self, input: SSAValue | Operation, axes: Sequence[int], keepdims: bool = False
    ):
        shape = shapes.reduce(shape_of(input), axes, keepdims)
        super().__init__(
            operands=[input],
            result_types=[TensorType(element_of(input), shape)],
            properties={"axes": ints(axes), "keepdims": flag(keepdims)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.reduce(
            shape_of(self.input), self.axes.get_values(), self.keepdims is not None
        )


@irdl_op_definition
class ReduceMeanOp(_ReduceOp):
    """Mean over `axes`; with `keepdims` the reduced axes stay with size 1."""

    name = "nn.reduce_mean"


@irdl_op_definition
class ReduceSumOp(_ReduceOp):
    """Sum over `axes`; with `keepdims` the reduced axes stay with size 1."""

    name = "nn.reduce_sum"


# --------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------


@irdl_op_definition
class SliceGradOp(SliceAttributes, TrainOperation):
    """Gradient of `nn.slice` w.r.t. its input: `dy` scattered back to the sliced
    positions of a zero tensor of the input's type."""

    name = "train.slice_grad"

    grad = operand_def(TensorType)
    result = result_def(TensorType)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$grad attr-dict `:` type($grad) `->` type($result)"

    def __init__(self, grad, input_type: TensorType, starts, ends, steps):
        super().__init__(
            operands=[grad],
            result_types=[input_type],
            properties=self.slice_properties(starts, ends, steps),
        )

    def check(self) -> None:
        self.expect(
            "the output gradient", shape_of(self.grad), self.sliced_shape(shape_of(self.result))
        )


@irdl_op_definition
class ScatterOp(IndexAttributes, TrainOperation):
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

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$dest `,` $values attr-dict `:` type($dest) `,` type($values)"

    def __init__(self, dest: SSAValue | Operation, values: SSAValue | Operation,
                 indices: Sequence[int], axis: int):
        shapes.scatter(shape_of(dest), shape_of(values), indices, axis)
        super().__init__(
            operands=[dest, values],
            result_types=[SSAValue.get(dest).type],
            properties=self.index_properties(indices, axis),
        )

    def check(self) -> None:
        shapes.scatter(
            shape_of(self.dest), shape_of(self.values), self.indices.get_values(),
            self.axis.value.data,
        )
