"""The convolution and pooling C kernels against the interpreter (float32).

Each test draws a valid op of one kind (shapes and every attribute combination the
verifiers allow: stride, asymmetric padding, dilation, groups incl. depthwise, bias,
output padding, ceil mode, count_include_pad), builds its `kernel.*` op, calls the
runtime through `kernel_call` (what the emitter prints) and compares with the same
kernel op run by the interpreter on float64 copies of the inputs, to 1e-5 of the
output's scale. Buffers sit between NaN guards: a read outside a buffer poisons the
result, a write outside it is caught. The same kernels on teams of 1, 2, 3 and 8
threads give bitwise-equal outputs. The sources compile for RV32 with the CORE-V
extensions without 64-bit division or libm calls, and the emitted calls compile
against the header.
"""

from __future__ import annotations

import ctypes
import re
import subprocess

import numpy as np
import pytest
from c_checks import CORE_COUNTS, on_cores, riscv_calls
from c_runtime import RUNTIME, pointer, runtime
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import (
    IntegerType,
    MemRefType,
    ModuleOp,
    Signedness,
    StringAttr,
    TensorType,
    f32,
    f64,
)
from xdsl.ir import Block, Operation, SSAValue

from edge_opt.backends.c.emitter import EMITTERS, EmitError, FunctionContext
from edge_opt.backends.c.kernels.conv_pool import (
    CONV2D_FIELDS,
    POOL2D_FIELDS,
    kernel_call,
)
from edge_opt.dialects import kernel, nn, train
from edge_opt.ir.interpreters import make_interpreter
from edge_opt.support.dtypes import numpy_dtype

SETTINGS = settings(max_examples=60)
TEAMS = settings(max_examples=8)
SEEDS = st.integers(0, 2**32 - 1)
ui8 = IntegerType(8, Signedness.UNSIGNED)

_ARRAY_FIELDS = {"stride": 2, "padding": 4, "dilation": 2}


def _structure(name: str, fields: tuple[str, ...]) -> type[ctypes.Structure]:
    return type(name, (ctypes.Structure,), {"_fields_": [
        (f, ctypes.c_int32 * _ARRAY_FIELDS[f] if f in _ARRAY_FIELDS else ctypes.c_int32)
        for f in fields
    ]})


STRUCTS = {
    "edge_conv2d_t": _structure("Conv2d", CONV2D_FIELDS),
    "edge_pool2d_t": _structure("Pool2d", POOL2D_FIELDS),
}

# --------------------------------------------------------------------------------------
# Harness: one kernel op, run in C and by the interpreter
# --------------------------------------------------------------------------------------


def _kernel_op(tensor_op: Operation) -> kernel.KernelOp:
    """The buffer-level twin of a tensor op built on block arguments."""
    def memref(type_) -> MemRefType:
        return MemRefType(type_.element_type, type_.get_shape(), memory_space=StringAttr("L2"))

    block = Block(arg_types=[memref(v.type) for v in tensor_op.operands] +
                  [memref(r.type) for r in tensor_op.results])
    count = len(tensor_op.operands)
    properties = dict(tensor_op.properties)
    properties.pop("operandSegmentSizes", None)
    op = kernel.KERNEL_OF[type(tensor_op)](block.args[:count], block.args[count:], properties)
    op.verify()
    return op


def _args(*shapes_and_types) -> tuple[SSAValue, ...]:
    return Block(arg_types=[TensorType(t, s) for s, t in shapes_and_types]).args


GUARD = 16


class Guarded:
    """An array between guard elements (NaN for floats, 0xA5 for bytes)."""

    def __init__(self, value: np.ndarray):
        fill = np.nan if value.dtype.kind == "f" else 0xA5
        self.storage = np.full(value.size + 2 * GUARD, fill, value.dtype)
        self.array = self.storage[GUARD:GUARD + value.size].reshape(value.shape)
        self.array[...] = value
        self.pristine = self.storage.copy()

    def check(self, name: str, output: bool) -> None:
        """Nothing written outside the array (nor inside, for an input)."""
        parts = [slice(0, GUARD), slice(GUARD + self.array.size, None)]
        for part in parts if output else [slice(None)]:
            assert self.storage[part].tobytes() == self.pristine[part].tobytes(), (
                f"{name} wrote outside its outputs"
            )


