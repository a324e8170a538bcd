"""C form of the tile and DMA levels (`runtime/edge_dma.h`).

A `tile.for` becomes one loop over the tile number, with a comment naming the kernel
op it computes:

    /* kernel.linear over 16 tiles (extents 8x16x32, tiles 2x4x32) */
    for (int32_t t = 0; t < 16; t++) {
      ...window, slot and DMA statements...
      /* nn.linear -> y_out0 */
      edge_linear_f32(&params_3, x_slot, w_slot, b_slot, y_slot);
      ...
    }

A `tile.schedule` and each operand's map are `static const` descriptions
(`edge_schedule_t`, `edge_operand_t`); windows and slots are pointers computed per tile
with their boxes; core 0 issues and waits for the DMA copies and a barrier follows the
waits. The kernel of a nest whose last tiles are ragged is printed once per tile shape
that occurs (the kernel emitters take static shapes), in a `switch` on the tile's
ragged dimensions. DMA tokens carried between tiles live in two descriptors per carried
position, alternating with the tile number. The descriptors come from one static pool
per function (`plan_descriptors`: tokens whose lives do not overlap share), and each
nest's windows and slots are locals of a block of their own (`SCOPED`), so the step's
stack is that of one nest, not of all of them.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from xdsl.dialects.builtin import MemRefType
from xdsl.ir import Block, Operation, SSAValue

from edge_opt.backends.c.emitter import (
    EMITTERS,
    SCOPED,
    EmitError,
    FunctionContext,
    ctype,
    position_in,
    print_op,
    structure,
)
from edge_opt.backends.c.kernels.shape import dense_strides
from edge_opt.dialects import dma, kernel, tile
from edge_opt.support.tiling import FULL, Schedule

WHEN = {"always": "EDGE_WHEN_ALWAYS", "first": "EDGE_WHEN_FIRST", "last": "EDGE_WHEN_LAST"}


def _type(value: SSAValue) -> MemRefType:
    assert isinstance(value.type, MemRefType)
    return value.type


def _size(value: SSAValue) -> str:
    return f"sizeof({ctype(_type(value))})"


def _list(values: Sequence[int]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def _schedule(value: SSAValue) -> Schedule:
    owner = value.owner
    assert isinstance(owner, tile.ScheduleOp)
    return owner.schedule()


def _tile_number(f: FunctionContext, op: tile.TileIndexedOp) -> str:
    delta = op.delta.value.data  # type: ignore[attr-defined]
    if op.tile is None:  # type: ignore[attr-defined]
        return str(delta)
    name = f.names[op.tile]  # type: ignore[attr-defined]
    return name if delta == 0 else f"{name} + {delta}"


def _operand(f: FunctionContext, op: tile.TileIndexedOp | tile.AccumulateOp,
             shape: Sequence[int]) -> str:
    """A `static const edge_operand_t` for an operand map of `op`'s schedule."""
    schedule = _schedule(op.schedule)  # type: ignore[attr-defined]
    operand_map = op.operand_map()
    name = f.fresh("operand")
    halo = op.halo() if isinstance(op, tile.TileIndexedOp) else None
    fields = ", -1, 0, 0, 0" if halo is None else (
        f", {halo.axis}, {halo.stride}, {halo.span}, {halo.before}")
    f.declarations.append(
        f"  static const edge_operand_t {name} = {{{len(shape)}, {_list(shape)}, "
        f"{_list(operand_map)}, {schedule.window_stride(operand_map)}{fields}}};"
    )
    return name


@structure(tile.ScheduleOp)
def print_schedule(f: FunctionContext, op: tile.ScheduleOp) -> None:
    s = op.schedule()
    name = f.fresh("schedule")
    f.names[op.result] = name
    f.declarations.append(
        f"  static const edge_schedule_t {name} = {{{len(s.extents)}, {s.count}, "
        f"{_list(s.extents)}, {_list(s.sizes)}, {_list(s.counts)}, {_list(s.steps)}}};"
    )


SCOPED.update({tile.WindowOp, tile.SlotOp, tile.PadOp})


@structure(tile.WindowOp)
def print_window(f: FunctionContext, op: tile.WindowOp) -> None:
    """The window's first element (NULL when the tile has none) and its box."""
    buffer = _type(op.buffer)
    desc = _operand(f, op, buffer.get_shape())
    name, box = f.fresh(op.result.name_hint or "window"), f.fresh("box")
    f.names[op.result], f.boxes[op.result] = name, box
    schedule, number = f.names[op.schedule], _tile_number(f, op)
    f.statements += [
        f"  edge_box_t {box};",
        (f"  {ctype(buffer)} *{name} = edge_tile_selected(&{schedule}, &{desc}, {number}, "
         f"{WHEN[op.when.data]}) ? ({ctype(buffer)} *)edge_tile_window(&{schedule}, "
         f"&{desc}, {number}, {f.ptr(op.buffer)}, {_size(op.buffer)}, &{box}) : NULL;"),
    ]


