"""The runtime built for the RISC-V target (BRIEF section 6) and checks on its assembly.

`compile_riscv(source, output, assembly)` runs `python -m ziglang cc` for RV32 with the
CORE-V extensions (`ziglang` is a test dependency). `library_calls`
lists what the code calls outside itself and the platform (libgcc helpers such as the
64-bit division `__divdi3`, or libc); `innermost_loops` finds the loops of a function
(a label that a later branch jumps back to) that contain no other loop.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from c_runtime import RUNTIME

ZIG_RV32 = [
    "-target", "riscv32-freestanding-none",
    "-mcpu=generic_rv32+m+c+f+xcvsimd+xcvmem+xcvmac+xcvalu+xcvbi", "-mabi=ilp32f", "-O2",
    "-fno-math-errno", "-Wall", "-Werror", "-Wno-unused-command-line-argument",
]

PLATFORM = {"edge_core_id", "edge_num_cores", "edge_barrier"}


def compile_riscv(source: Path, output: Path, assembly: bool = False) -> str:
    """Compiles `source` for RV32 (`-S` if `assembly`); returns the assembly text."""
    mode = ["-S", "-g0"] if assembly else ["-c"]
    result = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", *ZIG_RV32, f"-I{RUNTIME}", *mode,
         str(source), "-o", str(output)],
        check=False, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    return output.read_text() if assembly else ""


def library_calls(assembly: str) -> set[str]:
    """Targets of `call` / `tail` neither defined in `assembly` nor platform
    functions."""
    defined = set(re.findall(r"^(\w+):", assembly, re.MULTILINE))
    called = set(re.findall(r"^\s+(?:call|tail)\s+(\w+)", assembly, re.MULTILINE))
    return called - defined - PLATFORM


_LABEL = re.compile(r"^(\.?L\w+):")
_BRANCH = re.compile(r"^\s+(j|b\w*|cv\.b\w*)\s+(?:.*,\s*)?(\.?L\w+)\s*$")


def function_lines(assembly: str, name: str) -> list[str]:
    """The instructions and local labels of function `name`."""
    lines = assembly.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.split("#")[0].strip() == f"{name}:"
    )
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(".Lfunc_end"))
    return [line for line in lines[start:end]
            if not line.lstrip().startswith(("#", ".")) or _LABEL.match(line)]


def innermost_loops(lines: list[str]) -> list[list[str]]:
    """Bodies (label to backward branch) of the loops that contain no other loop."""
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := _LABEL.match(line))}
    loops = []
    for i, line in enumerate(lines):
        match = _BRANCH.match(line)
        if match and match.group(2) in labels and labels[match.group(2)] < i:
            loops.append((labels[match.group(2)], i))
    return [
        lines[a : b + 1]
        for a, b in loops
        if not any(a <= c and d <= b and (c, d) != (a, b) for c, d in loops)
    ]
