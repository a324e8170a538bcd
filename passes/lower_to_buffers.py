"""`lower-to-buffers`: the stage between the graph/training levels and the C backend.

A named pipeline: `lower-attention`, `bufferize{level weights}`, on a SoC whose cores
compute on L1 (a `[dma]` table: `gap9`, `siracusa`) `tile-l1{soc l1-bytes double-buffer}`
and `insert-dma{double-buffer}`, then `plan-memory{soc alignment check}`. `tiling`
(`auto`, `on`, `off`) overrides the SoC's default. `-t c` (`--emit c`) and `edge-opt report` run it
(with `--soc` and `--weights`) when the pipeline has not lowered the module already, so
`--print-ir-after-all` shows every step the C comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xdsl.context import Context
from xdsl.dialects.builtin import DictionaryAttr, ModuleOp, StringAttr
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.dialects.kernel import LEVEL_ATTR, MEMORY_ATTR, planned_soc
from edge_opt.passes.bufferize import BufferizePass, Level
from edge_opt.passes.insert_dma import InsertDmaPass
from edge_opt.passes.lower_attention import LowerAttentionPass
from edge_opt.passes.pipelines import NamedPipeline
from edge_opt.passes.plan_memory import PlanMemoryPass
from edge_opt.passes.tile_l1 import TileL1Pass
from edge_opt.support.errors import UserError
from edge_opt.support.socs import get_soc


@dataclass(frozen=True)
class LowerToBuffersPipeline(NamedPipeline):
    """Buffer level with a memory plan for one SoC (see the module docstring)."""

    name = "lower-to-buffers"
    description = ("to the buffer level: lower-attention, bufferize, [tile-l1, insert-dma,] "
                   "plan-memory")

    soc: str = "host"
    """The SoC to plan memory for (`host`, `gap9`, `siracusa`)."""
    weights: Level = "L2"
    """Memory level of parameters and optimizer state."""
    level: Level = "L2"
    """Memory level of activations and gradients."""
    alignment: int = 16
    check: bool = True
    """Whether a plan that does not fit the SoC is an error."""
    tiling: Literal["auto", "on", "off"] = "auto"
    """Whether kernels run on L1 tiles fed by DMA (`auto`: when the SoC has a `[dma]`
    table)."""
    l1_bytes: int = 0
    """The L1 budget of `tile-l1` (0: the SoC's L1)."""
    double_buffer: bool = True

    def tiled(self) -> bool:
        if self.tiling != "auto":
            return self.tiling == "on"
        try:
            return get_soc(self.soc).tiled
        except UserError as e:
            raise PassFailedException(f"{self.name}: {e}") from None

    def passes(self) -> tuple[ModulePass, ...]:
        tiles = (
            TileL1Pass(soc=self.soc, l1_bytes=self.l1_bytes,
                       double_buffer=self.double_buffer, alignment=self.alignment),
            InsertDmaPass(double_buffer=self.double_buffer),
        ) if self.tiled() else ()
        return (
            LowerAttentionPass(),
            BufferizePass(level=self.level, weights=self.weights),
            *tiles,
            PlanMemoryPass(soc=self.soc, alignment=self.alignment, check=self.check),
        )


WEIGHTS_NOTE_ATTR = "kernel.weights_note"
"""On a module lowered with its parameters' level chosen automatically: why L3."""


def choose_weights(module: ModuleOp, soc: str) -> tuple[str, str | None]:
    """Where the parameters and optimizer state of `module` go on `soc`: L2, or L3
    when the SoC has one and the plan with them in L2 would overflow L2 (and why)."""
    target = get_soc(soc)
    if "L3" not in target.memory:
        return "L2", None
    trial = module.clone()
    LowerToBuffersPipeline(soc=soc, tiling="off", check=False).apply(Context(), trial)
    plan = trial.attributes[MEMORY_ATTR]
    assert isinstance(plan, DictionaryAttr)
    figures = plan.data.get("L2")  # absent when nothing lives in L2 (a pure view)
    assert figures is None or isinstance(figures, DictionaryAttr)
    need = 0 if figures is None else sum(
        figures.data[k].value.data  # type: ignore[attr-defined]
        for k in ("arena", "persistent", "constants")
    )
    capacity = target.memory["L2"]
    if need <= capacity:
        return "L2", None
    return "L3", (f"parameters and optimizer state placed in L3: with them in L2, L2 would "
                  f"need {need:,} B of {target.name}'s {capacity:,} B")


def lower_to_buffers(module: ModuleOp, soc: str | None = None, weights: str | None = None,
                     check: bool = True) -> ModuleOp:
    """A planned, buffer-level copy of `module` (`lower-to-buffers{soc weights check}`,
    by default for host; parameters in `weights`, by default L2 unless they would
    overflow it and the SoC has an L3: `choose_weights`), or `module` itself if it is
    planned already (and does not contradict `soc` and `weights`; see `check_plan`)."""
    if MEMORY_ATTR in module.attributes:
        check_plan(module, soc, weights)
        return module
    lowered = module.clone()
    note = None
    if weights is None:
        weights, note = choose_weights(module, soc or "host")
    stage = LowerToBuffersPipeline(soc=soc or "host", weights=weights, check=check)  # type: ignore[arg-type]
    stage.apply(Context(), lowered)
    if note is not None:
        lowered.attributes[WEIGHTS_NOTE_ATTR] = StringAttr(note)
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
