"""Batch statistics under gradient accumulation (`accumulate=k bn-accumulate=exact`):
one SGD step on k micro-batches against PyTorch's train-mode step on the whole batch
(`F.batch_norm` with its running-buffer update, float64: loss, parameters and running
statistics to 1e-5 relative), on convolutional and (N, C, L) models with one and two
batch norms, random shapes, the EEG example; the C backend against the interpreter;
the sweep count; and what stays an error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from c_project import assert_c_matches_interpreter
from hypothesis import given, settings
from hypothesis import strategies as st
from test_biosignal import float64_model, new_subject_batch, torch_model
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.autodiff.micro_batches import Coupling
from edge_opt.dialects import nn
from edge_opt.ir.report import build_report
from edge_opt.ir.session import Session
from edge_opt.testing import ForwardBuilder, apply_passes

LR = 0.5
"""Exact in f32 (`train.sgd` keeps its `lr` as an f32 attribute; 0.1 would be 1.5e-8
relative off PyTorch's)."""
BN = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass
class Model:
    """A `@forward` with `layers` batch norms (parameters `bn{i}_scale`, `_bias`,
    `_mean`, `_var`) and the same computation in torch over a dict of parameter
    tensors, the i-th batch norm handed in as `bn(x, i)`."""

    module: ModuleOp
    inputs: list[np.ndarray]
    layers: int
    torch_forward: Callable[[dict, torch.Tensor, BN], torch.Tensor]


def _batch_norm(b: ForwardBuilder, x, index: int):
    channels = x.type.get_shape()[1]
    rng = b.rng
    params = (
        b.param(f"bn{index}_scale", (channels,), value=1 + 0.3 * rng.standard_normal(channels)),
        b.param(f"bn{index}_bias", (channels,), value=0.2 * rng.standard_normal(channels)),
        b.param(f"bn{index}_mean", (channels,), trainable=False,
                value=0.3 * rng.standard_normal(channels)),
        b.param(f"bn{index}_var", (channels,), trainable=False, value=0.5 + rng.random(channels)),
    )
    return b.op(nn.BatchNormOp(x, *params), f"y{index}")


def _finish(b: ForwardBuilder, features, classes: int) -> tuple[ModuleOp, list[np.ndarray]]:
    batch, width = features.type.get_shape()
    logits = b.op(nn.LinearOp(features, b.param("fc_weight", (classes, width)),
                              b.param("fc_bias", (classes,))), "logits")
    labels = b.rng.integers(0, classes, batch).astype(np.int32)
    return b.module(logits), [*b.inputs.values(), labels]


def conv_net(batch: int = 4, layers: int = 1, channels: int = 4, size: int = 6,
             seed: int = 0, dtype: type[np.floating] = np.float64) -> Model:
    """conv 3x3 -> bn -> relu -> max-pool 2x2 [-> conv 3x3 -> bn -> relu] -> global
    average pool -> linear."""
    b = ForwardBuilder((batch, 2, size, size), seed=seed, dtype=dtype)
    x = b.op(nn.Conv2dOp(b.x, b.param("conv0_weight", (channels, 2, 3, 3)),
                         b.param("conv0_bias", (channels,)), padding=(1, 1, 1, 1)))
    x = b.op(nn.MaxPool2dOp(b.op(nn.ReluOp(_batch_norm(b, x, 0))), (2, 2), (2, 2)))
    if layers == 2:
        x = b.op(nn.Conv2dOp(x, b.param("conv1_weight", (channels + 1, channels, 3, 3)),
                             padding=(1, 1, 1, 1)))
        x = b.op(nn.ReluOp(_batch_norm(b, x, 1)))
    width = channels + (layers == 2)
    flat = b.op(nn.ReshapeOp(b.op(nn.GlobalAvgPoolOp(x)), (batch, width)))

    def forward(p, x, bn):
        x = F.max_pool2d(F.relu(bn(F.conv2d(x, p["conv0_weight"], p["conv0_bias"],
                                            padding=1), 0)), 2)
        if layers == 2:
            x = F.relu(bn(F.conv2d(x, p["conv1_weight"], padding=1), 1))
        return F.linear(x.mean(dim=(2, 3)), p["fc_weight"], p["fc_bias"])

    return Model(*_finish(b, flat, 3), layers, forward)


def sequence_net(batch: int = 4, layers: int = 1, channels: int = 3, length: int = 6,
                 seed: int = 0) -> Model:
    """(N, C, L): linear along L -> bn -> tanh [-> linear along L -> bn -> relu] ->
    flatten -> linear."""
    b = ForwardBuilder((batch, channels, length), seed=seed)
    x = b.op(nn.TanhOp(_batch_norm(b, b.op(nn.LinearOp(
        b.x, b.param("lin0_weight", (5, length)))), 0)))
    if layers == 2:
        x = b.op(nn.ReluOp(_batch_norm(b, b.op(nn.LinearOp(
            x, b.param("lin1_weight", (4, 5)), b.param("lin1_bias", (4,)))), 1)))
    width = channels * (4 if layers == 2 else 5)
    flat = b.op(nn.ReshapeOp(x, (batch, width)))

    def forward(p, x, bn):
        x = torch.tanh(bn(F.linear(x, p["lin0_weight"]), 0))
        if layers == 2:
            x = F.relu(bn(F.linear(x, p["lin1_weight"], p["lin1_bias"]), 1))
        return F.linear(x.reshape(batch, width), p["fc_weight"], p["fc_bias"])

    return Model(*_finish(b, flat, 4), layers, forward)


def torch_step(model: Model, mode: str, momentum: float) -> tuple[float, dict]:
    """PyTorch's SGD step on the whole batch in train mode: the loss, the parameters
    and running statistics after it."""
    params = {
        op.sym_name.data: torch.tensor(Session(model.module).params[op.sym_name.data],
                                       requires_grad=op.is_trainable)
        for op in model.module.ops if isinstance(op, nn.ParamOp)
    }
    running = [(params[f"bn{i}_mean"].detach().clone(),
                params[f"bn{i}_var"].detach().clone()) for i in range(model.layers)]

    def bn(x: torch.Tensor, i: int) -> torch.Tensor:
        stats = running[i] if mode == "batch-update" else (None, None)
        return F.batch_norm(x, *stats, params[f"bn{i}_scale"], params[f"bn{i}_bias"],
                            training=True, momentum=momentum, eps=1e-5)

    x, labels = (torch.tensor(v) for v in model.inputs)
    loss = F.cross_entropy(model.torch_forward(params, x, bn), labels.long())
    loss.backward()
    after = {name: (t - LR * t.grad if t.requires_grad else t).detach().numpy()
             for name, t in params.items()}
    for i, (mean, var) in enumerate(running):
        after[f"bn{i}_mean"], after[f"bn{i}_var"] = mean.numpy(), var.numpy()
    return loss.item(), after


def our_step(model: Model, options: str) -> tuple[float, dict]:
    session = Session(apply_passes(f"train-full{{lr={LR} {options}}}", model.module))
    (loss,) = session.run("train_step", model.inputs)
    return float(loss), session.params


def max_relative_error(ours: tuple[float, dict], expected: tuple[float, dict]) -> float:
    """The largest |ours - expected| / |expected| over the loss and every element
    of every parameter (elements whose expected value is 0 compare absolutely)."""
    pairs = [(np.asarray(ours[0]), np.asarray(expected[0]))]
    pairs += [(ours[1][name], value) for name, value in expected[1].items()]
    return max(float(np.max(np.abs(a - e) / np.where(e == 0, 1.0, np.abs(e))))
               for a, e in pairs)


def assert_accumulated_step_matches_torch(model: Model, k: int, mode: str,
                                          momentum: float = 0.1) -> float:
    ours = our_step(model, f"bn={mode} bn-momentum={momentum} accumulate={k} "
                           "bn-accumulate=exact")
    expected = torch_step(model, mode, momentum)
    np.testing.assert_allclose(ours[0], expected[0], rtol=1e-5)
    for name, value in expected[1].items():
        np.testing.assert_allclose(ours[1][name], value, rtol=1e-5, atol=1e-12,
                                   err_msg=f"@{name} after the step ({mode}, k={k})")
    return max_relative_error(ours, expected)


MODELS = {
    "conv, 1 bn": lambda: conv_net(layers=1),
    "conv, 2 bn": lambda: conv_net(layers=2),
    "(N, C, L), 1 bn": lambda: sequence_net(layers=1),
    "(N, C, L), 2 bn": lambda: sequence_net(layers=2),
}


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("mode", ["batch", "batch-update"])
@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_accumulated_step_matches_pytorch_whole_batch(make, mode, k):
    error = assert_accumulated_step_matches_torch(make(), k, mode)
    assert error < 1e-9, error  # float64 rounding only (measured: at most 6.4e-11)


@settings(max_examples=10, deadline=None)
@given(
    k=st.integers(2, 4),
    micro=st.integers(1, 3),
    layers=st.integers(1, 2),
    channels=st.integers(1, 4),
    size=st.integers(2, 5),
    momentum=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    mode=st.sampled_from(["batch", "batch-update"]),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_match_pytorch(k, micro, layers, channels, size, momentum, mode,
                                     seed):
    model = conv_net(k * micro, layers, channels, size, seed)
    assert_accumulated_step_matches_torch(model, k, mode, momentum)


@pytest.mark.parametrize("layers, sweeps", [(1, 3), (2, 5)])
def test_sweeps_per_batch_norm(layers, sweeps):
    """L statistics sweeps, one gradient sweep per batch norm whose input needs a
    gradient, one accumulation sweep; micro-batch memory, not the batch's."""
    model = conv_net(batch=8, layers=layers)
    spec = "train-full{bn=batch-update accumulate=4 bn-accumulate=exact}"
    report = build_report(apply_passes(spec, model.module))
    assert report.extra["batch_statistics_sweeps"] == sweeps
    plain = build_report(apply_passes("train-full{accumulate=4}", model.module))
    assert report.saved_activation_bytes == plain.saved_activation_bytes


def test_batch_norm_on_the_input_needs_no_gradient_sweep():
    """A batch norm whose input needs no gradient (on the model's input) has a
    statistics sweep only."""
    b = ForwardBuilder((4, 3, 5), seed=0)
    flat = b.op(nn.ReshapeOp(b.op(nn.ReluOp(_batch_norm(b, b.x, 0))), (4, 15)))
    module, inputs = _finish(b, flat, 2)
    stepped = apply_passes("train-full{bn=batch accumulate=2 bn-accumulate=exact}", module)
    assert build_report(stepped).extra["batch_statistics_sweeps"] == 2

    def forward(p, x, bn):
        return F.linear(F.relu(bn(x, 0)).reshape(4, 15), p["fc_weight"], p["fc_bias"])

    assert_accumulated_step_matches_torch(Model(module, inputs, 1, forward), 2, "batch")


def test_training_flag_batch_norm_is_exact_too():
    """A batch norm already in training mode (batch statistics whatever `bn` says)."""
    model = conv_net(batch=4)
    for op in model.module.walk():
        if isinstance(op, nn.BatchNormOp):
            op.properties["training"] = nn.BatchNormOp(
                op.input, *op.operands[1:], training=True).properties["training"]
    whole = our_step(model, "bn=frozen")
    micro = our_step(model, "bn=frozen accumulate=2 bn-accumulate=exact")
    assert max_relative_error(micro, whole) < 1e-12


def test_eeg_accumulate_8_matches_its_batch_8_step(tmp_path):
    """The EEG example (three batch norms) in float64: accumulate=8 (micro-batches of
    one) equals PyTorch's train-mode step on the batch of 8."""
    x, y = new_subject_batch("eeg", 8)
    x = x.astype(np.float64)
    module = apply_passes(f"train-full{{bn=batch-update lr={LR} accumulate=8 "
                          "bn-accumulate=exact}", float64_model("eeg", 8, tmp_path))
    session = Session(module)
    (loss,) = session.run("train_step", [x, y])
    assert build_report(module).extra["batch_statistics_sweeps"] == 7

    model = torch_model("eeg").double().train()
    expected_loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y).long())
    expected_loss.backward()
    torch.optim.SGD(model.parameters(), lr=LR).step()
    np.testing.assert_allclose(float(loss), expected_loss.item(), rtol=1e-5)
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_allclose(session.params[key.replace(".", "_")],
                                       value.numpy(), rtol=1e-5, atol=1e-12,
                                       err_msg=f"@{key} after the step")


