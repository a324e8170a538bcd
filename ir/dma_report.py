"""DMA figures of a tiled module: what one call of each function moves between levels.

`dma_figures` counts, exactly, every copy a function's `dma.start`s make in one call:
a copy outside a loop once (a staging copy, or the first tile's loads), a copy in a
`tile.for` once per tile whose window exists (`when`, tiles past the last), with the
clipped size of ragged tiles. Per function and per direction (`L2->L1`, `L1->L2`,
`L3->L2`, `L2->L3`): bytes and transfers, and an estimate of the DMA time in cycles from
the SoC's `[dma]` table (bytes / bandwidth + transfers x setup; an estimate, not a
measurement: compute overlaps most of it).
"""

from __future__ import annotations

import math
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import IntegerAttr, MemRefType, ModuleOp, StringAttr
from xdsl.ir import SSAValue

from edge_opt.dialects import dma, tile
from edge_opt.dialects.kernel import memory_level
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.socs import Soc

BANDWIDTH_KEYS = {
    ("L2", "L1"): "l2_to_l1_bytes_per_cycle",
    ("L1", "L2"): "l1_to_l2_bytes_per_cycle",
    ("L3", "L2"): "l3_to_l2_bytes_per_cycle",
    ("L2", "L3"): "l2_to_l3_bytes_per_cycle",
}


def _selected(value: SSAValue, at: int | None) -> tuple[int, ...] | None:
    """The element count per axis of a tile's window or slot when the loop is at tile
    `at` (None: the tile has no window); the whole buffer for other values."""
    owner = value.owner
    if isinstance(owner, tile.WindowOp | tile.SlotOp):
        schedule = tile.schedule_of(owner.schedule)
        number = owner.tile_number(at)
        if not 0 <= number < schedule.count:
            return None
        operand_map = owner.operand_map()
        if isinstance(owner, tile.WindowOp):
            when = owner.when.data
            if (when == "first" and not schedule.is_first_of_window(operand_map, number)) or (
                when == "last" and not schedule.is_last_of_window(operand_map, number)
            ):
                return None
            shape = owner.buffer.type.get_shape()  # type: ignore[attr-defined]
            return schedule.window(operand_map, shape, number, owner.halo())[1]
        shape = owner.result.type.get_shape()  # type: ignore[attr-defined]
        return schedule.padded(operand_map, shape, number, owner.halo())[1]
    assert isinstance(value.type, MemRefType)
    return tuple(value.type.get_shape())


def _copies(op: dma.StartOp, at: int | None) -> int:
    """Bytes this start copies when the loop is at tile `at` (0: nothing)."""
    box = op.box("source")
    if box is not None:
        count = math.prod(box[0])
    else:
        source, dest = _selected(op.source, at), _selected(op.dest, at)
        if source is None or dest is None:
            return 0
        count = math.prod(source)
    assert isinstance(op.source.type, MemRefType)
    return count * numpy_dtype(op.source.type.element_type).itemsize


def _direction(op: dma.StartOp) -> str:
    return f"{memory_level(op.source.type)}->{memory_level(op.dest.type)}"


def function_dma(function: func.FuncOp) -> dict[str, dict[str, int]]:
    """Per direction: `bytes` and `transfers` of one call of `function`."""
    totals: dict[str, dict[str, int]] = {}

    def count(op: dma.StartOp, at: int | None) -> None:
        moved = _copies(op, at)
        if moved:
            entry = totals.setdefault(_direction(op), {"bytes": 0, "transfers": 0})
            entry["bytes"] += moved
            entry["transfers"] += 1

    for op in function.body.block.ops:
        if isinstance(op, dma.StartOp):
            count(op, None)
        elif isinstance(op, tile.ForOp):
            starts = [o for o in op.body.walk() if isinstance(o, dma.StartOp)]
            for number in range(tile.schedule_of(op.schedule).count):
                for start in starts:
                    count(start, number)
    return dict(sorted(totals.items()))


def dma_figures(module: ModuleOp, soc: Soc | None = None) -> dict[str, dict[str, Any]]:
    """Per function (that moves anything): per direction `bytes`, `transfers` and, with
    a tiled SoC, `estimated_cycles`; and the function's `total_bytes`,
    `total_transfers`, `estimated_cycles`."""
    figures: dict[str, dict[str, Any]] = {}
    for function in (o for o in module.ops if isinstance(o, func.FuncOp)):
        directions: dict[str, Any] = function_dma(function)
        if not directions:
            continue
        entry: dict[str, Any] = {"directions": directions}
        entry["total_bytes"] = sum(d["bytes"] for d in directions.values())
        entry["total_transfers"] = sum(d["transfers"] for d in directions.values())
        if soc is not None and soc.tiled:
            cycles = 0.0
            for name, d in directions.items():
                source, dest = name.split("->")
                bandwidth = soc.dma[BANDWIDTH_KEYS[source, dest]]
                d["estimated_cycles"] = round(d["bytes"] / bandwidth
                                              + d["transfers"] * soc.dma["setup_cycles"])
                cycles += d["estimated_cycles"]
            entry["estimated_cycles"] = round(cycles)
        figures[function.sym_name.data] = entry
    return figures



def schedule_figures(module: ModuleOp) -> dict[str, Any]:
    """How the tile schedules were chosen: a count per search method, and over the
    annealed ones whose space was small enough to enumerate, how many were checked
    against the exhaustive optimum and the worst ratio of their estimated cycles."""
    methods: dict[str, int] = {}
    checked, worst = 0, 1.0
    for op in module.walk():
        if not isinstance(op, tile.ScheduleOp):
            continue
        method = op.attributes.get("search")
        name = method.data if isinstance(method, StringAttr) else "given"
        methods[name] = methods.get(name, 0) + 1
        best, chosen = op.attributes.get("exhaustive_cycles"), op.attributes.get(
            "estimated_cycles")
        if isinstance(best, IntegerAttr) and isinstance(chosen, IntegerAttr):
            checked += 1
            worst = max(worst, chosen.value.data / max(best.value.data, 1))
    if not methods:
        return {}
    return {"methods": dict(sorted(methods.items())), "annealed_checked": checked,
            "worst_annealed_ratio": round(worst, 4)}


def format_schedules(figures: dict[str, Any]) -> str:
    if not figures:
        return ""
    methods = ", ".join(f"{n} by {m}" for m, n in figures["methods"].items())
    line = f"tile schedules: {methods}"
    if figures["annealed_checked"]:
        ratio = figures["worst_annealed_ratio"]
        line += (f"; annealed vs exhaustive on the {figures['annealed_checked']} that could "
                 f"be enumerated: worst {ratio:.3f}x "
                 f"({'within' if ratio <= 1.05 else 'NOT within'} 5 %)")
    return line + "\n"


def format_dma(figures: dict[str, dict[str, Any]], note: str | None = None) -> str:
    """The DMA table of `dma_figures` (and the note on where the parameters went)."""
    lines = [f"note: {note}"] if note else []
    if not figures:
        return "\n".join(lines) + ("\n" if lines else "")
    lines.append("DMA per call (bytes, transfers, estimated cycles)")
    rows = [["function", "direction", "bytes", "transfers", "est. cycles"]]
    for name, entry in figures.items():
        for direction, d in entry["directions"].items():
            rows.append([f"@{name}", direction, f"{d['bytes']:,}", f"{d['transfers']:,}",
                         f"{d.get('estimated_cycles', 0):,}"])
        rows.append([f"@{name}", "total", f"{entry['total_bytes']:,}",
                     f"{entry['total_transfers']:,}",
                     f"{entry.get('estimated_cycles', 0):,}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines) + "\n"
