"""`fuse-attention-weights`: fused-weight self-attention.

- Forward (hypothesis, random B, S, D, H, dk, dv, E, with and without biases, each
  objective): `@forward` keeps its meaning (`assert_pass_preserves_semantics`), each
  side is fused exactly when the cost formula says it pays, and the fused module holds
  what the decision says (fused parameters in, originals out).
- The cost formula against `edge_opt.ir.cost.flops` of the ops the pass emits (fused
  sides) and of `lower-attention`'s ops (unfused sides), and against the parameters the
  function reads.
- A training step through the fused form: a trainable linear layer before the (frozen)
  attention, so the input gradient flows through the fused products, and a trainable
  classifier after it; loss and updated parameters against `autodiff` of the unfused
  module, in float64. Fusing after `autodiff` keeps `@train_step`.
- Weights read through slices of a fused qkv parameter and a transpose (as
  `raise-attention` leaves them) are fused from their parameters.
- Trainable operands are never fused: each of the eight alone, all of them (train-full
  flags), a weight computed from a trainable adapter, random models with mixed flags,
  and the Deeploy LoRA fixture.
- CCT2 (Deeploy's FT2 fixture): what it decides, against the formula.
- The report section, the CLI, option errors, a lit test, and the C backend.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32, f64
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir import model_io
from edge_opt.ir.attention import lower
from edge_opt.ir.context import make_context
from edge_opt.ir.cost import flops, numel
from edge_opt.ir.report import build_report, format_report
from edge_opt.ir.session import Session, get_function
from edge_opt.passes.fuse_attention_weights import (
    FuseAttentionWeightsPass,
    attention_fusion_cost,
    fusion_cost,
)
from edge_opt.support.dtypes import to_dense
from edge_opt.testing import (
    apply_passes,
    assert_pass_preserves_semantics,
    random_models,
)
from edge_opt.tools.driver import main

PROPERTY = settings(max_examples=40)
OPERANDS = ("wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo")
SIDE = {"wq": "qk", "wk": "qk", "bq": "qk", "bk": "qk",
        "wv": "vo", "wo": "vo", "bv": "vo", "bo": "vo"}




def count(module: Operation, op_type: type[Operation]) -> int:
    return sum(1 for op in module.walk() if isinstance(op, op_type))


def params(module: ModuleOp) -> dict[str, nn.ParamOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    batch: int = 2
    tokens: int = 3
    features: int = 4
    heads: int = 1
    dk: int = 4
    dv: int = 4
    out: int = 4
    biases: bool = True


def attention_model(s: Shape, *, seed: int = 0, dtype=np.float32,
                    trainable: frozenset[str] = frozenset(), pre: bool = False,
                    classes: int = 0) -> ModuleOp:
    """`@forward(x)`: [a linear layer `pre`,] `nn.attention` (named `y`) [, a classifier
    `head` to `classes` outputs]. Parameters named as the operands; those in
    `trainable` (and `pre`, `head`) train."""
    rng = np.random.default_rng(seed)
    element = {np.float32: f32, np.float64: f64}[dtype]
    block = Block(arg_types=[TensorType(element, (s.batch, s.tokens, s.features))])
    block.args[0].name_hint = "x"
    declared: list[nn.ParamOp] = []

    def add(op: Operation, name: str) -> SSAValue:
        block.add_op(op)
        op.results[0].name_hint = name
        return op.results[0]

    def param(name: str, shape: tuple[int, ...], trains: bool) -> SSAValue:
        value = rng.standard_normal(shape) / math.sqrt(shape[0] if len(shape) > 1 else 2)
        type = TensorType(element, shape)
        declared.append(nn.ParamOp(name, type, trains, to_dense(value.astype(dtype), type)))
        return add(nn.LoadOp(name, type), name)

    x = block.args[0]
    if pre:
        x = add(nn.LinearOp(x, param("pre", (s.features, s.features), True)), "h")
    d, h = s.features, s.heads
    shapes = {"wq": (d, h * s.dk), "wk": (d, h * s.dk), "wv": (d, h * s.dv),
              "wo": (h * s.dv, s.out), "bq": (h * s.dk,), "bk": (h * s.dk,),
              "bv": (h * s.dv,), "bo": (s.out,)}
    names = OPERANDS if s.biases else OPERANDS[:4]
    values = {n: param(n, shapes[n], n in trainable) for n in names}
    biases = [values[n] for n in OPERANDS[4:]] if s.biases else None
    y = add(nn.AttentionOp(x, *(values[n] for n in OPERANDS[:4]), biases, heads=h,
                           scale=0.5), "y")
    if classes:
        y = add(nn.LinearOp(y, param("head", (classes, s.out), True)), "logits")
    block.add_op(func.ReturnOp(y))
    forward = func.FuncOp("forward", ([x.type for x in block.args], [y.type]),
                          Region(block))
    module = ModuleOp([*declared, forward])
    module.verify()
    return module


def records(module: ModuleOp) -> list[dict]:
    report = build_report(module)
    return report.extra.get("attention_fusion", [])


@st.composite
def shapes(draw, heads=(1, 2)) -> Shape:
    d = draw(st.integers(1, 5))
    e = draw(st.integers(1, 5))
    return Shape(
        batch=draw(st.integers(1, 2)), tokens=draw(st.integers(1, 5)), features=d,
        heads=draw(st.sampled_from(heads)), dk=draw(st.integers(1, d + 1)),
        dv=draw(st.integers(1, e + 1)), out=e, biases=draw(st.booleans()),
    )


OBJECTIVES = st.sampled_from(["both", "macs", "params"])


def pays(unfused_macs: int, fused_macs: int, unfused_params: int, fused_params: int,
         objective: str) -> bool:
    """The objective's rule, written out again."""
    macs, size = fused_macs - unfused_macs, fused_params - unfused_params
    return {"macs": macs < 0, "params": size < 0,
            "both": macs <= 0 and size <= 0 and (macs < 0 or size < 0)}[objective]


