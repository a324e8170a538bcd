"""`lower-attention`: rewrites `nn.attention` into primitive `nn` ops.

Each `nn.attention` becomes the steps of its definition (the op's docstring), one
primitive op per step and in the same order, so the lowered form computes the same
numbers (bit for bit, with our numerics):

    %q  = nn.matmul %x, %wq            (B, S, H*dk)    [+ nn.add %bq], likewise k, v
    %qh = nn.reshape %q -> (B, S, H, dk); nn.transpose {perm = [0, 2, 1, 3]} -> (B, H, S, dk)
    %s  = nn.matmul %qh, %kh {transpose_rhs}            (B, H, S, S)
    %s2 = nn.mul %s, scale                               (a rank-0 constant)
    %a  = nn.softmax %s2 {axis = -1}
    %o  = nn.matmul %a, %vh                              (B, H, S, dv)
    %om = nn.transpose {perm = [0, 2, 1, 3]}; nn.reshape -> (B, S, H*dv)
    %y  = nn.matmul %om, %wo           (B, S, E)       [+ nn.add %bo]

With `block_rows = R` (set by `tile-attention-depth-first`) the middle steps run one
head h and one block of R query rows at a time, depth first, on column slices of the
projections (no head transposes), so at most one (R, S) block of scores exists (the
buffers of a block die before the next begins):

    %k_h = nn.slice %k [:, :, h*dk:(h+1)*dk]                (B, S, dk), likewise v
    %q_b = nn.slice %q [:, r:r+R, h*dk:(h+1)*dk]            (B, R, dk)
    %s_b = nn.matmul %q_b, %k_h {transpose_rhs}             (B, R, S)
    %a_b = nn.softmax (nn.mul %s_b, scale)
    %o_b = nn.matmul %a_b, %v_h                             (B, R, dv)
    %o   = nn.concat of the blocks (axis 1), then of the heads (axis 2)   (B, S, H*dv)

The buffer level has no attention kernel: the lowering stage of the named pipelines
runs this pass before `bufferize` (which refuses an `nn.attention`). The decomposition
itself lives in `edge_opt.ir.attention`.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from edge_opt.dialects import nn
from edge_opt.ir.attention import lower
from edge_opt.ir.options import EdgeOptPass


class LowerAttention(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.AttentionOp, rewriter: PatternRewriter) -> None:
        ops, result = lower(op)
        result.name_hint = op.result.name_hint
        rewriter.replace(op, ops, [result])


def lower_attention(module: ModuleOp) -> None:
    """Rewrites every `nn.attention` of `module` into primitive ops."""
    PatternRewriteWalker(LowerAttention(), apply_recursively=False).rewrite_module(module)


@dataclass(frozen=True)
class LowerAttentionPass(EdgeOptPass):
    """Rewrites `nn.attention` into primitive `nn` ops (see the module docstring)."""

    name = "lower-attention"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        lower_attention(op)
