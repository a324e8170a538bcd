"""`fuse-attention-weights`: fused-weight self-attention (precomputed Wq·Wkᵀ and Wv·Wo
per head) for `nn.attention` ops whose projections are frozen, where that saves work.

With head h's slices Wq_h, Wk_h (D, dk), Wv_h (D, dv) of the columns and Wo_h (dv, E)
of the rows (column h·dk + j is element j of head h, as in `nn.attention`):

- QK: scores_h / scale = (X Wq_h + bq_h)(X Wk_h + bk_h)ᵀ
                       = X Wq_h Wk_hᵀ Xᵀ + (X Wq_h bk_h)·1ᵀ + 1·(Wk_h bq_h)ᵀ Xᵀ + bq_h·bk_h.
  The second and fourth terms are constant along each row (over the keys), which the
  softmax ignores, so scores_h ≡ (X M_h + u_hᵀ) Xᵀ with M_h = scale·Wq_h Wk_hᵀ (D, D)
  and u_h = scale·Wk_h bq_h (D); bk disappears. (The scale is folded into M and u,
  which saves the S×S multiplication.)
- VO: y = Σ_h a_h X N_h + bo' with N_h = Wv_h Wo_h (D, E) and bo' = bo + Σ_h bv_h Wo_h
  (the rows of a_h sum to 1).

A side is fused only when all of its operands (wq, wk [, bq, bk]; wv, wo [, bv, bo])
are read from frozen `nn.param`s with values (directly, or through data-movement ops
such as the transpose or slice `raise-attention` puts on an (out, in) or fused qkv
weight; constants count as frozen): nothing that trains is ever folded into a product.
Each side is then decided on its own, by this cost (MACs of the matrix products;
element-wise work such as bias adds is left out; params of the weights and biases):

    QK  unfused  MACs 2·B·S·D·H·dk + B·H·S²·dk    params 2·D·H·dk   (+ 2·H·dk)
        fused    MACs B·H·S·D² + B·H·S²·D         params H·D²       (+ H·D for u)
    VO  unfused  MACs B·S·D·H·dv + B·H·S²·dv + B·S·H·dv·E
                                                  params D·H·dv + H·dv·E (+ H·dv + E)
        fused    MACs B·H·S·D·E + B·H·S²·E        params H·D·E      (+ E)

Option `objective`: `both` (default) fuses a side when it lowers its MACs or its params
and raises neither; `macs` / `params` when it lowers that one. Fusion pays in MACs
only when dk (dv) is close to D: with dk = D/H, the usual choice, only H = 1 gains
(CCT2, S=64 D=128 H=2 dk=64: equal params and 20 % more MACs on each side, so it stays
as it is). On either side fewer MACs imply fewer params (QK has fewer params iff
D < 2·dk, and D >= 2·dk gives no fewer MACs; VO likewise), so `both` fuses what `macs`
fuses (and MAC ties that save params); only `params` trades MACs for memory.

A fused op becomes primitive `nn` ops (autodiff, bufferize and C need nothing new):

    %x_heads = nn.reshape %x -> (B, 1, S, D)
    %qm      = nn.matmul %x_heads, %M                 (B, H, S, D)  [+ nn.add %u (H, 1, D)]
    %scores  = nn.matmul %q, %x_heads {transpose_rhs} (B, H, S, S)
    %probs   = nn.softmax %scores
    %xv      = nn.matmul %x_heads, %N                 (B, H, S, E)
    %oh      = nn.matmul %probs, %xv                  (B, H, S, E)
    %y       = nn.reduce_sum %oh {axes = [1]}         (B, S, E)     [+ nn.add %bo']
                                                       (for H = 1 an nn.reshape)

and an unfused side is written as `lower-attention` writes it. The new parameters are
frozen, with inline values computed in float64 and rounded once to their type, named
`@<wq>__qk_fused`, `@<bq>__qk_fused` (u), `@<wv>__vo_fused`, `@<bo>__vo_fused` (bo')
after the parameter behind the operand; originals nothing reads any more are erased.
An op with neither side fused is left alone (its gradient rule keeps less for backward).

The decisions are printed to stderr, one line per op, and recorded on the module as
`edge_opt.attention_fusion` (one dictionary per op and side), which `edge-opt report`
shows as its `attention_fusion` section.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    BoolAttr,
    DictionaryAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    i64,
)
from xdsl.ir import Attribute, SSAValue
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.ir.attention import (
    Emitter,
    merge_heads,
    scale_constant,
    split_heads,
)
from edge_opt.ir.options import EdgeOptPass
from edge_opt.ir.report import ATTENTION_FUSION_ATTR
from edge_opt.passes.frozen_params import (
    FrozenParams,
    FrozenValues,
    NotFrozen,
    erase_dead,
    erase_unreferenced,
    root_param,
)

Objective = Literal["both", "macs", "params"]

# --------------------------------------------------------------------------------------
# The cost model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartCost:
    """MACs and parameters of one side (QK or VO) of an attention, unfused and fused."""

    macs_unfused: int
    macs_fused: int
    params_unfused: int
    params_fused: int

    def pays(self, objective: Objective) -> bool:
        fewer_macs = self.macs_fused < self.macs_unfused
        fewer_params = self.params_fused < self.params_unfused
        if objective == "macs":
            return fewer_macs
        if objective == "params":
            return fewer_params
        no_more = (self.macs_fused <= self.macs_unfused
                   and self.params_fused <= self.params_unfused)
        return no_more and (fewer_macs or fewer_params)

    def verdict(self, objective: Objective) -> str:
        """Why `pays` says what it says, in a few words."""
        changes = [
            f"{'fewer' if fused < unfused else 'more' if fused > unfused else 'equal'} "
            f"{what}"
            for what, unfused, fused in (
                ("MACs", self.macs_unfused, self.macs_fused),
                ("params", self.params_unfused, self.params_fused),
            )
            if objective in ("both", what.lower())
        ]
        return ", ".join(changes)


@dataclass(frozen=True)
class AttentionFusionCost:
    qk: PartCost
    vo: PartCost


def attention_fusion_cost(
    b: int, s: int, d: int, h: int, dk: int, dv: int, e: int, biases: bool
) -> AttentionFusionCost:
    """The cost formula of the module docstring."""
    return AttentionFusionCost(
        qk=PartCost(
            macs_unfused=2 * b * s * d * h * dk + b * h * s * s * dk,
            macs_fused=b * h * s * d * d + b * h * s * s * d,
            params_unfused=2 * d * h * dk + (2 * h * dk if biases else 0),
            params_fused=h * d * d + (h * d if biases else 0),
        ),
        vo=PartCost(
            macs_unfused=b * s * d * h * dv + b * h * s * s * dv + b * s * h * dv * e,
            macs_fused=b * h * s * d * e + b * h * s * s * e,
            params_unfused=d * h * dv + h * dv * e + (h * dv + e if biases else 0),
            params_fused=h * d * e + (e if biases else 0),
        ),
    )


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return value.type.get_shape()


def fusion_cost(op: nn.AttentionOp) -> AttentionFusionCost:
    """The cost formula for `op`'s shapes."""
    b, s, d = _shape(op.x)
    dk, dv = op.head_sizes
    return attention_fusion_cost(
        b, s, d, op.heads.value.data, dk, dv, _shape(op.wo)[1], op.biases is not None
    )


