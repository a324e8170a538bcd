"""`select-last-layers`: trains only the last k parametrised layers."""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from edge_opt.autodiff.train_step import find_function
from edge_opt.ir.layers import parametrised_layers
from edge_opt.ir.options import EdgeOptPass
from edge_opt.ir.trainable import model_params, set_trainable


@dataclass(frozen=True)
class SelectLastLayersPass(EdgeOptPass):
    """Trains only the last `layers` parametrised layers of `@function` (see
    `edge_opt.ir.layers`): their parameters keep their `trainable` flag, every other
    parameter is frozen. Layers without a trainable parameter do not count.
    (TrainDeeploy's linear probing is `layers=1`.)"""

    name = "select-last-layers"

    layers: int = 1
    function: str = "forward"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        params = {p.sym_name.data: p for p in model_params(op)}
        candidates = [
            layer
            for layer in parametrised_layers(find_function(op, self.function))
            if any(params[n].is_trainable for n in layer.params if n in params)
        ]
        if len(candidates) < self.layers:
            raise PassFailedException(
                f"select-last-layers: layers={self.layers}, but @{self.function} has "
                f"only {len(candidates)} layer(s) with trainable parameters"
            )
        keep = {n for layer in candidates[-self.layers :] for n in layer.params}
        for name, param in params.items():
            if name not in keep:
                set_trainable(param, False)
