"""The shape C kernels (data movement, gather/scatter, slice gradient, reductions).

Three layers:
- the runtime kernels through ctypes, with parameters from the emitters' helpers,
  against NumPy / `edge_opt.support.numerics` (bitwise for data movement, every element type
  size), on teams of 1, 2 and 8 cores;
- the emitters: kernel ops printed by `backends/c/kernels/shape.py` into one C file,
  compiled with the runtime, run on 1, 2 and 8 cores and compared with the interpreter
  (the kernel ops' specification);
- both compilers: the runtime file with host gcc (above) and for the RISC-V target.
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from c_checks import on_cores
from c_riscv import compile_riscv, library_calls
from c_runtime import CFLAGS, RUNTIME, c_struct, int_array, pointer, runtime
from hypothesis import given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import MemRefType, ModuleOp, StringAttr
from xdsl.ir import Block

from edge_opt.backends.c.emitter import EMITTERS, EmitError, FunctionContext, ctype
from edge_opt.backends.c.kernels import shape as shape_kernels
from edge_opt.backends.c.kernels.shape import (
    broadcast_copy,
    concat_copies,
    dense_strides,
    pad_fill,
    reduce_fields,
    scatter_positions,
    slice_copy,
    slice_grad,
    split_axis,
    transpose_copy,
)
from edge_opt.dialects import kernel, nn, train
from edge_opt.ir.interpreters import make_interpreter
from edge_opt.support import numerics
from edge_opt.support import train_numerics as tn
from edge_opt.support.dtypes import numpy_dtype

SETTINGS = settings(max_examples=40)
CORES = st.sampled_from([1, 2, 8])
SEEDS = st.integers(0, 2**32 - 1)
DTYPES = [np.float32, np.int32, np.int64, np.int8, np.uint8, np.float16]
"""one per element size (1, 2, 4, 8 bytes), and the types the C backend prints"""
SUFFIX = {1: "b8", 2: "b16", 4: "b32", 8: "b64"}


@pytest.fixture(scope="module", autouse=True)
def compiled_runtime() -> ctypes.CDLL:
    """Compiles the runtime once, before any property test: a compile error then fails
    each test at once instead of being retried by every example."""
    return runtime()


# --------------------------------------------------------------------------------------
# The parameter structs, read from the runtime's headers
# --------------------------------------------------------------------------------------

StridedCopyParams = c_struct("edge_strided_copy_t")


class GatherParams(ctypes.Structure):
    """`edge_gather_t` (and `edge_scatter_t`: the same layout, `positions` last)"""

    _fields_ = [("outer", ctypes.c_int32), ("size", ctypes.c_int32),
                ("inner", ctypes.c_int32), ("count", ctypes.c_int32),
                ("table", ctypes.POINTER(ctypes.c_int32))]


SliceGradParams = c_struct("edge_slice_grad_t")


ReduceParams = c_struct("edge_reduce_t")


def struct(cls: type[ctypes.Structure], fields: dict) -> ctypes.Structure:
    values = {k: int_array(v) if isinstance(v, list) else v for k, v in fields.items()}
    return cls(**values)




def kernel_fn(name: str, dtype) -> ctypes._CFuncPtr:
    return getattr(runtime(), f"edge_{name}_{SUFFIX[np.dtype(dtype).itemsize]}")


def random_array(rng: np.random.Generator, shape, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.array(rng.standard_normal(shape), dtype)
    info = np.iinfo(dtype)
    return np.array(rng.integers(info.min, info.max, size=shape, endpoint=True), dtype)


def copy_with(copy, x: np.ndarray, out: np.ndarray, cores: int) -> None:
    params = struct(StridedCopyParams, copy.fields())
    fn = kernel_fn("strided_copy", x.dtype)
    on_cores(cores, lambda: fn(ctypes.byref(params), pointer(x), pointer(out)))


def bitwise(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert actual.tobytes() == np.array(expected, order="C").tobytes()


# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------

dtypes = st.sampled_from(DTYPES)


def shapes(min_rank=0, max_rank=6, max_size=4):
    return st.integers(min_rank, max_rank).flatmap(
        lambda r: st.lists(st.integers(1, max_size if r < 5 else 3), min_size=r,
                           max_size=r)
    ).map(tuple)


@st.composite
def slices(draw, min_rank=1, max_rank=5):
    shape = draw(shapes(min_rank, max_rank, 7))
    starts, ends, steps = [], [], []
    for size in shape:
        step = draw(st.sampled_from([1, 1, 2, 3, -1, -2]))
        start = draw(st.integers(0, size - 1))
        end = draw(
            st.integers(start + 1, size) if step > 0 else st.integers(-1, start - 1)
        )
        starts.append(start)
        ends.append(end)
        steps.append(step)
    return shape, starts, ends, steps


# --------------------------------------------------------------------------------------
# Runtime kernels through ctypes
# --------------------------------------------------------------------------------------


@SETTINGS
@given(shape=shapes(), dtype=dtypes, cores=CORES, data=st.data())
def test_transpose(shape, dtype, cores, data):
    perm = data.draw(st.permutations(range(len(shape))))
    x = random_array(np.random.default_rng(len(shape)), shape, dtype)
    expected = np.transpose(x, perm)
    out = np.zeros(expected.shape, dtype)
    copy_with(transpose_copy(shape, perm), x, out, cores)
    bitwise(out, expected)


@st.composite
def broadcasts(draw):
    out = draw(shapes(0, 5, 5))
    drop = draw(st.integers(0, len(out)))
    shape = tuple(1 if draw(st.booleans()) else d for d in out[drop:])
    return shape, out


@SETTINGS
@given(shapes=broadcasts(), dtype=dtypes, cores=CORES, seed=SEEDS)
def test_broadcast_to(shapes, dtype, cores, seed):
    shape, out_shape = shapes
    x = random_array(np.random.default_rng(seed), shape, dtype)
    out = np.zeros(out_shape, dtype)
    copy_with(broadcast_copy(shape, out_shape), x, out, cores)
    bitwise(out, np.broadcast_to(x, out_shape))


@SETTINGS
@given(case=slices(), dtype=dtypes, cores=CORES, seed=SEEDS)
def test_slice(case, dtype, cores, seed):
    shape, starts, ends, steps = case
    x = random_array(np.random.default_rng(seed), shape, dtype)
    expected = numerics.slice_(x, starts, ends, steps)
    out = np.zeros(expected.shape, dtype)
    copy_with(slice_copy(shape, starts, ends, steps), x, out, cores)
    bitwise(out, expected)


@SETTINGS
@given(base=shapes(1, 5), dtype=dtypes, cores=CORES, data=st.data())
def test_concat(base, dtype, cores, data):
    axis = data.draw(st.integers(-len(base), len(base) - 1))
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    a = axis % len(base)
    in_shapes = [base[:a] + (n,) + base[a + 1 :] for n in sizes]
    rng = np.random.default_rng(len(sizes))
    inputs = [random_array(rng, s, dtype) for s in in_shapes]
    expected = np.concatenate(inputs, axis=axis)
    out = np.zeros(expected.shape, dtype)
    for x, copy in zip(inputs, concat_copies(in_shapes, axis)):
        copy_with(copy, x, out, cores)
    bitwise(out, expected)


@SETTINGS
@given(shape=shapes(1, 5, 5), dtype=dtypes, cores=CORES, data=st.data())
def test_gather(shape, dtype, cores, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    indices = data.draw(
        st.lists(st.integers(0, shape[axis] - 1), min_size=1, max_size=7)
    )
    x = random_array(np.random.default_rng(len(indices)), shape, dtype)
    expected = numerics.gather(x, indices, axis)
    out = np.zeros(expected.shape, dtype)
    table = (ctypes.c_int32 * len(indices))(*indices)
    outer, size, inner = split_axis(shape, axis)
    params = GatherParams(outer, size, inner, len(indices), table)
    fn = kernel_fn("gather", dtype)
    on_cores(cores, lambda: fn(ctypes.byref(params), pointer(x), pointer(out)))
    bitwise(out, expected)


@SETTINGS
@given(shape=shapes(1, 5, 5), dtype=dtypes, cores=CORES, inplace=st.booleans(),
       data=st.data())
def test_scatter(shape, dtype, cores, inplace, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    indices = data.draw(st.permutations(range(shape[axis])))
    indices = indices[: data.draw(st.integers(1, len(indices)))]
    rng = np.random.default_rng(len(indices))
    dest = random_array(rng, shape, dtype)
    values = random_array(rng, numerics.gather(dest, indices, axis).shape, dtype)
    expected = tn.scatter(dest, values, indices, axis)
    out = dest if inplace else np.zeros(shape, dtype)
    outer, size, inner = split_axis(shape, axis)
    positions = scatter_positions(size, indices)
    params = GatherParams(outer, size, inner, len(indices),
                          (ctypes.c_int32 * size)(*positions))
    fn = kernel_fn("scatter", dtype)
    on_cores(cores, lambda: fn(ctypes.byref(params), pointer(dest), pointer(values),
                               pointer(out)))
    bitwise(out, expected)


@SETTINGS
@given(case=slices(), dtype=dtypes, cores=CORES, seed=SEEDS)
def test_slice_grad(case, dtype, cores, seed):
    shape, starts, ends, steps = case
    out_shape = tuple(len(range(*a)) for a in zip(starts, ends, steps))
    dy = random_array(np.random.default_rng(seed), out_shape, dtype)
    expected = tn.slice_grad(dy, shape, starts, ends, steps)
    dx = np.full(shape, 7, dtype)
    params = struct(SliceGradParams, slice_grad(shape, starts, ends, steps).fields())
    fn = kernel_fn("slice_grad", dtype)
    on_cores(cores, lambda: fn(ctypes.byref(params), pointer(dy), pointer(dx)))
    bitwise(dx, expected)


@SETTINGS
@given(shape=shapes(1, 6, 4), cores=CORES, seed=SEEDS, data=st.data())
def test_pad(shape, cores, seed, data):
    """`edge_pad_f32`: the slice gradient's index map with the pad value as its fill."""
    pads = data.draw(st.lists(st.integers(0, 2), min_size=2 * len(shape),
                              max_size=2 * len(shape)))
    value = data.draw(st.sampled_from([0.0, -1.5, np.inf]))
    x = random_array(np.random.default_rng(seed), shape, np.float32)
    expected = numerics.pad(x, pads, value)
    y = np.full(expected.shape, 7, np.float32)
    params = struct(SliceGradParams, pad_fill(shape, pads).fields())
    fn = runtime().edge_pad_f32
    on_cores(cores, lambda: fn(ctypes.byref(params), ctypes.c_float(value), pointer(x),
                               pointer(y)))
    bitwise(y, expected)


