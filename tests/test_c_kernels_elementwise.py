"""The element-wise C kernels against the interpreter's numerics (float32)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from c_runtime import Broadcast, int_array, pointer, runtime
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_opt.backends.c.kernels.elementwise import broadcast_strides
from edge_opt.support import numerics
from edge_opt.support import train_numerics as tn

SETTINGS = settings(max_examples=30, deadline=None)

UNARY = {
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": numerics.sigmoid,
    "tanh": np.tanh,
    "silu": lambda x: x * numerics.sigmoid(x),
    "hardswish": numerics.hardswish,
    "erf": numerics.erf,
    "exp": np.exp,
    "neg": np.negative,
    "gelu": lambda x: numerics.gelu(x, "none"),
    "gelu_tanh": lambda x: numerics.gelu(x, "tanh"),
    "ceil": np.ceil,
    "floor": np.floor,
    "round": np.round,
}
POSITIVE = {"sqrt": np.sqrt, "log": np.log}

GRADS = {
    "relu": (tn.relu_grad, lambda x: np.maximum(x, 0)),
    "sigmoid": (tn.sigmoid_grad, numerics.sigmoid),
    "tanh": (tn.tanh_grad, np.tanh),
    "silu": (tn.silu_grad, None),
    "hardswish": (tn.hardswish_grad, None),
    "erf": (tn.erf_grad, None),
    "gelu": (lambda dy, x: tn.gelu_grad(dy, x, "none"), None),
    "gelu_tanh": (lambda dy, x: tn.gelu_grad(dy, x, "tanh"), None),
}
"""kernel -> (reference, forward whose output is the saved value, or None: input)"""


def _values(seed: int, n: int, scale: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * scale).astype(np.float32)
    x[: min(n, 4)] = np.array([0.0, -3.0, 3.0, 1.5], np.float32)[: min(n, 4)]
    return x


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected.astype(np.float32), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name", sorted(UNARY) + sorted(POSITIVE))
@SETTINGS
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1), inplace=st.booleans())
def test_unary(name: str, n: int, seed: int, inplace: bool):
    x = _values(seed, n)
    reference = UNARY.get(name) or POSITIVE[name]
    if name in POSITIVE:
        x = np.abs(x) + np.float32(0.01)
    expected = reference(x.astype(np.float64))
    y = x.copy() if inplace else np.full_like(x, np.nan)
    getattr(runtime(), f"edge_{name}_f32")(ctypes.c_int32(n), pointer(x if not inplace else y), pointer(y))
    _close(y, expected)


@pytest.mark.parametrize("name", sorted(GRADS))
@SETTINGS
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_gradients(name: str, n: int, seed: int):
    x = _values(seed, n)
    dy = _values(seed + 1, n, 1.0)
    reference, forward = GRADS[name]
    saved = x if forward is None else forward(x).astype(np.float32)
    expected = reference(dy.astype(np.float64), saved.astype(np.float64))
    dx = np.full_like(x, np.nan)
    getattr(runtime(), f"edge_{name}_grad_f32")(
        ctypes.c_int32(n), pointer(dy), pointer(saved), pointer(dx)
    )
    _close(dx, expected)


@st.composite
def broadcast_shapes(draw):
    rank = draw(st.integers(0, 4))
    out = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))

    def operand():
        drop = draw(st.integers(0, rank))
        return tuple(1 if draw(st.booleans()) else d for d in out[drop:])

    return tuple(out), operand(), operand()


BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "pow": np.power}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(shapes=broadcast_shapes(), seed=st.integers(0, 2**32 - 1))
def test_binary_broadcast(name: str, shapes, seed: int):
    out_shape, lhs_shape, rhs_shape = shapes
    out_shape = np.broadcast_shapes(lhs_shape, rhs_shape)
    rng = np.random.default_rng(seed)
    lhs = np.asarray(rng.standard_normal(lhs_shape), np.float32)
    rhs = np.asarray(rng.standard_normal(rhs_shape), np.float32)
    if name in ("div", "pow"):
        rhs = np.asarray(np.abs(rhs) + 0.5, np.float32)
        lhs = np.asarray(np.abs(lhs) + 0.1, np.float32) if name == "pow" else lhs
    params = Broadcast(
        len(out_shape), int_array(list(out_shape) + [1] * (6 - len(out_shape))),
        int_array(broadcast_strides(lhs_shape, out_shape)),
        int_array(broadcast_strides(rhs_shape, out_shape)),
    )
    out = np.full(out_shape, np.nan, np.float32)
    # (kept in variables: a temporary array would be freed before the call)
    getattr(runtime(), f"edge_{name}_f32")(
        ctypes.byref(params), pointer(lhs), pointer(rhs), pointer(out)
    )
    _close(out, BINARY[name](lhs.astype(np.float64), rhs.astype(np.float64)))


def test_copy():
    src = np.arange(37, dtype=np.float32)
    dst = np.zeros_like(src)
    runtime().edge_copy(pointer(src), pointer(dst), ctypes.c_size_t(src.nbytes))
    np.testing.assert_array_equal(src, dst)


WITH_SCALARS = {
    "clip": ([(0.0, 6.0), (-1.0, np.inf), (-np.inf, 0.5), (-np.inf, np.inf)],
             numerics.clip),
    "hardsigmoid": ([(1 / 6, 0.5), (0.2, 0.5), (2.0, 0.0)], numerics.hardsigmoid),
    "elu": ([(1.0,), (0.5,)], numerics.elu),
    "leaky_relu": ([(0.01,), (0.3,)], numerics.leaky_relu),
}
"""kernel -> (parameter sets, reference): clip with both bounds, one and none."""


def _float32(values) -> list[float]:
    """The parameters as the f32 attributes hold them (and the C floats receive)."""
    return [float(np.float32(v)) for v in values]


@pytest.mark.parametrize("name", sorted(WITH_SCALARS))
@SETTINGS
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1), inplace=st.booleans(),
       data=st.data())
def test_unary_with_scalars(name: str, n: int, seed: int, inplace: bool, data):
    sets, reference = WITH_SCALARS[name]
    scalars = _float32(data.draw(st.sampled_from(sets)))
    x = _values(seed, n)
    expected = reference(x.astype(np.float64), *scalars)
    y = x.copy() if inplace else np.full_like(x, np.nan)
    getattr(runtime(), f"edge_{name}_f32")(
        ctypes.c_int32(n), *map(ctypes.c_float, scalars), pointer(y if inplace else x),
        pointer(y),
    )
    _close(y, expected)


def test_rounding_ties_signs_and_large_values():
    """Halves to even, the sign of a zero result, and values beyond 2^23 (already
    integers), infinities and NaN unchanged, bit for bit as NumPy."""
    x = np.array([-2.5, -1.5, -0.5, -0.3, -0.0, 0.0, 0.5, 1.5, 2.5, 0.49999997,
                  8388607.5, -8388607.5, 8388608.0, 3e9, -3e9, np.inf, -np.inf, np.nan],
                 np.float32)
    for name, reference in (("ceil", np.ceil), ("floor", np.floor), ("round", np.round)):
        y = np.full_like(x, 7.0)
        getattr(runtime(), f"edge_{name}_f32")(ctypes.c_int32(x.size), pointer(x),
                                               pointer(y))
        assert y.tobytes() == reference(x).tobytes(), (name, y, reference(x))


def test_clip_keeps_nan():
    x = np.array([np.nan, -7.0, 3.0, 9.0], np.float32)
    y = np.full_like(x, 1.0)
    runtime().edge_clip_f32(ctypes.c_int32(4), ctypes.c_float(0.0), ctypes.c_float(6.0),
                            pointer(x), pointer(y))
    assert y.tobytes() == numerics.clip(x, 0.0, 6.0).tobytes()


GRADS_WITH_SCALARS = {
    "clip": ([(0.0, 6.0), (-1.0, np.inf), (-np.inf, 2.0)],
             tn.clip_grad, lambda x, lo, hi: numerics.clip(x, lo, hi)),
    "hardsigmoid": ([(1 / 6,), (0.2,)], tn.hardsigmoid_grad,
                    lambda x, alpha: numerics.hardsigmoid(x, alpha, 0.5)),
    "elu": ([(1.0,), (0.5,)], tn.elu_grad, None),
    "leaky_relu": ([(0.01,), (0.3,)], tn.leaky_relu_grad, None),
}
"""kernel -> (parameter sets, reference, forward whose output is saved or None)"""


@pytest.mark.parametrize("name", sorted(GRADS_WITH_SCALARS))
@SETTINGS
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_gradients_with_scalars(name: str, n: int, seed: int, data):
    sets, reference, forward = GRADS_WITH_SCALARS[name]
    scalars = _float32(data.draw(st.sampled_from(sets)))
    x = _values(seed, n)
    dy = _values(seed + 1, n, 1.0)
    saved = x if forward is None else forward(x, *scalars).astype(np.float32)
    expected = reference(dy.astype(np.float64), saved.astype(np.float64), *scalars)
    dx = np.full_like(x, np.nan)
    getattr(runtime(), f"edge_{name}_grad_f32")(
        ctypes.c_int32(n), *map(ctypes.c_float, scalars), pointer(dy), pointer(saved),
        pointer(dx),
    )
    _close(dx, expected)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_special_values_agree_with_the_reference(name: str):
    """NaN in, NaN out (relu gave 0); the infinities as the reference maps them."""
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], np.float32)
    y = np.full_like(x, 7.0)
    getattr(runtime(), f"edge_{name}_f32")(ctypes.c_int32(x.size), pointer(x), pointer(y))
    with np.errstate(all="ignore"):
        expected = UNARY[name](x.astype(np.float64)).astype(np.float32)
    assert np.array_equal(np.isnan(y), np.isnan(expected)), (name, y, expected)
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(y[finite], expected[finite], rtol=2e-6, atol=2e-6)
