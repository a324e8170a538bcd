"""Memory figures of a planned module, and the memory-map picture.

`memory_figures` reads what `plan-memory` recorded (per level: planned arena peak, the
lower bound, the naive no-reuse size, persistent and constant bytes) and compares it
with a SoC's capacity. `draw_memory_map` draws one function's plan, a panel per level (L1 too when it is
tiled): each buffer a
rectangle from its first to its last op (x) at its offset (y), coloured by kind, with the
persistent region (parameters, optimizer state) above the arena and the peak marked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xdsl.dialects import func
from xdsl.dialects.builtin import DictionaryAttr, IntegerAttr, ModuleOp, StringAttr

from edge_opt.dialects import kernel, nn, train
from edge_opt.dialects.kernel import LEVEL_ATTR, MEMORY_ATTR, OFFSET_ATTR
from edge_opt.dialects.train import is_optimizer_state
from edge_opt.ir.liveness import allocations
from edge_opt.ir.model_io import atomic_write
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.memory_plan import Buffer, lower_bound
from edge_opt.support.socs import Soc

KIND_COLOURS = {
    "weight": "#4c72b0",
    "optimizer state": "#8172b2",
    "activation": "#55a868",
    "gradient": "#c44e52",
}


def memory_figures(module: ModuleOp, soc: Soc | None = None) -> dict[str, dict[str, Any]]:
    """Per memory level: `peak_bytes`, `lower_bound_bytes`, `naive_bytes`,
    `persistent_bytes`, `constants_bytes`, and with a SoC `capacity_bytes` and
    `fits`. Empty if the module is not planned."""
    plan = module.attributes.get(MEMORY_ATTR)
    if not isinstance(plan, DictionaryAttr):
        return {}
    figures: dict[str, dict[str, Any]] = {}
    for level, values in plan.data.items():
        assert isinstance(values, DictionaryAttr)
        raw = {k: v.value.data for k, v in values.data.items() if isinstance(v, IntegerAttr)}
        entry: dict[str, Any] = {
            "peak_bytes": raw["arena"],
            "lower_bound_bytes": raw["lower_bound"],
            "naive_bytes": raw["naive"],
            "persistent_bytes": raw["persistent"],
            "constants_bytes": raw["constants"],
        }
        if soc is not None:
            capacity = soc.memory.get(level, 0)
            total = raw["arena"] + raw["persistent"] + raw["constants"]
            entry["capacity_bytes"] = capacity
            entry["fits"] = total <= capacity
        figures[level] = entry
    return figures


def format_memory(figures: dict[str, dict[str, Any]], soc: Soc | None) -> str:
    if not figures:
        return ""
    lines = [f"memory{f' on {soc.name}' if soc else ''} (bytes)"]
    header = ["level", "arena peak", "lower bound", "naive", "persistent", "constants"]
    if soc is not None:
        header += ["capacity", "fits"]
    rows = [header]
    for level, f in sorted(figures.items()):
        row = [level] + [f"{f[k]:,}" for k in (
            "peak_bytes", "lower_bound_bytes", "naive_bytes", "persistent_bytes",
            "constants_bytes")]
        if soc is not None:
            row += [f"{f['capacity_bytes']:,}", "yes" if f["fits"] else "NO"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Rect:
    """One buffer in the picture: ops [start, end], bytes [offset, offset + size)."""

    label: str
    kind: str
    start: int
    end: int
    offset: int
    size: int


def buffer_rectangles(module: ModuleOp, function: str, level: str) -> tuple[list[Rect], int]:
    """The arena buffers of `@function` at `level` and the persistent region above
    them, as rectangles; and the number of ops (the x extent)."""
    fn = next(
        (o for o in module.ops if isinstance(o, func.FuncOp) and o.sym_name.data == function),
        None,
    )
    if fn is None:
        raise ValueError(f"no function @{function}")
    ops = list(fn.body.block.ops)
    loss_at = next(
        (i for i, op in enumerate(ops)
         if isinstance(op, kernel.KernelOp) and op.TENSOR_OP in (train.CrossEntropyOp, train.MseOp)),
        len(ops),
    )
    rects = []
    for a in allocations(fn):
        if a.level != level or a.op.offset is None:
            continue
        kind = "gradient" if a.buffer.start > loss_at else "activation"
        rects.append(Rect(a.op.result.name_hint or "", kind, a.buffer.start, a.buffer.end,
                          a.op.offset.value.data, a.buffer.size))
    # The persistent region starts at the planned arena's top (aligned, and the
    # largest over functions), not at this function's highest buffer.
    arena = memory_figures(module).get(level, {}).get(
        "peak_bytes", max((r.offset + r.size for r in rects), default=0)
    )
    for op in module.ops:
        if not isinstance(op, nn.ParamOp):
            continue
        lvl, offset = op.attributes.get(LEVEL_ATTR), op.attributes.get(OFFSET_ATTR)
        if not (isinstance(lvl, StringAttr) and lvl.data == level and isinstance(offset, IntegerAttr)):
            continue
        size = op.type.element_count() * numpy_dtype(op.type.element_type).itemsize
        kind = "optimizer state" if is_optimizer_state(op) else "weight"
        rects.append(Rect(op.sym_name.data, kind, 0, len(ops) - 1,
                          arena + offset.value.data, size))
    return rects, len(ops)


def draw_memory_map(module: ModuleOp, path: str | Path, function: str = "train_step",
                    levels: Sequence[str] = ("L2",)) -> None:
    """Writes a PNG of `@function`'s memory plan, one panel per level of `levels` (see
    the module docstring)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(len(levels), 1, figsize=(12, 6 * len(levels)), dpi=110,
                                  squeeze=False)
    for axes, level in zip(panels[:, 0], levels, strict=True):
        _draw_level(axes, module, function, level)
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
    plt.close(figure)


