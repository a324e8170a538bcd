"""What training any subset of the parameters costs, read off one training step.

`sparse-update` weighs, per candidate (a layer trained whole or at some of its output
channels) and per trial selection, the backward memory and backward FLOPs that
`edge-opt report` would count for a training step that trains exactly that subset.
Building and differentiating a step per subset is quadratic in the number of layers;
instead, `SubsetCosts` differentiates once, with every candidate trainable, and reads
each subset's cost off that step:

- the backward work a subset needs is the backward slice of its updates: the ops of the
  loss, backward and optimizer phases from which the stores of its parameters (and of
  their optimizer state) are reached. A step built for the subset alone has exactly
  these ops: autodiff emits only what the trained parameters need (propagation stops at
  the earliest trained layer);
- saved activations: the forward values those ops read (as `saved_activation_bytes`);
- weight gradients and optimizer state: those of the subset's parameters, and the state
  all updates share (Adam's step counter);
- a parameter updated at k of its O output channels (`edge_opt.ir.channels`) has k/O of
  its gradient and of its state shaped like it. Its weight-gradient ops work on the
  gathered channels only: to find them, the step is built with every restrictable
  candidate restricted to some channels (`sparse-update` takes O-1), and the ops
  downstream of a backward gather scale from the channels built to the k asked (every
  cost formula is linear in the output channels; the gathers are free, the saved input
  stays whole, and the input gradient is computed from every channel either way).

Each figure equals the report of a step built for the subset (a property test checks it
on random models against `autodiff` + `build_report`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, SymbolRefAttr, TensorType
from xdsl.ir import Operation, SSAValue

from edge_opt.dialects import nn, train
from edge_opt.dialects.train import STATE_OF_ATTR, is_optimizer_state
from edge_opt.ir.channels import restriction_of
from edge_opt.ir.cost import flops, numel
from edge_opt.ir.report import exclusive_owner, training_phases
from edge_opt.support.dtypes import numpy_dtype


def _bytes(type_: TensorType) -> int:
    return type_.element_count() * numpy_dtype(type_.element_type).itemsize


class SubsetCosts:
    """The costs of training subsets of the parameters that `@train_step` of `module`
    trains (see the module docstring)."""

    def __init__(self, module: ModuleOp):
        step = next((op for op in module.ops if isinstance(op, func.FuncOp)
                     and op.sym_name.data == "train_step"), None)
        if step is None:
            raise ValueError("the module has no @train_step to read costs from")
        self.phases = training_phases(step)
        self.params = {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}
        later = self.phases["loss"] + self.phases["backward"] + self.phases["optimizer"]
        self.owner = exclusive_owner(self.phases["backward"] + self.phases["optimizer"],
                                     self.params)
        self._defined_by = {r: op for op in later for r in op.results}
        self._forward_values = {
            r for op in self.phases["forward"]
            if not isinstance(op, nn.LoadOp | nn.ConstantOp) for r in op.results
        }
        self._backward = set(self.phases["backward"])
        # channels each parameter's update was built for (k of O), and the backward ops
        # that work on those channels only: downstream of a gather in the backward
        self._built: dict[str, tuple[int, int]] = {}
        for param in self.params.values():
            restriction = restriction_of(param)
            if restriction is not None:
                self._built[param.sym_name.data] = (
                    len(restriction.channels), param.type.get_shape()[0])
        gathered: set[SSAValue] = set()
        self._per_channel: set[Operation] = set()
        for op in self.phases["backward"]:
            if isinstance(op, nn.GatherOp) or any(o in gathered for o in op.operands):
                gathered.update(op.results)
                self._per_channel.add(op)
        self._state: dict[str, list[nn.ParamOp]] = {}
        self._stores: dict[str, list[Operation]] = {}
        for param in self.params.values():
            ref = param.attributes.get(STATE_OF_ATTR)
            if isinstance(ref, SymbolRefAttr):
                self._state.setdefault(ref.string_value(), []).append(param)
        self._shared_state: dict[str, nn.ParamOp] = {}
        for op in self.phases["optimizer"]:
            if isinstance(op, train.StoreOp):
                stored = self.params[op.param.string_value()]
                ref = stored.attributes.get(STATE_OF_ATTR)
                if isinstance(ref, SymbolRefAttr):
                    name = ref.string_value()
                elif is_optimizer_state(stored):  # e.g. Adam's step counter, one for all
                    self._shared_state[stored.sym_name.data] = stored
                    continue
                else:
                    name = stored.sym_name.data
                self._stores.setdefault(name, []).append(op)

    def trained(self) -> set[str]:
        """The parameters the step trains (a store of their value or state)."""
        return set(self._stores)

    def _slice(self, trained: Iterable[str]) -> set[Operation]:
        needed: set[Operation] = set(self.phases["loss"])
        work = [op for name in trained for op in self._stores.get(name, [])]
        while work:
            op = work.pop()
            if op in needed:
                continue
            needed.add(op)
            work += [self._defined_by[o] for o in op.operands if o in self._defined_by]
        return needed

    def costs(self, trained: Iterable[str],
              restrictions: Mapping[str, Sequence[int]] | None = None) -> tuple[int, int]:
        """Backward memory (bytes) and backward FLOPs of a step that trains exactly
        `trained`, the parameters of `restrictions` at those channels only."""
        trained = set(trained)
        unknown = trained - self.trained()
        if unknown:
            raise ValueError(f"the step does not train {', '.join(sorted(unknown))}")
        restrictions = restrictions or {}
        fraction = {
            name: (len(channels), self.params[name].type.get_shape()[0])
            for name, channels in restrictions.items() if name in trained
        }
        ops = self._slice(trained)
        saved: set[SSAValue] = {o for op in ops for o in op.operands
                                if o in self._forward_values}
        memory = sum(numel(v) * numpy_dtype(v.type.element_type).itemsize  # type: ignore[attr-defined]
                     for v in saved)
        for name in trained:
            k, out = fraction.get(name, (1, 1))
            param = self.params[name]
            memory += _bytes(param.type) * k // out
            shape = param.type.get_shape()
            for state in self._state.get(name, []):
                rows = state.type.get_shape()
                if rows and len(rows) == len(shape) and rows[1:] == shape[1:]:  # like it
                    memory += _bytes(state.type) // rows[0] * shape[0] * k // out
                else:
                    memory += _bytes(state.type)
        if trained:
            memory += sum(_bytes(state.type) for state in self._shared_state.values())
        backward = 0
        for op in ops:
            if op not in self._backward:
                continue
            owner = self.owner.get(op)
            if op in self._per_channel and owner in self._built:
                built, out = self._built[owner]
                k = fraction[owner][0] if owner in fraction else out
                backward += flops(op) * k // built
            else:
                backward += flops(op)
        return memory, backward
