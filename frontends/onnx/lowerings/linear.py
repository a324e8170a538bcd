"""Lowerings of the ONNX linear-algebra ops: MatMul and Gemm."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from edge_opt.dialects import nn
from edge_opt.frontends.onnx.registry import lowering
from edge_opt.frontends.onnx.values import tensor_shape

if TYPE_CHECKING:
    from edge_opt.frontends.onnx.importer import Importer


@lowering("MatMul")
def _matmul(self: Importer, node, ins, attrs):
    a, b = self.ssa(ins[0]), self.ssa(ins[1])
    a_vector, b_vector = len(tensor_shape(a)) == 1, len(tensor_shape(b)) == 1
    if a_vector:
        a = self.emit(nn.UnsqueezeOp(a, [0]))
    if b_vector:
        b = self.emit(nn.UnsqueezeOp(b, [1]))
    y = self.emit(nn.MatmulOp(a, b))
    drop = ([-2] if a_vector else []) + ([-1] if b_vector else [])
    if drop:
        rank = len(tensor_shape(y))
        y = self.emit(nn.SqueezeOp(y, sorted(d % rank for d in drop)))
    return [y]


@lowering("Gemm", ["alpha", "beta", "transA", "transB", "broadcast"])
def _gemm(self: Importer, node, ins, attrs):
    """`alpha * op(A) @ op(B) + beta * C`; `nn.linear` when it is `A @ W.T + b`."""
    a, b = self.ssa(ins[0]), self.ssa(ins[1])
    c = ins[2]
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    if trans_b and not trans_a and len(tensor_shape(b)) == 2:
        n = tensor_shape(b)[0]
        bias = None
        if c is not None and alpha == 1.0 and beta == 1.0:
            c_ssa = self.ssa(c)
            c_shape = tensor_shape(c_ssa)
            if c_shape == (n,):
                bias = c_ssa
            elif (
                c_shape[-1:] == (n,)
                and math.prod(c_shape) == n
                and len(c_shape) <= len(tensor_shape(a))
            ):
                bias = self.emit(nn.ReshapeOp(c_ssa, (n,)))
            if bias is not None:
                return [self.emit(nn.LinearOp(a, b, bias))]
        y = self.emit(nn.LinearOp(a, b))
    else:
        y = self.emit(nn.MatmulOp(a, b, trans_a, trans_b))
    if alpha != 1.0:
        y = self.emit(nn.MulOp(y, self.scalar(alpha, y)))
    if c is not None and beta != 0.0:
        c_ssa = self.ssa(c)
        if beta != 1.0:
            c_ssa = self.emit(nn.MulOp(c_ssa, self.scalar(beta, c_ssa)))
        y = self.emit(nn.AddOp(y, c_ssa))
    return [y]
