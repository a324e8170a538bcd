"""Lowerings of the ONNX convolutions and pooling ops (1-D and 2-D; a 1-D op becomes the
2-D op on a height-1 tensor between `nn.unsqueeze` and `nn.squeeze`); GlobalMaxPool is a
max pool over the whole image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from xdsl.ir import SSAValue

from edge_opt.dialects import nn
from edge_opt.dialects.train import MAX_POOL_WINDOW
from edge_opt.frontends.onnx.errors import Unsupported
from edge_opt.frontends.onnx.lowerings.common import int_list
from edge_opt.frontends.onnx.registry import lowering
from edge_opt.frontends.onnx.values import tensor_shape

if TYPE_CHECKING:
    from edge_opt.frontends.onnx.importer import Importer


def _window_pads(
    attrs: dict[str, Any],
    sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pooling: bool = False,
) -> list[int]:
    """ONNX `pads` (all begins, then all ends) after resolving `auto_pad`.

    SAME_* pads so that `output = ceil(input / stride)`, the odd pixel at the end
    (SAME_UPPER) or the beginning (SAME_LOWER), as the ONNX spec says. When the window
    is smaller than the stride the spec's padding is negative: a convolution then pads
    nothing (as onnxruntime does); pooling too, unless onnxruntime's split of the
    negative padding crops the beginning of the input, which we do not support.
    onnxruntime rejects dilated SAME convolutions and computes dilated SAME pooling
    from the undilated kernel; we follow the spec for convolutions and do not support
    dilated SAME pooling.
    """
    rank = len(sizes)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad == "NOTSET":
        pads = int_list(attrs.get("pads", [0] * (2 * rank)))
        if len(pads) != 2 * rank:
            raise Unsupported(f"pads {pads} for {rank} spatial axes")
        return pads
    if auto_pad == "VALID":
        return [0] * (2 * rank)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad={auto_pad}")
    if pooling and any(d != 1 for d in dilations):
        raise Unsupported(f"auto_pad={auto_pad} with dilations")
    begins, ends = [], []
    for size, k, s, d in zip(sizes, kernel, strides, dilations):
        out = -(-size // s)
        total = (out - 1) * s + (k - 1) * d + 1 - size
        if total < 0 and pooling:
            # onnxruntime's split (C++ division) of a negative total: a negative
            # begin crops the input, a negative end changes nothing.
            begin = int(total / 2) if auto_pad == "SAME_UPPER" else int((total + 1) / 2)
            if begin < 0:
                raise Unsupported(
                    f"auto_pad={auto_pad} with a window smaller than the stride"
                )
        total = max(total, 0)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return begins + ends


def _spatial_rank(x: SSAValue, what: str) -> int:
    rank = len(tensor_shape(x)) - 2
    if rank not in (1, 2):
        raise Unsupported(f"{rank}-D {what} (only 1-D and 2-D)")
    return rank


def _as_2d(values: Sequence[int], fill: int) -> tuple[int, int]:
    """A per-spatial-axis attribute of a 1-D op for the height-1 2-D op."""
    return (fill, values[0]) if len(values) == 1 else (values[0], values[1])


def _pads_2d(pads: Sequence[int]) -> tuple[int, int, int, int]:
    if len(pads) == 2:
        return (0, pads[0], 0, pads[1])
    return (pads[0], pads[1], pads[2], pads[3])


class _Height1:
    """Runs a 2-D op on 1-D operands: unsqueeze the listed operands at axis 2, squeeze
    the result."""

    def __init__(self, importer: Importer, one_d: bool):
        self.importer, self.one_d = importer, one_d

    def operand(self, value: SSAValue) -> SSAValue:
        return self.importer.emit(nn.UnsqueezeOp(value, [2])) if self.one_d else value

    def result(self, value: SSAValue) -> SSAValue:
        return self.importer.emit(nn.SqueezeOp(value, [2])) if self.one_d else value


@lowering(
    "Conv", ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"]
)
def _conv(self: Importer, node, ins, attrs):
    x, w, rank, strides, dilations = _conv_operands(self, ins, attrs, "convolution")
    kernel = tensor_shape(w)[2:]
    pads = _window_pads(attrs, tensor_shape(x)[2:], kernel, strides, dilations)
    return _emit_conv(self, nn.Conv2dOp, ins, attrs, x, w, rank, strides, dilations,
                      padding=_pads_2d(pads))


def _conv_operands(self: Importer, ins, attrs: dict[str, Any], what: str):
    """A (transposed) convolution's input, weight, spatial rank, strides and
    dilations."""
    x, w = self.ssa(ins[0]), self.ssa(ins[1], "weight")
    rank = _spatial_rank(x, what)
    strides = int_list(attrs.get("strides", [1] * rank))
    dilations = int_list(attrs.get("dilations", [1] * rank))
    return x, w, rank, strides, dilations


def _emit_conv(self: Importer, op_type, ins, attrs: dict[str, Any], x: SSAValue,
               w: SSAValue, rank: int, strides, dilations, **window) -> list[SSAValue]:
    """The 2-D op (a 1-D convolution through `_Height1`) with its bias, strides,
    dilations, groups and the rest of its `window`."""
    bias = None if ins[2] is None else self.ssa(ins[2])
    h1 = _Height1(self, rank == 1)
    y = self.emit(
        op_type(
            h1.operand(x), h1.operand(w), bias, stride=_as_2d(strides, 1),
            dilation=_as_2d(dilations, 1), groups=int(attrs.get("group", 1)), **window,
        )
    )
    return [h1.result(y)]


def _conv_transpose_pads(
    attrs: dict[str, Any],
    sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    output_padding: list[int],
) -> tuple[list[int], list[int]]:
    """ONNX `pads` (all begins, then all ends) and `output_padding` of a ConvTranspose
    after resolving `auto_pad` and `output_shape`."""
    rank = len(sizes)
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad={auto_pad}")
    if "output_shape" in attrs or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        # The spec's total padding, split with the odd pixel at the end for SAME_UPPER
        # and at the beginning otherwise. An output_shape beyond the full result
        # extends it at the end (output_padding), as onnxruntime; without output_shape,
        # SAME never pads negatively.
        explicit = "output_shape" in attrs
        if explicit:
            wanted = int_list(attrs["output_shape"])[-rank:]
        else:
            wanted = [size * s for size, s in zip(sizes, strides)]
        totals = [
            s * (size - 1) + p + (k - 1) * d + 1 - o
            for size, k, s, d, p, o in zip(
                sizes, kernel, strides, dilations, output_padding, wanted
            )
        ]
        if explicit:
            output_padding = [p - min(t, 0) for p, t in zip(output_padding, totals)]
        totals = [max(t, 0) for t in totals]
        if auto_pad == "SAME_UPPER":
            pads = [t // 2 for t in totals] + [t - t // 2 for t in totals]
        else:
            pads = [t - t // 2 for t in totals] + [t // 2 for t in totals]
    elif auto_pad == "VALID":
        pads = [0] * (2 * rank)
    else:
        pads = int_list(attrs.get("pads", [0] * (2 * rank)))
    return pads, output_padding


@lowering(
    "ConvTranspose",
    [
        "auto_pad",
        "dilations",
        "group",
        "kernel_shape",
        "output_padding",
        "output_shape",
        "pads",
        "strides",
    ],
)
def _conv_transpose(self: Importer, node, ins, attrs):
    x, w, rank, strides, dilations = _conv_operands(
        self, ins, attrs, "transposed convolution"
    )
    sizes, kernel = tensor_shape(x)[2:], tensor_shape(w)[2:]
    output_padding = int_list(attrs.get("output_padding", [0] * rank))
    pads, output_padding = _conv_transpose_pads(
        attrs, sizes, kernel, strides, dilations, output_padding
    )
    return _emit_conv(self, nn.ConvTranspose2dOp, ins, attrs, x, w, rank, strides,
                      dilations, padding=_pads_2d(pads),
                      output_padding=_as_2d(output_padding, 0))


_POOL_WINDOW = ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides")
"""The attributes of a pool's window (what `_pool_window` reads)."""


