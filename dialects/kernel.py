"""The `kernel` dialect: the buffer level.

Ops in destination-passing style on `memref`s whose memory space names the memory level
(`memref<1x64x32x32xf32, "L2">`): each reads its `ins` and writes its `outs`, and each is
one call of a runtime kernel of the C backend. Every tensor-level compute op (`nn.*`,
`train.*`) has exactly one kernel op with the same name after the dot and the same
properties: `nn.conv2d` -> `kernel.conv2d`, `train.conv2d_grad_input` ->
`kernel.conv2d_grad_input`. Its semantics are the tensor op's applied to the contents of
its input buffers, written to its output buffers (so a kernel op is verified, and
interpreted, through its tensor-level twin: `KernelOp.tensor_equivalent`).

Storage:
- `kernel.alloc` is a buffer in the arena of its memory level; after `plan-memory` it has
  an `offset` (bytes) in that arena. Its lifetime ends at its last use.
- `kernel.get_param @p` is the persistent buffer of parameter `@p` (an optimizer update
  writes it in place); `kernel.constant` is a read-only buffer with a value.
- `kernel.view` reinterprets a buffer with another shape (reshape, squeeze, unsqueeze):
  no copy, same storage.
- `kernel.copy` copies one buffer into another of the same shape.

Some kernels may write their output over an input (`KernelOp.INPLACE`: element-wise
ops, optimizer updates); the bufferizer uses that to reuse a dying input's buffer. The
fused weight updates (`kernel.linear_grad_weight_sgd`, `kernel.conv2d_grad_weight_sgd`)
take one more output than their tensor op has results: a workspace buffer for a chunk
of gradient rows (`KernelOp.WORKSPACE`), allocated by the bufferizer and planned like
any buffer.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import (
    DenseIntOrFPElementsAttr,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, Block, Dialect, Operation, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.irdl.operations import OptPropertyDef
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import (
    MemoryAllocEffect,
    MemoryReadEffect,
    MemoryWriteEffect,
    NoMemoryEffect,
    SymbolUserOpInterface,
)
from xdsl.utils.exceptions import VerifyException

from edge_opt.dialects import nn, train
from edge_opt.dialects.base import ParamReadOp
from edge_opt.dialects.elementwise import (
    BinaryElementwiseOp,
    ElementwiseGradOp,
    UnaryElementwiseOp,
)
from edge_opt.support.dtypes import to_numpy

MEMORY_LEVELS = ("L1", "L2", "L3")

LEVEL_ATTR = "kernel.level"
"""On an `nn.param`: the memory level of its persistent buffer (set by `bufferize`)."""
OFFSET_ATTR = "kernel.offset"
"""On an `nn.param`: its offset in its level's persistent region (set by `plan-memory`)."""
MEMORY_ATTR = "kernel.memory"
"""On the module: per level, the planned `arena`, `lower_bound`, `naive`, `persistent`
and `constants` bytes (set by `plan-memory`)."""
SOC_ATTR = "kernel.soc"
"""On the module: the name of the SoC its memory is planned for (set by `plan-memory`)."""


def planned_soc(module: ModuleOp) -> str | None:
    """The SoC a planned module is planned for (its `kernel.soc`)."""
    attr = module.attributes.get(SOC_ATTR)
    return attr.data if isinstance(attr, StringAttr) else None


def memory_level(type: Attribute) -> str:
    """The memory level of a buffer type (its memory space)."""
    if not isinstance(type, MemRefType) or not isinstance(type.memory_space, StringAttr):
        raise VerifyException(f"expected a memref with a memory level, got {type}")
    return type.memory_space.data


def buffer_type(tensor: TensorType, level: str) -> MemRefType:
    return MemRefType(tensor.element_type, tensor.get_shape(), memory_space=StringAttr(level))


def tensor_type(buffer: Attribute) -> TensorType:
    assert isinstance(buffer, MemRefType)
    return TensorType(buffer.element_type, buffer.get_shape())


def _check_level(op: Operation, values: Sequence[SSAValue]) -> None:
    for value in values:
        try:
            level = memory_level(value.type)
        except VerifyException as e:
            raise VerifyException(f"{op.name}: {e}") from None
        if level not in MEMORY_LEVELS:
            raise VerifyException(
                f"{op.name}: unknown memory level \"{level}\" (expected one of "
                f"{', '.join(MEMORY_LEVELS)})"
            )


