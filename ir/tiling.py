"""Iteration spaces of kernel ops: what `tile-l1` may cut, and how each operand follows.

`iteration_space(op)` gives, for a `kernel.*` op, the dimensions of its iteration space
(extents), which of them may be cut into several tiles, which the outputs sum over, and
one operand map per input then output (`edge_opt.support.tiling`). A dimension that an
output does not follow is summed over by that output: when such a dimension is cut, the
output's tile accumulates (`tile.accumulate`). Each family is declared once below; an op
without a rule runs as one tile (its whole working set in L1).

The rules are the contract between a kernel's semantics and tiling: a kernel run on the
windows of a tile computes that tile of its outputs (or, for a summed dimension, a term
of the sum). `tests/test_tiling.py` checks every rule against the interpreter on random
tile sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from xdsl.dialects.builtin import MemRefType
from xdsl.ir import Attribute, SSAValue

from edge_opt.dialects import kernel, nn, train
from edge_opt.dialects.base import ints
from edge_opt.dialects.elementwise import (
    BinaryElementwiseOp,
    ElementwiseGradOp,
    UnaryElementwiseOp,
)
from edge_opt.support import shapes
from edge_opt.support.tiling import FULL, Halo


@dataclass(frozen=True)
class IterationSpace:
    """A workspace output (`KernelOp.WORKSPACE`: the fused weight updates' scratch
    rows) is mapped as the result it is scratch for (the first output): in a tile it
    is an L1 buffer of that result's tile shape, never copied (`tile-l1`)."""

    extents: tuple[int, ...]
    maps: tuple[tuple[int, ...], ...]
    """One per input, then one per output."""
    splittable: tuple[bool, ...]
    """Per dimension, whether it may be cut into several tiles."""
    halos: tuple[Halo | None, ...] = ()
    """Per operand (or empty: none), its sliding-window axis (a convolution's input
    rows): used when the dimension it follows is cut."""
    halo_properties: tuple[tuple[str, Attribute], ...] = ()
    """The kernel's properties that change when it reads padded halo slots (the
    convolution's row padding, which the slot then holds)."""


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, MemRefType)
    return tuple(value.type.get_shape())


def whole(op: kernel.KernelOp) -> IterationSpace:
    """One tile: every operand whole."""
    return IterationSpace((), tuple(tuple(FULL for _ in _shape(v)) for v in op.operands), ())


def _broadcast_map(shape: tuple[int, ...], extents: tuple[int, ...]) -> tuple[int, ...]:
    """An operand broadcast (NumPy rules, aligned right) to `extents`: its axes of the
    full size follow the dimension they align with, its size-1 axes are whole."""
    lead = len(extents) - len(shape)
    return tuple(lead + a if n == extents[lead + a] else FULL for a, n in enumerate(shape))


def elementwise(op: kernel.KernelOp) -> IterationSpace:
    """Element-wise with broadcasting (activations, arithmetic, their gradients, the
    optimizer updates): one dimension per axis of the first output."""
    extents = _shape(op.outputs[0])
    maps = tuple(_broadcast_map(_shape(v), extents) for v in op.operands)
    return IterationSpace(extents, maps, (True,) * len(extents))


def _linear_family(op: kernel.KernelOp) -> IterationSpace:
    """Dimensions: the leading (row) axes, then out features, then in features."""
    if isinstance(op, kernel.LinearKernelOp):
        x, w, *bias = op.inputs
        lead = _shape(x)[:-1]
    elif isinstance(op, kernel.LinearGradInputKernelOp):
        dy, w = op.inputs
        lead = _shape(dy)[:-1]
    else:
        dy, x = op.inputs
        lead = _shape(dy)[:-1]
    out_features, in_features = _shape(w if not isinstance(
        op, kernel.LinearGradWeightKernelOp) else op.outputs[0])
    rows = tuple(range(len(lead)))
    o, i = len(lead), len(lead) + 1
    extents = (*lead, out_features, in_features)
    if isinstance(op, kernel.LinearKernelOp):
        # The bias is added once per output: the in features are never cut.
        maps = ((*rows, i), (o, i), *([(o,)] if bias else []), (*rows, o))
        return IterationSpace(extents, maps, (True,) * len(lead) + (True, False))
    if isinstance(op, kernel.LinearGradInputKernelOp):
        maps = ((*rows, o), (o, i), (*rows, i))
    else:
        maps = ((*rows, o), (*rows, i), (o, i))
    return IterationSpace(extents, maps, (True,) * len(extents))


