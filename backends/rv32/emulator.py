"""RV32 programs built with zig and run on unicorn, counting executed instructions.

`build_elf` compiles C (and assembly) sources for `riscv32-freestanding-none` with the
target's CORE-V flags (BRIEF section 6) into a bare program placed at `BASE`
(`LINKER_SCRIPT`: code from `.text.entry` first). `Program` loads it into unicorn and
runs it from its `entry` symbol; CORE-V instructions trap and are executed by
`edge_opt.backends.rv32.corev`.

Counting is exact: an instruction counts once when it executes, whether unicorn
executes it or it traps and runs in Python (the code hook sees the trapping
instruction too, so the trap handler does not count it again). `count_between_marks`
counts what executes after the first call of the function `mark` returns until the
second call reaches it (the call instruction counts, the first instruction of `mark`
does not), so a program brackets what it measures with two calls of an empty `mark`.
An in-order single-issue core retires at most one instruction per cycle: FLOP per
executed instruction bounds FLOP per cycle from above.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from unicorn import (
    UC_ARCH_RISCV,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_MODE_RISCV32,
    Uc,
    UcError,
)
from unicorn.riscv_const import UC_RISCV_REG_MSTATUS, UC_RISCV_REG_PC, UC_RISCV_REG_SP

from edge_opt.backends.rv32 import corev

BASE, SIZE = 0x10000, 0x400000
FP_CPU = "generic_rv32+m+c+f"
"""RV32IMCF: what unicorn runs natively."""
COREV_CPU = "generic_rv32+m+c+f+xcvsimd+xcvmem+xcvmac+xcvalu+xcvbi"
"""The target's ISA (XpulpV2 as CORE-V extensions)."""

LINKER_SCRIPT = """ENTRY(entry)
SECTIONS { . = 0x10000; .text : { *(.text.entry) *(.text*) }
  .rodata : { *(.rodata*) *(.srodata*) } .data : { *(.data*) *(.sdata*) }
  .bss : { *(.bss*) *(.sbss*) *(COMMON) } }
"""


class EmulationError(RuntimeError):
    """The program trapped on something that is not an emulated CORE-V instruction."""


def build_elf(sources: Sequence[Path], output: Path, cpu: str = COREV_CPU,
              include: Sequence[Path] = (), defines: Sequence[str] = (),
              cwd: Path | None = None) -> Path:
    """Compiles and links `sources` into the bare program `output`."""
    script = output.with_suffix(".ld")
    script.write_text(LINKER_SCRIPT)
    command = [
        sys.executable, "-m", "ziglang", "cc", "-target", "riscv32-freestanding-none",
        f"-mcpu={cpu}", "-mabi=ilp32f", "-O2", "-fno-math-errno", "-ffreestanding",
        "-nostdlib", "-Wno-unused-command-line-argument",
        *(f"-I{path}" for path in include), *(f"-D{d}" for d in defines),
        f"-Wl,-T,{script}", "-Wl,--no-gc-sections", *map(str, sources), "-o", str(output),
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True, cwd=cwd)
    if result.returncode:
        raise RuntimeError(f"zig cc failed for {output.name}:\n{result.stderr}")
    return output


def load_segments(data: bytes) -> list[tuple[int, int, int, int]]:
    """The PT_LOAD segments of an ELF32: (file offset, address, file size, memory size)."""
    (phoff,) = struct.unpack_from("<I", data, 0x1C)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x2A)
    segments = []
    for i in range(phnum):
        kind, offset, vaddr, _, filesz, memsz, _, _ = struct.unpack_from(
            "<IIIIIIII", data, phoff + i * phentsize)
        if kind == 1:
            segments.append((offset, vaddr, filesz, memsz))
    return segments


def load_elf(uc: Uc, data: bytes) -> dict[str, tuple[int, int]]:
    """Maps the PT_LOAD segments of an ELF32 into `uc`; returns the symbol table
    (address and size by name)."""
    (shoff,) = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x2E)
    for offset, vaddr, filesz, memsz in load_segments(data):
        uc.mem_write(vaddr, data[offset:offset + filesz] + bytes(memsz - filesz))
    sections = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize)
                for i in range(shnum)]
    symbols: dict[str, tuple[int, int]] = {}
    for section in sections:
        if section[1] != 2:  # SHT_SYMTAB
            continue
        strings = sections[section[6]]
        for j in range(section[5] // 16):
            name, value, size = struct.unpack_from("<III", data, section[4] + j * 16)
            start = strings[4] + name
            symbols[data[start:data.index(b"\0", start)].decode()] = (value, size)
    return symbols


class Program:
    """A bare RV32 program loaded into a fresh unicorn machine of `memory` bytes from
    `BASE` (the stack grows down from its top)."""

    def __init__(self, elf: Path, memory: int = SIZE):
        self.uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
        self.memory = -(-memory // 0x1000) * 0x1000
        self.uc.mem_map(BASE, self.memory)
        table = load_elf(self.uc, elf.read_bytes())
        self.symbols = {name: address for name, (address, _) in table.items()}
        self.sizes = {name: size for name, (_, size) in table.items()}
        self.stack_top = BASE + self.memory - 16
        self.uc.reg_write(UC_RISCV_REG_SP, self.stack_top)
        # the FPU on (mstatus.FS = initial)
        self.uc.reg_write(UC_RISCV_REG_MSTATUS,
                          self.uc.reg_read(UC_RISCV_REG_MSTATUS) | (3 << 13))

    def read(self, symbol: str, size: int) -> bytes:
        return bytes(self.uc.mem_read(self.symbols[symbol], size))

    def count_between_marks(self, entry: str = "entry", mark: str = "mark") -> int:
        """Runs from `entry` until the second call of `mark`; returns the instructions
        executed between the two calls (module docstring)."""
        state: dict = {"marks": 0, "count": 0}
        mark_address = self.symbols[mark]

        def on_code(uc: Uc, address: int, size: int, _) -> None:
            if address == mark_address:
                state["marks"] += 1
                if state["marks"] == 2:
                    uc.emu_stop()
            elif state["marks"] == 1:
                state["count"] += 1

        def on_interrupt(uc: Uc, number: int, _) -> None:
            pc = uc.reg_read(UC_RISCV_REG_PC)
            insn = struct.unpack("<I", bytes(uc.mem_read(pc - 4, 4)))[0]
            if number != 2 or not corev.emulate(uc, insn):
                state["error"] = f"unexpected trap {number} at {pc - 4:#x}: {insn:#010x}"
                uc.emu_stop()

        hooks = [self.uc.hook_add(UC_HOOK_CODE, on_code),
                 self.uc.hook_add(UC_HOOK_INTR, on_interrupt)]
        try:
            self.uc.emu_start(self.symbols[entry], BASE + self.memory)
        except UcError as e:
            pc = self.uc.reg_read(UC_RISCV_REG_PC)
            raise EmulationError(f"unexpected trap at {pc:#x}: {e}") from None
        finally:
            for hook in hooks:
                self.uc.hook_del(hook)
        if "error" in state:
            raise EmulationError(state["error"])
        if state["marks"] < 2:
            raise EmulationError(f"the program did not call {mark} twice")
        return state["count"]
