"""`lower-to-buffers`: the stage between the graph/training levels and the C backend.

A named pipeline: `lower-attention`, `bufferize{level weights}`,
`plan-memory{soc alignment check}`. `-t c` (`--emit c`) and `edge-opt report` run it
(with `--soc` and `--weights`) when the pipeline has not lowered the module already, so
`--print-ir-after-all` shows every step the C comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass

from edge_opt.dialects import nn
from edge_opt.dialects.kernel import LEVEL_ATTR, MEMORY_ATTR, planned_soc
from edge_opt.passes.bufferize import BufferizePass, Level
from edge_opt.passes.lower_attention import LowerAttentionPass
from edge_opt.passes.pipelines import NamedPipeline
from edge_opt.passes.plan_memory import PlanMemoryPass
from edge_opt.support.errors import UserError


@dataclass(frozen=True)
class LowerToBuffersPipeline(NamedPipeline):
    """Buffer level with a memory plan for one SoC (see the module docstring)."""

    name = "lower-to-buffers"
    description = "to the buffer level: lower-attention, bufferize, plan-memory"

    soc: str = "host"
    """The SoC to plan memory for (`host`, `gap9`, `siracusa`)."""
    weights: Level = "L2"
    """Memory level of parameters and optimizer state."""
    level: Level = "L2"
    """Memory level of activations and gradients."""
    alignment: int = 16
    check: bool = True
    """Whether a plan that does not fit the SoC is an error."""

    def passes(self) -> tuple[ModulePass, ...]:
        return (
            LowerAttentionPass(),
            BufferizePass(level=self.level, weights=self.weights),
            PlanMemoryPass(soc=self.soc, alignment=self.alignment, check=self.check),
        )


def lower_to_buffers(module: ModuleOp, soc: str | None = None, weights: str | None = None,
                     check: bool = True) -> ModuleOp:
    """A planned, buffer-level copy of `module` (`lower-to-buffers{soc weights check}`,
    by default for host with parameters in L2), or `module` itself if it is planned
    already (and does not contradict `soc` and `weights`; see `check_plan`)."""
    if MEMORY_ATTR in module.attributes:
        check_plan(module, soc, weights)
        return module
    lowered = module.clone()
    stage = LowerToBuffersPipeline(soc=soc or "host", weights=weights or "L2", check=check)  # type: ignore[arg-type]
    stage.apply(Context(), lowered)
    return lowered


def weight_levels(module: ModuleOp) -> set[str]:
    """The memory levels of a bufferized module's parameters."""
    return {
        attr.data
        for op in module.ops
        if isinstance(op, nn.ParamOp)
        and isinstance(attr := op.attributes.get(LEVEL_ATTR), StringAttr)
    }


def check_plan(module: ModuleOp, soc: str | None, weights: str | None) -> None:
    """Refuses a `soc` or `weights` that a planned module contradicts: they cannot take
    effect (the plan is made), and ignoring them would give C or figures for another
    chip than the one asked for."""
    planned = planned_soc(module)
    if soc is not None and planned is not None and soc != planned:
        raise UserError(
            f"the module is already planned for SoC {planned} (plan-memory{{soc={planned}}}); "
            f"--soc {soc} cannot take effect: drop --soc, or plan for {soc} in the pipeline"
        )
    levels = weight_levels(module)
    if weights is not None and levels and levels != {weights}:
        raise UserError(
            f"the module's parameters are already placed in {', '.join(sorted(levels))} "
            f"(bufferize); --weights {weights} cannot take effect: drop --weights, or "
            f"bufferize with weights={weights} in the pipeline"
        )
