"""The passes that lower the peak of live bytes: `reorder-for-memory`, `recompute`,
`pool-before-activation`. The order search against brute force over every
topological order; each pass by interpretation on random models (forward and training
step); the graph model against the memory planner; the figures on CCT2."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import ROOT, deeploy_model
from hypothesis import given, settings
from hypothesis import strategies as st
from plan_checks import (
    OPTIMIZERS,
    assert_same_training,
    mse_labels,
    train_or_reject,
    training_models,
    with_options,
)
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import SSAValue

from edge_opt.dialects import nn
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir.cost import flops
from edge_opt.ir.memory_passes import records
from edge_opt.ir.memory_report import memory_figures
from edge_opt.ir.model_io import load_model
from edge_opt.ir.op_graph import op_graph
from edge_opt.ir.session import Session, get_function
from edge_opt.support.op_order import Graph, order
from edge_opt.testing import (
    ForwardBuilder,
    RandomModel,
    apply_passes,
    assert_pass_preserves_semantics,
    random_models,
)

PROPERTY = settings(max_examples=25, deadline=None)


# --------------------------------------------------------------------------------------
# The order search
# --------------------------------------------------------------------------------------


@st.composite
def graphs(draw, max_ops: int = 7) -> Graph:
    """Random DAGs: op v creates buffer v (maybe empty) and reads buffers of earlier
    ops (its dependencies), maybe in place; some buffers pinned."""
    n = draw(st.integers(1, max_ops))
    deps = [sorted(draw(st.sets(st.integers(0, v - 1), max_size=3))) if v else []
            for v in range(n)]
    size = [draw(st.sampled_from([0, 1, 2, 4, 8, 16])) for _ in range(n)]
    in_place = [[(v, deps[v])] if deps[v] and draw(st.booleans()) else []
                for v in range(n)]
    pinned = frozenset(draw(st.sets(st.integers(0, n - 1), max_size=2)))
    return Graph(deps, [[v] for v in range(n)], deps, size, in_place, pinned)


def topological(graph: Graph, sequence) -> bool:
    seen: set[int] = set()
    for v in sequence:
        if any(u not in seen for u in graph.deps[v]):
            return False
        seen.add(v)
    return sorted(sequence) == list(range(len(graph)))


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_exact_search_finds_the_least_peak_of_every_order(graph: Graph):
    best = min(graph.peak(p) for p in itertools.permutations(range(len(graph)))
               if topological(graph, p))
    sequence, exact = order(graph, exact_limit=10**6, window=len(graph))
    assert exact and topological(graph, sequence)
    assert graph.peak(sequence) == best


@settings(max_examples=60, deadline=None)
@given(graphs(max_ops=40), st.integers(1, 8), st.integers(1, 6), st.integers(1, 4))
def test_windowed_search_is_topological_and_never_worse(graph, window, limit, beam):
    sequence, _ = order(graph, exact_limit=limit, beam=beam, window=window)
    assert topological(graph, sequence)
    assert graph.peak(sequence) <= graph.peak(range(len(graph)))


# --------------------------------------------------------------------------------------
# The passes keep the meaning of the module
# --------------------------------------------------------------------------------------


def trained(model: RandomModel, strategy: str, optimizer: str) -> ModuleOp:
    return train_or_reject(with_options(strategy, f"loss=mse {OPTIMIZERS[optimizer]}"),
                           model.module)


def assert_same_steps(before: ModuleOp, after: ModuleOp, model: RandomModel, seed: int):
    inputs = list(model.inputs.values())
    assert_same_training(before, after, [*inputs, mse_labels(before, seed)], inputs)


@PROPERTY
@given(training_models(), st.sampled_from(sorted(OPTIMIZERS)), st.integers(0, 2**16),
       st.sampled_from(["reorder-for-memory{window=3 exact-limit=8 beam=2}",
                        "reorder-for-memory", "recompute{max-extra-flops=1}",
                        "recompute,reorder-for-memory",
                        "recompute{segments=true max-extra-flops=1}",
                        ("recompute{segments=true expensive=true max-extra-flops=1},"
                         "reorder-for-memory")]))
def test_memory_passes_keep_the_training_step(model, optimizer, seed, passes):
    tensor = trained(model, "train-full", optimizer)
    assert_same_steps(tensor, apply_passes(passes, tensor), model, seed)


@PROPERTY
@given(training_models(), st.sampled_from(sorted(OPTIMIZERS)), st.integers(0, 2**16))
def test_expensive_segments_keep_the_training_step(model, optimizer, seed):
    """Segments through any op, with a budget that allows every one of them: copies of
    convolutions and matmuls read parameters the step updates in place."""
    tensor = trained(model, "train-full", optimizer)
    passes = "recompute{segments=true expensive=true max-extra-flops=10}"
    assert_same_steps(tensor, apply_passes(passes, tensor), model, seed)


@PROPERTY
@given(random_models(max_ops=10))
def test_reorder_keeps_the_forward(model: RandomModel):
    assert_pass_preserves_semantics("reorder-for-memory{window=4 exact-limit=16}",
                                    model.module, model.inputs)


POOLED = ["relu", "clip", "leaky_relu", "max_pool2d", "conv2d", "add", "batch_norm"]


@PROPERTY
@given(random_models(ops=POOLED, max_ops=8))
def test_pool_before_activation_keeps_the_forward(model: RandomModel):
    assert_pass_preserves_semantics("pool-before-activation", model.module, model.inputs,
                                    rtol=0, atol=0)


@PROPERTY
@given(training_models(), st.sampled_from(sorted(OPTIMIZERS)), st.integers(0, 2**16))
def test_pool_before_activation_keeps_the_training_step(model, optimizer, seed):
    tensor = trained(model, "train-full", optimizer)
    rewritten = train_or_reject(
        f"pool-before-activation,train-full{{loss=mse {OPTIMIZERS[optimizer]}}}",
        model.module,
    )
    assert_same_steps(tensor, rewritten, model, seed)


# --------------------------------------------------------------------------------------
# The graph model and the memory planner; the figures
# --------------------------------------------------------------------------------------


def planned_l2(module: ModuleOp) -> dict:
    return memory_figures(apply_passes("lower-to-buffers", module))["L2"]


def model_peak(module: ModuleOp, function: str = "train_step") -> int:
    graph = op_graph(get_function(module, function), "test").graph
    return graph.peak(range(len(graph)))


@pytest.fixture(scope="module")
def cct2() -> ModuleOp:
    return import_onnx(deeploy_model("CCT_Train_CCT2_FT2") / "network_infer.onnx")


CCT2_STEPS = {
    "train-full": "train-full",
    "+ pool-before-activation": "pool-before-activation,train-full",
    "+ recompute": "pool-before-activation,train-full,recompute",
    "+ reorder-for-memory": "pool-before-activation,train-full,recompute,"
                            "reorder-for-memory",
}


def test_each_pass_lowers_the_planned_peak_of_cct2(cct2):
    """Each pass lowers the model's peak of CCT2's training step and the planner's lower
    bound with it; the lower bound is the model's peak plus the constants (the model
    counts every buffer the planner places)."""
    bounds, peaks = [], []
    for spec in CCT2_STEPS.values():
        module = apply_passes(spec, cct2)
        figures = planned_l2(module)
        bounds.append(figures["lower_bound_bytes"])
        peaks.append(model_peak(module))
        assert figures["lower_bound_bytes"] >= peaks[-1]
        assert figures["lower_bound_bytes"] - peaks[-1] <= figures["constants_bytes"] + 64
        assert figures["peak_bytes"] >= figures["lower_bound_bytes"]
    assert all(a > b for a, b in itertools.pairwise(bounds)), bounds
    assert all(a > b for a, b in itertools.pairwise(peaks)), peaks


def test_segments_lower_the_peak_of_cct2_further(cct2):
    """Segments (cheap ops only) lower CCT2's training step below what single
    recomputations reach, and reordering still helps after them; expensive segments
    stay within their FLOP budget."""
    trained = apply_passes("pool-before-activation,train-full", cct2)
    greedy = apply_passes("recompute,reorder-for-memory{function=train_step}", trained)
    segments = apply_passes("recompute{segments=true},reorder-for-memory{function=train_step}",
                            trained)
    assert model_peak(segments) < model_peak(greedy)
    assert planned_l2(segments)["peak_bytes"] < planned_l2(greedy)["peak_bytes"]
    step_flops = sum(flops(op) for op in get_function(trained, "train_step").body.block.ops)
    expensive = apply_passes("recompute{segments=true expensive=true max-extra-flops=0.02}",
                             trained)
    (record,) = records(expensive)
    assert 0 < record["extra_flops"] <= 0.02 * step_flops
    assert record["peak_after"] == model_peak(expensive) < record["peak_before"]


def test_report_records_what_the_passes_did(cct2):
    module = apply_passes(CCT2_STEPS["+ reorder-for-memory"], cct2)
    (recompute, *reorders) = records(module)
    assert recompute["pass"] == "recompute" and recompute["extra_flops"] > 0
    step = [r for r in reorders if r["function"] == "train_step"]
    assert step[0]["peak_before"] == recompute["peak_after"] > step[0]["peak_after"]
    assert step[0]["peak_after"] == model_peak(module)


def _relu_then_pool(also_return_relu: bool) -> ModuleOp:
    b = ForwardBuilder((1, 2, 4, 4), seed=0)
    relu = b.op(nn.ReluOp(b.x), "r")
    pooled = b.op(nn.MaxPool2dOp(relu, (2, 2)), "p")
    return b.module(pooled, relu) if also_return_relu else b.module(pooled)


@pytest.mark.parametrize("also_return_relu, expected", [
    (False, ["nn.max_pool2d", "nn.relu"]),
    (True, ["nn.relu", "nn.max_pool2d"]),
])
def test_pool_before_activation_moves_only_a_sole_use(also_return_relu, expected):
    moved = apply_passes("pool-before-activation", _relu_then_pool(also_return_relu))
    ops = [op.name for op in get_function(moved, "forward").body.block.ops]
    assert ops[:2] == expected


# --------------------------------------------------------------------------------------
# fold-batch-norm
# --------------------------------------------------------------------------------------


def tiny_cnn_module() -> tuple[ModuleOp, dict[str, np.ndarray]]:
    return (load_model(ROOT / "examples" / "tiny_cnn.mlir"),
            dict(np.load(ROOT / "examples" / "tiny_cnn_input.npz")))


def _ops(module: ModuleOp, function: str = "forward") -> list[str]:
    return [op.name for op in get_function(module, function).body.block.ops]


@st.composite
def frozen_conv_bn_models(draw) -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """A frozen conv (any groups, stride, padding, with or without bias) -> batch norm
    -> relu, optionally a frozen linear -> batch norm over (N, C), then a trainable
    linear head (float64)."""
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    groups = draw(st.sampled_from([1, c]))
    o = c * draw(st.integers(1, 2)) if groups == c else draw(st.integers(1, 4))
    k, stride, pad = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1))
    size = draw(st.integers(k, 5))
    b = ForwardBuilder((n, c, size, size), seed=draw(st.integers(0, 2**16)))

    def batch_norm(x: SSAValue, name: str, channels: int) -> SSAValue:
        stats = [b.param(f"{name}_{p}", (channels,), trainable=False, value=v)
                 for p, v in (("scale", 1 + 0.5 * b.rng.standard_normal(channels)),
                              ("shift", b.rng.standard_normal(channels)),
                              ("mean", b.rng.standard_normal(channels)),
                              ("var", 0.2 + b.rng.random(channels)))]
        return b.op(nn.BatchNormOp(x, *stats, epsilon=1e-3))

    bias = b.param("conv_bias", (o,), trainable=False) if draw(st.booleans()) else None
    conv = b.op(nn.Conv2dOp(b.x, b.param("conv_weight", (o, c // groups, k, k),
                                           trainable=False),
                            bias, stride=(stride, stride), padding=(pad,) * 4,
                            groups=groups))
    y = b.op(nn.ReluOp(batch_norm(conv, "bn", o)))
    shape = y.type.get_shape()
    y = b.op(nn.ReshapeOp(y, (n, int(np.prod(shape[1:])))))
    if draw(st.booleans()):
        hidden = b.op(nn.LinearOp(y, b.param("fc1_weight", (3, y.type.get_shape()[1]),
                                              trainable=False)))
        y = batch_norm(hidden, "bn1", 3)
    head = b.op(nn.LinearOp(y, b.param("head_weight", (2, y.type.get_shape()[1]))))
    return b.module(head), b.inputs


@settings(PROPERTY, max_examples=40)
@given(frozen_conv_bn_models())
def test_fold_batch_norm_keeps_the_forward(case):
    module, inputs = case
    folded = assert_pass_preserves_semantics("fold-batch-norm", module, inputs,
                                             rtol=1e-9, atol=1e-12)
    assert "nn.batch_norm" not in _ops(folded)


@settings(PROPERTY, max_examples=30)
@given(frozen_conv_bn_models(), st.integers(0, 2**16))
def test_fold_batch_norm_keeps_the_training_step(case, seed: int):
    """Folding the frozen layers, then training the head, trains it as without folding
    (float64: the fold's rounding stays far below the tolerance)."""
    module, inputs = case
    plain = apply_passes("train-full{loss=mse lr=0.1}", module)
    folded = apply_passes("fold-batch-norm,train-full{loss=mse lr=0.1}", module)
    args = [*inputs.values(), mse_labels(plain, seed)]
    expected, actual = Session(plain), Session(folded)
    for _ in range(2):
        np.testing.assert_allclose(actual.run("train_step", args),
                                   expected.run("train_step", args), rtol=1e-9)
    np.testing.assert_allclose(actual.params["head_weight"],
                               expected.params["head_weight"], rtol=1e-9, atol=1e-12)


def test_fold_batch_norm_folds_frozen_layers_only():
    """In the tiny CNN with only the classifier trainable, conv1 + bn1 fold (their
    parameters go); with conv1 trainable, nothing folds. One training step is the same
    as without folding."""
    module, batch = tiny_cnn_module()
    frozen = apply_passes('freeze{trainable="fc_.*"},fold-batch-norm', module)
    assert "nn.batch_norm" not in _ops(frozen)
    names = {op.sym_name.data for op in frozen.ops if isinstance(op, nn.ParamOp)}
    assert not names & {"conv1_weight", "conv1_bias", "bn1_scale", "bn1_mean"}
    assert {"conv1_weight__bn_folded", "conv1_bias__bn_folded"} <= names
    trainable = apply_passes('freeze{trainable="conv1_.*|fc_.*"},fold-batch-norm', module)
    assert "nn.batch_norm" in _ops(trainable)

    plain = Session(apply_passes('freeze{trainable="fc_.*"},train-full', module))
    fold = Session(apply_passes('freeze{trainable="fc_.*"},fold-batch-norm,train-full',
                                module))
    for _ in range(2):
        np.testing.assert_allclose(fold.run("train_step", batch), plain.run(
            "train_step", batch), rtol=1e-5)
    for name in ("fc_weight", "fc_bias"):
        np.testing.assert_allclose(fold.params[name], plain.params[name], rtol=1e-5,
                                   atol=1e-7)