@structure(tile.SlotOp)
def print_slot(f: FunctionContext, op: tile.SlotOp) -> None:
    """The slot of the tile's window (the slots alternate by window) and its packed box."""
    slot_type = _type(op.result)
    desc = _operand(f, op, slot_type.get_shape())
    hint = re.sub(r"_(in|out)\d+(_\d+)?$", "", op.slots[0].name_hint or "slot")
    name, box = f.fresh(f"{hint}_tile"), f.fresh("box")
    f.names[op.result], f.boxes[op.result] = name, box
    schedule, number = f.names[op.schedule], _tile_number(f, op)
    slots = [f.ptr(s) for s in op.slots]
    stride = _schedule(op.schedule).window_stride(op.operand_map())
    choice = slots[0] if len(slots) == 1 else (
        f"(({number}) / {stride}) % 2 ? {slots[1]} : {slots[0]}"
    )
    f.statements += [
        f"  {ctype(slot_type)} *const {name} = {choice};",
        f"  edge_box_t {box};",
        f"  edge_tile_packed(&{schedule}, &{desc}, {number}, &{box});",
    ]


@structure(tile.PadOp)
def print_pad(f: FunctionContext, op: tile.PadOp) -> None:
    """Zeros in the slot's rows outside the operand (core 0), and where the window lands
    (NULL when the tile loads nothing)."""
    slot_type = _type(op.slot)
    window = op.window.owner
    assert isinstance(window, tile.WindowOp)
    desc = _operand(f, op, window.buffer.type.get_shape())  # type: ignore[attr-defined]
    name, box = f.fresh(f"{f.names[op.slot]}_inside"), f.fresh("box")
    f.names[op.result], f.boxes[op.result] = name, box
    schedule, number = f.names[op.schedule], _tile_number(f, op)
    f.statements += [
        f"  edge_box_t {box};",
        (f"  {ctype(slot_type)} *const {name} = edge_tile_pad(&{schedule}, &{desc}, "
         f"{number}, {f.names[op.slot]}, &{f.boxes[op.slot]}, {f.names[op.window]}, "
         f"&{f.boxes[op.window]}, {_size(op.slot)}, &{box}, edge_core_id() == 0);"),
    ]


def _token(f: FunctionContext, value: SSAValue) -> str:
    """The descriptor (an `edge_dma_t *` expression) a token value lands in: a carried
    position's alternate descriptor when a loop yields it or starts with it, else its
    own."""
    for use in value.uses:
        user = use.operation
        if isinstance(user, tile.YieldOp):
            loop = user.parent_op()
            assert isinstance(loop, tile.ForOp)
            number = f.names[loop.body.block.args[0]]
            return f"&{_carried_storage(f, loop, use.index)}[({number} + 1) & 1]"
        if isinstance(user, tile.ForOp):
            return f"&{_carried_storage(f, user, use.index - 1)}[0]"
    name = f.fresh("dma")
    f.declarations.append(f"  edge_dma_t *const {name} = {_pool(f, value)};")
    return name


def _carried_storage(f: FunctionContext, loop: tile.ForOp, position: int) -> str:
    key = loop.body.block.args[1 + position]
    if key not in f.carried:
        name = f.fresh(f"carried_{position}")
        f.declarations.append(f"  edge_dma_t *const {name} = {_pool(f, (loop, position))};")
        f.carried[key] = name
    return f.carried[key]


def _pool(f: FunctionContext, key: object) -> str:
    """The address of the descriptors of `key` in the function's pool, a static array
    (only core 0 touches descriptors) declared at the first request."""
    if f.descriptors is None:
        f.descriptors, size = plan_descriptors(f.function)
        f.declarations.append(f"  static edge_dma_t dma_pool[{size}];")
    return f"dma_pool + {f.descriptors[key]}"


