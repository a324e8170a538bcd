"""`tile-l1`: every kernel call becomes a loop nest over tiles that fit L1.

After `bufferize`, before `insert-dma` and `plan-memory`. For each kernel op of every
function whose buffers are in L2 or L3, the op's iteration space
(`edge_opt.ir.tiling`) and the SoC's numbers give a `Problem`; the schedule search
(`edge_opt.support.schedule_search`) picks the tile sizes and loop order of least
estimated time whose working set fits L1 (double buffered unless `double-buffer=false`;
a kernel whose smallest double-buffered tiling does not fit but whose single-buffered
one does gets one slot per operand, marked `single_buffer` on its `tile.schedule`, and
`insert-dma` then does not overlap its transfers with compute). The op becomes

    %s = tile.schedule {extents = ..., sizes = ..., order = ...}
    tile.for %t in %s {
      %x = tile.window %x_l2, %s at %t {map = ...}      // one per operand
      kernel.op ins(%x, ...) outs(%y, ...)             // the same op, on the windows
      tile.yield
    }

An output that sums over a cut dimension (a weight gradient over row tiles) gets an L1
partial buffer and a `tile.accumulate` into its window. A kernel's workspace (the fused
weight updates' scratch rows) becomes one L1 buffer of the tile shape of the result it
serves, used through a `tile.slot` and moved by no DMA (its `chunk_rows` is the tile's
rows); the L2 workspace is dropped. An output written over an input with the same map
shares that input's window. An input that follows a cut
dimension through a sliding window (a convolution's input rows: a halo) is read through
`tile.halo`, its window padded with zeros where it reaches beyond the buffer, by a copy
of the kernel whose own padding along that axis is removed. A kernel whose working set fits
runs as a single tile. The kernel computes on L2 windows until `insert-dma` moves them
to L1.

Options: `soc` (a SoC with a `[dma]` table: `gap9`, `siracusa` or a file; the default
`host` has none and is an error), `l1-bytes` (the L1 budget;
default the SoC's L1), `double-buffer` (default true), `alignment` (as `plan-memory`),
`search` (`auto`: exhaustive for small spaces, annealing beyond; `exhaustive`,
`annealing`), `seed` (of the annealing).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
    UnitAttr,
)
from xdsl.ir import Region, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import kernel, tile
from edge_opt.dialects.kernel import memory_level
from edge_opt.ir.cost import flops
from edge_opt.ir.liveness import byte_size
from edge_opt.ir.options import EdgeOptPass
from edge_opt.ir.tiling import iteration_space
from edge_opt.support import schedule_search
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.errors import UserError
from edge_opt.support.schedule_search import (
    Choice,
    DoesNotFit,
    Operand,
    Problem,
    Target,
)
from edge_opt.support.socs import Soc, get_soc

SEARCH_ATTR = "search"
"""On a `tile.schedule`: how it was chosen (`exhaustive`, `annealing`, `whole`)."""
COST_ATTR = "estimated_cycles"
"""On a `tile.schedule`: the cost model's estimate for it."""
EXHAUSTIVE_ATTR = "exhaustive_cycles"
"""On an annealed `tile.schedule` whose space has at most `CHECK_LIMIT` schedules: the
estimate of the exhaustive search's best (the report compares them)."""
CHECK_LIMIT = 50_000


def target_of(soc: Soc, l1_bytes: int, double_buffer: bool, alignment: int) -> Target:
    return Target(
        l1_bytes=l1_bytes or soc.memory["L1"],
        cores=soc.cores,
        dma_setup_cycles=soc.dma["setup_cycles"],
        read_bytes_per_cycle=soc.dma["l2_to_l1_bytes_per_cycle"],
        write_bytes_per_cycle=soc.dma["l1_to_l2_bytes_per_cycle"],
        flops_per_cycle_per_core=soc.compute["flops_per_cycle_per_core"],
        tile_overhead_cycles=soc.compute["tile_overhead_cycles"],
        inner_overhead=soc.compute["inner_overhead"],
        alignment=alignment,
        double_buffer=double_buffer,
    )


def problem_of(op: kernel.KernelOp) -> Problem:
    space = iteration_space(op)
    halos = space.halos or (None,) * len(space.maps)
    operands = []
    for i, (value, operand_map, halo) in enumerate(zip(op.operands, space.maps, halos,
                                                       strict=True)):
        scratch = op.WORKSPACE and i == len(op.operands) - 1
        # a workspace is scratch of the first output's tile shape (`IterationSpace`)
        shaped = op.outputs[0] if scratch else value
        assert isinstance(value.type, MemRefType) and isinstance(shaped.type, MemRefType)
        operands.append(Operand(
            tuple(shaped.type.get_shape()), operand_map,
            numpy_dtype(value.type.element_type).itemsize, i >= len(op.inputs),
            memory_level(value.type), halo, scratch,
        ))
    return Problem(space.extents, space.splittable, tuple(operands),
                   flops(op.tensor_equivalent()))