@SETTINGS
@given(shape=shapes(1, 6, 5), keepdims=st.booleans(), seed=SEEDS, data=st.data())
def test_reduce(shape, keepdims, seed, data):
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1,
                              max_size=len(shape), unique_by=lambda a: a % len(shape)))
    x = random_array(np.random.default_rng(seed), shape, np.float32)
    params = struct(ReduceParams, reduce_fields(shape, axes))
    x64 = x.astype(np.float64)
    for name, reference in (("sum", np.sum), ("mean", np.mean)):
        expected = reference(x64, axis=tuple(axes), keepdims=keepdims)
        fn = getattr(runtime(), f"edge_reduce_{name}_f32")
        results = []
        for cores in (1, 2, 8):
            out = np.full(expected.shape, np.nan, np.float32)
            on_cores(cores, lambda fn=fn, out=out: fn(ctypes.byref(params), pointer(x),
                                                      pointer(out)))
            results.append(out)
        for out in results[1:]:
            bitwise(out, results[0])
        count = x.size // max(expected.size, 1)
        scale = np.sum(np.abs(x64), axis=tuple(axes), keepdims=keepdims)
        if name == "mean":
            scale = scale / count
        error = np.abs(results[0] - expected)
        np.testing.assert_array_less(error, 1e-6 * count * scale + 1e-30)


