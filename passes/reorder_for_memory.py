"""`reorder-for-memory`: reorders the ops of each tensor-level function to lower the
peak of live bytes (OLLA-style operator reordering).

The memory planner places buffers for the order of ops it is given and reaches that
order's lower bound; this pass lowers the bound itself. It models the function as a
graph of ops and buffers (`edge_opt.ir.op_graph`: a result's buffer lives from its op
to its last reader, reshapes are views, element-wise ops may write in place, stores
keep their place relative to the reads of their parameter) and searches the
topological orders for a lower peak (`edge_opt.support.op_order`): window by window
around the current peak (`window` ops on each side), exactly while the number of
distinct sets of ops run per step stays at most `exact-limit`, else keeping the `beam`
best, deterministically. The function keeps its order when nothing beats it.

Values, and so the meaning of the function, do not change: only the order of ops does
(the property tests interpret modules before and after, forward and training step).
`edge-opt report` shows the model's peak before and after ("memory passes"), beside the
planner's peak of the lowered module.

Options: `function` (default: every function), `exact-limit` (256), `beam` (16),
`window` (40).

Typical gains come from training steps: the backward computes a layer's weight
gradient before the input gradient (or the other way round) so that the larger of `dy`
and the saved activation dies first, and forward values needed only late are computed
late.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.ir.memory_passes import record
from edge_opt.ir.op_graph import op_graph
from edge_opt.ir.options import EdgeOptPass
from edge_opt.support.op_order import BEAM, EXACT_LIMIT, WINDOW, order


def reorder_function(function: func.FuncOp, exact_limit: int = EXACT_LIMIT,
                     beam: int = BEAM, window: int = WINDOW,
                     why: str = "reorder-for-memory") -> tuple[int, int, bool]:
    """Reorders `function`'s ops; returns the model's peak before and after, and whether
    the search was exact."""
    graph = op_graph(function, why)
    before = graph.graph.peak(range(len(graph.graph)))
    sequence, exact = order(graph.graph, exact_limit, beam, window)
    after = graph.graph.peak(sequence)
    if sequence != list(range(len(graph.graph))):
        graph.reorder(sequence)
    return before, after, exact


@dataclass(frozen=True)
class ReorderForMemoryPass(EdgeOptPass):
    """Reorders ops to lower the peak of live bytes (see the module docstring)."""

    name = "reorder-for-memory"

    function: str | None = None
    exact_limit: int = EXACT_LIMIT
    beam: int = BEAM
    window: int = WINDOW

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        functions = [f for f in op.ops if isinstance(f, func.FuncOp)]
        if self.function is not None:
            functions = [f for f in functions if f.sym_name.data == self.function]
            if not functions:
                raise PassFailedException(
                    f"{self.name}: the module has no function @{self.function}"
                )
        for function in functions:
            before, after, exact = reorder_function(
                function, self.exact_limit, self.beam, self.window, self.name
            )
            record(op, **{"pass": self.name}, function=function.sym_name.data,
                   peak_before=before, peak_after=after, extra_flops=0,
                   search="exact" if exact else f"beam {self.beam}")
