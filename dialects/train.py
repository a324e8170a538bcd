"""The `train` dialect: losses, gradients, optimizer updates and parameter stores.

Still at the tensor level, next to `nn`. The `autodiff` pass builds `@train_step` from
`@forward` with these ops; their semantics (what `edge_opt.ir.interpreters.train` runs)
are those of PyTorch's autograd for the matching `nn` op and of `torch.optim` for the
optimizers. Every gradient op is the derivative of one `nn` op with respect to one
operand; the value it reads from the forward pass is the one that op needs and no more
(a max-pool's backward reads the index mask, not the input).

`train.store` is the only side effect at the tensor levels: it assigns a value to an
`nn.param`. Optimizer state (momentum, Adam moments, the step counter) are parameters
too.

This module holds the stores, losses and optimizers, and the dialect; the gradient ops
are declared with their forward ops, by family, in
`edge_opt.dialects.{elementwise,linalg,norm,pool,shape}`, and are importable from here as
`train.<Name>Op`.
"""

from __future__ import annotations

from abc import ABC
from typing import ClassVar, Literal

from xdsl.dialects.builtin import (
    FloatAttr,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
)
from xdsl.ir import Dialect, Operation, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.traits import MemoryWriteEffect, Pure, SymbolUserOpInterface

from edge_opt.dialects import elementwise
from edge_opt.dialects.base import (
    FloatTensor,
    IntTensor,
    TrainOperation,
    flag,
    float_,
    like,
    shape_of,
)
from edge_opt.dialects.elementwise import ElementwiseGradOp
from edge_opt.dialects.linalg import (
    Conv2dGradInputOp,
    Conv2dGradWeightOp,
    ConvTranspose2dGradInputOp,
    ConvTranspose2dGradWeightOp,
    LinearGradInputOp,
    LinearGradWeightOp,
)
from edge_opt.dialects.nn import resolve_param
from edge_opt.dialects.norm import (
    BatchNormGradInputOp,
    BatchNormGradScaleOp,
    GroupNormGradInputOp,
    GroupNormGradScaleOp,
    LayerNormGradInputOp,
    LayerNormGradScaleOp,
    LogSoftmaxGradOp,
    SoftmaxGradOp,
)
from edge_opt.dialects.pool import (
    MAX_POOL_WINDOW,
    AvgPool2dGradOp,
    MaxPool2dGradOp,
    MaxPool2dWithIndicesOp,
    PoolAttributes,
    ui8,
)
from edge_opt.dialects.shape import ScatterOp, SliceGradOp
from edge_opt.support.shapes import ShapeError

Reduction = Literal["mean", "sum"]

STATE_ATTR = "train.state"
"""Discardable attribute of an optimizer-state `nn.param`: which state it is (`momentum`,
`exp_avg`, `exp_avg_sq`, `step`)."""
STATE_OF_ATTR = "train.state_of"
"""Discardable attribute of an optimizer-state `nn.param`: the parameter it belongs to."""

CHANNELS_ATTR = "train.channels"
"""Discardable attribute of a trainable `nn.param` (`array<i64: ...>`, sorted, unique):
the only channels (indices along `train.channel_axis`) that training updates; the
`autodiff` pass computes the gradient for those alone and scatters their update back.
Set by `sparse-update`'s channel-level selection."""
CHANNEL_AXIS_ATTR = "train.channel_axis"
"""Discardable attribute next to `train.channels` (`i64`): the parameter axis the
channels index (0, the output channels of a linear or convolution weight and bias)."""


def is_optimizer_state(param: Operation) -> bool:
    return STATE_ATTR in param.attributes


# --------------------------------------------------------------------------------------
# Parameter stores
# --------------------------------------------------------------------------------------


class _StoreSymbolUse(SymbolUserOpInterface):
    def verify(self, op: Operation) -> None:
        assert isinstance(op, StoreOp)
        resolve_param(op, op.param, op.value.type)


@irdl_op_definition
class StoreOp(IRDLOperation):
    """Assigns `value` to parameter `@param`; later `nn.load`s of it read `value`.

        train.store %w_new, @fc_weight : tensor<10x128xf32>
    """

    name = "train.store"

    value = operand_def(TensorType)
    param = prop_def(SymbolRefAttr)

    traits = traits_def(MemoryWriteEffect(), _StoreSymbolUse())
    assembly_format = "$value `,` $param attr-dict `:` type($value)"

    def __init__(self, value: SSAValue | Operation, param: str | SymbolRefAttr):
        if isinstance(param, str):
            param = SymbolRefAttr(param)
        super().__init__(operands=[value], properties={"param": param})



# --------------------------------------------------------------------------------------
# Losses: `reduction` is "mean" (default) or "sum"
# --------------------------------------------------------------------------------------


