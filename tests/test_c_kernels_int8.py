"""The int8 C kernels (linear, NHWC conv2d) against an independent NumPy integer
reference, bit-exact, on teams of 1 to 8 cores: built for the host, and the CORE-V
build (its 4x4 register blocks are assembly) on emulated RV32 cores; and the RISC-V
build's inner loops, which must use cv.sdotsp.b (4 int8 MACs per instruction) in 4x4
blocks.

The numerics (edge_kernels_int8.h): acc = bias + sum x * w in int32, wrapping modulo
2^32; y = clip(floor((acc * scale + 2^(shift-1)) / 2^shift), -128, 127), with no
rounding term when shift == 0.
"""

from __future__ import annotations

import ctypes
import re

import numpy as np
import pytest
from c_checks import TEAM_DRIVER, on_cores
from c_riscv import compile_riscv, function_lines, innermost_loops, library_calls
from c_runtime import RUNTIME, c_struct, pointer, runtime
from hypothesis import given, settings
from hypothesis import strategies as st

SETTINGS = settings(max_examples=40)
CORES = st.integers(1, 8)
SEEDS = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module", autouse=True)
def compiled_runtime() -> ctypes.CDLL:
    """Compiles the runtime once, before any property test."""
    return runtime()


LinearParams = c_struct("edge_linear_s8_t")


Conv2dParams = c_struct("edge_conv2d_s8_t")




# --------------------------------------------------------------------------------------
# The reference: Python integers where it matters
# --------------------------------------------------------------------------------------


