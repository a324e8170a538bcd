"""One generator per `nn` op for `random_models`: each picks operands from the pool of
the builder, draws attributes, emits the op and returns its result. `ALL_OPS` lists
them in the order shrinking prefers."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

import numpy as np
from hypothesis import strategies as st
from xdsl.ir import SSAValue

from edge_opt.dialects import nn
from edge_opt.dialects.elementwise import UNARY_OPS, UnaryElementwiseOp
from edge_opt.support.elementwise import Choice, Scalar, Unary
from edge_opt.testing.builder import (
    Generator,
    _Builder,
    _divisors,
    _factorizations,
    _window_kernel_limit,
)


def _elementwise(cls: type[UnaryElementwiseOp]) -> Generator:
    """The op of a table row on an operand from its domain, its attributes drawn from
    the row's samples (an optional scalar sometimes absent, never all of them)."""
    row = cls.ROW

    def generate(b: _Builder) -> SSAValue:
        x = _operand(b, row)
        optional = [a.name for a in cls.ATTRIBUTES if isinstance(a, Scalar) and a.default is None]
        present = set(b.choice([tuple(optional), *((name,) for name in optional)])) if optional else set()
        values: dict[str, object] = {}
        for attr in cls.ATTRIBUTES:
            if isinstance(attr, Choice):
                values[attr.name] = b.choice(list(attr.values))
            elif attr.name in optional and attr.name not in present:
                values[attr.name] = None
            else:
                values[attr.name] = b.choice(list(attr.samples))
        return b.emit(cls(x, **values))

    return generate


def _operand(b: _Builder, row: Unary) -> SSAValue:
    """An operand in the row's domain. An op without a gradient (rounding) reads a
    function input, which no parameter affects (`autodiff` refuses to train through
    it), scaled so that it has a few distinct integer values."""
    if row.gradient == "none":
        x = b.block.args[b.integer(0, len(b.block.args) - 1)]
        return b.emit(nn.MulOp(x, b.constant(np.asarray(b.choice([1.0, 2.5])))))
    if row.domain == "bounded":
        return b.bounded(b.pick(), 3.0)
    if row.domain == "positive":
        return b.positive(b.pick())
    return b.pick()


def _binary(cls: type[nn.BinaryElementwiseOp]) -> Generator:
    def generate(b: _Builder) -> SSAValue:
        lhs = b.pick()
        # Per-channel operands (biases, scales) half the time: the commonest partner
        # of an element-wise op in real networks, and what fusions match.
        partner = b.choice(["broadcast", "channel", "same", "channel"])
        if partner == "same":
            rhs = lhs  # x op x
        elif partner == "channel" and b.shape(lhs):
            # A per-channel operand of the last axis, as a bias add after a linear or
            # matmul: the pattern that fusions look for (so half the time a parameter).
            channels = b.shape(lhs)[-1:]
            rhs = b.param("bias", channels) if b.coin() else b.operand_of_shape(channels)
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
    # Where `add` is drawn too, a linear may come as exporters write one of a 3-D input
    # (MatMul, then Add of the bias): the pattern bias fusions match.
    forms = ["plain", "bias", "bias_add"] if "add" in b.drawn else ["plain", "bias"]
    form = b.choice(forms)
    bias = b.param("bias", (out,)) if form == "bias" else None
    y = b.emit(nn.LinearOp(x, weight, bias))
    if form == "bias_add":
        y = b.emit(nn.AddOp(y, b.param("bias", (out,))))
    return y


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
    x, groups = _groups(b, b.pick_rank(4), ["dense", "grouped", "depthwise"])
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
    x, groups = _groups(b, b.pick_rank(4), ["dense", "grouped", "depthwise"])
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
    x = b.pick()
    # Half the time on the operand as it is when its rank fits (the output of a conv or
    # linear layer: what fold-batch-norm rewrites), else reshaped to a drawn rank.
    if not (2 <= len(b.shape(x)) <= 4 and b.coin()):
        x = b.as_rank(x, b.integer(2, 4))
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


def _attention(b: _Builder) -> SSAValue:
    """A self-attention block: x as (B, S, D), 1-3 heads, query/key and value head
    sizes 1-3 (equal or not), with or without the four biases, the scale
    1/sqrt(dk) or drawn."""
    x = b.pick_rank(3)
    features = b.shape(x)[2]
    heads = b.integer(1, 3)
    dk = b.integer(1, 3)
    dv = dk if b.coin() else b.integer(1, 3)
    out = b.integer(1, b.max_dim)
    weights = [
        b.param("weight", (features, heads * d), fan_in=features) for d in (dk, dk, dv)
    ]
    wo = b.param("weight", (heads * dv, out), fan_in=heads * dv)
    biases = None
    if b.coin():
        biases = [b.param("bias", (n,)) for n in (heads * dk, heads * dk, heads * dv, out)]
    scale = 1.0 / math.sqrt(dk) if b.coin() else b.choice([0.25, 0.5, 1.0, 2.0])
    return b.emit(nn.AttentionOp(x, *weights, wo, biases, heads=heads, scale=scale))


