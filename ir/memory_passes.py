"""What the passes that lower the peak of live bytes did (`reorder-for-memory`,
`recompute`), kept on the module for `edge-opt report` / `--report`: per pass and
function, the graph-level peak of live bytes before and after (`edge_opt.ir.op_graph`'s
model: the step's values, without parameters and inputs), whether the search was
exact, and the FLOPs it added."""

from __future__ import annotations

from typing import Any

from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    i64,
)

MEMORY_PASSES_ATTR = "edge_opt.memory_passes"


def record(module: ModuleOp, **fields: str | int) -> None:
    """Appends one record (string and integer fields) to the module's list."""
    old = module.attributes.get(MEMORY_PASSES_ATTR)
    kept = list(old.data) if isinstance(old, ArrayAttr) else []
    entry = DictionaryAttr({
        key: IntegerAttr(value, i64) if isinstance(value, int) else StringAttr(value)
        for key, value in fields.items()
    })
    module.attributes[MEMORY_PASSES_ATTR] = ArrayAttr([*kept, entry])


def records(module: ModuleOp) -> list[dict[str, Any]] | None:
    """The records as plain values, or None if no such pass ran."""
    found = module.attributes.get(MEMORY_PASSES_ATTR)
    if not isinstance(found, ArrayAttr):
        return None
    result = []
    for entry in found.data:
        assert isinstance(entry, DictionaryAttr)
        plain: dict[str, Any] = {}
        for key, value in entry.data.items():
            if isinstance(value, IntegerAttr):
                plain[key] = value.value.data
            else:
                assert isinstance(value, StringAttr)
                plain[key] = value.data
        result.append(plain)
    return result


def format_memory_passes(entries: list[dict[str, Any]]) -> list[str]:
    """The "memory passes" table of the text report."""
    header = ("pass", "function", "live peak before -> after (B)", "extra FLOPs", "search")
    lines = [header]
    for r in entries:
        lines.append((
            r["pass"], f"@{r['function']}",
            f"{r['peak_before']:,} -> {r['peak_after']:,}",
            f"{r['extra_flops']:,}", r["search"],
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["memory passes (graph-level peak of the step's live values)"]
    for i, line in enumerate(lines):
        text.append("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
        if i == 0:
            text.append("  ".join("-" * w for w in widths))
    return text
