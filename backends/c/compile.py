"""`--emit c`: from a module after its pipeline to a C project.

1. The test batch: the arrays of `--input` named like the inputs of the tested function
   (`@train_step` if the module has one, else `@forward`), or a seeded random batch.
2. The reference: the interpreter runs the function `steps` times on that batch (the
   interpreter is the specification); the C test checks against these numbers.
3. The module is lowered (`lower-to-buffers`: `lower-attention`, `bufferize`,
   `plan-memory`) unless it already is, then printed with the kernel runtime
   (`edge_opt.backends.c.project.write_project`). The driver runs that stage itself, in
   its pass pipeline, so that `--print-ir-after-all` shows it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp, TensorType
from xdsl.utils.exceptions import PassFailedException

from edge_opt.backends.c.emitter import EmitError
from edge_opt.backends.c.project import TestData, write_project
from edge_opt.ir.session import Session, get_function, input_names, label_inputs
from edge_opt.passes.lower_to_buffers import lower_to_buffers
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.errors import UserError


def tested_function(module: ModuleOp) -> str:
    names = {op.sym_name.data for op in module.ops if isinstance(op, func.FuncOp)}
    if "train_step" in names:
        return "train_step"
    if "forward" in names:
        return "forward"
    raise EmitError("the module has neither @train_step nor @forward")


def test_batch(module: ModuleOp, function: str, arrays: Mapping[str, np.ndarray] | None,
               seed: int = 0) -> dict[str, np.ndarray]:
    """The inputs of `@function`: from `arrays` by name, else drawn with `seed`."""
    fn = get_function(module, function)
    names = input_names(fn)
    if arrays is not None:
        missing = [n for n in names if n not in arrays]
        if missing:
            raise EmitError(
                f"the input arrays lack {', '.join(missing)} (@{function} takes "
                f"{', '.join(names)})"
            )
        return {n: np.asarray(arrays[n]) for n in names}
    rng = np.random.default_rng(seed)
    labels = label_inputs(fn)
    classes = next(iter(labels.values()), 2)
    batch = {}
    for name, arg in zip(names, fn.body.block.args):
        assert isinstance(arg.type, TensorType | MemRefType)
        dtype = numpy_dtype(arg.type.element_type)
        shape = arg.type.get_shape()
        if dtype.kind == "f":
            batch[name] = rng.standard_normal(shape).astype(dtype)
        else:
            batch[name] = rng.integers(0, classes, shape).astype(dtype)
    return batch


def emit_c_project(
    module: ModuleOp,
    directory: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray] | None = None,
    steps: int = 3,
    soc: str | None = None,
    weights: str | None = None,
    seed: int = 0,
    force: bool = False,
    inputs: Sequence[str | os.PathLike[str] | None] = (),
) -> TestData:
    """Writes the C project of `module` to `directory` (see the module docstring) and
    returns the test data it embeds. A module that is not planned yet is lowered for
    `soc` (default host) with parameters in `weights` (default L2); a planned one must
    not contradict them. `force` and `inputs` are those of `check_project_directory`,
    which `write_project` runs (the driver runs it before any work too)."""
    if steps < 1:
        raise EmitError(f"the test needs at least one step, got {steps}")
    function = tested_function(module)
    try:
        lowered = lower_to_buffers(module, soc, weights)
    except (PassFailedException, UserError) as e:
        raise EmitError(str(e)) from None
    batch = test_batch(lowered, function, arrays, seed)
    session = Session(lowered)
    results = [session.run(function, batch) for _ in range(steps)]
    if function == "train_step":
        reference = [np.array([float(r[0]) for r in results], np.float32)]
    else:
        reference = list(results[-1])
    data = TestData(function, batch, reference, steps)
    write_project(lowered, directory, data, force, inputs)
    return data
