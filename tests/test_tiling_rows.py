"""Row tiles of convolutions (`edge_opt.support.tiling.Halo`): a tile of output rows
computed from its padded window (the rows its kernel window reaches, zeros outside the
input, the convolution's row padding removed) equals those rows of the whole
convolution, for the forward, the input gradient (stride 1) and the weight gradient
(summed over the row tiles). The oracle is PyTorch (the whole convolution and its
autograd); the tiles run through our kernels' semantics, as the interpreter runs them.
The cost model's bytes for an operand with a halo are the sum of its windows.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_opt.support import numerics, train_numerics
from edge_opt.support.schedule_search import Operand, transferred_bytes
from edge_opt.support.tiling import FULL, Halo, Schedule


@st.composite
def convolutions(draw, stride_one: bool = False):
    """(x, w, stride, padding, dilation): a convolution whose row padding is smaller
    than its kernel's reach (the rows `tile-l1` may cut)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    dh = draw(st.integers(1, 2))
    sh = 1 if stride_one else draw(st.integers(1, 3))
    span = (kh - 1) * dh + 1
    top, bottom = draw(st.integers(0, span - 1)), draw(st.integers(0, span - 1))
    left, right = draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1))
    h = draw(st.integers(max(span - top - bottom, 1), 12))
    w = draw(st.integers(max(kw - left - right, 1), 6))
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    return x, weight, (sh, 1), (top, left, bottom, right), (dh, 1)


def _torch_conv(x, w, stride, padding, dilation) -> torch.Tensor:
    top, left, bottom, right = padding
    padded = torch.nn.functional.pad(x, (left, right, top, bottom))
    return torch.nn.functional.conv2d(padded, w, stride=stride, dilation=dilation)


def _padded_tiles(schedule: Schedule, operand_map, array: np.ndarray, halo: Halo):
    """Per tile: the padded window as `tile.halo` builds it (numpy, from the schedule's
    window and padding maths)."""
    for t in range(schedule.count):
        offsets, lengths = schedule.window(operand_map, array.shape, t, halo)
        window = array[tuple(slice(o, o + n) for o, n in zip(offsets, lengths, strict=True))]
        before, inside, after = schedule.interior(operand_map, array.shape, t, halo)
        assert inside == window.shape[halo.axis]
        pads = [(0, 0)] * array.ndim
        pads[halo.axis] = (before, after)
        yield t, np.pad(window, pads)


@settings(max_examples=60, deadline=None)
@given(convolutions(), st.data())
def test_forward_rows_from_padded_windows(conv, data):
    x, w, stride, padding, dilation = conv
    expected = _torch_conv(torch.from_numpy(x), torch.from_numpy(w), stride, padding,
                           dilation).numpy()
    rows = expected.shape[2]
    size = data.draw(st.integers(1, rows))
    schedule = Schedule((rows,), (size,), (0,))
    span = (w.shape[2] - 1) * dilation[0] + 1
    halo = Halo(2, stride[0], span, padding[0])
    _, left, _, right = padding
    for t, padded in _padded_tiles(schedule, (FULL, FULL, 0, FULL), x, halo):
        y = numerics.conv2d(padded, w, None, stride, (0, left, 0, right), dilation, 1)
        first = t * size
        np.testing.assert_allclose(y, expected[:, :, first:first + y.shape[2]],
                                   rtol=1e-5, atol=1e-5)
        assert y.shape[2] == min(size, rows - first)


@settings(max_examples=60, deadline=None)
@given(convolutions(stride_one=True), st.data())
def test_grad_input_rows_from_padded_output_gradients(conv, data):
    x, w, stride, padding, dilation = conv
    xt = torch.from_numpy(x).requires_grad_()
    y = _torch_conv(xt, torch.from_numpy(w), stride, padding, dilation)
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    y.backward(torch.from_numpy(dy))
    expected = xt.grad.numpy()
    rows = x.shape[2]
    size = data.draw(st.integers(1, rows))
    schedule = Schedule((rows,), (size,), (0,))
    span = (w.shape[2] - 1) * dilation[0] + 1
    top, left, _, right = padding
    halo = Halo(2, 1, span, span - 1 - top)
    for t, padded in _padded_tiles(schedule, (FULL, FULL, 0, FULL), dy, halo):
        first = t * size
        tile_rows = min(size, rows - first)
        shape = (x.shape[0], x.shape[1], tile_rows, x.shape[3])
        dx = train_numerics.conv2d_grad_input(padded, w, shape, stride,
                                              (span - 1, left, span - 1, right), dilation, 1)
        np.testing.assert_allclose(dx, expected[:, :, first:first + tile_rows],
                                   rtol=1e-4, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(convolutions(), st.data())
def test_grad_weight_sums_over_row_tiles(conv, data):
    x, w, stride, padding, dilation = conv
    wt = torch.from_numpy(w).requires_grad_()
    y = _torch_conv(torch.from_numpy(x), wt, stride, padding, dilation)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(torch.from_numpy(dy))
    rows = y.shape[2]
    size = data.draw(st.integers(1, rows))
    schedule = Schedule((rows,), (size,), (0,))
    span = (w.shape[2] - 1) * dilation[0] + 1
    _, left, _, right = padding
    halo = Halo(2, stride[0], span, padding[0])
    total = np.zeros_like(w)
    for t, padded in _padded_tiles(schedule, (FULL, FULL, 0, FULL), x, halo):
        first = t * size
        dy_tile = dy[:, :, first:first + size]
        total += train_numerics.conv2d_grad_weight(dy_tile, padded, w.shape, stride,
                                                   (0, left, 0, right), dilation, 1)
    np.testing.assert_allclose(total, wt.grad.numpy(), rtol=1e-4, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(convolutions(), st.data())
def test_halo_bytes_are_the_sum_of_the_windows(conv, data):
    x, w, stride, padding, dilation = conv
    rows = _torch_conv(torch.from_numpy(x), torch.from_numpy(w), stride, padding,
                       dilation).shape[2]
    size = data.draw(st.integers(1, rows))
    span = (w.shape[2] - 1) * dilation[0] + 1
    halo = Halo(2, stride[0], span, padding[0])
    schedule = Schedule((rows,), (size,), (0,))
    operand_map = (FULL, FULL, 0, FULL)
    operand = Operand(x.shape, operand_map, 4, False, "L2", halo)
    windows = sum(int(np.prod(schedule.window(operand_map, x.shape, t, halo)[1]))
                  for t in range(schedule.count))
    expected = windows * 4 if schedule.count > 1 else x.size * 4  # uncut: whole rows
    assert transferred_bytes(schedule, operand) == expected

