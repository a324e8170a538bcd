"""Executed RV32 instructions of runtime kernels, on a simulated core.

    python bench/riscv_kernels.py

Each case compiles one kernel call with zig for `riscv32-freestanding-none` (one core,
the runtime's bare platform), loads the ELF into unicorn and counts the instructions
executed between two calls of a marker function (an exact, reproducible count). FP code
runs as RV32IMCF; the int8 cases run twice: portable C on RV32IMC, and with the CORE-V
SIMD/post-increment-load extensions, whose instructions unicorn does not know — they
trap (illegal instruction, PC past it) and are emulated here (`cv.sdotsp.b`, `cv.lw`).

Prints per case: instructions, MACs, instructions per MAC and FLOP per instruction (an
in-order single-issue core retires at most one instruction per cycle, so FLOP per
instruction bounds FLOP per cycle).
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from unicorn import UC_ARCH_RISCV, UC_HOOK_CODE, UC_HOOK_INTR, UC_MODE_RISCV32, Uc
from unicorn.riscv_const import (
    UC_RISCV_REG_MSTATUS,
    UC_RISCV_REG_PC,
    UC_RISCV_REG_SP,
    UC_RISCV_REG_X0,
)

RUNTIME = Path(__file__).resolve().parent.parent / "backends" / "c" / "runtime"
BASE, SIZE = 0x10000, 0x200000
STACK_TOP = BASE + SIZE - 16
FP_CPU = "generic_rv32+m+c+f"
COREV_CPU = "generic_rv32+m+c+f+xcvsimd+xcvmem+xcvmac+xcvalu+xcvbi"

LINKER_SCRIPT = """ENTRY(entry)
SECTIONS { . = 0x10000; .text : { *(.text.entry) *(.text*) }
  .rodata : { *(.rodata*) *(.srodata*) } .data : { *(.data*) *(.sdata*) }
  .bss : { *(.bss*) *(.sbss*) *(COMMON) } }
