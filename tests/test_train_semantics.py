"""The interpreter semantics of every `train` op against PyTorch (CPU), the oracle.

As `test_nn_semantics.py` (whose strategies and helpers this file reuses): each test
draws shapes and attributes with hypothesis (valid combinations only, built directly),
builds a one-op function with the op's builder (so the builder's result types are
checked too), verifies the module, interprets it and compares with torch on the same
arrays, in float32 (tolerances by how much the op accumulates) and float64 (1e-10).

The oracles:
- each gradient op: `torch.autograd.grad` of the matching `torch.nn.functional` op, with
  a random output gradient `dy`; where torch has no direct form of our attributes
  (asymmetric padding, negative slice steps) the forward is composed of torch ops as in
  `test_nn_semantics.py` and differentiated as a whole;
- the losses: `F.cross_entropy` / `F.mse_loss` and their autograd;
- the optimizers: several consecutive `torch.optim.SGD` / `torch.optim.Adam` steps on
  the same gradients, the optimizer state carried through our ops' inputs and results.

Optimizer hyper-parameters are `f32` attributes: the tests hand torch the float32 value
the attribute holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_nn_semantics import (  # the nn tests' strategies and oracle helpers
    ANY_DTYPES,
    DTYPES,
    EPSILONS,
    SEEDS,
    _check,
    _pool_input,
    _random,
    _shapes,
    _t,
    _tol,
    conv2d_cases,
    conv_transpose2d_cases,
    gathers,
    pool_cases,
    shape_and_axis,
    slices,
    torch_conv2d,
    torch_conv_transpose2d,
)
from torch_reference import TORCH_UNARY, drop_end_padding_windows, pre_pad
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import Attribute, Block, Operation, Region

from edge_opt.dialects import nn, train
from edge_opt.dialects.elementwise import GRAD_OP
from edge_opt.ir.interpreters import make_interpreter
from edge_opt.ir.session import Session, run
from edge_opt.support.dtypes import tensor_type
from edge_opt.support.elementwise import UNARY

SETTINGS = settings(max_examples=100)
FEW = settings(max_examples=40)

# --------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------


def _module(
    arg_types: Sequence[Attribute],
    build: Callable[..., Operation | Sequence[Operation]],
    params: Sequence[nn.ParamOp] = (),
) -> ModuleOp:
    """`func.func @f(args) { ops = build(*args); return every result of the last op }`,
    verified. `build` returns one op, a list of ops, or `(ops, values to return)`."""
    block = Block(arg_types=arg_types)
    built = build(*block.args)
    if isinstance(built, tuple):
        ops, results = list(built[0]), list(built[1])
    else:
        ops = [built] if isinstance(built, Operation) else list(built)
        results = list(ops[-1].results)
    block.add_ops([*ops, func.ReturnOp(*results)])
    function = func.FuncOp(
        "f", (list(arg_types), [r.type for r in results]), Region(block)
    )
    module = ModuleOp([*params, function])
    module.verify()
    return module


def _run(
    build: Callable[..., Operation], *inputs: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Interprets `_module(build)` on `inputs` and returns what its `@f` returns."""
    module = _module([tensor_type(a) for a in inputs], build)
    return run(module, "f", list(inputs))


def _run1(build: Callable[..., Operation], *inputs: np.ndarray) -> np.ndarray:
    (result,) = _run(build, *inputs)
    return result


def _autograd(
    forward: Callable[..., torch.Tensor],
    inputs: Sequence[np.ndarray],
    wrt: Sequence[int],
    dy: np.ndarray | torch.Tensor,
    float64: bool = False,
) -> list[torch.Tensor]:
    """`d(forward(*inputs)) / d(inputs[i])` for `i` in `wrt`, seeded with `dy`; with
    `float64`, computed on the same values widened to float64."""
    if float64:
        inputs = [a.astype(np.float64) for a in inputs]
        dy = np.asarray(dy, np.float64)
    tensors = [_t(a).requires_grad_(i in wrt) for i, a in enumerate(inputs)]
    output = forward(*tensors)
    seed = dy if isinstance(dy, torch.Tensor) else _t(dy)
    return list(torch.autograd.grad(output, [tensors[i] for i in wrt], seed))


def _as_f32(value: float) -> float:
    """The value an `f32` attribute holds."""
    return float(np.float32(value))


# --------------------------------------------------------------------------------------
# Element-wise gradients
# --------------------------------------------------------------------------------------

# (op, torch forward, which forward value the op reads: its input x or output y)
ELEMENTWISE = [
    (GRAD_OP[row.name], TORCH_UNARY[row.name], "x" if row.saved == "input" else "y")
    for row in UNARY if not row.attributes and row.name in GRAD_OP
]


def _grad_input(rng, shape, dtype, scale: float, kinks: bool) -> np.ndarray:
    """N(0, 1) times `scale` (30 saturates the bounded functions); with `kinks`,
    integers in [-4, 4], which hit relu's 0 and hardswish's -3 and 3."""
    if kinks:
        return rng.integers(-4, 5, shape).astype(dtype)
    return (rng.standard_normal(shape) * scale).astype(dtype)


