"""Checks of runtime kernels beyond their numbers: multi-core runs and the RISC-V build.

Running a runtime kernel on a team of several cores (POSIX threads), through ctypes:
`on_cores(k, kernel, *args)` sets the team size to `k`, forks a team whose body calls
`kernel(*args)` on every core (as generated code does) and restores the team of one.
The kernels release the GIL while they run, so the cores really run concurrently and
meet at the kernels' barriers. Used to check that a kernel's results do not depend on
the number of cores, bit for bit.

`emit_kernel(op_type, inputs, outputs, **properties)` builds a kernel op on buffers
named `b0`, `b1`, ... and returns the `FunctionContext` its C emitter printed into
(`emit_op` for an op already built); `l2_buffer(*shape)` is an L2 buffer type.

`riscv_calls(source)` compiles one runtime source for the target ISA (RV32IMCF with the
CORE-V extensions, ilp32f, as BRIEF.md section 6 says) and returns the functions its code
calls: a kernel may call only the runtime (`edge_*`) and its own static helpers, never
libgcc (`__divdi3` for a 64-bit division...) or libm.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from c_runtime import RUNTIME, runtime
from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp, StringAttr, f32
from xdsl.ir import Attribute, Block, Operation, SSAValue

from edge_opt.backends.c.emitter import EMITTERS, FunctionContext, ModulePrinter

RISCV_CFLAGS = [
    "-target", "riscv32-freestanding-none",
    "-mcpu=generic_rv32+m+c+f+xcvsimd+xcvmem+xcvmac+xcvalu+xcvbi",
    "-mabi=ilp32f", "-O2", "-fno-math-errno", "-Wall", "-Werror",
    "-Wno-unused-command-line-argument",
]

_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)

CORE_COUNTS = (1, 2, 3, 8)


def on_cores(cores: int, kernel, *args) -> None:
    lib = runtime()
    failures: list[BaseException] = []

    def body(_):
        try:
            kernel(*args)
        except BaseException as e:  # noqa: BLE001  (reported below, not lost in C)
            failures.append(e)

    callback = _BODY(body)
    lib.edge_set_num_cores(cores)
    try:
        lib.edge_fork(callback, None)
    finally:
        lib.edge_set_num_cores(1)
    if failures:
        raise failures[0]


def l2_buffer(*shape: int, element: Attribute = f32) -> MemRefType:
    return MemRefType(element, shape, memory_space=StringAttr("L2"))


def emit_op(op: Operation, buffers: Sequence[SSAValue],
            function: func.FuncOp | None = None) -> FunctionContext:
    """The C `op`'s emitter prints, `buffers` named `b0`, `b1`, ..."""
    context = FunctionContext(ModulePrinter(ModuleOp([])),
                              function or func.FuncOp("f", ((), ())))
    for i, buffer in enumerate(buffers):
        context.names[buffer] = f"b{i}"
    EMITTERS[type(op)](context, op)
    return context


def emit_kernel(op_type: type[Operation], input_types: Sequence[Attribute],
                output_types: Sequence[Attribute], **properties: Attribute
                ) -> FunctionContext:
    """The C the emitter prints for an `op_type` on fresh buffers of these types."""
    block = Block(arg_types=[*input_types, *output_types])
    args = list(block.args)
    op = op_type(args[: len(input_types)], args[len(input_types):], properties)
    return emit_op(op, args)


def riscv_calls(source: str) -> set[str]:
    """External functions called by the RISC-V code of `backends/c/runtime/<source>`
    (compile errors fail the test)."""
    out = Path(tempfile.mkdtemp(prefix="edge_riscv_")) / "kernel.s"
    subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", *RISCV_CFLAGS, f"-I{RUNTIME}", "-S",
         str(RUNTIME / source), "-o", str(out)],
        check=True, capture_output=True, text=True,
    )
    assembly = out.read_text(errors="replace")
    defined = set(re.findall(r"^([A-Za-z_.$][\w.$]*):", assembly, re.MULTILINE))
    called = set(re.findall(r"^\s+(?:call|tail|jal)\s+(?:ra,\s*)?([A-Za-z_.$][\w.$]*)",
                            assembly, re.MULTILINE))
    return {name for name in called if name not in defined}


TEAM_DRIVER = """#include "edge_runtime.h"
__attribute__((noinline)) void mark(void) { __asm__ volatile(""); }
volatile int32_t team = 1;
%(declarations)s
static void body(void *arg) {
  (void)arg;
%(calls)s
}
__attribute__((section(".text.entry"))) void entry(void) {
  edge_set_num_cores(team);
  mark();
  edge_fork(body, 0);
  mark();
  for (;;) {}
}
"""
"""An emulated RV32 program: `calls` run by a team of `team` cores (a global the test
sets before running) between the two marks, after `declarations`."""