def _matmul(op: kernel.KernelOp) -> IterationSpace:
    """Dimensions: the output's batch axes, M, N, then the contraction K (summed)."""
    (lhs, rhs), (out,) = op.inputs, op.outputs
    out_shape = _shape(out)
    batch = out_shape[:-2]
    m, n = len(batch), len(batch) + 1
    k = len(batch) + 2
    lhs_t = op.transpose_lhs is not None  # type: ignore[attr-defined]
    rhs_t = op.transpose_rhs is not None  # type: ignore[attr-defined]
    k_extent = _shape(lhs)[-2] if lhs_t else _shape(lhs)[-1]
    extents = (*batch, out_shape[-2], out_shape[-1], k_extent)

    def operand(shape: tuple[int, ...], matrix: tuple[int, int]) -> tuple[int, ...]:
        return (*_broadcast_map(shape[:-2], batch), *matrix)

    maps = (
        operand(_shape(lhs), (k, m) if lhs_t else (m, k)),
        operand(_shape(rhs), (n, k) if rhs_t else (k, n)),
        (*range(len(batch)), m, n),
    )
    return IterationSpace(extents, maps, (True,) * len(extents))


F4 = (FULL, FULL)


def _conv2d(op: kernel.KernelOp) -> IterationSpace:
    """One group: dimensions batch N, output channels O, the channels the op sums over
    (forward: input channels C; grad-input: O; grad-weight: N) and rows R (of the
    output; of the input gradient for grad-input); the columns are whole. The input
    (forward, grad-weight) or the output gradient (grad-input) follows R through a halo:
    a tile of rows reads the rows its kernel window reaches, and the kernel inside the
    nest reads them padded (its row padding becomes the slot's). The forward's bias is
    added once per output: with a bias, C is never cut. Rows are cut when the padding
    is smaller than the kernel's reach and, for grad-input, at stride 1. Several groups
    (depthwise too): `_grouped_conv2d`."""
    if op.groups.value.data != 1:  # type: ignore[attr-defined]
        return _grouped_conv2d(op)
    top, _, bottom, _ = op.padding.get_values()  # type: ignore[attr-defined]
    stride = op.stride.get_values()[0]  # type: ignore[attr-defined]
    span = (_kernel_rows(op) - 1) * op.dilation.get_values()[0] + 1  # type: ignore[attr-defined]
    rows_cut = top < span and bottom < span
    if isinstance(op, kernel.Conv2dKernelOp):  # dims N, O, C (summed), R
        x, w, *bias = op.inputs
        maps = ((0, 2, 3, FULL), (1, 2, *F4), *([(1,)] if bias else []), (0, 1, 3, FULL))
        rows = _shape(op.outputs[0])[2]
        halos = (Halo(2, stride, span, top), *(None,) * (len(maps) - 1))
        return IterationSpace((_shape(x)[0], _shape(w)[0], _shape(w)[1], rows), maps,
                              (True, True, not bias, rows_cut), halos,
                              _row_padding(op, 0))
    if isinstance(op, kernel.Conv2dGradInputKernelOp):  # dims N, C, O (summed), R
        (dy, w), (dx,) = op.inputs, op.outputs
        maps = ((0, 2, 3, FULL), (2, 1, *F4), (0, 1, 3, FULL))
        # dx rows [a, b) take dy rows [a + top - span + 1, b + top)
        halos = (Halo(2, 1, span, span - 1 - top), None, None)
        return IterationSpace((_shape(dx)[0], _shape(dx)[1], _shape(w)[0], _shape(dx)[2]),
                              maps, (True, True, True, rows_cut and stride == 1), halos,
                              _row_padding(op, span - 1))
    (dy, x), (dw,) = op.inputs, op.outputs  # dims N (summed), O, C, R (summed)
    maps = ((0, 1, 3, FULL), (0, 2, 3, FULL), (1, 2, *F4))
    halos = (None, Halo(2, stride, span, top), None)
    return IterationSpace((_shape(x)[0], _shape(dw)[0], _shape(dw)[1], _shape(dy)[2]),
                          maps, (True, True, True, rows_cut), halos, _row_padding(op, 0))