def wrap32(values: np.ndarray) -> np.ndarray:
    """int64 values modulo 2^32, as int32 (the accumulator's wrapping)."""
    return ((values.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def requantize(acc: np.ndarray, scale: int, shift: int) -> np.ndarray:
    """clip(floor((acc * scale + 2^(shift-1)) / 2^shift), -128, 127), exactly."""
    product = acc.astype(np.int64) * np.int64(scale)
    rounding = 2 ** (shift - 1) if shift > 0 else 0
    quotient = np.floor_divide(product + np.int64(rounding), np.int64(2**shift))
    return np.clip(quotient, -128, 127).astype(np.int8)


def linear_reference(x, w, bias, scale, shift):
    acc = x.astype(np.int64) @ w.astype(np.int64).T
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return requantize(wrap32(acc), scale, shift)


def conv_output(size: int, pad: int, kernel: int, stride: int, dilation: int) -> int:
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


def conv2d_reference(x, w, bias, stride, padding, dilation, scale, shift):
    """NHWC x, (cout, kh, kw, cin) w: a sum over kernel taps of channel contractions."""
    top, left, bottom, right = padding
    n, h, wd, _ = x.shape
    cout, kh_taps, kw_taps, _ = w.shape
    oh = conv_output(h, top + bottom, kh_taps, stride[0], dilation[0])
    ow = conv_output(wd, left + right, kw_taps, stride[1], dilation[1])
    xp = np.pad(x.astype(np.int64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    acc = np.zeros((n, oh, ow, cout), np.int64)
    for kh in range(kh_taps):
        for kw in range(kw_taps):
            top_row, left_col = kh * dilation[0], kw * dilation[1]
            rows = slice(top_row, top_row + (oh - 1) * stride[0] + 1, stride[0])
            cols = slice(left_col, left_col + (ow - 1) * stride[1] + 1, stride[1])
            taps = w[:, kh, kw, :].astype(np.int64)
            acc += np.einsum("nhwc,oc->nhwo", xp[:, rows, cols, :], taps)
    if bias is not None:
        acc += bias.astype(np.int64)
    return requantize(wrap32(acc), scale, shift)


def int8(rng, shape) -> np.ndarray:
    return np.array(rng.integers(-128, 127, size=shape, endpoint=True), np.int8)


def scaling(rng, acc: np.ndarray) -> tuple[int, int]:
    """A scale and shift that map most of `acc` into int8 (some values clip)."""
    shift = int(rng.integers(0, 24))
    amax = max(int(np.abs(acc.astype(np.int64)).max()), 1)
    scale = max(1, int(127 * 2**shift / amax * rng.uniform(0.5, 3.0)))
    scale = min(scale, 2**31 - 1)
    return (-scale if rng.random() < 0.2 else scale), shift


# --------------------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------------------


def _run(kernel: str, params, x, w, bias, y, cores) -> np.ndarray:
    """`kernel(params, x, w, bias or NULL, y)` on a team of `cores`; returns `y`."""
    bias_ptr = pointer(bias) if bias is not None else None
    fn = getattr(runtime(), kernel)
    on_cores(cores, lambda: fn(ctypes.byref(params), pointer(x), pointer(w), bias_ptr,
                               pointer(y)))
    return y


def run_linear(x, w, bias, scale, shift, cores) -> np.ndarray:
    m, k = x.shape
    n = w.shape[0]
    y = np.full((m, n), 99, np.int8)
    params = LinearParams(m, n, k, scale, shift)
    return _run("edge_linear_s8", params, x, w, bias, y, cores)


@SETTINGS
@given(m=st.integers(1, 6), n=st.integers(1, 13), k=st.integers(1, 70),
       with_bias=st.booleans(), cores=CORES, seed=SEEDS)
def test_linear(m, n, k, with_bias, cores, seed):
    rng = np.random.default_rng(seed)
    x, w = int8(rng, (m, k)), int8(rng, (n, k))
    bias = (np.array(rng.integers(-(2**20), 2**20, size=n), np.int32) if with_bias
            else None)
    acc = x.astype(np.int64) @ w.astype(np.int64).T
    scale, shift = scaling(rng, acc)
    expected = linear_reference(x, w, bias, scale, shift)
    np.testing.assert_array_equal(run_linear(x, w, bias, scale, shift, cores), expected)


@st.composite
def conv_cases(draw):
    case = {
        "batch": draw(st.integers(1, 2)),
        "height": draw(st.integers(1, 7)),
        "width": draw(st.integers(1, 7)),
        "cin": draw(st.integers(1, 9)),
        "cout": draw(st.integers(1, 9)),
        "kernel": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "stride": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        "padding": tuple(draw(st.integers(0, 2)) for _ in range(4)),
        "dilation": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
    }
    top, left, bottom, right = case["padding"]
    oh = conv_output(case["height"], top + bottom, case["kernel"][0], case["stride"][0],
                     case["dilation"][0])
    ow = conv_output(case["width"], left + right, case["kernel"][1], case["stride"][1],
                     case["dilation"][1])
    if oh < 1 or ow < 1:
        case["height"] += case["dilation"][0] * (case["kernel"][0] - 1)
        case["width"] += case["dilation"][1] * (case["kernel"][1] - 1)
    return case


def run_conv2d(x, w, bias, case, scale, shift, cores) -> np.ndarray:
    n, h, wd, cin = x.shape
    cout, kh, kw, _ = w.shape
    top, left, bottom, right = case["padding"]
    oh = conv_output(h, top + bottom, kh, case["stride"][0], case["dilation"][0])
    ow = conv_output(wd, left + right, kw, case["stride"][1], case["dilation"][1])
    y = np.full((n, oh, ow, cout), 99, np.int8)
    params = Conv2dParams(
        n, h, wd, cin, cout, kh, kw, oh, ow, (ctypes.c_int32 * 2)(*case["stride"]),
        (ctypes.c_int32 * 4)(*case["padding"]), (ctypes.c_int32 * 2)(*case["dilation"]),
        scale, shift,
    )
    return _run("edge_conv2d_s8", params, x, w, bias, y, cores)


@SETTINGS
@given(case=conv_cases(), with_bias=st.booleans(), cores=CORES, seed=SEEDS)
def test_conv2d(case, with_bias, cores, seed):
    rng = np.random.default_rng(seed)
    x = int8(rng, (case["batch"], case["height"], case["width"], case["cin"]))
    w = int8(rng, (case["cout"], *case["kernel"], case["cin"]))
    bias = (np.array(rng.integers(-(2**16), 2**16, size=case["cout"]), np.int32)
            if with_bias else None)
    args = (case["stride"], case["padding"], case["dilation"])
    acc = conv2d_reference(x, w, None, *args, 1, 0).astype(np.int64)  # only for scaling
    scale, shift = scaling(rng, np.maximum(np.abs(acc), 1) * 64)
    expected = conv2d_reference(x, w, bias, *args, scale, shift)
    actual = run_conv2d(x, w, bias, case, scale, shift, cores)
    np.testing.assert_array_equal(actual, expected)


def test_conv2d_larger_layer_on_all_team_sizes():
    """A realistic layer (3x3, 16 -> 24 channels, padding 1) is the same on any team."""
    rng = np.random.default_rng(7)
    case = {"stride": (1, 1), "padding": (1, 1, 1, 1), "dilation": (1, 1)}
    x, w = int8(rng, (1, 10, 12, 16)), int8(rng, (24, 3, 3, 16))
    bias = np.array(rng.integers(-1000, 1000, size=24), np.int32)
    expected = conv2d_reference(x, w, bias, *case.values(), 3, 12)
    for cores in (1, 2, 8):
        actual = run_conv2d(x, w, bias, case, 3, 12, cores)
        np.testing.assert_array_equal(actual, expected)


def test_rounding_and_clipping():
    """Ties round towards +infinity; shift 0 has no rounding term; results clip."""
    x = np.ones((1, 1), np.int8)
    w = np.ones((8, 1), np.int8)
    bias = np.array([2, -4, 4, -2, 200, -300, 6, -6], np.int32)  # acc = bias + 1
    np.testing.assert_array_equal(
        run_linear(x, w, bias, 1, 1, 1)[0], [2, -1, 3, 0, 101, -128, 4, -2]
    )
    np.testing.assert_array_equal(
        run_linear(x, w, bias, -2, 0, 1)[0], [-6, 6, -10, 2, -128, 127, -14, 10]
    )
    np.testing.assert_array_equal(
        run_linear(x, w, bias, 1, 1, 1), linear_reference(x, w, bias, 1, 1)
    )


def test_accumulator_wraps_modulo_2_32():
    x = np.full((2, 9), 127, np.int8)
    w = np.full((3, 9), 127, np.int8)
    bias = np.array([2**31 - 1000, -(2**31), 5], np.int32)  # the first one wraps
    expected = linear_reference(x, w, bias, 1, 24)
    assert expected[0, 0] < 0  # wrapped to a large negative accumulator
    np.testing.assert_array_equal(run_linear(x, w, bias, 1, 24, 2), expected)


# --------------------------------------------------------------------------------------
# The RISC-V build: cv.sdotsp.b in the inner loops of both kernels
# --------------------------------------------------------------------------------------

def _with_callees(assembly: str, name: str) -> list[str]:
    """The lines of function `name` and of the functions of `assembly` it calls, and
    they call (the kernels' blocks are static functions)."""
    defined = set(re.findall(r"^(\w+):", assembly, re.MULTILINE))
    seen, pending, lines = set(), [name], []
    while pending:
        function = pending.pop()
        if function in seen:
            continue
        seen.add(function)
        body = function_lines(assembly, function)
        lines += body
        for line in body:
            match = re.match(r"^\s+(?:call|tail)\s+(\w+)", line)
            if match and match.group(1) in defined:
                pending.append(match.group(1))
    return lines


def test_riscv_inner_loops_use_sdotsp(tmp_path):
    source = RUNTIME / "edge_kernels_int8.c"
    compile_riscv(source, tmp_path / "int8.o")
    assembly = compile_riscv(source, tmp_path / "int8.s", assembly=True)
    assert library_calls(assembly) == set()  # e.g. no 64-bit division helper
    for name in ("edge_linear_s8", "edge_conv2d_s8"):
        loops = innermost_loops(_with_callees(assembly, name))
        simd = [body for body in loops if any("cv.sdotsp.b" in line for line in body)]
        assert simd, f"{name}: no innermost loop uses cv.sdotsp.b"
        # the 4x4 block: per 4-byte step, 4 + 4 loaded words (post-increment loads)
        # feed 16 dot products; two steps per branch (and a load of the loop's end)
        widest = max(simd, key=lambda body: sum("cv.sdotsp.b" in line for line in body))
        dots = sum("cv.sdotsp.b" in line for line in widest)
        loads = sum(re.match(r"^\s+cv\.lw\s.*\(\w+\), \w+$", line) is not None
                    for line in widest)
        instructions = sum(not line.rstrip().endswith(":") for line in widest)
        assert (dots, loads, instructions) == (32, 16, 50), name


# --------------------------------------------------------------------------------------
# The CORE-V build on emulated RV32 cores: the 4x4 blocks are assembly there
# --------------------------------------------------------------------------------------

# m, n, k, bias, shift. Between them: rows and columns left over by the 4x4 blocks,
# k % 4 != 0 (the last bytes of a row in C after the asm), misaligned rows, k < 4 (no
# asm), the 32-bit requantisation with and without the accumulator clip, the 64-bit
# one; the third case has a negative scale.
EMULATED_LINEAR = [
    (9, 11, 37, True, 12),
    (8, 8, 32, False, 6),
    (5, 6, 20, True, 28),
    (4, 4, 3, True, 5),
    (13, 9, 64, True, 23),
]
# batch, height, width, cin, cout, kernel, stride, padding, dilation, bias, shift.
# Between them: odd channel counts (runs not whole words), 4-pixel blocks along rows
# and down columns, dilation (several rows of runs per 4x4 block), pixels without taps,
# channels left over by the 4x4 blocks, the requantisation paths as above, shift 0; the
# fifth case has a negative scale.
EMULATED_CONV = [
    (1, 7, 9, 5, 9, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, 12),
    (2, 6, 6, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False, 20),
    (1, 9, 8, 8, 5, (3, 3), (2, 1), (2, 1, 1, 2), (2, 2), True, 7),
    (1, 5, 6, 12, 7, (1, 1), (1, 1), (1, 1, 1, 1), (1, 1), True, 30),
    (1, 6, 7, 4, 4, (2, 3), (1, 2), (0, 2, 1, 0), (1, 1), True, 0),
    (1, 8, 8, 16, 12, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, 23),
]


def _scale_for(acc: np.ndarray, shift: int, negative: bool) -> int:
    """A scale that maps the largest accumulator to about 190 at `shift` (some clip)."""
    amax = max(int(np.abs(acc.astype(np.int64)).max()), 1)
    scale = min(max(1, int(190 * 2**shift / amax)), 2**31 - 1)
    return -scale if negative else scale


def _c_array(kind: str, name: str, values: np.ndarray) -> str:
    body = ", ".join(str(int(v)) for v in values.ravel())
    return f"{kind} {name}[{max(values.size, 1)}] = {{{body}}};"


def _emulated_cases(rng):
    """(C declarations, C call, expected y, name of y) of every emulated case."""
    cases = []
    for index, (m, n, k, with_bias, shift) in enumerate(EMULATED_LINEAR):
        x, w = int8(rng, (m, k)), int8(rng, (n, k))
        bias = (np.array(rng.integers(-5000, 5000, size=n), np.int32) if with_bias
                else None)
        scale = _scale_for(x.astype(np.int64) @ w.astype(np.int64).T, shift, index == 2)
        expected = linear_reference(x, w, bias, scale, shift)
        name = f"l{index}"
        declarations = "\n".join([
            _c_array("int8_t", f"{name}_x", x), _c_array("int8_t", f"{name}_w", w),
            _c_array("int32_t", f"{name}_b", bias if bias is not None else np.zeros(1)),
            f"int8_t {name}_y[{m * n}];",
            f"static const edge_linear_s8_t {name}_p = {{{m}, {n}, {k}, {scale}, "
            + f"{shift}}};"])
        bias_arg = f"{name}_b" if bias is not None else "0"
        call = f"edge_linear_s8(&{name}_p, {name}_x, {name}_w, {bias_arg}, {name}_y);"
        cases.append((declarations, call, expected, f"{name}_y"))
    for index, case in enumerate(EMULATED_CONV):
        batch, height, width, cin, cout, kernel, stride, padding, dilation, with_bias, \
            shift = case
        x = int8(rng, (batch, height, width, cin))
        w = int8(rng, (cout, *kernel, cin))
        bias = (np.array(rng.integers(-5000, 5000, size=cout), np.int32) if with_bias
                else None)
        acc = conv2d_reference(x, w, None, stride, padding, dilation, 1, 0)
        scale = _scale_for(acc, shift, index == 4)
        expected = conv2d_reference(x, w, bias, stride, padding, dilation, scale, shift)
        name = f"c{index}"
        sizes = ", ".join(str(v) for v in (
            batch, height, width, cin, cout, *kernel, *expected.shape[1:3]))
        pairs = ", ".join("{" + ", ".join(map(str, v)) + "}"
                          for v in (stride, padding, dilation))
        declarations = "\n".join([
            _c_array("int8_t", f"{name}_x", x), _c_array("int8_t", f"{name}_w", w),
            _c_array("int32_t", f"{name}_b", bias if bias is not None else np.zeros(1)),
            f"int8_t {name}_y[{expected.size}];",
            f"static const edge_conv2d_s8_t {name}_p = {{{sizes}, {pairs}, "
            + f"{scale}, {shift}}};"])
        bias_arg = f"{name}_b" if bias is not None else "0"
        call = f"edge_conv2d_s8(&{name}_p, {name}_x, {name}_w, {bias_arg}, {name}_y);"
        cases.append((declarations, call, expected, f"{name}_y"))
    return cases




@pytest.fixture(scope="module")
def emulated_program(tmp_path_factory):
    """The CORE-V build of every emulated case (an ELF for the team emulator)."""
    from edge_opt.backends.rv32.emulator import build_elf

    cases = _emulated_cases(np.random.default_rng(11))
    directory = tmp_path_factory.mktemp("int8_corev")
    (directory / "driver.c").write_text(TEAM_DRIVER % {
        "declarations": "\n".join(c[0] for c in cases),
        "calls": "\n".join(f"  {c[1]}" for c in cases)})
    elf = build_elf([directory / "driver.c", RUNTIME / "edge_kernels_int8.c",
                     RUNTIME / "edge_platform.c"], directory / "int8.elf",
                    include=[RUNTIME], defines=["EDGE_EMULATED"])
    return elf, cases


def test_host_build_on_every_team_size():
    """The shapes of the emulated test below, built for the host (the C blocks), on
    teams of 1 to 8 cores: every split of the outputs between cores (a core's share
    may start and end inside a row or a pixel) gives the reference, bit for bit."""
    rng = np.random.default_rng(5)
    for index, (m, n, k, with_bias, shift) in enumerate(EMULATED_LINEAR):
        x, w = int8(rng, (m, k)), int8(rng, (n, k))
        bias = (np.array(rng.integers(-5000, 5000, size=n), np.int32) if with_bias
                else None)
        scale = _scale_for(x.astype(np.int64) @ w.astype(np.int64).T, shift, index == 2)
        expected = linear_reference(x, w, bias, scale, shift)
        for cores in range(1, 9):
            actual = run_linear(x, w, bias, scale, shift, cores)
            message = f"linear {m, n, k} on {cores} cores"
            np.testing.assert_array_equal(actual, expected, err_msg=message)
    for index, (batch, height, width, cin, cout, kernel, stride, padding, dilation,
                with_bias, shift) in enumerate(EMULATED_CONV):
        x, w = int8(rng, (batch, height, width, cin)), int8(rng, (cout, *kernel, cin))
        bias = (np.array(rng.integers(-5000, 5000, size=cout), np.int32) if with_bias
                else None)
        acc = conv2d_reference(x, w, None, stride, padding, dilation, 1, 0)
        scale = _scale_for(acc, shift, index == 4)
        case = {"stride": stride, "padding": padding, "dilation": dilation}
        expected = conv2d_reference(x, w, bias, stride, padding, dilation, scale, shift)
        for cores in range(1, 9):
            actual = run_conv2d(x, w, bias, case, scale, shift, cores)
            message = f"conv2d {x.shape} on {cores} cores"
            np.testing.assert_array_equal(actual, expected, err_msg=message)


@pytest.mark.parametrize("cores", range(1, 9))
def test_corev_build_on_every_team_size(emulated_program, cores):
    """The assembly 4x4 blocks (and the C blocks around them), on 1 to 8 emulated
    cores: every split of the outputs between cores gives the reference, bit for bit."""
    from edge_opt.backends.rv32.emulator import Program
    from edge_opt.backends.rv32.team import Team

    elf, cases = emulated_program
    program = Program(elf)
    program.uc.mem_write(program.symbols["team"], cores.to_bytes(4, "little"))
    Team(program, cores).run()
    for _, call, expected, y in cases:
        actual = np.frombuffer(program.read(y, expected.size), np.int8)
        np.testing.assert_array_equal(actual.reshape(expected.shape), expected,
                                      err_msg=call)
