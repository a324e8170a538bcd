"""The element-wise C kernels against the interpreter's numerics (float32): every row of
`edge_opt.support.elementwise` with each of its choices and sampled scalars."""

from __future__ import annotations

import ctypes
import itertools

import numpy as np
import pytest
from c_checks import on_cores
from c_runtime import Broadcast, int_array, pointer, runtime
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_opt.backends.c.kernels.elementwise import broadcast_strides
from edge_opt.support.elementwise import (
    BINARY,
    UNARY,
    Binary,
    Choice,
    Scalar,
    Unary,
    clip,
)

SETTINGS = settings(max_examples=30)


def _values(seed: int, n: int, scale: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * scale).astype(np.float32)
    x[: min(n, 4)] = np.array([0.0, -3.0, 3.0, 1.5], np.float32)[: min(n, 4)]
    return x


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected.astype(np.float32), rtol=2e-6, atol=2e-6)


def _settings(attributes) -> list[dict[str, float | str]]:
    """Every combination of the attributes' values the table names: each `Choice`
    value; each scalar's samples, and an optional one also absent (as the numerics
    see it: its `absent` value), all as the f32 attributes hold them."""
    options = []
    for attr in attributes:
        if isinstance(attr, Choice):
            options.append(attr.values)
        else:
            samples = attr.samples or (attr.default,)
            extra = (attr.absent,) if attr.default is None else ()
            options.append(tuple(float(np.float32(v)) for v in (*samples, *extra)))
    names = [attr.name for attr in attributes]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*options)]


def _scalars(attributes, values) -> list[ctypes.c_float]:
    """The float arguments of a kernel, in the row's order."""
    return [ctypes.c_float(values[a.name]) for a in attributes if isinstance(a, Scalar)]


def _inputs(row: Unary, seed: int, n: int) -> np.ndarray:
    x = _values(seed, n)
    return np.abs(x) + np.float32(0.01) if row.domain == "positive" else x


GRADIENT_ROWS = [row for row in UNARY if row.derivative is not None]


@pytest.mark.parametrize("row", UNARY, ids=lambda row: row.name)
@SETTINGS
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1), inplace=st.booleans(),
       data=st.data())
def test_unary(row: Unary, n: int, seed: int, inplace: bool, data):
    """`edge_NAME_f32` (with each choice and sampled scalars) against the row's
    forward numerics."""
    values = data.draw(st.sampled_from(_settings(row.attributes)))
    x = _inputs(row, seed, n)
    expected = row.forward(x.astype(np.float64), **values)
    y = x.copy() if inplace else np.full_like(x, np.nan)
    getattr(runtime(), f"edge_{row.c_name(values)}_f32")(
        ctypes.c_int32(n), *_scalars(row.attributes, values), pointer(y if inplace else x),
        pointer(y),
    )
    _close(y, expected)


