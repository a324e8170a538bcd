"""A PyTorch evaluator of `nn`-dialect functions: the oracle of the training tests.

`TorchModel(module)` runs `@forward` (or any function of `nn` ops) with
`torch.nn.functional`, one torch expression per `nn` op, written from the op's
documented semantics (the `nn` dialect's docstrings), not from our NumPy code.
Parameters are leaf tensors; exactly the trainable ones have `requires_grad=True`, so
`torch.autograd.grad` of a loss gives the reference gradients, and `torch.optim` on
`trainable_params()` gives the reference optimizer steps.

    model = TorchModel(module, trainable={"fc_weight"}, dtype=torch.float64)
    loss = model.loss(model(image)[0], labels, "cross-entropy", "mean")
    grads = model.gradients(loss)            # {name: np.ndarray}, only trainable params

Where torch has no direct form of one of our attributes the expression composes torch
ops: asymmetric convolution padding is an `F.pad` before the convolution; asymmetric
pooling padding pads the excess over the symmetric part explicitly (`-inf` for max,
zeros for average) and drops a ceil-mode window that starts in the end padding (PyTorch
keeps such a window only if it starts inside the input or the begin padding); a
transposed convolution's asymmetric padding crops its output; a slice gathers the
indices of `torch.arange(start, end, step)` (torch has no negative-step slicing); an
inference batch norm whose running statistics train is written out (torch's
`batch_norm` refuses their gradients). Every result is checked against the shape of
the op's result type, so a shape rule of ours that torch disagrees with fails here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue

from edge_opt.dialects import nn
from edge_opt.dialects.elementwise import BINARY_OPS, NN_OP
from edge_opt.support.dtypes import to_numpy
from edge_opt.support.elementwise import UNARY
from edge_opt.support.registry import OpTable

Tensor = torch.Tensor
Rule = Callable[..., Tensor]

_RULES: OpTable[Rule] = OpTable()
_rule = _RULES.register


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return tuple(value.type.get_shape())


def _ints(attr) -> tuple[int, ...]:
    return tuple(attr.get_values())


# --------------------------------------------------------------------------------------
# Element-wise
# --------------------------------------------------------------------------------------


def _plain(f: Callable[..., Tensor]) -> Rule:
    """An op without attributes: the torch function of its operands."""
    return lambda op, *args: f(*args)


TORCH_UNARY: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "silu": F.silu,
    "hardswish": F.hardswish,
    "erf": torch.erf,
    "sqrt": torch.sqrt,
    "exp": torch.exp,
    "log": torch.log,
    "neg": torch.neg,
    "ceil": torch.ceil,
    "floor": torch.floor,
    "round": torch.round,
}
"""The PyTorch function of every element-wise row of `edge_opt.support.elementwise`
without attributes, by the row's name (the ones with attributes have rules below). The
semantics and gradient tests of those rows read this table."""

TORCH_BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
    "pow": torch.pow,
}

for _row in UNARY:
    if not _row.attributes:
        _RULES[NN_OP[_row.name]] = _plain(TORCH_UNARY[_row.name])
for _op in BINARY_OPS:
    _RULES[_op] = _plain(TORCH_BINARY[_op.ROW.name])


@_rule(nn.ClipOp)
def _clip(op: nn.ClipOp, x: Tensor) -> Tensor:
    """`F.hardtanh` (and for one bound its one-sided form through a relu), so that the
    gradient is 0 at the bounds, as the op's docstring says."""
    lo = None if op.min is None else op.min.value.data
    hi = None if op.max is None else op.max.value.data
    if lo is not None and hi is not None:
        return F.hardtanh(x, lo, hi)
    if lo is not None:
        return lo + F.relu(x - lo)
    if hi is not None:
        return hi - F.relu(hi - x)
    return x


@_rule(nn.HardsigmoidOp)
def _hardsigmoid(op: nn.HardsigmoidOp, x: Tensor) -> Tensor:
    return F.hardtanh(op.alpha.value.data * x + op.beta.value.data, 0.0, 1.0)


