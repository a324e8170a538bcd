"""The `nn` dialect: the graph level of edge-opt.

Neural-network operators on builtin ranked `tensor<...>` values with static shapes, plus
module-level parameters (`nn.param`) read with `nn.load`. Every op verifies its shape rule
(`edge_opt.support.shapes`) and names itself and the broken rule in the error. Every op has a
builder that infers its result type, so passes and the importer never compute shapes.

Semantics (what the interpreter in `edge_opt.ir.interpreters.nn` implements) follow
PyTorch's `torch.nn.functional` of the same name; where ONNX and PyTorch differ, the op
docstring says which one we follow. Layout is NCHW; 2-D `padding` is
`(top, left, bottom, right)`.
"""

from __future__ import annotations

import math
from abc import ABC
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from xdsl.dialects.builtin import (
    I64,
    AnyFloatConstr,
    BytesAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    SymbolNameConstraint,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
    f32,
    i64,
)
from xdsl.ir import Attribute, Dialect, Operation, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import (
    ConstantLike,
    HasParent,
    MemoryReadEffect,
    Pure,
    SymbolOpInterface,
    SymbolTable,
    SymbolUserOpInterface,
)
from xdsl.utils.exceptions import VerifyException

from edge_opt.support import shapes
from edge_opt.support.dtypes import to_numpy
from edge_opt.support.shapes import ShapeError

FloatTensor = TensorType.constr(AnyFloatConstr)

# --------------------------------------------------------------------------------------
# Helpers shared by the ops
# --------------------------------------------------------------------------------------


