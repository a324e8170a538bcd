"""Gradient rules: attention."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from xdsl.ir import SSAValue

from edge_opt.autodiff.rules.builder import (
    GradientBuilder,
    Grads,
    rule,
    shape_of,
)
from edge_opt.dialects import nn, train
from edge_opt.ir.attention import concat, head_block, query_blocks


def _split_heads(b: GradientBuilder, value: SSAValue, heads: int) -> SSAValue:
    """(B, S, H*d) -> (B, H, S, d), as `nn.attention` splits its projections."""
    batch, tokens, features = shape_of(value)
    split = b.emit(nn.ReshapeOp(value, (batch, tokens, heads, features // heads)))
    return b.emit(nn.TransposeOp(split, (0, 2, 1, 3)))


def _merge_heads(b: GradientBuilder, value: SSAValue) -> SSAValue:
    """(B, H, S, d) -> (B, S, H*d), the inverse of `_split_heads`."""
    batch, heads, tokens, size = shape_of(value)
    moved = b.emit(nn.TransposeOp(value, (0, 2, 1, 3)))
    return b.emit(nn.ReshapeOp(moved, (batch, tokens, heads * size)))


def _rows(b: GradientBuilder, value: SSAValue) -> SSAValue:
    """(B, S, F) -> (B*S, F): a view, so that a weight gradient is one matmul."""
    batch, tokens, features = shape_of(value)
    return b.emit(nn.ReshapeOp(value, (batch * tokens, features)))


def _named(value: SSAValue, base: str | None, name: str) -> SSAValue:
    if base is not None:
        value.name_hint = f"{base}_{name}"
    return value


class _Wanted(NamedTuple):
    """Which of the merged heads `o` and the head gradients d_q, d_k, d_v the attention
    backward needs."""

    o: bool
    q: bool
    k: bool
    v: bool


_Core = tuple[SSAValue | None, SSAValue | None, SSAValue | None, SSAValue | None]


def _attention_core(b: GradientBuilder, q: SSAValue, k: SSAValue, v: SSAValue | None,
                    d_o: SSAValue | None, scale: float, wants: _Wanted,
                    base: str | None) -> _Core:
    """`(o, d_q, d_k, d_v)` per head (B, H, S, d) from the recomputed q, k, v, all
    heads at once (the (B, H, S, S) map exists inside the backward)."""
    scores = _named(b.emit(nn.MatmulOp(q, k, transpose_rhs=True)), base, "scores")
    a = _named(b.emit(nn.SoftmaxOp(b.scale(scores, scale), -1)), base, "probs")
    o = d_q = d_k = d_v = None
    if wants.o:
        assert v is not None
        o = b.emit(nn.MatmulOp(a, v))
    if wants.v:
        assert d_o is not None
        d_v = b.emit(nn.MatmulOp(a, d_o, transpose_lhs=True))
    if wants.q or wants.k:
        assert v is not None and d_o is not None
        d_a = _named(b.emit(nn.MatmulOp(d_o, v, transpose_rhs=True)), base, "dprobs")
        d_s = _named(b.scale(b.emit(train.SoftmaxGradOp(d_a, a, -1)), scale),
                     base, "dscores")
        if wants.q:
            d_q = b.emit(nn.MatmulOp(d_s, k))
        if wants.k:
            d_k = b.emit(nn.MatmulOp(d_s, q, transpose_lhs=True))
    return o, d_q, d_k, d_v


def _dense_attention_core(b: GradientBuilder, q: SSAValue, k: SSAValue,
                          v: SSAValue | None, d_o: SSAValue | None, heads: int,
                          scale: float, wants: _Wanted, base: str | None) -> _Core:
    """`_attention_core` of all heads at once: from the projections q, k, v and d_o
    (B, S, H*d), split into heads, to merged `(o, d_q, d_k, d_v)` (B, S, H*d)."""

    def split(value: SSAValue | None, name: str) -> SSAValue | None:
        return None if value is None else _named(_split_heads(b, value, heads), base, name)

    parts = _attention_core(b, split(q, "q"), split(k, "k"), split(v, "v"),
                            split(d_o, "d_o"), scale, wants, base)
    o, d_q, d_k, d_v = (None if p is None else _merge_heads(b, p) for p in parts)
    return o, d_q, d_k, d_v


def _blocked_attention_core(b: GradientBuilder,
                            recompute: Callable[[str], SSAValue | None],
                            d_o: SSAValue | None, heads: int, scale: float,
                            wants: _Wanted, base: str | None, rows: int) -> _Core:
    """`_dense_attention_core` one head and one block of `rows` query rows at a time
    (`nn.attention`'s `block_rows`), on column slices of the projections that
    `recompute("q" | "k" | "v")` emits (None: v is not needed): each block
    recomputes its (rows, S) scores and probabilities, adds its share to d_k and d_v
    (sums over the query rows) and writes its rows of o and d_q; nothing larger than
    one block's map exists. The heads of k and v are sliced before q is recomputed,
    so that k and v die early."""
    k, v = recompute("k"), recompute("v")
    assert k is not None
    k_heads = [head_block(b.emit, k, heads, h) for h in range(heads)]
    v_heads = [None if v is None else head_block(b.emit, v, heads, h)
               for h in range(heads)]
    q = recompute("q")
    assert q is not None
    tokens = shape_of(q)[1]
    per_head: dict[str, list[SSAValue]] = {"o": [], "q": [], "k": [], "v": []}
    for head, k_head, v_head in zip(range(heads), k_heads, v_heads):
        blocks: dict[str, list[SSAValue]] = {"o": [], "q": []}
        sums: dict[str, SSAValue] = {}
        for start, stop in query_blocks(tokens, rows):
            q_block = head_block(b.emit, q, heads, head, (start, stop))
            d_o_block = (
                None if d_o is None else head_block(b.emit, d_o, heads, head, (start, stop))
            )
            tag = None if base is None else f"{base}_h{head}_r{start}"
            o, d_q, d_k, d_v = _attention_core(
                b, q_block, k_head, v_head, d_o_block, scale, wants, tag
            )
            for key, value in (("o", o), ("q", d_q)):
                if value is not None:
                    blocks[key].append(value)
            for key, value in (("k", d_k), ("v", d_v)):
                if value is not None:
                    sums[key] = (
                        value if key not in sums else b.emit(nn.AddOp(sums[key], value))
                    )
        for key, pieces in blocks.items():
            if pieces:
                per_head[key].append(concat(b.emit, pieces, 1))
        for key, value in sums.items():
            per_head[key].append(value)
    o, d_q, d_k, d_v = (
        concat(b.emit, per_head[key], 2) if per_head[key] else None
        for key in ("o", "q", "k", "v")
    )
    return o, d_q, d_k, d_v


@rule(nn.AttentionOp)
def _attention(b: GradientBuilder, op: nn.AttentionOp, dy: SSAValue,
               needs: Sequence[bool]):
    """Flash-attention style: the backward reads only the op's inputs (x, the weights
    and biases) and `dy`. It recomputes q, k, v, the probabilities `a` and the merged
    heads `o` (the op's own steps), then applies the chain rule with `nn` ops and
    `train.softmax_grad`; the S x S map exists only inside the backward, never across
    the forward/backward gap; with `block_rows` (`tile-attention-depth-first`) not even
    there: the backward runs one head and query block at a time
    (`_blocked_attention_core`). Only what the operands that need a gradient use is
    emitted (v is not recomputed for a `wq` alone, nor `o` without `wo`). With `x2` = x
    as (B*S, D) rows and `m(.)` merged heads:

        d_wo = m(o)^T @ dy,  d_bo = sum(dy),  d_o = dy @ wo^T (split into heads)
        d_a = d_o @ v^T,  d_v = a^T @ d_o
        d_s = softmax_grad(d_a, a) * scale
        d_q = d_s @ k,  d_k = d_s^T @ q
        d_wq = x2^T @ m(d_q),  d_bq = sum(m(d_q))  (likewise k, v)
        d_x = m(d_q) @ wq^T + m(d_k) @ wk^T + m(d_v) @ wv^T
    """
    x, wq, wk, wv, wo = op.x, op.wq, op.wk, op.wv, op.wo
    heads, scale = op.heads.value.data, op.scale.value.data
    biases = op.biases
    bq, bk, bv, _ = (None,) * 4 if biases is None else biases
    need_x, need_wq, need_wk, need_wv, need_wo = needs[:5]
    need_bq, need_bk, need_bv, need_bo = needs[5:9] if biases is not None else [False] * 4
    base = op.result.name_hint
    grads: Grads = [None] * len(op.operands)
    if need_bo:
        grads[8] = b.sum_over(dy, (0, 1))
    # What each part of the backward is needed for (only that much is emitted).
    need_q = need_x or need_wq or need_bq  # d_q
    need_k = need_x or need_wk or need_bk  # d_k
    need_v = need_x or need_wv or need_bv  # d_v
    need_scores = need_q or need_k  # d_a, softmax_grad
    if not (need_scores or need_v or need_wo):
        return grads

    def project(w: SSAValue, bias: SSAValue | None) -> SSAValue:
        y = b.emit(nn.MatmulOp(x, w))
        return y if bias is None else b.emit(nn.AddOp(y, bias))

    # Recompute the forward from the inputs (nothing of it was kept).
    projections = {"q": (wq, bq), "k": (wk, bk), "v": (wv, bv)}

    def recompute(name: str) -> SSAValue | None:
        if name == "v" and not (need_wo or need_scores):
            return None
        w, bias = projections[name]
        return _named(project(w, bias), base, f"{name}_proj")

    x_rows = _rows(b, x) if need_wq or need_wk or need_wv else None
    d_o = None
    if need_scores or need_v:
        d_o = b.emit(nn.MatmulOp(dy, wo, transpose_rhs=True))
    wants = _Wanted(o=need_wo, q=need_q, k=need_k, v=need_v)
    rows = op.rows_per_block
    if rows is None:
        q, k, v = recompute("q"), recompute("k"), recompute("v")
        assert q is not None and k is not None
        o, d_q, d_k, d_v = _dense_attention_core(
            b, q, k, v, d_o, heads, scale, wants, base
        )
    else:
        o, d_q, d_k, d_v = _blocked_attention_core(
            b, recompute, d_o, heads, scale, wants, base, rows
        )
    if o is not None:
        grads[4] = b.emit(nn.MatmulOp(_rows(b, o), _rows(b, dy), transpose_lhs=True))
    d_input: list[SSAValue] = []

    def weight_grads(merged: SSAValue, w: SSAValue, index: int,
                     need_w: bool, need_b: bool) -> None:
        if need_w:
            assert x_rows is not None
            grads[index] = b.emit(
                nn.MatmulOp(x_rows, _rows(b, merged), transpose_lhs=True)
            )
        if need_b:
            grads[index + 4] = b.sum_over(merged, (0, 1))
        if need_x:
            d_input.append(b.emit(nn.MatmulOp(merged, w, transpose_rhs=True)))

    if d_v is not None:
        weight_grads(d_v, wv, 3, need_wv, need_bv)
    if d_q is not None:
        weight_grads(d_q, wq, 1, need_wq, need_bq)
    if d_k is not None:
        weight_grads(d_k, wk, 2, need_wk, need_bk)
    if need_x:
        total = d_input[0]
        for more in d_input[1:]:
            total = b.emit(nn.AddOp(total, more))
        grads[0] = total
    return grads
