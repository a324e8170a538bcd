"""The errors of the ONNX import: `UnsupportedOnnxError` for the user, `Unsupported`
from a lowering to the importer (which collects them into the former)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edge_opt.support.errors import UserError


class UnsupportedOnnxError(UserError):
    """The model uses ops or attributes the importer does not support.

    `problems` maps each kind of problem (an op type such as `"Gather"`, or
    `"Conv: auto_pad=FOO"`) to the names of the nodes that have it: the real blockers.
    `downstream` lists, the same way, nodes without a lowering of their own that would
    fold to constants once their inputs import (a `Shape` or `Cast` after an
    unsupported `Expand`); the message reports them after the blockers, apart.
    """

    def __init__(
        self,
        problems: Mapping[str, Sequence[str]],
        downstream: Mapping[str, Sequence[str]] | None = None,
    ):
        self.problems = {k: list(v) for k, v in sorted(problems.items())}
        self.downstream = {k: list(v) for k, v in sorted((downstream or {}).items())}
        count = sum(len(v) for v in self.problems.values())
        lines = [
            f"the ONNX model has {count} node(s) that edge-opt cannot import "
            f"({len(self.problems)} kind(s)):",
            *_listing(self.problems),
        ]
        if self.downstream:
            waiting = sum(len(v) for v in self.downstream.values())
            lines.append(
                f"and {waiting} node(s) downstream of them that would fold to constants "
                "once their inputs import (not blockers themselves):"
            )
            lines += _listing(self.downstream)
        super().__init__("\n".join(lines))


def _listing(kinds: Mapping[str, Sequence[str]]) -> list[str]:
    lines = []
    for kind, nodes in kinds.items():
        example = "'" + nodes[0] + "'"
        lines.append(
            f"  {kind}: {len(nodes)} node{'s' if len(nodes) > 1 else ''} "
            f"({'e.g. ' if len(nodes) > 1 else ''}{example})"
        )
    return lines


class Unsupported(Exception):
    """Raised by a lowering: this node uses something we do not support."""
