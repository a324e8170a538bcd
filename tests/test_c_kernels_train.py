"""The train C kernels (losses, their gradients, optimizer updates) against the
interpreter's numerics, in float32, with the parameters their emitters write; in-place
runs where the kernel ops allow them; bitwise equal results on 1 to 8 cores; the
emitters; the RISC-V build."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from c_checks import CORE_COUNTS, emit_kernel, l2_buffer, on_cores, riscv_calls
from c_runtime import c_struct, pointer, runtime
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import (
    FloatAttr,
    StringAttr,
    UnitAttr,
    f32,
    f64,
    i32,
    i64,
)

from edge_opt.backends.c.emitter import (
    EmitError,
    c_literal,
)
from edge_opt.backends.c.kernels import train
from edge_opt.dialects import kernel
from edge_opt.support import train_numerics as tn

SETTINGS = settings(max_examples=40)


def _struct(name: str, fields: list[tuple[str, type]]) -> type[ctypes.Structure]:
    return type(name, (ctypes.Structure,), {"_fields_": fields})


I, F = ctypes.c_int32, ctypes.c_float
CrossEntropy = _struct("CrossEntropy", [("rows", I), ("classes", I), ("mean", I)])
Mse = _struct("Mse", [("count", I), ("mean", I)])
Sgd = _struct("Sgd", [("count", I), ("lr", F), ("weight_decay", F)])
SgdMomentum = _struct("SgdMomentum", [("count", I), ("nesterov", I), ("lr", F),
                                      ("momentum", F), ("weight_decay", F)])
Adam = _struct("Adam", [("count", I), ("lr", F), ("beta1", F), ("beta2", F),
                        ("one_minus_beta1", F), ("one_minus_beta2", F), ("log_beta1", F),
                        ("log_beta2", F), ("epsilon", F), ("weight_decay", F)])


def _random(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    return np.asarray(rng.standard_normal(shape) * scale, np.float32)


def _f64(*arrays: np.ndarray) -> list[np.ndarray]:
    return [a.astype(np.float64) for a in arrays]


# --------------------------------------------------------------------------------------
# The kernel calls, as the emitters write them
# --------------------------------------------------------------------------------------


def run_cross_entropy(logits, labels, out, reduction: str, cores: int = 1) -> None:
    """The loss (into a rank-0 `out`) or its gradient (into an `out` like `logits`)."""
    grad = out.shape == logits.shape
    params = CrossEntropy(**train.cross_entropy_params(logits.shape, reduction))
    name = "edge_cross_entropy_grad_f32" if grad else "edge_cross_entropy_f32"
    on_cores(cores, getattr(runtime(), name), ctypes.byref(params), pointer(logits),
             pointer(labels), pointer(out))


def run_mse(prediction, target, out, reduction: str, grad: bool, cores: int = 1) -> None:
    params = Mse(**train.mse_params(prediction.shape, reduction))
    name = "edge_mse_grad_f32" if grad else "edge_mse_f32"
    on_cores(cores, getattr(runtime(), name), ctypes.byref(params), pointer(prediction),
             pointer(target), pointer(out))


def run_sgd(param, grad, new_param, lr, weight_decay, cores: int = 1) -> None:
    params = Sgd(**train.sgd_params(param.size, lr, weight_decay))
    on_cores(cores, runtime().edge_sgd_f32, ctypes.byref(params), pointer(param),
             pointer(grad), pointer(new_param))


def run_sgd_momentum(param, grad, buffer, new_param, new_buffer, lr, momentum,
                     weight_decay, nesterov, cores: int = 1) -> None:
    params = SgdMomentum(**train.sgd_momentum_params(param.size, lr, momentum,
                                                     weight_decay, nesterov))
    on_cores(cores, runtime().edge_sgd_momentum_f32, ctypes.byref(params),
             pointer(param), pointer(grad), pointer(buffer), pointer(new_param),
             pointer(new_buffer))


def run_adam(param, grad, m, v, step, new_param, new_m, new_v, hyper: dict,
             cores: int = 1) -> None:
    params = Adam(**train.adam_params(param.size, **hyper))
    on_cores(cores, runtime().edge_adam_f32, ctypes.byref(params), pointer(param),
             pointer(grad), pointer(m), pointer(v), pointer(step), pointer(new_param),
             pointer(new_m), pointer(new_v))


# --------------------------------------------------------------------------------------
# Losses against the numerics
# --------------------------------------------------------------------------------------

reductions = st.sampled_from(["mean", "sum"])


def _logits(seed: int, rows: int, classes: int):
    rng = np.random.default_rng(seed)
    logits = _random(rng, (rows, classes), float(rng.choice([0.1, 3.0, 30.0])))
    labels = rng.integers(0, classes, rows).astype(np.int32)
    return logits, labels


@SETTINGS
@given(rows=st.integers(1, 12), classes=st.integers(1, 40), reduction=reductions,
       seed=st.integers(0, 2**32 - 1))
def test_cross_entropy(rows, classes, reduction, seed):
    logits, labels = _logits(seed, rows, classes)
    loss = np.full((), np.nan, np.float32)
    run_cross_entropy(logits, labels, loss, reduction)
    expected = tn.cross_entropy(logits.astype(np.float64), labels, reduction)
    # each row's term is a difference of terms as large as the row's largest logit
    scale = np.sum(np.max(np.abs(logits), axis=1) + np.log(classes) + 1)
    scale /= rows if reduction == "mean" else 1
    assert abs(float(loss) - float(expected)) <= 2e-6 * scale


@SETTINGS
@given(rows=st.integers(1, 12), classes=st.integers(1, 40), reduction=reductions,
       seed=st.integers(0, 2**32 - 1))
def test_cross_entropy_grad(rows, classes, reduction, seed):
    logits, labels = _logits(seed, rows, classes)
    grad = np.full(logits.shape, np.nan, np.float32)
    run_cross_entropy(logits, labels, grad, reduction)
    expected = tn.cross_entropy_grad(logits.astype(np.float64), labels, reduction)
    scale = 1 / rows if reduction == "mean" else 1
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6 * scale)


def test_cross_entropy_labels_out_of_range_give_nan():
    logits = np.zeros((2, 3), np.float32)
    labels = np.array([1, 3], np.int32)
    loss, grad = np.zeros((), np.float32), np.zeros((2, 3), np.float32)
    run_cross_entropy(logits, labels, loss, "mean")
    run_cross_entropy(logits, labels, grad, "mean")
    assert np.isnan(loss)
    assert not np.any(np.isnan(grad[0])) and np.all(np.isnan(grad[1]))


Error = c_struct("edge_error_t")


def test_cross_entropy_records_the_first_bad_label():
    """What the generated main.c reports: the row, the value and the class count."""
    library = runtime()
    library.edge_last_error.restype = Error
    library.edge_clear_error()
    logits = np.zeros((3, 4), np.float32)
    loss = np.zeros((), np.float32)
    run_cross_entropy(logits, np.array([0, 1, 2], np.int32), loss, "sum")
    assert library.edge_last_error().code == 0
    run_cross_entropy(logits, np.array([0, -7, 9], np.int32), loss, "sum")
    error = library.edge_last_error()
    assert (error.code, error.index, error.value, error.limit) == (1, 1, -7, 4)
    library.edge_clear_error()
    assert library.edge_last_error().code == 0


@SETTINGS
@given(shape=st.lists(st.integers(1, 9), min_size=0, max_size=3), reduction=reductions,
       seed=st.integers(0, 2**32 - 1))
def test_mse(shape, reduction, seed):
    rng = np.random.default_rng(seed)
    prediction, target = _random(rng, shape), _random(rng, shape)
    loss = np.full((), np.nan, np.float32)
    run_mse(prediction, target, loss, reduction, grad=False)
    expected = tn.mse(*_f64(prediction, target), reduction)
    np.testing.assert_allclose(loss, expected, rtol=2e-6)


def test_mse_long_sum():
    """A sum of 100 000 squares stays within a few ulp (blocked summation)."""
    rng = np.random.default_rng(1)
    prediction, target = _random(rng, 100_000), _random(rng, 100_000)
    loss = np.zeros((), np.float32)
    run_mse(prediction, target, loss, "mean", grad=False)
    np.testing.assert_allclose(loss, tn.mse(*_f64(prediction, target), "mean"), rtol=1e-6)


@SETTINGS
@given(shape=st.lists(st.integers(1, 9), min_size=0, max_size=3), reduction=reductions,
       inplace=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_mse_grad(shape, reduction, inplace, seed):
    rng = np.random.default_rng(seed)
    prediction, target = _random(rng, shape), _random(rng, shape)
    expected = tn.mse_grad(*_f64(prediction, target), reduction)
    grad = prediction if inplace else np.full(prediction.shape, np.nan, np.float32)
    run_mse(prediction, target, grad, reduction, grad=True)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-12)


# --------------------------------------------------------------------------------------
# Optimizers against the numerics, in place or not
# --------------------------------------------------------------------------------------

counts = st.integers(1, 200)
rates = st.floats(1e-4, 1.0)
decays = st.sampled_from([0.0, 1e-4, 0.01, 0.5])


def _update_close(actual, expected, previous) -> None:
    """Within a few ulp of the larger of the old and new values."""
    scale = np.maximum(np.abs(previous), np.abs(expected))
    np.testing.assert_array_less(np.abs(actual - expected), 4e-7 * scale + 1e-30)


@SETTINGS
@given(n=counts, lr=rates, weight_decay=decays, inplace=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_sgd(n, lr, weight_decay, inplace, seed):
    rng = np.random.default_rng(seed)
    param, grad = _random(rng, n), _random(rng, n)
    expected = tn.sgd(*_f64(param, grad), lr, weight_decay)
    previous = param.copy()
    new_param = param if inplace else np.full_like(param, np.nan)
    run_sgd(param, grad, new_param, lr, weight_decay)
    _update_close(new_param, expected, previous)


@SETTINGS
@given(n=counts, lr=rates, momentum=st.floats(0.0, 0.99), weight_decay=decays,
       nesterov=st.booleans(), inplace=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_sgd_momentum(n, lr, momentum, weight_decay, nesterov, inplace, seed):
    rng = np.random.default_rng(seed)
    param, grad, buffer = _random(rng, n), _random(rng, n), _random(rng, n)
    expected_param, expected_buffer = tn.sgd_momentum(
        *_f64(param, grad, buffer), lr, momentum, weight_decay, nesterov)
    previous_param, previous_buffer = param.copy(), buffer.copy()
    if inplace:
        new_param, new_buffer = param, buffer
    else:
        new_param, new_buffer = np.full_like(param, np.nan), np.full_like(param, np.nan)
    run_sgd_momentum(param, grad, buffer, new_param, new_buffer, lr, momentum,
                     weight_decay, nesterov)
    _update_close(new_buffer, expected_buffer, np.abs(previous_buffer) + np.abs(grad) + 1)
    _update_close(new_param, expected_param, np.abs(previous_param) + lr * (
        np.abs(previous_buffer) + np.abs(grad) + 1))


@SETTINGS
@given(n=counts, lr=rates, beta1=st.sampled_from([0.0, 0.5, 0.9, 0.99]),
       beta2=st.sampled_from([0.9, 0.99, 0.999, 0.9999]),
       epsilon=st.sampled_from([1e-8, 1e-6, 1e-3]), weight_decay=decays,
       step=st.one_of(st.integers(1, 5), st.integers(6, 100_000)),
       inplace=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_adam(n, lr, beta1, beta2, epsilon, weight_decay, step, inplace, seed):
    rng = np.random.default_rng(seed)
    param, grad = _random(rng, n), _random(rng, n, 0.1)
    m = _random(rng, n, 0.1)
    v = np.asarray(np.abs(_random(rng, n, 0.01)) ** 2, np.float32)
    t = np.array(step, np.float32)
    hyper = {"lr": lr, "beta1": beta1, "beta2": beta2, "epsilon": epsilon,
             "weight_decay": weight_decay}
    expected = tn.adam(*_f64(param, grad, m, v), t.astype(np.float64), **hyper)
    previous, previous_m, previous_v = param.copy(), m.copy(), v.copy()
    outputs = (param, m, v) if inplace else tuple(np.full_like(param, np.nan) for _ in range(3))
    run_adam(param, grad, m, v, t, *outputs, hyper)
    new_param, new_m, new_v = outputs
    bounds = _adam_bounds(previous, grad, previous_m, previous_v, step, expected, **hyper)
    for actual, reference, bound in zip((new_param, new_m, new_v), expected, bounds):
        np.testing.assert_array_less(np.abs(actual - reference), bound + 1e-30)


EPS = float(np.finfo(np.float32).eps)


def _adam_bounds(param, grad, m, v, t, expected, lr, beta1, beta2, epsilon, weight_decay):
    """Error bounds of a float32 evaluation of Adam: each intermediate within a few
    roundings of the magnitudes of its terms, propagated to the new parameter."""
    param, grad, m, v = _f64(param, grad, m, v)
    new_param, new_m, new_v = expected
    g = np.abs(grad) + weight_decay * np.abs(param)
    dm = 4 * EPS * (beta1 * np.abs(m) + (1 - beta1) * g)
    dv = 4 * EPS * (beta2 * v + (1 - beta2) * g * g)
    step_size, root_c2 = lr / (1 - beta1**t), np.sqrt(1 - beta2**t)
    denominator = np.sqrt(new_v) / root_c2 + epsilon
    d_root = np.sqrt(new_v + dv) - np.sqrt(np.maximum(new_v - dv, 0))
    d_denominator = d_root / root_c2 + 4 * EPS * denominator
    update = step_size * np.abs(new_m) / denominator
    d_update = (step_size * dm / denominator + 4 * EPS * update
                + update * d_denominator / (denominator - d_denominator))
    return (d_update + 2 * EPS * np.maximum(np.abs(param), np.abs(new_param)), dm, dv)


def test_adam_bias_correction_keeps_its_digits_near_one():
    """beta2^t close to 1 (t = 1, beta2 = 0.9999): 1 - beta2^t in float must not cancel."""
    param, grad = np.ones(4, np.float32), np.full(4, 1e-3, np.float32)
    m, v = np.zeros(4, np.float32), np.zeros(4, np.float32)
    hyper = {"lr": 0.1, "beta1": 0.9, "beta2": 0.9999, "epsilon": 0.0, "weight_decay": 0.0}
    run_adam(param, grad, m, v, np.array(1.0, np.float32), param, m, v, hyper)
    # first step without epsilon: exactly lr * sign(grad)
    np.testing.assert_allclose(param, 1.0 - 0.1, rtol=1e-6)


# --------------------------------------------------------------------------------------
# Bitwise independent of the number of cores
# --------------------------------------------------------------------------------------


def _ce(reduction: str, grad: bool):
    def case(rng):
        logits, labels = _logits(3, 5, 7)
        out = np.zeros((5, 7) if grad else (), np.float32)
        return (out,), lambda cores: run_cross_entropy(logits, labels, out, reduction, cores)

    case.__name__ = f"cross_entropy{'_grad' if grad else ''}_{reduction}"
    return case


def _mse(grad: bool):
    def case(rng):
        prediction, target = _random(rng, (3, 11)), _random(rng, (3, 11))
        out = np.zeros((3, 11) if grad else (), np.float32)
        return (out,), lambda cores: run_mse(prediction, target, out, "mean", grad, cores)

    case.__name__ = f"mse{'_grad' if grad else ''}"
    return case


def _sgd(rng):
    param, grad = _random(rng, 37), _random(rng, 37)
    out = np.zeros(37, np.float32)
    return (out,), lambda cores: run_sgd(param, grad, out, 0.1, 0.01, cores)


def _sgd_momentum(rng):
    param, grad, buffer = _random(rng, 37), _random(rng, 37), _random(rng, 37)
    outs = np.zeros(37, np.float32), np.zeros(37, np.float32)
    return outs, lambda cores: run_sgd_momentum(param, grad, buffer, *outs, 0.1, 0.9,
                                                0.01, True, cores)


def _adam(rng):
    param, grad, m = _random(rng, 37), _random(rng, 37), _random(rng, 37)
    v = np.abs(_random(rng, 37))
    outs = tuple(np.zeros(37, np.float32) for _ in range(3))
    hyper = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.01}
    step = np.array(3.0, np.float32)
    return outs, lambda cores: run_adam(param, grad, m, v, step, *outs, hyper, cores)


@pytest.mark.parametrize(
    "case",
    [_ce("mean", False), _ce("sum", True), _ce("mean", True), _mse(False), _mse(True), _sgd,
     _sgd_momentum, _adam],
    ids=lambda f: f.__name__.strip("_"),
)
def test_results_do_not_depend_on_the_core_count(case):
    outs, run = case(np.random.default_rng(11))
    results = []
    for cores in CORE_COUNTS:
        for out in outs:
            out[...] = np.nan
        run(cores)
        results.append(b"".join(out.tobytes() for out in outs))
        assert not any(np.any(np.isnan(out)) for out in outs), f"{cores} cores"
    for cores, result in zip(CORE_COUNTS, results):
        assert result == results[0], f"{cores} cores differ"


# --------------------------------------------------------------------------------------
# Emitters
# --------------------------------------------------------------------------------------




def _f(value: float) -> FloatAttr:
    return FloatAttr(value, f32)


def test_emit_losses():
    ctx = emit_kernel(kernel.CrossEntropyKernelOp, [l2_buffer(4, 10), l2_buffer(4, element=i32)],
                [l2_buffer()], reduction=StringAttr("sum"))
    assert ctx.statements == ["  edge_cross_entropy_f32(&params_0, b0, b1, b2);"]
    assert ctx.declarations == [
        "  static const edge_cross_entropy_t params_0 = {.rows = 4, .classes = 10, .mean = 0};"
    ]
    ctx = emit_kernel(kernel.CrossEntropyGradKernelOp, [l2_buffer(4, 10), l2_buffer(4, element=i32)],
                [l2_buffer(4, 10)], reduction=StringAttr("mean"))
    assert ctx.statements == ["  edge_cross_entropy_grad_f32(&params_0, b0, b1, b2);"]
    assert ".mean = 1" in ctx.declarations[0]
    ctx = emit_kernel(kernel.MseKernelOp, [l2_buffer(2, 3), l2_buffer(2, 3)], [l2_buffer()],
                reduction=StringAttr("mean"))
    assert ctx.statements == ["  edge_mse_f32(&params_0, b0, b1, b2);"]
    assert ctx.declarations == ["  static const edge_mse_t params_0 = {.count = 6, .mean = 1};"]
    ctx = emit_kernel(kernel.MseGradKernelOp, [l2_buffer(2, 3), l2_buffer(2, 3)], [l2_buffer(2, 3)],
                reduction=StringAttr("sum"))
    assert ctx.statements == ["  edge_mse_grad_f32(&params_0, b0, b1, b2);"]


def test_emit_optimizers():
    ctx = emit_kernel(kernel.SgdKernelOp, [l2_buffer(8), l2_buffer(8)], [l2_buffer(8)],
                lr=_f(0.5), weight_decay=_f(0.0))
    assert ctx.statements == ["  edge_sgd_f32(&params_0, b0, b1, b2);"]
    # the rate and decay are runtime state (edge_set_lr): the struct is built per call
    assert ctx.declarations == [
        "  const edge_sgd_t params_0 = {.count = 8, .lr = edge_hyperparameters.lr, "
        ".weight_decay = edge_hyperparameters.weight_decay};"
    ]
    ctx = emit_kernel(kernel.SgdMomentumKernelOp, [l2_buffer(8)] * 3, [l2_buffer(8)] * 2,
                lr=_f(0.5), momentum=_f(0.9), weight_decay=_f(0.0), nesterov=UnitAttr())
    assert ctx.statements == ["  edge_sgd_momentum_f32(&params_0, b0, b1, b2, b3, b4);"]
    assert ".nesterov = 1" in ctx.declarations[0]
    assert ".momentum = edge_hyperparameters.momentum" in ctx.declarations[0]
    ctx = emit_kernel(kernel.AdamKernelOp, [l2_buffer(8)] * 4 + [l2_buffer()], [l2_buffer(8)] * 3,
                lr=_f(1e-3), beta1=_f(0.0), beta2=_f(0.999), epsilon=_f(1e-8),
                weight_decay=_f(0.0))
    assert ctx.statements == ["  edge_adam_f32(&params_0, b0, b1, b2, b3, b4, b5, b6, b7);"]
    assert ".log_beta1 = -__builtin_inff()" in ctx.declarations[0]
    # the interpreter's beta2 is the f32 property's value: so is the kernel's
    one_minus_beta2 = c_literal(1 - float(np.float32(0.999)), "float")
    assert f".one_minus_beta2 = {one_minus_beta2}" in ctx.declarations[0]


def test_emit_rejects_other_element_types():
    with pytest.raises(EmitError, match="kernel.cross_entropy: .*int32 labels"):
        emit_kernel(kernel.CrossEntropyKernelOp, [l2_buffer(4, 10), l2_buffer(4, element=i64)],
              [l2_buffer()], reduction=StringAttr("sum"))
    with pytest.raises(EmitError, match="kernel.sgd: .*float32"):
        emit_kernel(kernel.SgdKernelOp, [l2_buffer(8, element=f64)] * 2, [l2_buffer(8, element=f64)],
              lr=_f(0.5), weight_decay=_f(0.0))


def test_emit_adam_rejects_a_beta_outside_the_unit_interval():
    with pytest.raises(EmitError, match="kernel.adam: beta2 = 1.0"):
        emit_kernel(kernel.AdamKernelOp, [l2_buffer(8)] * 4 + [l2_buffer()], [l2_buffer(8)] * 3,
              lr=_f(1e-3), beta1=_f(0.9), beta2=_f(1.0), epsilon=_f(1e-8),
              weight_decay=_f(0.0))


# --------------------------------------------------------------------------------------
# The target
# --------------------------------------------------------------------------------------


def test_builds_for_riscv_without_library_calls():
    # the platform's team calls and its error record (a bad class label); the fused
    # weight updates call the runtime's own grad-weight kernels on row chunks
    assert riscv_calls("edge_kernels_train.c") <= {
        "edge_barrier", "edge_core_id", "edge_num_cores", "edge_record_error",
        "edge_conv2d_grad_weight_f32", "edge_linear_grad_weight_rows_f32",
    }
