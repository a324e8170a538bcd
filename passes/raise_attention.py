"""`raise-attention`: recognises multi-head self-attention in imported graphs and raises
it to one `nn.attention`.

ONNX exporters write `torch` attention modules as projections, a head split made of
shape ops, two batched matmuls around a softmax, a head merge and an output projection:

    %q  = nn.matmul %x, %Wq  [+ nn.add %bq]           (B, S, F), likewise k and v, or
                                                       one fused projection for all three
    %qh = nn.reshape, nn.transpose, nn.slice, ...     (B, H, S, dk); k often already as
                                                       (B, H, dk, S)
    %s  = nn.matmul %qh, %kh                          (B, H, S, S)
    %s2 = nn.mul / nn.div %s, <constant>              the scale; it may also sit on q or
                                                       k; `+ 0` (a zero attention bias) too
    %a  = nn.softmax %s2 {axis = -1}
    %o  = nn.matmul %a, %vh                           (B, H, S, dv)
    %om = nn.transpose, nn.reshape                    (B, S, H*dv)
    %y  = nn.matmul %om, %Wo  [+ nn.add %bo]          (B, S, E)

which becomes `%y = nn.attention %x, %wq, %wk, %wv, %wo [bias(...)] {heads, scale}`.

Recognition, deterministic and from types and values only (no search):
- Anchored on the `nn.softmax` over the last axis; its only user is the `a @ v` matmul.
  Between the scores matmul and the softmax only multiplications or divisions by a
  scalar constant and additions of an all-zero constant are allowed.
- q, k and v are each traced back through shape ops (`nn.reshape`, `nn.transpose`,
  `nn.slice`, `nn.gather`, `nn.squeeze`, `nn.unsqueeze`) and scalar-constant `nn.mul`/
  `nn.div` to a projection of one and the same `x` (B, S, D): `nn.matmul %x, %W`
  (either `W` layout), or `nn.linear`, with an optional bias `nn.add` of shape (F,).
  The shape ops are then checked *by index propagation*: an array holding each
  element's own flat index in the projection goes through the same ops (with our
  numerics), and the result must hold, at [b, h, s, j] of the head layout (B, H, S, d)
  or (B*H, S, d), the projection's element [b, s, c(h, j)] with one column map c for
  every b and s. So any exporter's split (CCT's reshape + transposes, TinyViT's fused
  qkv reshaped and sliced per head) is accepted exactly when it is a head split, and
  `wq` = the columns c of `Wq` (a strided `nn.slice` of the weight when c is not all
  of it but evenly spaced, else an `nn.gather`; likewise the bias).
- The merge after `a @ v` (shape ops only) is checked the same way and must be a
  bijection of the H*dv columns; the output projection's rows are reordered to match
  when it is not the standard order.
- Weights stay what they were (parameters stay parameters): the new op reads them
  directly, through a slice/gather for a fused projection, or through an
  `nn.transpose` when the graph stores them in `nn.linear`'s (out, in) layout (a
  transpose of a transpose is cancelled, a constant is folded).
- Biases: if q, k or v has one, the op takes all four, with zeros for the missing
  ones and the output projection's bias (or zeros); if none does, the op has no biases
  and an output bias stays an `nn.add` after it (as does a bias of another shape,
  e.g. CCT's (1, S, E) one).
- scale = the product of every scalar factor on q, k and the scores (a division by c
  counts as 1/c); for f64 graphs it must be exactly an f32 value (the op's `scale`).
- Every intermediate value is used only inside the pattern (the probabilities or the
  heads read elsewhere, e.g. returned, make it a near-miss that stays as it is).

Equivalence: the raised op computes the same function in exact arithmetic; in floats
it differs from the graph at most by rounding (bit for bit when the scale multiplies
the scores, as CCT does, and the splits keep the projection's column order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from edge_opt.dialects import nn
from edge_opt.ir.options import EdgeOptPass
from edge_opt.support import numerics
from edge_opt.support.dtypes import numpy_dtype, to_dense

_SHAPE_OPS = (
    nn.ReshapeOp, nn.TransposeOp, nn.SliceOp, nn.GatherOp, nn.SqueezeOp, nn.UnsqueezeOp,
)


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return value.type.get_shape()



def _scalar_factor(op: Operation) -> tuple[SSAValue, float] | None:
    """`(t, c)` if `op` is `t * c`, `c * t` or `t / c` (as `t * 1/c`) for a scalar
    constant `c` that does not change `t`'s shape."""
    if isinstance(op, nn.MulOp):
        for t, c in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
            factor = nn.constant_scalar(c)
            if factor is not None and _shape(t) == _shape(op.result):
                return t, factor
    if isinstance(op, nn.DivOp):
        factor = nn.constant_scalar(op.rhs)
        if factor and _shape(op.lhs) == _shape(op.result):
            return op.lhs, 1.0 / factor
    return None


