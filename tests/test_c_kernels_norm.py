"""The softmax and normalisation C kernels against the interpreter's numerics (float32).

Three layers: each runtime kernel on random shapes, axes and modes against
`ir/numerics.py` / `ir/train_numerics.py` (float64 reference, tolerance relative to the
output's scale); the same kernels on teams of 1, 2, 3 and 8 threads, bitwise equal; and
the emitters: the C they print for a kernel op, compiled and run, against the kernel
op's interpreter semantics. The file also compiles for RV32 + CORE-V and checks that
the code calls nothing but the platform (no libgcc 64-bit division, no libm).
"""

from __future__ import annotations

import ctypes
import math
import subprocess

import numpy as np
import pytest
from c_checks import CORE_COUNTS, emit_op, l2_buffer, on_cores, riscv_calls
from c_runtime import CFLAGS, RUNTIME, c_struct, pointer, runtime
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import (
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    UnitAttr,
    f32,
    f64,
    i64,
)

from edge_opt.backends.c.emitter import (
    EmitError,
)
from edge_opt.backends.c.kernels.norm import (
    channel_params,
    layer_norm_params,
    softmax_params,
)
from edge_opt.dialects import kernel
from edge_opt.ir.interpreters import make_interpreter
from edge_opt.support import numerics
from edge_opt.support import train_numerics as tn

SETTINGS = settings(max_examples=100)


Softmax = c_struct("edge_softmax_t")


LayerNorm = c_struct("edge_layer_norm_t")


BatchNorm = c_struct("edge_batch_norm_t")


GroupNorm = c_struct("edge_group_norm_t")


# --------------------------------------------------------------------------------------
# Cases: a kernel, its parameters, inputs and float64 reference
# --------------------------------------------------------------------------------------

SOFTMAX = ("softmax", "log_softmax", "softmax_grad", "log_softmax_grad")
LAYER_NORM = ("layer_norm", "layer_norm_grad_input", "layer_norm_grad_scale")
BATCH_NORM = ("batch_norm", "batch_norm_grad_input", "batch_norm_grad_scale")
GROUP_NORM = ("group_norm", "group_norm_grad_input", "group_norm_grad_scale")
KERNELS = SOFTMAX + LAYER_NORM + BATCH_NORM + GROUP_NORM
EPSILONS = (1e-5, 1e-3, 0.1)


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