# --------------------------------------------------------------------------------------
# Forward and decisions
# --------------------------------------------------------------------------------------


@PROPERTY
@given(shapes(), OBJECTIVES, st.sampled_from([np.float32, np.float64]),
       st.integers(0, 2**16))
def test_forward_is_kept_and_decisions_follow_the_formula(
    shape: Shape, objective: str, dtype, seed: int
):
    module = attention_model(shape, seed=seed, dtype=dtype)
    tolerance = {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {}
    fused = assert_pass_preserves_semantics(
        FuseAttentionWeightsPass(objective), module, **tolerance
    )
    decided = {r["part"]: r for r in records(fused)}
    assert set(decided) == {"qk", "vo"}
    for part, r in decided.items():
        expected = pays(r["macs_unfused"], r["macs_fused"], r["params_unfused"],
                        r["params_fused"], objective)
        assert r["fused"] == expected, r
        assert (f"wq__{part}_fused" if part == "qk" else f"wv__{part}_fused"
                ) in params(fused) or not expected
    names = set(params(fused))
    for operand in OPERANDS[: 8 if shape.biases else 4]:
        # A fused side's parameters are gone (bk: it drops out of the softmax).
        assert (operand in names) != decided[SIDE[operand]]["fused"], operand
    assert count(fused, nn.AttentionOp) == (
        0 if any(r["fused"] for r in decided.values()) else 1
    )


@pytest.mark.parametrize("biases", [False, True])
def test_one_head_with_full_width_fuses_both_sides(biases: bool):
    """H = 1, dk = dv = D = E: fused is cheaper in MACs and params on both sides."""
    module = attention_model(Shape(batch=2, tokens=5, biases=biases))
    fused = assert_pass_preserves_semantics(FuseAttentionWeightsPass(), module,
                                            rtol=1e-4, atol=1e-5)
    assert [r["fused"] for r in records(fused)] == [True, True]
    assert sorted(params(fused)) == sorted(
        ["wq__qk_fused", "wv__vo_fused"]
        + (["bq__qk_fused", "bo__vo_fused"] if biases else [])
    )
    assert all(not p.is_trainable for p in params(fused).values())


def _objective_cases() -> list[tuple[Shape, dict[str, tuple[bool, bool]]]]:
    """Shapes where the objectives disagree: fused (qk, vo) per objective."""
    # H=2, D=4, dk=3: QK has fewer params (32 < 48) but more MACs; VO (dv=1): neither.
    params_only = Shape(batch=1, tokens=16, features=4, heads=2, dk=3, dv=1, out=4,
                        biases=False)
    # H=2, dk=dv=2 (= D/H): no fewer of either; equal params on both sides.
    standard = Shape(batch=1, tokens=8, features=4, heads=2, dk=2, dv=2, out=4,
                     biases=False)
    return [
        (params_only, {"both": (False, False), "macs": (False, False),
                       "params": (True, False)}),
        (standard, {o: (False, False) for o in ("both", "macs", "params")}),
    ]


@pytest.mark.parametrize("case", range(len(_objective_cases())))
@pytest.mark.parametrize("objective", ["both", "macs", "params"])
def test_objectives(case: int, objective: str):
    shape, expected = _objective_cases()[case]
    fused = assert_pass_preserves_semantics(
        FuseAttentionWeightsPass(objective), attention_model(shape), rtol=1e-4, atol=1e-5
    )
    assert tuple(r["fused"] for r in records(fused)) == expected[objective]


# --------------------------------------------------------------------------------------
# The cost formula against flops()
# --------------------------------------------------------------------------------------


def _matmul_macs(ops) -> int:
    return sum(flops(op) // 2 for op in ops if isinstance(op, nn.MatmulOp))


def _loaded_params(function: func.FuncOp, module: ModuleOp) -> int:
    """Elements of the parameters `function` computes with (excluding pre/head)."""
    declared = params(module)
    return sum(
        declared[op.param.string_value()].type.element_count()
        for op in function.walk()
        if isinstance(op, nn.LoadOp) and op.result.uses
        and op.param.string_value() not in ("pre", "head")
    )


@PROPERTY
@given(shapes(), OBJECTIVES)
def test_cost_formula_matches_the_emitted_ops(shape: Shape, objective: str):
    """Matrix-product MACs (`flops` / 2) and parameters of the ops the pass leaves:
    the fused side's emitted ops, the unfused side's as `lower-attention` writes them."""
    module = attention_model(shape)
    fused = apply_passes(f"fuse-attention-weights{{objective={objective}}},lower-attention",
                  module)
    decided = {r["part"]: r for r in records(fused)}
    which = {p: "fused" if r["fused"] else "unfused" for p, r in decided.items()}
    event(f"qk {which['qk']}, vo {which['vo']}")
    forward = get_function(fused, "forward")
    assert _matmul_macs(forward.walk()) == sum(
        r[f"macs_{which[p]}"] for p, r in decided.items()
    )
    assert _loaded_params(forward, fused) == sum(
        r[f"params_{which[p]}"] for p, r in decided.items()
    )


@given(shapes())
@settings(PROPERTY)
def test_unfused_cost_is_that_of_lower_attention(shape: Shape):
    module = attention_model(shape)
    (op,) = [o for o in module.walk() if isinstance(o, nn.AttentionOp)]
    cost = fusion_cost(op)
    ops, _ = lower(op)
    assert _matmul_macs(ops) == cost.qk.macs_unfused + cost.vo.macs_unfused
    operands = sum(numel(v) for v in op.operands[1:])
    assert operands == cost.qk.params_unfused + cost.vo.params_unfused


def test_cost_formula_by_hand():
    """CCT2's block (B=1, S=64, D=128, H=2, dk=dv=64, E=128), and with one head of
    128."""
    cct = attention_fusion_cost(1, 64, 128, 2, 64, 64, 128, False)
    assert (cct.qk.macs_unfused, cct.qk.macs_fused) == (2_621_440, 3_145_728)
    assert (cct.qk.params_unfused, cct.qk.params_fused) == (32_768, 32_768)
    assert (cct.vo.macs_unfused, cct.vo.macs_fused) == (2_621_440, 3_145_728)
    assert (cct.vo.params_unfused, cct.vo.params_fused) == (32_768, 32_768)
    one = attention_fusion_cost(1, 64, 128, 1, 128, 128, 128, False)
    assert (one.qk.macs_unfused, one.qk.macs_fused) == (2_621_440, 1_572_864)
    assert (one.qk.params_unfused, one.qk.params_fused) == (32_768, 16_384)
    assert one.qk.pays("both") and one.vo.pays("both")


# --------------------------------------------------------------------------------------
# Training through the fused form
# --------------------------------------------------------------------------------------

MSE = "autodiff{loss=mse lr=1.0}"


def train_step(module: ModuleOp, inputs: list[np.ndarray], labels: np.ndarray):
    stepped = apply_passes(MSE, module)
    session = Session(stepped)
    (loss,) = session.run("train_step", [*inputs, labels])
    return float(loss), {k: session.params[k] for k in ("pre", "head")}


@PROPERTY
@given(shapes(), OBJECTIVES, st.integers(0, 2**16))
def test_training_step_through_the_fused_form(shape: Shape, objective: str, seed: int):
    """`pre` and `head` train, the attention is frozen: fused and unfused modules take
    the same step (float64)."""
    module = attention_model(shape, seed=seed, dtype=np.float64, pre=True, classes=3)
    fused = apply_passes(f"fuse-attention-weights{{objective={objective}}}", module)
    decided = records(fused)
    assume(any(r["fused"] for r in decided))
    event(", ".join(f"{r['part']} {'fused' if r['fused'] else 'kept'}" for r in decided))
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal((shape.batch, shape.tokens, shape.features))]
    labels = rng.standard_normal((shape.batch, shape.tokens, 3))
    loss, updated = train_step(module, inputs, labels)
    fused_loss, fused_updated = train_step(fused, inputs, labels)
    assert fused_loss == pytest.approx(loss, rel=1e-10, abs=1e-12)
    for name, value in updated.items():
        np.testing.assert_allclose(fused_updated[name], value, rtol=1e-9, atol=1e-11,
                                   err_msg=f"@{name}")


def test_weights_behind_data_movement_ops():
    """As `raise-attention` leaves them: q, k, v as column slices of one fused qkv
    weight, the output weight as a transpose of an (out, in) one. Fused from their
    parameters, which then go (with the slices and the transpose)."""
    rng = np.random.default_rng(0)
    d = 4
    qkv_type, wo_type = TensorType(f32, (d, 3 * d)), TensorType(f32, (d, d))
    declared = [
        nn.ParamOp(n, t, False, to_dense(rng.standard_normal(t.get_shape())
                                         .astype(np.float32) / 2, t))
        for n, t in (("qkv", qkv_type), ("out_t", wo_type))
    ]
    block = Block(arg_types=[TensorType(f32, (2, 3, d))])
    qkv, out_t = nn.LoadOp("qkv", qkv_type), nn.LoadOp("out_t", wo_type)
    slices = [nn.SliceOp(qkv, (0, i * d), (d, (i + 1) * d)) for i in range(3)]
    wo = nn.TransposeOp(out_t, (1, 0))
    attention = nn.AttentionOp(block.args[0], *slices, wo, heads=1, scale=0.5)
    block.add_ops([qkv, out_t, *slices, wo, attention, func.ReturnOp(attention)])
    forward = func.FuncOp("forward", ([block.args[0].type], [attention.result.type]),
                          Region(block))
    module = ModuleOp([*declared, forward])
    fused = assert_pass_preserves_semantics(FuseAttentionWeightsPass(), module,
                                            rtol=1e-4, atol=1e-5)
    assert sorted(params(fused)) == ["qkv__qk_fused", "qkv__vo_fused"]
    assert count(fused, nn.SliceOp) == count(fused, nn.TransposeOp) == 0


def test_fusing_after_autodiff_keeps_the_step():
    """Run after `autodiff`, the pass fuses the attention inside `@train_step` too (its
    backward reads the original weights, which therefore stay)."""
    module = apply_passes(MSE, attention_model(Shape(), dtype=np.float64, pre=True, classes=3))
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 3))]
    fused = assert_pass_preserves_semantics(FuseAttentionWeightsPass(), module, inputs,
                                            function="train_step")
    assert count(fused, nn.AttentionOp) == 0
    assert {"wq", "wq__qk_fused"} <= set(params(fused))


