"""Batch norm in the training step (`bn=frozen|batch|batch-update`) against PyTorch:
one SGD step of small models in float64, PyTorch's own `F.batch_norm` (train mode with
its running-buffer update, or eval mode) as the oracle; the C backend against the
interpreter; the errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from c_project import assert_c_matches_interpreter
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.ir.model_io import load_model
from edge_opt.ir.session import Session
from edge_opt.testing import ForwardBuilder, apply_passes

LR = 0.1
STATISTICS = ("bn_mean", "bn_var")


@dataclass
class Model:
    """A `@forward` with one batch norm, and the same computation in torch over a
    dict of parameter tensors and the running buffers (`bn(x)` is handed in)."""

    module: ModuleOp
    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    torch_forward: Callable[[dict, torch.Tensor, Callable], torch.Tensor]


def _batch_norm_params(b: ForwardBuilder, channels: int):
    return (
        b.param("bn_scale", (channels,), value=1 + 0.3 * b.rng.standard_normal(channels)),
        b.param("bn_bias", (channels,), value=0.2 * b.rng.standard_normal(channels)),
        b.param("bn_mean", (channels,), trainable=False,
                value=0.3 * b.rng.standard_normal(channels)),
        b.param("bn_var", (channels,), trainable=False,
                value=0.5 + b.rng.random(channels)),
    )


def _labels(b: ForwardBuilder, batch: int, classes: int) -> np.ndarray:
    return b.rng.integers(0, classes, batch).astype(np.int32)


def cnn(batch: int = 4, channels: int = 5, size: int = 6, seed: int = 0) -> Model:
    """conv 3x3 -> batch norm -> relu -> global average pool -> linear."""
    b = ForwardBuilder((batch, 3, size, size), seed=seed)
    w = b.param("conv_weight", (channels, 3, 3, 3))
    c = b.op(nn.Conv2dOp(b.x, w, b.param("conv_bias", (channels,)),
                         padding=(1, 1, 1, 1)), "c")
    y = b.op(nn.BatchNormOp(c, *_batch_norm_params(b, channels)), "y")
    pooled = b.op(nn.GlobalAvgPoolOp(b.op(nn.ReluOp(y))))
    flat = b.op(nn.ReshapeOp(pooled, (batch, channels)))
    logits = b.op(nn.LinearOp(flat, b.param("fc_weight", (3, channels)),
                              b.param("fc_bias", (3,))), "logits")

    def forward(p, x, bn):
        c = F.conv2d(x, p["conv_weight"], p["conv_bias"], padding=1)
        pooled = F.relu(bn(c)).mean(dim=(2, 3))
        return F.linear(pooled, p["fc_weight"], p["fc_bias"])

    return Model(b.module(logits), b.inputs, _labels(b, batch, 3), forward)


def mlp(batch: int = 6, seed: int = 0) -> Model:
    """linear -> batch norm over (N, C) -> tanh -> linear."""
    b = ForwardBuilder((batch, 4), seed=seed)
    h = b.op(nn.LinearOp(b.x, b.param("fc1_weight", (7, 4))), "h")
    y = b.op(nn.BatchNormOp(h, *_batch_norm_params(b, 7)), "y")
    logits = b.op(nn.LinearOp(b.op(nn.TanhOp(y)), b.param("fc2_weight", (3, 7))), "logits")

    def forward(p, x, bn):
        return F.linear(torch.tanh(bn(F.linear(x, p["fc1_weight"]))), p["fc2_weight"])

    return Model(b.module(logits), b.inputs, _labels(b, batch, 3), forward)


def sequence(batch: int = 3, seed: int = 0) -> Model:
    """batch norm over (N, C, L) on the input -> relu -> flatten -> linear (the
    statistics' own gradient does not reach a parameter before them)."""
    b = ForwardBuilder((batch, 2, 10), seed=seed)
    y = b.op(nn.BatchNormOp(b.x, *_batch_norm_params(b, 2)), "y")
    flat = b.op(nn.ReshapeOp(b.op(nn.ReluOp(y)), (batch, 20)))
    logits = b.op(nn.LinearOp(flat, b.param("fc_weight", (4, 20))), "logits")

    def forward(p, x, bn):
        return F.linear(F.relu(bn(x)).reshape(batch, 20), p["fc_weight"])

    return Model(b.module(logits), b.inputs, _labels(b, batch, 4), forward)


def torch_step(model: Model, mode: str, momentum: float):
    """PyTorch's SGD step: the loss, the parameters after it, the running buffers."""
    params = {
        op.sym_name.data: torch.tensor(
            Session(model.module).params[op.sym_name.data], requires_grad=op.is_trainable
        )
        for op in model.module.ops if isinstance(op, nn.ParamOp)
    }
    mean, var = params["bn_mean"].detach().clone(), params["bn_var"].detach().clone()

    def bn(x):
        if mode == "frozen":
            return F.batch_norm(x, mean, var, params["bn_scale"], params["bn_bias"],
                                training=False, eps=1e-5)
        running = (mean, var) if mode == "batch-update" else (None, None)
        return F.batch_norm(x, *running, params["bn_scale"], params["bn_bias"],
                            training=True, momentum=momentum, eps=1e-5)

    (x,) = (torch.tensor(v) for v in model.inputs.values())
    loss = F.cross_entropy(model.torch_forward(params, x, bn),
                           torch.tensor(model.labels, dtype=torch.long))
    loss.backward()
    after = {
        name: (t - LR * t.grad if t.requires_grad else t).detach().numpy()
        for name, t in params.items()
    }
    after["bn_mean"], after["bn_var"] = mean.numpy(), var.numpy()
    return loss.item(), after


def our_step(model: Model, mode: str, momentum: float):
    module = apply_passes(
        f"train-full{{bn={mode} bn-momentum={momentum} lr={LR}}}", model.module
    )
    session = Session(module)
    (loss,) = session.run("train_step", [*model.inputs.values(), model.labels])
    return float(loss), session.params


def assert_step_matches_torch(model: Model, mode: str, momentum: float = 0.1) -> None:
    loss, params = our_step(model, mode, momentum)
    expected_loss, expected = torch_step(model, mode, momentum)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    for name, value in expected.items():
        np.testing.assert_allclose(params[name], value, rtol=1e-5, atol=1e-12,
                                   err_msg=f"@{name} after the step ({mode})")


MODELS = {"cnn": cnn, "mlp": mlp, "sequence": sequence}


@pytest.mark.parametrize("mode", ["frozen", "batch", "batch-update"])
@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_step_matches_pytorch(make, mode):
    assert_step_matches_torch(make(), mode)


@settings(max_examples=12, deadline=None)
@given(
    batch=st.integers(1, 4),
    channels=st.integers(1, 4),
    size=st.integers(2, 5),
    momentum=st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]),
    mode=st.sampled_from(["batch", "batch-update"]),
    seed=st.integers(0, 2**16),
)
def test_random_shapes_match_pytorch(batch, channels, size, momentum, mode, seed):
    assert_step_matches_torch(cnn(batch, channels, size, seed), mode, momentum)


