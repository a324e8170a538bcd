"""The training step's builder: `@train_step` from `@forward` (the forward copy, the
loss, the backward sweep with the rules of `edge_opt.autodiff.rules`, and each
parameter's update from `edge_opt.autodiff.optimizers`). The `autodiff` pass
(`edge_opt.passes.autodiff`) documents what it builds."""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import (
    ArrayAttr,
    DictionaryAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    i32,
    i64,
)
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.autodiff.batch_norm_modes import BatchNormModes
from edge_opt.autodiff.batch_statistics import ExactBatchStatistics, output_of
from edge_opt.autodiff.dependence import differentiable_operands, requires_grad
from edge_opt.autodiff.micro_batches import micro_batch_forward
from edge_opt.autodiff.optimizers import OptimizerEmitter
from edge_opt.autodiff.rules import RULES, GradientBuilder
from edge_opt.dialects import nn, train
from edge_opt.dialects.train import MICRO_BATCH_ATTR, SWEEP_ATTR
from edge_opt.ir.channels import ChannelRestriction, check_uses, restriction_of
from edge_opt.ir.options import BatchOptions, OptimizerOptions
from edge_opt.ir.session import input_names
from edge_opt.support.hints import symbol_hint

NAME_ATTR = "nn.name"
TRAIN_STEP = "train_step"
WHOLE_BATCH = BatchOptions()



def _rows(value: SSAValue, start: int, count: int) -> tuple[list[int], list[int]]:
    """The starts and ends of `nn.slice` for rows [start, start + count) of `value`."""
    assert isinstance(value.type, TensorType)
    shape = value.type.get_shape()
    return [start, *(0 for _ in shape[1:])], [start + count, *shape[1:]]


def find_function(module: ModuleOp, name: str) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            return op
    raise PassFailedException(f"autodiff: the module has no function @{name}")


def channel_restrictions(
    module: ModuleOp, forward: func.FuncOp, trainable: set[str]
) -> dict[str, ChannelRestriction]:
    """The channel restrictions of the trainable parameters (module docstring), checked
    against their uses in `forward`; one that covers every channel is dropped."""
    result: dict[str, ChannelRestriction] = {}
    for op in module.ops:
        if not isinstance(op, nn.ParamOp) or op.sym_name.data not in trainable:
            continue
        try:
            restriction = restriction_of(op)
            if restriction is None:
                continue
            check_uses(forward, op)
        except PassFailedException as e:
            raise PassFailedException(f"autodiff: {e}") from None
        if len(restriction.channels) < op.type.get_shape()[restriction.axis]:
            result[op.sym_name.data] = restriction
    return result


