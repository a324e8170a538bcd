"""The builder that `random_models` and its op generators share: the body of `@forward`
under construction, the value of every SSA value in it (every op is evaluated as it is
built, with the interpreter's own implementations), and the helpers that pick operands
from the pool and adapt them (see the docstring of `edge_opt.testing`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.interpreter import Interpreter
from xdsl.ir import Attribute, Block, Operation, SSAValue

from edge_opt.dialects import nn
from edge_opt.ir.interpreters import register_extra_semantics
from edge_opt.ir.interpreters.nn import NnFunctions
from edge_opt.support.dtypes import numpy_dtype, to_dense

Draw: TypeAlias = Callable[[st.SearchStrategy], object]
Trainable = Literal["all", "none", "mixed"]

_BOUND = 20.0
"""Operands with a larger magnitude go through `tanh` before an op uses them."""

_MIN_VARIANCE = 1e-2
"""Normalised groups with a smaller variance get a spread-out constant added."""


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
    """Runs single ops as they are built (no module, so no symbol lookups), with the
    active plugins' implementations too."""
    interpreter = Interpreter(ModuleOp([]))
    interpreter.register_implementations(NnFunctions())
    register_extra_semantics(interpreter)
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
    drawn: frozenset[str] = frozenset()
    """The op names the models draw from (glue ops aside)."""

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
        """A value of the pool: half the time the newest (chains of layers, as in
        real networks, where rewrites of two ops in a row apply), else any, counted
        from the newest (so shrinking makes chains)."""
        return self._newest_or_any(self.pool)

    def _newest_or_any(self, values: Sequence[SSAValue]) -> SSAValue:
        if not self.coin():
            return values[-1]
        return values[-1 - self.integer(0, len(values) - 1)]

    def pick(self, min_rank: int = 0) -> SSAValue:
        """A value of the pool, tamed, with at least `min_rank` axes."""
        value = self.bounded(self.choose(), _BOUND)
        shape = self.shape(value)
        if len(shape) < min_rank:
            value = self.emit(
                nn.ReshapeOp(value, (1,) * (min_rank - len(shape)) + shape)
            )
        return value

    def pick_rank(self, rank: int) -> SSAValue:
        """A value of the pool with exactly `rank` axes: mostly one that has them
        already (so a pool or a convolution reads an activation's or a layer's result
        directly: the chains that rewrites of two ops in a row match), else any value
        reshaped (`as_rank`), which joins the pool so that later ops (an activation,
        then a pool) may read it too. Shrinks towards the first."""
        fitting = [v for v in self.pool if len(self.shape(v)) == rank]
        if fitting and not (self.coin() and self.coin()):  # 3 in 4
            return self.bounded(self._newest_or_any(fitting), _BOUND)
        value = self.as_rank(self.pick(), rank)
        if value not in self.pool:
            self.pool.append(value)
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
        # Planes first (most elements past the batch and channel axes): a pool or a
        # convolution over a 1x1 plane cannot show what its windows do.
        candidates.sort(key=lambda c: -math.prod(c[2:]))
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


Generator: TypeAlias = Callable[[_Builder], SSAValue]
"""Builds one op: picks operands, draws attributes, emits, returns the result."""