def _pool_window(self: Importer, attrs: dict[str, Any], x: SSAValue):
    """The 1-D or 2-D pool's input as 2-D (`_Height1`), its window as the 2-D op's
    keyword arguments (kernel, stride, padding, ceil_mode), and its dilations."""
    rank = _spatial_rank(x, "pooling")
    if "kernel_shape" not in attrs:
        raise Unsupported("no kernel_shape")
    kernel = int_list(attrs["kernel_shape"])
    strides = int_list(attrs.get("strides", [1] * rank))
    dilations = int_list(attrs.get("dilations", [1] * rank))
    pads = _window_pads(attrs, tensor_shape(x)[2:], kernel, strides, dilations, pooling=True)
    window = {
        "kernel": _as_2d(kernel, 1), "stride": _as_2d(strides, 1),
        "padding": _pads_2d(pads), "ceil_mode": bool(attrs.get("ceil_mode", 0)),
    }
    return _Height1(self, rank == 1), window, dilations


@lowering("MaxPool", [*_POOL_WINDOW, "storage_order"])
def _max_pool(self: Importer, node, ins, attrs):
    # storage_order only affects the Indices output, which we do not provide.
    x = self.ssa(ins[0])
    h1, window, dilations = _pool_window(self, attrs, x)
    y = self.emit(nn.MaxPool2dOp(h1.operand(x), dilation=_as_2d(dilations, 1), **window))
    return [h1.result(y)]


@lowering("AveragePool", [*_POOL_WINDOW, "count_include_pad"])
def _avg_pool(self: Importer, node, ins, attrs):
    x = self.ssa(ins[0])
    h1, window, dilations = _pool_window(self, attrs, x)
    if any(d != 1 for d in dilations):
        raise Unsupported(f"dilations={dilations}")
    count_include_pad = bool(attrs.get("count_include_pad", 0))
    y = self.emit(nn.AvgPool2dOp(h1.operand(x), count_include_pad=count_include_pad,
                                 **window))
    return [h1.result(y)]


@lowering("GlobalAveragePool")
def _global_avg_pool(self: Importer, node, ins, attrs):
    return [self.emit(nn.GlobalAvgPoolOp(self.ssa(ins[0])))]


@lowering("GlobalMaxPool")
def _global_max_pool(self: Importer, node, ins, attrs):
    """`nn.max_pool2d` with the whole image as its window. Training keeps a ui8 index
    per window (`train.MAX_POOL_WINDOW` positions at most), so a larger image is pooled
    in two steps, over the rows and then over the columns (the same maximum)."""
    x = self.ssa(ins[0])
    rank = _spatial_rank(x, "pooling")
    h1 = _Height1(self, rank == 1)
    x = h1.operand(x)
    height, width = tensor_shape(x)[2:]
    if height * width <= MAX_POOL_WINDOW:
        return [h1.result(self.emit(nn.MaxPool2dOp(x, (height, width))))]
    if max(height, width) > MAX_POOL_WINDOW:
        raise Unsupported(
            f"a {height}x{width} image (at most {MAX_POOL_WINDOW} rows and columns)"
        )
    rows = self.emit(nn.MaxPool2dOp(x, (height, 1)))
    return [h1.result(self.emit(nn.MaxPool2dOp(rows, (1, width))))]
