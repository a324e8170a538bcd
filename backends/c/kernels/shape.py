"""C forms of the shape kernels (`edge_kernels_shape.h`).

Data movement (`nn.transpose`, `nn.broadcast_to`, `nn.slice`, `nn.concat`) is one
runtime kernel, a strided copy over an index space: the functions below express each op
as element strides (`StridedCopy`), then simplify it (`StridedCopy.canonical`: size-1
axes dropped, axes that are contiguous in both source and destination merged) so the
kernel's inner loop runs as long as possible. `nn.gather` / `train.scatter` see their
operands as (outer, axis, inner); `train.slice_grad` is a gather per output element;
`nn.reduce_*` separates kept and reduced axes; `nn.pad` is the slice gradient of the
crop that undoes it, with its value where the slice gradient writes 0. These kernels move elements by size
(1, 2, 4 or 8 bytes), so every element type with a C type works; reductions are
float32. Semantics: `edge_opt.support.numerics` / `train_numerics` (slice, gather, scatter,
slice_grad) and NumPy (transpose, concatenate, broadcast_to, sum, mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from xdsl.dialects.builtin import MemRefType
from xdsl.ir import Operation, SSAValue

from edge_opt.backends.c.emitter import EmitError, FunctionContext, c_literal, emitter
from edge_opt.dialects import kernel
from edge_opt.support.dtypes import numpy_dtype
from edge_opt.support.shapes import normalize_axes, normalize_axis

MAX_RANK = 6
"""`EDGE_MAX_RANK`: the length of the shape and stride arrays of the parameter structs."""

_SUFFIX = {1: "b8", 2: "b16", 4: "b32", 8: "b64"}


def dense_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major element strides of a dense `shape`."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _pad(values: Sequence[int], fill: int) -> list[int]:
    return list(values) + [fill] * (MAX_RANK - len(values))


def _axis_fields(shape: Sequence[int], axes: dict[str, tuple[Sequence[int], int]],
                 **scalars: int) -> dict[str, object]:
    """The fields of a struct over at most `MAX_RANK` axes: `rank`, `shape`, each
    per-axis array padded with its fill value, then the scalars."""
    if len(shape) > MAX_RANK:
        raise ValueError(f"rank {len(shape)} > {MAX_RANK} after merging axes")
    return {
        "rank": len(shape),
        "shape": _pad(shape, 1),
        **{name: _pad(values, fill) for name, (values, fill) in axes.items()},
        **scalars,
    }


# --------------------------------------------------------------------------------------
# Strided copies
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StridedCopy:
    """`dst[dst_offset + i . dst_strides] = src[src_offset + i . src_strides]` for every
    index `i` of `shape` (`edge_strided_copy_t`)."""

    shape: tuple[int, ...]
    src_strides: tuple[int, ...]
    dst_strides: tuple[int, ...]
    src_offset: int = 0
    dst_offset: int = 0

    def canonical(self) -> StridedCopy:
        """The same copy over the fewest axes: size-1 axes dropped, an axis merged into
        the next where both strides step over it exactly (so the order of the index
        space is unchanged); at least one axis."""
        axes = [
            [n, s, d]
            for n, s, d in zip(self.shape, self.src_strides, self.dst_strides)
            if n != 1
        ]
        merged: list[list[int]] = []
        for axis in axes:
            if merged:
                n, s, d = merged[-1]
                if s == axis[1] * axis[0] and d == axis[2] * axis[0]:
                    merged[-1] = [n * axis[0], axis[1], axis[2]]
                    continue
            merged.append(axis)
        if not merged:
            merged = [[1, 1, 1]]
        shape, src, dst = (tuple(column) for column in zip(*merged))
        return StridedCopy(shape, src, dst, self.src_offset, self.dst_offset)

    def fields(self) -> dict[str, object]:
        copy = self.canonical()
        return _axis_fields(
            copy.shape, {"src_strides": (copy.src_strides, 0),
                         "dst_strides": (copy.dst_strides, 0)},
            src_offset=copy.src_offset, dst_offset=copy.dst_offset,
        )


def transpose_copy(shape: Sequence[int], perm: Sequence[int]) -> StridedCopy:
    """`np.transpose(x, perm)` for a dense `x` of `shape`."""
    strides = dense_strides(shape)
    out = tuple(shape[p] for p in perm)
    return StridedCopy(out, tuple(strides[p] for p in perm), dense_strides(out))


def broadcast_copy(shape: Sequence[int], out: Sequence[int]) -> StridedCopy:
    """`np.broadcast_to(x, out)` for a dense `x` of `shape` (stride 0 on broadcast
    axes)."""
    lead = len(out) - len(shape)
    strides = dense_strides(shape)
    src = [0] * lead + [
        0 if size == 1 and out[lead + a] != 1 else strides[a]
        for a, size in enumerate(shape)
    ]
    return StridedCopy(tuple(out), tuple(src), dense_strides(out))


def slice_ranges(
    starts: Sequence[int], ends: Sequence[int], steps: Sequence[int]
) -> list[range]:
    """Per axis, the sliced indices `range(start, end, step)` (`nn.slice`: Python's
    `range`, so `end = -1` with a negative step reaches index 0)."""
    return [range(start, end, step) for start, end, step in zip(starts, ends, steps)]


def slice_copy(
    shape: Sequence[int], starts: Sequence[int], ends: Sequence[int], steps: Sequence[int]
) -> StridedCopy:
    """`nn.slice` of a dense `x` of `shape`: the source starts at the first sliced
    element and steps `step` (possibly negative) elements along each axis."""
    strides = dense_strides(shape)
    ranges = slice_ranges(starts, ends, steps)
    out = tuple(len(r) for r in ranges)
    return StridedCopy(
        out,
        tuple(r.step * s for r, s in zip(ranges, strides)),
        dense_strides(out),
        src_offset=sum(r.start * s for r, s in zip(ranges, strides)),
    )


def concat_copies(shapes: Sequence[Sequence[int]], axis: int) -> list[StridedCopy]:
    """`np.concatenate` along `axis`: one copy per input, into its slab of the
    output."""
    axis = normalize_axis(axis, len(shapes[0]))
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    out_strides = dense_strides(out)
    copies, offset = [], 0
    for shape in shapes:
        copies.append(
            StridedCopy(
                tuple(shape),
                dense_strides(shape),
                out_strides,
                dst_offset=offset * out_strides[axis],
            )
        )
        offset += shape[axis]
    return copies


# --------------------------------------------------------------------------------------
# Gather, scatter, slice gradient, reductions
# --------------------------------------------------------------------------------------


def split_axis(shape: Sequence[int], axis: int) -> tuple[int, int, int]:
    """`shape` as (outer, shape[axis], inner)."""
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])


def scatter_positions(size: int, indices: Sequence[int]) -> list[int]:
    """For each index along the axis, the slice of `values` written there, or -1."""
    positions = [-1] * size
    for k, index in enumerate(indices):
        positions[index] = k
    return positions


@dataclass(frozen=True)
class SliceGrad:
    """`edge_slice_grad_t`: per axis of dx, the sliced indices `first + k * step`
    (`k < count`, ascending) and the dy stride per `k`."""

    shape: tuple[int, ...]
    first: tuple[int, ...]
    step: tuple[int, ...]
    count: tuple[int, ...]
    dy_strides: tuple[int, ...]
    dy_offset: int

    def canonical(self) -> SliceGrad:
        """Size-1 axes dropped; an axis sliced with step 1 merged with a wholly sliced
        next axis where dy is contiguous across them."""
        axes = [
            list(a)
            for a in zip(self.shape, self.first, self.step, self.count, self.dy_strides)
            if a[0] != 1
        ]
        merged: list[list[int]] = []
        for axis in axes:
            n, first, step, count, stride = axis
            if merged and first == 0 and step == 1 and count == n:
                n0, first0, step0, count0, stride0 = merged[-1]
                if step0 == 1 and stride0 == stride * n:
                    merged[-1] = [n0 * n, first0 * n, 1, count0 * n, stride]
                    continue
            merged.append(axis)
        if not merged:
            merged = [[1, 0, 1, 1, 0]]
        shape, first, step, count, strides = (tuple(c) for c in zip(*merged))
        return SliceGrad(shape, first, step, count, strides, self.dy_offset)

    def fields(self) -> dict[str, object]:
        grad = self.canonical()
        return _axis_fields(
            grad.shape, {"first": (grad.first, 0), "step": (grad.step, 1),
                         "count": (grad.count, 1), "dy_strides": (grad.dy_strides, 0)},
            dy_offset=grad.dy_offset,
        )


def slice_grad(
    shape: Sequence[int], starts: Sequence[int], ends: Sequence[int], steps: Sequence[int]
) -> SliceGrad:
    """`train.slice_grad` into a dx of `shape`: a negative step is the ascending range
    of the same indices read from dy backwards."""
    ranges = slice_ranges(starts, ends, steps)
    dy_strides = dense_strides([len(r) for r in ranges])
    first, step, strides, offset = [], [], [], 0
    for r, stride in zip(ranges, dy_strides):
        if r.step > 0:
            first.append(r.start)
            strides.append(stride)
        else:
            first.append(r[-1])
            strides.append(-stride)
            offset += (len(r) - 1) * stride
        step.append(abs(r.step))
    return SliceGrad(
        tuple(shape), tuple(first), tuple(step), tuple(len(r) for r in ranges),
        tuple(strides), offset,
    )


def _merge(shape: Sequence[int], strides: Sequence[int]) -> tuple[list[int], list[int]]:
    """Drops size-1 axes and merges an axis into the next where its stride steps over
    it exactly; at least one axis."""
    merged: list[list[int]] = []
    for n, s in zip(shape, strides):
        if n == 1:
            continue
        if merged and merged[-1][1] == s * n:
            merged[-1] = [merged[-1][0] * n, s]
        else:
            merged.append([n, s])
    if not merged:
        merged = [[1, 0]]
    return [n for n, _ in merged], [s for _, s in merged]


def reduce_fields(shape: Sequence[int], axes: Sequence[int]) -> dict[str, object]:
    """`edge_reduce_t` for a reduction of a dense `shape` over `axes` (the output is
    dense over the kept axes, whether or not they are kept with size 1)."""
    reduced = set(normalize_axes(axes, len(shape)))
    strides = dense_strides(shape)
    kept_shape, kept_strides = _merge(
        [n for a, n in enumerate(shape) if a not in reduced],
        [s for a, s in enumerate(strides) if a not in reduced],
    )
    red_shape, red_strides = _merge(
        [n for a, n in enumerate(shape) if a in reduced],
        [s for a, s in enumerate(strides) if a in reduced],
    )
    if max(len(kept_shape), len(red_shape)) > MAX_RANK:
        raise ValueError(f"rank > {MAX_RANK} after merging axes")
    return {
        "rank": len(kept_shape),
        "shape": _pad(kept_shape, 1),
        "strides": _pad(kept_strides, 0),
        "reduced_rank": len(red_shape),
        "reduced_shape": _pad(red_shape, 1),
        "reduced_strides": _pad(red_strides, 0),
    }


# --------------------------------------------------------------------------------------
# Emitters
# --------------------------------------------------------------------------------------


def element_suffix(op: Operation, value: SSAValue) -> str:
    """`b8` ... `b64`: the data-movement kernel variant for `value`'s element size."""
    assert isinstance(value.type, MemRefType)
    size = numpy_dtype(value.type.element_type).itemsize
    if size not in _SUFFIX:
        raise EmitError(f"{op.name}: no shape kernel moves {size}-byte elements")
    return _SUFFIX[size]


