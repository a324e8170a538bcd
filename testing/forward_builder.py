"""`ForwardBuilder`: a `@forward` written op by op, for tests that need one exact model
(a random model is `random_models`'s job).

    b = ForwardBuilder((2, 4), seed=0)
    w = b.param("w", (3, 4))
    y = b.op(nn.LinearOp(b.x, w, None), "y")
    module, inputs = b.module(y), b.inputs
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32, f64
from xdsl.ir import Block, Operation, Region, SSAValue

from edge_opt.dialects import nn
from edge_opt.support.dtypes import to_dense


class ForwardBuilder:
    """Inputs `x0`, `x1`, ... with standard normal values (`inputs`), parameters with
    seeded values scaled by 1/sqrt(fan-in) (each read by its own `nn.load`), ops appended
    in order; `module(*outputs)` returns the verified module."""

    def __init__(self, *input_shapes: Sequence[int], seed: int = 0,
                 dtype: type[np.floating] = np.float64):
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.element = {np.float32: f32, np.float64: f64}[dtype]
        self.block = Block(arg_types=[TensorType(self.element, s) for s in input_shapes])
        self.params: list[nn.ParamOp] = []
        self.inputs: dict[str, np.ndarray] = {}
        for i, arg in enumerate(self.block.args):
            arg.name_hint = f"x{i}"
            self.inputs[arg.name_hint] = (
                self.rng.standard_normal(tuple(input_shapes[i])).astype(dtype)
            )

    @property
    def x(self) -> SSAValue:
        return self.block.args[0]

    def fan_in(self, shape: Sequence[int]) -> int:
        return math.prod(shape[1:]) if len(shape) > 1 else 1

    def param(self, name: str, shape: Sequence[int], trainable: bool = True,
              value: np.ndarray | None = None, std: float = 1.0) -> SSAValue:
        type = TensorType(self.element, shape)
        if value is None:
            value = self.rng.standard_normal(tuple(shape)) * std / math.sqrt(
                self.fan_in(shape)
            )
        value = np.asarray(value).astype(self.dtype)
        self.params.append(nn.ParamOp(name, type, trainable, to_dense(value, type)))
        return self.op(nn.LoadOp(name, type), name)

    def constant(self, value) -> SSAValue:
        array = np.asarray(value, dtype=self.dtype)
        return self.op(nn.ConstantOp(to_dense(array, TensorType(self.element, array.shape))))

    def op(self, op: Operation, name: str | None = None) -> SSAValue:
        self.block.add_op(op)
        if name is not None:
            op.results[0].name_hint = name
        return op.results[0]

    def module(self, *outputs: SSAValue) -> ModuleOp:
        self.block.add_op(func.ReturnOp(*outputs))
        forward = func.FuncOp(
            "forward",
            ([a.type for a in self.block.args], [o.type for o in outputs]),
            Region(self.block),
        )
        module = ModuleOp([*self.params, forward])
        module.verify()
        return module
