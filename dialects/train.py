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

Sections: parameter stores, losses, optimizers, and the gradient ops by family (linear
algebra, normalizations and softmax, pooling, shape); each gradient op takes its forward
op's attribute block from `edge_opt.dialects.base`. The element-wise gradient ops are
built from the table `edge_opt.support.elementwise` (`edge_opt.dialects.elementwise`) and
importable from here as `train.<Name>GradOp`.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Sequence
from typing import ClassVar, Literal

from xdsl.dialects.builtin import (
    I64,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
)
from xdsl.ir import Dialect, Operation, SSAValue
from xdsl.irdl import (
    BaseAttr,
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
    MAX_POOL_WINDOW,
    AvgPoolAttributes,
    AxisAttribute,
    BatchNormAttributes,
    ConvAttributes,
    ConvTransposeAttributes,
    FloatTensor,
    GroupNormAttributes,
    IndexAttributes,
    IntTensor,
    LayerNormAttributes,
    MaxPoolAttributes,
    ParamRefOp,
    PoolAttributes,
    SavedGradOp,
    SliceAttributes,
    TrainOperation,
    check_channels,
    conv_properties,
    flag,
    float_,
    int_,
    like,
    pool_properties,
    pooled_type,
    shape_of,
    ui8,
)
from edge_opt.dialects.elementwise import ElementwiseGradOp
from edge_opt.dialects.nn import resolve_param
from edge_opt.support import shapes
from edge_opt.support.shapes import ShapeError

Reduction = Literal["mean", "sum"]

STATE_ATTR = "train.state"
"""Discardable attribute of an optimizer-state `nn.param`: which state it is (`momentum`,
`exp_avg`, `exp_avg_sq`, `step`)."""
STATE_OF_ATTR = "train.state_of"
"""Discardable attribute of an optimizer-state `nn.param`: the parameter it belongs to."""

SWEEP_ATTR = "train.sweep"
"""Discardable attribute of an input `nn.slice` of a training step with exact batch
statistics under accumulation (`edge_opt.autodiff.batch_statistics`): the number of the
sweep over the micro-batches it starts a micro-batch of (`i64`). Distinct per sweep, so
`cse` keeps the sweeps apart."""
MICRO_BATCH_ATTR = "train.micro_batch"
"""Discardable attribute of such a slice: the index of its micro-batch (`i64`)."""

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
class StoreOp(ParamRefOp):
    """Assigns `value` to parameter `@param`; later `nn.load`s of it read `value`.

        train.store %w_new, @fc_weight : tensor<10x128xf32>
    """

    name = "train.store"

    value = operand_def(TensorType)

    traits = traits_def(MemoryWriteEffect(), _StoreSymbolUse())
    assembly_format = "$value `,` $param attr-dict `:` type($value)"

    def __init__(self, value: SSAValue | Operation, param: str | SymbolRefAttr):
        super().__init__(operands=[value], properties={"param": self.symbol(param)})


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

# --------------------------------------------------------------------------------------
# Linear algebra: linear, matmul, convolutions
# --------------------------------------------------------------------------------------


