"""Reference numerics of the `train` dialect (losses, gradients, optimizers), as pure
NumPy functions, in the dtype of their inputs.

The oracle is PyTorch: each gradient is what `torch.autograd` gives for the matching
`torch.nn.functional` op, each optimizer what `torch.optim` does in one step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edge_opt.support import numerics, shapes
from edge_opt.support.errors import InputError

# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------


def _scale(reduction: str, count: int) -> float:
    return 1.0 / count if reduction == "mean" else 1.0


def check_labels(
    labels: np.ndarray, classes: int, name: str = "labels", where: str = ""
) -> None:
    """Class labels must be in [0, classes): NumPy would wrap a negative one silently
    and fail on a large one; the C kernels would read out of bounds."""
    bad = np.flatnonzero((labels < 0) | (labels >= classes))
    if bad.size:
        position = int(bad[0])
        raise InputError(
            f"{name}[{position}] = {int(labels.reshape(-1)[position])}{where} is not a "
            f"class label: labels must be in [0, {classes})"
            + (f" ({bad.size} labels are out of range)" if bad.size > 1 else "")
        )


def cross_entropy(logits: np.ndarray, labels: np.ndarray, reduction: str) -> np.ndarray:
    n = logits.shape[0]
    check_labels(labels, logits.shape[1])
    picked = numerics.log_softmax(logits, 1)[np.arange(n), labels.astype(np.int64)]
    return np.asarray(-np.sum(picked) * _scale(reduction, n), dtype=logits.dtype)


def cross_entropy_grad(
    logits: np.ndarray, labels: np.ndarray, reduction: str
) -> np.ndarray:
    n = logits.shape[0]
    check_labels(labels, logits.shape[1])
    grad = numerics.softmax(logits, 1)
    grad[np.arange(n), labels.astype(np.int64)] -= 1
    return grad * _scale(reduction, n)


def mse(prediction: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
    diff = prediction - target
    return np.asarray(np.sum(diff * diff) * _scale(reduction, diff.size), prediction.dtype)


def mse_grad(prediction: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
    diff = prediction - target
    return 2 * diff * _scale(reduction, diff.size)


# --------------------------------------------------------------------------------------
# Softmax (the element-wise gradients are in `edge_opt.support.elementwise`)
# --------------------------------------------------------------------------------------


def softmax_grad(dy: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


def log_softmax_grad(dy: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return dy - np.exp(y) * np.sum(dy, axis=axis, keepdims=True)


# --------------------------------------------------------------------------------------
# Normalisations: with g = dy * scale and x_hat the normalized input over axes A,
# dx = rstd * (g - mean_A(g) - x_hat * mean_A(g * x_hat)).
# --------------------------------------------------------------------------------------


def _normalize(
    x: np.ndarray, axes: tuple[int, ...], epsilon: float
) -> tuple[np.ndarray, np.ndarray]:
    mean = np.mean(x, axis=axes, keepdims=True)
    var = np.mean((x - mean) ** 2, axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(var + epsilon)
    return (x - mean) * rstd, rstd


def _norm_input_grad(
    g: np.ndarray, x_hat: np.ndarray, rstd: np.ndarray, axes: tuple[int, ...]
) -> np.ndarray:
    return rstd * (
        g
        - np.mean(g, axis=axes, keepdims=True)
        - x_hat * np.mean(g * x_hat, axis=axes, keepdims=True)
    )


def layer_norm_grad_input(
    dy: np.ndarray, x: np.ndarray, scale: np.ndarray, axis: int, epsilon: float
) -> np.ndarray:
    axes = tuple(range(shapes.normalize_axis(axis, x.ndim), x.ndim))
    x_hat, rstd = _normalize(x, axes, epsilon)
    return _norm_input_grad(dy * scale, x_hat, rstd, axes)


def layer_norm_grad_scale(
    dy: np.ndarray, x: np.ndarray, axis: int, epsilon: float
) -> np.ndarray:
    start = shapes.normalize_axis(axis, x.ndim)
    x_hat, _ = _normalize(x, tuple(range(start, x.ndim)), epsilon)
    return np.sum(dy * x_hat, axis=tuple(range(start)))


def _channel(v: np.ndarray, rank: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (rank - 2))


def _batch_norm_x_hat(
    x: np.ndarray, mean: np.ndarray, var: np.ndarray, epsilon: float, training: bool
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    axes = (0, *range(2, x.ndim))
    if training:
        x_hat, rstd = _normalize(x, axes, epsilon)
        return x_hat, rstd, axes
    rstd = 1 / np.sqrt(_channel(var, x.ndim) + epsilon)
    return (x - _channel(mean, x.ndim)) * rstd, rstd, axes


def batch_norm_grad_input(
    dy: np.ndarray,
    x: np.ndarray,
    scale: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    epsilon: float,
    training: bool,
) -> np.ndarray:
    x_hat, rstd, axes = _batch_norm_x_hat(x, mean, var, epsilon, training)
    g = dy * _channel(scale, x.ndim)
    if not training:
        return g * rstd
    return _norm_input_grad(g, x_hat, rstd, axes)


def batch_norm_grad_scale(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    epsilon: float,
    training: bool,
) -> np.ndarray:
    x_hat, _, axes = _batch_norm_x_hat(x, mean, var, epsilon, training)
    return np.sum(dy * x_hat, axis=axes)


def group_norm_grad_input(
    dy: np.ndarray, x: np.ndarray, scale: np.ndarray, groups: int, epsilon: float
) -> np.ndarray:
    n = x.shape[0]
    grouped = x.reshape(n, groups, -1)
    x_hat, rstd = _normalize(grouped, (2,), epsilon)
    g = (dy * _channel(scale, x.ndim)).reshape(n, groups, -1)
    return _norm_input_grad(g, x_hat, rstd, (2,)).reshape(x.shape)


def group_norm_grad_scale(
    dy: np.ndarray, x: np.ndarray, groups: int, epsilon: float
) -> np.ndarray:
    n = x.shape[0]
    x_hat, _ = _normalize(x.reshape(n, groups, -1), (2,), epsilon)
    return np.sum(dy * x_hat.reshape(x.shape), axis=(0, *range(2, x.ndim)))


# --------------------------------------------------------------------------------------
# Linear and convolutions
# --------------------------------------------------------------------------------------


def linear_grad_input(dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    return dy @ w


def linear_grad_weight(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    return dy.reshape(-1, dy.shape[-1]).T @ x.reshape(-1, x.shape[-1])


def conv2d_grad_input(
    dy: np.ndarray,
    w: np.ndarray,
    input_shape: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    """The transposed convolution of `dy` with `w`, with the output padding that gives
    back the input's size (rows/columns the forward never read get zero)."""
    output_padding = [
        input_shape[2 + a]
        - (
            (dy.shape[2 + a] - 1) * stride[a]
            - padding[a]
            - padding[a + 2]
            + dilation[a] * (w.shape[2 + a] - 1)
            + 1
        )
        for a in range(2)
    ]
    return numerics.conv_transpose2d(
        dy, w, None, stride, padding, output_padding, dilation, groups
    )