def test_reduce_sums_rows_then_totals():
    """The documented order: each row of the innermost reduced axis summed in float32,
    then the row sums; the same on any team size."""
    x = np.array([[1e8, 1.0, -1e8, 1.0], [3.0, 5.0, 7.0, 11.0]], np.float32)
    params = struct(ReduceParams, reduce_fields(x.shape, [0, 1]))
    out = np.zeros((), np.float32)
    runtime().edge_reduce_sum_f32(ctypes.byref(params), pointer(x), pointer(out))
    row0 = np.float32(np.float32(np.float32(1e8) + np.float32(1.0)) - np.float32(1e8)) + 1
    assert out == np.float32(row0 + np.float32(26.0))


# --------------------------------------------------------------------------------------
# Parameter algebra
# --------------------------------------------------------------------------------------


def test_canonical_merges_contiguous_axes():
    # NCHW -> NHWC: H and W stay together, N is size 1.
    copy = transpose_copy((1, 3, 4, 5), (0, 2, 3, 1)).canonical()
    assert copy.shape == (20, 3) and copy.src_strides == (1, 20)
    assert copy.dst_strides == (3, 1)
    # A contiguous slice along the outer axis is one run.
    copy = slice_copy((6, 4, 5), (2, 0, 0), (5, 4, 5), (1, 1, 1)).canonical()
    assert copy.shape == (60,) and copy.src_offset == 40
    # Rank 0 and all-size-1 copies are one element.
    assert transpose_copy((), ()).canonical().shape == (1,)
    assert broadcast_copy((1, 1), (1, 1)).canonical().shape == (1,)
    # A concat slab is (outer, slab).
    _, second = concat_copies([(2, 3, 4), (2, 1, 4)], 1)
    assert second.canonical().shape == (2, 4) and second.dst_offset == 12
    assert second.canonical().dst_strides == (16, 1)


