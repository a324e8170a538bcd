"""The element-wise op family of `nn` and `train`, built from the rows of
`edge_opt.support.elementwise` (see there for what a row declares).

For each `Unary` row `NAME` (`leaky_relu`):
- `nn.NAME` (class `LeakyReluOp`): `result[i] = f(input[i])`, same type in and out,
  the row's attributes as properties (f32 scalars, string choices);
- for a row with `gradient="op"`, `train.NAME_grad` (`LeakyReluGradOp`): `dx` from the
  output gradient `dy` and the saved forward value, with the row's gradient attributes.

For each `Binary` row, `nn.NAME` (`AddOp`): `result = f(lhs, rhs)` with NumPy
broadcasting.

The builders take the attributes positionally in the row's order or by name:
`nn.ClipOp(x, 0.0, 6.0)`, `nn.GeluOp(x, approximate="tanh")`,
`train.HardsigmoidGradOp(dy, y, alpha)`. Properties equal to their default are not
printed; an optional one (a clip bound) may be absent.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

from xdsl.dialects.builtin import FloatAttr, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.irdl import (
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import Commutative, Pure

from edge_opt.dialects.base import (
    FloatTensor,
    NNOperation,
    SameTypeUnaryOp,
    SavedGradOp,
    element_of,
    float_,
    shape_of,
)
from edge_opt.support import shapes
from edge_opt.support.elementwise import BINARY, UNARY, Binary, Choice, Scalar, Unary


def class_name(name: str, suffix: str) -> str:
    """`leaky_relu`, `GradOp` -> `LeakyReluGradOp`."""
    return "".join(part.capitalize() for part in name.split("_")) + suffix


class _RowOp:
    """The attributes of an op built from a table row (a mixin of the bases below)."""

    ROW: ClassVar[Unary]
    ATTRIBUTES: ClassVar[tuple[Scalar | Choice, ...]] = ()
    DEFAULTS: ClassVar[Mapping[str, object]] = {}
    """A builder's value of each attribute it may leave out (None: absent)."""

    @classmethod
    def _properties(cls, args: Sequence[object], kwargs: Mapping[str, object]):
        """The properties from builder arguments (positional in the row's order)."""
        names = [a.name for a in cls.ATTRIBUTES]
        if len(args) > len(names) or set(kwargs) - set(names):
            raise TypeError(f"{cls.__name__} takes the attributes {names}")
        given = cls.DEFAULTS | dict(zip(names, args, strict=False)) | dict(kwargs)
        missing = [name for name in names if name not in given]
        if missing:
            raise TypeError(f"{cls.__name__}: missing attribute(s) {missing}")
        return {
            a.name: None if (value := given[a.name]) is None
            else StringAttr(str(value)) if isinstance(a, Choice)
            else float_(float(value))  # type: ignore[arg-type]
            for a in cls.ATTRIBUTES
        }

    def arguments(self) -> dict[str, float | str | None]:
        """The attribute values by name as the builders take them (None: absent)."""
        return {
            attr.name: None if (value := getattr(self, attr.name)) is None
            else value.data if isinstance(value, StringAttr)
            else value.value.data
            for attr in self.ATTRIBUTES
        }

    def values(self) -> dict[str, float | str]:
        """The attribute values by name, an absent optional scalar as its `absent`
        value: the keyword arguments of the row's numerics."""
        return attribute_values(self, self.ATTRIBUTES)


def attribute_values(op: Operation, attributes: Sequence[Scalar | Choice]) -> dict[str, float | str]:
    """The values of `attributes` on `op` (a row's op, or a kernel op with its
    properties), an absent optional scalar as its `absent` value."""
    values: dict[str, float | str] = {}
    for attr in attributes:
        value = op.properties.get(attr.name)
        if isinstance(value, StringAttr):
            values[attr.name] = value.data
        elif isinstance(value, FloatAttr):
            values[attr.name] = value.value.data
        elif isinstance(attr, Choice):
            values[attr.name] = attr.default
        else:
            values[attr.name] = attr.absent if attr.default is None else attr.default
    return values


class UnaryElementwiseOp(_RowOp, SameTypeUnaryOp, ABC):
    """`result[i] = f(input[i])`, same type in and out."""

    def __init__(self, input: SSAValue | Operation, *args: object, **kwargs: object):
        super().__init__(input, self._properties(args, kwargs))


