"""FLOP counts of the graph-level and training ops.

The convention (exact integers, so reports are stable and comparable):

- a multiply-accumulate is 2 FLOPs (convolutions, linear layers, matrix products and their
  gradients);
- an element-wise op is 1 FLOP per output element, whatever the function (a `gelu` is 1,
  like an `add`), and an element-wise gradient 2 (the derivative and the product with
  `dy`): the `flops` and `grad_flops` of the op's row in `edge_opt.support.elementwise`;
- a reduction is 1 FLOP per input element; a max/average pool 1 per window element (plus 1
  per output for the average's division);
- softmax / log-softmax 5 per element (max, subtract, exp, sum, divide), layer / group norm
  and training-mode batch norm 7 per element, inference batch norm 4, and their input
  gradients 10 per element;
- `nn.attention` the sum of the primitive ops `lower-attention` writes for it: the
  four projections (and their bias adds), `q @ k^T`, the scaling, the softmax and
  `a @ v`;
- shape ops (including `nn.gather`, `nn.pad` and `train.scatter`, which only move
  data),
  constants, loads and stores are free;
- optimizers per parameter element: SGD 2 (+2 with weight decay), SGD with momentum 4
  (+2), Adam 12 (+2).

`flops(op)` raises `NotImplementedError` for an op it does not know: a report never
silently counts an unknown op as free.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from xdsl.dialects import func
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from edge_opt.dialects import nn, train
from edge_opt.dialects.base import PoolAttributes
from edge_opt.dialects.elementwise import BINARY_OPS, GRAD_OPS, UNARY_OPS


def numel(value: SSAValue) -> int:
    assert isinstance(value.type, TensorType)
    return math.prod(value.type.get_shape())


def _shape(value: SSAValue) -> tuple[int, ...]:
    assert isinstance(value.type, TensorType)
    return value.type.get_shape()


def _per_output(factor: int) -> Callable[[Operation], int]:
    return lambda op: factor * numel(op.results[0])


def _per_input(factor: int) -> Callable[[Operation], int]:
    return lambda op: factor * numel(op.operands[0])


def _free(op: Operation) -> int:
    return 0


def _conv_macs(output: SSAValue, weight_shape: tuple[int, ...]) -> int:
    """MACs of a convolution producing `output` with an OIHW-like weight whose last three
    dims are the per-output-channel window."""
    return numel(output) * math.prod(weight_shape[1:])


def _conv2d(op: nn.Conv2dOp) -> int:
    macs = _conv_macs(op.result, _shape(op.weight))
    return 2 * macs + (numel(op.result) if op.bias is not None else 0)


def _conv_transpose2d(op: nn.ConvTranspose2dOp) -> int:
    # Every input element meets every weight element of its group once.
    macs = numel(op.input) * math.prod(_shape(op.weight)[1:])
    return 2 * macs + (numel(op.result) if op.bias is not None else 0)


def _linear(op: nn.LinearOp) -> int:
    in_features = _shape(op.weight)[1]
    return 2 * numel(op.result) * in_features + (
        numel(op.result) if op.bias is not None else 0
    )


def _matmul(op: nn.MatmulOp) -> int:
    lhs = _shape(op.lhs)
    k = lhs[-2] if op.transpose_lhs is not None else lhs[-1]
    return 2 * numel(op.result) * k


def _attention(op: nn.AttentionOp) -> int:
    batch, tokens, features = _shape(op.x)
    heads = op.heads.value.data
    dk, dv = op.head_sizes
    out = _shape(op.wo)[1]
    rows = batch * tokens
    projections = 2 * rows * features * heads * (2 * dk + dv) + 2 * rows * heads * dv * out
    biases = rows * (heads * (2 * dk + dv) + out) if op.biases is not None else 0
    scores = batch * heads * tokens * tokens
    # q @ k^T, the scaling, the softmax, a @ v
    return projections + biases + scores * (2 * dk + 1 + 5 + 2 * dv)


def _pool(op: PoolAttributes) -> int:
    window = math.prod(op.kernel.get_values())
    out = numel(op.results[0])
    return out * window + (out if isinstance(op, nn.AvgPool2dOp) else 0)


def _pool_grad(op: PoolAttributes) -> int:
    return numel(op.operands[0]) * math.prod(op.kernel.get_values())


def _batch_norm(op: nn.BatchNormOp) -> int:
    return (7 if op.training is not None else 4) * numel(op.result)


def _conv2d_grad_input(op: train.Conv2dGradInputOp) -> int:
    return 2 * _conv_macs(op.grad, _shape(op.weight))


def _conv2d_grad_weight(op: train.Conv2dGradWeightOp) -> int:
    return 2 * _conv_macs(op.grad, _shape(op.result))


def _conv_transpose2d_grad_input(op: train.ConvTranspose2dGradInputOp) -> int:
    # The same products as the forward: every input element with its weight group.
    return 2 * numel(op.result) * math.prod(_shape(op.weight)[1:])


def _conv_transpose2d_grad_weight(op: train.ConvTranspose2dGradWeightOp) -> int:
    return 2 * numel(op.input) * math.prod(_shape(op.result)[1:])


def _linear_grad(op: train.LinearGradInputOp | train.LinearGradWeightOp) -> int:
    dy = _shape(op.grad)
    rows = math.prod(dy[:-1])
    if isinstance(op, train.LinearGradInputOp):
        return 2 * rows * dy[-1] * _shape(op.weight)[1]
    return 2 * rows * dy[-1] * _shape(op.input)[-1]


def _optimizer(per_element: int) -> Callable[[Operation], int]:
    def count(op: Operation) -> int:
        decay = 2 if op.weight_decay.value.data else 0  # type: ignore[attr-defined]
        return (per_element + decay) * numel(op.operands[0])

    return count


def _grad_weight_sgd(op: train.LinearGradWeightSgdOp | train.Conv2dGradWeightSgdOp) -> int:
    """The fused update costs what its grad-weight op and `train.sgd` cost."""
    rows = math.prod(_shape(op.grad)[:-1])
    if isinstance(op, train.LinearGradWeightSgdOp):
        gradient = 2 * rows * _shape(op.grad)[-1] * _shape(op.input)[-1]
    else:
        gradient = 2 * _conv_macs(op.grad, _shape(op.weight))
    decay = 2 if op.weight_decay.value.data else 0
    return gradient + (2 + decay) * numel(op.weight)


FLOPS: dict[type[Operation], Callable[[Operation], int]] = {
    # nn
    nn.ParamOp: _free,
    nn.LoadOp: _free,
    nn.ConstantOp: _free,
    **{op: _per_output(op.ROW.flops) for op in (*UNARY_OPS, *BINARY_OPS)},
    nn.LinearOp: _linear,
    nn.MatmulOp: _matmul,
    nn.Conv2dOp: _conv2d,
    nn.ConvTranspose2dOp: _conv_transpose2d,
    nn.SoftmaxOp: _per_output(5),
    nn.LogSoftmaxOp: _per_output(5),
    nn.LayerNormOp: _per_output(7),
    nn.BatchNormOp: _batch_norm,
    nn.GroupNormOp: _per_output(7),
    nn.AttentionOp: _attention,
    nn.MaxPool2dOp: _pool,
    nn.AvgPool2dOp: _pool,
    nn.GlobalAvgPoolOp: _per_input(1),
    nn.ReshapeOp: _free,
    nn.BroadcastToOp: _free,
    nn.PadOp: _free,
    nn.TransposeOp: _free,
    nn.ConcatOp: _free,
    nn.SliceOp: _free,
    nn.GatherOp: _free,
    nn.SqueezeOp: _free,
    nn.UnsqueezeOp: _free,
    nn.ReduceMeanOp: _per_input(1),
    nn.ReduceSumOp: _per_input(1),
    # train
    train.StoreOp: _free,
    train.CrossEntropyOp: _per_input(5),
    train.CrossEntropyGradOp: _per_output(5),
    train.MseOp: _per_input(3),
    train.MseGradOp: _per_output(2),
    **{op: _per_output(op.ROW.grad_flops) for op in GRAD_OPS},
    train.SoftmaxGradOp: _per_output(4),
    train.LogSoftmaxGradOp: _per_output(4),
    train.LayerNormGradInputOp: _per_output(10),
    train.LayerNormGradScaleOp: _per_input(2),
    train.BatchNormGradInputOp: _per_output(10),
    train.BatchNormGradScaleOp: _per_input(2),
    train.GroupNormGradInputOp: _per_output(10),
    train.GroupNormGradScaleOp: _per_input(2),
    train.LinearGradInputOp: _linear_grad,
    train.LinearGradWeightOp: _linear_grad,
    train.Conv2dGradInputOp: _conv2d_grad_input,
    train.Conv2dGradWeightOp: _conv2d_grad_weight,
    train.ConvTranspose2dGradInputOp: _conv_transpose2d_grad_input,
    train.ConvTranspose2dGradWeightOp: _conv_transpose2d_grad_weight,
    train.MaxPool2dWithIndicesOp: _pool,
    train.MaxPool2dGradOp: _pool_grad,
    train.AvgPool2dGradOp: _pool_grad,
    train.SliceGradOp: _free,
    train.ScatterOp: _free,
    train.SgdOp: _optimizer(2),
    train.LinearGradWeightSgdOp: _grad_weight_sgd,
    train.Conv2dGradWeightSgdOp: _grad_weight_sgd,
    train.SgdMomentumOp: _optimizer(4),
    train.AdamOp: _optimizer(12),
    # upstream
    func.ReturnOp: _free,
}


def flops(op: Operation) -> int:
    """FLOPs of one op under the module's convention."""
    count = FLOPS.get(type(op))
    if count is None:
        raise NotImplementedError(f"no FLOP count for {op.name}")
    return count(op)