def test_slice_grad_params_merge_whole_inner_axes():
    grad = slice_grad((6, 4, 5), (1, 0, 0), (4, 4, 5), (1, 1, 1)).canonical()
    assert grad.shape == (120,) and grad.first == (20,) and grad.count == (60,)
    grad = slice_grad((6, 4), (5, 0), (-1, 4), (-2, 1)).canonical()
    assert grad.first == (1, 0) and grad.step == (2, 1) and grad.dy_strides == (-4, 1)
    assert grad.dy_offset == 8


def test_reduce_fields_merge_axes():
    fields = reduce_fields((2, 3, 4, 5), [-1, 2])
    assert fields["rank"] == 1 and fields["shape"][:1] == [6]
    assert fields["reduced_rank"] == 1 and fields["reduced_shape"][:1] == [20]
    fields = reduce_fields((2, 3, 4), [0, 2])
    assert fields["reduced_shape"][:2] == [2, 4]
    assert fields["reduced_strides"][:2] == [12, 1]
    assert dense_strides((2, 3, 4)) == (12, 4, 1)


# --------------------------------------------------------------------------------------
# Emitters: kernel ops printed, compiled with the runtime and run against the
# interpreter
# --------------------------------------------------------------------------------------

L2 = StringAttr("L2")


def _tensor(buffer):
    """A tensor value of the buffer's type, to build the kernel op's tensor twin on."""
    return Block(arg_types=[kernel.tensor_type(buffer.type)]).args[0]


def _case(types, build):
    """The kernel op that `build(*buffers)` describes as (tensor op, ins, outs)."""
    buffers = Block(arg_types=[MemRefType(t, s, memory_space=L2) for t, s in types]).args
    tensor_op, inputs, outputs = build(*buffers)
    return kernel.KERNEL_OF[type(tensor_op)](inputs, outputs, dict(tensor_op.properties))


