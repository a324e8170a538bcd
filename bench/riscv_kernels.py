"""Executed RV32 instructions of runtime kernels, on a simulated core.

    python bench/riscv_kernels.py

Each case compiles one kernel call with zig for `riscv32-freestanding-none` (one core,
the runtime's bare platform), loads the ELF into unicorn and counts the instructions
executed between two calls of a marker function (an exact, reproducible count). FP code
runs as RV32IMCF; the int8 cases run twice: portable C on RV32IMC, and with the CORE-V
SIMD/post-increment-load extensions, whose instructions unicorn does not know — they
trap (illegal instruction, PC past it) and are emulated (`edge_opt.backends.rv32.corev`) and count once.

Prints per case: instructions, MACs, instructions per MAC and FLOP per instruction (an
in-order single-issue core retires at most one instruction per cycle, so FLOP per
instruction bounds FLOP per cycle).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge_opt.backends.rv32.emulator import COREV_CPU, FP_CPU, Program, build_elf

RUNTIME = Path(__file__).resolve().parent.parent / "backends" / "c" / "runtime"
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
    source = ("edge_kernels_conv_pool.c", "edge_kernels_conv_implicit.c", "edge_kernels_linalg.c")
    return [
        Case(f"conv2d f32 {c}->{o} 3x3 {size}x{size}", declarations, setup,
             params + "  edge_conv2d_f32(&p, x, w, b, y);", macs, source),
        Case(f"conv2d grad-input f32 {c}->{o} 3x3 {size}x{size}", declarations, setup,
             params + "  edge_conv2d_grad_input_f32(&p, y, w, dx);", macs, source),
        Case(f"conv2d grad-weight f32 {c}->{o} 3x3 {size}x{size}", declarations, setup,
             params + "  edge_conv2d_grad_weight_f32(&p, y, x, dw);", macs, source),
    ]


def _int8_cases() -> list[Case]:
    def linear(m: int, n: int, k: int) -> Case:
        return Case(
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
    # a short reduction (32: the requantisation weighs), a long one (256)
    return [linear(32, 32, 32), linear(64, 64, 256), conv]


def build(case: Case, cpu: str, directory: Path) -> Path:
    (directory / "driver.c").write_text(DRIVER % {
        "declarations": case.declarations, "setup": case.setup, "call": case.call,
    })
    return build_elf([directory / "driver.c", *(RUNTIME / s for s in case.sources),
                      RUNTIME / "edge_platform.c"], directory / "program.elf", cpu,
                     include=[RUNTIME])


def count_instructions(elf: Path, output_bytes: int = 0) -> tuple[int, bytes]:
    """Instructions executed between the two marks (exact: `edge_opt.backends.rv32`),
    and the first `output_bytes` bytes of the array `y` afterwards."""
    program = Program(elf)
    count = program.count_between_marks()
    return count, program.read("y", output_bytes) if output_bytes else b""


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
