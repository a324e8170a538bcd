"""What the ops of the tensor-level dialects (`nn`, `train`) share: the base classes that
verify shapes and element types with op-named errors, string choices declared as
`Literal` types, and the small attribute and type helpers of their builders."""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping, Sequence
from typing import ClassVar, get_args

from xdsl.dialects.builtin import (
    AnyFloatConstr,
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    MemRefType,
    StringAttr,
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.irdl import (
    BaseAttr,
    IRDLOperation,
    VarConstraint,
    operand_def,
    result_def,
    traits_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

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