@_rule(nn.EluOp)
def _elu(op: nn.EluOp, x: Tensor) -> Tensor:
    return F.elu(x, op.alpha.value.data)


@_rule(nn.LeakyReluOp)
def _leaky_relu(op: nn.LeakyReluOp, x: Tensor) -> Tensor:
    return F.leaky_relu(x, op.alpha.value.data)


@_rule(nn.GeluOp)
def _gelu(op: nn.GeluOp, x: Tensor) -> Tensor:
    return F.gelu(x, approximate=op.approximate.data)


@_rule(nn.SoftmaxOp)
def _softmax(op: nn.SoftmaxOp, x: Tensor) -> Tensor:
    return F.softmax(x, dim=op.axis.value.data)


@_rule(nn.LogSoftmaxOp)
def _log_softmax(op: nn.LogSoftmaxOp, x: Tensor) -> Tensor:
    return F.log_softmax(x, dim=op.axis.value.data)


# --------------------------------------------------------------------------------------
# Linear algebra and convolutions
# --------------------------------------------------------------------------------------


@_rule(nn.LinearOp)
def _linear(op: nn.LinearOp, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    return F.linear(x, w, b)


@_rule(nn.MatmulOp)
def _matmul(op: nn.MatmulOp, a: Tensor, b: Tensor) -> Tensor:
    if op.transpose_lhs is not None:
        a = a.transpose(-1, -2)
    if op.transpose_rhs is not None:
        b = b.transpose(-1, -2)
    return torch.matmul(a, b)


@_rule(nn.AttentionOp)
def _attention(op: nn.AttentionOp, x: Tensor, wq: Tensor, wk: Tensor, wv: Tensor,
               wo: Tensor, *biases: Tensor) -> Tensor:
    """Projections, `F.scaled_dot_product_attention` on the split heads, the merge and
    the output projection."""
    heads = op.heads.value.data
    bq, bk, bv, bo = biases if biases else (None,) * 4

    def split(w: Tensor, b: Tensor | None) -> Tensor:
        y = x @ w if b is None else x @ w + b
        return y.unflatten(-1, (heads, -1)).transpose(1, 2)

    o = F.scaled_dot_product_attention(
        split(wq, bq), split(wk, bk), split(wv, bv), scale=op.scale.value.data
    )
    y = o.transpose(1, 2).flatten(2) @ wo
    return y if bo is None else y + bo


@_rule(nn.Conv2dOp)
def _conv2d(op: nn.Conv2dOp, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    top, left, bottom, right = _ints(op.padding)
    return F.conv2d(
        F.pad(x, (left, right, top, bottom)),
        w,
        b,
        stride=_ints(op.stride),
        dilation=_ints(op.dilation),
        groups=op.groups.value.data,
    )


@_rule(nn.ConvTranspose2dOp)
def _conv_transpose2d(
    op: nn.ConvTranspose2dOp, x: Tensor, w: Tensor, b: Tensor | None = None
) -> Tensor:
    # Padding a transposed convolution crops its output: torch crops the symmetric
    # part, we crop what is left of each side.
    top, left, bottom, right = _ints(op.padding)
    sym_h, sym_w = min(top, bottom), min(left, right)
    y = F.conv_transpose2d(
        x,
        w,
        b,
        stride=_ints(op.stride),
        padding=(sym_h, sym_w),
        output_padding=_ints(op.output_padding),
        groups=op.groups.value.data,
        dilation=_ints(op.dilation),
    )
    h, width = y.shape[2:]
    return y[
        :, :, top - sym_h : h - (bottom - sym_h), left - sym_w : width - (right - sym_w)
    ]


# --------------------------------------------------------------------------------------
# Normalisations
# --------------------------------------------------------------------------------------


@_rule(nn.LayerNormOp)
def _layer_norm(op: nn.LayerNormOp, x: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
    axis = op.axis.value.data % x.ndim
    return F.layer_norm(x, x.shape[axis:], scale, bias, eps=op.epsilon.value.data)


@_rule(nn.BatchNormOp)
def _batch_norm(
    op: nn.BatchNormOp,
    x: Tensor,
    scale: Tensor,
    bias: Tensor,
    mean: Tensor,
    var: Tensor,
) -> Tensor:
    eps = op.epsilon.value.data
    if op.training is not None:
        # Batch statistics; the running statistics are neither read nor written.
        return F.batch_norm(x, None, None, scale, bias, training=True, eps=eps)
    if not (mean.requires_grad or var.requires_grad):
        return F.batch_norm(x, mean, var, scale, bias, training=False, eps=eps)
    # torch's batch_norm refuses gradients for the running statistics: the same
    # inference formula, written out.
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps) * scale.view(
        shape
    ) + bias.view(shape)


@_rule(nn.GroupNormOp)
def _group_norm(op: nn.GroupNormOp, x: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
    return F.group_norm(x, op.groups.value.data, scale, bias, eps=op.epsilon.value.data)


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------


def pre_pad(
    x: Tensor, padding: Sequence[int], value: float
) -> tuple[Tensor, tuple[int, int]]:
    """Pads the asymmetric excess of `(top, left, bottom, right)` explicitly; returns
    the padded input and the symmetric rest for torch's `padding`."""
    top, left, bottom, right = padding
    sym_h, sym_w = min(top, bottom), min(left, right)
    padded = F.pad(
        x, (left - sym_w, right - sym_w, top - sym_h, bottom - sym_h), value=value
    )
    return padded, (sym_h, sym_w)


def drop_end_padding_windows(
    y: Tensor, size: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> Tensor:
    """Keeps the windows that start inside the input or its begin padding (torch saw the
    explicitly padded end excess as input and may keep one more in ceil mode)."""
    keep = [
        sum(1 for i in range(y.shape[2 + a]) if i * stride[a] < size[a] + padding[a])
        for a in range(2)
    ]
    return y[:, :, : keep[0], : keep[1]]


@_rule(nn.MaxPool2dOp)
def _max_pool2d(op: nn.MaxPool2dOp, x: Tensor) -> Tensor:
    padding, stride = _ints(op.padding), _ints(op.stride)
    padded, sym = pre_pad(x, padding, -math.inf)
    y = F.max_pool2d(
        padded,
        _ints(op.kernel),
        stride,
        sym,
        _ints(op.dilation),
        ceil_mode=op.ceil_mode is not None,
    )
    return drop_end_padding_windows(y, x.shape[2:], stride, padding)


@_rule(nn.AvgPool2dOp)
def _avg_pool2d(op: nn.AvgPool2dOp, x: Tensor) -> Tensor:
    padding, stride = _ints(op.padding), _ints(op.stride)
    count_include_pad = op.count_include_pad is not None
    pool = {
        "kernel_size": _ints(op.kernel),
        "stride": stride,
        "ceil_mode": op.ceil_mode is not None,
    }
    if padding[:2] == padding[2:]:
        y = F.avg_pool2d(
            x, padding=padding[:2], count_include_pad=count_include_pad, **pool
        )
    elif count_include_pad:
        # The explicit zeros count in the divisor as torch's own padding does.
        padded, sym = pre_pad(x, padding, 0.0)
        y = F.avg_pool2d(padded, padding=sym, count_include_pad=True, **pool)
    else:
        # Window sums over the number of input positions in each window.
        padded, sym = pre_pad(x, padding, 0.0)
        sums = F.avg_pool2d(padded, padding=sym, divisor_override=1, **pool)
        ones, _ = pre_pad(torch.ones_like(x[:1, :1]), padding, 0.0)
        counts = F.avg_pool2d(ones, padding=sym, divisor_override=1, **pool)
        y = sums / counts
    return drop_end_padding_windows(y, x.shape[2:], stride, padding)


@_rule(nn.GlobalAvgPoolOp)
def _global_avg_pool(op: nn.GlobalAvgPoolOp, x: Tensor) -> Tensor:
    if x.ndim == 4:
        return F.adaptive_avg_pool2d(x, 1)
    return torch.mean(x, dim=tuple(range(2, x.ndim)), keepdim=True)


# --------------------------------------------------------------------------------------
# Shape ops and reductions
# --------------------------------------------------------------------------------------


@_rule(nn.ReshapeOp)
def _reshape(op: nn.ReshapeOp, x: Tensor) -> Tensor:
    return torch.reshape(x, _shape(op.result))


@_rule(nn.BroadcastToOp)
def _broadcast_to(op: nn.BroadcastToOp, x: Tensor) -> Tensor:
    return torch.broadcast_to(x, _shape(op.result))


@_rule(nn.PadOp)
def _pad(op: nn.PadOp, x: Tensor) -> Tensor:
    """`F.pad` takes (before, after) pairs from the last axis backwards."""
    pads, rank = _ints(op.pads), x.ndim
    pairs = [p for a in reversed(range(rank)) for p in (pads[a], pads[rank + a])]
    return F.pad(x, pairs, value=op.value.value.data)


@_rule(nn.TransposeOp)
def _transpose(op: nn.TransposeOp, x: Tensor) -> Tensor:
    return torch.permute(x, _ints(op.perm))


@_rule(nn.ConcatOp)
def _concat(op: nn.ConcatOp, *xs: Tensor) -> Tensor:
    return torch.cat(xs, dim=op.axis.value.data)


@_rule(nn.SliceOp)
def _slice(op: nn.SliceOp, x: Tensor) -> Tensor:
    for axis, (start, end, step) in enumerate(
        zip(_ints(op.starts), _ints(op.ends), _ints(op.steps), strict=True)
    ):
        x = x.index_select(axis, torch.arange(start, end, step))
    return x


@_rule(nn.GatherOp)
def _gather(op: nn.GatherOp, x: Tensor) -> Tensor:
    indices = torch.tensor(_ints(op.indices), dtype=torch.int64)
    return torch.index_select(x, op.axis.value.data, indices)


@_rule(nn.SqueezeOp)
def _squeeze(op: nn.SqueezeOp, x: Tensor) -> Tensor:
    return torch.squeeze(x, dim=_ints(op.axes))


@_rule(nn.UnsqueezeOp)
def _unsqueeze(op: nn.UnsqueezeOp, x: Tensor) -> Tensor:
    rank = x.ndim + len(_ints(op.axes))
    for axis in sorted(a % rank for a in _ints(op.axes)):
        x = torch.unsqueeze(x, axis)
    return x


@_rule(nn.ReduceSumOp)
def _reduce_sum(op: nn.ReduceSumOp, x: Tensor) -> Tensor:
    return torch.sum(x, dim=_ints(op.axes), keepdim=op.keepdims is not None)


@_rule(nn.ReduceMeanOp)
def _reduce_mean(op: nn.ReduceMeanOp, x: Tensor) -> Tensor:
    return torch.mean(x, dim=_ints(op.axes), keepdim=op.keepdims is not None)


# --------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------


def _function(module: ModuleOp, name: str) -> func.FuncOp:
    for op in module.ops:
        if isinstance(op, func.FuncOp) and op.sym_name.data == name:
            return op
    raise KeyError(f"the module has no function @{name}")


def _tensor(array: np.ndarray, dtype: torch.dtype) -> Tensor:
    t = torch.from_numpy(np.array(array))
    return t.to(dtype) if t.is_floating_point() else t


class TorchModel:
    """`@function` of `module` as a torch computation over leaf parameter tensors.

    `params` gives parameter values by name (default: each `nn.param`'s inline value);
    `trainable` names the parameters that require grad (default: those marked
    `trainable` in the module). Floating-point values compute in `dtype`.
    """

    def __init__(
        self,
        module: ModuleOp,
        params: Mapping[str, np.ndarray] | None = None,
        trainable: Iterable[str] | None = None,
        function: str = "forward",
        dtype: torch.dtype = torch.float64,
    ):
        self.function = _function(module, function)
        self.dtype = dtype
        declared = {o.sym_name.data: o for o in module.ops if isinstance(o, nn.ParamOp)}
        if trainable is None:
            trainable = {name for name, o in declared.items() if o.is_trainable}
        self.trainable = set(trainable)
        unknown = self.trainable - set(declared)
        assert not unknown, f"trainable names unknown parameters: {sorted(unknown)}"
        values = dict(params or {})
        self.params: dict[str, Tensor] = {}
        for name, op in declared.items():
            value = values[name] if name in values else to_numpy(op.value)
            tensor = _tensor(value, dtype)
            self.params[name] = tensor.requires_grad_(name in self.trainable)

    def trainable_params(self) -> dict[str, Tensor]:
        return {n: t for n, t in self.params.items() if n in self.trainable}

    def __call__(self, *inputs: np.ndarray | Tensor) -> tuple[Tensor, ...]:
        block = self.function.body.block
        assert len(inputs) == len(block.args), (
            f"@{self.function.sym_name.data} takes {len(block.args)} inputs, got "
            f"{len(inputs)}"
        )
        env: dict[SSAValue, Tensor] = {
            arg: x if isinstance(x, Tensor) else _tensor(x, self.dtype)
            for arg, x in zip(block.args, inputs, strict=True)
        }
        for op in block.ops:
            if isinstance(op, func.ReturnOp):
                return tuple(env[v] for v in op.arguments)
            env[op.results[0]] = self.evaluate(op, [env[v] for v in op.operands])
        raise AssertionError("the function has no func.return")

    def evaluate(self, op: Operation, args: Sequence[Tensor]) -> Tensor:
        """One op: a torch tensor of the op's result shape."""
        if isinstance(op, nn.LoadOp):
            result = self.params[op.param.string_value()]
        elif isinstance(op, nn.ConstantOp):
            result = _tensor(to_numpy(op.value), self.dtype)
        else:
            rule = _RULES.get(type(op))
            if rule is None:
                raise NotImplementedError(
                    f"torch_reference: no torch form for {op.name}"
                )
            result = rule(op, *args)
        expected = _shape(op.results[0])
        assert tuple(result.shape) == expected, (
            f"{op.name}: torch gives shape {tuple(result.shape)}, the IR says "
            f"{expected}"
        )
        return result

    @staticmethod
    def loss(
        output: Tensor, labels: np.ndarray | Tensor, kind: str, reduction: str
    ) -> Tensor:
        """`F.cross_entropy` (integer labels) or `F.mse_loss` (a target of the output's
        shape), as the `autodiff` pass's `loss` / `reduction` options."""
        labels = (
            labels if isinstance(labels, Tensor) else torch.from_numpy(np.array(labels))
        )
        if kind == "cross-entropy":
            return F.cross_entropy(output, labels.long(), reduction=reduction)
        assert kind == "mse", kind
        return F.mse_loss(output, labels.to(output.dtype), reduction=reduction)

    def gradients(self, loss: Tensor) -> dict[str, np.ndarray]:
        """`d loss / d p` for every trainable parameter (zeros where the loss does not
        depend on it)."""
        names = sorted(self.trainable)
        grads = torch.autograd.grad(
            loss, [self.params[n] for n in names], allow_unused=True
        )
        return {
            n: (torch.zeros_like(self.params[n]) if g is None else g).detach().numpy()
            for n, g in zip(names, grads, strict=True)
        }

    def values(self) -> dict[str, np.ndarray]:
        return {n: t.detach().numpy().copy() for n, t in self.params.items()}


def supported_ops() -> set[type[Operation]]:
    """The `nn` ops this evaluator maps (besides `nn.load` and `nn.constant`)."""
    return set(_RULES) | {nn.LoadOp, nn.ConstantOp}