def _emitter_cases():
    """(name, kernel op) per case: every emitter, several element types, in place."""
    from xdsl.dialects.builtin import f32, i8, i32, i64

    t = _tensor
    return [
        ("transpose-f32", _case(
            [(f32, (3, 4, 5, 6)), (f32, (5, 3, 6, 4))],
            lambda x, y: (nn.TransposeOp(t(x), (2, 0, 3, 1)), [x], [y]))),
        ("transpose-i8", _case(
            [(i8, (7, 9)), (i8, (9, 7))],
            lambda x, y: (nn.TransposeOp(t(x), (1, 0)), [x], [y]))),
        ("broadcast-i64", _case(
            [(i64, (3, 1)), (i64, (4, 3, 5))],
            lambda x, y: (nn.BroadcastToOp(t(x), (4, 3, 5)), [x], [y]))),
        ("slice-f32", _case(
            [(f32, (6, 8, 3)), (f32, (3, 2, 3))],
            lambda x, y: (nn.SliceOp(t(x), (5, 1, 0), (-1, 7, 3), (-2, 3, 1)), [x], [y]))),
        ("concat-i32", _case(
            [(i32, (2, 3, 4)), (i32, (2, 1, 4)), (i32, (2, 5, 4)), (i32, (2, 9, 4))],
            lambda a, b, c, y: (nn.ConcatOp([t(a), t(b), t(c)], 1), [a, b, c], [y]))),
        ("gather-f32", _case(
            [(f32, (2, 5, 3)), (f32, (2, 4, 3))],
            lambda x, y: (nn.GatherOp(t(x), (3, 0, 3, 2), 1), [x], [y]))),
        ("scatter-f32", _case(
            [(f32, (6, 3)), (f32, (2, 3)), (f32, (6, 3))],
            lambda d, v, y: (train.ScatterOp(t(d), t(v), (4, 1), 0), [d, v], [y]))),
        ("scatter-inplace-f32", _case(
            [(f32, (2, 6, 3)), (f32, (2, 3, 3))],
            lambda d, v: (train.ScatterOp(t(d), t(v), (0, 5, 2), 1), [d, v], [d]))),
        ("slice-grad-f32", _case(
            [(f32, (3, 3)), (f32, (7, 8))],
            lambda dy, dx: (train.SliceGradOp(t(dy), kernel.tensor_type(dx.type), (1, 7),
                                              (6, -1), (2, -3)), [dy], [dx]))),
        ("pad-f32", _case(
            [(f32, (2, 3, 4)), (f32, (3, 3, 7))],
            lambda x, y: (nn.PadOp(t(x), (1, 0, 2, 0, 0, 1), -0.5), [x], [y]))),
        ("reduce-sum-keepdims", _case(
            [(f32, (5, 3, 7)), (f32, (1, 3, 1))],
            lambda x, y: (nn.ReduceSumOp(t(x), (0, 2), keepdims=True), [x], [y]))),
        ("reduce-mean-all", _case(
            [(f32, (4, 3, 5)), (f32, ())],
            lambda x, y: (nn.ReduceMeanOp(t(x), (0, 1, 2)), [x], [y]))),
        ("reduce-mean-last", _case(
            [(f32, (9, 33)), (f32, (9,))],
            lambda x, y: (nn.ReduceMeanOp(t(x), (-1,)), [x], [y]))),
    ]


CASES = _emitter_cases()


def _case_source(index: int, op) -> str:
    ctx = FunctionContext(None, None)  # type: ignore[arg-type]
    buffers = list(dict.fromkeys([*op.inputs, *op.outputs]))
    lines = [f"static void case_{index}_body(void *arg) {{",
             "  void *const *bufs = (void *const *)arg;"]
    for i, value in enumerate(buffers):
        name = ctx.fresh(f"buf{i}")
        ctx.names[value] = name
        type_ = ctype(value.type)
        lines.append(f"  {type_} *const {name} = ({type_} *)bufs[{i}];")
    EMITTERS[type(op)](ctx, op)
    lines += ctx.declarations + ctx.statements + ["}", ""]
    lines += [f"void case_{index}(int cores, void *const *bufs) {{",
              "  edge_set_num_cores(cores);",
              f"  edge_fork(case_{index}_body, (void *)bufs);",
              "  edge_set_num_cores(1);", "}", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def emitted() -> ctypes.CDLL:
    build = Path(tempfile.mkdtemp(prefix="edge_shape_emitters_"))
    source = build / "cases.c"
    source.write_text('#include "edge_runtime.h"\n\n' + "\n".join(
        _case_source(i, op) for i, (_, op) in enumerate(CASES)
    ))
    library = build / "libcases.so"
    sources = sorted(str(p) for p in RUNTIME.glob("*.c"))
    result = subprocess.run(
        ["gcc", *CFLAGS, f"-I{RUNTIME}", str(source), *sources, "-o", str(library),
         "-lm"],
        check=False, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(library))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[name for name, _ in CASES])