class _WeightedGradOp(TrainOperation, ABC):
    """A gradient of a layer with a weight, from `dy` and one forward operand: `dy` must
    have the shape the forward op gives for the forward input and weight."""

    traits = traits_def(Pure())

    def forward_shape(self, input: Sequence[int], weight: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError

    def forward_operand_shapes(self) -> tuple[Sequence[int], Sequence[int]]:
        """The shapes of the forward op's input and weight."""
        raise NotImplementedError

    def check(self) -> None:
        self.expect(
            "the output gradient",
            shape_of(self.grad),  # type: ignore[attr-defined]
            self.forward_shape(*self.forward_operand_shapes()),
        )


class _GradInputOp(_WeightedGradOp, ABC):
    """The gradient w.r.t. the forward op's input, from `dy` and the weight; the result
    type is the forward input's."""

    grad = operand_def(FloatTensor)
    weight = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    assembly_format = "$grad `,` $weight attr-dict `:` functional-type(operands, results)"

    def forward_operand_shapes(self) -> tuple[Sequence[int], Sequence[int]]:
        return shape_of(self.result), shape_of(self.weight)


class _GradWeightOp(_WeightedGradOp, ABC):
    """The gradient w.r.t. the forward op's weight, from `dy` and the input; the result
    type is the weight's."""

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    assembly_format = "$grad `,` $input attr-dict `:` functional-type(operands, results)"

    def forward_operand_shapes(self) -> tuple[Sequence[int], Sequence[int]]:
        return shape_of(self.input), shape_of(self.result)


class _LinearShape:
    def forward_shape(self, input: Sequence[int], weight: Sequence[int]) -> tuple[int, ...]:
        return shapes.linear(input, weight)


@irdl_op_definition
class LinearGradInputOp(_LinearShape, _GradInputOp):
    """Gradient of `nn.linear` w.r.t. its input: `dy @ weight`, (..., out) -> (..., in)."""

    name = "train.linear_grad_input"

    def __init__(self, grad, weight):
        dy, w = shape_of(grad), shape_of(weight)
        super().__init__(operands=[grad, weight], result_types=[like(grad, (*dy[:-1], w[1]))])


@irdl_op_definition
class LinearGradWeightOp(_LinearShape, _GradWeightOp):
    """Gradient of `nn.linear` w.r.t. its weight: `dy^T @ x` summed over all leading
    axes, (..., out) and (..., in) -> (out, in)."""

    name = "train.linear_grad_weight"

    def __init__(self, grad, input):
        super().__init__(
            operands=[grad, input],
            result_types=[like(grad, (shape_of(grad)[-1], shape_of(input)[-1]))],
        )


class _ConvGradInputOp(_GradInputOp, ABC):
    def __init__(self, grad, weight, input_type: TensorType, **conv_attrs: object):
        super().__init__(
            operands=[grad, weight], result_types=[input_type],
            properties=conv_properties(conv_attrs),
        )


class _ConvGradWeightOp(_GradWeightOp, ABC):
    def __init__(self, grad, input, weight_type: TensorType, **conv_attrs: object):
        super().__init__(
            operands=[grad, input], result_types=[weight_type],
            properties=conv_properties(conv_attrs),
        )


@irdl_op_definition
class Conv2dGradInputOp(ConvAttributes, _ConvGradInputOp):
    """Gradient of `nn.conv2d` w.r.t. its input (a transposed convolution of `dy` with
    the weight); the result type is the forward input's."""

    name = "train.conv2d_grad_input"


@irdl_op_definition
class Conv2dGradWeightOp(ConvAttributes, _ConvGradWeightOp):
    """Gradient of `nn.conv2d` w.r.t. its weight (correlation of the input with `dy`);
    the result type is the weight's."""

    name = "train.conv2d_grad_weight"


@irdl_op_definition
class ConvTranspose2dGradInputOp(ConvTransposeAttributes, _ConvGradInputOp):
    """Gradient of `nn.conv_transpose2d` w.r.t. its input (a convolution of `dy` with
    the weight); the result type is the forward input's."""

    name = "train.conv_transpose2d_grad_input"


@irdl_op_definition
class ConvTranspose2dGradWeightOp(ConvTransposeAttributes, _ConvGradWeightOp):
    """Gradient of `nn.conv_transpose2d` w.r.t. its weight; the result type is the
    weight's."""

    name = "train.conv_transpose2d_grad_weight"


class _GradWeightSgdOp(_WeightedGradOp, ABC):
    """A weight gradient and its plain-SGD update in one op (`fuse-weight-updates`):
    `weight - lr * (grad_weight(dy, input) + weight_decay * weight)`, the numbers of the
    grad-weight op followed by `train.sgd`. The result is the new weight (type of
    `weight`). `chunk_rows` (output rows of the weight, >= 1) is how many rows of the
    gradient the kernel computes at a time into its workspace (a buffer-level detail:
    it does not change the result)."""

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    weight = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    lr = prop_def(FloatAttr)
    weight_decay = prop_def(FloatAttr, default_value=float_(0.0))
    chunk_rows = prop_def(IntegerAttr[I64], default_value=int_(1))

    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$grad `,` $input `,` $weight attr-dict `:` functional-type(operands, results)"
    )

    def forward_operand_shapes(self) -> tuple[Sequence[int], Sequence[int]]:
        return shape_of(self.input), shape_of(self.weight)

    def check(self) -> None:
        super().check()
        self.expect("the result", shape_of(self.result), shape_of(self.weight))
        rows = self.chunk_rows.value.data
        if not 1 <= rows <= shape_of(self.weight)[0]:
            raise ShapeError(
                f"chunk_rows = {rows} is outside [1, {shape_of(self.weight)[0]}] (the "
                "weight's rows)"
            )