def _c_arguments(call, buffers: dict[SSAValue, Guarded]) -> list:
    args: list = []
    if call.struct is not None:
        struct = STRUCTS[call.struct]()
        for name, value in call.fields.items():
            setattr(struct, name, (ctypes.c_int32 * len(value))(*value)
                    if isinstance(value, list) else value)
        args.append(ctypes.byref(struct))
    for argument in call.arguments:
        if argument is None:
            args.append(None)
        elif isinstance(argument, SSAValue):
            args.append(pointer(buffers[argument].array))
        else:
            args.append(ctypes.c_int32(argument))
    return args


def run_c(op: kernel.KernelOp, inputs: list[np.ndarray], cores: int = 1) -> list[np.ndarray]:
    """The op's outputs computed by the runtime on a team of `cores` threads."""
    buffers = {v: Guarded(a) for v, a in zip(op.inputs, inputs, strict=True)}
    for value in op.outputs:  # NaN (0xA5) where the kernel does not write
        assert isinstance(value.type, MemRefType)
        dtype = numpy_dtype(value.type.element_type)
        fill = np.nan if dtype.kind == "f" else 0xA5
        buffers[value] = Guarded(np.full(value.type.get_shape(), fill, dtype))
    call = kernel_call(op)
    function = getattr(runtime(), call.function)
    args = _c_arguments(call, buffers)
    if cores == 1:
        function(*args)
    else:
        on_cores(cores, function, *args)
    for value, buffer in buffers.items():
        buffer.check(call.function, output=value in op.outputs)
    return [buffers[v].array.copy() for v in op.outputs]


