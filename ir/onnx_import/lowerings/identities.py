"""Lowerings of the ONNX ops that forward their input: Identity and (inference)
Dropout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edge_opt.ir.onnx_import.errors import _Unsupported
from edge_opt.ir.onnx_import.registry import _lowering

if TYPE_CHECKING:
    from edge_opt.ir.onnx_import.importer import _Importer


@_lowering("Identity")
def _identity(self: _Importer, node, ins, attrs):
    return [ins[0]]


@_lowering("Dropout", ["ratio", "seed", "is_test"])
def _dropout(self: _Importer, node, ins, attrs):
    """Inference: the identity (the mask output is not provided)."""
    training = ins[2]
    if training is not None and bool(np.any(self.constant(training, "training_mode"))):
        raise _Unsupported("training_mode=true")
    return [ins[0]]
