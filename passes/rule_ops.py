"""What a rule file may say about each `nn` op, read from its IRDL definition.

The rewrite-rule language (`edge_opt.passes.rule_language`) names ops by their short
name (`relu` for `nn.relu`). For each op, `OP_INFOS` holds what the rule compiler checks
at load time and what the matcher and the builder call need, all derived from the op's
IRDL definition (`get_irdl_definition()`: operand and property definitions and their
constraints) and from the signature of its builder (`__init__`): no table per op.

- Operands, in definition order: single, optional (`opt_operand_def`) or variadic
  (`var_operand_def`). A pattern or replacement gives them positionally.
- Attributes: the op's properties whose constraint is one of the five kinds a rule can
  write (integer, number, list of integers, true/false, string), plus the builder's
  own keyword parameters that are not properties (`nn.reshape`'s `shape`, which only a
  replacement can give: it is the result type's shape, not a property).
- Whether the result type is tied to an operand's (`VarConstraint`, as in every
  `SameTypeUnaryOp`) and whether the result must be a float tensor.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import get_args

from xdsl.dialects.builtin import (
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    OptOperandDef,
    OptPropertyDef,
    RangeConstraint,
    VarConstraint,
    VarOperandDef,
)
from xdsl.irdl.constraints import VerificationContext
from xdsl.utils.exceptions import VerifyException

from edge_opt.dialects import nn


class Kind(Enum):
    """The kind of value a rule writes for an attribute, or compares in a condition."""

    INT = "an integer"
    FLOAT = "a number"
    INTS = "a list of integers"
    BOOL = "true or false"
    STRING = "a string"
    ELEMENT_TYPE = "an element type"
    TENSOR_TYPE = "a tensor type"


_KIND_OF_BASE: dict[type[Attribute], Kind] = {
    IntegerAttr: Kind.INT,
    FloatAttr: Kind.FLOAT,
    DenseArrayBase: Kind.INTS,
    UnitAttr: Kind.BOOL,
    StringAttr: Kind.STRING,
}

_KIND_OF_ANNOTATION: dict[str, Kind] = {
    "Sequence[int]": Kind.INTS,
    "int": Kind.INT,
    "float": Kind.FLOAT,
    "bool": Kind.BOOL,
    "str": Kind.STRING,
}


class Arity(Enum):
    SINGLE = "single"
    OPTIONAL = "optional"
    VARIADIC = "variadic"


@dataclass(frozen=True)
class OperandInfo:
    name: str
    arity: Arity
    float_only: bool
    buildable: bool
    """Whether the builder takes this operand as a keyword parameter of its name."""


@dataclass(frozen=True)
class AttributeInfo:
    name: str
    kind: Kind
    is_property: bool
    """False for a builder-only parameter (`shape` of `nn.reshape`)."""
    required: bool
    """Whether a replacement must give it (the builder has no default)."""
    default: object
    """The value of an absent property as a rule sees it (None: no value)."""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpInfo:
    """What the rule language knows of one `nn` op."""

    short_name: str
    cls: type[IRDLOperation]
    operands: tuple[OperandInfo, ...]
    attributes: Mapping[str, AttributeInfo]
    result_tied_to: int | None
    """The operand whose type the result always has (a shared `VarConstraint`)."""
    float_result: bool

    def __repr__(self) -> str:
        return f"OpInfo(nn.{self.short_name})"

    @property
    def min_operands(self) -> int:
        return sum(o.arity is Arity.SINGLE for o in self.operands)

    @property
    def max_operands(self) -> int | None:
        if any(o.arity is Arity.VARIADIC for o in self.operands):
            return None
        return len(self.operands)

    def arity_text(self) -> str:
        low, high = self.min_operands, self.max_operands
        if high is None:
            return f"at least {max(low, 1)}"
        if low == high:
            return str(low)
        return f"{low} to {high}"

    def operand_slots(self, count: int) -> list[OperandInfo]:
        """The operand definitions that `count` positional operands fill (optional
        ones in order; a variadic one takes what the single ones leave)."""
        if self.max_operands is not None:
            return list(self.operands[:count])
        variadic = count - self.min_operands
        slots: list[OperandInfo] = []
        for operand in self.operands:
            slots.extend([operand] * (variadic if operand.arity is Arity.VARIADIC else 1))
        return slots


_INTEGER_TENSOR = TensorType(i64, [1])


def _is_float_tensor(constraint: RangeConstraint) -> bool:
    """Whether an operand or result constraint rejects integer tensors (the
    `FloatTensor` constraint of `edge_opt.dialects.base`)."""
    try:
        constraint.verify((_INTEGER_TENSOR,), VerificationContext())
    except VerifyException:
        return True
    return False


def _var_name(constraint: object) -> str | None:
    """The `VarConstraint` name inside a single operand or result constraint."""
    inner = getattr(getattr(constraint, "constraint", constraint), "constr", None)
    return inner.name if isinstance(inner, VarConstraint) else None


def _property_kind(constraint: object) -> Kind | None:
    bases = constraint.get_bases()  # type: ignore[attr-defined]
    if not bases or len(bases) != 1:
        return None
    return _KIND_OF_BASE.get(next(iter(bases)))


def attribute_value(attribute: Attribute | None, kind: Kind) -> object:
    """A property as a rule sees it: the Python value the builder takes."""
    if attribute is None:
        return False if kind is Kind.BOOL else None
    if isinstance(attribute, IntegerAttr):
        return int(attribute.value.data)
    if isinstance(attribute, FloatAttr):
        return float(attribute.value.data)
    if isinstance(attribute, DenseArrayBase):
        return tuple(int(v) for v in attribute.get_values())
    if isinstance(attribute, UnitAttr):
        return True
    if isinstance(attribute, StringAttr):
        return attribute.data
    raise NotImplementedError(f"rule attribute value of {attribute}")


def _properties(cls: type[IRDLOperation], signature: inspect.Signature,
                any_keyword: bool) -> dict[str, AttributeInfo]:
    definition = cls.get_irdl_definition()
    internal = {
        option.attribute_name for option in definition.options
        if isinstance(option, AttrSizedOperandSegments)
    }
    choices = getattr(cls, "CHOICES", {})
    result: dict[str, AttributeInfo] = {}
    for name, prop in definition.properties.items():
        kind = _property_kind(prop.constr)
        if kind is None or name in internal:
            continue
        parameter = signature.parameters.get(name)
        if parameter is None and not any_keyword:
            continue
        if parameter is None:  # through **kwargs: the property says
            required = not isinstance(prop, OptPropertyDef) and prop.default_value is None
        else:
            required = parameter.default is inspect.Parameter.empty
        result[name] = AttributeInfo(
            name, kind, True, required=required,
            default=attribute_value(prop.default_value, kind),
            choices=get_args(choices.get(name, ())) if name in choices else (),
        )
    return result


def _builder_parameters(signature: inspect.Signature, taken: set[str]
                        ) -> dict[str, AttributeInfo]:
    """The builder's keyword parameters that are neither operands nor properties."""
    result: dict[str, AttributeInfo] = {}
    for name, parameter in list(signature.parameters.items())[1:]:
        if name in taken or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        kind = _KIND_OF_ANNOTATION.get(str(parameter.annotation))
        if kind is None:  # e.g. attention's `biases`, a group of operands
            continue
        result[name] = AttributeInfo(
            name, kind, False, required=parameter.default is inspect.Parameter.empty,
            default=None,
        )
    return result