# --------------------------------------------------------------------------------------
# Trainable operands are never fused
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("operand", OPERANDS)
def test_a_trainable_operand_keeps_its_side(operand: str):
    module = attention_model(Shape(), trainable=frozenset([operand]))
    fused = assert_pass_preserves_semantics(FuseAttentionWeightsPass(), module,
                                            rtol=1e-4, atol=1e-5)
    decided = {r["part"]: r for r in records(fused)}
    side, other = SIDE[operand], {"qk": "vo", "vo": "qk"}[SIDE[operand]]
    assert not decided[side]["fused"]
    assert decided[side]["reason"] == f"{operand} @{operand} is trainable"
    assert decided[other]["fused"]
    assert params(fused)[operand].is_trainable
    # The trainable operand is read as it is, not folded into anything.
    loads = [op for op in fused.walk() if isinstance(op, nn.LoadOp)
             and op.param.string_value() == operand]
    assert len(loads) == 1 and loads[0].result.uses


def test_trainable_projections_leave_the_op_alone():
    """train-full's flags (everything trains): nothing changes but the record."""
    module = attention_model(Shape(), trainable=frozenset(OPERANDS))
    fused = apply_passes("fuse-attention-weights", module)
    assert [r["fused"] for r in records(fused)] == [False, False]
    del fused.attributes["edge_opt.attention_fusion"]
    assert str(fused) == str(module)