@irdl_op_definition
class LinearGradWeightSgdOp(_LinearShape, _GradWeightSgdOp):
    """`train.linear_grad_weight` then `train.sgd` of the weight, fused."""

    name = "train.linear_grad_weight_sgd"

    def __init__(self, grad, input, weight, lr: float, weight_decay: float = 0.0,
                 chunk_rows: int = 1):
        super().__init__(
            operands=[grad, input, weight],
            result_types=[SSAValue.get(weight).type],
            properties={"lr": float_(lr), "weight_decay": float_(weight_decay),
                        "chunk_rows": int_(chunk_rows)},
        )


@irdl_op_definition
class Conv2dGradWeightSgdOp(ConvAttributes, _GradWeightSgdOp):
    """`train.conv2d_grad_weight` then `train.sgd` of the weight, fused (the conv
    attributes are the convolution's)."""

    name = "train.conv2d_grad_weight_sgd"

    def __init__(self, grad, input, weight, lr: float, weight_decay: float = 0.0,
                 chunk_rows: int = 1, **conv_attrs: object):
        super().__init__(
            operands=[grad, input, weight],
            result_types=[SSAValue.get(weight).type],
            properties={"lr": float_(lr), "weight_decay": float_(weight_decay),
                        "chunk_rows": int_(chunk_rows), **conv_properties(conv_attrs)},
        )


# --------------------------------------------------------------------------------------
# Normalizations and softmax
# --------------------------------------------------------------------------------------


class _AxisGradOp(AxisAttribute, SavedGradOp, ABC):
    def __init__(
        self, grad: SSAValue | Operation, saved: SSAValue | Operation, axis: int = -1
    ):
        super().__init__(grad, saved, {"axis": int_(axis)})

    def check(self) -> None:
        shapes.normalize_axis(self.axis.value.data, len(shape_of(self.grad)))


@irdl_op_definition
class SoftmaxGradOp(_AxisGradOp):
    """`y * (dy - sum(dy * y, axis))`, saved = the softmax's output `y`."""

    name = "train.softmax_grad"


@irdl_op_definition
class LogSoftmaxGradOp(_AxisGradOp):
    """`dy - exp(y) * sum(dy, axis)`, saved = the log-softmax's output `y`."""

    name = "train.log_softmax_grad"


class _NormGradOp(TrainOperation, ABC):
    """A gradient of a normalization, from `dy` and the forward input (statistics are
    recomputed from it). (Operands are declared by the subclasses, in order: xDSL
    orders a subclass's fields before the ones it inherits.)"""

    traits = traits_def(Pure())

    def _check_input(self, groups: int | None = None) -> tuple[int, ...]:
        x = shape_of(self.input)
        check_channels(x, groups)
        self.expect("the output gradient", shape_of(self.grad), x)
        return x


class _NormGradInputOp(_NormGradOp, ABC):
    """The input gradient: `dy`, `x`, the scale (and statistics) -> x's type."""

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    assembly_format = (
        "$grad `,` $input `,` $scale attr-dict `:` functional-type(operands, results)"
    )