def _ints(values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def _int(value: int) -> IntegerAttr:
    return IntegerAttr(value, 64)


def _tensor(value: SSAValue | Operation) -> TensorType:
    value = SSAValue.get(value)
    if not isinstance(value.type, TensorType):
        raise VerifyException(f"expected a tensor value, got {value.type}")
    return value.type


def _shape(value: SSAValue | Operation) -> tuple[int, ...]:
    return _tensor(value).get_shape()


def _element(value: SSAValue | Operation) -> Attribute:
    return _tensor(value).element_type


def _flag(value: bool) -> UnitAttr | None:
    return UnitAttr() if value else None


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


class NNOperation(IRDLOperation, ABC):
    """Base of all `nn` tensor ops: shape checking with op-named errors."""

    def expected_shape(self) -> tuple[int, ...] | None:
        """The result shape the op's rule gives, or None if the op states no rule."""
        return None

    def verify_(self) -> None:
        verify_static_shapes(self)
        try:
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
        element_types = {
            o.type.element_type
            for o in self.operands
            if isinstance(o.type, TensorType) and self._is_data_operand(o)
        }
        element_types.add(result.element_type)
        if len(element_types) > 1:
            raise VerifyException(
                f"{self.name}: operand and result element types differ "
                f"({', '.join(sorted(str(t) for t in element_types))})"
            )

    def _is_data_operand(self, operand: SSAValue) -> bool:
        """Whether the operand's element type must equal the result's."""
        return True


# --------------------------------------------------------------------------------------
# Parameters and constants
# --------------------------------------------------------------------------------------


@irdl_op_definition
class ParamOp(IRDLOperation):
    """A named model parameter: a module-level symbol with a tensor type.

    `trainable` marks it for training; training passes change the flag, never the type.
    The initial value is either inline (`= dense<...>`) or, when absent, lives in the
    sidecar `.npz` next to the `.mlir` file under the parameter's name
    (`edge_opt.ir.model_io` attaches it on load and moves large values out on save).

        nn.param trainable @fc_weight : tensor<10x128xf32>
        nn.param @eps : tensor<f32> = dense<1.000000e-05> : tensor<f32>
    """

    name = "nn.param"

    sym_name = prop_def(SymbolNameConstraint())
    type = prop_def(TensorType)
    trainable = opt_prop_def(UnitAttr)
    value = opt_prop_def(DenseIntOrFPElementsAttr)

    traits = traits_def(SymbolOpInterface(), HasParent(ModuleOp))

    assembly_format = (
        "(`trainable` $trainable^)? $sym_name `:` $type (`=` $value^)? attr-dict"
    )

    def __init__(
        self,
        sym_name: str,
        type: TensorType,
        trainable: bool = False,
        value: DenseIntOrFPElementsAttr | None = None,
    ):
        super().__init__(
            properties={
                "sym_name": StringAttr(sym_name),
                "type": type,
                "trainable": _flag(trainable),
                "value": value,
            }
        )

    @property
    def is_trainable(self) -> bool:
        return self.trainable is not None

    def verify_(self) -> None:
        verify_static_shapes(self, [(f"@{self.sym_name.data}", self.type)])
        if self.value is not None and self.value.type != self.type:
            raise VerifyException(
                f"nn.param @{self.sym_name.data}: value type {self.value.type} does not "
                f"match the declared type {self.type}"
            )


def resolve_param(op: Operation, ref: SymbolRefAttr, type: Attribute) -> ParamOp:
    """The `nn.param` that `ref` names from `op`, checked to have type `type`."""
    name = ref.string_value()
    param = SymbolTable.lookup_symbol(op, ref)
    if param is None:
        raise VerifyException(f"{op.name}: no parameter named @{name} in the module")
    if not isinstance(param, ParamOp):
        raise VerifyException(f"{op.name}: @{name} is a {param.name}, not an nn.param")
    if param.type != type:
        raise VerifyException(
            f"{op.name}: {'result' if op.results else 'value'} type {type} does not "
            f"match the type {param.type} of @{name}"
        )
    return param


class _LoadSymbolUse(SymbolUserOpInterface):
    def verify(self, op: Operation) -> None:
        assert isinstance(op, LoadOp)
        resolve_param(op, op.param, op.result.type)


@irdl_op_definition
class LoadOp(IRDLOperation):
    """Reads the current value of a parameter.

        %w = nn.load @fc_weight : tensor<10x128xf32>
    """

    name = "nn.load"

    param = prop_def(SymbolRefAttr)
    result = result_def(TensorType)

    traits = traits_def(MemoryReadEffect(), _LoadSymbolUse())

    assembly_format = "$param `:` type($result) attr-dict"

    def __init__(self, param: str | SymbolRefAttr, type: TensorType):
        if isinstance(param, str):
            param = SymbolRefAttr(param)
        super().__init__(properties={"param": param}, result_types=[type])


def compact_splat(value: DenseIntOrFPElementsAttr) -> DenseIntOrFPElementsAttr:
    """A splat value as its one element (a rank-0 value): a constant op keeps its
    shape in its result type, so that a splat is never materialised (a splat
    `tensor<100000x100000xf32>` would be 40 GB)."""
    size = value.type.element_type.compile_time_size
    if len(value) <= 1 or value.data.data[:size] * len(value) != value.data.data:
        return value
    return DenseIntOrFPElementsAttr(
        TensorType(value.type.element_type, []), BytesAttr(value.data.data[:size])
    )


def verify_constant_value(op: Operation, value: DenseIntOrFPElementsAttr,
                          type: TensorType) -> None:
    """The value of a constant op is of its result's tensor type, or one element of
    it (a splat)."""
    if value.type == type:
        return
    if value.type.get_shape() == () and value.type.element_type == type.element_type:
        return
    raise VerifyException(
        f"{op.name}: value type {value.type} does not match the result "
        f"{op.results[0].type}"
    )


def print_constant_value(printer: Printer, value: DenseIntOrFPElementsAttr,
                         type: TensorType) -> None:
    """`dense<...> : type`, a splat as `dense<x> : type` (MLIR's splat syntax)."""
    value.print_without_type(printer)
    printer.print_string(" : ")
    printer.print_attribute(type)


def parse_constant_value(parser: Parser) -> tuple[DenseIntOrFPElementsAttr, Attribute]:
    """Reads `dense<...> : type`; a splat literal (`dense<1.0> : tensor<...>`) is read
    as one element without materialising the tensor."""
    start = parser.pos
    if parser.parse_optional_keyword("dense") and parser.parse_optional_punctuation("<"):
        scalar = parser.parse_optional_number()
        if scalar is None:
            scalar = parser.parse_optional_boolean()
        if scalar is not None and parser.parse_optional_punctuation(">"):
            parser.parse_punctuation(":")
            type = parser.parse_type()
            if not isinstance(type, TensorType):
                parser.raise_error("expected a tensor type after the dense literal")
            element = TensorType(type.element_type, [])
            return DenseIntOrFPElementsAttr.from_list(element, [scalar]), type
    parser._resume_from(start)  # not a splat: the general dense parser
    value = parser.parse_attribute()
    if not isinstance(value, DenseIntOrFPElementsAttr):
        parser.raise_error("expected a dense<...> tensor literal")
    return value, value.type


@irdl_op_definition
class ConstantOp(IRDLOperation):
    """A constant tensor. A splat value is kept as one element (see
    `compact_splat`); `array()` is the value at the result's shape.

        %c = nn.constant dense<2.000000e+00> : tensor<f32>
        %z = nn.constant dense<0.000000e+00> : tensor<64x64xf32>
    """

    name = "nn.constant"

    value = prop_def(DenseIntOrFPElementsAttr)
    result = result_def(TensorType)

    traits = traits_def(Pure(), ConstantLike())

    def __init__(self, value: DenseIntOrFPElementsAttr, type: TensorType | None = None):
        super().__init__(
            properties={"value": compact_splat(value)}, result_types=[type or value.type]
        )

    def array(self) -> np.ndarray:
        """The value at the result's shape (a read-only broadcast view for a splat)."""
        assert isinstance(self.result.type, TensorType)
        return np.broadcast_to(to_numpy(self.value), self.result.type.get_shape())

    def verify_(self) -> None:
        verify_static_shapes(self)
        assert isinstance(self.result.type, TensorType)
        verify_constant_value(self, self.value, self.result.type)

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        assert isinstance(self.result.type, TensorType)
        print_constant_value(printer, self.value, self.result.type)
        printer.print_op_attributes(self.attributes)

    @classmethod
    def parse(cls, parser: Parser) -> ConstantOp:
        value, type = parse_constant_value(parser)
        attrs = parser.parse_optional_attr_dict()
        op = cls(value, type)  # type: ignore[arg-type]
        op.attributes |= attrs
        return op


# --------------------------------------------------------------------------------------
# Element-wise ops
# --------------------------------------------------------------------------------------


class UnaryElementwiseOp(NNOperation, ABC):
    """`result[i] = f(input[i])`, same type in and out."""

    T: ClassVar = VarConstraint("T", FloatTensor)
    input = operand_def(T)
    result = result_def(T)

    traits = traits_def(Pure())

    assembly_format = "$input attr-dict `:` type($input)"

    def __init__(self, input: SSAValue | Operation):
        super().__init__(operands=[input], result_types=[SSAValue.get(input).type])


@irdl_op_definition
class ReluOp(UnaryElementwiseOp):
    """`max(x, 0)`."""

    name = "nn.relu"


@irdl_op_definition
class SigmoidOp(UnaryElementwiseOp):
    """`1 / (1 + exp(-x))`."""

    name = "nn.sigmoid"


@irdl_op_definition
class TanhOp(UnaryElementwiseOp):
    """`tanh(x)`."""

    name = "nn.tanh"


@irdl_op_definition
class SiluOp(UnaryElementwiseOp):
    """`x * sigmoid(x)`."""

    name = "nn.silu"


@irdl_op_definition
class HardswishOp(UnaryElementwiseOp):
    """`x * relu6(x + 3) / 6`."""

    name = "nn.hardswish"


@irdl_op_definition
class ErfOp(UnaryElementwiseOp):
    """The error function."""

    name = "nn.erf"


@irdl_op_definition
class SqrtOp(UnaryElementwiseOp):
    """`sqrt(x)`."""

    name = "nn.sqrt"


@irdl_op_definition
class ExpOp(UnaryElementwiseOp):
    """`exp(x)`."""

    name = "nn.exp"


@irdl_op_definition
class LogOp(UnaryElementwiseOp):
    """Natural logarithm."""

    name = "nn.log"


@irdl_op_definition
class NegOp(UnaryElementwiseOp):
    """`-x`."""

    name = "nn.neg"


GeluApproximation = Literal["none", "tanh"]


@irdl_op_definition
class GeluOp(UnaryElementwiseOp):
    """GELU: `x * Phi(x)` with the exact erf form (`approximate = "none"`, default) or
    the tanh approximation (`approximate = "tanh"`), as `torch.nn.functional.gelu`."""

    name = "nn.gelu"

    approximate = prop_def(StringAttr, default_value=StringAttr("none"))

    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, input: SSAValue | Operation, approximate: GeluApproximation = "none"):
        IRDLOperation.__init__(
            self,
            operands=[input],
            result_types=[SSAValue.get(input).type],
            properties={"approximate": StringAttr(approximate)},
        )

    def verify_(self) -> None:
        if self.approximate.data not in ("none", "tanh"):
            raise VerifyException(
                f'nn.gelu: approximate must be "none" or "tanh", got '
                f'"{self.approximate.data}"'
            )