class TrainStepBuilder:
    """Builds `@train_step`: forward copy, loss, backward sweep with updates."""

    def __init__(self, module: ModuleOp, forward: func.FuncOp, trainable: set[str],
                 optimizer: OptimizerOptions,
                 restrictions: dict[str, ChannelRestriction] | None = None,
                 batch: BatchOptions = WHOLE_BATCH):
        self.accumulate = batch.accumulate
        self.module = module
        self.forward = forward
        self.trainable = trainable
        self.restrictions = restrictions or {}
        self.block = Block()
        self.grads = GradientBuilder(self.block)
        self.optimizer = OptimizerEmitter(module, self.grads, optimizer, self.restrictions)
        self.batch_norms = BatchNormModes(batch, self.grads)
        self.micro = 0
        self.exact: ExactBatchStatistics | None = None

    def build(self, loss: str, reduction: str) -> func.FuncOp:
        returned = self.forward.body.block.last_op
        assert isinstance(returned, func.ReturnOp)
        if not returned.arguments:
            raise PassFailedException(f"autodiff: @{self.forward.sym_name.data} returns nothing")
        labels_type = self._labels_type(loss, returned.arguments[0])
        self._arguments(labels_type)
        source = self._micro_batches()
        sweep = None
        if self.exact is not None:
            sweep = self.exact.run_sweeps(loss, reduction)
        carried: dict[str, SSAValue] = {}
        losses: list[SSAValue] = []
        for index in range(self.accumulate):
            values = self.micro_batch(index, sweep)
            final = index == self.accumulate - 1
            losses.append(self._micro_step(source, values, loss, reduction, final, carried))
        total = losses[0]
        for more in losses[1:]:
            total = self.grads.emit(nn.AddOp(total, more))
        if len(losses) > 1 and reduction == "mean":
            total = self.grads.scale(total, 1.0 / len(losses))
        total.name_hint = "loss"
        self.block.add_op(func.ReturnOp(total))
        return self._function(labels_type, total)

    def _micro_step(self, source: func.FuncOp, values: Sequence[SSAValue], loss: str,
                    reduction: str, final: bool, carried: dict[str, SSAValue]
                    ) -> SSAValue:
        """The forward ops of `source` on `values` (inputs, then labels), the loss and
        the backward sweep; the updates only if `final` (else the gradients are added
        to `carried`). Returns the loss."""
        mapping, requires, body = self.copy_forward(source, values[:-1])
        logits, labels = mapping[output_of(source)], values[-1]
        if loss == "cross-entropy":
            loss_value = self.grads.emit(train.CrossEntropyOp(logits, labels, reduction))
        else:
            loss_value = self.grads.emit(train.MseOp(logits, labels, reduction))
        loss_value.name_hint = "loss"
        if logits not in requires:
            raise PassFailedException(
                f"autodiff: no trainable parameter affects the loss (on the first "
                f"result of @{self.forward.sym_name.data}), so nothing would train; "
                "check which parameters are trainable (freeze, train-last, ...)"
            )
        seed = self.loss_gradient(logits, labels, loss, reduction)
        self._backward(body, requires, {logits: seed}, final, carried)
        return loss_value

    def loss_gradient(self, logits: SSAValue, labels: SSAValue, loss: str,
                      reduction: str) -> SSAValue:
        """The gradient of a micro-batch's share of the loss with respect to `logits`."""
        if loss == "cross-entropy":
            seed = self.grads.emit(train.CrossEntropyGradOp(logits, labels, reduction))
        else:
            seed = self.grads.emit(train.MseGradOp(logits, labels, reduction))
        if self.accumulate > 1 and reduction == "mean":
            seed = self.grads.scale(seed, 1.0 / self.accumulate)
        if logits.name_hint is not None:
            seed.name_hint = f"d_{logits.name_hint}"
        return seed

    def micro_batch(self, index: int, sweep: int | None = None,
                    labels: bool = True) -> list[SSAValue]:
        """The step's arguments (without the labels unless `labels`), or with
        accumulation their rows of micro-batch `index`, sliced here; slices of a sweep
        of `edge_opt.autodiff.batch_statistics` carry its number and `index`."""
        args = list(self.block.args) if labels else list(self.block.args)[:-1]
        if self.accumulate == 1:
            return args
        values: list[SSAValue] = []
        for value in args:
            piece = nn.SliceOp(value, *_rows(value, index * self.micro, self.micro))
            if sweep is not None:
                piece.attributes[SWEEP_ATTR] = IntegerAttr(sweep, i64)
                piece.attributes[MICRO_BATCH_ATTR] = IntegerAttr(index, i64)
            values.append(self.grads.emit(piece))
        return values

    def _micro_batches(self) -> func.FuncOp:
        """The function whose ops each micro-batch runs (`@forward` without
        accumulation, else rebuilt for the micro-batch; sets the micro-batch size, and
        with `bn-accumulate=exact` the sweeps for the batch statistics)."""
        k = self.accumulate
        if k == 1:
            return self.forward
        why = f"autodiff: accumulate={k}"
        batch = self.forward.function_type.inputs.data[0]
        assert isinstance(batch, TensorType)
        rows = batch.get_shape()[0] if batch.get_shape() else 0
        if rows % k:
            raise PassFailedException(
                f"{why}: the batch of {rows} does not split into {k} micro-batches; "
                f"choose a divisor of {rows}"
            )
        exact = self.batch_norms.options.bn_accumulate == "exact"
        if self.batch_norms.options.bn != "frozen" and not exact:
            raise PassFailedException(
                f"{why}: bn={self.batch_norms.options.bn} normalises with statistics of "
                "the whole batch, which micro-batches do not see; use bn-accumulate="
                "exact (the whole batch's statistics by extra sweeps), bn=frozen, "
                "batch-norm-to-group-norm{groups=G} before autodiff, or accumulate=1"
            )
        self.micro = rows // k
        source = micro_batch_forward(self.forward, self.micro, why, exact)
        if exact:
            self.exact = ExactBatchStatistics(self, source, rows)
        return source

    def _labels_type(self, loss: str, output: SSAValue) -> TensorType:
        assert isinstance(output.type, TensorType)
        if loss == "mse":
            return output.type
        shape = output.type.get_shape()
        if len(shape) != 2:
            raise PassFailedException(
                f"autodiff: loss=cross-entropy needs @{self.forward.sym_name.data} to "
                f"return (batch, classes) logits, but it returns {output.type}; use "
                "loss=mse or reshape the output"
            )
        return TensorType(i32, shape[:1])

    def _arguments(self, labels_type: TensorType) -> list[SSAValue]:
        """The step's arguments: `@forward`'s inputs, then the labels."""
        for arg in self.forward.body.block.args:
            self.block.insert_arg(arg.type, len(self.block.args)).name_hint = arg.name_hint
        labels = self.block.insert_arg(labels_type, len(self.block.args))
        labels.name_hint = self._labels_name()
        return list(self.block.args)

    def copy_forward(
        self, function: func.FuncOp, inputs: Sequence[SSAValue]
    ) -> tuple[dict[SSAValue, SSAValue], set[SSAValue], list[Operation]]:
        """Copies the ops of `function` on `inputs` into the new block; a differentiated
        max-pool becomes `train.max_pool2d_with_indices`, batch norms run as `bn` says
        (with exact accumulation: on the whole batch's statistics). Returns the value mapping, the copied values that need gradients, and the
        copied ops."""
        source = function.body.block
        requires_source = requires_grad(function, self.trainable)
        mapping: dict[SSAValue, SSAValue] = dict(zip(source.args, inputs, strict=True))
        body: list[Operation] = []
        for op in source.ops:
            if isinstance(op, func.ReturnOp):
                continue
            if isinstance(op, nn.MaxPool2dOp) and op.input in requires_source:
                copy: Operation = train.MaxPool2dWithIndicesOp(
                    mapping[op.input],
                    op.kernel.get_values(),
                    op.stride.get_values(),
                    op.padding.get_values(),
                    op.dilation.get_values(),
                    op.ceil_mode is not None,
                )
                copy.results[0].name_hint = op.result.name_hint
                if op.result.name_hint is not None:
                    copy.results[1].name_hint = f"{op.result.name_hint}_indices"
                mapping[op.result] = copy.results[0]
            elif self.exact is not None and self.exact.normalises(op):
                assert isinstance(op, nn.BatchNormOp)
                copy = self.exact.copy(op, mapping)
            elif self.batch_norms.applies_to(op):
                assert isinstance(op, nn.BatchNormOp)
                copy = self.batch_norms.copy(op, mapping)
                mapping[op.result] = copy.result
            else:
                copy = op.clone(value_mapper=mapping)
            self.block.add_op(copy)
            body.append(copy)
            if (isinstance(copy, nn.BatchNormOp) and self.batch_norms.applies_to(op)
                    and self.exact is None):
                self.batch_norms.after(copy)
            if isinstance(op, nn.LoadOp):
                restriction = self.restrictions.get(op.param.string_value())
                if restriction is not None:
                    self.grads.restricted[copy.results[0]] = restriction
        requires = {mapping[v] for v in requires_source}
        return mapping, requires, body

    def _backward(self, body: Sequence[Operation], requires: set[SSAValue],
                  adjoints: dict[SSAValue, SSAValue], final: bool = True,
                  carried: dict[str, SSAValue] | None = None) -> None:
        """The backward sweep over `body`; each parameter's update once its gradient is
        complete, if `final`, else its gradient is added to `carried` (accumulation),
        whose sums the final sweep's updates add in."""
        carried = {} if carried is None else carried
        loads: dict[str, list[nn.LoadOp]] = {}
        for op in body:
            if isinstance(op, nn.LoadOp) and op.param.string_value() in self.trainable:
                loads.setdefault(op.param.string_value(), []).append(op)
        # A parameter's gradient is complete once every use of its loads that the loss
        # depends on has been differentiated: that is when its update is emitted. Uses
        # the loss does not depend on (another output, the loss ops themselves) add
        # nothing and must not delay it; a parameter whose loads only the loss reads
        # (the output is a load) is complete before the sweep.
        live = set(adjoints)
        reaching: set[Operation] = set()
        for op in reversed(body):
            if any(r in live for r in op.results):
                reaching.add(op)
                live.update(differentiable_operands(op))
        pending = {
            name: sum(1 for l in ls for u in l.result.uses if u.operation in reaching)
            for name, ls in loads.items()
        }
        for name, count in pending.items():
            if count == 0:
                self._update(name, loads[name], adjoints, final, carried)
        for op in reversed(body):
            if op not in reaching:
                continue
            if not isinstance(op, nn.LoadOp):
                self.differentiate(op, requires, adjoints)
            for operand in op.operands:
                owner = operand.owner
                if isinstance(owner, nn.LoadOp) and owner.param.string_value() in pending:
                    name = owner.param.string_value()
                    pending[name] -= 1
                    if pending[name] == 0:
                        self._update(name, loads[name], adjoints, final, carried)

    def differentiate(self, op: Operation, requires: set[SSAValue],
                      adjoints: dict[SSAValue, SSAValue]) -> None:
        """Adds the gradients of `op`'s operands in `requires` to `adjoints`."""
        dy = adjoints.get(op.results[0]) if op.results else None
        needs = [o in requires for o in op.operands]
        if dy is None or not any(needs):
            return
        if self.exact is not None and self.exact.is_copy(op):
            for operand, grad in zip(op.operands, self.exact.gradients(op, dy, needs),
                                     strict=True):
                if grad is not None:
                    self._accumulate(adjoints, operand, grad)
            return
        rule = RULES.get(type(op))
        if rule is None:
            raise PassFailedException(
                f"autodiff: no gradient rule for {op.name} (result "
                f"%{op.results[0].name_hint or '?'}); it cannot be trained through"
            )
        for operand, grad, need in zip(op.operands, rule(self.grads, op, dy, needs),
                                       needs, strict=True):
            if need and grad is not None:
                self._accumulate(adjoints, operand, grad)

    def _update(self, name: str, loads: list[nn.LoadOp],
                adjoints: dict[SSAValue, SSAValue], final: bool,
                carried: dict[str, SSAValue]) -> None:
        grads = [adjoints[l.result] for l in loads if l.result in adjoints]
        if not grads:
            return  # the parameter does not reach the loss
        if name in carried:
            grads.insert(0, carried.pop(name))
        grad = grads[0]
        for more in grads[1:]:
            grad = self.grads.emit(nn.AddOp(grad, more))
        grad.name_hint = symbol_hint(f"d_{name}")
        if final:
            self.optimizer.update(name, loads[0].result, grad)
        else:
            carried[name] = grad

    def _accumulate(self, adjoints: dict[SSAValue, SSAValue], value: SSAValue,
                    grad: SSAValue) -> None:
        if value in adjoints:
            grad = self.grads.emit(nn.AddOp(adjoints[value], grad))
        if grad.name_hint is None and value.name_hint is not None:
            grad.name_hint = f"d_{value.name_hint}"
        adjoints[value] = grad

    def _labels_name(self) -> str:
        """`labels`, or `labels_1`, `labels_2`, ... if @forward has an input of that
        name (an ONNX model may): the training step's inputs keep distinct names."""
        taken = set(input_names(self.forward))
        name, suffix = "labels", 0
        while name in taken:
            suffix += 1
            name = f"labels_{suffix}"
        return name

    def _function(self, labels_type: TensorType, loss: SSAValue) -> func.FuncOp:
        arg_attrs = self.forward.arg_attrs
        names = (
            list(arg_attrs.data)
            if arg_attrs is not None
            else [DictionaryAttr({}) for _ in self.forward.body.block.args]
        )
        names.append(DictionaryAttr({NAME_ATTR: StringAttr(self._labels_name())}))
        function = func.FuncOp(
            TRAIN_STEP,
            ([a.type for a in self.block.args], [loss.type]),
            Region(self.block),
            arg_attrs=ArrayAttr(names),
            res_attrs=ArrayAttr([DictionaryAttr({NAME_ATTR: StringAttr("loss")})]),
        )
        return function