def _spread(x: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Sets two elements of every normalized block to -1.5 and 1.5, so no block has a
    near-zero variance (where float32 statistics are ill-conditioned: the numerics in
    float32 would disagree with float64 as much). `blocks` is a (blocks, size) view."""
    if blocks.shape[1] >= 2:
        blocks[:, 0], blocks[:, 1] = -1.5, 1.5
    return x


def _norm_operands(name: str, family: str, x: np.ndarray, affine: tuple[int, ...],
                   stats: list[np.ndarray], normal, args: tuple):
    """The operands, reference and result shape of a normalization kernel: the forward
    takes (x, scale, bias, *stats), grad_input (dy, x, scale, *stats), grad_scale (dy,
    x, *stats); the numerics take `args` after them."""
    if name == family:
        operands = [x, normal(affine), normal(affine), *stats]
        return operands, lambda *a: getattr(numerics, family)(*a, *args), x.shape
    if name == f"{family}_grad_input":
        operands = [normal(x.shape), x, normal(affine), *stats]
        return operands, lambda *a: getattr(tn, name)(*a, *args), x.shape
    return [normal(x.shape), x, *stats], lambda *a: getattr(tn, name)(*a, *args), affine


def make_case(name: str, shape: tuple[int, ...], prop: int, training: bool,
              epsilon: float, seed: int):
    """(params struct, input arrays, output shape, float64 reference of the output).

    `prop` is the softmax/layer-norm axis (normalized) or the group count."""
    rng = np.random.default_rng(seed)
    normal = lambda s: _f32(rng.standard_normal(s))
    out_shape = shape
    if name in SOFTMAX:
        params = Softmax(**softmax_params(shape, prop))
        x = _f32(rng.uniform(-50, 50, shape))
        if name == "softmax":
            inputs, reference = [x], lambda a: numerics.softmax(a, prop)
        elif name == "log_softmax":
            inputs, reference = [x], lambda a: numerics.log_softmax(a, prop)
        elif name == "softmax_grad":
            y = _f32(numerics.softmax(x.astype(np.float64), prop))
            inputs = [normal(shape), y]
            reference = lambda dy, y: tn.softmax_grad(dy, y, prop)
        else:
            y = _f32(numerics.log_softmax(x.astype(np.float64), prop))
            inputs = [normal(shape), y]
            reference = lambda dy, y: tn.log_softmax_grad(dy, y, prop)
    elif name in LAYER_NORM:
        params = LayerNorm(**layer_norm_params(shape, prop, epsilon))
        x = normal(shape)
        _spread(x, x.reshape(params.rows, params.size))
        inputs, reference, out_shape = _norm_operands(
            name, "layer_norm", x, shape[prop:], [], normal, (prop, epsilon))
    elif name in BATCH_NORM:
        dims = channel_params(shape)
        params = BatchNorm(**dims, epsilon=epsilon, training=int(training))
        channels = (shape[1],)
        x = normal(shape)
        by_channel = np.moveaxis(x, 1, 0).reshape(shape[1], -1).copy()
        x = _f32(np.moveaxis(_spread(by_channel, by_channel).reshape(
            (shape[1], shape[0], *shape[2:])), 0, 1))
        mean, var = normal(channels), _f32(rng.uniform(0.1, 2.0, channels))
        inputs, reference, out_shape = _norm_operands(
            name, "batch_norm", x, channels, [mean, var], normal, (epsilon, training))
    else:
        dims = channel_params(shape)
        params = GroupNorm(groups=prop, epsilon=epsilon, **dims)
        channels = (shape[1],)
        x = normal(shape)
        _spread(x, x.reshape(shape[0] * prop, -1))
        inputs, reference, out_shape = _norm_operands(
            name, "group_norm", x, channels, [], normal, (prop, epsilon))
    expected = reference(*(a.astype(np.float64) for a in inputs))
    return params, inputs, tuple(out_shape), expected


@st.composite
def cases(draw, names=KERNELS):
    """A kernel name and a valid (shape, axis or groups, training, epsilon, seed)."""
    name = draw(st.sampled_from(names))
    low = 2 if name in BATCH_NORM + GROUP_NORM else 1
    rank = draw(st.integers(low, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))
    if name in GROUP_NORM:
        channels = draw(st.sampled_from([1, 2, 3, 4, 6, 8]))
        shape = (shape[0], channels, *shape[2:])
        prop = draw(st.sampled_from([g for g in range(1, channels + 1) if not channels % g]))
    elif name in BATCH_NORM:
        prop = 0
    else:
        prop = draw(st.integers(0, rank - 1))
    return (name, shape, prop, draw(st.booleans()), draw(st.sampled_from(EPSILONS)),
            draw(st.integers(0, 2**32 - 1)))


GUARD = 16


def run(name: str, params, inputs: list[np.ndarray], out_shape: tuple[int, ...],
        inplace: bool = False, cores: int = 1) -> np.ndarray:
    """Calls `edge_<name>_f32` on a team of `cores` (output over input 0 if `inplace`);
    the output sits between guard elements that must stay untouched."""
    size = math.prod(out_shape)
    buffer = np.full(size + 2 * GUARD, 12345.0, np.float32)
    out = buffer[GUARD : GUARD + size].reshape(out_shape)
    if inplace:
        out[...] = inputs[0]
        inputs = [out, *inputs[1:]]
    on_cores(cores, getattr(runtime(), f"edge_{name}_f32"), ctypes.byref(params),
             *(pointer(a) for a in inputs), pointer(out))
    assert np.all(buffer[:GUARD] == 12345.0) and np.all(buffer[-GUARD:] == 12345.0), (
        "the kernel wrote outside its output"
    )
    return out.copy()


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    """Within 1e-5 of the output's scale (at least 1: the inputs are O(1))."""
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * scale)


