"""`batch-norm-to-group-norm{groups=G}`: replaces every `nn.batch_norm` by an
`nn.group_norm` with G groups, keeping its scale and shift.

    batch_norm(x, scale, bias, mean, var)  ->  group_norm(x, scale, bias, groups=G)

Group norm normalises each sample by itself: the C channels split into G groups of C / G,
each normalised over its channels and every other axis but the batch (G = 1: over all
of a sample's values, as a layer norm over (C, ...); G = C: per channel, an instance
norm), then `* scale + bias` per channel as before. So a model rewritten by this pass
couples no samples: gradient accumulation (`accumulate=k`) is exact for it at no extra
cost, and batch size 1 trains without noisy statistics. It is a different model: the
running statistics are dropped (their parameters go once nothing reads them), and the
pre-trained scale and shift were fitted to batch normalisation, so fine-tune after it
(Wu and He, "Group Normalization", 2018, propose G = 32 for ImageNet CNNs; small models
want a divisor of their smallest channel count).

Errors: a channel count that G does not divide; a group with one value per sample
(C / G = 1 and no other axis: its normalised value is always 0); a module that already
has a training step (run it before `autodiff` or a training pipeline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import SSAValue
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn, train
from edge_opt.ir.options import EdgeOptPass
from edge_opt.passes.frozen_params import erase_dead, erase_unreferenced, root_param

NAME = "batch-norm-to-group-norm"


def _where(op: nn.BatchNormOp) -> str:
    name = op.result.name_hint
    return f"nn.batch_norm %{name}" if name else "an nn.batch_norm"


def check_groups(op: nn.BatchNormOp, groups: int) -> None:
    """Raises if `op` cannot become a group norm of `groups` groups."""
    assert isinstance(op.input.type, TensorType)
    shape = op.input.type.get_shape()
    channels = shape[1]
    if channels % groups:
        raise PassFailedException(
            f"{NAME}: {_where(op)} has {channels} channels, which groups={groups} does "
            f"not divide; choose a divisor of {channels}"
        )
    if channels // groups * math.prod(shape[2:]) == 1:
        raise PassFailedException(
            f"{NAME}: with groups={groups}, a group of {_where(op)} (input "
            f"{list(shape)}) holds one value per sample, whose normalised value is "
            "always 0; choose fewer groups"
        )


class BatchNormToGroupNorm(RewritePattern):
    """One batch norm into a group norm of `groups` groups (see the module docstring);
    the running statistics it read are collected in `dropped`."""

    def __init__(self, groups: int):
        self.groups = groups
        self.dropped: list[SSAValue] = []

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.BatchNormOp, rewriter: PatternRewriter) -> None:
        norm = nn.GroupNormOp(op.input, op.scale, op.bias, self.groups,
                              op.epsilon.value.data)
        norm.result.name_hint = op.result.name_hint
        self.dropped += [op.mean, op.var]
        rewriter.replace(op, norm)


@dataclass(frozen=True)
class BatchNormToGroupNormPass(EdgeOptPass):
    """Replaces every batch norm by a group norm of `groups` groups with the same scale
    and shift and drops the running statistics (see the module docstring). Options:
    `groups` (default 1), which must divide every batch norm's channel count."""

    name = NAME

    groups: int = 1

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        trained = any(isinstance(o, train.StoreOp) for o in op.walk()) or any(
            isinstance(o, func.FuncOp) and o.sym_name.data == "train_step"
            for o in op.ops
        )
        if trained:
            raise PassFailedException(
                f"{NAME}: the module already has a training step; replace batch norm "
                "before autodiff (or a training pipeline)"
            )
        for norm in op.walk():
            if isinstance(norm, nn.BatchNormOp):
                check_groups(norm, self.groups)
        pattern = BatchNormToGroupNorm(self.groups)
        PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(op)
        roots = {name for v in pattern.dropped if (name := root_param(v)) is not None}
        erase_dead(pattern.dropped)
        erase_unreferenced(op, roots)
