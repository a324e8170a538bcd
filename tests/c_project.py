"""Builds and runs generated C projects in tests (gcc on the host)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from edge_opt.backends.c.compile import emit_c_project
from edge_opt.backends.c.project import TestData, dump_file_names
from edge_opt.dialects import nn


@dataclass
class CRun:
    data: TestData
    losses: list[float]
    params: dict[str, np.ndarray]
    stdout: str


def build(directory: Path, binary: str = "network_test") -> Path:
    result = subprocess.run(
        ["make", "-C", str(directory), binary], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return directory / binary


def run_project(directory: Path, steps: int, threads: int = 8,
                binary: str = "network_test", names: Iterable[str] = ()
                ) -> tuple[str, dict[str, np.ndarray]]:
    """Runs the test binary; returns its output and the dumped parameters, by file
    stem, and by parameter name for `names` (whose file names may be hashed)."""
    dump = directory / f"params_{binary}_{threads}"
    dump.mkdir(exist_ok=True)
    result = subprocess.run(
        [str(directory / binary), "--steps", str(steps), "--threads", str(threads),
         "--dump-params", str(dump)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode in (0, 1), result.stdout[-4000:] + result.stderr[-4000:]
    params = {p.stem: np.load(p) for p in sorted(dump.glob("*.npy"))}
    for name, file in dump_file_names(list(names)).items():
        params[name] = np.load(dump / file)
    return result.stdout + result.stderr, params


def losses_of(stdout: str) -> list[float]:
    return [float(line.split()[3]) for line in stdout.splitlines() if line.startswith("step ")]


def compile_and_run(module: ModuleOp, directory: Path, arrays=None, steps: int = 3,
                    threads: int = 8) -> CRun:
    data = emit_c_project(module, directory, arrays, steps)
    build(directory)
    names = [op.sym_name.data for op in module.ops if isinstance(op, nn.ParamOp)]
    stdout, params = run_project(directory, steps, threads, names=names)
    return CRun(data, losses_of(stdout), params, stdout)


def assert_c_matches_interpreter(module: ModuleOp, directory: Path, batch: dict,
                                 steps: int = 3) -> CRun:
    """Runs `steps` training steps of `module` in generated C and in the interpreter on
    `batch`: the same losses and parameters after them (1e-4 relative)."""
    from edge_opt.ir.session import Session

    result = compile_and_run(module, directory, batch, steps=steps)
    assert "OK" in result.stdout, result.stdout
    session = Session(module)
    losses = [float(session.run("train_step", batch)[0]) for _ in range(steps)]
    np.testing.assert_allclose(result.losses, losses, rtol=1e-4, atol=1e-6)
    for name, expected in session.params.items():
        np.testing.assert_allclose(
            result.params[name].reshape(expected.shape), expected, rtol=1e-4,
            atol=1e-5, err_msg=f"@{name}",
        )
    return result