class _NormGradScaleOp(_NormGradOp, ABC):
    """The scale gradient: `dy`, `x` (and statistics) -> the scale's type."""

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    assembly_format = "$grad `,` $input attr-dict `:` functional-type(operands, results)"


@irdl_op_definition
class LayerNormGradInputOp(LayerNormAttributes, _NormGradInputOp):
    """Gradient of `nn.layer_norm` w.r.t. its input, from `dy`, the input `x` and the
    scale (statistics are recomputed from `x`)."""

    name = "train.layer_norm_grad_input"

    def __init__(self, grad, input, scale, axis: int = -1, epsilon: float = 1e-5):
        super().__init__(
            operands=[grad, input, scale],
            result_types=[SSAValue.get(input).type],
            properties=self.norm_properties(axis, epsilon),
        )

    def check(self) -> None:
        x = shape_of(self.input)
        axis = shapes.normalize_axis(self.axis.value.data, len(x))
        self.expect("the output gradient", shape_of(self.grad), x)
        self.expect("scale", shape_of(self.scale), x[axis:])
        self.expect("the result", shape_of(self.result), x)


@irdl_op_definition
class LayerNormGradScaleOp(LayerNormAttributes, _NormGradScaleOp):
    """Gradient of `nn.layer_norm` w.r.t. its scale: `sum(dy * x_hat)` over the leading
    (not normalized) axes."""

    name = "train.layer_norm_grad_scale"

    def __init__(self, grad, input, axis: int = -1, epsilon: float = 1e-5):
        x = shape_of(input)
        start = shapes.normalize_axis(axis, len(x))
        super().__init__(
            operands=[grad, input],
            result_types=[like(input, x[start:])],
            properties=self.norm_properties(axis, epsilon),
        )

    def check(self) -> None:
        x = shape_of(self.input)
        axis = shapes.normalize_axis(self.axis.value.data, len(x))
        self.expect("the output gradient", shape_of(self.grad), x)
        self.expect("the result", shape_of(self.result), x[axis:])


@irdl_op_definition
class BatchNormGradInputOp(BatchNormAttributes, _NormGradInputOp):
    """Gradient of `nn.batch_norm` w.r.t. its input. Inference mode:
    `dy * scale / sqrt(var + eps)`; `training`: through the batch statistics too."""

    name = "train.batch_norm_grad_input"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    scale = operand_def(FloatTensor)
    mean = operand_def(FloatTensor)
    var = operand_def(FloatTensor)

    assembly_format = (
        "$grad `,` $input `,` $scale `,` $mean `,` $var attr-dict `:` "
        "functional-type(operands, results)"
    )

    def __init__(self, grad, input, scale, mean, var, epsilon=1e-5, training=False):
        super().__init__(
            operands=[grad, input, scale, mean, var],
            result_types=[SSAValue.get(input).type],
            properties=self.norm_properties(epsilon, training),
        )

    def check(self) -> None:
        x = self._check_input()
        for name in ("scale", "mean", "var"):
            self.expect(name, shape_of(getattr(self, name)), x[1:2])
        self.expect("the result", shape_of(self.result), x)


@irdl_op_definition
class BatchNormGradScaleOp(BatchNormAttributes, _NormGradScaleOp):
    """Gradient of `nn.batch_norm` w.r.t. its scale: `sum(dy * x_hat)` over all axes but
    the channels, `x_hat` normalized as the forward did (`training`: batch statistics)."""

    name = "train.batch_norm_grad_scale"

    grad = operand_def(FloatTensor)
    input = operand_def(FloatTensor)
    mean = operand_def(FloatTensor)
    var = operand_def(FloatTensor)

    assembly_format = (
        "$grad `,` $input `,` $mean `,` $var attr-dict `:` "
        "functional-type(operands, results)"
    )

    def __init__(self, grad, input, mean, var, epsilon=1e-5, training=False):
        super().__init__(
            operands=[grad, input, mean, var],
            result_types=[SSAValue.get(mean).type],
            properties=self.norm_properties(epsilon, training),
        )

    def check(self) -> None:
        x = self._check_input()
        for name in ("mean", "var", "result"):
            self.expect(name, shape_of(getattr(self, name)), x[1:2])