def test_a_weight_with_a_trainable_adapter_is_not_fused():
    """wq = W + A·B with trainable A, B (a LoRA-style weight) is not a parameter."""
    module = attention_model(Shape(biases=False))
    (op,) = [o for o in module.walk() if isinstance(o, nn.AttentionOp)]
    d = Shape().features
    a_type, b_type = TensorType(f32, (d, 1)), TensorType(f32, (1, d))
    module.body.block.add_ops([
        nn.ParamOp("a", a_type, True, to_dense(np.ones((d, 1), np.float32), a_type)),
        nn.ParamOp("b", b_type, True, to_dense(np.ones((1, d), np.float32), b_type)),
    ])
    load_a, load_b = nn.LoadOp("a", a_type), nn.LoadOp("b", b_type)
    delta = nn.MatmulOp(load_a, load_b)
    wq = nn.AddOp(op.wq, delta)
    op.parent_block().insert_ops_before([load_a, load_b, delta, wq], op)
    op.operands[1] = wq.result
    module.verify()
    fused = assert_pass_preserves_semantics(FuseAttentionWeightsPass(), module,
                                            rtol=1e-4, atol=1e-5)
    decided = {r["part"]: r for r in records(fused)}
    assert not decided["qk"]["fused"]
    assert decided["qk"]["reason"] == "wq is nn.add, not a parameter"
    assert decided["vo"]["fused"]


