"""The linalg C kernels (linear, matmul, linear gradients) against the interpreter's
numerics, in float32, with the parameters their emitters write; bitwise equal results on
1 to 8 cores; the emitters; the RISC-V build."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from c_checks import CORE_COUNTS, emit_kernel, l2_buffer, on_cores, riscv_calls
from c_runtime import c_struct, int_array, pointer, runtime
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import UnitAttr, f64

from edge_opt.backends.c.emitter import (
    EmitError,
)
from edge_opt.backends.c.kernels import linalg
from edge_opt.dialects import kernel
from edge_opt.support import numerics
from edge_opt.support import train_numerics as tn

SETTINGS = settings(max_examples=40)


Linear = c_struct("edge_linear_t")


Matmul = c_struct("edge_matmul_t")


def struct(cls: type[ctypes.Structure], fields: dict) -> ctypes.Structure:
    return cls(**{
        k: int_array(v, len(v)) if isinstance(v, list) else v for k, v in fields.items()
    })


def _random(rng: np.random.Generator, shape) -> np.ndarray:
    return np.asarray(rng.standard_normal(shape), np.float32)


def _close(actual: np.ndarray, expected: np.ndarray, magnitude: np.ndarray) -> None:
    """Within 1e-5 of the sum of the terms' magnitudes (float32 accumulation)."""
    assert actual.shape == expected.shape
    error = np.abs(actual.astype(np.float64) - expected)
    bound = 1e-5 * magnitude + 1e-30
    assert np.all(error <= bound), (
        f"max error {np.max(error - bound)} over the bound; actual {actual}, expected "
        f"{expected}"
    )


# --------------------------------------------------------------------------------------
# The kernel calls, as the emitters write them
# --------------------------------------------------------------------------------------


def run_linear(x, w, b, y, cores: int = 1) -> None:
    params = struct(Linear, linalg.linear_params(x.shape, w.shape))
    args = (ctypes.byref(params), pointer(x), pointer(w),
            None if b is None else pointer(b), pointer(y))
    on_cores(cores, runtime().edge_linear_f32, *args)


def run_linear_grad_input(dy, w, dx, cores: int = 1) -> None:
    params = struct(Linear, linalg.linear_params(dx.shape, w.shape))
    on_cores(cores, runtime().edge_linear_grad_input_f32, ctypes.byref(params),
             pointer(dy), pointer(w), pointer(dx))


def run_linear_grad_weight(dy, x, dw, cores: int = 1) -> None:
    params = struct(Linear, linalg.linear_params(x.shape, dw.shape))
    on_cores(cores, runtime().edge_linear_grad_weight_f32, ctypes.byref(params),
             pointer(dy), pointer(x), pointer(dw))


def run_matmul(lhs, rhs, out, transpose_lhs, transpose_rhs, cores: int = 1) -> None:
    params = struct(Matmul, linalg.matmul_params(
        lhs.shape, rhs.shape, out.shape, transpose_lhs, transpose_rhs))
    on_cores(cores, runtime().edge_matmul_f32, ctypes.byref(params), pointer(lhs),
             pointer(rhs), pointer(out))


# --------------------------------------------------------------------------------------
# Against the numerics
# --------------------------------------------------------------------------------------

dims = st.integers(1, 11)
leading = st.lists(st.integers(1, 5), min_size=0, max_size=2)


@SETTINGS
@given(lead=leading, n_in=st.integers(1, 40), n_out=st.integers(1, 13),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear(lead, n_in, n_out, bias, seed):
    rng = np.random.default_rng(seed)
    x, w = _random(rng, (*lead, n_in)), _random(rng, (n_out, n_in))
    b = _random(rng, (n_out,)) if bias else None
    y = np.full((*lead, n_out), np.nan, np.float32)
    run_linear(x, w, b, y)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    b64 = None if b is None else b.astype(np.float64)
    magnitude = numerics.linear(np.abs(x64), np.abs(w64), None if b is None else np.abs(b64))
    _close(y, numerics.linear(x64, w64, b64), magnitude)


@SETTINGS
@given(lead=leading, n_in=st.integers(1, 13), n_out=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1))
def test_linear_grad_input(lead, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    dy, w = _random(rng, (*lead, n_out)), _random(rng, (n_out, n_in))
    dx = np.full((*lead, n_in), np.nan, np.float32)
    run_linear_grad_input(dy, w, dx)
    dy64, w64 = dy.astype(np.float64), w.astype(np.float64)
    _close(dx, tn.linear_grad_input(dy64, w64), tn.linear_grad_input(np.abs(dy64), np.abs(w64)))


@SETTINGS
@given(lead=st.lists(st.integers(1, 9), min_size=0, max_size=2), n_in=dims,
       n_out=dims, seed=st.integers(0, 2**32 - 1))
def test_linear_grad_weight(lead, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    dy, x = _random(rng, (*lead, n_out)), _random(rng, (*lead, n_in))
    dw = np.full((n_out, n_in), np.nan, np.float32)
    run_linear_grad_weight(dy, x, dw)
    dy64, x64 = dy.astype(np.float64), x.astype(np.float64)
    _close(dw, tn.linear_grad_weight(dy64, x64), tn.linear_grad_weight(np.abs(dy64), np.abs(x64)))


@st.composite
def matmul_shapes(draw):
    """Operand shapes of a batched product with broadcast batch axes (and transposes)."""
    m, n, k = draw(dims), draw(dims), draw(st.integers(1, 24))
    rank = draw(st.integers(0, 4))
    batch = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))

    def operand_batch():
        drop = draw(st.integers(0, rank))
        return tuple(1 if draw(st.booleans()) else d for d in batch[drop:])

    transpose_lhs, transpose_rhs = draw(st.booleans()), draw(st.booleans())
    lhs = (*operand_batch(), *((k, m) if transpose_lhs else (m, k)))
    rhs = (*operand_batch(), *((n, k) if transpose_rhs else (k, n)))
    return lhs, rhs, transpose_lhs, transpose_rhs