def _grouped_conv2d(op: kernel.KernelOp) -> IterationSpace:
    """Several groups: a tile of channels would need its own `groups`, so the channels
    stay whole and the dimensions are batch N and one spatial axis of the output (of
    the input gradient for grad-input; summed for grad-weight): the rows, or the
    columns when the forward's output has a single row (a 1-D signal laid out (C, 1,
    T), or a convolution over the full height), followed through a halo as `_conv2d`'s
    rows are, under the same conditions."""
    forward = isinstance(op, kernel.Conv2dKernelOp)
    out = _shape(op.outputs[0] if forward else op.inputs[0])  # the forward's output
    axis = 2 if out[2] > 1 else 3
    k = axis - 2  # index of the axis in (rows, columns) properties
    top_left = op.padding.get_values()[k]  # type: ignore[attr-defined]
    bottom_right = op.padding.get_values()[k + 2]  # type: ignore[attr-defined]
    stride = op.stride.get_values()[k]  # type: ignore[attr-defined]
    weight = op.outputs[0] if isinstance(op, kernel.Conv2dGradWeightKernelOp) else op.inputs[1]
    span = (_shape(weight)[axis] - 1) * op.dilation.get_values()[k] + 1  # type: ignore[attr-defined]
    cut = top_left < span and bottom_right < span
    spatial = tuple(1 if a == axis else (0 if a == 0 else FULL) for a in range(4))
    whole = tuple(FULL for _ in range(4))
    if forward:
        bias = op.inputs[2:]
        maps = (spatial, whole, *([(FULL,)] if bias else []), spatial)
        halos = (Halo(axis, stride, span, top_left), *(None,) * (len(maps) - 1))
        return IterationSpace((out[0], out[axis]), maps, (True, cut), halos,
                              _axis_padding(op, k, 0))
    if isinstance(op, kernel.Conv2dGradInputKernelOp):
        halos = (Halo(axis, 1, span, span - 1 - top_left), None, None)
        dx = _shape(op.outputs[0])
        return IterationSpace((dx[0], dx[axis]), (spatial, whole, spatial),
                              (True, cut and stride == 1), halos,
                              _axis_padding(op, k, span - 1))
    # grad-weight: dy and x follow N and the axis, both summed
    halos = (None, Halo(axis, stride, span, top_left), None)
    return IterationSpace((out[0], out[axis]), (spatial, spatial, whole), (True, cut),
                          halos, _axis_padding(op, k, 0))


def _axis_padding(op: kernel.KernelOp, k: int, amount: int
                  ) -> tuple[tuple[str, Attribute], ...]:
    """The convolution's properties with `amount` of padding on both sides of spatial
    axis `k` (0: rows, 1: columns)."""
    padding = list(op.padding.get_values())  # type: ignore[attr-defined]
    padding[k] = padding[k + 2] = amount
    return (("padding", ints(padding)),)


def _kernel_rows(op: kernel.KernelOp) -> int:
    weight = op.outputs[0] if isinstance(op, kernel.Conv2dGradWeightKernelOp) else op.inputs[1]
    return _shape(weight)[2]


def _row_padding(op: kernel.KernelOp, rows: int) -> tuple[tuple[str, Attribute], ...]:
    """The convolution's properties with `rows` of padding above and below."""
    _, left, _, right = op.padding.get_values()  # type: ignore[attr-defined]
    return (("padding", ints((rows, left, rows, right))),)


def _grad_weight_sgd(op: kernel.KernelOp) -> IterationSpace:
    """The fused weight updates (`fuse-weight-updates`): dimensions the weight's output
    rows O (features, channels) and its input columns I (in features; input channels),
    both cut. The new weight is written over the weight, with the same map; the
    workspace follows it too (a tile computes its whole gradient slice into L1 scratch).

    The dimensions the gradient sums over (a linear layer's leading row axes; a
    convolution's batch and output rows) are not dimensions here: the operands are
    whole along them. SGD with weight decay is not linear in the gradient and a tile
    updates its weight window in place, so a tile must see the whole sum of its
    gradient slice: a cut summed dimension would apply SGD to partial sums (and
    accumulate new weights). So each weight window belongs to exactly one tile, written
    back before any other tile could read it. A kernel whose summed extent is too
    large for L1 does not fit (`tile-l1` says to run without `fuse-weight-updates`).
    Grouped convolutions (which the pass leaves alone) run as one tile."""
    dy, _, w = op.inputs
    if isinstance(op, kernel.Conv2dGradWeightSgdKernelOp):
        if op.groups.value.data != 1:  # type: ignore[attr-defined]
            return whole(op)
        maps = ((FULL, 0, *F4), (FULL, 1, *F4), *((0, 1, *F4),) * 3)
    else:
        lead = (FULL,) * (len(_shape(dy)) - 1)
        maps = ((*lead, 0), (*lead, 1), *((0, 1),) * 3)
    return IterationSpace(_shape(w)[:2], maps, (True, True))


