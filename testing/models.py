"""Small fixed models for tests and benchmarks."""

from __future__ import annotations

import math

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32, f64
from xdsl.ir import Block, Region, SSAValue

from edge_opt.dialects import nn
from edge_opt.support.dtypes import to_dense


def self_attention_layer(
    tokens: int,
    dim: int,
    heads: int,
    *,
    batch: int = 1,
    bias: bool = True,
    seed: int = 0,
    dtype: type = np.float32,
) -> tuple[ModuleOp, dict[str, np.ndarray]]:
    """One multi-head self-attention layer, `@forward(x: (batch, tokens, dim))`, as a
    single `nn.attention` with trainable (D, D) projections (CCT's MHSA: dk = dim /
    heads, scale 1/sqrt(dk)), random weights; and a random input `x`."""
    if dim % heads:
        raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
    rng = np.random.default_rng(seed)
    element = {np.float32: f32, np.float64: f64}[dtype]
    block = Block(arg_types=[TensorType(element, (batch, tokens, dim))])
    block.args[0].name_hint = "x"
    params: list[nn.ParamOp] = []

    def param(name: str, shape: tuple[int, ...]) -> SSAValue:
        scale = 1 / math.sqrt(shape[0]) if len(shape) > 1 else 0.1
        value = (rng.standard_normal(shape) * scale).astype(dtype)
        type = TensorType(element, shape)
        params.append(nn.ParamOp(name, type, True, to_dense(value, type)))
        load = nn.LoadOp(name, type)
        block.add_op(load)
        return load.result

    weights = [param(f"w{n}", (dim, dim)) for n in "qkvo"]
    biases = [param(f"b{n}", (dim,)) for n in "qkvo"] if bias else None
    attention = nn.AttentionOp(
        block.args[0], *weights, biases, heads=heads, scale=(dim // heads) ** -0.5
    )
    attention.result.name_hint = "attn"
    block.add_ops([attention, func.ReturnOp(attention.result)])
    forward = func.FuncOp(
        "forward", ([block.args[0].type], [attention.result.type]), Region(block)
    )
    module = ModuleOp([*params, forward])
    module.verify()
    x = rng.standard_normal((batch, tokens, dim)).astype(dtype)
    return module, {"x": x}