@SETTINGS
@given(shapes=matmul_shapes(), seed=st.integers(0, 2**32 - 1))
def test_matmul(shapes, seed):
    lhs_shape, rhs_shape, transpose_lhs, transpose_rhs = shapes
    rng = np.random.default_rng(seed)
    lhs, rhs = _random(rng, lhs_shape), _random(rng, rhs_shape)
    expected = numerics.matmul(lhs.astype(np.float64), rhs.astype(np.float64),
                               transpose_lhs, transpose_rhs)
    magnitude = numerics.matmul(np.abs(lhs.astype(np.float64)), np.abs(rhs.astype(np.float64)),
                                transpose_lhs, transpose_rhs)
    out = np.full(expected.shape, np.nan, np.float32)
    run_matmul(lhs, rhs, out, transpose_lhs, transpose_rhs)
    _close(out, expected, magnitude)


def test_linear_sizes_around_the_register_blocks():
    """Every remainder of the 4x4 blocking, rows and columns."""
    rng = np.random.default_rng(0)
    for rows in range(1, 10):
        for n_out in range(1, 10):
            x, w, b = _random(rng, (rows, 5)), _random(rng, (n_out, 5)), _random(rng, (n_out,))
            y = np.full((rows, n_out), np.nan, np.float32)
            run_linear(x, w, b, y)
            x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
            _close(y, numerics.linear(x64, w64, b64),
                   numerics.linear(np.abs(x64), np.abs(w64), np.abs(b64)))


def test_grad_input_sizes_around_the_wide_blocks():
    """Every remainder of the 4x6 blocking (B row-major: dx = dy . w; the linear layer's
    B transposed: the test above and below), on both sides of the width from which
    4x6 blocks are used whatever they leave over."""
    rng = np.random.default_rng(1)
    for rows in (3, 4, 5, 9):
        for n_in in range(1, 31):
            dy, w = _random(rng, (rows, 7)), _random(rng, (7, n_in))
            dx = np.full((rows, n_in), np.nan, np.float32)
            run_linear_grad_input(dy, w, dx)
            dy64, w64 = dy.astype(np.float64), w.astype(np.float64)
            _close(dx, tn.linear_grad_input(dy64, w64),
                   tn.linear_grad_input(np.abs(dy64), np.abs(w64)))


def test_linear_sizes_around_the_wide_blocks():
    rng = np.random.default_rng(2)
    for rows in (3, 4, 9):
        for n_out in range(1, 31):
            for depth in (1, 2, 5):  # the k loop unrolled by two, and its remainder
                x, w = _random(rng, (rows, depth)), _random(rng, (n_out, depth))
                b = _random(rng, (n_out,))
                y = np.full((rows, n_out), np.nan, np.float32)
                run_linear(x, w, b, y)
                x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
                _close(y, numerics.linear(x64, w64, b64),
                       numerics.linear(np.abs(x64), np.abs(w64), np.abs(b64)))


def test_empty_contraction_gives_the_bias():
    x, w = np.zeros((3, 0), np.float32), np.zeros((2, 0), np.float32)
    b = np.array([1.5, -2.0], np.float32)
    y = np.full((3, 2), np.nan, np.float32)
    run_linear(x, w, b, y)
    np.testing.assert_array_equal(y, np.broadcast_to(b, (3, 2)))


# --------------------------------------------------------------------------------------
# Bitwise independent of the number of cores
# --------------------------------------------------------------------------------------


def _linear(rng):
    x, w, b = _random(rng, (2, 5, 19)), _random(rng, (7, 19)), _random(rng, (7,))
    y = np.zeros((2, 5, 7), np.float32)
    return y, lambda cores: run_linear(x, w, b, y, cores)


def _linear_one_row(rng):
    x, w = _random(rng, (1, 33)), _random(rng, (23, 33))
    y = np.zeros((1, 23), np.float32)
    return y, lambda cores: run_linear(x, w, None, y, cores)


def _grad_input(rng):
    dy, w = _random(rng, (9, 6)), _random(rng, (6, 11))
    dx = np.zeros((9, 11), np.float32)
    return dx, lambda cores: run_linear_grad_input(dy, w, dx, cores)