def _batch_only(op: kernel.KernelOp) -> IterationSpace:
    """Transposed and grouped convolutions: batch N for the activations and their
    gradients; the weight is whole, and its gradient sums over N."""
    weight = op.outputs[0] if isinstance(
        op, (kernel.ConvTranspose2dGradWeightKernelOp, kernel.Conv2dGradWeightKernelOp)
    ) else op.inputs[1]
    n = _shape(op.inputs[0])[0]
    maps = tuple(
        tuple(FULL for _ in _shape(v)) if v is weight or len(_shape(v)) == 1
        else (0, *(FULL,) * (len(_shape(v)) - 1))
        for v in op.operands
    )
    return IterationSpace((n,), maps, (True,))


def _per_channel_plane(op: kernel.KernelOp) -> IterationSpace:
    """Pools and their gradients: batch N and channels C; planes whole."""
    n, c = _shape(op.outputs[0])[:2]
    maps = tuple((0, 1, *(FULL,) * (len(_shape(v)) - 2)) for v in op.operands)
    return IterationSpace((n, c), maps, (True, True))


def _along_axis(op: kernel.KernelOp) -> IterationSpace:
    """Softmax-like ops: every axis but `axis` (whole) is a dimension."""
    shape = _shape(op.outputs[0])
    axis = shapes.normalize_axis(op.axis.value.data, len(shape))  # type: ignore[attr-defined]
    own = tuple(FULL if a == axis else a for a in range(len(shape)))
    return IterationSpace(shape, tuple(own for _ in op.operands),
                          tuple(a != axis for a in range(len(shape))))


def _layer_norm(op: kernel.KernelOp) -> IterationSpace:
    """The leading (not normalized) axes are dimensions; scale, bias and the normalized
    axes are whole; the scale gradient sums over the leading axes."""
    x = _shape(op.inputs[1] if not isinstance(op, kernel.LayerNormKernelOp) else op.inputs[0])
    axis = shapes.normalize_axis(op.axis.value.data, len(x))  # type: ignore[attr-defined]
    lead = x[:axis]
    rows = (*range(axis), *(FULL,) * (len(x) - axis))
    maps = tuple(rows if _shape(v) == x else tuple(FULL for _ in _shape(v))
                 for v in op.operands)
    return IterationSpace(lead, maps, (True,) * len(lead))


def _batch_norm(op: kernel.KernelOp) -> IterationSpace:
    """Inference mode (frozen statistics): every axis is a dimension, per-channel
    operands follow C, and the scale gradient sums over the others. Training mode (batch
    statistics couple the batch and the planes): channels C only."""
    x = _shape(op.inputs[0] if isinstance(op, kernel.BatchNormKernelOp) else op.inputs[1])
    training = op.training is not None  # type: ignore[attr-defined]
    own = tuple(a if a == 1 or not training else FULL for a in range(len(x)))
    maps = tuple(own if _shape(v) == x else (1,) for v in op.operands)
    return IterationSpace(x, maps, tuple(a == 1 or not training for a in range(len(x))))


def _group_norm(op: kernel.KernelOp) -> IterationSpace:
    """Batch N; the scale gradient sums over it."""
    x = _shape(op.inputs[0] if isinstance(op, kernel.GroupNormKernelOp) else op.inputs[1])
    maps = tuple((0, *(FULL,) * (len(x) - 1)) if _shape(v) == x else (FULL,)
                 for v in op.operands)
    return IterationSpace((x[0],), maps, (True,))


