"""What `insert-lora` and `merge-lora` share: how an adapter is recorded in the IR, and
the low-rank update it stands for.

A LoRA adapter (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models";
PEFT's `LoraLayer`) of a frozen weight W is a pair of trainable parameters A and B such
that the layer computes `base(x) + (alpha / rank) * (x·A·B)` in W's layout, i.e. uses the
weight `W + ΔW` with

- W laid out (out, in) (the weight of `nn.linear`, or the right operand of an
  `nn.matmul` with `transpose_rhs`): A is (rank, in), B is (out, rank) as in PEFT, and
  `ΔW = (alpha / rank) · B·A`;
- W laid out (in, out) (the right operand of a plain `nn.matmul`, `x @ W`): A is
  (in, rank), B is (rank, out), and `ΔW = (alpha / rank) · A·B`.

Both adapter parameters carry discardable attributes that make them self-describing, so
`merge-lora` needs no options:

    nn.param trainable @fc_weight_lora_a : tensor<4x64xf32> = dense<...> : tensor<4x64xf32>
        {lora.base = @fc_weight, lora.factor = "a", lora.rank = 4 : i64,
         lora.alpha = 8.000000e+00 : f64, lora.layout = "out_in"}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
from xdsl.dialects.builtin import (
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    SymbolRefAttr,
    f64,
)
from xdsl.ir import Attribute
from xdsl.utils.exceptions import PassFailedException

from edge_opt.dialects import nn

BASE_ATTR = "lora.base"
"""The weight an adapter parameter belongs to (`@W`)."""
FACTOR_ATTR = "lora.factor"
"""Which factor the parameter is: `"a"` (applied first, to the layer's input) or `"b"`."""
RANK_ATTR = "lora.rank"
ALPHA_ATTR = "lora.alpha"
LAYOUT_ATTR = "lora.layout"
"""The layout of the base weight: `"out_in"` (ΔW = scale·B·A) or `"in_out"` (ΔW =
scale·A·B)."""

Layout = Literal["out_in", "in_out"]
LAYOUTS: tuple[Layout, ...] = ("out_in", "in_out")


def adapter_shapes(
    weight_shape: tuple[int, ...], rank: int, layout: Layout
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The shapes of A and B for a 2-D weight of `weight_shape` in `layout`."""
    rows, cols = weight_shape
    if layout == "out_in":  # W (out, in): A (rank, in), B (out, rank)
        return (rank, cols), (rows, rank)
    return (rows, rank), (rank, cols)  # W (in, out): A (in, rank), B (rank, out)


def fan_in(weight_shape: tuple[int, ...], layout: Layout) -> int:
    """The input features of the layer (A's fan-in)."""
    return weight_shape[1] if layout == "out_in" else weight_shape[0]


def delta(a: np.ndarray, b: np.ndarray, scale: float, layout: Layout) -> np.ndarray:
    """`ΔW` in float64: `scale·B·A` for an (out, in) weight, `scale·A·B` for (in, out)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return scale * (b64 @ a64 if layout == "out_in" else a64 @ b64)


def adapter_attributes(
    base: str, factor: Literal["a", "b"], rank: int, alpha: float, layout: Layout
) -> dict[str, Attribute]:
    """The `lora.*` attributes of adapter factor `factor` of `@base`."""
    return {
        BASE_ATTR: SymbolRefAttr(base),
        FACTOR_ATTR: StringAttr(factor),
        RANK_ATTR: IntegerAttr(rank, 64),
        ALPHA_ATTR: FloatAttr(alpha, f64),
        LAYOUT_ATTR: StringAttr(layout),
    }


def is_adapter(param: nn.ParamOp) -> bool:
    return BASE_ATTR in param.attributes


@dataclass(frozen=True)
class Adapter:
    """The adapter pair of one base weight, read back from the attributes."""

    base: nn.ParamOp
    a: nn.ParamOp
    b: nn.ParamOp
    rank: int
    alpha: float
    layout: Layout

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def _attribute(param: nn.ParamOp, key: str, kind: type) -> object:
    value = param.attributes.get(key)
    if not isinstance(value, kind):
        raise PassFailedException(
            f"LoRA adapter @{param.sym_name.data}: attribute {key} is missing or not a "
            f"{kind.__name__}"
        )
    return value


def find_adapters(module: ModuleOp) -> list[Adapter]:
    """The module's adapters by base weight, in declaration order; inconsistent
    attributes (a factor missing, twice, or disagreeing with its twin or the shapes)
    are a `PassFailedException` naming the parameter."""
    params = {op.sym_name.data: op for op in module.ops if isinstance(op, nn.ParamOp)}
    factors: dict[str, dict[str, nn.ParamOp]] = {}
    for param in params.values():
        if not is_adapter(param):
            continue
        base = cast(SymbolRefAttr, _attribute(param, BASE_ATTR, SymbolRefAttr))
        factor = cast(StringAttr, _attribute(param, FACTOR_ATTR, StringAttr)).data
        if factor not in ("a", "b"):
            raise PassFailedException(
                f"LoRA adapter @{param.sym_name.data}: {FACTOR_ATTR} must be \"a\" or "
                f"\"b\", not \"{factor}\""
            )
        pair = factors.setdefault(base.string_value(), {})
        if factor in pair:
            raise PassFailedException(
                f"LoRA adapters @{pair[factor].sym_name.data} and "
                f"@{param.sym_name.data} are both factor {factor} of @{base.string_value()}"
            )
        pair[factor] = param
    adapters = []
    for base_name, pair in factors.items():
        base = params.get(base_name)
        if base is None:
            raise PassFailedException(
                f"LoRA adapter @{next(iter(pair.values())).sym_name.data}: its base "
                f"weight @{base_name} is not a parameter of the module"
            )
        missing = [f for f in ("a", "b") if f not in pair]
        if missing:
            raise PassFailedException(
                f"LoRA adapter of @{base_name}: factor {missing[0]} is missing (only "
                f"@{next(iter(pair.values())).sym_name.data})"
            )
        a, b = pair["a"], pair["b"]
        settings = []
        for param in (a, b):
            rank = cast(IntegerAttr, _attribute(param, RANK_ATTR, IntegerAttr)).value.data
            alpha = cast(FloatAttr, _attribute(param, ALPHA_ATTR, FloatAttr)).value.data
            layout = cast(StringAttr, _attribute(param, LAYOUT_ATTR, StringAttr)).data
            settings.append((rank, alpha, layout))
        if settings[0] != settings[1]:
            raise PassFailedException(
                f"LoRA adapters @{a.sym_name.data} and @{b.sym_name.data} disagree on "
                f"rank, alpha or layout: {settings[0]} vs {settings[1]}"
            )
        rank, alpha, layout = settings[0]
        if layout not in LAYOUTS:
            raise PassFailedException(
                f"LoRA adapter @{a.sym_name.data}: {LAYOUT_ATTR} must be one of "
                f"{', '.join(LAYOUTS)}, not \"{layout}\""
            )
        layout = cast(Layout, layout)
        shape = tuple(base.type.get_shape())
        expected = adapter_shapes(shape, rank, layout) if len(shape) == 2 else None
        got = (tuple(a.type.get_shape()), tuple(b.type.get_shape()))
        if expected != got:
            raise PassFailedException(
                f"LoRA adapters of @{base_name} ({base.type}, layout {layout}, rank "
                f"{rank}) should be {expected}, but are {got}"
            )
        adapters.append(Adapter(base, a, b, rank, alpha, layout))
    return adapters
