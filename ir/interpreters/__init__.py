"""Interpreter semantics for every op edge-opt uses (the executable specification).

`make_interpreter(module)` returns an xDSL `Interpreter` with all of them registered;
most users want `edge_opt.ir.session.run` or `Session` instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import Interpreter, InterpreterFunctions
from xdsl.interpreters.func import FuncFunctions

from edge_opt.ir.interpreters.dma import DmaFunctions
from edge_opt.ir.interpreters.kernel import KernelFunctions
from edge_opt.ir.interpreters.nn import NnFunctions
from edge_opt.ir.interpreters.tile import TileFunctions
from edge_opt.ir.interpreters.train import TrainFunctions

_EXTRA_SEMANTICS: ContextVar[tuple[InterpreterFunctions, ...]] = ContextVar(
    "edge_opt_extra_semantics", default=()
)
"""Plugin implementations active in this context (see `extra_semantics`)."""


@contextmanager
def extra_semantics(functions: Sequence[InterpreterFunctions]) -> Iterator[None]:
    """Within the block, every interpreter `make_interpreter` builds also has
    `functions` (a plugin's ops). Scoped to the current context (thread or task) and
    undone on exit, so nothing leaks between tests."""
    token = _EXTRA_SEMANTICS.set((*_EXTRA_SEMANTICS.get(), *functions))
    try:
        yield
    finally:
        _EXTRA_SEMANTICS.reset(token)


def register_extra_semantics(interpreter: Interpreter) -> None:
    """Registers the active plugin implementations on `interpreter`."""
    for functions in _EXTRA_SEMANTICS.get():
        interpreter.register_implementations(functions)


def make_interpreter(module: ModuleOp) -> Interpreter:
    interpreter = Interpreter(module)
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(NnFunctions())
    interpreter.register_implementations(TrainFunctions())
    interpreter.register_implementations(KernelFunctions())
    interpreter.register_implementations(DmaFunctions())
    interpreter.register_implementations(TileFunctions())
    register_extra_semantics(interpreter)
    return interpreter
