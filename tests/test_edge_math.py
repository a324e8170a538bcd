"""The freestanding math of the runtime (`edge_soft_*` in runtime/edge_math.h, what the
RISC-V and PULP builds use instead of libm) against the host's libm in double precision,
over a stride of the whole float range and every float of the ranges where it once
failed (tests/math_ulp.c). Built twice: without contraction, and with fused
multiply-adds as the RV32F build contracts them (when the host has FMA). The bounds are
the documented error table (docs/c-backend.md); `bench/math_ulp.py` sweeps all 2^32
floats."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from c_runtime import RUNTIME

HARNESS = Path(__file__).resolve().parent / "math_ulp.c"
MAX_ULP = {"exp": 3, "log": 1, "tanh": 2, "erf": 6, "pow": 22}
"""The documented bound of each function (pow: over the exponents the harness pairs)."""
STRIDE = {"exp": 4093, "log": 4093, "tanh": 4093, "erf": 4093, "pow": 65537}


def _host_has_fma() -> bool:
    try:
        return " fma " in f" {Path('/proc/cpuinfo').read_text()} ".replace("\n", " ")
    except OSError:
        return False


MODES = {"no-contraction": ["-ffp-contract=off"]}
if _host_has_fma():
    MODES["fused"] = ["-mfma", "-ffp-contract=fast"]


@pytest.fixture(scope="module", params=sorted(MODES))
def harness(request, tmp_path_factory) -> Path:
    binary = tmp_path_factory.mktemp("math") / f"math_ulp_{request.param}"
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", *MODES[request.param],
                    "-DEDGE_BARE=1", f"-I{RUNTIME}", str(HARNESS), "-o", str(binary), "-lm"],
                   check=True, capture_output=True)
    return binary


def measure(binary: Path, function: str, stride: int) -> dict[str, str]:
    result = subprocess.run([str(binary), function, str(stride)], capture_output=True,
                            text=True, check=True, timeout=600)
    words = result.stdout.split()
    return dict(zip(words[1::2], words[2::2]))


@pytest.mark.parametrize("function", sorted(MAX_ULP))
def test_soft_math_is_within_its_documented_error(harness: Path, function: str):
    figures = measure(harness, function, STRIDE[function])
    assert figures["special_mismatches"] == "0", figures
    assert int(figures["max_ulp"]) <= MAX_ULP[function], figures


def test_the_reported_edge_cases(harness: Path, tmp_path: Path):
    """The cases of the report, one by one (libm as the oracle, in double)."""
    probe = tmp_path / "probe.c"
    probe.write_text(r"""
#include <math.h>
#include <stdio.h>
#include "edge_math.h"
int main(void) {
  printf("%a %a\n", edge_soft_powf(-2.0f, -3.0f), (float)pow(-2.0, -3.0));
  printf("%a %a\n", edge_soft_powf(-1.5f, 21.0f), (float)pow(-1.5, 21.0));
  printf("%a %a\n", edge_soft_powf(-0.0f, -3.0f), (float)pow(-0.0, -3.0));
  printf("%a %a\n", edge_soft_powf(-8.0f, 1.0f / 3.0f), (float)pow(-8.0, 1.0f / 3.0f));
  printf("%a %a\n", edge_soft_expf(88.5f), (float)exp(88.5));
  printf("%a %a\n", edge_soft_expf(88.7228317f), (float)exp(88.7228317f));
  printf("%a %a\n", edge_soft_logf(INFINITY), (float)log(INFINITY));
  printf("%a %a\n", edge_soft_logf(1e-45f), (float)log((double)1e-45f));
  printf("%a %a\n", edge_soft_logf(3e-39f), (float)log((double)3e-39f));
  return 0;
}
""")
    binary = tmp_path / "probe"
    subprocess.run(["gcc", "-O2", "-ffp-contract=off", "-DEDGE_BARE=1", f"-I{RUNTIME}",
                    str(probe), "-o", str(binary), "-lm"], check=True, capture_output=True)
    lines = subprocess.run([str(binary)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert len(lines) == 9
    for line in lines:
        ours, libm = (float.fromhex(v) if "nan" not in v else v for v in line.split())
        if isinstance(libm, str):
            assert isinstance(ours, str), line
        else:
            assert ours == pytest.approx(libm, rel=4e-7), line
