"""Exact batch statistics under gradient accumulation (`accumulate=k bn-accumulate=exact`).

A batch norm with batch statistics couples the samples of a batch twice: its forward
normalises with the mean and (biased) variance of the whole batch, and its input
gradient,

    dx = scale * rstd * (dy - sum(dy) / n - x_hat * sum(dy * x_hat) / n)

(sums per channel over the batch and the other axes, n values per channel), reads two
sums over the whole batch. Micro-batches of b of the N = k b samples see neither, so the
step runs extra sweeps over the k micro-batches, in this order, each holding the values
of one micro-batch and per-channel vectors only:

1. statistics, one sweep per batch norm in forward order: the forward ops its input
   depends on (earlier batch norms normalising with the whole-batch statistics already
   computed), then the micro-batch's mean and centred sum of squares, merged into the
   whole batch's by Chan et al.'s pairwise update (no cancellation, unlike
   `sum(x^2) - n mean^2`). With `bn=batch-update` the running statistics are updated
   from them once.
2. gradient sums, one sweep per batch norm whose input needs a gradient, in reverse
   forward order: the forward, the loss gradient and the backward down to the batch
   norm's output (later batch norms' input gradients already corrected with their
   sums); per micro-batch `sum(dy)` and `sum(dy * x_hat)` (`train.batch_norm_grad_scale`
   in inference form), added up.
3. the accumulation sweep of `edge_opt.autodiff.train_step`: forward, loss, backward
   and the parameter gradients, each such batch norm an inference-mode `nn.batch_norm`
   on the whole-batch statistics, its input gradient that of inference mode on
   `dy - sum(dy) / n - (x - mean) * rstd * sum(dy * x_hat) / n`. Its scale and bias
   gradients, summed over the micro-batches, are the whole batch's as they are.

A model with L such batch norms, G of them with an input that needs a gradient, runs
L + G + 1 sweeps of k micro-batches (the statistics sweeps partial forwards; the
gradient sweeps forwards and partial backwards). Everything is ordinary `nn`/`train` ops
of the step, so the interpreter, later passes and the C backend run it unchanged. The
input slices of every sweep carry `train.sweep` and `train.micro_batch`: `cse` then
cannot merge a micro-batch's forward across sweeps (which would keep it alive from one
sweep to the next, the memory of the whole batch), and `edge-opt report` counts the
sweeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from xdsl.dialects import func
from xdsl.ir import Operation, SSAValue

from edge_opt.autodiff.dependence import dependents, requires_grad
from edge_opt.autodiff.rules import RULES, GradientBuilder, Grads
from edge_opt.autodiff.rules.builder import shape_of
from edge_opt.dialects import nn, train
from edge_opt.ir.layers import ancestors

if TYPE_CHECKING:
    from edge_opt.autodiff.train_step import TrainStepBuilder

def output_of(function: func.FuncOp) -> SSAValue:
    """The first result of `function` (the loss is taken on it)."""
    returned = function.body.block.last_op
    assert isinstance(returned, func.ReturnOp)
    return returned.arguments[0]


def _channel_axes(value: SSAValue) -> tuple[int, ...]:
    return (0, *range(2, len(shape_of(value))))


def _keep_shape(value: SSAValue, channels: int) -> tuple[int, ...]:
    """The shape of a per-channel vector broadcast against `value` (N, C, ...)."""
    return (1, channels, *(1 for _ in shape_of(value)[2:]))


@dataclass
class _Layer:
    """One batch norm with batch statistics and the whole-batch values of the step."""

    source: nn.BatchNormOp
    count: int
    """Values per channel in the whole batch."""
    mean: SSAValue | None = None
    var: SSAValue | None = None
    """Biased, as training mode normalises with it."""
    centre: SSAValue | None = None
    """`mean` in the keep shape (1, C, 1, ...)."""
    shift: SSAValue | None = None
    """`sum(dy) / n` in the keep shape."""
    slope: SSAValue | None = None
    """`rstd * sum(dy * x_hat) / n` in the keep shape."""


class ExactBatchStatistics:
    """The sweeps of the module docstring for `step` (a `TrainStepBuilder` with
    accumulation) over `source`, its micro-batch forward; `batch` is the whole batch's
    size."""

    def __init__(self, step: TrainStepBuilder, source: func.FuncOp, batch: int):
        self.step = step
        self.source = source
        self.layers: dict[Operation, _Layer] = {}
        self.copies: dict[Operation, _Layer] = {}
        for op in source.body.block.ops:
            if isinstance(op, nn.BatchNormOp) and (
                op.training is not None or step.batch_norms.applies_to(op)
            ):
                per_sample = math.prod(shape_of(op.input)[2:])
                self.layers[op] = _Layer(op, batch * per_sample)
        self.sweeps = 0

    @property
    def grads(self) -> GradientBuilder:
        return self.step.grads

    def normalises(self, op: Operation) -> bool:
        """Whether `op` (of the micro-batch forward) is a batch norm of the sweeps."""
        return op in self.layers

    def is_copy(self, op: Operation) -> bool:
        """Whether `op` (of the step) normalises with whole-batch statistics."""
        return op in self.copies

    def run_sweeps(self, loss: str, reduction: str) -> int | None:
        """The statistics and gradient sweeps; returns the number of the final
        (accumulation) sweep, None if no batch norm needs sweeps."""
        if not self.layers:
            return None
        for layer in self.layers.values():
            self._statistics_sweep(layer)
        requires = requires_grad(self.source, self.step.trainable)
        for layer in reversed(list(self.layers.values())):
            if layer.source.input in requires:
                self._gradient_sweep(layer, loss, reduction)
        return self.sweeps

    def copy(self, op: nn.BatchNormOp, mapping: dict[SSAValue, SSAValue]) -> nn.BatchNormOp:
        """`op` normalising with the whole batch's statistics (inference form); maps
        its result."""
        layer = self.layers[op]
        assert layer.mean is not None and layer.var is not None
        copy = nn.BatchNormOp(mapping[op.input], mapping[op.scale], mapping[op.bias],
                              layer.mean, layer.var, op.epsilon.value.data)
        copy.result.name_hint = op.result.name_hint
        mapping[op.result] = copy.result
        self.copies[copy] = layer
        return copy

    def gradients(self, op: Operation, dy: SSAValue, needs: Sequence[bool]) -> Grads:
        """The gradients of a `copy`'s operands: scale and bias as in inference mode
        (summed over the micro-batches they are the whole batch's), the input's
        corrected by the whole batch's sums."""
        layer = self.copies[op]
        rule = RULES[nn.BatchNormOp]
        grads = rule(self.grads, op, dy, [False, needs[1], needs[2], False, False])
        if needs[0]:
            assert layer.shift is not None and layer.slope is not None
            b = self.grads
            assert isinstance(op, nn.BatchNormOp)
            centred = b.emit(nn.SubOp(op.input, layer.centre))
            drift = b.emit(nn.AddOp(layer.shift, b.emit(nn.MulOp(centred, layer.slope))))
            corrected = b.emit(nn.SubOp(dy, drift))
            grads[0] = rule(b, op, corrected, [True, False, False, False, False])[0]
        return grads

    def _statistics_sweep(self, layer: _Layer) -> None:
        b = self.grads
        target = layer.source.input
        needed = ancestors(target)
        mean = m2 = None
        per_micro = layer.count // self.step.accumulate
        for index in range(self.step.accumulate):
            inputs = self.step.micro_batch(index, self.sweeps, labels=False)
            mapping = dict(zip(self.source.body.block.args, inputs, strict=True))
            for op in self.source.body.block.ops:
                if op not in needed:
                    continue
                if op in self.layers:
                    assert isinstance(op, nn.BatchNormOp)
                    b.block.add_op(self.copy(op, mapping))
                else:
                    b.block.add_op(op.clone(value_mapper=mapping))
            part_mean, part_m2 = self._moments(mapping[target], layer)
            if mean is None or m2 is None:
                mean, m2 = part_mean, part_m2
                continue
            # Chan et al.: merging index * m values with m more, m per micro-batch.
            delta = b.emit(nn.SubOp(part_mean, mean))
            mean = b.emit(nn.AddOp(mean, b.scale(delta, 1.0 / (index + 1))))
            spread = b.scale(b.emit(nn.MulOp(delta, delta)),
                             per_micro * index / (index + 1))
            m2 = b.emit(nn.AddOp(b.emit(nn.AddOp(m2, part_m2)), spread))
        assert mean is not None and m2 is not None
        self.sweeps += 1
        name = layer.source.result.name_hint or "bn"
        layer.mean, layer.var = mean, b.scale(m2, 1.0 / layer.count)
        layer.mean.name_hint, layer.var.name_hint = f"{name}_mean", f"{name}_var"
        channels = shape_of(layer.mean)[0]
        layer.centre = b.emit(nn.ReshapeOp(mean, _keep_shape(target, channels)))
        self._update_running(layer, b.scale(m2, 1.0 / (layer.count - 1)))

    def _moments(self, x: SSAValue, layer: _Layer) -> tuple[SSAValue, SSAValue]:
        """A micro-batch's mean and centred sum of squares per channel."""
        b = self.grads
        axes = _channel_axes(x)
        channels = shape_of(x)[1]
        kept = b.emit(nn.ReduceMeanOp(x, axes, keepdims=True))
        centred = b.emit(nn.SubOp(x, kept))
        m2 = b.emit(nn.ReduceSumOp(b.emit(nn.MulOp(centred, centred)), axes))
        return b.emit(nn.ReshapeOp(kept, (channels,))), m2

    def _update_running(self, layer: _Layer, unbiased: SSAValue) -> None:
        op = layer.source
        modes = self.step.batch_norms
        if modes.options.bn != "batch-update" or not modes.applies_to(op):
            return
        assert layer.mean is not None
        running = []
        for statistic in (op.mean, op.var):
            load = statistic.owner
            assert isinstance(load, Operation)
            running.append(self.grads.emit(load.clone()))
        modes.update_running(op, *running, layer.mean, unbiased)

    def _gradient_sweep(self, layer: _Layer, loss: str, reduction: str) -> None:
        b = self.grads
        total: list[SSAValue] = []
        for index in range(self.step.accumulate):
            values = self.step.micro_batch(index, self.sweeps)
            mapping, _, body = self.step.copy_forward(self.source, values[:-1])
            logits = mapping[output_of(self.source)]
            seed = self.step.loss_gradient(logits, values[-1], loss, reduction)
            copy = mapping[layer.source.result].owner
            assert isinstance(copy, nn.BatchNormOp)
            dy = self._adjoint(body, copy, {logits: seed})
            if dy is None:
                continue  # the batch norm does not reach the loss
            parts = (
                b.sum_over(dy, _channel_axes(dy)),
                b.emit(train.BatchNormGradScaleOp(dy, copy.input, copy.mean, copy.var,
                                                  copy.epsilon.value.data, False)),
            )
            total = list(parts) if not total else [
                b.emit(nn.AddOp(s, p)) for s, p in zip(total, parts, strict=True)
            ]
        self.sweeps += 1
        if not total:
            return
        assert layer.var is not None and layer.centre is not None
        keep = shape_of(layer.centre)
        eps = b.constant(layer.source.epsilon.value.data, layer.var)
        root = b.emit(nn.SqrtOp(b.emit(nn.AddOp(layer.var, eps))))
        rstd = b.emit(nn.DivOp(b.constant(1.0, layer.var), root))
        layer.shift = b.emit(nn.ReshapeOp(b.scale(total[0], 1.0 / layer.count), keep))
        slope = b.emit(nn.MulOp(b.scale(total[1], 1.0 / layer.count), rstd))
        layer.slope = b.emit(nn.ReshapeOp(slope, keep))

    def _adjoint(self, body: Sequence[Operation], target: nn.BatchNormOp,
                 adjoints: dict[SSAValue, SSAValue]) -> SSAValue | None:
        """The backward over the ops of `body` after `target`: the gradient of the
        loss with respect to `target`'s result (None if it does not reach the loss)."""
        after = list(body)[list(body).index(target) + 1:]
        requires = dependents(after, [target.result])
        for op in reversed(after):
            self.step.differentiate(op, requires, adjoints)
        return adjoints.get(target.result)