def tileable(op: kernel.KernelOp) -> bool:
    """A kernel call on L2/L3 buffers, not already tiled."""
    if isinstance(op.parent_op(), tile.ForOp):
        return False
    levels = {memory_level(v.type) for v in op.operands}
    if "L1" in levels and levels != {"L1"}:
        raise PassFailedException(
            f"tile-l1: {op.name} mixes L1 and {'/'.join(sorted(levels - {'L1'}))} "
            "buffers; bufferize everything at one level (bufferize{level=L2})"
        )
    return "L1" not in levels


@dataclass(frozen=True)
class TileL1Pass(EdgeOptPass):
    """Tiles every kernel call for L1 (see the module docstring)."""

    name = "tile-l1"

    soc: str = "host"
    l1_bytes: int = 0
    double_buffer: bool = True
    alignment: int = 16
    search: Literal["auto", "exhaustive", "annealing"] = "auto"
    seed: int = 0

    def target(self) -> Target:
        try:
            soc = get_soc(self.soc)
        except UserError as e:
            raise PassFailedException(f"{self.name}: {e}") from None
        if not soc.tiled:
            raise PassFailedException(
                f"{self.name}: SoC {soc.name} has no [dma] table: its cores compute on "
                "L2, there is nothing to tile for (give soc=gap9, soc=siracusa or a SoC "
                "file with [dma] and [compute] tables)"
            )
        return target_of(soc, self.l1_bytes, self.double_buffer, self.alignment)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = self.target()
        for function in op.ops:
            if not isinstance(function, func.FuncOp):
                continue
            for kernel_op in list(function.body.block.ops):
                if isinstance(kernel_op, kernel.KernelOp) and tileable(kernel_op):
                    problem = problem_of(kernel_op)
                    choice, used = self._choose(kernel_op, problem, target, function)
                    loop = tile_op(kernel_op, choice, problem)
                    if used.double_buffer != target.double_buffer:
                        loop.schedule.owner.attributes[tile.SINGLE_BUFFER_ATTR] = UnitAttr()
                    if choice.method == "annealing":
                        self._check_annealing(problem, used, loop)

    def _check_annealing(self, problem: Problem, target: Target, loop: tile.ForOp) -> None:
        """On a space small enough to enumerate, records the exhaustive optimum beside
        the annealed schedule (reports compare them)."""
        if schedule_search.space_size(problem) > CHECK_LIMIT:
            return
        best = schedule_search.search(problem, target, self.seed, "exhaustive")
        schedule_op = loop.schedule.owner
        assert isinstance(schedule_op, tile.ScheduleOp)
        schedule_op.attributes[EXHAUSTIVE_ATTR] = IntegerAttr(round(best.cost.cycles), 64)

    def _choose(self, op: kernel.KernelOp, problem: Problem, target: Target,
                function: func.FuncOp) -> tuple[Choice, Target]:
        """The schedule, and the target it fits (single-buffered if only that fits)."""
        method = {"annealing": "anneal"}.get(self.search, self.search)
        try:
            return schedule_search.search(problem, target, self.seed, method), target
        except DoesNotFit as e:
            smallest = e.smallest
        if target.double_buffer:
            single = replace(target, double_buffer=False)
            try:
                return schedule_search.search(problem, single, self.seed, method), single
            except DoesNotFit as e:
                smallest = e.smallest  # what it needs with one slot per operand
        sizes = ", ".join(
            f"{byte_size(v.type):,} B" for v in op.operands  # type: ignore[arg-type]
        )
        hint = ("; its gradient's summed dimensions (batch, rows) are never cut: run "
                "without fuse-weight-updates") if op.WORKSPACE else ""
        raise PassFailedException(
            f"{self.name}: {op.name} in @{function.sym_name.data} does not fit L1 "
            f"({target.l1_bytes:,} B): its smallest tiling needs {smallest:,} B "
            f"(operands {sizes}); give more L1 (l1-bytes) or a SoC with more{hint}"
        )


