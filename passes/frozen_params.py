"""Compile-time values of frozen parameters, for passes that precompute with them
(`fuse-attention-weights`, `fold-batch-norm`): reading an operand's value when it comes
from a frozen parameter or a constant (through data-movement ops), declaring new frozen
parameters beside the ones they replace, and erasing what nothing reads any more."""

from __future__ import annotations

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, SymbolRefAttr, TensorType
from xdsl.interpreter import Interpreter
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.rewriter import Rewriter
from xdsl.traits import SymbolTable

from edge_opt.dialects import nn
from edge_opt.ir.interpreters.nn import NnFunctions
from edge_opt.support.dtypes import numpy_dtype, to_dense, to_numpy

DATA_MOVEMENT = (
    nn.ReshapeOp, nn.TransposeOp, nn.SliceOp, nn.GatherOp, nn.SqueezeOp, nn.UnsqueezeOp,
)
"""Ops through which a weight operand still counts as read from its parameter."""


class NotFrozen(Exception):
    """An operand that is not a frozen parameter's (or a constant's) value."""


class FrozenValues:
    """The values of operands read from frozen parameters (or constants)."""

    def __init__(self, module: ModuleOp):
        self.module = module
        """Looked up at each read: a rewrite may read a parameter an earlier rewrite
        declared (a batch norm folded into a layer another batch norm was folded
        into)."""
        self.interpreter = Interpreter(ModuleOp([]))  # single ops, no symbol lookups
        self.interpreter.register_implementations(NnFunctions())

    def __call__(self, value: SSAValue, what: str) -> np.ndarray:
        owner = value.owner
        if isinstance(owner, nn.LoadOp):
            name = owner.param.string_value()
            param = SymbolTable.lookup_symbol(self.module, name)
            assert isinstance(param, nn.ParamOp), f"@{name} is not a parameter"
            if param.is_trainable:
                raise NotFrozen(f"{what} @{name} is trainable")
            if param.value is None:
                raise NotFrozen(f"{what} @{name} has no value")
            return to_numpy(param.value)
        if isinstance(owner, nn.ConstantOp):
            return owner.array()
        if isinstance(owner, DATA_MOVEMENT):
            source = self(owner.operands[0], what)
            (result,) = self.interpreter.run_op(owner, (source,))
            return np.asarray(result)
        made = owner.name if isinstance(owner, Operation) else "a function argument"
        raise NotFrozen(f"{what} is {made}, not a parameter")


def root_param(value: SSAValue) -> str | None:
    """The parameter an operand is read from (through data-movement ops)."""
    owner = value.owner
    while isinstance(owner, DATA_MOVEMENT):
        owner = owner.operands[0].owner
    return owner.param.string_value() if isinstance(owner, nn.LoadOp) else None


class FrozenParams:
    """Declares new frozen parameters with inline values and unique names."""

    def __init__(self, module: ModuleOp):
        self.module = module
        self.names = {op.sym_name.data for op in module.ops if isinstance(op, nn.ParamOp)}

    def declare(self, stem: str, array: np.ndarray, element: Attribute,
                after: str | None) -> tuple[str, TensorType]:
        """Declares `array` (rounded to `element`) as `@stem` (`@stem_2`, ... if taken)
        after the parameter `after` (else after the last one); returns its name and
        type."""
        type = TensorType(element, array.shape)
        name, n = stem, 1
        while name in self.names:
            n += 1
            name = f"{stem}_{n}"
        self.names.add(name)
        value = to_dense(array.astype(numpy_dtype(type.element_type)), type)
        param = nn.ParamOp(name, type, False, value)
        block = self.module.body.block
        declared = [o for o in block.ops if isinstance(o, nn.ParamOp)]
        previous = next((o for o in declared if o.sym_name.data == after), None)
        if previous is None and declared:
            previous = declared[-1]
        if previous is not None:
            block.insert_op_after(param, previous)
        elif block.first_op is not None:
            block.insert_op_before(param, block.first_op)
        else:
            block.add_op(param)
        return name, type


def erase_dead(values: list[SSAValue]) -> None:
    """Erases the loads, constants and data-movement ops feeding `values` that nothing
    uses any more."""
    while values:
        owner = values.pop().owner
        if isinstance(owner, (nn.LoadOp, nn.ConstantOp, *DATA_MOVEMENT)) and \
                owner.parent is not None and not owner.results[0].uses:
            operands = list(owner.operands)
            Rewriter.erase_op(owner)
            values.extend(operands)


def erase_unreferenced(module: ModuleOp, names: set[str]) -> None:
    """Erases the parameters of `names` that no op names any more (in a property, e.g.
    a load, or an attribute, e.g. optimizer state's `state_of`)."""
    referenced = {
        value.string_value() for op in module.walk() if not isinstance(op, func.FuncOp)
        for value in (*op.properties.values(), *op.attributes.values())
        if isinstance(value, SymbolRefAttr)
    }
    for op in list(module.ops):
        if isinstance(op, nn.ParamOp) and op.sym_name.data in names - referenced:
            Rewriter.erase_op(op)
