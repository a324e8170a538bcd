"""The RV32 emulator (`edge_opt.backends.rv32`) counts executed instructions exactly:
a hand-written program whose count is known by reading it, with a CORE-V instruction
that traps in unicorn and runs in Python (it counts once, not twice), and the value it
computes; a trap that is not CORE-V is an error, not a silent stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_opt.backends.rv32.emulator import EmulationError, Program, build_elf

KNOWN = """
  .section .text.entry
  .globl entry
entry:
  jal ra, mark
  li t0, {n}
  li t1, 0
1:
  cv.mac t1, t0, t0       # CORE-V: t1 += t0 * t0 (traps, emulated)
  addi t0, t0, -1
  bnez t0, 1b
  lui t2, %hi(y)
  sw t1, %lo(y)(t2)
  jal ra, mark
2:
  j 2b
  .text
  .globl mark
mark:
  {mark_body}
  .data
  .globl y
y:
  .word 0
"""


def _program(tmp_path: Path, n: int, mark_body: str = "ret") -> Program:
    source = tmp_path / f"known_{n}.S"
    source.write_text(KNOWN.format(n=n, mark_body=mark_body))
    return Program(build_elf([source], tmp_path / f"known_{n}.elf"))


@pytest.mark.parametrize("n", [1, 10])
def test_a_known_program_counts_exactly(tmp_path: Path, n: int):
    program = _program(tmp_path, n)
    # li, li; n x (cv.mac, addi, bnez); lui, sw; the jal to the second mark
    assert program.count_between_marks() == 2 + 3 * n + 2 + 1
    assert int.from_bytes(program.read("y", 4), "little") == sum(t * t for t in range(1, n + 1))


def test_the_same_program_counts_the_same(tmp_path: Path):
    assert _program(tmp_path, 7).count_between_marks() == _program(
        tmp_path, 7).count_between_marks()


def test_an_unknown_trap_is_an_error(tmp_path: Path):
    with pytest.raises(EmulationError, match="unexpected trap"):
        _program(tmp_path, 3, "ebreak").count_between_marks()
