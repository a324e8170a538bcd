"""Interpreter semantics for every op edge-opt uses (the executable specification).

`make_interpreter(module)` returns an xDSL `Interpreter` with all of them registered;
most users want `edge_opt.ir.session.run` or `Session` instead.
"""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp
from xdsl.interpreter import Interpreter
from xdsl.interpreters.func import FuncFunctions

from edge_opt.ir.interpreters.dma import DmaFunctions
from edge_opt.ir.interpreters.kernel import KernelFunctions
from edge_opt.ir.interpreters.nn import NnFunctions
from edge_opt.ir.interpreters.tile import TileFunctions
from edge_opt.ir.interpreters.train import TrainFunctions


def make_interpreter(module: ModuleOp) -> Interpreter:
    interpreter = Interpreter(module)
    interpreter.register_implementations(FuncFunctions())
    interpreter.register_implementations(NnFunctions())
    interpreter.register_implementations(TrainFunctions())
    interpreter.register_implementations(KernelFunctions())
    interpreter.register_implementations(DmaFunctions())
    interpreter.register_implementations(TileFunctions())
    return interpreter