def add_train_step(module: ModuleOp, function: str, loss: str, reduction: str,
                   optimizer: OptimizerOptions,
                   batch: BatchOptions = WHOLE_BATCH) -> None:
    """Builds `@train_step` from `@function` and inserts it after it (what the
    `autodiff` pass does, for the passes that build a step to cost or probe it)."""
    forward = find_function(module, function)
    if any(not isinstance(t, TensorType) for t in forward.function_type.inputs.data):
        raise PassFailedException(
            f"autodiff: @{function} is already at the buffer level; run "
            "autodiff (or a training pipeline) before bufferize"
        )
    if any(isinstance(o, func.FuncOp) and o.sym_name.data == TRAIN_STEP
           for o in module.ops):
        raise PassFailedException(
            f"autodiff: the module already has @{TRAIN_STEP}; run autodiff once"
        )
    if any(isinstance(o, nn.ParamOp) and o.sym_name.data == TRAIN_STEP
           for o in module.ops):
        raise PassFailedException(
            f"autodiff: a parameter is named @{TRAIN_STEP}, the name of the "
            "training step it builds; rename the parameter (edge-opt import never "
            "gives it this name)"
        )
    trainable = {
        o.sym_name.data for o in module.ops if isinstance(o, nn.ParamOp) and o.is_trainable
    }
    if not trainable:
        raise PassFailedException(
            "autodiff: no parameter is trainable; mark some `trainable` or use a "
            "training pipeline (freeze{trainable=REGEX}, train-last, ...)"
        )
    restrictions = channel_restrictions(module, forward, trainable)
    builder = TrainStepBuilder(module, forward, trainable, optimizer, restrictions,
                               batch)
    train_step = builder.build(loss, reduction)
    module.body.block.insert_op_after(train_step, forward)