@irdl_op_definition
class GroupNormGradInputOp(GroupNormAttributes, _NormGradInputOp):
    """Gradient of `nn.group_norm` w.r.t. its input (statistics recomputed from `x`)."""

    name = "train.group_norm_grad_input"

    def __init__(self, grad, input, scale, groups: int, epsilon: float = 1e-5):
        super().__init__(
            operands=[grad, input, scale],
            result_types=[SSAValue.get(input).type],
            properties=self.norm_properties(groups, epsilon),
        )

    def check(self) -> None:
        x = self._check_input(self.groups.value.data)
        self.expect("scale", shape_of(self.scale), x[1:2])
        self.expect("the result", shape_of(self.result), x)


@irdl_op_definition
class GroupNormGradScaleOp(GroupNormAttributes, _NormGradScaleOp):
    """Gradient of `nn.group_norm` w.r.t. its scale: `sum(dy * x_hat)` per channel."""

    name = "train.group_norm_grad_scale"

    def __init__(self, grad, input, groups: int, epsilon: float = 1e-5):
        super().__init__(
            operands=[grad, input],
            result_types=[like(input, shape_of(input)[1:2])],
            properties=self.norm_properties(groups, epsilon),
        )

    def check(self) -> None:
        x = self._check_input(self.groups.value.data)
        self.expect("the result", shape_of(self.result), x[1:2])


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------


def _check_mask_window(kernel: Sequence[int]) -> None:
    kh, kw = kernel
    if kh * kw > MAX_POOL_WINDOW:
        raise ShapeError(
            f"kernel {kh}x{kw} has more than {MAX_POOL_WINDOW} positions, which a "
            "ui8 index mask cannot address"
        )