def run_interpreter(op: kernel.KernelOp, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The op's outputs by the interpreter, on float64 copies of float inputs (so the
    reference is the exact result rounded once to the output type)."""
    wide = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs]
    outputs = [
        np.zeros(v.type.get_shape(), numpy_dtype(v.type.element_type))  # type: ignore[attr-defined]
        for v in op.outputs
    ]
    make_interpreter(ModuleOp([])).run_op(op, (*wide, *outputs))
    return outputs


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    if actual.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected)
        return
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)


def check(op: kernel.KernelOp, inputs: list[np.ndarray]) -> None:
    for actual, expected in zip(run_c(op, inputs), run_interpreter(op, inputs), strict=True):
        _close(actual, expected)


def _random(rng: np.random.Generator, shape, mode: str = "normal") -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    if mode == "ties":  # few distinct values: first-maximum-on-ties matters
        x = np.round(x).astype(np.float32)
    elif mode == "special":  # -inf and NaN
        x = np.round(x).astype(np.float32)
        x[x == -2] = -np.inf
        x[x == 2] = np.nan
    return x


# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------


@st.composite
def conv_cases(draw, transposed: bool = False):
    """A valid (transposed) convolution: groups (sometimes depthwise), kernel, stride,
    asymmetric padding (also wider than the window), dilation, output padding, bias."""
    groups = draw(st.integers(1, 3))
    depthwise = draw(st.booleans())
    # up to 9 channels a group: both the direct loops and the products (4 or more
    # rows, 2 or more channels summed), with every remainder of their 4-row blocks
    cin_g = 1 if depthwise else draw(st.integers(1, 9))
    cout_g = 1 if depthwise else draw(st.integers(1, 9))
    kernel_ = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, 3)) for _ in range(4))
    output_padding = tuple(
        draw(st.integers(0, max(s, d) - 1)) if transposed else 0
        for s, d in zip(stride, dilation, strict=True)
    )
    sizes = []
    for axis in range(2):
        extent = dilation[axis] * (kernel_[axis] - 1) + 1
        pads = padding[axis] + padding[axis + 2]
        if transposed:  # the output must have at least one row
            need = pads - (extent - 1) - output_padding[axis]
            smallest = 1 + max(0, -(-need // stride[axis]))
        else:
            smallest = max(1, extent - pads)
        sizes.append(draw(st.integers(smallest, smallest + 6)))
    n = draw(st.integers(1, 2))
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if transposed:
        attrs["output_padding"] = output_padding
        return {"input": (n, groups * cin_g, *sizes),
                "weight": (groups * cin_g, cout_g, *kernel_),
                "bias": draw(st.booleans()), "attrs": attrs}
    return {"input": (n, groups * cin_g, *sizes),
            "weight": (groups * cout_g, cin_g, *kernel_),
            "bias": draw(st.booleans()), "attrs": attrs}


@st.composite
def pool_cases(draw, dilated: bool = True):
    """A valid 2-D pooling: kernel, stride, padding (at most half the kernel), dilation,
    ceil mode, count_include_pad."""
    kernel_ = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilated else (1, 1)
    padding = tuple(draw(st.integers(0, kernel_[a % 2] // 2)) for a in range(4))
    sizes = []
    for axis in range(2):
        extent = dilation[axis] * (kernel_[axis] - 1) + 1
        smallest = max(1, extent - padding[axis] - padding[axis + 2])
        sizes.append(draw(st.integers(smallest, smallest + 6)))
    return {
        "input": (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes),
        "kernel": kernel_, "stride": stride, "padding": padding, "dilation": dilation,
        "ceil_mode": draw(st.booleans()), "count_include_pad": draw(st.booleans()),
    }


# --------------------------------------------------------------------------------------
# Builders: a case -> (kernel op, input arrays)
# --------------------------------------------------------------------------------------


def _conv_output(case) -> tuple[int, ...]:
    return nn.Conv2dOp(*_args((case["input"], f32), (case["weight"], f32)),
                       **case["attrs"]).result.type.get_shape()


def _transposed_output(case) -> tuple[int, ...]:
    return nn.ConvTranspose2dOp(*_args((case["input"], f32), (case["weight"], f32)),
                                **case["attrs"]).result.type.get_shape()


def _forward(op_type, bias_channels):
    """The builder of a forward convolution: x, w and a bias when the case has one."""
    def build(case, rng):
        x, w = _random(rng, case["input"]), _random(rng, case["weight"])
        inputs = [x, w] + ([_random(rng, (bias_channels(case),))] if case["bias"] else [])
        args = _args(*((a.shape, f32) for a in inputs))
        return _kernel_op(op_type(*args, **case["attrs"])), inputs

    return build


def _gradient(op_type, output, operand: str, result: str):
    """The builder of a convolution gradient: dy (of the forward's output) and the
    forward's `operand` ("input" or "weight"), the gradient of the other, `result`."""
    def build(case, rng):
        dy, other = _random(rng, output(case)), _random(rng, case[operand])
        args = _args((dy.shape, f32), (other.shape, f32))
        op = op_type(*args, TensorType(f32, case[result]), **case["attrs"])
        return _kernel_op(op), [dy, other]

    return build


conv2d = _forward(nn.Conv2dOp, lambda case: case["weight"][0])
conv2d_grad_input = _gradient(train.Conv2dGradInputOp, _conv_output, "weight", "input")
conv2d_grad_weight = _gradient(train.Conv2dGradWeightOp, _conv_output, "input", "weight")
conv_transpose2d = _forward(
    nn.ConvTranspose2dOp, lambda case: case["weight"][1] * case["attrs"]["groups"]
)
conv_transpose2d_grad_input = _gradient(
    train.ConvTranspose2dGradInputOp, _transposed_output, "weight", "input"
)
conv_transpose2d_grad_weight = _gradient(
    train.ConvTranspose2dGradWeightOp, _transposed_output, "input", "weight"
)


def _pool_attrs(case, dilated: bool) -> dict:
    attrs = {k: case[k] for k in ("kernel", "stride", "padding", "ceil_mode")}
    if dilated:
        attrs["dilation"] = case["dilation"]
    return attrs


def max_pool2d(case, rng, mode="normal"):
    x = _random(rng, case["input"], mode)
    (arg,) = _args((x.shape, f32))
    return _kernel_op(nn.MaxPool2dOp(arg, **_pool_attrs(case, True))), [x]


def max_pool2d_with_indices(case, rng, mode="normal"):
    x = _random(rng, case["input"], mode)
    (arg,) = _args((x.shape, f32))
    op = train.MaxPool2dWithIndicesOp(arg, **_pool_attrs(case, True))
    return _kernel_op(op), [x]


def _pooled(case) -> tuple[int, ...]:
    (arg,) = _args((case["input"], f32))
    return nn.MaxPool2dOp(arg, **_pool_attrs(case, True)).result.type.get_shape()


def max_pool2d_grad(case, rng, mode="normal"):
    shape = _pooled(case)
    dy = _random(rng, shape)
    # any window position, padding included (its gradient is dropped)
    kh, kw = case["kernel"]
    indices = rng.integers(0, kh * kw, shape).astype(np.uint8)
    args = _args((shape, f32), (shape, ui8))
    op = train.MaxPool2dGradOp(*args, TensorType(f32, case["input"]),
                               **_pool_attrs(case, True))
    return _kernel_op(op), [dy, indices]


def avg_pool2d(case, rng, mode="normal"):
    x = _random(rng, case["input"])
    (arg,) = _args((x.shape, f32))
    op = nn.AvgPool2dOp(arg, **_pool_attrs(case, False),
                        count_include_pad=case["count_include_pad"])
    return _kernel_op(op), [x]


def avg_pool2d_grad(case, rng, mode="normal"):
    (arg,) = _args((case["input"], f32))
    shape = nn.AvgPool2dOp(arg, **_pool_attrs(case, False)).result.type.get_shape()
    dy = _random(rng, shape)
    (grad,) = _args((shape, f32))
    op = train.AvgPool2dGradOp(grad, TensorType(f32, case["input"]),
                               **_pool_attrs(case, False),
                               count_include_pad=case["count_include_pad"])
    return _kernel_op(op), [dy]


def global_avg_pool(shape, rng):
    x = _random(rng, shape)
    (arg,) = _args((shape, f32))
    return _kernel_op(nn.GlobalAvgPoolOp(arg)), [x]


CONV = {
    "conv2d": (conv2d, False),
    "conv2d_grad_input": (conv2d_grad_input, False),
    "conv2d_grad_weight": (conv2d_grad_weight, False),
    "conv_transpose2d": (conv_transpose2d, True),
    "conv_transpose2d_grad_input": (conv_transpose2d_grad_input, True),
    "conv_transpose2d_grad_weight": (conv_transpose2d_grad_weight, True),
}
MAX_POOL = {
    "max_pool2d": max_pool2d,
    "max_pool2d_with_indices": max_pool2d_with_indices,
    "max_pool2d_grad": max_pool2d_grad,
}
AVG_POOL = {"avg_pool2d": avg_pool2d, "avg_pool2d_grad": avg_pool2d_grad}

global_shapes = st.lists(st.integers(1, 5), min_size=3, max_size=5)

# --------------------------------------------------------------------------------------
# Against the interpreter
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONV))
@SETTINGS
@given(data=st.data(), seed=SEEDS)
def test_conv(name: str, data, seed: int):
    build, transposed = CONV[name]
    case = data.draw(conv_cases(transposed))
    check(*build(case, np.random.default_rng(seed)))


