"""CORE-V instructions that unicorn does not know, executed in Python.

Unicorn's RISC-V core implements RV32IMCF; the XpulpV2 / CORE-V extensions the target
compiler emits (`-mcpu=...+xcvsimd+xcvmem+xcvmac+xcvalu+xcvbi`) trap as illegal
instructions. `emulate(uc, insn)` executes one of them on the trapped state (the PC
is already past it), with the encodings the LLVM assembler emits: `cv.sdotsp.b`, the
post-increment and register-offset loads and stores, the ALU and MAC instructions,
`cv.clip*` and the immediate branches.
"""

from __future__ import annotations

from unicorn import Uc
from unicorn.riscv_const import UC_RISCV_REG_PC, UC_RISCV_REG_X0


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


def emulate(uc: Uc, insn: int) -> bool:
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
