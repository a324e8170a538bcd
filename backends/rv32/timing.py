"""Static figures of a straight-line block of RV32IMCF (+ CORE-V) code, for the cycle
estimate of the profiler: how many instructions it holds (16- and 32-bit) and how many
load-use stalls it has.

The cores of the target (RI5CY / CV32E40P class) are in-order and single-issue: an
instruction takes one cycle, except that one reading a register that the load just
before it writes waits one cycle for the load's data (a load-use stall), and a taken
branch or jump refetches (its penalty is the SoC's, counted by the team runner).
`block_figures` finds the load-use pairs from the encodings: which instructions load,
the register they write (integer or floating-point), and the registers the next one
reads. It is an estimate of the pipeline, not a model of it: it does not see stalls
across a block boundary, nor multi-cycle divisions or floating-point latencies.
"""

from __future__ import annotations

from functools import cache

_INT, _FLOAT = 0, 1

# 32-bit opcodes (bits 6:0) and the registers they read, as (file, field) pairs;
# field 1 = rs1 (bits 19:15), 2 = rs2 (24:20), 3 = rs3 (31:27)
_READS_32: dict[int, tuple[tuple[int, int], ...]] = {
    0x03: ((_INT, 1),),  # loads
    0x07: ((_INT, 1),),  # flw
    0x13: ((_INT, 1),),  # op-imm
    0x1B: ((_INT, 1),),
    0x23: ((_INT, 1), (_INT, 2)),  # stores
    0x27: ((_INT, 1), (_FLOAT, 2)),  # fsw
    0x33: ((_INT, 1), (_INT, 2)),  # op (mul/div too)
    0x63: ((_INT, 1), (_INT, 2)),  # branches
    0x67: ((_INT, 1),),  # jalr
    0x43: ((_FLOAT, 1), (_FLOAT, 2), (_FLOAT, 3)),  # fmadd and friends
    0x47: ((_FLOAT, 1), (_FLOAT, 2), (_FLOAT, 3)),
    0x4B: ((_FLOAT, 1), (_FLOAT, 2), (_FLOAT, 3)),
    0x4F: ((_FLOAT, 1), (_FLOAT, 2), (_FLOAT, 3)),
    0x0B: ((_INT, 1),),  # CORE-V post-increment loads, immediate branches
    0x2B: ((_INT, 1), (_INT, 2)),  # CORE-V register loads/stores, ALU, MAC
    0x5B: ((_INT, 1), (_INT, 2)),
    0x7B: ((_INT, 1), (_INT, 2)),  # CORE-V SIMD
}
_FP_FROM_INT = {0x68, 0x78}
"""funct7 of the OP-FP instructions whose rs1 is an integer (fcvt.s.w[u], fmv.w.x)."""


def _reads_32(insn: int) -> set[tuple[int, int]]:
    opcode = insn & 0x7F
    fields = {1: (insn >> 15) & 0x1F, 2: (insn >> 20) & 0x1F, 3: insn >> 27}
    if opcode == 0x53:  # OP-FP
        funct7 = insn >> 25
        first = _INT if funct7 in _FP_FROM_INT else _FLOAT
        return {(first, fields[1]), (_FLOAT, fields[2])}
    reads = {(f, fields[k]) for f, k in _READS_32.get(opcode, ())}
    if opcode in (0x2B, 0x5B, 0x7B):  # MAC / SIMD dot products accumulate into rd
        reads.add((_INT, (insn >> 7) & 0x1F))
    return reads


def _load_32(insn: int) -> tuple[int, int] | None:
    """The register a 32-bit load writes, or None."""
    opcode, rd, funct3 = insn & 0x7F, (insn >> 7) & 0x1F, (insn >> 12) & 7
    if opcode == 0x03:
        return (_INT, rd)
    if opcode == 0x07:
        return (_FLOAT, rd)
    if opcode == 0x0B and funct3 in (0, 1, 2, 4, 5):  # cv.l* rd, (rs1), imm
        return (_INT, rd)
    if opcode == 0x2B and funct3 == 3 and (insn >> 25) < 0b0010000:  # cv.l* register forms
        return (_INT, rd)
    return None


def _compressed(half: int) -> tuple[tuple[int, int] | None, set[tuple[int, int]]]:
    """(the register a 16-bit load writes or None, the registers it reads)."""
    quadrant, funct3 = half & 3, half >> 13
    full_rd, full_rs2 = (half >> 7) & 0x1F, (half >> 2) & 0x1F
    short_rs1, short_rs2 = 8 + ((half >> 7) & 7), 8 + ((half >> 2) & 7)
    if quadrant == 0:
        if funct3 == 2:  # c.lw
            return (_INT, short_rs2), {(_INT, short_rs1)}
        if funct3 == 3:  # c.flw
            return (_FLOAT, short_rs2), {(_INT, short_rs1)}
        if funct3 == 6:  # c.sw
            return None, {(_INT, short_rs1), (_INT, short_rs2)}
        if funct3 == 7:  # c.fsw
            return None, {(_INT, short_rs1), (_FLOAT, short_rs2)}
        return None, {(_INT, 2)}  # c.addi4spn
    if quadrant == 1:
        if funct3 in (0, 3):  # c.addi, c.addi16sp / c.lui
            return None, {(_INT, full_rd)}
        if funct3 == 4:  # c.srli, c.srai, c.andi, c.sub, c.xor, c.or, c.and
            return None, {(_INT, short_rs1), (_INT, short_rs2)}
        if funct3 in (6, 7):  # c.beqz, c.bnez
            return None, {(_INT, short_rs1)}
        return None, set()  # c.li, c.j, c.jal
    if funct3 == 2:  # c.lwsp
        return (_INT, full_rd), {(_INT, 2)}
    if funct3 == 3:  # c.flwsp
        return (_FLOAT, full_rd), {(_INT, 2)}
    if funct3 == 6:  # c.swsp
        return None, {(_INT, 2), (_INT, full_rs2)}
    if funct3 == 7:  # c.fswsp
        return None, {(_INT, 2), (_FLOAT, full_rs2)}
    return None, {(_INT, full_rd), (_INT, full_rs2)}  # c.slli, c.jr, c.mv, c.add, c.jalr


@cache
def block_figures(code: bytes) -> tuple[int, int]:
    """(instructions, load-use stalls) of a straight-line block."""
    instructions = stalls = 0
    loaded: tuple[int, int] | None = None
    offset = 0
    while offset + 2 <= len(code):
        half = int.from_bytes(code[offset:offset + 2], "little")
        if half & 3 == 3:
            insn = int.from_bytes(code[offset:offset + 4], "little")
            load, reads = _load_32(insn), _reads_32(insn)
            offset += 4
        else:
            load, reads = _compressed(half)
            offset += 2
        instructions += 1
        if loaded is not None and loaded[1] != 0 and loaded in reads:
            stalls += 1
        loaded = load
    return instructions, stalls
