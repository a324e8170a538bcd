"""Small helpers shared by the lowerings."""

from __future__ import annotations

from typing import Any

import numpy as np

from edge_opt.frontends.onnx.errors import Unsupported
from edge_opt.frontends.onnx.values import Param
from edge_opt.support import shapes


def int_list(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def normalize_axis_of(axis: int, rank: int) -> int:
    return shapes.normalize_axis(int(axis), rank)



def scalar_operand(importer, value, what: str) -> float | None:
    """A scalar operand that must be known at import time (a Clip bound, a Pad value):
    absent (None, or an empty tensor), a constant, or a one-element float initializer,
    which the parameter rule may have made a parameter but which is a constant of the
    graph here (it is not materialized, so no parameter is made of it)."""
    if value is None:
        return None
    array = value.array if isinstance(value, Param) else importer.constant(value, what)
    if np.size(array) == 0:
        return None
    if np.size(array) != 1:
        raise Unsupported(f"{what} of shape {list(np.shape(array))} (a scalar is expected)")
    return float(np.asarray(array).reshape(-1)[0])
