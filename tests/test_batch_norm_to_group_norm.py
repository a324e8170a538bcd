"""`batch-norm-to-group-norm{groups=G}`: the rewritten forward against PyTorch's
`F.group_norm` with the batch norm's scale and shift (random shapes and groups), the
running statistics gone, a training step with `accumulate=k` on the rewritten model
against PyTorch's whole-batch step, and the errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from test_batch_norm_accumulate import Model, conv_net, sequence_net
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.ir.session import Session
from edge_opt.testing import ForwardBuilder, apply_passes

EPSILON = 2.0**-10
"""Exact in f32, the type of `nn.group_norm`'s epsilon (1e-3 would be 5e-11 off, up
to 1e-7 relative on the output of a group of nearly equal values)."""
LR = 0.5


@st.composite
def shapes_and_groups(draw):
    groups = draw(st.integers(1, 4))
    channels = groups * draw(st.integers(1, 3))
    spatial = draw(st.lists(st.integers(1, 4), min_size=0, max_size=2))
    if channels // groups * int(np.prod(spatial)) == 1:
        spatial = [2, *spatial]  # a group needs two values
    return (draw(st.integers(1, 3)), channels, *spatial), groups


@settings(max_examples=25, deadline=None)
@given(shapes_and_groups(), st.integers(0, 2**16))
def test_forward_is_pytorch_group_norm(shape_groups, seed):
    shape, groups = shape_groups
    channels = shape[1]
    b = ForwardBuilder(shape, seed=seed)
    scale = 1 + 0.5 * b.rng.standard_normal(channels)
    bias = b.rng.standard_normal(channels)
    y = b.op(nn.BatchNormOp(
        b.x, b.param("scale", (channels,), value=scale), b.param("bias", (channels,),
                                                                  value=bias),
        b.param("mean", (channels,), False), b.param("var", (channels,), False,
                                                      value=np.ones(channels)),
        EPSILON), "y")
    module = apply_passes(f"batch-norm-to-group-norm{{groups={groups}}}", b.module(y))

    x = b.inputs["x0"]
    (ours,) = Session(module).run("forward", [x])
    expected = F.group_norm(torch.tensor(x), groups, torch.tensor(scale),
                            torch.tensor(bias), eps=EPSILON).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)
    assert not any(isinstance(op, nn.BatchNormOp) for op in module.walk())
    params = {op.sym_name.data for op in module.ops if isinstance(op, nn.ParamOp)}
    assert params == {"scale", "bias"}


def torch_group_norm_step(model: Model, groups: int) -> tuple[float, dict]:
    """PyTorch's SGD step on the whole batch with each batch norm as a group norm."""
    session = Session(model.module)
    params = {name: torch.tensor(value, requires_grad=True)
              for name, value in session.params.items()
              if not name.endswith(("_mean", "_var"))}

    def norm(x: torch.Tensor, i: int) -> torch.Tensor:
        return F.group_norm(x, groups, params[f"bn{i}_scale"], params[f"bn{i}_bias"],
                            eps=1e-5)

    x, labels = (torch.tensor(v) for v in model.inputs)
    loss = F.cross_entropy(model.torch_forward(params, x, norm), labels.long())
    loss.backward()
    return loss.item(), {name: (t - LR * t.grad).detach().numpy()
                         for name, t in params.items()}


@pytest.mark.parametrize("make, groups", [
    (lambda: conv_net(batch=4, layers=2, channels=4), 1),
    (lambda: sequence_net(batch=4, layers=2, channels=3), 3),
])
def test_accumulation_is_exact_on_the_rewritten_model(make, groups):
    """Group norm couples no samples: `accumulate=2` (no sweeps) is the whole batch's
    PyTorch step."""
    model = make()
    module = apply_passes(f"batch-norm-to-group-norm{{groups={groups}}},"
                          f"train-full{{lr={LR} accumulate=2}}", model.module)
    session = Session(module)
    (loss,) = session.run("train_step", model.inputs)
    expected_loss, expected = torch_group_norm_step(model, groups)
    np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-6)
    assert set(session.params) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(session.params[name], value, rtol=1e-6, atol=1e-9,
                                   err_msg=f"@{name}")


def _one_norm(shape, channels: int):
    b = ForwardBuilder(shape, seed=0)
    return b.module(b.op(nn.BatchNormOp(
        b.x, b.param("g", (channels,)), b.param("s", (channels,)),
        b.param("m", (channels,), False), b.param("v", (channels,), False)), "y"))


def test_groups_must_divide_the_channels():
    with pytest.raises(PassFailedException, match=r"^batch-norm-to-group-norm: "
                       r"nn.batch_norm %y has 6 channels, which groups=4 does not "
                       r"divide; choose a divisor of 6\n"):
        apply_passes("batch-norm-to-group-norm{groups=4}", _one_norm((2, 6, 3), 6))


def test_a_group_of_one_value_is_an_error():
    with pytest.raises(PassFailedException, match=r"groups=3, a group of nn.batch_norm "
                       r"%y \(input \[2, 3\]\) holds one value per sample, whose "
                       r"normalised value is always 0; choose fewer groups"):
        apply_passes("batch-norm-to-group-norm{groups=3}", _one_norm((2, 3), 3))
