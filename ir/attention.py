"""`nn.attention` as primitive `nn` ops: the decomposition that `lower-attention`
applies, that the attention gradient rule recomputes and that `fuse-attention-weights`
rewrites (see `edge_opt.passes.lower_attention` for the ops it produces)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from edge_opt.dialects import nn
from edge_opt.support.dtypes import numpy_dtype, to_dense


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return value.type.get_shape()


class Emitter:
    """Collects the new ops and names their results after the attention's result."""

    def __init__(self, base: str | None):
        self.ops: list[Operation] = []
        self.base = base

    def __call__(self, op: Operation, name: str | None = None) -> SSAValue:
        self.ops.append(op)
        return self.name(op.results[0], name)

    def name(self, value: SSAValue, name: str | None) -> SSAValue:
        if name is not None and self.base is not None:
            value.name_hint = f"{self.base}_{name}"
        return value


def split_heads(emit: Emitter, value: SSAValue, heads: int, name: str) -> SSAValue:
    """(B, S, H*d) -> (B, H, S, d)."""
    b, s, f = _shape(value)
    split = emit(nn.ReshapeOp(value, (b, s, heads, f // heads)), f"{name}_split")
    return emit(nn.TransposeOp(split, (0, 2, 1, 3)), name)


def merge_heads(emit: Emitter, value: SSAValue, name: str) -> SSAValue:
    """(B, H, S, d) -> (B, S, H*d)."""
    b, h, s, d = _shape(value)
    moved = emit(nn.TransposeOp(value, (0, 2, 1, 3)), f"{name}_t")
    return emit(nn.ReshapeOp(moved, (b, s, h * d)), name)


def scale_constant(emit: Emitter, scale: float, like: SSAValue) -> SSAValue:
    assert isinstance(like.type, TensorType)
    element = like.type.element_type
    array = np.asarray(scale, dtype=numpy_dtype(element))
    return emit(nn.ConstantOp(to_dense(array, TensorType(element, ()))), "scale")


Emit = Callable[[Operation], SSAValue]


def query_blocks(tokens: int, rows: int) -> list[tuple[int, int]]:
    """The `[start, stop)` query rows of each block (the last may be shorter)."""
    return [(start, min(start + rows, tokens)) for start in range(0, tokens, rows)]


def head_block(emit: Emit, value: SSAValue, heads: int, head: int,
               rows: tuple[int, int] | None = None) -> SSAValue:
    """The columns of head `head` of `value` (B, S, H*d), rows `[start, stop)` of them
    (all if None): (B, rows, d)."""
    batch, tokens, features = _shape(value)
    size = features // heads
    start, stop = (0, tokens) if rows is None else rows
    return emit(nn.SliceOp(
        value, (0, start, head * size), (batch, stop, (head + 1) * size)
    ))


def concat(emit: Emit, parts: list[SSAValue], axis: int) -> SSAValue:
    return parts[0] if len(parts) == 1 else emit(nn.ConcatOp(parts, axis))


def _blocked_context(emit: Emitter, op: nn.AttentionOp,
                     project: Callable[[str], SSAValue]) -> SSAValue:
    """The merged heads (B, S, H*dv) of `softmax(q k^T * scale) @ v`, one head and
    query block at a time, on the projections `project("q")` ... (B, S, H*d)."""
    rows = op.rows_per_block
    assert rows is not None
    heads, scale = op.heads.value.data, op.scale.value.data
    # The heads of k and v are sliced before q exists, so that k and v die early.
    k, v = project("k"), project("v")
    k_heads = [emit.name(head_block(emit, k, heads, h), f"h{h}_k") for h in range(heads)]
    v_heads = [emit.name(head_block(emit, v, heads, h), f"h{h}_v") for h in range(heads)]
    q = project("q")
    tokens = _shape(q)[1]
    factor: SSAValue | None = None
    per_head = []
    for head, k_head, v_head in zip(range(heads), k_heads, v_heads):
        blocks = []
        for start, stop in query_blocks(tokens, rows):
            tag = f"h{head}_r{start}"
            q_block = emit.name(head_block(emit, q, heads, head, (start, stop)),
                                f"{tag}_q")
            scores = emit(nn.MatmulOp(q_block, k_head, transpose_rhs=True),
                          f"{tag}_scores")
            factor = factor or scale_constant(emit, scale, scores)
            scaled = emit(nn.MulOp(scores, factor), f"{tag}_scaled")
            probabilities = emit(nn.SoftmaxOp(scaled, -1), f"{tag}_probs")
            blocks.append(emit(nn.MatmulOp(probabilities, v_head), f"{tag}_o"))
        per_head.append(emit.name(concat(emit, blocks, 1), f"h{head}_o"))
    return emit.name(concat(emit, per_head, 2), "o")


def lower(op: nn.AttentionOp) -> tuple[list[Operation], SSAValue]:
    """The primitive ops computing `op` (see the module docstring) and the result."""
    emit = Emitter(op.result.name_hint)
    heads = op.heads.value.data
    biases = op.biases
    bq, bk, bv, bo = (None,) * 4 if biases is None else biases

    def project(name: str) -> SSAValue:
        w, b = {"q": (op.wq, bq), "k": (op.wk, bk), "v": (op.wv, bv)}[name]
        y = emit(nn.MatmulOp(op.x, w), name if b is None else f"{name}_proj")
        return y if b is None else emit(nn.AddOp(y, b), name)

    if op.rows_per_block is not None:
        o = _blocked_context(emit, op, project)
    else:
        q = split_heads(emit, project("q"), heads, "qh")
        k = split_heads(emit, project("k"), heads, "kh")
        v = split_heads(emit, project("v"), heads, "vh")
        scores = emit(nn.MatmulOp(q, k, transpose_rhs=True), "scores")
        scaled = emit(
            nn.MulOp(scores, scale_constant(emit, op.scale.value.data, scores)),
            "scaled",
        )
        probabilities = emit(nn.SoftmaxOp(scaled, -1), "probs")
        o = merge_heads(emit, emit(nn.MatmulOp(probabilities, v), "oh"), "o")
    y = emit(nn.MatmulOp(o, op.wo), None if bo is None else "out_proj")
    if bo is not None:
        y = emit(nn.AddOp(y, bo))
    return emit.ops, y