SCALAR_GRADS = [
    (lambda g, s: train.ClipGradOp(g, s, 0.0, 6.0), F.relu6, "y"),
    (lambda g, s: train.ClipGradOp(g, s, -1.0, 2.0), lambda t: F.hardtanh(t, -1.0, 2.0),
     "y"),
    # One bound: the relu forms have the same convention (0 at the bound).
    (lambda g, s: train.ClipGradOp(g, s, -1.0, None), lambda t: -1.0 + F.relu(t + 1.0),
     "y"),
    (lambda g, s: train.ClipGradOp(g, s, None, 2.0), lambda t: 2.0 - F.relu(2.0 - t),
     "y"),
    (lambda g, s: train.HardsigmoidGradOp(g, s, 1 / 6), F.hardsigmoid, "y"),
    (lambda g, s: train.HardsigmoidGradOp(g, s, 0.25),
     lambda t: F.hardtanh(0.25 * t + 0.5, 0.0, 1.0), "y"),
    (lambda g, s: train.EluGradOp(g, s, 1.0), F.elu, "x"),
    (lambda g, s: train.EluGradOp(g, s, 0.5), lambda t: F.elu(t, 0.5), "x"),
    (lambda g, s: train.LeakyReluGradOp(g, s, 0.25), lambda t: F.leaky_relu(t, 0.25),
     "x"),
]
"""(gradient op, torch forward, saved value): the parametrised activations, with their
kinks hit by the integer inputs (relu6's 0 and 6 are not, but -1 and 2 are)."""


@pytest.mark.parametrize(
    "op, forward, saved, f32_attributes",
    [(op, forward, saved, False) for op, forward, saved in ELEMENTWISE]
    + [(op, forward, saved, True) for op, forward, saved in SCALAR_GRADS],
    ids=[op.name for op, _, _ in ELEMENTWISE]
    + ["relu6", "clip", "clip-min", "clip-max", "hardsigmoid", "hardsigmoid-0.25", "elu",
       "elu-0.5", "leaky_relu"],
)
@SETTINGS
@given(
    shape=_shapes(),
    dtype=DTYPES,
    scale=st.sampled_from([0.1, 1.0, 4.0, 30.0]),
    kinks=st.booleans(),
    seed=SEEDS,
)
def test_elementwise_grad(op, forward, saved, f32_attributes, shape, dtype, scale, kinks,
                          seed):
    """Each element-wise gradient op against autograd of its torch forward, on inputs
    that hit the kinks (`kinks`: integers) or saturate (`scale` 30)."""
    rng = np.random.default_rng(seed)
    x = _grad_input(rng, shape, dtype, scale, kinks)
    dy = _random(rng, shape, dtype)
    (expected,) = _autograd(forward, [x], [0], dy)
    value = x if saved == "x" else forward(_t(x)).numpy()
    tolerance = _tol(dtype, 1e-5, 1e-6)
    if f32_attributes and dtype == np.float64:
        # alpha = 1/6 is an f32 attribute: float64 results are off by its rounding.
        tolerance = {"rtol": 1e-7, "atol": 1e-8}
    _check(_run1(op, dy, value), expected, dtype, **tolerance)


@SETTINGS
@given(
    shape=_shapes(),
    dtype=DTYPES,
    approximate=st.sampled_from(["none", "tanh"]),
    scale=st.sampled_from([0.5, 3.0, 30.0]),
    seed=SEEDS,
)
def test_gelu_grad(shape, dtype, approximate, scale, seed):
    rng = np.random.default_rng(seed)
    x = _grad_input(rng, shape, dtype, scale, kinks=False)
    dy = _random(rng, shape, dtype)
    (expected,) = _autograd(lambda t: F.gelu(t, approximate=approximate), [x], [0], dy)
    ours = _run1(lambda g, s: train.GeluGradOp(g, s, approximate), dy, x)
    # The tanh form cancels for x < -4 (1 + tanh ~ 0): there float32 results, torch's
    # too, are only accurate to ~1e-6 absolute, and one ulp of tanh apart.
    _check(ours, expected, dtype, **_tol(dtype, 1e-5, 1e-5))


@pytest.mark.parametrize(
    "op, forward",
    [(train.SoftmaxGradOp, F.softmax), (train.LogSoftmaxGradOp, F.log_softmax)],
    ids=["softmax_grad", "log_softmax_grad"],
)
@SETTINGS
@given(
    case=shape_and_axis(),
    dtype=DTYPES,
    scale=st.sampled_from([1.0, 100.0]),
    seed=SEEDS,
)
def test_softmax_grad(op, forward, case, dtype, scale, seed):
    shape, axis = case
    rng = np.random.default_rng(seed)
    x = _random(rng, shape, dtype) * dtype(scale)
    dy = _random(rng, shape, dtype)
    (expected,) = _autograd(lambda t: forward(t, dim=axis), [x], [0], dy)
    y = forward(_t(x), dim=axis).numpy()
    ours = _run1(lambda g, s: op(g, s, axis), dy, y)
    _check(ours, expected, dtype, **_tol(dtype, 1e-5, 1e-5))


# --------------------------------------------------------------------------------------
# Normalisation gradients: the oracle runs in float64 on the same values. torch's own
# float32 gradient is off from the exact one by ~ulp(x) / sqrt(var + eps), which for a
# group of one element (var = 0, where the exact gradient is 0) is ~1e-4.
# --------------------------------------------------------------------------------------