def _zero_add(op: Operation) -> SSAValue | None:
    """`t` if `op` is `t + 0` with an all-zero constant that does not change `t`'s
    shape (a constant-folded attention bias of zero, as in TinyViT)."""
    if not isinstance(op, nn.AddOp):
        return None
    for t, c in ((op.lhs, op.rhs), (op.rhs, op.lhs)):
        array = nn.constant_array(c)
        if array is not None and not np.any(array) and _shape(t) == _shape(op.result):
            return t
    return None


# --------------------------------------------------------------------------------------
# Tracing: chains of shape ops, projections, index propagation
# --------------------------------------------------------------------------------------


@dataclass
class Chain:
    """Shape ops and scalar factors from `source` (forward order) to a value."""

    source: SSAValue
    ops: list[Operation] = field(default_factory=list)
    factor: float = 1.0

    def indices(self) -> np.ndarray:
        """Each element's flat index in `source`, moved through the chain's ops."""
        index = np.arange(math.prod(_shape(self.source)), dtype=np.int64)
        return propagate(index.reshape(_shape(self.source)), self.ops)


def propagate(index: np.ndarray, ops: Sequence[Operation]) -> np.ndarray:
    """`index` moved through shape ops (scalar factors leave it alone)."""
    for op in ops:
        if isinstance(op, nn.ReshapeOp | nn.SqueezeOp | nn.UnsqueezeOp):
            index = np.reshape(index, _shape(op.results[0]))
        elif isinstance(op, nn.TransposeOp):
            index = np.transpose(index, op.perm.get_values())
        elif isinstance(op, nn.SliceOp):
            index = numerics.slice_(
                index, op.starts.get_values(), op.ends.get_values(),
                op.steps.get_values(),
            )
        elif isinstance(op, nn.GatherOp):
            index = numerics.gather(index, op.indices.get_values(), op.axis.value.data)
    return index


def trace_back(value: SSAValue) -> Chain:
    """The shape ops and scalar factors `value` is made of, back to the first value
    that is made otherwise."""
    ops: list[Operation] = []
    factor = 1.0
    while isinstance(owner := value.owner, Operation):
        if isinstance(owner, _SHAPE_OPS):
            ops.append(owner)
            value = owner.operands[0]
            continue
        scaled = _scalar_factor(owner)
        if scaled is None:
            break
        ops.append(owner)
        value, factor = scaled[0], factor * scaled[1]
    ops.reverse()
    return Chain(value, ops, factor)


def trace_forward(value: SSAValue) -> tuple[SSAValue, list[Operation]]:
    """Follows `value` through single-use shape ops; returns the end and the ops."""
    ops: list[Operation] = []
    while (user := value.get_user_of_unique_use()) is not None and isinstance(
        user, nn.ReshapeOp | nn.TransposeOp | nn.SqueezeOp | nn.UnsqueezeOp
    ):
        ops.append(user)
        value = user.results[0]
    return value, ops


@dataclass
class Weight:
    """A weight operand as the graph has it: `value`, transposed ((out, in) storage)
    or not ((in, out), `x @ W`)."""

    value: SSAValue
    transposed: bool


