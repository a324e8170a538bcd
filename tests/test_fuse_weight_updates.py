"""`fuse-weight-updates`: the fused weight updates give the unfused step's numbers (by
interpretation at the tensor and the planned buffer level, on random trained models),
fuse exactly the plain-SGD updates of single-use gradients, and keep a planned
workspace; their kernels against the unfused pair, op by op."""

from __future__ import annotations

import math

import numpy as np
import pytest
from c_project import assert_c_matches_interpreter
from conftest import deeploy_model
from hypothesis import given, settings
from hypothesis import strategies as st
from plan_checks import (
    OPTIMIZERS,
    assert_same_training,
    mse_labels,
    op_count,
    training_models,
)
from test_memory_passes import assert_same_steps, trained
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import Block

from edge_opt.dialects import kernel, nn, train
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir.interpreters import make_interpreter
from edge_opt.ir.memory_passes import records
from edge_opt.ir.op_graph import function_peak
from edge_opt.ir.options import OptionError
from edge_opt.ir.session import get_function
from edge_opt.passes.fuse_weight_updates import FuseWeightUpdatesPass, chunk_rows
from edge_opt.testing import ForwardBuilder, apply_passes

PROPERTY = settings(max_examples=20, deadline=None)
FUSED = (train.LinearGradWeightSgdOp, train.Conv2dGradWeightSgdOp)


def _fusable(module) -> int:
    """Plain-SGD updates whose gradient is a single-use linear or groups=1 conv weight
    gradient (counted on the unfused module, independently of the pass)."""
    count = 0
    for op in module.walk():
        if not isinstance(op, train.SgdOp):
            continue
        grad = op.grad.owner
        if isinstance(grad, train.Conv2dGradWeightOp) and grad.groups.value.data != 1:
            continue
        if isinstance(grad, train.LinearGradWeightOp | train.Conv2dGradWeightOp) and (
                len(list(grad.result.uses)) == 1):
            count += 1
    return count


@PROPERTY
@given(training_models(), st.sampled_from(sorted(OPTIMIZERS)), st.integers(0, 2**16),
       st.sampled_from(["fuse-weight-updates", "fuse-weight-updates{chunk-bytes=1}",
                        "fuse-weight-updates,reorder-for-memory"]))
def test_fused_step_equals_the_unfused(model, optimizer, seed, passes):
    tensor = trained(model, "train-full", optimizer)
    fused = apply_passes(passes, tensor)
    expected = _fusable(tensor) if optimizer == "sgd" else 0
    assert sum(op_count(fused, t) for t in FUSED) == expected
    assert_same_steps(tensor, fused, model, seed)


@PROPERTY
@given(training_models(), st.integers(0, 2**16), st.sampled_from([1, 64, 16384]))
def test_planned_fused_step_equals_the_tensor_step(model, seed, chunk):
    """Planned buffers (the workspace poisoned by the interpreter before each fused
    kernel, the weight updated in place) give the tensor-level step's numbers."""
    tensor = trained(model, "train-full", "sgd")
    planned = apply_passes(f"fuse-weight-updates{{chunk-bytes={chunk}}},lower-to-buffers",
                           tensor)
    inputs = list(model.inputs.values())
    assert_same_training(tensor, planned, [*inputs, mse_labels(tensor, seed)], inputs)
    for op in planned.walk():
        if isinstance(op, kernel.KernelOp) and op.WORKSPACE:
            assert op.outputs[0] is not op.outputs[-1]
            assert isinstance(op.outputs[-1].owner, kernel.AllocOp)
            assert op.outputs[-1].type.get_shape()[0] == op.chunk_rows.value.data


def _run(op, args):
    return make_interpreter(ModuleOp([])).run_op(op, tuple(args))


@pytest.mark.parametrize("conv", [
    {"stride": [1, 1], "padding": [0, 0, 0, 0]},
    {"stride": [2, 1], "padding": [1, 0, 2, 1]},
    {"stride": [1, 2], "padding": [1, 1, 1, 1], "dilation": [2, 1]},
])
def test_conv_fused_op_is_bitwise_the_pair(conv):
    rng = np.random.default_rng(0)
    x_type, w_type = TensorType(f32, [2, 3, 7, 6]), TensorType(f32, [5, 3, 3, 2])
    probe = Block(arg_types=[x_type, w_type])
    forward_shape = train.Conv2dGradWeightOp(
        probe.args[0], probe.args[0], w_type, **conv).forward_shape([2, 3, 7, 6], [5, 3, 3, 2])
    dy_type = TensorType(f32, forward_shape)
    block = Block(arg_types=[dy_type, x_type, w_type])
    dy, x, w = block.args
    grad = train.Conv2dGradWeightOp(dy, x, w_type, **conv)
    sgd = train.SgdOp(w, grad.result, 0.1, 0.01)
    fused = train.Conv2dGradWeightSgdOp(dy, x, w, 0.1, 0.01, chunk_rows=2, **conv)
    fused.verify()
    values = [rng.standard_normal(t.get_shape()).astype(np.float32)
              for t in (dy_type, x_type, w_type)]
    (gw,) = _run(grad, values[:2])
    (expected,) = _run(sgd, [values[2], gw])
    (actual,) = _run(fused, values)
    assert actual.tobytes() == expected.tobytes()


