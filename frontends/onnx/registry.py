"""The table of lowerings: `(domain, op_type)` to the function that lowers such a node
and the attributes it understands. The modules of `lowerings/` fill it with the
`lowering` decorator when they are imported (`lowerings/__init__.py` imports them all,
and the importer imports `lowerings`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import onnx

if TYPE_CHECKING:
    from edge_opt.frontends.onnx.importer import Importer

_DEFAULT_DOMAINS = ("", "ai.onnx")
MS_DOMAIN = "com.microsoft"

Lowering = Callable[
    ["Importer", onnx.NodeProto, list[Any], dict[str, Any]], list[Any]
]


@dataclass(frozen=True)
class _OpInfo:
    lower: Lowering
    attributes: frozenset[str]


_LOWERINGS: dict[tuple[str, str], _OpInfo] = {}


def lowering(op_type: str, attributes: Sequence[str] = (), domain: str = ""):
    """Registers a lowering of `domain.op_type` that understands `attributes`."""
    def register(f: Lowering) -> Lowering:
        _LOWERINGS[(domain, op_type)] = _OpInfo(f, frozenset(attributes))
        return f

    return register


def _op_key(node: onnx.NodeProto) -> tuple[str, str]:
    domain = "" if node.domain in _DEFAULT_DOMAINS else node.domain
    return domain, node.op_type