def test_emitted_kernel_matches_interpreter(emitted, index):
    name, op = CASES[index]
    op.verify()
    buffers = list(dict.fromkeys([*op.inputs, *op.outputs]))

    def fresh():
        """The inputs' values (the same on every call) and outputs full of 3s."""
        values = {}
        for position, value in enumerate(buffers):
            dtype = numpy_dtype(value.type.element_type)
            shape = tuple(value.type.get_shape())
            rng = np.random.default_rng(100 * index + position)
            values[value] = (random_array(rng, shape, dtype) if value in op.inputs
                             else np.full(shape, 3, dtype))
        return values

    reference = fresh()
    make_interpreter(ModuleOp([])).run_op(
        op, tuple(reference[v].copy() if v not in op.outputs else reference[v]
                  for v in [*op.inputs, *op.outputs])
    )
    expected = [reference[v] for v in op.outputs]
    results = []
    for cores in (1, 2, 8):
        values = fresh()
        arrays = [values[v] for v in buffers]
        table = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        getattr(emitted, f"case_{index}")(cores, table)
        results.append([values[v] for v in op.outputs])
    for outputs in results:
        for actual, wanted in zip(outputs, expected):
            if name.startswith("reduce"):
                np.testing.assert_allclose(actual, wanted, rtol=1e-5, atol=1e-6)
            else:
                bitwise(actual, wanted)
    for outputs in results[1:]:
        for actual, first in zip(outputs, results[0]):
            bitwise(actual, first)


def _emit(op) -> FunctionContext:
    ctx = FunctionContext(None, None)  # type: ignore[arg-type]
    for value in [*op.inputs, *op.outputs]:
        ctx.names[value] = ctx.fresh("buf")
    EMITTERS[type(op)](ctx, op)
    return ctx


def test_rank_above_six_only_when_axes_merge():
    """Rank 7 prints when merging axes brings it to 6, else the error names the op."""
    from xdsl.dialects.builtin import f32

    def transpose(shape, perm):
        out = tuple(shape[p] for p in perm)
        return _case([(f32, shape), (f32, out)],
                     lambda x, y: (nn.TransposeOp(_tensor(x), perm), [x], [y]))

    merges = transpose((2, 3, 2, 3, 2, 3, 2), (1, 0, 2, 3, 4, 5, 6))
    assert "edge_strided_copy_b32" in _emit(merges).statements[-1]
    reverses = transpose((2, 3, 2, 3, 2, 3, 2), (6, 5, 4, 3, 2, 1, 0))
    with pytest.raises(EmitError, match=r"kernel.transpose: rank 7 > 6"):
        _emit(reverses)


def test_every_shape_kernel_op_has_an_emitter():
    ops = [kernel.TransposeKernelOp, kernel.BroadcastToKernelOp, kernel.SliceKernelOp,
           kernel.ConcatKernelOp, kernel.GatherKernelOp, kernel.ScatterKernelOp,
           kernel.SliceGradKernelOp, kernel.ReduceSumKernelOp, kernel.ReduceMeanKernelOp,
           kernel.PadKernelOp]
    assert all(EMITTERS.get(op) is not None for op in ops)
    assert shape_kernels.MAX_RANK == 6


# --------------------------------------------------------------------------------------
# The RISC-V target
# --------------------------------------------------------------------------------------


def test_compiles_for_riscv_without_library_calls(tmp_path):
    """The RISC-V build compiles, and calls nothing but the platform and its own
    functions: no libgcc helpers (64-bit division, soft float) and no libc."""
    assembly = compile_riscv(RUNTIME / "edge_kernels_shape.c", tmp_path / "shape.s", True)
    assert library_calls(assembly) == set()
    compile_riscv(RUNTIME / "edge_kernels_shape.c", tmp_path / "shape.o")
