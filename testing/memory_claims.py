"""Whether a pass that lowers the peak keeps the promise its record makes.

`reorder-for-memory`, `recompute` and `fuse-weight-updates` record the peak of live
bytes before and after (`edge_opt.ir.memory_passes`), measured on the graph model of
`edge_opt.ir.op_graph`, which counts every optimizer update as writing its parameter
in place. `bufferize` keeps an update in place only when nothing reads the parameter's
old value after it; otherwise it computes the update into a new buffer, copies the old
value out if it is still read, and copies the update in at the store. A pass that
moves a read of a parameter after the parameter's update therefore keeps the numbers
right, but the step it leaves needs buffers its recorded peak does not count.

`assert_memory_claims_hold(before, after)` checks, for a pass that added records, that
every parameter `bufferize` wrote in place before the pass it still writes in place
after it. `edge-opt fuzz` runs it after the equivalence check.
"""

from __future__ import annotations

from collections import Counter

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import kernel
from edge_opt.ir.memory_passes import records
from edge_opt.passes.bufferize import BufferizePass
from edge_opt.passes.lower_attention import LowerAttentionPass


def copied_parameters(module: ModuleOp) -> Counter[str] | None:
    """How many times `bufferize` copies a value into each parameter's buffer (an
    update it could not compute in place), or None if `module` does not bufferize."""
    lowered = module.clone()
    try:
        for stage in (LowerAttentionPass(), BufferizePass()):
            stage.apply(Context(), lowered)
    except PassFailedException:
        return None
    copies: Counter[str] = Counter()
    for op in lowered.walk():
        if isinstance(op, kernel.CopyOp):
            target = op.dest.owner
            if isinstance(target, kernel.GetParamOp):
                copies[target.param.string_value()] += 1
    return copies


def assert_memory_claims_hold(before: ModuleOp, after: ModuleOp) -> None:
    """Raises AssertionError when the passes that turned `before` into `after`
    recorded a peak (see the module docstring) and `bufferize` copies a parameter
    update of `after` that it computed in place in `before`."""
    old_records, new_records = records(before) or [], records(after) or []
    if len(new_records) == len(old_records):
        return
    passes = ", ".join(sorted({str(r["pass"]) for r in new_records[len(old_records):]}))
    copied_before = copied_parameters(before)
    if copied_before is None:
        return
    copied_after = copied_parameters(after)
    assert copied_after is not None, (
        f"{passes}: the module bufferized before the pass and no longer does after it")
    moved = sorted(p for p in copied_after if copied_after[p] > copied_before[p])
    if moved:
        raise AssertionError(
            f"{passes}: after the pass, bufferize can no longer update "
            f"{', '.join('@' + p for p in moved)} in place (a read of the old value now "
            "follows the update), so the step needs a copy of each that the recorded "
            "peak does not count; an in-place update must stay after every read of "
            "its parameter")
