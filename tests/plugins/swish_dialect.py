"""An edge-opt plugin with a dialect op of its own: `demo.swish` (`x * sigmoid(x)`),
its interpreter semantics and its generator for random models, and a pass that expands
it into `nn` ops (correct) or into `x * tanh(x)` (wrong, `--wrong`).

    edge-opt fuzz expand-swish --ops demo.swish,add --load-plugin tests/plugins/swish_dialect.py
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Dialect, SSAValue
from xdsl.irdl import IRDLOperation, irdl_op_definition, operand_def, result_def
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from edge_opt.dialects import nn
from edge_opt.testing import ModelBuilder
from edge_opt.tools.plugins import Plugin


@irdl_op_definition
class SwishOp(IRDLOperation):
    """`x * sigmoid(x)`, element-wise."""

    name = "demo.swish"

    input = operand_def(TensorType)
    result = result_def(TensorType)

    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, input: SSAValue):
        super().__init__(operands=[input], result_types=[input.type])


Demo = Dialect("demo", [SwishOp])


@register_impls
class DemoFunctions(InterpreterFunctions):
    @impl(SwishOp)
    def run_swish(self, interpreter: Interpreter, op: SwishOp, args: tuple) -> tuple:
        x = args[0]
        return (x / (1 + np.exp(-x)),)


def generate_swish(b: ModelBuilder) -> SSAValue:
    """`demo.swish` of any value of the pool."""
    return b.emit(SwishOp(b.pick()))


class ExpandSwish(RewritePattern):
    def __init__(self, wrong: bool):
        self.wrong = wrong

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SwishOp, rewriter: PatternRewriter) -> None:
        gate = nn.TanhOp(op.input) if self.wrong else nn.SigmoidOp(op.input)
        rewriter.replace(op, [gate, nn.MulOp(op.input, gate)])


@dataclass(frozen=True)
class ExpandSwishPass(ModulePass):
    """`demo.swish(x)` -> `nn.mul(x, nn.sigmoid(x))`; with `wrong`, `nn.tanh`."""

    name = "expand-swish"

    wrong: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(ExpandSwish(self.wrong)).rewrite_module(op)


def register(plugin: Plugin) -> None:
    plugin.add_dialect(Demo, semantics=[DemoFunctions()],
                       generators={"demo.swish": generate_swish})
    plugin.add_pass(ExpandSwishPass)
