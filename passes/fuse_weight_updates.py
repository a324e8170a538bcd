"""`fuse-weight-updates`: plain-SGD updates fused with the weight gradient they apply,
so that no whole weight gradient is ever stored.

With plain SGD the training step computes each weight's gradient into a buffer of the
weight's size (`train.linear_grad_weight`, `train.conv2d_grad_weight`) and only then
applies it (`train.sgd`); at the end of a backward pass a large weight gradient is live
with the layer's other backward buffers and can set the peak. This pass rewrites

    %dw = train.conv2d_grad_weight %dy, %x {...}
    %new = train.sgd %w, %dw {lr, weight_decay}

into `%new = train.conv2d_grad_weight_sgd %dy, %x, %w {lr, weight_decay, chunk_rows,
...}` (`train.linear_grad_weight_sgd` for a linear layer): the same numbers (the
interpreter runs the pair's numerics), placed where the `train.sgd` was. At the buffer
level the fused kernel writes the new weight into the parameter's buffer and computes
the gradient `chunk_rows` output rows at a time (output channels of a convolution,
output features of a linear layer) into a workspace of that many rows, which the memory
planner places like any buffer; then it applies SGD to those rows.

Only a gradient whose single use is the `train.sgd` is fused: momentum and Adam keep
their gradient (their update reads it whole), a gradient summed over several uses of the
weight is left alone, and so are grouped convolutions (the C kernel takes groups = 1).

Options: `chunk-bytes` (default 16384): the workspace's size in bytes, rounded down to
whole rows, at least one row and at most the whole weight. `edge-opt report` shows the
graph-level peak of each function before and after ("memory passes"; the tensor-level
model does not count the workspace, the planned buffer level does).

On a tiled SoC `tile-l1` cuts the fused kernels by the weight's rows and columns only,
never the dimensions the gradient sums over, each tile with its own L1 workspace
(`edge_opt.ir.tiling`, the rule for the fused weight updates).
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from edge_opt.dialects import train
from edge_opt.ir.memory_passes import record
from edge_opt.ir.op_graph import function_peak
from edge_opt.ir.options import EdgeOptPass
from edge_opt.support.dtypes import numpy_dtype

CHUNK_BYTES = 16384


def chunk_rows(weight: TensorType, chunk_bytes: int) -> int:
    """How many of `weight`'s output rows fit `chunk_bytes` (at least one, at most
    all)."""
    shape = weight.get_shape()
    row_bytes = numpy_dtype(weight.element_type).itemsize
    for size in shape[1:]:
        row_bytes *= size
    return max(1, min(shape[0], chunk_bytes // max(row_bytes, 1)))


@dataclass
class FuseSgdWithGradWeight(RewritePattern):
    """`train.sgd(w, grad_weight(dy, x))` -> `grad_weight_sgd(dy, x, w)` when the
    gradient has no other use."""

    chunk_bytes: int

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: train.SgdOp, rewriter: PatternRewriter) -> None:
        gradient = op.grad.owner
        if not isinstance(gradient, train.LinearGradWeightOp | train.Conv2dGradWeightOp):
            return
        if sum(1 for _ in gradient.result.uses) != 1:
            return
        weight = op.param.type
        assert isinstance(weight, TensorType)
        hyper = {"lr": op.lr.value.data, "weight_decay": op.weight_decay.value.data,
                 "chunk_rows": chunk_rows(weight, self.chunk_bytes)}
        fused: Operation
        if isinstance(gradient, train.LinearGradWeightOp):
            fused = train.LinearGradWeightSgdOp(gradient.grad, gradient.input, op.param,
                                                **hyper)
        else:
            if gradient.groups.value.data != 1:
                return
            fused = train.Conv2dGradWeightSgdOp(gradient.grad, gradient.input, op.param,
                                                **hyper, **gradient.conv_attributes())
        fused.results[0].name_hint = op.new_param.name_hint
        rewriter.replace(op, [fused], fused.results)
        rewriter.erase(gradient)


@dataclass(frozen=True)
class FuseWeightUpdatesPass(EdgeOptPass):
    """Fuses plain-SGD updates with their weight gradients (see the module
    docstring)."""

    name = "fuse-weight-updates"

    chunk_bytes: int = CHUNK_BYTES

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        pattern = FuseSgdWithGradWeight(self.chunk_bytes)
        for function in [f for f in op.ops if isinstance(f, func.FuncOp)]:
            if not any(_fusable(o) for o in function.body.walk()):
                continue
            before = function_peak(function, self.name)
            PatternRewriteWalker(pattern, apply_recursively=False).rewrite_region(
                function.body)
            after = function_peak(function, self.name)
            record(op, **{"pass": self.name}, function=function.sym_name.data,
                   peak_before=before, peak_after=after, extra_flops=0, search="local")


def _fusable(op: Operation) -> bool:
    return isinstance(op, train.SgdOp) and isinstance(
        op.grad.owner, train.LinearGradWeightOp | train.Conv2dGradWeightOp)
