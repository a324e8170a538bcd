"""Property-test harness: random well-typed `nn` models, and a check that a pass keeps
the meaning of a module.

This is how edge-opt checks its passes (BRIEF section 5: "pass equivalence by
interpretation"), and it is part of the package so that users fuzz their own passes the
same way:

    from hypothesis import given
    from edge_opt.ir.testing import assert_pass_preserves_semantics, random_models

    @given(random_models(max_ops=6))
    def test_my_pass(model):
        assert_pass_preserves_semantics(MyPass(), model.module, model.inputs)

`random_models` draws random DAGs over every op of the `nn` dialect with consistent
shapes; `assert_pass_preserves_semantics` applies a pass (or pipeline) to a copy,
verifies after every pass, interprets both modules on the same inputs and compares every
output and the parameter state after the call.

How the strategy works. It keeps a pool of the values built so far (function inputs
and op results) and, for each op it draws, picks operands from the pool (by distance
from the newest value, so a shrunk graph is a chain) and adapts them: a conv reshapes
its operand into an NCHW tensor, a binary op resizes the other operand into a shape
that broadcasts. Every op is evaluated as it is built (with the interpreter's own
implementations), so the strategy knows the actual values and keeps them tame:
operands larger than `_BOUND` pass through `tanh` first, `log`/`sqrt`/`pow`/`div` get
positive or non-small operands (through `exp(tanh(x))` or `sigmoid(x) + 0.5` when
needed), and normalisations get inputs whose normalised groups are not almost
constant. Such glue ops (reshape, slice, concat, tanh, exp, sigmoid, add of a
constant) appear even when `ops` does not list them. All numbers (inputs, parameter
values, constants) come from NumPy generators seeded by drawn integers, one per
tensor, so shrinking the structure keeps the other values.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
from hypothesis import strategies as st
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType, f32, f64
from xdsl.interpreter import Interpreter
from xdsl.ir import Attribute, Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import VerifyException

from edge_opt.dialects import nn
from edge_opt.ir.dtypes import numpy_dtype, to_dense
from edge_opt.ir.interpreters.nn import NnFunctions
from edge_opt.ir.model_io import first_line, print_module
from edge_opt.ir.pipelines import expand, parse_pipeline
from edge_opt.ir.session import Session, get_function, input_names, params_of
from edge_opt.ir.universe import make_context

__all__ = [
    "ALL_OPS",
    "RandomModel",
    "assert_pass_preserves_semantics",
    "random_inputs",
    "random_models",
]

Draw: TypeAlias = Callable[[st.SearchStrategy], object]
Trainable = Literal["all", "none", "mixed"]
DType = Literal["f32", "f64"]

_BOUND = 20.0
"""Operands with a larger magnitude go through `tanh` before an op uses them."""

_MIN_VARIANCE = 1e-2
"""Normalised groups with a smaller variance get a spread-out constant added."""

_ELEMENT_TYPES: dict[str, Attribute] = {"f32": f32, "f64": f64}

DEFAULT_TOLERANCES: dict[np.dtype, tuple[float, float]] = {
    np.dtype(np.float16): (1e-2, 1e-3),
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-9, 1e-11),
}
"""`(rtol, atol)` per output dtype when the caller gives none; exact for integers."""


# --------------------------------------------------------------------------------------
# The model and the inputs
# --------------------------------------------------------------------------------------


@dataclass
class RandomModel:
    """A drawn model: a verified module with `func.func @forward` (parameters inline as
    `nn.param` values) and inputs for it, by input name."""

    module: ModuleOp
    inputs: dict[str, np.ndarray]

    def __repr__(self) -> str:
        small = sum(v.size for v in self.inputs.values()) <= 64
        inputs = ", ".join(
            f"{k!r}: " + (repr(v) if small else f"<{v.dtype}{list(v.shape)}>")
            for k, v in self.inputs.items()
        )
        return f"RandomModel(inputs={{{inputs}}}, module=\n{print_module(self.module)})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        # Hypothesis prints dataclasses field by field, and an xDSL op's repr is huge.
        printer.text(repr(self))


def random_inputs(
    function: func.FuncOp, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Inputs for `function` by input name: standard normal floats, integers in [0, 2)
    (valid class labels for any classifier), random booleans."""
    inputs: dict[str, np.ndarray] = {}
    for name, type in zip(
        input_names(function), function.function_type.inputs.data, strict=True
    ):
        if not isinstance(type, TensorType):
            raise NotImplementedError(f"random_inputs: input '{name}' is a {type}")
        shape = tuple(type.get_shape())
        dtype = numpy_dtype(type.element_type)
        if dtype.kind == "f":
            array = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            array = rng.random(shape) < 0.5
        else:
            array = rng.integers(0, 2, shape).astype(dtype)
        inputs[name] = array
    return inputs


