"""The `nn` dialect: the graph level of edge-opt.

Neural-network operators on builtin ranked `tensor<...>` values with static shapes, plus
module-level parameters (`nn.param`) read with `nn.load`. Every op verifies its shape rule
(`edge_opt.support.shapes`) and names itself and the broken rule in the error. Every op has a
builder that infers its result type, so passes and the importer never compute shapes.

Semantics (what the interpreter in `edge_opt.ir.interpreters.nn` implements) follow
PyTorch's `torch.nn.functional` of the same name; where ONNX and PyTorch differ, the op
docstring says which one we follow. Layout is NCHW; 2-D `padding` is
`(top, left, bottom, right)`.

This module holds the parameters, constants and attention, and the dialect; the other
ops are declared by family, with their `train` gradient ops, in
`edge_opt.dialects.{elementwise,linalg,norm,pool,shape}` (the element-wise ones from the
table `edge_opt.support.elementwise`), and are importable from here as `nn.<Name>Op`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import (
    I64,
    BytesAttr,
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
    FloatTensor,
    NNOperation,
    element_of,
    flag,
    int_,
    shape_of,
    verify_static_shapes,
)
from edge_opt.dialects.elementwise import BinaryElementwiseOp, UnaryElementwiseOp
from edge_opt.dialects.linalg import Conv2dOp, ConvTranspose2dOp, LinearOp, MatmulOp
from edge_opt.dialects.norm import (
    BatchNormOp,
    GroupNormOp,
    LayerNormOp,
    LogSoftmaxOp,
    SoftmaxOp,
)
from edge_opt.dialects.pool import AvgPool2dOp, GlobalAvgPoolOp, MaxPool2dOp
from edge_opt.dialects.shape import (
    BroadcastToOp,
    ConcatOp,
    GatherOp,
    PadOp,
    ReduceMeanOp,
    ReduceSumOp,
    ReshapeOp,
    SliceOp,
    SqueezeOp,
    TransposeOp,
    UnsqueezeOp,
)
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