@PROPERTY
@given(random_models(ops=["attention", "linear", "tanh"], max_ops=4,
                     trainable="mixed"), OBJECTIVES)
def test_random_models_fuse_only_frozen_sides(model, objective: str):
    """Whatever the flags, a side is fused only if all its parameters are frozen, and
    every trainable parameter is still there and read."""
    before = params(model.module)
    frozen_sides = []
    for op in model.module.walk():
        if isinstance(op, nn.AttentionOp):
            frozen = {
                side: all(
                    not before[v.owner.param.string_value()].is_trainable
                    for n in OPERANDS if SIDE[n] == side
                    and (v := getattr(op, n)) is not None
                )
                for side in ("qk", "vo")
            }
            frozen_sides += [frozen["qk"], frozen["vo"]]
    assume(frozen_sides)
    fused = assert_pass_preserves_semantics(
        FuseAttentionWeightsPass(objective), model.module, model.inputs,
        rtol=1e-4, atol=1e-4,
    )
    decided = records(fused)
    assert len(decided) == len(frozen_sides)
    for r, frozen in zip(decided, frozen_sides, strict=True):
        assert frozen or not r["fused"], r
        event(f"{'frozen' if frozen else 'trainable'} side {'fused' if r['fused'] else 'kept'}")
    after = params(fused)
    for name, param in before.items():
        if param.is_trainable:
            assert name in after and after[name].is_trainable


