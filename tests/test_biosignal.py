"""The biosignal examples (`examples/biosignal`): the EEG and EOG models exported by
`make_models.py` import, their forward matches onnxruntime, a training step with
`bn=batch-update` matches PyTorch's train mode (the same network rebuilt in torch with
the ONNX weights, both in float64), the generated C of a training step matches the
interpreter, and the calibration demo adapts the model to the new subject."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from c_project import assert_c_matches_interpreter
from conftest import ROOT
from onnx import numpy_helper

from edge_opt.dialects import nn
from edge_opt.frontends.onnx import import_onnx
from edge_opt.ir.model_io import load_model, save_model
from edge_opt.ir.session import Session
from edge_opt.testing import apply_passes

HERE = ROOT / "examples" / "biosignal"
LR = 0.1


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


synthetic = _load("synthetic")
make_models = _load("make_models")
calibrate = _load("calibrate")

MODELS = {
    "eeg": (make_models.EegNet, synthetic.eeg_subject, synthetic.eeg_batch),
    "eog": (make_models.EogNet, synthetic.eog_subject, synthetic.eog_batch),
}


def new_subject_batch(name: str, count: int, seed: int = 0):
    _, subject, batch = MODELS[name]
    person = subject(synthetic.NEW_SUBJECT, synthetic.NEW_SHIFT)
    return batch(person, count, np.random.default_rng(seed))


def imported(name: str, batch: int):
    x, _ = new_subject_batch(name, batch)
    return import_onnx(HERE / f"{name}.onnx", input_shapes={"input": x.shape})


def torch_model(name: str) -> torch.nn.Module:
    """The network of `make_models.py` with the weights and running statistics of the
    committed ONNX file (its initializers keep PyTorch's state-dict names)."""
    model = MODELS[name][0]()
    initializers = {i.name: numpy_helper.to_array(i)
                    for i in onnx.load(HERE / f"{name}.onnx").graph.initializer}
    state = {key: torch.from_numpy(initializers[key].copy())
             for key in model.state_dict() if not key.endswith("num_batches_tracked")}
    model.load_state_dict(state, strict=False)
    return model


@pytest.mark.parametrize("name", MODELS)
def test_batch_norm_imports_with_running_statistics(name):
    module = imported(name, 1)
    params = {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}
    norms = [op for op in module.walk() if isinstance(op, nn.BatchNormOp)]
    assert len(norms) == 3
    for norm in norms:
        scale, bias, mean, var = (o.owner.param.root_reference.data
                                   for o in norm.operands[1:])
        assert params[scale].is_trainable and params[bias].is_trainable
        assert not params[mean].is_trainable and not params[var].is_trainable


@pytest.mark.parametrize("name", MODELS)
def test_forward_matches_onnxruntime(name):
    x, _ = new_subject_batch(name, 4)
    (ours,) = Session(imported(name, 4)).run("forward", [x])
    session = ort.InferenceSession(str(HERE / f"{name}.onnx"),
                                   providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"input": x})
    scale = np.max(np.abs(expected))
    assert np.max(np.abs(ours - expected)) <= 1e-4 * scale


def float64_model(name: str, batch: int, directory):
    """The imported model in float64 (types and parameter values)."""
    save_model(imported(name, batch), directory / "f32.mlir")
    text = (directory / "f32.mlir").read_text().replace("f32", "f64")
    (directory / "f64.mlir").write_text(text)
    values = np.load(directory / "f32.npz")
    np.savez(directory / "f64.npz", **{k: values[k].astype(np.float64) for k in values})
    return load_model(directory / "f64.mlir")


@pytest.mark.parametrize("name", MODELS)
def test_batch_update_step_matches_pytorch_train_mode(name, tmp_path):
    """One SGD step with batch statistics and the running-statistics update, float64:
    loss, every parameter and running statistic after the step to 1e-5 relative."""
    x, y = new_subject_batch(name, 4)
    module = apply_passes(f"train-full{{bn=batch-update lr={LR}}}",
                          float64_model(name, 4, tmp_path))
    session = Session(module)
    (loss,) = session.run("train_step", [x.astype(np.float64), y])

    model = torch_model(name).double().train()
    expected_loss = torch.nn.functional.cross_entropy(
        model(torch.from_numpy(x.astype(np.float64))), torch.from_numpy(y).long())
    expected_loss.backward()
    torch.optim.SGD(model.parameters(), lr=LR).step()
    np.testing.assert_allclose(float(loss), expected_loss.item(), rtol=1e-5)
    expected = {k.replace(".", "_"): v for k, v in model.state_dict().items()
                if not k.endswith("num_batches_tracked")}
    assert set(expected) <= set(session.params), sorted(set(expected) - set(session.params))
    for key, value in expected.items():
        np.testing.assert_allclose(session.params[key], value.numpy(), rtol=1e-5,
                                   atol=1e-12, err_msg=f"@{key} after the step")


@pytest.mark.parametrize(("name", "soc", "batch"),
                         [("eeg", "host", 2), ("eeg", "gap9", 1), ("eog", "gap9", 2)])
def test_batch_update_step_in_c_matches_interpreter(name, soc, batch, tmp_path):
    """Host: untiled, all in one arena. GAP9: every kernel on L1 tiles fed by DMA (the
    EEG's depthwise spatial convolution cut along time: tests/test_tiling_grouped.py;
    batch 1, as a training-mode batch norm keeps each channel's plane of the whole batch
    in L1: at batch 2 the EEG's 2 x 22 x 257 planes, double-buffered, exceed it)."""
    x, y = new_subject_batch(name, batch)
    module = apply_passes(f"train-full{{bn=batch-update lr={LR} momentum=0.9}},"
                          f"lower-to-buffers{{soc={soc} weights=L2}}", imported(name, batch))
    assert_c_matches_interpreter(module, tmp_path / "project", {"input": x, "labels": y},
                                 steps=2)


def test_calibration_adapts_to_the_new_subject():
    """The demo's core on a small budget (EOG, 32 calibration trials, 3 epochs): every
    strategy lowers the cross-entropy of the calibration set (what it trains on) well
    below the unadapted model's, and the best strategy gains held-out accuracy. (The
    new subject's shift makes the unadapted loss about 20 on seeds 0-2, after 3 epochs
    it is at most 13; fewer steps are not robust: with 2-4 batches, full training with
    batch statistics can end with running statistics that lag its weights.)"""
    data = calibrate.new_subject("eog", calibration=32, held_out=32)
    outcomes = [calibrate.adapt("eog", strategy, data, epochs=3)
                for strategy in calibrate.STRATEGIES]
    for outcome in outcomes:
        assert outcome.loss_after < 0.75 * outcome.loss_before, outcome
        assert outcome.trainable_params > 0 and outcome.l2_peak_bytes > 0, outcome
    before = outcomes[0].accuracy_before
    assert max(o.accuracy_after for o in outcomes) >= before + 0.25, outcomes
    memory = {o.strategy: o.l2_peak_bytes for o in outcomes}
    assert memory["train-full accumulate=8"] < memory["train-full bn=batch-update"]