class _PoolTrainOp(TrainOperation, ABC):
    traits = traits_def(Pure())

    def pooled_shape(self, input: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError


@irdl_op_definition
class MaxPool2dWithIndicesOp(MaxPoolAttributes, _PoolTrainOp):
    """`nn.max_pool2d` that also returns, per output, the window-local position
    `i * kw + j` of the maximum (the first on ties) as a `ui8` index mask, which is all
    that its backward needs of the forward pass."""

    name = "train.max_pool2d_with_indices"

    input = operand_def(FloatTensor)
    result = result_def(FloatTensor)
    indices = result_def(TensorType.constr(ui8))
    INDEX_VALUES: ClassVar = ("indices",)

    assembly_format = "$input attr-dict `:` type($input) `->` type($result) `,` type($indices)"

    def __init__(self, input, kernel, stride, padding, dilation, ceil_mode: bool):
        pooled = pooled_type(input, kernel, stride, padding, dilation, ceil_mode)
        super().__init__(
            operands=[input],
            result_types=[pooled, TensorType(ui8, pooled.get_shape())],
            properties=pool_properties(kernel, stride, padding, ceil_mode, dilation),
        )

    def check(self) -> None:
        _check_mask_window(self.kernel.get_values())
        expected = self.pooled_shape(shape_of(self.input))
        self.expect("the result", shape_of(self.result), expected)
        self.expect("the indices", shape_of(self.indices), expected)


@irdl_op_definition
class MaxPool2dGradOp(MaxPoolAttributes, _PoolTrainOp):
    """Gradient of `nn.max_pool2d` w.r.t. its input: each `dy` goes to the input position
    its window's index mask names (summed where windows overlap)."""

    name = "train.max_pool2d_grad"

    grad = operand_def(FloatTensor)
    indices = operand_def(TensorType.constr(ui8))
    result = result_def(FloatTensor)
    INDEX_VALUES: ClassVar = ("indices",)

    assembly_format = (
        "$grad `,` $indices attr-dict `:` functional-type(operands, results)"
    )

    def __init__(self, grad, indices, input_type: TensorType, kernel, stride, padding,
                 dilation, ceil_mode: bool):
        super().__init__(
            operands=[grad, indices],
            result_types=[input_type],
            properties=pool_properties(kernel, stride, padding, ceil_mode, dilation),
        )

    def check(self) -> None:
        _check_mask_window(self.kernel.get_values())
        expected = self.pooled_shape(shape_of(self.result))
        self.expect("the output gradient", shape_of(self.grad), expected)
        self.expect("the indices", shape_of(self.indices), expected)


@irdl_op_definition
class AvgPool2dGradOp(AvgPoolAttributes, _PoolTrainOp):
    """Gradient of `nn.avg_pool2d` w.r.t. its input: each `dy` spread evenly (by the
    forward's divisor) over its window."""

    name = "train.avg_pool2d_grad"

    grad = operand_def(FloatTensor)
    result = result_def(FloatTensor)

    assembly_format = "$grad attr-dict `:` type($grad) `->` type($result)"

    def __init__(self, grad, input_type: TensorType, kernel, stride, padding,
                 ceil_mode: bool, count_include_pad: bool):
        super().__init__(
            operands=[grad],
            result_types=[input_type],
            properties=pool_properties(kernel, stride, padding, ceil_mode,
                                       count_include_pad=count_include_pad),
        )

    def check(self) -> None:
        self.expect(
            "the output gradient", shape_of(self.grad), self.pooled_shape(shape_of(self.result))
        )


# --------------------------------------------------------------------------------------
# Shape and data movement
# --------------------------------------------------------------------------------------


@irdl_op_definition
class SliceGradOp(SliceAttributes, TrainOperation):
    """Gradient of `nn.slice` w.r.t. its input: `dy` scattered back to the sliced
    positions of a zero tensor of the input's type."""

    name = "train.slice_grad"

    grad = operand_def(TensorType)
    result = result_def(TensorType)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$grad attr-dict `:` type($grad) `->` type($result)"

    def __init__(self, grad, input_type: TensorType, starts, ends, steps):
        super().__init__(
            operands=[grad],
            result_types=[input_type],
            properties=self.slice_properties(starts, ends, steps),
        )

    def check(self) -> None:
        self.expect(
            "the output gradient", shape_of(self.grad), self.sliced_shape(shape_of(self.result))
        )


@irdl_op_definition
class ScatterOp(IndexAttributes, TrainOperation):
    """`dest` with its slices at `indices` along `axis` replaced by the slices of
    `values`, in order (`torch.Tensor.index_copy(axis, indices, values)`). Indices are
    unique and in `[0, size)`. A channel-restricted update writes its new channels back
    into the whole parameter with it:

        %w_new = train.scatter %w, %w_channels_new {axis = 0 : i64, indices = array<i64: 1, 5>} : tensor<8x4xf32>, tensor<2x4xf32>
    """

    name = "train.scatter"

    T: ClassVar = VarConstraint("T", BaseAttr(TensorType))
    dest = operand_def(T)
    values = operand_def(TensorType)
    result = result_def(T)

    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$dest `,` $values attr-dict `:` type($dest) `,` type($values)"

    def __init__(self, dest: SSAValue | Operation, values: SSAValue | Operation,
                 indices: Sequence[int], axis: int):
        shapes.scatter(shape_of(dest), shape_of(values), indices, axis)
        super().__init__(
            operands=[dest, values],
            result_types=[SSAValue.get(dest).type],
            properties=self.index_properties(indices, axis),
        )

    def check(self) -> None:
        shapes.scatter(
            shape_of(self.dest), shape_of(self.values), self.indices.get_values(),
            self.axis.value.data,
        )


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
        LinearGradWeightSgdOp,
        Conv2dGradWeightSgdOp,
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
    "SWEEP_ATTR", "MICRO_BATCH_ATTR",
    "is_optimizer_state", *(op.__name__ for op in TRAIN.operations),
]