@SETTINGS
@given(case=shape_and_axis(), epsilon=EPSILONS, dtype=DTYPES, seed=SEEDS)
def test_layer_norm_grads(case, epsilon, dtype, seed):
    shape, axis = case
    rng = np.random.default_rng(seed)
    normalized = shape[axis:] if axis >= 0 else shape[len(shape) + axis :]
    x = _random(rng, shape, dtype) * dtype(3.0) + dtype(1.0)
    scale, bias = _random(rng, normalized, dtype), _random(rng, normalized, dtype)
    dy = _random(rng, shape, dtype)
    dx, dscale = _autograd(
        lambda *t: F.layer_norm(t[0], normalized, t[1], t[2], eps=epsilon),
        [x, scale, bias], [0, 1], dy, float64=True,
    )
    ours = _run1(
        lambda g, a, s: train.LayerNormGradInputOp(g, a, s, axis=axis, epsilon=epsilon),
        dy, x, scale,
    )
    _check(ours, dx, dtype, **_tol(dtype, 1e-4, 1e-4))
    ours = _run1(
        lambda g, a: train.LayerNormGradScaleOp(g, a, axis=axis, epsilon=epsilon), dy, x
    )
    _check(ours, dscale, dtype, **_tol(dtype, 1e-4, 1e-4))


@SETTINGS
@given(
    shape=_shapes(min_dims=2, max_dims=4),
    training=st.booleans(),
    epsilon=EPSILONS,
    dtype=DTYPES,
    seed=SEEDS,
)
def test_batch_norm_grads(shape, training, epsilon, dtype, seed):
    if training and math.prod(shape) // shape[1] < 2:
        # torch refuses batch statistics of a single value per channel.
        shape = (2, *shape[1:])
    rng = np.random.default_rng(seed)
    channels = (shape[1],)
    x = _random(rng, shape, dtype) * dtype(2.0) + dtype(0.5)
    scale, bias, mean = (_random(rng, channels, dtype) for _ in range(3))
    var = rng.uniform(0.1, 3.0, channels).astype(dtype)
    dy = _random(rng, shape, dtype)
    # In training mode torch updates the running statistics in place: give it copies
    # (and our op must ignore them, as the forward does).
    dx, dscale = _autograd(
        lambda *t: F.batch_norm(
            t[0], t[3].detach().clone(), t[4].detach().clone(), t[1], t[2],
            training=training, eps=epsilon,
        ),
        [x, scale, bias, mean, var], [0, 1], dy, float64=True,
    )
    ours = _run1(
        lambda *a: train.BatchNormGradInputOp(*a, epsilon=epsilon, training=training),
        dy, x, scale, mean, var,
    )
    _check(ours, dx, dtype, **_tol(dtype, 1e-4, 1e-4))
    ours = _run1(
        lambda *a: train.BatchNormGradScaleOp(*a, epsilon=epsilon, training=training),
        dy, x, mean, var,
    )
    _check(ours, dscale, dtype, **_tol(dtype, 1e-4, 1e-4))


@SETTINGS
@given(
    batch=st.integers(1, 3),
    groups=st.integers(1, 3),
    channels_per_group=st.integers(1, 3),
    spatial=_shapes(max_dims=2),
    epsilon=EPSILONS,
    dtype=DTYPES,
    seed=SEEDS,
)
def test_group_norm_grads(
    batch, groups, channels_per_group, spatial, epsilon, dtype, seed
):
    if batch * channels_per_group * math.prod(spatial) == 1:
        # torch refuses statistics of a single value.
        batch = 2
    rng = np.random.default_rng(seed)
    channels = groups * channels_per_group
    shape = (batch, channels, *spatial)
    x = _random(rng, shape, dtype) * dtype(2.0) - dtype(1.0)
    if dtype == np.float32:
        # A group of nearly equal values (its variance near epsilon) divides float32
        # rounding by its spread: no float32 implementation meets 1e-4 there.
        spread = x.astype(np.float64).reshape(batch, groups, -1).var(axis=2)
        assume(spread.min() >= 1e-2)
    scale, bias = _random(rng, (channels,), dtype), _random(rng, (channels,), dtype)
    dy = _random(rng, shape, dtype)
    dx, dscale = _autograd(
        lambda *t: F.group_norm(t[0], groups, t[1], t[2], eps=epsilon),
        [x, scale, bias], [0, 1], dy, float64=True,
    )
    ours = _run1(
        lambda *a: train.GroupNormGradInputOp(*a, groups=groups, epsilon=epsilon),
        dy, x, scale,
    )
    _check(ours, dx, dtype, **_tol(dtype, 1e-4, 1e-4))
    ours = _run1(
        lambda *a: train.GroupNormGradScaleOp(*a, groups=groups, epsilon=epsilon), dy, x
    )
    _check(ours, dscale, dtype, **_tol(dtype, 1e-4, 1e-4))


# --------------------------------------------------------------------------------------
# Linear and convolution gradients
# --------------------------------------------------------------------------------------