def _transpose(op: kernel.KernelOp) -> IterationSpace:
    perm = tuple(op.perm.get_values())  # type: ignore[attr-defined]
    out = _shape(op.outputs[0])
    source = [0] * len(perm)
    for i, p in enumerate(perm):
        source[p] = i
    return IterationSpace(out, (tuple(source), tuple(range(len(out)))), (True,) * len(out))


def _reduce(op: kernel.KernelOp) -> IterationSpace:
    """One dimension per input axis; the reduced ones are summed (a mean's are whole)."""
    x = _shape(op.inputs[0])
    axes = {shapes.normalize_axis(a, len(x))
            for a in op.axes.get_values()}  # type: ignore[attr-defined]
    keep = op.keepdims is not None  # type: ignore[attr-defined]
    out = tuple(FULL if a in axes else a for a in range(len(x)) if keep or a not in axes)
    summing = isinstance(op, kernel.ReduceSumKernelOp)
    return IterationSpace(x, (tuple(range(len(x))), out),
                          tuple(summing or a not in axes for a in range(len(x))))


def _broadcast_to(op: kernel.KernelOp) -> IterationSpace:
    out = _shape(op.outputs[0])
    return IterationSpace(out, (_broadcast_map(_shape(op.inputs[0]), out),
                                tuple(range(len(out)))), (True,) * len(out))


RULES: dict[type[kernel.KernelOp], Callable[[kernel.KernelOp], IterationSpace]] = {
    **{k: elementwise for k in kernel.KERNEL_OPS if issubclass(
        k.TENSOR_OP, (UnaryElementwiseOp, BinaryElementwiseOp, ElementwiseGradOp))},
    **{kernel.KERNEL_OF[t]: elementwise
       for t in (train.SgdOp, train.SgdMomentumOp, train.AdamOp)},
    **{kernel.KERNEL_OF[t]: _linear_family
       for t in (nn.LinearOp, train.LinearGradInputOp, train.LinearGradWeightOp)},
    kernel.KERNEL_OF[nn.MatmulOp]: _matmul,
    **{kernel.KERNEL_OF[t]: _conv2d
       for t in (nn.Conv2dOp, train.Conv2dGradInputOp, train.Conv2dGradWeightOp)},
    **{kernel.KERNEL_OF[t]: _batch_only
       for t in (nn.ConvTranspose2dOp, train.ConvTranspose2dGradInputOp,
                 train.ConvTranspose2dGradWeightOp)},
    **{kernel.KERNEL_OF[t]: _per_channel_plane
       for t in (nn.MaxPool2dOp, nn.AvgPool2dOp, nn.GlobalAvgPoolOp,
                 train.MaxPool2dWithIndicesOp, train.MaxPool2dGradOp,
                 train.AvgPool2dGradOp)},
    **{kernel.KERNEL_OF[t]: _along_axis
       for t in (nn.SoftmaxOp, nn.LogSoftmaxOp, train.SoftmaxGradOp,
                 train.LogSoftmaxGradOp)},
    **{kernel.KERNEL_OF[t]: _layer_norm
       for t in (nn.LayerNormOp, train.LayerNormGradInputOp, train.LayerNormGradScaleOp)},
    **{kernel.KERNEL_OF[t]: _batch_norm
       for t in (nn.BatchNormOp, train.BatchNormGradInputOp, train.BatchNormGradScaleOp)},
    **{kernel.KERNEL_OF[t]: _group_norm
       for t in (nn.GroupNormOp, train.GroupNormGradInputOp, train.GroupNormGradScaleOp)},
    **{kernel.KERNEL_OF[t]: _grad_weight_sgd
       for t in (train.LinearGradWeightSgdOp, train.Conv2dGradWeightSgdOp)},
    kernel.KERNEL_OF[nn.TransposeOp]: _transpose,
    kernel.KERNEL_OF[nn.ReduceSumOp]: _reduce,
    kernel.KERNEL_OF[nn.ReduceMeanOp]: _reduce,
    kernel.KERNEL_OF[nn.BroadcastToOp]: _broadcast_to,
}
"""Iteration-space rules by kernel op; ops absent here run whole (losses, whose
reductions normalise by the batch; pad, concat, slice, gather, scatter)."""


def iteration_space(op: kernel.KernelOp) -> IterationSpace:
    rule = RULES.get(type(op))
    return rule(op) if rule is not None else whole(op)