@pytest.mark.parametrize("row", GRADIENT_ROWS, ids=lambda row: row.name)
@SETTINGS
@given(n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_gradients(row: Unary, n: int, seed: int, data):
    """`edge_NAME_grad_f32` against the row's derivative, on the saved value the row
    names (the forward's input or output)."""
    values = data.draw(st.sampled_from(_settings(row.attributes)))
    grad_values = {a.name: values[a.name] for a in row.grad_attributes}
    x = _inputs(row, seed, n)
    dy = _values(seed + 1, n, 1.0)
    saved = x if row.saved == "input" else row.forward(x, **values).astype(np.float32)
    expected = row.derivative(dy.astype(np.float64), saved.astype(np.float64), **grad_values)
    dx = np.full_like(x, np.nan)
    getattr(runtime(), f"edge_{row.c_name(values)}_grad_f32")(
        ctypes.c_int32(n), *_scalars(row.grad_attributes, grad_values), pointer(dy),
        pointer(saved), pointer(dx),
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


@pytest.mark.parametrize("row", BINARY, ids=lambda row: row.name)
@SETTINGS
@given(shapes=broadcast_shapes(), seed=st.integers(0, 2**32 - 1))
def test_binary_broadcast(row: Binary, shapes, seed: int):
    name = row.name
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
    _close(out, row.forward(lhs.astype(np.float64), rhs.astype(np.float64)))


@settings(max_examples=25)
@given(shapes=broadcast_shapes(), cores=st.integers(2, 8), seed=st.integers(0, 2**32 - 1))
def test_binary_broadcast_on_teams(shapes, cores: int, seed: int):
    """Split between 2 to 8 cores (shares that start and end inside rows of the
    innermost axis, and runs along it with unit and zero strides), `add` gives the bits
    of one core."""
    _, lhs_shape, rhs_shape = shapes
    out_shape = np.broadcast_shapes(lhs_shape, rhs_shape)
    rng = np.random.default_rng(seed)
    lhs = np.asarray(rng.standard_normal(lhs_shape), np.float32)
    rhs = np.asarray(rng.standard_normal(rhs_shape), np.float32)
    params = Broadcast(
        len(out_shape), int_array(list(out_shape) + [1] * (6 - len(out_shape))),
        int_array(broadcast_strides(lhs_shape, out_shape)),
        int_array(broadcast_strides(rhs_shape, out_shape)),
    )
    out = np.full(out_shape, np.nan, np.float32)
    on_cores(cores, runtime().edge_add_f32, ctypes.byref(params), pointer(lhs),
             pointer(rhs), pointer(out))
    np.testing.assert_array_equal(out, lhs + rhs)


def test_copy():
    src = np.arange(37, dtype=np.float32)
    dst = np.zeros_like(src)
    runtime().edge_copy(pointer(src), pointer(dst), ctypes.c_size_t(src.nbytes))
    np.testing.assert_array_equal(src, dst)


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
    assert y.tobytes() == clip(x, 0.0, 6.0).tobytes()


def test_relu_bits():
    """relu works on the bits: every negative number (denormals and -inf included)
    gives +0, while -0, +0, NaN of either sign and the positive numbers come back
    unchanged, bit for bit, as `v < 0 ? 0 : v`."""
    bits = np.array([0x80000001, 0x807FFFFF, 0x80800000, 0xBF800000, 0xFF7FFFFF,
                     0xFF800000, 0xFF800001, 0xFFC00000, 0x7FC00000, 0x80000000, 0,
                     1, 0x3F800000, 0x7F7FFFFF, 0x7F800000], np.uint32)
    x = np.concatenate([bits.view(np.float32),
                        np.random.default_rng(0).standard_normal(1000).astype(np.float32)])
    y = np.full_like(x, 7.0)
    runtime().edge_relu_f32(ctypes.c_int32(x.size), pointer(x), pointer(y))
    with np.errstate(invalid="ignore"):
        expected = np.where(x < 0, np.float32(0.0), x)
    assert y.view(np.uint32).tolist() == expected.view(np.uint32).tolist()


@pytest.mark.parametrize("row", [r for r in UNARY if r.domain != "positive"],
                         ids=lambda row: row.name)
def test_unary_special_values_agree_with_the_reference(row: Unary):
    """NaN in, NaN out (relu gave 0); the infinities as the reference maps them."""
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], np.float32)
    y = np.full_like(x, 7.0)
    for values in _settings(row.attributes):
        getattr(runtime(), f"edge_{row.c_name(values)}_f32")(
            ctypes.c_int32(x.size), *_scalars(row.attributes, values), pointer(x), pointer(y)
        )
        with np.errstate(all="ignore"):
            expected = row.forward(x.astype(np.float64), **values).astype(np.float32)
        assert np.array_equal(np.isnan(y), np.isnan(expected)), (row.name, y, expected)
        finite = ~np.isnan(expected)
        np.testing.assert_allclose(y[finite], expected[finite], rtol=2e-6, atol=2e-6)
