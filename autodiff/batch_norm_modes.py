"""How the training step runs batch norms (`BatchOptions`, `bn=...`).

`@forward` normalises with running statistics (inference). In the training step's copy
of the forward ops:

- `bn=frozen` keeps that: the running statistics normalise and stay unchanged, only
  scale and bias train (and the statistics, if the user marked them trainable);
- `bn=batch` normalises with the batch's statistics (`nn.batch_norm {training}`), whose
  gradient rule differentiates through them; the running statistics are not read;
- `bn=batch-update` also updates the running statistics after the batch norm, as
  PyTorch's train mode does: `running = (1 - momentum) running + momentum batch`, with
  the batch variance unbiased (`n / (n - 1)` times the one that normalises, `n` the
  values per channel) in the running variance.

The update is ordinary `nn` ops and a `train.store` per statistic, outside the loss's
dependencies (so the backward sweep ignores it); a later pass or the C backend sees
nothing new.
"""

from __future__ import annotations

import math

from xdsl.ir import SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.autodiff.rules.builder import GradientBuilder, shape_of
from edge_opt.dialects import nn, train
from edge_opt.ir.options import BatchOptions


def _channel_axes(rank: int) -> tuple[int, ...]:
    return (0, *range(2, rank))


def _values_per_channel(op: nn.BatchNormOp) -> int:
    shape = shape_of(op.input)
    return math.prod(shape) // shape[1]


def _where(op: nn.BatchNormOp) -> str:
    name = op.result.name_hint
    return f"nn.batch_norm %{name}" if name else "an nn.batch_norm"


def _statistic_param(op: nn.BatchNormOp, value: SSAValue, what: str) -> str:
    owner = value.owner
    if not isinstance(owner, nn.LoadOp):
        raise PassFailedException(
            f"autodiff: bn=batch-update: the running {what} of {_where(op)} is not a "
            "parameter (an nn.load), so it cannot be updated; use bn=batch, or make "
            "it a parameter"
        )
    return owner.param.string_value()


class BatchNormModes:
    """Rewrites the batch norms of the training step's forward copy by `options`."""

    def __init__(self, options: BatchOptions, grads: GradientBuilder):
        self.options = options
        self.grads = grads
        self.updated: dict[str, str] = {}

    def applies_to(self, op: object) -> bool:
        """Whether `op` (of `@forward`) runs differently in the training step."""
        return (
            isinstance(op, nn.BatchNormOp)
            and op.training is None
            and self.options.bn != "frozen"
        )

    def copy(self, op: nn.BatchNormOp, mapping: dict[SSAValue, SSAValue]) -> nn.BatchNormOp:
        """`op` in training mode on the mapped operands; the caller adds it to the
        block, then calls `after` with it."""
        if _values_per_channel(op) < 2:
            raise PassFailedException(
                f"autodiff: bn={self.options.bn}: {_where(op)} sees one value per "
                f"channel (input {list(shape_of(op.input))}), whose batch variance is "
                "0; use a batch > 1, or bn=frozen"
            )
        copy = nn.BatchNormOp(
            *(mapping[o] for o in op.operands), op.epsilon.value.data, training=True
        )
        copy.result.name_hint = op.result.name_hint
        return copy

    def after(self, copy: nn.BatchNormOp) -> None:
        """With `bn=batch-update`, the running statistics' update after `copy`."""
        if self.options.bn != "batch-update":
            return
        mean, var = self._batch_statistics(copy)
        self.update_running(copy, copy.mean, copy.var, mean, var)

    def update_running(self, op: nn.BatchNormOp, running_mean: SSAValue,
                       running_var: SSAValue, mean: SSAValue, unbiased: SSAValue) -> None:
        """The update of `op`'s running statistics (the values `running_mean` and
        `running_var` of the step) from the batch's `mean` and `unbiased` variance."""
        names = (
            _statistic_param(op, op.mean, "mean"),
            _statistic_param(op, op.var, "variance"),
        )
        for name in names:
            if name in self.updated:
                raise PassFailedException(
                    f"autodiff: bn=batch-update: @{name} is the running statistic of "
                    f"two batch norms ({self.updated[name]} and {_where(op)}); give "
                    "each its own, or use bn=batch"
                )
            self.updated[name] = _where(op)
        for name, running, batch in zip(names, (running_mean, running_var),
                                        (mean, unbiased)):
            self._store(name, running, batch)

    def _batch_statistics(self, op: nn.BatchNormOp) -> tuple[SSAValue, SSAValue]:
        """The batch's mean and unbiased variance per channel."""
        b = self.grads
        x = op.input
        rank = len(shape_of(x))
        axes = _channel_axes(rank)
        mean = b.emit(nn.ReduceMeanOp(x, axes, keepdims=True))
        centered = b.emit(nn.SubOp(x, mean))
        biased = b.emit(nn.ReduceMeanOp(b.emit(nn.MulOp(centered, centered)), axes))
        n = _values_per_channel(op)
        channels = shape_of(op.mean)
        flat_mean = b.emit(nn.ReshapeOp(mean, channels))
        return flat_mean, b.scale(biased, n / (n - 1))

    def _store(self, name: str, running: SSAValue, batch: SSAValue) -> None:
        b = self.grads
        momentum = self.options.bn_momentum
        kept = b.scale(running, 1.0 - momentum)
        new = b.emit(nn.AddOp(kept, b.scale(batch, momentum)))
        new.name_hint = f"{name}_new"
        b.block.add_op(train.StoreOp(new, name))
