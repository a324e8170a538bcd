"""`edge-opt profile`: the generated step on emulated RV32 cores, counted exactly.

`profile_step(module, soc, cores)` writes the module's C project (`emit_c_project`: the
test batch and the interpreter's results), prints `network.c` again with a mark before
each kernel call (`edge_profile_call`), builds it with a driver for `-DEDGE_EMULATED`
with zig for RV32 + CORE-V (`edge_opt.backends.rv32.emulator.build_elf`) and runs one
step on a team of `cores` emulated cores (`edge_opt.backends.rv32.team`). It checks the
step's results (loss or outputs, and every parameter after a training step) against
the interpreter's, then reports per kernel call and in total:

- instructions per core, and the step's instructions: the instructions outside the
  team plus, between consecutive barriers, those of the slowest core (the others wait);
- FLOPs (the model's convention, `edge_opt.ir.cost`) and FLOP per instruction per core:
  the FLOPs shared by the cores over the slowest core's instructions with its waits (an
  in-order single-issue core retires at most one instruction per cycle, so this bounds
  FLOP per cycle per core from above);
- the imbalance: the slowest core's instructions over the mean;
- the stack a core uses at most (the high-water mark of its painted stack);
- an *estimated* cycle count: the step's instructions, plus the slowest core's
  load-use stalls (one cycle each) and taken branches times the SoC's
  `BRANCH_PENALTY_CYCLES`, plus the estimated DMA time of the step (`report`'s: bytes
  over bandwidth and a setup per transfer, not overlapped with compute: an upper bound).
"""

from __future__ import annotations

import math
import re
import struct
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp
from xdsl.ir import Operation, SSAValue

from edge_opt.backends.c.compile import emit_c_project, tested_function
from edge_opt.backends.c.emitter import (
    EmitError,
    ctype,
    io_identifiers,
    public_name,
    returns_scalar,
)
from edge_opt.backends.c.sources import emit_sources
from edge_opt.backends.c.tiles import clipped_kernels
from edge_opt.backends.rv32.emulator import (
    BASE,
    COREV_CPU,
    Program,
    build_elf,
    load_segments,
)
from edge_opt.backends.rv32.team import SERIAL, STACK_BYTES, Counts, Team
from edge_opt.dialects import kernel, tile
from edge_opt.ir.cost import flops
from edge_opt.ir.dma_report import dma_figures
from edge_opt.ir.session import Session, get_function
from edge_opt.passes.lower_to_buffers import lower_to_buffers
from edge_opt.support.socs import Soc, get_soc

TOLERANCE = 1e-4
"""Relative (absolute below 1): the emulated step against the interpreter's."""
DMA_ENGINE = ("copy_box",)
"""The functions of the host DMA shim that move the bytes (runtime/edge_dma.c): the
cluster's DMA engine does that work on the target, not a core; its time is the DMA
estimate."""
BRANCH_PENALTY_CYCLES = 2
"""Cycles lost per taken branch or jump on a RI5CY / CV32E40P core (its user manual: a
taken branch takes 3 cycles, a jump 2; one figure for both, an estimate)."""


@dataclass(frozen=True)
class CallProfile:
    number: int
    function: str
    op: str
    """The kernel's tensor op (`nn.linear`, `train.conv2d_grad_weight`, ...)."""
    output: str
    tiles: int
    flops: int
    instructions: tuple[int, ...]
    """Per core."""
    waits: tuple[int, ...]
    """Per core: instructions' worth of waiting at this call's barriers."""
    stalls: int
    """Load-use stalls of the slowest core."""
    taken_branches: int
    """Taken branches and jumps of the slowest core."""

    def flop_per_instruction(self, cores: int) -> float:
        """Per core: the call's FLOPs shared by the cores, over its slowest core's
        instructions with waits."""
        return self.flops / (cores * self.slowest) if self.slowest else 0.0

    @property
    def slowest(self) -> int:
        return max(i + w for i, w in zip(self.instructions, self.waits, strict=True))

    @property
    def imbalance(self) -> float:
        mean = sum(self.instructions) / len(self.instructions)
        return max(self.instructions) / mean if mean else 1.0


