"""The `nn` dialect: the graph level of edge-opt.

Neural-network operators on builtin ranked `tensor<...>` values with static shapes, plus
module-level parameters (`nn.param`) read with `nn.load`. Every op verifies its shape rule
(`edge_opt.support.shapes`) and names itself and the broken rule in the error. Every op has a
builder that infers its result type, so passes and the importer never compute shapes.

Semantics (what the interpreter in `edge_opt.ir.interpreters.nn` implements) follow
PyTorch's `torch.nn.functional` of the same name; where ONNX and PyTorch differ, the op
docstring says which one we follow. Layout is NCHW; 2-D `padding` is
`(top, left, bottom, right)`.

Sections: parameters and constants, attention, linear algebra (linear, matmul,
convolutions), normalizations and softmax, pooling, shape and data movement. The
attribute blocks an op shares with its `train` gradient ops are declared once in
`edge_opt.dialects.base`; the element-wise ops are built from the table
`edge_opt.support.elementwise` (`edge_opt.dialects.elementwise`) and importable from here
as `nn.<Name>Op`.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import (
    I64,
    BytesAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
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

from edge_opt.dialects import elementwise
from edge_opt.dialects.base import (
    CONV_DEFAULTS,
    AvgPoolAttributes,
    AxisAttribute,
    BatchNormAttributes,
    ConvAttributes,
    ConvTransposeAttributes,
    FloatTensor,
    GroupNormAttributes,
    IndexAttributes,
    LayerNormAttributes,
    MaxPoolAttributes,
    NNOperation,
    ParamReadOp,
    SameTypeUnaryOp,
    SliceAttributes,
    check_channels,
    conv_properties,
    element_of,
    flag,
    float_,
    int_,
    ints,
    like,
    pool_properties,
    pooled_type,
    shape_of,
    verify_static_shapes,
)
from edge_opt.dialects.elementwise import BinaryElementwiseOp, UnaryElementwiseOp
from edge_opt.support import shapes
from edge_opt.support.dtypes import to_numpy
from edge_opt.support.shapes import ShapeError

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
                "trainable": flag(trainable),
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
class LoadOp(ParamReadOp):
    """Reads the current value of a parameter.

        %w = nn.load @fc_weight : tensor<10x128xf32>
    """

    name = "nn.load"

    result = result_def(TensorType)

    traits = traits_def(MemoryReadEffect(), _LoadSymbolUse())


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


def constant_array(value: SSAValue) -> np.ndarray | None:
    """The value of `value` if an `nn.constant` defines it, else None."""
    owner = value.owner
    return owner.array() if isinstance(owner, ConstantOp) else None


def constant_scalar(value: SSAValue) -> float | None:
    """The number of a one-element `nn.constant`, else None."""
    array = constant_array(value)
    return float(array.reshape(-1)[0]) if array is not None and array.size == 1 else None


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
            shape_of(x), shape_of(wq), shape_of(wk), shape_of(wv), shape_of(wo), heads,
            None if biases is None else [shape_of(b) for b in biases],
        )
        bq, bk, bv, bo = [None] * 4 if biases is None else biases
        super().__init__(
            operands=[x, wq, wk, wv, wo, bq, bk, bv, bo],
            result_types=[TensorType(element_of(x), shape)],
            properties={"heads": int_(heads), "scale": FloatAttr(scale, f32)},
        )
        if block_rows is not None:
            self.properties["block_rows"] = int_(block_rows)

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
        return shape_of(self.wq)[1] // heads, shape_of(self.wv)[1] // heads

    def expected_shape(self) -> tuple[int, ...]:
        given = [b for b in (self.bq, self.bk, self.bv, self.bo) if b is not None]
        if given and len(given) != 4:
            raise ShapeError("takes the four biases bq, bk, bv, bo or none")
        if self.scale.type != f32:
            raise ShapeError(f"scale must be an f32 attribute, got {self.scale.type}")
        tokens = shape_of(self.x)[1] if len(shape_of(self.x)) == 3 else None
        rows = self.rows_per_block
        if rows is not None and tokens is not None and not 1 <= rows <= tokens:
            raise ShapeError(
                f"block_rows must be between 1 and the {tokens} tokens, got {rows}"
            )
        return shapes.attention(
            shape_of(self.x), shape_of(self.wq), shape_of(self.wk), shape_of(self.wv),
            shape_of(self.wo), self.heads.value.data,
            [shape_of(b) for b in given] if given else None,
        )


# --------------------------------------------------------------------------------------
# Linear algebra: linear, matmul, convolutions
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
        values = {k: attributes.get(k, CONV_DEFAULTS[k]) for k in self.BUILD_ORDER}
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
# Normalizations and softmax
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
# Pooling
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
            result_types=[pooled_type(input, kernel, stride, padding, dilation, ceil_mode)],
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
            result_types=[pooled_type(input, kernel, stride, padding, (1, 1), ceil_mode)],
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
# Shape and data movement
# --------------------------------------------------------------------------------------


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
# The dialect
# --------------------------------------------------------------------------------------

globals().update({op.__name__: op for op in (*elementwise.UNARY_OPS, *elementwise.BINARY_OPS)})

NN = Dialect(
    "nn",
    [
        ParamOp,
        LoadOp,
        ConstantOp,
        *elementwise.UNARY_OPS,
        *elementwise.BINARY_OPS,
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

__all__ = [
    "NN", "NNOperation", "UnaryElementwiseOp", "BinaryElementwiseOp", "FloatTensor",
    "resolve_param", "verify_static_shapes", "compact_splat", "verify_constant_value",
    "print_constant_value", "parse_constant_value",
    *(op.__name__ for op in NN.operations),
]