@pytest.mark.parametrize("name", sorted(MAX_POOL))
@SETTINGS
@given(case=pool_cases(), seed=SEEDS, mode=st.sampled_from(["normal", "ties", "special"]))
def test_max_pool(name: str, case, seed: int, mode: str):
    check(*MAX_POOL[name](case, np.random.default_rng(seed), mode))


@pytest.mark.parametrize("name", sorted(AVG_POOL))
@SETTINGS
@given(case=pool_cases(dilated=False), seed=SEEDS)
def test_avg_pool(name: str, case, seed: int):
    check(*AVG_POOL[name](case, np.random.default_rng(seed)))


@SETTINGS
@given(shape=global_shapes, seed=SEEDS)
def test_global_avg_pool(shape, seed: int):
    check(*global_avg_pool(shape, np.random.default_rng(seed)))


def test_depthwise_strided_padded_conv_with_bias():
    """A MobileNet-style layer: depthwise 3x3, stride 2, asymmetric padding, bias."""
    case = {"input": (1, 8, 9, 10), "weight": (8, 1, 3, 3), "bias": True,
            "attrs": {"stride": (2, 2), "padding": (1, 0, 1, 1), "dilation": (1, 1),
                      "groups": 8}}
    rng = np.random.default_rng(0)
    for build in (conv2d, conv2d_grad_input, conv2d_grad_weight):
        check(*build(case, rng))


@pytest.mark.parametrize("stride,padding,dilation", [
    ((1, 1), (1, 1, 1, 1), (1, 1)), ((2, 2), (1, 0, 2, 1), (1, 1)), ((1, 2), (2, 2, 2, 2), (2, 1))])
def test_first_layer_conv_folds_its_taps(stride, padding, dilation):
    """Three input channels, 3x3: the forward and the weight gradient fold channels and
    taps into one contraction (interior rows and columns in long segments, border
    columns and rows with taps outside the image reading zeros), on 1 to 8 cores, with
    the same bits on every team."""
    case = {"input": (2, 3, 11, 14), "weight": (10, 3, 3, 3), "bias": True,
            "attrs": {"stride": stride, "padding": padding, "dilation": dilation,
                      "groups": 1}}
    for build in (conv2d, conv2d_grad_weight):
        op, inputs = build(case, np.random.default_rng(1))
        check(op, inputs)
        _same_on_teams(op, inputs)


