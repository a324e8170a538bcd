"""Interpreter semantics of the `tile` dialect (see `edge_opt.dialects.tile`).

A `tile.for` runs its body once per tile; windows are strided views of their buffer (so
a kernel writes through them), slots are packed prefixes of their L1 buffer, and a tile
without a window (`when`, or beyond the last tile) is `None`, which `dma.start` copies
as nothing. A kernel op on the views of a ragged tile runs on their clipped shapes
(`edge_opt.ir.interpreters.kernel`).
"""

from __future__ import annotations

import numpy as np
from xdsl.interpreter import (
    Interpreter,
    InterpreterFunctions,
    ReturnedValues,
    impl,
    impl_terminator,
    register_impls,
)

from edge_opt.dialects import tile
from edge_opt.support.tiling import Schedule


def _tile_number(interpreter: Interpreter, op: tile.TileIndexedOp, schedule: Schedule,
                 at: int | None) -> int | None:
    number = op.tile_number(at)
    return number if 0 <= number < schedule.count else None


@register_impls
class TileFunctions(InterpreterFunctions):
    @impl(tile.ScheduleOp)
    def run_schedule(self, interpreter: Interpreter, op: tile.ScheduleOp, args: tuple):
        return (op.schedule(),)

    @impl(tile.ForOp)
    def run_for(self, interpreter: Interpreter, op: tile.ForOp, args: tuple):
        schedule, *carried = args
        for number in range(schedule.count):
            carried = list(interpreter.run_ssacfg_region(
                op.body, (number, *carried), "tile.for"
            ))
        return tuple(carried)

    @impl_terminator(tile.YieldOp)
    def run_yield(self, interpreter: Interpreter, op: tile.YieldOp, args: tuple):
        return ReturnedValues(args), ()

    @impl(tile.WindowOp)
    def run_window(self, interpreter: Interpreter, op: tile.WindowOp, args: tuple):
        buffer, schedule = args[0], args[1]
        at = args[2] if op.tile is not None else None
        number = _tile_number(interpreter, op, schedule, at)
        operand_map = op.operand_map()
        if number is None or (
            op.when.data == "first" and not schedule.is_first_of_window(operand_map, number)
        ) or (op.when.data == "last" and not schedule.is_last_of_window(operand_map, number)):
            return (None,)
        offsets, lengths = schedule.window(operand_map, buffer.shape, number, op.halo())
        if not lengths:  # a rank-0 buffer: the view itself, not its scalar
            return (buffer,)
        return (buffer[tuple(slice(o, o + n) for o, n in zip(offsets, lengths, strict=True))],)

    @impl(tile.SlotOp)
    def run_slot(self, interpreter: Interpreter, op: tile.SlotOp, args: tuple):
        schedule = args[0]
        at = args[1] if op.tile is not None else None
        slots = args[2:] if op.tile is not None else args[1:]
        number = _tile_number(interpreter, op, schedule, at)
        if number is None:
            return (None,)
        operand_map = op.operand_map()
        slot = slots[schedule.window_index(operand_map, number) % len(slots)]
        # a halo axis: the slot holds the unclipped rows
        _, lengths = schedule.padded(operand_map, slot.shape, number, op.halo())
        flat = slot.reshape(-1)
        assert np.shares_memory(flat, slot) or slot.size == 0
        return (flat[: int(np.prod(lengths))].reshape(lengths),)

    @impl(tile.HaloOp)
    def run_halo(self, interpreter: Interpreter, op: tile.HaloOp, args: tuple):
        window, schedule, number = args
        halo = op.halo()
        assert halo is not None
        _, lengths = schedule.padded(op.operand_map(), window.shape, number, halo)
        padded = np.zeros(lengths, window.dtype)
        before = schedule.padding_before(op.operand_map(), number, halo)
        index = [slice(None)] * window.ndim
        index[halo.axis] = slice(before, before + window.shape[halo.axis])
        padded[tuple(index)] = window
        return (padded,)

    @impl(tile.PadOp)
    def run_pad(self, interpreter: Interpreter, op: tile.PadOp, args: tuple):
        slot, window, schedule = args[0], args[1], args[2]
        if slot is None or window is None:  # no window to load: the slot is kept
            return (None,)
        at = args[3] if op.tile is not None else None
        number = op.tile_number(at)
        halo = op.halo()
        assert halo is not None
        before = schedule.padding_before(op.operand_map(), number, halo)
        inside = window.shape[halo.axis]
        index = [slice(None)] * slot.ndim
        index[halo.axis] = slice(0, before)
        slot[tuple(index)] = 0
        index[halo.axis] = slice(before + inside, None)
        slot[tuple(index)] = 0
        index[halo.axis] = slice(before, before + inside)
        return (slot[tuple(index)],)

    @impl(tile.AccumulateOp)
    def run_accumulate(self, interpreter: Interpreter, op: tile.AccumulateOp, args: tuple):
        schedule, number, partial, acc = args
        interpreter.interpreter_assert(
            partial is not None and acc is not None and partial.shape == acc.shape,
            "tile.accumulate of a missing or mismatched tile",
        )
        if schedule.is_first_of_window(op.operand_map(), number):
            acc[...] = partial
        else:
            acc += partial
        return ()