class _LossOp(TrainOperation, ABC):
    CHOICES: ClassVar = {"reduction": Reduction}
    reduction = prop_def(StringAttr, default_value=StringAttr("mean"))
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)

    def _build(self, operands, result_type, reduction: Reduction) -> None:
        super().__init__(
            operands=operands, result_types=[result_type],
            properties={"reduction": StringAttr(reduction)},
        )


class _CrossEntropyLayout(_LossOp, ABC):
    """Logits (N, C) and integer class labels (N,)."""

    INDEX_VALUES: ClassVar = ("labels",)
    logits = operand_def(FloatTensor)
    labels = operand_def(IntTensor)

    assembly_format = (
        "$logits `,` $labels attr-dict `:` functional-type(operands, results)"
    )

    def _check_logits(self) -> tuple[int, ...]:
        logits = shape_of(self.logits)
        if len(logits) != 2:
            raise ShapeError(f"logits must have rank 2 (N, C), got {list(logits)}")
        self.expect("labels", shape_of(self.labels), logits[:1])
        return logits


@irdl_op_definition
class CrossEntropyOp(_CrossEntropyLayout):
    """Softmax cross-entropy of logits (N, C) against integer class labels (N,):
    `-log_softmax(logits)[n, labels[n]]`, averaged (`mean`, default) or summed over the
    batch; a rank-0 result. As `torch.nn.functional.cross_entropy`."""

    name = "train.cross_entropy"

    loss = result_def(FloatTensor)

    def __init__(self, logits: SSAValue | Operation, labels: SSAValue | Operation,
                 reduction: Reduction = "mean"):
        self._build([logits, labels], like(logits, ()), reduction)

    def check(self) -> None:
        self._check_logits()
        self.expect("the loss", shape_of(self.loss), ())


@irdl_op_definition
class CrossEntropyGradOp(_CrossEntropyLayout):
    """Gradient of `train.cross_entropy` w.r.t. the logits (seed 1):
    `(softmax(logits) - onehot(labels)) / N` (`mean`) or without `/ N` (`sum`)."""

    name = "train.cross_entropy_grad"

    result = result_def(FloatTensor)

    def __init__(self, logits: SSAValue | Operation, labels: SSAValue | Operation,
                 reduction: Reduction = "mean"):
        self._build([logits, labels], SSAValue.get(logits).type, reduction)

    def check(self) -> None:
        self.expect("the result", shape_of(self.result), self._check_logits())


class _MseLayout(_LossOp, ABC):
    T: ClassVar = VarConstraint("T", FloatTensor)
    prediction = operand_def(T)
    target = operand_def(T)


@irdl_op_definition
class MseOp(_MseLayout):
    """Mean (`mean`, default) or sum (`sum`) of `(prediction - target)**2` over every
    element; a rank-0 result. As `torch.nn.functional.mse_loss`."""

    name = "train.mse"

    loss = result_def(FloatTensor)

    assembly_format = (
        "$prediction `,` $target attr-dict `:` type($prediction) `->` type($loss)"
    )

    def __init__(self, prediction: SSAValue | Operation, target: SSAValue | Operation,
                 reduction: Reduction = "mean"):
        self._build([prediction, target], like(prediction, ()), reduction)

    def check(self) -> None:
        self.expect("the loss", shape_of(self.loss), ())


@irdl_op_definition
class MseGradOp(_MseLayout):
    """Gradient of `train.mse` w.r.t. the prediction (seed 1):
    `2 * (prediction - target) / numel` (`mean`) or `2 * (prediction - target)`."""

    name = "train.mse_grad"

    result = result_def(_MseLayout.T)

    assembly_format = "$prediction `,` $target attr-dict `:` type($prediction)"

    def __init__(self, prediction: SSAValue | Operation, target: SSAValue | Operation,
                 reduction: Reduction = "mean"):
        self._build([prediction, target], SSAValue.get(prediction).type, reduction)


# --------------------------------------------------------------------------------------
# Optimizers (torch.optim semantics); results are the new values, stored by train.store
# --------------------------------------------------------------------------------------


class _OptimizerOp(TrainOperation, ABC):
    T: ClassVar = VarConstraint("T", FloatTensor)
    lr = prop_def(FloatAttr)
    weight_decay = prop_def(FloatAttr, default_value=float_(0.0))
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)


@irdl_op_definition
class SgdOp(_OptimizerOp):
    """Plain SGD: `param - lr * (grad + weight_decay * param)`."""

    name = "train.sgd"

    param = operand_def(_OptimizerOp.T)
    grad = operand_def(_OptimizerOp.T)
    new_param = result_def(_OptimizerOp.T)

    assembly_format = "$param `,` $grad attr-dict `:` type($param)"

    def __init__(self, param, grad, lr: float, weight_decay: float = 0.0):
        super().__init__(
            operands=[param, grad],
            result_types=[SSAValue.get(param).type],
            properties={"lr": float_(lr), "weight_decay": float_(weight_decay)},
        )


