"""The `tile` dialect: a kernel call as a loop nest over tiles of its iteration space.

`tile.schedule` states the nest (`edge_opt.support.tiling.Schedule`): the extent of each
dimension of the iteration space, the tile size along it, and the loop order (outermost
first). Tiles are numbered in visiting order; the last tile of a dimension is ragged when
its size does not divide the extent. `tile.for` runs its body once per tile, with the
tile number as the block argument and DMA tokens carried from one tile to the next
(`iter_args`, as `scf.for`).

An operand of the kernel reaches a tile through its *operand map* (`map`: per axis, the
dimension it follows or -1 for a whole axis):
- `tile.window %buffer, %schedule at %t {map, delta, when}` is the box of `%buffer`
  (L2 or L3) that tile `%t + delta` reads or writes, as a strided view. `when` says which
  tiles have one: `always`; `first`, only the first of the consecutive tiles that share
  the window (the one that must load it); `last`, only the last (the one that stores it).
  A tile out of range, or not selected by `when`, has no window: a `dma.start` of no
  window copies nothing and its token is complete at once.
- `tile.slot %schedule at %t (%a, %b) {map, delta}` is the L1 buffer holding that window
  of tile `%t + delta`: consecutive windows alternate between the slots (double
  buffering). The window is packed at the start of the slot, so a ragged tile uses a
  prefix of it.
- `tile.accumulate %schedule at %t %partial into %acc {map}` adds a tile's partial
  result into the window of an output that sums over a tiled dimension (linear
  grad-weight over row tiles): the first tile of the window copies, the next ones add.

A convolution's input rows overlap from one tile of output rows to the next: such an
operand has a `halo` (`array<i64: axis, stride, span, before>`,
`edge_opt.support.tiling.Halo`), and its window is the range of rows a tile reaches,
clipped to the buffer. The kernel reads the unclipped range, the rows outside the
buffer being zeros (its own row padding removed):
- `tile.halo %window, %schedule at %t {map, halo}` is that padded copy of the window
  (`tile-l1`'s form; a new buffer);
- `tile.pad %slot, %window, %schedule at %t {map, halo}` writes zeros to the rows of an
  L1 slot that fall outside the buffer and is the view of the others (of the window's
  type, in L1), where the DMA copy of `%window` lands (`insert-dma`'s form).

A result's type is that of a full tile; the ragged last tile is smaller (the interpreter
and the C backend run the kernel on the clipped shape). Without `at %t` the tile number
is `delta`, as in the prologue that loads the first tile before the loop.

    %s = tile.schedule {extents = array<i64: 64, 128>, sizes = array<i64: 16, 128>,
                        order = array<i64: 0, 1>}
    %r = tile.for %t in %s iter_args(%pending = %load0) -> (!dma.token) {
      %x = tile.slot %s at %t (%x0, %x1) {map = array<i64: 0, -1>} : memref<16x128xf32, "L1">
      ...
      tile.yield %next : !dma.token
    }
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from xdsl.dialects.builtin import (
    DenseArrayBase,
    IndexType,
    IntegerAttr,
    MemRefType,
    StringAttr,
    i64,
)
from xdsl.ir import (
    Attribute,
    Block,
    Dialect,
    ParametrizedAttribute,
    Region,
    SSAValue,
    TypeAttribute,
)
from xdsl.irdl import (
    AttrSizedOperandSegments,
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    region_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.traits import (
    HasParent,
    IsTerminator,
    MemoryReadEffect,
    MemoryWriteEffect,
    NoMemoryEffect,
    RecursiveMemoryEffect,
)
from xdsl.utils.exceptions import VerifyException

from edge_opt.dialects.base import ints
from edge_opt.dialects.dma import TokenType
from edge_opt.dialects.kernel import memory_level
from edge_opt.support.tiling import Halo, Schedule, check_map, halo_of

When = Literal["always", "first", "last"]
WHENS: tuple[str, ...] = ("always", "first", "last")


@irdl_attr_definition
class ScheduleType(ParametrizedAttribute, TypeAttribute):
    """The loop nest of a tiled kernel call."""

    name = "tile.schedule"


SINGLE_BUFFER_ATTR = "single_buffer"
"""A unit attribute of a `tile.schedule` whose working set fits L1 only with one slot
per operand: `insert-dma` must not double-buffer its nest."""


@irdl_op_definition
class ScheduleOp(IRDLOperation):
    """The loop nest of one kernel call (module docstring)."""

    name = "tile.schedule"

    extents = prop_def(DenseArrayBase)
    sizes = prop_def(DenseArrayBase)
    order = prop_def(DenseArrayBase)
    result = result_def(ScheduleType)

    traits = traits_def(NoMemoryEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "attr-dict"

    def __init__(self, schedule: Schedule):
        super().__init__(
            result_types=[ScheduleType()],
            properties={
                "extents": ints(schedule.extents),
                "sizes": ints(schedule.sizes),
                "order": ints(schedule.order),
            },
        )

    def schedule(self) -> Schedule:
        return Schedule(
            tuple(self.extents.get_values()),
            tuple(self.sizes.get_values()),
            tuple(self.order.get_values()),
        )

    def verify_(self) -> None:
        try:
            self.schedule()
        except ValueError as e:
            raise VerifyException(f"{self.name}: {e}") from None


def schedule_of(value: SSAValue) -> Schedule:
    """The schedule a `!tile.schedule` value stands for."""
    owner = value.owner
    if not isinstance(owner, ScheduleOp):
        raise VerifyException(f"a schedule must come from tile.schedule, not {owner}")
    return owner.schedule()


class TileIndexedOp(IRDLOperation):
    """An op about tile `at + delta` (or tile `delta`) of a schedule, through an operand
    map (fields `schedule`, `tile`, `map`, `delta`, declared by each op so that their
    operand order is the printed one)."""

    def operand_map(self) -> tuple[int, ...]:
        return tuple(self.map.get_values())  # type: ignore[attr-defined]

    def halo(self) -> Halo | None:
        value = getattr(self, "halo_", None)
        return halo_of(tuple(value.get_values())) if value is not None else None

    def tile_number(self, at: int | None) -> int:
        """The tile this op is about when the loop is at tile `at`."""
        return (at or 0) + self.delta.value.data  # type: ignore[attr-defined]

    def check_map(self, shape: Sequence[int]) -> Schedule:
        schedule = schedule_of(self.schedule)  # type: ignore[attr-defined]
        problem = check_map(self.operand_map(), shape, schedule.extents, self.halo())
        if problem:
            raise VerifyException(f"{self.name}: {problem}")
        return schedule

    def check_tile_type(self, schedule: Schedule, full_shape: Sequence[int],
                        result: Attribute, clipped: bool = False) -> None:
        """`result` is a full tile of an operand of `full_shape` (`clipped`: its halo
        axis clipped to the operand)."""
        assert isinstance(result, MemRefType)
        expected = tile_type_shape(schedule, self.operand_map(), full_shape, self.halo(),
                                   clipped)
        if tuple(result.get_shape()) != expected:
            raise VerifyException(
                f"{self.name}: the tile of map {list(self.operand_map())} has shape "
                f"{list(expected)}, not {list(result.get_shape())}"
            )


def tile_type_shape(schedule: Schedule, operand_map: Sequence[int], shape: Sequence[int],
                    halo: Halo | None, clipped: bool) -> tuple[int, ...]:
    """The type's shape of a full tile of an operand of `shape` (a window's halo axis is
    clipped to the operand, a slot's is not)."""
    result = list(schedule.tile_shape(operand_map, shape, halo))
    if halo is not None and clipped:
        result[halo.axis] = min(result[halo.axis], shape[halo.axis])
    return tuple(result)


