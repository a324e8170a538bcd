"""The dialects of edge-opt and a context that loads them."""

from __future__ import annotations

from collections.abc import Callable

from xdsl.context import Context
from xdsl.dialects.builtin import Builtin
from xdsl.dialects.func import Func
from xdsl.ir import Dialect

from edge_opt.dialects.dma import DMA
from edge_opt.dialects.kernel import KERNEL
from edge_opt.dialects.nn import NN
from edge_opt.dialects.tile import TILE
from edge_opt.dialects.train import TRAIN

EDGE_OPT_DIALECTS: dict[str, Callable[[], Dialect]] = {
    dialect.name: (lambda dialect=dialect: dialect) for dialect in (NN, TRAIN, KERNEL, DMA, TILE)
}
"""Our dialects by name, as xDSL's registries take them (factories)."""


def make_context() -> Context:
    """A context with the upstream dialects our IR uses and all of ours loaded."""
    ctx = Context()
    for dialect in (Builtin, Func):
        ctx.load_dialect(dialect)
    for factory in EDGE_OPT_DIALECTS.values():
        ctx.load_dialect(factory())
    return ctx