def plan_descriptors(function: Operation) -> tuple[dict[object, int], int]:
    """Descriptors for the tokens of `function` that share storage where their lives do
    not overlap: (the first descriptor of each token, by its value, or two consecutive
    ones by (loop, position) for the tokens a `tile.for` carries; the pool's size).
    A life spans the top-level ops from the token's definition to its last use, a
    carried position's from its initial token to the last use of the loop's result."""
    top = position_in(list(function.regions[0].block.ops))

    def life(value: SSAValue) -> int:
        return max((top(use.operation) for use in value.uses), default=-1)

    needs: list[tuple[int, int, int, object]] = []  # first op, last op, descriptors, key
    for op in function.walk():
        if isinstance(op, dma.StartOp | dma.DoneOp):
            if not any(isinstance(u.operation, tile.YieldOp | tile.ForOp)
                       for u in op.token.uses):
                needs.append((top(op), max(top(op), life(op.token)), 1, op.token))
        elif isinstance(op, tile.ForOp):
            for position, (init, result) in enumerate(zip(op.iter_args, op.res,
                                                          strict=True)):
                first = top(init.owner) if isinstance(init.owner, Operation) else top(op)
                needs.append((min(first, top(op)), max(top(op), life(result)), 2,
                              (op, position)))
    busy: list[int] = []  # per descriptor: the last op of its current life
    planned: dict[object, int] = {}
    for first, last, count, key in sorted(needs, key=lambda n: n[0]):
        k = 0
        while any(k + j < len(busy) and busy[k + j] >= first for j in range(count)):
            k += 1
        busy += [-1] * (k + count - len(busy))
        busy[k:k + count] = [last] * count
        planned[key] = k
    return planned, len(busy)


def _dense_box(f: FunctionContext, shape: Sequence[int], strides: Sequence[int]) -> str:
    name = f.fresh("box")
    f.declarations.append(f"  static const edge_box_t {name} = {{{len(shape)}, "
                          f"{_list(shape)}, {_list(strides)}}};")
    return name


@structure(dma.StartOp)
def print_start(f: FunctionContext, op: dma.StartOp) -> None:
    token = _token(f, op.token)
    f.names[op.token] = token
    sides = []
    for side, value in (("source", op.source), ("dest", op.dest)):
        box = op.box(side)
        if box is not None:
            shape, offset, strides = box
            sides.append((f"{f.ptr(value)} + {offset}", _dense_box(f, shape, strides)))
        elif value in f.boxes:
            sides.append((f.ptr(value), f.boxes[value]))
        else:
            shape = _type(value).get_shape()
            sides.append((f.ptr(value), _dense_box(f, shape, dense_strides(shape))))
    (src, src_box), (dst, dst_box) = sides
    f.statements.append(
        f"  if (edge_core_id() == 0) edge_dma_start({token}, {src}, &{src_box}, {dst}, "
        f"&{dst_box}, {_size(op.source)});"
    )


@structure(dma.DoneOp)
def print_done(f: FunctionContext, op: dma.DoneOp) -> None:
    token = _token(f, op.token)
    f.names[op.token] = token
    f.statements.append(f"  if (edge_core_id() == 0) edge_dma_none({token});")


@structure(dma.WaitOp)
def print_wait(f: FunctionContext, op: dma.WaitOp) -> None:
    f.statements.append(f"  if (edge_core_id() == 0) edge_dma_wait({f.names[op.token]});")
    if not isinstance(op.next_op, dma.WaitOp):  # one barrier after a run of waits
        f.statements.append("  edge_barrier();")


@structure(tile.AccumulateOp)
def print_accumulate(f: FunctionContext, op: tile.AccumulateOp) -> None:
    if ctype(_type(op.acc)) != "float":
        raise EmitError(f"{op.name}: the C runtime accumulates float32 only")
    desc = _operand(f, op, _type(op.acc).get_shape())  # type: ignore[arg-type]
    number = f.names[op.tile]
    f.statements.append(
        f"  edge_accumulate_f32({f.ptr(op.partial)}, {f.ptr(op.acc)}, "
        f"edge_box_count(&{f.boxes[op.acc]}), edge_tile_selected(&{f.names[op.schedule]}, "
        f"&{desc}, {number}, EDGE_WHEN_FIRST));"
    )


