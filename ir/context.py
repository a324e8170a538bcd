"""The dialects of edge-opt and a context that loads them."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

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


_EXTRA_DIALECTS: ContextVar[tuple[Dialect, ...]] = ContextVar(
    "edge_opt_extra_dialects", default=()
)
"""Plugin dialects active in this context (see `extra_dialects`)."""


@contextmanager
def extra_dialects(dialects: Sequence[Dialect]) -> Iterator[None]:
    """Within the block, `make_context` and `all_dialects` include `dialects` too (a
    plugin's). Scoped to the current context (thread or task) and undone on exit, so
    nothing leaks between tests."""
    token = _EXTRA_DIALECTS.set((*_EXTRA_DIALECTS.get(), *dialects))
    try:
        yield
    finally:
        _EXTRA_DIALECTS.reset(token)


def all_dialects() -> dict[str, Callable[[], Dialect]]:
    """`EDGE_OPT_DIALECTS` and the active plugin dialects, by name."""
    extra = {d.name: (lambda d=d: d) for d in _EXTRA_DIALECTS.get()}
    return {**EDGE_OPT_DIALECTS, **extra}


def make_context() -> Context:
    """A context with the upstream dialects our IR uses and all of ours (and the active
    plugins') loaded."""
    ctx = Context()
    for dialect in (Builtin, Func):
        ctx.load_dialect(dialect)
    for factory in all_dialects().values():
        ctx.load_dialect(factory())
    return ctx