def _grad_weight(rng):
    dy, x = _random(rng, (4, 7, 6)), _random(rng, (4, 7, 10))
    dw = np.zeros((6, 10), np.float32)
    return dw, lambda cores: run_linear_grad_weight(dy, x, dw, cores)


def _matmul(rng):
    lhs, rhs = _random(rng, (3, 1, 6, 5)), _random(rng, (2, 7, 6))
    out = np.zeros((3, 2, 5, 7), np.float32)
    return out, lambda cores: run_matmul(lhs, rhs, out, True, True, cores)


@pytest.mark.parametrize(
    "case", [_linear, _linear_one_row, _grad_input, _grad_weight, _matmul],
    ids=lambda f: f.__name__.strip("_"),
)
def test_results_do_not_depend_on_the_core_count(case):
    out, run = case(np.random.default_rng(7))
    results = []
    for cores in CORE_COUNTS:
        out[...] = np.nan
        run(cores)
        results.append(out.copy())
    assert not np.any(np.isnan(results[0]))
    for cores, result in zip(CORE_COUNTS, results):
        assert result.tobytes() == results[0].tobytes(), f"{cores} cores differ"


# --------------------------------------------------------------------------------------
# Emitters
# --------------------------------------------------------------------------------------




def test_emit_linear_without_and_with_bias():
    ctx = emit_kernel(kernel.LinearKernelOp, [l2_buffer(2, 3, 8), l2_buffer(4, 8)], [l2_buffer(2, 3, 4)])
    assert ctx.statements == ["  edge_linear_f32(&params_0, b0, b1, NULL, b2);"]
    assert ctx.declarations == [
        "  static const edge_linear_t params_0 = {.rows = 6, .in_features = 8, .out_features = 4};"
    ]
    ctx = emit_kernel(kernel.LinearKernelOp, [l2_buffer(5, 8), l2_buffer(4, 8), l2_buffer(4)],
                [l2_buffer(5, 4)])
    assert ctx.statements == ["  edge_linear_f32(&params_0, b0, b1, b2, b3);"]


def test_emit_linear_gradients():
    ctx = emit_kernel(kernel.LinearGradInputKernelOp, [l2_buffer(5, 4), l2_buffer(4, 8)], [l2_buffer(5, 8)])
    assert ctx.statements == ["  edge_linear_grad_input_f32(&params_0, b0, b1, b2);"]
    assert ".rows = 5, .in_features = 8, .out_features = 4" in ctx.declarations[0]
    ctx = emit_kernel(kernel.LinearGradWeightKernelOp, [l2_buffer(2, 5, 4), l2_buffer(2, 5, 8)],
                [l2_buffer(4, 8)])
    assert ctx.statements == ["  edge_linear_grad_weight_f32(&params_0, b0, b1, b2);"]
    assert ".rows = 10, .in_features = 8, .out_features = 4" in ctx.declarations[0]


def test_emit_matmul():
    ctx = emit_kernel(kernel.MatmulKernelOp, [l2_buffer(3, 1, 6, 5), l2_buffer(2, 7, 6)],
                [l2_buffer(3, 2, 5, 7)], transpose_lhs=UnitAttr(), transpose_rhs=UnitAttr())
    assert ctx.statements == ["  edge_matmul_f32(&params_0, b0, b1, b2);"]
    assert ctx.declarations == [(
        "  static const edge_matmul_t params_0 = {.m = 5, .n = 7, .k = 6, .transpose_lhs = 1, "
        ".transpose_rhs = 1, .batch_rank = 2, .batch_shape = {3, 2, 1, 1}, "
        ".lhs_batch_strides = {30, 0, 0, 0}, .rhs_batch_strides = {0, 42, 0, 0}};"
    )]


def test_emit_rejects_other_element_types():
    with pytest.raises(EmitError, match="kernel.linear: .*float32"):
        emit_kernel(kernel.LinearKernelOp, [l2_buffer(5, 8, element=f64), l2_buffer(4, 8, element=f64)],
              [l2_buffer(5, 4, element=f64)])
    with pytest.raises(EmitError, match="kernel.matmul: .*float32"):
        emit_kernel(kernel.MatmulKernelOp, [l2_buffer(2, 2, element=f64), l2_buffer(2, 2)],
              [l2_buffer(2, 2)])


def test_emit_rejects_more_than_four_batch_axes():
    shape = (1, 1, 1, 1, 1, 2, 2)
    with pytest.raises(EmitError, match="kernel.matmul: 5 batch axes"):
        emit_kernel(kernel.MatmulKernelOp, [l2_buffer(*shape), l2_buffer(*shape)], [l2_buffer(*shape)])


# --------------------------------------------------------------------------------------
# The target
# --------------------------------------------------------------------------------------


def test_builds_for_riscv_without_library_calls():
    assert riscv_calls("edge_kernels_linalg.c") <= {
        "edge_barrier", "edge_core_id", "edge_num_cores"
    }
