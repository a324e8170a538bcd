"""`fold-batch-norm`: folds an inference-mode batch norm into the convolution or linear
layer before it, when all of their parameters are frozen.

    y = batch_norm(conv(x, w, b), scale, bias, mean, var)
      = conv(x, w * s, (b - mean) * s + bias)      with s = scale / sqrt(var + eps)

per output channel (`nn.conv2d`: weight axis 0, any groups; `nn.linear` with a (N, C)
result). The folded weight and bias are new frozen parameters
(`@<weight>__bn_folded`, `@<bias or bn>__bn_folded`), computed in float64 and rounded
once to the parameters' type; the batch norm, and parameters nothing reads any more,
go. A frozen layer then costs one op instead of two in the forward and keeps nothing
for the batch norm's backward (its input gradient still flows through the folded
convolution). The numbers change by rounding only (the property tests compare with the
element type's tolerances).

Not folded: a trainable parameter among the six (training would change them apart), a
batch norm in training mode or whose input has other users, a transposed convolution.
Run it before `autodiff` (a training pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint

from edge_opt.dialects import nn
from edge_opt.ir.options import EdgeOptPass
from edge_opt.passes.frozen_params import (
    FrozenParams,
    FrozenValues,
    NotFrozen,
    erase_dead,
    erase_unreferenced,
    root_param,
)


def folded(w: np.ndarray, b: np.ndarray, scale: np.ndarray, bias: np.ndarray,
           mean: np.ndarray, var: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The weight (output channels first) and bias of the layer with the batch norm
    folded in, in float64."""
    s = scale.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    weight = w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))
    return weight, (b.astype(np.float64) - mean) * s + bias


class FoldBatchNorm(RewritePattern):
    """One batch norm into the layer before it (see the module docstring)."""

    def __init__(self, module: ModuleOp):
        self.values = FrozenValues(module)
        self.params = FrozenParams(module)
        self.replaced: list[SSAValue] = []
        """The operands of the folded layers, for `erase_dead` once the walk is done."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.BatchNormOp, rewriter: PatternRewriter) -> None:
        layer = op.input.owner
        if op.training is not None or not isinstance(layer, nn.Conv2dOp | nn.LinearOp):
            return
        if not layer.result.has_one_use():
            return
        if isinstance(layer, nn.LinearOp) and len(layer.result.type.get_shape()) != 2:
            return  # the batch norm's channels (axis 1) are not the features
        try:
            w = self.values(layer.weight, "the weight")
            channels = w.shape[0]
            b = (self.values(layer.bias, "the bias") if layer.bias is not None
                 else np.zeros(channels))
            scale, bias, mean, var = (self.values(v, name) for v, name in (
                (op.scale, "the scale"), (op.bias, "the shift"), (op.mean, "the mean"),
                (op.var, "the variance")))
        except NotFrozen:
            return
        weight, shift = folded(w, b, scale, bias, mean, var, op.epsilon.value.data)
        new_w = self._load(layer.weight, root_param(layer.weight), weight, rewriter, op)
        bias_root = root_param(layer.bias) if layer.bias is not None else None
        new_b = self._load(layer.weight, bias_root or root_param(op.scale) or "bn",
                           shift, rewriter, op)
        if isinstance(layer, nn.Conv2dOp):
            replacement: Operation = nn.Conv2dOp(layer.input, new_w, new_b,
                                                 **layer.conv_attributes())
        else:
            replacement = nn.LinearOp(layer.input, new_w, new_b)
        replacement.results[0].name_hint = op.result.name_hint
        self.replaced += [*layer.operands[1:], *op.operands[1:]]
        rewriter.replace(op, replacement)
        rewriter.erase(layer)

    def _load(self, like: SSAValue, root: str | None, array: np.ndarray,
              rewriter: PatternRewriter, before: Operation) -> SSAValue:
        assert isinstance(like.type, TensorType)
        name, type = self.params.declare(f"{root or 'folded'}__bn_folded", array,
                                         like.type.element_type, root)
        load = nn.LoadOp(name, type)
        load.result.name_hint = name
        rewriter.insert(load, InsertPoint.before(before))
        return load.result


@dataclass(frozen=True)
class FoldBatchNormPass(EdgeOptPass):
    """Folds frozen inference-mode batch norms into the layer before them (see the
    module docstring)."""

    name = "fold-batch-norm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        pattern = FoldBatchNorm(op)
        PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(op)
        roots = {name for v in pattern.replaced if (name := root_param(v)) is not None}
        erase_dead(pattern.replaced)
        erase_unreferenced(op, roots)