class KernelOp(IRDLOperation, ABC):
    """A runtime kernel call: `kernel.<name> ins(...) outs(...) {properties}`."""

    TENSOR_OP: ClassVar[type[IRDLOperation]]
    """The tensor-level op whose semantics this kernel implements."""
    INPLACE: ClassVar[dict[int, tuple[int, ...]]] = {}
    """For an output index, the inputs whose buffer it may be written over."""
    WORKSPACE: ClassVar[bool] = False
    """Whether the last output is a scratch buffer of the kernel (not a result of the
    tensor-level op; its contents afterwards are undefined): the fused weight updates'
    chunk of gradient rows, `(chunk_rows, *weight.shape[1:])`."""

    inputs = var_operand_def(MemRefType)
    outputs = var_operand_def(MemRefType)

    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    assembly_format = (
        "`ins` `(` $inputs `:` type($inputs) `)` `outs` `(` $outputs `:` "
        "type($outputs) `)` attr-dict"
    )

    def __init__(
        self,
        inputs: Sequence[SSAValue | Operation],
        outputs: Sequence[SSAValue | Operation],
        properties: dict[str, Attribute] | None = None,
    ):
        super().__init__(operands=[inputs, outputs], properties=properties or {})

    def tensor_equivalent(self, shapes: Sequence[Sequence[int]] | None = None) -> Operation:
        """The tensor-level op on block arguments of this op's buffer shapes (or of
        `shapes`, one per input then output: a ragged tile), with the same properties:
        its rules and semantics are this kernel's."""
        types = [tensor_type(v.type) for v in (*self.inputs, *self.result_outputs())]
        if shapes is not None:
            # a workspace's shape (the last, when `shapes` has one per operand) is not
            # the twin's
            shapes = shapes[: len(types)] if len(shapes) == len(self.operands) else shapes
            types = [TensorType(t.element_type, s) for t, s in zip(types, shapes, strict=True)]
        block = Block(arg_types=types[: len(self.inputs)])
        return self.TENSOR_OP.create(
            operands=list(block.args),
            result_types=types[len(self.inputs):],
            properties=self.own_properties(),
        )

    def result_outputs(self) -> Sequence[SSAValue]:
        """The outputs that hold the tensor op's results (all but a workspace)."""
        return self.outputs[:-1] if self.WORKSPACE else self.outputs

    def own_properties(self) -> dict[str, Attribute]:
        """The op's properties but its operand segment sizes: what a copy of the op
        on other buffers takes."""
        return {k: v for k, v in self.properties.items() if k != "operandSegmentSizes"}

    def verify_(self) -> None:
        _check_level(self, [*self.inputs, *self.outputs])
        for i, output in enumerate(self.outputs):
            for j, input in enumerate(self.inputs):
                if output == input and j not in self.INPLACE.get(i, ()):
                    raise VerifyException(
                        f"{self.name}: output {i} is input {j}'s buffer, but this "
                        "kernel cannot run in place"
                    )
        if self.WORKSPACE:
            self._verify_workspace()
        twin = self.tensor_equivalent()
        try:
            twin.verify_()
        except VerifyException as e:
            message = str(e).replace(self.TENSOR_OP.name, self.name, 1)
            if not message.startswith(self.name):
                # A type constraint of the twin's definition: its message names no op.
                message = f"{self.name}: {message}"
            raise VerifyException(message) from None


    def _verify_workspace(self) -> None:
        if len(self.outputs) < 2:
            raise VerifyException(f"{self.name}: expected a result and a workspace output")
        workspace, result = self.outputs[-1], self.outputs[0]
        rows = self.properties["chunk_rows"].value.data  # type: ignore[attr-defined]
        expected = (rows, *tensor_type(result.type).get_shape()[1:])
        if tensor_type(workspace.type) != TensorType(
                tensor_type(result.type).element_type, expected):
            raise VerifyException(
                f"{self.name}: the workspace is {workspace.type}, expected "
                f"{list(expected)} of the result's element type (chunk_rows rows of "
                "the weight)"
            )
        if workspace in (*self.inputs, *self.outputs[:-1]):
            raise VerifyException(f"{self.name}: the workspace must be a buffer of its own")


def _property_field(definition) -> object:
    if isinstance(definition, OptPropertyDef):
        return opt_prop_def(definition.constr, definition.default_value)
    return prop_def(definition.constr, definition.default_value)