@irdl_op_definition
class CeilOp(UnaryElementwiseOp):
    """The smallest integer >= x. Piecewise constant: it has no gradient, so `autodiff`
    refuses to train a parameter through it (frozen parts may use it)."""

    name = "nn.ceil"


@irdl_op_definition
class FloorOp(UnaryElementwiseOp):
    """The largest integer <= x (no gradient, like `nn.ceil`)."""

    name = "nn.floor"


@irdl_op_definition
class RoundOp(UnaryElementwiseOp):
    """The nearest integer, halves to even (`torch.round`, ONNX `Round`; no gradient,
    like `nn.ceil`)."""

    name = "nn.round"


def _float(value: float) -> FloatAttr:
    return FloatAttr(value, f32)


class ScalarParamsUnaryOp(UnaryElementwiseOp, ABC):
    """A unary element-wise op with f32 parameters (its properties), computed in the
    input's element type."""

    irdl_options = (ParsePropInAttrDict(),)

    def _build(self, input: SSAValue | Operation, values: dict[str, float | None]):
        IRDLOperation.__init__(
            self,
            operands=[input],
            result_types=[SSAValue.get(input).type],
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
class ClipOp(ScalarParamsUnaryOp):
    """`min(max(x, min), max)` (ONNX `Clip`; ReLU6 is `min = 0, max = 6`); an absent
    bound does not clip, NaN stays NaN. The gradient is PyTorch's for `F.hardtanh` and
    `F.relu6`: `dy` strictly between the bounds, 0 at and beyond them.

        %y = nn.clip %x {min = 0.000000e+00 : f32, max = 6.000000e+00 : f32} : tensor<8xf32>
    """

    name = "nn.clip"

    min = opt_prop_def(FloatAttr)
    max = opt_prop_def(FloatAttr)

    def __init__(
        self, input: SSAValue | Operation, min: float | None = None,
        max: float | None = None,
    ):
        self._build(input, {"min": min, "max": max})

    def bounds(self) -> tuple[float, float]:
        """(min, max) with an absent bound as -inf / +inf."""
        lo = -math.inf if self.min is None else self.min.value.data
        hi = math.inf if self.max is None else self.max.value.data
        return lo, hi


@irdl_op_definition
class HardsigmoidOp(ScalarParamsUnaryOp):
    """`max(0, min(1, alpha * x + beta))`; the defaults are PyTorch's
    (`F.hardsigmoid`: 1/6 and 1/2; ONNX `HardSigmoid` defaults to alpha 0.2)."""

    name = "nn.hardsigmoid"

    alpha = prop_def(FloatAttr, default_value=_float(1 / 6))
    beta = prop_def(FloatAttr, default_value=_float(0.5))

    def __init__(
        self, input: SSAValue | Operation, alpha: float = 1 / 6, beta: float = 0.5
    ):
        self._build(input, {"alpha": alpha, "beta": beta})


@irdl_op_definition
class EluOp(ScalarParamsUnaryOp):
    """`x` if `x > 0`, else `alpha * (exp(x) - 1)` (`F.elu`)."""

    name = "nn.elu"

    alpha = prop_def(FloatAttr, default_value=_float(1.0))

    def __init__(self, input: SSAValue | Operation, alpha: float = 1.0):
        self._build(input, {"alpha": alpha})


@irdl_op_definition
class LeakyReluOp(ScalarParamsUnaryOp):
    """`x` if `x >= 0`, else `alpha * x` (`F.leaky_relu`; its gradient is `dy` for
    `x > 0`, `alpha * dy` otherwise, as PyTorch's)."""

    name = "nn.leaky_relu"

    alpha = prop_def(FloatAttr, default_value=_float(0.01))

    def __init__(self, input: SSAValue | Operation, alpha: float = 0.01):
        self._build(input, {"alpha": alpha})


class BinaryElementwiseOp(NNOperation, ABC):
    """`result = f(lhs, rhs)` with NumPy broadcasting; both operands of one element type."""

    lhs = operand_def(FloatTensor)
    rhs = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())

    assembly_format = (
        "$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` "
        "type($result)"
    )

    def __init__(self, lhs: SSAValue | Operation, rhs: SSAValue | Operation):
        shape = shapes.broadcast(_shape(lhs), _shape(rhs))
        super().__init__(
            operands=[lhs, rhs], result_types=[TensorType(_element(lhs), shape)]
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.broadcast(_shape(self.lhs), _shape(self.rhs))


@irdl_op_definition
class AddOp(BinaryElementwiseOp):
    """`lhs + rhs`."""

    name = "nn.add"


@irdl_op_definition
class SubOp(BinaryElementwiseOp):
    """`lhs - rhs`."""

    name = "nn.sub"


@irdl_op_definition
class MulOp(BinaryElementwiseOp):
    """`lhs * rhs`."""

    name = "nn.mul"


@irdl_op_definition
class DivOp(BinaryElementwiseOp):
    """`lhs / rhs`."""

    name = "nn.div"


@irdl_op_definition
class PowOp(BinaryElementwiseOp):
    """`lhs ** rhs`."""

    name = "nn.pow"


# --------------------------------------------------------------------------------------
# Linear algebra and convolutions
# --------------------------------------------------------------------------------------


@irdl_op_definition
class LinearOp(NNOperation):
    """`input @ weight.T + bias`: (..., in) x (out, in) [+ (out,)] -> (..., out)."""

    name = "nn.linear"

    input = operand_def(FloatTensor)
    weight = operand_def(FloatTensor)
    bias = opt_operand_def(FloatTensor)
    result = result_def(FloatTensor)

    traits = traits_def(Pure())

    assembly_format = (
        "$input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, "
        "results)"
    )

    def __init__(
        self,
        input: SSAValue | Operation,
        weight: SSAValue | Operation,
        bias: SSAValue | Operation | None = None,
    ):
        shape = shapes.linear(_shape(input), _shape(weight))
        super().__init__(
            operands=[input, weight, bias],
            result_types=[TensorType(_element(input), shape)],
        )

    def expected_shape(self) -> tuple[int, ...]:
        shape = shapes.linear(_shape(self.input), _shape(self.weight))
        if self.bias is not None and _shape(self.bias) != (shape[-1],):
            raise ShapeError(
                f"bias shape {list(_shape(self.bias))} must be [{shape[-1]}]"
            )
        return shape


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
        shape = shapes.matmul(_shape(lhs), _shape(rhs), transpose_lhs, transpose_rhs)
        super().__init__(
            operands=[lhs, rhs],
            result_types=[TensorType(_element(lhs), shape)],
            properties={
                "transpose_lhs": _flag(transpose_lhs),
                "transpose_rhs": _flag(transpose_rhs),
            },
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.matmul(
            _shape(self.lhs),
            _shape(self.rhs),
            self.transpose_lhs is not None,
            self.transpose_rhs is not None,
        )


class _ConvLikeOp(NNOperation, ABC):
    input = operand_def(FloatTensor)
    weight = operand_def(FloatTensor)
    bias = opt_operand_def(FloatTensor)
    result = result_def(FloatTensor)

    stride = prop_def(DenseArrayBase.constr(i64), default_value=_ints([1, 1]))
    padding = prop_def(DenseArrayBase.constr(i64), default_value=_ints([0, 0, 0, 0]))
    dilation = prop_def(DenseArrayBase.constr(i64), default_value=_ints([1, 1]))
    groups = prop_def(IntegerAttr[I64], default_value=_int(1))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    assembly_format = (
        "$input `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, "
        "results)"
    )

    def _check_bias(self, out_channels: int) -> None:
        if self.bias is not None and _shape(self.bias) != (out_channels,):
            raise ShapeError(
                f"bias shape {list(_shape(self.bias))} must be [{out_channels}]"
            )


@irdl_op_definition
class Conv2dOp(_ConvLikeOp):
    """2-D convolution (cross-correlation), NCHW input, weight (O, C/groups, kh, kw).

    `groups == C == O` is a depthwise convolution.
    """

    name = "nn.conv2d"

    def __init__(
        self,
        input: SSAValue | Operation,
        weight: SSAValue | Operation,
        bias: SSAValue | Operation | None = None,
        *,
        stride: Sequence[int] = (1, 1),
        padding: Sequence[int] = (0, 0, 0, 0),
        dilation: Sequence[int] = (1, 1),
        groups: int = 1,
    ):
        shape = shapes.conv2d(
            _shape(input), _shape(weight), stride, padding, dilation, groups
        )
        super().__init__(
            operands=[input, weight, bias],
            result_types=[TensorType(_element(input), shape)],
            properties={
                "stride": _ints(stride),
                "padding": _ints(padding),
                "dilation": _ints(dilation),
                "groups": _int(groups),
            },
        )

    def expected_shape(self) -> tuple[int, ...]:
        shape = shapes.conv2d(
            _shape(self.input),
            _shape(self.weight),
            self.stride.get_values(),
            self.padding.get_values(),
            self.dilation.get_values(),
            self.groups.value.data,
        )
        self._check_bias(shape[1])
        return shape


@irdl_op_definition
class ConvTranspose2dOp(_ConvLikeOp):
    """2-D transposed convolution (the gradient of `nn.conv2d` w.r.t. its input),
    NCHW input, weight (C, O/groups, kh, kw), as `torch.nn.functional.conv_transpose2d`.
    """

    name = "nn.conv_transpose2d"

    output_padding = prop_def(DenseArrayBase.constr(i64), default_value=_ints([0, 0]))

    def __init__(
        self,
        input: SSAValue | Operation,
        weight: SSAValue | Operation,
        bias: SSAValue | Operation | None = None,
        *,
        stride: Sequence[int] = (1, 1),
        padding: Sequence[int] = (0, 0, 0, 0),
        output_padding: Sequence[int] = (0, 0),
        dilation: Sequence[int] = (1, 1),
        groups: int = 1,
    ):
        shape = shapes.conv_transpose2d(
            _shape(input),
            _shape(weight),
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        )
        super().__init__(
            operands=[input, weight, bias],
            result_types=[TensorType(_element(input), shape)],
            properties={
                "stride": _ints(stride),
                "padding": _ints(padding),
                "output_padding": _ints(output_padding),
                "dilation": _ints(dilation),
                "groups": _int(groups),
            },
        )

    def expected_shape(self) -> tuple[int, ...]:
        shape = shapes.conv_transpose2d(
            _shape(self.input),
            _shape(self.weight),
            self.stride.get_values(),
            self.padding.get_values(),
            self.output_padding.get_values(),
            self.dilation.get_values(),
            self.groups.value.data,
        )
        self._check_bias(shape[1])
        return shape


# --------------------------------------------------------------------------------------
# Normalisations and softmax
# --------------------------------------------------------------------------------------


class _AxisOp(NNOperation, ABC):
    T: ClassVar = VarConstraint("T", FloatTensor)
    input = operand_def(T)
    result = result_def(T)
    axis = prop_def(IntegerAttr[I64], default_value=_int(-1))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input)"

    def __init__(self, input: SSAValue | Operation, axis: int = -1):
        super().__init__(
            operands=[input],
            result_types=[SSAValue.get(input).type],
            properties={"axis": _int(axis)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        shape = _shape(self.input)
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


def _epsilon(value: float) -> FloatAttr:
    return FloatAttr(value, f32)


@irdl_op_definition
class LayerNormOp(NNOperation):
    """Normalizes over the axes `axis..rank-1` (ONNX `LayerNormalization`'s `axis`;
    PyTorch's `normalized_shape` is `input.shape[axis:]`), then `* scale + bias`, where
    scale and bias have shape `input.shape[axis:]`. Biased variance."""

    name = "nn.layer_norm"

    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    bias = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    axis = prop_def(IntegerAttr[I64], default_value=_int(-1))
    epsilon = prop_def(FloatAttr, default_value=_epsilon(1e-5))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$input `,` $scale `,` $bias attr-dict `:` functional-type(operands, results)"
    )

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
            properties={"axis": _int(axis), "epsilon": _epsilon(epsilon)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        shape = _shape(self.input)
        axis = shapes.normalize_axis(self.axis.value.data, len(shape))
        for name, operand in (("scale", self.scale), ("bias", self.bias)):
            if _shape(operand) != shape[axis:]:
                raise ShapeError(
                    f"{name} shape {list(_shape(operand))} must be the normalized "
                    f"shape {list(shape[axis:])}"
                )
        return shape


@irdl_op_definition
class BatchNormOp(NNOperation):
    """Batch normalization over axis 1 (channels) of a rank >= 2 input:
    `(x - mean) / sqrt(var + epsilon) * scale + bias`.

    Inference mode uses the `mean` and `var` operands (running statistics). With
    `training`, it normalizes with the batch's own statistics (biased variance over
    every axis but 1) and ignores the `mean`/`var` operands' values; updating running
    statistics is left to the training passes.
    """

    name = "nn.batch_norm"

    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    bias = operand_def(FloatTensor)
    mean = operand_def(FloatTensor)
    var = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    epsilon = prop_def(FloatAttr, default_value=_epsilon(1e-5))
    training = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
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
            properties={"epsilon": _epsilon(epsilon), "training": _flag(training)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        shape = _shape(self.input)
        if len(shape) < 2:
            raise ShapeError(f"input must have rank >= 2, got {list(shape)}")
        for name in ("scale", "bias", "mean", "var"):
            operand = getattr(self, name)
            if _shape(operand) != (shape[1],):
                raise ShapeError(
                    f"{name} shape {list(_shape(operand))} must be [{shape[1]}] "
                    "(the channel count)"
                )
        return shape


@irdl_op_definition
class GroupNormOp(NNOperation):
    """Group normalization: channels (axis 1) split into `groups`, each group normalized
    over its channels and all spatial positions, then `* scale + bias` per channel."""

    name = "nn.group_norm"

    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    bias = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    groups = prop_def(IntegerAttr[I64])
    epsilon = prop_def(FloatAttr, default_value=_epsilon(1e-5))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$input `,` $scale `,` $bias attr-dict `:` functional-type(operands, results)"
    )

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
            properties={"groups": _int(groups), "epsilon": _epsilon(epsilon)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        shape = _shape(self.input)
        groups = self.groups.value.data
        if len(shape) < 2:
            raise ShapeError(f"input must have rank >= 2, got {list(shape)}")
        if groups < 1 or shape[1] % groups:
            raise ShapeError(
                f"groups ({groups}) must divide the channel count ({shape[1]})"
            )
        for name, operand in (("scale", self.scale), ("bias", self.bias)):
            if _shape(operand) != (shape[1],):
                raise ShapeError(
                    f"{name} shape {list(_shape(operand))} must be [{shape[1]}]"
                )
        return shape


# --------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------


@irdl_op_definition
class AttentionOp(NNOperation):
    """Multi-head self-attention with explicit heads and projection weights.

    Operands: `x` (B, S, D); `wq`, `wk` (D, H*dk), `wv` (D, H*dv), all in `x @ W`
    layout (the transpose of `nn.linear`'s weight); `wo` (H*dv, E); optionally the
    biases `bq`, `bk` (H*dk), `bv` (H*dv) and `bo` (E), all four or none. Properties:
    `heads` = H, and `scale`, the factor of the scores (explicit: 1/sqrt(dk), PyTorch's
    default, is not implied). Usually dk = dv = dh; dv may differ (TinyViT's
    `attn_ratio`). Result (B, S, E). Semantics, step by step (the reference numerics
    `edge_opt.support.numerics.attention` and the `lower-attention` pass do exactly these
    steps, in this order):

        q = x @ wq + bq                          (B, S, H*dk), likewise k (wk, bk)
        v = x @ wv + bv                          (B, S, H*dv)
        split heads: q -> reshape (B, S, H, dk) -> transpose (0, 2, 1, 3) = (B, H, S, dk)
                     (column h*dk + j of q is element j of head h; likewise k, v)
        s = (q @ k^T) * scale                    (B, H, S, S), matmul then multiply
        a = softmax(s) over the last axis        (keys; no mask, no dropout)
        o = a @ v                                (B, H, S, dv)
        merge heads: o -> transpose (0, 2, 1, 3) -> reshape (B, S, H*dv)
        y = o @ wo + bo                          (B, S, E)

    `block_rows` (optional, set by `tile-attention-depth-first`) does not change the
    result: it asks the lowering and the gradient rule to compute the scores, softmax
    and `a @ v` one head and one block of `block_rows` query rows at a time (the last
    block may be shorter), so no more than a (block_rows, S) slice of the map exists.

    This is `torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)` on
    the split heads, between the projections; `torch.nn.MultiheadAttention` with
    `batch_first=True` and `W = in_proj_weight.T` split in three, `scale = dk**-0.5`.

    Why one op: training keeps only its inputs for the backward (the `autodiff` rule
    recomputes q, k, v and `a` from them, so the S x S map never lives across the
    forward/backward gap), and later passes (depth-first tiling per head and query block,
    fused weights) rewrite it as a whole. The buffer level has no attention kernel:
    `bufferize` lowers it to primitive ops first (`lower-attention`).

        %y = nn.attention %x, %wq, %wk, %wv, %wo bias(%bq, %bk, %bv, %bo) {heads = 2 : i64, scale = 0.5 : f32} : (tensor<1x8x16xf32>, ...) -> tensor<1x8x16xf32>
    """

    name = "nn.attention"

    x = operand_def(FloatTensor)
    wq = operand_def(FloatTensor)
    wk = operand_def(FloatTensor)
    wv = operand_def(FloatTensor)
    wo = operand_def(FloatTensor)
    bq = opt_operand_def(FloatTensor)
    bk = opt_operand_def(FloatTensor)
    bv = opt_operand_def(FloatTensor)
    bo = opt_operand_def(FloatTensor)
    result = result_def(FloatTensor)
    heads = prop_def(IntegerAttr[I64])
    scale = prop_def(FloatAttr)
    block_rows = opt_prop_def(IntegerAttr[I64])

    traits = traits_def(Pure())
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = (
        "$x `,` $wq `,` $wk `,` $wv `,` $wo (`bias` `(` $bq^ `,` $bk `,` $bv `,` $bo `)`)? "
        "attr-dict `:` `(` type($x) `,` type($wq) `,` type($wk) `,` type($wv) `,` "
        "type($wo) (`,` type($bq)^ `,` type($bk) `,` type($bv) `,` type($bo))? `)` "
        "`->` type($result)"
    )

    def __init__(
        self,
        x: SSAValue | Operation,
        wq: SSAValue | Operation,
        wk: SSAValue | Operation,
        wv: SSAValue | Operation,
        wo: SSAValue | Operation,
        biases: Sequence[SSAValue | Operation] | None = None,
        *,
        heads: int,
        scale: float,
        block_rows: int | None = None,
    ):
        shape = shapes.attention(
            _shape(x), _shape(wq), _shape(wk), _shape(wv), _shape(wo), heads,
            None if biases is None else [_shape(b) for b in biases],
        )
        bq, bk, bv, bo = [None] * 4 if biases is None else biases
        super().__init__(
            operands=[x, wq, wk, wv, wo, bq, bk, bv, bo],
            result_types=[TensorType(_element(x), shape)],
            properties={"heads": _int(heads), "scale": FloatAttr(scale, f32)},
        )
        if block_rows is not None:
            self.properties["block_rows"] = _int(block_rows)

    @property
    def biases(self) -> tuple[SSAValue, SSAValue, SSAValue, SSAValue] | None:
        """`(bq, bk, bv, bo)`, or None for an op without biases."""
        if self.bq is None or self.bk is None or self.bv is None or self.bo is None:
            return None
        return (self.bq, self.bk, self.bv, self.bo)

    @property
    def rows_per_block(self) -> int | None:
        """The query rows of one block of the depth-first schedule, or None (whole
        heads at once)."""
        return None if self.block_rows is None else self.block_rows.value.data

    @property
    def head_sizes(self) -> tuple[int, int]:
        """`(dk, dv)`: the query/key and the value size of one head."""
        heads = self.heads.value.data
        return _shape(self.wq)[1] // heads, _shape(self.wv)[1] // heads

    def expected_shape(self) -> tuple[int, ...]:
        given = [b for b in (self.bq, self.bk, self.bv, self.bo) if b is not None]
        if given and len(given) != 4:
            raise ShapeError("takes the four biases bq, bk, bv, bo or none")
        if self.scale.type != f32:
            raise ShapeError(f"scale must be an f32 attribute, got {self.scale.type}")
        tokens = _shape(self.x)[1] if len(_shape(self.x)) == 3 else None
        rows = self.rows_per_block
        if rows is not None and tokens is not None and not 1 <= rows <= tokens:
            raise ShapeError(
                f"block_rows must be between 1 and the {tokens} tokens, got {rows}"
            )
        return shapes.attention(
            _shape(self.x), _shape(self.wq), _shape(self.wk), _shape(self.wv),
            _shape(self.wo), self.heads.value.data,
            [_shape(b) for b in given] if given else None,
        )


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------


class _Pool2dOp(NNOperation, ABC):
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    kernel = prop_def(DenseArrayBase.constr(i64))
    stride = prop_def(DenseArrayBase.constr(i64), default_value=_ints([1, 1]))
    padding = prop_def(DenseArrayBase.constr(i64), default_value=_ints([0, 0, 0, 0]))
    ceil_mode = opt_prop_def(UnitAttr)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def _dilation(self) -> tuple[int, ...]:
        return (1, 1)

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.pool2d(
            _shape(self.input),
            self.kernel.get_values(),
            self.stride.get_values(),
            self.padding.get_values(),
            self._dilation(),
            self.ceil_mode is not None,
        )


@irdl_op_definition
class MaxPool2dOp(_Pool2dOp):
    """2-D max pooling; padding never wins (it is -inf)."""

    name = "nn.max_pool2d"

    dilation = prop_def(DenseArrayBase.constr(i64), default_value=_ints([1, 1]))

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
        shape = shapes.pool2d(
            _shape(input), kernel, stride, padding, dilation, ceil_mode
        )
        super().__init__(
            operands=[input],
            result_types=[TensorType(_element(input), shape)],
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


@irdl_op_definition
class AvgPool2dOp(_Pool2dOp):
    """2-D average pooling. With `count_include_pad` the divisor counts the padding
    (but not the part of a ceil-mode window beyond it), as PyTorch."""

    name = "nn.avg_pool2d"

    count_include_pad = opt_prop_def(UnitAttr)

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
        shape = shapes.pool2d(_shape(input), kernel, stride, padding, (1, 1), ceil_mode)
        super().__init__(
            operands=[input],
            result_types=[TensorType(_element(input), shape)],
            properties={
                "kernel": _ints(kernel),
                "stride": _ints(stride),
                "padding": _ints(padding),
                "ceil_mode": _flag(ceil_mode),
                "count_include_pad": _flag(count_include_pad),
            },
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
            result_types=[TensorType(_element(input), self._shape_for(_shape(input)))],
        )

    @staticmethod
    def _shape_for(shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) < 3:
            raise ShapeError(f"input must have rank >= 3, got {list(shape)}")
        return (*shape[:2], *(1 for _ in shape[2:]))

    def expected_shape(self) -> tuple[int, ...]:
        return self._shape_for(_shape(self.input))


# --------------------------------------------------------------------------------------
# Shape ops (any element type)
# --------------------------------------------------------------------------------------


@irdl_op_definition
class ReshapeOp(NNOperation):
    """Row-major reshape to the result type's shape."""

    name = "nn.reshape"

    input = operand_def(TensorType)
    result = result_def(TensorType)

    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, input: SSAValue | Operation, shape: Sequence[int]):
        super().__init__(
            operands=[input], result_types=[TensorType(_element(input), shape)]
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.reshape(_shape(self.input), _shape(self.result))


@irdl_op_definition
class BroadcastToOp(NNOperation):
    """NumPy broadcasting of the input to the result type's shape (ONNX `Expand`)."""

    name = "nn.broadcast_to"

    input = operand_def(TensorType)
    result = result_def(TensorType)

    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, input: SSAValue | Operation, shape: Sequence[int]):
        shapes.broadcast_to(_shape(input), shape)
        super().__init__(
            operands=[input], result_types=[TensorType(_element(input), shape)]
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.broadcast_to(_shape(self.input), _shape(self.result))


@irdl_op_definition
class PadOp(NNOperation):
    """Constant padding: `pads` holds the padding before each axis, then after each
    axis (ONNX `Pad`'s order), all >= 0; new elements are `value` (`F.pad` with mode
    "constant"). The importer writes ONNX's reflect, edge and wrap modes as slices and
    concatenations.

        %y = nn.pad %x {pads = array<i64: 0, 0, 1, 2, 0, 0, 1, 2>} : tensor<1x2x4x4xf32> -> tensor<1x2x6x8xf32>
    """

    name = "nn.pad"

    input = operand_def(TensorType)
    result = result_def(TensorType)
    pads = prop_def(DenseArrayBase.constr(i64))
    value = prop_def(FloatAttr, default_value=_float(0.0))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(
        self, input: SSAValue | Operation, pads: Sequence[int], value: float = 0.0
    ):
        shape = shapes.pad(_shape(input), pads)
        super().__init__(
            operands=[input],
            result_types=[TensorType(_element(input), shape)],
            properties={"pads": _ints(pads), "value": _float(value)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.pad(_shape(self.input), self.pads.get_values())


@irdl_op_definition
class TransposeOp(NNOperation):
    """`result.shape[i] = input.shape[perm[i]]`."""

    name = "nn.transpose"

    input = operand_def(TensorType)
    result = result_def(TensorType)
    perm = prop_def(DenseArrayBase.constr(i64))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, input: SSAValue | Operation, perm: Sequence[int]):
        shape = shapes.transpose(_shape(input), perm)
        super().__init__(
            operands=[input],
            result_types=[TensorType(_element(input), shape)],
            properties={"perm": _ints(perm)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.transpose(_shape(self.input), self.perm.get_values())


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
        shape = shapes.concat([_shape(i) for i in inputs], axis)
        super().__init__(
            operands=[inputs],
            result_types=[TensorType(_element(inputs[0]), shape)],
            properties={"axis": _int(axis)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.concat([_shape(i) for i in self.inputs], self.axis.value.data)


@irdl_op_definition
class SliceOp(NNOperation):
    """Per axis, the elements at indices `range(start, end, step)` (Python's `range`:
    no wrapping of negative bounds; `end = -1` with a negative step reaches index 0)."""

    name = "nn.slice"

    input = operand_def(TensorType)
    result = result_def(TensorType)
    starts = prop_def(DenseArrayBase.constr(i64))
    ends = prop_def(DenseArrayBase.constr(i64))
    steps = prop_def(DenseArrayBase.constr(i64))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(
        self,
        input: SSAValue | Operation,
        starts: Sequence[int],
        ends: Sequence[int],
        steps: Sequence[int] | None = None,
    ):
        steps = [1] * len(starts) if steps is None else steps
        shape = shapes.slice_(_shape(input), starts, ends, steps)
        super().__init__(
            operands=[input],
            result_types=[TensorType(_element(input), shape)],
            properties={
                "starts": _ints(starts),
                "ends": _ints(ends),
                "steps": _ints(steps),
            },
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.slice_(
            _shape(self.input),
            self.starts.get_values(),
            self.ends.get_values(),
            self.steps.get_values(),
        )


@irdl_op_definition
class GatherOp(NNOperation):
    """The slices of the input at `indices` along `axis`, in the order listed (repeats
    allowed): `torch.index_select(input, axis, indices)`, ONNX `Gather` with constant
    1-D indices. Indices are in `[0, size)`; the importer resolves ONNX's negative ones.

        %y = nn.gather %x {axis = 0 : i64, indices = array<i64: 3, 1>} : tensor<4x5xf32> -> tensor<2x5xf32>
    """

    name = "nn.gather"

    input = operand_def(TensorType)
    result = result_def(TensorType)
    axis = prop_def(IntegerAttr[I64])
    indices = prop_def(DenseArrayBase.constr(i64))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, input: SSAValue | Operation, indices: Sequence[int], axis: int):
        shape = shapes.gather(_shape(input), indices, axis)
        super().__init__(
            operands=[input],
            result_types=[TensorType(_element(input), shape)],
            properties={"axis": _int(axis), "indices": _ints(indices)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.gather(
            _shape(self.input), self.indices.get_values(), self.axis.value.data
        )


class _AxesShapeOp(NNOperation, ABC):
    input = operand_def(TensorType)
    result = result_def(TensorType)
    axes = prop_def(DenseArrayBase.constr(i64))

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"


@irdl_op_definition
class SqueezeOp(_AxesShapeOp):
    """Removes the listed size-1 axes."""

    name = "nn.squeeze"

    def __init__(self, input: SSAValue | Operation, axes: Sequence[int]):
        shape = shapes.squeeze(_shape(input), axes)
        super().__init__(
            operands=[input],
            result_types=[TensorType(_element(input), shape)],
            properties={"axes": _ints(axes)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.squeeze(_shape(self.input), self.axes.get_values())


@irdl_op_definition
class UnsqueezeOp(_AxesShapeOp):
    """Inserts size-1 axes at the listed positions of the result."""

    name = "nn.unsqueeze"

    def __init__(self, input: SSAValue | Operation, axes: Sequence[int]):
        shape = shapes.unsqueeze(_shape(input), axes)
        super().__init__(
            operands=[input],
            result_types=[TensorType(_element(input), shape)],
            properties={"axes": _ints(axes)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.unsqueeze(_shape(self.input), self.axes.get_values())


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
        shape = shapes.reduce(_shape(input), axes, keepdims)
        super().__init__(
            operands=[input],
            result_types=[TensorType(_element(input), shape)],
            properties={"axes": _ints(axes), "keepdims": _flag(keepdims)},
        )

    def expected_shape(self) -> tuple[int, ...]:
        return shapes.reduce(
            _shape(self.input), self.axes.get_values(), self.keepdims is not None
        )


@irdl_op_definition
class ReduceMeanOp(_ReduceOp):
    """Mean over `axes`; with `keepdims` the reduced axes stay with size 1."""

    name = "nn.reduce_mean"


@irdl_op_definition
class ReduceSumOp(_ReduceOp):
    """Sum over `axes`; with `keepdims` the reduced axes stay with size 1."""

    name = "nn.reduce_sum"


NN = Dialect(
    "nn",
    [
        ParamOp,
        LoadOp,
        ConstantOp,
        ReluOp,
        SigmoidOp,
        TanhOp,
        SiluOp,
        HardswishOp,
        ErfOp,
        SqrtOp,
        ExpOp,
        LogOp,
        NegOp,
        GeluOp,
        CeilOp,
        FloorOp,
        RoundOp,
        ClipOp,
        HardsigmoidOp,
        EluOp,
        LeakyReluOp,
        AddOp,
        SubOp,
        MulOp,
        DivOp,
        PowOp,
        LinearOp,
        MatmulOp,
        Conv2dOp,
        ConvTranspose2dOp,
        SoftmaxOp,
        LogSoftmaxOp,
        LayerNormOp,
        BatchNormOp,
        GroupNormOp,
        AttentionOp,
        MaxPool2dOp,
        AvgPool2dOp,
        GlobalAvgPoolOp,
        ReshapeOp,
        BroadcastToOp,
        PadOp,
        TransposeOp,
        ConcatOp,
        SliceOp,
        GatherOp,
        SqueezeOp,
        UnsqueezeOp,
        ReduceMeanOp,
        ReduceSumOp,
    ],
    [],
)