# --------------------------------------------------------------------------------------
# Frozen operands and the fused values
# --------------------------------------------------------------------------------------


def fused_qk(wq: np.ndarray, wk: np.ndarray, bq: np.ndarray | None, heads: int,
             scale: float) -> tuple[np.ndarray, np.ndarray | None]:
    """M (H, D, D) = scale·Wq_h Wk_hᵀ and u (H, 1, D) = scale·Wk_h bq_h, in float64."""
    d = wq.shape[0]
    q = wq.astype(np.float64).reshape(d, heads, -1).transpose(1, 0, 2)  # (H, D, dk)
    k = wk.astype(np.float64).reshape(d, heads, -1).transpose(1, 0, 2)
    m = scale * (q @ k.transpose(0, 2, 1))
    if bq is None:
        return m, None
    u = scale * (k @ bq.astype(np.float64).reshape(heads, -1, 1))  # (H, D, 1)
    return m, u.transpose(0, 2, 1)


def fused_vo(wv: np.ndarray, wo: np.ndarray, bv: np.ndarray | None,
             bo: np.ndarray | None, heads: int) -> tuple[np.ndarray, np.ndarray | None]:
    """N (H, D, E) = Wv_h Wo_h and bo' (E) = bo + Σ_h bv_h Wo_h, in float64."""
    d, e = wv.shape[0], wo.shape[1]
    v = wv.astype(np.float64).reshape(d, heads, -1).transpose(1, 0, 2)  # (H, D, dv)
    o = wo.astype(np.float64).reshape(heads, -1, e)  # (H, dv, E)
    n = v @ o
    if bv is None or bo is None:
        return n, None
    return n, bo.astype(np.float64) + bv.astype(np.float64) @ wo.astype(np.float64)


# --------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------

_OPERANDS = {"qk": ("wq", "wk", "bq", "bk"), "vo": ("wv", "wo", "bv", "bo")}


