"""The element-wise C kernels against the interpreter's numerics (float32)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from c_runtime import Broadcast, int_array, pointer, runtime
from edge_opt.backends.c.kernels.elementwise import broadcast_strides
from edge_opt.ir import numerics
from edge_opt.ir import train_numerics as tn

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