def _halo_property(halo: Halo | None) -> dict[str, Attribute]:
    if halo is None:
        return {}
    return {"halo": ints((halo.axis, halo.stride, halo.span, halo.before))}


@irdl_op_definition
class WindowOp(TileIndexedOp):
    """The box of a buffer that one tile reads or writes (module docstring)."""

    name = "tile.window"

    buffer = operand_def(MemRefType)
    schedule = operand_def(ScheduleType)
    tile = opt_operand_def(IndexType)
    map = prop_def(DenseArrayBase)
    delta = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    when = prop_def(StringAttr, default_value=StringAttr("always"))
    halo_ = opt_prop_def(DenseArrayBase, prop_name="halo")
    result = result_def(MemRefType)

    traits = traits_def(NoMemoryEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$buffer `,` $schedule (`at` $tile^)? attr-dict `:` type($buffer) `->` "
        "type($result)"
    )

    def __init__(self, buffer: SSAValue, schedule: SSAValue, tile: SSAValue | None,
                 operand_map: Sequence[int], delta: int = 0, when: When = "always",
                 halo: Halo | None = None):
        assert isinstance(buffer.type, MemRefType)
        shape = tile_type_shape(schedule_of(schedule), operand_map,
                                buffer.type.get_shape(), halo, clipped=True)
        super().__init__(
            operands=[buffer, schedule, [tile] if tile is not None else []],
            result_types=[MemRefType(buffer.type.element_type, shape,
                                     memory_space=buffer.type.memory_space)],
            properties={"map": ints(operand_map), "delta": IntegerAttr(delta, i64),
                        "when": StringAttr(when), **_halo_property(halo)},
        )

    def verify_(self) -> None:
        buffer, result = self.buffer.type, self.result.type
        assert isinstance(buffer, MemRefType) and isinstance(result, MemRefType)
        schedule = self.check_map(buffer.get_shape())
        self.check_tile_type(schedule, buffer.get_shape(), result, clipped=True)
        if memory_level(result) != memory_level(buffer) or (
            result.element_type != buffer.element_type
        ):
            raise VerifyException(
                f"{self.name}: a window has its buffer's level and element type"
            )
        if self.when.data not in WHENS:
            raise VerifyException(
                f"{self.name}: when = \"{self.when.data}\" (expected one of "
                f"{', '.join(WHENS)})"
            )


