"""LoRA: `insert-lora`, `merge-lora` and the `train-lora` pipeline.

- Semantics by interpretation (random models): inserting adapters does not change the
  model (B starts at zero); merging adapters with any values gives the model they
  compute; insert then merge gives back the original function, op for op.
- Training against PyTorch: a hand-written PEFT-style LoRA model in torch (independent
  of our IR) and `torch_reference.TorchModel` on the adapted module, with SGD and Adam.
- Initialisation: PEFT's kaiming-uniform bound and gaussian std, deterministic per seed
  and per weight.
- CCT2 (Deeploy): rank 4 on q, k, v, proj, linear1, linear2 of both blocks plus the
  classifier trains exactly the 13,707 parameters of the `CCT_Train_CCT2_LoRA2`
  fixture, in its shapes; one SGD step of the fixture's own LoRA model (its adapters
  replaced by ours, with its initial values) reproduces its `outputs.npz`; the memory
  report against train-full; merge after training.
- The C backend runs a LoRA training step like the interpreter.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from c_project import compile_and_run
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch_reference import TorchModel
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn, train
from edge_opt.dialects.train import is_optimizer_state
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir import model_io
from edge_opt.ir.context import make_context
from edge_opt.ir.lora import find_adapters, is_adapter
from edge_opt.ir.report import build_report
from edge_opt.ir.session import Session
from edge_opt.passes.insert_lora import InsertLoraPass
from edge_opt.passes.merge_lora import merge_lora
from edge_opt.passes.pipelines import TrainLoraPipeline
from edge_opt.passes.registry import expand, parse_pipeline
from edge_opt.support.dtypes import to_dense, to_numpy
from edge_opt.testing import assert_pass_preserves_semantics, random_models
from edge_opt.tools.driver import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "tiny_cnn.mlir"
EXAMPLE_INPUT = ROOT / "examples" / "tiny_cnn_input.npz"

CCT_TARGETS = (
    "node_0_classifier_blocks_[01]_(self_attn_[qkv]_proj|self_attn_proj|linear[12])"
    "_Transpose__0"
)
CCT_CLASSIFIER = (
    "classifier_fc_.*|classifier_attention_pool_bias|"
    "node_0_classifier_attention_pool_Transpose__0"
)


def apply(module: ModuleOp, spec: str) -> ModuleOp:
    for p in expand(parse_pipeline(spec)):
        p.apply(make_context(), module)
        module.verify()
    return module


def params(module: ModuleOp) -> dict[str, nn.ParamOp]:
    return {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}


def function(module: ModuleOp, name: str = "forward") -> func.FuncOp:
    return next(
        op for op in module.ops if isinstance(op, func.FuncOp) and op.sym_name.data == name
    )


def set_values(module: ModuleOp, values: dict[str, np.ndarray]) -> None:
    declared = params(module)
    for name, value in values.items():
        declared[name].properties["value"] = to_dense(value, declared[name].type)


def trained_names(module: ModuleOp) -> set[str]:
    return {
        op.param.string_value()
        for op in function(module, "train_step").walk()
        if isinstance(op, train.StoreOp)
        and not is_optimizer_state(params(module)[op.param.string_value()])
    }


# --------------------------------------------------------------------------------------
# A token model: an adapted nn.linear, x @ W and x @ W^T
# --------------------------------------------------------------------------------------

TOKEN_MODEL = """
nn.param trainable @wq : tensor<8x8xf32>
nn.param trainable @bq : tensor<8xf32>
nn.param trainable @wv : tensor<8x6xf32>
nn.param trainable @wo : tensor<4x6xf32>
nn.param trainable @head : tensor<3x20xf32>
nn.param trainable @head_bias : tensor<3xf32>
func.func @forward(%x: tensor<2x5x8xf32> {nn.name = "x"}) -> tensor<2x3xf32> {
  %wq = nn.load @wq : tensor<8x8xf32>
  %bq = nn.load @bq : tensor<8xf32>
  %q = nn.linear %x, %wq, %bq : (tensor<2x5x8xf32>, tensor<8x8xf32>, tensor<8xf32>) -> tensor<2x5x8xf32>
  %g = nn.gelu %q : tensor<2x5x8xf32>
  %wv = nn.load @wv : tensor<8x6xf32>
  %v = nn.matmul %g, %wv : (tensor<2x5x8xf32>, tensor<8x6xf32>) -> tensor<2x5x6xf32>
  %t = nn.tanh %v : tensor<2x5x6xf32>
  %wo = nn.load @wo : tensor<4x6xf32>
  %o = nn.matmul %t, %wo {transpose_rhs} : (tensor<2x5x6xf32>, tensor<4x6xf32>) -> tensor<2x5x4xf32>
  %f = nn.reshape %o : tensor<2x5x4xf32> -> tensor<2x20xf32>
  %head = nn.load @head : tensor<3x20xf32>
  %head_bias = nn.load @head_bias : tensor<3xf32>
  %logits = nn.linear %f, %head, %head_bias : (tensor<2x20xf32>, tensor<3x20xf32>, tensor<3xf32>) -> tensor<2x3xf32>
  func.return %logits : tensor<2x3xf32>
}
"""


def token_model() -> tuple[ModuleOp, dict[str, np.ndarray]]:
    module = model_io.parse_module(TOKEN_MODEL, "token_model")
    rng = np.random.default_rng(7)
    values = {
        name: (rng.standard_normal(op.type.get_shape()) / math.sqrt(op.type.get_shape()[-1]))
        .astype(np.float32)
        for name, op in params(module).items()
    }
    set_values(module, values)
    batch = {
        "x": rng.standard_normal((2, 5, 8)).astype(np.float32),
        "labels": np.array([2, 0], np.int32),
    }
    return module, batch


# --------------------------------------------------------------------------------------
# (a) Semantics on random models
# --------------------------------------------------------------------------------------

LAYER_OPS = ["linear", "linear", "matmul", "matmul", "relu", "gelu", "add", "reshape"]
"""Layers twice as likely as the rest (a model without a parameter weight is skipped)."""


def _insert(module: ModuleOp, lora: InsertLoraPass) -> ModuleOp:
    try:
        return assert_pass_preserves_semantics(lora, module)
    except PassFailedException:
        # No weight of a linear layer in this model (or one also read another way).
        assume(False)
        raise


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    model=random_models(ops=LAYER_OPS, max_ops=6, dtype="f32"),
    rank=st.integers(1, 3),
    alpha=st.sampled_from([1.0, 2.0, 16.0]),
    init=st.sampled_from(["kaiming", "gaussian"]),
)
def test_insert_lora_does_not_change_the_model(model, rank, alpha, init):
    lora = InsertLoraPass(rank=rank, alpha=alpha, init=init)
    adapted = _insert(model.module, lora)
    adapters = find_adapters(adapted)
    assert adapters
    for adapter in adapters:
        assert not adapter.base.is_trainable
        assert adapter.a.is_trainable and adapter.b.is_trainable
        assert (adapter.rank, adapter.alpha) == (rank, alpha)
        assert not np.any(to_numpy(adapter.b.value))  # B starts at zero
        assert np.any(to_numpy(adapter.a.value))
        assert adapter.a.sym_name.data == f"{adapter.base.sym_name.data}_lora_a"
        assert adapter.b.sym_name.data == f"{adapter.base.sym_name.data}_lora_b"
    scales = [
        float(to_numpy(op.value)) for op in adapted.walk()
        if isinstance(op, nn.ConstantOp) and (op.result.name_hint or "").endswith("_lora_scale")
    ]
    assert all(s == np.float32(alpha / rank) for s in scales)
    assert bool(scales) == (alpha != rank)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    model=random_models(ops=LAYER_OPS, max_ops=6, dtype="f64"),
    rank=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_merge_lora_gives_the_model_the_adapters_compute(model, rank, seed):
    """With any adapter values (as after training), the merged model computes what the
    adapted one does; and the merged function is the original one, op for op."""
    adapted = _insert(model.module, InsertLoraPass(rank=rank, alpha=3.0))
    rng = np.random.default_rng(seed)
    set_values(adapted, {
        name: rng.standard_normal(op.type.get_shape())
        for name, op in params(adapted).items() if is_adapter(op)
    })
    merged = apply(adapted.clone(), "merge-lora")
    # (Not assert_pass_preserves_semantics: the base weights' values change on purpose.)
    (expected,) = Session(adapted).run("forward", model.inputs)[:1]
    (got,) = Session(merged).run("forward", model.inputs)[:1]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11)
    assert not any(is_adapter(p) for p in params(merged).values())
    assert set(params(merged)) == set(params(model.module))
    assert str(function(merged)) == str(function(model.module))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(model=random_models(ops=LAYER_OPS, max_ops=6, dtype="f64"))
def test_merge_after_training_random_models(model):
    """train-lora (mse, Adam), three interpreted steps, merge with the trained state:
    the merged forward is the adapted forward with the trained adapters."""
    adapted = model.module.clone()
    try:
        apply(adapted, "train-lora{rank=2 loss=mse optimizer=adam lr=0.05}")
    except PassFailedException:
        assume(False)
    session = Session(adapted)
    (output,) = session.run("forward", model.inputs)[:1]
    target = np.random.default_rng(0).standard_normal(output.shape)
    for _ in range(3):
        session.run("train_step", {**model.inputs, "labels": target})
    trained = {k: np.array(v) for k, v in session.params.items()}
    (expected,) = session.run("forward", model.inputs)[:1]
    merged = adapted.clone()
    merge_lora(merged, trained)
    (got,) = Session(merged).run("forward", model.inputs)[:1]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11)
    # the pipeline's clean-ups ran on the adapted model
    cleaned = apply(model.module.clone(), "raise-layer-norm,canonicalize,cse,dce")
    assert str(function(merged)) == str(function(cleaned))


def test_insert_then_merge_with_zero_b_is_the_identity():
    module, _ = token_model()
    adapted = apply(module.clone(), "insert-lora{rank=2}")
    merged = apply(adapted, "merge-lora")
    assert str(merged) == str(apply(module.clone(), "freeze{frozen=\"w.*|head\"}"))


def test_merge_lora_without_adapters_changes_nothing():
    module, _ = token_model()
    assert str(apply(module.clone(), "merge-lora")) == str(module)


# --------------------------------------------------------------------------------------
# What insert-lora writes
# --------------------------------------------------------------------------------------


def test_adapter_layouts_and_ops():
    module, _ = token_model()
    adapted = apply(module, "insert-lora{rank=2 alpha=2.0 targets=\"w.*\"}")
    shapes = {n: tuple(p.type.get_shape()) for n, p in params(adapted).items()}
    # PEFT's layout for (out, in) weights (nn.linear, matmul with transpose_rhs); the
    # transposed one for x @ W with W (in, out), so that no transpose is needed.
    assert shapes["wq_lora_a"] == (2, 8) and shapes["wq_lora_b"] == (8, 2)
    assert shapes["wv_lora_a"] == (8, 2) and shapes["wv_lora_b"] == (2, 6)
    assert shapes["wo_lora_a"] == (2, 6) and shapes["wo_lora_b"] == (4, 2)
    assert "head_lora_a" not in shapes
    assert {n for n, p in params(adapted).items() if p.is_trainable} == {
        "bq", "head", "head_bias", *(f"w{k}_lora_{f}" for k in "qvo" for f in "ab")
    }
    ops = [op for op in function(adapted).walk() if isinstance(op, nn.TransposeOp)]
    assert not ops
    matmuls = [op for op in function(adapted).walk() if isinstance(op, nn.MatmulOp)]
    assert sum(op.transpose_rhs is not None for op in matmuls) == 3  # wo, its A and B
    # scale alpha/rank = 1: no multiplication
    assert not any(isinstance(op, nn.MulOp) for op in function(adapted).walk())


def test_init_follows_peft():
    module = model_io.parse_module(
        """
        nn.param @w : tensor<64x256xf32> = dense<0.0> : tensor<64x256xf32>
        func.func @forward(%x: tensor<2x256xf32>) -> tensor<2x64xf32> {
          %w = nn.load @w : tensor<64x256xf32>
          %y = nn.linear %x, %w : (tensor<2x256xf32>, tensor<64x256xf32>) -> tensor<2x64xf32>
          func.return %y : tensor<2x64xf32>
        }
        """,
        "init",
    )

    def a_of(spec: str) -> np.ndarray:
        return to_numpy(params(apply(module.clone(), spec))["w_lora_a"].value)

    # kaiming_uniform_(a=sqrt(5)) on A (rank, in): U(-1/sqrt(in), 1/sqrt(in))
    a = a_of("insert-lora{rank=8 targets=\"w\"}").astype(np.float64)
    assert a.shape == (8, 256)
    bound = 1 / math.sqrt(256)
    assert -bound <= a.min() < -0.95 * bound and 0.95 * bound < a.max() <= bound
    assert abs(a.std() - bound / math.sqrt(3)) < 0.05 * bound
    # gaussian: N(0, 1/rank) as a standard deviation (PEFT's std=1/r)
    g = a_of("insert-lora{rank=8 init=gaussian targets=\"w\"}").astype(np.float64)
    assert abs(g.std() - 1 / 8) < 0.01 and abs(g.mean()) < 0.01
    # deterministic, per seed and per weight
    assert np.array_equal(a, a_of("insert-lora{rank=8 targets=\"w\"}"))
    assert not np.array_equal(a, a_of("insert-lora{rank=8 seed=1 targets=\"w\"}"))


def test_init_of_a_weight_does_not_depend_on_the_other_targets():
    module, _ = token_model()
    alone = params(apply(module.clone(), "insert-lora{targets=\"wv\"}"))["wv_lora_a"]
    together = params(apply(module.clone(), "insert-lora"))["wv_lora_a"]
    assert alone.value == together.value


@pytest.mark.parametrize(
    "spec, message",
    [
        ("insert-lora{targets=\"nothing\"}", "targets='nothing' matches no weight of a linear layer; the model's linear-layer weights: wq, wv, wo, head"),
        ("insert-lora{targets=\"bq\"}", "it matches 1 parameter(s), bq, but none is the weight"),
        ("insert-lora{targets=\"(\"}", "is not a regular expression"),
        ("insert-lora,insert-lora{targets=\"wq\"}", "@wq already has LoRA adapters"),
        ("train-full,insert-lora", "already has a training step"),
    ],
)
def test_insert_lora_errors(spec, message):
    module, _ = token_model()
    with pytest.raises(PassFailedException, match=re.escape(message)):
        apply(module, spec)


def test_a_weight_read_another_way_is_refused():
    module = model_io.parse_module(
        """
        nn.param @w : tensor<3x3xf32>
        func.func @forward(%x: tensor<3x3xf32>) -> tensor<3x3xf32> {
          %w = nn.load @w : tensor<3x3xf32>
          %y = nn.linear %x, %w : (tensor<3x3xf32>, tensor<3x3xf32>) -> tensor<3x3xf32>
          %z = nn.add %y, %w : (tensor<3x3xf32>, tensor<3x3xf32>) -> tensor<3x3xf32>
          func.return %z : tensor<3x3xf32>
        }
        """,
        "shared",
    )
    with pytest.raises(PassFailedException, match=r"@w is the weight of a linear layer "
                       r"but is also read by nn.add \(result %z\)"):
        apply(module, "insert-lora")


def test_merge_lora_refuses_an_edited_branch():
    module, _ = token_model()
    adapted = apply(module, "insert-lora{targets=\"wq\" alpha=8.0}")
    scale = next(op for op in adapted.walk() if isinstance(op, nn.ConstantOp))
    scale.properties["value"] = to_dense(np.array(3.0, np.float32), scale.result.type)
    with pytest.raises(PassFailedException, match="multiplication by something else than "
                       "the scale alpha/rank = 2"):
        apply(adapted, "merge-lora")


def test_merge_lora_needs_values():
    module, _ = token_model()
    adapted = apply(module, "insert-lora{targets=\"wq\"}")
    del params(adapted)["wq"].properties["value"]
    with pytest.raises(PassFailedException, match="@wq has no value to merge"):
        apply(adapted, "merge-lora")


# --------------------------------------------------------------------------------------
# (b) Training against PyTorch
# --------------------------------------------------------------------------------------


class TorchLora(torch.nn.Module):
    """The token model with LoRA on wq, wv, wo written directly in torch, as PEFT's
    `lora.Linear` computes it: `base(x) + scaling * lora_B(lora_A(x))`."""

    def __init__(self, values: dict[str, np.ndarray], scaling: float):
        super().__init__()
        self.scaling = scaling
        self.v = {k: torch.tensor(np.asarray(v, np.float64)) for k, v in values.items()}
        self.adapters = torch.nn.ParameterDict({
            k: torch.nn.Parameter(self.v[k]) for k in values
            if k.endswith(("_lora_a", "_lora_b"))
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v, p, s = self.v, self.adapters, self.scaling
        q = F.linear(x, v["wq"], v["bq"]) + s * F.linear(F.linear(x, p["wq_lora_a"]), p["wq_lora_b"])
        g = F.gelu(q)
        # x @ W with W (in, out): A (in, r), B (r, out)
        t = torch.tanh(g @ v["wv"] + s * (g @ p["wv_lora_a"]) @ p["wv_lora_b"])
        # x @ W^T with W (out, in): PEFT's layout again
        o = t @ v["wo"].T + s * (t @ p["wo_lora_a"].T) @ p["wo_lora_b"].T
        return F.linear(o.reshape(2, 20), v["head"], v["head_bias"])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lora_training_matches_a_torch_lora_model(optimizer):
    module, batch = token_model()
    lr, steps, alpha, rank = 0.05, 3, 6.0, 2
    adapted = apply(
        module,
        f"train-lora{{rank={rank} alpha={alpha} targets=\"w.*\" optimizer={optimizer} lr={lr}}}",
    )
    assert trained_names(adapted) == {f"w{k}_lora_{f}" for k in "qvo" for f in "ab"}
    session = Session(adapted)
    before = {k: np.array(v) for k, v in session.params.items()}
    losses = [float(session.run("train_step", batch)[0]) for _ in range(steps)]

    reference = TorchLora(before, alpha / rank)
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(
        reference.adapters.values(), lr=float(np.float32(lr))
    )
    torch_losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(reference(torch.tensor(batch["x"], dtype=torch.float64)),
                               torch.tensor(batch["labels"]).long())
        loss.backward()
        opt.step()
        torch_losses.append(loss.item())
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-5)
    for name, p in reference.adapters.items():
        ours = session.params[name].astype(np.float64) - before[name]
        theirs = p.detach().numpy() - before[name]
        assert np.max(np.abs(theirs)) > 0, name  # after three steps A and B both move
        np.testing.assert_allclose(ours, theirs, atol=1e-4 * np.max(np.abs(theirs)),
                                   err_msg=name)
    # the base weights and the frozen parameters did not move
    for name in ("wq", "wv", "wo", "bq", "head"):
        np.testing.assert_array_equal(session.params[name], before[name])


def test_one_lora_step_matches_torch_reference_with_trained_classifier():
    """`TorchModel` on the adapted module (adapters and the head trainable), one SGD
    step from an adapter state where B is not zero (so that A has a gradient)."""
    module, batch = token_model()
    adapted = apply(
        module, "train-lora{rank=3 alpha=12.0 targets=\"w.*\" trainable=\"head.*\" lr=1.0}"
    )
    rng = np.random.default_rng(1)
    start = {
        name: (0.3 * rng.standard_normal(op.type.get_shape())).astype(np.float32)
        for name, op in params(adapted).items() if name.endswith("_lora_b")
    }
    session = Session(adapted, start)
    before = {k: np.array(v) for k, v in session.params.items()}
    session.run("train_step", batch)
    trainable = trained_names(adapted)
    assert trainable == {"head", "head_bias", *(f"w{k}_lora_{f}" for k in "qvo" for f in "ab")}
    model = TorchModel(adapted, before, trainable)
    loss = model.loss(model(batch["x"])[0], batch["labels"], "cross-entropy", "mean")
    grads = model.gradients(loss)
    for name in trainable:
        ours = before[name].astype(np.float64) - session.params[name]  # lr = 1
        scale = np.max(np.abs(grads[name]))
        assert scale > 0, name
        np.testing.assert_allclose(ours, grads[name], atol=1e-4 * scale, err_msg=name)


# --------------------------------------------------------------------------------------
# (d) merge after training
# --------------------------------------------------------------------------------------


def test_merge_after_training_reproduces_the_adapted_model():
    module, batch = token_model()
    adapted = apply(
        module,
        "train-lora{rank=2 targets=\"w.*\" trainable=\"head_bias\" optimizer=adam lr=0.05}",
    )
    session = Session(adapted)
    for _ in range(4):
        session.run("train_step", batch)
    trained = {k: np.array(v) for k, v in session.params.items()}
    (expected,) = session.run("forward", {"x": batch["x"]})
    merged = adapted.clone()
    merge_lora(merged, trained)
    (got,) = Session(merged).run("forward", {"x": batch["x"]})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # Deployment form: no adapters, no training step, no optimizer state; the trained
    # head bias is carried over.
    assert [op.sym_name.data for op in merged.ops if isinstance(op, func.FuncOp)] == ["forward"]
    assert set(params(merged)) == {"wq", "bq", "wv", "wo", "head", "head_bias"}
    np.testing.assert_array_equal(to_numpy(params(merged)["head_bias"].value),
                                  trained["head_bias"])
    # and it trains again
    apply(merged, "train-full")


# --------------------------------------------------------------------------------------
# (c) CCT2
# --------------------------------------------------------------------------------------


def cct2_lora(shared_model, spec: str = "") -> tuple[ModuleOp, Path]:
    folder = shared_model("CCT_Train_CCT2_FT2")
    module = import_onnx(folder / "network_infer.onnx")
    apply(module, f'train-lora{{rank=4 targets="{CCT_TARGETS}" trainable="{CCT_CLASSIFIER}"{spec}}}')
    return module, folder


@pytest.mark.slow
def test_cct2_lora_trains_what_the_lora2_fixture_trains(shared_model):
    module, _ = cct2_lora(shared_model)
    report = build_report(module)
    assert report.trainable_params == 13_707
    fixture = np.load(shared_model("CCT_Train_CCT2_LoRA2") / "outputs.npz")
    assert sum(fixture[k].size for k in fixture.files) == 13_707
    ours = Counter(tuple(r.shape) for r in report.parameters if r.trainable)
    theirs = Counter(fixture[k].shape for k in fixture.files)
    assert ours == theirs  # 12 x (128, 4), 12 x (4, 128), classifier and attention pool
    assert len(find_adapters(module)) == 12


def strip_fixture_adapters(module: ModuleOp) -> dict[str, tuple[str, str]]:
    """Removes the LoRA2 fixture's own adapter branches (`y + (x @ A) @ B`); returns
    base weight -> (A, B) by name."""
    found: dict[str, tuple[str, str]] = {}
    forward = function(module)
    for add in [op for op in forward.walk() if isinstance(op, nn.AddOp)]:
        for branch, other in ((add.rhs, add.lhs), (add.lhs, add.rhs)):
            up = branch.owner
            if not isinstance(up, nn.MatmulOp) or not isinstance(up.lhs.owner, nn.MatmulOp):
                continue
            down = up.lhs.owner
            if not (isinstance(down.rhs.owner, nn.LoadOp) and isinstance(up.rhs.owner, nn.LoadOp)):
                continue
            base = other.owner
            if isinstance(base, nn.AddOp):  # the bias add of a projection
                base = next(o.owner for o in base.operands if isinstance(o.owner, nn.MatmulOp))
            assert isinstance(base, nn.MatmulOp) and base.lhs is down.lhs
            found[base.rhs.owner.param.string_value()] = (
                down.rhs.owner.param.string_value(), up.rhs.owner.param.string_value()
            )
            add.result.replace_all_uses_with(other)
            add.detach()
            add.erase()
            break
    apply(module, "dce")
    names = {n for pair in found.values() for n in pair}
    for op in list(module.ops):
        if isinstance(op, nn.ParamOp) and op.sym_name.data in names:
            op.detach()
            op.erase()
    return found


@pytest.mark.slow
def test_one_sgd_step_reproduces_the_lora2_fixture(shared_model):
    """The fixture's model is a CCT with its own adapters (scale 1, B not zero). Replace
    them by ours (alpha = rank: scale 1), start ours from the fixture's values, train
    one SGD step: our adapters and the classifier are the fixture's `outputs.npz`."""
    folder = shared_model("CCT_Train_CCT2_LoRA2")
    module = import_onnx(folder / "network_infer.onnx")
    initial = {k: np.array(v) for k, v in Session(module).params.items()}
    pairs = strip_fixture_adapters(module)
    assert len(pairs) == 12
    targets = "|".join(sorted(pairs))
    apply(module, f'train-lora{{rank=4 alpha=4.0 targets="{targets}" trainable="{CCT_CLASSIFIER}" lr=0.01}}')
    start = {}
    renamed = {}
    for base, (a, b) in pairs.items():
        start[f"{base}_lora_a"], start[f"{base}_lora_b"] = initial[a], initial[b]
        renamed[a], renamed[b] = f"{base}_lora_a", f"{base}_lora_b"
    session = Session(module, start)
    inputs = np.load(folder / "inputs.npz")
    session.run("train_step", {"input": inputs["input"],
                               "labels": inputs["labels"].astype(np.int32)})
    outputs = np.load(folder / "outputs.npz")
    assert {renamed.get(k.removesuffix("_updated"), k.removesuffix("_updated"))
            for k in outputs.files} == trained_names(module)
    for key in outputs.files:
        name = key.removesuffix("_updated")
        ours = renamed.get(name, name)
        before = initial[name].astype(np.float64)
        update, expected = session.params[ours] - before, outputs[key] - before
        # The update itself (the values alone barely move in one step); the attention
        # pool's bias has no gradient (the softmax after it cancels it).
        scale = max(float(np.max(np.abs(expected))), 1e-9)
        np.testing.assert_allclose(update, expected, atol=1e-2 * scale, err_msg=key)
        np.testing.assert_allclose(session.params[ours], outputs[key], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_cct2_report_train_full_against_train_lora(shared_model, tmp_path, capsys):
    folder = shared_model("CCT_Train_CCT2_FT2")
    model = tmp_path / "cct2.mlir"
    model_io.save_model(import_onnx(folder / "network_infer.onnx"), model)
    lora = f'train-lora{{rank=4 targets="{CCT_TARGETS}" trainable="{CCT_CLASSIFIER}"}}'
    assert main(["report", str(model), "--compare", "train-full", lora, "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    full, adapted = reports["train-full"], reports[lora]
    assert full["trainable_params"] == 283_979 and adapted["trainable_params"] == 13_707
    assert full["trainable_params"] / adapted["trainable_params"] >= 14
    training_bytes = {
        k: r["gradient_bytes"] + r["optimizer_state_bytes"] for k, r in reports.items()
    }
    assert training_bytes[lora] < training_bytes["train-full"] / 14
    # The planned arena (activations and gradients of the training step): 832,272 B
    # against 1,138,704 B for train-full (docs/pipelines.md).
    assert adapted["memory"]["L2"]["peak_bytes"] < 0.8 * full["memory"]["L2"]["peak_bytes"]
    assert (training_bytes["train-full"], training_bytes[lora]) == (1_135_916, 54_828)


@pytest.mark.slow
def test_cct2_merge_after_training(shared_model):
    module, folder = cct2_lora(shared_model, " optimizer=adam lr=0.001")
    inputs = np.load(folder / "inputs.npz")
    batch = {"input": inputs["input"], "labels": inputs["labels"].astype(np.int32)}
    session = Session(module)
    losses = [float(session.run("train_step", batch)[0]) for _ in range(3)]
    assert losses[-1] < losses[0]
    (expected,) = session.run("forward", {"input": batch["input"]})
    merged = module.clone()
    merge_lora(merged, {k: np.array(v) for k, v in session.params.items()})
    (got,) = Session(merged).run("forward", {"input": batch["input"]})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert not find_adapters(merged)


# --------------------------------------------------------------------------------------
# (e) The C backend
# --------------------------------------------------------------------------------------


def test_lora_training_step_in_c_matches_the_interpreter(tmp_path: Path):
    module, batch = token_model()
    apply(module, "train-lora{rank=2 targets=\"w.*\" trainable=\"head_bias\" lr=0.1}")
    session = Session(module)
    losses = [float(session.run("train_step", batch)[0]) for _ in range(3)]
    result = compile_and_run(module, tmp_path / "project", batch, steps=3)
    np.testing.assert_allclose(result.losses, losses, rtol=1e-4, atol=1e-6)
    for name, expected in session.params.items():
        got = result.params[name].reshape(expected.shape)
        np.testing.assert_allclose(got, expected, rtol=1e-4,
                                   atol=1e-5 * max(1.0, float(np.max(np.abs(expected)))),
                                   err_msg=name)


def test_train_lora_is_listed_with_its_options():
    import io

    from edge_opt.tools.driver import print_pipelines

    listing = io.StringIO()
    print_pipelines(listing)
    line = next(l for l in listing.getvalue().splitlines() if l.startswith("train-lora{"))
    assert 'targets=".*"' in line
    assert parse_pipeline(line) == (TrainLoraPipeline(),)  # the listing parses back
    (pipeline,) = parse_pipeline(
        'train-lora{rank=8 alpha=16 targets="fc_.*" init=gaussian seed=3 trainable="b" lr=0.1}'
    )
    assert pipeline == TrainLoraPipeline(
        rank=8, alpha=16.0, targets="fc_.*", init="gaussian", seed=3, trainable="b", lr=0.1
    )
    names = [p.name for p in expand([pipeline])]
    assert names == ["raise-layer-norm", "freeze", "insert-lora", "autodiff",
                     "canonicalize", "cse", "dce"]