@dataclass
class Projection:
    """`P = x @ W (+ bias)`, (B, S, F), and the ops computing it."""

    x: SSAValue
    weight: Weight
    bias: SSAValue | None
    ops: list[Operation]


def _matrix_shaped(value: SSAValue) -> bool:
    """A weight: rank 2, or leading axes of size 1 before the two (a matmul
    broadcasts them away)."""
    shape = _shape(value)
    return len(shape) >= 2 and all(d == 1 for d in shape[:-2])


def _bias_shaped(value: SSAValue, features: int) -> bool:
    shape = _shape(value)
    return bool(shape) and shape[-1] == features and all(d == 1 for d in shape[:-1])


def projection(value: SSAValue) -> Projection | None:
    """The projection computing `value` (see the module docstring), or None."""
    owner = value.owner
    ops: list[Operation] = []
    bias = None
    if isinstance(owner, nn.AddOp):
        for m, b in ((owner.lhs, owner.rhs), (owner.rhs, owner.lhs)):
            if (
                isinstance(m.owner, nn.MatmulOp | nn.LinearOp)
                and _shape(m) == _shape(value)
                and _bias_shaped(b, _shape(value)[-1])
            ):
                ops.append(owner)
                bias, owner = b, m.owner
                break
        else:
            return None
    if isinstance(owner, nn.MatmulOp):
        if owner.transpose_lhs is not None or not _matrix_shaped(owner.rhs):
            return None
        weight = Weight(owner.rhs, owner.transpose_rhs is not None)
        x = owner.lhs
    elif isinstance(owner, nn.LinearOp):
        if owner.bias is not None:
            if bias is not None:
                return None
            bias = owner.bias
        weight, x = Weight(owner.weight, True), owner.input
    else:
        return None
    if len(_shape(x)) != 3:
        return None
    ops.append(owner)
    return Projection(x, weight, bias, ops)


@dataclass
class Heads:
    """q, k or v of the pattern: its projection, the columns of the projection that
    make heads (column `h * d + j` of the op's operand is `columns[h * d + j]`)."""

    projection: Projection
    chain: Chain
    heads: int
    size: int
    columns: np.ndarray


