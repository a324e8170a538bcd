"""`--emit c`: from a module after its pipeline to a C project.

1. The test batch: the arrays of `--input` named like the inputs of the tested function
   (`@train_step` if the module has one, else `@forward`), or a seeded random batch.
2. The reference: the interpreter runs the function `steps` times on that batch (the
   interpreter is the specification); the C test checks against these numbers.
3. The module is lowered (`bufferize`, `plan-memory`) unless it already is, then printed
   with the kernel runtime (`edge_opt.backends.c.project.write_project`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import MemRefType, ModuleOp, TensorType
from xdsl.utils.exceptions import PassFailedException

from edge_opt.backends.c.emitter import EmitError
from edge_opt.backends.c.project import TestData, write_project
from edge_opt.dialects import train
from edge_opt.dialects.kernel import MEMORY_ATTR
from edge_opt.ir.session import Session, get_function, input_names
from edge_opt.passes.bufferize import BufferizePass
from edge_opt.passes.lower_attention import LowerAttentionPass
from edge_opt.passes.plan_memory import PlanMemoryPass
from edge_opt.support.dtypes import numpy_dtype


def tested_function(module: ModuleOp) -> str:
    names = {op.sym_name.data for op in module.ops if isinstance(op, func.FuncOp)}
    if "train_step" in names:
        return "train_step"
    if "forward" in names:
        return "forward"
    raise EmitError("the module has neither @train_step nor @forward")


def _classes(function: func.FuncOp) -> int:
    for op in function.body.block.ops:
        if isinstance(op, train.CrossEntropyOp):
            assert isinstance(op.logits.type, TensorType)
            return op.logits.type.get_shape()[-1]
    return 2


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
    batch = {}
    for name, arg in zip(names, fn.body.block.args):
        assert isinstance(arg.type, TensorType | MemRefType)
        dtype = numpy_dtype(arg.type.element_type)
        shape = arg.type.get_shape()
        if dtype.kind == "f":
            batch[name] = rng.standard_normal(shape).astype(dtype)
        else:
            batch[name] = rng.integers(0, _classes(fn), shape).astype(dtype)
    return batch


def lower(module: ModuleOp, target: str, weights: str) -> ModuleOp:
    """A planned, buffer-level copy of `module` (the module itself if it is one)."""
    if MEMORY_ATTR in module.attributes:
        return module

    lowered = module.clone()
    stages = (LowerAttentionPass(), BufferizePass(weights=weights),
              PlanMemoryPass(target=target))  # type: ignore[arg-type]
    for p in stages:
        p.apply(Context(), lowered)
        lowered.verify()
    return lowered


def emit_c_project(
    module: ModuleOp,
    directory: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray] | None = None,
    steps: int = 3,
    target: str = "host",
    weights: str = "L2",
    seed: int = 0,
) -> TestData:
    """Writes the C project of `module` to `directory` (see the module docstring) and
    returns the test data it embeds."""
    if steps < 1:
        raise EmitError(f"the test needs at least one step, got {steps}")
    function = tested_function(module)
    try:
        lowered = lower(module, target, weights)
    except PassFailedException as e:
        raise EmitError(str(e)) from None
    batch = test_batch(module, function, arrays, seed)
    session = Session(lowered)
    results = [session.run(function, batch) for _ in range(steps)]
    if function == "train_step":
        reference = [np.array([float(r[0]) for r in results], np.float32)]
    else:
        reference = list(results[-1])
    data = TestData(function, batch, reference, steps)
    write_project(lowered, directory, data)
    return data
