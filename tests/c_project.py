"""Builds and runs generated C projects in tests (gcc on the host)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import ModuleOp

from edge_opt.backends.c import host
from edge_opt.backends.c.compile import emit_c_project
from edge_opt.backends.c.host import losses_of
from edge_opt.backends.c.project import TestData
from edge_opt.dialects import nn


@dataclass
class CRun:
    data: TestData
    losses: list[float]
    params: dict[str, np.ndarray]
    stdout: str


def build(directory: Path, binary: str = "network_test") -> Path:
    try:
        return host.build(directory, binary)
    except host.HostError as e:
        raise AssertionError(str(e)) from None


def run_project(directory: Path, steps: int, threads: int = 8,
                binary: str = "network_test", names: Iterable[str] = ()
                ) -> tuple[str, dict[str, np.ndarray]]:
    """Runs the test binary; returns its output and the dumped parameters (in
    `directory/params_<binary>_<threads>`), by file stem, and by name for `names`."""
    names = list(names)
    try:
        result = host.run(directory, steps, threads, binary, names,
                          dump=directory / f"params_{binary}_{threads}")
    except host.HostError as e:
        raise AssertionError(str(e)) from None
    return result.stdout + result.stderr, result.params


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
