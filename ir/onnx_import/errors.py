"""The errors of the ONNX import: `UnsupportedOnnxError` for the user, `_Unsupported`
from a lowering to the importer (which collects them into the former)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edge_opt.ir.errors import UserError


class UnsupportedOnnxError(UserError):
    """The model uses ops or attributes the importer does not support.

    `problems` maps each kind of problem (an op type such as `"Gather"`, or
    `"Conv: auto_pad=FOO"`) to the names of the nodes that have it.
    """

    def __init__(self, problems: Mapping[str, Sequence[str]]):
        self.problems = {k: list(v) for k, v in sorted(problems.items())}
        count = sum(len(v) for v in self.problems.values())
        lines = [
            f"the ONNX model has {count} node(s) that edge-opt cannot import "
            f"({len(self.problems)} kind(s)):"
        ]
        for kind, nodes in self.problems.items():
            example = "'" + nodes[0] + "'"
            lines.append(
                f"  {kind}: {len(nodes)} node{'s' if len(nodes) > 1 else ''} "
                f"({'e.g. ' if len(nodes) > 1 else ''}{example})"
            )
        super().__init__("\n".join(lines))


class _Unsupported(Exception):
    """Raised by a lowering: this node uses something we do not support."""