def _fields(op: Operation, params: StridedCopy | SliceGrad) -> dict[str, object]:
    try:
        return params.fields()
    except ValueError as e:
        raise _rank_error(op, e) from None


def _rank_error(op: Operation, error: ValueError) -> EmitError:
    return EmitError(f"{op.name}: {error}; the runtime supports rank <= {MAX_RANK}")


def _table(f: FunctionContext, hint: str, values: Sequence[int]) -> str:
    """A `static const int32_t` array of the function body; returns its name."""
    name = f.fresh(hint)
    items = ", ".join(str(v) for v in values)
    f.declarations.append(f"  static const int32_t {name}[{len(values)}] = {{{items}}};")
    return name


def _copy(f: FunctionContext, op: Operation, copy: StridedCopy, src: SSAValue,
          dst: SSAValue) -> None:
    params = f.params("edge_strided_copy_t", **_fields(op, copy))
    f.call(f"edge_strided_copy_{element_suffix(op, dst)}", params, f.ptr(src), f.ptr(dst))


@emitter(kernel.TransposeKernelOp)
def emit_transpose(f: FunctionContext, op: kernel.KernelOp) -> None:
    (x,), (y,) = op.inputs, op.outputs
    perm = op.perm.get_values()  # type: ignore[attr-defined]
    _copy(f, op, transpose_copy(f.shape(x), perm), x, y)