@irdl_op_definition
class SlotOp(TileIndexedOp):
    """The L1 buffer that holds one tile's window (module docstring)."""

    name = "tile.slot"

    schedule = operand_def(ScheduleType)
    tile = opt_operand_def(IndexType)
    slots = var_operand_def(MemRefType)
    map = prop_def(DenseArrayBase)
    delta = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    halo_ = opt_prop_def(DenseArrayBase, prop_name="halo")
    result = result_def(MemRefType)

    traits = traits_def(NoMemoryEffect())
    irdl_options = (AttrSizedOperandSegments(as_property=True), ParsePropInAttrDict())
    assembly_format = (
        "$schedule (`at` $tile^)? `slots` `(` $slots `)` attr-dict `:` type($slots) `->` "
        "type($result)"
    )

    def __init__(self, schedule: SSAValue, tile: SSAValue | None,
                 slots: Sequence[SSAValue], operand_map: Sequence[int], delta: int = 0,
                 halo: Halo | None = None):
        super().__init__(
            operands=[schedule, [tile] if tile is not None else [], slots],
            result_types=[slots[0].type],
            properties={"map": ints(operand_map), "delta": IntegerAttr(delta, i64),
                        **_halo_property(halo)},
        )

    def verify_(self) -> None:
        if not 1 <= len(self.slots) <= 2:
            raise VerifyException(f"{self.name}: expected 1 or 2 slots, got {len(self.slots)}")
        for slot in self.slots:
            if slot.type != self.result.type:
                raise VerifyException(
                    f"{self.name}: every slot has the result's type {self.result.type}, "
                    f"not {slot.type}"
                )
        result = self.result.type
        assert isinstance(result, MemRefType)
        if memory_level(result) != "L1":
            raise VerifyException(f"{self.name}: slots are L1 buffers, not {result}")
        schedule = schedule_of(self.schedule)  # type: ignore[attr-defined]
        halo = self.halo()
        problem = check_map(self.operand_map(), result.get_shape(), schedule.sizes, halo)
        if problem is None and halo is not None:
            self.check_tile_type(schedule, result.get_shape(), result)
        if problem:
            raise VerifyException(f"{self.name}: {problem}")


@irdl_op_definition
class HaloOp(TileIndexedOp):
    """A window with its halo rows, those outside the buffer zeros (module
    docstring): a new buffer, the padded tile the kernel reads."""

    name = "tile.halo"

    window = operand_def(MemRefType)
    schedule = operand_def(ScheduleType)
    tile = operand_def(IndexType)
    map = prop_def(DenseArrayBase)
    halo_ = prop_def(DenseArrayBase, prop_name="halo")
    delta = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    result = result_def(MemRefType)

    traits = traits_def(MemoryReadEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$window `,` $schedule `at` $tile attr-dict `:` type($window) `->` type($result)"
    )

    def __init__(self, window: SSAValue, schedule: SSAValue, tile: SSAValue,
                 operand_map: Sequence[int], halo: Halo):
        assert isinstance(window.type, MemRefType)
        shape = schedule_of(schedule).tile_shape(operand_map, window.type.get_shape(), halo)
        super().__init__(
            operands=[window, schedule, tile],
            result_types=[MemRefType(window.type.element_type, shape,
                                     memory_space=StringAttr("L1"))],
            properties={"map": ints(operand_map), **_halo_property(halo)},
        )

    def verify_(self) -> None:
        window, result = self.window.type, self.result.type
        assert isinstance(window, MemRefType) and isinstance(result, MemRefType)
        schedule = schedule_of(self.schedule)
        halo = self.halo()
        problem = check_map(self.operand_map(), result.get_shape(), schedule.sizes, halo)
        if problem:
            raise VerifyException(f"{self.name}: {problem}")
        self.check_tile_type(schedule, window.get_shape(), result)


