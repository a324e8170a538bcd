"""`recompute`: recomputes cheap forward values in the backward instead of keeping them
(Checkmate-style rematerialisation, chosen by the peak of live bytes).

A forward value that the backward reads lives from the forward to its last backward
use, across the peak of the training step. If the op that made it is cheap (element-wise,
a normalisation with its statistics recomputed, a transpose, a softmax) its inputs may
be kept anyway (the backward reads them too, or they are parameters, constants or the
step's inputs): then a copy of the op right before the value's first backward use gives
the same numbers, and the original dies at its last forward use.

The pass tries the candidates of `@function` (default `train_step`), largest value
first, and keeps a recomputation only if it lowers the peak of live bytes of the graph
model (`edge_opt.ir.op_graph`, the model `reorder-for-memory` uses) in the current op
order, and the FLOPs it adds stay within `max-extra-flops` (a fraction of the
function's FLOPs; default 0.05). Run `reorder-for-memory` after it: a recomputed op is
placed early, and reordering moves it where it helps. `edge-opt report` shows the
peak before and after and the FLOPs added ("memory passes").

With `segments=true` a value may also be recomputed through the forward ops it needs,
back to values that are live anyway at its first backward use (the step's inputs,
parameters, constants, and forward values the backward still reads from there on): a
segment, as in gradient checkpointing. The copies of the segment's ops are placed, in
forward order, before that first use, and every backward use of a segment value from
there on reads its copy, so the whole segment dies early. Each round tries every
candidate and keeps the one that lowers the peak most (ties: fewer FLOPs, then forward
order), until none lowers it or the budget is spent. `expensive=true` lets segments (and
single recomputations) include ops outside the cheap set: convolutions, matmuls,
attention; the budget bounds what they cost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import BlockArgument, Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.dialects.elementwise import BinaryElementwiseOp, UnaryElementwiseOp
from edge_opt.ir.cost import flops
from edge_opt.ir.memory_passes import record
from edge_opt.ir.op_graph import function_peak, value_bytes
from edge_opt.ir.options import EdgeOptPass
from edge_opt.ir.report import training_phases
from edge_opt.ir.session import get_function
from edge_opt.passes.recompute_segments import VIEWS, recompute_segments

CHEAP = (
    UnaryElementwiseOp, BinaryElementwiseOp, nn.LayerNormOp, nn.GroupNormOp,
    nn.BatchNormOp, nn.SoftmaxOp, nn.LogSoftmaxOp, nn.TransposeOp,
)
"""The ops whose results may be recomputed."""


@dataclass
class _Candidate:
    op: Operation
    backward_uses: list[Operation]


def _candidates(function: func.FuncOp, kinds: tuple[type[Operation], ...] | None
                ) -> list[_Candidate]:
    """Forward ops of `kinds` (None: any) whose result the backward reads and whose
    operands are kept anyway, largest result first (ties: forward order)."""
    phases = training_phases(function)
    forward = phases["forward"]
    later = set(phases["loss"] + phases["backward"] + phases["optimizer"])
    read_later = {o for op in later for o in op.operands}
    found = []
    for op in forward:
        if kinds is not None and not isinstance(op, kinds) or len(op.results) != 1:
            continue
        if isinstance(op, nn.BatchNormOp) and op.training is not None:
            continue
        uses = sorted({u.operation for u in op.results[0].uses if u.operation in later},
                      key=lambda o: o.parent_block().get_operation_index(o))  # type: ignore[union-attr]
        if not uses or not all(_kept(o, read_later) for o in op.operands):
            continue
        found.append(_Candidate(op, uses))
    return sorted(found, key=lambda c: -value_bytes(c.op.results[0]))


def _kept(value: SSAValue, read_later: set[SSAValue]) -> bool:
    owner = value.owner
    return (isinstance(value, BlockArgument) or value in read_later
            or isinstance(owner, nn.LoadOp | nn.ConstantOp))


def _recompute(candidate: _Candidate) -> Operation:
    """Inserts the copy before the first backward use and points the backward uses at
    it; returns the copy."""
    op = candidate.op
    copy = op.clone()
    copy.results[0].name_hint = (
        f"{op.results[0].name_hint}_again" if op.results[0].name_hint else None
    )
    first = candidate.backward_uses[0]
    first.parent_block().insert_op_before(copy, first)  # type: ignore[union-attr]
    users = set(candidate.backward_uses)
    op.results[0].replace_uses_with_if(copy.results[0], lambda use: use.operation in users)
    return copy


def _undo(candidate: _Candidate, copy: Operation) -> None:
    copy.results[0].replace_all_uses_with(candidate.op.results[0])
    copy.detach()
    copy.erase()


def recompute_function(function: func.FuncOp, budget: float, why: str,
                       kinds: tuple[type[Operation], ...] | None = CHEAP
                       ) -> tuple[int, int, int]:
    """Recomputes the results of ops of `kinds` (None: any) where that lowers
    `function`'s peak within `budget` x its FLOPs; returns the peak before and after and
    the FLOPs added."""
    before = peak = function_peak(function, why)
    allowed = budget * sum(flops(op) for op in function.body.block.ops
                           if not isinstance(op, func.ReturnOp))
    added = 0
    for candidate in _candidates(function, kinds):
        cost = flops(candidate.op)
        if added + cost > allowed:
            continue
        copy = _recompute(candidate)
        lowered = function_peak(function, why)
        if lowered < peak:
            peak, added = lowered, added + cost
        else:
            _undo(candidate, copy)
    return before, peak, added


@dataclass(frozen=True)
class RecomputePass(EdgeOptPass):
    """Recomputes cheap forward values in the backward where that lowers the peak (see
    the module docstring)."""

    name = "recompute"

    function: str = "train_step"
    max_extra_flops: float = 0.05
    segments: bool = False
    expensive: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        found = [f for f in op.ops if isinstance(f, func.FuncOp)
                 and f.sym_name.data == self.function]
        if not found:
            raise PassFailedException(
                f"{self.name}: the module has no function @{self.function}; run a "
                "training pipeline (or autodiff) first"
            )
        if self.segments:
            before, after, extra = recompute_segments(
                found[0], self.max_extra_flops, None if self.expensive else CHEAP,
                self.name)
            search = "segments"
        else:
            before, after, extra = recompute_function(
                found[0], self.max_extra_flops, self.name,
                None if self.expensive else CHEAP)
            search = "greedy"
        record(op, **{"pass": self.name}, function=self.function, peak_before=before,
               peak_after=after, extra_flops=extra, search=search)

    def check_result(self, before: ModuleOp, after: ModuleOp) -> list[str]:
        """What the pass promises besides the numbers (`edge-opt fuzz` checks it):
        without `expensive`, the ops it adds are copies of cheap ones (and, in
        segments, of views)."""
        if self.expensive:
            return []
        counts = [Counter(type(o) for o in get_function(m, self.function).walk())
                  for m in (before, after)]
        added = sorted(t.name for t in counts[1] - counts[0]
                       if not issubclass(t, (*CHEAP, *VIEWS)))
        if not added:
            return []
        names = ", ".join(added)
        return [f"{self.name} (expensive=false) added ops that are not cheap: {names}"]