def _pool_window(
    b: _Builder, size: int, dilated: bool
) -> tuple[int, int, int, int, int]:
    """(kernel, stride, pad_begin, pad_end, dilation) along one axis. Padding is at most
    half the kernel, and only without dilation, so every window sees the input."""
    kernel = b.choice([2, 3, 1])  # shrinks to 2: a 1x1 window hides what a pool does
    stride = b.integer(1, 3)
    if dilated and 2 * (kernel - 1) + 1 <= size and b.coin():
        return kernel, stride, 0, 0, 2
    half, missing = kernel // 2, max(0, kernel - size)  # missing <= 2 * half
    begin = b.integer(max(0, missing - half), half)
    return kernel, stride, begin, b.integer(max(0, missing - begin), half), 1


def _pool(b: _Builder, dilated: bool) -> tuple[SSAValue, tuple[int, int], ...]:
    """Operand, kernel, stride, padding, dilation and ceil mode of a 2-D pool."""
    x = b.pick_rank(4)
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


def _broadcast_to(b: _Builder) -> SSAValue:
    """Broadcast along size-1 axes and up to two new leading axes."""
    x = b.pick()
    shape = b.shape(x)
    if len(shape) > 3:
        x = b.reshape(x, (math.prod(shape),))
        shape = b.shape(x)
    target = [b.integer(1, b.max_dim) if d == 1 else d for d in shape]
    leading = [b.integer(1, b.max_dim) for _ in range(b.integer(0, 4 - len(target)))]
    return b.emit(nn.BroadcastToOp(x, (*leading, *target)))


def _pad(b: _Builder) -> SSAValue:
    """0-2 elements before and after each axis, zeros or another value."""
    x = b.pick(min_rank=1)
    rank = len(b.shape(x))
    pads = [b.integer(0, 2) for _ in range(2 * rank)]
    return b.emit(nn.PadOp(x, pads, b.choice([0.0, 1.0, -0.5])))


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


def _gather(b: _Builder) -> SSAValue:
    """Indices in any order, with repeats (whose gradients add up) now and then."""
    x = b.pick(min_rank=1)
    rank = len(b.shape(x))
    axis = b.integer(-rank, rank - 1)
    size = b.shape(x)[axis]
    indices = b.draw(
        st.lists(st.integers(0, size - 1), min_size=1, max_size=max(1, b.max_dim))
    )
    return b.emit(nn.GatherOp(x, indices, axis))  # type: ignore[arg-type]


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


_OTHERS: dict[str, Generator] = {
    "add": _binary(nn.AddOp),
    "linear": _linear,
    "conv2d": _conv2d,
    "reshape": _reshape,
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
    "attention": _attention,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "global_avg_pool": _global_avg_pool,
    "transpose": _transpose,
    "broadcast_to": _broadcast_to,
    "concat": _concat,
    "slice": _slice,
    "gather": _gather,
    "squeeze": _squeeze,
    "unsqueeze": _unsqueeze,
    "reduce_mean": _reduce(nn.ReduceMeanOp),
    "reduce_sum": _reduce(nn.ReduceSumOp),
    "constant": _constant,
    "pad": _pad,
}
"""The generators of the ops that are not unary rows of `edge_opt.support.elementwise`
(those are `_elementwise`)."""

_SHRINK_ORDER = (
    "relu", "add", "linear", "conv2d", "reshape", "sigmoid", "tanh", "silu", "hardswish",
    "erf", "gelu", "neg", "exp", "log", "sqrt", "sub", "mul", "div", "pow", "matmul",
    "conv_transpose2d", "softmax", "log_softmax", "layer_norm", "batch_norm",
    "group_norm", "attention", "max_pool2d", "avg_pool2d", "global_avg_pool",
    "transpose", "broadcast_to", "concat", "slice", "gather", "squeeze", "unsqueeze",
    "reduce_mean", "reduce_sum", "constant", "clip", "hardsigmoid", "elu", "leaky_relu",
    "pad", "ceil", "floor", "round",
)
"""The order shrinking prefers; an op not listed (a new element-wise row) comes last."""

_ALL = {**_OTHERS, **{op.ROW.name: _elementwise(op) for op in UNARY_OPS}}
_GENERATORS: dict[str, Generator] = {
    name: _ALL[name]
    for name in (*_SHRINK_ORDER, *sorted(set(_ALL) - set(_SHRINK_ORDER)))
}

ALL_OPS: tuple[str, ...] = tuple(_GENERATORS)
"""The op names `random_models(ops=...)` accepts: every `nn` op but `param` and `load`
(which every parametrised op brings along), without the `nn.` prefix. Shrinking goes
towards the first ones."""

_EXTRA_GENERATORS: ContextVar[Mapping[str, Generator]] = ContextVar(
    "edge_opt_extra_generators", default=MappingProxyType({})
)
"""Plugin op generators active in this context (see `extra_generators`)."""


@contextmanager
def extra_generators(generators: Mapping[str, Generator]) -> Iterator[None]:
    """Within the block, `random_models` also accepts (and by default draws) the ops
    of `generators` (a plugin's), after `ALL_OPS`. Scoped to the current context
    (thread or task) and undone on exit, so nothing leaks between tests."""
    token = _EXTRA_GENERATORS.set({**_EXTRA_GENERATORS.get(), **generators})
    try:
        yield
    finally:
        _EXTRA_GENERATORS.reset(token)


def active_generators() -> dict[str, Generator]:
    """The generator of every op `random_models` can draw now: `ALL_OPS`, then the
    active plugins' ops."""
    return {**_GENERATORS, **_EXTRA_GENERATORS.get()}