def conv2d_grad_weight(
    dy: np.ndarray,
    x: np.ndarray,
    weight_shape: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    pt, pl, pb, pr = padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    o, cg, kh, kw = weight_shape
    n, _, oh, ow = dy.shape
    win = numerics.windows(xp, (kh, kw), stride, dilation)[:, :, :oh, :ow]
    win = win.reshape(n, groups, cg, oh, ow, kh, kw)
    dyg = dy.reshape(n, groups, o // groups, oh, ow)
    dw = np.einsum("ngohw,ngchwij->gocij", dyg, win, optimize=True)
    return dw.reshape(weight_shape)


def conv_transpose2d_grad_input(
    dy: np.ndarray,
    w: np.ndarray,
    input_shape: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    """The convolution of `dy` with `w` (rows past the input's size, which only the
    output padding produced, are dropped)."""
    dx = numerics.conv2d(dy, w, None, stride, padding, dilation, groups)
    return dx[:, :, : input_shape[2], : input_shape[3]]


def conv_transpose2d_grad_weight(
    dy: np.ndarray,
    x: np.ndarray,
    weight_shape: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    """The weight gradient of the convolution that maps `dy` back to `x`'s shape, with
    `x` in the role of that convolution's output gradient."""
    conv_out = shapes.conv2d(dy.shape, weight_shape, stride, padding, dilation, groups)
    grown = np.zeros(conv_out, dtype=x.dtype)
    grown[:, :, : x.shape[2], : x.shape[3]] = x
    return conv2d_grad_weight(
        grown, dy, weight_shape, stride, padding, dilation, groups
    )


# --------------------------------------------------------------------------------------
# Pooling and slicing
# --------------------------------------------------------------------------------------


def max_pool2d_with_indices(
    x: np.ndarray,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> tuple[np.ndarray, np.ndarray]:
    pt, pl, pb, pr = numerics.pool_padding(
        x.shape[2:], kernel, stride, padding, dilation, ceil_mode
    )
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=-np.inf)
    win = numerics.crop_windows(
        numerics.windows(xp, kernel, stride, dilation),
        x.shape[2:], kernel, stride, padding, dilation, ceil_mode,
    )
    n, c, oh, ow, kh, kw = win.shape
    flat = win.reshape(n, c, oh, ow, kh * kw)
    local = np.argmax(flat, axis=-1)
    y = np.take_along_axis(flat, local[..., None], axis=-1)[..., 0]
    return y, local.astype(np.uint8)


def _scatter_windows(
    contributions: np.ndarray,
    weights_for: callable,  # type: ignore[valid-type]
    input_shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> np.ndarray:
    """Sums `contributions * weights_for(i, j)` into each window position `(i, j)` of a
    padded zero input, then crops the padding."""
    h, w = input_shape[2:]
    pt, pl, pb, pr = numerics.pool_padding(
        (h, w), kernel, stride, padding, dilation, ceil_mode
    )
    dx = np.zeros((*input_shape[:2], h + pt + pb, w + pl + pr), contributions.dtype)
    oh, ow = contributions.shape[2:]
    sh, sw = stride
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            rows = slice(i * dilation[0], i * dilation[0] + (oh - 1) * sh + 1, sh)
            cols = slice(j * dilation[1], j * dilation[1] + (ow - 1) * sw + 1, sw)
            dx[:, :, rows, cols] += contributions * weights_for(i, j)
    return dx[:, :, pt : pt + h, pl : pl + w]


def max_pool2d_grad(
    dy: np.ndarray,
    indices: np.ndarray,
    input_shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    ceil_mode: bool,
) -> np.ndarray:
    kw = kernel[1]
    return _scatter_windows(
        dy,
        lambda i, j: indices == i * kw + j,
        input_shape, kernel, stride, padding, dilation, ceil_mode,
    )


def avg_pool2d_grad(
    dy: np.ndarray,
    input_shape: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    ceil_mode: bool,
    count_include_pad: bool,
) -> np.ndarray:
    divisor = numerics.avg_pool2d_divisor(
        input_shape[2:], kernel, stride, padding, ceil_mode, count_include_pad, dy.dtype
    )
    return _scatter_windows(
        dy / divisor,
        lambda i, j: 1,
        input_shape, kernel, stride, padding, (1, 1), ceil_mode,
    )


def slice_grad(
    dy: np.ndarray,
    input_shape: Sequence[int],
    starts: Sequence[int],
    ends: Sequence[int],
    steps: Sequence[int],
) -> np.ndarray:
    dx = np.zeros(input_shape, dtype=dy.dtype)
    index = tuple(
        slice(start, None if end < 0 else end, step)
        for start, end, step in zip(starts, ends, steps)
    )
    dx[index] = dy
    return dx


def scatter(
    dest: np.ndarray, values: np.ndarray, indices: Sequence[int], axis: int
) -> np.ndarray:
    """A copy of `dest` with its slices at `indices` (unique) along `axis` replaced by
    those of `values` (`torch.Tensor.index_copy`)."""
    result = np.array(dest, copy=True)
    axis = shapes.normalize_axis(axis, dest.ndim)
    index = (slice(None),) * axis + (np.asarray(indices, dtype=np.int64),)
    result[index] = values
    return result


# --------------------------------------------------------------------------------------
# Optimizers
# --------------------------------------------------------------------------------------


def sgd(p: np.ndarray, g: np.ndarray, lr: float, weight_decay: float) -> np.ndarray:
    if weight_decay:
        g = g + weight_decay * p
    return p - lr * g


def sgd_momentum(
    p: np.ndarray,
    g: np.ndarray,
    buffer: np.ndarray,
    lr: float,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
) -> tuple[np.ndarray, np.ndarray]:
    if weight_decay:
        g = g + weight_decay * p
    buffer = momentum * buffer + g
    step = g + momentum * buffer if nesterov else buffer
    return p - lr * step, buffer


def adam(
    p: np.ndarray,
    g: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    step: np.ndarray,
    lr: float,
    beta1: float,
    beta2: float,
    epsilon: float,
    weight_decay: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if weight_decay:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    t = float(step)
    bias1 = 1 - beta1**t
    bias2 = 1 - beta2**t
    denom = np.sqrt(v) / math.sqrt(bias2) + epsilon
    return p - (lr / bias1) * m / denom, m, v