class ElementwiseGradOp(_RowOp, SavedGradOp, ABC):
    """`dx = f'(saved) * dy` of a unary row."""

    def __init__(self, grad: SSAValue | Operation, saved: SSAValue | Operation,
                 *args: object, **kwargs: object):
        super().__init__(grad, saved, self._properties(args, kwargs))


def _field(attr: Scalar | Choice, grad: bool):
    """The property definition of one attribute; in a gradient op a scalar has no
    default (the rule copies the forward op's value)."""
    if isinstance(attr, Choice):
        return prop_def(StringAttr, default_value=StringAttr(attr.default))
    if attr.default is None:
        return opt_prop_def(FloatAttr)
    if grad:
        return prop_def(FloatAttr)
    return prop_def(FloatAttr, default_value=float_(attr.default))


def _row_op(base: type, name: str, doc: str, row: Unary, grad: bool) -> type:
    attributes = row.grad_attributes if grad else row.attributes
    namespace: dict[str, object] = {
        "name": name,
        "__doc__": doc,
        "__module__": __name__,
        "ROW": row,
        "ATTRIBUTES": attributes,
        "DEFAULTS": {
            a.name: a.default for a in attributes
            if isinstance(a, Choice) or a.default is None or not grad
        },
        "CHOICES": {
            a.name: Literal[a.values] for a in attributes if isinstance(a, Choice)
        },
        "__annotations__": {
            k: ClassVar for k in ("ROW", "ATTRIBUTES", "DEFAULTS", "CHOICES")
        },
    }
    for attr in attributes:
        namespace[attr.name] = _field(attr, grad)
    if attributes:
        namespace["irdl_options"] = (ParsePropInAttrDict(),)
    suffix = "GradOp" if grad else "Op"
    return irdl_op_definition(type(class_name(row.name, suffix), (base,), namespace))


def unary_op(row: Unary) -> type[UnaryElementwiseOp]:
    """`nn.NAME` of a row."""
    return _row_op(UnaryElementwiseOp, f"nn.{row.name}", row.doc, row, grad=False)


def grad_op(row: Unary) -> type[ElementwiseGradOp]:
    """`train.NAME_grad` of a row with `gradient="op"`."""
    return _row_op(ElementwiseGradOp, f"train.{row.name}_grad", row.grad_doc, row, grad=True)


class BinaryElementwiseOp(NNOperation, ABC):
    """`result = f(lhs, rhs)` with NumPy broadcasting; both operands of one element type."""

    ROW: ClassVar[Binary]

    lhs = operand_def(FloatTensor)
    rhs = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())

    assembly_format = (
        "$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` "
        "type($result)"
    )

    def __init__(self, lhs: SSAValue | Operation, rhs: SSAValue | Operation):
        shape = shapes.broadcast(shape_of(lhs), shape_of(rhs))
        super().__init__(
            operands=[lhs, rhs], result_types=[TensorType(element_of(lhs), shape)]
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.broadcast(shape_of(self.lhs), shape_of(self.rhs))


def binary_op(row: Binary) -> type[BinaryElementwiseOp]:
    """`nn.NAME` of a binary row."""
    namespace = {
        "name": f"nn.{row.name}", "__doc__": row.doc, "__module__": __name__, "ROW": row,
        "__annotations__": {"ROW": ClassVar},
    }
    if row.commutative:
        namespace["traits"] = traits_def(Pure(), Commutative())
    return irdl_op_definition(type(class_name(row.name, "Op"), (BinaryElementwiseOp,),
                                   namespace))


UNARY_OPS: tuple[type[UnaryElementwiseOp], ...] = tuple(unary_op(row) for row in UNARY)
"""`nn.NAME` of every unary row, in the table's order."""
GRAD_OPS: tuple[type[ElementwiseGradOp], ...] = tuple(
    grad_op(row) for row in UNARY if row.gradient == "op"
)
"""`train.NAME_grad` of every row with a gradient op, in the table's order."""
BINARY_OPS: tuple[type[BinaryElementwiseOp], ...] = tuple(binary_op(row) for row in BINARY)

NN_OP: dict[str, type[UnaryElementwiseOp]] = {op.ROW.name: op for op in UNARY_OPS}
"""The `nn` op of each unary row, by the row's name."""
GRAD_OP: dict[str, type[ElementwiseGradOp]] = {op.ROW.name: op for op in GRAD_OPS}
"""The `train` gradient op of each row that has one, by the row's name."""
