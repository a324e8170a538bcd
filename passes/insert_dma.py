"""`insert-dma`: the tiles of every `tile.for` move to L1 by DMA, double buffered.

After `tile-l1`, before `plan-memory`. In each loop nest the kernel reads and writes
L1 slots (`tile.slot`) instead of L2 windows: an input window is copied in at the first
tile that uses it, an output window is copied out at the last. With `double-buffer`
(the default) every operand whose window changes during the nest has two slots, and
the copies of tile t+1 overlap the compute of tile t:

    prologue:  start loading tile 0's input windows
    tile t:    start loading tile t+1's new input windows (into the other slots)
               wait for tile t's loads
               compute tile t
               wait for tile t-1's stores (their slots are written next at tile t+1)
               start storing tile t's finished output windows
    epilogue:  wait for the last copies

The tokens of the copies in flight pass from one tile to the next (`iter_args`); a
copy of no window (`when` not met, or past the last tile) completes at once. Without
double buffering each tile loads, waits, computes, stores and waits.

An operand in L3 is staged whole through an L2 buffer (the DMA engines connect
L3 <-> L2 and L2 <-> L1): copied in before the loop if the kernel reads it, out after
it if the kernel writes it. An output written over an input through a different view
of one buffer cannot overlap its copies with the next tile's loads safely; that loop is
single buffered.

Options: `double-buffer` (default true).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp, StringAttr
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter

from edge_opt.dialects import dma, kernel, tile
from edge_opt.dialects.kernel import memory_level
from edge_opt.ir.options import EdgeOptPass
from edge_opt.support.tiling import Schedule


def _root(value: SSAValue) -> SSAValue:
    """The buffer a value views (through `kernel.view`s)."""
    while isinstance(value.owner, kernel.ViewOp):
        value = value.owner.source
    return value


@dataclass
class _Operand:
    """One window of the nest with its L1 slots, as an input or an output."""

    window: tile.WindowOp
    slots: list[SSAValue]

    @property
    def map(self) -> tuple[int, ...]:
        return self.window.operand_map()

    @property
    def buffer(self) -> SSAValue:
        return self.window.buffer


@dataclass(frozen=True)
class InsertDmaPass(EdgeOptPass):
    """Moves the tiles of every loop nest to L1 by DMA (see the module docstring)."""

    name = "insert-dma"

    double_buffer: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for function in op.ops:
            if isinstance(function, func.FuncOp):
                for loop in list(function.body.block.ops):
                    if isinstance(loop, tile.ForOp) and not _has_dma(loop):
                        _Lowering(loop, self.double_buffer).run()


def _has_dma(loop: tile.ForOp) -> bool:
    return any(isinstance(o, dma.StartOp) for o in loop.body.walk())


class _Lowering:
    """The rewrite of one `tile.for` (its parts, then the new loop)."""

    def __init__(self, loop: tile.ForOp, double_buffer: bool):
        self.loop = loop
        self.schedule_value = loop.schedule
        owner = loop.schedule.owner
        assert isinstance(owner, tile.ScheduleOp)
        self.schedule: Schedule = owner.schedule()
        body = list(loop.body.block.ops)
        kernels = [o for o in body if isinstance(o, kernel.KernelOp)]
        assert len(kernels) == 1, "tile-l1 puts one kernel op in each loop"
        self.kernel = kernels[0]
        self.accumulates = [o for o in body if isinstance(o, tile.AccumulateOp)]
        self.before: list[Operation] = []
        self.after: list[Operation] = []
        self.stages: dict[SSAValue, SSAValue] = {}
        # a padded (halo) input is its window's load into a slot of the padded shape
        self.padded = {v.owner.window.owner: v.owner for v in self.kernel.inputs
                       if isinstance(v.owner, tile.HaloOp)}
        read = {v.owner for v in self.kernel.inputs if isinstance(v.owner, tile.WindowOp)}
        read |= set(self.padded)
        written = {v.owner for v in self.kernel.outputs if isinstance(v.owner, tile.WindowOp)}
        written |= {a.acc.owner for a in self.accumulates}
        self.read = [o for o in body if o in read]
        self.written = [o for o in body if o in written]
        roots_in = {_root(w.buffer) for w in self.read}  # type: ignore[attr-defined]
        aliased = any(
            _root(w.buffer) in roots_in and w not in self.read  # type: ignore[attr-defined]
            for w in self.written
        )
        single = tile.SINGLE_BUFFER_ATTR in loop.schedule.owner.attributes  # type: ignore[union-attr]
        self.double_buffer = double_buffer and not aliased and not single

    # --- parts --------------------------------------------------------------------------

    def _stage(self, buffer: SSAValue) -> SSAValue:
        """`buffer`, or for an L3 buffer its whole copy in L2."""
        if memory_level(buffer.type) != "L3":
            return buffer
        if buffer not in self.stages:
            assert isinstance(buffer.type, MemRefType)
            alloc = kernel.AllocOp(MemRefType(buffer.type.element_type,
                                              buffer.type.get_shape(),
                                              memory_space=StringAttr("L2")))
            alloc.result.name_hint = f"{buffer.name_hint or 'l3'}_l2"
            self.before.append(alloc)
            self.stages[buffer] = alloc.result
        return self.stages[buffer]

    def _operand(self, window: tile.WindowOp, role: str) -> _Operand:
        tile_type = self.padded.get(window, window).result.type
        assert isinstance(tile_type, MemRefType)
        slot_type = MemRefType(tile_type.element_type, tile_type.get_shape(),
                               memory_space=StringAttr("L1"))
        changes = self.schedule.window_count(window.operand_map()) > 1
        slots = []
        for k in range(2 if self.double_buffer and changes else 1):
            alloc = kernel.AllocOp(slot_type)
            alloc.result.name_hint = f"{window.buffer.name_hint or 'buf'}_{role}{k}"
            self.before.append(alloc)
            slots.append(alloc.result)
        return _Operand(window, slots)

    def _window(self, operand: _Operand, tile_number: SSAValue | None, delta: int,
                when: str, ops: list[Operation]) -> SSAValue:
        op = tile.WindowOp(self._stage(operand.buffer), self.schedule_value, tile_number,
                           operand.map, delta, when,  # type: ignore[arg-type]
                           operand.window.halo())
        op.result.name_hint = operand.window.result.name_hint
        ops.append(op)
        return op.result

    def _slot(self, operand: _Operand, tile_number: SSAValue | None, delta: int,
              ops: list[Operation]) -> SSAValue:
        op = tile.SlotOp(self.schedule_value, tile_number, operand.slots, operand.map, delta,
                         operand.window.halo())
        ops.append(op)
        return op.result

    def _load(self, operand: _Operand, tile_number: SSAValue | None, delta: int,
              ops: list[Operation]) -> SSAValue:
        window = self._window(operand, tile_number, delta, "first", ops)
        dest = self._slot(operand, tile_number, delta, ops)
        halo = operand.window.halo()
        if halo is not None:  # zeros outside the buffer, the window lands in the rest
            pad = tile.PadOp(dest, window, self.schedule_value, tile_number, operand.map,
                             halo, delta)
            ops.append(pad)
            dest = pad.result
        start = dma.StartOp(window, dest)
        ops.append(start)
        return start.token

    def _store(self, operand: _Operand, slot: SSAValue, tile_number: SSAValue,
               ops: list[Operation]) -> SSAValue:
        start = dma.StartOp(slot, self._window(operand, tile_number, 0, "last", ops))
        ops.append(start)
        return start.token

    def _compute(self, inputs: Sequence[_Operand], outputs: Sequence[_Operand],
                 tile_number: SSAValue, ops: list[Operation]) -> dict[tile.WindowOp, SSAValue]:
        """The kernel (and its accumulations) on the current tile's slots; returns the
        output slots by window."""
        current = {o.window: self._slot(o, tile_number, 0, ops) for o in inputs}
        written = {o.window: self._slot(o, tile_number, 0, ops) for o in outputs}

        partials: dict[tile.SlotOp, SSAValue] = {}

        def operand(value: SSAValue, table: dict[tile.WindowOp, SSAValue]) -> SSAValue:
            owner = value.owner
            if isinstance(owner, tile.HaloOp):
                owner = owner.window.owner
            if isinstance(owner, tile.WindowOp):
                return table[owner]
            if isinstance(owner, tile.SlotOp):  # a partial result's slot
                if owner not in partials:
                    partials[owner] = self._slot(
                        _Operand(owner, list(owner.slots)),  # type: ignore[arg-type]
                        tile_number, 0, ops)
                return partials[owner]
            return value

        k = self.kernel
        ops.append(type(k)([operand(v, current) for v in k.inputs],
                           [operand(v, written) for v in k.outputs],
                           k.own_properties()))
        for a in self.accumulates:
            ops.append(tile.AccumulateOp(self.schedule_value, tile_number,
                                         operand(a.partial, written),
                                         operand(a.acc, written), a.operand_map()))
        return written

    # --- the new loop -------------------------------------------------------------------

    def run(self) -> None:
        inputs = [self._operand(w, "in") for w in self.read]  # type: ignore[arg-type]
        outputs = [self._operand(w, "out") for w in self.written]  # type: ignore[arg-type]
        for buffer in dict.fromkeys(o.buffer for o in inputs
                                    if memory_level(o.buffer.type) == "L3"):
            self._copy_whole(buffer, self._stage(buffer), self.before)
        for o in outputs:
            self._stage(o.buffer)
        loop = self._double(inputs, outputs) if self.double_buffer else self._single(
            inputs, outputs)
        for buffer in dict.fromkeys(o.buffer for o in outputs
                                    if memory_level(o.buffer.type) == "L3"):
            self._copy_whole(self.stages[buffer], buffer, self.after)
        Rewriter.insert_op([*self.before, loop], InsertPoint.before(self.loop))
        Rewriter.insert_op(self.after, InsertPoint.after(loop))
        Rewriter.erase_op(self.loop)

    @staticmethod
    def _copy_whole(source: SSAValue, dest: SSAValue, ops: list[Operation]) -> None:
        start = dma.StartOp(source, dest)
        ops.extend([start, dma.WaitOp(start.token)])

    def _new_loop(self, carried: int, fill) -> Block:
        body = tile.ForOp.body_block(carried)
        body.args[0].name_hint = "t"
        ops: list[Operation] = []
        yielded = fill(body.args[0], body.args[1:], ops)
        body.add_ops([*ops, tile.YieldOp(*yielded)])
        return body

    def _single(self, inputs: list[_Operand], outputs: list[_Operand]) -> tile.ForOp:
        def fill(t: SSAValue, carried: Sequence[SSAValue], ops: list[Operation]):
            tokens = [self._load(o, t, 0, ops) for o in inputs]
            ops.extend(dma.WaitOp(token) for token in tokens)
            written = self._compute(inputs, outputs, t, ops)
            tokens = [self._store(o, written[o.window], t, ops) for o in outputs]
            ops.extend(dma.WaitOp(token) for token in tokens)
            return []

        return tile.ForOp(self.schedule_value, [], Region(self._new_loop(0, fill)))

    def _double(self, inputs: list[_Operand], outputs: list[_Operand]) -> tile.ForOp:
        first_loads = [self._load(o, None, 0, self.before) for o in inputs]
        no_stores = []
        for _ in outputs:
            done = dma.DoneOp()
            self.before.append(done)
            no_stores.append(done.token)

        def fill(t: SSAValue, carried: Sequence[SSAValue], ops: list[Operation]):
            loaded, stored = carried[: len(inputs)], carried[len(inputs):]
            next_loads = [self._load(o, t, 1, ops) for o in inputs]
            ops.extend(dma.WaitOp(token) for token in loaded)
            written = self._compute(inputs, outputs, t, ops)
            ops.extend(dma.WaitOp(token) for token in stored)
            stores = [self._store(o, written[o.window], t, ops) for o in outputs]
            return [*next_loads, *stores]

        body: Block = self._new_loop(len(inputs) + len(outputs), fill)
        loop = tile.ForOp(self.schedule_value, [*first_loads, *no_stores], Region(body))
        self.after.extend(dma.WaitOp(result) for result in loop.results)
        return loop
