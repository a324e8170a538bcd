"""Helpers of the passes that choose what trains: they only change `nn.param`'s
`trainable` flag; optimizer-state parameters are never trainable."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp, UnitAttr

from edge_opt.dialects import nn
from edge_opt.passes.autodiff import STATE_ATTR


def model_params(module: ModuleOp) -> list[nn.ParamOp]:
    """The model's parameters (not optimizer state), in declaration order."""
    return [
        op
        for op in module.ops
        if isinstance(op, nn.ParamOp) and STATE_ATTR not in op.attributes
    ]


def set_trainable(param: nn.ParamOp, trainable: bool) -> None:
    if trainable:
        param.properties["trainable"] = UnitAttr()
    else:
        param.properties.pop("trainable", None)
