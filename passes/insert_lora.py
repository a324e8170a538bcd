"""`insert-lora`: low-rank adapters on the weights of linear layers, base frozen.

For every weight W (an `nn.param` read by `nn.load`) whose whole name matches `targets`
and that is used as

- the weight of an `nn.linear` (W is (out, in)), or
- the right operand of an `nn.matmul` (2-D; W is (in, out), or (out, in) with
  `transpose_rhs`),

the pass adds two trainable parameters `@<W>_lora_a` and `@<W>_lora_b` and rewrites each
such layer `y = base(x)` into

    y = base(x) + (alpha / rank) * up(down(x, A), B)

with `down`/`up` of the layer's own kind, laid out so that no transpose is needed (see
`edge_opt.ir.lora`: A (rank, in) and B (out, rank) for an (out, in) weight, as in
PEFT; A (in, rank) and B (rank, out) for an (in, out) one). The scale multiplies the
rank-wide intermediate (the cheapest place) and is left out when it is 1. W becomes
frozen; A and B are trainable and carry `lora.*` attributes (base, factor, rank, alpha,
layout) so that `merge-lora` can fold them back.

B starts at zero, so the model computes exactly what it did before; A is drawn from
`seed` and the weight's name (one generator per weight, so adding a target does not
change the others):
- `init=kaiming` (default): U(-1/sqrt(in), 1/sqrt(in)), which is PEFT's
  `kaiming_uniform_(a=sqrt(5))` (`init_lora_weights=True`);
- `init=gaussian`: N(0, (1/rank)^2), PEFT's `init_lora_weights="gaussian"` (std 1/rank).

Options: `rank` (4), `alpha` (8.0), `targets` (a regular expression on whole parameter
names; default every weight of a linear layer), `init`, `seed` (0).

Errors (`PassFailedException`): `targets` matches no such weight (the message lists the
weights it could match); a matched weight is also read another way (by an op that is not
one of the layers above, e.g. a transpose or an add), or in both layouts; a matched
weight already has adapters; the module already has a training step (insert adapters
before `autodiff`). The projections of an `nn.attention` are not linear layers: insert
adapters before `raise-attention`.

Example (`insert-lora{rank=2 alpha=4.0}`):

    %w = nn.load @fc_weight : tensor<3x8xf32>
    %y = nn.linear %x, %w : (tensor<2x8xf32>, tensor<3x8xf32>) -> tensor<2x3xf32>

becomes

    %w = nn.load @fc_weight : tensor<3x8xf32>
    %y_base = nn.linear %x, %w : (tensor<2x8xf32>, tensor<3x8xf32>) -> tensor<2x3xf32>
    %fc_weight_lora_a = nn.load @fc_weight_lora_a : tensor<2x8xf32>
    %y_lora_down = nn.linear %x, %fc_weight_lora_a : (...) -> tensor<2x2xf32>
    %y_lora_scale = nn.constant dense<2.000000e+00> : tensor<f32>
    %y_lora_scaled = nn.mul %y_lora_down, %y_lora_scale : (...) -> tensor<2x2xf32>
    %fc_weight_lora_b = nn.load @fc_weight_lora_b : tensor<3x2xf32>
    %y_lora_up = nn.linear %y_lora_scaled, %fc_weight_lora_b : (...) -> tensor<2x3xf32>
    %y = nn.add %y_base, %y_lora_up : (...) -> tensor<2x3xf32>
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, SymbolRefAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn, train
from edge_opt.ir.lora import (
    BASE_ATTR,
    Layout,
    adapter_attributes,
    adapter_shapes,
    fan_in,
    is_adapter,
)
from edge_opt.ir.options import EdgeOptPass
from edge_opt.ir.trainable import model_params, set_trainable
from edge_opt.support.dtypes import numpy_dtype, to_dense

Init = Literal["kaiming", "gaussian"]


@dataclass
class WeightUses:
    """How one parameter is read in the module's functions."""

    layers: list[tuple[nn.LinearOp | nn.MatmulOp, Layout]] = field(default_factory=list)
    """The layers it is the weight of, with its layout there."""
    others: list[Operation] = field(default_factory=list)
    """Every other op that reads it."""