@dataclass
class Decision:
    """What the pass decided for one side of one `nn.attention`."""

    op: str
    function: str
    part: Literal["qk", "vo"]
    cost: PartCost
    objective: Objective
    fused: bool
    reason: str

    def attribute(self) -> DictionaryAttr:
        fields: dict[str, Attribute] = {
            "op": StringAttr(self.op),
            "function": StringAttr(self.function),
            "part": StringAttr(self.part),
            "objective": StringAttr(self.objective),
        }
        for key, number in vars(self.cost).items():
            fields[key] = IntegerAttr(number, i64)
        fields["fused"] = BoolAttr.from_bool(self.fused)
        fields["reason"] = StringAttr(self.reason)
        return DictionaryAttr(fields)


def _decide(op: nn.AttentionOp, part: Literal["qk", "vo"], cost: PartCost,
            objective: Objective, values: FrozenValues, label: tuple[str, str]
            ) -> tuple[Decision, list[np.ndarray | None]]:
    """The decision for one side, and its operands' values when it is fused."""
    operands = [getattr(op, name) for name in _OPERANDS[part]]
    arrays: list[np.ndarray | None] = []
    try:
        for name, value in zip(_OPERANDS[part], operands, strict=True):
            arrays.append(None if value is None else values(value, name))
    except NotFrozen as e:
        return Decision(*label, part, cost, objective, False, str(e)), []
    fused = cost.pays(objective)
    return Decision(*label, part, cost, objective, fused, cost.verdict(objective)), arrays


def format_decisions(op: nn.AttentionOp, decisions: list[Decision]) -> str:
    """One line: the op, its shape, and per side both costs and the decision."""
    b, s, d = _shape(op.x)
    dk, dv = op.head_sizes
    first = decisions[0]
    sides = "; ".join(
        f"{x.part.upper()} MACs {x.cost.macs_unfused:,} -> {x.cost.macs_fused:,}, "
        f"params {x.cost.params_unfused:,} -> {x.cost.params_fused:,}: "
        f"{'fused' if x.fused else 'kept'} ({x.reason})"
        for x in decisions
    )
    return (
        f"fuse-attention-weights: %{first.op} in @{first.function} (B={b} S={s} D={d} "
        f"H={op.heads.value.data} dk={dk} dv={dv} E={_shape(op.wo)[1]}, objective "
        f"{first.objective}): {sides}\n"
    )


# --------------------------------------------------------------------------------------
# The rewrite
# --------------------------------------------------------------------------------------


class _Params(FrozenParams):
    """Declares the fused parameters (frozen, inline values, unique names)."""

    def load(self, emit: Emitter, op: nn.AttentionOp, operand: str, part: str,
             array: np.ndarray) -> SSAValue:
        """Declares `array` (rounded to the type of `op`'s `operand`) as
        `@<P>__<part>_fused` after the parameter P that operand is read from (`_2`, ...
        if taken; `<op>_<operand>` for P if it is not read from one), and loads it."""
        like = getattr(op, operand)
        assert isinstance(like.type, TensorType)
        root = root_param(like)
        owner = root or f"{op.result.name_hint or 'attention'}_{operand}"
        name, type = self.declare(f"{owner}__{part}_fused", array,
                                  like.type.element_type, root)
        load = nn.LoadOp(name, type)
        emit.ops.append(load)
        load.result.name_hint = name
        return load.result


def _emit_qk(emit: Emitter, op: nn.AttentionOp, x_heads: SSAValue, arrays: list,
             params: _Params) -> SSAValue:
    """The scaled scores (B, H, S, S), fused when `arrays` holds the operands' values."""
    heads = op.heads.value.data
    scale = op.scale.value.data
    if not arrays:
        bq, bk, _, _ = op.biases or (None,) * 4
        q = split_heads(emit, _project(emit, op, op.wq, bq, "q"), heads, "qh")
        k = split_heads(emit, _project(emit, op, op.wk, bk, "k"), heads, "kh")
        scores = emit(nn.MatmulOp(q, k, transpose_rhs=True), "scores")
        return emit(nn.MulOp(scores, scale_constant(emit, scale, scores)), "scaled")
    wq, wk, bq, _ = arrays
    m, u = fused_qk(wq, wk, bq, heads, scale)
    fused_m = params.load(emit, op, "wq", "qk", m)
    q = emit(nn.MatmulOp(x_heads, fused_m), "q" if u is None else "qm")
    if u is not None:
        fused_u = params.load(emit, op, "bq", "qk", u)
        q = emit(nn.AddOp(q, fused_u), "q")
    return emit(nn.MatmulOp(q, x_heads, transpose_rhs=True), "scores")


def _project(emit: Emitter, op: nn.AttentionOp, w: SSAValue, b: SSAValue | None,
             name: str) -> SSAValue:
    y = emit(nn.MatmulOp(op.x, w), name if b is None else f"{name}_proj")
    return y if b is None else emit(nn.AddOp(y, b), name)


