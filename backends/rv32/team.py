"""A team of cores on one emulated RV32 machine: per core and per kernel call, the
instructions each core executes, and the barrier waits of the slowest core.

The program is built with `-DEDGE_EMULATED` (runtime/edge_platform.h): its team calls
`edge_fork(body, arg)`, `edge_barrier()` and `edge_profile_call(id)` as on the target,
and `Team` intercepts them at their first instruction. At a fork, each core starts
`body(arg)` with its own stack and returns to `edge_emulated_join`; the cores run one
after another up to their next barrier (`edge_emulated_core` holds the running core's
id), then on to the next, so every core sees what the others wrote before the barrier,
as on the cluster. Between barriers the cores compute independently: a *phase*. A phase
takes as long as its slowest core; the others wait at the barrier. So the step's figure
is the instructions outside the team plus, per phase, the most any core executed:
`step_instructions`, the slowest core's work plus its barrier waits.

Instructions are counted exactly, per translated block (the block's instructions,
16- and 32-bit, decoded from its bytes; a CORE-V instruction that traps ends its block
and counts once), between the two calls of `mark`. The platform functions themselves
(fork, barrier, join, the profile marks) are not counted: they are the emulator's
stand-ins for hardware; nor are the functions named `uncounted` (the DMA shim's copy
loop, which is the DMA engine's work on the target). Per block the static analysis of `edge_opt.backends.rv32.timing`
gives its load-use stalls, and a block that does not fall through to the next one is a
taken branch or jump: both feed the cycle estimate.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INTR, UcError
from unicorn.riscv_const import (
    UC_RISCV_REG_A0,
    UC_RISCV_REG_A1,
    UC_RISCV_REG_PC,
    UC_RISCV_REG_RA,
    UC_RISCV_REG_SP,
)

from edge_opt.backends.rv32 import corev, timing
from edge_opt.backends.rv32.emulator import BASE, EmulationError, Program

STACK_BYTES = 64 * 1024
"""Each core's stack, below the main one's."""
PAINT = b"\xa5\x5a\xc3\x3c" * (STACK_BYTES // 4)
"""What a core's stack holds before its team starts: the first word that differs from
it, from the bottom, is the stack's high-water mark."""
PLATFORM = ("edge_fork", "edge_barrier", "edge_emulated_join", "edge_profile_call", "mark")
SERIAL = -1
"""The call number of the instructions outside any marked kernel call."""


@dataclass
class Counts:
    """What a run measured; `[core][call]` tables are dicts by call number."""

    cores: int
    instructions: list[dict[int, int]]
    """Per core, per call: instructions executed."""
    waits: list[dict[int, int]]
    """Per core, per call: instructions' worth of waiting at the barrier that ends a
    phase of that call (the slowest core of the phase waits 0)."""
    stalls: list[dict[int, int]]
    """Per core, per call: load-use stalls (cycles)."""
    taken: list[dict[int, int]]
    """Per core, per call: taken branches and jumps."""
    serial: int = 0
    """Instructions outside the team (core 0 alone)."""
    phases: int = 0
    step_instructions: int = 0
    """`serial` plus, per phase, the instructions of its slowest core."""
    blocks: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    """Per translated block start: (end address, instructions, load-use stalls)."""
    stack_bytes: list[int] = field(default_factory=list)
    """Per core: the most stack its team functions used (the high-water mark of its
    painted stack), the figure to hold against the target's cluster stacks."""