@irdl_op_definition
class PadOp(TileIndexedOp):
    """Zeros in a slot's rows outside the buffer; the view of the others (module
    docstring)."""

    name = "tile.pad"

    slot = operand_def(MemRefType)
    window = operand_def(MemRefType)
    schedule = operand_def(ScheduleType)
    tile = opt_operand_def(IndexType)
    map = prop_def(DenseArrayBase)
    halo_ = prop_def(DenseArrayBase, prop_name="halo")
    delta = prop_def(IntegerAttr, default_value=IntegerAttr(0, i64))
    result = result_def(MemRefType)

    traits = traits_def(MemoryWriteEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$slot `,` $window `,` $schedule (`at` $tile^)? attr-dict `:` type($slot) `,` "
        "type($window) `->` type($result)"
    )

    def __init__(self, slot: SSAValue, window: SSAValue, schedule: SSAValue,
                 tile: SSAValue | None, operand_map: Sequence[int], halo: Halo,
                 delta: int = 0):
        assert isinstance(window.type, MemRefType)
        super().__init__(
            operands=[slot, window, schedule, [tile] if tile is not None else []],
            result_types=[MemRefType(window.type.element_type, window.type.get_shape(),
                                     memory_space=StringAttr("L1"))],
            properties={"map": ints(operand_map), "delta": IntegerAttr(delta, i64),
                        **_halo_property(halo)},
        )

    def verify_(self) -> None:
        slot, window, result = self.slot.type, self.window.type, self.result.type
        assert isinstance(slot, MemRefType) and isinstance(window, MemRefType)
        assert isinstance(result, MemRefType)
        if memory_level(slot) != "L1" or memory_level(result) != "L1":
            raise VerifyException(f"{self.name}: pads an L1 slot, not {slot}")
        if result.get_shape() != window.get_shape():
            raise VerifyException(
                f"{self.name}: the view where the window lands has the window's shape "
                f"{list(window.get_shape())}, not {list(result.get_shape())}"
            )
        schedule = schedule_of(self.schedule)
        problem = check_map(self.operand_map(), slot.get_shape(), schedule.sizes, self.halo())
        if problem:
            raise VerifyException(f"{self.name}: {problem}")


@irdl_op_definition
class AccumulateOp(IRDLOperation):
    """Copies (first tile of the window) or adds (the others) `partial` into `acc`."""

    name = "tile.accumulate"

    schedule = operand_def(ScheduleType)
    tile = operand_def(IndexType)
    partial = operand_def(MemRefType)
    acc = operand_def(MemRefType)
    map = prop_def(DenseArrayBase)

    traits = traits_def(MemoryReadEffect(), MemoryWriteEffect())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$schedule `at` $tile $partial `into` $acc attr-dict `:` type($partial) `,` "
        "type($acc)"
    )

    def __init__(self, schedule: SSAValue, tile: SSAValue, partial: SSAValue,
                 acc: SSAValue, operand_map: Sequence[int]):
        super().__init__(operands=[schedule, tile, partial, acc],
                         properties={"map": ints(operand_map)})

    def operand_map(self) -> tuple[int, ...]:
        return tuple(self.map.get_values())

    def verify_(self) -> None:
        partial, acc = self.partial.type, self.acc.type
        assert isinstance(partial, MemRefType) and isinstance(acc, MemRefType)
        if partial.get_shape() != acc.get_shape() or partial.element_type != acc.element_type:
            raise VerifyException(
                f"{self.name}: partial and accumulator differ ({partial} and {acc})"
            )
        schedule = schedule_of(self.schedule)
        problem = check_map(self.operand_map(), acc.get_shape(), schedule.sizes) or (
            schedule.accumulation_problem(self.operand_map())
        )
        if problem:
            raise VerifyException(f"{self.name}: {problem}")


