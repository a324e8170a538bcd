"""L1 tiles of grouped (and depthwise) convolutions: `tile-l1` keeps their channels
whole (a tile of channels would need its own `groups`) and cuts the batch and one
spatial axis of the output, through a halo: the rows, or the columns when the forward's
output has a single row (1-D signals laid out (C, 1, T), a convolution over the full
height, as EEG models have). The training step of random grouped convolutions, each
kernel tiled under random (ragged) schedules and moved to L1 by DMA, equals the tensor
level's; the search cuts the time axis of an EEG-like depthwise layer; the EEG model of
examples/biosignal plans on GAP9.
"""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from plan_checks import assert_same_training, mse_labels, tile_randomly, train_or_reject
from xdsl.dialects.builtin import ModuleOp

from edge_opt.dialects import kernel, nn, tile
from edge_opt.ir.tiling import iteration_space
from edge_opt.testing import ForwardBuilder, apply_passes


@st.composite
def grouped_models(draw) -> tuple[ModuleOp, dict[str, np.ndarray], int]:
    """A grouped convolution (and a tanh) on (N, C, H, T): H = 1 (a 1-D signal) or a
    kernel over the full height, or a small 2-D kernel; returns the module, its inputs
    and the axis `tile-l1` cuts (2: rows, 3: columns)."""
    groups = draw(st.integers(2, 3))
    per_group, multiplier = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n, h = draw(st.integers(1, 2)), draw(st.sampled_from([1, 3]))
    kind = draw(st.sampled_from(["1-d", "full height", "2-d"]))
    kh = {"1-d": 1, "full height": h, "2-d": min(h, draw(st.integers(1, 2)))}[kind]
    kw, dw = draw(st.integers(1, 4)), draw(st.integers(1, 2))
    span = (kw - 1) * dw + 1
    left, right = draw(st.integers(0, span - 1)), draw(st.integers(0, span - 1))
    stride = draw(st.integers(1, 2))
    t = draw(st.integers(max(span - left - right, 1), 12))
    c, o = groups * per_group, groups * multiplier
    b = ForwardBuilder((n, c, h, t), seed=draw(st.integers(0, 2**16)), dtype=np.float32)
    weight = b.param("w", (o, per_group, kh, kw))
    bias = b.param("bias", (o,)) if draw(st.booleans()) else None
    y = b.op(nn.Conv2dOp(b.x, weight, bias, stride=(1, stride), padding=(0, left, 0, right),
                         dilation=(1, dw), groups=groups), "y")
    out_rows = h - kh + 1
    return b.module(b.op(nn.TanhOp(y), "t")), b.inputs, 2 if out_rows > 1 else 3


def _conv_kernels(module: ModuleOp) -> list[kernel.KernelOp]:
    return [op for op in module.walk() if isinstance(op, kernel.KernelOp)
            and op.name.startswith("kernel.conv2d")]


@settings(max_examples=30, deadline=None)
@given(grouped_models(), st.integers(0, 2**32 - 1),
       st.sampled_from(["immediate", "deferred"]))
def test_grouped_training_step_under_random_schedules(case, seed, mode):
    module, inputs, axis = case
    tensor = train_or_reject("train-full{loss=mse lr=0.01}", module)
    buffers = apply_passes("bufferize", tensor)
    for op in _conv_kernels(buffers):  # the rule: batch and `axis`, channels whole
        space = iteration_space(op)
        assert len(space.extents) == 2
        assert {h.axis for h in space.halos if h is not None} == {axis}, op.name
    tiled = apply_passes("insert-dma,plan-memory{soc=gap9}",
                         tile_randomly(buffers, random.Random(seed)))
    labels = mse_labels(tensor, seed)
    assert_same_training(tensor, tiled, [*inputs.values(), labels], list(inputs.values()),
                         steps=1, dma=mode)  # type: ignore[arg-type]


def test_search_cuts_the_time_axis_of_a_depthwise_signal_layer():
    """A depthwise (8 groups, 2 outputs each) convolution over the full height of an
    8 x 22 x 257 input, as EEGNet's spatial layer: one sample is 180,928 B, more than
    the 64 KiB L1 given; the chosen schedule cuts the columns (the time axis)."""
    b = ForwardBuilder((1, 8, 22, 257), dtype=np.float32)
    weight = b.param("w", (16, 1, 22, 1))
    module = b.module(b.op(nn.Conv2dOp(b.x, weight, groups=8), "y"))
    tiled = apply_passes("infer,lower-to-buffers{soc=gap9 l1-bytes=65536}", module)
    (loop,) = [op for op in tiled.walk() if isinstance(op, tile.ForOp)
               and any(k.name == "kernel.conv2d" for k in op.walk())]
    schedule = loop.schedule.owner.schedule()  # type: ignore[union-attr]
    assert schedule.extents == (1, 257) and schedule.sizes[1] < 257