# --------------------------------------------------------------------------------------
# The kernels against the numerics
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["softmax", "layer_norm", "batch_norm", "group_norm"])
@SETTINGS
@given(data=st.data())
def test_kernels(family: str, data):
    names = {"softmax": SOFTMAX, "layer_norm": LAYER_NORM, "batch_norm": BATCH_NORM,
             "group_norm": GROUP_NORM}[family]
    case = data.draw(cases(names))
    name = case[0]
    params, inputs, out_shape, expected = make_case(*case)
    inplace = name == "batch_norm" and data.draw(st.booleans(), label="inplace")
    _close(run(name, params, inputs, out_shape, inplace), expected)


def test_softmax_needs_the_max():
    """exp(±50) over- and underflows nothing: the max is subtracted first."""
    x = _f32([[50.0, 49.0, -50.0, 50.0], [-50.0, -49.5, -50.0, -50.0]])
    params = Softmax(**softmax_params(x.shape, 1))
    y = run("softmax", params, [x], x.shape)
    _close(y, numerics.softmax(x.astype(np.float64), 1))
    log = run("log_softmax", params, [x], x.shape)
    _close(log, numerics.log_softmax(x.astype(np.float64), 1))


def test_layer_norm_row_of_one():
    """A one-element row normalizes to 0 (variance 0, so only epsilon is left)."""
    x = _f32([[3.0], [-7.0]])
    out = run("layer_norm", LayerNorm(2, 1, 1e-5), [x, _f32([2.0]), _f32([0.5])], x.shape)
    np.testing.assert_array_equal(out, _f32([[0.5], [0.5]]))


# --------------------------------------------------------------------------------------
# Teams of 1, 2, 3 and 8 threads: bitwise equal
# --------------------------------------------------------------------------------------


@SETTINGS
@given(case=cases(), inplace=st.booleans())
def test_teams_are_bitwise_equal(case, inplace: bool):
    name = case[0]
    params, inputs, out_shape, expected = make_case(*case)
    inplace = inplace and name == "batch_norm"
    first, *others = [run(name, params, inputs, out_shape, inplace, cores)
                      for cores in CORE_COUNTS]
    _close(first, expected)
    for other in others:
        np.testing.assert_array_equal(other.view(np.uint32), first.view(np.uint32))


# --------------------------------------------------------------------------------------
# The emitters: printed C, compiled and run, against the kernel op's interpreter
# --------------------------------------------------------------------------------------



def _props(**values) -> dict:
    props = {}
    for key, value in values.items():
        if key == "training":
            if value:
                props[key] = UnitAttr()
        elif isinstance(value, float):
            props[key] = FloatAttr(value, f32)
        else:
            props[key] = IntegerAttr(value, i64)
    return props


def kernel_op(op_type, input_shapes, output_shape, inplace=False, element=f32, **props):
    """`op_type ins(args...) outs(arg)` in a function of its buffers (the output is the
    first input's buffer when `inplace`)."""
    types = [l2_buffer(*s, element=element) for s in input_shapes]
    if not inplace:
        types.append(l2_buffer(*output_shape, element=element))
    function = func.FuncOp("case", (types, []))
    args = list(function.body.block.args)
    outputs = [args[0]] if inplace else [args[-1]]
    op = op_type(args[: len(input_shapes)], outputs, _props(**props))
    function.body.block.add_ops([op, func.ReturnOp()])
    return function, op


