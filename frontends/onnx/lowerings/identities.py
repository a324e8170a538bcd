"""Lowerings of the ONNX ops that forward their input: Identity and Dropout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_opt.frontends.onnx.errors import Unsupported
from edge_opt.frontends.onnx.registry import lowering
from edge_opt.frontends.onnx.values import Const

if TYPE_CHECKING:
    from edge_opt.frontends.onnx.importer import Importer


@lowering("Identity")
def _identity(self: Importer, node, ins, attrs):
    return [ins[0]]


@lowering("Dropout", ["ratio", "seed", "is_test"])
def _dropout(self: Importer, node, ins, attrs):
    """The identity, in inference and in training mode alike: edge-opt trains with
    dropout off (documented in the user guide), so `ratio` and `training_mode` change
    nothing. The mask output, if used, is all true (every element kept)."""
    x = ins[0]
    if x is None:
        raise Unsupported("missing input")
    shape, _ = self._shape_and_dtype(x)
    return [x, Const(np.ones(shape, np.bool_), "")]
