"""`pool-before-activation`: `max_pool(act(x))` -> `act(max_pool(x))` for activations
that never decrease (`relu`, `clip`, `leaky_relu` with `alpha >= 0`).

A max-pool picks one element per window; a non-decreasing activation keeps which
element is largest, so applying it after the pool gives the same numbers, bit for bit
(the pool returns one of its inputs, and the activation of that input is the largest
activation in the window). The activation then runs on the pooled tensor, a quarter of
the elements for a 2x2 pool, and — what matters for training — the activation's saved
value for its gradient (relu's and clip's output, leaky relu's input) is the pooled
tensor instead of the full one, while the pool keeps only its index mask. On CCT2's
tokenizer (conv -> relu -> max-pool, twice) that drops the two largest saved
activations (256 KiB and 128 KiB).

Gradients agree too: where the window's largest element is unique both forms route the
gradient to it through the same activation slope; where elements tie after the
activation but not before (e.g. relu of several negatives, all 0), the original routes
to the first of them and the rewritten one to the largest input, and both pass a zero
slope there (the activation's gradient is 0 where it flattens).

Only an activation whose sole user is the pool is moved (another user needs the
unpooled value). Run it before `autodiff` (on `@forward`); the property tests check the
forward and the training step by interpretation.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from edge_opt.dialects import nn
from edge_opt.dialects.elementwise import NN_OP
from edge_opt.ir.options import EdgeOptPass

_RELU, _CLIP, _LEAKY_RELU = NN_OP["relu"], NN_OP["clip"], NN_OP["leaky_relu"]


def _never_decreases(op: Operation) -> bool:
    if isinstance(op, _RELU | _CLIP):
        return True
    if isinstance(op, _LEAKY_RELU):
        alpha = op.properties.get("alpha")
        return alpha is None or alpha.value.data >= 0  # type: ignore[union-attr]
    return False


class MaxPoolOfActivation(RewritePattern):
    """`max_pool(act(x))` -> `act(max_pool(x))` (see the module docstring)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.MaxPool2dOp, rewriter: PatternRewriter) -> None:
        activation = op.input.owner
        if not isinstance(activation, Operation) or not _never_decreases(activation):
            return
        if not activation.results[0].has_one_use():
            return
        pooled = op.clone(value_mapper={op.input: activation.operands[0]})
        moved = type(activation).create(
            operands=[pooled.results[0]],
            result_types=[op.results[0].type],
            properties=dict(activation.properties),
            attributes=dict(activation.attributes),
        )
        moved.results[0].name_hint = activation.results[0].name_hint
        rewriter.replace(op, [pooled, moved])
        rewriter.erase(activation)


@dataclass(frozen=True)
class PoolBeforeActivationPass(EdgeOptPass):
    """Moves non-decreasing activations after the max-pool that reads them (see the
    module docstring)."""

    name = "pool-before-activation"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(MaxPoolOfActivation(), apply_recursively=False).rewrite_module(op)