def kernel_op(
    tensor_op: type[IRDLOperation], inplace: dict[int, tuple[int, ...]] | None = None,
    workspace: bool = False,
) -> type[KernelOp]:
    """Declares the kernel op of `tensor_op` (see the module docstring)."""
    short = tensor_op.name.split(".", 1)[1]
    namespace: dict[str, object] = {
        "name": f"kernel.{short}",
        "TENSOR_OP": tensor_op,
        "INPLACE": inplace or {},
        "WORKSPACE": workspace,
        "__doc__": f"Buffer form of `{tensor_op.name}`: {tensor_op.__doc__ or ''}",
        "__module__": __name__,
        "__annotations__": {"TENSOR_OP": ClassVar, "INPLACE": ClassVar,
                            "WORKSPACE": ClassVar},
    }
    for name, definition in tensor_op.get_irdl_definition().properties.items():
        namespace[name] = _property_field(definition)
    class_name = "".join(part.capitalize() for part in short.split("_")) + "KernelOp"
    cls = type(class_name, (KernelOp,), namespace)
    return irdl_op_definition(cls)


# --------------------------------------------------------------------------------------
# The kernel ops: one per tensor-level compute op, one per runtime kernel.
# --------------------------------------------------------------------------------------

_NO_KERNEL: tuple[type[IRDLOperation], ...] = (
    nn.ParamOp, nn.LoadOp, nn.ConstantOp, nn.AttentionOp, nn.ReshapeOp, nn.SqueezeOp,
    nn.UnsqueezeOp, train.StoreOp,
)
"""The tensor-level ops without a kernel: parameters and constants are buffers
(`kernel.get_param`, `kernel.constant`), reshapes are views (`kernel.view`), a store is
an in-place write, and attention is lowered to primitive ops before bufferization."""

_IN_PLACE_0 = {0: (0,)}
_INPLACE: dict[type[IRDLOperation], dict[int, tuple[int, ...]]] = {
    nn.BatchNormOp: _IN_PLACE_0,
    train.MseGradOp: _IN_PLACE_0,
    train.ScatterOp: _IN_PLACE_0,
    train.SgdOp: _IN_PLACE_0,
    train.LinearGradWeightSgdOp: {0: (2,)},
    train.Conv2dGradWeightSgdOp: {0: (2,)},
    train.SgdMomentumOp: {0: (0,), 1: (2,)},
    train.AdamOp: {0: (0,), 1: (2,), 2: (3,)},
}
"""The kernels but the element-wise ones (which all may run in place) that may write an
output over an input."""


def _inplace(op: type[IRDLOperation]) -> dict[int, tuple[int, ...]]:
    if issubclass(op, UnaryElementwiseOp | ElementwiseGradOp):
        return _IN_PLACE_0
    if issubclass(op, BinaryElementwiseOp):
        return {0: (0, 1)}
    return _INPLACE.get(op, {})


_WITH_WORKSPACE = (train.LinearGradWeightSgdOp, train.Conv2dGradWeightSgdOp)
"""The kernels whose last output is a workspace (`KernelOp.WORKSPACE`)."""

KERNEL_OPS: tuple[type[KernelOp], ...] = tuple(
    kernel_op(op, _inplace(op), op in _WITH_WORKSPACE)
    for op in (*nn.NN.operations, *train.TRAIN.operations)
    if op not in _NO_KERNEL
)
globals().update({cls.__name__: cls for cls in KERNEL_OPS})
KERNEL_OF: dict[type[IRDLOperation], type[KernelOp]] = {
    cls.TENSOR_OP: cls for cls in KERNEL_OPS
}
"""The kernel op of each tensor-level compute op."""


# --------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------


@irdl_op_definition
class AllocOp(IRDLOperation):
    """A buffer in the arena of its memory level, live until its last use. `offset`
    (bytes from the arena's start) is set by `plan-memory`.

        %a = kernel.alloc {offset = 1024 : i64} : memref<1x64x32x32xf32, "L2">
    """

    name = "kernel.alloc"

    result = result_def(MemRefType)
    offset = opt_prop_def(IntegerAttr.constr(type=i64))

    traits = traits_def(MemoryAllocEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, type: MemRefType, offset: int | None = None):
        super().__init__(
            result_types=[type],
            properties={"offset": None if offset is None else IntegerAttr(offset, 64)},
        )

    def verify_(self) -> None:
        _check_level(self, [self.result])
        if self.offset is not None and self.offset.value.data < 0:
            raise VerifyException(f"kernel.alloc: offset {self.offset.value.data} < 0")


class _ParamUse(SymbolUserOpInterface):
    def verify(self, op: Operation) -> None:
        assert isinstance(op, GetParamOp)
        nn.resolve_param(op, op.param, tensor_type(op.result.type))


