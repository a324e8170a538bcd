"""The `dma` dialect: asynchronous copies between memory levels.

`dma.start` begins copying a strided box of its `source` buffer into a strided box of its
`dest` buffer and returns a `!dma.token`; `dma.wait` on the token returns when the copy
has landed. Between the two the destination box holds undefined values and the source
box must not be written: a compute that reads the destination before the wait, or a
buffer reused while its copy is in flight, is wrong (the interpreter's deferred mode
makes it wrong in the numbers).

Without a box the copy is of the whole buffers, which then have one shape (the copy of a
`tile.window` into its `tile.slot`). A box has rank 1 to 3: `shape` (elements per axis) and, on each side, an element
`offset` into the flat buffer and element `strides` per axis; element `(i, j, k)` of the
box is element `offset + i*strides[0] + j*strides[1] + k*strides[2]` of the flat buffer.
Both sides hold the same element type. The levels are those a DMA engine of the target
connects: L3 <-> L2 (off-chip memory) and L2 <-> L1 (the cluster DMA), either way.

    %t = dma.start %w, %w_tile {shape = array<i64: 16, 64>, source_offset = 128,
                                source_strides = array<i64: 256, 1>,
                                dest_strides = array<i64: 64, 1>}
        : memref<64x256xf32, "L2">, memref<16x64xf32, "L1">
    dma.wait %t

`dma.done` is a token of no copy (complete at once).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, MemRefType, i64
from xdsl.ir import (
    Attribute,
    Dialect,
    Operation,
    ParametrizedAttribute,
    SSAValue,
    TypeAttribute,
)
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import MemoryReadEffect, MemoryWriteEffect
from xdsl.utils.exceptions import VerifyException

from edge_opt.dialects.base import ints
from edge_opt.dialects.kernel import MEMORY_LEVELS, memory_level

MAX_RANK = 3
"""The largest box a transfer moves (the cluster DMA's 2-D mode, one more axis looped)."""

CONNECTED_LEVELS = frozenset({("L3", "L2"), ("L2", "L3"), ("L2", "L1"), ("L1", "L2")})
"""(source, destination) levels a DMA engine connects."""


@irdl_attr_definition
class TokenType(ParametrizedAttribute, TypeAttribute):
    """A copy in flight, from its `dma.start` to its `dma.wait`."""

    name = "dma.token"


def box_extent(shape: Sequence[int], offset: int, strides: Sequence[int]) -> int:
    """One past the last flat element a box touches."""
    return offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) + 1