def test_running_statistics_move_only_with_batch_update():
    model = cnn()
    initial = Session(model.module).params
    for mode, moved in (("frozen", False), ("batch", False), ("batch-update", True)):
        _, params = our_step(model, mode, 0.1)
        for name in STATISTICS:
            assert (not np.array_equal(params[name], initial[name])) == moved, (mode, name)


def test_batch_update_in_c_matches_interpreter(tmp_path):
    module = apply_passes("train-full{bn=batch-update lr=0.05}",
                          load_model(ROOT / "examples" / "tiny_cnn.mlir"))
    data = np.load(ROOT / "examples" / "tiny_cnn_input.npz")
    initial = Session(module).params
    run = assert_c_matches_interpreter(module, tmp_path / "project", dict(data), steps=3)
    for name in ("bn1_mean", "bn1_var"):
        assert not np.allclose(run.params[name].reshape(initial[name].shape),
                               initial[name])


def test_one_value_per_channel_is_an_error():
    model = cnn(batch=1, size=1)
    with pytest.raises(PassFailedException, match=r"bn=batch: nn.batch_norm %y sees one "
                       r"value per channel \(input \[1, 5, 1, 1\]\).*bn=frozen"):
        our_step(model, "batch", 0.1)


def test_running_statistics_must_be_parameters():
    b = ForwardBuilder((4, 3), seed=0)
    scale, bias, _, _ = _batch_norm_params(b, 3)
    stats = b.constant(np.ones(3))
    y = b.op(nn.BatchNormOp(b.x, scale, bias, stats, stats), "y")
    module = b.module(b.op(nn.LinearOp(y, b.param("w", (2, 3)))))
    with pytest.raises(PassFailedException, match=r"running mean of nn.batch_norm %y "
                       r"is not a parameter"):
        apply_passes("train-full{bn=batch-update}", module)
    apply_passes("train-full{bn=batch}", module)  # not updated: nothing to store


def test_shared_running_statistics_are_an_error():
    b = ForwardBuilder((4, 3), seed=0)
    params = _batch_norm_params(b, 3)
    y = b.op(nn.BatchNormOp(b.x, *params), "y")
    z = b.op(nn.BatchNormOp(y, *params), "z")
    module = b.module(b.op(nn.LinearOp(z, b.param("w", (2, 3)))))
    with pytest.raises(PassFailedException, match=r"@bn_mean is the running statistic "
                       r"of two batch norms \(nn.batch_norm %y and nn.batch_norm %z\)"):
        apply_passes("train-full{bn=batch-update}", module)
