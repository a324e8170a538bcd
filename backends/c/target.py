"""`-t c`: the C backend as an xDSL output target.

`edge-opt model.mlir --pipeline train-full -t 'c{dir=build/m steps=5 input=batch.npz}'`
(or, the same, `--emit c -o build/m --steps 5 --input batch.npz`) writes the C project
of a buffer-level, planned module (see `edge_opt.backends.c.compile`). The driver lowers
the module first with the `lower-to-buffers{soc weights}` stage when the pipeline has not,
so `--print-ir-after-all` shows every step; called on a module that is not planned, the
target lowers it for host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target

from edge_opt.backends.c.compile import emit_c_project
from edge_opt.backends.c.emitter import EmitError
from edge_opt.backends.c.project import check_project_directory
from edge_opt.ir import model_io
from edge_opt.support.errors import UserError


@dataclass(frozen=True)
class CTarget(Target):
    """A C project: the network, the kernel runtime, a test against the interpreter."""

    name: ClassVar[str] = "c"

    dir: str | None = None
    """The project directory (required; the driver's `-o`)."""
    steps: int = 3
    """Steps of the generated test."""
    input: str | None = None
    """An .npz with the batch the test runs (arrays named like the tested function's
    inputs); default a seeded random batch."""
    seed: int = 0
    """Seed of the random batch."""
    force: bool = False
    """Replace `dir` even if it holds files edge-opt did not write (never an input)."""
    inputs: tuple[str, ...] = ()
    """Files `dir` must not hold (the driver's input model, its sidecar, `--params`);
    `input` is always one."""

    def check(self) -> None:
        """Refuses a project directory that would lose a user's file (the driver calls it
        before any work; writing the project checks again)."""
        if self.dir is None:
            raise UserError("the C target writes a project directory: give it with -o DIR "
                            "(or -t 'c{dir=DIR}')")
        try:
            check_project_directory(self.dir, (*self.inputs, self.input), self.force)
        except EmitError as e:
            raise UserError(f"cannot emit C: {e}") from None

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        if self.dir is None:
            raise UserError("the C target writes a project directory: give it with -o DIR "
                            "(or -t 'c{dir=DIR}')")
        arrays = model_io.read_npz(self.input) if self.input else None
        try:
            data = emit_c_project(module, self.dir, arrays, self.steps, seed=self.seed,
                                  force=self.force, inputs=(*self.inputs, self.input))
        except EmitError as e:
            raise UserError(f"cannot emit C: {e}") from None
        output.write(
            f"wrote {self.dir}/ (test of @{data.function}, {data.steps} step(s); build and "
            f"run with: make -C {self.dir} host)\n"
        )
