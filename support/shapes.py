"""Shape arithmetic of the graph-level ops, as pure functions.

The `nn` verifiers, the op builders, the ONNX importer and the random-model strategy all
call these, so the rule for (say) a strided, dilated, padded convolution is written once.
Every function raises `ShapeError` with a sentence that says which rule was broken; the
callers add the op name.

Conventions (PyTorch's, which is also ONNX's for these ops):
- 2-D spatial ops take NCHW tensors; `padding` is `(top, left, bottom, right)`, ONNX's
  `pads` order for two spatial axes.
- Output size of a window op over one axis of size `n`, padded with `p0 + p1`:
  `floor((n + p0 + p1 - d*(k-1) - 1) / s) + 1` (or `ceil` in ceil mode, dropping a last
  window that would start in the end padding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class ShapeError(ValueError):
    """A shape rule of an op is broken."""


Shape = tuple[int, ...]


def normalize_axis(axis: int, rank: int) -> int:
    """Map a possibly negative axis into `[0, rank)`."""
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def normalize_axes(axes: Sequence[int], rank: int) -> tuple[int, ...]:
    """Normalize axes and reject duplicates."""
    normalized = tuple(normalize_axis(a, rank) for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ShapeError(f"axes {list(axes)} repeat an axis")
    return normalized


def broadcast(*shapes: Sequence[int]) -> Shape:
    """NumPy broadcasting of shapes."""
    rank = max((len(s) for s in shapes), default=0)
    result: list[int] = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError(
                f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast "
                f"(axis {i - rank} has sizes {sorted(dims)})"
            )
        result.append(dims.pop() if dims else 1)
    return tuple(result)


def window_output_size(
    size: int,
    kernel: int,
    stride: int,
    pad_begin: int,
    pad_end: int,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Number of windows along one axis (see module docstring)."""
    if kernel < 1 or stride < 1 or dilation < 1:
        raise ShapeError(
            f"kernel ({kernel}), stride ({stride}) and dilation ({dilation}) must be >= 1"
        )
    if pad_begin < 0 or pad_end < 0:
        raise ShapeError(f"padding ({pad_begin}, {pad_end}) must be >= 0")
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if span < 0:
        raise ShapeError(
            f"the window (kernel {kernel}, dilation {dilation}) is larger than the "
            f"padded input ({size} + {pad_begin} + {pad_end})"
        )
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    # PyTorch/ONNX: the last window must start inside the input or the begin padding.
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _check_pairs(name: str, values: Sequence[int], count: int) -> None:
    if len(values) != count:
        raise ShapeError(f"{name} must have {count} values, got {list(values)}")


def _check_window_operands(
    input: Sequence[int], weight: Sequence[int], weight_layout: str,
    stride: Sequence[int], dilation: Sequence[int], padding: Sequence[int],
) -> None:
    """The ranks and attribute lengths of a 2-D convolution (or its transpose)."""
    if len(input) != 4 or len(weight) != 4:
        raise ShapeError(
            f"input and weight must have rank 4 (NCHW and {weight_layout}), got "
            f"{list(input)} and {list(weight)}"
        )
    _check_pairs("stride", stride, 2)
    _check_pairs("dilation", dilation, 2)
    _check_pairs("padding", padding, 4)