"""

DRIVER = """#include "edge_runtime.h"
__attribute__((noinline)) void mark(void) { __asm__ volatile(""); }
%(declarations)s
__attribute__((section(".text.entry"))) void entry(void) {
%(setup)s
  mark();
%(call)s
  mark();
  for (;;) {}
}
"""


@dataclass(frozen=True)
class Case:
    name: str
    declarations: str
    setup: str
    call: str
    macs: int
    sources: tuple[str, ...]
    output_bytes: int = 0
    """Bytes of the output array `y`, read back after the run."""


def _fill(name: str, count: int, kind: str = "float", modulus: int = 7) -> str:
    value = f"(float)(i % {modulus}) * 0.25f" if kind == "float" else f"(int8_t)(i % {modulus} - 3)"
    return f"  for (int i = 0; i < {count}; i++) {name}[i] = {value};"


def _linear_case(m: int, n: int, k: int) -> Case:
    return Case(
        f"linear f32 {m}x{k} . ({n}x{k})T",
        f"float x[{m * k}], w[{n * k}], b[{n}], y[{m * n}];",
        "\n".join([_fill("x", m * k), _fill("w", n * k, modulus=5), _fill("b", n)]),
        f"  static const edge_linear_t p = {{{m}, {k}, {n}}};\n  edge_linear_f32(&p, x, w, b, y);",
        m * n * k, ("edge_kernels_linalg.c",),
    )


def _conv_cases(c: int, o: int, size: int) -> list[Case]:
    declarations = (
        f"float x[{c * size * size}], w[{o * c * 9}], b[{o}], y[{o * size * size}], "
        f"dx[{c * size * size}], dw[{o * c * 9}];"
    )
    setup = "\n".join([_fill("x", c * size * size), _fill("w", o * c * 9, modulus=5),
                       _fill("b", o), _fill("y", o * size * size)])
    params = (f"  static const edge_conv2d_t p = {{1, {c}, {size}, {size}, {o}, 3, 3, {size}, "
              f"{size}, {{1, 1}}, {{1, 1, 1, 1}}, {{1, 1}}, 1}};\n")
    macs = o * size * size * c * 9
    source = ("edge_kernels_conv_pool.c",)
    return [
        Case(f"conv2d f32 {c}->{o} 3x3 {size}x{size}", declarations, setup,
             params + "  edge_conv2d_f32(&p, x, w, b, y);", macs, source),
        Case(f"conv2d grad-input f32 {c}->{o} 3x3 {size}x{size}", declarations, setup,
             params + "  edge_conv2d_grad_input_f32(&p, y, w, dx);", macs, source),
        Case(f"conv2d grad-weight f32 {c}->{o} 3x3 {size}x{size}", declarations, setup,
             params + "  edge_conv2d_grad_weight_f32(&p, y, x, dw);", macs, source),
    ]


def _int8_cases() -> list[Case]:
    m, n, k = 32, 32, 32
    linear = Case(
        f"linear s8 {m}x{k} . ({n}x{k})T",
        f"int8_t x[{m * k}] __attribute__((aligned(4))), w[{n * k}] __attribute__((aligned(4))), y[{m * n}]; int32_t b[{n}];",
        "\n".join([_fill("x", m * k, "int8"), _fill("w", n * k, "int8", 5),
                   f"  for (int i = 0; i < {n}; i++) b[i] = i;"]),
        f"  static const edge_linear_s8_t p = {{{m}, {n}, {k}, 3, 6}};\n"
        "  edge_linear_s8(&p, x, w, b, y);",
        m * n * k, ("edge_kernels_int8.c",), m * n,
    )
    c, o, size = 16, 16, 16
    conv = Case(
        f"conv2d s8 NHWC {c}->{o} 3x3 {size}x{size}",
        f"int8_t x[{size * size * c}] __attribute__((aligned(4))), w[{o * 9 * c}] __attribute__((aligned(4))), y[{size * size * o}]; int32_t b[{o}];",
        "\n".join([_fill("x", size * size * c, "int8"), _fill("w", o * 9 * c, "int8", 5),
                   f"  for (int i = 0; i < {o}; i++) b[i] = i;"]),
        f"  static const edge_conv2d_s8_t p = {{1, {size}, {size}, {c}, {o}, 3, 3, {size}, "
        f"{size}, {{1, 1}}, {{1, 1, 1, 1}}, {{1, 1}}, 3, 6}};\n"
        "  edge_conv2d_s8(&p, x, w, b, y);",
        o * size * size * c * 9, ("edge_kernels_int8.c",), size * size * o,
    )
    return [linear, conv]


def build(case: Case, cpu: str, directory: Path) -> Path:
    (directory / "link.ld").write_text(LINKER_SCRIPT)
    (directory / "driver.c").write_text(DRIVER % {
        "declarations": case.declarations, "setup": case.setup, "call": case.call,
    })
    elf = directory / "program.elf"
    subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", "riscv32-freestanding-none",
         f"-mcpu={cpu}", "-mabi=ilp32f", "-O2", "-fno-math-errno", "-ffreestanding",
         "-nostdlib", "-Wno-unused-command-line-argument", f"-I{RUNTIME}",
         f"-Wl,-T,{directory / 'link.ld'}", "-Wl,--no-gc-sections",
         str(directory / "driver.c"), *(str(RUNTIME / s) for s in case.sources),
         str(RUNTIME / "edge_platform.c"), "-o", str(elf)],
        check=True, capture_output=True, text=True,
    )
    return elf


def load_elf(uc: Uc, path: Path) -> dict[str, int]:
    """Maps the PT_LOAD segments of an ELF32 into `uc`; returns the symbol table."""
    data = path.read_bytes()
    (phoff,) = struct.unpack_from("<I", data, 0x1C)
    (shoff,) = struct.unpack_from("<I", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x2A)
    for i in range(phnum):
        kind, offset, vaddr, _, filesz, memsz, _, _ = struct.unpack_from(
            "<IIIIIIII", data, phoff + i * phentsize)
        if kind == 1:
            uc.mem_write(vaddr, data[offset:offset + filesz] + bytes(memsz - filesz))
    sections = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize)
                for i in range(shnum)]
    symbols: dict[str, int] = {}
    for section in sections:
        if section[1] != 2:  # SHT_SYMTAB
            continue
        strings = sections[section[6]]
        for j in range(section[5] // 16):
            name, value = struct.unpack_from("<II", data, section[4] + j * 16)
            start = strings[4] + name
            symbols[data[start:data.index(b"\0", start)].decode()] = value
    return symbols


def _reg(uc: Uc, index: int) -> int:
    return uc.reg_read(UC_RISCV_REG_X0 + index) & 0xFFFFFFFF


def _set(uc: Uc, index: int, value: int) -> None:
    if index:
        uc.reg_write(UC_RISCV_REG_X0 + index, value & 0xFFFFFFFF)


_LOAD_SIZES = {0: (1, True), 4: (1, False), 1: (2, True), 5: (2, False), 2: (4, False)}
"""funct3 of the immediate post-increment loads: (bytes, sign-extended)"""
_LOAD_BY_FUNCT7 = {0b0000000: 0, 0b0001000: 4, 0b0000001: 1, 0b0001001: 5, 0b0000010: 2}
_STORE_BY_FUNCT7 = {0b0010000: 1, 0b0010001: 2, 0b0010010: 4}
_INDEXED_LOAD_BY_FUNCT7 = {0b0000100: 0, 0b0001100: 4, 0b0000101: 1, 0b0001101: 5, 0b0000110: 2}
_INDEXED_STORE_BY_FUNCT7 = {0b0010100: 1, 0b0010101: 2, 0b0010110: 4}
"""register-offset loads `cv.lX rd, rs2(rs1)` and stores `cv.sX rs2, rd(rs1)` (no
post-increment)"""


def _sext(value: int, bits: int) -> int:
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def _load(uc: Uc, rd: int, rs1: int, kind: int, increment: int) -> None:
    size, signed = _LOAD_SIZES[kind]
    address = _reg(uc, rs1)
    value = int.from_bytes(bytes(uc.mem_read(address, size)), "little")
    _set(uc, rd, _sext(value, 8 * size) if signed else value)
    _set(uc, rs1, address + increment)


def _store(uc: Uc, rs2: int, rs1: int, size: int, increment: int) -> None:
    address = _reg(uc, rs1)
    uc.mem_write(address, (_reg(uc, rs2) & ((1 << 8 * size) - 1)).to_bytes(size, "little"))
    _set(uc, rs1, address + increment)


def _s32(value: int) -> int:
    return _sext(value & 0xFFFFFFFF, 32)


def _clip(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


_ALU = {
    0b0101000: lambda a, b, d: abs(_s32(a)),  # cv.abs
    0b0101001: lambda a, b, d: int(_s32(a) <= _s32(b)),  # cv.slet / cv.sle
    0b0101011: lambda a, b, d: min(_s32(a), _s32(b)),  # cv.min
    0b0101100: lambda a, b, d: min(a, b),  # cv.minu
    0b0101101: lambda a, b, d: max(_s32(a), _s32(b)),  # cv.max
    0b0101110: lambda a, b, d: max(a, b),  # cv.maxu
    0b0110000: lambda a, b, d: _sext(a & 0xFFFF, 16),  # cv.exths
    0b0110001: lambda a, b, d: a & 0xFFFF,  # cv.exthz
    0b0110010: lambda a, b, d: _sext(a & 0xFF, 8),  # cv.extbs
    0b0110011: lambda a, b, d: a & 0xFF,  # cv.extbz
    0b0111010: lambda a, b, d: _clip(_s32(a), -_s32(b) - 1, _s32(b)),  # cv.clipr
    0b0111011: lambda a, b, d: _clip(_s32(a), 0, _s32(b)),  # cv.clipur
    0b1001000: lambda a, b, d: d + _s32(a) * _s32(b),  # cv.mac
    0b1001001: lambda a, b, d: d - _s32(a) * _s32(b),  # cv.msu
}
"""funct7 of the register-register CORE-V ALU/MAC instructions (funct3 = 3, custom-1):
f(rs1, rs2, rd) as unsigned 32-bit register values."""
_CLIP_IMMEDIATE = {0b0111000: True, 0b0111001: False}  # cv.clip, cv.clipu


def emulate_core_v(uc: Uc, insn: int) -> bool:
    """Executes one CORE-V instruction unicorn does not know (cv.sdotsp.b and the
    post-increment loads/stores, encodings as the LLVM assembler emits them); False if
    unknown."""
    opcode, rd = insn & 0x7F, (insn >> 7) & 0x1F
    funct3, rs1, rs2 = (insn >> 12) & 7, (insn >> 15) & 0x1F, (insn >> 20) & 0x1F
    funct7 = insn >> 25
    if opcode == 0x7B and funct3 == 1 and funct7 == 0b1010100:  # cv.sdotsp.b
        a, b = _reg(uc, rs1), _reg(uc, rs2)
        total = _reg(uc, rd)
        for byte in range(4):
            total += _sext((a >> 8 * byte) & 0xFF, 8) * _sext((b >> 8 * byte) & 0xFF, 8)
        _set(uc, rd, total)
        return True
    if opcode == 0x0B and funct3 in _LOAD_SIZES:  # cv.l{b,bu,h,hu,w} rd, (rs1), imm
        _load(uc, rd, rs1, funct3, _sext(insn >> 20, 12))
        return True
    if opcode == 0x2B and funct3 == 3 and funct7 in _LOAD_BY_FUNCT7:  # ..., (rs1), rs2
        _load(uc, rd, rs1, _LOAD_BY_FUNCT7[funct7], _reg(uc, rs2))
        return True
    if opcode == 0x2B and funct3 in (0, 1, 2):  # cv.s{b,h,w} rs2, (rs1), imm
        _store(uc, rs2, rs1, 1 << funct3, _sext((funct7 << 5) | rd, 12))
        return True
    if opcode == 0x2B and funct3 == 3 and funct7 in _STORE_BY_FUNCT7:  # ..., (rs1), rd
        _store(uc, rs2, rs1, _STORE_BY_FUNCT7[funct7], _reg(uc, rd))
        return True
    if opcode == 0x2B and funct3 == 3 and funct7 in _INDEXED_LOAD_BY_FUNCT7:
        size, signed = _LOAD_SIZES[_INDEXED_LOAD_BY_FUNCT7[funct7]]
        address = (_reg(uc, rs1) + _reg(uc, rs2)) & 0xFFFFFFFF
        value = int.from_bytes(bytes(uc.mem_read(address, size)), "little")
        _set(uc, rd, _sext(value, 8 * size) if signed else value)
        return True
    if opcode == 0x2B and funct3 == 3 and funct7 in _INDEXED_STORE_BY_FUNCT7:
        size = _INDEXED_STORE_BY_FUNCT7[funct7]
        address = (_reg(uc, rs1) + _reg(uc, rd)) & 0xFFFFFFFF
        uc.mem_write(address, (_reg(uc, rs2) & ((1 << 8 * size) - 1)).to_bytes(size, "little"))
        return True
    if opcode == 0x2B and funct3 == 3 and funct7 in _ALU:
        _set(uc, rd, _ALU[funct7](_reg(uc, rs1), _reg(uc, rs2), _reg(uc, rd)))
        return True
    if opcode == 0x0B and funct3 in (6, 7):  # cv.beqimm / cv.bneimm rs1, imm5, offset
        equal = _s32(_reg(uc, rs1)) == _sext(rs2, 5)
        if equal == (funct3 == 6):
            offset = _sext(
                ((insn >> 31) << 12) | (((insn >> 7) & 1) << 11)
                | (((insn >> 25) & 0x3F) << 5) | (((insn >> 8) & 0xF) << 1),
                13,
            )
            uc.reg_write(UC_RISCV_REG_PC, uc.reg_read(UC_RISCV_REG_PC) - 4 + offset)
        return True
    if opcode == 0x2B and funct3 == 3 and funct7 in _CLIP_IMMEDIATE:
        bound = (1 << (rs2 - 1)) - 1 if rs2 else 0
        low = -bound - 1 if _CLIP_IMMEDIATE[funct7] else 0
        _set(uc, rd, _clip(_s32(_reg(uc, rs1)), low, bound))
        return True
    return False


def count_instructions(elf: Path, output_bytes: int = 0) -> tuple[int, bytes]:
    """Instructions executed between the two marks, and the first `output_bytes` bytes
    of the array `y` afterwards."""
    uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
    uc.mem_map(BASE, SIZE)
    symbols = load_elf(uc, elf)
    uc.reg_write(UC_RISCV_REG_SP, STACK_TOP)
    uc.reg_write(UC_RISCV_REG_MSTATUS, uc.reg_read(UC_RISCV_REG_MSTATUS) | (3 << 13))
    state = {"marks": 0, "count": 0}
    mark = symbols["mark"]

    def on_code(uc: Uc, address: int, size: int, _) -> None:
        if address == mark:
            state["marks"] += 1
            if state["marks"] == 2:
                uc.emu_stop()
        elif state["marks"] == 1:
            state["count"] += 1

    def on_interrupt(uc: Uc, number: int, _) -> None:
        pc = uc.reg_read(UC_RISCV_REG_PC)
        insn = struct.unpack("<I", bytes(uc.mem_read(pc - 4, 4)))[0]
        if number != 2 or not emulate_core_v(uc, insn):
            uc.emu_stop()
            raise RuntimeError(f"unexpected trap {number} at {pc:#x}: {insn:#010x}")
        if state["marks"] == 1:
            state["count"] += 1  # the trapped instruction executed (in Python)

    uc.hook_add(UC_HOOK_CODE, on_code)
    uc.hook_add(UC_HOOK_INTR, on_interrupt)
    uc.emu_start(symbols["entry"], BASE + SIZE)
    output = bytes(uc.mem_read(symbols["y"], output_bytes)) if output_bytes else b""
    return state["count"], output


def main() -> None:
    cases = [_linear_case(32, 32, 32), _linear_case(1, 32, 32), *_conv_cases(16, 16, 16)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            count, _ = count_instructions(build(case, FP_CPU, Path(tmp)))
            rows.append((case.name, "RV32IMCF", count, case.macs))
        for case in _int8_cases():
            portable, expected = count_instructions(build(case, FP_CPU, Path(tmp)), case.output_bytes)
            simd, actual = count_instructions(build(case, COREV_CPU, Path(tmp)), case.output_bytes)
            if actual != expected:
                raise SystemExit(f"{case.name}: the CORE-V build computes other outputs")
            rows.append((case.name, "RV32IMC portable", portable, case.macs))
            rows.append((case.name, "+ CORE-V SIMD (same y)", simd, case.macs))
    print(f"{'kernel':<40} {'ISA':<22} {'instructions':>12} {'MACs':>9} {'instr/MAC':>9} {'FLOP/instr':>10}")
    for name, isa, count, macs in rows:
        print(f"{name:<40} {isa:<22} {count:>12,} {macs:>9,} {count / macs:>9.2f} {2 * macs / count:>10.2f}")


if __name__ == "__main__":
    main()