@emitter(kernel.BroadcastToKernelOp)
def emit_broadcast_to(f: FunctionContext, op: kernel.KernelOp) -> None:
    (x,), (y,) = op.inputs, op.outputs
    _copy(f, op, broadcast_copy(f.shape(x), f.shape(y)), x, y)


def _slice(op: Operation) -> tuple[tuple[int, ...], ...]:
    return (
        op.starts.get_values(),  # type: ignore[attr-defined]
        op.ends.get_values(),  # type: ignore[attr-defined]
        op.steps.get_values(),  # type: ignore[attr-defined]
    )


@emitter(kernel.SliceKernelOp)
def emit_slice(f: FunctionContext, op: kernel.KernelOp) -> None:
    (x,), (y,) = op.inputs, op.outputs
    _copy(f, op, slice_copy(f.shape(x), *_slice(op)), x, y)


@emitter(kernel.ConcatKernelOp)
def emit_concat(f: FunctionContext, op: kernel.KernelOp) -> None:
    (y,) = op.outputs
    axis = op.axis.value.data  # type: ignore[attr-defined]
    copies = concat_copies([f.shape(x) for x in op.inputs], axis)
    for x, copy in zip(op.inputs, copies):
        _copy(f, op, copy, x, y)


def _indexed_axis(f: FunctionContext, op: kernel.KernelOp, value: SSAValue
                  ) -> tuple[int, int, int, tuple[int, ...]]:
    """`value`'s shape split around the op's `axis` (outer, size, inner) and the op's
    `indices` on it (a gather or a scatter)."""
    shape = f.shape(value)
    axis = normalize_axis(op.axis.value.data, len(shape))  # type: ignore[attr-defined]
    indices = tuple(op.indices.get_values())  # type: ignore[attr-defined]
    return (*split_axis(shape, axis), indices)


