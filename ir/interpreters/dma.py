"""Interpreter semantics of the `dma` dialect: copies of strided boxes between the byte
arenas of the memory levels (`edge_opt.ir.interpreters.kernel`).

Two modes (`set_dma_mode`):
- `immediate`: the copy happens at `dma.start`, its wait does nothing: the meaning of a
  correct schedule.
- `deferred`: the latest a DMA engine may do. At `dma.start` the destination box is
  poisoned (NaN for floats); the source box is read, and the copy lands, at `dma.wait`.
  A compute that reads the destination before the wait reads poison; a source (a double
  buffer) written while its copy is in flight is copied with the new values; either way
  the equivalence checks catch it.

In both modes waiting twice on a token is an interpreter error, and `Session.run`
refuses a function that returns with a copy it never waited for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from edge_opt.dialects import dma
from edge_opt.ir.interpreters.kernel import POISON_BYTE

DmaMode = Literal["immediate", "deferred"]


@dataclass(eq=False)
class Transfer:
    """A copy in flight: the value of a `!dma.token`."""

    dest: np.ndarray | None
    """The destination box (a strided view of the destination buffer); None for a copy
    of nothing (a tile without a window)."""
    data: np.ndarray | None
    """The source box (a view, read when the copy lands) until it lands (deferred mode);
    None once landed, and from the start in immediate mode."""


@dataclass
class DmaState:
    mode: DmaMode = "immediate"
    in_flight: list[Transfer] = field(default_factory=list)


def dma_state(interpreter: Interpreter) -> DmaState:
    return interpreter.get_data(DmaFunctions, "dma", DmaState)


def set_dma_mode(interpreter: Interpreter, mode: DmaMode) -> None:
    dma_state(interpreter).mode = mode


def box(buffer: np.ndarray, shape, offset: int, strides) -> np.ndarray:
    """The strided box of `buffer` (element offset and strides of its flat form), as a
    view that writes through to `buffer`."""
    flat = buffer.reshape(-1)
    assert np.shares_memory(flat, buffer) or buffer.size == 0
    end = dma.box_extent(shape, offset, strides)
    if offset < 0 or end > flat.size:
        raise IndexError(f"box ending at element {end - 1} overruns {flat.size} elements")
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[offset:], shape=tuple(shape), strides=tuple(s * item for s in strides)
    )


class DmaFunctions(InterpreterFunctions):
    @impl(dma.StartOp)
    def run_start(self, interpreter: Interpreter, op: dma.StartOp, args: tuple):
        state = dma_state(interpreter)
        if args[0] is None or args[1] is None:
            # A tile that has no window (tile.window's `when`): nothing to copy.
            transfer = Transfer(None, None)
            state.in_flight.append(transfer)
            return (transfer,)
        source_box, dest_box = op.box("source"), op.box("dest")
        source = box(args[0], *source_box) if source_box else args[0]
        dest = box(args[1], *dest_box) if dest_box else args[1]
        interpreter.interpreter_assert(
            source.shape == dest.shape,
            f"dma.start of a {source.shape} box into a {dest.shape} one",
        )
        if state.mode == "immediate":
            dest[...] = source
            transfer = Transfer(dest, None)
        else:
            transfer = Transfer(dest, source)
            dest[...] = np.frombuffer(bytes([POISON_BYTE]) * dest.itemsize, dest.dtype)[0]
        state.in_flight.append(transfer)
        return (transfer,)

    @impl(dma.DoneOp)
    def run_done(self, interpreter: Interpreter, op: dma.DoneOp, args: tuple):
        transfer = Transfer(None, None)
        dma_state(interpreter).in_flight.append(transfer)
        return (transfer,)

    @impl(dma.WaitOp)
    def run_wait(self, interpreter: Interpreter, op: dma.WaitOp, args: tuple):
        (transfer,) = args
        state = dma_state(interpreter)
        interpreter.interpreter_assert(
            transfer in state.in_flight, "dma.wait on a copy that was already waited for"
        )
        state.in_flight.remove(transfer)
        if transfer.data is not None and transfer.dest is not None:
            transfer.dest[...] = transfer.data
            transfer.data = None
        return ()


register_impls(DmaFunctions)