@irdl_op_definition
class GetParamOp(ParamReadOp):
    """The persistent buffer of parameter `@param` (reads and in-place writes of the
    parameter go through it).

        %w = kernel.get_param @fc_weight : memref<10x128xf32, "L2">
    """

    name = "kernel.get_param"

    result = result_def(MemRefType)

    traits = traits_def(NoMemoryEffect(), _ParamUse())

    def verify_(self) -> None:
        _check_level(self, [self.result])


@irdl_op_definition
class ConstantOp(IRDLOperation):
    """A read-only buffer holding `value` (a splat kept as one element, as in
    `nn.constant`).

        %c = kernel.constant dense<2.0> : tensor<f32> -> memref<f32, "L2">
    """

    name = "kernel.constant"

    value = prop_def(DenseIntOrFPElementsAttr)
    result = result_def(MemRefType)

    traits = traits_def(NoMemoryEffect())

    def __init__(
        self, value: DenseIntOrFPElementsAttr, level: str, type: TensorType | None = None
    ):
        tensor = type or value.type
        assert isinstance(tensor, TensorType)
        super().__init__(
            properties={"value": nn.compact_splat(value)},
            result_types=[buffer_type(tensor, level)],
        )

    def array(self) -> np.ndarray:
        """The value at the buffer's shape (a read-only broadcast view for a splat)."""
        return np.broadcast_to(to_numpy(self.value), self.result.type.get_shape())

    def verify_(self) -> None:
        _check_level(self, [self.result])
        nn.verify_constant_value(self, self.value, tensor_type(self.result.type))

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        nn.print_constant_value(printer, self.value, tensor_type(self.result.type))
        printer.print_string(" -> ")
        printer.print_attribute(self.result.type)
        printer.print_op_attributes(self.attributes)

    @classmethod
    def parse(cls, parser: Parser) -> ConstantOp:
        value, tensor = nn.parse_constant_value(parser)
        parser.parse_punctuation("->")
        type = parser.parse_type()
        if not isinstance(type, MemRefType):
            parser.raise_error("kernel.constant expects a memref result type")
        if tensor_type(type) != tensor:
            parser.raise_error(
                f"kernel.constant: the value's type {tensor} does not match the buffer "
                f"{type}"
            )
        op = cls(value, memory_level(type), tensor)  # type: ignore[arg-type]
        op.attributes |= parser.parse_optional_attr_dict()
        return op


@irdl_op_definition
class ViewOp(IRDLOperation):
    """The same storage with another shape of the same element count and type (the
    buffer form of reshape, squeeze and unsqueeze).

        %v = kernel.view %a : memref<4x8x1x1xf32, "L2"> -> memref<4x8xf32, "L2">
    """

    name = "kernel.view"

    source = operand_def(MemRefType)
    result = result_def(MemRefType)

    traits = traits_def(NoMemoryEffect())
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue | Operation, shape: Sequence[int]):
        type = SSAValue.get(source).type
        assert isinstance(type, MemRefType)
        super().__init__(
            operands=[source],
            result_types=[MemRefType(type.element_type, shape, memory_space=type.memory_space)],
        )

    def verify_(self) -> None:
        _check_level(self, [self.source, self.result])
        src, dst = self.source.type, self.result.type
        assert isinstance(src, MemRefType) and isinstance(dst, MemRefType)
        if (
            src.element_type != dst.element_type
            or src.element_count() != dst.element_count()
            or src.memory_space != dst.memory_space
        ):
            raise VerifyException(
                f"kernel.view: {src} and {dst} differ in element type, count or memory "
                "level"
            )


@irdl_op_definition
class CopyOp(IRDLOperation):
    """Copies `source` into `dest` (same shape and element type; the levels may differ).

        kernel.copy %a, %b : memref<8xf32, "L2">, memref<8xf32, "L2">
    """

    name = "kernel.copy"

    source = operand_def(MemRefType)
    dest = operand_def(MemRefType)

    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    assembly_format = "$source `,` $dest attr-dict `:` type($source) `,` type($dest)"

    def __init__(self, source: SSAValue | Operation, dest: SSAValue | Operation):
        super().__init__(operands=[source, dest])

    def verify_(self) -> None:
        _check_level(self, [self.source, self.dest])
        if tensor_type(self.source.type) != tensor_type(self.dest.type):
            raise VerifyException(
                f"kernel.copy: {self.source.type} and {self.dest.type} differ in shape "
                "or element type"
            )


KERNEL = Dialect(
    "kernel",
    [*KERNEL_OPS, AllocOp, GetParamOp, ConstantOp, ViewOp, CopyOp],
    [],
)