def test_lora_fixture_has_nothing_to_fuse(shared_model):
    """Deeploy's LoRA fixture: adapted projections are not raised, so nothing fuses."""
    module = import_onnx(shared_model("CCT_Train_CCT2_LoRA2") / "network_infer.onnx")
    raised = apply_passes('raise-attention,freeze{frozen=".*"}', module)
    fused = apply_passes("fuse-attention-weights", raised)
    assert str(fused) == str(raised)


# --------------------------------------------------------------------------------------
# CCT2
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("objective", ["both", "macs", "params"])
def test_cct2_decisions(shared_model, capsys, objective: str):
    """CCT2 (S=64, D=128, H=2, dk=dv=64, E=128): equal params and 20 % more MACs on
    each side, so no objective fuses; imported as is (everything trainable) the reason
    is the trainable weights."""
    module = import_onnx(shared_model("CCT_Train_CCT2_FT2") / "network_infer.onnx")
    raised = apply_passes("raise-attention", module)
    frozen = apply_passes('freeze{frozen=".*"}', raised)
    capsys.readouterr()
    fused = apply_passes(f"fuse-attention-weights{{objective={objective}}}", frozen)
    printed = capsys.readouterr().err
    print(printed)
    assert len(printed.splitlines()) == 2
    assert "QK MACs 2,621,440 -> 3,145,728, params 32,768 -> 32,768: kept" in printed
    assert "VO MACs 2,621,440 -> 3,145,728, params 32,768 -> 32,768: kept" in printed
    decided = records(fused)
    assert len(decided) == 4
    for r in decided:
        formula = attention_fusion_cost(1, 64, 128, 2, 64, 64, 128, False)
        part = getattr(formula, r["part"])
        assert (r["macs_unfused"], r["macs_fused"], r["params_unfused"],
                r["params_fused"]) == (part.macs_unfused, part.macs_fused,
                                       part.params_unfused, part.params_fused)
        assert r["fused"] is False and r["fused"] == part.pays(objective)
    assert count(fused, nn.AttentionOp) == 2
    trainable = records(apply_passes("fuse-attention-weights", raised))
    assert all("is trainable" in r["reason"] for r in trainable)


# --------------------------------------------------------------------------------------
# Report, CLI, options
# --------------------------------------------------------------------------------------