def _emit_vo(emit: Emitter, op: nn.AttentionOp, x_heads: SSAValue, probs: SSAValue,
             arrays: list, params: _Params) -> SSAValue:
    """The result (B, S, E) from the probabilities, fused when `arrays` holds values."""
    heads = op.heads.value.data
    if not arrays:
        _, _, bv, bo = op.biases or (None,) * 4
        v = split_heads(emit, _project(emit, op, op.wv, bv, "v"), heads, "vh")
        o = merge_heads(emit, emit(nn.MatmulOp(probs, v), "oh"), "o")
        y = emit(nn.MatmulOp(o, op.wo), None if bo is None else "out_proj")
        return y if bo is None else emit(nn.AddOp(y, bo))
    wv, wo, bv, bo = arrays
    n, bias = fused_vo(wv, wo, bv, bo, heads)
    fused_n = params.load(emit, op, "wv", "vo", n)
    xv = emit(nn.MatmulOp(x_heads, fused_n), "xv")
    oh = emit(nn.MatmulOp(probs, xv), "oh")
    b, s, e = _shape(op.result)
    # The sum over one head is a reshape (free).
    merged = nn.ReduceSumOp(oh, [1]) if heads > 1 else nn.ReshapeOp(oh, (b, s, e))
    y = emit(merged, None if bias is None else "out_proj")
    if bias is None:
        return y
    fused_b = params.load(emit, op, "bo", "vo", bias)
    return emit(nn.AddOp(y, fused_b))


def fuse(op: nn.AttentionOp, qk: list, vo: list, params: _Params) -> None:
    """Replaces `op` by its fused form: QK fused if `qk` holds its operands' values,
    VO likewise (at least one of them does)."""
    emit = Emitter(op.result.name_hint)
    b, s, d = _shape(op.x)
    x_heads = emit(nn.ReshapeOp(op.x, (b, 1, s, d)), "x_heads")
    scores = _emit_qk(emit, op, x_heads, qk, params)
    probs = emit(nn.SoftmaxOp(scores, -1), "probs")
    y = _emit_vo(emit, op, x_heads, probs, vo, params)
    y.name_hint = op.result.name_hint
    Rewriter.replace_op(op, emit.ops, [y])


def fuse_attention_weights(module: ModuleOp, objective: Objective = "both"
                           ) -> list[Decision]:
    """Decides and applies the fusions of every `nn.attention` of `module` (see the
    module docstring); prints and records the decisions, and returns them."""
    values, params = FrozenValues(module), _Params(module)
    decisions: list[Decision] = []
    originals: list[SSAValue] = []
    attentions = [op for op in module.walk() if isinstance(op, nn.AttentionOp)]
    for i, op in enumerate(attentions):
        function = op.parent_op()
        label = (
            op.result.name_hint or f"attention{i}",
            function.sym_name.data if isinstance(function, func.FuncOp) else "?",
        )
        cost = fusion_cost(op)
        qk, qk_arrays = _decide(op, "qk", cost.qk, objective, values, label)
        vo, vo_arrays = _decide(op, "vo", cost.vo, objective, values, label)
        decisions += [qk, vo]
        print(format_decisions(op, [qk, vo]), file=sys.stderr, end="")
        if qk.fused or vo.fused:
            originals += op.operands[1:]
            fuse(op, qk_arrays if qk.fused else [], vo_arrays if vo.fused else [],
                 params)
    roots = {name for v in originals if (name := root_param(v)) is not None}
    erase_dead(originals)
    erase_unreferenced(module, roots)
    if decisions:
        old = module.attributes.get(ATTENTION_FUSION_ATTR)
        kept = list(old.data) if isinstance(old, ArrayAttr) else []
        module.attributes[ATTENTION_FUSION_ATTR] = ArrayAttr(
            kept + [d.attribute() for d in decisions]
        )
    return decisions


@dataclass(frozen=True)
class FuseAttentionWeightsPass(EdgeOptPass):
    """Precomputes Wq·Wkᵀ and Wv·Wo per head of `nn.attention`s with frozen projections
    where the cost formula says it pays (see the module docstring).

    Option `objective` (`both`, `macs`, `params`; default `both`): fuse a side when it
    lowers MACs or params and raises neither, or when it lowers that one."""

    name = "fuse-attention-weights"

    objective: Objective = "both"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.objective not in get_args(Objective):
            raise PassFailedException(
                f"fuse-attention-weights: objective must be one of "
                f"{', '.join(get_args(Objective))}, got '{self.objective}'"
            )
        fuse_attention_weights(op, self.objective)
