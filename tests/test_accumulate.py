"""Gradient accumulation (`accumulate=k`): the step on k micro-batches equals the step on
the whole batch wherever no op couples samples (interpreter, random models, C), ops that
couple samples are rejected by name, and the planned memory is the micro-batch's."""

from __future__ import annotations

import numpy as np
import pytest
from c_project import assert_c_matches_interpreter
from conftest import ROOT
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.autodiff.micro_batches import Coupling
from edge_opt.dialects import nn
from edge_opt.ir.model_io import load_model
from edge_opt.ir.session import Session, get_function, input_names
from edge_opt.testing import ForwardBuilder, RandomModel, apply_passes, random_models
from edge_opt.tools.commands import analyse

TINY_CNN = ROOT / "examples" / "tiny_cnn.mlir"


def tiny_cnn() -> tuple[ModuleOp, dict[str, np.ndarray]]:
    return load_model(TINY_CNN), dict(np.load(ROOT / "examples" / "tiny_cnn_input.npz"))


def steps(module: ModuleOp, spec: str, batch, count: int = 2):
    """The losses of `count` steps of `spec` and the parameters after them."""
    session = Session(apply_passes(spec, module))
    losses = [float(session.run("train_step", batch)[0]) for _ in range(count)]
    return losses, session.params


def assert_same_steps(module, batch, options: str, k: int, rtol: float,
                      pipeline: str = "train-full") -> None:
    whole = steps(module, f"{pipeline}{{{options}}}", batch)
    micro = steps(module, f"{pipeline}{{{options} accumulate={k}}}", batch)
    np.testing.assert_allclose(micro[0], whole[0], rtol=rtol, atol=rtol)
    assert micro[1].keys() == whole[1].keys()
    for name, value in whole[1].items():
        np.testing.assert_allclose(micro[1][name], value, rtol=rtol, atol=rtol,
                                   err_msg=f"@{name}")


OPTIONS = {
    "sgd": ("train-full", "lr=0.05"),
    "momentum, weight decay": ("train-full", "lr=0.05 momentum=0.9 weight-decay=0.01"),
    "adam": ("train-full", "optimizer=adam lr=0.01"),
    "sum": ("train-full", "lr=0.01 reduction=sum"),
    "last layers": ("train-last", "layers=2 lr=0.05"),
}


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("pipeline, options", OPTIONS.values(), ids=OPTIONS.keys())
def test_tiny_cnn_micro_batches_equal_the_batch(pipeline, options, k):
    module, batch = tiny_cnn()
    assert_same_steps(module, batch, options, k, rtol=2e-6, pipeline=pipeline)


def _train_inputs(model: RandomModel, module: ModuleOp) -> list[np.ndarray]:
    forward = get_function(module, "forward")
    (output,) = forward.function_type.outputs.data[:1]
    labels = np.random.default_rng(1).standard_normal(output.get_shape())
    return [model.inputs[name] for name in input_names(forward)] + [labels]


@settings(max_examples=25, deadline=None)
@given(random_models(dtype="f64", batch=(4,), trainable="all", max_ops=6),
       st.sampled_from([2, 4]))
def test_random_models_micro_batches_equal_the_batch(model: RandomModel, k: int):
    """Whenever the analysis accepts a model, the k micro-batches give the whole
    batch's step (f64; mse against random labels)."""
    batch = _train_inputs(model, model.module)
    try:
        micro = steps(model.module, f"train-full{{loss=mse lr=0.1 accumulate={k}}}",
                      batch)
    except Coupling:
        assume(False)
    except PassFailedException as e:
        assume("trainable" not in str(e))  # a model without a parameter to train
        raise
    whole = steps(model.module, "train-full{loss=mse lr=0.1}", batch)
    np.testing.assert_allclose(micro[0], whole[0], rtol=1e-9, atol=1e-12)
    for name, value in whole[1].items():
        np.testing.assert_allclose(micro[1][name], value, rtol=1e-9, atol=1e-12,
                                   err_msg=f"@{name}")


