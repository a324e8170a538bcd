"""The optimizer updates of the training step: SGD (momentum, Nesterov, weight decay)
and Adam, each parameter's state created as zero-initialised parameters marked with
`train.state` / `train.state_of`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import (
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    TensorType,
)
from xdsl.ir import Attribute, Operation, SSAValue

from edge_opt.autodiff.rules import GradientBuilder
from edge_opt.dialects import nn, train
from edge_opt.dialects.train import STATE_ATTR, STATE_OF_ATTR
from edge_opt.ir.channels import ChannelRestriction
from edge_opt.ir.options import (
    OptimizerOptions,
)
from edge_opt.support.dtypes import numpy_dtype, to_dense
from edge_opt.support.hints import symbol_hint


@dataclass
class OptimizerEmitter:
    """Emits one parameter's update (and creates its optimizer state parameters) into
    the training step that `grads` builds in `module`."""

    module: ModuleOp
    grads: GradientBuilder
    options: OptimizerOptions
    restrictions: dict[str, ChannelRestriction] = field(default_factory=dict)
    params: dict[str, nn.ParamOp] = field(init=False)
    _step: SSAValue | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.params = {
            o.sym_name.data: o for o in self.module.ops if isinstance(o, nn.ParamOp)
        }

    def update(self, name: str, value: SSAValue, grad: SSAValue) -> None:
        """The update of parameter `name` (current value `value`) by `grad`; a
        channel-restricted one updates the gathered channels and scatters them back."""
        restriction = self.restrictions.get(name)
        whole = value
        if restriction is not None:
            value = self.grads.emit(
                nn.GatherOp(whole, restriction.channels, restriction.axis)
            )
            value.name_hint = symbol_hint(f"{name}_channels")
        new = self._optimizer_step(name, value, grad)
        if restriction is not None:
            new.name_hint = symbol_hint(f"{name}_channels_new")
            new = self.grads.emit(
                train.ScatterOp(whole, new, restriction.channels, restriction.axis)
            )
        new.name_hint = symbol_hint(f"{name}_new")
        self._store(new, name)

    def _optimizer_step(self, name: str, value: SSAValue, grad: SSAValue) -> SSAValue:
        """The optimizer op(s) on `value` (and the stores of its state); returns the
        new value. The state has `value`'s type."""
        o = self.options
        emit = self.grads.emit
        assert isinstance(value.type, TensorType)
        if o.optimizer == "adam":
            m = self._state(name, "exp_avg", value.type)
            v = self._state(name, "exp_avg_sq", value.type)
            update = train.AdamOp(
                value, grad, emit(nn.LoadOp(m, value.type)),  # type: ignore[arg-type]
                emit(nn.LoadOp(v, value.type)),  # type: ignore[arg-type]
                self._adam_step(), o.lr, o.beta1, o.beta2, o.epsilon, o.weight_decay,
            )
            self.grads.block.add_op(update)
            update.new_exp_avg.name_hint = symbol_hint(f"{m}_new")
            update.new_exp_avg_sq.name_hint = symbol_hint(f"{v}_new")
            self._store(update.new_exp_avg, m)
            self._store(update.new_exp_avg_sq, v)
            new = update.new_param
        elif o.momentum:
            buffer = self._state(name, "momentum", value.type)
            update = train.SgdMomentumOp(
                value, grad, emit(nn.LoadOp(buffer, value.type)),  # type: ignore[arg-type]
                o.lr, o.momentum, o.weight_decay, o.nesterov,
            )
            self.grads.block.add_op(update)
            update.new_momentum_buffer.name_hint = symbol_hint(f"{buffer}_new")
            self._store(update.new_momentum_buffer, buffer)
            new = update.new_param
        else:
            new = emit(train.SgdOp(value, grad, o.lr, o.weight_decay))
        return new

    def _store(self, value: SSAValue, param: str) -> None:
        self.grads.block.add_op(train.StoreOp(value, param))

    def _adam_step(self) -> SSAValue:
        """The step count `t` of this step: the `adam_step` parameter plus one, stored
        back (emitted once, before the first update)."""
        if self._step is None:
            name = self._new_param(
                "adam_step", TensorType(self._float_type(), ()), None, "step"
            )
            previous = self.grads.emit(nn.LoadOp(name, TensorType(self._float_type(), ())))
            self._step = self.grads.emit(
                nn.AddOp(previous, self.grads.constant(1.0, previous))
            )
            self._step.name_hint = "step"
            self._store(self._step, name)
        return self._step

    def _float_type(self) -> Attribute:
        first = next(iter(p for p in self.params.values() if p.is_trainable))
        return first.type.element_type

    def _state(self, owner: str, kind: str, type: TensorType) -> str:
        return self._new_param(f"{owner}_{kind}", type, owner, kind)

    def _new_param(self, base: str, type: TensorType, owner: str | None,
                   kind: str) -> str:
        name, suffix = base, 1
        while name in self.params:
            name, suffix = f"{base}_{suffix}", suffix + 1
        zeros = to_dense(np.zeros(type.get_shape(), numpy_dtype(type.element_type)), type)
        param = nn.ParamOp(name, type, trainable=False, value=zeros)
        param.attributes[STATE_ATTR] = StringAttr(kind)
        if owner is not None:
            param.attributes[STATE_OF_ATTR] = SymbolRefAttr(owner)
            anchor: Operation = self.params[owner]
            while (nxt := anchor.next_op) is not None and isinstance(nxt, nn.ParamOp) \
                    and STATE_OF_ATTR in nxt.attributes:
                anchor = nxt
            self.module.body.block.insert_op_after(param, anchor)
        else:
            last_param = [o for o in self.module.ops if isinstance(o, nn.ParamOp)][-1]
            self.module.body.block.insert_op_after(param, last_param)
        self.params[name] = param
        return name