def test_linear_fused_op_is_bitwise_the_pair():
    rng = np.random.default_rng(1)
    types = [TensorType(f32, s) for s in ([2, 4, 6], [2, 4, 5], [6, 5])]
    block = Block(arg_types=types)
    dy, x, w = block.args
    grad = train.LinearGradWeightOp(dy, x)
    sgd = train.SgdOp(w, grad.result, 0.05)
    fused = train.LinearGradWeightSgdOp(dy, x, w, 0.05, chunk_rows=6)
    values = [rng.standard_normal(t.get_shape()).astype(np.float32) for t in types]
    (gw,) = _run(grad, values[:2])
    (expected,) = _run(sgd, [values[2], gw])
    (actual,) = _run(fused, values)
    assert actual.tobytes() == expected.tobytes()


@pytest.mark.parametrize("shape, budget, rows", [
    ([128, 64, 3, 3], 16384, 7),   # 2,304 B rows
    ([128, 64, 3, 3], 1, 1),       # at least one row
    ([10, 4], 10**6, 10),          # at most the whole weight
])
def test_chunk_rows(shape, budget, rows):
    assert chunk_rows(TensorType(f32, shape), budget) == rows


def test_chunk_bytes_must_be_positive():
    with pytest.raises(OptionError, match="chunk-bytes=0"):
        FuseWeightUpdatesPass(chunk_bytes=0)


def test_recorded_peaks_are_the_models(cct2_trained):
    fused = apply_passes("fuse-weight-updates", cct2_trained)
    (record,) = records(fused)
    assert record["pass"] == "fuse-weight-updates" and record["extra_flops"] == 0
    assert record["peak_before"] == function_peak(
        get_function(cct2_trained, "train_step"), "test")
    assert record["peak_after"] == function_peak(get_function(fused, "train_step"), "test")


def test_fusing_lowers_cct2s_peak_after_segments(cct2_trained):
    """After recompute segments and reordering, the tokenizer's weight gradient sets
    the peak of CCT2's step; fused, it is gone and the model's peak drops."""
    segments = ("recompute{segments=true expensive=true max-extra-flops=0.2},"
                "reorder-for-memory{function=train_step}")
    plain = apply_passes(segments, cct2_trained)
    fused = apply_passes(f"fuse-weight-updates,{segments}", cct2_trained)
    peaks = [function_peak(get_function(m, "train_step"), "test") for m in (plain, fused)]
    assert peaks[1] < peaks[0] - 100_000, peaks  # 540,676 -> 401,412 B when written


@pytest.fixture(scope="module")
def cct2_trained():
    model = import_onnx(deeploy_model("CCT_Train_CCT2_FT2") / "network_infer.onnx")
    return apply_passes("pool-before-activation,train-full", model)


# --------------------------------------------------------------------------------------
# The C kernels, in a generated project against the interpreter
# --------------------------------------------------------------------------------------


def _conv_linear_model(batch: int, conv: dict) -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """conv2d -> relu -> flatten -> linear, float32, batch `batch`."""
    b = ForwardBuilder((batch, 3, 7, 6), seed=batch, dtype=np.float32)
    y = b.op(nn.Conv2dOp(b.x, b.param("conv_weight", (5, 3, 3, 2)), None, **conv))
    y = b.op(nn.ReluOp(y))
    flat = math.prod(y.type.get_shape()[1:])
    y = b.op(nn.ReshapeOp(y, (batch, flat)))
    y = b.op(nn.LinearOp(y, b.param("fc_weight", (4, flat)), b.param("fc_bias", (4,))))
    return b.module(y), b.inputs


_PLAIN = {"stride": (1, 1), "padding": (0, 0, 0, 0)}


@pytest.mark.parametrize("batch, conv, chunk", [
    (1, _PLAIN, 16384),                                    # whole weights at once
    (1, {"stride": (2, 1), "padding": (1, 0, 2, 1)}, 144),  # conv rows 2, 2, 1
    (2, {"stride": (1, 2), "padding": (1, 1, 1, 1), "dilation": (2, 1)}, 1),  # row by row
    (2, _PLAIN, 1500),                                     # linear rows 3, 1
])
def test_c_fused_updates_match_the_interpreter(batch, conv, chunk, tmp_path):
    """Batch 1 takes the usual convolution kernel on channel slices, batch 2 the direct
    loop; the conv weight's rows are 72 B, the linear weight's 400 or 500 B (chunk-bytes
    clamps to whole rows); 8 threads split every chunk."""
    module, inputs = _conv_linear_model(batch, conv)
    tensor = apply_passes("train-full{loss=mse lr=0.05 weight-decay=0.01}", module)
    fused = apply_passes(f"fuse-weight-updates{{chunk-bytes={chunk}}}", tensor)
    assert sum(op_count(fused, t) for t in FUSED) == 2
    labels = np.random.default_rng(0).standard_normal((batch, 4)).astype(np.float32)
    assert_c_matches_interpreter(fused, tmp_path / "project", {**inputs, "labels": labels})


def test_c_cct2_fused_step_matches_the_interpreter(tmp_path):
    """CCT2's train-full step as the bench plans it to fit GAP9's L2 (fused updates,
    expensive segments, reordering): two steps in C equal the interpreter's."""
    model = import_onnx(deeploy_model("CCT_Train_CCT2_FT2") / "network_infer.onnx")
    module = apply_passes(
        "pool-before-activation,train-full{lr=0.01},fuse-weight-updates,"
        "recompute{segments=true expensive=true max-extra-flops=0.2},"
        "reorder-for-memory{function=train_step}", model)
    assert sum(op_count(module, t) for t in FUSED) > 0
    (image, _) = get_function(module, "train_step").body.block.args
    x = np.random.default_rng(0).standard_normal(image.type.get_shape()).astype(np.float32)
    batch = {image.name_hint: x, "labels": np.array([3], dtype=np.int32)}
    assert_c_matches_interpreter(module, tmp_path / "project", batch, steps=2)
