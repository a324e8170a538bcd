"""What the `nn` and `train` interpreters share: op semantics as a table (op type ->
a function of the op and its operands' values), registered as xDSL `@impl`s, and the
cast of every result to its declared type."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Operation

from edge_opt.support.dtypes import numpy_dtype

Semantics = Callable[[Any, tuple], Any]
"""An op's value(s) from the op (its attributes) and its operands' values: one array
for a one-result op, a tuple for several."""


def typed_results(op: Operation, values: tuple[Any, ...]) -> tuple[np.ndarray, ...]:
    """Each result cast to its declared element type (NumPy promotes Python scalars and
    mixed dtypes); a shape other than the declared one is an interpreter bug."""
    out = []
    for result, value in zip(op.results, values, strict=True):
        assert isinstance(result.type, TensorType)
        array = np.asarray(value, dtype=numpy_dtype(result.type.element_type))
        assert array.shape == tuple(result.type.get_shape()), (
            f"{op.name}: interpreter produced shape {array.shape}, type says "
            f"{result.type}"
        )
        out.append(array)
    return tuple(out)


def result_shape(op: Operation) -> tuple[int, ...]:
    type = op.results[0].type
    assert isinstance(type, TensorType)
    return type.get_shape()


def is_set(attribute: object) -> bool:
    """Whether a unit attribute is set."""
    return attribute is not None


def _impl(op_type: type[Operation], semantics: Semantics):
    def run(self: InterpreterFunctions, interpreter: Interpreter, op: Operation,
            args: tuple):
        values = semantics(op, args)
        return typed_results(op, values if len(op.results) > 1 else (values,))

    return impl(op_type)(run)


def register_semantics(
    functions: type[InterpreterFunctions], table: Mapping[type[Operation], Semantics]
) -> None:
    """Adds an `@impl` to `functions` for every entry of `table` and registers them."""
    for op_type, semantics in table.items():
        name = op_type.name.partition(".")[2]
        setattr(functions, f"run_{name}", _impl(op_type, semantics))
    register_impls(functions)
