"""Test-case reduction on the IR, after hypothesis's shrinking.

Hypothesis shrinks the *choices* that built a model; a choice that an op's operand
picking depends on can keep a chain of ops alive (`relu(relu(relu(x)))` feeding the op
that shows the bug). `reduce_module` then removes ops from `@forward` itself, in the
way of `mlir-reduce` and C-Reduce: it bypasses an op (its uses take one of its operands
or a function input of the same type), replaces a computed value by a constant of
ones, returns an earlier value instead of the function's results, drops extra
results, removes what became dead, and keeps each
step only while the property still fails with the same kind of error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np
from hypothesis.errors import UnsatisfiedAssumption
from xdsl.dialects import func
from xdsl.dialects.builtin import FunctionType, ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.transforms.dead_code_elimination import region_dce
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn
from edge_opt.ir.session import get_function
from edge_opt.support.dtypes import numpy_dtype, to_dense
from edge_opt.testing.strategies import RandomModel

Property = Callable[[RandomModel], None]


def failure_of(check: Property, module: ModuleOp,
               inputs: Mapping[str, np.ndarray]) -> Exception | None:
    """The error `check` raises on the model (None if it passes, refuses or rejects
    it)."""
    try:
        check(RandomModel(module, dict(inputs)))
    except (PassFailedException, UnsatisfiedAssumption):
        return None
    except Exception as e:  # noqa: BLE001  (any failure counts, as in the campaign)
        return e
    return None


def reduce_module(
    check: Property,
    module: ModuleOp,
    inputs: Mapping[str, np.ndarray],
    error: Exception,
    max_checks: int = 400,
) -> tuple[ModuleOp, Exception]:
    """A smaller module on which `check` still fails with an error of `error`'s type
    (and that error), or `module` itself; at most `max_checks` candidates are tried."""
    kind, checks = type(error), 0
    improved = True
    while improved and checks < max_checks:
        improved = False
        for candidate in _candidates(module):
            checks += 1
            found = failure_of(check, candidate, inputs)
            if type(found) is kind:
                module, error, improved = candidate, found, True  # type: ignore[assignment]
                break
            if checks >= max_checks:
                break
    return module, error


def _candidates(module: ModuleOp) -> Iterator[ModuleOp]:
    """Each a copy of `module` one step smaller (that verifies)."""
    outputs = len(get_function(module, "forward").function_type.outputs.data)
    for index in range(outputs - 1, -1, -1) if outputs > 1 else ():
        candidate = _without_output(module, index)
        if candidate is not None:
            yield candidate
    count = len(_body_ops(module))
    for position in range(count - 1):
        candidate = _returning(module, position)
        if candidate is not None:
            yield candidate
    for position in range(count - 1, -1, -1):
        for choice in range(_replacements(module, position)):
            candidate = _bypassed(module, position, choice)
            if candidate is not None:
                yield candidate
    for position in range(count - 1, -1, -1):
        candidate = _as_ones(module, position)
        if candidate is not None:
            yield candidate


def _body_ops(module: ModuleOp) -> list[Operation]:
    block = get_function(module, "forward").body.block
    return [op for op in block.ops if not isinstance(op, func.ReturnOp)]


def _values_like(op: Operation) -> list[SSAValue]:
    """What may stand in for `op`'s single result: its operands and the function's
    inputs of the same type."""
    (result,) = op.results
    block = op.parent_block()
    assert block is not None
    values = [*op.operands, *block.args]
    unique: list[SSAValue] = []
    for v in values:
        if v.type == result.type and v not in unique:
            unique.append(v)
    return unique


def _replacements(module: ModuleOp, position: int) -> int:
    op = _body_ops(module)[position]
    return len(_values_like(op)) if len(op.results) == 1 else 0


def _bypassed(module: ModuleOp, position: int, choice: int) -> ModuleOp | None:
    clone = module.clone()
    op = _body_ops(clone)[position]
    replacement = _values_like(op)[choice]
    op.results[0].replace_all_uses_with(replacement)
    Rewriter.erase_op(op)
    return _cleaned(clone)


def _as_ones(module: ModuleOp, position: int) -> ModuleOp | None:
    """`module` with the result of the op at `position` replaced by a constant of ones
    (which ends a chain of ops that only computed an operand), if it is a float
    tensor computed by an op other than a constant."""
    op = _body_ops(module)[position]
    if isinstance(op, nn.ConstantOp) or len(op.results) != 1:
        return None
    type = op.results[0].type
    if not isinstance(type, TensorType) or numpy_dtype(type.element_type).kind != "f":
        return None
    clone = module.clone()
    op = _body_ops(clone)[position]
    ones = np.ones(type.get_shape(), numpy_dtype(type.element_type))
    constant = nn.ConstantOp(to_dense(ones, type))
    Rewriter.insert_op(constant, InsertPoint.before(op))
    op.results[0].replace_all_uses_with(constant.result)
    Rewriter.erase_op(op)
    return _cleaned(clone)


def _returning(module: ModuleOp, position: int) -> ModuleOp | None:
    """`module` whose `@forward` returns the result of the op at `position` instead
    (what follows it becomes dead)."""
    if len(_body_ops(module)[position].results) != 1:
        return None
    clone = module.clone()
    op = _body_ops(clone)[position]
    function = get_function(clone, "forward")
    ret = function.body.block.last_op
    assert isinstance(ret, func.ReturnOp)
    Rewriter.replace_op(ret, func.ReturnOp(op.results[0]))
    function.function_type = FunctionType.from_lists(
        function.function_type.inputs.data, [op.results[0].type]
    )
    function.res_attrs = None
    return _cleaned(clone)


def _without_output(module: ModuleOp, index: int) -> ModuleOp | None:
    clone = module.clone()
    function = get_function(clone, "forward")
    ret = function.body.block.last_op
    assert isinstance(ret, func.ReturnOp)
    kept = [v for i, v in enumerate(ret.arguments) if i != index]
    Rewriter.replace_op(ret, func.ReturnOp(*kept))
    function.function_type = FunctionType.from_lists(
        function.function_type.inputs.data, [v.type for v in kept]
    )
    if function.res_attrs is not None:
        function.res_attrs = type(function.res_attrs)(
            [a for i, a in enumerate(function.res_attrs.data) if i != index]
        )
    return _cleaned(clone)


def _cleaned(module: ModuleOp) -> ModuleOp | None:
    """`module` without dead ops and unread parameters, or None if it does not
    verify."""
    region_dce(get_function(module, "forward").body)
    read = {op.param.string_value() for op in module.walk() if isinstance(op, nn.LoadOp)}
    for op in list(module.ops):
        if isinstance(op, nn.ParamOp) and op.sym_name.data not in read:
            Rewriter.erase_op(op)
    try:
        module.verify()
    except Exception:  # noqa: BLE001  (a candidate that does not verify is skipped)
        return None
    return module