@structure(tile.ForOp)
def print_for(f: FunctionContext, op: tile.ForOp) -> None:
    schedule = _schedule(op.schedule)
    kernels = [o for o in op.body.block.ops if isinstance(o, kernel.KernelOp)]
    label = kernels[0].name if kernels else "no kernel"
    number = f.fresh("t")
    f.names[op.body.block.args[0]] = number
    carried = []
    for position, (arg, init) in enumerate(zip(op.body.block.args[1:], op.iter_args,
                                               strict=True)):
        name = f.fresh(f"pending_{position}")
        f.declarations.append(f"  edge_dma_t *{name};")
        f.statements.append(f"  {name} = {f.names[init]};")
        f.names[arg] = name
        carried.append(name)
    extents = "x".join(map(str, schedule.extents)) or "scalar"
    sizes = "x".join(map(str, schedule.sizes)) or "scalar"
    f.statements.append(f"  /* {label} over {schedule.count} tile(s) (extents {extents}, "
                        f"tiles {sizes}) */")
    if kernels:  # the copies of the nest count as its kernel's
        f.mark_call(kernels[0])
    f.statements.append(f"  for (int32_t {number} = 0; {number} < {schedule.count}; "
                        f"{number}++) {{")
    outer, f.statements = f.statements, []
    for body_op in op.body.block.ops:
        if isinstance(body_op, kernel.KernelOp):
            _print_tiled_kernel(f, body_op, op, schedule)
        elif isinstance(body_op, tile.YieldOp):
            f.statements += [f"  {c} = {f.names[v]};"
                             for c, v in zip(carried, body_op.values, strict=True)]
        else:
            print_op(f, body_op)
    body, f.statements = f.statements, outer
    f.statements += ["  " + line for line in body]
    f.statements.append("  }")
    for result, name in zip(op.res, carried, strict=True):
        f.names[result] = name


def _clipped_shape(value: SSAValue, schedule: Schedule, ragged: set[int]) -> tuple[int, ...]:
    owner = value.owner
    shape = tuple(_type(value).get_shape())
    if not isinstance(owner, tile.SlotOp):
        raise EmitError(
            f"a kernel in a tile.for computes on {value.type} that is not an L1 slot: run "
            "insert-dma before emitting C (the kernels take dense buffers)"
        )
    result = list(shape)
    halo = owner.halo()
    for axis, d in enumerate(owner.operand_map()):
        if d != FULL and d in ragged:
            result[axis] = schedule.extents[d] - (schedule.counts[d] - 1) * schedule.sizes[d]
            if halo is not None and axis == halo.axis:
                result[axis] = halo.reach(0, result[axis])[1]
    return tuple(result)


def clipped_kernels(op: kernel.KernelOp, schedule: Schedule) -> list[tuple[int, int, Operation]]:
    """The kernel of a nest once per tile shape that occurs: (ragged mask, tiles of that
    shape, a copy of `op` on stand-ins of the clipped shapes, whose block arguments
    stand for `op`'s operands in order)."""
    can_be_ragged = [d for d, (n, s) in enumerate(zip(schedule.extents, schedule.sizes,
                                                      strict=True)) if n % s]
    variants = []
    for bits in itertools.product((False, True), repeat=len(can_be_ragged)):
        ragged = {d for d, b in zip(can_be_ragged, bits, strict=True) if b}
        mask = sum(1 << d for d in ragged)
        tiles = 1
        for d, count in enumerate(schedule.counts):
            tiles *= 1 if d in ragged else count - (d in can_be_ragged)
        shapes = [_clipped_shape(v, schedule, ragged) for v in op.operands]
        stand_ins = Block(arg_types=[MemRefType(_type(v).element_type, s,
                                                memory_space=_type(v).memory_space)
                                     for v, s in zip(op.operands, shapes, strict=True)])
        count = len(op.inputs)
        variants.append((mask, tiles, type(op)(stand_ins.args[:count], stand_ins.args[count:],
                                               op.own_properties())))
    return variants


def _print_tiled_kernel(f: FunctionContext, op: kernel.KernelOp, loop: tile.ForOp,
                        schedule: Schedule) -> None:
    """The kernel once per tile shape that occurs (a `switch` when there are several)."""
    variants = []
    for mask, _, clipped in clipped_kernels(op, schedule):
        for stand_in, value in zip(clipped.operands, op.operands, strict=True):
            f.names[stand_in] = f.names[value]
        outer, f.statements = f.statements, []
        _print_kernel(f, clipped, op)
        variants.append((mask, f.statements))
        f.statements = outer
    if len(variants) == 1:
        f.statements += variants[0][1]
        return
    f.statements.append(f"  switch (edge_tile_ragged(&{f.names[loop.schedule]}, "
                        f"{f.names[loop.body.block.args[0]]})) {{")
    for mask, lines in variants:
        f.statements.append(f"  case {mask}:")
        f.statements += ["  " + line for line in lines]
        f.statements.append("    break;")
    f.statements.append("  }")


def _print_kernel(f: FunctionContext, clipped: Operation, original: kernel.KernelOp) -> None:
    emit = EMITTERS.get(type(clipped))
    if emit is None:
        raise EmitError(f"no C emitter for {clipped.name}")
    source = original.TENSOR_OP.name
    label = f.names.get(original.outputs[-1], "") if original.outputs else ""
    f.statements.append(f"  /* {source} -> {label} */")
    f.mark_call(original)
    emit(f, clipped)