def test_c_runs_the_micro_batches_as_the_interpreter(tmp_path):
    module, batch = tiny_cnn()
    stepped = apply_passes("train-full{lr=0.05 accumulate=2}", module)
    assert_c_matches_interpreter(stepped, tmp_path / "project", batch, steps=3)


def test_planned_memory_shrinks_with_the_micro_batch():
    module, _ = tiny_cnn()
    peaks, saved = [], []
    for k in (1, 2, 4):
        report = analyse(apply_passes(f"train-full{{accumulate={k}}}", module),
                         None, None, None)
        peaks.append(report.extra["memory"]["L2"]["peak_bytes"])
        saved.append(report.saved_activation_bytes)
    assert peaks[0] > peaks[1] > peaks[2], peaks
    assert saved[0] > saved[1] > saved[2], saved


def _model(build) -> ModuleOp:
    b = ForwardBuilder((4, 3), seed=0)
    y = build(b)
    return b.module(b.op(nn.LinearOp(y, b.param("w", (2, 3)))))


COUPLING = {
    "reduce over the batch": (
        lambda b: b.op(nn.SubOp(b.x, b.op(nn.ReduceMeanOp(b.x, [0], keepdims=True))),
                       "centred"),
        r"nn.reduce_mean reduces over the batch axis",
    ),
    "softmax over the batch": (
        lambda b: b.op(nn.SoftmaxOp(b.x, axis=0), "p"),
        r"nn.softmax %p normalises along the batch axis",
    ),
    "batch statistics": (
        lambda b: b.op(nn.BatchNormOp(
            b.x, b.param("g", (3,)), b.param("s", (3,)), b.param("m", (3,), False),
            b.param("v", (3,), False, value=np.ones(3)), training=True), "n"),
        r"nn.batch_norm %n normalises with batch statistics",
    ),
    "reshape across samples": (
        lambda b: b.op(nn.ReshapeOp(b.op(nn.ReshapeOp(b.x, (12,)), "flat"), (4, 3))),
        r"nn.reshape %flat changes the number of rows",
    ),
    "a (N, C) constant": (
        lambda b: b.op(nn.AddOp(b.x, b.constant(np.arange(12.0).reshape(4, 3))), "y"),
        r"nn.add %y reads tensor<4x3xf64>, whose 4 rows are not samples",
    ),
}


@pytest.mark.parametrize("build, message", COUPLING.values(), ids=COUPLING.keys())
def test_ops_that_couple_samples_are_named(build, message):
    with pytest.raises(Coupling, match=r"autodiff: accumulate=2: " + message + r".*"
                       r"micro-batches of 2 would not compute the batch of 4"):
        apply_passes("train-full{accumulate=2}", _model(build))


def test_per_sample_shape_ops_are_accepted():
    def build(b):
        wide = b.op(nn.ReshapeOp(b.x, (4, 3, 1)))
        moved = b.op(nn.TransposeOp(wide, (0, 2, 1)))
        back = b.op(nn.ReshapeOp(moved, (4, 3)))
        return b.op(nn.SoftmaxOp(b.op(nn.ReduceSumOp(
            b.op(nn.UnsqueezeOp(back, [2])), [2])), axis=1))

    module = _model(build)
    batch = [np.random.default_rng(0).standard_normal((4, 3)), np.array([0, 1, 1, 0],
                                                                         np.int32)]
    assert_same_steps(module, batch, "lr=0.5", 2, rtol=1e-12)


def test_bad_accumulation_is_an_error():
    module, _ = tiny_cnn()
    with pytest.raises(PassFailedException, match=r"accumulate=3: the batch of 4 does "
                       r"not split into 3 micro-batches; choose a divisor of 4"):
        apply_passes("train-full{accumulate=3}", module)
    with pytest.raises(PassFailedException, match=r"accumulate=2: bn=batch-update "
                       r"normalises with statistics of the whole batch.*bn=frozen"):
        apply_passes("train-full{accumulate=2 bn=batch-update}", module)
