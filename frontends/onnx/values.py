"""Values during the import: what an ONNX value name stands for while the graph is
imported (a constant, a parameter, an SSA value, or the poison of a node that could not
be imported)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import SSAValue

from edge_opt.dialects import nn


@dataclass(eq=False)
class Const:
    """A value known at import time."""

    array: np.ndarray
    source: str


@dataclass(eq=False)
class Param:
    """An initializer that becomes an `nn.param` when an op reads it."""

    onnx_name: str
    array: np.ndarray
    trainable: bool
    loads: list[nn.LoadOp] = field(default_factory=list)


class _Poison:
    """The value of a node that could not be imported (already reported).

    `foldable`: the value would be a constant once the nodes before it import (a
    `Shape` of it, or any foldable node of such values), so its readers are not
    blockers of their own."""

    def __init__(self, foldable: bool = False):
        self.foldable = foldable


_POISON = _Poison()
_FOLDABLE_POISON = _Poison(foldable=True)
_Value = Const | Param | SSAValue | _Poison


def tensor_shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return tuple(value.type.get_shape())
