"""Reference numerics of the graph-level ops, as pure NumPy functions.

These are the executable specification the interpreter runs and the C kernels are checked
against (the element-wise ops' are in their rows of `edge_opt.support.elementwise`).
They compute in the dtype of their inputs (float32 models stay float32, float64 models
— used for finite-difference gradient checks — stay float64) and follow
`torch.nn.functional` (the test oracle) where PyTorch and ONNX differ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edge_opt.support import shapes

_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    return _erf(x).astype(x.dtype, copy=False)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-|x|) never overflows and neither branch cancels, so the result is accurate
    # relative to its size on both sides, as torch's (the tanh form 0.5 * (1 + tanh(x/2))
    # rounds to 0 below x ~ -17 in float32).
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def pad(x: np.ndarray, pads: Sequence[int], value: float) -> np.ndarray:
    """`nn.pad`: `pads` = the padding before each axis, then after each axis."""
    rank = x.ndim
    if rank == 0:
        return x.copy()
    widths = [(pads[a], pads[rank + a]) for a in range(rank)]
    return np.pad(x, widths, constant_values=np.asarray(value, x.dtype))


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def layer_norm(
    x: np.ndarray, scale: np.ndarray, bias: np.ndarray, axis: int, epsilon: float
) -> np.ndarray:
    axes = tuple(range(shapes.normalize_axis(axis, x.ndim), x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * scale + bias


def _channel(v: np.ndarray, rank: int) -> np.ndarray:
    """A per-channel vector shaped to broadcast against an (N, C, ...) tensor."""
    return v.reshape((1, -1) + (1,) * (rank - 2))


def batch_norm(
    x: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    epsilon: float,
    training: bool,
) -> np.ndarray:
    if training:
        axes = (0, *range(2, x.ndim))
        mean = np.mean(x, axis=axes)
        var = np.mean((x - _channel(mean, x.ndim)) ** 2, axis=axes)
    r = x.ndim
    return (x - _channel(mean, r)) / np.sqrt(_channel(var, r) + epsilon) * _channel(
        scale, r
    ) + _channel(bias, r)


def group_norm(
    x: np.ndarray, scale: np.ndarray, bias: np.ndarray, groups: int, epsilon: float
) -> np.ndarray:
    n = x.shape[0]
    g = x.reshape(n, groups, -1)
    mean = np.mean(g, axis=2, keepdims=True)
    var = np.mean((g - mean) ** 2, axis=2, keepdims=True)
    y = ((g - mean) / np.sqrt(var + epsilon)).reshape(x.shape)
    return y * _channel(scale, x.ndim) + _channel(bias, x.ndim)


def windows(
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> np.ndarray:
    """(N, C, H, W) padded input -> (N, C, OH, OW, kh, kw) view of the windows."""
    kh, kw = kernel
    dh, dw = dilation
    view = np.lib.stride_tricks.sliding_window_view(
        x, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3)
    )
    return view[:, :, :: stride[0], :: stride[1], ::dh, ::dw]


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    pt, pl, pb, pr = padding
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    win = windows(x, (kh, kw), stride, dilation)
    oh, ow = win.shape[2:4]
    win = win.reshape(n, groups, cg, oh, ow, kh, kw)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    y = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    y = y.reshape(n, o, oh, ow)
    if b is not None:
        y = y + _channel(b, 4)
    return y


def conv_transpose2d(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: Sequence[int],
    padding: Sequence[int],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    cg = c // groups
    contrib = np.einsum(
        "ngchw,gcoij->ngoijhw",
        x.reshape(n, groups, cg, h, wd),
        w.reshape(groups, cg, og, kh, kw),
        optimize=True,
    )
    full_h = (h - 1) * sh + dh * (kh - 1) + 1 + output_padding[0]
    full_w = (wd - 1) * sw + dw * (kw - 1) + 1 + output_padding[1]
    full = np.zeros((n, groups, og, full_h, full_w), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            full[
                :,
                :,
                :,
                i * dh : i * dh + (h - 1) * sh + 1 : sh,
                j * dw : j * dw + (wd - 1) * sw + 1 : sw,
            ] += contrib[:, :, :, i, j]
    pt, pl, pb, pr = padding
    y = full[:, :, :, pt : full_h - pb, pl : full_w - pr].reshape(
        n, groups * og, full_h - pt - pb, full_w - pl - pr
    )
    if b is not None:
        y = y + _channel(b, 4)
    return y


def pool_padding(
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> tuple[int, int, int, int]:
    """End padding enlarged so that ceil-mode windows fit; returns (t, l, b, r)."""
    pads = list(padding)
    for axis in range(2):
        out = shapes.window_output_size(
            size[axis],
            kernel[axis],
            stride[axis],
            padding[axis],
            padding[axis + 2],
            dilation[axis],
            ceil_mode,
        )
        needed = (out - 1) * stride[axis] + dilation[axis] * (kernel[axis] - 1) + 1
        pads[axis + 2] = max(padding[axis + 2], needed - size[axis] - padding[axis])
    return pads[0], pads[1], pads[2], pads[3]


def crop_windows(
    win: np.ndarray, size: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
    padding: Sequence[int], dilation: Sequence[int], ceil_mode: bool,
) -> np.ndarray:
    oh = shapes.window_output_size(
        size[0], kernel[0], stride[0], padding[0], padding[2], dilation[0], ceil_mode
    )
    ow = shapes.window_output_size(
        size[1], kernel[1], stride[1], padding[1], padding[3], dilation[1], ceil_mode
    )
    return win[:, :, :oh, :ow]


def max_pool2d(
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> np.ndarray:
    pt, pl, pb, pr = pool_padding(
        x.shape[2:], kernel, stride, padding, dilation, ceil_mode
    )
    xp = np.pad(
        x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=-np.inf
    )
    win = windows(xp, kernel, stride, dilation)
    win = crop_windows(win, x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    return np.max(win, axis=(4, 5))


def avg_pool2d_divisor(
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
    dtype: np.dtype,
) -> np.ndarray:
    """The divisor of each average-pool window, shape (1, 1, oh, ow): the input
    positions it covers, plus the declared padding if `count_include_pad` (never the
    extra ceil-mode padding), as PyTorch."""
    h, w = size
    dilation = (1, 1)
    pt, pl, pb, pr = pool_padding(size, kernel, stride, padding, dilation, ceil_mode)
    counted = np.zeros((1, 1, h + pt + pb, w + pl + pr), dtype=dtype)
    if count_include_pad:
        counted[:, :, : h + padding[0] + padding[2], : w + padding[1] + padding[3]] = 1
    else:
        counted[:, :, pt : pt + h, pl : pl + w] = 1
    covered = crop_windows(
        windows(counted, kernel, stride, dilation), size, kernel, stride, padding,
        dilation, ceil_mode,
    )
    return np.sum(covered, axis=(4, 5))


def avg_pool2d(
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
) -> np.ndarray:
    dilation = (1, 1)
    size = x.shape[2:]
    pt, pl, pb, pr = pool_padding(size, kernel, stride, padding, dilation, ceil_mode)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    sums = np.sum(
        crop_windows(
            windows(xp, kernel, stride, dilation), size, kernel, stride, padding,
            dilation, ceil_mode,
        ),
        axis=(4, 5),
    )
    return sums / avg_pool2d_divisor(
        size, kernel, stride, padding, ceil_mode, count_include_pad, x.dtype
    )


def matmul(
    a: np.ndarray, b: np.ndarray, transpose_a: bool, transpose_b: bool
) -> np.ndarray:
    if transpose_a:
        a = np.swapaxes(a, -1, -2)
    if transpose_b:
        b = np.swapaxes(b, -1, -2)
    return np.matmul(a, b)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    y = x @ w.T
    return y if b is None else y + b


def slice_(
    x: np.ndarray, starts: Sequence[int], ends: Sequence[int], steps: Sequence[int]
) -> np.ndarray:
    index = tuple(
        slice(start, None if end < 0 else end, step)
        for start, end, step in zip(starts, ends, steps)
    )
    return x[index]


def gather(x: np.ndarray, indices: Sequence[int], axis: int) -> np.ndarray:
    """The slices of `x` at `indices` along `axis` (`torch.index_select`)."""
    return np.take(x, np.asarray(indices, dtype=np.int64), axis=axis)


def split_heads(t: np.ndarray, heads: int) -> np.ndarray:
    """(B, S, H*d) -> (B, H, S, d): column h*d + j is element j of head h."""
    b, s, f = t.shape
    return np.transpose(np.reshape(t, (b, s, heads, f // heads)), (0, 2, 1, 3))


def merge_heads(t: np.ndarray) -> np.ndarray:
    """(B, H, S, d) -> (B, S, H*d), the inverse of `split_heads`."""
    b, h, s, d = t.shape
    return np.reshape(np.transpose(t, (0, 2, 1, 3)), (b, s, h * d))


def attention(
    x: np.ndarray,
    wq: np.ndarray,
    wk: np.ndarray,
    wv: np.ndarray,
    wo: np.ndarray,
    biases: Sequence[np.ndarray] | None,
    heads: int,
    scale: float,
) -> np.ndarray:
    """Multi-head self-attention, `nn.attention`: the steps of its docstring, each the
    NumPy call the interpreter makes for the primitive op `lower-attention` writes for
    it (so interpreting the lowered form gives the same bits)."""
    bq, bk, bv, bo = (None,) * 4 if biases is None else biases

    def project(w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        y = matmul(x, w, False, False)
        return y if b is None else np.add(y, b)

    q = split_heads(project(wq, bq), heads)
    k = split_heads(project(wk, bk), heads)
    v = split_heads(project(wv, bv), heads)
    scores = np.multiply(matmul(q, k, False, True), np.asarray(scale, dtype=x.dtype))
    probabilities = softmax(scores, -1)
    o = merge_heads(matmul(probabilities, v, False, False))
    y = matmul(o, wo, False, False)
    return y if bo is None else np.add(y, bo)
