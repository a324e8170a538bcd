"""The interpreter semantics of every `nn` op against PyTorch (CPU), the oracle.

Each test draws shapes and attributes with hypothesis (only valid combinations, built
directly), builds a one-op `@forward` with the op's builder (so the builder's result
type is checked too), verifies the module, interprets it with `edge_opt.ir.session.run`
and compares with `torch` on the same arrays. Every test draws the element type: float32
with tolerances between 1e-6 and 1e-4 (by how much the op accumulates), float64 with
1e-10 (the finite-difference gradient checks run in float64, so float64 must stay
float64 and be exact to rounding). Shape ops also run on int64.

Where PyTorch has no direct form of our attribute (asymmetric `(top, left, bottom,
right)` padding), the oracle is still built from torch ops: `F.pad` for convolutions and
pools, a crop of the symmetric result for transposed convolutions. A few ops are also run
through `Interpreter.run_op` directly, and the verifier tests check that broken shape
rules name the op and the rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch_reference import TORCH_UNARY, drop_end_padding_windows, pre_pad
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    f32,
    f64,
    i32,
    i64,
)
from xdsl.ir import Attribute, Block, Operation, Region
from xdsl.utils.exceptions import VerifyException

from edge_opt.dialects import nn
from edge_opt.dialects.elementwise import NN_OP
from edge_opt.ir.interpreters import make_interpreter
from edge_opt.ir.session import run
from edge_opt.support.dtypes import tensor_type, to_dense
from edge_opt.support.elementwise import UNARY as ELEMENTWISE_ROWS

SETTINGS = settings(max_examples=50)
FEW = settings(max_examples=25)

DTYPES = st.sampled_from([np.float32, np.float64])
# Shape ops take tensors of any element type.
ANY_DTYPES = st.sampled_from([np.float32, np.float64, np.int64])
SEEDS = st.integers(0, 2**32 - 1)
SIDES = st.integers(1, 4)

# --------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------


def _forward(
    arg_types: Sequence[Attribute],
    build: Callable[..., Operation | Sequence[Operation]],
    params: Sequence[nn.ParamOp] = (),
) -> ModuleOp:
    """`func.func @forward(args) { ops = build(*args); return last result }`, verified."""
    block = Block(arg_types=arg_types)
    built = build(*block.args)
    ops = [built] if isinstance(built, Operation) else list(built)
    result = ops[-1].results[0]
    block.add_ops([*ops, func.ReturnOp(result)])
    function = func.FuncOp("forward", (list(arg_types), [result.type]), Region(block))
    module = ModuleOp([*params, function])
    module.verify()
    return module


def _run(build: Callable[..., Operation], *inputs: np.ndarray) -> np.ndarray:
    """Interprets the one-op module `build` on `inputs` and returns its result."""
    module = _forward([tensor_type(a) for a in inputs], build)
    (result,) = run(module, "forward", list(inputs))
    return result


def _tol(dtype, rtol: float = 1e-5, atol: float = 1e-5) -> dict[str, float]:
    """Float32 tolerances as given; float64 always 1e-10."""
    if np.dtype(dtype) == np.float64:
        return {"rtol": 1e-10, "atol": 1e-10}
    return {"rtol": rtol, "atol": atol}


def _check(ours: np.ndarray, expected: torch.Tensor, dtype, **tol: float) -> None:
    """Same dtype as the inputs, same shape as torch, values close."""
    reference = expected.detach().numpy()
    assert ours.dtype == np.dtype(dtype), f"result dtype {ours.dtype}, inputs {dtype}"
    assert ours.shape == reference.shape, f"shape {ours.shape} vs torch {reference.shape}"
    np.testing.assert_allclose(ours, reference, **(tol or _tol(dtype)))


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array))


def _random(rng: np.random.Generator, shape: Sequence[int], dtype) -> np.ndarray:
    if np.dtype(dtype).kind == "i":
        return rng.integers(-1000, 1000, tuple(shape)).astype(dtype)
    return rng.standard_normal(tuple(shape)).astype(dtype)


def _shapes(min_dims: int = 0, max_dims: int = 4, max_side: int = 4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side)


# --------------------------------------------------------------------------------------
# Element-wise
# --------------------------------------------------------------------------------------

# (op, torch function, input domain): "any" draws N(0, 1) times a scale that reaches
# saturation (|x| ~ 100) for the bounded functions, "moderate" keeps exp finite,
# "positive" is for sqrt and log.
UNARY = [
    (NN_OP[row.name], TORCH_UNARY[row.name],
     {"any": "any", "bounded": "moderate", "positive": "positive"}[row.domain])
    for row in ELEMENTWISE_ROWS if not row.attributes
]


def _unary_input(rng: np.random.Generator, shape, dtype, domain: str, scale: float):
    x = rng.standard_normal(shape)
    if domain == "positive":
        x = np.abs(x) * scale + 1e-3
    elif domain == "moderate":
        x = x * min(scale, 4.0)
    else:
        x = x * scale
    return x.astype(dtype)


@pytest.mark.parametrize(
    "op, reference, domain", UNARY, ids=[op.name for op, _, _ in UNARY]
)
@SETTINGS
@given(
    shape=_shapes(),
    dtype=DTYPES,
    scale=st.sampled_from([0.1, 1.0, 4.0, 30.0]),
    seed=SEEDS,
)
def test_unary(op, reference, domain, shape, dtype, scale, seed):
    x = _unary_input(np.random.default_rng(seed), shape, dtype, domain, scale)
    _check(_run(op, x), reference(_t(x)), dtype, **_tol(dtype, 1e-5, 1e-6))


def float_arrays(bound: float):
    """Non-scalar f32 or f64 arrays with values in [-bound, bound] (f32-representable)."""
    return hnp.arrays(
        st.sampled_from([np.float32, np.float64]), _shapes(min_dims=1),
        elements=st.floats(-bound, bound, width=32),
    )


@pytest.mark.parametrize(
    "op, reference", [(nn.SigmoidOp, torch.sigmoid), (nn.SiluOp, F.silu)],
    ids=["sigmoid", "silu"],
)
@SETTINGS
@given(x=float_arrays(80))
def test_sigmoid_relative_accuracy(op, reference, x):
    """Relative, not absolute, accuracy: sigmoid(-20) ~ 2e-9 is not 0. (A
    `0.5 * (1 + tanh(x / 2))` form cancels to 0 below x ~ -17 in float32.)"""
    rtol = 1e-5 if x.dtype == np.float32 else 1e-12
    _check(_run(op, x), reference(_t(x)), x.dtype, rtol=rtol, atol=0)


@SETTINGS
@given(
    shape=_shapes(),
    dtype=DTYPES,
    approximate=st.sampled_from(["none", "tanh"]),
    scale=st.sampled_from([0.5, 3.0, 30.0]),
    seed=SEEDS,
)
def test_gelu(shape, dtype, approximate, scale, seed):
    x = _unary_input(np.random.default_rng(seed), shape, dtype, "any", scale)
    ours = _run(lambda a: nn.GeluOp(a, approximate), x)
    _check(ours, F.gelu(_t(x), approximate=approximate), dtype, **_tol(dtype, 1e-5, 1e-6))


def test_rounding_ties_and_signed_zeros():
    """Round takes halves to the even neighbour; a zero result keeps the sign of x."""
    x = np.array([-2.5, -1.5, -0.5, -0.25, 0.5, 1.5, 2.5, 3.5, -0.0, 1e9], np.float32)
    for op, reference in ((nn.RoundOp, torch.round), (nn.CeilOp, torch.ceil),
                          (nn.FloorOp, torch.floor)):
        ours = _run(op, x)
        expected = reference(_t(x)).numpy()
        np.testing.assert_array_equal(ours, expected)
        np.testing.assert_array_equal(np.signbit(ours), np.signbit(expected))


_BOUNDS = st.one_of(st.none(), st.floats(-3, 3, width=32))


@SETTINGS
@given(shape=_shapes(), lo=_BOUNDS, hi=_BOUNDS, dtype=DTYPES, seed=SEEDS)
def test_clip(shape, lo, hi, dtype, seed):
    x = _unary_input(np.random.default_rng(seed), shape, dtype, "any", 4.0)
    ours = _run(lambda a: nn.ClipOp(a, lo, hi), x)
    _check(ours, torch.clamp(_t(x), lo, hi) if (lo, hi) != (None, None) else _t(x),
           dtype, rtol=0, atol=0)


def test_clip_keeps_nan_and_relu6():
    x = np.array([np.nan, -1.0, 3.0, 7.0, np.inf, -np.inf], np.float32)
    ours = _run(lambda a: nn.ClipOp(a, 0.0, 6.0), x)
    np.testing.assert_array_equal(ours, F.relu6(_t(x)).numpy())


@SETTINGS
@given(
    shape=_shapes(),
    alpha=st.sampled_from([1 / 6, 0.2, 0.5, 2.0]),
    beta=st.sampled_from([0.5, 0.0, 0.3]),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_hardsigmoid(shape, alpha, beta, dtype, seed):
    x = _unary_input(np.random.default_rng(seed), shape, dtype, "any", 4.0)
    ours = _run(lambda a: nn.HardsigmoidOp(a, alpha, beta), x)
    # The f32 attributes hold alpha and beta rounded to float32.
    a, b = float(np.float32(alpha)), float(np.float32(beta))
    _check(ours, torch.clamp(a * _t(x) + b, 0, 1), dtype, **_tol(dtype, 1e-6, 1e-6))
    if alpha == 1 / 6 and beta == 0.5:
        _check(ours, F.hardsigmoid(_t(x)), dtype, rtol=1e-6, atol=1e-6)


@SETTINGS
@given(
    shape=_shapes(),
    alpha=st.sampled_from([1.0, 0.5, 2.0]),
    scale=st.sampled_from([0.1, 1.0, 30.0]),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_elu(shape, alpha, scale, dtype, seed):
    x = _unary_input(np.random.default_rng(seed), shape, dtype, "any", scale)
    ours = _run(lambda a: nn.EluOp(a, alpha), x)
    _check(ours, F.elu(_t(x), alpha), dtype, **_tol(dtype, 1e-6, 1e-6))


@SETTINGS
@given(
    shape=_shapes(), alpha=st.sampled_from([0.01, 0.2, 1.5]), dtype=DTYPES, seed=SEEDS
)
def test_leaky_relu(shape, alpha, dtype, seed):
    x = _unary_input(np.random.default_rng(seed), shape, dtype, "any", 4.0)
    ours = _run(lambda a: nn.LeakyReluOp(a, alpha), x)
    _check(ours, F.leaky_relu(_t(x), float(np.float32(alpha))), dtype,
           **_tol(dtype, 1e-6, 1e-7))


BINARY = [
    (nn.AddOp, torch.add),
    (nn.SubOp, torch.sub),
    (nn.MulOp, torch.mul),
    (nn.DivOp, torch.div),
    (nn.PowOp, torch.pow),
]


def _binary_inputs(op, rng, shapes, dtype, integer_exponents: bool):
    a_shape, b_shape = shapes
    a = rng.standard_normal(a_shape)
    b = rng.standard_normal(b_shape)
    if op is nn.DivOp:
        b = np.where(b < 0, -1.0, 1.0) * (0.5 + np.abs(b))
    if op is nn.PowOp:
        if integer_exponents:
            # Negative bases are defined for integral exponents.
            b = np.round(b * 2.0)
            a = np.where(a < 0, -1.0, 1.0) * (0.3 + np.abs(a))
        else:
            a = 0.2 + np.abs(a) * 2.0
            b = b * 1.5
    return a.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("op, reference", BINARY, ids=[op.name for op, _ in BINARY])
@SETTINGS
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=4),
    dtype=DTYPES,
    integer_exponents=st.booleans(),
    seed=SEEDS,
)
def test_binary_broadcasting(op, reference, shapes, dtype, integer_exponents, seed):
    rng = np.random.default_rng(seed)
    a, b = _binary_inputs(op, rng, shapes.input_shapes, dtype, integer_exponents)
    ours = _run(op, a, b)
    assert ours.shape == shapes.result_shape
    _check(ours, reference(_t(a), _t(b)), dtype, **_tol(dtype, 1e-5, 1e-6))


# --------------------------------------------------------------------------------------
# Linear algebra
# --------------------------------------------------------------------------------------


@SETTINGS
@given(
    batch=_shapes(max_dims=3),
    features=st.integers(1, 6),
    out_features=st.integers(1, 6),
    bias=st.booleans(),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_linear(batch, features, out_features, bias, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _random(rng, (*batch, features), dtype)
    w = _random(rng, (out_features, features), dtype)
    inputs = [x, w] + ([_random(rng, (out_features,), dtype)] if bias else [])
    ours = _run(nn.LinearOp, *inputs)
    expected = F.linear(*[_t(a) for a in inputs])
    _check(ours, expected, dtype)


@SETTINGS
@given(
    batches=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
    m=SIDES,
    k=st.integers(1, 6),
    n=SIDES,
    transpose_lhs=st.booleans(),
    transpose_rhs=st.booleans(),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_matmul(batches, m, k, n, transpose_lhs, transpose_rhs, dtype, seed):
    rng = np.random.default_rng(seed)
    batch_a, batch_b = batches.input_shapes
    a = _random(rng, (*batch_a, *((k, m) if transpose_lhs else (m, k))), dtype)
    b = _random(rng, (*batch_b, *((n, k) if transpose_rhs else (k, n))), dtype)
    ours = _run(
        lambda x, y: nn.MatmulOp(x, y, transpose_lhs, transpose_rhs), a, b
    )
    ta, tb = _t(a), _t(b)
    if transpose_lhs:
        ta = ta.transpose(-1, -2)
    if transpose_rhs:
        tb = tb.transpose(-1, -2)
    assert ours.shape == (*batches.result_shape, m, n)
    _check(ours, torch.matmul(ta, tb), dtype)


# --------------------------------------------------------------------------------------
# Convolutions
# --------------------------------------------------------------------------------------


@st.composite
def conv2d_cases(draw):
    """A valid conv2d: shapes, stride, asymmetric padding, dilation, groups (sometimes
    depthwise), bias."""
    groups = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    cin_g = 1 if depthwise else draw(st.integers(1, 3))
    cout_g = 1 if depthwise else draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(4))
    sizes = []
    for axis in range(2):
        extent = dilation[axis] * (kernel[axis] - 1) + 1
        smallest = max(1, extent - padding[axis] - padding[axis + 2])
        sizes.append(draw(st.integers(smallest, smallest + 5)))
    return {
        "input": (draw(st.integers(1, 2)), groups * cin_g, *sizes),
        "weight": (groups * cout_g, cin_g, *kernel),
        "bias": draw(st.booleans()),
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
    }


def torch_conv2d(case):
    """Our convolution of a case as a torch function of `(x, w[, bias])`: the
    asymmetric padding applied explicitly."""
    top, left, bottom, right = case["padding"]
    return lambda x, w, bias=None: F.conv2d(
        F.pad(x, (left, right, top, bottom)), w, bias, stride=case["stride"],
        dilation=case["dilation"], groups=case["groups"],
    )


def torch_conv_transpose2d(case):
    """Our transposed convolution of a case as a torch function of `(x, w[, bias])`:
    torch pads symmetrically, so the common part is its padding and the asymmetric rest
    is cropped from its output (padding a transposed convolution crops it)."""
    top, left, bottom, right = case["padding"]
    sym_h, sym_w = min(top, bottom), min(left, right)

    def forward(x, w, bias=None):
        y = F.conv_transpose2d(
            x, w, bias, stride=case["stride"], padding=(sym_h, sym_w),
            output_padding=case["output_padding"], groups=case["groups"],
            dilation=case["dilation"],
        )
        h, wd = y.shape[2:]
        return y[:, :, top - sym_h : h - (bottom - sym_h), left - sym_w : wd - (right - sym_w)]

    return forward


@SETTINGS
@given(case=conv2d_cases(), dtype=DTYPES, seed=SEEDS)
def test_conv2d(case, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _random(rng, case["input"], dtype)
    w = _random(rng, case["weight"], dtype)
    inputs = [x, w] + ([_random(rng, case["weight"][:1], dtype)] if case["bias"] else [])
    attrs = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    ours = _run(lambda *args: nn.Conv2dOp(*args, **attrs), *inputs)
    expected = torch_conv2d(case)(*map(_t, inputs))
    _check(ours, expected, dtype)


@st.composite
def conv_transpose2d_cases(draw):
    groups = draw(st.integers(1, 3))
    cin_g = draw(st.integers(1, 3))
    cout_g = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    output_padding = tuple(
        draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)
    )
    sizes = (draw(SIDES), draw(SIDES))
    begin, end = [], []
    for axis in range(2):
        full = (
            (sizes[axis] - 1) * stride[axis]
            + dilation[axis] * (kernel[axis] - 1)
            + 1
            + output_padding[axis]
        )
        begin.append(draw(st.integers(0, min(2, full - 1))))
        end.append(draw(st.integers(0, min(2, full - 1 - begin[-1]))))
    return {
        "input": (draw(st.integers(1, 2)), groups * cin_g, *sizes),
        "weight": (groups * cin_g, cout_g, *kernel),
        "bias": draw(st.booleans()),
        "stride": stride,
        "padding": (begin[0], begin[1], end[0], end[1]),
        "output_padding": output_padding,
        "dilation": dilation,
        "groups": groups,
    }


@SETTINGS
@given(case=conv_transpose2d_cases(), dtype=DTYPES, seed=SEEDS)
def test_conv_transpose2d(case, dtype, seed):
    rng = np.random.default_rng(seed)
    x = _random(rng, case["input"], dtype)
    w = _random(rng, case["weight"], dtype)
    out_channels = case["weight"][1] * case["groups"]
    bias = _random(rng, (out_channels,), dtype) if case["bias"] else None
    inputs = [x, w] + ([bias] if bias is not None else [])
    keys = ("stride", "padding", "output_padding", "dilation", "groups")
    attrs = {k: case[k] for k in keys}
    ours = _run(lambda *args: nn.ConvTranspose2dOp(*args, **attrs), *inputs)
    expected = torch_conv_transpose2d(case)(*map(_t, inputs))
    _check(ours, expected, dtype)


# --------------------------------------------------------------------------------------
# Softmax and normalisations
# --------------------------------------------------------------------------------------


@st.composite
def shape_and_axis(draw, min_dims: int = 1):
    shape = draw(_shapes(min_dims=min_dims))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return shape, axis


@pytest.mark.parametrize(
    "op, reference",
    [(nn.SoftmaxOp, F.softmax), (nn.LogSoftmaxOp, F.log_softmax)],
    ids=["softmax", "log_softmax"],
)
@SETTINGS
@given(
    case=shape_and_axis(),
    dtype=DTYPES,
    # Large enough that exp overflows unless the maximum is subtracted first.
    scale=st.sampled_from([1.0, 100.0, 1000.0]),
    seed=SEEDS,
)
def test_softmax(op, reference, case, dtype, scale, seed):
    shape, axis = case
    x = _random(np.random.default_rng(seed), shape, dtype) * dtype(scale)
    ours = _run(lambda a: op(a, axis), x)
    _check(ours, reference(_t(x), dim=axis), dtype, **_tol(dtype, 1e-5, 1e-5))


# Epsilons that float32 represents exactly (the attribute is an f32 FloatAttr).
EPSILONS = st.sampled_from([2.0**-17, 2.0**-10, 0.25])


@SETTINGS
@given(case=shape_and_axis(), epsilon=EPSILONS, dtype=DTYPES, seed=SEEDS)
def test_layer_norm(case, epsilon, dtype, seed):
    shape, axis = case
    rng = np.random.default_rng(seed)
    normalized = shape[axis:] if axis >= 0 else shape[len(shape) + axis :]
    x = _random(rng, shape, dtype) * dtype(3.0) + dtype(1.0)
    scale, bias = _random(rng, normalized, dtype), _random(rng, normalized, dtype)
    ours = _run(lambda *a: nn.LayerNormOp(*a, axis=axis, epsilon=epsilon), x, scale, bias)
    expected = F.layer_norm(_t(x), normalized, _t(scale), _t(bias), eps=epsilon)
    _check(ours, expected, dtype, **_tol(dtype, 1e-4, 1e-4))


@SETTINGS
@given(
    shape=_shapes(min_dims=2, max_dims=4),
    training=st.booleans(),
    epsilon=EPSILONS,
    dtype=DTYPES,
    seed=SEEDS,
)
def test_batch_norm(shape, training, epsilon, dtype, seed):
    if training and math.prod(shape) // shape[1] < 2:
        # torch refuses batch statistics of a single value per channel.
        shape = (2, *shape[1:])
    rng = np.random.default_rng(seed)
    channels = (shape[1],)
    x = _random(rng, shape, dtype) * dtype(2.0) + dtype(0.5)
    scale, bias, mean = (_random(rng, channels, dtype) for _ in range(3))
    var = (rng.uniform(0.1, 3.0, channels)).astype(dtype)
    ours = _run(
        lambda *a: nn.BatchNormOp(*a, epsilon=epsilon, training=training),
        x, scale, bias, mean, var,
    )
    expected = F.batch_norm(
        _t(x), _t(mean), _t(var), _t(scale), _t(bias), training=training, eps=epsilon
    )
    _check(ours, expected, dtype, **_tol(dtype, 1e-4, 1e-4))


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
def test_group_norm(batch, groups, channels_per_group, spatial, epsilon, dtype, seed):
    if batch * channels_per_group * math.prod(spatial) == 1:
        # torch refuses statistics of a single value (ours gives `bias`).
        batch = 2
    rng = np.random.default_rng(seed)
    channels = groups * channels_per_group
    x = _random(rng, (batch, channels, *spatial), dtype) * dtype(2.0) - dtype(1.0)
    scale, bias = _random(rng, (channels,), dtype), _random(rng, (channels,), dtype)
    ours = _run(
        lambda *a: nn.GroupNormOp(*a, groups=groups, epsilon=epsilon), x, scale, bias
    )
    expected = F.group_norm(_t(x), groups, _t(scale), _t(bias), eps=epsilon)
    _check(ours, expected, dtype, **_tol(dtype, 1e-4, 1e-4))


# --------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------


def torch_attention(x, wq, wk, wv, wo, biases, heads: int, scale: float, fused: bool):
    """`nn.attention` in torch: the projections, then `F.scaled_dot_product_attention`
    on the split heads (`fused`), or the same written out with `F.softmax`."""
    bq, bk, bv, bo = biases if biases is not None else (None,) * 4

    def split(w, b):
        y = x @ w if b is None else x @ w + b
        return y.unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, H, S, d)

    q, k, v = split(wq, bq), split(wk, bk), split(wv, bv)
    if fused:
        o = F.scaled_dot_product_attention(q, k, v, scale=scale)
    else:
        o = F.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v
    y = o.transpose(1, 2).flatten(2) @ wo
    return y if bo is None else y + bo


@SETTINGS
@given(
    batch=st.integers(1, 3),
    tokens=st.integers(1, 5),
    features=st.integers(1, 5),
    heads=st.integers(1, 3),
    dk=st.integers(1, 3),
    dv=st.integers(1, 3),
    out=st.integers(1, 5),
    bias=st.booleans(),
    scale=st.sampled_from([1.0, 0.5, 1 / 3, 1.7]),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_attention(batch, tokens, features, heads, dk, dv, out, bias, scale, dtype, seed):
    rng = np.random.default_rng(seed)
    shapes = [(batch, tokens, features), (features, heads * dk), (features, heads * dk),
              (features, heads * dv), (heads * dv, out)]
    if bias:
        shapes += [(heads * dk,), (heads * dk,), (heads * dv,), (out,)]
    inputs = [_random(rng, s, dtype) for s in shapes]
    ours = _run(
        lambda x, *w: nn.AttentionOp(
            x, *w[:4], w[4:] if bias else None, heads=heads, scale=scale
        ),
        *inputs,
    )
    t = [_t(a) for a in inputs]
    # The f32 attribute's value is what torch must be given.
    scale32 = float(np.float32(scale))
    for fused in (True, False):
        expected = torch_attention(
            t[0], *t[1:5], t[5:] if bias else None, heads, scale32, fused
        )
        _check(ours, expected, dtype, **_tol(dtype, 1e-5, 1e-5))


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------


@st.composite
def pool_cases(draw, dilated: bool):
    """A valid 2-D pool: padding at most half the kernel on every side (PyTorch's
    rule), input at least one window."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (
        (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    )
    padding = tuple(draw(st.integers(0, kernel[i % 2] // 2)) for i in range(4))
    sizes = []
    for axis in range(2):
        extent = dilation[axis] * (kernel[axis] - 1) + 1
        smallest = max(1, extent - padding[axis] - padding[axis + 2])
        sizes.append(draw(st.integers(smallest, smallest + 5)))
    return {
        "input": (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes),
        "kernel": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "ceil_mode": draw(st.booleans()),
    }




def _pool_input(rng, shape, dtype, ties: bool) -> np.ndarray:
    if ties:
        return rng.integers(-2, 3, shape).astype(dtype)
    return _random(rng, shape, dtype)


@SETTINGS
@given(case=pool_cases(dilated=True), dtype=DTYPES, ties=st.booleans(), seed=SEEDS)
def test_max_pool2d(case, dtype, ties, seed):
    x = _pool_input(np.random.default_rng(seed), case["input"], dtype, ties)
    attrs = {k: case[k] for k in ("kernel", "stride", "padding", "dilation", "ceil_mode")}
    ours = _run(lambda a: nn.MaxPool2dOp(a, **attrs), x)
    padded, sym = pre_pad(_t(x), case["padding"], -math.inf)
    expected = F.max_pool2d(
        padded,
        case["kernel"],
        case["stride"],
        sym,
        case["dilation"],
        ceil_mode=case["ceil_mode"],
    )
    expected = drop_end_padding_windows(
        expected, x.shape[2:], case["stride"], case["padding"]
    )
    _check(ours, expected, dtype, rtol=0, atol=0)


@SETTINGS
@given(
    case=pool_cases(dilated=False),
    count_include_pad=st.booleans(),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_avg_pool2d(case, count_include_pad, dtype, seed):
    x = _random(np.random.default_rng(seed), case["input"], dtype)
    attrs = {k: case[k] for k in ("kernel", "stride", "padding", "ceil_mode")}
    ours = _run(
        lambda a: nn.AvgPool2dOp(a, **attrs, count_include_pad=count_include_pad), x
    )
    pool = {
        "kernel_size": case["kernel"],
        "stride": case["stride"],
        "ceil_mode": case["ceil_mode"],
    }
    padded, sym = pre_pad(_t(x), case["padding"], 0.0)
    if case["padding"][:2] == case["padding"][2:]:
        # Symmetric: exactly torch's op.
        expected = F.avg_pool2d(
            _t(x), padding=sym, count_include_pad=count_include_pad, **pool
        )
    elif count_include_pad:
        # The explicit zeros count in torch's divisor like its own padding does.
        expected = F.avg_pool2d(padded, padding=sym, count_include_pad=True, **pool)
    else:
        # Window sums over window counts of input positions.
        sums = F.avg_pool2d(padded, padding=sym, divisor_override=1, **pool)
        ones, _ = pre_pad(torch.ones_like(_t(x)), case["padding"], 0.0)
        counts = F.avg_pool2d(ones, padding=sym, divisor_override=1, **pool)
        expected = sums / counts
    expected = drop_end_padding_windows(
        expected, x.shape[2:], case["stride"], case["padding"]
    )
    _check(ours, expected, dtype, **_tol(dtype, 1e-5, 1e-6))


@SETTINGS
@given(shape=_shapes(min_dims=3, max_dims=5), dtype=DTYPES, seed=SEEDS)
def test_global_avg_pool(shape, dtype, seed):
    x = _random(np.random.default_rng(seed), shape, dtype)
    ours = _run(nn.GlobalAvgPoolOp, x)
    expected = torch.mean(_t(x), dim=tuple(range(2, len(shape))), keepdim=True)
    _check(ours, expected, dtype, **_tol(dtype, 1e-5, 1e-6))


# --------------------------------------------------------------------------------------
# Shape ops
# --------------------------------------------------------------------------------------


def _prime_factors(n: int) -> list[int]:
    factors, p = [], 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    return factors


@st.composite
def reshapes(draw):
    """A shape and another shape with the same element count."""
    shape = draw(_shapes())
    rank = draw(st.integers(0, 4))
    factors = _prime_factors(math.prod(shape))
    if rank == 0 and factors:
        rank = 1
    target = [1] * rank
    for factor in factors:
        target[draw(st.integers(0, rank - 1))] *= factor
    return shape, tuple(target)


@FEW
@given(case=reshapes(), dtype=ANY_DTYPES, seed=SEEDS)
def test_reshape(case, dtype, seed):
    shape, target = case
    x = _random(np.random.default_rng(seed), shape, dtype)
    ours = _run(lambda a: nn.ReshapeOp(a, target), x)
    _check(ours, torch.reshape(_t(x), target), dtype, rtol=0, atol=0)


@FEW
@given(data=st.data(), shape=_shapes(), dtype=ANY_DTYPES, seed=SEEDS)
def test_transpose(data, shape, dtype, seed):
    perm = data.draw(st.permutations(range(len(shape))))
    x = _random(np.random.default_rng(seed), shape, dtype)
    ours = _run(lambda a: nn.TransposeOp(a, perm), x)
    _check(ours, _t(x).permute(tuple(perm)), dtype, rtol=0, atol=0)


@FEW
@given(
    data=st.data(),
    shape=_shapes(),
    lead=st.lists(st.integers(1, 3), max_size=2),
    dtype=ANY_DTYPES,
    seed=SEEDS,
)
def test_broadcast_to(data, shape, lead, dtype, seed):
    x = _random(np.random.default_rng(seed), shape, dtype)
    target = [*lead, *(data.draw(st.integers(1, 3)) if d == 1 else d for d in shape)]
    ours = _run(lambda a: nn.BroadcastToOp(a, target), x)
    _check(ours, torch.broadcast_to(_t(x), target), dtype, rtol=0, atol=0)


@FEW
@given(
    data=st.data(),
    shape=_shapes(min_dims=1),
    value=st.sampled_from([0.0, 1.5, -2.0]),
    dtype=ANY_DTYPES,
    seed=SEEDS,
)
def test_pad(data, shape, value, dtype, seed):
    pads = data.draw(st.lists(st.integers(0, 3), min_size=2 * len(shape),
                              max_size=2 * len(shape)))
    x = _random(np.random.default_rng(seed), shape, dtype)
    ours = _run(lambda a: nn.PadOp(a, pads, value), x)
    rank = len(shape)
    pairs = [p for a in reversed(range(rank)) for p in (pads[a], pads[rank + a])]
    _check(ours, F.pad(_t(x), pairs, value=value), dtype, rtol=0, atol=0)


@FEW
@given(
    data=st.data(),
    shape=_shapes(min_dims=1),
    count=st.integers(1, 3),
    dtype=ANY_DTYPES,
    seed=SEEDS,
)
def test_concat(data, shape, count, dtype, seed):
    rng = np.random.default_rng(seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    parts = []
    for _ in range(count):
        part = list(shape)
        part[axis] = data.draw(SIDES)
        parts.append(_random(rng, part, dtype))
    ours = _run(lambda *a: nn.ConcatOp(a, axis), *parts)
    _check(ours, torch.cat([_t(p) for p in parts], dim=axis), dtype, rtol=0, atol=0)


@st.composite
def slices(draw):
    """Per axis a non-empty `range(start, end, step)` inside the axis, steps of either
    sign; `end = -1` (down to index 0) with negative steps."""
    shape = draw(_shapes(min_dims=1, max_side=6))
    starts, ends, steps = [], [], []
    for size in shape:
        step = draw(st.integers(-3, 3).filter(bool))
        start = draw(st.integers(0, size - 1))
        if step > 0:
            end = draw(st.integers(start + 1, size))
        else:
            end = draw(st.integers(-1, start - 1))
        starts.append(start)
        ends.append(end)
        steps.append(step)
    return shape, starts, ends, steps


@SETTINGS
@given(case=slices(), dtype=ANY_DTYPES, seed=SEEDS)
def test_slice(case, dtype, seed):
    shape, starts, ends, steps = case
    x = _random(np.random.default_rng(seed), shape, dtype)
    ours = _run(lambda a: nn.SliceOp(a, starts, ends, steps), x)
    # torch has no negative-step slicing: gather the indices torch.arange lists.
    expected = _t(x)
    for axis, (start, end, step) in enumerate(zip(starts, ends, steps)):
        expected = expected.index_select(axis, torch.arange(start, end, step))
    _check(ours, expected, dtype, rtol=0, atol=0)


@st.composite
def gathers(draw, unique: bool = False):
    """A shape, an axis (either sign) and indices into it: any order, repeats allowed
    unless `unique`."""
    shape = draw(_shapes(min_dims=1, max_side=5))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    indices = draw(
        st.lists(
            st.integers(0, shape[axis] - 1), min_size=1, max_size=6, unique=unique
        )
    )
    return shape, indices, axis


@SETTINGS
@given(case=gathers(), dtype=ANY_DTYPES, seed=SEEDS)
def test_gather(case, dtype, seed):
    shape, indices, axis = case
    x = _random(np.random.default_rng(seed), shape, dtype)
    ours = _run(lambda a: nn.GatherOp(a, indices, axis), x)
    expected = torch.index_select(_t(x), axis, torch.tensor(indices))
    _check(ours, expected, dtype, rtol=0, atol=0)


@FEW
@given(
    data=st.data(),
    shape=hnp.array_shapes(min_dims=1, max_dims=5, min_side=1, max_side=3),
    dtype=ANY_DTYPES,
    seed=SEEDS,
)
def test_squeeze(data, shape, dtype, seed):
    ones = [i for i, d in enumerate(shape) if d == 1]
    chosen = data.draw(
        st.lists(st.sampled_from(ones), unique=True) if ones else st.just([])
    )
    axes = [a - len(shape) if data.draw(st.booleans()) else a for a in chosen]
    x = _random(np.random.default_rng(seed), shape, dtype)
    ours = _run(lambda a: nn.SqueezeOp(a, axes), x)
    _check(ours, torch.squeeze(_t(x), dim=tuple(axes)), dtype, rtol=0, atol=0)


@FEW
@given(data=st.data(), shape=_shapes(max_dims=3), dtype=ANY_DTYPES, seed=SEEDS)
def test_unsqueeze(data, shape, dtype, seed):
    count = data.draw(st.integers(1, 3))
    rank = len(shape) + count
    positions = data.draw(
        st.lists(st.integers(0, rank - 1), min_size=count, max_size=count, unique=True)
    )
    axes = [p - rank if data.draw(st.booleans()) else p for p in positions]
    x = _random(np.random.default_rng(seed), shape, dtype)
    ours = _run(lambda a: nn.UnsqueezeOp(a, axes), x)
    # ONNX/our rule: the axes are positions in the result; insert in increasing order.
    expected = _t(x)
    for position in sorted(positions):
        expected = expected.unsqueeze(position)
    _check(ours, expected, dtype, rtol=0, atol=0)


@pytest.mark.parametrize(
    "op, reference",
    [(nn.ReduceMeanOp, torch.mean), (nn.ReduceSumOp, torch.sum)],
    ids=["reduce_mean", "reduce_sum"],
)
@SETTINGS
@given(
    data=st.data(),
    shape=_shapes(min_dims=1),
    keepdims=st.booleans(),
    dtype=DTYPES,
    seed=SEEDS,
)
def test_reduce(op, reference, data, shape, keepdims, dtype, seed):
    rank = len(shape)
    axes = data.draw(
        st.lists(
            st.integers(-rank, rank - 1),
            min_size=1,
            max_size=rank,
            unique_by=lambda axis: axis % rank,
        )
    )
    x = _random(np.random.default_rng(seed), shape, dtype)
    ours = _run(lambda a: op(a, axes, keepdims), x)
    expected = reference(_t(x), dim=tuple(axes), keepdim=keepdims)
    _check(ours, expected, dtype, **_tol(dtype, 1e-5, 1e-5))


# --------------------------------------------------------------------------------------
# Constants and parameters (the oracle is the array itself)
# --------------------------------------------------------------------------------------


@FEW
@given(
    value=hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int64]),
        _shapes(),
        elements={"allow_nan": False, "allow_infinity": False},
    )
    | hnp.arrays(np.float32, _shapes(min_dims=1), elements=st.just(np.float32(-0.0)))
)
def test_constant(value):
    module = _forward([], lambda: nn.ConstantOp(to_dense(value)))
    (ours,) = run(module, "forward", [])
    assert ours.dtype == value.dtype and ours.shape == value.shape
    np.testing.assert_array_equal(ours, value)
    # Bit-identical: -0.0 stays -0.0 (splat compression must not lose the sign).
    assert ours.tobytes() == np.ascontiguousarray(value).tobytes()


@FEW
@given(shape=_shapes(), dtype=DTYPES, inline=st.booleans(), seed=SEEDS)
def test_load_param(shape, dtype, inline, seed):
    rng = np.random.default_rng(seed)
    value = _random(rng, shape, dtype)
    x = _random(rng, shape, dtype)
    type = tensor_type(value)
    initial = to_dense(value) if inline else None
    param = nn.ParamOp("w", type, trainable=True, value=initial)
    module = _forward(
        [type], lambda a: [load := nn.LoadOp("w", type), nn.MulOp(a, load)], [param]
    )
    params = None if inline else {"w": value}
    (ours,) = run(module, "forward", [x], params)
    _check(ours, _t(x) * _t(value), dtype, rtol=0, atol=0)
    # A value given at run time overrides the inline one.
    other = value + dtype(1.0)
    (ours,) = run(module, "forward", [x], {"w": other})
    _check(ours, _t(x) * _t(other), dtype, rtol=0, atol=0)


# --------------------------------------------------------------------------------------
# Interpreter implementations called directly (Interpreter.run_op)
# --------------------------------------------------------------------------------------

DIRECT = [
    (nn.ReluOp, torch.relu),
    (nn.SigmoidOp, torch.sigmoid),
    (nn.TanhOp, torch.tanh),
    (nn.HardswishOp, F.hardswish),
    (lambda a: nn.GeluOp(a, "tanh"), lambda t: F.gelu(t, approximate="tanh")),
    (lambda a: nn.SoftmaxOp(a, 0), lambda t: F.softmax(t, dim=0)),
]


@pytest.mark.parametrize("build, reference", DIRECT, ids=[
    "relu", "sigmoid", "tanh", "hardswish", "gelu-tanh", "softmax-axis0"
])
@FEW
@given(x=float_arrays(50))
def test_run_op(build, reference, x):
    op = build(Block(arg_types=[tensor_type(x)]).args[0])
    interpreter = make_interpreter(ModuleOp([]))
    (ours,) = interpreter.run_op(op, (x,))
    _check(ours, reference(_t(x)), x.dtype, **_tol(x.dtype, 1e-5, 1e-6))


@FEW
@given(case=conv2d_cases(), dtype=DTYPES, seed=SEEDS)
def test_run_op_conv2d(case, dtype, seed):
    rng = np.random.default_rng(seed)
    x, w = _random(rng, case["input"], dtype), _random(rng, case["weight"], dtype)
    block = Block(arg_types=[tensor_type(x), tensor_type(w)])
    attrs = {k: case[k] for k in ("stride", "padding", "dilation", "groups")}
    op = nn.Conv2dOp(*block.args, **attrs)
    (ours,) = make_interpreter(ModuleOp([])).run_op(op, (x, w))
    top, left, bottom, right = case["padding"]
    expected = F.conv2d(
        F.pad(_t(x), (left, right, top, bottom)),
        _t(w),
        stride=case["stride"],
        dilation=case["dilation"],
        groups=case["groups"],
    )
    _check(ours, expected, dtype)


# --------------------------------------------------------------------------------------
# Verifier: broken shape rules name the op and the rule
# --------------------------------------------------------------------------------------


def _t32(*shape: int) -> TensorType:
    return TensorType(f32, shape)


def _ints(*values: int) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, list(values))


def _i(value: int) -> IntegerAttr:
    return IntegerAttr(value, 64)


CONV = {
    "stride": _ints(1, 1),
    "padding": _ints(0, 0, 0, 0),
    "dilation": _ints(1, 1),
    "groups": _i(1),
}
POOL = {"kernel": _ints(2, 2), "stride": _ints(2, 2), "padding": _ints(0, 0, 0, 0)}

def _attention(heads: int, scale_type: Attribute = f32, biases: int = 0) -> dict:
    return {
        "heads": _i(heads),
        "scale": FloatAttr(0.5, scale_type),
        "operandSegmentSizes": DenseArrayBase.from_list(i32, [1] * 5 + [1] * biases
                                                        + [0] * (4 - biases)),
    }


ATTENTION = [_t32(2, 3, 4), _t32(4, 4), _t32(4, 4), _t32(4, 6), _t32(6, 5)]
"""x (B=2, S=3, D=4), wq, wk (D, H*dk = 4), wv (D, H*dv = 6), wo (6, E=5)."""

# (op class, operand types, result type, properties, expected text in the message)
INVALID = [
    pytest.param(
        nn.AttentionOp, ATTENTION, _t32(2, 3, 5), _attention(4),
        "heads (4) must divide the wv columns (6)", id="attention-heads",
    ),
    pytest.param(
        nn.AttentionOp, [_t32(2, 3, 4), _t32(4, 4), _t32(4, 2), *ATTENTION[3:]],
        _t32(2, 3, 5), _attention(2),
        "wq and wk must have the same columns", id="attention-wk",
    ),
    pytest.param(
        nn.AttentionOp, [*ATTENTION[:4], _t32(4, 5)], _t32(2, 3, 5), _attention(2),
        "wo rows (4) must equal the wv columns", id="attention-wo",
    ),
    pytest.param(
        nn.AttentionOp, [_t32(6, 4), *ATTENTION[1:]], _t32(6, 5), _attention(2),
        "input must have rank 3 (batch, tokens, features)", id="attention-rank",
    ),
    pytest.param(
        nn.AttentionOp, [*ATTENTION, _t32(4)], _t32(2, 3, 5), _attention(2, biases=1),
        "takes the four biases bq, bk, bv, bo or none", id="attention-some-biases",
    ),
    pytest.param(
        nn.AttentionOp, [*ATTENTION, _t32(4), _t32(4), _t32(6), _t32(6)],
        _t32(2, 3, 5), _attention(2, biases=4),
        "bo shape [6] must be [5]", id="attention-bias-shape",
    ),
    pytest.param(
        nn.AttentionOp, ATTENTION, _t32(2, 3, 5), _attention(2, f64),
        "scale must be an f32 attribute", id="attention-scale-type",
    ),
    pytest.param(
        nn.AttentionOp, ATTENTION, _t32(2, 3, 4), _attention(2),
        "result shape [2, 3, 4] does not match the shape [2, 3, 5]",
        id="attention-result",
    ),
    pytest.param(
        nn.Conv2dOp, [_t32(1, 4, 5, 5), _t32(2, 3, 3, 3)], _t32(1, 2, 3, 3), CONV,
        "weight in-channels (3) x groups (1) must equal input channels (4)",
        id="conv2d-channels",
    ),
    pytest.param(
        nn.Conv2dOp, [_t32(1, 3, 5, 5), _t32(2, 3, 3, 3)], _t32(1, 2, 5, 5), CONV,
        "result shape [1, 2, 5, 5] does not match the shape [1, 2, 3, 3]",
        id="conv2d-result",
    ),
    pytest.param(
        nn.Conv2dOp, [_t32(1, 3, 5, 5), _t32(2, 3, 3, 3), _t32(3)], _t32(1, 2, 3, 3),
        CONV, "bias shape [3] must be [2]", id="conv2d-bias",
    ),
    pytest.param(
        nn.Conv2dOp, [_t32(1, 4, 5, 5), _t32(2, 2, 3, 3)], _t32(1, 2, 3, 3),
        CONV | {"groups": _i(3)}, "groups (3) must divide", id="conv2d-groups",
    ),
    pytest.param(
        nn.ConvTranspose2dOp, [_t32(1, 2, 3, 3), _t32(2, 1, 3, 3)], _t32(1, 1, 9, 9),
        CONV | {"stride": _ints(2, 2), "output_padding": _ints(2, 0)},
        "output_padding (2) must be >= 0 and smaller than stride or dilation",
        id="conv_transpose2d-output_padding",
    ),
    pytest.param(
        nn.MatmulOp, [_t32(2, 3), _t32(4, 5)], _t32(2, 5), {},
        "contraction sizes differ: 3", id="matmul-contraction",
    ),
    pytest.param(
        nn.MatmulOp, [_t32(2, 2, 3), _t32(3, 3, 4)], _t32(2, 2, 4), {},
        "do not broadcast", id="matmul-batch",
    ),
    pytest.param(
        nn.AddOp, [_t32(2, 3), _t32(4, 3)], _t32(4, 3), {},
        "shapes [2, 3] and [4, 3] do not broadcast", id="add-broadcast",
    ),
    pytest.param(
        nn.MulOp, [_t32(2, 1), _t32(1, 3)], _t32(2, 1), {},
        "result shape [2, 1] does not match the shape [2, 3]", id="mul-result",
    ),
    pytest.param(
        nn.AddOp, [_t32(2, 3), TensorType(f64, [2, 3])], _t32(2, 3), {},
        "operand and result element types differ", id="add-element-types",
    ),
    pytest.param(
        nn.LinearOp, [_t32(2, 3), _t32(4, 3), _t32(3)], _t32(2, 4), {},
        "bias shape [3] must be [4]", id="linear-bias",
    ),
    pytest.param(
        nn.LinearOp, [_t32(2, 3), _t32(4, 5)], _t32(2, 4), {},
        "input features (3) must equal weight in-features (5)", id="linear-features",
    ),
    pytest.param(
        nn.LayerNormOp, [_t32(2, 3, 4), _t32(4), _t32(3, 4)], _t32(2, 3, 4),
        {"axis": _i(1), "epsilon": FloatAttr(1e-5, f32)},
        "scale shape [4] must be the normalized shape [3, 4]", id="layer_norm-scale",
    ),
    pytest.param(
        nn.BatchNormOp, [_t32(2, 3, 4, 4), _t32(3), _t32(3), _t32(4), _t32(3)],
        _t32(2, 3, 4, 4), {"epsilon": FloatAttr(1e-5, f32)},
        "mean shape [4] must be [3]", id="batch_norm-mean",
    ),
    pytest.param(
        nn.GroupNormOp, [_t32(2, 6, 4), _t32(6), _t32(6)], _t32(2, 6, 4),
        {"groups": _i(4), "epsilon": FloatAttr(1e-5, f32)},
        "groups (4) must divide the channel count (6)", id="group_norm-groups",
    ),
    pytest.param(
        nn.SoftmaxOp, [_t32(2, 3)], _t32(2, 3), {"axis": _i(2)},
        "axis 2 is out of range for rank 2", id="softmax-axis",
    ),
    pytest.param(
        nn.MaxPool2dOp, [_t32(1, 1, 6, 6)], _t32(1, 1, 4, 4),
        POOL | {"padding": _ints(2, 0, 0, 0), "dilation": _ints(1, 1)},
        "padding [2, 0, 0, 0] must be at most half the kernel [2, 2]",
        id="max_pool2d-padding",
    ),
    pytest.param(
        nn.AvgPool2dOp, [_t32(1, 1, 1, 5)], _t32(1, 1, 1, 2), POOL,
        "the window (kernel 2, dilation 1) is larger than the padded input",
        id="avg_pool2d-window",
    ),
    pytest.param(
        nn.GlobalAvgPoolOp, [_t32(2, 3)], _t32(2, 3), {},
        "input must have rank >= 3", id="global_avg_pool-rank",
    ),
    pytest.param(
        nn.ReshapeOp, [_t32(2, 3)], _t32(5), {},
        "cannot reshape [2, 3] (6 elements) into [5]", id="reshape-count",
    ),
    pytest.param(
        nn.TransposeOp, [_t32(2, 3)], _t32(3, 2), {"perm": _ints(1, 1)},
        "permutation [1, 1] is not a permutation", id="transpose-perm",
    ),
    pytest.param(
        nn.ConcatOp, [_t32(2, 3), _t32(3, 3)], _t32(5, 3), {"axis": _i(1)},
        "input 1 has shape [3, 3], which differs from [2, 3] outside axis 1",
        id="concat-shapes",
    ),
    pytest.param(
        nn.SliceOp, [_t32(4)], _t32(1),
        {"starts": _ints(1), "ends": _ints(1), "steps": _ints(1)},
        "slice along axis 0 is empty", id="slice-empty",
    ),
    pytest.param(
        nn.SliceOp, [_t32(4)], _t32(2),
        {"starts": _ints(4), "ends": _ints(-1), "steps": _ints(-2)},
        "bounds [4, -1) along axis 0 are outside the axis size 4", id="slice-bounds",
    ),
    pytest.param(
        nn.GatherOp, [_t32(4, 3)], _t32(2, 3), {"axis": _i(0), "indices": _ints(1, 4)},
        "indices [4] are outside [0, 4) (axis 0 of [4, 3])", id="gather-range",
    ),
    pytest.param(
        nn.GatherOp, [_t32(4, 3)], _t32(0, 3), {"axis": _i(0), "indices": _ints()},
        "result 0 has type tensor<0x3xf32> with an empty dimension (0)", id="gather-empty",
    ),
    pytest.param(
        nn.GatherOp, [_t32(4, 3)], _t32(4, 2), {"axis": _i(2), "indices": _ints(0, 1)},
        "axis 2 is out of range for rank 2", id="gather-axis",
    ),
    pytest.param(
        nn.GatherOp, [_t32(4, 3)], _t32(2, 3), {"axis": _i(1), "indices": _ints(0, 1)},
        "result shape [2, 3] does not match the shape [4, 2]", id="gather-result",
    ),
    pytest.param(
        nn.SqueezeOp, [_t32(2, 1)], _t32(1), {"axes": _ints(0)},
        "axis 0 has size 2, not 1", id="squeeze-size",
    ),
    pytest.param(
        nn.ReduceSumOp, [_t32(2, 3)], _t32(), {"axes": _ints(1, -1)},
        "axes [1, -1] repeat an axis", id="reduce_sum-axes",
    ),
    pytest.param(
        nn.PadOp, [_t32(2, 3)], _t32(3, 3), {"pads": _ints(1, 0, 0)},
        "pads must have two values per axis (4), got 3", id="pad-count",
    ),
    pytest.param(
        nn.PadOp, [_t32(2, 3)], _t32(1, 3), {"pads": _ints(-1, 0, 0, 0)},
        "pads [-1, 0, 0, 0] must be >= 0", id="pad-negative",
    ),
    pytest.param(
        nn.PadOp, [_t32(2, 3)], _t32(2, 3), {"pads": _ints(1, 0, 0, 0)},
        "result shape [2, 3] does not match the shape [3, 3]", id="pad-result",
    ),
    pytest.param(
        nn.GeluOp, [_t32(2)], _t32(2), {"approximate": StringAttr("fast")},
        'approximate must be "none" or "tanh", got "fast"', id="gelu-approximate",
    ),
]


@pytest.mark.parametrize("op, operand_types, result_type, properties, message", INVALID)
def test_verifier_names_op_and_rule(op, operand_types, result_type, properties, message):
    block = Block(arg_types=operand_types)
    invalid = op.create(
        operands=list(block.args), result_types=[result_type], properties=properties
    )
    block.add_ops([invalid, func.ReturnOp(invalid.results[0])])
    function = func.FuncOp("forward", (operand_types, [result_type]), Region(block))
    with pytest.raises(VerifyException) as error:
        ModuleOp([function]).verify()
    assert str(error.value).startswith(f"{op.name}: "), str(error.value)
    assert message in str(error.value)


def test_verifier_load_of_missing_param():
    type = _t32(2)
    with pytest.raises(VerifyException, match=r"^nn\.load: no parameter named @w"):
        _forward([], lambda: nn.LoadOp("w", type))


def test_verifier_load_type_mismatch():
    param = nn.ParamOp("w", _t32(3))
    with pytest.raises(
        VerifyException,
        match=r"^nn\.load: result type tensor<2xf32> does not match the type "
        r"tensor<3xf32> of @w",
    ):
        _forward([], lambda: nn.LoadOp("w", _t32(2)), [param])


def test_every_nn_op_is_covered():
    """Adding an op to the dialect without a semantics test here fails."""
    covered = (
        {op for op, _, _ in UNARY}
        | {op for op, _ in BINARY}
        | {
            nn.GeluOp, nn.ClipOp, nn.HardsigmoidOp, nn.EluOp, nn.LeakyReluOp, nn.PadOp,
            nn.LinearOp, nn.MatmulOp, nn.Conv2dOp, nn.ConvTranspose2dOp,
            nn.SoftmaxOp, nn.LogSoftmaxOp, nn.LayerNormOp, nn.BatchNormOp,
            nn.GroupNormOp, nn.AttentionOp, nn.MaxPool2dOp, nn.AvgPool2dOp, nn.GlobalAvgPoolOp,
            nn.ReshapeOp, nn.BroadcastToOp, nn.TransposeOp, nn.ConcatOp, nn.SliceOp,
            nn.GatherOp, nn.SqueezeOp,
            nn.UnsqueezeOp, nn.ReduceMeanOp, nn.ReduceSumOp, nn.ConstantOp,
            nn.LoadOp, nn.ParamOp,
        }
    )
    missing = sorted(op.name for op in nn.NN.operations if op not in covered)
    assert not missing, f"nn ops without a semantics test: {missing}"

