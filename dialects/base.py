"""What the ops of the tensor-level dialects (`nn`, `train`) share: the base classes that
verify shapes and element types with op-named errors, string choices declared as
`Literal` types, the small attribute and type helpers of their builders, and the
attribute blocks a forward op and its gradient ops have in common (a convolution's
stride, padding, dilation and groups; a pool's window; a normalization's epsilon...),
each declared once and mixed into the ops of both dialects."""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping, Sequence
from typing import ClassVar, get_args

from xdsl.dialects.builtin import (
    I64,
    AnyFloatConstr,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    MemRefType,
    Signedness,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    BaseAttr,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from edge_opt.support import shapes
from edge_opt.support.shapes import ShapeError

FloatTensor = TensorType.constr(AnyFloatConstr)
IntTensor = TensorType.constr(BaseAttr(IntegerType))

# --------------------------------------------------------------------------------------
# Builders' helpers
# --------------------------------------------------------------------------------------


def ints(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def int_(value: int) -> IntegerAttr:
    return IntegerAttr(value, 64)


def float_(value: float) -> FloatAttr:
    return FloatAttr(value, f32)


def flag(value: bool) -> UnitAttr | None:
    return UnitAttr() if value else None


def tensor_of(value: SSAValue | Operation) -> TensorType:
    value = SSAValue.get(value)
    if not isinstance(value.type, TensorType):
        raise VerifyException(f"expected a tensor value, got {value.type}")
    return value.type


def shape_of(value: SSAValue | Operation) -> tuple[int, ...]:
    return tensor_of(value).get_shape()


def element_of(value: SSAValue | Operation) -> Attribute:
    return tensor_of(value).element_type


def like(value: SSAValue | Operation, shape: Sequence[int]) -> TensorType:
    """A tensor type of `value`'s element type with `shape`."""
    return TensorType(element_of(value), shape)


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


def verify_static_shapes(op: Operation, types: Sequence[tuple[str, Attribute]] = ()) -> None:
    """Every tensor and buffer edge-opt handles has a static shape whose dimensions
    are at least 1: memory is planned statically, and an empty tensor has no kernel.
    Checks the operands and results of `op` and the named `types`."""
    named = [
        *types,
        *((f"operand {i}", v.type) for i, v in enumerate(op.operands)),
        *((f"result {i}", v.type) for i, v in enumerate(op.results)),
    ]
    for what, type in named:
        if not isinstance(type, TensorType | MemRefType):
            continue
        shape = type.get_shape()
        if all(d >= 1 for d in shape):
            continue
        problem = (
            "a dynamic dimension (?)" if any(d < 0 for d in shape) else "an empty dimension (0)"
        )
        raise VerifyException(
            f"{op.name}: {what} has type {type} with {problem}; edge-opt needs static "
            "shapes with every dimension at least 1 (for an imported model, give the "
            "sizes with `edge-opt import --input-shape NAME=D0,D1,...`)"
        )


def check_choices(op: Operation, choices: Mapping[str, object]) -> None:
    """Raises `ShapeError` if a string property of `op` named in `choices` is not one
    of the values of its `Literal` type."""
    for name, literal in choices.items():
        allowed = get_args(literal)
        value = op.properties.get(name)
        if isinstance(value, StringAttr) and value.data not in allowed:
            quoted = [f'"{v}"' for v in allowed]
            expected = ", ".join(quoted[:-1]) + " or " + quoted[-1]
            raise ShapeError(f'{name} must be {expected}, got "{value.data}"')


def verify_element_types(op: Operation, values: Sequence[SSAValue]) -> None:
    """`values` (those that are tensors) share one element type."""
    element_types = {
        value.type.element_type for value in values if isinstance(value.type, TensorType)
    }
    if len(element_types) > 1:
        raise VerifyException(
            f"{op.name}: operand and result element types differ "
            f"({', '.join(sorted(str(t) for t in element_types))})"
        )


class NNOperation(IRDLOperation, ABC):
    """Base of all `nn` tensor ops: shape checking with op-named errors. String
    properties with a fixed set of values name their `Literal` type in `CHOICES`."""

    CHOICES: ClassVar[Mapping[str, object]] = {}

    def expected_shape(self) -> tuple[int, ...] | None:
        """The result shape the op's rule gives, or None if the op states no rule."""
        return None

    def verify_(self) -> None:
        verify_static_shapes(self)
        try:
            check_choices(self, self.CHOICES)
            expected = self.expected_shape()
        except ShapeError as e:
            raise VerifyException(f"{self.name}: {e}") from None
        if expected is None:
            return
        result = self.results[0].type
        assert isinstance(result, TensorType)
        if tuple(result.get_shape()) != tuple(expected):
            raise VerifyException(
                f"{self.name}: result shape {list(result.get_shape())} does not match "
                f"the shape {list(expected)} computed from the operands and attributes"
            )
        data = [o for o in self.operands if self._is_data_operand(o)]
        verify_element_types(self, [*data, self.results[0]])

    def _is_data_operand(self, operand: SSAValue) -> bool:
        """Whether the operand's element type must equal the result's."""
        return True


class TrainOperation(IRDLOperation, ABC):
    """Base of the `train` ops: `check()` raises `ShapeError`, reported with the op
    name. Operands and results share one element type, except those named in
    `INDEX_VALUES` (labels, index masks, the step counter). String properties with a
    fixed set of values name their `Literal` type in `CHOICES`."""

    INDEX_VALUES: ClassVar[tuple[str, ...]] = ()
    CHOICES: ClassVar[Mapping[str, object]] = {}

    def check(self) -> None:
        """Raises `ShapeError` if a shape or attribute rule is broken."""

    def verify_(self) -> None:
        verify_static_shapes(self)
        try:
            check_choices(self, self.CHOICES)
            self.check()
        except ShapeError as e:
            raise VerifyException(f"{self.name}: {e}") from None
        exempt = {SSAValue.get(getattr(self, name)) for name in self.INDEX_VALUES}
        values = [v for v in (*self.operands, *self.results) if v not in exempt]
        verify_element_types(self, values)

    @staticmethod
    def expect(what: str, actual: Sequence[int], expected: Sequence[int]) -> None:
        if tuple(actual) != tuple(expected):
            raise ShapeError(f"{what} has shape {list(actual)}, expected {list(expected)}")


class ParamRefOp(IRDLOperation, ABC):
    """An op on parameter `@param` (a symbol of the module's `nn.param`s), built from the
    parameter's name or symbol."""

    param = prop_def(SymbolRefAttr)

    @staticmethod
    def symbol(param: str | SymbolRefAttr) -> SymbolRefAttr:
        return SymbolRefAttr(param) if isinstance(param, str) else param


class ParamReadOp(ParamRefOp, ABC):
    """The value (or buffer) of `@param` as its one result: `OP @name : type`."""

    assembly_format = "$param `:` type($result) attr-dict"

    def __init__(self, param: str | SymbolRefAttr, type: Attribute):
        super().__init__(properties={"param": self.symbol(param)}, result_types=[type])


# --------------------------------------------------------------------------------------
# Layouts shared by several families
# --------------------------------------------------------------------------------------


class SameTypeUnaryOp(NNOperation, ABC):
    """One float operand and a result of its type: `nn.OP %x {...} : type`."""

    T: ClassVar = VarConstraint("T", FloatTensor)
    input = operand_def(T)
    result = result_def(T)

    traits = traits_def(Pure())

    assembly_format = "$input attr-dict `:` type($input)"

    def __init__(self, input: SSAValue | Operation,
                 properties: Mapping[str, Attribute | None] | None = None):
        IRDLOperation.__init__(
            self,
            operands=[input],
            result_types=[SSAValue.get(input).type],
            properties=dict(properties or {}),  # type: ignore[arg-type]
        )


class SavedGradOp(TrainOperation, ABC):
    """`dx` from the output gradient `dy` and one saved forward value (the op's input
    `x` or output `y`, as each op says), all of one type:
    `train.OP %dy, %saved {...} : type`."""

    T: ClassVar = VarConstraint("T", FloatTensor)
    grad = operand_def(T)
    saved = operand_def(T)
    result = result_def(T)

    traits = traits_def(Pure())
    assembly_format = "$grad `,` $saved attr-dict `:` type($grad)"

    def __init__(self, grad: SSAValue | Operation, saved: SSAValue | Operation,
                 properties: Mapping[str, Attribute | None] | None = None):
        IRDLOperation.__init__(
            self,
            operands=[grad, saved],
            result_types=[SSAValue.get(grad).type],
            properties=dict(properties or {}),  # type: ignore[arg-type]
        )


# --------------------------------------------------------------------------------------
# Linear algebra: linear, matmul, convolutions
# --------------------------------------------------------------------------------------

CONV_DEFAULTS: dict[str, object] = {
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
    unknown = set(attributes) - set(CONV_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown convolution attributes {sorted(unknown)}")
    return {
        key: int_(value) if isinstance(value, int) else ints(value)  # type: ignore[arg-type]
        for key, value in attributes.items()
    }


# --------------------------------------------------------------------------------------
# Normalizations and softmax
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
# Pooling
# --------------------------------------------------------------------------------------


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


def pooled_type(input: SSAValue | Operation, kernel, stride, padding, dilation,
            ceil_mode: bool) -> TensorType:
    """The result type of pooling `input`."""
    return like(input, shapes.pool2d(shape_of(input), kernel, stride, padding, dilation,
                                     ceil_mode))


# --------------------------------------------------------------------------------------
# Shape and data movement
# --------------------------------------------------------------------------------------


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
