"""`nn.attention`, `raise-attention` and `lower-attention`.

- `raise-attention` on exporter-style graphs built here with the `nn` builders, drawn by
  hypothesis: random B, S, D, heads, query/key and value head sizes; no biases, all
  four, or some (then zeros for the others); the scale as a multiplication or a
  division by a constant on the scores, on q, on k or split between q and k; weights
  in `x @ W`, transposed-matmul or `nn.linear` layout; k split straight into k^T (CCT)
  or transposed by the matmul; heads kept apart (B, H, S, d) or folded into the batch
  (B*H, S, d); separate projections (CCT), one fused projection split per head by
  slices (TinyViT) or split into q, k, v first and then into heads (timm); a
  constant-folded zero attention bias; the standard merge or one that interleaves the
  heads (the output projection's rows are then reordered). Each must raise to exactly
  one `nn.attention` and keep `@forward` (interpretation, `assert_pass_preserves_semantics`)
  and the training step: `autodiff` of the raised graph (the attention gradient rule,
  recomputing q, k, v and the probabilities) against `autodiff` of the graph as
  exported (float64 gradients and loss).
- Near misses (a mask, the wrong softmax axis, cross-attention, a split that mixes
  tokens, a scale on v, probabilities read elsewhere, ...) are left alone.
- `lower-attention` on random models with attention (`random_models`): bit for bit on
  `@forward`; training steps with `nn.attention` against the lowered graph's; and
  `bufferize` (which lowers first) down to planned buffers.
- The imported Deeploy models: CCT (1 block, 2 blocks, both CCT2 training fixtures) and
  TinyViT raise every block (1, 2, 2, 4), same outputs; the LoRA fixture (adapted
  projections) raises none.
- The gradient rule keeps only the op's inputs across the forward/backward gap: no
  S x S value of the forward is read by the backward.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp, TensorType, UnitAttr
from xdsl.ir import Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import kernel, nn, train
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir.attention import lower
from edge_opt.ir.cost import flops
from edge_opt.ir.session import Session, get_function
from edge_opt.passes.lower_attention import LowerAttentionPass
from edge_opt.passes.raise_attention import RaiseAttentionPass
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.testing import (
    ForwardBuilder,
    RandomModel,
    apply_passes,
    assert_pass_preserves_semantics,
    random_inputs,
    random_models,
)

PROPERTY = settings(max_examples=60)


def count(module: ModuleOp, op_type: type[Operation]) -> int:
    return sum(1 for op in module.walk() if isinstance(op, op_type))


# --------------------------------------------------------------------------------------
# Exporter-style attention graphs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """How an exporter wrote one self-attention block (see the module docstring)."""

    batch: int = 2
    tokens: int = 3
    features: int = 4
    heads: int = 2
    dk: int = 2
    dv: int = 2
    out: int = 4
    bias: Literal["none", "all", "some"] = "none"
    out_bias: bool = False
    scale_on: Literal["scores", "q", "k", "qk"] = "scores"
    scale_op: Literal["mul", "div"] = "mul"
    scale: float = 0.5
    layout: Literal["matmul", "matmul_t", "linear"] = "matmul"
    qkv: Literal["separate", "fused_heads", "fused_qkv"] = "separate"
    key: Literal["kT", "transpose_rhs"] = "kT"
    folded: bool = False
    zero_bias: bool = False
    merge: Literal["standard", "interleaved"] = "standard"
    # Near misses (each alone must stop the raise).
    near_miss: str | None = None


NEAR_MISSES = [
    "mask",  # a non-zero constant added to the scores
    "softmax_axis",  # softmax over the queries
    "vector_scale",  # the scores scaled per head, not by a scalar
    "cross",  # k and v from another input
    "probabilities_used",  # the probabilities are also returned
    "mixing_split",  # q reshaped to heads without the transpose: mixes tokens
    "mixing_merge",  # the output reshaped without the transpose
    "scale_on_v",  # v scaled: scales the output, not the scores
    "bias_after_scale",  # (x @ Wq) * c + bq: the bias is not scaled
    "no_out_projection",  # the merged heads are the result
]


class Graph(ForwardBuilder):
    """`@forward` built op by op with random inline parameters (`g(op)` appends an op;
    a parameter's fan-in is its first axis)."""

    def __init__(self, seed: int, dtype, *input_shapes: Sequence[int]):
        super().__init__(*input_shapes, seed=seed, dtype=dtype)

    def __call__(self, op: Operation) -> SSAValue:
        return self.op(op)

    def fan_in(self, shape: Sequence[int]) -> int:
        return shape[0] if len(shape) > 1 else 1

    def param(self, name: str, shape: Sequence[int], std: float = 1.0) -> SSAValue:
        return super().param(name, shape, std=std)


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return value.type.get_shape()


def _project(g: Graph, x: SSAValue, name: str, out: int, layout: str,
             bias: bool) -> SSAValue:
    """x @ W (+ b) in one of the exporters' weight layouts."""
    features = _shape(x)[-1]
    if layout == "linear":
        b = g.param(f"{name}_b", (out,), 0.3) if bias else None
        return g(nn.LinearOp(x, g.param(f"{name}_w", (out, features)), b))
    if layout == "matmul_t":
        y = g(nn.MatmulOp(x, g.param(f"{name}_w", (out, features)), transpose_rhs=True))
    else:
        y = g(nn.MatmulOp(x, g.param(f"{name}_w", (features, out))))
    if bias:
        y = g(nn.AddOp(g.param(f"{name}_b", (out,), 0.3), y))
    return y


def _heads(g: Graph, p: SSAValue, s: Style, transposed: bool, mixing: bool = False
           ) -> SSAValue:
    """(B, S, H*d) -> (B, H, S, d), or (B, H, d, S) when `transposed`."""
    b, n, f = _shape(p)
    split = g(nn.ReshapeOp(p, (b, n, s.heads, f // s.heads)))
    if mixing:
        return g(nn.ReshapeOp(split, (b, s.heads, n, f // s.heads)))
    return g(nn.TransposeOp(split, (0, 2, 3, 1) if transposed else (0, 2, 1, 3)))


def _fold(g: Graph, t: SSAValue, s: Style) -> SSAValue:
    """(B, H, a, b) -> (B*H, a, b) when the style folds heads into the batch."""
    if not s.folded:
        return t
    b, h, m, n = _shape(t)
    return g(nn.ReshapeOp(t, (b * h, m, n)))


def _scale(g: Graph, t: SSAValue, s: Style, factor: float) -> SSAValue:
    """`t * factor` as the style writes it (a division by 1/factor, or a product with
    the constant on either side)."""
    if s.scale_op == "div":
        return g(nn.DivOp(t, g.constant(1.0 / factor)))
    return g(nn.MulOp(g.constant(factor), t) if s.heads % 2 else nn.MulOp(t, g.constant(factor)))


def _qkv(g: Graph, x: SSAValue, s: Style) -> tuple[SSAValue, SSAValue, SSAValue]:
    """q (B, H, S, dk), k as the scores matmul wants it, v (B, H, S, dv)."""
    biased = {"none": (False,) * 3, "all": (True,) * 3, "some": (True, False, True)}[
        s.bias
    ]
    k_transposed = s.key == "kT"
    if s.qkv == "separate":
        q_p = _project(g, x, "q", s.heads * s.dk, s.layout, biased[0])
        if s.near_miss == "bias_after_scale":
            q_p = g(nn.MulOp(g(nn.MatmulOp(x, g.param("q2_w", (s.features, s.heads * s.dk)))),
                             g.constant(0.5)))
            q_p = g(nn.AddOp(q_p, g.param("q2_b", (s.heads * s.dk,), 0.3)))
        source = x if s.near_miss != "cross" else g.block.args[1]
        k_p = _project(g, source, "k", s.heads * s.dk, s.layout, biased[1])
        v_p = _project(g, source, "v", s.heads * s.dv, s.layout, biased[2])
        q = _heads(g, q_p, s, False, s.near_miss == "mixing_split")
        k = _heads(g, k_p, s, k_transposed)
        v = _heads(g, v_p, s, False)
        return q, k, v
    width = s.heads * (2 * s.dk + s.dv)
    p = _project(g, x, "qkv", width, s.layout, s.bias != "none")
    b, n, _ = _shape(p)
    if s.qkv == "fused_heads":  # TinyViT: (B, S, H, 2dk + dv), sliced per head
        split = g(nn.ReshapeOp(p, (b, n, s.heads, 2 * s.dk + s.dv)))
        bounds = (0, s.dk, 2 * s.dk, 2 * s.dk + s.dv)
        parts = [
            g(nn.SliceOp(split, (0, 0, 0, lo), (b, n, s.heads, hi)))
            for lo, hi in itertools.pairwise(bounds)
        ]
        q = g(nn.TransposeOp(parts[0], (0, 2, 1, 3)))
        k = g(nn.TransposeOp(parts[1], (0, 2, 3, 1) if k_transposed else (0, 2, 1, 3)))
        v = g(nn.TransposeOp(parts[2], (0, 2, 1, 3)))
        return q, k, v
    # timm: (B, S, 3, H, d) -> (3, B, H, S, d), then q, k, v by index (dk = dv)
    split = g(nn.ReshapeOp(p, (b, n, 3, s.heads, s.dk)))
    moved = g(nn.TransposeOp(split, (2, 0, 3, 1, 4)))
    q, k, v = (g(nn.SqueezeOp(g(nn.GatherOp(moved, [i], 0)), (0,))) for i in range(3))
    if k_transposed:
        k = g(nn.TransposeOp(k, (0, 1, 3, 2)))
    return q, k, v


def exporter_attention(s: Style, seed: int = 0, dtype=np.float32) -> ModuleOp:
    """One self-attention block written the way `s` says, as `@forward(x) -> y`."""
    shapes = [(s.batch, s.tokens, s.features)]
    if s.near_miss == "cross":
        shapes.append((s.batch, s.tokens, s.features))
    g = Graph(seed, dtype, *shapes)
    x = g.block.args[0]
    q, k, v = _qkv(g, x, s)
    factor = s.scale
    if s.scale_on in ("q", "qk"):
        q = _scale(g, q, s, factor if s.scale_on == "q" else math.sqrt(factor))
    if s.scale_on in ("k", "qk"):
        k = _scale(g, k, s, factor if s.scale_on == "k" else math.sqrt(factor))
    if s.near_miss == "scale_on_v":
        v = _scale(g, v, s, 0.5)
    q, k, v = _fold(g, q, s), _fold(g, k, s), _fold(g, v, s)
    scores = g(nn.MatmulOp(q, k, transpose_rhs=s.key == "transpose_rhs"))
    if s.scale_on == "scores":
        scores = _scale(g, scores, s, factor)
    if s.zero_bias:
        zeros = np.zeros((s.heads, 1, 1) if not s.folded else (1, 1), g.dtype)
        scores = g(nn.AddOp(scores, g.constant(zeros)))
    if s.near_miss == "mask":
        mask = np.triu(np.full((s.tokens, s.tokens), -3.0), 1)
        scores = g(nn.AddOp(scores, g.constant(mask)))
    if s.near_miss == "vector_scale":
        scores = g(nn.MulOp(scores, g.constant(np.linspace(0.5, 1.0, s.tokens))))
    axis = -2 if s.near_miss == "softmax_axis" else -1
    probabilities = g(nn.SoftmaxOp(scores, axis))
    o = g(nn.MatmulOp(probabilities, v))
    if s.folded:
        o = g(nn.ReshapeOp(o, (s.batch, s.heads, s.tokens, s.dv)))
    width = s.heads * s.dv
    if s.near_miss == "mixing_merge":
        merged = g(nn.ReshapeOp(o, (s.batch, s.tokens, width)))
    elif s.merge == "interleaved":  # (B, S, dv, H): column j*H + h
        merged = g(nn.ReshapeOp(g(nn.TransposeOp(o, (0, 2, 3, 1))), (s.batch, s.tokens, width)))
    else:
        merged = g(nn.ReshapeOp(g(nn.TransposeOp(o, (0, 2, 1, 3))), (s.batch, s.tokens, width)))
    if s.near_miss == "no_out_projection":
        return g.module(merged)
    y = _project(g, merged, "o", s.out, s.layout, s.out_bias)
    if s.near_miss == "probabilities_used":
        return g.module(y, probabilities)
    return g.module(y)


@st.composite
def styles(draw) -> Style:
    qkv = draw(st.sampled_from(["separate", "fused_heads", "fused_qkv"]))
    dk = draw(st.integers(1, 3))
    dv = dk if qkv == "fused_qkv" or draw(st.booleans()) else draw(st.integers(1, 3))
    return Style(
        batch=draw(st.integers(1, 2)),
        tokens=draw(st.integers(1, 4)),
        features=draw(st.integers(1, 5)),
        heads=draw(st.integers(1, 3)),
        dk=dk,
        dv=dv,
        out=draw(st.integers(1, 5)),
        bias=draw(st.sampled_from(["none", "all", "some"])),
        out_bias=draw(st.booleans()),
        scale_on=draw(st.sampled_from(["scores", "q", "k", "qk"])),
        scale_op=draw(st.sampled_from(["mul", "div"])),
        scale=draw(st.sampled_from([1.0, 0.5, 1 / math.sqrt(dk), 0.3])),
        layout=draw(st.sampled_from(["matmul", "matmul_t", "linear"])),
        qkv=qkv,
        key=draw(st.sampled_from(["kT", "transpose_rhs"])),
        folded=draw(st.booleans()),
        zero_bias=draw(st.booleans()),
        merge=draw(st.sampled_from(["standard", "interleaved"])),
    )


# --------------------------------------------------------------------------------------
# raise-attention: forward
# --------------------------------------------------------------------------------------


@PROPERTY
@given(styles(), st.integers(0, 2**32 - 1))
def test_raise_attention_forward(style: Style, seed: int):
    module = exporter_attention(style, seed)
    raised = assert_pass_preserves_semantics(RaiseAttentionPass(), module)
    assert count(raised, nn.AttentionOp) == 1, style
    assert count(raised, nn.SoftmaxOp) == 0
    (attention,) = [op for op in raised.walk() if isinstance(op, nn.AttentionOp)]
    assert attention.heads.value.data == style.heads
    assert attention.head_sizes == (style.dk, style.dv)
    has_biases = style.bias != "none"
    assert (attention.biases is not None) == has_biases
    if not has_biases and style.out_bias:  # stays an add after the op
        assert isinstance(attention.result.get_user_of_unique_use(), nn.AddOp)
    # The weights stay parameters: each weight operand is a load or made from one.
    for weight in (attention.wq, attention.wk, attention.wv, attention.wo):
        owner = weight.owner
        while not isinstance(owner, nn.LoadOp):
            assert isinstance(
                owner, nn.TransposeOp | nn.SliceOp | nn.GatherOp | nn.ReshapeOp
            )
            owner = owner.operands[0].owner


@settings(PROPERTY, max_examples=30)
@given(styles(), st.integers(0, 2**32 - 1))
def test_raise_attention_float64(style: Style, seed: int):
    """In float64 too (tolerance 1e-9): the raised scale is the product of the graph's
    factors, so only scales an f32 attribute holds exactly are raised there."""
    style = replace(style, scale_op="mul", scale_on="scores", scale=0.5)
    module = exporter_attention(style, seed, np.float64)
    raised = assert_pass_preserves_semantics(RaiseAttentionPass(), module)
    assert count(raised, nn.AttentionOp) == 1
    inexact = replace(style, scale=0.3)
    kept = assert_pass_preserves_semantics(
        RaiseAttentionPass(), exporter_attention(inexact, seed, np.float64)
    )
    assert count(kept, nn.AttentionOp) == 0


SEPARATE_ONLY = {"cross", "bias_after_scale", "mixing_split"}
"""Near misses written for separate projections only."""


@pytest.mark.parametrize(
    "qkv, near_miss",
    [("separate", m) for m in NEAR_MISSES]
    + [("fused_heads", m) for m in NEAR_MISSES if m not in SEPARATE_ONLY],
)
def test_raise_attention_leaves_near_misses(qkv: str, near_miss: str):
    base = Style(batch=2, tokens=3, features=4, heads=2, dk=2, dv=2, bias="all",
                 out_bias=True, qkv=qkv)
    # The unmodified graph raises ...
    assert count(
        assert_pass_preserves_semantics(RaiseAttentionPass(), exporter_attention(base)),
        nn.AttentionOp,
    ) == 1
    # ... the near miss does not.
    module = exporter_attention(replace(base, near_miss=near_miss))
    kept = assert_pass_preserves_semantics(RaiseAttentionPass(), module)
    assert count(kept, nn.AttentionOp) == 0, near_miss
    assert count(kept, nn.SoftmaxOp) == 1


# --------------------------------------------------------------------------------------
# raise-attention: training
# --------------------------------------------------------------------------------------


def train_step(module: ModuleOp, spec: str, inputs, labels) -> tuple[float, dict]:
    """Loss and gradients ((before - after) / lr of one SGD step with lr 1)."""
    stepped = apply_passes(spec, module)
    session = Session(stepped)
    before = {k: v.copy() for k, v in session.params.items()}
    args = [*inputs.values(), labels] if isinstance(inputs, dict) else [*inputs, labels]
    (loss,) = session.run("train_step", args)
    return float(loss), {
        k: before[k].astype(np.float64) - session.params[k] for k in before
    }


def first_step(model: RandomModel, spec: str) -> tuple[np.ndarray, tuple | None]:
    """Regression labels for `model` and its `train_step` after `spec` (None when
    nothing trainable reaches the loss, which `autodiff` refuses)."""
    function = get_function(model.module, "forward")
    output = function.function_type.outputs.data[0]
    labels = np.random.default_rng(1).standard_normal(output.get_shape())
    try:
        return labels, train_step(model.module, spec, model.inputs, labels)
    except PassFailedException as e:
        assert "nothing would train" in str(e)
        return labels, None


def assert_same_training(a: tuple[float, dict], b: tuple[float, dict], tol: float,
                         floor: float = 1e-30):
    """Same loss, and gradients within `tol` of the largest (at least `floor`: a
    gradient that is zero in exact arithmetic is rounding noise)."""
    assert a[0] == pytest.approx(b[0], rel=tol, abs=tol)
    assert set(a[1]) == set(b[1])
    largest = max(float(np.max(np.abs(g), initial=0.0)) for g in a[1].values())
    for name, grad in a[1].items():
        np.testing.assert_allclose(
            b[1][name], grad, rtol=0, atol=tol * max(largest, floor), err_msg=f"@{name}"
        )


MSE = "loss=mse lr=1.0"
UNRAISED = f"raise-layer-norm,autodiff{{{MSE}}},canonicalize,cse,dce"


@settings(PROPERTY, max_examples=40)
@given(styles(), st.integers(0, 2**32 - 1))
def test_raise_attention_training_step(style: Style, seed: int):
    """`train-full` (which raises attention, then differentiates `nn.attention` with its
    recomputing rule) against `autodiff` of the graph as exported, in float64 (with
    scale 1/2, which an f32 attribute holds exactly, on q, k or the scores)."""
    scale_on = style.scale_on if style.scale_on != "qk" else "scores"
    style = replace(style, scale_on=scale_on, scale=0.5)
    module = exporter_attention(style, seed, np.float64)
    function = get_function(module, "forward")
    rng = np.random.default_rng(seed)
    inputs = {"x0": rng.standard_normal(function.function_type.inputs.data[0].get_shape())}
    labels = rng.standard_normal(function.function_type.outputs.data[0].get_shape())
    raised = train_step(module, f"train-full{{{MSE}}}", inputs, labels)
    assert count(apply_passes(f"train-full{{{MSE}}}", module), nn.AttentionOp) == 2  # both
    assert_same_training(train_step(module, UNRAISED, inputs, labels), raised, 1e-9)


def test_raise_after_training_keeps_the_step():
    """Raising a module that already has `@train_step`: its forward copy feeds the
    backward, so only `@forward` raises, and the step is unchanged."""
    module = apply_passes(UNRAISED.replace("lr=1.0", "lr=0.1"), exporter_attention(Style()))
    raised = assert_pass_preserves_semantics(
        RaiseAttentionPass(), module, function="train_step"
    )
    assert count(get_function(raised, "forward"), nn.AttentionOp) == 1
    assert count(get_function(raised, "train_step"), nn.AttentionOp) == 0


# --------------------------------------------------------------------------------------
# lower-attention
# --------------------------------------------------------------------------------------

ATTENTION_MODELS = random_models(ops=["attention", "linear", "gelu", "add"], max_ops=5)


def _with_attention(model: RandomModel) -> bool:
    return count(model.module, nn.AttentionOp) > 0


@PROPERTY
@given(ATTENTION_MODELS)
def test_lower_attention_is_exact(model: RandomModel):
    assume(_with_attention(model))
    lowered = assert_pass_preserves_semantics(
        LowerAttentionPass(), model.module, model.inputs, rtol=0, atol=0
    )
    assert count(lowered, nn.AttentionOp) == 0
    used = {op.name for op in lowered.walk()}
    assert used <= {op.name for op in model.module.walk()} | {
        "nn.matmul", "nn.add", "nn.reshape", "nn.transpose", "nn.softmax", "nn.mul",
        "nn.constant",
    }


@settings(PROPERTY, max_examples=40)
@given(random_models(ops=["attention", "linear", "tanh"], max_ops=4, dtype="f64",
                     trainable="all"))
def test_lower_attention_training_step(model: RandomModel):
    """The training step of a model with `nn.attention` (its gradient rule) equals that
    of the lowered model (the primitive ops' rules), and lowering the attention inside
    a training step keeps it bit for bit."""
    assume(_with_attention(model))
    spec = f"autodiff{{{MSE}}}"
    labels, with_attention = first_step(model, spec)
    if with_attention is None:
        return
    lowered = train_step(apply_passes("lower-attention", model.module), spec, model.inputs, labels)
    assert_same_training(with_attention, lowered, 1e-9)
    trained = apply_passes(spec, model.module)
    assert_pass_preserves_semantics(
        LowerAttentionPass(), trained, [*model.inputs.values(), labels],
        function="train_step", rtol=0, atol=0,
    )


def test_flops_are_those_of_the_lowered_ops():
    g = Graph(0, np.float32, (2, 5, 6))
    for biases in (False, True):
        op = nn.AttentionOp(
            g.block.args[0], g.param("wq", (6, 8)), g.param("wk", (6, 8)),
            g.param("wv", (6, 4)), g.param("wo", (4, 3)),
            [g.param(n, (s,)) for n, s in (("bq", 8), ("bk", 8), ("bv", 4), ("bo", 3))]
            if biases else None,
            heads=2, scale=0.5,
        )
        ops, _ = lower(op)
        assert flops(op) == sum(flops(o) for o in ops)


def test_bufferize_needs_attention_lowered_first():
    """The lowering is an explicit step: `bufferize` refuses an `nn.attention`, naming
    it, and `lower-attention,bufferize` reaches the buffer level."""
    style = Style(bias="all", out_bias=True)
    module = apply_passes("raise-attention", exporter_attention(style))
    assert count(module, nn.AttentionOp) == 1
    with pytest.raises(PassFailedException, match="bufferize: nn.attention.* has no "
                       "kernel; run lower-attention first"):
        apply_passes("bufferize", module.clone())
    planned = assert_pass_preserves_semantics(
        "lower-attention,bufferize,plan-memory", module
    )
    assert count(planned, nn.AttentionOp) == 0
    assert count(planned, kernel.SoftmaxKernelOp) == 1


def test_training_step_with_attention_in_c(tmp_path):
    """train-full raises the attention; `--emit c` (whose lowering stage runs
    `lower-attention` before `bufferize`) computes the same three steps as the interpreter."""
    from c_project import assert_c_matches_interpreter

    style = Style(batch=2, tokens=4, features=6, heads=2, dk=3, dv=2, out=5, bias="all",
                  out_bias=True, qkv="fused_heads")
    module = apply_passes("train-full{loss=mse lr=0.05}", exporter_attention(style))
    assert count(module, nn.AttentionOp) == 2
    rng = np.random.default_rng(3)
    batch = {"x0": rng.standard_normal((2, 4, 6)).astype(np.float32),
             "labels": rng.standard_normal((2, 4, 5)).astype(np.float32)}
    assert_c_matches_interpreter(module, tmp_path / "project", batch)


# --------------------------------------------------------------------------------------
# The gradient rule: flash-attention style
# --------------------------------------------------------------------------------------


OPERANDS = ["x", "wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"]


def partly_trained_attention(trained: list[str], tokens: int) -> ModuleOp:
    """`@forward(x0: (2, tokens, 4))`: a linear layer `pre`, then a 2-head attention
    with all biases; the operands in `trained` train (`x`: `pre` trains)."""
    g = Graph(0, np.float64, (2, tokens, 4))
    x = g(nn.LinearOp(g.block.args[0], g.param("pre", (4, 4))))
    shapes = {"wq": (4, 4), "wk": (4, 4), "wv": (4, 2), "wo": (2, 3), "bq": (4,),
              "bk": (4,), "bv": (2,), "bo": (3,)}
    values = {n: g.param(n, s) for n, s in shapes.items()}
    y = g(nn.AttentionOp(x, *(values[n] for n in OPERANDS[1:5]),
                         [values[n] for n in OPERANDS[5:]], heads=2, scale=0.5))
    module = g.module(y)
    for param in module.ops:
        if isinstance(param, nn.ParamOp):
            name = param.sym_name.data
            param.trainable = UnitAttr() if name in trained or (
                name == "pre" and "x" in trained) else None
    return module


@pytest.mark.parametrize("trained", [[o] for o in OPERANDS] + [OPERANDS, ["wq", "wo"]],
                         ids=lambda t: "+".join(t) if len(t) < 9 else "all")
def test_backward_emits_only_what_the_trained_operands_need(trained: list[str]):
    """Every op of the attention's backward feeds an update: `dce` removes nothing,
    whichever operands train (`x` trains through a linear layer before it)."""
    module = partly_trained_attention(trained, tokens=3)
    spec = f"autodiff{{{MSE}}}"
    stepped = apply_passes(spec, module)
    stored = {op.param.string_value() for op in stepped.walk()
              if isinstance(op, train.StoreOp)}
    assert stored == ({*trained} - {"x"}) | ({"pre"} if "x" in trained else set())
    cleaned = apply_passes("dce", stepped)
    step_ops = [op.name for op in get_function(stepped, "train_step").walk()]
    assert [op.name for op in get_function(cleaned, "train_step").walk()] == step_ops
    # And the gradients are right (against the lowered attention's).
    rng = np.random.default_rng(0)
    inputs = {"x0": rng.standard_normal((2, 3, 4))}
    labels = rng.standard_normal((2, 3, 3))
    assert_same_training(
        train_step(module, spec, inputs, labels),
        train_step(apply_passes("lower-attention", module), spec, inputs, labels),
        1e-9,
    )


def test_backward_keeps_only_the_inputs_of_attention():
    """No forward value of the step that is S x S (or q, k, v) is read after the loss:
    the backward reads the attention's inputs and recomputes the rest."""
    style = Style(tokens=5, features=4, heads=2, bias="all", out_bias=True)
    module = apply_passes(f"train-full{{{MSE}}}", exporter_attention(style))
    step = get_function(module, "train_step")
    ops = list(step.body.block.ops)
    (attention,) = [op for op in ops if isinstance(op, nn.AttentionOp)]
    loss = next(i for i, op in enumerate(ops) if isinstance(op, train.MseOp))
    forward_values = {r for op in ops[:loss] for r in op.results}
    backward = [op for op in ops[loss + 1 :] if not isinstance(op, train.MseGradOp)]
    read_by_backward = {o for op in backward for o in op.operands} & forward_values
    assert attention.result not in read_by_backward  # (the loss gradient reads it)
    for value in read_by_backward:
        assert tuple(_shape(value))[-2:] != (5, 5), value
    assert set(attention.operands) <= read_by_backward | {attention.x}
    # The probabilities are recomputed once in the backward.
    assert sum(isinstance(op, nn.SoftmaxOp) for op in ops[loss:]) == 1
    assert sum(isinstance(op, train.SoftmaxGradOp) for op in ops[loss:]) == 1


# --------------------------------------------------------------------------------------
# The imported models
# --------------------------------------------------------------------------------------

DEEPLOY = [
    ("CCT_FP32_CCT_1_16_16_8", "network.onnx", 1),
    ("CCT_FP32_CCT_2_32_32_128", "network.onnx", 2),
    ("CCT_Train_CCT2_FT2", "network_infer.onnx", 2),
    ("CCT_Train_CCT2_LP", "network_infer.onnx", 2),
    ("TinyViT_Demo", "network.onnx", 4),
    # q, k, v carry LoRA adapters (x @ W + (x @ A) @ B): not a plain projection.
    ("CCT_Train_CCT2_LoRA2", "network_infer.onnx", 0),
]


@pytest.mark.parametrize("name, file, blocks", DEEPLOY, ids=[d[0] for d in DEEPLOY])
def test_imported_models_raise_every_block(shared_model, name: str, file: str,
                                           blocks: int):
    module = import_onnx(shared_model(name) / file)
    softmaxes = count(module, nn.SoftmaxOp)
    raised = assert_pass_preserves_semantics(RaiseAttentionPass(), module)
    assert count(raised, nn.AttentionOp) == blocks
    assert count(raised, nn.SoftmaxOp) == softmaxes - blocks


@pytest.mark.parametrize("name", ["CCT_FP32_CCT_1_16_16_8", "TinyViT_Demo"])
def test_imported_training_step(shared_model, name: str):
    """train-full (attention raised) against the exported graph's training step, on a
    random input and regression target."""
    module = import_onnx(shared_model(name) / "network.onnx")
    function = get_function(module, "forward")
    rng = np.random.default_rng(0)
    inputs = random_inputs(function, rng)
    output = function.function_type.outputs.data[0]
    labels = rng.standard_normal(output.get_shape()).astype(
        numpy_dtype(output.element_type)
    )
    raised = train_step(module, f"train-full{{{MSE}}}", inputs, labels)
    unraised = train_step(module, UNRAISED, inputs, labels)
    assert_same_training(unraised, raised, 1e-4)