def test_max_pool_ties_and_padding_windows():
    """First maximum on ties; an all -inf window answers tap 0 (NumPy's argmax)."""
    case = {"input": (1, 1, 2, 2), "kernel": (2, 2), "stride": (1, 1),
            "padding": (1, 1, 0, 0), "dilation": (1, 1), "ceil_mode": False,
            "count_include_pad": False}
    op, _ = max_pool2d_with_indices(case, np.random.default_rng(0))
    x = np.array([[[[1.0, 1.0], [1.0, -np.inf]]]], np.float32)
    y, indices = run_c(op, [x])
    np.testing.assert_array_equal(indices[0, 0], [[3, 2], [1, 0]])
    np.testing.assert_array_equal(y[0, 0], [[1, 1], [1, 1]])
    x = np.full((1, 1, 2, 2), -np.inf, np.float32)
    y, indices = run_c(op, [x])
    np.testing.assert_array_equal(indices, 0)
    check(op, [x])


@pytest.mark.parametrize("mode", ["ties", "special"])
@pytest.mark.parametrize("stride", [1, 2])
def test_max_pool_3x3_windows_inside_the_input(mode: str, stride: int):
    """The unrolled 3x3 windows (inside the input, unit dilation): the first maximum on
    ties (few distinct values), and a NaN or -inf in a window (the general rule) give
    the interpreter's values and positions."""
    case = {"input": (2, 3, 9, 10), "kernel": (3, 3), "stride": (stride, stride),
            "padding": (1, 1, 1, 1), "dilation": (1, 1), "ceil_mode": False,
            "count_include_pad": False}
    for build in (max_pool2d, max_pool2d_with_indices):
        op, inputs = build(case, np.random.default_rng(3), mode)
        for actual, expected in zip(run_c(op, inputs), run_interpreter(op, inputs),
                                    strict=True):
            np.testing.assert_array_equal(actual, expected)


# --------------------------------------------------------------------------------------
# Teams of threads: bitwise the same results
# --------------------------------------------------------------------------------------


def _same_on_teams(op, inputs) -> None:
    alone = run_c(op, inputs)
    for cores in CORE_COUNTS[1:]:
        for a, b in zip(alone, run_c(op, inputs, cores), strict=True):
            assert a.tobytes() == b.tobytes(), f"{cores} cores differ from one"


@pytest.mark.parametrize("name", sorted(CONV))
@TEAMS
@given(data=st.data(), seed=SEEDS)
def test_conv_teams(name: str, data, seed: int):
    build, transposed = CONV[name]
    _same_on_teams(*build(data.draw(conv_cases(transposed)), np.random.default_rng(seed)))


@pytest.mark.parametrize("name", sorted(MAX_POOL) + sorted(AVG_POOL))
@TEAMS
@given(data=st.data(), seed=SEEDS)
def test_pool_teams(name: str, data, seed: int):
    build = MAX_POOL.get(name) or AVG_POOL[name]
    case = data.draw(pool_cases(dilated=name in MAX_POOL))
    _same_on_teams(*build(case, np.random.default_rng(seed)))


@TEAMS
@given(shape=global_shapes, seed=SEEDS)
def test_global_avg_pool_teams(shape, seed: int):
    _same_on_teams(*global_avg_pool(shape, np.random.default_rng(seed)))


# --------------------------------------------------------------------------------------
# Emitters, structs and the RV32 build
# --------------------------------------------------------------------------------------

CONV_POOL_OPS = (
    kernel.Conv2dKernelOp, kernel.ConvTranspose2dKernelOp, kernel.Conv2dGradInputKernelOp,
    kernel.Conv2dGradWeightKernelOp, kernel.ConvTranspose2dGradInputKernelOp,
    kernel.ConvTranspose2dGradWeightKernelOp, kernel.MaxPool2dKernelOp,
    kernel.AvgPool2dKernelOp, kernel.GlobalAvgPoolKernelOp,
    kernel.MaxPool2dWithIndicesKernelOp, kernel.MaxPool2dGradKernelOp,
    kernel.AvgPool2dGradKernelOp,
)