def head_columns(
    chain: Chain, logical: np.ndarray, batch: int, tokens: int
) -> tuple[int, int, np.ndarray] | None:
    """`(H, d, columns)` if `logical` (the chain's indices in the head layout
    (B, H, S, d) or (B*H, S, d)) is a head split of the (B, S, F) source."""
    if logical.ndim == 3 and logical.shape[0] % batch == 0:
        logical = logical.reshape(batch, logical.shape[0] // batch, *logical.shape[1:])
    if logical.ndim != 4 or logical.shape[0] != batch or logical.shape[2] != tokens:
        return None
    b, s, c = np.unravel_index(logical, _shape(chain.source))
    if not (
        np.all(b == np.arange(batch)[:, None, None, None])
        and np.all(s == np.arange(tokens)[None, None, :, None])
        and np.all(c == c[:1, :, :1, :])
    ):
        return None
    heads, size = logical.shape[1], logical.shape[3]
    return heads, size, c[0, :, 0, :].reshape(-1)


def trace_heads(
    value: SSAValue, swap: bool, x: SSAValue | None
) -> Heads | None:
    """q, k or v from the operand `value` of an attention matmul (`swap`: the operand
    holds it with the last two axes swapped)."""
    chain = trace_back(value)
    proj = projection(chain.source)
    if proj is None or (x is not None and proj.x != x):
        return None
    batch, tokens, _ = _shape(proj.x)
    logical = chain.indices()
    if logical.ndim < 2:
        return None
    if swap:
        logical = np.swapaxes(logical, -1, -2)
    found = head_columns(chain, logical, batch, tokens)
    if found is None:
        return None
    heads, size, columns = found
    return Heads(proj, chain, heads, size, columns)


@dataclass
class Match:
    """A recognised attention: everything `raise_attention` needs to rewrite it."""

    q: Heads
    k: Heads
    v: Heads
    scale: float
    out_weight: Weight
    out_rows: np.ndarray | None
    """The rows of the output projection's (H*dv, E) weight in the op's head order, or
    None when it is already that order."""
    out_bias: SSAValue | None
    last: Operation
    ops: list[Operation]
    """Every op the attention replaces (including `last`), in block order."""

    @property
    def x(self) -> SSAValue:
        return self.q.projection.x


def _merge_rows(
    o: SSAValue, merged: np.ndarray, batch: int, heads: int, size: int
) -> np.ndarray | None:
    """For a head merge of `o` (B, H, S, dv) or (B*H, S, dv) whose indices ended up as
    `merged` (B, S, F): the permutation of the F columns into the standard order
    `h * dv + j`, or None if it is not a merge of every head."""
    shape = _shape(o)
    if merged.ndim != 3 or merged.shape[0] != batch or merged.shape[2] != heads * size:
        return None
    if len(shape) == 4:
        b, h, s, j = np.unravel_index(merged, shape)
    else:
        n, s, j = np.unravel_index(merged, shape)
        b, h = np.divmod(n, heads)
    column = h * size + j
    tokens = merged.shape[1]
    if not (
        np.all(b == np.arange(batch)[:, None, None])
        and np.all(s == np.arange(tokens)[None, :, None])
        and np.all(column == column[:1, :1, :])
        and sorted(column[0, 0].tolist()) == list(range(heads * size))
    ):
        return None
    return np.argsort(column[0, 0])


def _out_projection(
    value: SSAValue,
) -> tuple[Weight, SSAValue | None, Operation] | None:
    """`(weight, linear bias, op)` of the projection that is `value`'s only user."""
    user = value.get_user_of_unique_use()
    if (
        isinstance(user, nn.MatmulOp)
        and user.lhs == value
        and user.rhs != value
        and user.transpose_lhs is None
        and _matrix_shaped(user.rhs)
    ):
        return Weight(user.rhs, user.transpose_rhs is not None), None, user
    if isinstance(user, nn.LinearOp) and user.input == value and user.weight != value:
        return Weight(user.weight, True), user.bias, user
    return None


def match_attention(softmax: nn.SoftmaxOp) -> Match | None:
    """The attention around `softmax` (see the module docstring), or None."""
    rank = len(_shape(softmax.input))
    if rank not in (3, 4) or softmax.axis.value.data % rank != rank - 1:
        return None
    av = softmax.result.get_user_of_unique_use()
    if (
        not isinstance(av, nn.MatmulOp)
        or av.lhs != softmax.result
        or av.rhs == softmax.result
        or av.transpose_lhs is not None
    ):
        return None
    # The scores: scalar factors and zero additions back to the q @ k^T matmul.
    score_ops: list[Operation] = []
    scale = 1.0
    scores = softmax.input
    while True:
        owner = scores.owner
        if not isinstance(owner, Operation):
            return None
        scaled = _scalar_factor(owner)
        zero = _zero_add(owner)
        if scaled is not None:
            scores, scale = scaled[0], scale * scaled[1]
        elif zero is not None:
            scores = zero
        else:
            break
        score_ops.append(owner)
    qk = scores.owner
    if not isinstance(qk, nn.MatmulOp) or len(_shape(qk.result)) != rank:
        return None
    q = trace_heads(qk.lhs, qk.transpose_lhs is not None, None)
    if q is None:
        return None
    k = trace_heads(qk.rhs, qk.transpose_rhs is None, q.projection.x)
    v = trace_heads(av.rhs, av.transpose_rhs is not None, q.projection.x)
    if k is None or v is None or v.chain.factor != 1.0:
        return None  # (a factor on v would scale the output, not the scores)
    heads = q.heads
    if k.heads != heads or v.heads != heads or k.size != q.size:
        return None
    batch = _shape(q.projection.x)[0]
    # The merge and the output projection.
    merged, merge_ops = trace_forward(av.result)
    if len(_shape(merged)) != 3:
        return None
    index = np.arange(math.prod(_shape(av.result)), dtype=np.int64)
    rows = _merge_rows(
        av.result, propagate(index.reshape(_shape(av.result)), merge_ops), batch,
        heads, v.size,
    )
    out = _out_projection(merged)
    if rows is None or out is None:
        return None
    out_weight, out_bias, last = out
    if np.array_equal(rows, np.arange(len(rows))):
        out_rows = None
    else:
        out_rows = rows
    has_bias = any(h.projection.bias is not None for h in (q, k, v))
    ops: list[Operation] = [last]
    if has_bias and out_bias is None:
        add = last.results[0].get_user_of_unique_use()
        if isinstance(add, nn.AddOp):
            other = add.rhs if add.lhs == last.results[0] else add.lhs
            if _bias_shaped(other, _shape(last.results[0])[-1]) and _shape(
                add.result
            ) == _shape(last.results[0]):
                out_bias, last = other, add
                ops.append(add)
    scale *= q.chain.factor * k.chain.factor
    element = numpy_dtype(_element(q.projection.x))
    if element == np.float64 and float(np.float32(scale)) != scale:
        return None
    ops += [softmax, av, qk, *score_ops, *merge_ops]
    for h in (q, k, v):
        ops += h.chain.ops + h.projection.ops
    unique = list(dict.fromkeys(ops))
    inside = set(unique)
    for op in unique:
        if op is last:
            continue
        for result in op.results:
            if any(use.operation not in inside for use in result.uses):
                return None  # an intermediate value is read elsewhere
    block = softmax.parent_block()
    assert block is not None
    order = {op: i for i, op in enumerate(block.ops)}
    unique.sort(key=lambda op: order[op])
    return Match(q, k, v, scale, out_weight, out_rows, out_bias, last, unique)


def _element(value: SSAValue):
    assert isinstance(value.type, TensorType)
    return value.type.element_type


# --------------------------------------------------------------------------------------
# Rewriting
# --------------------------------------------------------------------------------------


class Emitter:
    def __init__(self, base: str | None):
        self.ops: list[Operation] = []
        self.base = base or "attention"

    def __call__(self, op: Operation, name: str) -> SSAValue:
        self.ops.append(op)
        op.results[0].name_hint = f"{self.base}_{name}"
        return op.results[0]

    def constant(self, array: np.ndarray, element, name: str) -> SSAValue:
        return self(nn.ConstantOp(to_dense(array, TensorType(element, array.shape))), name)


def _select(
    emit: Emitter, value: SSAValue, indices: np.ndarray | None, axis: int, name: str
) -> SSAValue:
    """`value` restricted to `indices` along `axis`: itself, a slice (an increasing
    arithmetic run, e.g. every third column of a fused projection) or a gather."""
    size = _shape(value)[axis]
    if indices is None or np.array_equal(indices, np.arange(size)):
        return value
    start = int(indices[0])
    step = int(indices[1] - indices[0]) if len(indices) > 1 else 1
    if step > 0 and np.array_equal(
        indices, np.arange(start, start + step * len(indices), step)
    ):
        shape = _shape(value)
        end = int(indices[-1]) + 1
        starts = [start if a == axis else 0 for a in range(len(shape))]
        ends = [end if a == axis else d for a, d in enumerate(shape)]
        steps = [step if a == axis else 1 for a in range(len(shape))]
        return emit(nn.SliceOp(value, starts, ends, steps), name)
    return emit(nn.GatherOp(value, [int(i) for i in indices], axis), name)


def _weight(
    emit: Emitter, weight: Weight, indices: np.ndarray | None, axis: int, name: str
) -> SSAValue:
    """The (in, out) weight of the op: the graph's weight (in its `x @ W` form) with
    only `indices` along `axis` (1: columns, 0: rows). A constant is folded; a
    transposed weight is transposed back (cancelling a transpose of a transpose)."""
    value, transposed = weight.value, weight.transposed
    matrix = _shape(value)[-2:]
    array = nn.constant_array(value)
    if array is not None and (
        transposed or indices is not None or len(_shape(value)) > 2
    ):
        array = array.reshape(matrix)
        array = array.T if transposed else array
        if indices is not None:
            array = np.take(array, indices, axis=axis)
        return emit.constant(np.ascontiguousarray(array), _element(value), name)
    if len(_shape(value)) > 2:
        value = emit(nn.ReshapeOp(value, matrix), f"{name}_matrix")
    owner = value.owner
    if transposed and isinstance(owner, nn.TransposeOp) and owner.perm.get_values() == (1, 0):
        value, transposed = owner.input, False
    if not transposed:
        return _select(emit, value, indices, axis, name)
    selected = _select(emit, value, indices, 1 - axis, f"{name}_t")
    return emit(nn.TransposeOp(selected, (1, 0)), name)


def _bias(
    emit: Emitter, bias: SSAValue, indices: np.ndarray | None, name: str
) -> SSAValue:
    features = _shape(bias)[-1]
    if _shape(bias) != (features,):
        bias = emit(nn.ReshapeOp(bias, (features,)), f"{name}_flat")
    return _select(emit, bias, indices, 0, name)


def rewrite(match: Match, rewriter: PatternRewriter) -> None:
    hint = match.last.results[0].name_hint
    emit = Emitter(hint)
    weights = [
        _weight(emit, h.projection.weight, h.columns, 1, name)
        for h, name in ((match.q, "wq"), (match.k, "wk"), (match.v, "wv"))
    ]
    wo = _weight(emit, match.out_weight, match.out_rows, 0, "wo")
    element = _element(match.x)
    dtype = numpy_dtype(element)
    after_bias = None
    biases = None
    heads = [match.q, match.k, match.v]
    if any(h.projection.bias is not None for h in heads):
        biases = []
        for h, name in zip(heads, ("bq", "bk", "bv"), strict=True):
            if h.projection.bias is None:
                biases.append(emit.constant(np.zeros(len(h.columns), dtype), element, name))
            else:
                biases.append(_bias(emit, h.projection.bias, h.columns, name))
        out = _shape(wo)[1]
        biases.append(
            emit.constant(np.zeros(out, dtype), element, "bo")
            if match.out_bias is None
            else _bias(emit, match.out_bias, None, "bo")
        )
    elif match.out_bias is not None:
        after_bias = match.out_bias  # a linear's bias, without biases in the op
    attention = nn.AttentionOp(
        match.x, *weights, wo, biases, heads=match.q.heads, scale=match.scale
    )
    emit.ops.append(attention)
    result = attention.result
    result.name_hint = hint
    if after_bias is not None:
        attention.result.name_hint = f"{emit.base}_unbiased"
        result = emit(nn.AddOp(attention.result, _bias(emit, after_bias, None, "bo")),
                      "out")
        result.name_hint = hint
    operands = {o for op in match.ops for o in op.operands}
    rewriter.replace(match.last, emit.ops, [result])
    for op in reversed(match.ops):
        if op is not match.last:
            rewriter.erase(op)
    for value in operands:
        _erase_if_dead(value, rewriter)


def _erase_if_dead(value: SSAValue, rewriter: PatternRewriter) -> None:
    """Erases the constant or weight-only shape op that made `value`, if nothing reads
    it any more (the scale constants, a transpose the rewrite cancelled)."""
    owner = value.owner
    if (
        isinstance(owner, nn.ConstantOp | nn.TransposeOp | nn.ReshapeOp)
        and owner.parent is not None
        and not any(r.uses for r in owner.results)
    ):
        operands = list(owner.operands)
        rewriter.erase(owner)
        for operand in operands:
            _erase_if_dead(operand, rewriter)


class RaiseAttention(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.SoftmaxOp, rewriter: PatternRewriter) -> None:
        match = match_attention(op)
        if match is None:
            return
        rewrite(match, rewriter)


def raise_attention(module: ModuleOp) -> None:
    PatternRewriteWalker(RaiseAttention(), apply_recursively=False).rewrite_module(module)


@dataclass(frozen=True)
class RaiseAttentionPass(EdgeOptPass):
    """Raises exporter-written multi-head self-attention to `nn.attention` (see the
    module docstring)."""

    name = "raise-attention"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        raise_attention(op)