def op_info(cls: type[IRDLOperation]) -> OpInfo:
    """What the rule language knows of `cls`, from its IRDL definition and builder."""
    definition = cls.get_irdl_definition()
    signature = inspect.signature(cls.__init__)
    any_keyword = any(
        p.kind is p.VAR_KEYWORD for p in signature.parameters.values()
    )
    operands = tuple(
        OperandInfo(
            name,
            # OptOperandDef is a VarOperandDef: ask for it first
            Arity.OPTIONAL if isinstance(d, OptOperandDef)
            else Arity.VARIADIC if isinstance(d, VarOperandDef) else Arity.SINGLE,
            _is_float_tensor(d.constr),
            buildable=name in signature.parameters,
        )
        for name, d in definition.operands
    )
    attributes = _properties(cls, signature, any_keyword)
    attributes |= _builder_parameters(signature, {*attributes, *(o.name for o in operands)})
    (_, result), = definition.results
    tie = _var_name(result.constr)
    tied = next(
        (i for i, (_, d) in enumerate(definition.operands)
         if tie is not None and _var_name(d.constr) == tie),
        None,
    )
    return OpInfo(
        cls.name.removeprefix("nn."), cls, operands, attributes, tied,
        _is_float_tensor(result.constr),
    )


def _rule_ops() -> dict[str, OpInfo]:
    """Every `nn` op with operands and one result, by short name (`nn.param`,
    `nn.load` and `nn.constant` have no operands: rules test for them with `is a
    parameter`, `is a constant` and number literals)."""
    infos: dict[str, OpInfo] = {}
    for cls in nn.NN.operations:
        definition = cls.get_irdl_definition()
        if definition.operands and len(definition.results) == 1:
            info = op_info(cls)
            infos[info.short_name] = info
    return infos


OP_INFOS: dict[str, OpInfo] = _rule_ops()
"""The ops a rule may name, by short name (`relu`); `nn.relu` is accepted too."""