def test_c_runs_the_sweeps_as_the_interpreter(tmp_path):
    model = conv_net(batch=4, layers=2, dtype=np.float32)
    module = apply_passes("train-full{bn=batch-update lr=0.05 accumulate=2 "
                          "bn-accumulate=exact}", model.module)
    x, labels = model.inputs
    assert_c_matches_interpreter(module, tmp_path / "project",
                                 {"x0": x, "labels": labels}, steps=2)


def test_without_exact_the_error_lists_the_choices():
    with pytest.raises(PassFailedException, match=r"accumulate=2: bn=batch normalises "
                       r"with statistics of the whole batch, which micro-batches do not "
                       r"see; use bn-accumulate=exact .*, bn=frozen, "
                       r"batch-norm-to-group-norm\{groups=G\} before autodiff, or "
                       r"accumulate=1"):
        apply_passes("train-full{bn=batch accumulate=2}", conv_net().module)


def test_other_coupling_ops_stay_errors():
    b = ForwardBuilder((4, 3), seed=0)
    centred = b.op(nn.SubOp(b.x, b.op(nn.ReduceMeanOp(b.x, [0], keepdims=True))), "c")
    module, _ = _finish(b, _batch_norm(b, centred, 0), 2)
    with pytest.raises(Coupling, match=r"nn.reduce_mean reduces over the batch axis"):
        apply_passes("train-full{bn=batch accumulate=2 bn-accumulate=exact}", module)