@irdl_op_definition
class ForOp(IRDLOperation):
    """Runs its body once per tile of `schedule` (module docstring)."""

    name = "tile.for"

    schedule = operand_def(ScheduleType)
    iter_args = var_operand_def(TokenType)
    res = var_result_def(TokenType)
    body = region_def("single_block")

    traits = traits_def(RecursiveMemoryEffect())

    LABEL: ClassVar[str] = "kernel"
    """Attribute naming the kernel op the nest computes (for C comments and reports)."""

    def __init__(self, schedule: SSAValue, iter_args: Sequence[SSAValue], body: Region):
        super().__init__(
            operands=[schedule, iter_args],
            result_types=[[TokenType()] * len(iter_args)],
            regions=[body],
        )

    @staticmethod
    def body_block(iter_count: int) -> Block:
        return Block(arg_types=[IndexType(), *([TokenType()] * iter_count)])

    def verify_(self) -> None:
        schedule_of(self.schedule)
        args = self.body.block.args
        if len(args) != 1 + len(self.iter_args) or not isinstance(args[0].type, IndexType):
            raise VerifyException(
                f"{self.name}: the body takes the tile number (index) and one token per "
                "iter_arg"
            )
        last = self.body.block.last_op
        if not isinstance(last, YieldOp) or len(last.values) != len(self.iter_args):
            raise VerifyException(
                f"{self.name}: the body ends with a tile.yield of "
                f"{len(self.iter_args)} token(s)"
            )

    def print(self, printer: Printer) -> None:
        tile, *carried = self.body.block.args
        printer.print_string(" ")
        printer.print_ssa_value(tile)
        printer.print_string(" in ")
        printer.print_ssa_value(self.schedule)
        if carried:
            printer.print_string(" iter_args(")
            printer.print_list(zip(carried, self.iter_args),
                               lambda pair: _print_assignment(printer, *pair))
            printer.print_string(") -> (")
            printer.print_list((a.type for a in carried), printer.print_attribute)
            printer.print_string(")")
        printer.print_op_attributes(self.attributes, print_keyword=True)
        printer.print_string(" ")
        printer.print_region(self.body, print_entry_block_args=False)

    @classmethod
    def parse(cls, parser: Parser) -> ForOp:
        tile = parser.parse_argument(expect_type=False)
        parser.parse_keyword("in")
        schedule = parser.resolve_operand(parser.parse_unresolved_operand(), ScheduleType())
        carried, inits = [], []
        if parser.parse_optional_keyword("iter_args"):
            def assignment():
                arg = parser.parse_argument(expect_type=False)
                parser.parse_punctuation("=")
                return arg, parser.parse_unresolved_operand()
            pairs = parser.parse_comma_separated_list(Parser.Delimiter.PAREN, assignment)
            parser.parse_punctuation("->")
            types = parser.parse_comma_separated_list(
                Parser.Delimiter.PAREN, parser.parse_attribute
            )
            carried = [arg.resolve(t) for (arg, _), t in zip(pairs, types, strict=True)]
            inits = [parser.resolve_operand(o, t)
                     for (_, o), t in zip(pairs, types, strict=True)]
        attributes = parser.parse_optional_attr_dict_with_keyword()
        body = parser.parse_region((tile.resolve(IndexType()), *carried))
        op = cls(schedule, inits, body)
        if attributes is not None:
            op.attributes |= attributes.data
        return op


@irdl_op_definition
class YieldOp(IRDLOperation):
    """Ends a tile's body, passing tokens to the next tile."""

    name = "tile.yield"

    values = var_operand_def(TokenType)

    traits = traits_def(IsTerminator(), HasParent(ForOp), NoMemoryEffect())
    assembly_format = "($values^ `:` type($values))? attr-dict"

    def __init__(self, *values: SSAValue):
        super().__init__(operands=[values])


def _print_assignment(printer: Printer, arg: SSAValue, value: SSAValue) -> None:
    printer.print_ssa_value(arg)
    printer.print_string(" = ")
    printer.print_ssa_value(value)


TILE = Dialect(
    "tile",
    [ScheduleOp, ForOp, YieldOp, WindowOp, SlotOp, HaloOp, PadOp, AccumulateOp],
    [ScheduleType],
)