@emitter(kernel.GatherKernelOp)
def emit_gather(f: FunctionContext, op: kernel.KernelOp) -> None:
    (x,), (y,) = op.inputs, op.outputs
    outer, size, inner, indices = _indexed_axis(f, op, x)
    params = f.params(
        "edge_gather_t", outer=outer, size=size, inner=inner, count=len(indices),
        indices=_table(f, "indices", indices),
    )
    f.call(f"edge_gather_{element_suffix(op, y)}", params, f.ptr(x), f.ptr(y))


@emitter(kernel.ScatterKernelOp)
def emit_scatter(f: FunctionContext, op: kernel.KernelOp) -> None:
    (dest, values), (out,) = op.inputs, op.outputs
    outer, size, inner, indices = _indexed_axis(f, op, dest)
    params = f.params(
        "edge_scatter_t", outer=outer, size=size, inner=inner, count=len(indices),
        positions=_table(f, "positions", scatter_positions(size, indices)),
    )
    f.call(
        f"edge_scatter_{element_suffix(op, out)}", params, f.ptr(dest), f.ptr(values),
        f.ptr(out),
    )


@emitter(kernel.SliceGradKernelOp)
def emit_slice_grad(f: FunctionContext, op: kernel.KernelOp) -> None:
    (dy,), (dx,) = op.inputs, op.outputs
    params = f.params(
        "edge_slice_grad_t", **_fields(op, slice_grad(f.shape(dx), *_slice(op)))
    )
    f.call(f"edge_slice_grad_{element_suffix(op, dx)}", params, f.ptr(dy), f.ptr(dx))


@emitter(kernel.ReduceSumKernelOp, kernel.ReduceMeanKernelOp)
def emit_reduce(f: FunctionContext, op: kernel.KernelOp) -> None:
    (x,), (y,) = op.inputs, op.outputs
    if f.ctype(x) != "float":
        raise EmitError(f"{op.name}: the C runtime reduces float32 tensors only")
    axes = op.axes.get_values()  # type: ignore[attr-defined]
    try:
        params = f.params("edge_reduce_t", **reduce_fields(f.shape(x), axes))
    except ValueError as e:
        raise _rank_error(op, e) from None
    name = "sum" if isinstance(op, kernel.ReduceSumKernelOp) else "mean"
    f.call(f"edge_reduce_{name}_f32", params, f.ptr(x), f.ptr(y))


def pad_fill(shape: Sequence[int], pads: Sequence[int]) -> SliceGrad:
    """`nn.pad` of a dense `x` of `shape`: the slice gradient (`edge_slice_grad_t`)
    of the crop that undoes the pad, into the padded output."""
    rank = len(shape)
    out = [d + pads[a] + pads[rank + a] for a, d in enumerate(shape)]
    begins = list(pads[:rank])
    return slice_grad(
        out, begins, [b + d for b, d in zip(begins, shape)], [1] * rank
    )


@emitter(kernel.PadKernelOp)
def emit_pad(f: FunctionContext, op: kernel.KernelOp) -> None:
    (x,), (y,) = op.inputs, op.outputs
    if f.ctype(x) != "float":
        raise EmitError(f"{op.name}: the C runtime pads float32 tensors only")
    pads = op.pads.get_values()  # type: ignore[attr-defined]
    params = f.params("edge_slice_grad_t", **_fields(op, pad_fill(f.shape(x), pads)))
    value = c_literal(op.value.value.data, "float")  # type: ignore[attr-defined]
    f.call("edge_pad_f32", params, value, f.ptr(x), f.ptr(y))
