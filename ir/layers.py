"""Parametrised layers of a forward function, for the layer-wise training strategies.

A *layer* is an op that computes on activations and reads parameters, together with the
element-wise `nn.add`/`nn.mul`/`nn.sub` of a parameter applied directly to its result (a
`MatMul` followed by its bias `Add`, as ONNX exporters write a linear layer, is one
layer). Values computed from parameters alone (a transposed or reshaped weight) are
traced back to their parameters, so the layer is the op that consumes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.dialects import func
from xdsl.ir import Operation, SSAValue

from edge_opt.dialects import nn


@dataclass
class Layer:
    """One parametrised layer: its ops in forward order and the parameters it reads."""

    ops: list[Operation]
    params: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """A readable label: the first op and its result."""
        op = self.ops[0]
        hint = op.results[0].name_hint if op.results else None
        return f"{op.name} %{hint}" if hint else op.name


_AFFINE_TAILS = (nn.AddOp, nn.MulOp, nn.SubOp)


def ancestors(*values: SSAValue) -> set[Operation]:
    """The ops `values` depend on."""
    result: set[Operation] = set()
    work = list(values)
    while work:
        owner = work.pop().owner
        if isinstance(owner, Operation) and owner not in result:
            result.add(owner)
            work.extend(owner.operands)
    return result


def _reaching_output(function: func.FuncOp) -> set[Operation]:
    """The ops the function's first result depends on."""
    returned = function.body.block.last_op
    assert returned is not None
    return ancestors(*returned.operands[:1])


def parametrised_layers(function: func.FuncOp) -> list[Layer]:
    """The layers of `function` that its first result (the one training's loss is on)
    depends on, in forward order (see the module docstring)."""
    param_valued: dict[SSAValue, list[str]] = {}
    layer_of: dict[SSAValue, Layer] = {}
    layers: list[Layer] = []
    reaching = _reaching_output(function)
    for op in function.body.block.ops:
        if op not in reaching:
            continue
        if isinstance(op, nn.LoadOp):
            param_valued[op.result] = [op.param.string_value()]
            continue
        if isinstance(op, nn.ConstantOp):
            param_valued[op.result] = []
            continue
        read = [p for o in op.operands for p in param_valued.get(o, [])]
        if op.operands and all(o in param_valued for o in op.operands):
            for r in op.results:
                param_valued[r] = _unique(read)
            continue
        if not read:
            continue
        layer = _tail_of(op, layer_of)
        if layer is None:
            layer = Layer([])
            layers.append(layer)
        layer.ops.append(op)
        layer.params = _unique([*layer.params, *read])
        for r in op.results:
            layer_of[r] = layer
    return layers


def _tail_of(op: Operation, layer_of: dict[SSAValue, Layer]) -> Layer | None:
    """The layer `op` extends if it is an affine tail of a layer's single-use result."""
    if not isinstance(op, _AFFINE_TAILS):
        return None
    for operand in op.operands:
        layer = layer_of.get(operand)
        if layer is not None and operand.has_one_use():
            return layer
    return None


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))