def _draw_level(axes, module: ModuleOp, function: str, level: str) -> None:
    from matplotlib.patches import Patch, Rectangle

    rects, count = buffer_rectangles(module, function, level)
    arena_rects = [r for r in rects if r.kind in ("activation", "gradient")]
    for r in rects:
        axes.add_patch(Rectangle(
            (r.start, r.offset / 1024), r.end - r.start + 1, r.size / 1024,
            facecolor=KIND_COLOURS[r.kind], edgecolor="black", linewidth=0.2, alpha=0.85,
        ))
    figures = memory_figures(module).get(level, {})
    arena_top = figures.get("peak_bytes", max((r.offset + r.size for r in arena_rects), default=0))
    bound = figures.get("lower_bound_bytes", lower_bound([_as_buffer(r) for r in arena_rects]))
    top = max((r.offset + r.size for r in rects), default=1)
    live = [0] * (count + 1)
    for r in arena_rects:
        for t in range(r.start, r.end + 1):
            live[t] += r.size
    peak_time = max(range(count + 1), key=lambda t: live[t]) if arena_rects else 0
    axes.axhline(arena_top / 1024, color="black", linestyle="--", linewidth=1)
    axes.axvline(peak_time, color="grey", linestyle=":", linewidth=1)
    axes.text(count * 0.01, arena_top / 1024, f" arena peak {arena_top:,} B "
              f"(lower bound {bound:,} B) at op {peak_time}", va="bottom", fontsize=9)
    axes.set_xlim(0, max(count, 1))
    axes.set_ylim(0, top / 1024 * 1.05)
    axes.set_xlabel(f"op index in @{function} (schedule)")
    axes.set_ylabel(f"{level} address (KiB)")
    title = ("arena below the dashed line, parameters and optimizer state above"
             if level != "L1" else "the L1 slots of each tiled kernel call")
    axes.set_title(f"{level} memory plan of @{function}: {title}")
    axes.legend(handles=[Patch(color=c, label=k) for k, c in KIND_COLOURS.items()],
                loc="upper right", fontsize=8)


def _as_buffer(r: Rect):
    return Buffer(f"{r.label}@{r.start}", r.size, r.start, r.end)