class Team:
    """Runs `program` from `entry` with a team of `cores` (module docstring)."""

    def __init__(self, program: Program, cores: int,
                 progress: Callable[[int], None] | None = None,
                 uncounted: Sequence[str] = ()):
        self.program, self.uc, self.cores = program, program.uc, cores
        self.progress = progress
        symbols = program.symbols
        missing = [name for name in PLATFORM if name not in symbols]
        if missing:
            raise EmulationError(f"the program lacks {', '.join(missing)}: build it with "
                                 "-DEDGE_EMULATED and a `mark` function")
        self.address = {name: symbols[name] for name in PLATFORM}
        self.platform = set(self.address.values())
        # a function the program does not have (never called, left out) costs nothing
        self.uncounted = [(symbols[n], symbols[n] + program.sizes[n])
                          for n in uncounted if n in symbols]
        self.core_id_address = symbols["edge_emulated_core"]
        self.counts = Counts(cores, *([{} for _ in range(cores)] for _ in range(4)))
        self.counts.stack_bytes = [0] * cores
        self.core = 0
        self.call = [SERIAL] * cores
        self.in_team = False
        self.measuring = False
        self.marks = 0
        self.event: str | None = None
        self.resume_at: int | None = None
        self.phase = [0] * cores
        self.executed = 0
        self.previous_end: int | None = None

    # --- hooks --------------------------------------------------------------------------

    def _on_block(self, uc, address: int, size: int, _) -> None:
        if not self.measuring or address in self.platform:
            return
        block = self.counts.blocks.get(address)
        if block is None:
            code = bytes(uc.mem_read(address, size))
            if any(start <= address < end for start, end in self.uncounted):
                block = (address + size, 0, 0)
            else:
                block = (address + size, *timing.block_figures(code))
            self.counts.blocks[address] = block
        if not block[1]:
            return
        core, call = self.core, self.call[self.core]
        n = block[1]
        if self.in_team:
            table = self.counts.instructions[core]
            table[call] = table.get(call, 0) + n
            self.phase[core] += n
        else:
            self.counts.serial += n
        if block[2]:
            stalls = self.counts.stalls[core]
            stalls[call] = stalls.get(call, 0) + block[2]
        if self.previous_end is not None and self.previous_end != address:
            taken = self.counts.taken[core]
            taken[call] = taken.get(call, 0) + 1
        self.previous_end = block[0]
        self.executed += n
        if self.progress is not None and self.executed >> 22 != (self.executed - n) >> 22:
            self.progress(self.executed)

    def _on_code(self, uc, address: int, size: int, _) -> None:
        if address == self.resume_at:  # continuing from where the last run stopped
            self.resume_at = None
            return
        if address == self.address["mark"]:
            self.marks += 1
            self.measuring = self.marks == 1
            if self.marks == 2:
                self._stop("end")
        elif address == self.address["edge_profile_call"]:
            self.call[self.core] = uc.reg_read(UC_RISCV_REG_A0)
        elif address == self.address["edge_fork"]:
            if self.in_team:
                self._stop("error: edge_fork inside a team")
            else:
                self._stop("fork")
        elif address == self.address["edge_barrier"]:
            self._stop("barrier" if self.in_team else "error: a barrier outside a team")
        elif address == self.address["edge_emulated_join"]:
            self._stop("join")

    def _on_interrupt(self, uc, number: int, _) -> None:
        pc = uc.reg_read(UC_RISCV_REG_PC)
        insn = struct.unpack("<I", bytes(uc.mem_read(pc - 4, 4)))[0]
        if number != 2 or not corev.emulate(uc, insn):
            self._stop(f"error: unexpected trap {number} at {pc - 4:#x}: {insn:#010x}")

    def _stop(self, event: str) -> None:
        self.event = event
        self.uc.emu_stop()

    # --- running ------------------------------------------------------------------------

    def _run(self, pc: int) -> str:
        """Runs from `pc` until an event; returns it."""
        self.event = None
        try:
            self.uc.emu_start(pc, BASE + self.program.memory)
        except UcError as e:
            raise EmulationError(
                f"core {self.core} stopped at {self.uc.reg_read(UC_RISCV_REG_PC):#x}: {e}"
            ) from None
        event = self.event
        if event is None:
            raise EmulationError(f"core {self.core} left the program's memory")
        if event.startswith("error: "):
            raise EmulationError(f"core {self.core}: {event.removeprefix('error: ')}")
        return event

    def run(self, entry: str = "entry") -> Counts:
        hooks = [self.uc.hook_add(UC_HOOK_BLOCK, self._on_block),
                 self.uc.hook_add(UC_HOOK_INTR, self._on_interrupt)]
        hooks += [self.uc.hook_add(UC_HOOK_CODE, self._on_code, begin=a, end=a)
                  for a in sorted(self.platform)]
        try:
            pc = self.program.symbols[entry]
            while self._run(pc) == "fork":
                pc = self._team()
        finally:
            for hook in hooks:
                self.uc.hook_del(hook)
        if self.marks < 2:
            raise EmulationError("the program did not call mark twice")
        counts = self.counts
        counts.step_instructions += counts.serial
        return counts

    def _team(self) -> int:
        """Runs the team of the fork the main context stopped at; returns where the
        main context continues (the fork's return address)."""
        uc = self.uc
        body, arg = uc.reg_read(UC_RISCV_REG_A0), uc.reg_read(UC_RISCV_REG_A1)
        back = uc.reg_read(UC_RISCV_REG_RA)
        main = uc.context_save()
        contexts, pcs = [], []
        for core in range(self.cores):
            uc.context_restore(main)
            uc.reg_write(UC_RISCV_REG_A0, arg)
            uc.reg_write(UC_RISCV_REG_RA, self.address["edge_emulated_join"])
            uc.reg_write(UC_RISCV_REG_SP, self._stack_top(core))
            uc.mem_write(self._stack_top(core) - STACK_BYTES, PAINT)
            contexts.append(uc.context_save())
            pcs.append(body)
        live = list(range(self.cores))
        self.in_team = True
        while live:
            arrived = {}
            for core in live:
                self.core = core
                uc.context_restore(contexts[core])
                uc.mem_write(self.core_id_address, core.to_bytes(4, "little"))
                self.previous_end = None
                self.resume_at = pcs[core] if pcs[core] != body else None
                arrived[core] = self._run(pcs[core])
                contexts[core] = uc.context_save()
                pcs[core] = uc.reg_read(UC_RISCV_REG_PC)
            if len(set(arrived.values())) > 1:
                raise EmulationError(
                    "the cores of a team disagree: some reached a barrier, others their "
                    "end (" + ", ".join(f"core {c}: {e}" for c, e in arrived.items()) + ")")
            self._end_phase(live)
            live = [c for c in live if arrived[c] == "barrier"]
        self.in_team = False
        for core in range(self.cores):
            self.counts.stack_bytes[core] = max(self.counts.stack_bytes[core],
                                                self._stack_used(core))
        self.core = 0
        uc.context_restore(main)
        self.previous_end = None
        return back

    def _stack_top(self, core: int) -> int:
        return self.program.stack_top - (core + 1) * STACK_BYTES

    def _stack_used(self, core: int) -> int:
        """Bytes from the top of `core`'s stack down to the lowest word written."""
        painted = bytes(self.uc.mem_read(self._stack_top(core) - STACK_BYTES, STACK_BYTES))
        for offset in range(0, STACK_BYTES, 4):
            if painted[offset:offset + 4] != PAINT[:4]:
                return STACK_BYTES - offset
        return 0

    def _end_phase(self, live: list[int]) -> None:
        slowest = max(self.phase[c] for c in live)
        self.counts.step_instructions += slowest
        self.counts.phases += 1
        for core in live:
            wait = slowest - self.phase[core]
            if wait:
                table = self.counts.waits[core]
                call = self.call[core]
                table[call] = table.get(call, 0) + wait
            self.phase[core] = 0