@dataclass(frozen=True)
class Profile:
    model: str
    function: str
    soc: str
    cores: int
    calls: tuple[CallProfile, ...]
    serial_instructions: int
    """Outside the team (the function's wrapper, on one core)."""
    unmarked_instructions: tuple[int, ...]
    """Per core: in the team but before its first kernel call (unpacking arguments)."""
    step_instructions: int
    flops: int
    stalls: int
    taken_branches: int
    dma_cycles: int
    estimated_cycles: int
    checked: str
    """What was compared with the interpreter, and the largest difference."""
    stack_bytes: int = 0
    """The most stack any core's share of the step used (its high-water mark on the
    emulated core): the generated step must fit the cluster's per-core stacks."""

    @property
    def flop_per_instruction(self) -> float:
        """Per core: the step's FLOPs shared by the cores, over the instructions of the
        slowest core with its barrier waits."""
        return self.flops / (self.cores * self.step_instructions) if self.step_instructions \
            else 0.0

    @property
    def imbalance(self) -> float:
        per_core = [sum(c.instructions[k] for c in self.calls) for k in range(self.cores)]
        mean = sum(per_core) / self.cores
        return max(per_core) / mean if mean else 1.0

    def to_json(self) -> dict:
        data = asdict(self)
        data["flop_per_instruction"] = round(self.flop_per_instruction, 4)
        data["imbalance"] = round(self.imbalance, 4)
        for call, record in zip(self.calls, data["calls"], strict=True):
            record["slowest_with_waits"] = call.slowest
            record["flop_per_instruction"] = round(call.flop_per_instruction(self.cores), 4)
            record["imbalance"] = round(call.imbalance, 4)
        return data


def profile_step(module: ModuleOp, soc: str | None = None, cores: int | None = None,
                 arrays: dict[str, np.ndarray] | None = None, weights: str | None = None,
                 model: str = "model",
                 progress: Callable[[int], None] | None = None) -> Profile:
    """Profiles one step of `module` (the module docstring); raises `EmitError` when the
    emulated results differ from the interpreter's."""
    target = get_soc(soc or "host")
    cores = cores or target.cores
    if not 1 <= cores <= 8:
        raise EmitError(f"--cores must be 1 to 8, got {cores}")
    lowered = lower_to_buffers(module, soc, weights)
    function = tested_function(lowered)
    with tempfile.TemporaryDirectory(prefix="edge-opt-profile-") as tmp:
        project = Path(tmp) / "project"
        data = emit_c_project(lowered, project, arrays, steps=1)
        calls: dict[Operation, int] = {}
        (project / "network.c").write_text(emit_sources(lowered, profile=calls)["network.c"])  # type: ignore[arg-type]
        fn = get_function(lowered, function)
        (project / "profile_main.c").write_text(_driver(fn))
        runtime = project / "runtime"
        sources = [project / "profile_main.c", project / "network.c",
                   project / "test_data.c", project / "params.S",
                   *sorted(runtime.glob("*.c"))]
        elf = build_elf(sources, project / "profile.elf", COREV_CPU,
                        include=[project, runtime], cwd=project,
                        defines=["EDGE_EMULATED", f"EDGE_PROFILE_CORES={cores}"])
        program = Program(elf, _memory(elf.read_bytes(), cores))
        counts = Team(program, cores, progress, uncounted=DMA_ENGINE).run()
        checked = _check(program, lowered, fn, dict(data.inputs))
    return _summary(lowered, function, target, cores, calls, counts, checked, model)