EMITTED = [
    (kernel.SoftmaxKernelOp, [(2, 3, 4)], (2, 3, 4), {"axis": 1}),
    (kernel.LogSoftmaxKernelOp, [(5, 3)], (5, 3), {"axis": 0}),
    (kernel.SoftmaxGradKernelOp, [(3, 7), (3, 7)], (3, 7), {"axis": -1}),
    (kernel.LogSoftmaxGradKernelOp, [(2, 4, 3)] * 2, (2, 4, 3), {"axis": 1}),
    (kernel.LayerNormKernelOp, [(2, 3, 4), (3, 4), (3, 4)], (2, 3, 4),
     {"axis": 1, "epsilon": 1e-3}),
    (kernel.LayerNormGradInputKernelOp, [(4, 5), (4, 5), (5,)], (4, 5), {"axis": -1}),
    (kernel.LayerNormGradScaleKernelOp, [(3, 2, 5)] * 2, (2, 5), {"axis": 1}),
    (kernel.BatchNormKernelOp, [(2, 3, 4, 4), (3,), (3,), (3,), (3,)], (2, 3, 4, 4), {}),
    (kernel.BatchNormKernelOp, [(5, 3), (3,), (3,), (3,), (3,)], (5, 3),
     {"training": True}),
    (kernel.BatchNormGradInputKernelOp, [(2, 3, 5), (2, 3, 5), (3,), (3,), (3,)],
     (2, 3, 5), {}),
    (kernel.BatchNormGradInputKernelOp, [(2, 3, 2, 3), (2, 3, 2, 3), (3,), (3,), (3,)],
     (2, 3, 2, 3), {"training": True, "epsilon": 1e-2}),
    (kernel.BatchNormGradScaleKernelOp, [(4, 2, 3), (4, 2, 3), (2,), (2,)], (2,), {}),
    (kernel.BatchNormGradScaleKernelOp, [(4, 2, 3), (4, 2, 3), (2,), (2,)], (2,),
     {"training": True}),
    (kernel.GroupNormKernelOp, [(2, 6, 3), (6,), (6,)], (2, 6, 3), {"groups": 3}),
    (kernel.GroupNormGradInputKernelOp, [(2, 4, 2, 2), (2, 4, 2, 2), (4,)], (2, 4, 2, 2),
     {"groups": 2}),
    (kernel.GroupNormGradScaleKernelOp, [(3, 6, 5), (3, 6, 5)], (6,), {"groups": 3}),
]
"""(op, input shapes, output shape, properties): one or two per kernel and mode."""
EMITTED_INPLACE = [
    (kernel.BatchNormKernelOp, [(2, 3, 4, 4), (3,), (3,), (3,), (3,)], (2, 3, 4, 4),
     {"training": True}),
    (kernel.BatchNormKernelOp, [(3, 2, 5), (2,), (2,), (2,), (2,)], (3, 2, 5), {}),
]


BATCH_NORM_OPS = (kernel.BatchNormKernelOp, kernel.BatchNormGradInputKernelOp,
                  kernel.BatchNormGradScaleKernelOp)


def emit(function: func.FuncOp, op) -> tuple[list[str], list[str]]:
    """The declarations and statements the op's emitter prints, its buffers named
    `b0`, `b1`, ..."""
    context = emit_op(op, function.body.block.args, function)
    return context.declarations, context.statements


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    """Every EMITTED case as `void case_<i>(float **b)`, compiled against the runtime."""
    cases = [(*c, False) for c in EMITTED] + [(*c, True) for c in EMITTED_INPLACE]
    lines = ['#include "edge_runtime.h"']
    ops = []
    for i, (op_type, ins, out, props, inplace) in enumerate(cases):
        function, op = kernel_op(op_type, ins, out, inplace, **props)
        op.verify()
        declarations, statements = emit(function, op)
        buffers = len(function.body.block.args)
        lines.append(f"void case_{i}(float **b) {{")
        lines += [f"  float *b{j} = b[{j}];" for j in range(buffers)]
        lines += declarations + statements + ["}"]
        ops.append((op, inplace))
    build = tmp_path_factory.mktemp("norm_emit")
    source = build / "cases.c"
    source.write_text("\n".join(lines) + "\n")
    library = build / "libcases.so"
    subprocess.run(
        ["gcc", *CFLAGS, f"-I{RUNTIME}", str(source), runtime()._name, "-o", str(library)],
        check=True, capture_output=True, text=True,
    )
    return ctypes.CDLL(str(library)), ops