def tile_op(op: kernel.KernelOp, choice: Choice, problem: Problem | None = None) -> tile.ForOp:
    """Replaces `op` by its loop nest under `choice` (module docstring); `problem` is
    `problem_of(op)` when the caller has it already."""
    schedule = choice.schedule
    problem = problem or problem_of(op)
    maps = [schedule_search.operand_map(schedule, operand) for operand in problem.operands]
    schedule_op = tile.ScheduleOp(schedule)
    schedule_op.attributes[SEARCH_ATTR] = StringAttr(choice.method)
    schedule_op.attributes[COST_ATTR] = IntegerAttr(round(choice.cost.cycles), 64)
    before: list = [schedule_op]
    body = tile.ForOp.body_block(0)
    number = body.args[0]
    number.name_hint = "t"
    windows: list[SSAValue] = []
    accumulations: list[tuple[SSAValue, SSAValue, tuple[int, ...]]] = []
    count = len(op.inputs)
    properties = op.own_properties()
    for i, (value, operand_map) in enumerate(zip(op.operands, maps, strict=True)):
        in_place = [j for j in op.INPLACE.get(i - count, ())
                    if i >= count and op.inputs[j] == value and maps[j] == operand_map]
        if in_place:  # the output is written over that input: over its window too
            windows.append(windows[in_place[0]])
            continue
        operand = problem.operands[i]
        if operand.scratch:
            workspace = _scratch(value, operand, schedule_op.result, number, operand_map,
                                 before)
            body.add_op(workspace.owner)  # type: ignore[arg-type]
            windows.append(workspace)
            rows = schedule.tile_shape(operand_map, operand.shape)[0]
            properties["chunk_rows"] = IntegerAttr(rows, 64)
            continue
        halo = schedule_search.active_halo(schedule, operand)
        window = tile.WindowOp(value, schedule_op.result, number, operand_map, halo=halo)
        window.result.name_hint = value.name_hint
        body.add_op(window)
        if halo is not None:  # the kernel reads the rows its window reaches, padded
            padded = tile.HaloOp(window.result, schedule_op.result, number, operand_map,
                                 halo)
            padded.result.name_hint = f"{value.name_hint or 'in'}_halo"
            body.add_op(padded)
            windows.append(padded.result)
            properties |= dict(iteration_space(op).halo_properties)
        elif schedule_search.accumulates(schedule, problem, operand):
            tile_type = window.result.type
            assert isinstance(tile_type, MemRefType)
            partial = kernel.AllocOp(MemRefType(
                tile_type.element_type, tile_type.get_shape(), memory_space=StringAttr("L1")
            ))
            partial.result.name_hint = f"{value.name_hint or 'out'}_partial"
            before.append(partial)
            # through a slot: a ragged tile's partial is a prefix of the buffer
            clipped = tile.SlotOp(schedule_op.result, number, [partial.result], operand_map)
            body.add_op(clipped)
            accumulations.append((clipped.result, window.result, operand_map))
            windows.append(clipped.result)
        else:
            windows.append(window.result)
    tiled = type(op)(windows[:count], windows[count:], properties)
    body.add_op(tiled)
    for partial, window, operand_map in accumulations:
        body.add_op(tile.AccumulateOp(schedule_op.result, number, partial, window,
                                      operand_map))
    body.add_op(tile.YieldOp())
    loop = tile.ForOp(schedule_op.result, [], Region(body))
    Rewriter.insert_op([*before, loop], InsertPoint.before(op))
    workspace = op.outputs[-1] if op.WORKSPACE else None
    Rewriter.erase_op(op)
    if workspace is not None and not workspace.uses and isinstance(
            workspace.owner, kernel.AllocOp):  # the tiles have their own
        Rewriter.erase_op(workspace.owner)
    return loop


def _scratch(value: SSAValue, operand: Operand, schedule: SSAValue, number: SSAValue,
             operand_map: tuple[int, ...], before: list) -> SSAValue:
    """A kernel's workspace in the nest: one L1 buffer of the tile shape (appended to
    `before`), through a slot (a ragged tile's is a prefix); no DMA moves it."""
    assert isinstance(schedule.owner, tile.ScheduleOp)
    shape = schedule.owner.schedule().tile_shape(operand_map, operand.shape)
    assert isinstance(value.type, MemRefType)
    buffer = kernel.AllocOp(MemRefType(value.type.element_type, shape,
                                       memory_space=StringAttr("L1")))
    buffer.result.name_hint = "workspace"
    before.append(buffer)
    slot = tile.SlotOp(schedule, number, [buffer.result], operand_map)
    slot.result.name_hint = "workspace_tile"
    return slot.result

