"""`tile-attention-depth-first`: multi-head attention one head and one block of query
rows at a time, so the (B, H, S, S) attention map never exists.

`nn.attention` computes, per head, scores = q k^T (S x S), their softmax and its product
with v. Each query row's softmax needs only that row's scores, so the rows can be
computed in blocks: for head h and query rows r..r+R, the (R, S) scores, their
softmax and the (R, dv) rows of the output, then the next block, depth first. The
largest attention-map buffer is then one (R, S) block instead of H maps of (S, S).

The pass sets `block_rows = min(rows, S)` on every `nn.attention` (except one with a
single head that fits in one block: nothing to split). The op's result is unchanged;
the property tells its two expansions how to schedule the work:

- `lower-attention` (and `bufferize`, which runs it first) writes the blocks as
  slices, matmul, mul, softmax, matmul and concatenations (see that pass);
- the `autodiff` rule of `nn.attention` keeps only the op's inputs across the
  forward/backward gap and recomputes, per block, the block's scores and
  probabilities (flash-attention style), accumulating d_k and d_v over the blocks.

So for training it must run before `autodiff`: the training pipelines take it as the
option `attention-rows=R`.

Options:
    rows: query rows per block (default 16). Smaller blocks: a smaller attention map,
        more (smaller) kernel calls; the FLOPs are the same.

Example (S = 8, 2 heads, rows = 4):

    %y = nn.attention %x, %wq, %wk, %wv, %wo {heads = 2 : i64, scale = 0.25 : f32} ...
    // becomes
    %y = nn.attention %x, %wq, %wk, %wv, %wo {block_rows = 4 : i64, heads = 2 : i64, ...}
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, TensorType, i64

from edge_opt.dialects import nn
from edge_opt.ir.options import EdgeOptPass


def block_rows_for(op: nn.AttentionOp, rows: int) -> int | None:
    """The `block_rows` to give `op`, or None when tiling cannot split it."""
    assert isinstance(op.x.type, TensorType)
    tokens = op.x.type.get_shape()[1]
    if op.heads.value.data == 1 and rows >= tokens:
        return None
    return min(rows, tokens)


@dataclass(frozen=True)
class TileAttentionDepthFirstPass(EdgeOptPass):
    """Sets `block_rows` on every `nn.attention` (see the module docstring)."""

    name = "tile-attention-depth-first"

    rows: int = 16

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for attention in op.walk():
            if not isinstance(attention, nn.AttentionOp):
                continue
            rows = block_rows_for(attention, self.rows)
            if rows is None:
                attention.properties.pop("block_rows", None)
            else:
                attention.properties["block_rows"] = IntegerAttr(rows, i64)