@pytest.mark.parametrize("index", range(len(EMITTED) + len(EMITTED_INPLACE)))
def test_emitted_c_matches_the_interpreter(emitted, index: int):
    library, ops = emitted
    op, inplace = ops[index]
    rng = np.random.default_rng(index)
    inputs = [_f32(rng.standard_normal(tuple(v.type.get_shape()))) for v in op.inputs]
    if isinstance(op, BATCH_NORM_OPS):  # the variance (the last input) is positive
        inputs[-1] = np.abs(inputs[-1]) + np.float32(0.1)
    expected_out = np.full(tuple(op.outputs[0].type.get_shape()), np.nan, np.float32)
    make_interpreter(ModuleOp([])).run_op(op, (*[a.copy() for a in inputs], expected_out))
    out = inputs[0].copy() if inplace else np.full_like(expected_out, np.nan)
    buffers = [out if inplace and i == 0 else a for i, a in enumerate(inputs)]
    if not inplace:
        buffers.append(out)
    table = (ctypes.c_void_p * len(buffers))(*(b.ctypes.data for b in buffers))
    on_cores(3, getattr(library, f"case_{index}"), table)
    _close(out, expected_out.astype(np.float64))


def test_emitted_call_reads_the_properties():
    function, op = kernel_op(kernel.GroupNormGradScaleKernelOp, [(3, 6, 5, 2)] * 2, (6,),
                             groups=2, epsilon=0.25)
    declarations, statements = emit(function, op)
    assert declarations == [
        (
            "  static const edge_group_norm_t params_0 = {.batch = 3, .channels = 6, "
            ".groups = 2, .spatial = 10, .epsilon = 0.25f};"
        )
    ]
    assert statements == ["  edge_group_norm_grad_scale_f32(&params_0, b0, b1, b2);"]
    function, op = kernel_op(kernel.BatchNormKernelOp, [(2, 3), (3,), (3,), (3,), (3,)],
                             (2, 3), inplace=True, training=True)
    declarations, statements = emit(function, op)
    assert ".training = 1" in declarations[0] and ".spatial = 1" in declarations[0]
    assert statements == ["  edge_batch_norm_f32(&params_0, b0, b1, b2, b3, b4, b0);"]
    function, op = kernel_op(kernel.LogSoftmaxKernelOp, [(2, 3, 4)], (2, 3, 4), axis=-2)
    declarations, _ = emit(function, op)
    assert ".outer = 2, .size = 3, .inner = 4" in declarations[0]


def test_unsupported_cases_name_the_op():
    function, op = kernel_op(kernel.SoftmaxKernelOp, [(2, 3)], (2, 3), element=f64)
    with pytest.raises(EmitError, match=r"kernel\.softmax: .*float32"):
        emit(function, op)
    function, op = kernel_op(kernel.LayerNormGradScaleKernelOp, [(65536, 32768)] * 2,
                             (32768,))
    with pytest.raises(EmitError, match=r"kernel\.layer_norm_grad_scale: .*int32"):
        emit(function, op)
    function, op = kernel_op(kernel.GroupNormKernelOp, [(2, 6), (6,), (6,)], (2, 6),
                             groups=4)
    with pytest.raises(EmitError, match=r"kernel\.group_norm: groups \(4\) must divide"):
        emit(function, op)
    function, op = kernel_op(kernel.SoftmaxKernelOp, [(2, 3)], (2, 3), axis=2)
    with pytest.raises(EmitError, match=r"kernel\.softmax: axis 2 is out of range"):
        emit(function, op)


# --------------------------------------------------------------------------------------
# RV32 + CORE-V
# --------------------------------------------------------------------------------------

def test_compiles_for_riscv_without_library_calls():
    called = riscv_calls("edge_kernels_norm.c")
    assert called, "expected calls to the platform (edge_barrier, ...)"
    assert called <= {"edge_core_id", "edge_num_cores", "edge_barrier"}, (
        f"the norm kernels call {sorted(called)}: libgcc or libm on RV32"
    )
