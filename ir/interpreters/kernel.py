"""Interpreter semantics of the `kernel` dialect, byte-accurate once memory is planned.

Memory is modelled as it will be on the device (`Memory`): each memory level is one
byte array (the arena) and, after `plan-memory`, a `kernel.alloc` is a NumPy view of its
bytes at the planned offset; parameters are views into a persistent region per level.
So a wrong plan (two live buffers overlapping) or a read of a buffer before it is
written changes the numbers, and equivalence tests catch it. Before planning, each
`kernel.alloc` gets fresh memory filled with a poison pattern (NaN for floats).

A kernel op runs its tensor-level twin's semantics (the `nn`/`train` interpreter) on the
contents of its input buffers and writes the results into its output buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import MemRefType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Operation

from edge_opt.dialects import kernel
from edge_opt.ir.interpreters.nn import param_state
from edge_opt.support.dtypes import numpy_dtype

POISON_BYTE = 0xFF
"""Fill of unwritten memory: 0xFFFFFFFF is a NaN as float32 (and as float64)."""


@dataclass
class Memory:
    """The arenas of one run: `arenas[level]` holds every `kernel.alloc` of that level
    (offsets from `plan-memory`); `None` before planning."""

    arenas: dict[str, np.ndarray] = field(default_factory=dict)

    @staticmethod
    def with_sizes(sizes: dict[str, int]) -> Memory:
        return Memory(
            {level: np.full(size, POISON_BYTE, dtype=np.uint8) for level, size in sizes.items()}
        )


def memory_state(interpreter: Interpreter) -> Memory:
    return interpreter.get_data(KernelFunctions, "memory", Memory)


def view(arena: np.ndarray, offset: int, type: MemRefType) -> np.ndarray:
    """The buffer of `type` at byte `offset` of `arena`, as a writable NumPy view."""
    dtype = numpy_dtype(type.element_type)
    size = type.element_count() * dtype.itemsize
    if offset < 0 or offset + size > arena.size:
        raise IndexError(
            f"buffer {type} at offset {offset} overruns its arena ({arena.size} B)"
        )
    return arena[offset : offset + size].view(dtype).reshape(type.get_shape())


def fresh(type: MemRefType) -> np.ndarray:
    dtype = numpy_dtype(type.element_type)
    raw = np.full(type.element_count() * dtype.itemsize, POISON_BYTE, dtype=np.uint8)
    return raw.view(dtype).reshape(type.get_shape())


class KernelFunctions(InterpreterFunctions):
    """Registered (with one `_run_kernel` entry per kernel op) below."""

    @impl(kernel.AllocOp)
    def run_alloc(self, interpreter: Interpreter, op: kernel.AllocOp, args: tuple):
        assert isinstance(op.result.type, MemRefType)
        level = kernel.memory_level(op.result.type)
        arena = memory_state(interpreter).arenas.get(level)
        if op.offset is None or arena is None:
            return (fresh(op.result.type),)
        return (view(arena, op.offset.value.data, op.result.type),)

    @impl(kernel.GetParamOp)
    def run_get_param(self, interpreter: Interpreter, op: kernel.GetParamOp, args: tuple):
        return (param_state(interpreter)[op.param.string_value()],)

    @impl(kernel.ConstantOp)
    def run_constant(self, interpreter: Interpreter, op: kernel.ConstantOp, args: tuple):
        value = np.array(op.array())
        value.flags.writeable = False
        return (value,)

    @impl(kernel.ViewOp)
    def run_view(self, interpreter: Interpreter, op: kernel.ViewOp, args: tuple):
        assert isinstance(op.result.type, MemRefType)
        reshaped = args[0].reshape(op.result.type.get_shape())
        assert np.shares_memory(reshaped, args[0]) or reshaped.size == 0
        return (reshaped,)

    @impl(kernel.CopyOp)
    def run_copy(self, interpreter: Interpreter, op: kernel.CopyOp, args: tuple):
        np.copyto(args[1], args[0])
        return ()


def _run_kernel(self: KernelFunctions, interpreter: Interpreter, op: Operation,
                args: tuple) -> tuple:
    assert isinstance(op, kernel.KernelOp)
    interpreter.interpreter_assert(
        all(a is not None for a in args), f"{op.name} on a tile that has no window"
    )
    twins = interpreter.get_data(KernelFunctions, "twins", dict)
    # In a tiled loop, the ragged last tile runs the kernel on smaller views.
    shapes = tuple(a.shape for a in args)
    twin = twins.get((op, shapes))
    if twin is None:
        types = tuple(tuple(v.type.get_shape()) for v in op.operands)
        twins[op, shapes] = twin = op.tensor_equivalent(None if shapes == types else shapes)
    count = len(op.inputs)
    inputs, outputs = args[:count], args[count:]
    # A kernel may write any part of an output before it has read all of its inputs
    # (a convolution writes row by row): an output that overlaps an input it may not
    # run in place over would clobber it. Model that: such outputs are poisoned first.
    for i, buffer in enumerate(outputs):
        in_place = any(op.outputs[i] == op.inputs[j] for j in op.INPLACE.get(i, ()))
        if not in_place:
            buffer.reshape(-1).view(np.uint8)[...] = POISON_BYTE
    # Inputs are read in full before any output is written, as a kernel that may run
    # in place must do too.
    results = interpreter.run_op(twin, tuple(np.array(a) for a in inputs))
    # A workspace (the last output of a kernel that has one) stays poisoned: what a
    # kernel leaves in its scratch buffer is undefined.
    for buffer, value in zip(outputs[: len(op.result_outputs())], results, strict=True):
        np.copyto(buffer, value)
    return ()


for _op in kernel.KERNEL_OPS:
    setattr(KernelFunctions, f"run_{_op.name.split('.')[1]}", impl(_op)(_run_kernel))
register_impls(KernelFunctions)