@irdl_op_definition
class SgdMomentumOp(_OptimizerOp):
    """SGD with momentum, as `torch.optim.SGD` (no dampening), with the buffer a
    parameter initialised to zero: `g = grad + weight_decay * param`;
    `buf' = momentum * buf + g`; `param' = param - lr * (g + momentum * buf' if nesterov
    else buf')`. (PyTorch starts from `buf = g`, which is the same thing.)"""

    name = "train.sgd_momentum"

    param = operand_def(_OptimizerOp.T)
    grad = operand_def(_OptimizerOp.T)
    momentum_buffer = operand_def(_OptimizerOp.T)
    new_param = result_def(_OptimizerOp.T)
    new_momentum_buffer = result_def(_OptimizerOp.T)
    momentum = prop_def(FloatAttr)
    nesterov = opt_prop_def(UnitAttr)

    assembly_format = "$param `,` $grad `,` $momentum_buffer attr-dict `:` type($param)"

    def __init__(self, param, grad, buffer, lr: float, momentum: float,
                 weight_decay: float = 0.0, nesterov: bool = False):
        type = SSAValue.get(param).type
        super().__init__(
            operands=[param, grad, buffer],
            result_types=[type, type],
            properties={
                "lr": float_(lr),
                "momentum": float_(momentum),
                "weight_decay": float_(weight_decay),
                "nesterov": flag(nesterov),
            },
        )


@irdl_op_definition
class AdamOp(_OptimizerOp):
    """Adam, as `torch.optim.Adam` (L2 weight decay added to the gradient):
    `m' = b1 m + (1-b1) g`, `v' = b2 v + (1-b2) g^2`,
    `param' = param - lr * (m' / (1 - b1^t)) / (sqrt(v' / (1 - b2^t)) + eps)` where `t`
    (rank-0 `step`) is the 1-based number of this step."""

    name = "train.adam"

    param = operand_def(_OptimizerOp.T)
    grad = operand_def(_OptimizerOp.T)
    exp_avg = operand_def(_OptimizerOp.T)
    exp_avg_sq = operand_def(_OptimizerOp.T)
    step = operand_def(FloatTensor)
    new_param = result_def(_OptimizerOp.T)
    new_exp_avg = result_def(_OptimizerOp.T)
    new_exp_avg_sq = result_def(_OptimizerOp.T)
    beta1 = prop_def(FloatAttr, default_value=float_(0.9))
    beta2 = prop_def(FloatAttr, default_value=float_(0.999))
    epsilon = prop_def(FloatAttr, default_value=float_(1e-8))
    INDEX_VALUES: ClassVar = ("step",)

    assembly_format = (
        "$param `,` $grad `,` $exp_avg `,` $exp_avg_sq `,` $step attr-dict `:` "
        "type($param) `,` type($step)"
    )

    def __init__(self, param, grad, exp_avg, exp_avg_sq, step, lr: float,
                 beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                 weight_decay: float = 0.0):
        type = SSAValue.get(param).type
        super().__init__(
            operands=[param, grad, exp_avg, exp_avg_sq, step],
            result_types=[type, type, type],
            properties={
                "lr": float_(lr),
                "beta1": float_(beta1),
                "beta2": float_(beta2),
                "epsilon": float_(epsilon),
                "weight_decay": float_(weight_decay),
            },
        )

    def check(self) -> None:
        self.expect("step", shape_of(self.step), ())

globals().update({op.__name__: op for op in elementwise.GRAD_OPS})

TRAIN = Dialect(
    "train",
    [
        StoreOp,
        CrossEntropyOp,
        CrossEntropyGradOp,
        MseOp,
        MseGradOp,
        *elementwise.GRAD_OPS,
        SoftmaxGradOp,
        LogSoftmaxGradOp,
        LayerNormGradInputOp,
        LayerNormGradScaleOp,
        BatchNormGradInputOp,
        BatchNormGradScaleOp,
        GroupNormGradInputOp,
        GroupNormGradScaleOp,
        LinearGradInputOp,
        LinearGradWeightOp,
        Conv2dGradInputOp,
        Conv2dGradWeightOp,
        ConvTranspose2dGradInputOp,
        ConvTranspose2dGradWeightOp,
        MaxPool2dWithIndicesOp,
        MaxPool2dGradOp,
        AvgPool2dGradOp,
        SliceGradOp,
        ScatterOp,
        SgdOp,
        SgdMomentumOp,
        AdamOp,
    ],
    [],
)

__all__ = [
    "TRAIN", "TrainOperation", "ElementwiseGradOp", "PoolAttributes", "MAX_POOL_WINDOW",
    "ui8", "Reduction", "STATE_ATTR", "STATE_OF_ATTR", "CHANNELS_ATTR", "CHANNEL_AXIS_ATTR",
    "is_optimizer_state", *(op.__name__ for op in TRAIN.operations),
]