@SETTINGS
@given(
    batch=_shapes(max_dims=3),
    features=st.integers(1, 6),
    out_features=st.integers(1, 6),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_linear_grads(batch, features, out_features, dtype, seed):
    """Inputs of rank 1 (no batch) to 4."""
    rng = np.random.default_rng(seed)
    x = _random(rng, (*batch, features), dtype)
    w = _random(rng, (out_features, features), dtype)
    dy = _random(rng, (*batch, out_features), dtype)
    dx, dw = _autograd(F.linear, [x, w], [0, 1], dy)
    _check(_run1(train.LinearGradInputOp, dy, w), dx, dtype)
    _check(_run1(train.LinearGradWeightOp, dy, x), dw, dtype, **_tol(dtype, 1e-5, 1e-5))


CONVOLUTIONS = {
    "conv2d": (conv2d_cases, torch_conv2d, train.Conv2dGradInputOp,
               train.Conv2dGradWeightOp, ("stride", "padding", "dilation", "groups")),
    "conv_transpose2d": (
        conv_transpose2d_cases, torch_conv_transpose2d, train.ConvTranspose2dGradInputOp,
        train.ConvTranspose2dGradWeightOp,
        ("stride", "padding", "output_padding", "dilation", "groups"),
    ),
}
"""(cases, torch forward, grad-input op, grad-weight op, attributes) of each convolution."""


@pytest.mark.parametrize("family", sorted(CONVOLUTIONS))
@SETTINGS
@given(data=st.data(), dtype=DTYPES, seed=SEEDS)
def test_conv_grads(family, data, dtype, seed):
    """Both gradients of a convolution against autograd of its torch form."""
    cases, torch_forward, grad_input, grad_weight, keys = CONVOLUTIONS[family]
    case = data.draw(cases())
    rng = np.random.default_rng(seed)
    x = _random(rng, case["input"], dtype)
    w = _random(rng, case["weight"], dtype)
    forward = torch_forward(case)
    dy = _random(rng, forward(_t(x), _t(w)).shape, dtype)
    dx, dw = _autograd(forward, [x, w], [0, 1], dy)
    attrs = {k: case[k] for k in keys}
    ours = _run1(lambda g, b: grad_input(g, b, tensor_type(x), **attrs), dy, w)
    _check(ours, dx, dtype, **_tol(dtype, 1e-5, 1e-5))
    ours = _run1(lambda g, a: grad_weight(g, a, tensor_type(w), **attrs), dy, x)
    _check(ours, dw, dtype, **_tol(dtype, 1e-4, 1e-4))


# --------------------------------------------------------------------------------------
# Pooling and slicing
# --------------------------------------------------------------------------------------

MAX_POOL = ("kernel", "stride", "padding", "dilation", "ceil_mode")


def _torch_max_pool2d(case, size: Sequence[int], return_indices: bool = False):
    """Our max-pool as torch ops: the asymmetric excess padded with -inf explicitly, a
    last ceil-mode window that starts in our end padding dropped."""
    def forward(x):
        padded, sym = pre_pad(x, case["padding"], -math.inf)
        out = F.max_pool2d(
            padded,
            case["kernel"],
            case["stride"],
            sym,
            case["dilation"],
            ceil_mode=case["ceil_mode"],
            return_indices=return_indices,
        )
        keep = (size, case["stride"], case["padding"])
        if return_indices:
            values, indices = out
            width = padded.shape[3]
            return (
                drop_end_padding_windows(values, *keep),
                drop_end_padding_windows(indices, *keep),
                width,
            )
        return drop_end_padding_windows(out, *keep)

    return forward


def _window_local(
    indices: np.ndarray, width: int, case, real: np.ndarray
) -> np.ndarray:
    """torch's flat indices into its explicitly padded plane (of width `width`) as our
    window-local positions `i * kw + j` (checked on the grid where `real`)."""
    top, left = case["padding"][:2]
    sym_h, sym_w = min(top, case["padding"][2]), min(left, case["padding"][3])
    # Row and column in our padded coordinates (the input starts at (top, left)).
    rows = indices // width + sym_h
    cols = indices % width + sym_w
    oh, ow = indices.shape[2:]
    (sh, sw), (dh, dw) = case["stride"], case["dilation"]
    i, i_rest = np.divmod(rows - (np.arange(oh) * sh)[:, None], dh)
    j, j_rest = np.divmod(cols - (np.arange(ow) * sw)[None, :], dw)
    off_grid = (i_rest != 0) | (j_rest != 0)
    assert not off_grid[real].any(), "torch's maximum is not on the window's grid"
    return i * case["kernel"][1] + j


@SETTINGS
@given(case=pool_cases(dilated=True), dtype=DTYPES, ties=st.booleans(), seed=SEEDS)
def test_max_pool2d_with_indices(case, dtype, ties, seed):
    """The values are `nn.max_pool2d`'s; the mask names the window position torch's
    `return_indices` names (the first maximum on ties)."""
    x = _pool_input(np.random.default_rng(seed), case["input"], dtype, ties)
    attrs = {k: case[k] for k in MAX_POOL}
    values, indices = _run(lambda a: train.MaxPool2dWithIndicesOp(a, **attrs), x)
    expected, torch_indices, width = _torch_max_pool2d(
        case, x.shape[2:], return_indices=True
    )(_t(x))
    _check(values, expected, dtype, rtol=0, atol=0)
    assert indices.dtype == np.uint8 and indices.shape == values.shape
    # A window that covers only padding (possible with dilation) has no maximum in the
    # input: its value is -inf and its index meaningless, in both.
    real = np.isfinite(values)
    local = _window_local(torch_indices.numpy(), width, case, real)
    np.testing.assert_array_equal(indices[real], local[real])


def test_max_pool2d_with_indices_largest_window():
    """A 16x16 window has 256 positions: the last one, 255, still fits the ui8 mask."""
    x = np.zeros((1, 1, 16, 16), np.float32)
    x[0, 0, 15, 15] = 1.0
    values, indices = _run(
        lambda a: train.MaxPool2dWithIndicesOp(
            a, (16, 16), (1, 1), (0, 0, 0, 0), (1, 1), False
        ),
        x,
    )
    assert values.item() == 1.0 and indices.item() == 255


@SETTINGS
@given(
    case=pool_cases(dilated=True),
    dtype=DTYPES,
    ties=st.booleans(),
    overlapping=st.booleans(),
    seed=SEEDS,
)
def test_max_pool2d_grad(case, dtype, ties, overlapping, seed):
    """`train.max_pool2d_with_indices` then `train.max_pool2d_grad` on its mask is
    torch's max-pool backward (ties go to the first maximum, overlapping windows
    sum)."""
    if overlapping:
        case = case | {"stride": (1, 1)}
    rng = np.random.default_rng(seed)
    x = _pool_input(rng, case["input"], dtype, ties)
    forward = _torch_max_pool2d(case, x.shape[2:])
    y = forward(_t(x))
    # A window of padding only has no input position to send its gradient to.
    dy = np.where(np.isfinite(y.numpy()), _random(rng, y.shape, dtype), 0).astype(dtype)
    (expected,) = _autograd(forward, [x], [0], dy)
    attrs = {k: case[k] for k in MAX_POOL}

    def build(a, g):
        pool = train.MaxPool2dWithIndicesOp(a, **attrs)
        grad = train.MaxPool2dGradOp(g, pool.indices, a.type, **attrs)
        return [pool, grad]

    _check(_run1(build, x, dy), expected, dtype, **_tol(dtype, 1e-6, 1e-6))


def _torch_avg_pool2d(case, count_include_pad: bool, size: Sequence[int]):
    """Our average pool as torch ops (see `test_nn_semantics.test_avg_pool2d`)."""
    pool = {
        "kernel_size": case["kernel"],
        "stride": case["stride"],
        "ceil_mode": case["ceil_mode"],
    }

    def forward(x):
        padded, sym = pre_pad(x, case["padding"], 0.0)
        if case["padding"][:2] == case["padding"][2:]:
            y = F.avg_pool2d(
                x, padding=sym, count_include_pad=count_include_pad, **pool
            )
        elif count_include_pad:
            y = F.avg_pool2d(padded, padding=sym, count_include_pad=True, **pool)
        else:
            sums = F.avg_pool2d(padded, padding=sym, divisor_override=1, **pool)
            ones, _ = pre_pad(torch.ones_like(x), case["padding"], 0.0)
            counts = F.avg_pool2d(ones, padding=sym, divisor_override=1, **pool)
            y = sums / counts
        return drop_end_padding_windows(y, size, case["stride"], case["padding"])

    return forward


@SETTINGS
@given(
    case=pool_cases(dilated=False),
    count_include_pad=st.booleans(),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_avg_pool2d_grad(case, count_include_pad, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _random(rng, case["input"], dtype)
    forward = _torch_avg_pool2d(case, count_include_pad, x.shape[2:])
    dy = _random(rng, forward(_t(x)).shape, dtype)
    (expected,) = _autograd(forward, [x], [0], dy)
    attrs = {k: case[k] for k in ("kernel", "stride", "padding", "ceil_mode")}
    ours = _run1(
        lambda g: train.AvgPool2dGradOp(
            g, tensor_type(x), **attrs, count_include_pad=count_include_pad
        ),
        dy,
    )
    _check(ours, expected, dtype, **_tol(dtype, 1e-5, 1e-6))


def _torch_slice(starts, ends, steps):
    """torch has no negative-step slicing: gather the indices `torch.arange` lists."""
    def forward(x):
        for axis, (start, end, step) in enumerate(zip(starts, ends, steps)):
            x = x.index_select(axis, torch.arange(start, end, step))
        return x

    return forward


@SETTINGS
@given(case=slices(), dtype=DTYPES, seed=SEEDS)
def test_slice_grad(case, dtype, seed):
    shape, starts, ends, steps = case
    rng = np.random.default_rng(seed)
    x = _random(rng, shape, dtype)
    forward = _torch_slice(starts, ends, steps)
    dy = _random(rng, forward(_t(x)).shape, dtype)
    (expected,) = _autograd(forward, [x], [0], dy)
    ours = _run1(
        lambda g: train.SliceGradOp(g, tensor_type(x), starts, ends, steps), dy
    )
    _check(ours, expected, dtype, rtol=0, atol=0)


@SETTINGS
@given(case=gathers(unique=True), dtype=ANY_DTYPES, seed=SEEDS)
def test_scatter(case, dtype, seed):
    """`torch.Tensor.index_copy`: the listed slices replaced, every other element of
    the destination unchanged (bit for bit)."""
    shape, indices, axis = case
    rng = np.random.default_rng(seed)
    dest = _random(rng, shape, dtype)
    values_shape = list(shape)
    values_shape[axis] = len(indices)
    values = _random(rng, values_shape, dtype)
    ours = _run1(lambda d, v: train.ScatterOp(d, v, indices, axis), dest, values)
    expected = _t(dest).index_copy(axis, torch.tensor(indices), _t(values))
    _check(ours, expected, dtype, rtol=0, atol=0)
    # Its adjoint pair: gathering the same indices gives the values back.
    np.testing.assert_array_equal(np.take(ours, indices, axis=axis), values)


# --------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------


@SETTINGS
@given(
    batch=st.integers(1, 6),
    classes=st.integers(1, 8),
    reduction=st.sampled_from(["mean", "sum"]),
    label_dtype=st.sampled_from([np.int32, np.int64]),
    # 100 overflows exp unless the maximum is subtracted first.
    scale=st.sampled_from([1.0, 100.0]),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_cross_entropy(batch, classes, reduction, label_dtype, scale, dtype, seed):
    rng = np.random.default_rng(seed)
    logits = _random(rng, (batch, classes), dtype) * dtype(scale)
    labels = rng.integers(0, classes, (batch,)).astype(label_dtype)

    def forward(t):
        return F.cross_entropy(t, _t(labels).long(), reduction=reduction)

    loss = _run1(lambda a, b: train.CrossEntropyOp(a, b, reduction), logits, labels)
    _check(loss, forward(_t(logits)), dtype, **_tol(dtype, 1e-5, 1e-5))
    seed_grad = torch.ones((), dtype=_t(logits).dtype)
    (expected,) = _autograd(forward, [logits], [0], seed_grad)
    ours = _run1(
        lambda a, b: train.CrossEntropyGradOp(a, b, reduction), logits, labels
    )
    _check(ours, expected, dtype, **_tol(dtype, 1e-6, 1e-6))


@SETTINGS
@given(
    shape=_shapes(),
    reduction=st.sampled_from(["mean", "sum"]),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_mse(shape, reduction, dtype, seed):
    rng = np.random.default_rng(seed)
    prediction, target = _random(rng, shape, dtype), _random(rng, shape, dtype)

    def forward(p):
        return F.mse_loss(p, _t(target), reduction=reduction)

    loss = _run1(lambda a, b: train.MseOp(a, b, reduction), prediction, target)
    _check(loss, forward(_t(prediction)), dtype, **_tol(dtype, 1e-5, 1e-5))
    seed_grad = torch.ones((), dtype=_t(prediction).dtype)
    (expected,) = _autograd(forward, [prediction], [0], seed_grad)
    ours = _run1(lambda a, b: train.MseGradOp(a, b, reduction), prediction, target)
    _check(ours, expected, dtype, **_tol(dtype, 1e-6, 1e-6))


# --------------------------------------------------------------------------------------
# Optimizers: several steps, the state carried through our results
# --------------------------------------------------------------------------------------

LEARNING_RATES = st.sampled_from([1e-3, 0.01, 0.1, 0.5]).map(_as_f32)
WEIGHT_DECAYS = st.sampled_from([0.0, 1e-4, 0.05]).map(_as_f32)
STEPS = st.integers(1, 4)
OPTIMIZER_DRAWS = {
    "shape": _shapes(), "lr": LEARNING_RATES, "weight_decay": WEIGHT_DECAYS,
    "steps": STEPS, "dtype": DTYPES, "seed": SEEDS,
}
"""What every optimizer test draws: a parameter's shape and dtype, the rate, the weight
decay, the number of steps and the seed of the values."""


def _gradients(rng, shape, dtype, steps: int) -> list[np.ndarray]:
    return [_random(rng, shape, dtype) for _ in range(steps)]


@SETTINGS
@given(**OPTIMIZER_DRAWS)
def test_sgd(shape, lr, weight_decay, steps, dtype, seed):
    rng = np.random.default_rng(seed)
    p = _random(rng, shape, dtype)
    module = _module(
        [tensor_type(p)] * 2, lambda a, g: train.SgdOp(a, g, lr, weight_decay)
    )
    reference = torch.nn.Parameter(_t(p))
    optimizer = torch.optim.SGD([reference], lr=lr, weight_decay=weight_decay)
    for g in _gradients(rng, shape, dtype, steps):
        (p,) = run(module, "f", [p, g])
        reference.grad = _t(g)
        optimizer.step()
        _check(p, reference, dtype, **_tol(dtype, 1e-6, 1e-6))


@SETTINGS
@given(**OPTIMIZER_DRAWS, momentum=st.sampled_from([0.5, 0.9, 0.99]).map(_as_f32),
       nesterov=st.booleans())
def test_sgd_momentum(shape, lr, momentum, weight_decay, nesterov, steps, dtype, seed):
    rng = np.random.default_rng(seed)
    p = _random(rng, shape, dtype)
    buffer = np.zeros(shape, dtype)
    module = _module(
        [tensor_type(p)] * 3,
        lambda a, g, b: train.SgdMomentumOp(
            a, g, b, lr, momentum, weight_decay=weight_decay, nesterov=nesterov
        ),
    )
    reference = torch.nn.Parameter(_t(p))
    optimizer = torch.optim.SGD(
        [reference], lr=lr, momentum=momentum, weight_decay=weight_decay,
        nesterov=nesterov,
    )
    for g in _gradients(rng, shape, dtype, steps):
        p, buffer = run(module, "f", [p, g, buffer])
        reference.grad = _t(g)
        optimizer.step()
        _check(p, reference, dtype, **_tol(dtype, 1e-6, 1e-6))
        state = optimizer.state[reference]["momentum_buffer"]
        _check(buffer, state, dtype, **_tol(dtype, 1e-6, 1e-6))


@SETTINGS
@given(
    **OPTIMIZER_DRAWS,
    betas=st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)]).map(
        lambda b: tuple(map(_as_f32, b))
    ),
    epsilon=st.sampled_from([1e-8, 1e-6, 1e-3]).map(_as_f32),
)
def test_adam(shape, lr, betas, epsilon, weight_decay, steps, dtype, seed):
    rng = np.random.default_rng(seed)
    p = _random(rng, shape, dtype)
    m, v = np.zeros(shape, dtype), np.zeros(shape, dtype)
    type = tensor_type(p)
    module = _module(
        [type] * 4 + [TensorType(f32, [])],
        lambda *a: train.AdamOp(
            *a, lr, beta1=betas[0], beta2=betas[1], epsilon=epsilon,
            weight_decay=weight_decay,
        ),
    )
    reference = torch.nn.Parameter(_t(p))
    optimizer = torch.optim.Adam(
        [reference], lr=lr, betas=betas, eps=epsilon, weight_decay=weight_decay
    )
    for t, g in enumerate(_gradients(rng, shape, dtype, steps), start=1):
        p, m, v = run(module, "f", [p, g, m, v, np.array(t, np.float32)])
        reference.grad = _t(g)
        optimizer.step()
        state = optimizer.state[reference]
        _check(p, reference, dtype, **_tol(dtype, 1e-5, 1e-6))
        _check(m, state["exp_avg"], dtype, **_tol(dtype, 1e-6, 1e-6))
        _check(v, state["exp_avg_sq"], dtype, **_tol(dtype, 1e-6, 1e-6))


# --------------------------------------------------------------------------------------
# Parameter stores and a whole training step
# --------------------------------------------------------------------------------------


def _torch_sgd_step(weight: np.ndarray, grad: torch.Tensor, lr: float,
                    weight_decay: float) -> torch.Tensor:
    """One `torch.optim.SGD` step of `weight` with the gradient `grad`."""
    reference = torch.nn.Parameter(_t(weight))
    optimizer = torch.optim.SGD([reference], lr=lr, weight_decay=weight_decay)
    reference.grad = grad.to(reference.dtype)
    optimizer.step()
    return reference.detach()


@SETTINGS
@given(batch=_shapes(max_dims=3), features=st.integers(1, 6),
       out_features=st.integers(1, 6), lr=LEARNING_RATES, weight_decay=WEIGHT_DECAYS,
       chunk=st.integers(1, 6), dtype=DTYPES, seed=SEEDS)
def test_linear_grad_weight_sgd(batch, features, out_features, lr, weight_decay, chunk,
                                dtype, seed):
    """The fused update is the weight after autograd's gradient and a torch SGD step,
    whatever its chunk rows."""
    rng = np.random.default_rng(seed)
    x = _random(rng, (*batch, features), dtype)
    w = _random(rng, (out_features, features), dtype)
    dy = _random(rng, (*batch, out_features), dtype)
    (dw,) = _autograd(F.linear, [x, w], [1], dy)
    ours = _run1(lambda g, a, b: train.LinearGradWeightSgdOp(
        g, a, b, lr, weight_decay, min(chunk, out_features)), dy, x, w)
    _check(ours, _torch_sgd_step(w, dw, lr, weight_decay), dtype, **_tol(dtype, 1e-5, 1e-5))


@SETTINGS
@given(data=st.data(), lr=LEARNING_RATES, weight_decay=WEIGHT_DECAYS, dtype=DTYPES,
       seed=SEEDS)
def test_conv2d_grad_weight_sgd(data, lr, weight_decay, dtype, seed):
    """As the linear one, for ungrouped convolutions (the only ones the pass fuses)."""
    case = data.draw(conv2d_cases().filter(lambda c: c["groups"] == 1))
    rng = np.random.default_rng(seed)
    x = _random(rng, case["input"], dtype)
    w = _random(rng, case["weight"], dtype)
    forward = torch_conv2d(case)
    dy = _random(rng, forward(_t(x), _t(w)).shape, dtype)
    (dw,) = _autograd(forward, [x, w], [1], dy)
    attrs = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    chunk = data.draw(st.integers(1, case["weight"][0]))
    ours = _run1(lambda g, a, b: train.Conv2dGradWeightSgdOp(
        g, a, b, lr, weight_decay, chunk, **attrs), dy, x, w)
    _check(ours, _torch_sgd_step(w, dw, lr, weight_decay), dtype, **_tol(dtype, 1e-4, 1e-4))


@FEW
@given(shape=_shapes(), dtype=DTYPES, seed=SEEDS)
def test_store(shape, dtype, seed):
    """`train.store` writes `Session.params`; a later `nn.load` of the same parameter in
    the same function reads the stored value, and the next call starts from it."""
    rng = np.random.default_rng(seed)
    w0, g = _random(rng, shape, dtype), _random(rng, shape, dtype)
    type = tensor_type(w0)
    lr = 0.5

    def build(grad):
        before = nn.LoadOp("w", type)
        new = train.SgdOp(before, grad, lr)
        store = train.StoreOp(new, "w")
        after = nn.LoadOp("w", type)
        return [before, new, store, after]

    module = _module([type], build, [nn.ParamOp("w", type, trainable=True)])
    session = Session(module, {"w": w0})
    (loaded,) = session.run("f", [g])
    expected = w0 - dtype(lr) * g
    _check(session.params["w"], _t(expected), dtype, rtol=0, atol=0)
    _check(loaded, _t(expected), dtype, rtol=0, atol=0)
    (loaded,) = session.run("f", [g])
    _check(loaded, _t(expected - dtype(lr) * g), dtype, rtol=0, atol=0)
    _check(session.params["w"], _t(loaded), dtype, rtol=0, atol=0)


@FEW
@given(
    batch=st.integers(1, 4),
    features=st.integers(1, 5),
    classes=st.integers(2, 5),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_training_step(batch, features, classes, dtype, seed):
    """A linear classifier's step composed of our ops — forward, loss, backward,
    optimizer, store — is `torch.optim.SGD` on `F.cross_entropy(F.linear(...))`."""
    rng = np.random.default_rng(seed)
    x = _random(rng, (batch, features), dtype)
    labels = rng.integers(0, classes, (batch,)).astype(np.int64)
    w0 = _random(rng, (classes, features), dtype)
    w_type = tensor_type(w0)
    lr, momentum = _as_f32(0.1), _as_f32(0.9)

    def build(input, target):
        w = nn.LoadOp("w", w_type)
        buffer = nn.LoadOp("w_momentum", w_type)
        logits = nn.LinearOp(input, w)
        loss = train.CrossEntropyOp(logits, target)
        dlogits = train.CrossEntropyGradOp(logits, target)
        dw = train.LinearGradWeightOp(dlogits, input)
        update = train.SgdMomentumOp(w, dw, buffer, lr, momentum)
        stores = [
            train.StoreOp(update.new_param, "w"),
            train.StoreOp(update.new_momentum_buffer, "w_momentum"),
        ]
        return [w, buffer, logits, loss, dlogits, dw, update, *stores], [loss.loss]

    params = [
        nn.ParamOp("w", w_type, trainable=True),
        nn.ParamOp("w_momentum", w_type),
    ]
    module = _module([tensor_type(x), tensor_type(labels)], build, params)
    session = Session(module, {"w": w0, "w_momentum": np.zeros_like(w0)})
    reference = torch.nn.Parameter(_t(w0))
    optimizer = torch.optim.SGD([reference], lr=lr, momentum=momentum)
    for _ in range(2):
        (loss,) = session.run("f", [x, labels])
        optimizer.zero_grad()
        expected = F.cross_entropy(F.linear(_t(x), reference), _t(labels))
        expected.backward()
        optimizer.step()
        _check(loss, expected, dtype, **_tol(dtype, 1e-5, 1e-5))
        _check(session.params["w"], reference, dtype, **_tol(dtype, 1e-5, 1e-5))


# --------------------------------------------------------------------------------------
# Interpreter implementations called directly (Interpreter.run_op)
# --------------------------------------------------------------------------------------


@FEW
@given(shape=_shapes(min_dims=1), dtype=DTYPES, seed=SEEDS)
def test_run_op(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x, dy = _random(rng, shape, dtype), _random(rng, shape, dtype)
    block = Block(arg_types=[tensor_type(x)] * 3)
    interpreter = make_interpreter(ModuleOp([]))
    y = torch.sigmoid(_t(x)).numpy()
    (ours,) = interpreter.run_op(train.SigmoidGradOp(*block.args[:2]), (dy, y))
    (expected,) = _autograd(torch.sigmoid, [x], [0], dy)
    _check(ours, expected, dtype, **_tol(dtype, 1e-5, 1e-6))
    op = train.SgdMomentumOp(*block.args, lr=0.5, momentum=0.5, nesterov=True)
    p, buffer = interpreter.run_op(op, (x, dy, np.zeros_like(x)))
    _check(buffer, _t(dy), dtype, rtol=0, atol=0)
    _check(p, _t(x - 0.5 * (dy + 0.5 * dy)), dtype, **_tol(dtype, 1e-6, 1e-6))


@FEW
@given(shape=_shapes(min_dims=1), dtype=DTYPES, seed=SEEDS)
def test_run_op_scatter(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    dest = _random(rng, shape, dtype)
    values = _random(rng, (1, *shape[1:]), dtype)
    last = shape[0] - 1
    block = Block(arg_types=[tensor_type(dest), tensor_type(values)])
    op = train.ScatterOp(*block.args, [last], 0)
    (ours,) = make_interpreter(ModuleOp([])).run_op(op, (dest, values))
    expected = np.concatenate([dest[:last], values])
    _check(ours, _t(expected), dtype, rtol=0, atol=0)
    assert not np.shares_memory(ours, dest)  # a new value, the operand is untouched


# --------------------------------------------------------------------------------------
# Convention
# --------------------------------------------------------------------------------------


def test_every_train_op_is_covered():
    """Adding an op to the dialect without a semantics test here fails."""
    covered = {op for op, _, _ in ELEMENTWISE} | {
        train.GeluGradOp, train.SoftmaxGradOp, train.LogSoftmaxGradOp,
        train.ClipGradOp, train.HardsigmoidGradOp, train.EluGradOp,
        train.LeakyReluGradOp, train.LayerNormGradInputOp, train.LayerNormGradScaleOp,
        train.BatchNormGradInputOp, train.BatchNormGradScaleOp,
        train.GroupNormGradInputOp, train.GroupNormGradScaleOp,
        train.LinearGradInputOp, train.LinearGradWeightOp,
        train.Conv2dGradInputOp, train.Conv2dGradWeightOp,
        train.ConvTranspose2dGradInputOp, train.ConvTranspose2dGradWeightOp,
        train.MaxPool2dWithIndicesOp, train.MaxPool2dGradOp, train.AvgPool2dGradOp,
        train.SliceGradOp, train.ScatterOp, train.CrossEntropyOp, train.CrossEntropyGradOp,
        train.MseOp, train.MseGradOp, train.SgdOp, train.SgdMomentumOp, train.AdamOp,
        train.StoreOp, train.LinearGradWeightSgdOp, train.Conv2dGradWeightSgdOp,
    }
    missing = sorted(op.name for op in train.TRAIN.operations if op not in covered)
    assert not missing, f"train ops without a semantics test: {missing}"