def box_overlaps_itself(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether two elements of a box may share an address. Sufficient for a box laid out
    outer to inner: each stride steps over the whole box of the axes inside it."""
    inner = 1  # the elements the axes inside the current one span
    for n, stride in zip(reversed(shape), reversed(strides), strict=True):
        if n > 1:
            if stride < inner:
                return True
            inner += (n - 1) * stride
    return False


@irdl_op_definition
class StartOp(IRDLOperation):
    """Starts copying a box of `source` into a box of `dest` (module docstring)."""

    name = "dma.start"

    source = operand_def(MemRefType)
    dest = operand_def(MemRefType)
    shape = opt_prop_def(DenseArrayBase)
    source_offset = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    source_strides = opt_prop_def(DenseArrayBase)
    dest_offset = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    dest_strides = opt_prop_def(DenseArrayBase)
    token = result_def(TokenType)

    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$source `,` $dest attr-dict `:` type($source) `,` type($dest)"
    )

    def __init__(
        self,
        source: SSAValue | Operation,
        dest: SSAValue | Operation,
        shape: Sequence[int] | None = None,
        source_strides: Sequence[int] | None = None,
        dest_strides: Sequence[int] | None = None,
        source_offset: int = 0,
        dest_offset: int = 0,
    ):
        properties: dict[str, Attribute] = {}
        if shape is not None:
            assert source_strides is not None and dest_strides is not None
            properties = {
                "shape": ints(shape),
                "source_offset": IntegerAttr(source_offset, i64),
                "source_strides": ints(source_strides),
                "dest_offset": IntegerAttr(dest_offset, i64),
                "dest_strides": ints(dest_strides),
            }
        super().__init__(operands=[source, dest], result_types=[TokenType()],
                         properties=properties)

    def box(self, side: str) -> tuple[tuple[int, ...], int, tuple[int, ...]] | None:
        """(shape, offset, strides) of the `"source"` or `"dest"` box; None for a copy
        of the whole buffers."""
        if self.shape is None:
            return None
        offset = getattr(self, f"{side}_offset").value.data
        strides = getattr(self, f"{side}_strides")
        return tuple(self.shape.get_values()), offset, tuple(
            strides.get_values() if strides is not None else ()
        )

    def verify_(self) -> None:
        levels = []
        for side, value in (("source", self.source), ("dest", self.dest)):
            try:
                level = memory_level(value.type)
            except VerifyException as e:
                raise VerifyException(f"{self.name}: {side}: {e}") from None
            if level not in MEMORY_LEVELS:
                raise VerifyException(f'{self.name}: {side} is in unknown level "{level}"')
            levels.append(level)
        if tuple(levels) not in CONNECTED_LEVELS:
            raise VerifyException(
                f"{self.name}: no DMA engine copies {levels[0]} -> {levels[1]} (it "
                "connects L3 <-> L2 and L2 <-> L1)"
            )
        source_type, dest_type = self.source.type, self.dest.type
        assert isinstance(source_type, MemRefType) and isinstance(dest_type, MemRefType)
        if source_type.element_type != dest_type.element_type:
            raise VerifyException(
                f"{self.name}: source and dest element types differ "
                f"({source_type.element_type} and {dest_type.element_type})"
            )
        if self.shape is None:
            self._verify_whole(source_type, dest_type)
            return
        shape = self.shape.get_values()
        if not 1 <= len(shape) <= MAX_RANK or any(n < 1 for n in shape):
            raise VerifyException(
                f"{self.name}: shape {list(shape)} must have 1 to {MAX_RANK} axes, each "
                "at least 1"
            )
        for side, type in (("source", source_type), ("dest", dest_type)):
            box_shape, offset, strides = self.box(side)
            if len(strides) != len(box_shape):
                raise VerifyException(
                    f"{self.name}: {side}_strides {list(strides)} must have one stride "
                    f"per axis of shape {list(box_shape)}"
                )
            if offset < 0 or any(s < 0 for s in strides):
                raise VerifyException(
                    f"{self.name}: {side} offset and strides must be >= 0"
                )
            end, size = box_extent(box_shape, offset, strides), type.element_count()
            if end > size:
                raise VerifyException(
                    f"{self.name}: the {side} box (offset {offset}, shape "
                    f"{list(box_shape)}, strides {list(strides)}) reaches element "
                    f"{end - 1} of a buffer of {size}"
                )
        dest_strides = self.box("dest")[2]  # type: ignore[index]
        if box_overlaps_itself(shape, dest_strides):
            raise VerifyException(
                f"{self.name}: dest_strides {list(dest_strides)} write two elements of "
                f"shape {list(shape)} to one address"
            )

    def _verify_whole(self, source: MemRefType, dest: MemRefType) -> None:
        extra = [k for k in ("source_strides", "dest_strides") if getattr(self, k) is not None]
        extra += [k for k in ("source_offset", "dest_offset")
                  if getattr(self, k).value.data != 0]
        if extra:
            raise VerifyException(
                f"{self.name}: {extra[0]} without a shape: give the box's shape, or copy "
                "whole buffers"
            )
        if source.get_shape() != dest.get_shape():
            raise VerifyException(
                f"{self.name}: a copy of whole buffers needs one shape, not "
                f"{list(source.get_shape())} and {list(dest.get_shape())}"
            )


@irdl_op_definition
class WaitOp(IRDLOperation):
    """Waits until the copy of `token` has landed."""

    name = "dma.wait"

    token = operand_def(TokenType)

    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    assembly_format = "$token attr-dict"

    def __init__(self, token: SSAValue | Operation):
        super().__init__(operands=[token])


@irdl_op_definition
class DoneOp(IRDLOperation):
    """A token of no copy, complete at once: what a loop waits on before its first
    copy of a kind (the store before the first tile's)."""

    name = "dma.done"

    token = result_def(TokenType)

    # Not pure: two tokens are two things to wait on (CSE must not merge them).
    traits = traits_def(MemoryWriteEffect())
    assembly_format = "attr-dict"

    def __init__(self):
        super().__init__(result_types=[TokenType()])


DMA = Dialect("dma", [StartOp, WaitOp, DoneOp], [TokenType])
