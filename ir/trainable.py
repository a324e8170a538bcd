"""Helpers of the passes that choose what trains: they only change `nn.param`'s
`trainable` flag; optimizer-state parameters are never trainable."""

from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp, UnitAttr

from edge_opt.dialects import nn
from edge_opt.dialects.train import is_optimizer_state


def model_params(module: ModuleOp) -> list[nn.ParamOp]:
    """The model's parameters (not optimizer state), in declaration order."""
    return [
        op
        for op in module.ops
        if isinstance(op, nn.ParamOp) and not is_optimizer_state(op)
    ]


def set_trainable(param: nn.ParamOp, trainable: bool) -> None:
    if trainable:
        param.properties["trainable"] = UnitAttr()
    else:
        param.properties.pop("trainable", None)