def _header_structs() -> dict[str, list[str]]:
    text = (RUNTIME / "edge_kernels_conv_pool.h").read_text()
    structs = {}
    for body, name in re.findall(r"typedef struct \{(.*?)\} (\w+);", text, re.DOTALL):
        fields = []
        for declaration in re.findall(r"int32_t ([^;]+);", body):
            for item in declaration.split(","):
                match = re.fullmatch(r"\s*(\w+)(?:\[(\d+)\])?\s*", item)
                assert match, item
                fields.append(f"{match[1]}[{match[2]}]" if match[2] else match[1])
        structs[name] = fields
    return structs


def test_structs_match_the_header():
    structs = _header_structs()
    for name, cls in STRUCTS.items():
        ours = [f"{f}[{t._length_}]" if hasattr(t, "_length_") else f
                for f, t in cls._fields_]  # type: ignore[attr-defined]
        assert structs[name] == ours


def _examples() -> list[kernel.KernelOp]:
    rng = np.random.default_rng(1)
    conv = {"input": (1, 4, 6, 6), "weight": (4, 2, 3, 3), "bias": False,
            "attrs": {"stride": (2, 1), "padding": (1, 0, 1, 2), "dilation": (1, 2),
                      "groups": 2}}
    transposed = {**conv, "weight": (4, 3, 3, 3), "bias": True,
                  "attrs": {**conv["attrs"], "output_padding": (1, 0)}}
    pool = {"input": (1, 2, 7, 7), "kernel": (3, 2), "stride": (2, 2),
            "padding": (1, 1, 0, 0), "dilation": (1, 1), "ceil_mode": True,
            "count_include_pad": True}
    ops = [build(transposed if t else conv, rng)[0] for build, t in CONV.values()]
    ops += [build(pool, rng)[0] for build in [*MAX_POOL.values(), *AVG_POOL.values()]]
    ops.append(global_avg_pool((2, 3, 4, 5), rng)[0])
    return ops


def test_every_conv_pool_kernel_has_an_emitter():
    assert all(op in EMITTERS for op in CONV_POOL_OPS)
    assert {type(op) for op in _examples()} == set(CONV_POOL_OPS)


def test_emitted_calls_compile(tmp_path):
    """Emit each kernel op into a function whose parameters are its buffers and compile
    it against the runtime headers (struct fields, argument count and types)."""
    lines = ['#include "edge_runtime.h"', ""]
    for index, op in enumerate(_examples()):
        f = FunctionContext(None, None)  # type: ignore[arg-type]
        params = []
        for i, value in enumerate([*op.inputs, *op.outputs]):
            f.names[value] = f"b{i}"
            const = "const " if i < len(op.inputs) else ""
            params.append(f"{const}{f.ctype(value)} *b{i}")
        EMITTERS[type(op)](f, op)
        lines.append(f"void f{index}({', '.join(params)}) {{")
        lines += f.declarations + f.statements + ["}", ""]
    source = "\n".join(lines)
    assert "NULL" in source and "edge_conv_transpose2d_f32(" in source
    path = tmp_path / "emitted.c"
    path.write_text(source)
    result = subprocess.run(
        ["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-c", f"-I{RUNTIME}",
         str(path), "-o", str(tmp_path / "emitted.o")],
        check=False, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr + source


def test_emit_error_names_the_op():
    x, w = _args(((1, 2, 4, 4), f64), ((2, 2, 3, 3), f64))
    op = _kernel_op(nn.Conv2dOp(x, w))
    with pytest.raises(EmitError, match="kernel.conv2d: .*float32"):
        kernel_call(op)


@pytest.mark.parametrize("source", ["edge_kernels_conv_pool.c", "edge_kernels_conv_implicit.c"])
def test_host_build_is_warning_free(source, tmp_path):
    result = subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", f"-I{RUNTIME}", "-c",
         str(RUNTIME / source), "-o", str(tmp_path / "k.o")],
        check=False, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr


def test_rv32_build_has_no_64_bit_division_or_libm():
    """Outside the platform, the convolutions call only the runtime's product cores
    and their implicit-GEMM forms."""
    implicit = {"edge_conv_implicit_forward_applies", "edge_conv_implicit_forward",
                "edge_conv_implicit_transposed_applies", "edge_conv_implicit_transposed",
                "edge_conv_folded_weight_gradient_applies",
                "edge_conv_folded_weight_gradient"}
    platform = {"edge_core_id", "edge_num_cores", "edge_barrier"}
    assert riscv_calls("edge_kernels_conv_pool.c") <= platform | implicit | {
        "edge_gemm_rows_f32"}
    assert riscv_calls("edge_kernels_conv_implicit.c") <= platform | {
        "edge_gemm_gather_rows_f32"}

