"""`plan-memory`: a static place for every buffer.

After `bufferize`. The order of ops in a function is its schedule; a `kernel.alloc`
buffer is live from its alloc to its last use (through `kernel.view`s of it, and to the
end if the function returns it). Per memory level:

- parameters and optimizer state get consecutive offsets in a persistent region
  (`kernel.offset` on each `nn.param`);
- every function's buffers share one arena: offsets from `edge_opt.support.memory_plan.plan`
  (the best of several best-fit heuristics, and an exhaustive search for small
  functions); functions never run at the same time, so the arena is the largest of their
  peaks.

The module records, in its `kernel.memory` attribute, per level: `arena` (planned peak),
`lower_bound` (largest sum of simultaneously live bytes), `naive` (no reuse),
`persistent` and `constants` bytes. A plan that does not fit the SoC's level is an
error that says by how much and what dominates.

The module also records the SoC it is planned for (`kernel.soc`), which the C backend
reads (core count, memory sizes) and which a later `--soc` may not contradict.

Options: `soc` (`host`, `gap9`, `siracusa`; default `host`), `alignment` (bytes,
default 16), `check` (default true: fail if a level does not fit the SoC).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DictionaryAttr,
    IntegerAttr,
    MemRefType,
    ModuleOp,
    StringAttr,
)
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import kernel, nn
from edge_opt.dialects.kernel import (
    LEVEL_ATTR,
    MEMORY_ATTR,
    OFFSET_ATTR,
    SOC_ATTR,
    memory_level,
)
from edge_opt.ir.liveness import Allocation, allocations, byte_size
from edge_opt.ir.options import EdgeOptPass
from edge_opt.support import memory_plan
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.errors import UserError
from edge_opt.support.memory_plan import Buffer
from edge_opt.support.socs import get_soc


@dataclass(frozen=True)
class PlanMemoryPass(EdgeOptPass):
    """Assigns every buffer an offset (see the module docstring)."""

    name = "plan-memory"

    soc: str = "host"
    alignment: int = 16
    check: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        try:
            soc = get_soc(self.soc)
        except UserError as e:
            raise PassFailedException(f"plan-memory: {e}") from None
        functions = [f for f in op.ops if isinstance(f, func.FuncOp)]
        for function in functions:
            if any(not isinstance(t, MemRefType) for t in function.function_type.inputs.data):
                raise PassFailedException(
                    f"plan-memory: @{function.sym_name.data} is not at the buffer level; "
                    "run bufferize first"
                )
        sizes: dict[str, dict[str, int]] = {}
        self._plan_persistent(op, sizes)
        for function in functions:
            self._plan_function(function, sizes)
        for level, figures in sizes.items():
            figures.setdefault("arena", 0)
            figures.setdefault("lower_bound", 0)
            figures.setdefault("naive", 0)
            figures.setdefault("persistent", 0)
            figures.setdefault("constants", 0)
        op.attributes[MEMORY_ATTR] = DictionaryAttr({
            level: DictionaryAttr({k: IntegerAttr(v, 64) for k, v in sorted(f.items())})
            for level, f in sorted(sizes.items())
        })
        op.attributes[SOC_ATTR] = StringAttr(self.soc)  # as given: a name or a file
        if self.check:
            check_capacity(op, sizes, soc.name, soc.memory)

    def _plan_persistent(self, module: ModuleOp, sizes: dict[str, dict[str, int]]) -> None:
        for param in module.ops:
            if not isinstance(param, nn.ParamOp):
                continue
            level_attr = param.attributes.get(LEVEL_ATTR)
            if not isinstance(level_attr, StringAttr):
                raise PassFailedException(
                    f"plan-memory: @{param.sym_name.data} has no memory level; run "
                    "bufferize first"
                )
            figures = sizes.setdefault(level_attr.data, {})
            offset = figures.get("persistent", 0)
            param.attributes[OFFSET_ATTR] = IntegerAttr(offset, 64)
            size = param.type.element_count() * numpy_dtype(param.type.element_type).itemsize
            figures["persistent"] = memory_plan.align(offset + size, self.alignment)

    def _plan_function(self, function: func.FuncOp, sizes: dict[str, dict[str, int]]) -> None:
        for op in function.body.block.ops:
            if isinstance(op, kernel.ConstantOp):
                figures = sizes.setdefault(memory_level(op.result.type), {})
                size = byte_size(op.result.type)  # type: ignore[arg-type]
                figures["constants"] = figures.get("constants", 0) + memory_plan.align(
                    size, self.alignment
                )
        by_level: dict[str, list[Allocation]] = {}
        for allocation in allocations(function):
            by_level.setdefault(allocation.level, []).append(allocation)
        for level, allocs in by_level.items():
            buffers = [a.buffer for a in allocs]
            plan = memory_plan.plan(buffers, self.alignment)
            for a in allocs:
                a.op.properties["offset"] = IntegerAttr(plan.offsets[a.buffer.name], 64)
            aligned = [
                Buffer(b.name, memory_plan.align(b.size, self.alignment), b.start, b.end)
                for b in buffers
            ]
            figures = sizes.setdefault(level, {})
            for key, value in (
                ("arena", plan.peak),
                ("lower_bound", memory_plan.lower_bound(aligned)),
                ("naive", memory_plan.naive(aligned)),
            ):
                figures[key] = max(figures.get(key, 0), value)


def check_capacity(module: ModuleOp, sizes: dict[str, dict[str, int]], soc: str,
                   capacity: dict[str, int]) -> None:
    """Raises `PassFailedException` if a level's plan exceeds the SoC's capacity."""
    for level, f in sizes.items():
        need = f["arena"] + f["persistent"] + f["constants"]
        if level not in capacity:
            raise PassFailedException(
                f"plan-memory: SoC {soc} has no {level} memory (it has "
                f"{', '.join(capacity)}); choose other levels in bufferize"
            )
        if need <= capacity[level]:
            continue
        parts = sorted(
            [("the arena (activations and gradients)", f["arena"]),
             ("parameters and optimizer state", f["persistent"]),
             ("constants", f["constants"])],
            key=lambda p: -p[1],
        )
        breakdown = ", ".join(f"{what} {size:,} B" for what, size in parts if size)
        hint = (
            "move parameters to L3 (bufferize{weights=L3})"
            if parts[0][0].startswith("parameters")
            else "train fewer layers (train-last, train-sparse) or use a SoC with "
            "more memory"
        )
        raise PassFailedException(
            f"plan-memory: {level} needs {need:,} B but {soc} has {capacity[level]:,} B "
            f"(over by {need - capacity[level]:,} B); largest: {breakdown}; {hint}"
        )
