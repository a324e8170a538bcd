"""`merge-lora`: folds LoRA adapters back into their base weights, for deployment.

For every adapter pair that `insert-lora` made (parameters with `lora.*` attributes, see
`edge_opt.ir.lora`), the base weight's value becomes `W + ΔW` with
`ΔW = (alpha / rank) · B·A` for an (out, in) weight and `(alpha / rank) · A·B` for an
(in, out) one (computed in float64, rounded once to W's type), and each adapted layer

    y = base(x, W) + scale * up(down(x, A), B)

becomes `y = base(x, W)` again: the adapter ops and the adapter parameters go. The
rank, alpha and layout come from the adapters' attributes, so the pass has no options;
the scale constant in the IR must agree with them.

The merge needs the values: the parameters' inline values (`edge_opt.ir.model_io`
attaches the sidecar `.npz` on load). After training in an interpreter `Session`, pass
the trained state to `merge_lora(module, session.params)`, which makes every given value
its parameter's inline value first (so the merged module carries all the trained
parameters, not only the merged weights).

A function that trains the adapters (one that stores into them: the `@train_step` of
`train-lora`) is removed, since what it trains no longer exists; so is optimizer state
that no remaining function uses. Run `autodiff` (or a training pipeline) again on the
merged module to train it further. The base weights keep their flags (frozen after
`insert-lora`). A module without adapters is left unchanged.

Errors (`PassFailedException`): a base weight or an adapter without a value; an adapter
read other than in the form `insert-lora` writes (the message names the op); adapter
attributes that disagree with each other or with the shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, SymbolRefAttr
from xdsl.ir import Operation, SSAValue
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn, train
from edge_opt.dialects.train import is_optimizer_state
from edge_opt.ir import model_io
from edge_opt.ir.lora import Adapter, delta, find_adapters
from edge_opt.ir.options import EdgeOptPass
from edge_opt.support.dtypes import to_dense, to_numpy
from edge_opt.support.errors import ModelFileError


def _weight_operand(op: Operation) -> SSAValue | None:
    """The weight of a linear layer (`nn.linear` weight, `nn.matmul` rhs)."""
    if isinstance(op, nn.LinearOp):
        return op.weight
    if isinstance(op, nn.MatmulOp):
        return op.rhs
    return None


def _loaded(value: SSAValue) -> str | None:
    owner = value.owner
    return owner.param.string_value() if isinstance(owner, nn.LoadOp) else None


def _only_use(value: SSAValue, what: str, adapter: Adapter) -> Operation:
    uses = list(value.uses)
    if len(uses) != 1:
        raise PassFailedException(
            f"merge-lora: {what} of the adapter of @{adapter.base.sym_name.data} "
            f"(%{value.name_hint or '?'}) has {len(uses)} uses, expected 1"
        )
    return uses[0].operation


class _Branch:
    """One adapted layer's adapter ops, found from the `down` op that reads A:
    `down(x, A)`, an optional `nn.mul` by the scale, `up(., B)` and the `nn.add` of
    the base layer's result."""

    def __init__(self, down: Operation, adapter: Adapter):
        self.adapter = adapter
        base_name = adapter.base.sym_name.data

        def fail(op: Operation, why: str) -> PassFailedException:
            hint = op.results[0].name_hint if op.results else None
            return PassFailedException(
                f"merge-lora: the adapter of @{base_name} is read by {op.name}"
                f"{f' (result %{hint})' if hint else ''}, {why}; merge-lora folds "
                "only adapters in the form insert-lora writes"
            )

        down_weight = _weight_operand(down)
        if down_weight is None or _loaded(down_weight) != adapter.a.sym_name.data:
            raise fail(down, "not as the weight of a linear layer")
        self.ops: list[Operation] = [down]
        value = down.results[0]
        op = _only_use(value, "the down projection", adapter)
        if isinstance(op, nn.MulOp):
            other = op.rhs if op.lhs is value else op.lhs
            constant = other.owner
            if not isinstance(constant, nn.ConstantOp) or \
                    not _is_scalar(constant.array(), adapter.scale):
                raise fail(op, f"a multiplication by something else than the scale "
                               f"alpha/rank = {adapter.scale:g}")
            self.ops.append(op)
            value = op.result
            op = _only_use(value, "the scaled down projection", adapter)
        elif adapter.scale != 1.0:
            raise fail(op, f"but the scale alpha/rank = {adapter.scale:g} is missing")
        up_weight = _weight_operand(op)
        if up_weight is None or _loaded(up_weight) != adapter.b.sym_name.data or \
                op.operands[0] is not value:
            raise fail(op, f"not as the input of the up projection by "
                           f"@{adapter.b.sym_name.data}")
        self.ops.append(op)
        add = _only_use(op.results[0], "the up projection", adapter)
        if not isinstance(add, nn.AddOp):
            raise fail(add, "not added to the base layer's result")
        self.ops.append(add)
        self.add = add
        self.base = add.rhs if add.lhs is op.results[0] else add.lhs
        base_weight = _weight_operand(self.base.owner) \
            if isinstance(self.base.owner, Operation) else None
        if base_weight is None or _loaded(base_weight) != base_name:
            raise fail(add, f"added to something else than a layer with weight @{base_name}")
        if not _same_layer(self.base.owner, down, op):  # type: ignore[arg-type]
            raise fail(down, "on another input or in another form than the base layer")

    def remove(self) -> None:
        """`y = base + adapter` -> `base` (named `y`), and the adapter ops erased."""
        name = self.add.result.name_hint
        self.add.result.replace_all_uses_with(self.base)
        self.base.name_hint = name
        for op in reversed(self.ops):
            operands = list(op.operands)
            op.detach()
            op.erase()
            for operand in operands:
                owner = operand.owner
                if isinstance(owner, (nn.LoadOp, nn.ConstantOp)) and not owner.result.uses:
                    owner.detach()
                    owner.erase()


