"""`autodiff`: builds `@train_step(inputs..., labels) -> loss` from `@forward`.

Reverse-mode differentiation at the graph level. The training step is, in order: the
forward ops (a copy of `@forward`, which stays in the module for inference), the loss on
`@forward`'s first result, the loss gradient, then the backward ops in reverse order of
the forward ops, with each parameter's optimizer update emitted as soon as its gradient
is complete (at its first `nn.load` in forward order), so that gradient buffers die
early.

Only trainable parameters (`nn.param trainable`) get gradients, and only the backward
work they need is emitted: a value gets a gradient only if it depends on a trainable
parameter, so a frozen prefix gets no input-gradient, and a frozen layer in the middle
propagates the input gradient but computes no weight gradient. A differentiated
`nn.max_pool2d` runs as `train.max_pool2d_with_indices`, so its backward reads a `ui8`
index mask instead of keeping the pool's input alive.

Options:
- `loss`: `cross-entropy` (logits (N, C) against integer labels (N,)) or `mse` (the output
  against `labels` of the same type); `reduction`: `mean` (default) or `sum`.
- `optimizer`: `sgd` (with `momentum`, `nesterov`, `weight-decay`) or `adam` (`beta1`,
  `beta2`, `epsilon`, `weight-decay`); `lr`. Optimizer state (momentum buffers, Adam
  moments and step counter) becomes zero-initialised parameters marked with the
  `train.state` / `train.state_of` attributes.
- `bn`: how batch norms with running statistics train: `frozen` (default; normalise
  with the running statistics, which stay unchanged), `batch` (batch statistics, the
  gradient through them) or `batch-update` (`batch`, and the running statistics updated
  with momentum `bn-momentum`, default 0.1, unbiased variance: PyTorch's train mode).
  See `edge_opt.autodiff.batch_norm_modes`.
- `accumulate`: the batch as k micro-batches, gradients summed, one update
  (`edge_opt.autodiff.micro_batches`); `bn-accumulate=exact`: with batch statistics,
  the whole batch's by extra sweeps over the micro-batches
  (`edge_opt.autodiff.batch_statistics`), else (`reject`) an error.
- `function`: the function to differentiate (default `forward`).

The labels are the last input of `@train_step`, named `labels` (`labels_1`, ... if
`@forward` already has an input called `labels`).

Channel-restricted updates: a trainable parameter with the attributes
`train.channels = array<i64: ...>` and `train.channel_axis = 0` (see
`edge_opt.ir.channels`; `sparse-update` sets them) is updated only at those output
channels. Its weight gradient is computed for them alone (`dy` gathered to those
channels before the weight-gradient op), then `%sel = nn.gather %w`, the optimizer on
`%sel` (its state has `%sel`'s shape), `train.scatter %w, %sel_new` and `train.store`.
Only the weight or bias of `nn.linear` and of `nn.conv2d` with `groups = 1` can be
restricted; any other reader of such a parameter is an error naming the op. A
restriction to every channel is no restriction.

Example (`autodiff{lr=0.1}` on a one-layer model):

    func.func @train_step(%x: tensor<2x4xf32>, %labels: tensor<2xi32>) -> tensor<f32> {
      %w = nn.load @w : tensor<3x4xf32>
      %y = nn.linear %x, %w : (tensor<2x4xf32>, tensor<3x4xf32>) -> tensor<2x3xf32>
      %loss = train.cross_entropy %y, %labels : (...) -> tensor<f32>
      %dy = train.cross_entropy_grad %y, %labels : (...) -> tensor<2x3xf32>
      %dw = train.linear_grad_weight %dy, %x : (...) -> tensor<3x4xf32>
      %w_new = train.sgd %w, %dw {lr = 1.000000e-01 : f32} : tensor<3x4xf32>
      train.store %w_new, @w : tensor<3x4xf32>
      func.return %loss : tensor<f32>
    }
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp

from edge_opt.autodiff.train_step import add_train_step
from edge_opt.ir.options import (
    BatchOptions,
    EdgeOptPass,
    LossOptions,
    OptimizerOptions,
    group_values,
)


@dataclass(frozen=True)
class AutodiffPass(EdgeOptPass, BatchOptions, OptimizerOptions, LossOptions):
    """Builds `@train_step` from `@forward` (see the module docstring). Options: the
    `LossOptions`, `OptimizerOptions` and `BatchOptions` groups, and `function`."""

    name = "autodiff"

    function: str = "forward"

    def optimizer_options(self) -> OptimizerOptions:
        return OptimizerOptions(**group_values(self, OptimizerOptions))

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        add_train_step(op, self.function, self.loss, self.reduction,
                       self.optimizer_options(),
                       BatchOptions(**group_values(self, BatchOptions)))
