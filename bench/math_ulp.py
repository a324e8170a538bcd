"""The error of the runtime's freestanding math over every float, as a table.

    python bench/math_ulp.py [--stride 1] [--pow-stride 64]

Builds tests/math_ulp.c (the `edge_soft_*` functions of runtime/edge_math.h against the
host's libm in double precision, rounded once to float) twice: without floating-point
contraction, and with fused multiply-adds as the RV32F build contracts them (when the
host has FMA). Prints, per function and build, the samples, the largest error in ulp
with where it occurs, and the special-value mismatches (NaN on one side only, a differing
infinity or signed zero). Exact counts: the same on every run. The table in
docs/c-backend.md is this output at the default strides (all 2^32 floats for the
unary functions; every 64th float times 27 exponents for pow).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "math_ulp.c"
RUNTIME = ROOT / "backends" / "c" / "runtime"
FUNCTIONS = ("exp", "log", "tanh", "erf", "pow")


def build(directory: Path, name: str, flags: list[str]) -> Path:
    binary = directory / f"math_ulp_{name}"
    subprocess.run(["gcc", "-O2", *flags, "-DEDGE_BARE=1", f"-I{RUNTIME}", str(HARNESS),
                    "-o", str(binary), "-lm"], check=True)
    return binary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stride", type=int, default=1,
                        help="every N-th float for exp/log/tanh/erf (default all)")
    parser.add_argument("--pow-stride", type=int, default=64,
                        help="every N-th float as pow's base (default 64)")
    args = parser.parse_args(argv)
    modes = {"no contraction": ["-ffp-contract=off"]}
    if " fma " in Path("/proc/cpuinfo").read_text().replace("\n", " "):
        modes["fused (as RV32F)"] = ["-mfma", "-ffp-contract=fast"]
    print("| function | build | samples | max ulp | at x (y) | special mismatches |")
    print("|---|---|---:|---:|---|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for mode, flags in modes.items():
            binary = build(Path(tmp), mode.split()[0], flags)
            for function in FUNCTIONS:
                stride = args.pow_stride if function == "pow" else args.stride
                start = time.perf_counter()
                out = subprocess.run([str(binary), function, str(stride)], check=True,
                                     capture_output=True, text=True).stdout.split()
                figures = dict(zip(out[1::2], out[2::2]))
                where = figures["worst_x"] + (f" ({figures['worst_y']})"
                                              if function == "pow" else "")
                print(f"| {function} | {mode} | {int(figures['samples']):,} | "
                      f"{figures['max_ulp']} | {where} | {figures['special_mismatches']} |",
                      flush=True)
                print(f"  ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
