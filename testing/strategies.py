"""The `random_models` strategy: random, well-typed `nn` models (how it works is in the
docstring of `edge_opt.testing`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32, f64
from xdsl.ir import Attribute, Block, Region, SSAValue

from edge_opt.ir.model_io import print_module
from edge_opt.testing.builder import Draw, Trainable, _Builder
from edge_opt.testing.generators import Generator, active_generators

DType = Literal["f32", "f64"]

_ELEMENT_TYPES: dict[str, Attribute] = {"f32": f32, "f64": f64}


@dataclass
class RandomModel:
    """A drawn model: a verified module with `func.func @forward` (parameters inline as
    `nn.param` values) and inputs for it, by input name."""

    module: ModuleOp
    inputs: dict[str, np.ndarray]

    def __repr__(self) -> str:
        small = sum(v.size for v in self.inputs.values()) <= 64
        inputs = ", ".join(
            f"{k!r}: " + (repr(v) if small else f"<{v.dtype}{list(v.shape)}>")
            for k, v in self.inputs.items()
        )
        return f"RandomModel(inputs={{{inputs}}}, module=\n{print_module(self.module)})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # Hypothesis prints dataclasses field by field, and an xDSL op's repr is huge.
        printer.text(repr(self))


# --------------------------------------------------------------------------------------
# The strategy
# --------------------------------------------------------------------------------------


def random_models(
    *,
    ops: Sequence[str] | None = None,
    min_ops: int = 1,
    max_ops: int = 8,
    dtype: DType = "f32",
    batch: Sequence[int] = (1, 2),
    max_dim: int = 4,
    trainable: Trainable = "mixed",
    max_inputs: int = 2,
) -> st.SearchStrategy[RandomModel]:
    """A strategy of random, well-typed `nn` models (see the module docstring).

    - `ops`: the op names to draw from (a subset of `ALL_OPS` and of the active
      plugins' ops, see `extra_generators`; default all of them). Glue ops that adapt shapes or keep values tame may appear besides them.
    - `min_ops`/`max_ops`: how many ops to draw (each may bring glue ops with it).
    - `dtype`: element type of every tensor.
    - `batch`: sizes of the leading (batch) axis of the inputs.
    - `max_dim`: the largest axis size drawn; results that grow past twice that
      (`max_dim ** 2` for vectors and matrices) are cut back by a strided slice.
    - `trainable`: which parameters are marked trainable ("mixed" draws each flag).
    - `max_inputs`: how many function inputs at most (at least one).

    About one op in eight repeats an earlier op (work for CSE), and results nobody uses
    are returned, or, one in four, left dead (work for DCE; the newest result is always
    returned).
    """
    generators = active_generators()
    names = tuple(generators if ops is None else ops)
    unknown = sorted(set(names) - set(generators))
    if unknown or not names:
        raise ValueError(
            f"random_models: unknown op names {unknown} (known: {', '.join(generators)})"
            if unknown
            else "random_models: ops must name at least one op"
        )
    if not 1 <= min_ops <= max_ops:
        raise ValueError(
            f"random_models: need 1 <= min_ops ({min_ops}) <= max_ops ({max_ops})"
        )
    if dtype not in _ELEMENT_TYPES:
        raise ValueError(f"random_models: dtype must be 'f32' or 'f64', got {dtype!r}")
    if trainable not in ("all", "none", "mixed"):
        raise ValueError(
            f"random_models: trainable must be all, none or mixed, got {trainable!r}"
        )
    if not batch or min(batch) < 1 or max_dim < 1 or max_inputs < 1:
        raise ValueError(
            "random_models: batch sizes, max_dim and max_inputs must be >= 1"
        )
    return _models(
        {name: generators[name] for name in names}, min_ops, max_ops, _ELEMENT_TYPES[dtype], tuple(batch), max_dim,
        trainable, max_inputs,
    )


INPUT_OFFSETS = (0.0, -3.0, 0.0, 3.0)
"""The means of the inputs' standard normal values, drawn per input (shrinks to 0)."""


@st.composite
def _models(
    draw: Draw,
    generators: dict[str, Generator],
    min_ops: int,
    max_ops: int,
    element: Attribute,
    batch: tuple[int, ...],
    max_dim: int,
    trainable: Trainable,
    max_inputs: int,
) -> RandomModel:
    input_types = []
    for _ in range(draw(st.integers(1, max_inputs))):
        rank = draw(st.integers(2, 4))
        shape = (
            draw(st.sampled_from(batch)),
            *(draw(st.integers(1, max_dim)) for _ in range(rank - 1)),
        )
        input_types.append(TensorType(element, shape))
    block = Block(arg_types=input_types)
    b = _Builder(draw, element, max_dim, trainable, block, drawn=frozenset(generators))
    inputs: dict[str, np.ndarray] = {}
    for i, arg in enumerate(block.args):
        arg.name_hint = f"x{i}"
        # Half the inputs are centred off zero (an activation after a bias is): a pass
        # that is right only for values of both signs in a window (an activation moved
        # past a max-pool) must meet windows of one sign.
        offset = draw(st.sampled_from(INPUT_OFFSETS))
        array = (offset + b.rng().standard_normal(arg.type.get_shape())).astype(b.dtype)
        inputs[f"x{i}"] = array
        b.values[arg] = array
        b.pool.append(arg)

    results: list[SSAValue] = []
    for index in range(draw(st.integers(min_ops, max_ops))):
        if block.ops and draw(st.integers(0, 7)) == 7:
            # A repeated subexpression: the same op on the same operands.
            ops = list(block.ops)
            result = b.emit(ops[-1 - b.integer(0, len(ops) - 1)].clone())
        else:
            name = draw(st.sampled_from(list(generators)))
            b.layer = f"{name}{index}".replace(".", "_")
            result = b.fit(generators[name](b))
        b.pool.append(result)
        results.append(result)

    # Three in four unused results are returned: a dead one hides what a pass did to
    # it (e.g. a max-pool of an activation), so most stay observable.
    outputs = [r for r in results[:-1] if not r.uses
               and not (draw(st.booleans()) and draw(st.booleans()))]
    outputs.append(results[-1])
    block.add_op(func.ReturnOp(*outputs))
    function = func.FuncOp(
        "forward", (input_types, [o.type for o in outputs]), Region(block)
    )
    module = ModuleOp([*b.params, function])
    module.verify()
    return RandomModel(module, inputs)
