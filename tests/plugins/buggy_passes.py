"""An edge-opt plugin with two deliberately wrong passes and a correct one, for the
tests and the docs (docs/plugins.md): `edge-opt fuzz` must catch the wrong ones.

    edge-opt fuzz swap-sub-operands --load-plugin tests/plugins/buggy_passes.py
    edge-opt fuzz fuse-linear-bias-wrong --ops linear,add --load-plugin tests/plugins/buggy_passes.py
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import Rewriter

from edge_opt.dialects import nn
from edge_opt.tools.plugins import Plugin


@dataclass(frozen=True)
class SwapSubOperandsPass(ModulePass):
    """WRONG: rewrites `sub(a, b)` to `sub(b, a)`, as if `sub` commuted."""

    name = "swap-sub-operands"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        # Each sub once (a pattern would swap back and forth forever).
        for sub in [o for o in op.walk() if isinstance(o, nn.SubOp)]:
            if sub.lhs != sub.rhs:
                Rewriter.replace_op(sub, nn.SubOp(sub.rhs, sub.lhs))


def _bias_of_linear(op: nn.AddOp) -> tuple[nn.LinearOp, SSAValue] | None:
    """The bias-less `linear` and the 1-D `b` of `add(linear(x, w), b)` (either operand
    order), when `b` has the linear's output size."""
    for value, other in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
        linear = value.owner
        if not isinstance(linear, nn.LinearOp) or linear.bias is not None:
            continue
        if not isinstance(other.type, TensorType):
            continue
        if tuple(other.type.get_shape()) == (linear.result.type.get_shape()[-1],):
            return linear, other
    return None


class FuseLinearBias(RewritePattern):
    """`add(linear(x, w), b)` -> `linear(x, w, b)`; with `drop_bias`, WRONG:
    `linear(x, w)`."""

    def __init__(self, drop_bias: bool = False):
        self.drop_bias = drop_bias

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.AddOp, rewriter: PatternRewriter) -> None:
        match = _bias_of_linear(op)
        if match is None:
            return
        linear, bias = match
        fused = nn.LinearOp(linear.input, linear.weight, None if self.drop_bias else bias)
        rewriter.replace(op, [fused])
        if linear.result.first_use is None:  # else the other users keep it
            rewriter.erase(linear)


@dataclass(frozen=True)
class FuseLinearBiasPass(ModulePass):
    """`add(linear(x, w), b)` -> `linear(x, w, b)` for a 1-D `b` (correct)."""

    name = "fuse-linear-bias"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(FuseLinearBias()).rewrite_module(op)


@dataclass(frozen=True)
class FuseLinearBiasWrongPass(ModulePass):
    """WRONG: the fusion of `fuse-linear-bias`, dropping the bias."""

    name = "fuse-linear-bias-wrong"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(FuseLinearBias(drop_bias=True)).rewrite_module(op)


def register(plugin: Plugin) -> None:
    plugin.add_pass(SwapSubOperandsPass)
    plugin.add_pass(FuseLinearBiasPass)
    plugin.add_pass(FuseLinearBiasWrongPass)
    plugin.add_pipeline("fuse-and-clean", "fuse-linear-bias,cse,dce",
                        "fuse-linear-bias, then cse and dce")
