"""edge-opt's dialects and passes for plain `xdsl-opt` (the `xdsl.universe` entry point
in pyproject.toml)."""

from __future__ import annotations

from xdsl.universe import Universe

from edge_opt.ir.context import EDGE_OPT_DIALECTS
from edge_opt.passes.registry import EDGE_OPT_PASSES, PIPELINES

EDGE_OPT_UNIVERSE = Universe(
    all_dialects=EDGE_OPT_DIALECTS, all_passes={**EDGE_OPT_PASSES, **PIPELINES}
)