def _layer_use(op: Operation, index: int) -> tuple[nn.LinearOp | nn.MatmulOp, Layout] | None:
    """`(op, layout)` if operand `index` of `op` is the weight of a linear layer."""
    if isinstance(op, nn.LinearOp) and index == 1:
        return op, "out_in"
    if isinstance(op, nn.MatmulOp) and index == 1:
        assert isinstance(op.rhs.type, TensorType)
        if len(op.rhs.type.get_shape()) == 2:
            return op, "out_in" if op.transpose_rhs is not None else "in_out"
    return None


def weight_uses(module: ModuleOp) -> dict[str, WeightUses]:
    """For every parameter read by an `nn.load`, the layers it is the weight of and the
    other ops that read it."""
    result: dict[str, WeightUses] = {}
    for op in module.walk():
        if not isinstance(op, nn.LoadOp):
            continue
        uses = result.setdefault(op.param.string_value(), WeightUses())
        for use in op.result.uses:
            layer = _layer_use(use.operation, use.index)
            if layer is not None:
                uses.layers.append(layer)
            else:
                uses.others.append(use.operation)
    return result


def _has_training_step(module: ModuleOp) -> bool:
    return any(isinstance(op, train.StoreOp) for op in module.walk())


@dataclass(frozen=True)
class InsertLoraPass(EdgeOptPass):
    """Adds LoRA adapters to the matching linear-layer weights and freezes them (see
    the module docstring)."""

    name = "insert-lora"

    rank: int = 4
    alpha: float = 8.0
    targets: str = ".*"
    init: Init = "kaiming"
    seed: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if _has_training_step(op):
            raise PassFailedException(
                "insert-lora: the module already has a training step (train.store); "
                "insert adapters before autodiff (train-lora does both)"
            )
        try:
            regex = re.compile(self.targets)
        except re.error as e:
            raise PassFailedException(
                f"insert-lora: targets='{self.targets}' is not a regular expression: {e}"
            ) from None
        params = [p for p in model_params(op) if not is_adapter(p)]
        uses = weight_uses(op)
        weights = [p for p in params if uses.get(p.sym_name.data, WeightUses()).layers]
        matched = [p for p in weights if regex.fullmatch(p.sym_name.data)]
        if not matched:
            message = self._no_match_message(regex, params, weights)
            if any(o.name == "nn.attention" for o in op.walk()):
                message += (
                    "; the projections inside nn.attention are not linear layers: "
                    "insert adapters before raise-attention"
                )
            raise PassFailedException(message)
        adapted = {
            ref.string_value() for p in model_params(op)
            if isinstance(ref := p.attributes.get(BASE_ATTR), SymbolRefAttr)
        }
        for param in matched:
            layout = _layout(param, uses[param.sym_name.data], adapted)
            self._adapt(op, param, uses[param.sym_name.data], layout)

    def _no_match_message(
        self, regex: re.Pattern[str], params: list[nn.ParamOp], weights: list[nn.ParamOp]
    ) -> str:
        def listed(ops: list[nn.ParamOp]) -> str:
            names = ", ".join(p.sym_name.data for p in ops[:6])
            return f"{names}{', ...' if len(ops) > 6 else ''}"

        others = [p for p in params if regex.fullmatch(p.sym_name.data)]
        message = f"insert-lora: targets='{self.targets}' matches no weight of a linear layer"
        if others:
            message += (
                f" (it matches {len(others)} parameter(s), {listed(others)}, but none is "
                "the weight of an nn.linear or the right operand of a 2-D nn.matmul)"
            )
        if weights:
            return message + f"; the model's linear-layer weights: {listed(weights)}"
        return message + "; the model has no nn.linear or nn.matmul with a parameter weight"

    def _adapt(
        self, module: ModuleOp, param: nn.ParamOp, uses: WeightUses, layout: Layout
    ) -> None:
        name = param.sym_name.data
        shape = tuple(param.type.get_shape())
        a_shape, b_shape = adapter_shapes(shape, self.rank, layout)
        element = param.type.element_type
        dtype = numpy_dtype(element)
        rng = np.random.default_rng([self.seed, zlib.crc32(name.encode())])
        if self.init == "kaiming":
            bound = 1.0 / math.sqrt(fan_in(shape, layout))
            a_value = rng.uniform(-bound, bound, a_shape)
        else:
            a_value = rng.normal(0.0, 1.0 / self.rank, a_shape)
        a = self._declare(module, name, param, "a", TensorType(element, a_shape),
                          a_value.astype(dtype), layout)
        b = self._declare(module, name, a, "b", TensorType(element, b_shape),
                          np.zeros(b_shape, dtype), layout)
        set_trainable(param, False)
        for layer, _ in uses.layers:
            self._rewrite(layer, name, a, b, dtype)

    def _declare(
        self, module: ModuleOp, base: str, after: nn.ParamOp,
        factor: Literal["a", "b"], type: TensorType, value: np.ndarray, layout: Layout,
    ) -> nn.ParamOp:
        """Declares adapter factor `factor` of `@base` right after `after`."""
        name = f"{base}_lora_{factor}"
        if any(isinstance(o, nn.ParamOp) and o.sym_name.data == name for o in module.ops):
            raise PassFailedException(
                f"insert-lora: cannot name the adapter of @{base} @{name}: the module "
                "already has a parameter of that name"
            )
        param = nn.ParamOp(name, type, trainable=True, value=to_dense(value, type))
        param.attributes.update(
            adapter_attributes(base, factor, self.rank, self.alpha, layout)
        )
        module.body.block.insert_op_after(param, after)
        return param

    def _rewrite(
        self, layer: nn.LinearOp | nn.MatmulOp, base: str, a: nn.ParamOp,
        b: nn.ParamOp, dtype: np.dtype,
    ) -> None:
        """`y = layer(x, W)` -> `y = layer(x, W) + scale * up(down(x, A), B)`."""
        y = layer.result
        hint = y.name_hint or base
        load_a = nn.LoadOp(a.sym_name.data, a.type)
        load_b = nn.LoadOp(b.sym_name.data, b.type)
        load_a.result.name_hint = a.sym_name.data
        load_b.result.name_hint = b.sym_name.data
        new: list[Operation] = [load_a]
        if isinstance(layer, nn.LinearOp):
            down: Operation = nn.LinearOp(layer.input, load_a)
        else:
            down = nn.MatmulOp(
                layer.lhs, load_a, layer.transpose_lhs is not None,
                layer.transpose_rhs is not None,
            )
        new.append(down)
        h: SSAValue = down.results[0]
        h.name_hint = f"{hint}_lora_down"
        scale = self.alpha / self.rank
        if scale != 1.0:
            scalar = TensorType(a.type.element_type, ())
            constant = nn.ConstantOp(to_dense(np.array(scale, dtype), scalar))
            constant.result.name_hint = f"{hint}_lora_scale"
            mul = nn.MulOp(h, constant)
            mul.result.name_hint = f"{hint}_lora_scaled"
            new += [constant, mul]
            h = mul.result
        new.append(load_b)
        if isinstance(layer, nn.LinearOp):
            up: Operation = nn.LinearOp(h, load_b)
        else:
            up = nn.MatmulOp(h, load_b, False, layer.transpose_rhs is not None)
        up.results[0].name_hint = f"{hint}_lora_up"
        add = nn.AddOp(y, up)
        new += [up, add]
        Rewriter.insert_op(new, InsertPoint.after(layer))
        y.replace_uses_with_if(add.result, lambda use: use.operation is not add)
        add.result.name_hint = y.name_hint
        y.name_hint = f"{hint}_base"


def _layout(param: nn.ParamOp, uses: WeightUses, adapted: set[str]) -> Layout:
    """The layout of a matched weight, checking that it can be adapted."""
    name = param.sym_name.data
    if name in adapted:
        raise PassFailedException(
            f"insert-lora: @{name} already has LoRA adapters; merge them (merge-lora) "
            "before adding new ones"
        )
    if uses.others:
        other = uses.others[0]
        raise PassFailedException(
            f"insert-lora: @{name} is the weight of a linear layer but is also read by "
            f"{other.name}{_result_text(other)}; its adapters would not apply there, so "
            "it cannot be adapted (exclude it from targets)"
        )
    layouts = {layout for _, layout in uses.layers}
    if len(layouts) > 1:
        raise PassFailedException(
            f"insert-lora: @{name} is used both as an (out, in) and as an (in, out) "
            "weight; it cannot be adapted (exclude it from targets)"
        )
    return layouts.pop()


def _result_text(op: Operation) -> str:
    if op.results and op.results[0].name_hint:
        return f" (result %{op.results[0].name_hint})"
    parent = op.parent_op()
    if isinstance(parent, func.FuncOp):
        return f" in @{parent.sym_name.data}"
    return ""