def _driver(function: func.FuncOp) -> str:
    """`entry`: init, the team size, then one call of the function between two marks,
    its results and the parameter table left in globals for the emulator to read."""
    inputs, outputs = io_identifiers(function)
    args = [f"edge_test_{n}" for n in inputs]
    lines = ['#include "network.h"', '#include "test_data.h"', '#include "edge_platform.h"',
             '__attribute__((noinline)) void mark(void) { __asm__ volatile(""); }',
             "/* the freestanding build's memory functions (struct copies call them) */",
             "void *memcpy(void *d, const void *s, size_t n) {",
             "  volatile unsigned char *a = d; const unsigned char *b = s;",
             "  while (n--) *a++ = *b++;",
             "  return d;",
             "}",
             "void *memset(void *d, int c, size_t n) {",
             "  volatile unsigned char *a = d;",
             "  while (n--) *a++ = (unsigned char)c;",
             "  return d;",
             "}",
             "const edge_param_t *edge_profile_params;",
             "size_t edge_profile_param_count;"]
    call = f"{public_name(function)}({', '.join(args + [f'edge_profile_out{i}' for i in range(len(outputs))])})"
    if returns_scalar(function):
        lines.append("float edge_profile_out0[1];")
        call = f"edge_profile_out0[0] = {public_name(function)}({', '.join(args)})"
    else:
        for i, t in enumerate(function.function_type.outputs.data):
            assert isinstance(t, MemRefType)
            lines.append(f"{ctype(t)} edge_profile_out{i}[{max(math.prod(t.get_shape()), 1)}];")
    lines += [
        '__attribute__((section(".text.entry"))) void entry(void) {',
        "  if (init() != 0) for (;;) {}",
        "  edge_set_num_cores(EDGE_PROFILE_CORES);",
        "  edge_profile_params = edge_params(&edge_profile_param_count);",
        "  mark();",
        f"  {call};",
        "  mark();",
        "  for (;;) {}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _memory(elf: bytes, cores: int) -> int:
    """Bytes the emulator maps: the program's segments and a stack per core and main."""
    end = max((vaddr + memsz for _, vaddr, _, memsz in load_segments(elf)), default=BASE)
    return end - BASE + (cores + 2) * STACK_BYTES


def _read_array(program: Program, address: int, count: int, dtype: np.dtype) -> np.ndarray:
    data = bytes(program.uc.mem_read(address, count * dtype.itemsize))
    return np.frombuffer(data, dtype).copy()


def _check(program: Program, lowered: ModuleOp, function: func.FuncOp,
           batch: dict[str, np.ndarray]) -> str:
    """Compares the emulated results with the interpreter's; raises `EmitError`."""
    session = Session(lowered)
    expected = session.run(function.sym_name.data, batch)
    worst = 0.0
    compared = 0

    def compare(name: str, actual: np.ndarray, reference: np.ndarray) -> None:
        nonlocal worst, compared
        reference = np.asarray(reference).reshape(-1)
        actual = actual.reshape(-1).astype(reference.dtype)
        scale = np.maximum(np.abs(reference.astype(np.float64)), 1.0)
        error = float(np.max(np.abs(actual - reference) / scale)) if reference.size else 0.0
        if not error <= TOLERANCE:
            raise EmitError(f"profile: the emulated step's {name} differs from the "
                            f"interpreter's (relative error {error:.3g} > {TOLERANCE})")
        worst, compared = max(worst, error), compared + reference.size

    for i, value in enumerate(expected):
        dtype = np.dtype(value.dtype)
        compare(f"result {i}", _read_array(program, program.symbols[f"edge_profile_out{i}"],
                                           max(value.size, 1), dtype), value)
    table = struct.unpack("<I", program.read("edge_profile_params", 4))[0]
    count = struct.unpack("<I", program.read("edge_profile_param_count", 4))[0]
    for i in range(count):
        name_at, data_at, n, _ = struct.unpack(
            "<IIII", bytes(program.uc.mem_read(table + 16 * i, 16)))
        raw = bytes(program.uc.mem_read(name_at, 256))
        name = raw[:raw.index(b"\0")].decode()
        reference = session.params[name]
        compare(f"parameter {name}", _read_array(program, data_at, n,
                                                 np.dtype(reference.dtype)), reference)
    return (f"{len(expected)} result(s) and {count} parameter(s) ({compared:,} values) "
            f"equal the interpreter's within {worst:.2g} (tolerance {TOLERANCE})")


def call_flops(op: kernel.KernelOp) -> tuple[int, int]:
    """(tiles, FLOPs) of a kernel call: a tiled one's summed over its tiles' shapes."""
    loop = op.parent_op()
    if not isinstance(loop, tile.ForOp):
        return 1, flops(op.tensor_equivalent())
    schedule = tile.schedule_of(loop.schedule)
    return schedule.count, sum(n * flops(clipped.tensor_equivalent())  # type: ignore[attr-defined]
                               for _, n, clipped in clipped_kernels(op, schedule))


def _label(value: SSAValue) -> str:
    """The buffer a kernel writes, by name (through an L1 slot: the slot's buffer)."""
    owner = value.owner
    if isinstance(owner, tile.SlotOp):
        return re.sub(r"_(in|out|partial)\d*$", "", owner.slots[0].name_hint or "")
    return value.name_hint or ""


def _summary(lowered: ModuleOp, function: str, soc: Soc, cores: int,
             calls: dict[Operation, int], counts: Counts, checked: str,
             model: str) -> Profile:
    result = []
    slowest_stalls = slowest_taken = 0
    for op, number in sorted(calls.items(), key=lambda item: item[1]):
        assert isinstance(op, kernel.KernelOp)
        parent = op.parent_op()
        while parent is not None and not isinstance(parent, func.FuncOp):
            parent = parent.parent_op()
        assert isinstance(parent, func.FuncOp)
        if parent.sym_name.data != function:
            continue
        tiles, op_flops = call_flops(op)
        instructions = tuple(counts.instructions[k].get(number, 0) for k in range(cores))
        waits = tuple(counts.waits[k].get(number, 0) for k in range(cores))
        core = max(range(cores), key=lambda k: instructions[k] + waits[k])
        stalls = counts.stalls[core].get(number, 0)
        taken = counts.taken[core].get(number, 0)
        slowest_stalls += stalls
        slowest_taken += taken
        label = _label(op.outputs[-1]) if op.outputs else ""
        result.append(CallProfile(number, function, op.TENSOR_OP.name, label, tiles,
                                  op_flops, instructions, waits, stalls, taken))
    dma = dma_figures(lowered, soc).get(function, {}).get("estimated_cycles", 0) \
        if soc.tiled else 0
    estimated = (counts.step_instructions + slowest_stalls
                 + BRANCH_PENALTY_CYCLES * slowest_taken + int(dma))
    unmarked = tuple(counts.instructions[k].get(SERIAL, 0) for k in range(cores))
    return Profile(model, function, soc.name, cores, tuple(result), counts.serial,
                   unmarked, counts.step_instructions, sum(c.flops for c in result), slowest_stalls,
                   slowest_taken, int(dma), estimated, checked, max(counts.stack_bytes))


def format_profile(profile: Profile) -> str:
    """The profile as a table (one row per kernel call, then the totals)."""
    cores = profile.cores
    lines = [
        (f"profile of @{profile.function} of {profile.model} on {profile.soc} "
         f"({cores} emulated RV32 core(s), CORE-V): exact instruction counts"),
        f"check: {profile.checked}",
        "",
        (f"{'#':>4} {'op':<34} {'tiles':>5} {'FLOPs':>12} {'slowest core':>13} "
         f"{'max wait':>10} {'FLOP/instr':>10} {'imbalance':>9}"),
    ]
    for call in profile.calls:
        fpi = call.flop_per_instruction(cores)
        lines.append(
            f"{call.number:>4} {call.op + ' -> ' + call.output:<34.34} {call.tiles:>5} "
            f"{call.flops:>12,} {call.slowest:>13,} {max(call.waits):>10,} {fpi:>10.3f} "
            f"{call.imbalance:>9.3f}")
    lines += [
        "",
        (f"step: {profile.step_instructions:,} instructions on the slowest core with "
         f"barrier waits ({profile.serial_instructions:,} outside the team), "
         f"{profile.flops:,} FLOPs, {profile.flop_per_instruction:.3f} FLOP/instruction "
         "per core, "
         f"imbalance {profile.imbalance:.3f} (slowest core / mean), "
         f"{profile.stack_bytes:,} B of stack per core at most"),
        (f"estimated cycles (an estimate, not a measurement): "
         f"{profile.estimated_cycles:,} = instructions + {profile.stalls:,} load-use stalls "
         f"+ {profile.taken_branches:,} taken branches x {BRANCH_PENALTY_CYCLES} + "
         f"{profile.dma_cycles:,} DMA cycles (not overlapped)"),
    ]
    return "\n".join(lines)