def conv2d(
    input: Sequence[int],
    weight: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> Shape:
    """NCHW convolution; weight is (out_channels, in_channels / groups, kh, kw)."""
    _check_window_operands(input, weight, "OIHW", stride, dilation, padding)
    n, c, h, w = input
    o, ci, kh, kw = weight
    if groups < 1 or c % groups or o % groups:
        raise ShapeError(
            f"groups ({groups}) must divide input channels ({c}) and output "
            f"channels ({o})"
        )
    if ci * groups != c:
        raise ShapeError(
            f"weight in-channels ({ci}) x groups ({groups}) must equal input "
            f"channels ({c})"
        )
    oh = window_output_size(h, kh, stride[0], padding[0], padding[2], dilation[0])
    ow = window_output_size(w, kw, stride[1], padding[1], padding[3], dilation[1])
    return (n, o, oh, ow)


def conv_transpose2d(
    input: Sequence[int],
    weight: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> Shape:
    """Transposed NCHW convolution; weight is (in_channels, out_channels / groups, kh, kw).

    Output size per axis: `(n - 1)*s - p0 - p1 + d*(k - 1) + output_padding + 1`.
    """
    _check_window_operands(input, weight, "IOHW", stride, dilation, padding)
    _check_pairs("output_padding", output_padding, 2)
    n, c, h, w = input
    ci, og, kh, kw = weight
    if ci != c:
        raise ShapeError(f"weight in-channels ({ci}) must equal input channels ({c})")
    if groups < 1 or c % groups:
        raise ShapeError(f"groups ({groups}) must divide input channels ({c})")
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ShapeError("stride and dilation must be >= 1")
    if any(p < 0 for p in padding):
        raise ShapeError(f"padding {list(padding)} must be >= 0")
    for op, s, d in zip(output_padding, stride, dilation):
        if not 0 <= op < max(s, d):
            raise ShapeError(
                f"output_padding ({op}) must be >= 0 and smaller than stride or dilation"
            )
    sizes = []
    for axis, (size, k) in enumerate(((h, kh), (w, kw))):
        out = (
            (size - 1) * stride[axis]
            - padding[axis]
            - padding[axis + 2]
            + dilation[axis] * (k - 1)
            + output_padding[axis]
            + 1
        )
        if out < 1:
            raise ShapeError(f"output size along spatial axis {axis} would be {out}")
        sizes.append(out)
    return (n, og * groups, sizes[0], sizes[1])


def pool2d(
    input: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int] = (1, 1),
    ceil_mode: bool = False,
) -> Shape:
    """Output shape of a 2-D max or average pool over an NCHW tensor."""
    if len(input) != 4:
        raise ShapeError(f"input must have rank 4 (NCHW), got {list(input)}")
    _check_pairs("kernel", kernel, 2)
    _check_pairs("stride", stride, 2)
    _check_pairs("dilation", dilation, 2)
    _check_pairs("padding", padding, 4)
    for axis in range(2):
        if padding[axis] > kernel[axis] // 2 or padding[axis + 2] > kernel[axis] // 2:
            raise ShapeError(
                f"padding {list(padding)} must be at most half the kernel {list(kernel)}"
            )
    n, c, h, w = input
    oh = window_output_size(
        h, kernel[0], stride[0], padding[0], padding[2], dilation[0], ceil_mode
    )
    ow = window_output_size(
        w, kernel[1], stride[1], padding[1], padding[3], dilation[1], ceil_mode
    )
    return (n, c, oh, ow)


def linear(input: Sequence[int], weight: Sequence[int]) -> Shape:
    """`x @ W.T`: (..., in) x (out, in) -> (..., out)."""
    if len(input) < 1 or len(weight) != 2:
        raise ShapeError(
            f"input must have rank >= 1 and weight rank 2, got {list(input)} and "
            f"{list(weight)}"
        )
    if input[-1] != weight[1]:
        raise ShapeError(
            f"input features ({input[-1]}) must equal weight in-features ({weight[1]})"
        )
    return (*input[:-1], weight[0])


def matmul(
    a: Sequence[int], b: Sequence[int], transpose_a: bool, transpose_b: bool
) -> Shape:
    """Batched matrix product with broadcast batch dims, both operands rank >= 2."""
    if len(a) < 2 or len(b) < 2:
        raise ShapeError(
            f"operands must have rank >= 2, got {list(a)} and {list(b)}"
        )
    m, ka = (a[-1], a[-2]) if transpose_a else (a[-2], a[-1])
    kb, n = (b[-1], b[-2]) if transpose_b else (b[-2], b[-1])
    if ka != kb:
        raise ShapeError(
            f"contraction sizes differ: {ka} (lhs {list(a)}"
            f"{', transposed' if transpose_a else ''}) vs {kb} (rhs {list(b)}"
            f"{', transposed' if transpose_b else ''})"
        )
    batch = broadcast(a[:-2], b[:-2])
    return (*batch, m, n)


def attention(
    x: Sequence[int],
    wq: Sequence[int],
    wk: Sequence[int],
    wv: Sequence[int],
    wo: Sequence[int],
    heads: int,
    biases: Sequence[Sequence[int]] | None = None,
) -> Shape:
    """Multi-head self-attention (`nn.attention`): x (B, S, D), wq and wk (D, H*dk),
    wv (D, H*dv), wo (H*dv, E), biases (H*dk), (H*dk), (H*dv), (E) -> (B, S, E)."""
    if len(x) != 3:
        raise ShapeError(f"input must have rank 3 (batch, tokens, features), got {list(x)}")
    for name, w in (("wq", wq), ("wk", wk), ("wv", wv), ("wo", wo)):
        if len(w) != 2:
            raise ShapeError(f"{name} must have rank 2, got {list(w)}")
    if heads < 1:
        raise ShapeError(f"heads ({heads}) must be >= 1")
    d = x[2]
    for name, w in (("wq", wq), ("wk", wk), ("wv", wv)):
        if w[0] != d:
            raise ShapeError(
                f"{name} rows ({w[0]}) must equal the input features ({d})"
            )
    if wk[1] != wq[1]:
        raise ShapeError(
            f"wq and wk must have the same columns (heads x key size), got {wq[1]} "
            f"and {wk[1]}"
        )
    for name, w in (("wq", wq), ("wv", wv)):
        if w[1] % heads or w[1] == 0:
            raise ShapeError(
                f"heads ({heads}) must divide the {name} columns ({w[1]})"
            )
    if wo[0] != wv[1]:
        raise ShapeError(
            f"wo rows ({wo[0]}) must equal the wv columns (heads x value size, {wv[1]})"
        )
    if biases is not None:
        if len(biases) != 4:
            raise ShapeError(
                f"takes the four biases bq, bk, bv, bo or none, got {len(biases)}"
            )
        expected = ((wq[1],), (wk[1],), (wv[1],), (wo[1],))
        for name, b, e in zip(("bq", "bk", "bv", "bo"), biases, expected, strict=True):
            if tuple(b) != e:
                raise ShapeError(f"{name} shape {list(b)} must be {list(e)}")
    return (x[0], x[1], wo[1])


def transpose(input: Sequence[int], perm: Sequence[int]) -> Shape:
    if sorted(perm) != list(range(len(input))):
        raise ShapeError(
            f"permutation {list(perm)} is not a permutation of the {len(input)} axes"
        )
    return tuple(input[p] for p in perm)


def concat(inputs: Sequence[Sequence[int]], axis: int) -> Shape:
    if not inputs:
        raise ShapeError("needs at least one input")
    rank = len(inputs[0])
    axis = normalize_axis(axis, rank)
    for i, s in enumerate(inputs):
        if len(s) != rank or any(
            d != d0 for j, (d, d0) in enumerate(zip(s, inputs[0])) if j != axis
        ):
            raise ShapeError(
                f"input {i} has shape {list(s)}, which differs from {list(inputs[0])} "
                f"outside axis {axis}"
            )
    out = list(inputs[0])
    out[axis] = sum(s[axis] for s in inputs)
    return tuple(out)


def slice_(
    input: Sequence[int],
    starts: Sequence[int],
    ends: Sequence[int],
    steps: Sequence[int],
) -> Shape:
    """Per axis, the indices `range(start, end, step)`, as in Python's `range`.

    Bounds are explicit: `0 <= start < size` (or `start == end` for an empty axis is not
    allowed), `-1 <= end <= size`; no negative-index wrapping.
    """
    rank = len(input)
    if not len(starts) == len(ends) == len(steps) == rank:
        raise ShapeError(
            f"starts, ends and steps must have one value per axis ({rank})"
        )
    out = []
    for axis, (size, start, end, step) in enumerate(zip(input, starts, ends, steps)):
        if step == 0:
            raise ShapeError(f"step along axis {axis} is 0")
        if not (0 <= start < size and -1 <= end <= size):
            raise ShapeError(
                f"bounds [{start}, {end}) along axis {axis} are outside the axis size "
                f"{size}"
            )
        length = len(range(start, end, step))
        if length == 0:
            raise ShapeError(f"slice along axis {axis} is empty")
        out.append(length)
    return tuple(out)


def pad(input: Sequence[int], pads: Sequence[int]) -> Shape:
    """`pads` holds the padding before each axis, then after each axis (ONNX `Pad`'s
    order), all >= 0: axis `a` grows by `pads[a] + pads[rank + a]`."""
    rank = len(input)
    if len(pads) != 2 * rank:
        raise ShapeError(
            f"pads must have two values per axis ({2 * rank}), got {len(pads)}"
        )
    if any(p < 0 for p in pads):
        raise ShapeError(f"pads {list(pads)} must be >= 0")
    return tuple(d + pads[a] + pads[rank + a] for a, d in enumerate(input))


def _indices(input: Sequence[int], indices: Sequence[int], axis: int) -> int:
    """Checks `indices` into axis `axis` of `input`; returns the normalized axis."""
    axis = normalize_axis(axis, len(input))
    if not indices:
        raise ShapeError("indices must not be empty")
    outside = [i for i in indices if not 0 <= i < input[axis]]
    if outside:
        raise ShapeError(
            f"indices {outside} are outside [0, {input[axis]}) (axis {axis} of "
            f"{list(input)})"
        )
    return axis


def gather(input: Sequence[int], indices: Sequence[int], axis: int) -> Shape:
    """The slices of `input` at `indices` along `axis` (repeats allowed, any order):
    the axis gets `len(indices)` entries."""
    axis = _indices(input, indices, axis)
    return (*input[:axis], len(indices), *input[axis + 1 :])


def scatter(
    dest: Sequence[int], values: Sequence[int], indices: Sequence[int], axis: int
) -> Shape:
    """`dest` with its slices at `indices` along `axis` replaced by `values`' slices:
    indices unique, `values` of `gather(dest, indices, axis)`'s shape."""
    axis = _indices(dest, indices, axis)
    if len(set(indices)) != len(indices):
        raise ShapeError(f"indices {list(indices)} repeat an index")
    expected = (*dest[:axis], len(indices), *dest[axis + 1 :])
    if tuple(values) != expected:
        raise ShapeError(
            f"values have shape {list(values)}, expected {list(expected)} (the "
            f"destination's with axis {axis} of size len(indices) = {len(indices)})"
        )
    return tuple(dest)


def squeeze(input: Sequence[int], axes: Sequence[int]) -> Shape:
    axes = normalize_axes(axes, len(input))
    for a in axes:
        if input[a] != 1:
            raise ShapeError(f"axis {a} has size {input[a]}, not 1")
    return tuple(d for i, d in enumerate(input) if i not in axes)


def unsqueeze(input: Sequence[int], axes: Sequence[int]) -> Shape:
    rank = len(input) + len(axes)
    axes = normalize_axes(axes, rank)
    dims = iter(input)
    return tuple(1 if i in axes else next(dims) for i in range(rank))


def reduce(input: Sequence[int], axes: Sequence[int], keepdims: bool) -> Shape:
    axes = normalize_axes(axes, len(input))
    if not axes:
        raise ShapeError("needs at least one axis to reduce")
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(input))
    return tuple(d for i, d in enumerate(input) if i not in axes)


def reshape(input: Sequence[int], shape: Sequence[int]) -> Shape:
    if math.prod(input) != math.prod(shape):
        raise ShapeError(
            f"cannot reshape {list(input)} ({math.prod(input)} elements) into "
            f"{list(shape)} ({math.prod(shape)} elements)"
        )
    return tuple(shape)


def broadcast_to(input: Sequence[int], shape: Sequence[int]) -> Shape:
    """`input` broadcast (NumPy rules) to exactly `shape`."""
    lead = len(shape) - len(input)
    if lead < 0 or any(d not in (1, shape[lead + i]) for i, d in enumerate(input)):
        raise ShapeError(f"{list(input)} does not broadcast to {list(shape)}")
    return tuple(shape)


def broadcast_axes(input: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """Axes of `shape` along which `input` was broadcast: the leading axes it lacks and
    the axes where it has size 1 and `shape` does not (what a gradient sums over)."""
    lead = len(shape) - len(input)
    return tuple(
        i
        for i in range(len(shape))
        if i < lead or (input[i - lead] == 1 and shape[i] != 1)
    )