def test_report_section(tmp_path, capsys):
    module = attention_model(Shape(biases=False))
    fused = apply_passes("fuse-attention-weights", module)
    report = build_report(fused, "fuse-attention-weights")
    section = json.loads(report.dumps())["attention_fusion"]
    assert [(r["op"], r["part"], r["fused"]) for r in section] == [
        ("y", "qk", True), ("y", "vo", True)
    ]
    text = format_report(report)
    assert "attention weight fusion (objective both)" in text
    assert "%y @forward  QK" in text and "yes (fewer MACs, fewer params)" in text
    path = tmp_path / "model.mlir"
    model_io.save_model(module, path)
    capsys.readouterr()
    spec = "fuse-attention-weights{objective=params}"
    assert main(["report", str(path), "-p", spec, "--json"]) == 0
    command = json.loads(capsys.readouterr().out)["attention_fusion"]
    assert [r["objective"] for r in command] == ["params", "params"]
    assert main([str(path), "-p", spec, "--report", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["attention_fusion"] == command
    assert main(["report", str(path), "-p", spec]) == 0
    assert "attention weight fusion (objective params)" in capsys.readouterr().out


def test_bad_objective_is_a_clean_error(tmp_path, capsys):
    with pytest.raises(PassFailedException, match="objective must be one of both, "
                       "macs, params, got 'fastest'"):
        FuseAttentionWeightsPass("fastest").apply(  # type: ignore[arg-type]
            make_context(), attention_model(Shape())
        )
    path = tmp_path / "model.mlir"
    model_io.save_model(attention_model(Shape()), path)
    assert main([str(path), "-p", "fuse-attention-weights{objective=fastest}"]) == 1
    assert "fastest" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# C
# --------------------------------------------------------------------------------------


def test_training_step_with_fused_attention_in_c(tmp_path):
    """Two heads, both sides fused (objective params): the broadcast batched matmuls
    (x as (B, 1, S, D) with (H, D, D)), the bias (H, 1, D) and the sum over heads
    compile and compute the interpreter's numbers, forward and backward."""
    from c_project import assert_c_matches_interpreter

    shape = Shape(batch=2, tokens=4, features=4, heads=2, dk=3, dv=3, out=4)
    module = attention_model(shape, pre=True, classes=3)
    fused = apply_passes("fuse-attention-weights{objective=params},autodiff{loss=mse lr=0.05}",
                  module)
    assert [r["fused"] for r in records(fused)] == [True, True]
    assert count(fused, nn.ReduceSumOp) >= 1
    rng = np.random.default_rng(3)
    batch = {"x": rng.standard_normal((2, 4, 4)).astype(np.float32),
             "labels": rng.standard_normal((2, 4, 3)).astype(np.float32)}
    assert_c_matches_interpreter(fused, tmp_path / "project", batch)


def test_pipeline_option_fuses_what_the_strategy_froze():
    """`train-last{layers=1 fuse-attention=true}`: only the classifier trains, so the
    one-head full-width attention before it is fused (both sides pay) before
    `autodiff`; the step equals the unfused pipeline's. `train-full` with the option
    fuses nothing when the projections train."""
    shape = Shape(batch=2, tokens=5, features=4, heads=1, dk=4, dv=4, out=4)
    module = attention_model(shape, dtype=np.float64, classes=3)
    spec = "train-last{layers=1 loss=mse lr=1.0%s}"
    fused = apply_passes(spec % " fuse-attention=true", module)
    assert count(fused, nn.AttentionOp) == 0
    assert all(r["fused"] for r in records(fused))
    plain = apply_passes(spec % "", module)
    assert count(plain, nn.AttentionOp) > 0
    rng = np.random.default_rng(0)
    args = [rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))]
    (loss,) = Session(plain).run("train_step", args)
    (fused_loss,) = Session(fused).run("train_step", args)
    assert float(fused_loss) == pytest.approx(float(loss), rel=1e-10)
    trained = attention_model(shape, dtype=np.float64, classes=3,
                              trainable=frozenset(OPERANDS))
    everything = apply_passes("train-full{loss=mse fuse-attention=true}", trained)
    assert count(get_function(everything, "forward"), nn.AttentionOp) == 1