# --------------------------------------------------------------------------------------
# Shape helpers (pure)
# --------------------------------------------------------------------------------------


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _factorizations(n: int, rank: int, limit: int) -> list[tuple[int, ...]]:
    """Every shape of `rank` axes, each at most `limit`, with `n` elements."""
    if rank == 0:
        return [()] if n == 1 else []
    return [
        (d, *rest)
        for d in _divisors(n)
        if d <= limit
        for rest in _factorizations(n // d, rank - 1, limit)
    ]


def _window_kernel_limit(size: int, pad: int, dilation: int) -> int:
    """Largest kernel (at most 3) whose dilated window fits `size` plus `pad`."""
    return max(1, min(3, (size + pad - 1) // dilation + 1))


# --------------------------------------------------------------------------------------
# The builder: a function body under construction, with the value of every SSA value
# --------------------------------------------------------------------------------------


def _evaluator() -> Interpreter:
    """Runs single ops as they are built (no module, so no symbol lookups)."""
    interpreter = Interpreter(ModuleOp([]))
    interpreter.register_implementations(NnFunctions())
    return interpreter


@dataclass
class _Builder:
    """The body of `@forward` under construction, the value of every SSA value in it,
    and the pool of values later ops may use."""

    draw: Draw
    element: Attribute
    max_dim: int
    trainable: Trainable
    block: Block
    values: dict[SSAValue, np.ndarray] = field(default_factory=dict)
    pool: list[SSAValue] = field(default_factory=list)
    params: list[nn.ParamOp] = field(default_factory=list)
    param_values: dict[str, np.ndarray] = field(default_factory=dict)
    layer: str = "op"
    interpreter: Interpreter = field(default_factory=_evaluator)

    @property
    def dtype(self) -> np.dtype:
        return numpy_dtype(self.element)

    # --- drawing ------------------------------------------------------------------

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, max(lo, hi)]."""
        return self.draw(st.integers(lo, max(lo, hi)))  # type: ignore[return-value]

    def coin(self) -> bool:
        return self.draw(st.booleans())  # type: ignore[return-value]

    def choice(self, options: Sequence):
        return self.draw(st.sampled_from(options))

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.integer(0, 2**32 - 1))

    # --- emitting -----------------------------------------------------------------

    def emit(self, op: Operation) -> SSAValue:
        """Appends `op` and computes its value."""
        self.block.add_op(op)
        if isinstance(op, nn.LoadOp):
            value = self.param_values[op.param.string_value()]
        else:
            args = tuple(self.values[o] for o in op.operands)
            (value,) = self.interpreter.run_op(op, args)
        assert np.all(np.isfinite(value)), (
            f"random_models built {op.name} with non-finite values (a strategy bug)"
        )
        self.values[op.results[0]] = value
        return op.results[0]

    def type(self, shape: Sequence[int]) -> TensorType:
        return TensorType(self.element, tuple(shape))

    def param(
        self,
        kind: Literal["weight", "bias", "scale", "mean", "var"],
        shape: Sequence[int],
        fan_in: int = 1,
    ) -> SSAValue:
        """A new `nn.param` of the layer being built, and an `nn.load` of it."""
        rng = self.rng()
        shape = tuple(shape)
        if kind == "weight":
            array = rng.standard_normal(shape) / math.sqrt(max(fan_in, 1))
        elif kind == "scale":
            array = 1.0 + 0.1 * rng.standard_normal(shape)
        elif kind == "var":
            array = rng.uniform(0.5, 1.5, shape)
        else:
            array = 0.1 * rng.standard_normal(shape)
        name = base = f"{self.layer}_{kind}"
        taken = {p.sym_name.data for p in self.params}
        suffix = 1
        while name in taken:
            name, suffix = f"{base}{suffix}", suffix + 1
        trainable = {"all": True, "none": False}.get(self.trainable)
        if trainable is None:
            trainable = self.coin()
        type = self.type(shape)
        array = array.astype(self.dtype)
        self.params.append(nn.ParamOp(name, type, trainable, to_dense(array, type)))
        self.param_values[name] = array
        return self.emit(nn.LoadOp(name, type))

    def constant(self, array: np.ndarray) -> SSAValue:
        array = np.asarray(array, dtype=self.dtype)
        return self.emit(nn.ConstantOp(to_dense(array, self.type(array.shape))))

    def random_constant(
        self, shape: Sequence[int], kind: Literal["normal", "nonzero"] = "normal"
    ) -> SSAValue:
        rng = self.rng()
        if kind == "nonzero":
            array = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
        else:
            array = rng.standard_normal(shape)
        return self.constant(array)

    # --- picking and adapting operands ---------------------------------------------

    def shape(self, value: SSAValue) -> tuple[int, ...]:
        return self.values[value].shape

    def choose(self) -> SSAValue:
        """A value of the pool, counted from the newest (so shrinking makes chains)."""
        return self.pool[-1 - self.integer(0, len(self.pool) - 1)]

    def pick(self, min_rank: int = 0) -> SSAValue:
        """A value of the pool, tamed, with at least `min_rank` axes."""
        value = self.bounded(self.choose(), _BOUND)
        shape = self.shape(value)
        if len(shape) < min_rank:
            value = self.emit(
                nn.ReshapeOp(value, (1,) * (min_rank - len(shape)) + shape)
            )
        return value

    def bounded(self, value: SSAValue, bound: float) -> SSAValue:
        if np.max(np.abs(self.values[value]), initial=0.0) > bound:
            value = self.emit(nn.TanhOp(value))
        return value

    def positive(self, value: SSAValue, low: float = 0.1) -> SSAValue:
        """`value` if its elements are in [low, 50], else a positive function of it."""
        array = self.values[value]
        if np.min(array, initial=low) >= low and np.max(array, initial=0.0) <= 50.0:
            return value
        if self.choice(["exp_tanh", "sigmoid_shift"]) == "exp_tanh":
            return self.emit(nn.ExpOp(self.emit(nn.TanhOp(value))))
        shift = self.constant(np.asarray(0.5))
        return self.emit(nn.AddOp(self.emit(nn.SigmoidOp(value)), shift))

    def reshape(self, value: SSAValue, shape: Sequence[int]) -> SSAValue:
        if self.shape(value) == tuple(shape):
            return value
        return self.emit(nn.ReshapeOp(value, shape))

    def resize(self, value: SSAValue, shape: Sequence[int]) -> SSAValue:
        """A value of exactly `shape` made of `value`'s elements: reshaped, repeated by
        concatenation and cut by a (strided) slice as needed."""
        shape = tuple(shape)
        n, m = math.prod(self.shape(value)), math.prod(shape)
        if n == m:
            return self.reshape(value, shape)
        flat = self.reshape(value, (n,))
        if n < m:
            flat = self.emit(nn.ConcatOp([flat] * -(-m // n), 0))
            n *= -(-m // n)
        if n > m:
            step = self.integer(1, (n - 1) // max(m - 1, 1)) if m > 1 else 1
            start = self.integer(0, n - (m - 1) * step - 1)
            flat = self.emit(
                nn.SliceOp(flat, [start], [start + (m - 1) * step + 1], [step])
            )
        return self.reshape(flat, shape)

    def as_rank(self, value: SSAValue, rank: int) -> SSAValue:
        """`value` reshaped to `rank` axes of at most `max_dim` when its element count
        factors so, else resized to a random shape of that rank."""
        shape = self.shape(value)
        if len(shape) == rank:
            return value
        candidates = _factorizations(math.prod(shape), rank, self.max_dim)
        if candidates:
            return self.reshape(value, self.choice(candidates))
        return self.resize(
            value, tuple(self.integer(1, self.max_dim) for _ in range(rank))
        )

    def broadcast_partner(self, shape: Sequence[int]) -> tuple[int, ...]:
        """A shape that broadcasts with `shape`: leading axes dropped or added, axes
        set to 1, size-1 axes grown."""
        drop = self.integer(0, len(shape))
        dims = list(shape[drop:])
        for i, d in enumerate(dims):
            how = self.integer(0, 2)
            if how == 1:
                dims[i] = 1
            elif how == 2 and d == 1:
                dims[i] = self.integer(2, 3)
        if drop > 0:
            return tuple(dims)
        return (*(self.integer(1, 2) for _ in range(self.integer(0, 1))), *dims)

    def operand_of_shape(
        self, shape: Sequence[int], kind: Literal["normal", "nonzero"] = "normal"
    ) -> SSAValue:
        """A value of `shape`: from the pool, a parameter or a constant."""
        source = self.choice(["value", "param", "constant"])
        if source == "value":
            value = self.resize(self.pick(), shape)
            return self.nonzero(value) if kind == "nonzero" else value
        if source == "param" and kind == "normal":
            return self.param("bias", shape)
        return self.random_constant(shape, kind)

    def nonzero(self, value: SSAValue) -> SSAValue:
        if np.min(np.abs(self.values[value]), initial=1.0) >= 0.3:
            return value
        return self.positive(value, 0.3)

    def spread(
        self, value: SSAValue, variances: Callable[[np.ndarray], np.ndarray]
    ) -> SSAValue:
        """`value`, plus a spread-out constant if one of the groups a normalisation
        averages over is almost constant (`variances` maps an array to the variance
        of each group): dividing by a tiny standard deviation would amplify every
        rounding difference."""
        array = self.values[value]
        if array.size == 0 or np.min(variances(array), initial=np.inf) >= _MIN_VARIANCE:
            return value
        rng = self.rng()
        for _ in range(8):
            noise = 2.0 * rng.standard_normal(array.shape)
            if np.min(variances(array + noise)) >= _MIN_VARIANCE:
                break
        return self.emit(nn.AddOp(value, self.constant(noise)))

    def fit(self, value: SSAValue) -> SSAValue:
        """Strided slice of the axes that grew past the size limit (2 * max_dim, or
        max_dim ** 2 for vectors and matrices)."""
        shape = self.shape(value)
        limit = self.max_dim**2 if len(shape) <= 2 else 2 * self.max_dim
        if all(d <= limit for d in shape):
            return value
        steps = [-(-d // self.max_dim) if d > limit else 1 for d in shape]
        return self.emit(nn.SliceOp(value, [0] * len(shape), list(shape), steps))


# --------------------------------------------------------------------------------------
# One generator per op: picks operands, draws attributes, emits, returns the result
# --------------------------------------------------------------------------------------


Generator: TypeAlias = Callable[[_Builder], SSAValue]


def _unary(cls: type[nn.UnaryElementwiseOp]) -> Generator:
    def generate(b: _Builder) -> SSAValue:
        return b.emit(cls(b.pick()))

    return generate


def _gelu(b: _Builder) -> SSAValue:
    return b.emit(nn.GeluOp(b.pick(), b.choice(["none", "tanh"])))


def _exp(b: _Builder) -> SSAValue:
    return b.emit(nn.ExpOp(b.bounded(b.pick(), 3.0)))


def _log(b: _Builder) -> SSAValue:
    return b.emit(nn.LogOp(b.positive(b.pick())))


def _sqrt(b: _Builder) -> SSAValue:
    return b.emit(nn.SqrtOp(b.positive(b.pick())))


def _binary(cls: type[nn.BinaryElementwiseOp]) -> Generator:
    def generate(b: _Builder) -> SSAValue:
        lhs = b.pick()
        if b.coin():
            rhs = lhs  # x op x
        else:
            rhs = b.operand_of_shape(b.broadcast_partner(b.shape(lhs)))
        if b.coin():
            lhs, rhs = rhs, lhs
        return b.emit(cls(lhs, rhs))

    return generate


def _div(b: _Builder) -> SSAValue:
    lhs = b.pick()
    partner = b.broadcast_partner(b.shape(lhs))
    if b.coin():  # the numerator is the one that broadcasts
        return b.emit(nn.DivOp(b.resize(b.pick(), partner), b.nonzero(lhs)))
    return b.emit(nn.DivOp(lhs, b.operand_of_shape(partner, "nonzero")))


def _pow(b: _Builder) -> SSAValue:
    if b.choice(["integer_exponent", "positive_base"]) == "integer_exponent":
        base = b.bounded(b.pick(), 3.0)
        shape = b.broadcast_partner(b.shape(base))
        exponent = b.constant(b.rng().integers(1, 4, shape))
    else:
        base = b.positive(b.pick())
        shape = b.broadcast_partner(b.shape(base))
        if b.coin():
            exponent = b.constant(b.rng().uniform(-1.5, 1.5, shape))
        else:
            exponent = b.emit(nn.TanhOp(b.resize(b.pick(), shape)))
    return b.emit(nn.PowOp(base, exponent))


def _linear(b: _Builder) -> SSAValue:
    x = b.pick(min_rank=1)
    features = b.shape(x)[-1]
    out = b.integer(1, b.max_dim)
    weight = b.param("weight", (out, features), fan_in=features)
    bias = b.param("bias", (out,)) if b.coin() else None
    return b.emit(nn.LinearOp(x, weight, bias))


def _matmul(b: _Builder) -> SSAValue:
    lhs = b.pick(min_rank=2)
    *batch, rows, cols = b.shape(lhs)
    transpose_lhs, transpose_rhs = b.coin(), b.coin()
    k = rows if transpose_lhs else cols
    n = b.integer(1, b.max_dim)
    core = (n, k) if transpose_rhs else (k, n)
    shape = (*b.broadcast_partner(batch), *core)
    if b.coin():
        rhs = b.param("weight", shape, fan_in=k)
    else:
        rhs = b.resize(b.pick(), shape)
    return b.emit(nn.MatmulOp(lhs, rhs, transpose_lhs, transpose_rhs))


def _groups(
    b: _Builder, x: SSAValue, modes: Sequence[str]
) -> tuple[SSAValue, int]:
    """An NCHW operand and a group count: "dense" (1), "grouped" (a divisor strictly
    between 1 and the channel count) or "depthwise" (the channel count). When the
    channel count does not allow the mode, the operand's channels are repeated by
    concatenation until it does."""
    mode = b.choice(modes)
    channels = b.shape(x)[1]
    if mode == "dense":
        return x, 1
    if mode == "depthwise":
        if channels == 1:
            x = b.emit(nn.ConcatOp([x] * b.integer(2, 3), 1))
        return x, b.shape(x)[1]
    proper = [d for d in _divisors(channels) if 1 < d < channels]
    if not proper:
        x = b.emit(nn.ConcatOp([x] * (4 if channels == 1 else 2), 1))
        proper = [d for d in _divisors(b.shape(x)[1]) if 1 < d < b.shape(x)[1]]
    return x, b.choice(proper)


def _conv2d(b: _Builder) -> SSAValue:
    x, groups = _groups(b, b.as_rank(b.pick(), 4), ["dense", "grouped", "depthwise"])
    _, c, h, w = b.shape(x)
    out = groups * b.integer(1, max(1, b.max_dim // groups))
    stride = (b.integer(1, 2), b.integer(1, 2))
    dilation = (b.integer(1, 2), b.integer(1, 2))
    padding = tuple(b.integer(0, 2) for _ in range(4))
    kh = b.integer(1, _window_kernel_limit(h, padding[0] + padding[2], dilation[0]))
    kw = b.integer(1, _window_kernel_limit(w, padding[1] + padding[3], dilation[1]))
    weight = b.param("weight", (out, c // groups, kh, kw), fan_in=c // groups * kh * kw)
    bias = b.param("bias", (out,)) if b.coin() else None
    return b.emit(
        nn.Conv2dOp(
            x, weight, bias, stride=stride, padding=padding, dilation=dilation,
            groups=groups,
        )
    )


def _conv_transpose2d(b: _Builder) -> SSAValue:
    x, groups = _groups(b, b.as_rank(b.pick(), 4), ["dense", "grouped", "depthwise"])
    _, c, h, w = b.shape(x)
    per_group = b.integer(1, max(1, b.max_dim // groups))
    stride = (b.integer(1, 2), b.integer(1, 2))
    dilation = (b.integer(1, 2), b.integer(1, 2))
    kernel = (b.integer(1, 3), b.integer(1, 3))
    output_padding = tuple(
        b.integer(0, max(s, d) - 1) for s, d in zip(stride, dilation, strict=True)
    )
    begin, end = [0, 0], [0, 0]
    for axis, size in enumerate((h, w)):
        full = (
            (size - 1) * stride[axis]
            + dilation[axis] * (kernel[axis] - 1)
            + output_padding[axis]
            + 1
        )
        begin[axis] = b.integer(0, min(2, full - 1))
        end[axis] = b.integer(0, min(2, full - 1 - begin[axis]))
    weight = b.param(
        "weight", (c, per_group, *kernel), fan_in=c // groups * kernel[0] * kernel[1]
    )
    bias = b.param("bias", (per_group * groups,)) if b.coin() else None
    return b.emit(
        nn.ConvTranspose2dOp(
            x,
            weight,
            bias,
            stride=stride,
            padding=(begin[0], begin[1], end[0], end[1]),
            output_padding=output_padding,
            dilation=dilation,
            groups=groups,
        )
    )


def _axis_op(cls: type[nn.SoftmaxOp | nn.LogSoftmaxOp]) -> Generator:
    def generate(b: _Builder) -> SSAValue:
        x = b.pick(min_rank=1)
        rank = len(b.shape(x))
        return b.emit(cls(x, b.integer(-rank, rank - 1)))

    return generate


def _epsilon(b: _Builder) -> float:
    return b.choice([1e-5, 1e-3])


def _layer_norm(b: _Builder) -> SSAValue:
    x = b.pick(min_rank=1)
    rank = len(b.shape(x))
    axis = b.integer(-rank, rank - 1)
    normalized = b.shape(x)[axis % rank :]
    if math.prod(normalized) > 1:
        x = b.spread(x, lambda a: np.var(a, axis=tuple(range(axis % rank, rank))))
    scale, bias = b.param("scale", normalized), b.param("bias", normalized)
    return b.emit(nn.LayerNormOp(x, scale, bias, axis, _epsilon(b)))


def _batch_norm(b: _Builder) -> SSAValue:
    x = b.as_rank(b.pick(), b.integer(2, 4))
    shape = b.shape(x)
    training = b.coin()
    if training and math.prod(shape) > shape[1]:
        axes = (0, *range(2, len(shape)))
        x = b.spread(x, lambda a: np.var(a, axis=axes))
    operands = [b.param(k, (shape[1],)) for k in ("scale", "bias", "mean", "var")]
    return b.emit(nn.BatchNormOp(x, *operands, epsilon=_epsilon(b), training=training))


def _group_norm(b: _Builder) -> SSAValue:
    x = b.as_rank(b.pick(), b.integer(2, 4))
    shape = b.shape(x)
    groups = b.choice(_divisors(shape[1]))
    if math.prod(shape[1:]) > groups:
        x = b.spread(x, lambda a: np.var(a.reshape(shape[0], groups, -1), axis=2))
    scale, bias = b.param("scale", (shape[1],)), b.param("bias", (shape[1],))
    return b.emit(nn.GroupNormOp(x, scale, bias, groups, _epsilon(b)))


def _pool_window(
    b: _Builder, size: int, dilated: bool
) -> tuple[int, int, int, int, int]:
    """(kernel, stride, pad_begin, pad_end, dilation) along one axis. Padding is at most
    half the kernel, and only without dilation, so every window sees the input."""
    kernel = b.integer(1, 3)
    stride = b.integer(1, 3)
    if dilated and 2 * (kernel - 1) + 1 <= size and b.coin():
        return kernel, stride, 0, 0, 2
    half, missing = kernel // 2, max(0, kernel - size)  # missing <= 2 * half
    begin = b.integer(max(0, missing - half), half)
    return kernel, stride, begin, b.integer(max(0, missing - begin), half), 1


def _pool(b: _Builder, dilated: bool) -> tuple[SSAValue, tuple[int, int], ...]:
    """Operand, kernel, stride, padding, dilation and ceil mode of a 2-D pool."""
    x = b.as_rank(b.pick(), 4)
    _, _, h, w = b.shape(x)
    kh, sh, th, bh, dh = _pool_window(b, h, dilated)
    kw, sw, tw, bw, dw = _pool_window(b, w, dilated)
    return x, (kh, kw), (sh, sw), (th, tw, bh, bw), (dh, dw), b.coin()


def _max_pool2d(b: _Builder) -> SSAValue:
    x, kernel, stride, padding, dilation, ceil_mode = _pool(b, dilated=True)
    return b.emit(nn.MaxPool2dOp(x, kernel, stride, padding, dilation, ceil_mode))


def _avg_pool2d(b: _Builder) -> SSAValue:
    x, kernel, stride, padding, _, ceil_mode = _pool(b, dilated=False)
    return b.emit(nn.AvgPool2dOp(x, kernel, stride, padding, ceil_mode, b.coin()))


def _global_avg_pool(b: _Builder) -> SSAValue:
    return b.emit(nn.GlobalAvgPoolOp(b.as_rank(b.pick(), b.integer(3, 4))))


def _reshape(b: _Builder) -> SSAValue:
    x = b.pick()
    n = math.prod(b.shape(x))
    candidates = [
        s
        for rank in range(5)
        for s in _factorizations(n, rank, b.max_dim)
        if s != b.shape(x)
    ] or [(n,)]
    return b.emit(nn.ReshapeOp(x, b.choice(candidates)))


def _transpose(b: _Builder) -> SSAValue:
    x = b.pick(min_rank=1)
    perm = b.draw(st.permutations(range(len(b.shape(x)))))
    return b.emit(nn.TransposeOp(x, perm))  # type: ignore[arg-type]


def _concat(b: _Builder) -> SSAValue:
    first = b.pick(min_rank=1)
    shape = b.shape(first)
    axis = b.integer(-len(shape), len(shape) - 1)
    inputs = [first]
    for _ in range(b.integer(1, 2)):
        if b.coin():
            inputs.append(first)
            continue
        other = list(shape)
        other[axis] = b.integer(1, b.max_dim)
        inputs.append(b.resize(b.pick(), other))
    return b.emit(nn.ConcatOp(inputs, axis))


def _slice(b: _Builder) -> SSAValue:
    x = b.pick(min_rank=1)
    starts, ends, steps = [], [], []
    for size in b.shape(x):
        step = b.choice([1, 2, -1])
        start = b.integer(0, size - 1)
        end = b.integer(start + 1, size) if step > 0 else b.integer(-1, start - 1)
        starts.append(start)
        ends.append(end)
        steps.append(step)
    return b.emit(nn.SliceOp(x, starts, ends, steps))


def _signed(b: _Builder, axes: Sequence[int], rank: int) -> list[int]:
    """Some of the axes written as negative indices."""
    return [a - rank if b.coin() else a for a in axes]


def _squeeze(b: _Builder) -> SSAValue:
    x = b.pick()
    shape = b.shape(x)
    ones = [i for i, d in enumerate(shape) if d == 1]
    if not ones:
        at = b.integer(0, len(shape))
        x = b.reshape(x, (*shape[:at], 1, *shape[at:]))
        shape, ones = b.shape(x), [at]
    axes = b.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True))
    axes = _signed(b, axes, len(shape))  # type: ignore[arg-type]
    return b.emit(nn.SqueezeOp(x, axes))


def _unsqueeze(b: _Builder) -> SSAValue:
    x = b.pick()
    if len(b.shape(x)) >= 4:
        x = b.reshape(x, (math.prod(b.shape(x)),))
    count = b.integer(1, 2)
    rank = len(b.shape(x)) + count
    axes = b.draw(
        st.lists(st.integers(0, rank - 1), min_size=count, max_size=count, unique=True)
    )
    axes = _signed(b, axes, rank)  # type: ignore[arg-type]
    return b.emit(nn.UnsqueezeOp(x, axes))


def _reduce(cls: type[nn.ReduceMeanOp | nn.ReduceSumOp]) -> Generator:
    def generate(b: _Builder) -> SSAValue:
        x = b.pick(min_rank=1)
        rank = len(b.shape(x))
        axes = b.draw(st.lists(st.integers(0, rank - 1), min_size=1, unique=True))
        axes = _signed(b, axes, rank)  # type: ignore[arg-type]
        return b.emit(cls(x, axes, b.coin()))

    return generate


def _constant(b: _Builder) -> SSAValue:
    return b.random_constant(b.broadcast_partner(b.shape(b.choose())))


_GENERATORS: dict[str, Generator] = {
    "relu": _unary(nn.ReluOp),
    "add": _binary(nn.AddOp),
    "linear": _linear,
    "conv2d": _conv2d,
    "reshape": _reshape,
    "sigmoid": _unary(nn.SigmoidOp),
    "tanh": _unary(nn.TanhOp),
    "silu": _unary(nn.SiluOp),
    "hardswish": _unary(nn.HardswishOp),
    "erf": _unary(nn.ErfOp),
    "gelu": _gelu,
    "neg": _unary(nn.NegOp),
    "exp": _exp,
    "log": _log,
    "sqrt": _sqrt,
    "sub": _binary(nn.SubOp),
    "mul": _binary(nn.MulOp),
    "div": _div,
    "pow": _pow,
    "matmul": _matmul,
    "conv_transpose2d": _conv_transpose2d,
    "softmax": _axis_op(nn.SoftmaxOp),
    "log_softmax": _axis_op(nn.LogSoftmaxOp),
    "layer_norm": _layer_norm,
    "batch_norm": _batch_norm,
    "group_norm": _group_norm,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "global_avg_pool": _global_avg_pool,
    "transpose": _transpose,
    "concat": _concat,
    "slice": _slice,
    "squeeze": _squeeze,
    "unsqueeze": _unsqueeze,
    "reduce_mean": _reduce(nn.ReduceMeanOp),
    "reduce_sum": _reduce(nn.ReduceSumOp),
    "constant": _constant,
}

ALL_OPS: tuple[str, ...] = tuple(_GENERATORS)
"""The op names `random_models(ops=...)` accepts: every `nn` op but `param` and `load`
(which every parametrised op brings along), without the `nn.` prefix. Shrinking goes
towards the first ones."""


# --------------------------------------------------------------------------------------
# The strategy
# --------------------------------------------------------------------------------------


def random_models(
    *,
    ops: Sequence[str] | None = None,
    min_ops: int = 1,
    max_ops: int = 8,
    dtype: DType = "f32",
    batch: Sequence[int] = (1, 2),
    max_dim: int = 4,
    trainable: Trainable = "mixed",
    max_inputs: int = 2,
) -> st.SearchStrategy[RandomModel]:
    """A strategy of random, well-typed `nn` models (see the module docstring).

    - `ops`: the op names to draw from (a subset of `ALL_OPS`; default all of them).
      Glue ops that adapt shapes or keep values tame may appear besides them.
    - `min_ops`/`max_ops`: how many ops to draw (each may bring glue ops with it).
    - `dtype`: element type of every tensor.
    - `batch`: sizes of the leading (batch) axis of the inputs.
    - `max_dim`: the largest axis size drawn; results that grow past twice that
      (`max_dim ** 2` for vectors and matrices) are cut back by a strided slice.
    - `trainable`: which parameters are marked trainable ("mixed" draws each flag).
    - `max_inputs`: how many function inputs at most (at least one).

    About one op in eight repeats an earlier op (work for CSE), and results nobody uses
    are returned or left dead at random (work for DCE; the newest result is always
    returned).
    """
    names = tuple(ALL_OPS if ops is None else ops)
    unknown = sorted(set(names) - set(ALL_OPS))
    if unknown or not names:
        raise ValueError(
            f"random_models: unknown op names {unknown} (known: {', '.join(ALL_OPS)})"
            if unknown
            else "random_models: ops must name at least one op"
        )
    if not 1 <= min_ops <= max_ops:
        raise ValueError(
            f"random_models: need 1 <= min_ops ({min_ops}) <= max_ops ({max_ops})"
        )
    if dtype not in _ELEMENT_TYPES:
        raise ValueError(f"random_models: dtype must be 'f32' or 'f64', got {dtype!r}")
    if trainable not in ("all", "none", "mixed"):
        raise ValueError(
            f"random_models: trainable must be all, none or mixed, got {trainable!r}"
        )
    if not batch or min(batch) < 1 or max_dim < 1 or max_inputs < 1:
        raise ValueError(
            "random_models: batch sizes, max_dim and max_inputs must be >= 1"
        )
    return _models(
        names, min_ops, max_ops, _ELEMENT_TYPES[dtype], tuple(batch), max_dim,
        trainable, max_inputs,
    )


@st.composite
def _models(
    draw: Draw,
    names: tuple[str, ...],
    min_ops: int,
    max_ops: int,
    element: Attribute,
    batch: tuple[int, ...],
    max_dim: int,
    trainable: Trainable,
    max_inputs: int,
) -> RandomModel:
    input_types = []
    for _ in range(draw(st.integers(1, max_inputs))):
        rank = draw(st.integers(2, 4))
        shape = (
            draw(st.sampled_from(batch)),
            *(draw(st.integers(1, max_dim)) for _ in range(rank - 1)),
        )
        input_types.append(TensorType(element, shape))
    block = Block(arg_types=input_types)
    b = _Builder(draw, element, max_dim, trainable, block)
    inputs: dict[str, np.ndarray] = {}
    for i, arg in enumerate(block.args):
        arg.name_hint = f"x{i}"
        array = b.rng().standard_normal(arg.type.get_shape()).astype(b.dtype)
        inputs[f"x{i}"] = array
        b.values[arg] = array
        b.pool.append(arg)

    results: list[SSAValue] = []
    for index in range(draw(st.integers(min_ops, max_ops))):
        if block.ops and draw(st.integers(0, 7)) == 7:
            # A repeated subexpression: the same op on the same operands.
            ops = list(block.ops)
            result = b.emit(ops[-1 - b.integer(0, len(ops) - 1)].clone())
        else:
            name = draw(st.sampled_from(names))
            b.layer = f"{name}{index}"
            result = b.fit(_GENERATORS[name](b))
        b.pool.append(result)
        results.append(result)

    outputs = [r for r in results[:-1] if not r.uses and draw(st.booleans())]
    outputs.append(results[-1])
    block.add_op(func.ReturnOp(*outputs))
    function = func.FuncOp(
        "forward", (input_types, [o.type for o in outputs]), Region(block)
    )
    module = ModuleOp([*b.params, function])
    module.verify()
    return RandomModel(module, inputs)


# --------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------

PassOrPipeline = ModulePass | Sequence[ModulePass] | str


def _passes(pass_or_pipeline: PassOrPipeline) -> tuple[ModulePass, ...]:
    if isinstance(pass_or_pipeline, str):
        return expand(parse_pipeline(pass_or_pipeline))
    if isinstance(pass_or_pipeline, ModulePass):
        return expand([pass_or_pipeline])
    return expand(pass_or_pipeline)


def _describe(passes: Sequence[ModulePass]) -> str:
    return ",".join(str(p.spec()) for p in passes) or "(no passes)"


_PRINT_LIMIT = 40_000
"""Modules longer than this (printed) go to files named in the message instead."""


def _modules_text(before: ModuleOp, after: ModuleOp) -> str:
    texts = print_module(before), print_module(after)
    if sum(len(t) for t in texts) <= _PRINT_LIMIT:
        return f"\n--- before ---\n{texts[0]}--- after ---\n{texts[1]}"
    folder = tempfile.mkdtemp(prefix="edge-opt-semantics-")
    paths = [os.path.join(folder, n) for n in ("before.mlir", "after.mlir")]
    for path, text in zip(paths, texts, strict=True):
        with open(path, "w") as f:
            f.write(text)
    return f"\nmodules written to {paths[0]} and {paths[1]}"


def _mismatch(
    actual: np.ndarray, expected: np.ndarray, rtol: float | None, atol: float | None
) -> str | None:
    """Why `actual` is not `expected` within the tolerance, or None if it is."""
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        return (
            f"is {actual.dtype}{list(actual.shape)}, expected "
            f"{expected.dtype}{list(expected.shape)}"
        )
    default = DEFAULT_TOLERANCES.get(expected.dtype, (0.0, 0.0))
    rtol = default[0] if rtol is None else rtol
    atol = default[1] if atol is None else atol
    if expected.dtype.kind not in "fc":
        actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    finite = np.isfinite(actual) & np.isfinite(expected)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.where(same, 0.0, np.where(finite, np.abs(actual - expected), np.inf))
    if np.all(same | (error <= atol + rtol * np.where(finite, np.abs(expected), 0.0))):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(finite, error / np.abs(expected), np.inf)
        relative = np.where(error == 0, 0.0, relative)
    worst = np.unravel_index(np.argmax(error), error.shape) if error.ndim else ()
    return (
        f"differs: max abs error {np.max(error):.3e}, max rel error "
        f"{np.max(relative):.3e} (rtol {rtol:g}, atol {atol:g}); worst at index "
        f"{list(map(int, worst))}: {actual[worst].item()!r} instead of "
        f"{expected[worst].item()!r}"
    )


def assert_pass_preserves_semantics(
    pass_or_pipeline: PassOrPipeline,
    module: ModuleOp,
    inputs: Mapping[str, np.ndarray] | Sequence[np.ndarray] | None = None,
    *,
    function: str = "forward",
    rtol: float | None = None,
    atol: float | None = None,
    params: Mapping[str, np.ndarray] | None = None,
) -> ModuleOp:
    """Checks that `pass_or_pipeline` keeps the meaning of `@function` of `module`, and
    returns the transformed module (`module` itself is left unchanged).

    `pass_or_pipeline` is a `ModulePass`, a sequence of them, or a pipeline spec such as
    `"canonicalize,cse"` (named pipelines are expanded into their passes). The passes
    run on a clone, which must verify after each one. Both modules are then interpreted
    on the same `inputs` (default: `random_inputs` of the function with seed 0) and the
    same `params` values (default: the inline ones), and every output, as well as every
    parameter both modules declare after the call (training functions write them), must
    agree within `rtol`/`atol` (default: `DEFAULT_TOLERANCES` per dtype).

    Raises AssertionError naming the pass(es), the output (or parameter), the max
    absolute and relative error, and showing both modules.
    """
    passes = _passes(pass_or_pipeline)
    described = _describe(passes)
    module.verify()
    transformed = module.clone()
    ctx = make_context()
    for p in passes:
        try:
            p.apply(ctx, transformed)
        except Exception as e:
            e.add_note(f"while applying {p.spec()} (in {described})")
            raise
        try:
            transformed.verify()
        except VerifyException as e:
            raise AssertionError(
                f"{p.spec()} (in {described}) produced IR that does not verify: "
                f"{first_line(e)}{_modules_text(module, transformed)}"
            ) from None

    original = get_function(module, function)
    if inputs is None:
        inputs = random_inputs(original, np.random.default_rng(0))
    names = input_names(original)
    if isinstance(inputs, Mapping) and set(inputs) == set(names):
        # By position from here on: a pass may rename arguments, not reorder them.
        inputs = [inputs[name] for name in names]

    def session(m: ModuleOp) -> Session:
        declared = params_of(m)
        given = {k: v for k, v in (params or {}).items() if k in declared}
        return Session(m, given)

    before, after = session(module), session(transformed)
    expected = before.run(function, inputs)
    actual = after.run(function, inputs)

    problems: list[str] = []
    if len(actual) != len(expected):
        problems.append(
            f"@{function} returns {len(actual)} values, expected {len(expected)}"
        )
    for i, (a, e) in enumerate(zip(actual, expected)):
        why = _mismatch(np.asarray(a), np.asarray(e), rtol, atol)
        if why is not None:
            problems.append(f"output {i} {why}")
    for name in sorted(set(before.params) & set(after.params)):
        why = _mismatch(after.params[name], before.params[name], rtol, atol)
        if why is not None:
            problems.append(f"parameter @{name} after the call {why}")
    if problems:
        raise AssertionError(
            f"{described} changed the meaning of @{function}:\n  "
            + "\n  ".join(problems)
            + _modules_text(module, transformed)
        )
    return transformed