def _same_layer(base: Operation, down: Operation, up: Operation) -> bool:
    """Whether `up(down(x, A), B)` is the low-rank update of `base(x, W)` in the layout
    the adapter's attributes say: the same kind of layer on the same input, no bias."""
    if type(base) is not type(down) or type(base) is not type(up):
        return False
    if base.operands[0] is not down.operands[0]:
        return False
    if isinstance(base, nn.LinearOp):
        return down.bias is None and up.bias is None  # type: ignore[union-attr]
    assert isinstance(base, nn.MatmulOp)
    assert isinstance(down, nn.MatmulOp) and isinstance(up, nn.MatmulOp)
    transposed = base.transpose_rhs is not None
    return (
        (down.transpose_lhs is not None) == (base.transpose_lhs is not None)
        and (down.transpose_rhs is not None) == transposed
        and up.transpose_lhs is None
        and (up.transpose_rhs is not None) == transposed
    )


def _is_scalar(array: np.ndarray, value: float) -> bool:
    if array.size != 1:
        return False
    rounded = np.asarray(value, array.dtype)
    return bool(array.reshape(-1)[0] == rounded)


def _stores_into(function: func.FuncOp, names: set[str]) -> bool:
    return any(
        isinstance(op, train.StoreOp) and op.param.string_value() in names
        for op in function.walk()
    )


def _referenced(module: ModuleOp) -> set[str]:
    """The symbols that ops inside functions name in their properties."""
    names = set()
    for op in module.walk():
        if isinstance(op, func.FuncOp):
            continue
        for value in op.properties.values():
            if isinstance(value, SymbolRefAttr):
                names.add(value.string_value())
    return names


def _value(param: nn.ParamOp) -> np.ndarray:
    if param.value is None:
        raise PassFailedException(
            f"merge-lora: @{param.sym_name.data} has no value to merge; load the model "
            "with its .npz, or pass the values to merge_lora(module, params)"
        )
    return to_numpy(param.value)


def attach(module: ModuleOp, params: Mapping[str, np.ndarray]) -> None:
    """Makes each given value the inline value of its parameter (of its declared shape
    and element type)."""
    try:
        model_io.attach_values(module, params, "merge-lora: the parameter values")
    except ModelFileError as e:
        raise PassFailedException(str(e)) from None


def merge_lora(module: ModuleOp, params: Mapping[str, np.ndarray] | None = None) -> None:
    """Folds every LoRA adapter of `module` into its base weight, in place (see the
    module docstring). `params` (e.g. `Session.params` after training) become the
    parameters' inline values first."""
    if params:
        attach(module, params)
    adapters = find_adapters(module)
    if not adapters:
        return
    by_a = {a.a.sym_name.data: a for a in adapters}
    names = set(by_a) | {a.b.sym_name.data for a in adapters}
    merged = {}
    for adapter in adapters:
        w = _value(adapter.base)
        change = delta(_value(adapter.a), _value(adapter.b), adapter.scale, adapter.layout)
        merged[adapter.base.sym_name.data] = (w.astype(np.float64) + change).astype(w.dtype)
    for function in [o for o in module.ops if isinstance(o, func.FuncOp)]:
        if _stores_into(function, names):
            function.detach()
            function.erase()
            continue
        branches = [
            _Branch(use.operation, by_a[op.param.string_value()])
            for op in function.walk()
            if isinstance(op, nn.LoadOp) and op.param.string_value() in by_a
            for use in op.result.uses
        ]
        for branch in branches:
            branch.remove()
    still = _referenced(module) & names
    if still:
        name = min(still)
        user = next(
            op for op in module.walk()
            if any(isinstance(v, SymbolRefAttr) and v.string_value() == name
                   for v in op.properties.values())
        )
        raise PassFailedException(
            f"merge-lora: @{name} is still read by {user.name} after removing the "
            "adapter branches; merge-lora folds only adapters in the form insert-lora "
            "writes"
        )
    for adapter in adapters:
        base = adapter.base
        base.properties["value"] = to_dense(merged[base.sym_name.data], base.type)
    _erase_params(module, names)


def _erase_params(module: ModuleOp, adapters: set[str]) -> None:
    """Erases the adapters, their optimizer state and optimizer state nothing uses."""
    used = _referenced(module)
    for op in list(module.ops):
        if not isinstance(op, nn.ParamOp):
            continue
        name = op.sym_name.data
        if name in adapters or (is_optimizer_state(op) and name not in used):
            op.detach()
            op.erase()


@dataclass(frozen=True)
class MergeLoraPass(EdgeOptPass):
    """Folds the LoRA adapters into their base weights and removes them (see the module
    docstring)."""

    name = "merge-lora"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        merge_lora(op)
